"""LightningDataModules: which samples, which split, which augmentations."""

from .central_valley import CentralValleyDataModule
from .prediction import MapDataModule

__all__ = ("CentralValleyDataModule", "MapDataModule")
