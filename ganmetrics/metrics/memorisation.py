"""Memorisation checks: for each generated image its nearest reference image, and how that
distance compares with the reference image's own nearest-neighbour distance.

Over reference features r_j (N of them, N ≥ 2) and generated features g_i (M), with Euclidean
distances computed as dgm-eval computes them (``torch.cdist`` in float32):

- d1(i) = min_j ‖g_i − r_j‖, reached at j(i) (the first such j on ties, as ``torch.min``);
- d2(j) = min_{j' ≠ j} ‖r_j − r_j'‖, each reference image's distance to its nearest other one;
- ``authpct`` = 100 · #{i : d2(j(i)) < d1(i)} / M: the percentage of generated images farther
  from their nearest reference image than that image is from its own nearest neighbour, as
  dgm-eval's ``compute_authpct`` (layer6ai-labs/dgm-eval, ``dgm_eval/metrics/authpct.py``
  lines 4-22, after Alaa et al. 2022's authenticity), including its float32 division;
- ``closer_fraction`` = #{i : d1(i) < d2(j(i))} / M: the fraction of generated images closer to
  their nearest reference image than any other reference image is (strictly; a generated image
  at exactly d2 counts in neither). Exact copies have d1 = 0.
``closest_pairs`` lists the K generated images nearest to the reference, closest first, with
their nearest reference images: the candidates to look at.

Memory: distances are computed ``block`` x ``block`` at a time (``BLOCK`` = 10,000, the
package's k-NN block), reference features as rows and generated ones as columns, as dgm-eval's
``cdist(train, gen)``: at most 4·B² + 16·B·D bytes live (one float32 distance block and
``cdist``'s widened copies of its two blocks: 0.73 GB at B = 10,000, D = 2048), beyond the
features themselves (4·(N + M)·D bytes on the device) and O(N + M) nearest indices and
distances. dgm-eval holds two full matrices (N² + N·M floats: 20 GB at 50,000 each).

``_sweep`` is ``neighbours.sweep`` with its ``exact`` distances (torch-fidelity's
``torch.cdist``, the same call as dgm-eval's) written out here until that module is ported;
the functions below take it as their only blocked loop, so switching is one import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError

if TYPE_CHECKING:
    import torch

BLOCK = 10_000
"""Rows and columns of a distance block."""


def _sweep(rows: torch.Tensor, cols: torch.Tensor, block: int,
           visit: Callable[[slice, slice, torch.Tensor], None]) -> None:
    """``visit(row slice, column slice, distances)`` for every block of at most ``block`` x
    ``block`` float32 Euclidean distances (``torch.cdist``) between ``rows`` (N, D) and
    ``cols`` (M, D), row blocks outer, each freed before the next is made."""
    import torch

    for r in range(0, len(rows), block):
        for c in range(0, len(cols), block):
            visit(slice(r, r + block), slice(c, c + block), torch.cdist(rows[r:r + block], cols[c:c + block]))


def _features(x, device) -> torch.Tensor:
    import torch

    return torch.as_tensor(x).to(torch.device("cpu") if device is None else device, torch.float32)


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

    _sweep(rows, cols, block, keep_smallest)
    return best, where


def nearest_references(generated, reference, block: int = BLOCK,
                       device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each generated image's nearest reference image: (int64 (M,) its index, float32 (M,) the
    distance) from float features generated (M, D) and reference (N, D) (arrays or tensors),
    computed on ``device`` (None: the CPU) in blocks."""
    distances, indices = _column_minima(_features(reference, device), _features(generated, device), block)
    return indices.cpu().numpy(), distances.cpu().numpy()


def reference_gaps(reference, block: int = BLOCK, device: torch.device | None = None) -> np.ndarray:
    """float32 (N,): each reference image's distance to its nearest other reference image
    (infinity where N = 1). A value of the reference set alone: cacheable with it."""
    features = _features(reference, device)
    return _column_minima(features, features, block, exclude_diagonal=True)[0].cpu().numpy()


@dataclass(frozen=True)
class Memorisation:
    """``authpct`` (percent, dgm-eval's), ``closer_fraction`` (in [0, 1]) and the per-image
    values they come from: ``nearest`` int64 (M,) and ``distance`` float32 (M,) (each generated
    image's nearest reference image and d1), ``gaps`` float32 (N,) (each reference image's d2)."""

    authpct: float
    closer_fraction: float
    nearest: np.ndarray
    distance: np.ndarray
    gaps: np.ndarray


def memorisation(generated, reference, block: int = BLOCK, device: torch.device | None = None,
                 gaps: np.ndarray | None = None) -> Memorisation:
    """``Memorisation`` of generated features (M, D) against reference features (N, D);
    ``gaps``: the reference's ``reference_gaps``, where already known. At least 2 reference
    images and 1 generated image, or a one-line error."""
    if len(reference) < 2:
        raise GanMetricsError(f"memorisation needs at least 2 reference images (each one's nearest other one), "
                              f"got {len(reference)}: add reference images")
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
    return Memorisation(authpct, closer_fraction, nearest, distance, gaps)


def closest_pairs(nearest: np.ndarray, distance: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` generated images closest to the reference (all of them where fewer), closest
    first (ties by generated index), as (generated index, its nearest reference index,
    distance) from ``nearest_references``'s arrays: each generated image appears once, with
    its nearest reference image."""
    if k < 1:
        raise GanMetricsError(f"--nearest takes a positive number of pairs, got {k}: e.g. --nearest 20 FILE.csv")
    order = np.lexsort((np.arange(len(distance)), distance))[:k]
    return [(int(i), int(nearest[i]), float(distance[i])) for i in order]
