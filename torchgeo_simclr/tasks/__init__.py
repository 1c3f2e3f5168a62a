"""LightningModules: SimCLRv2 pretraining (fine-tuning and distillation follow)."""

from .simclr import SimCLRv2Task

__all__ = ("SimCLRv2Task",)
