"""Images for a page: seeded samples of a source, downscaled thumbnails, and every embedded image
encoded within a byte budget.

A thumbnail is the image shrunk (Lanczos, aspect kept, never enlarged) to at most
``THUMBNAIL_PIXELS`` a side. Any embedded image (a thumbnail, a trainer's sample sheet) gets
``THUMBNAIL_BYTES`` per ``THUMBNAIL_PIXELS``² pixels (rounded up): lossless PNG where that
fits (small images: 32 px ones take 2-3 KiB), else JPEG at the best of ``JPEG_QUALITIES`` that
fits (a 64 px photo-like image takes 1-3 KiB at quality 90; 64 px of pure noise 1.1 KiB at 10),
so the bound holds for any pixels.
"""

import base64
import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import GanMetricsError
from ..sources import ImageSource, images_key, open_source
from ..store.statsfile import is_statistics_file
from .page import Picture

THUMBNAIL_PIXELS = 64
THUMBNAIL_BYTES = 6 * 1024
JPEG_QUALITIES = (90, 75, 50, 25, 10)


def budget(width: int, height: int) -> int:
    """The most bytes an embedded image of ``width`` x ``height`` pixels may take."""
    return math.ceil(width * height / THUMBNAIL_PIXELS ** 2) * THUMBNAIL_BYTES


def encode(image: Image.Image) -> tuple[str, bytes]:
    """(MIME type, file bytes) of an RGB ``image`` within ``budget`` of its size: PNG where it
    fits, else the best JPEG quality that does."""
    limit = budget(*image.size)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    if buffer.tell() <= limit:
        return "image/png", buffer.getvalue()
    for quality in JPEG_QUALITIES:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= limit:
            return "image/jpeg", buffer.getvalue()
    raise GanMetricsError(f"an image of {image.size[0]}x{image.size[1]} pixels does not fit in {limit} bytes "
                          "even as a JPEG of quality 10")  # ~1 KiB: unreachable for any pixels


def picture(image: Image.Image, title: str = "") -> Picture:
    """``image`` (RGB) embedded as a ``data:`` URI within its byte budget."""
    mime, data = encode(image)
    return Picture(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", *image.size, title)


def png_picture(data: bytes, title: str = "") -> Picture:
    """A PNG file's bytes (a plot: crisp lines, kept lossless) embedded as they are."""
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    return Picture(f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}", *size, title)


def thumbnail(pixels: np.ndarray, title: str = "") -> Picture:
    """uint8 (H, W, 3) ``pixels`` as a thumbnail of at most ``THUMBNAIL_PIXELS`` a side."""
    image = Image.fromarray(pixels)
    image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), Image.Resampling.LANCZOS)
    return picture(image, title)


def sample_indices(n: int, count: int, seed: int) -> list[int]:
    """``count`` distinct indices of ``n`` images (all where fewer), drawn by a NumPy generator
    seeded ``seed``, in increasing order."""
    chosen = np.random.default_rng(seed).choice(n, size=min(n, count), replace=False)
    return sorted(int(i) for i in chosen)


def open_images(spec: str, options: dict) -> tuple[ImageSource | None, str]:
    """(the source at the path ``spec`` opened with the source ``options`` of the run — recursive,
    key, limit, strict —, "") or (None, why no image of it can be shown)."""
    path = Path(spec)
    try:
        if not path.exists():
            return None, f"{spec} does not exist here: no images to show"
        if path.is_file() and path.name.lower().endswith(".npz") and is_statistics_file(path) \
                and images_key(path) is None:
            return None, f"{spec} is a statistics file: it holds no images"
        return open_source(os.fspath(path), **options), ""
    except GanMetricsError as err:
        return None, f"no images to show: {err}"


def read_images(source: ImageSource, indices: list[int]) -> dict[int, np.ndarray]:
    """{index: uint8 (H, W, 3)} of ``source``'s images at ``indices`` (increasing): read by
    index, or in one pass up to the last for a sequential source (a .tar archive)."""
    if source.random_access:
        return {i: source.read(i) for i in indices}
    wanted = set(indices)
    return {i: image for i, image in source.iterate(0, indices[-1] + 1) if i in wanted} if indices else {}
