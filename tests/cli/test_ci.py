"""`--ci`, FID∞/IS∞, the interval gates and `--plot` end to end: the interval does not depend on
the batch size or the worker count, `fid` and `eval` agree, a statistics file stays fixed unless
it holds features, gates read the interval's ends, and bad requests are one-line errors.

Building the network costs ~10 s of CPU a run, so images go through the engine with one shared
extractor, once per setting, and the command line then reads statistics files holding every
image's features (`stats --features`): those load no network."""

import json
import sys

import numpy as np
import PIL.Image
import pytest

from helpers import (counted_decodes, cpu_extractor, encoders_of, inception_provenance, one_line_error, run_cli,
                     smooth_images, statistics_meta, write_images)
from ganmetrics.api import evaluate
from ganmetrics.config import IntervalOptions, RunConfig
from ganmetrics.engine import distributed
from ganmetrics.engine.runner import reduce_source
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.kid import KID
from ganmetrics.metrics.reducers import FeatureBank, GaussianStats
from ganmetrics.provenance import Provenance
from ganmetrics.report.plot import plot_results
from ganmetrics.sources import open_source
from ganmetrics.store.statsfile import Statistics, save_statistics

pytestmark = pytest.mark.filterwarnings("ignore:only 40 images for 64-dim features")  # 40 < 64: expected
CI = ("--metrics", "fid", "--ci", "30")
INTERVAL = IntervalOptions(30)


@pytest.fixture(scope="module")
def extractor():
    return cpu_extractor()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("ci")
    return {"a": write_images(root / "a", smooth_images(40, (32, 32), seed=41)),
            "b": write_images(root / "b", smooth_images(40, (32, 32), seed=42, offset=0.2)),
            "c": write_images(root / "c", smooth_images(30, (32, 32), seed=43, offset=0.1))}


@pytest.fixture(scope="module")
def stats_files(sets, extractor, tmp_path_factory):
    """{name: a statistics file with every image's 64-dim features (what `stats --features` writes)},
    and "a-plain": set a's without them."""
    root = tmp_path_factory.mktemp("ci-stats")
    gaussian, bank = Need("inception", "64", GaussianStats), Need("inception", "64", FeatureBank)
    files = {}
    for name, folder in sets.items():
        source = open_source(folder)
        reduced = reduce_source(source, encoders_of(extractor), [gaussian, bank], RunConfig(workers=0))
        stats = reduced[gaussian].result()
        meta = statistics_meta(extractor.provenance, 64, source.describe())
        for key, features in ((name, reduced[bank].result()), (f"{name}-plain", None)):
            files[key] = root / f"{key}.npz"
            save_statistics(files[key], Statistics(stats.mu, stats.sigma, stats.n, meta, features))
    return files


def fid_with_interval(extractor, a, b, batch_size: int, workers: int) -> dict:
    """The results of `eval A B --metrics fid --ci 30 --dims 64` through the API, uncached."""
    config = RunConfig(weights="random:0", batch_size=batch_size, workers=workers, encoders={"inception": {"dims": 64}},
                       cache=False, device="cpu")
    result = evaluate(a, b, ["fid"], config, **INTERVAL.keywords())
    return {**result.results, **result.settings}


@pytest.fixture(scope="module")
def with_interval(sets, extractor):
    """FID with its interval from the images, one worker process, batches of 50."""
    return fid_with_interval(extractor, sets["a"], sets["b"], batch_size=50, workers=1)


def run_json(*args):
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_interval_is_the_same_for_any_batch_size_and_worker_count(sets, extractor, with_interval):
    assert with_interval["fid_ci_low"] < with_interval["fid"] < with_interval["fid_ci_high"]
    assert {key: with_interval[key] for key in ("ci", "ci_level", "ci_method", "ci_seed", "ci_reference_resampled")} == \
        {"ci": 30, "ci_level": 0.95, "ci_method": "basic", "ci_seed": 0, "ci_reference_resampled": True}
    for batch_size, workers in ((7, 1), (50, 2)):
        other = fid_with_interval(extractor, sets["a"], sets["b"], batch_size, workers)
        # The bootstrap values are the same: their quantiles, 2 fid - the basic interval's ends, agree to
        # rounding. The ends move with FID itself, whose streamed sums the batching changes in the last bits
        # (amplified to ~1e-9 here by singular covariances: 40 images, 64 dims).
        assert [2 * other["fid"] - other[f"fid_ci_{end}"] for end in ("high", "low")] == pytest.approx(
            [2 * with_interval["fid"] - with_interval[f"fid_ci_{end}"] for end in ("high", "low")], rel=1e-13)
        assert [other[k] for k in ("fid", "fid_ci_low", "fid_ci_high")] == pytest.approx(
            [with_interval[k] for k in ("fid", "fid_ci_low", "fid_ci_high")], rel=1e-8)


def test_statistics_files_with_features_give_the_interval_of_the_images_and_without_stay_fixed(stats_files, with_interval):
    row = run_json("eval", stats_files["a"], stats_files["b"], *CI)
    assert set(row["results"]) == {"fid", "fid_ci_low", "fid_ci_high"}
    assert row["results"] == pytest.approx({k: with_interval[k] for k in row["results"]}, rel=1e-9)
    assert row["settings"] == {"resize": "tf", "dims": 64, "ci": 30, "ci_level": 0.95, "ci_method": "basic",
                               "ci_seed": 0, "ci_reference_resampled": True}
    fid = run_json("fid", stats_files["a"], stats_files["b"], "--ci", "30")
    assert [fid["value"], fid["ci_low"], fid["ci_high"]] == [row["results"][k] for k in ("fid", "fid_ci_low", "fid_ci_high")]
    assert (fid["ci"], fid["ci_level"], fid["ci_method"], fid["ci_reference_resampled"]) == (30, 0.95, "basic", True)
    fixed = run_json("eval", stats_files["a-plain"], stats_files["b"], *CI)
    assert fixed["settings"]["ci_reference_resampled"] is False
    assert fixed["results"]["fid"] == row["results"]["fid"]
    width = {name: r["results"]["fid_ci_high"] - r["results"]["fid_ci_low"] for name, r in (("fixed", fixed), ("both", row))}
    assert width["fixed"] < width["both"]


def test_interval_gates_read_the_interval_ends(stats_files):
    a, b = stats_files["a"], stats_files["b"]
    low, high = (run_json("eval", a, b, *CI)["results"][f"fid_ci_{end}"] for end in ("low", "high"))
    middle = f"fid={(low + high) / 2}"
    inside = run_cli("eval", a, b, *CI, "--fail-above-ci", middle, "--fail-below-ci", middle)
    assert inside.exit_code == 0, inside.output
    above = run_cli("eval", a, b, *CI, "--fail-above-ci", f"fid={low - 0.01}")
    line = one_line_error(above, code=1)
    assert f"fid 95% CI [{low:.4f}, {high:.4f}] > {low - 0.01:g}" in line and str(b) in line
    below = run_cli("eval", a, b, *CI, "--fail-below-ci", f"fid={high + 0.01}")
    assert f"fid 95% CI [{low:.4f}, {high:.4f}] < {high + 0.01:g}" in one_line_error(below, code=1)
    crossed = run_cli("fid", a, b, "--ci", "30", "--fail-above-ci", str(low - 0.01))
    expected = f"FID interval above --fail-above-ci {low - 0.01:g}: {b} (95% CI [{low:.4f}, {high:.4f}])"
    assert expected in one_line_error(crossed, code=1)
    assert run_cli("fid", a, b, "--ci", "30", "--fail-above-ci", str(high)).exit_code == 0
    # The plain gates read an interval's ends as any other result of a --ci run.
    gated = run_cli("eval", a, b, *CI, "--fail-above", f"fid_ci_high={high - 0.01}")
    assert f"fid_ci_high {high:.4f} > {high - 0.01:g}" in one_line_error(gated, code=1)
    assert run_cli("eval", a, b, *CI, "--fail-below", f"fid_ci_low={low - 0.01}").exit_code == 0
    without_ci = run_cli("eval", a, b, "--metrics", "fid", "--fail-above", "fid_ci_high=30")
    assert "'fid_ci_high' is an end of a confidence interval: add --ci B" in one_line_error(without_ci)


def test_fid_inf_and_the_plot_of_several_generated_sets(stats_files, tmp_path):
    plot = tmp_path / "checkpoints.png"
    rows = run_json("eval", stats_files["a"], stats_files["b"], stats_files["c"], "--metrics", "fid,fid_inf",
                    "--inf-min", "10", "--inf-points", "5", "--ci", "20", "--plot", plot)
    assert [row["source_b"] for row in rows] == [str(stats_files["b"]), str(stats_files["c"])]
    for row in rows:
        fit = row["details"]["fid_inf_fit"]
        assert fit["n"] == np.linspace(10, row["n_b"], 5).astype("int32").tolist() and len(fit["value"]) == 5
        assert (row["results"]["fid_inf"], row["results"]["fid_inf_se"]) == (fit["intercept"], fit["se"])
        assert row["settings"]["inf_min"] == 10 and row["settings"]["seed"] == 2020
        assert fit["value"][-1] == pytest.approx(row["results"]["fid"], rel=1e-6)  # all N images: FID at N
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with PIL.Image.open(plot) as image:
        image.load()
        assert image.size[0] > 400 and image.size[1] > 200


def test_is_and_kid_intervals_stream_and_resample_the_bank(extractor, tmp_path):
    a = write_images(tmp_path / "a", smooth_images(12, (32, 32), seed=44))
    b = write_images(tmp_path / "b", smooth_images(12, (32, 32), seed=45, offset=0.2))
    metrics = ["is", "kid"]
    config = RunConfig(weights="random:0", workers=0, cache=False, device="cpu")
    result = evaluate(a, b, metrics, config, kid_subsets=3, kid_subset_size=4, splits=2, ci=12)
    values, settings = result.results, result.settings
    assert set(values) == {"is_mean", "is_std", "kid", "kid_std", "is_mean_ci_low", "is_mean_ci_high",
                           "kid_ci_low", "kid_ci_high"}
    assert values["is_mean_ci_low"] < values["is_mean_ci_high"] and values["kid_ci_low"] < values["kid_ci_high"]
    assert settings["ci_reference_resampled"] is True


def evaluated(source_b: str, values: dict, details: dict | None = None) -> dict:
    """An ``eval`` JSON row for the plotting function."""
    provenance = Provenance((inception_provenance(),))
    return {"source_b": source_b, "results": values, "settings": {"ci": 50, "ci_level": 0.9}, "details": details or {},
            **provenance.json_tail("inception")}


def test_under_torchrun_only_rank_0_draws_the_plot(stats_files, tmp_path, monkeypatch):
    """Every rank computes the results; the plot file is written (and its folder checked) by rank 0
    alone, as statistics files and the cache are."""
    plot = tmp_path / "ranks.png"
    args = ("eval", stats_files["a"], stats_files["b"], "--metrics", "fid", "--ci", "5", "--plot", plot)
    with monkeypatch.context() as other_rank:
        other_rank.setattr(distributed, "is_main", lambda: False)
        assert run_cli(*args).exit_code == 0
        assert not plot.exists()
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_has_one_point_and_one_interval_per_generated_set_and_the_fitted_lines():
    fits = [{"n": [10, 20, 40], "value": [3.0, 2.5, 2.25], "intercept": 2.0, "slope": 10.0, "se": 0.1},
            {"n": [10, 20, 40], "value": [5.0, 4.5, 4.2], "intercept": 4.0, "slope": 10.0, "se": 0.2}]
    results = [evaluated(f"runs/ckpt{i}", {"fid": 2.0 + i, "fid_ci_low": 1.5 + i, "fid_ci_high": 2.6 + i,
                                           "is_mean": 1.1, "is_std": 0.1,
                                           "fid_inf": fits[i]["intercept"], "fid_inf_se": fits[i]["se"]},
                         {"fid_inf_fit": fits[i]}) for i in range(2)]
    figure = plot_results(results)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert set(panels) == {"fid (90% CI, B=50)", "is_mean", "fid_inf (± 1 s.e. of the fit)",
                           "fid_inf: values at N against 1/N, fitted line"}
    fid = panels["fid (90% CI, B=50)"]
    (points,) = [line for line in fid.get_lines() if line.get_gid() == "values"]
    assert points.get_xdata().tolist() == [0, 1] and points.get_ydata().tolist() == [2.0, 3.0]
    (bars,) = [c for c in fid.collections if c.get_gid() == "interval"]
    assert [segment[:, 1].tolist() for segment in bars.get_segments()] == [[1.5, 2.6], [2.5, 3.6]]
    assert [label.get_text() for label in fid.get_xticklabels()] == ["ckpt0", "ckpt1"]
    fit = panels["fid_inf: values at N against 1/N, fitted line"]
    lines = [line for line in fit.get_lines() if line.get_gid() == "fit"]
    assert [line.get_ydata().tolist() for line in lines] == [[2.0, 3.0], [4.0, 5.0]]  # a + b/N at 1/N = 0 and 1/10
    assert figure.get_suptitle().startswith("UNCALIBRATED")


@pytest.mark.parametrize("args, message", [
    (("--ci", "0"), "--ci must be at least 2 bootstrap replicates"),
    (("--ci", "100", "--ci-level", "1.5"), "--ci-level must lie strictly between 0 and 1"),
    (("--metrics", "fid_inf"), "fid_inf needs more generated images than --inf-min 5000 (its smallest sample; "
                               "Chong & Forsyth use 5000), got 40: add images, or lower --inf-min"),
    (("--fail-above-ci", "fid=30"), "--fail-above-ci gates on the bounds of a confidence interval: add --ci B"),
    (("--metrics", "is_inf", "--inf-min", "10", "--ci", "10"), "--ci: no interval for is_inf"),
    (("--ci", "10", "--fail-below-ci", "is_std=1", "--metrics", "is"), "'is_std' has no bootstrap interval"),
    (("--plot", "plot.jpg"), "the plot is a PNG file"),
    (("--metrics", "kid", "--kid-subset-size", "40", "--ci", "10"),
     "--ci: bootstrap replicate 1 of 10 resamples the 40 generated images as 35 and the 40 reference ones as 47 "
     "(a Poisson number of draws): KID needs at least --kid-subset-size 40 images on each side"),
])
def test_bad_requests_are_one_line_errors_before_any_work(sets, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    with counted_decodes() as decoded:
        result = run_cli("eval", sets["a"], sets["b"], *args)
    assert message in one_line_error(result)
    assert decoded[0] == 0 and list(tmp_path.iterdir()) == []


def test_plotting_without_matplotlib_is_a_one_line_error_before_any_work(sets, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with counted_decodes() as decoded:
        result = run_cli("eval", sets["a"], sets["b"], "--plot", tmp_path / "p.png")
    assert "--plot needs matplotlib, which is not installed: pip install 'ganmetrics[plot]'" in one_line_error(result)
    assert decoded[0] == 0 and not (tmp_path / "p.png").exists()
