"""BigEarthNet-S2 v1.0 patches labelled irrigated or not from their CLC classes."""

import csv
import json
import os
import warnings
from collections.abc import Callable, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchgeo.datasets import BigEarthNet
from torchgeo.datasets.utils import Path as AnyPath
from torchgeo.datasets.utils import Sample
from tqdm import tqdm

from ..constants import IGNORE_INDEX, IRRIGATED, MAP_CLASSES, NOT_IRRIGATED, S2_BANDS

#: How a binary irrigation label is derived from the 43 CLC classes.
Scheme = Literal["regular", "extended"]

#: Name of a patch folder (and the prefix of its files).
PATCH_PATTERN = "S2?_MSIL2A_*"

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
    under *root* (skipped, with a warning, where *root* is read-only); later
    instantiations read the cache and only open the JSON files of patches it
    does not list.

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
            ValueError: if *scheme* is unknown, or a label file is malformed or
                names a class that is not one of BigEarthNet's 43.
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

    def _verify(self) -> None:
        """Find the patch folders (torchgeo's check would try to download).

        Raises:
            FileNotFoundError: if neither *root* nor ``root/BigEarthNet-v1.0``
                holds a patch folder.
        """
        root = Path(self.root)
        nested = root / self.metadata["s2"]["directory"]
        self.patch_dir = nested if nested.is_dir() else root
        self.names = _patch_names(self.patch_dir)
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
        msg = (
            f"No BigEarthNet-S2 patch folder found in {str(self.patch_dir)!r}: "
            f"{found}. Expected BigEarthNet-S2 v1.0 patch folders named like "
            "S2A_MSIL2A_20170613T101031_87_48, each with 12 band GeoTIFFs and a "
            "<name>_labels_metadata.json, in root or in root/BigEarthNet-v1.0; "
            f"download {self.metadata['s2']['url']} and extract it into root."
        )
        raise FileNotFoundError(msg)

    def _load_folders(self) -> list[dict[str, str]]:
        """Read (or scan and cache) every patch's labels and list its folder.

        Returns:
            One ``{"s2": folder}`` per patch, in :attr:`names` order.
        """
        cache = Path(self.root) / self.cache_name
        cached = _read_cache(cache)
        missing = [name for name in self.names if name not in cached]
        for name in tqdm(
            missing,
            desc="BigEarthNet labels",
            unit="patch",
            disable=not self.progress or not missing,
        ):
            cached[name] = self._read_classes(name)
        if missing or len(cached) != len(self.names):
            _write_cache(cache, {name: cached[name] for name in self.names})
        self.patch_classes = [cached[name] for name in self.names]
        return [{"s2": str(self.patch_dir / name)} for name in self.names]

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
        path = self.patch_dir / name / f"{name}_labels_metadata.json"
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


def _read_cache(path: Path) -> dict[str, tuple[int, ...]]:
    """Read the label cache: patch name to 43-class indices (empty if unusable)."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as file:
            rows = csv.DictReader(file)
            return {
                row["patch"]: tuple(int(i) for i in row["classes"].split())
                for row in rows
            }
    except (OSError, KeyError, ValueError, AttributeError, csv.Error) as error:
        warnings.warn(
            f"Ignoring the BigEarthNet label cache {str(path)!r} ({error!r}); the "
            "label files are read again and the cache rewritten.",
            stacklevel=3,
        )
        return {}


def _write_cache(path: Path, classes: dict[str, Sequence[int]]) -> None:
    """Write the label cache atomically; warn (and go on) where that fails."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with partial.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["patch", "classes"])
            writer.writerows(
                (name, " ".join(map(str, indices))) for name, indices in classes.items()
            )
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        warnings.warn(
            f"Could not cache the BigEarthNet labels in {str(path)!r} ({error}); "
            "they will be read from the label files again next time. Make the "
            "root writable to cache them.",
            stacklevel=3,
        )
