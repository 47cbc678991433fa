"""Mergeable reducers (``base.Reducer``): Gaussian statistics and split sums, whose memory does
not depend on the image count, and the feature bank, which keeps every feature.

Each has ``update(x, positions)``, ``merge(other)`` and ``state()``/``from_state()``; batches,
workers, ranks and shard files all combine through ``merge``. Each declares its state fields and
the fields its value is stored as (statistics files, the cache), the fewest images it needs, and
how a bootstrap over images resamples it (``evaluation/intervals.py``). No I/O and no metric math
here: the metric modules turn ``result()`` into numbers.
torch is imported by the methods that make tensors, so that the classes can name what a metric
needs (``base.Need``) in a process that never runs a network (FID between two statistics files).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import functools

import numpy as np

from ..errors import GanMetricsError
from .base import Need, Reducer
from .resampling import GENERATED, poisson_weights

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Gaussian:
    """The reduced value of ``GaussianStats``: ``mu`` float64 (D,), ``sigma`` float64 (D, D)
    (unbiased covariance), ``n`` images (None where a file did not say)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None


class GaussianStats(Reducer):
    """Count, mean and co-moment of D-dimensional features, in float64.

    ``update`` and ``merge`` use the pairwise formulas of Chan et al., so the result does not
    depend on how the data was split: co-moment M = sum (x - mean)(x - mean)^T, covariance
    M / (n - 1) (unbiased, as ``np.cov`` in pytorch-fid and torch-fidelity). Memory: 8 D² bytes
    (33.6 MB at D = 2048), whatever the image count, and as much again once updated: the
    buffer each batch's co-moment is computed into.
    """

    kind: ClassVar[str] = "gaussian"
    state_fields = ("count", "mean", "comoment")
    value_fields = ("n", "mu", "sigma")
    ROWS: ClassVar[int] = 128  # co-moment rows per step of ``_combine`` (2 MB at D = 2048)

    @classmethod
    def create(cls, dims: int, total: int | None = None, device: torch.device | str = "cpu") -> "GaussianStats":
        return cls(dims, device)

    def __init__(self, dims: int, device: torch.device | str = "cpu"):
        import torch

        self.dims = dims
        self.count = 0
        self.mean = torch.zeros(dims, dtype=torch.float64, device=device)
        self.comoment = torch.zeros(dims, dims, dtype=torch.float64, device=device)
        self._product: torch.Tensor | None = None  # a batch's co-moment, (D, D): made on first update

    def _combine(self, count: int, mean: torch.Tensor, comoment: torch.Tensor) -> None:
        """Fold in ``count`` features of ``mean`` and ``comoment`` (left unchanged): co-moment
        += comoment + outer(delta, delta) * n1 n2 / n, ``ROWS`` rows at a time, so that the
        temporaries are 2 MB, not three fresh D x D matrices (whose page faults took more time
        than the sums); the same operations element by element, hence the same bits."""
        import torch

        total = self.count + count
        delta = mean - self.mean
        scale = self.count * count / total
        for start in range(0, self.dims, self.ROWS):
            rows = slice(start, start + self.ROWS)
            self.comoment[rows] += comoment[rows] + torch.outer(delta[rows], delta) * scale
        self.mean += delta * (count / total)
        self.count = total

    def update(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Add a batch: float (N, D) on any device (moved to this reducer's device); the sums
        do not depend on the images' ``positions``."""
        if features.ndim != 2 or features.shape[1] != self.dims:
            raise ValueError(f"expected features of shape (N, {self.dims}), got {tuple(features.shape)}")
        if features.shape[0] == 0:
            return
        import torch

        x = features.to(self.mean.device, self.mean.dtype)
        batch_mean = x.mean(dim=0)
        centred = x - batch_mean
        # Into the same buffer every batch: the same product, bit for bit, without a fresh
        # 33.6 MB output whose page faults took longer than the product (on the CPU).
        if self._product is None:
            self._product = torch.empty_like(self.comoment)
        self._combine(x.shape[0], batch_mean, torch.mm(centred.T, centred, out=self._product))

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """Fold ``other`` into this one (in place) and return self."""
        if other.dims != self.dims:
            raise ValueError(f"cannot merge statistics of {other.dims} dims into {self.dims}")
        if other.count:
            self._combine(other.count, other.mean.to(self.mean.device), other.comoment.to(self.mean.device))
        return self

    def state(self) -> dict[str, np.ndarray]:
        """{"count" int64 (), "mean" float64 (D,), "comoment" float64 (D, D)}: exact, unlike mu/sigma."""
        return {"count": np.int64(self.count), "mean": self.mean.cpu().numpy(), "comoment": self.comoment.cpu().numpy()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> GaussianStats:
        import torch

        stats = cls(len(state["mean"]), device)
        stats.count = int(state["count"])
        stats.mean = torch.as_tensor(state["mean"], dtype=torch.float64).to(device)
        stats.comoment = torch.as_tensor(state["comoment"], dtype=torch.float64).to(device)
        return stats

    def result(self) -> Gaussian:
        return Gaussian(self.mu(), self.sigma(), self.count)

    def covers(self, positions: range) -> bool:
        return self.count == len(positions)

    @classmethod
    def value_arrays(cls, value: Gaussian) -> dict[str, np.ndarray]:
        """{"n" int64 () (-1: unknown), "mu" float64 (D,), "sigma" float64 (D, D)}: pytorch-fid's keys."""
        return {"n": np.int64(-1 if value.n is None else value.n), "mu": np.asarray(value.mu, np.float64),
                "sigma": np.asarray(value.sigma, np.float64)}

    @classmethod
    def value_of(cls, arrays: Mapping[str, np.ndarray]) -> Gaussian:
        n = int(arrays["n"]) if "n" in arrays else -1
        return Gaussian(arrays["mu"], arrays["sigma"], n if n >= 0 else None)

    @classmethod
    def fewest(cls, options: Mapping[str, Any], names: str) -> tuple[int, str]:
        return 2, f"a covariance ({names.upper()})"

    @classmethod
    def resampling(cls, need: Need, stream: int, replicates: int, seed: int) -> Need:
        """A bootstrap recomputes the Gaussian from the side's feature bank, weighted."""
        return Need(need.encoder, need.feature, FeatureBank)

    @classmethod
    def prepare_resampling(cls, bank: np.ndarray, device: torch.device | None) -> tuple:
        return bank_for_weights(bank, device)

    @classmethod
    def resampled(cls, need: Need, source: Any, replicate: int, weights: Callable[[int], np.ndarray],
                  device: torch.device | None) -> Gaussian:
        """``source``: ``prepare_resampling`` of the bank (on the device once)."""
        features, mean = source
        return weighted_gaussian(features, mean, weights(len(features)))

    def mu(self) -> np.ndarray:
        """Mean, float64 (D,)."""
        return self.mean.cpu().numpy().copy()

    def sigma(self) -> np.ndarray:
        """Unbiased covariance, float64 (D, D); needs at least two samples."""
        if self.count < 2:
            raise ValueError("a covariance needs at least two samples")
        return (self.comoment / (self.count - 1)).cpu().numpy()


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


class SplitSums(Reducer):
    """Per-split sums for the Inception Score of class probabilities (K = 1008 for the FID Inception).

    For each split: the count, the sum of p(y|x) over images (float64, 1008) and the sum over
    images of sum_y p log p. That is all ``IS = exp(E_x KL(p(y|x) || p(y)))`` needs, since
    E_x sum_y p log p(y) = sum_y p(y) log p(y) with p(y) the split's mean.

    Image i goes to a split by its position in the whole set. With ``splits``: for ``total``
    known, contiguous ``[s*N//splits, (s+1)*N//splits)`` as in the original TF code; with
    ``total=None`` (an open-ended stream), split ``i % splits``. With ``split_size`` instead
    (the ADM evaluator's 5000): split ``i // split_size``, contiguous runs of that many images,
    the last one shorter where N is not a multiple (ceil(N / split_size) splits, added as
    images arrive when N is open-ended). Memory: 8 (K + 2) bytes a split.
    """

    kind: ClassVar[str] = "split_sums"
    state_fields = ("splits", "split_size", "total", "seen", "counts", "prob_sums", "neg_entropy_sums")

    @classmethod
    def create(cls, dims: int, total: int | None, device: torch.device | str = "cpu", splits: int | None = 10,
               split_size: int | None = None) -> "SplitSums":
        return cls(None if split_size else splits, total, num_classes=dims, device=device, split_size=split_size)

    def __init__(self, splits: int | None, total: int | None, num_classes: int = 1008,
                 device: torch.device | str = "cpu", split_size: int | None = None):
        if (splits is None) == (split_size is None):
            raise ValueError("give either splits or split_size")
        if (split_size if splits is None else splits) < 1:
            raise ValueError("splits and split_size must be at least 1")
        import torch

        self.split_size = split_size
        self.total = total
        self.seen = 0
        if split_size is not None:
            splits = 0 if total is None else -(-total // split_size)
        self.counts = torch.zeros(splits, dtype=torch.float64, device=device)
        self.prob_sums = torch.zeros(splits, num_classes, dtype=torch.float64, device=device)
        self.neg_entropy_sums = torch.zeros(splits, dtype=torch.float64, device=device)

    @property
    def splits(self) -> int:
        """The number of splits (with ``split_size``: so far, for an open-ended stream): the
        last axis of ``counts`` (a subclass may hold several sets of sums before it)."""
        return self.counts.shape[-1]

    def _split_of(self, index: torch.Tensor) -> torch.Tensor:
        import torch

        if self.split_size is not None:
            return torch.div(index, self.split_size, rounding_mode="floor")
        if self.total is None:
            return index % self.splits
        # Largest s with s*N//splits <= i; the bounds are the TF code's slice bounds.
        bounds = torch.tensor([s * self.total // self.splits for s in range(1, self.splits)], device=index.device)
        return torch.bucketize(index, bounds, right=True)

    def _grow(self, splits: int) -> None:
        """At least ``splits`` splits (split_size mode: new ones are empty), along the split axis."""
        import torch

        missing = splits - self.splits
        if missing > 0:
            def padded(sums: torch.Tensor, axis: int) -> torch.Tensor:
                shape = list(sums.shape)
                shape[axis] = missing
                return torch.cat([sums, sums.new_zeros(shape)], dim=axis)

            self.counts = padded(self.counts, -1)
            self.prob_sums = padded(self.prob_sums, -2)
            self.neg_entropy_sums = padded(self.neg_entropy_sums, -1)

    def update(self, logits: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Add a batch of unbiased logits, float (N, K) on any device (summed on this
        reducer's), of the images at ``positions`` (int64 (N,)) in the whole set (default: the
        N positions right after the images seen so far)."""
        import torch

        device = self.counts.device
        if positions is None:
            positions = torch.arange(self.seen, self.seen + logits.shape[0], device=device)
        positions = positions.to(device)
        stop = int(positions.max()) + 1 if len(positions) else self.seen
        if self.total is not None and stop > self.total:
            raise ValueError(f"image position {stop - 1} beyond the declared total {self.total}")
        if self.split_size is not None:
            self._grow(-(-stop // self.split_size))
        log_p = torch.log_softmax(logits.detach().to(device, torch.float64), dim=1)
        p = log_p.exp()
        split = self._split_of(positions)
        # A (splits, N) one-hot matrix sums images into their splits: deterministic on a GPU,
        # where index_add_ adds in arbitrary order, and with no synchronisation.
        one_hot = (split == torch.arange(self.splits, device=device)[:, None]).to(torch.float64)
        self._accumulate(one_hot, p, positions)
        self.seen = max(self.seen, stop)

    def _accumulate(self, one_hot: torch.Tensor, p: torch.Tensor, positions: torch.Tensor) -> None:
        """Add the class probabilities ``p``, float64 (N, K), of the images at ``positions`` into
        their splits (``one_hot``, float64 (S, N))."""
        import torch

        self.counts += one_hot.sum(dim=1)
        self.prob_sums += one_hot @ p
        self.neg_entropy_sums += one_hot @ torch.special.xlogy(p, p).sum(dim=1)

    def sums(self) -> tuple:
        """(counts (S,), prob_sums (S, K), neg_entropy_sums (S,)) as float64 NumPy arrays, the
        arguments of ``inception_score.inception_score_from_sums``."""
        return self.counts.cpu().numpy(), self.prob_sums.cpu().numpy(), self.neg_entropy_sums.cpu().numpy()

    def result(self) -> tuple:
        return self.sums()

    def state(self) -> dict[str, np.ndarray]:
        counts, prob_sums, neg_entropy_sums = self.sums()
        return {"splits": np.int64(self.splits), "split_size": np.int64(self.split_size or -1),
                "total": np.int64(-1 if self.total is None else self.total),
                "seen": np.int64(self.seen), "counts": counts, "prob_sums": prob_sums, "neg_entropy_sums": neg_entropy_sums}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> SplitSums:
        import torch

        total = int(state["total"])
        split_size = int(state.get("split_size", -1))
        splits = None if split_size > 0 else int(state["splits"])
        sums = cls(splits, None if total < 0 else total, state["prob_sums"].shape[-1], device,
                   split_size if split_size > 0 else None, **cls._options_of_state(state))
        sums._add(*(torch.as_tensor(state[k]) for k in ("counts", "prob_sums", "neg_entropy_sums")), int(state["seen"]))
        return sums

    @classmethod
    def _options_of_state(cls, state: dict) -> dict:
        """The further constructor keywords that a subclass's ``state()`` records (here none)."""
        return {}

    @classmethod
    def fewest(cls, options: Mapping[str, Any], names: str) -> tuple[int, str]:
        if "splits" in options:
            return max(2, options["splits"]), f"an Inception Score over {options['splits']} splits"
        return 2, "an Inception Score"  # with a split size, as many splits as the images make

    @classmethod
    def resampling(cls, need: Need, stream: int, replicates: int, seed: int) -> Need:
        """A bootstrap streams ``replicates`` weighted copies of the sums."""
        options = need.options + (("replicates", replicates), ("seed", seed), ("stream", stream))
        return Need(need.encoder, need.feature, ReplicatedSplitSums, options)

    @classmethod
    def resampled(cls, need: Need, source: Any, replicate: int, weights: Callable[[int], np.ndarray],
                  device: torch.device | None) -> tuple:
        counts, *rest = (part[replicate] for part in source)
        drawn = counts > 0  # a short split (the last of --is-split-size) may draw no image: it has no score
        return (counts[drawn], *(part[drawn] for part in rest))

    def merge(self, other: "SplitSums") -> "SplitSums":
        """Fold ``other`` (which saw other positions of the same set) into this one."""
        fixed_splits_differ = self.split_size is None and other.splits != self.splits
        if fixed_splits_differ or (other.split_size, other.total) != (self.split_size, self.total):
            raise ValueError("cannot merge Inception Score accumulators with different splits or totals")
        self._add(other.counts, other.prob_sums, other.neg_entropy_sums, other.seen)
        return self

    def _add(self, counts: torch.Tensor, prob_sums: torch.Tensor, neg_entropy_sums: torch.Tensor, seen: int) -> None:
        device = self.counts.device
        splits = counts.shape[-1]
        self._grow(splits)
        self.counts[..., :splits] += counts.to(device)
        self.prob_sums[..., :splits, :] += prob_sums.to(device)
        self.neg_entropy_sums[..., :splits] += neg_entropy_sums.to(device)
        self.seen = max(self.seen, seen)


SLAB_BYTES = 64 << 20
"""The size of the pieces a ``FeatureBank`` stores its features in (fewer rows where the image
count is known to be smaller). Above glibc's largest dynamic mmap threshold (32 MiB), so each
piece is a mapping of its own: its untouched pages cost no memory, and it never sits between the
forward pass's short-lived blocks. A bank that kept each batch's tensor held blocks among them,
which made peak memory grow with the image count (see ``runtime.release_free_memory``)."""


class FeatureBank(Reducer):
    """Every image's features, float32, kept with their global positions; ``result()`` returns
    them in global image order, float32 (N, D) NumPy, whatever the batching or the workers.
    For what cannot stream (KID draws subsets of the whole set). Each batch is copied into
    pieces of ``SLAB_BYTES`` (``total`` rows at most, where the image count is known), so the
    forward pass's tensors are freed at once. Memory: 4 N D bytes on the reducer's device (8 KiB
    an image at D = 2048: 410 MB for 50,000 images), plus 8 N bytes of positions, plus the same
    again, once, when ``result()`` assembles the array.
    """

    kind: ClassVar[str] = "feature_bank"
    state_fields = ("positions", "features")
    value_fields = ("features",)

    @classmethod
    def create(cls, dims: int, total: int | None = None, device: torch.device | str = "cpu") -> "FeatureBank":
        return cls(dims, device, total)

    def __init__(self, dims: int, device: torch.device | str = "cpu", total: int | None = None):
        import torch

        self.dims, self.device = dims, torch.device(device)
        self.slab_rows = max(1, SLAB_BYTES // (4 * dims))
        if total is not None:
            self.slab_rows = max(1, min(self.slab_rows, total))
        self.slabs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (positions int64 (R,), features float32 (R, D))
        self.count = 0  # rows filled, over all slabs
        self.seen = 0

    def __len__(self) -> int:
        return self.count

    def update(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Add float (N, D) features of the images at ``positions`` (default: right after those
        seen), copied: the bank keeps no reference to ``features``."""
        import torch

        if features.ndim != 2 or features.shape[1] != self.dims:
            raise ValueError(f"expected features of shape (N, {self.dims}), got {tuple(features.shape)}")
        if positions is None:
            positions = torch.arange(self.seen, self.seen + len(features))
        self._append(positions.detach(), features.detach())
        self.seen = max(self.seen, int(positions.max()) + 1) if len(positions) else self.seen

    def _append(self, positions: torch.Tensor, features: torch.Tensor) -> None:
        import torch

        done = 0
        while done < len(features):
            row = self.count % self.slab_rows
            if row == 0 and self.count // self.slab_rows == len(self.slabs):
                self.slabs.append((torch.empty(self.slab_rows, dtype=torch.int64, device=self.device),
                                   torch.empty(self.slab_rows, self.dims, dtype=torch.float32, device=self.device)))
            slab_positions, slab_features = self.slabs[self.count // self.slab_rows]
            take = min(len(features) - done, self.slab_rows - row)
            slab_positions[row:row + take] = positions[done:done + take]
            slab_features[row:row + take] = features[done:done + take]
            done += take
            self.count += take

    def _filled(self):
        """(positions, features) of each slab's filled rows, in arrival order."""
        for index, (positions, features) in enumerate(self.slabs):
            rows = min(self.slab_rows, self.count - index * self.slab_rows)
            yield positions[:rows], features[:rows]

    def merge(self, other: "FeatureBank") -> "FeatureBank":
        if other.dims != self.dims:
            raise ValueError(f"cannot merge a bank of {other.dims}-dim features into {self.dims}")
        for positions, features in other._filled():
            self._append(positions, features)
        self.seen = max(self.seen, other.seen)
        return self

    def _ordered(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if not self.count:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, self.dims)
        filled = list(self._filled())
        positions = torch.cat([p for p, _ in filled])
        order = torch.argsort(positions)
        return positions[order], torch.cat([x for _, x in filled])[order]

    def result(self) -> np.ndarray:
        positions, features = self._ordered()
        if len(positions) and (positions.unique().numel() != len(positions)):
            raise ValueError("a feature bank holds the same image position twice")
        return features.cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        positions, features = self._ordered()
        return {"positions": positions.cpu().numpy(), "features": features.cpu().numpy()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> FeatureBank:
        import torch

        bank = cls(state["features"].shape[1], device, total=len(state["features"]))
        bank.update(torch.as_tensor(state["features"]), torch.as_tensor(state["positions"]))
        return bank

    def covers(self, positions: range) -> bool:
        return np.array_equal(self._ordered()[0].cpu().numpy(), np.arange(positions.start, positions.stop))

    @classmethod
    def value_arrays(cls, value: np.ndarray) -> dict[str, np.ndarray]:
        """{"features": float32 (N, D) in image order}."""
        return {"features": np.asarray(value, np.float32)}

    @classmethod
    def value_of(cls, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(arrays["features"], np.float32)

    @classmethod
    def resampling(cls, need: Need, stream: int, replicates: int, seed: int) -> Need:
        """A bootstrap repeats the bank's rows by their weights."""
        return need

    @classmethod
    def resampled(cls, need: Need, source: Any, replicate: int, weights: Callable[[int], np.ndarray],
                  device: torch.device | None) -> np.ndarray:
        return np.repeat(source, weights(len(source)), axis=0)


class ReplicatedSplitSums(SplitSums):
    """``SplitSums`` of ``replicates`` bootstrap resamplings at once, streamed: image i adds to
    replicate r's sums ``poisson_weights(seed, stream, [r], [i])`` times, in its own split (the
    splits stay those of the whole set). ``counts`` float64 (R, S), ``prob_sums`` (R, S, K),
    ``neg_entropy_sums`` (R, S); memory 8 R S (K + 2) bytes. ``result()``: those three as NumPy
    arrays, replicate first."""

    kind: ClassVar[str] = "replicated_split_sums"
    state_fields = SplitSums.state_fields + ("replicates", "seed", "stream")

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
