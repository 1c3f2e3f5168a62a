"""Logging a collection of metrics, with the F1 score on the progress bar."""

from lightning.pytorch import LightningModule
from torchmetrics import MetricCollection


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
