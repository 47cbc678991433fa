"""Shard files: the exact reduced states of one part of a source (``ganmetrics stats --shard
K/N``), which ``ganmetrics stats merge`` turns into an ordinary statistics file.

A file of the one layout (``states.py``) whose entries are reducer *states* (a Gaussian's count,
mean and co-moment, not its covariance: merging is exact; a feature bank's positions and
features) and whose ``meta`` holds ``shard`` ({"index", "count", "start", "stop", "total",
"batch_size", "names_sha256"}: part ``index`` of ``count``, images ``start`` to ``stop`` of
``total``, made with ``batch_size``, of a source whose image names hash to ``names_sha256``)
beside ``encoders``, ``source`` and ``version``. No ``mu``/``sigma``: a shard file is never
mistaken for statistics. Files of ganmetrics 0.1 (``gaussian.count``, ...) are read through
``compat.py``. Written atomically; a file read is checked to hold finite numbers.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import GanMetricsError, quoted
from .compat import is_old_shard, old_shard_entries
from .states import Key, StateFile, entry_keys, npz_members, parse_meta, read_arrays, read_state_file, write_state_file

SHARD_KEYS = ("index", "count", "start", "stop", "total", "batch_size", "names_sha256")
FIX = "compute it again with `ganmetrics stats SOURCE --shard K/N`"


@dataclass(frozen=True)
class Shard:
    """One part of a source, reduced. ``meta``: as in the file (with ``shard``); ``states``:
    {(encoder, feature, kind): the reducer's ``state()``}."""

    meta: dict
    states: dict[Key, dict]

    @property
    def info(self) -> dict:
        """The ``shard`` part of the meta: index, count, start, stop, total, batch_size, names_sha256."""
        return self.meta["shard"]


def save_shard(path: str | os.PathLike, shard: Shard) -> None:
    """Write ``shard`` to ``path`` atomically; nothing is left behind if writing fails."""
    write_state_file(path, StateFile(shard.meta, shard.states))


def is_shard_file(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` of entries whose meta holds ``shard`` (or a ganmetrics 0.1 shard file)."""
    names = npz_members(path)
    if is_old_shard(names):
        return True
    if not entry_keys(names) or "meta" not in names or "mu" in names:
        return False
    return "shard" in (parse_meta(path, read_arrays(path, "shard file", FIX, {"meta"}.__contains__)["meta"], FIX) or {})


def _damaged(path: Path, what: str) -> GanMetricsError:
    return GanMetricsError(f"shard file {quoted(path)} {what}: {FIX}")


def _checked_meta(path: Path, meta: dict | None) -> dict:
    info = (meta or {}).get("shard")
    if not isinstance(info, dict) or not all(isinstance(info.get(key), int) for key in SHARD_KEYS[:-1]) \
            or not isinstance(info.get("names_sha256"), str) or not isinstance(meta.get("encoders"), dict):
        raise _damaged(path, "has no shard metadata (is it a shard file?)")
    return meta


def read_shard_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` of a shard file, reading nothing else (its states may be large)."""
    path = Path(path)
    arrays = read_arrays(path, "shard file", FIX, lambda name: name == "meta" or name == "gaussian.count")
    meta = parse_meta(path, arrays.get("meta"), FIX)
    if "gaussian.count" in arrays and meta is not None:
        meta = old_shard_entries({}, meta)[0]
    return _checked_meta(path, meta)


def load_shard(path: str | os.PathLike) -> Shard:
    """Read a shard file, its meta checked and every floating-point array finite."""
    path = Path(path)
    arrays = read_arrays(path, "shard file", FIX)
    if is_old_shard(arrays):
        meta = parse_meta(path, arrays.pop("meta", None), FIX)
        if meta is None or "shard" not in meta:
            raise _damaged(path, "has no shard metadata (is it a shard file?)")
        meta, entries = old_shard_entries(arrays, meta)
        arrays = {"/".join((*key, field)): value for key, fields in entries.items() for field, value in fields.items()}
        contents = read_state_file(path, "shard file", FIX, arrays)
        contents = StateFile(meta, contents.entries)
    else:
        contents = read_state_file(path, "shard file", FIX, arrays)
    if contents.other:
        raise _damaged(path, f"holds {sorted(contents.other)[0]!r}, not a state")
    return Shard(_checked_meta(path, contents.meta), {key: dict(fields) for key, fields in contents.entries.items()})
