"""Sentinel-2 L2A imagery of a bbox from a STAC API, as files CentralValleyS2 reads."""

from .manifest import MANIFEST_NAME, Manifest
from .request import DownloadRequest
from .run import IMAGERY_DIR, DownloadResult, download
from .stac import DEFAULT_COLLECTION, DEFAULT_STAC_URL

__all__ = (
    "DEFAULT_COLLECTION",
    "DEFAULT_STAC_URL",
    "IMAGERY_DIR",
    "MANIFEST_NAME",
    "DownloadRequest",
    "DownloadResult",
    "Manifest",
    "download",
)
