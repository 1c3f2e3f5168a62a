"""Learning-rate schedule shared by the tasks: linear warm-up, then cosine decay."""

from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
)


def check_schedule(warmup_fraction: float, temperature: float | None = None) -> None:
    """Refuse a warm-up share or a temperature that would spoil training.

    Args:
        warmup_fraction: share of the steps spent warming up, in [0, 1).
        temperature: a softmax temperature, above 0 (None: not checked).

    Raises:
        ValueError: naming the option, if a value is out of range.
    """
    if not 0 <= warmup_fraction < 1:
        msg = (
            f"--model.init_args.warmup_fraction {warmup_fraction:g} must be at "
            "least 0 and below 1 (a share of the training steps); pass e.g. 0.05."
        )
        raise ValueError(msg)
    if temperature is not None and not temperature > 0:
        msg = (
            f"--model.init_args.temperature {temperature:g} must be above 0 (it "
            "divides the logits); pass e.g. 0.1 for SimCLR or 1 for distillation."
        )
        raise ValueError(msg)


def check_optimiser(
    lr: float, weight_decay: float, default_lr: float, **rates: float | None
) -> None:
    """Refuse a learning rate or weight decay the optimiser cannot use.

    Checked when the task is built, before the data is read.

    Args:
        lr: peak learning rate, above 0.
        weight_decay: weight decay, 0 or more.
        default_lr: the task's default *lr*, suggested instead.
        **rates: further learning rates by option name (e.g. ``backbone_lr``),
            above 0 where not None.

    Raises:
        ValueError: naming the option, if a value is out of range.
    """
    for name, value in {"lr": lr, **rates}.items():
        if value is not None and not value > 0:
            msg = (
                f"--model.init_args.{name} {value:g} must be above 0 (a peak "
                f"learning rate); pass e.g. {default_lr:g}."
            )
            raise ValueError(msg)
    if not weight_decay >= 0:
        msg = (
            f"--model.init_args.weight_decay {weight_decay:g} must be 0 or more "
            "(0 = no weight decay); pass e.g. 0.0001."
        )
        raise ValueError(msg)


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float
) -> OptimizerLRScheduler:
    """Wrap an optimiser with a per-step linear warm-up and cosine decay.

    Args:
        optimizer: the optimiser.
        total_steps: optimiser steps of the whole run (Lightning's
            ``trainer.estimated_stepping_batches``).
        warmup_fraction: share of *total_steps* spent warming up linearly
            from 1e-3 of the peak learning rate.

    Returns:
        Lightning's optimiser configuration with a step-wise scheduler.
    """
    total = max(total_steps, 1)
    warmup = int(total * warmup_fraction)
    cosine = CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    scheduler: LRScheduler = cosine
    if warmup > 0:
        scheduler = SequentialLR(
            optimizer,
            [LinearLR(optimizer, start_factor=1e-3, total_iters=warmup), cosine],
            milestones=[warmup],
        )
    elif total == 1:
        scheduler = LambdaLR(optimizer, lambda _: 1.0)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }
