"""Fields with NaN or infinite coordinates: counted as having no geometry.

shapely's make_valid cannot repair them: field-stats warned it would, then
stopped with a GEOSException traceback ("Edge direction cannot be
determined because endpoints are equal").
"""

import math
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from test_evaluate import MAP_CRS, base_map, pixel_box, write_map
from test_field_stats import FIELDS

from torchgeo_simclr.field_stats import FIELD_STATS_LAYER, field_stats

# The test's own fields (made, and read back) are what shapely warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning"
)


@pytest.fixture
def mapped(tmp_path: Path) -> Path:
    return write_map(tmp_path / "map.tif", base_map())


def _broken_fields(path: Path, crs: str) -> Path:
    """Fields A and B with two between them: one with a NaN vertex, one an inf."""
    sound = gpd.GeoSeries(
        [pixel_box(FIELDS["A"]), pixel_box(FIELDS["B"])], crs=MAP_CRS
    ).to_crs(crs)
    (x0, y0), (x1, y1) = shapely.get_coordinates(sound.iloc[0])[:2]
    nan = shapely.Polygon([(x0, y0), (math.nan, math.nan), (x1, y1), (x0, y1)])
    inf = shapely.Polygon([(x0, y0), (math.inf, y0), (x1, y1)])
    frame = gpd.GeoDataFrame(
        {"name": ["A", "nan_vertex", "inf_vertex", "B"]},
        geometry=[sound.iloc[0], nan, inf, sound.iloc[1]],
        crs=crs,
    )
    frame.to_file(path, driver="GPKG", layer="parcels")
    return path


@pytest.mark.parametrize("crs", [MAP_CRS, "EPSG:4326"])
@pytest.mark.parametrize("suffix", [".gpkg", ".csv"])
def test_fields_with_nan_coordinates_have_no_geometry(
    mapped: Path, tmp_path: Path, crs: str, suffix: str
) -> None:
    fields = _broken_fields(tmp_path / "parcels.gpkg", crs)
    out = tmp_path / f"stats{suffix}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = field_stats(mapped, fields, out)
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    broken = [m for m in messages if "not numbers" in m]
    assert broken == [
        f"Fields file {str(fields)!r} holds 2 field(s) with coordinates that are "
        "not numbers (NaN or infinite, e.g. row 2), counted as having no geometry "
        "(status 'no geometry'); fix or remove them in the file."
    ], messages
    # Nor a raw RuntimeWarning of shapely's, nor polygons make_valid repairs.
    assert [w.category for w in caught if w.category is not UserWarning] == []
    assert not [m for m in messages if "make_valid" in m], messages
    assert result.counts["no geometry"] == 2
    table = (
        pd.read_csv(out)
        if suffix == ".csv"
        else gpd.read_file(out, layer=FIELD_STATS_LAYER)
    ).set_index("name")
    assert list(table.index) == ["A", "nan_vertex", "inf_vertex", "B"]
    assert (
        table.loc[["nan_vertex", "inf_vertex"], "status"].tolist()
        == ["no geometry"] * 2
    )
    assert table.loc["A", "status"] == "irrigated"
    if suffix == ".csv":  # no point inside a field without geometry
        assert (
            table.loc[["nan_vertex", "inf_vertex"], ["lon", "lat"]]
            .isna()
            .all(axis=None)
        )
        assert table.loc["A", "lon"] == pytest.approx(-120.8, abs=0.1)
