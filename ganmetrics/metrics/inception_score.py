"""Inception Score (Salimans et al. 2016) from per-split sums of class probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .reducers import SplitSums

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor


def inception_score_from_sums(
    counts: np.ndarray, prob_sums: np.ndarray, neg_entropy_sums: np.ndarray
) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split, from per-split sums; (mean, std) over splits.

    counts: (S,) images per split; prob_sums: (S, K) sum of p(y|x); neg_entropy_sums: (S,)
    sum over images of sum_y p log p. The KL is summed over classes and averaged over images,
    then exponentiated; std is NumPy's population std (ddof 0), as the original TF code.
    """
    import scipy.special  # slow to import: only where an IS is computed, not at start-up

    counts = np.asarray(counts, np.float64)
    if (counts < 1).any():
        raise GanMetricsError(
            f"an Inception Score split has no images ({int(counts.sum())} images for {len(counts)} splits): "
            "use more images or fewer --splits"
        )
    marginal = np.asarray(prob_sums, np.float64) / counts[:, None]
    marginal_neg_entropy = scipy.special.xlogy(marginal, marginal).sum(axis=1)
    mean_kl = np.asarray(neg_entropy_sums, np.float64) / counts - marginal_neg_entropy
    scores = np.exp(mean_kl)
    return float(scores.mean()), float(scores.std())


@dataclass(frozen=True)
class InceptionScore(Metric):
    """IS of a generated set: mean and population std over contiguous splits of the encoder's
    class logits (the Inception's unbiased ones): ``splits`` equal splits (the original TF code's), or with ``is_split_size``
    runs of that many images, the last one shorter (the ADM evaluator's, which reports the mean
    over splits of 5000). One-sided; streams (``SplitSums``)."""

    name = "is"
    sides = 1
    keys = ("is_mean", "is_std")
    interval_keys = ("is_mean",)
    role = "logits"
    splits: int = option(10, "IS: contiguous splits for mean ± std.")
    is_split_size: int | None = option(None, "IS: contiguous splits of this many images instead of --splits, the "
                                             "last one shorter (the ADM evaluator uses 5000).")

    def __post_init__(self):
        if self.splits < 1:
            raise GanMetricsError(f"--splits must be at least 1, got {self.splits}")
        if self.is_split_size is not None and self.is_split_size < 1:
            raise GanMetricsError(f"--is-split-size must be at least 1, got {self.is_split_size}")

    def _split_options(self) -> tuple:
        if self.is_split_size is None:
            return (("splits", self.splits),)
        return (("split_size", self.is_split_size),)

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), SplitSums, self._split_options())]

    @staticmethod
    def _sums(b: Reduced) -> tuple:
        (sums,) = b.values()
        return sums

    def compute(self, a: Reduced | None, b: Reduced, device: "torch.device | None" = None) -> dict[str, float]:
        mean, std = inception_score_from_sums(*self._sums(b))
        return {"is_mean": mean, "is_std": std}

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        """``splits``; with ``is_split_size`` also that, and ``splits`` the number of splits it made."""
        if self.is_split_size is None:
            return {"splits": self.splits}
        counts = self._sums(b)[0]
        return {"splits": len(counts), "is_split_size": self.is_split_size}
