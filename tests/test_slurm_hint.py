"""A run stopped after SLURM's requeue signal names the checkpoint it resumes from."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from torchgeo_simclr.lightning_cli import PluginCLI, hpc_checkpoint


def hint(root: Path, last: Path | None = None) -> str:
    trainer = SimpleNamespace(
        default_root_dir=str(root),
        checkpoint_callback=SimpleNamespace(
            save_last=None, last_model_path="", best_model_path=str(last or "")
        ),
    )
    return PluginCLI._resume_hint(SimpleNamespace(trainer=trainer))  # type: ignore[arg-type]


def test_the_newest_requeue_checkpoint_is_found(tmp_path: Path) -> None:
    assert hpc_checkpoint(tmp_path) is None
    assert hpc_checkpoint(tmp_path / "missing") is None
    for n in (1, 2, 10):
        (tmp_path / f"hpc_ckpt_{n}.ckpt").touch()
    (tmp_path / "hpc_ckpt_x.ckpt").touch()
    assert hpc_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_10.ckpt"


def test_a_stop_after_a_requeue_names_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SIGTERM that follows SLURM's SIGUSR1 said "No checkpoint of this
    # run was saved yet ... run it again from the start", though Lightning
    # had saved hpc_ckpt_1.ckpt, which the requeued job resumes from.
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert "run it again from the start" in hint(tmp_path)
    saved = tmp_path / "hpc_ckpt_1.ckpt"
    saved.touch()
    # Outside SLURM, Lightning neither writes nor resumes from such a file.
    assert "run it again from the start" in hint(tmp_path)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    text = hint(tmp_path)
    assert f"requeue checkpoint {saved.resolve()}" in text
    assert f"--ckpt_path {saved.resolve()}" in text
    # A last.ckpt written after it is the one to resume from.
    last = tmp_path / "last.ckpt"
    last.touch()
    os.utime(saved, (1, 1))
    assert f"--ckpt_path {last.resolve()}" in hint(tmp_path, last)
