"""Intensity augmentations for standardised multispectral reflectance.

Every class here expects a batch ``[B, C, H, W]`` of **standardised** reflectance:
each band was normalised per band as ``(x - mean) / std`` in the datamodule, so a
value is measured in standard deviations of its band, ``0`` is the band mean and
values are routinely negative and larger than 1. None of these operations clamps
to ``[0, 1]`` and none assumes RGB: they work on any number of bands.

All classes are Kornia augmentations (subclasses of
:class:`~kornia.augmentation.IntensityAugmentationBase2D`): each draws its random
parameters per sample (``same_on_batch=False`` by default), applies itself to each
sample with probability ``p``, runs on the device of its input and passes masks
through unchanged.
"""

import math
from typing import Any, Literal

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from kornia.augmentation import random_generator as rg
from kornia.augmentation._2d.intensity.gaussian_blur import RandomGaussianBlur
from kornia.augmentation.random_generator.base import (
    RandomGeneratorBase,
    UniformDistribution,
)
from torch import Tensor

__all__ = [
    "RandomBlur",
    "RandomBrightness",
    "RandomContrast",
    "RandomGain",
    "RandomSpeckle",
]


def _as_range(
    value: tuple[float, float] | list[float],
    name: str,
    lower: float | None = None,
    upper: float | None = None,
    strict_lower: bool = False,
) -> tuple[float, float]:
    """Check a ``(low, high)`` parameter range and return it as floats.

    Args:
        value: the range given by the user, two numbers with ``low <= high``.
        name: the argument name, used in the error message.
        lower: smallest allowed value, if any.
        upper: largest allowed value, if any.
        strict_lower: if True, ``low`` must be strictly greater than ``lower``.

    Returns:
        The range as a tuple of two floats.

    Raises:
        ValueError: if ``value`` is not two numbers, is not ordered, or leaves the
            allowed interval.
    """
    if len(value) != 2:
        raise ValueError(
            f"{name} must be a (low, high) pair of numbers, got {value!r}; "
            "pass e.g. (0.5, 1.5)."
        )
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(
            f"{name} must be a finite (low, high) pair with low <= high, got {value!r}."
        )
    too_low = lower is not None and (low <= lower if strict_lower else low < lower)
    if too_low or (upper is not None and high > upper):
        left = "(" if strict_lower else "["
        raise ValueError(f"{name} must lie in {left}{lower}, {upper}], got {value!r}.")
    return low, high


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample values to broadcast over an image batch.

    Args:
        values: one value per sample ``[B]`` or one per sample and band ``[B, C]``.
        like: the image batch ``[B, C, H, W]`` whose device and dtype are used.

    Returns:
        ``values`` as ``[B, 1, 1, 1]`` or ``[B, C, 1, 1]`` on ``like``'s device.
    """
    values = values.to(device=like.device, dtype=like.dtype, non_blocking=True)
    return values.reshape(*values.shape, *([1] * (like.ndim - values.ndim)))


class _PerBandUniformGenerator(RandomGeneratorBase):
    """Draw one uniform value per sample and per band: ``{name: [B, C]}``."""

    def __init__(self, low: float, high: float, name: str) -> None:
        super().__init__()
        #: Lower end of the uniform range.
        self.low = low
        #: Upper end of the uniform range.
        self.high = high
        #: Key of the drawn values in the returned parameter dict.
        self.name = name

    def __repr__(self) -> str:
        return f"{self.name}=({self.low}, {self.high})"

    def make_samplers(self, device: torch.device, dtype: torch.dtype) -> None:
        """Create the uniform sampler on ``device`` with ``dtype``.

        Args:
            device: where the values are drawn.
            dtype: floating dtype of the drawn values.
        """
        self.sampler = UniformDistribution(
            torch.tensor(self.low, device=device, dtype=dtype),
            torch.tensor(self.high, device=device, dtype=dtype),
            validate_args=False,
        )

    def forward(
        self, batch_shape: tuple[int, ...], same_on_batch: bool = False
    ) -> dict[str, Tensor]:
        """Draw the values for a batch.

        Args:
            batch_shape: shape of the image batch, ``(B, C, H, W)``.
            same_on_batch: draw one ``[C]`` vector and share it across the batch.

        Returns:
            ``{name: values}`` with ``values`` of shape ``[B, C]``.
        """
        batch, channels = batch_shape[0], batch_shape[1]
        drawn = self.sampler.rsample(
            torch.Size((1 if same_on_batch else batch, channels))
        )
        return {self.name: drawn.expand(batch, channels)}


class RandomBlur(RandomGaussianBlur):
    """Gaussian blur with a per-sample standard deviation.

    The kernel size follows from the largest ``sigma`` in the range:
    ``2 * ceil(3 * sigma_max) + 1`` pixels, so every drawn sigma keeps more than
    99.7 % of its Gaussian inside the kernel. Borders are reflected. Blurring is a
    weighted mean, so it is correct for standardised data as is (no clamping).

    Shape:
        - Input: ``[B, C, H, W]`` float, each of ``H`` and ``W`` larger than the
          kernel radius ``ceil(3 * sigma_max)``.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        sigma: tuple[float, float] = (0.1, 2.0),
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            sigma: range of the Gaussian standard deviation in pixels, drawn
                uniformly per sample; both ends must be positive.
            p: probability of blurring each sample.
            same_on_batch: draw one sigma for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        low, high = _as_range(sigma, "sigma", lower=0.0, strict_lower=True)
        kernel = 2 * math.ceil(3.0 * high) + 1
        super().__init__(
            kernel_size=(kernel, kernel),
            sigma=(low, high),
            border_type="reflect",
            separable=True,
            same_on_batch=same_on_batch,
            p=p,
            keepdim=keepdim,
        )
        #: Side of the square Gaussian kernel in pixels, odd.
        self.kernel_size = kernel


class RandomBrightness(IntensityAugmentationBase2D):
    """Shift all bands of a sample by one random offset, in standard deviations.

    ``out = x + offset`` with one ``offset`` per sample, the same for every band
    and pixel. On standardised data an offset of ``0.5`` moves every band by half
    of its dataset standard deviation. Kornia's own ``RandomBrightness`` works on
    ``[0, 1]`` images with a factor centred on 1; this one is additive around 0.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        offset: tuple[float, float] = (-0.5, 0.5),
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            offset: range of the additive offset in standard deviations, drawn
                uniformly per sample.
            p: probability of shifting each sample.
            same_on_batch: draw one offset for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        #: Range of the additive offset, in standard deviations.
        self.offset = _as_range(offset, "offset")
        self._param_generator = rg.PlainUniformGenerator(
            (self.offset, "offset", None, None)
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Add the per-sample offset.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: ``offset`` ``[B]``.
            flags: unused.
            transform: unused.

        Returns:
            The shifted batch ``[B, C, H, W]``.
        """
        return input + _per_sample(params["offset"], input)


class RandomContrast(IntensityAugmentationBase2D):
    """Scale each band's deviations from its own spatial mean by a random factor.

    ``out = (x - m) * factor + m`` where ``m`` is the spatial mean of each band of
    each sample (``[B, C, 1, 1]``) and ``factor`` is drawn once per sample. The
    per-band mean of the sample is preserved; a factor above 1 extends the range
    beyond the input's. No clamping, so valid for standardised data.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        factor: tuple[float, float] = (0.6, 1.4),
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            factor: range of the contrast factor, drawn uniformly per sample;
                must be positive (a factor of 1 is the identity).
            p: probability of changing the contrast of each sample.
            same_on_batch: draw one factor for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        #: Range of the contrast factor.
        self.factor = _as_range(factor, "factor", lower=0.0, strict_lower=True)
        self._param_generator = rg.PlainUniformGenerator(
            (self.factor, "factor", None, None)
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Stretch or squeeze each band around its spatial mean.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: ``factor`` ``[B]``.
            flags: unused.
            transform: unused.

        Returns:
            The batch ``[B, C, H, W]`` with changed contrast.
        """
        mean = input.mean(dim=(-2, -1), keepdim=True)
        return torch.lerp(mean, input, _per_sample(params["factor"], input))


class RandomGain(IntensityAugmentationBase2D):
    """Multiply each band of each sample by its own random gain.

    ``out[b, c] = x[b, c] * gain[b, c]`` with ``gain ~ U(low, high)`` drawn per
    sample and per band. Gains are positive, so signs are kept: a value below the
    band mean stays below it. In reflectance terms this is a per-band stretch
    about the dataset band mean, which imitates radiometric calibration
    differences between scenes and sensors.

    Note:
        The SimCLR-S2 irrigation study used a gamma-style gain, ``x ** gamma``,
        on reflectance in ``[0, 1]``. A power is undefined on standardised data
        (a non-integer power of a negative value is NaN and the sign of the
        result is meaningless), so this class uses a multiplicative per-band
        gain instead.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        gain: tuple[float, float] = (0.9, 1.1),
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            gain: range of the multiplicative gain, drawn uniformly per sample
                and per band; must be positive.
            p: probability of applying a gain to each sample.
            same_on_batch: draw one gain vector ``[C]`` for the whole batch.
            keepdim: keep the input rank in the output (Kornia convention).
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        #: Range of the per-band multiplicative gain.
        self.gain = _as_range(gain, "gain", lower=0.0, strict_lower=True)
        self._param_generator = _PerBandUniformGenerator(*self.gain, name="gain")

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Multiply by the per-sample, per-band gain.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: ``gain`` ``[B, C]``.
            flags: unused.
            transform: unused.

        Returns:
            The batch ``[B, C, H, W]`` with each band scaled.
        """
        return input * _per_sample(params["gain"], input)


class RandomSpeckle(IntensityAugmentationBase2D):
    """Speckle noise in one of two modes.

    - ``"impulse"`` (the study's speckle): each sample draws a fraction
      ``amount ~ U(low, high)`` (default 0 to 2 %); each pixel is hit with that
      probability and all its bands are set to ``+value`` or ``-value`` (half
      each), i.e. a saturated or a dead pixel, ``value`` standard deviations
      away from the band means.
    - ``"multiplicative"``: ``out = x * (1 + s * n)`` with ``n ~ N(0, 1)`` drawn
      per pixel and band and ``s ~ U(low, high)`` per sample. On standardised
      data the noise is proportional to the distance from the band mean.

    The per-pixel random field is drawn when the transform is applied, on the
    input's device (no ``[B, C, H, W]`` tensor crosses from the host), and is not
    stored in ``_params``: replaying ``params`` reproduces the per-sample
    ``amount`` or ``sigma`` but not the pixel field. Seeding torch makes it
    reproducible.

    Shape:
        - Input: ``[B, C, H, W]`` float.
        - Output: ``[B, C, H, W]``, same dtype and device.
    """

    def __init__(
        self,
        mode: Literal["impulse", "multiplicative"] = "impulse",
        amount: tuple[float, float] = (0.0, 0.02),
        value: float = 5.0,
        sigma: tuple[float, float] = (0.05, 0.2),
        p: float = 0.5,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialise the augmentation.

        Args:
            mode: ``"impulse"`` or ``"multiplicative"``.
            amount: impulse mode: range of the fraction of pixels hit, in
                ``[0, 1]``, drawn per sample.
            value: impulse mode: magnitude of the extreme values, in standard
                deviations; must be positive.
            sigma: multiplicative mode: range of the relative noise standard
                deviation, drawn per sample; must be non-negative.
            p: probability of adding speckle to each sample.
            same_on_batch: draw one ``amount`` or ``sigma`` for the whole batch
                (the pixel field still differs per sample).
            keepdim: keep the input rank in the output (Kornia convention).

        Raises:
            ValueError: if ``mode`` is unknown or a range is invalid.
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        if mode not in ("impulse", "multiplicative"):
            raise ValueError(
                f"mode must be 'impulse' or 'multiplicative', got {mode!r}."
            )
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"value must be a positive number, got {value!r}.")
        #: ``"impulse"`` or ``"multiplicative"``.
        self.mode = mode
        #: Impulse mode: range of the fraction of pixels hit per sample.
        self.amount = _as_range(amount, "amount", lower=0.0, upper=1.0)
        #: Impulse mode: magnitude of the extreme values, in standard deviations.
        self.value = float(value)
        #: Multiplicative mode: range of the relative noise standard deviation.
        self.sigma = _as_range(sigma, "sigma", lower=0.0)
        #: Kornia's static parameters, shown in ``repr``: ``mode``, and
        #: ``value`` in impulse mode.
        self.flags = {"mode": mode}
        if mode == "impulse":
            self.flags["value"] = self.value
            self._param_generator = rg.PlainUniformGenerator(
                (self.amount, "amount", None, None)
            )
        else:
            self._param_generator = rg.PlainUniformGenerator(
                (self.sigma, "sigma", None, None)
            )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Add the speckle.

        Args:
            input: image batch ``[B, C, H, W]``.
            params: ``amount`` ``[B]`` (impulse) or ``sigma`` ``[B]``
                (multiplicative).
            flags: unused.
            transform: unused.

        Returns:
            The noisy batch ``[B, C, H, W]``.
        """
        if self.mode == "multiplicative":
            sigma = _per_sample(params["sigma"], input)
            return input * (1.0 + sigma * torch.randn_like(input))
        batch, _, height, width = input.shape
        amount = _per_sample(params["amount"], input)
        # One uniform draw per pixel: below amount / 2 -> +value, below amount
        # -> -value, otherwise untouched. Shared by all bands of the pixel.
        draw = torch.rand(
            batch, 1, height, width, device=input.device, dtype=input.dtype
        )
        extreme = torch.where(draw < amount / 2, self.value, -self.value)
        return torch.where(draw < amount, extreme.to(input.dtype), input)
