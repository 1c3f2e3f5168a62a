"""Several devices (DDP): epochs of fixed patches, stop notes, mixed precision."""

import copy
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import cpu_fit
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.connectors.data_connector import (
    _get_distributed_sampler,
)
from torch.utils.data import DataLoader, RandomSampler

from torchgeo_simclr.cli import main
from torchgeo_simclr.datamodules import (
    BigEarthNetIrrigationDataModule,
    CentralValleyDataModule,
)
from torchgeo_simclr.datamodules.samplers import RandomDrawSampler
from torchgeo_simclr.interrupts import Terminated, global_rank
from torchgeo_simclr.losses import binary_loss, distillation_loss
from torchgeo_simclr.models.checkpoint import CHECKPOINT_KEY
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks.provenance import check_devices

CONF = Path(__file__).resolve().parents[1] / "conf"


# The draws: as RandomSampler's, so one-device runs are unchanged.


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize(("size", "num_samples"), [(11, 800), (5, 8), (40, 33)])
def test_draws_are_random_samplers(
    replacement: bool, size: int, num_samples: int
) -> None:
    ours = RandomDrawSampler(
        range(size),
        num_samples,
        replacement=replacement,
        generator=torch.Generator().manual_seed(3),
    )
    theirs = RandomSampler(
        range(size),
        replacement=replacement,
        num_samples=num_samples,
        generator=torch.Generator().manual_seed(3),
    )
    for _ in range(3):  # each epoch draws anew, from the same generator
        drawn = list(ours)
        assert len(drawn) == len(ours) == num_samples
        assert drawn == list(theirs)
    # Without a generator both seed one from the global generator per epoch.
    torch.manual_seed(5)
    unseeded = list(RandomDrawSampler(range(size), num_samples))
    torch.manual_seed(5)
    assert unseeded == list(
        RandomSampler(range(size), replacement=True, num_samples=num_samples)
    )


def test_draws_must_be_positive() -> None:
    with pytest.raises(ValueError, match="num_samples should be a positive"):
        RandomDrawSampler(range(3), 0)


# Lightning's distributed sampler, as each of two ranks gets it.


def ranks_draws(loader: DataLoader[Any], ranks: int = 2) -> list[list[int]]:
    """The indices each rank trains on in an epoch, as under DDP.

    Every rank holds its own copy of the datamodule, seeded alike.
    """
    draws = []
    for rank in range(ranks):
        own = SimpleNamespace(
            sampler=copy.deepcopy(loader.sampler), dataset=loader.dataset
        )
        sampler = _get_distributed_sampler(
            own,  # type: ignore[arg-type]
            shuffle=True,
            overfit_batches=0,
            num_replicas=ranks,
            rank=rank,
        )
        sampler.set_epoch(0)
        draws.append(list(sampler))
    return draws


def attached[DataModule: LightningDataModule](
    dm: DataModule, devices: int
) -> DataModule:
    """*dm* as a Trainer on *devices* devices attaches it."""
    dm.trainer = SimpleNamespace(world_size=devices)  # type: ignore[assignment]
    return dm


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def central_valley(scene: Path, devices: int, **kwargs: Any) -> CentralValleyDataModule:
    defaults: dict[str, Any] = {
        "root": str(scene),
        "patch_size": 32,
        "block_size": 128,
        "batch_size": 4,
        "num_views": 1,
        "label_fraction": 0.01,
        "label_seed": 0,
        "stats_patches": 8,
        "cache_dir": str(scene / "cache"),
    }
    dm = attached(CentralValleyDataModule(**(defaults | kwargs)), devices)
    dm.setup("fit")
    return dm


def test_fine_tuning_epoch_keeps_its_length_on_two_devices(scene: Path) -> None:
    # Lightning replaced the RandomSampler with a DistributedSampler over the
    # labelled subset: `length` was ignored and each rank got half the subset.
    dm = central_valley(scene, 2, length=40)
    assert dm.n_labels is not None
    assert dm.n_labels < 40
    assert dm.split_lengths()["train"] == 40  # the "patches per epoch" logged
    draws = ranks_draws(dm.train_dataloader())
    assert [len(d) for d in draws] == [20, 20]
    assert all(0 <= i < dm.n_labels for d in draws for i in d)


def test_few_labels_fill_a_batch_on_each_device(scene: Path) -> None:
    # With fewer labelled patches than a batch per rank, no rank had a batch:
    # the fit trained nothing and ended with status 0.
    dm = central_valley(scene, 2)
    assert dm.n_labels is not None
    assert dm.n_labels < 2 * 4
    draws = ranks_draws(dm.train_dataloader())
    assert [len(d) for d in draws] == [4, 4]


def test_one_device_draws_as_before(scene: Path) -> None:
    # The documented single-device numbers came from RandomSampler's draws.
    dm = central_valley(scene, 1, length=40)
    seed = torch.initial_seed()
    before = RandomSampler(
        dm.train_dataset,  # type: ignore[arg-type]
        replacement=True,
        num_samples=40,
        generator=torch.Generator().manual_seed(seed),
    )
    sampler: Any = dm.train_sampler
    for _ in range(2):
        assert list(sampler) == list(before)


def test_pretraining_epoch_shorter_than_a_batch_per_device_is_refused(
    scene: Path,
) -> None:
    with pytest.raises(ValueError, match="over 2 devices is less than one batch"):
        central_valley(scene, 2, label_fraction=None, length=6)
    dm = central_valley(scene, 2, label_fraction=None, length=7)  # 4 + 3
    assert dm.split_lengths()["train"] == 7


def bigearthnet(
    root: Path, tmp_path: Path, devices: int, **kwargs: Any
) -> BigEarthNetIrrigationDataModule:
    defaults: dict[str, Any] = {
        "root": str(root),
        "patch_size": 64,
        "batch_size": 4,
        "stats_images": 8,
        "cache_dir": str(tmp_path / "cache"),
        "num_views": 1,
    }
    dm = attached(BigEarthNetIrrigationDataModule(**(defaults | kwargs)), devices)
    dm.setup("fit")
    return dm


def test_bigearthnet_epoch_keeps_its_length_on_two_devices(
    bigearthnet_root: Path, tmp_path: Path
) -> None:
    dm = bigearthnet(bigearthnet_root, tmp_path, 2, label_fraction=0.5, length=24)
    assert dm.n_labels == 5
    draws = ranks_draws(dm.train_dataloader())
    assert [len(d) for d in draws] == [12, 12]
    # Fewer labels than a batch per device: still one batch each.
    dm = bigearthnet(bigearthnet_root, tmp_path, 2, label_fraction=0.5)
    assert [len(d) for d in ranks_draws(dm.train_dataloader())] == [4, 4]


def test_bigearthnet_one_device_draws_as_before(
    bigearthnet_root: Path, tmp_path: Path
) -> None:
    dm = bigearthnet(bigearthnet_root, tmp_path, 1, label_fraction=0.5, length=12)
    seed = torch.initial_seed()
    loader = dm.train_dataloader()
    before = RandomSampler(
        loader.dataset,  # type: ignore[arg-type]
        num_samples=12,
        generator=torch.Generator().manual_seed(seed),
    )
    for _ in range(2):
        assert list(loader.sampler) == list(before)


def test_fit_on_few_labels_trains_on_two_processes_and_resumes_on_one(
    scene: Path, tmp_path: Path
) -> None:
    # 2 ranks, batch 4 and fewer labelled patches than 2 batches: each rank
    # had less than a batch, so the fit trained nothing, wrote no checkpoint
    # and exited 0.
    command = Path(sys.executable).with_name("torchgeo-simclr")
    data = ["--data.init_args.patch_size", "32", "--data.init_args.batch_size", "4"]
    data += ["--data.init_args.length", "8", "--data.init_args.stats_patches", "4"]
    data += ["--data.init_args.cache_dir", str(tmp_path / "cache")]
    data += ["--data.init_args.in_memory", "false"]
    trainer = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    trainer += ["--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1"]
    trainer += ["--trainer.num_sanity_val_steps", "0"]
    trainer += ["--trainer.logger", "false"]
    args = cpu_fit(scene, data=data, trainer=trainer)
    args += ["--model.init_args.model", "resnet18"]
    config = str(CONF / "supervised_quickstart.yaml")

    def fit(*more: str) -> str:
        result = subprocess.run(
            [str(command), "fit", "--config", config, *args, *more],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            timeout=300,
        )
        output = result.stderr + result.stdout
        assert result.returncode == 0, output[-3000:]
        return output

    output = fit()
    assert "No training batches" not in output
    checkpoints = list(tmp_path.glob("runs/**/*.ckpt"))
    assert len(checkpoints) == 1, output[-3000:]
    checkpoint = torch.load(checkpoints[0], map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 1  # 8 draws: 4 per rank, one batch each
    assert checkpoint[CHECKPOINT_KEY]["devices"] == 2
    # Resumed on one device, a step takes half the patches: the user is told.
    one = ["--trainer.devices", "1", "--trainer.strategy", "auto"]
    output = fit(*one, "--trainer.max_epochs", "2", "--ckpt_path", str(checkpoints[0]))
    assert " was trained on 2 device(s) and this run has 1: batch_size is per " in (
        " ".join(output.split())
    )


def test_resuming_on_as_many_devices_says_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_devices("checkpoint 'x.ckpt'", 2, 2)
        check_devices("checkpoint 'x.ckpt'", None, 4)  # earlier versions
    with pytest.warns(UserWarning, match=r"^Checkpoint 'x.ckpt' was trained on 4 "):
        check_devices("checkpoint 'x.ckpt'", 4, 2)


# The stop note: one, from rank 0.


def terminated_predict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    def stopped(**kwargs: object) -> None:
        raise Terminated

    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", stopped)
    args = ["predict", "--checkpoint", "m.ckpt", "--root", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path / "m.tif")])
    assert isinstance(info.value.code, int)
    return info.value.code


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_zero_says_it_was_terminated(
    rank: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every rank of a DDP run printed the note.
    monkeypatch.setattr(rank_zero_only, "rank", rank)
    assert terminated_predict(monkeypatch, tmp_path) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip()
    if rank == 0:
        assert err.startswith("torchgeo-simclr predict: terminated (SIGTERM).")
    else:
        assert err == ""


def test_rank_from_the_environment_before_lightning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "lightning_utilities.core.rank_zero")
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert global_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert global_rank() == 1  # LOCAL_RANK first, as Lightning reads them
    monkeypatch.setenv("RANK", "2")
    assert global_rank() == 2


# Mixed precision: the losses in float32.


def old_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The loss as it was written before the upcast."""
    s, t = student / temperature, teacher / temperature
    p = torch.sigmoid(t)
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (
        F.logsigmoid(-t) - F.logsigmoid(-s)
    )
    return kl.mean() * temperature**2


def autocast_logits() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 1)
    x = torch.randn(256, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        student = layer(x).squeeze(1)
        teacher = layer(x + 0.1 * torch.randn_like(x)).squeeze(1)
    assert student.dtype == teacher.dtype == torch.bfloat16
    return student, teacher


def test_distillation_loss_is_float32_under_bf16_autocast() -> None:
    # Under bf16-mixed the loss (values about 0.005) was computed in bfloat16.
    student, teacher = autocast_logits()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = distillation_loss(student, teacher, 2.0)
    assert loss.dtype == torch.float32
    exact = old_distillation_loss(student.float(), teacher.float(), 2.0)
    assert loss.item() == exact.item()
    # fp32 logits give what they always gave, bit for bit.
    s, t = torch.randn(64), torch.randn(64)
    assert torch.equal(distillation_loss(s, t, 2.0), old_distillation_loss(s, t, 2.0))


@pytest.mark.parametrize("kind", ["bce", "focal"])
def test_binary_loss_is_float32_under_bf16_autocast(kind: str) -> None:
    student, _ = autocast_logits()
    targets = (torch.rand(256) > 0.5).long()
    targets[:10] = 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = binary_loss(student, targets, kind=kind)  # type: ignore[arg-type]
        exact = binary_loss(student.float(), targets, kind=kind)  # type: ignore[arg-type]
    assert loss.dtype == torch.float32
    assert loss.item() == exact.item()
