"""Sentinel-2 product folders: their processing level and baseline, ESA's offset."""

import functools
import os
import re
from collections.abc import Sequence

import torch
from torch import Tensor

from ..constants import BOA_ADD_OFFSET, S2_NODATA, adds_boa_offset

#: Product names (a folder or ``.SAFE`` above the band files), their
#: processing level and baseline, e.g. ``S2B_MSIL2A_20230715T184919_N0509_...``.
PRODUCT_REGEX = re.compile(
    r"^S2[ABC]_MSIL(?P<level>1C|2A)_\d{8}T\d{6}_N(?P<major>\d{2})(?P<minor>\d{2})_"
)


@functools.lru_cache(maxsize=4096)
def product_name(filepath: str) -> re.Match[str] | None:
    """The nearest folder above a file named like a Sentinel-2 product.

    Args:
        filepath: path of a band file.

    Returns:
        The match of :data:`PRODUCT_REGEX` on that folder's name (``level``,
        ``major``, ``minor``), or None outside a product folder.
    """
    for part in reversed(os.path.normpath(filepath).split(os.sep)[:-1]):
        if found := PRODUCT_REGEX.match(part):
            return found
    return None


def boa_offset(filepath: str) -> int:
    """The offset ESA added to a per-band file's digital numbers.

    The processing baseline is read from the nearest folder above the file
    named like an L2A product (``S2B_MSIL2A_20230715T184919_N0509_...``, or
    its ``.SAFE``). Baselines 04.00 and later (January 2022 on) add 1000;
    earlier ones, ``N9999`` (no baseline given) and files outside a product
    folder add nothing.

    Args:
        filepath: path of a band file.

    Returns:
        1000 or 0.
    """
    found = product_name(filepath)
    if found is None or found["level"] != "2A":
        return 0
    baseline = int(found["major"]), int(found["minor"])
    return BOA_ADD_OFFSET if adds_boa_offset(baseline) else 0


def remove_offset(data: Tensor, offset: int, nodata: float = S2_NODATA) -> Tensor:
    """Subtract a BOA offset from pixels with data, keeping them above nodata.

    As ``torchgeo-simclr download`` does: values the offset would take to 0 or
    below (negative reflectance) become 1, so they stay data.

    Args:
        data: digital numbers, any shape.
        offset: the offset to remove (see :func:`boa_offset`).
        nodata: the value of pixels without data, left as it is.

    Returns:
        Reflectance x10000, *data*'s shape and dtype.
    """
    if not offset:
        return data
    return torch.where(data == nodata, data, (data - offset).clamp_min(1))


def level_1c_files(band_files: Sequence[str]) -> list[str]:
    """The band files that lie inside a Level-1C product folder.

    Args:
        band_files: per-band files found under the root.

    Returns:
        Those in a folder named ``S2?_MSIL1C_...`` (top-of-atmosphere
        reflectance, e.g. the input Sen2Cor leaves beside its output).
    """
    return [
        path
        for path in band_files
        if (found := product_name(path)) is not None and found["level"] == "1C"
    ]
