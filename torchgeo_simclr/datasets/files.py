"""The files a dataset is given: paths as a list, and checks of Sentinel-2 files."""

import os
import re
import shlex
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.io import DatasetReader
from rasterio.windows import Window
from torchgeo.datasets.utils import Path

#: A band description naming a Sentinel-2 band: ``B04``, ``B4``, ``B8A``,
#: ``B08A`` (any case, spaces around ignored).
BAND_DESCRIPTION = re.compile(r"^\s*B0?(1[0-2]|[1-9]|8A)\s*$", re.IGNORECASE)

#: Largest value of floating-point reflectance on a 0 to 1 scale, as Google
#: Earth Engine and SNAP export it: bright snow and cloud reach a little past 1,
#: while reflectance x10000 of any land surface lies far above.
FLOAT_REFLECTANCE_MAX = 1.5

#: Windows read across a floating-point file, per side, to see its values:
#: a 3 x 3 grid of :data:`VALUE_WINDOW` px squares.
VALUE_WINDOWS = 3

#: Side of each window read to see a floating-point file's values, pixels.
VALUE_WINDOW = 64


def as_path_list(paths: Path | Iterable[Path]) -> list[Path]:
    """Return *paths* as a list (a single path becomes a one-element list).

    Args:
        paths: one path, or several, as a dataset's ``paths`` takes them.

    Returns:
        The paths, in the order given.
    """
    if isinstance(paths, str | os.PathLike):
        return [paths]
    return list(paths)


def check_same_area(reference: str | DatasetReader, others: Sequence[str]) -> None:
    """Refuse band files of a product that cover another area than its reference.

    Args:
        reference: the product's indexed band file, or that file already open
            (then it is not opened again).
        others: its other band files.

    Raises:
        ValueError: If a file lies in another CRS than *reference*, or an edge
            lies more than one of the file's pixels from *reference*'s.
    """
    if isinstance(reference, DatasetReader):
        crs, bounds, reference = reference.crs, reference.bounds, reference.name
    else:
        with rasterio.open(reference) as src:
            crs, bounds = src.crs, src.bounds
    for path in others:
        with rasterio.open(path) as src:
            same_crs = src.crs == crs
            off = max(abs(a - b) for a, b in zip(src.bounds, bounds, strict=True))
            if same_crs and off <= max(abs(src.res[0]), abs(src.res[1])):
                continue
            found = f"{[round(v, 1) for v in src.bounds]} in {src.crs}"
        msg = (
            f"Band file {path!r} covers {found}, but its product's "
            f"{os.path.basename(reference)!r} covers "
            f"{[round(v, 1) for v in bounds]} in {crs}; expected every band of "
            "a product to cover the same area, so put back the product's own "
            "band file (a band cropped or reprojected by hand is not read)."
        )
        raise ValueError(msg)


def warn_copies(scenes: Sequence[str]) -> None:
    """Warn when scene files of one name lie in several folders under the root.

    They are read as one mosaic, the first file winning where they overlap: a
    backup copy or a reprocessed version of a product is then mixed in without
    a word.

    Called from a dataset's ``__init__``, whose caller the warning names.

    Args:
        scenes: multi-band scene files (their names are product ids).
    """
    folders: dict[str, list[str]] = {}
    for path in scenes:
        folders.setdefault(os.path.basename(path), []).append(os.path.dirname(path))
    repeated = {name: where for name, where in folders.items() if len(where) > 1}
    if repeated:
        name, where = next(iter(repeated.items()))
        msg = (
            f"{len(repeated)} Sentinel-2 scene name(s) occur in more than one folder, "
            f"e.g. {name!r} in {where}; they are read as one mosaic, the first file "
            "winning where they overlap, so point --root at one copy of each scene."
        )
        warnings.warn(msg, UserWarning, stacklevel=3)


def band_name(description: str | None) -> str | None:
    """The Sentinel-2 band a GDAL band description names, if it names one.

    Args:
        description: a band's description, e.g. ``"B04"``, ``"B4"`` or
            ``"b8a"`` (None where the file gives none).

    Returns:
        The band as the package spells it (``"B04"``, ``"B8A"``), or None for
        a description that is not a Sentinel-2 band name (e.g. ``"red"``).
    """
    match = BAND_DESCRIPTION.match(description or "")
    if match is None:
        return None
    number = match[1].upper()
    return "B8A" if number == "8A" else f"B{int(number):02d}"


def check_band_order(
    path: str, descriptions: Sequence[str | None], expected: Sequence[str]
) -> None:
    """Refuse a multi-band scene whose band descriptions name another order.

    Multi-band scenes are read by position. Where every band's description
    names a Sentinel-2 band, they must name *expected* in order; a file
    without descriptions, or with any description that is not a band name, is
    read by position as before.

    Args:
        path: the scene file.
        descriptions: its GDAL band descriptions, in band order.
        expected: the bands it must hold, in order.

    Raises:
        ValueError: If the descriptions name Sentinel-2 bands in another
            order, or other bands, than *expected*.
    """
    names = [band_name(description) for description in descriptions]
    if not names or None in names or names == list(expected):
        return
    found = " ".join(str(name) for name in names)
    name = os.path.basename(path)
    if sorted(map(str, names)) == sorted(expected):
        picks = " ".join(f"-b {names.index(band) + 1}" for band in expected)
        fix = (
            "so reorder them, e.g. `mkdir reordered && gdal_translate "
            f"{picks} {shlex.quote(path)} "
            f"{shlex.quote(os.path.join('reordered', name))}`, and point --root "
            "at the reordered folder"
        )
    else:
        fix = (
            "so write the 12 L2A bands once each, in that order (e.g. with "
            "gdal_translate -b), or store one file per band in a product directory"
        )
    msg = (
        f"Sentinel-2 scene {path!r} holds its bands in the order {found} (its "
        "band descriptions), but multi-band scenes are read by position, "
        f"expected in the order {' '.join(expected)}, {fix}."
    )
    raise ValueError(msg)


def check_value_scale(source: str | DatasetReader) -> None:
    """Refuse a floating-point file of reflectance 0 to 1 instead of x10000.

    Decides on the file's data type first: an integer file is read as it is,
    so it costs no read (and, passed open, no open). A floating-point one has
    a 3 x 3 grid of small windows read (see :data:`VALUE_WINDOWS`). Values
    of 0 (nodata), not finite, or the file's nodata value (e.g. -9999, as
    SNAP and GDAL write it) or outside its mask are left out; a file with no
    other value in those windows is not refused.

    Args:
        source: a Sentinel-2 file (a multi-band scene or a band file), or that
            file already open.

    Raises:
        ValueError: If the file is of a floating-point type and every value
            read lies within +-:data:`FLOAT_REFLECTANCE_MAX`.
    """
    if isinstance(source, DatasetReader):
        path, read = source.name, _float_values(source)
    else:
        with rasterio.open(source) as src:
            path, read = source, _float_values(src)
    if read is None:
        return
    values, dtype = read, read.dtype
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0 or np.abs(values).max() > FLOAT_REFLECTANCE_MAX:
        return
    fixed = os.path.join("converted", os.path.basename(path))
    msg = (
        f"Sentinel-2 file {path!r} holds {dtype} values of at most "
        f"{np.abs(values).max():.3g}, reflectance on a 0 to 1 scale (as Google "
        "Earth Engine and SNAP export it); expected reflectance x 10000 as L2A "
        "products store it (UInt16, e.g. 1234 for 0.1234, 0 = nodata), so "
        "convert it, e.g. `mkdir converted && gdal_translate -scale 0 1 0 10000 "
        "-ot UInt16 "
        f"{shlex.quote(path)} {shlex.quote(fixed)}`, and every other file alike "
        "(keeping their names and product folders), and point --root at the "
        "converted copies."
    )
    raise ValueError(msg)


def _float_values(src: DatasetReader) -> npt.NDArray[np.floating[Any]] | None:
    """The valid values of a 3 x 3 grid of windows across a floating-point file.

    Args:
        src: the open file.

    Returns:
        None for a file of an integer type (nothing is read), else the values
        read, flat, less those its nodata value or mask leave out.
    """
    if np.dtype(src.dtypes[0]).kind != "f":
        return None
    side = min(VALUE_WINDOW, src.width, src.height)
    parts = []
    for row in np.linspace(0, src.height - side, VALUE_WINDOWS).round():
        for col in np.linspace(0, src.width - side, VALUE_WINDOWS).round():
            window = Window(int(col), int(row), side, side)
            parts.append(src.read(window=window, masked=True).compressed())
    return np.concatenate(parts)
