"""Cloud masks stored beside per-band Sentinel-2 files, read onto a query grid."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.crs
import rasterio.merge
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT

from ..dilation import buffer_pixels, cloud_reach, grow
from .unreadable import UnreadableFileError, gdal_reason

#: File name of a cloud mask beside the band files in which 0 is clear and any
#: other value masked (Major TOM's ``cloud_mask.tif``: 1 thick cloud, 2 thin
#: cloud, 3 cloud shadow).
CLOUD_MASK_NAME: Final[str] = "cloud_mask.tif"


@dataclass(frozen=True)
class CloudMask:
    """A one-band raster beside a product's band files that marks cloudy pixels."""

    #: Path of the mask raster.
    path: str
    #: Values of clouds and their shadows, whose light resampling spreads to
    #: neighbouring pixels; empty: every value but 0 and :attr:`unusable`.
    cloudy: tuple[int, ...] = ()
    #: Values of pixels without usable data (no data, saturated), masked as
    #: they are.
    unusable: tuple[int, ...] = ()

    def flags(
        self, values: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Which pixels the mask calls cloudy, and which unusable.

        Args:
            values: the mask's values, any shape.

        Returns:
            ``(cloudy, unusable)``, each True where so, *values*' shape.
        """
        unusable = np.isin(values, self.unusable)
        if self.cloudy:
            return np.isin(values, self.cloudy), unusable
        return (values != 0) & ~unusable, unusable


def open_mask(path: str, crs: CRS) -> DatasetReader | WarpedVRT:
    """Open a mask raster, warped with nearest neighbours where its CRS differs.

    Args:
        path: the mask raster.
        crs: CRS of the queries it will answer.

    Returns:
        The open file, or a WarpedVRT of it.
    """
    src = rasterio.open(path)
    target = rasterio.crs.CRS.from_user_input(crs)
    if src.crs == target:
        return src
    return WarpedVRT(src, crs=target, resampling=Resampling.nearest)


def read_flags(
    mask: CloudMask,
    handle: DatasetReader | WarpedVRT,
    bounds: tuple[float, float, float, float],
    res: tuple[float, float],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Read a mask over a query box with nearest neighbours, as flags.

    Args:
        mask: the mask and the values it marks.
        handle: the open mask (see :func:`open_mask`).
        bounds: ``(xmin, ymin, xmax, ymax)`` of the query, in the handle's CRS.
        res: ``(x, y)`` pixel size of the query.

    Returns:
        ``(cloudy, unusable)`` ``[H, W]`` (see :meth:`CloudMask.flags`); pixels
        outside the mask read as 0.
    """
    values, _ = rasterio.merge.merge(
        [handle],
        bounds=bounds,
        res=res,
        nodata=0,
        indexes=[1],
        resampling=Resampling.nearest,
    )
    return mask.flags(values[0])


def cloudy_pixels(
    masks: Sequence[tuple[CloudMask, DatasetReader | WarpedVRT]],
    x: slice,
    y: slice,
    coarsest: float,
    buffer: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """A product's cloudy pixels over a query, widened by the bands' reach.

    Each mask's clouds grow by :func:`~torchgeo_simclr.dilation.cloud_reach`
    for the coarsest band read, so no pixel keeps cloud light in its coarse
    bands, and then by *buffer*, for cloud edges and haze the mask misses.
    Pixels without usable data do not grow.

    Args:
        masks: the product's masks, each with its open raster (see
            :func:`open_mask`).
        x: the query's ``xmin:xmax:xres``, CRS units (metres).
        y: the query's ``ymin:ymax:yres``.
        coarsest: native pixel size of the coarsest band read, metres.
        buffer: further growth of the clouds, metres (rounded up to whole
            query pixels).

    Returns:
        ``[H, W]``, True where cloudy, within reach of a cloudy pixel, or
        without usable data.
    """
    extra = buffer_pixels(buffer, x.step)
    reaches = [
        cloud_reach(coarsest, handle.res[0], x.step) + extra for _, handle in masks
    ]
    reach = max(reaches)
    bounds = (
        x.start - reach * x.step,
        y.start - reach * y.step,
        x.stop + reach * x.step,
        y.stop + reach * y.step,
    )
    cloudy: npt.NDArray[np.bool_] | None = None
    for (mask, handle), own in zip(masks, reaches, strict=True):
        with readable(mask.path):
            clouds, unusable = read_flags(mask, handle, bounds, (x.step, y.step))
        height, width = clouds.shape
        rim = reach - own
        found = grow(clouds, own)[
            rim : height - 2 * own - rim, rim : width - 2 * own - rim
        ]
        found |= unusable[reach : height - reach, reach : width - reach]
        cloudy = found if cloudy is None else cloudy | found
    assert cloudy is not None  # a product with masks has one at least
    return cloudy


@contextmanager
def readable(path: str) -> Iterator[None]:
    """Turn rasterio's failure to open or read a cloud mask into one sentence.

    Args:
        path: the mask raster.

    Yields:
        Nothing; the block that opens or reads it runs inside.

    Raises:
        UnreadableFileError: If rasterio cannot open or read it.
    """
    try:
        yield
    except RasterioIOError as error:
        msg = (
            f"Cloud mask {path!r} could not be read ({gdal_reason(error, path)}); "
            "expected a readable one-band raster, so replace the file, or read "
            "without masks (--data.init_args.mask_clouds false, or "
            "--no-cloud-mask for predict and embed)."
        )
        raise UnreadableFileError(msg) from error
