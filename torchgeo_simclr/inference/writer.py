"""A Lightning prediction writer that turns window predictions into map files."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from numpy.typing import NDArray
from rasterio.windows import Window
from tqdm.auto import tqdm

from .. import __version__
from ..constants import IRRIGATED, MAP_NODATA, NOT_IRRIGATED
from ..geopackage import write_geopackage
from ..outputs import check_output_folder
from .blend import StripBlender, WeightKind, blend_weights
from .geotiff import (
    PROBABILITY_NODATA,
    StripWriter,
    class_colormap,
    write_cog,
)
from .grid import OutputGrid
from .polygons import M2_PER_HA, irrigated_polygons
from .styles import class_style, polygon_style, probability_style

#: Layer of the irrigated regions in ``PATH.gpkg``.
POLYGON_LAYER = "irrigated"


@dataclass(frozen=True)
class MapFiles:
    """The files of one irrigation map, all beside ``PATH.tif``."""

    #: uint8 classes (0, 1, 255 = nodata), COG.
    classes: Path
    #: float32 probability of irrigation (-1 = nodata), COG.
    probability: Path
    #: QGIS style of the classes.
    classes_style: Path
    #: QGIS style of the probability.
    probability_style: Path
    #: Irrigated regions as polygons.
    polygons: Path
    #: Summary: extent, areas, model, run time.
    summary: Path

    @classmethod
    def beside(cls, path: str | Path) -> "MapFiles":
        """The file names that belong to a map at *path*.

        Args:
            path: ``PATH.tif``.

        Returns:
            The names.

        Raises:
            ValueError: if *path* does not end in ``.tif`` or ``.tiff``.
        """
        path = Path(path)
        if path.suffix.lower() not in (".tif", ".tiff"):
            msg = (
                f"--out {str(path)!r} must end in .tif (the class map); the other "
                "files are named after it."
            )
            raise ValueError(msg)
        # Not with_suffix: a name such as irrig.2023.tif keeps its ".2023".
        stem = path.with_suffix("")
        return cls(
            classes=path,
            probability=Path(f"{stem}_probability{path.suffix}"),
            classes_style=Path(f"{stem}.qml"),
            probability_style=Path(f"{stem}_probability.qml"),
            polygons=Path(f"{stem}.gpkg"),
            summary=Path(f"{stem}.json"),
        )

    def all(self) -> list[Path]:
        """Every file, class map first.

        Returns:
            The paths.
        """
        return [
            self.classes,
            self.probability,
            self.classes_style,
            self.probability_style,
            self.polygons,
            self.summary,
        ]

    def check_writable(self, overwrite: bool) -> None:
        """Refuse to replace files, or to write where one cannot.

        Nothing is created: a run that fails later leaves no empty folders.

        Args:
            overwrite: allow replacing existing files.

        Raises:
            FileExistsError: if a file exists and *overwrite* is False.
            PermissionError: if the directory cannot be created or written.
        """
        check_output_folder(self.classes.parent)
        existing = [str(path) for path in self.all() if path.exists()]
        if existing and not overwrite:
            msg = (
                f"{', '.join(existing)} already exist; pass --overwrite to replace "
                "them, or choose another --out."
            )
            raise FileExistsError(msg)

    def make_folder(self) -> None:
        """Create the output directory, once the inputs have been checked.

        Raises:
            PermissionError: if it cannot be created.
        """
        folder = self.classes.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            msg = (
                f"The output directory {str(folder)!r} cannot be created "
                f"({error.strerror}); pass --out in a directory you can write to."
            )
            raise PermissionError(msg) from None


def partial_path(path: Path) -> Path:
    """A hidden temporary name beside *path*, with the same suffix.

    Args:
        path: the file's final name.

    Returns:
        ``.STEM.partial-PID.SUFFIX`` in the same directory, renamed to *path*
        once the file is complete.
    """
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


class IrrigationMapWriter(BasePredictionWriter):
    """Blend window predictions into an irrigation map and its companion files.

    Windows must arrive row by row (as :class:`MapDataModule` delivers them).
    Finished rows are written as soon as no later window can touch them, so
    memory stays at a strip of the map. At the end the files are laid out as
    Cloud Optimized GeoTIFFs, styled for QGIS, polygonised and summarised, all
    under temporary names that are renamed only when everything is written.
    """

    def __init__(
        self,
        out: str | Path,
        threshold: float | None = None,
        min_area_ha: float = 0.5,
        overwrite: bool = False,
        progress: bool = True,
    ) -> None:
        """Initialise a new IrrigationMapWriter.

        Args:
            out: the class map, ``PATH.tif``; the other files go beside it.
            threshold: probability above which a pixel is irrigated (default:
                the threshold the model was scored with).
            min_area_ha: smallest irrigated region kept as a polygon, hectares.
            overwrite: replace existing output files.
            progress: show a progress bar (tiles, pixels per second, time left).

        Raises:
            ValueError: if *out* is not ``.tif``, *threshold* is outside
                [0, 1] or *min_area_ha* is negative.
        """
        if threshold is not None and not 0 <= threshold <= 1:
            msg = (
                f"--threshold {threshold:g} is not a probability between 0 and 1; "
                "pass e.g. 0.5, or leave it out for the model's own threshold."
            )
            raise ValueError(msg)
        if min_area_ha < 0:
            msg = (
                f"--min-area {min_area_ha:g} ha is negative; pass 0 to keep every "
                "irrigated region as a polygon, or e.g. 0.5."
            )
            raise ValueError(msg)
        super().__init__(write_interval="batch")
        #: Output file names.
        self.files = MapFiles.beside(out)
        self.threshold = threshold
        self.min_area_ha = min_area_ha
        self.overwrite = overwrite
        self.progress = progress
        #: Summary of the last finished map (None before).
        self.summary: dict[str, Any] | None = None
        #: Final name -> temporary name of every file being written.
        self._partial: dict[Path, Path] = {}
        #: Striped (uncompressed) rasters written row by row, then made COGs.
        self._strips: dict[str, Path] = {}
        #: The thread laying out the COGs while the polygons are traced.
        self._cog_thread: ThreadPoolExecutor | None = None

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the outputs and open the strip writers.

        Args:
            trainer: the trainer.
            pl_module: a :class:`~torchgeo_simclr.tasks.MapPredictionTask`.
        """
        self.files.check_writable(self.overwrite)
        self.files.make_folder()
        datamodule: Any = trainer.datamodule  # type: ignore[attr-defined]
        grid: OutputGrid = datamodule.grid
        task: Any = pl_module
        self._datamodule, self._task = datamodule, task
        self._threshold = task.threshold if self.threshold is None else self.threshold
        self._dates: list[str] = datamodule.imagery_dates()
        self._masks: list[str] = datamodule.cloud_masks()
        self._buffer = float(datamodule.cloud_buffer) if self._masks else 0.0
        size, overlap = datamodule.patch_size, datamodule.overlap
        kind: WeightKind = "centre" if task.problem == "classification" else "taper"
        self._blender = StripBlender(
            grid.width, grid.height, blend_weights(size, overlap, kind)
        )
        tags = {
            "software": f"torchgeo-simclr {__version__}",
            "model": task.model.spec.model,
            "checkpoint": task.model_info()["checkpoint"],
            "checkpoint_sha256": task.checkpoint_sha256,
            "problem": task.problem,
            "threshold": f"{self._threshold:g}",
            "imagery_dates": ",".join(self._dates),
            "cloud_masks": str(len(self._masks)),
            "cloud_buffer_m": f"{self._buffer:g}",
        }
        self._partial = {path: partial_path(path) for path in self.files.all()}
        self._strips = {
            name: partial_path(path.with_suffix(".strips.tif"))
            for name, path in (
                ("classes", self.files.classes),
                ("probability", self.files.probability),
            )
        }
        self._classes = StripWriter(
            self._strips["classes"],
            grid,
            "uint8",
            MAP_NODATA,
            f"irrigated (probability > {self._threshold:g})",
            {
                **tags,
                "classes": f"{NOT_IRRIGATED} not irrigated, {IRRIGATED} irrigated, "
                f"{MAP_NODATA} nodata",
            },
            class_colormap(),
        )
        self._probability = StripWriter(
            self._strips["probability"],
            grid,
            "float32",
            PROBABILITY_NODATA,
            "probability of irrigation",
            tags,
        )
        self._counts = {"irrigated": 0, "valid": 0}
        self._start = time.perf_counter()
        self._bar = tqdm(
            total=len(datamodule.windows),
            desc="predict",
            unit="tile",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self._pixels = 0

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Blend a batch of windows and write the rows that are finished.

        Args:
            trainer: the trainer.
            pl_module: the task.
            prediction: ``probability`` and ``valid`` ``[B, h, w]``, ``row`` and
                ``col`` ``[B]``.
            batch_indices: unused.
            batch: unused.
            batch_idx: unused.
            dataloader_idx: unused.
        """
        probability = prediction["probability"].float().cpu().numpy()
        valid = prediction["valid"].cpu().numpy()
        rows, cols = prediction["row"].tolist(), prediction["col"].tolist()
        for i, (row, col) in enumerate(zip(rows, cols, strict=True)):
            height, width = probability[i].shape
            window = Window(col, row, width, height)
            for first, values in self._blender.add(window, probability[i], valid[i]):
                self._write_rows(first, values)
            self._pixels += height * width
        self._bar.update(len(rows))
        elapsed = time.perf_counter() - self._start
        self._bar.set_postfix_str(f"{self._pixels / max(elapsed, 1e-9):,.0f} px/s")

    def _write_rows(self, first: int, values: NDArray[np.float32]) -> None:
        """Threshold and write finished rows to both strip files."""
        missing = np.isnan(values)
        classes = (values > self._threshold).astype(np.uint8)
        classes[missing] = MAP_NODATA
        self._classes.write(first, classes)
        self._probability.write(first, np.where(missing, PROBABILITY_NODATA, values))
        self._counts["valid"] += int((~missing).sum())
        self._counts["irrigated"] += int((classes == IRRIGATED).sum())

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the last rows, then the COGs, styles, polygons and summary.

        Args:
            trainer: the trainer.
            pl_module: the task.
        """
        for first, values in self._blender.finish():
            self._write_rows(first, values)
        self._bar.close()
        self._classes.close()
        self._probability.close()
        files, partial, strips = self.files, self._partial, self._strips
        # The cores are free once the network is done: GDAL lays out the COGs
        # in a thread while the polygons are traced from the same strips.
        self._cog_thread = ThreadPoolExecutor(max_workers=1)
        cogs = self._cog_thread.submit(self._write_cogs)
        polygons = irrigated_polygons(
            strips["classes"], strips["probability"], self.min_area_ha
        )
        cogs.result()
        self._cog_thread.shutdown()
        self._cog_thread = None
        for path in strips.values():
            path.unlink()
        # Named, the geometry type holds for an empty layer too (else Unknown).
        write_geopackage(
            polygons,
            partial[files.polygons],
            POLYGON_LAYER,
            style=("irrigated regions", polygon_style()),
            geometry_type="Polygon",
        )
        partial[files.classes_style].write_text(class_style())
        partial[files.probability_style].write_text(probability_style())
        self.summary = self._summary(len(polygons))
        partial[files.summary].write_text(json.dumps(self.summary, indent=2) + "\n")
        # Every file is complete: only now do they take their real names.
        for path, temporary in partial.items():
            os.replace(temporary, path)
        self._partial, self._strips = {}, {}

    def _write_cogs(self) -> None:
        """Lay out both strip files as COGs under their temporary names."""
        files, partial, strips = self.files, self._partial, self._strips
        write_cog(strips["classes"], partial[files.classes], "nearest")
        write_cog(strips["probability"], partial[files.probability], "average")

    def _summary(self, n_regions: int) -> dict[str, Any]:
        """The JSON summary of the finished map."""
        grid, bbox = self._datamodule.grid, self._datamodule.bbox
        res = grid.res
        pixel_ha = res * res / M2_PER_HA
        valid, irrigated = self._counts["valid"], self._counts["irrigated"]
        return {
            "bbox": list(bbox) if bbox is not None else None,
            "bbox_crs": self._datamodule.bbox_crs.to_string(),
            "bounds": list(grid.bounds),
            "bounds_lonlat": list(grid.lonlat_bounds()),
            "crs": grid.crs.to_string(),
            "pixel_size": res,
            "width": grid.width,
            "height": grid.height,
            "irrigated_ha": round(irrigated * pixel_ha, 2),
            "valid_ha": round(valid * pixel_ha, 2),
            "irrigated_fraction": round(irrigated / valid, 4) if valid else 0.0,
            "irrigated_regions": n_regions,
            "min_region_ha": self.min_area_ha,
            "threshold": self._threshold,
            "imagery_dates": self._dates,
            "cloud_masks": self._masks,
            "cloud_buffer_m": self._buffer,
            "model": self._task.model_info(),
            "run_seconds": round(time.perf_counter() - self._start, 2),
            "files": {
                "classes": self.files.classes.name,
                "probability": self.files.probability.name,
                "classes_style": self.files.classes_style.name,
                "probability_style": self.files.probability_style.name,
                "polygons": self.files.polygons.name,
            },
        }

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Remove the temporary files of an interrupted run; outputs stay as they were.

        Args:
            trainer: the trainer.
            pl_module: the task.
            exception: what stopped the run.
        """
        for writer in ("_classes", "_probability"):
            if hasattr(self, writer):
                getattr(self, writer).close()
        if hasattr(self, "_bar"):
            self._bar.close()
        if self._cog_thread is not None:
            # A COG still being written would reappear after its removal.
            self._cog_thread.shutdown(wait=True)
            self._cog_thread = None
        for path in [*self._partial.values(), *self._strips.values()]:
            path.unlink(missing_ok=True)
        self._partial, self._strips = {}, {}
