"""Crop maps of one year are not silently used to label imagery of another."""

import warnings
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from conftest import fake_dwr_gpkg, fake_s2_multiband
from test_evaluate import base_map, write_labels, write_map

from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datasets import IrrigationLabels
from torchgeo_simclr.datasets.survey_years import other_years, survey_year
from torchgeo_simclr.evaluate import evaluate_map


def test_the_year_comes_from_dwrs_file_or_layer_names(tmp_path: Path) -> None:
    assert survey_year("i15_crop_mapping_2023_provisional_20241127.gdb.zip") == 2023
    assert survey_year("/x/i15_Crop_Mapping_2019.gdb/") == 2019
    frame = gpd.GeoDataFrame(
        {"CLASS2": ["G"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326"
    )
    path = tmp_path / "fields.gpkg"
    frame.to_file(path, layer="i15_Crop_Mapping_2018")
    assert survey_year(str(path)) == 2018
    assert survey_year(str(path), "other") is None
    assert survey_year("crop_mapping.gpkg") is None
    assert survey_year("crop_mapping_20241127.gpkg") is None  # a date, no year


def test_the_message_names_both_years_and_stays_quiet_when_they_meet() -> None:
    why = other_years([2023], "'l.gpkg'", ["2019-07-16", "unknown"], "--start/--end")
    assert why is not None
    assert "'l.gpkg' are DWR crop mapping of 2023" in why
    assert "sensed on 2019-07-16" in why
    assert "imagery of 2023 (--start/--end)" in why
    assert other_years([2023], "l", ["2019-07-16", "2023-07-15"], "x") is None
    assert other_years([], "l", ["2019-07-16"], "x") is None
    assert other_years([2023], "l", ["unknown"], "x") is None


@pytest.mark.parametrize(("year", "warned"), [(2019, True), (2023, False)])
def test_fit_warns_when_the_labels_survey_another_year(
    tmp_path: Path, year: int, warned: bool
) -> None:
    # A 2019 crop map labelled 2023 imagery without a word (the fake scene
    # is of 2023-07-15): crop rotation makes many of those labels wrong.
    fake_s2_multiband(tmp_path / "sentinel2")
    name = f"i15_crop_mapping_{year}.gpkg"
    fake_dwr_gpkg(tmp_path, name=name)
    assert IrrigationLabels(tmp_path / name).years == {year}
    dm = CentralValleyDataModule(
        root=str(tmp_path),
        labels=name,
        patch_size=32,
        block_size=64,
        batch_size=4,
        length=8,
        stats_patches=4,
        cache_dir=str(tmp_path / "cache"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    messages = [str(w.message) for w in caught if "crop mapping of" in str(w.message)]
    if warned:
        assert len(messages) == 1
        assert (
            f"DWR crop mapping of {year}, but the imagery was sensed on 2023-07-15"
            in messages[0]
        )
        assert "--data.init_args.start/end" in messages[0]
    else:
        assert messages == []


def test_evaluate_warns_when_the_map_is_of_another_year(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "i15_crop_mapping_2022.gpkg")
    map_path = write_map(tmp_path / "map.tif", base_map())
    with rasterio.open(map_path, "r+") as dst:
        dst.update_tags(imagery_dates="2023-07-15")
    with pytest.warns(UserWarning, match="crop mapping of 2022, but the imagery"):
        evaluate_map(map_path, labels)
    with rasterio.open(map_path, "r+") as dst:
        dst.update_tags(imagery_dates="2022-08-01")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_map(map_path, labels)
