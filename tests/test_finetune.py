"""FineTuneTask: kept head layers, freezing, checkpoint checks, segmentation, losses."""

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import quiet_trainer
from torch import Tensor
from torch.utils.data import DataLoader

from torchgeo_simclr.losses import binary_loss
from torchgeo_simclr.models.backbone import load_encoder_state
from torchgeo_simclr.models.classifier import IrrigationModel, ModelSpec, Problem
from torchgeo_simclr.tasks import FineTuneTask, SimCLRv2Task, finetune
from torchgeo_simclr.tasks.irrigation import StandInWarning

BATCH, BANDS, SIZE = 4, 12, 32

#: Width of each head block's output in the tiny checkpoint, by kept blocks.
FEATURES = {0: 512, 1: 32, 2: 32, 3: 16}


def save_simclr(path: Path, kind: str = "simclr", **hparams: Any) -> Path:
    """Save a Lightning-style SimCLRv2 checkpoint with distinctive weights."""
    torch.manual_seed(0)
    task = SimCLRv2Task(**({"model": "resnet18", "in_channels": BANDS} | hparams))
    with torch.no_grad():
        # Nudge every weight and statistic (batch-norm ones included, which
        # start equal everywhere), so a model that did not load them differs.
        for value in task.state_dict().values():
            if value.is_floating_point():
                value.add_(1e-3 * torch.rand_like(value))
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(checkpoint)
    checkpoint["torchgeo_simclr"]["kind"] = kind
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def simclr_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "simclr.ckpt"
    return save_simclr(path, output_dim=16, hidden_dim=32)


def sub_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def batch(size: int = SIZE, seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(BATCH, BANDS, size, size, generator=generator)
    mask = torch.zeros(BATCH, size, size, dtype=torch.long)
    mask[::2] = 1  # two irrigated patches, two not
    return {"image": image, "mask": mask}


@pytest.mark.parametrize("head_layers", [0, 1, 2, 3])
def test_kept_head_layers_come_from_the_checkpoint(
    simclr_ckpt: Path, head_layers: int
) -> None:
    task = FineTuneTask(checkpoint=str(simclr_ckpt), head_layers=head_layers)
    state = torch.load(simclr_ckpt, weights_only=False)["state_dict"]
    model = task.model
    assert len(model.head) == head_layers
    assert model.classifier is not None
    assert model.classifier.in_features == FEATURES[head_layers]

    backbone = sub_state(state, "backbone.")
    loaded = model.backbone.state_dict()
    assert loaded.keys() == backbone.keys()
    assert all(torch.equal(loaded[k], backbone[k]) for k in backbone)

    for i, block in enumerate(model.head):
        expected = sub_state(state, f"projection_head.blocks.{i}.")
        kept = block.state_dict()
        assert kept.keys() == expected.keys()
        assert all(torch.equal(kept[k], expected[k]) for k in expected)

    task.eval()
    assert task.model(batch()["image"]).shape == (BATCH,)


def test_more_head_layers_than_the_head_has(simclr_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"between 0 and .*3 layers, got 4"):
        FineTuneTask(checkpoint=str(simclr_ckpt), head_layers=4)


def grads(task: FineTuneTask) -> dict[str, bool]:
    """One step on a batch; which parameter prefixes got a gradient."""
    task.train()
    task.zero_grad()
    task.training_step(batch(), 0).backward()
    got: dict[str, bool] = {}
    for name, param in task.named_parameters():
        prefix = ".".join(name.split(".")[:3])  # e.g. model.backbone.layer4
        got[prefix] = got.get(prefix, False) or param.grad is not None
    return got


STAGES = (
    "model.backbone.conv1",
    "model.backbone.bn1",
    "model.backbone.layer1",
    "model.backbone.layer3",
    "model.backbone.layer4",
    "model.head.0",
    "model.classifier.weight",
)


@pytest.mark.parametrize(
    ("freeze", "trained"),
    [
        ("none", set(STAGES)),
        ("backbone", {"model.head.0", "model.classifier.weight"}),
        (
            "all_but_last_n",
            {"model.backbone.layer4", "model.head.0", "model.classifier.weight"},
        ),
    ],
)
def test_frozen_stages_get_no_gradient(
    simclr_ckpt: Path, freeze: str, trained: set[str]
) -> None:
    task = FineTuneTask(
        checkpoint=str(simclr_ckpt),
        head_layers=1,
        freeze=freeze,  # type: ignore[arg-type]
        trainable_layers=2,
    )
    got = grads(task)
    assert {stage for stage in STAGES if got[stage]} == trained
    if freeze == "all_but_last_n":
        # The last two stages of backbone + kept head: layer4 and the head block.
        last_two = task.model.stages()[-2:]
        assert [stage.name for stage in last_two] == ["backbone.layer4", "head.0"]
        assert list(last_two[0].parts) == [task.model.backbone.layer4]
        assert list(last_two[1].parts) == [task.model.head[0]]


def test_the_log_names_what_is_frozen(
    simclr_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The log says which stages train and how much of the backbone they hold.
    # (Read at the call: other tests' CLI runs quieten Lightning's logger.)
    logged: list[str] = []
    monkeypatch.setattr(finetune, "rank_zero_info", logged.append)
    fit_frozen_backbone(simclr_ckpt, "all_but_last_n")
    fit_frozen_backbone(simclr_ckpt, "backbone")
    assert logged == [
        "Frozen (freeze=all_but_last_n): backbone.conv1+bn1, backbone.layer1, "
        "backbone.layer2, backbone.layer3; trained: backbone.layer4, head.0, the "
        "classifier; 74.9% of resnet18's backbone parameters train",
        "Frozen (freeze=backbone): backbone; trained: head.0, the classifier; "
        "0.0% of resnet18's backbone parameters train",
    ]


def test_the_log_names_timm_stages_of_other_backbones() -> None:
    task = FineTuneTask(
        model="efficientnet_b0",
        head_layers=0,
        freeze="all_but_last_n",
        trainable_layers=2,
    )
    assert task._freezing_summary() == (
        "Frozen (freeze=all_but_last_n): backbone.conv_stem+bn1, backbone.blocks.0, "
        "backbone.blocks.1, backbone.blocks.2, backbone.blocks.3, backbone.blocks.4; "
        "trained: backbone.blocks.5, backbone.blocks.6+conv_head+bn2, the "
        "classifier; 78.7% of efficientnet_b0's backbone parameters train"
    )


def trained_backbone_weights(task: FineTuneTask) -> tuple[set[str], float]:
    """Names of the backbone's trainable parameters, and their share of its size."""
    params = dict(task.model.backbone.named_parameters())
    trained = {name for name, param in params.items() if param.requires_grad}
    size = sum(param.numel() for param in params.values())
    return trained, sum(params[name].numel() for name in trained) / size


@pytest.mark.parametrize(
    ("model", "head_layers", "last", "share"),
    [
        # The study's "all but the last two layers" on a ResNet, as the label-
        # efficiency runs were made: layer3 and layer4, or layer4 and the head.
        ("resnet18", 0, ("layer3.", "layer4."), 0.9),
        ("resnet18", 1, ("layer4.",), 0.7),
        ("resnet50", 0, ("layer3.", "layer4."), 0.9),
        ("resnet50", 1, ("layer4.",), 0.6),
        ("resnet152", 0, ("layer3.", "layer4."), 0.9),
        ("resnet152", 1, ("layer4.",), 0.25),
        # Other backbones: their last timm stages, a final norm or head
        # convolution with the last, not the model's last top-level children
        # (EfficientNet: the head convolution alone; ConvNeXt, ViT: every block).
        ("efficientnet_b0", 0, ("blocks.5.", "blocks.6.", "conv_head.", "bn2."), 0.7),
        ("efficientnet_b0", 1, ("blocks.6.", "conv_head.", "bn2."), 0.25),
        ("convnext_atto", 0, ("stages.2.", "stages.3.", "head.norm."), 0.9),
        ("convnext_atto", 1, ("stages.3.", "head.norm."), 0.5),
        ("regnetx_002", 0, ("s3.", "s4."), 0.9),
        ("vit_tiny_patch16_224", 0, ("blocks.10.", "blocks.11.", "norm."), 0.14),
        ("vit_tiny_patch16_224", 1, ("blocks.11.", "norm."), 0.07),
    ],
)
def test_all_but_last_two_trains_the_last_stages(
    model: str, head_layers: int, last: tuple[str, ...], share: float
) -> None:
    task = FineTuneTask(
        model=model,
        head_layers=head_layers,
        freeze="all_but_last_n",
        trainable_layers=2,
    )
    trained, trained_share = trained_backbone_weights(task)
    names = [name for name, _ in task.model.backbone.named_parameters()]
    assert trained == {name for name in names if name.startswith(last)}
    assert share < trained_share < 1
    assert all(  # the kept head blocks and the classifier
        param.requires_grad
        for name, param in task.model.named_parameters()
        if not name.startswith("backbone.")
    )


def test_a_backbone_without_timm_stages_has_its_top_level_children() -> None:
    # PiT (like MetaFormer and CSATv2) has no group_matcher: it still builds
    # and freezes, by top-level children, its class token with the embedding.
    task = FineTuneTask(
        model="pit_ti_224", head_layers=0, freeze="all_but_last_n", trainable_layers=2
    )
    assert [stage.name for stage in task.model.stages()] == [
        "backbone.pos_embed+cls_token+patch_embed",
        "backbone.transformers",
        "backbone.norm",
    ]
    trained, _ = trained_backbone_weights(task)
    assert {name.split(".")[0] for name in trained} == {"transformers", "norm"}


@pytest.mark.parametrize(
    ("model", "last_two", "frozen", "trained"),
    [
        ("efficientnet_b0", ("blocks.5.", "blocks.6."), "blocks.4", "blocks.5"),
        ("resnet18", ("layer3.", "layer4."), "layer2", "layer3"),
    ],
)
def test_all_but_last_two_of_a_segmentation_encoder(
    model: str, last_two: tuple[str, ...], frozen: str, trained: str
) -> None:
    # The U-Net's encoder (timm's features_only model; EfficientNet's lacks
    # the head convolution) has the full model's stages.
    task = FineTuneTask(
        model=model,
        problem="segmentation",
        freeze="all_but_last_n",
        trainable_layers=2,
    )
    names, share = trained_backbone_weights(task)
    every = [name for name, _ in task.model.backbone.named_parameters()]
    assert names == {name for name in every if name.startswith(last_two)}
    assert 0.7 < share < 1
    assert task.model.unet is not None
    assert all(p.requires_grad for p in task.model.unet.decoder.parameters())
    task.train()
    assert not task.model.backbone.get_submodule(frozen).training
    assert task.model.backbone.get_submodule(trained).training


def test_trainable_layers_out_of_range(simclr_ckpt: Path) -> None:
    match = r"between 0 and 6 \(resnet18's 5 backbone stages plus 1 kept head block\)"
    with pytest.raises(ValueError, match=rf"{match}, got 7\."):
        FineTuneTask(
            checkpoint=str(simclr_ckpt),
            head_layers=1,
            freeze="all_but_last_n",
            trainable_layers=7,
        )


@pytest.mark.parametrize(
    ("freeze", "frozen_bn", "trained_bn"),
    [
        ("backbone", "backbone.bn1", "head.0.1"),
        ("all_but_last_n", "backbone.layer3.0.bn1", "backbone.layer4.0.bn1"),
    ],
)
def test_frozen_batch_norm_keeps_its_statistics(
    simclr_ckpt: Path, freeze: str, frozen_bn: str, trained_bn: str
) -> None:
    task = FineTuneTask(
        checkpoint=str(simclr_ckpt),
        head_layers=1,
        freeze=freeze,  # type: ignore[arg-type]
        trainable_layers=2,
    )
    task.train()
    frozen = task.model.get_submodule(frozen_bn)
    trained = task.model.get_submodule(trained_bn)
    assert not frozen.training
    assert trained.training
    frozen_before = frozen.get_buffer("running_mean").clone()
    trained_before = trained.get_buffer("running_mean").clone()
    task.model(batch()["image"])
    assert torch.equal(frozen.get_buffer("running_mean"), frozen_before)
    assert not torch.equal(trained.get_buffer("running_mean"), trained_before)
    task.eval()
    task.train()  # back and forth: the frozen stage stays in eval mode
    assert not frozen.training


def fit_frozen_backbone(
    checkpoint: Path, freeze: str = "backbone"
) -> tuple[FineTuneTask, dict[str, Tensor]]:
    """Fit two steps with a frozen backbone; the task and its backbone before."""
    task = FineTuneTask(
        checkpoint=str(checkpoint),
        head_layers=1,
        freeze=freeze,  # type: ignore[arg-type]
        trainable_layers=2,
        lr=0.1,
    )
    before = {k: v.clone() for k, v in task.model.backbone.state_dict().items()}
    data = [{k: v[0] for k, v in batch(seed=i).items()} for i in range(4)]
    trainer = quiet_trainer(2)
    trainer.fit(task, train_dataloaders=DataLoader(data, batch_size=2))
    return task, before


def test_checkpoint_is_saved_absolute_for_restoring_from_elsewhere(
    simclr_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(simclr_ckpt.parent)
    task = FineTuneTask(checkpoint=simclr_ckpt.name, head_layers=1)
    assert task.hparams["checkpoint"] == str(simclr_ckpt.resolve())


def test_validation_f1_is_on_the_progress_bar(simclr_ckpt: Path) -> None:
    task = FineTuneTask(checkpoint=str(simclr_ckpt), head_layers=1)
    data = [{k: v[0] for k, v in batch(seed=i).items()} for i in range(4)]
    trainer = quiet_trainer(1, limit_val_batches=1, num_sanity_val_steps=0)
    loader = DataLoader(data, batch_size=4)
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    assert "val_f1" in trainer.progress_bar_metrics
    assert {"val_precision", "val_auroc"} <= set(trainer.callback_metrics)
    assert "val_auroc" not in trainer.progress_bar_metrics


@pytest.fixture(scope="module")
def fitted(simclr_ckpt: Path) -> tuple[FineTuneTask, dict[str, Tensor]]:
    return fit_frozen_backbone(simclr_ckpt)


def test_fit_leaves_frozen_weights_unchanged(
    fitted: tuple[FineTuneTask, dict[str, Tensor]],
) -> None:
    task, before = fitted
    after = task.model.backbone.state_dict()
    assert torch.equal(after["conv1.weight"], before["conv1.weight"])
    assert torch.equal(after["layer4.1.bn2.weight"], before["layer4.1.bn2.weight"])
    optimizer = task.optimizers().optimizer  # type: ignore[union-attr]
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in task.model.backbone.parameters()}
    assert id(task.model.classifier.weight) in optimised  # type: ignore[union-attr]


def test_frozen_stages_raise_no_eval_mode_warning(simclr_ckpt: Path) -> None:
    # They stay in eval mode on purpose; Lightning's warning would only alarm.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_frozen_backbone(simclr_ckpt)
    assert not [w for w in caught if "in eval mode" in str(w.message)]


def test_fit_leaves_frozen_batch_norm_statistics_unchanged(
    fitted: tuple[FineTuneTask, dict[str, Tensor]],
) -> None:
    task, before = fitted
    after = task.model.backbone.state_dict()
    assert torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])


def test_checkpoint_of_another_stage_is_refused(tmp_path: Path) -> None:
    path = save_simclr(tmp_path / "finetuned.ckpt", kind="finetune", output_dim=16)
    with pytest.raises(ValueError, match="finetune") as error:
        FineTuneTask(checkpoint=str(path))
    assert "simclr" in str(error.value)


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_blocks_without_labels_stop_with_one_sentence(problem: Problem) -> None:
    # AUROC crashed on no samples (classification); segmentation logged F1 0.
    labelled = [{k: v[0] for k, v in batch(seed=i).items()} for i in range(2)]
    unlabelled = [{**b, "mask": torch.full_like(b["mask"], 255)} for b in labelled]
    train, held_out = (DataLoader(d, batch_size=2) for d in (labelled, unlabelled))
    task = FineTuneTask(problem=problem)
    with pytest.raises(ValueError, match="val_f1 cannot be computed"):
        quiet_trainer(2, num_sanity_val_steps=0).fit(task, train, held_out)
    with pytest.raises(ValueError, match="test_f1 cannot be computed"):
        quiet_trainer(1).test(task, held_out, verbose=False)
    quiet_trainer(1).test(task, train, verbose=False)  # labelled: scored


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"nowhere\.ckpt' does not exist"):
        task = FineTuneTask(checkpoint=str(tmp_path / "nowhere.ckpt"))
    data = [{k: v[0] for k, v in batch(seed=i).items()} for i in range(2)]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt' does not exist"):
        quiet_trainer(1).fit(task, train_dataloaders=DataLoader(data, batch_size=2))
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt' does not exist"):
        quiet_trainer(1).predict(task, DataLoader(data, batch_size=2))


def test_a_missing_relative_checkpoint_names_the_folder_it_was_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A quickstart config run outside the repository named only the relative
    # path, which exists in the repository after `make demo`.
    monkeypatch.chdir(tmp_path)
    with pytest.warns(StandInWarning) as record:
        FineTuneTask(checkpoint="runs/simclr_quickstart/checkpoints/last.ckpt")
    message = str(record[0].message)
    assert f"does not exist (read from the working directory {tmp_path})" in message
    assert "make demo" in message


def test_a_fine_tuned_checkpoint_runs_without_its_pretraining_checkpoint(
    simclr_ckpt: Path, tmp_path: Path
) -> None:
    # The SimCLR checkpoint has a 32-16 head, the task alone would build 512-128.
    pretrained = tmp_path / "simclr.ckpt"
    pretrained.write_bytes(simclr_ckpt.read_bytes())
    data = [{k: v[0] for k, v in batch(seed=i).items()} for i in range(4)]
    loader = DataLoader(data, batch_size=2)
    trainer = quiet_trainer(1)
    trainer.fit(FineTuneTask(checkpoint=str(pretrained), head_layers=2), loader)
    finetuned = tmp_path / "finetuned.ckpt"
    trainer.save_checkpoint(finetuned)
    expected = quiet_trainer(1).predict(
        FineTuneTask(checkpoint=str(pretrained), head_layers=2),
        loader,
        ckpt_path=finetuned,
    )
    pretrained.unlink()
    with pytest.warns(UserWarning, match="does not exist"):
        task = FineTuneTask(checkpoint=str(pretrained), head_layers=2)
    got = quiet_trainer(1).predict(task, loader, ckpt_path=finetuned)
    assert expected is not None
    assert got is not None
    assert torch.equal(torch.cat(got), torch.cat(expected))  # type: ignore[arg-type]
    assert task.model.head[1][0].out_features == FEATURES[2]


@pytest.mark.parametrize(
    ("override", "given", "held"),
    [
        ({"in_channels": 10}, "10", "12"),
        ({"model": "resnet50"}, "resnet50", "resnet18"),
    ],
)
def test_architecture_that_contradicts_the_checkpoint(
    simclr_ckpt: Path, override: dict[str, Any], given: str, held: str
) -> None:
    with pytest.raises(ValueError, match=given) as error:
        FineTuneTask(checkpoint=str(simclr_ckpt), **override)
    assert held in str(error.value)


@pytest.mark.parametrize("problem", ["classification", "segmentation"])
def test_imagenet_weights_with_a_checkpoint_are_refused(
    simclr_ckpt: Path, problem: Problem
) -> None:
    # weights: true was dropped without a word: the checkpoint's weights won.
    with pytest.raises(ValueError, match="weights=True") as error:
        FineTuneTask(checkpoint=str(simclr_ckpt), weights=True, problem=problem)
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith("FineTuneTask got weights=True, which asks for timm's")
    assert repr(str(simclr_ckpt)) in message
    assert "leave --model.init_args.weights out (false)" in message
    assert "drop the checkpoint for an ImageNet-initialised supervised run" in message


@pytest.fixture(scope="module")
def default_simclr_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint with the default head, as the quickstart pretraining writes."""
    return save_simclr(tmp_path_factory.mktemp("ckpt") / "default.ckpt")


@pytest.mark.parametrize("head_layers", [0, 1, 3])
def test_supervised_baseline_has_the_same_network(
    default_simclr_ckpt: Path, head_layers: int
) -> None:
    pretrained = FineTuneTask(
        checkpoint=str(default_simclr_ckpt), head_layers=head_layers
    )
    baseline = FineTuneTask(checkpoint=None, head_layers=head_layers)

    def shapes(task: FineTuneTask) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in task.model.state_dict().items()}

    assert shapes(baseline) == shapes(pretrained)
    assert pretrained.model.spec == baseline.model.spec
    # ... but not the same weights: only one of them was pretrained.
    weight = "backbone.conv1.weight"
    assert not torch.equal(
        baseline.model.state_dict()[weight], pretrained.model.state_dict()[weight]
    )


def test_segmentation_maps_every_pixel(simclr_ckpt: Path) -> None:
    task = FineTuneTask(
        checkpoint=str(simclr_ckpt), problem="segmentation", head_layers=0
    )
    # The U-Net's encoder is the pretrained backbone.
    state = torch.load(simclr_ckpt, weights_only=False)["state_dict"]
    loaded = task.model.backbone.state_dict()
    assert torch.equal(loaded["conv1.weight"], state["backbone.conv1.weight"])
    assert torch.equal(
        loaded["layer4.1.bn2.running_var"], state["backbone.layer4.1.bn2.running_var"]
    )
    data = batch()
    task.eval()
    logits = task.model(data["image"])
    assert logits.shape == (BATCH, SIZE, SIZE)
    probabilities = task.predict_step(data, 0)
    assert probabilities.shape == (BATCH, SIZE, SIZE)
    assert probabilities.min() >= 0
    assert probabilities.max() <= 1
    assert torch.allclose(probabilities, torch.sigmoid(logits))
    task.train()
    data["mask"][:, :8] = 255  # unlabelled rows
    loss = task.training_step(data, 0)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("model", ["convnext_atto", "mobilenetv3_small_050"])
def test_segmentation_encoder_of_other_backbones_gets_the_pretrained_weights(
    tmp_path: Path, model: str
) -> None:
    # timm's feature extractors rename (ConvNeXt: stages_0) or drop (MobileNet:
    # conv_head) some of the full model's weights.
    path = save_simclr(tmp_path / "simclr.ckpt", model=model)
    task = FineTuneTask(checkpoint=str(path), problem="segmentation")
    state = torch.load(path, weights_only=False)["state_dict"]
    pretrained = [v for k, v in state.items() if k.startswith("backbone.")]
    encoder = task.model.backbone.state_dict()
    assert len(encoder) <= len(pretrained)
    for name, value in encoder.items():
        if value.is_floating_point():  # nudged: no two pretrained tensors alike
            assert any(
                v.shape == value.shape and torch.equal(v, value) for v in pretrained
            ), name
    assert task.model(batch()["image"]).shape == (BATCH, SIZE, SIZE)
    with pytest.raises(ValueError, match=rf"no weights for {len(encoder)} of the"):
        load_encoder_state(task.model.backbone, {})


def test_segmentation_drops_the_head_layers() -> None:
    # FineTuneTask sets head_layers to 0 for segmentation (the default is 1).
    task = FineTuneTask(problem="segmentation")
    assert task.model.spec.head_layers == 0
    assert len(task.model.head) == 0
    assert task.model.classifier is None


def test_segmentation_model_with_head_layers_is_refused() -> None:
    spec = ModelSpec("resnet18", BANDS, problem="segmentation", head_layers=1)
    with pytest.raises(ValueError, match=r"classification only.*set head_layers to 0"):
        IrrigationModel(spec)


def bce(x: float, y: int, pos_weight: float = 1.0) -> float:
    p = 1 / (1 + math.exp(-x))
    return -(pos_weight * y * math.log(p) + (1 - y) * math.log(1 - p))


def test_binary_loss_skips_ignored_targets() -> None:
    targets = torch.tensor([1, 0, 255, 1, 255])
    logits = torch.tensor([0.5, -1.0, 3.0, 2.0, -4.0])
    loss = binary_loss(logits, targets)
    changed = logits.clone()
    changed[targets == 255] = torch.tensor([-9.0, 9.0])
    assert binary_loss(changed, targets) == loss
    expected = (bce(0.5, 1) + bce(-1.0, 0) + bce(2.0, 1)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_binary_loss_with_nothing_labelled_is_zero() -> None:
    logits = torch.randn(2, 4, 4, requires_grad=True)
    loss = binary_loss(logits, torch.full((2, 4, 4), 255))
    assert loss.item() == 0
    loss.backward()
    assert logits.grad is not None
    assert not logits.grad.any()


def test_pos_weight_weighs_irrigated_targets() -> None:
    logits = torch.tensor([0.5, -1.0, 2.0, 0.3])
    targets = torch.tensor([1, 0, 1, 255])
    loss = binary_loss(logits, targets, pos_weight=2.0)
    expected = (bce(0.5, 1, 2.0) + bce(-1.0, 0, 2.0) + bce(2.0, 1, 2.0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    positives = torch.tensor([1, 1, 255, 255])
    assert binary_loss(logits, positives, pos_weight=2.0).item() == pytest.approx(
        2 * binary_loss(logits, positives).item(), rel=1e-6
    )


def test_focal_loss() -> None:
    targets = torch.tensor([1, 0, 1, 255])
    confident = torch.tensor([4.0, -4.0, 5.0, 0.0])
    focal = binary_loss(confident, targets, kind="focal")
    assert 0 < focal.item() < binary_loss(confident, targets).item()
    # With no focusing the focal loss is the binary cross-entropy.
    logits = torch.tensor([0.5, -1.0, -2.0, 7.0])
    unfocused = binary_loss(logits, targets, kind="focal", focal_gamma=0.0)
    assert unfocused.item() == pytest.approx(
        binary_loss(logits, targets).item(), rel=1e-6
    )
    # pos_weight becomes the focal loss's alpha = w / (1 + w).
    weighted = binary_loss(logits, targets, kind="focal", pos_weight=3.0)
    keep = targets != 255
    x, y = logits[keep], targets[keep].float()
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = torch.where(y == 1, torch.sigmoid(x), 1 - torch.sigmoid(x))
    alpha = torch.where(y == 1, 0.75, 0.25)
    expected = (alpha * ce * (1 - p_t) ** 2).mean()
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
