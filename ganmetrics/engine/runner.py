"""The one pass: every image of a source decoded once, through every encoder a run needs once,
into every reducer.

Decoding runs in worker processes (``loader.py``), which also apply each encoder's per-image
host transform (encoders with the same one share its output) and stack each batch's images by
shape; batches travel (from page-locked memory, asynchronously, to a GPU) to the compute
device, where each encoder computes the union of its wanted features. Each reducer receives its
feature with the images' global positions on that device, so nothing waits for a GPU until the
end, and memory does not grow with the number of images (except in a feature bank, which keeps
them). On a GPU batches run in sequence; on the CPU the encoders' parts (a few images each), one
per core at once (``forward_batches``). Where a run reads several sources in
turn, the next one's decoding starts during the last batches of the one before (``readahead.py``).
"""

import collections
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from ..config import RunConfig
from ..extractors.base import FeatureExtractor
from ..metrics.base import Need, Reducer
from ..sources import ImageSource
from . import distributed
from .loader import ImageBatch, Transforms, checked_batches, make_loader
from .readahead import ReadAhead
from .runtime import cuda_numerics, default_workers, intra_op_threads, release_free_memory

MAX_CONCURRENT_PARTS = 4


@dataclass(frozen=True)
class Task:
    """One encoder's share of a pass: its ``wanted`` features, computed from the batch's view
    ``view`` (the output of its host transform)."""

    extractor: FeatureExtractor
    wanted: tuple[str, ...]
    view: int = 0


Outputs = dict[str, dict[str, torch.Tensor]]
"""{encoder: {feature: float32 (N, width)}} of a batch."""


def plan_tasks(encoders: Mapping[str, FeatureExtractor], needs: Iterable[Need]) -> tuple[dict[str, Task], Transforms]:
    """({encoder: its task} for the encoders ``needs`` name, in their order; the distinct host
    transforms the tasks read, in order): each image is decoded once and transformed once per
    distinct transform."""
    wanted: dict[str, set[str]] = {}
    for need in needs:
        wanted.setdefault(need.encoder, set()).add(need.feature)
    transforms: list = []
    tasks = {}
    for name, features in wanted.items():
        transform = encoders[name].host_transform
        if transform not in transforms:
            transforms.append(transform)
        tasks[name] = Task(encoders[name], tuple(sorted(features)), transforms.index(transform))
    return tasks, tuple(transforms)


def _device(tasks: Mapping[str, Task]) -> torch.device:
    return next(iter(tasks.values())).extractor.device


@torch.inference_mode()
def forward_batch(tasks: Mapping[str, Task], batch: ImageBatch) -> Outputs:
    """{encoder: {feature: float32 (N, width)}} of a batch, in input order, on the encoders'
    device (no synchronisation with a GPU). Each shape group travels as it was decoded and is
    brought to the network's input there."""
    device = _device(tasks)
    # Asynchronous copies only *to* a GPU: one from a GPU into CPU memory could be read
    # before it has landed (images from a generator on a GPU, a CPU extractor).
    to_gpu = device.type == "cuda"
    out: Outputs = {}
    for name, task in tasks.items():
        features = task.extractor.features
        mine = out[name] = {feature: torch.empty(batch.size, features[feature], device=device) for feature in task.wanted}
        with cuda_numerics(task.extractor.tf32) if to_gpu else contextlib.nullcontext():
            for positions, images in batch.views[task.view]:
                got = task.extractor(images.to(device, non_blocking=to_gpu), task.wanted)
                index = positions.to(device, non_blocking=to_gpu)
                for feature in task.wanted:
                    mine[feature][index] = got[feature]
    return out


def concurrent_parts(device: torch.device) -> int:
    """Parts of batches run through the networks at once: on a GPU one (whole batches, in
    sequence); on the CPU one per intra-op thread, at most ``MAX_CONCURRENT_PARTS`` (each holds
    its own activations). One-thread parts side by side beat one part on every thread
    (BENCHMARKS.md): the memory-bound layers between convolutions do not split well."""
    if device.type != "cpu":
        return 1
    return max(1, min(MAX_CONCURRENT_PARTS, torch.get_num_threads()))


def threads_per_part(device: torch.device) -> int:
    """Intra-op threads of each part (``forward_batches``), and of the work done beside the
    parts (joins, reducers): all of them where parts run one at a time. Work beside the parts
    on more threads than that would oversubscribe the cores, and a multi-threaded matrix
    product whose threads wait for each other took about eight times its time there."""
    return max(1, torch.get_num_threads() // concurrent_parts(device))


def _planned(tasks: Mapping[str, Task], batch: ImageBatch, last: bool, workers: int, submit) -> list:
    """[(encoder, positions, futures of its parts, join)] of every shape group of every task of
    ``batch``, its parts submitted; the source's ``last`` batch's last group of each task is
    cut into parts that shrink toward its end (``shrinking_sizes``)."""
    groups = []
    for name, task in tasks.items():
        view = batch.views[task.view]
        for index, (positions, images) in enumerate(view):
            parts, join = task.extractor.plan(images, task.wanted)
            if last and index == len(view) - 1 and len(parts) > 1:
                largest = -(-len(images) // len(parts))  # the extractor's part size, as its part count tells
                parts, join = task.extractor.plan(images, task.wanted, sizes=shrinking_sizes(len(images), largest, workers))
            groups.append((name, positions, [submit(part) for part in parts], join))
    return groups


def forward_batches(tasks: Mapping[str, Task], batches: Iterable[ImageBatch]) -> Iterator[tuple[ImageBatch, Outputs]]:
    """(batch, ``forward_batch(tasks, batch)``) for each batch, in order.

    On a GPU the batches run one after the other. On the CPU each shape group of a batch is cut
    into each encoder's parts (``plan``), and the parts of this batch and of the next ones run
    ``concurrent_parts`` at once, each on threads // that many intra-op threads (one each on up
    to four cores), sharing the networks: no core waits for a whole batch to end. The source's
    last group is cut into parts that shrink toward its end (``shrinking_sizes``), so the cores
    end together rather than one running a whole last part alone while the others wait. A
    batch's parts are joined, and the batch yielded, once they are all done. Each image's
    features do not depend on its part or on the thread count, so they are ``forward_batch``'s
    bit for bit; a feature an encoder computes once per group in ``join`` (class logits: one
    matrix product) is computed on as many threads as the parts ran on, and equals
    ``forward_batch``'s on that many threads."""
    device = _device(tasks)
    workers = concurrent_parts(device)
    if workers == 1:
        for batch in batches:
            yield batch, forward_batch(tasks, batch)
        return
    threads = threads_per_part(device)

    def on_threads(work, *args):
        with intra_op_threads(threads):
            return work(*args)

    # (batch, [(encoder, positions, futures of its parts, join)] per task and shape group), oldest first.
    in_flight: collections.deque = collections.deque()
    queued = 0  # parts of the batches behind the oldest
    pool = ThreadPoolExecutor(workers, thread_name_prefix="ganmetrics-forward")
    try:
        upcoming = iter(batches)
        batch = next(upcoming, None)
        while batch is not None:
            following = next(upcoming, None)  # one ahead, to know the last batch
            groups = _planned(tasks, batch, following is None, workers, lambda part: pool.submit(on_threads, part))
            queued += sum(len(futures) for _, _, futures, _ in groups) if in_flight else 0
            in_flight.append((batch, groups))
            # The oldest batch is waited for once enough parts are queued behind it to keep
            # every core busy meanwhile.
            while queued >= workers:
                yield _joined(in_flight.popleft(), on_threads)
                queued -= sum(len(futures) for _, _, futures, _ in in_flight[0][1]) if in_flight else 0
            batch = following
        while in_flight:
            yield _joined(in_flight.popleft(), on_threads)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an error: the running parts end, no others start


def shrinking_sizes(count: int, largest: int, workers: int) -> list[int]:
    """The image counts of the parts that a source's last ``count`` images are cut into, run by
    ``workers`` cores that take the next part as they become free: each part a share of what
    remains, ``1 / (2 * workers)`` of it rounded up, at most ``largest`` images, so the parts
    shrink toward the end (guided scheduling) down to parts of one image. Whichever core is
    still in a part when the others find none left is in a small one: the cores end about
    together, also where parts of equal size take unequal times (a machine shared with other
    jobs), where parts of ``largest`` images could leave the others waiting for nearly a whole
    part. A one-image part costs what an image of a larger part costs (BENCHMARKS.md).
    E.g. 50 images, parts of at most 10, two cores: 10, 10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1."""
    sizes = []
    while count > 0:
        size = min(largest, -(-count // (2 * workers)))
        sizes.append(size)
        count -= size
    return sizes


def _joined(entry, on_threads) -> tuple[ImageBatch, Outputs]:
    """(batch, {encoder: {feature: float32 (N, width)}}) of an in-flight batch once its parts are done."""
    batch, groups = entry
    out: Outputs = {}
    for name, positions, futures, join in groups:
        got = on_threads(join, [future.result() for future in futures])
        mine = out.setdefault(name, {})
        for feature, values in got.items():
            if feature not in mine:
                mine[feature] = values.new_empty((batch.size, values.shape[1]))
            mine[feature][positions] = values
    return batch, out


def reduce_source(source: ImageSource, encoders: Mapping[str, FeatureExtractor], needs: Iterable[Need],
                  config: RunConfig, reference: Mapping[Need, Any] | None = None, positions: range | None = None,
                  read_ahead: ReadAhead | None = None) -> dict[Need, Reducer]:
    """Stream every image of ``source`` (or those at ``positions``, a range of its indices: a
    ``--shard``) through the ``encoders`` its needs name, once each, into one new reducer per
    distinct need; returns {need: reducer}. ``reference``: the reference side's values, for needs
    built with some of them (``Need.given``). ``read_ahead``: the sources the run reads in turn;
    this one's batches are taken from it where they were started ahead, and once this one's last
    batch is read the next one's decoding starts. Under torch.distributed each rank reads its own
    whole batches, in lock step with the others, and every rank returns the same reducers,
    merged in rank order (``distributed.py``)."""
    needs = list(dict.fromkeys(needs))
    tasks, transforms = plan_tasks(encoders, needs)
    device = _device(tasks)
    reducers = {need: need.build(encoders[need.encoder].features[need.feature], len(source), device, reference)
                for need in needs}
    mine = distributed.rank_span(source, range(len(source)) if positions is None else positions, config.batch_size)

    def reduce_output(batch: ImageBatch, out: Outputs) -> None:
        positions = torch.arange(batch.start, batch.start + batch.size, device=device)
        with intra_op_threads(threads_per_part(device)):  # beside the next batches' parts
            for need, reducer in reducers.items():
                reducer.update(out[need.encoder][need.feature], positions)
        bar.update(batch.size)
        if device.type == "cpu":
            release_free_memory()  # or the heaps fragment, and memory grows with the images

    if read_ahead is None or distributed.active():  # ranks start their loaders in step
        read_ahead = ReadAhead([])
    arguments = _loader_arguments(transforms, device, config, mine)
    # The workers start decoding while the networks are built (or started during the source before).
    batches = read_ahead.take(source, arguments)
    if batches is None:
        batches = iter(make_loader(source, *arguments))
    following = read_ahead.after(source)
    for task in tasks.values():
        task.extractor.prepare()  # built here, not by two forward threads at once
    with tqdm(total=len(mine), desc=source.describe(), unit="img", disable=not config.progress or not distributed.is_main(),
              leave=False, dynamic_ncols=True) as bar:
        for batch, out in forward_batches(tasks, distributed.lockstep(checked_batches(
                _then(batches, following, read_ahead, transforms, device, config)))):
            reduce_output(batch, out)
    return distributed.merged(reducers)


def _loader_arguments(transforms: Transforms, device: torch.device, config: RunConfig, positions: range) -> tuple:
    """``make_loader``'s arguments after the source, for reading ``positions`` with ``transforms``."""
    workers = default_workers() if config.workers is None else config.workers
    return transforms, config.batch_size, workers, device.type == "cuda", positions


def _then(batches: Iterator[ImageBatch], following: ImageSource | None, read_ahead: ReadAhead, transforms: Transforms,
          device: torch.device, config: RunConfig) -> Iterator[ImageBatch]:
    """``batches``; once they are all read (``forward_batches`` reads one ahead: the last is not
    yet in the network), ``following``'s loader starts in ``read_ahead``, with all its images
    and the same transforms (the sides of a run share its encoders)."""
    yield from batches
    if following is not None:
        arguments = _loader_arguments(transforms, device, config, range(len(following)))
        read_ahead.start(following, arguments, lambda: iter(make_loader(following, *arguments)))
