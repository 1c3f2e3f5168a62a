from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from timm.layers import DropPath
from torch import nn

from torchgeo_simclr.models import ProjectionHead, create_backbone
from torchgeo_simclr.models.backbone import check_input_size
from torchgeo_simclr.models.checkpoint import (
    DataMetadata,
    build_loaded,
    load_encoder,
    load_model,
    read_checkpoint,
)
from torchgeo_simclr.models.classifier import IrrigationModel, ModelSpec
from torchgeo_simclr.patch_labels import patch_labels
from torchgeo_simclr.tasks import FineTuneTask, SimCLRv2Task


def test_projection_head_shapes_and_partial_depth() -> None:
    head = ProjectionHead(512, 256, 128, num_layers=3)
    x = torch.randn(8, 512)
    assert head(x).shape == (8, 128)
    assert head(x, layers=1).shape == (8, 256)
    assert head(x, layers=0).shape == (8, 512)
    # Hidden blocks end in ReLU, the last one does not (SimCLRv2).
    assert (head(x, layers=1) >= 0).all()
    assert (head(x) < 0).any()


def test_projection_head_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="num_layers >= 1"):
        ProjectionHead(4, 4, 4, num_layers=0)


def test_backbone_takes_twelve_bands() -> None:
    backbone = create_backbone("resnet18", in_channels=12)
    assert backbone(torch.randn(2, 12, 32, 32)).shape == (2, backbone.num_features)


def test_unknown_backbone_is_named() -> None:
    with pytest.raises(ValueError, match="'resnet9000' is not a timm model"):
        create_backbone("resnet9000")
    with pytest.raises(ValueError, match=r"\(did you mean 'resnet18'"):
        create_backbone("resnet_18")


def test_weights_that_cannot_be_fetched_name_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Offline, the Hub's own error named neither the model nor the option.
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", "/nonexistent/hf")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", "/nonexistent/hf")
    with pytest.raises(ValueError, match=r"ImageNet weights for backbone 'resnet18'"):
        create_backbone("resnet18", pretrained=True)
    with pytest.raises(ValueError, match=r"--model.init_args.weights false"):
        IrrigationModel(
            ModelSpec(model="resnet18", in_channels=12, problem="segmentation"), True
        )


def test_a_backbone_without_a_feature_pyramid_cannot_segment() -> None:
    spec = ModelSpec("vit_tiny_patch16_224", in_channels=12, problem="segmentation")
    with pytest.raises(ValueError, match=r"cannot feed a U-Net .*problem classif"):
        IrrigationModel(spec, False)


def test_patch_labels_majority_and_ignore() -> None:
    mask = torch.full((4, 4, 4), 255)
    mask[0] = 1
    mask[1] = 0
    mask[2, :3] = 1  # 12 of 16 labelled, all irrigated
    mask[3, :1] = 0  # 4 of 16 labelled: too few
    assert patch_labels(mask).tolist() == [1, 0, 1, 255]


def test_metadata_round_trip() -> None:
    meta = DataMetadata(
        bands=("B04", "B08"), mean=(1.0, 2.0), std=(3.0, 4.0), patch_size=64
    )
    assert DataMetadata.from_dict(meta.to_dict()) == meta


def test_load_encoder_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        load_encoder(tmp_path / "missing.ckpt")
    wrong = tmp_path / "finetuned.ckpt"
    torch.save({"state_dict": {}, "torchgeo_simclr": {"kind": "finetune"}}, wrong)
    with pytest.raises(ValueError, match="kind 'finetune' but a 'simclr' checkpoint"):
        load_encoder(wrong)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="no torchgeo-simclr metadata"):
        load_encoder(foreign)


def test_a_pretraining_checkpoint_where_a_trained_model_is_expected(
    tmp_path: Path,
) -> None:
    # It said only "pass a checkpoint written by the finetune stage": a
    # distilled one does as well, and no command that writes one was named.
    pretrained = tmp_path / "simclr.ckpt"
    torch.save({"state_dict": {}, "torchgeo_simclr": {"kind": "simclr"}}, pretrained)
    with pytest.raises(ValueError, match="has kind 'simclr'") as info:
        load_model(pretrained)
    assert str(info.value) == (
        f"Checkpoint {str(pretrained)!r} has kind 'simclr' but a 'finetune' or "
        "'distill' checkpoint was expected; pass a checkpoint written by the "
        "fine-tuning or distillation stage, e.g. by `torchgeo fit --config "
        "conf/segment_quickstart.yaml` (a per-pixel model, for 10 m maps) or "
        "conf/finetune_quickstart.yaml."
    )
    finetuned = tmp_path / "finetuned.ckpt"
    torch.save({"state_dict": {}, "torchgeo_simclr": {"kind": "finetune"}}, finetuned)
    with pytest.raises(ValueError, match="has kind 'finetune'") as info:
        load_encoder(finetuned)
    assert str(info.value).endswith(
        "pass a checkpoint written by the SimCLR pretraining stage, e.g. by "
        "`torchgeo fit --config conf/simclr_quickstart.yaml`."
    )
    # A kind of a task outside the package is named as it is (it was a KeyError).
    with pytest.raises(ValueError, match="has kind 'finetune'") as info:
        read_checkpoint(finetuned, ("mine",))
    assert str(info.value).endswith("pass a checkpoint written by the 'mine' stage.")


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_075", "lcnet_100"])
def test_backbones_with_a_pre_logits_head_get_a_matching_classifier(name: str) -> None:
    from torchgeo_simclr.models.classifier import IrrigationModel, ModelSpec

    # MobileNetV3 and LCNet return head_hidden_size features, not num_features.
    model = IrrigationModel(ModelSpec(name, 12, head_layers=1))
    assert model(torch.randn(2, 12, 32, 32)).shape == (2,)


class _DerivedBuffer(nn.Module):
    """A buffer computed in the constructor and left out of the state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("offset", torch.arange(2.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.offset


class _ReadsATensor(nn.Module):
    """A constructor that needs tensor values, which the meta device lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.width = int(torch.tensor(2).item())
        self.linear = nn.Linear(3, self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (lambda: create_backbone("resnet18"), (2, 12, 32, 32)),
        (_DerivedBuffer, (4, 3)),
        (_ReadsATensor, (4, 3)),
    ],
    ids=["resnet18", "non-persistent buffer", "reads a tensor"],
)
def test_a_loaded_network_computes_what_the_saved_one_did(
    build: Callable[[], nn.Module], shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    saved = build().eval()
    state = {key: value.clone() for key, value in saved.state_dict().items()}
    loaded = build_loaded(build, state).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), saved(x), rtol=0, atol=0)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


def test_weights_that_do_not_fit_are_named() -> None:
    state = create_backbone("resnet18").state_dict()
    del state["conv1.weight"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"conv1.weight"'):
        build_loaded(lambda: create_backbone("resnet18"), state)


def test_backbone_options_reach_every_stage(tmp_path: Path) -> None:
    # A ViT is fixed to 224 px unless built with dynamic_img_size; there was
    # no way to pass timm options, so ViTs could not run at 48 or 120 px.
    options = {"dynamic_img_size": True, "dynamic_img_pad": True}
    task = SimCLRv2Task(
        model="vit_tiny_patch16_224", backbone_kwargs=options, output_dim=16
    )
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    path = tmp_path / "vit.ckpt"
    torch.save(checkpoint, path)

    encoder = load_encoder(path)
    assert encoder.backbone_kwargs == options
    check_input_size(encoder.backbone, encoder.model, 120)
    assert encoder.backbone(torch.zeros(1, 12, 120, 120)).shape == (1, 192)

    finetuned = FineTuneTask(checkpoint=str(path), head_layers=1)
    assert finetuned.model.spec.backbone_kwargs == options
    assert hash(finetuned.model.spec)  # a frozen spec stays hashable
    assert finetuned.model(torch.zeros(2, 12, 48, 48)).shape == (2,)
    # Fine-tuning may add options that keep the weights, e.g. stochastic depth.
    deeper = FineTuneTask(checkpoint=str(path), backbone_kwargs={"drop_path_rate": 0.1})
    assert deeper.model.spec.backbone_kwargs == {**options, "drop_path_rate": 0.1}
    drops = [m.drop_prob for m in deeper.model.modules() if isinstance(m, DropPath)]
    assert drops
    assert max(drops) == pytest.approx(0.1)
    torch.testing.assert_close(
        deeper.model.backbone.state_dict(), finetuned.model.backbone.state_dict()
    )
    # Options that change the weights are refused in one line.
    with pytest.raises(ValueError, match=r"weights do not fit \(.*\); pass only"):
        FineTuneTask(checkpoint=str(path), backbone_kwargs={"embed_dim": 96})


def test_backbone_options_are_checked_in_one_line() -> None:
    with pytest.raises(ValueError, match="backbone_kwargs may not set in_chans"):
        create_backbone("resnet18", options={"in_chans": 3})
    # timm's TypeError reached LightningCLI, which printed the whole config.
    with pytest.raises(ValueError, match=r"'resnet18' does not take backbone_kwargs"):
        create_backbone("resnet18", options={"dynamic_img_size": True})


def test_a_dynamic_vit_takes_multiples_of_its_patch_embedding() -> None:
    # dynamic_img_size alone still asserts that sides divide by 16: the
    # check let 120 px through and the first step failed deep in timm.
    vit = create_backbone("vit_tiny_patch16_224", options={"dynamic_img_size": True})
    check_input_size(vit, "vit_tiny_patch16_224", 48)
    with pytest.raises(ValueError, match=r"multiples of its 16 px .* 112 or 128"):
        check_input_size(vit, "vit_tiny_patch16_224", 120)
    # A U-Net's encoder (timm's feature extractor) is checked the same way.
    spec = ModelSpec(
        "swin_tiny_patch4_window7_224",
        in_channels=12,
        problem="segmentation",
        backbone_kwargs={"dynamic_img_size": True},
    )
    unet = IrrigationModel(spec)
    check_input_size(unet.backbone, spec.model, 64)
    assert unet(torch.zeros(1, 12, 64, 64)).shape == (1, 64, 64)


def test_the_advice_for_a_fixed_size_backbone_is_what_timm_takes() -> None:
    # A Swin was advised {dynamic_img_size: true, dynamic_img_pad: true},
    # which timm's SwinTransformer refuses; it takes dynamic_img_size alone.
    vit, swin = "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"
    with pytest.raises(ValueError, match="224 x 224 px") as error:
        check_input_size(create_backbone(swin), swin, 48)
    message = str(error.value)
    assert "dynamic_img_pad" not in message, message
    assert "{dynamic_img_size: true} takes sides that are multiples of 4 px" in message
    with pytest.raises(ValueError, match="224 x 224 px") as error:
        check_input_size(create_backbone(vit), vit, 48)
    advice = "{dynamic_img_size: true, dynamic_img_pad: true} takes any size"
    assert advice in str(error.value)
    # ... as a U-Net's encoder too (timm's feature extractor of the Swin).
    unet = IrrigationModel(ModelSpec(swin, in_channels=12, problem="segmentation"))
    with pytest.raises(ValueError, match="224 x 224 px") as error:
        check_input_size(unet.backbone, swin, 48)
    assert "{dynamic_img_size: true} takes sides" in str(error.value)
    # Following the advice works: a Swin built so takes 48 px (and 52, not 50).
    options = {"dynamic_img_size": True}
    built = create_backbone(swin, options=options)
    check_input_size(built, swin, 48)
    assert built(torch.zeros(1, 12, 48, 48)).shape == (1, 768)
    with pytest.raises(ValueError, match="multiples of its 4 px") as error:
        check_input_size(built, swin, 50)
    assert str(error.value).endswith("set --data.init_args.patch_size 48 or 52.")
    # A dynamic ViT is pointed to dynamic_img_pad for any side; a Swin is not.
    with pytest.raises(ValueError, match=r"dynamic_img_pad: true in backbone_kwargs"):
        check_input_size(create_backbone(vit, options=options), vit, 50)


def test_a_missing_checkpoint_where_a_config_writes_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `predict` run before the README's `torchgeo fit` said only "pass the .ckpt
    # file that a fit run wrote".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "segment_quickstart.yaml").write_text("trainer: {}\n")
    given = "runs/segment_quickstart/checkpoints/last.ckpt"
    with pytest.raises(FileNotFoundError) as info:
        read_checkpoint(given, ("finetune",))
    assert str(info.value) == (
        f"Checkpoint {given!r} does not exist (read from the working directory "
        f"{tmp_path}); `torchgeo fit --config conf/segment_quickstart.yaml` writes "
        "it, or pass the .ckpt file that a fit run wrote."
    )
    # Without such a config, no command is guessed.
    with pytest.raises(FileNotFoundError, match=r"; pass the \.ckpt file that"):
        read_checkpoint("runs/elsewhere/checkpoints/last.ckpt", ("finetune",))


class _WritesMarker:
    """Unpickles as ``open(marker, "w")``: the file appears if it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_holding_other_objects_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checkpoints were read with weights_only=False: `predict --checkpoint` on
    # a file someone sent ran whatever code it held.
    from conftest import cli_error_line

    marker = tmp_path / "unpickled"
    path = tmp_path / "sent.ckpt"
    torch.save(
        {
            "state_dict": {},
            "hyper_parameters": {"payload": _WritesMarker(marker)},
            "torchgeo_simclr": {"kind": "finetune"},
        },
        path,
    )
    expected = (
        f"Checkpoint {str(path)!r} holds objects other than tensors and plain "
        f"values ({open.__module__}.open), so it was not written by a fit of "
        "torchgeo-simclr (or was altered since) and is not loaded, as unpickling "
        "it could run any code; if you trust it, load it yourself with "
        "torch.load(weights_only=False) and re-save it with only tensors and "
        "plain values, or else pass a checkpoint a fit of torchgeo-simclr wrote."
    )
    with pytest.raises(ValueError, match="holds objects other than") as info:
        read_checkpoint(path, ("finetune",))
    assert str(info.value) == expected
    with pytest.raises(ValueError, match="holds objects other than tensors"):
        load_model(path)
    args = ["--root", str(tmp_path), "--out", str(tmp_path / "map.tif")]
    err = cli_error_line(["predict", "--checkpoint", str(path), *args], capsys)
    assert expected in err
    assert not marker.exists()
    assert not (tmp_path / "map.tif").exists()
