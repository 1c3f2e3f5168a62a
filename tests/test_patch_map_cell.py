"""A per-patch map says the cell one value stands for, not only its 10 m grid."""

import json
from pathlib import Path

import pytest
import rasterio
from conftest import save_checkpoint, scene_stats

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.inference import predict_map, writer
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.models.classifier import Problem
from torchgeo_simclr.sample import SampleScene, make_sample_scene

#: Training patch side recorded in the tiny checkpoints, pixels.
PATCH = 32


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SampleScene:
    """A 128 x 128 px sample scene of 10 m pixels."""
    return make_sample_scene(tmp_path_factory.mktemp("scene"), size=128, tiles=1)


@pytest.fixture(scope="module")
def checkpoints(
    scene: SampleScene, tmp_path_factory: pytest.TempPathFactory
) -> dict[Problem, Path]:
    """A classification and a segmentation checkpoint (random weights)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    mean, std = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=PATCH,
    )
    problems: tuple[Problem, ...] = ("classification", "segmentation")
    return {
        problem: save_checkpoint(folder / f"{problem}.ckpt", problem, metadata)
        for problem in problems
    }


def tags(path: Path) -> dict[str, str]:
    with rasterio.open(path) as src:
        return dict(src.tags())


def test_a_per_patch_map_says_its_cell_in_the_summary_tags_and_output(
    scene: SampleScene,
    checkpoints: dict[Problem, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Windows of the 32 px training patch overlap by half: one value per
    # 16 px = 160 m cell, on the imagery's 10 m grid.
    out = tmp_path / "map.tif"
    capsys.readouterr()
    main(
        [
            "predict",
            "--checkpoint",
            str(checkpoints["classification"]),
            "--root",
            str(scene.root),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out.splitlines()
    assert (
        "Per-patch model: one value per 160 m x 160 m cell, each from a 320 m x 320 m "
        "window, on the 10 m grid."
    ) in printed
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["pixel_size"] == 10.0  # the grid stays the imagery's
    assert summary["detail_size"] == 160.0
    assert summary["crs_units"] == "metre"
    assert summary["model"]["problem"] == "classification"
    for raster in (out, tmp_path / "map_probability.tif"):
        found = tags(raster)
        assert (found["detail_size"], found["problem"]) == ("160", "classification")
        with rasterio.open(raster) as src:
            assert src.res == (10.0, 10.0)


def test_the_cell_follows_the_window_stride(
    scene: SampleScene, checkpoints: dict[Problem, Path], tmp_path: Path
) -> None:
    # 32 px windows overlapping by 8 px step 24 px: 240 m cells.
    result = predict_map(
        checkpoints["classification"],
        scene.root,
        tmp_path / "map.tif",
        overlap=8,
        device="cpu",
        progress=False,
    )
    assert result.summary["detail_size"] == 240.0
    assert tags(result.files.classes)["detail_size"] == "240"


def test_a_segmentation_map_has_the_detail_of_its_pixels(
    scene: SampleScene,
    checkpoints: dict[Problem, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    result = predict_map(
        checkpoints["segmentation"],
        scene.root,
        tmp_path / "map.tif",
        patch_size=64,
        device="cpu",
        progress=False,
    )
    assert "Per-patch" not in capsys.readouterr().out
    summary = json.loads(result.files.summary.read_text())
    assert summary["detail_size"] == summary["pixel_size"] == 10.0
    assert tags(result.files.probability)["detail_size"] == "10"


def test_the_note_names_the_unit_of_a_grid_not_in_metres() -> None:
    assert writer.detail_note(0.0024, 0.0048, 0.0001, "degree") == (
        "Per-patch model: one value per 0.0024 degree x 0.0024 degree cell, each "
        "from a 0.0048 degree x 0.0048 degree window, on the 0.0001 degree grid."
    )
