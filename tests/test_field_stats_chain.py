"""Tests of field-stats outputs joined across maps: ids, chained runs, column types.

An analyst comparing two years feeds one year's output back in as the fields
of the next, exports it to a Shapefile, or joins the outputs back to the field
file: every column must keep its meaning and every field its id.
"""

import json
import re
import sqlite3
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from test_evaluate import MAP_CRS, base_map, pixel_box, write_map
from test_field_stats import FIELDS, write_fields

from torchgeo_simclr.field_stats import COLUMNS, FIELD_STATS_LAYER, field_stats

#: The column of the fields' ids in their file, as users join on it.
SOURCE_FID = "src_fid"

#: Imagery date each test map is tagged with, by map file name.
DATES: dict[str, str] = {
    "y2021.tif": "2021-07-14",
    "y2022.tif": "2022-07-16",
    "y2023.tif": "2023-07-15",
    "y2024.tif": "2024-07-13",
}


def year_map(path: Path) -> Path:
    """The test map tagged as predict tags it; 2022's has field A not irrigated."""
    classes = base_map()
    if path.name == "y2022.tif":
        classes[0:4, 0:4][classes[0:4, 0:4] == 1] = 0
    write_map(path, classes)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(
            checkpoint_sha256="cd" * 32,
            threshold="0.45",
            imagery_dates=DATES[path.name],
        )
    return path


def table_types(path: Path) -> dict[str, str]:
    """Column name -> declared SQLite type of the field-stats layer."""
    with sqlite3.connect(path) as db:
        rows = db.execute(f"PRAGMA table_info({FIELD_STATS_LAYER})").fetchall()
    return {str(row[1]): str(row[2]) for row in rows}


def test_outputs_fed_back_as_fields_keep_every_map_under_short_names(
    tmp_path: Path,
) -> None:
    # Four years in one table: each run reads the previous run's output.
    fields = write_fields(tmp_path / "parcels.gpkg")
    years = [year_map(tmp_path / name) for name in DATES]
    outs = [tmp_path / f"chain{i}.gpkg" for i in range(len(years))]
    field_stats(years[0], fields, outs[0])
    messages = []
    for year, given, out in zip(years[1:], outs[:-1], outs[1:], strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            field_stats(year, given, out)
        messages.append(" ".join(str(w.message) for w in caught))
    last = gpd.read_file(outs[-1], layer=FIELD_STATS_LAYER).set_index("name")
    names = [str(c) for c in last.columns if c != "geometry"]
    # A Shapefile keeps every name: none longer than 10, none the same in any case.
    assert max(len(name) for name in names) <= 10
    assert len({name.lower() for name in names}) == len(names)
    # Oldest map _1, then _2, _3; the newest map's columns keep their names.
    assert last.loc["A", "status_1"] == "irrigated"  # 2021
    assert last.loc["A", "status_2"] == "not irrigated"  # 2022
    assert last.loc["A", "status_3"] == "irrigated"  # 2023
    assert last.loc["A", "status"] == "irrigated"  # 2024
    assert str(last.loc["A", "acq_from_2"])[:10] == "2022-07-16"
    assert str(last.loc["A", "acq_from"])[:10] == "2024-07-13"
    assert (last["mapped_s_1"] == last["mapped_shr"]).sum() == last[
        "mapped_shr"
    ].notna().sum()
    # Each warning names every column it renamed, as it is in the file written.
    third = messages[-1]
    assert "status as status_3" in third
    assert "mapped_shr as mapped_s_3" in third
    assert "acq_from as acq_from_3" in third
    # The fields' ids are those of the first file, once: not repeated per map.
    assert SOURCE_FID not in third
    assert [name for name in names if name.startswith("src")] == [SOURCE_FID]
    assert last[SOURCE_FID].tolist() == list(range(1, len(FIELDS) + 1))
    for old, new in re.findall(r"(\w+) as (\w+)", third.split("characters: ")[1]):
        assert new in names
        assert old in names


# GDAL says a Shapefile has no DateTime fields, through its error handler.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_shapefile_export_of_a_chained_output_keeps_each_column_meaning(
    tmp_path: Path,
) -> None:
    fields = write_fields(tmp_path / "parcels.gpkg")
    first = tmp_path / "fs2022.gpkg"
    field_stats(year_map(tmp_path / "y2022.tif"), fields, first)
    both = tmp_path / "both.gpkg"
    with pytest.warns(UserWarning, match=r"mapped_shr as mapped_s_1"):
        field_stats(year_map(tmp_path / "y2023.tif"), first, both)
    table = gpd.read_file(both, layer=FIELD_STATS_LAYER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table.to_file(tmp_path / "both.shp")
    assert not [w for w in caught if "laundered" in str(w.message)]
    shp = gpd.read_file(tmp_path / "both.shp").set_index("name")
    assert list(shp.columns) == list(table.columns.drop("name"))
    # A is irrigated in 2023 only: each year's value stays under its own name.
    assert (shp.loc["A", "status_1"], shp.loc["A", "status"]) == (
        "not irrigated",
        "irrigated",
    )
    assert (shp.loc["A", "irr_shar_1"], shp.loc["A", "irr_share"]) == (0, 1)
    # Fed back, the Shapefile's own ids (from 0) differ from the GeoPackage's
    # (from 1), which are kept.
    with pytest.warns(UserWarning, match=r"src_fid as src_fid_1, status as status_2"):
        field_stats(
            tmp_path / "y2023.tif", tmp_path / "both.shp", tmp_path / "again.csv"
        )
    again = pd.read_csv(tmp_path / "again.csv")
    assert again[SOURCE_FID].tolist() == list(range(len(FIELDS)))
    assert again["src_fid_1"].tolist() == list(range(1, len(FIELDS) + 1))


def test_columns_clashing_in_case_or_in_ten_characters_are_renamed(
    tmp_path: Path,
) -> None:
    # An older field-stats output (mapped_shr_in: a Shapefile cuts it to
    # mapped_shr), DWR-style upper case, and a field file's own fid attribute.
    n = len(FIELDS)
    fields = write_fields(
        tmp_path / "parcels.gpkg",
        STATUS=["idle"] * n,
        mapped_shr_in=[0.5] * n,
        fid_code=[7] * n,
    )
    frame = gpd.read_file(fields).rename(columns={"fid_code": "FID"})
    frame.to_file(tmp_path / "parcels.fgb")
    out = tmp_path / "stats.gpkg"
    with pytest.warns(
        UserWarning,
        match=r"STATUS as STATUS_1, mapped_shr_in as mapped_s_1, FID as FID_1\.",
    ):
        field_stats(year_map(tmp_path / "y2023.tif"), tmp_path / "parcels.fgb", out)
    written = gpd.read_file(out, layer=FIELD_STATS_LAYER).set_index("name")
    assert written.loc["A", "STATUS_1"] == "idle"
    assert written.loc["A", "status"] == "irrigated"
    assert written["mapped_s_1"].tolist() == [0.5] * n
    assert written["FID_1"].tolist() == [7] * n


def test_source_fid_joins_the_outputs_back_to_the_field_file(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"name": list(FIELDS), "fid": [6870, 6871, 6875, 7001, 7002, 9000]},
        geometry=[pixel_box(rows) for rows in FIELDS.values()],
        crs=MAP_CRS,
    )
    fields = tmp_path / "myfields.gpkg"
    frame.to_file(fields, layer="parcels")
    source = gpd.read_file(fields, fid_as_index=True)
    assert source.index.tolist() == frame["fid"].tolist()
    mapped = year_map(tmp_path / "y2023.tif")
    field_stats(mapped, fields, tmp_path / "stats.gpkg")
    field_stats(mapped, fields, tmp_path / "stats.csv")
    gpkg = gpd.read_file(
        tmp_path / "stats.gpkg", layer=FIELD_STATS_LAYER, fid_as_index=True
    )
    table = pd.read_csv(tmp_path / "stats.csv")
    for written in (gpkg, table):
        assert written.columns[0] == SOURCE_FID
        joined = written.merge(
            source, left_on=SOURCE_FID, right_index=True, suffixes=("", "_source")
        )
        assert joined["name"].tolist() == joined["name_source"].tolist()
    # The GeoPackage keeps the file's FIDs as its own.
    assert gpkg.index.tolist() == gpkg[SOURCE_FID].tolist() == frame["fid"].tolist()
    # A Shapefile's fields are numbered 0, 1, 2, ... as GDAL numbers them.
    frame.drop(columns="fid").to_file(tmp_path / "parcels.shp")
    field_stats(mapped, tmp_path / "parcels.shp", tmp_path / "shp.csv")
    assert pd.read_csv(tmp_path / "shp.csv")[SOURCE_FID].tolist() == list(
        range(len(FIELDS))
    )


def test_fids_a_driver_cannot_give_become_row_numbers() -> None:
    from torchgeo_simclr.field_stats import _source_fids

    assert _source_fids(pd.Index([-1, -1, -1])).tolist() == [0, 1, 2]
    assert _source_fids(pd.Index([4, 4, 9])).tolist() == [0, 1, 2]
    assert _source_fids(pd.Index([9, 4, 6870])).tolist() == [9, 4, 6870]


def test_geopackage_types_dates_and_threshold_as_predict_does(tmp_path: Path) -> None:
    fields = write_fields(tmp_path / "parcels.gpkg")
    first, both = tmp_path / "fs2022.gpkg", tmp_path / "both.gpkg"
    field_stats(year_map(tmp_path / "y2022.tif"), fields, first)
    types = table_types(first)
    assert (types["acq_from"], types["acq_to"], types["threshold"]) == (
        "DATE",
        "DATE",
        "REAL",
    )
    info = pyogrio.read_info(first, layer=FIELD_STATS_LAYER)
    kinds = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert (kinds["acq_from"], kinds["threshold"]) == ("datetime64[D]", "float64")
    # Fed back as fields, the earlier map's dates stay dates.
    with pytest.warns(UserWarning, match=r"acq_from as acq_from_1"):
        field_stats(year_map(tmp_path / "y2023.tif"), first, both)
    types = table_types(both)
    assert (types["acq_from_1"], types["acq_to_1"], types["threshol_1"]) == (
        "DATE",
        "DATE",
        "REAL",
    )
    # A map without tags: the columns are empty, typed all the same.
    bare = write_map(tmp_path / "bare.tif", base_map())
    field_stats(bare, fields, tmp_path / "bare.gpkg")
    assert table_types(tmp_path / "bare.gpkg")["acq_from"] == "DATE"
    read = gpd.read_file(tmp_path / "bare.gpkg", layer=FIELD_STATS_LAYER)
    assert read["acq_from"].isna().all()
    assert read["threshold"].isna().all()
    # A CSV writes the dates as text.
    field_stats(year_map(tmp_path / "y2023.tif"), fields, tmp_path / "s.csv")
    row = pd.read_csv(tmp_path / "s.csv").iloc[0]
    assert (row["acq_from"], row["threshold"]) == ("2023-07-15", 0.45)


def test_json_objects_of_a_geojson_stay_one_column_of_json(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"name": list(FIELDS)},
        geometry=[pixel_box(rows) for rows in FIELDS.values()],
        crs=MAP_CRS,
    )
    features = json.loads(frame.to_crs("EPSG:4326").to_json(drop_id=True))
    for feature in features["features"]:
        feature["properties"]["owner"] = {"id": 3, "tags": ["a", "b"]}
    path = tmp_path / "parcels.geojson"
    path.write_text(json.dumps(features))
    out = tmp_path / "stats.gpkg"
    field_stats(year_map(tmp_path / "y2023.tif"), path, out)
    written = gpd.read_file(out, layer=FIELD_STATS_LAYER)
    assert list(written.columns) == [SOURCE_FID, "name", "owner", *COLUMNS, "geometry"]
    assert json.loads(written["owner"].iloc[0]) == {"id": 3, "tags": ["a", "b"]}
    assert np.array_equal(written[SOURCE_FID], np.arange(len(FIELDS)))
