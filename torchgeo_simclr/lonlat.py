"""Longitude / latitude: the CRS of user-given places, their checks and extents.

Bounding boxes and points come from users in EPSG:4326 degrees (or in the CRS
``--bbox-crs`` names); extents shown back to them are in the same degrees.
"""

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

if TYPE_CHECKING:  # geopandas is left out of the download command's imports
    from geopandas import GeoDataFrame, GeoSeries

#: EPSG:4326, the CRS of a bbox or point given without one.
LONLAT = CRS.from_epsg(4326)


def lonlat_extent(
    bounds: Iterable[float], crs: CRS | None, decimals: int | None = 4
) -> list[float]:
    """Bounds in *crs* as ``[min lon, min lat, max lon, max lat]``.

    Args:
        bounds: ``(xmin, ymin, xmax, ymax)`` in *crs*.
        crs: CRS of *bounds* (None: already lon/lat).
        decimals: decimals the degrees are rounded to (None: not rounded).

    Returns:
        The extent in EPSG:4326 degrees.
    """
    xmin, ymin, xmax, ymax = bounds
    if crs is not None and crs != LONLAT:
        to_lonlat = Transformer.from_crs(crs, LONLAT, always_xy=True)
        xmin, ymin, xmax, ymax = to_lonlat.transform_bounds(xmin, ymin, xmax, ymax)
    values = [float(v) for v in (xmin, ymin, xmax, ymax)]
    return values if decimals is None else [round(v, decimals) for v in values]


def shapes_extent(shapes: "GeoDataFrame | GeoSeries") -> list[float]:
    """The lon/lat extent of the shapes themselves, 4 decimals.

    The box around shapes in a projected CRS, taken to lon/lat, can be far
    wider (by degrees for shapes far from the CRS's zone), so the shapes are
    taken to lon/lat first.

    Args:
        shapes: shapes in any CRS.

    Returns:
        ``[min lon, min lat, max lon, max lat]``, EPSG:4326 degrees.
    """
    return lonlat_extent(shapes.geometry.to_crs(LONLAT).total_bounds, None)


def unnamed_crs(filepath: str, bounds: Iterable[float]) -> CRS:
    """The CRS of a label file that names none: lon/lat, if its values can be degrees.

    GeoJSON and GeoParquet without a CRS are lon/lat by definition; a
    shapefile without its ``.prj`` may be in anything, so metres are refused
    rather than read as degrees (which would put the fields off the imagery).

    Args:
        filepath: the label file, for the message.
        bounds: its ``(xmin, ymin, xmax, ymax)`` (NaN for an empty file).

    Returns:
        EPSG:4326.

    Raises:
        ValueError: if the bounds reach beyond ±180 / ±90.
    """
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    degrees = xmin >= -180 and xmax <= 180 and ymin >= -90 and ymax <= 90
    if not degrees and not any(math.isnan(v) for v in (xmin, ymin, xmax, ymax)):
        extent = [round(v, 1) for v in (xmin, ymin, xmax, ymax)]
        msg = (
            f"Label file {filepath!r} names no CRS and its coordinates "
            f"{extent} are not longitude/latitude degrees; give the file its "
            "CRS, e.g. `ogr2ogr -a_srs EPSG:32610 out.gpkg IN` (a shapefile "
            "keeps it in its .prj)."
        )
        raise ValueError(msg)
    return LONLAT


def parse_bbox_crs(value: str | CRS, option: str = "--bbox-crs") -> CRS:
    """The CRS a ``--bbox-crs`` value names.

    Args:
        value: anything pyproj reads, e.g. ``"EPSG:32610"``.
        option: the option it came from, for the message.

    Returns:
        The CRS.

    Raises:
        ValueError: if pyproj does not know *value*.
    """
    try:
        return CRS.from_user_input(value)
    except CRSError as error:
        msg = (
            f"{option} {str(value)!r} is not a CRS that pyproj knows; pass e.g. "
            "EPSG:4326 for lon/lat, EPSG:32610 for UTM zone 10N metres or "
            "EPSG:3310 for California Albers metres."
        )
        raise ValueError(msg) from error


def in_degrees(values: Sequence[float]) -> bool:
    """Whether ``(lon, lat, ...)`` pairs lie within ±180 and ±90 degrees.

    Args:
        values: ``(lon, lat)`` or ``(min lon, min lat, max lon, max lat)``.

    Returns:
        True when every longitude and latitude is in range (NaN is not).
    """
    return all(-180 <= lon <= 180 for lon in values[0::2]) and all(
        -90 <= lat <= 90 for lat in values[1::2]
    )


def _swapped(values: Sequence[float]) -> tuple[float, ...]:
    """Each ``(x, y)`` pair of *values* as ``(y, x)``; empty for an odd count."""
    if len(values) % 2:
        return ()
    return tuple(values[i ^ 1] for i in range(len(values)))


def _as_option(option: str, values: Iterable[float]) -> str:
    """*values* written after *option*, as a command line takes them."""
    return f"{option} {' '.join(f'{v:.10g}' for v in values)}"


def bbox_fault(
    values: Sequence[float], names: tuple[str, str] = ("lon", "lat")
) -> tuple[str, tuple[float, ...] | None]:
    """Why *values* are not a bbox ``(xmin, ymin, xmax, ymax)``, and the one meant.

    Args:
        values: the bbox as given.
        names: what the x and y values are, for the message; with ``"lon"``
            a min longitude more than 180 degrees east of the max is a bbox
            across the antimeridian, which has no min, max order.

    Returns:
        ``("", None)`` for a bbox; otherwise the fault, e.g. ``"min lon -120.7
        > max lon -120.86"``, and the same values in min, max order when
        only the order is wrong (else None).
    """
    if len(values) != 4:
        return f"it has {len(values)} values, not 4", None
    if not all(math.isfinite(v) for v in values):
        return "a value is not a finite number", None
    faults = [
        f"min {name} {low:.10g} {'=' if low == high else '>'} max {name} {high:.10g}"
        for name, low, high in zip(names, values[:2], values[2:], strict=True)
        if low >= high
    ]
    if not faults:
        return "", None
    west, south, east, north = values
    if names[0] == "lon" and west - east > 180:
        return (
            f"{faults[0]} (a bbox across the antimeridian, which is not "
            "supported: split it in two at 180 degrees)"
        ), None
    ordered = (min(west, east), min(south, north), max(west, east), max(south, north))
    meant = ordered if ordered[0] < ordered[2] and ordered[1] < ordered[3] else None
    return " and ".join(faults), meant


def check_bbox(
    values: Sequence[float], crs: CRS, imagery_crs: CRS | None = None
) -> tuple[float, float, float, float]:
    """Refuse a ``--bbox`` in any CRS that is not ``(xmin, ymin, xmax, ymax)``.

    Args:
        values: the bbox as given, in *crs*.
        crs: its CRS (``--bbox-crs``).
        imagery_crs: the imagery's CRS, suggested for metres given as degrees.

    Returns:
        The bbox.

    Raises:
        ValueError: naming the fault and the bbox meant, if the values are not
            4 finite numbers with min < max, or latitudes of a geographic
            *crs* lie beyond +-90 degrees (see :func:`check_latitudes`).
    """
    fault, meant = bbox_fault(
        values, ("lon", "lat") if crs.is_geographic else ("x", "y")
    )
    if fault:
        if meant is not None:
            fix = f"pass {_as_option('--bbox', meant)}"
        elif crs.is_geographic:
            fix = "pass e.g. --bbox -120.75 36.95 -120.55 37.1 for lon/lat"
        else:
            fix = f"pass 4 numbers xmin ymin xmax ymax in {crs.to_string()}"
        msg = (
            f"{_as_option('--bbox', values)} is not (xmin, ymin, xmax, ymax) with "
            f"min < max in {crs.to_string()}: {fault}; {fix}."
        )
        raise ValueError(msg)
    check_latitudes("--bbox", values, crs, imagery_crs)
    xmin, ymin, xmax, ymax = (float(v) for v in values)
    return xmin, ymin, xmax, ymax


def bbox_polygon(bbox: Sequence[float], source: CRS, target: CRS) -> shapely.Polygon:
    """A bbox as a polygon in another CRS, densified to follow its curvature.

    Args:
        bbox: ``(xmin, ymin, xmax, ymax)`` in *source*.
        source: the CRS of *bbox*.
        target: the CRS of the polygon.

    Returns:
        The polygon; its edges are cut every 0.01 degrees (geographic
        *source*) or every hundredth of the bbox's longer side before
        reprojection.
    """
    xmin, ymin, xmax, ymax = bbox
    step = 0.01 if source.is_geographic else max(xmax - xmin, ymax - ymin) / 100
    box = shapely.segmentize(shapely.box(xmin, ymin, xmax, ymax), step)
    if target == source:
        return box
    transformer = Transformer.from_crs(source, target, always_xy=True)
    return cast(
        shapely.Polygon,
        shapely.transform(
            box, lambda xy: np.column_stack(transformer.transform(*xy.T))
        ),
    )


def _out_of_range(values: Sequence[float]) -> str:
    """The longitudes beyond +-180 and latitudes beyond +-90 of *values*, in words."""
    faults = [
        f"{name} {value:.10g} is beyond +-{limit}"
        for i, value in enumerate(values)
        for name, limit in [("longitude", 180) if i % 2 == 0 else ("latitude", 90)]
        if abs(value) > limit
    ]
    return " and ".join(faults)


def check_lonlat_bbox(
    bbox: Iterable[float] | None, option: str | None = None
) -> tuple[float, float, float, float] | None:
    """Validate a lon/lat bbox.

    A bbox whose longitudes and latitudes are in range but out of order
    gets the order that works; one that would be valid with longitude and
    latitude swapped gets the swapped bbox, one in 0-360 degree longitudes
    the same bbox in +-180; metres get told they are not degrees.

    Args:
        bbox: ``(min lon, min lat, max lon, max lat)`` or None.
        option: the command-line option the bbox came from, e.g.
            ``--bbox``, for messages in its syntax (default: ``bbox=[...]``).

    Returns:
        The bbox as a tuple of 4 floats, or None.

    Raises:
        ValueError: If *bbox* is not 4 numbers with min < max inside
            [-180, 180] x [-90, 90] degrees.
    """
    if bbox is None:
        return None
    values = tuple(float(v) for v in bbox)

    def valid(v: tuple[float, ...]) -> bool:
        return len(v) == 4 and in_degrees(v) and not bbox_fault(v)[0]

    def written(v: Iterable[float]) -> str:
        if option is None:
            return f"[{', '.join(f'{x:g}' for x in v)}]"
        return _as_option(option, v)

    if valid(values):
        west, south, east, north = values
        return west, south, east, north
    fault, meant = bbox_fault(values)
    example = written((-121.5, 36.5, -120.5, 37.5))
    # East of 180 degrees: longitudes counted 0-360, as some data are.
    shifted = tuple(
        v - 360 if i % 2 == 0 and v > 180 else v for i, v in enumerate(values)
    )
    shifted_meant = bbox_fault(shifted)[1] or shifted
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        fix = f"pass e.g. {example}"
    elif any(abs(v) > 360 for v in values):
        fault = "these look like projected coordinates (metres), not degrees"
        fix = f"convert them to lon/lat, e.g. {example}"
    elif shifted != values and valid(shifted_meant):
        fault = f"{_out_of_range(values)}: longitudes counted 0-360 degrees"
        fix = f"pass them in +-180: {written(shifted_meant)}"
    elif valid(_swapped(values)):
        fault = ""
        fix = f"longitude and latitude look swapped: pass {written(_swapped(values))}"
    elif meant is not None and in_degrees(meant):
        fix = f"pass {written(meant)}"
    elif in_degrees(values) and values[0] - values[2] > 180:
        west, south, east, north = values
        fix = (
            f"pass {written((west, south, 180, north))}, then "
            f"{written((-180, south, east, north))}"
        )
    else:
        fault = " and ".join(f for f in (_out_of_range(values), fault) if f)
        fix = f"pass e.g. {example}"
    given = f"bbox={list(values)}" if option is None else written(values)
    msg = (
        f"{given} is not (min lon, min lat, max lon, max lat) in EPSG:4326 "
        f"degrees with min < max{f': {fault}' if fault else ''}; {fix}."
    )
    raise ValueError(msg)


def check_latitudes(
    option: str, values: Sequence[float], crs: CRS, imagery_crs: CRS | None = None
) -> None:
    """Refuse geographic coordinates whose latitudes are out of range.

    A latitude beyond +-90 degrees is a longitude given first the other way
    round, when swapping makes the values degrees, or else projected
    coordinates (metres) given without their CRS: the message suggests the
    swapped values or ``--bbox-crs``. Unlike :func:`check_lonlat_bbox`, this
    takes points too and any geographic CRS, and does not check the order.

    Args:
        option: the command-line option the values came from, e.g. ``--bbox``.
        values: ``(lon, lat)`` or ``(min lon, min lat, max lon, max lat)``.
        crs: the CRS the values are in; only a geographic one is checked.
        imagery_crs: the imagery's CRS, suggested for projected values.

    Raises:
        ValueError: if *crs* is geographic and a latitude is beyond +-90.
    """
    if not crs.is_geographic or all(abs(lat) <= 90 for lat in values[1::2]):
        return
    swapped = _swapped(values)
    if swapped and in_degrees(swapped):
        fix = (
            "longitude and latitude look swapped; "
            f"{option} takes longitude first: pass {_as_option(option, swapped)}"
        )
    else:
        example = (
            f"--bbox-crs {imagery_crs.to_string()} if they are in the imagery's CRS"
            if imagery_crs is not None
            else "--bbox-crs EPSG:32610 for UTM zone 10N"
        )
        fix = (
            f"these look like projected coordinates (metres); give their CRS, e.g. "
            f"{example}"
            if option == "--bbox"
            else f"{option} takes degrees of longitude and latitude"
        )
    msg = (
        f"{_as_option(option, values)} has a latitude beyond +-90 degrees in "
        f"{crs.to_string()}, so {fix}."
    )
    raise ValueError(msg)
