"""The CLIP encoders' preprocessing: each reference tool's crop and resize (PIL, on the uint8
image, in the decoding workers), then /255 and CLIP's mean and std (on the compute device).

- ``cmmd_crop_resize``: google-research ``cmmd/io_util.py`` ``_center_crop_and_resize``: the
  centred square of side ``min(w, h)`` (box at ``((w - l) // 2, (h - l) // 2)``), then PIL
  BICUBIC (antialiased) to 336 x 336 on the uint8 image. Its ``embedding.py`` then calls
  ``jax.image.resize`` to the same 336 x 336, which JAX skips for unchanged dimensions.
- ``clean_fid_crop_resize``: clean-fid ``clip_features.img_preprocess_clip``: torchvision's
  ``Resize(224, BICUBIC)`` on a PIL image (the shorter side to 224, the longer to
  ``int(224 * long / short)``; PIL BICUBIC, always antialiased; no resize where the size is
  already that) and ``CenterCrop(224)`` (offsets ``int(round((size - 224) / 2))``, Python's
  round-half-to-even). Written with PIL alone, so the decoding workers import no torch.

Both take and return uint8 (H, W, 3) RGB, so the decoded images travel to the compute device at
a quarter of float32's size. ``to_network_input`` then divides by 255 in float32 and normalises
with CLIP's mean and std, as both references do (``x / 255``, then ``(x - mean) / std``, each
in float32). clean-fid's own path goes through ``ToTensor()(x) * 255 / 255``, which can differ
from ``x / 255`` in the last bit of a pixel: far below the features' tolerance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP's per-channel normalisation of [0, 1] RGB (openai/CLIP ``clip.py``, scenic ``model.py``)."""

CMMD_SIZE = 336
CLEAN_FID_SIZE = 224


def cmmd_crop_resize(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (336, 336, 3): google-research CMMD's centre crop and resize."""
    height, width = image.shape[:2]
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(image).crop((left, top, left + side, top + side))
    return np.asarray(square.resize((CMMD_SIZE, CMMD_SIZE), resample=Image.BICUBIC))


def clean_fid_crop_resize(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (224, 224, 3): clean-fid's CLIP resize and centre crop."""
    height, width = image.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(CLEAN_FID_SIZE * long / short)
    new_width, new_height = (CLEAN_FID_SIZE, new_long) if width <= height else (new_long, CLEAN_FID_SIZE)
    resized = Image.fromarray(image)
    if (new_width, new_height) != (width, height):
        resized = resized.resize((new_width, new_height), resample=Image.BICUBIC)
    top = int(round((new_height - CLEAN_FID_SIZE) / 2.0))
    left = int(round((new_width - CLEAN_FID_SIZE) / 2.0))
    return np.asarray(resized.crop((left, top, left + CLEAN_FID_SIZE, top + CLEAN_FID_SIZE)))


def to_network_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S, 3) on the compute device -> float32 (N, 3, S, S), contiguous: ``x / 255``
    normalised with ``CLIP_MEAN`` and ``CLIP_STD``."""
    import torch

    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    x = pixels.permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255)
    return x.sub_(mean).div_(std)
