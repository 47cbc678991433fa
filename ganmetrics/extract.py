"""Images through the network on a device, reduced as they come.

Decoding (and, for ``--resize clean``, PIL resizing) runs in DataLoader worker processes,
which also stack each batch's images by shape; batches travel as uint8 (from page-locked memory,
asynchronously, to a GPU) to the compute device, where they are resized, normalised and passed
through the network once for both the FID features and the IS logits. Reducers receive each
batch's outputs on that device, so nothing waits for the GPU until the end, and memory does not
grow with the number of images. On the CPU the network runs in oneDNN's blocked layout
(``onednn.py``); on a GPU with cuDNN autotuning and, unless allowed, no TF32.
"""

import collections
import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from . import __version__
from .errors import GanMetricsError
from .inception import FEATURE_DIMS, NUM_CLASSES, FIDInceptionV3, InceptionOutput
from .onednn import use_blocked_layout
from .preprocess import RESIZE_MODES, clean_resize, to_network_input
from .reducers import GaussianStats, InceptionScoreAccumulator
from .sources import ImageSource
from .statsfile import EXTRACTOR, Statistics
from .weights import Weights


def default_workers() -> int:
    """Decoding processes: one fewer than the CPUs (the main process runs the network), 1 to 8."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise GanMetricsError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanMetricsError(f"--device {spec}: no CUDA GPU is available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GanMetricsError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here; pick a lower index"
            )
    elif device.type != "cpu":
        raise GanMetricsError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    return device


def _prepare(image: np.ndarray, resize: str) -> np.ndarray:
    return clean_resize(image) if resize == "clean" else image


# The datasets run in worker processes. A bad image travels back as a GanMetricsError *value*,
# so the main process raises it as a one-line error (DataLoader would wrap a raised one in a
# multi-line message with the worker's traceback).


class _IndexedImages(Dataset):
    def __init__(self, source: ImageSource, resize: str):
        self.source, self.resize = source, resize

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        try:
            return index, _prepare(self.source.read(index), self.resize)
        except GanMetricsError as err:
            return index, err


class _SequentialImages(IterableDataset):
    def __init__(self, source: ImageSource, resize: str):
        self.source, self.resize = source, resize

    def __iter__(self):
        try:
            for index, image in self.source.iterate():
                yield index, _prepare(image, self.resize)
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


@contextlib.contextmanager
def cuda_numerics(allow_tf32: bool):
    """cuDNN autotuning on, and TF32 off for convolutions and matrix products unless
    ``allow_tf32`` (TF32 rounds inputs to 10 mantissa bits and moves FID); the process's
    previous settings come back afterwards."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        precision = "tf32" if allow_tf32 else "ieee"
        settings = [(cudnn.conv, "fp32_precision", precision), (matmul, "fp32_precision", precision)]
    else:
        settings = [(cudnn, "allow_tf32", allow_tf32), (matmul, "allow_tf32", allow_tf32)]
    settings.append((cudnn, "benchmark", True))
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in settings]
    try:
        for owner, name, value in settings:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _checked(loader: DataLoader):
    """The loader's batches; a batch that carries a bad image's error raises it here."""
    for batch in loader:
        if batch.error is not None:
            raise batch.error
        yield batch


def _result(submitted: tuple) -> tuple:
    """(batch, its output) from a (batch, future) pair, waiting for the future."""
    batch, future = submitted
    return batch, future.result()


@contextlib.contextmanager
def intra_op_threads(count: int):
    """torch's intra-op thread count of the calling thread (OpenMP keeps one per thread) set to
    ``count`` (at least 1), the previous one restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


MAX_CONCURRENT_BATCHES = 4
CPU_STEM_BATCH = 2
"""Images the network's stem runs at once on the CPU (see ``FIDInceptionV3.stem_batch``)."""


@dataclass
class FeatureExtractor:
    """The network and every setting that changes the numbers, ready to reduce sources.

    ``dims``: FID feature tap (64, 192, 768, 2048); ``resize``: tf, pytorch or clean;
    ``batch_size``: images per forward pass; ``workers``: decoding processes (0: decode in this
    process); ``progress``: a tqdm bar on stderr; ``allow_tf32``: let a CUDA device compute
    convolutions and matrix products in TF32 (faster on Ampere and later; moves FID).
    """

    weights: Weights
    device: torch.device
    resize: str = "tf"
    dims: int = 2048
    batch_size: int = 50
    workers: int = 1
    progress: bool = False
    allow_tf32: bool = False

    def __post_init__(self):
        if self.dims not in FEATURE_DIMS:
            raise GanMetricsError(f"--dims {self.dims} is not a feature layer: use one of {', '.join(map(str, FEATURE_DIMS))}")
        if self.resize not in RESIZE_MODES:
            raise GanMetricsError(f"--resize {self.resize!r} is unknown: use one of {', '.join(RESIZE_MODES)}")
        if self.batch_size < 1:
            raise GanMetricsError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise GanMetricsError(f"--workers must be 0 or more, got {self.workers}")

    @functools.cached_property
    def network(self) -> FIDInceptionV3:
        """The network on the device, built on first use (FID between two statistics files needs none)."""
        network = self.weights.build_network(self.device)
        if self.device.type == "cpu":
            use_blocked_layout(network)  # the same numbers with fewer reorders (see onednn.py)
            network.stem_batch = CPU_STEM_BATCH  # the same numbers, from the caches
        return network

    def metadata(self, source_description: str) -> dict:
        """The ``meta`` of a statistics file made by this extractor."""
        return {
            "extractor": EXTRACTOR,
            "dims": self.dims,
            "resize": self.resize,
            "weights_sha256": self.weights.sha256,
            "calibrated": self.weights.calibrated,
            "tf32": self.tf32,
            "version": __version__,
            "source": source_description,
        }

    @property
    def tf32(self) -> bool:
        """Whether TF32 is in use: allowed, and on a CUDA device."""
        return self.allow_tf32 and self.device.type == "cuda"

    @torch.inference_mode()
    def forward_batch(self, batch: ImageBatch, logits: bool) -> InceptionOutput:
        """Features float32 (N, dims) and, if asked, logits (N, 1008) of a batch, in input
        order, on the compute device (no synchronisation with a GPU). Each shape group travels
        as uint8 and is resized there."""
        features = torch.empty(batch.size, self.dims, device=self.device)
        all_logits = torch.empty(batch.size, NUM_CLASSES, device=self.device) if logits else None
        # Asynchronous copies only *to* a GPU: one from a GPU into CPU memory could be read
        # before it has landed (images from a generator on a GPU, a CPU extractor).
        to_gpu = self.device.type == "cuda"
        with cuda_numerics(self.allow_tf32) if to_gpu else contextlib.nullcontext():
            for positions, images in batch.groups:
                # Contiguous NCHW as the reference tools feed it: a channels-last batch makes the
                # convolutions pick other kernels, whose rounding moves features by ~1e-5.
                x = images.to(self.device, non_blocking=to_gpu).permute(0, 3, 1, 2).contiguous()
                out = self.network(to_network_input(x, self.resize), dims=self.dims, logits=logits)
                index = positions.to(self.device, non_blocking=to_gpu)
                features[index] = out.features
                if logits:
                    all_logits[index] = out.logits
        return InceptionOutput(features, all_logits)

    def reduce(
        self,
        source: ImageSource,
        gaussian: GaussianStats | None = None,
        inception_score: InceptionScoreAccumulator | None = None,
    ) -> None:
        """Stream every image of ``source`` through the network into the given reducers."""
        dataset_type = _IndexedImages if source.random_access else _SequentialImages
        if source.in_process:  # e.g. a generator module on the GPU: runs here, not in a worker
            workers = 0
        else:
            workers = self.workers if source.random_access else min(self.workers, 1)
        loader = DataLoader(
            dataset_type(source, self.resize),
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=ImageBatch.collate,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
            generator=torch.Generator(),  # workers' seeds come from here, not the global RNG
        )
        logits = inception_score is not None

        def reduce_output(batch: ImageBatch, out: InceptionOutput) -> None:
            if gaussian is not None:
                gaussian.update(out.features)
            if logits:
                inception_score.update(out.logits, start=batch.start)
            bar.update(batch.size)

        concurrent = self.concurrent_batches()
        self.network.eval()  # built on first use: here, not by two forward threads at once
        with tqdm(total=len(source), desc=source.describe(), unit="img", disable=not self.progress,
                  leave=False, dynamic_ncols=True) as bar:
            if concurrent == 1:
                for batch in _checked(loader):
                    reduce_output(batch, self.forward_batch(batch, logits))
                return
            # CPU: `concurrent` batches at once, each on threads // concurrent intra-op threads,
            # sharing the network. The last batches, too few to fill a round, run one at a time
            # on every thread. Outputs are reduced in batch order, and the features do not
            # depend on the thread count, so the FID statistics are those of a one-batch-at-a-
            # time run bit for bit (the IS logits, one matrix product, to float32 rounding).
            threads = torch.get_num_threads()
            tail = len(loader) - len(loader) % concurrent if source.random_access else None
            in_flight: collections.deque = collections.deque()
            with ThreadPoolExecutor(concurrent, thread_name_prefix="ganmetrics-forward") as pool:
                for index, batch in enumerate(_checked(loader)):
                    alone = tail is not None and index >= tail
                    while len(in_flight) > (0 if alone else concurrent - 1):
                        reduce_output(*_result(in_flight.popleft()))
                    share = threads if alone else max(1, threads // concurrent)
                    in_flight.append((batch, pool.submit(self._forward_on_threads, share, batch, logits)))
                while in_flight:
                    reduce_output(*_result(in_flight.popleft()))

    def _forward_on_threads(self, threads: int, batch: ImageBatch, logits: bool) -> InceptionOutput:
        """``forward_batch`` with this thread's intra-op thread count set to ``threads``."""
        with intra_op_threads(threads):
            return self.forward_batch(batch, logits)

    def concurrent_batches(self) -> int:
        """Batches run through the network at once: on a GPU one (it runs them in sequence
        anyway); on the CPU one per intra-op thread, at most ``MAX_CONCURRENT_BATCHES`` (each
        holds its own activations). On two cores, two one-thread batches run ~1.2x faster than
        one two-thread batch: the memory-bound layers between convolutions do not split well."""
        if self.device.type != "cpu":
            return 1
        return max(1, min(MAX_CONCURRENT_BATCHES, torch.get_num_threads()))

    def statistics(self, source: ImageSource) -> Statistics:
        """FID statistics of ``source``."""
        gaussian = GaussianStats(self.dims, device=self.device)  # float64 sums on the device
        self.reduce(source, gaussian=gaussian)
        return Statistics(gaussian.mu(), gaussian.sigma(), gaussian.count, self.metadata(source.describe()))
