"""Windows over a bounding box of the imagery, for tiled prediction."""

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from geopandas import GeoDataFrame
from pyproj import Transformer
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import BaseDataModule

from ..constants import S2_BANDS
from ..datasets import CentralValleyS2
from ..datasets.cloud_masks import CLOUD_MASK_NAME
from ..days import parse_days, range_text
from ..inference.grid import OutputGrid, output_grid
from ..lonlat import LONLAT, lonlat_extent, parse_bbox_crs
from ..run_record import kept_warnings
from .patches import GridPatches, keep_batch
from .workers import raster_worker

#: Width of the reads that batches of map windows are cut from: window
#: corners along a row, pixels (a read is a window side more). A 256 px
#: segmentation row then reads at most 12 x 256 x 2304 float32, 28 MB.
READ_WIDTH = 2048


class MapDataModule(BaseDataModule):
    """Sentinel-2 windows over a bounding box, on the imagery's own pixel grid.

    Only ``predict`` is supported: the windows tile the region with *overlap*
    pixels shared between neighbours, row by row, so a writer can blend and
    write the map strip by strip. They lie on a tiling of the whole imagery
    (see :meth:`~torchgeo_simclr.inference.grid.OutputGrid.windows`), so a
    bbox's map is the whole map cut to the bbox. Each batch is cut from a few
    reads of up to :data:`READ_WIDTH` pixels of window corners along a row of
    windows (:class:`~torchgeo_simclr.datamodules.patches.GridPatches`), not
    one raster query per window. Normalisation is the model's business (its
    checkpoint holds the training statistics), so batches stay in reflectance
    x10000.
    """

    def __init__(
        self,
        root: str | Path = "data",
        bbox: Sequence[float] | None = None,
        bbox_crs: str = "EPSG:4326",
        bands: Sequence[str] = S2_BANDS,
        patch_size: int = 256,
        overlap: int = 32,
        batch_size: int = 8,
        num_workers: int = 0,
        mask_clouds: bool = True,
        cloud_buffer: float = 0.0,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> None:
        """Initialise a new MapDataModule.

        Args:
            root: directory of Sentinel-2 files, any layout
                :class:`~torchgeo_simclr.datasets.CentralValleyS2` reads.
            bbox: region ``(xmin, ymin, xmax, ymax)`` in *bbox_crs* (default:
                all imagery).
            bbox_crs: CRS of *bbox*; lon/lat degrees by default.
            bands: bands in the order the model takes them.
            patch_size: window side, pixels.
            overlap: pixels shared by neighbouring windows.
            batch_size: windows per batch.
            num_workers: DataLoader worker processes.
            mask_clouds: read pixels that cloud masks beside per-band files
                call cloudy as nodata (see
                :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
            cloud_buffer: metres by which masked clouds grow beyond the
                coarsest band's reach.
            start: first sensing day read, inclusive (UTC, ``YYYY-MM-DD``;
                default: no limit). Where products of several days overlap,
                the newest with data wins each pixel; *start* and *end* pick
                the days (see :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
            end: last sensing day read, inclusive (default: no limit).

        Raises:
            ValueError: if *overlap* is not between 0 and *patch_size* - 1,
                *start* or *end* is not a date, or *start* is after *end*.
        """
        super().__init__(CentralValleyS2, batch_size, num_workers)
        if not 0 <= overlap < patch_size:
            msg = (
                f"overlap={overlap} must be at least 0 and less than "
                f"patch_size={patch_size} pixels; pass e.g. --overlap "
                f"{patch_size // 4}."
            )
            raise ValueError(msg)
        #: Imagery directory.
        self.root = Path(root)
        #: Region ``(xmin, ymin, xmax, ymax)`` in :attr:`bbox_crs` (None: all
        #: imagery).
        self.bbox = None if bbox is None else tuple(float(v) for v in bbox)
        #: CRS of :attr:`bbox` (lon/lat degrees by default).
        self.bbox_crs = parse_bbox_crs(bbox_crs) if bbox_crs else LONLAT
        #: Bands read, in model order.
        self.bands = list(bands)
        #: Window side and overlap, pixels.
        self.patch_size, self.overlap = patch_size, overlap
        #: Whether cloud masks beside per-band files are applied.
        self.mask_clouds = mask_clouds
        #: Metres by which masked clouds grow beyond the bands' reach.
        self.cloud_buffer = cloud_buffer
        #: First and last sensing day read, inclusive (two attributes; None: no
        #: limit).
        self.start, self.end = parse_days(start, end)
        #: The imagery, set by :meth:`setup`.
        self.imagery: CentralValleyS2 | None = None
        #: The output grid over :attr:`bbox` (or all imagery), set by :meth:`setup`.
        self.grid: OutputGrid | None = None
        #: The windows on :attr:`grid`, row by row, set by :meth:`setup`.
        self.windows: list[Window] = []
        #: Text of each warning :meth:`setup` showed (e.g. a bbox reaching
        #: past the imagery), which the map's summary records.
        self.warned: list[str] = []

    def setup(self, stage: str) -> None:
        """Open the imagery and lay the windows over the bbox.

        Args:
            stage: must be ``predict``.

        Raises:
            ValueError: for any other stage, or a bbox under which no scene
                lies (lon/lat degrees given as metres included).
        """
        if stage != "predict":
            msg = f"MapDataModule only predicts; got stage {stage!r}."
            raise ValueError(msg)
        if self.imagery is not None:
            return
        with kept_warnings() as warned:
            self.imagery = CentralValleyS2(
                self.root,
                bands=self.bands,
                mask_clouds=self.mask_clouds,
                cloud_buffer=self.cloud_buffer,
                start=self.start,
                end=self.end,
                pixel_dates=True,
            )
            self._check_degrees(self.imagery)
            dated = self.start is not None or self.end is not None
            imagery = "the imagery" + (
                f" sensed {range_text(self.start, self.end)} (--start/--end)"
                if dated
                else ""
            )
            self.grid = output_grid(self.imagery, self.bbox, self.bbox_crs, imagery)
            if self.bbox is not None and self._scenes().empty:
                self._no_scene()
            self.windows = self.grid.windows(self.patch_size, self.overlap)
            #: The windows' patches, in row-major order, set by :meth:`setup`.
            self.predict_dataset = GridPatches(
                self.imagery,
                self.grid,
                self.windows,
                min_valid=0,
                block_shape=(1, READ_WIDTH),
            )
        self.warned = warned

    def _check_degrees(self, imagery: CentralValleyS2) -> None:
        """Refuse lon/lat degrees given as the metres of a projected bbox CRS.

        Such a bbox lies far from the imagery (around the CRS's origin) and
        would only be refused for missing it, without the reason.

        Args:
            imagery: the imagery.

        Raises:
            ValueError: if the bbox misses the imagery in its CRS but its
                numbers, read as lon/lat, lie over it.
        """
        if self.bbox is None or not self.bbox_crs.is_projected:
            return
        xmin, ymin, xmax, ymax = self.bbox
        degrees = -180 <= xmin < xmax <= 180 and -90 <= ymin < ymax <= 90
        if not degrees:
            return
        x, y = imagery.bounds[0], imagery.bounds[1]
        data = (float(x.start), float(y.start), float(x.stop), float(y.stop))

        def overlaps(crs: Any) -> bool:
            to_data = Transformer.from_crs(crs, imagery.crs, always_xy=True)
            left, bottom, right, top = to_data.transform_bounds(xmin, ymin, xmax, ymax)
            return bool(
                left < data[2]
                and data[0] < right
                and bottom < data[3]
                and data[1] < top
            )

        if overlaps(LONLAT) and not overlaps(self.bbox_crs):
            given = " ".join(f"{v:.10g}" for v in self.bbox)
            crs = self.bbox_crs.to_string()
            msg = (
                f"--bbox {given} in {crs} misses the imagery, but read as lon/lat "
                f"degrees it lies over it; leave out --bbox-crs {crs} (lon/lat is "
                f"the default), or give the bbox in {crs} metres."
            )
            raise ValueError(msg)

    def _no_scene(self) -> None:
        """Refuse a bbox inside the imagery's extent that no scene covers.

        Raises:
            ValueError: always, naming a scene and where it lies.
        """
        assert self.imagery is not None
        assert self.bbox is not None
        index = self.imagery.index
        path, footprint = index.filepath.iloc[0], index.geometry.iloc[0]
        given = " ".join(f"{v:.10g}" for v in self.bbox)
        msg = (
            f"--bbox {given} ({self.bbox_crs.to_string()}) lies in a gap between "
            f"the {len(index)} Sentinel-2 scene(s) under {str(self.root)!r}, "
            "where there is no imagery to read; pass a bbox over a scene, e.g. "
            f"{path!r} covers "
            f"{lonlat_extent(footprint.bounds, self.imagery.crs)} (lon/lat)."
        )
        raise ValueError(msg)

    def _scenes(self) -> GeoDataFrame:
        """The imagery's index entries whose footprint overlaps the output grid.

        A scene that only touches the grid's edge has no pixel in it.

        Returns:
            Those rows of the index (``filepath`` and sensing interval).
        """
        assert self.imagery is not None
        assert self.grid is not None
        xmin, ymin, xmax, ymax = self.grid.bounds
        inside = self.grid.res * 1e-6
        index = self.imagery.index
        return index.cx[xmin + inside : xmax - inside, ymin + inside : ymax - inside]

    def input_files(self) -> dict[str, str]:
        """The files under the root that any map of this imagery is read from.

        Every band file, scene classification and ``cloud_mask.tif`` of each
        indexed product (also those of bands or masks not read this time), so
        that no output replaces one.

        Returns:
            Path (as indexed) -> what it is, for messages; existing files only.
        """
        assert self.imagery is not None
        imagery = self.imagery
        files: dict[str, str] = {}
        scene = "one of the Sentinel-2 files"
        for filepath in imagery.index.filepath:
            files[filepath] = scene
            if imagery.separate_files:
                for band in imagery.all_bands:
                    files.setdefault(imagery._update_filepath(band, filepath), scene)
                scl = imagery._scl_of(filepath)
                if scl is not None:
                    files[scl.path] = "a cloud mask (SCL)"
                folder = os.path.dirname(filepath)
                files[os.path.join(folder, CLOUD_MASK_NAME)] = "a cloud mask"
        for masks in imagery.cloud_masks.values():
            files.update((mask.path, "a cloud mask") for mask in masks)
        return {path: what for path, what in files.items() if os.path.exists(path)}

    def cloud_masks(self) -> list[str]:
        """The cloud mask files applied to the scenes under the output grid.

        See :class:`~torchgeo_simclr.datasets.CentralValleyS2`.

        Returns:
            Their absolute paths, sorted; empty without masks or with
            ``mask_clouds`` False.
        """
        assert self.imagery is not None
        masks = self.imagery.cloud_masks
        scenes = self._scenes().filepath
        return sorted(
            {
                os.path.abspath(mask.path)
                for path in scenes
                for mask in masks.get(path, ())
            }
        )

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Windows in row-major order (never shuffled: the writer relies on it).

        Returns:
            The DataLoader.
        """
        assert self.predict_dataset is not None
        workers = self.num_workers
        return DataLoader(
            self.predict_dataset,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=keep_batch,
            num_workers=workers,
            worker_init_fn=raster_worker if workers else None,
            persistent_workers=False,
        )

    def on_after_batch_transfer(
        self, batch: dict[str, Tensor], dataloader_idx: int
    ) -> dict[str, Tensor]:
        """Leave batches as read; the model normalises with its own statistics.

        Args:
            batch: ``image`` ``[B, C, h, w]``, ``valid``, ``row``, ``col``,
                ``skipped``.
            dataloader_idx: index of the dataloader.

        Returns:
            The batch unchanged.
        """
        return batch
