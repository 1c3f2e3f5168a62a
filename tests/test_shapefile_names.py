"""The layers predict and evaluate write survive a Shapefile export by name.

GIS analysts often save our GeoPackages as Shapefiles (QGIS "Save Features
As", ``ogr2ogr``), whose DBF column names hold 10 characters: a longer name is
cut (``mean_probability`` -> ``mean_proba``) and two names cut alike collide
(``checkpoint`` and ``checkpoint_id``: GDAL renames one ``checkpoi_1``), so a
filter or a script written against the GeoPackage breaks on the export.
"""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from test_evaluate import base_map, write_labels, write_map

from torchgeo_simclr.evaluate import FIELDS_LAYER, evaluate_map
from torchgeo_simclr.field_stats import COLUMNS
from torchgeo_simclr.geopackage import write_geopackage
from torchgeo_simclr.inference.polygons import irrigated_polygons, with_provenance
from torchgeo_simclr.inference.writer import POLYGON_LAYER

#: Most characters of a Shapefile (DBF) column name.
DBF_NAME_LENGTH = 10

#: The regions' columns that field-stats also writes, with the same meaning.
SHARED_WITH_FIELD_STATS = ("area_ha", "mean_prob", "acq_from", "acq_to", "ckpt_id")

#: A checkpoint's path and id, as predict records them on every region.
CHECKPOINT = "/runs/quickstart/last.ckpt"
CHECKPOINT_ID = "0123456789abcdef"


def exported(path: Path, layer: str, tmp_path: Path) -> tuple[list[str], Path]:
    """Save *layer* of the GeoPackage *path* as a Shapefile, as a GIS would.

    Args:
        path: the GeoPackage.
        layer: the layer to export.
        tmp_path: the folder to write ``LAYER.shp`` (and its .dbf, ...) in.

    Returns:
        The layer's own column names, and the Shapefile written.
    """
    # Through Arrow, as ogr2ogr copies them: dates stay DATE fields.
    frame = pyogrio.read_dataframe(path, layer=layer, use_arrow=True)
    shapefile = tmp_path / f"{layer}.shp"
    pyogrio.write_dataframe(frame, shapefile, driver="ESRI Shapefile", use_arrow=True)
    return list(pyogrio.read_info(path, layer=layer)["fields"]), shapefile


def predict_regions(tmp_path: Path) -> Path:
    """A GeoPackage of irrigated regions written as ``predict`` writes them."""
    classes = base_map()
    probability = np.where(classes == 1, 0.8, 0.2).astype(np.float32)
    probability[classes == 255] = -1.0
    regions = irrigated_polygons(
        write_map(tmp_path / "map.tif", classes),
        write_map(tmp_path / "map_probability.tif", probability, "float32", -1.0),
        min_area_ha=0.0,
    )
    dates = ["2023-07-15", "2023-07-20"]
    path = tmp_path / "map.gpkg"
    write_geopackage(
        with_provenance(regions, dates, CHECKPOINT, CHECKPOINT_ID, 0.5),
        path,
        POLYGON_LAYER,
        geometry_type="Polygon",
        use_arrow=True,
    )
    return path


def test_predict_regions_keep_their_column_names_in_a_shapefile(
    tmp_path: Path,
) -> None:
    """An analyst filters the exported regions by the same names as the GeoPackage."""
    names, shapefile = exported(predict_regions(tmp_path), POLYGON_LAYER, tmp_path)
    assert list(pyogrio.read_info(shapefile)["fields"]) == names
    assert [name for name in names if len(name) > DBF_NAME_LENGTH] == []
    # The checkpoint's path and its id stay two columns, each with its value.
    regions = gpd.read_file(shapefile)
    assert len(regions) > 0
    assert set(regions["checkpoint"]) == {CHECKPOINT}
    assert set(regions["ckpt_id"]) == {CHECKPOINT_ID}
    assert set(regions["mean_prob"]) == {0.8}
    assert {str(day.date()) for day in regions["acq_from"]} == {"2023-07-15"}
    assert {str(day.date()) for day in regions["acq_to"]} == {"2023-07-20"}
    # A column that means what a field-stats column means is named alike.
    assert set(SHARED_WITH_FIELD_STATS) <= set(names) & set(COLUMNS)


def test_evaluated_fields_keep_their_column_names_in_a_shapefile(
    tmp_path: Path,
) -> None:
    """An analyst reads the exported fields' pixel counts by the GeoPackage's names."""
    out = tmp_path / "fields.gpkg"
    result = evaluate_map(
        write_map(tmp_path / "map.tif", base_map()),
        write_labels(tmp_path / "labels.gpkg"),
        fields=out,
    )
    names, shapefile = exported(out, FIELDS_LAYER, tmp_path)
    assert list(pyogrio.read_info(shapefile)["fields"]) == names
    assert [name for name in names if len(name) > DBF_NAME_LENGTH] == []
    fields = gpd.read_file(shapefile)
    assert int((fields["irr_px"] + fields["not_irr_px"]).sum()) == result.n_pixels
    assert fields["area_ha"].tolist() == pytest.approx([0.16, 0.16, 0.16])
