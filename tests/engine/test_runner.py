"""The streaming extractor: batches grouped by shape, GPU numerics settings, memory independent
of the number of images."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import cpu_extractor, features_of, smooth_images, write_images
from ganmetrics.config import RunConfig
from ganmetrics.engine.loader import ImageBatch
from ganmetrics.engine.runner import concurrent_batches, reduce_source
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


def peak_rss_kib_of_stats(folder, out) -> int:
    """Peak resident memory (KiB) of a fresh process running `ganmetrics stats`."""
    command = [sys.executable, "-c", MEASURE, "stats", str(folder), "-o", str(out), "--weights", "random:0",
               "--dims", "64", "--batch-size", "25", "--workers", "1", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_of_stats_does_not_grow_with_the_image_count(tmp_path):
    # 1x is 80 images, so that even the 1x run has as many full batches of 25 in flight as the
    # CPU runs at once (one per core, see FeatureExtractor.concurrent_batches): from there on
    # nothing may grow with the count. (The stem runs CPU_STEM_BATCH images at a time, so two
    # concurrent batches' largest maps are small and their timing hardly moves the peak: the
    # ratio measured 0.96-1.00, against 1.00-1.12 when each batch ran its stem whole.)
    images = smooth_images(320, (64, 64), seed=7)
    one = write_images(tmp_path / "x1", images[:80])
    four = write_images(tmp_path / "x4", images)
    small = peak_rss_kib_of_stats(one, tmp_path / "x1.npz")
    large = peak_rss_kib_of_stats(four, tmp_path / "x4.npz")
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


@pytest.mark.parametrize("batch_size", [3, 4])  # 4 batches: two full rounds; 3: the last one alone
def test_concurrent_cpu_batches_give_the_statistics_of_one_batch_at_a_time(tmp_path, batch_size):
    source = open_source(write_images(tmp_path / "x", smooth_images(11, (32, 32), seed=3)))
    extractor = cpu_extractor()
    gaussian, split_sums = Need("64", GaussianStats), Need("logits_unbiased", SplitSums, (("splits", 4),))
    gaussians, scores = {}, {}
    for threads in (1, 2):
        with intra_op_threads(threads):
            assert concurrent_batches(torch.device("cpu")) == threads
            reducers = reduce_source(source, extractor, [gaussian, split_sums], RunConfig(batch_size=batch_size, workers=0))
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
    reduce_source(source, cpu_extractor(), [Need("64", GaussianStats)], RunConfig(batch_size=3, workers=0))
    assert len(calls) == 3  # batches of 3, 3 and 1
    runtime.release_free_memory()  # and the real one runs
