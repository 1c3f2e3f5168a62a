"""Tests for torchgeo_simclr.transforms: the nine ops and SimCLRViews."""

from typing import Any

import pytest
import torch
from kornia.augmentation import AugmentationSequential, RigidAffineAugmentationBase2D
from torch import Tensor, nn

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.transforms import (
    AUGMENTATIONS,
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomFlip,
    RandomGain,
    RandomRotation,
    RandomShift,
    RandomSpeckle,
    RandomZoom,
    SimCLRViews,
    apply_augmentation,
)

INTENSITY = ["blur", "brightness", "contrast", "gain", "speckle"]
GEOMETRIC = ["flip", "rotation", "shift", "zoom"]
NAMES = INTENSITY + GEOMETRIC
B, C, H, W = 8, 12, 32, 32


@pytest.fixture
def image() -> Tensor:
    """Standard normal x 3: values well below -1 and above 1."""
    torch.manual_seed(0)
    return torch.randn(B, C, H, W) * 3


def blocky_image(seed: int = 0) -> Tensor:
    """Every band is +-2 on 4 x 4 blocks: never 0, so padding shows as 0."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.rand(B, C, H // 4, W // 4, generator=generator) > 0.5
    blocks = torch.where(signs, 2.0, -2.0)
    return blocks.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)


def mask_from(image: Tensor) -> Tensor:
    """Label = band 0 above its mean (0 after standardisation), int64 [B, H, W]."""
    return (image[:, 0] > 0).long()


def make(name: str, **kwargs: Any) -> RigidAffineAugmentationBase2D:
    return AUGMENTATIONS[name](**kwargs)


def test_registry_names_and_types() -> None:
    assert set(AUGMENTATIONS) == set(NAMES)
    for cls in AUGMENTATIONS.values():
        assert issubclass(cls, RigidAffineAugmentationBase2D)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_kept(name: str, dtype: torch.dtype, image: Tensor) -> None:
    out = make(name, p=1.0)(image.to(dtype))
    assert out.shape == image.shape
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_no_clipping_to_unit_range(name: str, image: Tensor) -> None:
    out = make(name, p=1.0)(image)
    assert out.min() < -1
    assert out.max() > 1


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("brightness", {"offset": (1.0, 2.0)}),
        ("contrast", {"factor": (1.5, 2.0)}),
        ("gain", {"gain": (1.2, 1.5)}),
        ("speckle", {"mode": "multiplicative", "sigma": (0.5, 1.0)}),
        ("speckle", {"mode": "impulse", "amount": (0.1, 0.2), "value": 50.0}),
    ],
)
def test_range_extends_beyond_input(
    name: str, kwargs: dict[str, Any], image: Tensor
) -> None:
    out = make(name, p=1.0, **kwargs)(image)
    assert out.max() > image.max()
    if name != "brightness":
        assert out.min() < image.min()


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_per_sample(name: str, image: Tensor) -> None:
    torch.manual_seed(1)
    same = image[:1].expand(B, -1, -1, -1).contiguous()
    out = make(name, p=1.0)(same)
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    # A flip has only three outcomes (horizontal, vertical, both).
    assert distinct >= (2 if name == "flip" else B)


@pytest.mark.parametrize("name", NAMES)
def test_p_zero_is_identity(name: str, image: Tensor) -> None:
    mask = mask_from(image)
    out, out_mask = apply_augmentation(make(name, p=0.0), image, mask)
    assert torch.equal(out, image)
    assert out_mask is not None
    assert torch.equal(out_mask, mask)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_p_half_moves_image_and_mask_together(name: str) -> None:
    torch.manual_seed(2)
    image = blocky_image()
    mask = mask_from(image)
    out, out_mask = apply_augmentation(make(name, p=0.5), image, mask)
    assert out_mask is not None
    image_kept = (out == image).flatten(1).all(1)
    mask_kept = (out_mask == mask).flatten(1).all(1)
    assert 0 < int(image_kept.sum()) < B
    assert torch.equal(image_kept, mask_kept)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_mask_moves_with_image_exactly(name: str) -> None:
    torch.manual_seed(3)
    kwargs = {} if name == "flip" else {"resample": "nearest"}
    image = blocky_image()
    mask = mask_from(image)
    out, out_mask = apply_augmentation(make(name, p=1.0, **kwargs), image, mask)
    assert out_mask is not None
    assert out_mask.dtype == torch.int64
    assert out_mask.shape == (B, H, W)
    assert set(out_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    band = out[:, 0]
    expected = torch.where(band == 0, IGNORE_INDEX, (band > 0).long())
    assert torch.equal(out_mask, expected)


@pytest.mark.parametrize("name", ["rotation", "shift", "zoom"])
def test_mask_follows_bilinear_image(name: str) -> None:
    torch.manual_seed(4)
    image = blocky_image()
    op = make(name, p=1.0, **({"whole_pixels": False} if name == "shift" else {}))
    out, out_mask = apply_augmentation(op, image, mask_from(image))
    assert out_mask is not None
    valid = out_mask != IGNORE_INDEX
    agree = ((out[:, 0] > 0).long() == out_mask)[valid].float().mean()
    assert agree > 0.97


@pytest.mark.parametrize("label", [0, 1])
def test_rotation_padding_becomes_ignore(label: int, image: Tensor) -> None:
    mask = torch.full((B, H, W), label)
    out, out_mask = apply_augmentation(
        RandomRotation(degrees=(45.0, 45.0), p=1.0), image, mask
    )
    assert out_mask is not None
    corners = out_mask[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == IGNORE_INDEX).all()
    assert (out[:, :, [0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()
    assert (out_mask[:, H // 2, W // 2] == label).all()
    assert set(out_mask.unique().tolist()) == {label, IGNORE_INDEX}


def test_shift_padding_becomes_ignore(image: Tensor) -> None:
    mask = torch.zeros(B, H, W, dtype=torch.int64)
    op = RandomShift(shift_x=(0.25, 0.25), shift_y=(0.0, 0.0), p=1.0)
    out, out_mask = apply_augmentation(op, image, mask)
    assert out_mask is not None
    assert (out_mask[..., : W // 4] == IGNORE_INDEX).all()
    assert (out_mask[..., W // 4 :] == 0).all()
    assert torch.allclose(out[..., : W // 4], torch.zeros(()), atol=1e-4)
    assert torch.allclose(out[..., W // 4 :], image[..., : -W // 4], atol=1e-4)


@pytest.mark.parametrize("name", ["flip", "zoom"])
def test_flip_and_zoom_never_pad(name: str, image: Tensor) -> None:
    mask = torch.zeros(B, H, W, dtype=torch.int64)
    _, out_mask = apply_augmentation(make(name, p=1.0), image, mask)
    assert out_mask is not None
    assert (out_mask == 0).all()


def test_existing_ignore_is_kept(image: Tensor) -> None:
    mask = mask_from(image)
    mask[:, :4] = IGNORE_INDEX
    _, out_mask = apply_augmentation(RandomFlip(vertical=False, p=1.0), image, mask)
    assert out_mask is not None
    assert (out_mask[:, :4] == IGNORE_INDEX).all()
    assert torch.equal(out_mask, mask.flip(-1))


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_ops_leave_mask_untouched(name: str, image: Tensor) -> None:
    mask = mask_from(image)
    mask[:, 0] = IGNORE_INDEX
    copy = mask.clone()
    _, out_mask = apply_augmentation(make(name, p=1.0), image, mask)
    assert out_mask is mask
    assert torch.equal(mask, copy)


def test_works_in_augmentation_sequential(image: Tensor) -> None:
    pipeline = AugmentationSequential(
        RandomRotation(degrees=(45.0, 45.0), p=1.0),
        RandomBrightness(p=1.0),
        data_keys=["input", "mask"],
        keepdim=True,
    )
    out, out_mask = pipeline(image, mask_from(image))
    assert out.shape == image.shape
    assert out_mask.shape == (B, H, W)
    assert out_mask.dtype == torch.int64
    assert (out_mask[:, 0, 0] == IGNORE_INDEX).all()


def test_right_angle_rotation_is_exact(image: Tensor) -> None:
    op = RandomRotation(right_angles=True, p=1.0)
    out = op(image)
    turns = (op._params["degrees"] / 90).round().long().tolist()
    assert set(turns) <= {1, 2, 3}
    for sample, k in enumerate(turns):
        expected = torch.rot90(image[sample], k, dims=(-2, -1))
        torch.testing.assert_close(out[sample], expected, atol=1e-4, rtol=0)


def test_shift_is_whole_pixels(image: Tensor) -> None:
    op = RandomShift(p=1.0)
    op(image)
    for key in ("translate_x", "translate_y"):
        shifts = op._params[key]
        assert torch.equal(shifts, shifts.round())
        assert shifts.abs().max() <= W // 4


def test_flip_draws_only_enabled_axes() -> None:
    op = RandomFlip(vertical=False, p=1.0)
    x = torch.randn(B, C, H, W)
    torch.testing.assert_close(op(x), x.flip(-1), rtol=0, atol=0)


def test_speckle_impulse_hits_a_small_fraction(image: Tensor) -> None:
    out = RandomSpeckle(p=1.0)(image)
    pixel_hit = (out != image).any(1)
    assert (pixel_hit.float().mean((-2, -1)) <= 0.05).all()
    assert pixel_hit.any()
    # All bands of a hit pixel are set to the same extreme value, +5 or -5.
    values = out.permute(0, 2, 3, 1)[pixel_hit]
    assert (values.abs() == 5.0).all()
    assert (values == values[:, :1]).all()


def test_contrast_keeps_band_means(image: Tensor) -> None:
    out = RandomContrast(p=1.0)(image)
    torch.testing.assert_close(out.mean((-2, -1)), image.mean((-2, -1)))


def test_gain_is_per_band_and_keeps_signs(image: Tensor) -> None:
    op = RandomGain(p=1.0)
    out = op(image)
    gain = op._params["gain"]
    assert gain.shape == (B, C)
    assert ((gain >= 0.9) & (gain <= 1.1)).all()
    torch.testing.assert_close(out, image * gain[..., None, None])
    assert torch.equal(out > 0, image > 0)


def test_blur_kernel_follows_sigma() -> None:
    assert RandomBlur(sigma=(0.1, 2.0)).kernel_size == 13
    assert RandomBlur(sigma=(0.5, 1.0)).kernel_size == 7


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RandomGain(gain=(0.0, 1.1)), "gain"),
        (lambda: RandomContrast(factor=(1.5, 0.5)), "factor"),
        (lambda: RandomBlur(sigma=(0.0, 1.0)), "sigma"),
        (lambda: RandomZoom(area=(0.5, 1.5)), "area"),
        (lambda: RandomShift(shift_x=(-2.0, 0.0)), "shift_x"),
        (lambda: RandomSpeckle(mode="salt"), "mode"),  # type: ignore[arg-type]
        (lambda: RandomSpeckle(value=-1.0), "value"),
        (lambda: RandomFlip(horizontal=False, vertical=False), "horizontal"),
    ],
)
def test_bad_arguments_raise(factory: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


# SimCLRViews


def count_samples(views: SimCLRViews) -> dict[str, int]:
    """Count, per op, the samples it is applied to (forward hooks)."""
    counts = dict.fromkeys(views.op_names, 0)

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: tuple[Tensor, ...], output: Any) -> None:
            counts[name] += args[0].shape[0]

        return record

    for name, op in views.augmentations.items():
        op.register_forward_hook(hook(name))
    return counts


def test_views_shapes_and_types(image: Tensor) -> None:
    views = SimCLRViews(num_views=3)
    out = views(image)
    assert len(out) == 3
    for view, view_mask in out:
        assert view.shape == image.shape
        assert view.dtype == image.dtype
        assert view_mask is None


@pytest.mark.parametrize("ops_per_view", [1, 2, 3])
def test_each_sample_gets_exactly_ops_per_view_ops(
    ops_per_view: int, image: Tensor
) -> None:
    views = SimCLRViews(ops_per_view=ops_per_view)
    selection = views.sample_ops(5000)
    assert (selection.sum(1) == ops_per_view).all()
    # Uniform over ops: each op is drawn by ~ 5000 * k / 9 samples.
    expected = 5000 * ops_per_view / len(NAMES)
    assert ((selection.sum(0) - expected).abs() < 0.25 * expected).all()

    counts = count_samples(views)
    views(image)
    assert sum(counts.values()) == B * ops_per_view * views.num_views


def test_all_ops_when_ops_per_view_is_len_ops(image: Tensor) -> None:
    views = SimCLRViews(ops=["gain", "brightness"], ops_per_view=2, num_views=1)
    counts = count_samples(views)
    views(image)
    assert counts == {"gain": B, "brightness": B}


def test_views_are_per_sample_and_per_view(image: Tensor) -> None:
    torch.manual_seed(5)
    same = image[:1].expand(B, -1, -1, -1).contiguous()
    (first, _), (second, _) = SimCLRViews()(same)
    assert not torch.equal(first, second)
    assert torch.unique(first.flatten(1), dim=0).shape[0] == B


def test_views_reproducible_under_seed(image: Tensor) -> None:
    views = SimCLRViews()
    mask = mask_from(image)
    torch.manual_seed(6)
    first = views(image, mask)
    torch.manual_seed(6)
    second = views(image, mask)
    for (a, a_mask), (b, b_mask) in zip(first, second, strict=True):
        assert torch.equal(a, b)
        assert a_mask is not None
        assert b_mask is not None
        assert torch.equal(a_mask, b_mask)


def test_views_move_masks_with_images() -> None:
    torch.manual_seed(7)
    image = blocky_image()
    mask = mask_from(image)
    geometric = {
        name: {} if name == "flip" else {"resample": "nearest"} for name in GEOMETRIC
    }
    views = SimCLRViews(ops=GEOMETRIC, op_kwargs=geometric)
    for view, view_mask in views(image, mask):
        assert view_mask is not None
        assert view_mask.dtype == torch.int64
        band = view[:, 0]
        expected = torch.where(band == 0, IGNORE_INDEX, (band > 0).long())
        assert torch.equal(view_mask, expected)


def test_views_with_intensity_ops_keep_mask(image: Tensor) -> None:
    mask = mask_from(image)
    for _, view_mask in SimCLRViews(ops=INTENSITY)(image, mask):
        assert view_mask is not None
        assert torch.equal(view_mask, mask)
    assert torch.equal(mask, mask_from(image))


def test_views_do_not_modify_input(image: Tensor) -> None:
    copy = image.clone()
    SimCLRViews()(image)
    assert torch.equal(image, copy)


def test_canonical_order_and_op_kwargs() -> None:
    views = SimCLRViews(
        ops=["speckle", "rotation", "zoom"],
        op_kwargs={"rotation": {"right_angles": True}},
    )
    assert views.op_names == ("zoom", "rotation", "speckle")
    assert views.augmentations["rotation"].right_angles
    assert all(op.p == 1.0 for op in views.augmentations.values())


def test_cpu_chunks_split_the_calls(image: Tensor) -> None:
    whole = SimCLRViews(ops=["gain"], ops_per_view=1, cpu_chunk_mib=None)
    chunked = SimCLRViews(ops=["gain"], ops_per_view=1, cpu_chunk_mib=0.05)
    calls = []
    chunked.augmentations["gain"].register_forward_hook(
        lambda module, args, output: calls.append(args[0].shape[0])
    )
    torch.manual_seed(8)
    out = whole(image)
    torch.manual_seed(8)
    out_chunked = chunked(image)
    # 0.05 MiB holds 1 sample of [12, 32, 32] float32: one call per sample.
    assert calls == [1] * (B * 2)
    for (a, _), (b, _) in zip(out, out_chunked, strict=True):
        assert a.shape == b.shape
        assert not torch.equal(a, image)


def test_unknown_op_name_raises() -> None:
    with pytest.raises(ValueError, match="'hue'") as error:
        SimCLRViews(ops=["rotation", "hue"])
    assert all(name in str(error.value) for name in NAMES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ops": ["blur", "gain"], "ops_per_view": 3}, "ops_per_view"),
        ({"ops_per_view": 0}, "ops_per_view"),
        ({"ops": []}, "empty"),
        ({"ops": ["blur", "blur"]}, "twice"),
        ({"num_views": 0}, "num_views"),
        ({"op_kwargs": {"blur": {"p": 0.5}}}, "p=1"),
        ({"ops": ["gain"], "ops_per_view": 1, "op_kwargs": {"blur": {}}}, "blur"),
        ({"cpu_chunk_mib": 0.0}, "cpu_chunk_mib"),
    ],
)
def test_bad_view_arguments_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimCLRViews(**kwargs)


def test_bad_inputs_raise(image: Tensor) -> None:
    views = SimCLRViews()
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        views(image[0])
    with pytest.raises(TypeError, match="floating-point"):
        views((image * 100).long())
    with pytest.raises(ValueError, match="mask"):
        views(image, torch.zeros(B, H + 1, W, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer mask"):
        views(image, torch.zeros(B, H, W))


def test_views_from_jsonargparse_config() -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(SimCLRViews, "views")
    config = parser.parse_args(
        [
            "--views.ops=[rotation, shift]",
            "--views.ops_per_view=1",
            '--views.op_kwargs={"rotation": {"right_angles": true}}',
        ]
    )
    # jsonargparse >= 4.49 renamed instantiate_classes to instantiate.
    instantiate = getattr(parser, "instantiate", parser.instantiate_classes)
    views = instantiate(config).views
    assert views.op_names == ("rotation", "shift")
    assert views.augmentations["rotation"].right_angles


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_views_on_cuda(image: Tensor) -> None:
    device = torch.device("cuda")
    views = SimCLRViews().to(device)
    image = image.to(device)
    mask = mask_from(image)
    for view, view_mask in views(image, mask):
        assert view.device.type == "cuda"
        assert view_mask is not None
        assert view_mask.device.type == "cuda"
        assert set(view_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    for name in NAMES:
        out, out_mask = apply_augmentation(make(name, p=1.0), image, mask)
        assert out.device.type == "cuda"
        assert out_mask is not None
        assert out_mask.device.type == "cuda"
