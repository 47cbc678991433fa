"""Statistics files: the reduced values of one set of images (Gaussians and feature banks, by
encoder and feature) that later runs compare against, in the one layout of ``states.py``.

The default encoder's FID Gaussian is written under pytorch-fid's names (``compat.py``): ``mu``
float64 (D,), ``sigma`` float64 (D, D), ``n`` int64 () and ``meta`` (a 0-d unicode array of
JSON: extractor, dims, its options, weights sha256, calibrated, tf32, version, source), with
its feature bank as ``features`` (float32 (n, D), ``ganmetrics stats --features``) and other
features' Gaussians beside it as ``mu_<tag>``/``sigma_<tag>`` (``mu_s``/``sigma_s``: sFID's, as
the ADM evaluator's reference batches hold them). So pytorch-fid and the TF code read
``mu``/``sigma`` unchanged, and files of theirs (no ``meta``) are read here with a warning.
Every other encoder's values are entries ``<encoder>/<feature>/<kind>/<field>``, its provenance
in ``meta["encoders"]``. Only the statistics are read from a file: an ADM batch's images
(``arr_0``) and labels (``arr_1``) are left in it. Written atomically.

A per-class file (``ganmetrics stats --per-class``) holds the statistics of each class of a
source apart: every encoder's provenance in ``meta["encoders"]``, the class names in order in
``meta["classes"]`` and each class's entries under its name, ``<class>/<encoder>/<feature>/
<kind>/<field>`` (no ``mu``/``sigma``: it holds no statistics of the whole set). Each class's
arrays are checked as a whole file's.

Every file read is checked before use, so a damaged or hand-made file cannot give a silent wrong
FID: every mean, covariance and bank finite; each covariance symmetric to rounding
(max |S - Sᵀ| <= 1e-6 max |S|) and positive semi-definite to tolerance (smallest eigenvalue
>= -1e-6 times the largest, checked with one Cholesky factorisation of the shifted matrix); the
Gaussians' keys in complete pairs; a bank one row per image.
"""

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GanMetricsError, quoted
from .compat import (BANK, GAUSSIAN, LEGACY_ENCODER, gaussian_keys, holds_legacy_statistics, legacy_arrays,
                     legacy_entries, legacy_meta, legacy_names, primary_feature)
from .states import Key, StateFile, array_name, entry_keys, npz_members, parse_meta, read_arrays, write_state_file

SYMMETRY_TOLERANCE = 1e-6  # max |S - S^T| <= this * max |S|
PSD_TOLERANCE = 1e-6  # smallest eigenvalue >= -this * the largest
FIX = "recreate it with `ganmetrics stats`"


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


def gaussian_fields(mu, sigma, n: int | None) -> dict[str, np.ndarray]:
    """A Gaussian's entry fields: ``n`` int64 () (-1: unknown), ``mu``, ``sigma`` float64."""
    return {"n": np.int64(-1 if n is None else n), "mu": np.asarray(mu, np.float64),
            "sigma": np.asarray(sigma, np.float64)}


class Statistics:
    """The reduced values of one set of images that a statistics file holds: ``entries``
    ({(encoder, feature, kind): {field: array}}: a Gaussian's ``n``, ``mu``, ``sigma``; a feature
    bank's ``features``) and ``metas`` ({encoder: its meta}, None for a file without metadata).

    Per-class statistics (``classes``: {class name: its ``Statistics``}, in order) hold no
    entries of their own and share ``metas`` with their classes; what reads one set's values
    (``mu``, ``n``, ...) is refused on them in one line.

    ``Statistics(mu, sigma, n, meta, features=None, more=None)`` builds one encoder's FID
    statistics: a Gaussian of the encoder and feature ``meta`` names (``encoder``: absent for the
    legacy encoder, ``compat.LEGACY_ENCODER``; ``feature``: absent where it is named by its
    width, as that encoder's ``--dims`` taps), ``features`` its bank (float32 (n, D), or None), ``more`` the Gaussians of
    further features of the same images ({feature: ``Statistics``}). ``mu``, ``sigma``, ``n``,
    ``meta``, ``features``, ``more`` and ``dims`` read the same way: those of the first encoder's
    FID Gaussian (the primary: the legacy encoder's where the file has it)."""

    def __init__(self, mu=None, sigma=None, n: int | None = None, meta: dict | None = None, features=None,
                 more: Mapping[str, "Statistics"] | None = None, *, entries: Mapping[Key, Mapping] | None = None,
                 metas: Mapping[str, dict | None] | None = None, classes: Mapping[str, "Statistics"] | None = None):
        self.classes = dict(classes or {})
        if self.classes:
            entries = {}
        elif entries is None:
            encoder = (meta or {}).get("encoder", LEGACY_ENCODER)
            feature = primary_feature(meta, np.asarray(mu).reshape(-1))
            entries = {(encoder, feature, GAUSSIAN): gaussian_fields(mu, sigma, n)}
            if features is not None:
                entries[(encoder, feature, BANK)] = {"features": np.asarray(features, np.float32)}
            for other, stats in (more or {}).items():
                entries[(encoder, other, GAUSSIAN)] = gaussian_fields(stats.mu, stats.sigma, stats.n)
            metas = {encoder: meta}
        self.entries = dict(entries)
        self.metas = dict(metas or {})

    def __repr__(self) -> str:
        if self.classes:
            return f"Statistics(classes={list(self.classes)})"
        return f"Statistics({sorted(self.entries)}, n={self.n})"

    @property
    def primary(self) -> tuple[str, str]:
        """(encoder, feature) of the primary Gaussian: the legacy encoder's FID feature where present."""
        if self.classes:
            raise GanMetricsError(f"these statistics are per class ({', '.join(self.classes)}): take one class's, "
                                  f"e.g. .classes[{next(iter(self.classes))!r}]")
        encoders = sorted(self.metas, key=lambda name: name != LEGACY_ENCODER)
        for encoder in encoders:
            for (name, feature, kind) in self.entries:
                if name == encoder and kind == GAUSSIAN and feature == self.feature_of(encoder):
                    return encoder, feature
        raise GanMetricsError("these statistics hold no FID Gaussian")

    def feature_of(self, encoder: str) -> str | None:
        """The feature of ``encoder``'s FID Gaussian (its meta's ``feature`` or ``dims``)."""
        meta = self.metas.get(encoder)
        if meta is not None:
            return str(meta.get("feature", meta.get("dims")))
        gaussians = [feature for (name, feature, kind), fields in self.entries.items() if name == encoder and kind == GAUSSIAN]
        return gaussians[0] if gaussians else None  # a file without metadata holds one (pytorch-fid's)

    def _primary_field(self, name: str):
        encoder, feature = self.primary
        return self.entries[(encoder, feature, GAUSSIAN)][name]

    @property
    def mu(self) -> np.ndarray:
        return self._primary_field("mu")

    @property
    def sigma(self) -> np.ndarray:
        return self._primary_field("sigma")

    @property
    def n(self) -> int | None:
        n = int(self._primary_field("n"))
        return n if n >= 0 else None

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])

    @property
    def meta(self) -> dict | None:
        return self.metas.get(self.primary[0])

    @property
    def features(self) -> np.ndarray | None:
        encoder, feature = self.primary
        bank = self.entries.get((encoder, feature, BANK))
        return None if bank is None else bank["features"]

    @property
    def more(self) -> dict[str, "Statistics"]:
        """The Gaussians of the primary encoder's other features, each as one-feature ``Statistics``."""
        encoder, primary = self.primary
        meta = self.meta
        return {feature: Statistics(fields["mu"], fields["sigma"], self.n,
                                    None if meta is None else {**meta, "dims": len(fields["mu"]), "feature": feature})
                for (name, feature, kind), fields in self.entries.items()
                if name == encoder and kind == GAUSSIAN and feature != primary}

    def with_entries(self, entries: Mapping[Key, Mapping], metas: Mapping[str, dict]) -> "Statistics":
        """These statistics with further ``entries`` and ``metas`` (another encoder's, say)."""
        return Statistics(entries={**self.entries, **entries}, metas={**self.metas, **metas})


def save_statistics(path: str | os.PathLike, stats: Statistics) -> None:
    """Write ``stats`` (of one set, or per class) to ``path`` atomically; nothing is left behind
    if writing fails."""
    if stats.classes:
        entries = {(name, *key): fields for name, part in stats.classes.items() for key, fields in part.entries.items()}
        write_state_file(path, StateFile({"classes": list(stats.classes), "encoders": stats.metas}, entries))
        return
    by_encoder: dict[str, dict[str, dict[str, Any]]] = {}
    for (encoder, feature, kind), fields in stats.entries.items():
        by_encoder.setdefault(encoder, {}).setdefault(feature, {})[kind] = fields
    meta: dict = {}
    legacy, entries, others = {}, {}, {}
    for encoder, features in by_encoder.items():
        primary, held = stats.feature_of(encoder), set()
        if encoder == LEGACY_ENCODER and primary in features and GAUSSIAN in features[primary]:
            legacy, held = legacy_arrays(features, primary)
            meta.update(legacy_meta(stats.metas.get(encoder) or {}))
        else:
            others[encoder] = stats.metas.get(encoder)
        entries.update({(encoder, feature, kind): fields for feature, kinds in features.items()
                        for kind, fields in kinds.items() if (feature, kind) not in held})
    if others:
        meta["encoders"] = others
    write_state_file(path, StateFile(meta, entries, {key: np.asarray(value) for key, value in legacy.items()}))


def is_statistics_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` holding statistics: pytorch-fid's names (ours, pytorch-fid's, TTUR's,
    an ADM reference batch's), or entries of values with no ``shard`` in their meta."""
    names = npz_members(path)
    if holds_legacy_statistics(names):
        return True
    if not entry_keys(names) or "meta" not in names:
        return False
    meta = parse_meta(path, read_arrays(path, "statistics file", FIX, {"meta"}.__contains__)["meta"], FIX)
    return "shard" not in meta


def statistics_classes(path: str | os.PathLike) -> list[str]:
    """The classes a statistics file's meta lists (none: a file of one set), reading nothing else."""
    meta = parse_meta(path, read_arrays(path, "statistics file", FIX, {"meta"}.__contains__).get("meta"), FIX)
    return list((meta or {}).get("classes", []))


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Read and check a statistics file; a file without ``meta`` is accepted with a warning.
    Only the statistics' arrays are read (an ADM batch's images stay on disk)."""
    stats = read_statistics(path)
    if not stats.classes and stats.meta is None:
        warn_without_metadata(path)
    return stats


def warn_without_metadata(path: str | os.PathLike) -> None:
    """The warning for statistics without ``meta`` (pytorch-fid's, TTUR's, the ADM evaluator's)."""
    warnings.warn(
        f"{quoted(Path(path))} has no metadata (written by pytorch-fid, TTUR or the ADM evaluator?): cannot check "
        "that it was made with the same weights and encoder options",
        stacklevel=3,
    )


def _checked_gaussian(path: Path, names: tuple[str, str], fields: Mapping) -> dict[str, np.ndarray]:
    """A Gaussian entry's fields (stored as the arrays ``names`` of its mean and covariance),
    checked: a (D,) mean and (D, D) covariance of a sound Gaussian (``covariance_problem``), an
    integer count; as float64 arrays."""
    mu, sigma, count = fields.get("mu"), fields.get("sigma"), fields.get("n", np.int64(-1))
    if mu is None or sigma is None:
        raise GanMetricsError(f"{quoted(path)} has {names[0] if sigma is None else names[1]!r} without its pair: {FIX}")
    numeric = mu.dtype.kind in "fiu" and sigma.dtype.kind in "fiu"
    if not numeric or mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or mu.shape[0] == 0:
        raise GanMetricsError(f"{quoted(path)}: {names[0]} {mu.shape} and {names[1]} {sigma.shape} are not a (D,) "
                              f"mean and (D, D) covariance: {FIX}")
    if count.ndim != 0 or count.dtype.kind not in "iu":
        raise GanMetricsError(f"{quoted(path)}: its 'n' is not an integer count: {FIX}")
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    problem = covariance_problem(mu, sigma)
    if problem:
        which = "" if names[0] == "mu" else f"{names[0]}/{names[1]}: "
        raise GanMetricsError(f"statistics file {quoted(path)}: {which}{problem}: {FIX}")
    return {"n": np.int64(count), "mu": mu, "sigma": sigma}


def _checked_bank(path: Path, name: str, fields: Mapping, n: int | None, dims: int | None) -> dict[str, np.ndarray]:
    """A feature bank's fields (its features stored as the array ``name``), checked: float, one
    row per image (of ``dims`` features where known), finite."""
    features = fields.get("features")
    fix = "recreate it with `ganmetrics stats --features`"
    if features is None or features.dtype.kind != "f" or features.ndim != 2 or \
            (n is not None and len(features) != n) or (dims is not None and features.shape[1] != dims):
        shape = None if features is None else features.shape
        raise GanMetricsError(f"{quoted(path)}: its '{name}' {shape} are not one {dims}-wide row per image ({n}): {fix}")
    if not np.isfinite(features).all():
        raise GanMetricsError(f"statistics file {quoted(path)}: its '{name}' hold NaN or infinity: {fix}")
    return {"features": features.astype(np.float32)}


def _statistics_array(name: str) -> bool:
    """Whether a file's array ``name`` belongs to its statistics (not an ADM batch's images or labels)."""
    return name == "meta" or bool(legacy_names([name])) or name.count("/") in (3, 4)


def _checked_entries(path: Path, entries: Mapping[Key, Mapping], stored: Callable[[Key, str], str]) -> dict[Key, dict]:
    """``entries`` checked: each Gaussian (``_checked_gaussian``), each bank against its feature's
    Gaussian (``_checked_bank``), the rest as they are; ``stored(key, field)``: the array name a
    field is stored under, for the messages."""
    checked = {key: _checked_gaussian(path, (stored(key, "mu"), stored(key, "sigma")), fields)
               for key, fields in entries.items() if key[2] == GAUSSIAN}
    for key, fields in entries.items():
        if key[2] == BANK:
            gaussian = checked.get((key[0], key[1], GAUSSIAN))
            n = None if gaussian is None or int(gaussian["n"]) < 0 else int(gaussian["n"])
            checked[key] = _checked_bank(path, stored(key, "features"), fields, n,
                                         None if gaussian is None else len(gaussian["mu"]))
        elif key[2] != GAUSSIAN:
            checked[key] = dict(fields)
    return checked


def _class_statistics(path: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> Statistics:
    """The per-class statistics of a file whose ``meta`` names its ``classes``: each class's
    arrays (``<class>/<encoder>/<feature>/<kind>/<field>``) checked as a whole file's."""
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) and name for name in classes) \
            or len(set(classes)) != len(classes):
        raise GanMetricsError(f"{quoted(path)}: its meta 'classes' is not a list of distinct class names: {FIX}")
    entries: dict[str, dict[Key, dict]] = {name: {} for name in classes}
    for name, value in arrays.items():
        of_class, _, rest = name.partition("/")
        if of_class not in entries or rest.count("/") != 3:
            raise GanMetricsError(f"{quoted(path)}: its array {name!r} is of none of the classes its meta names "
                                  f"({', '.join(classes)}): {FIX} --per-class")
        *key, field = rest.split("/")
        entries[of_class].setdefault(tuple(key), {})[field] = value
    empty = [name for name, held in entries.items() if not held]
    if empty:
        raise GanMetricsError(f"{quoted(path)} holds no statistics of the class {empty[0]!r} its meta names: "
                              f"{FIX} --per-class")
    metas = dict(meta.get("encoders", {}))
    return Statistics(metas=metas, classes={
        name: Statistics(entries=_checked_entries(path, held, lambda key, field, name=name: array_name((name, *key), field)),
                         metas=metas) for name, held in entries.items()})


def read_statistics(path: str | os.PathLike) -> Statistics:
    """``load_statistics`` without its warning, for callers that warn only where they use the
    statistics (an ADM batch may serve only its images)."""
    path = Path(path)
    arrays = read_arrays(path, "statistics file", FIX, _statistics_array)
    meta = parse_meta(path, arrays.pop("meta", None), FIX)
    if meta is not None and "classes" in meta:
        return _class_statistics(path, arrays, meta)
    metas: dict[str, dict | None] = dict((meta or {}).get("encoders", {}))
    entries: dict[Key, dict] = {}
    stored: dict[Key, dict[str, str]] = {}  # the names the legacy layout stores fields under
    if holds_legacy_statistics(arrays):
        flat = None if meta is None else {k: v for k, v in meta.items() if k != "encoders"}
        primary, legacy = legacy_entries(path, {k: arrays[k] for k in legacy_names(arrays)}, flat)
        entries.update(legacy)
        for key in legacy:
            mu, sigma = ("mu", "sigma") if key[1] == primary else gaussian_keys(key[1])
            stored[key] = {"mu": mu, "sigma": sigma, "features": "features"}
        metas[next(iter(legacy))[0]] = flat
    for name, value in arrays.items():
        if name.count("/") == 3:
            *key, field = name.split("/")
            entries.setdefault(tuple(key), {})[field] = value
    if not entries:
        raise GanMetricsError(f"{quoted(path)} has no 'mu'/'sigma' arrays (keys: {sorted(arrays)}): it is not a "
                              "statistics file; create one with `ganmetrics stats`")
    checked = _checked_entries(path, entries, lambda key, field: stored.get(key, {}).get(field, array_name(key, field)))
    return Statistics(entries=checked, metas=metas)
