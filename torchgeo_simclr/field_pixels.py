"""The pixels of a class map that each field holds, counted per field.

:class:`FieldPixels` reads a class map (and its probability map) in strips of
whole rows and adds up, for every field, the area of the pixels whose centre it
holds, of those with map data, of those mapped irrigated, and their
probability. Fields that overlap (:func:`overlapping`) are counted again one by
one, so each counts every pixel it holds, also those it shares.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS
from tqdm import tqdm

from .constants import AREA_DECIMALS, IRRIGATED, M2_PER_ACRE, M2_PER_HA, MAP_NODATA
from .map_pixels import (
    area_ha,
    pixel_range,
    rasterise_ids,
    read_classes,
    row_pixel_ha,
    strips,
)

#: Decimals of the shares and the mean probability.
SHARE_DECIMALS: Final[int] = 4


def overlapping(shapes: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """The fields whose interior meets another field's.

    Their pixels are burnt onto the map once, each to one field, so these are
    counted again one by one.

    Args:
        shapes: the fields, ``[N]`` (None for none).

    Returns:
        Their indices, sorted.
    """
    tree = shapely.STRtree(shapes)
    first, second = tree.query(shapes, predicate="intersects")
    other = first != second
    first, second = first[other], second[other]
    inner = shapely.relate_pattern(shapes[first], shapes[second], "2********")
    return np.unique(first[inner])


def pixel_window(src: Any, shape: Any) -> rasterio.windows.Window:
    """The smallest window of whole map pixels that holds a shape's pixels.

    Args:
        src: the open map.
        shape: a geometry (or a box of several) in the map's CRS that meets
            the map.

    Returns:
        The window, clipped to the map.
    """
    xmin, ymin, xmax, ymax = (
        shapely.box(*shapely.total_bounds(shape))
        .intersection(shapely.box(*src.bounds))
        .bounds
    )
    left, top = float(src.transform.c), float(src.transform.f)
    xres, yres = float(src.transform.a), float(-src.transform.e)
    col0, col1 = pixel_range(xmin - left, xmax - left, xres, src.width)
    row0, row1 = pixel_range(top - ymax, top - ymin, yres, src.height)
    return rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)


class FieldPixels:
    """Per-field pixel areas and probability sums over a class map."""

    def __init__(self, src: Any, probability: Any, name: str, crs: CRS, n: int) -> None:
        """Start with zero sums for *n* fields.

        Args:
            src: the open class map.
            probability: the open probability map on its grid, or None.
            name: the map path, for messages.
            crs: the map's CRS.
            n: number of fields.
        """
        #: The class map.
        self.src = src
        #: The probability map, or None.
        self.prob_src = probability
        #: The map path, for messages.
        self.name = name
        #: The map's CRS.
        self.crs = crs
        #: Area of the pixels whose centre each field holds, hectares, ``[N]``.
        self.inside_ha = np.zeros(n)
        #: Area of those with map data, hectares, ``[N]``.
        self.mapped_ha = np.zeros(n)
        #: Area of those mapped irrigated, hectares, ``[N]``.
        self.irrigated_ha = np.zeros(n)
        #: Sum of the probability of each field's mapped pixels, ``[N]``.
        self.probability = np.zeros(n)
        #: Mapped pixels of each field with a probability, ``[N]``.
        self.probability_px = np.zeros(n, dtype=np.int64)

    def add_strips(
        self,
        shapes: npt.NDArray[Any],
        on_map: npt.NDArray[np.bool_],
        rows: int,
        progress: bool,
    ) -> None:
        """Count every field's pixels, reading the map in strips.

        A pixel shared by fields that overlap is counted for the last of them
        only; :meth:`recount` counts those fields again.

        Args:
            shapes: the fields in the map's CRS, ``[N]`` (None for none).
            on_map: which of them meet the map, ``[N]``.
            rows: map rows per strip.
            progress: show a progress bar over the map's rows.
        """
        window = pixel_window(self.src, shapes[on_map])
        tree = shapely.STRtree(shapes)
        bar = tqdm(
            total=window.height, desc="field stats", unit="row", disable=not progress
        )
        with bar:
            for strip in strips(window, rows):
                transform = self.src.window_transform(strip)
                hits = tree.query(
                    shapely.box(*rasterio.windows.bounds(strip, self.src.transform)),
                    predicate="intersects",
                )
                ids = rasterise_ids(
                    shapes, hits, (strip.height, strip.width), transform
                )
                self._add(strip, ids)
                bar.update(strip.height)

    def recount(self, index: int, shape: Any) -> None:
        """Count one field's pixels again, on its own.

        Args:
            index: the field's index.
            shape: the field in the map's CRS.
        """
        for sums in (self.inside_ha, self.mapped_ha, self.irrigated_ha):
            sums[index] = 0.0
        self.probability[index], self.probability_px[index] = 0.0, 0
        if not shapely.intersects(shape, shapely.box(*self.src.bounds)):
            return
        window = pixel_window(self.src, shape)
        inside = rasterio.features.geometry_mask(
            [shape],
            out_shape=(window.height, window.width),
            transform=self.src.window_transform(window),
            invert=True,
        )
        self._add(window, np.where(inside, index, -1).astype(np.int32))

    def _add(self, window: rasterio.windows.Window, ids: npt.NDArray[np.int32]) -> None:
        """Add the pixels of a window of the map to the fields that hold them.

        Args:
            window: the pixels.
            ids: the field holding each pixel's centre, -1 for none,
                ``[window.height, window.width]``.
        """
        n = self.inside_ha.size
        classes = read_classes(self.src, window, self.name)
        pixel_ha = row_pixel_ha(
            self.src.window_transform(window), window.height, self.crs
        )
        held = ids >= 0
        self.inside_ha += np.bincount(
            ids[held], weights=pixel_ha[np.nonzero(held)[0]], minlength=n
        )
        mapped = held & (classes != MAP_NODATA)
        rows = np.nonzero(mapped)[0]
        owner = ids[mapped]
        self.mapped_ha += np.bincount(owner, weights=pixel_ha[rows], minlength=n)
        irrigated = classes[mapped] == IRRIGATED
        self.irrigated_ha += np.bincount(
            owner[irrigated], weights=pixel_ha[rows][irrigated], minlength=n
        )
        if self.prob_src is not None:
            value = self.prob_src.read(1, window=window, out_dtype=np.float64)[mapped]
            known = value >= 0
            self.probability += np.bincount(
                owner[known], weights=value[known], minlength=n
            )
            self.probability_px += np.bincount(owner[known], minlength=n)

    def columns(
        self,
        shapes: npt.NDArray[Any],
        on_map: npt.NDArray[np.bool_],
        min_mapped: float,
    ) -> dict[str, npt.NDArray[Any]]:
        """The measured columns of every field, ``status`` to ``mapped_shr``.

        Args:
            shapes: the fields in the map's CRS, ``[N]`` (None for none).
            on_map: which of them meet the map, ``[N]``.
            min_mapped: share of its pixels a field needs mapped for a class.

        Returns:
            Column name -> values, ``[N]`` each (NaN where null).
        """
        area = area_ha(shapes, self.crs)
        # A field reaching past the map: its pixels there count as without data.
        beyond = area_ha(
            shapely.difference(shapes, shapely.box(*self.src.bounds)), self.crs
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self.irrigated_ha / self.mapped_ha
            mean = self.probability / self.probability_px
            mapped_share = self.mapped_ha / (self.inside_ha + np.nan_to_num(beyond))
        mapped = self.mapped_ha > 0
        status = np.where(share > 0.5, "irrigated", "not irrigated").astype(object)
        status[mapped & (mapped_share < min_mapped)] = "partly mapped"
        status[~mapped] = "no data"
        status[self.inside_ha == 0] = "too small"
        status[~on_map] = "off map"
        status[shapely.is_missing(shapes)] = "no geometry"
        acres = M2_PER_HA / M2_PER_ACRE
        return {
            "status": status,
            "irr_share": np.round(np.where(mapped, share, np.nan), SHARE_DECIMALS),
            "mean_prob": np.round(
                np.where(self.probability_px > 0, mean, np.nan), SHARE_DECIMALS
            ),
            "irr_ha": np.round(self.irrigated_ha, AREA_DECIMALS),
            "irr_ac": np.round(self.irrigated_ha * acres, AREA_DECIMALS),
            "mapped_ha": np.round(self.mapped_ha, AREA_DECIMALS),
            "area_ha": area,
            "area_ac": np.round(area * acres, AREA_DECIMALS),
            "mapped_shr": np.round(
                np.where(self.inside_ha > 0, mapped_share, np.nan), SHARE_DECIMALS
            ),
        }
