import pytest
import shapely
import torch
from shapely import box

from torchgeo_simclr.datamodules.blocks import spatial_blocks


def test_blocks_are_disjoint_and_cover_the_region() -> None:
    roi = box(0, 0, 10_240, 5_120)
    splits = spatial_blocks(roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=1)
    assert [len(s.geoms) for s in splits] == [22, 5, 5]
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert a.intersection(b).area == 0
    assert shapely.union_all(splits).area == pytest.approx(roi.area)


def test_assignment_depends_on_seed_only() -> None:
    roi = box(0, 0, 5_120, 5_120)
    a = spatial_blocks(roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=3)
    b = spatial_blocks(roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=3)
    c = spatial_blocks(roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=4)
    assert [s.equals(t) for s, t in zip(a, b, strict=True)] == [True] * 3
    assert not all(s.equals(t) for s, t in zip(a, c, strict=True))


def test_small_region_error_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="smaller block_size"):
        spatial_blocks(box(0, 0, 1000, 1000), 1280, (0.7, 0.15, 0.15), min_side=480)


def test_blocks_smaller_than_a_patch_ask_for_larger_blocks_in_pixels() -> None:
    with pytest.raises(ValueError, match=r"block_size of at least the patch side") as e:
        spatial_blocks(box(0, 0, 5120, 5120), 640, (0.7, 0.15, 0.15), 1600, res=10)
    assert "blocks of 64 px that can fit a patch of 160 px" in str(e.value)
    with pytest.raises(ValueError, match="block_size must be positive") as e:
        spatial_blocks(box(0, 0, 5120, 5120), -2560, (0.7, 0.15, 0.15), 480, res=10)
    assert str(e.value) == (
        "--data.init_args.block_size must be positive but got -256 px; pass the "
        "blocks' side in pixels, e.g. --data.init_args.block_size 512 (the default)."
    )


def test_slivers_that_cannot_hold_a_patch_are_dropped() -> None:
    roi = box(0, 0, 3_000, 1_280)  # last column is 440 m wide
    splits = spatial_blocks(roi, 1280, (1, 0, 0), min_side=480)
    assert len(splits[0].geoms) == 2
    assert torch.tensor([len(s.geoms) for s in splits[1:]]).sum() == 0


def test_a_buffer_keeps_training_away_from_held_out_blocks() -> None:
    # Blocks touch, so a field crossing a block edge is trained on and scored;
    # the buffer cuts a gap out of the training blocks only.
    roi = box(0, 0, 10_240, 5_120)
    touching = spatial_blocks(roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=1)
    apart = spatial_blocks(
        roi, 1280, (0.7, 0.15, 0.15), min_side=480, seed=1, buffer=400
    )
    assert touching[0].distance(touching[1] | touching[2]) == 0
    assert apart[0].distance(apart[1] | apart[2]) >= 400 - 1e-6
    assert apart[1].equals(touching[1])
    assert apart[2].equals(touching[2])
    # Only the gap is lost: training keeps what lies 400 m or more away.
    kept = touching[0].difference(
        (touching[1] | touching[2]).buffer(400, join_style="mitre")
    )
    assert apart[0].area == pytest.approx(kept.area)
    assert 0 < apart[0].area < touching[0].area


def test_a_buffer_too_wide_for_the_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"split_buffer of 90 px leaves no training"):
        spatial_blocks(
            box(0, 0, 3840, 1280), 1280, (0.34, 0.33, 0.33), 480, res=10, buffer=900
        )
    with pytest.raises(ValueError, match="split_buffer must be 0 or more") as e:
        spatial_blocks(box(0, 0, 5120, 5120), 1280, (0.7, 0.15, 0.15), 480, 0, 10, -10)
    assert str(e.value) == (
        "--data.init_args.split_buffer must be 0 or more but got -1 px; pass the "
        "gap around the held-out blocks in pixels, e.g. "
        "--data.init_args.split_buffer 0 (the default, no gap)."
    )
