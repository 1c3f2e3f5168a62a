"""A checkpoint's plain-value metadata must not drive timm or the maps astray.

``torch.load(weights_only=True)`` runs no code, but the values it lets through
went on to ``timm.create_model`` (``checkpoint_path`` makes timm open another
file) and to the normalisation (NaN statistics made an all-nodata map that the
warning blamed on the imagery).
"""

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import save_checkpoint

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.models import checkpoint as checkpoints
from torchgeo_simclr.models.checkpoint import (
    DataMetadata,
    load_backbone,
    load_encoder,
    load_model,
)
from torchgeo_simclr.tasks import FineTuneTask, SimCLRv2Task

METADATA = DataMetadata(
    bands=tuple(S2_BANDS),
    mean=(1000.0,) * len(S2_BANDS),
    std=(500.0,) * len(S2_BANDS),
    patch_size=32,
)


def _altered(path: Path, change: Any) -> Path:
    """*path* with its torchgeo-simclr metadata changed by *change*, saved anew."""
    saved = torch.load(path, weights_only=True)
    change(saved[checkpoints.CHECKPOINT_KEY])
    altered = path.with_name(f"altered-{path.name}")
    torch.save(saved, altered)
    return altered


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    return save_checkpoint(folder / "seg.ckpt", "segmentation", METADATA)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = SimCLRv2Task(model="resnet18", output_dim=16)
    task.data_metadata = METADATA
    saved: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
    }
    task.on_save_checkpoint(saved)
    path = tmp_path_factory.mktemp("simclr") / "simclr.ckpt"
    torch.save(saved, path)
    return path


def test_a_checkpoint_may_not_point_timm_at_another_file(
    finetuned: Path, tmp_path: Path
) -> None:
    # timm opened the file named (a pickle that calls os.system, in the review),
    # and only its own weights_only stopped it, with a traceback.
    other = tmp_path / "other_weights.pt"
    options = {"checkpoint_path": str(other), "pretrained_cfg_overlay": {"file": "x"}}
    path = _altered(
        finetuned, lambda meta: meta["spec"].update(backbone_kwargs=options)
    )
    for load in (load_model, load_backbone):
        with pytest.raises(ValueError, match="read or fetch another file") as error:
            load(path)
        message = str(error.value)
        assert message.startswith(
            f"Checkpoint {str(path)!r} sets backbone_kwargs checkpoint_path, "
            "pretrained_cfg_overlay, which would make timm read or fetch another "
            "file"
        ), message
        # It names what is wrong with the options, and does not claim the file
        # was altered (an earlier version may have written it).
        assert "the file was altered" not in message
        assert message.endswith("leave checkpoint_path, pretrained_cfg_overlay out.")
        assert "\n" not in message


def test_a_pretrained_checkpoint_may_not_set_pretrained_cfg(
    pretrained: Path, tmp_path: Path
) -> None:
    options = {"pretrained_cfg": {"file": str(tmp_path / "weights.pt")}}
    path = _altered(pretrained, lambda meta: meta.update(backbone_kwargs=options))
    with pytest.raises(ValueError, match=r"sets backbone_kwargs pretrained_cfg, "):
        load_encoder(path)
    # ... and fine-tuning from it is refused as well, before any network is built.
    with pytest.raises(ValueError, match=r"sets backbone_kwargs pretrained_cfg, "):
        FineTuneTask(checkpoint=str(path))


def test_fit_refuses_options_that_make_timm_read_files() -> None:
    # A fit must not write a checkpoint that its own readers would refuse.
    for task in (SimCLRv2Task, FineTuneTask):
        for key in ("checkpoint_path", "cache_dir", "pretrained_cfg"):
            with pytest.raises(ValueError, match="may not set") as error:
                task(model="resnet18", backbone_kwargs={key: "w.pt"})
            assert str(error.value).startswith(
                f"backbone_kwargs may not set {key}: it makes timm read or fetch "
                "another file"
            ), error.value
    # What the task sets itself is refused as before.
    with pytest.raises(ValueError, match="in_chans: the task sets it"):
        FineTuneTask(model="resnet18", backbone_kwargs={"in_chans": 3})


def test_ordinary_timm_options_are_taken_in_configs_and_checkpoints(
    finetuned: Path,
) -> None:
    # An allow-list of 28 names refused act_layer, stem_type and the like, in a
    # config and in a checkpoint an earlier version had trained with them ("the
    # file was altered or written by another tool").
    task = FineTuneTask(
        model="resnet18", backbone_kwargs={"drop_rate": 0.1, "act_layer": "silu"}
    )
    assert task.model.spec.backbone_kwargs == {"drop_rate": 0.1, "act_layer": "silu"}
    path = _altered(
        finetuned,
        lambda meta: meta["spec"].update(backbone_kwargs={"act_layer": "silu"}),
    )
    model = load_model(path)
    assert isinstance(model.model.backbone.act1, torch.nn.SiLU)


def test_a_checkpoint_may_not_set_what_the_task_sets(finetuned: Path) -> None:
    path = _altered(
        finetuned, lambda meta: meta["spec"].update(backbone_kwargs={"in_chans": 3})
    )
    with pytest.raises(ValueError, match="which the task sets itself") as error:
        load_model(path)
    assert str(error.value).startswith(
        f"Checkpoint {str(path)!r} sets backbone_kwargs in_chans, which the task "
        "sets itself"
    ), error.value


def test_a_network_the_weights_do_not_fit_is_never_built_for_real(
    finetuned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint naming a ViT-g was built for real (5 GB, 90 s) before the
    # refusal; here smaller ViTs stand in for it.
    built_on: list[torch.device] = []
    original = checkpoints.IrrigationModel

    def spy(*args: Any, **kwargs: Any) -> Any:
        built_on.append(torch.get_default_device())
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "IrrigationModel", spy)
    # A plain ViT cannot feed the U-Net the checkpoint asks for.
    unet = _altered(
        finetuned, lambda meta: meta["spec"].update(model="vit_tiny_patch16_224")
    )
    with pytest.raises(ValueError, match="cannot feed a U-Net"):
        load_model(unet)
    assert built_on == [torch.device("meta")]
    # A classifier of another network than the weights are for.
    built_on.clear()

    def classifier(meta: dict[str, Any]) -> None:
        meta["spec"].update(model="vit_small_patch16_224", problem="classification")

    other = _altered(finetuned, classifier)
    with pytest.raises(ValueError, match="do not fit") as error:
        load_model(other)
    assert built_on == [torch.device("meta")]
    message = str(error.value)
    assert message.startswith(
        f"Checkpoint {str(other)!r} holds weights that do not fit the "
        "vit_small_patch16_224 network its metadata describes (Missing key(s)"
    ), message
    assert message.endswith("use the checkpoint the fit run wrote.")


@pytest.mark.parametrize(
    ("field", "values", "named"),
    [
        ("mean", [math.nan] * len(S2_BANDS), "bands B01 (mean nan), B02 (mean nan)"),
        ("std", [500.0] * 11 + [0.0], "band B12 (std 0.0)"),
        ("std", [math.inf] + [500.0] * 11, "band B01 (std inf)"),
    ],
)
def test_unusable_normalisation_statistics_are_refused(
    finetuned: Path, field: str, values: list[float], named: str
) -> None:
    # NaN means gave a map with no data at all and a warning that the imagery
    # under the bbox was nodata, exit 0.
    path = _altered(finetuned, lambda meta: meta["data"].update({field: values}))
    with pytest.raises(ValueError, match="normalisation statistics") as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(
        f"Checkpoint {str(path)!r} records normalisation statistics that cannot "
        f"standardise {named}"
    ), message
    assert "trained on data with no valid pixels" in message
    assert "fit it again" in message
    # The same where a task reads its own checkpoint (Lightning's restore).
    with pytest.raises(ValueError, match="cannot standardise"):
        DataMetadata.from_checkpoint(torch.load(path, weights_only=True))


def test_sound_statistics_still_load(finetuned: Path) -> None:
    assert load_model(finetuned).data == METADATA
