"""CMMD (Jayasumana et al., CVPR 2024): the maximum mean discrepancy between CLIP embeddings of
two image sets under a Gaussian RBF kernel, as google-research ``cmmd/distance.py`` computes it.

k(x, y) = exp(-γ ‖x - y‖²) with σ = 10, γ = 1 / (2σ²) = 0.005, and the biased (V-statistic)
estimator, times 1000:

    CMMD = 1000 · (mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 · mean_ij k(x_i, y_j)),

the means over all pairs, the diagonal included, ‖x - y‖² as ``‖x‖² + ‖y‖² - 2 xᵀy``. Its
embeddings are ``clip-vitl14-336``'s (L2-normalised, 768-d).

Where we differ from the reference, on purpose:

- every image counts: google-research embeds its folders in batches of 32 and drops the last
  ``N mod 32`` images of each (``io_util.compute_embeddings_for_dir``, ``drop_remainder=True``);
  the two agree when both sets hold a multiple of 32 images;
- the kernel sums are blocks of ``block`` rows against ``block`` columns (``--cmmd-block``,
  default 2048), each product and sum in float64: the value of the full-matrix formula without
  its n × n matrices (the reference builds three of them in float32, 10 GB each at 50,000
  images), and closer to the exact value than float32, whose rounding matters here because
  CMMD is a small difference of kernel means near 1;
- images that are not RGB (grayscale, RGBA, palette) are converted to RGB, as for every
  encoder: google-research tiles grayscale to three channels (the same pixels), but cannot
  read RGBA and reads a palette image's indices as grey levels.

Memory, beyond the two float32 feature banks: two float64 blocks of ``block`` rows
(2 · 8 · block · D bytes), one float64 block of kernel values (8 · block² bytes) and the float64
squared norms (8 · (n + m) bytes): 58 MB at the default block of 2048 and D = 768, whatever the
number of images. The banks are copied to ``device`` as float32 first where they are not there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanMetricsError
from .base import Metric, Need, Reduced, option
from .reducers import FeatureBank

if TYPE_CHECKING:
    import torch

    from ..extractors.base import FeatureExtractor

SIGMA = 10.0
"""The RBF bandwidth (google-research ``distance.py`` ``_SIGMA``)."""
SCALE = 1000.0
"""The factor that makes values readable (``distance.py`` ``_SCALE``)."""
GAMMA = 1.0 / (2.0 * SIGMA**2)
BLOCK = 2048
"""Rows (and columns) of one block of kernel values: the memory bound of the module docstring."""


def _refuse_too_few(n_reference: int | None, n_generated: int | None) -> None:
    """The one-line refusal of a side with fewer than 2 images (None: a count not known yet)."""
    if any(n is not None and n < 2 for n in (n_reference, n_generated)):
        shown = ["an unknown number of" if n is None else str(n) for n in (n_reference, n_generated)]
        raise GanMetricsError(f"CMMD needs at least 2 images on each side, got {shown[0]} reference and "
                              f"{shown[1]} generated: add images")


def _kernel_mean(x: torch.Tensor, x_norms: torch.Tensor, y: torch.Tensor, y_norms: torch.Tensor,
                 block: int, symmetric: bool) -> float:
    """mean_ij exp(-γ ‖x_i - y_j‖²) over float32 (n, D) ``x`` and (m, D) ``y`` with their float64
    squared norms, block by block in float64; ``symmetric`` (y is x): each block pair above the
    diagonal counted twice and those below skipped."""
    import torch

    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), block):
        rows = x[i:i + block].double()
        for j in range(i if symmetric else 0, len(y), block):
            columns = rows if symmetric and j == i else y[j:j + block].double()
            # -γ ‖x - y‖² = 2γ xᵀy - γ ‖x‖² - γ ‖y‖², in place on the one (block, block) matrix
            kernel = (rows @ columns.T).mul_(2 * GAMMA)
            kernel.sub_(x_norms[i:i + block, None] * GAMMA).sub_(y_norms[None, j:j + block] * GAMMA).exp_()
            total += kernel.sum() * (2 if symmetric and j != i else 1)
    return float(total) / (len(x) * len(y))


def cmmd(reference: np.ndarray, generated: np.ndarray, block: int = BLOCK,
         device: torch.device | str | None = None) -> float:
    """CMMD (module docstring) between float32 (n, D) ``reference`` and (m, D) ``generated``
    embeddings (NumPy arrays or tensors), computed on ``device`` (None: the CPU) in blocks of
    ``block`` rows, in float64. Each side needs at least 2 images."""
    import torch

    _refuse_too_few(len(reference), len(generated))
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    device = torch.device("cpu") if device is None else torch.device(device)
    x = torch.as_tensor(reference).to(device, torch.float32)
    y = torch.as_tensor(generated).to(device, torch.float32)
    x_norms = torch.cat([(part.double() ** 2).sum(1) for part in x.split(block)])
    y_norms = torch.cat([(part.double() ** 2).sum(1) for part in y.split(block)])
    k_xx = _kernel_mean(x, x_norms, x, x_norms, block, symmetric=True)
    k_yy = _kernel_mean(y, y_norms, y, y_norms, block, symmetric=True)
    k_xy = _kernel_mean(x, x_norms, y, y_norms, block, symmetric=False)
    return SCALE * (k_xx + k_yy - 2 * k_xy)


@dataclass(frozen=True)
class CMMD(Metric):
    """CMMD between the reference side and each generated side, on every image's embedding
    (a ``FeatureBank`` of each side: 3 KiB an image at D = 768, 154 MB at 50,000 images; the
    reference side's is cached like KID's). Needs at least 2 images on each side. ``--ci``
    resamples the banks' rows (``FeatureBank.resampled``): each replicate holds one more bank
    of about the side's size while its CMMD is computed."""

    name = "cmmd"
    sides = 2
    keys = ("cmmd",)
    interval_keys = ("cmmd",)
    role = "embedding"
    default_encoder = "clip-vitl14-336"
    cmmd_block: int = option(BLOCK, "CMMD kernel block: memory 8 x (2 BLOCK D + BLOCK^2) bytes beyond the banks, "
                                    "58 MB at D = 768, for any image count.")

    def __post_init__(self):
        if self.cmmd_block < 1:
            raise GanMetricsError(f"--cmmd-block must be at least 1, got {self.cmmd_block}")

    def needs(self, extractor: FeatureExtractor) -> list[Need]:
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    def check_counts(self, n_a: int | None, n_b: int | None) -> None:
        _refuse_too_few(n_a, n_b)

    def compute(self, a: Reduced, b: Reduced, device: torch.device | None = None) -> dict[str, float]:
        (reference,), (generated,) = a.values(), b.values()
        return {"cmmd": cmmd(reference, generated, self.cmmd_block, device)}
