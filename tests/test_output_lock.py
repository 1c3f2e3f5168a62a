"""Two runs given the same output at once: the second is refused before it works."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_error_line

from torchgeo_simclr.cli import main
from torchgeo_simclr.outputs import exclusive_output


def test_a_second_run_on_a_held_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two scheduled jobs given one --out each reported the files as theirs,
    # while the last rename won file by file.
    root = tmp_path / "scene"
    argv = ["sample-data", "--root", str(root), "--size", "64", "--tiles", "1"]
    with exclusive_output(tmp_path / "." / "scene"):
        err = cli_error_line(argv, capsys)
    assert err == (
        "torchgeo-simclr sample-data: error: Another torchgeo-simclr run on this "
        f"machine is writing --root {str(root)!r}; wait for it to finish or pass "
        "another --root (nothing was written)."
    )
    assert not root.exists()
    # Once the other run has ended, the output is free.
    main(argv)
    assert any(root.rglob("*.tif"))


def test_the_lock_of_a_killed_run_is_free(tmp_path: Path) -> None:
    # The operating system releases it with the process, however it ends.
    out = tmp_path / "map.tif"
    code = (
        "import os, sys\n"
        "from torchgeo_simclr.outputs import exclusive_output\n"
        f"with exclusive_output({str(out)!r}):\n"
        "    print('held', flush=True)\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "held\n"
    with exclusive_output(out):
        pass


def test_each_evaluate_output_is_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # evaluate writes --scores and --fields, not --out.
    scores = tmp_path / "scores.json"
    argv = [
        "evaluate",
        "--map",
        str(tmp_path / "map.tif"),
        "--labels",
        str(tmp_path / "labels.gpkg"),
        "--scores",
        str(scores),
    ]
    with exclusive_output(scores):
        err = cli_error_line(argv, capsys)
    assert "is writing --scores" in err
