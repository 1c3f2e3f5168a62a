"""Mosaics of overlapping files, first file with data wins, and each pixel's file."""

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ..constants import S2_NODATA

#: Value of :attr:`PixelSources.array` where no file has data.
NO_SOURCE = -1


class PixelSources:
    """Which file of a mosaic each pixel came from.

    A pixel comes from the first file, in mosaic order, with data in the first
    band there (the mosaic takes each band's value from the first file with
    data in that band, which is the same file unless files lack data in some
    bands only).
    """

    def __init__(self) -> None:
        """Start with no file taken."""
        #: ``[H, W]`` position of each pixel's file in mosaic order,
        #: :data:`NO_SOURCE` where no file has data; None before the first
        #: file.
        self.array: npt.NDArray[np.int16] | None = None

    def take(
        self,
        part: Tensor | npt.NDArray[np.floating | np.integer],
        position: int,
        shape: tuple[int, int] | None = None,
        at: tuple[slice, slice] = (slice(None), slice(None)),
    ) -> None:
        """Give the pixels still without a file, where *part*'s first band has data.

        Args:
            part: ``[C, h, w]`` the file's pixels,
                :data:`~torchgeo_simclr.constants.S2_NODATA` where it has none.
            position: the file's position in mosaic order.
            shape: ``(H, W)`` of the whole mosaic (default: *part*'s).
            at: where *part* lies in the mosaic, rows and columns.
        """
        data = part.numpy() if isinstance(part, Tensor) else part
        has_data = data[0] != S2_NODATA
        if self.array is None:
            self.array = np.full(shape or has_data.shape, NO_SOURCE, np.int16)
        region = self.array[at]
        region[(region == NO_SOURCE) & has_data] = position


def first_valid(parts: Iterable[Tensor], sources: PixelSources | None = None) -> Tensor:
    """Mosaic files' pixels, each from the first file with data there.

    Args:
        parts: ``[C, H, W]`` each file's pixels under one query, in mosaic
            order, :data:`~torchgeo_simclr.constants.S2_NODATA` where it has
            none; consumed only while a pixel still lacks data, so a lazy
            iterable reads no file that could change nothing.
        sources: if given, records which part each pixel came from.

    Returns:
        ``[C, H, W]``.
    """
    mosaic: Tensor | None = None
    for position, part in enumerate(parts):
        if sources is not None:
            sources.take(part, position)
        mosaic = (
            part if mosaic is None else torch.where(mosaic.eq(S2_NODATA), part, mosaic)
        )
        if not mosaic.eq(S2_NODATA).any():
            break
    assert mosaic is not None  # a query always has a file under it
    return mosaic
