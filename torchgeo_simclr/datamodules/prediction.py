"""Windows over a bounding box of the imagery, for tiled prediction."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geopandas import GeoDataFrame
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import BaseDataModule

from ..constants import S2_BANDS
from ..datasets import CentralValleyS2
from ..datasets.sentinel2 import sensing_date
from ..inference.grid import LONLAT, OutputGrid, output_grid, parse_bbox_crs
from .central_valley import fresh_file_handles
from .patches import GridPatches, keep_batch

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

        Raises:
            ValueError: if *overlap* is not between 0 and *patch_size* - 1.
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
        #: Region and its CRS.
        self.bbox = None if bbox is None else tuple(float(v) for v in bbox)
        self.bbox_crs = parse_bbox_crs(bbox_crs) if bbox_crs else LONLAT
        #: Bands read, in model order.
        self.bands = list(bands)
        #: Window side and overlap, pixels.
        self.patch_size, self.overlap = patch_size, overlap
        #: Whether cloud masks beside per-band files are applied.
        self.mask_clouds = mask_clouds
        #: Metres by which masked clouds grow beyond the bands' reach.
        self.cloud_buffer = cloud_buffer
        #: The imagery and the output grid, set by :meth:`setup`.
        self.imagery: CentralValleyS2 | None = None
        self.grid: OutputGrid | None = None
        #: The windows, row by row, set by :meth:`setup`.
        self.windows: list[Window] = []

    def setup(self, stage: str) -> None:
        """Open the imagery and lay the windows over the bbox.

        Args:
            stage: must be ``predict``.

        Raises:
            ValueError: for any other stage.
        """
        if stage != "predict":
            msg = f"MapDataModule only predicts; got stage {stage!r}."
            raise ValueError(msg)
        if self.imagery is not None:
            return
        self.imagery = CentralValleyS2(
            self.root,
            bands=self.bands,
            mask_clouds=self.mask_clouds,
            cloud_buffer=self.cloud_buffer,
        )
        self.grid = output_grid(self.imagery, self.bbox, self.bbox_crs)
        self.windows = self.grid.windows(self.patch_size, self.overlap)
        self.predict_dataset = GridPatches(
            self.imagery,
            self.grid,
            self.windows,
            min_valid=0,
            block_shape=(1, READ_WIDTH),
        )

    def _scenes(self) -> GeoDataFrame:
        """The imagery's index entries under the output grid.

        Returns:
            Those rows of the index (``filepath`` and sensing interval).
        """
        assert self.imagery is not None
        assert self.grid is not None
        xmin, ymin, xmax, ymax = self.grid.bounds
        return self.imagery.index.cx[xmin:xmax, ymin:ymax]

    def cloud_masks(self) -> list[str]:
        """The cloud mask files applied to the scenes under the output grid.

        See :class:`~torchgeo_simclr.datasets.CentralValleyS2`.

        Returns:
            Their paths, sorted; empty without masks or with ``mask_clouds``
            False.
        """
        assert self.imagery is not None
        masks = self.imagery.cloud_masks
        scenes = self._scenes().filepath
        return sorted({mask.path for path in scenes for mask in masks.get(path, ())})

    def imagery_dates(self) -> list[str]:
        """Sensing dates of the scenes under the output grid.

        Returns:
            ISO dates (``YYYY-MM-DD``), sorted, without repeats, then
            ``"unknown"`` when a scene's name carries no date.
        """
        dates = {sensing_date(interval) for interval in self._scenes().index}
        known = sorted(day.isoformat() for day in dates if day is not None)
        return known + (["unknown"] if None in dates else [])

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
            worker_init_fn=fresh_file_handles if workers else None,
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
