"""The shipped fine-tuning, supervised and distillation configs run, and check data."""

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    cli_error_line,
    few_steps,
    save_checkpoint,
    scratch_workdir,
    small_fit,
    torchgeo_cli,
)
from lightning.pytorch import Trainer

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import IRRIGATED, S2_BANDS
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datamodules.fractions import grid_patch_labels
from torchgeo_simclr.inference import predict_map
from torchgeo_simclr.lightning_cli import fit, run_cli
from torchgeo_simclr.models.checkpoint import DataMetadata, load_encoder, load_model
from torchgeo_simclr.tasks import DistillTask, FineTuneTask
from torchgeo_simclr.tasks.irrigation import StandInWarning

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch working directory (the configs write under runs/)."""
    yield from scratch_workdir(tmp_path_factory)


def tiny(workdir: Path, *extra: str) -> list[str]:
    return small_fit(workdir / "scene", workdir / "cache", *extra)


def short_fit_args(config: str, workdir: Path, *extra: str) -> list[str]:
    """A one-step fit of *config* on the small scene."""
    return [
        "--config",
        str(CONF / config),
        *tiny(workdir, *extra),
        "--data.init_args.batch_size",
        "4",
        *few_steps(1),
    ]


def short_fit(config: str, workdir: Path, *extra: str) -> Path:
    checkpoint = fit(short_fit_args(config, workdir, *extra))
    assert checkpoint is not None
    return checkpoint.resolve()


@pytest.fixture(scope="module")
def pretrained(workdir: Path) -> Path:
    """A one-step quickstart pretraining run: a checkpoint with data metadata."""
    return short_fit("simclr_quickstart.yaml", workdir)


@pytest.fixture(scope="module")
def finetuned(workdir: Path, pretrained: Path) -> Path:
    """A one-step quickstart fine-tuning of *pretrained*: a teacher."""
    return short_fit(
        "finetune_quickstart.yaml",
        workdir,
        "--model.init_args.checkpoint",
        str(pretrained),
    )


def test_short_runs_write_checkpoints_for_the_next_stage(
    pretrained: Path, finetuned: Path
) -> None:
    encoder = load_encoder(pretrained)
    assert encoder.data is not None
    assert encoder.data.bands == tuple(S2_BANDS)
    teacher = load_model(finetuned)
    assert teacher.kind == "finetune"
    assert teacher.data is not None
    assert teacher.data.bands == tuple(S2_BANDS)
    assert teacher.data.patch_size == 32
    assert teacher.model.spec.head_layers == 1


@pytest.mark.parametrize("preset", ["cal", "quickstart"])
def test_finetune_config(workdir: Path, pretrained: Path, preset: str) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / f"finetune_{preset}.yaml"),
            *tiny(workdir),
            "--model.init_args.checkpoint",
            str(pretrained),
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert isinstance(cli.model, FineTuneTask)
    assert cli.model.model.spec.model == "resnet18"  # from the checkpoint
    assert cli.model.model.spec.head_layers == 1
    assert cli.model.pretrained_data is not None
    assert isinstance(cli.datamodule, CentralValleyDataModule)
    assert cli.datamodule.label_fraction == 0.01
    assert cli.datamodule.n_labels is not None
    assert cli.datamodule.n_labels >= 2


def test_the_labelled_subset_reaches_the_logger(
    workdir: Path, pretrained: Path, tmp_path: Path
) -> None:
    # A label-efficiency curve drawn in TensorBoard, MLflow or W&B needs each
    # run's number of labels; it was only printed, and kept in the checkpoint.
    cli = run_cli(
        [
            *short_fit_args(
                "finetune_quickstart.yaml",
                workdir,
                "--model.init_args.checkpoint",
                str(pretrained),
            ),
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    (saved,) = tmp_path.rglob("hparams.yaml")
    hparams = yaml.safe_load(saved.read_text())
    assert hparams["label_fraction"] == 0.01
    assert hparams["label_seed"] == 0
    drawn = cli.datamodule.train_dataset
    labels = grid_patch_labels(drawn.dataset, drawn.patches)
    assert hparams["n_labels"] == len(drawn) == cli.datamodule.n_labels
    assert hparams["n_labels_irrigated"] == int((labels == IRRIGATED).sum())
    assert hparams["lr"] == 1e-3  # the task's own hyperparameters are still there


def test_earlier_stages_given_relative_are_saved_absolute(
    workdir: Path, pretrained: Path, finetuned: Path
) -> None:
    # LightningCLI saves the hyperparameters it parsed; `--ckpt_path` puts them
    # back over the command line, so a relative path breaks in another folder.
    stages = (
        ("finetune_quickstart.yaml", "checkpoint", pretrained),
        ("distill_quickstart.yaml", "teacher", finetuned),
    )
    for config, option, earlier in stages:
        relative = str(earlier.relative_to(workdir))
        written = short_fit(config, workdir, f"--model.init_args.{option}", relative)
        saved = torch.load(written, weights_only=False)["hyper_parameters"]
        assert saved[option] == str(earlier)


@pytest.mark.parametrize("preset", ["cal", "quickstart"])
def test_supervised_config(workdir: Path, preset: str) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / f"supervised_{preset}.yaml"),
            *tiny(workdir),
            "--model.init_args.model",
            "resnet18",
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert isinstance(cli.model, FineTuneTask)
    assert cli.model.hparams["checkpoint"] is None
    assert cli.model.model.spec.head_layers == 1
    assert cli.model.data_metadata is not None
    assert cli.model.data_metadata.bands == tuple(S2_BANDS)


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ("simclr_quickstart.yaml", None),
        ("finetune_quickstart.yaml", "checkpoint"),
        ("distill_quickstart.yaml", "teacher"),
    ],
)
def test_a_fast_dev_run_leaves_no_checkpoint(
    tmp_path: Path,
    workdir: Path,
    pretrained: Path,
    finetuned: Path,
    config: str,
    option: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A smoke test before the real run: had it left checkpoints/last.ckpt, the
    # next stage's documented path would name the one-step model, and the real
    # run would write last-v1.ckpt.
    earlier = {"checkpoint": pretrained, "teacher": finetuned}
    extra = (
        [] if option is None else [f"--model.init_args.{option}", str(earlier[option])]
    )
    monkeypatch.chdir(tmp_path)
    dev_run = ["--trainer.fast_dev_run", "true"]
    written = fit(["--config", str(CONF / config), *tiny(workdir, *extra), *dev_run])
    assert written is None
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("preset", "student"), [("cal", "resnet18"), ("quickstart", "regnetx_002")]
)
def test_distill_config(
    workdir: Path, finetuned: Path, preset: str, student: str
) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / f"distill_{preset}.yaml"),
            *tiny(workdir),
            "--model.init_args.teacher",
            str(finetuned),
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert isinstance(cli.model, DistillTask)
    assert cli.model.model.spec.model == student
    assert cli.model.teacher.spec.model == "resnet18"
    assert isinstance(cli.datamodule, CentralValleyDataModule)
    assert cli.datamodule.unlabeled
    # Distillation sees every patch of the train grid, not only the labelled ones.
    assert cli.datamodule.n_labels is not None
    assert len(cli.datamodule.train_dataset) > cli.datamodule.n_labels


def fit_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    return cli_error_line(["fit", *args, "--trainer.fast_dev_run", "true"], capsys)


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_a_checkpoint_of_another_task_as_ckpt_path_is_refused(
    workdir: Path,
    pretrained: Path,
    finetuned: Path,
    with_checkpoint: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # LightningCLI took the task from the checkpoint: SimCLR ran instead. Given
    # with the checkpoint option as well, the refusal was about that option
    # being ignored ("the checkpoint has None"), not about the wrong file.
    args = ["--config", str(CONF / "finetune_quickstart.yaml"), *tiny(workdir)]
    also = ["--model.init_args.checkpoint", str(pretrained)] if with_checkpoint else []
    err = fit_error([*args, *also, "--ckpt_path", str(pretrained)], capsys)
    assert "was written by torchgeo_simclr.tasks.SimCLRv2Task" in err
    assert "trains torchgeo_simclr.tasks.FineTuneTask" in err
    assert "--model.init_args.checkpoint" in err
    # A checkpoint of the same task resumes.
    cli = run_cli(
        [
            *args,
            "--model.init_args.checkpoint",
            str(pretrained),
            "--ckpt_path",
            str(finetuned),
            *few_steps(2),
        ]
    )
    assert cli.trainer.global_step == 2


def test_model_options_that_ckpt_path_would_drop_are_refused(
    workdir: Path,
    pretrained: Path,
    finetuned: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # LightningCLI puts the checkpoint's options over the command line: a
    # resumed fit with another lr or threshold silently kept the old ones.
    args = [
        "--config",
        str(CONF / "finetune_quickstart.yaml"),
        *tiny(workdir),
        "--ckpt_path",
        str(finetuned),
    ]
    saved = torch.load(finetuned, weights_only=False)["hyper_parameters"]
    err = fit_error([*args, "--model.init_args.lr", "0.5"], capsys)
    assert f"--ckpt_path {str(finetuned)!r} restores the model options" in err
    assert f"lr 0.5 (the checkpoint has {saved['lr']!r}) would be ignored" in err
    # The options it was trained with, a relative path among them, resume.
    relative = os.path.relpath(pretrained)
    cli = run_cli(
        [
            *args,
            "--model.init_args.checkpoint",
            relative,
            f"--model.init_args.lr={saved['lr']}",
            *few_steps(2),
        ]
    )
    assert cli.trainer.global_step == 2


@pytest.mark.parametrize(
    ("args", "expected", "ending"),
    [
        (
            ["--model.init_args.backbone", "resnet50"],
            "SimCLRv2Task: Option 'backbone' is not accepted (did you mean "
            "--model.init_args.model or --model.init_args.backbone_kwargs?)",
            "fit --model.help torchgeo_simclr.tasks.SimCLRv2Task lists its options.",
        ),
        (
            ["--data.init_args.patchsize", "3"],
            "Option 'patchsize' is not accepted (did you mean "
            "--data.init_args.patch_size",
            "torchgeo_simclr.datamodules.CentralValleyDataModule lists its options.",
        ),
        (
            [
                "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping",
                "--trainer.callbacks.init_args.monitor",
                "val_loss",
                "--trainer.callbacks.init_args.patiense",
                "3",
            ],
            "EarlyStopping: Option 'patiense' is not accepted (did you mean "
            "--trainer.callbacks.init_args.patience?)",
            "fit --trainer.callbacks.help lightning.pytorch.callbacks.EarlyStopping "
            "lists its options.",
        ),
        (
            ["--trainer.max_stepz", "2"],
            "unrecognized arguments: --trainer.max_stepz",
            "fit --help lists every option.",
        ),
        (
            ["--config", "conf/nope.yaml"],
            "File does not exist",
            "fit --help lists every option.",
        ),
    ],
)
def test_an_option_the_parser_refuses_is_one_line(
    workdir: Path,
    args: list[str],
    expected: str,
    ending: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # jsonargparse printed 50-60 lines of usage before the one that matters,
    # and `fit --help` lists the tasks, not the options a task takes.
    config = ["--config", str(CONF / "simclr_quickstart.yaml"), *tiny(workdir)]
    err = fit_error([*config, *args], capsys)
    assert expected in err
    assert err.endswith(ending)


def test_default_root_dir_moves_the_checkpoints_too(
    workdir: Path, tmp_path: Path
) -> None:
    # The configs name their checkpoint folder: another root moved the logs
    # but left last.ckpt beside the config's other runs.
    root = tmp_path / "my_run"
    written = short_fit(
        "supervised_quickstart.yaml", workdir, "--trainer.default_root_dir", str(root)
    )
    assert written.parent == root / "checkpoints"
    assert (root / "lightning_logs").is_dir()


def test_a_quickstart_stage_keeps_one_checkpoint(workdir: Path, tmp_path: Path) -> None:
    # Each stage also kept an epoch file, a byte-for-byte copy of last.ckpt:
    # about 1 GB for the README's walk-through.
    root = tmp_path / "run"
    written = short_fit(
        "supervised_quickstart.yaml", workdir, "--trainer.default_root_dir", str(root)
    )
    assert sorted(path.name for path in written.parent.iterdir()) == ["last.ckpt"]
    for config in CONF.glob("*_quickstart.yaml"):
        callbacks = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
        (saver,) = [c for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
        assert saver["init_args"]["filename"] == "last", config.name
        assert saver["init_args"]["save_top_k"] == 1, config.name
        assert saver["init_args"].get("monitor") is None, config.name


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ("finetune_quickstart.yaml", "checkpoint"),
        ("distill_quickstart.yaml", "teacher"),
    ],
)
def test_a_missing_earlier_stage_stops_a_fit_before_the_data(
    workdir: Path,
    tmp_path: Path,
    config: str,
    option: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stand-in network kept for --ckpt_path runs let a fit set up all its
    # data (minutes at full scale) before it stopped.
    def never(*args: object) -> None:
        raise AssertionError("the data were set up")

    monkeypatch.setattr(CentralValleyDataModule, "setup", never)
    gone = tmp_path / "gone.ckpt"
    args = ["--config", str(CONF / config), *tiny(workdir)]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, f"--model.init_args.{option}", str(gone)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    # Only the refusal: not also the warning that a stand-in network is built
    # for --ckpt_path runs, which this fit is not.
    named = [line for line in err.splitlines() if f"{str(gone)!r}" in line]
    assert len(named) == 1, err
    assert named[0].startswith("torchgeo-simclr fit: error: ")
    assert f"{str(gone)!r} does not exist" in named[0]


@pytest.fixture
def torchgeo_fit(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], None]:
    """`torchgeo fit ARGS`: torchgeo's own CLI, which this package cannot change."""
    torchgeo_main = torchgeo_cli(monkeypatch)

    def run(args: list[str]) -> None:
        torchgeo_main(["fit", *args])

    return run


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ("finetune_quickstart.yaml", "checkpoint"),
        ("distill_quickstart.yaml", "teacher"),
    ],
)
def test_a_missing_earlier_stage_stops_a_torchgeo_fit_before_the_data(
    workdir: Path,
    tmp_path: Path,
    config: str,
    option: str,
    torchgeo_fit: Callable[[list[str]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under `torchgeo fit` the task knew the file was gone when it was built,
    # but the fit stopped only in on_fit_start, once the datamodule had drawn
    # its labelled subset and cut its split (14-53 s at the configs' scale).
    def never(*args: object) -> None:
        raise AssertionError("the data were set up")

    monkeypatch.setattr(CentralValleyDataModule, "setup", never)
    gone = tmp_path / "gone.ckpt"
    args = ["--config", str(CONF / config), *tiny(workdir), *few_steps(1)]
    with (
        pytest.warns(StandInWarning),
        pytest.raises(FileNotFoundError) as error,
    ):
        torchgeo_fit([*args, f"--model.init_args.{option}", str(gone)])
    assert str(error.value).startswith(
        f"{option.capitalize()} {str(gone)!r} does not exist;"
    )


def test_a_torchgeo_fit_that_resumes_needs_no_pretraining_checkpoint(
    workdir: Path,
    pretrained: Path,
    tmp_path: Path,
    torchgeo_fit: Callable[[list[str]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The early refusal above is for fits that start afresh: one that resumes
    # from --ckpt_path takes its network from that checkpoint.
    monkeypatch.chdir(tmp_path)  # `torchgeo fit` writes the config's runs/
    encoder = tmp_path / "encoder.ckpt"
    encoder.write_bytes(pretrained.read_bytes())
    first = short_fit(
        "finetune_quickstart.yaml",
        workdir,
        "--model.init_args.checkpoint",
        str(encoder),
    )
    encoder.unlink()
    args = short_fit_args("finetune_quickstart.yaml", workdir)
    with pytest.warns(StandInWarning):
        torchgeo_fit([*args, "--trainer.max_steps", "2", "--ckpt_path", str(first)])
    # The resumed run saves its last.ckpt in place of the one it resumed.
    assert torch.load(first, weights_only=False)["global_step"] == 2


#: What an interrupted fit says before the checkpoint that resumes it.
RESUME = "The checkpoints saved so far are kept; resume with --ckpt_path"


@pytest.mark.usefixtures("sigterm_guard")
def test_ctrl_c_names_the_checkpoint_that_resumes_this_run(
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The message always said checkpoints/last.ckpt: a rerun's own is
    # last-v1.ckpt, and a run stopped in its first epoch has none.
    root = ["--trainer.default_root_dir", str(tmp_path / "run")]
    args = ["fit", *short_fit_args("supervised_quickstart.yaml", workdir, *root)]
    main(args)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    fit = Trainer.fit

    def stopped_after(self: Trainer, *a: object, **kw: object) -> None:
        fit(self, *a, **kw)
        raise KeyboardInterrupt

    def stopped_before(self: Trainer, *a: object, **kw: object) -> None:
        raise KeyboardInterrupt

    def killed_after(self: Trainer, *a: object, **kw: object) -> None:
        fit(self, *a, **kw)
        signal.raise_signal(signal.SIGTERM)  # kill, a batch system's time limit

    rerun, third = (
        tmp_path / "run" / "checkpoints" / f"last-v{n}.ckpt" for n in (1, 2)
    )
    for stop, status, expected in (
        (stopped_after, 130, f"interrupted. {RESUME} {rerun}."),
        (stopped_before, 130, "No checkpoint of this run was saved yet"),
        (killed_after, 143, f"terminated (SIGTERM). {RESUME} {third}."),
    ):
        monkeypatch.setattr(Trainer, "fit", stop)
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == status
        assert expected in capsys.readouterr().err


def test_an_unreadable_ckpt_path_is_one_sentence(
    workdir: Path, finetuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A checkpoint cut short by a copy gave a 30-line traceback ending in
    # torch's advice to load it with weights_only=False.
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(finetuned.read_bytes()[:100_000])
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("irrigated fields\n")
    for path in (cut, not_a_checkpoint):
        err = fit_error(
            [
                "--config",
                str(CONF / "finetune_quickstart.yaml"),
                *tiny(workdir),
                "--ckpt_path",
                str(path),
            ],
            capsys,
        )
        assert f"--ckpt_path {str(path)!r} is not a readable PyTorch checkpoint" in err
        assert "copy it again if it was cut short" in err


@pytest.mark.parametrize(
    "config", ["simclr_quickstart.yaml", "supervised_quickstart.yaml"]
)
def test_a_backbone_of_one_input_size_is_refused_before_training(
    workdir: Path, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ViT takes 224 px only: it failed at its first step with timm's
    # assertion in a traceback.
    model = ["--model.init_args.model", "vit_tiny_patch16_224"]
    err = fit_error(["--config", str(CONF / config), *tiny(workdir), *model], capsys)
    assert "'vit_tiny_patch16_224' takes only 224 x 224 px inputs" in err
    assert "the patches are 32 px" in err


def test_a_teacher_of_one_input_size_is_refused_before_training(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ViT teacher at 32 px failed at the first step, deep in timm.
    metadata = DataMetadata(
        bands=tuple(S2_BANDS), mean=(1e3,) * 12, std=(5e3,) * 12, patch_size=32
    )
    teacher = save_checkpoint(
        workdir / "vit_teacher.ckpt",
        "classification",
        metadata,
        model="vit_tiny_patch16_224",
    )
    config = ["--config", str(CONF / "distill_quickstart.yaml"), *tiny(workdir)]
    err = fit_error([*config, "--model.init_args.teacher", str(teacher)], capsys)
    assert f"Teacher {str(teacher)!r}: Backbone 'vit_tiny_patch16_224'" in err
    assert "takes only 224 x 224 px inputs" in err


REORDERED = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
REORDERED += ["B01", "B09"]


def test_bands_other_than_the_checkpoint_s(
    workdir: Path, pretrained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bands = "[" + ",".join(REORDERED) + "]"
    config = str(CONF / "finetune_quickstart.yaml")
    err = fit_error(
        [
            "--config",
            config,
            *tiny(workdir, "--data.init_args.bands", bands),
            "--model.init_args.checkpoint",
            str(pretrained),
        ],
        capsys,
    )
    assert str(list(S2_BANDS)) in err
    assert str(REORDERED) in err


def test_fewer_bands_than_the_checkpoint_s(
    workdir: Path, pretrained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(CONF / "finetune_quickstart.yaml")
    err = fit_error(
        [
            "--config",
            config,
            *tiny(workdir, "--data.init_args.bands", "[B02,B03,B04,B08]"),
            "--model.init_args.checkpoint",
            str(pretrained),
        ],
        capsys,
    )
    assert str(pretrained) in err
    assert str(list(S2_BANDS)) in err
    assert "['B02', 'B03', 'B04', 'B08']" in err


def test_student_on_another_split(
    workdir: Path, finetuned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(CONF / "distill_quickstart.yaml")
    err = fit_error(
        [
            "--config",
            config,
            *tiny(workdir, "--data.init_args.seed", "1"),
            "--model.init_args.teacher",
            str(finetuned),
        ],
        capsys,
    )
    assert "spatial split" in err
    assert "seed" in err


@pytest.mark.parametrize("route", ["torchgeo-simclr fit", "torchgeo fit"])
def test_a_rerun_names_the_checkpoint_it_wrote(
    workdir: Path,
    pretrained: Path,
    finetuned: Path,
    lightning_log: pytest.LogCaptureFixture,
    torchgeo_fit: Callable[[list[str]], None],
    route: str,
) -> None:
    # Plain `torchgeo fit` said nothing of the checkpoint, so the next stage's
    # documented command took the earlier run's last.ckpt without a word.
    before = finetuned.read_bytes()

    def simclr_fit(args: list[str]) -> None:
        main(["fit", *args])

    run = simclr_fit if route == "torchgeo-simclr fit" else torchgeo_fit
    run(
        [
            "--config",
            str(CONF / "finetune_quickstart.yaml"),
            *tiny(workdir),
            "--model.init_args.checkpoint",
            str(pretrained),
            "--data.init_args.batch_size",
            "4",
            "--trainer.max_steps",
            "1",
            "--trainer.limit_val_batches",
            "1",
        ]
    )
    printed = lightning_log.text
    # The earlier run's checkpoint is kept; the new one is named.
    assert finetuned.read_bytes() == before
    written = re.search(r"Checkpoint: (\S+)", printed)
    assert written is not None
    assert Path(written[1]).name.startswith("last-v")
    assert Path(written[1]) != finetuned
    # The fixture's own run may be last-vN already when other tests fitted
    # this config first; the note names the folder's last.ckpt.
    earlier = finetuned.with_name("last.ckpt")
    assert f"({earlier} holds an earlier run in the same folder" in printed
    if route == "torchgeo-simclr fit":
        # Lightning's tip about a cloud logger reads like a problem to fix.
        assert "Tip:" not in printed


@pytest.mark.parametrize(
    ("config", "argument", "given", "found", "expected"),
    [
        ("finetune_quickstart.yaml", "checkpoint", "finetuned", "finetune", "simclr"),
        ("distill_quickstart.yaml", "teacher", "pretrained", "simclr", "finetune"),
    ],
)
def test_checkpoint_of_the_wrong_kind(
    workdir: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    config: str,
    argument: str,
    given: str,
    found: str,
    expected: str,
) -> None:
    path = request.getfixturevalue(given)
    err = fit_error(
        [
            "--config",
            str(CONF / config),
            *tiny(workdir),
            f"--model.init_args.{argument}",
            str(path),
        ],
        capsys,
    )
    assert str(path) in err
    assert f"kind {found!r}" in err
    assert f"{expected!r}" in err


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n"])
def test_a_file_that_is_no_checkpoint(
    workdir: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = workdir / "notes.ckpt"
    path.write_bytes(content)
    err = fit_error(
        [
            "--config",
            str(CONF / "finetune_quickstart.yaml"),
            *tiny(workdir),
            "--model.init_args.checkpoint",
            str(path),
        ],
        capsys,
    )
    assert f"{str(path)!r} is not a readable PyTorch checkpoint" in err


def test_segment_quickstart_config_makes_a_model_predict_can_map(
    workdir: Path, pretrained: Path
) -> None:
    checkpoint = short_fit(
        "segment_quickstart.yaml",
        workdir,
        "--model.init_args.checkpoint",
        str(pretrained),
    )
    model = load_model(checkpoint)
    assert model.model.spec.problem == "segmentation"
    assert model.model.spec.head_layers == 0
    result = predict_map(
        checkpoint,
        workdir / "scene",
        workdir / "maps" / "segment.tif",
        patch_size=128,
        progress=False,
    )
    assert result.summary["model"]["problem"] == "segmentation"
    assert result.summary["valid_ha"] > 0
    assert result.files.classes.is_file()
