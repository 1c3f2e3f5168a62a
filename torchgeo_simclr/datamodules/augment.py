"""The batch transform a datamodule runs on the device after transfer."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..inference.normalise import normalise
from ..transforms import AUGMENTATIONS, SimCLRViews


class BatchAugmentation(nn.Module):
    """Normalise a batch per band, then optionally draw augmented views.

    Pixels without data (any band 0: cloud-masked in a download, a swath edge) are
    normalised to 0, the band means, as prediction does, and their mask
    becomes :data:`IGNORE_INDEX`: they are neither trained on nor scored.
    ``batch["valid"]`` bool ``[B, H, W]`` says which pixels of ``batch["image"]``
    have data, for losses without labels (distillation).

    With ``views.num_views == 1`` the image and mask are replaced by one
    augmented view (for supervised training and distillation), and the valid
    pixels follow the view's geometric ops with nearest interpolation: pixels
    that come from outside the patch (the corners after a rotation, the border
    after a shift) have no data either. With two or more views, the normalised
    image, mask and valid pixels are kept and ``batch["views"]``
    ``[V, B, C, H, W]`` is added (for contrastive training), with the views'
    masks as ``batch["view_masks"]`` ``[V, B, H, W]`` when the batch has a mask.

    With *fixed_seed* (validation and test), a batch's views are drawn from a
    random state seeded by *fixed_seed* and the batch's pixels, so the same
    batch gets the same views every epoch and whatever the run's seed, and
    the global random state (the training's draws) is left as it was.
    """

    def __init__(
        self,
        mean: Tensor,
        std: Tensor,
        views: SimCLRViews | None = None,
        fixed_seed: int | None = None,
    ) -> None:
        """Initialise a new BatchAugmentation.

        Args:
            mean: per-band mean ``[C]``, data units.
            std: per-band standard deviation ``[C]``, data units.
            views: the view generator; None only normalises.
            fixed_seed: draw each batch's views from this seed and the batch's
                pixels instead of the global random state; None draws from
                the global random state.
        """
        super().__init__()
        #: per-band mean ``[1, C, 1, 1]``, data units.
        self.mean = mean.reshape(1, -1, 1, 1)
        #: per-band standard deviation ``[1, C, 1, 1]``, data units.
        self.std = std.reshape(1, -1, 1, 1)
        #: the view generator, or None to only normalise.
        self.views = views
        #: seed of the views drawn per batch (see the class docstring), or
        #: None to draw from the global random state.
        self.fixed_seed = fixed_seed

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Transform a batch.

        Args:
            batch: ``image`` ``[B, C, H, W]`` reflectance x10000 (0 = nodata) and
                optionally ``mask`` ``[B, H, W]``.

        Returns:
            The same dictionary with the image normalised, the mask ignored
            where the image has no data, ``valid`` bool ``[B, H, W]`` (the
            pixels of ``image`` with data) and views added.
        """
        image = batch["image"]
        # Keyed on the pixels as read: normalisation replaces them.
        draws = (
            nullcontext()
            if self.views is None or self.fixed_seed is None
            else fixed_draws(self.fixed_seed + batch_key(image), image.device)
        )
        batch["image"], valid = normalise(
            image, self.mean.to(image), self.std.to(image)
        )
        if "mask" in batch:
            batch["mask"] = batch["mask"].masked_fill(~valid, IGNORE_INDEX)
        batch["valid"] = valid
        if self.views is None:
            return batch
        with draws:
            return self._add_views(batch, valid)

    def _add_views(self, batch: dict[str, Tensor], valid: Tensor) -> dict[str, Tensor]:
        """Draw the views of a normalised batch (see :meth:`forward`).

        Args:
            batch: the normalised batch, ``image`` ``[B, C, H, W]``.
            valid: its pixels with data, bool ``[B, H, W]``.

        Returns:
            *batch* with its views.
        """
        assert self.views is not None
        if self.views.num_views == 1:
            [(batch["image"], code)] = self.views(
                batch["image"], _pack(batch.get("mask"), valid)
            )
            assert code is not None  # a view warps the mask it is given
            mask, batch["valid"] = _unpack(code)
            if "mask" in batch:
                batch["mask"] = mask
            return batch
        views = self.views(batch["image"], batch.get("mask"))
        batch["views"] = torch.stack([image for image, _ in views])
        masks = [mask for _, mask in views if mask is not None]
        if masks:
            batch["view_masks"] = torch.stack(masks)
        return batch


#: Pixel values :func:`batch_key` reads at most, spread over the batch.
KEY_VALUES = 2**20

#: Seed of the validation and test views (see :class:`BatchAugmentation`).
EVAL_VIEW_SEED = 0


def batch_key(image: Tensor) -> int:
    """A number that a batch's pixels always give, to seed its views with.

    Integer arithmetic, so it does not depend on the order the device sums
    in; batches of the same pixels give the same key, and others almost
    never do.

    Args:
        image: ``[B, C, H, W]``, reflectance x10000 (as read, before
            normalisation).

    Returns:
        A key in ``[0, 2**31)``.
    """
    values = image.detach().flatten()
    values = values[:: max(1, values.numel() // KEY_VALUES)]
    codes = values.double().nan_to_num().clamp(-(2**40), 2**40).to(torch.int64)
    weights = torch.arange(codes.numel(), device=codes.device) % 65521 + 1
    total = int((codes * weights).sum()) + image.shape[0] * 1_000_003
    return total % 2**31


@contextmanager
def fixed_draws(seed: int, device: torch.device) -> Iterator[None]:
    """Draw from a random state seeded by *seed*, on the CPU and on *device*.

    The global random states of both are put back afterwards, so draws made
    inside do not change those made after (the training's).

    Args:
        seed: the seed.
        device: the device the draws are made on, besides the CPU.

    Yields:
        Inside the seeded random state.
    """
    on_device = device.type != "cpu"
    with torch.random.fork_rng(
        devices=[device] if on_device else [],
        device_type=device.type if on_device else "cuda",
    ):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            index = (
                torch.cuda.current_device() if device.index is None else device.index
            )
            torch.cuda.default_generators[index].manual_seed(seed)
        elif on_device:
            torch.get_device_module(device).manual_seed(seed)
        yield


#: Added to a label to mark its pixel as having data in :func:`_pack`.
_HAS_DATA = IGNORE_INDEX + 1


def _pack(mask: Tensor | None, valid: Tensor) -> Tensor:
    """Labels and pixels with data in one mask, for a view to warp together.

    A pixel without data becomes :data:`IGNORE_INDEX`, the value geometric ops
    give pixels from outside the input, so both end up without data; a pixel
    with data keeps its label (0, 1 or :data:`IGNORE_INDEX`) plus
    :data:`_HAS_DATA`.

    Args:
        mask: labels ``[B, H, W]`` int64, or None (all unknown).
        valid: pixels with data ``[B, H, W]``, bool.

    Returns:
        The packed mask ``[B, H, W]``, int64.
    """
    if mask is None:
        mask = torch.full_like(valid, IGNORE_INDEX, dtype=torch.long)
    return torch.where(valid, mask + _HAS_DATA, IGNORE_INDEX)


def _unpack(code: Tensor) -> tuple[Tensor, Tensor]:
    """Split a mask made by :func:`_pack` (and warped) into labels and data.

    Args:
        code: packed mask ``[B, H, W]``, int64.

    Returns:
        The labels ``[B, H, W]`` int64 (:data:`IGNORE_INDEX` where there is no
        data) and the pixels with data ``[B, H, W]`` bool.
    """
    valid = code != IGNORE_INDEX
    return (code - _HAS_DATA).masked_fill_(~valid, IGNORE_INDEX), valid


def make_views(
    augmentations: list[str] | None,
    ops_per_view: int,
    num_views: int,
    op_kwargs: dict[str, dict[str, Any]] | None,
) -> SimCLRViews | None:
    """The view generator a datamodule's arguments ask for.

    Args:
        augmentations: names of the enabled ops (default: all nine).
        ops_per_view: ops drawn per view and sample.
        num_views: views per patch; 0 gives no generator.
        op_kwargs: per-op keyword arguments.

    Returns:
        The generator, or None for ``num_views=0``.
    """
    if num_views <= 0:
        return None
    return SimCLRViews(
        augmentations or list(AUGMENTATIONS),
        ops_per_view=ops_per_view,
        num_views=num_views,
        op_kwargs=op_kwargs,
    )


def set_augmentations(
    datamodule: Any, mean: Tensor, std: Tensor, views: SimCLRViews | None
) -> None:
    """Give a datamodule its per-stage batch transforms.

    Training gets *views*; validation and test get them only for contrastive
    training (two or more views), so supervised runs are scored on plain
    patches, and draw them from :data:`EVAL_VIEW_SEED` and each batch's
    pixels (the same views every epoch, the training's draws untouched);
    ``aug`` (prediction) only normalises.

    Args:
        datamodule: sets ``train_aug``, ``val_aug``, ``test_aug``, ``aug``.
        mean: per-band mean ``[C]``, data units.
        std: per-band standard deviation ``[C]``, data units.
        views: the training view generator.
    """
    eval_views = views if views is not None and views.num_views >= 2 else None
    datamodule.train_aug = BatchAugmentation(mean, std, views)
    datamodule.val_aug = BatchAugmentation(mean, std, eval_views, EVAL_VIEW_SEED)
    datamodule.test_aug = BatchAugmentation(mean, std, eval_views, EVAL_VIEW_SEED)
    datamodule.aug = BatchAugmentation(mean, std)


def use_statistics(
    datamodule: Any, mean: Sequence[float], std: Sequence[float]
) -> bool:
    """Normalise a datamodule's batches with given statistics instead of its own.

    Args:
        datamodule: a set-up datamodule with ``mean``, ``std`` and ``views``
            (see :func:`set_augmentations`); any other is left alone.
        mean: per-band mean ``[C]``, data units.
        std: per-band standard deviation ``[C]``, data units.

    Returns:
        True when the statistics differed from the datamodule's and replaced
        them, False when they matched or the datamodule has none.
    """
    own = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
    if own[0] is None or own[1] is None or not hasattr(datamodule, "views"):
        return False
    new = torch.tensor(mean), torch.tensor(std)
    if all(
        a.shape == b.shape and torch.allclose(a, b.to(a), rtol=1e-5)
        for a, b in zip(new, map(torch.as_tensor, own), strict=True)
    ):
        return False
    datamodule.mean, datamodule.std = new
    set_augmentations(datamodule, *new, datamodule.views)
    return True
