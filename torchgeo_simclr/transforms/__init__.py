"""Kornia augmentations for standardised multispectral (Sentinel-2) batches.

Nine ops, each a Kornia augmentation with a probability ``p`` and per-sample
parameters, correct for 12-band reflectance standardised per band (no clamping to
``[0, 1]``, no RGB-only ops), plus :class:`SimCLRViews`, which draws a few ops per
sample and view and applies them batched on the batch's device.
"""

from torchgeo_simclr.transforms.geometric import (
    RandomFlip,
    RandomRotation,
    RandomShift,
    RandomZoom,
)
from torchgeo_simclr.transforms.intensity import (
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomGain,
    RandomSpeckle,
)
from torchgeo_simclr.transforms.views import (
    AUGMENTATIONS,
    SimCLRViews,
    apply_augmentation,
)

__all__ = [
    "AUGMENTATIONS",
    "RandomBlur",
    "RandomBrightness",
    "RandomContrast",
    "RandomFlip",
    "RandomGain",
    "RandomRotation",
    "RandomShift",
    "RandomSpeckle",
    "RandomZoom",
    "SimCLRViews",
    "apply_augmentation",
]
