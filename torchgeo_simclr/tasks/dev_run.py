"""Keep a ``fast_dev_run`` from leaving a checkpoint where a real run's goes."""

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


def no_checkpoint_in_dev_run(trainer: Trainer) -> None:
    """Stop ``ModelCheckpoint`` from writing ``last.ckpt`` in a ``fast_dev_run``.

    Lightning says "checkpointing is suppressed" in a ``fast_dev_run``, but
    (2.6) ``ModelCheckpoint.on_train_end`` still writes ``save_last``. The
    one-step model then sits at the config's ``checkpoints/last.ckpt``, the
    path the next stage's documented command names, and the real run that
    follows writes ``last-v1.ckpt`` beside it. The shipped configs' own
    ``last.ckpt`` callback (``filename: last``, ``save_top_k: 1``) has no
    ``save_last`` and saves nothing in a ``fast_dev_run``; this is for
    callbacks given on the command line or in a user's config.

    Args:
        trainer: the trainer about to fit; nothing changes outside a
            ``fast_dev_run``.
    """
    if getattr(trainer, "fast_dev_run", False):  # set by Lightning at run time
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_last = False
