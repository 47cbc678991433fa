"""Read a pickle as plain data only: dicts, lists, tuples, numbers, strings, None and NumPy arrays.

EDM2 publishes its reference statistics as ``.pkl`` files (``{"num_images", "fid": {"mu",
"sigma"}, "fd_dinov2": {"mu", "sigma"}}``), and ``pickle.load`` runs whatever callable a file
names. ``load_plain_pickle`` resolves no name by importing it: a file may name only the few
NumPy functions that rebuild arrays and scalars, as NumPy pickles them (its ``_reconstruct``,
``ndarray``, ``dtype`` and ``scalar``; ``_frombuffer``, which protocol 5 uses; Python's
``_codecs.encode`` as protocols 0-2 write bytes, latin-1 only), under NumPy 1's module names
(``numpy.core.*``) or NumPy 2's (``numpy._core.*``). Any other name is refused before anything
is called, and so are object arrays and any value the result holds beyond those kinds (bytes,
sets, complex numbers), each in one line.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted

_PLAIN = "dicts, lists, tuples, numbers, strings, None and NumPy arrays"


class _Refused(Exception):
    """What the file asked for that plain data cannot hold (the message's cause)."""


def _dtype(*args):
    """``numpy.dtype`` as a pickle calls it, refusing object dtypes (whose arrays hold pickled objects)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _Refused(f"a NumPy array of Python objects (dtype {dtype})")
    return dtype


def _latin1(text, encoding):
    """``_codecs.encode`` as pickle protocols 0-2 write bytes, and only so."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused(f"_codecs.encode with encoding {quoted(str(encoding))}")
    return text.encode("latin1")


_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_FROMBUFFER = np.zeros(0).__reduce_ex__(5)[0]
_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
}
"""The names a plain-data pickle may use, resolved here rather than imported."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _GLOBALS[module, name]
        except KeyError:
            raise _Refused(f"a call of {quoted(f'{module}.{name}')}") from None


def _check_plain(value) -> None:
    """Refuse anything in ``value`` that is not plain data (cycles through the memo allowed)."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise _Refused(f"a NumPy array of Python objects (dtype {item.dtype})")
        elif not (item is None or isinstance(item, (str, int, float, np.number, np.bool_))):
            raise _Refused(f"a value of type {type(item).__name__}")


def load_plain_pickle(path: str | os.PathLike):
    """The plain data pickled in the file at ``path`` (module docstring); anything else, a file
    that is no pickle or a damaged one is refused in one line, and nothing in the file runs."""
    try:
        file = open(path, "rb")
    except OSError as err:
        raise GanMetricsError(f"cannot open {quoted(path)} ({describe_error(err)}): pass an existing, readable file") from None
    try:
        with file:
            value = _PlainUnpickler(file).load()
        _check_plain(value)
        return value
    except _Refused as refused:
        raise GanMetricsError(f"refused to read {quoted(path)}: it holds {refused}, and a .pkl is read only as plain "
                              f"data ({_PLAIN}); nothing in it was run: use statistics as EDM2's "
                              "calculate_metrics.py writes them, or a .npz file") from None
    except Exception as err:  # pickle raises many types for a damaged or foreign file
        raise GanMetricsError(f"cannot read {quoted(path)} ({describe_error(err)}): it must be a pickle of plain "
                              f"data ({_PLAIN}), as EDM2's reference statistics are") from None
