"""Linear-probe label efficiency over many labelled subsets, in about a minute.

A fine-tuning run costs about a minute, so ``torchgeo-simclr experiment``
averages over 3 to 5 labelled subsets, and with 11 labels the subset moves F1
more than the method does. A logistic regression on frozen features costs
milliseconds. This script therefore draws many subsets per label fraction and
reports the mean test F1 with its standard error. The draws are the
experiment's own: nested and class-balanced, draw *s* is ``label_seed`` *s*, so
draws 0-2 are the experiment's seeds 0-2. Three feature sets are compared:

- ``simclr``: the checkpoint's pooled backbone features (512 for ResNet-18);
- ``random``: the same backbone with random weights (seeded);
- ``band stats``: each band's mean and standard deviation over the patch (24
  numbers, no network), a spectral baseline.

The classifier is an L2-regularised logistic regression (``C`` = 0.1) on
features standardised on the labelled subset, or with ``--classifier
centroid`` the nearest class mean by cosine on features centred on the
labelled subset and scaled to unit length (no fitting), scored at 0.5 on the
labelled patches of the test blocks (block seed 0, the experiment's split).
The table gives the paired gap of ``simclr`` over ``random`` (same subsets).
The plot puts F1 against the number of labelled patches, with a 95% band
(±1.96 standard errors), and marks the F1 that "everything irrigated" scores.

    python benchmarks/linear_probe_curve.py \
        --checkpoint runs/simclr_quickstart/checkpoints/last.ckpt --root data/sample \
        --fractions 0.01 0.03 0.1 1 --draws 30 --plot docs/experiment/linear_probe.png
"""

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from machine import describe
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from torchgeo_simclr.datamodules.fractions import nested_balanced_subset
from torchgeo_simclr.models import create_backbone
from torchgeo_simclr.models.checkpoint import load_encoder
from torchgeo_simclr.probe import embed_split, probe_datamodule

#: Colour of each feature set in the plot.
COLOURS = {"simclr": "tab:blue", "random": "tab:orange", "band stats": "tab:gray"}

#: What each line of the plot is.
LEGEND = {
    "simclr": "SimCLRv2 encoder (frozen)",
    "random": "same backbone, random weights",
    "band stats": "per-band mean and sd (no network)",
}


class BandStatistics(nn.Module):
    """Per-band mean and standard deviation of each patch: ``[B, 2C]``."""

    def forward(self, x: Tensor) -> Tensor:
        """Pool *x* ``[B, C, H, W]`` to ``[B, 2C]``."""
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def standard_error(values: list[float]) -> float:
    """Standard error of the mean of *values* (0 for a single value)."""
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0


def centroid_probe(
    train: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    test: npt.NDArray[np.float32],
) -> npt.NDArray[np.float64]:
    """Nearest class mean by cosine; a score in (0, 1) for *test*, 0.5 the boundary.

    Features are centred on the labelled patches' mean and scaled to unit
    length (SimpleShot, Wang et al. 2019); the score is a logistic of the
    cosine to the irrigated mean minus the cosine to the other.
    """
    centre = train.mean(axis=0)

    def unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        shifted = (x - centre).astype(np.float64)
        return shifted / np.maximum(
            np.linalg.norm(shifted, axis=1, keepdims=True), 1e-12
        )

    reference, query = unit(train), unit(test)
    margin = query @ reference[labels == 1].mean(axis=0)
    margin -= query @ reference[labels == 0].mean(axis=0)
    scores: npt.NDArray[np.float64] = 1 / (1 + np.exp(-10 * margin))
    return scores


def probe(
    train: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    test: npt.NDArray[np.float32],
) -> npt.NDArray[np.float64]:
    """Fit a logistic regression on *train*; irrigated probabilities of *test*."""
    scaler = StandardScaler().fit(train)
    model = LogisticRegression(C=0.1, max_iter=5000).fit(
        scaler.transform(train), labels
    )
    probabilities: npt.NDArray[np.float64] = model.predict_proba(
        scaler.transform(test)
    )[:, 1]
    return probabilities


def plot(
    curves: dict[str, dict[int, list[float]]],
    everything: float,
    path: Path,
    classifier: str = "logistic regression",
) -> None:
    """F1 against labelled patches (log x), mean with a 95% band per feature set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, by_labels in curves.items():
        counts = sorted(by_labels)
        means = np.array([statistics.mean(by_labels[n]) for n in counts])
        errors = np.array([standard_error(by_labels[n]) for n in counts])
        colour = COLOURS[name]
        ax.plot(counts, means, marker="o", color=colour, label=LEGEND[name])
        ax.fill_between(
            counts,
            means - 1.96 * errors,
            means + 1.96 * errors,
            color=colour,
            alpha=0.2,
        )
    ax.axhline(everything, color="black", linestyle="--", linewidth=1)
    ax.annotate(
        f'"everything irrigated" F1 {everything:.2f}',
        (0.02, everything),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(0, 4),
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_xlabel("labelled training patches")
    ax.set_ylabel(f"test F1 (irrigated), {classifier}")
    ax.set_title("Probe on frozen features: mean over labelled subsets, 95% band")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(temporary, dpi=120)
    plt.close(fig)
    os.replace(temporary, path)


def main() -> None:
    """Embed the train and test patches once, probe every subset, print, plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.03, 0.1, 1.0]
    )
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument(
        "--classifier",
        choices=["logistic", "centroid"],
        default="logistic",
        help="logistic regression, or the nearest class mean by cosine",
    )
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()

    print(describe())
    encoder = load_encoder(args.checkpoint)
    assert encoder.data is not None
    datamodule = probe_datamodule(encoder.data, str(args.root))
    torch.manual_seed(0)
    encoders: dict[str, nn.Module] = {
        "simclr": encoder.backbone,
        "random": create_backbone(encoder.model, len(encoder.data.bands)).eval(),
        "band stats": BandStatistics(),
    }
    features = {}
    for name, network in encoders.items():
        reference, train_labels = embed_split(
            network, datamodule, "train", progress=False
        )
        query, test_labels = embed_split(network, datamodule, "test", progress=False)
        features[name] = (reference.numpy(), query.numpy())
    labels, targets = train_labels, test_labels.numpy()
    share = float(targets.mean())
    everything = 2 * share / (1 + share)
    print(
        f"{args.checkpoint}: {len(labels)} labelled train patches, {len(targets)} "
        f"test patches ({share:.0%} irrigated; 'everything irrigated' scores F1 "
        f"{everything:.3f})"
    )

    curves: dict[str, dict[int, list[float]]] = {name: {} for name in encoders}
    print(
        "| fraction | labelled patches | draws | features | F1 mean (SE) | AUROC mean "
        "| F1 - random, paired (SE) |"
    )
    print("|---|---|---|---|---|---|---|")
    classify = probe if args.classifier == "logistic" else centroid_probe
    for fraction in args.fractions:
        draws = args.draws if fraction < 1 else 1
        subsets = [
            nested_balanced_subset(labels, fraction, seed).numpy()
            for seed in range(draws)
        ]
        n = len(subsets[0])
        f1: dict[str, list[float]] = {}
        auroc: dict[str, list[float]] = {}
        for name, (train, test) in features.items():
            f1[name], auroc[name] = [], []
            for subset in subsets:
                probabilities = classify(train[subset], labels.numpy()[subset], test)
                f1[name].append(float(f1_score(targets, probabilities > 0.5)))
                auroc[name].append(float(roc_auc_score(targets, probabilities)))
            curves[name][n] = f1[name]
        for name in features:
            gaps = [a - b for a, b in zip(f1[name], f1["random"], strict=True)]
            gap = (
                ""
                if name == "random"
                else f"{statistics.mean(gaps):+.3f} ({standard_error(gaps):.3f})"
            )
            print(
                f"| {fraction:g} | {n} | {draws} | {name} | "
                f"{statistics.mean(f1[name]):.3f} ({standard_error(f1[name]):.3f}) | "
                f"{statistics.mean(auroc[name]):.3f} | {gap} |"
            )
    if args.plot is not None:
        names = {"logistic": "logistic regression", "centroid": "nearest class mean"}
        plot(curves, everything, args.plot, names[args.classifier])
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
