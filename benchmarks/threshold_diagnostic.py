"""Is the 1% gap a threshold problem? F1 of experiment runs at other thresholds.

For the fine-tuned and supervised runs of an experiment (``torchgeo-simclr
experiment``), scores the test patches with each run's final weights and prints,
per seed: AUROC, F1 at 0.5, F1 after adjusting the outputs to the irrigated
share of the unlabelled training patches estimated by EM (Saerens et al., 2002,
which needs no extra labels), and F1 at the best of 19 thresholds chosen on the
test patches themselves (an upper bound no user could reach, for diagnosis only).
The last columns are the irrigated shares of the labelled subset (the prior the
model learnt), of the training pool as EM estimates it, and of the pool's own
labels (every labelled patch of the train blocks' grid).

    python benchmarks/threshold_diagnostic.py --runs runs/experiment/runs \
        --root data/sample --fraction 0.01 --seeds 0 1 2
"""

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchgeo.datasets.utils import stack_samples
from torchmetrics.functional.classification import binary_auroc, binary_f1_score

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datamodules.fractions import PatchDataset, grid_patch_labels
from torchgeo_simclr.patch_labels import patch_labels
from torchgeo_simclr.tasks import FineTuneTask

#: The runs compared, as named in the experiment's ``runs/`` directory.
METHODS = ("simclr", "supervised")


def scores(
    model: nn.Module,
    datamodule: CentralValleyDataModule,
    data: Dataset[dict[str, Tensor]],
) -> tuple[Tensor, Tensor]:
    """Probabilities and patch labels ``[N]`` of every patch of *data*."""
    probabilities, labels = [], []
    loader = DataLoader(data, batch_size=64, collate_fn=stack_samples)
    for sample in loader:
        batch = datamodule.aug({"image": sample["image"].float()})
        with torch.no_grad():
            probabilities.append(torch.sigmoid(model(batch["image"])))
        labels.append(patch_labels(sample["mask"]))
    return torch.cat(probabilities), torch.cat(labels)


def shift_prior(p: Tensor, prior: float, target: float) -> Tensor:
    """Bayes-adjust probabilities from a training *prior* to a *target* prior."""
    up = target / prior * p
    return up / (up + (1 - target) / (1 - prior) * (1 - p))


def em_prior(p: Tensor, prior: float, iterations: int = 100) -> float:
    """Irrigated share of unlabelled patches that makes the adjusted mean agree."""
    target = prior
    for _ in range(iterations):
        target = float(shift_prior(p, prior, target).mean())
    return target


def main() -> None:
    """Print the per-seed table and the means per method."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/experiment/runs"))
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument("--fraction", default="0.01")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    thresholds = torch.linspace(0.05, 0.95, 19)
    totals: dict[str, Tensor] = {m: torch.zeros(4) for m in METHODS}
    print(
        f"{'method':<12}{'seed':>5}{'AUROC':>8}{'F1@0.5':>8}{'F1 EM':>8}"
        f"{'F1 best':>9}{'subset':>8}{'EM share':>10}{'pool share':>11}"
    )
    for seed in args.seeds:
        datamodule = CentralValleyDataModule(
            root=args.root,
            labels="crop_mapping.gpkg",
            patch_size=48,
            block_size=256,
            label_fraction=float(args.fraction),
            label_seed=seed,
            unlabeled=True,
            in_memory=True,
        )
        datamodule.setup("fit")
        pool, test = datamodule.train_dataset, datamodule.test_dataset
        assert isinstance(pool, PatchDataset)
        assert pool.labelled is not None
        assert test is not None
        labelled = pool.labelled
        assert datamodule.dataset is not None
        # The pool's masks outside the labelled subset are blanked, so the
        # share of the whole pool comes from the train grid's own labels.
        grid = grid_patch_labels(
            datamodule.dataset,
            list(datamodule.grid_sampler("train")),
            min_labelled=datamodule.min_labelled,
        )
        true_share = float((grid[grid != IGNORE_INDEX] == 1).float().mean())
        for method in METHODS:
            path = (
                args.runs / f"{method}_f{args.fraction}_s{seed}/checkpoints/last.ckpt"
            )
            model = FineTuneTask.load_from_checkpoint(path, map_location="cpu").model
            model.eval()
            p_test, y_test = scores(model, datamodule, test)
            p_pool, y_pool = scores(model, datamodule, pool)
            keep = y_test != IGNORE_INDEX
            p_test, y_test = p_test[keep], y_test[keep]
            prior = float((y_pool[labelled] == 1).float().mean())
            share = em_prior(p_pool, prior)
            row = torch.tensor(
                [
                    float(binary_auroc(p_test, y_test)),
                    float(binary_f1_score(p_test, y_test)),
                    float(binary_f1_score(shift_prior(p_test, prior, share), y_test)),
                    max(
                        float(binary_f1_score(p_test, y_test, threshold=float(t)))
                        for t in thresholds
                    ),
                ]
            )
            totals[method] += row / len(args.seeds)
            cells = "".join(f"{v:>8.3f}" for v in row[:3])
            print(
                f"{method:<12}{seed:>5}{cells}{row[3]:>9.3f}{prior:>8.2f}"
                f"{share:>10.2f}{true_share:>11.2f}"
            )
    for method in METHODS:
        cells = "".join(f"{v:>8.3f}" for v in totals[method][:3])
        print(f"{method:<12}{'mean':>5}{cells}{totals[method][3]:>9.3f}")


if __name__ == "__main__":
    main()
