"""Improved precision and recall (Kynkäänniemi et al. 2019) of an encoder's embedding (the
Inception's pool3 by default).

Each set's features are covered by k-NN balls (``neighbours.knn_radii``). Precision: the share
of generated features inside some ball of the reference set; recall: the share of reference
features inside some ball of the generated set; inside means distance <= radius, as the paper,
torch-fidelity and ADM compare. Two variants (``neighbours.VARIANTS``):

- ``exact`` (default): float32 Euclidean distances as torch-fidelity 0.4.0's
  ``prc_features_to_metric(gen, real, prc_neighborhood=k, prc_batch_size=10000,
  save_cpu_ram=True)``, over its blocks and in its orientation (each membership sweep has the
  queries as rows: two cross sweeps), so the same features give the same counts;
- ``adm``: the float16 squared distances of OpenAI's guided-diffusion evaluator
  (``ManifoldEstimator``), in its blocks, with one cross sweep whose rows are the reference (its
  ``evaluate_pr``): the numbers ADM-style papers report.

Both sides keep every feature (``FeatureBank``: 4 D bytes an image, 8 KiB at D = 2048) and their radii (a
derived value, cached with the reference); the distances stream in blocks (memory bound in
``neighbours``). Values are counts over N as float64 (torch-fidelity reports the float32 of the
same count over N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .neighbours import (BLOCK, VARIANTS, as_features, inside_balls, mutually_inside, radii_need,
                         require_more_than_k)

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor


def precision_recall(reference: np.ndarray, reference_radii: np.ndarray, generated: np.ndarray,
                     generated_radii: np.ndarray, variant: str = "exact", device: torch.device | str | None = None,
                     block: int = BLOCK) -> tuple[float, float]:
    """(precision, recall) of float32 ``generated`` (N_g, D) features against ``reference``
    (N_r, D) features, given each set's k-NN radii (``neighbours.knn_radii`` of the same
    ``variant``); computed on ``device`` (None: the CPU) in blocks of ``block`` x ``block``."""
    ref, gen = as_features(reference, device), as_features(generated, device)
    ref_radii, gen_radii = as_features(reference_radii, device), as_features(generated_radii, device)
    if variant == "adm":
        ref_inside, gen_inside = mutually_inside(ref, ref_radii, gen, gen_radii, variant, block)
    else:
        gen_inside = inside_balls(gen, ref, ref_radii, variant, block)
        ref_inside = inside_balls(ref, gen, gen_radii, variant, block)
    return int(gen_inside.sum()) / len(gen), int(ref_inside.sum()) / len(ref)


@dataclass(frozen=True)
class PrecisionRecall(Metric):
    """Precision and recall of embeddings with k-NN balls of ``pr_k`` (3) and the distances of
    ``pr_variant`` (exact or adm). Each side needs more than ``pr_k`` images."""

    name = "pr"
    sides = 2
    keys = ("precision", "recall")
    pr_k: int = option(3, "P/R: neighbours that set each feature's ball (k of the k-NN radius).")
    pr_variant: str = option("exact", "P/R distances: exact (as torch-fidelity) or adm (float16, as the ADM evaluator).")

    def __post_init__(self):
        if self.pr_k < 1:
            raise GanMetricsError(f"--pr-k must be at least 1, got {self.pr_k}")
        if self.pr_variant not in VARIANTS:
            raise GanMetricsError(f"--pr-variant {self.pr_variant!r} is unknown: use one of {', '.join(VARIANTS)}")

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        radii = radii_need(extractor.name, extractor.default_feature(self), self.pr_k, self.pr_variant)
        return [radii.source, radii]

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        require_more_than_k(self.pr_k, "--pr-k", "P/R", {"reference": n_a, "generated": n_b})

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        bank, radii = a  # as ``needs`` lists them
        precision, recall = precision_recall(a[bank], a[radii], b[bank], b[radii], self.pr_variant, device)
        return {"precision": precision, "recall": recall}
