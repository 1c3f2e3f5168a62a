"""The pixels of an irrigation class map, and the polygons that hold them.

What :mod:`~torchgeo_simclr.evaluate` (scores against labels) and
:mod:`~torchgeo_simclr.field_stats` (statistics of your own fields) share:
opening and checking a class map that ``predict`` wrote, reading it in strips
of whole rows, burning polygons onto its grid by pixel centre, and the areas of
polygons and pixels in hectares.
"""

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS

from .constants import AREA_DECIMALS, IRRIGATED, M2_PER_HA, MAP_NODATA, NOT_IRRIGATED
from .outputs import not_a_file

#: What a map file must be, for error messages.
EXPECTED_MAP = (
    f"a single-band uint8 irrigation class map with nodata {MAP_NODATA} "
    f"({NOT_IRRIGATED} not irrigated, {IRRIGATED} irrigated)"
)


#: Tags of a map that ``predict`` wrote which records of it copy as
#: ``map_tags`` (``evaluate --scores``, ``field-stats --summary``): what made
#: the map (checkpoint and its SHA-256, model, threshold, sensing dates, the
#: label file its model trained on, software), so that a record is tied to the
#: map it rests on.
MAP_TAGS: Final[tuple[str, ...]] = (
    "checkpoint",
    "checkpoint_sha256",
    "model",
    "problem",
    "threshold",
    "imagery_dates",
    "training_labels_sha256",
    "software",
    "software_commit",
)


def map_provenance(tags: Mapping[str, str]) -> dict[str, Any]:
    """What made a map, from its GeoTIFF tags, as records of it give it.

    Args:
        tags: the map's dataset tags.

    Returns:
        Each tag of :data:`MAP_TAGS`, None where the map has none (a map not
        made by ``predict``, or by an earlier version): ``threshold`` as a
        number (None if it is not one), ``imagery_dates`` as a list of ISO
        dates, the others as tagged.
    """
    record: dict[str, Any] = {key: tags.get(key) for key in MAP_TAGS}
    if (dates := record["imagery_dates"]) is not None:
        record["imagery_dates"] = [day for day in dates.split(",") if day]
    if (threshold := record["threshold"]) is not None:
        try:
            value = float(threshold)
        except ValueError:
            value = math.nan
        record["threshold"] = value if math.isfinite(value) else None
    return record


def open_map(map_path: str | Path) -> Any:
    """Open and check an irrigation map.

    Args:
        map_path: the map GeoTIFF.

    Returns:
        The open rasterio dataset (the caller closes it).

    Raises:
        FileNotFoundError: If *map_path* does not exist or is a folder.
        ValueError: If it cannot be read, is not single-band uint8 with nodata
            255, has no CRS, or is not north-up.
    """
    name = os.fspath(map_path)
    if not name.startswith("/vsi") and not os.path.isfile(name):
        missing = not_a_file(name)
        msg = (
            f"Map file {name!r} {missing}; expected {EXPECTED_MAP} as a "
            "GeoTIFF, so check the path."
        )
        raise FileNotFoundError(msg)
    try:
        with warnings.catch_warnings():
            # A picture without georeferencing is refused below, in one line.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(name)
    except rasterio.errors.RasterioIOError as error:
        reason = str(error).strip().splitlines()[0].rstrip(".")
        msg = (
            f"Cannot read map file {name!r} ({reason}); expected {EXPECTED_MAP} "
            "as a GeoTIFF, so check the path."
        )
        raise ValueError(msg) from None
    problem = None
    wrong_kind = src.count != 1 or src.dtypes[0] != "uint8" or src.nodata != MAP_NODATA
    if src.driver != "GTiff" and (wrong_kind or src.crs is None):
        # E.g. the quick look PNG: neither a probability nor a nodata fix.
        georeferenced = "georeferenced" if src.crs is not None else "no CRS"
        problem = (
            f"is a {src.driver} file, not a GeoTIFF ({src.count} band(s) of "
            f"{', '.join(sorted(set(src.dtypes)))}, {georeferenced})"
        )
        advice = (
            "so pass the class map PATH.tif that predict wrote (PATH_quicklook.png "
            "is only a picture of it)"
        )
    elif wrong_kind:
        problem = (
            f"has {src.count} band(s) of {', '.join(sorted(set(src.dtypes)))} with "
            f"nodata {src.nodata}"
        )
        advice = (
            "so pass the class map (not the `_probability.tif` next to it), or "
            f"set its nodata with `gdal_edit.py -a_nodata {MAP_NODATA}`"
        )
    elif src.crs is None:
        problem = "has no CRS"
        advice = "so pass the map as written, with its georeferencing"
    elif src.transform.b != 0 or src.transform.d != 0 or src.transform.e >= 0:
        problem = f"has a rotated or south-up transform {tuple(src.transform)[:6]}"
        advice = "so warp it north-up first, e.g. with `gdalwarp`"
    if problem is not None:
        src.close()
        msg = f"Map file {name!r} {problem}; expected {EXPECTED_MAP}, {advice}."
        raise ValueError(msg)
    return src


def pixel_range(start: float, stop: float, size: float, limit: int) -> tuple[int, int]:
    """Pixel index range ``[first, last)`` covering a coordinate interval.

    Args:
        start: distance of the interval's start from the map's first pixel edge,
            map units (metres for UTM).
        stop: distance of the interval's end from that edge, map units.
        size: pixel size, map units.
        limit: number of pixels along the axis.

    Returns:
        The first and one-past-last pixel, clipped to ``[0, limit]``.
    """
    first = math.floor(start / size)
    last = math.ceil(stop / size)
    return max(first, 0), min(max(last, 0), limit)


def rasterise_ids(
    geometries: npt.NDArray[Any],
    hits: npt.NDArray[np.intp],
    shape: tuple[int, ...],
    transform: Any,
) -> npt.NDArray[np.int32]:
    """Burn the row number of the polygon labelling each pixel.

    Args:
        geometries: all label polygons, in the map CRS.
        hits: indices of the polygons that may touch the strip.
        shape: ``(rows, cols)`` of the strip.
        transform: affine transform of the strip.

    Returns:
        int32 ``[rows, cols]``: the index of the last polygon (in file order)
        whose interior holds the pixel centre, or -1 where there is none.
    """
    if hits.size == 0:
        return np.full(shape, -1, dtype=np.int32)
    order = np.sort(hits)
    shapes: Iterable[tuple[Any, int]] = zip(
        geometries[order], order.tolist(), strict=True
    )
    return cast(
        npt.NDArray[np.int32],
        rasterio.features.rasterize(
            shapes, out_shape=shape, transform=transform, fill=-1, dtype=np.int32
        ),
    )


def area_ha(geometries: npt.NDArray[Any], crs: CRS) -> npt.NDArray[np.float64]:
    """Areas of polygons in hectares, as ``PATH.gpkg``'s ``area_ha`` (0.01 ha).

    Args:
        geometries: the polygons, in *crs*, ``[N]``.
        crs: a projected CRS (planar area in its linear unit, metres for
            UTM) or a geographic one (area on its ellipsoid, equal-area).

    Returns:
        Hectares, rounded to 0.01 ha, ``[N]``.
    """
    if crs.is_geographic:
        geod = crs.get_geod()
        assert geod is not None  # every geographic CRS has an ellipsoid
        m2 = np.array(
            [abs(geod.geometry_area_perimeter(shape)[0]) for shape in geometries],
            dtype=np.float64,
        )
    else:
        metres = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        m2 = shapely.area(geometries) * metres**2
    return np.round(m2 / M2_PER_HA, AREA_DECIMALS)


def row_pixel_ha(transform: Any, rows: int, crs: CRS) -> npt.NDArray[np.float64]:
    """Area of one pixel in each row of a strip, in hectares (unrounded).

    Args:
        transform: affine transform of the strip (north-up).
        rows: rows in the strip.
        crs: a projected CRS (pixel width times height in its linear unit,
            metres for UTM: the same in every row) or a geographic one (the
            pixel's area on its ellipsoid, which shrinks away from the equator).

    Returns:
        Hectares, ``[rows]``.
    """
    xres, yres = float(transform.a), float(-transform.e)
    if crs.is_geographic:
        geod = crs.get_geod()
        assert geod is not None  # every geographic CRS has an ellipsoid
        left = float(transform.c)
        lons = [left, left + xres, left + xres, left]
        tops = float(transform.f) - yres * np.arange(rows)
        m2 = np.array(
            [
                abs(geod.polygon_area_perimeter(lons, [t, t, t - yres, t - yres])[0])
                for t in tops
            ],
            dtype=np.float64,
        )
    else:
        metres = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        m2 = np.full(rows, xres * yres * metres**2, dtype=np.float64)
    return m2 / M2_PER_HA


def read_classes(
    src: Any, window: rasterio.windows.Window, name: str
) -> npt.NDArray[np.uint8]:
    """Read a window of a class map, checking that it holds classes only.

    Args:
        src: the map, opened by :func:`open_map`.
        window: the pixels to read.
        name: the map path, for messages.

    Returns:
        The classes (0, 1 or 255), ``[window.height, window.width]``.

    Raises:
        ValueError: If the window holds a value other than 0, 1 and 255.
    """
    classes = cast(npt.NDArray[np.uint8], src.read(1, window=window))
    bad = classes[(classes > IRRIGATED) & (classes != MAP_NODATA)]
    if bad.size:
        msg = (
            f"Map file {name!r} holds value {int(bad[0])}; expected "
            f"{EXPECTED_MAP}, so pass the class map, not a probability or other "
            "raster."
        )
        raise ValueError(msg)
    return classes


def strips(
    window: rasterio.windows.Window, rows: int
) -> Iterable[rasterio.windows.Window]:
    """Cut a window into strips of whole rows, top to bottom.

    Args:
        window: the pixels to cover.
        rows: rows (pixels) per strip; the last strip may have fewer.

    Yields:
        The strips, each as wide as *window*.
    """
    bottom = window.row_off + window.height
    for row in range(window.row_off, bottom, rows):
        yield rasterio.windows.Window(
            window.col_off, row, window.width, min(rows, bottom - row)
        )
