"""One call from a checkpoint and a bounding box to a styled irrigation map."""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ..constants import MAX_PIXELS
from ..days import parse_days
from ..interrupts import Interrupted, Terminated, keyboard_interrupts
from .device import resolve_device
from .writer import IrrigationMapWriter, MapFiles


@dataclass(frozen=True)
class MapResult:
    """What :func:`predict_map` wrote."""

    #: The files (class map, probability, styles, polygons, summary).
    files: MapFiles
    #: The JSON summary as a dictionary (areas in hectares, model, run time).
    summary: dict[str, Any]


def default_window(problem: str, patch_size: int) -> tuple[int, int]:
    """Window side and overlap for a model, pixels.

    Classification models see windows of their training patch size, which
    overlap by half, so the map has one value per half patch on the imagery's
    grid (its summary's and tags' ``detail_size``, e.g. 240 m for 48 px
    patches of 10 m, beside ``pixel_size`` 10 m; see
    :func:`~torchgeo_simclr.inference.writer.detail_size`). Segmentation
    models see 256-pixel windows (or their training size when larger) that
    overlap by a quarter.

    Args:
        problem: ``classification`` or ``segmentation``.
        patch_size: the model's training patch side, pixels.

    Returns:
        ``(patch_size, overlap)``.
    """
    if problem == "classification":
        return patch_size, patch_size // 2
    size = max(256, -(-patch_size // 32) * 32)
    return size, size // 4


#: Pixels per batch of windows by default: 8 windows of 256 x 256 px.
BATCH_PIXELS = 8 * 256 * 256


def default_batch_size(size: int) -> int:
    """Windows per batch for windows of *size* pixels: :data:`BATCH_PIXELS` worth.

    A batch then takes about the same memory whatever the window: 8 windows of
    256 px (segmentation), 227 of 48 px (classification). On a 2-core CPU, maps
    of the sample scene with the quickstart student (48 px windows) took 26-28
    s in batches of 64 or 227 windows, against 33-35 s in batches of 8, when
    each window was still a raster query of its own.

    Args:
        size: window side, pixels.

    Returns:
        At least 1.
    """
    return max(1, BATCH_PIXELS // (size * size))


def predict_map(
    checkpoint: str | Path,
    root: str | Path,
    out: str | Path,
    bbox: Sequence[float] | None = None,
    bbox_crs: str = "EPSG:4326",
    patch_size: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    threshold: float | None = None,
    min_area_ha: float = 0.5,
    num_workers: int = 0,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    overwrite: bool = False,
    progress: bool = True,
    start: date | str | None = None,
    end: date | str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> MapResult:
    """Map irrigation over a bounding box with a fine-tuned or distilled model.

    Reads the imagery a row of windows at a time on its own pixel grid, blends
    overlapping windows, and writes ``out`` (uint8 classes, COG), the
    probability COG, their QGIS styles, the irrigated regions as a GeoPackage
    and a JSON summary, all renamed into place only once complete. For a
    classification (per-patch) model it prints the side of the cell that one
    value stands for, e.g. ``Per-patch model: one value per 240 m x 240 m
    cell on the 10 m grid.``

    Args:
        checkpoint: a fine-tuned or distilled ``.ckpt``.
        root: Sentinel-2 directory (any layout ``CentralValleyS2`` reads).
        out: the class map, ``PATH.tif``.
        bbox: ``(xmin, ymin, xmax, ymax)`` in *bbox_crs* (default: all imagery).
        bbox_crs: CRS of *bbox* (lon/lat by default).
        patch_size: window side, pixels (default: see :func:`default_window`).
        overlap: pixels shared by neighbouring windows (default: likewise).
        batch_size: windows per forward pass (default: see
            :func:`default_batch_size`).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        threshold: probability above which a pixel is irrigated (default: the
            model's).
        min_area_ha: smallest irrigated region kept as a polygon, hectares.
        num_workers: DataLoader workers reading imagery.
        mask_clouds: map pixels that cloud masks beside per-band files call
            cloudy as nodata (see
            :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
        cloud_buffer: metres by which masked clouds grow beyond the coarsest
            band's reach.
        overwrite: replace the files of an earlier map (never others).
        progress: show a progress bar.
        start: first sensing day read, inclusive (UTC, ``YYYY-MM-DD``;
            default: no limit). Where products of several days overlap, the
            newest with data wins each pixel; *start* and *end* pick the days.
        end: last sensing day read, inclusive (default: no limit).
        max_pixels: largest map made, pixels (width x height); a larger one is
            refused before anything is written.

    Returns:
        The files and the summary.

    Raises:
        ValueError: if *start* or *end* is not a date, *start* is after
            *end*, or no product under *root* was sensed between them.
    """
    from lightning.pytorch import Trainer

    from ..datamodules.prediction import MapDataModule
    from ..lightning_cli import lightning_muted
    from ..tasks.prediction import MapPredictionTask

    # The writer and the task check these again on the Lightning path; here
    # they fail before a large checkpoint is loaded or any file is opened.
    writer = IrrigationMapWriter(
        out,
        threshold=threshold,
        min_area_ha=min_area_ha,
        overwrite=overwrite,
        progress=progress,
        command="torchgeo-simclr",
        max_pixels=max_pixels,
    )
    files = writer.files
    start, end = parse_days(start, end)
    # The imagery is checked once indexed, before anything is written; an
    # existing output that may be one of its files (under --root, or a hard
    # link) waits for that check, which then names the file it is.
    files.check_inputs({}, checkpoint)
    inside = os.path.join(os.path.realpath(root), "")
    if not any(
        path.exists()
        and (
            os.path.realpath(path).startswith(inside)
            or (path.is_file() and path.stat().st_nlink > 1)
        )
        for path in files.all()
    ):
        files.check_writable(overwrite)
    target = resolve_device(device)
    task = MapPredictionTask(checkpoint)
    size = patch_size or default_window(task.problem, task.data.patch_size)[0]
    if overlap is None:
        margin = size // 2 if task.problem == "classification" else size // 4
    else:
        margin = overlap
    task.check_windows(list(task.data.bands), size)
    if batch_size is not None and batch_size < 1:
        msg = f"--batch-size must be at least 1, got {batch_size}; pass e.g. 8."
        raise ValueError(msg)
    datamodule = MapDataModule(
        root=root,
        bbox=bbox,
        bbox_crs=bbox_crs,
        bands=task.data.bands,
        patch_size=size,
        overlap=margin,
        batch_size=default_batch_size(size) if batch_size is None else batch_size,
        num_workers=num_workers,
        mask_clouds=mask_clouds,
        cloud_buffer=cloud_buffer,
        start=start,
        end=end,
    )
    with lightning_muted():  # the caller set up no Trainer: no banner, no tips
        trainer = Trainer(
            accelerator=target.type,
            devices=[target.index] if target.index is not None else 1,
            logger=False,
            callbacks=[writer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        written = (
            f"The map was written before it ({files.classes} and the files beside it)."
        )
        try:
            with keyboard_interrupts():
                trainer.predict(task, datamodule=datamodule, return_predictions=False)
        except KeyboardInterrupt as interrupt:
            if writer.summary is None:
                raise
            raise Interrupted(written, interrupt) from None
        if trainer.received_sigterm:  # noted by Lightning while the files were written
            raise Interrupted(written, Terminated())
    assert writer.summary is not None
    return MapResult(files, writer.summary)
