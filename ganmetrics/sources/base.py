"""What every image source is: a finite, ordered set of uint8 RGB images, and the decoding they share.

Every source decodes the same pixels the same way (PIL, ``convert("RGB")``: grayscale is
replicated, alpha dropped, palettes expanded), so the same images give the same features from
any source. High-bit-depth images are scaled, not clipped: a 16-bit grayscale image (PIL modes
``I;16``, ``I;16B``, ``I;16L``, and ``I`` as 16-bit PNGs open) becomes 8 bits as ``value // 257``
(values of a 32-bit ``I`` image clipped to [0, 65535] first), so a 16-bit image and its 8-bit
version (``value // 257``) give the same pixels; 16-bit RGB(A) PNGs PIL itself reads as 8 bits
per channel (the high byte, which equals ``value // 257`` for any image made from 8 bits).
Files that are not images (by extension) are skipped with one warning that counts them, or
refused with ``strict=True``; hidden files and folders are skipped silently.

Limits, so that a hostile file cannot exhaust memory: an image file (a file in a folder or an
archive member) is read into memory only up to ``GANMETRICS_MAX_IMAGE_BYTES`` (default 256 MiB),
and an image is decoded only up to
``GANMETRICS_MAX_IMAGE_PIXELS`` pixels (default 178,956,970: where Pillow's own decompression
bomb guard refuses); either environment variable raises its limit. Names in messages go through
``quoted``, so a name holding a newline cannot break the one-line error.
"""

import copy
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from ..errors import GanMetricsError, describe_error, quoted

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
ENV_MAX_IMAGE_BYTES = "GANMETRICS_MAX_IMAGE_BYTES"
ENV_MAX_IMAGE_PIXELS = "GANMETRICS_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485  # Pillow refuses above twice its MAX_IMAGE_PIXELS
_HIGH_BIT_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def unchanged(image: np.ndarray) -> np.ndarray:
    """The transform that keeps each decoded image as it is (picklable, for the decoding workers)."""
    return image


def _limit_from_env(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise GanMetricsError(f"{variable}={text!r} is not a positive whole number: set it to e.g. {default} or unset it")
    return value


def max_image_bytes() -> int:
    """The most bytes read into memory for one image file (``GANMETRICS_MAX_IMAGE_BYTES``)."""
    return _limit_from_env(ENV_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_BYTES)


def max_image_pixels() -> int:
    """The most pixels decoded for one image (``GANMETRICS_MAX_IMAGE_PIXELS``)."""
    return _limit_from_env(ENV_MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGE_PIXELS)


def too_large(name: str, size: int | None, limit: int) -> GanMetricsError:
    """The error for an image file larger than ``limit`` bytes (``size``: when known)."""
    what = f"{size:,} bytes" if size is not None else "more than that"
    return GanMetricsError(
        f"image {quoted(name)} is {what}, above the limit of {limit:,} bytes an image: set "
        f"{ENV_MAX_IMAGE_BYTES} to a larger number of bytes if the file is genuine"
    )


def read_bounded(file: BinaryIO, name: str, size: int | None = None) -> bytes:
    """All of ``file`` (an image file or archive member), refusing more than ``max_image_bytes()``
    bytes without reading them; ``size``: the size the file system or the archive declares, when
    it does (a file may still grow, or an archive lie: at most one byte over the limit is read)."""
    limit = max_image_bytes()
    if size is not None and size > limit:
        raise too_large(name, size, limit)
    data = file.read(limit + 1)
    if len(data) > limit:
        raise too_large(name, size, limit)
    return data


def is_hidden(name: str) -> bool:
    """A relative path with a part starting with "." (other than "." and "..")."""
    return any(part.startswith(".") and part not in (".", "..") for part in name.replace("\\", "/").split("/"))


def is_image_name(name: str) -> bool:
    """An image by extension (case-insensitive), not hidden and not inside a hidden folder."""
    return not is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS



def _rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of a loaded PIL image; high-bit-depth grayscale scaled by ``// 257``."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        values = np.asarray(image).astype(np.int64)
        gray = (values.clip(0, 65535) // 257).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes | Path | BinaryIO, name: str) -> np.ndarray:
    """Decode one image file's bytes (or path, or open binary file) to uint8 (H, W, 3)."""
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS * 2:  # raised above Pillow's guard
        Image.MAX_IMAGE_PIXELS = limit // 2 + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below decides
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                width, height = image.size
                if width * height > limit:
                    raise Image.DecompressionBombError("too many pixels")
                image.load()  # decode fully now, so a truncated file fails here
                pixels = _rgb(image)
    except Image.DecompressionBombError:
        raise GanMetricsError(
            f"image {quoted(name)} is larger than the limit of {limit:,} pixels (a decompression bomb?): "
            f"set {ENV_MAX_IMAGE_PIXELS} to a larger number of pixels if the image is genuine"
        ) from None
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, ... for bad files
        raise GanMetricsError(
            f"cannot decode image {quoted(name)} ({describe_error(err)}): "
            "remove or replace the file"
        ) from None
    return pixels


def report_skipped(skipped: list[str], where: str, strict: bool, what: str = "non-image files",
                   is_not: str = "an image") -> None:
    """Refuse (``strict``) or count in one warning the files of a source that are skipped:
    ``what`` they are (non-image files; entries that are not regular files), each ``is_not``."""
    if not skipped:
        return
    if strict:
        raise GanMetricsError(
            f"{quoted(skipped[0])} in {quoted(where)} is not {is_not} ({len(skipped)} such file(s)): remove it, "
            f"or drop --strict to skip {what}"
        )
    warnings.warn(f"skipped {len(skipped)} {what} in {quoted(where)} (first: {quoted(skipped[0])})", stacklevel=3)


class ImageSource:
    """A finite, ordered set of images. Subclasses set ``names`` and implement ``read`` (random
    access, picklable for worker processes) or ``iterate`` (one sequential pass).

    ``in_process``: must be read in the main process (generators: CUDA modules, closures);
    ``cached_by_default``: a reference side of this kind goes through the statistics cache
    unless told otherwise (files on disk that are read again, unlike arrays in memory).
    """

    random_access = True
    in_process = False
    cached_by_default = False
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

    def iterate(self, start: int = 0, stop: int | None = None):
        """Yield (index, uint8 (H, W, 3)) in order, for the indices ``start`` to ``stop``
        (excluded; None: to the end): a shard of a sequential source reads no image before it."""
        for index in range(start, len(self) if stop is None else stop):
            yield index, self.read(index)

    def limited(self, limit: int | None) -> "ImageSource":
        """The first ``limit`` images (all when None), as a new source: this one is left whole."""
        if limit is not None:
            if limit < 1:
                raise GanMetricsError(f"--limit must be at least 1, got {limit}")
            subset = copy.copy(self)
            subset.names = self.names[:limit]
            return subset
        return self
