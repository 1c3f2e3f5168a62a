"""Which dates are read: --start/--end, time order, and saying which dates."""

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
from conftest import (
    FAKE_ORIGIN,
    FAKE_PRODUCT,
    FAKE_SIZE,
    cli_error_line,
    fake_s2_multiband,
    fake_s2_per_band,
    fake_s2_value,
    save_checkpoint,
)
from jsonargparse import ArgumentParser
from stac_server import StacServer, fake_item, serve

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules import (
    CentralValleyDataModule,
    MapDataModule,
    central_valley,
)
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.datasets.dates import sensing_date
from torchgeo_simclr.days import dates_note
from torchgeo_simclr.download import DownloadRequest
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.tasks import SimCLRv2Task

#: Products of one tile on three days, named so that path order is not time
#: order, with what each adds to the fake values.
JUNE = "S2C_MSIL2A_20230604T184919_N0509_R070_T10SFG_20230604T223344"
JULY = FAKE_PRODUCT  # S2B, 2023-07-15
AUGUST = "S2A_MSIL2A_20230814T184919_N0509_R070_T10SFG_20230814T223344"
OFFSETS = {JUNE: 10, JULY: 0, AUGUST: 30}

#: The whole fake scene as a query.
X0, Y0 = FAKE_ORIGIN
SIDE = FAKE_SIZE * 10.0
SCENE = np.s_[X0 : X0 + SIDE, Y0 - SIDE : Y0]

#: Training patch side of the tiny checkpoints, pixels.
PATCH = 64


def add(path: Path, offset: int, hole: int = 0) -> None:
    """Add *offset* to every band of a file, and blank its top-left *hole* px."""
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[data > 0] += offset
        data[:, :hole, :hole] = 0
        dst.write(data)


def three_days(root: Path, holes: bool = False) -> Path:
    """Multi-band scenes of June, July and August over one tile.

    With *holes*, August lacks data in its top-left 128 px and July in its
    top-left 64 px, so a mosaic takes pixels of all three days.
    """
    for name, offset in OFFSETS.items():
        path = fake_s2_multiband(root, name=f"{name}.tif")
        hole = {AUGUST: 128, JULY: 64}.get(name, 0) if holes else 0
        add(path, offset, hole)
    return root


def per_band_days(root: Path, names: dict[str, int]) -> Path:
    """Per-band products (B04 only) named *names*, each with its offset."""
    for name, offset in names.items():
        product = fake_s2_per_band(root, product=name, bands=["B04"])
        add(product / "B04.tif", offset)
    return root


def offset_of(image: torch.Tensor) -> float:
    """What was added to the fake B04 values of a ``[H, W]`` read of the scene."""
    centres = (np.arange(FAKE_SIZE) + 0.5) * 10.0
    base = fake_s2_value(
        S2_BANDS.index("B04"), X0 + centres[None, :], Y0 - centres[:, None]
    ).astype(np.uint16)
    return float(np.median(image.numpy() - base))


def days_of(dataset: CentralValleyS2) -> list[str]:
    return [interval.left.date().isoformat() for interval in dataset.index.index]


# --------------------------------------------------------------------------
# CentralValleyS2(start=..., end=...)


def test_start_and_end_keep_the_products_of_those_days(tmp_path: Path) -> None:
    root = three_days(tmp_path)
    everything = CentralValleyS2(root, bands=["B04"])
    assert days_of(everything) == ["2023-08-14", "2023-07-15", "2023-06-04"]
    # Both ends are inclusive; the July read is July's, not the newest's.
    july = CentralValleyS2(root, bands=["B04"], start="2023-07-15", end="2023-07-15")
    assert (july.start, july.end) == (date(2023, 7, 15), date(2023, 7, 15))
    assert days_of(july) == ["2023-07-15"]
    assert offset_of(july[SCENE]["image"][0]) == 0
    assert offset_of(everything[SCENE]["image"][0]) == OFFSETS[AUGUST]
    # Either end open; dates as date objects.
    later = CentralValleyS2(root, bands=["B04"], start=date(2023, 7, 16))
    assert days_of(later) == ["2023-08-14"]
    earlier = CentralValleyS2(root, bands=["B04"], end="2023-07-15")
    assert days_of(earlier) == ["2023-07-15", "2023-06-04"]
    assert offset_of(earlier[SCENE]["image"][0]) == 0


def test_a_range_leaves_undated_products_out_with_a_warning(tmp_path: Path) -> None:
    root = per_band_days(tmp_path, {JULY: 0, "unnamed": 20})
    with pytest.warns(
        UserWarning,
        match=r"1 of 2 Sentinel-2 file\(s\) .*unnamed/B04\.tif'\), so they cannot "
        r"be placed on or after 2023-07-01 and are left out",
    ):
        dataset = CentralValleyS2(root, bands=["B04"], start="2023-07-01")
    assert days_of(dataset) == ["2023-07-15"]


def test_a_range_without_products_names_the_dates_there(tmp_path: Path) -> None:
    root = three_days(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"under '.*' has products of 2023-06-04, 2023-07-15, 2023-08-14; "
        r"none was sensed between 2023-09-01 and 2023-09-30 \(UTC days\), so pass "
        r"--start/--end .* around one of them\.",
    ):
        CentralValleyS2(root, bands=["B04"], start="2023-09-01", end="2023-09-30")
    undated = per_band_days(tmp_path / "undated", {"unnamed": 0})
    with pytest.raises(ValueError, match=r"carry no sensing date .* none can be"):
        CentralValleyS2(undated, bands=["B04"], end="2023-09-30")


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2023-08-01", "2023-07-01", "start 2023-08-01 is after end 2023-07-01"),
        ("2023-13-01", None, "start '2023-13-01' is not a date; give it as YYYY"),
    ],
)
def test_bad_ranges_are_refused(
    tmp_path: Path, start: str, end: str | None, message: str
) -> None:
    root = three_days(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)):
        CentralValleyS2(root, bands=["B04"], start=start, end=end)


@pytest.mark.parametrize(
    ("folder", "day"),
    [
        ("S2B_10SFG_20230715_0_L2A", "2023-07-15"),  # Earth Search item id
        ("2023-06-04", "2023-06-04"),
        ("T10SFG_2023-08-14_L2A", "2023-08-14"),
        (JUNE, "2023-06-04"),  # ESA's name: the sensing, not the processing, time
    ],
)
def test_a_folder_dated_by_day_dates_its_bands(
    tmp_path: Path, folder: str, day: str
) -> None:
    root = per_band_days(tmp_path, {folder: 0})
    dataset = CentralValleyS2(root, bands=["B04"], start=day, end=day)
    assert days_of(dataset) == [day]


@pytest.mark.parametrize("folder", ["N0509_R070", "run_20231345", "20230715123"])
def test_digits_that_are_no_day_leave_a_folder_undated(
    tmp_path: Path, folder: str
) -> None:
    root = per_band_days(tmp_path, {folder: 0})
    with pytest.warns(UserWarning, match=r"or a day as YYYY-MM-DD or YYYYMMDD"):
        dataset = CentralValleyS2(root, bands=["B04"])
    assert dataset.start is None
    assert [sensing_date(i) for i in dataset.index.index] == [None]


# --------------------------------------------------------------------------
# Time series in time order; undated products last


def test_a_time_series_is_stacked_oldest_first_undated_last(tmp_path: Path) -> None:
    # By path, S2A_..._0814 came before S2B_..._0715 and S2C_..._0604.
    root = per_band_days(tmp_path, {**OFFSETS, "unnamed": 20})
    with pytest.warns(UserWarning, match="no sensing date"):
        series = CentralValleyS2(root, bands=["B04"], time_series=True)
    image = series[SCENE]["image"]
    assert image.shape == (4, 1, FAKE_SIZE, FAKE_SIZE)
    assert [offset_of(step[0]) for step in image] == [10, 0, 30, 20]


def test_the_undated_warning_says_they_are_mosaicked_last(tmp_path: Path) -> None:
    root = per_band_days(tmp_path, {JUNE: 10, "unnamed": 20})
    with pytest.warns(
        UserWarning,
        match=r"come after every dated product: a mosaic reads them only where "
        r"dated products leave nodata",
    ):
        mosaic = CentralValleyS2(root, bands=["B04"])
    assert offset_of(mosaic[SCENE]["image"][0]) == 10


# --------------------------------------------------------------------------
# The datamodules


def test_the_datamodule_reads_the_chosen_dates_and_logs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = three_days(tmp_path / "s2", holes=True)
    logged: list[str] = []
    monkeypatch.setattr(central_valley, "rank_zero_info", logged.append)

    def split_line(**kwargs: Any) -> str:
        logged.clear()
        dm = CentralValleyDataModule(
            root=str(root),
            labels=None,
            patch_size=32,
            block_size=64,
            batch_size=4,
            length=8,
            stats_patches=4,
            cache_dir=str(tmp_path / "cache"),
            **kwargs,
        )
        dm.setup("fit")
        assert dm.image_dataset is not None
        (line,) = [text for text in logged if text.startswith("Spatial split")]
        return line

    line = split_line(start="2023-07-01")
    assert line.endswith(
        "; imagery of 2 dates, 2023-07-15 to 2023-08-14: the newest with data wins "
        "each pixel; --data.init_args.start/end pick dates"
    )
    assert "dates" not in split_line(start="2023-07-01", end="2023-07-31")
    # The band statistics of one selection are not served to another.
    assert len(list((tmp_path / "cache" / "stats").iterdir())) == 2


def test_fit_takes_start_and_end_as_init_args() -> None:
    # As `torchgeo fit --data.init_args.start 2023-07-01` parses them.
    parser = ArgumentParser()
    parser.add_class_arguments(CentralValleyDataModule, "data")
    config = parser.parse_args(
        ["--data.start", "2023-07-01", "--data.end", "2023-07-31"]
    )
    dm = parser.instantiate(config).data
    assert (dm.start, dm.end) == (date(2023, 7, 1), date(2023, 7, 31))
    with pytest.raises(
        ValueError, match=r"--data\.init_args\.start 2023-08-01 is after"
    ):
        CentralValleyDataModule(start="2023-08-01", end="2023-07-31")


def test_the_map_datamodule_reads_the_chosen_dates(tmp_path: Path) -> None:
    root = three_days(tmp_path)
    maps = MapDataModule(root, patch_size=64, overlap=0, end="2023-07-31")
    maps.setup("predict")
    assert maps.imagery is not None
    assert days_of(maps.imagery) == ["2023-07-15", "2023-06-04"]


def test_a_bbox_past_a_dates_imagery_names_the_dates_and_the_share_mapped(
    tmp_path: Path,
) -> None:
    # Two windows of the same bbox, one with imagery over half of it, must not
    # be read as a loss of irrigated area: the warning names the window's
    # dates and how much of the bbox its map covers.
    root = three_days(tmp_path)
    bbox = (X0 - SIDE, Y0 - SIDE, X0 + SIDE, Y0)
    maps = MapDataModule(
        root,
        bbox=bbox,
        bbox_crs="EPSG:32610",
        patch_size=64,
        overlap=0,
        start="2023-06-01",
        end="2023-06-30",
    )
    with pytest.warns(UserWarning, match="reaches past") as record:
        maps.setup("predict")
    (message,) = [str(r.message) for r in record if "reaches past" in str(r.message)]
    assert message.startswith(
        "--bbox reaches past the imagery sensed between 2023-06-01 and 2023-06-30 "
        "(--start/--end), so only its part over that imagery is covered: "
    )
    assert "about 50% of the bbox; the map's totals cover that part only" in message
    assert maps.warned == [message]


def test_the_dates_note() -> None:
    assert dates_note(["2023-07-15"]) == ""
    assert dates_note(["2023-07-15", "2023-08-14", "unknown"]) == (
        "imagery of 3 dates, 2023-07-15 to 2023-08-14 and undated: the newest with "
        "data wins each pixel; --start/--end pick dates"
    )


# --------------------------------------------------------------------------
# predict, embed and probe


def metadata() -> DataMetadata:
    return DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(1000.0 * (i + 1) + 500 for i in range(12)),
        std=(300.0,) * 12,
        patch_size=PATCH,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A segmentation and a SimCLR checkpoint (random weights)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    segmentation = save_checkpoint(
        folder / "segmentation.ckpt", "segmentation", metadata()
    )
    torch.manual_seed(0)
    task = SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16)
    task.data_metadata = metadata()
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, folder / "simclr.ckpt")
    return {"segmentation": segmentation, "simclr": folder / "simclr.ckpt"}


@pytest.fixture(scope="module")
def imagery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return three_days(tmp_path_factory.mktemp("three_days"), holes=True)


def run_on(
    command: str, checkpoint: Path, imagery: Path, out: Path, *dates: str
) -> None:
    """Run *command* (predict or embed) on *imagery* into *out*, on the CPU."""
    paths = ["--checkpoint", str(checkpoint), "--root", str(imagery), "--out", str(out)]
    main([command, *paths, "--device", "cpu", "--no-progress", *dates])


def test_predict_maps_the_chosen_dates_and_names_the_dates_used(
    checkpoints: dict[str, Path],
    imagery: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def predict(out: str, *dates: str) -> tuple[list[str], str]:
        run_on("predict", checkpoints["segmentation"], imagery, tmp_path / out, *dates)
        summary = json.loads((tmp_path / out).with_suffix(".json").read_text())
        return summary["imagery_dates"], capsys.readouterr().out.splitlines()[0]

    dates, line = predict("all.tif")
    assert dates == ["2023-06-04", "2023-07-15", "2023-08-14"]
    assert line.startswith("Irrigated: ")
    assert line.endswith(
        " s; imagery of 3 dates, 2023-06-04 to 2023-08-14: the newest with data "
        "wins each pixel; --start/--end pick dates."
    )
    dates, line = predict("july.tif", "--start", "2023-07-01", "--end", "2023-07-31")
    assert dates == ["2023-07-15"]
    assert "dates" not in line
    with rasterio.open(tmp_path / "july.tif") as src:
        classes = src.read(1)
    # July's own hole is nodata: no other date fills it.
    assert (classes[:64, :64] == 255).all()
    assert (classes[64:, 64:] != 255).all()


def test_embed_reads_the_chosen_dates_and_names_the_dates_used(
    checkpoints: dict[str, Path],
    imagery: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def embed(out: str, *dates: str) -> tuple[set[date], str]:
        run_on("embed", checkpoints["simclr"], imagery, tmp_path / out, *dates)
        days = set(pq.read_table(tmp_path / out).column("date").to_pylist())
        return days, capsys.readouterr().out.strip().splitlines()[-1]

    days, line = embed("all.parquet")
    assert line.startswith("Embedded ")
    assert line.endswith(
        "; imagery of 3 dates, 2023-06-04 to 2023-08-14: the newest with data wins "
        "each pixel; --start/--end pick dates"
    )
    days, line = embed("june.parquet", "--end", "2023-06-30")
    assert days == {date(2023, 6, 4)}
    assert "dates" not in line


def test_probe_reads_the_chosen_dates(
    checkpoints: dict[str, Path],
    imagery: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["probe", "--checkpoint", str(checkpoints["simclr"]), "--root"]
    err = cli_error_line(
        [*argv, str(imagery), "--start", "2023-09-01", "--end", "2023-09-30"], capsys
    )
    assert "has products of 2023-06-04, 2023-07-15, 2023-08-14; none was" in err


@pytest.mark.parametrize("command", ["predict", "embed", "probe"])
@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (["--start", "2023-13-01"], "--start '2023-13-01' is not a date"),
        (["--start", "2023-08-01", "--end", "2023-07-01"], "--start 2023-08-01 is"),
    ],
)
def test_bad_dates_are_refused_before_anything_is_read(
    command: str,
    dates: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [command, "--checkpoint", str(tmp_path / "missing.ckpt")]
    argv += ["--root", str(tmp_path)]
    argv += ["--out", str(tmp_path / "out.tif")] if command == "predict" else []
    argv += ["--out", str(tmp_path / "out.parquet")] if command == "embed" else []
    assert message in cli_error_line([*argv, *dates], capsys)


# --------------------------------------------------------------------------
# download


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StacServer]:
    (tmp_path / "files").mkdir()
    yield from serve(tmp_path / "files")


#: Inside the fake scene of the STAC server.
BBOX = ["-120.75", "36.95", "-120.70", "37.0"]


def download(server: StacServer, out: Path, start: str, end: str) -> str:
    main(
        [
            "download",
            "--bbox",
            *BBOX,
            "--start",
            start,
            "--end",
            end,
            "--out",
            str(out),
            "--stac-url",
            server.url,
            "--no-progress",
        ]
    )
    return ""


def test_the_end_day_is_inclusive_to_its_last_instant(
    server: StacServer, tmp_path: Path
) -> None:
    request = DownloadRequest.parse([-121, 36, -120, 37], "2023-07-01", "2023-07-01", 0)
    assert request.interval == "2023-07-01T00:00:00Z/2023-07-01T23:59:59.999999Z"
    # A STAC datetime carries fractions of a second.
    fake_item(server, JULY, "2023-07-31T23:59:59.5Z", 5.0)
    download(server, tmp_path / "out", "2023-07-01", "2023-07-31")
    assert len(list((tmp_path / "out" / "sentinel2").glob("*.tif"))) == 1


def test_download_says_when_scenes_of_other_dates_stay_in_out(
    server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_item(server, JULY, "2023-07-15T18:49:19Z", 5.0)
    fake_item(server, AUGUST, "2023-08-14T18:49:19Z", 5.0)
    out = tmp_path / "out"
    download(server, out, "2023-07-01", "2023-07-31")
    assert "other dates" not in capsys.readouterr().out
    download(server, out, "2023-08-01", "2023-08-31")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("Wrote 1 scene(s), kept 0 already downloaded")
    assert lines[-1] == (
        f"Kept 1 scene(s) of other dates (2023-07-15) in {out / 'sentinel2'} from "
        "earlier downloads: where they overlap the new ones, the newest with data "
        "wins each pixel and older scenes fill nodata and masked clouds; pass "
        "--start 2023-08-01 --end 2023-08-31 to predict, embed or probe "
        "(--data.init_args.start/end to fit) to read only this download's dates."
    )
    assert sorted(p.name for p in (out / "sentinel2").glob("*.tif")) == sorted(
        [f"{JULY}.tif", f"{AUGUST}.tif"]
    )
