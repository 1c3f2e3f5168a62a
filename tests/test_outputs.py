"""Temporary files of killed runs do not pile up beside a command's outputs."""

import os
import subprocess
import sys
import time
from pathlib import Path

from torchgeo_simclr.outputs import STALE_AFTER, partial_path


def finished_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftover(folder: Path, name: str, age: float) -> Path:
    path = folder / name
    path.write_bytes(b"x")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_a_killed_runs_temporary_files_are_removed_by_the_next(tmp_path: Path) -> None:
    dead, also_dead = finished_pid(), finished_pid()
    old = STALE_AFTER + 10
    killed = leftover(tmp_path, f".map.partial-{dead}.tif", old)
    # Kept: a dead process's file still being written (another machine's run
    # on a shared folder), a live process's, and other outputs' files.
    recent = leftover(tmp_path, f".map.partial-{also_dead}.tif", 0)
    alive = leftover(tmp_path, f".map.partial-{os.getppid()}.tif", old)
    other = leftover(tmp_path, f".map_probability.partial-{dead}.tif", old)
    gpkg = leftover(tmp_path, f".map.partial-{dead}.gpkg", old)
    mine = partial_path(tmp_path / "map.tif")
    assert mine == tmp_path / f".map.partial-{os.getpid()}.tif"
    assert not killed.exists()
    assert all(path.exists() for path in (recent, alive, other, gpkg))
