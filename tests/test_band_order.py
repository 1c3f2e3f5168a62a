"""Multi-band scenes whose band descriptions name another band order are refused.

A stack written as B02 B03 B04 B08 ... (a common export order) was read as
B01 ... B12 by position, giving a plausible map that agreed with the right one
on about half its pixels.
"""

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import fake_s2_multiband

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datasets import CentralValleyS2

#: The order of the review's stack: 10 m bands, 20 m bands, then 60 m bands.
EXPORT_ORDER = (
    "B02",
    "B03",
    "B04",
    "B08",
    "B05",
    "B06",
    "B07",
    "B8A",
    "B11",
    "B12",
    "B01",
    "B09",
)


def stack(root: Path, order: Sequence[str], descriptions: Sequence[str]) -> Path:
    """A 12-band scene holding the fake bands in *order*, described as given."""
    path = fake_s2_multiband(root)
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[[S2_BANDS.index(band) for band in order]])
        for i, description in enumerate(descriptions, 1):
            dst.set_band_description(i, description)
    return path


def test_a_stack_described_in_another_order_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    path = stack(tmp_path / "stack", EXPORT_ORDER, EXPORT_ORDER)
    with pytest.raises(ValueError, match="holds its bands in the order") as error:
        CentralValleyS2(tmp_path / "stack")
    message = str(error.value)
    assert repr(str(path)) in message
    assert f"the order {' '.join(EXPORT_ORDER)} (its band descriptions)" in message
    assert f"expected in the order {' '.join(S2_BANDS)}" in message
    # 1-based positions of B01, B02, ... B12 in the file.
    picks = "-b 11 -b 1 -b 2 -b 3 -b 5 -b 6 -b 7 -b 4 -b 8 -b 12 -b 9 -b 10"
    assert f"gdal_translate {picks} {path}" in message
    assert "\n" not in message


def test_the_suggested_band_numbers_put_the_bands_in_order(tmp_path: Path) -> None:
    # Following the advice (here with rasterio, as gdal_translate -b would)
    # gives the scene of a stack written in order, pixel for pixel.
    wrong = stack(tmp_path / "wrong", EXPORT_ORDER, EXPORT_ORDER)
    with pytest.raises(ValueError, match="gdal_translate") as error:
        CentralValleyS2(tmp_path / "wrong")
    picks = [int(n) for n in re.findall(r"-b (\d+)", str(error.value))]
    with rasterio.open(wrong) as src:
        profile, data = src.profile, src.read(picks)
        descriptions = [src.descriptions[n - 1] for n in picks]
    fixed = tmp_path / "reordered" / wrong.name
    fixed.parent.mkdir()
    with rasterio.open(fixed, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
    right = fake_s2_multiband(tmp_path / "right")
    read = [CentralValleyS2(path.parent) for path in (fixed, right)]
    first, second = (ds[ds.bounds]["image"] for ds in read)
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    "spell",
    [
        lambda band: band,
        lambda band: band.replace("B0", "B"),  # GEE: B2, B8, B8A
        lambda band: band.lower(),
        lambda band: band.replace("B8A", "B08A"),
    ],
    ids=["B02", "B2", "b02", "B08A"],
)
def test_spellings_of_the_band_names_are_understood(tmp_path: Path, spell) -> None:
    names = [spell(band) for band in EXPORT_ORDER]
    stack(tmp_path / "wrong", EXPORT_ORDER, names)
    with pytest.raises(ValueError, match="holds its bands in the order B02 B03"):
        CentralValleyS2(tmp_path / "wrong")
    # The same spellings in the right order read.
    stack(tmp_path / "right", S2_BANDS, [spell(band) for band in S2_BANDS])
    assert len(CentralValleyS2(tmp_path / "right")) == 1


def test_a_stack_naming_a_band_twice_is_refused(tmp_path: Path) -> None:
    names = [*S2_BANDS[:-1], "B11"]  # B12 missing, B11 twice
    stack(tmp_path / "stack", S2_BANDS, names)
    with pytest.raises(ValueError, match="write the 12 L2A bands once each"):
        CentralValleyS2(tmp_path / "stack")


@pytest.mark.parametrize(
    "descriptions",
    [
        [""] * 12,
        ["coastal", "blue", "green", "red", *[f"band {i}" for i in range(5, 13)]],
        [*EXPORT_ORDER[:-1], "SWIR"],  # one is not a band name: read by position
    ],
    ids=["none", "not band names", "partly band names"],
)
def test_stacks_without_band_names_are_read_by_position(
    tmp_path: Path, descriptions: list[str]
) -> None:
    stack(tmp_path / "stack", S2_BANDS, descriptions)
    ds = CentralValleyS2(tmp_path / "stack")
    image = ds[ds.bounds]["image"]
    reference = fake_s2_multiband(tmp_path / "reference")
    with rasterio.open(reference) as src:
        np.testing.assert_array_equal(image.numpy(), src.read().astype(np.float32))
