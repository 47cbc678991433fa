"""`stats --shard K/N` and `stats merge`: the merged file equals one run's statistics to 1e-12
(features bit for bit) and is an ordinary statistics file; merge refuses a missing shard, a
shard given twice and shards of another run, each in one line."""

import json

import numpy as np
import pytest

from helpers import FAST_OPTIONS, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.store.shardfile import load_shard, save_shard

OPTIONS = (*FAST_OPTIONS, "--batch-size", "8")  # 15 images: 2 batches, so shard 0/3 holds none


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shards")
    source = write_images(root / "images", smooth_images(15, (32, 32), seed=5))
    whole = root / "whole.npz"
    assert run_cli("stats", source, "-o", whole, "--features", options=OPTIONS).exit_code == 0
    parts = []
    for index in range(3):
        parts.append(root / f"part-{index}.npz")
        result = run_cli("stats", source, "--shard", f"{index}/3", "-o", parts[-1], "--features", "--json", options=OPTIONS)
        assert result.exit_code == 0, result.output
    merged = root / "all.npz"
    result = run_cli("stats", "merge", *parts, "-o", merged, "--json", options=())
    assert result.exit_code == 0, result.output
    return {"root": root, "source": source, "whole": whole, "parts": parts, "merged": merged,
            "merge_json": json.loads(result.stdout)}


def test_shards_are_contiguous_blocks_of_whole_batches_one_of_them_empty(runs):
    spans = [(load_shard(p).info["start"], load_shard(p).info["stop"]) for p in runs["parts"]]
    assert spans == [(0, 0), (0, 8), (8, 15)]


def test_merged_shards_equal_the_one_process_statistics(runs):
    with np.load(runs["whole"]) as whole, np.load(runs["merged"]) as merged:
        assert set(merged.files) == set(whole.files) == {"mu", "sigma", "n", "meta", "features"}
        assert int(merged["n"]) == int(whole["n"]) == 15
        for key in ("mu", "sigma"):
            assert np.linalg.norm(merged[key] - whole[key]) <= 1e-12 * np.linalg.norm(whole[key]), key
        assert np.array_equal(merged["features"], whole["features"])  # the same batches: the same features
        assert json.loads(str(merged["meta"])) == json.loads(str(whole["meta"]))  # an ordinary statistics file
    assert runs["merge_json"]["n"] == 15


def test_the_merged_file_serves_fid_and_a_shard_file_is_refused_as_a_source(runs):
    result = run_cli("fid", runs["merged"], runs["whole"], "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["value"] == pytest.approx(0, abs=1e-6)
    message = one_line_error(run_cli("fid", runs["parts"][1], runs["whole"]))
    assert "shard file" in message and "stats merge" in message


def test_merge_refuses_a_missing_shard(runs):
    message = one_line_error(run_cli("stats", "merge", *runs["parts"][1:], "-o", runs["root"] / "x.npz", options=()))
    assert "shard 0/3 (no images) is missing" in message
    message = one_line_error(run_cli("stats", "merge", *runs["parts"][:2], "-o", runs["root"] / "x.npz", options=()))
    assert "shard 2/3 (images 8 to 14) is missing" in message and "--shard 2/3" in message
    assert not (runs["root"] / "x.npz").exists()


def test_merge_refuses_a_shard_given_twice(runs, tmp_path):
    copy = tmp_path / "copy.npz"
    copy.write_bytes(runs["parts"][1].read_bytes())
    for twice in (copy, runs["parts"][1]):  # a copy, or the same file again
        message = one_line_error(run_cli("stats", "merge", *runs["parts"], twice, "-o", tmp_path / "x.npz", options=()))
        assert "both shard 1/3" in message


@pytest.mark.parametrize("change, named", [
    (lambda meta: {**meta, "encoders": {"inception": {**meta["encoders"]["inception"], "resize": "pytorch"}}},
     "resize ('pytorch' vs 'tf')"),
    (lambda meta: {**meta, "shard": {**meta["shard"], "names_sha256": "0" * 64}}, "the images"),
    (lambda meta: {**meta, "encoders": {"inception": {**meta["encoders"]["inception"], "source": "folder elsewhere"}}},
     "source"),
])
def test_merge_refuses_shards_of_another_run(runs, tmp_path, change, named):
    other = load_shard(runs["parts"][2])
    save_shard(tmp_path / "other.npz", type(other)(change(other.meta), other.states))
    message = one_line_error(run_cli("stats", "merge", *runs["parts"][:2], tmp_path / "other.npz", "-o",
                                     tmp_path / "x.npz", options=()))
    assert "differs from" in message and named in message and "one run" in message


def test_merge_takes_no_run_options_and_shard_takes_k_of_n(runs, tmp_path):
    message = one_line_error(run_cli("stats", "merge", *runs["parts"], "-o", tmp_path / "x.npz", "--weights", "random:0",
                                     options=()))
    assert "--weights" in message
    message = one_line_error(run_cli("stats", runs["source"], "--shard", "3/3", "-o", tmp_path / "x.npz"))
    assert "--shard 3/3" in message
    message = one_line_error(run_cli("stats", "merge", runs["whole"], "-o", tmp_path / "x.npz", options=()))
    assert "shard metadata" in message
