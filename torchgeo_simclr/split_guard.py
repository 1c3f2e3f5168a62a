"""The data split an experiment was made on: recorded once, checked by later runs.

An experiment reuses its pretrained encoder and its rows by method, fraction
and seed, so a resumed experiment whose data changed under the same root (a
patch folder added or removed, another scene) would pretrain on one split and
score on another. :class:`SplitGuard` stops a run whose datamodule makes
another split than the one recorded, before it trains.
"""

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from .models.checkpoint import DataMetadata, datamodule_split, read_checkpoint


def split_record(data: DataMetadata | None) -> dict[str, str | None] | None:
    """The split of a run's data, as an experiment records it.

    Args:
        data: the data a task was trained on.

    Returns:
        ``split`` and ``held_out`` digests, None where the data records no
        split.
    """
    if data is None or data.split is None:
        return None
    return {"split": data.split, "held_out": data.held_out}


def checkpoint_split(path: str | Path) -> dict[str, str | None] | None:
    """The split a checkpoint of this package was trained on.

    Args:
        path: the ``.ckpt`` file.

    Returns:
        As :func:`split_record`; None for a missing or unreadable file.
    """
    try:
        checkpoint, _ = read_checkpoint(path, ("simclr", "finetune", "distill"))
    except (OSError, ValueError):
        return None
    return split_record(DataMetadata.from_checkpoint(checkpoint))


def changed_split(
    recorded: dict[str, Any], split: str | None, held_out: str | None
) -> tuple[str, str] | None:
    """The recorded and the current split's digests, when they differ.

    As in :func:`~torchgeo_simclr.tasks.provenance.split_change`, the val and
    test blocks alone are compared where both record them.

    Args:
        recorded: :func:`split_record`'s dictionary.
        split: the current split's digest.
        held_out: the current val and test blocks' digest.

    Returns:
        Both digests, or None when they match or the current one is unknown.
    """
    if recorded.get("held_out") and held_out:
        pair = (str(recorded["held_out"]), held_out)
    elif split:
        pair = (str(recorded["split"]), split)
    else:
        return None
    return None if pair[0] == pair[1] else pair


class SplitGuard(Callback):
    """Stop a run whose datamodule makes another split than the experiment's.

    Checked in :meth:`setup`, once the datamodule has made its split and
    before the model trains.
    """

    def __init__(
        self, split: str, held_out: str | None = None, root: str = "", out: str = ""
    ) -> None:
        """Initialise a new SplitGuard.

        Args:
            split: digest of the experiment's split (``DataMetadata.split``).
            held_out: digest of its val and test blocks (None: not blocks).
            root: the data root, for the message.
            out: the experiment's ``--out``, for the message.
        """
        #: The experiment's split, as :func:`split_record` records it.
        self.recorded: dict[str, Any] = {"split": split, "held_out": held_out}
        #: The data root, for the message.
        self.root = root
        #: The experiment's output folder, for the message.
        self.out = out

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Compare the datamodule's split with the experiment's.

        Args:
            trainer: the trainer, whose datamodule is set up.
            pl_module: the task.
            stage: ``fit`` or ``test``.

        Raises:
            ValueError: if the splits differ.
        """
        split, held_out = datamodule_split(getattr(trainer, "datamodule", None))
        pair = changed_split(self.recorded, split, held_out)
        if pair is None:
            return
        msg = (
            f"The data under --root {self.root!r} now makes split {pair[1]}, but "
            f"the experiment in --out {self.out!r} was made on split {pair[0]}, so "
            "the patches or imagery under the root changed "
            "since; pass a new --out for an experiment on the data as it is now, "
            "or restore the root's patch folders (or scenes) to resume this one."
        )
        raise ValueError(msg)
