"""The Vendi score (Friedman & Dieng 2023) with the cosine kernel, streamed, in exact arithmetic.

With n features x_i (rows of X), each divided by its Euclidean norm (x̂_i; a zero row stays
zero, as scikit-learn's ``normalize``, which vertaix/Vendi-Score's ``score_X`` and
``score_dual`` call), K = X̂ X̂ᵀ and λ the eigenvalues of K / n:

    VS = exp(-Σ λ log λ)   over λ > 0, natural log (q = 1),

what ``vendi_score.vendi.score(samples, k=cosine)`` computes. The nonzero eigenvalues of
X̂ X̂ᵀ / n (n x n) are those of X̂ᵀ X̂ / n (D x D, as ``score_dual``), and X̂ᵀ X̂ = Σ_i x̂_i x̂_iᵀ
is a sum over images: ``CosineGram`` keeps it, whatever the image count, and merges by addition.

Exact, so the same bits for any split of the images. Float sums depend on their order, so the
Gram matrix is not summed in floats. Each x̂ (float64) is split into three integers of at most
22 bits, x̂ = (p0 + p1 2⁻²² + p2 2⁻⁴⁴) 2⁻²² to within 2⁻⁶⁷ (``PIECE_BITS``): every x̂ entry
above 2⁻¹⁴ keeps all its 53 bits. Products of pieces over at most ``ROWS`` = 256 images are
then integers below 2⁵³, which a float64 matrix product computes exactly in any order, on any
device and with any BLAS; they are added into a fixed-point integer accumulator (``hi``, ``lo``
int64, units 2⁻²⁸ and 2⁻⁸⁸), where addition is exact and associative. The sum kept is
Σ_i q(x̂_i), the same for every image whatever batch, worker, rank or shard file it came
through: state and score are the same bits for any batch size and any split into parts merged
in any order. It is the Gram matrix of the pieces without their smallest products (p1 p2 and
p2 p2, below 2⁻⁶⁷ an entry): within 2⁻⁶⁵ of X̂ᵀ X̂ per image and entry, where the reference's
float64 product rounds each entry of X̂ᵀ X̂ / n by up to 2⁻⁵³ of its size.

Range and memory: exact up to 2³⁴ images (|X̂ᵀ X̂| ≤ n, ``hi`` below 2⁶³). The state is two
int64 D x D matrices (16·D² bytes: 67 MB at D = 2048, 268 MB at D = 4096; only their upper
triangle is used), plus, while a batch is added, the pieces of ``ROWS`` images (25 MB at
D = 4096) and the products of one slab with their integer copies (about 12 x ``SLAB`` x D x 8
bytes: 100 MB at D = 4096). Cost: 3·D² multiply-adds an image (six products of pieces, each
over the upper triangle).

``--ci``: each bootstrap replicate's moment, X̂ᵀ W X̂ / Σ w with the replicate's image weights
W, is recomputed from the side's feature bank in image order (``weighted_cosine_moment``, in
float64: n·D² multiply-adds and one eigenvalue solve a replicate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, Reducer
from .reducers import FeatureBank

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

PIECE_BITS = 22
"""Bits of each of the three integer pieces of a normalised feature entry (module docstring)."""
ROWS = 256
"""Images multiplied at once: |Σ p_a p_b| ≤ 256 · 2²² · 2²² = 2⁵², exact in float64."""
SLAB = 256
"""Rows of the D x D Gram matrix computed at once (only columns from the slab's first on)."""
LO_BITS = 60
"""``lo`` holds the accumulator's bits below 2⁻²⁸ (units 2⁻⁸⁸), in [0, 2⁶⁰); ``hi`` the rest."""
HI_UNIT = 2.0 ** (LO_BITS - 88)
LO_UNIT = 2.0 ** -88


def normalised_pieces(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of float features (N, D) divided by their Euclidean norms (zero rows stay zero), as
    three float64 (N, D) tensors of integers p0 (|p0| ≤ 2²²), p1, p2 (≤ 2²¹) with
    x̂ = (p0 + p1 2⁻²² + p2 2⁻⁴⁴) 2⁻²² to within 2⁻⁶⁷.

    Every step is an element-wise IEEE operation, so each row's pieces are the same bits in any
    batch and on any device: the squared norm is summed as a fixed binary tree (halving the
    row, padded with zeros to a power of two), not by a reduction whose order depends on the
    tensor's shape. Subtracting the nearest integer is exact, so the pieces are exact."""
    import torch

    x = x.to(torch.float64)
    squares = x.square()
    width = 1 << max(0, (x.shape[1] - 1).bit_length())
    squares = torch.nn.functional.pad(squares, (0, width - x.shape[1]))
    while width > 1:
        width //= 2
        squares = squares[:, :width] + squares[:, width:]
    norms = squares.sqrt_()
    scaled = x / torch.where(norms > 0, norms, 1.0) * 2.0 ** PIECE_BITS
    p0 = scaled.round()
    rest = (scaled - p0).mul_(2.0 ** PIECE_BITS)
    p1 = rest.round()
    p2 = rest.sub_(p1).mul_(2.0 ** PIECE_BITS).round_()
    return p0, p1, p2


@dataclass(frozen=True)
class CosineMoment:
    """The reduced value of ``CosineGram``: ``moment`` = X̂ᵀ X̂ / n, float64 (D, D), of ``count`` = n images."""

    moment: np.ndarray
    count: int


class CosineGram(Reducer):
    """X̂ᵀ X̂ of L2-normalised features, exact (module docstring), and the image count.

    ``hi`` and ``lo`` (int64, (D, D), upper triangle) hold Σ_i x̂_i x̂_iᵀ as hi · 2⁻²⁸ + lo · 2⁻⁸⁸
    with lo in [0, 2⁶⁰); ``count`` the images; whether every feature was finite is checked
    when the state is read (no synchronisation with a GPU per batch). Features wait until
    ``ROWS`` of them have come (fewer than ``ROWS`` plus one batch: 4 MB at D = 4096 beyond
    the batch), so that the D x D integer work is done once per ``ROWS`` images, not per
    batch; the sum does not depend on how they are grouped, and reading the state adds them."""

    kind: ClassVar[str] = "cosine_gram"
    state_fields = ("count", "hi", "lo")

    @classmethod
    def create(cls, dims: int, total: int | None, device: torch.device | str, **options) -> CosineGram:
        return cls(dims, device)

    def __init__(self, dims: int, device: torch.device | str = "cpu"):
        import torch

        self.dims = dims
        self.count = 0
        self.hi = torch.zeros(dims, dims, dtype=torch.int64, device=device)
        self.lo = torch.zeros(dims, dims, dtype=torch.int64, device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.waiting: list[torch.Tensor] = []

    def update(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Add float features (N, D) on any device (the sum does not depend on ``positions``)."""
        import torch

        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"expected features of shape (N, {self.dims}), got {tuple(x.shape)}")
        x = x.detach().to(self.hi.device)
        self.finite &= torch.isfinite(x).all()
        self.waiting.append(torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))  # refused when read
        self.count += len(x)
        if sum(map(len, self.waiting)) >= ROWS:
            self._add_waiting(keep_partial=True)

    def _add_waiting(self, keep_partial: bool = False) -> None:
        """Add the waiting features ``ROWS`` at a time (with ``keep_partial``, fewer than
        ``ROWS`` left over keep waiting)."""
        import torch

        if not self.waiting:
            return
        x = torch.cat(self.waiting)
        end = len(x) - len(x) % ROWS if keep_partial else len(x)
        for start in range(0, end, ROWS):
            self._add_products(*normalised_pieces(x[start:start + ROWS]))
        self.waiting = [x[end:]] if end < len(x) else []

    def _add_products(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> None:
        """Add Σ x̂ x̂ᵀ of at most ``ROWS`` images from their pieces, row slab by row slab, each
        from its first row's column on: the products of pieces of equal weight summed (all
        integers below 2⁵³, so every sum is exact) and added to ``hi``/``lo`` by integer shifts."""
        import torch

        mask_44 = (1 << (LO_BITS - 44)) - 1  # p0 p0 (units 2⁻⁴⁴): its bits below 2⁻²⁸ go to lo
        mask_66 = (1 << (LO_BITS - 22)) - 1  # p0 p1 + p1 p0 (units 2⁻⁶⁶): likewise
        for start in range(0, self.dims, SLAB):
            rows, cols = slice(start, start + SLAB), slice(start, None)
            first = p0[:, rows].T @ torch.cat([p0[:, cols], p1[:, cols], p2[:, cols]], dim=1)
            second = p1[:, rows].T @ torch.cat([p0[:, cols], p1[:, cols]], dim=1)
            third = p2[:, rows].T @ p0[:, cols]
            width = self.dims - start
            units_44 = first[:, :width].to(torch.int64)
            units_66 = (first[:, width:2 * width] + second[:, :width]).to(torch.int64)
            units_88 = (first[:, 2 * width:] + second[:, width:] + third).to(torch.int64)
            high = (units_44 >> (LO_BITS - 44)) + (units_66 >> (LO_BITS - 22))
            low = ((units_44 & mask_44) << 44) + ((units_66 & mask_66) << 22) + units_88
            square = slice(0, min(SLAB, width))  # the slab's own columns: keep their upper triangle
            high[:, square] = high[:, square].triu()
            low[:, square] = low[:, square].triu()
            self.hi[rows, cols] += high
            self.lo[rows, cols] += low
            self._carry(rows, cols)

    def _carry(self, rows=slice(None), cols=slice(None)) -> None:
        """Move ``lo``'s bits from 2⁶⁰ up into ``hi`` (exact: lo stays in [0, 2⁶⁰))."""
        self.hi[rows, cols] += self.lo[rows, cols] >> LO_BITS
        self.lo[rows, cols] &= (1 << LO_BITS) - 1

    def merge(self, other: CosineGram) -> CosineGram:
        if other.dims != self.dims:
            raise ValueError(f"cannot merge a Gram matrix of {other.dims}-dim features into {self.dims}")
        other._add_waiting()
        self.hi += other.hi.to(self.hi.device)
        self.lo += other.lo.to(self.lo.device)
        self._carry()
        self.finite &= other.finite.to(self.finite.device)
        self.count += other.count
        return self

    def state(self) -> dict[str, np.ndarray]:
        """{"count" int64 (), "hi" int64 (D, D), "lo" int64 (D, D)}: exact; copies, which later
        updates leave alone."""
        self._add_waiting()
        self._check_finite()
        return {"count": np.int64(self.count), "hi": self.hi.to("cpu", copy=True).numpy(),
                "lo": self.lo.to("cpu", copy=True).numpy()}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], device: torch.device | str = "cpu") -> CosineGram:
        import torch

        gram = cls(len(state["hi"]), device)
        gram.count = int(state["count"])
        gram.hi = torch.tensor(np.asarray(state["hi"], np.int64), device=device)  # a copy: merges add into it
        gram.lo = torch.tensor(np.asarray(state["lo"], np.int64), device=device)
        return gram

    def _check_finite(self) -> None:
        if not bool(self.finite):
            raise GanMetricsError("vendi: some image's features hold NaN or infinity (a broken encoder or weights "
                                  "file?): check the weights with `ganmetrics weights verify`")

    @classmethod
    def resampling(cls, need: Need, stream: int, replicates: int, seed: int) -> Need:
        """A bootstrap recomputes the moment from the side's feature bank, weighted."""
        return Need(need.encoder, need.feature, FeatureBank)

    @classmethod
    def prepare_resampling(cls, bank: np.ndarray, device: torch.device | None) -> torch.Tensor:
        """The bank, float32 (N, D), on ``device`` (None: the CPU) once."""
        import torch

        return torch.as_tensor(bank).to("cpu" if device is None else device)

    @classmethod
    def resampled(cls, need: Need, source: torch.Tensor, replicate: int, weights: Callable[[int], np.ndarray],
                  device: torch.device | None) -> CosineMoment:
        return weighted_cosine_moment(source, weights(len(source)))

    def result(self) -> CosineMoment:
        """X̂ᵀ X̂ / n as float64 (D, D) (its float value, rounded once from the exact sum)."""
        self._add_waiting()
        self._check_finite()
        upper = self.hi.cpu().numpy().astype(np.float64) * HI_UNIT + self.lo.cpu().numpy().astype(np.float64) * LO_UNIT
        gram = np.triu(upper) + np.triu(upper, 1).T
        return CosineMoment(gram / max(self.count, 1), self.count)


def weighted_cosine_moment(features: torch.Tensor, weights: np.ndarray, rows_at_once: int = 8192) -> CosineMoment:
    """X̂ᵀ W X̂ / Σ w of the multiset that holds image i ``weights[i]`` times: the moment of
    ``CosineGram`` for a bootstrap replicate, to float64 rounding (not exact: a replicate is
    computed once, from the bank in image order, so no split of the images can change it).

    ``features``: float (N, D) on the device the products run on; ``weights``: integer (N,).
    Only rows of nonzero weight are read, ``rows_at_once`` at a time, normalised in float64 (a
    zero row stays zero): about n D² float64 multiply-adds for n such rows, and 8 D (D +
    rows_at_once) bytes."""
    import torch

    chosen = np.flatnonzero(weights)
    total = int(weights[chosen].sum())
    moment = torch.zeros(features.shape[1], features.shape[1], dtype=torch.float64, device=features.device)
    for start in range(0, len(chosen), rows_at_once):
        index = chosen[start:start + rows_at_once]
        rows = features[torch.from_numpy(index).to(features.device)].to(torch.float64)
        norms = rows.norm(dim=1, keepdim=True)
        rows /= torch.where(norms > 0, norms, 1.0)
        w = torch.from_numpy(weights[index].astype(np.float64)).to(features.device)
        moment += (rows * w[:, None]).T @ rows
    return CosineMoment((moment / max(total, 1)).cpu().numpy(), total)


def vendi_score(moment: CosineMoment) -> float:
    """exp(-Σ λ log λ) over the positive eigenvalues λ of ``moment.moment`` (X̂ᵀ X̂ / n), natural
    log, as vertaix/Vendi-Score (``score_dual``; the same spectrum as its n x n ``score``); fewer
    than 2 images are refused in one line.

    The eigenvalues come from LAPACK's symmetric solver in float64 on one thread
    (``torch.linalg.eigvalsh``): a solve on several threads rounds differently for each thread
    count, so one thread makes the score the same bits wherever the moment is (any batch size,
    worker or rank count, whatever threads the process runs). About 4 D³ / 3 flops, whatever
    the image count (the reference's n x n kernel costs 4 n³ / 3)."""
    import torch

    from ..engine.runtime import intra_op_threads

    if moment.count < 2:
        raise GanMetricsError(f"vendi needs at least 2 images, got {moment.count}: add images to the generated set")
    with intra_op_threads(1):
        eigenvalues = torch.linalg.eigvalsh(torch.from_numpy(moment.moment)).numpy()
    positive = eigenvalues[eigenvalues > 0]
    return float(np.exp(-(positive * np.log(positive)).sum()))


@dataclass(frozen=True)
class Vendi(Metric):
    """The Vendi score of each generated set (q = 1, cosine kernel) on its encoder's embedding
    (by default the Inception's pool3): the effective number of distinct images, from 1 (all
    the same direction) to min(n, D). ``--ci`` resamples the side's feature bank
    (``CosineGram.resampled``)."""

    name = "vendi"
    sides = 1
    keys = ("vendi",)
    interval_keys = ("vendi",)

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), CosineGram)]

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        if n_b is not None and n_b < 2:
            raise GanMetricsError(f"vendi needs at least 2 images, got {n_b}: add images to the generated set")

    def compute(self, a: Reduced | None, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        (moment,) = b.values()
        return {"vendi": vendi_score(moment)}
