"""LightningDataModules: which samples, which split, which augmentations."""

from .central_valley import CentralValleyDataModule

__all__ = ("CentralValleyDataModule",)
