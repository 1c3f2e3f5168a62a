"""Patches of an output grid's windows, cut batch by batch from a few large reads."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import RasterDataset

from ..datasets.dates import NAT
from ..inference.grid import OutputGrid
from ..inference.normalise import has_data
from .patch_dates import BlockDates

#: A block's imagery, pixels with data, their integral image and sensing days
#: (see :meth:`GridPatches._block`).
Block = tuple[Tensor, Tensor, Tensor, BlockDates]


def keep_batch(batch: Any) -> Any:
    """A DataLoader ``collate_fn`` for :class:`GridPatches`: batches come whole.

    Args:
        batch: what :meth:`GridPatches.__getitems__` returned.

    Returns:
        *batch*.
    """
    return batch


class GridPatches(Dataset[dict[str, Any]]):
    """Square windows of a grid, read by blocks and delivered a batch at a time.

    Reading each window on its own costs a raster query per patch, several
    milliseconds, more than a small encoder's forward pass. Here the windows
    are grouped into blocks of *block_shape* pixels of top-left corners; each
    block's imagery is read once, in one query, and its patches are cut from
    it. Index *i* is the *i*-th window block by block (row-major inside a
    block), so a DataLoader that batches indices in order (``batch_size=B``,
    ``collate_fn=``:func:`keep_batch`) reads through :meth:`__getitems__`
    and holds one or two blocks whatever the region's size. Blocks one pixel
    high hold one row of windows each, so the indices then follow the windows
    in row-major order, as a map writer needs. Patches whose pixels are mostly
    nodata are dropped, and counted, before they leave the worker.
    """

    def __init__(
        self,
        imagery: RasterDataset,
        grid: OutputGrid,
        windows: Sequence[Window],
        min_valid: float = 0.5,
        block_shape: tuple[int, int] = (512, 512),
    ) -> None:
        """Initialise a new GridPatches.

        Args:
            imagery: the Sentinel-2 dataset, read on its own pixel grid.
            grid: the grid the windows refer to.
            windows: square windows of one size (at least one).
            min_valid: least fraction of a patch's pixels with data (every band
                non-zero) for the patch to be kept (0 keeps every patch).
            block_shape: ``(height, width)`` of a block of window corners,
                pixels; a block's read covers its windows, up to
                ``block_shape`` plus the window side in each direction.
        """
        #: Where pixels are read from.
        self.imagery = imagery
        #: The grid the windows refer to.
        self.grid = grid
        #: Window side, pixels.
        self.size = int(windows[0].width)
        #: Least fraction of pixels with data in a kept patch.
        self.min_valid = min_valid
        rows = np.array([int(w.row_off) for w in windows], dtype=np.int64)
        cols = np.array([int(w.col_off) for w in windows], dtype=np.int64)
        block_row, block_col = rows // block_shape[0], cols // block_shape[1]
        order = np.lexsort((cols, rows, block_col, block_row))
        #: Top-left pixel of each window on the grid, ``[N]`` each, by index.
        self.rows, self.cols = rows[order], cols[order]
        # Windows may start left of or above the grid (negative offsets).
        block_row, block_col = block_row - block_row.min(), block_col - block_col.min()
        keys = block_row[order] * (int(block_col.max()) + 1) + block_col[order]
        #: Block of each window, ``[N]``, numbered in reading order.
        self.blocks = np.cumsum(np.diff(keys, prepend=keys[0]) != 0)
        # The windows of a block are consecutive.
        first = np.flatnonzero(np.diff(self.blocks, prepend=-1))
        top = np.minimum.reduceat(self.rows, first)
        left = np.minimum.reduceat(self.cols, first)
        height = np.maximum.reduceat(self.rows, first) + self.size - top
        width = np.maximum.reduceat(self.cols, first) + self.size - left
        #: Pixel window read for each block, the union of its windows: ``[B,
        #: 4]`` ``(row, col, height, width)``.
        self.block_windows = np.stack([top, left, height, width], axis=1)
        self._cache: dict[int, Block] = {}

    def __len__(self) -> int:
        """Return the number of windows.

        Returns:
            Windows over the grid.
        """
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Read one window, as a batch of one.

        Args:
            index: window number.

        Returns:
            See :meth:`__getitems__`.
        """
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """Read the patches of a batch of windows.

        Args:
            indices: window numbers, best in increasing order (blocks read
                for earlier indices are not kept).

        Returns:
            ``image`` float32 ``[n, C, size, size]`` reflectance x10000 of the
            kept patches (0 = nodata), ``valid`` bool ``[n, size, size]``
            (False where any band is nodata), ``row`` and ``col`` int64
            ``[n]`` of their top-left pixels on the grid, ``date`` int64
            ``[n]`` the sensing day most of each patch's pixels with data come
            from (the newest of equals), ``dates`` int64 ``[k]`` the sensing
            days of the pixels with data on the grid in the blocks read (both
            as numpy ``datetime64[D]`` integers, NaT's for unknown; see
            :class:`~torchgeo_simclr.datasets.CentralValleyS2`'s
            ``pixel_dates``), and ``skipped``, the number of the batch's
            windows dropped as mostly nodata.
        """
        batch = np.asarray(indices, dtype=np.int64)
        rows, cols, blocks = self.rows[batch], self.cols[batch], self.blocks[batch]
        images, masks, days, kept = [], [], [], []
        seen: set[int] = set()
        for block in np.unique(blocks):
            members = np.flatnonzero(blocks == block)
            image, valid, integral, date = self._block(int(block))
            seen.update(date.grid_days)
            top, left = self.block_windows[block, :2]
            r = torch.from_numpy(rows[members] - top)
            c = torch.from_numpy(cols[members] - left)
            s = self.size
            corners = (integral[r + s, c + s], integral[r, c])
            edges = (integral[r, c + s], integral[r + s, c])
            counts = corners[0] + corners[1] - edges[0] - edges[1]
            keep = counts >= self.min_valid * s * s
            # [h - s + 1, w - s + 1, C, s, s]: every window of the block, a view.
            patches = image.unfold(1, s, 1).unfold(2, s, 1).permute(1, 2, 0, 3, 4)
            images.append(patches[r[keep], c[keep]])
            masks.append(valid.unfold(0, s, 1).unfold(1, s, 1)[r[keep], c[keep]])
            days.append(date.patch_days(r[keep].numpy(), c[keep].numpy(), s))
            kept.append(members[keep.numpy()])
        chosen = np.concatenate(kept)
        return {
            "image": images[0] if len(images) == 1 else torch.cat(images),
            "valid": masks[0] if len(masks) == 1 else torch.cat(masks),
            "row": torch.from_numpy(rows[chosen]),
            "col": torch.from_numpy(cols[chosen]),
            "date": torch.from_numpy(np.concatenate(days)),
            "dates": torch.tensor(sorted(seen), dtype=torch.int64),
            "skipped": len(rows) - len(chosen),
        }

    def _block(self, block: int) -> Block:
        """The imagery of a block, its pixels with data and their integral image.

        Only the blocks of the current batch and the one before are kept.

        Args:
            block: block number.

        Returns:
            ``[C, h, w]`` reflectance x10000, bool ``[h, w]`` pixels with
            data (every band non-zero), int32 ``[h + 1, w + 1]`` counts of
            pixels with data above and left of each pixel corner, and the
            pixels' sensing days.
        """
        if block not in self._cache:
            for old in [key for key in self._cache if key < block - 1]:
                del self._cache[old]
            self._cache[block] = self._read(*self.block_windows[block])
        return self._cache[block]

    def _read(
        self, row: np.int64, col: np.int64, height: np.int64, width: np.int64
    ) -> Block:
        """Read a pixel window of the grid and count its pixels with data.

        Args:
            row: top pixel row on the grid.
            col: left pixel column on the grid.
            height: rows.
            width: columns.

        Returns:
            See :meth:`_block`.
        """
        res = self.grid.res
        window = Window(int(col), int(row), int(width), int(height))
        xmin, ymin, xmax, ymax = self.grid.window_bounds(window)
        shape = (int(height), int(width))
        try:
            sample = self.imagery[xmin:xmax:res, ymin:ymax:res]
        except IndexError:
            # A block over a gap between scenes: no data at all.
            sample = {"image": torch.zeros(len(self.imagery.bands), *shape)}
        image = sample["image"].float()
        days = sample["date"].numpy() if "date" in sample else np.full(shape, NAT)
        valid = has_data(image, dim=0)
        integral = torch.zeros(shape[0] + 1, shape[1] + 1, dtype=torch.int32)
        integral[1:, 1:] = valid.int().cumsum(0).cumsum(1)
        on_grid = (
            slice(max(-int(row), 0), max(self.grid.height - int(row), 0)),
            slice(max(-int(col), 0), max(self.grid.width - int(col), 0)),
        )
        return image, valid, integral, BlockDates(days, valid.numpy(), on_grid)
