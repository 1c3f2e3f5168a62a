"""Datasets: Sentinel-2 L2A imagery, DWR irrigation labels and BigEarthNet-S2."""

from .bigearthnet import BigEarthNetIrrigation
from .dwr import DEFAULT_IRRIGATION_MAP, build_irrigation_map
from .labels import IrrigationLabels, resolve_label_path
from .sentinel2 import CentralValleyS2
from .unreadable import UnreadableFileError

__all__ = [
    "DEFAULT_IRRIGATION_MAP",
    "BigEarthNetIrrigation",
    "CentralValleyS2",
    "IrrigationLabels",
    "UnreadableFileError",
    "build_irrigation_map",
    "resolve_label_path",
]
