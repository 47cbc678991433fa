"""The statistics file: ``.npz`` with ``mu``, ``sigma``, ``n`` and JSON ``meta``, optionally the
feature bank ``features`` and the Gaussians of further features beside the FID tap's.

``mu`` float64 (D,), ``sigma`` float64 (D, D), ``n`` int64 (), ``meta`` a 0-d unicode array of
JSON (extractor, dims, resize, weights sha256, calibrated, tf32, version, source). ``features``
(written by ``ganmetrics stats --features``, and in cache entries that KID asked for): every
image's float32 (n, D) features in image order, the state of a ``FeatureBank``. ``mu``/``sigma``
hold the FID tap's Gaussian; another feature's Gaussian of the same images sits beside them as
``mu_<tag>``/``sigma_<tag>`` (``gaussian_keys``: tag ``s`` for sFID's "spatial" feature, the
names of the ADM evaluator's reference batches, whose ``mu``, ``sigma``, ``mu_s``, ``sigma_s``
are read as they are). pytorch-fid and the TF code read ``mu``/``sigma`` unchanged; their files
(no ``meta``) are read here with a warning. Only the statistics are read from a file: an ADM
batch's images (``arr_0``) and labels (``arr_1``) are left in it. Written atomically: a
temporary file in the same folder, then a rename.

Every file read is checked before use, so a damaged or hand-made file cannot give a silent wrong
FID: every ``mu``, ``sigma`` (and ``features``) finite; each ``sigma`` symmetric to rounding
(max |S - Sᵀ| <= 1e-6 max |S|) and positive semi-definite to tolerance (smallest eigenvalue
>= -1e-6 times the largest, checked with one Cholesky factorisation of the shifted matrix); the
Gaussians' keys in complete pairs. Statistics that are not finite are never written.
"""

import dataclasses
import json
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomicfile import atomic_write, check_writable_folder
from ..errors import GanMetricsError, describe_error, quoted

SYMMETRY_TOLERANCE = 1e-6  # max |S - S^T| <= this * max |S|
PSD_TOLERANCE = 1e-6  # smallest eigenvalue >= -this * the largest

KEY_TAGS = {"spatial": "s"}
"""Features whose Gaussians sit beside the FID tap's, and the tag of their keys (others: their name)."""
_TAGGED_KEY = re.compile(r"(mu|sigma)_(.+)")


def gaussian_keys(feature: str) -> tuple[str, str]:
    """The keys of ``feature``'s Gaussian beside the FID tap's: ("mu_s", "sigma_s") for "spatial"."""
    tag = KEY_TAGS.get(feature, feature)
    return f"mu_{tag}", f"sigma_{tag}"


def _feature_of_tag(tag: str) -> str:
    return next((feature for feature, known in KEY_TAGS.items() if known == tag), tag)



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
    from ..metrics.linalg import column_major  # SciPy: imported where statistics are checked

    scale = float(np.abs(sigma).max())
    fortran = column_major(sigma, private=True)  # the order LAPACK takes; as a C-ordered array, S^T
    asymmetry = float(np.abs(sigma - fortran.T).max())
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

    fortran[np.diag_indices(len(fortran))] += PSD_TOLERANCE * largest  # its own copy: the caller's stays as it is
    _, info = dpotrf(fortran, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        return (f"sigma is not positive semi-definite (an eigenvalue is below -{PSD_TOLERANCE:g} x the largest, "
                f"about {largest:.3g})")
    return None


@dataclass(frozen=True)
class Statistics:
    """Gaussian statistics of a set's features. ``n`` and ``meta`` are None for files written by
    pytorch-fid or TTUR (and ``n`` for the ADM evaluator's). ``meta`` keys: extractor, dims,
    resize, weights_sha256, calibrated, tf32 (GPU convolutions in TF32: ``--allow-tf32``),
    version, source. ``mu``/``sigma``: the FID tap's Gaussian; ``features``: its feature bank,
    float32 (n, D) in image order, or None; ``more``: the Gaussians of further features of the
    same images, by feature name (e.g. "spatial", sFID's), each a ``Statistics`` of its own width."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None
    meta: dict | None
    features: np.ndarray | None = None
    more: Mapping[str, "Statistics"] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])

    def of_feature(self, feature: str) -> "Statistics | None":
        """The statistics of ``feature``: those in ``more`` for a feature kept beside the FID
        tap's (``KEY_TAGS``, or named in ``more``; None where this file lacks it), else these,
        the FID tap's (whose width the caller checks)."""
        if feature in self.more or feature in KEY_TAGS:
            return self.more.get(feature)
        return self

    def beside(self, mu: np.ndarray, sigma: np.ndarray) -> "Statistics":
        """The ``Statistics`` of another feature of the same images, for ``more``: the same
        ``n``, and ``meta`` with its width as ``dims``."""
        return Statistics(mu, sigma, self.n, None if self.meta is None else {**self.meta, "dims": int(mu.shape[0])})


def save_statistics(path: str | os.PathLike, stats: Statistics) -> None:
    """Write ``stats`` to ``path`` atomically; nothing is left behind if writing fails."""
    path = Path(path)
    check_writable_folder(path, "path")
    more = {}
    for feature, other in stats.more.items():
        mu_key, sigma_key = gaussian_keys(feature)
        more.update({mu_key: other.mu, sigma_key: other.sigma})
    arrays = (("mu", stats.mu), ("sigma", stats.sigma), ("features", stats.features), *more.items())
    for name, value in arrays:
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
            **{key: np.asarray(value, np.float64) for key, value in more.items()},
            n=np.int64(stats.n if stats.n is not None else -1),
            meta=np.array(json.dumps(stats.meta or {}, sort_keys=True)),
            **bank,
        )


def npz_members(path: str | os.PathLike) -> set[str]:
    """The member names (``mu.npy``, ...) of the ``.npz`` file at ``path``; none for anything else."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return set()
    try:
        with zipfile.ZipFile(path) as archive:
            return set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return set()


def is_statistics_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` holding statistics: ``mu`` and ``sigma`` (ours, pytorch-fid's, TTUR's,
    an ADM reference batch's), or any key of a Gaussian kept beside them (``mu_s``: an incomplete
    set is then reported by ``load_statistics``, not taken for images)."""
    names = npz_members(path)
    beside = {f"{key}.npy" for feature in KEY_TAGS for key in gaussian_keys(feature)}
    return {"mu.npy", "sigma.npy"} <= names or not beside.isdisjoint(names)


def _statistics_keys(keys: list[str]) -> list[str]:
    """The keys of a file that the statistics are read from (not an ADM batch's images or labels)."""
    return [key for key in keys if key in ("mu", "sigma", "n", "meta", "features") or _TAGGED_KEY.fullmatch(key)]


def _missing_pairs(path: Path, keys: set[str]) -> None:
    """Refuse Gaussians whose keys are not in complete pairs (``mu`` with ``sigma``, ``mu_s``
    with ``sigma_s``, and the FID tap's beside any other), naming what is missing."""
    tags = {match.group(2) for key in keys if (match := _TAGGED_KEY.fullmatch(key))}
    expected = {"mu", "sigma"} | {key for tag in tags for key in (f"mu_{tag}", f"sigma_{tag}")}
    missing = sorted(expected - keys, key=lambda k: (k.partition("_")[2], k))
    if not missing:
        return
    present = sorted(keys & expected, key=lambda k: (k.partition("_")[2], k))
    if not present:
        raise GanMetricsError(
            f"{quoted(path)} has no 'mu'/'sigma' arrays (keys: {sorted(keys)}): it is not a statistics file; "
            "create one with `ganmetrics stats`"
        )
    raise GanMetricsError(
        f"{quoted(path)} has {', '.join(map(repr, present))} but no {', '.join(map(repr, missing))}: statistics come "
        "as complete mean/covariance pairs (an ADM reference batch holds all four of 'mu', 'sigma', 'mu_s', 'sigma_s'); "
        "recreate it, e.g. with `ganmetrics stats --format adm`"
    )


def _gaussian(path: Path, arrays: dict, mu_key: str, sigma_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The checked float64 (mu, sigma) of a file under these keys."""
    mu, sigma = arrays[mu_key], arrays[sigma_key]
    numeric = mu.dtype.kind in "fiu" and sigma.dtype.kind in "fiu"
    if not numeric or mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or mu.shape[0] == 0:
        raise GanMetricsError(
            f"{quoted(path)}: {mu_key} {mu.shape} and {sigma_key} {sigma.shape} are not a (D,) mean and (D, D) "
            "covariance: recreate it with `ganmetrics stats`"
        )
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    problem = covariance_problem(mu, sigma)
    if problem:
        which = "" if mu_key == "mu" else f"{mu_key}/{sigma_key}: "
        raise GanMetricsError(f"statistics file {quoted(path)}: {which}{problem}: recreate it with `ganmetrics stats`")
    return mu, sigma


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Read and check a statistics file; a file without ``meta`` is accepted with a warning.
    Only the statistics' arrays are read (an ADM batch's images stay on disk)."""
    stats = read_statistics(path)
    if stats.meta is None:
        warn_without_metadata(path)
    return stats


def warn_without_metadata(path: str | os.PathLike) -> None:
    """The warning for statistics without ``meta`` (pytorch-fid's, TTUR's, the ADM evaluator's)."""
    warnings.warn(
        f"{quoted(Path(path))} has no metadata (written by pytorch-fid, TTUR or the ADM evaluator?): cannot check "
        "that it was made with the same weights, resize and dims",
        stacklevel=3,
    )


def read_statistics(path: str | os.PathLike) -> Statistics:
    """``load_statistics`` without its warning, for callers that warn only where they use the
    statistics (an ADM batch may serve only its images)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in _statistics_keys(data.files)}
    except FileNotFoundError:
        raise GanMetricsError(f"statistics file {quoted(path)} does not exist: check the path") from None
    except Exception as err:  # numpy raises several types for a damaged archive
        raise GanMetricsError(
            f"cannot read statistics file {quoted(path)} ({describe_error(err)}): recreate it with `ganmetrics stats`"
        ) from None
    _missing_pairs(path, set(arrays))
    mu, sigma = _gaussian(path, arrays, "mu", "sigma")
    meta = None
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise GanMetricsError(f"{quoted(path)}: its 'meta' is not a JSON object: recreate it with `ganmetrics stats`")
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
    stats = Statistics(mu, sigma, n, meta, None if features is None else features.astype(np.float32))
    tags = sorted({match.group(2) for key in arrays if (match := _TAGGED_KEY.fullmatch(key))})
    more = {_feature_of_tag(tag): stats.beside(*_gaussian(path, arrays, f"mu_{tag}", f"sigma_{tag}")) for tag in tags}
    return dataclasses.replace(stats, more=more)
