"""Bootstrap confidence intervals over images (``--ci``): how sure a metric's value is.

A replicate resamples each side's images with replacement, as a Poisson bootstrap (weights of
``metrics/resampling.py``, the same for any batch size, worker count or number of ranks); each
need's value on a replicate is recomputed by its reducer from what the side reduced for it
(``Reducer.resampling``/``resampled``: a Gaussian from the weighted feature bank, a bank by
repeating its rows, the Inception Score's split sums from their streamed weighted copies). The
metrics then run on those values through the one compute loop, B times; the interval at level L
comes from the ((1 - L)/2, (1 + L)/2) quantiles of the B values (``interval_of``: the basic
bootstrap by default).

A side that cannot be resampled (a statistics file without features) stays fixed: every
replicate sees its values, and the interval then reflects the other side's sampling only.

A side's images are numbered from its ``offset`` in the weight streams: 0 for a whole source;
for a class of a ``--per-class`` run, the images of the classes before it, so that a replicate
draws every image of a side (of every class) independently, as a bootstrap of the whole set
would, and the classes' values on replicate r can be combined (``intra_fid``'s).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import IntervalOptions
from ..errors import GanMetricsError
from ..metrics.base import Metric, Need, Reduced
from ..metrics.resampling import GENERATED, REFERENCE, WEIGHT_BLOCK, poisson_weights, replicate_sizes
from .compute import Fixed, metric_outputs
from .plan import Plan

if TYPE_CHECKING:
    import torch


def check_replicate_counts(metrics: list[Metric], n_a: int | None, n_b: int | None, interval: IntervalOptions,
                           resample_a: bool, offsets: tuple[int, int] = (0, 0)) -> None:
    """Refuse, before any image is read, a request some bootstrap replicate cannot meet: each
    metric's ``check_counts`` on each replicate's image counts (e.g. KID's subset size against
    a resampled side that drew fewer images than the side holds); ``offsets``: the sides' first
    image numbers in the weight streams."""
    if n_b is None:
        return
    replicates, seed = interval.replicates, interval.seed
    sizes_b = replicate_sizes(seed, GENERATED, replicates, n_b, offsets[1])
    sizes_a = replicate_sizes(seed, REFERENCE, replicates, n_a, offsets[0]) if resample_a and n_a is not None else None
    for metric in metrics:
        for r in range(replicates):
            size_a = None if metric.sides == 1 else n_a if sizes_a is None else int(sizes_a[r])
            try:
                metric.check_counts(size_a, int(sizes_b[r]))
            except GanMetricsError as err:
                both = f" and the {n_a} reference ones as {size_a}" if sizes_a is not None and metric.sides == 2 else ""
                raise GanMetricsError(f"--ci: bootstrap replicate {r + 1} of {replicates} resamples the {n_b} generated "
                                      f"images as {sizes_b[r]}{both} (a Poisson number of draws): {err}") from None


class SideResampler:
    """One side's reduced values on bootstrap replicates (``values(needs)`` of the current one,
    set by ``at(r)``).

    ``reduced``: the side's {need: value}, holding each need's ``resampling`` need; ``stream``:
    its weight stream (REFERENCE, GENERATED); ``device``: where Gaussians are recomputed (banks
    are moved there once); ``offset``: the number of its first image in the stream. A
    replicate's values are kept until the next replicate (metrics sharing a need share them);
    weights are drawn ``WEIGHT_BLOCK`` replicates at a time.
    """

    def __init__(self, reduced: Reduced, stream: int, replicates: int, seed: int, device: torch.device | None = None,
                 offset: int = 0):
        import torch

        self.reduced, self.stream, self.replicates, self.seed, self.offset = reduced, stream, replicates, seed, offset
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._sources: dict[tuple, Any] = {}
        self._weight_block: tuple[int, int, np.ndarray] | None = None  # (first replicate, count, weights)
        self._replicate, self._values = None, {}

    def at(self, r: int) -> SideResampler:
        """This side on replicate ``r``."""
        if r != self._replicate:
            self._replicate, self._values = r, {}
        return self

    def _weights(self, count: int) -> np.ndarray:
        """The current replicate's weights of a side of ``count`` images, int64 (count,)."""
        r, block = self._replicate, self._weight_block
        if block is None or block[1] != count or not block[0] <= r < block[0] + len(block[2]):
            first = r - r % WEIGHT_BLOCK
            replicates = range(first, min(first + WEIGHT_BLOCK, self.replicates))
            positions = np.arange(self.offset, self.offset + count)
            block = self._weight_block = first, count, poisson_weights(self.seed, self.stream, replicates, positions)
        return block[2][r - block[0]]

    def _resampled(self, need: Need) -> Any:
        resampling = need.reducer.resampling(need, self.stream, self.replicates, self.seed)
        key = (need.reducer, resampling)
        if key not in self._sources:
            self._sources[key] = need.reducer.prepare_resampling(self.reduced[resampling], self.device)
        return need.reducer.resampled(need, self._sources[key], self._replicate, self._weights, self.device)

    def values(self, needs: Iterable[Need]) -> dict[Need, Any]:
        """{need: its value on the current replicate} for ``needs``."""
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


def bootstrap_draws(plan: Plan, a: Reduced | None, b: Reduced, resample_a: bool, device: torch.device | None = None,
                    offsets: tuple[int, int] = (0, 0)) -> dict[str, np.ndarray]:
    """{result key: its values on each bootstrap replicate, float64 (B,)} for each interval key
    of the plan's bootstrapped metrics, from ``plan.interval.replicates`` replicates of the
    reference side ``a`` (fixed unless ``resample_a``) and the generated side ``b``, whose
    reduced values hold the resampling need of each need of these metrics
    (``Plan.side_needs``); ``offsets``: the sides' first image numbers in the weight streams."""
    interval, metrics = plan.interval, plan.bootstrapped
    replicates = interval.replicates
    side_a = None if a is None else \
        SideResampler(a, REFERENCE, replicates, interval.seed, device, offsets[0]) if resample_a else Fixed(a)
    side_b = SideResampler(b, GENERATED, replicates, interval.seed, device, offsets[1])
    draws = {metric.result_key(key): np.empty(replicates) for metric in metrics for key in metric.interval_keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run's own values have warned already (few images, ...)
        for r in range(replicates):
            for metric in metrics:
                try:
                    (_, out, _, _), = metric_outputs(plan, [metric], side_a and side_a.at(r), side_b.at(r), device)
                except GanMetricsError as err:
                    raise GanMetricsError(f"{metric.label} on bootstrap replicate {r + 1} of {replicates}: {err}") from None
                for key in metric.interval_keys:
                    draws[metric.result_key(key)][r] = out[key]
    return draws


def intervals_of(draws: Mapping[str, np.ndarray], values: Mapping[str, float],
                 interval: IntervalOptions) -> dict[str, float]:
    """{"<key>_ci_low", "<key>_ci_high"} of each key of ``draws`` (its bootstrap values) about
    its value in ``values`` (``interval_of``)."""
    result = {}
    for key, draw in draws.items():
        result[f"{key}_ci_low"], result[f"{key}_ci_high"] = interval_of(draw, values[key], interval.level, interval.method)
    return result
