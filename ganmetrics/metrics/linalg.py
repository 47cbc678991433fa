"""Linear algebra of covariances: the trace square root of a product, a low-rank factor, the
numerical rank. NumPy/LAPACK on the CPU, torch.linalg on a GPU (torch imported only there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.linalg.lapack

if TYPE_CHECKING:
    import torch


def column_major(sigma: np.ndarray, private: bool = False) -> np.ndarray:
    """``sigma`` (float64 (D, D)) as a Fortran-ordered array of the same values, the order
    LAPACK takes (itself where it is one, unless ``private``: then always a new array, for a
    caller that factorises or writes into it in place). SciPy's LAPACK wrappers make such a copy
    of a C-ordered matrix at every call, element by element across rows (several times a plain
    copy, and most of the cost of a Cholesky factorisation that fails at once: a singular
    covariance). Made once here, 32 rows at a time (cache-friendly), each call then copies it
    as it lies."""
    if sigma.flags.f_contiguous:
        return sigma.copy(order="F") if private else sigma
    fortran = np.empty(sigma.shape, np.float64, order="F")
    for start in range(0, len(sigma), 32):
        fortran[start:start + 32] = sigma[start:start + 32]
    return fortran


def _low_rank_factor(sigma: np.ndarray) -> np.ndarray:
    """F, float64 (D, r), with F F^T = S for a PSD ``sigma`` S of numerical rank r, by Cholesky
    factorisation with complete pivoting (LAPACK ``dpstrf`` at its default tolerance, D·eps
    times the largest variance): O(D r²), where an eigendecomposition costs O(D³). What it
    leaves out is below that tolerance: rounding, not variance."""
    factor, pivots, rank, info = scipy.linalg.lapack.dpstrf(sigma, lower=1, tol=-1)
    if info < 0:
        raise ValueError(f"dpstrf: illegal argument {-info}")
    low_rank = np.empty((len(sigma), rank))
    low_rank[pivots - 1] = np.tril(factor[:, :rank])  # S = P L L^T P^T
    return low_rank


def _symmetric_with_the_spectrum_of_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """A symmetric PSD matrix whose nonzero eigenvalues are those of S1 S2 (float64; only its
    lower triangle is meaningful). S1 S2 and S2 S1 have the same eigenvalues, so where either
    covariance has a Cholesky factor L (positive definite), L^T S_other L (D, D): one
    factorisation and two triangular products, a fraction of an eigendecomposition. Where both
    are singular (fewer images than dimensions on both sides), F^T S_other F (r, r) with the
    low-rank factor F of the covariance of lower rank r (``_low_rank_factor``): r < N there, so
    this is fast where there are few images."""
    trmm = scipy.linalg.blas.dtrmm
    fortran1, fortran2 = column_major(sigma1), column_major(sigma2)  # as LAPACK and BLAS take them
    for factored, other in ((fortran1, fortran2), (fortran2, fortran1)):
        factor, info = scipy.linalg.lapack.dpotrf(factored, lower=1, clean=1)
        if info == 0:
            right = trmm(1.0, factor, other, side=1, lower=1)  # S L
            return trmm(1.0, factor, right, side=0, lower=1, trans_a=1)  # L^T S L
    factors = [(_low_rank_factor(factored), other) for factored, other in ((fortran1, sigma2), (fortran2, sigma1))]
    low_rank, other = min(factors, key=lambda pair: pair[0].shape[1])
    return low_rank.T @ other @ low_rank


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

    S1 S2 has the nonzero eigenvalues of a symmetric PSD matrix
    (``_symmetric_with_the_spectrum_of_product``), so the trace of its square root is the sum of
    the square roots of that matrix's eigenvalues: real,
    and exact also for singular covariances (N < D), where ``scipy.linalg.sqrtm`` returns
    complex noise. Eigenvalues only: no eigenvectors are computed.
    """
    if device is not None and str(device).split(":")[0] != "cpu":
        import torch

        return _trace_sqrt_product_torch(sigma1, sigma2, torch.device(device))
    middle = _symmetric_with_the_spectrum_of_product(np.ascontiguousarray(sigma1), np.ascontiguousarray(sigma2))
    eigenvalues = scipy.linalg.eigh(middle, lower=True, eigvals_only=True, overwrite_a=True, check_finite=False,
                                    driver="evd")
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def covariance_rank(sigma: np.ndarray, rtol: float = 1e-10) -> int:
    """Numerical rank of a covariance (float (D, D)) by Cholesky factorisation with complete
    pivoting (LAPACK ``dpstrf``): the pivots taken before the largest remaining diagonal
    falls to ``rtol`` times the largest variance. A fraction of an eigendecomposition's cost."""
    fortran = column_major(np.asarray(sigma, np.float64), private=True)  # factorised in place below
    largest = float(np.max(np.diag(fortran), initial=0.0))
    if largest <= 0:
        return 0
    _, _, rank, info = scipy.linalg.lapack.dpstrf(fortran, tol=rtol * largest, lower=1, overwrite_a=True)
    if info < 0:
        raise ValueError(f"dpstrf: illegal argument {-info}")
    return int(rank)
