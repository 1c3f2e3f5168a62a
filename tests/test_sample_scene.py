import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from conftest import GPKG_1_2, gpkg_version

from torchgeo_simclr.constants import S2_BANDS, S2_NODATA
from torchgeo_simclr.datasets import CentralValleyS2, IrrigationLabels
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.sample.baseline import best_threshold_f1, ndvi_baseline
from torchgeo_simclr.sample.layout import DWR_COLUMNS
from torchgeo_simclr.sample.spectra import COVERS, mean_spectrum

S2_NAME = re.compile(
    r"^S2[ABC]_MSIL2A_(?P<date>\d{8}T\d{6})_N\d{4}_R\d{3}_T(?P<tile>\d{2}[A-Z]{3})"
    r"_\d{8}T\d{6}\.tif$"
)
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DWR_FIXTURE = (
    FIXTURES / "dwr_crop_mapping" / "i15_crop_mapping_2023_provisional_20241127.gdb.zip"
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    """The default sample scene, as `torchgeo-simclr sample-data` writes it."""
    return make_sample_scene(tmp_path_factory.mktemp("sample"))


def test_tiles_are_adjacent_sentinel2_l2a(scene) -> None:
    assert len(scene.image_paths) >= 2
    widths, lefts, rights = 0, [], []
    for path in scene.image_paths:
        match = S2_NAME.match(path.name)
        assert match, path.name
        assert match["date"] == "20230715T184919"
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32610
            assert src.res == (10.0, 10.0)
            assert src.count == 12
            assert src.descriptions == tuple(S2_BANDS)
            assert src.dtypes == ("uint16",) * 12
            assert src.nodata == S2_NODATA
            assert src.height >= 2048
            widths += src.width
            lefts.append(src.bounds.left)
            rights.append(src.bounds.right)
    assert widths >= 2048
    # East edge of each tile is the west edge of the next.
    assert rights[:-1] == lefts[1:]


def test_reflectance_looks_like_summer_farmland(scene) -> None:
    raw = np.concatenate(
        [rasterio.open(path).read() for path in scene.image_paths], axis=2
    )
    # Every pixel is valid data: nodata would show as holes in QGIS.
    assert np.all(raw != S2_NODATA)
    image = raw.astype(np.float64) / 10_000
    red, nir, blue = image[3], image[7], image[1]
    ndvi = (nir - red) / (nir + red)
    # Green crops and bare fields side by side, water, and a few clouds.
    assert np.mean(ndvi > 0.6) > 0.1
    assert np.mean(ndvi < 0.25) > 0.1
    assert np.any(ndvi < 0)
    assert 0.0001 < np.mean(blue > 0.25) < 0.05
    assert 0.01 < np.median(red) < 0.3


def test_labels_follow_the_dwr_schema(scene) -> None:
    info = pyogrio.read_info(scene.labels_path)
    assert info["crs"] == "EPSG:4269"
    assert gpkg_version(scene.labels_path) == GPKG_1_2  # QGIS 3.22 reads it quietly
    assert list(info["fields"]) == list(DWR_COLUMNS)
    fields = gpd.read_file(scene.labels_path)
    assert fields["UniqueID"].is_unique
    # Codes are space-padded to two characters, as DWR publishes them.
    assert {" P", " D", " G", " I", "NR"} <= set(fields["CLASS2"])
    # Field sizes from gardens of houses to section-sized fields, in acres.
    assert fields["ACRES"].median() > 5
    assert fields["ACRES"].max() > 60
    # Centre pivots: polygons that fill well under their bounding box.
    area = fields.to_crs(32610).geometry
    fill = area.area / area.envelope.area
    assert (fill < 0.85).sum() >= 1


@pytest.mark.skipif(not DWR_FIXTURE.exists(), reason="../shared/fixtures absent")
def test_schema_matches_the_published_dwr_file() -> None:
    info = pyogrio.read_info(f"/vsizip/{DWR_FIXTURE}")
    published = [c for c in info["fields"] if c in DWR_COLUMNS]
    assert published == list(DWR_COLUMNS)


def test_datasets_read_the_scene(scene) -> None:
    images = CentralValleyS2(scene.root)
    labels = IrrigationLabels(scene.labels_path, crs=images.crs)
    dataset = images & labels
    x, y, _ = dataset.bounds
    sample = dataset[x.start : x.start + 1280, y.start : y.start + 1280]
    assert sample["image"].shape == (12, 128, 128)
    assert {0, 1} <= set(sample["mask"].unique().tolist())


def test_one_ndvi_threshold_is_not_enough(scene) -> None:
    result = ndvi_baseline(scene.root)
    assert result.pixels > 2_000_000
    assert result.above
    assert result.f1 <= 0.85


def test_nominal_ndvi_of_the_docs_follows_the_covers() -> None:
    # docs/sample_scene.md tabulates each cover's NDVI at the middle of its
    # fraction ranges: a changed endmember or range must change the table.
    band = {name: i for i, name in enumerate(S2_BANDS)}

    def ndvi(cover: str) -> float:
        spectrum = mean_spectrum(cover)
        red, nir = spectrum[band["B04"]], spectrum[band["B08"]]
        return round((nir - red) / (nir + red), 2)

    table = (Path(__file__).parents[1] / "docs" / "sample_scene.md").read_text()
    checked = 0
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != 5 or not set(cells[0].split(", ")) <= COVERS.keys():
            continue
        values = [ndvi(cover) for cover in cells[0].split(", ")]
        shown = re.fullmatch(r"(-?[\d.]+)(?:-| to )(-?[\d.]+)", cells[3])
        if shown:
            assert (min(values), max(values)) == tuple(map(float, shown.groups()))
        else:
            assert values == [float(value) for value in cells[3].split(", ")]
        checked += 1
    assert checked >= 14


def test_best_threshold_f1_finds_the_cut() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    result = best_threshold_f1(scores, labels)
    # Calling >= 0.3 irrigated: 3 true positives, 1 false positive -> F1 6/7.
    assert result.f1 == pytest.approx(6 / 7)
    assert result.threshold == pytest.approx(0.3)
    flipped = best_threshold_f1(-scores, labels)
    assert flipped.f1 == pytest.approx(6 / 7)
    assert not flipped.above
    with pytest.raises(ValueError, match="both classes"):
        best_threshold_f1(scores, np.ones(6))


def test_same_seed_same_scene(tmp_path: Path) -> None:
    a = make_sample_scene(tmp_path / "a", size=256, seed=3)
    b = make_sample_scene(tmp_path / "b", size=256, seed=3)
    c = make_sample_scene(tmp_path / "c", size=256, seed=4)
    for pa, pb, pc in zip(a.image_paths, b.image_paths, c.image_paths, strict=True):
        with rasterio.open(pa) as fa, rasterio.open(pb) as fb, rasterio.open(pc) as fc:
            assert np.array_equal(fa.read(), fb.read())
            assert not np.array_equal(fa.read(), fc.read())
    la, lb = gpd.read_file(a.labels_path), gpd.read_file(b.labels_path)
    assert la.geometry.geom_equals(lb.geometry).all()
    assert la.drop(columns="geometry").equals(lb.drop(columns="geometry"))


def test_existing_scene_is_never_overwritten_by_accident(tmp_path: Path) -> None:
    first = make_sample_scene(tmp_path, size=128, seed=1)
    before = first.labels_path.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_sample_scene(tmp_path, size=128, seed=2)
    assert first.labels_path.read_bytes() == before
    make_sample_scene(tmp_path, size=128, seed=2, overwrite=True)
    assert first.labels_path.read_bytes() != before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize(("size", "tiles"), [(32, 1), (255, 2), (256, 5)])
def test_bad_size_or_tiles(tmp_path: Path, size: int, tiles: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        make_sample_scene(tmp_path, size=size, tiles=tiles)
    assert not tmp_path.joinpath("crop_mapping.gpkg").exists()
