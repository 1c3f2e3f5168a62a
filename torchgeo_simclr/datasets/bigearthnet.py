"""BigEarthNet-S2 v1.0 patches labelled irrigated or not from their CLC classes."""

import csv
import json
import os
import re
import warnings
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from matplotlib.figure import Figure
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from torch import Tensor
from torchgeo.datasets import BigEarthNet
from torchgeo.datasets.utils import Path as AnyPath
from torchgeo.datasets.utils import Sample
from tqdm import tqdm

from ..constants import IGNORE_INDEX, IRRIGATED, MAP_CLASSES, NOT_IRRIGATED, S2_BANDS
from ..outputs import replaced_when_complete
from .unreadable import UnreadableFileError, gdal_reason

#: How a binary irrigation label is derived from the 43 CLC classes.
Scheme = Literal["regular", "extended"]

#: Name of a patch folder (and the prefix of its files).
PATCH_PATTERN = "S2?_MSIL2A_*"

#: A BigEarthNet v2 (reBEN) tile folder or patch folder name, e.g.
#: ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP`` (``_26_57`` after it for a
#: patch); v1.0 names have no ``_N..._R..._T...`` part.
V2_NAME = re.compile(r"_N\d{4}_R\d{3}_T\d{2}[A-Z]{3}(_\d+_\d+)?$")

#: Files or folders that only a BigEarthNet v2 (reBEN) root holds.
V2_ENTRIES = ("metadata.parquet", "BigEarthNet-S2", "Reference_Maps")


class CachedPatch(NamedTuple):
    """What the label cache records of one patch."""

    #: Indices into ``class_sets[43]``.
    classes: tuple[int, ...]
    #: Number of ``*.tif`` files in the patch folder when the labels were read.
    bands: int
    #: ``st_mtime_ns`` of the label file when it was read.
    mtime_ns: int
    #: Size of the label file, bytes, when it was read.
    size: int


#: Names of the binary labels in plot titles.
LABEL_NAMES = {
    NOT_IRRIGATED: MAP_CLASSES[NOT_IRRIGATED][0],
    IRRIGATED: MAP_CLASSES[IRRIGATED][0],
    IGNORE_INDEX: "Unlabelled",
}


class BigEarthNetIrrigation(BigEarthNet):
    """BigEarthNet-S2 v1.0 patches with a binary irrigated / not irrigated label.

    A patch is irrigated when its 43-class CORINE labels include one of
    :attr:`irrigated_classes` for the chosen *scheme*: ``regular`` counts only
    "Permanently irrigated land"; ``extended`` adds rice fields and the
    permanent crops that are irrigated in much of Europe (vineyards, fruit
    trees and berry plantations, olive groves). Names match exactly, so
    "Non-irrigated arable land" never counts.

    *root* is either a directory holding ``BigEarthNet-v1.0/`` (torchgeo's
    layout) or the directory of patch folders itself (e.g. the
    ``BigEarthNet-S2-Example`` folder of ``bigearthnet-common``). Each patch
    folder ``S2*_MSIL2A_*`` holds the 12 band GeoTIFFs ``<name>_B01.tif`` ...
    ``<name>_B12.tif`` and ``<name>_labels_metadata.json``. BigEarthNet's
    official split files are not used: the dataset holds every patch, and
    :func:`~torchgeo_simclr.datamodules.balanced_split.irrigation_splits`
    makes the study's balanced split.

    Reading the labels of all 590,326 patches takes a while, so the first
    instantiation caches each patch's 43-class labels in :attr:`cache_name`
    under *root* (skipped, with a warning, where *root* is read-only), with
    the modification time and size of its label file and its number of band
    files. Later instantiations read the cache and ``stat`` every label file
    (about 4 µs a patch, 2-3 s for the whole archive, once the file system's
    cache holds the folders; as long as reading them when it does not): only
    label files that are new, or whose time or size changed (an edited label
    file), are read again. Deleting the cache reads them all again.

    A patch folder without 12 band files (e.g. a half-extracted archive) is
    refused at instantiation, from the count the cache keeps; a band file
    that cannot be read (truncated) raises
    :class:`~torchgeo_simclr.datasets.UnreadableFileError` naming it when its
    patch is read. BigEarthNet v2 (reBEN: ``metadata.parquet`` and per-tile
    folders) is refused: it stores its labels and folders otherwise.

    Samples: ``image`` float32 ``[12, 120, 120]``, reflectance x10000, bands
    in :data:`~torchgeo_simclr.constants.S2_BANDS` order (20 m and 60 m bands
    resampled bilinearly to 10 m); ``label`` int64 scalar, 1 irrigated, 0 not.
    """

    #: CLC class names (of ``class_sets[43]``) that make a patch irrigated, per
    #: scheme.
    irrigated_classes: ClassVar[dict[str, tuple[str, ...]]] = {
        "regular": ("Permanently irrigated land",),
        "extended": (
            "Permanently irrigated land",
            "Rice fields",
            "Vineyards",
            "Fruit trees and berry plantations",
            "Olive groves",
        ),
    }

    #: File under *root* caching every patch's 43-class label indices.
    cache_name = "bigearthnet_s2_labels.csv"

    #: Band names, in the order of ``image``.
    all_bands: tuple[str, ...] = S2_BANDS

    #: Folder holding the patch folders (*root* or ``root/BigEarthNet-v1.0``).
    patch_dir: Path

    #: Patch names, sorted; patch *i* is sample *i*.
    names: list[str]

    #: 43-class label indices of each patch, in :attr:`names` order.
    patch_classes: list[tuple[int, ...]]

    #: Binary label of each patch, int64 ``[N]``: 1 irrigated, 0 not.
    labels: torch.Tensor

    def __init__(
        self,
        root: AnyPath = "data",
        scheme: Scheme = "regular",
        transforms: Callable[[Sample], Sample] | None = None,
        progress: bool = True,
    ) -> None:
        """Initialise a new BigEarthNetIrrigation dataset.

        Args:
            root: directory holding ``BigEarthNet-v1.0/``, or the patch folders.
            scheme: ``regular`` or ``extended`` (see the class description).
            transforms: a function applied to each sample.
            progress: show a progress bar while reading label files.

        Raises:
            ValueError: if *scheme* is unknown, a label file is malformed or
                names a class that is not one of BigEarthNet's 43, a patch
                folder holds other than 12 band files, or *root* holds
                BigEarthNet v2 (reBEN).
            FileNotFoundError: if *root* holds no patch folder, or a patch
                folder has no label file.
        """
        if scheme not in self.irrigated_classes:
            msg = (
                f"scheme must be one of {list(self.irrigated_classes)}, got "
                f"{scheme!r}; pass --data.init_args.scheme regular or extended."
            )
            raise ValueError(msg)
        #: Labelling scheme: ``regular`` or ``extended`` (a key of
        #: :attr:`irrigated_classes`).
        self.scheme = scheme
        #: Whether a progress bar is shown while label files are read.
        self.progress = progress
        super().__init__(root, bands="s2", num_classes=43, transforms=transforms)
        irrigated = {self.class2idx[name] for name in self.irrigated_classes[scheme]}
        #: Binary label of each patch, int64 ``[N]``: 1 irrigated, 0 not.
        self.labels = torch.tensor(
            [int(not irrigated.isdisjoint(c)) for c in self.patch_classes],
            dtype=torch.long,
        )

    def __getitem__(self, index: int) -> Sample:
        """Read one patch.

        Args:
            index: 0..N-1.

        Returns:
            ``image`` float32 ``[12, 120, 120]`` and ``label`` int64 scalar.

        Raises:
            ValueError: if the patch folder does not hold 12 band files.
            UnreadableFileError: if a band file cannot be read.
        """
        image = self._load_image(index)
        if image.shape[0] != len(self.all_bands):
            folder = self.folders[index]["s2"]
            msg = (
                f"Patch folder {folder!r} holds {image.shape[0]} band GeoTIFFs but "
                f"BigEarthNet-S2 patches have {len(self.all_bands)} "
                f"({', '.join(self.all_bands)}); re-extract the patch from the "
                "archive or remove its folder."
            )
            raise ValueError(msg)
        sample: Sample = {"image": image, "label": self.labels[index].clone()}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def band_files(self, index: int) -> list[str]:
        """List the band GeoTIFFs of one patch.

        Args:
            index: 0..N-1.

        Returns:
            Paths of the patch's band files, in :attr:`all_bands` order.
        """
        return self._load_paths(index)

    def _load_image(self, index: int) -> Tensor:
        """Read one patch's band files, resampled to 120 x 120.

        Args:
            index: 0..N-1.

        Returns:
            float32 ``[bands, 120, 120]``, in :attr:`all_bands` order.

        Raises:
            UnreadableFileError: if a band file cannot be opened or read.
        """
        arrays = []
        for path in self._load_paths(index):
            try:
                with rasterio.open(path) as dataset:
                    arrays.append(
                        dataset.read(
                            indexes=1,
                            out_shape=self.image_size,
                            out_dtype="int32",
                            resampling=Resampling.bilinear,
                        )
                    )
            except RasterioIOError as error:
                folder = os.path.dirname(path)
                msg = (
                    f"BigEarthNet-S2 band file {path!r} could not be read "
                    f"({gdal_reason(error, path)}); expected a complete GeoTIFF, so "
                    "it is probably truncated or corrupted: extract its patch "
                    f"folder {os.path.basename(folder)} from the archive again."
                )
                raise UnreadableFileError(msg) from error
        return torch.from_numpy(np.stack(arrays, axis=0)).float()

    def _verify(self) -> None:
        """Find the patch folders (torchgeo's check would try to download).

        Raises:
            FileNotFoundError: if neither *root* nor ``root/BigEarthNet-v1.0``
                holds a patch folder.
            ValueError: if *root* holds BigEarthNet v2 (reBEN).
        """
        root = Path(self.root)
        nested = root / self.metadata["s2"]["directory"]
        self.patch_dir = nested if nested.is_dir() else root
        self.names = _patch_names(self.patch_dir)
        self._refuse_v2()
        if self.names:
            return
        if not self.patch_dir.is_dir():
            found = "it does not exist or is not a directory"
        else:
            entries = sorted(os.listdir(self.patch_dir))
            found = (
                f"it holds {len(entries)} entries but no patch folder (e.g. "
                f"{entries[0]!r})"
                if entries
                else "it is empty"
            )
        archive = self.metadata["s2"]["filename"]
        get_it = (
            f"extract the archive {archive} found there (tar -xzf {archive})"
            if (self.patch_dir / archive).is_file()
            else f"download {self.metadata['s2']['url']} and extract it into root"
        )
        msg = (
            f"No BigEarthNet-S2 patch folder found in {str(self.patch_dir)!r}: "
            f"{found}. Expected BigEarthNet-S2 v1.0 patch folders named like "
            "S2A_MSIL2A_20170613T101031_87_48, each with 12 band GeoTIFFs and a "
            "<name>_labels_metadata.json, in root or in root/BigEarthNet-v1.0; "
            f"{get_it}."
        )
        raise FileNotFoundError(msg)

    def _refuse_v2(self) -> None:
        """Refuse a BigEarthNet v2 (reBEN) root, tile folder or patch folder.

        Raises:
            ValueError: if :attr:`patch_dir` holds v2's ``metadata.parquet``,
                ``BigEarthNet-S2`` or ``Reference_Maps`` (and no v1.0 patch
                folder), or folders named as v2 names its tiles and patches.
        """
        v2_names = [name for name in self.names[:10] if V2_NAME.search(name)]
        if v2_names:
            found = f"folders named like v2's tiles or patches, e.g. {v2_names[0]!r}"
        elif not self.names:
            entries = [e for e in V2_ENTRIES if (self.patch_dir / e).exists()]
            if not entries:
                return
            found = f"v2's {', '.join(entries)}"
        else:
            return
        msg = (
            f"{str(self.patch_dir)!r} holds BigEarthNet v2 (reBEN) data ({found}), "
            "which is not supported: BigEarthNetIrrigation reads BigEarthNet-S2 "
            "v1.0, whose patch folders (named like "
            "S2A_MSIL2A_20170613T101031_87_48) each hold their labels; download "
            f"{self.metadata['s2']['url']} and extract it into a root of its own."
        )
        raise ValueError(msg)

    def _load_folders(self) -> list[dict[str, str]]:
        """Read (or scan and cache) every patch's labels and list its folder.

        A cached patch whose label file's modification time or size changed
        is read again; so is one whose folder held other than 12 band files.

        Returns:
            One ``{"s2": folder}`` per patch, in :attr:`names` order.

        Raises:
            ValueError: if a patch folder holds other than 12 band files.
        """
        cache = Path(self.root) / self.cache_name
        cached = _read_cache(cache)
        stale = []
        for name in self.names:
            entry = cached.get(name)
            if entry is None or entry.bands != len(self.all_bands):
                stale.append(name)
                continue
            try:
                info = os.stat(self._label_path(name))
            except OSError:
                stale.append(name)  # reading it names the missing file
                continue
            if (info.st_mtime_ns, info.st_size) != (entry.mtime_ns, entry.size):
                stale.append(name)
        for name in tqdm(
            stale,
            desc="BigEarthNet labels",
            unit="patch",
            disable=not self.progress or not stale,
        ):
            cached[name] = self._read_patch(name)
        if stale or len(cached) != len(self.names):
            _write_cache(cache, {name: cached[name] for name in self.names})
        self._refuse_incomplete({name: cached[name].bands for name in self.names})
        self.patch_classes = [cached[name].classes for name in self.names]
        return [{"s2": str(self.patch_dir / name)} for name in self.names]

    def _refuse_incomplete(self, bands: dict[str, int]) -> None:
        """Refuse patch folders that do not hold one file per band.

        Args:
            bands: number of band files of each patch.

        Raises:
            ValueError: naming the first such folder, and how many there are.
        """
        wrong = [name for name, count in bands.items() if count != len(self.all_bands)]
        if not wrong:
            return
        first = wrong[0]
        others = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        directory = self.metadata["s2"]["directory"]
        msg = (
            f"Patch folder {str(self.patch_dir / first)!r}{others} holds "
            f"{bands[first]} band GeoTIFFs but BigEarthNet-S2 patches have "
            f"{len(self.all_bands)} ({', '.join(self.all_bands)}), so the archive "
            "was not fully extracted; extract the patch folders again from "
            f"BigEarthNet-S2-v1.0.tar.gz (e.g. tar -xzf BigEarthNet-S2-v1.0.tar.gz "
            f"{directory}/{first}) rather than removing them, which changes the "
            "split."
        )
        raise ValueError(msg)

    def _label_path(self, name: str) -> Path:
        """The label file of patch *name*."""
        return self.patch_dir / name / f"{name}_labels_metadata.json"

    def _read_patch(self, name: str) -> CachedPatch:
        """Read one patch's labels and count its band files, for the cache.

        Args:
            name: the patch name.

        Returns:
            What the cache records of the patch.
        """
        path = self._label_path(name)
        classes = self._read_classes(name)
        info = os.stat(path)
        with os.scandir(path.parent) as entries:
            bands = sum(1 for entry in entries if entry.name.endswith(".tif"))
        return CachedPatch(classes, bands, info.st_mtime_ns, info.st_size)

    def _read_classes(self, name: str) -> tuple[int, ...]:
        """Read the 43-class label indices of one patch from its JSON file.

        Args:
            name: the patch name.

        Returns:
            Indices into ``class_sets[43]``.

        Raises:
            FileNotFoundError: if the label file is missing.
            ValueError: if it is malformed or names an unknown class.
        """
        path = self._label_path(name)
        try:
            with path.open() as file:
                labels = json.load(file)["labels"]
        except FileNotFoundError:
            msg = (
                f"Patch folder {str(path.parent)!r} has no {path.name}, which every "
                "BigEarthNet-S2 v1.0 patch holds; re-extract the patch from the "
                "archive or remove its folder."
            )
            raise FileNotFoundError(msg) from None
        except (json.JSONDecodeError, KeyError, TypeError):
            labels = None
        if not isinstance(labels, list):
            msg = (
                f"{str(path)!r} is not a BigEarthNet label file: expected a JSON "
                "object whose 'labels' is a list of 43-class names; re-extract the "
                "patch from the archive."
            )
            raise ValueError(msg)
        unknown = [label for label in labels if label not in self.class2idx]
        if unknown:
            msg = (
                f"{str(path)!r} lists {unknown[0]!r}, which is not one of "
                "BigEarthNet's 43 classes (BigEarthNet.class_sets[43]); correct "
                "the name or re-extract the patch from the archive."
            )
            raise ValueError(msg)
        return tuple(sorted(self.class2idx[label] for label in labels))

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample in natural colour with its label and prediction.

        B04, B03 and B02 are shown as red, green and blue, reflectance 0 to
        0.2 stretched to black to white.

        Args:
            sample: a sample from :meth:`__getitem__`, ``image`` ``[12, H, W]``,
                optionally with ``prediction``: a probability of irrigated
                (float) or a class (integer).
            show_titles: title the panel with the label (and prediction).
            suptitle: optional title of the whole figure.

        Returns:
            A matplotlib Figure.
        """
        rgb = [self.all_bands.index(band) for band in ("B04", "B03", "B02")]
        image = sample["image"][rgb].detach().cpu().float().numpy()
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(np.clip(image.transpose(1, 2, 0) / 2000, 0, 1))
        ax.axis("off")
        if show_titles:
            title = LABEL_NAMES[int(sample["label"])]
            if "prediction" in sample:
                prediction = sample["prediction"].detach().cpu()
                if prediction.is_floating_point():
                    p = float(prediction)
                    title += f"\nPrediction: {LABEL_NAMES[int(p > 0.5)]} ({p:.2f})"
                else:
                    title += f"\nPrediction: {LABEL_NAMES[int(prediction)]}"
            ax.set_title(title)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig


def _patch_names(directory: Path) -> list[str]:
    """The patch folders directly inside *directory*, sorted (none if missing)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(
                entry.name
                for entry in entries
                if fnmatch(entry.name, PATCH_PATTERN) and entry.is_dir()
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_cache(path: Path) -> dict[str, CachedPatch]:
    """Read the label cache: patch name to its record (empty if unusable).

    A cache of an earlier version, without label file times, sizes and band
    counts, gives records that are all out of date, so every label is read
    again once.
    """
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as file:
            rows = csv.DictReader(file)
            return {
                row["patch"]: CachedPatch(
                    tuple(int(i) for i in row["classes"].split()),
                    int(row.get("bands") or -1),
                    int(row.get("json_mtime_ns") or -1),
                    int(row.get("json_size") or -1),
                )
                for row in rows
            }
    except (OSError, KeyError, ValueError, AttributeError, csv.Error) as error:
        warnings.warn(
            f"Ignoring the BigEarthNet label cache {str(path)!r} ({error!r}); the "
            "label files are read again and the cache rewritten.",
            stacklevel=3,
        )
        return {}


def _write_cache(path: Path, patches: dict[str, CachedPatch]) -> None:
    """Write the label cache atomically; warn (and go on) where that fails.

    The cache is written under :func:`~torchgeo_simclr.outputs.partial_path`
    and renamed once complete, so two processes reading the same root never
    share a temporary name, and a failure leaves no temporary file behind.
    """
    try:
        with (
            replaced_when_complete(path) as partial,
            partial.open("w", newline="") as file,
        ):
            writer = csv.writer(file)
            writer.writerow(["patch", "classes", "bands", "json_mtime_ns", "json_size"])
            writer.writerows(
                (name, " ".join(map(str, p.classes)), p.bands, p.mtime_ns, p.size)
                for name, p in patches.items()
            )
    except OSError as error:
        warnings.warn(
            f"Could not cache the BigEarthNet labels in {str(path)!r} ({error}); "
            "they will be read from the label files again next time. Make the "
            "root writable to cache them.",
            stacklevel=3,
        )
