"""LightningModules: SimCLRv2 pretraining, fine-tuning, distillation, maps."""

from .distill import DistillTask
from .finetune import FineTuneTask
from .normalisation import RawInputWarning
from .prediction import MapPredictionTask
from .simclr import SimCLRv2Task

__all__ = (
    "DistillTask",
    "FineTuneTask",
    "MapPredictionTask",
    "RawInputWarning",
    "SimCLRv2Task",
)
