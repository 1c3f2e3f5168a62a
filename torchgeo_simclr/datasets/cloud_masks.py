"""Cloud masks stored beside per-band Sentinel-2 files, read onto a query grid."""

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.crs
import rasterio.merge
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT

#: File name of a cloud mask beside the band files in which 0 is clear and any
#: other value masked (Major TOM's ``cloud_mask.tif``: 1 thick cloud, 2 thin
#: cloud, 3 cloud shadow).
CLOUD_MASK_NAME: Final[str] = "cloud_mask.tif"


@dataclass(frozen=True)
class CloudMask:
    """A one-band raster beside a product's band files that marks cloudy pixels."""

    #: Path of the mask raster.
    path: str
    #: Values that mark a pixel as cloudy; empty: every value but 0.
    cloudy: tuple[int, ...] = ()

    def flags(self, values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Which pixels the mask calls cloudy.

        Args:
            values: the mask's values, any shape.

        Returns:
            True where cloudy, *values*' shape.
        """
        if self.cloudy:
            return np.isin(values, self.cloudy)
        return np.asarray(values != 0)


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
) -> npt.NDArray[np.bool_]:
    """Read a mask over a query box with nearest neighbours, as cloudy flags.

    Args:
        mask: the mask and the values it marks as cloudy.
        handle: the open mask (see :func:`open_mask`).
        bounds: ``(xmin, ymin, xmax, ymax)`` of the query, in the handle's CRS.
        res: ``(x, y)`` pixel size of the query.

    Returns:
        ``[H, W]``, True where cloudy; pixels outside the mask read as 0.
    """
    values, _ = rasterio.merge.merge(
        [handle], bounds=bounds, res=res, indexes=[1], resampling=Resampling.nearest
    )
    return mask.flags(values[0])
