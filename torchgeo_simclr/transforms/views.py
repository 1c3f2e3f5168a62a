"""SimCLR views: random pairs of multispectral augmentations, batched."""

from collections.abc import Sequence
from typing import Any, Final, cast

import torch
from kornia.augmentation import (
    IntensityAugmentationBase2D,
    RigidAffineAugmentationBase2D,
)
from torch import Tensor, nn

from torchgeo_simclr.transforms.geometric import (
    RandomFlip,
    RandomRotation,
    RandomShift,
    RandomZoom,
)
from torchgeo_simclr.transforms.intensity import (
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomGain,
    RandomSpeckle,
)

__all__ = ["AUGMENTATIONS", "SimCLRViews", "apply_augmentation"]

#: The nine augmentations of the SimCLR-S2 irrigation study by name. The order
#: of the entries is the canonical order in which :class:`SimCLRViews` applies
#: the ops of a view: geometric ops first (zoom before rotation, so that a zoom
#: never enlarges padded corners), then blur, then the radiometric ops, and
#: speckle last, so that noise is neither blurred nor resampled.
AUGMENTATIONS: Final[dict[str, type[RigidAffineAugmentationBase2D]]] = {
    "zoom": RandomZoom,
    "rotation": RandomRotation,
    "shift": RandomShift,
    "flip": RandomFlip,
    "blur": RandomBlur,
    "contrast": RandomContrast,
    "gain": RandomGain,
    "brightness": RandomBrightness,
    "speckle": RandomSpeckle,
}


def apply_augmentation(
    op: RigidAffineAugmentationBase2D,
    image: Tensor,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Apply one Kornia augmentation to an image batch and, consistently, its mask.

    Args:
        op: an augmentation, e.g. one of :data:`AUGMENTATIONS`.
        image: image batch ``[B, C, H, W]``, float.
        mask: optional label batch ``[B, H, W]``, integer (values ``{0, 1, 255}``).

    Returns:
        The augmented image ``[B, C, H, W]`` and mask ``[B, H, W]`` (same dtype as
        given; None if no mask was given). Intensity ops return the mask object
        unchanged; geometric ops warp it with the parameters of the image call,
        nearest interpolation, and ``IGNORE_INDEX`` where it was padded.
    """
    output: Tensor = op(image)
    if mask is None or isinstance(op, IntensityAugmentationBase2D):
        return output, mask
    as_float = mask.unsqueeze(1).to(torch.float32)
    warped: Tensor = op.transform_masks(
        as_float, op._params, op.flags, transform=op.transform_matrix
    )
    return output, warped.squeeze(1).round().to(mask.dtype)


class SimCLRViews(nn.Module):
    """Make SimCLR views of a batch of standardised 12-band Sentinel-2 tiles.

    For each view and each sample, ``ops_per_view`` distinct ops are drawn
    uniformly from the enabled ones, independently per sample and per view, and
    applied with ``p=1``; every op draws its own random parameters per sample.
    Work is batched: for each op, the samples that drew it are gathered into one
    sub-batch, transformed in one call and scattered back (on the CPU, in
    cache-sized chunks, see ``cpu_chunk_mib``). The ops of a view are
    applied in the canonical order of :data:`AUGMENTATIONS`, whatever the order
    of ``ops``. Runs on the device of the input (call it in a datamodule's
    ``on_after_batch_transfer``).

    In the SimCLR-S2 irrigation study the strongest pairs were rotation + shift,
    zoom + speckle and contrast + gain, the weakest blur + brightness: narrow
    ``ops`` to explore this.

    Example::

        views = SimCLRViews(ops=["rotation", "shift", "zoom", "speckle"])
        (x1, _), (x2, _) = views(batch["image"])
    """

    def __init__(
        self,
        ops: Sequence[str] = tuple(AUGMENTATIONS),
        ops_per_view: int = 2,
        num_views: int = 2,
        op_kwargs: dict[str, dict[str, Any]] | None = None,
        cpu_chunk_mib: float | None = 8.0,
    ) -> None:
        """Initialise the view maker.

        Args:
            ops: names of the enabled ops, keys of :data:`AUGMENTATIONS`.
            ops_per_view: number of distinct ops applied to each sample in each
                view, at most ``len(ops)``.
            num_views: number of views returned per call.
            op_kwargs: constructor arguments per op name, e.g.
                ``{"rotation": {"right_angles": True}}``. ``p`` is not accepted:
                the draw decides which samples an op is applied to.
            cpu_chunk_mib: on the CPU, split each op's sub-batch into chunks of
                about this many MiB of image data (12 samples of
                ``[12, 120, 120]`` float32 at 8 MiB). Small chunks stay in the
                CPU caches and below glibc's mmap threshold, so their
                temporaries are not page-faulted in afresh on every call;
                this made the CPU path about 1.5x faster in
                ``benchmarks/augmentation_throughput.py``. None: one call per
                op and view. Ignored on accelerators, where the whole sub-batch
                is always one call.

        Raises:
            ValueError: for an unknown or repeated name, an empty ``ops``, a
                count out of range, or ``op_kwargs`` for an op not enabled.
        """
        super().__init__()
        if isinstance(ops, str):
            ops = [ops]
        valid = ", ".join(AUGMENTATIONS)
        for name in ops:
            if name not in AUGMENTATIONS:
                raise ValueError(
                    f"Unknown augmentation {name!r} in ops; valid names are: {valid}."
                )
        if len(set(ops)) != len(ops):
            raise ValueError(f"ops names an augmentation twice: {list(ops)}.")
        if not ops:
            raise ValueError(f"ops is empty; enable at least one of: {valid}.")
        if not 1 <= ops_per_view <= len(ops):
            raise ValueError(
                f"ops_per_view must be between 1 and the number of enabled ops "
                f"({len(ops)}: {', '.join(ops)}), got {ops_per_view}."
            )
        if num_views < 1:
            raise ValueError(f"num_views must be at least 1, got {num_views}.")
        if cpu_chunk_mib is not None and not cpu_chunk_mib > 0:
            raise ValueError(
                f"cpu_chunk_mib must be positive or None, got {cpu_chunk_mib}."
            )
        op_kwargs = op_kwargs or {}
        for name, kwargs in op_kwargs.items():
            if name not in ops:
                raise ValueError(
                    f"op_kwargs has arguments for {name!r}, which is not in ops "
                    f"({', '.join(ops)})."
                )
            if "p" in kwargs:
                raise ValueError(
                    f"op_kwargs[{name!r}] sets p; SimCLRViews applies every drawn "
                    "op with p=1, so leave p out (use ops_per_view and ops "
                    "to control how often an op is used)."
                )

        #: Enabled op names in canonical order.
        self.op_names: tuple[str, ...] = tuple(n for n in AUGMENTATIONS if n in ops)
        #: Number of distinct ops per sample and view.
        self.ops_per_view = ops_per_view
        #: Number of views per call.
        self.num_views = num_views
        #: CPU only: MiB of image data per op call (None: whole sub-batch).
        self.cpu_chunk_mib = cpu_chunk_mib
        #: The op modules, each applied with ``p=1`` to the samples that drew it.
        self.augmentations = nn.ModuleDict(
            {
                name: AUGMENTATIONS[name](p=1.0, **op_kwargs.get(name, {}))
                for name in self.op_names
            }
        )

    def sample_ops(self, batch_size: int) -> Tensor:
        """Draw the ops of one view for each sample.

        Args:
            batch_size: number of samples ``B``.

        Returns:
            Boolean selection ``[B, len(op_names)]`` on the CPU, with exactly
            ``ops_per_view`` True entries per row, uniform over the subsets.
        """
        scores = torch.rand(batch_size, len(self.op_names))
        chosen = scores.argsort(dim=1)[:, : self.ops_per_view]
        selection = torch.zeros(batch_size, len(self.op_names), dtype=torch.bool)
        return selection.scatter_(1, chosen, True)

    def _chunk_size(self, image: Tensor) -> int:
        """Number of samples per op call: all of them, or a cache-sized chunk on CPU."""
        if image.device.type != "cpu" or self.cpu_chunk_mib is None:
            return image.shape[0]
        sample_bytes = image[0].numel() * image.element_size()
        return max(1, int(self.cpu_chunk_mib * 2**20) // sample_bytes)

    def _view(self, image: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Make one view: draw the ops of each sample and apply them, batched."""
        selection = self.sample_ops(image.shape[0])
        chunk_size = self._chunk_size(image)
        out_image = image.clone()
        out_mask = None if mask is None else mask.clone()
        for column, name in enumerate(self.op_names):
            op = cast(RigidAffineAugmentationBase2D, self.augmentations[name])
            drawn = selection[:, column].nonzero().squeeze(1)
            for rows in torch.split(drawn, chunk_size):
                if rows.numel() == 0:
                    continue
                rows = rows.to(image.device, non_blocking=True)
                sub_mask = None if out_mask is None else out_mask.index_select(0, rows)
                sub_image, sub_mask = apply_augmentation(
                    op, out_image.index_select(0, rows), sub_mask
                )
                out_image.index_copy_(0, rows, sub_image)
                if out_mask is not None and sub_mask is not None:
                    out_mask.index_copy_(0, rows, sub_mask)
        return out_image, out_mask

    def forward(
        self, image: Tensor, mask: Tensor | None = None
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Make ``num_views`` independent views of a batch.

        Args:
            image: standardised image batch ``[B, C, H, W]``, float.
            mask: optional labels ``[B, H, W]``, integer, values ``{0, 1, 255}``.

        Returns:
            One ``(image [B, C, H, W], mask [B, H, W] or None)`` pair per view,
            on the input's device, dtypes unchanged.

        Raises:
            TypeError: if ``image`` is not floating point or ``mask`` is not
                integer.
            ValueError: if ``image`` is not 4-D or ``mask`` does not match it.
        """
        if not isinstance(image, Tensor) or image.ndim != 4:
            found = tuple(image.shape) if isinstance(image, Tensor) else type(image)
            raise ValueError(
                f"SimCLRViews expects image as a [B, C, H, W] tensor, got {found}; "
                "add a batch dimension with image.unsqueeze(0) for one sample."
            )
        if not image.is_floating_point():
            raise TypeError(
                f"SimCLRViews expects a floating-point image (standardised "
                f"reflectance), got {image.dtype}; normalise the batch first."
            )
        if mask is not None:
            expected = (image.shape[0], *image.shape[-2:])
            if tuple(mask.shape) != expected:
                raise ValueError(
                    f"SimCLRViews expects mask of shape [B, H, W] = {expected} "
                    f"to match image {tuple(image.shape)}, got {tuple(mask.shape)}."
                )
            if mask.is_floating_point() or mask.dtype == torch.bool:
                raise TypeError(
                    f"SimCLRViews expects an integer mask (int64 labels 0, 1, "
                    f"255), got {mask.dtype}."
                )
        return [self._view(image, mask) for _ in range(self.num_views)]
