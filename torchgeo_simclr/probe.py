"""kNN probe: how well do an encoder's embeddings separate irrigated patches?"""

import warnings
from dataclasses import dataclass
from datetime import date

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchgeo.datasets import stack_samples
from tqdm import tqdm

from .constants import IGNORE_INDEX
from .datamodules import CentralValleyDataModule
from .datamodules.augment import BatchAugmentation
from .datasets.dwr import DWR_CLASS_COLUMN
from .models.checkpoint import DataMetadata
from .patch_labels import patch_labels


@dataclass(frozen=True)
class ProbeResult:
    """Patch-level scores of a kNN classifier on embeddings."""

    #: Fraction of test patches classified correctly.
    accuracy: float
    #: Mean of the recall on irrigated and on not-irrigated patches.
    balanced_accuracy: float
    #: F1 score of the irrigated class.
    f1: float
    #: Number of labelled reference (train-block) patches.
    n_reference: int
    #: Number of labelled val- and test-block patches scored.
    n_test: int


def probe_datamodule(
    data: DataMetadata,
    root: str,
    labels: str = "crop_mapping.gpkg",
    block_size: int = 256,
    seed: int = 0,
    class_column: str = DWR_CLASS_COLUMN,
    start: date | str | None = None,
    end: date | str | None = None,
    class_map: dict[str, int] | None = None,
) -> CentralValleyDataModule:
    """A labelled datamodule that feeds patches the way an encoder was trained.

    Args:
        data: the encoder's bands, normalisation statistics and patch size.
        root: imagery directory.
        labels: DWR label file, relative to *root*.
        block_size: side of the blocks dealt to train / val / test, pixels.
        seed: seed of the spatial split.
        class_column: attribute of *labels* holding the crop class code.
        start: first sensing day read, inclusive (``YYYY-MM-DD``; default: no
            limit).
        end: last sensing day read, inclusive (default: no limit).
        class_map: class code -> mask value (0 not irrigated, 1 irrigated, 255
            ignored): overrides of the DWR defaults for a DWR class column,
            the whole map for your own *class_column* (required there), e.g.
            ``{"S": 1, "N": 0}``.

    Returns:
        The datamodule, set up for ``fit``, normalising with *data*'s
        statistics and drawing no augmented views.
    """
    datamodule = CentralValleyDataModule(
        root=root,
        labels=labels,
        class_column=class_column,
        class_map=class_map,
        bands=list(data.bands),
        patch_size=data.patch_size,
        block_size=block_size,
        seed=seed,
        num_views=0,
        start=start,
        end=end,
    )
    datamodule.setup("fit")
    datamodule.aug = BatchAugmentation(torch.tensor(data.mean), torch.tensor(data.std))
    return datamodule


@torch.no_grad()
def embed_split(
    backbone: nn.Module,
    datamodule: CentralValleyDataModule,
    split: str,
    batch_size: int = 128,
    progress: bool = True,
    encoder: str = "",
) -> tuple[Tensor, Tensor]:
    """Embed every grid patch of a split and label it.

    Args:
        backbone: maps normalised ``[B, C, H, W]`` to ``[B, D]``.
        datamodule: a set-up datamodule with labels.
        split: ``train``, ``val`` or ``test``; the patches of a grid over the
            split's blocks (the same patches on every call).
        batch_size: patches per forward pass.
        progress: show a progress bar while it runs (cleared when done).
        encoder: which encoder this is, for the progress bar, e.g. ``"random
            weights"``.

    Returns:
        Embeddings ``[N, D]`` and patch labels ``[N]`` of the labelled patches.
    """
    backbone.eval()
    sampler = datamodule.grid_sampler(split)
    loader = DataLoader(
        datamodule.dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=stack_samples,
    )
    features, labels = [], []
    desc = f"embed {split}" + (f" ({encoder})" if encoder else "")
    # leave=False: a finished bar is cleared, not left as a line (an empty one
    # where the terminal reports no width) between the split and the table.
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        batch = datamodule.aug(batch)
        features.append(backbone(batch["image"]).float())
        labels.append(patch_labels(batch["mask"]))
    embeddings, targets = torch.cat(features), torch.cat(labels)
    keep = targets != IGNORE_INDEX
    return embeddings[keep], targets[keep]


def knn_classify(
    reference: Tensor, reference_labels: Tensor, query: Tensor, k: int = 20
) -> Tensor:
    """Classify by a majority vote of the *k* most cosine-similar references.

    Args:
        reference: ``[N, D]`` embeddings with known labels.
        reference_labels: ``[N]`` labels in {0, 1}.
        query: ``[M, D]`` embeddings to classify.
        k: neighbours that vote.

    Returns:
        ``[M]`` predicted labels.
    """
    similarity = F.normalize(query, dim=1) @ F.normalize(reference, dim=1).T
    neighbours = similarity.topk(min(k, reference.shape[0]), dim=1).indices
    votes = reference_labels[neighbours].float().mean(dim=1)
    return (votes > 0.5).long()


def score(predictions: Tensor, targets: Tensor) -> tuple[float, float, float]:
    """Accuracy, balanced accuracy and irrigated-class F1.

    Args:
        predictions: ``[M]`` in {0, 1}.
        targets: ``[M]`` in {0, 1}.

    Returns:
        ``(accuracy, balanced_accuracy, f1)``.
    """
    tp = ((predictions == 1) & (targets == 1)).sum().item()
    tn = ((predictions == 0) & (targets == 0)).sum().item()
    fp = ((predictions == 1) & (targets == 0)).sum().item()
    fn = ((predictions == 0) & (targets == 1)).sum().item()
    accuracy = (tp + tn) / max(tp + tn + fp + fn, 1)
    recall_pos = tp / max(tp + fn, 1)
    recall_neg = tn / max(tn + fp, 1)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    return accuracy, (recall_pos + recall_neg) / 2, f1


def _warn_if_too_few(reference_labels: Tensor, targets: Tensor, k: int) -> None:
    """Warn when the probe's scores cannot mean much.

    With fewer labelled reference patches than *k*, every query gets the
    majority vote of all of them; with one class among the references or the
    queries, accuracy and F1 say nothing about the features.
    """
    problems = []
    if len(reference_labels) < k:
        problems.append(
            f"k={k} but only {len(reference_labels)} labelled reference patches"
        )
    for name, labels in (("reference", reference_labels), ("query", targets)):
        if int(labels.min()) == int(labels.max()):
            kind = "irrigated" if int(labels[0]) == 1 else "not irrigated"
            problems.append(f"every {name} patch is {kind}")
    if problems:
        msg = (
            f"The kNN probe's scores are not meaningful: {'; '.join(problems)}; "
            "pass labels that cover more of the imagery (--labels), a larger "
            "region, or a smaller --block-size or --k."
        )
        warnings.warn(msg, UserWarning, stacklevel=3)


def knn_probe(
    backbone: nn.Module,
    datamodule: CentralValleyDataModule,
    k: int = 20,
    progress: bool = True,
    encoder: str = "",
) -> ProbeResult:
    """Fit kNN on train-block patches, score it on val- and test-block patches.

    Val and test blocks both lie apart from the train blocks and neither was
    used to choose anything here, so both serve as queries (more patches, a
    steadier score).

    Args:
        backbone: maps normalised ``[B, C, H, W]`` to ``[B, D]``.
        datamodule: a set-up datamodule with labels.
        k: neighbours that vote.
        progress: show progress bars.
        encoder: which encoder this is, for the progress bars.

    Returns:
        The scores over the val and test blocks.

    Raises:
        ValueError: if the train, or the val and test, blocks hold no
            labelled patch.
    """
    reference, reference_labels = embed_split(
        backbone, datamodule, "train", progress=progress, encoder=encoder
    )
    queries = [
        embed_split(backbone, datamodule, s, progress=progress, encoder=encoder)
        for s in ("val", "test")
    ]
    query = torch.cat([q for q, _ in queries])
    targets = torch.cat([t for _, t in queries])
    if len(reference_labels) == 0 or len(targets) == 0:
        msg = (
            f"The labels give {len(reference_labels)} labelled patches in the train "
            f"blocks and {len(targets)} in the val and test blocks (a patch needs at "
            "least half its pixels labelled), so the probe has nothing to "
            + ("learn from" if len(reference_labels) == 0 else "score")
            + "; pass labels that cover the imagery (--labels) or a smaller "
            "--block-size."
        )
        raise ValueError(msg)
    _warn_if_too_few(reference_labels, targets, k)
    predictions = knn_classify(reference, reference_labels, query, k)
    accuracy, balanced, f1 = score(predictions, targets)
    return ProbeResult(accuracy, balanced, f1, len(reference_labels), len(targets))
