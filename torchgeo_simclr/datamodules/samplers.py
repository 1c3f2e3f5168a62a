"""Pixel-grid alignment and samplers: block grids, random draws for any devices."""

import math
from collections.abc import Iterator, Sequence, Sized
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import torch
from lightning.pytorch.utilities import rank_zero_warn
from shapely import Polygon
from torch.utils.data import Sampler
from torchgeo.datasets import GeoDataset, RasterDataset
from torchgeo.samplers import RandomPatchSampler, SpatialSampler

from ..inference.grid import native_bounds

if TYPE_CHECKING:
    from lightning.pytorch import Trainer


def native_origin(dataset: GeoDataset) -> tuple[float, float]:
    """A corner of the imagery's own pixel grid, to anchor patches on.

    torchgeo's bounds, and its samplers' grids, start at the reprojected
    edges of files in other CRSs (tiles of two UTM zones), which fall between
    the pixels of the files in the dataset's CRS: patches anchored there are
    resampled on every read. This is the corner of
    :func:`~torchgeo_simclr.inference.grid.native_bounds`, which maps are
    anchored on, so training, evaluation and maps read the same pixels. On
    imagery in one CRS on one grid it is the corner of torchgeo's bounds.

    Args:
        dataset: the imagery, or a dataset built on it (e.g. an
            :class:`~torchgeo.datasets.IntersectionDataset` with labels):
            its first raster dataset gives the grid.

    Returns:
        ``(x, y)`` of a pixel corner, in the dataset's CRS (the lower-left
        corner of torchgeo's bounds without a raster dataset).
    """
    imagery = _imagery(dataset)
    if imagery is None:
        return float(dataset.bounds[0].start), float(dataset.bounds[1].start)
    left, bottom, _, _ = native_bounds(imagery)
    return left, bottom


def _imagery(dataset: GeoDataset) -> RasterDataset | None:
    """The first raster dataset in *dataset* (itself, or one it combines)."""
    if isinstance(dataset, RasterDataset):
        return dataset
    for part in getattr(dataset, "datasets", []):
        if (found := _imagery(part)) is not None:
            return found
    return None


class NativeRandomPatchSampler(RandomPatchSampler):
    """torchgeo's random patches, snapped to the imagery's own pixel grid.

    :class:`~torchgeo.samplers.RandomPatchSampler` rounds its draws to whole
    pixels from the corner of the footprint's bounds; here from
    :func:`native_origin`, so no patch is resampled where the imagery holds
    files of several CRSs. On imagery in one CRS it draws the same patches.
    """

    def __init__(self, dataset: GeoDataset, **kwargs: Any) -> None:
        """Initialise a new NativeRandomPatchSampler.

        Args:
            dataset: the dataset to sample from.
            **kwargs: arguments of :class:`~torchgeo.samplers.RandomPatchSampler`.
        """
        super().__init__(dataset, **kwargs)
        # Only the rounding to whole pixels reads bounds' lower-left corner.
        self.bounds = (*native_origin(dataset), *self.bounds[2:])


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
        # Each block's grid starts at the block's own corner, not at the
        # footprint's edge, so a patch stays where it is when the footprint
        # changes (e.g. labels that reach further).
        self._grid_bounds = [block.bounds for block in blocks]
        # The grid's corner: on the imagery's own pixels, where maps have theirs.
        self.bounds = (*native_origin(dataset), *self.bounds[2:])
        self._length = sum(1 for _ in self)

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        """Yield the patches of every block in turn.

        Yields:
            ``[xmin:xmax, ymin:ymax]`` in CRS units, on the imagery's own
            pixel grid (see :func:`native_origin`).
        """
        x0, y0 = self.bounds[0], self.bounds[1]
        xres, yres = self.res
        size, step = self.size_px, self.stride_px
        for block, grid in zip(self.blocks, self._grid_bounds, strict=True):
            if block.is_empty:
                continue
            ix0, iy0, _, _ = _pixel_extent(grid, x0, y0, xres, yres)
            _, _, ix1, iy1 = _pixel_extent(block.bounds, x0, y0, xres, yres)
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
    bounds: tuple[float, float, float, float],
    x0: float,
    y0: float,
    xres: float,
    yres: float,
) -> tuple[int, int, int, int]:
    """Whole pixels of the grid at *(x0, y0)* inside *bounds*.

    Returns:
        Column and row of the first and one past the last pixel.
    """
    xmin, ymin, xmax, ymax = bounds
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
    resampled. Each footprint is cut back to the whole pixels it covers, of
    the grid anchored at :func:`native_origin`.

    Args:
        dataset: dataset whose index geometries are shrunk (e.g. an
            :class:`~torchgeo.datasets.IntersectionDataset`).
        grid: dataset on the target pixel grid (e.g. the imagery).
    """
    x0, y0 = native_origin(grid)
    xres, yres = grid.res
    snapped = []
    for geometry in dataset.index.geometry:
        ix0, iy0, ix1, iy1 = _pixel_extent(geometry.bounds, x0, y0, xres, yres)
        box = shapely.box(
            x0 + ix0 * xres, y0 + iy0 * yres, x0 + ix1 * xres, y0 + iy1 * yres
        )
        snapped.append(geometry & box if ix1 > ix0 and iy1 > iy0 else Polygon())
    dataset.index = dataset.index.set_geometry(snapped, crs=dataset.index.crs)
    dataset.index = dataset.index[~dataset.index.geometry.is_empty]


#: Indices :class:`RandomDrawSampler` draws at a time with replacement, as
#: :class:`torch.utils.data.RandomSampler` does, so both draw the same.
DRAW_CHUNK = 32


class RandomDrawSampler(Sampler[int]):
    """*num_samples* random indices of a dataset per epoch, on any number of devices.

    It draws exactly what :class:`torch.utils.data.RandomSampler` with the
    same arguments draws (with replacement: :data:`DRAW_CHUNK` indices at a
    time from :func:`torch.randint`; without: whole permutations, the last
    one cut short), so a run on one device is unchanged. It is not a
    ``RandomSampler`` on purpose: under a distributed strategy Lightning
    replaces a ``RandomSampler`` with a
    :class:`~torch.utils.data.DistributedSampler` over the dataset, which
    takes every item once (no replacement) and ignores *num_samples*, so a
    small labelled subset gave each device less than one batch. Any other
    sampler Lightning wraps in a
    :class:`~lightning.fabric.utilities.distributed.DistributedSamplerWrapper`,
    which splits this sampler's draws over the devices: an epoch keeps
    *num_samples* draws in all (rounded up to a multiple of the devices).
    For the devices to split one list of draws, *generator* must start alike
    on each (``seed_everything`` makes it so).
    """

    def __init__(
        self,
        data: Sized,
        num_samples: int,
        *,
        replacement: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        """Initialise a new RandomDrawSampler.

        Args:
            data: the dataset whose indices are drawn (its length is read at
                each epoch).
            num_samples: indices per epoch.
            replacement: draw each index independently (True), or go through
                permutations of the dataset (False).
            generator: the random generator, advanced by each epoch; None
                seeds a new one from torch's global generator at each epoch.

        Raises:
            ValueError: if *num_samples* is not positive.
        """
        if num_samples <= 0:
            msg = f"num_samples should be a positive integer, not {num_samples}"
            raise ValueError(msg)
        #: The dataset whose indices are drawn.
        self.data = data
        #: Indices per epoch.
        self.num_samples = num_samples
        #: Whether indices are drawn with replacement.
        self.replacement = replacement
        #: The random generator (None: a new one each epoch).
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        """Draw one epoch's indices.

        Yields:
            Indices into the dataset, :attr:`num_samples` of them.
        """
        n = len(self.data)
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        if self.replacement:
            for size in _chunks(self.num_samples, DRAW_CHUNK):
                yield from torch.randint(
                    high=n, size=(size,), dtype=torch.int64, generator=generator
                ).tolist()
        else:
            for size in _chunks(self.num_samples, n):
                yield from torch.randperm(n, generator=generator).tolist()[:size]

    def __len__(self) -> int:
        """Return the number of indices per epoch.

        Returns:
            :attr:`num_samples`.
        """
        return self.num_samples


def sampler_state(sampler: object) -> dict[str, Any] | None:
    """The state of a training sampler's random generator, to checkpoint it.

    Args:
        sampler: torchgeo's random samplers (a NumPy generator) or a
            :class:`RandomDrawSampler` (a torch one); anything else has none.

    Returns:
        ``{"numpy": bit generator state}`` or ``{"torch": ByteTensor}`` (both
        load with ``torch.load(weights_only=True)``), or None.
    """
    generator = getattr(sampler, "generator", None)
    if isinstance(generator, np.random.Generator):
        return {"numpy": generator.bit_generator.state}
    if isinstance(generator, torch.Generator):
        return {"torch": generator.get_state()}
    return None


def restore_sampler_state(sampler: object, state: dict[str, Any]) -> bool:
    """Put a training sampler's generator back where :func:`sampler_state` found it.

    Args:
        sampler: a sampler of the same kind as the one *state* came from.
        state: what :func:`sampler_state` returned.

    Returns:
        Whether it was restored: False, and the sampler left as it is, when
        it keeps no generator of the kind *state* holds (another sampler,
        e.g. after a change of ``label_fraction``).
    """
    generator = getattr(sampler, "generator", None)
    if "numpy" in state and isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state["numpy"]
    elif "torch" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["torch"])
    else:
        return False
    return True


def restore_training_draws(sampler: object, state: dict[str, Any]) -> None:
    """Restore a resumed fit's training sampler, or warn that it draws anew.

    Args:
        sampler: the train dataloader's sampler.
        state: what :func:`sampler_state` returned for the checkpoint.

    Warns:
        UserWarning: on rank 0, if *sampler* is of another kind than the
            checkpoint's (only checkpoints whose training labels cannot be
            compared get this far; others are refused when the fit starts).
    """
    if not restore_sampler_state(sampler, state):
        rank_zero_warn(
            f"The checkpoint's training sampler kept a {', '.join(sorted(state))} "
            f"generator but this run's is a {type(sampler).__name__} without one "
            "(label_fraction decides it), so its training draws start anew "
            "rather than where the checkpoint's stopped.",
            category=UserWarning,
        )


class ResumableDraws:
    """Checkpoint a datamodule's training draws, so a resumed fit draws on.

    A mixin for datamodules whose train dataloader's sampler is their
    ``train_sampler``. Lightning saves :meth:`state_dict` in each checkpoint
    and hands it to :meth:`load_state_dict` for every run given
    ``--ckpt_path`` (test and predict too, which draw nothing); the state is
    applied by :meth:`resume_draws` when a fit builds its train dataloader.
    Augmentations draw from torch's global generator, which is not restored,
    so a resumed fit is not the uninterrupted one to the bit.
    """

    #: A checkpoint's sampler state, for the next train dataloader's sampler.
    _sampler_state: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's random state, which Lightning checkpoints.

        Returns:
            ``{"train_sampler": ...}`` (see :func:`sampler_state`), or empty
            before the datamodule has a training sampler.
        """
        state = sampler_state(getattr(self, "train_sampler", None))
        return {} if state is None else {"train_sampler": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a checkpoint's sampler state for the next train dataloader.

        Args:
            state_dict: what :meth:`state_dict` returned (empty for
                checkpoints of earlier versions, which restore nothing).
        """
        self._sampler_state = state_dict.get("train_sampler")

    def resume_draws(self, sampler: object) -> None:
        """Give a new train dataloader's *sampler* the checkpoint's state, once.

        Args:
            sampler: the sampler (see :func:`restore_training_draws`).
        """
        if self._sampler_state is not None:
            restore_training_draws(sampler, self._sampler_state)
            self._sampler_state = None


def _chunks(total: int, chunk: int) -> list[int]:
    """Sizes of *total* cut into pieces of *chunk*, then what is left (maybe 0).

    The last piece is kept even when empty: ``RandomSampler`` draws it too,
    which advances the generator (a permutation) or not (no integers).
    """
    return [chunk] * (total // chunk) + [total % chunk]


def epoch_draws(
    length: int | None, size: int, batch_size: int, trainer: "Trainer | None"
) -> int:
    """Training draws per epoch from a fixed set of patches.

    Args:
        length: draws asked for (None: *size*).
        size: patches in the set.
        batch_size: patches per batch on each device.
        trainer: the trainer the datamodule is attached to, if any (gives
            the number of devices).

    Returns:
        *length*, raised to one batch per device where it is less: training
        drops a partial batch, so a shorter epoch would train nothing.
    """
    devices = trainer.world_size if trainer is not None else 1
    return max(length or size, batch_size * devices)
