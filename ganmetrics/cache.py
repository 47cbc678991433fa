"""The statistics cache: FID statistics of sources under ``cache_dir()/stats``, keyed by
everything the numbers depend on.

The key is the sha256 of the source's fingerprint (a folder: its path and every image's relative
path, size and modification time; an archive: its path, size, modification time and image
members; an array: a hash of its content) and of the extractor settings that change the numbers
(extractor, weights sha256, resize, dims, ganmetrics version). So a changed, added or removed
file, or another option, misses. Entries are ordinary statistics files (``statsfile.py``),
written atomically; an unreadable entry is reported in one line and recomputed.
"""

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GanMetricsError
from .extract import FeatureExtractor
from .sources import ImageSource
from .statsfile import Statistics, load_statistics, save_statistics
from .weights import cache_dir


def stats_cache_dir() -> Path:
    """The folder of cached statistics."""
    return cache_dir() / "stats"


def entry_path(source: ImageSource, extractor: FeatureExtractor) -> Path | None:
    """Where the statistics of ``source`` under ``extractor`` are cached; None when the source
    cannot be fingerprinted (a generator)."""
    fingerprint = source.fingerprint()
    if fingerprint is None:
        return None
    settings = extractor.metadata(source.describe())
    del settings["source"]  # a description, not an input to the numbers
    payload = json.dumps({"source": fingerprint, "settings": settings}, sort_keys=True)
    return stats_cache_dir() / f"{hashlib.sha256(payload.encode()).hexdigest()}.npz"


def _load(path: Path, source: ImageSource, dims: int) -> Statistics | None:
    """The entry at ``path``: None when absent, or when unreadable (with a one-line warning)."""
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a missing meta makes the entry corrupt, not foreign
            stats = load_statistics(path)
    except GanMetricsError:
        stats = None
    if stats is None or stats.meta is None or stats.n is None or stats.dims != dims:
        warnings.warn(f"corrupt cache entry {path} for {source.describe()}: recomputing it", stacklevel=3)
        return None
    return stats


def _store(path: Path, stats: Statistics) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_statistics(path, stats)
    except (OSError, GanMetricsError) as err:  # a full or read-only disk costs the cache, not the result
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        warnings.warn(f"cannot write cache entry {path} ({reason}): continuing uncached", stacklevel=3)


def cached_statistics(source: ImageSource, extractor: FeatureExtractor) -> Statistics:
    """FID statistics of ``source``: from the cache when there, else computed and stored."""
    path = entry_path(source, extractor)
    if path is None:
        return extractor.statistics(source)
    stats = _load(path, source, extractor.dims)
    if stats is None:
        stats = extractor.statistics(source)
        _store(path, stats)
    return stats


@dataclass(frozen=True)
class CachedEntry:
    """One cache file as ``ganmetrics cache list`` shows it; ``source``, ``n``, ``dims`` and
    ``resize`` are None for an unreadable file. ``size``: bytes."""

    path: Path
    size: int
    source: str | None
    n: int | None
    dims: int | None
    resize: str | None


def list_entries() -> list[CachedEntry]:
    """Every cache entry, sorted by source, reading only its metadata (not ``sigma``)."""
    folder = stats_cache_dir()
    entries = []
    for path in sorted(folder.glob("[!.]*.npz")) if folder.is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta, n = json.loads(str(data["meta"])), int(data["n"])
            entry = CachedEntry(path, path.stat().st_size, meta["source"], n, meta["dims"], meta["resize"])
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
