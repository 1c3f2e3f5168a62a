"""Band names, label values and other constants shared across the package."""

from typing import Final

#: Sentinel-2 L2A bands in the order the package uses everywhere.
S2_BANDS: Final[tuple[str, ...]] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)

#: Native ground sampling distance of each Sentinel-2 band, in metres.
S2_BAND_RESOLUTION: Final[dict[str, int]] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}

#: Reflectance scale factor on disk: stored value = reflectance x 10000.
REFLECTANCE_SCALE: Final[float] = 10000.0

#: Nodata value of Sentinel-2 L2A files.
S2_NODATA: Final[int] = 0

#: First processing baseline whose L2A digital numbers carry a +1000 offset
#: (ESA, January 2022): reflectance x10000 = DN - 1000.
OFFSET_BASELINE: Final[tuple[int, int]] = (4, 0)

#: The offset those baselines add to every digital number with data.
BOA_ADD_OFFSET: Final[int] = 1000


def adds_boa_offset(baseline: tuple[int, int]) -> bool:
    """Whether L2A products of a processing baseline carry the +1000 offset.

    Args:
        baseline: ``(major, minor)``, e.g. ``(5, 9)`` for ``N0509`` / ``05.09``.

    Returns:
        True from 04.00 on; False before, and for 99.99 (``N9999``: no baseline
        given, e.g. reprocessed or third-party products).
    """
    return OFFSET_BASELINE <= baseline < (99, 99)


#: Name of the L2A scene classification layer (SCL), as a band.
SCL: Final[str] = "SCL"

#: Native resolution of the SCL layer, metres.
SCL_RESOLUTION: Final[int] = 20

#: SCL classes of clouds and their shadows: cloud shadow (3), cloud medium (8)
#: and high probability (9), thin cirrus (10).
SCL_CLOUDS: Final[tuple[int, ...]] = (3, 8, 9, 10)

#: SCL classes without usable data: no data (0), saturated or defective (1).
SCL_UNUSABLE: Final[tuple[int, ...]] = (0, 1)


#: Mask value of a pixel that is not irrigated.
NOT_IRRIGATED: Final[int] = 0

#: Mask value of a pixel that is irrigated.
IRRIGATED: Final[int] = 1

#: Mask value of a pixel whose irrigation status is unknown (no polygon, or a
#: class that says nothing); losses and metrics skip it.
IGNORE_INDEX: Final[int] = 255

#: Class value of a map pixel without a prediction (input nodata, or outside the
#: imagery); the same value as :data:`IGNORE_INDEX`, so maps and masks agree.
MAP_NODATA: Final[int] = IGNORE_INDEX

#: Name and colour (hex RGB) of each class of an irrigation map, shared by plots,
#: the GeoTIFF colour table and the QGIS style.
MAP_CLASSES: Final[dict[int, tuple[str, str]]] = {
    NOT_IRRIGATED: ("Not irrigated", "#d8c89a"),
    IRRIGATED: ("Irrigated", "#1f78b4"),
}

#: What a map's list of imagery dates holds for a scene whose name carries none.
UNKNOWN_DATE: Final[str] = "unknown"

#: Square metres in a hectare.
M2_PER_HA: Final[float] = 10_000.0

#: Square metres in an (international) acre, the unit of California's water
#: reports and DWR's ``ACRES`` column.
M2_PER_ACRE: Final[float] = 4_046.856_422_4

#: Decimals of areas in hectares: 0.01 ha is one 10 m pixel (the polygons'
#: ``area_ha`` of ``predict`` and ``evaluate --fields``, evaluate's scores).
AREA_DECIMALS: Final[int] = 2

#: Largest map made without being asked for more, pixels: 1e9 px is
#: 100,000 km2 at 10 m (the Central Valley is about 52,000 km2), about 5 GB of
#: uncompressed class and probability rasters and hours of CPU time.
MAX_PIXELS = 1_000_000_000
