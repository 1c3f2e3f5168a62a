"""The files a dataset is given: paths as a list, and checks of Sentinel-2 files."""

import os
import warnings
from collections.abc import Iterable, Sequence

import rasterio
from torchgeo.datasets.utils import Path


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


def check_same_area(reference: str, others: Sequence[str]) -> None:
    """Refuse band files of a product that cover another area than its reference.

    Args:
        reference: the product's indexed band file.
        others: its other band files.

    Raises:
        ValueError: If a file lies in another CRS than *reference*, or an edge
            lies more than one of the file's pixels from *reference*'s.
    """
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
