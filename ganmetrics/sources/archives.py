"""Zip and tar archives of images, read in place: members are decoded from memory and never
written to disk, whatever their names. Zip members are read by index in worker processes;
``.tar``/``.tar.gz`` in one sequential pass."""

import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError
from .base import ImageSource, decode_image, is_hidden, is_image_name, report_skipped


class _ArchiveSource(ImageSource):
    """An archive file; its identity is its path, size, modification time and chosen members."""

    kind: str
    path: Path

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def fingerprint(self) -> dict:
        stat = os.stat(self.path)
        return {"kind": self.kind, "path": str(self.path.resolve()), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "members": self.names}

    def _select(self, members: list[tuple[str, bool]], strict: bool) -> None:
        """Keep the image files among ``members`` (name, is a regular file; folders left out) as
        ``names``; count (or refuse) the others: non-image files, links, devices."""
        visible = [(name, regular) for name, regular in members if not is_hidden(name)]
        self.names = [name for name, regular in visible if regular and is_image_name(name)]
        if not self.names:
            raise GanMetricsError(
                f"{self.kind} archive {self.path} holds no images"
                f"{f' ({len(visible)} other files)' if visible else ' (it is empty)'}: check the archive"
            )
        skipped = [name for name, regular in visible if not (regular and is_image_name(name))]
        report_skipped(skipped, str(self.path), strict)


class ZipSource(_ArchiveSource):
    """Image members of a zip archive, sorted by member name; opened lazily in each worker."""

    kind = "zip"

    def __init__(self, path: Path, strict: bool = False):
        self.path = path
        self._archive = None
        try:
            with zipfile.ZipFile(path) as archive:
                members = sorted((info.filename, True) for info in archive.infolist() if not info.is_dir())
        except (zipfile.BadZipFile, OSError) as err:
            raise GanMetricsError(f"cannot open zip archive {path} ({err}): check the file") from None
        self._select(members, strict)

    def __getstate__(self):
        return {**self.__dict__, "_archive": None}

    def read(self, index: int) -> np.ndarray:
        if self._archive is None:
            self._archive = zipfile.ZipFile(self.path)
        name = self.names[index]
        return decode_image(self._archive.read(name), f"{self.path}:{name}")


class TarSource(_ArchiveSource):
    """Image members of a ``.tar``/``.tar.gz`` archive, in archive order, read in one pass.
    Links and other special members count as non-image files."""

    kind = "tar"
    random_access = False

    def __init__(self, path: Path, strict: bool = False):
        self.path = path
        try:
            with tarfile.open(path) as archive:
                members = [(m.name, m.isfile()) for m in archive if not m.isdir()]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise GanMetricsError(f"cannot open tar archive {path} ({err}): check the file") from None
        self._select(members, strict)

    def iterate(self):
        wanted = len(self.names)
        index = 0
        with tarfile.open(self.path) as archive:
            for member in archive:
                if index == wanted:
                    return
                if member.isfile() and is_image_name(member.name):
                    data = archive.extractfile(member).read()  # bytes in memory; nothing on disk
                    yield index, decode_image(data, f"{self.path}:{member.name}")
                    index += 1
