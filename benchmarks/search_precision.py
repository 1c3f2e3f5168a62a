"""Does search by example find irrigated land? Precision@k against two baselines.

Embeds every patch of a scene twice: with a SimCLRv2 checkpoint and with the same
backbone at random weights (same statistics, a copy of the checkpoint with the
backbone re-initialised). Labels each patch irrigated / not by the majority of
its DWR pixels. Then, for many irrigated query patches drawn at random (seeded),
searches each index for the k most similar patches, leaving out the query and
every patch that shares pixels with it, and scores the share of irrigated hits
among the labelled ones. Prints the mean precision@k of both encoders beside the
irrigated share of the labelled patches, the precision a blind pick would get.

    python benchmarks/search_precision.py \
        --checkpoint runs/simclr_quickstart/checkpoints/last.ckpt --root data/sample
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from machine import describe

from torchgeo_simclr.constants import IGNORE_INDEX, IRRIGATED
from torchgeo_simclr.embeddings import embed_region, load_index, top_k
from torchgeo_simclr.embeddings.projection import patch_majority_labels
from torchgeo_simclr.embeddings.search import EmbeddingIndex, overlapping
from torchgeo_simclr.models.backbone import create_backbone
from torchgeo_simclr.models.checkpoint import read_checkpoint


def random_weights(checkpoint: Path, out: Path, seed: int) -> Path:
    """A copy of *checkpoint* whose backbone has fresh random weights."""
    state, meta = read_checkpoint(checkpoint, ["simclr"])
    torch.manual_seed(seed)
    backbone = create_backbone(meta["model"], in_channels=meta["in_channels"])
    fresh = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["state_dict"] = {**state["state_dict"], **fresh}
    torch.save(state, out)
    return out


def precision_at_k(
    index: EmbeddingIndex,
    labels: npt.NDArray[np.int64],
    queries: npt.NDArray[np.int64],
    k: int,
) -> npt.NDArray[np.float64]:
    """Share of irrigated hits among the labelled top-k hits of each query."""
    scores = []
    for row in queries:
        near = overlapping(index, index.bounds[[row]], index.crs)
        hits, _ = top_k(index.matrix, index.matrix[row], k, exclude=near)
        known = labels[hits][labels[hits] != IGNORE_INDEX]
        scores.append(float((known == IRRIGATED).mean()) if len(known) else np.nan)
    return np.array(scores)


def main() -> None:
    """Print precision@k of the pretrained and random encoders, and the share."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument("--labels", default="crop_mapping.gpkg")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(describe())
    labels_path = args.root / args.labels
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        encoders = {
            "SimCLRv2 (pretrained)": args.checkpoint,
            "random weights": random_weights(
                args.checkpoint, folder / "random.ckpt", args.seed
            ),
        }
        indexes = {}
        for name, checkpoint in encoders.items():
            out = folder / f"{checkpoint.stem}.parquet"
            embed_region(checkpoint, args.root, out, progress=False)
            indexes[name] = load_index(out)
        first = next(iter(indexes.values()))
        labels = patch_majority_labels(first.info, first.table, labels_path)
    labelled = labels != IGNORE_INDEX
    share = float((labels[labelled] == IRRIGATED).mean())
    candidates = np.flatnonzero(labels == IRRIGATED)
    rng = np.random.default_rng(args.seed)
    queries = rng.choice(candidates, min(args.queries, len(candidates)), replace=False)
    print(
        f"{len(labels)} patches of {first.info.patch_size} px, {labelled.sum()} "
        f"labelled, {len(queries)} irrigated queries (seed {args.seed}), k={args.k}"
    )
    print(f"{'encoder':<24}{f'precision@{args.k}':>14}{'sd over queries':>17}")
    scores = {}
    for name, index in indexes.items():
        scores[name] = precision_at_k(index, labels, queries, args.k)
        mean, sd = np.nanmean(scores[name]), np.nanstd(scores[name])
        print(f"{name:<24}{mean:>14.3f}{sd:>17.3f}")
    print(f"{'irrigated share':<24}{share:>14.3f}")
    pretrained, random = scores.values()
    gain = pretrained - random
    error = np.nanstd(gain) / np.sqrt(np.isfinite(gain).sum())
    print(
        f"pretrained - random, same queries: {np.nanmean(gain):+.3f} "
        f"(standard error {error:.3f}); better on {(gain > 0).sum()}, worse on "
        f"{(gain < 0).sum()} of {len(gain)} queries"
    )


if __name__ == "__main__":
    main()
