"""Start-up: what the command line imports and resolves before it does any work. Not timings
(the machine is shared): the modules a command loads, and that FID between statistics files
builds no network and downloads nothing, yet checks the files against the weights the user
named (a file is hashed, not loaded; ``random:SEED`` is built), and without weights at hand
imports no torch and checks the files against each other."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ganmetrics
from helpers import one_line_error, run_cli
from ganmetrics.extractors import base as encoder_base
from ganmetrics.extractors import weights as weights_module
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.inception.weights import WEIGHTS_FILE, WEIGHTS_FILENAME
from ganmetrics.extractors.weights import random_weights
from helpers import inception_provenance, statistics_meta
from ganmetrics.store.statsfile import Statistics, save_statistics

DIMS = 64
SHA = "ab" * 32
STAND_IN = b"not a checkpoint: a stand-in weights file, identified by its sha256 alone\n"
STAND_IN_SHA = hashlib.sha256(STAND_IN).hexdigest()

# Modules no command imports before it runs a network, IS, a download or a progress bar (tqdm
# brings importlib.metadata); and those `--version` does not import either.
NOT_AT_START = ("torch", "torchvision", "open_clip", "ganmetrics.train", "ganmetrics.extractors.inception.network",
                "ganmetrics.engine.runner", "scipy.special", "tqdm", "http.client")
NOT_FOR_VERSION = NOT_AT_START + ("numpy", "scipy", "importlib.metadata")

# Runs the command line in a fresh interpreter and prints, as JSON, its exit code and which of
# the watched modules it imported by the end.
PROBE = f"""
import json, sys
from ganmetrics.cli import main
sys.argv = ["ganmetrics", *sys.argv[1:]]
try:
    main()
except SystemExit as exit_:
    code = exit_.code
watched = {NOT_FOR_VERSION!r}
print(json.dumps({{"code": code, "loaded": sorted(m for m in sys.modules if m in watched)}}), file=sys.stderr)
"""


def run_fresh(*args, env: dict | None = None, watched: tuple[str, ...] = NOT_AT_START) -> tuple[dict, str]:
    """(the probe's report, stdout) of ``ganmetrics ARGS`` in a new interpreter (environment:
    ``env``); the report's "loaded" lists the modules of ``watched`` it imported."""
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=env)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return {**report, "loaded": [m for m in report["loaded"] if m in watched]}, done.stdout


def fresh_env(tmp_path, weights=None) -> dict:
    """This environment for a fresh interpreter, with no weights at hand but ``weights`` (a path
    for GANMETRICS_WEIGHTS): that unset otherwise, and an empty user cache. The project's
    ``weights/`` folder cannot be redirected from outside: a test that needs it empty skips
    where it holds the standard file (``project_weights_folder_is_empty``)."""
    env = {key: value for key, value in os.environ.items() if key != WEIGHTS_FILE.env}
    env["GANMETRICS_CACHE_DIR"] = str(tmp_path / "empty-cache")
    if weights is not None:
        env[WEIGHTS_FILE.env] = str(weights)
    return env


def project_weights_folder_is_empty():
    if (weights_module.PROJECT_WEIGHTS_DIR / WEIGHTS_FILENAME).is_file():
        pytest.skip(f"{weights_module.PROJECT_WEIGHTS_DIR} holds {WEIGHTS_FILENAME}: "
                    "a fresh interpreter has weights at hand")


@pytest.fixture
def no_weights_at_hand(tmp_path, monkeypatch):
    """In this process: GANMETRICS_WEIGHTS unset, an empty user cache and project ``weights/`` folder."""
    monkeypatch.delenv(WEIGHTS_FILE.env, raising=False)
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(weights_module, "PROJECT_WEIGHTS_DIR", tmp_path / "empty-project-weights")


def write_stats(path, seed: int, weights_sha256: str = SHA):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((3 * DIMS, DIMS))
    meta = statistics_meta(inception_provenance(weights_sha256), DIMS, f"synthetic {seed}")
    save_statistics(path, Statistics(features.mean(0), np.cov(features, rowvar=False), len(features), meta))
    return path


@pytest.fixture(scope="module")
def stats_files(tmp_path_factory):
    """Two files made with the weights ``SHA``, one with other weights."""
    root = tmp_path_factory.mktemp("startup")
    return write_stats(root / "a.npz", 1), write_stats(root / "b.npz", 2), write_stats(root / "c.npz", 3, "cd" * 32)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """(a stand-in weights file, two statistics files made with weights of its sha256)."""
    root = tmp_path_factory.mktemp("stand-in")
    path = root / "stand-in.pth"
    path.write_bytes(STAND_IN)
    return path, write_stats(root / "a.npz", 4, STAND_IN_SHA), write_stats(root / "b.npz", 5, STAND_IN_SHA)


def never_loaded(*args, **kwargs):
    raise AssertionError("weights loaded where no network runs, or before the inputs were checked")


def test_version_imports_neither_torch_nor_the_trainer_nor_numpy():
    report, stdout = run_fresh("--version", watched=NOT_FOR_VERSION)
    assert report == {"code": 0, "loaded": []}
    assert stdout == f"ganmetrics, version {ganmetrics.__version__}\n"


def test_the_installed_version_is_the_one_version_py_writes():
    from importlib.metadata import version  # pyproject.toml reads it from ganmetrics/version.py

    assert version("ganmetrics") == ganmetrics.__version__ != "0.0.0"


def test_fid_of_two_statistics_files_without_weights_at_hand_imports_no_torch_and_reports_their_weights(
        stats_files, tmp_path):
    project_weights_folder_is_empty()
    a, b, _ = stats_files
    report, stdout = run_fresh("fid", a, b, "--dims", DIMS, "--json", env=fresh_env(tmp_path))
    assert report == {"code": 0, "loaded": []}
    row = json.loads(stdout)
    assert row["weights"] == {"sha256": SHA, "calibrated": False} and row["n_a"] == 3 * DIMS
    assert np.isfinite(row["value"]) and row["value"] > 0


def test_without_weights_at_hand_files_of_other_weights_need_allow_mismatch(stats_files, no_weights_at_hand,
                                                                            monkeypatch):
    monkeypatch.setattr(encoder_base, "load_weights", never_loaded)
    a, _, other = stats_files
    line = one_line_error(run_cli("fid", a, other, "--dims", DIMS, options=()))
    assert "weights_sha256" in line and "--allow-mismatch" in line and str(other) in line
    result = run_cli("fid", a, other, "--dims", DIMS, "--allow-mismatch", "--json", options=())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"]["sha256"] == SHA  # the first file's


def test_a_weights_file_of_the_files_weights_is_hashed_not_loaded_and_imports_no_torch(stand_in, tmp_path):
    project_weights_folder_is_empty()
    path, a, b = stand_in
    report, stdout = run_fresh("fid", a, b, "--dims", DIMS, "--json", env=fresh_env(tmp_path, weights=path))
    assert report == {"code": 0, "loaded": []}
    assert json.loads(stdout)["weights"] == {"sha256": STAND_IN_SHA, "calibrated": False}


def test_files_of_other_weights_than_the_named_file_need_allow_mismatch(stand_in, stats_files, no_weights_at_hand):
    path, _, _ = stand_in
    a, b, _ = stats_files
    line = one_line_error(run_cli("fid", a, b, "--dims", DIMS, "--weights", path, options=()))
    assert "weights_sha256" in line and SHA in line and STAND_IN_SHA in line and "--allow-mismatch" in line
    result = run_cli("fid", a, b, "--dims", DIMS, "--weights", path, "--allow-mismatch", "--json", options=())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"] == {"sha256": STAND_IN_SHA, "calibrated": False}  # the run's


def test_the_weights_file_in_the_cache_identifies_the_run(stand_in, stats_files, no_weights_at_hand, tmp_path):
    path, a, b = stand_in
    (tmp_path / "empty-cache").mkdir()
    (tmp_path / "empty-cache" / WEIGHTS_FILENAME).write_bytes(path.read_bytes())
    result = run_cli("fid", a, b, "--dims", DIMS, "--json", options=())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"]["sha256"] == STAND_IN_SHA
    line = one_line_error(run_cli("fid", *stats_files[:2], "--dims", DIMS, options=()))
    assert SHA in line and STAND_IN_SHA in line and "--allow-mismatch" in line


def test_random_weights_identify_the_run(stats_files, tmp_path):
    a, b, _ = stats_files
    line = one_line_error(run_cli("fid", a, b, "--dims", DIMS, "--weights", "random:0", options=()))
    assert "weights_sha256" in line and random_weights(InceptionExtractor, 0).sha256 in line and "--allow-mismatch" in line
    own = [write_stats(tmp_path / f"{seed}.npz", seed, random_weights(InceptionExtractor, 0).sha256) for seed in (6, 7)]
    result = run_cli("fid", *own, "--dims", DIMS, "--weights", "random:0", "--json", options=())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"] == {"sha256": random_weights(InceptionExtractor, 0).sha256, "calibrated": False}


def test_a_weights_path_that_is_not_there_is_refused(stats_files, tmp_path, no_weights_at_hand, monkeypatch):
    a, b, _ = stats_files
    missing = tmp_path / "nonexistent.pth"
    line = one_line_error(run_cli("fid", a, b, "--dims", DIMS, "--weights", missing, options=()))
    assert str(missing) in line and "--weights" in line
    monkeypatch.setenv(WEIGHTS_FILE.env, str(missing))
    line = one_line_error(run_cli("fid", a, b, "--dims", DIMS, options=()))
    assert str(missing) in line and WEIGHTS_FILE.env in line


def test_no_weights_are_loaded_for_two_statistics_files(stand_in, no_weights_at_hand, monkeypatch):
    monkeypatch.setattr(encoder_base, "load_weights", never_loaded)
    monkeypatch.setattr(weights_module, "load_weights", never_loaded)
    monkeypatch.setattr(InceptionExtractor, "read_state_dict", never_loaded)
    path, a, b = stand_in
    for weights in ((), ("--weights", path)):  # nothing at hand; a file, hashed
        result = run_cli("fid", a, b, "--dims", DIMS, "--json", *weights, options=())
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["weights"]["sha256"] == STAND_IN_SHA


def test_inputs_are_checked_before_the_weights_are_resolved(stats_files, tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_base, "load_weights", never_loaded)
    monkeypatch.setattr(encoder_base, "weights_identity", never_loaded)
    a, _, _ = stats_files
    line = one_line_error(run_cli("fid", a, tmp_path / "missing", "--dims", DIMS, options=()))
    assert "missing" in line and "does not exist" in line
    line = one_line_error(run_cli("eval", a, tmp_path / "missing", "--metrics", "fid", "--dims", DIMS, options=()))
    assert "does not exist" in line
