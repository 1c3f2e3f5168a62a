"""The batch transform a datamodule runs on the device after transfer."""

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from ..transforms import SimCLRViews


class BatchAugmentation(nn.Module):
    """Normalise a batch per band, then optionally draw augmented views.

    With ``views.num_views == 1`` the image and mask are replaced by one
    augmented view (for supervised training); with two or more, the normalised
    image and mask are kept and ``batch["views"]`` ``[V, B, C, H, W]`` is added
    (for contrastive training).
    """

    def __init__(
        self, mean: Tensor, std: Tensor, views: SimCLRViews | None = None
    ) -> None:
        """Initialise a new BatchAugmentation.

        Args:
            mean: per-band mean ``[C]``, data units.
            std: per-band standard deviation ``[C]``, data units.
            views: the view generator; None only normalises.
        """
        super().__init__()
        self.normalize = K.Normalize(mean=mean, std=std)
        self.views = views

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Transform a batch.

        Args:
            batch: ``image`` ``[B, C, H, W]`` and optionally ``mask`` ``[B, H, W]``.

        Returns:
            The same dictionary with the image normalised and views added.
        """
        batch["image"] = self.normalize(batch["image"])
        if self.views is None:
            return batch
        views = self.views(batch["image"], batch.get("mask"))
        if len(views) == 1:
            batch["image"], mask = views[0]
            if mask is not None:
                batch["mask"] = mask
        else:
            batch["views"] = torch.stack([image for image, _ in views])
        return batch
