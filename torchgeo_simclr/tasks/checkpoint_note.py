"""Name the checkpoint a fit wrote: the next stage's command needs its path."""

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

#: Exit status of a fit stopped by SIGTERM: 128 + 15, as a shell reports a
#: process the signal ended.
SIGTERM_STATUS = 143


def written_checkpoint(trainer: Any) -> Path | None:
    """The checkpoint a trainer's fit wrote last.

    The configs' first ``ModelCheckpoint`` (Lightning's ``checkpoint_callback``)
    writes ``last.ckpt`` as its one top-k file (``filename: last``,
    ``save_top_k: 1``, no monitor), so its ``best_model_path`` names it;
    ``last_model_path`` counts only where the callback has ``save_last``
    (e.g. the experiment's). A fit resumed from a checkpoint of an earlier
    ``save_last`` config restores that callback's ``last_model_path``: the
    file it resumed from, not the one it wrote.

    Args:
        trainer: the trainer (anything with ``checkpoint_callback``).

    Returns:
        Its path, or None where it wrote none (``fast_dev_run``, or no
        ``ModelCheckpoint``).
    """
    callback = getattr(trainer, "checkpoint_callback", None)
    last = getattr(callback, "last_model_path", "") or ""
    best = getattr(callback, "best_model_path", "") or ""
    path = (last or best) if getattr(callback, "save_last", None) else best
    return Path(path) if path else None


def checkpoint_note(checkpoint: Path | None, resumed: str | None = None) -> str:
    """What a finished fit says about its checkpoint.

    Lightning never overwrites another run's checkpoint: a rerun into the
    same folder writes ``last-v1.ckpt`` beside the earlier run's
    ``last.ckpt``, which the README's next-stage commands name, so the note
    says which is new. (A fit resumed from its own ``last.ckpt`` with
    ``--ckpt_path`` rewrites that file, unless an earlier version's config
    wrote it.)

    Args:
        checkpoint: the checkpoint written, or None.
        resumed: the ``--ckpt_path`` the fit resumed from, if any.

    Returns:
        E.g. ``"Checkpoint: /abs/runs/x/checkpoints/last.ckpt"``.
    """
    if checkpoint is None:
        return "No checkpoint written (fast_dev_run or no ModelCheckpoint)."
    note = f"Checkpoint: {checkpoint.resolve()}"
    earlier = checkpoint.with_name("last.ckpt")
    if checkpoint.name.startswith("last-v") and earlier.exists():
        own = resumed is not None and Path(resumed).resolve() == earlier.resolve()
        held = "the state this fit resumed from" if own else "an earlier run"
        note += (
            f"\n({earlier.resolve()} holds {held} in the same folder; "
            "give the next stage the path above.)"
        )
    return note


class CheckpointNote(Callback):
    """At the end of a fit, name the checkpoint it wrote, or say it wrote none.

    The tasks add it themselves (``configure_callbacks``), so ``torchgeo fit``
    and ``torchgeo-simclr fit`` both end with it. It goes to Lightning's log,
    which the experiment and the demo quieten. A fit that took no training
    step at all is an error: Lightning only notes "No training batches" and
    ends as if it had trained.
    """

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the note on the first process, or refuse a fit that learnt nothing.

        Args:
            trainer: the trainer that fitted.
            pl_module: the task.

        Raises:
            ValueError: if the fit took no optimiser step.
        """
        if trainer.global_step == 0 and not getattr(trainer, "fast_dev_run", False):
            msg = (
                "The fit took no training step (global step 0): its training "
                "data gave no batch, so nothing was learnt; check the training "
                "patches per epoch (length, label_fraction) against batch_size "
                "and the number of devices, and --trainer.limit_train_batches."
            )
            raise ValueError(msg)
        resumed = getattr(trainer, "ckpt_path", None)
        rank_zero_info(checkpoint_note(written_checkpoint(trainer), resumed))

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Make a fit Lightning stopped on SIGTERM exit 143, naming what it kept.

        Lightning's own handler (plain ``torchgeo fit``) ends such a fit with
        a bare ``SystemExit``, status 0, so ``fit && predict`` went on with a
        half-trained model. ``torchgeo-simclr fit`` stops on its own handler
        and says the same.

        Args:
            trainer: the trainer that fitted.
            pl_module: the task.
            exception: what stopped the fit.
        """
        if not isinstance(exception, SIGTERMException) or exception.code is not None:
            return
        exception.code = SIGTERM_STATUS
        checkpoint = written_checkpoint(trainer)
        kept = (
            "no checkpoint was written, so run it again from the start"
            if checkpoint is None
            else f"resume it with --ckpt_path {checkpoint.resolve()} (the end of "
            "the last finished epoch)"
        )
        rank_zero_info(
            f"Terminated (SIGTERM) at step {trainer.global_step}, before the fit "
            f"ended; {kept}."
        )
