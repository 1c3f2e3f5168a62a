"""Pixel-grid alignment and a grid sampler whose patches stay inside blocks."""

import math
from collections.abc import Iterator, Sequence

import shapely
from shapely import Polygon
from shapely.geometry.base import BaseGeometry
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import SpatialSampler


class BlockGridSampler(SpatialSampler):
    """Patches on a regular grid inside each block, never crossing a block edge.

    torchgeo's :class:`~torchgeo.samplers.GriddedPatchSampler` yields every grid
    cell that touches the region, so evaluation patches could reach into a
    neighbouring training block. This sampler lays a pixel-aligned grid over
    each block on its own and keeps only the patches the block covers.
    """

    #: Grid sampling visits every location once per epoch.
    strategy = "sequential"

    def __init__(
        self,
        dataset: GeoDataset,
        *,
        size: int,
        blocks: Sequence[Polygon],
        stride: int | None = None,
    ) -> None:
        """Initialise a new BlockGridSampler.

        Args:
            dataset: the dataset to sample from (gives the pixel grid).
            size: patch side, pixels.
            blocks: polygons in the dataset's CRS.
            stride: distance between patches, pixels (default: *size*).
        """
        super().__init__(dataset)
        #: Patch side and grid step, pixels.
        self.size_px, self.stride_px = size, stride or size
        #: The blocks cut to the dataset's footprint, in the dataset's CRS.
        self.blocks = [block & self.geometry for block in blocks]
        self._length = sum(1 for _ in self)

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        """Yield the patches of every block in turn.

        Yields:
            ``[xmin:xmax, ymin:ymax]`` in CRS units, on the dataset's pixel grid.
        """
        x0, y0 = self.bounds[0], self.bounds[1]
        xres, yres = self.res
        size, step = self.size_px, self.stride_px
        for block in self.blocks:
            if block.is_empty:
                continue
            ix0, iy0, ix1, iy1 = _pixel_extent(block, x0, y0, xres, yres)
            for iy in range(iy0, iy1 - size + 1, step):
                for ix in range(ix0, ix1 - size + 1, step):
                    x, y = x0 + ix * xres, y0 + iy * yres
                    x1, y1 = x0 + (ix + size) * xres, y0 + (iy + size) * yres
                    if block.covers(shapely.box(x, y, x1, y1)):
                        yield slice(x, x1), slice(y, y1)

    def __len__(self) -> int:
        """Return the number of patches per epoch.

        Returns:
            Patches yielded by one pass of the iterator.
        """
        return self._length


def _pixel_extent(
    geometry: BaseGeometry, x0: float, y0: float, xres: float, yres: float
) -> tuple[int, int, int, int]:
    """Whole pixels of the grid at *(x0, y0)* inside *geometry*'s bounds.

    Returns:
        Column and row of the first and one past the last pixel.
    """
    xmin, ymin, xmax, ymax = geometry.bounds
    # The tolerance absorbs float noise from reprojection and intersection.
    tol = 1e-6
    return (
        math.ceil((xmin - x0) / xres - tol),
        math.ceil((ymin - y0) / yres - tol),
        math.floor((xmax - x0) / xres + tol),
        math.floor((ymax - y0) / yres + tol),
    )


def snap_to_grid(dataset: GeoDataset, grid: GeoDataset) -> None:
    """Shrink *dataset*'s footprints, in place, onto *grid*'s pixel grid.

    Intersecting imagery with label polygons leaves footprints with edges
    anywhere; patches cut from them would fall between pixels and be
    resampled. Each footprint is cut back to the whole pixels it covers.

    Args:
        dataset: dataset whose index geometries are shrunk (e.g. an
            :class:`~torchgeo.datasets.IntersectionDataset`).
        grid: dataset on the target pixel grid (e.g. the imagery).
    """
    x0, y0 = grid.bounds[0].start, grid.bounds[1].start
    xres, yres = grid.res
    snapped = []
    for geometry in dataset.index.geometry:
        ix0, iy0, ix1, iy1 = _pixel_extent(geometry, x0, y0, xres, yres)
        box = shapely.box(
            x0 + ix0 * xres, y0 + iy0 * yres, x0 + ix1 * xres, y0 + iy1 * yres
        )
        snapped.append(geometry & box if ix1 > ix0 and iy1 > iy0 else Polygon())
    dataset.index = dataset.index.set_geometry(snapped, crs=dataset.index.crs)
    dataset.index = dataset.index[~dataset.index.geometry.is_empty]
