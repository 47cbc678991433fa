"""FID∞ and IS∞ (Chong & Forsyth 2020): FID and IS extrapolated to infinitely many images.

Both are biased by the number of images N, to first order by a term in 1/N. Chong & Forsyth's
procedure (``score_infinity.py``), reproduced on our features: sample sizes
N_j = ``np.linspace(inf_min, N, inf_points).astype("int32")`` (5,000 and 15 in the paper); for
each j in turn, shuffle all the generated features in place (the shuffles accumulate) and
compute the metric of the first N_j: FID against the full reference statistics, IS with one
split; fit value_j = a + b / N_j by least squares; the intercept a is FID∞ (IS∞).

Where ours differs: the shuffles come from ``np.random.RandomState(seed)`` (what
``np.random.seed(seed)`` sets up, without touching the global generator) applied to an index
array (the same draws as shuffling the rows in place); each point is computed in float64
(their ``np.mean`` of float32 activations rounds the mean to float32, their IS is float32); IS
uses the unbiased logits, as our IS. We also report the points, the slope and the intercept's
standard error from the fit's residuals (``fit_inverse_n``), which no reference tool does.

Memory: every generated feature (``FeatureBank``: 4 D bytes an image, 410 MB at 50,000 pool3
features; IS∞: 4 KiB an image of logits). Time: the statistics of sum_j N_j rows, about
inf_points (inf_min + N) / 2 rows (2 D² flops each for FID∞), plus a trace square root per point.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option, seed_option
from .fid import frechet_distance
from .inception_score import inception_score_from_sums
from .reducers import FeatureBank, GaussianStats, SplitSums, bank_for_weights, weighted_gaussian

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

ROWS_AT_ONCE = 8192
"""IS∞: logits of a subset turned into probabilities at once (float64, 8 K bytes each)."""


def sample_sizes(count: int, smallest: int, points: int) -> np.ndarray:
    """The fit's sample sizes, int32 (points,): ``np.linspace(smallest, count, points).astype("int32")``."""
    return np.linspace(smallest, count, points).astype("int32")


def fit_inverse_n(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """(a, b, standard error of a) of the least-squares line value = a + b / size; the error
    from the residuals' variance (divided by points - 2) and (XᵀX)⁻¹."""
    design = np.stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, np.float64)], axis=1)
    values = np.asarray(values, np.float64)
    (intercept, slope), *_ = np.linalg.lstsq(design, values, rcond=None)
    residuals = values - design @ np.array([intercept, slope])
    variance = residuals @ residuals / (len(values) - 2)
    return float(intercept), float(slope), float(np.sqrt(variance * np.linalg.inv(design.T @ design)[0, 0]))


def extrapolate(count: int, value_of: Callable[[np.ndarray], float], smallest: int, points: int, seed: int) -> dict:
    """Chong & Forsyth's procedure over ``count`` images: ``value_of(indices)`` is the metric of
    the images at ``indices`` (int64 (N_j,)). Returns {"n": the sizes, "value": the values,
    "intercept", "slope", "se"} (lists of Python numbers)."""
    sizes = sample_sizes(count, smallest, points)
    order = np.arange(count)
    shuffle = np.random.RandomState(seed).shuffle
    values = []
    for size in sizes:
        shuffle(order)
        values.append(value_of(order[:size]))
    intercept, slope, se = fit_inverse_n(sizes, np.array(values))
    return {"n": sizes.tolist(), "value": values, "intercept": intercept, "slope": slope, "se": se}


@dataclass(frozen=True)
class _Extrapolated(Metric):
    """Options and checks shared by FID∞ and IS∞."""

    inf_min: int = option(5000, "FID∞/IS∞: the fit's smallest sample size (the paper's: 5000).")
    inf_points: int = option(15, "FID∞/IS∞: sample sizes from --inf-min to N, evenly spaced.")
    seed: int = seed_option()

    def __post_init__(self):
        if self.inf_min < 2:
            raise GanMetricsError(f"--inf-min must be at least 2, got {self.inf_min}")
        if self.inf_points < 3:
            raise GanMetricsError(f"--inf-points must be at least 3 (a line and its error), got {self.inf_points}")
        if not 0 <= self.seed < 2 ** 32:
            raise GanMetricsError(f"--seed must lie in 0..2**32-1 (NumPy's RandomState), got {self.seed}")

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        if n_b is not None and n_b <= self.inf_min:
            raise GanMetricsError(
                f"{self.name} needs more generated images than --inf-min {self.inf_min} (its smallest sample; "
                f"Chong & Forsyth use 5000), got {n_b}: add images, or lower --inf-min (reported in the settings)"
            )

    def _extrapolated(self, count: int, value_of: Callable[[np.ndarray], float]) -> dict:
        fit = extrapolate(count, value_of, self.inf_min, self.inf_points, self.seed)
        return {self.keys[0]: fit["intercept"], self.keys[1]: fit["se"], f"{self.name}_fit": fit}


@dataclass(frozen=True)
class FIDInfinity(_Extrapolated):
    """FID∞ of the encoder's ``frechet`` features: every generated feature (a bank) against the
    reference's Gaussian statistics (which may come from a statistics file)."""

    name = "fid_inf"
    sides = 2
    keys = ("fid_inf", "fid_inf_se")
    role = "frechet"

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    def reference_needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), GaussianStats)]

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict:
        (reference,), (bank,) = a.values(), b.values()
        dims = bank.shape[1]
        if self.inf_min <= dims:
            warnings.warn(f"FID∞'s smallest samples (--inf-min {self.inf_min}) have no more images than {dims} "
                          "dims: their covariances are singular", stacklevel=2)

        features, mean = bank_for_weights(bank, device)

        def fid_of(indices: np.ndarray) -> float:
            chosen = np.zeros(len(bank), np.int64)
            chosen[indices] = 1  # the subset's Gaussian: weights 1 on it, 0 elsewhere
            subset = weighted_gaussian(features, mean, chosen)
            return frechet_distance(subset.mu, subset.sigma, reference.mu, reference.sigma, device)

        return self._extrapolated(len(bank), fid_of)

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """Its options, and ``dims``: the width of the features compared."""
        return {**super().settings(a, b), "dims": len(next(iter(a.values())).mu)}


@dataclass(frozen=True)
class ISInfinity(_Extrapolated):
    """IS∞ of a generated set, from every image's unbiased logits (a bank), one split per point."""

    name = "is_inf"
    sides = 1
    keys = ("is_inf", "is_inf_se")
    role = "logits"

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    def compute(self, a: Reduced | None, b: Reduced, device: torch.device | None = None) -> dict:
        import torch

        (bank,) = b.values()

        def is_of(indices: np.ndarray) -> float:
            sums = SplitSums(1, None, bank.shape[1], "cpu" if device is None else device)
            for start in range(0, len(indices), ROWS_AT_ONCE):
                sums.update(torch.from_numpy(bank[indices[start:start + ROWS_AT_ONCE]]))
            return inception_score_from_sums(*sums.sums())[0]

        return self._extrapolated(len(bank), is_of)
