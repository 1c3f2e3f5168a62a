"""QGIS style files (QML) for the irrigation maps.

Beside each map raster the package writes a QML file with the same stem
(``map.tif`` -> ``map.qml``); QGIS applies it automatically when the raster is
opened. :func:`class_style` styles the class map (a *paletted* renderer, one
colour per class), :func:`probability_style` the probability map (a
*singlebandpseudocolor* renderer, an interpolated colour ramp).
:func:`polygon_style` styles the irrigated regions and search hits (outlines
only, so the map shows through; hits labelled by rank), and
:func:`categorized_polygon_style` polygons filled by the value of a field
(the fields that ``evaluate --fields`` writes, by outcome);
:func:`~torchgeo_simclr.geopackage.write_geopackage` stores it inside their
GeoPackage, where QGIS looks first for a vector layer's default style. A
``map.qml`` beside ``map.gpkg`` would not do: that name is the class map's style.

The documents follow the structure QGIS 3 writes itself: the same element and
attribute names as ``QgsPalettedRasterRenderer::writeXml``,
``QgsSingleBandPseudoColorRenderer::writeXml``,
``QgsColorRampShader::writeXml``, ``QgsSingleSymbolRenderer::save`` and
``QgsCategorizedSymbolRenderer::save``. Nodata
pixels (255 in the class map, -1 in the probability map) are declared as nodata
in the GeoTIFFs, and QGIS draws nodata transparent (``nodataColor=""``), so the
styles give them no entry.
"""

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Final

import matplotlib
from matplotlib.colors import to_hex, to_rgba

from ..constants import MAP_CLASSES

#: QGIS version written in the ``version`` attribute of the root element.
QGIS_VERSION: Final[str] = "3.28.0"

#: Document type line QGIS writes at the top of every QML file.
QML_DOCTYPE: Final[str] = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"

#: Matplotlib colormap of the probability map: pale yellow for "surely not
#: irrigated", through green, to dark blue for "surely irrigated".
PROBABILITY_COLORMAP: Final[str] = "YlGnBu"

#: Number of colour stops of the probability ramp (0.0, 0.1, ..., 1.0 by default).
PROBABILITY_STOPS: Final[int] = 11

#: Outline of the irrigated regions: dark blue, darker than the irrigated class.
POLYGON_OUTLINE: Final[str] = "#08306b"

#: Width of that outline, millimetres on screen (QGIS's own default line width).
POLYGON_OUTLINE_MM: Final[float] = 0.26

#: Outline of search hits: orange, to stand out on imagery and class maps.
HIT_OUTLINE: Final[str] = "#ff7f00"

#: Width of that outline, millimetres on screen.
HIT_OUTLINE_MM: Final[float] = 0.6

#: Outline of categorized polygons (e.g. evaluated fields): QGIS's own dark grey,
#: visible on every fill colour.
CATEGORY_OUTLINE: Final[str] = "#232323"


def _number(value: float) -> str:
    """Format a number the way QGIS prints one: shortest form, no trailing zeros."""
    return format(float(value), ".15g")


def _hex(colour: str) -> str:
    """Normalise a colour to QGIS's ``#rrggbb`` (lower case, no alpha)."""
    return to_hex(colour, keep_alpha=False)


def _rgba(colour: str) -> str:
    """A colour as QGIS's ``r,g,b,a`` string of 0-255 integers (colour ramps)."""
    return ",".join(str(round(channel * 255)) for channel in to_rgba(colour))


def _root() -> ET.Element:
    """The ``<qgis>`` root element with the attributes and flags QGIS writes."""
    qgis = ET.Element(
        "qgis",
        {
            "version": QGIS_VERSION,
            "styleCategories": "AllStyleCategories",
            "hasScaleBasedVisibilityFlag": "0",
            "minScale": "1e+08",
            "maxScale": "0",
        },
    )
    flags = ET.SubElement(qgis, "flags")
    for name, value in (
        ("Identifiable", "1"),
        ("Removable", "1"),
        ("Searchable", "1"),
        ("Private", "0"),
    ):
        ET.SubElement(flags, name).text = value
    return qgis


def _text(qgis: ET.Element) -> str:
    """A QML document as text: doctype line first, ending with a newline."""
    ET.indent(qgis, space="  ")
    return QML_DOCTYPE + "\n" + ET.tostring(qgis, encoding="unicode") + "\n"


def _properties(element: ET.Element, properties: Mapping[str, str]) -> None:
    """Give *element* string properties twice, as QGIS 3.22 writes them.

    Once as an ``<Option type="Map">`` of ``QString`` options and once as the
    older ``<prop k v>`` elements, so QGIS versions reading either find them.
    """
    options = ET.SubElement(element, "Option", {"type": "Map"})
    for key, value in properties.items():
        ET.SubElement(
            options, "Option", {"name": key, "type": "QString", "value": value}
        )
    for key, value in properties.items():
        ET.SubElement(element, "prop", {"k": key, "v": value})


def _document(renderer: ET.Element) -> str:
    """Wrap a ``rasterrenderer`` element in a complete QML document.

    Args:
        renderer: the ``<rasterrenderer>`` element.

    Returns:
        The QML text, doctype line first, ending with a newline.
    """
    qgis = _root()
    pipe = ET.SubElement(qgis, "pipe")
    provider = ET.SubElement(pipe, "provider")
    # Nearest neighbour: a class map must never be smoothed into other values.
    ET.SubElement(
        provider,
        "resampling",
        {
            "enabled": "false",
            "maxOversampling": "2",
            "zoomedInResamplingMethod": "nearestNeighbour",
            "zoomedOutResamplingMethod": "nearestNeighbour",
        },
    )
    pipe.append(renderer)
    ET.SubElement(
        pipe,
        "brightnesscontrast",
        {"brightness": "0", "contrast": "0", "gamma": "1"},
    )
    ET.SubElement(
        pipe,
        "huesaturation",
        {
            "colorizeOn": "0",
            "colorizeRed": "255",
            "colorizeGreen": "128",
            "colorizeBlue": "128",
            "colorizeStrength": "100",
            "grayscaleMode": "0",
            "saturation": "0",
            "invertColors": "0",
        },
    )
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"
    ET.SubElement(qgis, "blendMode").text = "0"
    return _text(qgis)


def _renderer(kind: str, band: int) -> ET.Element:
    """A ``<rasterrenderer>`` with the attributes and children every renderer has.

    Args:
        kind: renderer type, ``paletted`` or ``singlebandpseudocolor``.
        band: 1-based band the renderer reads.

    Returns:
        The element, with ``<rasterTransparency/>`` and ``<minMaxOrigin>``.

    Raises:
        ValueError: if ``band`` is below 1.
    """
    if band < 1:
        raise ValueError(f"band must be 1 or more (bands count from 1), got {band}.")
    renderer = ET.Element(
        "rasterrenderer",
        {
            "type": kind,
            "band": str(band),
            "opacity": "1",
            "alphaBand": "-1",
            "nodataColor": "",
        },
    )
    ET.SubElement(renderer, "rasterTransparency")
    # limits None: use the values in this file, never the raster's statistics.
    origin = ET.SubElement(renderer, "minMaxOrigin")
    for name, value in (
        ("limits", "None"),
        ("extent", "WholeRaster"),
        ("statAccuracy", "Estimated"),
        ("cumulativeCutLower", "0.02"),
        ("cumulativeCutUpper", "0.98"),
        ("stdDevFactor", "2"),
    ):
        ET.SubElement(origin, name).text = value
    return renderer


def class_style(
    classes: Mapping[int, tuple[str, str]] = MAP_CLASSES, band: int = 1
) -> str:
    """QML of a paletted renderer for a class map.

    Args:
        classes: class value -> (label, colour); the colour is anything
            matplotlib understands, usually hex ``#rrggbb``. Values without an
            entry (the nodata value 255) are drawn transparent.
        band: 1-based band holding the classes.

    Returns:
        The QML document, one ``<paletteEntry>`` per class in value order.

    Raises:
        ValueError: if ``classes`` is empty, a colour is not a colour, or
            ``band`` is below 1.
    """
    if not classes:
        raise ValueError("classes is empty; a class style needs at least one class.")
    renderer = _renderer("paletted", band)
    palette = ET.SubElement(renderer, "colorPalette")
    for value in sorted(classes):
        label, colour = classes[value]
        ET.SubElement(
            palette,
            "paletteEntry",
            {
                "value": str(int(value)),
                "color": _hex(colour),
                "alpha": "255",
                "label": label,
            },
        )
    return _document(renderer)


def probability_style(
    minimum: float = 0.0,
    maximum: float = 1.0,
    band: int = 1,
    colormap: str = PROBABILITY_COLORMAP,
    stops: int = PROBABILITY_STOPS,
) -> str:
    """QML of a pseudocolour renderer for a probability map.

    The colours are sampled from a matplotlib colormap at ``stops`` evenly
    spaced values from ``minimum`` to ``maximum`` and interpolated between
    them; each stop is labelled with its value to two decimals (``"0.50"``).

    Args:
        minimum: value drawn with the colormap's first colour.
        maximum: value drawn with the colormap's last colour.
        band: 1-based band holding the probabilities.
        colormap: name of a matplotlib colormap.
        stops: number of colour stops, 2 or more.

    Returns:
        The QML document.

    Raises:
        ValueError: if the range is empty or not finite, ``stops`` is below 2,
            the colormap is unknown, or ``band`` is below 1.
    """
    if not (math.isfinite(minimum) and math.isfinite(maximum) and minimum < maximum):
        raise ValueError(
            f"minimum must be below maximum and both finite, got {minimum} "
            f"and {maximum}."
        )
    if stops < 2:
        raise ValueError(f"stops must be 2 or more, got {stops}.")
    if colormap not in matplotlib.colormaps:
        raise ValueError(f"{colormap!r} is not a matplotlib colormap.")
    cmap = matplotlib.colormaps[colormap]
    positions = [i / (stops - 1) for i in range(stops)]
    colours = [to_hex(cmap(position), keep_alpha=False) for position in positions]

    renderer = _renderer("singlebandpseudocolor", band)
    renderer.set("classificationMin", _number(minimum))
    renderer.set("classificationMax", _number(maximum))
    shader = ET.SubElement(
        ET.SubElement(renderer, "rastershader"),
        "colorrampshader",
        {
            "colorRampType": "INTERPOLATED",
            "classificationMode": "1",  # continuous
            "clip": "0",
            "minimumValue": _number(minimum),
            "maximumValue": _number(maximum),
            "labelPrecision": "2",
        },
    )
    # The source ramp, so QGIS's "Classify" button rebuilds the same colours.
    ramp_properties = {
        "color1": _rgba(colours[0]),
        "color2": _rgba(colours[-1]),
        "direction": "ccw",
        "discrete": "0",
        "rampType": "gradient",
        "spec": "rgb",
        "stops": ":".join(
            f"{_number(position)};{_rgba(colour)}"
            for position, colour in zip(positions[1:-1], colours[1:-1], strict=True)
        ),
    }
    ramp = ET.SubElement(shader, "colorramp", {"name": "[source]", "type": "gradient"})
    _properties(ramp, ramp_properties)
    for position, colour in zip(positions, colours, strict=True):
        stop = minimum * (1 - position) + maximum * position  # exact ends
        ET.SubElement(
            shader,
            "item",
            {
                "label": f"{stop:.2f}",
                "value": _number(stop),
                "color": colour,
                "alpha": "255",
            },
        )
    return _document(renderer)


def polygon_style(
    outline: str = POLYGON_OUTLINE,
    width_mm: float = POLYGON_OUTLINE_MM,
    label_field: str | None = None,
) -> str:
    """QML of a single-symbol renderer that draws polygons as outlines only.

    Args:
        outline: outline colour, anything matplotlib understands.
        width_mm: outline width, millimetres on screen.
        label_field: a field whose value labels each polygon at its centre
            (dark text on a white halo), or None for no labels.

    Returns:
        The QML document (``layerGeometryType`` 2: polygons).

    Raises:
        ValueError: if ``width_mm`` is not above 0 or ``outline`` is not a colour.
    """
    if not width_mm > 0:
        raise ValueError(f"width_mm must be above 0 millimetres, got {width_mm}.")
    qgis = _root()
    renderer = _polygon_renderer(qgis, {"type": "singleSymbol"})
    # No fill: the class map shows through.
    _fill_symbol(ET.SubElement(renderer, "symbols"), "0", None, outline, width_mm)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    if label_field is not None:
        qgis.set("labelsEnabled", "1")
        _labels(qgis, label_field)
    return _polygon_document(qgis)


def categorized_polygon_style(
    field: str,
    categories: Sequence[tuple[str, str, str]],
    outline: str = CATEGORY_OUTLINE,
    width_mm: float = POLYGON_OUTLINE_MM,
) -> str:
    """QML of a categorized renderer that fills polygons by the value of a field.

    Each category is drawn with a solid fill of its colour and a thin outline,
    and shown in QGIS's legend under its label; a polygon whose value matches
    no category is not drawn.

    Args:
        field: the text field whose value picks the category.
        categories: ``(value, legend label, fill colour)`` of each category,
            in legend order; colours are anything matplotlib understands.
        outline: outline colour of every category.
        width_mm: outline width, millimetres on screen.

    Returns:
        The QML document (``renderer-v2`` of type ``categorizedSymbol`` on
        *field*, ``layerGeometryType`` 2: polygons).

    Raises:
        ValueError: if *field* is blank, *categories* is empty or repeats a
            value, ``width_mm`` is not above 0, or a colour is not a colour.
    """
    if not field.strip():
        raise ValueError("field is blank; pass the name of the field to style by.")
    if not categories:
        raise ValueError(
            "categories is empty; a categorized style needs at least one category."
        )
    values = [value for value, _, _ in categories]
    if len(set(values)) != len(values):
        raise ValueError(f"categories repeat a value: {values}.")
    if not width_mm > 0:
        raise ValueError(f"width_mm must be above 0 millimetres, got {width_mm}.")
    qgis = _root()
    renderer = _polygon_renderer(qgis, {"type": "categorizedSymbol", "attr": field})
    listed = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for index, (value, label, colour) in enumerate(categories):
        ET.SubElement(
            listed,
            "category",
            {
                "value": value,
                "symbol": str(index),
                "label": label,
                "render": "true",
                "type": "string",
            },
        )
        _fill_symbol(symbols, str(index), colour, outline, width_mm)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    return _polygon_document(qgis)


def _polygon_renderer(qgis: ET.Element, kind: Mapping[str, str]) -> ET.Element:
    """Add a vector ``renderer-v2`` of *kind* (its ``type`` and more) to a QML root."""
    common = {
        "symbollevels": "0",
        "enableorderby": "0",
        "forceraster": "0",
        "referencescale": "-1",
    }
    return ET.SubElement(qgis, "renderer-v2", {**kind, **common})


def _fill_symbol(
    symbols: ET.Element,
    name: str,
    fill: str | None,
    outline: str,
    width_mm: float,
) -> None:
    """Add a SimpleFill symbol named *name*: *fill* (None: none) and an outline.

    Args:
        symbols: the renderer's ``symbols`` element.
        name: the symbol's name, which categories refer to.
        fill: fill colour, anything matplotlib understands, or None for none.
        outline: outline colour.
        width_mm: outline width, millimetres on screen.
    """
    symbol = ET.SubElement(
        symbols,
        "symbol",
        {
            "type": "fill",
            "name": name,
            "alpha": "1",
            "clip_to_extent": "1",
            "force_rhr": "0",
        },
    )
    layer = ET.SubElement(
        symbol,
        "layer",
        {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"},
    )
    properties = {
        "color": "0,0,0,0" if fill is None else _rgba(fill),
        "style": "no" if fill is None else "solid",
        "outline_color": _rgba(outline),
        "outline_style": "solid",
        "outline_width": _number(width_mm),
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
    }
    _properties(layer, properties)


def _polygon_document(qgis: ET.Element) -> str:
    """Close a polygon layer's QML root and return it as text."""
    ET.SubElement(qgis, "blendMode").text = "0"
    ET.SubElement(qgis, "featureBlendMode").text = "0"
    ET.SubElement(qgis, "layerGeometryType").text = "2"
    return _text(qgis)


def _labels(qgis: ET.Element, field: str) -> None:
    """Add simple labels of *field*, over each polygon's centre, to a QML root.

    Attributes left out take QGIS's defaults (``QgsPalLayerSettings::readXml``).
    """
    settings = ET.SubElement(
        ET.SubElement(qgis, "labeling", {"type": "simple"}), "settings"
    )
    style = ET.SubElement(
        settings,
        "text-style",
        {
            "fieldName": field,
            "isExpression": "0",
            "fontSize": "9",
            "fontSizeUnit": "Point",
            "fontWeight": "75",  # bold
            "textColor": "0,0,0,255",
            "textOpacity": "1",
        },
    )
    ET.SubElement(
        style,  # the halo belongs to the text style, as QGIS writes it
        "text-buffer",
        {
            "bufferDraw": "1",
            "bufferSize": "0.8",
            "bufferSizeUnits": "MM",
            "bufferColor": "255,255,255,255",
            "bufferOpacity": "1",
        },
    )
    ET.SubElement(settings, "placement", {"placement": "1"})  # over the centroid
    ET.SubElement(settings, "rendering", {"obstacle": "0", "displayAll": "1"})
