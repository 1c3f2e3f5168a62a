"""Every shipped config's checkpoints: last.ckpt holds the latest epoch, every epoch.

Lightning 2.6 writes ``save_last`` only when a top-k checkpoint is saved at the
same step: with ``save_top_k: 0`` no checkpoint came before the fit ended (a
stopped run had nothing to resume), and beside a monitored top-1 checkpoint
``last.ckpt`` stayed at the last epoch whose metric improved. The configs'
callbacks are built here from their YAML and fitted on Lightning's BoringModel,
whose monitored metrics are best in epoch 0 and worse after it.
"""

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from torchgeo_simclr.cli.training import DEMO_RECORD, _demo_record
from torchgeo_simclr.tasks.checkpoint_note import CheckpointNote, written_checkpoint
from torchgeo_simclr.tasks.dev_run import no_checkpoint_in_dev_run

CONF = Path(__file__).resolve().parents[1] / "conf"

#: Training batches per epoch of the fits below.
BATCHES = 2


def is_saver(callback: dict[str, Any]) -> bool:
    return str(callback.get("class_path", "")).endswith("ModelCheckpoint")


def config_callbacks(config: Path) -> list[dict[str, Any]]:
    trainer = yaml.safe_load(config.read_text()).get("trainer") or {}
    return list(trainer.get("callbacks") or [])


#: The shipped configs that save checkpoints.
CONFIGS = sorted(
    path.name
    for path in CONF.glob("*.yaml")
    if any(map(is_saver, config_callbacks(path)))
)


def build_savers(config: Path, dirpath: Path) -> list[ModelCheckpoint]:
    """The config's ModelCheckpoints, in its order, writing to *dirpath*."""
    savers = []
    for callback in filter(is_saver, config_callbacks(config)):
        module, name = callback["class_path"].rsplit(".", 1)
        init_args = dict(callback.get("init_args") or {})
        init_args["dirpath"] = str(dirpath)
        savers.append(getattr(importlib.import_module(module), name)(**init_args))
    return savers


def trainer_options(config: Path) -> dict[str, Any]:
    """The config's trainer options that decide when checkpoints are saved."""
    trainer = yaml.safe_load(config.read_text()).get("trainer") or {}
    keys = ("check_val_every_n_epoch", "val_check_interval")
    return {key: trainer[key] for key in keys if key in trainer}


class Monitored(BoringModel):
    """Logs each monitored metric, best in epoch 0 and worse in every later one."""

    def __init__(self, modes: dict[str, str], improving: bool = False) -> None:
        super().__init__()
        self.modes = modes
        self.improving = improving  # best in the last epoch instead

    def on_fit_start(self) -> None:
        no_checkpoint_in_dev_run(self.trainer)  # as the tasks do

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        output = super().validation_step(batch, batch_idx)
        worse = float(-self.current_epoch if self.improving else self.current_epoch)
        for name, mode in self.modes.items():
            self.log(name, worse if mode == "min" else -worse, on_epoch=True)
        return output


def monitored(savers: list[ModelCheckpoint]) -> dict[str, str]:
    return {saver.monitor: saver.mode for saver in savers if saver.monitor}


class LastAtEpochStart(Callback):
    """Records the step of the last.ckpt on disk as each epoch starts."""

    def __init__(self, last: Path) -> None:
        self.last = last
        self.seen: dict[int, int | None] = {}

    def on_train_epoch_start(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> None:
        step = step_of(self.last) if self.last.exists() else None
        self.seen[trainer.current_epoch] = step


def step_of(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, weights_only=False)["global_step"])


def epoch_of(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, weights_only=False)["epoch"])


def fit(
    config: Path,
    dirpath: Path,
    model: LightningModule | None = None,
    ckpt_path: str | None = None,
    callbacks: tuple[Callback, ...] = (),
    **options: Any,
) -> Trainer:
    savers = build_savers(config, dirpath)
    model = model or Monitored(monitored(savers))
    settings: dict[str, Any] = {
        "max_epochs": 3,
        "limit_train_batches": BATCHES,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": dirpath.parent,
        **trainer_options(config),
        **options,
    }
    trainer = Trainer(callbacks=[*savers, *callbacks], **settings)
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer


def test_every_config_with_checkpoints_is_checked() -> None:
    assert len(CONFIGS) >= 13, CONFIGS
    assert "predict_cal.yaml" not in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_last_ckpt_holds_the_latest_epoch_after_every_epoch(
    name: str, tmp_path: Path
) -> None:
    config = CONF / name
    folder = tmp_path / "checkpoints"
    last = folder / "last.ckpt"
    watch = LastAtEpochStart(last)
    trainer = fit(config, folder, callbacks=(watch,))

    # A fit stopped in epoch 1 resumes from epoch 0's end; one in epoch 2 from
    # epoch 1's.
    assert watch.seen == {0: None, 1: BATCHES, 2: 2 * BATCHES}
    # After a normal finish: the final weights, not the best epoch's.
    assert step_of(last) == trainer.global_step == 3 * BATCHES
    assert epoch_of(last) == 2
    # The fit's end note and Ctrl-C's resume hint name it.
    assert written_checkpoint(trainer) == last

    savers = trainer.checkpoint_callbacks
    best = [saver for saver in savers if isinstance(saver, ModelCheckpoint)]
    best = [saver for saver in best if saver.monitor]
    files = {path.name for path in folder.iterdir()}
    # The best epoch stays in its own file in the monitored configs; the
    # quickstart configs keep only last.ckpt (an epoch file would copy it).
    assert files == {"last.ckpt"} | {Path(s.best_model_path).name for s in best}
    for saver in best:
        assert epoch_of(Path(saver.best_model_path)) == 0
        assert Path(saver.best_model_path).name != "last.ckpt"


@pytest.mark.parametrize("name", CONFIGS)
def test_last_ckpt_knows_the_best_epoch_so_far(name: str, tmp_path: Path) -> None:
    # A fit resumed from last.ckpt restores the best-epoch callback's record
    # from it: saved before that callback took in the epoch's score, it would
    # miss the epoch's new best file and later keep a worse one as the best.
    folder = tmp_path / "checkpoints"
    savers = build_savers(CONF / name, folder)
    model = Monitored(monitored(savers), improving=True)
    trainer = fit(CONF / name, folder, model)
    states = torch.load(folder / "last.ckpt", weights_only=False)["callbacks"]
    for saver in trainer.checkpoint_callbacks:
        assert isinstance(saver, ModelCheckpoint)
        if saver.monitor:
            assert epoch_of(Path(saver.best_model_path)) == 2
            state = states[saver.state_key]
            assert state["best_model_path"] == saver.best_model_path


@pytest.mark.parametrize("name", CONFIGS)
def test_a_fit_that_stops_mid_epoch_on_max_steps_keeps_its_final_weights(
    name: str, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    # 4 batches an epoch: the fit stops halfway through epoch 1.
    trainer = fit(CONF / name, folder, limit_train_batches=4, max_steps=6)
    assert trainer.global_step == 6
    assert step_of(folder / "last.ckpt") == 6
    assert written_checkpoint(trainer) == folder / "last.ckpt"


@pytest.mark.parametrize("name", CONFIGS)
def test_resume_from_last_and_a_rerun_into_the_same_folder(
    name: str, tmp_path: Path
) -> None:
    config = CONF / name
    folder = tmp_path / "checkpoints"
    last = folder / "last.ckpt"
    fit(config, folder, max_epochs=2)
    # `--ckpt_path last` finds it, and the resumed fit rewrites it in place.
    resumed = fit(config, folder, max_epochs=3, ckpt_path="last")
    assert resumed.ckpt_path == str(last)
    assert step_of(last) == 3 * BATCHES
    assert not (folder / "last-v1.ckpt").exists()
    # A new run into the same folder leaves the earlier run's last.ckpt and
    # names its own last-v1.ckpt, rewritten every epoch.
    rerun = fit(config, folder, max_epochs=2)
    assert written_checkpoint(rerun) == folder / "last-v1.ckpt"
    assert step_of(folder / "last-v1.ckpt") == 2 * BATCHES
    assert step_of(last) == 3 * BATCHES
    assert not (folder / "last-v2.ckpt").exists()


@pytest.mark.parametrize("name", CONFIGS)
def test_a_fast_dev_run_writes_no_checkpoint(name: str, tmp_path: Path) -> None:
    trainer = fit(CONF / name, tmp_path / "checkpoints", fast_dev_run=True)
    assert written_checkpoint(trainer) is None
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("name", CONFIGS)
def test_the_first_checkpoint_callback_saves_last(name: str) -> None:
    # trainer.checkpoint_callback, Lightning's first ModelCheckpoint, is the
    # one the end note and the resume hint read (see the fits above).
    first, *others = filter(is_saver, config_callbacks(CONF / name))
    assert first["init_args"]["filename"] == "last"
    # save_last (2.6) follows the top-k files; beside the first callback's
    # last.ckpt it would also write last-v1.ckpt.
    for saver in [first, *others]:
        assert not saver["init_args"].get("save_last"), saver
    folder = first["init_args"]["dirpath"]
    assert folder == f"runs/{Path(name).stem}/checkpoints"
    assert all(other["init_args"]["dirpath"] == folder for other in others)
    if "quickstart" in name:
        assert not others  # one checkpoint per stage: ~1 GB for the walk-through


def test_the_demo_records_beside_the_checkpoints() -> None:
    record = _demo_record(CONF / "simclr_quickstart.yaml")
    assert record == Path("runs/simclr_quickstart/checkpoints") / DEMO_RECORD
    record = _demo_record(CONF / "simclr_cal.yaml")
    assert record == Path("runs/simclr_cal/checkpoints") / DEMO_RECORD


#: The shipped configs' ModelCheckpoint before last.ckpt had its own callback.
SAVE_LAST = {
    "simclr_quickstart.yaml": {"save_top_k": 0, "save_last": True},
    "simclr_cal.yaml": {
        "filename": "simclr-{epoch:03d}",
        "monitor": "val_loss",
        "mode": "min",
        "save_last": True,
    },
}


@pytest.mark.parametrize(("name", "options"), SAVE_LAST.items())
def test_a_fit_resumed_from_a_save_last_checkpoint_names_what_it_wrote(
    name: str, options: dict[str, Any], tmp_path: Path
) -> None:
    # A checkpoint of the earlier configs: the quickstart's first callback
    # shares its state key, so the resumed fit restores its last_model_path,
    # the file it resumed from. The fit writes last-v1.ckpt beside it and
    # must name that one.
    folder = tmp_path / "checkpoints"
    old = ModelCheckpoint(dirpath=folder, **options)
    model = Monitored({"val_loss": "min"})
    Trainer(
        callbacks=[old],
        max_epochs=1,
        limit_train_batches=BATCHES,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    ).fit(model)
    resumed = fit(
        CONF / name, folder, max_epochs=2, ckpt_path=str(folder / "last.ckpt")
    )
    assert written_checkpoint(resumed) == folder / "last-v1.ckpt"
    assert step_of(folder / "last-v1.ckpt") == 2 * BATCHES


@pytest.mark.parametrize("batches", [0, 2])
def test_a_fit_that_took_no_step_is_an_error(tmp_path: Path, batches: int) -> None:
    # Under DDP a small labelled subset gave each device less than a batch:
    # Lightning noted "No training batches" and the fit exited 0 as if done.
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        callbacks=[CheckpointNote()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    if batches:
        trainer.fit(BoringModel())
        assert trainer.global_step == batches
        return
    with pytest.raises(ValueError, match="The fit took no training step"):
        trainer.fit(BoringModel())
