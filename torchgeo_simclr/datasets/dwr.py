"""California DWR crop-mapping classes and their irrigation mask values.

The California Department of Water Resources (DWR) Statewide Crop Mapping
polygons carry a main land-use class in ``CLASS2`` (and ``CLASS1``..``CLASS4`` for
multi-cropped fields). :data:`DEFAULT_IRRIGATION_MAP` turns each class code into a
mask value: :data:`~torchgeo_simclr.constants.IRRIGATED` (1),
:data:`~torchgeo_simclr.constants.NOT_IRRIGATED` (0) or
:data:`~torchgeo_simclr.constants.IGNORE_INDEX` (255, skipped by losses and
metrics). Codes that are not in the map are treated as unknown (255).

DWR publishes one statewide release per survey year as a zipped File Geodatabase
(about 400,000 fields) at https://data.cnra.ca.gov/dataset/statewide-crop-mapping;
:class:`~torchgeo_simclr.datasets.IrrigationLabels` reads the ``.gdb.zip`` as
downloaded. Use the release of the imagery's year, since fields change crops. The
map below was checked against the 2023 provisional release; a release whose class
column or codes differ needs ``class_column`` or ``class_map``.

The default map applies to DWR's class columns only (:data:`DWR_CLASS_COLUMNS`):
your own column's codes (``S``/``N``, ``I``/``D``, ``1``/``0``, ...) mean what
your ``class_map`` says and nothing else, since a code such as ``S`` (DWR's
semi-agricultural, not irrigated) or ``D`` (DWR's deciduous fruits, irrigated)
may mean the opposite in your file.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from ..constants import IGNORE_INDEX, IRRIGATED, NOT_IRRIGATED

#: Mask value of every DWR ``CLASS2`` code, one entry per code.
DEFAULT_IRRIGATION_MAP: Final[dict[str, int]] = {
    # Agricultural classes, irrigated in California's dry summers.
    "G": IRRIGATED,  # grain and hay
    "R": IRRIGATED,  # rice
    "F": IRRIGATED,  # field crops
    "P": IRRIGATED,  # pasture (alfalfa, clover, mixed pasture, ...)
    "T": IRRIGATED,  # truck, nursery and berry crops
    "D": IRRIGATED,  # deciduous fruits and nuts
    "C": IRRIGATED,  # citrus and subtropical
    "V": IRRIGATED,  # vineyards
    "YP": IRRIGATED,  # young perennials
    # Land that is not irrigated cropland.
    "I": NOT_IRRIGATED,  # idle
    "U": NOT_IRRIGATED,  # urban
    "UR": NOT_IRRIGATED,  # urban residential
    "UC": NOT_IRRIGATED,  # urban commercial
    "UI": NOT_IRRIGATED,  # urban industrial
    "UV": NOT_IRRIGATED,  # urban vacant
    "S": NOT_IRRIGATED,  # semi-agricultural (farmsteads, feedlots, dairies)
    "NV": NOT_IRRIGATED,  # native vegetation
    "NR": NOT_IRRIGATED,  # riparian vegetation
    "NW": NOT_IRRIGATED,  # water surface
    "NC": NOT_IRRIGATED,  # native classes, unsegregated
    "NB": NOT_IRRIGATED,  # barren and wasteland
    # Classes that say nothing about irrigation.
    "NS": IGNORE_INDEX,  # not surveyed
    "X": IGNORE_INDEX,  # not cropped or unclassified
}

#: The DWR class column read by default: the main land-use class.
DWR_CLASS_COLUMN: Final[str] = "CLASS2"

#: DWR's class columns (the main class, and the classes of multi-cropped
#: fields), whose codes :data:`DEFAULT_IRRIGATION_MAP` gives a mask value.
DWR_CLASS_COLUMNS: Final[frozenset[str]] = frozenset(
    {"CLASS1", DWR_CLASS_COLUMN, "CLASS3", "CLASS4"}
)

#: Mask values a class map may use.
VALID_MASK_VALUES: Final[frozenset[int]] = frozenset(
    {NOT_IRRIGATED, IRRIGATED, IGNORE_INDEX}
)

#: Name under which a missing (null) class code is reported.
MISSING_CODE: Final[str] = "<missing>"

#: A whole number written with a zero fraction, e.g. ``1.0``: its integer part.
_WHOLE_NUMBER: Final[re.Pattern[str]] = re.compile(r"([+-]?[0-9]+)\.0+")


def build_irrigation_map(
    overrides: Mapping[str, int] | None = None,
    class_column: str = DWR_CLASS_COLUMN,
) -> dict[str, int]:
    """Build the effective class map: the default updated with user entries.

    Args:
        overrides: class code -> mask value entries that replace or extend
            :data:`DEFAULT_IRRIGATION_MAP`, e.g. ``{"I": 255, "UL": 1}``, or,
            for a column other than DWR's, the whole map, e.g. ``{"S": 1,
            "N": 0}``.
        class_column: the column the codes come from: the defaults apply only
            to DWR's (see :func:`is_dwr_column`).

    Returns:
        A new dict from class code to mask value (0, 1 or 255): the defaults
        updated with *overrides* for a DWR class column, else *overrides*
        alone.

    Raises:
        ValueError: If an override value is not 0, 1 or 255.
    """
    effective = dict(DEFAULT_IRRIGATION_MAP) if is_dwr_column(class_column) else {}
    for code, value in (overrides or {}).items():
        if isinstance(value, bool) or value not in VALID_MASK_VALUES:
            msg = (
                f"class_map entry {code!r}: {value!r} is not a mask value; expected "
                f"{NOT_IRRIGATED} (not irrigated), {IRRIGATED} (irrigated) or "
                f"{IGNORE_INDEX} (ignore), so set it to one of those."
            )
            raise ValueError(msg)
        effective[code_key(code)] = int(value)
    return effective


def is_dwr_column(class_column: str) -> bool:
    """Whether a class column is DWR's, whose codes the defaults map.

    Args:
        class_column: the label file's column with the class codes.

    Returns:
        True for one of :data:`DWR_CLASS_COLUMNS`, in any case (``Class2``
        too).
    """
    return class_column.upper() in DWR_CLASS_COLUMNS


def code_key(code: object) -> str:
    """A class code as the class map keys it.

    An integer column with nulls (QGIS leaves unfilled rows NULL) is read as
    floats, so its codes come as ``1.0`` and ``0.0``: a float that is a whole
    number is keyed as the integer prints (``"1"``), and so is a string that
    writes one with a zero fraction (``"1.0"``, e.g. a class-map key), so that
    ``1``, ``1.0`` and ``"1.0"`` all match a class map keyed ``"1"`` or
    ``"1.0"``. Other floats keep their ``str`` (``"1.5"``).

    Args:
        code: a code as read (string, number, or None/NaN when missing), or a
            class-map key.

    Returns:
        The code without surrounding whitespace (DWR pads some codes, e.g.
        ``" V"``), a whole number without its zero fraction, or
        ``"<missing>"`` for a null code.
    """
    if code is None:
        return MISSING_CODE
    if isinstance(code, float | np.floating):
        if np.isnan(code):
            return MISSING_CODE
        if float(code).is_integer():
            return str(int(code))
        return str(code).strip()
    key = str(code).strip()
    whole = _WHOLE_NUMBER.fullmatch(key)
    return key if whole is None else whole[1]


def class_codes_to_mask_values(
    codes: Iterable[object], class_map: Mapping[str, int]
) -> tuple[npt.NDArray[np.uint8], list[str]]:
    """Map class codes to mask values.

    Codes are compared after stripping surrounding whitespace (DWR pads some
    codes, e.g. ``" V"``); null codes and codes missing from *class_map* get
    :data:`~torchgeo_simclr.constants.IGNORE_INDEX`.

    Args:
        codes: one class code per feature (strings, or None/NaN when missing).
        class_map: class code -> mask value, e.g. from :func:`build_irrigation_map`.

    Returns:
        The mask value of each feature, uint8 ``[N]``, and the sorted list of
        distinct codes that were not in *class_map* (a null code is reported as
        ``"<missing>"``).
    """
    cache: dict[object, int] = {}
    unknown: set[str] = set()
    values = []
    for code in codes:
        value = cache.get(code)
        if value is None:
            key = code_key(code)
            if key not in class_map:
                unknown.add(key)
            value = class_map.get(key, IGNORE_INDEX)
            cache[code] = value
        values.append(value)
    return np.asarray(values, dtype=np.uint8), sorted(unknown)
