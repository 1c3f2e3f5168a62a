"""How far one spectral index gets: the best single-threshold NDVI classifier.

The sample scene is meant to need more than a vegetation index to map
irrigation (harvested and young irrigated fields are bare, riparian vegetation
is green but not irrigated). :func:`ndvi_baseline` measures that: it scores
every labelled pixel by NDVI and picks the threshold, and its direction, that
maximise the F1 score of the irrigated class.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchgeo_simclr.constants import IRRIGATED, NOT_IRRIGATED
from torchgeo_simclr.datasets import (
    CentralValleyS2,
    IrrigationLabels,
    resolve_label_path,
)


@dataclass(frozen=True)
class ThresholdResult:
    """The best single threshold on one score."""

    #: F1 score of the irrigated class at the best threshold, 0-1.
    f1: float
    #: The threshold; pixels on the irrigated side of it are called irrigated.
    threshold: float
    #: True when high scores are called irrigated.
    above: bool
    #: Labelled pixels scored.
    pixels: int
    #: Share of them that are irrigated, 0-1.
    irrigated_share: float


def best_threshold_f1(scores: np.ndarray, labels: np.ndarray) -> ThresholdResult:
    """Find the single threshold on *scores* with the highest F1 for *labels*.

    Args:
        scores: one score per sample, shape ``[N]``.
        labels: 1 irrigated, 0 not, shape ``[N]``.

    Returns:
        The best threshold over both directions (high or low scores irrigated).

    Raises:
        ValueError: if *labels* holds no irrigated or no non-irrigated sample.
    """
    labels = labels.astype(bool)
    positives = int(labels.sum())
    if positives in (0, labels.size):
        msg = (
            f"labels hold {positives} irrigated of {labels.size} samples; a "
            "threshold needs both classes, so pass a region with both."
        )
        raise ValueError(msg)
    best = ThresholdResult(
        0.0, float("nan"), True, labels.size, positives / labels.size
    )
    for above in (True, False):
        order = np.argsort(-scores if above else scores, kind="stable")
        ranked, hits = scores[order], labels[order]
        true_pos = np.cumsum(hits)
        called = np.arange(1, labels.size + 1)
        # Only cut where the score changes, so ties fall on one side together.
        cut = np.append(ranked[1:] != ranked[:-1], True)
        f1 = np.where(cut, 2 * true_pos / (called + positives), 0.0)
        k = int(np.argmax(f1))
        if f1[k] > best.f1:
            best = ThresholdResult(
                float(f1[k]), float(ranked[k]), above, labels.size, best.irrigated_share
            )
    return best


def ndvi_baseline(
    root: str | Path, labels: str = "crop_mapping.gpkg"
) -> ThresholdResult:
    """Score the best single-threshold NDVI classifier on a scene's labels.

    Args:
        root: scene directory (Sentinel-2 files below it).
        labels: label file, absolute, in the working directory or under *root*.

    Returns:
        The best NDVI threshold and its per-pixel F1 over labelled pixels.
    """
    image_ds = CentralValleyS2(root, bands=["B04", "B08"])
    label_ds = IrrigationLabels(
        resolve_label_path(root, labels), crs=image_ds.crs, res=image_ds.res
    )
    dataset = image_ds & label_ds
    sample = dataset[dataset.bounds]
    red, nir = sample["image"].float()
    mask = sample["mask"].squeeze()
    valid = ((mask == IRRIGATED) | (mask == NOT_IRRIGATED)) & (red + nir > 0)
    ndvi = (nir - red) / (nir + red).clamp(min=1)
    return best_threshold_f1(
        ndvi[valid].numpy(), (mask[valid] == IRRIGATED).numpy().astype(np.uint8)
    )
