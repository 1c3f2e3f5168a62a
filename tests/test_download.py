"""`torchgeo-simclr download` against a STAC API and COG server on 127.0.0.1."""

import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pystac import Asset, Item
from stac_server import SCENE_SIZE, StacServer, band_values, fake_item, serve

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.download import DownloadRequest
from torchgeo_simclr.download.assets import asset_keys, to_reflectance_x10000
from torchgeo_simclr.download.stac import pick_scenes, product_name, tile_of
from torchgeo_simclr.lightning_cli import run_cli

CONF = Path(__file__).parents[1] / "conf"

#: Two scenes of tile 10SFG (the least cloudy must win) and one of 10SGG.
CLEAR = "S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_20230715T223344"
CLOUDY = "S2B_MSIL2A_20230710T184919_N0509_R070_T10SFG_20230710T223344"
EAST = "S2B_MSIL2A_20230712T184919_N0509_R070_T10SGG_20230712T223344"

#: Inside the 10SFG fake scene (top-left 700000, 4100000; 7.68 km).
BBOX = ["-120.75", "36.95", "-120.70", "37.0"]
#: The top-left corner of the 10SFG scene, where its SCL has a cloud.
CLOUD_BBOX = ["-120.755", "37.0", "-120.725", "37.03"]
#: Covers the 10SFG scene and the 10SGG scene east of it.
WIDE_BBOX = ["-120.78", "36.93", "-120.60", "37.03"]
DATES = ["--start", "2023-07-01", "--end", "2023-07-31"]

#: Sensing time of the items made in memory.
SENSED = datetime(2023, 7, 5, 18, 49, 19, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StacServer]:
    (tmp_path / "files").mkdir()
    yield from serve(tmp_path / "files")


@pytest.fixture
def catalog(server: StacServer) -> StacServer:
    fake_item(server, CLEAR, "2023-07-15T18:49:19Z", 5.0)
    fake_item(server, CLOUDY, "2023-07-10T18:49:19Z", 40.0, cloud_box=None)
    fake_item(
        server,
        EAST,
        "2023-07-12T18:49:19Z",
        8.0,
        origin=(700000.0 + SCENE_SIZE * 10, 4100000.0),
        names="planetary",
    )
    return server


def download(
    server: StacServer, out: Path, *extra: str, bbox: list[str] = BBOX
) -> None:
    main(
        [
            "download",
            "--bbox",
            *bbox,
            *DATES,
            "--out",
            str(out),
            "--stac-url",
            server.url,
            "--no-progress",
            *extra,
        ]
    )


def manifest(out: Path) -> dict[str, dict[str, Any]]:
    scenes = json.loads((out / "manifest.json").read_text())["scenes"]
    return {Path(entry["file"]).stem: entry for entry in scenes}


def test_download_writes_the_least_cloudy_scene_on_the_10m_grid(
    catalog: StacServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    download(catalog, out)

    files = sorted((out / "sentinel2").glob("*.tif"))
    assert [f.name for f in files] == [f"{CLEAR}.tif"]  # 5% beats 40%
    assert sorted(p.name for p in (out / "sentinel2").iterdir()) == [
        f"{CLEAR}.qml",  # its QGIS style
        f"{CLEAR}.tif",
    ]
    with rasterio.open(files[0]) as src:
        assert src.count == 12
        assert src.res == (10.0, 10.0)
        assert src.crs.to_epsg() == 32610
        assert src.dtypes[0] == "uint16"
        assert src.nodata == 0
        assert list(src.descriptions) == list(S2_BANDS)
        image = src.read()
        left, top = src.transform.c, src.transform.f
    # On the source's own 10 m grid: whole pixels from its origin.
    col0, row0 = (left - 700000) / 10, (4100000 - top) / 10
    assert col0 == int(col0)
    assert row0 == int(row0)
    col0, row0 = int(col0), int(row0)
    height, width = image.shape[1:]
    # Only the bbox window, not the 768 x 768 tile.
    assert 400 < width < SCENE_SIZE
    assert 400 < height < SCENE_SIZE
    # B04 is the source's values in the window, baseline offset removed.
    red = band_values("B04", SCENE_SIZE)[row0 : row0 + height, col0 : col0 + width]
    np.testing.assert_array_equal(image[3], red.astype(np.int64) - 1000)
    # The 60 m B01 was resampled onto the 10 m grid: a smooth ramp, no holes.
    coastal = band_values("B01", SCENE_SIZE // 6).astype(float) - 1000
    assert image[0].min() > 0
    assert coastal.min() <= image[0].mean() <= coastal.max()

    entry = manifest(out)[CLEAR]
    assert entry["id"] == "S2B_10SFG_20230715_0_L2A"
    assert entry["cloud_cover"] == 5.0
    assert entry["tile"] == "10SFG"
    assert entry["bbox"] == [float(v) for v in BBOX]
    assert entry["assets"]["B04"] == f"{catalog.url}/data/{CLEAR}/B04.tif"
    assert entry["assets"]["SCL"].endswith("/SCL.tif")
    assert entry["harmonisation"]["B04"] == [1.0, -1000.0]
    assert (entry["width"], entry["height"]) == (width, height)

    dataset = CentralValleyS2(out)
    sample = dataset[dataset.bounds]
    assert sample["image"].shape == (12, height, width)


def test_clouds_are_masked_with_the_scl_layer(
    catalog: StacServer, tmp_path: Path
) -> None:
    # The clear scene's SCL has "cloud high probability" in its top-left
    # 96 x 96 px at 20 m (960 m); a bbox over that corner gets nodata there.
    out = tmp_path / "out"
    download(catalog, out, bbox=CLOUD_BBOX)
    with rasterio.open(out / "sentinel2" / f"{CLEAR}.tif") as src:
        image = src.read()
        rows, cols = rasterio.transform.rowcol(src.transform, 700500, 4099500)
        # The cloud's east edge is at 701,920 m; the 60 m bands resampled to
        # 10 m can carry its light 7 px (70 m) further, which goes too.
        halo = rasterio.transform.rowcol(src.transform, 701985, 4099500)
        clear = rasterio.transform.rowcol(src.transform, 701995, 4099500)
    assert (image[:, rows, cols] == 0).all()  # 500 m inside the cloud
    assert (image[:, halo[0], halo[1]] == 0).all()
    assert (image[:, clear[0], clear[1]] > 0).all()
    assert (image[:, -1, -1] > 0).all()  # clear corner
    assert 0 < manifest(out)[CLEAR]["clear_fraction"] < 1

    kept = tmp_path / "kept"
    download(catalog, kept, "--no-cloud-mask", bbox=CLOUD_BBOX)
    with rasterio.open(kept / "sentinel2" / f"{CLEAR}.tif") as src:
        assert (src.read()[:, rows, cols] > 0).all()


def test_cloud_buffer_grows_the_scl_clouds_further(
    catalog: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100 m more than the 70 m that the 60 m bands need.
    out = tmp_path / "out"
    download(catalog, out, "--cloud-buffer", "100", bbox=CLOUD_BBOX)
    with rasterio.open(out / "sentinel2" / f"{CLEAR}.tif") as src:
        image = src.read()
        halo = rasterio.transform.rowcol(src.transform, 702085, 4099500)
        clear = rasterio.transform.rowcol(src.transform, 702095, 4099500)
    assert (image[:, halo[0], halo[1]] == 0).all()
    assert (image[:, clear[0], clear[1]] > 0).all()
    assert manifest(out)[CLEAR]["cloud_buffer"] == 100

    # The same folder with another buffer would mix two maskings.
    with pytest.raises(SystemExit):
        download(catalog, out, bbox=CLOUD_BBOX)
    err = capsys.readouterr().err
    assert "with mask_clouds=True and cloud_buffer=0 (it has cloud_buffer=100.0)" in err


def test_a_manifest_from_before_cloud_buffer_still_resumes(
    catalog: StacServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    download(catalog, out)
    record = json.loads((out / "manifest.json").read_text())
    for scene in record["scenes"]:
        del scene["cloud_buffer"]
    (out / "manifest.json").write_text(json.dumps(record))
    catalog.requests.clear()

    download(catalog, out)

    assert catalog.requests == []  # the scene is kept, as before


def test_only_the_blocks_under_the_bbox_are_fetched(
    catalog: StacServer, tmp_path: Path
) -> None:
    # About 1 km square in the middle of a 7.68 km scene of 256-px COG blocks.
    download(
        catalog, tmp_path / "out", bbox=["-120.715", "36.985", "-120.705", "36.995"]
    )
    scene = catalog.files / CLEAR
    whole = sum(f.stat().st_size for f in scene.iterdir())
    assert catalog.requests
    assert catalog.bytes_sent < 0.3 * whole


def test_second_run_fetches_nothing_new(catalog: StacServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    download(catalog, out)
    written = (out / "sentinel2" / f"{CLEAR}.tif").read_bytes()
    catalog.requests.clear()

    download(catalog, out)

    assert catalog.requests == []  # no band file was touched
    assert (out / "sentinel2" / f"{CLEAR}.tif").read_bytes() == written


def test_interrupted_download_resumes_without_refetching(
    catalog: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    broken = f"/data/{EAST}/B12.tif"
    catalog.missing.add(broken)
    with pytest.raises(SystemExit):
        download(catalog, out, "--retries", "0", bbox=WIDE_BBOX)
    assert "Could not read scene" in capsys.readouterr().err
    # The finished scene is kept and recorded; the broken one left nothing.
    assert sorted(p.name for p in (out / "sentinel2").iterdir()) == [
        f"{CLEAR}.qml",
        f"{CLEAR}.tif",
    ]
    assert list(manifest(out)) == [CLEAR]

    catalog.missing.clear()
    catalog.requests.clear()
    download(catalog, out, bbox=WIDE_BBOX)

    assert catalog.requests
    assert all(path.startswith(f"/data/{EAST}/") for path in catalog.requests)
    assert sorted(manifest(out)) == sorted([CLEAR, EAST])
    dataset = CentralValleyS2(out)
    assert len(dataset) == 2


def test_transient_server_errors_are_retried(
    catalog: StacServer, tmp_path: Path
) -> None:
    catalog.fail[f"/data/{CLEAR}/B08.tif"] = 2
    out = tmp_path / "out"
    download(catalog, out)
    assert list(manifest(out)) == [CLEAR]
    assert catalog.fail[f"/data/{CLEAR}/B08.tif"] == 0


def test_planetary_asset_names_and_baseline_offset(
    catalog: StacServer, tmp_path: Path
) -> None:
    # EAST uses B04 / SCL asset keys and no raster:bands: baseline 05.09 means
    # the 1000 offset applies.
    out = tmp_path / "out"
    download(catalog, out, bbox=["-120.66", "36.95", "-120.62", "37.0"])
    entry = manifest(out)[EAST]
    assert entry["assets"]["B04"].endswith(f"{EAST}/B04.tif")
    assert entry["harmonisation"]["B04"] == [1.0, -1000.0]
    with rasterio.open(out / "sentinel2" / f"{EAST}.tif") as src:
        left, top = src.transform.c, src.transform.f
        red = src.read(4)
    col0 = round((left - 700000 - SCENE_SIZE * 10) / 10)
    row0 = round((4100000 - top) / 10)
    source = band_values("B04", SCENE_SIZE)[row0 : row0 + red.shape[0]]
    np.testing.assert_array_equal(
        red, source[:, col0 : col0 + red.shape[1]].astype(np.int64) - 1000
    )


def test_old_baseline_keeps_digital_numbers() -> None:
    item = Item("x", None, None, SENSED, {"s2:processing_baseline": "03.01"})
    item.add_asset("B04", Asset("http://example/B04.tif"))
    assert to_reflectance_x10000(item, item.assets["B04"]) == (1.0, 0.0)
    item.properties["s2:processing_baseline"] = "04.00"
    assert to_reflectance_x10000(item, item.assets["B04"]) == (1.0, -1000.0)


def test_asset_keys_cover_both_conventions() -> None:
    assert asset_keys("B04")[:2] == ["B04", "red"]
    assert asset_keys("SCL")[:2] == ["SCL", "scl"]
    assert "B8A_20m" in asset_keys("B8A")
    assert "nir08" in asset_keys("B8A")


def test_product_name_and_tile_without_product_uri() -> None:
    item = Item(
        "S2A_10SFG_20230705_0_L2A",
        None,
        None,
        SENSED,
        {
            "platform": "sentinel-2a",
            "mgrs:utm_zone": 10,
            "mgrs:latitude_band": "S",
            "mgrs:grid_square": "FG",
            "sat:relative_orbit": 70,
            "s2:processing_baseline": "05.09",
        },
    )
    assert tile_of(item) == "10SFG"
    name = product_name(item)
    assert name == "S2A_MSIL2A_20230705T184919_N0509_R070_T10SFG_20230705T184919"
    assert re.match(CentralValleyS2.filename_regex, f"{name}.tif")


def test_pick_scenes_keeps_the_least_cloudy_per_tile() -> None:
    items = [
        Item(f"i{n}", None, None, SENSED, {"s2:mgrs_tile": tile, "eo:cloud_cover": c})
        for n, (tile, c) in enumerate(
            [("10SFG", 30), ("10SFG", 2), ("10SGG", 9), ("10SGG", 50), ("10SFG", 7)]
        )
    ]
    assert [i.id for i in pick_scenes(items, 1)] == ["i1", "i2"]
    assert [i.id for i in pick_scenes(items, 2)] == ["i1", "i4", "i2", "i3"]


def test_downloaded_imagery_trains_with_torchgeo_fit(
    catalog: StacServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the config's runs/ directory goes here
    out = tmp_path / "out"
    download(catalog, out, bbox=["-120.78", "36.93", "-120.68", "37.01"])
    cli = run_cli(
        [
            "--config",
            str(CONF / "simclr_quickstart.yaml"),
            "--data.init_args.root",
            str(out),
            "--data.init_args.labels",
            "null",
            "--data.init_args.batch_size",
            "8",
            "--data.init_args.num_workers",
            "0",
            "--data.init_args.block_size",
            "128",
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.callback_metrics["train_loss"].isfinite()


@pytest.mark.parametrize(
    ("bbox", "dates", "message"),
    [
        (["170", "-10", "-170", "10"], DATES, r"inverted or crosses the antimeridian"),
        (["-120", "37", "-121", "38"], DATES, r"MIN_LON -120.0 >= MAX_LON -121.0"),
        (
            ["-121", "38", "-120", "37"],
            DATES,
            r"with min < max: min lat 38 > max lat 37; pass --bbox -121 37 -120 38\.",
        ),
        (
            ["37", "-121", "38", "-120"],
            DATES,
            r"look swapped: pass --bbox -121 37 -120 38\.",
        ),
        (
            BBOX,
            ["--start", "2023-08-01", "--end", "2023-07-01"],
            r"--start 2023-08-01 is after --end 2023-07-01",
        ),
        (
            BBOX,
            ["--start", "July", "--end", "2023-07-01"],
            r"--start 'July' is not a date",
        ),
        (
            BBOX,
            ["--start", "2022-01-01", "--end", "2022-01-31"],
            r"No scenes of collection 'sentinel-2-l2a'",
        ),
    ],
)
def test_bad_requests_get_one_clear_line(
    catalog: StacServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bbox: list[str],
    dates: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "download",
                "--bbox",
                *bbox,
                *dates,
                "--out",
                str(out),
                "--stac-url",
                catalog.url,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchgeo-simclr download: error: ")
    assert len(err.splitlines()) == 1
    assert re.search(message, err)
    assert not (out / "sentinel2").exists() or not any((out / "sentinel2").iterdir())


def test_too_cloudy_scenes_are_counted_in_the_message(
    catalog: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        download(catalog, tmp_path / "out", "--max-cloud", "1")
    err = capsys.readouterr().err
    assert "2 more above --max-cloud 1%" in err
    assert "raise --max-cloud" in err


def test_unreachable_stac_url_gets_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(SystemExit):
        main(
            [
                "download",
                "--bbox",
                *BBOX,
                *DATES,
                "--out",
                str(tmp_path / "out"),
                "--stac-url",
                url,
                "--retries",
                "0",
            ]
        )
    err = capsys.readouterr().err
    assert f"Could not reach the STAC API at --stac-url {url} (the connection " in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_url_that_is_not_a_stac_api_gets_a_clear_error(
    server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server.url}/not-an-api"
    with pytest.raises(SystemExit):
        main(
            [
                "download",
                "--bbox",
                *BBOX,
                *DATES,
                "--out",
                str(tmp_path / "out"),
                "--stac-url",
                url,
            ]
        )
    err = capsys.readouterr().err
    assert f"Could not reach the STAC API at --stac-url {url} (HTTP 404)" in err


def test_a_file_that_is_not_ours_is_never_overwritten(
    catalog: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "sentinel2").mkdir(parents=True)
    mine = out / "sentinel2" / f"{CLEAR}.tif"
    mine.write_bytes(b"a user's own file")
    with pytest.raises(SystemExit):
        download(catalog, out)
    assert "does not list it" in capsys.readouterr().err
    assert mine.read_bytes() == b"a user's own file"


def test_request_interval_covers_whole_days() -> None:
    request = DownloadRequest.parse(
        [-121, 36, -120, 37], "2023-07-01", "2023-07-01", 20
    )
    assert request.interval == "2023-07-01T00:00:00Z/2023-07-01T23:59:59.999999Z"


def test_two_scenes_per_tile_fill_each_others_clouds(
    catalog: StacServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    download(catalog, out, "--per-tile", "2", "--max-cloud", "50", bbox=CLOUD_BBOX)
    assert sorted(manifest(out)) == sorted([CLEAR, CLOUDY])
    with rasterio.open(out / "sentinel2" / f"{CLEAR}.tif") as src:
        shape = src.shape
        assert (src.read()[:, 10, 10] == 0).all()  # under CLEAR's cloud
    dataset = CentralValleyS2(out)
    image = dataset[dataset.bounds]["image"]
    assert image.shape[1:] == shape  # both scenes share the grid
    assert (image[:, 10, 10] > 0).all()  # filled from the 40% scene
