"""Lightning conventions: val_loss, named LR groups, --optimizer, checkpoint folders."""

import csv
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import quiet_trainer
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import BaseDataModule
from torchgeo.tasks import BaseTask

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules import (
    BigEarthNetIrrigationDataModule,
    CentralValleyDataModule,
)
from torchgeo_simclr.lightning_cli import PluginCLI
from torchgeo_simclr.losses import binary_loss, distillation_loss
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.models.classifier import Problem
from torchgeo_simclr.tasks import DistillTask, FineTuneTask, SimCLRv2Task

CONF = Path(__file__).resolve().parents[1] / "conf"
BATCH, BANDS, SIZE = 4, len(S2_BANDS), 32


def batch(seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(BATCH, SIZE, SIZE, dtype=torch.long)
    mask[::2] = 1  # two irrigated patches, two not
    image = torch.randn(BATCH, BANDS, SIZE, SIZE, generator=generator)
    return {"image": image, "mask": mask}


def loader() -> DataLoader[dict[str, Tensor]]:
    return DataLoader([batch(0), batch(1)], batch_size=None)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fine-tuned checkpoints (random weights), one per problem type."""
    root = tmp_path_factory.mktemp("teachers")
    paths = {}
    problems: tuple[Problem, ...] = ("classification", "segmentation")
    for problem in problems:
        torch.manual_seed(0)
        task = FineTuneTask(problem=problem)
        task.data_metadata = DataMetadata(
            bands=tuple(S2_BANDS),
            mean=(0.0,) * BANDS,
            std=(1.0,) * BANDS,
            patch_size=SIZE,
        )
        checkpoint: dict[str, Any] = {
            "state_dict": task.state_dict(),
            "hyper_parameters": dict(task.hparams),
        }
        task.on_save_checkpoint(checkpoint)
        paths[problem] = root / f"{problem}.ckpt"
        torch.save(checkpoint, paths[problem])
    return paths


def expected_loss(task: FineTuneTask | DistillTask, problem: str) -> float:
    """The training loss of *task* over the two batches of :func:`loader`."""
    task.eval()
    losses = []
    with torch.no_grad():
        for b in loader():
            logits = task.model(b["image"])
            targets = task.targets(b)
            if isinstance(task, FineTuneTask):
                losses.append(binary_loss(logits, targets, kind="focal"))
                continue
            assert task.teacher is not None
            teacher = task.teacher(b["image"])
            distilled = distillation_loss(logits, teacher, 2.0)
            losses.append(distilled + 0.5 * binary_loss(logits, targets))
    return float(torch.stack(losses).mean())


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
@pytest.mark.parametrize("kind", ["finetune", "distill"])
def test_validate_and_test_log_the_training_loss(
    teachers: dict[str, Path], kind: str, problem: Problem
) -> None:
    # TorchGeo's tasks log val_loss and test_loss, and BaseTask.monitor is
    # val_loss; these tasks logged only the F1 and its kin.
    torch.manual_seed(0)
    task: FineTuneTask | DistillTask
    if kind == "finetune":
        task = FineTuneTask(problem=problem, loss="focal")
    else:
        task = DistillTask(teacher=str(teachers[problem]), temperature=2.0, alpha=0.5)
    expected = expected_loss(task, problem)
    (validated,) = quiet_trainer(1).validate(task, loader(), verbose=False)
    (tested,) = quiet_trainer(1).test(task, loader(), verbose=False)
    assert validated["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert tested["test_loss"] == pytest.approx(expected, rel=1e-5)
    assert "val_f1" in validated


def test_early_stopping_on_val_loss_runs(teachers: dict[str, Path]) -> None:
    # `--trainer.callbacks+ EarlyStopping --trainer.callbacks.monitor val_loss`
    # stopped the fit with "Early stopping conditioned on metric 'val_loss'
    # which is not available".
    for task in (
        FineTuneTask(),
        DistillTask(teacher=str(teachers["classification"])),
    ):
        stopper = EarlyStopping(monitor="val_loss", patience=5)
        trainer = quiet_trainer(2, callbacks=[stopper], num_sanity_val_steps=0)
        trainer.fit(task, loader(), loader())
        assert trainer.global_step == 2
        assert "val_loss" in trainer.callback_metrics


def lr_columns(task: Any, tmp_path: Path, data: DataLoader[Any]) -> list[str]:
    """The learning-rate columns LearningRateMonitor writes in a 1-step fit."""
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        callbacks=[LearningRateMonitor()],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, data)
    (metrics,) = tmp_path.rglob("metrics.csv")
    with metrics.open() as file:
        header = next(csv.reader(file))
    return sorted(column for column in header if column.startswith("lr-"))


def test_fine_tuning_learning_rates_are_named(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    # They were lr-AdamW/pg1 and lr-AdamW/pg2: which is the backbone's?
    task = FineTuneTask(lr=1e-3, backbone_lr=1e-4)
    assert lr_columns(task, tmp_path, loader()) == [
        "lr-AdamW/backbone",
        "lr-AdamW/head",
    ]
    backbone, head = sorted(
        task.optimizers().optimizer.param_groups,  # type: ignore[union-attr]
        key=lambda group: group["name"],
    )
    assert backbone["initial_lr"] == pytest.approx(1e-4)
    assert head["initial_lr"] == pytest.approx(1e-3)
    assert {id(p) for p in backbone["params"]} >= {
        id(p) for p in task.model.backbone.parameters()
    }


def test_pretraining_learning_rates_are_named(tmp_path: Path) -> None:
    def collate(samples: list[Tensor]) -> dict[str, Tensor]:
        views = torch.stack(samples, dim=1)
        return {"views": views, "mask": torch.ones(BATCH, 16, 16).long()}

    views = [torch.randn(2, BANDS, 16, 16) for _ in range(BATCH)]
    data = DataLoader(views, batch_size=BATCH, collate_fn=collate)
    task = SimCLRv2Task(model="resnet18", in_channels=BANDS)
    assert lr_columns(task, tmp_path, data) == ["lr-Adam/encoder", "lr-Adam/probe"]


@pytest.fixture(autouse=True)
def scratch_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without pytest's own arguments in ``sys.argv`` (LightningCLI warns of
    them), in *tmp_path* (the configs name folders under ``runs/``)."""
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    monkeypatch.chdir(tmp_path)


def plugin_cli(*args: str) -> PluginCLI:
    """A configured, not run, ``torchgeo-simclr fit`` with *args*."""
    return PluginCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        seed_everything_default=0,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=list(args),
    )


def config(tmp_path: Path, *extra: str) -> list[str]:
    """The supervised quickstart config, its data root *tmp_path* (never read)."""
    return [
        "--config",
        str(CONF / "supervised_quickstart.yaml"),
        "--data.init_args.root",
        str(tmp_path),
        "--trainer.logger",
        "false",
        *extra,
    ]


def test_an_added_callback_keeps_the_checkpoints_with_the_root(
    tmp_path: Path,
) -> None:
    # --trainer.callbacks+ LearningRateMonitor left last.ckpt in
    # runs/supervised_quickstart/checkpoints, beside other runs', while the
    # logs went to the root given.
    root = tmp_path / "my_run"
    cli = plugin_cli(
        *config(tmp_path, "--trainer.default_root_dir", str(root)),
        "--trainer.callbacks+",
        "LearningRateMonitor",
    )
    saver = cli.trainer.checkpoint_callback
    assert saver is not None
    assert Path(saver.dirpath) == root / "checkpoints"  # type: ignore[attr-defined]
    assert any(isinstance(c, LearningRateMonitor) for c in cli.trainer.callbacks)


def test_a_checkpoint_folder_given_on_the_command_line_stays(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "my_run", tmp_path / "keep_here"
    cli = plugin_cli(
        *config(tmp_path, "--trainer.default_root_dir", str(root)),
        "--trainer.callbacks.init_args.dirpath",
        str(elsewhere),
    )
    saver = cli.trainer.checkpoint_callback
    assert saver is not None
    assert Path(saver.dirpath) == elsewhere  # type: ignore[attr-defined]


def test_optimizer_with_a_task_rate_on_the_command_line_is_refused(
    tmp_path: Path,
) -> None:
    # --optimizer replaced the task's AdamW, schedule and backbone_lr without
    # a word.
    with pytest.raises(ValueError, match="replaces FineTuneTask's own") as caught:
        plugin_cli(
            *config(tmp_path),
            "--optimizer",
            "SGD",
            "--optimizer.lr",
            "0.05",
            "--model.init_args.backbone_lr",
            "0.0001",
        )
    message = str(caught.value)
    assert "--model.init_args.backbone_lr 0.0001 would be ignored" in message
    assert "\n" not in message


def test_optimizer_names_the_task_options_it_replaces(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="--optimizer SGD replaces") as caught:
        plugin_cli(*config(tmp_path), "--optimizer", "SGD", "--optimizer.lr", "0.05")
    (message,) = [str(w.message) for w in caught if "--optimizer SGD" in str(w.message)]
    for option in ("lr 0.001", "backbone_lr None", "weight_decay 0.0001"):
        assert option in message
    assert "warmup_fraction" in message


@pytest.mark.parametrize(
    "module", [CentralValleyDataModule, BigEarthNetIrrigationDataModule]
)
def test_datamodule_hyperparameters_hold_every_setting(
    tmp_path: Path, module: type[Any]
) -> None:
    # hparams.yaml and TensorBoard's HPARAMS lacked batch_size, patch_size and
    # root, and load_from_checkpoint rebuilt the datamodule from defaults.
    # CentralValleyDataModule passes once its __init__ saves them too.
    datamodule = module(root=str(tmp_path), batch_size=3, patch_size=48)
    hparams = datamodule.hparams
    assert hparams["root"] == str(tmp_path)
    assert hparams["batch_size"] == 3
    assert hparams["patch_size"] == 48
    assert hparams["label_fraction"] is None


def test_datamodule_hyperparameters_given_from_python_load_as_data(
    tmp_path: Path,
) -> None:
    # A Path and a date given from Python went into every checkpoint as
    # objects, which torch.load(weights_only=True), and so predict and
    # fine-tuning, refused.
    datamodule = CentralValleyDataModule(
        root=tmp_path, start=date(2023, 1, 1), end="2023-12-31"
    )
    saved = tmp_path / "hparams.pt"
    torch.save({"datamodule_hyper_parameters": dict(datamodule.hparams)}, saved)
    loaded = torch.load(saved, weights_only=True)["datamodule_hyper_parameters"]
    assert loaded["root"] == str(tmp_path)
    assert (loaded["start"], loaded["end"]) == ("2023-01-01", "2023-12-31")
