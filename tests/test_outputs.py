"""Temporary files of killed runs do not pile up beside a command's outputs."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from torchgeo_simclr import experiment
from torchgeo_simclr.outputs import STALE_AFTER, partial_path, replaced_when_complete


def finished_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftover(path: Path, pid: int | str, age: float, machine: str = "") -> Path:
    """A temporary file of *path* as process *pid* would name it, *age* s old."""
    name = partial_path(path).name.replace(str(os.getpid()), str(pid))
    if machine:
        name = name.replace(".partial-", f".partial-{machine}", 1)
    temporary = path.with_name(name)
    temporary.write_bytes(b"x")
    then = time.time() - age
    os.utime(temporary, (then, then))
    return temporary


def test_a_killed_runs_temporary_files_are_removed_by_the_next(tmp_path: Path) -> None:
    out = tmp_path / "map.tif"
    dead, also_dead = finished_pid(), finished_pid()
    old = STALE_AFTER + 10
    killed = leftover(out, dead, old)
    # Kept: a dead process's file still being written (another container's
    # run), another machine's, a live process's, and other outputs' files.
    kept = [
        leftover(out, also_dead, 0),
        leftover(out, dead, old, machine="other-"),
        leftover(out, os.getppid(), old),
        leftover(tmp_path / "map_probability.tif", dead, old),
        leftover(tmp_path / "map.gpkg", dead, old),
    ]
    mine = partial_path(out)
    assert mine.name.startswith(".map.partial-")
    assert mine.name.endswith(f"-{os.getpid()}.tif")
    assert not killed.exists()
    assert all(path.exists() for path in kept)


def test_a_process_id_too_large_for_the_system_counts_as_dead(tmp_path: Path) -> None:
    out = tmp_path / "index.parquet"
    huge = leftover(out, 9_999_999_999, STALE_AFTER + 10)
    partial_path(out)
    assert not huge.exists()


def test_only_a_file_of_ours_may_be_replaced(tmp_path: Path) -> None:
    import pytest
    from matplotlib.figure import Figure

    from torchgeo_simclr.outputs import png_fault, png_marks, refuse_unless_ours

    ours, theirs = tmp_path / "ours.png", tmp_path / "theirs.png"
    for path, metadata in ((ours, png_marks("a test map")), (theirs, None)):
        Figure(figsize=(1, 1)).savefig(path, format="png", metadata=metadata)
    assert png_fault(ours, "a test map") is None
    assert png_fault(ours, "another map") == "its 'Description' is not 'another map'"
    assert png_fault(theirs, "a test map") == "no 'Software' text of torchgeo-simclr"
    for path in (ours, tmp_path / "missing.png"):  # nothing to refuse
        refuse_unless_ours(path, "--out", "a map", lambda _: None, "choose another")
    with pytest.raises(FileExistsError) as refused:
        refuse_unless_ours(
            theirs,
            f"--out {str(theirs)!r}",
            "a test map",
            lambda path: png_fault(path, "a test map"),
            "choose another --out",
        )
    assert str(refused.value) == (
        f"--out {str(theirs)!r} is not a test map (no 'Software' text of "
        "torchgeo-simclr), so even --overwrite does not replace it; choose another "
        "--out or remove it yourself (nothing was written)."
    )

    def unreadable(path: Path) -> str | None:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(FileExistsError, match=r"\(unreadable: Permission denied\)"):
        refuse_unless_ours(theirs, "--out", "a map", unreadable, "choose another")


def test_a_file_written_in_place_of_another_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("earlier\n")
    with replaced_when_complete(path) as temporary:
        temporary.write_text("new\n")
        assert path.read_text() == "earlier\n"  # not yet
    assert path.read_text() == "new\n"

    def interrupted() -> None:
        with replaced_when_complete(path) as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_results_cut_short_leave_the_earlier_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # experiment's results.csv (and settings.json, the plot, the download
    # manifest) were written under a fixed hidden name that a failure left
    # behind, and two runs into one folder shared.
    path = tmp_path / "results.csv"
    path.write_text("earlier\n")
    row = {column: "1" for column in experiment.COLUMNS}

    def failing(self: csv.DictWriter[str], rows: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(csv.DictWriter, "writerows", failing)
    with pytest.raises(OSError, match="disk full"):
        experiment._write_results(path, [row])
    assert path.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
