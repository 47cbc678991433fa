"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² of a polynomial kernel
over random subsets of pool3 features, as torch-fidelity computes it.

k(x, y) = (gamma xᵀy + coef0)^degree, gamma = 1/D by default. Per subset, m generated and m
reference features are drawn without replacement, the generated indices first, from
``np.random.RandomState(seed)``: torch-fidelity's stream, so the same features and seed pick
the same subsets. KID is the mean of the subsets' MMD², ``kid_std`` their population std.
Small negative values are normal: the estimator is unbiased, so it scatters around 0 when the
sets are alike. The Gram products xᵀy are float32 matrix products, as torch-fidelity's, the
kernel and its sums float64 (torch-fidelity: float32): as fast, and within 1e-8 of an
all-float64 evaluation (closer than torch-fidelity). Not streamable: each side keeps
all its features (``FeatureBank``). torch is imported where the kernels are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option, seed_option
from .reducers import FeatureBank

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor


def polynomial_mmd2(x: "torch.Tensor", y: "torch.Tensor", degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD² of two equal-sized sets x, y, float (m, D), under the polynomial kernel:
    [Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i, y_j) / m².
    The products xᵀy in the sets' dtype, the kernel and the sums in float64."""
    m = x.shape[0]

    def kernel(p, q):
        return ((p @ q.T).double() * gamma + coef0) ** degree

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum()) + (k_yy.sum() - k_yy.diagonal().sum())
    return float(within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(generated: np.ndarray, reference: np.ndarray, subsets: int, subset_size: int,
                              degree: int = 3, gamma: float | None = None, coef0: float = 1.0, seed: int = 2020,
                              device: "torch.device | str | None" = None) -> tuple[float, float]:
    """(mean, population std) of the MMD² over ``subsets`` random subsets of ``subset_size``
    from float (N_g, D) ``generated`` and (N_r, D) ``reference`` features; on ``device``
    (default: the CPU). ``gamma`` None: 1/D."""
    import torch

    rng = np.random.RandomState(seed)
    gamma = 1.0 / generated.shape[1] if gamma is None else gamma
    device = torch.device("cpu") if device is None else torch.device(device)
    gen = torch.as_tensor(generated).to(device, torch.float32)
    ref = torch.as_tensor(reference).to(device, torch.float32)
    mmds = np.zeros(subsets)
    for s in range(subsets):
        pick_gen = torch.as_tensor(rng.choice(len(gen), subset_size, replace=False), device=device)
        pick_ref = torch.as_tensor(rng.choice(len(ref), subset_size, replace=False), device=device)
        mmds[s] = polynomial_mmd2(gen[pick_gen], ref[pick_ref], degree, gamma, coef0)
    return float(mmds.mean()), float(mmds.std())


@dataclass(frozen=True)
class KID(Metric):
    """KID on pool3. Options as torch-fidelity's (defaults: 100 subsets of 1000, degree 3,
    gamma 1/D, coef0 1, seed 2020). A set smaller than ``kid_subset_size`` is an error unless
    ``kid_shrink``, which uses the smaller set's size instead (reported in the settings).
    Memory: every feature of both sides, 8 KiB an image (2 x 410 MB at 50,000 images)."""

    name = "kid"
    sides = 2
    keys = ("kid", "kid_std")
    interval_keys = ("kid",)
    kid_subsets: int = option(100, "KID: random subsets.")
    kid_subset_size: int = option(1000, "KID: images per subset and side; each side needs at least this many.")
    kid_degree: int = option(3, "KID: polynomial kernel degree.")
    kid_gamma: float | None = option(None, "KID: kernel gamma [default: 1/D].")
    kid_coef0: float = option(1.0, "KID: kernel coef0.")
    seed: int = seed_option()
    kid_shrink: bool = option(False, "KID: use the smaller set's size when a side has fewer images than "
                                     "--kid-subset-size (reported).")

    def __post_init__(self):
        if self.kid_subsets < 1:
            raise GanMetricsError(f"--kid-subsets must be at least 1, got {self.kid_subsets}")
        if self.kid_subset_size < 2:
            raise GanMetricsError(f"--kid-subset-size must be at least 2, got {self.kid_subset_size}")
        if self.kid_degree < 1:
            raise GanMetricsError(f"--kid-degree must be at least 1, got {self.kid_degree}")

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    @staticmethod
    def _banks(a: Reduced, b: Reduced) -> tuple[np.ndarray, np.ndarray]:
        (reference,), (generated,) = a.values(), b.values()
        return reference, generated

    def subset_size(self, n_a: int, n_b: int) -> int:
        """The subset size used for sides of ``n_a`` and ``n_b`` images: ``kid_subset_size``,
        or with ``kid_shrink`` at most the smaller side."""
        smallest = min(n_a, n_b)
        if smallest >= self.kid_subset_size:
            return self.kid_subset_size
        if self.kid_shrink and smallest >= 2:
            return smallest
        raise GanMetricsError(
            f"KID needs at least --kid-subset-size {self.kid_subset_size} images on each side, got "
            f"{n_a} reference and {n_b} generated: lower --kid-subset-size, add images, "
            "or pass --kid-shrink to use the smaller side's size"
        )

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        if n_a is not None and n_b is not None:
            self.subset_size(n_a, n_b)

    def compute(self, a: Reduced, b: Reduced, device: "torch.device | None" = None) -> dict[str, float]:
        reference, generated = self._banks(a, b)
        mean, std = kernel_inception_distance(generated, reference, self.kid_subsets,
                                              self.subset_size(len(reference), len(generated)),
                                              self.kid_degree, self.kid_gamma, self.kid_coef0, self.seed, device)
        return {"kid": mean, "kid_std": std}

    def settings(self, a: Reduced | None, b: Reduced) -> dict:
        reference, generated = self._banks(a, b)
        return {**super().settings(a, b), "kid_subset_size": self.subset_size(len(reference), len(generated))}
