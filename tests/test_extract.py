"""The streaming extractor: memory independent of the number of images."""

import subprocess
import sys

from conftest import smooth_images, write_images

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
    images = smooth_images(160, (64, 64), seed=7)
    one = write_images(tmp_path / "x1", images[:40])
    four = write_images(tmp_path / "x4", images)
    small = peak_rss_kib_of_stats(one, tmp_path / "x1.npz")
    large = peak_rss_kib_of_stats(four, tmp_path / "x4.npz")
    # The 120 extra images are ~130 MB as 299x299 float network inputs (and their features,
    # logits and decoded pixels add more): a pipeline that kept them would exceed 10%.
    assert large < 1.10 * small, (small, large)
