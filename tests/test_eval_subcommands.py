"""`torchgeo-simclr validate/test/predict`: the fit's checks, for scoring too."""

import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_error_line
from conftest import cpu_fit as small
from lightning.pytorch import Trainer
from torchgeo.main import main as torchgeo_main

from torchgeo_simclr.cli import main
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks import FineTuneTask

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A sample scene, and a SimCLR and a fine-tuned checkpoint of one step each.

    The tests run in the folder that holds both stages' ``runs/``.
    """
    work = tmp_path_factory.mktemp("eval")
    scene = work / "scene"
    make_sample_scene(scene, size=512)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        one_step = ("--trainer.max_steps", "1", "--trainer.limit_val_batches", "1")
        main(
            [
                "fit",
                "--config",
                str(CONF / "simclr_quickstart.yaml"),
                *small(scene, *one_step),
                "--data.init_args.batch_size",
                "8",
            ]
        )
        main(
            [
                "fit",
                "--config",
                str(CONF / "finetune_quickstart.yaml"),
                *small(scene, *one_step),
                "--data.init_args.batch_size",
                "4",
            ]
        )
        yield {
            "scene": scene,
            "simclr": work / "runs/simclr_quickstart/checkpoints/last.ckpt",
            "finetune": work / "runs/finetune_quickstart/checkpoints/last.ckpt",
        }


def finetune_args(scene: Path, checkpoint: Path, *extra: str) -> list[str]:
    """``--config conf/finetune_quickstart.yaml`` on *scene* with *checkpoint*."""
    return [
        "--config",
        str(CONF / "finetune_quickstart.yaml"),
        *small(scene, "--trainer.logger", "false", *extra),
        "--data.init_args.batch_size",
        "4",
        "--ckpt_path",
        str(checkpoint),
    ]


@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_another_task_s_checkpoint_is_refused(
    runs: dict[str, Path], subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Plain `torchgeo test` scored the SimCLR probe (exit 0, test_probe_f1),
    # and `torchgeo-simclr test` was an invalid choice.
    err = cli_error_line(
        [subcommand, *finetune_args(runs["scene"], runs["simclr"])], capsys
    )
    assert "was written by torchgeo_simclr.tasks.SimCLRv2Task" in err
    assert f"the configuration {subcommand}s torchgeo_simclr.tasks.FineTuneTask" in err
    assert str(runs["simclr"]) in err


def test_a_model_option_the_checkpoint_replaces_is_refused(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Plain `torchgeo test --model.init_args.threshold 0.7` scores at the
    # checkpoint's threshold.
    args = finetune_args(runs["scene"], runs["finetune"])
    err = cli_error_line(["test", *args, "--model.init_args.threshold", "0.7"], capsys)
    assert "--model.init_args threshold 0.7 (the checkpoint has 0.5)" in err
    assert "drop it to test the checkpoint as it was trained" in err


def test_scores_are_plain_torchgeo_s(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scores: list[list[dict[str, float]]] = []
    test = Trainer.test

    # LightningCLI reads test's options from its signature.
    @functools.wraps(test)
    def recording_test(trainer: Trainer, *args: Any, **kwargs: Any) -> Any:
        scores.append(test(trainer, *args, **kwargs))
        return scores[-1]

    monkeypatch.setattr(Trainer, "test", recording_test)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # LightningCLI warns of pytest's
    args = finetune_args(
        runs["scene"], runs["finetune"], "--trainer.limit_test_batches", "2"
    )
    main(["test", *args])
    torchgeo_main(["test", *args])
    ours, plain = scores
    assert ours == plain
    assert {"test_f1", "test_loss"} <= set(ours[0])


def test_without_a_config_names_one(capsys: pytest.CaptureFixture[str]) -> None:
    err = cli_error_line(["test"], capsys)
    assert "--config conf/finetune_quickstart.yaml --ckpt_path" in err


def test_predict_with_a_config_is_lightning_s(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The map command has no --config: with one, `predict` is `torchgeo
    # predict`, with the same refusal of another task's checkpoint.
    err = cli_error_line(
        [
            "predict",
            "--config",
            str(CONF / "predict_cal.yaml"),
            "--data.init_args.root",
            str(runs["scene"]),
            "--ckpt_path",
            str(runs["simclr"]),
        ],
        capsys,
    )
    assert "was written by torchgeo_simclr.tasks.SimCLRv2Task" in err
    assert "predicts with torchgeo_simclr.tasks.MapPredictionTask" in err
    assert "--model.init_args.checkpoint" in err


def test_predict_without_a_config_is_the_map_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--root", "nowhere"])
    assert exit_info.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_ctrl_c_while_testing_offers_no_resume(
    runs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A test run keeps nothing to resume from: not fit's "resume with
    # --ckpt_path" line.
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(FineTuneTask, "test_step", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["test", *finetune_args(runs["scene"], runs["finetune"])])
    assert info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "torchgeo-simclr test: interrupted. It writes no checkpoint; run it "
        "again for the scores."
    )


def test_a_parser_error_points_to_the_command_s_own_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Under `test` it pointed to `torchgeo-simclr fit --help`.
    config = str(
        Path(__file__).resolve().parents[1] / "conf" / "finetune_quickstart.yaml"
    )
    err = cli_error_line(["test", "--config", config, "--ckpt_path"], capsys)
    assert err.endswith("; torchgeo-simclr test --help lists every option.")


def test_a_predict_config_error_points_to_lightning_s_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `torchgeo-simclr predict --help` is the map command's help, which lists
    # none of the configuration's options.
    config = str(Path(__file__).resolve().parents[1] / "conf" / "predict_cal.yaml")
    err = cli_error_line(["predict", "--config", config, "--ckpt_path"], capsys)
    assert err.endswith(
        "; torchgeo-simclr predict --config FILE --help lists every option."
    )
