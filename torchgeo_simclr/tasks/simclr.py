"""SimCLRv2 self-supervised pretraining on multispectral patches."""

from typing import Any, Literal, cast

import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.utils.lars import LARS
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torch.optim import SGD, Adam, Optimizer
from torchgeo.tasks import BaseTask
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryF1Score

from ..constants import IGNORE_INDEX
from ..models import ProjectionHead, create_backbone
from ..models.backbone import check_input_size, feature_size
from ..models.checkpoint import CHECKPOINT_KEY, DataMetadata
from ..patch_labels import patch_labels
from ..software import global_seed, software_record
from .checkpoint_note import CheckpointNote
from .dev_run import no_checkpoint_in_dev_run
from .metrics import log_metrics
from .normalisation import NormalisedAsTrained, warn_if_raw
from .provenance import check_devices, check_resume, restored_from
from .schedule import check_optimiser, check_schedule, warmup_cosine


class SimCLRv2Task(NormalisedAsTrained, BaseTask):
    """SimCLRv2 contrastive pretraining of a timm backbone on N-band imagery.

    The batch must carry two augmented views of every patch as ``batch["views"]``
    ``[2, B, C, H, W]`` (made on the device by
    :class:`~torchgeo_simclr.datamodules.CentralValleyDataModule`). Both views go
    through the backbone and the SimCLRv2 projection head; NT-Xent pulls the two
    views of a patch together and pushes the other patches of the batch (and of
    the other devices with *gather_distributed*) away. With a memory bank,
    lightly's NT-Xent pushes away the banked projections instead of the
    batch, as in MoCo; its loss values, validation included, are then not
    comparable with a run without one.

    When the batch also has a ``mask`` ``[B, H, W]``, an online linear probe on
    detached backbone features learns patch-level irrigated / not irrigated, as
    in SimCLRv2, so ``val_probe_f1`` shows whether the features are getting
    useful while pretraining runs; the probe never changes the encoder.

    Checkpoints carry what later stages need: backbone, head, band list,
    normalisation statistics and patch size (see :class:`DataMetadata`).
    """

    #: Metric that Lightning callbacks and schedulers should watch.
    monitor = "val_loss"

    #: Hyperparameters left out of the checkpoint: none (``weights`` is a flag
    #: here, not a weights enum as in torchgeo's tasks).
    ignore = None

    #: Options read only by :meth:`configure_optimizers`, which LightningCLI's
    #: ``--optimizer`` replaces.
    optimiser_options = (
        "optimizer",
        "lr",
        "weight_decay",
        "momentum",
        "warmup_fraction",
        "probe_lr",
    )

    def __init__(
        self,
        model: str = "resnet50",
        in_channels: int = 12,
        weights: bool = False,
        hidden_dim: int | None = None,
        output_dim: int = 128,
        head_layers: int = 3,
        temperature: float = 0.1,
        memory_bank_size: int = 0,
        gather_distributed: bool = False,
        optimizer: Literal["adam", "lars", "sgd"] = "adam",
        lr: float = 5e-4,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        warmup_fraction: float = 0.05,
        probe: bool = True,
        probe_lr: float = 1e-3,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Initialise a new SimCLRv2Task.

        Args:
            model: timm backbone name, e.g. ``"resnet18"`` or ``"resnet152"``.
            in_channels: number of input bands.
            weights: start from timm's ImageNet weights instead of random ones.
            hidden_dim: width of the projection head (default: the backbone's
                feature size).
            output_dim: size of the projection NT-Xent sees.
            head_layers: number of projection head layers (SimCLRv2: 3).
            temperature: NT-Xent temperature.
            memory_bank_size: number of past projections kept as the
                negatives, in place of the other patches of the batch (0 =
                none: the batch's own negatives, as SimCLR).
            gather_distributed: gather negatives from all devices.
            optimizer: ``adam`` (default; the SimCLR-S2 study found Adam at
                5e-4 best), ``lars`` (SimCLR's large-batch optimiser) or ``sgd``.
            lr: peak learning rate.
            weight_decay: weight decay.
            momentum: momentum of ``lars`` and ``sgd``.
            warmup_fraction: fraction of all training steps spent on a linear
                warm-up before the cosine decay.
            probe: train an online linear probe when batches carry masks.
            probe_lr: learning rate of the probe.
            backbone_kwargs: further ``timm.create_model`` arguments, e.g.
                ``{"drop_path_rate": 0.1}``, or ``{"dynamic_img_size": True,
                "dynamic_img_pad": True}`` for a ViT at any patch size
                (``{"dynamic_img_size": True}`` alone for a Swin, which then
                takes sides that are multiples of its patch embedding, e.g. 4
                px); recorded in the checkpoint, so fine-tuning (which must keep
                them), ``predict``, ``embed`` and ``probe`` rebuild the same
                network.

        Raises:
            ValueError: if *head_layers*, *temperature*, *warmup_fraction*,
                *lr*, *probe_lr* or *weight_decay* is out of range.
        """
        check_schedule(warmup_fraction, temperature)
        check_optimiser(lr, weight_decay, 5e-4, probe_lr=probe_lr)
        if head_layers < 1:
            msg = (
                f"--model.init_args.head_layers {head_layers} must be at least 1: "
                "NT-Xent compares projections; pass e.g. 3 (SimCLRv2)."
            )
            raise ValueError(msg)
        #: The data the network was trained on: set when fitting starts, read
        #: back from a checkpoint; None for a network not trained yet.
        self.data_metadata: DataMetadata | None = None
        #: Devices (DDP ranks) a restored checkpoint was trained on; None
        #: when none was restored or it does not record them.
        self.trained_devices: int | None = None
        super().__init__()

    def configure_models(self) -> None:
        """Create the backbone, projection head and online probe."""
        self.backbone = create_backbone(
            self.hparams["model"],
            in_channels=self.hparams["in_channels"],
            pretrained=self.hparams["weights"],
            options=self.hparams["backbone_kwargs"] or None,
        )
        features = feature_size(self.backbone)
        self.projection_head = ProjectionHead(
            features,
            self.hparams["hidden_dim"] or features,
            self.hparams["output_dim"],
            self.hparams["head_layers"],
        )
        self.probe = nn.Linear(features, 2)

    def configure_losses(self) -> None:
        """Create the NT-Xent criterion."""
        memory: int | tuple[int, int] = 0
        if self.hparams["memory_bank_size"] > 0:
            memory = (self.hparams["memory_bank_size"], self.hparams["output_dim"])
        self.criterion = NTXentLoss(
            temperature=self.hparams["temperature"],
            memory_bank_size=memory,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def configure_metrics(self) -> None:
        """Create the probe's patch-level metrics."""
        metrics = MetricCollection(
            {
                "probe_f1": BinaryF1Score(ignore_index=IGNORE_INDEX),
                "probe_accuracy": BinaryAccuracy(ignore_index=IGNORE_INDEX),
            }
        )
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Embed and project a batch.

        Outside a Trainer, standardise the dataset's reflectance first with
        :meth:`normalise`; a batch that looks like raw reflectance gets a
        :class:`~torchgeo_simclr.tasks.normalisation.RawInputWarning`.

        Args:
            x: images ``[B, C, H, W]`` standardised with the training
                statistics.

        Returns:
            The projection ``[B, output_dim]`` and the backbone features
            ``[B, num_features]``.
        """
        warn_if_raw(self, x)
        h = self.backbone(x)
        return self.projection_head(h), h

    def _views(self, batch: dict[str, Tensor]) -> Tensor:
        if "views" not in batch:
            msg = (
                "SimCLRv2Task expected batch['views'] with two augmented views "
                f"[2, B, C, H, W] but the batch has only {sorted(batch)}; use "
                "CentralValleyDataModule (num_views=2) or add "
                "torchgeo_simclr.transforms.SimCLRViews to your datamodule."
            )
            raise KeyError(msg)
        views = batch["views"]
        if views.shape[2] != self.hparams["in_channels"]:
            msg = (
                f"SimCLRv2Task was built for in_channels={self.hparams['in_channels']}"
                f" but the batch has {views.shape[2]} bands; set "
                "--model.init_args.in_channels to the number of bands."
            )
            raise ValueError(msg)
        return views

    def _contrastive_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        views = self._views(batch)
        batch_size = views.shape[1]
        z, h = self(views.flatten(0, 1))
        z1, z2 = z[:batch_size], z[batch_size : 2 * batch_size]
        loss: Tensor = self.criterion(z1, z2)
        return loss, h[:batch_size]

    def _probe_loss(self, features: Tensor, mask: Tensor) -> Tensor:
        targets = patch_labels(mask)
        if not (targets != IGNORE_INDEX).any():
            return features.new_zeros(())
        logits = self.probe(features.detach())
        return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the NT-Xent loss (plus the probe's loss on detached features).

        Args:
            batch: ``views`` ``[2, B, C, H, W]``, optionally ``mask`` ``[B, H, W]``
                and the views' masks ``view_masks`` ``[2, B, H, W]``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            The loss to minimise.
        """
        loss, h = self._contrastive_step(batch)
        batch_size = h.shape[0]
        self.log("train_loss", loss, batch_size=batch_size, prog_bar=True)
        std = F.normalize(h.detach(), dim=1).std(dim=0).mean()
        self.log("train_feature_std", std, batch_size=batch_size)
        if self.hparams["probe"] and "mask" in batch:
            # The probe sees the first view's features, so it learns that
            # view's labels: a zoom or shift can move a patch's majority class.
            mask = batch["view_masks"][0] if "view_masks" in batch else batch["mask"]
            probe_loss = self._probe_loss(h, mask)
            self.log("train_probe_loss", probe_loss, batch_size=batch_size)
            loss = loss + probe_loss
        return loss

    def _evaluate(
        self, batch: dict[str, Tensor], metrics: MetricCollection, prefix: str
    ) -> None:
        batch_size = batch["image"].shape[0]
        if "views" in batch:
            loss, _ = self._contrastive_step(batch)
            # Averaged over every device's batches, so all ranks agree on it.
            self.log(
                f"{prefix}_loss",
                loss,
                batch_size=batch_size,
                prog_bar=True,
                sync_dist=True,
            )
        if self.hparams["probe"] and "mask" in batch:
            h = self.backbone(batch["image"])
            targets = patch_labels(batch["mask"])
            preds = self.probe(h).argmax(dim=1)
            metrics.update(preds, targets)
            log_metrics(self, metrics, batch_size)

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Log the validation NT-Xent loss and the probe's metrics.

        Args:
            batch: ``image`` ``[B, C, H, W]``, optionally ``views`` and ``mask``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.
        """
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Log the test NT-Xent loss and the probe's metrics.

        Args:
            batch: ``image`` ``[B, C, H, W]``, optionally ``views`` and ``mask``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.
        """
        self._evaluate(batch, self.test_metrics, "test")

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Embed a batch with the backbone.

        Args:
            batch: ``image`` ``[B, C, H, W]``, standardised (see
                :meth:`forward`).
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            Backbone features ``[B, num_features]``.
        """
        warn_if_raw(self, batch["image"])
        features: Tensor = self.backbone(batch["image"])
        return features

    def _optimizer(self) -> Optimizer:
        probe = [p for name, p in self.named_parameters() if name.startswith("probe.")]
        rest = [
            p for name, p in self.named_parameters() if not name.startswith("probe.")
        ]
        # The probe has its own learning rate; the schedule scales both alike.
        # Named for Lightning's LearningRateMonitor: lr-Adam/encoder, not pg1.
        params = [
            {"params": rest, "name": "encoder"},
            {"params": probe, "lr": self.hparams["probe_lr"], "name": "probe"},
        ]
        lr, wd = self.hparams["lr"], self.hparams["weight_decay"]
        match self.hparams["optimizer"]:
            case "adam":
                return Adam(params, lr=lr, weight_decay=wd)
            case "lars":
                lars = LARS(
                    params, lr=lr, momentum=self.hparams["momentum"], weight_decay=wd
                )
                return cast(Optimizer, lars)
            case "sgd":
                return SGD(
                    params, lr=lr, momentum=self.hparams["momentum"], weight_decay=wd
                )
        msg = (
            f"optimizer must be 'adam', 'lars' or 'sgd', got "
            f"{self.hparams['optimizer']!r}."
        )
        raise ValueError(msg)

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Create the optimiser with a linear warm-up and a cosine decay per step.

        Returns:
            The optimiser and its step-wise learning-rate schedule.
        """
        return warmup_cosine(
            self._optimizer(),
            int(self.trainer.estimated_stepping_batches),
            self.hparams["warmup_fraction"],
        )

    def configure_callbacks(self) -> list[Callback]:
        """Name the checkpoint when the fit ends (:class:`CheckpointNote`).

        Returns:
            The callbacks the task adds to the trainer's.
        """
        return [CheckpointNote()]

    def on_fit_start(self) -> None:
        """Normalise as a resumed checkpoint did; record bands, statistics, patch.

        Raises:
            ValueError: if the backbone takes one input size and the patches
                have another, batches of one patch leave NT-Xent no negatives,
                or a resumed fit has another spatial split than its
                checkpoint (its encoder would train on the held-out blocks).
        """
        no_checkpoint_in_dev_run(self.trainer)
        self.normalise_as_trained()
        datamodule = getattr(self.trainer, "datamodule", None)
        batch_size = getattr(datamodule, "batch_size", None)
        ranks = self.trainer.world_size if self.hparams["gather_distributed"] else 1
        if batch_size == 1 and ranks == 1 and self.hparams["memory_bank_size"] == 0:
            msg = (
                "batch_size 1 leaves NT-Xent no negatives (the other patches of "
                "a batch), so the loss is 0 and nothing is learnt; pass "
                "--data.init_args.batch_size 2 or more, or keep past projections "
                "with --model.init_args.memory_bank_size."
            )
            raise ValueError(msg)
        data = DataMetadata.from_datamodule(datamodule, self.hparams["in_channels"])
        if (source := restored_from(self.trainer)) is not None:
            # Refused before the checkpoint's split is replaced by this one's.
            check_resume(source, self.data_metadata, data, None, None)
            check_devices(source, self.trained_devices, self.trainer.world_size)
        self.data_metadata = data
        if data is not None:
            check_input_size(self.backbone, self.hparams["model"], data.patch_size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what later stages need beside the weights.

        Also what made the checkpoint: ``software`` (the versions of this
        package, torch, torchgeo, ... and its source commit, see
        :func:`~torchgeo_simclr.software.software_record`) and ``seed`` (the
        seed Lightning's ``seed_everything`` set, None without one); plain
        values, so ``torch.load(weights_only=True)`` reads them.

        Args:
            checkpoint: the checkpoint dictionary Lightning is about to save.
        """
        checkpoint[CHECKPOINT_KEY] = {
            "kind": "simclr",
            "model": self.hparams["model"],
            "in_channels": self.hparams["in_channels"],
            "backbone_kwargs": self.hparams["backbone_kwargs"] or None,
            "data": None
            if self.data_metadata is None
            else self.data_metadata.to_dict(),
            "devices": getattr(self._trainer, "world_size", None),
            "software": software_record(),
            "seed": global_seed(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the data metadata saved by :meth:`on_save_checkpoint`.

        Args:
            checkpoint: the loaded checkpoint dictionary.
        """
        self.data_metadata = DataMetadata.from_checkpoint(checkpoint)
        self.trained_devices = checkpoint.get(CHECKPOINT_KEY, {}).get("devices")
