"""Embed every patch of a region with a checkpoint's backbone, into an index."""

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..datamodules.patches import GridPatches, keep_batch
from ..datamodules.prediction import MapDataModule
from ..datasets.dates import iso_days
from ..datasets.sentinel2 import fresh_file_handles
from ..days import iso_day
from ..inference.device import resolve_device
from ..inference.normalise import normalise
from ..models.backbone import check_input_size, feature_size
from ..models.checkpoint import DataMetadata, Encoder, load_backbone
from ..outputs import check_out_replaceable, check_output_folder, output_folder
from ..software import software_record
from .index import IndexInfo, IndexWriter, checkpoint_id, index_fault

#: What ``--overwrite`` replaces: an earlier index, never another file.
INDEX_WHAT = "an embeddings index written by embed"


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed_region` wrote."""

    #: The index file.
    path: Path
    #: Patches written, one row each.
    rows: int
    #: Patches left out because more than half of their pixels had no data.
    skipped: int
    #: Wall time, seconds.
    seconds: float
    #: Sensing dates of the pixels read (``YYYY-MM-DD``, sorted, then
    #: ``unknown`` for products without a date).
    imagery_dates: tuple[str, ...] = ()


class Embedder:
    """A backbone that turns reflectance patches into embeddings."""

    def __init__(
        self,
        backbone: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> None:
        """Put the backbone on *device* in eval mode.

        Args:
            backbone: maps ``[B, C, H, W]`` to pooled features ``[B, D]``.
            mean: per-band training mean, reflectance x10000.
            std: per-band training standard deviation, reflectance x10000.
            device: where the forward pass runs.
        """
        #: The backbone, in eval mode.
        self.backbone = backbone.to(device).eval()
        #: Where the forward pass runs.
        self.device = device
        #: Per-band training mean ``[1, C, 1, 1]``, reflectance x10000, on the
        #: device.
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        #: Per-band training standard deviation ``[1, C, 1, 1]``, reflectance
        #: x10000, on the device.
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, image: Tensor, valid: Tensor) -> npt.NDArray[np.float32]:
        """Embed a batch of patches.

        Args:
            image: ``[B, C, H, W]`` reflectance x10000, 0 = nodata.
            valid: ``[B, H, W]`` pixels with data.

        Returns:
            ``[B, D]`` pooled backbone features. Nodata pixels enter the
            network as the band means (0 after normalisation), as in maps.
        """
        x, _ = normalise(
            image.to(self.device, non_blocking=True),
            self.mean,
            self.std,
            valid.to(self.device, non_blocking=True),
        )
        features: Tensor = self.backbone(x)
        return features.float().cpu().numpy()


def _patch_geometry(
    encoder: Encoder,
    checkpoint: str | Path,
    patch_size: int | None,
    stride: int | None,
) -> tuple[DataMetadata, int, int]:
    """Check the patch size and stride asked of a checkpoint's encoder.

    Args:
        encoder: the loaded backbone.
        checkpoint: its file, as errors name it.
        patch_size: patch side, pixels (None: the training patch size).
        stride: pixels between neighbouring patches (None: *patch_size*).

    Returns:
        The checkpoint's bands and statistics, the patch side and the stride.

    Raises:
        ValueError: if the checkpoint records no bands or statistics, the
            patch size or stride is out of range, or the backbone takes
            another input size.
    """
    if encoder.data is None:
        msg = (
            f"Checkpoint {str(checkpoint)!r} records no band list or normalisation "
            "statistics; retrain it with this version of torchgeo-simclr."
        )
        raise ValueError(msg)
    size = encoder.data.patch_size if patch_size is None else patch_size
    if size < 1:
        msg = (
            f"--patch-size must be at least 1 pixel, got {size}; pass e.g. "
            f"{encoder.data.patch_size}, the size the checkpoint was trained on."
        )
        raise ValueError(msg)
    check_input_size(encoder.backbone, encoder.model, size, "--patch-size")
    step = size if stride is None else stride
    if not 1 <= step <= size:
        why = " (larger strides leave gaps between patches)" if step > size else ""
        msg = (
            f"--stride {step} must be between 1 and the patch size {size} "
            f"pixels{why}; pass e.g. {size} for patches side by side or "
            f"{max(size // 2, 1)} for half-overlapping ones."
        )
        raise ValueError(msg)
    return encoder.data, size, step


def embed_region(
    checkpoint: str | Path,
    root: str | Path,
    out: str | Path,
    bbox: Sequence[float] | None = None,
    bbox_crs: str = "EPSG:4326",
    patch_size: int | None = None,
    stride: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    overwrite: bool = False,
    progress: bool = True,
    start: date | str | None = None,
    end: date | str | None = None,
) -> EmbedResult:
    """Embed every patch of a region into a GeoParquet index.

    Patches lie on the imagery's own pixel grid, every *stride* pixels from
    the imagery's top-left corner (the last row and column flush with its
    edge); those touching the bounding box are embedded, so a place has the
    same patch in the index of any bbox.
    Each is normalised with the checkpoint's training statistics and passed
    through its backbone; the pooled features (e.g. 512 numbers for a
    ResNet-18; not the projection head's output) are written with the patch's
    footprint, centre, sensing date and grid position, batch by batch, so
    memory does not grow with the region. The file appears under *out* only
    once complete.

    Args:
        checkpoint: a SimCLR, fine-tuned or distilled ``.ckpt``.
        root: Sentinel-2 directory (any layout ``CentralValleyS2`` reads).
        out: the index to write, ``PATH.parquet``.
        bbox: ``(xmin, ymin, xmax, ymax)`` in *bbox_crs* (default: all imagery).
        bbox_crs: CRS of *bbox* (lon/lat by default).
        patch_size: patch side, pixels (default: the training patch size).
        stride: pixels between neighbouring patches, 1 to *patch_size*
            (default: *patch_size*, patches side by side).
        batch_size: patches per forward pass.
        device: ``cpu``, ``cuda``, ``mps`` or ``auto``.
        num_workers: DataLoader workers reading imagery.
        mask_clouds: treat pixels that cloud masks beside per-band files call
            cloudy as nodata (see
            :class:`~torchgeo_simclr.datasets.CentralValleyS2`).
        cloud_buffer: metres by which masked clouds grow beyond the coarsest
            band's reach.
        overwrite: replace an existing *out* that is an index (never another
            file).
        progress: show a progress bar over patches.
        start: first sensing day read, inclusive (UTC, ``YYYY-MM-DD``;
            default: no limit). Where products of several days overlap, the
            newest with data wins each pixel; *start* and *end* pick the days.
        end: last sensing day read, inclusive (default: no limit).

    Returns:
        The file, rows written, patches skipped as nodata, the run time and
        the imagery's dates.

    Raises:
        FileExistsError: if *out* exists and is not an index, or is one and
            *overwrite* is False.
        ValueError: if *out* is not ``.parquet`` or is a folder, the device
            is unknown or missing, the checkpoint records no bands or
            statistics, the patch size, stride or batch size is out of range,
            the bbox misses the imagery, or every patch is mostly nodata,
            *start* or *end* is not a date, *start* is after *end*, or no
            product was sensed between them.
    """
    began = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        msg = (
            f"--out {str(out)!r} must end in .parquet (the index is GeoParquet); "
            f"pass e.g. {out.with_suffix('.parquet').name}."
        )
        raise ValueError(msg)
    if out.is_dir():
        msg = (
            f"--out {str(out)!r} is a folder; pass a file name, e.g. "
            f"{out / 'index.parquet'}."
        )
        raise ValueError(msg)
    check_out_replaceable(out, INDEX_WHAT, index_fault, overwrite)
    check_output_folder(out.parent)
    if batch_size < 1:
        msg = f"--batch-size must be at least 1, got {batch_size}; pass e.g. 64."
        raise ValueError(msg)
    target = resolve_device(device)
    with ThreadPoolExecutor(max_workers=1) as hashing:
        # hashlib releases the GIL: the checkpoint is hashed while it loads.
        digest = hashing.submit(checkpoint_id, checkpoint)
        encoder = load_backbone(checkpoint)
        data, size, step = _patch_geometry(encoder, checkpoint, patch_size, stride)
        datamodule = MapDataModule(
            root=root,
            bbox=bbox,
            bbox_crs=bbox_crs,
            bands=data.bands,
            patch_size=size,
            overlap=size - step,
            batch_size=batch_size,
            num_workers=num_workers,
            mask_clouds=mask_clouds,
            cloud_buffer=cloud_buffer,
            start=start,
            end=end,
        )
        datamodule.setup("predict")
    assert datamodule.imagery is not None
    assert datamodule.grid is not None
    imagery, grid, windows = datamodule.imagery, datamodule.grid, datamodule.windows
    rows_total, cols_total = grid.imagery_shape or (grid.height, grid.width)
    if size > min(rows_total, cols_total):
        msg = (
            f"--patch-size {size} px is larger than the imagery under --root "
            f"({cols_total} x {rows_total} px), so every patch would be mostly "
            f"nodata; pass --patch-size {min(rows_total, cols_total)} or less."
        )
        raise ValueError(msg)
    loader = DataLoader(
        GridPatches(imagery, grid, windows),
        batch_size=batch_size,
        collate_fn=keep_batch,
        num_workers=num_workers,
        worker_init_fn=fresh_file_handles if num_workers else None,
        pin_memory=target.type == "cuda",
    )
    embedder = Embedder(encoder.backbone, data.mean, data.std, target)
    info = IndexInfo(
        checkpoint_id=digest.result(),
        checkpoint=str(Path(checkpoint).resolve()),
        model=encoder.model,
        dim=feature_size(encoder.backbone),
        patch_size=size,
        stride=step,
        root=str(Path(root).resolve()),
        bands=tuple(data.bands),
        crs=grid.crs.to_wkt(),
        res=grid.res,
        # Rows and columns count from the whole imagery's corner, as the
        # patches do, so one place has one (row, col) in every index.
        origin=(
            float(grid.transform.c - grid.offset[1] * grid.res),
            float(grid.transform.f + grid.offset[0] * grid.res),
        ),
        start=iso_day(datamodule.start),
        end=iso_day(datamodule.end),
        mask_clouds=bool(datamodule.mask_clouds),
        cloud_buffer_m=float(datamodule.cloud_buffer),
        software=software_record(),
        bbox=None if bbox is None else tuple(float(v) for v in bbox),
        bbox_crs=None if bbox is None else datamodule.bbox_crs.to_string(),
    )
    skipped = 0
    read_days: set[int] = set()
    with (
        output_folder(out.parent),
        IndexWriter(out, info) as writer,
        tqdm(
            total=len(windows), desc="embed", unit="patch", disable=not progress
        ) as bar,
        torch.inference_mode(),
    ):
        for batch in loader:
            skipped += batch["skipped"]
            read_days.update(batch["dates"].tolist())
            image = batch["image"]
            rows = batch["row"].numpy() + grid.offset[0]
            cols = batch["col"].numpy() + grid.offset[1]
            if len(image):
                embeddings = embedder(image, batch["valid"])
                days = batch["date"].numpy().view("datetime64[D]")
                writer.write(rows, cols, days.tolist(), embeddings)
            bar.update(len(image) + batch["skipped"])
        if not writer.rows:
            msg = (
                f"all {skipped} patches over the region are more than half nodata, "
                "so the index would be empty; pass a --bbox over imagery with data "
                "(a bbox gets the patches of the imagery's patch grid that touch it), "
                "or --no-cloud-mask where cloud masks blank the region."
            )
            raise ValueError(msg)
        # Embedding takes long: a file put there meanwhile is not replaced.
        check_out_replaceable(out, INDEX_WHAT, index_fault, overwrite)
    seconds = time.perf_counter() - began
    return EmbedResult(out, writer.rows, skipped, seconds, tuple(iso_days(read_days)))
