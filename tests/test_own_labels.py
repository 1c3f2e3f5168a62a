"""Fine-tuning on your own labels: sparse polygons, their layer, the split."""

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import pytest
import shapely
import torch
from torchmetrics.classification import BinaryAUROC

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.lonlat import lonlat_extent
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks.metrics import DefinedAUROC, LabelledCount

#: Patch side of these tests, pixels, and the side of a hand-drawn square.
PATCH = 32
SQUARE = 10


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def module(scene: Path, **kwargs: Any) -> CentralValleyDataModule:
    defaults: dict[str, Any] = {
        "root": str(scene),
        "patch_size": PATCH,
        "block_size": 128,
        "batch_size": 4,
        "num_views": 1,
        "stats_patches": 8,
        "cache_dir": str(scene / "cache"),
    }
    return CentralValleyDataModule(**(defaults | kwargs))


@pytest.fixture(scope="module")
def unlabelled(scene: Path) -> CentralValleyDataModule:
    dm = module(scene, labels=None)
    dm.setup("fit")
    return dm


def squares(dm: CentralValleyDataModule, per_split: dict[str, int]) -> gpd.GeoDataFrame:
    """Small squares, as drawn by hand, centred on patches of each split's grid.

    Each covers SQUARE x SQUARE px (10% of a patch); they alternate irrigated
    (1) and not (0), in column ``irrigated``.
    """
    res = 10.0
    boxes = []
    for split, count in per_split.items():
        for x, y in list(dm.grid_sampler(split))[:count]:
            cx, cy = (x.start + x.stop) / 2, (y.start + y.stop) / 2
            half = SQUARE * res / 2
            boxes.append(shapely.box(cx - half, cy - half, cx + half, cy + half))
    return gpd.GeoDataFrame(
        {"irrigated": [i % 2 for i in range(len(boxes))]},
        geometry=boxes,
        crs="EPSG:32610",
    )


def own(scene: Path, frame: gpd.GeoDataFrame, name: str, **kwargs: Any) -> dict:
    """Datamodule options for *frame* written as *name* beside the scene."""
    frame.to_file(scene / name, **kwargs)
    return {
        "labels": name,
        "class_column": "irrigated",
        "class_map": {"1": 1, "0": 0},
        "label_fraction": 1.0,
    }


@pytest.mark.parametrize("inset", [None, 0.1], ids=["all imagery", "a bbox"])
def test_the_split_does_not_follow_the_labels_extent(
    scene: Path, unlabelled: CentralValleyDataModule, inset: float | None
) -> None:
    # The blocks were cut from the labels' bounding box: adding a label, or
    # saving the same labels as GeoJSON, moved the held-out blocks. Within a
    # bbox the labels covered only its curved outline in the imagery's CRS,
    # so labelled runs lost the strips along its edges.
    options: dict[str, Any] = {}
    without = unlabelled
    if inset is not None:
        west, south, east, north = lonlat_extent(
            unlabelled.image_dataset.index.total_bounds, unlabelled.image_dataset.crs
        )
        dx, dy = (east - west) * inset, (north - south) * inset
        options["bbox"] = (west + dx, south + dy, east - dx, north - dy)
        without = module(scene, labels=None, **options)
        without.setup("fit")
    frame = squares(without, {"train": 3, "val": 1, "test": 1})
    for name, crs in [("west.gpkg", "EPSG:32610"), ("west.geojson", "EPSG:4326")]:
        dm = module(scene, **own(scene, frame.to_crs(crs), name), **options)
        dm._build_datasets()
        for split, blocks in without.split_blocks.items():
            assert dm.split_blocks[split].equals(blocks), (name, split)
            # Every patch is there, not only those within the labels' bounds.
            assert list(dm.grid_sampler(split)) == list(without.grid_sampler(split))


def test_a_polygon_touching_a_block_does_not_count_in_it(
    scene: Path, unlabelled: CentralValleyDataModule
) -> None:
    block = unlabelled.split_blocks["val"].geoms[0]
    xmin, ymin, _, _ = block.bounds
    outside = shapely.box(xmin - 100, ymin, xmin, ymin + 100)  # shares an edge
    assert outside.touches(block)
    frame = gpd.GeoDataFrame({"irrigated": [1]}, geometry=[outside], crs="EPSG:32610")
    dm = module(scene, **own(scene, frame, "edge.gpkg"))
    dm._build_datasets()
    dm.split_blocks = unlabelled.split_blocks
    assert dm.label_polygons()["val"] == 0


def test_sparse_labels_need_a_lower_min_labelled(
    scene: Path, unlabelled: CentralValleyDataModule
) -> None:
    frame = squares(unlabelled, {"train": 6, "val": 2, "test": 2})
    options = own(scene, frame, "sparse.gpkg")
    with pytest.raises(
        ValueError,
        match=r"No 32 px patch of the train blocks' grid has 50% or more of its "
        r"pixels labelled by '.*sparse.gpkg' \(6 of its label polygons with a "
        r"class reach the train blocks, 0 lie outside every block\), .* pass a "
        r"lower --data.init_args.min_labelled",
    ):
        module(scene, **options).setup("fit")
    dm = module(scene, **options, min_labelled=0.05)
    dm.setup("fit")
    assert dm.n_labels == 6


def test_patch_labels_follow_min_labelled(scene: Path) -> None:
    mask = torch.full((2, PATCH, PATCH), IGNORE_INDEX)
    mask[0, :SQUARE, :SQUARE] = 1  # 10% labelled, irrigated
    mask[1] = 0  # all labelled, not irrigated
    for share, first in [(0.5, IGNORE_INDEX), (0.05, 1)]:
        dm = module(scene, min_labelled=share)
        batch = dm.on_after_batch_transfer({"mask": mask.clone()}, 0)
        assert batch["label"].tolist() == [first, 0]


def test_min_labelled_out_of_range_is_refused(scene: Path) -> None:
    with pytest.raises(ValueError, match=r"min_labelled takes the share .* got 0"):
        module(scene, min_labelled=0.0)


def test_a_small_pool_under_a_label_fraction_warns(
    scene: Path, unlabelled: CentralValleyDataModule
) -> None:
    frame = squares(unlabelled, {"train": 6, "val": 2, "test": 2})
    options = own(scene, frame, "few.gpkg") | {"label_fraction": 0.01}
    with pytest.warns(
        UserWarning,
        match=r"label_fraction 0.01 keeps 2 of the 6 labelled training patches; "
        r"to train on every label .* --data.init_args.label_fraction 1.0",
    ):
        module(scene, **options, min_labelled=0.05).setup("fit")


def test_the_label_polygons_of_each_split_are_logged(
    scene: Path,
    unlabelled: CentralValleyDataModule,
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    frame = squares(unlabelled, {"train": 5, "val": 2, "test": 3})
    module(scene, **own(scene, frame, "logged.gpkg"), min_labelled=0.05).setup("fit")
    assert re.search(
        r"Label polygons with a class in '.*logged.gpkg': 5 reach the train "
        r"blocks, 2 val, 3 test, 0 lie outside them",
        lightning_log.text,
    )


def test_val_without_labels_is_refused_before_training(
    scene: Path, unlabelled: CentralValleyDataModule
) -> None:
    # The fit trained a whole epoch, then stopped: val_f1 had no label.
    frame = squares(unlabelled, {"train": 6, "test": 2})
    options = own(scene, frame, "no_val.gpkg") | {"min_labelled": 0.05}
    dm = module(scene, **options)
    dm.trainer = SimpleNamespace(limit_val_batches=1.0, world_size=1)  # type: ignore[assignment]
    with pytest.raises(
        ValueError,
        match=r"No val patch has a pixel labelled by '.*no_val.gpkg' \(6 of its "
        r"label .* so val_f1 cannot be computed .* --trainer.limit_val_batches 0",
    ):
        dm.setup("fit")
    # Without validation the same labels train.
    dm = module(scene, **options)
    dm.trainer = SimpleNamespace(limit_val_batches=0, world_size=1)  # type: ignore[assignment]
    dm.setup("fit")
    assert dm.n_labels == 6


def test_the_labels_layer_is_chosen(
    scene: Path, unlabelled: CentralValleyDataModule
) -> None:
    # A QGIS project GeoPackage: another layer first, the labels second.
    path = scene / "project.gpkg"
    gpd.GeoDataFrame(
        {"note": ["a hit"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:32610"
    ).to_file(path, layer="hits")
    frame = squares(unlabelled, {"train": 6, "val": 2, "test": 2})
    options = own(scene, frame, "project.gpkg", layer="mine", mode="a")
    with pytest.raises(
        ValueError,
        match=r"no column 'irrigated' in its first layer, .* its layer\(s\) "
        r"\['mine'\] have it, so pass --data.init_args.labels_layer mine",
    ):
        module(scene, **options, min_labelled=0.05).setup("fit")
    dm = module(scene, **options, min_labelled=0.05, labels_layer="mine")
    dm.setup("fit")
    assert dm.n_labels == 6


# What a score rests on.


@pytest.mark.parametrize("thresholds", [None, 200])
def test_auroc_of_one_class_is_undefined(thresholds: int | None) -> None:
    # torchmetrics gave 0.0 for a test set of one irrigated patch.
    preds = torch.tensor([0.9, 0.2, 0.7])
    metric = DefinedAUROC(thresholds=thresholds, ignore_index=IGNORE_INDEX)
    metric.update(preds, torch.tensor([1, 1, IGNORE_INDEX]))
    assert torch.isnan(metric.compute())
    both = torch.tensor([1, 0, 1])
    metric = DefinedAUROC(thresholds=thresholds, ignore_index=IGNORE_INDEX)
    metric.update(preds, both)
    expected = BinaryAUROC(thresholds=thresholds)(preds, both)
    assert metric.compute() == pytest.approx(float(expected))


def test_the_labelled_count_is_what_was_scored() -> None:
    count = LabelledCount()
    count.update(torch.rand(4), torch.tensor([1, IGNORE_INDEX, 0, IGNORE_INDEX]))
    count.update(torch.rand(2, 2), torch.tensor([[1, 1], [IGNORE_INDEX, 0]]))
    assert count.compute() == 5
