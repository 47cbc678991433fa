"""Files written by the previous release (ganmetrics 0.1.0, ``tests/golden/release-0.1``) are read:
its statistics file as statistics (and compared with as before), its shard files merged into the
statistics of the whole; and this release writes the same statistics of the same images."""

import json
from pathlib import Path

import numpy as np
import pytest

import ganmetrics
from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics.store.shardfile import is_shard_file, load_shard
from ganmetrics.store.statsfile import is_statistics_file, load_statistics

EARLIER = Path(__file__).parent.parent / "golden" / "release-0.1"
OPTIONS = ("--weights", "random:0", "--dims", "64", "--quiet", "--workers", "0", "--no-cache", "--batch-size", "4")


def test_its_statistics_file_reads_as_statistics_with_its_metadata():
    assert is_statistics_file(EARLIER / "stats.npz") and not is_shard_file(EARLIER / "stats.npz")
    stats = load_statistics(EARLIER / "stats.npz")
    with np.load(EARLIER / "stats.npz") as data:
        assert np.array_equal(stats.mu, data["mu"]) and np.array_equal(stats.sigma, data["sigma"])
        assert np.array_equal(stats.features, data["features"]) and stats.n == int(data["n"]) == 12
        assert stats.meta == json.loads(str(data["meta"]))
    assert stats.meta["version"] == "0.1.0" and stats.dims == 64


def test_its_statistics_file_is_compared_with_as_before():
    row = json.loads(run_cli("fid", EARLIER / "stats.npz", EARLIER / "stats.npz", "--json", options=OPTIONS).stdout)
    assert row["n_a"] == row["n_b"] == 12 and abs(row["value"]) < 1e-6
    other = one_line_error(run_cli("fid", EARLIER / "stats.npz", EARLIER / "stats.npz", options=(*OPTIONS[2:],
                                   "--weights", "random:1")))
    assert "--allow-mismatch" in other  # its weights are still known by their hash


def test_its_shard_files_merge_into_its_statistics(tmp_path):
    assert all(is_shard_file(EARLIER / f"part-{k}.npz") for k in (0, 1))
    assert load_shard(EARLIER / "part-1.npz").info["start"] == 4
    result = run_cli("stats", "merge", EARLIER / "part-1.npz", EARLIER / "part-0.npz", "-o", tmp_path / "all.npz",
                     options=())
    assert result.exit_code == 0, result.output
    merged, whole = load_statistics(tmp_path / "all.npz"), load_statistics(EARLIER / "stats.npz")
    np.testing.assert_allclose(merged.mu, whole.mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.sigma, whole.sigma, rtol=1e-12, atol=1e-12)
    assert np.array_equal(merged.features, whole.features) and merged.n == 12
    assert {k: v for k, v in merged.meta.items()} == whole.meta  # the same metadata, version included
    message = one_line_error(run_cli("fid", EARLIER / "part-0.npz", EARLIER / "stats.npz", options=OPTIONS))
    assert "shard file" in message and "stats merge" in message


def test_this_release_writes_the_statistics_of_the_same_images_and_keys(tmp_path):
    images = write_images(tmp_path / "images", smooth_images(12, (16, 16), seed=5))
    assert run_cli("stats", images, "-o", tmp_path / "now.npz", "--features", options=OPTIONS).exit_code == 0
    with np.load(tmp_path / "now.npz") as now, np.load(EARLIER / "stats.npz") as before:
        assert sorted(now.files) == sorted(before.files)
        meta_now, meta_before = json.loads(str(now["meta"])), json.loads(str(before["meta"]))
        assert set(meta_now) == set(meta_before) and meta_now["weights_sha256"] == meta_before["weights_sha256"]
        # The same bits on the machine both ran on; another CPU's kernels may round features
        # otherwise (about 1e-7 relative), never more.
        for key in ("mu", "sigma", "features"):
            np.testing.assert_allclose(now[key], before[key], rtol=1e-4, atol=1e-5 * np.abs(before[key]).max())
    fid = ganmetrics.fid(tmp_path / "now.npz", EARLIER / "stats.npz", weights="random:0", dims=64)
    assert abs(fid.value) < 1e-4 * np.trace(load_statistics(EARLIER / "stats.npz").sigma)
