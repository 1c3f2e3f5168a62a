"""Per-band normalisation statistics computed from the data, cached on disk."""

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from pyproj import CRS
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets.utils import GeoSlice, Sample

from ..constants import S2_NODATA
from ..lonlat import lonlat_extent
from ..outputs import replaced_when_complete

#: Changes whenever the values statistics are computed from change, so that
#: cached statistics of an earlier version are not reused (2: per-band
#: products of processing baseline 04.00 on are read without ESA's +1000).
STATISTICS_VERSION = 2


def default_cache_dir() -> Path:
    """Return where statistics are cached: ``$XDG_CACHE_HOME/torchgeo-simclr``.

    Returns:
        The cache directory (not created).
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "torchgeo-simclr"


def cache_key(files: Iterable[str], *parts: object) -> str:
    """Hash the files' names, sizes and modification times with extra parts.

    Args:
        files: the data files the statistics are computed from.
        parts: anything else that changes the result (bands, region, ...).

    Returns:
        A hex digest that changes when any file or part changes.
    """
    digest = hashlib.sha256(f"{STATISTICS_VERSION}\n".encode())
    for name in sorted(files):
        stat = os.stat(name)
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(repr(parts).encode())
    return digest.hexdigest()[:32]


def band_statistics(
    dataset: Dataset[Sample],
    locations: Iterable[GeoSlice | int],
    nodata: float = S2_NODATA,
) -> tuple[Tensor, Tensor]:
    """Compute per-band mean and standard deviation over valid pixels.

    A pixel is valid when no band equals *nodata*.

    Args:
        dataset: an image dataset whose samples have ``image`` ``[C, H, W]``.
        locations: the patches to read: GeoDataset queries or NonGeoDataset
            indices.
        nodata: value that marks missing pixels.

    Returns:
        Mean and standard deviation, each float32 ``[C]``, in the data's units.

    Raises:
        ValueError: if the patches hold no valid pixel.
    """
    total = count = squares = None
    read: list[GeoSlice | int] = []
    for location in locations:
        read.append(location)
        image = dataset[location]["image"].double().flatten(1)
        valid = (image != nodata).all(0)
        pixels = image[:, valid]
        if total is None or squares is None or count is None:
            total = pixels.sum(1)
            squares = (pixels**2).sum(1)
            count = valid.sum()
        else:
            total += pixels.sum(1)
            squares += (pixels**2).sum(1)
            count += valid.sum()
    if total is None or squares is None or count is None or count == 0:
        raise ValueError(_no_valid_pixel(dataset, read, nodata))
    mean = total / count
    std = (squares / count - mean**2).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def _no_valid_pixel(
    dataset: Dataset[Sample], read: Sequence[GeoSlice | int], nodata: float
) -> str:
    """The error for patches that hold no valid pixel, naming the imagery.

    Args:
        dataset: the dataset read.
        read: the patches read: GeoDataset queries or NonGeoDataset indices.
        nodata: value that marks missing pixels.

    Returns:
        One sentence: the imagery and patches, what was found, what to do.
    """
    paths = getattr(dataset, "paths", None) or getattr(dataset, "root", None)
    roots = [] if paths is None else [paths] if isinstance(paths, str | Path) else paths
    under = ", ".join(repr(str(root)) for root in roots) or "the dataset"
    what = f"{len(read)} patch{'' if len(read) == 1 else 'es'} read"
    boxes = [
        (q[0].start, q[1].start, q[0].stop, q[1].stop)
        for q in read
        if isinstance(q, tuple)
        and len(q) >= 2
        and isinstance(q[0], slice)
        and isinstance(q[1], slice)
    ]
    crs = getattr(dataset, "crs", None)
    if not boxes:
        return (
            f"No valid pixel was found in the {what} for band statistics from "
            f"{under}: every pixel is {nodata:g} (nodata) in some band; point "
            "--data.init_args.root at imagery whose band files hold data, and "
            "copy or extract them again if they were damaged."
        )
    xmin, ymin, xmax, ymax = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    if isinstance(crs, CRS):
        extent = ", ".join(map(str, lonlat_extent((xmin, ymin, xmax, ymax), crs)))
        where = f"lon/lat {extent}"
    else:
        where = f"x {xmin:g} to {xmax:g}, y {ymin:g} to {ymax:g}"
    clouds = (
        ", or --data.init_args.mask_clouds false if masked clouds covered it"
        if getattr(dataset, "cloud_masks", None)
        else ""
    )
    return (
        f"No valid pixel was found in the {what} for band statistics from the "
        f"imagery under {under} (within {where}): every pixel there is "
        f"{nodata:g} (nodata) in some band; pass a --data.init_args.bbox over "
        "imagery with data, other dates with --data.init_args.start and "
        f"--data.init_args.end{clouds}."
    )


def cached_band_statistics(
    dataset: Dataset[Sample],
    locations: Sequence[GeoSlice | int],
    key: str,
    cache_dir: Path | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`band_statistics`, read from or written to a JSON cache.

    The cache file is written under
    :func:`~torchgeo_simclr.outputs.partial_path` and renamed once complete:
    a reader never finds half a file, runs sharing the cache never share a
    temporary name, and a failed write leaves no temporary file behind.

    Args:
        dataset: an image dataset whose samples have ``image`` ``[C, H, W]``.
        locations: the patches to read when the cache misses.
        key: the cache key, e.g. from :func:`cache_key`.
        cache_dir: cache directory (default: :func:`default_cache_dir`).

    Returns:
        Mean and standard deviation, each float32 ``[C]``.
    """
    path = (cache_dir or default_cache_dir()) / "stats" / f"{key}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        return torch.tensor(cached["mean"]), torch.tensor(cached["std"])
    mean, std = band_statistics(dataset, locations)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_when_complete(path) as partial:
            partial.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}))
    except OSError as error:
        warnings.warn(
            f"Could not cache band statistics in {path} ({error}); they will be "
            "recomputed next time. Set cache_dir to a writable directory.",
            stacklevel=2,
        )
    return mean, std
