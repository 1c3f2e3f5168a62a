"""Open an irrigation map's files in QGIS, as a user would, and report what QGIS shows.

Run by ``test_qgis.py`` with the Python that has QGIS's bindings (``python3-qgis``
on Debian), not the project's::

    python3 tests/qgis_open.py map MAP.tif PIXELS.json OUT.json [RENDER.png]
    python3 tests/qgis_open.py vector FILE.gpkg LAYER OUT.json
    python3 tests/qgis_open.py scene SCENE.tif PIXELS.json OUT.json

``map``: PIXELS.json lists ``[col, row]`` pixels of the class map. The layers are
loaded the way QGIS loads a dropped file (each with its default style: the QML
beside a raster, the style stored in a GeoPackage), the class map is rendered
at one screen pixel per map pixel on a magenta background, and OUT.json records
the renderers, the layers' CRS and extent, and the rendered colour of each
pixel. RENDER.png, if given, is the class map with the polygons drawn over it.

``vector``: OUT.json records how QGIS styles one layer of a GeoPackage (for a
categorized renderer, its field, its categories and each feature's value).

``scene``: a multi-band Sentinel-2 GeoTIFF loaded as a dropped file (with the
QML beside it); OUT.json records its renderer, the band of each colour (its
number and QGIS's name of it, which ends in the band's description) with its
contrast enhancement, and the rendered colour of each ``[col, row]`` pixel of
PIXELS.json (at one screen pixel per raster pixel, on a magenta background).
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapLayer,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage

#: Background of the rendering: any pixel QGIS leaves transparent shows it.
BACKGROUND = QColor(255, 0, 255)


def render(layers: list[QgsMapLayer], like: QgsRasterLayer) -> QImage:
    """Render *layers* over *like*'s extent at one screen pixel per raster pixel."""
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(like.crs())
    settings.setExtent(like.extent())
    settings.setOutputSize(QSize(like.width(), like.height()))
    settings.setBackgroundColor(BACKGROUND)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def raster(layer: QgsRasterLayer) -> dict[str, Any]:
    """What QGIS made of a raster layer: validity, renderer, CRS, grid."""
    extent = layer.extent()
    return {
        "valid": layer.isValid(),
        "renderer": layer.renderer().type(),
        "crs": layer.crs().authid(),
        "extent": [
            extent.xMinimum(),
            extent.yMinimum(),
            extent.xMaximum(),
            extent.yMaximum(),
        ],
        "size": [layer.width(), layer.height()],
        "pixel_size": [layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()],
    }


def vector(layer: QgsVectorLayer) -> dict[str, Any]:
    """What QGIS made of a vector layer: validity, symbol(s), labels.

    A categorized renderer is reported by its field and categories (value,
    legend label, symbol layer type, fill style and colour), a single symbol
    by that symbol.
    """
    renderer = layer.renderer()
    found: dict[str, Any] = {
        "valid": layer.isValid(),
        "features": layer.featureCount(),
        "crs": layer.crs().authid(),
        "renderer": renderer.type(),
        "labels": layer.labelsEnabled(),
    }
    if renderer.type() == "categorizedSymbol":
        found["attribute"] = renderer.classAttribute()
        found["categories"] = [
            [
                str(category.value()),
                category.label(),
                category.symbol().symbolLayer(0).layerType(),
                category.symbol().symbolLayer(0).properties()["style"],
                category.symbol().color().name(),
            ]
            for category in renderer.categories()
        ]
        found["values"] = sorted(
            str(feature[renderer.classAttribute()]) for feature in layer.getFeatures()
        )
        return found
    symbol = renderer.symbol().symbolLayer(0)
    found["symbol_layer"] = symbol.layerType()
    found["fill"] = symbol.properties()["style"]
    found["outline"] = symbol.strokeColor().name()
    if layer.labelsEnabled():
        settings = layer.labeling().settings()
        text = settings.format()  # held: buffer() refers into it
        found["label_field"] = settings.fieldName
        found["label_halo"] = text.buffer().enabled()
    return found


def inspect(map_path: Path, pixels: list[list[int]], png: str | None) -> dict[str, Any]:
    """Load the map's layers as QGIS does, render the class map, report both."""
    stem = map_path.with_suffix("")
    classes = QgsRasterLayer(str(map_path), "classes")
    probability = QgsRasterLayer(f"{stem}_probability.tif", "probability")
    polygons = QgsVectorLayer(f"{stem}.gpkg|layername=irrigated", "polygons", "ogr")

    shown: dict[str, Any] = {
        "classes": raster(classes),
        "probability": raster(probability),
    }
    shown["classes"]["palette"] = [
        [int(entry.value), entry.label, entry.color.name(), entry.color.alpha()]
        for entry in classes.renderer().classes()
    ]
    shader = probability.renderer().shader().rasterShaderFunction()
    shown["probability"]["range"] = [shader.minimumValue(), shader.maximumValue()]
    shown["probability"]["ramp"] = [
        [item.value, item.color.name()] for item in shader.colorRampItemList()
    ]
    shown["polygons"] = vector(polygons)
    image = render([classes], classes)
    shown["rendered"] = [QColor(image.pixel(col, row)).name() for col, row in pixels]
    if png is not None:
        render([polygons, classes], classes).save(png)
    return shown


def scene(path: Path, pixels: list[list[int]]) -> dict[str, Any]:
    """Load a scene as QGIS does, render it, report its colour bands and pixels."""
    layer = QgsRasterLayer(str(path), "scene")
    shown = raster(layer)
    renderer = layer.renderer()
    if renderer.type() == "multibandcolor":
        for colour in ("red", "green", "blue"):
            band = getattr(renderer, f"{colour}Band")()
            enhancement = getattr(renderer, f"{colour}ContrastEnhancement")()
            shown[colour] = {
                "band": band,
                "name": layer.bandName(band),
                "min": enhancement.minimumValue(),
                "max": enhancement.maximumValue(),
                "algorithm": QgsContrastEnhancement.contrastEnhancementAlgorithmString(
                    enhancement.contrastEnhancementAlgorithm()
                ),
            }
    image = render([layer], layer)
    shown["rendered"] = [QColor(image.pixel(col, row)).name() for col, row in pixels]
    return shown


def report(mode: str, args: list[str]) -> dict[str, Any]:
    """The report of *mode* (``map``, ``vector`` or ``scene``) on its arguments."""
    if mode == "scene":
        return scene(Path(args[0]), json.loads(Path(args[1]).read_text()))
    if mode == "map":
        pixels = json.loads(Path(args[1]).read_text())
        png = args[3] if len(args) > 3 else None
        return inspect(Path(args[0]), pixels, png)
    return vector(QgsVectorLayer(f"{args[0]}|layername={args[1]}", "layer", "ogr"))


def main() -> None:
    """Start QGIS, make the report and write it."""
    mode, *args = sys.argv[1:]
    out_path = Path(args[2])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen needed
    app = QgsApplication([], False)
    app.initQgis()
    # The layers live inside report(): QGIS crashes on exit if any outlives it.
    out_path.write_text(json.dumps(report(mode, args)))
    app.exitQgis()


if __name__ == "__main__":
    main()
