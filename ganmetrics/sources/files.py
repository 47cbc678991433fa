"""A folder of image files, searched recursively, in sorted path order.

Only regular files are read (after resolving links): FIFOs, sockets, devices, broken links and
links that loop are skipped with one warning that counts them (refused with ``strict=True``),
so that a FIFO named ``x.png`` cannot hang a run. Each file is opened without blocking and
checked to be a regular file again when it is read, and read only up to
``GANMETRICS_MAX_IMAGE_BYTES`` (see ``base``).
"""

import os
import stat
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, quoted
from .base import IMAGE_EXTENSIONS, ImageSource, decode_image, is_hidden, is_image_name, read_bounded, report_skipped


def _is_regular(path: str) -> bool:
    """A regular file, after resolving links (False for a broken or looping link)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class FolderSource(ImageSource):
    """Image files under a folder, sorted by relative path; hidden files and folders skipped."""

    cached_by_default = True

    def __init__(self, root: Path, recursive: bool = True, strict: bool = False):
        self.root = root
        try:
            if recursive:
                found = []
                for folder, subfolders, files in os.walk(root, onerror=_raise):
                    subfolders[:] = [name for name in subfolders if not name.startswith(".")]
                    found += [os.path.relpath(os.path.join(folder, name), root) for name in files]
            else:
                found = [entry.name for entry in os.scandir(root) if not _is_folder(entry)]
        except OSError as err:
            where = quoted(err.filename) if err.filename else quoted(root)
            raise GanMetricsError(
                f"cannot list folder {where} ({err.strerror or type(err).__name__}): check that it is readable"
            ) from None
        found = sorted(Path(name).as_posix() for name in found if not is_hidden(name))
        images = [name for name in found if is_image_name(name)]
        self.names = [name for name in images if _is_regular(os.path.join(root, name))]
        regular = set(self.names)
        special = [name for name in images if name not in regular]
        if not self.names:
            raise GanMetricsError(
                f"no images in {quoted(root)} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
                f"{'' if recursive else ', not in subfolders'}"
                f"{f'; {len(special)} are not regular files' if special else ''}): point at a folder of images"
            )
        report_skipped([name for name in found if not is_image_name(name)], str(root), strict)
        report_skipped(special, str(root), strict, "entries that are not regular files (FIFOs, devices, broken links)",
                       "a regular file")

    def describe(self) -> str:
        return f"folder {self.root}"

    def fingerprint(self) -> dict:
        """Every image's relative path, size, modification time, status-change time (ctime) and
        inode: a rewrite that keeps size and mtime (``cp -p``, rsync with times, tar extraction,
        a checkout) still changes the ctime or the inode, which no copy can set back. The same
        one ``stat`` per file as before: no extra cost."""
        files = []
        for name in self.names:
            try:
                info = os.stat(self.root / name)
            except OSError as err:
                raise GanMetricsError(
                    f"cannot read {quoted(self.root / name)} ({err.strerror or type(err).__name__}): "
                    "was the folder changed during the run?"
                ) from None
            files.append([name, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino])
        return {"kind": "folder", "root": str(self.root.resolve()), "files": files}

    def read(self, index: int) -> np.ndarray:
        path = self.root / self.names[index]
        try:  # without blocking: a file replaced by a FIFO since the listing must not hang
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except OSError as err:
            raise GanMetricsError(
                f"cannot open image {quoted(path)} ({err.strerror or type(err).__name__}): check the file"
            ) from None
        with os.fdopen(descriptor, "rb") as file:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise GanMetricsError(f"{quoted(path)} is no longer a regular file: was the folder changed during the run?")
            try:
                data = read_bounded(file, str(path), info.st_size)
            except OSError as err:
                raise GanMetricsError(
                    f"cannot read image {quoted(path)} ({err.strerror or type(err).__name__}): check the file"
                ) from None
        return decode_image(data, str(path))


def class_folders(root: Path) -> list[Path]:
    """The classes of a folder in the ImageFolder layout: its immediate subfolders that are not
    hidden, sorted by name as strings ("a10" before "a2"); class k is the k-th. The one
    definition the trainer (``train --conditional``) and the evaluator (``--per-class``) share,
    so that a conditional run's classes, the folders ``sample --per-class`` writes and the
    classes ``eval --per-class`` compares are the same."""
    try:
        entries = list(os.scandir(root))
    except OSError as err:
        raise GanMetricsError(
            f"cannot list folder {quoted(root)} ({err.strerror or type(err).__name__}): check that it is readable"
        ) from None
    return [Path(root) / name for name in sorted(entry.name for entry in entries
                                                 if _is_folder(entry) and not is_hidden(entry.name))]


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _raise(err: OSError):
    raise err
