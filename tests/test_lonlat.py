"""Lon/lat bboxes and extents: the checks' messages and the extents' rounding."""

import pytest
from pyproj import CRS, Transformer

from torchgeo_simclr.lonlat import (
    LONLAT,
    check_latitudes,
    check_lonlat_bbox,
    lonlat_extent,
)

#: A box in UTM zone 10N metres, about -120.7 37.0 degrees.
UTM_BOUNDS = (700000.0, 4100000.0, 701000.0, 4101000.0)
UTM = CRS.from_epsg(32610)


def test_a_bbox_given_as_an_iterator_is_named_in_the_message() -> None:
    # The values were read off the iterator, which then named no value at all.
    with pytest.raises(ValueError, match="look swapped") as info:
        check_lonlat_bbox(iter([37.0, -121.0, 38.0, -120.0]))
    assert str(info.value).startswith("bbox=[37.0, -121.0, 38.0, -120.0] is not")
    assert check_lonlat_bbox(iter([-121, 37, -120, 38])) == (-121, 37, -120, 38)


def test_an_inverted_bbox_names_the_pair_out_of_order() -> None:
    # The fix is the user's own bbox in order, not a generic example.
    with pytest.raises(ValueError, match="min lon -120 > max lon -121") as info:
        check_lonlat_bbox((-120.0, 38.0, -121.0, 37.0), "--bbox")
    assert str(info.value) == (
        "--bbox -120 38 -121 37 is not (min lon, min lat, max lon, max lat) in "
        "EPSG:4326 degrees with min < max: min lon -120 > max lon -121 and min "
        "lat 38 > max lat 37; pass --bbox -121 37 -120 38."
    )
    with pytest.raises(ValueError, match=r"with min < max: min lat 38 > max lat 37;"):
        check_lonlat_bbox((-121.0, 38.0, -120.0, 37.0))


@pytest.mark.parametrize(
    ("bbox", "ending"),
    [
        (
            (-120.8, 37.05, -120.8, 37.06),
            "with min < max: min lon -120.8 = max lon -120.8; pass e.g. "
            "--bbox -121.5 36.5 -120.5 37.5.",
        ),
        (
            (float("nan"), 37.0, -120.0, 38.0),
            "with min < max: a value is not a finite number; pass e.g. "
            "--bbox -121.5 36.5 -120.5 37.5.",
        ),
        (
            UTM_BOUNDS,
            "with min < max: these look like projected coordinates (metres), not "
            "degrees; convert them to lon/lat, e.g. --bbox -121.5 36.5 -120.5 37.5.",
        ),
        (
            (-200.0, 37.0, -190.0, 38.0),
            "with min < max: longitude -200 is beyond +-180 and longitude -190 is "
            "beyond +-180; pass e.g. --bbox -121.5 36.5 -120.5 37.5.",
        ),
        ((-121.0, 37.0, -120.0), "with min < max: it has 3 values, not 4; pass e.g."),
        (
            (-13430000.0, 4440000.0, -13450000.0, 4460000.0),
            "these look like projected coordinates (metres), not degrees;",
        ),
        (
            (239.3, 37.03, 239.14, 37.15),
            "longitude 239.3 is beyond +-180 and longitude 239.14 is beyond +-180: "
            "longitudes counted 0-360 degrees; pass them in +-180: "
            "--bbox -120.86 37.03 -120.7 37.15.",
        ),
        (
            (179.5, -17.0, -179.5, -16.0),
            "(a bbox across the antimeridian, which is not supported: split it in "
            "two at 180 degrees); pass --bbox 179.5 -17 180 -16, then "
            "--bbox -180 -17 -179.5 -16.",
        ),
    ],
)
def test_a_bbox_that_is_not_one_says_what_is_wrong(
    bbox: tuple[float, ...], ending: str
) -> None:
    # A point, a nan or metres all got "min < max" and a generic example.
    with pytest.raises(ValueError, match="is not \\(min lon") as info:
        check_lonlat_bbox(bbox, "--bbox")
    assert ending in str(info.value)


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ((37.1, -120.7), "pass --lonlat -120.7 37.1."),
        ((37.1, -120.8, 37.2, -120.7), "pass --lonlat -120.8 37.1 -120.7 37.2."),
        ((700000.0, 4100000.0), "--lonlat takes degrees of longitude and latitude."),
    ],
)
def test_latitudes_beyond_90_get_the_swapped_values(
    values: tuple[float, ...], fix: str
) -> None:
    with pytest.raises(ValueError, match="has a latitude beyond") as info:
        check_latitudes("--lonlat", values, LONLAT)
    assert str(info.value).endswith(fix)
    check_latitudes("--lonlat", values, UTM)  # metres are not checked


def test_lonlat_extent_rounds_to_the_decimals_asked() -> None:
    to_lonlat = Transformer.from_crs(UTM, LONLAT, always_xy=True)
    exact = list(to_lonlat.transform_bounds(*UTM_BOUNDS))
    assert lonlat_extent(UTM_BOUNDS, UTM, None) == exact
    assert lonlat_extent(UTM_BOUNDS, UTM) == [round(v, 4) for v in exact]
    assert lonlat_extent(UTM_BOUNDS, UTM, 5) == [round(v, 5) for v in exact]
    assert lonlat_extent((1, 2, 3, 4), None) == [1.0, 2.0, 3.0, 4.0]
