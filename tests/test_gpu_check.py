"""bench/gpu_check.py cannot rot: its --dry-run (tiny sizes, the CPU standing in for the GPU)
runs every section in a subprocess, from the source tree, and writes real figures."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"
SECTIONS = ("environment", "data", "correctness", "model_speed", "decode_speed", "end_to_end", "gpu_decode",
            "other_tools")


def numbers(value, where=""):
    """(path, number) of every int/float leaf (not bools) of a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{where}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield where, value


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out, work = tmp_path_factory.mktemp("gpu-out"), tmp_path_factory.mktemp("gpu-work")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--work", str(work)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


@pytest.mark.slow
def test_every_section_runs_and_reports_finite_numbers(dry_run):
    results, _ = dry_run
    assert results["dry_run"] is True
    assert list(results["sections"]) == list(SECTIONS)
    for name, section in results["sections"].items():
        assert section["status"] == "ok", (name, section["error"], section.get("traceback"))
        assert section["figures"], name
    found = list(numbers(results["sections"]))
    assert len(found) > 100
    assert all(math.isfinite(value) for _, value in found), [path for path, value in found if not math.isfinite(value)]
    assert results["summary"]["sections_failed"] == []


@pytest.mark.slow
def test_cpu_standing_in_for_the_device_gives_identical_values(dry_run):
    fig = dry_run[0]["sections"]["correctness"]["figures"]
    for label in ("device", "device_tf32"):
        for key in ("fid_rel_diff", "is_rel_diff", "pool3_max_abs_diff", "logits_max_abs_diff"):
            assert fig[f"{label}.{key}"] == 0.0, (label, key)
    assert fig["cpu.fid"] > 0 and fig["cpu.is_mean"] > 1
    for pair in ("features", "full_rank"):
        assert fig[f"trace_sqrt.{pair}.rel_diff"] == 0.0
        assert fig[f"trace_sqrt.{pair}.torch_on_cpu_rel_diff"] < 1e-5  # the device's route, run on the CPU
    assert fig["cli_vs_api_device.rel_diff"] == 0.0
    for label in ("uint8", "float01"):
        assert fig[f"tracker_{label}.rel_diff_vs_cli"] < 1e-6
    summary = dry_run[0]["summary"]
    assert summary["fid_rel_diff_cpu_vs_device"] == 0.0 and summary["fid_target_met"] is True


@pytest.mark.slow
def test_speed_sections_measure_every_variant(dry_run):
    results, _ = dry_run
    sections = {name: results["sections"][name]["figures"] for name in SECTIONS}
    settings = results["settings"]
    for batch in settings["batch_sizes"]:
        assert sections["model_speed"][f"{settings['jpeg_size']}px.batch{batch}.images_per_s"] > 0
    assert sections["model_speed"][f"{settings['jpeg_size']}px.batch{max(settings['batch_sizes'])}.tf32.images_per_s"] > 0
    for name in ("jpeg", "png"):
        assert sections["decode_speed"][f"{name}.one_process.images_per_s"] > 0
        assert results["summary"][f"{name}.end_to_end_images_per_s"] > 0
        assert 0 < results["summary"][f"{name}.fraction_of_model_rate"]
        assert results["summary"][f"{name}.bound"]
    e2e = sections["end_to_end"]
    assert e2e["cli.jpeg.rel_diff_vs_api"] == 0.0  # `python -m ganmetrics` from the source tree, the .pth file
    decode = sections["gpu_decode"]
    assert decode["fid_rel_diff"] <= 1e-4 and decode["auto_would_pick"] in ("gpu", "cpu")
    assert decode["pixels.compared_images"] > 0
    tools = sections["other_tools"]
    for tool in ("pytorch-fid", "torch-fidelity"):
        if f"{tool}.skipped" in tools:
            assert tools[f"{tool}.skipped"].startswith("not importable")
        else:
            assert tools[f"{tool}.jpeg.fid_rel_diff_vs_ganmetrics"] < 1e-4
            assert tools[f"{tool}.jpeg.ganmetrics_speedup"] > 0


@pytest.mark.slow
def test_markdown_names_the_machine(dry_run):
    results, markdown = dry_run
    env = results["sections"]["environment"]["figures"]
    assert env["torch"] == torch.__version__
    assert f"torch {torch.__version__}" in markdown
    assert f"CPU: {env['cpu_model']}" in markdown
    assert "GPU: none: the CPU stands in" in markdown
    for name in SECTIONS:
        assert f"## {name}" in markdown
    assert "| correctness | ok |" in markdown
