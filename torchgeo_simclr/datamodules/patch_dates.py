"""Sensing days of a block of pixels: of each patch cut from it, and of the map."""

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from ..datasets.dates import NAT, day_set


class BlockDates:
    """The sensing day of each pixel of a block, as the mosaic took them."""

    def __init__(
        self,
        days: npt.NDArray[np.int64],
        valid: npt.NDArray[np.bool_],
        on_grid: tuple[slice, slice],
    ) -> None:
        """Summarise a block's days.

        Args:
            days: ``[h, w]`` sensing day of each pixel's product, as numpy
                ``datetime64[D]`` integers, :data:`NAT` where no product has
                data or its name carries no date.
            valid: ``[h, w]`` pixels with data.
            on_grid: the rows and columns of the block that lie on the output
                grid (windows may reach beyond it).
        """
        #: ``[h, w]`` each pixel's sensing day.
        self.days = days
        every = day_set(days)
        inside = days[on_grid]
        #: The days of the block's pixels with data on the output grid,
        #: :data:`NAT` among them for pixels of products without a date.
        self.grid_days = every.copy() if inside.size == days.size else day_set(inside)
        if (
            inside.size
            and inside.min() == NAT
            and (valid[on_grid] & (inside == NAT)).any()
        ):
            self.grid_days.add(NAT)
        #: The block's only day (:data:`NAT` for none); None when it has
        #: several.
        self.only: int | None = None
        if len(every) <= 1:
            self.only = every.pop() if every else NAT

    def patch_days(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], size: int
    ) -> npt.NDArray[np.int64]:
        """The day most pixels of each patch come from.

        Args:
            rows: ``[n]`` top pixel row of each patch in the block.
            cols: ``[n]`` left pixel column of each patch in the block.
            size: patch side, pixels.

        Returns:
            ``[n]`` the most common known day of each patch (the newest of
            equally common ones), :data:`NAT` for a patch without one.
        """
        if self.only is not None:
            return np.full(len(rows), self.only, np.int64)
        windows = sliding_window_view(self.days, (size, size))
        out = np.full(len(rows), NAT, np.int64)
        for i, (row, col) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
            patch = windows[row, col]
            days, counts = np.unique(patch[patch != NAT], return_counts=True)
            if days.size:
                # unique sorts the days: the last of the most common is newest.
                out[i] = days[len(days) - 1 - int(np.argmax(counts[::-1]))]
        return out
