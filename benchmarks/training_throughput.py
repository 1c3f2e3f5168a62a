"""Training throughput of the quickstart ``fit`` against its pure compute.

Measures, interleaved in one run:

* fit: images/s of a real ``Trainer.fit`` on the quickstart config (data loading
  from GeoTIFF + labels, transfer, normalisation, two augmented views, forward,
  NT-Xent, backward, optimiser step), timed between training batches after a
  warm-up;
* pure: images/s of the same model's forward + NT-Xent + backward + optimiser step
  on random views already in memory (what training would cost if data were free).

An "image" is one source patch, which yields two views. The ratio fit / pure is the
share of a step left to the model: 0.85 means data loading and augmentation cost
15% of a step.

    python benchmarks/training_throughput.py --root data/sample
"""

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from machine import describe
from torchgeo.datamodules import BaseDataModule
from torchgeo.tasks import BaseTask

from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.tasks import SimCLRv2Task

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "simclr_quickstart.yaml"


class StepTimer(Callback):
    """Record the wall-clock time at the end of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter())


def fit_rate(cli: LightningCLI, warmup: int, steps: int) -> float:
    timer = StepTimer()
    trainer = Trainer(
        max_steps=warmup + steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(cli.model, cli.datamodule)
    times = timer.times[warmup - 1 :]
    batch_size: int = cli.datamodule.batch_size
    return batch_size * (len(times) - 1) / (times[-1] - times[0])


def load_rate(dm: Any, steps: int) -> float:
    """Patches/s the training dataloader alone delivers (reading + collation)."""
    loader = iter(dm.train_dataloader())
    next(loader)
    start = time.perf_counter()
    for _ in range(steps):
        next(loader)
    return float(dm.batch_size * steps / (time.perf_counter() - start))


def augment_rate(dm: Any, steps: int) -> float:
    """Patches/s of normalisation + two augmented views on a loaded batch."""
    batch = next(iter(dm.train_dataloader()))
    dm.train_aug(dict(batch))
    start = time.perf_counter()
    for _ in range(steps):
        dm.train_aug(dict(batch))
    return float(dm.batch_size * steps / (time.perf_counter() - start))


def pure_rate(
    model: SimCLRv2Task, shape: tuple[int, ...], warmup: int, steps: int
) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    views = torch.randn(2, *shape)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss, _ = model._contrastive_step({"views": views})
        torch.autograd.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    return shape[0] * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/sample", help="sample scene directory")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-workers", type=int, default=None)
    args = parser.parse_args()

    root = Path(args.root)
    if not (root / "crop_mapping.gpkg").exists():
        make_sample_scene(root)
    overrides = ["--config", args.config, "--data.init_args.root", str(root)]
    if args.num_workers is not None:
        overrides += ["--data.init_args.num_workers", str(args.num_workers)]
    cli = LightningCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=overrides,
    )
    model: LightningModule = cli.model
    assert isinstance(model, SimCLRv2Task)
    dm = cli.datamodule
    shape = (dm.batch_size, len(dm.bands), dm.patch_size, dm.patch_size)

    fit_rates, pure_rates = [], []
    for _ in range(args.rounds):
        fit_rates.append(fit_rate(cli, args.warmup, args.steps))
        pure_rates.append(pure_rate(model, shape, args.warmup, args.steps))
        print(f"round: fit {fit_rates[-1]:.1f} img/s, pure {pure_rates[-1]:.1f} img/s")

    fit_median, pure_median = (
        statistics.median(fit_rates),
        statistics.median(pure_rates),
    )
    print(describe())
    print(f"data loader workers: {dm.num_workers}")
    print(f"model {model.hparams['model']}, batch {shape[0]} x 2 views of {shape[1:]}")
    print(f"fit  (median of {args.rounds}): {fit_median:8.1f} img/s")
    print(f"pure (median of {args.rounds}): {pure_median:8.1f} img/s")
    print(f"fit / pure: {fit_median / pure_median:.2f} (target >= 0.85)")
    # Where the rest goes: each stage alone, in the same units.
    print(f"data loading alone: {load_rate(dm, args.steps):8.1f} img/s")
    print(f"augmentation alone: {augment_rate(dm, args.steps):8.1f} img/s")


if __name__ == "__main__":
    main()
