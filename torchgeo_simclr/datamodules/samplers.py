"""Pixel-grid alignment and a grid sampler whose patches stay inside blocks."""

from collections.abc import Iterator, Sequence

import numpy as np
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
        xres, yres = dataset.res
        self.size = (size * xres, size * yres)
        self.stride = ((stride or size) * xres, (stride or size) * yres)
        self.blocks = [block & self.geometry for block in blocks]
        self._length = sum(1 for _ in self)

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        """Yield the patches of every block in turn.

        Yields:
            ``[xmin:xmax, ymin:ymax]`` in CRS units.
        """
        x0, y0 = self.bounds[0], self.bounds[1]
        xres, yres = self.res
        for block in self.blocks:
            if block.is_empty:
                continue
            bxmin, bymin, bxmax, bymax = block.bounds
            # Snap the block's corner up onto the dataset's pixel grid.
            xstart = x0 + np.ceil(round((bxmin - x0) / xres, 6)) * xres
            ystart = y0 + np.ceil(round((bymin - y0) / yres, 6)) * yres
            for y in np.arange(ystart, bymax - self.size[1] + yres / 2, self.stride[1]):
                for x in np.arange(
                    xstart, bxmax - self.size[0] + xres / 2, self.stride[0]
                ):
                    x1, y1 = x + self.size[0], y + self.size[1]
                    if block.covers(shapely.box(x, y, x1, y1)):
                        yield slice(float(x), float(x1)), slice(float(y), float(y1))
