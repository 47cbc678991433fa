"""`ganmetrics eval`: every requested metric in one pass per source, the same numbers as the
separate commands and as torch-fidelity, gates on any result, a metric added by one registry
line, and one-line errors before any work."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import ganmetrics
from helpers import cached_values, counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.cli.gates import crossed, parse_gates
from ganmetrics.metrics import registry
from ganmetrics.metrics.base import Metric, Need, option
from ganmetrics.metrics.reducers import GaussianStats
from ganmetrics.store.statsfile import load_statistics

N = 20
KID_OPTIONS = ("--kid-subsets", "5", "--kid-subset-size", "10")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return {"a": write_images(root / "a", smooth_images(N, (32, 32), seed=31)),
            "b": write_images(root / "b", smooth_images(N, (32, 32), seed=32, offset=0.2)),
            "c": write_images(root / "c", smooth_images(N - 4, (32, 32), seed=33, offset=0.1))}


def run_json(*args, **options):
    result = run_cli(*args, "--json", **options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def evaluated(sets):
    """`eval a b --metrics fid,is,kid` uncached, with the images it decoded."""
    with counted_decodes() as decoded:
        row = run_json("eval", sets["a"], sets["b"], "--metrics", "fid,is,kid", *KID_OPTIONS, "--no-cache")
    return row, decoded[0]


def test_eval_decodes_each_image_once_and_gives_the_fid_and_is_of_the_separate_commands(sets, evaluated):
    row, decoded = evaluated
    assert decoded == 2 * N
    fid = run_json("fid", sets["a"], sets["b"], "--no-cache")
    inception = run_json("is", sets["b"])
    assert row["results"]["fid"] == fid["value"]
    assert (row["results"]["is_mean"], row["results"]["is_std"]) == (inception["mean"], inception["std"])
    assert set(row["results"]) == {"fid", "is_mean", "is_std", "kid", "kid_std"}
    assert row["results"]["kid"] > 0 and row["results"]["kid_std"] > 0
    assert (row["metric"], row["n_a"], row["n_b"], row["source_b"]) == ("eval", N, N, str(sets["b"]))
    assert row["settings"] == {"resize": "tf", "dims": 64, "splits": 10, "kid_subsets": 5, "kid_subset_size": 10,
                               "kid_degree": 3, "kid_gamma": None, "kid_coef0": 1.0, "seed": 2020, "kid_shrink": False}
    assert row["weights"]["calibrated"] is False and row["version"] == ganmetrics.__version__


def test_eval_kid_pr_and_dc_equal_torch_fidelity_calculate_metrics_and_prdc(weights_file, tmp_path, monkeypatch):
    import torch_fidelity
    from prdc import compute_prdc
    from torch_fidelity.metric_prc import prc_features_to_metric

    a = write_images(tmp_path / "a", smooth_images(40, (32, 32), seed=34))
    b = write_images(tmp_path / "b", smooth_images(40, (32, 32), seed=35, offset=0.15))
    reference = torch_fidelity.calculate_metrics(
        input1=str(b), input2=str(a), kid=True, prc=True, feature_extractor="inception-v3-compat",
        feature_layer_kid="2048", feature_layer_prc="2048", feature_extractor_weights_path=str(weights_file),
        kid_subsets=10, kid_subset_size=30, batch_size=40, cuda=False, cache=False, verbose=False, save_cpu_ram=True,
    )
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    row = run_json("eval", a, b, "--metrics", "kid,pr,dc", "--kid-subsets", "10", "--kid-subset-size", "30", "--cache",
                   options=("--weights", str(weights_file), "--quiet", "--workers", "0"))
    assert row["results"]["kid"] > 1e-3
    # Features agree to 1e-5 (tests/test_parity.py), the subsets are the same; float32 vs float64 kernels.
    assert row["results"]["kid"] == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4, abs=1e-7)
    assert row["results"]["kid_std"] == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-3, abs=1e-7)
    assert set(row["results"]) == {"kid", "kid_std", "precision", "recall", "density", "coverage"}
    assert {key: row["settings"][key] for key in ("pr_k", "pr_variant", "dc_k")} == {"pr_k": 3, "pr_variant": "exact",
                                                                                  "dc_k": 5}
    # P/R from features that agree to 1e-5: a distance that close to a radius could flip one image (1/N).
    assert abs(row["results"]["precision"] - reference["precision"]) <= 1 / 40
    assert abs(row["results"]["recall"] - reference["recall"]) <= 1 / 40
    # --cache kept both sides' features: P/R are torch-fidelity's, density and coverage prdc's, on exactly those.
    cached = cached_values(tmp_path / "cache" / "stats", "feature_bank")
    banks = {side: next(fields["features"] for source, fields in cached.items() if source.endswith(str(side)))
             for side in (a, b)}
    prc = prc_features_to_metric(
        torch.from_numpy(banks[b]), torch.from_numpy(banks[a]), prc_neighborhood=3, prc_batch_size=10000,
        save_cpu_ram=True, verbose=False)
    assert (np.float32(row["results"]["precision"]), np.float32(row["results"]["recall"])) == (prc["precision"],
                                                                                               prc["recall"])
    prdc = compute_prdc(real_features=banks[a], fake_features=banks[b], nearest_k=5)
    assert (row["results"]["density"], row["results"]["coverage"]) == (prdc["density"], prdc["coverage"])


def test_several_generated_sets_reuse_the_reference_and_print_a_list(sets, evaluated):
    with counted_decodes() as decoded:
        rows = run_json("eval", sets["a"], sets["b"], sets["c"], "--metrics", "fid,kid", *KID_OPTIONS, "--no-cache")
    assert decoded[0] == N + N + (N - 4)
    assert [row["source_b"] for row in rows] == [str(sets["b"]), str(sets["c"])]
    assert rows[0]["results"]["fid"] == evaluated[0]["results"]["fid"]
    assert rows[0]["results"]["kid"] == evaluated[0]["results"]["kid"]
    table = run_cli("eval", sets["a"], sets["b"], sets["c"], "--metrics", "fid", "--no-cache")
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split() == ["SOURCE_B", "n_b", "fid"]


def test_the_reference_side_and_its_feature_bank_come_from_the_cache(sets, evaluated, tmp_path, monkeypatch):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    first = run_json("eval", sets["a"], sets["b"], "--metrics", "fid,kid", *KID_OPTIONS)
    with counted_decodes() as decoded:
        second = run_json("eval", sets["a"], sets["b"], "--metrics", "fid,kid", *KID_OPTIONS)
    assert decoded[0] == N  # only SOURCE_B
    assert second["results"] == first["results"]
    assert first["results"]["kid"] == evaluated[0]["results"]["kid"]


def test_a_statistics_file_with_features_serves_kid_and_one_without_is_refused(sets, evaluated, tmp_path):
    with_bank, plain = tmp_path / "bank.npz", tmp_path / "plain.npz"
    assert run_cli("stats", sets["a"], "-o", with_bank, "--features", "--dims", "2048",
                   options=("--weights", "random:0", "--quiet", "--workers", "0")).exit_code == 0
    stats = load_statistics(with_bank)
    assert stats.features.shape == (N, 2048) and stats.features.dtype == np.float32
    with np.load(with_bank, allow_pickle=False) as data:  # pytorch-fid reads mu/sigma as ever
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
    row = run_json("eval", with_bank, sets["b"], "--metrics", "kid", *KID_OPTIONS, "--no-cache")
    assert row["results"]["kid"] == evaluated[0]["results"]["kid"]

    assert run_cli("stats", sets["a"], "-o", plain).exit_code == 0
    message = one_line_error(run_cli("eval", plain, sets["b"], "--metrics", "fid,kid", *KID_OPTIONS))
    assert "statistics only" in message and "KID" in message and "stats --features" in message


@dataclass(frozen=True)
class MeanGap(Metric):
    """A toy metric for this test: the L1 distance between the two sides' 64-dim means."""

    name = "mean_gap"
    sides = 2
    keys = ("mean_gap",)
    mean_gap_power: int = option(1, "Toy: the power of the per-feature gaps.")

    def needs(self, extractor):
        return [Need("inception", "64", GaussianStats)]

    def compute(self, a, b, device=None):
        need = Need("inception", "64", GaussianStats)
        return {"mean_gap": float((np.abs(a[need].mu - b[need].mu) ** self.mean_gap_power).sum())}


def test_a_metric_is_one_class_and_one_registry_line(sets, monkeypatch):
    monkeypatch.setitem(registry.METRICS, MeanGap.name, MeanGap)
    with counted_decodes() as decoded:
        row = run_json("eval", sets["a"], sets["b"], "--metrics", "fid,mean_gap", "--no-cache")
    assert decoded[0] == 2 * N  # shares FID's Gaussian need: one pass, one reducer
    mu_a = ganmetrics.compute_stats(sets["a"], weights="random:0", dims=64, workers=0).mu
    mu_b = ganmetrics.compute_stats(sets["b"], weights="random:0", dims=64, workers=0).mu
    assert row["results"]["mean_gap"] == pytest.approx(np.abs(mu_a - mu_b).sum(), rel=1e-12)
    assert row["settings"]["mean_gap_power"] == 1
    assert "--mean-gap-power" in run_cli("eval", "--help", options=()).output  # its option, from its field
    squared = run_json("eval", sets["a"], sets["b"], "--metrics", "mean_gap", "--mean-gap-power", "2")
    assert squared["results"]["mean_gap"] == pytest.approx(((mu_a - mu_b) ** 2).sum(), rel=1e-12)
    crossed = run_cli("eval", sets["a"], sets["b"], "--metrics", "mean_gap", "--fail-above", "mean_gap=0", "--no-cache")
    assert "mean_gap" in one_line_error(crossed, code=1)
    api = ganmetrics.evaluate(sets["a"], sets["b"], metrics=["mean_gap"], weights="random:0", dims=64, workers=0)
    assert api.results["mean_gap"] == row["results"]["mean_gap"]


def test_gates_name_each_crossed_result(sets, evaluated):
    fid, is_mean = evaluated[0]["results"]["fid"], evaluated[0]["results"]["is_mean"]
    passed = run_cli("eval", sets["a"], sets["b"], "--no-cache", "--fail-above", f"fid={fid + 1}",
                     "--fail-below", f"is={is_mean - 0.5}")
    assert passed.exit_code == 0, passed.output
    failed = run_cli("eval", sets["a"], sets["b"], "--no-cache", "--fail-above", f"fid={fid - 1}",
                     "--fail-below", f"is={is_mean + 0.5},is_std=0")
    line = one_line_error(failed, code=1)
    assert "fid" in line and "is_mean" in line and "is_std" not in line and str(sets["b"]) in line


@pytest.mark.parametrize("args, message", [
    (("--metrics", "fid,sharpness"), "unknown metric 'sharpness'"),
    (("--metrics", "kid"), "--kid-subset-size 1000"),
    (("--fail-above", "fid30"), "NAME=NUMBER"),
    (("--fail-above", "fid=high"), "NAME=NUMBER"),
    (("--fail-below", "kid=0.1"), "'kid' is not a requested result"),
    (("--metrics", ""), "no metric requested"),
    (("--metrics", "pr", "--pr-k", "0"), "--pr-k must be at least 1, got 0"),
    (("--metrics", "pr", "--pr-variant", "fast"), "--pr-variant 'fast' is unknown: use one of exact, adm"),
    (("--metrics", "fid,pr", "--pr-k", "20"), "--pr-k 20 needs more than 20 images on the reference side"),
    (("--metrics", "dc", "--dc-k", "0"), "--dc-k must be at least 1, got 0"),
    (("--metrics", "dc", "--dc-k", "25"), "--dc-k 25 needs more than 25 images on the reference side"),
])
def test_bad_requests_are_one_line_errors_before_any_work(sets, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    with counted_decodes() as decoded:
        result = run_cli("eval", sets["a"], sets["b"], *args)
    assert message in one_line_error(result)
    assert decoded[0] == 0 and not (tmp_path / "cache").exists()


def test_gates_take_precision_recall_density_and_coverage():
    metrics = registry.build_metrics(["pr", "dc"], {})
    above = parse_gates("recall=0.9", "--fail-above", metrics)
    below = parse_gates("pr=0.5,coverage=0.8", "--fail-below", metrics)
    assert (above, below) == ({"recall": 0.9}, {"precision": 0.5, "coverage": 0.8})
    values = {"precision": 0.4, "recall": 0.95, "density": 1.2, "coverage": 0.85}
    assert crossed(values, above, below) == ["recall 0.9500 > 0.9", "precision 0.4000 < 0.5"]


def test_the_training_loop_api_takes_metrics(sets, evaluated):
    images = np.stack([np.asarray(ganmetrics.sources.open_source(sets["b"]).read(i)) for i in range(N)])
    tracker = ganmetrics.GenerativeMetrics(sets["a"], metrics=["fid", "kid"], kid_subsets=5, kid_subset_size=10,
                                           weights="random:0", dims=64, workers=0, cache=False)
    tracker.update(images[:7])
    tracker.update(images[7:])
    scores = tracker.compute()
    assert set(scores) == {"n", "fid", "kid", "kid_std"} and scores["n"] == N
    assert scores["fid"] == pytest.approx(evaluated[0]["results"]["fid"], rel=1e-6)
    assert scores["kid"] == pytest.approx(evaluated[0]["results"]["kid"], rel=1e-6)


def test_metrics_that_share_an_option_must_declare_it_alike(monkeypatch):
    @dataclass(frozen=True)
    class OtherSeed(MeanGap):
        name = "other_seed"
        seed: int = option(7, "Toy: a seed with another default than KID's.")

    monkeypatch.setitem(registry.METRICS, OtherSeed.name, OtherSeed)
    with pytest.raises(TypeError, match="'seed' is declared twice"):
        registry.metric_options()
