"""A folder of image files, searched recursively, in sorted path order."""

import os
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError
from .base import IMAGE_EXTENSIONS, ImageSource, decode_image, is_hidden, is_image_name, report_skipped


class FolderSource(ImageSource):
    """Image files under a folder, sorted by relative path; hidden files and folders skipped."""

    def __init__(self, root: Path, recursive: bool = True, strict: bool = False):
        self.root = root
        if recursive:
            found = []
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = [name for name in subfolders if not name.startswith(".")]
                found += [os.path.relpath(os.path.join(folder, name), root) for name in files]
        else:
            found = [name for name in os.listdir(root) if (root / name).is_file()]
        found = sorted(Path(name).as_posix() for name in found if not is_hidden(name))
        self.names = [name for name in found if is_image_name(name)]
        if not self.names:
            raise GanMetricsError(
                f"no images in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
                f"{'' if recursive else ', not in subfolders'}): point at a folder of images"
            )
        report_skipped([name for name in found if not is_image_name(name)], str(root), strict)

    def describe(self) -> str:
        return f"folder {self.root}"

    def fingerprint(self) -> dict:
        files = []
        for name in self.names:
            stat = os.stat(self.root / name)
            files.append([name, stat.st_size, stat.st_mtime_ns])
        return {"kind": "folder", "root": str(self.root.resolve()), "files": files}

    def read(self, index: int) -> np.ndarray:
        return decode_image(self.root / self.names[index], str(self.root / self.names[index]))
