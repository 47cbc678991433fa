"""The one pass: every image of a source through the extractor once, into every reducer.

Decoding runs in worker processes (``loader.py``), which also stack each batch's images by
shape; batches travel as uint8 (from page-locked memory, asynchronously, to a GPU) to the
compute device, where the extractor computes the union of the wanted features. Each reducer
receives its feature with the images' global positions on that device, so nothing waits for a
GPU until the end, and memory does not grow with the number of images (except in a feature
bank, which keeps them). On a GPU batches run in sequence; on the CPU one per core at once.
"""

import collections
import contextlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from tqdm import tqdm

from ..config import RunConfig
from ..metrics.base import Need, Reducer
from ..sources import ImageSource
from . import distributed
from .loader import ImageBatch, checked_batches, make_loader
from .runtime import cuda_numerics, default_workers, intra_op_threads, release_free_memory

MAX_CONCURRENT_BATCHES = 4


@torch.inference_mode()
def forward_batch(extractor, batch: ImageBatch, wanted: Iterable[str]) -> dict[str, torch.Tensor]:
    """{feature: float32 (N, width)} of a batch, in input order, on the extractor's device (no
    synchronisation with a GPU). Each shape group travels as it was decoded and is resized there."""
    device = extractor.device
    wanted = sorted(wanted)
    out = {feature: torch.empty(batch.size, extractor.features[feature], device=device) for feature in wanted}
    # Asynchronous copies only *to* a GPU: one from a GPU into CPU memory could be read
    # before it has landed (images from a generator on a GPU, a CPU extractor).
    to_gpu = device.type == "cuda"
    with cuda_numerics(extractor.provenance.tf32) if to_gpu else contextlib.nullcontext():
        for positions, images in batch.groups:
            got = extractor(images.to(device, non_blocking=to_gpu), wanted)
            index = positions.to(device, non_blocking=to_gpu)
            for feature in wanted:
                out[feature][index] = got[feature]
    return out


def concurrent_batches(device: torch.device) -> int:
    """Batches run through the network at once: on a GPU one (it runs them in sequence
    anyway); on the CPU one per intra-op thread, at most ``MAX_CONCURRENT_BATCHES`` (each
    holds its own activations). One-thread batches side by side beat one batch on every
    thread (BENCHMARKS.md): the memory-bound layers between convolutions do not split well."""
    if device.type != "cpu":
        return 1
    return max(1, min(MAX_CONCURRENT_BATCHES, torch.get_num_threads()))


def _forward_on_threads(threads: int, extractor, batch: ImageBatch, wanted) -> dict[str, torch.Tensor]:
    """``forward_batch`` with this thread's intra-op thread count set to ``threads``."""
    with intra_op_threads(threads):
        return forward_batch(extractor, batch, wanted)


def reduce_source(source: ImageSource, extractor, needs: Iterable[Need], config: RunConfig,
                  reference: Mapping[Need, Any] | None = None, positions: range | None = None) -> dict[Need, Reducer]:
    """Stream every image of ``source`` (or those at ``positions``, a range of its indices: a
    ``--shard``) through ``extractor`` once into one new reducer per distinct need; returns
    {need: reducer}. ``reference``: the reference side's values, for needs built with some of
    them (``Need.given``). Under torch.distributed each rank reads its own whole batches, in
    lock step with the others, and every rank returns the same reducers, merged in rank order
    (``distributed.py``)."""
    needs = list(dict.fromkeys(needs))
    device = extractor.device
    reducers = {need: need.build(extractor.features[need.feature], len(source), device, reference) for need in needs}
    wanted = {need.feature for need in needs}
    workers = default_workers() if config.workers is None else config.workers
    mine = distributed.rank_span(source, range(len(source)) if positions is None else positions, config.batch_size)
    loader = make_loader(source, extractor.host_transform, config.batch_size, workers, pin_memory=device.type == "cuda",
                         positions=mine)

    def reduce_output(batch: ImageBatch, out: dict[str, torch.Tensor]) -> None:
        positions = torch.arange(batch.start, batch.start + batch.size, device=device)
        for need, reducer in reducers.items():
            reducer.update(out[need.feature], positions)
        bar.update(batch.size)
        if device.type == "cpu":
            release_free_memory()  # or the heaps fragment, and memory grows with the images

    concurrent = concurrent_batches(device)
    extractor.prepare()  # built here, not by two forward threads at once
    with tqdm(total=len(mine), desc=source.describe(), unit="img", disable=not config.progress or not distributed.is_main(),
              leave=False, dynamic_ncols=True) as bar:
        if concurrent == 1:
            for batch in distributed.lockstep(checked_batches(loader)):
                reduce_output(batch, forward_batch(extractor, batch, wanted))
            return distributed.merged(reducers)
        # CPU: `concurrent` batches at once, each on threads // concurrent intra-op threads,
        # sharing the network. The last batches, too few to fill a round, run one at a time
        # on every thread. Outputs are reduced in batch order, and the features do not
        # depend on the thread count, so the FID statistics are those of a one-batch-at-a-
        # time run bit for bit (the IS logits, one matrix product, to float32 rounding).
        threads = torch.get_num_threads()
        tail = len(loader) - len(loader) % concurrent if source.random_access else None
        in_flight: collections.deque = collections.deque()
        with ThreadPoolExecutor(concurrent, thread_name_prefix="ganmetrics-forward") as pool:
            for index, batch in enumerate(distributed.lockstep(checked_batches(loader))):
                alone = tail is not None and index >= tail
                while len(in_flight) > (0 if alone else concurrent - 1):
                    done, future = in_flight.popleft()
                    reduce_output(done, future.result())
                share = threads if alone else max(1, threads // concurrent)
                in_flight.append((batch, pool.submit(_forward_on_threads, share, extractor, batch, wanted)))
            while in_flight:
                done, future = in_flight.popleft()
                reduce_output(done, future.result())
    return distributed.merged(reducers)
