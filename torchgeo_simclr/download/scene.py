"""Read one scene's bbox window from its band COGs onto one 10 m grid."""

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from pystac import Item
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from ..constants import (
    S2_BAND_RESOLUTION,
    S2_BANDS,
    S2_NODATA,
    SCL,
    SCL_CLOUDS,
    SCL_RESOLUTION,
    SCL_UNUSABLE,
)
from ..dilation import buffer_pixels, cloud_reach, grow
from ..outputs import replaced_when_complete
from .assets import find_asset, to_reflectance_x10000

#: Pixels an SCL cloud grows by on the 10 m grid, for the 60 m bands (7).
CLOUD_REACH: Final[int] = cloud_reach(
    max(S2_BAND_RESOLUTION.values()), SCL_RESOLUTION, 10
)

#: Band whose native 10 m grid the output follows.
REFERENCE_BAND: Final[str] = "B04"

#: GDAL settings for reading COGs over HTTP: no directory listing, GDAL's own
#: retries with back-off on 429 and 5xx answers.
GDAL_HTTP_OPTIONS: Final[dict[str, Any]] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF",
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


@dataclass(frozen=True)
class SceneGrid:
    """The 10 m output grid of a scene: the bbox snapped to the scene's pixels."""

    #: CRS of the scene (its UTM zone).
    crs: CRS
    #: Affine transform of the top-left pixel, metres.
    transform: Affine
    #: Columns.
    width: int
    #: Rows.
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the scene's CRS, metres.

        Returns:
            The grid's bounds.
        """
        left, top = self.transform.c, self.transform.f
        return (
            left,
            top + self.height * self.transform.e,
            left + self.width * self.transform.a,
            top,
        )


def scene_grid(
    crs: CRS,
    transform: Affine,
    shape: tuple[int, int],
    bbox: tuple[float, float, float, float],
) -> SceneGrid | None:
    """The part of a raster inside a lon/lat bbox, widened to whole pixels.

    Args:
        crs: the raster's CRS.
        transform: the raster's transform.
        shape: the raster's ``(height, width)``, pixels.
        bbox: ``(min lon, min lat, max lon, max lat)``, degrees.

    Returns:
        The grid, or None where the bbox misses the raster.
    """
    bounds = transform_bounds("EPSG:4326", crs, *bbox, densify_pts=21)
    window = from_bounds(*bounds, transform=transform)
    # Snap outward to whole pixels; a hair of float error does not add a pixel.
    col0 = max(0, math.floor(window.col_off + 1e-6))
    row0 = max(0, math.floor(window.row_off + 1e-6))
    col1 = min(shape[1], math.ceil(window.col_off + window.width - 1e-6))
    row1 = min(shape[0], math.ceil(window.row_off + window.height - 1e-6))
    if col1 <= col0 or row1 <= row0:
        return None
    snapped = Window(col0, row0, col1 - col0, row1 - row0)  # type: ignore[call-arg]
    return SceneGrid(
        crs,
        rasterio.windows.transform(snapped, transform),
        col1 - col0,
        row1 - row0,
    )


def read_on_grid(
    href: str, grid: SceneGrid, resampling: Resampling
) -> npt.NDArray[Any]:
    """Read one band file onto *grid*, fetching only the blocks it needs.

    Args:
        href: the band's URL or path.
        grid: the output grid.
        resampling: ``bilinear`` for reflectance, ``nearest`` for classes.

    Returns:
        ``[height, width]`` in the file's data type, 0 where it has no data.
    """
    with (
        rasterio.open(href) as src,
        WarpedVRT(
            src,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=resampling,
            src_nodata=S2_NODATA,
            nodata=S2_NODATA,
        ) as vrt,
    ):
        data: npt.NDArray[Any] = vrt.read(1)
    return data


@dataclass(frozen=True)
class SceneFile:
    """What :func:`write_scene` wrote."""

    #: The 12-band GeoTIFF.
    path: Path
    #: Its grid.
    grid: SceneGrid
    #: Share of pixels that the SCL layer calls clear (1 without masking).
    valid_fraction: float
    #: ``(gain, bias)`` per band: reflectance x10000 = DN * gain + bias.
    harmonisation: dict[str, tuple[float, float]]


def style_path(path: Path) -> Path:
    """The QGIS style beside a scene file: the same name, suffix ``.qml``.

    Args:
        path: the scene's GeoTIFF.

    Returns:
        The style's path; QGIS applies it when it opens *path*.
    """
    return path.with_suffix(".qml")


def write_style(path: Path) -> bool:
    """Write the natural-colour QGIS style beside a scene file, unless one is there.

    A style already there is kept: an earlier download's, or the user's own
    (QGIS's "Save as Default" writes it). The style is written under a hidden
    temporary name of this process and renamed once complete.

    Args:
        path: the scene's GeoTIFF (bands in ``S2_BANDS`` order).

    Returns:
        Whether a style was written.
    """
    style = style_path(path)
    if style.exists():
        return False
    with replaced_when_complete(style) as partial:
        partial.write_text(_natural_colour(), encoding="utf-8")
    return True


def _natural_colour() -> str:
    """The QML that shows a scene file (``S2_BANDS``) in natural colour."""
    # Here, not at the top: the inference package imports torch.
    from ..inference.styles import natural_colour_style

    return natural_colour_style(S2_BANDS)


def write_scene(
    item: Item,
    bbox: tuple[float, float, float, float],
    path: Path,
    mask_clouds: bool = True,
    on_band: Callable[[str], None] | None = None,
    cloud_buffer: float = 0.0,
) -> SceneFile | None:
    """Write the bbox window of a scene as one 12-band 10 m GeoTIFF.

    The grid is the reference band's (B04) own pixel grid over the bbox; 20 m
    and 60 m bands are resampled onto it bilinearly, the SCL layer with
    nearest neighbours. Digital numbers become reflectance x10000 (the
    baseline 04.00 offset removed), 0 is nodata, and with *mask_clouds* the
    pixels that SCL calls saturated or no data, and those within
    :data:`CLOUD_REACH` pixels (and *cloud_buffer* further) of what it calls
    cloud, cirrus or shadow, are set to 0. The file is written under a hidden
    temporary name of this process (:func:`~torchgeo_simclr.outputs.partial_path`)
    and renamed at the end; a failure removes it and leaves *path* as it was.
    Beside it goes its QGIS style (:func:`style_path`: natural colour, see
    :func:`~torchgeo_simclr.inference.styles.natural_colour_style`), written
    and renamed with it, unless a style is there already (then it is kept).

    Args:
        item: the scene.
        bbox: ``(min lon, min lat, max lon, max lat)``, degrees.
        path: the GeoTIFF to write (``S2*_MSIL2A_*.tif``).
        mask_clouds: blank cloudy pixels using the SCL layer.
        on_band: called with each band name once it is read.
        cloud_buffer: metres by which clouds grow beyond :data:`CLOUD_REACH`.

    Returns:
        What was written, or None where the bbox misses the scene's raster.
    """
    with rasterio.open(find_asset(item, REFERENCE_BAND).href) as reference:
        grid = scene_grid(reference.crs, reference.transform, reference.shape, bbox)
    if grid is None:
        return None
    keep = np.ones((grid.height, grid.width), dtype=bool)
    if mask_clouds:
        scl = read_on_grid(find_asset(item, SCL).href, grid, Resampling.nearest)
        # The 60 m bands resampled to 10 m can carry cloud light 7 px past a cloud.
        reach = CLOUD_REACH + buffer_pixels(cloud_buffer, abs(grid.transform.a))
        clouds = grow(np.pad(np.isin(scl, SCL_CLOUDS), reach), reach)
        keep = ~(clouds | np.isin(scl, SCL_UNUSABLE))
        if on_band is not None:
            on_band(SCL)
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": len(S2_BANDS),
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": S2_NODATA,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
    }
    harmonisation: dict[str, tuple[float, float]] = {}
    style = style_path(path)
    with contextlib.ExitStack() as stack:
        # A style already there is kept (see write_style). Staged first, so
        # it is renamed after the GeoTIFF.
        staged_style = (
            None
            if style.exists()
            else stack.enter_context(replaced_when_complete(style))
        )
        partial = stack.enter_context(replaced_when_complete(path))
        dst = stack.enter_context(rasterio.open(partial, "w", **profile))
        for index, band in enumerate(S2_BANDS, start=1):
            asset = find_asset(item, band)
            gain, bias = to_reflectance_x10000(item, asset)
            harmonisation[band] = (gain, bias)
            raw = read_on_grid(asset.href, grid, Resampling.bilinear)
            valid = (raw != S2_NODATA) & keep
            scaled = np.clip(np.rint(raw.astype(np.float32) * gain + bias), 1, 65535)
            dst.write(np.where(valid, scaled, S2_NODATA).astype(np.uint16), index)
            dst.set_band_description(index, band)
            if on_band is not None:
                on_band(band)
        dst.update_tags(
            stac_item=item.id,
            cloud_cover=str(item.properties.get("eo:cloud_cover")),
            datetime=str(item.datetime),
        )
        if staged_style is not None:
            staged_style.write_text(_natural_colour(), encoding="utf-8")
    return SceneFile(path, grid, float(keep.mean()), harmonisation)


def with_retries[T](
    action: Callable[[], T], what: str, retries: int, backoff: float = 1.0
) -> T:
    """Run *action*, retrying read errors with exponential back-off.

    GDAL already retries single HTTP requests; this retries the whole scene
    when GDAL gives up (a connection reset, a truncated answer).

    Args:
        action: the work to do.
        what: what is being fetched, for the error message.
        retries: retries after the first try.
        backoff: seconds before the first retry; doubled each time.

    Returns:
        What *action* returns.

    Raises:
        ConnectionError: if every try failed.
    """
    for attempt in range(retries):
        try:
            return action()
        except RasterioIOError:
            time.sleep(backoff * 2**attempt)
    try:
        return action()
    except RasterioIOError as error:
        msg = (
            f"Could not read {what} after {retries + 1} tries ({error}); check the "
            "network and run the same command again: finished scenes are kept and "
            "not fetched again."
        )
        raise ConnectionError(msg) from None
