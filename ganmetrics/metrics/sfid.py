"""Spatial FID (Nash et al. 2021), as the ADM evaluator computes it: the Fréchet distance between
Gaussians of an encoder's ``spatial`` features.

For the Inception that feature is the ``Mixed_6d.branch1x1`` output (the TF graph's
``mixed_6/conv``, after batch norm and ReLU, 17 x 17 at the 299 input), channels 0-6, flattened
channels last: D = 2023. Not dgm-eval's "sFID" (Mixed_6e, channels first). Streams: a count,
mean and co-moment per side (``GaussianStats``, 8 D² bytes: 33 MB at D = 2023), computed in the
same forward pass as pool3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import Metric, Need, Reduced
from .fid import frechet_distance, warn_if_singular
from .reducers import GaussianStats

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

@dataclass(frozen=True)
class SFID(Metric):
    """sFID in squared feature units: ``frechet_distance`` of the two sides' spatial Gaussians."""

    name = "sfid"
    sides = 2
    keys = ("sfid",)
    role = "spatial"

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), GaussianStats)]

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        (ref,), (other,) = a.values(), b.values()
        dims = len(ref.mu)
        warn_if_singular(ref, other, dims, "sFID", "use more than {dims} images")
        return {"sfid": frechet_distance(ref.mu, ref.sigma, other.mu, other.sigma, device)}
