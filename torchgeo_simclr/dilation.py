"""Widening pixel flags by a number of pixels, with NumPy alone."""

import numpy as np
import numpy.typing as npt


def grow(flags: npt.NDArray[np.bool_], reach: int) -> npt.NDArray[np.bool_]:
    """Widen flags by *reach* pixels in every direction, square corners.

    A pixel of the result is set where any pixel of its ``2 reach + 1``
    square neighbourhood is; the outer *reach* pixels, whose neighbourhood
    leaves the array, are dropped (pad the input to keep its shape).

    Args:
        flags: ``[H, W]`` bool.
        reach: pixels, 0 or more.

    Returns:
        ``[H - 2 reach, W - 2 reach]`` bool.
    """
    if not reach:
        return flags
    size = 2 * reach + 1
    height, width = flags.shape
    rows = flags[:, : width - size + 1].copy()
    for shift in range(1, size):
        rows |= flags[:, shift : width - size + 1 + shift]
    grown = rows[: height - size + 1].copy()
    for shift in range(1, size):
        grown |= rows[shift : height - size + 1 + shift]
    return grown
