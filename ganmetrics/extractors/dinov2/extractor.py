"""DINOv2 ViT-L/14 as an encoder: the class token after the final norm ("cls", 1024-d), the
feature of EDM2's ``fd_dinov2`` and of dgm-eval's ``dinov2`` encoder, for FID-style Fréchet
distances (``frechet``) and for kernel and neighbour metrics (``embedding``).

Its option ``resize`` picks the reference: ``torch`` (EDM2's default, on the compute device) or
``pil`` (dgm-eval's, and EDM2's ``resize_mode="pil"``, in the decoding workers); see
``preprocess.py``. The network is ``network.DINOv2ViT``, built from PyTorch layers alone: no
optional dependency, and no code fetched at run time.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..base import FeatureExtractor, encoder_option
from .spec import FEATURES, NAME, RESIZE_MODES
from .weights import WEIGHTS_FILE, random_state_dict

if TYPE_CHECKING:
    import torch

CPU_CHUNK = 4
"""Images per part on the CPU: a part of one image already multiplies 257-row matrices (the
class token and 16 x 16 patches), about as fast per image as larger parts, and small parts keep
every core busy to the end of a source. An image's features are the same bits in a part of any
size on one thread; on several threads a part's products may split differently (the last
float32 bits)."""


@dataclass(frozen=True)
class DINOv2Options:
    resize: str = encoder_option("torch", "torch (as EDM2's default: bicubic with antialias in PyTorch), "
                                          "pil (as dgm-eval and EDM2's resize_mode=pil: PIL bicubic on uint8).",
                                 choices=RESIZE_MODES)


class DINOv2Extractor(FeatureExtractor):
    """facebookresearch/dinov2's ``dinov2_vitl14`` with its standard weights file."""

    name = "dinov2-vitl14"
    model = NAME
    features = FEATURES
    roles = {"frechet": "cls", "embedding": "cls"}
    Options = DINOv2Options
    weights_file = WEIGHTS_FILE
    cpu_chunk = CPU_CHUNK
    depth: ClassVar[int] = 24
    """Transformer blocks: the hub's 24 (a test's reduced copy sets fewer)."""

    @classmethod
    def architecture(cls):
        from .network import DINOv2ViT

        return DINOv2ViT(cls.depth)

    @classmethod
    def random_state_dict(cls, seed: int) -> dict:
        return random_state_dict(cls.expected_shapes(), seed)

    @property
    def host_transform(self):
        """What the decoding workers apply to each uint8 (H, W, 3) image: for ``pil`` PIL's
        bicubic resize to uint8 (224, 224, 3), else nothing."""
        if self.options.resize == "pil":
            from .preprocess import pil_resize

            return pil_resize
        return super().host_transform

    def forward(self, network, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, H, W, 3), or (N, 224, 224, 3) after ``pil``."""
        from .preprocess import to_network_input

        # Contiguous NCHW, as the references feed their resize.
        return {"cls": network(to_network_input(pixels.permute(0, 3, 1, 2).contiguous(), self.options.resize))}
