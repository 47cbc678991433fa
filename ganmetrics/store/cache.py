"""The statistics cache: statistics files under ``cache_dir()/stats``, keyed by everything the
numbers depend on.

A key is a JSON-able dict; the engine makes it from the source's fingerprint (a folder: its
path and every image's relative path, size and modification time; an archive: its path, size,
modification time and image members; an array: a hash of its content) and the provenance
settings that change the numbers (extractor, weights sha256, resize, dims, tf32, ganmetrics
version). So a changed, added or removed file, or another option, misses. The cache knows no
extractor and no source: ``get``/``put`` take the key. Entries are ordinary statistics files
(``statsfile.py``, with the feature bank where KID asked for it), or, for values derived from
them (``get_state``/``put_state``: the k-NN radii of precision/recall and density/coverage),
``.npz`` files of named arrays with ``n`` and ``meta`` (a statistics file's, plus ``derived``:
what they hold); all written atomically. An unreadable entry is reported in one line and recomputed.
"""

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError
from .atomicfile import atomic_write
from .paths import cache_dir
from .statsfile import Statistics, read_statistics, save_statistics


def stats_cache_dir() -> Path:
    """The folder of cached statistics."""
    return cache_dir() / "stats"


def entry_path(key: dict) -> Path:
    """Where the entry of ``key`` lives: the sha256 of its sorted JSON."""
    payload = json.dumps(key, sort_keys=True)
    return stats_cache_dir() / f"{hashlib.sha256(payload.encode()).hexdigest()}.npz"


def get(key: dict, dims: int, label: str) -> Statistics | None:
    """The entry of ``key`` (``dims``-wide statistics of what ``label`` describes): None when
    absent, or when unreadable (with a one-line warning)."""
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        stats = read_statistics(path)  # no warning for a missing meta: that makes the entry corrupt, not foreign
    except GanMetricsError:
        stats = None
    if stats is None or stats.meta is None or stats.n is None or stats.dims != dims:
        _warn_corrupt(path, label)
        return None
    return stats


def put(key: dict, stats: Statistics) -> None:
    """Store ``stats`` as the entry of ``key``; a full or read-only disk costs the cache (one
    warning), not the result."""
    _store(entry_path(key), lambda path: save_statistics(path, stats))


def get_state(key: dict, n: int, label: str) -> dict[str, np.ndarray] | None:
    """The arrays of the derived-value entry of ``key`` (``put_state``) for ``n`` images of what
    ``label`` describes: None when absent, or when unreadable, not finite or not for ``n``
    images (with a one-line warning)."""
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta, count = json.loads(str(arrays.pop("meta"))), int(arrays.pop("n"))
        sound = isinstance(meta, dict) and count == n and all(
            np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")
    except Exception:  # any damage: recomputed
        sound = False
    if not sound:
        _warn_corrupt(path, label)
        return None
    return arrays


def put_state(key: dict, state: dict[str, np.ndarray], n: int, meta: dict) -> None:
    """Store the named arrays ``state`` of a value derived from ``n`` images as the entry of
    ``key``, with ``meta`` (a statistics file's, plus ``derived``); failures as ``put``."""
    def write(path: Path) -> None:
        with atomic_write(path) as f:
            np.savez(f, n=np.int64(n), meta=np.array(json.dumps(meta, sort_keys=True)), **state)

    _store(entry_path(key), write)


def _warn_corrupt(path: Path, label: str) -> None:
    warnings.warn(f"corrupt cache entry {path} for {label}: recomputing it", stacklevel=4)


def _store(path: Path, write: Callable[[Path], None]) -> None:
    """``write(path)`` into the cache folder; a full or read-only disk is one warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except (OSError, GanMetricsError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        warnings.warn(f"cannot write cache entry {path} ({reason}): continuing uncached", stacklevel=4)


@dataclass(frozen=True)
class CachedEntry:
    """One cache file as ``ganmetrics cache list`` shows it; ``source``, ``n``, ``dims`` and
    ``resize`` are None for an unreadable file. ``size``: bytes. ``derived``: for a derived
    value's entry, what it holds (e.g. "neighbour_radii distances=exact k=3"), else None."""

    path: Path
    size: int
    source: str | None
    n: int | None
    dims: int | None
    resize: str | None
    derived: str | None = None


def list_entries() -> list[CachedEntry]:
    """Every cache entry, sorted by source, reading only its metadata (not ``sigma``)."""
    folder = stats_cache_dir()
    entries = []
    for path in sorted(folder.glob("[!.]*.npz")) if folder.is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta, n = json.loads(str(data["meta"])), int(data["n"])
            derived = meta.get("derived")
            what = None if derived is None else " ".join(
                [derived["kind"], *(f"{name}={value}" for name, value in derived["options"].items())])
            entry = CachedEntry(path, path.stat().st_size, meta["source"], n, meta["dims"], meta["resize"], what)
        except Exception:  # any damage: listed as unreadable; `cache clear` removes it
            entry = CachedEntry(path, path.stat().st_size, None, None, None, None)
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.source is None, e.source or "", str(e.path)))


def clear() -> tuple[int, int]:
    """Remove every entry, and temporary files left by interrupted writes: (entries, bytes)."""
    folder = stats_cache_dir()
    removed = freed = 0
    for path in list(folder.glob("*.npz")) + list(folder.glob(".*.tmp")) if folder.is_dir() else []:
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        removed += path.suffix == ".npz"
        freed += size
    return removed, freed
