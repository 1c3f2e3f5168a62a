"""Tests of running the commands unattended: full disks, logs, versions, threads."""

import errno
import io
import resource
import shutil
import signal
import sys
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.errors
import pytest
import rasterio
from conftest import cli_error_line
from pyproj import CRS
from rasterio.transform import from_origin
from test_evaluate import base_map, write_labels, write_map

import torchgeo_simclr
from torchgeo_simclr.cli import main
from torchgeo_simclr.inference import geotiff
from torchgeo_simclr.inference.grid import OutputGrid

#: What :func:`shutil.disk_usage` returns.
Usage = namedtuple("Usage", "total used free")


def predict_argv(out: Path) -> list[str]:
    """A predict command line writing *out*."""
    return ["predict", "--checkpoint", "m.ckpt", "--root", "data", "--out", str(out)]


def window_grid(width: int, height: int) -> OutputGrid:
    """A grid of *width* x *height* 10 m pixels."""
    return OutputGrid(CRS.from_epsg(32610), from_origin(0, 0, 10, 10), width, height)


def raising(error: BaseException) -> Any:
    """A stand-in for a command's work that fails with *error*."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    return fail


def test_a_full_disk_is_one_line_naming_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An embed on a full disk ended in a traceback with `OSError: [Errno 28]`,
    # exit code 1, which a log alert watching for "error:" missed.
    out = tmp_path / "small" / "m.tif"
    partial = out.with_name(".m.partial-host-1.tif")
    full = OSError(errno.ENOSPC, "No space left on device", str(partial))
    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", raising(full))
    err = cli_error_line(predict_argv(out), capsys)
    assert f"No space left on device writing under '{out.parent}/' (" in err
    assert " MB free); free space there or choose another --out." in err


def fails_from_a_full_disk(*args: Any, **kwargs: Any) -> None:
    """Fail as Lightning or pyarrow do: their own error, raised from ENOSPC."""
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as full:
        raise RuntimeError("writing the index failed") from full


def fails_while_handling_a_full_disk(*args: Any, **kwargs: Any) -> None:
    """Fail with another error while an ENOSPC is being handled."""
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("writing the index failed")  # noqa: B904


@pytest.mark.parametrize(
    "fail", [fails_from_a_full_disk, fails_while_handling_a_full_disk]
)
def test_a_full_disk_under_another_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fail: Any,
) -> None:
    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", fail)
    err = cli_error_line(predict_argv(tmp_path / "m.tif"), capsys)
    assert f"No space left on device writing under '{tmp_path}/'" in err
    assert err.endswith("choose another --out.")


def test_a_gdal_write_error_on_a_nearly_full_disk_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # field-stats on a full disk ended in `pyogrio.errors.DataSourceError:
    # Failed to commit transaction`, with no word of the disk.
    failed = pyogrio.errors.DataSourceError("Failed to commit transaction")
    monkeypatch.setattr("torchgeo_simclr.field_stats.field_stats", raising(failed))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**11, 0, 5000))
    out = tmp_path / "stats" / "fields.gpkg"  # a folder not made yet
    argv = ["field-stats", "--map", "m.tif", "--fields", "f.gpkg", "--out", str(out)]
    err = cli_error_line(argv, capsys)
    # A guess: the error itself is kept, in case it is another fault.
    assert (
        f"under '{out.parent}/' (0.0 MB free; the write failed with "
        "DataSourceError: Failed to commit transaction)"
    ) in err
    assert err.endswith("choose another --out.")


def test_the_full_one_of_two_outputs_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roomy, small = tmp_path / "roomy", tmp_path / "small"
    roomy.mkdir()
    small.mkdir()
    failed = pyogrio.errors.DataSourceError("Failed to commit transaction")
    monkeypatch.setattr("torchgeo_simclr.evaluate.evaluate_map", raising(failed))

    def usage(path: Path) -> Usage:
        return Usage(10**11, 0, 5000 if Path(path) == small else 10**10)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    argv = ["evaluate", "--map", "m.tif", "--labels", "l.gpkg"]
    argv += ["--scores", str(roomy / "s.json"), "--fields", str(small / "f.gpkg")]
    err = cli_error_line(argv, capsys)
    assert f"under '{small}/'" in err
    assert err.endswith("choose another --fields.")


def test_a_gdal_error_with_room_on_the_disk_is_no_full_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failed = pyogrio.errors.DataSourceError("Failed to commit transaction")
    monkeypatch.setattr("torchgeo_simclr.field_stats.field_stats", raising(failed))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**11, 0, 10**10))
    argv = ["field-stats", "--map", "m.tif", "--fields", "f.gpkg", "--out"]
    with pytest.raises(pyogrio.errors.DataSourceError):  # a bug: its traceback
        main([*argv, str(tmp_path / "fields.gpkg")])


def test_bad_input_on_a_nearly_full_disk_keeps_its_own_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = FileNotFoundError("checkpoint 'm.ckpt' does not exist")
    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", raising(missing))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**11, 0, 5000))
    err = cli_error_line(predict_argv(tmp_path / "m.tif"), capsys)
    assert err.endswith("error: checkpoint 'm.ckpt' does not exist")


def write_under_a_size_limit(path: Path, side: int, rows: int) -> None:
    """Write a *side* x *side* float32 strip file, *rows* at a time, in 20 kB.

    A file size limit makes GDAL's writes fail as a full disk would.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    grid = window_grid(side, side)
    try:
        with geotiff.StripWriter(
            path, grid, "float32", -1.0, "probability", {}
        ) as strips:
            for row in range(0, side, rows):
                strips.write(row, np.full((rows, side), 0.5, np.float32))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


# GDAL fails small writes only as it closes the file, large ones at once.
@pytest.mark.parametrize(("side", "rows"), [(128, 16), (512, 512)])
def test_a_strip_file_gdal_could_not_finish_is_a_full_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, side: int, rows: int
) -> None:
    # GDAL printed "_tiffWriteProc: No space left on device" per strip, closed
    # the file without an error, and the map failed later, reading it back.
    path = tmp_path / "probability.strips.tif"
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 0, 0))
    with pytest.raises(OSError, match="No space left on device") as info:
        write_under_a_size_limit(path, side, rows)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert "probability.strips.tif needs " in str(info.value)


def test_a_strip_file_cut_short_with_room_on_the_disk_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "probability.strips.tif"
    with pytest.raises(OSError, match=r"GDAL wrote [\d,]+ of the 65,536 bytes") as info:
        write_under_a_size_limit(path, 128, 16)
    assert info.value.errno == errno.EIO


def test_a_finished_strip_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "classes.strips.tif"
    grid = window_grid(64, 64)
    with geotiff.StripWriter(path, grid, "uint8", 255, "classes", {}) as writer:
        writer.write(0, np.ones((64, 64), np.uint8))
    with rasterio.open(path) as src:
        assert src.read(1).sum() == 64 * 64


def write_source(path: Path) -> Path:
    """A small striped float32 GeoTIFF for write_cog."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=1,
        dtype="float32",
        crs="EPSG:32610",
        transform=from_origin(700000, 4100000, 10, 10),
        nodata=-1.0,
    ) as dst:
        dst.write(np.full((1, 32, 32), 0.5, np.float32))
    return path


@pytest.mark.parametrize(("setting", "threads"), [(None, "ALL_CPUS"), ("2", "2")])
def test_cog_compression_threads_follow_gdal_num_threads(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str | None,
    threads: str,
) -> None:
    # NUM_THREADS=ALL_CPUS overrode a job's GDAL_NUM_THREADS on a shared node.
    if setting is None:
        monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("GDAL_NUM_THREADS", setting)
    options: dict[str, Any] = {}
    real_copy = geotiff.rasterio.shutil.copy

    def copy(source: Any, target: Any, **kwargs: Any) -> None:
        options.update(kwargs)
        real_copy(source, target, **kwargs)

    monkeypatch.setattr(geotiff.rasterio.shutil, "copy", copy)
    target = tmp_path / "map.tif"
    geotiff.write_cog(write_source(tmp_path / "strips.tif"), target, "average")
    assert options["NUM_THREADS"] == threads
    with rasterio.open(target) as src:
        assert src.read(1).mean() == pytest.approx(0.5)


@pytest.mark.parametrize("free", [10, 10**9])
def test_a_failed_cog_on_a_small_disk_is_called_a_possible_full_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int
) -> None:
    # The striped file's size only bounds the COG's, so it is a guess that
    # keeps GDAL's own message; with room on the disk GDAL's error stands.
    source = write_source(tmp_path / "strips.tif")
    failed = rasterio.errors.RasterioIOError("TIFFWriteEncodedTile: write error")
    monkeypatch.setattr(geotiff.rasterio.shutil, "copy", raising(failed))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 0, free))
    if free > source.stat().st_size:
        with pytest.raises(rasterio.errors.RasterioIOError):
            geotiff.write_cog(source, tmp_path / "map.tif", "average")
        return
    with pytest.raises(OSError, match="the disk may be full") as error:
        geotiff.write_cog(source, tmp_path / "map.tif", "average")
    assert error.value.errno == errno.ENOSPC
    assert error.value.filename is None
    assert "TIFFWriteEncodedTile: write error" in str(error.value)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("terminal", "flags", "shown"),
    [
        (False, [], False),  # a job's log file
        (True, [], True),
        (False, ["--progress"], True),
        (True, ["--no-progress"], False),
    ],
)
def test_progress_bars_only_on_a_terminal_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    terminal: bool,
    flags: list[str],
    shown: bool,
) -> None:
    # Every command wrote \r-separated bars into a nightly job's log file.
    map_path = write_map(tmp_path / "map.tif", base_map())
    labels = write_labels(tmp_path / "labels.gpkg")
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    main(["evaluate", "--map", str(map_path), "--labels", str(labels), *flags])
    assert ("evaluate map" in stderr.getvalue()) == shown


def test_version_is_printed_for_a_job_s_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    # The version the JSON records write (torchgeo_simclr_version), which an
    # installed package's metadata may not be (an editable install, PYTHONPATH).
    assert capsys.readouterr().out == f"torchgeo-simclr {torchgeo_simclr.__version__}\n"


def test_torch_out_of_shared_memory_is_no_full_output_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # torch's DataLoader workers say "No space left on device" for /dev/shm;
    # the output folder has room, so the error is torch's, shown as it is.
    shm = RuntimeError(
        "unable to write to file </torch_1_2_3>: No space left on device (28)"
    )
    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", raising(shm))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**11, 0, 10**10))
    with pytest.raises(RuntimeError, match="torch_1_2_3"):
        main(predict_argv(tmp_path / "m.tif"))
