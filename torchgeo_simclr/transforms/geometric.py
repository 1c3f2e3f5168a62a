"""Geometric augmentations for multispectral images and their irrigation masks.

Every class is a Kornia augmentation (a subclass of
:class:`~kornia.augmentation.GeometricAugmentationBase2D`, or of one of Kornia's
own geometric classes with defaults fixed for Sentinel-2 tiles). Parameters are
drawn per sample, each sample is transformed with probability ``p``, and the
work runs on the device of the input batch.

Images ``[B, C, H, W]`` are resampled bilinearly by default. Areas that come from
outside the input (the corners after a rotation, the border after a shift) are
filled with **zeros**: on standardised reflectance ``0`` is the band mean, a
neutral value.

Masks are transformed by :meth:`transform_masks` (or by
:class:`~kornia.augmentation.AugmentationSequential` with a ``"mask"`` data key)
with the same parameters, with nearest interpolation, so labels ``{0, 1, 255}``
stay labels. Pixels that come from outside the input become
:data:`~torchgeo_simclr.constants.IGNORE_INDEX` (255), never 0 or 1: nothing is
known about them. Masks travel as float tensors ``[B, 1, H, W]`` through Kornia;
:func:`torchgeo_simclr.transforms.apply_augmentation` converts an int64
``[B, H, W]`` mask there and back.
"""

from typing import Any

import torch
from kornia.augmentation import GeometricAugmentationBase2D
from kornia.augmentation import random_generator as rg
from kornia.augmentation._2d.geometric.rotation import (
    RandomRotation as _KorniaRandomRotation,
)
from kornia.augmentation._2d.geometric.translate import (
    RandomTranslate as _KorniaRandomTranslate,
)
from kornia.constants import Resample
from kornia.geometry.transform import warp_affine
from torch import Tensor

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.transforms.intensity import _as_range

__all__ = ["RandomFlip", "RandomRotation", "RandomShift", "RandomZoom"]


class _IgnorePaddedMask(GeometricAugmentationBase2D):
    """Mark mask pixels that come from outside the input as ``IGNORE_INDEX``.

    Kornia pads warped masks with 0, which is a valid label here (not
    irrigated). The mask is shifted by +1 before the warp, so that only padding
    is 0 afterwards; padding becomes ``IGNORE_INDEX`` and the rest is shifted
    back.
    """

    def apply_transform_mask(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Warp a float mask ``[B, 1, H, W]``; padding becomes ``IGNORE_INDEX``.

        Args:
            input: mask batch ``[B, 1, H, W]``, float, integer label values.
            params: the parameters of the image call.
            flags: the flags of the image call (``resample`` is nearest here).
            transform: the ``[B, 3, 3]`` matrix of the image call.

        Returns:
            The warped mask ``[B, 1, H, W]``.
        """
        warped = super().apply_transform_mask(input + 1, params, flags, transform)
        return torch.where(warped == 0, float(IGNORE_INDEX), warped - 1)


class RandomFlip(_IgnorePaddedMask):
    """Flip each sample horizontally, vertically or both.

    When applied, a sample gets one of the enabled flips drawn uniformly: with
    both axes enabled, horizontal, vertical or both (a 180-degree turn), each
    with probability 1/3. An applied flip therefore always changes the sample.
    Flips are exact (no interpolation) and never pad.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    #: The image output does not read the matrix; build it only on demand.
    _compute_matrix_lazily = True

    def __init__(
        self,
        horizontal: bool = True,
        vertical: bool = True,
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            horizontal: allow left-right flips.
            vertical: allow up-down flips.
            p: probability of flipping each sample.
            same_on_batch: draw one flip for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).

        Raises:
            ValueError: if both ``horizontal`` and ``vertical`` are False.
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        if not (horizontal or vertical):
            raise ValueError(
                "RandomFlip needs horizontal=True or vertical=True (or both), "
                "got both False."
            )
        #: Whether left-right flips are allowed.
        self.horizontal = horizontal
        #: Whether up-down flips are allowed.
        self.vertical = vertical
        # Flip codes: bit 0 = horizontal, bit 1 = vertical.
        codes = [code for code, on in ((1, horizontal), (2, vertical)) if on]
        if horizontal and vertical:
            codes.append(3)
        #: The flip codes a sample can draw (bit 0 horizontal, bit 1 vertical).
        self.codes = tuple(codes)
        #: Kornia's static parameters, shown in ``repr``: the enabled axes.
        self.flags = {"horizontal": horizontal, "vertical": vertical}

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        """Draw one flip code per sample.

        The codes are drawn on the CPU whatever the module's device, so that
        :meth:`apply_transform` can group the samples by code without waiting
        for the accelerator.

        Args:
            batch_shape: shape of the image batch ``(B, C, H, W)``.

        Returns:
            ``flip``: int64 codes ``[B]`` on the CPU, bit 0 horizontal, bit 1
            vertical.
        """
        batch = batch_shape[0]
        index = torch.randint(len(self.codes), (1 if self.same_on_batch else batch,))
        return {"flip": torch.tensor(self.codes)[index].expand(batch)}

    def compute_transformation(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]
    ) -> Tensor:
        """Build the flip matrices in pixel coordinates.

        Args:
            input: image batch ``[B, C, H, W]`` (only its shape is read).
            params: ``flip`` codes ``[B]``.
            flags: unused.

        Returns:
            Matrices ``[B, 3, 3]`` mapping input to output pixel coordinates.
        """
        code = params["flip"].to(input.device)
        height, width = input.shape[-2:]
        flip_x = (code & 1) != 0
        flip_y = (code & 2) != 0
        matrix = torch.eye(3, device=input.device, dtype=input.dtype).repeat(
            code.shape[0], 1, 1
        )
        matrix[:, 0, 0] = torch.where(flip_x, -1.0, 1.0)
        matrix[:, 0, 2] = torch.where(flip_x, float(width - 1), 0.0)
        matrix[:, 1, 1] = torch.where(flip_y, -1.0, 1.0)
        matrix[:, 1, 2] = torch.where(flip_y, float(height - 1), 0.0)
        return matrix

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Flip the samples.

        The samples are grouped by flip code; each group is flipped in one call,
        so every sample is copied once, whatever its flip.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: ``flip`` codes ``[B]``.
            flags: unused.
            transform: unused (flips are done by indexing, not by a warp).

        Returns:
            The flipped batch ``[B, C, H, W]``.
        """
        code = params["flip"].cpu()
        output = torch.empty_like(input)
        groups: tuple[tuple[int, tuple[int, ...]], ...] = (
            (0, ()),
            (1, (-1,)),
            (2, (-2,)),
            (3, (-2, -1)),
        )
        for value, dims in groups:
            rows = (code == value).nonzero().squeeze(1)
            if rows.numel() == code.numel():
                return input.flip(dims)
            if rows.numel() == 0:
                continue
            rows = rows.to(input.device, non_blocking=True)
            output.index_copy_(0, rows, input.index_select(0, rows).flip(dims))
        return output


class RandomRotation(_IgnorePaddedMask, _KorniaRandomRotation):
    """Rotate each sample about its centre by a random angle.

    Kornia's :class:`~kornia.augmentation.RandomRotation` with defaults for
    overhead imagery (any angle is plausible) and a right-angle-only option.
    Positive angles turn counter-clockwise as displayed. The image corners that
    come from outside the input are filled with zeros (the band mean); in the
    mask they become ``IGNORE_INDEX``. With ``right_angles=True`` a square image
    is turned exactly, without padding or interpolation blur; a non-square image
    keeps its ``(H, W)`` shape and is padded.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        degrees: tuple[float, float] = (-180.0, 180.0),
        right_angles: bool = False,
        resample: str = "bilinear",
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            degrees: range of the angle in degrees, drawn uniformly per sample,
                inside ``[-360, 360]``. Ignored when ``right_angles`` is True.
            right_angles: draw the angle from 90, 180 and 270 degrees instead.
            resample: image interpolation, ``"bilinear"`` or ``"nearest"``
                (masks always use nearest).
            p: probability of rotating each sample.
            same_on_batch: draw one angle for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(
            degrees=_as_range(degrees, "degrees", lower=-360.0, upper=360.0),
            resample=resample,
            same_on_batch=same_on_batch,
            align_corners=True,
            p=p,
            keepdim=keepdim,
        )
        #: Whether angles are multiples of 90 degrees.
        self.right_angles = right_angles
        self.flags["right_angles"] = right_angles

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        """Draw one angle per sample.

        Args:
            batch_shape: shape of the image batch ``(B, C, H, W)``.

        Returns:
            ``degrees``: angles in degrees ``[B]``.
        """
        if not self.right_angles:
            params: dict[str, Tensor] = super().generate_parameters(batch_shape)
            return params
        batch = batch_shape[0]
        turns = torch.randint(
            1, 4, (1 if self.same_on_batch else batch,), device=self.device
        )
        return {"degrees": (90.0 * turns).to(self.dtype).expand(batch)}


class RandomShift(_IgnorePaddedMask, _KorniaRandomTranslate):
    """Translate each sample by a random fraction of its size.

    Kornia's :class:`~kornia.augmentation.RandomTranslate` with symmetric
    defaults, pixel-centre alignment and, by default, shifts rounded to whole
    pixels, so the image is moved without interpolation blur (exact up to float
    rounding of the sampling grid, ~1e-5 relative). The
    uncovered border is filled with zeros (the band mean) in the image and with
    ``IGNORE_INDEX`` in the mask. Positive shifts move content right and down.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        shift_x: tuple[float, float] = (-0.25, 0.25),
        shift_y: tuple[float, float] = (-0.25, 0.25),
        whole_pixels: bool = True,
        resample: str = "bilinear",
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            shift_x: range of the horizontal shift as a fraction of the width,
                inside ``[-1, 1]``, drawn per sample.
            shift_y: range of the vertical shift as a fraction of the height,
                inside ``[-1, 1]``, drawn per sample.
            whole_pixels: round the drawn shifts to whole pixels.
            resample: image interpolation, ``"bilinear"`` or ``"nearest"``
                (masks always use nearest); only matters for fractional shifts.
            p: probability of shifting each sample.
            same_on_batch: draw one shift for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(
            translate_x=_as_range(shift_x, "shift_x", lower=-1.0, upper=1.0),
            translate_y=_as_range(shift_y, "shift_y", lower=-1.0, upper=1.0),
            resample=resample,
            same_on_batch=same_on_batch,
            align_corners=True,
            padding_mode="zeros",
            p=p,
            keepdim=keepdim,
        )
        #: Whether shifts are rounded to whole pixels.
        self.whole_pixels = whole_pixels
        self.flags["whole_pixels"] = whole_pixels

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        """Draw one shift per sample, in pixels.

        Args:
            batch_shape: shape of the image batch ``(B, C, H, W)``.

        Returns:
            ``translate_x`` and ``translate_y``: shifts in pixels ``[B]``.
        """
        params: dict[str, Tensor] = super().generate_parameters(batch_shape)
        if self.whole_pixels:
            params = {key: value.round() for key, value in params.items()}
        return params


class RandomZoom(_IgnorePaddedMask):
    """Zoom in: crop a random part of each sample and resize it to the full size.

    The crop keeps the aspect ratio of the input, covers a fraction ``area`` of
    it (drawn per sample) and lies at a random position entirely inside the
    input, so nothing is padded. Crop and resize are one affine warp per batch
    (bilinear for images, nearest for masks), for any input size.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        area: tuple[float, float] = (0.25, 0.8),
        resample: str = "bilinear",
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            area: range of the crop area as a fraction of the input area, inside
                ``(0, 1]``, drawn per sample.
            resample: image interpolation, ``"bilinear"`` or ``"nearest"``
                (masks always use nearest).
            p: probability of zooming each sample.
            same_on_batch: draw one crop for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        #: Range of the crop area, as a fraction of the input area.
        self.area = _as_range(area, "area", lower=0.0, upper=1.0, strict_lower=True)
        self._param_generator = rg.PlainUniformGenerator(
            (self.area, "area", None, None),
            ((-1.0, 1.0), "center_x", None, None),
            ((-1.0, 1.0), "center_y", None, None),
        )
        #: Kornia's static parameters: image interpolation ``resample``
        #: (nearest for masks) and ``align_corners``.
        self.flags = {"resample": Resample.get(resample), "align_corners": True}

    def compute_transformation(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]
    ) -> Tensor:
        """Build the crop-and-resize matrices in pixel coordinates.

        Args:
            input: image batch ``[B, C, H, W]`` (only its shape is read).
            params: ``area`` ``[B]`` in ``(0, 1]``; ``center_x`` and ``center_y``
                ``[B]`` in ``[-1, 1]``, the crop centre between its extreme
                positions.
            flags: unused.

        Returns:
            Matrices ``[B, 3, 3]`` mapping input to output pixel coordinates.
        """
        height, width = input.shape[-2:]
        device, dtype = input.device, input.dtype
        side = params["area"].to(device, dtype).sqrt()
        half_w, half_h = (width - 1) / 2, (height - 1) / 2
        centre_x = half_w + params["center_x"].to(device, dtype) * half_w * (1 - side)
        centre_y = half_h + params["center_y"].to(device, dtype) * half_h * (1 - side)
        matrix = torch.zeros(side.shape[0], 3, 3, device=device, dtype=dtype)
        matrix[:, 0, 0] = 1 / side
        matrix[:, 1, 1] = 1 / side
        matrix[:, 0, 2] = half_w - centre_x / side
        matrix[:, 1, 2] = half_h - centre_y / side
        matrix[:, 2, 2] = 1
        return matrix

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Crop and resize the samples.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: the drawn parameters (already in ``transform``).
            flags: ``resample`` and ``align_corners``.
            transform: matrices ``[B, 3, 3]`` from :meth:`compute_transformation`.

        Returns:
            The zoomed batch ``[B, C, H, W]``.

        Raises:
            TypeError: if ``transform`` is missing.
        """
        if not isinstance(transform, Tensor):
            raise TypeError(
                f"RandomZoom needs its transform matrix, got {type(transform)}."
            )
        warped: Tensor = warp_affine(
            input,
            transform[:, :2, :].to(input.dtype),
            (input.shape[-2], input.shape[-1]),
            mode=flags["resample"].name.lower(),
            padding_mode="zeros",
            align_corners=flags["align_corners"],
        )
        return warped
