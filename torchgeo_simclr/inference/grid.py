"""The output grid of a map: the imagery's own pixel grid, cut to a bounding box."""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import rasterio
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window
from torchgeo.datasets import GeoDataset

from ..lonlat import LONLAT, check_bbox, lonlat_extent, parse_bbox_crs

#: Grids this many pixels across or fewer are checked for a pixel in their
#: footprint; a larger reprojected bbox always holds pixel centres.
SMALL_GRID_PX = 4


@dataclass(frozen=True)
class OutputGrid:
    """A north-up pixel grid in the imagery's CRS, aligned with its pixels."""

    #: CRS of the imagery (and of every output).
    crs: CRS
    #: Affine transform of the top-left pixel corner, CRS units per pixel.
    transform: Affine
    #: Columns.
    width: int
    #: Rows.
    height: int
    #: ``(row, col)`` of this grid's top-left pixel on the whole imagery's
    #: grid, whose windows this grid shares.
    offset: tuple[int, int] = (0, 0)
    #: ``(rows, cols)`` of the whole imagery's grid (None: this grid is it).
    imagery_shape: tuple[int, int] | None = None
    #: A bbox given in another CRS, ``(crs, (xmin, ymin, xmax, ymax))``: only
    #: the pixels whose centres fall inside it belong to the map (None: all do).
    footprint: tuple[CRS, tuple[float, float, float, float]] | None = None

    @property
    def res(self) -> float:
        """Pixel side, CRS units (metres for UTM)."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` in CRS units."""
        x0, y1 = self.transform.c, self.transform.f
        return (x0, y1 - self.height * self.res, x0 + self.width * self.res, y1)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        """Bounds of a pixel window (which may reach past the grid).

        Args:
            window: rows and columns relative to this grid.

        Returns:
            ``(xmin, ymin, xmax, ymax)`` in CRS units.
        """
        x0 = self.transform.c + window.col_off * self.res
        y1 = self.transform.f - window.row_off * self.res
        return (x0, y1 - window.height * self.res, x0 + window.width * self.res, y1)

    @cached_property
    def _to_footprint(self) -> Transformer:
        """From this grid's CRS to :attr:`footprint`'s, made once per grid."""
        assert self.footprint is not None
        return Transformer.from_crs(self.crs, self.footprint[0], always_xy=True)

    def inside(self, first: int, rows: int) -> NDArray[np.bool_]:
        """Which pixels of a stretch of rows belong to the map.

        A pixel belongs when its centre lies in :attr:`footprint`, a half-open
        box ``[xmin, xmax) x [ymin, ymax)`` in its own CRS, so the maps of two
        bboxes that share an edge share no pixel and miss none.

        Args:
            first: first row, relative to this grid.
            rows: how many rows.

        Returns:
            ``[rows, width]``, True where the pixel belongs (everywhere without
            a :attr:`footprint`).
        """
        if self.footprint is None:
            return np.ones((rows, self.width), dtype=bool)
        xmin, ymin, xmax, ymax = self.footprint[1]
        cols = self.transform.c + (np.arange(self.width) + 0.5) * self.res
        ys = self.transform.f - (np.arange(first, first + rows) + 0.5) * self.res
        x, y = np.meshgrid(cols, ys)
        bx, by = (np.asarray(v) for v in self._to_footprint.transform(x, y))
        inside: NDArray[np.bool_] = (
            (bx >= xmin) & (bx < xmax) & (by >= ymin) & (by < ymax)
        )
        return inside

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """The grid's extent in longitude / latitude degrees.

        Returns:
            ``(min lon, min lat, max lon, max lat)``.
        """
        west, south, east, north = lonlat_extent(self.bounds, self.crs, None)
        return west, south, east, north

    def windows(self, size: int, overlap: int) -> list[Window]:
        """Square windows that cover the grid, row by row, top to bottom.

        The windows are laid over the whole imagery: they step by ``size -
        overlap`` from its top-left corner, and the last row and column are
        moved back to end on its edge. This grid gets those that touch it,
        relative to its own top-left pixel, so a bbox's map or index is the
        whole imagery's cut to the bbox, pixel for pixel. Windows at a bbox's
        edge reach past it (negative offsets included), for the context
        around it. Along a side of the imagery shorter than a window, the
        one window is centred on it.

        Args:
            size: window side, pixels.
            overlap: pixels shared by neighbouring windows, ``0 <= overlap < size``.

        Returns:
            Windows in row-major order (``row_off`` never decreases).
        """
        rows_total, cols_total = self.imagery_shape or (self.height, self.width)
        step = size - overlap
        rows = _starts(rows_total, size, step, self.offset[0], self.height)
        cols = _starts(cols_total, size, step, self.offset[1], self.width)
        return [Window(col, row, size, size) for row in rows for col in cols]


def _starts(length: int, size: int, step: int, first: int, count: int) -> list[int]:
    """Window offsets along one axis of the imagery that touch a stretch of it.

    Args:
        length: pixels along the axis of the whole imagery.
        size: window side, pixels.
        step: pixels between window starts.
        first: first pixel of the stretch.
        count: pixels in the stretch.

    Returns:
        Window starts relative to *first*: every *step* from the imagery's
        start, the last flush with its end (one centred window if the
        imagery is shorter than a window), those overlapping the stretch.
    """
    if length <= size:
        starts = [-((size - length) // 2)]
    else:
        starts = [*range(0, length - size, step), length - size]
    return [s - first for s in starts if s < first + count and s + size > first]


def native_bounds(dataset: GeoDataset) -> tuple[float, float, float, float]:
    """The imagery's extent, widened to whole pixels of a file on its own grid.

    torchgeo's bounds take in files of other CRSs once reprojected, whose
    edges fall between the pixels of the files in the dataset's CRS; a grid
    anchored there would resample every file. The top-left corner of the
    first file (by path) in the dataset's CRS, north up, anchors the grid
    instead; without one the bounds are kept as they are.

    Args:
        dataset: the imagery (a torchgeo raster dataset).

    Returns:
        ``(xmin, ymin, xmax, ymax)`` in the dataset's CRS.
    """
    x_bounds, y_bounds = dataset.bounds[0], dataset.bounds[1]
    left, bottom = float(x_bounds.start), float(y_bounds.start)
    right, top = float(x_bounds.stop), float(y_bounds.stop)
    crs = CRS.from_user_input(dataset.crs)
    xres, yres = (float(r) for r in dataset.res)
    for path in sorted(set(dataset.index.filepath)):
        try:
            with rasterio.open(path) as src:
                if src.crs is None or CRS.from_user_input(src.crs) != crs:
                    continue
                transform = src.transform
        except RasterioIOError:
            continue
        if transform.b == transform.d == 0:
            tol = 1e-6
            x0, y0 = transform.c, transform.f
            left = x0 + math.floor((left - x0) / xres + tol) * xres
            right = x0 + math.ceil((right - x0) / xres - tol) * xres
            top = y0 + math.ceil((top - y0) / yres - tol) * yres
            bottom = y0 + math.floor((bottom - y0) / yres + tol) * yres
            break
    return left, bottom, right, top


def output_grid(
    dataset: GeoDataset,
    bbox: Sequence[float] | None = None,
    bbox_crs: CRS | str = LONLAT,
    imagery: str = "the imagery",
) -> OutputGrid:
    """The imagery's pixel grid over *bbox* (the whole imagery without one).

    The bbox is reprojected once to the imagery's CRS and widened to whole
    pixels of the imagery (see :func:`native_bounds`), so outputs line up with
    the input pixel for pixel. A bbox in another CRS is no rectangle on that
    grid: the grid is the rectangle around it, and its :attr:`~OutputGrid.footprint`
    says which pixels belong to the bbox.

    Args:
        dataset: the imagery (a torchgeo raster dataset).
        bbox: ``(xmin, ymin, xmax, ymax)`` in *bbox_crs*; lon/lat by default.
        bbox_crs: CRS of *bbox*, e.g. ``"EPSG:32610"``.
        imagery: the imagery in words, for a warning, e.g. ``"the imagery
            sensed between 2022-01-01 and 2022-12-31 (--start/--end)"``.

    Returns:
        The grid.

    Warns:
        UserWarning: if the bbox reaches past the imagery, naming the part
            mapped and its share of the bbox (totals then cover that part).

    Raises:
        ValueError: if the bbox is malformed (lon/lat swapped included),
            misses the imagery, or, in another CRS, holds no pixel centre.
    """
    crs = CRS.from_user_input(dataset.crs)
    footprint = None
    xres = float(dataset.res[0])
    data = native_bounds(dataset)
    cut = False  # whether the bbox reaches past the imagery
    if bbox is None:
        region = data
    else:
        source = parse_bbox_crs(bbox_crs)
        values = list(check_bbox(bbox, source, crs))
        to_data = Transformer.from_crs(source, crs, always_xy=True)
        region_ = to_data.transform_bounds(values[0], values[1], values[2], values[3])
        region = (
            max(region_[0], data[0]),
            max(region_[1], data[1]),
            min(region_[2], data[2]),
            min(region_[3], data[3]),
        )
        if region[0] >= region[2] or region[1] >= region[3]:
            msg = (
                f"bbox {values} ({source.to_string()}) does not overlap the imagery, "
                f"which covers {lonlat_extent(data, crs)} (lon/lat) = "
                f"{np.round(data, 1).tolist()} in "
                f"{crs.to_string()}; pass a bbox inside that extent."
            )
            raise ValueError(msg)
        cut = any(abs(a - b) > xres / 2 for a, b in zip(region, region_, strict=True))
        if source != crs:
            footprint = (source, (values[0], values[1], values[2], values[3]))
    # Whole pixels of the imagery grid (anchored at its top-left corner) that
    # touch the region; the tolerance absorbs reprojection noise.
    left, top = data[0], data[3]
    tol = 1e-6
    col0 = math.floor((region[0] - left) / xres + tol)
    col1 = math.ceil((region[2] - left) / xres - tol)
    row0 = math.floor((top - region[3]) / xres + tol)
    row1 = math.ceil((top - region[1]) / xres - tol)
    transform = Affine(xres, 0.0, left + col0 * xres, 0.0, -xres, top - row0 * xres)
    shape = (
        math.ceil((data[3] - data[1]) / xres - tol),
        math.ceil((data[2] - data[0]) / xres - tol),
    )
    if cut:
        covered = (
            left + col0 * xres,
            top - row1 * xres,
            left + col1 * xres,
            top - row0 * xres,
        )
        asked = (region_[2] - region_[0]) * (region_[3] - region_[1])
        share = (covered[2] - covered[0]) * (covered[3] - covered[1]) / asked
        warnings.warn(
            f"--bbox reaches past {imagery}, so only its part over that "
            f"imagery is covered: {lonlat_extent(covered, crs)} (lon/lat) = "
            f"{np.round(covered, 1).tolist()} in {crs.to_string()}, about "
            f"{share:.0%} of the bbox; the map's totals cover that part only, so "
            "compare them only with maps of the same ground.",
            UserWarning,
            stacklevel=2,
        )
    grid = OutputGrid(
        crs,
        transform,
        max(col1 - col0, 1),
        max(row1 - row0, 1),
        offset=(row0, col0),
        imagery_shape=shape,
        footprint=footprint,
    )
    # A bbox a few pixels across may fall between pixel centres; a larger one
    # holds some (checked where it is cheap).
    if (
        footprint is not None
        and min(grid.width, grid.height) <= SMALL_GRID_PX
        and not grid.inside(0, grid.height).any()
    ):
        unit = crs.axis_info[0].unit_name
        msg = (
            f"bbox {footprint[1]} ({footprint[0].to_string()}) holds no pixel "
            f"centre of the imagery's {xres:g} {unit} grid in {crs.to_string()}; "
            "pass a bbox at least one pixel across."
        )
        raise ValueError(msg)
    return grid
