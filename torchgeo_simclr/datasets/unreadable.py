"""Raster files that rasterio cannot open or read, named in one sentence."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from rasterio.errors import RasterioIOError

#: rasterio's message for a failed read; GDAL's reasons are chained to it.
READ_FAILED: Final[str] = "Read failed. See previous exception for details"


class UnreadableFileError(OSError, ValueError):
    """A raster file that rasterio cannot open or read (truncated, corrupted).

    An :class:`OSError`, as rasterio's own error is, and a :class:`ValueError`,
    which the commands report as one line of bad input (as
    :class:`io.UnsupportedOperation` is both).

    Takes one message: PyTorch re-raises the error of a DataLoader worker (or
    pin-memory thread) as ``type(error)(message)``, the message starting
    "Caught UnreadableFileError in DataLoader worker process 0." and going on
    with the worker's traceback, of which the sentence that ends it is kept.
    """

    def __init__(self, message: str) -> None:
        name = type(self).__name__
        if message.startswith(f"Caught {name} ") and "\nOriginal " in message:
            last = message.rstrip().splitlines()[-1]
            message = last.partition(f"{name}: ")[2] or last
        super().__init__(message)


def gdal_reason(error: BaseException, path: str | os.PathLike[str]) -> str:
    """GDAL's reason for a failed open or read, on one line.

    rasterio's "Read failed. See previous exception for details." chains
    GDAL's messages (e.g. "TIFFReadEncodedTile() failed"), each as the cause
    or context of the one before.

    Args:
        error: rasterio's error.
        path: the file opened or read, whose name GDAL's messages may start
            with (the caller names it already).

    Returns:
        The distinct messages of *error* and those it chains, outermost first,
        joined by ": ", without rasterio's "Read failed" and the file's name
        (or, without any message, the error's type).
    """
    names = (os.fspath(path), os.path.basename(path))
    messages: list[str] = []
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        text = " ".join(str(link).split()).rstrip(".")
        for name in names:
            text = text.removeprefix(f"{name}: ").removeprefix(f"{name}, ")
        if text and text != READ_FAILED and not any(text in m for m in messages):
            messages.append(text)
        link = link.__cause__ or link.__context__
    return ": ".join(messages) or type(error).__name__


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn rasterio's failure to open or read an image file into one sentence.

    Args:
        path: the file opened or read inside the block.

    Yields:
        Nothing; the block that opens or reads *path* runs inside.

    Raises:
        UnreadableFileError: If rasterio cannot open or read *path*.
    """
    try:
        yield
    except RasterioIOError as error:
        msg = (
            f"Sentinel-2 file {os.fspath(path)!r} could not be read "
            f"({gdal_reason(error, path)}); expected a complete GeoTIFF (or "
            "JPEG2000) raster, so it is probably truncated or corrupted: "
            "download it again, or move it out of the folder."
        )
        raise UnreadableFileError(msg) from error
