"""Bootstrap confidence intervals over images: how sure a metric's value is.

A replicate resamples each side's images with replacement, as a Poisson bootstrap: image i of
a side enters replicate r ``w`` times, w ~ Poisson(1), drawn from a counter-based generator
keyed by (seed, side, r, i) (``poisson_weights``). A weight depends on nothing else, so the
replicates, and the interval, are the same for any batch size, worker count or number of
ranks, and any one image's weight can be drawn alone. The metric is then recomputed from its
reduced values on the resampled images, B times; the interval at level L comes from the
((1 - L)/2, (1 + L)/2) quantiles of those B values (``interval_of``: the basic bootstrap by
default). Metrics stay pure functions of reduced values: what resamples is the reducers' values
(``SideResampler``):

- a Gaussian (FID) is recomputed from the side's feature bank with the weights
  (``weighted_gaussian``): the bank costs 4 D bytes an image, and a replicate 2 n D² float64
  flops for the n = 63% of images with nonzero weight, plus FID's trace square root (D³);
- a feature bank (KID) is repeated row by row (``np.repeat``), one replicate at a time;
- the Inception Score's split sums stream: ``ReplicatedSplitSums`` keeps B weighted copies
  (8 B S (K + 2) bytes: 8 MB at B = 100, 10 splits, 1008 classes).

A side that cannot be resampled (a statistics file without features) stays fixed: every
replicate sees its values, and the interval then reflects the other side's sampling only.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar, TYPE_CHECKING

import numpy as np

from ..config import IntervalOptions
from ..errors import GanMetricsError
from .base import Metric, Need, Reduced
from .reducers import FeatureBank, Gaussian, GaussianStats, SplitSums

if TYPE_CHECKING:
    import torch

REFERENCE, GENERATED = 0, 1
"""The weight streams of the two sides: their replicates are independent."""

WEIGHT_BLOCK = 16
"""Replicates whose weights are drawn at once: 16 x N int64 (6.4 MB at 50,000 images)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment


def _poisson_thresholds(terms: int = 25) -> np.ndarray:
    """T_k = floor(F(k) 2^53) for the Poisson(1) CDF F, k = 0..terms-1, from exact rationals (e^-1
    as its alternating series, truncated far below 2^-53): the same integers on every machine."""
    inverse_e = sum(Fraction((-1) ** j, math.factorial(j)) for j in range(40))
    cdf = [inverse_e * sum(Fraction(1, math.factorial(j)) for j in range(k + 1)) for k in range(terms)]
    return np.array([min(math.floor(value * 2 ** 53), 2 ** 53 - 1) for value in cdf], dtype=np.uint64)


_THRESHOLDS = _poisson_thresholds()


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function on uint64 arrays (arithmetic modulo 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def poisson_weights(seed: int, stream: int, replicates: Sequence[int], positions: np.ndarray) -> np.ndarray:
    """The bootstrap weights, int64 (R, n), of the images at global ``positions`` (int (n,)) in
    each of ``replicates`` (R replicate numbers): Poisson(1) counts, each a function of (seed,
    stream, replicate, position) alone.

    The replicate's key is splitmix64's output function applied in turn to the seed, then with
    the stream, then with the replicate number mixed in (each plus one, times the golden-ratio
    increment); image i's uniform is the top 53 bits of the (i + 1)-th output of splitmix64
    started from that key, and its weight the smallest k with u <= T_k (``_poisson_thresholds``):
    integers throughout, so the same on every machine and NumPy version.
    """
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=np.uint64))
        key = _mix(key ^ (np.uint64(stream + 1) * _GOLDEN))
        keys = _mix(key ^ ((np.asarray(replicates, dtype=np.uint64) + np.uint64(1)) * _GOLDEN))
        counters = (np.asarray(positions, dtype=np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN
        uniforms = _mix(keys[:, None] + counters[None, :]) >> np.uint64(11)
    return np.searchsorted(_THRESHOLDS, uniforms, side="left").astype(np.int64)


def weighted_gaussian(features: np.ndarray | torch.Tensor, mean: np.ndarray | torch.Tensor, weights: np.ndarray,
                      rows_at_once: int = 8192) -> Gaussian:
    """The Gaussian (mean, unbiased covariance, count) of the multiset that holds image i
    ``weights[i]`` times: equal, to rounding, to ``GaussianStats`` of the repeated rows.

    ``features``: float (N, D), a NumPy array (computed with NumPy's BLAS) or a tensor (computed
    with torch on its device, e.g. a GPU); ``mean``: their unweighted mean, float64 (D,), of the
    same kind (rows are centred on it in float64 before the products, for accuracy);
    ``weights``: integer (N,). Only rows of nonzero weight are read, ``rows_at_once`` at a time:
    2 n D² float64 flops for n such rows, and 8 D (D + rows_at_once) bytes.
    """
    import torch

    chosen = np.flatnonzero(weights)
    total = int(weights[chosen].sum())
    if total < 2:
        raise GanMetricsError("a bootstrap replicate drew fewer than 2 images: use more images")
    if isinstance(features, torch.Tensor):
        device = features.device

        def as_array(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(values).to(device)

        def rows_at(index: np.ndarray) -> torch.Tensor:
            return features[as_array(index)].to(torch.float64) - mean

        zeros, outer = functools.partial(torch.zeros, dtype=torch.float64, device=device), torch.outer
    else:
        def as_array(values: np.ndarray) -> np.ndarray:
            return values

        def rows_at(index: np.ndarray) -> np.ndarray:
            return features[index].astype(np.float64) - mean

        zeros, outer = np.zeros, np.outer
    dims = features.shape[1]
    shift, comoment = zeros(dims), zeros((dims, dims))  # sums of w (x - mean), w (x - mean)(x - mean)^T
    for start in range(0, len(chosen), rows_at_once):
        index = chosen[start:start + rows_at_once]
        rows, w = rows_at(index), as_array(weights[index].astype(np.float64))
        shift += w @ rows
        comoment += (rows * w[:, None]).T @ rows
    delta = shift / total
    comoment -= outer(delta, delta) * total
    mu, sigma = mean + delta, comoment / (total - 1)
    if isinstance(mu, torch.Tensor):
        mu, sigma = mu.cpu().numpy(), sigma.cpu().numpy()
    return Gaussian(mu, sigma, total)


def bank_for_weights(bank: np.ndarray, device: torch.device | None = None) -> tuple:
    """The ``features`` and ``mean`` arguments of ``weighted_gaussian`` for a feature bank (float32
    (N, D)): NumPy arrays on the CPU (``device`` None or the CPU), else tensors on ``device``."""
    import torch

    if device is None or torch.device(device).type == "cpu":
        bank = np.asarray(bank)
        return bank, bank.mean(axis=0, dtype=np.float64)
    tensor = torch.as_tensor(bank).to(device)
    return tensor, tensor.to(torch.float64).mean(dim=0)


class ReplicatedSplitSums(SplitSums):
    """``SplitSums`` of ``replicates`` bootstrap resamplings at once, streamed: image i adds to
    replicate r's sums ``poisson_weights(seed, stream, [r], [i])`` times, in its own split (the
    splits stay those of the whole set). ``counts`` float64 (R, S), ``prob_sums`` (R, S, K),
    ``neg_entropy_sums`` (R, S); memory 8 R S (K + 2) bytes. ``result()``: those three as NumPy
    arrays, replicate first."""

    kind: ClassVar[str] = "replicated_split_sums"

    @classmethod
    def create(cls, dims: int, total: int | None, device: torch.device | str = "cpu", splits: int | None = 10,
               split_size: int | None = None, replicates: int = 100, seed: int = 0,
               stream: int = GENERATED) -> "ReplicatedSplitSums":
        return cls(None if split_size else splits, total, dims, device, split_size, replicates, seed, stream)

    def __init__(self, splits: int | None, total: int | None, num_classes: int = 1008,
                 device: torch.device | str = "cpu", split_size: int | None = None, replicates: int = 100,
                 seed: int = 0, stream: int = GENERATED):
        super().__init__(splits, total, num_classes, device, split_size)
        self.replicates, self.seed, self.stream = replicates, seed, stream
        self.counts = self.counts.expand(replicates, -1).clone()
        self.prob_sums = self.prob_sums.expand(replicates, -1, -1).clone()
        self.neg_entropy_sums = self.neg_entropy_sums.expand(replicates, -1).clone()

    def _accumulate(self, one_hot: torch.Tensor, p: torch.Tensor, positions: torch.Tensor) -> None:
        import torch

        weights = poisson_weights(self.seed, self.stream, range(self.replicates), positions.cpu().numpy())
        weighted = torch.from_numpy(weights).to(p.device, torch.float64)[:, None, :] * one_hot  # (R, S, N)
        self.counts += weighted.sum(dim=2)
        self.prob_sums += weighted @ p
        self.neg_entropy_sums += weighted @ torch.special.xlogy(p, p).sum(dim=1)

    def merge(self, other: "ReplicatedSplitSums") -> "ReplicatedSplitSums":
        if (other.replicates, other.seed, other.stream) != (self.replicates, self.seed, self.stream):
            raise ValueError("cannot merge bootstrap split sums of other replicates, seeds or streams")
        return super().merge(other)

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "replicates": np.int64(self.replicates), "seed": np.uint64(self.seed),
                "stream": np.int64(self.stream)}

    @classmethod
    def _options_of_state(cls, state: dict) -> dict:
        return {"replicates": int(state["replicates"]), "seed": int(state["seed"]), "stream": int(state["stream"])}


def replicate_sizes(seed: int, stream: int, replicates: int, count: int) -> np.ndarray:
    """The image count of each bootstrap replicate of a side of ``count`` images, int64 (R,):
    known before any image is read (a Poisson(count) number, the sum of the weights)."""
    return np.concatenate([poisson_weights(seed, stream, range(first, min(first + WEIGHT_BLOCK, replicates)),
                                           np.arange(count)).sum(axis=1) for first in range(0, replicates, WEIGHT_BLOCK)])


def check_replicate_counts(metrics: list[Metric], n_a: int | None, n_b: int | None, interval: IntervalOptions,
                           resample_a: bool) -> None:
    """Refuse, before any image is read, a request some bootstrap replicate cannot meet: each
    metric's ``check_counts`` on each replicate's image counts (e.g. KID's subset size against
    a resampled side that drew fewer images than the side holds)."""
    if n_b is None:
        return
    replicates, seed = interval.replicates, interval.seed
    sizes_b = replicate_sizes(seed, GENERATED, replicates, n_b)
    sizes_a = replicate_sizes(seed, REFERENCE, replicates, n_a) if resample_a and n_a is not None else None
    for metric in metrics:
        for r in range(replicates):
            size_a = None if metric.sides == 1 else n_a if sizes_a is None else int(sizes_a[r])
            try:
                metric.check_counts(size_a, int(sizes_b[r]))
            except GanMetricsError as err:
                both = f" and the {n_a} reference ones as {size_a}" if sizes_a is not None and metric.sides == 2 else ""
                raise GanMetricsError(f"--ci: bootstrap replicate {r + 1} of {replicates} resamples the {n_b} generated "
                                      f"images as {sizes_b[r]}{both} (a Poisson number of draws): {err}") from None


def resampling_need(need: Need, stream: int, replicates: int, seed: int) -> Need:
    """The need whose reduced value gives ``need``'s value on each bootstrap replicate: the
    feature bank for a Gaussian or a bank, the replicated split sums for split sums."""
    if need.reducer is GaussianStats or need.reducer is FeatureBank:
        return Need(need.feature, FeatureBank)
    if need.reducer is SplitSums:
        options = need.options + (("replicates", replicates), ("seed", seed), ("stream", stream))
        return Need(need.feature, ReplicatedSplitSums, options)
    raise ValueError(f"no bootstrap for values reduced by {need.reducer.__name__}")


def resampling_needs(needs: Mapping[Need, str], stream: int, replicates: int, seed: int) -> dict[Need, str]:
    """{resampling need: the metric names that need it} of ``needs`` ({need: names})."""
    out: dict[Need, str] = {}
    for need, names in needs.items():
        resampling = resampling_need(need, stream, replicates, seed)
        names = f"{names} (--ci)"
        out[resampling] = f"{out[resampling]}, {names}" if resampling in out else names
    return out


class SideResampler:
    """One side's reduced values on bootstrap replicate r (``values(r, needs)``).

    ``reduced``: the side's {need: value}, holding each need's ``resampling_need``; ``stream``:
    its weight stream (REFERENCE, GENERATED), or None for a side that stays fixed (every
    replicate sees ``reduced``); ``device``: where Gaussians are recomputed (banks are moved
    there once). A replicate's values are kept until the next replicate is asked for (metrics
    sharing a need share them); weights are drawn ``WEIGHT_BLOCK`` replicates at a time.
    """

    def __init__(self, reduced: Reduced, stream: int | None, replicates: int, seed: int,
                 device: torch.device | None = None):
        import torch

        self.reduced, self.stream, self.replicates, self.seed = reduced, stream, replicates, seed
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._banks: dict[str, tuple] = {}
        self._weight_block: tuple[int, int, np.ndarray] | None = None  # (first replicate, count, weights)
        self._replicate, self._values = None, {}

    def _bank(self, feature: str) -> tuple:
        if feature not in self._banks:
            self._banks[feature] = bank_for_weights(self.reduced[Need(feature, FeatureBank)], self.device)
        return self._banks[feature]

    def _weights(self, count: int) -> np.ndarray:
        """The current replicate's weights of a side of ``count`` images, int64 (count,)."""
        r, block = self._replicate, self._weight_block
        if block is None or block[1] != count or not block[0] <= r < block[0] + len(block[2]):
            first = r - r % WEIGHT_BLOCK
            replicates = range(first, min(first + WEIGHT_BLOCK, self.replicates))
            block = self._weight_block = first, count, poisson_weights(self.seed, self.stream, replicates, np.arange(count))
        return block[2][r - block[0]]

    def _resampled(self, need: Need) -> Any:
        if need.reducer is GaussianStats:
            features, mean = self._bank(need.feature)
            return weighted_gaussian(features, mean, self._weights(len(features)))
        if need.reducer is FeatureBank:
            bank = self.reduced[need]
            return np.repeat(bank, self._weights(len(bank)), axis=0)
        sums = self.reduced[resampling_need(need, self.stream, self.replicates, self.seed)]
        counts, *rest = (part[self._replicate] for part in sums)
        drawn = counts > 0  # a short split (the last of --is-split-size) may draw no image: it has no score
        return (counts[drawn], *(part[drawn] for part in rest))

    def values(self, r: int, needs: Iterable[Need]) -> dict[Need, Any]:
        """{need: its value on replicate ``r``} for ``needs``."""
        if self.stream is None:
            return {need: self.reduced[need] for need in needs}
        if r != self._replicate:
            self._replicate, self._values = r, {}
        for need in needs:
            if need not in self._values:
                self._values[need] = self._resampled(need)
        return {need: self._values[need] for need in needs}


def interval_of(draws: np.ndarray, value: float, level: float, method: str) -> tuple[float, float]:
    """(low, high) at ``level`` from a metric's bootstrap values ``draws`` and its ``value`` on
    the images themselves. q_low, q_high: the (1 - level)/2 and (1 + level)/2 quantiles of the
    draws (NumPy's linear interpolation). "percentile": (q_low, q_high). "basic":
    (2 value - q_high, 2 value - q_low), the draws' spread about their own centre mirrored
    about ``value``: it subtracts the metric's bias as the bootstrap sees it (for FID, the
    resampled sets' bias over the set's, like the set's over the distributions'), so it
    covers the metric of the distributions themselves where the percentile interval, shifted
    by twice the bias, does not (``tests/metrics/test_bootstrap.py``)."""
    low, high = np.quantile(np.asarray(draws, np.float64), [(1 - level) / 2, (1 + level) / 2])
    if method == "percentile":
        return float(low), float(high)
    if method == "basic":
        return float(2 * value - high), float(2 * value - low)
    raise ValueError(f"unknown interval method {method!r}")


def bootstrap_intervals(metrics: list[Metric], extractor, a: Reduced | None, b: Reduced, values: Mapping[str, float],
                        interval: IntervalOptions, resample_a: bool, device: torch.device | None = None
                        ) -> dict[str, float]:
    """{"<key>_ci_low", "<key>_ci_high"} for each ``interval_keys`` key of ``metrics`` from
    ``interval.replicates`` bootstrap replicates of the reference side ``a`` (fixed unless
    ``resample_a``) and the generated side ``b``, whose reduced values hold the
    ``resampling_need`` of each need of these metrics; ``values``: the metrics' values on the
    sides themselves (``interval_of``)."""
    replicates = interval.replicates
    stream_a = REFERENCE if resample_a else None
    side_a = None if a is None else SideResampler(a, stream_a, replicates, interval.seed, device)
    side_b = SideResampler(b, GENERATED, replicates, interval.seed, device)
    draws = {key: np.empty(replicates) for metric in metrics for key in metric.interval_keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run's own values have warned already (few images, ...)
        for r in range(replicates):
            for metric in metrics:
                reference = side_a.values(r, metric.reference_needs(extractor)) if metric.sides == 2 else None
                try:
                    out = metric.compute(reference, side_b.values(r, metric.needs(extractor)), device)
                except GanMetricsError as err:
                    raise GanMetricsError(f"{metric.name} on bootstrap replicate {r + 1} of {replicates}: {err}") from None
                for key in metric.interval_keys:
                    draws[key][r] = out[key]
    result = {}
    for key, draw in draws.items():
        result[f"{key}_ci_low"], result[f"{key}_ci_high"] = interval_of(draw, values[key], interval.level, interval.method)
    return result
