"""Resize to 299x299 and normalise to [-1, 1]: the three named modes, because the mode moves FID.

- ``tf``: TF 1.x ``resize_bilinear`` (align_corners=False, no half-pixel centres), reproduced
  exactly as torch-fidelity does; then ``(x - 128) / 128``. What the original TF FID/IS code saw.
- ``pytorch``: as pytorch-fid: ``x / 255``, ``F.interpolate(bilinear, align_corners=False)``
  without antialias, then ``2x - 1``.
- ``clean``: as clean-fid: PIL bicubic with antialias on each channel as a float32 image, clipped
  to [0, 255], then ``(x - 128) / 128``. Runs on the CPU with PIL, in the decoding workers.

Inputs are uint8 RGB; ``tf`` and ``pytorch`` resize batches on the compute device.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .spec import RESIZE_MODES

INPUT_SIZE = 299


def tf1_bilinear_resize(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF 1.x bilinear resize of a batch (N, C, H, W), uint8 or float, to float32 (N, C, size, size).

    Source coordinate ``dst * in / out`` (float32), lower neighbour its floor, upper one clamped
    to the edge; the arithmetic order is torch-fidelity's, so results are bit-identical on the CPU.
    """
    def axis(in_size: int, device):
        coord = torch.arange(size, dtype=torch.float32, device=device)
        coord = coord * torch.tensor(in_size / size, dtype=torch.float32)
        lo = coord.long()
        hi = (lo + 1).clamp_max(in_size - 1)
        return lo, hi, coord - lo.float()

    h, w = x.shape[-2:]
    x_lo, x_hi, dx = axis(w, x.device)
    y_lo, y_hi, dy = axis(h, x.device)
    # Interpolate along x on every input row, then along y: the same per-element arithmetic as
    # gathering the four corners first (left + (right - left) * dx, then top + (bottom - top) *
    # dy), with fewer gathers, in place, and in float32 only from the first gather on.
    left = x.index_select(-1, x_lo).float()
    rows = x.index_select(-1, x_hi).float().sub_(left).mul_(dx).add_(left)
    top = rows.index_select(-2, y_lo)
    return rows.index_select(-2, y_hi).sub_(top).mul_(dy.view(size, 1)).add_(top)


def clean_resize(image: np.ndarray) -> np.ndarray:
    """clean-fid's resize of one uint8 (H, W, 3) image: float32 (299, 299, 3) in [0, 255]."""
    channels = []
    for c in range(3):
        plane = Image.fromarray(image[:, :, c].astype(np.float32), mode="F")
        plane = plane.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.BICUBIC)
        channels.append(np.asarray(plane).clip(0, 255))
    return np.stack(channels, axis=2).astype(np.float32)


def to_network_input(batch: torch.Tensor, mode: str) -> torch.Tensor:
    """A batch of same-sized images, channels first, on the compute device -> float32
    (N, 3, 299, 299) in [-1, 1].

    ``tf``/``pytorch``: ``batch`` is uint8 (N, 3, H, W) at any size. ``clean``: ``batch`` is
    float32 (N, 3, 299, 299) in [0, 255], already resized by ``clean_resize``.
    """
    if mode == "tf":
        return tf1_bilinear_resize(batch).sub_(128).div_(128)
    if mode == "pytorch":
        x = batch.float() / 255
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x.mul_(2).sub_(1)
    if mode == "clean":
        return (batch - 128) / 128
    raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
