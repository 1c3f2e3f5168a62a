"""The sensing date of each mosaicked pixel, and of patches cut from a mosaic."""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from conftest import (
    FAKE_ORIGIN,
    FAKE_PRODUCT,
    FAKE_SIZE,
    fake_s2_multiband,
    fake_s2_per_band,
    fake_s2_with_scl,
)
from rasterio.windows import Window

from torchgeo_simclr.datamodules.patches import GridPatches
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.datasets.dates import NAT, iso_days
from torchgeo_simclr.inference.grid import output_grid

X0, Y0 = FAKE_ORIGIN
#: The whole fake scene, on its own grid.
SCENE = (slice(X0, X0 + FAKE_SIZE * 10.0, 10.0), slice(Y0 - FAKE_SIZE * 10.0, Y0, 10.0))
JULY, AUGUST = np.datetime64("2023-07-15"), np.datetime64("2023-08-20")
#: The August product, the fake one a month later.
LATER = FAKE_PRODUCT.replace("20230715T184919", "20230820T184919", 1)


def days(sample: dict[str, object]) -> npt.NDArray[np.datetime64]:
    """A sample's ``date`` as numpy days."""
    date = sample["date"]
    assert hasattr(date, "numpy")
    values: npt.NDArray[np.datetime64] = date.numpy().view("datetime64[D]")
    return values


def july_and_august_with_a_hole(root: Path) -> None:
    """July, and August with no data in its top-left 64 x 64 px."""
    fake_s2_multiband(root)
    august = fake_s2_multiband(root, name=f"{LATER}.tif")
    with rasterio.open(august, "r+") as dst:
        dst.write(np.zeros((12, 64, 64), np.uint16), window=Window(0, 0, 64, 64))


def test_each_pixel_has_the_date_of_the_scene_it_comes_from(tmp_path: Path) -> None:
    # With the newest scene's pixels missing in a corner, the mosaic fills
    # the corner from July: its pixels are July's, the rest August's.
    july_and_august_with_a_hole(tmp_path)
    assert "date" not in CentralValleyS2(tmp_path)[SCENE]
    ds = CentralValleyS2(tmp_path, pixel_dates=True)
    got = days(ds[SCENE])
    assert got.shape == (FAKE_SIZE, FAKE_SIZE)
    assert (got[:64, :64] == JULY).all()
    got[:64, :64] = AUGUST
    assert (got == AUGUST).all()
    # Beyond the scenes, no pixel and no date.
    outside = ds[slice(X0 - 500.0, X0 + 500.0, 10.0), slice(Y0 - 500.0, Y0, 10.0)]
    assert np.isnat(days(outside)[:, :50]).all()
    assert (days(outside)[:, 50:] == JULY).all()


def test_dates_follow_cloud_masks_and_off_grid_queries(tmp_path: Path) -> None:
    # Per-band products with an SCL go file by file through the cloud masks;
    # an off-grid query goes through torchgeo: both must record the dates.
    fake_s2_with_scl(tmp_path / "july")
    fake_s2_with_scl(tmp_path / "august", np.s_[:32, :32], product=LATER)
    ds = CentralValleyS2(tmp_path, bands=["B02", "B03", "B04"], pixel_dates=True)
    got = days(ds[SCENE])
    # The cloud, grown by the 10 m bands' reach, is filled from July.
    assert (got[:60, :60] == JULY).all()
    assert (got[80:, 80:] == AUGUST).all()
    assert set(np.unique(got).tolist()) == {JULY.item(), AUGUST.item()}
    off = ds[slice(X0 + 3.0, X0 + 2003.0, 10.0), slice(Y0 - 2003.0, Y0 - 3.0, 10.0)]
    assert (days(off)[:55, :55] == JULY).all()
    assert (days(off)[-50:, -50:] == AUGUST).all()


def test_a_time_series_has_no_pixel_dates(tmp_path: Path) -> None:
    july_and_august_with_a_hole(tmp_path)
    ds = CentralValleyS2(tmp_path, time_series=True, pixel_dates=True)
    assert "date" not in ds[SCENE]


def test_patches_take_the_date_most_of_their_pixels_have(tmp_path: Path) -> None:
    july_and_august_with_a_hole(tmp_path)
    ds = CentralValleyS2(tmp_path, pixel_dates=True)
    grid = output_grid(ds, None, "EPSG:4326")
    # 48 px patches: at (0, 0) all July; at (24, 24) 40 x 40 px July; at
    # (40, 40) 24 x 24 px July; at (200, 200) all August.
    corners = [(0, 0), (24, 24), (40, 40), (200, 200)]
    windows = [Window(col, row, 48, 48) for row, col in corners]
    batch = GridPatches(ds, grid, windows).__getitems__(range(4))
    got = batch["date"].numpy().view("datetime64[D]")
    np.testing.assert_array_equal(got, [JULY, JULY, AUGUST, AUGUST])
    assert iso_days(batch["dates"].tolist()) == ["2023-07-15", "2023-08-20"]


def test_patches_of_a_product_without_a_date_get_none(tmp_path: Path) -> None:
    fake_s2_per_band(tmp_path, product="unnamed", bands=["B02", "B03", "B04"])
    with pytest.warns(UserWarning, match="no sensing date"):
        ds = CentralValleyS2(tmp_path, bands=["B02", "B03", "B04"], pixel_dates=True)
    grid = output_grid(ds, None, "EPSG:4326")
    batch = GridPatches(ds, grid, [Window(0, 0, 48, 48)]).__getitems__([0])
    assert batch["date"].tolist() == [NAT]
    assert iso_days(batch["dates"].tolist()) == ["unknown"]


def test_the_map_dates_leave_out_pixels_beyond_its_edge(tmp_path: Path) -> None:
    # A window at the map's east edge reads past it, into the next scene,
    # whose pixels never reach the map and whose date must not be listed.
    fake_s2_multiband(tmp_path)
    east = (X0 + FAKE_SIZE * 10.0, Y0)
    fake_s2_multiband(
        tmp_path, name=f"{LATER.replace('T10SFG', 'T10SGG')}.tif", origin=east
    )
    ds = CentralValleyS2(tmp_path, pixel_dates=True)
    for width, expected in (
        (500.0, ["2023-07-15"]),
        (510.0, ["2023-07-15", "2023-08-20"]),
    ):
        bbox = (east[0] - 500.0, Y0 - 500.0, east[0] - 500.0 + width, Y0)
        grid = output_grid(ds, bbox, "EPSG:32610")
        window = Window(grid.width - 20, 0, 48, 48)
        batch = GridPatches(ds, grid, [window]).__getitems__([0])
        assert iso_days(batch["dates"].tolist()) == expected
