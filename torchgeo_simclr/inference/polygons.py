"""Irrigated areas of a class map as polygons of connected regions, strip by strip."""

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..constants import IRRIGATED

#: Square metres in a hectare.
M2_PER_HA = 10_000.0

#: Pixels read at once (a strip of whole rows): 2048 x 2048 px, 4 MB of classes
#: and 16 MB of probabilities, whatever the map's width.
STRIP_PIXELS = 2**22


def irrigated_polygons(
    classes: Path,
    probability: Path,
    min_area_ha: float = 0.5,
    simplify: float | None = None,
    rows_per_strip: int | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the connected irrigated regions of a class map.

    The map is polygonised one strip of rows at a time; regions cut by a strip
    boundary are merged back afterwards, so the result does not depend on
    *rows_per_strip* while memory stays at one strip (plus the polygons). Each
    region's mean probability is summed over the same strips, once for all
    regions.

    Args:
        classes: uint8 class map (1 = irrigated).
        probability: the matching probability map, for each polygon's mean.
        min_area_ha: drop regions smaller than this, hectares.
        simplify: simplification tolerance, CRS units (default: half a pixel,
            which removes the staircase of pixel edges but no pixel).
        rows_per_strip: rows read at once, 1 or more (default: as many as
            hold :data:`STRIP_PIXELS`).

    Returns:
        One row per region: ``area_ha``, ``mean_probability`` (over the
        region's pixels) and ``geometry`` in the map's CRS, largest first.

    Raises:
        ValueError: if *rows_per_strip* is below 1.
    """
    if rows_per_strip is not None and rows_per_strip < 1:
        msg = f"rows_per_strip must be 1 or more, got {rows_per_strip}."
        raise ValueError(msg)
    pieces: list[shapely.Geometry] = []
    edges: list[float] = []
    with rasterio.open(classes) as src:
        crs, res = src.crs, src.res[0]
        origin = (src.transform.c, src.transform.f)
        rows = rows_per_strip or max(1, STRIP_PIXELS // src.width)
        for window in _strips(src, rows):
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
        frame["mean_probability"] = _means_inside(src, list(frame.geometry), rows)
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


def _strips(src: DatasetReader, rows: int) -> list[Window]:
    """Windows of *rows* whole rows each, top to bottom, over an open raster."""
    return [
        Window(0, row, src.width, min(rows, src.height - row))
        for row in range(0, src.height, rows)
    ]


def _means_inside(
    src: DatasetReader, regions: Sequence[shapely.Geometry], rows: int
) -> list[float]:
    """Mean of an open raster's valid pixels inside each of *regions*.

    A pixel belongs to a region when its centre lies inside it (as in
    :func:`rasterio.features.geometry_mask`); the regions must not overlap.
    The raster is read *rows* rows at a time, each strip once for all regions.
    """
    if not regions:
        return []
    sums = np.zeros(len(regions) + 1)
    counts = np.zeros(len(regions) + 1)
    tree = shapely.STRtree(regions)
    for window in _strips(src, rows):
        inside = tree.query(shapely.box(*src.window_bounds(window)))
        if inside.size == 0:
            continue
        # Pixel -> 1 + index of the region it belongs to, 0 outside them all.
        ids = rasterio.features.rasterize(
            zip((regions[i] for i in inside), inside + 1, strict=True),
            out_shape=(window.height, window.width),
            transform=src.window_transform(window),
            dtype="int32",
        )
        values = src.read(1, window=window, masked=True)
        counted = (ids > 0) & ~np.ma.getmaskarray(values)
        ids = ids[counted]
        sums += np.bincount(ids, values.data[counted], minlength=sums.size)
        counts += np.bincount(ids, minlength=counts.size)
    with np.errstate(invalid="ignore"):  # a region without valid pixels: NaN
        means = sums[1:] / counts[1:]
    return [float(mean) for mean in means]
