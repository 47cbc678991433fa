"""Image sources: folders, archives and arrays, read as uint8 RGB images.

Every source decodes the same pixels the same way (PIL, ``convert("RGB")``: grayscale is
replicated, alpha dropped, palettes expanded), so the same images give the same features from
any source. Sources with random access (folders, zip files, arrays) are read by index in worker
processes; ``.tar``/``.tar.gz`` archives are read in one sequential pass. Archives are read in
place: members are decoded from memory and never written to disk, whatever their names.
"""

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import GanMetricsError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARRAY_SUFFIXES = (".npy", ".npz")


def is_image_name(name: str) -> bool:
    """An image by extension (case-insensitive), not hidden and not inside a hidden folder."""
    parts = name.replace("\\", "/").split("/")
    if any(part.startswith(".") and part not in (".", "..") for part in parts if part):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes | Path, name: str) -> np.ndarray:
    """Decode one image file's bytes (or path) to uint8 (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()  # decode fully now, so a truncated file fails here
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, ... for bad files
        raise GanMetricsError(
            f"cannot decode image {name} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}): "
            "remove or replace the file"
        ) from None


class ImageSource:
    """A finite, ordered set of images. Subclasses set ``names`` and implement ``read`` (random
    access, picklable for worker processes) or ``iterate`` (one sequential pass)."""

    random_access = True
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 (H, W, 3)."""
        raise NotImplementedError

    def iterate(self):
        """Yield (index, uint8 (H, W, 3)) in order."""
        for index in range(len(self)):
            yield index, self.read(index)

    def limited(self, limit: int | None) -> "ImageSource":
        """The first ``limit`` images (all when None)."""
        if limit is not None:
            if limit < 1:
                raise GanMetricsError(f"--limit must be at least 1, got {limit}")
            self.names = self.names[:limit]
        return self


class FolderSource(ImageSource):
    """Image files under a folder, sorted by relative path; hidden files and folders skipped."""

    def __init__(self, root: Path, recursive: bool = True):
        self.root = root
        if recursive:
            found = [
                os.path.relpath(os.path.join(folder, name), root)
                for folder, subfolders, files in os.walk(root)
                for name in files
                if is_image_name(os.path.relpath(os.path.join(folder, name), root))
            ]
        else:
            found = [name for name in os.listdir(root) if is_image_name(name) and (root / name).is_file()]
        self.names = sorted(Path(name).as_posix() for name in found)
        if not self.names:
            raise GanMetricsError(
                f"no images in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
                f"{'' if recursive else ', not in subfolders'}): point at a folder of images"
            )

    def describe(self) -> str:
        return f"folder {self.root}"

    def read(self, index: int) -> np.ndarray:
        return decode_image(self.root / self.names[index], str(self.root / self.names[index]))


class ZipSource(ImageSource):
    """Image members of a zip archive, sorted by member name; opened lazily in each worker."""

    def __init__(self, path: Path):
        self.path = path
        self._archive = None
        try:
            with zipfile.ZipFile(path) as archive:
                self.names = sorted(n for n in archive.namelist() if not n.endswith("/") and is_image_name(n))
        except (zipfile.BadZipFile, OSError) as err:
            raise GanMetricsError(f"cannot open zip archive {path} ({err}): check the file") from None
        if not self.names:
            raise GanMetricsError(f"zip archive {path} holds no images: check the archive")

    def __getstate__(self):
        return {**self.__dict__, "_archive": None}

    def describe(self) -> str:
        return f"zip {self.path}"

    def read(self, index: int) -> np.ndarray:
        if self._archive is None:
            self._archive = zipfile.ZipFile(self.path)
        name = self.names[index]
        return decode_image(self._archive.read(name), f"{self.path}:{name}")


class TarSource(ImageSource):
    """Image members of a ``.tar``/``.tar.gz`` archive, in archive order, read in one pass."""

    random_access = False

    def __init__(self, path: Path):
        self.path = path
        try:
            with tarfile.open(path) as archive:
                self.names = [m.name for m in archive if m.isfile() and is_image_name(m.name)]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise GanMetricsError(f"cannot open tar archive {path} ({err}): check the file") from None
        if not self.names:
            raise GanMetricsError(f"tar archive {path} holds no images: check the archive")

    def describe(self) -> str:
        return f"tar {self.path}"

    def iterate(self):
        wanted = len(self.names)
        index = 0
        with tarfile.open(path := self.path) as archive:
            for member in archive:
                if index == wanted:
                    return
                if member.isfile() and is_image_name(member.name):
                    data = archive.extractfile(member).read()  # bytes in memory; nothing on disk
                    yield index, decode_image(data, f"{path}:{member.name}")
                    index += 1


class ArraySource(ImageSource):
    """uint8 images in an array (N, H, W, 3) or (N, 3, H, W): in memory, ``.npy`` (memory-mapped)
    or one array of an ``.npz`` (the first, or ``key``)."""

    def __init__(self, array, description: str):
        array = _as_image_array(array, description)
        self.array = array
        self.channels_first = array.shape[-1] != 3
        self.description = description
        self.names = [str(i) for i in range(array.shape[0])]
        if not self.names:
            raise GanMetricsError(f"{description} holds no images: its first dimension is 0")

    def describe(self) -> str:
        return self.description

    def read(self, index: int) -> np.ndarray:
        image = np.asarray(self.array[index])
        return np.ascontiguousarray(image.transpose(1, 2, 0) if self.channels_first else image)


def _as_image_array(array, description: str):
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    if array.dtype != np.uint8:
        raise GanMetricsError(
            f"{description} has dtype {array.dtype}: images must be uint8 in [0, 255]; convert with "
            "(x * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[-1]):
        raise GanMetricsError(
            f"{description} has shape {array.shape}: images must be shaped (N, H, W, 3) or (N, 3, H, W)"
        )
    return array


def _load_npz_array(path: Path, key: str | None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not data.files:
                raise GanMetricsError(f"{path} holds no arrays: check the file")
            if key is not None and key not in data.files:
                raise GanMetricsError(f"{path} has no array {key!r} (it has {data.files}): pass another --key")
            return data[key or data.files[0]]
    except GanMetricsError:
        raise
    except Exception as err:
        raise GanMetricsError(f"cannot read {path} ({type(err).__name__}): check the file") from None


def open_source(spec, *, recursive: bool = True, key: str | None = None, limit: int | None = None) -> ImageSource:
    """A source from a folder or archive or array path, or a uint8 array / tensor."""
    if isinstance(spec, ImageSource):
        return spec.limited(limit)
    if not isinstance(spec, (str, os.PathLike)):
        return ArraySource(spec, f"array of shape {tuple(spec.shape)}").limited(limit)
    path = Path(spec)
    name = path.name.lower()
    if path.is_dir():
        source = FolderSource(path, recursive)
    elif not path.exists():
        raise GanMetricsError(f"{path} does not exist: pass a folder of images, an archive or an array file")
    elif name.endswith(".zip"):
        source = ZipSource(path)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        source = TarSource(path)
    elif name.endswith(".npy"):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise GanMetricsError(f"cannot read {path} ({type(err).__name__}): check the file") from None
        source = ArraySource(array, f"array {path}")
    elif name.endswith(".npz"):
        source = ArraySource(_load_npz_array(path, key), f"array {path}" + (f"[{key}]" if key else ""))
    else:
        raise GanMetricsError(
            f"{path} is not a folder, archive ({', '.join(ARCHIVE_SUFFIXES)}) or array ({', '.join(ARRAY_SUFFIXES)}): "
            "pass one of those"
        )
    return source.limited(limit)
