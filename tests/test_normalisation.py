"""A network sees its inputs normalised as in training, whatever the data gives."""

import warnings
from pathlib import Path

import pytest
import torch
from conftest import fake_dwr_gpkg, fake_s2_multiband, quiet_trainer
from lightning.fabric.utilities.throughput import measure_flops
from torch import Tensor

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.models.checkpoint import DataMetadata, load_model
from torchgeo_simclr.tasks import FineTuneTask, RawInputWarning, SimCLRv2Task
from torchgeo_simclr.tasks.provenance import split_advice


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    fake_s2_multiband(root / "sentinel2")
    fake_dwr_gpkg(root)
    return root


def datamodule(
    scene: Path, stats_patches: int, **kwargs: object
) -> CentralValleyDataModule:
    """The fake scene in 16-px patches; *stats_patches* changes the statistics."""
    options: dict[str, object] = {
        "root": str(scene),
        "patch_size": 16,
        "block_size": 32,
        "batch_size": 8,
        "length": 8,
        "stats_patches": stats_patches,
        "num_views": 0,
        "cache_dir": str(scene / "cache"),
    }
    return CentralValleyDataModule(**(options | kwargs))  # type: ignore[arg-type]


def fit(
    task: FineTuneTask | SimCLRv2Task, dm: CentralValleyDataModule, path: Path
) -> Path:
    trainer = quiet_trainer(1, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(task, datamodule=dm)
    trainer.save_checkpoint(path)
    return path


def means(dm: CentralValleyDataModule) -> Tensor:
    dm.setup("fit")
    return dm.mean


@pytest.fixture(scope="module")
def finetuned(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "finetuned.ckpt"
    return fit(FineTuneTask(), datamodule(scene, 4), path)


def predicted(checkpoint: Path, dm: CentralValleyDataModule) -> Tensor:
    trainer = quiet_trainer(1)
    outputs = trainer.predict(FineTuneTask(), datamodule=dm, ckpt_path=checkpoint)
    assert outputs is not None
    return torch.cat([torch.as_tensor(o) for o in outputs])


def test_the_two_datamodules_compute_different_statistics(scene: Path) -> None:
    assert not torch.allclose(means(datamodule(scene, 4)), means(datamodule(scene, 2)))


def test_predictions_of_a_checkpoint_do_not_depend_on_stats_patches(
    scene: Path,
    finetuned: Path,
    lightning_log: pytest.LogCaptureFixture,
) -> None:
    as_trained = predicted(finetuned, datamodule(scene, 4))
    other = datamodule(scene, 2)
    elsewhere = predicted(finetuned, other)
    assert torch.allclose(as_trained, elsewhere)
    trained = load_model(finetuned).data
    assert trained is not None
    assert torch.allclose(other.mean, torch.tensor(trained.mean))
    assert f"band statistics of checkpoint {str(finetuned)!r}" in lightning_log.text


def test_testing_a_checkpoint_uses_its_statistics(scene: Path, finetuned: Path) -> None:
    other = datamodule(scene, 2)
    quiet_trainer(1).test(FineTuneTask(), datamodule=other, ckpt_path=finetuned)
    trained = load_model(finetuned).data
    assert trained is not None
    assert torch.allclose(other.mean, torch.tensor(trained.mean))


def test_testing_with_other_bands_names_both(scene: Path, finetuned: Path) -> None:
    reordered = [*S2_BANDS[1:], S2_BANDS[0]]
    other = datamodule(scene, 4, bands=reordered)
    with pytest.raises(ValueError, match="was trained on bands") as error:
        quiet_trainer(1).test(FineTuneTask(), datamodule=other, ckpt_path=finetuned)
    assert str(list(S2_BANDS)) in str(error.value)
    assert str(reordered) in str(error.value)


def test_fine_tuning_normalises_as_pretraining_did(scene: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretrained = fit(
        SimCLRv2Task(), datamodule(scene, 4, num_views=2), tmp_path / "simclr.ckpt"
    )
    finetuned = fit(
        FineTuneTask(checkpoint=str(pretrained)),
        datamodule(scene, 2),
        tmp_path / "finetuned.ckpt",
    )
    first, second = (
        torch.load(path, weights_only=False)["torchgeo_simclr"]["data"]
        for path in (pretrained, finetuned)
    )
    assert second["mean"] == first["mean"]
    assert second["std"] == first["std"]


def test_testing_on_another_split_warns(scene: Path, finetuned: Path) -> None:
    # Seed 3 deals the blocks anew: its test blocks hold training blocks of seed 0.
    other = datamodule(scene, 4, seed=3)
    with pytest.warns(UserWarning, match="scores come out too high") as record:
        quiet_trainer(1).test(FineTuneTask(), datamodule=other, ckpt_path=finetuned)
    message = next(str(w.message) for w in record if "too high" in str(w.message))
    assert str(finetuned) in message


@pytest.mark.parametrize("recorded", [True, False])
def test_a_split_buffer_holds_out_the_same_blocks(
    scene: Path, finetuned: Path, tmp_path: Path, recorded: bool
) -> None:
    # A gap around the val and test blocks only shrinks the training blocks:
    # scoring or resuming there is as honest as on the split trained on.
    checkpoint = finetuned
    if not recorded:  # earlier versions recorded the whole split alone
        saved = torch.load(finetuned, weights_only=False)
        del saved["torchgeo_simclr"]["data"]["held_out"]
        checkpoint = tmp_path / "older.ckpt"
        torch.save(saved, checkpoint)
    other = datamodule(scene, 4, split_buffer=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(1).test(FineTuneTask(), datamodule=other, ckpt_path=checkpoint)
    too_high = [w for w in caught if "too high" in str(w.message)]
    assert bool(too_high) is not recorded
    if recorded:
        trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
        trainer.fit(FineTuneTask(), datamodule=other, ckpt_path=checkpoint)
        assert trainer.global_step == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": 3}, "spatial split"),
        (
            {"label_fraction": 0.5},
            "trained on every labelled patch .* draws label_fraction 0.5",
        ),
    ],
)
def test_resuming_on_other_data_is_refused(
    scene: Path, finetuned: Path, change: dict[str, object], expected: str
) -> None:
    other = datamodule(scene, 4, **change)
    trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.raises(ValueError, match=expected):
        trainer.fit(FineTuneTask(), datamodule=other, ckpt_path=finetuned)
    # The same data resumes.
    trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(FineTuneTask(), datamodule=datamodule(scene, 4), ckpt_path=finetuned)
    assert trainer.global_step == 2


def test_resuming_a_checkpoint_without_a_label_record_warns(
    scene: Path, finetuned: Path, tmp_path: Path
) -> None:
    # Checkpoints of earlier versions record no labelled subset: resuming one on
    # another label_fraction cannot be refused, so the user is told.
    checkpoint = torch.load(finetuned, weights_only=False)
    del checkpoint["torchgeo_simclr"]["labels"]
    older = tmp_path / "older.ckpt"
    torch.save(checkpoint, older)
    other = datamodule(scene, 4, label_fraction=0.5)
    trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.warns(UserWarning, match="records no labelled subset"):
        trainer.fit(FineTuneTask(), datamodule=other, ckpt_path=older)


@pytest.fixture(scope="module")
def pretrained(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "simclr.ckpt"
    simclr = SimCLRv2Task(model="resnet18")
    return fit(simclr, datamodule(scene, 4, num_views=2), path)


def recorded_split(checkpoint: Path) -> tuple[str, str]:
    data = torch.load(checkpoint, weights_only=False)["torchgeo_simclr"]["data"]
    return data["split"], data["held_out"]


@pytest.mark.parametrize("change", [{"seed": 3}, {"block_size": 48}])
def test_resuming_pretraining_on_another_split_is_refused(
    scene: Path, pretrained: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    # The encoder would go on training on the new split's val and test blocks,
    # and the checkpoint it wrote would record the new split as its own.
    before = recorded_split(pretrained)
    other = datamodule(scene, 4, num_views=2, **change)
    trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.raises(ValueError, match="spatial split") as error:
        trainer.fit(
            SimCLRv2Task(model="resnet18"), datamodule=other, ckpt_path=pretrained
        )
    message = str(error.value)
    assert str(pretrained) in message
    assert before[1] in message  # the checkpoint's val and test blocks
    assert "would train on its held-out blocks" in message
    # The option that moved the split, with the value to resume with.
    ((key, value),) = change.items()
    recorded = {"seed": 0, "block_size": 32}[key]
    assert (
        f"resume with {key} {recorded}, as it was trained with "
        f"(this datamodule: {key} {value})."
    ) in message
    assert recorded_split(pretrained) == before


def test_a_checkpoint_records_the_options_of_its_split(
    scene: Path, pretrained: Path
) -> None:
    # With them a user can make the split again from the checkpoint alone.
    data = torch.load(pretrained, weights_only=False)["torchgeo_simclr"]["data"]
    assert data["settings"] == {
        "root": str(scene),
        "bbox": None,
        "bbox_crs": "EPSG:4326",
        "start": None,
        "end": None,
        "block_size": 32,
        "split_fractions": [0.7, 0.15, 0.15],
        "split_buffer": 0,
        "seed": 0,
        "patch_size": 16,
    }
    again = datamodule(scene, 4, **data["settings"])
    again.setup("fit")
    assert held_out_of(again) == data["held_out"]
    # And the imagery's sensing dates: a map of another year can say so.
    assert data["imagery_dates"] == ["2023-07-15"]


@pytest.mark.parametrize("change", [{}, {"split_buffer": 2}])
def test_resuming_pretraining_on_its_own_split_keeps_it(
    scene: Path, pretrained: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    # Another split_buffer holds out the same val and test blocks.
    trainer = quiet_trainer(2, num_sanity_val_steps=0, limit_val_batches=0)
    task = SimCLRv2Task(model="resnet18")
    dm = datamodule(scene, 4, num_views=2, **change)
    trainer.fit(task, datamodule=dm, ckpt_path=pretrained)
    assert trainer.global_step == 2
    trainer.save_checkpoint(tmp_path / "resumed.ckpt")
    assert recorded_split(tmp_path / "resumed.ckpt")[1] == recorded_split(pretrained)[1]


def held_out_of(dm: CentralValleyDataModule) -> str:
    data = DataMetadata.from_datamodule(dm, len(S2_BANDS))
    assert data is not None
    assert data.held_out is not None
    return data.held_out


def fine_tune_warnings(
    pretrained: Path, dm: CentralValleyDataModule
) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = quiet_trainer(1, num_sanity_val_steps=0, limit_val_batches=0)
        trainer.fit(FineTuneTask(checkpoint=str(pretrained)), datamodule=dm)
    return [w for w in caught if "was pretrained on spatial split" in str(w.message)]


def test_fine_tuning_an_encoder_of_another_split_warns_once(
    scene: Path, pretrained: Path
) -> None:
    # The encoder saw the imagery of the fine-tuning's val and test blocks.
    other = datamodule(scene, 4, seed=3)
    caught = fine_tune_warnings(pretrained, other)
    assert len(caught) == 1
    assert caught[0].category is UserWarning
    message = str(caught[0].message)
    trained = recorded_split(pretrained)[1]
    current = held_out_of(other)
    assert f"Checkpoint {str(pretrained)!r}" in message
    assert f"split {trained} but the datamodule makes split {current}" in message
    assert "seen the imagery of this split's val and test blocks" in message
    assert (
        "fine-tune with seed 0, as it was pretrained with (this datamodule: seed 3)"
        ", or pretrain again on this split."
    ) in message


@pytest.mark.parametrize(
    ("stats_patches", "change"), [(4, {}), (4, {"split_buffer": 2}), (2, {})]
)
def test_fine_tuning_an_encoder_of_the_same_split_is_quiet(
    scene: Path, pretrained: Path, stats_patches: int, change: dict[str, object]
) -> None:
    # Another split_buffer holds out the same val and test blocks.
    dm = datamodule(scene, stats_patches, **change)
    assert fine_tune_warnings(pretrained, dm) == []


def test_fine_tuning_on_unlabeled_patches_warns(scene: Path) -> None:
    # `unlabeled` is for distillation: fine-tuning's batches would mostly hold
    # no label, and their loss would be 0.
    dm = datamodule(scene, 4, label_fraction=0.5, unlabeled=True)
    trainer = quiet_trainer(1, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.warns(UserWarning, match="meant for distillation") as record:
        trainer.fit(FineTuneTask(), datamodule=dm)
    message = next(str(w.message) for w in record if "distillation" in str(w.message))
    assert "--data.init_args.unlabeled false" in message
    # The labelled subset alone fine-tunes without the warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(1, num_sanity_val_steps=0, limit_val_batches=0).fit(
            FineTuneTask(), datamodule=datamodule(scene, 4, label_fraction=0.5)
        )
    assert not [w for w in caught if "distillation" in str(w.message)]


def raw_batches(dm: CentralValleyDataModule) -> list[Tensor]:
    """The predict batches as a user's own loop gets them: reflectance x10000."""
    dm.setup("predict")
    return [batch["image"] for batch in dm.predict_dataloader()]


def test_own_code_with_normalise_predicts_as_lightning_does(
    scene: Path, finetuned: Path
) -> None:
    dm = datamodule(scene, 2)  # other statistics than the checkpoint's
    task = FineTuneTask.load_from_checkpoint(finetuned, map_location="cpu").eval()
    with torch.no_grad():
        own = torch.cat(
            [torch.sigmoid(task(task.normalise(x))) for x in raw_batches(dm)]
        )
    torch.testing.assert_close(own, predicted(finetuned, datamodule(scene, 2)))


def test_normalise_uses_the_training_statistics_and_zeroes_nodata(
    finetuned: Path,
) -> None:
    task = FineTuneTask.load_from_checkpoint(finetuned, map_location="cpu")
    data = task.data_metadata
    assert data is not None
    image = torch.full((len(data.bands), 2, 2), 1000.0)
    image[3, 1, 1] = 0  # one band without data: the whole pixel is nodata
    out = task.normalise(image)
    band = 5
    expected = (1000.0 - data.mean[band]) / data.std[band]
    assert out[band, 0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert out[:, 1, 1].abs().sum() == 0
    assert image[band, 0, 0] == 1000.0  # the caller's tensor is left alone


def test_a_task_without_statistics_refuses_to_normalise() -> None:
    with pytest.raises(ValueError, match=r"no band statistics.*load_from_checkpoint"):
        FineTuneTask().normalise(torch.ones(1, 12, 4, 4))


def test_normalise_names_the_bands_it_expects(finetuned: Path) -> None:
    task = FineTuneTask.load_from_checkpoint(finetuned, map_location="cpu")
    with pytest.raises(
        ValueError, match=r"C = 12 bands \['B01'.*got shape \[1, 3, 4, 4\]"
    ):
        task.normalise(torch.ones(1, 3, 4, 4))


@pytest.mark.parametrize("kind", ["finetune", "simclr"])
def test_raw_reflectance_in_own_code_warns(
    scene: Path, finetuned: Path, pretrained: Path, kind: str
) -> None:
    path = finetuned if kind == "finetune" else pretrained
    task_class = FineTuneTask if kind == "finetune" else SimCLRv2Task
    task = task_class.load_from_checkpoint(path, map_location="cpu").eval()
    raw = raw_batches(datamodule(scene, 4))[0]
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.predict_step({"image": task.normalise(raw)}, 0)
        assert caught == []
        task.predict_step({"image": raw}, 0)
    assert len(caught) == 1
    assert issubclass(caught[0].category, RawInputWarning)
    assert "task.normalise(image)" in str(caught[0].message)


def test_flops_and_export_of_a_task_need_no_input_values() -> None:
    """Lightning's FLOP counter and torch.export feed inputs without values."""
    with torch.device("meta"):
        meta = FineTuneTask(in_channels=12)
    batch = torch.randn(2, 12, 32, 32, device="meta")
    assert measure_flops(meta, lambda: meta(batch)) > 0
    task = FineTuneTask(in_channels=12).eval()
    exported = torch.export.export(task, (torch.randn(2, 12, 32, 32),))
    assert exported.module()(torch.zeros(2, 12, 32, 32)).shape == (2,)


def split_of(held_out: str, settings: dict[str, object] | None) -> DataMetadata:
    return DataMetadata(
        bands=("B04",),
        mean=(0.0,),
        std=(1.0,),
        patch_size=16,
        split=held_out,
        held_out=held_out,
        settings=settings,
    )


def test_another_split_from_the_same_options_blames_the_data() -> None:
    # Tiles added under root move the region, and so the blocks.
    settings: dict[str, object] = {"root": "data/sample", "bbox": None, "seed": 0}
    advice = split_advice(split_of("a", settings), split_of("b", settings), "use")
    assert advice == (
        "the datamodule's root, bbox and seed are those it was trained with, so "
        "the data under root 'data/sample' has changed since"
    )


def test_a_checkpoint_without_its_options_names_them_all() -> None:
    # Checkpoints of earlier versions record no options.
    advice = split_advice(split_of("a", None), split_of("b", {"seed": 1}), "use")
    assert advice == (
        "use the root, bbox, block_size, split_fractions, split_buffer and seed it "
        "was trained with (BigEarthNet: root, scheme and split_seed)"
    )


def test_the_advice_names_only_the_options_that_moved_the_held_out_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same folder given relative and absolute is the same root, and
    # split_buffer does not move the val and test blocks that are compared.
    monkeypatch.chdir(tmp_path)
    trained = {"root": "data/sample", "split_buffer": 0, "seed": 0}
    current = {"root": str(tmp_path / "data/sample"), "split_buffer": 2, "seed": 3}
    advice = split_advice(split_of("a", trained), split_of("b", current), "use")
    assert advice == "use seed 0, as it was trained with (this datamodule: seed 3)"
