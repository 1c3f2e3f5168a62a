"""Files written under a temporary name of their own, renamed once complete.

A downloaded scene, the sample scene, the BigEarthNet label cache and the
band statistics cache: a failure midway leaves neither the file nor a
temporary one, and two writers of one file never share a temporary name.
"""

import csv
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rasterio
import torch
from pystac import Item
from stac_server import fake_item
from test_bigearthnet import FAKE_LABELS, patch_name, write_patch

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules import statistics
from torchgeo_simclr.datasets import BigEarthNetIrrigation
from torchgeo_simclr.download.scene import write_scene
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.sample import scene as sample_scene

#: A product of tile 10SFG (see stac_server.fake_item).
PRODUCT = "S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_20230715T223344"

#: About 90 x 110 px of 10 m inside the fake 10SFG scene.
BBOX = (-120.75, 36.99, -120.74, 37.0)

#: The process id a second, concurrent writer is given.
OTHER_PID = 4_000_007


@contextmanager
def other_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A block in which this process writes as another one would."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "getpid", lambda: OTHER_PID)
        yield


def everything(folder: Path) -> list[str]:
    """The names of all files under *folder*, hidden ones included."""
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def item(tmp_path: Path) -> Item:
    """A scene's STAC item whose band COGs are local files."""
    server = SimpleNamespace(files=tmp_path / "files", url="http://unused", items=[])
    fake = fake_item(server, PRODUCT, "2023-07-15T18:49:19Z", 5.0)  # type: ignore[arg-type]
    for asset in fake["assets"].values():
        band = asset["href"].rsplit("/", 1)[-1]
        asset["href"] = str(server.files / PRODUCT / band)
    return Item.from_dict(fake)


def test_a_scene_download_failing_midway_leaves_no_file(
    item: Item, tmp_path: Path
) -> None:
    out = tmp_path / "sentinel2"
    out.mkdir()
    path = out / f"{PRODUCT}.tif"

    def broken(band: str) -> None:
        if band == S2_BANDS[3]:
            raise ConnectionResetError(band)

    with pytest.raises(ConnectionResetError):
        write_scene(item, BBOX, path, on_band=broken)
    assert everything(out) == []


def test_two_downloads_of_one_scene_at_once_both_finish_it(
    item: Item, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two `download` runs into one --out: the second writes the same scene
    # while the first is midway. They used to share `.NAME.tif.partial`, and
    # the first then found it gone (renamed by the second) at the end.
    out = tmp_path / "sentinel2"
    out.mkdir()
    path = out / f"{PRODUCT}.tif"
    seconds = []

    def second(band: str) -> None:
        if band == S2_BANDS[3] and not seconds:
            with other_process(monkeypatch):
                seconds.append(write_scene(item, BBOX, path))

    first = write_scene(item, BBOX, path, on_band=second)
    assert first is not None
    assert len(seconds) == 1
    assert everything(out) == [path.with_suffix(".qml").name, path.name]
    with rasterio.open(path) as src:
        assert src.descriptions == tuple(S2_BANDS)
        assert (src.read() > 0).all()


def test_a_sample_scene_failing_midway_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_sample_scene(tmp_path, size=64, seed=1)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*.*")}

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sample_scene, "write_geopackage", broken)
    with pytest.raises(OSError, match="No space"):
        make_sample_scene(tmp_path, size=64, seed=2, overwrite=True)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*.*")} == before
    assert everything(tmp_path) == sorted(
        p.name for p in [*old.image_paths, *old.style_paths, old.labels_path]
    )


def test_two_sample_scenes_written_at_once_into_one_folder_both_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second starts once the first has written its tiles: it used to
    # remove the first's temporary files (the same `.partial-NAME`).
    write_geopackage = sample_scene.write_geopackage
    started = []

    def second(*args: Any, **kwargs: Any) -> None:
        if not started:
            started.append(True)
            with other_process(monkeypatch):
                make_sample_scene(tmp_path, size=64, overwrite=True)
        write_geopackage(*args, **kwargs)

    monkeypatch.setattr(sample_scene, "write_geopackage", second)
    first = make_sample_scene(tmp_path, size=64, overwrite=True)
    paths = [*first.image_paths, *first.style_paths, first.labels_path]
    assert everything(tmp_path) == sorted(path.name for path in paths)
    with rasterio.open(first.image_paths[0]) as src:
        assert src.tags()["MGRS_TILE"] == "10SFG"  # named after the final file


def test_the_label_cache_interrupted_midway_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write_patch(tmp_path, patch_name(i), FAKE_LABELS[i], i)
    writer = csv.writer

    class Interrupted:
        def __init__(self, file: Any) -> None:
            self.rows = writer(file)

        def writerow(self, row: list[str]) -> None:
            self.rows.writerow(row)

        def writerows(self, rows: Any) -> None:
            self.rows.writerow(next(iter(rows)))
            raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(csv, "writer", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        BigEarthNetIrrigation(tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []
    monkeypatch.undo()
    dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    assert len(dataset) == 3
    assert (tmp_path / BigEarthNetIrrigation.cache_name).is_file()


def test_a_statistics_cache_failing_midway_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mean, std = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    monkeypatch.setattr(statistics, "band_statistics", lambda *args: (mean, std))
    write_text = Path.write_text

    def disk_full(path: Path, text: str, *args: Any, **kwargs: Any) -> int:
        write_text(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", disk_full)
        with pytest.warns(UserWarning, match="Could not cache band statistics"):
            found = statistics.cached_band_statistics(None, [], "key", tmp_path)  # type: ignore[arg-type]
    assert [t.tolist() for t in found] == [[1.0, 2.0], [3.0, 4.0]]
    assert everything(tmp_path) == []
    statistics.cached_band_statistics(None, [], "key", tmp_path)  # type: ignore[arg-type]
    assert everything(tmp_path) == ["key.json"]


def test_a_statistics_cache_that_cannot_take_its_name_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mean, std = torch.tensor([1.0]), torch.tensor([2.0])
    monkeypatch.setattr(statistics, "band_statistics", lambda *args: (mean, std))
    (tmp_path / "stats" / "key.json").mkdir(parents=True)  # the rename fails
    with pytest.warns(UserWarning, match="Could not cache band statistics"):
        statistics.cached_band_statistics(None, [], "key", tmp_path)  # type: ignore[arg-type]
    assert [p.name for p in (tmp_path / "stats").iterdir()] == ["key.json"]
