"""torchgeo-simclr change: where irrigation changed between two class maps."""

import itertools
import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from rasterio.transform import from_origin
from test_colour_safety import MIN_CONTRAST, MIN_DELTA_E, contrast, deutan_delta_e

from torchgeo_simclr.change import (
    CHANGE_CLASSES,
    GAINED,
    LOST,
    STAYED_IRRIGATED,
    STAYED_NOT_IRRIGATED,
    change_classes,
    change_map,
)
from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import M2_PER_ACRE, M2_PER_HA

#: The hand-made pair has nodata in different pixels of each map: warned.
pytestmark = pytest.mark.filterwarnings("ignore:.* where --(after|before) has none")

#: Top-left corner of the test maps, UTM zone 10N metres.
ORIGIN = (700_000.0, 4_100_000.0)

#: A checkpoint's SHA-256, as predict tags its maps.
CHECKPOINT = "ab" * 32

#: Hectares of one 10 m pixel.
PIXEL_HA = 0.01

N = 255  # nodata

#: The earlier map of the hand-made pair: every class meets every class.
BEFORE = np.array(
    [[0, 0, 1, 1], [0, 1, 0, 1], [N, 0, 1, N], [0, N, 1, 1]], dtype=np.uint8
)

#: The later map of the pair.
AFTER = np.array(
    [[0, 1, 0, 1], [0, 1, 0, 1], [0, N, N, 1], [1, 1, N, 0]], dtype=np.uint8
)

#: Their change, worked out by hand: 0 stayed not, 1 stayed, 2 lost, 3 gained.
EXPECTED = np.array(
    [[0, 3, 2, 1], [0, 1, 0, 1], [N, N, N, N], [3, N, N, 2]], dtype=np.uint8
)


def write_class_map(
    path: Path,
    classes: npt.NDArray[np.uint8],
    *,
    origin: tuple[float, float] = ORIGIN,
    res: float = 10.0,
    crs: str = "EPSG:32610",
    dates: str = "2022-07-16",
    checkpoint: str = CHECKPOINT,
    threshold: str = "0.5",
) -> Path:
    """Write a class map as predict tags it (uint8, nodata 255)."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=classes.shape[1],
        height=classes.shape[0],
        count=1,
        dtype="uint8",
        crs=crs,
        transform=from_origin(*origin, res, res),
        nodata=N,
    ) as dst:
        dst.write(classes, 1)
        dst.update_tags(
            software="torchgeo-simclr 0.1.0",
            checkpoint="/runs/segment/last.ckpt",
            checkpoint_sha256=checkpoint,
            threshold=threshold,
            imagery_dates=dates,
        )
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """The hand-made pair: 2022 before, 2023 after, the same model."""
    return (
        write_class_map(tmp_path / "y2022.tif", BEFORE),
        write_class_map(tmp_path / "y2023.tif", AFTER, dates="2023-07-15"),
    )


def test_every_class_of_a_hand_made_pair(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "change.tif"
    change_map(*pair, out)
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "uint8"
        assert src.nodata == N
        np.testing.assert_array_equal(src.read(1), EXPECTED)
        tags, colours = src.tags(), src.colormap(1)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    # A lost pixel is orange in any viewer that reads the colour table.
    assert colours[LOST][:3] == (0xC8, 0x4F, 0x00)
    assert tags["before_imagery_dates"] == "2022-07-16"
    assert tags["after_imagery_dates"] == "2023-07-15"
    assert tags["before"] == str(pair[0].resolve())
    assert len(tags["after_sha256"]) == 64
    assert tags["before_ckpt_id"] == CHECKPOINT[:16]
    assert tags["before_threshold"] == "0.5"
    assert "warning" not in tags


def test_nodata_in_either_map_is_nodata() -> None:
    values = np.array([0, 1, N], dtype=np.uint8)
    before, after = (a.ravel() for a in np.meshgrid(values, values, indexing="ij"))
    got = change_classes(before[None], after[None])[0]
    expected = {
        (0, 0): STAYED_NOT_IRRIGATED,
        (0, 1): GAINED,
        (1, 0): LOST,
        (1, 1): STAYED_IRRIGATED,
    }
    for b, a, value in zip(before, after, got, strict=True):
        assert value == expected.get((int(b), int(a)), N), (b, a)


def test_hectares_and_acres_of_each_class(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.warns(UserWarning, match="where --after has none"):
        result = change_map(*pair, tmp_path / "change.tif")
    record = json.loads((tmp_path / "change.json").read_text())
    # EXPECTED holds 3 stayed not, 3 stayed, 2 lost and 2 gained pixels.
    assert record["area_ha"] == {
        "stayed_not_irrigated": 0.03,
        "stayed_irrigated": 0.03,
        "lost": 0.02,
        "gained": 0.02,
    }
    assert record["area_acres"]["lost"] == round(0.02 * M2_PER_HA / M2_PER_ACRE, 2)
    assert record["common_ha"] == 0.1
    assert record["net_change_ha"] == 0.0
    # Before has 13 pixels with data, after 13: 3 of each lack the other's.
    assert record["only_before_ha"] == record["only_after_ha"] == 0.03
    assert record["before"]["imagery_dates"] == ["2022-07-16"]
    assert record["software"]["torchgeo_simclr"]
    assert record["run_seconds"] >= 0
    text = result.summary()
    assert "from 2022-07-16 to 2023-07-15" in text
    assert "lost 0.02 ha (0.05 acres), gained 0.02 ha (0.05 acres)" in text
    assert "net change +0.00 ha" in text
    assert "0.10 ha (0.25 acres) with data in both maps" in text


@pytest.mark.parametrize(
    ("other", "differs"),
    [
        ({"crs": "EPSG:32611"}, "CRS EPSG:32610 and EPSG:32611"),
        ({"res": 20.0}, "pixels of 10 x 10 and 20 x 20"),
        ({"origin": (ORIGIN[0] + 5, ORIGIN[1])}, "pixel edges 0.50 px apart"),
    ],
)
def test_maps_on_another_grid_are_refused(
    tmp_path: Path, other: dict[str, object], differs: str
) -> None:
    before = write_class_map(tmp_path / "y2022.tif", BEFORE)
    after = write_class_map(tmp_path / "y2023.tif", AFTER, **other)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not on the same grid") as caught:
        change_map(before, after, tmp_path / "change.tif")
    message = str(caught.value)
    assert differs in message
    assert str(before) in message
    assert str(after) in message
    assert "same --bbox and --checkpoint" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y2022.tif", "y2023.tif"]


def test_partial_overlap_compares_the_common_pixels(tmp_path: Path) -> None:
    # 2022 covers 6 columns; 2023's imagery only the last 4 of them and 2 more.
    before = write_class_map(tmp_path / "y2022.tif", np.ones((4, 6), np.uint8))
    after = write_class_map(
        tmp_path / "y2023.tif",
        np.zeros((4, 6), np.uint8),
        origin=(ORIGIN[0] + 20, ORIGIN[1]),
        dates="2023-07-15",
    )
    out = tmp_path / "change.tif"
    with pytest.warns(UserWarning, match=r"has data on 0\.08 ha \(33%") as warned:
        result = change_map(before, after, out)
    with rasterio.open(out) as src:
        assert src.shape == (4, 4)
        assert src.transform.c == ORIGIN[0] + 20
        assert (src.read(1) == LOST).all()
    record = result.record
    # All of the 16 common pixels were lost; not the 24 of the whole 2022 map.
    assert record["area_ha"]["lost"] == 0.16
    assert record["only_before_ha"] == record["only_after_ha"] == 0.08
    assert record["warnings"] == [str(w.message) for w in warned]
    assert "Left out, as it has data in one map only: 0.08 ha only in --before" in (
        result.summary()
    )


def test_a_different_checkpoint_is_warned(tmp_path: Path) -> None:
    before = write_class_map(tmp_path / "y2022.tif", BEFORE)
    after = write_class_map(
        tmp_path / "y2023.tif", AFTER, checkpoint="cd" * 32, threshold="0.4"
    )
    out = tmp_path / "change.tif"
    with pytest.warns(UserWarning, match="different checkpoints") as warned:
        change_map(before, after, out)
    message = next(str(w.message) for w in warned if "checkpoints" in str(w.message))
    assert "abababababababab and cdcdcdcdcdcdcdcd" in message
    assert "thresholds (0.5 and 0.4)" in message
    with rasterio.open(out) as src:
        assert src.tags()["warning"] == message
    assert message in json.loads(out.with_suffix(".json").read_text())["warnings"]


def test_the_same_model_over_the_same_pixels_is_not_warned(tmp_path: Path) -> None:
    before = write_class_map(tmp_path / "y2022.tif", np.ones((4, 4), np.uint8))
    after = write_class_map(
        tmp_path / "y2023.tif", np.zeros((4, 4), np.uint8), dates="2023-07-15"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        change_map(before, after, tmp_path / "change.tif")


@pytest.mark.parametrize("name", ["change.json", "change.qml", "change.tif"])
def test_a_file_of_the_user_is_never_replaced(
    pair: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    mine = tmp_path / name
    if name == "change.tif":  # a class map of the user's, where --out points
        write_class_map(mine, BEFORE)
    else:
        mine.write_text('{"notes": "my own"}\n')
    kept = mine.read_bytes()
    with pytest.raises(FileExistsError, match="even --overwrite does not replace"):
        change_map(*pair, tmp_path / "change.tif", overwrite=True)
    assert mine.read_bytes() == kept
    written = {p.name for p in tmp_path.iterdir()} - {"y2022.tif", "y2023.tif"}
    assert written == {name}


def test_overwrite_replaces_an_earlier_change_map(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "change.tif"
    change_map(*pair, out)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        change_map(*pair, out)
    with pytest.warns(UserWarning, match="the reverse of the change in time"):
        change_map(*reversed(pair), out, overwrite=True)
    with rasterio.open(out) as src:  # the pair swapped: lost is gained
        assert (src.read(1) == LOST).sum() == (EXPECTED == GAINED).sum()


def test_style_colours_stay_apart_for_deuteranopes(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    change_map(*pair, tmp_path / "change.tif")
    root = ET.parse(tmp_path / "change.qml").getroot()
    entries = root.findall(".//rasterrenderer[@type='paletted']//paletteEntry")
    palette = {int(e.get("value", "")): e.get("color", "") for e in entries}
    assert palette == {v: colour for v, (_, colour) in CHANGE_CLASSES.items()}
    labels = [e.get("label") for e in entries]
    assert labels[LOST] == "Lost: irrigated before, not after"
    for a, b in itertools.combinations(palette.values(), 2):
        assert deutan_delta_e(a, b) >= MIN_DELTA_E, (a, b)
        assert contrast(a, b) >= MIN_CONTRAST, (a, b)


def test_command_line(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maps" / "change.tif"
    before, after = map(str, pair)
    main(["change", "--before", before, "--after", after, "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.startswith("Irrigation change from 2022-07-16 to 2023-07-15")
    assert f"Wrote {out} (classes, styled by change.qml for QGIS)" in printed
    assert out.with_suffix(".qml").is_file()
    assert out.with_suffix(".json").is_file()
    with pytest.raises(SystemExit) as stopped:
        main(["change", "--before", before, "--after", before, "--out", str(out)])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("torchgeo-simclr change: error: --before")
    assert "are the same file" in error
    assert error.count("\n") == 1
