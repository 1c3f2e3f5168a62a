"""Batches normalised as the network was trained: the checkpoint's statistics."""

from lightning.pytorch import LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from ..datamodules.augment import use_statistics
from ..models.checkpoint import DataMetadata
from .provenance import restored_from, upper_first


class NormalisedAsTrained(LightningModule):
    """Give the datamodule the band statistics the network was trained with.

    A network only works on inputs normalised as in its training, but a
    datamodule computes statistics from its own sample of patches, which
    changes with ``stats_patches``, ``bbox`` or ``seed``. So ``validate``,
    ``test`` and ``predict`` from a checkpoint normalise with the
    checkpoint's statistics, a resumed fit with those it started with, and a
    stage that starts from an earlier one (fine-tuning from SimCLR,
    distilling from a teacher) with the earlier stage's. Subclasses call
    :meth:`normalise_as_trained` first thing in ``on_fit_start``.
    """

    #: The data the network was trained on: set when fitting starts, read
    #: back from a checkpoint; None for a network not trained yet.
    data_metadata: DataMetadata | None

    def earlier_stage(self) -> tuple[str, DataMetadata] | None:
        """The checkpoint a fresh fit starts from, and the data it was trained on.

        Returns:
            What to call it in messages (e.g. ``"teacher 'x.ckpt'"``) and its
            data; None here (a stage that starts from nothing).
        """
        return None

    def normalise_as_trained(self) -> None:
        """Make the datamodule normalise with this network's statistics.

        Uses :attr:`data_metadata` when set, else :meth:`earlier_stage`'s, and
        says so when that changes the datamodule's normalisation.

        Raises:
            ValueError: if the datamodule's bands differ from those the
                statistics belong to.
        """
        if self.data_metadata is not None:
            source = restored_from(self.trainer) or "its training data"
            data = self.data_metadata
        elif (earlier := self.earlier_stage()) is not None:
            source, data = earlier
        else:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        bands = getattr(datamodule, "bands", None)
        if bands is not None and tuple(bands) != data.bands:
            msg = (
                f"{upper_first(source)} was trained on bands "
                f"{list(data.bands)} but the datamodule delivers {list(bands)}; set "
                "--data.init_args.bands to those bands, in that order."
            )
            raise ValueError(msg)
        if use_statistics(datamodule, data.mean, data.std):
            rank_zero_info(
                f"Normalising batches with the band statistics of {source}, not "
                "those computed from the data, so the network sees its inputs as "
                "in training."
            )

    def _normalise_when_evaluating(self) -> None:
        if self.trainer.state.fn != TrainerFn.FITTING:
            self.normalise_as_trained()

    def on_validation_start(self) -> None:
        """Normalise as trained when validating a checkpoint (not during fit)."""
        self._normalise_when_evaluating()

    def on_test_start(self) -> None:
        """Normalise as trained before testing."""
        self._normalise_when_evaluating()

    def on_predict_start(self) -> None:
        """Normalise as trained before predicting."""
        self._normalise_when_evaluating()
