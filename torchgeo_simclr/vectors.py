"""Checks of vector features' coordinates and CRS, shared by labels and fields.

Light on purpose (shapely, pyproj, numpy): ``field-stats`` uses them without
loading torchgeo.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS

#: Farthest a place on Earth lies from the origin of any projected CRS,
#: metres, with room to spare (the equator is 40,075 km long; EPSG:3857 ends
#: at 20,037 km): a coordinate beyond it is no place in any CRS.
MAX_PROJECTED_METRES: Final[float] = 1e8


def assign_crs_hint(crs: CRS | None, whose: str, out: str = "out.gpkg") -> str:
    """How to give a vector file that names no CRS the one it is used with.

    Args:
        crs: the CRS of the imagery or map the file is read for, or None
            where none is known.
        whose: what *crs* belongs to, e.g. ``"the map"``.
        out: the file ogr2ogr writes, in the hint.

    Returns:
        E.g. "`ogr2ogr -a_srs EPSG:32630 out.gpkg IN` if they are in
        EPSG:32630, the CRS of the map"; without an EPSG code for *crs*, the
        command with ``EPSG:CODE`` to fill in.
    """
    authority = None if crs is None else crs.to_authority()
    if authority is None:
        return (
            f"`ogr2ogr -a_srs EPSG:CODE {out} IN` with the EPSG code of the CRS "
            "its coordinates are in"
        )
    code = ":".join(authority)
    return f"`ogr2ogr -a_srs {code} {out} IN` if they are in {code}, the CRS of {whose}"


def not_finite(geometries: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Which geometries have a NaN or infinite coordinate.

    Args:
        geometries: shapely geometries (or None), ``[N]``.

    Returns:
        ``[N]``, True where a coordinate is not a finite number.
    """
    coordinates, owner = shapely.get_coordinates(geometries, return_index=True)
    flags = np.zeros(len(geometries), dtype=bool)
    flags[owner[~np.isfinite(coordinates).all(axis=1)]] = True
    return flags


def _metres_per_unit(crs: CRS) -> float:
    """Metres in one unit of a projected CRS's first axis (1 when it names none)."""
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else None
    return float(factor) if factor else 1.0


def off_earth_fault(
    what: str, geometries: npt.NDArray[Any], crs: CRS, fix: str
) -> str | None:
    """Why the coordinates of vector features cannot be places on Earth in their CRS.

    In a geographic CRS a coordinate must lie within ±180 and ±90 degrees; in
    a projected one within :data:`MAX_PROJECTED_METRES` of the origin. Either
    way, a coordinate beyond :data:`MAX_PROJECTED_METRES` (taken as metres in
    a geographic CRS) is a place in no CRS at all, e.g. ±1e300.

    Args:
        what: the file, as messages name it, e.g. ``"Label file 'a.gpkg'"``.
        geometries: the features in *crs*, ``[N]``, None where left out
            (no geometry, or coordinates that are not numbers).
        crs: their CRS.
        fix: how to give the file its CRS (see :func:`assign_crs_hint`), for
            degrees that are not degrees.

    Returns:
        One sentence naming the file, its extent, the first such feature by
        row (1-based) and what to do; None where every coordinate can be a
        place on Earth.
    """
    bounds = shapely.bounds(geometries)  # NaN where None
    factor = 1.0 if crs.is_geographic else _metres_per_unit(crs)
    far = (np.abs(bounds) > MAX_PROJECTED_METRES / factor).any(axis=1)
    if crs.is_geographic:
        outside = (np.abs(bounds[:, 0::2]) > 180).any(axis=1) | (
            np.abs(bounds[:, 1::2]) > 90
        ).any(axis=1)
    else:
        outside = far
    rows = np.flatnonzero(outside)
    if not rows.size:
        return None
    extent = [round(float(v), 1) for v in shapely.total_bounds(geometries)]
    if far.any():
        return (
            f"{what} holds {int(far.sum()):,} feature(s) with coordinates far "
            f"beyond any place on Earth (e.g. row {int(np.flatnonzero(far)[0]) + 1}"
            f"; the file's extent in {crs.name} is {extent}); fix or remove "
            "them in the file."
        )
    return (
        f"{what} is in {crs.name} degrees, but its coordinates {extent} are not "
        f"longitude/latitude (e.g. row {int(rows[0]) + 1}; a GeoJSON is lon/lat "
        f"unless it names a CRS); give the file its CRS, e.g. {fix}."
    )
