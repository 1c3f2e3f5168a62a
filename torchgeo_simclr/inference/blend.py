"""Blending overlapping window predictions into rows of a map, strip by strip."""

from collections.abc import Iterator
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

#: How a window's prediction is weighted: ``taper`` (per-pixel predictions,
#: raised-cosine edges) or ``centre`` (one value per window, its centre area).
WeightKind = Literal["taper", "centre"]

#: Weight of pixels outside a window's centre area (``centre`` kind): small,
#: so they count only where no centre area reaches (the region's edges).
_EDGE_WEIGHT = 1e-6


def blend_weights(
    size: int, overlap: int, kind: WeightKind = "taper"
) -> NDArray[np.float32]:
    """Weight of each pixel of a window when overlapping windows are averaged.

    ``taper``: 1 in the middle, rising over *overlap* pixels from each edge
    along a raised cosine (Hann) ramp that never reaches 0, so neighbouring
    windows cross-fade without seams and a pixel that only one window covers
    (at the region's edge) keeps that window's value.

    ``centre``: 1 on the central ``size - overlap`` square, nearly 0 elsewhere,
    so each pixel takes the value of the window whose centre area it lies in.

    Args:
        size: window side, pixels.
        overlap: pixels shared by neighbouring windows.
        kind: ``taper`` or ``centre``.

    Returns:
        Weights ``[size, size]``, all > 0.
    """
    if kind == "centre":
        inner = size - overlap
        start = (size - inner) // 2
        line = np.full(size, _EDGE_WEIGHT, dtype=np.float32)
        line[start : start + inner] = 1.0
        weights = np.minimum.outer(line, line)
        return weights.astype(np.float32)
    line = np.ones(size, dtype=np.float32)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        line[:overlap] = ramp
        line[size - overlap :] = np.minimum(line[size - overlap :], ramp[::-1])
    return np.outer(line, line).astype(np.float32)


class StripBlender:
    """Weighted average of overlapping windows, released in finished row strips.

    Windows must arrive in row-major order (``row_off`` never decreases). Rows
    above the newest window's first row can no longer change, so they are
    handed out by :meth:`add` and the buffer only ever holds about two window
    heights of the grid's width: memory does not grow with the region's height.
    """

    def __init__(self, width: int, height: int, weights: NDArray[np.float32]) -> None:
        """Initialise a new StripBlender.

        Args:
            width: grid columns.
            height: grid rows.
            weights: per-pixel window weight ``[h, w]``, e.g. from
                :func:`blend_weights`.
        """
        #: Grid size, pixels.
        self.width, self.height = width, height
        #: Per-pixel weight of every window.
        self.weights = weights
        #: First grid row still held in the buffers.
        self.top = 0
        self._sum = np.zeros((0, width), dtype=np.float64)
        self._weight = np.zeros((0, width), dtype=np.float64)

    def add(
        self, window: Window, values: NDArray[np.floating], valid: NDArray[np.bool_]
    ) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Add one window's values and release the rows that are now final.

        Args:
            window: where the values lie on the grid (may reach past its edge).
            values: ``[h, w]`` predictions of the window.
            valid: ``[h, w]``, False where the input had no data.

        Yields:
            ``(first row, rows)``: finished rows ``[n, width]``, NaN where no
            window had valid input.
        """
        row0, col0 = int(window.row_off), int(window.col_off)
        if max(row0, 0) < self.top:
            msg = f"windows must come row by row; got row {row0} after {self.top}."
            raise ValueError(msg)
        yield from self._release(row0)
        rows = slice(max(row0, 0), min(row0 + values.shape[0], self.height))
        cols = slice(max(col0, 0), min(col0 + values.shape[1], self.width))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return
        self._grow(rows.stop)
        inner = (
            slice(rows.start - row0, rows.stop - row0),
            slice(cols.start - col0, cols.stop - col0),
        )
        weight = self.weights[inner] * valid[inner]
        buffer_rows = slice(rows.start - self.top, rows.stop - self.top)
        self._sum[buffer_rows, cols] += weight * values[inner]
        self._weight[buffer_rows, cols] += weight

    def finish(self) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Release every row still held.

        Yields:
            ``(first row, rows)`` as in :meth:`add`.
        """
        self._grow(self.height)
        yield from self._release(self.height)

    def _grow(self, stop: int) -> None:
        """Extend the buffers to hold grid rows up to *stop*."""
        missing = stop - self.top - self._sum.shape[0]
        if missing > 0:
            pad = np.zeros((missing, self.width), dtype=np.float64)
            self._sum = np.concatenate([self._sum, pad])
            self._weight = np.concatenate([self._weight, pad])

    def _release(self, stop: int) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """Hand out the buffered rows above grid row *stop*."""
        n = min(stop - self.top, self._sum.shape[0])
        if n <= 0:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = (self._sum[:n] / self._weight[:n]).astype(np.float32)
        rows[self._weight[:n] == 0] = np.nan
        first = self.top
        self._sum, self._weight = self._sum[n:].copy(), self._weight[n:].copy()
        self.top += n
        yield first, rows
