"""k-nearest-neighbour balls of feature sets, computed block by block on a device: what
precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020) are made of.

A set's balls: each feature's radius is its distance to its k-th nearest neighbour in its own
set, the feature itself counted as the nearest (the (k+1)-th smallest distance of its row, as
every reference tool computes it). Distances are computed one of three ways (``DISTANCES``),
each that of a reference tool, so the same features give the same distances:

- ``exact``: Euclidean, float32, by ``torch.cdist`` as torch-fidelity 0.4.0 calls it (the
  product formula sqrt(max(|x|² - 2 xᵀy + |y|², 0)); for two blocks of at most 25 rows each,
  torch's direct formula), over the same blocks: torch-fidelity's distances bit for bit on the
  same machine;
- ``adm``: squared Euclidean with the float16 arithmetic of OpenAI's guided-diffusion evaluator
  (``DistanceBlock``): the features, their squares, the squared norms and the products xᵀy
  rounded to float16, the sums and products accumulated in float32 (as TensorFlow's float16
  matrix product does on a GPU by default), then max((|x|² - 2 xᵀy) + |y|², 0) in float16. A block holding a NaN or an
  infinity (a float16 overflow: squared norms or distances above 65504) is computed again in
  float32, as ADM's graph does. ADM's max(·, 0) turns -inf (a product that overflows while
  both norms do not) into 0, so such a pair counts as one point; kept;
- ``prdc``: Euclidean as scikit-learn's ``euclidean_distances`` computes it for float32
  features (which prdc calls): (-2 xᵀy + |x|²) + |y|² in float64, rounded to float32, clipped
  at 0, square root in float32, and a feature's distance to itself 0.

Memory: distances are never held for more than one block of B x B pairs (``BLOCK`` = 10,000, as
torch-fidelity's and ADM's), whatever the set sizes. A block's live memory is at most
6·B² + 12·B·D bytes for ``exact`` and ``adm`` (float32 distances, float16 copies, the product
formula's widened inputs, a comparison mask: 0.85 GB at B = 10,000 and D = 2048) and
13·B² + 16·B·D bytes for ``prdc`` (float64: 1.6 GB); glibc may keep up to about as much again
cached, not growing with N. Beyond that only the features themselves (4·N·D bytes per
set, on the device) and O(N) radii and flags: precision/recall of 50,000 against 50,000 pool3
features needs about 3 GB in all, where one N x N float32 matrix would be 10 GB.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import GanMetricsError
from .base import Need, Reducer
from .reducers import FeatureBank

if TYPE_CHECKING:
    import torch

BLOCK = 10_000
"""Rows and columns of a distance block (torch-fidelity's ``prc_batch_size``, ADM's batch sizes)."""


def _squared_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """max((|u|² - 2 u vᵀ) + |v|², 0), (len(u), len(v)), in the dtype of u and v (float16 or
    float32): each square, squared norm and product rounded to it, accumulated in float32."""
    norm_u = u.square().float().sum(dim=1).to(u.dtype)
    norm_v = v.square().float().sum(dim=1).to(v.dtype)
    squared = (u.float() @ v.float().T).to(u.dtype)
    # -2 xᵀy + |x|² is |x|² - 2 xᵀy exactly (IEEE addition commutes; doubling is exact), in place.
    squared.mul_(-2).add_(norm_u[:, None]).add_(norm_v[None, :])
    return squared.clamp_min_(0)  # NaN stays NaN, -inf becomes 0, as TF's maximum


def adm_squared_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """ADM's ``DistanceBlock``: float32 (len(u), len(v)) squared distances of float32 features
    u (n, D) and v (m, D), computed in float16, or in float32 where any float16 value is not finite."""
    import torch

    squared = _squared_distances(u.half(), v.half())
    if bool(torch.isfinite(squared).all()):
        return squared.float()
    del squared
    return _squared_distances(u, v)


def prdc_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """scikit-learn's ``euclidean_distances`` of float32 features u (n, D) and v (m, D), as prdc
    gets them: float32 (len(u), len(v)) square roots of float64 (-2 u vᵀ + |u|²) + |v|²
    rounded to float32 and clipped at 0."""
    u64, v64 = u.double(), v.double()
    squared = u64 @ v64.T
    squared.mul_(-2).add_(u64.square().sum(dim=1)[:, None]).add_(v64.square().sum(dim=1)[None, :])
    return squared.float().clamp_min_(0).sqrt_()


def exact_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """float32 (len(u), len(v)) Euclidean distances of float32 features u (n, D) and v (m, D):
    ``torch.cdist``, as torch-fidelity computes them."""
    import torch

    return torch.cdist(u, v)


DISTANCES = {"exact": exact_distances, "adm": adm_squared_distances, "prdc": prdc_distances}
"""How distances are computed, by name: each a function of float32 features u (n, D), v (m, D)
-> float32 (n, m) on their device."""
VARIANTS = ("exact", "adm")
"""The distances precision/recall offers (``--pr-variant``)."""


def distances(u: torch.Tensor, v: torch.Tensor, kind: str) -> torch.Tensor:
    """float32 (len(u), len(v)) distances of float32 features u (n, D) and v (m, D), computed
    as ``DISTANCES[kind]`` says, on their device."""
    if kind not in DISTANCES:
        raise ValueError(f"unknown distances {kind!r}: use one of {', '.join(DISTANCES)}")
    return DISTANCES[kind](u, v)


def require_more_than_k(k: int, option: str, metric: str, counts: dict[str, int | None]) -> None:
    """Refuse, in one line, a side ({"reference": n, ...}; None: unknown) of at most ``k``
    images, which has no k-NN radii; ``option`` names k's option, ``metric`` the metric."""
    for side, n in counts.items():
        if n is not None and n <= k:
            raise GanMetricsError(
                f"{metric} with {option} {k} needs more than {k} images on the {side} side (each image's {k} "
                f"nearest neighbours besides itself), got {n}: lower {option} or add images"
            )


def sweep(rows: torch.Tensor, cols: torch.Tensor, kind: str, block: int,
          visit: Callable[[slice, slice, torch.Tensor], None]) -> None:
    """Call ``visit(row slice, column slice, distances)`` for every block of at most ``block``
    rows by ``block`` columns of the ``kind`` distances between ``rows`` (N, D) and ``cols``
    (M, D), row blocks outer, each block freed before the next is computed: memory of one block."""
    for r in range(0, len(rows), block):
        for c in range(0, len(cols), block):
            visit(slice(r, r + block), slice(c, c + block), distances(rows[r:r + block], cols[c:c + block], kind))


def knn_radii(features: torch.Tensor, k: int, kind: str, block: int = BLOCK) -> torch.Tensor:
    """float32 (N,) radii of the k-NN balls of ``features`` (N, D), N > k: each row's (k+1)-th
    smallest ``kind`` distance to all rows, itself included (at distance 0 for ``prdc``, whose
    scikit-learn zeroes it); on the features' device."""
    import torch

    n = len(features)
    if not 0 < k < n:
        raise ValueError(f"k-NN radii need 0 < k < N, got k={k} for N={n}")
    nearest = torch.full((n, k + 1), math.inf, dtype=torch.float32, device=features.device)

    def keep_nearest(r: slice, c: slice, block_distances: torch.Tensor) -> None:
        if kind == "prdc" and r.start == c.start:  # a diagonal block: each row meets itself
            block_distances.fill_diagonal_(0)
        smallest = block_distances.topk(min(k + 1, block_distances.shape[1]), dim=1, largest=False).values
        nearest[r] = torch.cat([nearest[r], smallest], dim=1).topk(k + 1, dim=1, largest=False).values

    sweep(features, features, kind, block, keep_nearest)
    return nearest[:, k].contiguous()


def inside_balls(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, kind: str,
                 block: int = BLOCK) -> torch.Tensor:
    """bool (Nq,): whether each of ``queries`` (Nq, D) lies in some ball of ``centres`` (N, D)
    with ``radii`` (N,): ``kind`` distance <= radius (as torch-fidelity, ADM and the paper)."""
    import torch

    inside = torch.zeros(len(queries), dtype=torch.bool, device=queries.device)

    def mark(r: slice, c: slice, block_distances: torch.Tensor) -> None:
        inside[r] |= (block_distances <= radii[c]).any(dim=1)

    sweep(queries, centres, kind, block, mark)
    return inside


def mutually_inside(a: torch.Tensor, radii_a: torch.Tensor, b: torch.Tensor, radii_b: torch.Tensor, kind: str,
                    block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """(bool (Na,) whether each of ``a`` lies in some ball of ``b``, bool (Nb,) whether each of
    ``b`` lies in some ball of ``a``) from one sweep with ``a`` as rows (ADM's
    ``ManifoldEstimator.evaluate_pr``, whose rows are the reference): ``kind`` distance <= radius."""
    import torch

    a_inside = torch.zeros(len(a), dtype=torch.bool, device=a.device)
    b_inside = torch.zeros(len(b), dtype=torch.bool, device=b.device)

    def mark(r: slice, c: slice, block_distances: torch.Tensor) -> None:
        a_inside[r] |= (block_distances <= radii_b[c]).any(dim=1)
        b_inside[c] |= (block_distances <= radii_a[r, None]).any(dim=0)

    sweep(a, b, kind, block, mark)
    return a_inside, b_inside


def as_features(features: np.ndarray | torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    """Features as a float32 tensor on ``device`` (None: the CPU), without a copy where possible."""
    import torch

    return torch.as_tensor(features).to(torch.device("cpu") if device is None else device, torch.float32)


class NeighbourRadii(Reducer):
    """A derivation of a ``FeatureBank``: the radii of its k-NN balls (``knn_radii``) for the
    options ``k`` and ``distances`` (a kind of ``DISTANCES``), float32 (N,) NumPy. Costs one
    sweep of N x N distances, so the engine caches it with the reference side (4 bytes an image)."""

    kind: ClassVar[str] = "neighbour_radii"
    value_fields = ("radii",)
    source: ClassVar[type] = FeatureBank

    @classmethod
    def derive(cls, features: np.ndarray, device: torch.device | None, k: int, distances: str) -> np.ndarray:
        return knn_radii(as_features(features, device), k, distances).cpu().numpy()

    @classmethod
    def value_arrays(cls, radii: np.ndarray) -> dict[str, np.ndarray]:
        return {"radii": np.asarray(radii, np.float32)}

    @classmethod
    def value_of(cls, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return arrays["radii"]


def radii_need(encoder: str, feature: str, k: int, kind: str) -> Need:
    """The need of the k-NN radii of ``encoder``'s ``feature`` bank with ``kind`` distances (one
    spelling, so metrics share it)."""
    return Need(encoder, feature, NeighbourRadii, (("k", k), ("distances", kind)))
