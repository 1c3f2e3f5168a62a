"""Learning-rate schedule shared by the tasks: linear warm-up, then cosine decay."""

import math
from typing import Any

from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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


class WarmupCosine(LRScheduler):
    """Per-step linear warm-up from 1e-3 of the peak rate, then cosine decay to 0.

    The rate is a function of the step alone, so a run resumed from a checkpoint
    with more (or fewer) steps continues on the new run's schedule: only the step
    count is taken from the checkpoint, which may also come from the chained
    warm-up and cosine schedulers of earlier versions.
    """

    #: Share of the peak rate at the first warm-up step.
    start_factor = 1e-3

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int):
        """Build the schedule.

        Args:
            optimizer: the optimiser; each parameter group decays from its own rate.
            total_steps: optimiser steps of the whole run.
            warmup_steps: steps of linear warm-up at the start, below *total_steps*.
        """
        self.total_steps = max(total_steps, 1)
        self.warmup_steps = warmup_steps
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        """Share of the peak learning rate at a step.

        Args:
            step: optimiser steps taken, from 0.

        Returns:
            The share, in [0, 1]: 0 from *total_steps* on.
        """
        if step < self.warmup_steps:
            return (
                self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
            )
        decay = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / decay, 1.0)
        return 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float | Tensor]:
        """Rates of the parameter groups at the current step."""
        return [rate * self.factor(self.last_epoch) for rate in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """The step count, without the run's length (a resumed run brings its own)."""
        return {
            key: value
            for key, value in super().state_dict().items()
            if key not in ("total_steps", "warmup_steps")
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at a saved step on this run's schedule.

        Called after the optimiser's state is restored, whose rates it replaces
        with this schedule's at that step.

        Args:
            state_dict: a saved scheduler state; only its step count is used.
        """
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = self.last_epoch + 1
        self._last_lr = self.get_lr()
        for group, rate in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = rate


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
    warmup = int(max(total_steps, 1) * warmup_fraction)
    scheduler = WarmupCosine(optimizer, total_steps, warmup)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }
