"""Backbones, heads and checkpoint loading."""

from .backbone import create_backbone
from .projection import ProjectionHead

__all__ = ("ProjectionHead", "create_backbone")
