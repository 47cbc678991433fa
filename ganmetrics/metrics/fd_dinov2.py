"""FD_DINOv2 (Stein et al. 2023; EDM2's ``fd_dinov2``): the Fréchet distance of DINOv2 ViT-L/14
features, the class token after the final norm (1024-d), in squared feature units."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Reduced
from .fid import FID


@dataclass(frozen=True)
class FDDINOv2(FID):
    """``fid@dinov2-vitl14`` under the name EDM2 prints: the same Gaussians and formula (float64,
    ddof-1 covariances, the exact trace square root), reported as ``fd_dinov2`` (its details
    ``fd_dinov2_rank_a``/``_b`` with ``fid_ranks``). On another encoder (``fd_dinov2@ENCODER``)
    it is that encoder's FID under this name."""

    name = "fd_dinov2"
    keys = ("fd_dinov2",)
    interval_keys = ("fd_dinov2",)
    default_encoder = "dinov2-vitl14"

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """None of its own: the width compared is its encoder's (``dims`` is the Inception's in a
        run beside ``fid``), and the encoder's options are the run's (``resize@dinov2-vitl14``)."""
        return {}
