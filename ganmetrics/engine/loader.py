"""Decoding in worker processes: datasets over a source, and the batches they make.

The datasets run in worker processes (``host_transform`` there too, e.g. clean-fid's PIL
resize). A bad image travels back as a GanMetricsError *value*, so the main process raises it
as a one-line error (DataLoader would wrap a raised one in a multi-line message with the
worker's traceback).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..errors import GanMetricsError
from ..sources import ImageSource


class IndexedImages(Dataset):
    """(position, transformed image or error) of the images at ``positions`` (a range of the
    source's indices), for sources with random access."""

    def __init__(self, source: ImageSource, transform: Callable, positions: range):
        self.source, self.transform, self.positions = source, transform, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        position = self.positions[index]
        try:
            return position, self.transform(self.source.read(position))
        except GanMetricsError as err:
            return position, err


class SequentialImages(IterableDataset):
    """(position, transformed image or error) of the images at ``positions`` (a range of the
    source's indices) in one pass, for sequential sources."""

    def __init__(self, source: ImageSource, transform: Callable, positions: range):
        self.source, self.transform, self.positions = source, transform, positions

    def __iter__(self):
        try:
            for index, image in self.source.iterate(self.positions.start, self.positions.stop):
                yield index, self.transform(image)
        except GanMetricsError as err:
            yield -1, err


@dataclass
class ImageBatch:
    """One batch of decoded images, grouped by shape where it was decoded (a worker process).

    ``start``: the source position of its first image; ``size``: its number of images;
    ``groups``: (positions in the batch, int64 (n,); images, uint8 (n, H, W, 3), or float32
    (n, 299, 299, 3) after ``clean_resize``) per shape; ``error``: a bad image's error, which the
    main process raises (a worker's own exception would arrive wrapped in a traceback).
    """

    start: int
    size: int
    groups: list[tuple[torch.Tensor, torch.Tensor]]
    error: GanMetricsError | None = None

    @classmethod
    def of_images(cls, images: list[np.ndarray], start: int = 0) -> "ImageBatch":
        """Images decoded by a source (uint8 (H, W, 3) arrays, or float32 (299, 299, 3) after
        ``clean_resize``), the first at source position ``start``, stacked by shape."""
        by_shape: dict[tuple, list[int]] = {}
        for position, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(position)
        groups = [(torch.tensor(positions), torch.from_numpy(np.stack([images[p] for p in positions])))
                  for positions in by_shape.values()]
        return cls(start, len(images), groups)

    @classmethod
    def of_pixels(cls, pixels: torch.Tensor) -> "ImageBatch":
        """Same-sized images already stacked, uint8 (n, H, W, 3) (or float32 (n, 299, 299, 3)
        after ``clean_resize``), on any device: one group, left where it is."""
        return cls(0, len(pixels), [(torch.arange(len(pixels)), pixels)])

    @classmethod
    def collate(cls, items: list[tuple[int, "np.ndarray | GanMetricsError"]]) -> "ImageBatch":
        """The DataLoader's ``collate_fn``: (position, image or error) pairs -> a batch."""
        for _, item in items:
            if isinstance(item, GanMetricsError):
                return cls(items[0][0], len(items), [], item)
        return cls.of_images([image for _, image in items], start=items[0][0])

    def pin_memory(self) -> "ImageBatch":
        """Page-locked copies, so the copies to the GPU run asynchronously (DataLoader calls this)."""
        return replace(self, groups=[(p.pin_memory(), x.pin_memory()) for p, x in self.groups])



def checked_batches(loader: Iterable[ImageBatch]) -> Iterator[ImageBatch]:
    """The batches of a loader (or of its iterator, once started); a batch that carries a bad
    image's error raises it here."""
    for batch in loader:
        if batch.error is not None:
            raise batch.error
        yield batch




def make_loader(source: ImageSource, transform: Callable, batch_size: int, workers: int, pin_memory: bool,
                positions: range | None = None) -> DataLoader:
    """Batches of the images of ``source`` at ``positions`` (a range of its indices; default:
    all) decoded by ``workers`` processes (0: here; sequential sources use at most one,
    in-process sources none), each image passed through ``transform``."""
    positions = range(len(source)) if positions is None else positions
    if source.in_process:  # e.g. a generator module on the GPU: runs here, not in a worker
        workers = 0
    elif not source.random_access:
        workers = min(workers, 1)
    dataset = (IndexedImages if source.random_access else SequentialImages)(source, transform, positions)
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
