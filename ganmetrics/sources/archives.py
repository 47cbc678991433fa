"""Zip and tar archives of images, read in place: members are decoded from memory and never
written to disk, whatever their names. Zip members are read by index in worker processes;
``.tar``/``.tar.gz`` in one sequential pass.

A damaged archive is an error, never a smaller data set: a zip member whose CRC fails, a tar
whose compressed stream fails its check, or whose member headers stop before the end-of-archive
marker (a truncated or corrupted stream that tarfile would read as a shorter archive) is refused
with a one-line error naming the archive. Each member is read into memory only up to
``GANMETRICS_MAX_IMAGE_BYTES`` (see ``base``).
"""

import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted
from .base import ImageSource, decode_image, is_hidden, is_image_name, read_bounded, report_skipped

# What zipfile, tarfile and the decompressors raise for damaged data (RuntimeError: an encrypted
# zip member; NotImplementedError: an unsupported compression method).
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, RuntimeError,
                NotImplementedError, ValueError)
try:  # the optional decompressors' own error types
    import lzma
    _READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    pass


class _ArchiveSource(ImageSource):
    """An archive file; its identity is its path, size, modification time and chosen members."""

    cached_by_default = True

    kind: str
    path: Path

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def fingerprint(self) -> dict:
        stat = os.stat(self.path)
        return {"kind": self.kind, "path": str(self.path.resolve()), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino,
                "members": self.names}

    def _select(self, members: list[tuple[str, bool]], strict: bool) -> None:
        """Keep the image files among ``members`` (name, is a regular file; folders left out) as
        ``names``; count (or refuse) the others: non-image files, links, devices."""
        visible = [(name, regular) for name, regular in members if not is_hidden(name)]
        self.names = [name for name, regular in visible if regular and is_image_name(name)]
        self._all_images = len(self.names)
        if not self.names:
            raise GanMetricsError(
                f"{self.kind} archive {quoted(self.path)} holds no images"
                f"{f' ({len(visible)} other files)' if visible else ' (it is empty)'}: check the archive"
            )
        skipped = [name for name, regular in visible if not (regular and is_image_name(name))]
        report_skipped(skipped, str(self.path), strict)

    def _damaged(self, err: BaseException, member: str | None = None) -> GanMetricsError:
        where = f"member {quoted(member)} of " if member is not None else ""
        return GanMetricsError(
            f"{where}{self.kind} archive {quoted(self.path)} is damaged ({describe_error(err)}): "
            "recreate or download it again"
        )


class ZipSource(_ArchiveSource):
    """Image members of a zip archive, sorted by member name; opened lazily in each worker."""

    kind = "zip"

    def __init__(self, path: Path, strict: bool = False):
        self.path = path
        self._archive = None
        try:
            with zipfile.ZipFile(path) as archive:
                infos = [info for info in archive.infolist() if not info.is_dir()]
        except _READ_ERRORS as err:
            raise GanMetricsError(f"cannot open zip archive {quoted(path)} ({describe_error(err)}): check the file") from None
        self._sizes = {info.filename: info.file_size for info in infos}
        self._select(sorted((info.filename, True) for info in infos), strict)

    def __getstate__(self):
        return {**self.__dict__, "_archive": None}

    def read(self, index: int) -> np.ndarray:
        name = self.names[index]
        try:
            if self._archive is None:
                self._archive = zipfile.ZipFile(self.path)
            with self._archive.open(name) as member:  # reading to the end checks its CRC
                data = read_bounded(member, f"{self.path}:{name}", self._sizes.get(name))
        except GanMetricsError:
            raise
        except _READ_ERRORS as err:
            raise self._damaged(err, name) from None
        return decode_image(data, f"{self.path}:{name}")


class _LastBlock:
    """A file wrapper that keeps the last 512-byte block read: the header tarfile last looked
    at, so the end of its member loop can be told apart from damage it reads as the end."""

    def __init__(self, file):
        self._file, self.last = file, None

    def read(self, size=-1):
        data = self._file.read(size)
        if size == tarfile.BLOCKSIZE:
            self.last = data
        return data

    def __getattr__(self, name):
        return getattr(self._file, name)


def _checked_members(archive: tarfile.TarFile):
    """The members of an open archive, then a check that the loop ended at the end-of-archive
    marker (a block of zeros; tarfile also stops silently at a damaged or missing header) and
    that the rest of the stream reads cleanly (a gzip/bz2/xz stream checks its CRC at its end)."""
    archive.fileobj = _LastBlock(archive.fileobj)
    for member in archive:
        yield member
    last = archive.fileobj.last
    if last is not None and last != tarfile.NUL * tarfile.BLOCKSIZE:
        reason = "it ends without the end-of-archive marker" if len(last) < tarfile.BLOCKSIZE else \
            f"a damaged member header at byte {archive.offset}"
        raise tarfile.ReadError(reason)
    while archive.fileobj.read(1 << 20):
        pass


class TarSource(_ArchiveSource):
    """Image members of a ``.tar``/``.tar.gz`` archive, in archive order, read in one pass.
    Links and other special members count as non-image files."""

    kind = "tar"
    random_access = False

    def __init__(self, path: Path, strict: bool = False):
        self.path = path
        try:
            with tarfile.open(path) as archive:
                members = [(m.name, m.isfile()) for m in _checked_members(archive) if not m.isdir()]
        except _READ_ERRORS as err:
            raise GanMetricsError(
                f"cannot read tar archive {quoted(path)} ({describe_error(err)}): check the file, or recreate it"
            ) from None
        self._select(members, strict)

    def iterate(self, start: int = 0, stop: int | None = None):
        """Images ``start`` to ``stop`` in one pass: the members before ``start`` are passed
        over unread (a .tar.gz still decompresses them), and after ``stop`` nothing is read
        unless ``stop`` is the end (then the end-of-archive checks run)."""
        stop = len(self.names) if stop is None else min(stop, len(self.names))
        index, name = 0, None
        try:
            with tarfile.open(self.path) as archive:
                for member in _checked_members(archive):
                    if index == stop and stop < self._all_images:
                        return  # a --limit or a shard: the rest is not read
                    if member.isfile() and is_image_name(member.name):
                        name = member.name
                        if index >= start:
                            file = archive.extractfile(member)  # bytes in memory; nothing on disk
                            data = read_bounded(file, f"{self.path}:{name}", member.size)
                            if len(data) != member.size:
                                raise tarfile.ReadError(f"member {quoted(name)} is truncated")
                            yield index, decode_image(data, f"{self.path}:{name}")
                        index += 1
                    name = None
        except GanMetricsError:
            raise
        except _READ_ERRORS as err:
            raise self._damaged(err, name) from None
        if index != self._all_images:
            raise GanMetricsError(
                f"tar archive {quoted(self.path)} now holds {index} images, not the {self._all_images} it held "
                "when the run started: was it changed during the run?"
            )
