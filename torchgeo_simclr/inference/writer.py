"""A Lightning prediction writer that turns window predictions into map files."""

import json
import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from numpy.typing import NDArray
from PIL import Image
from pyproj import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window
from tqdm.auto import tqdm

from .. import __version__
from ..constants import (
    IRRIGATED,
    M2_PER_ACRE,
    M2_PER_HA,
    MAP_NODATA,
    MAX_PIXELS,
    NOT_IRRIGATED,
)
from ..datasets.dates import iso_days
from ..days import iso_day
from ..digest import CHECKPOINT_ID_LENGTH
from ..geopackage import missing_layer, write_geopackage
from ..interrupts import Terminated, deferred_interrupts
from ..lonlat import lonlat_extent
from ..outputs import (
    check_output_folder,
    make_folders,
    partial_path,
    remove_empty,
    same_file,
)
from ..run_record import RunClock, kept_warnings
from ..software import software_record
from .blend import StripBlender, WeightKind, blend_weights
from .geotiff import (
    PROBABILITY_NODATA,
    StripWriter,
    class_colormap,
    write_cog,
)
from .grid import OutputGrid
from .polygons import irrigated_polygons, with_provenance
from .styles import class_style, polygon_style, probability_style

#: Layer of the irrigated regions in ``PATH.gpkg``.
POLYGON_LAYER = "irrigated"

#: Keys of the JSON summary ``PATH.json`` that mark it as a map's.
SUMMARY_KEYS = ("irrigated_ha", "valid_ha", "files")

#: The start of the ``software`` tag of both GeoTIFFs (the version follows).
SOFTWARE = "torchgeo-simclr "

#: The command that runs the writer: ``torchgeo-simclr predict``, or
#: LightningCLI's ``torchgeo predict --config conf/predict_cal.yaml``.
Command = Literal["torchgeo-simclr", "torchgeo"]

#: How the settings that messages name are given on each command's line, and
#: (``command``) how the command itself is named.
OPTIONS: dict[Command, dict[str, str]] = {
    "torchgeo-simclr": {
        "command": "torchgeo-simclr predict",
        "out": "--out",
        "overwrite": "--overwrite",
        "threshold": "--threshold",
        "min_area_ha": "--min-area",
        "root": "--root",
        "checkpoint": "--checkpoint",
        "no_cloud_mask": "--no-cloud-mask",
        "cloud_buffer": "--cloud-buffer",
        "max_pixels": "--max-pixels",
        "bbox": "--bbox",
    },
    "torchgeo": {
        "command": "torchgeo predict",
        "out": "--trainer.callbacks.init_args.out",
        "overwrite": "--trainer.callbacks.init_args.overwrite true",
        "threshold": "--trainer.callbacks.init_args.threshold",
        "min_area_ha": "--trainer.callbacks.init_args.min_area_ha",
        "root": "--data.init_args.root",
        "checkpoint": "--model.init_args.checkpoint",
        "no_cloud_mask": "--data.init_args.mask_clouds false",
        "cloud_buffer": "--data.init_args.cloud_buffer",
        "max_pixels": "--trainer.callbacks.init_args.max_pixels",
        "bbox": "--data.init_args.bbox",
    },
}


def _raster_unlike_ours(path: Path) -> str | None:
    """Why *path* is no GeoTIFF of a map (the writer tags both), or None."""
    try:
        # A PNG or such named .tif opens too, with a NotGeoreferencedWarning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                software = src.tags().get("software", "")
    except RasterioError:
        return "not a raster GDAL reads"
    if not software.startswith(SOFTWARE):
        return "no 'software' tag of torchgeo-simclr"
    return None


def _style_unlike_ours(path: Path) -> str | None:
    """Why *path* is no QGIS raster style (as the writer writes), or None."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return "not a QGIS style"
    if root.tag != "qgis":
        return "not a QGIS style"
    if root.find(".//rasterrenderer") is None:
        return "a QGIS style of no raster"
    return None


def _polygons_unlike_ours(path: Path) -> str | None:
    """Why *path* is no GeoPackage with the irrigated regions' layer, or None."""
    return missing_layer(path, POLYGON_LAYER)


def _summary_unlike_ours(path: Path) -> str | None:
    """Why *path* is no JSON summary of a map, or None."""
    try:
        summary = json.loads(path.read_bytes())
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return "not JSON"
    if not isinstance(summary, dict):
        return "not a JSON object"
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    return f"no {missing[0]!r} key" if missing else None


def _quicklook_unlike_ours(path: Path) -> str | None:
    """Why *path* is no PNG that Matplotlib drew (as the quick look is), or None."""
    try:
        with Image.open(path) as image:  # reads the chunks before the pixels
            drawn = image.format == "PNG" and str(
                image.info.get("Software", "")
            ).startswith("Matplotlib")
    except (OSError, Image.DecompressionBombError):
        return "not an image"
    return None if drawn else "not a PNG drawn by Matplotlib"


def _folder(path: Path, option: str) -> str:
    """The refusal of ``--out PATH`` where *path* is a folder.

    Args:
        path: the class map's name given.
        option: the option that gave it.

    Returns:
        One sentence.
    """
    return (
        f"{option} {str(path)!r} is a folder; pass a file name, e.g. "
        f"{path / 'irrigation.tif'}."
    )


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
    def beside(
        cls, path: str | Path, command: Command = "torchgeo-simclr"
    ) -> "MapFiles":
        """The file names that belong to a map at *path*.

        Args:
            path: ``PATH.tif``.
            command: the command whose option names messages use.

        Returns:
            The names.

        Raises:
            IsADirectoryError: if *path* is a folder.
            ValueError: if *path* does not end in ``.tif`` or ``.tiff``.
        """
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(_folder(path, OPTIONS[command]["out"]))
        if path.suffix.lower() not in (".tif", ".tiff"):
            msg = (
                f"{OPTIONS[command]['out']} {str(path)!r} must end in .tif (the "
                "class map); the other files are named after it."
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

    @property
    def quicklook(self) -> Path:
        """``PATH_quicklook.png``, which ``torchgeo-simclr predict --quicklook`` draws.

        Not ``PATH.png``: QGIS would style that picture with ``PATH.qml``, the
        map's style. It is not one of :meth:`all`: the writer does not draw it.
        """
        return Path(f"{self.classes.with_suffix('')}_quicklook.png")

    def check_inputs(
        self,
        imagery: Mapping[str, str],
        checkpoint: str | os.PathLike[str] | None = None,
        command: Command = "torchgeo-simclr",
    ) -> None:
        """Refuse, even to overwrite, an output that is a file the map is made from.

        An output is such a file when it is the same file on disk (the same
        path, a symbolic link or a hard link to it).

        Args:
            imagery: path -> what it is, of the files under the imagery root,
                e.g. ``{"s2/B04.tif": "one of the Sentinel-2 files"}``.
            checkpoint: the checkpoint.
            command: the command whose option names the message uses.

        Raises:
            ValueError: if an output (the quick look included) is an input.
        """
        options = OPTIONS[command]
        inputs = {
            name: (f"{what} under {options['root']}", "outside the imagery, ")
            for name, what in imagery.items()
        }
        if checkpoint is not None:
            inputs[os.fspath(checkpoint)] = (
                f"the checkpoint ({options['checkpoint']})",
                "",
            )
        outputs = [*self.all(), self.quicklook]
        clash = same_file(outputs, {name: name for name in inputs})
        if clash is None:
            return
        output, name = clash
        what, elsewhere = inputs[name]
        option = options["out"]
        which = "" if str(output) == name else f" ({name!r})"
        found = (
            f"is {what}{which}"
            if output == self.classes
            else f"would write {str(output)!r}, which is {what}{which}"
        )
        msg = (
            f"{option} {str(self.classes)!r} {found}; choose another {option}, "
            f"{elsewhere}e.g. maps/irrigation.tif (nothing was written)."
        )
        raise ValueError(msg)

    def check_writable(
        self, overwrite: bool, command: Command = "torchgeo-simclr"
    ) -> None:
        """Refuse to replace files, or to write where one cannot.

        Even with *overwrite*, only the files of an earlier map are replaced:
        GeoTIFFs that the writer tagged, QGIS raster styles, a GeoPackage with
        the :data:`POLYGON_LAYER` and a summary with the :data:`SUMMARY_KEYS`
        (the quick look, which only ``torchgeo-simclr predict`` draws or
        removes, has :meth:`check_quicklook`). Nothing is created: a run that
        fails later leaves no empty folders.

        Args:
            overwrite: allow replacing the files of an earlier map.
            command: the command whose option names the message uses.

        Raises:
            FileExistsError: if a file exists that is not an earlier map's, or
                any exists and *overwrite* is False.
            IsADirectoryError: if a file would be written over a folder.
            PermissionError: if the directory cannot be created or written.
        """
        check_output_folder(self.classes.parent)
        options = OPTIONS[command]
        option = options["out"]
        for path in self.all():
            if not path.is_dir():
                continue
            if path == self.classes:
                raise IsADirectoryError(_folder(path, option))
            msg = (
                f"{option} {str(self.classes)!r} would write {str(path)!r}, which "
                f"is a folder; choose another {option} (nothing was written)."
            )
            raise IsADirectoryError(msg)
        existing = [path for path in self.all() if path.exists()]
        for path in existing:
            why = self.unlike_ours(path)
            if why is None:
                continue
            found = (
                "is"
                if path == self.classes
                else f"would replace {str(path)!r}, which is"
            )
            msg = (
                f"{option} {str(self.classes)!r} {found} not a map written by "
                f"{options['command']} ({why}); choose another {option} (nothing "
                "was written)."
            )
            raise FileExistsError(msg)
        if existing and not overwrite:
            one = len(existing) == 1
            msg = (
                f"{', '.join(map(str, existing))} already exist{'s' if one else ''}; "
                f"pass {options['overwrite']} to replace {'it' if one else 'them'}, "
                f"or choose another {option}."
            )
            raise FileExistsError(msg)

    def check_quicklook(self, overwrite: bool) -> None:
        """Refuse to draw or remove a quick look over anything but an earlier one.

        ``torchgeo-simclr predict`` draws :attr:`quicklook` with
        ``--quicklook`` and removes the replaced map's with ``--overwrite``.

        Args:
            overwrite: allow replacing an earlier quick look.

        Raises:
            FileExistsError: if the file is not a quick look, or is one and
                *overwrite* is False.
            IsADirectoryError: if it is a folder.
        """
        png, out = str(self.quicklook), str(self.classes)
        if self.quicklook.is_dir():
            msg = (
                f"--out {out!r} would write {png!r}, which is a folder; choose "
                "another --out (nothing was written)."
            )
            raise IsADirectoryError(msg)
        if not self.quicklook.exists():
            return
        why = self.unlike_ours(self.quicklook)
        if why is not None:
            msg = (
                f"--out {out!r} would replace {png!r}, which is not a quick look of "
                f"a map ({why}); choose another --out (nothing was written)."
            )
            raise FileExistsError(msg)
        if not overwrite:
            msg = f"{png!r} already exists; pass --overwrite to replace it."
            raise FileExistsError(msg)

    def unlike_ours(self, path: Path) -> str | None:
        """Why an existing *path*, one of the map's files, is no earlier map's.

        Args:
            path: one of :meth:`all` or the quick look.

        Returns:
            A few words for a message, or None for a file of an earlier map.
        """
        checks: dict[Path, Callable[[Path], str | None]] = {
            self.classes: _raster_unlike_ours,
            self.probability: _raster_unlike_ours,
            self.classes_style: _style_unlike_ours,
            self.probability_style: _style_unlike_ours,
            self.polygons: _polygons_unlike_ours,
            self.summary: _summary_unlike_ours,
            self.quicklook: _quicklook_unlike_ours,
        }
        try:
            return checks[path](path)
        except OSError as error:
            return f"unreadable: {error.strerror}"

    def make_folder(self) -> list[Path]:
        """Create the output directory, once the inputs have been checked.

        Returns:
            The folders created, deepest first (see
            :func:`~torchgeo_simclr.outputs.remove_empty`).

        Raises:
            PermissionError: if it cannot be created.
        """
        folder = self.classes.parent
        try:
            return make_folders(folder)
        except OSError as error:
            msg = (
                f"The output directory {str(folder)!r} cannot be created "
                f"({error.strerror}); pass --out in a directory you can write to."
            )
            raise PermissionError(msg) from None


def crs_units(crs: CRS) -> str:
    """The unit of a CRS's coordinates, as the summary names it.

    Args:
        crs: e.g. the map's.

    Returns:
        The unit of its first axis as PROJ names it: ``metre`` for UTM,
        ``degree`` for a geographic CRS, ``US survey foot`` for some State
        Plane zones.
    """
    return str(crs.axis_info[0].unit_name)


def detail_size(problem: str, res: float, window: int, overlap: int) -> float:
    """Side of the square that one value of a map stands for, in CRS units.

    A segmentation model gives every pixel a value of its own, so the detail
    is the pixel. A classification (per-patch) model gives each window one
    value, which the pixels of the window's central ``window - overlap``
    square take (see :func:`~torchgeo_simclr.inference.blend.blend_weights`),
    so the detail is the window stride: 24 px x 10 m = 240 m for windows of
    48 px that overlap by half, on the same 10 m grid.

    Args:
        problem: ``classification`` or ``segmentation``.
        res: pixel side of the map's grid, CRS units (metres for UTM).
        window: window side, pixels.
        overlap: pixels shared by neighbouring windows.

    Returns:
        The side, in the unit of *res* (metres for UTM).
    """
    return (window - overlap) * res if problem == "classification" else res


def detail_note(detail: float, window: float, res: float, units: str) -> str:
    """The line that tells a per-patch map's detail from its pixel size.

    Args:
        detail: from :func:`detail_size`.
        window: side of the window each value is predicted from, in the
            unit of *res*.
        res: pixel side of the map's grid.
        units: their unit, from :func:`crs_units`.

    Returns:
        e.g. ``Per-patch model: one value per 240 m x 240 m cell, each from a
        480 m x 480 m window, on the 10 m grid.``
    """
    unit = " m" if units in ("metre", "meter") else f" {units}"
    return (
        f"Per-patch model: one value per {detail:g}{unit} x {detail:g}{unit} cell, "
        f"each from a {window:g}{unit} x {window:g}{unit} window, on the "
        f"{res:g}{unit} grid."
    )


def finite(value: Any) -> Any:
    """*value* with every NaN or infinite float, however deep, made None.

    JSON has no NaN or Infinity (Python writes them, strict readers refuse
    the file); None is written as ``null``.

    Args:
        value: a number, string, list or dict of them.

    Returns:
        The same structure (lists for tuples).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


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
        command: Command = "torchgeo",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        """Initialise a new IrrigationMapWriter.

        Args:
            out: the class map, ``PATH.tif``; the other files go beside it.
            threshold: probability above which a pixel is irrigated (default:
                the threshold the model was scored with).
            min_area_ha: smallest irrigated region kept as a polygon, hectares.
            overwrite: replace the files of an earlier map (never others).
            progress: show a progress bar (tiles, pixels per second, time left).
            command: the command that runs the writer, whose option names
                messages use: ``torchgeo`` (``torchgeo predict --config``,
                where the writer is a trainer callback) or
                ``torchgeo-simclr`` (``torchgeo-simclr predict``).
            max_pixels: largest map made, pixels (width x height): a larger one
                (e.g. a stray scene far from the others under the root) is
                refused before anything is written.

        Raises:
            ValueError: if *out* is not ``.tif``, *threshold* is outside
                [0, 1] or *min_area_ha* is not a number of 0 or more.
        """
        options = OPTIONS[command]
        if threshold is not None and not 0 <= threshold <= 1:
            msg = (
                f"{options['threshold']} {threshold:g} is not a probability between "
                "0 and 1; pass e.g. 0.5, or leave it out for the model's own "
                "threshold."
            )
            raise ValueError(msg)
        if not 0 <= min_area_ha < math.inf:
            msg = (
                f"{options['min_area_ha']} {min_area_ha:g} ha is not an area of 0 "
                "ha or more; pass 0 to keep every irrigated region as a polygon, "
                "or e.g. 0.5."
            )
            raise ValueError(msg)
        if max_pixels < 1:
            msg = (
                f"{options['max_pixels']} {max_pixels} is not a number of pixels of "
                f"1 or more; pass e.g. {MAX_PIXELS}."
            )
            raise ValueError(msg)
        super().__init__(write_interval="batch")
        #: The command whose option names messages use.
        self.command: Command = command
        #: Output file names.
        self.files = MapFiles.beside(out, command)
        #: Probability above which a pixel is irrigated (None: the model's own).
        self.threshold = threshold
        #: Smallest irrigated region kept as a polygon, hectares.
        self.min_area_ha = min_area_ha
        #: Whether the files of an earlier map are replaced.
        self.overwrite = overwrite
        #: Whether a progress bar is shown.
        self.progress = progress
        #: Largest map made, pixels.
        self.max_pixels = max_pixels
        #: Summary of the last finished map (None before).
        self.summary: dict[str, Any] | None = None
        #: Final name -> temporary name of every file being written.
        self._partial: dict[Path, Path] = {}
        #: Striped (uncompressed) rasters written row by row, then made COGs.
        self._strips: dict[str, Path] = {}
        #: The thread laying out the COGs while the polygons are traced.
        self._cog_thread: ThreadPoolExecutor | None = None
        #: Folders this run created, removed again if it fails while empty.
        self._made: list[Path] = []
        #: Keeps the warnings shown from :meth:`setup` to :meth:`teardown`.
        self._keeping = ExitStack()
        #: Text of each warning shown since :meth:`setup`.
        self._warned: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Start keeping the warnings shown, for the summary.

        Args:
            trainer: the trainer.
            pl_module: the task.
            stage: the stage, ``predict``.
        """
        self._warned = self._keeping.enter_context(kept_warnings())

    def teardown(
        self, trainer: Trainer, pl_module: LightningModule, stage: str
    ) -> None:
        """Stop keeping warnings.

        Args:
            trainer: the trainer.
            pl_module: the task.
            stage: the stage, ``predict``.
        """
        self._keeping.close()

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the outputs and open the strip writers.

        Args:
            trainer: the trainer.
            pl_module: a :class:`~torchgeo_simclr.tasks.MapPredictionTask`.
        """
        datamodule: Any = trainer.datamodule  # type: ignore[attr-defined]
        task: Any = pl_module
        self._check_size(datamodule.grid, datamodule.bbox is None)
        self.files.check_inputs(
            datamodule.input_files(), task.hparams["checkpoint"], self.command
        )
        self.files.check_writable(self.overwrite, self.command)
        self._made = self.files.make_folder()
        grid: OutputGrid = datamodule.grid
        self._datamodule, self._task = datamodule, task
        self._threshold = task.threshold if self.threshold is None else self.threshold
        #: Sensing days of the pixels read so far (see GridPatches).
        self._days: set[int] = set()
        self._dates: list[str] = []
        self._masks: list[str] = datamodule.cloud_masks()
        self._buffer = float(datamodule.cloud_buffer) if self._masks else 0.0
        size, overlap = datamodule.patch_size, datamodule.overlap
        #: Window side and overlap the map is made with, pixels.
        self._window, self._overlap = int(size), int(overlap)
        #: The imagery folder, absolute.
        self._root = str(Path(datamodule.root).resolve())
        #: Versions and source commit of the software making the map.
        self._software = software_record()
        #: Side of the square one value of the map stands for, CRS units.
        self._detail = detail_size(task.problem, grid.res, self._window, self._overlap)
        kind: WeightKind = "centre" if task.problem == "classification" else "taper"
        self._blender = StripBlender(
            grid.width, grid.height, blend_weights(size, overlap, kind)
        )
        tags = {
            "software": f"{SOFTWARE}{__version__}",
            "model": task.model.spec.model,
            "checkpoint": task.model_info()["checkpoint"],
            "checkpoint_sha256": task.checkpoint_sha256,
            "problem": task.problem,
            "detail_size": f"{self._detail:g}",
            "threshold": f"{self._threshold:g}",
            "cloud_masks": str(len(self._masks)),
            "cloud_buffer_m": f"{self._buffer:g}",
            "window_px": str(self._window),
            "overlap_px": str(self._overlap),
            "root": self._root,
        }
        if self._software["commit"] is not None:
            tags["software_commit"] = self._software["commit"]
        if datamodule.bbox is not None:
            # Pixels outside it are nodata, even within the map's rectangle.
            tags["bbox"] = ",".join(repr(float(v)) for v in datamodule.bbox)
            tags["bbox_crs"] = datamodule.bbox_crs.to_string()
        # Lets evaluate tell a score against the model's own training labels.
        trained_on = (task.training_labels or {}).get("labels_sha256")
        if trained_on is not None:
            tags["training_labels_sha256"] = trained_on
        # How good the model was where it was not trained, for the map's reader.
        for name, value in (task.val_scores or {}).items():
            if name.startswith("val_"):
                tags[name] = f"{value:.4g}"
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
        self._counts = {"irrigated": 0, "valid": 0, "footprint": 0}
        #: When the map was started, UTC, ISO 8601, and how long it took (the
        #: summary's; the GeoTIFFs carry no time, so the same inputs give the
        #: same files).
        self._clock = RunClock()
        self._bar = tqdm(
            total=len(datamodule.windows),
            desc="predict",
            unit="tile",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self._pixels = 0

    def _check_size(self, grid: OutputGrid, whole: bool) -> None:
        """Refuse a map of more than :attr:`max_pixels` pixels.

        Args:
            grid: the map's grid.
            whole: whether it covers all the imagery (no bbox was given).

        Raises:
            ValueError: if *grid* has more pixels than :attr:`max_pixels`.
        """
        pixels = grid.width * grid.height
        if pixels <= self.max_pixels:
            return
        options = OPTIONS[self.command]
        res = float(grid.transform.a)
        unit = crs_units(grid.crs)
        where = "the imagery under the root" if whole else "the bbox"
        fix = f"pass a {options['bbox']} over the region to map" + (
            "" if whole else " that is smaller"
        )
        msg = (
            f"The map of {where} would be {grid.width:,} x {grid.height:,} px of "
            f"{res:g} {unit} ({pixels / 1e9:.1f} billion px, about "
            f"{pixels * 5 / 1e9:,.0f} GB of rasters before compression), more than "
            f"{options['max_pixels']} {self.max_pixels:,}; it spans "
            f"{lonlat_extent(grid.bounds, grid.crs)} (lon/lat), so {fix}, look for a "
            "scene far from the others under the root, or raise "
            f"{options['max_pixels']} to map it all."
        )
        raise ValueError(msg)

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
            batch: its ``dates``, the sensing days of its pixels (see
                :class:`~torchgeo_simclr.datamodules.patches.GridPatches`).
            batch_idx: unused.
            dataloader_idx: unused.

        Raises:
            Terminated: once the process got SIGTERM, which Lightning's own
                handler only notes during prediction.
        """
        if trainer.received_sigterm:
            raise Terminated
        self._days.update(batch["dates"].tolist())
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
        elapsed = self._clock.seconds()
        self._bar.set_postfix_str(f"{self._pixels / max(elapsed, 1e-9):,.0f} px/s")

    def _write_rows(self, first: int, values: NDArray[np.float32]) -> None:
        """Threshold and write finished rows to both strip files.

        Pixels outside the bbox's footprint (see
        :meth:`~torchgeo_simclr.inference.grid.OutputGrid.inside`) are nodata.
        """
        inside = self._datamodule.grid.inside(first, len(values))
        self._counts["footprint"] += int(inside.sum())
        missing = np.isnan(values) | ~inside
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
        # The dates of the pixels read, not of every scene under the map: a
        # newer scene with data everywhere leaves the older ones unread.
        self._dates = iso_days(self._days)
        for raster in (self._classes, self._probability):
            raster.dataset.update_tags(imagery_dates=",".join(self._dates))
        self._classes.close()
        self._probability.close()
        files, partial, strips = self.files, self._partial, self._strips
        # A large map takes a while after its last tile (35 s of 240 s for
        # 8192 x 8192 px): a second bar names the step under way.
        self._bar = tqdm(
            total=3,
            desc="write",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            bar_format="{desc}: {n}/{total} steps |{bar}| {elapsed}{postfix}",
            postfix="COGs and polygons",
        )
        # The cores are free once the network is done: GDAL lays out the COGs
        # in a thread while the polygons are traced from the same strips.
        self._cog_thread = ThreadPoolExecutor(max_workers=1)
        cogs = self._cog_thread.submit(self._write_cogs)
        polygons = with_provenance(
            irrigated_polygons(
                strips["classes"], strips["probability"], self.min_area_ha
            ),
            self._dates,
            str(Path(self._task.hparams["checkpoint"]).resolve()),
            self._task.checkpoint_sha256[:CHECKPOINT_ID_LENGTH],
            self._threshold,
        )
        cogs.result()
        self._cog_thread.shutdown()
        self._cog_thread = None
        for path in strips.values():
            path.unlink()
        self._bar.update()
        self._bar.set_postfix_str("GeoPackage")  # shown now, however short the step
        # Named, the geometry type holds for an empty layer too (else Unknown);
        # through Arrow, the acquisition dates are DATE fields (else DateTime).
        write_geopackage(
            polygons,
            partial[files.polygons],
            POLYGON_LAYER,
            style=("irrigated regions", polygon_style()),
            geometry_type="Polygon",
            use_arrow=True,
        )
        self._bar.update()
        self._bar.set_postfix_str(
            "styles and summary"
        )  # shown now, however short the step
        partial[files.classes_style].write_text(class_style())
        partial[files.probability_style].write_text(probability_style())
        if not self._counts["valid"]:
            warnings.warn(self._no_data(), UserWarning, stacklevel=1)
        summary = finite(self._summary(polygons))
        text = json.dumps(summary, indent=2, allow_nan=False)
        partial[files.summary].write_text(text + "\n")
        # Files may have appeared while the map was computed: nothing but an
        # earlier map is replaced, and no file is renamed over a folder.
        self.files.check_writable(self.overwrite, self.command)
        # Every file is complete: only now do they take their real names, all
        # of them (a Ctrl-C meanwhile takes effect once they have).
        with deferred_interrupts():
            for path, temporary in partial.items():
                os.replace(temporary, path)
            self._partial, self._strips = {}, {}
            self.summary = summary
        self._bar.update()
        self._bar.set_postfix_str("done")  # shown now, however short the step
        self._bar.close()
        if self._task.problem == "classification":
            grid = self._datamodule.grid
            window = self._window * grid.res
            print(detail_note(self._detail, window, grid.res, crs_units(grid.crs)))

    def _no_data(self) -> str:
        """Why a finished map may have no pixel with data, and what to do."""
        options = OPTIONS[self.command]
        if self._masks:
            grown = f" (grown by {self._buffer:g} m)" if self._buffer else ""
            smaller = f" or a smaller {options['cloud_buffer']}" if self._buffer else ""
            why = (
                f"every pixel is masked as cloud by the {len(self._masks)} cloud "
                f"mask(s){grown} or is nodata in the imagery"
            )
            fix = (
                f"pass {options['no_cloud_mask']} to keep cloudy pixels{smaller}, "
                "or map imagery of another date"
            )
        else:
            why = "the imagery under the bbox is nodata in every pixel"
            fix = "map a bbox over imagery with data"
        return (
            f"the map {str(self.files.classes)!r} is all nodata (no pixel with "
            f"data): {why}; {fix}."
        )

    def _write_cogs(self) -> None:
        """Lay out both strip files as COGs under their temporary names."""
        files, partial, strips = self.files, self._partial, self._strips
        write_cog(strips["classes"], partial[files.classes], "nearest")
        write_cog(strips["probability"], partial[files.probability], "average")

    def _summary(self, regions: Any) -> dict[str, Any]:
        """The JSON summary of the finished map, with its irrigated *regions*."""
        grid, bbox = self._datamodule.grid, self._datamodule.bbox
        res = grid.res
        pixel_ha = res * res / M2_PER_HA
        pixel_acres = res * res / M2_PER_ACRE
        valid, irrigated = self._counts["valid"], self._counts["irrigated"]
        return {
            "bbox": list(bbox) if bbox is not None else None,
            "bbox_crs": (
                self._datamodule.bbox_crs.to_string() if bbox is not None else None
            ),
            "bounds": list(grid.bounds),
            "bounds_lonlat": list(grid.lonlat_bounds()),
            "crs": grid.crs.to_string(),
            "crs_units": crs_units(grid.crs),
            "pixel_size": res,
            "detail_size": self._detail,
            "width": grid.width,
            "height": grid.height,
            "footprint_ha": round(self._counts["footprint"] * pixel_ha, 2),
            "irrigated_ha": round(irrigated * pixel_ha, 2),
            "valid_ha": round(valid * pixel_ha, 2),
            "irrigated_acres": round(irrigated * pixel_acres, 2),
            "valid_acres": round(valid * pixel_acres, 2),
            "irrigated_fraction": round(irrigated / valid, 4) if valid else 0.0,
            "irrigated_regions": len(regions),
            "min_region_ha": self.min_area_ha,
            "regions_ha": round(float(regions["area_ha"].sum()), 2),
            "threshold": self._threshold,
            "imagery_dates": self._dates,
            "start": iso_day(self._datamodule.start),
            "end": iso_day(self._datamodule.end),
            "mask_clouds": bool(self._datamodule.mask_clouds),
            "cloud_masks": self._masks,
            "cloud_buffer_m": self._buffer,
            "window_px": self._window,
            "overlap_px": self._overlap,
            "root": self._root,
            "model": self._task.model_info(),
            "software": self._software,
            "created": self._clock.created,
            "run_seconds": self._clock.seconds(),
            "warnings": [*self._datamodule.warned, *self._warned],
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
        # Lightning calls no teardown after an exception: stop keeping warnings.
        self._keeping.close()
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
        remove_empty(self._made)
