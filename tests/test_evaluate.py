"""Tests of torchgeo_simclr.evaluate: map scores against label polygons."""

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import pytest
import rasterio
import shapely
from PIL import Image
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

import torchgeo_simclr
import torchgeo_simclr.evaluate as evaluate_module
from torchgeo_simclr import map_pixels
from torchgeo_simclr.cli import main
from torchgeo_simclr.datasets.labels import IrrigationLabels
from torchgeo_simclr.evaluate import (
    FIELD_OUTCOMES,
    FIELDS_LAYER,
    OUTCOME_LEGEND,
    MapEvaluation,
    evaluate_map,
)

#: CRS of the test maps.
MAP_CRS = "EPSG:32610"

#: Top-left corner of the test maps, metres in MAP_CRS.
ORIGIN = (700000.0, 4100000.0)

#: Side of the test maps in 10 m pixels.
SIZE = 20

#: Test fields: (CLASS2, (row0, col0, row1, col1)) in map pixels, end exclusive.
#: A "P" irrigated, B "I" not irrigated, C "G" irrigated, D "X" ignored,
#: E "V" irrigated but all map nodata.
FIELDS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("P", (0, 0, 4, 4)),
    ("I", (0, 10, 4, 14)),
    ("G", (10, 0, 14, 4)),
    ("X", (10, 10, 14, 14)),
    ("V", (16, 16, 19, 19)),
)


def pixel_box(rows: tuple[int, int, int, int], shift: float = 0.0) -> shapely.Polygon:
    """A rectangle in MAP_CRS covering pixels ``(row0, col0, row1, col1)``."""
    row0, col0, row1, col1 = rows
    x0, y0 = ORIGIN
    return shapely.box(
        x0 + 10 * col0 + shift, y0 - 10 * row1, x0 + 10 * col1 + shift, y0 - 10 * row0
    )


def write_labels(
    path: Path,
    fields: Sequence[tuple[str, tuple[int, int, int, int]]] = FIELDS,
    crs: str = "EPSG:4269",
    shift: float = 0.0,
) -> Path:
    """Write *fields* as a GeoPackage in *crs* (reprojected from MAP_CRS)."""
    frame = gpd.GeoDataFrame(
        {"CLASS2": [code for code, _ in fields]},
        geometry=[pixel_box(rows, shift) for _, rows in fields],
        crs=MAP_CRS,
    )
    frame.to_crs(crs).to_file(path, driver="GPKG")
    return path


#: ``training_labels_sha256`` of the test maps: their model was trained on
#: another label file than any the tests score them against.
OTHER_LABELS_SHA256 = "0" * 64


def write_map(
    path: Path,
    classes: npt.NDArray[np.uint8],
    dtype: str = "uint8",
    nodata: float | None = 255,
    trained_on: str | None = OTHER_LABELS_SHA256,
) -> Path:
    """Write a single-band map GeoTIFF on the test grid.

    *trained_on* is the SHA-256 of the label file the map's model was
    trained on, as predict tags it; None leaves the tag out.
    """
    profile = {
        "driver": "GTiff",
        "width": classes.shape[1],
        "height": classes.shape[0],
        "count": 1,
        "dtype": dtype,
        "crs": MAP_CRS,
        "transform": from_origin(*ORIGIN, 10.0, 10.0),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes.astype(dtype), 1)
        if trained_on is not None:
            dst.update_tags(training_labels_sha256=trained_on)
    return path


def base_map() -> npt.NDArray[np.uint8]:
    """The map scored in most tests (see test_hand_computed_scores)."""
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    classes[0:4, 0:4] = 1  # A: irrigated, all right ...
    classes[0, 0] = 255  # ... but one pixel is nodata.
    classes[0, 10:14] = 1  # B: not irrigated, 4 of 16 pixels wrong.
    classes[10:12, 0:4] = 1  # C: irrigated, half wrong (8 of 16): a tie.
    classes[10:14, 10:14] = 1  # D: class X, ignored.
    classes[16:19, 16:19] = 255  # E: no valid map pixel.
    return classes


def lonlat_bbox(
    xmin: float, ymin: float, xmax: float, ymax: float
) -> tuple[float, float, float, float]:
    """The lon/lat bounding box of a MAP_CRS rectangle."""
    to_lonlat = Transformer.from_crs(MAP_CRS, "EPSG:4326", always_xy=True)
    bounds = to_lonlat.transform_bounds(xmin, ymin, xmax, ymax)
    return (bounds[0], bounds[1], bounds[2], bounds[3])


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    return write_labels(tmp_path / "labels.gpkg")


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    return write_map(tmp_path / "map.tif", base_map())


def test_hand_computed_scores(map_path: Path, labels: Path) -> None:
    result = evaluate_map(map_path, labels)
    # A: 15 TP (one nodata pixel not scored); B: 12 TN, 4 FP; C: 8 TP, 8 FN.
    assert (result.tp, result.fp, result.fn, result.tn) == (23, 4, 8, 12)
    assert result.n_pixels == 47
    assert result.precision == pytest.approx(23 / 27)
    assert result.recall == pytest.approx(23 / 31)
    assert result.f1 == pytest.approx(46 / 58)
    assert result.iou == pytest.approx(23 / 35)
    assert result.accuracy == pytest.approx(35 / 47)
    # A right (TP), B right (TN), C a tie voted not irrigated (FN); D ignored,
    # E has no valid map pixel.
    assert result.n_fields == 3
    assert result.field_accuracy == pytest.approx(2 / 3)
    assert result.field_f1 == pytest.approx(2 / 3)


def test_pixels_match_irrigation_labels(map_path: Path, labels: Path) -> None:
    """Pixel labels are IrrigationLabels' own mask on the map grid."""
    dataset = IrrigationLabels(labels, crs=MAP_CRS, res=10.0)
    x0, y0 = ORIGIN
    mask = dataset[x0 : x0 + 10 * SIZE, y0 - 10 * SIZE : y0]["mask"].numpy()
    classes = base_map()
    scored = (classes != 255) & (mask != 255)
    result = evaluate_map(map_path, labels)
    assert result.n_pixels == np.count_nonzero(scored)
    assert result.tp == np.count_nonzero(scored & (classes == 1) & (mask == 1))
    assert result.fp == np.count_nonzero(scored & (classes == 1) & (mask == 0))


def test_nodata_pixel_is_not_scored(tmp_path: Path, labels: Path) -> None:
    classes = base_map()
    classes[0, 1] = 255  # a second nodata pixel in A
    classes[1, 10] = 255  # and one in B (a TN)
    result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    assert (result.tp, result.fp, result.fn, result.tn) == (22, 4, 8, 11)
    assert result.n_pixels == 45


def test_majority_vote(tmp_path: Path, labels: Path) -> None:
    classes = base_map()
    classes[12, 0] = 1  # C: 9 of 16 irrigated, a strict majority now.
    result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    assert result.n_fields == 3
    assert result.field_accuracy == 1.0
    assert result.field_f1 == 1.0
    classes[0:3, 10:14] = 1  # B: 12 of 16 irrigated, voted irrigated (FP).
    result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    assert result.field_accuracy == pytest.approx(2 / 3)
    assert result.field_f1 == pytest.approx(2 * 2 / (2 * 2 + 1))


def test_overlap_later_polygon_wins(tmp_path: Path) -> None:
    # "G" (irrigated) over rows 0-3, then "I" (not irrigated) over rows 0-1.
    labels = write_labels(
        tmp_path / "labels.gpkg", [("G", (0, 0, 4, 4)), ("I", (0, 0, 2, 4))]
    )
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    classes[0:4, 0:4] = 1
    result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    # Rows 0-1 belong to "I" (8 FP), rows 2-3 to "G" (8 TP); each pixel votes
    # for the field whose label it carries only.
    assert (result.tp, result.fp, result.fn, result.tn) == (8, 8, 0, 0)
    assert result.n_fields == 2
    assert result.field_accuracy == 0.5
    assert result.field_f1 == pytest.approx(2 / 3)


def test_bbox_restricts_pixels_and_fields(map_path: Path, labels: Path) -> None:
    # The west part of the map: fields A and C, not B, D, E (edge at x = 700070,
    # 30 m from the nearest field either side).
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 - 100, y0 - 300, x0 + 70, y0 + 100)
    with pytest.warns(UserWarning, match="all 31 scored pixels are labelled irr"):
        result = evaluate_map(map_path, labels, bbox=bbox)
    assert (result.tp, result.fp, result.fn, result.tn) == (23, 0, 8, 0)
    assert result.n_fields == 2
    assert result.field_accuracy == 0.5


def test_bbox_clips_a_field(tmp_path: Path) -> None:
    # One wide "P" field, its 5 west columns mapped irrigated; the bbox keeps
    # just them (east edge at x = 700050, tilted by < 1 m over the bbox).
    labels = write_labels(tmp_path / "labels.gpkg", [("P", (0, 0, 4, 20))])
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    classes[0:4, 0:5] = 1
    map_path = write_map(tmp_path / "map.tif", classes)
    with pytest.warns(UserWarning, match="labelled irrigated"):
        full = evaluate_map(map_path, labels)
    assert (full.tp, full.fn) == (20, 60)
    assert full.field_accuracy == 0.0
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 - 5, y0 - 45, x0 + 50, y0 + 5)
    with pytest.warns(UserWarning, match="labelled irrigated"):
        clipped = evaluate_map(map_path, labels, bbox=bbox)
    assert (clipped.tp, clipped.fp, clipped.fn, clipped.tn) == (20, 0, 0, 0)
    assert clipped.n_fields == 1
    assert clipped.field_accuracy == 1.0


def test_all_correct_map(tmp_path: Path, labels: Path) -> None:
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for code, (row0, col0, row1, col1) in FIELDS:
        classes[row0:row1, col0:col1] = 1 if code in {"P", "G", "V"} else 0
    result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    assert result.f1 == result.precision == result.recall == result.iou == 1.0
    assert result.accuracy == 1.0
    assert result.field_accuracy == result.field_f1 == 1.0
    assert result.n_fields == 4
    assert result.n_pixels == 16 * 3 + 9


def test_zero_denominators_are_none(tmp_path: Path) -> None:
    """A score with nothing to divide by is undefined (None), not a poor 0.0."""
    labels = write_labels(tmp_path / "labels.gpkg", [("I", (0, 0, 4, 4))])
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    with pytest.warns(UserWarning, match="labelled not irrigated"):
        result = evaluate_map(write_map(tmp_path / "map.tif", classes), labels)
    assert result.tn == 16
    assert result.accuracy == result.field_accuracy == 1.0
    assert result.f1 is result.precision is result.recall is result.iou is None
    assert result.field_f1 is None


@pytest.mark.parametrize("rows_per_strip", [1, 3, 7])
def test_strip_size_does_not_change_result(
    map_path: Path, labels: Path, rows_per_strip: int
) -> None:
    whole = evaluate_map(map_path, labels)
    assert evaluate_map(map_path, labels, rows_per_strip=rows_per_strip) == whole


def test_class_map_and_progress(
    map_path: Path, labels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Count "X" (field D, all mapped irrigated) as irrigated: 16 more TP.
    result = evaluate_map(map_path, labels, class_map={"X": 1}, progress=True)
    assert (result.tp, result.fp, result.fn, result.tn) == (39, 4, 8, 12)
    assert result.n_fields == 4
    assert "evaluate map" in capsys.readouterr().err


def test_to_dict_and_table(map_path: Path, labels: Path) -> None:
    result = evaluate_map(map_path, labels)
    values = result.to_dict()
    assert values["tp"] == 23
    assert values["n_fields"] == 3
    assert MapEvaluation(**values) == result
    table = result.table()
    assert "F1 (irrigated)" in table
    assert f"{46 / 58:.4f}" in table
    assert "tp 23" in table


def test_cli_unmapped_codes_warn_in_one_line_and_class_map_maps_them(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field G6 (all irrigated on the map) is ignored until --class-map G6=1."""
    fields = [(code, rows) for code, rows in FIELDS if code != "X"]
    labels = write_labels(tmp_path / "g6.gpkg", [*fields, ("G6", (10, 10, 14, 14))])
    command = ["evaluate", "--map", str(map_path), "--labels", str(labels)]
    main([*command, "--no-progress"])
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "torchgeo-simclr evaluate: warning: 1 of 5 label polygons have a CLASS2 "
        "code with no irrigation class (G6), so they are ignored (labelled 255); "
        "map codes to 1 (irrigated) or 0 (not) with class_map (evaluate: "
        "--class-map CODE=1)."
    ]
    assert "tp 23" in out
    main([*command, "--no-progress", "--class-map", "G6=1"])
    out, err = capsys.readouterr()
    assert err == ""
    assert "tp 39" in out  # G6's 16 pixels count as irrigated now.
    with pytest.raises(SystemExit):
        main([*command, "--class-map", "G6=2"])
    assert "'G6=2' is not CODE=VALUE" in capsys.readouterr().err


def test_a_latitude_first_bbox_gets_the_fix_in_cli_syntax(
    map_path: Path, labels: Path
) -> None:
    with pytest.raises(ValueError, match="look swapped") as info:
        evaluate_map(map_path, labels, bbox=(37.03, -120.86, 37.15, -120.7))
    assert "pass --bbox -120.86 37.03 -120.7 37.15." in str(info.value)


def test_a_bbox_in_metres_is_told_to_name_its_crs(map_path: Path, labels: Path) -> None:
    """As predict and embed tell it: evaluate takes --bbox-crs too."""
    with pytest.raises(ValueError, match="has a latitude beyond") as info:
        evaluate_map(map_path, labels, bbox=(700000, 4100000, 701000, 4101000))
    assert str(info.value) == (
        "--bbox 700000 4100000 701000 4101000 has a latitude beyond +-90 degrees "
        "in EPSG:4326, so these look like projected coordinates (metres); give "
        "their CRS, e.g. --bbox-crs EPSG:32610 for UTM zone 10N."
    )


def test_missing_map(tmp_path: Path, labels: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Map file .*nope\.tif' does not"):
        evaluate_map(tmp_path / "nope.tif", labels)
    with pytest.raises(FileNotFoundError, match=r"Map file .* is a folder; expected"):
        evaluate_map(tmp_path, labels)


def test_probability_map(tmp_path: Path, labels: Path) -> None:
    probability = write_map(
        tmp_path / "map_probability.tif",
        np.zeros((SIZE, SIZE), dtype=np.uint8),
        dtype="float32",
        nodata=None,
    )
    with pytest.raises(ValueError, match=r"float32 with nodata None.*_probability"):
        evaluate_map(probability, labels)


def test_map_without_nodata(tmp_path: Path, labels: Path) -> None:
    classes = write_map(tmp_path / "map.tif", base_map(), nodata=None)
    with pytest.raises(ValueError, match=r"uint8 with nodata None; expected"):
        evaluate_map(classes, labels)


def test_map_with_other_values(tmp_path: Path, labels: Path) -> None:
    classes = base_map()
    classes[5, 5] = 100
    with pytest.raises(ValueError, match=r"holds value 100; expected"):
        evaluate_map(write_map(tmp_path / "map.tif", classes), labels)


def test_missing_labels(map_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Label path .*nope\.gpkg' does"):
        evaluate_map(map_path, tmp_path / "nope.gpkg")


@pytest.mark.parametrize("shift", [50_000.0, 1_500_000.0])
def test_labels_not_overlapping(map_path: Path, tmp_path: Path, shift: float) -> None:
    far = write_labels(tmp_path / "far.gpkg", shift=shift)
    with pytest.raises(
        ValueError, match=r"cover \[-1.*no label polygon overlaps the map;"
    ) as error:
        evaluate_map(map_path, far)
    # The file's own extent; the box around it in the map's UTM zone, taken
    # back to lon/lat, was degrees wider for labels far away.
    extent = [round(float(v), 4) for v in gpd.read_file(far).to_crs(4326).total_bounds]
    assert f"cover {extent}" in str(error.value)


def test_bbox_not_overlapping_map(map_path: Path, tmp_path: Path) -> None:
    fields = [*FIELDS, ("P", (0, 5000, 4, 5004))]  # 50 km east of the map
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 + 49_900, y0 - 100, x0 + 50_100, y0 + 10)
    with pytest.raises(ValueError, match=r"does not overlap map .*, which covers"):
        evaluate_map(map_path, labels, bbox=bbox)


def test_no_labelled_pixel_all_nodata(tmp_path: Path, labels: Path) -> None:
    classes = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"all 57 labelled pixels are map nodata"):
        evaluate_map(write_map(tmp_path / "map.tif", classes), labels)


def test_no_labelled_pixel_ignored_classes(map_path: Path, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.gpkg", [("X", (0, 0, 4, 4))])
    with pytest.raises(ValueError, match=r"no pixel centre lies in a polygon"):
        evaluate_map(map_path, labels)


def test_bad_rows_per_strip(map_path: Path, labels: Path) -> None:
    with pytest.raises(ValueError, match=r"rows_per_strip=0 is not a positive"):
        evaluate_map(map_path, labels, rows_per_strip=0)


def test_a_bbox_off_the_labels_is_named_as_evaluate_s_option(
    map_path: Path, labels: Path
) -> None:
    """Not the training advice (a bbox of the imagery, or no labels to pretrain)."""
    # Labels of field A (top left) only, a bbox over the map's bottom right.
    labels = write_labels(labels.with_name("field_a.gpkg"), FIELDS[:1])
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 + 150, y0 - 190, x0 + 190, y0 - 150)
    with pytest.raises(ValueError, match="does not overlap the labels") as info:
        evaluate_map(map_path, labels, bbox=bbox)
    message = str(info.value)
    given = " ".join(f"{v:.10g}" for v in bbox)
    assert message.startswith(
        f"--bbox {given} does not overlap the labels {str(labels)!r}, which cover ["
    )
    assert "pass a --bbox over both the labels and map" in message
    assert "pretrain" not in message
    assert "imagery" not in message


def test_an_inverted_bbox_gets_the_fix_in_cli_syntax(
    map_path: Path, labels: Path
) -> None:
    with pytest.raises(ValueError, match="with min < max") as info:
        evaluate_map(map_path, labels, bbox=(-120.7, 37.1, -120.8, 37.2))
    assert str(info.value) == (
        "--bbox -120.7 37.1 -120.8 37.2 is not (min lon, min lat, max lon, max lat) "
        "in EPSG:4326 degrees with min < max: min lon -120.7 > max lon -120.8; "
        "pass --bbox -120.8 37.1 -120.7 37.2."
    )


def test_a_picture_as_map_is_refused_in_one_line(
    tmp_path: Path, labels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """E.g. the quick look: no rasterio warning, no advice for GeoTIFFs."""
    picture = tmp_path / "map_quicklook.png"
    Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8)).save(picture)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--map", str(picture), "--labels", str(labels)])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: Map file {str(picture)!r} is a PNG file, "
        "not a GeoTIFF (4 band(s) of uint8, no CRS); expected a single-band uint8 "
        "irrigation class map with nodata 255 (0 not irrigated, 1 irrigated), so "
        "pass the class map PATH.tif that predict wrote (PATH_quicklook.png is only "
        "a picture of it)."
    ]


def test_blank_class_codes_are_named_in_the_warning(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = [*FIELDS[:-1], ("", FIELDS[-1][1])]
    labels = write_labels(tmp_path / "blank.gpkg", fields)
    main(["evaluate", "--map", str(map_path), "--labels", str(labels), "--no-progress"])
    [warning] = capsys.readouterr().err.splitlines()
    assert "code with no irrigation class (<blank>), so they are ignored" in warning


#: The test fields plus F, "I" not irrigated but mapped irrigated: one field of
#: each outcome (A TP, B TN, C FN by a tie, F FP), D ignored, E all nodata.
FOUR_OUTCOMES = (*FIELDS, ("I", (16, 0, 19, 4)))


def four_outcome_map() -> npt.NDArray[np.uint8]:
    """base_map with field F mapped irrigated but for one pixel."""
    classes = base_map()
    classes[16:19, 0:4] = 1
    classes[18, 3] = 0
    return classes


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under *folder* (relative name -> bytes)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_fields_layer_holds_one_row_per_scored_field(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.gpkg", FOUR_OUTCOMES)
    map_path = write_map(tmp_path / "map.tif", four_outcome_map())
    out = tmp_path / "maps" / "fields.gpkg"  # the folder is made
    result = evaluate_map(map_path, labels, fields=out)
    assert result == evaluate_map(map_path, labels)  # the scores are unchanged
    frame = gpd.read_file(out, layer=FIELDS_LAYER)
    assert len(frame) == result.n_fields == 4
    assert list(frame.columns) == [
        "crop_class",
        "label",
        "mapped",
        "irr_px",
        "not_irr_px",
        "agreement",
        "outcome",
        "area_ha",
        "scored_ha",
        "geometry",
    ]
    # The outcomes are the field confusion counts behind the field scores.
    counts = frame["outcome"].value_counts().to_dict()
    tp = counts.get(FIELD_OUTCOMES[1, 1], 0)
    fp = counts.get(FIELD_OUTCOMES[0, 1], 0)
    fn = counts.get(FIELD_OUTCOMES[1, 0], 0)
    tn = counts.get(FIELD_OUTCOMES[0, 0], 0)
    assert (tp, fp, fn, tn) == (1, 1, 1, 1)
    assert tp + fp + fn + tn == result.n_fields
    assert result.field_accuracy == pytest.approx((tp + tn) / result.n_fields)
    assert result.field_f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # Fields do not overlap: their scored pixels are all the scored pixels.
    irrigated, not_irrigated = frame["irr_px"], frame["not_irr_px"]
    assert int((irrigated + not_irrigated).sum()) == result.n_pixels
    truth = frame["label"] == 1
    assert int(irrigated[truth].sum()) == result.tp
    assert int(irrigated[~truth].sum()) == result.fp
    assert int(not_irrigated[truth].sum()) == result.fn
    assert int(not_irrigated[~truth].sum()) == result.tn
    # Row by row, in file order: A (one nodata pixel), B, C (a tie), F.
    assert frame["crop_class"].tolist() == ["P", "I", "G", "I"]
    assert frame["label"].tolist() == [1, 0, 1, 0]
    assert frame["mapped"].tolist() == [1, 0, 0, 1]
    assert irrigated.tolist() == [15, 4, 8, 11]
    assert not_irrigated.tolist() == [0, 12, 8, 1]
    assert frame["agreement"].tolist() == pytest.approx(
        [1.0, 0.75, 0.5, round(1 / 12, 4)]
    )
    assert frame["outcome"].tolist() == [
        "irrigated, mapped irrigated",
        "not irrigated, mapped not irrigated",
        "irrigated, mapped not irrigated",
        "not irrigated, mapped irrigated",
    ]
    # 4 x 4 and 4 x 3 pixels of 100 m2 (reprojected from EPSG:4269: ~exact).
    assert frame["area_ha"].tolist() == pytest.approx([0.16, 0.16, 0.16, 0.12])
    # The vote rests on the pixels with data: A's nodata pixel is not scored.
    assert frame["scored_ha"].tolist() == pytest.approx([0.15, 0.16, 0.16, 0.12])
    assert CRS.from_user_input(frame.crs) == CRS.from_user_input(MAP_CRS)
    assert set(frame.geom_type) == {"MultiPolygon"}
    # The label polygons themselves (reprojected there and back: < 1 mm off).
    for (_, rows), shape in zip(FOUR_OUTCOMES[:3], frame.geometry[:3], strict=True):
        assert shape.symmetric_difference(pixel_box(rows)).area < 1e-2
    # Only the GeoPackage is left: no temporary file.
    assert sorted(p.name for p in out.parent.iterdir()) == ["fields.gpkg"]


def test_fields_style_is_categorized_by_outcome(map_path: Path, labels: Path) -> None:
    out = map_path.with_name("fields.gpkg")
    evaluate_map(map_path, labels, fields=out)
    styles = pyogrio.read_dataframe(out, layer="layer_styles")
    [style] = styles.to_dict("records")
    assert style["f_table_name"] == FIELDS_LAYER
    assert style["useAsDefault"]
    root = ET.fromstring(style["styleQML"].split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer is not None
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == "outcome"
    categories = renderer.findall("categories/category")
    assert len(categories) == 4
    assert {c.get("value") for c in categories} == set(FIELD_OUTCOMES.values())
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    fills = {}
    for category in categories:
        value = category.get("value", "")
        assert category.get("render") == "true"
        assert category.get("label") == OUTCOME_LEGEND[value][0]
        symbol = symbols[category.get("symbol")]
        assert symbol.get("type") == "fill"
        layer = symbol.find("layer")
        assert layer is not None
        assert layer.get("class") == "SimpleFill"
        props = {p.get("k"): p.get("v") for p in layer.findall("prop")}
        assert props["style"] == "solid"
        fills[value] = props["color"]
    assert len(set(fills.values())) == 4  # four colours, one per outcome
    assert root.findtext("layerGeometryType") == "2"


def test_fields_from_the_cli_prints_the_path_and_overwrites_only_with_overwrite(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sample_fields.gpkg"
    command = [
        "evaluate",
        "--map",
        str(map_path),
        "--labels",
        str(labels),
        "--fields",
        str(out),
        "--no-progress",
    ]
    main(command)
    lines = capsys.readouterr().out.splitlines()
    assert "tp 23" in lines[-4]  # the scores table comes first
    assert lines[-1] == (
        f"Fields: {out} (layer 'fields', 3 fields, styled by outcome for QGIS)"
    )
    before = files_under(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: {out} already exists; pass --overwrite "
        "to replace it, or choose another --fields."
    ]
    assert files_under(tmp_path) == before
    main([*command, "--overwrite"])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"Fields: {out} ")
    assert len(gpd.read_file(out, layer=FIELDS_LAYER)) == 3


def test_fields_help_says_what_the_layer_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--fields PATH.gpkg" in text
    for word in (
        "crop_class",
        "agreement",
        "outcome",
        "area_ha",
        "scored_ha",
        "irr_px",
        "--overwrite",
    ):
        assert word in text


def refused_before_the_map_is_opened(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    error: type[Exception],
    message: str,
    map_path: Path,
    labels: Path,
    **outputs: Any,
) -> None:
    """Refuse *outputs* in one sentence before the map is opened, writing nothing.

    Every file and folder under *tmp_path* is left as it was.
    """
    before = files_under(tmp_path)
    folders = sorted(p for p in tmp_path.rglob("*") if p.is_dir())

    def no_evaluation(*args: object) -> None:
        raise AssertionError("the map was opened before the outputs were checked")

    monkeypatch.setattr(evaluate_module, "open_map", no_evaluation)
    with pytest.raises(error, match=message) as info:
        evaluate_map(map_path, labels, **outputs)
    assert len(str(info.value).splitlines()) == 1
    assert files_under(tmp_path) == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == folders


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("existing", FileExistsError, r"already exists; pass --overwrite"),
        ("not fields", FileExistsError, r"is not a GeoPackage of fields .*'fields'"),
        ("labels", ValueError, r"is the file --labels reads; choose another"),
        ("link to labels", ValueError, r"is the file --labels reads \("),
        ("map", ValueError, r"is the file --map reads; choose another"),
        ("extension", ValueError, r"must end in \.gpkg"),
        ("folder", IsADirectoryError, r"is a folder; pass a GeoPackage file name"),
    ],
)
def test_fields_refusals_leave_every_file_as_it_was(
    map_path: Path,
    labels: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    error: type[Exception],
    message: str,
) -> None:
    """Refused before the map is opened; nothing is written, not even a folder."""
    fields = tmp_path / "fields.gpkg"
    overwrite = True
    if case == "existing":
        evaluate_map(map_path, labels, fields=fields)
        overwrite = False
    elif case == "not fields":
        fields = tmp_path / "mine.gpkg"
        gpd.read_file(labels).to_file(fields, layer="crops", driver="GPKG")
    elif case == "labels":
        fields = labels
    elif case == "link to labels":
        fields.symlink_to(labels)
    elif case == "map":
        fields = map_path
    elif case == "extension":
        fields = tmp_path / "fields.geojson"
        fields.write_text('{"type": "FeatureCollection", "features": []}')
    else:
        fields = tmp_path / "out"
        fields.mkdir()
    refused_before_the_map_is_opened(
        monkeypatch,
        tmp_path,
        error,
        message,
        map_path,
        labels,
        fields=fields,
        overwrite=overwrite,
    )


def test_a_folder_as_fields_is_refused_in_one_sentence(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "maps"
    folder.mkdir()
    command = ["evaluate", "--map", str(map_path), "--labels", str(labels)]
    with pytest.raises(SystemExit) as info:
        main([*command, "--fields", str(folder), "--overwrite", "--no-progress"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: --fields {str(folder)!r} is a folder; "
        f"pass a GeoPackage file name, e.g. {folder / 'fields.gpkg'} (nothing was "
        "written)."
    ]
    assert list(folder.iterdir()) == []


def test_fields_inside_a_labels_folder_are_refused(
    map_path: Path, labels: Path, tmp_path: Path
) -> None:
    """The next run would read the fields as labels."""
    with pytest.raises(ValueError, match=r"is inside the --labels folder"):
        evaluate_map(map_path, tmp_path, fields=tmp_path / "fields.gpkg")
    assert not (tmp_path / "fields.gpkg").exists()


def test_failed_evaluation_writes_no_fields(tmp_path: Path, labels: Path) -> None:
    classes = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    out = tmp_path / "maps" / "fields.gpkg"
    with pytest.raises(ValueError, match=r"labelled pixels are map nodata"):
        evaluate_map(write_map(tmp_path / "map.tif", classes), labels, fields=out)
    assert not out.parent.exists()


def test_fields_area_in_a_geographic_crs_is_on_the_ellipsoid() -> None:
    """Hectares in lon/lat match the same field's planar area in UTM."""
    field = pixel_box((0, 0, 100, 100))  # 1 km x 1 km: 100 ha
    to_lonlat = Transformer.from_crs(MAP_CRS, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(
        field, lambda xy: np.column_stack(to_lonlat.transform(*xy.T))
    )
    geometries = np.array([field, lonlat], dtype=object)
    utm = map_pixels.area_ha(geometries[:1], CRS.from_user_input(MAP_CRS))
    geographic = map_pixels.area_ha(geometries[1:], CRS.from_user_input("EPSG:4326"))
    assert utm.tolist() == [100.0]
    # UTM's scale error near the zone edge is under 0.1 % in area here.
    assert geographic[0] == pytest.approx(100.0, rel=2e-3)


def test_table_shows_hectares_and_field_counts(map_path: Path, labels: Path) -> None:
    """The confusion counts in pixels and hectares, and the fields behind the votes."""
    result = evaluate_map(map_path, labels)
    # 10 m pixels are 0.01 ha; A right (TP), B right (TN), C a tie (FN).
    assert (result.tp_ha, result.fp_ha, result.fn_ha, result.tn_ha) == (
        0.23,
        0.04,
        0.08,
        0.12,
    )
    assert (result.field_tp, result.field_fp, result.field_fn, result.field_tn) == (
        1,
        0,
        1,
        1,
    )
    assert result.table().splitlines()[-3:-1] == [
        "pixels: tp 23 (0.23 ha)  fp 4 (0.04 ha)  fn 8 (0.08 ha)  tn 12 (0.12 ha)",
        "fields: tp 1  fp 0  fn 1  tn 1",
    ]


def test_hectares_of_a_lonlat_map_are_on_the_ellipsoid() -> None:
    """A pixel of 0.001 degrees has the area of the same pixel drawn in UTM."""
    crs = CRS.from_user_input("EPSG:4326")
    transform = from_origin(-120.8, 37.101, 0.001, 0.001)
    pixel_ha = map_pixels.row_pixel_ha(transform, 2, crs)
    to_utm = Transformer.from_crs(crs, MAP_CRS, always_xy=True)
    for row, area in enumerate(pixel_ha):
        top = 37.101 - 0.001 * row
        pixel = shapely.segmentize(
            shapely.box(-120.8, top - 0.001, -120.799, top), 1e-4
        )
        utm = shapely.transform(
            pixel, lambda xy: np.column_stack(to_utm.transform(*xy.T))
        )
        # UTM's scale error near the zone edge is under 0.1 % in area here.
        assert area == pytest.approx(utm.area / 10_000, rel=2e-3)
    assert pixel_ha[0] < pixel_ha[1]  # pixels shrink northwards


def evaluate_command(map_path: Path, labels: Path, *options: str) -> list[str]:
    """The evaluate command line of *map_path* and *labels*, without progress."""
    return [
        "evaluate",
        "--map",
        str(map_path),
        "--labels",
        str(labels),
        *options,
        "--no-progress",
    ]


def test_scores_json_holds_the_printed_scores_and_what_was_scored(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maps" / "sample_scores.json"  # the folder is made
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 - 100, y0 - 300, x0 + 300, y0 + 100)  # the whole map
    fields = tmp_path / "fields.gpkg"
    main(
        evaluate_command(
            map_path,
            labels,
            "--scores",
            str(out),
            "--fields",
            str(fields),
            "--bbox",
            *(str(v) for v in bbox),
            "--class-map",
            "X=255",
        )
    )
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1] == f"Scores: {out} (JSON)"
    record = json.loads(out.read_text())
    assert record["torchgeo_simclr_version"] == torchgeo_simclr.__version__
    assert (record["map"], record["labels"]) == (str(map_path), str(labels))
    assert record["class_column"] == "CLASS2"
    assert record["class_map"] == {"X": 255}
    assert record["bbox"] == pytest.approx(list(bbox))
    assert (record["bbox_crs"], record["map_crs"]) == ("EPSG:4326", MAP_CRS)
    assert record["fields_gpkg"] == str(fields)
    assert "hectares" in record["units"]["_ha"]
    assert "pixels" in record["units"]["_px"]
    assert record["pixels"] == pytest.approx(
        {
            "f1": 46 / 58,
            "precision": 23 / 27,
            "recall": 23 / 31,
            "iou": 23 / 35,
            "accuracy": 35 / 47,
            "scored_px": 47,
            "tp_px": 23,
            "fp_px": 4,
            "fn_px": 8,
            "tn_px": 12,
            "scored_ha": 0.47,
            "tp_ha": 0.23,
            "fp_ha": 0.04,
            "fn_ha": 0.08,
            "tn_ha": 0.12,
        }
    )
    assert record["fields"] == pytest.approx(
        {
            "f1": 2 / 3,
            "accuracy": 2 / 3,
            "scored_fields": 3,
            "tp_fields": 1,
            "fp_fields": 0,
            "fn_fields": 1,
            "tn_fields": 1,
        }
    )
    # What the table prints is what the file holds.
    for score in ("f1", "precision", "recall", "iou", "accuracy"):
        assert f"{record['pixels'][score]:.4f}" in printed
    # Only the JSON is left: no temporary file.
    assert [p.name for p in out.parent.iterdir()] == ["sample_scores.json"]


def test_scores_are_replaced_only_with_overwrite(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.json"
    command = evaluate_command(map_path, labels, "--scores", str(out))
    main(command)
    before = files_under(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: {out} already exists; pass --overwrite "
        "to replace it, or choose another --scores."
    ]
    assert files_under(tmp_path) == before
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 - 10, y0 - 60, x0 + 210, y0 + 10)  # fields A and B
    main([*command, "--overwrite", "--bbox", *(str(v) for v in bbox)])
    record = json.loads(out.read_text())
    assert record["bbox"] == pytest.approx(list(bbox))
    assert record["pixels"]["tp_px"] == 15


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("existing", FileExistsError, r"already exists; pass --overwrite"),
        (
            "other JSON",
            FileExistsError,
            r"^--scores '.*notes\.json' is not a scores file written by evaluate "
            r"\(JSON without the key\(s\) bbox, fields, labels, map, pixels, "
            r"torchgeo_simclr_version\); choose another --scores \(nothing was "
            r"written\)\.$",
        ),
        ("JSON list", FileExistsError, r"\(JSON, but a list, not an object\)"),
        ("text", FileExistsError, r"is not a scores file written by .*\(not JSON\)"),
        ("large", FileExistsError, r"\(a file of 2,097,152 bytes, far larger than"),
        ("labels", ValueError, r"is the file --labels reads; choose another"),
        ("link to labels", ValueError, r"is the file --labels reads \("),
        ("map", ValueError, r"is the file --map reads; choose another"),
        ("extension", ValueError, r"must end in \.json .*; pass e\.g\. .*scores\.json"),
        ("folder", IsADirectoryError, r"is a folder; pass a JSON file name"),
        ("under a file", PermissionError, r"pass --scores in a directory you can"),
    ],
)
def test_scores_refusals_leave_every_file_as_it_was(
    map_path: Path,
    labels: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    error: type[Exception],
    message: str,
) -> None:
    """Refused before the map is opened; nothing is written, not even a folder."""
    scores = tmp_path / "scores.json"
    overwrite = True
    if case == "existing":
        evaluate_map(map_path, labels, scores=scores)
        overwrite = False
    elif case == "other JSON":
        scores = tmp_path / "notes.json"
        scores.write_text('{"type": "FeatureCollection", "features": []}')
    elif case == "JSON list":
        scores.write_text("[1, 2]")
    elif case == "text":
        scores.write_text("my notes\n")
    elif case == "large":
        scores.write_bytes(b" " * 2**21)
    elif case == "labels":
        scores = labels
    elif case == "link to labels":
        scores.symlink_to(labels)
    elif case == "map":
        scores = map_path
    elif case == "extension":
        scores = tmp_path / "scores.txt"
    elif case == "folder":
        scores = tmp_path / "out"
        scores.mkdir()
    else:
        (tmp_path / "notes.txt").write_text("a file, not a folder\n")
        scores = tmp_path / "notes.txt" / "scores.json"
    refused_before_the_map_is_opened(
        monkeypatch,
        tmp_path,
        error,
        message,
        map_path,
        labels,
        scores=scores,
        overwrite=overwrite,
    )


def test_a_scores_refusal_from_the_cli_is_one_sentence(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text("my notes\n")
    with pytest.raises(SystemExit) as info:
        main(evaluate_command(map_path, labels, "--scores", str(notes), "--overwrite"))
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: --scores {str(notes)!r} is not a scores "
        "file written by evaluate (not JSON); choose another --scores (nothing was "
        "written)."
    ]
    assert notes.read_text() == "my notes\n"


def test_failed_evaluation_writes_no_scores(tmp_path: Path, labels: Path) -> None:
    classes = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    out = tmp_path / "maps" / "scores.json"
    with pytest.raises(ValueError, match=r"labelled pixels are map nodata"):
        evaluate_map(write_map(tmp_path / "map.tif", classes), labels, scores=out)
    assert not out.parent.exists()


def test_scores_help_says_what_the_file_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--scores PATH.json" in text
    assert "--bbox-crs" in text
    for word in ("hectares", "precision", "iou", "--class-map", "version"):
        assert word in text.rsplit("--scores PATH.json", 1)[1].split("--overwrite")[0]


def test_fields_crop_class_is_the_class_column_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The code the label came from, as --class-column names it, spaces stripped."""
    codes = [" P", "I ", " G", "X", " V", "I"]  # DWR pads some codes
    frame = gpd.GeoDataFrame(
        {"CLASS2": ["X"] * len(codes), "CLASS1": codes},
        geometry=[pixel_box(rows) for _, rows in FOUR_OUTCOMES],
        crs=MAP_CRS,
    )
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels, driver="GPKG")
    map_path = write_map(tmp_path / "map.tif", four_outcome_map())
    out = tmp_path / "fields.gpkg"
    main(
        evaluate_command(
            map_path, labels, "--class-column", "CLASS1", "--fields", str(out)
        )
    )
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"Fields: {out} ")
    fields = gpd.read_file(out, layer=FIELDS_LAYER)
    # A, B, C and F are scored; D (X) is ignored and E (V) is all nodata.
    assert fields["crop_class"].tolist() == ["P", "I", "G", "I"]
    assert fields["outcome"].tolist() == [
        "irrigated, mapped irrigated",
        "not irrigated, mapped not irrigated",
        "irrigated, mapped not irrigated",
        "not irrigated, mapped irrigated",
    ]


#: A bbox over fields A and B (rows 0-5, columns 0-20 and a pixel beyond), in
#: MAP_CRS metres: on whole pixel edges, away from every pixel centre.
UTM_BBOX = (
    ORIGIN[0] - 10,
    ORIGIN[1] - 60,
    ORIGIN[0] + 210,
    ORIGIN[1] + 10,
)


def test_a_bbox_in_the_map_crs_scores_the_pixels_inside_it(
    map_path: Path, labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.json"
    options = ["--bbox", *(f"{v:g}" for v in UTM_BBOX), "--bbox-crs", MAP_CRS]
    main(evaluate_command(map_path, labels, *options, "--scores", str(out)))
    assert "tp 15 (0.15 ha)  fp 4 (0.04 ha)  fn 0 (0.00 ha)  tn 12" in (
        capsys.readouterr().out
    )
    record = json.loads(out.read_text())
    assert (record["bbox"], record["bbox_crs"]) == (list(UTM_BBOX), MAP_CRS)
    assert record["fields"]["scored_fields"] == 2
    # The same pixels as the bbox in lon/lat and in another geographic CRS.
    for crs in ("EPSG:4326", "EPSG:4269"):
        to_crs = Transformer.from_crs(MAP_CRS, crs, always_xy=True)
        bounds = to_crs.transform_bounds(*UTM_BBOX)
        result = evaluate_map(map_path, labels, bbox=bounds, bbox_crs=crs)
        assert (result.tp, result.fp, result.fn, result.tn) == (15, 4, 0, 12)


@pytest.mark.parametrize(
    ("bbox", "bbox_crs", "message"),
    [
        (
            UTM_BBOX,
            "EPSG:99999",
            "--bbox-crs 'EPSG:99999' is not a CRS that pyproj knows; pass e.g. "
            "EPSG:4326 for lon/lat, EPSG:32610 for UTM zone 10N metres or EPSG:3310 "
            "for California Albers metres.",
        ),
        (
            (UTM_BBOX[2], UTM_BBOX[1], UTM_BBOX[0], UTM_BBOX[3]),
            MAP_CRS,
            "--bbox 700210 4099940 699990 4100010 is not (xmin, ymin, xmax, ymax) "
            "with min < max in EPSG:32610: min x 700210 > max x 699990; pass "
            "--bbox 699990 4099940 700210 4100010.",
        ),
        (
            (37.03, -120.86, 37.15, -120.7),
            "EPSG:4269",
            "--bbox 37.03 -120.86 37.15 -120.7 has a latitude beyond +-90 degrees "
            "in EPSG:4269, so longitude and latitude look swapped; --bbox takes "
            "longitude first: pass --bbox -120.86 37.03 -120.7 37.15.",
        ),
        (
            lonlat_bbox(*UTM_BBOX),
            MAP_CRS,
            "--bbox {bbox} in EPSG:32610 misses map {map!r}, but read as lon/lat "
            "degrees it lies over it; leave out --bbox-crs EPSG:32610 (lon/lat is "
            "the default), or give the bbox in EPSG:32610 coordinates.",
        ),
        (
            # On the map, between the fields (off the map it is refused first).
            (700055, 4099905, 700095, 4099945),
            MAP_CRS,
            "--bbox 700055 4099905 700095 4099945 in EPSG:32610 does not overlap the "
            "labels {labels!r}, which cover [",
        ),
    ],
)
def test_bbox_crs_refusals_name_the_bbox_in_its_crs(
    map_path: Path,
    labels: Path,
    bbox: tuple[float, float, float, float],
    bbox_crs: str,
    message: str,
) -> None:
    expected = message.format(
        bbox=" ".join(f"{v:.10g}" for v in bbox), map=str(map_path), labels=str(labels)
    )
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        evaluate_map(map_path, labels, bbox=bbox, bbox_crs=bbox_crs)
    assert str(info.value).startswith(expected)
    assert len(str(info.value).splitlines()) == 1


def test_a_bbox_in_the_map_crs_off_the_map_names_the_map_in_that_crs(
    map_path: Path, tmp_path: Path
) -> None:
    fields = [*FIELDS, ("P", (0, 5000, 4, 5004))]  # 50 km east of the map
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    x0, y0 = ORIGIN
    bbox = (x0 + 49_900, y0 - 100, x0 + 50_100, y0 + 10)
    with pytest.raises(ValueError, match="in EPSG:32610 does not overlap map") as info:
        evaluate_map(map_path, labels, bbox=bbox, bbox_crs=MAP_CRS)
    message = str(info.value)
    assert message.startswith(
        f"--bbox 749900 4099900 750100 4100010 in EPSG:32610 does not overlap map "
        f"{str(map_path)!r}, which covers ["
    )
    assert message.endswith(
        "(lon/lat) = [700000.0, 4099800.0, 700200.0, 4100000.0] in EPSG:32610; "
        "pass a --bbox inside that extent or leave it out."
    )


def test_one_class_labels_warn_that_a_map_of_that_class_scores_perfectly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels of irrigated fields only: a map calling everything irrigated gets F1 1."""
    labels = write_labels(
        tmp_path / "alfalfa_only.gpkg", [("P", (0, 0, 4, 4)), ("G", (10, 0, 14, 4))]
    )
    everything = write_map(tmp_path / "map.tif", np.ones((SIZE, SIZE), np.uint8))
    main(evaluate_command(everything, labels))
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"torchgeo-simclr evaluate: warning: Labels {str(labels)!r}: all 32 scored "
        "pixels are labelled irrigated, so precision, accuracy and the true "
        "negatives say nothing about false irrigation, and a map that calls "
        "everything irrigated scores F1 1.0; score against labels that also hold "
        "not-irrigated fields (add some, or map their codes with --class-map "
        "CODE=0)."
    ]
    assert "F1 (irrigated)  1.0000  1.0000" in out
    # Only not-irrigated fields: the irrigated scores are 0 whatever the map.
    idle = write_labels(tmp_path / "idle_only.gpkg", [("I", (0, 10, 4, 14))])
    with pytest.warns(UserWarning, match="scored pixels are labelled not irr") as w:
        evaluate_map(everything, idle)
    assert "calls nothing irrigated scores accuracy 1.0" in str(w[0].message)
    assert "--class-map CODE=1" in str(w[0].message)
    # Both classes: no such warning.
    main(evaluate_command(everything, write_labels(tmp_path / "both.gpkg")))
    assert capsys.readouterr().err == ""


def test_polygons_read_and_scored_are_counted(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A, B and C are scored; D is X (ignored), E all nodata, F and G off the map."""
    fields = [*FIELDS, ("P", (0, 30, 4, 34)), ("I", (30, 0, 34, 4))]
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    result = evaluate_map(map_path, labels)
    assert result.n_fields == 3
    assert (
        result.n_polygons,
        result.n_polygons_off_map,
        result.n_polygons_ignored,
        result.n_polygons_nodata,
    ) == (7, 2, 1, 1)
    assert result.table().splitlines()[-1] == (
        "label polygons: 7 read, 3 scored; not scored: 2 with no pixel centre in "
        "the area scored (off the map or --bbox), 1 with an ignored code (255, "
        "unmapped or missing), 1 over map nodata only"
    )
    out = tmp_path / "scores.json"
    main(evaluate_command(map_path, labels, "--scores", str(out)))
    assert "label polygons: 7 read, 3 scored; not scored: 2 " in (
        capsys.readouterr().out
    )
    record = json.loads(out.read_text())
    assert record["label_polygons"] == {
        "read": 7,
        "scored": 3,
        "off_map": 2,
        "ignored_class": 1,
        "map_nodata_only": 1,
    }
    assert record["fields"]["scored_fields"] == 3  # kept as it was
    assert "off_map" in record["units"]["label_polygons"]
    # Every polygon scored: the line says just that.
    all_scored = write_labels(tmp_path / "abc.gpkg", FIELDS[:3])
    assert evaluate_map(map_path, all_scored).table().splitlines()[-1] == (
        "label polygons: 3 read, 3 scored"
    )


def test_a_bbox_counts_the_polygons_it_cuts_off_as_not_scored(
    map_path: Path, labels: Path
) -> None:
    """A and C scored; B and D reach 3 m into the bbox, no pixel centre; E is out."""
    x0, y0 = ORIGIN
    bbox = (x0 - 100, y0 - 300, x0 + 103, y0 + 100)
    with pytest.warns(UserWarning, match="labelled irrigated"):
        result = evaluate_map(map_path, labels, bbox=bbox, bbox_crs=MAP_CRS)
    assert result.n_fields == 2
    # E lies outside the bbox and is not read; D (X) is ignored whatever.
    assert (
        result.n_polygons,
        result.n_polygons_off_map,
        result.n_polygons_ignored,
        result.n_polygons_nodata,
    ) == (4, 1, 1, 0)
    assert result.table().splitlines()[-1] == (
        "label polygons: 4 read, 2 scored; not scored: 1 with no pixel centre in "
        "the area scored (off the map or --bbox), 1 with an ignored code (255, "
        "unmapped or missing)"
    )


def write_int_labels_with_nulls(path: Path) -> Path:
    """A, B and F of FOUR_OUTCOMES as an integer ``irrigated`` column, plus a NULL."""
    import pandas as pd

    rows = [FOUR_OUTCOMES[0][1], FOUR_OUTCOMES[1][1], FOUR_OUTCOMES[5][1]]
    gpd.GeoDataFrame(
        {"irrigated": pd.array([1, 0, 0, None], dtype="Int64")},
        geometry=[*(pixel_box(r) for r in rows), pixel_box(FIELDS[3][1])],
        crs=MAP_CRS,
    ).to_file(path, driver="GPKG")
    return path


@pytest.mark.parametrize("class_map", [["1=1", "0=0"], ["1.0=1", "0.0=0"]])
def test_an_integer_class_column_with_nulls_is_scored_with_its_integer_codes(
    tmp_path: Path, class_map: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """QGIS leaves unfilled rows NULL; the column is then read as 1.0 and 0.0."""
    labels = write_int_labels_with_nulls(tmp_path / "curated.gpkg")
    map_path = write_map(tmp_path / "map.tif", four_outcome_map())
    fields = tmp_path / "fields.gpkg"
    options = ["--class-column", "irrigated", "--fields", str(fields)]
    main(evaluate_command(map_path, labels, *options, "--class-map", *class_map))
    out, err = capsys.readouterr()
    # Only the NULL row is left out, and named so.
    assert err.splitlines() == [
        "torchgeo-simclr evaluate: warning: 1 of 4 label polygons have a irrigated "
        "code with no irrigation class (<missing>), so they are ignored (labelled "
        "255); map codes to 1 (irrigated) or 0 (not) with class_map (evaluate: "
        "--class-map CODE=1)."
    ]
    # A: 15 TP; B: 4 FP, 12 TN; F: 11 FP, 1 TN.
    assert "pixels: tp 15 (0.15 ha)  fp 15 (0.15 ha)  fn 0 (0.00 ha)  tn 13" in out
    frame = gpd.read_file(fields, layer=FIELDS_LAYER)
    assert frame["crop_class"].tolist() == ["1", "0", "0"]


def write_layers(path: Path, *layers: tuple[str, str]) -> Path:
    """A GeoPackage of the test fields in each ``(layer, class column)``, in order."""
    for layer, column in layers:
        gpd.GeoDataFrame(
            {column: [code for code, _ in FIELDS]},
            geometry=[pixel_box(rows) for _, rows in FIELDS],
            crs=MAP_CRS,
        ).to_file(path, layer=layer, driver="GPKG")
    return path


def test_labels_layer_picks_the_layer_of_a_multi_layer_geopackage(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A QGIS project GeoPackage: the search hits first, then the user's labels."""
    project = write_layers(
        tmp_path / "project.gpkg", ("hits_alfalfa", "rank"), ("my_labels", "CLASS2")
    )
    with pytest.raises(SystemExit) as info:
        main(evaluate_command(map_path, project))
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"torchgeo-simclr evaluate: error: Label file {str(project)!r} has no "
        "column 'CLASS2' in its first layer 'hits_alfalfa', which is read when no "
        "--labels-layer is given; its other vector layers are ['my_labels'] "
        "(my_labels with 'CLASS2'), so pass --labels-layer my_labels."
    ]
    out = tmp_path / "scores.json"
    main(
        evaluate_command(
            map_path, project, "--labels-layer", "my_labels", "--scores", str(out)
        )
    )
    printed, err = capsys.readouterr()
    assert err == ""
    assert "tp 23" in printed
    assert json.loads(out.read_text())["labels_layer"] == "my_labels"
    with pytest.raises(ValueError, match="has no layer 'mylabels'") as error:
        evaluate_map(map_path, project, labels_layer="mylabels")
    assert str(error.value).endswith(
        "its vector layers are ['hits_alfalfa', 'my_labels'], so pass one of them "
        "as --labels-layer."
    )


def test_a_first_layer_with_the_column_is_scored_with_a_warning_naming_the_option(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyogrio's "Specify layer parameter" names no option evaluate has."""
    project = write_layers(
        tmp_path / "project.gpkg", ("v1", "CLASS2"), ("v2", "CLASS2")
    )
    main(evaluate_command(map_path, project))
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"torchgeo-simclr evaluate: warning: Label file {str(project)!r} holds 2 "
        "vector layers ('v1', 'v2') and only the first, 'v1', is scored against; "
        "pass --labels-layer NAME to score against another."
    ]
    assert "tp 23" in out


def test_a_styled_single_layer_geopackage_reads_without_a_layer_warning(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QGIS's layer_styles table is a second layer to GDAL, but holds no polygons."""
    from torchgeo_simclr.geopackage import write_geopackage

    labels = tmp_path / "hits.gpkg"
    frame = gpd.read_file(write_labels(tmp_path / "plain.gpkg", crs=MAP_CRS))
    write_geopackage(frame, labels, "hits", style=("style", "<qgis></qgis>"))
    assert len(pyogrio.list_layers(labels)) == 2
    main(evaluate_command(map_path, labels))
    out, err = capsys.readouterr()
    assert err == ""
    assert "tp 23" in out


def test_labels_help_names_any_polygon_file_and_the_layer_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    labels = text.split("--labels LABELS ")[-1].split("--labels-layer NAME")[0]
    for words in (
        "any polygon file",
        "GeoPackage",
        "Shapefile",
        "GeoJSON",
        "GeoParquet",
        "in any CRS",
        "--class-column",
        "--class-map",
    ):
        assert words in labels
    assert "DWR crop-mapping file" not in text
    layer = text.split("--labels-layer NAME ")[-1].split("--class-column")[0]
    assert "QGIS project GeoPackage" in layer
