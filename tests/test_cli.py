"""End to end: `torchgeo fit` with the shipped configs, and what bad input prints."""

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from conftest import cli_error_line as run_cli
from conftest import cpu_fit as small
from conftest import fake_dwr_gpkg, fake_s2_with_scl, save_checkpoint, scene_stats
from lightning.pytorch import Trainer
from test_datasets import cut_header, cut_tiles
from torchgeo.main import main as torchgeo_main

from torchgeo_simclr import lightning_cli
from torchgeo_simclr.cli import main, parser
from torchgeo_simclr.cli.training import first_map_hint
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.models.checkpoint import DataMetadata, load_encoder
from torchgeo_simclr.sample import make_sample_scene

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def test_study_config_runs_with_overrides(
    scene: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    fitted: list[Trainer] = []
    fit = Trainer.fit

    def recording_fit(trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        fitted.append(trainer)
        fit(trainer, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    torchgeo_main(
        [
            "fit",
            "--config",
            str(CONF / "simclr_cal.yaml"),
            *small(scene),
            "--model.init_args.model",
            "resnet18",
            # The study's 32 patches a batch are more than the scene's train
            # blocks hold: the fit stopped at "No training batches".
            "--data.init_args.batch_size",
            "4",
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    (trainer,) = fitted
    assert trainer.state.finished
    assert trainer.global_step == 1
    # The overrides reached the study's config: a ResNet-18 on the scene.
    assert trainer.lightning_module.hparams["model"] == "resnet18"
    assert f"Spatial split of {scene}: " in lightning_log.text
    loss = trainer.callback_metrics["train_loss"]
    assert torch.isfinite(loss)
    assert loss > 0
    assert "No training batches" not in lightning_log.text
    # A fast_dev_run writes nothing where the real run's checkpoints go.
    assert "No checkpoint written (fast_dev_run" in lightning_log.text
    assert not list(tmp_path.rglob("*.ckpt"))


def test_quickstart_checkpoint_keeps_what_later_stages_need(
    scene: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(CONF / "simclr_quickstart.yaml"),
            *small(scene),
            "--data.init_args.batch_size",
            "8",
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "1",
        ]
    )
    checkpoint = Path(lightning_log.text.split("Checkpoint: ")[1].split()[0])
    assert checkpoint.is_relative_to(tmp_path / "runs" / "simclr_quickstart")
    encoder = load_encoder(checkpoint)
    assert encoder.model == "resnet18"
    assert encoder.data is not None
    assert list(encoder.data.bands) == list(S2_BANDS)
    assert encoder.data.patch_size == 48
    assert len(encoder.data.mean) == len(encoder.data.std) == 12
    assert all(s > 0 for s in encoder.data.std)
    features = encoder.backbone(torch.zeros(2, 12, 48, 48))
    assert features.shape == (2, 512)


def fit_args(root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONF / "simclr_quickstart.yaml"),
        *small(root, *extra),
        "--trainer.fast_dev_run",
        "true",
    ]


@pytest.mark.parametrize("cut", [cut_header, cut_tiles])
def test_predict_over_a_damaged_tile_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys, cut: Callable[[Path], Path]
) -> None:
    # A tile that did not open was left out of the map (exit 0); one whose
    # tiles did not read stopped it halfway with a 19-frame traceback. The
    # imagery is read in a DataLoader worker, as at scale.
    scene = make_sample_scene(tmp_path / "scene", size=256)
    mean, std = scene_stats(scene)
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=32,
    )
    checkpoint = save_checkpoint(tmp_path / "m.ckpt", "segmentation", metadata)
    damaged = cut(scene.image_paths[1])
    maps = tmp_path / "maps"
    maps.mkdir()
    argv = ["predict", "--checkpoint", str(checkpoint), "--root", str(scene.root)]
    argv += ["--out", str(maps / "map.tif"), "--device", "cpu", "--no-progress"]
    argv += ["--num-workers", "1"]
    err = run_cli(argv, capsys)
    assert repr(str(damaged)) in err
    assert "download" in err
    assert list(maps.iterdir()) == []


def test_missing_root(tmp_path: Path, capsys) -> None:
    err = run_cli(fit_args(tmp_path / "nowhere"), capsys)
    assert "nowhere" in err
    assert "does not exist" in err


def test_no_matching_files(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("no imagery here")
    err = run_cli(fit_args(tmp_path), capsys)
    assert str(tmp_path) in err
    assert "S2" in err  # names the expected file pattern


def test_wrong_band_count(scene: Path, tmp_path: Path, capsys) -> None:
    source = next((scene / "sentinel2").glob("*.tif"))
    target = tmp_path / "sentinel2" / source.name
    target.parent.mkdir()
    with rasterio.open(source) as src:
        profile = src.profile | {"count": 4}
        data = src.read([2, 3, 4, 8])
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    err = run_cli(fit_args(tmp_path, "--data.init_args.labels", "null"), capsys)
    assert source.name in err
    assert "12" in err
    assert "4" in err


def test_bbox_outside_the_data(scene: Path, capsys) -> None:
    bbox = "[-118.0, 34.0, -117.9, 34.1]"
    err = run_cli(fit_args(scene, "--data.init_args.bbox", bbox), capsys)
    assert "-118.0, 34.0, -117.9, 34.1" in err
    assert "-120." in err  # the data's extent


def test_unreadable_label_file(scene: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(scene / "sentinel2", tmp_path / "sentinel2")
    (tmp_path / "crop_mapping.gpkg").write_bytes(b"not a geopackage")
    err = run_cli(fit_args(tmp_path), capsys)
    assert "crop_mapping.gpkg" in err


def test_unknown_class_column(scene: Path, capsys) -> None:
    err = run_cli(fit_args(scene, "--data.init_args.class_column", "CLASS9"), capsys)
    assert "CLASS9" in err
    assert "CLASS2" in err  # lists the columns there are


def test_a_schedule_lightning_would_ignore_is_refused(scene: Path, capsys) -> None:
    # Lightning uses --lr_scheduler only with --optimizer; alone it did nothing.
    args = ["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1"]
    err = run_cli(fit_args(scene, *args), capsys)
    assert "--lr_scheduler takes effect only together with --optimizer" in err


@pytest.mark.parametrize(
    "command",
    [
        "probe --checkpoint m.ckpt --root . -k 0",
        "probe --checkpoint m.ckpt --root . --block-size 0",
        "predict --checkpoint m.ckpt --root . --out m.tif --patch-size 0",
        "embed --checkpoint m.ckpt --root . --out i.parquet --stride -4",
        "search --index i.parquet --lonlat -120 37 --k 0 --out hits.gpkg",
        "download --bbox -120.5 36.5 -120.4 36.6 --start 2023-07-01 --end 2023-07-31"
        " --out . --per-tile 0",
        "sample-data --root . --tiles 0",
    ],
)
def test_counts_below_their_minimum_are_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # -k 0 scored every patch "not irrigated"; --per-tile 0 downloaded nothing
    # and exited 0; --patch-size 0 fell back to the default.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(command.split())
    assert exit_info.value.code == 2
    (err,) = capsys.readouterr().err.splitlines()  # one line, no usage dump
    assert "must be at least" in err
    assert err.endswith("--help)")
    assert not list(tmp_path.iterdir())


def test_help_and_argument_errors_start_without_torch() -> None:
    # Importing torch took a second before every --help, and a Ctrl-C during
    # it printed a traceback before the command could catch it.
    code = (
        "import sys\n"
        "from torchgeo_simclr.cli.parser import build_parser\n"
        "build_parser().format_help()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_shows_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sample-data", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--size SIZE scene side, pixels (default: 2048)" in text
    assert "--seed SEED random seed (default: 0)" in text
    assert "--overwrite replace existing files" in text
    assert "(default: False)" not in text  # flags say nothing
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "(default: True)" not in capsys.readouterr().out  # --no-probe


def test_torchgeo_fit_ends_with_the_same_sentence(tmp_path: Path) -> None:
    torchgeo = Path(sys.executable).with_name("torchgeo")
    result = subprocess.run(
        [str(torchgeo), *fit_args(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("FileNotFoundError: ")
    assert "nowhere" in last


class FakePretraining:
    """Stands in for the demo's pretraining: writes last.ckpt, then last-v1 ..."""

    def __init__(self) -> None:
        self.folder = Path("runs/simclr_quickstart/checkpoints")
        self.runs: list[list[str]] = []

    def __call__(self, arguments: list[str]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"last-v{len(self.runs)}.ckpt" if self.runs else "last.ckpt"
        self.runs.append(arguments)
        (self.folder / name).write_bytes(b"weights" * len(self.runs))
        return self.folder / name


def test_demo_probes_with_the_probe_command_s_defaults(
    scene: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The demo built the probe's arguments by hand and lost one (class_column):
    # `make demo` died with an AttributeError after pretraining.
    monkeypatch.chdir(tmp_path)  # no earlier demo's checkpoint here
    probed: list[argparse.Namespace] = []
    monkeypatch.setattr(lightning_cli, "fit", FakePretraining())
    monkeypatch.setattr(parser, "_probe", probed.append)
    main(["demo", "--root", str(scene)])
    expected = parser.build_parser().parse_args(
        [
            "probe",
            "--checkpoint",
            "runs/simclr_quickstart/checkpoints/last.ckpt",
            "--root",
            str(scene),
        ]
    )
    assert probed == [expected]


def _readme_map_commands() -> list[str]:
    """The commands of the README's "Irrigation maps" block, one line each."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    section = readme.read_text().split("\n## Irrigation maps\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if not line.startswith("#")]


def test_the_demo_ends_with_the_commands_of_a_first_map(
    scene: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `make demo` ended with the probe's table and no next step.
    readme = _readme_map_commands()
    hint = first_map_hint(
        Path("runs/simclr_quickstart/checkpoints/last.ckpt"), Path("data/sample")
    ).splitlines()
    assert "Irrigation maps" in hint[1]
    assert [line.strip() for line in hint[2:]] == readme[:2]
    # On another scene: its root, no bbox of the README's scene; after a
    # rerun's last-v1, that checkpoint rather than the config's last.ckpt.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lightning_cli, "fit", FakePretraining())
    monkeypatch.setattr(parser, "_probe", lambda args: print("the probe's table"))
    main(["demo", "--root", str(scene), "--retrain"])
    main(["demo", "--root", str(scene), "--retrain"])
    printed = capsys.readouterr().out.splitlines()
    fit, predict = (line.strip() for line in printed[-2:])
    assert printed[-5:-3] == ["the probe's table", ""]
    assert fit == (
        "torchgeo fit --config conf/segment_quickstart.yaml --data.init_args.root "
        f"{scene} --model.init_args.checkpoint "
        "runs/simclr_quickstart/checkpoints/last-v1.ckpt"
    )
    assert predict.endswith(f"--root {scene} --out maps/sample.tif")


def test_a_second_demo_reuses_the_pretraining_it_finished(
    scene: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A second `make demo` pretrained again (5-15 min) and moved the encoder
    # to last-v1.ckpt, while every later command reads last.ckpt.
    monkeypatch.chdir(tmp_path)
    pretraining = FakePretraining()
    probed: list[argparse.Namespace] = []
    monkeypatch.setattr(lightning_cli, "fit", pretraining)
    monkeypatch.setattr(parser, "_probe", probed.append)

    def demo(*extra: str, root: Path = scene) -> str:
        main(["demo", "--root", str(root), *extra])
        return str(probed[-1].checkpoint)

    assert demo().endswith("/last.ckpt")
    assert demo().endswith("/last.ckpt")  # reused
    assert len(pretraining.runs) == 1
    assert demo("--retrain").endswith("/last-v1.ckpt")
    assert demo().endswith("/last-v1.ckpt")  # the newer one, reused
    # Another scene, or this one written again, is pretrained on afresh.
    other = tmp_path / "other"
    shutil.copytree(scene, other)
    assert demo(root=other).endswith("/last-v2.ckpt")
    assert demo().endswith("/last-v3.ckpt")
    (scene / "crop_mapping.gpkg").touch()
    assert demo().endswith("/last-v4.ckpt")
    # A checkpoint rewritten since (a resumed fit) is not the demo's any more.
    (pretraining.folder / "last-v4.ckpt").write_bytes(b"resumed elsewhere")
    assert demo().endswith("/last-v5.ckpt")
    assert len(pretraining.runs) == 6


def test_fit_without_arguments_names_a_config(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--config conf/simclr_quickstart.yaml" in err
    assert "{fit,validate,test,predict}" not in err


def test_sample_data_into_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(SystemExit):
        main(["sample-data", "--root", str(tmp_path / "afile"), "--size", "128"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchgeo-simclr sample-data: error: ")
    assert "afile' is a file" in err
    assert (tmp_path / "afile").read_text() == "keep me"


def test_sample_data_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    main(["sample-data", "--root", str(tmp_path), "--size", "128"])
    before = (tmp_path / "crop_mapping.gpkg").read_bytes()
    with pytest.raises(SystemExit):
        main(["sample-data", "--root", str(tmp_path), "--size", "128", "--seed", "1"])
    err = capsys.readouterr().err
    assert err.startswith("torchgeo-simclr sample-data: error: ")
    assert "--overwrite" in err
    assert (tmp_path / "crop_mapping.gpkg").read_bytes() == before


def test_ctrl_c_says_what_was_kept_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    def interrupted(**kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("torchgeo_simclr.inference.predict_map", interrupted)
    args = ["predict", "--checkpoint", "m.ckpt", "--root", str(tmp_path)]
    args += ["--out", str(tmp_path / "m.tif")]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchgeo-simclr predict: interrupted. Outputs are")
    assert "Traceback" not in err


def test_fit_runs_on_two_processes(scene: Path, tmp_path: Path) -> None:
    # DDP starts every rank but the first by running sys.argv again; the
    # wrapper had cut it to the bare command, so each other rank stopped with
    # "the following arguments are required: command" and rank 0 was killed.
    command = Path(sys.executable).with_name("torchgeo-simclr")
    result = subprocess.run(
        [
            str(command),
            *fit_args(scene),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--data.init_args.batch_size",
            "4",
            "--model.init_args.gather_distributed",
            "true",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MEMBER: 2/2" in result.stderr + result.stdout


def test_batches_of_one_patch_are_refused_for_contrastive_training(
    scene: Path, capsys
) -> None:
    # NT-Xent had no negatives: the loss was 0 and a normal-looking
    # checkpoint was written.
    err = run_cli(fit_args(scene, "--data.init_args.batch_size", "1"), capsys)
    assert "batch_size 1 leaves NT-Xent no negatives" in err


def test_patches_too_large_for_the_train_blocks_are_named(scene: Path, capsys) -> None:
    # "No valid (non-nodata) pixel was found" blamed the imagery.
    args = ["--data.init_args.block_size", "256", "--data.init_args.patch_size", "192"]
    err = run_cli(fit_args(scene, *args), capsys)
    assert "No 192 px training patch can be drawn in the train blocks" in err
    assert "about 272 px wide" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPU")
def test_asking_for_a_gpu_without_one_is_one_line(scene: Path, capsys) -> None:
    err = run_cli(fit_args(scene, "--trainer.accelerator", "gpu"), capsys)
    assert "No supported gpu backend found" in err
    assert "torch sees 0 GPU(s)" in err
    # Other trainer settings Lightning refuses get no word about GPUs.
    clip = ["--trainer.gradient_clip_algorithm", "foo"]
    err = run_cli(fit_args(scene, *clip), capsys)
    assert "gradient_clip_algorithm" in err
    assert "GPU" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["predict", "--chekpoint", "m.ckpt", "--root", "data", "--out", "m.tif"],
            "unrecognized argument --chekpoint (did you mean --checkpoint?)",
        ),
        (
            ["embed", "--checkpoint", "m.ckpt", "--root", "d", "--ot", "i.parquet"],
            "unrecognized argument --ot (did you mean --out or --root?)",
        ),
    ],
)
def test_a_misspelt_option_is_named_with_the_option_meant(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse checks required options first: "--chekpoint" came out as "the
    # following arguments are required: --checkpoint".
    assert expected in run_cli(argv, capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [
                *("predict", "--checkpoint", "m.ckpt", "--root", "d", "--out", "m.tif"),
                *("--bbox", "-120,80", "37.05", "-120.79", "37.06"),
            ],
            "--bbox value '-120,80' has a comma; write each number with a decimal "
            "point and separate them with spaces, e.g. --bbox -120.8 37.05 -120.79 "
            "37.06",
        ),
        (
            ["search", "--index", "i.parquet", "--lonlat", "-120.7,37.1", "--k", "5"],
            "--lonlat value '-120.7,37.1' has a comma;",
        ),
        (
            [
                "predict",
                "--checkpoint",
                "m.ckpt",
                "--root",
                "d",
                "--out",
                "m.tif",
                "--bbox=-120.8,37.05,-120.79,37.06",
            ],
            "--bbox value '-120.8,37.05,-120.79,37.06' has a comma;",
        ),
        (
            # Two numbers short: the comma of the next option's file is not blamed.
            [
                "predict",
                "--checkpoint",
                "m.ckpt",
                "--root",
                "d",
                "--bbox",
                "-120.8",
                "37.05",
                "--out",
                "a,b.tif",
            ],
            "argument --bbox: expected 4 arguments",
        ),
    ],
)
def test_coordinates_with_commas_are_named(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse took "-120,80" for an option: "--bbox: expected 4 arguments".
    assert expected in run_cli(argv, capsys)


def test_arguments_after_a_double_dash_are_not_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # experiment hands what follows `--` to every stage's LightningCLI.
    ran: list[argparse.Namespace] = []
    monkeypatch.setattr(parser, "_experiment", ran.append)
    main(
        [
            "experiment",
            "--out",
            str(tmp_path),
            "--",
            "--data.init_args.split_buffer",
            "40",
        ]
    )
    assert ran[0].stage_args == ["--data.init_args.split_buffer", "40"]


def test_probe_prints_the_table_of_both_encoders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `make demo` ends with this table; the CLI tests replaced the probe.
    from torchgeo_simclr.tasks import SimCLRv2Task

    scene = make_sample_scene(tmp_path / "scene", size=128)
    mean, std = scene_stats(scene)
    torch.manual_seed(0)
    task = SimCLRv2Task(model="resnet18", in_channels=12, output_dim=16)
    task.data_metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        patch_size=32,
    )
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "simclr.ckpt")
    main(
        [
            "probe",
            "--checkpoint",
            str(tmp_path / "simclr.ckpt"),
            "--root",
            str(scene.root),
            "--block-size",
            "32",
            "-k",
            "3",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "kNN probe (k=3), resnet18, patches of 32 px:"
    assert lines[1] == (
        "encoder                   accuracy  bal. acc.      F1   n ref  n test"
    )
    rows = {line[:24].strip(): line[24:].split() for line in lines[2:]}
    assert list(rows) == ["pretrained (SimCLRv2)", "random weights"]
    for accuracy, balanced, f1, n_reference, n_test in rows.values():
        assert all(0 <= float(score) <= 1 for score in (accuracy, balanced, f1))
        assert int(n_reference) > 0
        assert int(n_test) > 0


def test_pretraining_over_imagery_without_data_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # "No valid (non-nodata) pixel was found to compute band statistics from."
    # named neither the imagery nor what to change.
    monkeypatch.chdir(tmp_path)
    scene = make_sample_scene(tmp_path / "scene", size=256)
    for path in scene.image_paths:
        with rasterio.open(path, "r+") as dst:
            dst.write(dst.read() * 0)
    err = run_cli(fit_args(scene.root, "--data.init_args.stats_patches", "4"), capsys)
    assert (
        "No valid pixel was found in the 4 patches read for band statistics from "
        f"the imagery under {str(scene.root)!r} (within lon/lat "
    ) in err
    assert err.endswith(
        "): every pixel there is 0 (nodata) in some band; pass a "
        "--data.init_args.bbox over imagery with data, other dates with "
        "--data.init_args.start and --data.init_args.end."
    )
    # Where clouds were masked, keeping them is one way out.
    cloudy = tmp_path / "cloudy"
    fake_s2_with_scl(cloudy / "sentinel2", cloud=np.s_[:, :])
    fake_dwr_gpkg(cloudy)
    err = run_cli(fit_args(cloudy, "--data.init_args.stats_patches", "4"), capsys)
    assert f"the imagery under {str(cloudy)!r} (within lon/lat " in err
    assert err.endswith(
        "--data.init_args.end, or --data.init_args.mask_clouds false if masked "
        "clouds covered it."
    )
