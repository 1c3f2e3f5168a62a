"""CentralValleyDataModule's bbox in another CRS than lon/lat (``bbox_crs``)."""

from pathlib import Path

import pytest
import shapely
from conftest import (
    FAKE_CRS,
    FAKE_ORIGIN,
    cli_error_line,
    fake_dwr_gpkg,
    fake_s2_multiband,
)
from pyproj import CRS, Transformer

from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.lonlat import bbox_polygon

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    fake_s2_multiband(tmp_path / "sentinel2")
    fake_dwr_gpkg(tmp_path)
    return tmp_path


def make(scene: Path, **kwargs: object) -> CentralValleyDataModule:
    defaults: dict[str, object] = {
        "root": str(scene),
        "patch_size": 16,
        "block_size": 32,
        "batch_size": 4,
        "length": 8,
        "stats_patches": 4,
        "cache_dir": str(scene / "cache"),
    }
    return CentralValleyDataModule(**(defaults | kwargs))  # type: ignore[arg-type]


def patches(dm: CentralValleyDataModule, split: str) -> list[tuple[float, ...]]:
    return [(x.start, y.start, x.stop, y.stop) for x, y in dm.grid_sampler(split)]


def western_half(scene: Path) -> tuple[float, float, float, float]:
    """A lon/lat bbox over the western half of the fake scene."""
    dm = make(scene)
    dm.setup("fit")
    xmin, ymin, xmax, ymax = dm.dataset.index.geometry.union_all().bounds
    to_lonlat = Transformer.from_crs(FAKE_CRS, "EPSG:4326", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(xmin, ymin, xmax, ymax)
    return west - 0.01, south - 0.01, (west + east) / 2, north + 0.01


def test_a_bbox_in_the_imagery_crs_selects_the_region_of_its_lon_lat_bbox(
    scene: Path,
) -> None:
    # The training region could only be given in lon/lat, though predict,
    # evaluate and embed take --bbox-crs.
    lonlat = western_half(scene)
    to_utm = Transformer.from_crs("EPSG:4326", FAKE_CRS, always_xy=True)
    utm = to_utm.transform_bounds(*lonlat)
    by_degrees = make(scene, bbox=lonlat)
    by_metres = make(scene, bbox=utm, bbox_crs=FAKE_CRS)
    for dm in (by_degrees, by_metres):
        dm.setup("fit")
    assert by_metres.region_area == by_degrees.region_area
    for split in ("train", "val", "test"):
        assert by_metres.split_blocks[split].equals(by_degrees.split_blocks[split])
        assert patches(by_metres, split) == patches(by_degrees, split)
    # The labels are read over the same region.
    assert by_metres.label_dataset is not None
    assert by_degrees.label_dataset is not None
    assert len(by_metres.label_dataset.features) == len(
        by_degrees.label_dataset.features
    )
    assert by_metres.label_polygons() == by_degrees.label_polygons()


def test_a_bbox_in_california_albers_clips_to_the_rectangle_around_it(
    scene: Path,
) -> None:
    to_albers = Transformer.from_crs("EPSG:4326", "EPSG:3310", always_xy=True)
    albers = to_albers.transform_bounds(*western_half(scene))
    dm = make(scene, bbox=albers, bbox_crs="EPSG:3310")
    dm.setup("fit")
    to_utm = Transformer.from_crs("EPSG:3310", FAKE_CRS, always_xy=True)
    around = shapely.box(*to_utm.transform_bounds(*albers))
    assert dm.image_dataset is not None
    footprint = dm.image_dataset.index.geometry.union_all()
    assert dm.region_area == pytest.approx((around & footprint).area)
    assert 0.3 * footprint.area < dm.region_area < 0.8 * footprint.area
    for blocks in dm.split_blocks.values():
        assert around.buffer(1e-6).contains(blocks)


def test_an_unknown_bbox_crs_is_one_sentence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match=r"^--data\.init_args\.bbox_crs 'EPSG:99999' "):
        CentralValleyDataModule(bbox_crs="EPSG:99999")
    argv = ["fit", "--config", str(CONF / "simclr_quickstart.yaml")]
    err = cli_error_line([*argv, "--data.init_args.bbox_crs", "UTM10"], capsys)
    assert err.endswith(
        "--data.init_args.bbox_crs 'UTM10' is not a CRS that pyproj knows; pass e.g. "
        "EPSG:4326 for lon/lat, EPSG:32610 for UTM zone 10N metres or "
        "EPSG:3310 for California Albers metres."
    )


@pytest.mark.parametrize(
    ("bbox", "bbox_crs", "message"),
    [
        (
            # Metres given as lon/lat: the fix is their CRS, not converting them.
            (700000.0, 4097440.0, 701280.0, 4100000.0),
            "EPSG:4326",
            "these look like projected coordinates (metres); give their CRS, e.g. "
            f"--data.init_args.bbox_crs {FAKE_CRS} if they are in the imagery's CRS.",
        ),
        (
            # Lon/lat given in UTM: near the CRS's origin, far off the imagery.
            (-120.8, 37.0, -120.7, 37.05),
            FAKE_CRS,
            "misses the imagery, but read as lon/lat degrees it lies over it; leave "
            "out --data.init_args.bbox_crs (lon/lat is the default)",
        ),
        (
            (701280.0, 4097440.0, 700000.0, 4100000.0),
            FAKE_CRS,
            f"with min < max in {FAKE_CRS} (--data.init_args.bbox_crs): min x "
            "701280 > max x 700000; pass [700000, 4097440, 701280, 4100000].",
        ),
    ],
    ids=["metres as lon/lat", "degrees as metres", "min > max"],
)
def test_a_bbox_in_the_wrong_units_or_order_says_what_to_pass(
    scene: Path, bbox: tuple[float, ...], bbox_crs: str, message: str
) -> None:
    dm = make(scene, bbox=bbox, bbox_crs=bbox_crs)
    with pytest.raises(ValueError, match="bbox") as info:
        dm.setup("fit")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_lon_lat_bbox_reads_the_labels_of_its_whole_region(tmp_path: Path) -> None:
    # The region is the UTM rectangle around the lon/lat bbox, but the labels
    # were read in the lon/lat bbox alone: a field in the rectangle's corner
    # was unlabelled, and a UTM bbox of the same region trained on more labels.
    fake_s2_multiband(tmp_path / "sentinel2")
    x0, y0 = FAKE_ORIGIN
    inner = (x0 + 600, y0 - 2000, x0 + 2000, y0 - 600)
    to_lonlat = Transformer.from_crs(FAKE_CRS, "EPSG:4326", always_xy=True)
    lonlat = to_lonlat.transform_bounds(*inner)
    to_utm = Transformer.from_crs("EPSG:4326", FAKE_CRS, always_xy=True)
    xmin, ymin, xmax, ymax = to_utm.transform_bounds(*lonlat)
    quad = bbox_polygon(lonlat, CRS.from_user_input("EPSG:4326"), CRS(FAKE_CRS))
    corners = [
        shapely.box(x, y, x + 5, y + 5)
        for x, y in [
            (xmin, ymin),
            (xmax - 5, ymin),
            (xmin, ymax - 5),
            (xmax - 5, ymax - 5),
        ]
    ]
    outside = [c for c in corners if not quad.intersects(c)]
    assert outside, "no corner of the rectangle lies outside the lon/lat bbox"
    fields = [("P", inner), *(("P", c.bounds) for c in outside)]
    fake_dwr_gpkg(tmp_path, fields=fields)
    by_degrees = make(tmp_path, bbox=lonlat)
    by_metres = make(tmp_path, bbox=(xmin, ymin, xmax, ymax), bbox_crs=FAKE_CRS)
    for dm in (by_degrees, by_metres):
        dm.setup("fit")
        assert dm.label_dataset is not None
        assert len(dm.label_dataset.features) == len(fields)
