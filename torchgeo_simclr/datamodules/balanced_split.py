"""The study's class-balanced train / val / test split of patch-labelled data."""

import torch
from torch import Tensor

from ..constants import IRRIGATED, NOT_IRRIGATED

#: Percent of each class's chosen patches in train and in val; test gets the
#: rest (15% up to rounding).
TRAIN_PERCENT = 70
VAL_PERCENT = 15


def irrigation_splits(labels: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """Balance irrigated and not irrigated patches, then split each class 70/15/15.

    Every irrigated patch is used, with an equally large random sample of the
    not-irrigated ones (all of them where there are fewer). Each class is
    shuffled and cut on its own: train takes ``floor(0.70 n)`` of its *n*
    patches, val ``floor(0.15 n)``, test the rest. With 13,589 irrigated
    patches, train holds 2 x 9,512 = 19,024, val 2 x 2,038 and test
    2 x 2,039. Patches labelled anything else (e.g.
    :data:`~torchgeo_simclr.constants.IGNORE_INDEX`) are left out.

    Args:
        labels: patch labels ``[N]``: 1 irrigated, 0 not.
        seed: seed of the negatives' sample and of the shuffles.

    Returns:
        ``train``, ``val`` and ``test``: sorted int64 indices into *labels*,
        disjoint.
    """
    generator = torch.Generator().manual_seed(seed)
    positives = (labels == IRRIGATED).nonzero()[:, 0]
    negatives = (labels == NOT_IRRIGATED).nonzero()[:, 0]
    negatives = negatives[torch.randperm(len(negatives), generator=generator)]
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for members in (negatives[: len(positives)], positives):
        members = members[torch.randperm(len(members), generator=generator)]
        n_train = len(members) * TRAIN_PERCENT // 100
        n_val = len(members) * VAL_PERCENT // 100
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {split: torch.cat(chunks).sort().values for split, chunks in parts.items()}
