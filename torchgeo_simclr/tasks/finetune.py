"""Stage 2: fine-tune a SimCLRv2 encoder (or train from scratch) on few labels."""

import textwrap
import warnings
from pathlib import Path
from typing import Any, Literal, cast

from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor

from ..losses import binary_loss
from ..models.backbone import load_encoder_state
from ..models.checkpoint import (
    DataMetadata,
    absolute_if_present,
    not_found,
    read_checkpoint,
    sub_state,
)
from ..models.classifier import IrrigationModel, ModelSpec, Problem, Stage
from .irrigation import IrrigationTask, expect_frozen_modules
from .provenance import describe_data, other_data, split_advice, split_change
from .schedule import check_optimiser, check_schedule

#: Which pretrained parts stay fixed while fine-tuning.
Freeze = Literal["none", "backbone", "all_but_last_n"]

#: Backbone and input bands of a network without a checkpoint, where the
#: options leave them unset.
DEFAULT_MODEL, DEFAULT_IN_CHANNELS = "resnet18", 12


class FineTuneTask(IrrigationTask):
    """Fine-tune a SimCLRv2 checkpoint to map irrigated land, per patch or per pixel.

    SimCLRv2's recipe: keep the backbone and the first *head_layers* blocks of
    the projection head (1 = through the first projection layer, as in
    SimCLRv2), add a new linear classifier, and train on the labelled subset.
    For ``segmentation`` a U-Net decoder is added to the backbone's feature maps
    instead (*head_layers* does not apply and is taken as 0).

    Without *checkpoint* the same network starts from random (or timm's
    ImageNet, ``weights=True``) weights: that is the supervised baseline, on
    the same data with the same recipe.

    The batch carries ``image`` ``[B, C, H, W]`` and either ``mask``
    ``[B, H, W]``, where a patch's label is the majority of its labelled pixels
    (:func:`~torchgeo_simclr.patch_labels.patch_labels`), or patch labels
    ``label`` ``[B]`` (BigEarthNet; classification only).
    """

    #: Checkpoint kind written by this task.
    kind = "finetune"

    def __init__(
        self,
        checkpoint: str | None = None,
        model: str | None = None,
        in_channels: int | None = None,
        weights: bool = False,
        problem: Problem = "classification",
        head_layers: int = 1,
        freeze: Freeze = "none",
        trainable_layers: int = 2,
        loss: Literal["bce", "focal"] = "bce",
        pos_weight: float | None = None,
        focal_gamma: float = 2.0,
        lr: float = 1e-3,
        backbone_lr: float | None = None,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.0,
        threshold: float = 0.5,
        channels_last: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Initialise a new FineTuneTask.

        Args:
            checkpoint: a :class:`~torchgeo_simclr.tasks.SimCLRv2Task`
                checkpoint to start from; None trains from scratch (the
                supervised baseline).
            model: timm backbone name; taken from *checkpoint* when one is
                given (an explicit different name is an error), else default
                ``resnet18``.
            in_channels: number of input bands; taken from *checkpoint* (an
                explicit different number is an error), else default 12.
            weights: without *checkpoint*, start from timm's ImageNet weights
                (refused with one: the checkpoint gives the backbone its weights).
            problem: ``classification`` (a label per patch) or
                ``segmentation`` (per pixel).
            head_layers: projection-head blocks kept under the new classifier
                (0 = backbone features; SimCLRv2: 1). Without a checkpoint the
                kept blocks start random, so both arms have the same network.
            freeze: ``none``; ``backbone`` (train only the kept head blocks,
                the classifier and any decoder); ``all_but_last_n`` (train the
                last *trainable_layers* stages of backbone + kept head, each
                kept head block a stage, plus the new parts: for 2, a ResNet's
                ``layer4`` and the head block with ``head_layers: 1``, its
                ``layer3, layer4`` with ``head_layers: 0``). The backbone's
                stages are timm's (``group_matcher(coarse=True)``, see
                :meth:`~torchgeo_simclr.models.classifier.IrrigationModel.stages`):
                a stem, then a ResNet's 4 layers, an EfficientNet's 7 block
                stages, a ConvNeXt's or RegNet's 4 stages or a ViT's blocks;
                a final norm or head convolution belongs to the last stage.
                The log names the stages that train when fitting starts.
            trainable_layers: *n* of ``all_but_last_n``.
            loss: ``bce`` or ``focal``.
            pos_weight: weight of irrigated targets relative to not-irrigated
                ones (class weighting; also the focal loss's alpha).
            focal_gamma: focusing parameter of the focal loss.
            lr: peak learning rate of the new layers.
            backbone_lr: peak learning rate of the pretrained stages (default:
                *lr*).
            weight_decay: AdamW weight decay.
            warmup_fraction: share of steps spent on a linear warm-up before
                the cosine decay.
            threshold: probability above which a patch or pixel counts as
                irrigated in the metrics.
            channels_last: train and run the network in channels-last memory
                order (recorded in the checkpoint, so maps use it too); see
                :attr:`~torchgeo_simclr.models.classifier.ModelSpec.channels_last`.
            backbone_kwargs: further ``timm.create_model`` arguments of the
                backbone. With *checkpoint* they update the checkpoint's own
                (e.g. a new ``drop_path_rate``), as long as its weights still
                fit the network they build.

        Raises:
            ValueError: if *warmup_fraction*, *lr*, *backbone_lr*,
                *weight_decay* or *pos_weight* is out of range, or *weights*
                is set with *checkpoint*.
        """
        if weights and checkpoint is not None:
            # It was dropped without a word: the checkpoint's weights replace them.
            msg = (
                f"FineTuneTask got weights=True, which asks for timm's ImageNet "
                f"weights, but checkpoint {checkpoint!r} gives the backbone its "
                "pretrained weights; leave --model.init_args.weights out (false) to "
                "fine-tune from the checkpoint, or drop the checkpoint for an "
                "ImageNet-initialised supervised run."
            )
            raise ValueError(msg)
        check_schedule(warmup_fraction)
        check_optimiser(lr, weight_decay, 1e-3, backbone_lr=backbone_lr)
        if pos_weight is not None and not pos_weight > 0:
            msg = (
                f"--model.init_args.pos_weight {pos_weight:g} must be above 0 (the "
                "weight of irrigated targets relative to not-irrigated ones, 1 = "
                "alike); pass e.g. 2 to count irrigated patches twice, or leave "
                "it unset."
            )
            raise ValueError(msg)
        #: The data the encoder was pretrained on, read from *checkpoint* when
        #: the network is built (None without one, or if it records none).
        self.pretrained_data: DataMetadata | None = None
        super().__init__()
        # Saved absolute, so `--ckpt_path` works from any folder. Set after
        # saving: LightningCLI saves the hyperparameters it parsed, not these.
        self.hparams["checkpoint"] = absolute_if_present(checkpoint)

    def _spec(self) -> tuple[ModelSpec, dict[str, Any] | None]:
        hp = self.hparams
        head_layers = hp["head_layers"] if hp["problem"] == "classification" else 0
        if hp["checkpoint"] is not None and not Path(hp["checkpoint"]).exists():
            self.build_without(
                not_found(
                    "Checkpoint",
                    hp["checkpoint"],
                    "a SimCLR fit run (`make demo`, for the quickstart's)"
                    if "simclr_quickstart" in str(hp["checkpoint"])
                    else "a SimCLR fit run",
                ),
                "test, validate, predict or a resumed fit",
            )
        if hp["checkpoint"] is None or self.missing_checkpoint is not None:
            spec = ModelSpec(
                model=hp["model"] or DEFAULT_MODEL,
                in_channels=hp["in_channels"] or DEFAULT_IN_CHANNELS,
                problem=hp["problem"],
                head_layers=head_layers,
                channels_last=hp["channels_last"],
                backbone_kwargs=hp["backbone_kwargs"] or None,
            )
            return spec, None
        checkpoint, meta = read_checkpoint(hp["checkpoint"], ["simclr"])
        pretrained = checkpoint.get("hyper_parameters", {})
        for name in ("model", "in_channels"):
            if hp[name] is not None and hp[name] != meta.get(name):
                msg = (
                    f"FineTuneTask got {name}={hp[name]!r} but checkpoint "
                    f"{hp['checkpoint']!r} holds a backbone with {name}="
                    f"{meta.get(name)!r}; drop --model.init_args.{name} or pass a "
                    "checkpoint pretrained with it."
                )
                raise ValueError(msg)
        spec = ModelSpec(
            model=meta["model"],
            in_channels=meta["in_channels"],
            problem=hp["problem"],
            head_layers=head_layers,
            hidden_dim=pretrained.get("hidden_dim"),
            output_dim=pretrained.get("output_dim", 128),
            projection_layers=pretrained.get("head_layers", 3),
            channels_last=hp["channels_last"],
            backbone_kwargs={
                **(meta.get("backbone_kwargs") or {}),
                **(hp["backbone_kwargs"] or {}),
            }
            or None,
        )
        data = meta.get("data")
        self.pretrained_data = None if data is None else DataMetadata.from_dict(data)
        return spec, checkpoint["state_dict"]

    def configure_models(self) -> None:
        """Build the network, load the pretrained weights and apply the freezing."""
        spec, state = self._spec()
        # ImageNet weights only start a network that no checkpoint fills.
        imagenet = self.hparams["weights"] and self.hparams["checkpoint"] is None
        self.model = IrrigationModel(spec, pretrained=imagenet)
        if state is not None:
            self._load_backbone(sub_state(state, "backbone."))
            blocks = sub_state(state, "projection_head.blocks.")
            self.model.head.load_state_dict(
                {
                    key: value
                    for key, value in blocks.items()
                    if int(key.split(".")[0]) < spec.head_layers
                }
            )
        self._freeze()

    def _load_backbone(self, state: dict[str, Tensor]) -> None:
        """Load the checkpoint's backbone weights into the network.

        Args:
            state: the SimCLR checkpoint's backbone weights.

        Raises:
            ValueError: if ``backbone_kwargs`` built a network they do not fit.
        """
        try:
            if self.model.unet is None:
                self.model.backbone.load_state_dict(state)
            else:
                load_encoder_state(self.model.backbone, state)
        except (RuntimeError, ValueError) as error:
            if not self.hparams["backbone_kwargs"]:
                raise
            # load_state_dict heads its list of problems with a line of its own.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            detail = (
                lines[1] if lines[0].startswith("Error(s) in loading") else lines[0]
            )
            detail = textwrap.shorten(detail.rstrip(". "), 200)
            msg = (
                f"FineTuneTask's backbone_kwargs={self.hparams['backbone_kwargs']!r} "
                f"build a {self.model.spec.model} that checkpoint "
                f"{self.hparams['checkpoint']!r}'s weights do not fit ({detail}); "
                "pass only options that keep the weights' shapes, such as "
                "drop_path_rate, or none."
            )
            raise ValueError(msg) from None

    def _freeze(self) -> None:
        #: Stages kept fixed (a plain list: they are saved under ``model.``).
        self.frozen: list[Stage] = self._frozen_stages()
        for stage in self.frozen:
            # Eval mode keeps BatchNorm statistics fixed: Lightning restores each
            # module's own mode after validation and never calls train() itself.
            stage.requires_grad_(False).eval()

    def rebuild(self, spec: ModelSpec) -> None:
        """Build the network *spec* describes, with this task's freezing.

        Args:
            spec: the architecture a restored checkpoint records.

        Raises:
            ValueError: if the checkpoint holds a model of the other problem type.
        """
        if spec.problem != self.model.spec.problem:
            msg = (
                f"The checkpoint holds a {spec.problem} model but the task is set "
                f"up for {self.model.spec.problem}; set --model.init_args.problem "
                f"{spec.problem}."
            )
            raise ValueError(msg)
        super().rebuild(spec)
        self._freeze()

    def _frozen_stages(self) -> list[Stage]:
        stages = self.model.stages()
        match self.hparams["freeze"]:
            case "none":
                return []
            case "backbone":
                return [Stage("backbone", [self.model.backbone])]
            case "all_but_last_n":
                n = self.hparams["trainable_layers"]
                if not 0 <= n <= len(stages):
                    head = len(self.model.head)
                    msg = (
                        f"trainable_layers must be between 0 and {len(stages)} "
                        f"({self.model.spec.model}'s {len(stages) - head} backbone "
                        f"stages plus {head} kept head block{'s' * (head != 1)}), "
                        f"got {n}."
                    )
                    raise ValueError(msg)
                return stages[: len(stages) - n]
        msg = (
            "freeze must be 'none', 'backbone' or 'all_but_last_n', got "
            f"{self.hparams['freeze']!r}."
        )
        raise ValueError(msg)

    def train(self, mode: bool = True) -> "FineTuneTask":
        """Switch modes, keeping frozen stages (and their BN statistics) fixed.

        Args:
            mode: training (True) or evaluation (False) mode.

        Returns:
            self.
        """
        super().train(mode)
        if mode:
            for stage in getattr(self, "frozen", []):
                stage.eval()
        return self

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the binary loss on the labelled patches or pixels.

        Args:
            batch: ``image`` ``[B, C, H, W]`` and ``mask`` ``[B, H, W]`` or
                ``label`` ``[B]``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            The loss to minimise.
        """
        logits = self.model(batch["image"])
        loss = binary_loss(
            logits,
            self.targets(batch),
            kind=self.hparams["loss"],
            pos_weight=self.hparams["pos_weight"],
            focal_gamma=self.hparams["focal_gamma"],
        )
        self.log("train_loss", loss, batch_size=logits.shape[0], prog_bar=True)
        return loss

    def on_fit_start(self) -> None:
        """Check the data against the pretraining data, then record it.

        Warns:
            UserWarning: if the encoder was pretrained on another spatial
                split, or the datamodule trains on unlabelled patches too.
        """
        super().on_fit_start()
        self._warn_other_pretraining_split()
        self._warn_unlabeled()
        if self.frozen:
            expect_frozen_modules()
            rank_zero_info(self._freezing_summary())

    def _warn_other_pretraining_split(self) -> None:
        """Warn when the encoder was pretrained on another split of this data.

        An encoder pretrained on other data (BigEarthNet patches for a scene,
        or a scene that does not overlap this one) has seen none of this
        data's imagery: that is said in an info line, its split not compared.
        """
        trained, current = self.pretrained_data, self.data_metadata
        if trained is not None and current is not None and other_data(trained, current):
            rank_zero_info(
                f"Checkpoint {self.hparams['checkpoint']!r} was pretrained on other "
                f"data ({describe_data(trained)}) than the datamodule's "
                f"({describe_data(current)}), so its pretraining split is not "
                "compared with this one."
            )
            return
        splits = split_change(trained, current)
        if splits is None:
            return
        advice = split_advice(
            trained, current, "fine-tune with", "it was pretrained with"
        )
        warnings.warn(
            f"Checkpoint {self.hparams['checkpoint']!r} was pretrained on spatial "
            f"split {splits[0]} but the datamodule makes split {splits[1]}, so "
            "the encoder has seen the imagery of this split's val and test "
            f"blocks and the scores may come out too high; {advice}, or pretrain "
            "again on this split.",
            UserWarning,
            stacklevel=2,
        )

    def _warn_unlabeled(self) -> None:
        """Warn when the datamodule adds unlabelled patches (meant for distilling)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if not getattr(datamodule, "unlabeled", False):
            return
        if getattr(datamodule, "label_fraction", None) is None:
            return  # every patch keeps its labels: unlabeled changes nothing
        warnings.warn(
            "--data.init_args.unlabeled true trains on every patch of the train "
            "blocks with only the labelled subset's labels kept, which is meant "
            "for distillation: most of FineTuneTask's batches then hold no label "
            "and add nothing to the loss; pass --data.init_args.unlabeled false "
            "to fine-tune on the labelled subset alone.",
            UserWarning,
            stacklevel=2,
        )

    def _freezing_summary(self) -> str:
        """Which pretrained stages stay fixed and which train, by module name."""
        trained = [
            stage.name
            for stage in self.model.stages()
            if any(p.requires_grad for p in stage.parameters())
        ]
        new = "the decoder" if self.model.unet is not None else "the classifier"
        backbone = list(self.model.backbone.parameters())
        total = sum(p.numel() for p in backbone)
        share = sum(p.numel() for p in backbone if p.requires_grad) / total
        return (
            f"Frozen (freeze={self.hparams['freeze']}): "
            f"{', '.join(stage.name for stage in self.frozen)}; "
            f"trained: {', '.join([*trained, new])}; {share:.1%} of "
            f"{self.model.spec.model}'s backbone parameters train"
        )

    def earlier_stage(self) -> tuple[str, DataMetadata] | None:
        """The pretraining checkpoint and its data, when one was given.

        Returns:
            What to call the checkpoint in messages, and its data.
        """
        if self.pretrained_data is None:
            return None
        return f"checkpoint {self.hparams['checkpoint']!r}", self.pretrained_data

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW over the trainable parameters, pretrained stages at *backbone_lr*.

        Returns:
            The optimiser and its warm-up + cosine schedule.
        """
        stages = self.model.stages()
        pretrained = {id(p) for stage in stages for p in stage.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [
            {"params": [p for p in trainable if id(p) not in pretrained]},
            {
                "params": [p for p in trainable if id(p) in pretrained],
                "lr": self.hparams["backbone_lr"] or self.hparams["lr"],
            },
        ]
        return self.adamw_schedule([g for g in groups if g["params"]])

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Record where the encoder came from.

        Returns:
            ``pretrained_from``: the SimCLRv2 checkpoint path, None for the
            supervised baseline.
        """
        return {"pretrained_from": cast(str | None, self.hparams["checkpoint"])}
