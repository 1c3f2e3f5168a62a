"""Batches normalised as the network was trained: the checkpoint's statistics."""

import warnings

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from ..datamodules.augment import use_statistics
from ..inference.normalise import normalise
from ..models.checkpoint import DataMetadata
from .input_check import warn_if_unlike
from .provenance import restored_from, upper_first

#: A batch whose mean lies further than this from 0 is not standardised:
#: standardised bands have mean 0 and standard deviation 1 over the training
#: data, while reflectance x10000 averages hundreds to thousands.
RAW_MEAN = 50.0


class RawInputWarning(UserWarning):
    """A network outside a Trainer got reflectance, not standardised inputs."""


def _is_exporting() -> bool:
    """Whether torch.export is tracing; torch < 2.6 has no such query.

    Returns:
        ``torch.compiler.is_exporting()``; False where torch lacks it (a
        task's ``forward`` then still works; what ``is_compiling`` reports
        is skipped all the same).
    """
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting()) if is_exporting is not None else False


def warn_if_raw(task: LightningModule, image: Tensor) -> None:
    """Warn when a network used outside a Trainer gets unstandardised inputs.

    Under a Trainer the datamodule standardises every batch, so nothing is
    checked there (the check would cost a device synchronisation per step);
    nor while a network is compiled, exported or its FLOPs counted, where
    inputs have no values to check.
    In a user's own code, a batch straight from the dataset (reflectance
    x10000) gives plausible but wrong probabilities, so it is named.

    Args:
        task: the task whose network runs.
        image: its input ``[B, C, H, W]``.
    """
    if (
        task._trainer is not None
        or not image.is_floating_point()
        or image.is_meta  # counting FLOPs: no values
        or torch.compiler.is_compiling()  # torch.compile, torch.export
        or _is_exporting()
    ):
        return
    mean = float(image.mean())
    if abs(mean) > RAW_MEAN:
        warnings.warn(
            f"{type(task).__name__} got a batch of mean {mean:.0f}, which looks "
            "like reflectance x10000 as the dataset returns it, not the "
            "standardised input (mean 0, standard deviation 1) the network was "
            "trained on, so its outputs are wrong; standardise it first with "
            "task.normalise(image).",
            RawInputWarning,
            stacklevel=2,
        )


def standardise(image: Tensor, data: DataMetadata) -> Tensor:
    """Standardise reflectance with the statistics of a network's training data.

    Args:
        image: reflectance x10000 (0 = nodata), ``[B, C, H, W]`` or
            ``[C, H, W]``, in the network's band order.
        data: what the network was trained on.

    Returns:
        A new float32 tensor of *image*'s shape: ``(image - mean) / std`` per
        band, 0 where any band has no data.

    Raises:
        ValueError: for an image of another shape or number of bands.
    """
    if image.ndim == 3:
        return standardise(image.unsqueeze(0), data).squeeze(0)
    if image.ndim != 4 or image.shape[1] != len(data.bands):
        msg = (
            f"normalise() takes [B, C, H, W] or [C, H, W] with C = "
            f"{len(data.bands)} bands {list(data.bands)}, got shape "
            f"{list(image.shape)}; read the image with those bands."
        )
        raise ValueError(msg)
    shape = (1, -1, 1, 1)
    mean = torch.tensor(data.mean, device=image.device).view(shape)
    std = torch.tensor(data.std, device=image.device).view(shape)
    return normalise(image.float(), mean, std)[0]


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

    def trained_on(self) -> tuple[str, DataMetadata] | None:
        """The statistics this network's inputs are normalised with.

        Returns:
            What to call their source in messages and the data: the network's
            own (:attr:`data_metadata`) when set, else :meth:`earlier_stage`'s;
            None for a network that starts from nothing and has not been fit.
        """
        if self.data_metadata is not None:
            source = restored_from(self.trainer) if self._trainer is not None else None
            return source or "its training data", self.data_metadata
        return self.earlier_stage()

    def normalise(self, image: Tensor) -> Tensor:
        """Standardise reflectance as this network's training batches were.

        Under a Trainer the datamodule does this to every batch. Call it to run
        the network on patches in your own code, e.g.
        ``task(task.normalise(sample["image"]))``.

        Args:
            image: reflectance x10000 as
                :class:`~torchgeo_simclr.datasets.CentralValleyS2` returns it
                (0 = nodata), ``[B, C, H, W]`` or ``[C, H, W]``, in the
                network's band order.

        Returns:
            A new float32 tensor of *image*'s shape: ``(image - mean) / std``
            per band with the training statistics, 0 where any band has no
            data.

        Raises:
            ValueError: for a network that has no statistics yet (not fit and
                not started from a checkpoint), or an image with another
                number of bands.
        """
        if (trained := self.trained_on()) is None:
            msg = (
                f"This {type(self).__name__} has no band statistics to normalise "
                "with: it was neither fit nor built from a checkpoint; load one "
                f"with {type(self).__name__}.load_from_checkpoint(path)."
            )
            raise ValueError(msg)
        return standardise(image, trained[1])

    def normalise_as_trained(self) -> None:
        """Make the datamodule normalise with this network's statistics.

        Uses :attr:`data_metadata` when set, else :meth:`earlier_stage`'s, and
        says so when that changes the datamodule's normalisation. The
        datamodule's own statistics, of its data, are compared with them
        first: a band whose mean lies far from the training mean (see
        :func:`~torchgeo_simclr.tasks.input_check.unlike_training`) is warned
        about, as imagery with ESA's +1000 offset left in would be.

        Raises:
            ValueError: if the datamodule's bands differ from those the
                statistics belong to.

        Warns:
            UserWarning: when the data's band means lie far from the
                statistics', naming the bands and the likely causes.
        """
        if (trained := self.trained_on()) is None:
            return
        source, data = trained
        datamodule = getattr(self.trainer, "datamodule", None)
        bands = getattr(datamodule, "bands", None)
        if bands is not None and tuple(bands) != data.bands:
            msg = (
                f"{upper_first(source)} was trained on bands "
                f"{list(data.bands)} but the datamodule delivers {list(bands)}; set "
                "--data.init_args.bands to those bands, in that order."
            )
            raise ValueError(msg)
        own = getattr(datamodule, "mean", None)
        if own is not None and len(own) == len(data.mean):
            warn_if_unlike(torch.as_tensor(own).tolist(), data, source)
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
