"""The colours of every written style stay apart for a deuteranope and in greyscale.

A deuteranope (no working green cones, about 1 man in 17 has some red-green
deficiency) sees a colour as the Machado et al. (2009) matrix of severity 1
turns it; a board packet printed in black and white keeps only luminance.
Each pair of filled categories of a style must differ in both: by a CIE76
colour difference of :data:`MIN_DELTA_E` after the simulation, and by a WCAG
luminance contrast of :data:`MIN_CONTRAST`.
"""

import importlib
import itertools
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import pytest
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from test_embed_search import (  # noqa: F401 (index, root, simclr: fixtures)
    ORIGINAL,
    index,
    lonlat_of,
    root,
    simclr,
)
from test_evaluate import base_map, write_labels, write_map
from test_field_stats import write_fields
from test_qgis import qgis_python

from torchgeo_simclr.constants import IRRIGATED, MAP_CLASSES, NOT_IRRIGATED
from torchgeo_simclr.embeddings import EmbedResult, search
from torchgeo_simclr.embeddings.projection import (
    FIGURE_DPI,
    UNLABELLED,
    _draw_dates,
    _draw_group,
    _draw_labels,
    _point_size,
)
from torchgeo_simclr.evaluate import FIELDS_LAYER, evaluate_map
from torchgeo_simclr.field_stats import FIELD_STATS_LAYER, field_stats
from torchgeo_simclr.geopackage import store_default_style
from torchgeo_simclr.inference import styles
from torchgeo_simclr.inference.styles import HIT_OUTLINE, categorized_polygon_style

#: Least CIE76 colour difference between two categories seen by a deuteranope
#: (about 2.3 is just noticeable; 20 tells two small fields apart at a glance).
MIN_DELTA_E = 20.0

#: Least WCAG luminance contrast between two categories (greyscale print).
MIN_CONTRAST = 1.5

#: Machado, Oliveira and Fernandes (2009), deuteranopia, severity 1, on
#: linear RGB.
DEUTERANOPIA = np.array(
    [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ]
)

#: The map's two classes, which search hits are drawn over.
TAN, BLUE = MAP_CLASSES[NOT_IRRIGATED][1], MAP_CLASSES[IRRIGATED][1]


def linear(rgb: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """sRGB (0-1) to linear RGB."""
    c = np.asarray(rgb, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def deuteranope(colour: str) -> npt.NDArray[np.float64]:
    """A colour as a deuteranope sees it, linear RGB clipped to 0-1."""
    return np.clip(DEUTERANOPIA @ linear(to_rgb(colour)), 0, 1)


def lab(linear_rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Linear RGB (D65) to CIE L*a*b*."""
    xyz = (
        np.array(
            [
                [0.4124, 0.3576, 0.1805],
                [0.2126, 0.7152, 0.0722],
                [0.0193, 0.1192, 0.9505],
            ]
        )
        @ linear_rgb
        / np.array([0.95047, 1.0, 1.08883])
    )
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def deutan_delta_e(a: str, b: str) -> float:
    """CIE76 colour difference of two colours as a deuteranope sees them."""
    return float(np.linalg.norm(lab(deuteranope(a)) - lab(deuteranope(b))))


def luminance(colour: str) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    return float(np.dot([0.2126, 0.7152, 0.0722], linear(to_rgb(colour))))


def contrast(a: str, b: str) -> float:
    """WCAG luminance contrast ratio, 1 (same grey) to 21 (black on white)."""
    dark, light = sorted([luminance(a), luminance(b)])
    return (light + 0.05) / (dark + 0.05)


def test_the_measures_agree_with_the_review() -> None:
    # The figures the colour-blind reviewer measured on the old styles.
    assert deutan_delta_e("#ff7f00", "#e31a1c") == pytest.approx(22.9, abs=0.5)
    assert contrast("#e31a1c", "#1f78b4") == pytest.approx(1.01, abs=0.01)
    assert contrast(TAN, BLUE) == pytest.approx(2.87, abs=0.02)
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)


def stored_style(path: Path) -> ET.Element:
    """The default QML stored in a GeoPackage, parsed."""
    styles = pyogrio.read_dataframe(path, layer="layer_styles")
    qml = styles["styleQML"].iloc[0]
    return ET.fromstring(qml.split("\n", 1)[1])  # after the doctype line


def rgba(text: str) -> tuple[str, int]:
    """QGIS's ``r,g,b,a`` as ``(#rrggbb, alpha)``."""
    r, g, b, a = (int(part) for part in text.split(","))
    return to_hex((r / 255, g / 255, b / 255)), a


def category_layers(style: ET.Element) -> dict[str, list[dict[str, str]]]:
    """The properties of each category's symbol layers, by category value."""
    renderer = style.find("renderer-v2")
    assert renderer is not None
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    return {
        str(category.get("value")): [
            {str(p.get("k")): str(p.get("v")) for p in layer.findall("prop")}
            for layer in symbols[category.get("symbol")].findall("layer")
        ]
        for category in renderer.findall("categories/category")
    }


def check_apart(fills: dict[str, str]) -> None:
    """Every pair of *fills* (category: colour) apart for deuteranopes and in grey."""
    for (a, colour_a), (b, colour_b) in itertools.combinations(fills.items(), 2):
        difference = deutan_delta_e(colour_a, colour_b)
        ratio = contrast(colour_a, colour_b)
        assert difference >= MIN_DELTA_E, (a, b, colour_a, colour_b, difference)
        assert ratio >= MIN_CONTRAST, (a, b, colour_a, colour_b, ratio)


def test_field_outcomes_are_apart_for_deuteranopes_and_in_greyscale(
    tmp_path: Path,
) -> None:
    # One field of each outcome: P TP, I TN, G FN, I FP (as test_qgis).
    fields = [(code, (0, 5 * i, 4, 5 * i + 4)) for i, code in enumerate("PIGI")]
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    classes = np.zeros((20, 20), dtype=np.uint8)
    classes[0:4, 0:4] = 1
    classes[0:4, 15:19] = 1
    out = tmp_path / "fields.gpkg"
    evaluate_map(write_map(tmp_path / "map.tif", classes), labels, fields=out)
    layers = category_layers(stored_style(out))
    assert len(layers) == 4
    fills = {}
    for value, (layer,) in layers.items():
        assert layer["style"] == "solid"
        fills[value], alpha = rgba(layer["color"])
        assert alpha == 255
    # Before: missed orange and false red 23 apart for a deuteranope, and the
    # false red the same grey as the irrigated blue (contrast 1.01).
    check_apart(fills)
    assert fills["irrigated, mapped irrigated"] == BLUE
    assert fills["not irrigated, mapped not irrigated"] == TAN
    assert pyogrio.list_layers(out)[0][0] == FIELDS_LAYER


def test_field_stats_off_map_fields_cover_nothing_and_every_status_looks_its_own(
    tmp_path: Path,
) -> None:
    out = tmp_path / "stats.gpkg"
    mapped = write_map(tmp_path / "map.tif", base_map())
    field_stats(mapped, write_fields(tmp_path / "parcels.gpkg"), out)
    assert pyogrio.list_layers(out)[0][0] == FIELD_STATS_LAYER
    layers = category_layers(stored_style(out))
    # Off the map and too small: no fill (a basemap shows through), a thin
    # grey outline. Before: opaque white and near-white fills.
    for status in ("off map", "too small"):
        (layer,) = layers[status]
        assert layer["style"] == "no"
        assert rgba(layer["color"])[1] == 0
        outline, alpha = rgba(layer["outline_color"])
        red, green, blue = to_rgb(outline)
        assert red == green == blue, outline  # grey
        assert 0.2 < red < 0.8, outline  # neither black nor white
        assert alpha == 255
        assert float(layer["outline_width"]) <= 0.3
    # No data: a hatch, which lets what is under it show between its lines.
    (no_data,) = layers["no data"]
    assert no_data["style"] not in ("solid", "no")
    # No two statuses drawn alike.
    looks = {
        tuple(layer[k] for k in ("style", "color", "outline_color", "outline_style"))
        for (layer,) in layers.values()
    }
    assert len(looks) == len(layers) == 6
    # The solid fills apart for deuteranopes and in greyscale.
    check_apart(
        {
            value: rgba(layer["color"])[0]
            for value, (layer,) in layers.items()
            if layer["style"] == "solid"
        }
    )


def test_hit_outline_stands_out_on_both_map_classes_and_on_white() -> None:
    # Before: orange, 1.53:1 on the not-irrigated tan (mustard on tan for a
    # deuteranope) and 1.88:1 on the irrigated blue.
    for background in (TAN, BLUE, "#ffffff"):
        assert contrast(HIT_OUTLINE, background) >= 4.0, background


def test_search_hits_are_outlined_on_a_halo_and_tiles_give_lon_lat(
    index: EmbedResult,  # noqa: F811 (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search_module = importlib.import_module("torchgeo_simclr.embeddings.search")
    drawn: dict[str, Any] = {}
    real_sheet = search_module.contact_sheet

    def spy(tiles: Any, titles: Any, out: Path, **kwargs: Any) -> Path:
        drawn["titles"], drawn["heading"] = list(titles), kwargs.get("heading")
        return real_sheet(tiles, titles, out, **kwargs)

    monkeypatch.setattr(search_module, "contact_sheet", spy)
    result = search(index.path, tmp_path / "hits.gpkg", lonlat=lonlat_of(*ORIGINAL))
    # Each hit titled with rank, similarity and the lon/lat of its centre.
    hits = result.hits
    titles = drawn["titles"][-len(hits) :]
    for title, (_, hit) in zip(titles, hits.iterrows(), strict=True):
        assert title.splitlines() == [
            f"#{hit['rank']}  {hit['similarity']:.3f}",
            f"{hit['lon']:.4f}, {hit['lat']:.4f}",
        ]
    lon, lat = lonlat_of(*ORIGINAL)
    assert drawn["titles"][0] == f"query\n{lon:.4f}, {lat:.4f}"
    assert "cosine similarity" in drawn["heading"]
    assert "lon, lat" in drawn["heading"]
    # The outline: black over a wider white halo, one of which stands out on
    # anything (the halo is the symbol's first layer: QGIS draws it under).
    halo, line = (
        {str(p.get("k")): str(p.get("v")) for p in layer.findall("prop")}
        for layer in stored_style(result.out).findall(
            "renderer-v2/symbols/symbol/layer"
        )
    )
    assert (halo["style"], line["style"]) == ("no", "no")
    assert rgba(line["outline_color"]) == (HIT_OUTLINE, 255)
    assert rgba(halo["outline_color"]) == ("#ffffff", 255)
    assert float(halo["outline_width"]) > float(line["outline_width"])
    for background in (TAN, BLUE, "#000000", "#ffffff", "#2d4a1e"):
        best = max(contrast(HIT_OUTLINE, background), contrast("#ffffff", background))
        assert best >= 4.0, background


def rendered_dot(colour: str, size: float) -> str:
    """The mean colour of dots of *colour* and *size* (pt²) as the map draws them.

    A 10 x 10 grid of dots is rendered at the map's DPI on white; the mean is
    over every pixel with ink on it, the dots' edges and anti-aliased rims
    included, which is what the eye blends a dot of a few pixels into.
    """
    figure = Figure(figsize=(2, 2), dpi=FIGURE_DPI)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    _draw_group(ax, grid, size, colour, "dots")
    ax.set_xlim(-1, 10)
    ax.set_ylim(-1, 10)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].reshape(-1, 3)
    ink = pixels[(pixels < 250).any(axis=1)]
    assert len(ink) > 100
    return to_hex(ink.mean(axis=0) / 255)


@pytest.mark.parametrize(
    "points",
    [2000, 400, 50],
    ids=["2000 points (2 pt²)", "400 points (10 pt²)", "50 points (40 pt²)"],
)
def test_embedding_map_tan_and_grey_dots_stay_apart_at_every_size(
    points: int,
) -> None:
    # Before: a 0.3 pt dark edge on every dot covered most of a 2 pt² dot,
    # and the not-irrigated tan looked the unlabelled grey (5.9 apart for a
    # deuteranope, 1.09:1 in print, against 22.5 and 1.39 without it).
    size = _point_size(points)
    tan, grey = rendered_dot(TAN, size), rendered_dot(UNLABELLED[1], size)
    assert deutan_delta_e(tan, grey) >= MIN_DELTA_E, (size, tan, grey)
    assert contrast(tan, grey) >= 1.3, (size, tan, grey)


def test_embedding_map_large_dots_have_a_dark_edge_and_small_ones_none() -> None:
    # The tan is faint on white (1.7:1): large dots carry a dark edge.
    figure = Figure()
    ax = figure.add_subplot()
    labels = np.array([0, 0, 1, 1, 255])
    _draw_labels(ax, np.arange(10.0).reshape(5, 2), labels)
    dates = np.array(["2023-07-15", "2023-08-01", "NaT"], dtype="datetime64[D]")
    _draw_dates(figure, ax, np.arange(6.0).reshape(3, 2), dates)
    assert len(ax.collections) == 5
    legend = ax.get_legend()
    assert legend is not None
    for points in [*ax.collections, *legend.legend_handles]:
        assert isinstance(points, Collection)
        (edge,) = points.get_edgecolor()
        assert luminance(to_hex(edge)) < 0.1  # dark
        assert points.get_linewidth()[0] > 0
        # A tan dot's edge stands out on the white page.
        assert contrast(to_hex(edge), "#ffffff") >= 4.5
    # Small dots (2000 points, 2 pt²) have none: it would cover the dot.
    figure = Figure()
    ax = figure.add_subplot()
    many = np.arange(4000.0).reshape(2000, 2)
    _draw_labels(ax, many, np.tile([0, 1, 255, 0], 500))
    _draw_dates(figure, ax, many, np.full(2000, "2023-07-15", dtype="datetime64[D]"))
    assert len(ax.collections) == 4
    for points in ax.collections:
        assert points.get_linewidth()[0] == 0
    # The legend's dots are large, so they keep the edge.
    legend = ax.get_legend()
    assert legend is not None
    for handle in legend.legend_handles:
        assert isinstance(handle, Collection)
        assert handle.get_linewidth()[0] > 0


def test_fill_refuses_a_pattern_qgis_does_not_know() -> None:
    with pytest.raises(ValueError, match="pattern must be one of"):
        styles.Fill("#000000", pattern="zigzag")
    with pytest.raises(ValueError, match="outline_style must be one of"):
        styles.Fill(None, outline_style="wavy")


#: Run by QGIS's Python: each symbol layer of a GeoPackage layer's default style.
QGIS_SCRIPT = """
import json, os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
def layers(symbol):
    return [
        [
            symbol.symbolLayer(i).properties()["style"],
            symbol.symbolLayer(i).color().name(),
            symbol.symbolLayer(i).color().alpha(),
            symbol.symbolLayer(i).strokeColor().name(),
            symbol.symbolLayer(i).properties()["outline_style"],
        ]
        for i in range(symbol.symbolLayerCount())
    ]
def shown():
    layer = QgsVectorLayer(f"{sys.argv[1]}|layername={sys.argv[2]}", "l", "ogr")
    renderer = layer.renderer()
    # Each category owns its symbol: keep the categories while reading them.
    categories = (
        renderer.categories() if renderer.type() == "categorizedSymbol" else []
    )
    symbols = {str(c.value()): layers(c.symbol()) for c in categories}
    if not categories:
        symbols[""] = layers(renderer.symbol())
    return {"valid": layer.isValid(), "symbols": symbols}
with open(sys.argv[3], "w") as out:
    json.dump(shown(), out)
app.exitQgis()
"""


def qgis_reads(path: Path, layer: str, tmp_path: Path) -> dict[str, Any]:
    """What QGIS makes of the default style of *layer* in *path*."""
    python = qgis_python()
    if python is None:
        pytest.skip("QGIS's Python bindings were not found (apt install python3-qgis)")
    report = tmp_path / f"{layer}.json"
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    subprocess.run(
        [python, "-c", QGIS_SCRIPT, str(path), layer, str(report)],
        check=True,
        env={**os.environ, **home},
        timeout=300,
    )
    return json.loads(report.read_text())


def test_qgis_draws_field_stats_hatched_and_unfilled(tmp_path: Path) -> None:
    out = tmp_path / "stats.gpkg"
    mapped = write_map(tmp_path / "map.tif", base_map())
    field_stats(mapped, write_fields(tmp_path / "parcels.gpkg"), out)
    shown = qgis_reads(out, FIELD_STATS_LAYER, tmp_path)
    assert shown["valid"]
    symbols = shown["symbols"]
    assert symbols["irrigated"] == [["solid", BLUE, 255, "#232323", "solid"]]
    assert symbols["no data"][0][0] == "b_diagonal"
    assert symbols["off map"] == [["no", "#000000", 0, "#969696", "solid"]]
    assert symbols["too small"][0][0] == "no"
    assert symbols["too small"][0][4] == "dash"


def test_qgis_draws_a_categorized_and_a_haloed_style(tmp_path: Path) -> None:
    path = tmp_path / "shapes.gpkg"
    frame = gpd.GeoDataFrame(
        {"rank": [1, 2], "kind": ["a", "b"]},
        geometry=[shapely.box(0, 0, 480, 480), shapely.box(1000, 0, 1480, 480)],
        crs="EPSG:32610",
    )
    frame.to_file(path, layer="hits", driver="GPKG")
    store_default_style(path, "hits", "search hits", styles.hit_style())
    shown = qgis_reads(path, "hits", tmp_path)
    assert shown["valid"]
    assert [layer[3] for layer in shown["symbols"][""]] == ["#ffffff", HIT_OUTLINE]
    frame.to_file(path, layer="kinds", driver="GPKG")
    style = categorized_polygon_style(
        "kind", [("a", "A", "#f57900"), ("b", "B", styles.Fill("#636363", "cross"))]
    )
    store_default_style(path, "kinds", "kinds", style)
    kinds = qgis_reads(path, "kinds", tmp_path)["symbols"]
    assert kinds["a"][0][:2] == ["solid", "#f57900"]
    assert kinds["b"][0][:2] == ["cross", "#636363"]
