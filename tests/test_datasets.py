"""Tests of CentralValleyS2, IrrigationLabels and the DWR class map."""

import gc
import os
import pickle
import re
import warnings
import weakref
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.shutil
import shapely
import torch
from conftest import (
    FAKE_CRS,
    FAKE_FIELDS,
    FAKE_ORIGIN,
    FAKE_PRODUCT,
    FAKE_SIZE,
    fake_dwr_gpkg,
    fake_s2_multiband,
    fake_s2_per_band,
    fake_s2_value,
)
from jsonargparse import ArgumentParser
from matplotlib.figure import Figure
from pyproj import CRS, Transformer
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from torch.utils.data import DataLoader
from torchgeo.datasets import IntersectionDataset, RasterDataset, stack_samples
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler

from torchgeo_simclr.constants import (
    IGNORE_INDEX,
    IRRIGATED,
    NOT_IRRIGATED,
    S2_BAND_RESOLUTION,
    S2_BANDS,
    SCL_CLOUDS,
)
from torchgeo_simclr.datasets import (
    DEFAULT_IRRIGATION_MAP,
    CentralValleyS2,
    IrrigationLabels,
    build_irrigation_map,
    cloud_masks,
    resolve_label_path,
    sentinel2,
)
from torchgeo_simclr.datasets.cloud_masks import CloudMask, read_flags
from torchgeo_simclr.datasets.labels import EXPECTED_FORMATS
from torchgeo_simclr.datasets.products import remove_offset
from torchgeo_simclr.datasets.sentinel2 import fresh_file_handles
from torchgeo_simclr.datasets.unreadable import UnreadableFileError

FIXTURES = Path(__file__).parents[1] / ".." / "shared" / "fixtures"
MAJORTOM = (
    FIXTURES
    / "sentinel2_l2a_majortom"
    / "S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543"
)
DWR_GDB = (
    FIXTURES / "dwr_crop_mapping" / "i15_crop_mapping_2023_provisional_20241127.gdb.zip"
)
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real-data fixtures not found at {FIXTURES}"
)

X0, Y0 = FAKE_ORIGIN
SIDE = FAKE_SIZE * 10.0
SENSING = datetime(2023, 7, 15, 18, 49, 19)
SCENE = (slice(X0, X0 + SIDE), slice(Y0 - SIDE, Y0))


#: Pixels at the scene edge where resampling a coarse band extrapolates.
S2_BAND_EDGE = {
    band: {10: 0, 20: 1, 60: 4}[res] for band, res in S2_BAND_RESOLUTION.items()
}


def expected(band: str, xmin: float, ymax: float, size: int) -> np.ndarray:
    """Fake values on the 10 m grid of a window with top-left (xmin, ymax)."""
    centres = (np.arange(size) + 0.5) * 10.0
    return fake_s2_value(
        S2_BANDS.index(band), xmin + centres[None, :], ymax - centres[:, None]
    )


def pixel(sample_mask: torch.Tensor, x: float, y: float) -> int:
    """Mask value at map coordinates (x, y) of a full-scene sample."""
    return int(sample_mask[int((Y0 - y) // 10), int((x - X0) // 10)])


# Sentinel-2: layouts, grid and dates


def test_multiband_scene(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    ds = CentralValleyS2(tmp_path)
    sample = ds[SCENE]
    image = sample["image"]
    assert image.dtype == torch.float32
    assert image.shape == (12, FAKE_SIZE, FAKE_SIZE)
    for i, band in enumerate(S2_BANDS):
        np.testing.assert_array_equal(
            image[i].numpy(), np.floor(expected(band, X0, Y0, FAKE_SIZE))
        )
    assert ds.index.index[0].left == SENSING
    assert ds.crs == CRS.from_user_input(FAKE_CRS)
    assert ds.res == (10.0, 10.0)


def test_band_selection_and_order(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path / "multi")
    fake_s2_per_band(tmp_path / "single")
    for root in ("multi", "single"):
        ds = CentralValleyS2(tmp_path / root, bands=["B11", "B08", "B02"])
        window = (slice(X0 + 600, X0 + 1200), slice(Y0 - 1200, Y0 - 600))
        image = ds[window]["image"]
        assert image.shape == (3, 60, 60)
        for i, band in enumerate(["B11", "B08", "B02"]):
            np.testing.assert_allclose(
                image[i].numpy(), expected(band, X0 + 600, Y0 - 600, 60), atol=1
            )


def test_per_band_product_directory(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path)
    ds = CentralValleyS2(tmp_path)
    assert ds.separate_files
    assert len(ds) == 1
    assert Path(ds.index.filepath.iloc[0]).parent == product
    # No date in B02.tif: it comes from the product directory name.
    assert ds.index.index[0].left == SENSING
    image = ds[SCENE]["image"]
    assert image.shape == (12, FAKE_SIZE, FAKE_SIZE)
    assert image.dtype == torch.float32
    for i, band in enumerate(S2_BANDS):
        # Away from the edge, bilinear resampling of a plane is exact, so any
        # shift of a 20 m or 60 m pixel would show.
        edge = S2_BAND_EDGE[band]
        inner = slice(edge, FAKE_SIZE - edge)
        np.testing.assert_allclose(
            image[i, inner, inner].numpy(),
            expected(band, X0, Y0, FAKE_SIZE)[inner, inner],
            atol=1,
            err_msg=band,
        )


@pytest.mark.parametrize(
    ("layout", "given", "indexed"),
    [
        ({}, "B04.tif", "B02.tif"),
        ({}, "B8A.tif", "B02.tif"),
        (
            {"safe_names": True, "resolution_dirs": True},
            "R20m/T10SFG_20230715T184919_B05_20m.tif",
            "R10m/T10SFG_20230715T184919_B02_10m.tif",
        ),
    ],
)
def test_a_band_file_stands_for_its_product(
    tmp_path: Path, layout: dict[str, bool], given: str, indexed: str
) -> None:
    # Only the reference band's file (B02) was indexed, so B04.tif was refused
    # with "No Sentinel-2 L2A files found ... expected ... B04.tif".
    bands = ["B02", "B04", "B05", "B8A"]
    product = fake_s2_per_band(tmp_path, bands=bands, **layout)
    ds = CentralValleyS2(product / given, bands=bands)
    assert list(ds.index.filepath) == [str(product / indexed)]
    assert ds.index.index[0].left == SENSING
    whole = CentralValleyS2(tmp_path, bands=bands)
    np.testing.assert_array_equal(ds[SCENE]["image"], whole[SCENE]["image"])


def test_a_band_file_stands_for_the_requested_bands_reference(
    tmp_path: Path,
) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02", "B04", "B8A"])
    ds = CentralValleyS2(product / "B02.tif", bands=["B8A"])
    assert list(ds.index.filepath) == [str(product / "B8A.tif")]
    assert ds[SCENE]["image"].shape == (1, FAKE_SIZE, FAKE_SIZE)
    # Without the reference band, the message names both files.
    (product / "B02.tif").unlink()
    with pytest.raises(FileNotFoundError) as info:
        CentralValleyS2(product / "B04.tif", bands=["B02", "B04"])
    message = str(info.value)
    assert message.startswith(f"Band file {str(product / 'B04.tif')!r} stands for")
    assert f"lacks B02 (expected {str(product / 'B02.tif')!r})" in message
    assert "No Sentinel-2 L2A files found" not in message


@pytest.mark.parametrize(
    ("baseline", "stored_offset"), [("N0301", 0), ("N0400", 1000), ("N0509", 1000)]
)
def test_per_band_products_lose_esas_offset(
    tmp_path: Path, baseline: str, stored_offset: int
) -> None:
    # From baseline 04.00 (January 2022) ESA stores reflectance x10000 + 1000;
    # read as stored, every pixel of such a product was 0.1 too bright.
    product = FAKE_PRODUCT.replace("_N0509_", f"_{baseline}_")
    fake_s2_per_band(tmp_path, product=product, bands=["B02"])
    with rasterio.open(tmp_path / product / "B02.tif") as src:
        stored = src.read(1)
    np.testing.assert_array_equal(
        stored, expected("B02", X0, Y0, FAKE_SIZE) + stored_offset
    )
    image = CentralValleyS2(tmp_path, bands=["B02"])[SCENE]["image"]
    np.testing.assert_array_equal(image[0].numpy(), expected("B02", X0, Y0, FAKE_SIZE))


def test_removing_the_offset_keeps_nodata_and_dark_pixels() -> None:
    data = torch.tensor([0, 1, 999, 1000, 1001, 6000])
    assert remove_offset(data, 1000).tolist() == [0, 1, 1, 1, 1, 5000]
    assert remove_offset(data, 0).tolist() == data.tolist()


def test_products_of_both_baselines_mosaic_each_without_its_offset(
    tmp_path: Path,
) -> None:
    east = (X0 + 1280, Y0)
    old = FAKE_PRODUCT.replace("_N0509_", "_N0301_")
    fake_s2_per_band(tmp_path / "a", product=old, bands=["B02"])
    fake_s2_per_band(tmp_path / "b", bands=["B02"], origin=east)
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    image = ds[X0 + 640 : X0 + 1920, Y0 - 640 : Y0]["image"][0].numpy()
    x, y = np.meshgrid(X0 + 645 + 10 * np.arange(128), Y0 - 5 - 10 * np.arange(64))
    west = fake_s2_value(1, x, y)
    east_plane = fake_s2_value(1, x, y, origin=east)
    assert (image[:, :64] == west[:, :64]).all()  # only the N0301 product
    # Where both lie, either one's reflectance, never one with the offset left.
    assert ((image == west) | (image == east_plane))[:, 64:].all()


def write_mask(path: Path, values: np.ndarray, pixel_size: float) -> None:
    """Write a one-band uint8 mask with the fake scenes' top-left corner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": values.shape[1],
        "height": values.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": FAKE_CRS,
        "transform": rasterio.transform.from_origin(X0, Y0, pixel_size, pixel_size),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values.astype(np.uint8), 1)


def scene_classes() -> np.ndarray:
    """A 20 m SCL layer: vegetation (4), a cloud (9), a shadow (3), and a strip
    of unclassified pixels (7), which are not masked."""
    scl = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), 4)
    scl[:16, :32] = 9
    scl[40:48, 10:20] = 3
    scl[60:64] = 7
    return scl


@pytest.mark.parametrize("safe", [False, True])
def test_scl_beside_per_band_files_blanks_cloudy_pixels(
    tmp_path: Path, safe: bool
) -> None:
    # An ESA product carries its scene classification beside the bands; a
    # cloud read as reflectance would be trained on and mapped as a field.
    bands = ["B02", "B05"]
    product = fake_s2_per_band(
        tmp_path, bands=bands, safe_names=safe, resolution_dirs=safe
    )
    scl = scene_classes()
    path = (
        product / "R20m" / "T10SFG_20230715T184919_SCL_20m.tif"
        if safe
        else product / "SCL.tif"
    )
    write_mask(path, scl, 20.0)
    ds = CentralValleyS2(tmp_path, bands=bands)
    assert ds.cloud_mask_files == [str(path)]
    image = ds[SCENE]["image"].numpy()
    kept = CentralValleyS2(tmp_path, bands=bands, mask_clouds=False)
    assert kept.cloud_mask_files == []
    stored = kept[SCENE]["image"].numpy()
    cloud = np.kron(np.isin(scl, SCL_CLOUDS), np.ones((2, 2), dtype=bool))
    assert cloud.sum() == (16 * 32 + 8 * 10) * 4
    # B05 (20 m) resampled to 10 m carries cloud light 1 px past the cloud:
    # those pixels go too.
    cloudy = grown(cloud, 1)
    assert (image[:, cloudy] == 0).all()
    np.testing.assert_array_equal(image[:, ~cloudy], stored[:, ~cloudy])
    assert (stored > 0).all()


def grown(flags: np.ndarray, reach: int) -> np.ndarray:
    """*flags* widened by *reach* pixels, square corners, within the array."""
    padded = np.pad(flags, reach)
    out = np.zeros_like(flags)
    height, width = flags.shape
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


@pytest.mark.parametrize("band", ["B05", "B09"])
@pytest.mark.parametrize("mask_size", [10.0, 20.0])
def test_no_pixel_with_data_keeps_cloud_light(
    tmp_path: Path, band: str, mask_size: float
) -> None:
    # One cloudy mask pixel in the corner of a 20 m or 60 m band pixel makes
    # all of that pixel cloud, and bilinear resampling to 10 m spreads it
    # further: every pixel left with data must be free of it.
    product = fake_s2_per_band(tmp_path, bands=["B02", band])
    size = S2_BAND_RESOLUTION[band]
    with rasterio.open(product / f"{band}.tif", "r+") as dst:
        data = dst.read(1)
        clear = int(data.max()) - 1000  # N0509: stored with ESA's offset
        data[10, 10] = 30000
        dst.write(data, 1)
    side = round(FAKE_SIZE * 10 / mask_size)
    corner = round(10 * size / mask_size)
    cloud = np.zeros((side, side), dtype=bool)
    cloud[corner, corner] = True
    if mask_size == 20.0:
        write_mask(product / "SCL.tif", np.where(cloud, 9, 4), mask_size)
    else:
        write_mask(product / "cloud_mask.tif", cloud, mask_size)
    stored = CentralValleyS2(tmp_path, bands=["B02", band], mask_clouds=False)
    spread = (stored[SCENE]["image"][1] > clear).numpy()
    mask_pixel = np.kron(cloud, np.ones((round(mask_size / 10),) * 2, dtype=bool))
    assert (spread & ~mask_pixel).sum() > 0  # cloud light beyond the mask pixel
    image = CentralValleyS2(tmp_path, bands=["B02", band])[SCENE]["image"]
    with_data = (image != 0).all(0)
    assert image[1][with_data].max() <= clear
    assert (~with_data).sum() < 0.02 * with_data.numel()  # only around the cloud


def test_no_data_in_an_scl_does_not_grow(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02", "B09"])
    scl = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), 4)
    scl[:, -5:] = 0  # the swath ends: no data, no cloud light
    write_mask(product / "SCL.tif", scl, 20.0)
    image = CentralValleyS2(tmp_path, bands=["B02", "B09"])[SCENE]["image"]
    blank = np.kron(scl == 0, np.ones((2, 2), dtype=bool))
    np.testing.assert_array_equal((image == 0).all(0).numpy(), blank)


@pytest.mark.parametrize(("buffer", "pixels"), [(0.0, 0), (45.0, 5), (50.0, 5)])
def test_cloud_buffer_grows_clouds_but_not_no_data(
    tmp_path: Path, buffer: float, pixels: int
) -> None:
    # The SCL misses haze at cloud edges; a buffer in metres, rounded up to
    # whole 10 m pixels, blanks that much more around each cloud and shadow.
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    scl = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), 4)
    scl[20:30, 20:30] = 9
    scl[:, -5:] = 0
    write_mask(product / "SCL.tif", scl, 20.0)
    ds = CentralValleyS2(tmp_path, bands=["B02"], cloud_buffer=buffer)
    image = ds[SCENE]["image"][0].numpy()
    double = np.ones((2, 2), dtype=bool)
    cloud = grown(np.kron(scl == 9, double), pixels)  # B02: no reach of its own
    no_data = np.kron(scl == 0, double)
    np.testing.assert_array_equal(image == 0, cloud | no_data)


def test_a_negative_cloud_buffer_is_one_sentence(tmp_path: Path) -> None:
    fake_s2_per_band(tmp_path, bands=["B02"])
    with pytest.raises(
        ValueError, match=r"cloud_buffer must be 0 or more metres, got -10"
    ):
        CentralValleyS2(tmp_path, bands=["B02"], cloud_buffer=-10)


@pytest.mark.parametrize("change", ["cropped", "reprojected"])
def test_a_band_file_covering_another_area_is_refused(
    tmp_path: Path, change: str
) -> None:
    # A band cropped or warped by hand (or overwritten by a map) was read as
    # nodata almost everywhere, without a word.
    product = fake_s2_per_band(tmp_path, bands=["B02", "B04", "B05"])
    band = product / "B04.tif"
    with rasterio.open(band) as src:
        profile, data = src.profile, src.read()
    if change == "cropped":
        profile.update(width=101, height=101)
        data = data[:, :101, :101]
    else:
        profile.update(crs="EPSG:32611")
    with rasterio.open(band, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(ValueError, match="expected every band of a product") as error:
        CentralValleyS2(tmp_path, bands=["B02", "B04", "B05"])
    message = str(error.value)
    assert f"Band file {str(band)!r} covers" in message
    assert "'B02.tif' covers" in message
    # The bands read without it are fine, the 20 m one included.
    CentralValleyS2(tmp_path, bands=["B02", "B05"])


def test_cloud_mask_tif_blanks_every_value_but_0(tmp_path: Path) -> None:
    # Major TOM's cloud_mask.tif: 1 thick cloud, 2 thin cloud, 3 shadow.
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    mask = np.zeros((FAKE_SIZE, FAKE_SIZE), dtype=np.uint8)
    mask[:10, :10], mask[20:30, :5], mask[50:52, 50:90] = 1, 2, 3
    write_mask(product / "cloud_mask.tif", mask, 10.0)
    image = CentralValleyS2(tmp_path, bands=["B02"])[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image == 0, mask > 0)


def test_a_cloud_is_filled_from_an_overlapping_clear_product(tmp_path: Path) -> None:
    # Where one date is cloudy and another clear, the mosaic takes the clear
    # one instead of leaving a hole (or keeping the cloud).
    clear_date = FAKE_PRODUCT
    cloudy_date = FAKE_PRODUCT.replace("20230715T184919", "20230720T184921")
    product = fake_s2_per_band(tmp_path / "a", product=cloudy_date, bands=["B02"])
    fake_s2_per_band(tmp_path / "b", product=clear_date, bands=["B02"])
    scl = scene_classes()
    write_mask(product / "SCL.tif", scl, 20.0)
    cloudy = np.kron(np.isin(scl, SCL_CLOUDS), np.ones((2, 2), dtype=bool))
    with rasterio.open(product / "B02.tif", "r+") as dst:
        data = dst.read(1)
        data[cloudy] = 9000  # bright cloud tops
        dst.write(data, 1)
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    assert Path(ds.index.filepath.iloc[0]).parent == product
    image = ds[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image, expected("B02", X0, Y0, FAKE_SIZE))


@pytest.mark.parametrize("declared_nodata", [False, True])
@pytest.mark.parametrize("with_masks", [False, True])
def test_an_older_product_under_a_full_newer_one_is_not_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_masks: bool,
    declared_nodata: bool,
) -> None:
    # Two dates of one tile: where the newer has data everywhere, reading the
    # older (and its mask) is wasted time; where it has a cloud, it is needed.
    # Files that declare nodata 0 are read directly, others through a warp.
    newer = fake_s2_per_band(tmp_path / "a", bands=["B02"])
    older_name = FAKE_PRODUCT.replace("20230715T184919", "20230705T184921")
    older = fake_s2_per_band(tmp_path / "b", product=older_name, bands=["B02"])
    for product in (newer, older):
        if declared_nodata:
            with rasterio.open(product / "B02.tif", "r+") as dst:
                dst.nodata = 0
    scl = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), 4)
    if with_masks:
        write_mask(newer / "SCL.tif", scl, 20.0)
        write_mask(older / "SCL.tif", scl, 20.0)
    read: list[str] = []
    for kind in (rasterio.io.DatasetReader, WarpedVRT):
        original = kind.read

        def spy(self: Any, *args: Any, original: Any = original, **kw: Any) -> Any:
            read.append(getattr(self, "src_dataset", self).name)
            return original(self, *args, **kw)

        monkeypatch.setattr(kind, "read", spy)
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    image = ds[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image, expected("B02", X0, Y0, FAKE_SIZE))
    assert str(newer / "B02.tif") in read
    assert not [name for name in read if str(older) in name]

    # A hole in the newer product (a cloud, or no data): the older one fills it.
    if with_masks:
        scl[:8, :8] = 9
        write_mask(newer / "SCL.tif", scl, 20.0)
    else:
        with rasterio.open(newer / "B02.tif", "r+") as dst:
            data = dst.read(1)
            data[:16, :16] = 0
            dst.write(data, 1)
    read.clear()
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    image = ds[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image, expected("B02", X0, Y0, FAKE_SIZE))
    assert str(older / "B02.tif") in read


def test_overlapping_products_are_mosaicked_newest_first(tmp_path: Path) -> None:
    # torchgeo orders files by path, so S2A_..._2021 came before S2B_..._2023
    # and the older scene won every pixel they shared.
    old = "S2A_MSIL2A_20210224T032739_N0213_R018_T10SFG_20210224T060000"
    new = FAKE_PRODUCT
    fake_s2_per_band(tmp_path / "a", product=old, bands=["B02"])
    recent = fake_s2_per_band(tmp_path / "z", product=new, bands=["B02"])
    with rasterio.open(recent / "B02.tif", "r+") as dst:
        dst.write(dst.read(1) + 50, 1)
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    assert Path(ds.index.filepath.iloc[0]).parent == recent
    image = ds[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image, expected("B02", X0, Y0, FAKE_SIZE) + 50)


def test_a_time_series_stacks_the_products_oldest_first(tmp_path: Path) -> None:
    # torchgeo's RasterDataset takes time_series; CentralValleyS2 refused it.
    old = "S2A_MSIL2A_20210224T032739_N0213_R018_T10SFG_20210224T060000"
    older = fake_s2_per_band(tmp_path / "a", product=old, bands=["B02", "B04"])
    recent = fake_s2_per_band(tmp_path / "z", bands=["B02", "B04"])
    for band in ("B02", "B04"):
        with rasterio.open(recent / f"{band}.tif", "r+") as dst:
            dst.write(dst.read(1) + 50, 1)
    ds = CentralValleyS2(tmp_path, bands=["B04", "B02"], time_series=True)
    assert ds.time_series
    # Oldest first (here also path order; see test_dates_selection.py), not
    # newest first as the mosaic is.
    assert [Path(path).parent for path in ds.index.filepath] == [older, recent]
    assert [interval.left.year for interval in ds.index.index] == [2021, 2023]
    image = ds[SCENE]["image"]
    assert image.shape == (2, 2, FAKE_SIZE, FAKE_SIZE)  # [T, C, H, W]
    for c, band in enumerate(["B04", "B02"]):
        values = expected(band, X0, Y0, FAKE_SIZE)
        np.testing.assert_array_equal(image[0, c].numpy(), values)
        np.testing.assert_array_equal(image[1, c].numpy(), values + 50)


def test_level_1c_products_are_refused_or_left_out(tmp_path: Path) -> None:
    # Sen2Cor writes its L2A product beside the L1C input; read as L2A, the
    # L1C bands were top-of-atmosphere reflectance with ESA's offset left in.
    level_1c = FAKE_PRODUCT.replace("MSIL2A", "MSIL1C")
    fake_s2_per_band(tmp_path / "a", product=level_1c, bands=["B02"])
    with pytest.raises(ValueError, match=r"Level-1C products only .*MSIL1C.*Sen2Cor"):
        CentralValleyS2(tmp_path, bands=["B02"])
    fake_s2_per_band(tmp_path / "b", bands=["B02"])
    with pytest.warns(UserWarning, match=r"1 Level-1C product\(s\) .* left out"):
        ds = CentralValleyS2(tmp_path, bands=["B02"])
    [path] = ds.index.filepath
    assert Path(path).parent.name == FAKE_PRODUCT
    image = ds[SCENE]["image"][0].numpy()
    np.testing.assert_array_equal(image, expected("B02", X0, Y0, FAKE_SIZE))


def test_a_safe_without_its_20m_scl_uses_the_60m_one(tmp_path: Path) -> None:
    bands = ["B02"]
    product = fake_s2_per_band(
        tmp_path / "p.SAFE", bands=bands, safe_names=True, resolution_dirs=True
    )
    with pytest.warns(UserWarning, match=r"1 of 1 .* no cloud mask.*every \.SAFE"):
        CentralValleyS2(tmp_path, bands=bands)
    scl = np.full((FAKE_SIZE // 6, FAKE_SIZE // 6), 4)
    scl[:5, :5] = 8
    write_mask(product / "R60m" / "T10SFG_20230715T184919_SCL_60m.tif", scl, 60.0)
    ds = CentralValleyS2(tmp_path, bands=bands)
    assert ds.cloud_mask_files == [
        str(product / "R60m" / "T10SFG_20230715T184919_SCL_60m.tif")
    ]
    assert (ds[SCENE]["image"][0, :30, :30] == 0).all()


def test_an_unreadable_cloud_mask_is_one_sentence(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    (product / "SCL.tif").write_bytes(b"II*\x00 truncated")
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    with pytest.raises(ValueError, match=r"Cloud mask .*SCL.tif' could not be read"):
        ds[SCENE]


def test_each_products_cloud_mask_is_read_once_per_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bands = ["B02", "B03", "B05"]
    for root, product in (("a", FAKE_PRODUCT), ("b", FAKE_PRODUCT[:-1] + "5")):
        folder = fake_s2_per_band(tmp_path / root, product=product, bands=bands)
        write_mask(folder / "SCL.tif", scene_classes(), 20.0)
    reads: list[str] = []

    def counted(mask: CloudMask, *args: Any) -> np.ndarray:
        reads.append(mask.path)
        return read_flags(mask, *args)

    monkeypatch.setattr(cloud_masks, "read_flags", counted)
    ds = CentralValleyS2(tmp_path, bands=bands)
    ds[SCENE]
    assert sorted(reads) == ds.cloud_mask_files
    ds[X0 : X0 + 640, Y0 - 640 : Y0]
    assert len(reads) == 4


def held_open(path: Path) -> bool:
    """Whether this process holds *path* open (False where /proc is missing)."""
    fds = Path("/proc/self/fd")
    return fds.is_dir() and any(
        os.path.realpath(fd) == os.path.realpath(path) for fd in fds.iterdir()
    )


def test_a_collected_dataset_closes_its_cloud_masks(tmp_path: Path) -> None:
    # A cache on the class kept every dataset that had read a mask alive, with
    # the mask open, until 128 newer masks of any dataset pushed it out.
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    scl = product / "SCL.tif"
    write_mask(scl, scene_classes(), 20.0)
    # Without torchgeo's cache of band files, which holds its datasets too.
    ds = CentralValleyS2(tmp_path, bands=["B02"], cache=False)
    ds[SCENE]
    assert sentinel2._OPEN_MASKS.get(ds)
    assert held_open(scl) or not Path("/proc/self/fd").is_dir()
    # A copy for a DataLoader worker takes no open mask along, and opens its own.
    copy = pickle.loads(pickle.dumps(ds))
    assert copy not in sentinel2._OPEN_MASKS
    corner = (slice(X0, X0 + SIDE / 2), slice(Y0 - SIDE / 2, Y0))
    torch.testing.assert_close(copy[corner]["image"], ds[corner]["image"])
    assert sentinel2._OPEN_MASKS.get(copy)
    collected = weakref.ref(ds), weakref.ref(copy)
    del ds, copy
    gc.collect()
    assert [ref() for ref in collected] == [None, None]
    assert not held_open(scl)


def test_fresh_file_handles_drops_every_open_cloud_mask(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    write_mask(product / "SCL.tif", scene_classes(), 20.0)
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    (path,) = ds.cloud_mask_files
    opened = ds._cached_open_mask(path, ds.crs)
    assert ds._cached_open_mask(path, ds.crs) is opened
    fresh_file_handles(0)
    assert not sentinel2._OPEN_MASKS
    assert ds._cached_open_mask(path, ds.crs) is not opened


def test_multiband_scenes_have_no_cloud_masks(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    write_mask(tmp_path / "cloud_mask.tif", np.ones((8, 8)), 10.0)
    ds = CentralValleyS2(tmp_path)
    assert ds.cloud_mask_files == []
    assert (ds[SCENE]["image"] > 0).all()


def test_20m_pixel_lands_in_place(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B04", "B05"])
    # One bright 20 m pixel at row 7, column 12 of B05 (else flat), stored
    # with the +1000 offset of baseline N0509.
    with rasterio.open(product / "B05.tif", "r+") as dst:
        data = np.full((dst.height, dst.width), 2000, dtype=np.uint16)
        data[7, 12] = 6000
        dst.write(data, 1)
    ds = CentralValleyS2(tmp_path, bands=["B04", "B05"])
    b05 = ds[SCENE]["image"][1].numpy() - 1000.0
    # On the 10 m grid it covers rows 14-15, columns 24-25: the four 10 m
    # pixels inside it are the brightest, and the response is centred on it.
    peak = b05.max()
    rows, cols = np.nonzero(b05 == peak)
    assert sorted(set(rows.tolist())) == [14, 15]
    assert sorted(set(cols.tolist())) == [24, 25]
    r, c = np.indices(b05.shape)
    centre_x = X0 + ((c + 0.5) * 10 * b05).sum() / b05.sum()
    centre_y = Y0 - ((r + 0.5) * 10 * b05).sum() / b05.sum()
    assert (centre_x, centre_y) == pytest.approx((X0 + 250.0, Y0 - 150.0), abs=0.01)


@pytest.mark.parametrize("declared", [None, 0.0])
def test_overlapping_scenes_fill_each_others_nodata(
    tmp_path: Path, declared: float | None
) -> None:
    # Two dates of one tile, each missing (0) where the other has data. A file
    # that declares nodata 0 is read as it is, one that does not through a
    # WarpedVRT that says so; either way no hole is left and no value moves.
    half = FAKE_SIZE // 2
    for date, hole in (
        ("20230715T184919", np.s_[:, :half]),
        ("20230720T184921", np.s_[:, half:]),
    ):
        path = fake_s2_multiband(
            tmp_path, name=f"S2B_MSIL2A_{date}_N0509_R070_T10SFG_{date}.tif"
        )
        with rasterio.open(path, "r+") as dst:
            data = dst.read()
            data[(slice(None), *hole)] = 0
            dst.write(data)
            dst.nodata = declared
    ds = CentralValleyS2(tmp_path)
    direct = [
        not isinstance(ds._load_warp_file(path), WarpedVRT)
        for path in ds.index.filepath
    ]
    assert direct == [declared is not None] * 2
    image = ds[SCENE]["image"]
    for i, band in enumerate(S2_BANDS):
        np.testing.assert_array_equal(
            image[i].numpy(), np.floor(expected(band, X0, Y0, FAKE_SIZE))
        )


def test_mosaic_on_the_files_grid_matches_torchgeos_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two tiles side by side, the first with a hole, and a later scene over
    # both (values + 1000, so the mosaic order shows), all declaring nodata 0.
    # Queries on the files' pixel grid are cut from the files directly; they
    # must give what torchgeo's rasterio.merge gives, band order, holes, edges
    # and all. A query off the grid still goes through torchgeo, file by file.
    scenes = (
        ("20230715T184919", "T10SFG", (X0, Y0), 0),
        ("20230715T184919", "T10SGG", (X0 + SIDE, Y0), 0),
        ("20230720T184921", "T10SFG", (X0 + SIDE / 2, Y0 - SIDE / 4), 1000),
    )
    for date, tile, origin, offset in scenes:
        path = fake_s2_multiband(
            tmp_path,
            name=f"S2B_MSIL2A_{date}_N0509_R070_{tile}_{date}.tif",
            origin=origin,
        )
        with rasterio.open(path, "r+") as dst:
            data = dst.read()
            data[data > 0] += offset
            if offset == 0 and tile == "T10SFG":
                data[:, 100:160, 200:] = 0
            dst.write(data)
            dst.nodata = 0
    bands = ["B08", "B02", "B11"]
    ds = CentralValleyS2(tmp_path, bands=bands)
    reference = CentralValleyS2(tmp_path, bands=bands)
    through_merge = RasterDataset._merge_or_stack
    monkeypatch.setattr(reference, "_merge_or_stack", partial(through_merge, reference))
    merged: list[object] = []
    monkeypatch.setattr(
        RasterDataset,
        "_merge_or_stack",
        lambda self, *args, **kwargs: (
            merged.append(args) or through_merge(self, *args, **kwargs)
        ),
    )
    rng = np.random.default_rng(0)
    for _ in range(25):
        # Boxes over the first tile, some crossing into the second or outside.
        x, y = X0 + rng.integers(-40, 200) * 10.0, Y0 + rng.integers(-200, 40) * 10.0
        width, height = rng.integers(45, 300, size=2) * 10.0
        query = (slice(x, x + width, 10.0), slice(y - height, y, 10.0))
        image = ds[query]["image"]
        assert image.dtype == torch.float32
        assert image.shape == (3, height / 10, width / 10)
        assert torch.equal(image, reference[query]["image"])
    assert merged == []
    off_grid = (slice(X0 + 1003.0, X0 + 3003.0), slice(Y0 - 2000.0, Y0))
    assert torch.equal(ds[off_grid]["image"], reference[off_grid]["image"])
    # File by file, newest first: the later scene leaves the box's top 640 m
    # and west 277 m to the two tiles, so all three are read.
    assert [len(args[0]) for args in merged] == [1, 1, 1]
    assert "_20230720T184921_" in str(merged[0][0][0])


@pytest.mark.parametrize(
    ("suffix", "resolution_dirs"), [(".tif", False), (".jp2", True)]
)
def test_safe_style_names(tmp_path: Path, suffix: str, resolution_dirs: bool) -> None:
    bands = ["B02", "B05", "B09"]
    fake_s2_per_band(
        tmp_path,
        product="unnamed",
        safe_names=True,
        resolution_dirs=resolution_dirs,
        suffix=suffix,
        bands=bands,
    )
    ds = CentralValleyS2(tmp_path, bands=["B05", "B02", "B09"])
    assert (
        Path(ds.index.filepath.iloc[0]).name
        == f"T10SFG_20230715T184919_B02_10m{suffix}"
    )
    # The date comes from the file name (the directory has none).
    assert ds.index.index[0].left == SENSING
    window = (slice(X0 + 600, X0 + 1200), slice(Y0 - 1200, Y0 - 600))
    image = ds[window]["image"]
    for i, band in enumerate(["B05", "B02", "B09"]):
        np.testing.assert_allclose(
            image[i].numpy(), expected(band, X0 + 600, Y0 - 600, 60), atol=1
        )


def test_plot(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    ds = CentralValleyS2(tmp_path)
    sample = ds[SCENE]
    sample["mask"] = torch.full((FAKE_SIZE, FAKE_SIZE), IGNORE_INDEX)
    sample["mask"][:100] = IRRIGATED
    fig = ds.plot(sample, suptitle="fake")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    # The class panel says which colour is which.
    legend = fig.axes[1].get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [
        "Not irrigated",
        "Irrigated",
    ]
    plt.close(fig)


def test_plot_draws_natural_colour(tmp_path: Path) -> None:
    # The quick look beside a map: vegetation green, bare soil tan, as in a
    # true-colour map (a stretch per band drew vegetation near-black).
    fake_s2_multiband(tmp_path)
    ds = CentralValleyS2(tmp_path)
    sample = ds[SCENE]
    rgb = [ds.bands.index(band) for band in ("B04", "B03", "B02")]
    image = torch.zeros_like(sample["image"])
    image[rgb, :, : FAKE_SIZE // 2] = torch.tensor([300.0, 700.0, 400.0])[:, None, None]
    image[rgb, :, FAKE_SIZE // 2 :] = torch.tensor([2200.0, 1800.0, 1300.0])[
        :, None, None
    ]
    fig = ds.plot({"image": image})
    drawn = np.asarray(fig.axes[0].get_images()[0].get_array())
    plt.close(fig)
    vegetation, soil = drawn[0, 0], drawn[0, -1]
    assert vegetation[1] > vegetation[0] > 0  # green above red, not black
    assert vegetation[1] > vegetation[2]
    assert soil[0] > soil[1] > soil[2]  # tan: red, then green, then blue
    assert soil[0] > vegetation[0]


def test_copies_of_a_scene_in_several_folders_warn(tmp_path: Path) -> None:
    # A backup or reprocessed copy under the root is mixed into the mosaic.
    fake_s2_multiband(tmp_path / "scene")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CentralValleyS2(tmp_path)  # one copy: nothing to say
    fake_s2_multiband(tmp_path / "backup")
    with pytest.warns(UserWarning, match="1 Sentinel-2 scene name.* more than one"):
        CentralValleyS2(tmp_path)


# Sentinel-2: errors


def test_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(root))):
        CentralValleyS2(root)


def test_no_matching_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no imagery here")
    with pytest.raises(FileNotFoundError) as info:
        CentralValleyS2(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "S2B_MSIL2A_" in message
    assert "B04.tif" in message
    assert "sample-data" in message
    # It named `paths`, the dataset's parameter, beside the options users pass.
    assert "point --root (--data.init_args.root) at such files" in message
    assert "`paths`" not in message


def test_wrong_band_count(tmp_path: Path) -> None:
    path = fake_s2_multiband(tmp_path, count=4)
    with pytest.raises(ValueError, match="12") as info:
        CentralValleyS2(tmp_path)
    assert str(path) in str(info.value)
    assert "has 4 band(s)" in str(info.value)


def test_unknown_band(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    with pytest.raises(ValueError, match="B10") as info:
        CentralValleyS2(tmp_path, bands=["B04", "B10"])
    assert "B8A" in str(info.value)


@pytest.mark.parametrize(
    ("res", "instead"),
    [
        (10.0, "res=0.0001 (about 11 m)"),
        ((10.0, 0.0001), "res=0.0001 (about 11 m)"),
        (1, "res=1e-05 (about 1 m)"),
    ],
)
def test_a_res_in_metres_for_a_geographic_crs_is_refused(
    tmp_path: Path, res: float | tuple[float, float], instead: str
) -> None:
    # 10 "metres" in EPSG:4326 were 10-degree pixels: image [1, 0, 0].
    scene = fake_s2_multiband(tmp_path)
    with pytest.raises(ValueError, match="is in the units of crs") as info:
        CentralValleyS2(scene, crs="EPSG:4326", res=res, bands=["B04"])
    message = str(info.value)
    assert message.startswith(f"res={res!r} is in the units of crs 'EPSG:4326'")
    assert "expected less than 1 degree in a geographic CRS" in message
    assert f"so pass res in degrees, e.g. {instead}" in message
    assert "the data's UTM zone, crs='EPSG:32610'" in message
    ds = CentralValleyS2(scene, crs="EPSG:4326", res=0.0001, bands=["B04"])
    image = ds[ds.bounds]["image"]
    assert image.shape[0] == 1
    assert min(image.shape[1:]) > 200


def test_product_missing_band(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path)
    (product / "B07.tif").unlink()
    with pytest.raises(FileNotFoundError, match="B07") as info:
        CentralValleyS2(tmp_path)
    assert str(product) in str(info.value)
    # Without B07 requested, the product reads.
    assert len(CentralValleyS2(tmp_path, bands=["B04", "B08"])) == 1


def test_mixed_layouts(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    fake_s2_per_band(tmp_path)
    with pytest.raises(ValueError, match="both multi-band scenes") as error:
        CentralValleyS2(tmp_path)
    # The fix a command-line user can follow: one root per layout.
    assert "under separate roots (one --root" in str(error.value)


def cut_header(path: Path) -> Path:
    """Cut a raster to its first 100 bytes: its IFD is lost, it does not open."""
    with open(path, "r+b") as file:
        file.truncate(100)
    with pytest.raises(RasterioIOError):
        rasterio.open(path)
    return path


def cut_tiles(path: Path, nodata: float | None = None) -> Path:
    """Rewrite a raster tiled, then cut it to 60%: it opens, its last tiles fail.

    Args:
        path: the raster, replaced.
        nodata: a nodata value to declare (default: the one it declares).
    """
    if nodata is not None:
        with rasterio.open(path, "r+") as dst:
            dst.nodata = nodata
    tiled = path.with_name(f"tiled-{path.name}")
    options = {"tiled": True, "blockxsize": 64, "blockysize": 64}
    rasterio.shutil.copy(path, tiled, driver="GTiff", **options)
    tiled.replace(path)
    with open(path, "r+b") as file:
        file.truncate(int(path.stat().st_size * 0.6))
    with rasterio.open(path) as src:
        assert src.count > 0
        with pytest.raises(RasterioIOError):
            src.read()
    return path


def two_tiles(root: Path) -> tuple[Path, Path]:
    """Two multi-band scenes side by side, T10SFG (west) and T10SGG (east)."""
    west = fake_s2_multiband(root)
    east = fake_s2_multiband(
        root,
        name=FAKE_PRODUCT.replace("T10SFG", "T10SGG") + ".tif",
        origin=(X0 + SIDE, Y0),
    )
    return west, east


def test_a_scene_rasterio_cannot_open_is_refused_not_left_out(tmp_path: Path) -> None:
    # torchgeo skipped it while indexing: maps lacked its tile, without a word.
    west, east = two_tiles(tmp_path)
    cut_header(east)
    with pytest.raises(UnreadableFileError) as info:
        CentralValleyS2(tmp_path)
    message = str(info.value)
    assert message.startswith(f"1 of 2 Sentinel-2 files under {str(tmp_path)!r} could")
    assert f"{str(east)!r} (" in message
    assert "Failed to read directory" in message  # GDAL's reason
    assert str(west) not in message
    assert "expected readable GeoTIFF" in message
    assert message.endswith("so download them again, or move them out of the folder.")
    assert "\n" not in message
    # One line from the commands, as rasterio's own error was an OSError.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, OSError)


def test_scenes_rasterio_cannot_open_are_counted_and_the_first_named(
    tmp_path: Path,
) -> None:
    # None opens: this was a FileNotFoundError that named one file, no reason.
    bad = cut_header(fake_s2_multiband(tmp_path))
    names = [FAKE_PRODUCT.replace("T10SFG", f"T10S{c}G") for c in "ABCD"]
    for name in names:
        (tmp_path / f"{name}.tif").write_bytes(bad.read_bytes())
    with pytest.raises(UnreadableFileError) as info:
        CentralValleyS2(tmp_path)
    message = str(info.value)
    assert message.startswith("5 of 5 Sentinel-2 files")
    named = sorted(str(p) for p in tmp_path.iterdir())[:3]
    assert all(f"{path!r} (" in message for path in named)
    assert "and 2 more;" in message
    assert message.count("Failed to read directory") == 3


@pytest.mark.parametrize("band", ["B02", "B05"])
def test_a_band_file_rasterio_cannot_open_is_refused(tmp_path: Path, band: str) -> None:
    # B02, the band indexed per product, was left out with its product; B05
    # stopped the dataset with rasterio's traceback.
    bands = ["B02", "B05"]
    fake_s2_per_band(tmp_path, bands=bands)
    product = fake_s2_per_band(tmp_path, product=FAKE_PRODUCT[:-1] + "5", bands=bands)
    bad = cut_header(product / f"{band}.tif")
    with pytest.raises(UnreadableFileError, match=re.escape(repr(str(bad)))) as info:
        CentralValleyS2(tmp_path, bands=bands)
    assert "Failed to read directory" in str(info.value)


def assert_names_unreadable(error: BaseException, path: Path) -> None:
    """*error* says, on one line, that *path*'s tiles cannot be read, and why."""
    message = str(error)
    assert message.startswith(f"Sentinel-2 file {str(path)!r} could not be read (")
    assert "TIFFReadEncodedTile() failed" in message  # GDAL's reason
    assert "Read failed. See previous exception" not in message
    assert message.count(path.name) == 1  # GDAL's messages start with it
    assert message.endswith("download it again, or move it out of the folder.")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("declared", "kwargs"),
    [
        (0.0, {}),  # read directly
        (None, {}),  # through torchgeo's merge, file by file
        (0.0, {"time_series": True}),  # through torchgeo's merge, all files
        (0.0, {"cache": False}),
    ],
)
def test_a_scene_whose_tiles_cannot_be_read_is_named(
    tmp_path: Path, declared: float | None, kwargs: dict[str, bool]
) -> None:
    # Its header reads, so it is indexed; a read failed with rasterio's
    # "Read failed. See previous exception for details." and a traceback.
    west, east = two_tiles(tmp_path)
    with rasterio.open(west, "r+") as dst:
        dst.nodata = declared
    cut_tiles(east, declared)
    ds = CentralValleyS2(tmp_path, **kwargs)
    assert isinstance(ds._load_warp_file(str(east)), WarpedVRT) == (declared is None)
    with pytest.raises(UnreadableFileError) as info:
        ds[ds.bounds]
    assert_names_unreadable(info.value, east)
    assert isinstance(info.value.__cause__, RasterioIOError)


def test_a_band_file_whose_tiles_cannot_be_read_is_named(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02", "B05"])
    bad = cut_tiles(product / "B05.tif")
    ds = CentralValleyS2(tmp_path, bands=["B02", "B05"])
    with pytest.raises(UnreadableFileError) as info:
        ds[SCENE]
    assert_names_unreadable(info.value, bad)


def test_an_unreadable_file_is_named_from_a_dataloader_worker(tmp_path: Path) -> None:
    # PyTorch re-raises a worker's error as type(error)(its traceback).
    _, east = two_tiles(tmp_path)
    cut_tiles(east)
    ds = CentralValleyS2(tmp_path)
    with pytest.raises(UnreadableFileError) as in_process:
        ds[ds.bounds]
    sampler = GriddedPatchSampler(ds, size=FAKE_SIZE)
    loader = DataLoader(ds, sampler=sampler, num_workers=1, collate_fn=stack_samples)
    with pytest.raises(UnreadableFileError) as from_worker:
        list(loader)
    assert str(from_worker.value) == str(in_process.value)


def test_a_cloud_mask_whose_tiles_cannot_be_read_says_why(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path, bands=["B02"])
    write_mask(product / "SCL.tif", scene_classes(), 20.0)
    scl = cut_tiles(product / "SCL.tif")
    ds = CentralValleyS2(tmp_path, bands=["B02"])
    with pytest.raises(UnreadableFileError) as info:
        ds[SCENE]
    message = str(info.value)
    assert message.startswith(f"Cloud mask {str(scl)!r} could not be read (")
    assert "TIFFReadEncodedTile() failed" in message
    assert "Read failed. See previous exception" not in message
    assert isinstance(info.value.__cause__, RasterioIOError)


# DWR class map


def test_default_irrigation_map() -> None:
    for code in ("G", "R", "F", "P", "T", "D", "C", "V", "YP"):
        assert DEFAULT_IRRIGATION_MAP[code] == IRRIGATED
    for code in ("I", "U", "UR", "UC", "UI", "UV", "S", "NV", "NR", "NW", "NB"):
        assert DEFAULT_IRRIGATION_MAP[code] == NOT_IRRIGATED
    assert DEFAULT_IRRIGATION_MAP["X"] == IGNORE_INDEX


def test_build_irrigation_map() -> None:
    effective = build_irrigation_map({"I": IGNORE_INDEX, "UL": IRRIGATED})
    assert effective["I"] == IGNORE_INDEX
    assert effective["UL"] == IRRIGATED
    assert effective["G"] == IRRIGATED
    assert DEFAULT_IRRIGATION_MAP["I"] == NOT_IRRIGATED
    with pytest.raises(ValueError, match="'G': 2"):
        build_irrigation_map({"G": 2})


# Labels


@pytest.fixture
def labels_file(tmp_path: Path) -> Path:
    return fake_dwr_gpkg(tmp_path / "labels")


def test_label_mask_values(labels_file: Path) -> None:
    labels = IrrigationLabels(labels_file, crs=CRS.from_user_input(FAKE_CRS))
    mask = labels[SCENE]["mask"]
    assert mask.dtype == torch.int64
    assert mask.shape == (FAKE_SIZE, FAKE_SIZE)
    assert set(mask.unique().tolist()) == {NOT_IRRIGATED, IRRIGATED, IGNORE_INDEX}
    assert pixel(mask, 700400, 4099400) == IRRIGATED  # G
    assert pixel(mask, 701300, 4099400) == NOT_IRRIGATED  # I
    assert pixel(mask, 701600, 4099400) == IRRIGATED  # V over I: later wins
    assert pixel(mask, 700400, 4098400) == IGNORE_INDEX  # X
    assert pixel(mask, 700500, 4097800) == NOT_IRRIGATED  # U
    assert pixel(mask, 700050, 4099950) == IGNORE_INDEX  # no polygon
    # Field edges lie on the grid, so pixel counts equal areas exactly.
    irrigated = shapely.union_all(
        [shapely.box(*b) for code, b in FAKE_FIELDS if code in "GVP"]
    )
    assert int((mask == IRRIGATED).sum()) == round(irrigated.area / 100)


def test_label_window_grid(labels_file: Path) -> None:
    labels = IrrigationLabels(labels_file)
    assert labels.crs == CRS.from_epsg(32610)  # UTM zone of the features
    window = (slice(700650.0, 700750.0), slice(4099050.0, 4099130.0))
    mask = labels[window]["mask"]
    assert mask.shape == (8, 10)
    # G ends at x=700700 and starts at y=4099100.
    expected_mask = np.full((8, 10), IGNORE_INDEX)
    expected_mask[:3, :5] = IRRIGATED
    np.testing.assert_array_equal(mask.numpy(), expected_mask)


def test_label_plot(tmp_path: Path, labels_file: Path) -> None:
    # TorchGeo's label datasets plot a sample; IrrigationLabels had no plot.
    labels = IrrigationLabels(labels_file, crs=CRS.from_user_input(FAKE_CRS))
    sample = labels[SCENE]
    sample["prediction"] = torch.ones_like(sample["mask"])
    fig = labels.plot(sample, suptitle="fields")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["Mask", "Prediction"]
    assert fig.get_suptitle() == "fields"
    # The same colours and legend as the imagery's class panels.
    fake_s2_multiband(tmp_path / "s2")
    imagery = CentralValleyS2(tmp_path / "s2", bands=["B04", "B03", "B02"])
    image_fig = imagery.plot({**imagery[SCENE], "mask": sample["mask"]})
    for ax in fig.axes:
        drawn = ax.get_images()[0]
        theirs = image_fig.axes[1].get_images()[0]
        assert drawn.get_cmap() is theirs.get_cmap()
        assert drawn.get_clim() == theirs.get_clim()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "Not irrigated",
            "Irrigated",
        ]
    np.testing.assert_array_equal(
        fig.axes[0].get_images()[0].get_array(),
        image_fig.axes[1].get_images()[0].get_array(),
    )
    plt.close(image_fig)
    plt.close(fig)
    fig = labels.plot({"mask": sample["mask"]}, show_titles=False)
    assert [ax.get_title() for ax in fig.axes] == [""]
    plt.close(fig)


@pytest.mark.parametrize("crs", ["EPSG:4269", "EPSG:4326"])
def test_labels_refuse_a_res_in_metres_for_a_geographic_crs(
    labels_file: Path, crs: str
) -> None:
    # 10 "metres" in EPSG:4269 were 10-degree pixels: no pixel in the fields.
    with pytest.raises(ValueError, match="is in the units of crs") as info:
        IrrigationLabels(labels_file, crs=crs)
    message = str(info.value)
    assert message.startswith(f"res=10.0 is in the units of crs {crs!r}, degrees")
    assert "so pass res in degrees, e.g. res=0.0001 (about 11 m)" in message
    assert "or a projected CRS such as the data's UTM zone" in message
    labels = IrrigationLabels(labels_file, crs=crs, res=0.0001)
    mask = labels[labels.bounds]["mask"]
    assert min(mask.shape) > 100
    assert IRRIGATED in mask


def test_label_formats(tmp_path: Path) -> None:
    for name in ("fields.shp", "fields.geojson", "fields.gdb"):
        path = fake_dwr_gpkg(tmp_path / name.split(".")[1], name=name)
        labels = IrrigationLabels(path, crs=CRS.from_user_input(FAKE_CRS))
        assert pixel(labels[SCENE]["mask"], 700400, 4099400) == IRRIGATED, name
    # A directory is searched for label files; a .gdb folder counts as one.
    assert IrrigationLabels(tmp_path / "gdb").files == [
        str(tmp_path / "gdb" / "fields.gdb")
    ]


def test_unknown_codes_warn_once(tmp_path: Path) -> None:
    fields = [*FAKE_FIELDS, ("ZZ", (702000.0, 4098800.0, 702200.0, 4099000.0))]
    fields.append(("ZZ", (702300.0, 4098800.0, 702400.0, 4099000.0)))
    path = fake_dwr_gpkg(tmp_path, fields=fields)
    with pytest.warns(UserWarning, match=r"no irrigation class \(ZZ\)") as record:
        labels = IrrigationLabels(path, crs=CRS.from_user_input(FAKE_CRS))
    (message,) = [str(w.message) for w in record if "ZZ" in str(w.message)]
    assert message.startswith(f"2 of {len(fields)} label polygons have a CLASS2 code")
    assert pixel(labels[SCENE]["mask"], 702100, 4098900) == IGNORE_INDEX


def test_class_map_override(labels_file: Path) -> None:
    labels = IrrigationLabels(
        labels_file,
        crs=CRS.from_user_input(FAKE_CRS),
        class_map={"I": IGNORE_INDEX, "X": NOT_IRRIGATED},
    )
    mask = labels[SCENE]["mask"]
    assert pixel(mask, 701300, 4099400) == IGNORE_INDEX
    assert pixel(mask, 700400, 4098400) == NOT_IRRIGATED
    with pytest.raises(ValueError, match="'I': 3"):
        IrrigationLabels(labels_file, class_map={"I": 3})


def test_class_map_codes_that_match_nothing_warn(labels_file: Path) -> None:
    # A typo ("i" for "I") changed nothing and said nothing.
    with pytest.warns(UserWarning, match=r"code\(s\) \['ZZ', 'i'\] match no") as record:
        IrrigationLabels(labels_file, class_map={"i": IRRIGATED, "ZZ": IRRIGATED})
    message = next(str(w.message) for w in record if "match no" in str(w.message))
    assert "G, I, P, U, V, X" in message


def lonlat_box(bounds: tuple[float, float, float, float]) -> tuple[float, ...]:
    to_lonlat = Transformer.from_crs(FAKE_CRS, "EPSG:4326", always_xy=True)
    return tuple(to_lonlat.transform_bounds(*bounds))


def test_bbox_filters_while_reading(
    labels_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    read = pyogrio.read_dataframe

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return read(*args, **kwargs)

    monkeypatch.setattr(pyogrio, "read_dataframe", spy)
    g_bounds = FAKE_FIELDS[0][1]
    bbox = lonlat_box(
        (g_bounds[0] + 50, g_bounds[1] + 50, g_bounds[2] - 50, g_bounds[3] - 50)
    )
    labels = IrrigationLabels(labels_file, bbox=bbox)
    assert calls[0]["mask"] is not None
    assert calls[0]["columns"] == ["CLASS2"]
    assert len(labels.features) == 1
    xmin, ymin, xmax, ymax = labels.index.total_bounds
    assert (xmin, ymin, xmax, ymax) == pytest.approx(g_bounds, abs=0.01)


# Labels: errors


@pytest.mark.parametrize(
    ("bbox", "fix"),
    [
        # Latitude first, as people often write a place: say so, with the fix.
        ((37.03, -120.86, 37.15, -120.7), "look swapped: pass [-120.86, 37.03, "),
        (
            (-120.0, 37.0, -121.0, 38.0),
            "min lon -120 > max lon -121; pass [-121, 37, -120, 38]",
        ),
    ],
)
def test_a_bad_bbox_says_how_to_fix_it(
    labels_file: Path, bbox: tuple[float, ...], fix: str
) -> None:
    with pytest.raises(ValueError, match="is not \\(min lon, min lat") as info:
        IrrigationLabels(labels_file, bbox=bbox)
    assert fix in str(info.value)


def test_bbox_without_features(labels_file: Path) -> None:
    bbox = (-100.0, 40.0, -99.0, 41.0)
    with pytest.raises(ValueError, match=re.escape(str(list(bbox)))) as info:
        IrrigationLabels(labels_file, bbox=bbox)
    message = str(info.value)
    assert str(labels_file) in message
    assert "-120." in message  # the file's extent in lon/lat


def without_crs(path: Path, frame: gpd.GeoDataFrame) -> Path:
    frame = frame.set_crs(None, allow_override=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "'crs' was not provided")
            frame.to_file(path)
    return path


@pytest.mark.parametrize("name", ["fields.gpkg", "fields.shp", "fields.parquet"])
def test_metres_without_a_crs_are_refused(tmp_path: Path, name: str) -> None:
    # A shapefile without its .prj: read as degrees, every field would lie
    # off the imagery.
    utm = gpd.read_file(fake_dwr_gpkg(tmp_path / "src")).to_crs(FAKE_CRS)
    path = without_crs(tmp_path / name, utm)
    with pytest.raises(ValueError, match="names no CRS") as info:
        IrrigationLabels(path)
    assert str(path) in str(info.value)
    assert "700100.0" in str(info.value)  # the coordinates it found


def test_degrees_without_a_crs_are_lon_lat(tmp_path: Path) -> None:
    # GeoJSON and GeoParquet are lon/lat unless they say otherwise.
    lonlat = gpd.read_file(fake_dwr_gpkg(tmp_path / "src")).to_crs("EPSG:4326")
    path = without_crs(tmp_path / "fields.parquet", lonlat)
    labels = IrrigationLabels(path, crs=CRS.from_user_input(FAKE_CRS))
    assert pixel(labels[SCENE]["mask"], 700400, 4099400) == IRRIGATED


@pytest.mark.parametrize("bbox", [None, (-120.0, 36.0, -119.0, 37.0)])
def test_empty_label_file(
    tmp_path: Path, bbox: tuple[float, float, float, float] | None
) -> None:
    path = fake_dwr_gpkg(tmp_path, fields=[])
    with pytest.raises(ValueError, match="hold no polygons"):
        IrrigationLabels(path, bbox=bbox)


def test_relative_labels_are_looked_up_under_root_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, work = tmp_path / "scene", tmp_path / "work"
    for folder in (root, work):
        folder.mkdir()
        (folder / "crop_mapping.gpkg").touch()
    (work / "other.gpkg").touch()
    monkeypatch.chdir(work)
    # A file of the same name in the working directory used to win silently.
    assert resolve_label_path(root, "crop_mapping.gpkg") == root / "crop_mapping.gpkg"
    assert resolve_label_path(root, "other.gpkg") == Path("other.gpkg")
    assert resolve_label_path(root, "missing.gpkg") == root / "missing.gpkg"
    assert resolve_label_path(root, str(work / "x.gpkg")) == work / "x.gpkg"


def test_unreadable_label_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.gpkg"
    path.write_text("this is not a GeoPackage")
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        IrrigationLabels(path)
    assert "GeoPackage" in str(info.value)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    path.write_text("this is not Parquet")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        IrrigationLabels(path)


def test_unknown_class_column(labels_file: Path) -> None:
    with pytest.raises(ValueError, match="'CROP'") as info:
        IrrigationLabels(labels_file, class_column="CROP")
    assert "CLASS2" in str(info.value)
    assert "ACRES" in str(info.value)


def test_missing_label_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.gdb.zip"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))) as missing:
        IrrigationLabels(path)
    # The GDB zip read as an example of "a GeoParquet file", and the suffixes
    # as those of GeoParquet files.
    assert f"{EXPECTED_FORMATS}: pass one as --labels" in str(missing.value)
    assert "the DWR crop-mapping GDB zip or another label file" in str(missing.value)
    with pytest.raises(FileNotFoundError, match="No label file found") as empty:
        IrrigationLabels(tmp_path)
    assert "(no name there ends in .gdb.zip, .gdb, .gpkg" in str(empty.value)
    assert f"; expected {EXPECTED_FORMATS}, so put one there" in str(empty.value)


# Image and labels together


def test_image_and_labels_that_miss_each_other_name_both_extents(
    tmp_path: Path,
) -> None:
    # torchgeo said only "Datasets have no spatial intersection".
    image = CentralValleyS2(fake_s2_multiband(tmp_path / "s2").parent)
    far = [(c, (x0 + 9e4, y0, x1 + 9e4, y1)) for c, (x0, y0, x1, y1) in FAKE_FIELDS]
    labels = IrrigationLabels(fake_dwr_gpkg(tmp_path, fields=far), crs=image.crs)
    for a, b in ((image, labels), (labels, image)):
        with pytest.raises(ValueError, match="so they do not overlap") as error:
            a & b
        assert re.search(
            r"CentralValleyS2 of \[.*\] covers \[-120\.\d+", str(error.value)
        )
        assert re.search(
            r"IrrigationLabels of \[.*\] covers \[-119\.\d+", str(error.value)
        )
    # Imagery in both layouts, united, then intersected: the same sentence,
    # also with a third folder united to the first two.
    bands = CentralValleyS2(fake_s2_per_band(tmp_path / "bands").parent)
    third = CentralValleyS2(fake_s2_multiband(tmp_path / "s2_third").parent)
    for union, parts in (
        (image | bands, 2),
        ((image | bands) | third, 3),
        (image | (bands | third), 3),
    ):
        for a, b in ((union, labels), (labels, union)):
            with pytest.raises(ValueError, match="so they do not overlap") as error:
                a & b
            name = r" \| ".join(["CentralValleyS2"] * parts)
            assert re.search(rf"{name} covers \[-120\.\d+", str(error.value))
            assert re.search(r"IrrigationLabels of \[.*\] covers", str(error.value))


def test_image_and_labels_in_a_dataloader(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path / "s2")
    labels_file = fake_dwr_gpkg(tmp_path / "labels")
    image = CentralValleyS2(tmp_path / "s2")
    # Labels in another CRS follow the image's when intersected.
    labels = IrrigationLabels(labels_file, crs=CRS.from_epsg(3310))
    dataset = image & labels
    assert isinstance(dataset, IntersectionDataset)
    assert labels.crs == image.crs
    assert pixel(labels[SCENE]["mask"], 701600, 4099400) == IRRIGATED

    sampler = RandomPatchSampler(dataset, size=64, length=4, generator=0)
    loader = DataLoader(
        dataset, batch_size=2, sampler=sampler, collate_fn=stack_samples
    )
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch["image"].shape == (2, 12, 64, 64)
        assert batch["image"].dtype == torch.float32
        assert batch["mask"].shape == (2, 64, 64)
        assert batch["mask"].dtype == torch.int64
        assert set(batch["mask"].unique().tolist()) <= {0, 1, 255}

    grid = GriddedPatchSampler(dataset, size=128)
    masks = [dataset[index]["mask"] for index in grid]
    assert len(masks) == 4
    irrigated = sum(int((m == IRRIGATED).sum()) for m in masks)
    assert irrigated == int((labels[SCENE]["mask"] == IRRIGATED).sum())


def test_yaml_and_pickle(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path / "s2")
    labels_file = fake_dwr_gpkg(tmp_path / "labels")
    parser = ArgumentParser()
    parser.add_argument("--image", type=CentralValleyS2)
    parser.add_argument("--labels", type=IrrigationLabels)
    config = parser.parse_string(
        f"""
        image:
          class_path: torchgeo_simclr.datasets.CentralValleyS2
          init_args:
            paths: {tmp_path / "s2"}
            crs: EPSG:32610
            res: 20.0
            bands: [B04, B03, B02]
        labels:
          class_path: torchgeo_simclr.datasets.IrrigationLabels
          init_args:
            paths: {labels_file}
            crs: EPSG:3310
            class_map: {{I: 255}}
            bbox: [-121, 36, -120, 38]
            layer: 0
        """
    )
    built = parser.instantiate(config)
    image, labels = built.image, built.labels
    assert image.bands == ["B04", "B03", "B02"]
    assert image.res == (20.0, 20.0)
    assert labels.crs == CRS.from_epsg(3310)
    assert labels.class_map["I"] == IGNORE_INDEX
    # Both survive pickling, as DataLoader workers need.
    dataset = pickle.loads(pickle.dumps(image & labels))
    sample = dataset[SCENE]
    assert sample["image"].shape == (3, FAKE_SIZE // 2, FAKE_SIZE // 2)
    assert sample["mask"].shape == (FAKE_SIZE // 2, FAKE_SIZE // 2)


# Real data


@needs_fixtures
def test_real_majortom_product() -> None:
    ds = CentralValleyS2(MAJORTOM.parent)
    assert len(ds) == 1
    assert ds.cloud_mask_files == [str(MAJORTOM / "cloud_mask.tif")]  # all clear
    assert ds.index.index[0].left.date() == datetime(2020, 2, 23).date()
    assert ds.crs == CRS.from_epsg(32648)
    sample = ds[:, :]
    image = sample["image"]
    assert image.shape == (12, 1068, 1068)
    assert image.dtype == torch.float32
    with rasterio.open(MAJORTOM / "B04.tif") as src:
        np.testing.assert_array_equal(image[3].numpy(), src.read(1))
    for i, band in enumerate(S2_BANDS):
        with rasterio.open(MAJORTOM / f"{band}.tif") as src:
            native = src.read(1).astype(np.float64)
        assert image[i].mean().item() == pytest.approx(native.mean(), rel=0.01), band


@needs_fixtures
@pytest.mark.parametrize("band", ["B04", "B11"])
def test_real_majortom_band_file_stands_for_its_product(band: str) -> None:
    ds = CentralValleyS2(MAJORTOM / f"{band}.tif")
    assert list(ds.index.filepath) == [str(MAJORTOM / "B02.tif")]
    assert ds.cloud_mask_files == [str(MAJORTOM / "cloud_mask.tif")]


@needs_fixtures
@pytest.mark.filterwarnings("ignore:Measured \\(M\\) geometry types")
def test_real_dwr_gdb_zip() -> None:
    # DWR pads its codes (" G"): they match after stripping.
    labels = IrrigationLabels(DWR_GDB)
    features = labels.features
    assert len(features) == 100
    assert not features.geometry.has_z.any()

    irrigated = features[features["value"] == IRRIGATED]
    # Rasterise a window around each irrigated field on the common 10 m grid
    # and collect the irrigated pixels (a set, so shared windows count once).
    pixels: set[tuple[int, int]] = set()
    for xmin, ymin, xmax, ymax in irrigated.geometry.bounds.to_numpy():
        x0, y0 = np.floor([xmin / 10, ymin / 10]) * 10 - 20
        x1, y1 = np.ceil([xmax / 10, ymax / 10]) * 10 + 20
        mask = labels[slice(x0, x1), slice(y0, y1)]["mask"].numpy()
        rows, cols = np.nonzero(mask == IRRIGATED)
        top, left = round(y1 / 10), round(x0 / 10)
        pixels.update(zip((top - rows).tolist(), (left + cols).tolist(), strict=True))
    raster_area = len(pixels) * 100.0
    polygon_area = shapely.union_all(irrigated.geometry.to_numpy()).area
    assert raster_area == pytest.approx(polygon_area, rel=0.03)
    acres = pyogrio.read_dataframe(
        DWR_GDB, columns=["CLASS2", "ACRES"], read_geometry=False
    )
    irrigated_acres = acres.loc[
        acres["CLASS2"].str.strip().map(DEFAULT_IRRIGATION_MAP) == IRRIGATED, "ACRES"
    ].sum()
    assert raster_area / 4046.8564224 == pytest.approx(irrigated_acres, rel=0.03)


def test_code_key_reads_whole_number_floats_as_the_integer() -> None:
    """An integer column with NULLs is read as float64: 1.0 is keyed "1"."""
    from torchgeo_simclr.datasets.dwr import MISSING_CODE, code_key

    assert code_key(1.0) == code_key(np.float64(1.0)) == code_key(1) == "1"
    assert code_key(np.float32(0.0)) == code_key(-0.0) == "0"
    assert code_key("1.0") == "1"  # a class-map key as typed
    assert code_key(" 2.00 ") == "2"
    assert code_key(1.5) == "1.5"  # not a whole number: as str prints it
    assert code_key("1.50") == "1.50"
    assert code_key(float("nan")) == code_key(None) == MISSING_CODE
    assert code_key(" V") == "V"


@pytest.mark.parametrize("class_map", [{"1": 1, "0": 0}, {"1.0": 1, "0.0": 0}])
def test_an_integer_class_column_with_nulls_matches_a_class_map(
    tmp_path: Path, class_map: dict[str, int]
) -> None:
    """QGIS leaves unfilled rows NULL; pyogrio then reads the codes as 1.0, 0.0."""
    import pandas as pd

    path = tmp_path / "curated.gpkg"
    gpd.GeoDataFrame(
        {"irrigated": pd.array([1, 0, None], dtype="Int64")},
        geometry=[
            shapely.box(700000, 4099000, 700100, 4099100),
            shapely.box(700200, 4099000, 700300, 4099100),
            shapely.box(700400, 4099000, 700500, 4099100),
        ],
        crs=FAKE_CRS,
    ).to_file(path, driver="GPKG")
    read = pyogrio.read_dataframe(path, columns=["irrigated"])["irrigated"]
    assert read.dtype == np.float64  # what makes the codes 1.0 and 0.0
    with pytest.warns(UserWarning, match="1 of 3 label polygons") as record:
        labels = IrrigationLabels(path, class_column="irrigated", class_map=class_map)
    # Only the NULL row is unmapped; no class-map entry is said to match nothing.
    messages = " ".join(str(w.message) for w in record)
    assert "1 of 3 label polygons have a irrigated code" in messages
    assert "(<missing>)" in messages
    assert "match no label polygon" not in messages
    assert labels.features["value"].tolist() == [IRRIGATED, NOT_IRRIGATED, 255]
