"""Resize to 224 x 224 and normalise with ImageNet's mean and std: the two named resizes of the
references, because the resize moves the features.

- ``torch`` (EDM2's default ``resize_mode="torch"``): the uint8 batch as float32,
  ``F.interpolate(size=(224, 224), mode="bicubic", antialias=True)`` on the compute device,
  no rounding or clamping after it. The aspect ratio is squashed, nothing cropped.
- ``pil`` (dgm-eval's ``Resize((224, 224), BICUBIC)``, EDM2's ``resize_mode="pil"``): PIL's
  bicubic resize of the uint8 RGB image, in the decoding workers (``pil_resize``), so the
  network sees uint8 (224, 224) images.

Then both: ``x / 255``, minus the mean, divided by the std, in that order and in float32, as
EDM2's ``DINOv2Detector`` (and dgm-eval's ``ToTensor`` + ``Normalize``) compute them.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .spec import RESIZE_MODES

INPUT_SIZE = 224
"""The side the network sees: 16 x 16 patches of 14."""
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def pil_resize(image: np.ndarray) -> np.ndarray:
    """PIL's bicubic resize of one uint8 (H, W, 3) RGB image -> uint8 (224, 224, 3)."""
    resized = Image.fromarray(image, "RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
    return np.array(resized)


def to_network_input(batch: torch.Tensor, mode: str) -> torch.Tensor:
    """A batch of same-sized uint8 images (N, 3, H, W) on the compute device -> the network's
    float32 input (N, 3, 224, 224). ``torch``: any H, W; ``pil``: already 224 x 224 (``pil_resize``)."""
    x = batch.float()
    if mode == "torch":
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True)
    elif mode != "pil":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    x = x / 255
    x = x - torch.tensor(MEAN, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    return x / torch.tensor(STD, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
