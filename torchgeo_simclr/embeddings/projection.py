"""A 2-D t-SNE map of an embedding index, drawn as a PNG.

Each plotted patch is a point, coloured by its DWR irrigation label (the
majority of the rasterised label mask within its footprint) or, without labels,
by acquisition date; a few points can be drawn as natural-colour thumbnails.
t-SNE keeps neighbourhoods, not distances: the map shows which patches the
encoder finds alike, not how far apart the clusters are.
"""

import math
import os
import sys
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.ticker import FuncFormatter, MaxNLocator
from pyproj import CRS
from sklearn.manifold import TSNE
from tqdm import tqdm

from ..constants import (
    IGNORE_INDEX,
    IRRIGATED,
    MAP_CLASSES,
    NOT_IRRIGATED,
)
from ..datasets import IrrigationLabels
from ..datasets.display import natural_colour
from ..lonlat import lonlat_extent
from ..outputs import (
    check_out_replaceable,
    check_output_folder,
    partial_path,
    png_fault,
    png_marks,
)
from ..patch_labels import patch_labels
from .index import IndexInfo, read_embeddings, read_info
from .sheet import read_thumbnails

#: The ``Description`` text of the PNG: ``--overwrite`` replaces only a PNG
#: that carries it (see :func:`~torchgeo_simclr.outputs.png_marks`).
MAP_KIND: Final[str] = "torchgeo-simclr embedding map"

#: Index columns the map reads.
COLUMNS: Final[list[str]] = ["row", "col", "date", "embedding"]

#: Fewest patches a t-SNE map is drawn for.
MIN_POINTS: Final[int] = 3

#: Name and colour (hex RGB) of points without a label.
UNLABELLED: Final[tuple[str, str]] = ("Unlabelled", "#9e9e9e")

#: Colour (hex RGB) of every point when all patches share one date.
SINGLE_DATE_COLOUR: Final[str] = "#6a3d9a"

#: Colour (hex RGB) of points whose scene names carry no date: the grey of
#: unlabelled points.
UNKNOWN_DATE_COLOUR: Final[str] = UNLABELLED[1]

#: Side of the square blocks the label mask is rasterised in, pixels; patches
#: are labelled one block at a time, so memory stays at about this squared.
LABEL_BLOCK: Final[int] = 1024

#: Edge of dots of at least :data:`DOT_EDGE_MIN_SIZE`: dark grey, so light
#: dots (the not-irrigated tan has a contrast of only 1.7:1 on white) stand
#: out from the white page.
DOT_EDGE: Final[str] = "#404040"

#: Smallest dot drawn with an edge, marker area in points squared. On smaller
#: dots (a scatter of over 400 points) the edge would cover most of the dot:
#: at 2 pt² a 0.3 pt edge turned the tan dots the grey of unlabelled ones
#: (deuteranope colour difference 5.9 instead of 22.5).
DOT_EDGE_MIN_SIZE: Final[float] = 10.0

#: Width of a dot's edge as a share of the dot's diameter: 0.16 pt on a
#: 10 pt² dot, 0.32 pt on the largest, 40 pt².
DOT_EDGE_FRACTION: Final[float] = 0.05

#: Marker area of the dots in the legend, points squared.
LEGEND_DOT_SIZE: Final[float] = 30.0

#: Side of a thumbnail on the figure, points.
THUMBNAIL_SIDE: Final[float] = 28.0

#: Figure side, inches, and resolution, dots per inch: the PNG is
#: ``FIGURE_SIDE * FIGURE_DPI`` pixels square.
FIGURE_SIDE: Final[float] = 8.0
FIGURE_DPI: Final[int] = 150

#: Caption under the map.
CAPTION: Final[str] = (
    "t-SNE keeps neighbourhoods: nearby points are patches the encoder finds "
    "alike,\nbut distances between clusters and cluster sizes are not meaningful."
)


def sample_rows(total: int, max_points: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Pick at most *max_points* of *total* rows, at random but repeatably.

    Args:
        total: number of rows.
        max_points: most rows to keep.
        seed: seed of the random choice.

    Returns:
        Sorted row numbers ``[min(total, max_points)]``: all rows when *total*
        is at most *max_points*, else a sample without replacement that
        depends only on *total*, *max_points* and *seed*.
    """
    if total <= max_points:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=max_points, replace=False)).astype(np.int64)


def read_rows(
    path: str | os.PathLike[str], rows: npt.NDArray[np.int64], columns: list[str]
) -> pa.Table:
    """Read some rows of an index, one row group at a time.

    Args:
        path: the index file.
        rows: sorted row numbers to read.
        columns: columns to read.

    Returns:
        The rows, in the order of *rows*; memory holds at most one row group
        beyond them.
    """
    file = pq.ParquetFile(path)
    parts = []
    start = 0
    for group in range(file.num_row_groups):
        stop = start + file.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            table = file.read_row_group(group, columns=columns)
            parts.append(table.take(pa.array(rows[lo:hi] - start)))
        start = stop
    if not parts:
        return file.schema_arrow.empty_table().select(columns)
    return pa.concat_tables(parts)


def _check_perplexity(perplexity: float) -> None:
    """Check that a t-SNE perplexity is a finite number above 0.

    Args:
        perplexity: the requested perplexity.

    Raises:
        ValueError: if *perplexity* is not positive, or not finite (NaN passed
            a ``<= 0`` test and reached scikit-learn).
    """
    if not 0 < perplexity < math.inf:
        msg = (
            f"--perplexity must be a finite number above 0, got {perplexity}; "
            "pass e.g. 30."
        )
        raise ValueError(msg)


def _perplexity(perplexity: float, n: int) -> float:
    """Clamp a t-SNE perplexity to what *n* points allow.

    Args:
        perplexity: the requested perplexity.
        n: number of points.

    Returns:
        *perplexity*, lowered to ``(n - 1) / 3`` (each point's neighbourhood
        then still fits in the data; scikit-learn needs less than *n*) but not
        below 1.
    """
    return min(perplexity, max(1.0, (n - 1) / 3))


def project(
    embeddings: npt.NDArray[np.floating], perplexity: float = 30.0, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Project embeddings to 2-D with t-SNE (cosine distance, PCA start).

    Args:
        embeddings: ``[N, dim]``, N at least 3; each row is L2-normalised first.
        perplexity: about how many neighbours each point keeps, lowered to
            ``(N - 1) / 3`` for small N.
        seed: seed of the optimisation; the same inputs and seed give the same
            map.

    Returns:
        ``[N, 2]`` map coordinates (unitless).

    Raises:
        ValueError: if there are fewer than 3 embeddings or *perplexity* is
            not a finite number above 0.
    """
    n = len(embeddings)
    if n < MIN_POINTS:
        msg = (
            f"project() got {n} embedding(s); t-SNE needs at least {MIN_POINTS}, "
            "so pass more rows."
        )
        raise ValueError(msg)
    _check_perplexity(perplexity)
    vectors = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
    tsne = TSNE(
        n_components=2,
        perplexity=_perplexity(perplexity, n),
        metric="cosine",
        init="pca",
        random_state=seed,
    )
    return np.asarray(tsne.fit_transform(vectors), dtype=np.float64)


def _grid_bounds(
    info: IndexInfo, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> tuple[float, float, float, float]:
    """The extent of the patches with these top-left pixels, in the index CRS.

    Args:
        info: the index's info (origin, resolution, patch size).
        rows: ``[N]`` top-left pixel rows.
        cols: ``[N]`` top-left pixel columns.

    Returns:
        ``(xmin, ymin, xmax, ymax)``, CRS units.
    """
    footprints = info.footprints(rows, cols)
    xmin, ymin = footprints[:, :2].min(axis=0)
    xmax, ymax = footprints[:, 2:].max(axis=0)
    return float(xmin), float(ymin), float(xmax), float(ymax)


def _open_labels(
    info: IndexInfo,
    bounds: tuple[float, float, float, float],
    labels: Path,
    class_column: str = "CLASS2",
    class_map: dict[str, int] | None = None,
) -> IrrigationLabels:
    """Read the label polygons within the index's extent, in the index's CRS.

    Args:
        info: the index's info (CRS, resolution).
        bounds: ``(xmin, ymin, xmax, ymax)`` of the patches, CRS units.
        labels: a DWR crop-mapping file.
        class_column: attribute holding the crop class code.
        class_map: what the codes mean (1 irrigated, 0 not, 255 ignored): over
            DWR's defaults for a DWR class column, the whole map for another.

    Returns:
        The labels, rasterised on the index grid.

    Raises:
        ValueError: if the label file has no polygon within *bounds* (the
            message names both extents), or cannot be read (see
            :class:`~torchgeo_simclr.datasets.IrrigationLabels`).
    """
    crs = CRS.from_wkt(info.crs)
    west, south, east, north = lonlat_extent(bounds, crs, None)
    return IrrigationLabels(
        labels,
        crs=crs,
        res=info.res,
        class_column=class_column,
        class_map=class_map,
        bbox=(west, south, east, north),
    )


def patch_majority_labels(
    info: IndexInfo,
    table: pa.Table,
    labels: Path,
    progress: bool = False,
    class_column: str = "CLASS2",
    class_map: dict[str, int] | None = None,
) -> npt.NDArray[np.int64]:
    """Label each patch of an index by the majority of its rasterised DWR mask.

    The label polygons within the patches' extent are read once and
    rasterised on the index grid one block of :data:`LABEL_BLOCK` pixels at a
    time; each patch then gets
    :func:`~torchgeo_simclr.patch_labels.patch_labels` of the mask under its
    footprint.

    Args:
        info: the index's info (CRS, resolution, origin, patch size).
        table: index rows with the ``row`` and ``col`` columns.
        labels: a DWR crop-mapping file in any format
            :class:`~torchgeo_simclr.datasets.IrrigationLabels` reads.
        progress: show a progress bar.
        class_column: attribute holding the crop class code.
        class_map: what the codes mean (see :func:`_open_labels`).

    Returns:
        ``[N]`` labels: 0 not irrigated, 1 irrigated, 255 where less than half
        the patch is labelled.

    Raises:
        ValueError: if the label file does not overlap the patches, or cannot
            be read.
    """
    rows = table.column("row").to_numpy().astype(np.int64)
    cols = table.column("col").to_numpy().astype(np.int64)
    out = np.full(len(rows), IGNORE_INDEX, dtype=np.int64)
    if len(rows) == 0:
        return out
    bounds = _grid_bounds(info, rows, cols)
    dataset = _open_labels(info, bounds, labels, class_column, class_map)
    blocks_across = int(cols.max()) // LABEL_BLOCK + 1
    block = (rows // LABEL_BLOCK) * blocks_across + cols // LABEL_BLOCK
    _, counts = np.unique(block, return_counts=True)
    members_of = np.split(np.argsort(block, kind="stable"), np.cumsum(counts)[:-1])
    size = info.patch_size
    with tqdm(
        total=len(rows), desc="label patches", unit="patch", disable=not progress
    ) as bar:
        for members in members_of:
            xmin, ymin, xmax, ymax = _grid_bounds(info, rows[members], cols[members])
            try:
                mask = dataset[xmin:xmax, ymin:ymax]["mask"]
            except IndexError:
                # The block lies outside every label file: its patches stay 255.
                bar.update(len(members))
                continue
            top = rows[members] - rows[members].min()
            left = cols[members] - cols[members].min()
            windows = torch.stack(
                [
                    mask[i : i + size, j : j + size]
                    for i, j in zip(top.tolist(), left.tolist(), strict=True)
                ]
            )
            out[members] = patch_labels(windows).numpy()
            bar.update(len(members))
    return out


def _read_thumbnails(
    info: IndexInfo, table: pa.Table, root: Path
) -> list[npt.NDArray[np.float32]]:
    """Read the natural-colour image of each patch.

    Args:
        info: the index's info (CRS, resolution, origin, patch size).
        table: index rows with the ``row`` and ``col`` columns.
        root: the Sentinel-2 directory the index was made from.

    Returns:
        One ``[H, W, 3]`` float32 image in [0, 1] per row (see
        :func:`~torchgeo_simclr.datasets.display.natural_colour`).

    Raises:
        ValueError: if the imagery covers none of the patches.
    """
    rows = table.column("row").to_numpy().astype(np.int64)
    cols = table.column("col").to_numpy().astype(np.int64)
    footprints = info.footprints(rows, cols)
    tiles = read_thumbnails(root, CRS.from_wkt(info.crs), info.res, footprints)
    if not any(tile.any() for tile in tiles):
        msg = (
            f"Imagery under {str(root)!r} covers none of the index's patches; pass "
            "the --root the index was made from."
        )
        raise ValueError(msg)
    return [natural_colour(tile) for tile in tiles]


def _point_size(n: int) -> float:
    """Marker area of a scatter of *n* points, points squared."""
    return float(np.clip(4000 / n, 2, 40))


def _edge_width(size: float) -> float:
    """Width of the dark edge of a dot, points.

    Args:
        size: marker area of the dot, points squared.

    Returns:
        0 (no edge) below :data:`DOT_EDGE_MIN_SIZE`, else
        :data:`DOT_EDGE_FRACTION` of the dot's diameter, ``sqrt(size)``.
    """
    if size < DOT_EDGE_MIN_SIZE:
        return 0.0
    return DOT_EDGE_FRACTION * math.sqrt(size)


def _draw_group(
    ax: Axes, xy: npt.NDArray[np.float64], size: float, colour: str, label: str
) -> None:
    """Scatter one group of points in one colour, named in the legend.

    Dots of at least :data:`DOT_EDGE_MIN_SIZE` are edged dark (see
    :func:`_edge_width`).

    Args:
        ax: the axes.
        xy: ``[K, 2]`` map coordinates of the group.
        size: marker area, points squared (see :func:`_point_size`).
        colour: hex RGB.
        label: legend entry.
    """
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=size,
        color=colour,
        edgecolors=DOT_EDGE,
        linewidths=_edge_width(size),
        label=label,
    )


def _add_legend(ax: Axes, title: str | None = None) -> None:
    """Legend of the groups drawn so far, with dots of one readable size.

    Args:
        ax: the axes.
        title: the legend's title, or None for none.
    """
    legend = ax.legend(title=title, loc="best", fontsize=8)
    for handle in legend.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_sizes([LEGEND_DOT_SIZE])
            handle.set_linewidth(_edge_width(LEGEND_DOT_SIZE))


def _draw_labels(
    ax: Axes, xy: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> None:
    """Scatter points coloured by irrigation label, with a legend of counts.

    Args:
        ax: the axes.
        xy: ``[N, 2]`` map coordinates.
        labels: ``[N]`` 0, 1 or 255.
    """
    classes = {IGNORE_INDEX: UNLABELLED} | {
        value: MAP_CLASSES[value] for value in (NOT_IRRIGATED, IRRIGATED)
    }
    size = _point_size(len(xy))
    for value, (name, colour) in classes.items():
        chosen = labels == value
        _draw_group(ax, xy[chosen], size, colour, f"{name} ({int(chosen.sum()):,})")
    _add_legend(ax, "DWR label (patch majority)")


def _draw_dates(
    figure: Figure,
    ax: Axes,
    xy: npt.NDArray[np.float64],
    dates: npt.NDArray[np.datetime64],
) -> None:
    """Scatter points coloured by acquisition date (one colour for one date).

    Args:
        figure: the figure, for the colour bar.
        ax: the axes.
        xy: ``[N, 2]`` map coordinates.
        dates: ``[N]`` acquisition dates (NaT: unknown, drawn grey).
    """
    size = _point_size(len(xy))
    unknown = np.isnat(dates)
    if unknown.any():
        label = f"Date unknown ({int(unknown.sum()):,})"
        _draw_group(ax, xy[unknown], size, UNKNOWN_DATE_COLOUR, label)
        _add_legend(ax)
        xy, dates = xy[~unknown], dates[~unknown]
    if not len(dates):
        return
    unique = np.unique(dates)
    if len(unique) == 1:
        label = f"Acquired {unique[0]} ({len(xy):,})"
        _draw_group(ax, xy, size, SINGLE_DATE_COLOUR, label)
        _add_legend(ax)
        return
    days = dates.astype("datetime64[D]").astype(np.int64)
    points = ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=size,
        c=days,
        cmap="viridis",
        edgecolors=DOT_EDGE,
        linewidths=_edge_width(size),
    )
    colour_bar = figure.colorbar(points, ax=ax, shrink=0.8, label="Acquisition date")
    colour_bar.ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    colour_bar.ax.yaxis.set_major_formatter(
        FuncFormatter(lambda day, _: str(np.datetime64(round(day), "D")))
    )


def _draw_thumbnails(
    ax: Axes, xy: npt.NDArray[np.float64], images: list[npt.NDArray[np.float32]]
) -> None:
    """Draw images centred on their points.

    Args:
        ax: the axes.
        xy: ``[K, 2]`` map coordinates of the images.
        images: ``K`` ``[H, W, 3]`` images in [0, 1].
    """
    for point, image in zip(xy, images, strict=True):
        box = OffsetImage(image, zoom=THUMBNAIL_SIDE / max(image.shape[:2]))
        ax.add_artist(
            AnnotationBbox(
                box,
                (float(point[0]), float(point[1])),
                frameon=True,
                pad=0.1,
                bboxprops={"edgecolor": "black", "linewidth": 0.5},
            )
        )


def _draw_map(
    xy: npt.NDArray[np.float64],
    title: str,
    classes: npt.NDArray[np.int64] | None,
    dates: npt.NDArray[np.datetime64],
    thumbnail_xy: npt.NDArray[np.float64],
    images: list[npt.NDArray[np.float32]],
) -> Figure:
    """Draw the map: points, legend or colour bar, thumbnails, title and caption.

    Args:
        xy: ``[N, 2]`` map coordinates.
        title: the figure title.
        classes: ``[N]`` irrigation labels (0, 1, 255), or None to colour by
            date.
        dates: ``[N]`` acquisition dates.
        thumbnail_xy: ``[K, 2]`` map coordinates of the thumbnails.
        images: ``K`` ``[H, W, 3]`` thumbnails in [0, 1].

    Returns:
        A ``FIGURE_SIDE`` inch square figure.
    """
    figure = Figure(figsize=(FIGURE_SIDE, FIGURE_SIDE), layout="constrained")
    ax = figure.add_subplot()
    if classes is not None:
        _draw_labels(ax, xy, classes)
    else:
        _draw_dates(figure, ax, xy, dates)
    _draw_thumbnails(ax, thumbnail_xy, images)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(CAPTION, fontsize=8)
    ax.set_title(title)
    return figure


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing *out* unless it is an earlier map and *overwrite*."""
    check_out_replaceable(
        out,
        "an embedding map drawn by embedding-map",
        lambda path: png_fault(path, MAP_KIND),
        overwrite,
    )


def _check_options(
    out: Path, max_points: int, thumbnails: int, perplexity: float, overwrite: bool
) -> None:
    """Check :func:`embedding_map`'s options before any work.

    Args:
        out: the PNG to write.
        max_points: most patches to plot.
        thumbnails: number of thumbnails.
        perplexity: t-SNE perplexity.
        overwrite: replace an existing *out* that is an earlier map.

    Raises:
        ValueError: if an option is out of range or *out* is not a ``.png``.
        FileExistsError: if *out* exists and is not an earlier map, or is one
            and *overwrite* is False.
    """
    if out.suffix.lower() != ".png":
        msg = f"--out {str(out)!r} must be a .png file; pass a name ending in .png."
        raise ValueError(msg)
    _check_out(out, overwrite)
    check_output_folder(out.parent)
    if max_points < MIN_POINTS:
        msg = (
            f"--max-points must be at least {MIN_POINTS} for a t-SNE map, got "
            f"{max_points}; pass e.g. 5000."
        )
        raise ValueError(msg)
    if thumbnails < 0:
        msg = f"--thumbnails must be 0 or more, got {thumbnails}; pass e.g. 30."
        raise ValueError(msg)
    _check_perplexity(perplexity)


def embedding_map(
    index: Path,
    out: Path,
    labels: Path | None = None,
    class_column: str = "CLASS2",
    class_map: dict[str, int] | None = None,
    root: Path | None = None,
    thumbnails: int = 0,
    max_points: int = 5000,
    perplexity: float = 30.0,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Draw a 2-D t-SNE map of an embedding index as a PNG.

    At most *max_points* patches are plotted (a sample drawn with *seed* when
    the index has more). Points are coloured by DWR irrigation label when
    *labels* is given (the majority of the label mask within each footprint,
    see :func:`patch_majority_labels`), else by acquisition date.

    Args:
        index: an index written by ``torchgeo-simclr embed``.
        out: the PNG to write (``FIGURE_SIDE * FIGURE_DPI`` = 1200 px square).
        labels: a DWR crop-mapping file covering the index (optional).
        class_column: attribute of *labels* holding the crop class code.
        class_map: what its codes mean, 1 irrigated, 0 not, 255 ignored (over
            DWR's defaults for a DWR class column; required for another).
        root: the Sentinel-2 directory thumbnails are read from (default: the
            one the index was made from).
        thumbnails: number of randomly chosen points drawn as natural-colour
            thumbnails.
        max_points: most patches to plot.
        perplexity: t-SNE perplexity, about how many neighbours each point
            keeps (lowered for small indexes, see :func:`project`).
        seed: seed of the sample, the t-SNE and the thumbnail choice.
        overwrite: replace an existing *out* that an earlier embedding map
            wrote (never another file).
        progress: report the sample size and show progress bars.

    Returns:
        The PNG's path.

    Raises:
        ValueError: if *out* is not a ``.png``, an option is out of range,
            *index* is not an index or has fewer than 3 patches, or *labels*
            does not overlap it.
        FileExistsError: if *out* exists and is not an earlier map, or is one
            and *overwrite* is False.
        FileNotFoundError: if *index* does not exist, or thumbnails are asked
            for and the imagery directory does not exist.
    """
    index, out = Path(index), Path(out)
    _check_options(out, max_points, thumbnails, perplexity, overwrite)
    info = read_info(index)
    total = pq.ParquetFile(index).metadata.num_rows
    if total < MIN_POINTS:
        msg = (
            f"--index {str(index)!r} holds {total} patch(es) but a t-SNE map "
            f"needs at least {MIN_POINTS}; embed a larger area or use a smaller "
            "stride."
        )
        raise ValueError(msg)
    imagery = Path(root) if root is not None else Path(info.root)
    if thumbnails and not imagery.exists():
        source = "--root" if root is not None else "the index's imagery root"
        msg = (
            f"Thumbnails are read from {source} {str(imagery)!r}, which does not "
            "exist; pass --root with the Sentinel-2 directory the index was made "
            "from, or no thumbnails."
        )
        raise FileNotFoundError(msg)

    keep = sample_rows(total, max_points, seed)
    if progress:
        sampled = f" (a sample drawn with seed {seed})" if len(keep) < total else ""
        print(f"Mapping {len(keep):,} of {total:,} patches{sampled}.", file=sys.stderr)
    table = read_rows(index, keep, COLUMNS)
    classes = None
    if labels is not None:
        classes = patch_majority_labels(
            info, table, Path(labels), progress, class_column, class_map
        )
    xy = project(read_embeddings(table), perplexity, seed)
    chosen = sample_rows(len(keep), thumbnails, seed)
    images = (
        _read_thumbnails(info, table.take(pa.array(chosen)), imagery)
        if thumbnails
        else []
    )

    title = (
        f"t-SNE of {info.model} embeddings, checkpoint {info.checkpoint_id}\n"
        + (f"{len(keep):,} of {total:,}" if len(keep) < total else f"{total:,}")
        + f" patches of {info.patch_size} px"
    )
    dates = table.column("date").to_numpy(zero_copy_only=False)
    figure = _draw_map(xy, title, classes, dates, xy[chosen], images)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out)
    try:
        figure.savefig(
            partial, format="png", dpi=FIGURE_DPI, metadata=png_marks(MAP_KIND)
        )
        _check_out(out, overwrite)  # nothing put there meanwhile is replaced
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out
