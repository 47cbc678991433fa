"""Image sources: folders, archives, arrays and generators, read as uint8 RGB images.

Every source decodes the same pixels the same way (PIL, ``convert("RGB")``: grayscale is
replicated, alpha dropped, palettes expanded), so the same images give the same features from
any source. Sources with random access (folders, zip files, arrays) are read by index in worker
processes; ``.tar``/``.tar.gz`` archives are read in one sequential pass, generators in one pass
in the main process. Archives are read in place: members are decoded from memory and never
written to disk, whatever their names. Memory holds a batch, never a whole source.

Files that are not images (by extension) are skipped with one warning that counts them, or
refused with ``strict=True``; hidden files and folders are skipped silently.
"""

import hashlib
import io
import itertools
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .download import sha256_of_file
from .errors import GanMetricsError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARRAY_SUFFIXES = (".npy", ".npz")
VALUE_RANGES = ("uint8", "0,1", "-1,1")

# Images decoded from files in this process (worker processes keep their own count); tests use
# it to show that a cache hit decodes nothing.
decode_count = 0


def is_hidden(name: str) -> bool:
    """A relative path with a part starting with "." (other than "." and "..")."""
    return any(part.startswith(".") and part not in (".", "..") for part in name.replace("\\", "/").split("/"))


def is_image_name(name: str) -> bool:
    """An image by extension (case-insensitive), not hidden and not inside a hidden folder."""
    return not is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes | Path, name: str) -> np.ndarray:
    """Decode one image file's bytes (or path) to uint8 (H, W, 3)."""
    global decode_count
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()  # decode fully now, so a truncated file fails here
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, ... for bad files
        raise GanMetricsError(
            f"cannot decode image {name} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}): "
            "remove or replace the file"
        ) from None
    decode_count += 1
    return pixels


def to_uint8(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images in ``value_range`` ("uint8", "0,1" or "-1,1") -> uint8 of the same shape, rounding
    to nearest and clipping, as saving them to PNG would."""
    if value_range == "uint8":
        if images.dtype != torch.uint8:
            raise GanMetricsError(f"value_range='uint8' needs a uint8 tensor, got {images.dtype}")
        return images
    if value_range not in VALUE_RANGES:
        raise GanMetricsError(f"value_range {value_range!r} is unknown: use one of {', '.join(VALUE_RANGES)}")
    if not images.is_floating_point():
        raise GanMetricsError(f"value_range={value_range!r} needs a float tensor, got {images.dtype}")
    if not torch.isfinite(images).all():
        raise GanMetricsError("generated images contain NaN or infinite values: check the generator")
    low = -1.0 if value_range == "-1,1" else 0.0
    scaled = (images.float() - low) * (255.0 / (1.0 - low))
    return scaled.round().clamp(0, 255).to(torch.uint8)


def rgb_pixels(images, value_range: str | None = None) -> torch.Tensor:
    """A batch of generated images -> uint8 (N, H, W, 3), contiguous, on their own device.

    ``images``: a tensor (any device) or array, (N, C, H, W) or (N, H, W, C) with C = 1
    (replicated, as grayscale files are) or 3; uint8, or float in ``value_range``. With
    ``value_range=None``: "uint8" for uint8 images, else "-1,1" (a tanh output).
    """
    images = torch.as_tensor(images).detach()
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GanMetricsError(
            f"generated images must be shaped (N, 3, H, W) or (N, H, W, 3) (or 1 channel), got {tuple(images.shape)}"
        )
    if value_range is None:
        value_range = "uint8" if images.dtype == torch.uint8 else "-1,1"
    return to_uint8(images, value_range).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous()


def _report_skipped(skipped: list[str], where: str, strict: bool) -> None:
    """Refuse (``strict``) or count in one warning the non-image files of a source."""
    if not skipped:
        return
    if strict:
        raise GanMetricsError(
            f"{skipped[0]} in {where} is not an image ({len(skipped)} such file(s)): remove it, or drop "
            "--strict to skip non-image files"
        )
    warnings.warn(f"skipped {len(skipped)} non-image files in {where} (first: {skipped[0]})", stacklevel=3)


class ImageSource:
    """A finite, ordered set of images. Subclasses set ``names`` and implement ``read`` (random
    access, picklable for worker processes) or ``iterate`` (one sequential pass).

    ``in_process``: must be read in the main process (generators: CUDA modules, closures).
    """

    random_access = True
    in_process = False
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        raise NotImplementedError

    def fingerprint(self) -> dict | None:
        """JSON-able identity of these images for the statistics cache: it changes whenever
        the pixels may have changed. None: not cacheable."""
        return None

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
        _report_skipped([name for name in found if not is_image_name(name)], str(root), strict)

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
        _report_skipped(skipped, str(self.path), strict)


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
        """Array ``key`` (default: the first) of the ``.npz`` at ``path``; a plain array for the
        rare layouts that cannot be read by image (Fortran order, format 3.0)."""
        try:
            with zipfile.ZipFile(path) as archive:
                members = [name for name in archive.namelist() if name.endswith(".npy")]
                keys = [name[:-4] for name in members]
                if not members:
                    raise GanMetricsError(f"{path} holds no arrays: check the file")
                if key is not None and key not in keys:
                    raise GanMetricsError(f"{path} has no array {key!r} (it has {keys}): pass another --key")
                member = f"{key}.npy" if key is not None else members[0]
                with archive.open(member) as file:
                    version = np.lib.format.read_magic(file)
                    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version in readers:
                        shape, fortran_order, dtype = readers[version](file)
                        if not fortran_order:
                            return cls(path, member, shape, dtype, file.tell())
            with np.load(path, allow_pickle=False) as data:
                return data[member[:-4]]
        except GanMetricsError:
            raise
        except Exception as err:  # zipfile and numpy raise several types for a damaged file
            raise GanMetricsError(f"cannot read {path} ({type(err).__name__}): check the file") from None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def __getitem__(self, index: int) -> np.ndarray:
        if self._file is None:
            self._file = zipfile.ZipFile(self.path).open(self.member)
        count = int(np.prod(self.shape[1:]))
        self._file.seek(self.offset + index * count * self.dtype.itemsize)
        data = self._file.read(count * self.dtype.itemsize)
        if len(data) != count * self.dtype.itemsize:
            raise GanMetricsError(f"{self.path}: array {self.member} is truncated at image {index}: recreate the file")
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])


class ArraySource(ImageSource):
    """uint8 images in an array (N, H, W, 3) or (N, 3, H, W): in memory, ``.npy`` (memory-mapped)
    or one array of an ``.npz`` (the first, or ``key``) read image by image. ``path``: the file
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


class _CallerRNG:
    """Keeps the global torch RNG (CPU, and CUDA devices already initialised) of the caller out
    of a generator's reach: generator code sees a private copy that starts from the caller's
    state and carries on across batches, and the caller's state is put back after each batch."""

    def __init__(self):
        self.devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        self.private = self._get()

    def _get(self):
        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self.devices]

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        for device, cuda_state in zip(self.devices, state[1]):
            torch.cuda.set_rng_state(cuda_state, device)

    def run(self, function, *args):
        caller = self._get()
        self._set(self.private)
        try:
            return function(*args)
        finally:
            self.private = self._get()
            self._set(caller)


class GeneratorSource(ImageSource):
    """``n`` images made ``batch_size`` at a time by a generator (Python API only).

    ``generate`` is either a torch ``nn.Module``, called on latent noise z ~ N(0, I) shaped
    (batch, *latent_shape), drawn from its own CPU ``torch.Generator`` seeded ``seed`` and moved
    to the module's device and dtype (``latent_shape`` defaults to the module's ``nz``,
    ``latent_dim`` or ``z_dim``); or any other callable ``generate(batch) -> images``. Images are
    a tensor or array (batch, C, H, W) or (batch, H, W, C), C = 1 or 3: uint8, or float in
    ``value_range`` (default for floats "-1,1"), converted with ``to_uint8`` as PNG saving would.

    Runs under ``torch.no_grad`` in the module's current mode (call ``.eval()`` first for
    BatchNorm running statistics); leaves the module's mode and the caller's global RNG state as
    they were. Read in one pass in the main process.
    """

    random_access = False
    in_process = True

    def __init__(self, generate, n: int, batch_size: int = 50, value_range: str | None = None,
                 latent_shape: int | tuple[int, ...] | None = None, seed: int = 0):
        if not callable(generate):
            raise GanMetricsError(f"a generator source needs a callable or torch module, got {type(generate).__name__}")
        if n < 1 or batch_size < 1:
            raise GanMetricsError(f"a generator source needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if value_range is not None and value_range not in VALUE_RANGES:
            raise GanMetricsError(f"value_range {value_range!r} is unknown: use one of {', '.join(VALUE_RANGES)}")
        self.generate, self.batch_size, self.value_range, self.seed = generate, batch_size, value_range, seed
        self.names = [str(i) for i in range(n)]
        self.latent_shape = None
        if isinstance(generate, torch.nn.Module):
            if latent_shape is None:
                latent_shape = next((getattr(generate, a) for a in ("nz", "latent_dim", "z_dim") if hasattr(generate, a)), None)
            if latent_shape is None:
                raise GanMetricsError(
                    f"cannot tell the latent size of {type(generate).__name__}: pass latent_shape=, e.g. (100,)"
                )
            self.latent_shape = (latent_shape,) if isinstance(latent_shape, int) else tuple(latent_shape)

    def describe(self) -> str:
        name = getattr(self.generate, "__qualname__", type(self.generate).__name__)
        return f"generator {name}"

    def _batch(self, count: int, noise: torch.Generator) -> np.ndarray:
        with torch.no_grad():
            if self.latent_shape is None:
                images = self.generate(count)
            else:
                anchor = next(itertools.chain(self.generate.parameters(), self.generate.buffers()), None)
                z = torch.randn((count, *self.latent_shape), generator=noise)
                if anchor is not None:
                    z = z.to(anchor.device, anchor.dtype if anchor.is_floating_point() else None)
                images = self.generate(z)
        pixels = rgb_pixels(images, self.value_range).cpu().numpy()
        if len(pixels) != count:
            raise GanMetricsError(f"{self.describe()} made {len(pixels)} images when asked for {count}: check the generator")
        return pixels

    def iterate(self):
        rng = _CallerRNG()
        noise = torch.Generator().manual_seed(self.seed)
        index = 0
        while index < len(self):
            for image in rng.run(self._batch, min(self.batch_size, len(self) - index), noise):
                yield index, image
                index += 1


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
        return ArraySource(spec, f"array of shape {tuple(spec.shape)}").limited(limit)
    path = Path(spec)
    name = path.name.lower()
    if path.is_dir():
        source = FolderSource(path, recursive, strict)
    elif not path.exists():
        raise GanMetricsError(f"{path} does not exist: pass a folder of images, an archive or an array file")
    elif name.endswith(".zip"):
        source = ZipSource(path, strict)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        source = TarSource(path, strict)
    elif name.endswith(".npy"):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise GanMetricsError(f"cannot read {path} ({type(err).__name__}): check the file") from None
        source = ArraySource(array, f"array {path}", path)
    elif name.endswith(".npz"):
        array = NpzMember.open(path, key)
        source = ArraySource(array, f"array {path}" + (f"[{key}]" if key else ""), path, key)
    else:
        raise GanMetricsError(
            f"{path} is not a folder, archive ({', '.join(ARCHIVE_SUFFIXES)}) or array ({', '.join(ARRAY_SUFFIXES)}): "
            "pass one of those"
        )
    return source.limited(limit)
