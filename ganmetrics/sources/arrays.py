"""uint8 image arrays: in memory, ``.npy`` (memory-mapped) or one array of an ``.npz`` read one image at a time.

An ``.npz`` member is read image by image from the zip: a stored (``np.savez``) or deflated
(``np.savez_compressed``) member is never decompressed whole. Reading images in order only
moves forward in the member; a read behind the last one (random access) decompresses again
from the member's start. A worker process that reads every W-th batch skips the others by
reading through them (in 16 MiB pieces: zipfile's seek), so memory stays a few batches.
"""

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GanMetricsError, describe_error, quoted
from ..store.batchfile import IMAGES_KEY
from ..store.hashing import sha256_of_file
from .base import ImageSource


class NpzMember:
    """One array of an ``.npz`` file, read one image at a time from its zip member without
    loading the whole array; the array-like that ``ArraySource`` needs (``shape``, ``dtype``,
    ``ndim``, ``[index]``). Opened lazily in each process."""

    def __init__(self, path: Path, member: str, shape: tuple, dtype: np.dtype, offset: int):
        self.path, self.member, self.shape, self.dtype, self.offset = path, member, shape, dtype, offset
        self.ndim = len(shape)
        self._file = None

    @classmethod
    def open(cls, path: Path, key: str | None) -> "NpzMember | np.ndarray":
        """Array ``key`` of the ``.npz`` at ``path`` (default: ``images_key``'s, as an ADM batch's
        ``arr_0`` past its statistics, else the first); a plain array for the rare layouts that
        cannot be read by image (Fortran order, format 3.0)."""
        try:
            with zipfile.ZipFile(path) as archive:
                members = [name for name in archive.namelist() if name.endswith(".npy")]
                keys = [name[:-4] for name in members]
                if not members:
                    raise GanMetricsError(f"{quoted(path)} holds no arrays: check the file")
                if key is not None and key not in keys:
                    raise GanMetricsError(f"{quoted(path)} has no array {key!r} (it has {keys}): pass another --key")
                if key is None:
                    key = _images_key(archive, members) or keys[0]
                member = f"{key}.npy"
                header = _read_header(archive, member)
                if header is not None and not header[1]:
                    shape, _, dtype, offset = header
                    stored = archive.getinfo(member).file_size - offset
                    needed = int(np.prod(shape)) * dtype.itemsize
                    if stored < needed:
                        raise GanMetricsError(
                            f"{quoted(path)}: array {member} is truncated ({stored:,} of the {needed:,} bytes its "
                            f"header declares for shape {shape}): recreate the file"
                        )
                    return cls(path, member, shape, dtype, offset)
            with np.load(path, allow_pickle=False) as data:
                return data[key]
        except GanMetricsError:
            raise
        except Exception as err:  # zipfile and numpy raise several types for a damaged file
            raise GanMetricsError(f"cannot read {quoted(path)} ({describe_error(err)}): check the file") from None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def __getitem__(self, index: int) -> np.ndarray:
        count = int(np.prod(self.shape[1:]))
        try:
            if self._file is None:
                self._file = zipfile.ZipFile(self.path).open(self.member)
            self._file.seek(self.offset + index * count * self.dtype.itemsize)
            data = self._file.read(count * self.dtype.itemsize)
        except Exception as err:  # zipfile and zlib raise several types for damaged data (a bad CRC)
            raise GanMetricsError(
                f"{quoted(self.path)}: array {self.member} is damaged at image {index} ({describe_error(err)}): "
                "recreate the file"
            ) from None
        if len(data) != count * self.dtype.itemsize:
            raise GanMetricsError(f"{quoted(self.path)}: array {self.member} is truncated at image {index}: recreate the file")
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])


def _read_header(archive: zipfile.ZipFile, member: str) -> tuple | None:
    """(shape, fortran_order, dtype, data offset) of an ``.npy`` member of a zip, from its header
    alone; None for a format version without a public reader (3.0)."""
    with archive.open(member) as file:
        version = np.lib.format.read_magic(file)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            return None
        shape, fortran_order, dtype = readers[version](file)
        return shape, fortran_order, dtype, file.tell()


def _holds_images(shape: tuple, dtype: np.dtype) -> bool:
    return dtype == np.uint8 and len(shape) == 4 and 3 in (shape[1], shape[-1])


def _images_key(archive: zipfile.ZipFile, members: list[str]) -> str | None:
    for member in members:
        header = _read_header(archive, member)
        if header is not None and _holds_images(header[0], header[2]):
            return member[:-4]
    return IMAGES_KEY if f"{IMAGES_KEY}.npy" in members else None


def images_key(path: Path) -> str | None:
    """The array an ``.npz`` source reads by default: the first holding uint8 images (N, H, W, 3)
    or (N, 3, H, W) by its header, else the ADM evaluator's ``arr_0`` (which the source then
    refuses, naming its dtype or shape); None when there is neither, or the file is unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _images_key(archive, [name for name in archive.namelist() if name.endswith(".npy")])
    except Exception:  # a damaged file: opening it as a source says what is wrong
        return None


class ArraySource(ImageSource):
    """uint8 images in an array (N, H, W, 3) or (N, 3, H, W): in memory, ``.npy`` (memory-mapped)
    or one array of an ``.npz`` (``images_key``'s, or ``key``) read image by image. ``path``: the file
    the array was read from (None for an in-memory array)."""

    def __init__(self, array, description: str, path: Path | None = None, key: str | None = None):
        array = _as_image_array(array, description)
        self.array = array
        self.channels_first = array.shape[-1] != 3
        self.description = description
        self.path, self.key = path, key
        self.names = [str(i) for i in range(array.shape[0])]
        if not self.names:
            raise GanMetricsError(f"{description} holds no images: its first dimension is 0")

    def describe(self) -> str:
        return self.description

    def fingerprint(self) -> dict:
        if self.path is not None:
            return {"kind": "array file", "sha256": sha256_of_file(self.path), "key": self.key, "n": len(self)}
        pixels = np.ascontiguousarray(self.array[:len(self)])
        return {"kind": "array", "shape": list(pixels.shape), "sha256": hashlib.sha256(pixels.data).hexdigest()}

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
