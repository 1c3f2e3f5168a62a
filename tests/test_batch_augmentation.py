"""BatchAugmentation: the pixels with data (batch["valid"]) through views."""

from typing import Any

import pytest
import torch
from torch import Tensor

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datamodules.augment import BatchAugmentation, make_views
from torchgeo_simclr.inference.normalise import normalise
from torchgeo_simclr.transforms import SimCLRViews

BATCH, BANDS, SIZE = 8, 12, 24
MEAN, STD = torch.full((BANDS,), 1000.0), torch.full((BANDS,), 500.0)


def raw_batch(nodata_columns: int = 0) -> dict[str, Tensor]:
    """Reflectance x10000 and labels of 8 patches, the first one unlabelled;
    the right *nodata_columns* columns are cloud-masked (0 in every band)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(BATCH, BANDS, SIZE, SIZE, generator=generator) * 3000 + 1
    image[..., SIZE - nodata_columns :] = 0
    mask = torch.randint(0, 2, (BATCH, SIZE, SIZE), generator=generator)
    mask[0] = IGNORE_INDEX
    return {"image": image, "mask": mask}


def test_valid_is_false_where_any_band_is_zero() -> None:
    batch = raw_batch(nodata_columns=4)
    batch["image"][1, 10, 5, 6] = 0  # B11 alone missing: a swath edge
    out = BatchAugmentation(MEAN, STD)(batch)
    expected = torch.ones(BATCH, SIZE, SIZE, dtype=torch.bool)
    expected[..., SIZE - 4 :] = False
    expected[1, 5, 6] = False
    assert out["valid"].dtype == torch.bool
    assert torch.equal(out["valid"], expected)
    assert (out["mask"][~expected] == IGNORE_INDEX).all()


@pytest.mark.parametrize(
    ("ops", "op_kwargs"),
    [
        (["flip"], None),
        (["rotation"], {"rotation": {"right_angles": True, "resample": "nearest"}}),
    ],
)
def test_valid_follows_the_view(
    ops: list[str], op_kwargs: dict[str, dict[str, Any]] | None
) -> None:
    # These views move pixels without resampling, so the normalised nodata
    # (0 in every band) shows where the pixels without data went.
    views = SimCLRViews(ops, ops_per_view=1, num_views=1, op_kwargs=op_kwargs)
    torch.manual_seed(0)
    out = BatchAugmentation(MEAN, STD, views)(raw_batch(nodata_columns=8))
    valid = out["valid"]
    assert (~valid[..., : SIZE - 8]).any()  # some nodata left the right edge
    assert torch.equal(valid, out["image"].ne(0).any(1))
    assert (out["mask"][~valid] == IGNORE_INDEX).all()


def test_pixels_rotated_in_from_outside_the_patch_have_no_data() -> None:
    views = SimCLRViews(
        ["rotation"],
        ops_per_view=1,
        num_views=1,
        op_kwargs={"rotation": {"degrees": (45.0, 45.0)}},
    )
    out = BatchAugmentation(MEAN, STD, views)(raw_batch())
    valid = out["valid"]
    assert not valid[:, [0, 0, -1, -1], [0, -1, 0, -1]].any()  # the corners
    assert valid[:, SIZE // 2, SIZE // 2].all()
    assert 0.75 < valid.float().mean().item() < 0.9  # 2 (sqrt(2) - 1) of it
    assert (out["mask"][~valid] == IGNORE_INDEX).all()
    assert (out["mask"][1:][valid[1:]] != IGNORE_INDEX).all()  # labels kept


@pytest.mark.parametrize("num_views", [1, 2])
def test_views_are_unchanged_where_every_pixel_has_data(num_views: int) -> None:
    # The distillation configs' augmentations: images and masks as before.
    views = make_views(["flip", "rotation", "zoom", "speckle"], 2, num_views, None)
    assert views is not None
    torch.manual_seed(0)
    out = BatchAugmentation(MEAN, STD, views)(raw_batch())
    plain = raw_batch()
    image, _ = normalise(
        plain["image"], MEAN[None, :, None, None], STD[None, :, None, None]
    )
    torch.manual_seed(0)
    expected = views(image, plain["mask"])
    if num_views == 1:
        assert torch.equal(out["image"], expected[0][0])
        assert torch.equal(out["mask"], expected[0][1])
    else:
        assert torch.equal(out["views"], torch.stack([x for x, _ in expected]))
        assert torch.equal(out["view_masks"], torch.stack([m for _, m in expected]))
        assert out["valid"].all()
