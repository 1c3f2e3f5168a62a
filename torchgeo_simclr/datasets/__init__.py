"""GeoDatasets: Sentinel-2 L2A imagery and DWR irrigation labels."""

from .dwr import DEFAULT_IRRIGATION_MAP, build_irrigation_map
from .labels import IrrigationLabels, resolve_label_path
from .sentinel2 import CentralValleyS2

__all__ = [
    "DEFAULT_IRRIGATION_MAP",
    "CentralValleyS2",
    "IrrigationLabels",
    "build_irrigation_map",
    "resolve_label_path",
]
