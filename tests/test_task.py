from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import quiet_trainer
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim import SGD
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
from torch.utils.data import DataLoader, Dataset

from torchgeo_simclr.tasks import SimCLRv2Task
from torchgeo_simclr.tasks.schedule import WarmupCosine

BATCH, BANDS, SIZE = 4, 12, 16


class RandomViews(Dataset[dict[str, torch.Tensor]]):
    """Batches as the datamodule delivers them after transfer: two views."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        image = torch.randn(BANDS, SIZE, SIZE, generator=generator)
        noise = 0.1 * torch.randn(2, BANDS, SIZE, SIZE, generator=generator)
        return {"views": image + noise, "mask": torch.ones(SIZE, SIZE).long()}


def loader() -> DataLoader[dict[str, torch.Tensor]]:
    def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        views = torch.stack([s["views"] for s in samples], dim=1)
        return {"views": views, "mask": torch.stack([s["mask"] for s in samples])}

    return DataLoader(RandomViews(), batch_size=BATCH, collate_fn=collate)


class LearningRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, *args: object
    ) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(task: SimCLRv2Task, steps: int) -> LearningRates:
    rates = LearningRates()
    trainer = quiet_trainer(steps, callbacks=[rates])
    trainer.fit(task, train_dataloaders=loader())
    return rates


@pytest.mark.parametrize("optimizer", ["adam", "lars", "sgd"])
def test_warm_up_then_cosine_decay(optimizer: str) -> None:
    task = SimCLRv2Task(
        model="resnet18", optimizer=optimizer, lr=0.1, warmup_fraction=0.25
    )
    rates = fit(task, steps=8).rates
    assert rates[0] == pytest.approx(1e-4)  # lr x 1e-3 at the first step
    assert max(rates) == pytest.approx(0.1)
    assert rates.index(max(rates)) == 2  # end of the 2-step warm-up
    assert rates[-1] < 0.02  # cosine towards 0 by the last step
    assert type(task.optimizers().optimizer).__name__.lower() == optimizer


def test_resumed_run_with_more_steps_follows_the_longer_schedule(
    tmp_path: Path,
) -> None:
    # 4 steps at 10% warm-up have none; 12 steps have one: the saved schedule
    # once had another structure and resuming raised KeyError '_schedulers'.
    torch.manual_seed(0)
    short = quiet_trainer(4)
    short.fit(SimCLRv2Task(model="resnet18", warmup_fraction=0.1), loader())
    short.save_checkpoint(tmp_path / "short.ckpt")
    resumed = LearningRates()
    task = SimCLRv2Task(model="resnet18", warmup_fraction=0.1)
    longer = quiet_trainer(12, callbacks=[resumed])
    longer.fit(task, loader(), ckpt_path=tmp_path / "short.ckpt")
    fresh = fit(SimCLRv2Task(model="resnet18", warmup_fraction=0.1), steps=12)
    assert resumed.rates == pytest.approx(fresh.rates[4:])
    assert resumed.rates[-1] > 0  # not stopped at the end of the 4-step decay


def test_resume_reads_the_step_of_an_older_chained_schedule() -> None:
    model = torch.nn.Linear(2, 1)
    before = SGD(model.parameters(), lr=0.1)
    warmup = LinearLR(before, start_factor=1e-3, total_iters=2)
    old = SequentialLR(
        before, [warmup, CosineAnnealingLR(before, T_max=8)], milestones=[2]
    )
    for _ in range(3):
        before.step()
        old.step()
    optimizer = SGD(model.parameters(), lr=0.1)
    scheduler = WarmupCosine(optimizer, total_steps=10, warmup_steps=2)
    scheduler.load_state_dict(old.state_dict())
    assert scheduler.last_epoch == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * scheduler.factor(3))


def test_probe_learns_at_its_own_rate() -> None:
    task = SimCLRv2Task(model="resnet18", lr=0.1, probe_lr=0.5, warmup_fraction=0.25)
    fit(task, steps=4)
    encoder, probe = task.optimizers().optimizer.param_groups
    assert probe["params"] == list(task.probe.parameters())
    assert len(encoder["params"]) + 2 == len(list(task.parameters()))
    # The same step of the schedule: 5 times the encoder's rate.
    assert probe["lr"] == pytest.approx(5 * encoder["lr"])


def test_memory_bank_keeps_past_projections() -> None:
    task = SimCLRv2Task(model="resnet18", memory_bank_size=8, output_dim=16)
    fit(task, steps=2)
    bank = task.criterion.memory_bank.bank
    assert bank.shape == (8, 16)  # 8 past projections of 16 values
    assert bank.abs().sum() > 0


def test_probe_never_changes_the_encoder() -> None:
    torch.manual_seed(0)
    task = SimCLRv2Task(model="resnet18")
    batch = next(iter(loader()))

    def backbone_grads(with_mask: bool) -> list[torch.Tensor]:
        task.zero_grad()
        step = batch if with_mask else {"views": batch["views"]}
        task.training_step(step, 0).backward()
        return [p.grad.clone() for p in task.backbone.parameters()]

    task.train()
    torch.manual_seed(1)
    without = backbone_grads(False)
    torch.manual_seed(1)
    with_probe = backbone_grads(True)
    assert all(torch.allclose(a, b) for a, b in zip(with_probe, without, strict=True))
    assert task.probe.weight.grad is not None


def test_probe_learns_the_labels_of_the_view_it_sees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The probe is fed the first view's features; after a zoom or shift the
    # first view's majority class can differ from the patch's.
    torch.manual_seed(0)
    task = SimCLRv2Task(model="resnet18")
    task.train()
    batch = next(iter(loader()))
    batch["view_masks"] = torch.stack([1 - batch["mask"], batch["mask"]])
    _, h = task._contrastive_step(batch)
    logits = task.probe(h.detach())
    first_view = F.cross_entropy(logits, torch.zeros(BATCH, dtype=torch.long))
    unaugmented = F.cross_entropy(logits, torch.ones(BATCH, dtype=torch.long))
    logged: dict[str, torch.Tensor] = {}
    monkeypatch.setattr(
        task, "log", lambda name, value, **_: logged.update({name: value})
    )
    task.training_step(batch, 0)
    assert logged["train_probe_loss"].item() == pytest.approx(first_view.item())
    assert first_view.item() != pytest.approx(unaugmented.item())


def test_wrong_band_count_is_named() -> None:
    task = SimCLRv2Task(model="resnet18", in_channels=12)
    views = torch.randn(2, BATCH, 4, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"in_channels=12.*4 bands"):
        task.training_step({"views": views}, 0)
    with pytest.raises(KeyError, match="views"):
        task.training_step({"image": views[0]}, 0)
