"""Windows over a bounding box of the imagery, for tiled prediction."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pyproj import CRS
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchgeo.datamodules import BaseDataModule
from torchgeo.datasets import RasterDataset

from ..constants import S2_BANDS
from ..datasets import CentralValleyS2
from ..inference.grid import LONLAT, OutputGrid, output_grid
from .central_valley import fresh_file_handles


class WindowDataset(Dataset[dict[str, Any]]):
    """The imagery under each window of an output grid, in row-major order."""

    def __init__(
        self, imagery: RasterDataset, grid: OutputGrid, windows: Sequence[Window]
    ) -> None:
        """Initialise a new WindowDataset.

        Args:
            imagery: the Sentinel-2 dataset, read on its own pixel grid.
            grid: the output grid (the imagery's grid cut to the bbox).
            windows: windows of *grid*, in the order they are written.
        """
        #: Where pixels are read from.
        self.imagery = imagery
        #: The grid the windows refer to.
        self.grid = grid
        #: The windows, row by row.
        self.windows = list(windows)

    def __len__(self) -> int:
        """Return the number of windows.

        Returns:
            Windows over the grid.
        """
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Read the imagery under one window.

        Args:
            index: window number.

        Returns:
            ``image`` float32 ``[C, h, w]`` reflectance x10000 (0 = nodata, also
            where the window reaches past the imagery), ``row`` and ``col`` of
            the window's top-left pixel on the grid.
        """
        window = self.windows[index]
        xmin, ymin, xmax, ymax = self.grid.window_bounds(window)
        res = self.grid.res
        try:
            image = self.imagery[xmin:xmax:res, ymin:ymax:res]["image"].float()
        except IndexError:
            # A window over a gap between scenes: no data at all.
            bands = len(self.imagery.bands)
            image = torch.zeros(bands, int(window.height), int(window.width))
        return {
            "image": image,
            "row": int(window.row_off),
            "col": int(window.col_off),
        }


class MapDataModule(BaseDataModule):
    """Sentinel-2 windows over a bounding box, on the imagery's own pixel grid.

    Only ``predict`` is supported: the windows tile the region with *overlap*
    pixels shared between neighbours, row by row, so a writer can blend and
    write the map strip by strip. Normalisation is the model's business (its
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
        self.bbox_crs = CRS.from_user_input(bbox_crs) if bbox_crs else LONLAT
        #: Bands read, in model order.
        self.bands = list(bands)
        #: Window side and overlap, pixels.
        self.patch_size, self.overlap = patch_size, overlap
        #: The imagery and the output grid, set by :meth:`setup`.
        self.imagery: CentralValleyS2 | None = None
        self.grid: OutputGrid | None = None

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
        self.imagery = CentralValleyS2(self.root, bands=self.bands)
        self.grid = output_grid(self.imagery, self.bbox, self.bbox_crs)
        windows = self.grid.windows(self.patch_size, self.overlap)
        self.predict_dataset = WindowDataset(self.imagery, self.grid, windows)

    def imagery_dates(self) -> list[str]:
        """Sensing dates of the scenes under the output grid.

        Returns:
            ISO dates (``YYYY-MM-DD``), sorted, without repeats.
        """
        assert self.imagery is not None
        assert self.grid is not None
        xmin, ymin, xmax, ymax = self.grid.bounds
        index = self.imagery.index.cx[xmin:xmax, ymin:ymax]
        dates: set[str] = set()
        for interval in index.index:
            start = interval.left if isinstance(interval, pd.Interval) else interval
            dates.add(pd.Timestamp(start).to_pydatetime().date().isoformat())
        return sorted(dates)

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
            num_workers=workers,
            worker_init_fn=fresh_file_handles if workers else None,
            persistent_workers=False,
        )

    def on_after_batch_transfer(
        self, batch: dict[str, Tensor], dataloader_idx: int
    ) -> dict[str, Tensor]:
        """Leave batches as read; the model normalises with its own statistics.

        Args:
            batch: ``image`` ``[B, C, h, w]``, ``row``, ``col``.
            dataloader_idx: index of the dataloader.

        Returns:
            The batch unchanged.
        """
        return batch
