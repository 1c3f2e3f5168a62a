"""Irrigated areas of a class map as polygons of connected regions, strip by strip."""

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from scipy import ndimage

from ..constants import AREA_DECIMALS, IRRIGATED, M2_PER_HA, UNKNOWN_DATE

#: Decimals of ``mean_prob``.
PROBABILITY_DECIMALS = 3

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
    region's mean probability is summed over its pixels as they are traced.

    Args:
        classes: uint8 class map (1 = irrigated).
        probability: the matching probability map, for each polygon's mean.
        min_area_ha: drop regions smaller than this, hectares.
        simplify: simplification tolerance, CRS units (default: half a pixel,
            which removes the staircase of pixel edges but no pixel).
        rows_per_strip: rows read at once, 1 or more (default: as many as
            hold :data:`STRIP_PIXELS`).

    Returns:
        One row per region: ``area_ha`` (to 0.01 ha) and ``mean_prob`` (the
        mean probability over the region's pixels, to 3 decimals), so the
        attribute table reads cleanly, and ``geometry`` in the map's CRS,
        largest first. Column names have 10 characters at most, so that a
        Shapefile export keeps them.

    Raises:
        ValueError: if *rows_per_strip* is below 1.
    """
    if rows_per_strip is not None and rows_per_strip < 1:
        msg = f"rows_per_strip must be 1 or more, got {rows_per_strip}."
        raise ValueError(msg)
    pieces: list[shapely.Geometry] = []
    # Per piece: the sum of its probabilities and its number of pixels.
    sums: list[float] = []
    counts: list[int] = []
    edges: list[float] = []
    with rasterio.open(classes) as src, rasterio.open(probability) as values_src:
        crs, res = src.crs, src.res[0]
        origin = (src.transform.c, src.transform.f)
        rows = rows_per_strip or max(1, STRIP_PIXELS // src.width)
        for row in range(0, src.height, rows):
            window = Window(0, row, src.width, min(rows, src.height - row))
            mask = src.read(1, window=window) == IRRIGATED
            if not mask.any():
                continue
            # The 4-connected regions, as rasterio.features.shapes traces them.
            labels, n = ndimage.label(mask)
            values = values_src.read(1, window=window, masked=True)
            counted = mask & ~np.ma.getmaskarray(values)
            label_sums = np.bincount(
                labels[counted], values.data[counted], minlength=n + 1
            )
            label_counts = np.bincount(labels[counted], minlength=n + 1)
            transform = src.window_transform(window)
            shapes = rasterio.features.shapes(labels, mask=mask, transform=transform)
            for geometry, label in shapes:
                pieces.append(shapely.geometry.shape(geometry))
                sums.append(float(label_sums[int(label)]))
                counts.append(int(label_counts[int(label)]))
            edges.append(transform.f)
    regions, owner = _merge_across(pieces, edges[1:], res, origin)
    with np.errstate(invalid="ignore"):  # a region without valid pixels: NaN
        means = np.bincount(owner, sums, len(regions)) / np.bincount(
            owner, counts, len(regions)
        )
    tolerance = res / 2 if simplify is None else simplify
    frame = gpd.GeoDataFrame({"mean_prob": means}, geometry=regions, crs=crs)
    frame["area_ha"] = frame.geometry.area / M2_PER_HA
    frame = frame[frame["area_ha"] >= min_area_ha].copy()
    frame["geometry"] = frame.geometry.simplify(tolerance, preserve_topology=True)
    frame = frame.sort_values("area_ha", ascending=False).reset_index(drop=True)
    frame = frame.round({"area_ha": AREA_DECIMALS, "mean_prob": PROBABILITY_DECIMALS})
    return frame[["area_ha", "mean_prob", "geometry"]]


def with_provenance(
    regions: gpd.GeoDataFrame,
    dates: Sequence[str],
    checkpoint: str,
    checkpoint_id: str,
    threshold: float,
) -> gpd.GeoDataFrame:
    """*regions* with what made their map on every row, to filter on in a GIS.

    The imagery's acquisition is a range, ``acq_from`` (acquired from) to
    ``acq_to`` (the same day for a map of one date), rather than a list:
    two date columns compare and filter as dates in QGIS (and drive its
    temporal controller), which a list in one text column does not. The range
    is the whole map's, not each region's; the list itself is in the summary
    and the GeoTIFFs' tags.

    Args:
        regions: the regions, e.g. from :func:`irrigated_polygons`.
        dates: ISO sensing dates (``YYYY-MM-DD``) of the map's pixels;
            :data:`~torchgeo_simclr.constants.UNKNOWN_DATE`, for scenes whose
            names carry no date, is left out of the range.
        checkpoint: the checkpoint's absolute path.
        checkpoint_id: a short id of the checkpoint's content (column
            ``ckpt_id``).
        threshold: probability (0-1) above which a pixel is irrigated.

    Returns:
        A copy with, after the regions' own columns, ``acq_from`` and
        ``acq_to`` (Arrow ``date32``, so that a GeoPackage written with
        ``use_arrow=True`` types them ``DATE``, even in an empty layer; null
        where no date is known), ``checkpoint``, ``ckpt_id`` and
        ``threshold``; ``geometry`` stays last. The names are those that
        ``field-stats`` gives the same values, of 10 characters at most, so
        that a Shapefile export keeps them (no truncation, no collision).
    """
    known = [date.fromisoformat(day) for day in dates if day != UNKNOWN_DATE]
    frame = regions.copy()
    rows = frame.index
    day = pd.ArrowDtype(pa.date32())
    frame["acq_from"] = pd.Series(min(known, default=None), rows, day)
    frame["acq_to"] = pd.Series(max(known, default=None), rows, day)
    frame["checkpoint"] = pd.Series(checkpoint, rows, object)
    frame["ckpt_id"] = pd.Series(checkpoint_id, rows, object)
    frame["threshold"] = pd.Series(threshold, rows, np.float64)
    geometry = frame.geometry.name
    return frame[[*frame.columns.drop(geometry), geometry]]


def _merge_across(
    pieces: list[shapely.Geometry],
    edges: list[float],
    res: float,
    origin: tuple[float, float],
) -> tuple[list[shapely.Geometry], npt.NDArray[np.int64]]:
    """Union pieces that meet across strip boundaries (horizontal lines at *edges*).

    Coordinates are snapped to a tenth of a pixel from the map's *origin*
    (its top-left corner), so vertices stay on the pixel edges wherever the
    grid starts.

    Returns:
        The regions, and for each piece the index of the region it is part of.
    """
    owner = np.arange(len(pieces))
    if not edges or not pieces:
        return pieces, owner
    tree = shapely.STRtree(pieces)
    lines = [shapely.LineString([(-1e12, y), (1e12, y)]) for y in edges]
    cut = np.unique(
        np.concatenate([tree.query(line, predicate="intersects") for line in lines])
    )
    if cut.size == 0:
        return pieces, owner
    keep = np.setdiff1d(owner, cut)
    # Pieces sharing an edge on a strip boundary fuse into one region; a snap
    # to a tenth of a pixel absorbs float noise in the edge coordinates.
    shift = np.asarray(origin)
    local = shapely.transform([pieces[i] for i in cut], lambda xy: xy - shift)
    merged = shapely.unary_union(shapely.set_precision(local, res / 10))
    parts = shapely.transform(shapely.get_parts(merged), lambda xy: xy + shift)
    # A cut piece is part of the region its inner point (half a pixel or more
    # from its edges, far beyond the snap) lies in.
    inner = shapely.point_on_surface([pieces[i] for i in cut])
    point, part = shapely.STRtree(parts).query(inner, predicate="intersects")
    owner[keep] = np.arange(len(keep))
    owner[cut[point]] = len(keep) + part
    return [pieces[i] for i in keep] + list(parts), owner
