"""Tests of torchgeo_simclr.field_stats: an irrigation map summed up per field."""

import hashlib
import json
import math
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from test_evaluate import (
    MAP_CRS,
    ORIGIN,
    SIZE,
    base_map,
    pixel_box,
    write_labels,
    write_map,
)

from torchgeo_simclr.cli import main
from torchgeo_simclr.evaluate import FIELDS_LAYER, evaluate_map
from torchgeo_simclr.field_stats import (
    COLUMNS,
    FIELD_STATS_LAYER,
    STATUS_LEGEND,
    STATUSES,
    field_stats,
)

#: Test fields: name -> (row0, col0, row1, col1) in map pixels, end exclusive.
#: A irrigated with one nodata pixel, B 4 of 16 irrigated, C a tie (8 of 16),
#: E all nodata, F one column of four on the map, G far off the map.
FIELDS: dict[str, tuple[int, int, int, int]] = {
    "A": (0, 0, 4, 4),
    "B": (0, 10, 4, 14),
    "C": (10, 0, 14, 4),
    "E": (16, 16, 19, 19),
    "F": (5, 19, 9, 23),
    "G": (500, 500, 504, 504),
}


def write_fields(
    path: Path,
    fields: dict[str, tuple[int, int, int, int]] = FIELDS,
    crs: str = "EPSG:4269",
    **columns: list[object],
) -> Path:
    """Write *fields* as polygons in *crs* (reprojected from the map's CRS)."""
    frame = gpd.GeoDataFrame(
        {"name": list(fields), **columns},
        geometry=[pixel_box(rows) for rows in fields.values()],
        crs=MAP_CRS,
    )
    frame.to_crs(crs).to_file(path, driver="GPKG", layer="parcels")
    return path


def write_probability(path: Path, probability: npt.NDArray[np.float32]) -> Path:
    """Write a probability map beside a class map, on the same grid."""
    profile = {
        "driver": "GTiff",
        "width": probability.shape[1],
        "height": probability.shape[0],
        "count": 1,
        "dtype": "float32",
        "crs": MAP_CRS,
        "transform": from_origin(*ORIGIN, 10.0, 10.0),
        "nodata": -1,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(probability, 1)
    return path


def probability_of(classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """0.9 where irrigated, 0.2 where not, -1 where nodata; 0.6 at pixel (1, 1)."""
    probability = np.where(classes == 1, 0.9, 0.2).astype(np.float32)
    probability[classes == 255] = -1
    probability[1, 1] = 0.6
    return probability


@pytest.fixture
def mapped(tmp_path: Path) -> Path:
    """The evaluate tests' map, with its probability map beside it."""
    classes = base_map()
    write_probability(tmp_path / "map_probability.tif", probability_of(classes))
    return write_map(tmp_path / "map.tif", classes)


@pytest.fixture
def fields(tmp_path: Path) -> Path:
    return write_fields(tmp_path / "parcels.gpkg")


def by_name(path: Path, **kwargs: object) -> pd.DataFrame:
    """The fields written, indexed by name."""
    if path.suffix == ".csv":
        return pd.read_csv(path).set_index("name")
    return gpd.read_file(path, layer=FIELD_STATS_LAYER, **kwargs).set_index("name")


def test_hand_computed_statistics(mapped: Path, fields: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "stats.gpkg"
    result = field_stats(mapped, fields, out)
    frame = by_name(out)
    # Every field is written, in file order, G far off the map too.
    assert list(frame.index) == list(FIELDS)
    a, b, c, e, f, g = (frame.loc[name] for name in FIELDS)
    # A: 15 mapped pixels of 16 (one is nodata), all irrigated.
    assert (a.status, a.irr_share, a.irr_ha, a.mapped_ha) == (
        "irrigated",
        1,
        0.15,
        0.15,
    )
    assert (a.area_ha, a.mapped_shr, a.irr_ac, a.area_ac) == (0.16, 0.9375, 0.37, 0.4)
    # Mean of 14 pixels at 0.9 and one at 0.6.
    assert a.mean_prob == pytest.approx((14 * 0.9 + 0.6) / 15, abs=1e-4)
    assert (b.status, b.irr_share, b.irr_ha, b.mapped_ha) == (
        "not irrigated",
        0.25,
        0.04,
        0.16,
    )
    assert b.mean_prob == pytest.approx(0.375, abs=1e-4)  # (4 * 0.9 + 12 * 0.2) / 16
    assert (c.status, c.irr_share) == ("not irrigated", 0.5)  # a tie is not irrigated
    assert e.status == "no data"
    assert math.isnan(e.irr_share)
    assert math.isnan(e.mean_prob)
    assert (e.irr_ha, e.mapped_ha, e.mapped_shr) == (0, 0, 0)
    # F: one column of four lies on the map; its pixels past the edge have no data.
    assert (f.status, f.mapped_shr, f.area_ha) == ("partly mapped", 0.25, 0.16)
    assert g.status == "off map"
    assert math.isnan(g.mapped_shr)
    assert result.n_fields == 6
    assert result.counts == dict.fromkeys(STATUSES, 0) | {
        "irrigated": 1,
        "not irrigated": 2,
        "partly mapped": 1,
        "no data": 1,
        "off map": 1,
    }
    assert result.irrigated_fields_ha == 0.16
    assert result.irrigated_in_them_ha == 0.15
    # A 15, B 4, C 8 and F's pixel at row 5 or more, column 19 (none irrigated).
    assert result.irrigated_in_all_ha == 0.27
    assert result.summary().splitlines()[:2] == [
        "Fields: 6 written: 1 irrigated, 2 not irrigated, 1 partly mapped, 1 no data, "
        "1 off map",
        "Irrigated fields cover 0.16 ha (0.40 acres); the pixels mapped irrigated "
        "cover 0.15 ha of them and 0.27 ha of all fields",
    ]


def test_what_made_the_map_is_on_every_field(tmp_path: Path, fields: Path) -> None:
    mapped = write_map(tmp_path / "map.tif", base_map())
    with rasterio.open(mapped, "r+") as dst:
        dst.update_tags(
            checkpoint_sha256="ab" * 32,
            threshold="0.4",
            imagery_dates="2023-07-20,unknown,2023-07-15",
        )
    field_stats(mapped, fields, tmp_path / "stats.csv")
    row = by_name(tmp_path / "stats.csv").loc["A"]
    assert (row["map"], row.ckpt_id, row.threshold) == ("map.tif", "ab" * 8, 0.4)
    assert (row.acq_from, row.acq_to) == ("2023-07-15", "2023-07-20")


def test_fields_keep_their_attributes_geometry_and_crs(
    mapped: Path, tmp_path: Path
) -> None:
    fields = write_fields(
        tmp_path / "parcels.gpkg", crs="EPSG:3310", owner=list("pqrstu")
    )
    out = tmp_path / "stats.gpkg"
    field_stats(mapped, fields, out)
    written = gpd.read_file(out, layer=FIELD_STATS_LAYER)
    given = gpd.read_file(fields)
    assert written.crs == given.crs
    # src_fid first: the field's id in the file, to join the output back to it.
    assert list(written.columns) == ["src_fid", "name", "owner", *COLUMNS, "geometry"]
    assert written["owner"].tolist() == given["owner"].tolist()
    assert written.geometry.geom_equals(given.geometry).all()


def test_csv_has_the_same_values_and_where_each_field_lies(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    field_stats(mapped, fields, tmp_path / "stats.gpkg")
    field_stats(mapped, fields, tmp_path / "stats.csv")
    table, frame = by_name(tmp_path / "stats.csv"), by_name(tmp_path / "stats.gpkg")
    assert "geometry" not in table.columns
    measured = list(COLUMNS)[: list(COLUMNS).index("mapped_shr") + 1]
    pd.testing.assert_frame_equal(
        table[measured], pd.DataFrame(frame[measured]), check_dtype=False
    )
    inside = gpd.GeoSeries.from_xy(
        table["lon"].to_numpy(), table["lat"].to_numpy(), crs="EPSG:4326"
    )
    polygons = gpd.read_file(fields).set_index("name").loc[table.index].geometry
    assert inside.to_crs(polygons.crs).within(polygons.reset_index(drop=True)).all()


def test_geopackage_is_styled_by_status(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats.gpkg"
    field_stats(mapped, fields, out)
    styles = pyogrio.read_dataframe(out, layer="layer_styles")
    qml = styles["styleQML"].iloc[0]
    assert styles["f_table_name"].iloc[0] == FIELD_STATS_LAYER
    assert 'attr="status"' in qml
    for status in STATUS_LEGEND:
        assert f'value="{status}"' in qml


def test_strip_size_does_not_change_the_result(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    field_stats(mapped, fields, tmp_path / "one.csv")
    field_stats(mapped, fields, tmp_path / "strips.csv", rows_per_strip=3)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "strips.csv")
    )


def test_min_mapped_decides_partly_mapped(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    field_stats(mapped, fields, tmp_path / "all.csv", min_mapped=0.2)
    assert by_name(tmp_path / "all.csv").loc["F", "status"] == "not irrigated"
    field_stats(mapped, fields, tmp_path / "strict.csv", min_mapped=1.0)
    strict = by_name(tmp_path / "strict.csv")
    assert strict.loc["A", "status"] == "partly mapped"  # one pixel is nodata
    assert strict.loc["B", "status"] == "not irrigated"
    with pytest.raises(ValueError, match=r"--min-mapped 1.5 is not a share of 0 to 1"):
        field_stats(mapped, fields, tmp_path / "bad.csv", min_mapped=1.5)


def test_without_a_probability_map_mean_prob_is_empty(
    tmp_path: Path, fields: Path
) -> None:
    mapped = write_map(tmp_path / "map.tif", base_map())
    result = field_stats(mapped, fields, tmp_path / "stats.csv")
    assert by_name(tmp_path / "stats.csv")["mean_prob"].isna().all()
    assert "mean_prob is empty: no probability map" in result.summary()


def test_a_probability_map_on_another_grid_is_refused(
    tmp_path: Path, fields: Path
) -> None:
    mapped = write_map(tmp_path / "map.tif", base_map())
    write_probability(
        tmp_path / "map_probability.tif", np.zeros((SIZE, SIZE + 1), np.float32)
    )
    with pytest.raises(ValueError, match=r"is not the map's probability.*21 x 20 px"):
        field_stats(mapped, fields, tmp_path / "stats.csv")
    assert not (tmp_path / "stats.csv").exists()


def test_a_column_of_the_same_name_is_kept_under_another(
    mapped: Path, tmp_path: Path
) -> None:
    fields = write_fields(
        tmp_path / "parcels.gpkg", status=["mine"] * len(FIELDS), lon=[1] * len(FIELDS)
    )
    out = tmp_path / "stats.csv"
    with pytest.warns(
        UserWarning, match=r"at most 10 characters: status as status_1, lon as lon_1\."
    ):
        field_stats(mapped, fields, out)
    table = by_name(out)
    assert table.loc["A", "status"] == "irrigated"
    assert table["status_1"].tolist() == ["mine"] * len(FIELDS)
    assert table["lon_1"].tolist() == [1] * len(FIELDS)


def test_outputs_are_refused_before_any_work(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    before = fields.read_bytes()
    with pytest.raises(ValueError, match=r"is the file --fields reads"):
        field_stats(mapped, fields, fields, overwrite=True)
    with pytest.raises(ValueError, match=r"must end in \.gpkg or \.csv"):
        field_stats(mapped, fields, tmp_path / "stats.shp")
    with pytest.raises(IsADirectoryError, match=r"is a folder"):
        field_stats(mapped, fields, tmp_path)
    theirs = tmp_path / "theirs.csv"
    theirs.write_text("a,b\n1,2\n")
    with pytest.raises(FileExistsError, match=r"is not a file of fields written by"):
        field_stats(mapped, fields, theirs, overwrite=True)
    assert theirs.read_text() == "a,b\n1,2\n"
    assert fields.read_bytes() == before


def test_an_earlier_output_is_replaced_only_with_overwrite(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats.gpkg"
    field_stats(mapped, fields, out)
    with pytest.raises(FileExistsError, match=r"pass --overwrite to replace it"):
        field_stats(mapped, fields, out, min_mapped=1.0)
    assert by_name(out).loc["A", "status"] == "irrigated"
    field_stats(mapped, fields, out, min_mapped=1.0, overwrite=True)
    assert by_name(out).loc["A", "status"] == "partly mapped"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fields_off_the_map_are_refused(mapped: Path, tmp_path: Path) -> None:
    far = write_fields(tmp_path / "far.gpkg", {"G": FIELDS["G"]})
    with pytest.raises(ValueError, match=r"No field of .* overlaps map"):
        field_stats(mapped, far, tmp_path / "stats.csv")


def test_points_and_files_without_crs_are_refused(mapped: Path, tmp_path: Path) -> None:
    points = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy([ORIGIN[0] + 5], [ORIGIN[1] - 5]), crs=MAP_CRS
    )
    points.to_file(tmp_path / "points.gpkg")
    with pytest.raises(ValueError, match=r"holds Point geometries; expected polygons"):
        field_stats(mapped, tmp_path / "points.gpkg", tmp_path / "stats.csv")
    bare = gpd.read_file(write_fields(tmp_path / "parcels.gpkg", crs=MAP_CRS))
    bare = bare.set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        bare.to_file(tmp_path / "bare.shp")
    with pytest.raises(ValueError, match=r"\(layer 'bare'\) has no CRS"):
        field_stats(mapped, tmp_path / "bare.shp", tmp_path / "stats.csv")
    # A GeoJSON is lon/lat unless it names a CRS: metres are not read as such.
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        bare.to_file(tmp_path / "bare.geojson")
    with warnings.catch_warnings():
        # Not "invalid polygons": metres taken for degrees reproject to inf.
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"coordinates \[700000.0, .* are not lon"):
            field_stats(mapped, tmp_path / "bare.geojson", tmp_path / "stats.csv")
    with pytest.raises(FileNotFoundError, match=r"Fields file .*missing\.gpkg"):
        field_stats(mapped, tmp_path / "missing.gpkg", tmp_path / "stats.csv")


def test_layers_are_chosen_or_warned_about(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    far = gpd.read_file(write_fields(tmp_path / "far.gpkg", {"G": FIELDS["G"]}))
    far.to_file(fields, layer="zz_other", driver="GPKG")
    with pytest.warns(UserWarning, match=r"holds 2 vector layers.*'parcels', is read"):
        field_stats(mapped, fields, tmp_path / "first.csv")
    with pytest.raises(ValueError, match=r"No field of"):
        field_stats(mapped, fields, tmp_path / "other.csv", layer="zz_other")
    with pytest.raises(ValueError, match=r"has no vector layer 'nope'"):
        field_stats(mapped, fields, tmp_path / "other.csv", layer="nope")


def test_cli_prints_counts_and_the_file(
    mapped: Path, fields: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stats.gpkg"
    main(
        [
            "field-stats",
            "--map",
            str(mapped),
            "--fields",
            str(fields),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert (
        "Fields: 6 written: 1 irrigated, 2 not irrigated, 1 partly mapped, 1 no data, "
        "1 off map\nIrrigated fields cover 0.16 ha (0.40 acres)"
    ) in printed
    assert f"Wrote {out} (layer 'field_stats', styled by status for QGIS)" in printed


def test_status_is_the_vote_evaluate_scores(tmp_path: Path) -> None:
    """A field mapped in full gets the class evaluate --fields votes it."""
    labels = write_labels(tmp_path / "labels.gpkg")
    mapped = write_map(tmp_path / "map.tif", base_map())
    evaluate_map(mapped, labels, fields=tmp_path / "scored.gpkg")
    field_stats(mapped, labels, tmp_path / "stats.gpkg", min_mapped=0.0)
    scored = gpd.read_file(tmp_path / "scored.gpkg", layer=FIELDS_LAYER)
    stats = gpd.read_file(tmp_path / "stats.gpkg", layer=FIELD_STATS_LAYER)
    stats = stats[stats["CLASS2"].isin(scored["crop_class"])].reset_index(drop=True)
    assert len(stats) == len(scored) == 3
    irrigated = (stats["status"] == "irrigated").astype(int)
    assert irrigated.tolist() == scored["mapped"].tolist()
    assert stats["mapped_ha"].tolist() == scored["scored_ha"].tolist()


def test_overlapping_fields_each_count_their_own_pixels(
    mapped: Path, tmp_path: Path
) -> None:
    # B2 covers the right half of B and 2 columns east of it; B3 the same as B.
    fields = {"B": (0, 10, 4, 14), "B2": (0, 12, 4, 16), "B3": (0, 10, 4, 14)}
    for suffix in (".gpkg", ".geojson"):
        path = tmp_path / f"parcels{suffix}"
        frame = gpd.GeoDataFrame(
            {"name": list(fields)},
            geometry=[pixel_box(rows) for rows in fields.values()],
            crs=MAP_CRS,
        )
        frame.to_file(path)
        field_stats(mapped, path, tmp_path / f"stats{suffix}.csv")
    table = by_name(tmp_path / "stats.gpkg.csv")
    assert list(table.index) == list(fields)
    assert table["mapped_ha"].tolist() == [0.16, 0.16, 0.16]
    # Row 0 of B is irrigated (4 pixels); B2 holds 2 of them.
    assert table["irr_ha"].tolist() == [0.04, 0.02, 0.04]
    # The same but for src_fid: GDAL numbers a GeoPackage's fields from 1, a
    # GeoJSON's from 0.
    geojson = by_name(tmp_path / "stats.geojson.csv")
    assert table["src_fid"].tolist() == [1, 2, 3]
    assert geojson["src_fid"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(
        table.drop(columns="src_fid"), geojson.drop(columns="src_fid")
    )


def test_fields_without_geometry_small_or_invalid_are_written(
    mapped: Path, tmp_path: Path
) -> None:
    x0, y0 = ORIGIN
    # A bow-tie over A's two top rows: rasterio burns both lobes, shapely gives
    # it area 0 unless repaired.
    bowtie = shapely.Polygon(
        [(x0, y0), (x0 + 40, y0 - 20), (x0 + 40, y0), (x0, y0 - 20), (x0, y0)]
    )
    tiny = shapely.box(x0 + 101, y0 - 9, x0 + 104, y0 - 6)  # no pixel centre
    frame = gpd.GeoDataFrame(
        {"name": ["bowtie", "none", "tiny", "A"]},
        geometry=[bowtie, None, tiny, pixel_box(FIELDS["A"])],
        crs=MAP_CRS,
    )
    frame.to_file(tmp_path / "parcels.gpkg")
    with pytest.warns(UserWarning, match=r"1 invalid polygon\(s\) \(e.g. row 1: Self"):
        result = field_stats(mapped, tmp_path / "parcels.gpkg", tmp_path / "s.gpkg")
    table = by_name(tmp_path / "s.gpkg")
    assert list(table.index) == ["bowtie", "none", "tiny", "A"]
    assert table["status"].tolist() == [
        "irrigated",
        "no geometry",
        "too small",
        "irrigated",
    ]
    # The repaired bow-tie: two triangles of 200 m2, holding 4 pixel centres.
    assert table.loc["bowtie", "area_ha"] == 0.04
    assert table.loc["bowtie", "mapped_ha"] == 0.03  # the nodata pixel (0, 0)
    assert result.counts["no geometry"] == 1
    # The file keeps the polygons as they were.
    assert table.loc["bowtie"].geometry.equals(shapely.MultiPolygon([bowtie]))


def test_a_per_patch_map_says_it_is_coarse(tmp_path: Path, fields: Path) -> None:
    mapped = write_map(tmp_path / "map.tif", base_map())
    with rasterio.open(mapped, "r+") as dst:
        dst.update_tags(detail_size="240")
    result = field_stats(mapped, fields, tmp_path / "stats.csv")
    assert (
        "The map is a per-patch model's: one value per 240 m x 240 m cell, so fields "
        "smaller than that take the value of the patch around them"
    ) in result.summary()


def test_summary_holds_the_counts_and_what_made_them(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    # A scheduled job reads the counts from JSON, not from the printed text,
    # and can tell which map they rest on.
    out, summary = tmp_path / "stats.gpkg", tmp_path / "stats.json"
    result = field_stats(mapped, fields, out, summary=summary)
    record = json.loads(summary.read_text())
    assert record["counts"] == result.counts
    assert record["counts"]["irrigated"] == 1
    assert record["n_fields"] == len(FIELDS)
    assert record["irrigated_fields_ha"] == result.irrigated_fields_ha == 0.16
    assert record["irrigated_fields_acres"] == 0.4
    assert (record["map"], record["fields"], record["out"]) == (
        str(mapped.resolve()),
        str(fields.resolve()),
        str(out.resolve()),
    )
    assert record["map_sha256"] == hashlib.sha256(mapped.read_bytes()).hexdigest()
    assert set(record["map_tags"]) >= {"checkpoint_sha256", "imagery_dates"}
    assert record["layer"] == "parcels"
    assert record["min_mapped"] == 0.5
    assert record["has_probability"] is True
    assert record["created"].endswith("+00:00")
    assert record["run_seconds"] >= 0
    assert record["warnings"] == []


def test_summary_is_refused_before_any_work_and_replaced_only_if_ours(
    mapped: Path, fields: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats.gpkg"
    with pytest.raises(ValueError, match=r"--summary .* must end in \.json"):
        field_stats(mapped, fields, out, summary=tmp_path / "stats.txt")
    # A GeoJSON file of fields may end in .json too.
    geojson = tmp_path / "parcels.json"
    gpd.read_file(fields).to_file(geojson, driver="GeoJSON")
    with pytest.raises(ValueError, match=r"is the file --fields reads"):
        field_stats(mapped, geojson, out, summary=geojson)
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"a": 1}')
    with pytest.raises(FileExistsError, match=r"--summary .* is not a summary"):
        field_stats(mapped, fields, out, summary=theirs, overwrite=True)
    assert theirs.read_text() == '{"a": 1}'
    assert not out.exists()
    summary = tmp_path / "stats.json"
    field_stats(mapped, fields, out, summary=summary)
    with pytest.raises(FileExistsError, match=r"pass --overwrite"):
        field_stats(mapped, fields, tmp_path / "other.gpkg", summary=summary)
    field_stats(mapped, fields, out, summary=summary, overwrite=True, min_mapped=1.0)
    assert json.loads(summary.read_text())["counts"]["partly mapped"] > 1


def test_cli_writes_the_summary_it_is_asked_for(
    mapped: Path, fields: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = tmp_path / "stats.csv", tmp_path / "stats.json"
    argv = ["field-stats", "--map", str(mapped), "--fields", str(fields)]
    main([*argv, "--out", str(out), "--summary", str(summary)])
    assert f"Wrote {summary} (the counts and totals as JSON)" in capsys.readouterr().out
    assert json.loads(summary.read_text())["out"] == str(out.resolve())
