"""Refusals of datamodule options out of range, before any data is read."""

import inspect
import os
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from lightning.pytorch import LightningDataModule

#: How far the split shares' sum may be from 1 (rounding in a config).
SUM_TOLERANCE = 1e-6


def _check_at_least_one(option: str, value: int, meaning: str, example: int) -> None:
    """Refuse a datamodule option below 1, naming it, what it is and an example."""
    if not value >= 1:
        msg = (
            f"--data.init_args.{option} {value} must be at least 1 ({meaning}); "
            f"pass e.g. {example}."
        )
        raise ValueError(msg)


def check_patch_size(patch_size: int) -> None:
    """Refuse a patch side below one pixel.

    Args:
        patch_size: side of the square patches, pixels.

    Raises:
        ValueError: naming the option, if *patch_size* is below 1.
    """
    _check_at_least_one(
        "patch_size", patch_size, "the side of a square patch, pixels", 48
    )


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch of no patch.

    Args:
        batch_size: patches per batch.

    Raises:
        ValueError: naming the option, if *batch_size* is below 1.
    """
    _check_at_least_one(
        "batch_size", batch_size, "patches per batch; 2 or more to train", 32
    )


def check_label_fraction(label_fraction: float | None) -> None:
    """Refuse a share of the labelled patches outside ``(0, 1]``, nan included.

    Args:
        label_fraction: share of the labelled patches to train on (None:
            pretraining, every patch unlabelled).

    Raises:
        ValueError: naming the option, if *label_fraction* is not in ``(0, 1]``.
    """
    if label_fraction is not None and not 0 < label_fraction <= 1:
        msg = (
            "--data.init_args.label_fraction takes a share of the labelled "
            f"patches in (0, 1], got {label_fraction:g}; pass e.g. 0.01 for 1% "
            "or 1 for all (or null to pretrain without labels)."
        )
        raise ValueError(msg)


def check_min_labelled(min_labelled: float) -> None:
    """Refuse a share of labelled pixels outside ``(0, 1]``, nan included.

    Args:
        min_labelled: share of a patch's pixels that must be labelled for the
            patch to count as labelled.

    Raises:
        ValueError: naming the option, if *min_labelled* is not in ``(0, 1]``.
    """
    if not 0 < min_labelled <= 1:
        msg = (
            "--data.init_args.min_labelled takes the share of a patch's pixels "
            f"that must be labelled, in (0, 1], got {min_labelled:g}; pass e.g. "
            "0.5 (the default) or 0.05 for sparse labels."
        )
        raise ValueError(msg)


def check_split_fractions(fractions: Sequence[float]) -> None:
    """Refuse split shares that are not three positive shares summing to 1.

    Shares that sum to something else are not renormalised: a typo such as
    ``[0.7, 0.15, 0.5]`` would otherwise move blocks into the test split
    without a word.

    Args:
        fractions: shares of the blocks for train, val and test.

    Raises:
        ValueError: naming the option, if there are not three shares, one is
            0 or less, or they do not sum to 1 (within :data:`SUM_TOLERANCE`).
    """
    shares = [float(f) for f in fractions]
    given = f"--data.init_args.split_fractions {shares}"
    if len(shares) != 3 or min(shares) <= 0:
        msg = (
            f"{given} must be three shares above 0, of the blocks for train, "
            "val and test (a split without blocks has nothing to train on or "
            "score); pass e.g. [0.7, 0.15, 0.15]."
        )
        raise ValueError(msg)
    total = sum(shares)
    if abs(total - 1) > SUM_TOLERANCE:
        msg = (
            f"{given} sum to {total:g}, not 1, and are not rescaled (that would "
            "change every split's share); pass shares that sum to 1, e.g. "
            "[0.7, 0.15, 0.15]."
        )
        raise ValueError(msg)


def plain_value(value: Any) -> Any:
    """*value* as a checkpoint read with ``weights_only=True`` can hold it.

    Paths become text, days ``YYYY-MM-DD``, tuples lists, CRSs their
    ``EPSG:`` text; numbers, text, None and containers of them stay.

    Args:
        value: a datamodule's argument, e.g. ``Path("data")`` or
            ``date(2023, 1, 1)``.

    Returns:
        A plain value, e.g. ``"data"`` or ``"2023-01-01"``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain_value(v) for v in value]
    return str(value)


def save_plain_hyperparameters(datamodule: LightningDataModule) -> None:
    """Save a datamodule's arguments as its hyperparameters, as plain values.

    For the loggers (``hparams.yaml``, TensorBoard's HPARAMS) and
    ``load_from_checkpoint``; a ``Path`` or ``date`` given from Python would
    make the checkpoint unreadable with ``weights_only=True``.

    Args:
        datamodule: the datamodule, called from its ``__init__``.
    """
    datamodule.save_hyperparameters(frame=inspect.currentframe().f_back)  # type: ignore[union-attr]
    for key, value in list(datamodule.hparams.items()):
        datamodule.hparams[key] = plain_value(value)
