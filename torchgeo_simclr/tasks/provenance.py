"""Whether a run resumes or scores a checkpoint on the data it was trained on."""

import os
import warnings
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from ..models.checkpoint import DataMetadata

#: What decides which patches are labelled (``n_labels`` follows from them).
LABEL_KEYS = ("label_fraction", "label_seed")


def upper_first(text: str) -> str:
    """*text* with its first letter capitalised, the rest as it is.

    Args:
        text: e.g. ``"checkpoint 'x.ckpt'"``.

    Returns:
        E.g. ``"Checkpoint 'x.ckpt'"`` (``str.capitalize`` would lower the rest).
    """
    return text[:1].upper() + text[1:]


def restored_from(trainer: Any) -> str | None:
    """What to call the checkpoint a trainer restored in this run.

    Args:
        trainer: the task's trainer (anything with ``ckpt_path``).

    Returns:
        E.g. ``"checkpoint 'runs/x/last.ckpt'"``, or None when none was.
    """
    ckpt = getattr(trainer, "ckpt_path", None)
    return None if ckpt is None else f"checkpoint {str(ckpt)!r}"


def same_draw(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two labelled subsets are the same draw.

    Args:
        a: ``label_fraction`` and ``label_seed`` of one subset.
        b: those of the other.

    Returns:
        True when fraction and seed agree (``n_labels`` follows from them).
    """
    return all(a.get(k) == b.get(k) for k in LABEL_KEYS)


def describe_labels(labels: dict[str, Any]) -> str:
    """Name a labelled subset in words.

    Args:
        labels: ``label_fraction`` and ``label_seed`` (see
            :func:`~torchgeo_simclr.models.checkpoint.training_labels`).

    Returns:
        E.g. ``"label_fraction 0.1 (label_seed 0)"``.
    """
    fraction = labels.get("label_fraction")
    subset = (
        "every labelled patch" if fraction is None else f"label_fraction {fraction}"
    )
    return f"{subset} (label_seed {labels.get('label_seed')})"


def split_change(
    trained: DataMetadata | None, current: DataMetadata | None
) -> tuple[str, str] | None:
    """The checkpoint's and the datamodule's spatial splits, when they differ.

    Where both record their val and test blocks, those are compared alone:
    a split that keeps its training blocks further from them
    (``split_buffer``) holds out the same data. Checkpoints that record only
    the whole split are compared on it.

    Args:
        trained: the checkpoint's data.
        current: the datamodule's data.

    Returns:
        Both digests compared, or None when they match or either is unknown.
    """
    if trained is None or current is None:
        return None
    if trained.held_out and current.held_out:
        pair = (trained.held_out, current.held_out)
    elif trained.split and current.split:
        pair = (trained.split, current.split)
    else:
        return None
    return None if pair[0] == pair[1] else pair


#: The options that make a split, for checkpoints that do not record theirs.
SPLIT_OPTIONS = "the root, bbox, block_size, split_fractions, split_buffer and seed"


def setting_text(value: Any) -> str:
    """A recorded option value as it is written in a YAML config.

    Args:
        value: a plain JSON value, e.g. ``[-120.9, 37.0, -120.7, 37.2]``.

    Returns:
        E.g. ``"[-120.9, 37.0, -120.7, 37.2]"``, ``"null"`` or ``"EPSG:4326"``.
    """
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    return str(value)


def _same_setting(key: str, a: Any, b: Any) -> bool:
    """Whether two values of a split option are the same; ``root``s as folders."""
    if key == "root" and isinstance(a, str) and isinstance(b, str):
        return a == b or os.path.realpath(a) == os.path.realpath(b)
    return bool(a == b)


def split_advice(
    trained: DataMetadata | None,
    current: DataMetadata | None,
    verb: str,
    whose: str = "it was trained with",
) -> str:
    """What to set to make the checkpoint's split again, in words.

    Args:
        trained: the data the checkpoint was trained on.
        current: the datamodule's data.
        verb: what to do, e.g. ``"resume with"``.
        whose: whose settings they are, e.g. ``"it was pretrained with"``.

    Returns:
        The recorded options that differ from the datamodule's with both
        values, e.g. ``"resume with seed 0, as it was trained with (this
        datamodule: seed 1)"``; that the data under ``root`` changed when
        every option is the same; the options by name when the checkpoint
        records none (earlier versions).
    """
    recorded = None if trained is None else trained.settings
    if not recorded:
        return (
            f"{verb} {SPLIT_OPTIONS} {whose} (BigEarthNet: root, scheme and split_seed)"
        )
    now = (None if current is None else current.settings) or {}
    # split_change compares the val and test blocks alone where both record
    # them, which split_buffer does not move.
    ignored = (
        {"split_buffer"}
        if trained and current and trained.held_out and current.held_out
        else set()
    )
    changed = [
        key
        for key, value in recorded.items()
        if key not in ignored and not _same_setting(key, now.get(key), value)
    ]
    if not changed:
        *most, last = [key for key in recorded if key not in ignored]
        names = f"{', '.join(most)} and {last}" if most else last
        return (
            f"the datamodule's {names} are those {whose}, so the data under "
            f"root {setting_text(recorded.get('root'))!r} has changed since"
        )
    old = ", ".join(f"{key} {setting_text(recorded[key])}" for key in changed)
    new = ", ".join(
        f"{key} {setting_text(now[key])}" if key in now else f"no {key}"
        for key in changed
    )
    return f"{verb} {old}, as {whose} (this datamodule: {new})"


#: :attr:`DataMetadata.dataset` values in words.
DATASET_NAMES = {"bigearthnet": "BigEarthNet-S2 patches", "scene": "a Sentinel-2 scene"}


def describe_data(data: DataMetadata) -> str:
    """Name the data a checkpoint or datamodule holds, in words.

    Args:
        data: its metadata.

    Returns:
        E.g. ``"BigEarthNet-S2 patches"`` or ``"a Sentinel-2 scene (lon/lat
        [-120.6, 36.6, -120.4, 36.8])"``.
    """
    kind = data.kind
    name = DATASET_NAMES.get(kind or "", "other data" if kind else "unknown data")
    if data.extent is not None:
        name += f" (lon/lat {[round(v, 3) for v in data.extent]})"
    return name


def other_data(trained: DataMetadata | None, current: DataMetadata | None) -> bool:
    """Whether a checkpoint was trained on other data than the datamodule's.

    Other data: another kind (BigEarthNet patches and a scene), or two scenes
    whose split blocks do not overlap. Where either is unknown (checkpoints
    of earlier versions), the data are taken to be the same, so that their
    splits are compared.

    Args:
        trained: the checkpoint's data.
        current: the datamodule's data.

    Returns:
        True when the two cannot share any imagery.
    """
    if trained is None or current is None:
        return False
    if trained.kind is None or current.kind is None:
        return False
    if trained.kind != current.kind:
        return True
    if trained.extent is None or current.extent is None:
        return False
    a, b = trained.extent, current.extent
    return a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def check_resume(
    source: str,
    trained: DataMetadata | None,
    current: DataMetadata | None,
    trained_labels: dict[str, Any] | None,
    current_labels: dict[str, Any] | None,
) -> None:
    """Refuse to resume training on another split or labelled subset.

    Args:
        source: what to call the checkpoint, e.g. ``"checkpoint 'x.ckpt'"``.
        trained: the data the checkpoint was trained on.
        current: the datamodule's data.
        trained_labels: the checkpoint's labelled subset (None if unknown).
        current_labels: the datamodule's labelled subset (None if it has none).

    Raises:
        ValueError: if the split or the labelled subset differs.

    Warns:
        UserWarning: if the checkpoint records no labelled subset to compare.
    """
    who = upper_first(source)
    if (splits := split_change(trained, current)) is not None:
        msg = (
            f"{who} was trained on spatial split {splits[0]} but the "
            f"datamodule makes split {splits[1]}, so resuming would train on "
            f"its held-out blocks; {split_advice(trained, current, 'resume with')}."
        )
        raise ValueError(msg)
    if trained_labels is None and current_labels is not None:
        warnings.warn(
            f"{who} records no labelled subset (it was written by an earlier "
            "version), so resuming it on another label_fraction or label_seed "
            "cannot be refused; resume only with the ones it was trained with.",
            UserWarning,
            stacklevel=2,
        )
    if trained_labels is None or current_labels is None:
        return
    if not same_draw(trained_labels, current_labels):
        msg = (
            f"{who} was trained on {describe_labels(trained_labels)} but the "
            f"datamodule draws {describe_labels(current_labels)}; resume with the "
            "same --data.init_args.label_fraction and label_seed."
        )
        raise ValueError(msg)


def check_devices(source: str, trained: int | None, current: int) -> None:
    """Warn when a fit resumes on another number of devices than it trained on.

    ``batch_size`` is per device, so the optimiser then sees another number of
    patches a step, an epoch another number of steps, and the warm-up and
    cosine decay are planned over the new total from the step reached.

    Args:
        source: what to call the checkpoint, e.g. ``"checkpoint 'x.ckpt'"``.
        trained: devices (DDP ranks) it was trained on; None when it does not
            record them (earlier versions).
        current: this run's devices (``trainer.world_size``).

    Warns:
        UserWarning: on rank 0, if *trained* and *current* differ.
    """
    if trained is None or trained == current:
        return
    rank_zero_warn(
        f"{upper_first(source)} was trained on {trained} device(s) and this run "
        f"has {current}: batch_size is per device, so a step now takes {current} "
        f"batches instead of {trained}, an epoch another number of steps, and the "
        "warm-up and cosine decay are re-planned over the new steps from the one "
        f"reached; resume on {trained} device(s) (--trainer.devices times "
        "--trainer.num_nodes) to continue as it trained.",
        category=UserWarning,
    )


def split_warning(
    source: str, trained: DataMetadata | None, current: DataMetadata | None
) -> str | None:
    """Say why scores on another split than the checkpoint's may be too high.

    Args:
        source: what to call the checkpoint.
        trained: the data the checkpoint was trained on.
        current: the datamodule's data.

    Returns:
        The warning, or None when the splits match or are unknown, or the
        checkpoint was trained on other data (:func:`other_data`).
    """
    if other_data(trained, current):
        return None
    if (splits := split_change(trained, current)) is None:
        return None
    return (
        f"{upper_first(source)} was trained on spatial split "
        f"{splits[0]} but the datamodule makes split {splits[1]}: on the "
        "same imagery its held-out blocks may hold the checkpoint's training "
        f"blocks, and the scores come out too high; "
        f"{split_advice(trained, current, 'use')}."
    )
