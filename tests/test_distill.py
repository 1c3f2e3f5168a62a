"""Distillation: the loss, DistillTask on a fine-tuned teacher, and the split guard."""

import math
import signal
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import shapely
import torch
from conftest import quiet_trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datamodules.augment import BatchAugmentation
from torchgeo_simclr.losses import binary_loss, distillation_loss
from torchgeo_simclr.models.checkpoint import DataMetadata, load_model, split_digest
from torchgeo_simclr.models.classifier import IrrigationModel, ModelSpec, Problem
from torchgeo_simclr.patch_labels import patch_labels
from torchgeo_simclr.tasks import DistillTask, FineTuneTask, SimCLRv2Task
from torchgeo_simclr.tasks.irrigation import IrrigationTask
from torchgeo_simclr.tasks.prediction import MapPredictionTask
from torchgeo_simclr.throughput import FreshProcessTimer
from torchgeo_simclr.transforms import SimCLRViews

BATCH, BANDS, SIZE = 4, 12, 32


def kl(student: float, teacher: float, temperature: float) -> float:
    p = 1 / (1 + math.exp(-teacher / temperature))
    q = 1 / (1 + math.exp(-student / temperature))
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_distillation_loss_by_hand() -> None:
    student = torch.tensor([0.0, 2.0])
    teacher = torch.tensor([1.0, -1.0])
    expected = (kl(0.0, 1.0, 2.0) + kl(2.0, -1.0, 2.0)) / 2 * 2.0**2
    loss = distillation_loss(student, teacher, temperature=2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = (kl(0.0, 1.0, 1.0) + kl(2.0, -1.0, 1.0)) / 2
    assert distillation_loss(student, teacher).item() == pytest.approx(plain, rel=1e-6)


def test_distillation_loss_is_zero_for_a_perfect_student() -> None:
    logits = torch.tensor([[-3.0, 0.5], [8.0, -0.2]])
    assert distillation_loss(logits, logits.clone(), 3.0).item() == pytest.approx(
        0.0, abs=1e-7
    )
    assert distillation_loss(logits, logits + 1).item() > 0


def test_only_the_student_gets_gradients() -> None:
    student = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    teacher = torch.tensor([1.0, -1.0, -1.0], requires_grad=True)
    distillation_loss(student, teacher, 2.0).backward()
    assert teacher.grad is None
    assert student.grad is not None
    assert student.grad[0] < 0  # pushed up towards the teacher's higher logit
    assert student.grad[1] > 0
    assert student.grad[2] == 0  # already matches


def test_valid_mask_averages_over_valid_entries_only() -> None:
    student = torch.tensor([0.0, 2.0, 5.0, -4.0])
    teacher = torch.tensor([1.0, -1.0, -6.0, 3.0])
    valid = torch.tensor([True, True, False, False])
    masked = distillation_loss(student, teacher, 2.0, valid=valid)
    assert masked.item() == pytest.approx(
        distillation_loss(student[:2], teacher[:2], 2.0).item(), rel=1e-6
    )
    none = distillation_loss(student, teacher, valid=torch.zeros(4, dtype=torch.bool))
    assert none.item() == 0


def data_metadata(split: str | None = "split-a") -> DataMetadata:
    return DataMetadata(
        bands=tuple(S2_BANDS),
        mean=tuple(float(i) for i in range(BANDS)),
        std=(1.0,) * BANDS,
        patch_size=SIZE,
        split=split,
    )


def save(task: IrrigationTask | SimCLRv2Task, path: Path) -> Path:
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fine-tuned checkpoints (random weights), one per problem type."""
    root = tmp_path_factory.mktemp("teachers")
    paths: dict[str, Path] = {}
    problems: tuple[Problem, ...] = ("classification", "segmentation")
    for problem in problems:
        torch.manual_seed(0)
        task = FineTuneTask(problem=problem)
        task.data_metadata = data_metadata()
        paths[problem] = save(task, root / f"{problem}.ckpt")
    return paths


def batch(seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(BATCH, SIZE, SIZE, dtype=torch.long)
    mask[::2] = 1
    return {
        "image": torch.randn(BATCH, BANDS, SIZE, SIZE, generator=generator),
        "mask": mask,
    }


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_student_learns_from_a_frozen_teacher(
    teachers: dict[str, Path], problem: str
) -> None:
    task = DistillTask(teacher=str(teachers[problem]), model="resnet18")
    assert task.model.spec.problem == problem
    assert task.teacher.spec.problem == problem
    assert task.teacher_data == data_metadata()
    assert not any(p.requires_grad for p in task.teacher.parameters())
    task.train()
    assert not any(m.training for m in task.teacher.modules())
    assert task.model.training

    task.training_step(batch(), 0).backward()
    assert all(p.grad is None for p in task.teacher.parameters())
    grad = task.model.backbone.get_parameter("conv1.weight").grad
    assert grad is not None
    assert grad.abs().sum() > 0
    task.eval()
    out = task.model(batch()["image"])
    shape = (BATCH,) if problem == "classification" else (BATCH, SIZE, SIZE)
    assert out.shape == shape


def test_fit_raises_no_eval_mode_warning_for_the_teacher(
    teachers: dict[str, Path],
) -> None:
    task = DistillTask(teacher=str(teachers["classification"]), model="resnet18")
    trainer = quiet_trainer(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(task, train_dataloaders=DataLoader([batch()], batch_size=None))
    assert not [w for w in caught if "in eval mode" in str(w.message)]
    assert not any(m.training for m in task.teacher.modules())


def test_a_distilled_checkpoint_holds_the_student_alone_and_runs_without_the_teacher(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher.ckpt"
    teacher.write_bytes(teachers["segmentation"].read_bytes())
    loader = DataLoader([batch(), batch(1)], batch_size=None)
    trainer = quiet_trainer(1)
    trainer.fit(DistillTask(teacher=str(teacher), model="regnetx_002"), loader)
    distilled = tmp_path / "distilled.ckpt"
    trainer.save_checkpoint(distilled)
    state = torch.load(distilled, weights_only=False)["state_dict"]
    assert state
    assert not [key for key in state if key.startswith("teacher.")]
    expected = quiet_trainer(1).predict(
        DistillTask(teacher=str(teacher), model="regnetx_002"),
        loader,
        ckpt_path=distilled,
    )
    teacher.unlink()
    with pytest.warns(UserWarning, match=r"teacher\.ckpt' does not exist"):
        task = DistillTask(teacher=str(teacher), model="regnetx_002")
    with pytest.raises(FileNotFoundError, match=r"teacher\.ckpt' does not exist"):
        quiet_trainer(1).fit(task, loader)
    with pytest.raises(FileNotFoundError, match="also when it resumes"):
        quiet_trainer(2).fit(task, loader, ckpt_path=distilled)
    got = quiet_trainer(1).predict(task, loader, ckpt_path=distilled)
    assert expected is not None
    assert got is not None
    assert task.model.spec.problem == "segmentation"  # rebuilt as recorded
    assert torch.equal(torch.cat(got), torch.cat(expected))  # type: ignore[arg-type]


def test_teacher_stays_unchanged_by_training(teachers: dict[str, Path]) -> None:
    task = DistillTask(teacher=str(teachers["classification"]))
    task.train()
    before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    task.training_step(batch(), 0)
    after = task.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats too


def test_training_loss_is_distillation_plus_alpha_labelled(
    teachers: dict[str, Path],
) -> None:
    task = DistillTask(
        teacher=str(teachers["classification"]), temperature=2.0, alpha=0.5
    )
    task.train()
    data = batch()
    loss = task.training_step(data, 0)
    assert torch.isfinite(loss)
    with torch.no_grad():
        student, teacher = task.model(data["image"]), task.teacher(data["image"])
    distill = distillation_loss(student, teacher, 2.0)
    labelled = binary_loss(student, patch_labels(data["mask"]))
    assert loss.item() == pytest.approx((distill + 0.5 * labelled).item(), rel=1e-5)
    # Unlabelled patches (all masks ignored) give the distillation loss alone.
    data["mask"].fill_(255)
    alone = task.training_step(data, 0)
    assert alone.item() == pytest.approx(distill.item(), rel=1e-5)


class FixedTeacher(nn.Module):
    """A teacher that says given logits, whatever the image."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, image: Tensor) -> Tensor:
        return self.logits


def raw_batch(nodata_columns: int) -> dict[str, Tensor]:
    """Reflectance x10000 whose right *nodata_columns* columns have no data."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(BATCH, BANDS, SIZE, SIZE, generator=generator) * 3000 + 1
    image[..., SIZE - nodata_columns :] = 0
    image[0, 3, 0, 0] = 0  # a pixel missing one band has no data either
    return {"image": image}


def first_grad(task: DistillTask) -> Tensor:
    """The gradient of the student's first weight."""
    grad = next(task.model.parameters()).grad
    assert grad is not None
    return grad


def distil_twice(
    task: DistillTask, data: dict[str, Tensor], teacher: Tensor, nodata: Tensor
) -> list[tuple[Tensor, Tensor]]:
    """(loss, first gradient) of a step, then of one with other teacher logits
    on the *nodata* entries."""
    steps = []
    for shift in (0.0, 8.0):
        task.teacher = FixedTeacher(teacher + nodata * shift)
        task.model.zero_grad()
        loss = task.training_step(data, 0)
        loss.backward()
        steps.append((loss.detach(), first_grad(task).clone()))
    return steps


def test_a_segmentation_student_is_not_taught_on_pixels_without_data(
    teachers: dict[str, Path],
) -> None:
    # Half of each patch is cloud-masked and the view flips some patches
    # (test_batch_augmentation checks that the pixels without data follow).
    augment = BatchAugmentation(
        torch.full((BANDS,), 1000.0),
        torch.full((BANDS,), 500.0),
        SimCLRViews(["flip"], ops_per_view=1, num_views=1),
    )
    torch.manual_seed(0)
    data = augment(raw_batch(nodata_columns=SIZE // 2))
    valid = data["valid"]
    assert valid.float().mean().item() == pytest.approx(0.5, abs=0.01)
    task = DistillTask(teacher=str(teachers["segmentation"]), model="regnetx_002")
    task.train()
    teacher = torch.randn(BATCH, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    (loss, grad), (moved_loss, moved_grad) = distil_twice(task, data, teacher, ~valid)
    # What the teacher says about pixels without data changes nothing ...
    assert torch.equal(loss, moved_loss)
    assert torch.equal(grad, moved_grad)
    # ... and the loss is the mean over the pixels with data.
    with torch.no_grad():
        student = task.model(data["image"])
    expected = distillation_loss(student[valid], teacher[valid])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_classification_student_skips_patches_without_data(
    teachers: dict[str, Path],
) -> None:
    task = DistillTask(teacher=str(teachers["classification"]), model="regnetx_002")
    task.train()
    data = batch()
    valid = torch.ones(BATCH, SIZE, SIZE, dtype=torch.bool)
    valid[0] = False  # all cloud: the teacher knows nothing about this patch
    valid[1, :, 1:] = False  # one column of data: the map shows its prediction
    data["valid"] = valid
    teacher = torch.tensor([9.0, -2.0, 0.5, 1.0])
    nodata = torch.tensor([True, False, False, False])
    (loss, grad), (moved_loss, moved_grad) = distil_twice(task, data, teacher, nodata)
    assert torch.equal(loss, moved_loss)
    assert torch.equal(grad, moved_grad)
    with torch.no_grad():
        student = task.model(data["image"])
    expected = distillation_loss(student[1:], teacher[1:])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    data["valid"] = torch.zeros_like(valid)
    assert task.training_step(data, 0).item() == 0


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_distillation_is_unchanged_where_every_pixel_has_data(
    teachers: dict[str, Path], problem: str
) -> None:
    steps = []
    for valid in (None, torch.ones(BATCH, SIZE, SIZE, dtype=torch.bool)):
        torch.manual_seed(0)
        task = DistillTask(teacher=str(teachers[problem]), model="regnetx_002")
        task.train()
        data = batch()
        if valid is not None:
            data["valid"] = valid
        loss = task.training_step(data, 0)
        loss.backward()
        steps.append((loss.detach(), first_grad(task)))
    assert torch.equal(steps[0][0], steps[1][0])
    assert torch.equal(steps[0][1], steps[1][1])


def test_pretraining_checkpoint_is_no_teacher(tmp_path: Path) -> None:
    simclr = save(SimCLRv2Task(model="resnet18"), tmp_path / "simclr.ckpt")
    with pytest.raises(ValueError, match="'simclr'") as error:
        DistillTask(teacher=str(simclr))
    assert "'finetune'" in str(error.value)


def test_a_student_that_cannot_feed_a_u_net_is_told_what_a_student_can_do(
    teachers: dict[str, Path],
) -> None:
    # It said "use problem classification", an option a student does not have.
    with pytest.raises(ValueError, match="cannot feed a U-Net") as error:
        DistillTask(
            teacher=str(teachers["segmentation"]),
            model="vit_tiny_patch16_224",
            backbone_kwargs={"dynamic_img_size": True, "dynamic_img_pad": True},
        )
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith("Student 'vit_tiny_patch16_224' cannot feed a U-Net")
    assert repr(str(teachers["segmentation"])) in message
    assert "problem classification" not in message
    assert "set --model.init_args.model to a student with one" in message
    assert "distil a per-patch (classification) teacher" in message
    # A per-patch teacher takes that student.
    DistillTask(
        teacher=str(teachers["classification"]),
        model="vit_tiny_patch16_224",
        backbone_kwargs={"dynamic_img_size": True, "dynamic_img_pad": True},
    )


def test_load_model_rebuilds_the_fine_tuned_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    task = FineTuneTask(model="resnet18", head_layers=2)
    task.data_metadata = data_metadata()
    path = save(task, tmp_path / "finetuned.ckpt")
    loaded = load_model(path)
    assert loaded.kind == "finetune"
    assert loaded.data == data_metadata()
    assert loaded.model.spec == task.model.spec
    assert not loaded.model.training
    task.eval()
    image = batch()["image"]
    with torch.no_grad():
        assert torch.equal(loaded.model(image), task.model(image))


def test_distilled_checkpoint_holds_the_student(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    task = DistillTask(teacher=str(teachers["classification"]), model="regnetx_002")
    task.data_metadata = data_metadata()
    path = save(task, tmp_path / "distilled.ckpt")
    loaded = load_model(path)
    assert loaded.kind == "distill"
    assert loaded.model.spec.model == "regnetx_002"
    task.eval()
    image = batch()["image"]
    with torch.no_grad():
        assert torch.equal(loaded.model(image), task.model(image))
    # A distilled model can teach the next student.
    again = DistillTask(teacher=str(path))
    assert again.teacher.spec.model == "regnetx_002"


def channels_last_student(teachers: dict[str, Path]) -> DistillTask:
    return DistillTask(
        teacher=str(teachers["classification"]),
        model="regnetx_002",
        channels_last=True,
    )


def test_channels_last_student_trains_and_maps_channels_last(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    task = channels_last_student(teachers)
    weight = task.model.backbone.get_parameter("stem.conv.weight")
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert task.teacher.backbone.get_parameter("conv1.weight").is_contiguous()
    task.train()
    task.training_step(batch(), 0).backward()
    assert weight.grad is not None
    assert weight.grad.abs().sum() > 0

    task.eval()
    task.data_metadata = data_metadata()
    path = save(task, tmp_path / "distilled.ckpt")
    loaded = load_model(path)
    assert loaded.model.spec.channels_last
    assert MapPredictionTask(str(path)).memory_format == torch.channels_last
    # The same weights in NCHW give the same logits, up to rounding.
    plain = IrrigationModel(replace(loaded.model.spec, channels_last=False)).eval()
    plain.load_state_dict(loaded.model.state_dict())
    assert plain.backbone.get_parameter("stem.conv.weight").is_contiguous()
    image = batch()["image"]
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(image), plain(image), atol=1e-4, rtol=1e-4
        )


def test_checkpoints_without_a_memory_order_load_as_nchw(
    teachers: dict[str, Path],
) -> None:
    checkpoint = torch.load(teachers["classification"], weights_only=False)
    spec = checkpoint["torchgeo_simclr"]["spec"]
    del spec["channels_last"]  # as written before the option existed
    assert not ModelSpec.from_dict(spec).channels_last


def fake_datamodule(blocks: dict[str, shapely.Polygon], bands: list[str]) -> Any:
    return SimpleNamespace(
        bands=bands,
        mean=torch.arange(len(bands), dtype=torch.float32),  # the teachers' statistics
        std=torch.ones(len(bands)),
        patch_size=SIZE,
        split_blocks=blocks,
    )


def blocks(offset: float) -> dict[str, shapely.Polygon]:
    return {
        name: shapely.box(i + offset, 0, i + offset + 1, 1)
        for i, name in enumerate(("train", "val", "test"))
    }


def attach(task: DistillTask, datamodule: Any) -> None:
    task.trainer = SimpleNamespace(datamodule=datamodule)  # type: ignore[assignment]


def test_split_guard(teachers: dict[str, Path]) -> None:
    task = DistillTask(teacher=str(teachers["classification"]))
    teacher_split = split_digest(blocks(0.0))
    assert teacher_split is not None
    task.teacher_data = data_metadata(teacher_split)

    attach(task, fake_datamodule(blocks(0.0), list(S2_BANDS)))
    task.on_fit_start()  # same split: fine
    assert task.data_metadata is not None
    assert task.data_metadata.split == teacher_split

    attach(task, fake_datamodule(blocks(5.0), list(S2_BANDS)))
    with pytest.raises(ValueError, match="split") as error:
        task.on_fit_start()
    assert teacher_split in str(error.value)
    assert str(split_digest(blocks(5.0))) in str(error.value)

    # A teacher that does not know its split cannot be checked.
    task.teacher_data = data_metadata(None)
    task.on_fit_start()


def test_band_guard(teachers: dict[str, Path]) -> None:
    task = DistillTask(teacher=str(teachers["classification"]))
    reordered = [*S2_BANDS[1:], S2_BANDS[0]]
    attach(task, fake_datamodule(blocks(0.0), reordered))
    with pytest.raises(ValueError, match="bands") as error:
        task.on_fit_start()
    assert str(list(S2_BANDS)) in str(error.value)
    assert str(reordered) in str(error.value)


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_patch_size_guard(teachers: dict[str, Path], problem: str) -> None:
    task = DistillTask(teacher=str(teachers[problem]))
    task.teacher_data = replace(data_metadata(None), patch_size=2 * SIZE)
    attach(task, fake_datamodule(blocks(0.0), list(S2_BANDS)))
    if problem == "segmentation":  # a per-pixel teacher maps any patch size
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            task.on_fit_start()
        return
    with pytest.warns(UserWarning, match="patch_size") as record:
        task.on_fit_start()
    assert f"{2 * SIZE}-px patches but the student gets {SIZE}-px" in str(
        record[0].message
    )


def test_a_student_records_the_labels_behind_it(teachers: dict[str, Path]) -> None:
    tenth = {"label_fraction": 0.1, "label_seed": 0, "n_labels": 5}
    hundredth = {"label_fraction": 0.01, "label_seed": 0, "n_labels": 2}
    task = DistillTask(teacher=str(teachers["classification"]))
    task.teacher_labels = tenth
    # Distillation alone learns only through the teacher.
    assert task.labels_behind(hundredth) == tenth
    task = DistillTask(teacher=str(teachers["classification"]), alpha=0.5)
    task.teacher_labels = tenth
    assert task.labels_behind(dict(tenth)) == tenth
    with pytest.warns(UserWarning, match=r"label_fraction 0\.1 .* uses label_fraction"):
        assert task.labels_behind(hundredth) == hundredth


@pytest.mark.usefixtures("terminal_signals")  # it checks the Ctrl-C handler
def test_fresh_process_timer_times_checkpoints_as_predict_loads_them(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    task = channels_last_student(teachers)
    task.data_metadata = data_metadata()
    student = save(task, tmp_path / "student.ckpt")
    handler = signal.getsignal(signal.SIGINT)
    with FreshProcessTimer() as timer:
        assert timer.pool is None  # no process until something is timed
        speed = timer({"student": student, "teacher": teachers["classification"]}, SIZE)
        assert timer.pool is not None
        # Ctrl-C reaches the whole process group; the worker leaves it to us
        # (a traceback of its own would bury the experiment's message).
        ignored = timer.pool.submit(signal.getsignal, signal.SIGINT).result()
        assert ignored == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is handler  # ours again
    assert set(speed) == {"student", "teacher"}
    assert all(0 < value < math.inf for value in speed.values())
