"""What fine-tuning and distillation share: metrics, prediction, checkpoints."""

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor
from torch.nn import BatchNorm1d
from torch.optim import AdamW
from torchgeo.tasks import BaseTask
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)

from ..constants import IGNORE_INDEX
from ..losses import binary_loss
from ..models.backbone import check_input_size
from ..models.checkpoint import CHECKPOINT_KEY, DataMetadata, training_labels
from ..models.classifier import IrrigationModel, ModelSpec
from ..patch_labels import patch_labels
from ..software import PARENT_KEYS, global_seed, parent_digests, software_record
from .checkpoint_note import CheckpointNote
from .dev_run import no_checkpoint_in_dev_run
from .metrics import DefinedAUROC, LabelledCount, log_metrics, validation_scores
from .normalisation import NormalisedAsTrained, warn_if_raw
from .provenance import check_devices, check_resume, restored_from, split_warning
from .schedule import warmup_cosine


class StandInWarning(UserWarning):
    """A task builds a stand-in network: its earlier stage's checkpoint is gone."""


def expect_frozen_modules() -> None:
    """Silence Lightning's warning about modules in eval mode when training starts.

    A frozen teacher or frozen pretrained stages stay in eval mode on purpose
    (their BatchNorm statistics must not move), so the warning would only
    alarm users. Call it from ``on_fit_start`` of a run that freezes a part.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"Found \d+ module\(s\) in eval mode at the start of training",
        category=PossibleUserWarning,
    )


def fit_may_resume(trainer: Trainer) -> bool:
    """Whether a fit that has not set up its data yet may restore a checkpoint.

    Lightning sets ``trainer.ckpt_path`` only once the data are set up. Before
    that, a fit that a LightningCLI runs (``torchgeo fit``) shows its
    ``--ckpt_path`` in the config its
    :class:`~lightning.pytorch.cli.SaveConfigCallback` holds.

    Args:
        trainer: the trainer about to fit.

    Returns:
        False when the fit starts afresh (a LightningCLI's fit without
        ``--ckpt_path``); True when it restores a checkpoint, or when that is
        not known yet (a fit run from Python, or a ``fast_dev_run``, which a
        LightningCLI gives no SaveConfigCallback).
    """
    callbacks: list[Callback] = getattr(trainer, "callbacks", [])  # set at run time
    for callback in callbacks:
        if isinstance(callback, SaveConfigCallback):
            return bool(callback.config.get("ckpt_path"))
    return True


class IrrigationTask(NormalisedAsTrained, BaseTask):
    """Base of the tasks whose :attr:`model` is an :class:`IrrigationModel`.

    Subclasses build :attr:`model` in ``configure_models`` and define
    ``training_step``. This class scores irrigated / not irrigated with F1,
    precision, recall, accuracy and AUROC on val and test (per patch for
    classification, per labelled pixel for segmentation), returns
    probabilities from ``predict_step``, and stores in the checkpoint what is
    needed to rebuild the model without any other file.
    """

    #: Metric that Lightning callbacks and schedulers should watch.
    monitor = "val_f1"

    #: Higher F1 is better.
    mode = "max"

    #: Hyperparameters left out of the checkpoint: none.
    ignore = None

    #: The network being trained.
    model: IrrigationModel

    #: Checkpoint kind written by this task.
    kind = "irrigation"

    #: Options read only by :meth:`configure_optimizers` (those a subclass
    #: takes), which LightningCLI's ``--optimizer`` replaces.
    optimiser_options: tuple[str, ...] = (
        "lr",
        "backbone_lr",
        "weight_decay",
        "warmup_fraction",
    )

    def __init__(self) -> None:
        """Initialise the task (hyperparameters come from the subclass)."""
        #: The data the network was trained on: set when fitting starts, read
        #: back from a checkpoint; None for a network not trained yet.
        self.data_metadata: DataMetadata | None = None
        #: How the training labels were drawn (see
        #: :func:`~torchgeo_simclr.models.checkpoint.training_labels`).
        self.training_labels: dict[str, Any] | None = None
        #: SHA-256 of the parent checkpoints as a restored checkpoint records
        #: them (``pretrained_from_sha256``, ``teacher_sha256``); empty when
        #: none was restored, and then hashed when a checkpoint is saved.
        self.parent_digests: dict[str, str] = {}
        #: Devices (DDP ranks) a restored checkpoint was trained on; None
        #: when none was restored or it does not record them.
        self.trained_devices: int | None = None
        #: Why the network was built without the earlier stage's checkpoint
        #: (the file is gone), None when it was not; see :meth:`build_without`.
        self.missing_checkpoint: str | None = None
        #: Whether Lightning restored a checkpoint into this task.
        self.restored = False
        #: Whether this validation or test epoch has scored a labelled batch.
        self.scored = False
        #: The last validation's scores (see :func:`validation_scores`), as
        #: saved with the weights; None before any.
        self.val_scores: dict[str, Any] | None = None
        super().__init__()

    def build_without(self, missing: str, runs: str) -> None:
        """Note that the earlier stage's checkpoint is gone, and warn.

        The task then builds a stand-in network, which only a restored
        checkpoint (``--ckpt_path``) can replace: :meth:`on_load_checkpoint`
        rebuilds it as recorded, and every other run is refused when it
        starts (a fit under a LightningCLI before it sets up its data, see
        :meth:`prepare_data`).

        Args:
            missing: one sentence naming the missing file and what to pass.
            runs: the runs that can do without it, e.g. ``"test, validate,
                predict"``.
        """
        self.missing_checkpoint = missing
        warnings.warn(
            f"{missing} The network is built without it: {runs} with a "
            "checkpoint of this stage (--ckpt_path) can use it; any other run "
            "stops when it starts.",
            StandInWarning,
            stacklevel=2,
        )

    def check_built(self) -> None:
        """Refuse to run a stand-in network (see :meth:`build_without`).

        Raises:
            FileNotFoundError: if the earlier stage's checkpoint was missing
                and no checkpoint of this stage was restored in its place.
        """
        if self.missing_checkpoint is not None and not self.restored:
            msg = (
                f"{self.missing_checkpoint} (Or restore a checkpoint of this "
                "stage with --ckpt_path.)"
            )
            raise FileNotFoundError(msg)

    def check_fit(self, resumes: bool) -> None:
        """Refuse to fit a stand-in network (see :meth:`build_without`).

        Args:
            resumes: whether the fit restores (or may restore) a checkpoint of
                this stage (``--ckpt_path``), whose network replaces the
                stand-in.

        Raises:
            FileNotFoundError: if the earlier stage's checkpoint was missing
                and the fit does not resume.
        """
        if not resumes:
            self.check_built()

    def prepare_data(self) -> None:
        """Refuse a fit that would stop when it starts, before the data are set up.

        Lightning calls this before any ``setup``, so a fit of a stand-in
        network (see :meth:`build_without`) stops here, not in
        :meth:`on_fit_start` after the datamodule has drawn its labelled
        subset and cut its spatial split (minutes at full scale). Whether the
        fit resumes is known this early only under a LightningCLI (see
        :func:`fit_may_resume`); :meth:`on_fit_start` checks the other fits.

        Under multi-process DDP Lightning calls this on each node's first
        process only (``prepare_data_per_node``); the other processes then
        wait until that one has failed (torchrun or SLURM stop them on its
        exit, or their timeout does).

        Raises:
            FileNotFoundError: from :meth:`check_fit`.
        """
        super().prepare_data()
        if self.trainer.state.fn == TrainerFn.FITTING:
            self.check_fit(resumes=fit_may_resume(self.trainer))

    def on_validation_start(self) -> None:
        """Check the network and normalise (see :meth:`on_test_start`)."""
        self.check_built()
        super().on_validation_start()
        self.warn_other_split()

    def on_test_start(self) -> None:
        """Check the network was built, normalise, warn on another split."""
        self.check_built()
        super().on_test_start()
        self.warn_other_split()

    def warn_other_split(self) -> None:
        """Warn when a scored split is not the one the checkpoint was trained on."""
        if self.trainer.state.fn == TrainerFn.FITTING:
            return  # scoring its own held-out blocks
        datamodule = getattr(self.trainer, "datamodule", None)
        data = DataMetadata.from_datamodule(datamodule, self.model.spec.in_channels)
        source = restored_from(self.trainer) or "the model"
        message = split_warning(source, self.data_metadata, data)
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=2)

    def on_predict_start(self) -> None:
        """Check the network was built (see :meth:`check_built`), then normalise."""
        self.check_built()
        super().on_predict_start()

    def configure_metrics(self) -> None:
        """Create the binary metrics of the irrigated class."""
        segmentation = self.model.spec.problem == "segmentation"
        metrics = MetricCollection(
            {
                "f1": BinaryF1Score(
                    threshold=self.hparams["threshold"], ignore_index=IGNORE_INDEX
                ),
                "precision": BinaryPrecision(
                    threshold=self.hparams["threshold"], ignore_index=IGNORE_INDEX
                ),
                "recall": BinaryRecall(
                    threshold=self.hparams["threshold"], ignore_index=IGNORE_INDEX
                ),
                "accuracy": BinaryAccuracy(
                    threshold=self.hparams["threshold"], ignore_index=IGNORE_INDEX
                ),
                # Exact AUROC keeps every score: fine per patch, too much per
                # pixel, where 200 thresholds approximate it closely.
                "auroc": DefinedAUROC(
                    thresholds=200 if segmentation else None, ignore_index=IGNORE_INDEX
                ),
                # Patches, or pixels per pixel, that the scores rest on.
                "labelled": LabelledCount(),
            }
        )
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def targets(self, batch: dict[str, Tensor]) -> Tensor:
        """The labels the model's output is scored against.

        Args:
            batch: with ``label`` ``[B]`` (patch labels, e.g. BigEarthNet) or
                ``mask`` ``[B, H, W]``.

        Returns:
            ``[B]`` patch labels (classification: ``label`` as given, else each
            mask's majority label) or the mask (segmentation),
            :data:`IGNORE_INDEX` where unknown.

        Raises:
            ValueError: for segmentation on a batch without ``mask``.
        """
        if self.model.spec.problem == "segmentation":
            if "mask" not in batch:
                msg = (
                    "A segmentation model needs per-pixel labels (batch['mask'] "
                    f"[B, H, W]) but the batch has only {sorted(batch)}; with "
                    "patch labels (BigEarthNet) pass --model.init_args.problem "
                    "classification."
                )
                raise ValueError(msg)
            return batch["mask"]
        if "label" in batch:
            return batch["label"]
        return patch_labels(batch["mask"])

    def labelled_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The binary loss on labelled patches or pixels, as training computes it.

        Args:
            logits: ``[B]`` (classification) or ``[B, H, W]`` (segmentation).
            targets: the same shape, 0 / 1, :data:`IGNORE_INDEX` where unknown.

        Returns:
            The mean loss over the labelled entries (a scalar): the task's
            ``loss``, ``pos_weight`` and ``focal_gamma`` where it has them,
            else unweighted binary cross-entropy.
        """
        return binary_loss(
            logits,
            targets,
            kind=self.hparams.get("loss", "bce"),
            pos_weight=self.hparams.get("pos_weight"),
            focal_gamma=self.hparams.get("focal_gamma", 2.0),
        )

    def evaluation_loss(
        self, batch: dict[str, Tensor], logits: Tensor, targets: Tensor
    ) -> Tensor:
        """The loss logged as ``val_loss`` / ``test_loss``: the training loss.

        Args:
            batch: the evaluation batch, ``image`` ``[B, C, H, W]``.
            logits: the model's output on it, ``[B]`` or ``[B, H, W]``.
            targets: its labels (see :meth:`targets`), some labelled.

        Returns:
            :meth:`labelled_loss` here, a scalar.
        """
        return self.labelled_loss(logits, targets)

    def _evaluate(self, batch: dict[str, Tensor], split: str) -> None:
        """Score a batch and log ``{split}_loss`` and the metrics, per epoch.

        Args:
            batch: as :meth:`validation_step` takes it.
            split: ``val`` or ``test``.
        """
        targets = self.targets(batch)
        if not bool((targets != IGNORE_INDEX).any()):
            return  # nothing to score; logging would compute on no samples
        self.scored = True
        metrics: MetricCollection = getattr(self, f"{split}_metrics")
        logits = self.model(batch["image"])
        size = batch["image"].shape[0]
        loss = self.evaluation_loss(batch, logits, targets)
        self.log(f"{split}_loss", loss, batch_size=size, on_step=False, on_epoch=True)
        metrics.update(torch.sigmoid(logits), targets)
        log_metrics(self, metrics, size)

    def _refuse_unscored(self, split: str) -> None:
        scored, self.scored = self.scored, False
        if not scored and not self.trainer.sanity_checking:
            skip = ", or --trainer.limit_val_batches 0" if split == "val" else ""
            msg = (
                f"The {split} batches (all, or --trainer.limit_{split}_batches of "
                "them) hold no labelled patch (--data.init_args.min_labelled of "
                f"its pixels labelled, half by default) or pixel, so {split}_f1 "
                "cannot be computed; the labels may cover only part of the "
                "imagery: pass a --data.init_args.bbox inside the labels, labels "
                "that cover it, or a lower min_labelled for sparse labels"
                f"{skip}."
            )
            raise ValueError(msg)

    def on_validation_epoch_start(self) -> None:
        """Start counting scored validation batches."""
        self.scored = False

    def on_validation_epoch_end(self) -> None:
        """Keep the scores for the checkpoint; refuse an epoch without a label.

        Raises:
            ValueError: if no batch had a label (after the sanity check).
        """
        self._refuse_unscored("val")
        if not self.trainer.sanity_checking:
            self.val_scores = validation_scores(self)

    def on_test_epoch_start(self) -> None:
        """Start counting scored test batches."""
        self.scored = False

    def on_test_epoch_end(self) -> None:
        """Refuse to report when no test batch had a label.

        Raises:
            ValueError: if none had.
        """
        self._refuse_unscored("test")

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Score a validation batch: ``val_loss`` and the metrics, per epoch.

        Args:
            batch: ``image`` ``[B, C, H, W]`` and ``mask`` ``[B, H, W]`` or
                ``label`` ``[B]``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.
        """
        self._evaluate(batch, "val")

    def test_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Score a test batch: ``test_loss`` and the metrics, per epoch.

        Args:
            batch: ``image`` ``[B, C, H, W]`` and ``mask`` ``[B, H, W]`` or
                ``label`` ``[B]``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.
        """
        self._evaluate(batch, "test")

    def forward(self, image: Tensor) -> Tensor:
        """Score a standardised batch.

        Outside a Trainer, standardise the dataset's reflectance first with
        :meth:`normalise`; a batch that looks like raw reflectance gets a
        :class:`RawInputWarning`.

        Args:
            image: ``[B, C, H, W]`` standardised with the training statistics.

        Returns:
            Logits of irrigated (``torch.sigmoid`` gives the probability):
            ``[B]`` per patch (classification) or ``[B, H, W]`` per pixel
            (segmentation).
        """
        warn_if_raw(self, image)
        logits: Tensor = self.model(image)
        return logits

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Predict the probability of irrigated.

        Args:
            batch: ``image`` ``[B, C, H, W]``, standardised (see :meth:`forward`).
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            Probabilities in [0, 1]: ``[B]`` per patch (classification) or
            ``[B, H, W]`` per pixel (segmentation).
        """
        return torch.sigmoid(self(batch["image"]))

    def configure_callbacks(self) -> list[Callback]:
        """Name the checkpoint when the fit ends (:class:`CheckpointNote`).

        Returns:
            The callbacks the task adds to the trainer's.
        """
        return [CheckpointNote()]

    def on_fit_start(self) -> None:
        """Normalise as the earlier stage did, then record bands, statistics and split.

        Raises:
            FileNotFoundError: from :meth:`check_fit`, for a stand-in network.
            ValueError: if the bands differ from the earlier stage's (see
                :meth:`normalise_as_trained`), or their number from the model's
                ``in_channels``; if a resumed fit has another spatial split or
                labelled subset than its checkpoint; if the backbone takes one
                input size and the patches have another; if batches of one
                patch meet BatchNorm layers of vectors that train.
        """
        self.check_fit(resumes=self.restored)
        no_checkpoint_in_dev_run(self.trainer)
        self.normalise_as_trained()
        datamodule = getattr(self.trainer, "datamodule", None)
        self.check_batch_norm(getattr(datamodule, "batch_size", None))
        data = DataMetadata.from_datamodule(datamodule, self.model.spec.in_channels)
        if data is not None:
            check_input_size(
                self.model.backbone, self.model.spec.model, data.patch_size
            )
        labels = self.labels_behind(training_labels(datamodule))
        if (source := restored_from(self.trainer)) is not None:
            check_resume(source, self.data_metadata, data, self.training_labels, labels)
            check_devices(source, self.trained_devices, self.trainer.world_size)
        self.data_metadata, self.training_labels = data, labels

    def check_batch_norm(self, batch_size: int | None) -> None:
        """Refuse batches of one patch where a BatchNorm layer of vectors trains.

        In training, BatchNorm normalises each channel over the batch (and
        the pixels of a feature map); the kept projection-head block's
        ``BatchNorm1d`` sees one value per channel from one patch and fails at
        the first step with torch's "Expected more than 1 value per channel
        when training". The ``BatchNorm2d`` layers of feature maps (a U-Net's
        decoder) have pixels to normalise over and are left alone.

        Args:
            batch_size: the datamodule's batch size (None if unknown).

        Raises:
            ValueError: if *batch_size* is 1 and a ``BatchNorm1d`` trains.
        """
        if batch_size != 1:
            return
        training = [
            name
            for name, module in self.model.named_modules()
            if isinstance(module, BatchNorm1d)
            and any(p.requires_grad for p in module.parameters())
        ]
        if not training:
            return
        msg = (
            "--data.init_args.batch_size 1 gives the network's BatchNorm layers "
            f"that train (e.g. model.{training[-1]}) one patch per batch, but "
            "BatchNorm in training needs at least 2 patches to normalise over; "
            "pass --data.init_args.batch_size 2 or more."
        )
        raise ValueError(msg)

    def labels_behind(self, labels: dict[str, Any] | None) -> dict[str, Any] | None:
        """The labelled subset this stage learns from, to record in the checkpoint.

        Args:
            labels: the datamodule's subset (see
                :func:`~torchgeo_simclr.models.checkpoint.training_labels`).

        Returns:
            *labels* here; a stage that learns from another model's
            predictions names that model's labels.
        """
        return labels

    def adamw_schedule(self, params: Iterable[Any]) -> OptimizerLRScheduler:
        """AdamW at ``lr`` and ``weight_decay`` with the warm-up + cosine schedule.

        Parameter groups without a ``name`` are named for Lightning's
        ``LearningRateMonitor`` (``lr-AdamW/backbone``, not ``lr-AdamW/pg2``):
        ``backbone``, a group of the network's pretrained stages only (see
        :meth:`~torchgeo_simclr.models.classifier.IrrigationModel.stages`: the
        backbone and the kept projection-head blocks, at ``backbone_lr``), and
        ``head``, one holding the new layers (the classifier or decoder).

        Args:
            params: parameters or parameter groups (a group may set its own lr).

        Returns:
            The optimiser and its schedule.
        """
        params = list(params)
        unnamed = [g for g in params if isinstance(g, dict) and "name" not in g]
        if unnamed:
            stages = {
                id(p) for stage in self.model.stages() for p in stage.parameters()
            }
            for group in unnamed:
                inside = all(id(p) in stages for p in group["params"])
                group["name"] = "backbone" if inside else "head"
        optimizer = AdamW(
            params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        return warmup_cosine(
            optimizer,
            int(self.trainer.estimated_stepping_batches),
            self.hparams["warmup_fraction"],
        )

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Extra fields a subclass stores in the checkpoint metadata.

        Returns:
            Fields merged into the metadata (none here).
        """
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the architecture, data and training labels beside the weights.

        Also what made the checkpoint: the SHA-256 of the checkpoint it was
        built from (``pretrained_from_sha256``, ``teacher_sha256``: as a
        restored checkpoint recorded it, else of the file now at the path
        :meth:`checkpoint_metadata` names, None when it is gone),
        ``software`` (versions and source commit, see
        :func:`~torchgeo_simclr.software.software_record`) and ``seed`` (the
        seed Lightning's ``seed_everything`` set, None without one); plain
        values, so ``torch.load(weights_only=True)`` reads them.

        Args:
            checkpoint: the checkpoint dictionary Lightning is about to save.
        """
        parents = self.checkpoint_metadata()
        checkpoint[CHECKPOINT_KEY] = {
            "kind": self.kind,
            "model": self.model.spec.model,
            "in_channels": self.model.spec.in_channels,
            "spec": self.model.spec.to_dict(),
            "data": None
            if self.data_metadata is None
            else self.data_metadata.to_dict(),
            "labels": self.training_labels,
            "devices": getattr(self._trainer, "world_size", None),
            **parents,
            # The parent file as it is now (hashed once per file version), or
            # as the restored checkpoint recorded it: the file may have been
            # replaced since that run began.
            **(self.parent_digests or parent_digests(parents)),
            "software": software_record(),
            "seed": global_seed(),
            "val_scores": self.val_scores,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the metadata; rebuild the network as the checkpoint records it.

        Lightning calls this before it loads the weights, so a task built
        without the earlier stage's checkpoint (see :meth:`build_without`)
        gets the architecture of the checkpoint it restores (``--ckpt_path``),
        whatever backbone and head that has.

        Args:
            checkpoint: the loaded checkpoint dictionary.
        """
        self.restored = True
        self.data_metadata = DataMetadata.from_checkpoint(checkpoint)
        meta = checkpoint.get(CHECKPOINT_KEY, {})
        self.training_labels = meta.get("labels")
        self.trained_devices = meta.get("devices")
        self.val_scores = meta.get("val_scores")
        self.parent_digests = {
            f"{key}_sha256": meta[f"{key}_sha256"]
            for key in PARENT_KEYS
            if meta.get(f"{key}_sha256")
        }
        if meta.get("spec") is not None:
            spec = ModelSpec.from_dict(meta["spec"])
            if spec != self.model.spec:
                self.rebuild(spec)

    def rebuild(self, spec: ModelSpec) -> None:
        """Replace the network with one *spec* describes (weights load next).

        Args:
            spec: the architecture a restored checkpoint records.
        """
        problem = self.model.spec.problem
        self.model = IrrigationModel(spec)
        if spec.problem != problem:
            self.configure_metrics()
