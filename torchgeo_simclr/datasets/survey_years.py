"""The year a DWR crop map surveys, and whether imagery of other years meets it."""

import os
import re
from collections.abc import Iterable, Sequence

import pyogrio
from pyogrio.errors import DataSourceError

from ..constants import UNKNOWN_DATE
from ..days import dates_text

#: DWR names its statewide crop maps and their layers by survey year, e.g.
#: ``i15_crop_mapping_2023_provisional_20241127.gdb.zip`` holding layer
#: ``i15_Crop_Mapping_2023_Provisional``.
DWR_YEAR = re.compile(r"crop_?mapping_(?P<year>(?:19|20)\d\d)(?!\d)", re.IGNORECASE)


def _name_year(name: str) -> int | None:
    found = DWR_YEAR.search(name)
    return None if found is None else int(found.group("year"))


def survey_year(path: str, layer: str | int | None = None) -> int | None:
    """The survey year a crop map's file or layer name gives.

    Args:
        path: a label file (its name is read first).
        layer: the layer read from it (default: the first); its name is read
            when the file's gives no year.

    Returns:
        The year, or None when neither name follows DWR's
        ``..._Crop_Mapping_YYYY...`` naming (e.g. the sample's
        ``crop_mapping.gpkg``).
    """
    year = _name_year(os.path.basename(os.path.normpath(path)))
    if year is not None or isinstance(layer, str):
        return year if year is not None else _name_year(str(layer))
    if path.lower().endswith(".parquet"):
        return None
    try:
        name = str(pyogrio.list_layers(path)[layer or 0, 0])
    except (DataSourceError, OSError, IndexError):
        return None
    return _name_year(name)


def other_years(
    label_years: Iterable[int],
    labels: str,
    imagery_dates: Sequence[str],
    fix: str,
) -> str | None:
    """Why crop maps of some years should not label imagery of none of them.

    Crops rotate between years, so a 2023 map labels 2019 imagery with the
    wrong crops on many fields, without any error.

    Args:
        label_years: the labels' survey years (see :func:`survey_year`).
        labels: the labels, as the message names them.
        imagery_dates: ISO sensing dates of the imagery (``unknown`` ones are
            skipped).
        fix: how to pick imagery of other days, e.g. ``"--start/--end"``.

    Returns:
        A warning naming both years and what to do, or None when a label year
        is among the imagery's or either is unknown.
    """
    years = sorted(set(label_years))
    known = [day for day in imagery_dates if day != UNKNOWN_DATE]
    imagery_years = {int(day[:4]) for day in known}
    if not years or not imagery_years or imagery_years & set(years):
        return None
    shown = ", ".join(map(str, years))
    return (
        f"The labels {labels} are DWR crop mapping of {shown}, but the imagery "
        f"was sensed on {dates_text(known)}; crops rotate between years, so many "
        "fields would be labelled with another year's crop; pass the crop map of "
        f"the imagery's year (DWR publishes one per year), or imagery of {shown} "
        f"({fix})."
    )
