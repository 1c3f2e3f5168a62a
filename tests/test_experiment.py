"""The experiment command: pretrain, fine-tune, supervised and distil, resumably."""

import csv
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.pyplot as plt
import pytest
import torch

import torchgeo_simclr.experiment as experiment
import torchgeo_simclr.lightning_cli as lightning_cli
from torchgeo_simclr.cli import main
from torchgeo_simclr.cli.training import config_dir
from torchgeo_simclr.experiment import (
    COLUMNS,
    METHODS,
    SETTINGS_FILE,
    ExperimentPlan,
    markdown_table,
    read_results,
    summarise,
)
from torchgeo_simclr.models.checkpoint import CHECKPOINT_KEY, load_model
from torchgeo_simclr.sample import make_sample_scene

FRACTIONS = ("0.1", "0.5")


def stage_args(cache: Path) -> list[str]:
    """LightningCLI arguments that shrink every stage to a few CPU steps."""
    return [
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.block_size",
        "128",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.length",
        "8",
        "--data.init_args.stats_patches",
        "4",
        "--data.init_args.cache_dir",
        str(cache),
        "--trainer.max_epochs",
        "1",
        "--trainer.max_steps",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.limit_test_batches",
        "2",
        "--trainer.accelerator",
        "cpu",
    ]


@pytest.fixture(scope="module")
def command(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("experiment")
    make_sample_scene(root / "scene", size=512)
    return [
        "experiment",
        "--root",
        str(root / "scene"),
        "--out",
        str(root / "exp"),
        "--fractions",
        *FRACTIONS,
        "--seeds",
        "0",
        "--",
        *stage_args(root / "cache"),
    ]


def out_dir(command: list[str]) -> Path:
    return Path(command[command.index("--out") + 1])


@pytest.fixture(scope="module")
def ran(command: list[str]) -> Iterator[Path]:
    """Run the whole experiment once (in a scratch working directory)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(out_dir(command).parent)
        main(command)
        yield out_dir(command)


def rows_by(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["method"], r["fraction"]): r for r in read_results(out / "results.csv")}


def test_every_method_and_fraction_is_scored(ran: Path) -> None:
    with (ran / "results.csv").open(newline="") as file:
        header = next(csv.reader(file))
    assert tuple(header) == COLUMNS
    rows = rows_by(ran)
    assert len(read_results(ran / "results.csv")) == 6
    assert set(rows) == {(m, f) for m in METHODS for f in FRACTIONS}
    for row in rows.values():
        for metric in ("f1", "precision", "recall", "accuracy", "auroc"):
            assert 0 <= float(row[metric]) <= 1, (row["method"], metric)
        assert int(row["params"]) > 0
        assert float(row["inference_img_s"]) > 0
        assert row["seed"] == "0"
        speedup = row["speedup_vs_teacher"]
        if row["method"] == "distilled":
            assert float(speedup) > 0
            assert row["model"] == "regnetx_002"
        else:
            assert speedup == ""
            assert row["model"] == "resnet18"
    # The same labelled subset for every method of a fraction; more for more.
    labels = {f: {rows[m, f]["n_labels"] for m in METHODS} for f in FRACTIONS}
    assert all(len(counts) == 1 for counts in labels.values())
    assert int(labels["0.1"].pop()) < int(labels["0.5"].pop())
    assert int(rows["simclr", "0.1"]["params"]) > int(
        rows["distilled", "0.1"]["params"]
    )


def test_stages_are_chained(ran: Path) -> None:
    rows = rows_by(ran)
    pretrained = ran / "runs" / "pretrain.ckpt"
    assert pretrained.is_file()
    for fraction in FRACTIONS:
        simclr = load_model(rows["simclr", fraction]["checkpoint"])
        assert simclr.kind == "finetune"
        assert simclr.data is not None
        supervised = load_model(rows["supervised", fraction]["checkpoint"])
        assert supervised.kind == "finetune"
        distilled = load_model(rows["distilled", fraction]["checkpoint"])
        assert distilled.kind == "distill"
        assert distilled.model.spec.model == "regnetx_002"
        assert distilled.data is not None
        assert distilled.data.split == simclr.data.split
    # Fine-tuning started from the pretraining run; distillation from fine-tuning.
    for fraction in FRACTIONS:
        simclr_ckpt = rows["simclr", fraction]["checkpoint"]
        meta = torch.load(simclr_ckpt, weights_only=False)["torchgeo_simclr"]
        assert Path(meta["pretrained_from"]) == pretrained
        distilled_ckpt = rows["distilled", fraction]["checkpoint"]
        meta = torch.load(distilled_ckpt, weights_only=False)["torchgeo_simclr"]
        assert meta["teacher"] == simclr_ckpt
        supervised_ckpt = rows["supervised", fraction]["checkpoint"]
        meta = torch.load(supervised_ckpt, weights_only=False)["torchgeo_simclr"]
        assert meta["pretrained_from"] is None


def test_checkpoints_record_their_labelled_subset(ran: Path) -> None:
    rows = rows_by(ran)
    for (method, fraction), row in rows.items():
        labels = load_model(row["checkpoint"]).labels
        assert labels is not None, method
        assert labels["label_fraction"] == pytest.approx(float(fraction))
        assert str(labels["n_labels"]) == str(row["n_labels"])
        assert str(labels["label_seed"]) == str(row["seed"])


def test_plot_is_written(ran: Path) -> None:
    assert (ran / "f1_vs_fraction.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_summary_is_printed(
    ran: Path,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    main(command)
    printed = capsys.readouterr().out
    assert "| fraction | labelled patches | method |" in printed
    assert sum(line.startswith("| 0.") for line in printed.splitlines()) == 6
    assert str(ran / "results.csv") in printed


def forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a finished run was run again")


def replaced(command: list[str], **options: Path) -> list[str]:
    """*command* with the values of ``--out``, ``--root``, ... replaced."""
    changed = list(command)
    for name, value in options.items():
        changed[changed.index(f"--{name}") + 1] = str(value)
    return changed


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run *argv*, expecting it refused with exit status 2; its message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


def test_finished_experiment_runs_nothing(
    ran: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (ran / "results.csv").read_bytes()
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    main(command)
    assert (ran / "results.csv").read_bytes() == before


def test_resuming_with_other_settings_is_refused(
    ran: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = (ran / "results.csv").read_bytes()
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    err = refusal([*command, "--data.init_args.seed", "3"], capsys)
    assert len(err.splitlines()) == 1, err
    assert "stage arguments" in err
    assert "another --out" in err
    assert (ran / "results.csv").read_bytes() == before


def test_a_pretrained_encoder_is_not_reused_under_other_settings(
    tmp_path: Path,
    ran: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Interrupted after pretraining, before any row: the encoder was reused
    # for another scene without a word.
    out = tmp_path / "interrupted"
    (out / "runs").mkdir(parents=True)
    shutil.copy(ran / SETTINGS_FILE, out / SETTINGS_FILE)
    shutil.copy(ran / "runs" / "pretrain.ckpt", out / "runs" / "pretrain.ckpt")
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    other_root = tmp_path / "other"
    other_root.mkdir()
    err = refusal(replaced(command, out=out, root=other_root), capsys)
    assert "holds runs made with other settings (root " in err
    assert str(other_root) in err


@pytest.mark.parametrize("recorded", [True, False])
def test_resuming_on_changed_imagery_is_refused(
    tmp_path: Path,
    ran: Path,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    recorded: bool,
) -> None:
    # The imagery under the root changed after pretraining (here: another
    # scene, its settings rewritten to its path), so its blocks differ.
    settings = json.loads((ran / SETTINGS_FILE).read_text())
    pretrain = settings["data split"]["pretrain"]
    # Scenes are compared by their val and test blocks.
    split = pretrain["held_out"]
    assert split
    out = tmp_path / "interrupted"
    (out / "runs").mkdir(parents=True)
    shutil.copy(ran / "runs" / "pretrain.ckpt", out / "runs" / "pretrain.ckpt")
    scene = tmp_path / "scene"
    make_sample_scene(scene, size=384)
    settings["root"] = str(scene.resolve())
    if not recorded:  # as an earlier version wrote it: the encoder tells
        del settings["data split"]
    (out / SETTINGS_FILE).write_text(json.dumps(settings))
    # The progress bar had started: the refusal is the last line.
    err = refusal(replaced(command, out=out, root=scene), capsys).splitlines()[-1]
    assert err.startswith("torchgeo-simclr experiment: error: The data under"), err
    assert f"The data under --root {str(scene)!r} now makes split " in err
    assert f"was made on split {split}," in err
    assert "pass a new --out" in err
    assert not (out / "results.csv").exists()


def test_a_run_that_failed_on_a_mistyped_root_does_not_block_out(
    tmp_path: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "typo"
    err = refusal(replaced(command, out=out, root=tmp_path / "nope"), capsys)
    assert "does not exist" in err
    # The corrected command starts (here: reaches its first stage) instead of
    # being refused for "other settings".
    corrected = replaced(command, out=out)

    def reached(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("first stage reached")

    monkeypatch.setattr(experiment, "run_stage", reached)
    with pytest.raises(RuntimeError, match="first stage reached"):
        main(corrected)


def test_a_missing_root_stops_before_anything_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # settings.json and the run folder were written, and the progress bar
    # started, before the first stage's datamodule refused the path.
    def reached(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("first stage reached")

    monkeypatch.setattr(experiment, "run_stage", reached)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "exp"
    err = refusal(["experiment", "--root", "data/nope", "--out", str(out)], capsys)
    assert err == (
        "torchgeo-simclr experiment: error: --root 'data/nope' does not exist "
        f"(read from the working directory {tmp_path}); pass the folder of the "
        "imagery and labels the stages read, e.g. one made by `torchgeo-simclr "
        "sample-data --root DIR`."
    )
    assert not out.exists()
    # A root among the stage arguments is the one the stages read.
    overridden = ["--", "--data.init_args.root", str(tmp_path)]
    with pytest.raises(RuntimeError, match="first stage reached"):
        main(["experiment", "--root", "data/nope", "--out", str(out), *overridden])
    err = refusal(
        ["experiment", "--out", str(out), "--", "--data.init_args.root", "gone"],
        capsys,
    )
    assert "error: --data.init_args.root 'gone' does not exist" in err
    # A config given after them may set the root the stages read.
    config = ["--", "--config", str(tmp_path / "mine.yaml")]
    with pytest.raises(RuntimeError, match="first stage reached"):
        main(["experiment", "--root", "data/nope", "--out", str(out), *config])


def test_an_edited_config_is_not_resumed(
    tmp_path: Path,
    ran: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Same config paths, but a file was edited since the rows were made: new
    # rows would use the new recipe beside the old ones.
    out = tmp_path / "edited"
    shutil.copytree(ran, out)
    settings = json.loads((out / SETTINGS_FILE).read_text())
    contents = settings["config contents (SHA-256)"]
    assert len(contents) == 4
    assert all(len(digest) == 16 for digest in contents)
    contents[1] = "0" * 16  # the fine-tuning config's record
    (out / SETTINGS_FILE).write_text(json.dumps(settings))
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    err = refusal(replaced(command, out=out), capsys)
    assert "holds runs made with other settings (config contents (SHA-256) " in err
    assert "0" * 16 in err


def test_a_record_of_an_earlier_version_resumes(
    tmp_path: Path, ran: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records written before the contents' SHA-256 was kept lack those keys.
    out = tmp_path / "earlier"
    shutil.copytree(ran, out)
    settings = json.loads((out / SETTINGS_FILE).read_text())
    del settings["config contents (SHA-256)"], settings["checkpoint SHA-256"]
    (out / SETTINGS_FILE).write_text(json.dumps(settings))
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    main(replaced(command, out=out))
    assert "config contents (SHA-256)" in json.loads((out / SETTINGS_FILE).read_text())


def test_a_model_stage_argument_is_refused(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # It would reach the distillation stage too and replace the small student.
    err = refusal([*command, "--model.init_args.model", "resnet34"], capsys)
    assert len(err.splitlines()) == 1, err
    assert "--model.init_args.model would change" in err
    assert "distilled student" in err
    assert "--distill-config" in err
    options = ["--model.init_args.backbone_kwargs", "{drop_path_rate: 0.1}"]
    err = refusal([*command, *options], capsys)
    assert "--model.init_args.backbone_kwargs would change" in err
    # Other model settings are the user's call for every stage, as before.
    configs = dict.fromkeys(
        ("pretrain_config", "finetune_config", "supervised_config", "distill_config"),
        Path("x.yaml"),
    )
    plan = ExperimentPlan(
        root=Path("r"),
        out=Path("o"),
        fractions=[0.1],
        seeds=[0],
        extra_args=["--model.init_args.lr", "0.01"],
        **configs,
    )
    assert plan.extra_args == ["--model.init_args.lr", "0.01"]


@pytest.mark.parametrize(
    "devices", [["--trainer.devices", "2"], ["--trainer.strategy=ddp"]]
)
def test_stage_arguments_for_several_devices_are_refused(
    command: list[str], devices: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # DDP's other ranks run one stage's fit alone, not its test or the later
    # stages: the experiment would hang or score half the test blocks.
    err = refusal([*command, *devices], capsys)
    assert len(err.splitlines()) == 1, err
    assert "runs every stage in one process on one device" in err


def test_every_stage_runs_on_one_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full-scale configs say devices: auto, which is DDP on 2 or more GPUs.
    given: list[str] = []

    def stop(arguments: list[str]) -> Any:
        given.extend(arguments)
        raise RuntimeError("stop")

    monkeypatch.setattr(lightning_cli, "run_cli", stop)
    with pytest.raises(RuntimeError, match="stop"):
        experiment.run_stage(Path("conf.yaml"), tmp_path / "run", ["--x", "1"])
    assert given[-2:] == ["--trainer.devices", "1"]


def test_out_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "outfile"
    out.write_text("keep me")
    with pytest.raises(SystemExit):
        main(["experiment", "--root", str(tmp_path), "--out", str(out)])
    assert "--out" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_missing_row_is_run_again(
    ran: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = ran / "results.csv"
    rows = read_results(path)
    kept = [r for r in rows if (r["method"], r["fraction"]) != ("distilled", "0.5")]
    assert len(kept) == 5
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(kept)

    calls: list[Path] = []
    real = experiment.run_stage

    def counting(config: Path, *args: Any, **kwargs: Any) -> Any:
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_stage", counting)
    monkeypatch.chdir(ran.parent)
    main(command)
    assert [config.name for config in calls] == ["distill_quickstart.yaml"]
    again = read_results(path)
    assert again[:5] == kept
    assert len(again) == 6
    assert (again[5]["method"], again[5]["fraction"]) == ("distilled", "0.5")
    # One line for the run, with what the row says, and none of Lightning's
    # start-up notes around the progress bar.
    printed = capfd.readouterr()
    assert (
        f"distilled fraction=0.5 seed=0: {again[5]['n_labels']} labelled patches, "
        f"test F1 {float(again[5]['f1']):.4f}"
    ) in printed.out
    assert "GPU available" not in printed.out + printed.err
    assert printed.out.count("Data split ") == 1  # printed once


def result(method: str, fraction: str, seed: int, f1: float) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row |= {
        "method": method,
        "fraction": fraction,
        "seed": str(seed),
        "n_labels": "12",
        "f1": str(f1),
        "auroc": str(f1 + 0.1),
        "params": "11000000",
        "inference_img_s": str(100 + seed),
        "model": "resnet18",
    }
    return row


def test_summary_of_seeds() -> None:
    rows = [
        result("supervised", "0.1", 0, 0.5),
        result("simclr", "0.1", 1, 0.7),
        result("simclr", "1", 0, 0.9),
        result("simclr", "0.1", 0, 0.5),
    ]
    summary = summarise(rows)
    assert [(s["fraction"], s["method"]) for s in summary] == [
        (0.1, "simclr"),
        (0.1, "supervised"),
        (1.0, "simclr"),
    ]
    first = summary[0]
    assert first["n"] == 2
    assert first["f1_mean"] == pytest.approx(0.6)
    assert first["f1_std"] == pytest.approx(math.sqrt(0.02))  # sample sd
    assert first["auroc_mean"] == pytest.approx(0.7)
    assert first["img_s"] == pytest.approx(100.5)
    assert summary[1]["f1_std"] == 0.0  # one seed
    table = markdown_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| fraction | labelled patches | method | backbone |")
    assert lines[2] == (
        "| 0.1 | 12 | simclr | resnet18 | 2 | 0.600 ± 0.141 | 0.700 | 11.0 M | 100 |"
    )
    # One seed has no spread to show.
    assert "| supervised | resnet18 | 1 | 0.500 (one seed) |" in lines[3]


def test_the_legend_names_each_backbone() -> None:
    # It said "supervised (same network, no pretraining)" whatever the networks.
    rows = [
        result("simclr", "0.1", 0, 0.5) | {"model": "resnet50"},
        result("supervised", "0.1", 0, 0.5) | {"model": "resnet50"},
        result("distilled", "0.1", 0, 0.5) | {"model": "regnetx_002"},
    ]
    assert experiment.legend_labels(rows) == {
        "simclr": "SimCLRv2 fine-tuned (resnet50)",
        "supervised": "supervised (resnet50, no pretraining)",
        "distilled": "distilled student (regnetx_002)",
    }
    # Rows of two networks (an experiment resumed across versions) say both.
    mixed = [*rows, result("supervised", "1", 0, 0.5)]
    label = experiment.legend_labels(mixed)["supervised"]
    assert label == "supervised (resnet18 / resnet50, no pretraining)"
    summary = {(s["fraction"], s["method"]): s for s in summarise(mixed)}
    assert summary[0.1, "supervised"]["model"] == "resnet50"


def test_the_plot_tells_the_methods_apart_without_colour() -> None:
    # Supervised and distilled were orange and green circles on solid lines:
    # the same olive to a deuteranope, and the same grey in print.
    rows = [
        result(method, fraction, seed, 0.5 + 0.1 * seed)
        for method in METHODS
        for fraction in ("0.01", "0.1", "1")
        for seed in range(3)
    ]
    figure = experiment.results_figure(rows)
    try:
        (ax,) = figure.axes
        names = set(experiment.legend_labels(rows).values())
        lines = [line for line in ax.get_lines() if line.get_label() in names]
        styles = {(line.get_marker(), line.get_linestyle()) for line in lines}
        ticks = [label.get_text() for label in ax.get_xticklabels()]
        texts = [text.get_text() for text in ax.texts]
        xscale, xlabel = ax.get_xscale(), ax.get_xlabel()
    finally:
        plt.close(figure)
    assert len(lines) == 3
    assert len({marker for marker, _ in styles}) == 3
    assert len({linestyle for _, linestyle in styles}) == 3
    # Percent of the labelled patches, with their number, on a log scale.
    assert ticks == ["1 %\n(12)", "10 %\n(12)", "100 %\n(12)"]
    assert xscale == "log"
    assert "% of all (number of patches), log scale" in xlabel
    # What the lines, bands and dots are.
    assert texts == [
        "Lines: mean over 3 seeds; bands: lowest to highest seed; dots: single seeds."
    ]


def ticks_of(rows: list[dict[str, Any]]) -> list[str]:
    """The x tick labels of the results plot of *rows*."""
    figure = experiment.results_figure(rows)
    try:
        return [label.get_text() for label in figure.axes[0].get_xticklabels()]
    finally:
        plt.close(figure)


def test_the_plot_leaves_unknown_label_counts_off_their_ticks() -> None:
    # A run whose datamodule reports no n_labels (None in memory, "None" or
    # "" read back from results.csv) crashed the plot after every run had
    # finished: int("None").
    rows: list[dict[str, Any]] = [
        result("simclr", "0.01", 0, 0.5) | {"n_labels": None},
        result("supervised", "0.01", 0, 0.4) | {"n_labels": "None"},
        result("simclr", "0.1", 0, 0.6) | {"n_labels": 120},
        result("simclr", "1", 0, 0.9) | {"n_labels": "1200"},
        result("supervised", "1", 0, 0.8) | {"n_labels": 1200},
    ]
    assert ticks_of(rows) == ["1 %", "10 %\n(120)", "100 %\n(1,200)"]
    rows[2]["n_labels"] = ""
    assert ticks_of(rows) == ["1 %", "10 %", "100 %\n(1,200)"]
    # Methods that used different numbers: no number either.
    rows[3]["n_labels"] = "1100"
    assert ticks_of(rows) == ["1 %", "10 %", "100 %"]


def test_the_plot_caption_counts_uneven_seeds() -> None:
    rows = [
        result("simclr", "0.1", 0, 0.5),
        result("simclr", "0.1", 1, 0.6),
        result("simclr", "1", 0, 0.9),
    ]
    assert experiment.seeds_caption(rows).startswith("Lines: mean over 1 to 2 seeds;")
    assert experiment.seeds_caption(rows[:1]).startswith("Lines: mean over 1 seed;")


def test_missing_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--out", str(tmp_path), "--finetune-config", str(missing)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("torchgeo-simclr experiment: error: ")
    assert "nowhere.yaml" in err
    assert "--finetune-config" in err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize(
    ("option", "values", "named"),
    [
        ("--fractions", ["10"], "got 10"),
        ("--fractions", ["0"], "got 0"),
        ("--fractions", ["0.01", "0.1", "0.01"], "lists 0.01 more than once"),
        ("--seeds", ["0", "1", "1"], "lists 1 more than once"),
        # Runs are named to 6 significant digits: these two shared a directory.
        ("--fractions", ["0.1", "0.1000001"], "lists 0.1 more than once"),
        # numpy refused it only after pretraining, without naming the option.
        ("--seeds", ["-1"], "from 0 to 4294967295, got -1"),
    ],
)
def test_bad_fractions_or_seeds_stop_before_any_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    values: list[str],
    named: str,
) -> None:
    out = tmp_path / "experiment"
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["experiment", "--root", str(tmp_path), "--out", str(out), option, *values]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"torchgeo-simclr experiment: error: {option}")
    assert named in err
    # Nothing ran: no pretraining, no run directory.
    assert not out.exists()


def test_large_distinct_seeds_are_not_repeats() -> None:
    # Seeds compared as 6-significant-digit numbers made these two one repeat.
    plan = ExperimentPlan(
        root=Path("scene"),
        out=Path("out"),
        fractions=[0.1],
        seeds=[12345678, 12345679],
        pretrain_config=Path("p.yaml"),
        finetune_config=Path("f.yaml"),
        supervised_config=Path("s.yaml"),
        distill_config=Path("d.yaml"),
    )
    assert list(plan.seeds) == [12345678, 12345679]


def test_an_interrupted_experiment_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", interrupted)
    out = tmp_path / "experiment"
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--root", str(tmp_path), "--out", str(out)])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # No run had finished: there is no results.csv to point at.
    assert "No run had finished (a finished pretraining is kept)" in err
    assert "run the same command again to resume" in err


def simclr_checkpoint(path: Path, model: str, **meta: Any) -> Path:
    """A file that reads as a SimCLR checkpoint of *model* (metadata only)."""
    info = {"kind": "simclr", "model": model, "in_channels": 12} | meta
    torch.save({CHECKPOINT_KEY: info}, path)
    return path


def stand_in_runs(
    calls: list[tuple[str, list[str]]],
) -> Any:
    """A ``run_stage`` that records its config and arguments and trains nothing.

    Its model is the last ``--model.init_args.model`` given, else the config's,
    else (a fine-tuning config names none: the checkpoint's) ``resnet50``.
    """
    import yaml

    def run(
        config: Path, run_dir: Path, arguments: list[str], **kwargs: Any
    ) -> experiment.RunOutcome:
        calls.append((config.name, list(arguments)))
        settings = yaml.safe_load(config.read_text())["model"]["init_args"]
        given = [
            a
            for i, a in enumerate(arguments[1:])
            if arguments[i] == "--model.init_args.model"
        ]
        network = torch.nn.Linear(2, 1)
        network.spec = SimpleNamespace(  # type: ignore[assignment]
            model=(given or [settings.get("model") or "resnet50"])[-1]
        )
        metrics = {
            f"test_{name}": 0.5
            for name in ("f1", "precision", "recall", "accuracy", "auroc")
        }
        task = SimpleNamespace(model=network, hparams={}, data_metadata=None)
        return experiment.RunOutcome(run_dir / "last.ckpt", metrics, task, 5)

    return run


def test_the_supervised_baseline_is_the_encoders_network(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A ResNet-50 encoder was compared with the quickstart's supervised
    # ResNet-18, silently, under the legend "same network".
    checkpoint = simclr_checkpoint(tmp_path / "r50.ckpt", "resnet50")
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(experiment, "run_stage", stand_in_runs(calls))
    monkeypatch.setattr(experiment, "_speed", lambda *args: {"model": 100.0})
    out = tmp_path / "exp"
    argv = ["experiment", "--root", str(tmp_path), "--out", str(out)]
    main([*argv, "--fractions", "0.1", "--seeds", "0", "--checkpoint", str(checkpoint)])
    stages = dict(calls)
    assert list(stages) == [
        "finetune_quickstart.yaml",
        "supervised_quickstart.yaml",
        "distill_quickstart.yaml",
    ]
    supervised = stages["supervised_quickstart.yaml"]
    assert supervised[-2:] == ["--model.init_args.model", "resnet50"]
    # Only the supervised runs get it: the student stays the config's.
    assert "--model.init_args.model" not in stages["distill_quickstart.yaml"]
    rows = {r["method"]: r["model"] for r in read_results(out / "results.csv")}
    assert rows == {
        "simclr": "resnet50",
        "supervised": "resnet50",
        "distilled": "regnetx_002",
    }
    printed = capsys.readouterr()
    assert (
        "supervised: trains resnet50 (12 bands), the SimCLR encoder's network "
        f"(checkpoint {str(checkpoint)!r}), in place of supervised_quickstart.yaml's "
        "resnet18 (12 bands), so both arms are the same network"
    ) in printed.out + printed.err
    assert "| 0.1 | 5 | supervised | resnet50 | 1 |" in printed.out


def test_the_default_encoder_adds_nothing_to_the_supervised_runs(
    tmp_path: Path,
) -> None:
    # The quickstart's ResNet-18 everywhere: the supervised runs are as before.
    conf = config_dir()
    plan = ExperimentPlan(
        root=tmp_path,
        out=tmp_path / "exp",
        fractions=[0.1],
        seeds=[0],
        pretrain_config=conf / "simclr_quickstart.yaml",
        finetune_config=conf / "finetune_quickstart.yaml",
        supervised_config=conf / "supervised_quickstart.yaml",
        distill_config=conf / "distill_quickstart.yaml",
    )
    assert experiment.supervised_arguments(plan) == ([], None)
    resnet18 = simclr_checkpoint(tmp_path / "r18.ckpt", "resnet18")
    assert experiment.supervised_arguments(replace(plan, checkpoint=resnet18)) == (
        [],
        None,
    )
    # An encoder of another pretraining config is read from that config.
    config = tmp_path / "simclr_effb0.yaml"
    text = (conf / "simclr_quickstart.yaml").read_text()
    config.write_text(text.replace("model: resnet18", "model: efficientnet_b0"))
    arguments, line = experiment.supervised_arguments(
        replace(plan, pretrain_config=config)
    )
    assert arguments == ["--model.init_args.model", "efficientnet_b0"]
    assert line is not None
    assert f"pretraining config {str(config)!r}" in line


@pytest.mark.parametrize("route", ["checkpoint", "pretrain-config"])
def test_a_supervised_config_naming_another_network_is_refused(
    tmp_path: Path,
    route: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user's own supervised config says what it trains: not overridden.
    monkeypatch.setattr(experiment, "run_stage", forbidden)
    conf = config_dir()
    supervised = tmp_path / "my_supervised.yaml"
    shutil.copy(conf / "supervised_quickstart.yaml", supervised)
    if route == "checkpoint":
        encoder = simclr_checkpoint(
            tmp_path / "vit.ckpt",
            "vit_tiny_patch16_224",
            backbone_kwargs={"dynamic_img_size": True},
        )
        fix = (
            'model: vit_tiny_patch16_224 and backbone_kwargs: {"dynamic_img_size": '
            "true}"
        )
        named = f"checkpoint {str(encoder)!r}) is vit_tiny_patch16_224 (12 bands, "
    else:
        encoder = tmp_path / "simclr_effb0.yaml"
        text = (conf / "simclr_quickstart.yaml").read_text()
        encoder.write_text(text.replace("model: resnet18", "model: efficientnet_b0"))
        fix = "model: efficientnet_b0"
        named = f"pretraining config {str(encoder)!r}) is efficientnet_b0 (12 bands)"
    out = tmp_path / "exp"
    argv = ["experiment", "--root", str(tmp_path), "--out", str(out)]
    argv += ["--fractions", "0.1", "--seeds", "0"]
    err = refusal(
        [*argv, "--supervised-config", str(supervised), f"--{route}", str(encoder)],
        capsys,
    )
    assert len(err.splitlines()) == 1, err
    assert f"supervised config {str(supervised)!r} trains resnet18 (12 bands)" in err
    assert named in err
    assert f"set {fix} under model.init_args in {str(supervised)!r}" in err
    assert not out.exists()  # before any run, nothing written


def test_a_checkpoint_of_the_wrong_kind_stops_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "finetuned.ckpt"
    torch.save({CHECKPOINT_KEY: {"kind": "finetune"}}, wrong)
    out = tmp_path / "experiment"
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--out", str(out), "--checkpoint", str(wrong)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "has kind 'finetune' but a 'simclr' checkpoint was expected" in err
    assert not out.exists()
