import itertools
import xml.etree.ElementTree as ET

import pytest

from torchgeo_simclr.constants import MAP_CLASSES, MAP_NODATA
from torchgeo_simclr.inference.styles import (
    POLYGON_OUTLINE,
    QML_DOCTYPE,
    class_style,
    polygon_style,
    probability_style,
)


def parse(text: str) -> ET.Element:
    """Parse a QML document and check the frame QGIS expects around the renderer."""
    assert text.startswith(QML_DOCTYPE + "\n")
    root = ET.fromstring(text)
    assert root.tag == "qgis"
    assert root.get("styleCategories") == "AllStyleCategories"
    assert root.get("version", "").startswith("3.")
    pipe = root.find("pipe")
    assert pipe is not None
    tags = [child.tag for child in pipe]
    assert tags.index("rasterrenderer") < tags.index("brightnesscontrast")
    assert {"huesaturation", "rasterresampler"} <= set(tags)
    assert root.findtext("blendMode") == "0"
    return root


def renderer(root: ET.Element) -> ET.Element:
    element = root.find("pipe/rasterrenderer")
    assert element is not None
    return element


def test_class_style_has_exactly_the_map_classes() -> None:
    root = parse(class_style())
    paletted = renderer(root)
    assert paletted.get("type") == "paletted"
    assert paletted.get("band") == "1"
    entries = paletted.findall("colorPalette/paletteEntry")
    found = {
        int(entry.get("value", "")): (entry.get("label"), entry.get("color"))
        for entry in entries
    }
    expected = {
        value: (label, colour.lower()) for value, (label, colour) in MAP_CLASSES.items()
    }
    assert found == expected
    assert len(entries) == len(MAP_CLASSES)
    # Nodata has no colour, so QGIS leaves it transparent.
    assert MAP_NODATA not in found
    assert paletted.get("nodataColor") == ""
    assert all(entry.get("alpha") == "255" for entry in entries)
    # A class map must not be smoothed into in-between values.
    resampling = root.find("pipe/provider/resampling")
    assert resampling is not None
    assert resampling.get("zoomedInResamplingMethod") == "nearestNeighbour"


def test_class_style_escapes_labels() -> None:
    label = 'Fields & orchards <drip> "new"'
    text = class_style({3: (label, "#00FF00")}, band=2)
    assert "& " not in text  # escaped, not raw
    entry = renderer(parse(text)).find("colorPalette/paletteEntry")
    assert entry is not None
    assert entry.get("label") == label
    assert entry.get("color") == "#00ff00"
    assert entry.get("value") == "3"
    assert renderer(parse(text)).get("band") == "2"


def test_class_style_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        class_style({})
    with pytest.raises(ValueError, match="band"):
        class_style(band=0)


def test_probability_ramp_covers_zero_to_one() -> None:
    pseudo = renderer(parse(probability_style()))
    assert pseudo.get("type") == "singlebandpseudocolor"
    assert float(pseudo.get("classificationMin", "nan")) == 0.0
    assert float(pseudo.get("classificationMax", "nan")) == 1.0
    shader = pseudo.find("rastershader/colorrampshader")
    assert shader is not None
    assert shader.get("colorRampType") == "INTERPOLATED"
    items = shader.findall("item")
    assert len(items) >= 5
    values = [float(item.get("value", "nan")) for item in items]
    assert values[0] == 0.0
    assert values[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(values))
    labels = [item.get("label") for item in items]
    assert labels == [f"{value:.2f}" for value in values]
    assert items[-1].get("label") == "1.00"
    colours = [item.get("color", "") for item in items]
    assert all(len(colour) == 7 and colour.startswith("#") for colour in colours)
    assert len(set(colours)) == len(colours)


def test_probability_ramp_goes_from_pale_to_dark() -> None:
    items = renderer(parse(probability_style())).findall(
        "rastershader/colorrampshader/item"
    )

    def brightness(colour: str) -> int:
        return sum(int(colour[i : i + 2], 16) for i in (1, 3, 5))

    first, last = items[0].get("color", ""), items[-1].get("color", "")
    assert brightness(first) > 600  # pale: not irrigated
    assert brightness(last) < 250  # dark: irrigated


def test_probability_style_custom_range() -> None:
    pseudo = renderer(parse(probability_style(0.2, 0.8, band=3, stops=4)))
    assert pseudo.get("band") == "3"
    values = [
        float(item.get("value", "nan"))
        for item in pseudo.findall("rastershader/colorrampshader/item")
    ]
    assert values == pytest.approx([0.2, 0.4, 0.6, 0.8])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"minimum": 1.0, "maximum": 1.0}, "below"),
        ({"maximum": float("nan")}, "finite"),
        ({"stops": 1}, "stops"),
        ({"colormap": "no-such-map"}, "colormap"),
    ],
)
def test_probability_style_rejects_bad_input(
    kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        probability_style(**kwargs)  # type: ignore[arg-type]


def test_polygon_style_draws_outlines_only() -> None:
    text = polygon_style()
    assert text.startswith(QML_DOCTYPE + "\n")
    root = ET.fromstring(text)
    assert root.findtext("layerGeometryType") == "2"  # polygons
    single = root.find("renderer-v2")
    assert single is not None
    assert single.get("type") == "singleSymbol"
    symbol = single.find("symbols/symbol")
    assert symbol is not None
    assert symbol.get("type") == "fill"
    layer = symbol.find("layer")
    assert layer is not None
    assert layer.get("class") == "SimpleFill"
    props = {prop.get("k"): prop.get("v") for prop in layer.findall("prop")}
    options = {
        option.get("name"): option.get("value")
        for option in layer.findall("Option/Option")
    }
    assert props == options  # QGIS 3 reads either
    # No fill, so the class map shows through; a dark outline around it.
    assert props["style"] == "no"
    red, green, blue = (int(POLYGON_OUTLINE[i : i + 2], 16) for i in (1, 3, 5))
    assert props["outline_color"] == f"{red},{green},{blue},255"
    assert float(props["outline_width"] or "nan") > 0
    assert props["outline_width_unit"] == "MM"


def test_polygon_style_rejects_a_width_of_zero() -> None:
    with pytest.raises(ValueError, match="width_mm"):
        polygon_style(width_mm=0)
