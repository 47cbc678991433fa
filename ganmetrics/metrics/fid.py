"""Fréchet Inception Distance (Heusel et al. 2017) between two Gaussians of features."""

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .linalg import trace_sqrt_product
from .reducers import GaussianStats

if TYPE_CHECKING:
    import torch


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
    """FID of the ``dims``-wide tap (64, 192, 768 or 2048 = pool3), in squared feature units.
    Streams: a count, mean and co-moment per side (``GaussianStats``)."""

    name = "fid"
    sides = 2
    keys = ("fid",)
    interval_keys = ("fid",)
    dims: int = option(2048, "FID feature layer.")

    def need(self, extractor) -> Need:
        return Need(extractor.feature_of_dims(self.dims), GaussianStats)

    def needs(self, extractor) -> list[Need]:
        return [self.need(extractor)]

    def compute(self, a: Reduced, b: Reduced, device: "torch.device | None" = None) -> dict[str, float]:
        (need,) = (n for n in a if n.reducer is GaussianStats and n.feature == str(self.dims))
        ref, other = a[need], b[need]
        warn_if_singular(ref, other, self.dims, "FID", "use more than {dims} images or a smaller --dims")
        return {"fid": frechet_distance(ref.mu, ref.sigma, other.mu, other.sigma, device)}


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
