"""A fine-tuned or distilled checkpoint, ready to predict maps window by window."""

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchgeo.tasks import BaseTask

from ..digest import file_digest
from ..inference.normalise import normalise
from ..models.checkpoint import DataMetadata, load_model
from ..models.classifier import IrrigationModel
from .input_check import BandMeans, warn_if_unlike
from .normalisation import standardise, warn_if_raw

#: Batches mapped before the imagery's band means are first compared with the
#: training statistics (see :meth:`MapPredictionTask.predict_step`): early
#: enough to warn before most of a large map is made, late enough to span
#: more than one window.
CHECK_AFTER = 4

#: Pixels with data needed before that comparison; until then it is tried
#: again after twice, four times, ... :data:`CHECK_AFTER` batches (and at the
#: last one), so that counting them waits on the device only that often.
CHECK_PIXELS = 4 * 256 * 256


def check_due(batches: int) -> bool:
    """Whether the band means are compared after *batches* batches.

    Args:
        batches: batches mapped so far, this one included.

    Returns:
        True after :data:`CHECK_AFTER` times a power of two batches (4, 8,
        16, ...).
    """
    rounds, rest = divmod(batches, CHECK_AFTER)
    return rest == 0 and rounds > 0 and rounds & (rounds - 1) == 0


class MapPredictionTask(BaseTask):
    """Probability of irrigation for each window of a :class:`MapDataModule`.

    Loads any ``finetune`` or ``distill`` checkpoint of this package (the
    network is rebuilt from the checkpoint alone), normalises the windows with
    the training statistics stored there, and returns per-pixel probabilities
    (segmentation) or one probability per window (classification) with the
    pixels that had data.
    """

    #: Hyperparameters left out of the checkpoint: none.
    ignore = None

    #: The irrigation network.
    model: IrrigationModel

    #: Per-band training mean ``[1, C, 1, 1]``, reflectance x10000 (a buffer).
    mean: Tensor
    #: Per-band training standard deviation ``[1, C, 1, 1]``, reflectance x10000
    #: (a buffer).
    std: Tensor

    def __init__(self, checkpoint: str | Path) -> None:
        """Initialise a new MapPredictionTask.

        Args:
            checkpoint: a fine-tuned or distilled ``.ckpt`` file.
        """
        super().__init__()

    def configure_models(self) -> None:
        """Rebuild the network and read what it was trained on."""
        path = Path(self.hparams["checkpoint"])
        with ThreadPoolExecutor(max_workers=1) as hashing:
            # hashlib releases the GIL: the checkpoint is hashed while it loads.
            digest = hashing.submit(file_digest, path)
            trained = load_model(path)
        if trained.data is None:
            msg = (
                f"Checkpoint {str(path)!r} records no band list or normalisation "
                "statistics; retrain it with this version of torchgeo-simclr."
            )
            raise ValueError(msg)
        self.model = trained.model
        # Segmentation runs channels-last whatever it was trained in: on a
        # 2-core CPU, U-Nets on seven backbones ran 1.03x to 1.40x faster on
        # 256 px windows, and maps of the sample scene came 30% sooner.
        # Classifiers keep their checkpoint's order (ModelSpec.channels_last):
        # ResNet-18 ran 0.8x as fast channels-last on 48 px patches.
        if self.problem == "segmentation":
            self.model.use_memory_format(torch.channels_last)
        #: ``finetune`` or ``distill``.
        self.kind = trained.kind
        #: Bands, statistics and patch size of the training data.
        self.data: DataMetadata = trained.data
        #: The threshold the model was scored with.
        self.threshold = trained.threshold
        #: How its training labels were drawn (None if unrecorded).
        self.training_labels = trained.labels
        #: The checkpoints it was built from, with their SHA-256.
        self.built_from = trained.built_from
        #: Its scores on its validation blocks (None if unrecorded).
        self.val_scores = trained.val_scores
        #: SHA-256 of the checkpoint file.
        self.checkpoint_sha256 = digest.result()
        self.register_buffer("mean", torch.tensor(self.data.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(self.data.std).view(1, -1, 1, 1))

    @property
    def memory_format(self) -> torch.memory_format:
        """Memory order the network runs in (weights and windows)."""
        return self.model.memory_format

    @property
    def problem(self) -> str:
        """``classification`` or ``segmentation``."""
        return self.model.spec.problem

    def check_windows(self, bands: list[str], patch_size: int) -> None:
        """Check that windows of *bands* and *patch_size* suit the model.

        Args:
            bands: the bands a datamodule reads, in order.
            patch_size: its window side, pixels.

        Raises:
            ValueError: if the bands differ from the training bands, a
                classification model gets windows of another size than its
                training patches, or a U-Net windows smaller than its encoder's
                output stride (its deepest features would be under one pixel).

        Warns:
            UserWarning: for U-Net windows smaller than its training patches:
                each sees less of the fields around its pixels, so the map
                differs from one made with larger windows.
        """
        checkpoint = self.hparams["checkpoint"]
        if list(bands) != list(self.data.bands):
            msg = (
                f"Checkpoint {str(checkpoint)!r} was trained on bands "
                f"{list(self.data.bands)} but the imagery is read as {list(bands)}; "
                "read the same bands in the same order (--data.init_args.bands)."
            )
            raise ValueError(msg)
        trained = self.data.patch_size
        if self.problem == "classification" and patch_size != trained:
            msg = (
                f"patch_size={patch_size} differs from the {trained}-pixel patches "
                f"the classification model of {str(checkpoint)!r} was trained on, "
                f"so its scores would not mean the same; pass {trained}."
            )
            raise ValueError(msg)
        if self.model.unet is None:
            return
        encoder: Any = self.model.unet.encoder  # segmentation_models_pytorch's
        stride = int(encoder.output_stride)
        if patch_size < stride:
            msg = (
                f"patch_size={patch_size} is smaller than the {stride} px by which "
                f"the encoder of {str(checkpoint)!r} shrinks a window, so its "
                "deepest features would cover less than one pixel; pass at least "
                f"{max(stride, trained)} (the training patches were {trained} px)."
            )
            raise ValueError(msg)
        if patch_size < trained:
            warnings.warn(
                f"patch_size={patch_size} is smaller than the {trained} px patches "
                f"the model of {str(checkpoint)!r} was trained on, so each pixel "
                "is classified with less of its surroundings than in training and "
                f"the map differs from one made with larger windows; pass {trained} "
                "or more.",
                UserWarning,
                stacklevel=2,
            )

    def normalise(self, image: Tensor) -> Tensor:
        """Standardise reflectance with the checkpoint's training statistics.

        :meth:`predict_step` does this itself; call it to run :meth:`forward`
        in your own code.

        Args:
            image: reflectance x10000 (0 = nodata), ``[B, C, H, W]`` or
                ``[C, H, W]``, in the training band order.

        Returns:
            A new float32 tensor of *image*'s shape, 0 where any band has no
            data.

        Raises:
            ValueError: for an image of another shape or number of bands.
        """
        return standardise(image, self.data)

    def forward(self, image: Tensor) -> Tensor:
        """Score standardised windows (:meth:`predict_step` takes reflectance).

        Args:
            image: ``[B, C, H, W]`` standardised with :meth:`normalise`; a
                batch that looks like raw reflectance gets a
                :class:`~torchgeo_simclr.tasks.normalisation.RawInputWarning`.

        Returns:
            Logits of irrigated (``torch.sigmoid`` gives the probability):
            ``[B]`` per window (classification) or ``[B, H, W]`` per pixel
            (segmentation).
        """
        warn_if_raw(self, image)
        logits: Tensor = self.model(image)
        return logits

    def on_predict_start(self) -> None:
        """Check the datamodule's bands and window size against the model."""
        self._start_imagery_check()
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "bands"):
            self.check_windows(list(datamodule.bands), int(datamodule.patch_size))

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Predict the probability of irrigation under each window.

        Args:
            batch: ``image`` ``[B, C, h, w]`` reflectance x10000 (0 = nodata),
                optionally ``row`` and ``col`` ``[B]`` of each window on the
                grid (a :class:`MapDataModule`'s batches carry them) and
                ``valid`` ``[B, h, w]``, the pixels with data (found from the
                image when absent).
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            ``probability`` ``[B, h, w]`` in [0, 1] (one value repeated over
            the window for classification), ``valid`` ``[B, h, w]`` (False
            where any band is nodata), and ``row`` and ``col`` as given.

        Warns:
            UserWarning: once per map, when the band means of the pixels with
                data mapped so far lie more than
                :data:`~torchgeo_simclr.tasks.input_check.FAR_STD` training
                standard deviations from the training means (imagery with the
                +1000 offset, reflectance 0 to 1, bands in another order).
                They are compared once, at the first batch that
                :func:`check_due` names (or the last one) with
                :data:`CHECK_PIXELS` pixels with data mapped, or at the last
                batch with fewer; later batches are not added.
        """
        x, valid = normalise(
            batch["image"], self.mean, self.std, batch.get("valid"), fill=True
        )
        self._check_imagery(batch["image"], valid, batch_idx, dataloader_idx)
        probability = torch.sigmoid(self.model(x).float())
        if probability.ndim == 1:
            probability = probability.view(-1, 1, 1).expand_as(valid)
        grid: dict[str, Tensor] = {k: batch[k] for k in ("row", "col") if k in batch}
        return {"probability": probability, "valid": valid, **grid}

    def _start_imagery_check(self) -> None:
        """Forget the band means of an earlier map (see :meth:`_check_imagery`)."""
        #: Per-band sums of the pixels with data mapped so far.
        self._band_means = BandMeans()
        #: Whether the imagery's band means were compared with the training
        #: statistics, with enough pixels or at the last batch; no batch is
        #: added after.
        self._compared = False

    def _check_imagery(
        self, image: Tensor, valid: Tensor, batch_idx: int, dataloader_idx: int
    ) -> None:
        """Compare the band means mapped so far with the training statistics.

        See :meth:`predict_step`. Adding a batch waits for nothing on the
        device; each batch :func:`check_due` names (and the last) copies
        ``C + 1`` numbers to the host; once compared, batches are no longer
        added.

        Args:
            image: ``[B, C, h, w]`` reflectance x10000.
            valid: ``[B, h, w]`` pixels with data.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.
        """
        if not hasattr(self, "_band_means"):  # predict_step outside a Trainer
            self._start_imagery_check()
        if self._compared:
            return
        self._band_means.add(image, valid)
        batches = (
            self._trainer.num_predict_batches[dataloader_idx]
            if self._trainer is not None and self._trainer.num_predict_batches
            else float("inf")
        )
        last = batch_idx + 1 >= batches
        if not last and not check_due(batch_idx + 1):
            return
        means, pixels = self._band_means.means()
        if not pixels or (pixels < CHECK_PIXELS and not last):
            return
        self._compared = True
        source = f"checkpoint {str(self.hparams['checkpoint'])!r}"
        warn_if_unlike(means, self.data, source)

    def model_info(self) -> dict[str, Any]:
        """What a map records about the model that made it.

        Returns:
            Model name, kind, problem, checkpoint path and hash, bands, training
            patch size, the sensing dates of the imagery it was trained on
            (``training_imagery_dates``, None where unrecorded), how the
            training labels were drawn, its scores on its
            validation blocks (``val_scores``, None if unrecorded) and the
            checkpoints it was built from (``built_from``: the SimCLR encoder or
            the teacher, with their SHA-256).
        """
        return {
            "model": self.model.spec.model,
            "kind": self.kind,
            "problem": self.problem,
            "checkpoint": str(Path(self.hparams["checkpoint"]).resolve()),
            "checkpoint_sha256": self.checkpoint_sha256,
            "bands": list(self.data.bands),
            "training_patch_size": self.data.patch_size,
            "training_imagery_dates": None
            if self.data.imagery_dates is None
            else list(self.data.imagery_dates),
            "training_labels": self.training_labels,
            "val_scores": self.val_scores,
            "built_from": self.built_from,
        }
