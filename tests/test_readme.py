"""The README's Python examples run as written."""

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import save_checkpoint, scene_stats

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks import RawInputWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``##`` section of the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def test_using_the_pieces_from_python_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a small sample scene and a checkpoint where the README expects them."""
    scene = make_sample_scene(tmp_path / "data" / "sample", size=256)
    mean, std = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=64,
    )
    folder = tmp_path / "runs" / "segment_quickstart" / "checkpoints"
    folder.mkdir(parents=True)
    save_checkpoint(folder / "last.ckpt", "segmentation", metadata)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks("Using the pieces from Python")
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RawInputWarning)
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    sample = namespace["sample"]
    assert isinstance(sample, dict)
    assert sample["image"].shape == (3, 64, 64)
    assert sample["mask"].shape == (64, 64)
    probability = namespace["probability"]
    assert isinstance(probability, torch.Tensor)
    assert probability.shape == (1, 64, 64)
    assert 0 <= probability.min() <= probability.max() <= 1


def test_install_by_hand_finds_a_python_new_enough(tmp_path: Path) -> None:
    # The README's install line named python3.12, which a machine with 3.13 on
    # PATH, or 3.12 only in pyenv, does not have: the shell said "not found".
    script = Path(__file__).parent.parent / "scripts" / "bootstrap.sh"
    assert "scripts/bootstrap.sh --find-python" in README.read_text()
    (tmp_path / "python3.13").symlink_to(sys.executable)
    done = subprocess.run(
        ["bash", str(script), "--find-python"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "python3.13")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    none = subprocess.run(
        ["/bin/bash", str(script), "--find-python"],
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert none.returncode == 1
    assert "needs Python >= 3.12, and none was found" in none.stderr
