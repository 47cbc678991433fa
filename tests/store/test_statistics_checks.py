"""Statistics are checked wherever they are read or written: a non-finite, asymmetric or
indefinite covariance is refused naming the check, rounding-level asymmetry and rank deficiency
pass, and a non-finite FID never reaches a gate, the JSON or exit 0."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from ganmetrics.cli.render import echo_json, require_finite
from ganmetrics.errors import GanMetricsError
from ganmetrics.store.statsfile import Statistics, load_statistics, save_statistics

D = 64


def good_statistics(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((100, D))
    return x.mean(0), np.cov(x, rowvar=False)


def error_after_warnings(result) -> str:
    """The one error line of an exit-2 run whose only other stderr lines are warnings (the
    "no metadata" warning of files written as a foreign tool would)."""
    assert result.exit_code == 2 and "Traceback" not in result.output, (result.exit_code, result.output)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("ganmetrics: warning:")]
    assert len(lines) == 1 and lines[0].startswith("ganmetrics: error:"), result.stderr
    return lines[0]


def write_stats(path: Path, mu, sigma) -> Path:
    np.savez(path, mu=mu, sigma=sigma)  # as a foreign tool would: no meta, nothing checked
    return path


# --- statistics are checked; a non-finite result never reaches a gate or exit 0 ----------------

def _not_psd(sigma: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(sigma)
    values[0] = -0.05 * values[-1]
    return (vectors * values) @ vectors.T


@pytest.mark.parametrize("damage, check", [
    (lambda mu, s: (np.where(np.arange(D) == 3, np.nan, mu), s), "mu holds NaN"),
    (lambda mu, s: (mu, np.where(np.eye(D, dtype=bool), np.inf, s)), "sigma holds NaN or infinity"),
    (lambda mu, s: (mu, s + np.triu(np.full((D, D), 0.5), 1)), "not symmetric"),
    (lambda mu, s: (mu, -s), "not positive semi-definite"),
    (lambda mu, s: (mu, (lambda p: (p + p.T) / 2)(_not_psd(s))), "not positive semi-definite"),
])
def test_statistics_that_are_not_finite_symmetric_and_psd_are_refused_naming_the_check(tmp_path, damage, check):
    path = write_stats(tmp_path / "bad.npz", *damage(*good_statistics()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no meta
        with pytest.raises(GanMetricsError, match=check) as caught:
            load_statistics(path)
    assert str(path) in str(caught.value) and "ganmetrics stats" in str(caught.value)


def test_statistics_with_rounding_asymmetry_and_rank_deficiency_are_accepted(tmp_path):
    x = np.random.default_rng(1).standard_normal((3, D))  # 3 images, 8 dims: rank 2
    sigma = np.cov(x, rowvar=False)
    sigma[0, 1] += 1e-12 * np.abs(sigma).max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = load_statistics(write_stats(tmp_path / "ok.npz", x.mean(0), sigma))
    assert stats.dims == D


@pytest.mark.parametrize("order", ["C", "F"])
def test_checking_statistics_leaves_them_as_they_were_read(tmp_path, order):
    # The check shifts the diagonal of a Fortran-ordered copy in place: a file stored in
    # Fortran order (np.save keeps the order) is read as one, and must not be the copy shifted.
    mu, sigma = good_statistics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = load_statistics(write_stats(tmp_path / "s.npz", mu, np.asarray(sigma, order=order)))
    assert stats.sigma.flags.f_contiguous == (order == "F")
    assert np.array_equal(stats.sigma, sigma)


def test_statistics_that_are_not_finite_are_never_written(tmp_path):
    mu, sigma = good_statistics()
    with pytest.raises(GanMetricsError, match="not finite .*nothing written"):
        save_statistics(tmp_path / "s.npz", Statistics(mu * np.nan, sigma, 50, {}))
    assert not (tmp_path / "s.npz").exists()


def test_fid_of_a_nan_statistics_file_exits_2_even_with_a_gate(tmp_path):
    mu, sigma = good_statistics()
    good = write_stats(tmp_path / "good.npz", mu, sigma)
    bad = write_stats(tmp_path / "nan.npz", np.full(D, np.nan), sigma)
    line = error_after_warnings(run_cli("fid", bad, good, "--fail-above", "10"))
    assert "nan.npz" in line and "mu holds NaN" in line


def test_json_output_refuses_nan_and_infinity():
    with pytest.raises(GanMetricsError, match=r"not finite \(results.fid = nan\)"):
        echo_json({"metric": "eval", "results": {"fid": float("nan")}})
    with pytest.raises(GanMetricsError, match=r"not finite \(1.value = inf\)"):
        echo_json([{"value": 1.0}, {"value": float("inf")}])
    require_finite({"fid": 1.5, "n": 3, "rank": None}, "FID")


def test_a_nan_fid_on_the_cli_with_json_exits_2_never_0(tmp_path, monkeypatch):
    import ganmetrics.metrics.fid as fid_module

    monkeypatch.setattr(fid_module, "frechet_distance", lambda *args, **kwargs: float("nan"))
    mu, sigma = good_statistics()
    a, b = write_stats(tmp_path / "a.npz", mu, sigma), write_stats(tmp_path / "b.npz", mu + 1, sigma)
    line = error_after_warnings(run_cli("fid", a, b, "--json", "--fail-above", "10"))
    assert "not finite" in line


def test_a_nan_fid_on_the_cli_in_text_exits_2_never_0(tmp_path, monkeypatch):
    import ganmetrics.metrics.fid as fid_module

    monkeypatch.setattr(fid_module, "frechet_distance", lambda *args, **kwargs: float("nan"))
    mu, sigma = good_statistics()
    a, b = write_stats(tmp_path / "a.npz", mu, sigma), write_stats(tmp_path / "b.npz", mu + 1, sigma)
    line = error_after_warnings(run_cli("fid", a, b, "--fail-above", "10"))
    assert "not finite" in line
