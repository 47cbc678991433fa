"""Start-up: what the command line imports and resolves before it does any work. Not timings
(the machine is shared): the modules a command loads, and that FID between two statistics
files resolves no weights and builds no network."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import one_line_error, run_cli
from ganmetrics.extractors import registry
from ganmetrics.provenance import Provenance
from ganmetrics.store.statsfile import Statistics, save_statistics

DIMS = 64
SHA = "ab" * 32

# Runs the command line in a fresh interpreter and prints, as JSON, its exit code and which of
# the watched modules it imported by the end.
PROBE = """
import json, sys
from ganmetrics.cli import main
sys.argv = ["ganmetrics", *sys.argv[1:]]
try:
    main()
except SystemExit as exit_:
    code = exit_.code
watched = ("torch", "torchvision", "ganmetrics.train", "ganmetrics.extractors.inception.network",
           "ganmetrics.engine.runner")
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m in watched)}), file=sys.stderr)
"""


def run_fresh(*args) -> tuple[dict, str]:
    """(the probe's report, stdout) of ``ganmetrics ARGS`` in a new interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, timeout=300)
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def write_stats(path, seed: int, weights_sha256: str = SHA):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((3 * DIMS, DIMS))
    meta = Provenance("inception-v3-2015-12-05", weights_sha256, False, "tf").meta(DIMS, f"synthetic {seed}")
    save_statistics(path, Statistics(features.mean(0), np.cov(features, rowvar=False), len(features), meta))
    return path


@pytest.fixture(scope="module")
def stats_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("startup")
    return write_stats(root / "a.npz", 1), write_stats(root / "b.npz", 2), write_stats(root / "c.npz", 3, "cd" * 32)


def test_version_imports_neither_torch_nor_the_trainer():
    report, stdout = run_fresh("--version")
    assert report == {"code": 0, "loaded": []}
    assert stdout.startswith("ganmetrics, version ")


def test_fid_of_two_statistics_files_imports_no_torch_and_reports_their_weights(stats_files):
    a, b, _ = stats_files
    report, stdout = run_fresh("fid", a, b, "--weights", "random:0", "--dims", DIMS, "--json")
    assert report == {"code": 0, "loaded": []}
    row = json.loads(stdout)
    assert row["weights"] == {"sha256": SHA, "calibrated": False} and row["n_a"] == 3 * DIMS
    assert np.isfinite(row["value"]) and row["value"] > 0


def resolving_weights(*args, **kwargs):
    raise AssertionError("weights resolved where no network runs, or before the inputs were checked")


def test_no_weights_are_resolved_for_two_statistics_files(stats_files, monkeypatch):
    monkeypatch.setattr(registry, "load_weights", resolving_weights)
    a, b, _ = stats_files
    result = run_cli("fid", a, b, "--dims", DIMS, "--json", "--weights", "random:0", options=())
    assert result.exit_code == 0, result.output
    # ... nor for a weights file that is not there: with two statistics files no network runs.
    result = run_cli("fid", a, b, "--dims", DIMS, "--weights", "/nonexistent/weights.pth", options=())
    assert result.exit_code == 0, result.output


def test_two_statistics_files_of_other_weights_need_allow_mismatch(stats_files, monkeypatch):
    monkeypatch.setattr(registry, "load_weights", resolving_weights)
    a, _, other = stats_files
    line = one_line_error(run_cli("fid", a, other, "--dims", DIMS, options=()))
    assert "weights_sha256" in line and "--allow-mismatch" in line and str(other) in line
    result = run_cli("fid", a, other, "--dims", DIMS, "--allow-mismatch", "--json", options=())
    assert result.exit_code == 0, result.output


def test_inputs_are_checked_before_the_weights_are_resolved(stats_files, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "load_weights", resolving_weights)
    a, _, _ = stats_files
    line = one_line_error(run_cli("fid", a, tmp_path / "missing", "--dims", DIMS, options=()))
    assert "missing" in line and "does not exist" in line
    line = one_line_error(run_cli("eval", a, tmp_path / "missing", "--metrics", "fid", "--dims", DIMS, options=()))
    assert "does not exist" in line
