"""Imagery on another scale or grid than the package reads says so.

Reflectance 0 to 1 (Google Earth Engine and SNAP exports) gave a map with a
quarter of the right irrigated area, imagery still carrying ESA's +1000 offset
an empty map, both without a word; lon/lat imagery was refused with advice to
pass ``res=``/``crs=``, which the command line does not have.
"""

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from conftest import (
    FAKE_PRODUCT,
    fake_s2_multiband,
    fake_s2_per_band,
    quiet_trainer,
    save_checkpoint,
    scene_stats,
)
from rasterio.warp import Resampling, calculate_default_transform, reproject

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.inference.predict import predict_map
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.sample import SampleScene, make_sample_scene
from torchgeo_simclr.tasks import DistillTask, MapPredictionTask
from torchgeo_simclr.tasks.input_check import BandMeans

#: Per-band standard deviation of the quickstart checkpoint's training data,
#: reflectance x10000 (``runs/segment_quickstart/checkpoints/last.ckpt``).
QUICKSTART_STD = (240.0, 323.0, 362.0, 626.0, 493.0, 405.0)
QUICKSTART_STD += (541.0, 623.0, 624.0, 549.0, 693.0, 732.0)

#: Start of the warning on imagery unlike the training imagery.
UNLIKE = "The imagery's band means lie more than 3 standard deviations"


def as_float(path: Path, scale: float) -> Path:
    """Rewrite a raster as float32 values divided by *scale*, in place."""
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile["dtype"] = "float32"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32) / scale)
    return path


def test_a_float_stack_of_reflectance_0_to_1_is_refused(tmp_path: Path) -> None:
    path = as_float(fake_s2_multiband(tmp_path / "gee"), 10000 * 10)
    with pytest.raises(ValueError, match="reflectance on a 0 to 1 scale") as error:
        CentralValleyS2(tmp_path / "gee")
    message = str(error.value)
    assert repr(str(path)) in message
    assert "expected reflectance x 10000" in message
    assert f"gdal_translate -scale 0 1 0 10000 -ot UInt16 {path}" in message


def test_a_float_band_file_of_reflectance_0_to_1_is_refused(tmp_path: Path) -> None:
    product = fake_s2_per_band(tmp_path / "snap")
    for band in S2_BANDS:
        as_float(product / f"{band}.tif", 10000 * 10)
    with pytest.raises(ValueError, match="reflectance on a 0 to 1 scale") as error:
        CentralValleyS2(tmp_path / "snap")
    assert str(product / "B02.tif") in str(error.value)


def test_float_reflectance_x10000_and_nodata_read_as_before(tmp_path: Path) -> None:
    path = as_float(fake_s2_multiband(tmp_path / "float"), 1)
    ds = CentralValleyS2(tmp_path / "float")
    with rasterio.open(path) as src:
        expected = src.read()
    np.testing.assert_array_equal(ds[ds.bounds]["image"].numpy(), expected)
    # All nodata: nothing to judge the scale by, so nothing is refused.
    with rasterio.open(path, "r+") as dst:
        dst.write(np.zeros_like(expected))
    assert len(CentralValleyS2(tmp_path / "float")) == 1


def test_a_nodata_value_does_not_hide_reflectance_0_to_1(tmp_path: Path) -> None:
    # SNAP and GDAL write nodata -9999: its |value| passed for reflectance
    # x10000, so the 0 to 1 scene was read without a word.
    path = as_float(fake_s2_multiband(tmp_path / "snap"), 10000 * 10)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, :, : data.shape[2] // 2] = -9999
        dst.write(data)
        dst.nodata = -9999
    with pytest.raises(ValueError, match="reflectance on a 0 to 1 scale") as error:
        CentralValleyS2(tmp_path / "snap")
    assert "values of at most 0." in str(error.value)


def opens_by_checks(
    monkeypatch: pytest.MonkeyPatch, root: Path
) -> dict[str, list[str]]:
    """Build a dataset of *root*, and the files each of this package's checks opened.

    Returns:
        Each file opened by a check of this package (not by reading or
        indexing), with the names of the checks that opened it.
    """
    original = rasterio.open
    opened: dict[str, list[str]] = {}

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_code
        if "torchgeo_simclr" in caller.co_filename and "check" in caller.co_name:
            opened.setdefault(str(path), []).append(caller.co_name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    CentralValleyS2(root)
    monkeypatch.setattr(rasterio, "open", original)
    return opened


@pytest.mark.parametrize("scale", [None, 1.0], ids=["uint16", "float32"])
def test_a_stack_is_opened_once_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: float | None
) -> None:
    # The value-scale check opened every scene a second time, on every build
    # of a dataset (fit, predict, evaluate, probe), remote scenes included.
    path = fake_s2_multiband(tmp_path / "scenes")
    if scale is not None:
        as_float(path, scale)
    opened = opens_by_checks(monkeypatch, tmp_path / "scenes")
    assert opened[str(path)] == ["_check_band_counts"]


def test_a_product_band_file_is_opened_once_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = fake_s2_per_band(tmp_path / "products")
    opened = opens_by_checks(monkeypatch, tmp_path / "products")
    indexed = [path for path, callers in opened.items() if len(callers) > 1]
    assert indexed == [], opened
    assert opened[str(product / "B02.tif")] == ["_check_band_files"]


def test_lonlat_imagery_is_refused_with_a_gdalwarp_into_its_utm_zone(
    tmp_path: Path,
) -> None:
    # A scene in La Mancha (UTM zone 30N), exported in EPSG:4326 as GEE does.
    utm = fake_s2_multiband(
        tmp_path / "utm", origin=(560000.0, 4330000.0), crs="EPSG:32630"
    )
    path = tmp_path / "lonlat" / FAKE_PRODUCT
    path = path.with_suffix(".tif")
    path.parent.mkdir()
    with rasterio.open(utm) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        profile = src.profile | {
            "crs": "EPSG:4326",
            "transform": transform,
            "width": width,
            "height": height,
        }
        with rasterio.open(path, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(
                    rasterio.band(src, band),
                    rasterio.band(dst, band),
                    resampling=Resampling.nearest,
                )
    with pytest.raises(ValueError, match="lon/lat degrees") as error:
        CentralValleyS2(tmp_path / "lonlat")
    message = str(error.value)
    assert "gdalwarp -t_srs EPSG:32630 -tr 10 10" in message
    # Python users may still pass a CRS, but the command line has no option.
    assert not message.startswith("res=")
    ds = CentralValleyS2(tmp_path / "lonlat", crs="EPSG:32630")
    assert ds.crs == "EPSG:32630"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SampleScene:
    return make_sample_scene(tmp_path_factory.mktemp("scene"), size=256, tiles=1)


def plus_offset(scene: SampleScene, root: Path) -> Path:
    """A copy of *scene*'s imagery with ESA's +1000 offset left in (0 kept)."""
    folder = root / "sentinel2"
    folder.mkdir(parents=True)
    for path in scene.image_paths:
        with rasterio.open(path) as src:
            profile, data = src.profile, src.read()
        data = np.where((data > 0).all(0), data + 1000, 0).astype(data.dtype)
        with rasterio.open(folder / path.name, "w", **profile) as dst:
            dst.write(data)
    shutil.copy(scene.root / "crop_mapping.gpkg", root)
    return root


@pytest.fixture(scope="module")
def checkpoint(scene: SampleScene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation checkpoint (random weights) trained on the scene.

    Its means are the scene's; its standard deviations those of the quickstart
    checkpoint, trained on the real sample scene (the fake scene's are about
    twice as wide).
    """
    mean, _ = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=QUICKSTART_STD,
        patch_size=32,
    )
    path = tmp_path_factory.mktemp("ckpt") / "seg.ckpt"
    return save_checkpoint(path, "segmentation", metadata)


def unlike(texts: list[str]) -> list[str]:
    return [text for text in texts if text.startswith(UNLIKE)]


def test_a_map_of_imagery_with_the_offset_left_in_warns_once(
    scene: SampleScene, checkpoint: Path, tmp_path: Path
) -> None:
    kwargs = {"device": "cpu", "progress": False, "batch_size": 1}
    right = predict_map(checkpoint, scene.root, tmp_path / "right.tif", **kwargs)
    assert unlike(right.summary["warnings"]) == []
    root = plus_offset(scene, tmp_path / "offset")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        wrong = predict_map(checkpoint, root, tmp_path / "wrong.tif", **kwargs)
    [message] = unlike(wrong.summary["warnings"])
    assert len(unlike([str(w.message) for w in shown])) == 1
    assert f"those checkpoint {str(checkpoint)!r} was trained on: B01 " in message
    assert "+1000 offset of processing baseline 04.00" in message
    assert "every band reads about 1000 higher" in message
    assert "README" in message


def test_the_map_warns_after_four_batches_not_at_its_end(checkpoint: Path) -> None:
    task = MapPredictionTask(checkpoint=checkpoint)
    mean = torch.tensor(task.data.mean).view(1, -1, 1, 1)
    image = torch.full((1, 12, 256, 256), 1000.0) + mean
    warned_at = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        # 4 batches of 64 x 64 px are too few pixels to judge: it waits for
        # more, then warns at the first batch with enough, and only once.
        for batch_idx in range(12):
            window = image if batch_idx >= 4 else image[..., :64, :64]
            task.predict_step({"image": window}, batch_idx)
            warned_at += [batch_idx] * len(unlike([str(w.message) for w in shown]))
            shown.clear()
    assert warned_at == [7]


def test_the_band_means_stop_once_compared(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every batch of the map was added (an einsum over a float copy of it)
    # after the comparison, and each batch while too few pixels had been
    # mapped copied the count to the host, a device sync per batch.
    task = MapPredictionTask(checkpoint=checkpoint)
    mean = torch.tensor(task.data.mean).view(1, -1, 1, 1)
    image = torch.zeros((1, 12, 256, 256)) + mean
    added, synced = [], []
    original_add, original_means = BandMeans.add, BandMeans.means

    def add(self: BandMeans, *args: Any) -> None:
        added.append(1)
        original_add(self, *args)

    def means(self: BandMeans) -> tuple[list[float], int]:
        synced.append(1)
        return original_means(self)

    monkeypatch.setattr(BandMeans, "add", add)
    monkeypatch.setattr(BandMeans, "means", means)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        # 40 batches of 8 x 8 px: never enough pixels to compare.
        for batch_idx in range(40):
            task.predict_step({"image": image[..., :8, :8]}, batch_idx)
        assert len(synced) == 4  # after 4, 8, 16 and 32 batches, not 37 times
        # Enough pixels: compared once, then no batch is added.
        for batch_idx in range(40, 80):
            task.predict_step({"image": image}, batch_idx)
    assert unlike([str(w.message) for w in shown]) == []
    assert len(synced) == 5  # after 64 batches
    assert len(added) == 64  # none of the 16 after it


@pytest.mark.parametrize("offset", [False, True])
def test_distilling_from_a_teacher_of_imagery_without_the_offset_warns(
    scene: SampleScene, checkpoint: Path, tmp_path: Path, offset: bool
) -> None:
    # The datamodule's own statistics, computed before training, are
    # compared with the teacher's: no batch is read for it.
    root = plus_offset(scene, tmp_path / "offset") if offset else scene.root
    dm = CentralValleyDataModule(
        root=str(root),
        patch_size=32,
        block_size=64,
        batch_size=4,
        length=4,
        stats_patches=64,
        num_views=0,
        cache_dir=str(tmp_path / "cache"),
    )
    task = DistillTask(teacher=str(checkpoint), model="resnet18")
    trainer = quiet_trainer(1, num_sanity_val_steps=0, limit_val_batches=0)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        trainer.fit(task, datamodule=dm)
    found = unlike([str(w.message) for w in shown])
    if not offset:
        assert found == []
        return
    [message] = found
    assert f"those teacher {str(checkpoint)!r} was trained on: B01 " in message


def test_imagery_like_the_training_imagery_is_quiet() -> None:
    from torchgeo_simclr.tasks.input_check import unlike_training

    data = DataMetadata(
        bands=("B01", "B02"), mean=(700.0, 800.0), std=(240.0, 340.0), patch_size=32
    )
    assert unlike_training([900.0, 700.0], data, "checkpoint 'x.ckpt'") is None
    message = unlike_training([1700.0, 1800.0], data, "checkpoint 'x.ckpt'")
    assert message is not None
    assert "B01 1700 (trained on 700, +4.2 std)" in message
    assert "B02" not in message.split(": ")[1].split(";")[0]
