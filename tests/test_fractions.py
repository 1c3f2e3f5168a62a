"""Nested class-balanced label fractions, and the datamodule's labelled subsets."""

import itertools
from pathlib import Path
from typing import Any

import pytest
import shapely
import torch
from torch import Tensor

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datamodules import (
    BigEarthNetIrrigationDataModule,
    CentralValleyDataModule,
    central_valley,
)
from torchgeo_simclr.datamodules.fractions import PatchDataset, nested_balanced_subset
from torchgeo_simclr.sample import make_sample_scene

FRACTIONS = [0.01, 0.03, 0.1, 0.25, 0.5, 1.0]


def shuffled_labels(zeros: int, ones: int, ignored: int) -> Tensor:
    labels = torch.tensor([0] * zeros + [1] * ones + [IGNORE_INDEX] * ignored)
    return labels[
        torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))
    ]


@pytest.fixture(scope="module")
def labels() -> Tensor:
    return shuffled_labels(300, 700, 20)


def test_subsets_are_nested(labels: Tensor) -> None:
    subsets = [set(nested_balanced_subset(labels, f).tolist()) for f in FRACTIONS]
    for smaller, larger in itertools.pairwise(subsets):
        assert smaller < larger


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_subset_size_and_balance(labels: Tensor, fraction: float) -> None:
    chosen = nested_balanced_subset(labels, fraction, seed=3)
    assert len(chosen) == max(round(fraction * 1000), 2)
    assert torch.equal(chosen, chosen.sort().values)
    assert len(set(chosen.tolist())) == len(chosen)
    picked = labels[chosen]
    assert not (picked == IGNORE_INDEX).any()
    if fraction <= 0.5:  # both classes have enough patches
        assert abs(int((picked == 0).sum()) - int((picked == 1).sum())) <= 1


def test_everything_at_fraction_one(labels: Tensor) -> None:
    chosen = nested_balanced_subset(labels, 1.0)
    assert chosen.tolist() == (labels != IGNORE_INDEX).nonzero()[:, 0].tolist()


def test_tiny_fraction_takes_one_of_each_class(labels: Tensor) -> None:
    chosen = nested_balanced_subset(labels, 1e-4)
    assert sorted(labels[chosen].tolist()) == [0, 1]


def test_seed_decides_the_subset(labels: Tensor) -> None:
    first = nested_balanced_subset(labels, 0.1, seed=0)
    assert torch.equal(first, nested_balanced_subset(labels, 0.1, seed=0))
    assert not torch.equal(first, nested_balanced_subset(labels, 0.1, seed=1))


def test_short_class_is_made_up_by_the_other() -> None:
    labels = shuffled_labels(95, 5, 10)
    chosen = nested_balanced_subset(labels, 0.5)
    picked = labels[chosen]
    assert len(chosen) == 50
    assert int((picked == 1).sum()) == 5
    assert int((picked == 0).sum()) == 45
    # Still nested with a smaller fraction where the positives did not run out.
    small = nested_balanced_subset(labels, 0.06)
    assert set(small.tolist()) <= set(chosen.tolist())
    assert sorted(labels[small].tolist()) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fraction_outside_zero_to_one(labels: Tensor, fraction: float) -> None:
    with pytest.raises(ValueError, match=r"label_fraction must be in \(0, 1\]"):
        nested_balanced_subset(labels, fraction)


@pytest.mark.parametrize(
    "module", [CentralValleyDataModule, BigEarthNetIrrigationDataModule]
)
@pytest.mark.parametrize(
    ("fraction", "shown"),
    [(0.0, "0"), (1.5, "1.5"), (-0.1, "-0.1"), (float("nan"), "nan")],
)
def test_datamodule_refuses_a_fraction_outside_zero_to_one_when_built(
    module: type[CentralValleyDataModule | BigEarthNetIrrigationDataModule],
    fraction: float,
    shown: str,
) -> None:
    # Refused only by setup("fit"), after the split was cut (15-45 s), without
    # naming the option; nan slipped through as "got nan".
    with pytest.raises(ValueError, match=r"--data\.init_args\.label_fraction") as info:
        module(label_fraction=fraction)
    assert str(info.value) == (
        "--data.init_args.label_fraction takes a share of the labelled patches "
        f"in (0, 1], got {shown}; pass e.g. 0.01 for 1% or 1 for all (or null "
        "to pretrain without labels)."
    )


def test_no_labelled_patch() -> None:
    with pytest.raises(ValueError, match="No training patch is labelled"):
        nested_balanced_subset(torch.full((10,), IGNORE_INDEX), 0.5)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=512)
    return root


def datamodule(scene: Path, **kwargs: Any) -> CentralValleyDataModule:
    defaults: dict[str, Any] = {
        "root": str(scene),
        "patch_size": 32,
        "block_size": 128,
        "batch_size": 4,
        "num_views": 1,
        "label_seed": 0,
        "stats_patches": 8,
        "cache_dir": str(scene / "cache"),
    }
    dm = CentralValleyDataModule(**(defaults | kwargs))
    dm.setup("fit")
    return dm


def box(patch: tuple[slice, slice]) -> shapely.Polygon:
    x, y = patch
    return shapely.box(x.start, y.start, x.stop, y.stop)


@pytest.fixture(scope="module")
def subsets(scene: Path) -> dict[float, CentralValleyDataModule]:
    return {f: datamodule(scene, label_fraction=f) for f in (0.1, 0.5)}


def test_datamodule_subsets_are_nested_and_counted(
    subsets: dict[float, CentralValleyDataModule],
) -> None:
    small, large = subsets[0.1], subsets[0.5]
    for dm in (small, large):
        assert isinstance(dm.train_dataset, PatchDataset)
        assert dm.n_labels == len(dm.train_dataset)
    assert small.n_labels is not None
    assert large.n_labels is not None
    assert 2 <= small.n_labels < large.n_labels
    assert set(small.train_dataset.patches) < set(large.train_dataset.patches)
    # Every patch of the subset is labelled, and both classes are there.
    batch = next(iter(small.train_dataloader()))
    assert batch["mask"].shape == (4, 32, 32)
    masks = [small.train_dataset[i]["mask"] for i in range(len(small.train_dataset))]
    irrigated = [float((m == 1).sum() / (m != IGNORE_INDEX).sum()) for m in masks]
    assert any(share > 0.5 for share in irrigated)
    assert any(share <= 0.5 for share in irrigated)


def test_subset_never_overlaps_val_and_test(
    subsets: dict[float, CentralValleyDataModule],
) -> None:
    dm = subsets[0.5]
    train = [box(p) for p in dm.train_dataset.patches]
    held_out = [box(p) for split in ("val", "test") for p in dm.grid_sampler(split)]
    assert train
    assert held_out
    assert not any(a.intersection(b).area > 0 for a in train for b in held_out)


def test_subset_size_is_logged(
    scene: Path, lightning_log: pytest.LogCaptureFixture
) -> None:
    dm = datamodule(scene, label_fraction=0.1)
    lines = [r.getMessage() for r in lightning_log.records]
    logged = [line for line in lines if line.startswith("Labelled subset:")]
    assert len(logged) == 1
    assert logged[0].startswith(f"Labelled subset: {dm.n_labels} of ")
    assert "label_fraction=0.1" in logged[0]


def test_few_labels_still_fill_a_batch(scene: Path) -> None:
    dm = datamodule(scene, label_fraction=0.001, batch_size=16)
    assert dm.n_labels is not None
    assert dm.n_labels < 16
    batches = list(dm.train_dataloader())
    assert len(batches) >= 1
    assert batches[0]["image"].shape == (16, 12, 32, 32)


def test_unlabeled_keeps_every_patch_with_masks_outside_the_subset_blank(
    scene: Path, subsets: dict[float, CentralValleyDataModule]
) -> None:
    dm = datamodule(scene, label_fraction=0.1, unlabeled=True)
    data = dm.train_dataset
    assert isinstance(data, PatchDataset)
    assert data.patches == list(dm.grid_sampler("train"))
    assert dm.n_labels == subsets[0.1].n_labels
    kept = [
        data.patches[i]
        for i in range(len(data))
        if not (data[i]["mask"] == IGNORE_INDEX).all()
    ]
    assert kept == subsets[0.1].train_dataset.patches
    assert len(kept) == dm.n_labels


class CountingDataset:
    """Stands in for a GeoDataset: counts reads per patch."""

    def __init__(self) -> None:
        self.reads: dict[tuple[slice, slice], int] = {}

    def __getitem__(self, patch: tuple[slice, slice]) -> dict[str, Tensor]:
        self.reads[patch] = self.reads.get(patch, 0) + 1
        seed = int(patch[0].start)
        generator = torch.Generator().manual_seed(seed)
        return {
            "image": torch.rand(2, 4, 4, generator=generator),
            "mask": torch.ones(4, 4, dtype=torch.long),
        }


def patches(n: int) -> list[tuple[slice, slice]]:
    return [(slice(10.0 * i, 10.0 * i + 4), slice(0.0, 4.0)) for i in range(n)]


def test_in_memory_reads_each_patch_once() -> None:
    source = CountingDataset()
    labelled = torch.tensor([True, False, True])
    data = PatchDataset(source, patches(3), labelled, in_memory=True)  # type: ignore[arg-type]
    first = [data[i] for i in range(3)]
    second = [data[i] for i in range(3)]
    assert list(source.reads.values()) == [1, 1, 1]
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert (second[1]["mask"] == IGNORE_INDEX).all()
    assert (second[2]["mask"] == 1).all()
    # Changing a returned sample's entries does not change the kept one.
    first[0]["image"] = torch.zeros(2, 4, 4)
    assert torch.equal(data[0]["image"], second[0]["image"])


def test_without_in_memory_every_access_reads() -> None:
    source = CountingDataset()
    data = PatchDataset(source, patches(2))  # type: ignore[arg-type]
    data[0]
    data[0]
    assert source.reads[patches(2)[0]] == 2


def test_in_memory_datamodule_serves_the_same_patches(
    scene: Path, subsets: dict[float, CentralValleyDataModule]
) -> None:
    dm = datamodule(scene, label_fraction=0.1, in_memory=True)
    for split in ("val", "test"):
        data = getattr(dm, f"{split}_dataset")
        assert isinstance(data, PatchDataset)
        assert data.in_memory
        assert data.patches == list(dm.grid_sampler(split))
    assert dm.train_dataset.patches == subsets[0.1].train_dataset.patches
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 12, 32, 32)
    again = next(iter(dm.val_dataloader()))
    assert torch.equal(batch["image"], again["image"])


def test_test_stage_reuses_the_patches_of_the_fit_stage(scene: Path) -> None:
    # Trainer.test after Trainer.fit calls setup again: the labelled subset and
    # the in-memory val/test patches must not be read (or drawn) a second time.
    dm = datamodule(scene, label_fraction=0.5, in_memory=True)
    train, test = dm.train_dataset, dm.test_dataset
    dm.setup("test")
    assert dm.train_dataset is train
    assert dm.test_dataset is test


def test_a_subset_of_one_class_warns(
    scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sparse labels gave "1 of 1 labelled training patches (1 irrigated, 0
    # not)" and fine-tuning went ahead on one class without a word.
    monkeypatch.setattr(
        central_valley,
        "grid_patch_labels",
        lambda dataset, patches, **_: torch.ones(len(patches), dtype=torch.long),
    )
    with pytest.warns(UserWarning, match=r"Every labelled training patch .* is irri"):
        datamodule(scene, label_fraction=0.1)


@pytest.mark.parametrize("stage", ["test", "validate", "predict"])
def test_scoring_draws_no_labelled_subset(
    scene: Path,
    stage: str,
    lightning_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Drawing the subset labels every patch of the train grid (minutes at
    # Central Valley scale), which test, validate and predict never use.
    labelled: list[int] = []
    grid_patch_labels = central_valley.grid_patch_labels

    def spy(*args: Any, **kwargs: Any) -> Tensor:
        labels = grid_patch_labels(*args, **kwargs)
        labelled.append(len(labels))
        return labels

    monkeypatch.setattr(central_valley, "grid_patch_labels", spy)
    dm = CentralValleyDataModule(
        root=str(scene),
        patch_size=32,
        block_size=128,
        batch_size=4,
        num_views=1,
        label_fraction=0.1,
        stats_patches=8,
        cache_dir=str(scene / "cache"),
    )
    dm.setup(stage)
    assert labelled == []
    assert dm.n_labels is None
    assert "Labelled subset:" not in lightning_log.text
    assert len(dm.test_sampler) > 0
    # Fitting draws it, once; a test after the fit keeps it.
    dm.setup("fit")
    assert len(labelled) == 1
    assert dm.n_labels is not None
    assert isinstance(dm.train_dataset, PatchDataset)
    dm.setup("test")
    assert len(labelled) == 1
    assert isinstance(dm.train_dataset, PatchDataset)
    assert lightning_log.text.count("Labelled subset:") == 1
