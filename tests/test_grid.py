"""The output grid of maps and indexes stays on the imagery's own pixels."""

from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_ORIGIN, FAKE_PRODUCT, fake_s2_multiband
from pyproj import CRS, Transformer

from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.inference.grid import output_grid


def on_grid(value: float, origin: float, res: float = 10.0) -> bool:
    return ((value - origin) / res).is_integer()


def test_a_scene_in_another_utm_zone_leaves_the_grid_on_the_native_pixels(
    tmp_path: Path,
) -> None:
    # Tiles of zones 10 and 11 side by side, as at -120 degrees: the zone-11
    # scene's reprojected edges fall between zone-10 pixels, and a grid
    # anchored there would resample the zone-10 scene everywhere.
    fake_s2_multiband(tmp_path)
    fake_s2_multiband(
        tmp_path,
        name=FAKE_PRODUCT.replace("T10SFG", "T11SKB") + ".tif",
        origin=(169790.0, 4104000.0),
        crs="EPSG:32611",
    )
    data = CentralValleyS2(tmp_path)
    assert data.crs == CRS.from_epsg(32610)
    assert not on_grid(data.bounds[1].stop, FAKE_ORIGIN[1])  # reprojected edge
    bbox = (700500.0, 4098000.0, 702500.0, 4099500.0)
    grid = output_grid(data, bbox, "EPSG:32610")
    assert (grid.transform.c, grid.transform.f) == (700500.0, 4099500.0)
    assert (grid.width, grid.height) == (200, 150)
    # The whole imagery's grid: on the zone-10 pixels, around every scene.
    whole = output_grid(data)
    xmin, ymin, xmax, ymax = whole.bounds
    for value, origin in ((xmin, 0), (xmax, 0), (ymin, 1), (ymax, 1)):
        assert on_grid(value, FAKE_ORIGIN[origin])
    x, y = data.bounds[0], data.bounds[1]
    assert xmin <= x.start
    assert ymin <= y.start
    assert xmax >= x.stop
    assert ymax >= y.stop
    assert xmax - xmin < x.stop - x.start + 10


def test_a_bbox_reaching_past_the_imagery_names_the_bounds_of_the_map(
    tmp_path: Path,
) -> None:
    # The warning gave the bbox cut to the imagery before it was widened to
    # whole pixels, so its numbers matched neither the bbox nor the map.
    fake_s2_multiband(tmp_path)
    bbox = (FAKE_ORIGIN[0] - 500.0, 4099001.5, 700201.0, 4101000.0)
    with pytest.warns(UserWarning, match="reaches past the imagery") as record:
        grid = output_grid(CentralValleyS2(tmp_path), bbox, "EPSG:32610")
    assert grid.bounds == (700000.0, 4099000.0, 700210.0, 4100000.0)
    assert f"{list(grid.bounds)} in EPSG:32610" in str(record[0].message)


@pytest.mark.parametrize(
    ("bbox", "crs", "ending"),
    [
        (
            (702500.0, 4098000.0, 700500.0, 4099500.0),
            "EPSG:32610",
            "with min < max in EPSG:32610: min x 702500 > max x 700500; "
            "pass --bbox 700500 4098000 702500 4099500.",
        ),
        (
            (-120.7, 37.0, -120.7, 37.1),
            "EPSG:4326",
            "with min < max in EPSG:4326: min lon -120.7 = max lon -120.7; "
            "pass e.g. --bbox -120.75 36.95 -120.55 37.1 for lon/lat.",
        ),
        (
            (float("nan"), 37.0, -120.6, 37.1),
            "EPSG:4326",
            "with min < max in EPSG:4326: a value is not a finite number; pass e.g.",
        ),
    ],
)
def test_a_malformed_bbox_says_what_is_wrong_and_the_order_meant(
    tmp_path: Path, bbox: tuple[float, ...], crs: str, ending: str
) -> None:
    # Every malformed bbox got "min < max" and the same lon/lat example, even
    # one in metres whose min and max were only the wrong way round.
    fake_s2_multiband(tmp_path)
    with pytest.raises(ValueError, match=r"is not \(xmin, ymin, xmax, ymax\)") as info:
        output_grid(CentralValleyS2(tmp_path), bbox, crs)
    assert ending in str(info.value)


def test_neighbouring_lonlat_bboxes_share_no_pixel_and_miss_none(
    tmp_path: Path,
) -> None:
    # A lon/lat bbox is no rectangle on the UTM grid: the maps of two bboxes
    # sharing a meridian overlapped by a column or more, and their areas,
    # added up, counted that land twice.
    fake_s2_multiband(tmp_path)
    data = CentralValleyS2(tmp_path)
    to_lonlat = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    x0, y0 = FAKE_ORIGIN
    west, south, east, north = to_lonlat.transform_bounds(
        x0 + 300.0, y0 - 2200.0, x0 + 2200.0, y0 - 300.0
    )
    middle = (west + east) / 2
    owned: dict[str, set[tuple[int, int]]] = {}
    for name, bbox in (
        ("whole", (west, south, east, north)),
        ("west", (west, south, middle, north)),
        ("east", (middle, south, east, north)),
    ):
        grid = output_grid(data, bbox)
        rows, cols = np.nonzero(grid.inside(0, grid.height))
        owned[name] = set(
            zip(rows + grid.offset[0], cols + grid.offset[1], strict=True)
        )
        # Every pixel kept has its centre in the bbox; the grid's rectangle
        # around the bbox holds pixels that are not kept.
        centres_x = grid.transform.c + (cols + 0.5) * grid.res
        centres_y = grid.transform.f - (rows + 0.5) * grid.res
        lon, lat = to_lonlat.transform(centres_x, centres_y)
        assert ((lon >= bbox[0]) & (lon < bbox[2])).all()
        assert ((lat >= bbox[1]) & (lat < bbox[3])).all()
        assert len(owned[name]) < grid.width * grid.height
    assert not owned["west"] & owned["east"]
    assert owned["west"] | owned["east"] == owned["whole"]


def test_a_bbox_in_the_imagery_crs_keeps_every_pixel_of_its_grid(
    tmp_path: Path,
) -> None:
    fake_s2_multiband(tmp_path)
    bbox = (700500.0, 4098000.0, 702500.0, 4099500.0)
    grid = output_grid(CentralValleyS2(tmp_path), bbox, "EPSG:32610")
    assert grid.footprint is None
    assert grid.inside(0, grid.height).all()


def test_a_lonlat_bbox_between_pixel_centres_is_refused(tmp_path: Path) -> None:
    fake_s2_multiband(tmp_path)
    to_lonlat = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    x0, y0 = FAKE_ORIGIN
    # 2 m x 2 m around a pixel corner: no centre inside.
    bbox = to_lonlat.transform_bounds(x0 + 999.0, y0 - 1001.0, x0 + 1001.0, y0 - 999.0)
    with pytest.raises(ValueError, match="holds no pixel centre") as info:
        output_grid(CentralValleyS2(tmp_path), bbox)
    assert "pass a bbox at least one pixel across" in str(info.value)
