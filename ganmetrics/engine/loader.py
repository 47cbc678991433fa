"""Decoding in worker processes: datasets over a source, and the batches they make.

The datasets run in worker processes, each image decoded once and passed through every host
transform a run's encoders need (their per-image work, e.g. a PIL resampling to a network's input): a batch
holds one view of its images per transform. A bad image travels back as a GanMetricsError
*value*, so the main process raises it as a one-line error (DataLoader would wrap a raised one
in a multi-line message with the worker's traceback).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..errors import GanMetricsError
from ..sources import ImageSource


Transforms = tuple[Callable[[np.ndarray], np.ndarray], ...]
"""Per-image functions of a decoded uint8 (H, W, 3) image, each giving one view of a batch."""


class IndexedImages(Dataset):
    """(position, the image's views or an error) of the images at ``positions`` (a range of the
    source's indices), for sources with random access."""

    def __init__(self, source: ImageSource, transforms: Transforms, positions: range):
        self.source, self.transforms, self.positions = source, transforms, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        position = self.positions[index]
        try:
            image = self.source.read(position)
            return position, tuple(transform(image) for transform in self.transforms)
        except GanMetricsError as err:
            return position, err


class SequentialImages(IterableDataset):
    """(position, the image's views or an error) of the images at ``positions`` (a range of the
    source's indices) in one pass, for sequential sources."""

    def __init__(self, source: ImageSource, transforms: Transforms, positions: range):
        self.source, self.transforms, self.positions = source, transforms, positions

    def __iter__(self):
        try:
            for index, image in self.source.iterate(self.positions.start, self.positions.stop):
                yield index, tuple(transform(image) for transform in self.transforms)
        except GanMetricsError as err:
            yield -1, err


Group = tuple[torch.Tensor, torch.Tensor]
"""Images of one shape: (positions in the batch, int64 (n,); the images stacked, (n, H, W, C))."""


def _by_shape(images: list[np.ndarray]) -> list[Group]:
    """Images of any shapes -> groups of one shape each, in order of first appearance."""
    by_shape: dict[tuple, list[int]] = {}
    for position, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(position)
    return [(torch.tensor(positions), torch.from_numpy(np.stack([images[p] for p in positions])))
            for positions in by_shape.values()]


@dataclass
class ImageBatch:
    """One batch of decoded images, grouped by shape where it was decoded (a worker process).

    ``start``: the source position of its first image; ``size``: its number of images;
    ``views``: per host transform (in the run's order), its groups of one shape (``Group``:
    uint8 (n, H, W, 3) decoded images, or what the transform made of them, e.g. float32
    (n, H', W', 3)); ``error``: a bad image's error, which the main process raises (a worker's
    own exception would arrive wrapped in a traceback).
    """

    start: int
    size: int
    views: list[list[Group]]
    error: GanMetricsError | None = None

    @property
    def groups(self) -> list[Group]:
        """The first view's groups (a run with one transform has one view; a failed batch none)."""
        return self.views[0] if self.views else []

    @classmethod
    def of_images(cls, images: list, start: int = 0) -> "ImageBatch":
        """Images decoded by a source, the first at source position ``start``: each a uint8 (H, W,
        3) array (one view), or a tuple of its views (one per transform), stacked by shape."""
        per_image = [image if isinstance(image, tuple) else (image,) for image in images]
        return cls(start, len(images), [_by_shape([views[v] for views in per_image]) for v in range(len(per_image[0]))])

    @classmethod
    def of_pixels(cls, *views: torch.Tensor) -> "ImageBatch":
        """Same-sized images already stacked, one tensor per view ((n, H, W, C)), on any device:
        one group each, left where they are."""
        return cls(0, len(views[0]), [[(torch.arange(len(pixels)), pixels)] for pixels in views])

    @classmethod
    def collate(cls, items: list[tuple[int, "tuple | GanMetricsError"]]) -> "ImageBatch":
        """The DataLoader's ``collate_fn``: (position, views or error) pairs -> a batch."""
        for _, item in items:
            if isinstance(item, GanMetricsError):
                return cls(items[0][0], len(items), [], item)
        return cls.of_images([views for _, views in items], start=items[0][0])

    def pin_memory(self) -> "ImageBatch":
        """Page-locked copies, so the copies to the GPU run asynchronously (DataLoader calls this)."""
        return replace(self, views=[[(p.pin_memory(), x.pin_memory()) for p, x in view] for view in self.views])



def checked_batches(loader: Iterable[ImageBatch]) -> Iterator[ImageBatch]:
    """The batches of a loader (or of its iterator, once started); a batch that carries a bad
    image's error raises it here."""
    for batch in loader:
        if batch.error is not None:
            raise batch.error
        yield batch




def make_loader(source: ImageSource, transforms: Transforms, batch_size: int, workers: int, pin_memory: bool,
                positions: range | None = None) -> DataLoader:
    """Batches of the images of ``source`` at ``positions`` (a range of its indices; default:
    all) decoded by ``workers`` processes (0: here; sequential sources use at most one,
    in-process sources none), each image passed through every one of ``transforms``."""
    positions = range(len(source)) if positions is None else positions
    if source.in_process:  # e.g. a generator module on the GPU: runs here, not in a worker
        workers = 0
    elif not source.random_access:
        workers = min(workers, 1)
    dataset = (IndexedImages if source.random_access else SequentialImages)(source, transforms, positions)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=ImageBatch.collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        generator=torch.Generator(),  # workers' seeds come from here, not the global RNG
    )
