"""Writing a map strip by strip, then laying it out as a Cloud Optimized GeoTIFF."""

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import rasterio
import rasterio.shutil
from numpy.typing import NDArray
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..constants import MAP_CLASSES, MAP_NODATA
from .grid import OutputGrid

#: Nodata value of the probability raster (probabilities lie in [0, 1]).
PROBABILITY_NODATA = -1.0

#: Tile side of the COG layout, pixels (small enough for overviews of small maps).
COG_BLOCKSIZE = 256


def _no_space(path: Path, needed: int) -> OSError | None:
    """An ENOSPC error if *path*'s disk lacks room for *needed* more bytes.

    GDAL reports a full disk on stderr and then fails with a generic write or
    read error (or, for deferred writes, not at all); this names the cause
    while the partial file still takes up its room.

    Args:
        path: the file GDAL failed to write.
        needed: bytes it still had to write, at least.

    Returns:
        The error to raise, or None if the disk has that room (another cause).
    """
    free = shutil.disk_usage(path.parent).free
    if free >= needed:
        return None
    return OSError(
        errno.ENOSPC,
        f"{os.strerror(errno.ENOSPC)}: {path.name} needs {needed:,} bytes more, "
        f"{free:,} are free",
        str(path),
    )


def class_colormap() -> dict[int, tuple[int, int, int, int]]:
    """The colour table of a class map: MAP_CLASSES, nodata transparent.

    Returns:
        Class value -> RGBA (0-255).
    """
    table = {
        value: (*(int(colour[i : i + 2], 16) for i in (1, 3, 5)), 255)
        for value, (_, colour) in MAP_CLASSES.items()
    }
    table[MAP_NODATA] = (0, 0, 0, 0)
    return {key: (r, g, b, a) for key, (r, g, b, a) in table.items()}


class StripWriter:
    """A single-band GeoTIFF on the output grid, written one row strip at a time.

    The file is plain striped and uncompressed, so strips go straight to disk
    and memory stays at one strip; :func:`write_cog` lays it out as a COG.
    """

    def __init__(
        self,
        path: Path,
        grid: OutputGrid,
        dtype: str,
        nodata: float,
        description: str,
        tags: Mapping[str, str],
        colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    ) -> None:
        """Create the file.

        Args:
            path: where to write (a temporary name).
            grid: CRS, transform and size.
            dtype: ``uint8`` or ``float32``.
            nodata: nodata value.
            description: band description.
            tags: dataset metadata (model, checkpoint hash, dates, ...).
            colormap: optional colour table (uint8 only).
        """
        #: Where the file is written.
        self.path = path
        #: Bytes of pixel data the file holds once complete (it is uncompressed).
        self.size = grid.width * grid.height * np.dtype(dtype).itemsize
        #: The open file, one band on *grid*, in write mode.
        self.dataset = rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=1,
            dtype=dtype,
            crs=grid.crs.to_wkt(),
            transform=grid.transform,
            nodata=nodata,
            BIGTIFF="IF_SAFER",
        )
        try:
            self.dataset.set_band_description(1, description)
            self.dataset.update_tags(**tags)
            if colormap is not None:
                self.dataset.write_colormap(1, dict(colormap))
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to see
                self.dataset.close()
            raise

    def write(self, row: int, values: NDArray[Any]) -> None:
        """Write rows ``[row, row + len(values))``.

        Args:
            row: first grid row.
            values: ``[n, width]``.

        Raises:
            OSError: with errno ENOSPC if GDAL failed for want of disk space.
        """
        window = Window(0, row, values.shape[1], values.shape[0])
        try:
            self.dataset.write(values, 1, window=window)
        except RasterioError as error:
            full = _no_space(self.path, self.size - self.path.stat().st_size)
            if full is None:
                raise
            raise full from error

    def close(self) -> None:
        """Flush and close the file, and check that all its pixels reached the disk.

        GDAL only prints the write errors of the strips it flushes on closing.
        A second close, or one while another error is on its way, checks
        nothing: that error is the one to see.

        Raises:
            OSError: if the file came out short, with errno ENOSPC where the
                disk lacks the room for the rest.
        """
        if self.dataset.closed:
            return
        self.dataset.close()
        written = self.path.stat().st_size
        if written >= self.size or sys.exc_info()[1] is not None:
            return
        full = _no_space(self.path, self.size - written)
        if full is not None:
            raise full
        msg = (
            f"GDAL wrote {written:,} of the {self.size:,} bytes of {self.path} "
            "and reported no error; check that disk (quota, hardware errors) "
            "and run it again"
        )
        raise OSError(errno.EIO, msg, str(self.path))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def write_cog(source: Path, target: Path, resampling: str) -> None:
    """Copy a GeoTIFF to a Cloud Optimized GeoTIFF with GDAL's COG driver.

    Tiles of :data:`COG_BLOCKSIZE` pixels, DEFLATE compression (with the
    floating-point predictor for probabilities), and overviews down to one
    tile; nodata, colour table, band description and tags are carried over.
    GDAL compresses the tiles on all cores, or on as many threads as the
    environment variable ``GDAL_NUM_THREADS`` says (the same bytes either way).

    Args:
        source: the striped GeoTIFF.
        target: the COG to write (a temporary name; renamed by the caller).
        resampling: overview resampling, ``nearest`` for classes and
            ``average`` for probabilities.

    Raises:
        OSError: with errno ENOSPC, naming no file and keeping GDAL's message,
            if GDAL failed and the disk has less room than the striped file
            takes (an upper bound of the COG's size, so a guess).
    """
    with rasterio.open(source) as src:
        floating = np.dtype(src.dtypes[0]).kind == "f"
    try:
        rasterio.shutil.copy(
            source,
            target,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="YES" if floating else "NO",
            # Probabilities hardly compress (15 MB of 21 for the sample scene)
            # and level 1 gets within 2% of level 6 in 60% of the time; classes
            # shrink to half at level 6 for a few milliseconds more.
            LEVEL=1 if floating else 6,
            BLOCKSIZE=COG_BLOCKSIZE,
            OVERVIEW_RESAMPLING=resampling.upper(),
            BIGTIFF="IF_SAFER",
            # A shared machine's job may ask GDAL for fewer threads.
            NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", "").strip() or "ALL_CPUS",
        )
    except RasterioError as error:
        # The striped file's size only bounds the COG's: a disk with less room
        # may be full, or GDAL failed for another reason, which is kept.
        free, bound = shutil.disk_usage(target.parent).free, source.stat().st_size
        if free >= bound:
            raise
        first = str(error).strip().splitlines()[:1]
        msg = (
            f"GDAL could not write {target.name} ({first[0] if first else error!r})"
            f" with {free:,} bytes free, less than the {bound:,} of the striped "
            "file it compresses: the disk may be full"
        )
        raise OSError(errno.ENOSPC, msg) from error
