"""Fréchet Inception Distance (Heusel et al. 2017) between two Gaussians of features."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .linalg import covariance_rank, trace_sqrt_product
from .reducers import GaussianStats

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     device: "torch.device | str | None" = None) -> float:
    """FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), in squared feature units.

    mu: float (D,); sigma: float (D, D). Computed in float64; the trace square root on
    ``device`` (default: the CPU), see ``trace_sqrt_product``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise GanMetricsError(
            f"statistics of different dimensions ({mu1.shape[0]} and {mu2.shape[0]} features): "
            "compute both with the same --dims"
        )
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, device))


def frechet_distance_scipy(mu1, sigma1, mu2, sigma2) -> float:
    """The classic ``scipy.linalg.sqrtm`` formula (pytorch-fid's), for comparison only."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


@dataclass(frozen=True)
class FID(Metric):
    """FID of the encoder's ``frechet`` features (the Inception's ``--dims`` tap: 2048 = pool3
    by default), in squared feature units. Streams: a count, mean and co-moment per side
    (``GaussianStats``). With ``fid_ranks`` its details also give each side's covariance rank."""

    name = "fid"
    sides = 2
    keys = ("fid",)
    interval_keys = ("fid",)
    role = "frechet"
    fid_ranks: bool = option(False, "FID: also report each side's covariance rank (details fid_rank_a, fid_rank_b).")

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), GaussianStats)]

    def compute(self, a: Reduced, b: Reduced, device: "torch.device | None" = None) -> dict:
        (ref,), (other,) = a.values(), b.values()
        dims = len(ref.mu)
        warn_if_singular(ref, other, dims, self.name.upper(), "use more than {dims} images or features of fewer dimensions")
        out = {self.name: frechet_distance(ref.mu, ref.sigma, other.mu, other.sigma, device)}
        if self.fid_ranks:
            out.update({f"{self.name}_rank_a": covariance_rank(ref.sigma), f"{self.name}_rank_b": covariance_rank(other.sigma)})
        return out

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """``dims``: the width of the features compared."""
        return {"dims": len(next(iter(a.values())).mu)}


def warn_if_singular(ref, other, dims: int, metric: str, advice: str) -> None:
    """Warn when a side (a reduced Gaussian: ``n`` images, None where unknown) has too few
    images for a non-singular ``dims``-wide covariance: the distance is then biased upwards.
    ``advice``: what to do, with ``{dims}`` filled in."""
    for side in (ref, other):
        if side.n is not None and side.n <= dims:
            warnings.warn(
                f"only {side.n} images for {dims}-dim features: the covariance is singular and "
                f"{metric} is biased upwards; {advice.format(dims=dims)}",
                stacklevel=3,
            )
