"""Pixels with data, and windows normalised as a model saw its training data."""

import torch
from scipy import ndimage
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


def fill_nearest(image: Tensor, valid: Tensor) -> Tensor:
    """Give each pixel without data the bands of the nearest pixel with data.

    Maps fill holes (masked clouds, swath edges) this way before a window
    goes through the network. Filled with the training means instead, a
    hole reads as a field of its own and sways the prediction of its valid
    neighbours up to ~60 px away: around a 100 x 100 px hole in the sample
    scene 553 pixels changed class, 538 of them to irrigated; filled from
    the nearest pixels, 257 changed, 161 to irrigated (a real scene: 1,195
    and 365).

    Args:
        image: ``[B, C, H, W]`` bands, any units.
        valid: ``[B, H, W]`` pixels with data.

    Returns:
        *image* itself when every pixel has data, else a copy whose holes
        hold their nearest valid pixel's bands (Euclidean distance); windows
        without any pixel with data are left as they are.
    """
    if bool(valid.all()):
        return image
    image = image.clone()
    masks = valid.cpu().numpy()
    for i, mask in enumerate(masks):
        if mask.all() or not mask.any():
            continue
        _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        index = torch.from_numpy(rows * mask.shape[1] + cols).to(image.device)
        flat = image[i].flatten(1)
        image[i] = flat[:, index.flatten()].view_as(image[i])
    return image


def normalise(
    image: Tensor,
    mean: Tensor,
    std: Tensor,
    valid: Tensor | None = None,
    fill: bool = False,
) -> tuple[Tensor, Tensor]:
    """Standardise windows per band; pixels without data become 0 (the means).

    Training does so; maps pass *fill*, as pixels without data filled with
    the means sway the predictions of their valid neighbours (see
    :func:`fill_nearest`).

    Args:
        image: ``[B, C, H, W]`` reflectance x10000, 0 = nodata.
        mean: ``[1, C, 1, 1]`` training mean per band, same units.
        std: ``[1, C, 1, 1]`` training standard deviation per band.
        valid: ``[B, H, W]`` pixels with data, when the reader has them
            (default: found with :func:`has_data`).
        fill: give pixels without data the bands of the nearest pixel with
            data (:func:`fill_nearest`) instead of the means.

    Returns:
        The standardised windows ``[B, C, H, W]`` (a new tensor) and the
        pixels with data ``[B, H, W]``.
    """
    if valid is None:
        valid = has_data(image, dim=1)
    if fill:
        image = fill_nearest(image, valid)
    x = torch.sub(image, mean).div_(std)
    if not fill:
        x.mul_(valid.unsqueeze(1))
    return x, valid
