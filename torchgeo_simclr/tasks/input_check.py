"""Imagery unlike a network's training data: band means far from its statistics.

A stack still carrying ESA's +1000 offset, reflectance on a 0 to 1 scale or
bands in another order give maps that look plausible, or are empty, without
an error. The band means of the pixels read then lie far from those of the
training data, in the training data's own standard deviations.
"""

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from ..constants import BOA_ADD_OFFSET
from ..models.checkpoint import DataMetadata

#: A band whose mean lies more than this many of the training standard
#: deviations from the training mean is named. Mapping the sample scene with
#: the quickstart checkpoint, the largest distance was 0.27 (B01) after 4
#: batches and 0.06 over the whole scene; the same imagery with +1000 on every
#: band lay 3.9 (B01) away after 4 batches and 4.2 over the whole scene.
FAR_STD = 3.0

#: Every band reading this close to :data:`BOA_ADD_OFFSET` above the training
#: mean (reflectance x10000) is named as the offset's likely mark.
OFFSET_TOLERANCE = 300.0


def distances(means: Sequence[float], data: DataMetadata) -> list[float]:
    """How far each band's mean lies from the training mean, in its std.

    Args:
        means: per-band mean of the imagery ``[C]``, reflectance x10000, in
            *data*'s band order.
        data: what the network was trained on.

    Returns:
        ``(mean - training mean) / training std`` per band ``[C]``.
    """
    return [
        (mean - trained) / std
        for mean, trained, std in zip(means, data.mean, data.std, strict=True)
    ]


def unlike_training(
    means: Sequence[float], data: DataMetadata, source: str
) -> str | None:
    """The warning for imagery whose band means lie far from the training data's.

    Args:
        means: per-band mean of the imagery's pixels with data ``[C]``,
            reflectance x10000, in *data*'s band order.
        data: what the network was trained on.
        source: the network's checkpoint in words, e.g. ``"checkpoint
            'last.ckpt'"``.

    Returns:
        One sentence naming each band more than :data:`FAR_STD` training
        standard deviations off, with its mean and the training one, and the
        likely causes, most likely first; None when no band is that far.
    """
    far = [
        (band, mean, trained, z)
        for band, mean, trained, z in zip(
            data.bands, means, data.mean, distances(means, data), strict=True
        )
        if abs(z) > FAR_STD
    ]
    if not far:
        return None
    named = ", ".join(
        f"{band} {mean:.0f} (trained on {trained:.0f}, {z:+.1f} std)"
        for band, mean, trained, z in far
    )
    shifts = [mean - trained for mean, trained in zip(means, data.mean, strict=True)]
    offset = (
        f" (every band reads about {sum(shifts) / len(shifts):.0f} higher, as with "
        "the offset)"
        if all(abs(s - BOA_ADD_OFFSET) < OFFSET_TOLERANCE for s in shifts)
        else ""
    )
    return (
        f"The imagery's band means lie more than {FAR_STD:g} standard deviations "
        f"from those {source} was trained on: {named}; expected imagery like its "
        "training imagery, else its outputs (a map) may be wrong, so check, most "
        "likely first, that "
        "ESA's +1000 offset of processing baseline 04.00 and later (products "
        f"sensed from 2022-01-25 on) was removed{offset}, see the README's note "
        "on the offset; that values are reflectance x 10000, not 0 to 1; that "
        f"the bands are in the order {' '.join(data.bands)}; else the imagery is "
        "very unlike the training imagery (another region, season or sensor)."
    )


def warn_if_unlike(means: Sequence[float], data: DataMetadata, source: str) -> bool:
    """Warn when imagery's band means lie far from the training data's.

    Args:
        means: per-band mean of the imagery's pixels with data ``[C]``,
            reflectance x10000, in *data*'s band order.
        data: what the network was trained on.
        source: the network's checkpoint in words.

    Returns:
        Whether it warned (see :func:`unlike_training`).

    Warns:
        UserWarning: naming the bands that are far off, and the likely causes.
    """
    message = unlike_training(means, data, source)
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=3)
    return message is not None


class BandMeans:
    """Running per-band sums of the pixels with data, kept on their device.

    Adding a batch queues a reduction on the device and waits for nothing;
    only :meth:`means` copies the sums to the host.
    """

    def __init__(self) -> None:
        """Initialise empty sums."""
        #: Per-band sum of the pixels with data ``[C]``, float32 (None: none
        #: added).
        self.total: Tensor | None = None
        #: Number of pixels with data added (a 0-d float32 tensor).
        self.count: Tensor | None = None

    def add(self, image: Tensor, valid: Tensor) -> None:
        """Add a batch's pixels with data.

        Args:
            image: ``[B, C, H, W]`` reflectance x10000.
            valid: ``[B, H, W]`` pixels with data.
        """
        weights = valid.to(torch.float32)
        total = torch.einsum("bchw,bhw->c", image.float(), weights)
        count = weights.sum()
        if self.total is None or self.count is None:
            self.total, self.count = total, count
        else:
            self.total.add_(total)
            self.count.add_(count)

    def means(self) -> tuple[list[float], int]:
        """The per-band means so far, and how many pixels they are of.

        Returns:
            Per-band mean ``[C]`` of the pixels with data (empty before any is
            added) and their number.
        """
        if self.total is None or self.count is None:
            return [], 0
        # One copy to the host for the sums and the count.
        *total, count = torch.cat([self.total, self.count[None]]).cpu().double()
        if not count:
            return [], 0
        return [float(value / count) for value in total], round(float(count))
