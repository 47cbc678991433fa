"""A source from what the user passed: a path (folder, archive, array file), an array or tensor, or an ``ImageSource``."""

import os
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted
from .archives import TarSource, ZipSource
from .arrays import ArraySource, NpzMember
from .base import ImageSource
from .files import FolderSource

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARRAY_SUFFIXES = (".npy", ".npz")


def open_source(spec, *, recursive: bool = True, key: str | None = None, limit: int | None = None,
                strict: bool = False) -> ImageSource:
    """A source from a folder or archive or array path, a uint8 array / tensor, or an
    ``ImageSource`` (e.g. a ``GeneratorSource``). ``strict``: refuse non-image files."""
    if isinstance(spec, ImageSource):
        return spec.limited(limit)
    if callable(spec):
        raise GanMetricsError(
            "a generator needs a number of images: pass GeneratorSource(generator, n=N) from ganmetrics.sources"
        )
    if not isinstance(spec, (str, os.PathLike)):
        if not hasattr(spec, "shape") or not hasattr(spec, "dtype"):
            raise GanMetricsError(
                f"cannot read images from a {type(spec).__name__}: pass a path, a uint8 array or tensor, or an ImageSource"
            )
        return ArraySource(spec, f"array of shape {tuple(spec.shape)}").limited(limit)
    path = Path(spec)
    name = path.name.lower()
    if path.is_dir():
        source = FolderSource(path, recursive, strict)
    elif not path.exists():
        raise GanMetricsError(f"{quoted(path)} does not exist: pass a folder of images, an archive or an array file")
    elif not path.is_file():  # a FIFO, socket or device: reading it could block forever
        raise GanMetricsError(f"{quoted(path)} is not a regular file or folder: pass a folder of images, an archive or an array file")
    elif name.endswith(".zip"):
        source = ZipSource(path, strict)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        source = TarSource(path, strict)
    elif name.endswith(".npy"):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise GanMetricsError(f"cannot read {quoted(path)} ({describe_error(err)}): check the file") from None
        source = ArraySource(array, f"array {quoted(path)}", path)
    elif name.endswith(".npz"):
        array = NpzMember.open(path, key)
        source = ArraySource(array, f"array {quoted(path)}" + (f"[{key}]" if key else ""), path, key)
    else:
        raise GanMetricsError(
            f"{quoted(path)} is not a folder, archive ({', '.join(ARCHIVE_SUFFIXES)}) or array ({', '.join(ARRAY_SUFFIXES)}): "
            "pass one of those"
        )
    return source.limited(limit)
