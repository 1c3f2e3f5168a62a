"""Irrigation models: a backbone plus a patch classifier or a per-pixel decoder."""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import segmentation_models_pytorch as smp
import torch
from torch import Tensor, nn

from .backbone import (
    create_backbone,
    encoder_names,
    feature_size,
    imagenet_weights,
    stage_of_parameters,
)
from .projection import ProjectionHead

#: The two problem types: one label per patch, or one label per pixel.
Problem = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an :class:`IrrigationModel` before loading weights.

    Checkpoints of the fine-tuning and distillation stages store this, so a model
    can be rebuilt from the checkpoint alone (no pretraining checkpoint needed).
    """

    #: timm backbone name, e.g. ``"resnet18"``.
    model: str
    #: Number of input bands.
    in_channels: int
    #: ``classification`` (a logit per patch) or ``segmentation`` (per pixel).
    problem: Problem = "classification"
    #: Projection-head blocks kept on top of the backbone (classification only).
    head_layers: int = 0
    #: Width of the pretrained projection head's hidden layers (None: features).
    hidden_dim: int | None = None
    #: Output size of the pretrained projection head.
    output_dim: int = 128
    #: Number of blocks of the pretrained projection head.
    projection_layers: int = 3
    #: Run in channels-last (NHWC) memory order: weights and inputs. Faster
    #: for some networks on some hardware (RegNetX-200MF: 1.2x at inference
    #: and 1.4x in training on a 2-core Intel CPU), slower for others
    #: (ResNet-18: 0.8x there); the same numbers up to rounding either way.
    channels_last: bool = False
    #: Further ``timm.create_model`` arguments of the backbone, e.g.
    #: ``{"dynamic_img_size": True, "dynamic_img_pad": True}`` (None: none).
    backbone_kwargs: dict[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dictionary for a checkpoint.

        Returns:
            The fields.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Rebuild from :meth:`to_dict`'s output.

        Args:
            data: the stored dictionary.

        Returns:
            The spec.
        """
        return cls(**data)


class Stage(nn.Module):
    """Part of a pretrained network that is frozen or trained as one unit.

    It refers to modules and parameters of the network without being part of
    it (nothing is saved under it): ``stage.requires_grad_(False).eval()``
    freezes them and ``stage.parameters()`` lists them.
    """

    #: What a log calls it: its parts' names in the :class:`IrrigationModel`
    #: joined by ``+``, e.g. ``backbone.layer4`` or ``backbone.blocks.11+norm``.
    name: str
    #: Its modules, each whole.
    parts: nn.ModuleList
    #: Its parameters held directly by a module that spans several stages
    #: (a ViT's ``cls_token`` and ``pos_embed``, held by the backbone itself).
    loose: nn.ParameterList

    def __init__(
        self,
        name: str,
        modules: Sequence[nn.Module],
        parameters: Sequence[nn.Parameter] = (),
    ) -> None:
        """Initialise a new Stage.

        Args:
            name: what a log calls it.
            modules: its modules, each whole.
            parameters: its parameters outside *modules*.
        """
        super().__init__()
        #: What a log calls it: its parts' names in the :class:`IrrigationModel`
        #: joined by ``+``, e.g. ``backbone.layer4`` or ``backbone.blocks.11+norm``.
        self.name = name
        #: Its modules, each whole.
        self.parts = nn.ModuleList(modules)
        #: Its parameters held directly by a module that spans several stages
        #: (a ViT's ``cls_token`` and ``pos_embed``, held by the backbone itself).
        self.loose = nn.ParameterList(parameters)


class IrrigationModel(nn.Module):
    """Backbone (+ kept projection-head blocks) + a binary irrigation output.

    * ``classification``: backbone → pooled features → the first
      ``head_layers`` blocks of the SimCLRv2 projection head → a linear layer
      giving one logit per patch (SimCLRv2's fine-tuning recipe).
    * ``segmentation``: a U-Net decoder (segmentation_models_pytorch) on the
      backbone's feature maps, one logit per pixel.

    The backbone is the same timm network as in pretraining, so a
    :class:`~torchgeo_simclr.tasks.SimCLRv2Task` backbone's weights load into
    :attr:`backbone` unchanged.
    """

    #: The timm backbone (classification) or the U-Net's encoder (segmentation).
    backbone: nn.Module
    #: The kept projection-head blocks (empty for ``head_layers=0``).
    head: nn.Sequential
    #: Linear layer to one logit (classification only).
    classifier: nn.Module | None
    #: The U-Net (segmentation only); its encoder is :attr:`backbone`.
    unet: nn.Module | None
    #: Stage of each backbone parameter name, input to output (0 = the stem),
    #: as timm groups the full model (see
    #: :func:`~torchgeo_simclr.models.backbone.stage_of_parameters`).
    stage_of: dict[str, int]

    def __init__(self, spec: ModelSpec, pretrained: bool = False) -> None:
        """Initialise a new IrrigationModel.

        Args:
            spec: the architecture.
            pretrained: start the backbone from timm's ImageNet weights.

        Raises:
            ValueError: if the spec asks for projection-head blocks on a
                segmentation model, or for more blocks than the head has.
        """
        super().__init__()
        #: The architecture, stored in checkpoints to rebuild the model.
        self.spec = spec
        if not 0 <= spec.head_layers <= spec.projection_layers:
            msg = (
                f"head_layers must be between 0 and the pretrained projection "
                f"head's {spec.projection_layers} layers, got {spec.head_layers}."
            )
            raise ValueError(msg)
        if spec.problem == "segmentation":
            self._build_unet(spec, pretrained)
        else:
            self._build_classifier(spec, pretrained)
        #: Memory order of the weights and of :meth:`forward`'s input.
        self.memory_format = torch.contiguous_format
        if spec.channels_last:
            self.use_memory_format(torch.channels_last)

    def use_memory_format(self, memory_format: torch.memory_format) -> None:
        """Hold the weights in *memory_format* and run inputs in it too.

        Args:
            memory_format: ``torch.channels_last`` or ``torch.contiguous_format``.
        """
        self.memory_format = memory_format
        self.to(memory_format=memory_format)

    def _build_unet(self, spec: ModelSpec, pretrained: bool) -> None:
        """Build :attr:`unet` (and :attr:`backbone`, its encoder) for *spec*."""
        if spec.head_layers:
            msg = (
                "head_layers applies to classification only (the projection "
                f"head works on pooled features), got {spec.head_layers} for "
                "segmentation; set head_layers to 0."
            )
            raise ValueError(msg)
        options = spec.backbone_kwargs or {}
        # Validates the name and options, and groups the weights into stages.
        full = create_backbone(spec.model, spec.in_channels, options=options)
        try:
            with imagenet_weights(spec.model, pretrained):
                unet = smp.Unet(
                    encoder_name=f"tu-{spec.model}",
                    encoder_weights="imagenet" if pretrained else None,
                    in_channels=spec.in_channels,
                    classes=1,
                    **options,
                )
        except ValueError as error:
            if "downsampling" not in str(error):
                raise
            msg = (
                f"Backbone {spec.model!r} cannot feed a U-Net "
                f"({str(error).rstrip('.')}): its "
                "feature maps are not a pyramid of halving sizes (a plain ViT "
                "keeps one size); use problem classification, or a backbone "
                "such as resnet18, convnext_atto, efficientnet_b0 or swin_*."
            )
            raise ValueError(msg) from None
        self.unet = unet
        self.backbone = cast(nn.Module, unet.encoder.model)
        stage_of = stage_of_parameters(full)
        names = encoder_names(stage_of, dict(self.backbone.named_parameters()))
        self.stage_of = {names[key]: stage_of[key] for key in names}
        self.head = nn.Sequential()
        self.classifier = None

    def _build_classifier(self, spec: ModelSpec, pretrained: bool) -> None:
        """Build :attr:`backbone`, :attr:`head` and :attr:`classifier` for *spec*."""
        self.unet = None
        self.backbone = create_backbone(
            spec.model, spec.in_channels, pretrained, spec.backbone_kwargs
        )
        self.stage_of = stage_of_parameters(self.backbone)
        features = feature_size(self.backbone)
        projection = ProjectionHead(
            features,
            spec.hidden_dim or features,
            spec.output_dim,
            spec.projection_layers,
        )
        self.head = nn.Sequential(*projection.blocks[: spec.head_layers])
        dims = [features] + [spec.hidden_dim or features] * (spec.projection_layers - 1)
        dims.append(spec.output_dim)
        self.classifier = nn.Linear(dims[spec.head_layers], 1)

    def forward(self, x: Tensor) -> Tensor:
        """Compute irrigation logits.

        Args:
            x: normalised images ``[B, C, H, W]``.

        Returns:
            Logits ``[B]`` (classification) or ``[B, H, W]`` (segmentation);
            ``sigmoid`` of a logit is the probability of irrigated.
        """
        x = x.contiguous(memory_format=self.memory_format)
        if self.unet is not None:
            logits: Tensor = self.unet(x)
            return logits[:, 0]
        assert self.classifier is not None
        out: Tensor = self.classifier(self.head(self.backbone(x)))
        return out[:, 0]

    def stages(self) -> list[Stage]:
        """The pretrained part, input to output, in units for partial freezing.

        Returns:
            The backbone's stages as timm groups them (:attr:`stage_of`): for a
            ResNet ``conv1+bn1, layer1, ..., layer4``, for an EfficientNet its
            stem and 7 block stages, for a ViT its embedding and each block;
            followed by the kept projection-head blocks. The classifier and the
            decoder are not included: they are new and always trained.
        """
        parts: dict[int, list[tuple[str, nn.Module | nn.Parameter]]] = defaultdict(list)
        for stage, name, part in _parts(self.backbone, self.stage_of):
            parts[stage].append((name, part))
        backbone = []
        for stage in sorted(parts):
            names = "+".join(name for name, _ in parts[stage])
            members = [part for _, part in parts[stage]]
            backbone.append(
                Stage(
                    f"backbone.{names}" if names else "backbone",
                    [part for part in members if isinstance(part, nn.Module)],
                    [part for part in members if isinstance(part, nn.Parameter)],
                )
            )
        head = [Stage(f"head.{i}", [block]) for i, block in enumerate(self.head)]
        return backbone + head


def _parts(
    module: nn.Module, stage_of: dict[str, int], prefix: str = ""
) -> Iterator[tuple[int, str, nn.Module | nn.Parameter]]:
    """Split *module* into the largest parts whose parameters share a stage.

    Args:
        module: a backbone or one of its modules.
        stage_of: stage of each backbone parameter name.
        prefix: the backbone's name of *module* plus a dot ("" for the backbone).

    Yields:
        The stage, the backbone's name and the module of each part, or of a
        parameter that *module* holds itself when its modules span stages.
    """
    found = {stage_of[prefix + name] for name, _ in module.named_parameters()}
    if len(found) == 1:
        yield found.pop(), prefix.removesuffix("."), module
    elif found:
        for name, parameter in module.named_parameters(recurse=False):
            yield stage_of[prefix + name], prefix + name, parameter
        for name, child in module.named_children():
            yield from _parts(child, stage_of, f"{prefix}{name}.")
