"""Validation and test views: the same every epoch, and no draw from training's RNG."""

import csv
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import cpu_fit as small
from torchgeo.main import main as torchgeo_main

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules.augment import make_views, set_augmentations
from torchgeo_simclr.sample import make_sample_scene

CONF = Path(__file__).resolve().parents[1] / "conf"
BANDS = len(S2_BANDS)


def test_eval_views_are_fixed_and_leave_the_global_rng_alone() -> None:
    datamodule = SimpleNamespace()
    views = make_views(None, ops_per_view=2, num_views=2, op_kwargs=None)
    set_augmentations(datamodule, torch.zeros(BANDS), torch.ones(BANDS), views)
    image = torch.randint(1, 10_000, (4, BANDS, 16, 16)).float()
    drawn = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        drawn.append(datamodule.val_aug({"image": image.clone()})["views"])
        assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(drawn[0], drawn[1])
    # Not one view drawn twice: the two views of a patch differ.
    assert not torch.equal(drawn[0][0], drawn[0][1])
    # Training still draws anew.
    train = [datamodule.train_aug({"image": image.clone()})["views"] for _ in "ab"]
    assert not torch.equal(train[0], train[1])


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def simclr(scene: Path, *extra: str) -> list[str]:
    """The SimCLR quickstart on *scene* in batches of 4 (the val blocks hold 2)."""
    return [
        "--config",
        str(CONF / "simclr_quickstart.yaml"),
        *small(scene, *extra),
        "--data.init_args.batch_size",
        "4",
    ]


def test_the_same_weights_give_the_same_val_loss_under_any_seed(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same checkpoint gave val_loss 1.578, 1.500 and 1.524 by seed, as
    # much as an epoch's progress, so the best-checkpoint monitor drew lots.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # LightningCLI warns of pytest's
    one_step = ("--trainer.max_steps", "1", "--trainer.limit_val_batches", "1")
    main(["fit", *simclr(scene, *one_step)])
    checkpoint = tmp_path / "runs/simclr_quickstart/checkpoints/last.ckpt"
    losses = []
    for seed in ("0", "1", "2"):
        csv_dir = tmp_path / f"validate_{seed}"
        torchgeo_main(
            [
                "validate",
                *simclr(scene, "--trainer.limit_val_batches", "2"),
                "--trainer.logger",
                "CSVLogger",
                "--trainer.logger.init_args.save_dir",
                str(csv_dir),
                "--ckpt_path",
                str(checkpoint),
                "--seed_everything",
                seed,
            ]
        )
        (row,) = metric_rows(csv_dir)
        losses.append(float(row["val_loss"]))
    assert losses[0] == losses[1] == losses[2]


def metric_rows(save_dir: Path) -> list[dict[str, str]]:
    """The rows of the one ``metrics.csv`` a CSVLogger wrote under *save_dir*."""
    (metrics,) = save_dir.rglob("metrics.csv")
    with metrics.open() as file:
        return list(csv.DictReader(file))


def test_more_validation_batches_leave_training_as_it_was(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation drew its views from the training's RNG, so
    # limit_val_batches changed every later training step.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    runs = []
    for val_batches in ("1", "2"):
        csv_dir = tmp_path / f"fit_{val_batches}"
        main(
            [
                "fit",
                *simclr(
                    scene,
                    "--trainer.max_steps",
                    "3",
                    "--trainer.val_check_interval",
                    "1",
                    "--trainer.limit_val_batches",
                    val_batches,
                    "--trainer.log_every_n_steps",
                    "1",
                    "--trainer.logger",
                    "CSVLogger",
                    "--trainer.logger.init_args.save_dir",
                    str(csv_dir),
                    "--trainer.default_root_dir",
                    str(csv_dir),
                ),
            ]
        )
        rows = metric_rows(csv_dir)
        runs.append([row["train_loss"] for row in rows if row.get("train_loss")])
    assert len(runs[0]) == 3
    assert runs[0] == runs[1]
