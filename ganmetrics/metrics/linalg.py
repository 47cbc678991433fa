"""Linear algebra of covariances: the trace square root of a product, a PSD square root, the
numerical rank. NumPy/LAPACK on the CPU, torch.linalg on a GPU (torch imported only there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.linalg.lapack

if TYPE_CHECKING:
    import torch


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition; the
    small negative eigenvalues rounding leaves are clipped to zero. float64 (D, D)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def _symmetric_similar_to_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """A symmetric PSD matrix similar to S1 S2 (float64 (D, D); only its lower triangle is
    meaningful). S1 S2 and S2 S1 have the same eigenvalues, so where either covariance has a
    Cholesky factor L (positive definite), L^T S_other L: one factorisation and two triangular
    products, a fraction of an eigendecomposition. Where both are singular (fewer images than
    dimensions on both sides), S1^1/2 S2 S1^1/2 by eigendecomposition."""
    trmm = scipy.linalg.blas.dtrmm
    for factored, other in ((sigma1, sigma2), (sigma2, sigma1)):
        factor, info = scipy.linalg.lapack.dpotrf(factored, lower=1, clean=1)
        if info == 0:
            right = trmm(1.0, factor, other, side=1, lower=1)  # S L
            return trmm(1.0, factor, right, side=0, lower=1, trans_a=1)  # L^T S L
    root = sqrtm_psd(sigma1)
    return root @ sigma2 @ root


def _trace_sqrt_product_torch(sigma1: np.ndarray, sigma2: np.ndarray, device: torch.device) -> float:
    """``trace_sqrt_product`` with torch.linalg on ``device`` (a GPU), the same route in float64."""
    import torch

    s1, s2 = (torch.as_tensor(s, dtype=torch.float64).to(device) for s in (sigma1, sigma2))
    for factored, other in ((s1, s2), (s2, s1)):
        factor, info = torch.linalg.cholesky_ex(factored)
        if info.item() == 0:
            break
    else:
        eigenvalues, eigenvectors = torch.linalg.eigh(s1)
        factor, other = eigenvectors * eigenvalues.clamp_min(0).sqrt(), s2  # S1 = F F^T
    middle = factor.T @ other @ factor
    return float(torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, device: torch.device | str | None = None) -> float:
    """tr sqrt(S1 S2) for covariances S1, S2 (float64 (D, D)), on the CPU with LAPACK, or with
    torch.linalg on ``device`` when that is not the CPU.

    S1 S2 is similar to a symmetric PSD matrix (``_symmetric_similar_to_product``), so the
    trace of its square root is the sum of the square roots of that matrix's eigenvalues: real,
    and exact also for singular covariances (N < D), where ``scipy.linalg.sqrtm`` returns
    complex noise. Eigenvalues only: no eigenvectors are computed.
    """
    if device is not None and str(device).split(":")[0] != "cpu":
        import torch

        return _trace_sqrt_product_torch(sigma1, sigma2, torch.device(device))
    middle = _symmetric_similar_to_product(np.ascontiguousarray(sigma1), np.ascontiguousarray(sigma2))
    eigenvalues = scipy.linalg.eigh(middle, lower=True, eigvals_only=True, overwrite_a=True, check_finite=False,
                                    driver="evd")
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def covariance_rank(sigma: np.ndarray, rtol: float = 1e-10) -> int:
    """Numerical rank of a covariance (float (D, D)) by Cholesky factorisation with complete
    pivoting (LAPACK ``dpstrf``): the pivots taken before the largest remaining diagonal
    falls to ``rtol`` times the largest variance. A fraction of an eigendecomposition's cost."""
    sigma = np.asarray(sigma, np.float64)
    largest = float(np.max(np.diag(sigma), initial=0.0))
    if largest <= 0:
        return 0
    _, _, rank, info = scipy.linalg.lapack.dpstrf(sigma, tol=rtol * largest, lower=1)
    if info < 0:
        raise ValueError(f"dpstrf: illegal argument {-info}")
    return int(rank)
