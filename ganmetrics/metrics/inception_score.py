"""Inception Score (Salimans et al. 2016) from per-split sums of class probabilities."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.special

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .reducers import SplitSums

if TYPE_CHECKING:
    import torch


def inception_score_from_sums(
    counts: np.ndarray, prob_sums: np.ndarray, neg_entropy_sums: np.ndarray
) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split, from per-split sums; (mean, std) over splits.

    counts: (S,) images per split; prob_sums: (S, K) sum of p(y|x); neg_entropy_sums: (S,)
    sum over images of sum_y p log p. The KL is summed over classes and averaged over images,
    then exponentiated; std is NumPy's population std (ddof 0), as the original TF code.
    """
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
    """IS of a generated set: mean and population std over ``splits`` contiguous splits of the
    extractor's unbiased logits. One-sided; streams (``SplitSums``)."""

    name = "is"
    sides = 1
    keys = ("is_mean", "is_std")
    splits: int = option(10, "IS: contiguous splits for mean ± std.")

    def __post_init__(self):
        if self.splits < 1:
            raise GanMetricsError(f"--splits must be at least 1, got {self.splits}")

    def needs(self, extractor) -> list[Need]:
        return [Need(extractor.default_feature("is"), SplitSums, (("splits", self.splits),))]

    def compute(self, a: Reduced | None, b: Reduced, device: "torch.device | None" = None) -> dict[str, float]:
        (sums,) = (value for need, value in b.items() if need.reducer is SplitSums and need.options == (("splits", self.splits),))
        mean, std = inception_score_from_sums(*sums)
        return {"is_mean": mean, "is_std": std}
