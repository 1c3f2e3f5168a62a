"""Central Valley Sentinel-2 (+ DWR labels) for pretraining and fine-tuning."""

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from matplotlib.figure import Figure
from pyproj import CRS, Transformer
from shapely import MultiPolygon
from shapely.geometry.base import BaseGeometry
from torch import Tensor
from torch.utils.data import DataLoader, SequentialSampler
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import GeoDataset, IntersectionDataset

from ..constants import IGNORE_INDEX
from ..datasets import CentralValleyS2, IrrigationLabels, resolve_label_path
from ..datasets.dates import index_dates
from ..datasets.sentinel2 import check_bands
from ..datasets.survey_years import other_years
from ..days import dates_note, iso_day, parse_days
from ..lonlat import (
    LONLAT,
    bbox_fault,
    check_lonlat_bbox,
    in_degrees,
    lonlat_extent,
    parse_bbox_crs,
)
from ..patch_labels import patch_labels
from .augment import make_views, set_augmentations
from .blocks import spatial_blocks
from .fractions import PatchDataset, draw_labelled_subset, grid_patch_labels
from .options import (
    check_batch_size,
    check_label_fraction,
    check_min_labelled,
    check_patch_size,
    check_split_fractions,
    save_plain_hyperparameters,
)
from .samplers import (
    BlockGridSampler,
    NativeRandomPatchSampler,
    RandomDrawSampler,
    ResumableDraws,
    epoch_draws,
    snap_to_grid,
)
from .statistics import cache_key, cached_band_statistics
from .workers import raster_worker

#: Labelled training patches below which a label_fraction under 1 is
#: warned about: a pool this small is likely labels drawn by hand, all wanted.
SMALL_POOL = 100


def imagery_extent(dataset: GeoDataset) -> tuple[float, float, float, float]:
    """A dataset's lon/lat extent plus 0.001 degrees (about 100 m).

    Labels are read only there: a statewide DWR file (some 400,000 polygons) is
    filtered by GDAL while it is read.

    Args:
        dataset: the imagery.

    Returns:
        ``(min lon, min lat, max lon, max lat)``, degrees.
    """
    bounds = dataset.index.geometry.union_all().bounds
    west, south, east, north = lonlat_extent(bounds, dataset.crs)
    return padded((west, south, east, north))


def padded(
    extent: tuple[float, float, float, float],
) -> tuple[float, float, float, float]:
    """A lon/lat extent plus 0.001 degrees (about 100 m) each way.

    Args:
        extent: ``(min lon, min lat, max lon, max lat)``, degrees.

    Returns:
        The wider extent, kept within +-180 and +-90 degrees.
    """
    west, south, east, north = extent
    pad = 0.001
    return (
        max(west - pad, -180.0),
        max(south - pad, -90.0),
        min(east + pad, 180.0),
        min(north + pad, 90.0),
    )


class CentralValleyDataModule(ResumableDraws, GeoDataModule):
    """Sentinel-2 patches, optionally with irrigation masks, in disjoint blocks.

    The region (all imagery, or *bbox*) is cut into square blocks of
    *block_size* pixels that are dealt at random to train / val / test, so no
    patch of one split overlaps a patch of another. Training draws random
    patches inside the train blocks; val and test walk a grid inside theirs.

    Bands are normalised with a per-band mean and standard deviation computed
    from training patches (cached in ``stats/`` under *cache_dir*). On the
    device, after transfer, training batches (and validation batches when
    ``num_views >= 2``) get augmented views from
    :class:`~torchgeo_simclr.transforms.SimCLRViews`.

    Samples: ``image`` float32 ``[B, C, H, W]`` (normalised), ``mask`` int64
    ``[B, H, W]`` when labels are given, ``valid`` bool ``[B, H, W]`` (the
    pixels of ``image`` with data), ``views`` ``[V, B, C, H, W]`` when
    ``num_views >= 2`` (with their masks ``view_masks`` ``[V, B, H, W]``), and
    torchgeo's ``bounds`` and ``transform``.
    """

    def __init__(
        self,
        root: str = "data",
        labels: str | None = "crop_mapping.gpkg",
        bbox: tuple[float, float, float, float] | None = None,
        bbox_crs: str = "EPSG:4326",
        bands: list[str] | None = None,
        patch_size: int = 120,
        batch_size: int = 32,
        length: int | None = None,
        num_workers: int = 0,
        block_size: int = 512,
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        split_buffer: int = 0,
        seed: int = 0,
        class_column: str = "CLASS2",
        class_map: dict[str, int] | None = None,
        augmentations: list[str] | None = None,
        ops_per_view: int = 2,
        num_views: int = 2,
        augmentation_kwargs: dict[str, dict[str, Any]] | None = None,
        stats_patches: int = 64,
        cache_dir: str | None = None,
        label_fraction: float | None = None,
        label_seed: int = 0,
        unlabeled: bool = False,
        in_memory: bool = False,
        mask_clouds: bool = True,
        cloud_buffer: float = 0.0,
        start: date | str | None = None,
        end: date | str | None = None,
        labels_layer: str | None = None,
        min_labelled: float = 0.5,
    ) -> None:
        """Initialise a new CentralValleyDataModule.

        Args:
            root: directory searched (recursively) for Sentinel-2 L2A files in
                any layout :class:`~torchgeo_simclr.datasets.CentralValleyS2`
                reads.
            labels: label polygons: DWR's crop-mapping file or your own
                (GDB zip, GeoPackage, Shapefile, GeoJSON, GeoParquet; any CRS),
                with *class_column* and *class_map* for other codes; land
                without a polygon is unlabelled, not "not irrigated". A
                relative path is looked up under *root*; None for unlabeled
                pretraining.
            bbox: region of interest ``(xmin, ymin, xmax, ymax)`` in *bbox_crs*:
                ``(min lon, min lat, max lon, max lat)`` degrees by default
                (default: all imagery). A bbox in another CRS than the
                imagery's is reprojected to the rectangle around it in the
                imagery's CRS.
            bbox_crs: CRS of *bbox*, anything pyproj reads, e.g.
                ``EPSG:32610`` (UTM zone 10N metres) or ``EPSG:3310``
                (California Albers metres); lon/lat by default.
            bands: band names to load (default: all 12, in the standard order).
            patch_size: patch side, pixels (10 m each).
            batch_size: patches per batch.
            length: random training patches per epoch (default: about as many
                as fit side by side in the train blocks).
            num_workers: data loading worker processes.
            block_size: side of the split blocks, pixels.
            split_fractions: share of blocks for train, val and test, each
                above 0, summing to 1.
            split_buffer: least distance from the train blocks to the val and
                test blocks, pixels. Blocks touch at 0 (the default), so a
                field crossing a block edge can be both trained on and scored;
                a buffer about one field wide keeps such fields out of
                training.
            seed: seed of the block assignment and of the statistics' patches.
            class_column: label file column holding the class code: DWR's
                (``CLASS2``) or your own.
            class_map: class code -> mask value (0 not irrigated, 1
                irrigated, 255 ignored): overrides of the DWR defaults for a
                DWR class column (``CLASS1`` to ``CLASS4``), the whole map for
                your own column, e.g. ``{"S": 1, "N": 0}`` (required there).
            augmentations: names of the enabled augmentation ops (default:
                all nine).
            ops_per_view: ops drawn per view and sample.
            num_views: augmented views per patch: 2 for contrastive
                pretraining, 1 for supervised training, 0 for none.
            augmentation_kwargs: per-op keyword arguments, e.g.
                ``{"rotation": {"right_angles": True}}``.
            stats_patches: training patches read to compute band statistics.
            cache_dir: where band statistics are cached (default:
                ``$XDG_CACHE_HOME/torchgeo-simclr``, else
                ``~/.cache/torchgeo-simclr``).
            label_fraction: None (pretraining): training draws random patches
                anywhere in the train blocks. A share in ``(0, 1]``
                (fine-tuning): training uses a class-balanced subset of that
                share of the labelled patches on the train blocks' grid,
                nested across fractions for one *label_seed* (see
                :func:`~torchgeo_simclr.datamodules.fractions.nested_balanced_subset`);
                the exact count is logged and kept in :attr:`n_labels`. The
                subset is drawn by ``setup("fit")`` only: validate, test and
                predict do not need it.
            label_seed: seed of the labelled subset (independent of *seed*, so
                the spatial split stays fixed while subsets vary).
            unlabeled: with *label_fraction*, train on every patch of the
                train grid, with the masks of patches outside the labelled
                subset set to the ignore index. This is for distillation,
                whose student learns from the teacher on every patch;
                fine-tuning learns from labels only, so
                :class:`~torchgeo_simclr.tasks.FineTuneTask` warns that most
                of its batches would then hold none.
            in_memory: keep the fine-tuning, validation and test patches in
                memory after their first read (for small regions).
            mask_clouds: read the pixels that a cloud mask beside per-band
                files (SCL, ``cloud_mask.tif``) calls cloudy as nodata (see
                :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
            cloud_buffer: metres by which masked clouds grow beyond the
                coarsest band's reach, for cloud edges and haze the mask misses.
            start: first sensing day read, inclusive (UTC, ``YYYY-MM-DD``;
                default: no limit). Where products of several days overlap,
                the newest with data wins each pixel; *start* and *end* pick
                the days (see :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
            end: last sensing day read, inclusive (default: no limit).
            labels_layer: layer of a multi-layer label file (e.g. a QGIS
                project GeoPackage; default: the first).
            min_labelled: share of a patch's pixels that must be labelled
                for the patch to count as labelled: to join the fine-tuning
                pool, and for a patch classifier to train and score on it (the
                pretraining's online probe keeps half). Lower it for sparse
                labels (hand-drawn fields), whose patches are often mostly
                unlabelled.

        Raises:
            ValueError: if *bbox_crs* is not a CRS pyproj knows, *patch_size* or
                *batch_size* is below 1,
                *split_fractions* are not three shares above 0 that sum to 1,
                *label_fraction* or *min_labelled* is not in ``(0, 1]``,
                *start* or *end* is not a date, or *start* is after *end*.
        """
        region_crs = parse_bbox_crs(bbox_crs, "--data.init_args.bbox_crs")
        check_patch_size(patch_size)
        check_batch_size(batch_size)
        check_split_fractions(split_fractions)
        check_label_fraction(label_fraction)
        check_min_labelled(min_labelled)
        super().__init__(
            CentralValleyS2,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=num_workers,
        )
        # Every setting, for the loggers (hparams.yaml, TensorBoard's HPARAMS)
        # and load_from_checkpoint; the labelled subset adds its size later.
        save_plain_hyperparameters(self)
        #: Directory searched recursively for the Sentinel-2 L2A files.
        self.root = Path(root)
        #: DWR label file as given, relative to *root* or the working directory
        #: (see :attr:`labels_path`); None for unlabelled pretraining.
        self.labels = labels
        #: Region ``(xmin, ymin, xmax, ymax)`` in :attr:`bbox_crs` (None: all
        #: imagery).
        self.bbox = bbox
        #: CRS of :attr:`bbox` (EPSG:4326, lon/lat degrees, by default).
        self.bbox_crs = region_crs
        #: Band names read, in the order of the image channels.
        self.bands = check_bands(bands)
        #: Side of the split blocks, pixels.
        self.block_size = block_size
        #: Shares of blocks for train, val and test.
        self.split_fractions = split_fractions
        #: Least distance from the train blocks to the val and test blocks,
        #: pixels.
        self.split_buffer = split_buffer
        #: Whether cloud masks beside per-band files are applied.
        self.mask_clouds = mask_clouds
        #: Metres by which masked clouds grow beyond the bands' reach.
        self.cloud_buffer = cloud_buffer
        #: First and last sensing day read, inclusive (two attributes; None: no
        #: limit).
        self.start, self.end = parse_days(
            start, end, ("--data.init_args.start", "--data.init_args.end")
        )
        #: Seed of the block assignment and of the statistics' patches.
        self.seed = seed
        #: Label file column holding the class code.
        self.class_column = class_column
        #: Class code -> mask value: overrides of the DWR defaults for a DWR
        #: class column, else the whole map (None: the DWR defaults alone).
        self.class_map = class_map
        #: Layer read from a multi-layer label file (None: the first).
        self.labels_layer = labels_layer
        #: Share of a patch's pixels that must be labelled for it to count as
        #: labelled (pool, training and scoring of patch labels).
        self.min_labelled = min_labelled
        #: Augmented-view generator for training, or None for no views.
        self.views = make_views(
            augmentations, ops_per_view, num_views, augmentation_kwargs
        )
        #: Training patches read to compute band statistics.
        self.stats_patches = stats_patches
        #: Where band statistics are cached (None: the default cache).
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        #: The imagery, intersected with the labels when there are any; built
        #: by :meth:`setup`.
        self.dataset: GeoDataset | None = None
        #: The imagery alone (statistics are read from it); built by
        #: :meth:`setup`.
        self.image_dataset: CentralValleyS2 | None = None
        #: The labels alone (None without labels); built by :meth:`setup`.
        self.label_dataset: IrrigationLabels | None = None
        #: Blocks of ``train``, ``val`` and ``test``, in the dataset CRS; cut
        #: by :meth:`setup`.
        self.split_blocks: dict[str, MultiPolygon] = {}
        #: Area of the region the blocks are cut from, CRS units squared.
        self.region_area = 0.0
        #: Share of the labelled train-grid patches to fine-tune on (None:
        #: random patches, for pretraining).
        self.label_fraction = label_fraction
        #: Seed of the labelled subset.
        self.label_seed = label_seed
        #: With :attr:`label_fraction`, train on every train-grid patch, the
        #: masks of those outside the labelled subset ignored.
        self.unlabeled = unlabeled
        #: Whether the fine-tuning, validation and test patches stay in memory
        #: after their first read.
        self.in_memory = in_memory
        #: Number of labelled training patches (set up with *label_fraction*
        #: when fitting; None until then).
        self.n_labels: int | None = None
        # Fixed-patch datasets, built once so that setup("test") after
        # setup("fit") neither re-reads labels nor drops in-memory patches.
        self._patch_data: dict[str, PatchDataset] = {}

    @property
    def labels_path(self) -> Path | None:
        """The label file, resolved against *root* when relative."""
        if self.labels is None:
            return None
        return resolve_label_path(self.root, self.labels)

    def _build_datasets(self) -> None:
        if self.dataset is not None:
            return
        self.image_dataset = CentralValleyS2(
            self.root,
            bands=self.bands,
            mask_clouds=self.mask_clouds,
            cloud_buffer=self.cloud_buffer,
            start=self.start,
            end=self.end,
        )
        if masks := self.image_dataset.cloud_mask_files:
            buffer = (
                f", clouds grown by {self.cloud_buffer:g} m more"
                if self.cloud_buffer
                else ""
            )
            rank_zero_info(
                f"Cloud masks: {len(masks)} file(s) beside the bands of "
                f"{self.root} (e.g. {masks[0]}) set cloudy pixels to nodata"
                f"{buffer}; --data.init_args.mask_clouds false keeps them."
            )
        dataset: GeoDataset = self.image_dataset
        labels: IrrigationLabels | None = None
        if self.bbox is not None:
            # A bbox off the imagery is refused with the imagery's extent
            # before the labels are read, whose refusal names only theirs.
            self._region(self.image_dataset)
        if self.labels_path is not None:
            labels = IrrigationLabels(
                self.labels_path,
                crs=self.image_dataset.crs,
                class_column=self.class_column,
                class_map=self.class_map,
                bbox=self._labels_extent(self.image_dataset),
                layer=self.labels_layer,
                covers_bbox=True,
            )
            dataset = IntersectionDataset(self.image_dataset, labels)
            snap_to_grid(dataset, self.image_dataset)
        self.dataset = dataset
        self.label_dataset = labels
        if labels is not None:
            fix = "--data.init_args.start/end"
            why = other_years(
                labels.years, repr(str(self.labels_path)), self.imagery_dates(), fix
            )
            if why is not None:
                rank_zero_warn(why)
        # The imagery's region, not the labels' extent: the split must not
        # move when labels are added (or saved in another format).
        roi = self._region(self.image_dataset)
        self.region_area = float(roi.area)
        patch_side = self.patch_size_px * dataset.res[0]
        train, val, test = spatial_blocks(
            roi,
            block_size=self.block_size * dataset.res[0],
            fractions=self.split_fractions,
            min_side=patch_side,
            seed=self.seed,
            res=dataset.res[0],
            buffer=self.split_buffer * dataset.res[0],
        )
        self.split_blocks = {"train": train, "val": val, "test": test}

    @property
    def split_settings(self) -> dict[str, Any]:
        """The options that make this datamodule's split, as checkpoints record them.

        Returns:
            ``root``, ``bbox``, ``bbox_crs``, ``start``, ``end``,
            ``block_size``, ``split_fractions``, ``split_buffer``, ``seed``
            and ``patch_size`` (the blocks' least side) as plain JSON values,
            so a later stage's warning can name the ones it changed.
        """
        return {
            "root": str(self.root),
            "bbox": None if self.bbox is None else [float(v) for v in self.bbox],
            "bbox_crs": self.bbox_crs.to_string(),
            "start": iso_day(self.start),
            "end": iso_day(self.end),
            "block_size": int(self.block_size),
            "split_fractions": [float(v) for v in self.split_fractions],
            "split_buffer": int(self.split_buffer),
            "seed": int(self.seed),
            "patch_size": self.patch_size_px,
        }

    @property
    def patch_size_px(self) -> int:
        """Patch side in pixels."""
        size = self.patch_size
        return size if isinstance(size, int) else int(size[0])

    def _labels_extent(
        self, imagery: CentralValleyS2
    ) -> tuple[float, float, float, float]:
        """The lon/lat extent the labels are read in: the region's, or the imagery's.

        The region of a :attr:`bbox` is the rectangle around it in the
        imagery's CRS, whose corners reach past a lon/lat bbox: its labels are
        read there too, so that the same region gives the same labels whatever
        the CRS its bbox is given in.

        Args:
            imagery: the imagery.

        Returns:
            ``(min lon, min lat, max lon, max lat)``: the lon/lat extent of the
            rectangle around :attr:`bbox` in the imagery's CRS, plus 0.001
            degrees; without a bbox, :func:`imagery_extent`.
        """
        if self.bbox is None:
            return imagery_extent(imagery)
        west, south, east, north = lonlat_extent(
            self._bbox_bounds(imagery.crs), imagery.crs, None
        )
        return padded((west, south, east, north))

    def _bbox_named(self) -> str:
        """The bbox as messages name it, e.g. ``bbox [1.0, 2.0, 3.0, 4.0] (lon/lat)``.

        Returns:
            ``bbox``, its values and its CRS (``lon/lat`` for EPSG:4326).
        """
        assert self.bbox is not None
        crs = "lon/lat" if self.bbox_crs == LONLAT else self.bbox_crs.to_string()
        return f"bbox {list(self.bbox)} ({crs})"

    def _checked_bbox(self, imagery_crs: CRS) -> tuple[float, float, float, float]:
        """:attr:`bbox`, refused in one sentence if it is not a bbox.

        Args:
            imagery_crs: the imagery's CRS, suggested as :attr:`bbox_crs` for
                metres given as lon/lat.

        Returns:
            The bbox, in :attr:`bbox_crs`.

        Raises:
            ValueError: for a lon/lat bbox as
                :func:`~torchgeo_simclr.lonlat.check_lonlat_bbox` refuses it
                (latitude first, 0-360 degrees), but metres are told to name
                their CRS; in another CRS, for values that are not 4 finite
                numbers with min < max, or latitudes beyond +-90 degrees.
        """
        assert self.bbox is not None
        values = tuple(float(v) for v in self.bbox)
        crs = self.bbox_crs
        option = "--data.init_args.bbox_crs"
        if crs == LONLAT:
            try:
                bbox = check_lonlat_bbox(values)
            except ValueError:
                if len(values) == 4 and any(abs(v) > 360 for v in values):
                    msg = (
                        f"bbox={list(values)} is not longitude/latitude degrees "
                        f"in EPSG:4326 (the default {option}): these look like "
                        f"projected coordinates (metres); give their CRS, e.g. "
                        f"{option} {imagery_crs.to_string()} if they are in the "
                        "imagery's CRS."
                    )
                    raise ValueError(msg) from None
                raise
            assert bbox is not None
            return bbox
        names = ("lon", "lat") if crs.is_geographic else ("x", "y")
        fault, meant = bbox_fault(values, names)
        if not fault and crs.is_geographic and not in_degrees(values):
            fault = "a latitude is beyond +-90 degrees or a longitude beyond +-180"
            meant = None
            swapped = (values[1], values[0], values[3], values[2])
            if in_degrees(swapped):
                fault += ": longitude and latitude look swapped"
                meant = swapped
        if fault:
            fix = (
                f"pass [{', '.join(f'{v:.10g}' for v in meant)}]"
                if meant is not None
                else f"pass 4 numbers xmin, ymin, xmax, ymax in {crs.to_string()}"
            )
            msg = (
                f"bbox={list(values)} is not ({', '.join(f'min {n}' for n in names)}"
                f", {', '.join(f'max {n}' for n in names)}) with min < max in "
                f"{crs.to_string()} ({option}): {fault}; {fix}."
            )
            raise ValueError(msg)
        xmin, ymin, xmax, ymax = values
        return xmin, ymin, xmax, ymax

    def _bbox_bounds(self, crs: CRS) -> tuple[float, float, float, float]:
        """The rectangle around :attr:`bbox` in *crs* (the imagery's).

        Args:
            crs: the CRS of the rectangle.

        Returns:
            ``(xmin, ymin, xmax, ymax)`` in *crs*; the bbox's edges are
            followed, so a bbox that is no rectangle in *crs* lies inside.
        """
        bbox = self._checked_bbox(crs)
        to_data = Transformer.from_crs(self.bbox_crs, crs, always_xy=True)
        xmin, ymin, xmax, ymax = to_data.transform_bounds(*bbox)
        return xmin, ymin, xmax, ymax

    def _check_degrees(self, footprint: BaseGeometry, crs: CRS) -> None:
        """Refuse lon/lat degrees given in a projected :attr:`bbox_crs`.

        Such a bbox lies near the CRS's origin, far from the imagery, and
        would be refused for missing it without the reason.

        Args:
            footprint: the imagery's footprint, in *crs*.
            crs: the imagery's CRS.

        Raises:
            ValueError: if the bbox misses the imagery in its CRS but its
                numbers, read as lon/lat, lie over it.
        """
        assert self.bbox is not None
        values = tuple(float(v) for v in self.bbox)
        if not self.bbox_crs.is_projected or not in_degrees(values):
            return
        xmin, ymin, xmax, ymax = values
        to_data = Transformer.from_crs(LONLAT, crs, always_xy=True)
        read_as_lonlat = to_data.transform_bounds(xmin, ymin, xmax, ymax)
        if not footprint.intersects(shapely.box(*read_as_lonlat)):
            return
        given = self.bbox_crs.to_string()
        msg = (
            f"bbox={list(values)} in {given} (--data.init_args.bbox_crs) misses the "
            "imagery, but read as lon/lat degrees it lies over it; leave out "
            f"--data.init_args.bbox_crs (lon/lat is the default), or give the bbox "
            f"in {given} metres."
        )
        raise ValueError(msg)

    def _region(self, dataset: GeoDataset) -> BaseGeometry:
        footprint = dataset.index.geometry.union_all()
        if self.bbox is None:
            return footprint
        box = shapely.box(*self._bbox_bounds(dataset.crs))
        region = footprint & box
        if region.is_empty or region.area == 0:
            self._check_degrees(footprint, dataset.crs)
            extent = lonlat_extent(footprint.bounds, dataset.crs, 5)
            msg = (
                f"{self._bbox_named()} does not overlap the data in "
                f"{str(self.root)!r}, which covers {extent} (lon/lat) = "
                f"{np.round(footprint.bounds, 1).tolist()} in {dataset.crs.to_string()}"
                "; pass a bbox inside that extent."
            )
            raise ValueError(msg)
        return region

    def _statistics(self) -> tuple[Tensor, Tensor]:
        assert self.image_dataset is not None
        sampler = NativeRandomPatchSampler(
            self.image_dataset,
            size=self.patch_size_px,
            length=self.stats_patches,
            roi=self.split_blocks["train"],
            generator=self.seed,
        )
        locations = list(sampler)
        if not locations:
            side = math.ceil(self.patch_size_px * math.sqrt(2))
            msg = (
                f"No {self.patch_size_px} px training patch can be drawn in the train"
                f" blocks of {str(self.root)!r}: torchgeo's random sampler needs "
                f"imagery about {side} px wide there (the patch's diagonal); pass "
                "a smaller --data.init_args.patch_size or split_buffer, or a "
                "larger block_size."
            )
            raise ValueError(msg)
        masks = self.image_dataset.cloud_mask_files
        # Keys without a buffer or dates stay as they were, so older caches
        # still serve.
        buffer = [self.cloud_buffer] if masks and self.cloud_buffer else []
        selected = self.start is not None or self.end is not None
        dates = [("dates", self.start, self.end)] if selected else []
        key = cache_key(
            [*self.image_dataset.files, *masks],
            self.bands,
            self.split_blocks["train"].wkt,
            self.patch_size_px,
            self.stats_patches,
            self.seed,
            *buffer,
            *dates,
        )
        return cached_band_statistics(
            self.image_dataset, locations, key, self.cache_dir
        )

    def setup(self, stage: str) -> None:
        """Open the data, cut the blocks, compute statistics and samplers.

        The labelled subset (*label_fraction*) is drawn for ``fit`` only.

        Args:
            stage: ``fit``, ``validate``, ``test`` or ``predict``.
        """
        self._build_datasets()
        assert self.dataset is not None
        mean, std = self._statistics()
        #: Per-band mean and standard deviation ``[C]`` (two attributes),
        #: reflectance x10000, of :attr:`stats_patches` training patches.
        self.mean, self.std = mean, std
        set_augmentations(self, mean, std, self.views)
        #: Train, val and test datasets: :attr:`dataset`, each split kept in its
        #: blocks by its sampler (fixed patches replace train with
        #: *label_fraction*, val and test with *in_memory*).
        self.train_dataset = self.val_dataset = self.test_dataset = self.dataset
        #: Prediction dataset: :attr:`dataset`, over the whole region.
        self.predict_dataset = self.dataset
        if stage == "fit" and self.label_fraction is None:
            self._check_one_batch()
        # torchgeo draws patch positions with numpy; seed it from torch so that
        # `seed_everything` (LightningCLI's `seed_everything:`) makes runs repeat.
        #: Random patches in the train blocks, :attr:`length` per epoch (with
        #: *label_fraction*: draws with replacement from the fixed train patches).
        self.train_sampler = NativeRandomPatchSampler(
            self.dataset,
            size=self.patch_size_px,
            length=self.length,
            roi=self.split_blocks["train"],
            generator=torch.initial_seed(),
        )
        #: Grid of whole patches over the val blocks (with *in_memory*: the
        #: in-memory patches in order).
        self.val_sampler = self.grid_sampler("val")
        #: Grid of whole patches over the test blocks (with *in_memory*: the
        #: in-memory patches in order).
        self.test_sampler = self.grid_sampler("test")
        # Only training uses the labelled subset, and drawing it labels every
        # patch of the train grid (minutes at full scale): scoring a checkpoint
        # skips it, unless a fit in this process drew it already.
        if self.label_fraction is not None and (
            stage == "fit" or "train" in self._patch_data
        ):
            self._setup_labelled_subset()
        if self.in_memory:
            for split in ("val", "test"):
                if split not in self._patch_data:
                    patches = list(getattr(self, f"{split}_sampler"))
                    self._patch_data[split] = PatchDataset(
                        self.dataset, patches, in_memory=True
                    )
                data = self._patch_data[split]
                setattr(self, f"{split}_dataset", data)
                setattr(self, f"{split}_sampler", SequentialSampler(data))
        counts = self.split_lengths()
        blocks = {split: len(b.geoms) for split, b in self.split_blocks.items()}
        training = ""
        if self.split_buffer:
            # The gap merges what is left of touching training blocks, so
            # their count says nothing; the area kept does.
            held_out = self.split_blocks["val"] | self.split_blocks["test"]
            rest = self.region_area - held_out.area
            share = self.split_blocks["train"].area / rest
            del blocks["train"]
            training = (
                f", training on {share:.0%} of the other blocks' area, kept "
                f"{self.split_buffer} px from them"
            )
        note = dates_note(self.imagery_dates(), "--data.init_args.start/end")
        rank_zero_info(
            f"Spatial split of {self.root}: {blocks} blocks of {self.block_size} px"
            f"{training}; patches per epoch: {counts}{'; ' if note else ''}{note}"
        )
        if polygons := self.label_polygons():
            rank_zero_info(
                f"Label polygons with a class in {str(self.labels_path)!r}: "
                f"{polygons['train']} reach the train blocks, {polygons['val']} "
                f"val, {polygons['test']} test, {polygons['outside']} lie outside "
                "them (one across a block edge counts in each)"
            )
        if stage == "fit" and self.label_fraction is not None:
            self._check_val_labels()
        #: Grid of whole patches over the region of :attr:`dataset` (within
        #: :attr:`bbox`, if given).
        self.predict_sampler = BlockGridSampler(
            self.dataset,
            size=self.patch_size_px,
            blocks=[self._region(self.dataset)],
        )

    def label_polygons(self) -> dict[str, int]:
        """Count the label polygons with a class (0 or 1) in each split.

        Returns:
            ``train``, ``val`` and ``test``: polygons reaching into the split's
            blocks (one across a block edge counts in each; one that only
            touches a block does not), and ``outside``: those in no block;
            empty without labels or before :meth:`setup`.
        """
        if self.label_dataset is None or not self.split_blocks:
            return {}
        features = self.label_dataset.features
        classed = features["value"].to_numpy() != IGNORE_INDEX
        inside = np.zeros(len(features), dtype=bool)
        counts = {}
        for split, blocks in self.split_blocks.items():
            parts = list(blocks.geoms)
            meets = features.sindex.query(parts, predicate="intersects")
            touches = features.sindex.query(parts, predicate="touches")
            edge_only = set(zip(*touches, strict=True))
            hit = np.zeros(len(features), dtype=bool)
            for block, feature in zip(*meets, strict=True):
                if (block, feature) not in edge_only:
                    hit[feature] = True
            counts[split] = int((hit & classed).sum())
            inside |= hit
        counts["outside"] = int((~inside & classed).sum())
        return counts

    def _polygons_in(self, split: str) -> str:
        """Say how many of the classed label polygons reach a split's blocks."""
        counts = self.label_polygons()
        if not any(counts.values()):
            return "it has no polygon with a class over the imagery"
        return (
            f"{counts[split]} of its label polygons with a class reach the "
            f"{split} blocks, {counts['outside']} lie outside every block"
        )

    def _check_val_labels(self) -> None:
        """Refuse a fit whose val patches hold no label, before any training.

        Validation scores F1 on labelled patches or pixels; without one the
        fit would stop after its first epoch. Only the labels are read, and
        only where a polygon reaches a val patch, up to the first labelled
        pixel. Skipped when validation is switched off
        (``--trainer.limit_val_batches 0``) or there is no trainer.

        Raises:
            ValueError: if no val patch has a labelled pixel.
        """
        limit = getattr(self.trainer, "limit_val_batches", None)
        labels = self.label_dataset
        if self.trainer is None or limit == 0 or labels is None:
            return
        for x, y in self.grid_sampler("val"):
            box = shapely.box(x.start, y.start, x.stop, y.stop)
            if not len(labels.features.sindex.query(box, predicate="intersects")):
                continue
            if bool((labels[x, y]["mask"] != IGNORE_INDEX).any()):
                return
        msg = (
            f"No val patch has a pixel labelled by {str(self.labels_path)!r} "
            f"({self._polygons_in('train')}), so val_f1 cannot be computed and "
            "the fit would stop after its first epoch; pass "
            "--trainer.limit_val_batches 0 to train without validation, another "
            "--data.init_args.seed to deal the blocks anew, or labels in more "
            "places."
        )
        raise ValueError(msg)

    def imagery_dates(self) -> list[str]:
        """Sensing dates of the products under the region (:attr:`bbox`).

        Returns:
            ISO dates (``YYYY-MM-DD``), sorted, without repeats, then
            :data:`~torchgeo_simclr.constants.UNKNOWN_DATE` when a product's
            name carries no date; empty before :meth:`setup`.
        """
        if self.image_dataset is None or self.dataset is None:
            return []
        index = self.image_dataset.index
        region = self._region(self.dataset)
        inside = index[index.intersects(region) & ~index.touches(region)]
        return index_dates(inside.index)

    def _check_one_batch(self) -> None:
        """Refuse an epoch shorter than one batch (the partial batch is dropped).

        On several devices the epoch's ``length`` patches are split over them,
        and each needs a batch.

        Raises:
            ValueError: if ``length`` is below ``batch_size`` (per device).
        """
        batch_size = int(self.batch_size)
        devices = self.trainer.world_size if self.trainer is not None else 1
        if self.length is not None and -(-self.length // devices) < batch_size:
            where = f" over {devices} devices" if devices > 1 else ""
            msg = (
                f"length {self.length} patches per epoch{where} is less than one "
                f"batch of {batch_size}{' each' if where else ''}, and training "
                "drops a partial batch, so there would be no training step; pass "
                f"--data.init_args.length {batch_size * devices} or more, or a "
                "smaller --data.init_args.batch_size."
            )
            raise ValueError(msg)

    def _setup_labelled_subset(self) -> None:
        if "train" not in self._patch_data:
            self._patch_data["train"] = self._labelled_subset()
        data = self._patch_data["train"]
        self.train_dataset = data
        # Draw with replacement so an epoch holds at least one full batch (on
        # each device) even when the subset has fewer patches than a batch; on
        # several devices they split the draws. (torchgeo's loader factory
        # takes any torch sampler; only its annotation says GeoSampler.)
        self.train_sampler = RandomDrawSampler(  # type: ignore[assignment]
            data,
            epoch_draws(self.length, len(data), self.batch_size, self.trainer),
            generator=torch.Generator().manual_seed(torch.initial_seed()),
        )

    def _labelled_subset(self) -> PatchDataset:
        assert self.dataset is not None
        assert self.label_fraction is not None
        if not isinstance(self.dataset, IntersectionDataset):
            msg = (
                f"label_fraction={self.label_fraction} needs labels, but labels is "
                "None; pass the DWR label file as --data.init_args.labels."
            )
            raise ValueError(msg)
        patches = list(self.grid_sampler("train"))
        labels = grid_patch_labels(
            self.dataset, patches, min_labelled=self.min_labelled
        )
        labelled_total = int((labels != IGNORE_INDEX).sum())
        if labelled_total == 0:
            msg = (
                f"No {self.patch_size_px} px patch of the train blocks' grid has "
                f"{self.min_labelled:.0%} or more of its pixels labelled by "
                f"{str(self.labels_path)!r} ({self._polygons_in('train')}), so "
                "there is nothing to fine-tune on; for sparse labels such as "
                "hand-drawn fields pass a lower --data.init_args.min_labelled "
                "(e.g. 0.05) or a smaller patch_size, else check the class "
                "column and class map."
            )
            raise ValueError(msg)
        chosen, positives = draw_labelled_subset(
            self,
            labels,
            self.label_fraction,
            self.label_seed,
            f"{labelled_total} labelled training patches",
        )
        self.n_labels = len(chosen)
        if self.label_fraction < 1 and labelled_total < SMALL_POOL:
            rank_zero_warn(
                f"label_fraction {self.label_fraction:g} keeps {self.n_labels} "
                f"of the {labelled_total} labelled training patches; to train "
                "on every label (e.g. your own, curated ones) pass "
                "--data.init_args.label_fraction 1.0 (the quickstart configs "
                "keep 1%, for the label-efficiency experiment).",
                category=UserWarning,
            )
        if positives in (0, self.n_labels):
            kind = "not irrigated" if positives == 0 else "irrigated"
            rank_zero_warn(
                f"Every labelled training patch under {str(self.root)!r} is {kind}"
                f" ({self.n_labels} of {labelled_total}), so the model can only "
                "learn one class; pass labels that cover both irrigated and other "
                "fields (--data.init_args.labels), check what your codes map to "
                f"({self.class_column!r} with --data.init_args.class_map), or a "
                "larger region"
                f"{'' if self.label_fraction == 1 else ' or label_fraction'}.",
                category=UserWarning,
            )
        if self.unlabeled:
            keep = torch.zeros(len(patches), dtype=torch.bool)
            keep[chosen] = True
            return PatchDataset(self.dataset, patches, keep, self.in_memory)
        return PatchDataset(
            self.dataset, [patches[i] for i in chosen], in_memory=self.in_memory
        )

    def plot(self, *args: Any, **kwargs: Any) -> Figure:
        """Plot a sample through the imagery: image, mask and prediction.

        torchgeo's :meth:`~torchgeo.datamodules.BaseDataModule.plot` asks
        :attr:`dataset` to plot, which with labels is an
        :class:`~torchgeo.datasets.IntersectionDataset` without ``plot`` (it
        returns None); here :meth:`CentralValleyS2.plot
        <torchgeo_simclr.datasets.CentralValleyS2.plot>` draws the sample
        (the imagery is opened first if :meth:`setup` has not run).

        Args:
            *args: arguments of :meth:`CentralValleyS2.plot
                <torchgeo_simclr.datasets.CentralValleyS2.plot>`: a sample as
                the datasets give it (``image`` ``[C, H, W]`` reflectance
                x10000, not normalised; optionally ``mask`` and/or
                ``prediction`` ``[H, W]``), ``show_titles``, ``suptitle``.
            **kwargs: the same, by name.

        Returns:
            A matplotlib Figure with one panel per shown item.
        """
        self._build_datasets()
        assert self.image_dataset is not None
        return self.image_dataset.plot(*args, **kwargs)

    def on_after_batch_transfer(
        self, batch: dict[str, Tensor], dataloader_idx: int
    ) -> dict[str, Tensor]:
        """Normalise and augment the batch, then label each of its patches.

        Args:
            batch: a batch on the device (see the class docstring).
            dataloader_idx: index of the dataloader.

        Returns:
            The batch as :func:`set_augmentations` leaves it, plus, where it
            has a ``mask``, ``label`` int64 ``[B]``: each patch's label by
            :func:`~torchgeo_simclr.patch_labels.patch_labels` with
            :attr:`min_labelled`, which patch classifiers train and score on.
        """
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if "mask" in batch:
            batch["label"] = patch_labels(batch["mask"], self.min_labelled)
        return batch

    def _dataloader_factory(self, split: str) -> DataLoader[dict[str, Any]]:
        if split == "train":
            self.resume_draws(self.train_sampler)
        loader = super()._dataloader_factory(split)
        loader.worker_init_fn = raster_worker
        return loader

    def grid_sampler(self, split: str) -> BlockGridSampler:
        """Return a grid of whole patches over one split's blocks.

        Args:
            split: ``train``, ``val`` or ``test``.

        Returns:
            A sampler visiting every patch of the grid once, in a fixed order.
        """
        assert self.dataset is not None
        return BlockGridSampler(
            self.dataset,
            size=self.patch_size_px,
            blocks=list(self.split_blocks[split].geoms),
        )

    def split_lengths(self) -> dict[str, int]:
        """Return the number of patches each split yields per epoch.

        Returns:
            Patches per split.
        """
        return {
            split: len(getattr(self, f"{split}_sampler"))
            for split in ("train", "val", "test")
        }
