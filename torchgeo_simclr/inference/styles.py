"""QGIS style files (QML) for the irrigation maps.

Beside each map raster the package writes a QML file with the same stem
(``map.tif`` -> ``map.qml``); QGIS applies it automatically when the raster is
opened. :func:`class_style` styles the class map (a *paletted* renderer, one
colour per class), :func:`probability_style` the probability map (a
*singlebandpseudocolor* renderer, an interpolated colour ramp), and
:func:`natural_colour_style` a multi-band Sentinel-2 GeoTIFF (the scenes of
``sample-data`` and ``download``) in natural colour (a *multibandcolor*
renderer: B04, B03, B02 as red, green, blue, stretched alike as the quick look
draws them).
:func:`polygon_style` styles the irrigated regions and search hits (outlines
only, so the map shows through; hits labelled by rank, :func:`hit_style`), and
:func:`categorized_polygon_style` polygons drawn by the value of a field
(the fields that ``evaluate --fields`` writes, by outcome; each category a
:class:`Fill`: solid, hatched or no fill);
:func:`~torchgeo_simclr.geopackage.write_geopackage` stores it inside their
GeoPackage, where QGIS looks first for a vector layer's default style. A
``map.qml`` beside ``map.gpkg`` would not do: that name is the class map's style.

The documents follow the structure QGIS 3 writes itself: the same element and
attribute names as ``QgsPalettedRasterRenderer::writeXml``,
``QgsSingleBandPseudoColorRenderer::writeXml``,
``QgsMultiBandColorRenderer::writeXml``, ``QgsContrastEnhancement::writeXml``,
``QgsColorRampShader::writeXml``, ``QgsSingleSymbolRenderer::save`` and
``QgsCategorizedSymbolRenderer::save``. Nodata
pixels (255 in the class map, -1 in the probability map, 0 in the Sentinel-2
scenes) are declared as nodata
in the GeoTIFFs, and QGIS draws nodata transparent (``nodataColor=""``), so the
styles give them no entry.
"""

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import matplotlib
from matplotlib.colors import to_hex, to_rgba

from ..constants import MAP_CLASSES, REFLECTANCE_SCALE
from ..datasets.display import NATURAL_COLOUR_MAX

#: QGIS version written in the ``version`` attribute of the root element.
QGIS_VERSION: Final[str] = "3.28.0"

#: Document type line QGIS writes at the top of every QML file.
QML_DOCTYPE: Final[str] = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"

#: Matplotlib colormap of the probability map: pale yellow for "surely not
#: irrigated", through green, to dark blue for "surely irrigated".
PROBABILITY_COLORMAP: Final[str] = "YlGnBu"

#: Number of colour stops of the probability ramp (0.0, 0.1, ..., 1.0 by default).
PROBABILITY_STOPS: Final[int] = 11

#: Sentinel-2 bands drawn as red, green and blue in natural colour.
NATURAL_COLOUR_BANDS: Final[tuple[str, str, str]] = ("B04", "B03", "B02")

#: Stored value (reflectance x10000) drawn at full brightness in natural
#: colour, in every band alike: the quick look's
#: (:func:`~torchgeo_simclr.datasets.display.natural_colour`).
NATURAL_COLOUR_FULL: Final[float] = NATURAL_COLOUR_MAX * REFLECTANCE_SCALE

#: Outline of the irrigated regions: dark blue, darker than the irrigated class.
POLYGON_OUTLINE: Final[str] = "#08306b"

#: Width of that outline, millimetres on screen (QGIS's own default line width).
POLYGON_OUTLINE_MM: Final[float] = 0.26

#: Outline of search hits: black, drawn over a white halo (:data:`HIT_HALO`),
#: so one of the two stands out on any background: black has a contrast of
#: 4.4:1 on the irrigated blue and 12.6:1 on the not-irrigated tan, white
#: 4.8:1 on the blue and on dark imagery (vegetation, water) far more.
HIT_OUTLINE: Final[str] = "#000000"

#: Width of that outline, millimetres on screen.
HIT_OUTLINE_MM: Final[float] = 0.6

#: Halo under the outline of search hits: white.
HIT_HALO: Final[str] = "#ffffff"

#: Width of that halo, millimetres on screen: 0.3 mm shows each side of the outline.
HIT_HALO_MM: Final[float] = 1.2

#: Outline of categorized polygons (e.g. evaluated fields): QGIS's own dark grey,
#: visible on every fill colour.
CATEGORY_OUTLINE: Final[str] = "#232323"

#: Fill patterns a :class:`Fill` may have: QGIS's brush styles
#: (``QgsSymbolLayerUtils::encodeBrushStyle``). A hatch draws lines of the
#: fill colour and leaves what is under the polygon visible between them.
FILL_PATTERNS: Final[tuple[str, ...]] = (
    "solid",
    "horizontal",
    "vertical",
    "cross",
    "b_diagonal",
    "f_diagonal",
    "diagonal_x",
)

#: Outline line styles a :class:`Fill` may have (QGIS's pen styles).
OUTLINE_STYLES: Final[tuple[str, ...]] = ("solid", "dash", "dot", "dash dot")


@dataclass(frozen=True)
class Fill:
    """How the polygons of one category are drawn: a fill and an outline.

    Raises:
        ValueError: if the pattern or outline style is not one QGIS knows, a
            pattern is given without a colour, ``outline_mm`` is not above 0,
            or a colour is not a colour.
    """

    #: Fill colour, anything matplotlib understands (for a hatch, the colour
    #: of its lines), or None for no fill: what is under the polygon shows.
    colour: str | None
    #: Fill pattern, one of :data:`FILL_PATTERNS` (ignored without a colour).
    pattern: str = "solid"
    #: Outline colour.
    outline: str = CATEGORY_OUTLINE
    #: Outline width, millimetres on screen.
    outline_mm: float = POLYGON_OUTLINE_MM
    #: Outline line style, one of :data:`OUTLINE_STYLES`.
    outline_style: str = "solid"

    def __post_init__(self) -> None:
        if self.pattern not in FILL_PATTERNS:
            raise ValueError(
                f"pattern must be one of {', '.join(FILL_PATTERNS)}, got "
                f"{self.pattern!r}; pass e.g. 'solid' or 'b_diagonal'."
            )
        if self.outline_style not in OUTLINE_STYLES:
            raise ValueError(
                f"outline_style must be one of {', '.join(OUTLINE_STYLES)}, got "
                f"{self.outline_style!r}."
            )
        if not self.outline_mm > 0:
            raise ValueError(
                f"outline_mm must be above 0 millimetres, got {self.outline_mm}."
            )
        for colour in (self.colour, self.outline):
            if colour is not None:
                to_rgba(colour)  # raises ValueError for a non-colour


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


def natural_colour_style(bands: Sequence[str]) -> str:
    """QML of a multi-band colour renderer showing a Sentinel-2 scene in natural colour.

    B04, B03 and B02 are drawn as red, green and blue, each stretched from 0
    (black) to :data:`NATURAL_COLOUR_FULL` (reflectance x10000 drawn at full
    brightness), all three alike, as the quick look draws them; brighter
    pixels are drawn at full brightness. Pixels that are nodata (0 in the
    scenes) are drawn transparent.

    Args:
        bands: the file's band names, in band order (e.g. ``S2_BANDS``).

    Returns:
        The QML document.

    Raises:
        ValueError: if *bands* lacks B04, B03 or B02.
    """
    missing = [band for band in NATURAL_COLOUR_BANDS if band not in bands]
    if missing:
        raise ValueError(
            f"bands lack {', '.join(missing)}, got {list(bands)}; natural colour "
            f"needs {', '.join(NATURAL_COLOUR_BANDS)} as red, green and blue."
        )
    red, green, blue = (list(bands).index(band) + 1 for band in NATURAL_COLOUR_BANDS)
    renderer = _renderer("multibandcolor", red)
    del renderer.attrib["band"]  # a single-band renderer's attribute
    for colour, band in (("red", red), ("green", green), ("blue", blue)):
        renderer.set(f"{colour}Band", str(band))
    for colour in ("red", "green", "blue"):
        enhancement = ET.SubElement(renderer, f"{colour}ContrastEnhancement")
        ET.SubElement(enhancement, "minValue").text = "0"
        ET.SubElement(enhancement, "maxValue").text = _number(NATURAL_COLOUR_FULL)
        ET.SubElement(enhancement, "algorithm").text = "StretchToMinimumMaximum"
    return _document(renderer)


def polygon_style(
    outline: str = POLYGON_OUTLINE,
    width_mm: float = POLYGON_OUTLINE_MM,
    label_field: str | None = None,
    halo: str | None = None,
    halo_mm: float = HIT_HALO_MM,
) -> str:
    """QML of a single-symbol renderer that draws polygons as outlines only.

    Args:
        outline: outline colour, anything matplotlib understands.
        width_mm: outline width, millimetres on screen.
        label_field: a field whose value labels each polygon at its centre
            (dark text on a white halo), or None for no labels.
        halo: colour of a wider line drawn under the outline (the symbol's
            first layer, the outline its second), or None for none.
        halo_mm: width of that halo, millimetres on screen (above
            ``width_mm``, so it shows each side of the outline).

    Returns:
        The QML document (``layerGeometryType`` 2: polygons).

    Raises:
        ValueError: if ``width_mm`` is not above 0, a halo is not wider than
            the outline, or a colour is not a colour.
    """
    if not width_mm > 0:
        raise ValueError(f"width_mm must be above 0 millimetres, got {width_mm}.")
    if halo is not None and not halo_mm > width_mm:
        raise ValueError(
            f"halo_mm must be above width_mm ({width_mm} mm) for the halo to show, "
            f"got {halo_mm}."
        )
    qgis = _root()
    renderer = _polygon_renderer(qgis, {"type": "singleSymbol"})
    # No fill: the class map shows through.
    lines = [Fill(None, outline=outline, outline_mm=width_mm)]
    if halo is not None:
        lines.insert(0, Fill(None, outline=halo, outline_mm=halo_mm))
    _fill_symbol(ET.SubElement(renderer, "symbols"), "0", lines)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    if label_field is not None:
        qgis.set("labelsEnabled", "1")
        _labels(qgis, label_field)
    return _polygon_document(qgis)


def hit_style() -> str:
    """QML of search hits: a black outline on a white halo, labelled by ``rank``.

    Returns:
        The QML document (see :func:`polygon_style`).
    """
    return polygon_style(HIT_OUTLINE, HIT_OUTLINE_MM, label_field="rank", halo=HIT_HALO)


def categorized_polygon_style(
    field: str,
    categories: Sequence[tuple[str, str, str | Fill]],
    outline: str = CATEGORY_OUTLINE,
    width_mm: float = POLYGON_OUTLINE_MM,
) -> str:
    """QML of a categorized renderer that draws polygons by the value of a field.

    Each category is drawn as its :class:`Fill` says (a colour alone: a solid
    fill of it with a thin outline), and shown in QGIS's legend under its
    label; a polygon whose value matches no category is not drawn.

    Args:
        field: the text field whose value picks the category.
        categories: ``(value, legend label, fill)`` of each category, in
            legend order; the fill a :class:`Fill` or a colour (anything
            matplotlib understands).
        outline: outline colour of the categories given as a colour alone.
        width_mm: outline width of those, millimetres on screen.

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
    for index, (value, label, fill) in enumerate(categories):
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
        if isinstance(fill, str):
            fill = Fill(fill, outline=outline, outline_mm=width_mm)
        _fill_symbol(symbols, str(index), [fill])
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


def _fill_symbol(symbols: ET.Element, name: str, fills: Sequence[Fill]) -> None:
    """Add a fill symbol named *name*: one SimpleFill layer per fill, bottom first.

    Args:
        symbols: the renderer's ``symbols`` element.
        name: the symbol's name, which categories refer to.
        fills: the symbol's layers; QGIS draws the first under the others.
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
    for fill in fills:
        layer = ET.SubElement(
            symbol,
            "layer",
            {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"},
        )
        properties = {
            "color": "0,0,0,0" if fill.colour is None else _rgba(fill.colour),
            "style": "no" if fill.colour is None else fill.pattern,
            "outline_color": _rgba(fill.outline),
            "outline_style": fill.outline_style,
            "outline_width": _number(fill.outline_mm),
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
