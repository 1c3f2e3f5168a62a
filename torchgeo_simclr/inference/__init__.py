"""Tiled prediction over a bounding box and the map files a GIS analyst opens."""

from .predict import MapResult, predict_map
from .writer import IrrigationMapWriter, MapFiles

__all__ = ("IrrigationMapWriter", "MapFiles", "MapResult", "predict_map")
