"""Embedding index and search by example: embed, top_k, queries, outputs, CLIs."""

import hashlib
import importlib
import itertools
import json
import os
import re
import shutil
import signal
import sys
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
import shapely
import torch
from conftest import (
    FAKE_CRS,
    FAKE_ORIGIN,
    FAKE_SIZE,
    GPKG_1_2,
    cli_error_line,
    fake_s2_multiband,
    fake_s2_per_band,
    fake_s2_with_scl,
    gpkg_version,
)
from matplotlib.figure import Figure
from PIL import Image
from pyproj import CRS, Transformer
from rasterio.windows import Window
from torch import Tensor, nn
from torch.utils.data import DataLoader

import torchgeo_simclr.cli.embeddings as embedding_commands
import torchgeo_simclr.download.run as download_run
from torchgeo_simclr.cli import main
from torchgeo_simclr.cli.parser import build_parser
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules.patches import GridPatches, keep_batch
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.digest import file_digest
from torchgeo_simclr.embeddings import (
    EmbedResult,
    SearchResult,
    embed_region,
    projection,
    read_info,
    search,
    top_k,
)
from torchgeo_simclr.embeddings.index import ROW_GROUP_ROWS, IndexInfo, IndexWriter
from torchgeo_simclr.embeddings.search import load_index, unit_rows
from torchgeo_simclr.embeddings.sheet import (
    HEADING_INCHES,
    SHEET_COLUMNS,
    TILE_INCHES,
    TITLE_INCHES,
    read_thumbnails,
)
from torchgeo_simclr.inference.grid import output_grid
from torchgeo_simclr.inference.styles import hit_style
from torchgeo_simclr.models.checkpoint import DataMetadata, Encoder, load_backbone
from torchgeo_simclr.models.classifier import Problem
from torchgeo_simclr.tasks import FineTuneTask, SimCLRv2Task

#: Patch side of the tiny checkpoints, pixels.
PATCH = 32

#: Side of the fake scene, pixels: 6 x 6 patches.
SIDE = 192

#: Top-left pixel (row, col) of the patch copied, and of its copy.
ORIGINAL, COPY = (0, 0), (128, 96)

#: First nodata column: patches from column 160 on are all nodata (skipped),
#: the patch at column 128 is a quarter nodata (kept).
NODATA_FROM = 152

#: Footprint of the original patch, EPSG:32610 metres.
#: The top-right patch, all nodata, EPSG:32610 metres.
NODATA_STRIP = (
    FAKE_ORIGIN[0] + (SIDE - PATCH) * 10,
    FAKE_ORIGIN[1] - PATCH * 10,
    FAKE_ORIGIN[0] + SIDE * 10,
    FAKE_ORIGIN[1],
)

FIRST_PATCH = (
    FAKE_ORIGIN[0],
    FAKE_ORIGIN[1] - PATCH * 10,
    FAKE_ORIGIN[0] + PATCH * 10,
    FAKE_ORIGIN[1],
)

#: Sensing date of the fake scene (in its product name).
DATE = date(2023, 7, 15)

#: Length of a ResNet-18's pooled features.
DIM = 512

TO_LONLAT = Transformer.from_crs(FAKE_CRS, "EPSG:4326", always_xy=True)


# --------------------------------------------------------------------------
# Shared data: a fake scene with a planted duplicate, tiny checkpoints, index.


def scene_pixels() -> npt.NDArray[np.uint16]:
    """12 bands: a spectrum and texture per patch, a duplicate, a nodata strip."""
    rng = np.random.default_rng(0)
    cells = SIDE // PATCH
    levels = rng.uniform(500, 4000, (12, cells, cells))
    data = np.repeat(np.repeat(levels, PATCH, axis=1), PATCH, axis=2)
    data += rng.normal(0, 300, data.shape)
    (r0, c0), (r1, c1) = ORIGINAL, COPY
    data[:, r1 : r1 + PATCH, c1 : c1 + PATCH] = data[
        :, r0 : r0 + PATCH, c0 : c0 + PATCH
    ]
    data = np.clip(data, 1, 10000)  # L2A keeps 0 for nodata
    data[:, :, NODATA_FROM:] = 0
    return data.astype(np.uint16)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 192 x 192 px scene (EPSG:32610, 2023-07-15) written by conftest."""
    folder = tmp_path_factory.mktemp("scene")
    path = fake_s2_multiband(folder / "sentinel2", size=SIDE)
    with rasterio.open(path, "r+") as dst:
        dst.write(scene_pixels())
    return folder


def metadata() -> DataMetadata:
    pixels = scene_pixels().reshape(12, -1).astype(np.float64)
    return DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(pixels.mean(axis=1).tolist()),
        std=tuple(pixels.std(axis=1).tolist()),
        patch_size=PATCH,
    )


def save(task: SimCLRv2Task | FineTuneTask, path: Path) -> Path:
    """A checkpoint (random weights) as a fit run would write it."""
    task.data_metadata = metadata()
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def simclr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16)
    return save(task, tmp_path_factory.mktemp("ckpt") / "simclr.ckpt")


@pytest.fixture(scope="module")
def other_simclr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    task = SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16)
    return save(task, tmp_path_factory.mktemp("ckpt") / "other.ckpt")


def embed(checkpoint: Path, root: Path, out: Path, **kwargs: Any) -> EmbedResult:
    kwargs.setdefault("progress", False)
    return embed_region(checkpoint, root, out, **kwargs)


@pytest.fixture(scope="module")
def index(
    simclr: Path, root: Path, tmp_path_factory: pytest.TempPathFactory
) -> EmbedResult:
    """The whole scene embedded by the SimCLR checkpoint, batches of 8."""
    out = tmp_path_factory.mktemp("index") / "scene.parquet"
    return embed(simclr, root, out, batch_size=8)


def lonlat_of(row: int, col: int) -> tuple[float, float]:
    """Lon/lat of the centre of the patch at grid pixel (row, col)."""
    x = FAKE_ORIGIN[0] + (col + PATCH / 2) * 10
    y = FAKE_ORIGIN[1] - (row + PATCH / 2) * 10
    lon, lat = TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    """Temporary files a run may leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------
# embed


def test_index_rows_match_the_grid(index: EmbedResult, root: Path) -> None:
    frame = gpd.read_parquet(index.path)
    assert frame.crs == FAKE_CRS
    grid = output_grid(CentralValleyS2(root / "sentinel2"))
    windows = grid.windows(PATCH, 0)
    nodata = [w for w in windows if w.col_off + PATCH / 2 > NODATA_FROM]
    assert len(windows) == 36
    assert index.skipped == len(nodata) == 6
    assert index.rows == len(frame) == len(windows) - len(nodata)
    expected = {(w.row_off, w.col_off) for w in windows} - {
        (w.row_off, w.col_off) for w in nodata
    }
    assert set(zip(frame["row"], frame["col"], strict=True)) == expected
    # Footprints: 320 m squares on the 10 m grid, at the row and column given.
    bounds = frame.bounds.to_numpy()
    np.testing.assert_allclose(bounds[:, 2] - bounds[:, 0], PATCH * 10)
    np.testing.assert_allclose(bounds[:, 3] - bounds[:, 1], PATCH * 10)
    np.testing.assert_allclose(bounds[:, 0], FAKE_ORIGIN[0] + frame["col"] * 10)
    np.testing.assert_allclose(bounds[:, 3], FAKE_ORIGIN[1] - frame["row"] * 10)
    # Centres in lon/lat.
    lon, lat = TO_LONLAT.transform(
        (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    )
    np.testing.assert_allclose(frame["lon"], lon)
    np.testing.assert_allclose(frame["lat"], lat)
    assert set(frame["date"]) == {DATE}
    assert {len(e) for e in frame["embedding"]} == {DIM}


def test_index_records_its_making(index: EmbedResult, simclr: Path, root: Path) -> None:
    info = read_info(index.path)
    digest = file_digest(simclr)[:16]
    assert info.checkpoint_id == digest
    assert info.checkpoint == str(simclr.resolve())
    assert set(gpd.read_parquet(index.path)["checkpoint"]) == {digest}
    assert (info.model, info.dim, info.patch_size, info.stride) == (
        "resnet18",
        DIM,
        PATCH,
        PATCH,
    )
    assert info.root == str(root.resolve())
    assert info.origin == FAKE_ORIGIN
    assert info.bands == tuple(S2_BANDS)
    assert index.seconds > 0


def backbone_features(
    backbone: nn.Module, root: Path, row: int, col: int
) -> npt.NDArray[np.float32]:
    """Pooled features of one patch read straight from the GeoTIFF."""
    (path,) = (root / "sentinel2").glob("*.tif")
    with rasterio.open(path) as src:
        pixels = src.read(window=Window(col, row, PATCH, PATCH)).astype(np.float32)
    data = metadata()
    mean = torch.tensor(data.mean).view(-1, 1, 1)
    std = torch.tensor(data.std).view(-1, 1, 1)
    image = torch.from_numpy(pixels)
    x = (image - mean) / std * image.ne(0).all(dim=0)
    with torch.no_grad():
        features: Tensor = backbone.eval()(x[None].float())
    return features[0].numpy()


@pytest.mark.parametrize(("row", "col"), [(64, 32), (160, 128)])
def test_embedding_is_the_backbone_output(
    index: EmbedResult, simclr: Path, root: Path, row: int, col: int
) -> None:
    """(160, 128) is a quarter nodata: kept, its nodata pixels at the mean."""
    frame = gpd.read_parquet(index.path)
    (stored,) = frame.loc[(frame["row"] == row) & (frame["col"] == col), "embedding"]
    expected = backbone_features(load_backbone(simclr).backbone, root, row, col)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_fine_tuned_checkpoints_embed_too(
    problem: Problem, root: Path, tmp_path: Path
) -> None:
    """The fine-tuned backbone (for a U-Net, its pooled encoder) embeds."""
    torch.manual_seed(0)
    task = FineTuneTask(problem=problem, in_channels=12, model="resnet18")
    checkpoint = save(task, tmp_path / f"{problem}.ckpt")
    bbox = (
        FAKE_ORIGIN[0],
        FAKE_ORIGIN[1] - 64 * 10,
        FAKE_ORIGIN[0] + 640,
        FAKE_ORIGIN[1],
    )
    result = embed(
        checkpoint, root, tmp_path / "index.parquet", bbox=bbox, bbox_crs=FAKE_CRS
    )
    frame = gpd.read_parquet(result.path)
    assert len(frame) == 4
    assert set(frame["checkpoint"]) == {file_digest(checkpoint)[:16]}
    embeddings = np.stack(frame["embedding"].to_numpy())
    assert embeddings.shape == (4, DIM)
    (stored,) = frame.loc[(frame["row"] == 32) & (frame["col"] == 0), "embedding"]
    expected = backbone_features(load_backbone(checkpoint).backbone, root, 32, 0)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)


def test_bbox_and_stride(simclr: Path, root: Path, tmp_path: Path) -> None:
    """A lon/lat bbox on the scene's upper left, half-overlapping patches."""
    west, north = TO_LONLAT.transform(FAKE_ORIGIN[0] + 5, FAKE_ORIGIN[1] - 5)
    east, south = TO_LONLAT.transform(FAKE_ORIGIN[0] + 955, FAKE_ORIGIN[1] - 955)
    result = embed(
        simclr,
        root,
        tmp_path / "bbox.parquet",
        bbox=(west, south, east, north),
        stride=PATCH // 2,
    )
    frame = gpd.read_parquet(result.path)
    grid = output_grid(CentralValleyS2(root / "sentinel2"), (west, south, east, north))
    assert len(frame) == len(grid.windows(PATCH, PATCH // 2)) > 16
    # The patches touch the bbox and together cover it.
    region = shapely.box(*grid.bounds)
    assert (frame.geometry.intersection(region).area > 0).all()
    assert frame.geometry.union_all().contains(region)
    assert read_info(result.path).stride == PATCH // 2
    windows = grid.windows(PATCH, PATCH // 2)
    assert set(zip(frame["row"], frame["col"], strict=True)) == {
        (w.row_off, w.col_off) for w in windows
    }
    assert set(np.diff(np.unique(frame["row"]))) <= set(range(1, PATCH // 2 + 1))


def test_a_bbox_index_is_the_scene_index_cut_to_the_bbox(
    index: EmbedResult, simclr: Path, root: Path, tmp_path: Path
) -> None:
    """Patches lie on the whole imagery's grid of patches, whatever the bbox.

    So the same place has the same patch and embedding in both indexes, and
    a bbox smaller than a patch gets the patches that hold it.
    """
    scene = gpd.read_parquet(index.path)
    for name, (first, last) in {"small": (60, 70), "odd": (45, 110)}.items():
        x0, y0 = FAKE_ORIGIN[0] + first * 10, FAKE_ORIGIN[1] - first * 10
        side = (last - first) * 10
        bbox = (x0, y0 - side, x0 + side, y0)
        result = embed(
            simclr, root, tmp_path / f"{name}.parquet", bbox=bbox, bbox_crs=FAKE_CRS
        )
        frame = gpd.read_parquet(result.path)
        touching = scene[scene.geometry.intersection(shapely.box(*bbox)).area > 0]
        assert sorted(frame.geometry.bounds.itertuples(index=False)) == sorted(
            touching.geometry.bounds.itertuples(index=False)
        )
        ours = frame.set_index(frame.geometry.bounds.apply(tuple, axis=1))
        theirs = touching.set_index(touching.geometry.bounds.apply(tuple, axis=1))
        # One place, one grid position: indexes of two bboxes join on row/col.
        for column in ("row", "col"):
            assert (ours[column] == theirs.loc[ours.index, column]).all()
        np.testing.assert_allclose(
            np.stack(ours["embedding"].to_numpy()),
            np.stack(theirs.loc[ours.index, "embedding"].to_numpy()),
            rtol=1e-4,
            atol=1e-5,
        )
    assert len(gpd.read_parquet(tmp_path / "small.parquet")) == 4


@pytest.mark.parametrize(
    ("block_shape", "min_valid", "blocks"),
    [((64, 64), 0.5, 9), ((1, 64), 0.0, 33)],
    ids=["blocks", "rows"],
)
def test_patch_batches_match_window_reads(
    root: Path, block_shape: tuple[int, int], min_valid: float, blocks: int
) -> None:
    """Patches cut from block reads equal windows read one by one.

    Small blocks and batches make batches straddle blocks; overlapping
    windows share pixels between blocks. Each patch comes with its pixels
    with data. Blocks one pixel high (as maps read) keep every window, in the
    grid's row-major order.
    """
    imagery = CentralValleyS2(root / "sentinel2")
    grid = output_grid(imagery)
    windows = grid.windows(PATCH, PATCH // 2)
    patches = GridPatches(
        imagery, grid, windows, min_valid=min_valid, block_shape=block_shape
    )
    assert len(patches.block_windows) == blocks
    reads = {}
    for w in windows:
        xmin, ymin, xmax, ymax = grid.window_bounds(w)
        query = imagery[xmin : xmax : grid.res, ymin : ymax : grid.res]
        reads[(w.row_off, w.col_off)] = query["image"].float()
    order, skipped = [], 0
    for batch in DataLoader(patches, batch_size=5, collate_fn=keep_batch):
        skipped += batch["skipped"]
        for image, valid, row, col in zip(
            batch["image"], batch["valid"], batch["row"], batch["col"], strict=True
        ):
            place = (int(row), int(col))
            torch.testing.assert_close(image, reads[place])
            assert torch.equal(valid, reads[place].ne(0).all(0))
            order.append(place)
    valid = [
        p for p, image in reads.items() if image.ne(0).all(0).float().mean() >= 0.5
    ]
    if min_valid:
        assert sorted(order) == sorted(valid)
        assert skipped == len(windows) - len(valid) > 0
    else:
        assert order == list(reads)
        assert skipped == 0


def small_info(root: Path) -> IndexInfo:
    """What an index of 4-d embeddings of the fake scene records."""
    return IndexInfo(
        checkpoint_id="0" * 16,
        checkpoint="simclr.ckpt",
        model="resnet18",
        dim=4,
        patch_size=PATCH,
        stride=PATCH,
        root=str(root),
        bands=tuple(S2_BANDS),
        crs=CRS.from_user_input(FAKE_CRS).to_wkt(),
        res=10.0,
        origin=FAKE_ORIGIN,
    )


def test_batches_are_gathered_into_row_groups(tmp_path: Path) -> None:
    # embed writes 64 patches at a time; a Parquet row group for each batch
    # made indexes 40% larger. The rows still come back whole and in order.
    rows = 2 * ROW_GROUP_ROWS + 100
    embeddings = np.random.default_rng(0).standard_normal((rows, 4), np.float32)
    path = tmp_path / "index.parquet"
    with IndexWriter(path, small_info(tmp_path)) as writer:
        for start in range(0, rows, 64):
            batch = np.arange(start, min(start + 64, rows))
            writer.write(
                batch // 100 * PATCH,
                batch % 100 * PATCH,
                [DATE] * len(batch),
                embeddings[batch],
            )
    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 100]
    index = load_index(path)
    np.testing.assert_allclose(index.matrix, unit_rows(embeddings), rtol=1e-6)
    assert index.table.column("col").to_pylist()[:3] == [0, PATCH, 2 * PATCH]


def test_two_runs_writing_one_index_both_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both wrote `.index.parquet.partial`: the first to finish renamed the
    # other's file away, which then failed at its very end.
    path = tmp_path / "index.parquet"
    one = np.ones((1, 4), np.float32)
    writers = []
    for pid, value in ((1111, 1.0), (2222, 2.0)):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)  # two processes
        writer = IndexWriter(path, small_info(tmp_path))
        writer.write(np.zeros(1, np.int64), np.zeros(1, np.int64), [DATE], value * one)
        writers.append(writer)
    for writer in reversed(writers):
        writer.close()
    assert load_index(path).table.num_rows == 1
    assert hidden(tmp_path) == []


def stop_at_batch(
    n: int, stop: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make embed's encoder call *stop* at its *n*-th batch."""

    class Stopping(nn.Module):
        def __init__(self, backbone: nn.Module) -> None:
            super().__init__()
            self.backbone = backbone
            self.num_features = DIM
            self.calls = 0

        def forward(self, x: Tensor) -> Tensor:
            self.calls += 1
            if self.calls == n:
                stop()
            out: Tensor = self.backbone(x)
            return out

    def stopping(path: Path) -> Encoder:
        encoder = load_backbone(path)
        return Encoder(Stopping(encoder.backbone), encoder.model, encoder.data)

    monkeypatch.setattr("torchgeo_simclr.embeddings.embed.load_backbone", stopping)


def test_interrupted_embed_leaves_nothing(
    simclr: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise RuntimeError("interrupted")

    stop_at_batch(2, fail, monkeypatch)
    folder = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"interrupted"):
        embed(simclr, root, folder / "new" / "index.parquet", batch_size=4)
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone too


@pytest.mark.usefixtures("sigterm_guard")
def test_sigterm_ends_embed_with_one_line_and_no_files(
    simclr: Path,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # It ended silently (status 143) and left `.index.parquet.partial`.
    stop_at_batch(1, lambda: signal.raise_signal(signal.SIGTERM), monkeypatch)
    out = tmp_path / "out" / "index.parquet"
    argv = ["embed", "--checkpoint", str(simclr), "--root", str(root)]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(out), "--no-progress"])
    assert info.value.code == 128 + signal.SIGTERM
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith(
            "torchgeo-simclr embed: terminated (SIGTERM). Outputs are written under "
            "temporary names"
        )
    )
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# top_k


def brute_force(
    matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    return np.argsort(-(matrix @ query), kind="stable")[:k]


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1000, 5000])
def test_top_k_equals_brute_force(chunk_rows: int) -> None:
    rng = np.random.default_rng(chunk_rows)
    matrix = rng.standard_normal((1000, 16)).astype(np.float32)
    query = rng.standard_normal(16).astype(np.float32)
    rows, scores = top_k(matrix, query, 10, chunk_rows=chunk_rows)
    np.testing.assert_array_equal(rows, brute_force(matrix, query, 10))
    np.testing.assert_allclose(scores, (matrix @ query)[rows], rtol=1e-6)
    assert (np.diff(scores) <= 0).all()


def test_top_k_excludes_rows_and_runs_out() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((50, 8)).astype(np.float32)
    query = matrix[3]
    best = brute_force(matrix, query, 50)
    exclude = best[:5]
    rows, _ = top_k(matrix, query, 5, chunk_rows=16, exclude=exclude)
    np.testing.assert_array_equal(rows, best[5:10])
    rows, _ = top_k(matrix, query, 100, chunk_rows=16, exclude=exclude)
    np.testing.assert_array_equal(rows, best[5:])
    with pytest.raises(ValueError, match=r"9 dimensions but the index 8"):
        top_k(matrix, np.ones(9), 5)


# --------------------------------------------------------------------------
# search


@pytest.fixture(scope="module")
def found(index: EmbedResult, tmp_path_factory: pytest.TempPathFactory) -> SearchResult:
    """Search by the point at the centre of the original patch, k = 8."""
    out = tmp_path_factory.mktemp("search") / "hits.gpkg"
    return search(index.path, out, lonlat=lonlat_of(*ORIGINAL), k=8)


def place(frame: gpd.GeoDataFrame, i: int) -> tuple[int, int]:
    return int(frame["row"].iloc[i]), int(frame["col"].iloc[i])


def test_point_search_finds_the_duplicate(
    found: SearchResult, index: EmbedResult
) -> None:
    hits = found.hits
    assert place(hits, 0) == COPY
    assert hits["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert hits["similarity"].iloc[1] < 0.999
    places = {place(hits, i) for i in range(len(hits))}
    assert ORIGINAL not in places
    frame = gpd.read_parquet(index.path)
    (query_row,) = found.query_rows
    assert place(frame, int(query_row)) == ORIGINAL


def test_hits_file_and_sheet(found: SearchResult) -> None:
    written = gpd.read_file(found.out, layer="hits")
    assert written.crs == FAKE_CRS
    assert gpkg_version(found.out) == GPKG_1_2  # QGIS 3.22 reads it quietly
    assert len(written) == 8
    assert written["rank"].tolist() == list(range(1, 9))
    assert (np.diff(written["similarity"]) <= 0).all()
    # A date field, which QGIS filters and sorts as dates, not text.
    fields = pyogrio.read_info(found.out)
    types = dict(zip(fields["fields"], fields["dtypes"], strict=True))
    assert types["date"] == "datetime64[D]"
    assert set(written["date"].dt.date) == {DATE}
    np.testing.assert_allclose(written.area, (PATCH * 10) ** 2)
    # Query + 8 hits: 2 rows of 6 thumbnails.
    assert found.sheet == found.out.with_suffix(".png")
    with Image.open(found.sheet) as image:
        width, height = image.size
    rows, columns = 2, SHEET_COLUMNS
    expected = (
        columns * TILE_INCHES / (rows * (TILE_INCHES + TITLE_INCHES) + HEADING_INCHES)
    )
    assert width / height == pytest.approx(expected, rel=0.02)
    assert hidden(found.out.parent) == []


def test_hits_are_distinct_places(simclr: Path, root: Path, tmp_path: Path) -> None:
    """With half-overlapping patches, no two hits share a pixel."""
    half = embed(simclr, root, tmp_path / "half.parquet", stride=PATCH // 2)
    result = search(half.path, tmp_path / "hits.gpkg", lonlat=lonlat_of(*ORIGINAL), k=8)
    hits = result.hits
    assert len(hits) == 8
    assert place(hits, 0) == COPY  # the duplicate still comes first
    footprints = list(hits.geometry)
    for i, j in itertools.combinations(range(len(footprints)), 2):
        assert footprints[i].intersection(footprints[j]).area == 0, (i, j)
    # The patches half over the duplicate look like it, yet are left out.
    assert (COPY[0], COPY[1] + PATCH // 2) not in {place(hits, i) for i in range(8)}


def test_hits_open_in_qgis_outlined_and_labelled_by_rank(
    found: SearchResult,
) -> None:
    layers = [name for name, _ in pyogrio.list_layers(found.out)]
    assert layers == ["hits", "layer_styles"]  # the hits are the default layer
    styles = pyogrio.read_dataframe(found.out, layer="layer_styles")
    assert len(styles) == 1
    assert styles["f_table_name"].iloc[0] == "hits"
    assert bool(styles["useAsDefault"].iloc[0])
    qml = styles["styleQML"].iloc[0]
    assert qml == hit_style()
    # tests/test_qgis.py checks that QGIS draws such a style: here, its content.
    root = ET.fromstring(qml)
    assert root.get("labelsEnabled") == "1"
    text = root.find("labeling/settings/text-style")
    assert text is not None
    assert text.get("fieldName") == "rank"


def test_the_sheet_draws_the_best_hits_only(
    index: EmbedResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search_module = importlib.import_module("torchgeo_simclr.embeddings.search")
    monkeypatch.setattr(search_module, "SHEET_HITS", 3)
    result = search(
        index.path, tmp_path / "hits.gpkg", lonlat=lonlat_of(*ORIGINAL), k=8
    )
    assert len(gpd.read_file(result.out, layer="hits")) == 8
    # Query + 3 hits: one row of 4 thumbnails.
    with Image.open(result.sheet) as image:
        width, height = image.size
    expected = 4 * TILE_INCHES / (TILE_INCHES + TITLE_INCHES + HEADING_INCHES)
    assert width / height == pytest.approx(expected, rel=0.02)


def test_geojson_output_is_lonlat(index: EmbedResult, tmp_path: Path) -> None:
    out = tmp_path / "hits.geojson"
    sheet = tmp_path / "sheet.png"
    result = search(index.path, out, lonlat=lonlat_of(*ORIGINAL), k=3, sheet=sheet)
    written = gpd.read_file(out)
    assert written.crs == "EPSG:4326"
    assert len(written) == 3
    centroid = written.geometry.iloc[0].centroid
    assert (centroid.x, centroid.y) == pytest.approx(lonlat_of(*COPY), abs=1e-6)
    assert result.sheet == sheet
    assert sheet.is_file()


def square_around(row: int, col: int) -> list[tuple[float, float]]:
    """Lon/lat ring of a 100 x 100 m square around a patch's centre."""
    x = FAKE_ORIGIN[0] + (col + PATCH / 2) * 10
    y = FAKE_ORIGIN[1] - (row + PATCH / 2) * 10
    corners = [(-50, -50), (50, -50), (50, 50), (-50, 50), (-50, -50)]
    return [TO_LONLAT.transform(x + dx, y + dy) for dx, dy in corners]


def polygon_file(path: Path, *rings: list[tuple[float, float]]) -> Path:
    """A GeoJSON file of one polygon per lon/lat ring."""
    features = [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
        for ring in rings
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_polygon_search(index: EmbedResult, tmp_path: Path) -> None:
    frame = gpd.read_parquet(index.path)
    one = polygon_file(tmp_path / "one.geojson", square_around(*ORIGINAL))
    result = search(index.path, tmp_path / "one.gpkg", polygon=one, k=4)
    assert [place(frame, int(i)) for i in result.query_rows] == [ORIGINAL]
    assert place(result.hits, 0) == COPY
    two = polygon_file(
        tmp_path / "two.geojson", square_around(*ORIGINAL), square_around(32, 64)
    )
    result = search(index.path, tmp_path / "two.gpkg", polygon=two, k=4)
    assert sorted(place(frame, int(i)) for i in result.query_rows) == [
        ORIGINAL,
        (32, 64),
    ]
    assert {ORIGINAL, (32, 64)}.isdisjoint(
        {place(result.hits, i) for i in range(len(result.hits))}
    )


def test_a_polygon_smaller_than_a_patch_queries_the_patch_under_it(
    index: EmbedResult, tmp_path: Path
) -> None:
    frame = gpd.read_parquet(index.path)
    x = FAKE_ORIGIN[0] + (COPY[1] + PATCH / 2) * 10
    y = FAKE_ORIGIN[1] - (COPY[0] + PATCH / 2) * 10
    # 20 m square 60-80 m east and north of the patch centre: no centre inside.
    corners = [(60, 60), (80, 60), (80, 80), (60, 80), (60, 60)]
    ring = [TO_LONLAT.transform(x + dx, y + dy) for dx, dy in corners]
    small = polygon_file(tmp_path / "small.geojson", ring)
    result = search(index.path, tmp_path / "small.gpkg", polygon=small, k=1)
    assert [place(frame, int(i)) for i in result.query_rows] == [COPY]
    assert place(result.hits, 0) == ORIGINAL


def test_thumbnails_come_from_the_root_given(
    index: EmbedResult, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    search_module = importlib.import_module("torchgeo_simclr.embeddings.search")
    read: list[Path] = []
    real = search_module.read_thumbnails

    def recording(imagery: Path, *args: Any) -> Any:
        read.append(Path(imagery))
        return real(imagery, *args)

    monkeypatch.setattr(search_module, "read_thumbnails", recording)
    ring = square_around(*ORIGINAL)
    queries = {
        "lonlat": lonlat_of(*ORIGINAL),
        "polygon": polygon_file(tmp_path / "one.geojson", ring),
    }
    for name, value in queries.items():
        read.clear()
        out = tmp_path / f"{name}.gpkg"
        search(index.path, out, k=2, root=moved, **{name: value})  # type: ignore[arg-type]
        assert read == [moved, moved]


def test_thumbnails_without_imagery_are_reported(root: Path) -> None:
    far = np.array(FIRST_PATCH) + np.array([1e5, 0, 1e5, 0])
    footprints = np.stack([np.array(FIRST_PATCH), far])
    with pytest.warns(UserWarning, match=r"1 of 2 thumbnails have no imagery under"):
        tiles = read_thumbnails(root, FAKE_CRS, 10.0, footprints)
    assert tiles[0].any()
    assert not tiles[1].any()


def test_parquet_query(
    index: EmbedResult, simclr: Path, root: Path, tmp_path: Path
) -> None:
    """An index of the original patch alone, as the query."""
    query = embed(
        simclr, root, tmp_path / "field.parquet", bbox=FIRST_PATCH, bbox_crs=FAKE_CRS
    )
    assert query.rows == 1
    result = search(index.path, tmp_path / "hits.gpkg", query=query.path, k=5)
    assert len(result.query_rows) == 0
    assert place(result.hits, 0) == COPY
    assert result.hits["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert ORIGINAL not in {place(result.hits, i) for i in range(5)}


def test_a_query_of_another_patch_size_is_flagged(
    index: EmbedResult, simclr: Path, root: Path, tmp_path: Path
) -> None:
    query = embed(
        simclr,
        root,
        tmp_path / "wide.parquet",
        bbox=FIRST_PATCH,
        bbox_crs=FAKE_CRS,
        patch_size=2 * PATCH,
    )
    with pytest.warns(UserWarning, match=rf"holds {2 * PATCH} px patches but"):
        search(index.path, tmp_path / "hits.gpkg", query=query.path, k=2)


# --------------------------------------------------------------------------
# CLI


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command, expecting a one-line error."""
    capsys.readouterr()
    return cli_error_line(list(argv), capsys)


def test_embed_and_search_cli(
    simclr: Path, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.parquet"
    capsys.readouterr()
    main(
        [
            "embed",
            "--checkpoint",
            str(simclr),
            "--root",
            str(root),
            "--out",
            str(out),
            "--no-progress",
            "--batch-size",
            "16",
        ]
    )
    printed = capsys.readouterr().out
    assert "Embedded 30 patches (6 skipped" in printed
    assert re.search(r"in \d+\.\d s \([\d,]+ patches/s\)", printed)
    assert str(out) in printed
    hits = tmp_path / "hits.gpkg"
    lon, lat = lonlat_of(*ORIGINAL)
    main(
        [
            "search",
            "--index",
            str(out),
            "--lonlat",
            str(lon),
            str(lat),
            "--k",
            "3",
            "--out",
            str(hits),
            "--checkpoint",
            str(simclr),
        ]
    )
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == [
        "rank",
        "similarity",
        "lon",
        "lat",
        "date",
    ]
    assert printed.splitlines()[1].split()[:2] == ["1", "1.0000"]
    assert printed.splitlines()[1].split()[4] == "2023-07-15"  # printed ">10" once
    assert hits.is_file()
    assert hits.with_suffix(".png").is_file()


def test_search_prints_the_best_hits_only(
    index: EmbedResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --k 100000 printed every row to the terminal; the file has them all.
    monkeypatch.setattr(embedding_commands, "PRINTED_HITS", 2)
    hits = tmp_path / "hits.gpkg"
    lonlat = [*map(str, lonlat_of(*ORIGINAL))]
    capsys.readouterr()
    main(
        [
            "search",
            "--index",
            str(index.path),
            "--lonlat",
            *lonlat,
            "--k",
            "5",
            "--out",
            str(hits),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"]
    assert lines[3] == f"... and 3 more in {hits}"
    assert len(gpd.read_file(hits, layer="hits")) == 5


def test_search_errors(
    index: EmbedResult,
    other_simclr: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = str(tmp_path / "hits.gpkg")

    def search(*query: str) -> str:
        index_and_out = ["--index", str(index.path), "--out", out]
        return cli_error(capsys, "search", *index_and_out, *query)

    err = search("--lonlat", "-100", "40")
    assert "lies outside the indexed area" in err
    assert "which covers lon/lat [" in err
    err = search("--geojson", str(tmp_path))
    assert f"--geojson {str(tmp_path)!r} is a folder; pass a GeoJSON file" in err
    err = cli_error(
        capsys, "search", "--index", str(tmp_path), "--out", out, "--lonlat", "0", "0"
    )
    assert f"--index {str(tmp_path)!r} is a folder; pass an index" in err
    err = search("--lonlat", *map(str, lonlat_of(0, 160)))
    assert "lies outside the indexed area" in err
    lon, lat = lonlat_of(*ORIGINAL)
    err = search("--lonlat", str(lat), str(lon))
    assert "look swapped" in err
    assert err.rstrip().endswith(f"pass --lonlat {lon:.10g} {lat:.10g}.")
    far = polygon_file(
        tmp_path / "far.geojson", [(-100, 40), (-99, 40), (-99, 41), (-100, 40)]
    )
    err = search("--geojson", str(far))
    assert "lies outside the indexed area" in err
    garbled = tmp_path / "garbled.geojson"
    garbled.write_text("not json")
    err = search("--geojson", str(garbled))
    assert f"--geojson {str(garbled)!r} is not a vector file GDAL reads" in err
    err = search(
        "--lonlat", *map(str, lonlat_of(*ORIGINAL)), "--checkpoint", str(other_simclr)
    )
    info = read_info(index.path)
    other_id = file_digest(other_simclr)[:16]
    assert f"made by checkpoint {info.checkpoint!r} (id {info.checkpoint_id})" in err
    assert f"you gave {str(other_simclr)!r} (id {other_id})" in err
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    err = search(
        "--lonlat", *map(str, lonlat_of(*ORIGINAL)), "--checkpoint", str(notes)
    )
    assert "is not a readable PyTorch checkpoint" in err
    assert "re-run embed with" not in err
    notes.unlink()
    assert not (tmp_path / "hits.gpkg").exists()
    assert hidden(tmp_path) == []


def test_query_from_another_checkpoint(
    index: EmbedResult,
    other_simclr: Path,
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    query = embed(
        other_simclr, root, tmp_path / "q.parquet", bbox=FIRST_PATCH, bbox_crs=FAKE_CRS
    )
    err = cli_error(
        capsys,
        "search",
        "--index",
        str(index.path),
        "--query",
        str(query.path),
        "--out",
        str(tmp_path / "hits.gpkg"),
    )
    assert "embeddings of different encoders cannot be compared" in err
    assert file_digest(other_simclr)[:16] in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bbox", "-120.7", "37.0", "-120.7", "37.1"], r"with min < max"),
        (["--bbox", "-100", "40", "-99.5", "40.5"], r"does not overlap the imagery"),
        (
            ["--stride", str(PATCH + 1)],
            r"--stride 33 must be between 1 and the patch size 32",
        ),
        (["--stride", "0"], r"--stride: must be at least 1, got 0"),
        (["--patch-size", "2000"], r"2000 px is larger than the imagery .*192 x 192"),
        (["--device", "gpu"], r"--device 'gpu' is not a device"),
        (["--bbox-crs", "foo", "--bbox", "1", "2", "3", "4"], r"'foo' is not a CRS"),
        (
            [
                "--bbox",
                *map(str, NODATA_STRIP),
                "--bbox-crs",
                FAKE_CRS,
            ],
            r"all 1 patches over the region are more than half nodata",
        ),
    ],
)
def test_embed_errors(
    simclr: Path,
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    err = embed_error(capsys, simclr, root, tmp_path / "index.parquet", *extra)
    assert re.search(message, err)
    assert list(tmp_path.iterdir()) == []


def embed_error(
    capsys: pytest.CaptureFixture[str],
    simclr: Path,
    root: Path,
    out: Path,
    *extra: str,
) -> str:
    """Run ``embed`` of *root* into *out*, expecting a one-line error."""
    return cli_error(
        capsys,
        "embed",
        "--checkpoint",
        str(simclr),
        "--root",
        str(root),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    )


def test_an_index_is_not_written_over_a_folder(
    simclr: Path, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "index.parquet"
    folder.mkdir()
    err = embed_error(capsys, simclr, root, folder, "--overwrite")
    assert f"--out {str(folder)!r} is a folder" in err
    assert list(tmp_path.iterdir()) == [folder]


def test_outputs_are_not_overwritten(
    index: EmbedResult,
    found: SearchResult,
    simclr: Path,
    root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = sha256(index.path)
    err = cli_error(
        capsys,
        "embed",
        "--checkpoint",
        str(simclr),
        "--root",
        str(root),
        "--out",
        str(index.path),
    )
    assert "already exists; pass --overwrite" in err
    assert sha256(index.path) == before
    hits = (sha256(found.out), sha256(found.sheet))
    err = cli_error(
        capsys,
        "search",
        "--index",
        str(index.path),
        "--lonlat",
        *map(str, lonlat_of(*ORIGINAL)),
        "--out",
        str(found.out),
    )
    assert f"{found.out} and {found.sheet} already exist; pass --overwrite" in err
    assert (sha256(found.out), sha256(found.sheet)) == hits
    err = cli_error(
        capsys,
        "search",
        "--index",
        str(index.path),
        "--lonlat",
        *map(str, lonlat_of(*ORIGINAL)),
        "--out",
        str(found.out.with_name("new.gpkg")),
        "--sheet",
        str(found.out.with_name("sheet.jpg")),
    )
    assert "sheet.jpg' must end in .png" in err


def test_search_never_writes_over_its_inputs(
    index: EmbedResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`search --geojson F --out F --overwrite` replaced the query with the hits."""
    polygon = polygon_file(tmp_path / "fields.geojson", square_around(*ORIGINAL))
    before = sha256(polygon)
    query = ["search", "--index", str(index.path), "--geojson", str(polygon)]
    # Without --overwrite too: "already exists; pass --overwrite" led there.
    for extra in (["--overwrite"], []):
        err = cli_error(capsys, *query, "--out", str(polygon), *extra)
        assert err.endswith(
            f"--out {str(polygon)!r} is the query polygon (--geojson); choose "
            "another --out."
        )
    link = tmp_path / "hits.geojson"
    link.symlink_to(polygon)
    err = cli_error(capsys, *query, "--out", str(link), "--overwrite")
    assert err.endswith(
        f"--out {str(link)!r} is the query polygon (--geojson {str(polygon)!r}); "
        "choose another --out."
    )
    assert sha256(polygon) == before
    assert link.is_symlink()
    assert sorted(tmp_path.iterdir()) == [polygon, link]


def test_search_outputs_that_are_folders_are_refused(
    index: EmbedResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They failed after the search ("[Errno 21] Is a directory")."""
    lonlat = [*map(str, lonlat_of(*ORIGINAL))]
    query = ["search", "--index", str(index.path), "--lonlat", *lonlat, "--overwrite"]
    folders = [tmp_path / name for name in ("hits.gpkg", "results", "h.png")]
    for folder in folders:
        folder.mkdir()
    for out in folders[:2]:  # "results" was told it "must end in .gpkg"
        err = cli_error(capsys, *query, "--out", str(out))
        assert err.endswith(
            f"--out {str(out)!r} is a folder; pass a file name, e.g. "
            f"{out / 'hits.gpkg'}."
        )
    sheet = folders[2]
    out = tmp_path / "h.gpkg"
    err = cli_error(capsys, *query, "--out", str(out))
    assert err.endswith(
        f"--out {str(out)!r} would write the contact sheet {str(sheet)!r}, which is "
        f"a folder; pass --sheet with another name, e.g. {tmp_path / 'h_sheet.png'}."
    )
    err = cli_error(capsys, *query, "--out", str(out), "--sheet", str(sheet))
    assert err.endswith(
        f"--sheet {str(sheet)!r} is a folder; choose another --sheet, e.g. "
        f"{sheet / 'hits.png'}."
    )
    assert sorted(tmp_path.iterdir()) == sorted(folders)
    assert all(list(folder.iterdir()) == [] for folder in folders)


def user_parquet(path: Path) -> Path:
    """A user's own GeoParquet file: fields, not an index."""
    fields = gpd.GeoDataFrame(
        {"crop": ["alfalfa"]}, geometry=[shapely.box(*FIRST_PATCH)], crs=FAKE_CRS
    )
    fields.to_parquet(path)
    return path


def not_ours(named: str, what: str, why: str, fix: str = "choose another --out") -> str:
    """The refusal of a file that --overwrite may not replace."""
    return (
        f"{named} is not {what} ({why}), so even --overwrite does not replace it; "
        f"{fix} or remove it yourself (nothing was written)."
    )


def test_embed_overwrites_only_an_index(
    index: EmbedResult,
    simclr: Path,
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`embed --out my_fields.parquet --overwrite` replaced a user's GeoParquet."""
    mine = user_parquet(tmp_path / "my_fields.parquet")
    notes = tmp_path / "notes.parquet"
    notes.write_text("keep me")
    kept = {path: sha256(path) for path in (mine, notes)}
    what = "an embeddings index written by embed"
    whys = {mine: "no torchgeo_simclr metadata", notes: "not a Parquet file"}
    for path, why in whys.items():
        for extra in (["--overwrite"], []):
            err = embed_error(capsys, simclr, root, path, *extra)
            assert err.endswith(not_ours(f"--out {str(path)!r}", what, why))
    assert {path: sha256(path) for path in kept} == kept
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    # An index embed wrote is replaced, here by one of the first patch only.
    earlier = tmp_path / "earlier.parquet"
    shutil.copyfile(index.path, earlier)
    with pytest.raises(FileExistsError, match=r"already exists; pass --overwrite"):
        embed(simclr, root, earlier, bbox=FIRST_PATCH, bbox_crs=FAKE_CRS)
    embed(simclr, root, earlier, bbox=FIRST_PATCH, bbox_crs=FAKE_CRS, overwrite=True)
    assert pq.read_metadata(earlier).num_rows == 1
    assert hidden(tmp_path) == []


def test_embed_rechecks_its_output_before_renaming(
    simclr: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file put at --out while the patches were embedded is kept."""
    out = tmp_path / "index.parquet"
    embed_module = importlib.import_module("torchgeo_simclr.embeddings.embed")
    original = embed_module.Embedder.__call__

    def meanwhile(self: Any, image: Tensor, valid: Tensor) -> Any:
        if not out.exists():
            user_parquet(out)
        return original(self, image, valid)

    monkeypatch.setattr(embed_module.Embedder, "__call__", meanwhile)
    with pytest.raises(FileExistsError, match=r"not an embeddings index written"):
        embed(simclr, root, out, bbox=FIRST_PATCH, bbox_crs=FAKE_CRS, overwrite=True)
    assert gpd.read_parquet(out)["crop"].tolist() == ["alfalfa"]
    assert hidden(tmp_path) == []


def user_png(path: Path) -> Path:
    """A user's own picture, drawn with Matplotlib as the package's are."""
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1])
    figure.savefig(path, format="png")
    return path


def test_search_overwrites_only_its_own_outputs(
    index: EmbedResult,
    found: SearchResult,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`search --out crops.gpkg --overwrite` replaced a user's GeoPackage."""
    lonlat = [*map(str, lonlat_of(*ORIGINAL))]
    query = ["search", "--index", str(index.path), "--lonlat", *lonlat, "--k", "3"]
    crops = tmp_path / "crops.gpkg"
    fields = gpd.GeoDataFrame(
        {"crop": ["alfalfa"]}, geometry=[shapely.box(*FIRST_PATCH)], crs=FAKE_CRS
    )
    fields.to_file(crops, layer="crops")
    crops_json = tmp_path / "crops.geojson"
    fields.to_file(crops_json, driver="GeoJSON")
    notes = tmp_path / "notes.geojson"
    notes.write_text("keep me")
    # An earlier search's hits that the user labelled in QGIS.
    labelled = tmp_path / "labelled.gpkg"
    hits = gpd.read_file(found.out, layer="hits")
    hits["label"] = "irrigated"
    hits.to_file(labelled, layer="labelled")
    what = "a hits file written by search"
    whys = {
        crops: "no 'rank' column",
        crops_json: "no 'rank' column",
        notes: "not a GeoJSON file",
        labelled: "a column 'label' that search does not write",
    }
    picture = user_png(tmp_path / "picture.png")
    text = tmp_path / "text.png"
    text.write_text("keep me")
    kept = {path: sha256(path) for path in (*whys, picture, text)}
    for out, why in whys.items():
        for extra in (["--overwrite"], []):
            err = cli_error(capsys, *query, "--out", str(out), *extra)
            assert err.endswith(not_ours(f"--out {str(out)!r}", what, why))
    sheet_what = "a contact sheet drawn by search"
    no_mark = "no 'Software' text of torchgeo-simclr"
    new = tmp_path / "new.gpkg"
    sheets = {picture: no_mark, text: "not an image"}
    for sheet, why in sheets.items():
        err = cli_error(
            capsys, *query, "--out", str(new), "--sheet", str(sheet), "--overwrite"
        )
        fix = "choose another --sheet"
        assert err.endswith(not_ours(f"--sheet {str(sheet)!r}", sheet_what, why, fix))
    out = tmp_path / "picture.gpkg"  # its sheet would be picture.png
    err = cli_error(capsys, *query, "--out", str(out), "--overwrite")
    named = f"--out {str(out)!r} would write the contact sheet {str(picture)!r}, which"
    fix = "pass --sheet with another name"
    assert err.endswith(not_ours(named, sheet_what, no_mark, fix))
    assert {path: sha256(path) for path in kept} == kept
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    # An earlier search's hits and sheet are replaced: 8 hits by 3.
    for suffix in (".gpkg", ".png"):
        shutil.copyfile(found.out.with_suffix(suffix), tmp_path / f"hits{suffix}")
    out = tmp_path / "hits.gpkg"
    err = cli_error(capsys, *query, "--out", str(out))
    assert err.endswith("pass --overwrite to replace them.")
    main([*query, "--out", str(out), "--overwrite"])
    assert len(gpd.read_file(out, layer="hits")) == 3
    with Image.open(out.with_suffix(".png")) as image:
        width, height = image.size
    assert width / height == pytest.approx(
        4 * TILE_INCHES / (TILE_INCHES + TITLE_INCHES + HEADING_INCHES), rel=0.02
    )
    # And a GeoJSON one.
    out = tmp_path / "hits.geojson"
    search(index.path, out, lonlat=lonlat_of(*ORIGINAL), k=3, sheet=tmp_path / "s.png")
    search(
        index.path,
        out,
        lonlat=lonlat_of(*ORIGINAL),
        k=2,
        sheet=tmp_path / "s.png",
        overwrite=True,
    )
    assert len(gpd.read_file(out)) == 2
    assert hidden(tmp_path) == []


def test_a_backbone_of_one_input_size_is_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ViT takes 224 px only: embedding other patch sizes failed in timm.
    task = SimCLRv2Task(model="vit_tiny_patch16_224", in_channels=12, output_dim=16)
    vit = save(task, tmp_path / "vit.ckpt")
    err = embed_error(capsys, vit, root, tmp_path / "i.parquet", "--patch-size", "32")
    assert "'vit_tiny_patch16_224' takes only 224 x 224 px inputs" in err
    assert "set --patch-size 224" in err


def test_outputs_under_a_file_are_refused_before_any_work(
    index: EmbedResult,
    simclr: Path,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `--out notes.txt/x` was a bare "[Errno 17] File exists" (embedding-map:
    # after the whole t-SNE; download: a traceback after the catalogue search).
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    lonlat = [*map(str, lonlat_of(*ORIGINAL))]
    monkeypatch.setattr(projection, "project", forbidden)
    monkeypatch.setattr(download_run, "open_catalog", forbidden)
    commands = {
        "embed": ["--checkpoint", str(simclr), "--root", str(root), "--no-progress"],
        "search": ["--index", str(index.path), "--lonlat", *lonlat],
        "embedding-map": ["--index", str(index.path)],
        "download": [
            *("--bbox", "-120.62", "36.60", "-120.40", "36.78"),
            *("--start", "2023-07-01", "--end", "2023-08-31"),
        ],
    }
    names = {"embed": "i.parquet", "search": "h.gpkg", "embedding-map": "m.png"}
    for command, arguments in commands.items():
        out = notes / names[command] if command in names else notes / "scene"
        err = cli_error(capsys, command, *arguments, "--out", str(out))
        assert f"({str(notes)!r} is a file); pass --out in a directory" in err
    sheet = ["--out", str(tmp_path / "h.gpkg"), "--sheet", str(notes / "s.png")]
    err = cli_error(capsys, "search", *commands["search"], *sheet)
    assert f"({str(notes)!r} is a file); pass --sheet in a directory" in err
    assert sorted(tmp_path.iterdir()) == [notes]
    assert notes.read_text() == "keep me"


def forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("work started before the output was checked")


def test_embedding_map_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sub-command hands its options to embedding_map."""
    calls: list[dict[str, Any]] = []

    def embedding_map(**kwargs: Any) -> Path:
        calls.append(kwargs)
        return Path(kwargs["out"])

    module = types.ModuleType("torchgeo_simclr.embeddings.projection")
    module.embedding_map = embedding_map  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchgeo_simclr.embeddings.projection", module)
    main(["embedding-map", "--index", "a.parquet", "--out", str(tmp_path / "map.png")])
    assert calls[-1] == {
        "index": Path("a.parquet"),
        "out": tmp_path / "map.png",
        "labels": None,
        "class_column": "CLASS2",
        "class_map": None,
        "root": None,
        "thumbnails": 0,
        "max_points": 5000,
        "perplexity": 30.0,
        "seed": 0,
        "overwrite": False,
        "progress": False,  # stderr is no terminal under pytest
    }
    assert str(tmp_path / "map.png") in capsys.readouterr().out
    main(
        [
            "embedding-map",
            "--index",
            "a.parquet",
            "--out",
            "m.png",
            "--labels",
            "l.gpkg",
            "--class-column",
            "CROP",
            "--class-map",
            "P=1",
            "N=0",
            "--root",
            "r",
            "--thumbnails",
            "12",
            "--max-points",
            "100",
            "--perplexity",
            "5",
            "--seed",
            "3",
            "--overwrite",
            "--no-progress",
        ]
    )
    assert calls[-1] == {
        "index": Path("a.parquet"),
        "out": Path("m.png"),
        "labels": Path("l.gpkg"),
        "class_column": "CROP",
        "class_map": {"P": 1, "N": 0},
        "root": Path("r"),
        "thumbnails": 12,
        "max_points": 100,
        "perplexity": 5.0,
        "seed": 3,
        "overwrite": True,
        "progress": False,
    }


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_embedding_map_refuses_a_perplexity_that_is_not_above_zero(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NaN and inf passed the parser and stopped in scikit-learn, whose message
    # did not name --perplexity.
    out = tmp_path / "map.png"
    err = cli_error(
        capsys,
        "embedding-map",
        "--index",
        "a.parquet",
        "--out",
        str(out),
        "--perplexity",
        value,
    )
    assert (
        f"--perplexity: must be a finite number above 0 (e.g. 30), got {value}" in err
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "queries",
    [[], ["--lonlat", "1", "2", "--query", "q.parquet"]],
)
def test_search_takes_one_query(queries: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(
            ["search", "--index", "a", "--out", "b.gpkg", *queries]
        )
    assert info.value.code == 2


def july_and_august(root: Path, imagery: Path) -> tuple[Path, Path]:
    """The test scene (2023-07-15) and a copy of it dated 2023-08-20, in *imagery*."""
    shutil.copytree(root / "sentinel2", imagery)
    (july,) = imagery.iterdir()
    august = imagery / july.name.replace("20230715", "20230820")
    shutil.copy(july, august)
    return july, august


def test_a_patch_is_dated_by_the_scene_its_pixels_come_from(
    simclr: Path, root: Path, tmp_path: Path
) -> None:
    # Where scenes overlap, the mosaic takes the newest one's pixels; the row
    # had the earliest scene's date, so a search hit named the wrong date.
    imagery = tmp_path / "imagery"
    july, august = july_and_august(root, imagery)
    with rasterio.open(august, "r+") as dst:
        dst.write((scene_pixels() // 2).clip(0, None) + (scene_pixels() > 0))
    both = gpd.read_parquet(embed(simclr, imagery, tmp_path / "both.parquet").path)
    july.unlink()
    alone = gpd.read_parquet(embed(simclr, imagery, tmp_path / "aug.parquet").path)
    assert set(both["date"]) == {date(2023, 8, 20)}
    np.testing.assert_array_equal(
        np.stack(both["embedding"].to_numpy()), np.stack(alone["embedding"].to_numpy())
    )


def test_a_patch_under_a_gap_in_the_newest_scene_has_the_older_date(
    simclr: Path, root: Path, tmp_path: Path
) -> None:
    # The row took the newest scene whose outline covers the patch, though
    # a cloud (or swath edge) there left the pixels to the older one.
    imagery = tmp_path / "imagery"
    _, august = july_and_august(root, imagery)
    with rasterio.open(august, "r+") as dst:
        dst.write(np.zeros((12, 96, 96), np.uint16), window=Window(0, 0, 96, 96))
    result = embed(simclr, imagery, tmp_path / "index.parquet")
    index = pq.read_table(result.path).to_pandas()
    size = read_info(result.path).patch_size
    under = (index["row"] + size <= 96) & (index["col"] + size <= 96)
    beside = (index["row"] >= 96) | (index["col"] >= 96)
    assert under.sum() >= 1
    assert set(index.loc[under, "date"]) == {date(2023, 7, 15)}
    assert set(index.loc[beside, "date"]) == {date(2023, 8, 20)}


def test_scenes_without_a_date_get_an_unknown_date(
    simclr: Path, tmp_path: Path
) -> None:
    # torchgeo indexes a file whose name carries no date from 1677-09-21 on,
    # and that date went into the index, the hits and the maps' metadata.
    fake_s2_per_band(tmp_path / "imagery", product="unnamed")
    with pytest.warns(UserWarning, match=r"1 of 1 Sentinel-2 file\(s\).*no sensing"):
        embed(simclr, tmp_path / "imagery", tmp_path / "index.parquet")
    dates = pq.read_table(tmp_path / "index.parquet").column("date")
    assert len(dates) > 0
    assert dates.null_count == len(dates)


def test_patches_under_an_scl_cloud_are_left_out(
    simclr: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A search hit on a cloud would point the scientist at cloud tops.
    # Thin cirrus (SCL class 10) over columns 64-127 of the 10 m grid.
    fake_s2_with_scl(tmp_path / "imagery", np.s_[:, 32:64], 10)
    masked = embed(simclr, tmp_path / "imagery", tmp_path / "masked.parquet")
    kept = embed(
        simclr, tmp_path / "imagery", tmp_path / "kept.parquet", mask_clouds=False
    )
    rows = FAKE_SIZE // PATCH
    assert kept.skipped == 0
    assert masked.skipped == 2 * rows  # the two columns of patches under it
    assert masked.rows + masked.skipped == kept.rows
    # Grown 100 m more, the cloud covers most of a patch column on each side.
    buffered = tmp_path / "buffered.parquet"
    main(
        [
            "embed",
            "--checkpoint",
            str(simclr),
            "--root",
            str(tmp_path / "imagery"),
            "--out",
            str(buffered),
            "--cloud-buffer",
            "100",
            "--no-progress",
        ]
    )
    assert pq.read_metadata(buffered).num_rows == kept.rows - 4 * rows
    out = str(tmp_path / "hits.gpkg")
    lon, lat = lonlat_of(0, 64)
    err = cli_error(
        capsys,
        "search",
        "--index",
        str(masked.path),
        "--out",
        out,
        "--lonlat",
        str(lon),
        str(lat),
    )
    assert "lies in the indexed extent but on no indexed patch" in err
    assert "under masked clouds" in err


# --------------------------------------------------------------------------
# search --exclude, what the query is made of, and polygon files


def places(frame: gpd.GeoDataFrame) -> list[tuple[int, int]]:
    """(row, col) of every hit, best first."""
    return [place(frame, i) for i in range(len(frame))]


def test_exclude_leaves_out_labelled_hits_and_still_returns_k(
    index: EmbedResult, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """The curator loop: label a search's hits, then search again without them."""
    lonlat = lonlat_of(*ORIGINAL)
    deep = search(index.path, tmp_path / "deep.gpkg", lonlat=lonlat, k=11)
    assert len(deep.hits) == 11
    seen = search(index.path, tmp_path / "seen.gpkg", lonlat=lonlat, k=3)
    again = search(
        index.path, tmp_path / "again.gpkg", lonlat=lonlat, k=8, exclude=seen.out
    )
    # The search's own GeoPackage (hits + style table) is read without a warning.
    assert [str(w.message) for w in recwarn] == []
    assert places(again.hits) == places(deep.hits)[3:]
    np.testing.assert_allclose(again.hits["similarity"], deep.hits["similarity"][3:])
    # Only the 3 labelled patches: their neighbours touch them but are kept.
    assert again.excluded is not None
    assert again.excluded.polygons == 3
    frame = gpd.read_parquet(index.path)
    assert [place(frame, int(i)) for i in again.excluded.rows] == sorted(
        places(seen.hits)
    )
    # The same squares in lon/lat (GeoJSON) or California Albers (GeoParquet):
    # reprojection rounding does not reach into the neighbours either.
    lonlat_hits = tmp_path / "seen_lonlat.geojson"
    seen.hits.to_crs("EPSG:4326").to_file(lonlat_hits)
    albers = tmp_path / "seen_3310.parquet"
    seen.hits.to_crs("EPSG:3310").to_parquet(albers)
    for polygons in (lonlat_hits, albers):
        out = tmp_path / f"again_{polygons.suffix[1:]}.gpkg"
        result = search(index.path, out, lonlat=lonlat, k=8, exclude=polygons)
        assert result.excluded is not None
        np.testing.assert_array_equal(result.excluded.rows, again.excluded.rows)
        assert places(result.hits) == places(deep.hits)[3:]


def test_an_exclusion_off_the_index_warns_and_one_over_it_all_is_refused(
    index: EmbedResult, found: SearchResult, tmp_path: Path
) -> None:
    far = polygon_file(
        tmp_path / "far.geojson", [(-100, 40), (-99, 40), (-99, 41), (-100, 40)]
    )
    lonlat = lonlat_of(*ORIGINAL)
    with pytest.warns(UserWarning, match=r"overlaps no patch of --index") as caught:
        result = search(
            index.path, tmp_path / "a.gpkg", lonlat=lonlat, k=8, exclude=far
        )
    message = str(caught[0].message)
    assert f"--exclude {str(far)!r} (1 polygon, lon/lat [-100.0, 40.0" in message
    assert "check that it is the file you meant and that its CRS is right" in message
    assert result.excluded is not None
    assert len(result.excluded.rows) == 0
    assert places(result.hits) == places(found.hits)
    scene = shapely.box(
        FAKE_ORIGIN[0],
        FAKE_ORIGIN[1] - SIDE * 10,
        FAKE_ORIGIN[0] + SIDE * 10,
        FAKE_ORIGIN[1],
    )
    everything = tmp_path / "everything.gpkg"
    gpd.GeoDataFrame(geometry=[scene], crs=FAKE_CRS).to_file(everything)
    with pytest.raises(ValueError, match=r"has no patch besides the query's own") as e:
        search(index.path, tmp_path / "b.gpkg", lonlat=lonlat, k=8, exclude=everything)
    assert f"and the 30 patches --exclude {str(everything)!r} leaves out" in str(
        e.value
    )
    assert not (tmp_path / "b.gpkg").exists()


def utm_square_file(path: Path, row: int, col: int) -> Path:
    """A GeoJSON file of a 100 m square around a patch centre, in UTM metres
    but without a ``crs`` member (so lon/lat by the standard)."""
    x = FAKE_ORIGIN[0] + (col + PATCH / 2) * 10
    y = FAKE_ORIGIN[1] - (row + PATCH / 2) * 10
    corners = [(-50, -50), (50, -50), (50, 50), (-50, 50), (-50, -50)]
    return polygon_file(path, [(x + dx, y + dy) for dx, dy in corners])


def test_a_projected_geojson_without_a_crs_gets_a_crs_hint(
    index: EmbedResult, tmp_path: Path
) -> None:
    utm = utm_square_file(tmp_path / "utm_nocrs.geojson", *ORIGINAL)
    with pytest.raises(ValueError, match=r"look like projected metres") as error:
        search(index.path, tmp_path / "a.gpkg", polygon=utm, k=2)
    message = str(error.value)
    assert message.startswith(f"--geojson {str(utm)!r} is read as lon/lat")
    assert "a GeoJSON file without a crs member" in message
    assert "Export > Save Features As" in message
    assert "lies outside the indexed area" not in message
    lonlat = lonlat_of(*ORIGINAL)
    with pytest.raises(ValueError, match=r"look like projected metres") as error:
        search(index.path, tmp_path / "b.gpkg", lonlat=lonlat, k=2, exclude=utm)
    assert str(error.value).startswith(f"--exclude {str(utm)!r} is read as lon/lat")
    assert hidden(tmp_path) == []


def test_geojson_help_names_the_formats_that_work(
    index: EmbedResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(GeoJSON, lon/lat)" not in text
    for named in ("GeoJSON", "GeoPackage", "Shapefile", "GeoParquet", "any CRS"):
        assert named in text, named
    assert "--exclude PATH" in text
    # Each format the help names, in a CRS that is not the index's, is a query.
    frame = gpd.read_parquet(index.path)
    square = gpd.GeoDataFrame(
        geometry=[shapely.Polygon(square_around(*ORIGINAL))], crs="EPSG:4326"
    ).to_crs("EPSG:3310")
    files = [tmp_path / f"field.{suffix}" for suffix in ("gpkg", "shp", "geojson")]
    for path in files:
        square.to_file(path)
    square.to_parquet(tmp_path / "field.parquet")
    for path in [*files, tmp_path / "field.parquet"]:
        out = tmp_path / f"hits_{path.suffix[1:]}.gpkg"
        result = search(index.path, out, polygon=path, k=1)
        assert [place(frame, int(i)) for i in result.query_rows] == [ORIGINAL], path


def test_search_cli_says_what_the_query_is_and_what_was_left_out(
    index: EmbedResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = polygon_file(
        tmp_path / "two.geojson", square_around(*ORIGINAL), square_around(32, 64)
    )
    seen = search(index.path, tmp_path / "seen.gpkg", polygon=two, k=3)
    assert (
        seen.query == f"mean of 2 patches centred inside the 2 polygons of {str(two)!r}"
    )
    capsys.readouterr()
    hits = tmp_path / "hits.gpkg"
    main(
        [
            "search",
            "--index",
            str(index.path),
            "--geojson",
            str(two),
            "--exclude",
            str(seen.out),
            "--k",
            "4",
            "--out",
            str(hits),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert (
        f"Query: mean of 2 patches centred inside the 2 polygons of {str(two)!r}"
        in lines
    )
    left_out = (
        f"Left out 3 patches that the 3 polygons of {str(seen.out)!r} (--exclude) "
        "reach into"
    )
    assert left_out in lines
    written = gpd.read_file(hits, layer="hits")
    assert len(written) == 4
    assert set(places(written)).isdisjoint(places(seen.hits))
    # A polygon smaller than a patch says it holds no patch centre.
    x = FAKE_ORIGIN[0] + (COPY[1] + PATCH / 2) * 10
    y = FAKE_ORIGIN[1] - (COPY[0] + PATCH / 2) * 10
    corners = [(60, 60), (80, 60), (80, 80), (60, 80), (60, 60)]
    small = polygon_file(
        tmp_path / "small.geojson",
        [TO_LONLAT.transform(x + dx, y + dy) for dx, dy in corners],
    )
    result = search(index.path, tmp_path / "small.gpkg", polygon=small, k=1)
    assert result.query == (
        f"mean of 1 patch under the 1 polygon of {str(small)!r} "
        "(none holds a patch centre)"
    )


def test_a_file_query_says_how_many_patches_it_is_the_mean_of(
    index: EmbedResult, simclr: Path, root: Path, tmp_path: Path
) -> None:
    top = (FIRST_PATCH[0], FIRST_PATCH[1], FIRST_PATCH[2] + PATCH * 10, FIRST_PATCH[3])
    query = embed(simclr, root, tmp_path / "two.parquet", bbox=top, bbox_crs=FAKE_CRS)
    assert query.rows == 2
    result = search(index.path, tmp_path / "hits.gpkg", query=query.path, k=2)
    assert result.query == f"mean of 2 patches of {str(query.path)!r}"
    assert result.excluded is None


def test_search_never_writes_over_its_exclusion_file(
    found: SearchResult, index: EmbedResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--exclude hits.gpkg --out hits.gpkg --overwrite` would lose the labels."""
    before = sha256(found.out)
    lonlat = [*map(str, lonlat_of(*ORIGINAL))]
    err = cli_error(
        capsys,
        "search",
        "--index",
        str(index.path),
        "--lonlat",
        *lonlat,
        "--exclude",
        str(found.out),
        "--out",
        str(found.out),
        "--overwrite",
    )
    assert err.endswith(
        f"--out {str(found.out)!r} is the polygons left out (--exclude); choose "
        "another --out."
    )
    assert sha256(found.out) == before
