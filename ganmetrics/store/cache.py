"""The statistics cache: reduced values under ``cache_dir()/stats``, keyed by everything they
depend on.

A key is a JSON-able dict; the evaluation layer makes it from the source's fingerprint (a folder:
its path and every image's relative path, size, modification and status-change times and inode;
an archive: its path, size, times and image members; an array: a hash of its content), the
provenance of the encoder that made the values (model, weights sha256, the options that change
its features, tf32, ganmetrics version) and what the value is (feature, kind, options). So a
changed, added or removed file, or another setting, misses. The cache knows no encoder, metric
or source: ``get``/``put`` take the key. An entry is a file of the one layout (``states.py``)
holding one value, whose ``meta`` says what it holds (``n``: its image count; ``source``);
written atomically. An unreadable entry is reported in one line and recomputed; a cache folder
that cannot be written costs the cache (one warning), not the result.
"""

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import GanMetricsError, describe_error, quoted
from .paths import cache_dir
from .states import StateFile, parse_meta, read_arrays, read_state_file, write_state_file


def stats_cache_dir() -> Path:
    """The folder of cached statistics."""
    return cache_dir() / "stats"


def entry_path(key: dict) -> Path:
    """Where the entry of ``key`` lives: the sha256 of its sorted JSON."""
    payload = json.dumps(key, sort_keys=True)
    return stats_cache_dir() / f"{hashlib.sha256(payload.encode()).hexdigest()}.npz"


def usable() -> bool:
    """Whether the cache folder can be used: it exists and is writable, or can be made; where it
    cannot (no permission to enter or write it, a file in its place), one warning naming it,
    and the run goes on uncached. Checked before any work."""
    folder = stats_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        warnings.warn(f"cannot use the cache folder {quoted(folder)} ({err.strerror or describe_error(err)}): "
                      "continuing uncached; set GANMETRICS_CACHE_DIR to a writable folder, or pass --no-cache",
                      stacklevel=2)
        return False
    return True


def get(key: dict, n: int, label: str) -> StateFile | None:
    """The entry of ``key`` for ``n`` images of what ``label`` describes: None when absent, or
    when unreadable, not finite or not for ``n`` images (with a one-line warning)."""
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        contents = read_state_file(path, "cache entry", "recomputing it")
        sound = contents.meta.get("n") == n and len(contents.entries) == 1
    except GanMetricsError:
        sound = False
    if not sound:
        warnings.warn(f"corrupt cache entry {path} for {label}: recomputing it", stacklevel=3)
        return None
    return contents


def put(key: dict, contents: StateFile) -> None:
    """Store ``contents`` as the entry of ``key``; a full or read-only disk costs the cache (one
    warning), not the result."""
    path = entry_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_state_file(path, contents)
    except (OSError, GanMetricsError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        warnings.warn(f"cannot write cache entry {path} ({reason}): continuing uncached", stacklevel=3)


@dataclass(frozen=True)
class CachedEntry:
    """One cache file as ``ganmetrics cache list`` shows it: its ``path``, ``size`` in bytes and
    ``meta`` (None for an unreadable file)."""

    path: Path
    size: int
    meta: dict | None


def list_entries() -> list[CachedEntry]:
    """Every cache entry, sorted by source, reading only its metadata."""
    folder = stats_cache_dir()
    entries = []
    for path in sorted(folder.glob("[!.]*.npz")) if folder.is_dir() else []:
        try:
            meta = parse_meta(path, read_arrays(path, "cache entry", "", {"meta"}.__contains__)["meta"], "")
            if not isinstance(meta.get("source"), str):
                raise GanMetricsError("no source")
        except (GanMetricsError, KeyError):  # any damage: listed as unreadable; `cache clear` removes it
            meta = None
        entries.append(CachedEntry(path, path.stat().st_size, meta))
    return sorted(entries, key=lambda e: (e.meta is None, (e.meta or {}).get("source", ""), str(e.path)))


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
