"""The ADM evaluator's workflow end to end: `stats --format adm` writes mu, sigma, mu_s, sigma_s
from one pass; `eval` reads an ADM reference batch's statistics as they are and its IS over
`--is-split-size` splits equals ADM's formula; a batch without statistics is read as images
(`pack`'s output); reference-side spatial statistics come from the cache; and a suite of metrics
(`--metrics adm`) prints its tool's table in its order, with the values of each metric."""

import json

import numpy as np
import pytest

from adm_reference import adm_inception_score
from helpers import counted_decodes, cpu_extractor, encoders_of, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.config import RunConfig
from ganmetrics.engine.runner import reduce_source
from ganmetrics.evaluation.plan import make_plan
from ganmetrics.evaluation.sides import network_provenance, open_side, reduce_side
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.fid import frechet_distance
from ganmetrics.metrics.neighbours import as_features, knn_radii
from ganmetrics.metrics.precision_recall import precision_recall
from ganmetrics.metrics.reducers import FeatureBank, GaussianStats
from ganmetrics.sources import open_source
from ganmetrics.store.statsfile import load_statistics

N_REF, N_SAMPLE, SPLIT = 8, 9, 4  # the sample's IS splits: 4, 4 and 1 images
OPTIONS = ("--weights", "random:0", "--quiet", "--workers", "0")
POOL3, SPATIAL, TAP64 = Need("inception", "2048", GaussianStats), Need("inception", "spatial", GaussianStats), Need("inception", "64", GaussianStats)
LOGITS, BANK = Need("inception", "logits_unbiased", FeatureBank), Need("inception", "2048", FeatureBank)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """The reference as a folder and as `pack`'s batch; the sample as an ADM batch with labels;
    the sample's `stats --format adm`; and an ADM reference batch: the reference images with
    labels and, as statistics, the sample's (so FID and sFID from them are zero, and far from
    zero had the reference images been read instead)."""
    root = tmp_path_factory.mktemp("adm")
    ref_images = smooth_images(N_REF, (32, 32), seed=81)
    sample_images = smooth_images(N_SAMPLE, (32, 32), seed=82, offset=0.15)
    paths = {"ref_folder": write_images(root / "ref", ref_images), "ref_batch": root / "ref_batch.npz",
             "sample": root / "sample_batch.npz", "sample_stats": root / "sample_stats.npz",
             "ref_with_stats": root / "ref_with_stats.npz"}
    assert run_cli("pack", paths["ref_folder"], "-o", paths["ref_batch"], options=("--quiet",)).exit_code == 0
    np.savez(paths["sample"], sample_images, np.arange(N_SAMPLE))  # arr_0 images, arr_1 labels
    written = run_cli("stats", paths["sample"], "--format", "adm", "-o", paths["sample_stats"], "--json", options=OPTIONS)
    assert written.exit_code == 0, written.output
    with np.load(paths["sample_stats"]) as stats:
        np.savez(paths["ref_with_stats"], arr_0=ref_images, arr_1=np.arange(N_REF),
                 **{key: stats[key] for key in ("mu", "sigma", "mu_s", "sigma_s")})
    return paths, json.loads(written.stdout)


@pytest.fixture(scope="module")
def expected(batches):
    """The sample's pool3, spatial and 64-wide Gaussians and its logits, from one engine pass."""
    paths, _ = batches
    reducers = reduce_source(open_source(paths["sample"]), encoders_of(cpu_extractor()), [POOL3, SPATIAL, TAP64, LOGITS, BANK],
                             RunConfig(workers=0))
    return {need: reducer.result() for need, reducer in reducers.items()}


def resolve_side(spec, plan, needs, reference=False):
    return reduce_side(open_side(spec, plan, needs), plan, needs, network_provenance(plan), reference)


def test_stats_format_adm_writes_the_four_keys_of_one_pass(batches, expected):
    paths, printed = batches
    assert printed["format"] == "adm" and printed["n"] == N_SAMPLE and printed["dims"] == 2048
    with np.load(paths["sample_stats"], allow_pickle=False) as data:  # what the ADM evaluator and pytorch-fid read
        assert sorted(data.files) == ["meta", "mu", "mu_s", "n", "sigma", "sigma_s"]
        assert data["mu"].shape == (2048,) and data["sigma_s"].shape == (2023, 2023)
        np.testing.assert_array_equal(data["mu"], expected[POOL3].mu)
        np.testing.assert_array_equal(data["sigma"], expected[POOL3].sigma)
        np.testing.assert_array_equal(data["mu_s"], expected[SPATIAL].mu)
        np.testing.assert_array_equal(data["sigma_s"], expected[SPATIAL].sigma)
    stats = load_statistics(paths["sample_stats"])
    assert stats.more["spatial"].meta["dims"] == 2023 and stats.more["spatial"].n == N_SAMPLE
    info = run_cli("stats", "--info", paths["sample_stats"], options=())
    assert "with spatial statistics (2023 dims: mu_s, sigma_s)" in info.stdout


def test_eval_reads_an_adm_reference_batchs_statistics_and_scores_is_over_fixed_splits(batches, expected):
    paths, _ = batches
    result = run_cli("eval", paths["ref_with_stats"], paths["sample"], "--metrics", "fid,sfid,is",
                     "--is-split-size", str(SPLIT), "--json", options=OPTIONS)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert "has no metadata" in result.stderr  # ADM's statistics carry none
    assert list(row["results"]) == ["fid", "sfid", "is_mean", "is_std"]
    assert row["n_a"] is None and row["n_b"] == N_SAMPLE  # the reference side is its statistics
    # Its statistics are the sample's own: zero, where its images (another set) would give far more.
    assert abs(row["results"]["fid"]) < 1e-5 * np.trace(expected[POOL3].sigma)
    assert abs(row["results"]["sfid"]) < 1e-5 * np.trace(expected[SPATIAL].sigma)
    logits = expected[LOGITS]
    assert row["results"]["is_mean"] == pytest.approx(adm_inception_score(logits, SPLIT), rel=1e-6)
    assert row["results"]["is_mean"] > 1.05
    assert row["settings"] == {"resize": "tf", "dims": 2048, "splits": 3, "is_split_size": SPLIT}


def test_the_adm_suite_reads_a_batch_without_statistics_and_prints_the_evaluators_table(batches, expected):
    """`--metrics adm`: IS over splits of 5000, FID, sFID, and P/R with ADM's float16 distances, in
    the evaluator's order, each equal to its formula on the features of both sides."""
    paths, _ = batches
    result = run_cli("eval", paths["ref_batch"], paths["sample"], "--metrics", "adm", options=OPTIONS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    labels = ["Inception Score", "FID", "sFID", "Precision", "Recall"]
    assert [line.split(": ")[0] for line in lines[:5]] == labels
    assert lines[5].startswith(f"against {paths['ref_batch']} (n_a={N_REF}, n_b={N_SAMPLE}; resize=tf, splits=1, "
                               "is_split_size=5000, dims=2048, pr_k=3, pr_variant=adm)")
    printed = dict(zip(labels, (float(line.split(": ")[1]) for line in lines[:5])))
    ref = reduce_source(open_source(paths["ref_folder"]), encoders_of(cpu_extractor()), [POOL3, SPATIAL, BANK],
                        RunConfig(workers=0))  # pack's batch holds the folder's pixels
    ref = {need: reducer.result() for need, reducer in ref.items()}
    assert printed["Inception Score"] == pytest.approx(adm_inception_score(expected[LOGITS], 5000), rel=1e-6)
    for label, need in (("FID", POOL3), ("sFID", SPATIAL)):
        distance = frechet_distance(ref[need].mu, ref[need].sigma, expected[need].mu, expected[need].sigma)
        assert printed[label] == pytest.approx(distance, rel=1e-6)
    radii = [knn_radii(as_features(bank, "cpu"), 3, "adm").numpy() for bank in (ref[BANK], expected[BANK])]
    precision, recall = precision_recall(ref[BANK], radii[0], expected[BANK], radii[1], "adm", "cpu")
    assert (printed["Precision"], printed["Recall"]) == pytest.approx((precision, recall), abs=1e-6)


def test_reference_side_spatial_statistics_come_from_the_cache(batches, tmp_path, monkeypatch):
    paths, _ = batches
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    plan = make_plan(["sfid"], {}, RunConfig(weights="random:0", workers=0, device="cpu"))
    needs = plan.needs("a")
    first = resolve_side(paths["ref_folder"], plan, needs, reference=True)
    with counted_decodes() as decoded:
        second = resolve_side(paths["ref_folder"], plan, needs, reference=True)
    assert decoded[0] == 0
    np.testing.assert_array_equal(second.reduced[SPATIAL].sigma, first.reduced[SPATIAL].sigma)
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 1  # one entry per feature


def test_ci_refuses_a_generated_batch_whose_statistics_sit_beside_its_images(batches, tmp_path):
    """With --ci the interval resamples a side's images; where its point estimate would come from
    statistics stored beside them (an ADM batch), the two would describe different data: refused,
    and the fix the message names (its images alone, repacked) runs."""
    paths, _ = batches
    refused = run_cli("eval", paths["ref_batch"], paths["ref_with_stats"], "--metrics", "fid", "--ci", "4",
                      options=OPTIONS)
    message = one_line_error(refused)
    assert "--ci resamples the images of" in message and "ganmetrics pack" in message
    images = tmp_path / "images.npz"
    assert run_cli("pack", paths["ref_with_stats"], "-o", images, options=("--quiet",)).exit_code == 0
    rows = []
    for extra in (("--ci", "4"), ()):
        result = run_cli("eval", paths["ref_batch"], images, "--metrics", "fid", *extra, "--json", options=OPTIONS)
        assert result.exit_code == 0, result.output
        rows.append(json.loads(result.stdout)["results"])
    # Both FIDs are the repacked images' (the reference's own: zero to rounding of a singular
    # 8-image covariance), not the statistics' beside them (the sample's: far from zero).
    assert rows[0]["fid"] == rows[1]["fid"] and abs(rows[0]["fid"]) < 0.01
    assert np.isfinite(rows[0]["fid_ci_low"]) and rows[0]["fid_ci_low"] <= rows[0]["fid_ci_high"]
