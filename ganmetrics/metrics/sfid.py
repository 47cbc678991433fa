"""Spatial FID (Nash et al. 2021), as the ADM evaluator computes it: the Fréchet distance between
Gaussians of the extractor's "spatial" feature.

For the Inception extractor that feature is the ``Mixed_6d.branch1x1`` output (the TF graph's
``mixed_6/conv``, after batch norm and ReLU, 17 x 17 at the 299 input), channels 0-6, flattened
channels last: D = 2023. Not dgm-eval's "sFID" (Mixed_6e, channels first). Streams: a count,
mean and co-moment per side (``GaussianStats``, 8 D² bytes: 33 MB at D = 2023), computed in the
same forward pass as pool3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced
from .fid import frechet_distance, warn_if_singular
from .reducers import GaussianStats

if TYPE_CHECKING:
    import torch

SPATIAL = "spatial"
"""The name extractors give sFID's feature."""


@dataclass(frozen=True)
class SFID(Metric):
    """sFID in squared feature units: ``frechet_distance`` of the two sides' spatial Gaussians."""

    name = "sfid"
    sides = 2
    keys = ("sfid",)

    def needs(self, extractor) -> list[Need]:
        if SPATIAL not in extractor.features:
            raise GanMetricsError(f"the feature extractor {extractor.name} has no spatial features for sFID: "
                                  "use the Inception extractor")
        return [Need(SPATIAL, GaussianStats)]

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        need = Need(SPATIAL, GaussianStats)
        ref, other = a[need], b[need]
        dims = len(ref.mu)
        warn_if_singular(ref, other, dims, "sFID", "use more than {dims} images")
        return {"sfid": frechet_distance(ref.mu, ref.sigma, other.mu, other.sigma, device)}
