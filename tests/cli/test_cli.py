"""The command line, in-process through click's CliRunner: bad input exits 2 with one line on
stderr, success paths print what CONTRACT.md promises and agree with the Python API."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics import __version__, api, load_statistics
from ganmetrics.cli import cli
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.weights import random_weights

WEIGHTS = "random:0"
N_IMAGES = 10


def invoke(*args, dims: str = "64"):
    """Run ``ganmetrics ARGS`` with the fast options (random weights, 64 dims, no workers)."""
    return run_cli(*args, options=("--weights", WEIGHTS, "--dims", dims, "--quiet", "--workers", "0"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small image folders, broken inputs and a 64-dim statistics file of folder a."""
    root = tmp_path_factory.mktemp("cli")
    d = {
        "a": write_images(root / "a", smooth_images(N_IMAGES, (32, 32), seed=1)),
        "b": write_images(root / "b", smooth_images(N_IMAGES, (32, 32), seed=2, offset=0.15)),
        "b2": write_images(root / "b2", smooth_images(N_IMAGES, (32, 32), seed=3, offset=0.3)),
        "single": write_images(root / "single", smooth_images(1, (32, 32), seed=4)),
        "empty": root / "empty",
        "text_only": root / "text_only",
        "corrupt": write_images(root / "corrupt", smooth_images(2, (32, 32), seed=5)),
        "truncated": write_images(root / "truncated", smooth_images(2, (32, 32), seed=6)),
    }
    d["empty"].mkdir()
    d["text_only"].mkdir()
    (d["text_only"] / "notes.txt").write_text("no images here")
    (d["corrupt"] / "x.png").write_bytes(np.random.default_rng(0).bytes(3000))
    png = (d["a"] / "0000.png").read_bytes()
    (d["truncated"] / "t.png").write_bytes(png[: len(png) // 2])
    d["garbage_npz"] = root / "garbage.npz"
    d["garbage_npz"].write_bytes(np.random.default_rng(1).bytes(3000))
    d["ab_npz"] = root / "ab.npz"
    np.savez(d["ab_npz"], a=np.zeros(3), b=np.ones(4))

    d["stats_dir"] = root / "stats"
    d["stats_dir"].mkdir()
    d["stats_a"] = d["stats_dir"] / "a.npz"
    result = invoke("stats", d["a"], "-o", d["stats_a"])
    assert result.exit_code == 0, result.output
    return d


@pytest.fixture(scope="module")
def fid_ab(data) -> dict:
    """`fid a b --json`, run once."""
    result = invoke("fid", data["a"], data["b"], "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- bad input: exit 2, one line, no traceback ----------------------------------------------------


@pytest.mark.parametrize("command, source_key, expected", [
    ("fid", "empty", "no images in"),
    ("fid", "text_only", "no images in"),
    ("is", "empty", "no images in"),
    ("fid", "corrupt", "x.png"),
    ("is", "corrupt", "x.png"),
    ("fid", "truncated", "t.png"),
    ("fid", "single", "at least 2"),
    ("is", "single", "at least 2"),
    ("fid", "garbage_npz", "garbage.npz"),
    ("fid", "ab_npz", "ab.npz"),
])
def test_bad_source_exits_2_with_one_line(data, command, source_key, expected):
    sources = [data[source_key], data["b"]] if command == "fid" else [data[source_key], "--splits", "2"]
    message = one_line_error(invoke(command, *sources))
    assert expected in message


def test_bad_source_in_second_position(data):
    assert "x.png" in one_line_error(invoke("fid", data["a"], data["corrupt"]))


def test_statistics_of_other_dims_exit_2(data):
    message = one_line_error(invoke("fid", data["stats_a"], data["b"], dims="192"))
    assert "a.npz" in message and "--dims 64" in message


def test_stats_output_must_end_in_npz(data, tmp_path):
    message = one_line_error(invoke("stats", data["a"], "-o", tmp_path / "out.txt"))
    assert "out.txt" in message and ".npz" in message
    assert list(tmp_path.iterdir()) == []


def test_stats_into_a_missing_folder_exits_2(data, tmp_path):
    message = one_line_error(invoke("stats", data["a"], "-o", tmp_path / "missing" / "s.npz"))
    assert "missing" in message


def test_stats_onto_a_full_disk_exits_2(data, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    message = one_line_error(invoke("stats", data["a"], "-o", tmp_path / "s.npz"))
    assert "s.npz" in message
    assert list(tmp_path.iterdir()) == []


def test_cuda_device_on_a_cpu_machine_exits_2(data):
    message = one_line_error(invoke("fid", data["a"], data["b"], "--device", "cuda"))
    assert "--device cpu" in message


def test_limit_zero_exits_2(data):
    assert "--limit" in one_line_error(invoke("fid", data["a"], data["b"], "--limit", "0"))


def test_nonexistent_path_exits_2(data, tmp_path):
    assert "nowhere" in one_line_error(invoke("fid", tmp_path / "nowhere", data["b"]))


def test_unknown_resize_exits_2(data):
    message = one_line_error(invoke("fid", data["a"], data["b"], "--resize", "bogus"))
    assert "--resize" in message and "bogus" in message


def test_zero_splits_exits_2(data):
    assert "--splits" in one_line_error(invoke("is", data["a"], "--splits", "0"))


def test_missing_argument_exits_2():
    assert "--help" in one_line_error(CliRunner().invoke(cli, ["fid"]))


# --- success paths ----------------------------------------------------------------------------


def test_fid_json_has_the_contract_keys_and_the_api_value(data, fid_ab):
    assert fid_ab["metric"] == "fid"
    assert fid_ab["n_a"] == fid_ab["n_b"] == N_IMAGES
    assert fid_ab["dims"] == 64
    assert fid_ab["resize"] == "tf"
    assert fid_ab["weights"] == {"sha256": random_weights(InceptionExtractor, 0).sha256, "calibrated": False}
    assert fid_ab["tf32"] is False
    assert fid_ab["version"] == __version__
    with pytest.warns(UserWarning, match="singular"):  # 10 images for 64 dims
        expected = api.fid(data["a"], data["b"], weights=WEIGHTS, dims=64, workers=0)
    assert isinstance(fid_ab["value"], float) and fid_ab["value"] > 0
    assert fid_ab["value"] == pytest.approx(expected.value, rel=1e-12)


def test_allow_tf32_changes_nothing_off_a_gpu_and_is_recorded(data, fid_ab, tmp_path):
    # TF32 exists only on CUDA GPUs: on the CPU the flag is accepted, the run stays exact fp32,
    # and the JSON and the statistics metadata say tf32: false.
    result = invoke("fid", data["a"], data["b"], "--json", "--allow-tf32", "--no-cache")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tf32"] is False
    assert json.loads(result.stdout)["value"] == fid_ab["value"]
    assert invoke("stats", data["a"], "-o", tmp_path / "s.npz", "--allow-tf32").exit_code == 0
    assert load_statistics(tmp_path / "s.npz").meta["tf32"] is False


def test_fid_plain_output_names_the_value_and_the_calibration(data, fid_ab):
    result = invoke("fid", data["stats_a"], data["b"])
    assert result.exit_code == 0, result.output
    assert f"FID {fid_ab['value']:.6f}" in result.stdout
    assert "UNCALIBRATED" in result.stdout


def test_fid_fail_above(data, fid_ab):
    value = fid_ab["value"]
    result = invoke("fid", data["stats_a"], data["b"], "--fail-above", value / 2)
    line = one_line_error(result, code=1)
    assert "--fail-above" in line and f"{value:.4f}" in line
    result = invoke("fid", data["stats_a"], data["b"], "--fail-above", value * 2)
    assert result.exit_code == 0, result.output


def test_is_json_and_fail_below(data):
    # Two images in one split (the full network is slow on a CPU): 1 <= IS <= 2. The JSON row
    # is printed before the threshold is checked, so each run gives both.
    is_args = ["is", data["a"], "--splits", "1", "--limit", "2", "--json"]
    result = invoke(*is_args, "--fail-below", 3)
    line = one_line_error(result, code=1)
    row = json.loads(result.stdout)
    assert (row["metric"], row["splits"], row["n"], row["resize"]) == ("is", 1, 2, "tf")
    assert row["weights"] == {"sha256": random_weights(InceptionExtractor, 0).sha256, "calibrated": False}
    assert row["version"] == __version__
    assert 1.0 < row["mean"] < 2.0 and row["std"] == 0.0
    assert "--fail-below" in line and f"{row['mean']:.4f}" in line

    result = invoke(*is_args, "--fail-below", row["mean"] - 1e-6)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mean"] == row["mean"]


def test_fid_from_a_statistics_file_equals_fid_from_the_folder(data, fid_ab):
    result = invoke("fid", data["stats_a"], data["b"], "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["value"] == pytest.approx(fid_ab["value"], rel=1e-10)
    assert row["n_a"] == N_IMAGES


def test_stats_file_leaves_no_temporary_files(data):
    assert sorted(p.name for p in data["stats_dir"].iterdir()) == ["a.npz"]
    with np.load(data["stats_a"], allow_pickle=False) as stored:
        assert sorted(stored.files) == ["meta", "mu", "n", "sigma"]
        meta = json.loads(str(stored["meta"]))
    assert (meta["dims"], meta["resize"], meta["calibrated"]) == (64, "tf", False)
    assert meta["weights_sha256"] == random_weights(InceptionExtractor, 0).sha256


def test_fid_against_several_sources_equals_separate_runs(data, fid_ab):
    result = invoke("fid", data["a"], data["b"], data["b2"], "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    separate = invoke("fid", data["a"], data["b2"], "--json")
    assert separate.exit_code == 0, separate.output
    for row, expected in zip(rows, [fid_ab, json.loads(separate.stdout)]):
        assert row.keys() == expected.keys()
        assert row["value"] == pytest.approx(expected["value"], rel=1e-10)
        assert {k: v for k, v in row.items() if k != "value"} == {k: v for k, v in expected.items() if k != "value"}
    assert rows[0]["value"] != pytest.approx(rows[1]["value"], rel=1e-3)


def test_statistics_made_with_another_resize_need_allow_mismatch(data, tmp_path):
    stats = tmp_path / "pytorch_resize.npz"
    result = invoke("stats", data["a"], "-o", stats, "--resize", "pytorch")
    assert result.exit_code == 0, result.output
    message = one_line_error(invoke("fid", stats, data["b"], "--resize", "tf"))
    assert "--allow-mismatch" in message and "pytorch" in message
    result = invoke("fid", stats, data["b"], "--resize", "tf", "--allow-mismatch", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metric"] == "fid"


def test_pytorch_fid_statistics_are_accepted_with_a_warning(data, fid_ab, tmp_path):
    with np.load(data["stats_a"], allow_pickle=False) as stored:
        np.savez(tmp_path / "pytorch_fid.npz", mu=stored["mu"], sigma=stored["sigma"])
    result = invoke("fid", tmp_path / "pytorch_fid.npz", data["b"], "--json")
    assert result.exit_code == 0, result.output
    assert "ganmetrics: warning:" in result.stderr and "no metadata" in result.stderr
    row = json.loads(result.stdout)
    assert row["value"] == pytest.approx(fid_ab["value"], rel=1e-10)
    assert row["n_a"] is None
