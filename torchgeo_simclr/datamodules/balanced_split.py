"""The study's class-balanced train / val / test split of patch-labelled data."""

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

from ..constants import IRRIGATED, NOT_IRRIGATED

#: Percent of each class's chosen patches in train and in val; test gets the
#: rest (15% up to rounding).
TRAIN_PERCENT = 70
VAL_PERCENT = 15


def patch_key(seed: int, name: str) -> int:
    """A patch's place in the split's order: a hash of *seed* and its name.

    Args:
        seed: the split's seed.
        name: the patch's name.

    Returns:
        An integer in ``[0, 2**63)``, the same in every process and run.
    """
    digest = hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def irrigation_splits(
    labels: Tensor, seed: int = 0, names: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """Balance irrigated and not irrigated patches, then split each class 70/15/15.

    Every irrigated patch is used, with an equally large sample of the
    not-irrigated ones (all of them where there are fewer). Each class is
    ordered by a per-patch key, a hash of *seed* and the patch's name
    (:func:`patch_key`), and cut on its own: train takes ``floor(0.70 n)`` of
    its *n* patches, val ``floor(0.15 n)``, test the rest; the negatives drawn
    are those with the smallest keys. With 13,589 irrigated patches, train
    holds 2 x 9,512 = 19,024, val 2 x 2,038 and test 2 x 2,039. Patches
    labelled anything else (e.g.
    :data:`~torchgeo_simclr.constants.IGNORE_INDEX`) are left out.

    Since a patch's key does not depend on the other patches, adding or
    removing one patch moves only the few patches at the cuts from one split
    to another (a shared shuffle would deal out most of them anew).

    Args:
        labels: patch labels ``[N]``: 1 irrigated, 0 not.
        seed: seed of the keys (so of the negatives' sample and the split).
        names: patch names ``[N]`` the keys are made from (default: the
            indices as text).

    Returns:
        ``train``, ``val`` and ``test``: sorted int64 indices into *labels*,
        disjoint.

    Raises:
        ValueError: if *names* and *labels* differ in length.
    """
    if names is None:
        names = [str(i) for i in range(len(labels))]
    if len(names) != len(labels):
        msg = (
            f"irrigation_splits got {len(labels)} labels but {len(names)} patch "
            "names; pass one name per label."
        )
        raise ValueError(msg)

    def ordered(value: int) -> Tensor:
        members = (labels == value).nonzero()[:, 0].tolist()
        members.sort(key=lambda i: (patch_key(seed, names[i]), names[i]))
        return torch.tensor(members, dtype=torch.long)

    positives = ordered(IRRIGATED)
    negatives = ordered(NOT_IRRIGATED)[: len(positives)]
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for members in (negatives, positives):
        n_train = len(members) * TRAIN_PERCENT // 100
        n_val = len(members) * VAL_PERCENT // 100
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {split: torch.cat(chunks).sort().values for split, chunks in parts.items()}
