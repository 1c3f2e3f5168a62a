"""Pixels with data, and windows normalised as a model saw its training data."""

import torch
from torch import Tensor


def has_data(image: Tensor, dim: int) -> Tensor:
    """Pixels where every band has data (0 is Sentinel-2 L2A's nodata).

    A pixel missing any band counts as nodata: at a swath edge or a masked
    cloud, the 20 m and 60 m bands resampled to 10 m reach a pixel or three
    past the 10 m bands' edge, and those pixels hold only some bands.
    Reflectance x10000 is positive where there is data, so this is the
    smallest band above 0, which needs no boolean copy of the image.

    Args:
        image: reflectance x10000 (non-negative), bands along *dim*.
        dim: the band dimension.

    Returns:
        Boolean, *image*'s shape without *dim*.
    """
    return image.amin(dim=dim).gt(0)


def normalise(
    image: Tensor, mean: Tensor, std: Tensor, valid: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Standardise windows per band; pixels without data become 0 (the means).

    Nodata pixels so do not disturb the prediction of their valid neighbours.

    Args:
        image: ``[B, C, H, W]`` reflectance x10000, 0 = nodata.
        mean: ``[1, C, 1, 1]`` training mean per band, same units.
        std: ``[1, C, 1, 1]`` training standard deviation per band.
        valid: ``[B, H, W]`` pixels with data, when the reader has them
            (default: found with :func:`has_data`).

    Returns:
        The standardised windows ``[B, C, H, W]`` (a new tensor) and the
        pixels with data ``[B, H, W]``.
    """
    if valid is None:
        valid = has_data(image, dim=1)
    x = torch.sub(image, mean).div_(std).mul_(valid.unsqueeze(1))
    return x, valid
