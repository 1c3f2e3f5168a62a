"""Patch-level irrigation labels from per-pixel masks."""

import torch
from torch import Tensor

from .constants import IGNORE_INDEX, IRRIGATED


def patch_labels(
    mask: Tensor, min_labelled: float = 0.5, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Label each patch irrigated when most of its labelled pixels are irrigated.

    Args:
        mask: per-pixel labels ``[B, H, W]`` (0 not irrigated, 1 irrigated,
            *ignore_index* unknown).
        min_labelled: fraction of a patch's pixels that must be labelled for the
            patch to get a label; patches below it get *ignore_index*.
        ignore_index: mask value of unknown pixels.

    Returns:
        int64 ``[B]``: 1 where more than half the labelled pixels are irrigated,
        0 where not, *ignore_index* where too few pixels are labelled.
    """
    flat = mask.flatten(1)
    labelled = (flat != ignore_index).sum(1)
    irrigated = (flat == IRRIGATED).sum(1)
    labels = (2 * irrigated > labelled).long()
    too_few = labelled < min_labelled * flat.shape[1]
    return torch.where(too_few, torch.full_like(labels, ignore_index), labels)
