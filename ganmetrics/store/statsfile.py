"""The statistics file: ``.npz`` with ``mu``, ``sigma``, ``n`` and JSON ``meta``, and optionally
the feature bank ``features``.

``mu`` float64 (D,), ``sigma`` float64 (D, D), ``n`` int64 (), ``meta`` a 0-d unicode array of
JSON (extractor, dims, resize, weights sha256, calibrated, tf32, version, source). ``features``
(written by ``ganmetrics stats --features``, and in cache entries that KID asked for): every
image's float32 (n, D) features in image order, the state of a ``FeatureBank``. pytorch-fid and
the TF code read ``mu``/``sigma`` unchanged; their files (no ``meta``) are read here with a
warning. Written atomically: a temporary file in the same folder, then a rename.

Every file read is checked before use, so a damaged or hand-made file cannot give a silent wrong
FID: ``mu``, ``sigma`` (and ``features``) finite; ``sigma`` symmetric to rounding
(max |S - Sᵀ| <= 1e-6 max |S|) and positive semi-definite to tolerance (smallest eigenvalue
>= -1e-6 times the largest, checked with one Cholesky factorisation of the shifted matrix).
Statistics that are not finite are never written.
"""

import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomicfile import atomic_write
from ..errors import GanMetricsError, describe_error, quoted

SYMMETRY_TOLERANCE = 1e-6  # max |S - S^T| <= this * max |S|
PSD_TOLERANCE = 1e-6  # smallest eigenvalue >= -this * the largest



def covariance_problem(mu: np.ndarray, sigma: np.ndarray) -> str | None:
    """What is wrong with float64 Gaussian statistics (mu (D,), sigma (D, D)), or None: not
    finite, sigma not symmetric to rounding, or not positive semi-definite to tolerance.

    The last check factorises ``sigma + 1e-6 * L * I`` by Cholesky, L a lower bound of the
    largest eigenvalue (the largest diagonal entry or a power-iteration Rayleigh quotient), so
    it passes whenever the smallest eigenvalue is >= -1e-6 times the largest (rounding leaves
    ~1e-13), at the cost of one factorisation (no eigendecomposition)."""
    if not np.isfinite(mu).all():
        return f"mu holds NaN or infinity ({int((~np.isfinite(mu)).sum())} of {mu.size} entries)"
    if not np.isfinite(sigma).all():
        return f"sigma holds NaN or infinity ({int((~np.isfinite(sigma)).sum())} of {sigma.size} entries)"
    scale = float(np.abs(sigma).max())
    asymmetry = float(np.abs(sigma - sigma.T).max())
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        return (f"sigma is not symmetric (max |S - S^T| = {asymmetry:.3g}, above {SYMMETRY_TOLERANCE:g} x "
                f"max |S| = {scale:.3g})")
    if scale == 0.0:
        return None  # all images alike: a zero covariance is positive semi-definite
    diagonal = np.diag(sigma)
    vector = np.sqrt(np.abs(diagonal)) + 1.0 / np.sqrt(sigma.shape[0])
    for _ in range(8):
        vector = sigma @ vector
        vector /= np.linalg.norm(vector) or 1.0
    largest = max(float(diagonal.max()), float(vector @ sigma @ vector))
    if largest <= 0.0:
        return f"sigma is not positive semi-definite (its largest diagonal entry is {float(diagonal.max()):.3g})"
    if float(diagonal.min()) < -PSD_TOLERANCE * largest:
        return (f"sigma is not positive semi-definite (a diagonal variance is {float(diagonal.min()):.3g}; "
                "variances are never negative)")
    from scipy.linalg.lapack import dpotrf  # LAPACK directly: no torch import, and no copy of the factor

    _, info = dpotrf(sigma + PSD_TOLERANCE * largest * np.eye(sigma.shape[0]), lower=1, clean=0, overwrite_a=1)
    if info != 0:
        return (f"sigma is not positive semi-definite (an eigenvalue is below -{PSD_TOLERANCE:g} x the largest, "
                f"about {largest:.3g})")
    return None


@dataclass(frozen=True)
class Statistics:
    """Gaussian statistics of a set's features. ``n`` and ``meta`` are None for files written by
    pytorch-fid or TTUR. ``meta`` keys: extractor, dims, resize, weights_sha256, calibrated,
    tf32 (GPU convolutions in TF32: ``--allow-tf32``), version, source. ``features``: the
    feature bank, float32 (n, D) in image order, or None."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None
    meta: dict | None
    features: np.ndarray | None = None

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])


def save_statistics(path: str | os.PathLike, stats: Statistics) -> None:
    """Write ``stats`` to ``path`` atomically; nothing is left behind if writing fails."""
    path = Path(path)
    if not path.parent.is_dir():
        raise GanMetricsError(f"cannot write {quoted(path)}: folder {quoted(path.parent)} does not exist; create it first")
    for name, value in (("mu", stats.mu), ("sigma", stats.sigma), ("features", stats.features)):
        if value is not None and not np.isfinite(np.asarray(value)).all():
            raise GanMetricsError(
                f"the statistics for {quoted(path)} are not finite ({name} holds NaN or infinity): nothing "
                "written; check the images, the weights and the device"
            )
    bank = {} if stats.features is None else {"features": np.asarray(stats.features, np.float32)}
    with atomic_write(path) as f:
        np.savez(
            f,
            mu=np.asarray(stats.mu, np.float64),
            sigma=np.asarray(stats.sigma, np.float64),
            n=np.int64(stats.n if stats.n is not None else -1),
            meta=np.array(json.dumps(stats.meta or {}, sort_keys=True)),
            **bank,
        )


def is_statistics_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` holding ``mu`` and ``sigma`` (ours, pytorch-fid's or TTUR's)."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return {"mu.npy", "sigma.npy"} <= names


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Read and check a statistics file; a file without ``meta`` is accepted with a warning."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise GanMetricsError(f"statistics file {quoted(path)} does not exist: check the path") from None
    except Exception as err:  # numpy raises several types for a damaged archive
        raise GanMetricsError(
            f"cannot read statistics file {quoted(path)} ({describe_error(err)}): recreate it with `ganmetrics stats`"
        ) from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise GanMetricsError(
            f"{quoted(path)} has no 'mu'/'sigma' arrays (keys: {sorted(arrays)}): it is not a statistics file; "
            "create one with `ganmetrics stats`"
        )
    mu, sigma = arrays["mu"], arrays["sigma"]
    numeric = mu.dtype.kind in "fiu" and sigma.dtype.kind in "fiu"
    if not numeric or mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or mu.shape[0] == 0:
        raise GanMetricsError(
            f"{quoted(path)}: mu {mu.shape} and sigma {sigma.shape} are not a (D,) mean and (D, D) covariance: "
            "recreate it with `ganmetrics stats`"
        )
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    problem = covariance_problem(mu, sigma)
    if problem:
        raise GanMetricsError(f"statistics file {quoted(path)}: {problem}: recreate it with `ganmetrics stats`")
    meta = None
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise GanMetricsError(f"{quoted(path)}: its 'meta' is not a JSON object: recreate it with `ganmetrics stats`")
    else:
        warnings.warn(
            f"{quoted(path)} has no metadata (written by pytorch-fid or TTUR?): cannot check that it was made "
            "with the same weights, resize and dims",
            stacklevel=2,
        )
    count = arrays.get("n")
    if count is not None and (count.ndim != 0 or count.dtype.kind not in "iu"):
        raise GanMetricsError(f"{quoted(path)}: its 'n' is not an integer count: recreate it with `ganmetrics stats`")
    n = int(count) if count is not None and int(count) >= 0 else None
    features = arrays.get("features")
    if features is not None and (features.dtype.kind != "f" or features.shape != (n, mu.shape[0])):
        raise GanMetricsError(
            f"{quoted(path)}: its 'features' {features.shape} are not one {mu.shape[0]}-wide row per image ({n}): "
            "recreate it with `ganmetrics stats --features`"
        )
    if features is not None and not np.isfinite(features).all():
        raise GanMetricsError(
            f"statistics file {quoted(path)}: its 'features' hold NaN or infinity: recreate it with `ganmetrics stats --features`"
        )
    return Statistics(mu, sigma, n, meta,
                      None if features is None else features.astype(np.float32))
