"""LightningDataModules: which samples, which split, which augmentations."""

from .bigearthnet import BigEarthNetIrrigationDataModule
from .central_valley import CentralValleyDataModule
from .prediction import MapDataModule

__all__ = (
    "BigEarthNetIrrigationDataModule",
    "CentralValleyDataModule",
    "MapDataModule",
)
