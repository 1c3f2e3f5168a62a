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
