"""Image batches as the ADM evaluator reads them: an ``.npz`` whose ``arr_0`` holds uint8 images
(N, H, W, 3), written batch by batch, never held in memory.

The file is what ``np.savez(path, images)`` writes (a zip of one stored member ``arr_0.npy``,
ZIP64, its ``.npy`` header in format 1.0), but streamed: the header is written first for the
final shape, then the pixels in image order as they arrive. Written atomically: nothing is left
behind when writing fails or the images do not fill the declared shape.
"""

import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from .atomicfile import atomic_write

IMAGES_KEY = "arr_0"
"""The images of an ADM batch: ``np.savez(path, images)``'s first array."""


@contextmanager
def image_batch_writer(path: str | os.PathLike, shape: tuple[int, int, int, int]) -> Iterator[Callable[[np.ndarray], None]]:
    """Write ``path`` as an ``.npz`` holding uint8 images of ``shape`` (N, H, W, 3) as ``arr_0``.
    Yields ``write(images)``, which appends uint8 (n, H, W, 3) images in order; a clean exit
    with fewer or more than N images written is a ValueError (a caller's bug), and leaves no file."""
    count, height, width, channels = shape
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": tuple(shape)}
    written = 0

    def write(images: np.ndarray) -> None:
        nonlocal written
        if images.dtype != np.uint8 or images.shape[1:] != (height, width, channels):
            raise ValueError(f"expected uint8 images (n, {height}, {width}, {channels}), got {images.dtype} {images.shape}")
        if written + len(images) > count:
            raise ValueError(f"more than the declared {count} images")
        member.write(np.ascontiguousarray(images).data)
        written += len(images)

    with atomic_write(path) as file, zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open(f"{IMAGES_KEY}.npy", "w", force_zip64=True) as member:  # as np.savez: always ZIP64
            np.lib.format.write_array_header_1_0(member, header)
            yield write
            if written != count:
                raise ValueError(f"{written} images written of the declared {count}")
