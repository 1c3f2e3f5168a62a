"""Find a band's asset in a STAC item, whatever the catalog calls it.

Catalogs name Sentinel-2 assets differently: Planetary Computer and older
catalogs use the band names (``B04``, ``SCL``), Earth Search v1 the common names
(``red``, ``scl``), and the Copernicus Data Space the band with its resolution
(``B04_10m``). :func:`find_asset` tries them all.
"""

from typing import Any, Final

from pystac import Asset, Item

from ..constants import (
    BOA_ADD_OFFSET,
    REFLECTANCE_SCALE,
    S2_BAND_RESOLUTION,
    SCL,
    SCL_RESOLUTION,
    adds_boa_offset,
)

#: Common (Earth Search v1) asset name of each band and of the SCL layer.
COMMON_NAMES: Final[dict[str, str]] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B11": "swir16",
    "B12": "swir22",
    SCL: "scl",
}


def asset_keys(band: str) -> list[str]:
    """Asset names that may hold *band*, most common first.

    Args:
        band: ``B01`` ... ``B12``, ``B8A`` or ``SCL``.

    Returns:
        Candidate asset keys.
    """
    resolution = S2_BAND_RESOLUTION.get(band, SCL_RESOLUTION)
    return [
        band,
        COMMON_NAMES[band],
        band.lower(),
        f"{band}_{resolution}m",
        COMMON_NAMES[band].upper(),
    ]


def find_asset(item: Item, band: str) -> Asset:
    """Return the asset of *item* that holds *band*.

    Args:
        item: a Sentinel-2 L2A STAC item.
        band: ``B01`` ... ``B12``, ``B8A`` or ``SCL``.

    Returns:
        The asset.

    Raises:
        ValueError: if no asset has one of the names of :func:`asset_keys`.
    """
    for key in asset_keys(band):
        if key in item.assets:
            return item.assets[key]
    msg = (
        f"STAC item {item.id} has no asset for band {band} (looked for "
        f"{', '.join(asset_keys(band))}; it has {', '.join(sorted(item.assets))}); "
        "check that --collection is a Sentinel-2 L2A collection."
    )
    raise ValueError(msg)


def to_reflectance_x10000(item: Item, asset: Asset) -> tuple[float, float]:
    """Gain and bias that turn the asset's digital numbers into reflectance x10000.

    Uses the asset's ``raster:bands`` scale and offset when the catalog gives
    them (Earth Search v1: scale 0.0001, offset -0.1 from baseline 04.00 on);
    otherwise the item's ``s2:processing_baseline`` decides whether the 1000
    offset applies.

    Args:
        item: the STAC item.
        asset: one of its band assets.

    Returns:
        ``(gain, bias)``: reflectance x10000 = DN * gain + bias.
    """
    bands: list[dict[str, Any]] = asset.extra_fields.get("raster:bands") or [{}]
    scale, offset = bands[0].get("scale"), bands[0].get("offset")
    if scale is not None:
        return float(scale) * REFLECTANCE_SCALE, float(offset or 0) * REFLECTANCE_SCALE
    baseline = str(item.properties.get("s2:processing_baseline", "0.0"))
    major, _, minor = baseline.partition(".")
    newer = adds_boa_offset((int(major or 0), int(minor or 0)))
    return 1.0, -float(BOA_ADD_OFFSET) if newer else 0.0
