"""Scenes of two UTM zones under one root: the CRS chosen is named.

torchgeo reads every scene on the grid of the first file by path and
resamples the others onto it; with a zone-29 and a zone-30 scene under
--root, the map came out in the zone of whichever name sorted first, without
a word.
"""

import warnings
from pathlib import Path

import pytest
from conftest import FAKE_CRS, FAKE_ORIGIN, FAKE_PRODUCT, fake_s2_multiband
from pyproj import CRS, Transformer

from torchgeo_simclr.datasets import CentralValleyS2

#: The zone-10 scene's product, and an older one of zone 11 (its name sorts first).
ZONE_10 = FAKE_PRODUCT
ZONE_11 = "S2A_MSIL2A_20230710T182921_N0509_R027_T11SKA_20230711T001005"


def _two_zones(root: Path) -> None:
    """The fake scene in zone 10, and the same ground in zone 11, older."""
    fake_s2_multiband(root, name=ZONE_10 + ".tif", size=32)
    to_11 = Transformer.from_crs(FAKE_CRS, "EPSG:32611", always_xy=True)
    x, y = to_11.transform(*FAKE_ORIGIN)
    fake_s2_multiband(
        root,
        name=ZONE_11 + ".tif",
        size=32,
        origin=(round(x), round(y)),
        crs="EPSG:32611",
    )


def _crs_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "CRS(s)" in str(w.message)]


def test_two_zones_name_the_crs_chosen_and_how_to_choose(tmp_path: Path) -> None:
    _two_zones(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CentralValleyS2(tmp_path)
    # The choice itself is unchanged: the first file by path.
    assert dataset.crs == CRS.from_epsg(32611)
    first = str(tmp_path / (ZONE_11 + ".tif"))
    assert _crs_warnings(caught) == [
        f"The Sentinel-2 files read under {str(tmp_path)!r} are in 2 CRS(s) "
        "(EPSG:32610: 1 file, EPSG:32611: 1 file); they are read on a grid in "
        f"EPSG:32611, the CRS of the first file by path ({first!r}), and files "
        "in another CRS are resampled onto it; to choose the CRS, keep only one "
        "zone's files under --root (--data.init_args.root), or in Python pass "
        "crs, e.g. CentralValleyS2(root, crs='EPSG:32610')."
    ]


def test_dates_that_keep_only_the_other_zone_still_warn(tmp_path: Path) -> None:
    # --start keeps the zone-10 scene only, yet the grid is zone 11's.
    _two_zones(tmp_path)
    with pytest.warns(
        UserWarning,
        match=r"\(EPSG:32610: 1 file\); they are read "
        r"on a grid in EPSG:32611",
    ) as caught:
        dataset = CentralValleyS2(tmp_path, start="2023-07-15")
    assert dataset.crs == CRS.from_epsg(32611)
    assert len(_crs_warnings(list(caught))) == 1


def test_one_zone_or_a_crs_asked_for_is_not_warned_about(tmp_path: Path) -> None:
    _two_zones(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CentralValleyS2(tmp_path, crs="EPSG:32610")
        CentralValleyS2(tmp_path / (ZONE_10 + ".tif"))
    assert dataset.crs == CRS.from_epsg(32610)
    assert _crs_warnings(caught) == []
