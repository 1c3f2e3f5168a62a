"""Options out of range stop `torchgeo-simclr fit` with one sentence naming a fix."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_error_line, scratch_workdir, small_fit

from torchgeo_simclr.cli import main
from torchgeo_simclr.datamodules import CentralValleyDataModule

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch working directory with a small sample scene."""
    yield from scratch_workdir(tmp_path_factory)


def arguments(workdir: Path, config: str, *extra: str) -> list[str]:
    """A fast_dev_run of *config* on the small scene, plus *extra*."""
    fast = ["--trainer.fast_dev_run", "true", *extra]
    run = small_fit(workdir / "scene", workdir / "cache", *fast, precision=None)
    return ["fit", "--config", str(CONF / config), *run]


def one_sentence(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error `torchgeo-simclr fit` prints, checked to be one line."""
    capsys.readouterr()
    return cli_error_line(argv, capsys)


#: (config, arguments, what the sentence must say); all refused when the
#: model or datamodule is built, before any data is read.
BEFORE_DATA = [
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.patch_size", "0"],
        ["--data.init_args.patch_size 0 must be at least 1", "pass e.g. 48"],
    ),
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.patch_size", "-1"],
        ["--data.init_args.patch_size -1 must be at least 1"],
    ),
    (
        "simclr_quickstart.yaml",
        ["--data.init_args.batch_size", "0"],
        ["--data.init_args.batch_size 0 must be at least 1", "pass e.g. 32"],
    ),
    (
        "supervised_quickstart.yaml",
        ["--model.init_args.lr", "-1"],
        ["--model.init_args.lr -1 must be above 0", "pass e.g. 0.001"],
    ),
    (
        "simclr_quickstart.yaml",
        ["--model.init_args.lr", "0"],
        ["--model.init_args.lr 0 must be above 0", "pass e.g. 0.0005"],
    ),
    (
        "simclr_quickstart.yaml",
        ["--model.init_args.weight_decay", "-1"],
        ["--model.init_args.weight_decay -1 must be 0 or more", "pass e.g."],
    ),
    (
        "supervised_quickstart.yaml",
        ["--model.init_args.weight_decay", "-1"],
        ["--model.init_args.weight_decay -1 must be 0 or more"],
    ),
    (
        "supervised_quickstart.yaml",
        ["--model.init_args.pos_weight", "-2"],
        ["--model.init_args.pos_weight -2 must be above 0", "pass e.g. 2"],
    ),
    (
        "distill_quickstart.yaml",
        ["--model.init_args.alpha", "-1"],
        ["--model.init_args.alpha -1 must be 0 or more", "pass e.g. 0"],
    ),
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.split_fractions", "[1.2, -0.1, -0.1]"],
        [
            "--data.init_args.split_fractions [1.2, -0.1, -0.1] must be three "
            "shares above 0",
            "pass e.g. [0.7, 0.15, 0.15]",
        ],
    ),
    (
        "simclr_quickstart.yaml",
        ["--data.init_args.split_fractions", "[0.85, 0.15, 0.0]"],
        ["split_fractions [0.85, 0.15, 0.0] must be three shares above 0"],
    ),
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.split_fractions", "[0.7, 0.15, 0.5]"],
        [
            "--data.init_args.split_fractions [0.7, 0.15, 0.5] sum to 1.35, not 1",
            "are not rescaled",
        ],
    ),
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.split_fractions", "[0.5, 0.5, 0.5]"],
        ["sum to 1.5, not 1"],
    ),
    # Refused only once the split was cut and the subset drawn (15-45 s).
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.label_fraction", "1.5"],
        [
            "--data.init_args.label_fraction takes a share of the labelled "
            "patches in (0, 1], got 1.5",
            "pass e.g. 0.01",
        ],
    ),
    (
        "supervised_quickstart.yaml",
        ["--data.init_args.label_fraction", "0"],
        ["--data.init_args.label_fraction takes a share", "got 0;"],
    ),
    # An empty list read all 12 bands; an unknown band stopped only at setup.
    (
        "simclr_quickstart.yaml",
        ["--data.init_args.bands", "[]"],
        ["bands=[] must name each band once and at least one band"],
    ),
    (
        "simclr_quickstart.yaml",
        ["--data.init_args.bands", "[B04, B13]"],
        ["Unknown Sentinel-2 band(s) ['B13']"],
    ),
]


@pytest.mark.parametrize(("config", "extra", "expected"), BEFORE_DATA)
def test_an_option_out_of_range_is_named_before_the_data_is_read(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    extra: list[str],
    expected: list[str],
) -> None:
    read: list[str] = []
    monkeypatch.setattr(
        CentralValleyDataModule, "setup", lambda _, stage: read.append(stage)
    )
    err = one_sentence(arguments(workdir, config, *extra), capsys)
    for text in expected:
        assert text in err
    assert read == []


def test_split_fractions_summing_to_one_within_rounding_are_taken() -> None:
    dm = CentralValleyDataModule(split_fractions=(0.7, 0.15, 0.1500000001))
    assert dm.split_fractions == (0.7, 0.15, 0.1500000001)


def test_a_batch_of_one_patch_under_batch_norm_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The kept projection-head block's BatchNorm failed at the first step with
    # torch's "Expected more than 1 value per channel when training".
    argv = arguments(workdir, "supervised_quickstart.yaml")
    err = one_sentence([*argv, "--data.init_args.batch_size", "1"], capsys)
    assert "--data.init_args.batch_size 1 gives the network's BatchNorm" in err
    assert "model.head.0." in err
    assert "needs at least 2 patches" in err
    assert "pass --data.init_args.batch_size 2 or more" in err
    # A U-Net's BatchNorm over feature maps of 2 x 2 px or more (64 px
    # patches) has pixels to normalise over: one patch per batch trains.
    segment = arguments(
        workdir,
        "segment_quickstart.yaml",
        "--model.init_args.checkpoint",
        "null",
        "--data.init_args.patch_size",
        "64",
        "--data.init_args.batch_size",
        "1",
    )
    main(segment)


def test_no_checkpointing_says_to_drop_the_configs_callback(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    argv = arguments(workdir, "supervised_quickstart.yaml")
    off = ["--trainer.enable_checkpointing", "false"]
    err = one_sentence([*argv, *off], capsys)
    assert "--trainer.enable_checkpointing false" in err
    assert "ModelCheckpoint" in err
    assert "--trainer.callbacks=[]" in err
    # What it says to pass runs.
    main([*argv, *off, "--trainer.callbacks=[]"])
    assert "No checkpoint written" in lightning_log.text
