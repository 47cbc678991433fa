"""Memorisation checks: for each generated image its nearest reference image, and how that
distance compares with the reference image's own nearest-neighbour distance.

Over reference features r_j (N of them, N ≥ 2) and generated features g_i (M), with Euclidean
distances computed as dgm-eval computes them (``torch.cdist`` in float32: ``neighbours``'
``exact`` distances):

- d1(i) = min_j ‖g_i − r_j‖, reached at j(i) (the first such j on ties, as ``torch.min``);
- d2(j) = min_{j' ≠ j} ‖r_j − r_j'‖, each reference image's distance to its nearest other one;
- ``authpct`` = 100 · #{i : d2(j(i)) < d1(i)} / M: the percentage of generated images farther
  from their nearest reference image than that image is from its own nearest neighbour, as
  dgm-eval's ``compute_authpct`` (layer6ai-labs/dgm-eval, ``dgm_eval/metrics/authpct.py``
  lines 4-22, after Alaa et al. 2022's authenticity), including its float32 division;
- ``closer_fraction`` = #{i : d1(i) < d2(j(i))} / M: the fraction of generated images closer to
  their nearest reference image than any other reference image is (strictly; a generated image
  at exactly d2 counts in neither).
``closest_pairs`` lists the K generated images nearest to the reference, closest first, with
their nearest reference images: the candidates to look at. The distances are float32
``cdist``'s product formula, as dgm-eval's: an exact copy is about sqrt(ε)·‖x‖ away
(ε = 2⁻²³; 0.003 for features of norm 10), not 0.

Memory: distances are computed ``block`` x ``block`` at a time (``BLOCK`` = 10,000, the
package's k-NN block), reference features as rows and generated ones as columns, as dgm-eval's
``cdist(train, gen)``: at most 4·B² + 16·B·D bytes live (one float32 distance block and
``cdist``'s widened copies of its two blocks: 0.73 GB at B = 10,000, D = 2048), beyond the
features themselves (4·(N + M)·D bytes on the device) and O(N + M) nearest indices and
distances. dgm-eval holds two full matrices (N² + N·M floats: 20 GB at 50,000 each).

As the metric ``memorisation`` (two-sided): the reference side keeps its feature bank and its
gaps d2 (``ReferenceGaps``: a derivation of the bank, cached with the reference like the k-NN
radii), a generated side its feature bank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, Reducer, option
from .neighbours import BLOCK, as_features, sweep
from .reducers import FeatureBank

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

DISTANCES = "exact"
"""How memorisation measures distances (``neighbours.DISTANCES``): ``torch.cdist``, as dgm-eval."""


def _column_minima(rows: torch.Tensor, cols: torch.Tensor, block: int,
                   exclude_diagonal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 (M,) the smallest distance in each column, int64 (M,) its row, the first on
    ties), over blocks; with ``exclude_diagonal`` (``rows`` is ``cols``) each row's distance
    to itself is infinity, as dgm-eval's ``fill_diagonal_(inf)``."""
    import torch

    best = torch.full((len(cols),), torch.inf, dtype=torch.float32, device=cols.device)
    where = torch.zeros(len(cols), dtype=torch.int64, device=cols.device)

    def keep_smallest(r: slice, c: slice, distances: torch.Tensor) -> None:
        if exclude_diagonal and r.start == c.start:
            distances.fill_diagonal_(torch.inf)
        values, indices = distances.min(dim=0)
        smaller = values < best[c]  # strictly: an earlier block's row wins a tie, as one torch.min would
        best[c] = torch.where(smaller, values, best[c])
        where[c] = torch.where(smaller, indices + r.start, where[c])

    sweep(rows, cols, DISTANCES, block, keep_smallest)
    return best, where


def nearest_references(generated, reference, block: int = BLOCK,
                       device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each generated image's nearest reference image: (int64 (M,) its index, float32 (M,) the
    distance) from float features generated (M, D) and reference (N, D) (arrays or tensors),
    computed on ``device`` (None: the CPU) in blocks."""
    distances, indices = _column_minima(as_features(reference, device), as_features(generated, device), block)
    return indices.cpu().numpy(), distances.cpu().numpy()


def reference_gaps(reference, block: int = BLOCK, device: torch.device | None = None) -> np.ndarray:
    """float32 (N,): each reference image's distance to its nearest other reference image
    (infinity where N = 1). A value of the reference set alone: cacheable with it."""
    features = as_features(reference, device)
    return _column_minima(features, features, block, exclude_diagonal=True)[0].cpu().numpy()


def require_references(count: int) -> None:
    """Refuse, in one line, a reference side of fewer than 2 images (no image has a nearest other one)."""
    if count < 2:
        raise GanMetricsError(f"memorisation needs at least 2 reference images (each one's nearest other one), "
                              f"got {count}: add reference images")


@dataclass(frozen=True)
class MemorisationResult:
    """``authpct`` (percent, dgm-eval's), ``closer_fraction`` (in [0, 1]) and the per-image
    values they come from: ``nearest`` int64 (M,) and ``distance`` float32 (M,) (each generated
    image's nearest reference image and d1), ``gaps`` float32 (N,) (each reference image's d2)."""

    authpct: float
    closer_fraction: float
    nearest: np.ndarray
    distance: np.ndarray
    gaps: np.ndarray


def memorisation(generated, reference, block: int = BLOCK, device: torch.device | None = None,
                 gaps: np.ndarray | None = None) -> MemorisationResult:
    """``MemorisationResult`` of generated features (M, D) against reference features (N, D);
    ``gaps``: the reference's ``reference_gaps``, where already known. At least 2 reference
    images and 1 generated image, or a one-line error."""
    require_references(len(reference))
    if len(generated) < 1:
        raise GanMetricsError("memorisation needs at least 1 generated image, got 0: add generated images")
    nearest, distance = nearest_references(generated, reference, block, device)
    if gaps is None:
        gaps = reference_gaps(reference, block, device)
    matched = gaps[nearest]
    authentic = int(np.count_nonzero(matched < distance))
    # dgm-eval: (100 * torch.sum(authen) / len(authen)).item(), an int64 over an int in float32.
    authpct = float(np.float32(100 * authentic) / np.float32(len(nearest)))
    closer_fraction = np.count_nonzero(distance < matched) / len(nearest)
    return MemorisationResult(authpct, closer_fraction, nearest, distance, gaps)


def closest_pairs(nearest: np.ndarray, distance: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` (≥ 1) generated images closest to the reference (all of them where fewer),
    closest first (ties by generated index), as (generated index, its nearest reference index,
    distance) from ``nearest_references``'s arrays: each generated image appears once, with
    its nearest reference image."""
    order = np.lexsort((np.arange(len(distance)), distance))[:k]
    return [(int(i), int(nearest[i]), float(distance[i])) for i in order]


class ReferenceGaps(Reducer):
    """A derivation of a ``FeatureBank``: each image's distance to its nearest other image of
    the set (``reference_gaps``), float32 (N,) NumPy. Costs one sweep of N x N distances, so
    the engine caches it with the reference side (4 bytes an image)."""

    kind: ClassVar[str] = "reference_gaps"
    value_fields = ("gaps",)
    source: ClassVar[type] = FeatureBank

    @classmethod
    def derive(cls, features: np.ndarray, device: torch.device | None) -> np.ndarray:
        return reference_gaps(features, device=device)

    @classmethod
    def value_arrays(cls, gaps: np.ndarray) -> dict[str, np.ndarray]:
        return {"gaps": np.asarray(gaps, np.float32)}

    @classmethod
    def value_of(cls, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return arrays["gaps"]


PAIRS = "memorisation_pairs"
"""The details key of ``nearest``'s pairs (``@ENCODER`` added off the default encoder), the key
the HTML report shows as the closest pairs (``report/__init__.py``)."""
NEAREST = 32
"""How many closest pairs the details hold unless asked otherwise: as many as the report shows."""


@dataclass(frozen=True)
class Memorisation(Metric):
    """``authpct`` and ``closer_fraction`` of each generated set against the reference, on the
    encoder's embedding (by default the Inception's pool3). With ``nearest`` K, the details
    hold the K closest pairs (``PAIRS``: [generated index, reference index, distance], closest
    first; ``NEAREST`` by default, none with None), which the report shows and ``eval --nearest
    K FILE.csv`` writes with the images' names."""

    name = "memorisation"
    sides = 2
    keys = ("authpct", "closer_fraction")
    nearest: int | None = option(NEAREST, "memorisation: the K generated images closest to a reference image, listed "
                                          "closest first with their nearest reference images (None: none).")

    def __post_init__(self):
        if self.nearest is not None and self.nearest < 1:
            raise GanMetricsError(f"--nearest takes a positive number of pairs, got {self.nearest}: "
                                  "e.g. --nearest 20 pairs.csv")

    def reference_needs(self, extractor: FeatureExtractor) -> list[Need]:
        bank = Need(extractor.name, extractor.default_feature(self), FeatureBank)
        return [bank, Need(bank.encoder, bank.feature, ReferenceGaps)]

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        if n_a is not None:
            require_references(n_a)

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict:
        bank, gaps = a  # as ``reference_needs`` lists them
        found = memorisation(b[bank], a[bank], device=device, gaps=a[gaps])
        out = {"authpct": found.authpct, "closer_fraction": found.closer_fraction}
        if self.nearest:
            out[PAIRS] = [list(pair) for pair in closest_pairs(found.nearest, found.distance, self.nearest)]
        return out
