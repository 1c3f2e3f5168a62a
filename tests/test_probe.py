import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import fake_dwr_gpkg, fake_s2_multiband
from torch import Tensor, nn

from torchgeo_simclr import probe
from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.patch_labels import patch_labels
from torchgeo_simclr.probe import embed_split, knn_classify, knn_probe, score


def test_knn_votes_with_the_nearest_by_angle() -> None:
    reference = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    labels = torch.tensor([1, 1, 0, 0])
    # Length does not matter, direction does.
    query = torch.tensor([[10.0, 0.5], [0.2, 0.01], [0.0, 0.5]])
    assert knn_classify(reference, labels, query, k=2).tolist() == [1, 1, 0]
    # k larger than the references: everyone votes, a tie is not irrigated.
    assert knn_classify(reference, labels, query, k=10).tolist() == [0, 0, 0]


def test_score_known_counts() -> None:
    predictions = torch.tensor([1, 1, 1, 0, 0, 0])
    targets = torch.tensor([1, 1, 0, 0, 0, 1])
    accuracy, balanced, f1 = score(predictions, targets)
    assert accuracy == pytest.approx(4 / 6)
    assert balanced == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_patch_labels_need_enough_labelled_pixels() -> None:
    mask = torch.full((3, 4, 4), IGNORE_INDEX)
    mask[0] = 1
    mask[1, :2] = 0  # half labelled, all not irrigated
    mask[2, 0, 0] = 1  # one labelled pixel of 16
    assert patch_labels(mask).tolist() == [1, 0, IGNORE_INDEX]


class MeanBands(nn.Module):
    """An 'encoder' that returns each band's mean: enough to find vegetation."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1))


@pytest.fixture
def datamodule(tmp_path: Path) -> CentralValleyDataModule:
    fake_s2_multiband(tmp_path / "sentinel2")
    fake_dwr_gpkg(tmp_path)
    dm = CentralValleyDataModule(
        root=str(tmp_path),
        patch_size=16,
        block_size=32,
        batch_size=8,
        stats_patches=4,
        num_views=0,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup("fit")
    return dm


def test_embeddings_are_the_same_patches_every_time(
    datamodule: CentralValleyDataModule,
) -> None:
    first, labels = embed_split(MeanBands(), datamodule, "train", progress=False)
    again, labels_again = embed_split(MeanBands(), datamodule, "train", progress=False)
    assert first.shape[1] == 12
    assert torch.equal(first, again)
    assert torch.equal(labels, labels_again)
    assert set(labels.tolist()) <= {0, 1}


def test_probe_without_labelled_held_out_patches_says_so(
    datamodule: CentralValleyDataModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Labels that miss the val and test blocks printed scores of 0.000.
    real = probe.embed_split

    def no_held_out(*args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        features, labels = real(*args, **kwargs)
        held_out = args[2] != "train"
        return (features[:0], labels[:0]) if held_out else (features, labels)

    monkeypatch.setattr(probe, "embed_split", no_held_out)
    with pytest.raises(ValueError, match="and 0 in the val and test blocks") as e:
        knn_probe(MeanBands(), datamodule, k=3, progress=False)
    assert "nothing to score" in str(e.value)


def test_probe_scores_val_and_test_blocks(datamodule: CentralValleyDataModule) -> None:
    result = knn_probe(MeanBands(), datamodule, k=3, progress=False)
    _, val = embed_split(MeanBands(), datamodule, "val", progress=False)
    _, test = embed_split(MeanBands(), datamodule, "test", progress=False)
    assert result.n_test == len(val) + len(test)
    assert result.n_reference > result.n_test
    assert 0 <= result.balanced_accuracy <= 1


def test_probe_warns_when_its_scores_cannot_mean_much(
    datamodule: CentralValleyDataModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sparse labels gave 2 reference patches of one class for k=20, and the
    # probe printed accuracy and F1 of 1.000 without a word.
    real = probe.embed_split

    def two_irrigated(*args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        features, _ = real(*args, **kwargs)
        return features[:2], torch.ones(2, dtype=torch.long)

    monkeypatch.setattr(probe, "embed_split", two_irrigated)
    with pytest.warns(UserWarning, match="not meaningful") as caught:
        result = knn_probe(MeanBands(), datamodule, k=20, progress=False)
    text = str(caught[0].message)
    assert "k=20 but only 2 labelled reference patches" in text
    assert "every reference patch is irrigated" in text
    assert result.f1 == 1.0


def test_probe_with_enough_patches_of_both_classes_does_not_warn(
    datamodule: CentralValleyDataModule,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        knn_probe(MeanBands(), datamodule, k=3, progress=False)


def test_probe_progress_bars_leave_no_lines(
    datamodule: CentralValleyDataModule, capsys: pytest.CaptureFixture[str]
) -> None:
    # A second `make demo` printed the split line, then one line per finished
    # bar (6 of them, empty where the terminal reports no width), then its table.
    knn_probe(MeanBands(), datamodule, k=3, encoder="random weights")
    err = capsys.readouterr().err
    assert "embed train (random weights)" in err  # shown while it runs
    assert "embed test (random weights)" in err
    assert "\n" not in err
