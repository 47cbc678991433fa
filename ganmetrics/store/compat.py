"""The layouts of other tools' statistics files, and of ganmetrics' own earlier files, mapped onto
the entries of ``states.py``: the one place that knows them.

- **pytorch-fid / TTUR**: ``mu`` float (D,) and ``sigma`` float (D, D) of the FID network's pool3
  (or another tap): the Gaussian of ``LEGACY_ENCODER``'s feature named by its width. Our
  statistics files write the default encoder's FID Gaussian under these names (with ``n``,
  ``meta`` and, with ``--features``, its bank as ``features``), so pytorch-fid reads them.
- **the ADM evaluator**: ``mu``, ``sigma`` (pool3) and ``mu_s``, ``sigma_s`` (sFID's spatial
  features, 2023 dims) beside its images ``arr_0`` (``batchfile.IMAGES_KEY``). Another feature's
  Gaussian sits beside ``mu``/``sigma`` as ``mu_<tag>``/``sigma_<tag>`` (``TAGS``; others: the
  feature's name).
- **EDM2** (``calculate_metrics.py``): reference statistics pickled as ``.pkl`` files,
  ``{"num_images": N, "fid": {"mu", "sigma"}, "fd_dinov2": {"mu", "sigma"}}`` (either metric
  may be absent), read as plain data only (``safepickle.py``): ``fid`` the Gaussian of
  ``LEGACY_ENCODER``'s feature named by its width (2048: pool3), ``fd_dinov2`` that of
  ``EDM2_ENCODERS``' class token. They carry no metadata.
- **ganmetrics 0.1 shard files**: states named ``gaussian.count`` (etc.) and ``meta.reducers``,
  of the ``LEGACY_ENCODER`` feature named by ``meta.dims``, read as entries of this layout.
"""

import os
import re
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, quoted
from .safepickle import load_plain_pickle
from .states import Key

LEGACY_ENCODER = "inception"
"""The encoder whose statistics pytorch-fid, TTUR and the ADM evaluator write: the FID network."""
GAUSSIAN, BANK = "gaussian", "feature_bank"
"""The reducer kinds of the arrays these layouts hold."""
TAGS = {"spatial": "s"}
"""Features whose Gaussians sit beside the FID tap's, and the tag of their keys (others: their name)."""
_TAGGED_KEY = re.compile(r"(mu|sigma)_(.+)")


def gaussian_keys(feature: str) -> tuple[str, str]:
    """The keys of ``feature``'s Gaussian beside the FID tap's: ("mu_s", "sigma_s") for "spatial"."""
    tag = TAGS.get(feature, feature)
    return f"mu_{tag}", f"sigma_{tag}"


def _feature_of_tag(tag: str) -> str:
    return next((feature for feature, known in TAGS.items() if known == tag), tag)


def legacy_names(names) -> set[str]:
    """The array names among ``names`` that this module's layouts give meaning to."""
    return {name for name in names if name in ("mu", "sigma", "n", "features") or _TAGGED_KEY.fullmatch(name)}


def holds_legacy_statistics(names) -> bool:
    """Whether a file of array ``names`` holds statistics in pytorch-fid's or the ADM evaluator's
    names: ``mu`` and ``sigma``, or any key of a Gaussian kept beside them (an incomplete set is
    then reported by ``legacy_entries``, not taken for images)."""
    names = set(names)
    beside = {key for feature in TAGS for key in gaussian_keys(feature)}
    return {"mu", "sigma"} <= names or not beside.isdisjoint(names)


def _missing_pairs(path, keys: set[str]) -> None:
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


def primary_feature(meta: dict | None, mu: np.ndarray) -> str:
    """The feature ``mu``/``sigma`` are of: the meta's ``feature``, else named by its width
    (``meta.dims`` or the mean's length: the legacy encoder's taps are named so)."""
    meta = meta or {}
    return str(meta.get("feature", meta.get("dims", len(mu))))


def legacy_entries(path, arrays: dict[str, np.ndarray], meta: dict | None) -> tuple[str, dict[Key, dict]]:
    """(the primary feature, {entry: fields}) of the arrays a statistics file holds in these
    names, of the encoder ``meta`` names (``LEGACY_ENCODER`` where it names none): ``mu``/``sigma``/
    ``n`` the primary Gaussian, ``features`` its bank, ``mu_<tag>``/``sigma_<tag>`` other
    features' Gaussians. Pairs must be complete."""
    _missing_pairs(path, set(arrays) & ({"mu", "sigma"} | {k for k in arrays if _TAGGED_KEY.fullmatch(k)}))
    encoder = (meta or {}).get("encoder", LEGACY_ENCODER)
    feature = primary_feature(meta, np.asarray(arrays["mu"]).reshape(-1))
    n = arrays.get("n", np.int64(-1))
    entries: dict[Key, dict] = {(encoder, feature, GAUSSIAN): {"n": n, "mu": arrays["mu"], "sigma": arrays["sigma"]}}
    if "features" in arrays:
        entries[(encoder, feature, BANK)] = {"features": arrays["features"]}
    for tag in sorted({m.group(2) for key in arrays if (m := _TAGGED_KEY.fullmatch(key))}):
        entries[(encoder, _feature_of_tag(tag), GAUSSIAN)] = {"n": n, "mu": arrays[f"mu_{tag}"],
                                                             "sigma": arrays[f"sigma_{tag}"]}
    return feature, entries


def legacy_arrays(entries: dict[str, dict[str, dict]], feature: str) -> tuple[dict[str, np.ndarray], set[tuple[str, str]]]:
    """(the arrays in these names, the (feature, kind) pairs they hold) of one encoder's
    ``entries`` ({feature: {kind: fields}}) whose primary Gaussian is ``feature``'s: its fields
    as ``mu``/``sigma``/``n``, its bank as ``features``, other features' Gaussians as
    ``mu_<tag>``/``sigma_<tag>``. What these names cannot hold (another feature's bank) is left."""
    primary = entries[feature][GAUSSIAN]
    arrays = {"mu": primary["mu"], "sigma": primary["sigma"], "n": primary["n"]}
    held = {(feature, GAUSSIAN)}
    if BANK in entries[feature]:
        arrays["features"] = entries[feature][BANK]["features"]
        held.add((feature, BANK))
    for other, kinds in entries.items():
        if other != feature and GAUSSIAN in kinds:
            mu_key, sigma_key = gaussian_keys(other)
            arrays.update({mu_key: kinds[GAUSSIAN]["mu"], sigma_key: kinds[GAUSSIAN]["sigma"]})
            held.add((other, GAUSSIAN))
    return arrays, held


def legacy_meta(meta: dict) -> dict:
    """An encoder's meta as a statistics file's flat ``meta`` holds it: without the keys that
    only name the entry where the legacy layout names it so (the legacy encoder, its feature
    named by its width), so files of the default encoder's FID statistics keep the meta earlier
    versions wrote."""
    if meta.get("encoder", LEGACY_ENCODER) != LEGACY_ENCODER:
        return dict(meta)
    implied = {"encoder": LEGACY_ENCODER, "feature": str(meta.get("dims"))}
    return {key: value for key, value in meta.items() if key not in implied or value != implied[key]}


EDM2_SUFFIX = ".pkl"
EDM2_ENCODERS = {"fid": (LEGACY_ENCODER, None), "fd_dinov2": ("dinov2-vitl14", "cls")}
"""EDM2's statistics by metric: (the encoder, its feature; None: named by the mean's width)."""


def is_edm2_statistics(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that EDM2's statistics would be: a ``.pkl``."""
    path = Path(path)
    return path.suffix.lower() == EDM2_SUFFIX and path.is_file()


def edm2_entries(path: str | os.PathLike) -> tuple[dict[Key, dict], dict[Key, dict[str, str]]]:
    """({entry: fields}, {entry: {field: the name it is shown under in messages}}) of EDM2's
    statistics in the ``.pkl`` at ``path``, read as plain data (nothing in the file runs): one
    Gaussian per metric it holds, ``n`` its ``num_images`` (-1 where absent). Anything but a
    dict of such metrics is refused in one line."""
    stats = load_plain_pickle(path)
    held = {metric: stats[metric] for metric in EDM2_ENCODERS if isinstance(stats, dict) and metric in stats}
    if not held or not all(isinstance(value, dict) and {"mu", "sigma"} <= set(value) for value in held.values()):
        keys = sorted(map(str, stats)) if isinstance(stats, dict) else type(stats).__name__
        raise GanMetricsError(f"{quoted(path)} holds no EDM2 statistics (a dict of 'fid'/'fd_dinov2' to "
                              f"{{'mu', 'sigma'}}; it holds {keys}): pass statistics written by EDM2's "
                              "calculate_metrics.py ref, or by `ganmetrics stats`")
    n = stats.get("num_images", -1)
    entries, names = {}, {}
    for metric, value in held.items():
        mu, sigma = np.asarray(value["mu"]), np.asarray(value["sigma"])
        encoder, feature = EDM2_ENCODERS[metric]
        key = (encoder, feature or str(mu.reshape(-1).shape[0]), GAUSSIAN)
        entries[key] = {"n": np.asarray(n), "mu": mu, "sigma": sigma}
        names[key] = {"mu": f"{metric}.mu", "sigma": f"{metric}.sigma"}
    return entries, names


def is_old_shard(names) -> bool:
    """Whether array ``names`` are a ganmetrics 0.1 shard file's (``gaussian.count``, no ``mu``)."""
    return "gaussian.count" in names and "mu" not in names


def old_shard_entries(arrays: dict[str, np.ndarray], meta: dict) -> tuple[dict, dict[Key, dict]]:
    """(the meta of this layout, {entry: state fields}) of a ganmetrics 0.1 shard file: states
    named ``<kind>.<field>`` of the ``LEGACY_ENCODER`` feature named by ``meta.dims``, and a flat
    meta (that encoder's provenance and source beside ``shard``)."""
    feature = str(meta.get("dims"))
    entries: dict[Key, dict] = {}
    for name, value in arrays.items():
        kind, _, field = name.partition(".")
        entries.setdefault((LEGACY_ENCODER, feature, kind), {})[field] = value
    encoder = {key: value for key, value in meta.items() if key not in ("shard", "reducers")}
    return {"shard": meta["shard"], "encoders": {LEGACY_ENCODER: encoder}}, entries
