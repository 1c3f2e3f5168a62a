"""Stage 3: distil a fine-tuned teacher into a small, fast student."""

import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor

from ..constants import IGNORE_INDEX
from ..losses import binary_loss, distillation_loss
from ..models.backbone import check_input_size
from ..models.checkpoint import (
    DataMetadata,
    TrainedModel,
    absolute_if_present,
    load_model,
    not_found,
)
from ..models.classifier import IrrigationModel, ModelSpec
from .irrigation import IrrigationTask, expect_frozen_modules
from .provenance import describe_labels, same_draw, split_advice, split_change
from .schedule import check_optimiser, check_schedule


class DistillTask(IrrigationTask):
    """Train a student to match a fine-tuned teacher's softened predictions.

    As in SimCLRv2's third stage, the student learns from the teacher's
    predictions on unlabeled patches: the loss is
    :func:`~torchgeo_simclr.losses.distillation_loss` at *temperature*,
    plus *alpha* times the binary loss on whatever labels the batch carries
    (use the datamodule's ``label_fraction`` with ``unlabeled=True``, so only
    the labelled subset contributes). The student solves the teacher's
    problem type (classification or segmentation) with a fresh timm backbone.
    Pixels without data (``batch["valid"]``, see :meth:`training_step`) are
    left out of the distillation loss, as they are out of the labelled loss
    and the metrics.

    The teacher stays frozen in eval mode. Distillation uses only training
    batches; the student is scored on val / test blocks, which the
    datamodule keeps apart from the training blocks, and the run stops if its
    split differs from the teacher's (the teacher's training blocks could then
    be the student's test blocks).
    """

    #: Checkpoint kind written by this task.
    kind = "distill"

    #: Options read only by :meth:`configure_optimizers`, which LightningCLI's
    #: ``--optimizer`` replaces.
    optimiser_options = ("lr", "weight_decay", "warmup_fraction")

    def __init__(
        self,
        teacher: str,
        model: str = "resnet18",
        weights: bool = False,
        temperature: float = 1.0,
        alpha: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.0,
        threshold: float = 0.5,
        channels_last: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Initialise a new DistillTask.

        Args:
            teacher: a checkpoint written by
                :class:`~torchgeo_simclr.tasks.FineTuneTask` (or by another
                distillation).
            model: timm backbone of the student.
            weights: start the student from timm's ImageNet weights.
            temperature: softening temperature of the teacher's and the
                student's predictions.
            alpha: weight of the labelled binary loss added to the
                distillation loss (0: distillation only).
            lr: peak learning rate.
            weight_decay: AdamW weight decay.
            warmup_fraction: share of steps spent on a linear warm-up before
                the cosine decay.
            threshold: probability above which a patch or pixel counts as
                irrigated in the metrics.
            channels_last: train and run the student in channels-last memory
                order (recorded in the checkpoint, so maps use it too): faster
                for RegNetX-200MF on a CPU, slower for ResNet-18.
            backbone_kwargs: further ``timm.create_model`` arguments of the
                student's backbone (recorded in the checkpoint).

        Raises:
            ValueError: if *temperature*, *warmup_fraction*, *alpha*, *lr* or
                *weight_decay* is out of range.
        """
        check_schedule(warmup_fraction, temperature)
        check_optimiser(lr, weight_decay, 1e-3)
        if not alpha >= 0:
            msg = (
                f"--model.init_args.alpha {alpha:g} must be 0 or more (the weight "
                "of the labelled loss added to the distillation loss, 0 = "
                "distillation only); pass e.g. 0 or 0.5."
            )
            raise ValueError(msg)
        super().__init__()
        # Saved absolute, so `--ckpt_path` works from any folder. Set after
        # saving: LightningCLI saves the hyperparameters it parsed, not these.
        self.hparams["teacher"] = absolute_if_present(teacher)

    def configure_models(self) -> None:
        """Load the frozen teacher and build the student for its problem type.

        Without the teacher's file the student is a stand-in (12 bands,
        classification) for a restored checkpoint to replace; see
        :meth:`~torchgeo_simclr.tasks.irrigation.IrrigationTask.build_without`.
        """
        #: The frozen teacher; None when its file is gone.
        self.teacher: IrrigationModel | None = None
        #: The data the teacher was trained on (None if unknown).
        self.teacher_data: DataMetadata | None = None
        #: The teacher's labelled subset (None if unknown).
        self.teacher_labels: dict[str, Any] | None = None
        spec = ModelSpec(self.hparams["model"], 12, "classification")
        path = self.hparams["teacher"]
        if Path(path).exists():
            loaded: TrainedModel = load_model(path)
            self.teacher_data = loaded.data
            self.teacher_labels = loaded.labels
            self.teacher = loaded.model.requires_grad_(False)
            spec = self.teacher.spec
        else:
            self.build_without(
                not_found("Teacher", path, "a fine-tuning run"),
                "test, validate or predict",
            )
        try:
            self.model = IrrigationModel(
                ModelSpec(
                    self.hparams["model"],
                    spec.in_channels,
                    spec.problem,
                    channels_last=self.hparams["channels_last"],
                    backbone_kwargs=self.hparams["backbone_kwargs"] or None,
                ),
                pretrained=self.hparams["weights"] and self.teacher is not None,
            )
        except ValueError as error:
            # The network's own advice names a problem type, which a student
            # takes from its teacher.
            if "cannot feed a U-Net" not in str(error):
                raise
            msg = (
                f"Student {self.hparams['model']!r} cannot feed a U-Net, which "
                f"teacher {path!r}'s per-pixel (segmentation) model needs: its "
                "feature maps are not a pyramid of halving sizes (a plain ViT "
                "keeps one size); set --model.init_args.model to a student with "
                "one, such as regnetx_002, resnet18 or efficientnet_b0, or distil "
                "a per-patch (classification) teacher."
            )
            raise ValueError(msg) from None

    def train(self, mode: bool = True) -> "DistillTask":
        """Switch modes; the teacher always stays in eval mode.

        Args:
            mode: training (True) or evaluation (False) mode.

        Returns:
            self.
        """
        super().train(mode)
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            teacher.eval()
        return self

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Distil on the batch's pixels with data (plus *alpha* x the labelled loss).

        A segmentation student matches the teacher on the pixels with data
        only; a classification student on the patches with at least one
        pixel with data (a map writes a patch's prediction on those pixels).
        Pixels without data (0 in any band, or from outside the patch after
        a rotation or shift) carry nothing the teacher could know.

        Args:
            batch: ``image`` ``[B, C, H, W]``; ``valid`` bool ``[B, H, W]``,
                the pixels with data (all when absent), as
                :class:`~torchgeo_simclr.datamodules.augment.BatchAugmentation`
                gives; ``mask`` ``[B, H, W]`` or ``label`` ``[B]`` is used only
                when *alpha* > 0.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            The loss to minimise.
        """
        image = batch["image"]
        assert self.teacher is not None  # check_built refuses to fit without
        with torch.no_grad():
            teacher_logits = self.teacher(image)
        logits = self.model(image)
        valid = batch.get("valid")
        if valid is not None and self.model.spec.problem == "classification":
            valid = valid.flatten(1).any(1)
        loss = distillation_loss(
            logits, teacher_logits, self.hparams["temperature"], valid
        )
        self.log("train_distill_loss", loss, batch_size=image.shape[0])
        if self.hparams["alpha"] > 0 and ("mask" in batch or "label" in batch):
            targets = self.targets(batch)
            if (targets != IGNORE_INDEX).any():
                labelled = binary_loss(logits, targets)
                self.log("train_label_loss", labelled, batch_size=image.shape[0])
                loss = loss + self.hparams["alpha"] * labelled
        self.log("train_loss", loss, batch_size=image.shape[0], prog_bar=True)
        return loss

    def evaluation_loss(
        self, batch: dict[str, Tensor], logits: Tensor, targets: Tensor
    ) -> Tensor:
        """The loss logged as ``val_loss`` / ``test_loss``: the training loss.

        That is the distillation loss against the teacher on the batch's
        pixels with data, plus *alpha* times the binary cross-entropy on its
        labels (see :meth:`training_step`), on the val or test blocks, where
        every labelled patch or pixel counts. Where the teacher's file is gone
        (a test or validate of a restored checkpoint, see
        :meth:`~torchgeo_simclr.tasks.irrigation.IrrigationTask.build_without`)
        it is the binary cross-entropy on the labels alone.

        Args:
            batch: ``image`` ``[B, C, H, W]``; ``valid`` bool ``[B, H, W]``
                where given.
            logits: the student's output on it, ``[B]`` or ``[B, H, W]``.
            targets: its labels, some labelled.

        Returns:
            The loss, a scalar.
        """
        labelled = binary_loss(logits, targets)
        if self.teacher is None:
            return labelled
        valid = batch.get("valid")
        if valid is not None and self.model.spec.problem == "classification":
            valid = valid.flatten(1).any(1)
        loss = distillation_loss(
            logits, self.teacher(batch["image"]), self.hparams["temperature"], valid
        )
        if self.hparams["alpha"] > 0:
            loss = loss + self.hparams["alpha"] * labelled
        return loss

    def check_fit(self, resumes: bool) -> None:
        """Refuse to fit without the teacher, also a fit that resumes.

        Args:
            resumes: whether the fit restores a checkpoint of this stage
                (``--ckpt_path``); it needs the teacher all the same.

        Raises:
            FileNotFoundError: if the teacher's file is gone.
        """
        if self.teacher is None:
            msg = (
                f"{self.missing_checkpoint} Distilling needs the teacher, also "
                "when it resumes from --ckpt_path."
            )
            raise FileNotFoundError(msg)

    def on_fit_start(self) -> None:
        """Check the data against the teacher's, then record it.

        Raises:
            FileNotFoundError: if the teacher's file is gone (see
                :meth:`check_fit`).
            ValueError: if the spatial split differs from the teacher's (the
                student's test blocks could be the teacher's training blocks).
        """
        super().on_fit_start()
        assert self.teacher is not None  # check_fit refuses to fit without
        expect_frozen_modules()
        teacher, data = self.teacher_data, self.data_metadata
        if data is not None:
            try:
                check_input_size(
                    self.teacher.backbone, self.teacher.spec.model, data.patch_size
                )
            except ValueError as error:
                msg = f"Teacher {self.hparams['teacher']!r}: {error}"
                raise ValueError(msg) from None
        if teacher is None or data is None:
            return
        if (splits := split_change(teacher, data)) is not None:
            msg = (
                f"Teacher {self.hparams['teacher']!r} was trained on spatial split "
                f"{splits[0]} but the datamodule makes split {splits[1]}, so "
                "the student could be tested on the teacher's training blocks; "
                f"{split_advice(teacher, data, 'use', 'the teacher was trained with')}."
            )
            raise ValueError(msg)
        if (
            self.model.spec.problem == "classification"
            and teacher.patch_size != data.patch_size
        ):
            warnings.warn(
                f"Teacher {self.hparams['teacher']!r} was fine-tuned on "
                f"{teacher.patch_size}-px patches but the student gets "
                f"{data.patch_size}-px patches, so the teacher's soft labels "
                "describe patches of another size than it learnt; set "
                f"--data.init_args.patch_size {teacher.patch_size} unless that is "
                "what you want.",
                UserWarning,
                stacklevel=2,
            )

    def labels_behind(self, labels: dict[str, Any] | None) -> dict[str, Any] | None:
        """The teacher's labelled subset: the student learns from its predictions.

        With *alpha* > 0 the student also learns from the datamodule's subset,
        which is recorded instead (the same draw as the teacher's, or the
        teacher's is unknown; another draw gets a warning).

        Args:
            labels: the datamodule's subset.

        Returns:
            The subset to record in the checkpoint.
        """
        teacher = self.teacher_labels
        if self.hparams["alpha"] == 0:
            return teacher
        if teacher is None:
            return labels
        if labels is not None and not same_draw(teacher, labels):
            warnings.warn(
                f"Teacher {self.hparams['teacher']!r} learnt from "
                f"{describe_labels(teacher)} but the student's labelled loss "
                f"(alpha {self.hparams['alpha']}) uses {describe_labels(labels)}; "
                "the checkpoint records the student's. Give the datamodule the "
                "teacher's label_fraction and label_seed to keep to its labels.",
                UserWarning,
                stacklevel=2,
            )
        return labels

    def earlier_stage(self) -> tuple[str, DataMetadata] | None:
        """The teacher checkpoint and its data.

        Returns:
            What to call the checkpoint in messages, and its data.
        """
        if self.teacher_data is None:
            return None
        return f"teacher {self.hparams['teacher']!r}", self.teacher_data

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW over the student with a warm-up + cosine schedule.

        One parameter group, so Lightning's ``LearningRateMonitor`` logs it
        as ``lr-AdamW``.

        Returns:
            The optimiser and its schedule.
        """
        return self.adamw_schedule(self.model.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the student and the metadata; leave the teacher out.

        The teacher has its own checkpoint (named in the metadata), so the
        distilled one holds only what predicting needs.

        Args:
            checkpoint: the checkpoint dictionary Lightning is about to save.
        """
        super().on_save_checkpoint(checkpoint)
        _drop_teacher(checkpoint.get("state_dict", {}))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the student; the teacher keeps the weights of its own file.

        Args:
            checkpoint: the loaded checkpoint dictionary.
        """
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        _drop_teacher(state)  # earlier versions wrote it
        if self.teacher is not None:
            own = self.teacher.state_dict()
            state.update({f"teacher.{key}": value for key, value in own.items()})

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Record the teacher.

        Returns:
            ``teacher``: the teacher checkpoint path.
        """
        return {"teacher": self.hparams["teacher"]}


def _drop_teacher(state: dict[str, Any]) -> None:
    """Remove the teacher's weights from a task's state dict, in place."""
    for key in [key for key in state if key.startswith("teacher.")]:
        del state[key]
