"""What every image source is: a finite, ordered set of uint8 RGB images, and the decoding they share.

Every source decodes the same pixels the same way (PIL, ``convert("RGB")``: grayscale is
replicated, alpha dropped, palettes expanded), so the same images give the same features from
any source. Files that are not images (by extension) are skipped with one warning that counts
them, or refused with ``strict=True``; hidden files and folders are skipped silently.
"""

import copy
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import GanMetricsError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def is_hidden(name: str) -> bool:
    """A relative path with a part starting with "." (other than "." and "..")."""
    return any(part.startswith(".") and part not in (".", "..") for part in name.replace("\\", "/").split("/"))


def is_image_name(name: str) -> bool:
    """An image by extension (case-insensitive), not hidden and not inside a hidden folder."""
    return not is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes | Path, name: str) -> np.ndarray:
    """Decode one image file's bytes (or path) to uint8 (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()  # decode fully now, so a truncated file fails here
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, ... for bad files
        raise GanMetricsError(
            f"cannot decode image {name} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}): "
            "remove or replace the file"
        ) from None
    return pixels


def report_skipped(skipped: list[str], where: str, strict: bool) -> None:
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
        """The first ``limit`` images (all when None), as a new source: this one is left whole."""
        if limit is not None:
            if limit < 1:
                raise GanMetricsError(f"--limit must be at least 1, got {limit}")
            subset = copy.copy(self)
            subset.names = self.names[:limit]
            return subset
        return self
