"""The streaming extractor: batches grouped by shape, GPU numerics settings, memory independent
of the number of images."""

import functools
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from helpers import encoders_of, cpu_extractor, features_of, smooth_images, write_images
from ganmetrics.config import RunConfig
from ganmetrics.engine.loader import ImageBatch
from ganmetrics.engine.runner import Task, concurrent_parts, forward_batches, reduce_source, shrinking_sizes
from ganmetrics.engine.runtime import cuda_numerics, intra_op_threads
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.inception_score import inception_score_from_sums
from ganmetrics.metrics.reducers import GaussianStats, SplitSums
from ganmetrics.sources import open_source

MEASURE = """
import resource, sys
from ganmetrics.cli import cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib_of_stats(folder, out, weights) -> int:
    """Peak resident memory (KiB) of a fresh process running `ganmetrics stats` with the
    weights file ``weights`` (``random:0`` would build them in each process: seconds, and a
    float64 network's memory)."""
    command = [sys.executable, "-c", MEASURE, "stats", str(folder), "-o", str(out), "--weights", str(weights),
               "--dims", "64", "--batch-size", "25", "--workers", "1", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_of_stats_does_not_grow_with_the_image_count(tmp_path, weights_file):
    # 1x is 80 images, so that even the 1x run has as many batches of 25 in flight as the CPU
    # pass holds at once (runner.forward_batches: parts of this batch and the next, one per
    # core): from there on nothing may grow with the count. (The stem runs CPU_STEM_BATCH images
    # at a time, so two concurrent parts' largest maps are small and their timing hardly moves
    # the peak: the ratio measured 0.96-1.00, against 1.00-1.12 when each batch ran its stem whole.)
    # The weights come from a file: with random:0 each process built them in float64 first, which
    # set the peak (1.36 GB against the pipeline's 0.80 GB: what the images add was a smaller share
    # of it) and took 3-5 s a process.
    images = smooth_images(320, (64, 64), seed=7)
    one = write_images(tmp_path / "x1", images[:80])
    four = write_images(tmp_path / "x4", images)
    small = peak_rss_kib_of_stats(one, tmp_path / "x1.npz", weights_file)
    large = peak_rss_kib_of_stats(four, tmp_path / "x4.npz", weights_file)
    # The 240 extra images are ~260 MB as 299x299 float network inputs (and their features,
    # logits and decoded pixels add more): a pipeline that kept them would exceed 10%.
    assert large < 1.10 * small, (small, large)


def test_batches_group_images_by_shape_where_they_are_decoded_and_keep_their_order():
    images = [np.full((h, 5, 3), i, np.uint8) for i, h in enumerate([4, 6, 4, 4, 6])]
    batch = ImageBatch.collate(list(zip(range(20, 25), images)))
    assert (batch.start, batch.size, batch.error) == (20, 5, None)
    assert [p.tolist() for p, _ in batch.groups] == [[0, 2, 3], [1, 4]]
    assert [x.shape for _, x in batch.groups] == [(3, 4, 5, 3), (2, 6, 5, 3)]
    assert batch.groups[1][1][:, 0, 0, 0].tolist() == [1, 4]

    bad = GanMetricsError("cannot decode image x.png")
    failed = ImageBatch.collate([(7, images[0]), (8, bad)])
    assert failed.error is bad and failed.start == 7 and failed.groups == []


def test_mixed_sizes_in_one_batch_give_each_image_its_own_features():
    extractor = cpu_extractor()
    images = list(smooth_images(2, (40, 40), seed=1)) + list(smooth_images(2, (64, 48), seed=2))
    order = [0, 2, 1, 3]
    wanted = ("64", "logits_unbiased")
    together = features_of(extractor, [images[i] for i in order], wanted)
    for row, i in enumerate(order):
        alone = features_of(extractor, [images[i]], wanted)
        assert torch.equal(together["64"][row], alone["64"][0])
        # logits = pool3 @ fc: the matrix product's blocking, hence rounding, depends on the batch
        difference = (together["logits_unbiased"][row] - alone["logits_unbiased"][0]).abs().max()
        assert difference <= 1e-6 * alone["logits_unbiased"].abs().max()


def test_cuda_numerics_turns_tf32_off_and_autotuning_on_then_restores_the_settings():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.conv.fp32_precision, matmul.fp32_precision, cudnn.benchmark)
    with cuda_numerics(allow_tf32=False):
        assert (cudnn.conv.fp32_precision, matmul.fp32_precision, cudnn.benchmark) == ("ieee", "ieee", True)
    assert (cudnn.conv.fp32_precision, matmul.fp32_precision, cudnn.benchmark) == before
    with cuda_numerics(allow_tf32=True):
        assert (cudnn.conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    assert (cudnn.conv.fp32_precision, matmul.fp32_precision, cudnn.benchmark) == before


class OnePartPerImage:
    """A stand-in extractor on the CPU whose batches split into one part per image; a part gives
    its image's first pixel value as a 1-wide feature and the intra-op threads it ran on. Parts
    whose values are in ``meet`` wait there at its barrier."""

    device = torch.device("cpu")

    def __init__(self, meet: dict):
        self.meet = meet

    def plan(self, pixels, wanted, sizes=None):
        def part(image):
            def run():
                value = int(image[0, 0, 0, 0])
                if value in self.meet:
                    self.meet[value].wait()
                return {"value": image[:, 0, 0, :1].float(), "threads": torch.full((1, 1), torch.get_num_threads())}
            return run

        def join(outs):
            return {feature: torch.cat([out[feature] for out in outs]) for feature in ("value", "threads")}
        return [part(image) for image in pixels.split(1)], join  # whatever ``sizes`` asked for


class TenImageParts:
    """A stand-in extractor on the CPU that cuts its work as the Inception one does (parts of
    ten images, or of the ``sizes`` asked for) and records each part's image count."""

    device = torch.device("cpu")

    def __init__(self):
        self.sizes = []

    def plan(self, pixels, wanted, sizes=None):
        chunks = pixels.split(list(sizes) if sizes else 10)

        def run(chunk):
            self.sizes.append(len(chunk))
            return {"value": chunk[:, 0, 0, :1].float()}
        return [functools.partial(run, chunk) for chunk in chunks], lambda outs: {"value": torch.cat([o["value"] for o in outs])}


def batch_of(values, start):
    pixels = torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 2, 2, 3).contiguous()
    return ImageBatch(start, len(values), [[(torch.arange(len(values)), pixels)]])


def forward_stand_in(extractor, batches) -> list:
    """(batch, {feature: values}) of ``forward_batches`` over a stand-in extractor's "value" feature."""
    return [(batch, out["stand-in"]) for batch, out in forward_batches({"stand-in": Task(extractor, ("value",))}, batches)]


def test_the_cpu_runs_the_parts_of_a_batch_and_of_the_next_side_by_side_on_one_thread_each():
    # Parts 0 and 1 (one batch) and parts 2 and 3 (the last of one batch, the first of the
    # next) each wait for the other: they pass only where they run at once, as no core may wait
    # for a whole batch to end. (Batches as units, one per core, ran 0 and 1 one after the other.)
    first, second = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)
    meet = {0: first, 1: first, 2: second, 3: second}
    batches = [batch_of([0, 1, 2], 0), batch_of([3, 4], 3), batch_of([5], 5)]
    with intra_op_threads(2):
        assert concurrent_parts(torch.device("cpu")) == 2
        out = forward_stand_in(OnePartPerImage(meet), batches)
        assert torch.get_num_threads() == 2  # the parts' one-thread setting was undone
    assert [batch.start for batch, _ in out] == [0, 3, 5]
    assert [features["value"].flatten().tolist() for _, features in out] == [[0, 1, 2], [3, 4], [5]]
    assert all(features["threads"].flatten().tolist() == [1] * batch.size for batch, features in out)


def test_an_error_in_a_part_reaches_the_caller_and_no_further_part_starts():
    started = []

    class Failing(OnePartPerImage):
        def plan(self, pixels, wanted):
            def run(value):
                started.append(value)
                if value == 1:
                    raise GanMetricsError("cannot decode image 1.png")
                return {"value": torch.zeros(1, 1)}
            return [functools.partial(run, int(v)) for v in pixels[:, 0, 0, 0]], lambda outs: outs[0]

    with intra_op_threads(2), pytest.raises(GanMetricsError, match="1.png"):
        forward_stand_in(Failing({}), (batch_of([v], v) for v in range(40)))
    assert len(started) < 40


@pytest.mark.parametrize("threads, batch_sizes, last_parts", [
    (2, (50, 50, 25), [7, 5, 4, 3, 2, 1, 1, 1, 1]),  # parts of ten, then 25 images: a quarter of what remains
    (3, (50, 50, 50), [9, 7, 6, 5, 4, 4, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1]),
    (2, (50, 50), [10, 10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1]),
    (2, (15,), [4, 3, 2, 2, 1, 1, 1, 1]),
    (2, (20, 1), [1]),  # a last group of one image: one part
])
def test_the_last_parts_of_a_source_shrink_so_that_every_core_ends_together(threads, batch_sizes, last_parts):
    starts = [sum(batch_sizes[:i]) for i in range(len(batch_sizes))]
    batches = [batch_of([v % 256 for v in range(start, start + size)], start) for start, size in zip(starts, batch_sizes)]
    extractor = TenImageParts()
    with intra_op_threads(threads):
        out = forward_stand_in(extractor, iter(batches))
    # The parts run in the order they were cut: the last group's are the last ones run, every
    # earlier group in parts of ten.
    assert sorted(extractor.sizes[-len(last_parts):], reverse=True) == last_parts
    earlier = sorted(extractor.sizes[:-len(last_parts)])
    assert earlier == sorted(min(10, size - i) for size in batch_sizes[:-1] for i in range(0, size, 10))
    # Every image's value in order, whatever its part.
    assert [features["value"].flatten().tolist() for _, features in out] == [
        [float(v % 256) for v in range(start, start + size)] for start, size in zip(starts, batch_sizes)]


@pytest.mark.parametrize("count, largest, workers", [(50, 10, 2), (125, 10, 4), (7, 10, 3), (2, 10, 2), (300, 25, 8)])
def test_shrinking_sizes_cover_the_images_in_parts_that_never_grow_and_end_small(count, largest, workers):
    sizes = shrinking_sizes(count, largest, workers)
    assert sum(sizes) == count and all(0 < size <= largest for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-workers:] == [1] * min(workers, count)  # each core's last part is one image: they end together


@pytest.mark.parametrize("batch_size", [3, 4])  # 4 batches: two full rounds; 3: the last one alone
def test_concurrent_cpu_batches_give_the_statistics_of_one_batch_at_a_time(tmp_path, batch_size):
    source = open_source(write_images(tmp_path / "x", smooth_images(11, (32, 32), seed=3)))
    extractor = cpu_extractor()
    gaussian, split_sums = Need("inception", "64", GaussianStats), Need("inception", "logits_unbiased", SplitSums, (("splits", 4),))
    gaussians, scores = {}, {}
    for threads in (1, 2):
        with intra_op_threads(threads):
            assert concurrent_parts(torch.device("cpu")) == threads
            reducers = reduce_source(source, encoders_of(extractor), [gaussian, split_sums], RunConfig(batch_size=batch_size, workers=0))
            gaussians[threads], scores[threads] = reducers[gaussian], reducers[split_sums]
            assert torch.get_num_threads() == threads  # the forward threads' setting was undone
    assert gaussians[2].count == 11 and scores[2].counts.tolist() == [2, 3, 3, 3]
    # The features, hence the FID statistics, are the same bits whatever the threads.
    assert torch.equal(gaussians[1].mean, gaussians[2].mean)
    assert torch.equal(gaussians[1].comoment, gaussians[2].comoment)
    # The logits come from one matrix product (pool3 @ fc), whose blocking, hence last bits,
    # depends on the thread count, as in every PyTorch matmul: the IS agrees to float32 rounding.
    one, two = (inception_score_from_sums(*scores[t].sums()) for t in (1, 2))
    assert one[0] > 1.0 and one == pytest.approx(two, rel=1e-6)


def test_the_cpu_pass_hands_free_heap_pages_back_after_every_batch(tmp_path, monkeypatch):
    # Without it glibc's heaps fragment under the forward threads' large short-lived blocks and
    # peak memory grows with the image count (issue 10: `eval --metrics adm`; BENCHMARKS.md).
    import platform

    from ganmetrics.engine import runner, runtime

    if platform.libc_ver()[0] == "glibc":
        assert runtime._malloc_trim() is not None  # found where it exists
    calls = []
    monkeypatch.setattr(runner, "release_free_memory", lambda: calls.append(1))
    source = open_source(write_images(tmp_path / "x", smooth_images(7, (32, 32), seed=3)))
    reduce_source(source, encoders_of(cpu_extractor()), [Need("inception", "64", GaussianStats)], RunConfig(batch_size=3, workers=0))
    assert len(calls) == 3  # batches of 3, 3 and 1
    runtime.release_free_memory()  # and the real one runs
