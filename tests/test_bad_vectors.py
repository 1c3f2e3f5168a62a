"""Bad vectors in label and field files: evaluate and field-stats agree.

Labels with NaN or infinite coordinates gave a raw ``RuntimeWarning`` of
shapely's; a self-intersecting polygon was scored by evaluate without a word
(field-stats warned); a polygon of +-1e300 was scored, or reported off the
map, though no CRS holds such a place; and field-stats told a file without a
CRS to take California's zone whatever the map's.
"""

import math
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.transform import from_origin
from test_evaluate import (
    FIELDS,
    MAP_CRS,
    ORIGIN,
    base_map,
    pixel_box,
    write_labels,
    write_map,
)

from torchgeo_simclr.datasets.labels import IrrigationLabels
from torchgeo_simclr.evaluate import evaluate_map
from torchgeo_simclr.field_stats import field_stats

#: A bow-tie over field A's square (pixels 0-4 x 0-4): two triangles of
#: 400 m2 each, meeting at the square's centre.
X0, Y0 = ORIGIN
BOWTIE = shapely.Polygon([(X0, Y0), (X0 + 40, Y0 - 40), (X0 + 40, Y0), (X0, Y0 - 40)])


def _labels(
    path: Path, geometries: list[shapely.Geometry | None], codes: list[str]
) -> Path:
    """Write label polygons in MAP_CRS, as GeoPackage or GeoParquet by suffix."""
    frame = gpd.GeoDataFrame({"CLASS2": codes}, geometry=geometries, crs=MAP_CRS)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path, driver="GPKG")
    return path


def _scores(result: object) -> tuple[int, ...]:
    return tuple(getattr(result, key) for key in ("tp", "fp", "fn", "tn", "n_fields"))


def _user_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if w.category is UserWarning]


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    return write_map(tmp_path / "map.tif", base_map())


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
def test_labels_with_nan_coordinates_are_left_out_in_one_warning(
    map_path: Path, tmp_path: Path, suffix: str
) -> None:
    boxes = [pixel_box(rows) for _, rows in FIELDS]
    (x0, y0), (x1, y1) = shapely.get_coordinates(boxes[0])[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # making them, not reading
        nan = shapely.Polygon([(x0, y0), (math.nan, math.nan), (x1, y1), (x0, y1)])
        inf = shapely.Polygon([(x0, y0), (math.inf, y0), (x1, y1)])
    codes = [code for code, _ in FIELDS]
    labels = _labels(
        tmp_path / f"labels{suffix}",
        [boxes[0], nan, *boxes[1:3], inf, *boxes[3:]],
        [codes[0], "P", *codes[1:3], "P", *codes[3:]],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_map(map_path, labels)
    # No raw RuntimeWarning of shapely's ("invalid value encountered in from_wkb").
    assert [w.category for w in caught if w.category is not UserWarning] == []
    assert [m for m in _user_warnings(caught) if "not numbers" in m] == [
        f"Label file {str(labels)!r} holds 2 feature(s) with coordinates that are "
        "not numbers (NaN or infinite, e.g. row 2), left out; fix or remove them "
        "in the file."
    ]
    # Scored as the same labels without them (see test_hand_computed_scores).
    assert _scores(result) == (23, 4, 8, 12, 3)


def test_labels_all_with_nan_coordinates_are_not_blamed_on_the_class_map(
    map_path: Path, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nan = shapely.Polygon([(X0, Y0), (math.nan, math.nan), (X0 + 40, Y0 - 40)])
    labels = _labels(tmp_path / "labels.gpkg", [nan, nan], ["P", "I"])
    with (
        pytest.warns(UserWarning, match=r"2 feature\(s\) with coordinates that"),
        pytest.raises(ValueError, match="hold no polygons") as refused,
    ):
        evaluate_map(map_path, labels)
    message = str(refused.value)
    assert "with coordinates that are numbers (2 left out)" in message
    assert "class" not in message.split(";")[0]


def test_a_bowtie_label_is_repaired_and_named_as_field_stats_does(
    map_path: Path, tmp_path: Path
) -> None:
    boxes = [pixel_box(rows) for _, rows in FIELDS]
    codes = [code for code, _ in FIELDS]
    labels = _labels(tmp_path / "labels.gpkg", [BOWTIE, *boxes[1:]], codes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_map(map_path, labels)
    assert [m for m in _user_warnings(caught) if "invalid polygon" in m] == [
        f"Label file {str(labels)!r} holds 1 invalid polygon(s) (e.g. row 1: "
        f"Self-intersection[{X0 + 20:.0f} {Y0 - 20:.0f}]), used as shapely's "
        "make_valid repairs them; fix them in the file (QGIS: Vector > Geometry "
        "Tools > Fix Geometries) to be sure of the pixels they label."
    ]
    # Scored as the repaired polygons, written valid, are.
    repaired = _labels(
        tmp_path / "repaired.gpkg", [shapely.make_valid(BOWTIE), *boxes[1:]], codes
    )
    assert _scores(result) == _scores(evaluate_map(map_path, repaired))
    # field-stats names the same polygon of the same file.
    with pytest.warns(UserWarning, match=r"1 invalid polygon\(s\) \(e.g. row 1: Self"):
        field_stats(map_path, labels, tmp_path / "fields.csv")


def test_training_labels_rasterise_the_repaired_bowtie(tmp_path: Path) -> None:
    # fit reads labels with the same IrrigationLabels: the two triangles are
    # burnt (pixel centres inside them), not the square nor nothing.
    labels = _labels(tmp_path / "labels.gpkg", [BOWTIE], ["P"])
    with pytest.warns(UserWarning, match=r"1 invalid polygon\(s\)"):
        dataset = IrrigationLabels(labels, crs=MAP_CRS, res=10.0)
    assert dataset.features.geometry.is_valid.all()
    assert dataset.features.geometry.iloc[0].area == pytest.approx(800.0)
    mask = dataset[X0 : X0 + 40, Y0 - 40 : Y0]["mask"].numpy()
    expected = rasterio.features.rasterize(
        [(shapely.make_valid(BOWTIE), 1)],
        out_shape=(4, 4),
        transform=from_origin(X0, Y0, 10.0, 10.0),
        fill=255,
    )
    np.testing.assert_array_equal(mask, expected)
    # The left and right triangles only: not the square's top and bottom.
    assert (mask[:, 0] == 1).all()
    assert (mask[:, 3] == 1).any()
    assert (mask[[0, 3], 1:3] == 255).all()


@pytest.mark.parametrize("crs", [MAP_CRS, "EPSG:4326"])
def test_coordinates_beyond_the_earth_are_refused_by_both_commands(
    map_path: Path, tmp_path: Path, crs: str
) -> None:
    # It covers the whole map: "no pixel centre in the area scored (off the
    # map ...)" or a score over every pixel were both wrong.
    frame = gpd.GeoDataFrame(
        {"CLASS2": ["P"]}, geometry=[shapely.box(-1e300, -1e300, 1e300, 1e300)], crs=crs
    )
    labels = tmp_path / "huge.gpkg"
    frame.to_file(labels, driver="GPKG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor any overflow warning on the way
        with pytest.raises(ValueError, match="far beyond") as refused:
            evaluate_map(map_path, labels)
        with pytest.raises(ValueError, match="far beyond") as fields_refused:
            field_stats(map_path, labels, tmp_path / "fields.csv")
    assert str(refused.value) == (
        f"Label file {str(labels)!r} holds 1 feature(s) with coordinates far "
        f"beyond any place on Earth (e.g. row 1; the file's extent in "
        f"{gpd.GeoSeries(crs=crs).crs.name} is [-1e+300, -1e+300, 1e+300, 1e+300]); "
        "fix or remove them in the file."
    )
    assert str(fields_refused.value) == str(refused.value).replace(
        "Label file", "Fields file"
    )


def test_degrees_that_are_metres_are_told_the_map_crs(tmp_path: Path) -> None:
    # A GeoPackage that says EPSG:4326 but holds UTM metres.
    map_path = _map_in(tmp_path / "map.tif", "EPSG:32630")
    labels = write_labels(tmp_path / "labels.gpkg")
    frame = gpd.read_file(labels).set_crs("EPSG:4326", allow_override=True)
    frame.geometry = [pixel_box(rows) for _, rows in FIELDS]
    frame.to_file(labels, driver="GPKG")
    with pytest.raises(ValueError, match="are not longitude/latitude") as refused:
        evaluate_map(map_path, labels)
    assert (
        "give the file its CRS, e.g. `ogr2ogr -a_srs EPSG:32630 out.gpkg IN` if "
        "they are in EPSG:32630, the CRS of the imagery or map it is read for."
    ) in str(refused.value)
    with pytest.raises(ValueError, match="are not longitude/latitude") as refused:
        field_stats(map_path, labels, tmp_path / "fields.csv")
    assert (
        "`ogr2ogr -a_srs EPSG:32630 fields.gpkg IN` if they are in EPSG:32630, "
        "the CRS of the map."
    ) in str(refused.value)


def _map_in(path: Path, crs: str) -> Path:
    """A small class map in *crs* (all not irrigated)."""
    profile = {
        "driver": "GTiff",
        "width": 8,
        "height": 8,
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(500000.0, 4400000.0, 10.0, 10.0),
        "nodata": 255,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, 8, 8), dtype=np.uint8))
    return path


def test_field_stats_tells_a_file_without_crs_the_map_crs(tmp_path: Path) -> None:
    # It suggested California's EPSG:32610 for a map of Spain.
    map_path = _map_in(tmp_path / "map.tif", "EPSG:32630")
    frame = gpd.GeoDataFrame(
        {"name": ["a"]}, geometry=[shapely.box(500000, 4399960, 500040, 4400000)]
    )
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        frame.to_file(tmp_path / "parcelas.shp")
    with pytest.raises(ValueError, match="has no CRS") as refused:
        field_stats(map_path, tmp_path / "parcelas.shp", tmp_path / "fields.csv")
    assert str(refused.value).endswith(
        "set it, e.g. in QGIS (Layer > Set CRS) or with `ogr2ogr -a_srs EPSG:32630 "
        "fields.gpkg IN` if they are in EPSG:32630, the CRS of the map."
    )
    assert "32610" not in str(refused.value)
