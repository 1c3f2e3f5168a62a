"""Writing GeoPackages that QGIS opens quietly, styled.

Every GeoPackage the package writes goes through :func:`write_geopackage`: it
is written as version 1.2 (:data:`GPKG_OPTIONS`) and, when given a QML style,
carries it in its ``layer_styles`` table, where QGIS looks first for a vector
layer's default style.
"""

import warnings
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd
import pyogrio

#: Dataset creation options of every GeoPackage the package writes. Version 1.2
#: is what GDAL wrote before 3.7.1 made 1.4 its default, and it uses nothing of
#: 1.3 or 1.4; GDAL 3.6 and earlier (QGIS 3.22 on Debian 12, for one) read a
#: 1.4 file but warn that it "may only be partially supported".
GPKG_OPTIONS: Final[dict[str, str]] = {"VERSION": "1.2"}

#: Table of a GeoPackage in which QGIS keeps its layers' styles.
STYLE_TABLE: Final[str] = "layer_styles"


def write_geopackage(
    frame: gpd.GeoDataFrame,
    path: str | Path,
    layer: str,
    style: tuple[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Write *frame* as *layer* of a new GeoPackage, with its QGIS style.

    Args:
        frame: the features.
        path: the GeoPackage to write (replaced if it exists).
        layer: the layer's name.
        style: ``(name, qml)`` of the layer's default QGIS style, or None.
        **kwargs: passed to :meth:`geopandas.GeoDataFrame.to_file` (e.g.
            ``geometry_type``, ``use_arrow``).
    """
    frame.to_file(
        path,
        driver="GPKG",
        layer=layer,
        engine="pyogrio",
        dataset_options=GPKG_OPTIONS,
        **kwargs,
    )
    if style is not None:
        store_default_style(path, layer, *style)


def store_default_style(path: str | Path, layer: str, name: str, qml: str) -> None:
    """Store *qml* in a GeoPackage as its *layer*'s default QGIS style.

    QGIS keeps styles in the GeoPackage's ``layer_styles`` table (one row per
    style, the default one flagged ``useAsDefault``) and applies the default
    when the layer is opened; the table does not show as a layer there.

    Any styles the GeoPackage had are replaced: this is for a file just written.

    Args:
        path: a GeoPackage that holds *layer*.
        layer: the vector layer the style is for.
        name: the style's name, shown in QGIS's style manager.
        qml: the QML document, e.g. from
            :func:`~torchgeo_simclr.inference.styles.polygon_style`.
    """
    geometry_column = pyogrio.read_info(path, layer=layer)["geometry_name"]
    row = {
        "f_table_catalog": "",
        "f_table_schema": "",
        "f_table_name": layer,
        "f_geometry_column": geometry_column,
        "styleName": name,
        "styleQML": qml,
        "styleSLD": "",
        "useAsDefault": True,
        "description": "written by torchgeo-simclr",
        "owner": "",
        "ui": "",
        "update_time": pd.Timestamp.now(tz="UTC"),
    }
    pyogrio.write_dataframe(
        pd.DataFrame([row]),
        path,
        layer=STYLE_TABLE,
        driver="GPKG",
        layer_options={"FID": "id"},
    )


def missing_layer(path: Path, layer: str) -> str | None:
    """Why an existing *path* is no GeoPackage holding *layer*, or None.

    For refusing to replace a file that some command of this package did not
    write: a GeoPackage of its own holds the layer it wrote.

    Args:
        path: the file.
        layer: the layer the package's command writes.

    Returns:
        A few words for a message (e.g. ``"no 'irrigated' layer"``), or None.
    """
    try:
        with path.open("rb") as file:
            if file.read(16) != b"SQLite format 3\x00":
                return "not a GeoPackage"
        with warnings.catch_warnings():  # GDAL's, about another SQLite file
            warnings.simplefilter("ignore")
            layers = pyogrio.list_layers(path)
    except pyogrio.errors.DataSourceError:
        return "not a GeoPackage"
    except OSError as error:
        return f"unreadable: {error.strerror}"
    return None if layer in layers[:, 0] else f"no {layer!r} layer"
