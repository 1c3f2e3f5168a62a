"""Nested, class-balanced labelled subsets and a dataset over fixed patches."""

import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import GeoDataset
from tqdm import tqdm

from ..constants import IGNORE_INDEX, IRRIGATED
from ..inference.normalise import has_data
from ..patch_labels import patch_labels

#: A patch as the grid samplers yield it: ``(x slice, y slice)`` in CRS units.
Patch = tuple[slice, slice]


def nested_balanced_subset(labels: Tensor, fraction: float, seed: int = 0) -> Tensor:
    """Pick a class-balanced share of the labelled patches, nested across fractions.

    Each class is shuffled once with *seed*; a fraction takes ``n = round(fraction
    * labelled)`` patches (at least one per class), half from each class, taking
    more from the other class where one runs out. Every class contributes a
    prefix of its own shuffle, and the prefix grows with *fraction*, so with the
    same *seed* the 1% subset lies inside the 3% subset, which lies inside the
    10% subset, and so on. ``fraction=1`` takes every labelled patch.

    Args:
        labels: patch labels ``[N]`` (0, 1 or :data:`IGNORE_INDEX`).
        fraction: share of the labelled patches to keep, in ``(0, 1]``.
        seed: seed of the per-class shuffles.

    Returns:
        Sorted indices into *labels* of the chosen patches.

    Raises:
        ValueError: if *fraction* is outside ``(0, 1]`` or no patch is labelled.
    """
    if not 0 < fraction <= 1:
        msg = f"label_fraction must be in (0, 1], got {fraction}."
        raise ValueError(msg)
    generator = torch.Generator().manual_seed(seed)
    classes = []
    for value in (0, 1):
        members = (labels == value).nonzero()[:, 0]
        classes.append(members[torch.randperm(len(members), generator=generator)])
    counts = [len(members) for members in classes]
    total = sum(counts)
    if total == 0:
        msg = "No training patch is labelled; check the label file and class map."
        raise ValueError(msg)
    n = min(max(round(fraction * total), 2), total)
    half = [math.ceil(n / 2), n // 2]
    take = [
        min(counts[c], half[c] + max(0, half[1 - c] - counts[1 - c])) for c in (0, 1)
    ]
    chosen = torch.cat([classes[c][: take[c]] for c in (0, 1)])
    return chosen.sort().values


def draw_labelled_subset(
    datamodule: LightningDataModule,
    labels: Tensor,
    fraction: float,
    seed: int,
    pool: str,
) -> tuple[Tensor, int]:
    """Draw the labelled subset, print it and hand its size to the loggers.

    The subset is :func:`nested_balanced_subset`'s. Its size becomes the
    datamodule's hyperparameters, which Lightning logs with the task's at the
    start of a run (TensorBoard's HPARAMS, ``hparams.yaml`` of the CSV logger,
    MLflow, W&B), so label-efficiency runs can be told apart and plotted by
    their number of labels.

    Args:
        datamodule: the datamodule that draws the subset.
        labels: patch labels of the training patches, ``[N]``.
        fraction: its ``label_fraction``.
        seed: its ``label_seed``.
        pool: the patches drawn from, for the message, e.g.
            ``"1082 labelled training patches"``.

    Returns:
        Indices into *labels* of the labelled patches, and how many of them
        are irrigated.
    """
    chosen = nested_balanced_subset(labels, fraction, seed)
    n_labels = len(chosen)
    irrigated = int((labels[chosen] == IRRIGATED).sum())
    rank_zero_info(
        f"Labelled subset: {n_labels} of {pool} ({irrigated} irrigated, "
        f"{n_labels - irrigated} not; label_fraction={fraction}, label_seed={seed})"
    )
    datamodule.save_hyperparameters(
        {
            "label_fraction": fraction,
            "label_seed": seed,
            "n_labels": n_labels,
            "n_labels_irrigated": irrigated,
        }
    )
    return chosen, irrigated


def grid_patch_labels(
    dataset: GeoDataset,
    patches: Sequence[Patch],
    progress: bool = False,
    min_labelled: float = 0.5,
) -> Tensor:
    """Read the mask of each patch and reduce it to a patch label.

    Where the samples also hold an ``image``, its pixels without data (any
    band 0, e.g. cloud-masked) count as unlabelled, as they do in training, so
    a patch that is mostly nodata gets no label and is never drawn into a
    labelled subset.

    Args:
        dataset: a dataset returning ``mask`` (e.g.
            :class:`~torchgeo_simclr.datasets.IrrigationLabels`), or ``image``
            and ``mask`` (the imagery intersected with the labels).
        patches: the patches to label.
        progress: show a progress bar.
        min_labelled: share of a patch's pixels that must be labelled (and
            have data) for the patch to get a label.

    Returns:
        ``[N]`` labels: 0, 1 or :data:`IGNORE_INDEX` (see
        :func:`~torchgeo_simclr.patch_labels.patch_labels`).
    """
    out = []
    for patch in tqdm(patches, desc="label patches", disable=not progress):
        sample = dataset[patch]
        mask = sample["mask"]
        if "image" in sample:
            mask = mask.masked_fill(~has_data(sample["image"], dim=0), IGNORE_INDEX)
        out.append(patch_labels(mask[None], min_labelled)[0])
    return torch.stack(out) if out else torch.empty(0, dtype=torch.long)


class PatchDataset(Dataset[dict[str, Any]]):
    """A fixed list of patches of a GeoDataset, indexed 0..N-1.

    Patches outside *labelled* keep their image but get a mask of
    :data:`IGNORE_INDEX`, so a distillation run sees every patch while a
    supervised loss sees only the labelled subset. With *in_memory* each
    sample is read once and kept (fast for repeated epochs over few patches).
    """

    def __init__(
        self,
        dataset: GeoDataset,
        patches: Sequence[Patch],
        labelled: Tensor | None = None,
        in_memory: bool = False,
    ) -> None:
        """Initialise a new PatchDataset.

        Args:
            dataset: where samples are read.
            patches: the patches, in order.
            labelled: boolean ``[N]``, True where the mask is kept (default:
                all).
            in_memory: keep samples in memory after the first read.
        """
        #: Where samples are read.
        self.dataset = dataset
        #: The patches, in index order.
        self.patches = list(patches)
        #: Bool ``[N]``, True where the mask is kept; None keeps all.
        self.labelled = labelled
        #: Whether samples are kept in memory after the first read.
        self.in_memory = in_memory
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        """Return the number of patches.

        Returns:
            N.
        """
        return len(self.patches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Read one patch.

        Args:
            index: 0..N-1.

        Returns:
            The dataset's sample, mask blanked where the patch is not labelled.
        """
        sample = self._cache.get(index)
        if sample is None:
            sample = self.dataset[self.patches[index]]
            blank = self.labelled is not None and not self.labelled[index]
            if blank and "mask" in sample:
                sample["mask"] = torch.full_like(sample["mask"], IGNORE_INDEX)
            if self.in_memory:
                self._cache[index] = sample
        return dict(sample)
