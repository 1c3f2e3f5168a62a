"""What a reader of ``predict --quicklook``'s PNG sees, without the PNG's map.

A water-board member gets the picture alone: its title must say what the map
shows, from which dates and where; the legend must name the hatched no-data
grey; a scale bar must give the distances; both panels show the same ground.
"""

from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
from conftest import FAKE_CRS, FAKE_ORIGIN, FAKE_SIZE, fake_s2_multiband
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from torchgeo_simclr.inference.quicklook import quicklook, quicklook_figure
from torchgeo_simclr.lonlat import bbox_polygon


def lonlat_bbox(shrink: float) -> tuple[float, float, float, float]:
    """The fake scene's lon/lat bounds, *shrink* of each side cut off."""
    side = FAKE_SIZE * 10.0
    west, south, east, north = rasterio.warp.transform_bounds(
        FAKE_CRS,
        "EPSG:4326",
        FAKE_ORIGIN[0],
        FAKE_ORIGIN[1] - side,
        FAKE_ORIGIN[0] + side,
        FAKE_ORIGIN[1],
    )
    dx, dy = (east - west) * shrink, (north - south) * shrink
    return (
        round(west + dx, 4),
        round(south + dy, 4),
        round(east - dx, 4),
        round(north - dy, 4),
    )


def class_map(
    path: Path,
    tags: dict[str, str],
    size: int = FAKE_SIZE,
    res: float = 10.0,
    crs: str = FAKE_CRS,
    origin: tuple[float, float] = FAKE_ORIGIN,
) -> Path:
    """A class map (by default over the fake scene): irrigated west half, *tags*.

    As predict writes them, pixels outside a ``bbox`` tag's bbox are nodata.
    *res* is in the unit of *crs*, *origin* the top-left corner in it.
    """
    data = np.zeros((size, size), np.uint8)
    data[:, : size // 2] = 1
    transform = from_origin(*origin, res, res)
    if "bbox" in tags:
        bbox = [float(v) for v in tags["bbox"].split(",")]
        polygon = bbox_polygon(bbox, CRS.from_epsg(4326), CRS.from_string(crs))
        outside = rasterio.features.geometry_mask(
            [polygon], out_shape=data.shape, transform=transform
        )
        data[outside] = 255
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs=crs,
        transform=transform,
        nodata=255,
    ) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags)
    return path


#: Tags of a map of one date, cut to a bbox inside the fake scene.
TAGS = {
    "threshold": "0.37",
    "imagery_dates": "2023-07-15",
    "bbox": ",".join(repr(v) for v in lonlat_bbox(0.2)),
    "bbox_crs": "EPSG:4326",
    "detail_size": "10",
}


@pytest.fixture
def figure(tmp_path: Path) -> Iterator[Figure]:
    """The quick look of a bbox map beside the fake imagery."""
    imagery = tmp_path / "s2"
    fake_s2_multiband(imagery)
    drawn = quicklook_figure(class_map(tmp_path / "map.tif", TAGS), root=imagery)
    yield drawn
    plt.close(drawn)


def test_the_title_says_what_when_and_where(figure: Figure) -> None:
    # It said "map.tif" only.
    title = figure.get_suptitle()
    assert "Irrigated land (probability > 0.37)" in title
    assert "Sentinel-2 imagery of 2023-07-15" in title
    west, south, east, north = lonlat_bbox(0.2)
    assert f"bbox lon {west!r} to {east!r}, lat {south!r} to {north!r}" in title


def test_the_legend_names_no_data_and_outside_the_bbox(figure: Figure) -> None:
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["Not irrigated", "Irrigated", "No data / outside bbox"]
    # Drawn hatched, unlike the page's white.
    handle = legend.legend_handles[-1]
    assert isinstance(handle, Patch)
    assert handle.get_hatch() == "////"


def test_a_scale_bar_in_metres_sits_on_the_map(figure: Figure) -> None:
    # 2,560 m wide: a quarter is 640 m, so a 500 m bar.
    bars = [a for a in figure.axes[-1].artists if isinstance(a, AnchoredSizeBar)]
    assert [bar.txt_label.get_text() for bar in bars] == ["500 m"]
    assert [text.get_text() for text in figure.axes[-1].texts] == ["", "N"]


def test_both_panels_show_the_same_ground(figure: Figure) -> None:
    # The imagery showed its whole rectangle beside a map cut to the bbox.
    image_axes, map_axes = figure.axes
    assert image_axes.get_title() == "Sentinel-2 natural colour"
    assert map_axes.get_title() == "Irrigation map"
    assert image_axes.get_xlim() == map_axes.get_xlim()
    assert image_axes.get_ylim() == map_axes.get_ylim()
    alpha = np.asarray(image_axes.images[0].get_array())[..., 3]
    assert alpha[0, 0] == 0  # outside the bbox: the no-data hatch shows
    assert alpha[FAKE_SIZE // 2, FAKE_SIZE // 2] == 1


def test_dates_and_extent_without_a_bbox(tmp_path: Path) -> None:
    path = class_map(
        tmp_path / "map.tif",
        {"threshold": "0.5", "imagery_dates": "2023-07-15,2023-07-20,2023-08-14"},
    )
    drawn = quicklook_figure(path)
    try:
        title = drawn.get_suptitle()
        (legend,) = drawn.legends
        labels = [text.get_text() for text in legend.get_texts()]
    finally:
        plt.close(drawn)
    assert "2023-07-15 to 2023-08-14 (3 dates" in title
    assert "extent lon -120." in title
    assert labels[-1] == "No data"


def test_the_png_draws_a_map_pixel_as_about_one_png_pixel(tmp_path: Path) -> None:
    # A 1000 px map was read at 1000 px, then drawn at about 420 px per panel.
    path = class_map(tmp_path / "map.tif", TAGS, size=1000, res=2.56)
    png = quicklook(path, tmp_path / "map_quicklook.png")
    with Image.open(png) as image:
        width, _ = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert 1000 <= width < 1100
    # The strip outside the bbox, west of the map's frame, is hatched grey,
    # not the page's white.
    row = pixels[pixels.shape[0] // 2].astype(int)
    frame = int(np.argmax(row.sum(axis=1) < 150))
    assert row[:frame].min() > 250  # the page
    outside = row[frame + 3 : frame + 150]
    assert outside.max() < 250
    assert (outside.max(axis=1) - outside.min(axis=1)).max() == 0  # grey


def drawn(path: Path) -> tuple[str, str, list[str]]:
    """The title, footnote and scale bar labels of *path*'s quick look."""
    figure = quicklook_figure(path)
    try:
        footnote = figure.texts[-1]  # after the title
        bars = [a for a in figure.axes[-1].artists if isinstance(a, AnchoredSizeBar)]
        labels = [bar.txt_label.get_text() for bar in bars]
        return figure.get_suptitle(), footnote.get_text(), labels
    finally:
        plt.close(figure)


def test_a_lon_lat_map_has_no_scale_bar_and_sizes_in_degrees(tmp_path: Path) -> None:
    # A degree of longitude has no one length: no bar, rather than a wrong one.
    path = class_map(
        tmp_path / "lonlat.tif",
        {"imagery_dates": "2023-07-15"},
        size=40,
        res=0.001,
        crs="EPSG:4326",
        origin=(-120.5, 37.0),
    )
    title, footnote, bars = drawn(path)
    assert bars == []
    assert "extent lon -120.5 to -120.46, lat 36.96 to 37 (WGS 84)" in title
    assert footnote == "lonlat.tif, EPSG:4326; drawn at 0.001 deg a pixel"
    png = quicklook(path, tmp_path / "lonlat.png")
    with Image.open(png) as image:
        assert min(image.size) >= 600


def test_a_one_pixel_map_is_drawn_with_a_scale_bar(tmp_path: Path) -> None:
    path = class_map(tmp_path / "one.tif", {}, size=1)
    title, footnote, bars = drawn(path)
    assert bars == ["2 m"]  # a quarter of 10 m
    assert "extent lon -120.7" in title
    assert footnote == "one.tif, EPSG:32610; drawn at 10 m a pixel"
    png = quicklook(path, tmp_path / "one.png")
    with Image.open(png) as image:
        assert min(image.size) >= 600  # enlarged, not a dot


def test_sizes_in_a_feet_crs_are_in_feet_and_the_bar_in_metres(tmp_path: Path) -> None:
    # EPSG:2227 (California zone 3) is in US survey feet: the footnote said
    # "drawn at 30 m a pixel" for 30 ft.
    path = class_map(
        tmp_path / "feet.tif",
        {"detail_size": "240"},
        size=100,
        res=30.0,
        crs="EPSG:2227",
        origin=(6_000_000.0, 2_100_000.0),
    )
    _, footnote, bars = drawn(path)
    assert footnote == (
        "feet.tif, EPSG:2227; drawn at 30 US survey ft a pixel; the model gives "
        "one value per 240 x 240 US survey ft cell"
    )
    # 3,000 ft is 914 m: a quarter is 229 m, so a 200 m bar.
    assert bars == ["200 m"]


def test_a_bbox_tag_without_its_crs_is_lon_lat(tmp_path: Path) -> None:
    # A hand-tagged map (predict writes both tags) raised KeyError: 'bbox_crs'.
    tags = {key: value for key, value in TAGS.items() if key != "bbox_crs"}
    path = class_map(tmp_path / "map.tif", tags)
    figure = quicklook_figure(path)
    try:
        title = figure.get_suptitle()
        (legend,) = figure.legends
        labels = [text.get_text() for text in legend.get_texts()]
    finally:
        plt.close(figure)
    west, south, east, north = lonlat_bbox(0.2)
    assert f"bbox lon {west!r} to {east!r}, lat {south!r} to {north!r}" in title
    assert labels[-1] == "No data / outside bbox"
