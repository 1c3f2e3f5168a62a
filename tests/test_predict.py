"""Irrigation maps: output grid, blending, predict_map end to end, errors, CLIs."""

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.transform
import shapely
import torch
from conftest import (
    FAKE_ORIGIN,
    FAKE_PRODUCT,
    FAKE_SIZE,
    GPKG_1_2,
    LABELS,
    cli_error_line,
    fake_dwr_gpkg,
    fake_s2_multiband,
    fake_s2_per_band,
    fake_s2_with_scl,
    gpkg_version,
    save_checkpoint,
    scene_stats,
    torchgeo_cli,
)
from PIL import Image
from pyproj import CRS, Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window, from_bounds

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import IRRIGATED, MAP_NODATA, S2_BANDS
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.embeddings.index import checkpoint_id
from torchgeo_simclr.inference import MapResult, geotiff, predict_map
from torchgeo_simclr.inference import writer as writer_module
from torchgeo_simclr.inference.blend import StripBlender, WeightKind, blend_weights
from torchgeo_simclr.inference.grid import OutputGrid, output_grid
from torchgeo_simclr.inference.normalise import fill_nearest, has_data, normalise
from torchgeo_simclr.inference.polygons import irrigated_polygons, with_provenance
from torchgeo_simclr.inference.predict import default_batch_size
from torchgeo_simclr.inference.quicklook import (
    MIN_PANEL_PX,
    quicklook,
    quicklook_figure,
)
from torchgeo_simclr.inference.styles import polygon_style
from torchgeo_simclr.inference.writer import IrrigationMapWriter, MapFiles
from torchgeo_simclr.interrupts import Interrupted, Terminated, terminated
from torchgeo_simclr.models.checkpoint import DataMetadata, load_model
from torchgeo_simclr.models.classifier import Problem
from torchgeo_simclr.outputs import partial_path
from torchgeo_simclr.sample import SampleScene, make_sample_scene
from torchgeo_simclr.tasks.prediction import MapPredictionTask

CONF = Path(__file__).resolve().parents[1] / "conf"

#: Side of the sample scene, 10 m pixels: above one 256-px COG tile, so the
#: maps get overviews, and four 256-px segmentation windows.
SCENE = 320

#: Training patch side recorded in the tiny checkpoints.
PATCH = 32

#: Hectares of one 10 m pixel.
PIXEL_HA = 0.01

#: Sensing date of the sample scene (in its product names).
DATE = "2023-07-15"

PROBLEMS: tuple[Problem, ...] = ("segmentation", "classification")

#: Fields of the irrigated regions, then those saying what made the map.
REGION_FIELDS = ("area_ha", "mean_prob")
PROVENANCE_FIELDS = (
    "acq_from",
    "acq_to",
    "checkpoint",
    "ckpt_id",
    "threshold",
)

#: Suffixes of the files beside PATH.tif.
COMPANIONS = (
    "_probability.tif",
    ".qml",
    "_probability.qml",
    ".gpkg",
    ".json",
)


# --------------------------------------------------------------------------
# Shared data: a small sample scene, tiny checkpoints and their maps.


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SampleScene:
    """A 320 x 320 px sample scene in two GeoTIFFs (west and east)."""
    return make_sample_scene(tmp_path_factory.mktemp("scene"), size=SCENE, tiles=2)


def median_patch_probability(
    path: Path, scene: SampleScene, mean: torch.Tensor, std: torch.Tensor
) -> float:
    """Median probability of a classification model over the scene's patches."""
    with rasterio.open(scene.image_paths[0]) as src:
        image = torch.from_numpy(src.read().astype(np.float32))
    patches = image.unfold(1, PATCH, PATCH).unfold(2, PATCH, PATCH)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, len(S2_BANDS), PATCH, PATCH)
    x = (patches - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    with torch.no_grad():
        probability = torch.sigmoid(load_model(path).model(x))
    return float(probability.median())


@pytest.fixture(scope="module")
def checkpoints(
    scene: SampleScene, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A segmentation and a classification checkpoint for the scene's 12 bands.

    Random weights (as in test_distill.py): mapping needs a valid fine-tuned
    checkpoint, not a good one. The classification one records the threshold
    that splits the scene's patches in half (as a tuned threshold would), so
    its map has both classes and the model's own threshold (not 0.5) must be
    the default.
    """
    folder = tmp_path_factory.mktemp("checkpoints")
    mean, std = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=PATCH,
        imagery_dates=("2022-07-16",),
    )
    paths = {
        problem: save_checkpoint(folder / f"{problem}.ckpt", problem, metadata)
        for problem in PROBLEMS
    }
    classification = paths["classification"]
    stats = (torch.tensor(mean).float(), torch.tensor(std).float())
    threshold = round(median_patch_probability(classification, scene, *stats), 4)
    save_checkpoint(classification, "classification", metadata, threshold)
    return paths


def run(checkpoint: Path, root: Path, out: Path, **kwargs: Any) -> MapResult:
    """predict_map on the CPU without a progress bar."""
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("progress", False)
    return predict_map(checkpoint, root, out, **kwargs)


@pytest.fixture(scope="module")
def maps(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, MapResult]:
    """The map of the whole scene by each checkpoint, default settings."""
    return {
        problem: run(
            checkpoints[problem],
            scene.root,
            tmp_path_factory.mktemp(problem) / "map.tif",
        )
        for problem in PROBLEMS
    }


def read(path: Path) -> npt.NDArray[Any]:
    with rasterio.open(path) as src:
        return src.read(1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    """Temporary files a run may leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def imagery(scene: SampleScene) -> CentralValleyS2:
    return CentralValleyS2(scene.root / "sentinel2")


def imagery_origin(scene: SampleScene) -> tuple[float, float]:
    """Top-left corner of the scene (its west tile), metres."""
    with rasterio.open(scene.image_paths[0]) as src:
        return src.transform.c, src.transform.f


def window_grid(width: int, height: int) -> OutputGrid:
    """A grid of *width* x *height* 10 m pixels."""
    transform = from_origin(0, 0, 10, 10)
    return OutputGrid(CRS.from_epsg(32610), transform, width, height)


def assert_on_imagery_grid(
    transform: Any, origin: tuple[float, float], res: float = 10.0
) -> None:
    assert transform.a == res
    assert transform.e == -res
    assert transform.b == transform.d == 0
    cols = (transform.c - origin[0]) / res
    rows = (origin[1] - transform.f) / res
    assert cols == round(cols), "map columns are not imagery columns"
    assert rows == round(rows), "map rows are not imagery rows"


# --------------------------------------------------------------------------
# 1. The output grid.


def test_lonlat_bbox_snaps_to_imagery_pixels(scene: SampleScene) -> None:
    data = imagery(scene)
    left, top = imagery_origin(scene)
    to_lonlat = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    inner = (left + 333.0, top - 2999.0, left + 2222.0, top - 777.0)
    bbox = to_lonlat.transform_bounds(*inner)
    grid = output_grid(data, bbox)

    assert grid.crs.to_epsg() == 32610
    assert grid.res == 10.0
    assert_on_imagery_grid(grid.transform, (left, top))
    # The grid holds the bbox (reprojected) and is at most a pixel wider.
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True)
    wanted = to_utm.transform_bounds(*bbox)
    xmin, ymin, xmax, ymax = grid.bounds
    assert xmin <= wanted[0] < xmin + 10
    assert ymin <= wanted[1] < ymin + 10
    assert xmax - 10 < wanted[2] <= xmax
    assert ymax - 10 < wanted[3] <= ymax


def test_utm_bbox_cutting_pixels_is_widened_to_whole_pixels(
    scene: SampleScene,
) -> None:
    left, top = imagery_origin(scene)
    bbox = (left + 105.0, top - 3145.0, left + 1005.0, top - 1195.0)
    grid = output_grid(imagery(scene), bbox, "EPSG:32610")
    # Columns 10.5 .. 100.5 and rows 119.5 .. 314.5 -> 10..101 and 119..315.
    assert grid.transform.c == left + 100.0
    assert grid.transform.f == top - 1190.0
    assert (grid.width, grid.height) == (91, 196)
    assert_on_imagery_grid(grid.transform, (left, top))


def test_bbox_reaching_past_the_imagery_is_cut_to_it(scene: SampleScene) -> None:
    left, top = imagery_origin(scene)
    bbox = (left - 5000.0, top - 1000.0, left + 500.0, top + 5000.0)
    with pytest.warns(UserWarning, match="reaches past the imagery") as record:
        grid = output_grid(imagery(scene), bbox, "EPSG:32610")
    assert f"{[left, top - 1000.0, left + 500.0, top]}" in str(record[0].message)
    # 500 m x 1000 m of the 5500 m x 6000 m asked for.
    assert "about 2% of the bbox; the map's totals cover that part only" in str(
        record[0].message
    )
    assert grid.bounds == (left, top - 1000.0, left + 500.0, top)
    assert output_grid(imagery(scene)).bounds == (
        left,
        top - SCENE * 10.0,
        left + SCENE * 10.0,
        top,
    )


@pytest.mark.parametrize(
    ("width", "height", "size", "overlap"),
    [
        (320, 320, 256, 64),
        (91, 196, 32, 16),
        (1000, 37, 64, 0),
        (257, 513, 256, 255),
        (20, 10, 32, 8),  # smaller than one window
        (32, 32, 32, 16),
    ],
)
def test_windows_cover_every_pixel(
    width: int, height: int, size: int, overlap: int
) -> None:
    windows = window_grid(width, height).windows(size, overlap)
    covered = np.zeros((height, width), dtype=int)
    for window in windows:
        assert window.width == window.height == size
        for offset, length in ((window.row_off, height), (window.col_off, width)):
            if length >= size:
                assert 0 <= offset <= length - size
            else:  # One window, centred on the side shorter than it.
                assert offset == -((size - length) // 2)
        covered[
            max(window.row_off, 0) : window.row_off + size,
            max(window.col_off, 0) : window.col_off + size,
        ] += 1
    assert covered.min() >= 1
    rows = [w.row_off for w in windows]
    assert rows == sorted(rows)
    # Neighbours step by size - overlap (the last row and column may step less).
    starts = sorted({w.col_off for w in windows})
    assert all(0 < b - a <= size - overlap for a, b in itertools.pairwise(starts))


def test_bbox_missing_the_imagery_names_both_extents(scene: SampleScene) -> None:
    with pytest.raises(ValueError, match=r"does not overlap the imagery") as info:
        output_grid(imagery(scene), (-100.0, 40.0, -99.5, 40.5))
    message = str(info.value)
    assert "[-100.0, 40.0, -99.5, 40.5]" in message
    left, top = imagery_origin(scene)
    assert f"{left}" in message
    assert f"{top}" in message
    assert "-120.7" in message  # the imagery's longitude
    assert "\n" not in message


@pytest.mark.parametrize(
    "bbox",
    [
        (-120.7, 37.1, -120.8, 37.0),  # inverted
        (-120.8, 37.1, -120.7, 37.0),  # ymin > ymax
        (-120.8, 37.0, -120.7),  # three numbers
    ],
)
def test_malformed_bbox_is_refused(scene: SampleScene, bbox: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"xmin, ymin, xmax, ymax\) with min < max"):
        output_grid(imagery(scene), bbox)


def test_swapped_lonlat_bbox_gets_the_swapped_suggestion(scene: SampleScene) -> None:
    with pytest.raises(ValueError, match="look swapped") as info:
        output_grid(imagery(scene), (37.0, -120.8, 37.1, -120.7))
    assert str(info.value).endswith("pass --bbox -120.8 37 -120.7 37.1.")
    # The suggestion is the bbox the user meant: it lies on the imagery.
    assert output_grid(imagery(scene), (-120.8, 37.05, -120.7, 37.1)).width > 1


def test_utm_bbox_without_its_crs_gets_the_bbox_crs_suggestion(
    scene: SampleScene,
) -> None:
    left, top = imagery_origin(scene)
    bbox = (left + 100, top - 900, left + 900, top - 100)
    with pytest.raises(ValueError, match="look like projected coordinates") as info:
        output_grid(imagery(scene), bbox)
    assert f"--bbox {left + 100:.10g} {top - 900:.10g}" in str(info.value)
    assert str(info.value).endswith(
        "--bbox-crs EPSG:32610 if they are in the imagery's CRS."
    )


# --------------------------------------------------------------------------
# 2. Blending overlapping windows.


def blend(
    blender: StripBlender,
    windows: list[Window],
    values: list[npt.NDArray[np.floating]],
    valid: list[npt.NDArray[np.bool_]] | None = None,
    watch: list[int] | None = None,
) -> npt.NDArray[np.float32]:
    """Feed windows in order and assemble the released strips into a map."""
    out = np.full((blender.height, blender.width), -999.0, dtype=np.float32)
    released: list[tuple[int, int]] = []

    def take(first: int, rows: npt.NDArray[np.float32]) -> None:
        assert rows.shape[1] == blender.width
        released.append((first, len(rows)))
        out[first : first + len(rows)] = rows

    for i, window in enumerate(windows):
        ok = np.ones(values[i].shape, dtype=bool) if valid is None else valid[i]
        for first, rows in blender.add(window, values[i], ok):
            take(first, rows)
        if watch is not None:
            watch.append(blender._sum.shape[0])
    for first, rows in blender.finish():
        take(first, rows)
    # Strips come in order, each row exactly once.
    starts = [first for first, _ in released]
    assert starts[0] == 0
    assert all(a + n == b for (a, n), b in zip(released, starts[1:], strict=False))
    assert sum(n for _, n in released) == blender.height
    return out


@pytest.mark.parametrize(("kind", "overlap"), [("taper", 8), ("centre", 16)])
def test_constant_predictions_blend_without_seams(
    kind: WeightKind, overlap: int
) -> None:
    size, width, height = 32, 100, 90
    windows = window_grid(width, height).windows(size, overlap)
    blender = StripBlender(width, height, blend_weights(size, overlap, kind))
    constant = np.float32(0.37)
    out = blend(blender, windows, [np.full((size, size), constant)] * len(windows))
    assert np.abs(out - constant).max() < 1e-6


def ramp(rows: Any, cols: Any) -> npt.NDArray[np.float64]:
    return 0.2 + 0.001 * np.asarray(rows) + 0.0005 * np.asarray(cols)


@pytest.mark.parametrize(("kind", "overlap"), [("taper", 16), ("centre", 16)])
def test_smooth_field_is_reproduced_where_windows_overlap(
    kind: WeightKind, overlap: int
) -> None:
    size, width, height = 48, 150, 130
    windows = window_grid(width, height).windows(size, overlap)
    values = []
    count = np.zeros((height, width), dtype=int)
    for w in windows:
        rows, cols = np.mgrid[
            w.row_off : w.row_off + size, w.col_off : w.col_off + size
        ]
        values.append(ramp(rows, cols))
        count[w.row_off : w.row_off + size, w.col_off : w.col_off + size] += 1
    blender = StripBlender(width, height, blend_weights(size, overlap, kind))
    out = blend(blender, windows, values)
    expected = ramp(*np.mgrid[0:height, 0:width]).astype(np.float32)
    assert (count > 1).sum() > 0.3 * count.size
    np.testing.assert_allclose(out[count > 1], expected[count > 1], rtol=1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def reference_blend(
    width: int,
    height: int,
    weights: npt.NDArray[np.float32],
    windows: list[Window],
    values: list[npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """The whole map blended at once in memory."""
    total = np.zeros((height, width))
    weight = np.zeros((height, width))
    for w, v in zip(windows, values, strict=True):
        # The part of the window on the grid, in window pixels.
        r0, c0 = max(-w.row_off, 0), max(-w.col_off, 0)
        r1 = min(w.height, height - w.row_off)
        c1 = min(w.width, width - w.col_off)
        rows = slice(w.row_off + r0, w.row_off + r1)
        cols = slice(w.col_off + c0, w.col_off + c1)
        total[rows, cols] += weights[r0:r1, c0:c1] * v[r0:r1, c0:c1]
        weight[rows, cols] += weights[r0:r1, c0:c1]
    return total / weight


@pytest.mark.parametrize(
    ("width", "height", "size", "overlap", "kind"),
    [
        (130, 170, 32, 8, "taper"),
        (130, 170, 64, 32, "taper"),
        (130, 170, 32, 16, "centre"),
        (20, 25, 32, 8, "taper"),  # one window larger than the grid
    ],
)
def test_strip_blending_equals_blending_the_whole_map(
    width: int, height: int, size: int, overlap: int, kind: WeightKind
) -> None:
    rng = np.random.default_rng(0)
    windows = window_grid(width, height).windows(size, overlap)
    values = [rng.random((size, size)) for _ in windows]
    weights = blend_weights(size, overlap, kind)
    out = blend(StripBlender(width, height, weights), windows, values)
    expected = reference_blend(width, height, weights, windows, values)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_pixels_without_valid_input_come_out_nan() -> None:
    size, overlap, width, height = 32, 8, 80, 80
    windows = window_grid(width, height).windows(size, overlap)
    hole = np.zeros((height, width), dtype=bool)
    hole[30:45, 10:60] = True
    # Row 5, cols 0..3 are valid only in the first window (value 0.9).
    once = np.zeros((height, width), dtype=bool)
    once[5, :4] = True
    values, valid = [], []
    for i, w in enumerate(windows):
        rows = slice(w.row_off, w.row_off + size)
        cols = slice(w.col_off, w.col_off + size)
        values.append(np.full((size, size), 0.9 if i == 0 else 0.1))
        ok = ~hole[rows, cols]
        if i > 0:
            ok = ok & ~once[rows, cols]
        valid.append(ok)
    blender = StripBlender(width, height, blend_weights(size, overlap, "taper"))
    out = blend(blender, windows, values, valid)
    assert np.isnan(out[hole]).all()
    assert np.isfinite(out[~hole]).all()
    np.testing.assert_allclose(out[once], 0.9, rtol=1e-6)


def test_blender_memory_does_not_grow_with_the_map_height() -> None:
    size, overlap, width, height = 64, 16, 96, 3000
    windows = window_grid(width, height).windows(size, overlap)
    blender = StripBlender(width, height, blend_weights(size, overlap, "taper"))
    held: list[int] = []
    out = blend(
        blender, windows, [np.full((size, size), 0.5)] * len(windows), None, held
    )
    assert max(held) <= 2 * size
    assert blender._sum.shape[0] == 0
    assert np.all(out == 0.5)


def test_windows_out_of_row_order_are_refused() -> None:
    blender = StripBlender(64, 64, blend_weights(32, 8))
    ones = np.ones((32, 32))
    valid = ones.astype(bool)
    list(blender.add(Window(0, 0, 32, 32), ones, valid))
    released = list(blender.add(Window(0, 24, 32, 32), ones, valid))
    assert [(first, len(rows)) for first, rows in released] == [(0, 24)]
    # Rows 0..23 are written out: a window over them comes too late.
    with pytest.raises(ValueError, match=r"row by row; got row 16 after 24"):
        list(blender.add(Window(0, 16, 32, 32), ones, valid))


def test_nodata_pixels_are_those_missing_any_band() -> None:
    image = torch.rand(4, 3, 5, 6).mul(9).add(1).round()
    image[0, :, 1, 2] = 0
    image[1, :, :, 0] = 0
    image[2, 0, 3, 3] = 0  # one band missing: a resampled band's edge
    valid = has_data(image, dim=1)
    assert torch.equal(valid, image.ne(0).all(dim=1))
    assert not valid[0, 1, 2]
    assert not valid[1, :, 0].any()
    assert not valid[2, 3, 3]
    assert valid.sum() == 4 * 5 * 6 - 1 - 5 - 1
    mean = torch.tensor([1.0, 2.0, 3.0]).view(1, -1, 1, 1)
    std = torch.tensor([2.0, 4.0, 8.0]).view(1, -1, 1, 1)
    x, same = normalise(image, mean, std)
    assert torch.equal(same, valid)
    expected = torch.where(valid.unsqueeze(1), (image - mean) / std, 0.0)
    torch.testing.assert_close(x, expected)


def test_holes_get_the_bands_of_their_nearest_pixel_with_data() -> None:
    image = torch.arange(2 * 2 * 4 * 5, dtype=torch.float32).view(2, 2, 4, 5) + 1
    valid = torch.ones(2, 4, 5, dtype=torch.bool)
    valid[0, :, 3:] = False  # the two right columns: nearest is column 2
    valid[1] = False  # no data at all: left as it is
    filled = fill_nearest(image, valid)
    torch.testing.assert_close(filled[0, :, :, :3], image[0, :, :, :3])
    for col in (3, 4):
        torch.testing.assert_close(filled[0, :, :, col], image[0, :, :, 2])
    torch.testing.assert_close(filled[1], image[1])
    assert fill_nearest(image[:1, :, :, :3], valid[:1, :, :3]) is not None
    mean = torch.tensor([1.0, 2.0]).view(1, -1, 1, 1)
    std = torch.tensor([2.0, 4.0]).view(1, -1, 1, 1)
    x, same = normalise(image, mean, std, valid, fill=True)
    assert torch.equal(same, valid)
    torch.testing.assert_close(x[0], ((filled - mean) / std)[0])


@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_hole_in_a_window_is_filled_from_its_edge_before_predicting(
    checkpoints: dict[str, Path], problem: str
) -> None:
    """Filled with the training means, a masked cloud read as a field of its
    own and pushed the pixels around it towards irrigated (538 of 553 that
    changed class around a 100 px hole in the sample scene)."""
    task = MapPredictionTask(str(checkpoints[problem])).eval()
    size = task.data.patch_size
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(1, len(task.data.bands), size, size, generator=generator)
    image = image.mul(5000).add(1)
    # A stripe two columns wide, top to bottom: each hole pixel's nearest
    # pixel with data is its neighbour on its own side.
    holed = image.clone()
    holed[:, :, :, 10:12] = 0
    by_hand = image.clone()
    by_hand[:, :, :, 10] = image[:, :, :, 9]
    by_hand[:, :, :, 11] = image[:, :, :, 12]
    with torch.inference_mode():
        got = task.predict_step({"image": holed}, 0)
        expected = task.predict_step({"image": by_hand}, 0)
    assert not got["valid"][0, :, 10:12].any()
    valid = got["valid"]
    torch.testing.assert_close(
        got["probability"][valid], expected["probability"][valid]
    )


def test_blend_weights() -> None:
    taper = blend_weights(32, 8, "taper")
    assert taper.shape == (32, 32)
    assert taper.min() > 0
    assert taper.max() == 1
    np.testing.assert_allclose(taper, taper[::-1, ::-1])
    assert (taper[8:24, 8:24] == 1).all()
    centre = blend_weights(32, 16, "centre")
    assert (centre[8:24, 8:24] == 1).all()
    assert 0 < centre[0, 0] < 1e-3
    assert 0 < centre[8, 7] < 1e-3


# --------------------------------------------------------------------------
# 3. predict_map end to end.


def test_files_are_written(maps: dict[str, MapResult]) -> None:
    for result in maps.values():
        path = result.files.classes
        assert path.is_file()
        for suffix in COMPANIONS:
            assert Path(f"{path.with_suffix('')}{suffix}").is_file(), suffix
        assert [p.name for p in result.files.all()] == [
            "map.tif",
            *(f"map{suffix}" for suffix in COMPANIONS),
        ]
        assert hidden(path.parent) == []


def test_companions_keep_every_dot_of_the_name() -> None:
    """irrig.2023.tif and irrig.2024.tif must not share irrig.qml."""
    files = MapFiles.beside("maps/irrig.2023.tif")
    assert [p.name for p in files.all()] == [
        "irrig.2023.tif",
        *(f"irrig.2023{suffix}" for suffix in COMPANIONS),
    ]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_class_map_is_a_cog_on_the_imagery_grid(
    maps: dict[str, MapResult], scene: SampleScene, problem: str
) -> None:
    cogeo = pytest.importorskip("rio_cogeo.cogeo")
    files = maps[problem].files
    for path in (files.classes, files.probability):
        valid, errors, _ = cogeo.cog_validate(str(path))
        assert (valid, errors) == (True, [])
    left, top = imagery_origin(scene)
    with rasterio.open(files.classes) as src:
        assert src.dtypes == ("uint8",)
        assert src.nodata == MAP_NODATA
        assert src.crs.to_epsg() == 32610
        assert src.res == (10.0, 10.0)
        assert (src.width, src.height) == (SCENE, SCENE)
        assert src.bounds == (left, top - SCENE * 10, left + SCENE * 10, top)
        assert_on_imagery_grid(src.transform, (left, top))
        assert src.overviews(1)  # larger than one 256-px tile
        transform = src.transform
        colours = src.colormap(1)
        assert colours[0] != colours[1]
        assert colours[0][3] == colours[1][3] == 255
        assert colours[MAP_NODATA][3] == 0  # transparent
        classes = src.read(1)
    assert set(np.unique(classes).tolist()) <= {0, 1, MAP_NODATA}
    assert {0, 1} <= set(np.unique(classes).tolist())
    with rasterio.open(files.probability) as src:
        assert src.dtypes == ("float32",)
        assert src.nodata == -1
        assert src.transform == transform
        assert src.overviews(1)
        probability = src.read(1)
    valid = probability != -1
    assert probability[valid].min() >= 0
    assert probability[valid].max() <= 1


@pytest.mark.parametrize("problem", PROBLEMS)
def test_tags_record_model_checkpoint_threshold_and_dates(
    maps: dict[str, MapResult], checkpoints: dict[str, Path], problem: str
) -> None:
    result = maps[problem]
    threshold = float(
        torch.load(checkpoints[problem], weights_only=False)["hyper_parameters"][
            "threshold"
        ]
    )
    assert result.summary["threshold"] == threshold
    if problem == "classification":
        assert threshold != 0.5  # the model's own threshold, not a default
    for path in (result.files.classes, result.files.probability):
        with rasterio.open(path) as src:
            tags = src.tags()
        assert tags["model"] == "resnet18"
        assert tags["problem"] == problem
        assert tags["checkpoint_sha256"] == sha256(checkpoints[problem])
        assert float(tags["threshold"]) == threshold
        assert tags["imagery_dates"] == DATE
    assert result.summary["imagery_dates"] == [DATE]
    assert result.summary["model"]["checkpoint_sha256"] == sha256(checkpoints[problem])
    assert result.summary["model"]["training_labels"] == LABELS
    # A map of another year than the model's training imagery says so.
    assert result.summary["model"]["training_imagery_dates"] == ["2022-07-16"]


def test_class_band_description_is_a_short_legend_heading(
    maps: dict[str, MapResult],
) -> None:
    # QGIS heads the class legend with "Band 1: <description>" in a narrow panel;
    # the value meanings live in a tag (and in the style's class labels).
    result = maps["segmentation"]
    with rasterio.open(result.files.classes) as src:
        description, tags = src.descriptions[0], src.tags()
    assert description == f"irrigated (probability > {result.summary['threshold']:g})"
    assert tags["classes"] == f"0 not irrigated, 1 irrigated, {MAP_NODATA} nodata"
    with rasterio.open(result.files.probability) as src:
        assert "classes" not in src.tags()


@pytest.mark.parametrize("problem", PROBLEMS)
def test_classes_are_the_thresholded_probability(
    maps: dict[str, MapResult], problem: str
) -> None:
    result = maps[problem]
    classes = read(result.files.classes)
    probability = read(result.files.probability)
    valid = probability != -1
    threshold = result.summary["threshold"]
    np.testing.assert_array_equal(classes[valid], probability[valid] > threshold)
    assert (classes[~valid] == MAP_NODATA).all()


def test_classification_map_has_one_value_per_half_patch(
    maps: dict[str, MapResult],
) -> None:
    probability = read(maps["classification"].files.probability)
    # Each half patch (16 px) takes the value of the window centred on it.
    inner = probability[8 : SCENE - 8, 8 : SCENE - 8]
    blocks = inner[: 18 * 16, : 18 * 16].reshape(18, 16, 18, 16)
    # (up to the 1e-6 weight of the neighbouring windows' edges)
    np.testing.assert_allclose(
        blocks, np.broadcast_to(blocks[:, :1, :, :1], blocks.shape), atol=1e-5
    )
    assert len(np.unique(probability)) > 10
    segmentation = read(maps["segmentation"].files.probability)
    assert len(np.unique(segmentation)) > SCENE * SCENE // 4


def components(mask: npt.NDArray[np.bool_]) -> list[list[tuple[int, int]]]:
    """The pixels (row, col) of each 4-connected region of *mask*."""
    seen = np.zeros_like(mask)
    regions = []
    height, width = mask.shape
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        stack, pixels = [start], []
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                inside = 0 <= rr < height and 0 <= cc < width
                if inside and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        regions.append(pixels)
    return regions


@pytest.mark.parametrize("problem", PROBLEMS)
def test_summary_and_polygons_agree_with_the_rasters(
    maps: dict[str, MapResult], problem: str
) -> None:
    result = maps[problem]
    summary = json.loads(result.files.summary.read_text())
    assert summary == result.summary
    classes = read(result.files.classes)
    irrigated = int((classes == IRRIGATED).sum())
    valid = int((classes != MAP_NODATA).sum())
    assert irrigated > 0
    assert summary["irrigated_ha"] == pytest.approx(irrigated * PIXEL_HA, abs=0.006)
    assert summary["valid_ha"] == pytest.approx(valid * PIXEL_HA, abs=0.006)
    assert summary["irrigated_fraction"] == pytest.approx(irrigated / valid, abs=1e-4)
    assert (summary["width"], summary["height"]) == (SCENE, SCENE)
    assert summary["crs"] == "EPSG:32610"
    assert summary["warnings"] == []
    assert summary["pixel_size"] == 10.0
    with rasterio.open(result.files.classes) as src:
        assert summary["bounds"] == list(src.bounds)
    assert summary["files"]["classes"] == "map.tif"

    polygons = gpd.read_file(result.files.polygons, layer="irrigated")
    assert summary["irrigated_regions"] == len(polygons) > 0
    assert polygons.crs.to_epsg() == 32610
    min_area = summary["min_region_ha"]
    assert (polygons["area_ha"] >= min_area).all()
    probability = polygons["mean_prob"]
    assert probability.between(0, 1).all()
    # Every pixel of a region is above the threshold, so is their mean (to 3
    # decimals: the attribute table shows 0.873, not 0.8734567890123456).
    assert (probability >= summary["threshold"]).all()
    assert (probability == probability.round(3)).all()
    assert (polygons["area_ha"] == polygons["area_ha"].round(2)).all()
    # The regions are the 4-connected irrigated areas of at least min_area.
    kept = [
        region
        for region in components(classes == IRRIGATED)
        if len(region) * PIXEL_HA >= min_area
    ]
    assert len(polygons) == len(kept)
    assert polygons["area_ha"].sum() == pytest.approx(sum(map(len, kept)) * PIXEL_HA)
    # Each region's mean is over exactly its own pixels.
    values = read(result.files.probability)
    means = [float(values[tuple(np.array(region).T)].mean()) for region in kept]
    np.testing.assert_allclose(sorted(polygons["mean_prob"]), sorted(means), atol=5e-4)
    assert polygons["area_ha"].sum() <= summary["irrigated_ha"] + 0.005
    # Simplification smooths pixel staircases but keeps the area roughly.
    np.testing.assert_allclose(
        polygons.geometry.area / 1e4, polygons["area_ha"], rtol=0.15
    )
    assert polygons.geometry.area.sum() / 1e4 == pytest.approx(
        polygons["area_ha"].sum(), rel=0.05
    )


@pytest.mark.parametrize("problem", PROBLEMS)
def test_polygons_carry_the_imagery_date_checkpoint_and_threshold(
    maps: dict[str, MapResult], checkpoints: dict[str, Path], problem: str
) -> None:
    """An analyst filters the regions in QGIS by date, model and threshold."""
    result, checkpoint = maps[problem], checkpoints[problem]
    info = pyogrio.read_info(result.files.polygons, layer="irrigated")
    assert list(info["fields"]) == [*REGION_FIELDS, *PROVENANCE_FIELDS]
    assert info["ogr_types"] == [
        "OFTReal",
        "OFTReal",
        "OFTDate",
        "OFTDate",
        "OFTString",
        "OFTString",
        "OFTReal",
    ]
    polygons = gpd.read_file(result.files.polygons, layer="irrigated")
    assert len(polygons) > 0
    # One sensing date: the range is that day.
    assert set(polygons["acq_from"].dt.strftime("%Y-%m-%d")) == {DATE}
    assert set(polygons["acq_to"].dt.strftime("%Y-%m-%d")) == {DATE}
    assert set(polygons["checkpoint"]) == {str(checkpoint.resolve())}
    # The id that `torchgeo-simclr embed` records for the same checkpoint.
    assert set(polygons["ckpt_id"]) == {checkpoint_id(checkpoint)}
    assert result.summary["model"]["checkpoint_sha256"].startswith(
        checkpoint_id(checkpoint)
    )
    assert set(polygons["threshold"]) == {result.summary["threshold"]}


def test_polygons_of_scenes_of_two_dates_carry_the_range_and_given_threshold(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    later = FAKE_PRODUCT.replace("20230715T184919", "20230720T184919", 1)
    two_scenes(tmp_path / "s2", FAKE_SIZE * 10.0, later.replace("T10SFG", "T10SGG"))
    edge = FAKE_ORIGIN[0] + FAKE_SIZE * 10.0  # where the two scenes meet
    result = run(
        checkpoints["segmentation"],
        tmp_path / "s2",
        tmp_path / "map.tif",
        bbox=(edge - 500.0, FAKE_ORIGIN[1] - 500.0, edge + 500.0, FAKE_ORIGIN[1]),
        bbox_crs="EPSG:32610",
        threshold=0.0,  # every pixel with data is irrigated: one region
    )
    assert result.summary["imagery_dates"] == [DATE, "2023-07-20"]
    polygons = gpd.read_file(result.files.polygons, layer="irrigated")
    assert len(polygons) == 1
    region = polygons.iloc[0]
    assert region["acq_from"].date().isoformat() == DATE
    assert region["acq_to"].date().isoformat() == "2023-07-20"
    assert region["threshold"] == 0.0


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["2023-07-15", "2023-07-20", "unknown"], ("2023-07-15", "2023-07-20")),
        (["unknown"], (None, None)),
    ],
)
def test_scenes_without_a_date_are_left_out_of_the_polygons_range(
    dates: list[str], expected: tuple[str | None, str | None], tmp_path: Path
) -> None:
    regions = gpd.GeoDataFrame(
        {"area_ha": [1.0], "mean_prob": [0.9]},
        geometry=[shapely.box(0, 0, 100, 100)],
        crs="EPSG:32610",
    )
    path = tmp_path / "regions.gpkg"
    with_provenance(regions, dates, "last.ckpt", "0123456789abcdef", 0.5).to_file(
        path, layer="irrigated", engine="pyogrio", use_arrow=True
    )
    [region] = pyogrio.read_dataframe(path, layer="irrigated").itertuples()
    got = tuple(
        None if pd.isna(day) else day.date().isoformat()
        for day in (region.acq_from, region.acq_to)
    )
    assert got == expected


def test_polygons_do_not_depend_on_strip_height(maps: dict[str, MapResult]) -> None:
    files = maps["segmentation"].files
    whole = irrigated_polygons(files.classes, files.probability, 0.5)
    strips = irrigated_polygons(files.classes, files.probability, 0.5, None, 7)
    assert len(strips) == len(whole)
    np.testing.assert_allclose(strips["area_ha"], whole["area_ha"])
    np.testing.assert_allclose(
        np.sort(strips["mean_prob"]), np.sort(whole["mean_prob"])
    )


@pytest.mark.parametrize("rows", [0, -1])
def test_strips_of_no_rows_are_refused(maps: dict[str, MapResult], rows: int) -> None:
    files = maps["segmentation"].files
    with pytest.raises(ValueError, match="rows_per_strip must be 1 or more"):
        irrigated_polygons(files.classes, files.probability, 0.5, None, rows)


def test_merged_polygons_stay_on_a_grid_that_starts_off_whole_metres(
    tmp_path: Path,
) -> None:
    # Regions crossing a strip boundary were snapped to whole metres: 0.2 m off
    # the pixel edges of a real scene whose corner is at x 362612.197.
    x0, y0, res = 362612.197, 1980000.43, 10.0
    classes = np.zeros((8, 8), dtype=np.uint8)
    classes[1:7, 2:5] = IRRIGATED  # crosses the boundaries of 3-row strips
    transform = rasterio.transform.from_origin(x0, y0, res, res)
    paths = {"classes": tmp_path / "c.tif", "probability": tmp_path / "p.tif"}
    for name, data in (("classes", classes), ("probability", classes / 1.0)):
        profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1}
        profile |= {"dtype": data.dtype.name, "crs": "EPSG:32647"}
        with rasterio.open(paths[name], "w", transform=transform, **profile) as dst:
            dst.write(data, 1)
    polygons = irrigated_polygons(paths["classes"], paths["probability"], 0, 0, 3)
    (region,) = polygons.geometry
    xy = shapely.get_coordinates(region)
    np.testing.assert_allclose((xy[:, 0] - x0) / res, np.round((xy[:, 0] - x0) / res))
    np.testing.assert_allclose((y0 - xy[:, 1]) / res, np.round((y0 - xy[:, 1]) / res))
    assert region.area == pytest.approx(18 * res * res)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_bbox_map_is_the_whole_map_cut_to_the_bbox(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    problem: str,
    tmp_path: Path,
) -> None:
    """Maps of neighbouring bboxes meet without seams: windows lie on the
    whole imagery's grid and reach past the bbox for context."""
    left, top = imagery_origin(scene)
    bbox = (left + 1234.0, top - 2345.0, left + 2001.0, top - 1617.0)
    result = run(
        checkpoints[problem],
        scene.root,
        tmp_path / "map.tif",
        bbox=bbox,
        bbox_crs="EPSG:32610",
    )
    with rasterio.open(result.files.probability) as part:
        cut = part.read(1)
        bounds = part.bounds
    with rasterio.open(maps[problem].files.probability) as whole:
        expected = whole.read(1, window=from_bounds(*bounds, whole.transform))
    assert cut.shape == expected.shape == (74, 78)
    np.testing.assert_allclose(cut, expected, rtol=1e-5, atol=1e-6)


def test_neighbouring_lonlat_bbox_maps_add_up_to_the_map_of_both(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
) -> None:
    """A lon/lat bbox's map covered the UTM rectangle around it: its hectares
    took in land outside the bbox, and neighbouring maps counted their
    overlap twice. Pixels whose centres lie outside the bbox are nodata."""
    left, top = imagery_origin(scene)
    to_lonlat = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(
        left + 400.0, top - 2600.0, left + 2600.0, top - 400.0
    )
    middle = (west + east) / 2
    results = {
        name: run(
            checkpoints["segmentation"], scene.root, tmp_path / f"{name}.tif", bbox=bbox
        )
        for name, bbox in (
            ("both", (west, south, east, north)),
            ("west", (west, south, middle, north)),
            ("east", (middle, south, east, north)),
        )
    }
    with rasterio.open(maps["segmentation"].files.classes) as src:
        whole, transform = src.read(1), src.transform
    owned = {}
    for name, result in results.items():
        with rasterio.open(result.files.classes) as src:
            classes, bounds = src.read(1), src.bounds
            tags = src.tags()
        window = from_bounds(*bounds, transform)
        row0, col0 = round(window.row_off), round(window.col_off)
        rows, cols = np.nonzero(classes != MAP_NODATA)
        # Kept pixels are the whole map's, and their centres lie in the bbox.
        np.testing.assert_array_equal(
            classes[rows, cols], whole[rows + row0, cols + col0]
        )
        lon, lat = to_lonlat.transform(
            bounds.left + (cols + 0.5) * 10.0, bounds.top - (rows + 0.5) * 10.0
        )
        bbox = result.summary["bbox"]
        assert ((lon >= bbox[0]) & (lon < bbox[2])).all()
        assert ((lat >= bbox[1]) & (lat < bbox[3])).all()
        assert len(rows) < classes.size  # the rectangle's corners are nodata
        assert result.summary["footprint_ha"] == result.summary["valid_ha"]
        acres = result.summary["irrigated_acres"]
        ha = result.summary["irrigated_ha"]
        assert acres == pytest.approx(ha * 2.4710538, abs=0.01)
        regions = gpd.read_file(result.files.polygons, layer="irrigated")
        assert result.summary["regions_ha"] == pytest.approx(regions["area_ha"].sum())
        assert tags["bbox_crs"] == "EPSG:4326"
        # The tag gives the bbox as given (6 digits put it ~25 m off).
        assert [float(v) for v in tags["bbox"].split(",")] == bbox
        owned[name] = set(zip(rows + row0, cols + col0, strict=True))
    assert not owned["west"] & owned["east"]
    assert owned["west"] | owned["east"] == owned["both"]
    halves = (
        results["west"].summary["irrigated_ha"]
        + results["east"].summary["irrigated_ha"]
    )
    assert halves == pytest.approx(results["both"].summary["irrigated_ha"])


def test_small_bbox_at_the_imagery_corner(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """A region smaller than a window, at the scene's edge, cutting pixels."""
    left, top = imagery_origin(scene)
    right, bottom = left + SCENE * 10, top - SCENE * 10
    bbox = (right - 455.0, bottom - 300.0, right + 800.0, bottom + 505.0)
    with pytest.warns(UserWarning, match="reaches past the imagery"):
        result = run(
            checkpoints["segmentation"],
            scene.root,
            tmp_path / "map.tif",
            bbox=bbox,
            bbox_crs="EPSG:32610",
        )
    # The JSON record keeps the warning for a job that reads it later.
    (warned,) = json.loads(result.files.summary.read_text())["warnings"]
    assert warned.startswith("--bbox reaches past the imagery, so only its part")
    with rasterio.open(result.files.classes) as src:
        assert (src.width, src.height) == (46, 51)
        assert src.bounds == (right - 460.0, bottom, right, bottom + 510.0)
        assert_on_imagery_grid(src.transform, (left, top))
        assert not src.overviews(1)
        classes = src.read(1)
    assert (classes != MAP_NODATA).all()
    assert result.summary["bbox"] == list(bbox)
    assert result.summary["valid_ha"] == pytest.approx(46 * 51 * PIXEL_HA)


def test_checkpoint_of_fewer_bands_reads_only_those(
    scene: SampleScene, tmp_path: Path
) -> None:
    bands = ("B02", "B03", "B04", "B08")
    mean, std = scene_stats(scene)
    index = [S2_BANDS.index(band) for band in bands]
    metadata = DataMetadata(
        bands=bands,
        mean=tuple(mean[index].tolist()),
        std=tuple(std[index].tolist()),
        patch_size=PATCH,
    )
    checkpoint = save_checkpoint(
        tmp_path / "four.ckpt", "segmentation", metadata, in_channels=4
    )
    result = run(checkpoint, scene.root, tmp_path / "map.tif")
    assert result.summary["model"]["bands"] == list(bands)
    assert result.summary["valid_ha"] == pytest.approx(SCENE * SCENE * PIXEL_HA)


def test_the_steps_after_the_last_tile_have_a_progress_bar(
    checkpoints: dict[str, Path],
    scene: SampleScene,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The tile bar sat at 100% for the last 35 s of an 8192 px map.
    run(checkpoints["segmentation"], scene.root, tmp_path / "map.tif", progress=True)
    bars = capsys.readouterr().err
    assert "predict: 100%" in bars
    steps = bars[bars.index("predict: 100%") :]
    for step in ("0/3 steps", "COGs and polygons", "GeoPackage", "3/3 steps"):
        assert step in steps


def test_a_map_from_python_keeps_lightning_quiet(
    checkpoints: dict[str, Path],
    scene: SampleScene,
    tmp_path: Path,
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    """The caller set up no Trainer: no GPU banner, no tips, their levels kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(checkpoints["segmentation"], scene.root, tmp_path / "map.tif")
    assert lightning_log.messages == []
    assert not [w for w in caught if "treespec" in str(w.message)]  # Lightning's own
    assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == logging.INFO


def test_explicit_default_patch_size_gives_the_same_map(
    maps: dict[str, MapResult],
    checkpoints: dict[str, Path],
    scene: SampleScene,
    tmp_path: Path,
) -> None:
    result = run(
        checkpoints["classification"], scene.root, tmp_path / "map.tif", patch_size=32
    )
    np.testing.assert_array_equal(
        read(result.files.probability),
        read(maps["classification"].files.probability),
    )


def test_segmentation_runs_channels_last_with_the_same_probabilities(
    checkpoints: dict[str, Path],
) -> None:
    task = MapPredictionTask(str(checkpoints["segmentation"]))
    assert task.memory_format == torch.channels_last
    weight = task.model.backbone.get_parameter("conv1.weight")
    assert weight.is_contiguous(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, len(task.data.bands), 64, 64, generator=generator) * 5000
    image[0, :, :8] = 0  # a nodata strip
    batch = {"image": image, "row": torch.zeros(2), "col": torch.zeros(2)}
    with torch.inference_mode():
        fast = task.predict_step(batch, 0)["probability"]
        task.model.use_memory_format(torch.contiguous_format)
        plain = task.predict_step(batch, 0)["probability"]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_reflectance_patches_of_own_code_predict_as_the_map_does(
    checkpoints: dict[str, Path], problem: str
) -> None:
    task = MapPredictionTask(str(checkpoints[problem])).eval()
    generator = torch.Generator().manual_seed(1)
    size = task.data.patch_size
    image = torch.rand(3, len(task.data.bands), size, size, generator=generator) * 5000
    grid = {"row": torch.arange(3), "col": torch.zeros(3)}
    with torch.inference_mode():
        mapped = task.predict_step({"image": image} | grid, 0)
        own = task.predict_step({"image": image}, 0)
        logits = task(task.normalise(image))
    assert set(own) == {"probability", "valid"}
    torch.testing.assert_close(own["probability"], mapped["probability"])
    one = task.normalise(image[0])  # a sample as the dataset gives it
    torch.testing.assert_close(one, task.normalise(image)[0])
    probability = torch.sigmoid(logits)
    if problem == "classification":
        probability = probability.view(-1, 1, 1).expand_as(own["valid"])
    torch.testing.assert_close(probability, own["probability"])


def test_classification_keeps_nchw(checkpoints: dict[str, Path]) -> None:
    task = MapPredictionTask(str(checkpoints["classification"]))
    assert task.memory_format == torch.contiguous_format
    weight = task.model.backbone.get_parameter("conv1.weight")
    assert weight.is_contiguous()


def test_default_batch_holds_as_many_pixels_whatever_the_window() -> None:
    assert default_batch_size(256) == 8
    assert default_batch_size(48) == 227
    assert default_batch_size(4096) == 1


@pytest.mark.parametrize("problem", PROBLEMS)
def test_batch_size_does_not_change_the_map(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
    problem: str,
) -> None:
    result = run(checkpoints[problem], scene.root, tmp_path / "map.tif", batch_size=3)
    default = maps[problem].files
    assert np.array_equal(read(result.files.classes), read(default.classes))
    np.testing.assert_allclose(
        read(result.files.probability), read(default.probability), atol=1e-5
    )


def test_reading_workers_do_not_change_the_map(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
) -> None:
    # Each worker reads the rows of windows of its own batches; batches that
    # straddle two rows make two workers read the same row.
    result = run(
        checkpoints["classification"],
        scene.root,
        tmp_path / "map.tif",
        batch_size=5,
        num_workers=2,
    )
    default = maps["classification"].files
    assert np.array_equal(read(result.files.classes), read(default.classes))
    np.testing.assert_allclose(
        read(result.files.probability), read(default.probability), atol=1e-5
    )


# --------------------------------------------------------------------------
# 4. Nodata in the imagery.


@pytest.mark.parametrize("problem", PROBLEMS)
def test_imagery_nodata_becomes_map_nodata(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path, problem: str
) -> None:
    root = tmp_path / "scene"
    shutil.copytree(scene.root, root)
    west = root / "sentinel2" / scene.image_paths[0].name
    block = (slice(100, 150), slice(40, 90))  # rows, cols of the west tile
    with rasterio.open(west, "r+") as dst:
        window = Window(40, 100, 50, 50)
        dst.write(np.zeros((dst.count, 50, 50), dtype=np.uint16), window=window)
    result = run(checkpoints[problem], root, tmp_path / "map.tif")
    classes = read(result.files.classes)
    probability = read(result.files.probability)
    hole = np.zeros(classes.shape, dtype=bool)
    hole[block] = True  # the west tile's origin is the map's
    assert (classes[hole] == MAP_NODATA).all()
    assert (probability[hole] == -1).all()
    assert (classes[~hole] != MAP_NODATA).all()
    assert probability[~hole].min() >= 0
    assert result.summary["valid_ha"] == pytest.approx(
        (SCENE * SCENE - 50 * 50) * PIXEL_HA
    )


def test_clouds_in_an_scl_beside_the_bands_are_map_nodata(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # An ESA product with its scene classification: the analyst expects the
    # cloud as a hole in the map, not a field guessed from cloud tops.
    # SCL class 9 (cloud, high probability) over rows 10-29, columns 20-59.
    product = fake_s2_with_scl(tmp_path / "s2", np.s_[10:30, 20:60])
    # With the 7 px (70 m) around it that the 60 m bands' resampling can reach.
    cloud = np.zeros((FAKE_SIZE, FAKE_SIZE), dtype=bool)
    cloud[20 - 7 : 60 + 7, 40 - 7 : 120 + 7] = True

    root = tmp_path / "s2"
    result = run(checkpoints["segmentation"], root, tmp_path / "a.tif")
    masked = read(result.files.classes)
    assert masked.shape == cloud.shape
    assert result.summary["cloud_masks"] == [str(product / "SCL.tif")]
    assert result.summary["mask_clouds"] is True
    with rasterio.open(result.files.classes) as src:
        assert src.tags()["cloud_masks"] == "1"
    assert (masked[cloud] == MAP_NODATA).all()
    assert (masked[~cloud] != MAP_NODATA).all()
    out = tmp_path / "b.tif"
    predict_cli(
        checkpoints["segmentation"],
        root,
        out,
        "--no-cloud-mask",
        "--start",
        "2023-01-01",
        "--end",
        "2023-12-31",
    )
    assert (read(out) != MAP_NODATA).all()
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["cloud_masks"] == []
    # The options that chose the pixels read are recorded with the map.
    assert (summary["mask_clouds"], summary["start"], summary["end"]) == (
        False,
        "2023-01-01",
        "2023-12-31",
    )


def test_cloud_buffer_widens_the_holes_and_is_recorded(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 30 m more than the 70 m the 60 m bands need: 3 px more on every side.
    fake_s2_with_scl(tmp_path / "s2", np.s_[10:30, 20:60])
    cloud = np.zeros((FAKE_SIZE, FAKE_SIZE), dtype=bool)
    cloud[20 - 10 : 60 + 10, 40 - 10 : 120 + 10] = True
    out = tmp_path / "map.tif"
    predict_cli(
        checkpoints["segmentation"], tmp_path / "s2", out, "--cloud-buffer", "30"
    )
    classes = read(out)
    assert (classes[cloud] == MAP_NODATA).all()
    assert (classes[~cloud] != MAP_NODATA).all()
    assert json.loads(out.with_suffix(".json").read_text())["cloud_buffer_m"] == 30
    with rasterio.open(out) as src:
        assert src.tags()["cloud_buffer_m"] == "30"
    assert "clouds grown by 30 m more" in capsys.readouterr().out


def test_a_negative_cloud_buffer_is_refused_before_anything_runs(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict_cli(
            checkpoints["segmentation"],
            tmp_path,
            tmp_path / "map.tif",
            "--cloud-buffer",
            "-50",
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--cloud-buffer: must be a distance of 0 metres or more, got -50" in err
    assert not (tmp_path / "map.tif").exists()


def test_the_summary_names_the_cloud_masks_under_the_bbox(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # Two products side by side, each with its SCL; the map covers the west.
    west, east = (700000.0, 4100000.0), (702560.0, 4100000.0)
    for name, origin in (("w", west), ("e", east)):
        fake_s2_with_scl(tmp_path / "s2" / name, origin=origin)
    result = run(
        checkpoints["segmentation"],
        tmp_path / "s2",
        tmp_path / "map.tif",
        bbox=(700100.0, 4098000.0, 701000.0, 4099900.0),
        bbox_crs="EPSG:32610",
    )
    [mask] = result.summary["cloud_masks"]
    assert Path(mask).parent.parent.name == "w"


# --------------------------------------------------------------------------
# 5. Errors: from predict_map, and one line from the command.


def predict_args(checkpoint: Path, root: Path, out: Path, *extra: str) -> list[str]:
    """Arguments of `torchgeo-simclr predict` on the CPU."""
    return [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--root",
        str(root),
        "--out",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]


def predict_cli(checkpoint: Path, root: Path, out: Path, *extra: str) -> None:
    """Run `torchgeo-simclr predict` on the CPU."""
    main(predict_args(checkpoint, root, out, *extra))


def predict_error(
    capsys: pytest.CaptureFixture[str],
    checkpoint: Path,
    root: Path,
    out: Path,
    *extra: str,
) -> str:
    """Run `torchgeo-simclr predict`, expecting a one-line error."""
    capsys.readouterr()
    return cli_error_line(predict_args(checkpoint, root, out, *extra), capsys)


def test_batch_size_below_one(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    err = predict_error(
        capsys, checkpoints["segmentation"], scene.root, out, "--batch-size", "0"
    )
    assert "--batch-size: must be at least 1, got 0" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--threshold", "50", "--threshold 50 is not a probability between 0 and 1"),
        ("--threshold", "-0.1", "--threshold -0.1 is not a probability"),
        ("--min-area", "-1", "--min-area: must be an area of 0 ha or more, got -1"),
        # NaN passed `< 0` and wrote "min_region_ha": NaN, which is not JSON.
        ("--min-area", "nan", "--min-area: must be an area of 0 ha or more, got nan"),
        ("--min-area", "inf", "--min-area: must be an area of 0 ha or more, got inf"),
    ],
)
def test_threshold_and_min_area_out_of_range(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    expected: str,
) -> None:
    """Not an empty map (threshold 50) or every speck kept (min area -1)."""
    out = tmp_path / "map.tif"
    err = predict_error(
        capsys, checkpoints["segmentation"], scene.root, out, option, value
    )
    assert expected in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("area", [-1.0, float("nan"), float("inf")])
def test_the_lightning_writer_refuses_a_min_area_that_is_no_area(area: float) -> None:
    with pytest.raises(ValueError, match=r"min_area_ha .* is not an area of 0 ha"):
        IrrigationMapWriter("maps/irrigation.tif", min_area_ha=area)


def test_bbox_missing_the_imagery(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "maps" / "map.tif"
    bbox = (-100.0, 40.0, -99.5, 40.5)
    with pytest.raises(ValueError, match=r"does not overlap the imagery"):
        run(checkpoints["segmentation"], scene.root, out, bbox=bbox)
    err = predict_error(
        capsys,
        checkpoints["segmentation"],
        scene.root,
        out,
        "--bbox",
        *(str(v) for v in bbox),
    )
    assert "does not overlap the imagery" in err
    assert "-120.7" in err  # where the imagery is
    assert not out.parent.exists()  # a refused run leaves no empty folders


def test_imagery_without_the_checkpoint_s_bands(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "four_bands"
    fake_s2_per_band(root, bands=["B02", "B03", "B04", "B08"])
    out = tmp_path / "map.tif"
    with pytest.raises(FileNotFoundError, match=r"lacks band\(s\) \['B01'"):
        run(checkpoints["segmentation"], root, out)
    err = predict_error(capsys, checkpoints["segmentation"], root, out)
    assert "lacks band(s)" in err
    assert not out.exists()


def test_checkpoint_with_mismatched_band_list(
    checkpoints: dict[str, Path],
    scene: SampleScene,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = torch.load(checkpoints["segmentation"], weights_only=False)
    checkpoint["torchgeo_simclr"]["data"]["bands"] = ["B02", "B03", "B04", "B08"]
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    out = tmp_path / "map.tif"
    with pytest.raises(ValueError, match=r"bands"):
        run(path, scene.root, out)
    err = predict_error(capsys, path, scene.root, out)
    assert "bands" in err


def test_unwritable_output_directory(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if os.geteuid() == 0:
        # root writes anywhere; a directory that is a file cannot be written.
        (tmp_path / "afile").write_text("not a directory")
        out = tmp_path / "afile" / "map.tif"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "map.tif"
    with pytest.raises(PermissionError, match=r"pass --out in a directory you can"):
        run(checkpoints["segmentation"], scene.root, out)
    err = predict_error(capsys, checkpoints["segmentation"], scene.root, out)
    assert str(out.parent) in err


def test_a_map_without_irrigation_still_has_a_polygon_layer(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """QGIS shows an empty layer of polygons in the map's CRS, not Unknown."""
    result = run(
        checkpoints["segmentation"], scene.root, tmp_path / "map.tif", threshold=1.0
    )
    assert result.summary["irrigated_regions"] == 0
    info = pyogrio.read_info(result.files.polygons, layer="irrigated")
    assert info["geometry_type"] == "Polygon"
    assert info["features"] == 0
    assert list(info["fields"]) == [*REGION_FIELDS, *PROVENANCE_FIELDS]
    # QGIS offers date filters on the acquisition dates, even with no region.
    assert info["ogr_types"][2:4] == ["OFTDate", "OFTDate"]
    assert info["crs"] == "EPSG:32610"


def test_polygons_open_in_qgis_with_their_own_style(
    maps: dict[str, MapResult],
) -> None:
    """The GeoPackage carries its QGIS style, and not under the raster's name."""
    path = maps["segmentation"].files.polygons
    layers = pyogrio.list_layers(path)
    # The regions come first (the layer a reader gets without naming one).
    assert [name for name, _ in layers] == ["irrigated", "layer_styles"]
    styles = pyogrio.read_dataframe(path, layer="layer_styles")
    assert len(styles) == 1
    style = styles.iloc[0]
    geometry = pyogrio.read_info(path, layer="irrigated")["geometry_name"]
    assert (style["f_table_name"], style["f_geometry_column"]) == (
        "irrigated",
        geometry,
    )
    assert bool(style["useAsDefault"])
    assert style["styleQML"] == polygon_style()
    assert gpkg_version(path) == GPKG_1_2  # QGIS 3.22 reads it quietly


def test_existing_output_is_kept_unless_overwrite(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    older = maps["classification"].files
    shutil.copy(older.classes, out)
    summary = tmp_path / "map.json"  # any one of the files is enough
    shutil.copy(older.summary, summary)
    before = {path.name: sha256(path) for path in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"pass --overwrite to replace"):
        run(checkpoints["segmentation"], scene.root, out)
    err = predict_error(capsys, checkpoints["segmentation"], scene.root, out)
    assert str(out) in err
    assert str(summary) in err
    assert {path.name: sha256(path) for path in tmp_path.iterdir()} == before

    # With --overwrite the map replaces them (and the command reports it).
    capsys.readouterr()
    predict_cli(
        checkpoints["segmentation"], scene.root, out, "--no-progress", "--overwrite"
    )
    printed = capsys.readouterr().out
    assert printed.startswith("Irrigated: ")
    assert str(out) in printed
    # The earlier map was the classification model's.
    with rasterio.open(out) as src:
        assert src.dtypes == ("uint8",)
        assert src.tags()["problem"] == "segmentation"
    assert json.loads(summary.read_text())["model"]["problem"] == "segmentation"
    assert hidden(tmp_path) == []


def test_the_summary_names_the_unit_of_its_bounds_and_pixel_size(
    maps: dict[str, MapResult],
) -> None:
    summary = json.loads(maps["segmentation"].files.summary.read_text())
    assert (summary["crs"], summary["crs_units"]) == ("EPSG:32610", "metre")
    assert summary["pixel_size"] == 10.0  # metres
    assert writer_module.crs_units(CRS.from_epsg(4326)) == "degree"
    assert writer_module.crs_units(CRS.from_epsg(2227)) == "US survey foot"


def test_overwrite_replaces_a_summary_written_before_it_named_units(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
) -> None:
    out = tmp_path / "map.tif"
    older = maps["classification"].files
    for path in older.all():
        shutil.copy(path, tmp_path / path.name)
    summary = tmp_path / older.summary.name
    earlier = json.loads(summary.read_text())
    del earlier["crs_units"]
    summary.write_text(json.dumps(earlier))
    predict_cli(
        checkpoints["segmentation"], scene.root, out, "--no-progress", "--overwrite"
    )
    replaced = json.loads(summary.read_text())
    assert replaced["model"]["problem"] == "segmentation"
    assert replaced["crs_units"] == "metre"
    assert hidden(tmp_path) == []


def test_a_two_pixel_map_reports_its_area_in_words(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0.04 ha, not 0.0 ha; one region, not 1 regions."""
    left, top = imagery_origin(scene)
    bbox = [str(v) for v in (left + 1000, top - 1020, left + 1020, top - 1000)]
    capsys.readouterr()
    predict_cli(
        checkpoints["segmentation"],
        scene.root,
        tmp_path / "map.tif",
        "--no-progress",
        "--bbox",
        *bbox,
        "--bbox-crs",
        "EPSG:32610",
        "--threshold",
        "0",
        "--min-area",
        "0",
    )
    (line, *_) = capsys.readouterr().out.splitlines()
    assert line.startswith(
        "Irrigated: 0.04 ha (0.1 acres) of 0.04 ha with data (100.0%), 1 region of "
        "at least 0 ha;"
    )
    # The one date of the imagery is named, so a log of two years' maps tells
    # them apart.
    assert line.endswith(f" s; imagery of {DATE}.")


def test_segmentation_windows_smaller_than_the_encoder_can_take(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # --patch-size 7 was mapped without a word: ResNet-18 shrinks a window 32
    # times, and the probabilities moved by 0.17 on average.
    out = tmp_path / "map.tif"
    with pytest.raises(ValueError, match=r"patch_size=16 is smaller than the 32 px"):
        run(checkpoints["segmentation"], scene.root, out, patch_size=16)
    assert not out.exists()
    task = MapPredictionTask(checkpoints["segmentation"])
    task.check_windows(list(S2_BANDS), PATCH)  # the training patch is fine
    task.data = dataclasses.replace(task.data, patch_size=64)
    with pytest.warns(UserWarning, match=r"patch_size=48 is smaller than the 64 px"):
        task.check_windows(list(S2_BANDS), 48)


def test_classification_patch_size_other_than_training(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    with pytest.raises(ValueError, match=r"patch_size=40 differs from the 32-pixel"):
        run(checkpoints["classification"], scene.root, out, patch_size=40)
    err = predict_error(
        capsys, checkpoints["classification"], scene.root, out, "--patch-size", "40"
    )
    assert "pass 32" in err
    assert not out.exists()
    # A U-Net takes windows of any size, as fine-tuning trains it (it refused
    # sides that were not multiples of 32).
    result = run(checkpoints["segmentation"], scene.root, out, patch_size=100)
    with rasterio.open(result.files.classes) as src:
        assert (src.width, src.height) == (scene.size, scene.size)
        assert (src.read(1) != 255).all()


# --------------------------------------------------------------------------
# 6. An interrupted run leaves no files behind and older maps untouched.


def test_failure_while_polygonising_leaves_no_files(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    def slow_cog(source: Path, target: Path, resampling: str) -> None:
        # Like GDAL's COG driver, the file appears only at the end of the write.
        data = source.read_bytes()
        time.sleep(0.5)  # still writing when the polygons fail
        target.write_bytes(data)

    monkeypatch.setattr(writer_module, "irrigated_polygons", broken)
    monkeypatch.setattr(writer_module, "write_cog", slow_cog)
    out = tmp_path / "map.tif"
    with pytest.raises(RuntimeError, match=r"disk full"):
        run(checkpoints["segmentation"], scene.root, out)
    # The COGs being written in their thread are waited for, then removed:
    # none appears once every thread has finished.
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(timeout=60)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_keeps_the_older_map(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    older = maps["classification"].files
    for path in older.all():
        shutil.copy(path, tmp_path / path.name)
    before = {path.name: sha256(path) for path in tmp_path.iterdir()}

    add = StripBlender.add
    added = []

    def failing(self: StripBlender, *args: Any) -> Iterator[Any]:
        added.append(1)
        if len(added) > 60:  # three rows of windows written, the fourth not
            raise RuntimeError("interrupted")
        yield from add(self, *args)

    monkeypatch.setattr(StripBlender, "add", failing)
    with pytest.raises(RuntimeError, match=r"interrupted"):
        run(
            checkpoints["classification"],
            scene.root,
            tmp_path / "map.tif",
            overwrite=True,
            batch_size=2,
        )
    assert len(added) == 61
    assert {path.name: sha256(path) for path in tmp_path.iterdir()} == before


def sigterm_at_window(n: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Send this process SIGTERM as the *n*-th window is blended.

    Returns:
        One entry per window blended, to count them.
    """
    add = StripBlender.add
    added: list[int] = []

    def killed(self: StripBlender, *args: Any) -> Iterator[Any]:
        added.append(1)
        if len(added) == n:
            signal.raise_signal(signal.SIGTERM)
        yield from add(self, *args)

    monkeypatch.setattr(StripBlender, "add", killed)
    return added


@pytest.mark.usefixtures("terminal_signals")
def test_sigterm_stops_a_map_and_leaves_no_files(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # During prediction Lightning's handler only notes SIGTERM: the map ran on
    # to the end (6 minutes on an 8192 px region) before the process ended.
    added = sigterm_at_window(2, monkeypatch)
    out = tmp_path / "maps" / "new" / "map.tif"
    with pytest.raises(Terminated):
        run(checkpoints["classification"], scene.root, out, batch_size=2)
    assert len(added) == 2  # stopped at the next batch
    assert list(tmp_path.iterdir()) == []  # no files, nor the folders it made


@pytest.mark.usefixtures("terminal_signals")
def test_sigterm_while_a_map_is_written_is_not_lost(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lightning only noted it: predict_map returned and the process ran on.
    trace = writer_module.irrigated_polygons

    def killed(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGTERM)
        return trace(*args, **kwargs)

    monkeypatch.setattr(writer_module, "irrigated_polygons", killed)
    out = tmp_path / "map.tif"
    with pytest.raises(Interrupted) as info:
        run(checkpoints["segmentation"], scene.root, out)
    assert terminated(info.value)
    assert info.value.kept.startswith(f"The map was written before it ({out} ")
    assert out.exists()


def test_a_killed_maps_temporary_files_go_with_the_next_run(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # kill -9 leaves the strips (140 MB for a 4096 px map), named by the
    # process id, so no later run reused or removed them.
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    old = time.time() - 3600
    strips = (tmp_path / "map.strips.tif", tmp_path / "map_probability.strips.tif")
    leftovers = [
        path.with_name(
            partial_path(path).name.replace(str(os.getpid()), str(process.pid))
        )
        for path in strips
    ]
    for path in leftovers:
        path.write_bytes(b"strip")
        os.utime(path, (old, old))
    run(checkpoints["segmentation"], scene.root, tmp_path / "map.tif")
    assert not any(path.exists() for path in leftovers)
    assert hidden(tmp_path) == []


# --------------------------------------------------------------------------
# 7. The Lightning path: `torchgeo predict --config conf/predict_cal.yaml`.


@pytest.fixture
def torchgeo_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`torchgeo predict ARGS` in this process, in tmp_path (it writes maps/)."""
    torchgeo_main = torchgeo_cli(monkeypatch)
    monkeypatch.chdir(tmp_path)

    def predict(checkpoint: Path, root: Path, *extra: str) -> None:
        torchgeo_main(
            [
                "predict",
                "--config",
                str(CONF / "predict_cal.yaml"),
                "--model.init_args.checkpoint",
                str(checkpoint),
                "--data.init_args.root",
                str(root),
                "--data.init_args.num_workers",
                "0",
                "--trainer.accelerator",
                "cpu",
                *extra,
            ]
        )

    return predict


def test_predict_config_writes_the_same_map(
    torchgeo_predict: Any,
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
) -> None:
    torchgeo_predict(checkpoints["segmentation"], scene.root)
    reference = maps["segmentation"]
    folder = tmp_path / "maps"
    names = {p.name for p in folder.iterdir()}
    expected = {f"irrigation{suffix}" for suffix in (".tif", *COMPANIONS)}
    assert expected <= names
    assert names - expected <= {"config.yaml"}  # LightningCLI's record of the run
    classes = read(folder / "irrigation.tif")
    np.testing.assert_array_equal(classes, read(reference.files.classes))
    np.testing.assert_allclose(
        read(folder / "irrigation_probability.tif"),
        read(reference.files.probability),
        atol=1e-6,
    )
    with (
        rasterio.open(folder / "irrigation.tif") as src,
        rasterio.open(reference.files.classes) as ref,
    ):
        assert src.profile == ref.profile
        assert src.tags() == ref.tags()
    summary = json.loads((folder / "irrigation.json").read_text())
    for key in ("irrigated_ha", "valid_ha", "irrigated_regions", "bounds", "crs"):
        assert summary[key] == reference.summary[key], key


def test_predict_config_with_other_bands_than_the_checkpoint(
    torchgeo_predict: Any,
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
) -> None:
    reordered = [*S2_BANDS[1:], S2_BANDS[0]]
    with pytest.raises(ValueError, match=r"was trained on bands \['B01'") as info:
        torchgeo_predict(
            checkpoints["segmentation"],
            scene.root,
            "--data.init_args.bands",
            json.dumps(reordered),
        )
    assert "['B02', 'B03'" in str(info.value)  # what was read instead
    folder = tmp_path / "maps"
    assert not (folder / "irrigation.tif").exists()
    assert not folder.exists() or hidden(folder) == []


# --------------------------------------------------------------------------
# 8. The quick look.


def test_quicklook_draws_the_map_beside_the_imagery(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    predict_cli(
        checkpoints["segmentation"], scene.root, out, "--no-progress", "--quicklook"
    )
    # Not map.png, which QGIS would style with map.qml (the class style).
    png = tmp_path / "map_quicklook.png"
    assert str(png) in capsys.readouterr().out
    assert not out.with_suffix(".png").exists()
    with Image.open(png) as image:
        width, _ = image.size
    before = png.read_bytes()
    with pytest.raises(FileExistsError, match=r"pass --overwrite"):
        quicklook(out, png)
    assert png.read_bytes() == before
    # Two panels side by side, natural colour and the classes, each drawn at
    # least MIN_PANEL_PX wide for a map this small.
    assert width > 2 * MIN_PANEL_PX
    alone = quicklook(out, tmp_path / "alone.png", max_side=64)
    with Image.open(alone) as image:
        assert image.size[0] < width
    # The title is read from the tags predict wrote.
    figure = quicklook_figure(out, root=scene.root)
    title = figure.get_suptitle()
    plt.close(figure)
    assert "Irrigated land (probability > 0.5)" in title
    assert "Sentinel-2 imagery of 2023-07-15" in title


# --------------------------------------------------------------------------
# 9. Inputs, empty maps, option names and summaries (a GIS analyst's review).


def two_scenes(root: Path, east: float, product: str) -> tuple[Path, Path]:
    """The fake scene and a second one, *product*, *east* metres further east."""
    west = fake_s2_multiband(root)
    origin = (FAKE_ORIGIN[0] + east, FAKE_ORIGIN[1])
    return west, fake_s2_multiband(root, name=f"{product}.tif", origin=origin)


def test_a_scene_as_out_is_refused_even_with_overwrite(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A slip of tab completion must not replace the imagery with a map."""
    root = tmp_path / "s2"
    scene_file = fake_s2_multiband(root)
    before = sha256(scene_file)
    # Without --overwrite too: "already exists; pass --overwrite" led nowhere.
    for extra in (["--overwrite"], []):
        err = predict_error(
            capsys, checkpoints["segmentation"], root, scene_file, *extra
        )
        assert (
            f"--out {str(scene_file)!r} is one of the Sentinel-2 files under --root"
            in err
        )
        assert "choose another --out, outside the imagery" in err
    assert sha256(scene_file) == before
    assert sorted(p.name for p in root.iterdir()) == [scene_file.name]


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("B04.tif", "one of the Sentinel-2 files under --root"),
        ("B8A.tif", "one of the Sentinel-2 files under --root"),
        ("SCL.tif", "a cloud mask (SCL) under --root"),
    ],
)
def test_a_band_file_as_out_is_refused_even_with_overwrite(
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    what: str,
) -> None:
    product = fake_s2_with_scl(tmp_path / "s2")
    before = {path.name: sha256(path) for path in product.iterdir()}
    out = product / name
    err = predict_error(
        capsys,
        checkpoints["segmentation"],
        tmp_path / "s2",
        out,
        "--overwrite",
        "--no-cloud-mask",  # the SCL is still a file of the product
    )
    assert f"--out {str(out)!r} is {what};" in err
    assert {path.name: sha256(path) for path in product.iterdir()} == before


def test_an_output_linked_to_an_input_is_refused(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any of the files beside the map, through a symbolic or a hard link."""
    root = tmp_path / "s2"
    scene_file = fake_s2_multiband(root)
    out = tmp_path / "maps" / "map.tif"
    out.parent.mkdir()
    (tmp_path / "maps" / "map_probability.tif").symlink_to(scene_file)
    err = predict_error(capsys, checkpoints["segmentation"], root, out, "--overwrite")
    assert (
        f"--out {str(out)!r} would write "
        f"{str(tmp_path / 'maps' / 'map_probability.tif')!r}, which is one of the "
        f"Sentinel-2 files under --root ({str(scene_file)!r})"
    ) in err
    (tmp_path / "maps" / "map_probability.tif").unlink()
    os.link(scene_file, tmp_path / "maps" / "map.gpkg")
    err = predict_error(capsys, checkpoints["segmentation"], root, out, "--overwrite")
    assert "map.gpkg', which is one of the Sentinel-2 files under --root" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.gpkg"]


def test_the_checkpoint_as_out_is_refused_before_it_is_loaded(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "model.tif"
    shutil.copy(checkpoints["segmentation"], checkpoint)
    before = sha256(checkpoint)
    err = predict_error(capsys, checkpoint, scene.root, checkpoint, "--overwrite")
    # Not "choose another --out, outside the imagery": it is outside.
    assert err.endswith(
        f"--out {str(checkpoint)!r} is the checkpoint (--checkpoint); choose another "
        "--out, e.g. maps/irrigation.tif (nothing was written)."
    )
    assert sha256(checkpoint) == before


def raster_of_another_tool(path: Path) -> None:
    """A GeoTIFF without the tags the writer sets (a DEM, a scene, a map)."""
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32610",
        "transform": from_origin(*FAKE_ORIGIN, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 4, 4), np.uint8))


#: A QGIS style of a vector layer, as QGIS saves one beside fields.shp.
VECTOR_QML = (
    "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
    '<qgis version="3.28.0"><renderer-v2 type="singleSymbol"/></qgis>\n'
)

#: Suffix -> a file of the user's by that name beside map.tif, and why the
#: writer does not take it for a file of an earlier map.
THEIRS: dict[str, tuple[Any, str]] = {
    ".tif": (raster_of_another_tool, "no 'software' tag of torchgeo-simclr"),
    "_probability.tif": (
        raster_of_another_tool,
        "no 'software' tag of torchgeo-simclr",
    ),
    ".qml": (lambda path: path.write_text(VECTOR_QML), "a QGIS style of no raster"),
    "_probability.qml": (lambda path: path.write_text("notes"), "not a QGIS style"),
    ".gpkg": (
        lambda path: fake_dwr_gpkg(path.parent, name=path.name),
        "no 'irrigated' layer",
    ),
    ".json": (
        lambda path: path.write_text(json.dumps({"scenes": []})),
        "no 'irrigated_ha' key",
    ),
    "_quicklook.png": (
        lambda path: Image.new("RGB", (4, 4)).save(path),
        "not a PNG drawn by Matplotlib",
    ),
}


@pytest.mark.parametrize("suffix", list(THEIRS))
def test_overwrite_replaces_only_the_files_of_an_earlier_map(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
) -> None:
    """`--out manifest.tif --overwrite` replaced download's manifest.json."""
    write, why = THEIRS[suffix]
    theirs = tmp_path / f"map{suffix}"
    write(theirs)
    before = sha256(theirs)
    out = tmp_path / "map.tif"
    found = "is" if theirs == out else f"would replace {str(theirs)!r}, which is"
    refusal = (
        f"--out {str(out)!r} {found} not a map written by torchgeo-simclr predict "
        f"({why}); choose another --out (nothing was written)."
    )
    # Without --overwrite the refusal does not suggest it; the quick look is
    # only replaced (or removed) with --overwrite, or drawn with --quicklook.
    runs = [["--overwrite"], []]
    if suffix == "_quicklook.png":
        runs = [["--overwrite"], ["--quicklook"]]
    for extra in runs:
        err = predict_error(
            capsys, checkpoints["segmentation"], scene.root, out, *extra
        )
        if suffix == "_quicklook.png":
            assert err.endswith(
                f"--out {str(out)!r} would replace {str(theirs)!r}, which is not a "
                f"quick look of a map ({why}); choose another --out (nothing was "
                "written)."
            )
        else:
            assert err.endswith(refusal)
    assert sha256(theirs) == before
    assert list(tmp_path.iterdir()) == [theirs]


def test_labels_beside_the_imagery_are_not_replaced_by_the_map(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--root data/sample --out data/sample/crop_mapping.tif --overwrite`.

    It replaced the DWR labels crop_mapping.gpkg with the map's polygons. An
    output under --root is checked once the imagery is indexed.
    """
    root = tmp_path / "sample"
    fake_s2_multiband(root)
    labels = fake_dwr_gpkg(root)
    before = {path.name: sha256(path) for path in root.iterdir()}
    out = root / "crop_mapping.tif"
    err = predict_error(capsys, checkpoints["segmentation"], root, out, "--overwrite")
    assert err.endswith(
        f"--out {str(out)!r} would replace {str(labels)!r}, which is not a map "
        "written by torchgeo-simclr predict (no 'irrigated' layer); choose another "
        "--out (nothing was written)."
    )
    assert {path.name: sha256(path) for path in root.iterdir()} == before


def test_a_file_that_appears_during_the_run_is_not_replaced(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The files are checked again just before they take their names."""
    theirs = tmp_path / "map.json"

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        theirs.write_text('{"scenes": []}')
        return irrigated_polygons(*args, **kwargs)

    monkeypatch.setattr(writer_module, "irrigated_polygons", meanwhile)
    with pytest.raises(FileExistsError, match=r"\(no 'irrigated_ha' key\); choose"):
        run(
            checkpoints["segmentation"],
            scene.root,
            tmp_path / "map.tif",
            overwrite=True,
        )
    assert theirs.read_text() == '{"scenes": []}'
    assert list(tmp_path.iterdir()) == [theirs]


@pytest.mark.parametrize("name", ["map.tif", "map.json", "map_quicklook.png"])
def test_an_output_that_is_a_folder_is_refused_before_the_run(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """It failed at the last renames ("[Errno 21] Is a directory"), 5 of 6 done."""

    def loaded(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the checkpoint was loaded before the refusal")

    monkeypatch.setattr(MapPredictionTask, "__init__", loaded)
    folder = tmp_path / name
    folder.mkdir()
    out = tmp_path / "map.tif"
    refusal = (
        f"--out {str(out)!r} is a folder; pass a file name, e.g. "
        f"{out / 'irrigation.tif'}."
        if folder == out
        else f"--out {str(out)!r} would write {str(folder)!r}, which is a folder; "
        "choose another --out (nothing was written)."
    )
    err = predict_error(
        capsys, checkpoints["segmentation"], scene.root, out, "--overwrite"
    )
    assert err.endswith(refusal)
    assert list(tmp_path.iterdir()) == [folder]
    assert list(folder.iterdir()) == []


def test_a_png_beside_the_map_is_left_alone_where_no_quick_look_is_drawn(
    scene: SampleScene, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # predict_map and the Lightning route never draw or remove a quick look,
    # yet with overwrite they refused a PNG of that name they would not touch.
    out = tmp_path / "map.tif"
    run(checkpoints["segmentation"], scene.root, out)
    png = tmp_path / "map_quicklook.png"
    Image.new("RGB", (4, 4)).save(png)
    before = sha256(png)
    run(checkpoints["segmentation"], scene.root, out, overwrite=True)
    assert sha256(png) == before


def test_out_naming_a_folder_gets_a_file_name_in_it(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out maps/` was told it "must end in .tif"."""
    folder = tmp_path / "maps"
    folder.mkdir()
    err = predict_error(capsys, checkpoints["segmentation"], scene.root, folder)
    assert err.endswith(
        f"--out {str(folder)!r} is a folder; pass a file name, e.g. "
        f"{folder / 'irrigation.tif'}."
    )
    assert list(folder.iterdir()) == []


def test_the_lightning_route_replaces_only_an_earlier_map_too(
    torchgeo_predict: Any,
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
) -> None:
    labels = fake_dwr_gpkg(tmp_path / "maps", name="irrigation.gpkg")
    before = sha256(labels)
    for extra in (["--trainer.callbacks.init_args.overwrite", "true"], []):
        with pytest.raises(FileExistsError) as info:
            torchgeo_predict(checkpoints["segmentation"], scene.root, *extra)
        assert str(info.value) == (
            "--trainer.callbacks.init_args.out 'maps/irrigation.tif' would replace "
            "'maps/irrigation.gpkg', which is not a map written by torchgeo predict "
            "(no 'irrigated' layer); choose another "
            "--trainer.callbacks.init_args.out (nothing was written)."
        )
    assert sha256(labels) == before
    names = {p.name for p in labels.parent.iterdir()}
    assert names - {"config.yaml"} == {"irrigation.gpkg"}  # LightningCLI's record


def test_one_existing_output_is_named_in_the_singular(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    shutil.copy(maps["segmentation"].files.classes, out)
    err = predict_error(capsys, checkpoints["segmentation"], scene.root, out)
    assert f"{out} already exists; pass --overwrite to replace it, or choose" in err


def test_the_lightning_route_names_its_own_options(
    torchgeo_predict: Any,
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
) -> None:
    """`torchgeo predict` has no --overwrite: the refusal names what it has."""
    (tmp_path / "maps").mkdir()
    summary = tmp_path / "maps" / "irrigation.json"
    shutil.copy(maps["segmentation"].files.summary, summary)
    before = sha256(summary)
    with pytest.raises(FileExistsError) as info:
        torchgeo_predict(checkpoints["segmentation"], scene.root)
    message = str(info.value)
    assert message == (
        "maps/irrigation.json already exists; pass "
        "--trainer.callbacks.init_args.overwrite true to replace it, or choose "
        "another --trainer.callbacks.init_args.out."
    )
    assert sha256(summary) == before


def test_the_summary_is_strict_json(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No NaN or Infinity, which JavaScript's JSON.parse and RFC 8259 refuse."""
    model_info = MapPredictionTask.model_info

    def with_nan(self: MapPredictionTask) -> dict[str, Any]:
        return {**model_info(self), "val_f1": float("nan"), "scale": [float("inf")]}

    monkeypatch.setattr(MapPredictionTask, "model_info", with_nan)
    left, top = imagery_origin(scene)
    result = run(
        checkpoints["segmentation"],
        scene.root,
        tmp_path / "map.tif",
        bbox=(left, top - 200, left + 200, top),
        bbox_crs="EPSG:32610",
    )

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    summary = json.loads(result.files.summary.read_text(), parse_constant=refuse)
    assert summary["model"]["val_f1"] is None
    assert summary["model"]["scale"] == [None]
    assert summary == result.summary


def predict_interrupted(
    capsys: pytest.CaptureFixture[str],
    checkpoint: Path,
    root: Path,
    out: Path,
    *extra: str,
) -> str:
    """Run `torchgeo-simclr predict --no-progress`, expecting Ctrl-C's exit 130.

    Returns:
        What it printed to stderr.
    """
    with pytest.raises(SystemExit) as info:
        predict_cli(checkpoint, root, out, "--no-progress", *extra)
    assert info.value.code == 130
    return capsys.readouterr().err.strip()


@pytest.mark.usefixtures("sigterm_guard")
def test_sigterm_ends_the_command_at_once_with_one_line(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `kill`, `docker stop`, a batch system's time limit: the map ran to its
    # end, exit status 0, before the process stopped.
    added = sigterm_at_window(1, monkeypatch)
    handler = signal.getsignal(signal.SIGTERM)  # the guard's
    out = tmp_path / "map.tif"
    with pytest.raises(SystemExit) as info:
        predict_cli(checkpoints["classification"], scene.root, out, "--no-progress")
    assert info.value.code == 128 + signal.SIGTERM
    assert len(added) == 1  # stopped where the signal came
    assert capsys.readouterr().err.strip() == (
        "torchgeo-simclr predict: terminated (SIGTERM). Outputs are written under "
        "temporary names and renamed only once complete, so no file was written "
        "or changed."
    )
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == handler


def test_ctrl_c_during_the_quick_look_says_the_map_was_written(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr("torchgeo_simclr.inference.quicklook.quicklook", interrupted)
    out = tmp_path / "map.tif"
    err = predict_interrupted(
        capsys, checkpoints["segmentation"], scene.root, out, "--quicklook"
    )
    assert err == (
        f"torchgeo-simclr predict: interrupted. The map was written before it ({out} "
        "and the files beside it); the quick look was not (run the same command "
        "with --overwrite to draw it)."
    )
    assert out.exists()
    assert all(out.with_name(f"map{suffix}").exists() for suffix in COMPANIONS)
    assert not (tmp_path / "map_quicklook.png").exists()
    assert hidden(tmp_path) == []


def test_ctrl_c_once_the_files_are_renamed_says_the_map_was_written(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Lightning is still tearing down when Ctrl-C comes."""
    finish = IrrigationMapWriter.on_predict_end

    def then_ctrl_c(self: IrrigationMapWriter, *args: Any) -> None:
        finish(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(IrrigationMapWriter, "on_predict_end", then_ctrl_c)
    out = tmp_path / "map.tif"
    err = predict_interrupted(capsys, checkpoints["segmentation"], scene.root, out)
    assert err == (
        f"torchgeo-simclr predict: interrupted. The map was written before it ({out} "
        "and the files beside it)."
    )
    assert json.loads(out.with_suffix(".json").read_text())["width"] == SCENE


def test_overwrite_without_quicklook_removes_the_old_quick_look(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    maps: dict[str, MapResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "map.tif"
    png = tmp_path / "map_quicklook.png"
    for path in maps["classification"].files.all():  # an earlier map, every file
        shutil.copy(path, tmp_path / path.name)
    quicklook(out, png, max_side=64)
    capsys.readouterr()
    predict_cli(
        checkpoints["segmentation"], scene.root, out, "--no-progress", "--overwrite"
    )
    printed = capsys.readouterr().out
    assert not png.exists()
    assert printed.splitlines()[-1] == (
        f"Removed {png}, the quick look of the map replaced (pass --quicklook to "
        "draw this map's)."
    )


def test_the_quick_look_reads_the_imagery_as_the_map_did(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --no-cloud-mask the picture shows the clouds the map kept."""
    fake_s2_with_scl(tmp_path / "clouded", np.s_[20:80, 20:80])
    fake_s2_per_band(tmp_path / "clear")
    out = tmp_path / "a" / "map.tif"
    predict_cli(
        checkpoints["segmentation"],
        tmp_path / "clouded",
        out,
        "--no-progress",
        "--no-cloud-mask",
        "--quicklook",
    )
    assert json.loads(out.with_suffix(".json").read_text())["cloud_masks"] == []
    # The same imagery without its SCL: the same picture, pixel for pixel.
    reference = quicklook(out, tmp_path / "clear.png", root=tmp_path / "clear")
    with (
        Image.open(tmp_path / "a" / "map_quicklook.png") as drawn,
        Image.open(reference) as expected,
    ):
        np.testing.assert_array_equal(np.asarray(drawn), np.asarray(expected))


def test_a_bbox_in_a_gap_between_scenes_is_refused(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inside the scenes' joint extent, but under none of them."""
    two_scenes(tmp_path / "s2", 10_000.0, FAKE_PRODUCT.replace("T10SFG", "T10SGG"))
    x0 = FAKE_ORIGIN[0] + FAKE_SIZE * 10.0 + 1000.0
    bbox = (x0, FAKE_ORIGIN[1] - 1000.0, x0 + 500.0, FAKE_ORIGIN[1] - 500.0)
    out = tmp_path / "map.tif"
    err = predict_error(
        capsys,
        checkpoints["segmentation"],
        tmp_path / "s2",
        out,
        "--bbox",
        *(str(v) for v in bbox),
        "--bbox-crs",
        "EPSG:32610",
    )
    assert (
        f"--bbox {x0:.10g} 4099000 {x0 + 500:.10g} 4099500 (EPSG:32610) lies in a "
        "gap between the 2 Sentinel-2 scene(s)"
    ) in err
    assert "where there is no imagery to read; pass a bbox over a scene, e.g." in err
    assert not out.exists()


def test_a_map_that_clouds_blank_entirely_is_written_with_a_warning(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_s2_with_scl(tmp_path / "s2", fill=9)
    out = tmp_path / "map.tif"
    capsys.readouterr()
    predict_cli(checkpoints["segmentation"], tmp_path / "s2", out, "--no-progress")
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"torchgeo-simclr predict: warning: the map {str(out)!r} is all nodata (no "
        "pixel with data): every pixel is masked as cloud by the 1 cloud mask(s) "
        "or is nodata in the imagery; pass --no-cloud-mask to keep cloudy pixels, "
        "or map imagery of another date."
    ]
    assert captured.out.startswith("Irrigated: 0.0 ha (0.0 acres) of 0.0 ha with data")
    assert (read(out) == MAP_NODATA).all()
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["warnings"] == [
        f"the map {str(out)!r} is all nodata (no pixel with data): every pixel is "
        "masked as cloud by the 1 cloud mask(s) or is nodata in the imagery; pass "
        "--no-cloud-mask to keep cloudy pixels, or map imagery of another date."
    ]


def test_imagery_dates_leave_out_a_scene_that_only_touches_the_map(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    later = FAKE_PRODUCT.replace("20230715T184919", "20230720T184919", 1)
    two_scenes(tmp_path / "s2", FAKE_SIZE * 10.0, later.replace("T10SFG", "T10SGG"))
    edge = FAKE_ORIGIN[0] + FAKE_SIZE * 10.0  # where the two scenes meet
    bbox = (edge - 500.0, FAKE_ORIGIN[1] - 500.0, edge, FAKE_ORIGIN[1])
    result = run(
        checkpoints["segmentation"],
        tmp_path / "s2",
        tmp_path / "map.tif",
        bbox=bbox,
        bbox_crs="EPSG:32610",
    )
    assert result.summary["bounds"][2] == edge
    assert result.summary["imagery_dates"] == [DATE]
    with rasterio.open(result.files.classes) as src:
        assert src.tags()["imagery_dates"] == DATE
    # One pixel further east, the later scene is under the map.
    result = run(
        checkpoints["segmentation"],
        tmp_path / "s2",
        tmp_path / "wider.tif",
        bbox=(*bbox[:2], edge + 10.0, bbox[3]),
        bbox_crs="EPSG:32610",
    )
    assert result.summary["imagery_dates"] == [DATE, "2023-07-20"]


def test_imagery_dates_are_those_of_the_pixels_mapped(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # Every scene under the map was listed, so a map made wholly of the newer
    # scene claimed the older date too, and its polygons a month-long range.
    later = FAKE_PRODUCT.replace("20230715T184919", "20230820T184919", 1)
    two_scenes(tmp_path / "s2", 0.0, later)
    result = run(checkpoints["segmentation"], tmp_path / "s2", tmp_path / "map.tif")
    assert result.summary["imagery_dates"] == ["2023-08-20"]
    with rasterio.open(result.files.probability) as src:
        assert src.tags()["imagery_dates"] == "2023-08-20"
    polygons = gpd.read_file(result.files.polygons, layer="irrigated")
    assert {str(day.date()) for day in polygons["acq_from"]} == {"2023-08-20"}
    # Where the newer scene has no data, the older one fills in, and counts.
    with rasterio.open(tmp_path / "s2" / f"{later}.tif", "r+") as dst:
        dst.write(np.zeros((12, 32, 32), np.uint16), window=Window(0, 0, 32, 32))
    result = run(checkpoints["segmentation"], tmp_path / "s2", tmp_path / "hole.tif")
    assert result.summary["imagery_dates"] == [DATE, "2023-08-20"]
    with rasterio.open(result.files.classes) as src:
        assert src.tags()["imagery_dates"] == f"{DATE},2023-08-20"


def test_degrees_given_in_a_projected_bbox_crs_get_the_reason(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bbox = ("-120.8", "37.05", "-120.76", "37.08")  # over the sample scene
    err = predict_error(
        capsys,
        checkpoints["segmentation"],
        scene.root,
        tmp_path / "map.tif",
        "--bbox",
        *bbox,
        "--bbox-crs",
        "EPSG:32610",
    )
    assert err.endswith(
        "--bbox -120.8 37.05 -120.76 37.08 in EPSG:32610 misses the imagery, but "
        "read as lon/lat degrees it lies over it; leave out --bbox-crs EPSG:32610 "
        "(lon/lat is the default), or give the bbox in EPSG:32610 metres."
    )
    assert list(tmp_path.iterdir()) == []


def test_cloud_masks_in_the_summary_are_absolute_paths(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like the checkpoint's: the summary holds wherever it is read from."""
    product = fake_s2_with_scl(tmp_path / "s2")
    monkeypatch.chdir(tmp_path)
    result = run(checkpoints["segmentation"], Path("s2"), Path("map.tif"))
    summary = json.loads((tmp_path / "map.json").read_text())
    assert summary["cloud_masks"] == [str(product / "SCL.tif")]
    assert Path(summary["model"]["checkpoint"]).is_absolute()
    assert result.summary["cloud_masks"] == summary["cloud_masks"]


def test_a_strip_writer_that_fails_to_start_closes_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure after the file was opened (here the disk fills while the band
    # description is written) left it open until garbage collection.
    opened: list[Any] = []
    real_open = rasterio.open

    class FullDisk:
        def __init__(self, dataset: Any) -> None:
            self.dataset = dataset

        def set_band_description(self, *args: Any) -> None:
            raise OSError("No space left on device")

        def close(self) -> None:
            self.dataset.close()

    def open_on_a_full_disk(*args: Any, **kwargs: Any) -> FullDisk:
        opened.append(real_open(*args, **kwargs))
        return FullDisk(opened[-1])

    monkeypatch.setattr(geotiff.rasterio, "open", open_on_a_full_disk)
    with pytest.raises(OSError, match="No space left"):
        geotiff.StripWriter(
            tmp_path / "classes.tif", window_grid(8, 8), "uint8", 255, "classes", {}
        )
    assert len(opened) == 1
    assert opened[0].closed


def test_a_map_larger_than_max_pixels_is_refused_before_any_work(
    scene: SampleScene,
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A stray scene far from the others under --root planned a map of 272,344
    # tiles (days of work, tens of GB) without a word.
    out = tmp_path / "maps" / "map.tif"
    err = predict_error(
        capsys,
        checkpoints["segmentation"],
        scene.root,
        out,
        "--max-pixels",
        "10000",
    )
    assert (
        f"The map of the imagery under the root would be {SCENE:,} x {SCENE:,} px of "
        f"10 metre ({SCENE * SCENE / 1e9:.1f} billion px, about 0 GB of rasters "
        "before compression), more than --max-pixels 10,000; it spans "
    ) in err
    assert "so pass a --bbox over the region to map, look for a scene far" in err
    assert not out.parent.exists()


def test_a_bbox_in_exponent_form_is_read_as_numbers() -> None:
    # argparse took -1e12 for an option: "expected 4 arguments".
    from torchgeo_simclr.cli.parser import build_parser

    given = ["predict", "--checkpoint", "m.ckpt", "--root", "data", "--out", "m.tif"]
    bbox = ["--bbox", "-1e12", "-1.5E+3", "-.5", "1e12", "--bbox-crs", "EPSG:32610"]
    args = build_parser().parse_args([*given, *bbox])
    assert args.bbox == [-1e12, -1500.0, -0.5, 1e12]
    # A whole number in exponent form is a number of pixels too.
    args = build_parser().parse_args([*given, "--max-pixels", "2e9"])
    assert args.max_pixels == 2_000_000_000


def test_a_failed_map_stops_keeping_warnings(tmp_path: Path) -> None:
    # Lightning calls on_exception, not teardown, when a run fails (e.g. the
    # --max-pixels refusal): warnings stayed captured in the user's process.
    import warnings

    from torchgeo_simclr.inference import IrrigationMapWriter

    shown = warnings.showwarning
    writer = IrrigationMapWriter(tmp_path / "map.tif")
    writer.setup(None, None, "predict")  # type: ignore[arg-type]
    assert warnings.showwarning is not shown
    writer.on_exception(None, None, ValueError("refused"))  # type: ignore[arg-type]
    assert warnings.showwarning is shown
