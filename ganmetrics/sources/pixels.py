"""Generated images (tensors or arrays, uint8 or float) -> uint8 RGB pixels, as saving them to PNG would."""

import torch

from ..errors import GanMetricsError

VALUE_RANGES = ("uint8", "0,1", "-1,1")


def to_uint8(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images in ``value_range`` ("uint8", "0,1" or "-1,1") -> uint8 of the same shape, rounding
    to nearest and clipping, as saving them to PNG would."""
    if value_range == "uint8":
        if images.dtype != torch.uint8:
            raise GanMetricsError(f"value_range='uint8' needs a uint8 tensor, got {images.dtype}")
        return images
    if value_range not in VALUE_RANGES:
        raise GanMetricsError(f"value_range {value_range!r} is unknown: use one of {', '.join(VALUE_RANGES)}")
    if not images.is_floating_point():
        raise GanMetricsError(f"value_range={value_range!r} needs a float tensor, got {images.dtype}")
    if not torch.isfinite(images).all():
        raise GanMetricsError("generated images contain NaN or infinite values: check the generator")
    low = -1.0 if value_range == "-1,1" else 0.0
    scaled = (images.float() - low) * (255.0 / (1.0 - low))
    return scaled.round().clamp(0, 255).to(torch.uint8)


def rgb_pixels(images, value_range: str | None = None) -> torch.Tensor:
    """A batch of generated images -> uint8 (N, H, W, 3), contiguous, on their own device.

    ``images``: a tensor (any device) or array, (N, C, H, W) or (N, H, W, C) with C = 1
    (replicated, as grayscale files are) or 3; uint8, or float in ``value_range``. With
    ``value_range=None``: "uint8" for uint8 images, else "-1,1" (a tanh output).
    """
    images = torch.as_tensor(images).detach()
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GanMetricsError(
            f"generated images must be shaped (N, 3, H, W) or (N, H, W, 3) (or 1 channel), got {tuple(images.shape)}"
        )
    if value_range is None:
        value_range = "uint8" if images.dtype == torch.uint8 else "-1,1"
    return to_uint8(images, value_range).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous()
