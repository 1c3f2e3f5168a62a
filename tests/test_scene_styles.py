"""QGIS opens the Sentinel-2 scenes of sample-data and download in natural colour.

Beside each multi-band GeoTIFF goes a QML of the same name: a multi-band colour
renderer with B04, B03 and B02 as red, green and blue, stretched alike from 0 to
the reflectance the quick look draws at full brightness.
"""

import json
import os
import subprocess
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pystac import Item
from stac_server import StacServer, fake_item, serve
from test_download import BBOX, CLEAR, download
from test_qgis import BACKGROUND, SCRIPT, qgis_python

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import REFLECTANCE_SCALE, S2_BANDS
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.datasets.display import NATURAL_COLOUR_MAX
from torchgeo_simclr.download.scene import GDAL_HTTP_OPTIONS, write_scene
from torchgeo_simclr.inference.styles import natural_colour_style

#: Stored value drawn at full brightness, as the quick look draws it.
FULL = NATURAL_COLOUR_MAX * REFLECTANCE_SCALE


def renderer(qml: str) -> ET.Element:
    """The ``<rasterrenderer>`` of a QML document."""
    found = ET.fromstring(qml.split("\n", 1)[1]).find("pipe/rasterrenderer")
    assert found is not None
    return found


def assert_natural_colour(qml_path: Path, tif_path: Path) -> None:
    """*qml_path* draws B04/B03/B02 of *tif_path* as RGB, stretched 0 to FULL."""
    with rasterio.open(tif_path) as src:
        descriptions = list(src.descriptions)
    found = renderer(qml_path.read_text(encoding="utf-8"))
    assert found.get("type") == "multibandcolor"
    bands = [
        descriptions[int(found.attrib[f"{colour}Band"]) - 1]
        for colour in ("red", "green", "blue")
    ]
    assert bands == ["B04", "B03", "B02"]
    assert found.get("nodataColor") == ""  # nodata transparent
    assert found.findtext("minMaxOrigin/limits") == "None"  # not the file's stats
    for colour in ("red", "green", "blue"):
        stretch = found.find(f"{colour}ContrastEnhancement")
        assert stretch is not None
        assert stretch.findtext("algorithm") == "StretchToMinimumMaximum"
        assert float(stretch.findtext("minValue", "")) == 0
        assert float(stretch.findtext("maxValue", "")) == FULL


def sample_data(root: Path, *extra: str) -> None:
    main(["sample-data", "--root", str(root), "--size", "64", "--tiles", "2", *extra])


def scene_files(root: Path) -> list[str]:
    """Every file under *root*, hidden ones included, relative to it."""
    return sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()
    )


def package_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings that the package's dataset scanner gave."""
    return [str(w.message) for w in caught if "torchgeo_simclr" in w.filename]


# --- the style ----------------------------------------------------------------


def test_the_style_picks_b04_b03_b02_by_name_not_position() -> None:
    found = renderer(natural_colour_style(S2_BANDS))
    assert [found.get(f"{c}Band") for c in ("red", "green", "blue")] == [
        str(S2_BANDS.index(band) + 1) for band in ("B04", "B03", "B02")
    ]
    assert "band" not in found.attrib  # a single-band renderer's attribute

    found = renderer(natural_colour_style(["B02", "B03", "B04", "B08"]))
    assert [found.get(f"{c}Band") for c in ("red", "green", "blue")] == ["3", "2", "1"]
    # The same stretch as the quick look: reflectance 0.2 is full brightness.
    assert found.findtext("redContrastEnhancement/maxValue") == "2000"


def test_the_style_refuses_bands_without_natural_colour() -> None:
    with pytest.raises(ValueError, match=r"bands lack B03, B02, got \['B04', 'B08'\]"):
        natural_colour_style(["B04", "B08"])


# --- sample-data ----------------------------------------------------------------


def test_sample_data_writes_a_natural_colour_style_beside_each_tile(
    tmp_path: Path,
) -> None:
    sample_data(tmp_path)

    tiles = sorted((tmp_path / "sentinel2").glob("*.tif"))
    assert len(tiles) == 2
    for tile in tiles:
        assert_natural_colour(tile.with_suffix(".qml"), tile)
    # Renamed into place with the tiles: no temporary file is left.
    assert scene_files(tmp_path) == sorted(
        ["crop_mapping.gpkg"]
        + [f"sentinel2/{t.name}" for t in tiles]
        + [f"sentinel2/{t.stem}.qml" for t in tiles]
    )


def test_sample_data_keeps_a_style_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_data(tmp_path)
    tiles = sorted((tmp_path / "sentinel2").glob("*.tif"))
    for path in [*tiles, tmp_path / "crop_mapping.gpkg"]:
        path.unlink()
    style = tiles[0].with_suffix(".qml")
    style.write_text("a user's own style")

    with pytest.raises(SystemExit):
        sample_data(tmp_path)
    assert f"{style} already exists" in capsys.readouterr().err
    assert style.read_text() == "a user's own style"

    sample_data(tmp_path, "--overwrite")
    assert_natural_colour(style, tiles[0])


def test_the_scanner_reads_the_tiles_and_says_nothing_of_the_styles(
    tmp_path: Path,
) -> None:
    sample_data(tmp_path)
    # A temporary style a killed run left behind, too.
    (tmp_path / "sentinel2" / ".S2B_MSIL2A_x.partial-host-1.qml").write_text("<")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CentralValleyS2(tmp_path)
        sample = dataset[dataset.bounds]

    assert package_warnings(caught) == []
    assert sorted(dataset.index.filepath) == sorted(
        str(p) for p in (tmp_path / "sentinel2").glob("*.tif")
    )
    assert sample["image"].shape == (12, 64, 64)


# --- download -----------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[StacServer]:
    """The STAC API of test_download serving its least cloudy 10SFG scene."""
    (tmp_path / "files").mkdir()
    for server in serve(tmp_path / "files"):
        fake_item(server, CLEAR, "2023-07-15T18:49:19Z", 5.0)
        yield server


def test_download_writes_a_natural_colour_style_beside_the_scene(
    catalog: StacServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    download(catalog, out)

    scene = out / "sentinel2" / f"{CLEAR}.tif"
    assert_natural_colour(scene.with_suffix(".qml"), scene)
    assert scene_files(out / "sentinel2") == [f"{CLEAR}.qml", f"{CLEAR}.tif"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CentralValleyS2(out)
    assert package_warnings(caught) == []
    assert len(dataset) == 1


def test_a_kept_scene_gets_its_style_and_a_users_style_is_kept(
    catalog: StacServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    download(catalog, out)
    scene = out / "sentinel2" / f"{CLEAR}.tif"
    style = scene.with_suffix(".qml")

    # A scene downloaded before styles were written gets one on the next run,
    # without fetching anything.
    style.unlink()
    catalog.requests.clear()
    download(catalog, out)
    assert catalog.requests == []
    assert_natural_colour(style, scene)

    # The user's own style (QGIS's "Save as Default") is never replaced, not
    # even when the scene is fetched again.
    style.write_text("a user's own style")
    download(catalog, out)
    scene.unlink()
    download(catalog, out)
    assert catalog.requests
    assert scene.exists()
    assert style.read_text() == "a user's own style"


def test_a_scene_failing_midway_leaves_no_style(
    catalog: StacServer, tmp_path: Path
) -> None:
    item = Item.from_dict(catalog.items[0])
    out = tmp_path / "sentinel2"
    out.mkdir()

    def broken(band: str) -> None:
        if band == "B12":  # the last band: the style is next
            raise ConnectionResetError(band)

    west, south, east, north = (float(v) for v in BBOX)
    with rasterio.Env(**GDAL_HTTP_OPTIONS), pytest.raises(ConnectionResetError):
        write_scene(
            item, (west, south, east, north), out / f"{CLEAR}.tif", True, broken
        )
    assert scene_files(out) == []


# --- QGIS -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def qgis() -> str:
    """A Python with QGIS's bindings (as test_qgis finds it), else skip."""
    python = qgis_python()
    if python is None:
        pytest.skip("QGIS's Python bindings were not found (see test_qgis.py)")
    return python


def test_qgis_opens_a_sample_tile_in_natural_colour(qgis: str, tmp_path: Path) -> None:
    sample_data(tmp_path / "scene")
    tile = sorted((tmp_path / "scene" / "sentinel2").glob("*.tif"))[0]
    with rasterio.open(tile, "r+") as src:
        src.write(
            np.zeros((src.count, 2, 2), dtype=src.dtypes[0]), window=((0, 2), (0, 2))
        )
        rgb = src.read([S2_BANDS.index(b) + 1 for b in ("B04", "B03", "B02")])
    pixels = [[0, 0], [5, 7], [20, 30], [31, 63]]
    queried = tmp_path / "pixels.json"
    queried.write_text(json.dumps(pixels))
    report_path = tmp_path / "report.json"
    # QGIS keeps a profile under HOME: a temporary one, not the user's.
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    subprocess.run(
        [qgis, str(SCRIPT), "scene", str(tile), str(queried), str(report_path)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    shown = json.loads(report_path.read_text())

    assert shown["valid"]
    assert shown["renderer"] == "multibandcolor"
    for colour, band in (("red", "B04"), ("green", "B03"), ("blue", "B02")):
        assert shown[colour]["band"] == S2_BANDS.index(band) + 1
        assert shown[colour]["name"].endswith(f": {band}")
        assert (shown[colour]["min"], shown[colour]["max"]) == (0, FULL)
        assert shown[colour]["algorithm"] == "StretchToMinimumMaximum"
    # Nodata transparent; elsewhere each channel is its band over 0-FULL.
    assert shown["rendered"][0] == BACKGROUND
    for (col, row), drawn in zip(pixels[1:], shown["rendered"][1:], strict=True):
        expected = np.clip(rgb[:, row, col] / FULL, 0, 1) * 255
        got = [int(drawn[i : i + 2], 16) for i in (1, 3, 5)]
        assert np.abs(np.array(got) - expected).max() <= 2, (col, row, drawn)
