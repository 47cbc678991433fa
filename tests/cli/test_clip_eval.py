"""CMMD and the CLIP encoders through the command line: ``eval --metrics cmmd`` equals
google-research's distance on the embeddings of every image, ``--ci`` resamples the feature
banks, the reference side's bank comes from the cache, ``fid@``/``kid@``/``pr@`` run on both
CLIP encoders in one pass, and too few images are one-line errors.

The encoders here are the real ones (their crops, resizes, normalisation and weights handling)
on 64-wide, 1-layer towers with narrow projections, registered under the real names: the
command line's plumbing at a test's cost. Their numbers against openai/CLIP and clean-fid are
proven on the real widths in ``tests/extractors/test_clip.py``."""

import json

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import prc_features_to_metric

from cmmd_reference import google_research_embeddings, google_research_mmd
from helpers import cached_values, counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.evaluation.intervals import interval_of
from ganmetrics.extractors import registry
from ganmetrics.extractors.clip.extractor import CleanFIDClipExtractor, CMMDClipExtractor
from ganmetrics.metrics.fid import frechet_distance
from ganmetrics.metrics.kid import kernel_inception_distance
from ganmetrics.metrics.resampling import GENERATED, REFERENCE, poisson_weights
from ganmetrics.sources import open_source


class TinyCMMDClip(CMMDClipExtractor):
    """CMMD's encoder (336 px, patch 14, its crop and resize, the normalised embedding), 64 wide,
    1 layer, a 16-d embedding."""

    width, layers, embed_dim = 64, 1, 16
    features = {"embedding": 16}


class TinyCleanFIDClip(CleanFIDClipExtractor):
    """clean-fid's encoder (224 px, patch 32, its resize and crop), 64 wide, 1 layer, an 8-d embedding."""

    width, layers, embed_dim = 64, 1, 8
    features = {"embedding": 8}


N_A, N_B = 40, 35  # neither a multiple of google-research's batch of 32
OPTIONS = ("--weights", "clip-vitl14-336=random:0", "--weights", "clip-vitb32=random:0", "--quiet", "--workers", "0",
           "--batch-size", "32")
BANK = "clip-vitl14-336/embedding/feature_bank/features"


@pytest.fixture(autouse=True)
def tiny_clips(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.ENCODERS, TinyCMMDClip.name, TinyCMMDClip)
    monkeypatch.setitem(registry.ENCODERS, TinyCleanFIDClip.name, TinyCleanFIDClip)
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Landscape reference images and portrait generated ones (the crops matter)."""
    root = tmp_path_factory.mktemp("clip-sets")
    return (write_images(root / "a", smooth_images(N_A, (30, 44), seed=71)),
            write_images(root / "b", smooth_images(N_B, (41, 27), seed=72, offset=0.15)))


def run_json(*args):
    result = run_cli(*args, "--json", options=OPTIONS)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def banks(sets, tmp_path_factory):
    """Each side's CMMD embeddings as ``stats --metrics cmmd`` stores them, and those files."""
    root = tmp_path_factory.mktemp("clip-banks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.ENCODERS, TinyCMMDClip.name, TinyCMMDClip)
        files = [root / "a.npz", root / "b.npz"]
        for folder, file in zip(sets, files):
            run_json("stats", folder, "--metrics", "cmmd", "-o", file, "--no-cache")
    arrays = []
    for file in files:
        with np.load(file) as data:
            arrays.append(data[BANK])
    return arrays, files


def embeddings(encoder, folder, batch_size: int = 32) -> np.ndarray:
    """The encoder's embeddings of a folder's images straight from its network (no engine), in
    batches of ``batch_size``, the last one shorter."""
    source = open_source(folder)
    pixels = np.stack([encoder.host_transform(source.read(i)) for i in range(len(source))])
    return np.concatenate([encoder(torch.from_numpy(part), {"embedding"})["embedding"].numpy()
                           for part in np.array_split(pixels, range(batch_size, len(pixels), batch_size))])


def test_cmmd_equals_google_researchs_distance_on_the_embeddings_of_every_image(sets, banks):
    (bank_a, bank_b), files = banks
    assert (len(bank_a), len(bank_b)) == (N_A, N_B)
    row = run_json("eval", *sets, "--metrics", "cmmd", "--no-cache")
    assert row["results"]["cmmd"] == pytest.approx(google_research_mmd(bank_a, bank_b), rel=1e-9)
    assert row["results"]["cmmd"] > 0.1  # far from float64 noise
    # google-research would keep 32 images of each side; we count all of them.
    dropped = google_research_mmd(google_research_embeddings(bank_a), google_research_embeddings(bank_b))
    assert row["results"]["cmmd"] != pytest.approx(dropped, rel=1e-4)
    # The banks are the encoder's embeddings, in image order (the network alone, batches of 32).
    encoder = TinyCMMDClip(weights="random:0")
    for bank, folder in zip((bank_a, bank_b), sets):
        np.testing.assert_allclose(bank, embeddings(encoder, folder), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1, rtol=1e-6)
    # The statistics files serve eval as the folders do.
    assert run_json("eval", *files, "--metrics", "cmmd")["results"] == row["results"]
    assert row["settings"]["cmmd_block"] == 2048 and row["encoders"]["clip-vitl14-336"]["weights"]["calibrated"] is False


def test_blocks_smaller_than_the_sides_give_the_same_cmmd(sets, banks):
    (bank_a, bank_b), _ = banks
    row = run_json("eval", *sets, "--metrics", "cmmd", "--cmmd-block", "16", "--no-cache")
    assert row["results"]["cmmd"] == pytest.approx(google_research_mmd(bank_a, bank_b), rel=1e-9)
    assert row["settings"]["cmmd_block"] == 16


def test_ci_resamples_both_feature_banks(sets, banks):
    (bank_a, bank_b), _ = banks
    replicates = 12
    row = run_json("eval", *sets, "--metrics", "cmmd", "--ci", str(replicates), "--ci-seed", "3", "--no-cache")
    draws = []
    for r in range(replicates):
        weights_a = poisson_weights(3, REFERENCE, [r], np.arange(N_A))[0]
        weights_b = poisson_weights(3, GENERATED, [r], np.arange(N_B))[0]
        draws.append(google_research_mmd(np.repeat(bank_a, weights_a, axis=0), np.repeat(bank_b, weights_b, axis=0)))
    low, high = interval_of(np.array(draws), row["results"]["cmmd"], 0.95, "basic")
    assert row["results"]["cmmd_ci_low"] == pytest.approx(low, rel=1e-9)
    assert row["results"]["cmmd_ci_high"] == pytest.approx(high, rel=1e-9)
    assert low < row["results"]["cmmd"] < high and row["settings"]["ci_reference_resampled"] is True


def test_the_reference_sides_bank_comes_from_the_cache(sets, banks, tmp_path):
    (bank_a, _), _ = banks
    first = run_json("eval", *sets, "--metrics", "cmmd")
    with counted_decodes() as decoded:
        second = run_json("eval", *sets, "--metrics", "cmmd")
    assert decoded[0] == N_B and second["results"] == first["results"]
    (fields,) = cached_values(tmp_path / "cache" / "stats", "feature_bank").values()
    np.testing.assert_array_equal(fields["features"], bank_a)


def test_fid_kid_and_pr_run_on_both_clip_encoders_in_one_pass(sets):
    a, b = sets
    metrics = "cmmd,fid@clip-vitl14-336,kid@clip-vitl14-336,pr@clip-vitl14-336,fid@clip-vitb32,kid@clip-vitb32"
    with counted_decodes() as decoded:
        row = run_json("eval", a, b, "--metrics", metrics, "--kid-subsets", "5", "--kid-subset-size", "20",
                       "--no-cache")
    assert decoded[0] == N_A + N_B
    results = row["results"]
    assert set(results) == {"cmmd", "fid@clip-vitl14-336", "kid@clip-vitl14-336", "kid_std@clip-vitl14-336",
                            "precision@clip-vitl14-336", "recall@clip-vitl14-336", "fid@clip-vitb32",
                            "kid@clip-vitb32", "kid_std@clip-vitb32"}
    for encoder in (TinyCMMDClip(weights="random:0"), TinyCleanFIDClip(weights="random:0")):
        fa, fb = (embeddings(encoder, folder).astype(np.float64) for folder in (a, b))
        at = f"@{encoder.name}"
        fid = frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
        assert results["fid" + at] == pytest.approx(fid, rel=1e-5)
        kid, _ = kernel_inception_distance(fb.astype(np.float32), fa.astype(np.float32), 5, 20)
        assert results["kid" + at] == pytest.approx(kid, rel=1e-4, abs=1e-9)
        assert row["settings"]["dims" + at] == encoder.features["embedding"]
    fa, fb = (torch.from_numpy(embeddings(TinyCMMDClip(weights="random:0"), folder)) for folder in (a, b))
    prc = prc_features_to_metric(fb, fa, prc_neighborhood=3, prc_batch_size=1000, save_cpu_ram=True, verbose=False)
    assert abs(results["precision@clip-vitl14-336"] - prc["precision"]) <= 1 / N_B
    assert abs(results["recall@clip-vitl14-336"] - prc["recall"]) <= 1 / N_A
    assert list(row["encoders"]) == ["clip-vitl14-336", "clip-vitb32"]


@pytest.mark.parametrize("side", ["reference", "generated"])
def test_cmmd_with_fewer_than_two_images_on_a_side_is_one_line_and_writes_nothing(sets, side, tmp_path):
    single = write_images(tmp_path / "single", smooth_images(1, (30, 30), seed=73))
    a, b = (single, sets[1]) if side == "reference" else (sets[0], single)
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", a, b, "--metrics", "cmmd", options=OPTIONS))
    assert "has 1 image; CMMD needs at least 2" in message
    assert decoded[0] == 0 and not (tmp_path / "cache").exists()


def test_eval_help_states_cmmds_memory_bound():
    text = " ".join(run_cli("eval", "--help", options=()).output.split())
    assert "--cmmd-block" in text and "for any image count" in text and "58 MB at D = 768" in text
