"""Resuming a fit: the training draws go on where the checkpoint left them."""

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from test_distributed import bigearthnet

from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datamodules.samplers import restore_training_draws
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks.checkpoint_note import CheckpointNote, checkpoint_note


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def options(scene: Path) -> dict[str, Any]:
    return {
        "root": str(scene),
        "patch_size": 32,
        "block_size": 128,
        "batch_size": 4,
        "length": 16,
        "num_views": 1,
        "stats_patches": 8,
        "cache_dir": str(scene / "cache"),
    }


def set_up(scene: Path, **kwargs: Any) -> CentralValleyDataModule:
    torch.manual_seed(0)  # as seed_everything(0) before each run
    dm = CentralValleyDataModule(**(options(scene) | kwargs))
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    "kwargs", [{}, {"label_fraction": 0.5}], ids=["random patches", "labelled draws"]
)
def test_a_resumed_fit_draws_on_where_it_stopped(
    scene: Path, kwargs: dict[str, Any]
) -> None:
    # The generators were made in setup and never saved: a resumed fit
    # replayed the first epoch's patches after every resume.
    uninterrupted = set_up(scene, **kwargs)
    first = list(uninterrupted.train_sampler)
    saved = io.BytesIO()
    torch.save(uninterrupted.state_dict(), saved)  # as Lightning checkpoints it
    second = list(uninterrupted.train_sampler)
    assert second != first
    resumed = set_up(scene, **kwargs)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    assert list(resumed.train_dataloader().sampler) == second
    # Scoring the checkpoint (torchgeo test --ckpt_path) restores it too; its
    # set-up draws no labelled subset, which must not matter.
    scoring = CentralValleyDataModule(**(options(scene) | kwargs))
    scoring.setup("test")
    saved.seek(0)
    scoring.load_state_dict(torch.load(saved, weights_only=True))
    assert len(scoring.test_dataloader()) > 0


def test_a_checkpoint_of_an_earlier_version_restores_nothing(scene: Path) -> None:
    dm = set_up(scene)
    dm.load_state_dict({})
    assert list(dm.train_sampler) == list(set_up(scene).train_sampler)


def test_another_kind_of_sampler_draws_anew_with_a_warning(scene: Path) -> None:
    state = set_up(scene).state_dict()["train_sampler"]  # random patches: NumPy
    labelled = set_up(scene, label_fraction=0.5)
    expected = list(set_up(scene, label_fraction=0.5).train_sampler)
    with pytest.warns(
        UserWarning,
        match=r"kept a numpy generator but this run's is a RandomDrawSampler "
        r"without one .* draws start anew",
    ):
        restore_training_draws(labelled.train_sampler, state)
    assert list(labelled.train_sampler) == expected


def test_a_fit_lightning_stops_on_sigterm_exits_143_and_names_its_checkpoint(
    tmp_path: Path, lightning_log: pytest.LogCaptureFixture
) -> None:
    # Plain `torchgeo fit` ended with Lightning's bare SystemExit: status 0,
    # so `fit && predict` went on with a half-trained model.
    last = tmp_path / "last.ckpt"
    callback = SimpleNamespace(best_model_path=str(last), last_model_path="")
    trainer = SimpleNamespace(global_step=16, checkpoint_callback=callback)
    stop = SIGTERMException()
    CheckpointNote().on_exception(trainer, None, stop)  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exited:
        raise stop
    assert exited.value.code == 143
    assert (
        f"Terminated (SIGTERM) at step 16, before the fit ended; resume it with "
        f"--ckpt_path {last.resolve()} (the end of the last finished epoch)."
    ) in lightning_log.text
    # Other exceptions, and a code set by someone else, are left alone.
    other = SIGTERMException(1)
    CheckpointNote().on_exception(trainer, None, other)  # type: ignore[arg-type]
    assert other.code == 1


def test_a_resumed_bigearthnet_fit_draws_on_where_it_stopped(
    bigearthnet_root: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    dm = bigearthnet(bigearthnet_root, tmp_path, 1, label_fraction=0.5, length=12)
    loader = dm.train_dataloader()
    list(loader.sampler)
    saved = io.BytesIO()
    torch.save(dm.state_dict(), saved)
    second = list(loader.sampler)
    torch.manual_seed(0)
    resumed = bigearthnet(bigearthnet_root, tmp_path, 1, label_fraction=0.5, length=12)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    assert list(resumed.train_dataloader().sampler) == second


def test_a_fit_resumed_from_last_ckpt_says_that_is_what_it_holds(
    tmp_path: Path,
) -> None:
    # A checkpoint of an earlier version's config resumes into last-v1.ckpt;
    # the note called the last.ckpt it resumed from "an earlier run".
    earlier = tmp_path / "last.ckpt"
    earlier.write_bytes(b"")
    written = tmp_path / "last-v1.ckpt"
    note = checkpoint_note(written, resumed=str(earlier))
    assert f"({earlier.resolve()} holds the state this fit resumed from in" in note
    assert "holds an earlier run" in checkpoint_note(written)
