"""`torchgeo-simclr fit --config FILE`: a bad config names the file and the key."""

from pathlib import Path

import pytest
from conftest import cli_error_line

CONF = Path(__file__).resolve().parents[1] / "conf"

#: The datamodule of the quickstart configs, as a YAML file names it.
DATAMODULE = "torchgeo_simclr.datamodules.CentralValleyDataModule"


def data_yaml(*lines: str) -> str:
    """A config that sets the quickstart datamodule's *lines* (``key: value``)."""
    return "\n".join(
        ["data:", f"  class_path: {DATAMODULE}", "  init_args:"]
        + [f"    {line}" for line in lines]
    )


def fit_error(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[str, str]:
    """Run `fit` on the quickstart config plus *text* as a second config.

    Returns:
        The second config's path and the one line `fit` printed (exit 2).
    """
    config = tmp_path / "my_settings.yaml"
    config.write_text(text + "\n")
    argv = ["fit", "--config", str(CONF / "simclr_quickstart.yaml")]
    return str(config), cli_error_line([*argv, "--config", str(config), *extra], capsys)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            data_yaml('batch_size: "abc"'),
            "sets data.init_args.batch_size to 'abc', but batch_size takes a whole "
            "number (int); change it there, e.g. to batch_size: 32 (the default).",
        ),
        (
            data_yaml("label_fraction: lots"),
            "sets data.init_args.label_fraction to 'lots', but label_fraction takes "
            "a number or null (float | None); change it there to a number or null.",
        ),
        (
            data_yaml("split_fractions: [0.5, 0.5]"),
            "sets data.init_args.split_fractions to [0.5, 0.5], but split_fractions "
            "takes a list of 3 numbers (tuple[float, float, float])",
        ),
        (
            "trainer:\n  max_epochs: many",
            "sets trainer.max_epochs to 'many', but max_epochs takes a whole number "
            "or null",
        ),
        (
            "model:\n  class_path: torchgeo_simclr.tasks.SimCLRv2Task\n"
            "  init_args:\n    optimizer: adamw",
            "sets model.init_args.optimizer to 'adamw', but optimizer takes one of "
            "adam, lars, sgd",
        ),
    ],
    ids=["int", "optional float", "tuple", "trainer", "literal"],
)
def test_a_value_of_the_wrong_type_names_the_file_key_and_type(
    tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonargparse's dump of the Union subtypes of `data`, without the file.
    config, err = fit_error(tmp_path, text, capsys)
    assert f"Config file {config!r} {named}" in err
    assert "Union" not in err


def test_the_file_that_set_the_refused_value_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The parser refuses a bad value where it reads it, though a later file
    # sets a good one: the later file is not to blame.
    good = tmp_path / "good.yaml"
    good.write_text(data_yaml("batch_size: 4"))
    config, err = fit_error(
        tmp_path, data_yaml("batch_size: abc"), capsys, "--config", str(good)
    )
    assert f"Config file {config!r} sets data.init_args.batch_size to 'abc'" in err
    assert "(a later --config or option does not override a value refused here)" in err


@pytest.mark.parametrize(
    "bad",
    ["split_fractions: [0.7, 0.15, 0.l5]", "bbox: [a, b, c, d]"],
    ids=["item", "all items"],
)
def test_a_list_mended_by_a_later_file_blames_the_earlier(
    tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The later file, which holds the right list, was blamed for it.
    good = tmp_path / "good.yaml"
    key = bad.split(":")[0]
    good.write_text(
        data_yaml(
            "split_fractions: [0.7, 0.15, 0.15]"
            if key == "split_fractions"
            else "bbox: [-120.86, 37.03, -120.70, 37.15]"
        )
    )
    config, err = fit_error(tmp_path, data_yaml(bad), capsys, "--config", str(good))
    assert f"Config file {config!r} sets data.init_args.{key} to [" in err
    assert str(good) not in err


def test_the_bad_entry_of_a_list_of_callbacks_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = "lightning.pytorch.callbacks.ModelCheckpoint"
    text = (
        "trainer:\n  callbacks:\n"
        f"    - class_path: {checkpoint}\n      init_args:\n        save_top_k: one\n"
        f"    - class_path: {checkpoint}\n      init_args:\n        save_top_k: 1\n"
    )
    config, err = fit_error(tmp_path, text, capsys)
    assert (
        f"Config file {config!r} sets trainer.callbacks.init_args.save_top_k to 'one'"
    ) in err


def test_a_misspelt_top_level_key_is_told_the_key_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, err = fit_error(tmp_path, "dat:\n  init_args:\n    root: here", capsys)
    assert f"Config file {config!r} sets dat.init_args.root" in err
    assert "(did you mean data.init_args.root?)" in err


def test_a_wrong_type_on_the_command_line_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fit", "--config", str(CONF / "simclr_quickstart.yaml")]
    err = cli_error_line([*argv, "--data.init_args.batch_size", "abc"], capsys)
    assert err.endswith(
        "--data.init_args.batch_size got 'abc', but it takes a whole number (int); "
        "pass e.g. --data.init_args.batch_size 32 (the default)."
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            data_yaml("batchsize: 4"),
            "sets data.init_args.batchsize, which "
            f"{DATAMODULE} does not accept (did you mean data.init_args.batch_size",
        ),
        (
            "trainer:\n  max_epoch: 3",
            "sets trainer.max_epoch, which fit does not accept (did you mean "
            "trainer.max_epochs",
        ),
    ],
    ids=["datamodule", "trainer"],
)
def test_a_misspelt_key_names_the_file(
    tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, err = fit_error(tmp_path, text, capsys)
    assert f"Config file {config!r} {named}" in err
    assert "rename or remove it there" in err


def test_invalid_yaml_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonargparse named the file "<unicode string>".
    text = data_yaml("batch_size: [4", "root: data")
    config, err = fit_error(tmp_path, text, capsys)
    assert f"Config file {config!r} is not valid YAML: " in err
    assert "at line 5, column 9" in err
    assert "unicode string" not in err


def test_a_list_for_a_config_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, err = fit_error(tmp_path, "- trainer\n- data", capsys)
    assert f"Config file {config!r} holds a list, not options by name" in err


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "model:\n  class_path: torchgeo_simclr.tasks.FinetuneTask",
            "sets model.class_path to torchgeo_simclr.tasks.FinetuneTask, but "
            "torchgeo_simclr.tasks has no FinetuneTask (did you mean "
            "torchgeo_simclr.tasks.FineTuneTask?)",
        ),
        (
            "trainer:\n  callbacks:\n"
            "    - class_path: lightning.pytorch.callbacks.ModelCheckpont",
            "sets trainer.callbacks.class_path to "
            "lightning.pytorch.callbacks.ModelCheckpont, but "
            "lightning.pytorch.callbacks has no ModelCheckpont (did you mean "
            "lightning.pytorch.callbacks.ModelCheckpoint",
        ),
    ],
    ids=["model", "callback"],
)
def test_a_misspelt_class_path_names_the_file_and_the_class_meant(
    tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonargparse's Union dump, which does not name the file.
    config, err = fit_error(tmp_path, text, capsys)
    assert f"Config file {config!r} {named}" in err
    assert "Union" not in err


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f"data:\n  class_path: {DATAMODULE}\n  init_arg:\n    batch_size: 4", "data"),
        (
            "model:\n  class_path: torchgeo_simclr.tasks.SimCLRv2Task\n"
            "  init_arg:\n    temperature: 0.2",
            "model",
        ),
        (
            "trainer:\n  callbacks:\n"
            "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
            "      init_arg:\n        save_last: true",
            "trainer.callbacks",
        ),
    ],
    ids=["data", "model", "callback"],
)
def test_a_misspelt_init_args_names_the_file_and_the_key_meant(
    tmp_path: Path, text: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonargparse blamed the base class (BaseDataModule "does not accept" the
    # option, BaseTask "is abstract") in its Union dump.
    config, err = fit_error(tmp_path, text, capsys)
    assert (
        f"Config file {config!r} sets {key}.init_arg, which is not a key of a "
        f"class's entry (did you mean {key}.init_args?)"
    ) in err
    assert "Union" not in err


def test_an_empty_config_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # jsonargparse said "Unexpected config:" and nothing else.
    config, err = fit_error(tmp_path, "# only a comment", capsys)
    assert (
        f"Config file {config!r} holds no options (it is empty or all comments)" in err
    )


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error line of a `fit` whose datamodule refuses its options (exit 2).

    The run gets as far as seeding, whose log line comes first.
    """
    from torchgeo_simclr.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_value_a_datamodule_refuses_names_the_file_that_set_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The datamodule names its option as the command line writes it.
    config = tmp_path / "my_settings.yaml"
    config.write_text(data_yaml("split_fractions: [0.5, 0.2, 0.2]"))
    argv = ["fit", "--config", str(CONF / "simclr_quickstart.yaml")]
    err = refusal([*argv, "--config", str(config)], capsys)
    assert err.startswith(
        f"torchgeo-simclr fit: error: In config file {str(config)!r}: "
        "data.init_args.split_fractions [0.5, 0.2, 0.2] sum to 0.9, not 1"
    )
    # Given on the command line, the option is named as it was given.
    option = ["--data.init_args.split_fractions", "[0.5, 0.2, 0.2]"]
    err = refusal([*argv, *option], capsys)
    assert err.startswith(
        "torchgeo-simclr fit: error: --data.init_args.split_fractions [0.5, 0.2, 0.2] "
        "sum to 0.9"
    )


def test_a_key_given_twice_in_a_config_names_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # YAML keeps the second batch_size without a word: the first, edited by the
    # user, never took effect.
    text = data_yaml("batch_size: 4", "root: data/sample", "batch_size: 8")
    config, err = fit_error(tmp_path, text, capsys)
    assert err == "torchgeo-simclr fit: error: " + (
        f"Config file {config!r} sets data.init_args.batch_size twice, at lines 4 "
        "and 6, and YAML would silently keep only the second; delete the one you "
        "did not mean there."
    )


def test_the_same_key_in_two_entries_of_a_list_is_no_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two callbacks each with their own init_args, and a merge key, are fine.
    text = (
        "trainer:\n  callbacks:\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: &saved\n        save_last: true\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args:\n        <<: *saved\n        every_n_epochs: 2\n"
        "trainer_typo: 1"
    )
    config, err = fit_error(tmp_path, text, capsys)
    assert "twice" not in err
    assert f"Config file {config!r}" in err
    assert "trainer_typo" in err
