"""Fine-tuning recipes at one label fraction, chosen on validation, scored on test.

Fine-tunes the experiment's SimCLRv2 encoder at *fraction* with several recipes,
and trains the supervised baseline, for each seed (the seed also draws the
labelled subset, as in ``torchgeo-simclr experiment``). Every run is scored with
its final weights on the validation blocks and on the test blocks. The recipe a
user would pick is the one with the best mean validation F1; its test F1 is the
honest figure. Recipes (overrides of ``conf/finetune_quickstart.yaml``):

- ``default``: the quickstart config as it is;
- ``backbone_lr``: the pretrained stages at a 3x lower learning rate (3e-4);
- ``lp_ft``: linear probing, then fine-tuning (Kumar et al., ICLR 2022): the
  pretrained stages stay frozen, BatchNorm statistics included, for the first
  third of the steps, then train at 3e-4;
- ``frozen_bn``: as ``backbone_lr``, with the pretrained BatchNorm statistics
  kept (its layers stay in eval mode; their scales and shifts still train);
- ``head_layers_0`` and ``head_layers_2``: as ``backbone_lr``, with the
  classifier on the backbone's features or on two projection-head blocks;
- ``l2sp_0.01`` and ``l2sp_0.1``: as ``backbone_lr``, plus L2-SP (Li et al.,
  ICML 2018): alpha / 2 x the squared distance of the pretrained stages'
  weights from their pretrained values is added to the loss.

The first three run by default; ``--recipes`` picks others.

    python benchmarks/finetune_recipes.py \
        --checkpoint runs/experiment/runs/pretrain.ckpt --root data/sample \
        --fraction 0.01 --seeds 0 1 2 3 4
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from machine import describe
from torch import Tensor, nn

from torchgeo_simclr.lightning_cli import run_cli
from torchgeo_simclr.tasks import FineTuneTask

#: Extra LightningCLI arguments of each fine-tuning recipe.
RECIPES: dict[str, list[str]] = {
    "default": [],
    "backbone_lr": ["--model.init_args.backbone_lr", "3e-4"],
    "lp_ft": [
        "--model.class_path",
        "__main__.ProbeThenFineTune",
        "--model.init_args.backbone_lr",
        "3e-4",
    ],
    "frozen_bn": [
        "--model.class_path",
        "__main__.FrozenBatchNorm",
        "--model.init_args.backbone_lr",
        "3e-4",
    ],
    "head_layers_0": [
        "--model.init_args.head_layers",
        "0",
        "--model.init_args.backbone_lr",
        "3e-4",
    ],
    "head_layers_2": [
        "--model.init_args.head_layers",
        "2",
        "--model.init_args.backbone_lr",
        "3e-4",
    ],
    "l2sp_0.01": [
        "--model.class_path",
        "__main__.L2SP",
        "--model.init_args.backbone_lr",
        "3e-4",
        "--model.init_args.alpha",
        "0.01",
    ],
    "l2sp_0.1": [
        "--model.class_path",
        "__main__.L2SP",
        "--model.init_args.backbone_lr",
        "3e-4",
        "--model.init_args.alpha",
        "0.1",
    ],
}

#: Recipes run when ``--recipes`` is not given.
DEFAULT_RECIPES = ("default", "backbone_lr", "lp_ft")


class ProbeThenFineTune(FineTuneTask):
    """Fine-tuning whose pretrained stages stay frozen for the first steps."""

    def __init__(self, *args: Any, probe_fraction: float = 1 / 3, **kwargs: Any):
        """Initialise; *probe_fraction* of the steps train only the new layers."""
        super().__init__(*args, **kwargs)
        self.probing = False

    def _freeze_pretrained(self, frozen: bool) -> None:
        for stage in self.model.stages():
            stage.requires_grad_(not frozen).train(not frozen)
        self.probing = frozen

    def on_train_start(self) -> None:
        """Start with the pretrained stages frozen."""
        self._freeze_pretrained(True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Unfreeze once the probing steps are done; keep BN fixed until then."""
        steps = self.trainer.estimated_stepping_batches
        if self.probing and self.global_step >= steps * self.hparams["probe_fraction"]:
            self._freeze_pretrained(False)
        elif self.probing:
            for stage in self.model.stages():
                stage.eval()


class FrozenBatchNorm(FineTuneTask):
    """Fine-tuning that keeps the pretrained BatchNorm statistics."""

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Put the pretrained BatchNorm layers back in eval mode."""
        for stage in self.model.stages():
            for module in stage.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()


class L2SP(FineTuneTask):
    """Fine-tuning that pulls the pretrained stages towards their start (L2-SP)."""

    def __init__(self, *args: Any, alpha: float = 0.01, **kwargs: Any):
        """Initialise; *alpha* weighs the squared distance from the start."""
        super().__init__(*args, **kwargs)
        self.start = [
            p.detach().clone()
            for stage in self.model.stages()
            for p in stage.parameters()
        ]

    def on_fit_start(self) -> None:
        """Check the data as usual; keep the start on the training device."""
        super().on_fit_start()
        self.start = [p0.to(self.device) for p0 in self.start]

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """The fine-tuning loss plus alpha / 2 x the squared distance."""
        loss = super().training_step(batch, batch_idx, dataloader_idx)
        current = [p for stage in self.model.stages() for p in stage.parameters()]
        distance = torch.stack(
            [((p - p0) ** 2).sum() for p, p0 in zip(current, self.start, strict=True)]
        ).sum()
        penalty: Tensor = self.hparams["alpha"] / 2 * distance
        return loss + penalty


def score(config: str, arguments: list[str], run_dir: Path) -> tuple[float, float]:
    """Fit one run and return its final weights' validation and test F1."""
    checkpoints = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(run_dir / "checkpoints"), "save_last": True},
    }
    cli = run_cli(
        [
            "--config",
            config,
            *arguments,
            "--trainer.default_root_dir",
            str(run_dir),
            "--trainer.callbacks",
            json.dumps([checkpoints]),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--trainer.check_val_every_n_epoch",
            "1000",
            "--trainer.num_sanity_val_steps",
            "0",
        ]
    )
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    val = trainer.validate(model, datamodule=data, verbose=False)[0]["val_f1"]
    test = trainer.test(model, datamodule=data, verbose=False)[0]["test_f1"]
    return float(val), float(test)


def main() -> None:
    """Run every recipe and the supervised baseline for every seed; print tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--recipes", nargs="+", choices=list(RECIPES), default=list(DEFAULT_RECIPES)
    )
    args = parser.parse_args()

    print(describe())
    runs: dict[str, tuple[str, list[str]]] = {
        "supervised": ("conf/supervised_quickstart.yaml", [])
    } | {
        name: (
            "conf/finetune_quickstart.yaml",
            ["--model.init_args.checkpoint", str(args.checkpoint), *extra],
        )
        for name, extra in RECIPES.items()
        if name in args.recipes
    }
    f1: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, extra) in runs.items():
            for seed in args.seeds:
                common = [
                    "--data.init_args.root",
                    str(args.root),
                    "--seed_everything",
                    str(seed),
                    "--data.init_args.label_fraction",
                    str(args.fraction),
                    "--data.init_args.label_seed",
                    str(seed),
                ]
                val, test = score(config, common + extra, Path(tmp) / f"{name}_{seed}")
                f1[name].append((val, test))
                print(f"{name} seed {seed}: val F1 {val:.3f}, test F1 {test:.3f}")

    baseline = [test for _, test in f1["supervised"]]
    print(f"\nfraction {args.fraction:g}, seeds {args.seeds}")
    print("| recipe | val F1 mean | test F1 mean | test F1 - supervised (SE) |")
    print("|---|---|---|---|")
    for name, scores in f1.items():
        tests = [t for _, t in scores]
        gaps = [t - b for t, b in zip(tests, baseline, strict=True)]
        se = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else 0.0
        gap = "" if name == "supervised" else f"{statistics.mean(gaps):+.3f} ({se:.3f})"
        val = statistics.mean(v for v, _ in scores)
        print(f"| {name} | {val:.3f} | {statistics.mean(tests):.3f} | {gap} |")
    chosen = max(args.recipes, key=lambda name: statistics.mean(v for v, _ in f1[name]))
    print(f"validation picks: {chosen}")


if __name__ == "__main__":
    main()
