"""Shared test helpers: small fake Sentinel-2 scenes and DWR label files.

The ``fake_*`` writers are plain functions (import them with
``from conftest import fake_s2_multiband``) that write into a directory given
by the test, usually ``tmp_path``. Scenes are EPSG:32610, 10 m, 256 x 256 px
with their top-left corner at (700000, 4100000) by default; label polygons
(:data:`FAKE_FIELDS`) lie inside that scene.
"""

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from torchgeo_simclr.constants import S2_BAND_RESOLUTION, S2_BANDS

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

    from torchgeo_simclr.models.checkpoint import DataMetadata
    from torchgeo_simclr.models.classifier import Problem
    from torchgeo_simclr.sample import SampleScene

#: Product name of the fake scenes (sensing time 2023-07-15 18:49:19).
FAKE_PRODUCT = "S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_20230715T223344"

#: CRS of the fake scenes.
FAKE_CRS = "EPSG:32610"

#: Top-left corner of the fake scenes, metres in :data:`FAKE_CRS`.
FAKE_ORIGIN = (700000.0, 4100000.0)

#: Side of the fake scenes in 10 m pixels.
FAKE_SIZE = 256

#: Fake DWR fields: (CLASS2, (xmin, ymin, xmax, ymax) in metres, EPSG:32610),
#: edges on the 10 m grid. "V" overlaps "I" and comes later, so it wins there.
FAKE_FIELDS: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("G", (700100.0, 4099100.0, 700700.0, 4099700.0)),
    ("I", (701100.0, 4099100.0, 701700.0, 4099700.0)),
    ("X", (700100.0, 4098100.0, 700700.0, 4098700.0)),
    ("V", (701500.0, 4099300.0, 702000.0, 4099900.0)),
    ("P", (701000.0, 4097600.0, 702400.0, 4098600.0)),
    ("U", (700100.0, 4097600.0, 700900.0, 4098000.0)),
)


def fake_s2_value(
    band_index: int,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    origin: tuple[float, float] = FAKE_ORIGIN,
) -> npt.NDArray[np.float64]:
    """Reflectance x10000 of the fake scenes at map coordinates (x, y).

    A plane per band, so bilinear resampling of the 20 m and 60 m bands
    reproduces it exactly away from the scene edge, and any shift shows.

    Args:
        band_index: position of the band in S2_BANDS (0..11).
        x: easting, metres.
        y: northing, metres.
        origin: top-left corner of the scene, metres.

    Returns:
        The value, float64, broadcast over *x* and *y*.
    """
    dx = np.asarray(x, dtype=np.float64) - origin[0]
    dy = origin[1] - np.asarray(y, dtype=np.float64)
    return 1000.0 * (band_index + 1) + dx / 5.0 + 3.0 * dy / 5.0


def _band_array(
    band: str, pixel_size: float, size_m: float, origin: tuple[float, float]
) -> npt.NDArray[np.uint16]:
    """The fake band sampled at the centres of a grid of *pixel_size* metres."""
    n = round(size_m / pixel_size)
    centres = (np.arange(n) + 0.5) * pixel_size
    x = origin[0] + centres[None, :]
    y = origin[1] - centres[:, None]
    return fake_s2_value(S2_BANDS.index(band), x, y, origin).astype(np.uint16)


def _write_tif(
    path: Path,
    data: npt.NDArray[np.uint16],
    pixel_size: float,
    origin: tuple[float, float],
    crs: str,
    **options: str,
) -> None:
    count, height, width = data.shape
    profile = {
        "driver": "JP2OpenJPEG" if path.suffix == ".jp2" else "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint16",
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], pixel_size, pixel_size),
    }
    with rasterio.open(path, "w", **profile, **options) as dst:
        dst.write(data)


def fake_s2_multiband(
    root: Path,
    *,
    name: str = FAKE_PRODUCT + ".tif",
    count: int = 12,
    size: int = FAKE_SIZE,
    origin: tuple[float, float] = FAKE_ORIGIN,
    crs: str = FAKE_CRS,
) -> Path:
    """Write a multi-band scene (layout 1): all bands at 10 m in one GeoTIFF.

    Args:
        root: directory to write into (created if needed).
        name: file name (product style by default).
        count: number of bands (the first *count* of S2_BANDS; 12 is right).
        size: side in 10 m pixels.
        origin: top-left corner, metres.
        crs: CRS of the scene.

    Returns:
        The written file.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = np.stack(
        [_band_array(band, 10.0, size * 10.0, origin) for band in S2_BANDS[:count]]
    )
    path = root / name
    _write_tif(path, data, 10.0, origin, crs)
    return path


def _esa_offset(product: str) -> int:
    """The +1000 that ESA adds from processing baseline 04.00 (``N0400``) on."""
    baseline = product.split("_N")[1][:4] if "_N" in product else "0000"
    return 1000 if "0400" <= baseline < "9999" else 0


def fake_s2_per_band(
    root: Path,
    *,
    product: str = FAKE_PRODUCT,
    safe_names: bool = False,
    resolution_dirs: bool = False,
    suffix: str = ".tif",
    bands: Sequence[str] = S2_BANDS,
    size: int = FAKE_SIZE,
    origin: tuple[float, float] = FAKE_ORIGIN,
    crs: str = FAKE_CRS,
) -> Path:
    """Write a per-band product (layout 2), each band at its native resolution.

    Args:
        root: directory to write into (created if needed).
        product: name of the product directory.
        safe_names: name files ``T10SFG_20230715T184919_B04_10m.tif`` instead of
            ``B04.tif``.
        resolution_dirs: with *safe_names*, put files in ``R10m``/``R20m``/``R60m``.
        suffix: ``.tif`` or ``.jp2`` (lossless).
        bands: bands to write.
        size: side in 10 m pixels (20 m and 60 m bands round to whole pixels).
        origin: top-left corner, metres.
        crs: CRS of the product.

    Returns:
        The product directory. As in ESA's products, the files of processing
        baselines 04.00 and later (e.g. N0509) hold reflectance x10000 + 1000.
    """
    directory = root / product
    options = {"REVERSIBLE": "YES", "QUALITY": "100"} if suffix == ".jp2" else {}
    for band in bands:
        metres = S2_BAND_RESOLUTION[band]
        folder = directory / f"R{metres}m" if resolution_dirs else directory
        folder.mkdir(parents=True, exist_ok=True)
        if safe_names:
            name = f"T10SFG_20230715T184919_{band}_{metres}m{suffix}"
        else:
            name = f"{band}{suffix}"
        data = _band_array(band, float(metres), size * 10.0, origin)[None]
        data += _esa_offset(product)
        _write_tif(folder / name, data, float(metres), origin, crs, **options)
    return directory


def fake_scl(product: Path, classes: npt.NDArray[Any]) -> Path:
    """Write a 20 m scene classification layer, ``SCL.tif``, beside the bands.

    Args:
        product: a product folder of :func:`fake_s2_per_band` holding B02.
        classes: SCL classes ``[H / 2, W / 2]`` of the product's 10 m grid
            (e.g. 4 vegetation, 9 cloud high probability, 10 thin cirrus).

    Returns:
        The written file.
    """
    with rasterio.open(product / "B02.tif") as src:
        profile = src.profile | {"dtype": "uint8", "count": 1}
        profile["width"], profile["height"] = src.width // 2, src.height // 2
        profile["transform"] = src.transform @ src.transform.scale(2, 2)
    path = product / "SCL.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes.astype(np.uint8), 1)
    return path


def fake_s2_with_scl(
    root: Path,
    cloud: tuple[slice, slice] | None = None,
    code: int = 9,
    *,
    fill: int = 4,
    **kwargs: Any,
) -> Path:
    """Write a per-band product with its scene classification, ``SCL.tif``.

    Args:
        root: directory to write into, as for :func:`fake_s2_per_band`.
        cloud: rows and columns of the 20 m SCL grid given class *code*
            (e.g. ``np.s_[10:30, 20:60]``); none by default.
        code: SCL class over *cloud* (9 cloud high probability, 10 thin cirrus).
        fill: SCL class everywhere else (4 vegetation).
        kwargs: further options of :func:`fake_s2_per_band`.

    Returns:
        The product directory.
    """
    product = fake_s2_per_band(root, **kwargs)
    classes = np.full((FAKE_SIZE // 2, FAKE_SIZE // 2), fill)
    if cloud is not None:
        classes[cloud] = code
    fake_scl(product, classes)
    return product


def fake_dwr_gpkg(
    root: Path,
    *,
    name: str = "crop_mapping.gpkg",
    fields: Sequence[tuple[str, tuple[float, float, float, float]]] = FAKE_FIELDS,
    crs: str = "EPSG:4269",
    field_crs: str = FAKE_CRS,
) -> Path:
    """Write DWR-like crop-mapping polygons (CLASS2, ACRES, COUNTY columns).

    The driver follows the suffix of *name* (.gpkg, .shp, .geojson, .gdb, ...).

    Args:
        root: directory to write into (created if needed).
        name: file name.
        fields: (CLASS2, (xmin, ymin, xmax, ymax)) in *field_crs*, in file order.
        crs: CRS the file is written in (DWR publishes EPSG:4269).
        field_crs: CRS of the field coordinates.

    Returns:
        The written file.
    """
    root.mkdir(parents=True, exist_ok=True)
    boxes = [shapely.box(*bounds) for _, bounds in fields]
    frame = gpd.GeoDataFrame(
        {
            "CLASS2": [code for code, _ in fields],
            "ACRES": [box.area / 4046.8564224 for box in boxes],
            "COUNTY": "Fresno",
        },
        geometry=boxes,
        crs=field_crs,
    ).to_crs(crs)
    path = root / name
    frame.to_file(path)
    return path


def quiet_trainer(max_steps: int, **kwargs: Any) -> "Trainer":
    """A CPU Trainer for a few steps: no logger, checkpoints, bar or summary."""
    # Imported here: importing Lightning with the fixtures changes how its
    # loggers propagate, which the logging tests rely on.
    from lightning.pytorch import Trainer

    return Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def scene_stats(scene: "SampleScene") -> tuple[npt.NDArray[np.float64], ...]:
    """Per-band mean and std of a sample scene, reflectance x10000."""
    pixels = []
    for path in scene.image_paths:
        with rasterio.open(path) as src:
            pixels.append(src.read().reshape(src.count, -1).astype(np.float64))
    values = np.concatenate(pixels, axis=1)
    return values.mean(axis=1), values.std(axis=1)


#: How the fake checkpoints' labels were drawn: 11 patches, 1%.
LABELS = {"label_fraction": 0.01, "label_seed": 0, "n_labels": 11}


def save_checkpoint(
    path: Path,
    problem: "Problem",
    metadata: "DataMetadata",
    threshold: float = 0.5,
    in_channels: int = len(S2_BANDS),
    model: str = "resnet18",
) -> Path:
    """A fine-tuned checkpoint (random weights) as a fit run would write it."""
    import lightning
    import torch

    from torchgeo_simclr.tasks import FineTuneTask

    torch.manual_seed(0)
    task = FineTuneTask(problem=problem, in_channels=in_channels, model=model)
    task.data_metadata = metadata
    task.training_labels = LABELS
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": {**dict(task.hparams), "threshold": threshold},
        "pytorch-lightning_version": lightning.__version__,  # for load_from_checkpoint
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


#: ``user_version`` of a GeoPackage 1.2, which GDAL of every age reads quietly.
GPKG_1_2 = 10200


def gpkg_version(path: Path) -> int:
    """The ``user_version`` a GeoPackage records (10200 for version 1.2)."""
    import sqlite3

    with sqlite3.connect(path) as database:
        version: int = database.execute("PRAGMA user_version").fetchone()[0]
    return version


def torchgeo_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], None]:
    """``torchgeo ARGS``: TorchGeo's own CLI, run in this process.

    It reads ``sys.argv`` (pytest's arguments, here) and sets GDAL options in
    ``os.environ``; both are put back after the test.
    """
    from torchgeo.main import main as torchgeo_main

    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    for key in (
        "GDAL_DISABLE_READDIR_ON_OPEN",
        "AWS_NO_SIGN_REQUEST",
        "GDAL_MAX_RAW_BLOCK_CACHE_SIZE",
        "GDAL_SWATH_SIZE",
        "VSI_CURL_CACHE_SIZE",
    ):
        monkeypatch.delenv(key, raising=False)
    return torchgeo_main


@pytest.fixture
def terminal_signals() -> Iterator[None]:
    """Signals as a command started from a terminal gets them.

    Ctrl-C raises ``KeyboardInterrupt`` even where the tests were started in
    the background, which ignores it from the start (a shell's ``&``). A test
    off the main thread is skipped: pytest-xdist now and then runs a worker's
    tests on another thread (pytest-dev/execnet#96), and Python runs signal
    handlers on the main thread only.

    Yields:
        Nothing; the test's own SIGINT handler is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread; xdist ran this off it")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sigterm_guard(terminal_signals: None) -> Iterator[None]:
    """SIGTERM that a command leaves unhandled fails the test, not the run.

    Python's default for SIGTERM would end pytest itself.
    """

    def unhandled(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM reached the process's own handler")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def lightning_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """``caplog`` that sees Lightning's INFO notes (``rank_zero_info``)."""
    # Lightning stops its logger propagating when it is imported before any
    # handler exists; let caplog see it.
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    # An experiment or demo run earlier in this process may have quietened it.
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    return caplog


# `torchgeo-simclr fit` from the command line, on a small sample scene.


def scratch_workdir(
    factory: pytest.TempPathFactory, *, scene: bool = True
) -> Iterator[Path]:
    """A scratch working directory, made the current one while it is in use.

    Args:
        factory: the test module's ``tmp_path_factory``.
        scene: write a 512 px sample scene under ``scene/``.

    Yields:
        The directory (the configs write under its ``runs/``).
    """
    from torchgeo_simclr.sample import make_sample_scene

    path = factory.mktemp("work")
    if scene:
        make_sample_scene(path / "scene", size=512)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(path)
        yield path


def cpu_fit(
    root: Path, *extra: str, data: Sequence[str] = (), trainer: Sequence[str] = ()
) -> list[str]:
    """Arguments that shrink a config's run to seconds on a CPU.

    Args:
        root: the imagery and labels, ``--data.init_args.root``.
        extra: further arguments, last.
        data: further datamodule arguments, after the root's.
        trainer: further trainer arguments, after the accelerator.
    """
    return [
        "--data.init_args.root",
        str(root),
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.block_size",
        "128",
        *data,
        "--trainer.accelerator",
        "cpu",
        *trainer,
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def small_fit(
    root: Path, cache: Path, *extra: str, precision: str | None = "32"
) -> list[str]:
    """:func:`cpu_fit` with 32 px patches, stats of 4 patches and a cache.

    Args:
        root: the imagery and labels, ``--data.init_args.root``.
        cache: ``--data.init_args.cache_dir``.
        extra: further arguments, last.
        precision: ``--trainer.precision``, or None to leave it out.
    """
    data = ["--data.init_args.patch_size", "32", "--data.init_args.stats_patches"]
    data += ["4", "--data.init_args.cache_dir", str(cache)]
    trainer = [] if precision is None else ["--trainer.precision", precision]
    return cpu_fit(root, *extra, data=data, trainer=trainer)


def few_steps(steps: int) -> list[str]:
    """Arguments for a fit of *steps* steps over 4 patches, validating one batch."""
    return [
        "--data.init_args.length",
        "4",
        "--trainer.max_steps",
        str(steps),
        "--trainer.limit_val_batches",
        "1",
    ]


def cli_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `torchgeo-simclr` with *argv*, expecting exit 2 and one line.

    Returns:
        What it printed to stderr: one sentence on one line, naming the command
        (``argv[0]``, e.g. ``fit``).
    """
    from torchgeo_simclr.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"torchgeo-simclr {argv[0]}: error: ")
    return err


@pytest.fixture(scope="module")
def bigearthnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 fake BigEarthNet-S2 v1.0 patches, five label sets in turn."""
    from test_bigearthnet import FAKE_LABELS, patch_name, write_patch

    root = tmp_path_factory.mktemp("bigearthnet")
    for i in range(40):
        write_patch(root / "BigEarthNet-v1.0", patch_name(i), FAKE_LABELS[i % 5], i)
    return root
