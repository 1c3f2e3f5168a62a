"""SIGTERM to a fit's whole process group: its DataLoader workers outlive it.

``timeout``, Slurm and ``docker stop`` signal the process group, so the
DataLoader workers got SIGTERM too, died at once, and PyTorch's "DataLoader
worker (pid N) is killed by signal: Terminated" ended plain ``torchgeo fit``
with status 1 and no resume line, and followed ``torchgeo-simclr fit``'s.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchgeo_simclr.datamodules import BigEarthNetIrrigationDataModule

CONF = Path(__file__).resolve().parents[1] / "conf"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("name", ["ignore_sigterm", "raster_worker"])
def test_a_worker_ignores_sigterm_and_keeps_ctrl_c(name: str) -> None:
    from torchgeo_simclr.datamodules import workers

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        getattr(workers, name)(0)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == handlers[signal.SIGINT]
    finally:
        signal.signal(signal.SIGTERM, handlers[signal.SIGTERM])


def test_bigearthnet_loaders_start_workers_that_ignore_sigterm(
    bigearthnet_root: Path, tmp_path: Path
) -> None:
    datamodule = BigEarthNetIrrigationDataModule(
        root=str(bigearthnet_root),
        patch_size=32,
        batch_size=2,
        num_workers=1,
        label_fraction=0.5,
        stats_images=4,
        cache_dir=str(tmp_path),
    )
    from torchgeo_simclr.datamodules.workers import ignore_sigterm

    datamodule.setup("fit")
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        assert loader.worker_init_fn is ignore_sigterm


def fit_command(tool: str, root: Path, workdir: Path) -> list[str]:
    """A fit that runs until stopped: 2 steps an epoch, one worker."""
    return [
        str(BIN / tool),
        "fit",
        "--config",
        str(CONF / "supervised_bigearthnet.yaml"),
        "--model.init_args.model",
        "resnet18",
        "--data.init_args.root",
        str(root),
        "--data.init_args.num_workers",
        "1",
        "--data.init_args.patch_size",
        "32",
        "--data.init_args.batch_size",
        "2",
        "--data.init_args.length",
        "4",
        "--data.init_args.stats_images",
        "4",
        "--data.init_args.cache_dir",
        str(workdir / "cache"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.precision",
        "32",
        "--trainer.max_epochs",
        "10000",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    ]


def workers_of(pid: int) -> list[int]:
    """The child processes of *pid* (its DataLoader workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads child processes in /proc"
)
@pytest.mark.parametrize("tool", ["torchgeo-simclr", "torchgeo"])
def test_sigterm_to_the_process_group_stops_the_fit_with_its_resume_line(
    bigearthnet_root: Path, tmp_path: Path, tool: str
) -> None:
    # As `timeout -s TERM` and batch systems send it: to the whole group,
    # once the first checkpoint is written and the worker is running.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        fit_command(tool, bigearthnet_root, tmp_path),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    checkpoint = tmp_path / "runs" / "supervised_bigearthnet" / "checkpoints"
    checkpoint /= "last.ckpt"
    deadline = time.monotonic() + 300
    try:
        while not (checkpoint.exists() and workers_of(process.pid)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert f"resume with --ckpt_path {checkpoint}" in out + err or (
        f"resume it with --ckpt_path {checkpoint}" in out + err
    )
    assert "Traceback" not in err, err
    assert "killed by signal" not in err, err
