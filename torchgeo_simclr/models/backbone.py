"""timm backbones for N-band imagery."""

import difflib
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import timm
import torch
from timm.models import group_parameters
from torch import Tensor, nn


def create_backbone(
    name: str,
    in_channels: int = 12,
    pretrained: bool = False,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Create a timm backbone that maps an image batch to pooled features.

    Args:
        name: any timm model name, e.g. ``"resnet18"`` or ``"resnet152"``.
        in_channels: number of input bands (12 for Sentinel-2 L2A).
        pretrained: load timm's ImageNet weights (needs them in the local cache
            or network access); the first convolution is adapted to
            *in_channels* by timm.
        options: further keyword arguments of ``timm.create_model``, e.g.
            ``{"drop_path_rate": 0.1}`` or, for a ViT at any patch size,
            ``{"dynamic_img_size": True, "dynamic_img_pad": True}``.

    Returns:
        A module mapping ``[B, in_channels, H, W]`` to ``[B, num_features]``; it
        has timm's ``num_features`` attribute.

    Raises:
        ValueError: if *name* is not a timm model, or *options* set what this
            function sets itself.
    """
    check_backbone_options(options)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        msg = (
            f"Backbone {name!r} is not a timm model{hint}; expected a name from "
            "timm.list_models(), e.g. 'resnet18', 'resnet50' or 'resnet152'."
        )
        raise ValueError(msg)
    try:
        with imagenet_weights(name, pretrained):
            model: nn.Module = timm.create_model(
                name,
                in_chans=in_channels,
                num_classes=0,
                pretrained=pretrained,
                **(options or {}),
            )
    except TypeError as error:
        if not options:
            raise
        msg = (
            f"Backbone {name!r} does not take backbone_kwargs {dict(options)} "
            f"({error}); drop the options it does not know."
        )
        raise ValueError(msg) from None
    return model


#: ``timm.create_model`` arguments the tasks set themselves, from their own
#: options (bands, weights) or because the pipeline relies on them.
RESERVED_OPTIONS = ("in_chans", "num_classes", "pretrained", "features_only")

#: The ``timm.create_model`` (and ``build_model_with_cfg``) arguments that make
#: timm read or fetch files or weights: a weights file (``checkpoint_path``),
#: a model config naming one (``pretrained_cfg``, ``pretrained_cfg_overlay``),
#: ImageNet weights (``pretrained``, and how they are loaded:
#: ``pretrained_strict``, ``pretrained_filter_fn``) or another cache folder
#: (``cache_dir``). ``backbone_kwargs`` may set any other option, since a
#: checkpoint keeps them and passes them to timm again when it is read.
FILE_OPTIONS: frozenset[str] = frozenset(
    {
        "cache_dir",
        "checkpoint_path",
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "pretrained_filter_fn",
        "pretrained_strict",
    }
)


def file_options(options: Mapping[str, Any] | None) -> list[str]:
    """The keys of *options* that make timm read or fetch files, sorted.

    Args:
        options: ``backbone_kwargs`` as given or as a checkpoint records them.

    Returns:
        Those in :data:`FILE_OPTIONS`.
    """
    return sorted(str(key) for key in options or {} if key in FILE_OPTIONS)


def reserved_options(options: Mapping[str, Any] | None) -> list[str]:
    """The keys of *options* that the tasks set themselves, sorted.

    Args:
        options: ``backbone_kwargs`` as given or as a checkpoint records them.

    Returns:
        Those in :data:`RESERVED_OPTIONS`.
    """
    return sorted(str(key) for key in options or {} if key in RESERVED_OPTIONS)


def check_backbone_options(options: Mapping[str, Any] | None) -> None:
    """Refuse backbone options that clash with what the tasks set, or read files.

    Args:
        options: ``backbone_kwargs`` as given.

    Raises:
        ValueError: if *options* holds a key of :data:`RESERVED_OPTIONS` or of
            :data:`FILE_OPTIONS`.
    """
    if clash := reserved_options(options):
        msg = (
            f"backbone_kwargs may not set {', '.join(clash)}: the task sets it "
            "(in_channels and weights are options of their own); drop it."
        )
        raise ValueError(msg)
    if reading := file_options(options):
        msg = (
            f"backbone_kwargs may not set {', '.join(reading)}: it makes timm read "
            "or fetch another file each time a checkpoint of this network is read "
            "(weights come from --model.init_args.weights or a checkpoint); "
            "drop it."
        )
        raise ValueError(msg)


@contextmanager
def imagenet_weights(name: str, pretrained: bool) -> Iterator[None]:
    """Say in one sentence why pretrained weights could not be fetched.

    timm and segmentation_models_pytorch download ImageNet weights from the
    Hugging Face Hub on first use; offline, the Hub's error names neither the
    model nor the option that asked for them.

    Args:
        name: the timm model name.
        pretrained: whether weights are being loaded (nothing is caught if not).

    Raises:
        ValueError: if fetching the weights fails with an OS error (no network,
            no cached copy).
    """
    try:
        yield
    except OSError as error:
        if not pretrained:
            raise
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        msg = (
            f"ImageNet weights for backbone {name!r} could not be loaded ({first}); "
            "they are fetched from the Hugging Face Hub on first use and cached "
            "(~/.cache/huggingface), so fetch them once with network access, or "
            "set --model.init_args.weights false."
        )
        raise ValueError(msg) from None


def check_input_size(
    backbone: nn.Module,
    name: str,
    patch_size: int,
    option: str = "--data.init_args.patch_size",
) -> None:
    """Refuse patches a fixed-input-size backbone (e.g. a ViT) cannot take.

    Such a network (timm's ``pretrained_cfg["fixed_input_size"]``) would fail
    only at its first forward pass, with an assertion deep in timm. Built with
    ``dynamic_img_size`` (its patch embedding no longer strict) it takes sides
    that are multiples of its patch embedding, or any side with
    ``dynamic_img_pad`` (a ViT's option; timm's Swin does not take it).

    Args:
        backbone: a model made by :func:`create_backbone` (or its feature
            extractor).
        name: its timm name, for the message.
        patch_size: side of the data's patches, pixels.
        option: the setting that chose *patch_size*, for the message.

    Raises:
        ValueError: if the backbone cannot take *patch_size*.
    """
    embeds = [m for m in backbone.modules() if hasattr(m, "strict_img_size")]
    if embeds and not any(m.strict_img_size for m in embeds):
        embed = embeds[0]
        size: Any = embed.patch_size  # timm's (height, width), or one int
        step = int(size[0] if isinstance(size, tuple | list) else size)
        if patch_size % step and not getattr(embed, "dynamic_img_pad", False):
            lower, upper = patch_size // step * step, -(-patch_size // step) * step
            # A Swin's class does not take dynamic_img_pad; a ViT's does.
            pad = (
                ", or build it with dynamic_img_pad: true in backbone_kwargs too "
                "(any side)"
                if "dynamic_img_pad" in _size_options(name)
                else ""
            )
            msg = (
                f"Backbone {name!r}, built with dynamic_img_size, takes sides that "
                f"are multiples of its {step} px patch embedding but the patches "
                f"are {patch_size} px; set {option} {lower or upper} or {upper}"
                f"{pad}."
            )
            raise ValueError(msg)
        return
    config = getattr(backbone, "pretrained_cfg", None) or {}
    if not config.get("fixed_input_size") or not config.get("input_size"):
        return
    height, width = config["input_size"][-2:]
    if (height, width) != (patch_size, patch_size):
        dynamic = ""
        options = _size_options(name)
        if options == ("dynamic_img_size", "dynamic_img_pad"):  # a ViT
            dynamic = (
                f"; {name!r} built with backbone_kwargs {{dynamic_img_size: true, "
                "dynamic_img_pad: true} takes any size too"
            )
        elif options and embeds:  # a Swin: sides that its patches divide
            size = embeds[0].patch_size
            step = int(size[0] if isinstance(size, tuple | list) else size)
            dynamic = (
                f"; {name!r} built with backbone_kwargs {{dynamic_img_size: true}} "
                f"takes sides that are multiples of {step} px too"
            )
        msg = (
            f"Backbone {name!r} takes only {height} x {width} px inputs (timm's "
            f"fixed_input_size) but the patches are {patch_size} px; set {option} "
            f"{height}, or pick a backbone that takes any size (e.g. resnet18, "
            f"regnetx_002, efficientnet_b0){dynamic}."
        )
        raise ValueError(msg)


def _size_options(name: str) -> tuple[str, ...]:
    """Which of ``dynamic_img_size`` and ``dynamic_img_pad`` timm model *name* takes.

    A ViT takes both; a Swin only ``dynamic_img_size`` (timm refuses
    ``dynamic_img_pad`` for it); most other networks neither. Found by building
    the model on the meta device (no weights), as a feature extractor (a
    U-Net's encoder) no longer has its model's class.

    Args:
        name: a timm model name.

    Returns:
        The options it accepts, in that order.
    """
    for options in (("dynamic_img_size", "dynamic_img_pad"), ("dynamic_img_size",)):
        kwargs: dict[str, Any] = dict.fromkeys(options, True)
        try:
            with torch.device("meta"):
                timm.create_model(name, pretrained=False, **kwargs)
        except Exception:  # e.g. TypeError: a class that lacks an option
            continue
        return options
    return ()


def feature_size(backbone: nn.Module) -> int:
    """Size of the pooled features a :func:`create_backbone` model returns.

    timm's ``num_features`` is the width of the last feature map; models with a
    pre-logits head (MobileNetV3, LCNet, ...) return ``head_hidden_size``
    features instead.

    Args:
        backbone: a model made by :func:`create_backbone`.

    Returns:
        The length of each row of the backbone's output.
    """
    size = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return int(size)  # type: ignore[arg-type]


class PooledFeatures(nn.Module):
    """Global-average-pooled last feature map of a multi-scale encoder.

    Wraps a timm ``features_only`` network (the encoder of a U-Net), which
    returns one feature map per stage, so it returns pooled features like the
    models of :func:`create_backbone`.
    """

    #: The wrapped encoder.
    encoder: nn.Module

    def __init__(self, encoder: nn.Module) -> None:
        """Initialise a new PooledFeatures.

        Args:
            encoder: a timm ``features_only`` network (with ``feature_info``).
        """
        super().__init__()
        #: The wrapped encoder, returning one feature map per stage.
        self.encoder = encoder
        info: Any = encoder.feature_info
        #: Channels of the last feature map: the length of each output row.
        self.num_features = int(info.channels()[-1])

    def forward(self, x: Tensor) -> Tensor:
        """Pool the deepest feature map.

        Args:
            x: images ``[B, C, H, W]``.

        Returns:
            Features ``[B, num_features]``.
        """
        features: list[Tensor] = self.encoder(x)
        return features[-1].mean(dim=(2, 3))


#: The group ordinal that makes timm's ``group_parameters`` put a name in the
#: group before it (timm's own ``MATCH_PREV_GROUP``, a private name).
MATCH_PREV_GROUP = (99999,)


def stage_of_parameters(backbone: nn.Module) -> dict[str, int]:
    """Stage of each parameter of a timm backbone, numbered input to output.

    The stages are timm's own, ``group_matcher(coarse=True)`` (the grouping
    that its layer-wise learning-rate decay refines into blocks): a ResNet's
    stem (``conv1``, ``bn1``) and ``layer1`` ... ``layer4``, an EfficientNet's
    stem and its 7 block stages (``conv_head`` and ``bn2`` with the last), a
    ConvNeXt's stem and 4 stages, a RegNet's stem and ``s1`` ... ``s4``, a
    ViT's embedding and each block (the final ``norm`` with the last). What a
    model's matcher leaves out, which timm would make a group of its own after
    the last stage (ConvNeXt's and Swin's final norm, MobileNetV3's 1x1 head
    convolution), joins the last stage here: it only transforms that stage's
    output, like EfficientNet's head convolution and a ViT's final norm, which
    timm itself puts with their last stage.

    A few timm models give no grouping (PiT, MetaFormer, CSATv2): there each
    top-level child with parameters is a stage, and parameters the model holds
    itself (a class token) belong to the first.

    Args:
        backbone: a model made by :func:`create_backbone`.

    Returns:
        The stage (0 = the stem) of each of its parameter names.
    """
    grouping = getattr(backbone, "group_matcher", None)
    if grouping is None:
        children = [
            name
            for name, child in backbone.named_children()
            if any(True for _ in child.parameters())
        ]
        stage = {name: i for i, name in enumerate(children)}
        return {
            name: stage.get(name.split(".")[0], 0)
            for name, _ in backbone.named_parameters()
        }
    matcher = cast(Callable[..., Any], grouping)(coarse=True)
    if isinstance(matcher, dict):
        # An empty pattern takes the names no other pattern took, and
        # MATCH_PREV_GROUP puts them in the group before it: the last stage.
        matcher = {**matcher, "unmatched": [("", MATCH_PREV_GROUP)]}
    return cast(dict[str, int], group_parameters(backbone, matcher, reverse=True))


def encoder_names(names: Iterable[str], encoder: Container[str]) -> dict[str, str]:
    """Translate a :func:`create_backbone` model's weight names to its encoder's.

    timm's ``features_only`` version of a model (a U-Net's encoder) has the
    same weights under other names or without the last layers: ConvNeXt's
    ``stages.0.…`` is ``stages_0.…`` (timm's ``FeatureListNet`` flattens
    sequential children), EfficientNet and MobileNetV3 drop ``conv_head`` and
    ``bn2``. A name's counterpart is the encoder name that equals it with
    leading dots turned into underscores.

    Args:
        names: weight names of the full model.
        encoder: weight names of the encoder.

    Returns:
        The encoder's name of each of *names* that it has.
    """
    translated: dict[str, str] = {}
    for key in names:
        parts = key.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(["_".join(parts[:depth]), *parts[depth:]])
            if name in encoder:
                translated[key] = name
                break
    return translated


def load_encoder_state(encoder: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a :func:`create_backbone` model's weights into its feature extractor.

    Each encoder weight is matched to the one of *state* that
    :func:`encoder_names` translates to its name; weights that only the full
    model has are left out, as timm does when it loads pretrained weights into
    a feature extractor.

    Args:
        encoder: a timm ``features_only`` network.
        state: the full backbone's state dict (no ``backbone.`` prefix).

    Raises:
        ValueError: if some encoder weight has no counterpart in *state*.
    """
    own = encoder.state_dict()
    matched = {name: state[key] for key, name in encoder_names(state, own).items()}
    missing = [key for key in own if key not in matched]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        msg = (
            f"The checkpoint's backbone has no weights for {len(missing)} of the "
            f"{len(own)} weights of the segmentation encoder ({shown}); pretrain "
            "and fine-tune the same timm model."
        )
        raise ValueError(msg)
    encoder.load_state_dict(matched)
