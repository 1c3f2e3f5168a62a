"""A PNG quick look of a class map beside the imagery, read from overviews.

The figure is meant to be read on its own, e.g. in a water board's packet:
its title says what the map shows (the probability threshold), from which
Sentinel-2 dates and where (the bbox in longitude and latitude), both panels
show the same ground, a north arrow sits on the map (with a scale bar in
metres when the map's CRS is projected: a lon/lat map has none, its degrees of
longitude being of no one length), and the legend names the hatched grey of
pixels without data (outside the bbox, under masked clouds or beyond the
imagery), which the page's white would hide.
"""

import math
import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import rasterio.features
import rasterio.transform
import rasterio.warp
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.enums import Resampling

from ..constants import MAP_CLASSES, MAP_NODATA, S2_NODATA, UNKNOWN_DATE
from ..datasets import CentralValleyS2
from ..datasets.display import MASK_CMAP, natural_colour
from ..lonlat import bbox_polygon, lonlat_extent
from ..outputs import partial_path

#: Pixels per inch the quick look is drawn and saved at.
DPI = 150

#: Fewest pixels of a panel's longer side: a smaller map is enlarged (nearest
#: neighbour, so its pixels stay sharp) to leave room for the text.
MIN_PANEL_PX = 600

#: Fill, hatch and hatch colour of pixels without data: light grey with
#: diagonal lines, apart from the page's white and from both classes' colours,
#: also in greyscale and for colour-blind readers.
NODATA_FILL, NODATA_HATCH, NODATA_LINES = "#e6e6e6", "////", "#7f7f7f"

#: Inches around the panels: left and right, between panels, above (title and
#: panel titles) and below (legend and footnote).
MARGIN, GAP, TOP, BOTTOM = 0.15, 0.3, 1.15, 0.75

#: Lon/lat CRS of the title's bbox, and of a ``bbox`` tag without a
#: ``bbox_crs`` tag (predict's default ``--bbox-crs``).
LONLAT = CRS.from_epsg(4326)

#: How the footnote writes a projected CRS's linear unit (any other unit: by
#: the name the CRS gives it).
UNIT_ABBREVIATIONS = {"metre": "m", "foot": "ft", "US survey foot": "US survey ft"}


def quicklook(
    classes: str | Path,
    out: str | Path,
    root: str | Path | None = None,
    max_side: int = 1024,
    overwrite: bool = False,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    start: date | str | None = None,
    end: date | str | None = None,
) -> Path:
    """Draw a class map, next to natural colour imagery when *root* is given.

    See :func:`quicklook_figure` for what the figure shows. Each map pixel
    read is drawn as about one pixel of the PNG (a map of fewer than
    :data:`MIN_PANEL_PX` pixels is enlarged).

    Args:
        classes: a class map written by ``predict`` (``PATH.tif``).
        out: the PNG to write.
        root: the Sentinel-2 directory the map was made from (optional).
        max_side: longest side of the drawn map, pixels.
        overwrite: replace an existing *out*.
        mask_clouds: show the pixels cloud masks call cloudy as nodata, as the
            map read them (``predict --no-cloud-mask``: False).
        cloud_buffer: metres by which masked clouds grow, as for the map.
        start: first sensing day read, inclusive, as for the map (``YYYY-MM-DD``;
            default: no limit).
        end: last sensing day read, inclusive, as for the map.

    Returns:
        The PNG's path.

    Raises:
        FileExistsError: if *out* exists and *overwrite* is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{str(out)!r} already exists; pass --overwrite to replace it."
        raise FileExistsError(msg)
    figure = quicklook_figure(
        classes,
        root=root,
        max_side=max_side,
        mask_clouds=mask_clouds,
        cloud_buffer=cloud_buffer,
        start=start,
        end=end,
    )
    partial = partial_path(out)
    try:
        # "tight" only crops or widens the canvas (a long title over a narrow
        # map); it keeps the drawing's scale, one map pixel a PNG pixel.
        figure.savefig(
            partial, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1
        )
        os.replace(partial, out)
    finally:
        plt.close(figure)
        partial.unlink(missing_ok=True)
    return out


def quicklook_figure(
    classes: str | Path,
    root: str | Path | None = None,
    max_side: int = 1024,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    start: date | str | None = None,
    end: date | str | None = None,
) -> Figure:
    """The quick look of a class map as a matplotlib Figure.

    Both layers are read at a reduced resolution (the COG's overviews serve
    the class map), so memory stays at about *max_side* squared pixels
    whatever the map's size. The title is built from the map's tags
    (``threshold``, ``imagery_dates``, ``bbox`` and ``bbox_crs``, lon/lat
    when missing); the footnote names the file, its CRS, the drawn pixel size
    in the CRS's unit and, for a per-patch model, the side of the square one
    map value stands for (``detail_size``). A scale bar, in metres, is drawn
    only when the map's CRS is projected.

    Args:
        classes: a class map written by ``predict`` (``PATH.tif``).
        root: the Sentinel-2 directory the map was made from (optional): the
            imagery is drawn left of the map, over the same ground.
        max_side: longest side of the drawn map, pixels.
        mask_clouds: show the pixels cloud masks call cloudy as nodata.
        cloud_buffer: metres by which masked clouds grow.
        start: first sensing day read, inclusive (``YYYY-MM-DD``).
        end: last sensing day read, inclusive.

    Returns:
        The figure: one axes per panel (``"Sentinel-2 natural colour"`` when
        *root* is given, then ``"Irrigation map"``), a north arrow on the
        map and, for a projected CRS, a scale bar, and a legend of the
        classes and of no data.
    """
    with rasterio.open(classes) as src:
        step = max(1, math.ceil(max(src.width, src.height) / max_side))
        shape = (math.ceil(src.height / step), math.ceil(src.width / step))
        bounds, crs, tags = src.bounds, src.crs, src.tags()
        image = None
        if root is not None:
            imagery = CentralValleyS2(
                root,
                crs=crs.to_wkt(),
                res=src.res[0] * step,
                bands=CentralValleyS2.rgb_bands,
                mask_clouds=mask_clouds,
                cloud_buffer=cloud_buffer,
                start=start,
                end=end,
            )
            sample = imagery[bounds.left : bounds.right, bounds.bottom : bounds.top]
            image = sample["image"].float().numpy()
            shape = (image.shape[-2], image.shape[-1])
        data = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        native = float(src.res[0])
    outside = _outside_bbox(tags, crs, bounds, shape)
    panels: list[tuple[str, npt.NDArray[Any]]] = []
    if image is not None:
        rgba = np.dstack([natural_colour(image), np.ones(shape, np.float32)])
        # Outside the bbox and where no scene has data: the no-data hatch.
        rgba[..., 3][outside | np.all(image == S2_NODATA, axis=0)] = 0
        panels.append(("Sentinel-2 natural colour", rgba))
    panels.append(("Irrigation map", np.ma.masked_equal(data, MAP_NODATA)))
    figure, axes = _panel_layout(len(panels), shape)
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    for axis, (title, layer) in zip(axes, panels, strict=True):
        axis.set_facecolor(NODATA_FILL)
        axis.patch.set_hatch(NODATA_HATCH)
        axis.patch.set_hatchcolor(NODATA_LINES)
        if layer.ndim == 3:
            axis.imshow(layer, extent=extent, interpolation="nearest")
        else:
            axis.imshow(
                layer,
                cmap=MASK_CMAP,
                vmin=0,
                vmax=1,
                extent=extent,
                interpolation="nearest",
            )
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(title, fontsize=10)
    units = crs.linear_units_factor[1] if crs.is_projected else None
    width_m = (bounds.right - bounds.left) * (units or 0.0)
    if units is not None and width_m > 0:
        _scale_bar(axes[-1], width_m, units)
    _north_arrow(axes[-1], crs, bounds)
    figure.suptitle(
        _title(tags, crs, bounds),
        y=1 - 0.1 / figure.get_figheight(),
        va="top",
        fontsize=11,
    )
    no_data = "No data / outside bbox" if "bbox" in tags else "No data"
    handles = [
        *(Patch(facecolor=colour, label=name) for name, colour in MAP_CLASSES.values()),
        Patch(
            facecolor=NODATA_FILL,
            hatch=NODATA_HATCH,
            hatchcolor=NODATA_LINES,
            edgecolor="none",
            label=no_data,
        ),
    ]
    height = figure.get_figheight()
    figure.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, (BOTTOM - 0.05) / height),
        ncol=len(handles),
        frameon=False,
        fontsize=9,
    )
    figure.text(
        0.5,
        0.08 / height,
        _footnote(Path(classes).name, tags, crs, bounds, shape, native),
        ha="center",
        va="bottom",
        fontsize=7,
        color="#404040",
    )
    return figure


def _panel_layout(count: int, shape: tuple[int, int]) -> tuple[Figure, list[Axes]]:
    """A figure of *count* panels side by side, one map pixel a PNG pixel."""
    height, width = shape
    scale = max(1.0, MIN_PANEL_PX / max(height, width))
    panel_w, panel_h = width * scale / DPI, height * scale / DPI
    fig_w = 2 * MARGIN + count * panel_w + (count - 1) * GAP
    fig_h = BOTTOM + panel_h + TOP
    figure = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
    axes = [
        figure.add_axes(
            (
                (MARGIN + i * (panel_w + GAP)) / fig_w,
                BOTTOM / fig_h,
                panel_w / fig_w,
                panel_h / fig_h,
            )
        )
        for i in range(count)
    ]
    return figure, axes


def _tagged_bbox(tags: dict[str, str]) -> tuple[list[float], CRS] | None:
    """The map's ``bbox`` tag and its CRS (``bbox_crs``, else lon/lat), or None."""
    if "bbox" not in tags:
        return None
    bbox = [float(v) for v in tags["bbox"].split(",")]
    return bbox, CRS.from_user_input(tags.get("bbox_crs", LONLAT))


def _outside_bbox(
    tags: dict[str, str], crs: CRS, bounds: BoundingBox, shape: tuple[int, int]
) -> npt.NDArray[np.bool_]:
    """``[H, W]``: True where a drawn pixel's centre lies outside the map's bbox."""
    tagged = _tagged_bbox(tags)
    if tagged is None:
        return np.zeros(shape, bool)
    polygon = bbox_polygon(*tagged, crs)
    transform = rasterio.transform.from_bounds(*bounds, shape[1], shape[0])
    outside: npt.NDArray[np.bool_] = rasterio.features.geometry_mask(
        [polygon], out_shape=shape, transform=transform
    )
    return outside


def _title(tags: dict[str, str], crs: CRS, bounds: BoundingBox) -> str:
    """What the map shows, from which imagery and where, in three lines."""
    threshold = tags.get("threshold")
    what = "Irrigated land" + (
        f" (probability > {threshold})" if threshold is not None else ""
    )
    dates = [day for day in tags.get("imagery_dates", "").split(",") if day]
    tagged = _tagged_bbox(tags)
    if tagged is not None:
        where = "bbox " + _lonlat_text(*tagged)
    else:
        where = "extent " + _lonlat_text(list(bounds), crs)
    return f"{what}\nSentinel-2 imagery of {_dates_title(dates)}\n{where}"


def _dates_title(dates: Sequence[str]) -> str:
    """E.g. ``2023-07-15``, ``2023-07-15 and 2023-08-14``, or a range with a count."""
    known = [day for day in dates if day != UNKNOWN_DATE]
    undated = " and undated scenes" if len(known) < len(dates) else ""
    if not known:
        return "unrecorded dates" if not dates else "undated scenes"
    if len(known) == 1:
        return known[0] + undated
    if len(known) == 2:
        return f"{known[0]} and {known[1]}{undated}"
    return (
        f"{known[0]} to {known[-1]} ({len(dates)} dates, the newest with data "
        "in each pixel)"
    )


def _lonlat_text(bbox: Sequence[float], crs: CRS) -> str:
    """A bbox as ``lon A to B, lat C to D (WGS 84)``, to about 10 m (4 decimals)."""
    west, south, east, north = lonlat_extent(bbox, pyproj.CRS.from_user_input(crs))
    return f"lon {west:.10g} to {east:.10g}, lat {south:.10g} to {north:.10g} (WGS 84)"


def _footnote(
    name: str,
    tags: dict[str, str],
    crs: CRS,
    bounds: BoundingBox,
    shape: tuple[int, int],
    native: float,
) -> str:
    """The file, its CRS and the drawn pixel size; a per-patch model's cell.

    Sizes are in the CRS's own unit: e.g. ``m``, ``US survey ft`` (EPSG:2227),
    or ``deg`` for a lon/lat CRS.
    """
    units = (
        UNIT_ABBREVIATIONS.get(crs.linear_units, crs.linear_units)
        if crs.is_projected
        else "deg"
    )
    drawn = (bounds.right - bounds.left) / shape[1]
    text = f"{name}, {crs.to_string()}; drawn at {drawn:.3g} {units} a pixel"
    detail = float(tags.get("detail_size", native))
    if detail > native:
        text += f"; the model gives one value per {detail:g} x {detail:g} {units} cell"
    return text


def _scale_bar(axis: Axes, width_m: float, units: float) -> None:
    """A bar of 1, 2 or 5 x 10^k metres, about a quarter of the map's width."""
    target = width_m / 4
    power = 10 ** math.floor(math.log10(target))
    length = next(m * power for m in (5, 2, 1) if m * power <= target)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    low, high = axis.get_ylim()
    bar = AnchoredSizeBar(
        axis.transData,
        length / units,
        label,
        loc="lower left",
        pad=0.3,
        borderpad=0.5,
        sep=3,
        frameon=True,
        size_vertical=abs(high - low) / 150,
        color="black",
        fontproperties=FontProperties(size=8),
    )
    axis.add_artist(bar)


def _north_arrow(axis: Axes, crs: CRS, bounds: BoundingBox) -> None:
    """An arrow to true north at the top right (grid north turns off it in UTM)."""
    x = (bounds.left + bounds.right) / 2
    y = (bounds.bottom + bounds.top) / 2
    (lon,), (lat,) = rasterio.warp.transform(crs, LONLAT, [x], [y])
    (x1,), (y1,) = rasterio.warp.transform(LONLAT, crs, [lon], [lat + 0.01])
    angle = math.atan2(x1 - x, y1 - y)
    dx, dy = math.sin(angle), math.cos(angle)
    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    head = (0.93, 0.86)
    axis.annotate(
        "",
        xy=head,
        xycoords="axes fraction",
        xytext=(-22 * dx, -22 * dy),
        textcoords="offset points",
        arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5},
    )
    axis.annotate(
        "N",
        xy=head,
        xycoords="axes fraction",
        xytext=(3 * dx, 3 * dy),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=9,
        fontweight="bold",
        path_effects=halo,
    )
