"""LightningModules: SimCLRv2 pretraining, fine-tuning and distillation."""

from .distill import DistillTask
from .finetune import FineTuneTask
from .simclr import SimCLRv2Task

__all__ = ("DistillTask", "FineTuneTask", "SimCLRv2Task")
