"""Irrigated areas of a class map as polygons of connected regions, strip by strip."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from rasterio.io import DatasetReader
from rasterio.windows import Window, from_bounds

from ..constants import IRRIGATED

#: Square metres in a hectare.
M2_PER_HA = 10_000.0


def irrigated_polygons(
    classes: Path,
    probability: Path,
    min_area_ha: float = 0.5,
    simplify: float | None = None,
    rows_per_strip: int = 1024,
) -> gpd.GeoDataFrame:
    """Polygons of the connected irrigated regions of a class map.

    The map is polygonised one strip of rows at a time; regions cut by a strip
    boundary are merged back afterwards, so the result does not depend on
    *rows_per_strip* while memory stays at one strip (plus the polygons).

    Args:
        classes: uint8 class map (1 = irrigated).
        probability: the matching probability map, for each polygon's mean.
        min_area_ha: drop regions smaller than this, hectares.
        simplify: simplification tolerance, CRS units (default: half a pixel,
            which removes the staircase of pixel edges but no pixel).
        rows_per_strip: rows polygonised at once.

    Returns:
        One row per region: ``area_ha``, ``mean_probability`` (over the
        region's pixels) and ``geometry`` in the map's CRS, largest first.
    """
    pieces: list[shapely.Geometry] = []
    edges: list[float] = []
    with rasterio.open(classes) as src:
        crs, res = src.crs, src.res[0]
        origin = (src.transform.c, src.transform.f)
        for row in range(0, src.height, rows_per_strip):
            window = Window(0, row, src.width, min(rows_per_strip, src.height - row))
            data = src.read(1, window=window)
            mask = data == IRRIGATED
            if not mask.any():
                continue
            shapes = rasterio.features.shapes(
                data, mask=mask, transform=src.window_transform(window)
            )
            pieces.extend(shapely.geometry.shape(geometry) for geometry, _ in shapes)
            edges.append(src.window_transform(window).f)
    regions = _merge_across(pieces, edges[1:], res, origin)
    tolerance = res / 2 if simplify is None else simplify
    frame = gpd.GeoDataFrame(geometry=regions, crs=crs)
    frame["area_ha"] = frame.geometry.area / M2_PER_HA
    frame = frame[frame["area_ha"] >= min_area_ha].copy()
    with rasterio.open(probability) as src:
        frame["mean_probability"] = [
            _mean_inside(src, geometry) for geometry in frame.geometry
        ]
    frame["geometry"] = frame.geometry.simplify(tolerance, preserve_topology=True)
    frame = frame.sort_values("area_ha", ascending=False).reset_index(drop=True)
    return frame[["area_ha", "mean_probability", "geometry"]]


def _merge_across(
    pieces: list[shapely.Geometry],
    edges: list[float],
    res: float,
    origin: tuple[float, float],
) -> list[shapely.Geometry]:
    """Union pieces that meet across strip boundaries (horizontal lines at *edges*).

    Coordinates are snapped to a tenth of a pixel from the map's *origin*
    (its top-left corner), so vertices stay on the pixel edges wherever the
    grid starts.
    """
    if not edges or not pieces:
        return pieces
    tree = shapely.STRtree(pieces)
    lines = [shapely.LineString([(-1e12, y), (1e12, y)]) for y in edges]
    cut = np.unique(
        np.concatenate([tree.query(line, predicate="intersects") for line in lines])
    )
    if cut.size == 0:
        return pieces
    crossing = set(cut.tolist())
    keep = [piece for i, piece in enumerate(pieces) if i not in crossing]
    # Pieces sharing an edge on a strip boundary fuse into one region; a snap
    # to a tenth of a pixel absorbs float noise in the edge coordinates.
    shift = np.asarray(origin)
    local = shapely.transform([pieces[i] for i in cut], lambda xy: xy - shift)
    merged = shapely.unary_union(shapely.set_precision(local, res / 10))
    parts = shapely.transform(shapely.get_parts(merged), lambda xy: xy + shift)
    return keep + list(parts)


def _mean_inside(src: DatasetReader, geometry: shapely.Geometry) -> float:
    """Mean of an open raster's valid pixels inside *geometry*."""
    window = from_bounds(*geometry.bounds, transform=src.transform)
    window = window.round_offsets().round_lengths()
    values = src.read(1, window=window, masked=True)
    inside = rasterio.features.geometry_mask(
        [geometry],
        out_shape=values.shape,
        transform=src.window_transform(window),
        invert=True,
    )
    selected = values[inside]
    return float(selected.mean()) if selected.count() else float("nan")
