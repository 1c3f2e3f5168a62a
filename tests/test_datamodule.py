import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
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
    fake_scl,
)
from matplotlib.figure import Figure
from pyproj import Transformer
from rasterio.windows import from_bounds

from torchgeo_simclr.constants import IGNORE_INDEX, IRRIGATED
from torchgeo_simclr.datamodules import CentralValleyDataModule, central_valley
from torchgeo_simclr.datamodules.fractions import grid_patch_labels
from torchgeo_simclr.datamodules.statistics import band_statistics
from torchgeo_simclr.datamodules.workers import raster_worker
from torchgeo_simclr.datasets import sentinel2
from torchgeo_simclr.datasets.sentinel2 import fresh_file_handles


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    fake_s2_multiband(tmp_path / "sentinel2")
    fake_dwr_gpkg(tmp_path)
    return tmp_path


def make(scene: Path, **kwargs: object) -> CentralValleyDataModule:
    defaults: dict[str, object] = {
        "root": str(scene),
        "patch_size": 32,
        "block_size": 64,
        "batch_size": 4,
        "length": 8,
        "stats_patches": 4,
        "cache_dir": str(scene / "cache"),
    }
    defaults.update(kwargs)
    return CentralValleyDataModule(**defaults)  # type: ignore[arg-type]


def boxes(sampler) -> list[shapely.Polygon]:
    return [shapely.box(x.start, y.start, x.stop, y.stop) for x, y in sampler]


def test_splits_never_overlap(scene: Path) -> None:
    dm = make(scene, length=64)
    dm.setup("fit")
    train, val, test = (
        boxes(getattr(dm, f"{s}_sampler")) for s in ("train", "val", "test")
    )
    assert all((train, val, test))
    for a in train:
        assert not any(a.intersection(b).area > 0 for b in val + test)
    for a in val:
        assert not any(a.intersection(b).area > 0 for b in test)
    # Grid patches lie on the 10 m pixel grid and have the patch size.
    for b in val:
        x0, y0, x1, y1 = b.bounds
        assert (x1 - x0, y1 - y0) == (320, 320)
        assert (x0 % 10, y0 % 10) == (0, 0)


def test_training_batch_has_two_normalised_views(scene: Path) -> None:
    dm = make(scene)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 12, 32, 32)
    assert batch["mask"].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= {0, 1, IGNORE_INDEX}
    raw = batch["image"].clone()
    out = dm.train_aug(batch)
    assert out["views"].shape == (2, 4, 12, 32, 32)
    assert out["view_masks"].shape == (2, 4, 32, 32)
    expected = (raw - dm.mean[:, None, None]) / dm.std[:, None, None]
    assert torch.allclose(out["image"], expected, atol=1e-4)
    assert not torch.allclose(out["views"][0], out["views"][1])


def test_one_view_replaces_image_and_mask(scene: Path) -> None:
    dm = make(scene, num_views=1)
    dm.setup("fit")
    batch = dm.train_aug(next(iter(dm.train_dataloader())))
    assert "views" not in batch
    assert batch["image"].shape == (4, 12, 32, 32)
    assert batch["mask"].shape == (4, 32, 32)


def test_statistics_come_from_data_and_are_cached(scene: Path) -> None:
    dm = make(scene)
    dm.setup("fit")
    cached = list((scene / "cache" / "stats").glob("*.json"))
    assert len(cached) == 1
    image = dm.image_dataset[dm.image_dataset.bounds]["image"]
    assert torch.all(dm.std > 0)
    # The patches cover part of the scene: close to, not equal to, the scene mean.
    assert torch.allclose(dm.mean, image.flatten(1).mean(1), rtol=0.2)
    again = make(scene)
    again.setup("fit")
    assert torch.equal(again.mean, dm.mean)


def test_plot_draws_image_mask_and_prediction(scene: Path) -> None:
    # torchgeo's plot asks the dataset, with labels an IntersectionDataset
    # without plot, so it returned None.
    dm = make(scene)
    dm.setup("fit")
    sample = dm.val_dataset[next(iter(dm.val_sampler))]
    sample["prediction"] = torch.ones_like(sample["mask"])
    fig = dm.plot(sample, suptitle="val")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["Image", "Mask", "Prediction"]
    assert fig.get_suptitle() == "val"
    assert fig.axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    plt.close(fig)
    # Before setup, the imagery is opened to draw it.
    fig = make(scene).plot({"image": sample["image"]}, show_titles=False)
    assert [ax.get_title() for ax in fig.axes] == [""]
    plt.close(fig)


def test_unlabeled_pretraining(scene: Path) -> None:
    dm = make(scene, labels=None)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert "mask" not in batch


def test_bbox_clips_the_region(scene: Path) -> None:
    full = make(scene, block_size=32, patch_size=16)
    full.setup("fit")
    # A bbox over the western half of the scene, in lon/lat.
    xmin, ymin, xmax, ymax = full.dataset.index.geometry.union_all().bounds
    to_lonlat = Transformer.from_crs(FAKE_CRS, "EPSG:4326", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(xmin, ymin, xmax, ymax)
    bbox = (west - 0.01, south - 0.01, (west + east) / 2, north + 0.01)
    dm = make(scene, bbox=bbox, block_size=32, patch_size=16)
    dm.setup("fit")
    clipped = sum(s.area for s in dm.split_blocks.values())
    whole = sum(s.area for s in full.split_blocks.values())
    assert 0.3 * whole < clipped < 0.7 * whole
    for blocks in dm.split_blocks.values():
        assert blocks.bounds[2] <= (xmin + xmax) / 2 + 60  # grid convergence


@pytest.mark.parametrize("labels", ["crop_mapping.gpkg", None])
def test_bbox_outside_data_prints_both_extents(scene: Path, labels: str | None) -> None:
    # With labels it named only the labels' extent and blamed them, though
    # the bbox missed the imagery too.
    dm = make(scene, bbox=(-118.0, 34.0, -117.9, 34.1), labels=labels)
    expected = (
        r"bbox \[-118\.0, 34\.0, -117\.9, 34\.1\] \(lon/lat\) does not overlap the "
        r"data in .*, which covers \[-120\.7"
    )
    with pytest.raises(ValueError, match=expected):
        dm.setup("fit")


@pytest.mark.parametrize("labels", ["crop_mapping.gpkg", None])
def test_latitude_first_bbox_gets_the_fixed_bbox(
    scene: Path, labels: str | None
) -> None:
    # Without labels the swap hint was missing: only "does not overlap".
    dm = make(scene, bbox=(37.1, -120.7, 37.2, -120.6), labels=labels)
    with pytest.raises(ValueError, match=r"look swapped: pass \[-120.7, 37.1, -120.6"):
        dm.setup("fit")


def test_training_patches_repeat_under_the_same_seed(scene: Path) -> None:
    def patches(seed: int) -> list[tuple[float, float]]:
        torch.manual_seed(seed)
        dm = make(scene, length=16)
        dm.setup("fit")
        return [(x.start, y.start) for x, y in dm.train_sampler]

    assert patches(0) == patches(0)
    assert patches(0) != patches(1)


def test_workers_open_their_own_files(scene: Path) -> None:
    from torchgeo.datasets import RasterDataset

    # Two persistent workers reading through handles inherited from the main
    # process share one file offset and read corrupt tiles.
    dm = make(scene, num_workers=1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.worker_init_fn is raster_worker
    assert RasterDataset._cached_load_warp_file.cache_info().currsize > 0
    raster_worker(0)
    assert RasterDataset._cached_load_warp_file.cache_info().currsize == 0
    batch = next(iter(loader))
    assert torch.isfinite(batch["image"]).all()


def test_labels_are_read_only_over_the_imagery(tmp_path: Path) -> None:
    # A statewide file: the scene's fields plus one 100 km away. Without a
    # bbox the datamodule reads only the polygons near its imagery.
    fake_s2_multiband(tmp_path / "sentinel2")
    far = ("G", (800100.0, 4099100.0, 800700.0, 4099700.0))
    fake_dwr_gpkg(tmp_path, fields=[*FAKE_FIELDS, far])
    dm = make(tmp_path)
    dm.setup("fit")
    labels = dm.dataset.datasets[1]
    assert len(labels.features) == len(FAKE_FIELDS)


def test_an_epoch_shorter_than_one_batch_is_refused(scene: Path) -> None:
    # Training drops the partial batch: Lightning said "No training batches"
    # and the run ended without a checkpoint or a reason.
    with pytest.raises(ValueError, match="length 2 patches per epoch is less than"):
        make(scene, length=2, batch_size=4).setup("fit")
    make(scene, length=2, batch_size=4).setup("test")  # no training, no check


def test_pixels_without_data_are_neither_trained_on_nor_labelled(
    tmp_path: Path,
) -> None:
    # A download turns cloud pixels into nodata 0; the DWR field under them
    # keeps its label. Those pixels entered the loss, the metrics and the
    # patch labels as a flat -mean/std image labelled "irrigated".
    scene = fake_s2_multiband(tmp_path / "sentinel2")
    fake_dwr_gpkg(tmp_path)
    with rasterio.open(scene, "r+") as dst:
        window = from_bounds(700100, 4099100, 700700, 4099700, dst.transform)
        dst.write(np.zeros((12, 60, 60), "uint16"), window=window.round_offsets())
    dm = make(tmp_path, num_views=1)
    dm.setup("fit")
    cloud = (slice(700200.0, 700520.0), slice(4099200.0, 4099520.0))
    clear = (slice(701200.0, 701520.0), slice(4099150.0, 4099470.0))
    samples = [dm.dataset[patch] for patch in (cloud, clear)]
    assert all(s["mask"].shape == (32, 32) for s in samples)
    assert (samples[0]["mask"] == IRRIGATED).all()
    assert (samples[0]["image"] == 0).all()

    batch = dm.train_aug(
        {
            "image": torch.stack([s["image"] for s in samples]),
            "mask": torch.stack([s["mask"] for s in samples]),
        }
    )
    assert (batch["mask"][0] == IGNORE_INDEX).all()
    assert (batch["mask"][1] != IGNORE_INDEX).any()
    labels = grid_patch_labels(dm.dataset, [cloud, clear])
    assert labels[0] == IGNORE_INDEX
    assert labels[1] == grid_patch_labels(dm.dataset.datasets[1], [clear])[0]


def test_normalised_nodata_is_the_band_mean(scene: Path) -> None:
    dm = make(scene)
    dm.setup("fit")
    image = torch.full((1, 12, 8, 8), 5000.0)
    image[..., :4] = 0
    out = dm.aug({"image": image})["image"]
    assert (out[..., :4] == 0).all()
    expected = (5000.0 - dm.mean[:, None, None]) / dm.std[:, None, None]
    assert torch.allclose(out[0, :, :, 4:], expected.expand(12, 8, 4))


def test_a_pixel_missing_some_bands_is_nodata(scene: Path) -> None:
    # At a swath edge or a masked cloud the 20 m and 60 m bands, resampled to
    # 10 m, reach past the 10 m bands' edge: such pixels hold only some bands.
    image = torch.full((1, 12, 1, 2), 5000.0)
    image[0, [1, 2, 3, 7], 0, 0] = 0  # B02, B03, B04, B08: the 10 m bands
    mean, _ = band_statistics([{"image": image[0]}], [0])
    assert mean.tolist() == [5000.0] * 12
    dm = make(scene)
    dm.setup("fit")
    batch = dm.aug({"image": image, "mask": torch.ones(1, 1, 2, dtype=torch.long)})
    assert batch["mask"].tolist() == [[[IGNORE_INDEX, 1]]]
    assert (batch["image"][0, :, 0, 0] == 0).all()


def test_clouds_in_an_scl_stay_out_of_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bright cloud tops in the band means and deviations would shift every
    # normalised pixel; a cache made without the mask must not be reused.
    product = fake_s2_per_band(tmp_path / "sentinel2")
    fake_dwr_gpkg(tmp_path)
    with rasterio.open(product / "B02.tif", "r+") as dst:
        data = dst.read(1)
        clear = data.astype(float).mean() - 1000  # less ESA's offset
        data[:, : dst.width // 2] = 9000  # bright cloud tops
        dst.write(data, 1)
    scl = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), 4)
    scl[:, : FAKE_SIZE // 4] = 8  # cloud, medium probability
    fake_scl(product, scl)
    lines: list[str] = []
    monkeypatch.setattr(central_valley, "rank_zero_info", lines.append)

    kept = make(tmp_path, mask_clouds=False)
    kept.setup("fit")
    assert not any("Cloud masks" in line for line in lines)
    masked = make(tmp_path)
    masked.setup("fit")
    assert any(
        "Cloud masks: 1 file(s)" in line and "mask_clouds false" in line
        for line in lines
    )
    b02 = 1
    assert kept.mean[b02] > clear + 1000
    assert abs(masked.mean[b02] - clear) < 0.25 * (kept.mean[b02] - clear)
    # Clouds grown further leave other pixels: statistics of their own.
    stats = tmp_path / "cache" / "stats"
    assert len(list(stats.iterdir())) == 2
    buffered = make(tmp_path, cloud_buffer=200.0)
    buffered.setup("fit")
    assert buffered.image_dataset.cloud_buffer == 200
    assert len(list(stats.iterdir())) == 3
    assert any("clouds grown by 200 m more" in line for line in lines)
    # Workers forked after the statistics open their own masks too.
    assert sentinel2._OPEN_MASKS.get(buffered.image_dataset)
    fresh_file_handles(0)
    assert not sentinel2._OPEN_MASKS


def test_split_buffer_keeps_training_patches_away_from_held_out_ones(
    scene: Path,
) -> None:
    def closest(**kwargs: object) -> float:
        dm = make(scene, length=64, **kwargs)
        dm.setup("fit")
        train = boxes(dm.train_sampler) + boxes(dm.grid_sampler("train"))
        held_out = shapely.union_all(boxes(dm.val_sampler) + boxes(dm.test_sampler))
        return min(b.distance(held_out) for b in train)

    assert closest() < 80
    assert closest(split_buffer=8) >= 80  # 8 px of 10 m


def test_the_split_log_gives_the_training_area_a_buffer_keeps(
    scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gap merges the rest of touching training blocks: "{'train': 2}
    # blocks" read as if it had thrown away most of them.
    logged: list[str] = []
    monkeypatch.setattr(central_valley, "rank_zero_info", logged.append)
    make(scene, length=64, split_buffer=8).setup("fit")
    (line,) = [text for text in logged if text.startswith("Spatial split")]
    assert "'train'" not in line.split(";")[0]
    assert re.search(r"training on \d+% of the other blocks' area, kept 8 px", line)


@pytest.mark.parametrize("labels", ["crop_mapping.gpkg", None])
def test_patches_lie_on_the_pixels_of_the_scene_in_the_dataset_crs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: str | None
) -> None:
    # Tiles of zones 10 and 11, as where the Central Valley crosses -120
    # degrees, the zone-11 one reaching further west and south: torchgeo's
    # bounds start at its reprojected edges, between zone-10 pixels. Patches
    # anchored there were read off the files' pixels (bilinear resampling of
    # every training patch), while maps read them as they are.
    fake_s2_multiband(tmp_path / "sentinel2")
    fake_s2_multiband(
        tmp_path / "sentinel2",
        name=FAKE_PRODUCT.replace("T10SFG", "T11SKB") + ".tif",
        origin=(164670.0, 4103120.0),
        crs="EPSG:32611",
    )
    fake_dwr_gpkg(tmp_path)
    read: list[tuple[slice, slice]] = []
    statistics = central_valley.cached_band_statistics

    def spy(dataset: object, locations: list[tuple[slice, slice]], *args: object):
        read.extend(locations)
        return statistics(dataset, locations, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(central_valley, "cached_band_statistics", spy)
    dm = make(tmp_path, labels=labels, length=64)
    dm.setup("fit")
    x, y = dm.image_dataset.bounds[0], dm.image_dataset.bounds[1]
    assert dm.image_dataset.crs == FAKE_CRS
    assert ((x.start - FAKE_ORIGIN[0]) % 10, (y.start - FAKE_ORIGIN[1]) % 10) != (0, 0)
    grids = [dm.grid_sampler(split) for split in ("train", "val", "test")]
    patches = {
        "random draws": list(dm.train_sampler),
        "grid patches": [p for grid in [*grids, dm.predict_sampler] for p in grid],
        "statistics patches": read,
    }
    for kind, found in patches.items():
        assert found, kind
        offsets = {
            ((x.start - FAKE_ORIGIN[0]) % 10, (y.start - FAKE_ORIGIN[1]) % 10)
            for x, y in found
        }
        assert offsets == {(0.0, 0.0)}, f"{kind} off the zone-10 pixels: {offsets}"
