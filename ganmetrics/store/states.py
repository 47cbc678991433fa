"""The one layout of ganmetrics' ``.npz`` files: statistics files, cache entries and shard files.

A file holds ``meta``, a 0-d unicode array of JSON, and entries: the arrays of one reduced value
or state of one feature of one encoder, each named ``<encoder>/<feature>/<kind>/<field>``
(``kind``: the reducer's; ``field``: one of its declared ``value_fields`` in a file of values —
statistics files, cache entries — or ``state_fields`` in a file of states — shard files, whose
exact states merge). ``meta`` holds ``encoders`` ({encoder: its provenance meta}), ``source``,
``version`` and, in a shard file, ``shard``. A per-class statistics file (``ganmetrics stats
--per-class``) holds each class's entries under its name, ``<class>/<encoder>/<feature>/<kind>/
<field>``, and the class names in order in ``meta["classes"]``. ``compat.py`` maps the names other tools read and
write (pytorch-fid's ``mu``/``sigma``, the ADM evaluator's ``mu_s``/``sigma_s``) onto entries.

Written atomically (a temporary file beside the target, renamed when complete); floating-point
arrays that are not finite are never written, and a file whose arrays are not finite, or that
cannot be read, is refused in one line naming it and what to do.
"""

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted
from .atomicfile import atomic_write, check_writable_folder

Key = tuple[str, str, str]
"""An entry: (encoder, feature, kind)."""


@dataclass(frozen=True)
class StateFile:
    """A file's contents: ``meta`` (a JSON object), ``entries`` ({(encoder, feature, kind):
    {field: array}}) and, for files of other tools' layouts, the ``other`` arrays (by name)."""

    meta: dict
    entries: Mapping[Key, Mapping[str, np.ndarray]]
    other: Mapping[str, np.ndarray] = field(default_factory=dict)


def array_name(key: Key | tuple[str, str, str, str], name: str) -> str:
    """The name of field ``name`` of entry ``key`` in a file (in a per-class file, ``(class, *key)``)."""
    return "/".join((*key, name))


def npz_members(path: str | os.PathLike) -> set[str]:
    """The array names of the ``.npz`` file at ``path``, read from its zip index; none for anything else."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return set()
    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError):
        return set()


def entry_keys(names) -> set[Key]:
    """The entries named among array ``names`` (a per-class file's: of any class)."""
    return {tuple(name.split("/")[-4:-1]) for name in names if name.count("/") in (3, 4)}


def write_state_file(path: str | os.PathLike, contents: StateFile) -> None:
    """Write ``contents`` to ``path`` atomically; nothing is left behind if writing fails, and
    nothing is written where a floating-point array is not finite."""
    path = Path(path)
    check_writable_folder(path, "path")
    arrays = {array_name(key, name): value for key, fields in contents.entries.items() for name, value in fields.items()}
    arrays.update(contents.other)
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise GanMetricsError(f"the statistics for {quoted(path)} are not finite ({name} holds NaN or infinity): "
                                  "nothing written; check the images, the weights and the device")
    with atomic_write(path) as f:
        np.savez(f, **arrays, meta=np.array(json.dumps(contents.meta, sort_keys=True)))


def read_arrays(path: str | os.PathLike, what: str, fix: str, wanted=None) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path`` (only those for which ``wanted(name)`` is true,
    when given); a missing or unreadable file is a one-line error naming ``what`` it should be
    (e.g. "statistics file") and ending with ``fix`` (what to do)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files if wanted is None or wanted(key)}
    except FileNotFoundError:
        raise GanMetricsError(f"{what} {quoted(path)} does not exist: check the path") from None
    except Exception as err:  # numpy raises several types for a damaged archive
        raise GanMetricsError(f"cannot read {what} {quoted(path)} ({describe_error(err)}): {fix}") from None


def parse_meta(path: str | os.PathLike, stored: np.ndarray | None, fix: str) -> dict | None:
    """A file's ``meta`` array as a JSON object (None where the file has none); anything else is
    a one-line error ending with ``fix``."""
    if stored is None:
        return None
    try:
        meta = json.loads(str(stored))
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise GanMetricsError(f"{quoted(Path(path))}: its 'meta' is not a JSON object: {fix}")
    return meta


def read_state_file(path: str | os.PathLike, what: str, fix: str,
                    arrays: dict[str, np.ndarray] | None = None) -> StateFile:
    """A file of this layout (``arrays``: its arrays, where already read), every floating-point
    array checked finite; any damage is a one-line error naming ``what`` it should be and ending
    with ``fix``."""
    arrays = read_arrays(path, what, fix) if arrays is None else dict(arrays)
    meta = parse_meta(path, arrays.pop("meta", None), fix) or {}
    entries: dict[Key, dict[str, np.ndarray]] = {}
    other = {}
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise GanMetricsError(f"{quoted(Path(path))}: its {name!r} holds NaN or infinity: {fix}")
        if name.count("/") == 3:
            *key, field_name = name.split("/")
            entries.setdefault(tuple(key), {})[field_name] = value
        else:
            other[name] = value
    return StateFile(meta, entries, other)
