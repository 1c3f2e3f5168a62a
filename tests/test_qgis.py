"""A map opened in QGIS itself: styles applied, on the imagery grid, colours right.

Runs ``qgis_open.py`` with the Python that has QGIS's bindings (Debian's
``python3-qgis``; ``.ci/run`` installs it), and skips where there is none.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from conftest import save_checkpoint, scene_stats
from test_evaluate import base_map, write_labels, write_map
from test_field_stats import write_fields

from torchgeo_simclr.constants import MAP_CLASSES, MAP_NODATA, S2_BANDS
from torchgeo_simclr.evaluate import FIELDS_LAYER, OUTCOME_LEGEND, evaluate_map
from torchgeo_simclr.field_stats import FIELD_STATS_LAYER, STATUS_LEGEND, field_stats
from torchgeo_simclr.geopackage import store_default_style
from torchgeo_simclr.inference import MapResult, predict_map
from torchgeo_simclr.inference.styles import (
    HIT_OUTLINE,
    HIT_OUTLINE_MM,
    POLYGON_OUTLINE,
    polygon_style,
)
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.sample import make_sample_scene

#: The script QGIS's Python runs.
SCRIPT = Path(__file__).with_name("qgis_open.py")

#: Side of the scene, 10 m pixels.
SCENE = 320

#: Top-left pixels of the scene without data (every band 0).
HOLE = 40

#: Colour the rendering shows through where QGIS draws nothing.
BACKGROUND = "#ff00ff"


def qgis_python() -> str | None:
    """A Python that imports ``qgis.core``.

    ``$QGIS_PYTHON`` first, then the system Python that Debian's ``python3-qgis``
    installs into, then ``python3`` on PATH.
    """
    candidates = [
        os.environ.get("QGIS_PYTHON"),
        "/usr/bin/python3",
        shutil.which("python3"),
    ]
    for python in filter(None, candidates):
        if not Path(python).is_file():
            continue
        found = subprocess.run(
            [python, "-c", "import qgis.core"], capture_output=True, check=False
        )
        if found.returncode == 0:
            return python
    return None


@pytest.fixture(scope="module")
def qgis() -> str:
    python = qgis_python()
    if python is None:
        pytest.skip(
            "QGIS's Python bindings were not found (apt install qgis python3-qgis, "
            "or set QGIS_PYTHON to a Python that imports qgis.core)"
        )
    return python


@pytest.fixture(scope="module")
def qgis_map(tmp_path_factory: pytest.TempPathFactory) -> MapResult:
    """A segmentation map with both classes and a corner of nodata."""
    scene = make_sample_scene(tmp_path_factory.mktemp("scene"), size=SCENE, tiles=2)
    with rasterio.open(scene.image_paths[0], "r+") as src:
        blank = np.zeros((src.count, HOLE, HOLE), dtype=src.dtypes[0])
        src.write(blank, window=((0, HOLE), (0, HOLE)))
    mean, std = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=32,
    )
    folder = tmp_path_factory.mktemp("map")
    checkpoint = save_checkpoint(folder / "model.ckpt", "segmentation", metadata)
    options: dict[str, Any] = {"device": "cpu", "progress": False}
    first = predict_map(checkpoint, scene.root, folder / "first.tif", **options)
    with rasterio.open(first.files.probability) as src:
        probability = src.read(1, masked=True)
    # Random weights: the median splits the map into both classes.
    threshold = float(np.ma.median(probability))
    return predict_map(
        checkpoint, scene.root, folder / "map.tif", threshold=threshold, **options
    )


def interior(mask: np.ndarray, count: int = 20) -> list[list[int]]:
    """Up to *count* ``[col, row]`` pixels of *mask* whose 5 x 5 block is all in it."""
    inside = np.zeros_like(mask)
    inside[2:-2, 2:-2] = np.all(
        [
            mask[2 + dr : mask.shape[0] - 2 + dr, 2 + dc : mask.shape[1] - 2 + dc]
            for dr in range(-2, 3)
            for dc in range(-2, 3)
        ],
        axis=0,
    )
    rows, cols = np.nonzero(inside)
    picked = np.random.default_rng(0).permutation(len(rows))[:count]
    return [[int(cols[i]), int(rows[i])] for i in picked]


def test_qgis_opens_the_map_styled_on_the_imagery_grid(
    qgis: str, qgis_map: MapResult, tmp_path: Path
) -> None:
    with rasterio.open(qgis_map.files.classes) as src:
        classes = src.read(1)
        bounds, res, crs = list(src.bounds), list(src.res), src.crs.to_string()
    pixels = {value: interior(classes == value) for value in (*MAP_CLASSES, MAP_NODATA)}
    assert all(len(found) == 20 for found in pixels.values())
    queried = tmp_path / "pixels.json"
    queried.write_text(json.dumps([p for found in pixels.values() for p in found]))
    report_path = tmp_path / "report.json"
    # QGIS keeps a profile under HOME: a temporary one, not the user's.
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    classes_path = str(qgis_map.files.classes)
    subprocess.run(
        [qgis, str(SCRIPT), "map", classes_path, str(queried), str(report_path)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    report = json.loads(report_path.read_text())

    # The class style is applied: two labelled classes, not GDAL's 256 entries.
    shown = report["classes"]
    assert shown["valid"]
    assert shown["renderer"] == "paletted"
    assert shown["palette"] == [
        [value, label, colour.lower(), 255]
        for value, (label, colour) in sorted(MAP_CLASSES.items())
    ]
    # The probability style: a colour ramp over 0-1, not a grey stretch.
    assert report["probability"]["renderer"] == "singlebandpseudocolor"
    assert report["probability"]["range"] == [0.0, 1.0]
    assert len(report["probability"]["ramp"]) == 11
    # Both rasters land where the imagery is.
    for layer in ("classes", "probability"):
        assert report[layer]["crs"] == crs
        assert report[layer]["extent"] == pytest.approx(bounds)
        assert report[layer]["pixel_size"] == res
        assert report[layer]["size"] == [SCENE, SCENE]
    # Drawn: each class in its colour, nodata transparent (the background).
    colours = iter(report["rendered"])
    for value in (*MAP_CLASSES, MAP_NODATA):
        drawn = [next(colours) for _ in range(20)]
        want = BACKGROUND if value == MAP_NODATA else MAP_CLASSES[value][1].lower()
        assert drawn == [want] * 20, value
    # The polygons open with their stored style: outlines only, in the layer's CRS.
    polygons = report["polygons"]
    assert polygons["valid"]
    assert polygons["features"] == qgis_map.summary["irrigated_regions"] > 0
    assert polygons["crs"] == crs
    assert polygons["renderer"] == "singleSymbol"
    assert polygons["symbol_layer"] == "SimpleFill"
    assert polygons["fill"] == "no"
    assert polygons["outline"] == POLYGON_OUTLINE


def test_qgis_draws_search_hits_outlined_and_labelled_by_rank(
    qgis: str, tmp_path: Path
) -> None:
    """The style search stores with its hits, as QGIS reads it back."""
    hits = gpd.GeoDataFrame(
        {"rank": [1, 2, 3], "similarity": [0.9, 0.8, 0.7]},
        geometry=[shapely.box(x, 0, x + 480, 480) for x in (0, 1000, 2000)],
        crs="EPSG:32610",
    )
    path = tmp_path / "hits.gpkg"
    hits.to_file(path, layer="hits", driver="GPKG")
    style = polygon_style(HIT_OUTLINE, HIT_OUTLINE_MM, label_field="rank")
    store_default_style(path, "hits", "search hits", style)
    report_path = tmp_path / "report.json"
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    subprocess.run(
        [qgis, str(SCRIPT), "vector", str(path), "hits", str(report_path)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    shown = json.loads(report_path.read_text())
    assert shown["valid"]
    assert shown["features"] == 3
    assert (shown["renderer"], shown["fill"]) == ("singleSymbol", "no")
    assert shown["outline"] == HIT_OUTLINE
    assert shown["labels"]
    assert shown["label_field"] == "rank"
    assert shown["label_halo"]


def test_qgis_fills_evaluated_fields_by_outcome(qgis: str, tmp_path: Path) -> None:
    """The fields evaluate --fields writes open in QGIS filled by outcome."""
    # One field of each outcome: P TP, I TN, G FN, I FP (rows 0-3, 10 m pixels).
    fields = [(code, (0, 5 * i, 4, 5 * i + 4)) for i, code in enumerate("PIGI")]
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    classes = np.zeros((20, 20), dtype=np.uint8)
    classes[0:4, 0:4] = 1
    classes[0:4, 15:19] = 1
    map_path = write_map(tmp_path / "map.tif", classes)
    out = tmp_path / "fields.gpkg"
    evaluate_map(map_path, labels, fields=out)
    report_path = tmp_path / "report.json"
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    subprocess.run(
        [qgis, str(SCRIPT), "vector", str(out), FIELDS_LAYER, str(report_path)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    shown = json.loads(report_path.read_text())
    assert shown["valid"]
    assert shown["features"] == 4
    assert shown["crs"] == "EPSG:32610"
    assert shown["renderer"] == "categorizedSymbol"
    assert shown["attribute"] == "outcome"
    assert shown["categories"] == [
        [value, label, "SimpleFill", "solid", colour.lower()]
        for value, (label, colour) in OUTCOME_LEGEND.items()
    ]
    # Every feature falls in a category: each is drawn, in its colour.
    assert shown["values"] == sorted(OUTCOME_LEGEND)


def test_qgis_fills_field_stats_by_status(qgis: str, tmp_path: Path) -> None:
    """The fields field-stats writes open in QGIS in their own CRS, by status."""
    mapped = write_map(tmp_path / "map.tif", base_map())
    fields = write_fields(tmp_path / "parcels.gpkg")
    out = tmp_path / "stats.gpkg"
    field_stats(mapped, fields, out)
    report_path = tmp_path / "report.json"
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    subprocess.run(
        [qgis, str(SCRIPT), "vector", str(out), FIELD_STATS_LAYER, str(report_path)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    shown = json.loads(report_path.read_text())
    assert shown["valid"]
    assert shown["features"] == 6
    assert shown["crs"] == "EPSG:4269"
    assert shown["renderer"] == "categorizedSymbol"
    assert shown["attribute"] == "status"
    # Filled (solid or hatched) in its colour, or not filled (QGIS: black, clear).
    assert shown["categories"] == [
        [
            value,
            label,
            "SimpleFill",
            fill.get("pattern", "solid") if fill["colour"] else "no",
            (fill["colour"] or "#000000").lower(),
        ]
        for value, (label, fill) in STATUS_LEGEND.items()
    ]
    # Every field is drawn, in its status's colour (A to G as test_field_stats).
    assert shown["values"] == sorted(
        [
            "irrigated",
            "not irrigated",
            "not irrigated",
            "no data",
            "partly mapped",
            "off map",
        ]
    )
