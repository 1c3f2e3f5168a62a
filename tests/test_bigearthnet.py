"""BigEarthNet-S2 irrigation: labels, cache, the study's split, datamodule, configs."""

import importlib.resources
import itertools
import json
import os
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from conftest import few_steps, quiet_trainer, scratch_workdir
from rasterio.transform import from_origin

from torchgeo_simclr.constants import (
    IGNORE_INDEX,
    S2_BAND_RESOLUTION,
    S2_BANDS,
)
from torchgeo_simclr.datamodules import BigEarthNetIrrigationDataModule
from torchgeo_simclr.datamodules.balanced_split import irrigation_splits
from torchgeo_simclr.datamodules.fractions import nested_balanced_subset
from torchgeo_simclr.datasets import BigEarthNetIrrigation
from torchgeo_simclr.lightning_cli import fit, run_cli
from torchgeo_simclr.models.checkpoint import DataMetadata, load_model
from torchgeo_simclr.tasks import DistillTask, FineTuneTask, SimCLRv2Task

CONF = Path(__file__).resolve().parents[1] / "conf"

#: The patches of bigearthnet-common's example archive and their binary labels,
#: worked out by hand from each labels_metadata.json: none lists an irrigated
#: class ("Non-irrigated arable land" does not count).
EXAMPLE_LABELS = {
    # Non-irrigated arable land; Land principally occupied by agriculture, ...
    "S2A_MSIL2A_20170613T101031_87_48": {"regular": 0, "extended": 0},
    # Non-irrigated arable land; Pastures
    "S2A_MSIL2A_20170617T113321_36_85": {"regular": 0, "extended": 0},
    # Pastures
    "S2A_MSIL2A_20170617T113321_4_55": {"regular": 0, "extended": 0},
    # Complex cultivation patterns; Land principally ...; Broad-leaved forest;
    # Transitional woodland/shrub
    "S2A_MSIL2A_20171221T112501_56_35": {"regular": 0, "extended": 0},
    # Coniferous forest; Mixed forest; Transitional woodland/shrub; Peatbogs;
    # Water bodies
    "S2B_MSIL2A_20170924T93020_69_24": {"regular": 0, "extended": 0},
    # Non-irrigated arable land; Coniferous forest; Mixed forest
    "S2B_MSIL2A_20180204T94161_57_38": {"regular": 0, "extended": 0},
}

#: Labels of the fake patches, by patch number modulo 5: 8 of 40 are
#: permanently irrigated, 8 more vineyards (irrigated only in the extended
#: scheme).
FAKE_LABELS = (
    ["Permanently irrigated land", "Non-irrigated arable land"],
    ["Vineyards", "Pastures"],
    ["Non-irrigated arable land"],
    ["Pastures"],
    ["Coniferous forest", "Water bodies"],
)


def patch_name(i: int) -> str:
    return f"S2A_MSIL2A_20170613T101031_{i}_{i % 7}"


def write_patch(root: Path, name: str, labels: Sequence[str], seed: int) -> Path:
    """Write a fake BigEarthNet-S2 patch folder: 12 GeoTIFFs and the labels."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for band in S2_BANDS:
        metres = S2_BAND_RESOLUTION[band]
        side = 1200 // metres
        profile = {
            "driver": "GTiff",
            "width": side,
            "height": side,
            "count": 1,
            "dtype": "uint16",
            "crs": "EPSG:32633",
            "transform": from_origin(404400, 5342400, metres, metres),
        }
        data = rng.integers(1, 4000, (1, side, side), dtype=np.uint16)
        with rasterio.open(folder / f"{name}_{band}.tif", "w", **profile) as dst:
            dst.write(data)
    metadata = {"labels": list(labels), "acquisition_date": "2017-06-13 10:10:31"}
    (folder / f"{name}_labels_metadata.json").write_text(json.dumps(metadata))
    return folder


def set_labels(folder: Path, labels: Sequence[str]) -> None:
    path = next(folder.glob("*_labels_metadata.json"))
    metadata = json.loads(path.read_text())
    metadata["labels"] = list(labels)
    path.write_text(json.dumps(metadata))


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bigearthnet-common's six real example patches, extracted."""
    pytest.importorskip(
        "bigearthnet_common", reason="needs bigearthnet-common (a dev dependency)"
    )
    archive = (
        importlib.resources.files("bigearthnet_common")
        / "BigEarthNet-S2-Example.tar.bz2"
    )
    path = tmp_path_factory.mktemp("example")
    with importlib.resources.as_file(archive) as file, tarfile.open(file) as tar:
        tar.extractall(path, filter="data")
    return path / "BigEarthNet-S2-Example"


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 fake patches in torchgeo's layout (root/BigEarthNet-v1.0/...)."""
    root = tmp_path_factory.mktemp("bigearthnet")
    for i in range(40):
        write_patch(root / "BigEarthNet-v1.0", patch_name(i), FAKE_LABELS[i % 5], i)
    return root


# Real example patches


@pytest.mark.parametrize("scheme", ["regular", "extended"])
def test_example_patches_labels(example: Path, scheme: str) -> None:
    dataset = BigEarthNetIrrigation(example, scheme, progress=False)  # type: ignore[arg-type]
    assert dataset.names == sorted(EXAMPLE_LABELS)
    labels = dict(zip(dataset.names, dataset.labels.tolist(), strict=True))
    assert labels == {name: label[scheme] for name, label in EXAMPLE_LABELS.items()}
    sample = dataset[0]
    assert sample["label"].dtype == torch.int64
    assert sample["label"].shape == ()


def test_example_patch_images(example: Path) -> None:
    dataset = BigEarthNetIrrigation(example, progress=False)
    for index, name in enumerate(dataset.names):
        image = dataset[index]["image"]
        assert image.shape == (12, 120, 120)
        assert image.dtype == torch.float32
        folder = example / name
        with rasterio.open(folder / f"{name}_B04.tif") as src:
            b04 = torch.from_numpy(src.read(1).astype(np.float32))
        assert torch.equal(image[S2_BANDS.index("B04")], b04)
        # The 60 m band B01 (20 x 20) is resampled bilinearly to 120 x 120.
        with rasterio.open(folder / f"{name}_B01.tif") as src:
            b01 = torch.from_numpy(src.read(1).astype(np.float32))
        assert b01.shape == (20, 20)
        bilinear = F.interpolate(b01[None, None], size=(120, 120), mode="bilinear")
        assert (image[0] - bilinear[0, 0]).abs().max() <= 0.51


def test_relabelled_real_patches(example: Path, tmp_path: Path) -> None:
    names = sorted(EXAMPLE_LABELS)
    for name in names[:3]:
        shutil.copytree(example / name, tmp_path / name)
    set_labels(tmp_path / names[0], ["Permanently irrigated land", "Pastures"])
    set_labels(tmp_path / names[1], ["Vineyards"])
    # names[2] keeps "Pastures".
    regular = BigEarthNetIrrigation(tmp_path, "regular", progress=False)
    extended = BigEarthNetIrrigation(tmp_path, "extended", progress=False)
    assert regular.labels.tolist() == [1, 0, 0]
    assert extended.labels.tolist() == [1, 1, 0]
    assert int(regular[0]["label"]) == 1


def test_non_irrigated_arable_land_is_not_irrigated(tmp_path: Path) -> None:
    write_patch(tmp_path, patch_name(0), ["Non-irrigated arable land"], 0)
    for scheme in ("regular", "extended"):
        dataset = BigEarthNetIrrigation(tmp_path, scheme, progress=False)  # type: ignore[arg-type]
        assert dataset.labels.tolist() == [0]


def test_scheme_classes_are_bigearthnet_classes() -> None:
    classes = set(BigEarthNetIrrigation.class_sets[43])
    for names in BigEarthNetIrrigation.irrigated_classes.values():
        assert set(names) <= classes


def test_plot(example: Path) -> None:
    dataset = BigEarthNetIrrigation(example, progress=False)
    sample = dataset[0]
    fig = dataset.plot(sample, suptitle="example")
    assert fig.axes[0].get_title() == "Not irrigated"
    plt.close(fig)
    fig = dataset.plot({**sample, "prediction": torch.tensor(0.8)})
    assert fig.axes[0].get_title() == "Not irrigated\nPrediction: Irrigated (0.80)"
    plt.close(fig)


# Label cache


def count_json_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    load = json.load

    def counting(file, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(file)
        return load(file, **kwargs)

    monkeypatch.setattr(json, "load", counting)
    return calls


def test_labels_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        write_patch(tmp_path, patch_name(i), FAKE_LABELS[i], i)
    calls = count_json_loads(monkeypatch)
    first = BigEarthNetIrrigation(tmp_path, progress=False)
    assert len(calls) == 3
    assert (tmp_path / BigEarthNetIrrigation.cache_name).is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    second = BigEarthNetIrrigation(tmp_path, "extended", progress=False)
    assert len(calls) == 3  # read from the cache
    assert first.labels.tolist() == [1, 0, 0]
    assert second.labels.tolist() == [1, 1, 0]
    # A new patch: only its label file is read.
    write_patch(tmp_path, patch_name(3), ["Rice fields"], 3)
    third = BigEarthNetIrrigation(tmp_path, "extended", progress=False)
    assert len(calls) == 4
    assert third.labels.tolist() == [1, 1, 0, 1]
    BigEarthNetIrrigation(tmp_path, progress=False)
    assert len(calls) == 4


def test_read_only_root_does_not_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_patch(tmp_path, patch_name(0), FAKE_LABELS[0], 0)

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.warns(UserWarning, match=r"Could not cache the BigEarthNet labels"):
        dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    assert dataset.labels.tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [patch_name(0)]


def test_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    write_patch(tmp_path, patch_name(0), FAKE_LABELS[0], 0)
    cache = tmp_path / BigEarthNetIrrigation.cache_name
    cache.write_text("name,labels\nx,y\n")
    with pytest.warns(UserWarning, match=r"Ignoring the BigEarthNet label cache"):
        dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    assert dataset.labels.tolist() == [1]
    header, row = cache.read_text().splitlines()
    assert header == "patch,classes,bands,json_mtime_ns,json_size"
    assert row.startswith(f"{patch_name(0)},11 12,12,")


# Errors


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"No BigEarthNet-S2 patch folder found in .*: it is empty\. Expected "
        r"BigEarthNet-S2 v1\.0 patch folders .*labels_metadata\.json.* download "
        r"https://zenodo\.org/.*BigEarthNet-S2-v1\.0\.tar\.gz",
    ):
        BigEarthNetIrrigation(tmp_path)


def test_root_with_unrelated_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "scenes").mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"holds 2 entries but no patch folder \(e\.g\. 'notes\.txt'\)",
    ):
        BigEarthNetIrrigation(tmp_path)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"it does not exist"):
        BigEarthNetIrrigation(tmp_path / "nowhere")


def test_unknown_class_names_the_file(tmp_path: Path) -> None:
    write_patch(tmp_path, patch_name(0), ["Irrigated land"], 0)
    with pytest.raises(
        ValueError,
        match=r"_labels_metadata\.json' lists 'Irrigated land', which is not one "
        r"of BigEarthNet's 43 classes",
    ):
        BigEarthNetIrrigation(tmp_path, progress=False)


def test_missing_label_file(tmp_path: Path) -> None:
    folder = write_patch(tmp_path, patch_name(0), FAKE_LABELS[0], 0)
    next(folder.glob("*.json")).unlink()
    with pytest.raises(FileNotFoundError, match=r"has no S2A_.*_labels_metadata\.json"):
        BigEarthNetIrrigation(tmp_path, progress=False)


def test_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"scheme must be one of \['regular', "):
        BigEarthNetIrrigation(tmp_path, "irrigated")  # type: ignore[arg-type]


# The study's split, on labels only

N_POSITIVE = 13_589


@pytest.fixture(scope="module")
def study_labels() -> torch.Tensor:
    labels = torch.cat([torch.ones(N_POSITIVE), torch.zeros(200_000)]).long()
    return labels[
        torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    ]


def test_split_sizes_and_balance(study_labels: torch.Tensor) -> None:
    splits = irrigation_splits(study_labels, seed=0)
    sizes = {split: len(indices) for split, indices in splits.items()}
    assert sizes == {"train": 19_024, "val": 2 * 2038, "test": 2 * 2039}
    for split, indices in splits.items():
        assert int(study_labels[indices].sum()) == sizes[split] // 2
    together = torch.cat(list(splits.values()))
    assert len(together.unique()) == len(together)  # disjoint
    positives = set((study_labels == 1).nonzero()[:, 0].tolist())
    assert positives <= set(together.tolist())


def test_split_is_seeded(study_labels: torch.Tensor) -> None:
    first = irrigation_splits(study_labels, seed=0)
    again = irrigation_splits(study_labels, seed=0)
    other = irrigation_splits(study_labels, seed=1)
    for split in first:
        assert torch.equal(first[split], again[split])
        assert not torch.equal(first[split], other[split])


def test_label_fractions_are_nested(study_labels: torch.Tensor) -> None:
    train = irrigation_splits(study_labels, seed=0)["train"]
    labels = study_labels[train]
    subsets = [
        set(nested_balanced_subset(labels, fraction, seed=3).tolist())
        for fraction in (0.01, 0.03, 0.10, 0.25, 0.50, 1.0)
    ]
    assert [len(s) for s in subsets] == [190, 571, 1902, 4756, 9512, 19_024]
    for smaller, larger in itertools.pairwise(subsets):
        assert smaller <= larger
    one_percent = torch.tensor(sorted(subsets[0]))
    assert int(labels[one_percent].sum()) == 95


# Datamodule


def datamodule(
    root: Path, tmp_path: Path, **kwargs: object
) -> BigEarthNetIrrigationDataModule:
    defaults: dict[str, object] = {
        "root": str(root),
        "patch_size": 64,
        "batch_size": 4,
        "stats_images": 8,
        "cache_dir": str(tmp_path / "cache"),
    }
    defaults.update(kwargs)
    return BigEarthNetIrrigationDataModule(**defaults)  # type: ignore[arg-type]


def test_pretraining_batches(fake_root: Path, tmp_path: Path) -> None:
    dm = datamodule(fake_root, tmp_path)
    dm.setup("fit")
    # 8 irrigated + 8 of 32 others; per class 5 train, 1 val, 2 test.
    assert {s: len(i) for s, i in dm.splits.items()} == {
        "train": 10,
        "val": 2,
        "test": 4,
    }
    assert len(dm.train_dataset) == 10  # type: ignore[arg-type]
    assert dm.n_labels is None
    assert dm.mean.shape == dm.std.shape == (12,)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 12, 64, 64)
    assert batch["image"].dtype == torch.float32
    assert batch["label"].tolist() == [IGNORE_INDEX] * 4  # pretraining: no labels
    batch = dm.train_aug(batch)
    assert batch["views"].shape == (2, 4, 12, 64, 64)
    # Validation: centre crops, real labels.
    val = next(iter(dm.val_dataloader()))
    assert sorted(val["label"].tolist()) == [0, 1]
    full = dm.patches[int(dm.splits["val"][0])]["image"]  # type: ignore[index]
    assert torch.equal(val["image"][0], full[:, 28:92, 28:92])
    fig = dm.plot(dm.val_dataset[0])  # type: ignore[index]
    assert fig is not None
    plt.close(fig)


def test_statistics_are_cached(fake_root: Path, tmp_path: Path) -> None:
    dm = datamodule(fake_root, tmp_path)
    dm.setup("fit")
    assert len(list((tmp_path / "cache" / "stats").glob("*.json"))) == 1
    again = datamodule(fake_root, tmp_path)
    again.setup("fit")
    assert torch.equal(dm.mean, again.mean)
    assert torch.equal(dm.std, again.std)


def test_fine_tuning_subset(fake_root: Path, tmp_path: Path) -> None:
    dm = datamodule(fake_root, tmp_path, label_fraction=0.5, num_views=1)
    dm.setup("fit")
    assert dm.n_labels == 5
    assert len(dm.train_dataset) == 5  # type: ignore[arg-type]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["label"].tolist()) <= {0, 1}
    batch = dm.train_aug(batch)
    assert batch["image"].shape == (4, 12, 64, 64)
    assert "views" not in batch


def test_unlabeled_hides_labels_outside_the_subset(
    fake_root: Path, tmp_path: Path
) -> None:
    labelled = datamodule(fake_root, tmp_path, label_fraction=0.5)
    labelled.setup("fit")
    dm = datamodule(fake_root, tmp_path, label_fraction=0.5, unlabeled=True)
    dm.setup("fit")
    assert dm.n_labels == 5
    data = dm.train_dataset
    assert len(data) == 10  # type: ignore[arg-type]
    labels = [int(data[i]["label"]) for i in range(10)]  # type: ignore[index]
    kept = [i for i, label in zip(data.indices, labels, strict=True) if label != 255]  # type: ignore[attr-defined]
    assert len(kept) == 5
    assert kept == list(labelled.train_dataset.indices)  # type: ignore[union-attr]
    assert labels.count(IGNORE_INDEX) == 5


def test_split_seed_and_scheme_change_the_split(
    fake_root: Path, tmp_path: Path
) -> None:
    fingerprints = set()
    for kwargs in ({}, {"split_seed": 1}, {"scheme": "extended"}):
        dm = datamodule(fake_root, tmp_path, **kwargs)
        dm.setup("fit")
        metadata = DataMetadata.from_datamodule(dm, 12)
        assert metadata is not None
        assert metadata.bands == S2_BANDS
        assert metadata.patch_size == 64
        assert metadata.split == dm.split_fingerprint
        fingerprints.add(metadata.split)
    assert len(fingerprints) == 3
    assert {s: len(i) for s, i in dm.splits.items()} == {
        "train": 22,
        "val": 4,
        "test": 6,
    }


def test_patch_size_too_large(fake_root: Path) -> None:
    with pytest.raises(ValueError, match=r"patch_size must be between 1 and 120"):
        BigEarthNetIrrigationDataModule(str(fake_root), patch_size=128)


def test_no_irrigated_patch(example: Path, tmp_path: Path) -> None:
    dm = datamodule(example, tmp_path)
    with pytest.raises(
        ValueError,
        match=r"The balanced split of .* has no training patch: 0 of its 6 patches "
        r"are irrigated under scheme 'regular'",
    ):
        dm.setup("fit")


def test_fine_tune_fast_dev_run(fake_root: Path, tmp_path: Path) -> None:
    dm = datamodule(fake_root, tmp_path, label_fraction=1.0, num_views=1)
    task = FineTuneTask(model="resnet18", in_channels=12)
    trainer = quiet_trainer(1, fast_dev_run=True, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=dm)
    assert trainer.state.finished
    assert task.data_metadata is not None
    assert task.data_metadata.split == dm.split_fingerprint
    trainer.test(task, datamodule=dm, verbose=False)


def test_segmentation_needs_masks() -> None:
    task = FineTuneTask(model="resnet18", problem="segmentation", head_layers=0)
    batch = {"image": torch.zeros(2, 12, 32, 32), "label": torch.tensor([0, 1])}
    with pytest.raises(
        ValueError, match=r"A segmentation model needs per-pixel labels"
    ):
        task.targets(batch)


# The four configs of `torchgeo-simclr experiment --preset bigearthnet`


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch working directory (the configs write under runs/)."""
    yield from scratch_workdir(tmp_path_factory, scene=False)


def small(root: Path, workdir: Path, *extra: str) -> list[str]:
    return [
        "--data.init_args.root",
        str(root),
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.patch_size",
        "32",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.stats_images",
        "4",
        "--data.init_args.cache_dir",
        str(workdir / "cache"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.precision",
        "32",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]


def one_step(config: str, root: Path, workdir: Path, *extra: str) -> Path:
    checkpoint = fit(
        [
            "--config",
            str(CONF / config),
            *small(root, workdir, *extra),
            *few_steps(1),
        ]
    )
    assert checkpoint is not None
    return checkpoint.resolve()


@pytest.fixture(scope="module")
def pretrained(fake_root: Path, workdir: Path) -> Path:
    return one_step(
        "simclr_bigearthnet.yaml",
        fake_root,
        workdir,
        "--model.init_args.model",
        "resnet18",
    )


@pytest.fixture(scope="module")
def finetuned(fake_root: Path, workdir: Path, pretrained: Path) -> Path:
    return one_step(
        "finetune_bigearthnet.yaml",
        fake_root,
        workdir,
        "--model.init_args.checkpoint",
        str(pretrained),
    )


def test_simclr_config(fake_root: Path, workdir: Path) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / "simclr_bigearthnet.yaml"),
            *small(fake_root, workdir, "--model.init_args.model", "resnet18"),
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert isinstance(cli.model, SimCLRv2Task)
    assert isinstance(cli.datamodule, BigEarthNetIrrigationDataModule)
    assert cli.datamodule.label_fraction is None
    assert cli.model.data_metadata is not None
    assert cli.model.data_metadata.bands == S2_BANDS


def test_finetune_config(finetuned: Path) -> None:
    model = load_model(finetuned)
    assert model.kind == "finetune"
    assert model.model.spec.model == "resnet18"  # from the pretrained checkpoint
    assert model.model.spec.head_layers == 1
    assert model.data is not None
    assert model.data.patch_size == 32
    assert model.data.split is not None


def test_supervised_config(fake_root: Path, workdir: Path) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / "supervised_bigearthnet.yaml"),
            *small(fake_root, workdir, "--model.init_args.model", "resnet18"),
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert isinstance(cli.model, FineTuneTask)
    assert cli.model.hparams["checkpoint"] is None
    assert isinstance(cli.datamodule, BigEarthNetIrrigationDataModule)
    assert cli.datamodule.n_labels == 2  # 1% of 10, at least one per class


def test_distill_config(fake_root: Path, workdir: Path, finetuned: Path) -> None:
    cli = run_cli(
        [
            "--config",
            str(CONF / "distill_bigearthnet.yaml"),
            *small(fake_root, workdir),
            "--model.init_args.teacher",
            str(finetuned),
            "--model.init_args.alpha",
            "0.5",
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    assert isinstance(cli.model, DistillTask)
    assert cli.model.model.spec.model == "resnet18"
    assert isinstance(cli.datamodule, BigEarthNetIrrigationDataModule)
    assert cli.datamodule.unlabeled
    assert cli.datamodule.n_labels == 2
    assert len(cli.datamodule.train_dataset) == 10  # type: ignore[arg-type]


def test_student_on_another_split(
    fake_root: Path, workdir: Path, finetuned: Path
) -> None:
    with pytest.raises(
        ValueError,
        match=r"was trained on spatial split \w+ but the datamodule makes split \w+"
        r".*; use split_seed 0, as the teacher was trained with \(this datamodule: "
        r"split_seed 1\)\.",
    ):
        run_cli(
            [
                "--config",
                str(CONF / "distill_bigearthnet.yaml"),
                *small(fake_root, workdir, "--data.init_args.split_seed", "1"),
                "--model.init_args.teacher",
                str(finetuned),
                "--trainer.fast_dev_run",
                "true",
            ]
        )


# Review follow-ups: cache staleness, broken and v2 roots, split stability,
# split guard, cross-dataset provenance


def test_edited_label_file_is_read_again(tmp_path: Path) -> None:
    for i in range(3):
        write_patch(tmp_path, patch_name(i), FAKE_LABELS[i + 2], i)
    assert BigEarthNetIrrigation(tmp_path, progress=False).labels.tolist() == [0] * 3
    folder = tmp_path / patch_name(1)
    set_labels(folder, ["Permanently irrigated land"])
    label_file = next(folder.glob("*.json"))
    later = label_file.stat().st_mtime_ns + 10**9
    os.utime(label_file, ns=(later, later))
    dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    assert dataset.labels.tolist() == [0, 1, 0]


def test_cache_of_an_earlier_version_is_read_again(tmp_path: Path) -> None:
    write_patch(tmp_path, patch_name(0), FAKE_LABELS[0], 0)
    cache = tmp_path / BigEarthNetIrrigation.cache_name
    # No times or sizes: its (here wrong) classes are not trusted.
    cache.write_text(f"patch,classes\n{patch_name(0)},3\n")
    dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    assert dataset.labels.tolist() == [1]
    assert cache.read_text().splitlines()[1].startswith(f"{patch_name(0)},11 12,12,")


def test_half_extracted_patch_is_refused_at_set_up(tmp_path: Path) -> None:
    for i in range(3):
        write_patch(tmp_path, patch_name(i), FAKE_LABELS[i], i)
    folder = tmp_path / patch_name(1)
    for band in S2_BANDS[7:]:
        (folder / f"{patch_name(1)}_{band}.tif").unlink()
    with pytest.raises(
        ValueError,
        match=rf"Patch folder '.*{patch_name(1)}' holds 7 band GeoTIFFs but "
        r"BigEarthNet-S2 patches have 12 .* not fully extracted; extract the patch "
        r"folders again .*BigEarthNet-v1\.0/S2A_.* rather than removing them",
    ):
        BigEarthNetIrrigation(tmp_path, progress=False)
    # Once extracted, the folder is counted again (the cache said 7).
    shutil.rmtree(folder)
    write_patch(tmp_path, patch_name(1), FAKE_LABELS[1], 1)
    assert len(BigEarthNetIrrigation(tmp_path, progress=False)) == 3


def test_truncated_band_file_names_the_file(tmp_path: Path) -> None:
    from torchgeo_simclr.datasets import UnreadableFileError

    folder = write_patch(tmp_path, patch_name(0), FAKE_LABELS[0], 0)
    band = folder / f"{patch_name(0)}_B08.tif"
    band.write_bytes(band.read_bytes()[:600])
    dataset = BigEarthNetIrrigation(tmp_path, progress=False)
    with pytest.raises(
        UnreadableFileError,
        match=rf"BigEarthNet-S2 band file '.*_B08\.tif' could not be read .*"
        rf"extract its patch folder {patch_name(0)} from the archive again\.$",
    ):
        dataset[0]


def write_v2_root(root: Path) -> Path:
    """A BigEarthNet v2 (reBEN) root: metadata.parquet and tile folders."""
    tile = root / "BigEarthNet-S2" / "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    patch = tile / f"{tile.name}_26_57"
    patch.mkdir(parents=True)
    (patch / f"{patch.name}_B02.tif").write_bytes(b"")
    (root / "metadata.parquet").write_bytes(b"PAR1")
    return tile


@pytest.mark.parametrize("where", ["root", "BigEarthNet-S2", "tile"])
def test_bigearthnet_v2_is_refused(tmp_path: Path, where: str) -> None:
    tile = write_v2_root(tmp_path)
    root = {"root": tmp_path, "BigEarthNet-S2": tile.parent, "tile": tile}[where]
    with pytest.raises(
        ValueError,
        match=r"holds BigEarthNet v2 \(reBEN\) data .*, which is not supported: "
        r"BigEarthNetIrrigation reads BigEarthNet-S2 v1\.0.*; download "
        r"https://zenodo\.org/.*BigEarthNet-S2-v1\.0\.tar\.gz and extract it",
    ) as error:
        BigEarthNetIrrigation(root, progress=False)
    assert "remove" not in str(error.value)


def test_archive_not_extracted(tmp_path: Path) -> None:
    (tmp_path / "BigEarthNet-S2-v1.0.tar.gz").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError,
        match=r"extract the archive BigEarthNet-S2-v1\.0\.tar\.gz found there",
    ):
        BigEarthNetIrrigation(tmp_path)


#: 300 patch names, 40 irrigated (as the reviewer's fake root).
NAMES = [patch_name(i) for i in range(300)]
LABELS = torch.tensor([int(i % 300 < 40) for i in range(300)])


def split_without(drop: int | None, seed: int = 0) -> dict[str, set[str]]:
    keep = [i for i in range(len(NAMES)) if i != drop]
    names = [NAMES[i] for i in keep]
    splits = irrigation_splits(LABELS[keep], seed, names)
    return {k: {names[i] for i in v.tolist()} for k, v in splits.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_stable_when_one_patch_goes(seed: int) -> None:
    full = split_without(None, seed)
    chosen_negatives = {NAMES.index(n) for s in full.values() for n in s} - set(
        range(40)
    )
    unused = next(i for i in range(40, 300) if i not in chosen_negatives)
    for drop in (0, min(chosen_negatives), unused):
        fewer = split_without(drop, seed)
        sizes = {split: len(names) for split, names in fewer.items()}
        n = 39 if drop == 0 else 40
        per_class = (n * 70 // 100, n * 15 // 100, n - n * 70 // 100 - n * 15 // 100)
        assert sizes == {
            "train": per_class[0] * 2,
            "val": per_class[1] * 2,
            "test": per_class[2] * 2,
        }
        for split in ("train", "val", "test"):
            moved = len(fewer[split] - full[split])
            # The cuts move by a patch per class where a class shrinks.
            assert moved <= 4, (drop, split, moved)
        assert len(fewer["test"] & full["test"]) >= len(full["test"]) - 4


def test_split_is_the_same_in_another_process() -> None:
    import subprocess
    import sys

    code = (
        "import torch;"
        "from torchgeo_simclr.datamodules.balanced_split import irrigation_splits;"
        f"labels = torch.tensor({LABELS.tolist()});"
        f"names = {NAMES!r};"
        "print(irrigation_splits(labels, 3, names)['test'].tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == irrigation_splits(LABELS, 3, NAMES)["test"].tolist()


def test_empty_val_split_is_one_sentence(tmp_path: Path) -> None:
    for i in range(12):
        labels = FAKE_LABELS[0] if i < 5 else FAKE_LABELS[3]
        write_patch(tmp_path / "root", patch_name(i), labels, i)
    dm = datamodule(tmp_path / "root", tmp_path)
    with pytest.raises(
        ValueError,
        match=r"The balanced split of .* has an empty val set: 5 of its 12 patches "
        r"are irrigated under scheme 'regular', .* needs at least 7 irrigated "
        r"patches; point root at the full BigEarthNet-S2 v1\.0 archive",
    ):
        dm.setup("fit")


def test_split_guard_stops_a_run_on_another_patch_set(
    fake_root: Path, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from torchgeo_simclr.split_guard import SplitGuard

    dm = datamodule(fake_root, tmp_path)
    dm.setup("fit")
    assert dm.split_fingerprint is not None
    assert dm.split_summary is not None
    assert dm.split_summary.startswith("BigEarthNet split of ")
    guard = SplitGuard(dm.split_fingerprint, None, str(fake_root), "runs/exp")
    guard.setup(SimpleNamespace(datamodule=dm), None, "fit")  # type: ignore[arg-type]
    copy = tmp_path / "copy"
    shutil.copytree(fake_root, copy)
    shutil.rmtree(copy / "BigEarthNet-v1.0" / patch_name(0))  # irrigated
    other = datamodule(copy, tmp_path)
    other.setup("fit")
    with pytest.raises(
        ValueError,
        match=rf"The data under --root '.*' now makes split {other.split_fingerprint}"
        rf", but the experiment in --out 'runs/exp' was made on split "
        rf"{dm.split_fingerprint}, .* pass a new --out .* or restore the "
        r"root's patch folders",
    ):
        guard.setup(SimpleNamespace(datamodule=other), None, "fit")  # type: ignore[arg-type]


def metadata(**kwargs: object) -> DataMetadata:
    return DataMetadata(
        bands=S2_BANDS,
        mean=(0.0,) * 12,
        std=(1.0,) * 12,
        patch_size=32,
        **kwargs,  # type: ignore[arg-type]
    )


def test_checkpoints_record_the_dataset(fake_root: Path, tmp_path: Path) -> None:
    dm = datamodule(fake_root, tmp_path)
    dm.setup("fit")
    data = DataMetadata.from_datamodule(dm, 12)
    assert data is not None
    assert data.dataset == "bigearthnet"
    assert DataMetadata.from_dict(data.to_dict()) == data
    # Earlier versions' records load: without a dataset, blocks mean a scene.
    old = {k: v for k, v in data.to_dict().items() if k not in ("dataset", "extent")}
    assert DataMetadata.from_dict(old).kind is None
    assert DataMetadata.from_dict({**old, "held_out": "ab"}).kind == "scene"


def test_encoder_pretrained_on_other_data_is_not_said_to_have_seen_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import warnings

    from torchgeo_simclr.tasks.provenance import other_data, split_warning

    ben = metadata(split="aaaa", dataset="bigearthnet")
    scene = metadata(
        split="bbbb",
        held_out="cccc",
        dataset="scene",
        extent=(-120.6, 36.6, -120.4, 36.8),
    )
    far_scene = metadata(
        split="dddd", held_out="eeee", dataset="scene", extent=(10.0, 45.0, 10.2, 45.2)
    )
    near_scene = metadata(
        split="ffff",
        held_out="gggg",
        dataset="scene",
        extent=(-120.5, 36.7, -120.3, 36.9),
    )
    assert other_data(ben, scene)
    assert other_data(scene, ben)
    assert other_data(scene, far_scene)
    assert not other_data(scene, near_scene)
    assert not other_data(ben, metadata(split="zzzz", dataset="bigearthnet"))
    assert split_warning("checkpoint 'x'", ben, scene) is None
    assert split_warning("checkpoint 'x'", scene, near_scene) is not None
    for trained, current in ((ben, scene), (scene, ben), (scene, far_scene)):
        task = FineTuneTask(model="resnet18", in_channels=12)
        task.pretrained_data, task.data_metadata = trained, current
        with warnings.catch_warnings(), caplog.at_level(logging.INFO):
            warnings.simplefilter("error")
            task._warn_other_pretraining_split()
        assert "was pretrained on other data" in caplog.text
        caplog.clear()
    task = FineTuneTask(model="resnet18", in_channels=12)
    task.pretrained_data, task.data_metadata = scene, near_scene
    with pytest.warns(UserWarning, match=r"the encoder has seen the imagery"):
        task._warn_other_pretraining_split()


def test_experiment_without_root_names_bigearthnet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torchgeo_simclr.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["experiment", "--preset", "bigearthnet", "--fractions", "0.01"])
    err = capsys.readouterr().err
    assert "--root 'data/bigearthnet' does not exist" in err
    assert "BigEarthNet-S2 v1.0" in err
    assert "zenodo.org" in err
    assert "sample-data" not in err
    assert not (tmp_path / "runs").exists()
