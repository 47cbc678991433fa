"""What a bootstrap over images draws: each image's weight in each replicate.

A replicate resamples each side's images with replacement, as a Poisson bootstrap: image i of
a side enters replicate r ``w`` times, w ~ Poisson(1), drawn from a counter-based generator
keyed by (seed, side, r, i) (``poisson_weights``). A weight depends on nothing else, so the
replicates are the same for any batch size, worker count or number of ranks, and any one
image's weight can be drawn alone. The reducers say how each of their values is recomputed on
a replicate (``base.Reducer.resampled``: a Gaussian from the weighted feature bank,
``reducers.weighted_gaussian``); ``evaluation/intervals.py`` runs the replicates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

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


def replicate_sizes(seed: int, stream: int, replicates: int, count: int, offset: int = 0) -> np.ndarray:
    """The image count of each bootstrap replicate of a side of ``count`` images numbered from
    ``offset``, int64 (R,): known before any image is read (a Poisson(count) number, the sum of
    the weights)."""
    positions = np.arange(offset, offset + count)
    return np.concatenate([poisson_weights(seed, stream, range(first, min(first + WEIGHT_BLOCK, replicates)),
                                           positions).sum(axis=1) for first in range(0, replicates, WEIGHT_BLOCK)])
