"""What made a file: checkpoints, maps, indexes and scores name their making.

A scientist who publishes a map or a score table must say which code, seed,
parent checkpoint, imagery and options produced it; each output records these
beside its own content (see :mod:`torchgeo_simclr.software`).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
from conftest import fake_s2_multiband, quiet_trainer, save_checkpoint
from lightning.pytorch import LightningModule, seed_everything
from test_evaluate import base_map, write_labels, write_map
from torch.utils.data import DataLoader

import torchgeo_simclr
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.embeddings import embed_region, load_index, read_info
from torchgeo_simclr.embeddings.index import INFO_KEY
from torchgeo_simclr.evaluate import evaluate_map
from torchgeo_simclr.inference import MapResult, predict_map
from torchgeo_simclr.models.checkpoint import (
    CHECKPOINT_KEY,
    DataMetadata,
    load_model,
    training_labels,
)
from torchgeo_simclr.tasks import DistillTask, FineTuneTask, SimCLRv2Task

#: Side of the fake scene, pixels.
SIDE = 128

#: Training patch side of the tiny checkpoints, pixels.
PATCH = 32

#: Library versions every output records, beside ``commit``.
VERSION_KEYS = {
    "torchgeo_simclr",
    "torch",
    "torchgeo",
    "lightning",
    "timm",
    "kornia",
    "rasterio",
    "gdal",
    "numpy",
    "python",
}

#: Keys an index written before they were recorded lacks.
NEW_INDEX_KEYS = ("start", "end", "mask_clouds", "cloud_buffer_m", "software")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_head() -> str | None:
    """HEAD of the checkout this package runs from, or None outside one."""
    folder = Path(torchgeo_simclr.__file__).resolve().parent.parent
    if shutil.which("git") is None or not (folder / ".git").exists():
        return None
    done = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def assert_software(record: Any) -> None:
    """*record* names this process's software versions and source commit."""
    assert isinstance(record, dict)
    assert set(record) == VERSION_KEYS | {"commit"}
    assert record["torchgeo_simclr"] == torchgeo_simclr.__version__
    assert record["torch"] == torch.__version__
    assert record["gdal"] == rasterio.__gdal_version__
    assert record["numpy"] == np.__version__
    head = git_head()
    if head is None:
        assert record["commit"] is None
    else:
        assert re.fullmatch(
            rf"{head}( \(\+ uncommitted changes\))?", record["commit"]
        ), record["commit"]


def scene_metadata(image: Path) -> DataMetadata:
    """Bands and statistics of a fake scene, as a checkpoint records them."""
    with rasterio.open(image) as src:
        pixels = src.read().reshape(src.count, -1).astype(np.float64)
    return DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(pixels.mean(axis=1).tolist()),
        std=tuple(pixels.std(axis=1).tolist()),
        patch_size=PATCH,
    )


def lightning_save(task: LightningModule, path: Path) -> Path:
    """Save *task* through a Trainer, as a fit's ModelCheckpoint would."""
    trainer = quiet_trainer(1)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 128 x 128 px scene of 2023-07-15; returns the imagery folder."""
    root = tmp_path_factory.mktemp("scene")
    fake_s2_multiband(root / "sentinel2", size=SIDE)
    return root


@pytest.fixture(scope="module")
def segmentation(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-pixel checkpoint (random weights) for the scene's 12 bands."""
    image = next((scene / "sentinel2").glob("*.tif"))
    folder = tmp_path_factory.mktemp("checkpoints")
    return save_checkpoint(folder / "last.ckpt", "segmentation", scene_metadata(image))


# --------------------------------------------------------------------------
# Checkpoints


def test_checkpoints_record_software_seed_and_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reviewer asks which code and seed made a checkpoint, and which
    # checkpoint it was fine-tuned (or distilled) from: the path alone may
    # since hold another file.
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # put back after the test
    seed_everything(7)
    simclr = lightning_save(
        SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16),
        tmp_path / "simclr.ckpt",
    )
    finetuned = lightning_save(
        FineTuneTask(checkpoint=str(simclr), problem="classification"),
        tmp_path / "finetune.ckpt",
    )
    distilled = lightning_save(
        DistillTask(teacher=str(finetuned)), tmp_path / "distill.ckpt"
    )
    metas = {}
    for path in (simclr, finetuned, distilled):
        # Lightning's CLI (--ckpt_path) loads checkpoints this way.
        checkpoint = torch.load(path, weights_only=True)
        meta = checkpoint[CHECKPOINT_KEY]
        assert meta["seed"] == 7
        assert_software(meta["software"])
        metas[path.stem] = meta
    assert metas["finetune"]["pretrained_from"] == str(simclr)
    assert metas["finetune"]["pretrained_from_sha256"] == sha256(simclr)
    assert metas["distill"]["teacher"] == str(finetuned)
    assert metas["distill"]["teacher_sha256"] == sha256(finetuned)
    # Maps name them too (their JSON summary's model entry, built from this).
    assert load_model(finetuned).built_from == {
        "pretrained_from": str(simclr),
        "pretrained_from_sha256": sha256(simclr),
    }
    assert load_model(distilled).built_from == {
        "teacher": str(finetuned),
        "teacher_sha256": sha256(finetuned),
    }


def test_a_checkpoint_and_its_map_carry_the_models_validation_scores(
    tmp_path: Path, scene: Path
) -> None:
    # Two checkpoints gave 12,128 and 8,114 irrigated ha for one bbox (val F1
    # 0.90 and 0.55), and nothing in either map said which to trust.
    torch.manual_seed(0)
    task = FineTuneTask(model="resnet18", in_channels=12, problem="segmentation")
    image = torch.randn(4, 12, 32, 32)
    mask = torch.zeros(4, 32, 32, dtype=torch.long)
    mask[:, :16] = 1
    data = [{"image": image[i], "mask": mask[i]} for i in range(4)]
    loader = DataLoader(data, batch_size=4)
    trainer = quiet_trainer(2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    task.data_metadata = scene_metadata(next((scene / "sentinel2").glob("*.tif")))
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    scores = torch.load(path, weights_only=True)[CHECKPOINT_KEY]["val_scores"]
    assert scores["epoch"] == 1
    assert scores["step"] == 2
    assert scores["val_labelled"] == 4 * 32 * 32  # pixels of a per-pixel model
    for name in ("val_f1", "val_precision", "val_recall", "val_auroc"):
        assert scores[name] == pytest.approx(float(trainer.callback_metrics[name]))
    assert load_model(path).val_scores == scores
    result = predict_map(
        path, scene, tmp_path / "map.tif", device="cpu", progress=False
    )
    assert result.summary["model"]["val_scores"] == scores
    with rasterio.open(result.files.classes) as src:
        assert float(src.tags()["val_f1"]) == pytest.approx(scores["val_f1"], 1e-3)


def test_a_resumed_fine_tune_keeps_its_parents_hash(tmp_path: Path) -> None:
    # The parent was hashed when a checkpoint was saved: a resumed run whose
    # SimCLR file had been replaced since recorded the new file's hash.
    simclr = lightning_save(
        SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16),
        tmp_path / "simclr.ckpt",
    )
    first = lightning_save(
        FineTuneTask(checkpoint=str(simclr), problem="classification"),
        tmp_path / "first.ckpt",
    )
    original = sha256(simclr)
    lightning_save(  # another encoder at the same path
        SimCLRv2Task(model="resnet18", in_channels=12, output_dim=32), simclr
    )
    assert sha256(simclr) != original
    task = FineTuneTask(checkpoint=str(simclr), problem="classification")
    task.on_load_checkpoint(torch.load(first, weights_only=True))
    resumed = lightning_save(task, tmp_path / "resumed.ckpt")
    meta = torch.load(resumed, weights_only=True)[CHECKPOINT_KEY]
    assert meta["pretrained_from_sha256"] == original


def test_a_checkpoint_without_a_seed_or_parent_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    supervised = lightning_save(
        FineTuneTask(problem="classification", in_channels=12),
        tmp_path / "supervised.ckpt",
    )
    meta = torch.load(supervised, weights_only=True)[CHECKPOINT_KEY]
    assert meta["seed"] is None
    assert meta["pretrained_from"] is None
    assert meta["pretrained_from_sha256"] is None
    assert_software(meta["software"])


# --------------------------------------------------------------------------
# Maps


@pytest.fixture(scope="module")
def irrigation_map(
    scene: Path,
    segmentation: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> MapResult:
    """The scene mapped with 64 px windows overlapping by 16, root given relative."""
    out = tmp_path_factory.mktemp("map") / "map.tif"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(scene.parent)
        return predict_map(
            segmentation,
            scene.name,
            out,
            patch_size=64,
            overlap=16,
            device="cpu",
            progress=False,
        )


def test_map_summary_names_window_overlap_root_and_software(
    irrigation_map: MapResult, scene: Path
) -> None:
    # Two maps that differ only in --overlap had summaries that differed only
    # in their numbers; two scenes of one date had the same summary.
    summary = json.loads(irrigation_map.files.summary.read_text())
    assert summary == irrigation_map.summary
    assert (summary["window_px"], summary["overlap_px"]) == (64, 16)
    assert summary["root"] == str(scene.resolve())
    assert_software(summary["software"])
    # A network trained from scratch (the supervised baseline) has no parent.
    assert summary["model"]["built_from"] == {
        "pretrained_from": None,
        "pretrained_from_sha256": None,
    }


def test_map_tags_and_polygons_name_what_made_them(
    irrigation_map: MapResult, scene: Path, segmentation: Path
) -> None:
    for raster in (irrigation_map.files.classes, irrigation_map.files.probability):
        with rasterio.open(raster) as src:
            tags = src.tags()
        assert tags["software"] == f"torchgeo-simclr {torchgeo_simclr.__version__}"
        assert (tags["window_px"], tags["overlap_px"]) == ("64", "16")
        assert tags["root"] == str(scene.resolve())
        commit = irrigation_map.summary["software"]["commit"]
        assert tags.get("software_commit") == commit
    polygons = gpd.read_file(irrigation_map.files.polygons, layer="irrigated")
    assert len(polygons) > 0
    # Every quickstart checkpoint is called last.ckpt: the name told nothing.
    assert set(polygons["checkpoint"]) == {str(segmentation.resolve())}


# --------------------------------------------------------------------------
# Embedding index


def test_index_records_days_cloud_masking_and_software(
    scene: Path, segmentation: Path, tmp_path: Path
) -> None:
    index = embed_region(
        segmentation,
        scene,
        tmp_path / "index.parquet",
        start="2023-07-01",
        end="2023-07-31",
        cloud_buffer=20,
        progress=False,
    )
    info = read_info(index.path)
    assert (info.start, info.end) == ("2023-07-01", "2023-07-31")
    assert (info.mask_clouds, info.cloud_buffer_m) == (True, 20.0)
    assert info.software is not None
    assert_software(info.software)
    unmasked = embed_region(
        segmentation,
        scene,
        tmp_path / "unmasked.parquet",
        mask_clouds=False,
        progress=False,
    )
    info = read_info(unmasked.path)
    assert (info.start, info.end, info.mask_clouds) == (None, None, False)
    assert (info.bbox, info.bbox_crs) == (None, None)  # all imagery under root


def test_index_records_its_bbox(
    scene: Path, segmentation: Path, tmp_path: Path
) -> None:
    # Which region an index covers, without reading its footprints.
    with rasterio.open(next(scene.rglob("*.tif"))) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    bbox = (left, bottom, (left + right) / 2, top)
    index = embed_region(
        segmentation,
        scene,
        tmp_path / "half.parquet",
        bbox=bbox,
        bbox_crs=crs,
        progress=False,
    )
    info = read_info(index.path)
    assert (info.bbox, info.bbox_crs) == (bbox, crs)


def test_an_index_written_before_the_new_fields_still_loads(
    scene: Path, segmentation: Path, tmp_path: Path
) -> None:
    index = embed_region(
        segmentation, scene, tmp_path / "index.parquet", progress=False
    )
    # Rewrite its metadata as an index of an earlier version holds it.
    table = pq.read_table(index.path)
    metadata = dict(table.schema.metadata)
    info = json.loads(metadata[INFO_KEY])
    for key in NEW_INDEX_KEYS:
        del info[key]
    metadata[INFO_KEY] = json.dumps(info).encode()
    old = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), old)
    loaded = read_info(old)
    assert all(getattr(loaded, key) is None for key in NEW_INDEX_KEYS)
    assert loaded.checkpoint == str(segmentation.resolve())
    assert len(load_index(old).matrix) == index.rows


# --------------------------------------------------------------------------
# evaluate --scores


def test_scores_name_the_label_file_absolute_with_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A label file replaced at the same path (a later DWR release) could not
    # be told apart, and a relative path named nothing once moved.
    map_path = write_map(tmp_path / "map.tif", base_map())
    labels = write_labels(tmp_path / "labels.gpkg")
    monkeypatch.chdir(tmp_path)
    scores = tmp_path / "scores.json"
    evaluate_map(map_path, "labels.gpkg", progress=False, scores=scores)
    record = json.loads(scores.read_text())
    assert record["labels"] == str(labels)
    assert os.path.isabs(record["labels"])
    assert record["labels_sha256"] == sha256(labels)
    assert record["torchgeo_simclr_version"] == torchgeo_simclr.__version__
    assert_software(record["software"])


def test_scores_of_a_label_folder_record_no_hash(tmp_path: Path) -> None:
    map_path = write_map(tmp_path / "map.tif", base_map())
    folder = tmp_path / "labels"
    folder.mkdir()
    write_labels(folder / "labels.gpkg")
    scores = tmp_path / "scores.json"
    evaluate_map(map_path, folder, progress=False, scores=scores)
    record = json.loads(scores.read_text())
    assert record["labels"] == str(folder)
    assert record["labels_sha256"] is None


# --------------------------------------------------------------------------
# Scoring a map against its own training labels


def test_a_score_against_the_training_labels_says_so(tmp_path: Path) -> None:
    # A curator's map scored F1 0.996 against the labels it trained on and
    # 0.709 against DWR's, with no word that the first was no test.
    labels = write_labels(tmp_path / "mine.gpkg")
    datamodule = SimpleNamespace(
        label_fraction=1.0, label_seed=0, n_labels=3, labels_path=labels
    )
    record = training_labels(datamodule)
    assert record is not None
    assert record["labels_sha256"] == sha256(labels)
    trained = write_map(tmp_path / "map.tif", base_map())
    with rasterio.open(trained, "r+") as dst:
        dst.update_tags(training_labels_sha256=record["labels_sha256"])
    with pytest.warns(
        UserWarning,
        match=r"mine.gpkg' is the label file that trained "
        r"the model of map .* score it against labels it did not",
    ):
        evaluate_map(trained, labels)
    other = write_labels(tmp_path / "other.gpkg", crs="EPSG:4326")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_map(trained, other)


def test_a_map_that_does_not_record_its_training_labels_says_it_cannot_tell(
    tmp_path: Path,
) -> None:
    # Maps of earlier checkpoints were scored in silence, as if held out.
    labels = write_labels(tmp_path / "labels.gpkg")
    untagged = write_map(tmp_path / "map.tif", base_map(), trained_on=None)
    with pytest.warns(
        UserWarning,
        match=r"map.tif' does not record the label file its model was trained "
        r"on .* cannot be told; score a --bbox",
    ):
        evaluate_map(untagged, labels)
