"""What made a file: software versions, source commit, seed and parent files.

Checkpoints, maps, embedding indexes and scores record these so that a
reader can tell which code produced them. Each value is looked up once per
process and only reports what it finds: nothing is guessed.
"""

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import rasterio
import torch

from . import __version__
from .digest import file_digest

#: Distributions whose versions :func:`software_versions` records, by key.
DISTRIBUTIONS: Final[dict[str, str]] = {
    "torchgeo": "torchgeo",
    "lightning": "lightning",
    "timm": "timm",
    "kornia": "kornia",
    "rasterio": "rasterio",
    "numpy": "numpy",
}

#: Seconds one ``git`` call of :func:`source_commit` may take.
GIT_TIMEOUT_S: Final[float] = 5.0

#: Marks a commit whose checkout has changes to tracked files.
UNCOMMITTED: Final[str] = " (+ uncommitted changes)"

#: Checkpoint keys naming the checkpoint a stage was built from, whose
#: SHA-256 :func:`parent_digests` records as ``<key>_sha256``.
PARENT_KEYS: Final[tuple[str, ...]] = ("pretrained_from", "teacher")


def software_versions() -> dict[str, str]:
    """Versions of the software that makes this package's outputs.

    Returns:
        ``torchgeo_simclr``, ``torch`` (with its build tag, e.g.
        ``2.14.1+cu130``), ``torchgeo``, ``lightning``, ``timm``, ``kornia``,
        ``rasterio``, ``gdal`` (the GDAL rasterio was built with), ``numpy``
        and ``python``. A distribution that is not installed is left out.
        Each call returns a new dict (the lookup itself is cached).
    """
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    """The versions :func:`software_versions` returns, looked up once."""
    versions = {"torchgeo_simclr": __version__, "torch": str(torch.__version__)}
    for key, distribution in DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    versions["gdal"] = str(rasterio.__gdal_version__)
    versions["python"] = platform.python_version()
    return versions


def _git(folder: Path, *args: str) -> str | None:
    """Run ``git -C folder ARGS``; its output, or None if it fails."""
    # A GIT_DIR or GIT_WORK_TREE of the caller (a hook, say) would point git
    # at another repository.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("GIT_")
    }
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.cache
def source_commit() -> str | None:
    """The git commit of this package's source, when it runs from a checkout.

    Returns:
        The full commit hash, followed by ``" (+ uncommitted changes)"``
        when tracked files differ from it; None when the package is not
        the top of a git checkout (an installed wheel: a virtual environment
        inside some other repository does not count), git is missing or
        too slow.
    """
    folder = Path(__file__).resolve().parent.parent
    found = _git(folder, "rev-parse", "--show-toplevel", "HEAD")
    if found is None:
        return None
    lines = found.split()
    if len(lines) != 2 or Path(lines[0]).resolve() != folder:
        return None
    commit = lines[1]
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return None
    return commit + UNCOMMITTED if status.strip() else commit


def software_record() -> dict[str, str | None]:
    """The versions and the source commit, as outputs record them.

    Returns:
        :func:`software_versions` and ``commit`` (:func:`source_commit`):
        plain strings (and None), which ``torch.load(weights_only=True)``
        and JSON both accept.
    """
    return {**software_versions(), "commit": source_commit()}


def global_seed() -> int | None:
    """The seed Lightning's ``seed_everything`` set in this process.

    Returns:
        ``PL_GLOBAL_SEED`` as an int; None when no seed was set (or it is not
        an integer).
    """
    seed = os.environ.get("PL_GLOBAL_SEED")
    try:
        return None if seed is None else int(seed)
    except ValueError:
        return None


@functools.cache
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of *path*, computed once per file version (size, mtime)."""
    return file_digest(path)


def cached_file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of a file, hashed again only when its size or mtime changed.

    Args:
        path: the file.

    Returns:
        The hex digest, or None when *path* is not a readable file.
    """
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        if not resolved.is_file():
            return None
        return _digest(resolved, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None


def parent_digests(meta: dict[str, Any]) -> dict[str, str | None]:
    """SHA-256 of the checkpoints a stage was built from.

    Args:
        meta: a checkpoint's ``torchgeo_simclr`` entry, with the paths it
            names under :data:`PARENT_KEYS` (``pretrained_from``,
            ``teacher``).

    Returns:
        ``<key>_sha256`` for each of those keys *meta* has: the digest of
        the file now at that path, or None when there is no path or no file.
    """
    return {
        f"{key}_sha256": None if meta[key] is None else cached_file_digest(meta[key])
        for key in PARENT_KEYS
        if key in meta
    }
