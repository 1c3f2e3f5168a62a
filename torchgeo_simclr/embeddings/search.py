"""Search an embedding index by example: the patches most like a query.

A query is a point (the indexed patch under it), a polygon (the mean of the
patches whose centres lie inside) or another index file (the mean of its
rows). Similarity is the cosine of the angle between embeddings, computed
exactly over every row of the index. Polygons of places already seen (e.g.
labelled hits of an earlier search) can be left out of the hits.
"""

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio.errors
import shapely
from pyproj import CRS, Transformer

from ..geopackage import STYLE_TABLE, write_geopackage
from ..inference.styles import hit_style
from ..lonlat import LONLAT, check_latitudes, lonlat_extent, shapes_extent
from ..models.checkpoint import BACKBONE_KINDS, read_checkpoint
from ..outputs import (
    check_output_folder,
    not_a_file,
    partial_path,
    png_fault,
    refuse_unless_ours,
    same_file,
)
from .index import IndexInfo, checkpoint_id, read_embeddings, read_info
from .sheet import SHEET_KIND, contact_sheet, read_thumbnails

#: Output formats of the hits, by suffix: OGR driver.
DRIVERS: Final[dict[str, str]] = {".gpkg": "GPKG", ".geojson": "GeoJSON"}

#: Columns of a hits file besides its geometry, as search writes them: an
#: existing file with others is not replaced, even with ``--overwrite``.
HIT_COLUMNS: Final[tuple[str, ...]] = (
    "rank",
    "similarity",
    "lon",
    "lat",
    "date",
    "row",
    "col",
)

#: What each file a search reads is, by the option that gives it (messages).
INPUTS: Final[dict[str, str]] = {
    "--index": "the index searched",
    "--query": "the query index",
    "--geojson": "the query polygon",
    "--exclude": "the polygons left out",
    "--checkpoint": "the checkpoint",
}

#: Polygon files read as GeoParquet (by suffix); any other goes to GDAL.
PARQUET_SUFFIXES: Final[tuple[str, ...]] = (".parquet", ".geoparquet")

#: The polygon file formats read, for messages.
POLYGON_FORMATS: Final[str] = "a GeoJSON file, GeoPackage, Shapefile or GeoParquet file"

#: What to draw instead of a file without polygons, by option (messages).
NO_POLYGON_FIX: Final[dict[str, str]] = {
    "--geojson": "draw the field as a polygon, or pass a point with --lonlat",
    "--exclude": "draw the places to leave out as polygons",
}

#: Heading of the contact sheet: what its tile titles mean.
SHEET_HEADING: Final[str] = (
    "#rank, cosine similarity to the query (1 = same)\n"
    "lon, lat of the patch centre (degrees)"
)

#: Most query patches drawn on the contact sheet (polygon and file queries).
SHEET_QUERIES: Final[int] = 4

#: Most hits drawn on the contact sheet (the best ones; all are in the file).
SHEET_HITS: Final[int] = 100

#: Rows of an index read at once.
READ_ROWS: Final[int] = 16384

#: Rows of the index multiplied at once by :func:`top_k` (512 MiB of float32
#: at 512 dimensions).
CHUNK_ROWS: Final[int] = 262144


@dataclass(frozen=True)
class EmbeddingIndex:
    """An index in memory: where each patch is, and its unit-length embedding."""

    #: The file.
    path: Path
    #: What the index was made from.
    info: IndexInfo
    #: Every column but ``embedding``, one row per patch.
    table: pa.Table
    #: Embeddings scaled to unit length, float32 ``[N, dim]``.
    matrix: npt.NDArray[np.float32]
    #: Footprints ``[N, 4]`` ``(xmin, ymin, xmax, ymax)`` in the index CRS.
    bounds: npt.NDArray[np.float64]

    @property
    def crs(self) -> CRS:
        """CRS of the footprints."""
        return CRS.from_wkt(self.info.crs)

    def lonlat_extent(self) -> list[float]:
        """Extent of the indexed patches, ``[min lon, min lat, max lon, max lat]``.

        Returns:
            Degrees, 4 decimals (empty for an index without rows).
        """
        if not len(self.bounds):
            return []
        xmin, ymin = self.bounds[:, :2].min(axis=0)
        xmax, ymax = self.bounds[:, 2:].max(axis=0)
        return lonlat_extent((xmin, ymin, xmax, ymax), self.crs)


def unit_rows(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Scale each row to unit length (all-zero rows stay zero).

    Args:
        values: ``[N, D]``.

    Returns:
        float32 ``[N, D]``, a new array.
    """
    matrix = np.array(values, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    matrix /= np.where(norms > 0, norms, 1)[:, None]
    return matrix


def load_index(path: str | os.PathLike[str], option: str = "--index") -> EmbeddingIndex:
    """Read an index for searching, row group by row group.

    The embeddings go straight into one preallocated matrix, scaled to unit
    length on the way, so memory peaks at the matrix plus one batch of rows.

    Args:
        path: an index written by :func:`~torchgeo_simclr.embeddings.embed_region`.
        option: how errors name the file.

    Returns:
        The index with unit-length embeddings and patch footprints.
    """
    info = read_info(path, option)
    # Arrow's pre-buffering keeps every row group it has read in memory.
    file = pq.ParquetFile(path, pre_buffer=False)
    matrix = np.empty((file.metadata.num_rows, info.dim), dtype=np.float32)
    parts = [file.schema_arrow.empty_table().drop_columns(["embedding"])]
    start = 0
    for batch in file.iter_batches(batch_size=READ_ROWS):
        table = pa.Table.from_batches([batch])
        matrix[start : start + len(table)] = unit_rows(read_embeddings(table))
        parts.append(table.drop_columns(["embedding"]))
        start += len(table)
    table = pa.concat_tables(parts)
    bounds = info.footprints(
        table.column("row").to_numpy(), table.column("col").to_numpy()
    )
    return EmbeddingIndex(Path(path), info, table, matrix, bounds)


def top_k(
    matrix: npt.NDArray[np.float32],
    query: npt.ArrayLike,
    k: int,
    chunk_rows: int = CHUNK_ROWS,
    exclude: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The *k* rows of *matrix* with the largest dot product with *query*.

    Exact search: *chunk_rows* rows at a time are multiplied by the query and
    their best *k* kept (``np.argpartition``); memory beyond the matrix stays
    at one chunk of products. With unit-length rows and query the products
    are cosine similarities.

    Args:
        matrix: ``[N, D]``.
        query: ``[D]``.
        k: rows to return (fewer when fewer rows are left).
        chunk_rows: rows multiplied at once.
        exclude: rows never returned, ``[M]`` indices.

    Returns:
        ``[k]`` row indices and ``[k]`` products, best first (ties by row).

    Raises:
        ValueError: if *k* or *chunk_rows* is below 1 or the query's length
            differs from the matrix's width.
    """
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    if vector.size != matrix.shape[1]:
        msg = (
            f"the query has {vector.size} dimensions but the index {matrix.shape[1]}; "
            "search with a query embedded by the same checkpoint."
        )
        raise ValueError(msg)
    if k < 1 or chunk_rows < 1:
        msg = f"k={k} and chunk_rows={chunk_rows} must be at least 1; pass e.g. k=20."
        raise ValueError(msg)
    skip = np.sort(np.asarray([] if exclude is None else exclude, dtype=np.int64))
    rows: list[npt.NDArray[np.int64]] = []
    scores: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(matrix), chunk_rows):
        products = matrix[start : start + chunk_rows] @ vector
        stop = start + len(products)
        inside = skip[np.searchsorted(skip, start) : np.searchsorted(skip, stop)]
        products[inside - start] = -np.inf
        best = np.arange(len(products))
        if len(products) > k:
            best = np.argpartition(products, len(products) - k)[-k:]
        rows.append(best + start)
        scores.append(products[best])
    index = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    score = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
    allowed = np.isfinite(score)
    index, score = index[allowed], score[allowed]
    order = np.lexsort((index, -score))[:k]
    return index[order].astype(np.int64), score[order].astype(np.float32)


@dataclass(frozen=True)
class Query:
    """What a search looks for, and where it came from."""

    #: Unit-length query embedding ``[D]``.
    vector: npt.NDArray[np.float32]
    #: Rows of the searched index whose embeddings make the query (empty when
    #: they come from another file).
    rows: npt.NDArray[np.int64]
    #: Footprints of the query's patches, ``[M, 4]`` in :attr:`crs`.
    footprints: npt.NDArray[np.float64]
    #: CRS of :attr:`footprints`.
    crs: CRS
    #: Imagery directory of the query's patches.
    root: Path
    #: Pixel size of that imagery, CRS units.
    res: float
    #: What the query is made of, for the user, e.g. ``"mean of 4 patches
    #: centred inside the 2 polygons of fields.geojson"``.
    about: str


def plural(count: int, noun: str) -> str:
    """*count* and *noun*, with an ``s`` unless it is 1 (``"1 patch"``).

    Args:
        count: how many.
        noun: singular noun; ``patch`` becomes ``patches``.

    Returns:
        E.g. ``"4 patches"``, ``"1 polygon"``, with thousands separators.
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun}{'es' if noun.endswith('ch') else 's'}"


def _outside(
    index: EmbeddingIndex, what: str, fix: str, within: shapely.Geometry
) -> ValueError:
    """The error for a query that falls on no indexed patch.

    Args:
        index: the searched index.
        what: the query, as the message names it.
        fix: what to do.
        within: the query's geometry in the index's CRS.

    Returns:
        The error to raise.
    """
    extent = shapely.box(*index.bounds[:, :2].min(0), *index.bounds[:, 2:].max(0))
    where = (
        "lies in the indexed extent but on no indexed patch"
        if extent.intersects(within)
        else "lies outside the indexed area"
    )
    msg = (
        f"query {what} {where} of --index {str(index.path)!r}, which covers "
        f"lon/lat {index.lonlat_extent()} (patches more than half nodata, e.g. "
        f"under masked clouds, are not indexed); {fix}."
    )
    return ValueError(msg)


def _index_query(
    index: EmbeddingIndex, rows: npt.NDArray[np.int64], root: Path | None, about: str
) -> Query:
    """A query made of rows of the searched index: their mean embedding.

    Its thumbnails come from *root*, else from the imagery the index records;
    *about* says what it is made of (:attr:`Query.about`).
    """
    return Query(
        vector=unit_rows(index.matrix[rows].mean(axis=0, keepdims=True))[0],
        rows=rows,
        footprints=index.bounds[rows],
        crs=index.crs,
        root=root or Path(index.info.root),
        res=index.info.res,
        about=about,
    )


def point_query(
    index: EmbeddingIndex, lon: float, lat: float, root: Path | None = None
) -> Query:
    """The indexed patch under a point (of several, the one centred nearest).

    Args:
        index: the searched index.
        lon: longitude, degrees.
        lat: latitude, degrees.
        root: imagery directory of the thumbnails (default: the one recorded
            in the index).

    Returns:
        The query.

    Raises:
        ValueError: if the latitude is beyond +-90 degrees (lon/lat swapped)
            or no indexed patch covers the point.
    """
    check_latitudes("--lonlat", (lon, lat), LONLAT)
    to_index = Transformer.from_crs(LONLAT, index.crs, always_xy=True)
    x, y = to_index.transform(lon, lat)
    b = index.bounds
    under = np.flatnonzero(
        (b[:, 0] <= x) & (x < b[:, 2]) & (b[:, 1] < y) & (y <= b[:, 3])
    )
    if not len(under):
        raise _outside(
            index,
            f"point ({lon}, {lat})",
            "pass a point on a patch with data",
            shapely.Point(x, y),
        )
    centres = (b[under, :2] + b[under, 2:]) / 2
    nearest = under[np.argmin(np.hypot(centres[:, 0] - x, centres[:, 1] - y))]
    rows = np.array([nearest], dtype=np.int64)
    return _index_query(index, rows, root, f"the patch under ({lon}, {lat})")


def _projected_as_lonlat(
    shapes: gpd.GeoSeries, path: str | os.PathLike[str], option: str
) -> None:
    """Refuse lon/lat polygons whose coordinates cannot be degrees.

    A GeoJSON file without a ``crs`` member is lon/lat by the standard (GDAL
    reads it as EPSG:4326), so one saved in metres without its CRS would be
    read as degrees far beyond the Earth.

    Args:
        shapes: the file's polygons, in the CRS read (None: taken as lon/lat).
        path: the file, for the message.
        option: the option that gave it, for the message.

    Raises:
        ValueError: if the CRS is lon/lat (or none) and a coordinate is beyond
            +-180 (x) or +-90 (y).
    """
    crs = shapes.crs
    if crs is not None and not CRS.from_user_input(crs).is_geographic:
        return
    xmin, ymin, xmax, ymax = (float(v) for v in shapes.total_bounds)
    if xmin >= -180 and xmax <= 180 and ymin >= -90 and ymax <= 90:
        return
    if crs is None:
        read_as = "names no CRS, so it is read as lon/lat"
    else:
        read_as = f"is read as lon/lat ({CRS.from_user_input(crs).to_string()}"
        if Path(path).suffix.lower() in {".geojson", ".json"}:
            read_as += ", as a GeoJSON file without a crs member is by the standard"
        read_as += ")"
    extent = [round(v, 1) for v in (xmin, ymin, xmax, ymax)]
    msg = (
        f"{option} {str(path)!r} {read_as}, but its coordinates {extent} look "
        "like projected metres, not degrees; save the file with its CRS (in "
        "QGIS, Export > Save Features As with the layer's CRS, or as a "
        "GeoPackage, which stores it)."
    )
    raise ValueError(msg)


def _spatial_layer(path: str | os.PathLike[str], option: str) -> str | None:
    """The layer of a GDAL file to read: the first with geometry.

    A search's hits GeoPackage holds its style table beside the hits; that
    table is no layer to choose from.

    Args:
        path: the file.
        option: the option that gave it, for the warning.

    Returns:
        The layer's name; None where GDAL cannot list the layers (reading the
        file then says why).

    Warns:
        UserWarning: if several layers have geometry (only the first is read).
    """
    try:
        layers = pyogrio.list_layers(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return None
    spatial = [str(name) for name, geometry in layers if geometry is not None]
    if len(spatial) > 1:
        warnings.warn(
            f"{option} {str(path)!r} has {len(spatial)} layers with geometry "
            f"{spatial}, and only the first, {spatial[0]!r}, is read; save the "
            "polygons you mean as a file of their own to use another.",
            stacklevel=3,
        )
    return spatial[0] if spatial else None


def read_polygons(path: str | os.PathLike[str], option: str) -> gpd.GeoSeries:
    """The polygons of a vector file, in its CRS.

    GeoJSON, GeoPackage (its first layer with geometry, e.g. the hits of a
    search), Shapefile and any other file GDAL reads, or GeoParquet (by its
    suffix); a file without a CRS is taken as lon/lat. Other geometries are
    skipped.

    Args:
        path: the file.
        option: the option that gave it (``--geojson`` or ``--exclude``),
            for messages.

    Returns:
        ``[M]`` valid polygons and multipolygons, with the file's CRS.

    Raises:
        FileNotFoundError: if *path* does not exist or is a folder.
        ValueError: if the file is unreadable, is an embedding index given as
            a query polygon, holds no polygon, or is lon/lat with coordinates
            that cannot be degrees.

    Warns:
        UserWarning: if the file has several layers with geometry.
    """
    name = str(path)
    if not Path(path).is_file():
        missing = not_a_file(path)
        msg = f"{option} {name!r} {missing}; pass {POLYGON_FORMATS} of polygons."
        raise FileNotFoundError(msg)
    if name.lower().endswith(PARQUET_SUFFIXES):
        try:
            shapes = gpd.read_parquet(path)
        except (OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0]
            msg = (
                f"{option} {name!r} is not a GeoParquet file ({reason}); pass "
                f"{POLYGON_FORMATS} of polygons."
            )
            raise ValueError(msg) from error
        if option == "--geojson" and "embedding" in shapes.columns:
            msg = (
                f"--geojson {name!r} is an embedding index, not polygons; pass it "
                "as --query to search by the mean of its rows."
            )
            raise ValueError(msg)
    else:
        try:
            shapes = gpd.read_file(path, layer=_spatial_layer(path, option))
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
            msg = (
                f"{option} {name!r} is not a vector file GDAL reads ({error}); "
                f"pass {POLYGON_FORMATS} of polygons (an index goes to --query)."
            )
            raise ValueError(msg) from error
    polygonal = shapes.geometry[shapes.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polygonal.empty:
        found = sorted(set(shapes.geom_type.dropna())) or ["no geometry"]
        msg = (
            f"{option} {name!r} holds no polygon (found {', '.join(found)}); "
            f"{NO_POLYGON_FIX.get(option, 'pass a file of polygons')}."
        )
        raise ValueError(msg)
    _projected_as_lonlat(polygonal, path, option)
    if polygonal.crs is None:
        polygonal = polygonal.set_crs(LONLAT)
    return polygonal.make_valid()


def polygon_query(
    index: EmbeddingIndex, path: str | os.PathLike[str], root: Path | None = None
) -> Query:
    """The indexed patches whose centres lie inside the polygons of a file.

    Polygons smaller than a patch may hold no patch centre; then the patches
    they overlap make the query.

    Args:
        index: the searched index.
        path: a file of polygons, as :func:`read_polygons` reads: GeoJSON,
            GeoPackage, Shapefile or GeoParquet in any CRS (a file without a
            CRS is taken as lon/lat).
        root: imagery directory of the thumbnails (default: the one recorded
            in the index).

    Returns:
        The query (the patches' mean embedding).

    Raises:
        FileNotFoundError: if *path* does not exist or is a folder.
        ValueError: if the file is unreadable, holds no polygon, is lon/lat
            with coordinates that cannot be degrees, or no polygon overlaps
            an indexed patch.
    """
    polygonal = read_polygons(path, "--geojson")
    area = polygonal.to_crs(index.crs).union_all()
    centres = (index.bounds[:, :2] + index.bounds[:, 2:]) / 2
    inside = np.flatnonzero(shapely.contains_xy(area, centres[:, 0], centres[:, 1]))
    polygons = f"{plural(len(polygonal), 'polygon')} of {str(path)!r}"
    about = f"centred inside the {polygons}"
    if not len(inside):
        footprints = shapely.box(*index.bounds.T)
        inside = np.flatnonzero(shapely.intersects(area, footprints))
        about = f"under the {polygons} (none holds a patch centre)"
    if not len(inside):
        extent = lonlat_extent(polygonal.total_bounds, polygonal.crs)
        raise _outside(
            index,
            f"polygon {str(path)!r} (lon/lat {extent})",
            "draw it over indexed patches",
            area,
        )
    about = f"mean of {plural(len(inside), 'patch')} {about}"
    return _index_query(index, inside.astype(np.int64), root, about)


def file_query(
    index: EmbeddingIndex, path: str | os.PathLike[str], root: Path | None
) -> Query:
    """The mean embedding of the rows of another index file.

    Args:
        index: the searched index.
        path: an index made by ``embed`` with the same checkpoint.
        root: imagery directory of the query's patches (default: the one
            recorded in the file).

    Returns:
        The query.

    Raises:
        ValueError: if the file was made by another checkpoint or has no rows.

    Warns:
        UserWarning: if its patches are of another size than the index's.
    """
    query = load_index(path, option="--query")
    if query.info.checkpoint_id != index.info.checkpoint_id:
        msg = (
            f"--query {str(path)!r} was made by checkpoint "
            f"{query.info.checkpoint!r} (id {query.info.checkpoint_id}) but --index "
            f"{str(index.path)!r} by {index.info.checkpoint!r} (id "
            f"{index.info.checkpoint_id}), and embeddings of different encoders "
            f"cannot be compared; re-run embed for the query with "
            f"{index.info.checkpoint!r}."
        )
        raise ValueError(msg)
    if not len(query.matrix):
        msg = f"--query {str(path)!r} has no rows; embed a region with data."
        raise ValueError(msg)
    if query.info.patch_size != index.info.patch_size:
        warnings.warn(
            f"--query {str(path)!r} holds {query.info.patch_size} px patches but "
            f"--index {str(index.path)!r} {index.info.patch_size} px ones; the "
            "encoder sees a different scale in each, so similarities mix "
            "appearance and size (embed the query with --patch-size "
            f"{index.info.patch_size} to compare like with like).",
            stacklevel=2,
        )
    return Query(
        vector=unit_rows(query.matrix.mean(axis=0, keepdims=True))[0],
        rows=np.zeros(0, dtype=np.int64),
        footprints=query.bounds,
        crs=query.crs,
        root=root or Path(query.info.root),
        res=query.info.res,
        about=f"mean of {plural(len(query.matrix), 'patch')} of {str(path)!r}",
    )


def _rows_reached(
    index: EmbeddingIndex, shapes: npt.NDArray[np.object_]
) -> npt.NDArray[np.int64]:
    """Rows of the index whose patches a shape reaches more than half a pixel into.

    Each patch is shrunk by half a pixel before the test, so a shape that only
    touches a patch's edge, or overlaps it by the rounding of a reprojection,
    does not count.

    Args:
        index: the index.
        shapes: ``[M]`` shapely geometries in the index CRS.

    Returns:
        Sorted row indices.
    """
    if not len(shapes):
        return np.zeros(0, dtype=np.int64)
    xmin, ymin, xmax, ymax = shapely.total_bounds(shapes)
    b = index.bounds
    near = np.flatnonzero(
        (b[:, 0] < xmax) & (b[:, 2] > xmin) & (b[:, 1] < ymax) & (b[:, 3] > ymin)
    )
    inset = b[near] + index.info.res / 2 * np.array([1.0, 1.0, -1.0, -1.0])
    tree = shapely.STRtree(shapes)
    hit, _ = tree.query(shapely.box(*inset.T), predicate="intersects")
    return np.unique(near[hit]).astype(np.int64)


def overlapping(
    index: EmbeddingIndex, footprints: npt.NDArray[np.float64], crs: CRS
) -> npt.NDArray[np.int64]:
    """Rows of the index whose patches share pixels with any footprint.

    Args:
        index: the index.
        footprints: ``[M, 4]`` ``(xmin, ymin, xmax, ymax)`` in *crs*.
        crs: CRS of *footprints*.

    Returns:
        Sorted row indices.
    """
    boxes = shapely.box(*footprints.T)
    if crs != index.crs:
        boxes = gpd.GeoSeries(boxes, crs=crs).to_crs(index.crs).values
    return _rows_reached(index, np.asarray(boxes))


@dataclass(frozen=True)
class Exclusion:
    """Index rows left out of the hits, and the polygons that leave them out."""

    #: The polygon file (``--exclude``).
    path: Path
    #: How many polygons it holds.
    polygons: int
    #: Sorted rows of the index whose patches the polygons reach into.
    rows: npt.NDArray[np.int64]


def excluded_rows(
    index: EmbeddingIndex, polygons: gpd.GeoSeries, path: str | os.PathLike[str]
) -> Exclusion:
    """The rows of the index under polygons of places already seen.

    A patch is left out when a polygon reaches more than half a pixel into
    it: polygons that only touch its edge do not count.

    Args:
        index: the searched index.
        polygons: ``[M]`` polygons from *path*, any CRS
            (:func:`read_polygons`).
        path: their file, for the message.

    Returns:
        The rows to leave out (none, with a warning, if no polygon reaches an
        indexed patch).

    Warns:
        UserWarning: if no polygon reaches an indexed patch (a wrong file or
            CRS, as it leaves nothing out).
    """
    shapes = np.asarray(polygons.to_crs(index.crs).values)
    rows = _rows_reached(index, shapes)
    if not len(rows):
        warnings.warn(
            f"--exclude {str(path)!r} ({plural(len(polygons), 'polygon')}, lon/lat "
            f"{shapes_extent(polygons)}) overlaps no patch of --index "
            f"{str(index.path)!r}, which covers lon/lat {index.lonlat_extent()}, so "
            "it leaves nothing out; check that it is the file you meant and that "
            "its CRS is right.",
            stacklevel=2,
        )
    return Exclusion(Path(path), len(polygons), rows)


def distinct_places(
    index: EmbeddingIndex,
    rows: npt.NDArray[np.int64],
    similarity: npt.NDArray[np.float32],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The best *k* candidates whose patches share no pixel with a better one.

    Overlapping patches of one place (a stride below the patch size, or the
    last patch of a row or column, which ends flush with the imagery) look
    alike; each place is kept once, by its most similar patch.

    Args:
        index: the searched index.
        rows: candidate rows ``[N]``, indices into *index*, best first.
        similarity: their similarities ``[N]``.
        k: places to keep.

    Returns:
        Rows ``[<= k]`` and their similarities ``[<= k]``, best first.
    """
    # Half a pixel inside each patch: patches that only touch do not overlap.
    boxes = index.bounds[rows] + index.info.res / 2 * np.array([1.0, 1.0, -1.0, -1.0])
    kept: list[int] = []
    for i, (xmin, ymin, xmax, ymax) in enumerate(boxes):
        taken = boxes[kept]
        shared = (
            (xmin < taken[:, 2])
            & (xmax > taken[:, 0])
            & (ymin < taken[:, 3])
            & (ymax > taken[:, 1])
        )
        if not shared.any():
            kept.append(i)
            if len(kept) == k:
                break
    return rows[kept], similarity[kept]


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found and wrote."""

    #: The hits, best first: ``rank`` (1..k), ``similarity`` (cosine),
    #: ``lon``, ``lat``, ``date``, ``row``, ``col`` and the footprint, in the
    #: index CRS.
    hits: gpd.GeoDataFrame
    #: The hits file (GeoPackage or GeoJSON).
    out: Path
    #: The contact sheet (PNG).
    sheet: Path
    #: Rows of the index that make the query (empty for a file query).
    query_rows: npt.NDArray[np.int64]
    #: What the query is made of, e.g. ``"mean of 4 patches centred inside
    #: the 2 polygons of 'fields.geojson'"``.
    query: str
    #: The rows ``--exclude`` left out, and its file (None without one).
    excluded: Exclusion | None


def _hits_fault(path: Path) -> str | None:
    """Why an existing *path* is not a hits file of an earlier search, or None.

    A search writes one layer (beside the GeoPackage's style table) of
    :data:`HIT_COLUMNS`, no more: a column added since, e.g. the labels of
    hits, makes the file the user's.

    Args:
        path: a ``.gpkg`` or ``.geojson`` file.

    Returns:
        A few words for a message, or None for an earlier search's hits.
    """
    driver = DRIVERS[path.suffix.lower()]
    kind = "GeoPackage" if driver == "GPKG" else "GeoJSON file"
    if driver == "GPKG":
        with path.open("rb") as file:  # a GeoPackage is an SQLite file
            if file.read(16) != b"SQLite format 3\x00":
                return f"not a {kind}"
    try:
        with warnings.catch_warnings():  # GDAL's, about another SQLite file
            warnings.simplefilter("ignore")
            layers = [
                name for name in pyogrio.list_layers(path)[:, 0] if name != STYLE_TABLE
            ]
            if len(layers) != 1:
                return f"{len(layers)} layers, where search writes one"
            info = pyogrio.read_info(path, layer=layers[0])
    except pyogrio.errors.DataSourceError:
        return f"not a {kind}"
    if info["driver"] != driver:
        return f"not a {kind}"
    fields = [str(field) for field in info["fields"]]
    if missing := [column for column in HIT_COLUMNS if column not in fields]:
        return f"no {missing[0]!r} column"
    if extra := [field for field in fields if field not in HIT_COLUMNS]:
        return f"a column {extra[0]!r} that search does not write"
    return None


def _sheet_named(out: Path, sheet: Path, sheet_given: bool) -> tuple[str, str]:
    """How messages name the contact sheet, and what they ask for instead of it.

    Args:
        out: the hits.
        sheet: the contact sheet.
        sheet_given: whether ``--sheet`` named *sheet* (else it is *out* with
            ``.png``).

    Returns:
        The sheet's name, to be followed by ``is``, and what to do instead.
    """
    if sheet_given:
        return f"--sheet {str(sheet)!r}", "choose another --sheet"
    named = f"--out {str(out)!r} would write the contact sheet {str(sheet)!r}, which"
    return named, "pass --sheet with another name"


def _check_existing(out: Path, sheet: Path, overwrite: bool, sheet_given: bool) -> None:
    """Refuse outputs that exist, unless an earlier search wrote them and *overwrite*.

    Args:
        out: the hits.
        sheet: the contact sheet.
        overwrite: allow replacing an earlier search's hits and sheet.
        sheet_given: whether ``--sheet`` named *sheet*.

    Raises:
        FileExistsError: if an output exists and is not an earlier search's,
            or any exists and *overwrite* is False.
    """
    refuse_unless_ours(
        out,
        f"--out {str(out)!r}",
        "a hits file written by search",
        _hits_fault,
        "choose another --out",
    )
    sheet_named, other_sheet = _sheet_named(out, sheet, sheet_given)
    refuse_unless_ours(
        sheet,
        sheet_named,
        "a contact sheet drawn by search",
        lambda path: png_fault(path, SHEET_KIND),
        other_sheet,
    )
    existing = [str(path) for path in (out, sheet) if path.exists()]
    if existing and not overwrite:
        one = len(existing) == 1
        msg = (
            f"{' and '.join(existing)} already {'exists' if one else 'exist'}; "
            f"pass --overwrite to replace {'it' if one else 'them'}."
        )
        raise FileExistsError(msg)


def _check_outputs(
    out: Path,
    sheet: Path,
    overwrite: bool,
    inputs: Mapping[str, str | os.PathLike[str] | None],
    sheet_given: bool,
) -> None:
    """Refuse unknown formats, folders, inputs and files that may not be replaced.

    Args:
        out: the hits.
        sheet: the contact sheet.
        overwrite: allow replacing an earlier search's outputs (never an input,
            nor any other file: see :func:`_check_existing`).
        inputs: option -> the file it gave (None where not given), e.g.
            ``{"--geojson": "fields.geojson"}``; see :data:`INPUTS`.
        sheet_given: whether ``--sheet`` named *sheet* (else it is *out* with
            ``.png``).

    Raises:
        FileExistsError: if an output exists and is not an earlier search's,
            or any exists and *overwrite* is False.
        IsADirectoryError: if an output is a folder.
        PermissionError: if an output's folder cannot be written.
        ValueError: if an output has another suffix, is the other output, or
            is an input.
    """
    # How messages name the sheet, and what they ask for instead of it.
    sheet_named, other_sheet = _sheet_named(out, sheet, sheet_given)
    sheet_is = f"{sheet_named} is"
    if out.is_dir():
        msg = (
            f"--out {str(out)!r} is a folder; pass a file name, e.g. "
            f"{out / 'hits.gpkg'}."
        )
        raise IsADirectoryError(msg)
    if out.suffix.lower() not in DRIVERS:
        msg = (
            f"--out {str(out)!r} must end in {' or '.join(DRIVERS)}; pass e.g. "
            f"{out.with_suffix('.gpkg').name}."
        )
        raise ValueError(msg)
    if sheet.is_dir():
        example = (
            sheet / "hits.png" if sheet_given else f"{out.with_suffix('')}_sheet.png"
        )
        msg = f"{sheet_is} a folder; {other_sheet}, e.g. {example}."
        raise IsADirectoryError(msg)
    if sheet.suffix.lower() != ".png":
        msg = (
            f"--sheet {str(sheet)!r} must end in .png (the contact sheet is a PNG); "
            f"pass e.g. {sheet.with_suffix('.png').name}."
        )
        raise ValueError(msg)
    if sheet.resolve() == out.resolve():
        msg = f"--sheet {str(sheet)!r} is --out; pass a different PATH.png."
        raise ValueError(msg)
    # The same file on disk: the same path, a symbolic or a hard link to it.
    if (clash := same_file([out, sheet], inputs)) is not None:
        path, option = clash
        output_is, other = (
            (f"--out {str(out)!r} is", "choose another --out")
            if path == out
            else (sheet_is, other_sheet)
        )
        name = os.fspath(inputs[option] or "")
        which = option if name == str(path) else f"{option} {name!r}"
        msg = f"{output_is} {INPUTS[option]} ({which}); {other}."
        raise ValueError(msg)
    _check_existing(out, sheet, overwrite, sheet_given)
    check_output_folder(out.parent)
    check_output_folder(sheet.parent, "--sheet")


def _check_checkpoint(index: EmbeddingIndex, checkpoint: Path) -> None:
    """Refuse a checkpoint other than the one that made the index."""
    given = checkpoint_id(checkpoint)
    if given != index.info.checkpoint_id:
        # A file that is no checkpoint at all gets that said instead.
        read_checkpoint(checkpoint, BACKBONE_KINDS)
        msg = (
            f"--index {str(index.path)!r} was made by checkpoint "
            f"{index.info.checkpoint!r} (id {index.info.checkpoint_id}), you gave "
            f"{str(checkpoint)!r} (id {given}); re-run embed with {str(checkpoint)!r} "
            f"or search with {index.info.checkpoint!r}."
        )
        raise ValueError(msg)


def _hits_frame(
    index: EmbeddingIndex,
    rows: npt.NDArray[np.int64],
    similarity: npt.NDArray[np.float32],
) -> gpd.GeoDataFrame:
    """The table of hits, best first."""
    picked = index.table.take(pa.array(rows))
    return gpd.GeoDataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "similarity": similarity.astype(np.float64),
            "lon": picked.column("lon").to_numpy(),
            "lat": picked.column("lat").to_numpy(),
            "date": picked.column("date").to_pylist(),
            "row": picked.column("row").to_numpy(),
            "col": picked.column("col").to_numpy(),
        },
        geometry=shapely.from_wkb(picked.column("geometry").to_numpy(False)),
        crs=index.crs,
    )


def _centres(footprints: npt.NDArray[np.float64], crs: CRS) -> list[str]:
    """The centre of each footprint as ``"lon, lat"``, degrees to 4 decimals.

    Args:
        footprints: ``[N, 4]`` ``(xmin, ymin, xmax, ymax)`` in *crs*.
        crs: their CRS.

    Returns:
        ``N`` texts, e.g. ``"-120.7712, 37.1023"`` (4 decimals: about 10 m).
    """
    to_lonlat = Transformer.from_crs(crs, LONLAT, always_xy=True)
    lon, lat = to_lonlat.transform(
        (footprints[:, 0] + footprints[:, 2]) / 2,
        (footprints[:, 1] + footprints[:, 3]) / 2,
    )
    return [f"{x:.4f}, {y:.4f}" for x, y in zip(lon, lat, strict=True)]


def _query_footprints(query: Query) -> npt.NDArray[np.float64]:
    """Up to :data:`SHEET_QUERIES` of the query's patches, spread over it."""
    count = len(query.footprints)
    picks = np.unique(np.linspace(0, count - 1, min(count, SHEET_QUERIES)).round())
    return query.footprints[picks.astype(np.int64)]


def search(
    index: str | Path,
    out: str | Path,
    lonlat: Sequence[float] | None = None,
    query: str | Path | None = None,
    polygon: str | Path | None = None,
    k: int = 20,
    sheet: str | Path | None = None,
    checkpoint: str | Path | None = None,
    root: str | Path | None = None,
    overwrite: bool = False,
    exclude: str | Path | None = None,
) -> SearchResult:
    """Find the *k* indexed patches most like a query, and draw them.

    The query's own patches, and any patch sharing pixels with them, are left
    out of the hits, and so is any patch that a polygon of *exclude* reaches
    more than half a pixel into; the *k* hits are the best of the rest.
    Writes the hits (GeoPackage in the index CRS, or GeoJSON
    in lon/lat) and a contact sheet: the query's patches (at most
    :data:`SHEET_QUERIES`, titled in red) then the hits (the best
    :data:`SHEET_HITS`), each in natural colour titled with rank, cosine
    similarity and the lon/lat of its centre. Both appear only once complete.

    Args:
        index: an index written by ``embed``.
        out: the hits, ``PATH.gpkg`` or ``PATH.geojson``.
        lonlat: query point ``(lon, lat)``, degrees: the patch under it.
        query: query index file: the mean of its rows.
        polygon: query polygons (GeoJSON, GeoPackage, Shapefile or
            GeoParquet; any CRS, none being lon/lat): the mean of the indexed
            patches centred inside.
        k: hits to return (fewer if the index has fewer other patches).
        sheet: the contact sheet (default: *out* with ``.png``).
        checkpoint: check that the index was made by this checkpoint.
        root: imagery directory of the thumbnails (default: the one recorded
            in the index, and in a query file).
        overwrite: replace the hits and sheet of an earlier search (never
            other files).
        exclude: polygons of places already seen or labelled (any format and
            CRS *polygon* takes, e.g. the hits file of an earlier search):
            patches under them are left out of the hits.

    Returns:
        The hits, the files, the query's rows and what made it, and the rows
        *exclude* left out.

    Raises:
        FileExistsError: if an output exists and is not an earlier search's
            hits or sheet, or is one and *overwrite* is False.
        FileNotFoundError: if an input or the imagery does not exist.
        IsADirectoryError: if an output is a folder.
        ValueError: for anything but exactly one query, a query outside the
            indexed area, an index made by another checkpoint, a polygon file
            without polygons or in lon/lat with coordinates that cannot be
            degrees, or an output that is an input (whatever *overwrite* says).

    Warns:
        UserWarning: if *exclude* overlaps no indexed patch.
    """
    out = Path(out)
    sheet_given = sheet is not None
    sheet = out.with_suffix(".png") if sheet is None else Path(sheet)
    given = [lonlat is not None, query is not None, polygon is not None]
    if sum(given) != 1:
        msg = (
            "pass exactly one query: --lonlat LON LAT, --query PATH.parquet or "
            f"--geojson PATH; got {sum(given)}."
        )
        raise ValueError(msg)
    if k < 1:
        msg = f"--k must be at least 1, got {k}; pass e.g. 20."
        raise ValueError(msg)
    inputs = {
        "--index": index,
        "--query": query,
        "--geojson": polygon,
        "--exclude": exclude,
        "--checkpoint": checkpoint,
    }
    _check_outputs(out, sheet, overwrite, inputs, sheet_given)
    if checkpoint is not None and not Path(checkpoint).is_file():
        missing = not_a_file(checkpoint)
        msg = f"--checkpoint {str(checkpoint)!r} {missing}; pass a .ckpt file."
        raise FileNotFoundError(msg)
    # Read before the index, so a wrong file is refused before the long read.
    seen = None if exclude is None else read_polygons(exclude, "--exclude")
    searched = load_index(index)
    if not len(searched.matrix):
        msg = (
            f"--index {str(index)!r} has no patches (all were more than half "
            "nodata); embed a region with data."
        )
        raise ValueError(msg)
    if checkpoint is not None:
        _check_checkpoint(searched, Path(checkpoint))
    imagery = Path(root) if root is not None else Path(searched.info.root)
    if not imagery.is_dir():
        msg = (
            f"the imagery {str(imagery)!r} the thumbnails are read from does not "
            "exist; pass --root with the Sentinel-2 directory the index was made "
            "from."
        )
        raise FileNotFoundError(msg)
    if lonlat is not None:
        wanted = point_query(searched, float(lonlat[0]), float(lonlat[1]), imagery)
    elif polygon is not None:
        wanted = polygon_query(searched, polygon, imagery)
    else:
        assert query is not None
        wanted = file_query(searched, query, None if root is None else imagery)
    own = overlapping(searched, wanted.footprints, wanted.crs)
    excluded = None
    if seen is not None:
        assert exclude is not None
        excluded = excluded_rows(searched, seen, exclude)
        own = np.union1d(own, excluded.rows)
    # Enough candidates for k distinct places even if each hit has every
    # patch that shares pixels with it (up to (2 patch/stride + 1)^2) behind it;
    # left-out rows score -inf inside top_k, so they take no candidate's place.
    reach = 2 * math.ceil(searched.info.patch_size / searched.info.stride) + 1
    candidates = k * reach**2
    rows, similarity = top_k(searched.matrix, wanted.vector, candidates, exclude=own)
    rows, similarity = distinct_places(searched, rows, similarity, k)
    if not len(rows):
        besides, fix = "the query's own", "embed a larger region to search"
        if excluded is not None and len(excluded.rows):
            besides += (
                f" and the {plural(len(excluded.rows), 'patch')} --exclude "
                f"{str(exclude)!r} leaves out"
            )
            fix += ", or leave out fewer places"
        msg = f"--index {str(index)!r} has no patch besides {besides}; {fix}."
        raise ValueError(msg)
    hits = _hits_frame(searched, rows, similarity)

    shown = _query_footprints(wanted)
    tiles = read_thumbnails(wanted.root, wanted.crs, wanted.res, shown)
    drawn = rows[:SHEET_HITS]
    tiles += read_thumbnails(
        imagery, searched.crs, searched.info.res, searched.bounds[drawn]
    )
    titles = [f"query\n{centre}" for centre in _centres(shown, wanted.crs)]
    titles += [
        f"#{i + 1}  {value:.3f}\n{lon:.4f}, {lat:.4f}"
        for i, (value, lon, lat) in enumerate(
            zip(
                similarity[:SHEET_HITS],
                hits["lon"].to_numpy()[:SHEET_HITS],
                hits["lat"].to_numpy()[:SHEET_HITS],
                strict=True,
            )
        )
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.parent.mkdir(parents=True, exist_ok=True)
    partials = (partial_path(out), partial_path(sheet))
    try:
        driver = DRIVERS[out.suffix.lower()]
        table = hits.to_crs(LONLAT) if driver == "GeoJSON" else hits
        # Through Arrow, dates are written as a date field, not as text.
        if driver == "GPKG":
            write_geopackage(
                table,
                partials[0],
                out.stem,
                ("search hits", hit_style()),
                use_arrow=True,
            )
        else:  # GeoJSON has no place for a style
            table.to_file(partials[0], driver=driver, layer=out.stem, use_arrow=True)
        contact_sheet(
            tiles, titles, partials[1], queries=len(shown), heading=SHEET_HEADING
        )
        # Nothing put there since the check is replaced.
        _check_existing(out, sheet, overwrite, sheet_given)
        os.replace(partials[0], out)
        os.replace(partials[1], sheet)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
    return SearchResult(hits, out, sheet, wanted.rows, wanted.about, excluded)
