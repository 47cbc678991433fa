"""Shard files: the exact reduced state of one part of a source (``ganmetrics stats --shard
K/N``), which ``ganmetrics stats merge`` turns into an ordinary statistics file.

``.npz`` with ``meta``, a 0-d JSON string: the ``meta`` of a statistics file (extractor, dims,
resize, weights, tf32, version, source) plus ``shard`` ({"index", "count", "start", "stop",
"total", "batch_size", "names_sha256"}: part ``index`` of ``count``, images ``start`` to
``stop`` of ``total``, made with ``batch_size``, of a source whose image names hash to
``names_sha256``) and ``reducers`` (their kinds); then each reducer's ``state()`` as arrays
named ``<kind>.<key>``: ``gaussian.count`` int64 (), ``gaussian.mean`` float64 (D,),
``gaussian.comoment`` float64 (D, D) (the co-moment, not the covariance: merging is exact), and
with ``--features`` ``feature_bank.positions`` int64 (n,) and ``feature_bank.features``
float32 (n, D). No ``mu``/``sigma``: a shard file is never mistaken for statistics. Written
atomically; a file read is checked to hold what its meta says, in finite numbers.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted
from .atomicfile import atomic_write, check_writable_folder
from .statsfile import npz_members

SHARD_KEYS = ("index", "count", "start", "stop", "total", "batch_size", "names_sha256")


@dataclass(frozen=True)
class Shard:
    """One part of a source, reduced. ``meta``: as in the file (with ``shard`` and
    ``reducers``); ``states``: {reducer kind: its ``state()``}."""

    meta: dict
    states: dict[str, dict[str, np.ndarray]]

    @property
    def info(self) -> dict:
        """The ``shard`` part of the meta: index, count, start, stop, total, batch_size, names_sha256."""
        return self.meta["shard"]


def save_shard(path: str | os.PathLike, shard: Shard) -> None:
    """Write ``shard`` to ``path`` atomically; nothing is left behind if writing fails."""
    path = Path(path)
    check_writable_folder(path, "path")
    arrays = {f"{kind}.{key}": value for kind, state in shard.states.items() for key, value in state.items()}
    meta = {**shard.meta, "reducers": sorted(shard.states)}
    with atomic_write(path) as f:
        np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def is_shard_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` that holds a shard's Gaussian state (``gaussian.count``) and no ``mu``."""
    names = npz_members(path)
    return "gaussian.count.npy" in names and "mu.npy" not in names


def _damaged(path: Path, what: str) -> GanMetricsError:
    return GanMetricsError(f"shard file {quoted(path)} {what}: compute it again with `ganmetrics stats SOURCE --shard K/N`")


def _arrays(path: Path, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the file at ``path`` (only ``names`` when given)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in (data.files if names is None else names)}
    except FileNotFoundError:
        raise GanMetricsError(f"shard file {quoted(path)} does not exist: check the path") from None
    except KeyError:
        raise _damaged(path, "has no shard metadata (is it a shard file?)") from None
    except Exception as err:  # numpy raises several types for a damaged archive
        raise _damaged(path, f"cannot be read ({describe_error(err)})") from None


def _meta(path: Path, stored: np.ndarray) -> dict:
    try:
        meta = json.loads(str(stored))
        info = meta["shard"]
        if not isinstance(meta["reducers"], list) or not all(isinstance(info[key], int) for key in SHARD_KEYS[:-1]) \
                or not isinstance(info["names_sha256"], str):
            raise TypeError
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise _damaged(path, "has no shard metadata (is it a shard file?)") from None
    return meta


def read_shard_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` of a shard file, reading nothing else (its states may be large)."""
    path = Path(path)
    return _meta(path, _arrays(path, ("meta",))["meta"])


def load_shard(path: str | os.PathLike) -> Shard:
    """Read and check a shard file."""
    path = Path(path)
    arrays = _arrays(path)
    if "meta" not in arrays:
        raise _damaged(path, "has no shard metadata (is it a shard file?)")
    meta = _meta(path, arrays.pop("meta"))
    info, kinds = meta["shard"], meta["reducers"]
    states: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in kinds}
    for name, value in arrays.items():
        kind, _, key = name.partition(".")
        if kind not in states:
            raise _damaged(path, f"holds {name!r}, not of its reducers {kinds}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise _damaged(path, f"holds NaN or infinity in {name!r}")
        states[kind][key] = value
    gaussian = states.get("gaussian", {})
    images = info["stop"] - info["start"]
    if set(gaussian) != {"count", "mean", "comoment"} or int(gaussian["count"]) != images:
        raise _damaged(path, f"does not hold the Gaussian state of its {images} images")
    bank = states.get("feature_bank")
    if bank is not None and not np.array_equal(bank.get("positions"), np.arange(info["start"], info["stop"])):
        raise _damaged(path, f"does not hold the features of its images {info['start']} to {info['stop'] - 1}")
    return Shard(meta, states)
