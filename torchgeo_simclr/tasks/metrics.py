"""Binary metrics of the irrigated class, and logging them with F1 on the bar."""

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAUROC

from ..constants import IGNORE_INDEX


class DefinedAUROC(BinaryAUROC):
    """torchmetrics' binary AUROC, NaN where the targets hold one class only.

    AUROC is undefined without both classes; torchmetrics then returns 0 with
    a warning, which reads as a model that ranks every patch backwards (e.g.
    ``test_auroc 0.0`` on a test set of one irrigated patch).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Initialise the metric; arguments as :class:`BinaryAUROC`'s."""
        super().__init__(*args, **kwargs)
        self.classes: Tensor
        #: Labelled targets seen of class 0 and of class 1, ``[2]``.
        self.add_state(
            "classes", default=torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Update the AUROC's state and count the labelled targets by class.

        Args:
            preds: probabilities, any shape.
            target: 0, 1 or the ignore index, the shape of *preds*.
        """
        super().update(preds, target)
        self.classes += torch.stack([(target == 0).sum(), (target == 1).sum()])

    def compute(self) -> Tensor:  # type: ignore[override]  # as BinaryAUROC's
        """AUROC over the epoch, or NaN when one class is missing.

        Returns:
            A scalar.
        """
        if bool((self.classes == 0).any()):
            return torch.tensor(float("nan"), device=self.classes.device)
        return super().compute()


class LabelledCount(Metric):
    """How many labelled targets (patches, or pixels per pixel) were scored."""

    #: The count never decreases with better predictions.
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        """Initialise the count at 0; keyword arguments as :class:`Metric`'s."""
        super().__init__(**kwargs)
        self.count: Tensor
        self.add_state(
            "count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Count the targets that are not the ignore index.

        Args:
            preds: probabilities (unused).
            target: 0, 1 or the ignore index.
        """
        self.count += (target != IGNORE_INDEX).sum()

    def compute(self) -> Tensor:
        """The count over the epoch.

        Returns:
            A scalar (float, as Lightning logs it).
        """
        return self.count.float()


def log_metrics(
    module: LightningModule, metrics: MetricCollection, batch_size: int
) -> None:
    """Log each metric of an updated collection; F1 scores also on the bar.

    Args:
        module: the task logging them.
        metrics: the collection, updated with this batch; names carry their
            stage prefix, e.g. ``val_f1``.
        batch_size: patches in the batch, for the epoch average.
    """
    for name, metric in metrics.items():
        module.log(name, metric, batch_size=batch_size, prog_bar=name.endswith("f1"))


def validation_scores(module: LightningModule) -> dict[str, Any]:
    """The scores of a validation epoch just ended, for its checkpoint.

    Args:
        module: a task with ``val_metrics``, at the end of a validation epoch
            (before Lightning resets them).

    Returns:
        ``epoch`` and ``step`` (the training epoch and optimiser step
        validated after), then each metric, e.g. ``val_f1`` (NaN where it is
        undefined, as for AUROC on one class) and ``val_labelled`` (the
        patches, or pixels, the scores rest on).
    """
    metrics: MetricCollection = module.val_metrics  # type: ignore[assignment]
    return {
        "epoch": module.current_epoch,
        "step": module.global_step,
        **{name: float(metric.compute()) for name, metric in metrics.items()},
    }
