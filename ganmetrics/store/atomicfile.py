"""Atomic file writes: a temporary file beside the target, renamed over it only when complete.

A reader sees either the old file or the whole new one; a failure (an exception, Ctrl-C, a full
disk) leaves the target as it was and no temporary file behind. The new file gets the
permissions a plain ``open(path, "w")`` would give (the umask decides), not mkstemp's 0600.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import GanMetricsError, quoted


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, writing ``path`` into a folder that is missing, cannot be
    entered (a folder of another user: an operating-system error on the path) or is not
    writable; ``option`` names how the user gave the path (``-o``, ``--plot``), for the message."""
    folder = Path(path).parent
    try:
        exists = folder.is_dir()
    except OSError as err:
        raise GanMetricsError(f"cannot write {quoted(path)}: folder {quoted(folder)} cannot be reached "
                              f"({err.strerror or err}); choose another {option} or fix its permissions") from None
    if not exists:
        raise GanMetricsError(f"cannot write {quoted(path)}: folder {quoted(folder)} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise GanMetricsError(f"cannot write {quoted(path)}: folder {quoted(folder)} is not writable; choose another {option}")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Yield an open file (``mode`` "wb" or "w") to write ``path``'s new content into.

    On a clean exit the file is flushed, fsynced and renamed onto ``path``; on any exception it
    is deleted and the exception propagates. OS errors become a one-line ``GanMetricsError``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise GanMetricsError(f"cannot write {path} ({err.strerror}): choose a writable folder") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise GanMetricsError(f"cannot write {path} ({err.strerror or err}): check the disk and the folder") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
