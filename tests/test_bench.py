"""bench/: every experiment runs standalone, the runner runs registered experiments end to end
(a worker job in its own process, one block per level, the targets table; a module written to
run alone, given its options by its registry entry), and the markdown writer replaces only the
levels a run measured."""

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


def registered() -> list[str]:
    """The module names of ``bench.py``'s ``EXPERIMENTS`` (a literal list: one line per module)."""
    tree = ast.parse((BENCH / "bench.py").read_text())
    (value,) = [node.value for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "EXPERIMENTS"]
    return [entry if isinstance(entry, str) else entry[0] for entry in ast.literal_eval(value)]


SCRIPTS = sorted({*BENCH.glob("exp_*.py"), *(BENCH / f"{name}.py" for name in registered())}) + [BENCH / "bench.py"]


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_experiment_runs_standalone(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
    if script.stem.startswith("exp_") or script.stem == "bench":  # run alone through the runner: its options
        assert "--out OUT" in done.stdout and "--skip SKIP" in done.stdout


TOY = '''
"""A toy experiment: one worker job per level."""
import sys

from context import context_of

NAME = "toy"
PER_LEVEL = True


def add_arguments(p):
    p.add_argument("--toy-value", type=int, default=2)


def work_double(job):
    return {"double": 2 * job["value"]}


def run(args):
    ctx = context_of(args)
    r = ctx.runner.job("toy" + ctx.tag, work_double, {"value": args.toy_value})
    return {"double": r["double"], "targets": [("toy doubles", str(r["double"]), r["double"] == 2 * args.toy_value)]}


def render(result):
    return ["", f"| toy | {result['double']} |"]
'''

PLAIN = '''
"""Written to run alone: no NAME, no add_arguments; run reads an option only its registry entry gives."""


def run(args):
    return {"images": args.plain_images, "device": args.device}


def render(result):
    return ["", f"| plain | {result['images']} | {result['device']} |"]
'''

BROKEN = '''
NAME = "broken"


def run(args):
    raise RuntimeError("no figures today")


def render(result):
    return ["never called"]
'''


def test_runner_runs_a_registered_experiment(tmp_path, bench_path, monkeypatch):
    for name, text in (("exp_toy", TOY), ("plain", PLAIN), ("exp_broken", BROKEN)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the worker process imports exp_toy
    import bench
    import exp_broken
    import exp_toy

    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\nKept text.\n\n## How to rerun\n\nKept too.\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "random-0.pth").write_bytes(b"")  # the checkpoint, as if built: no experiment here reads it
    argv = ["--out", str(out), "--n-small", "4", "--n-large", "2", "--isa", "native", "--toy-value", "21",
            "--markdown", str(markdown)]
    assert bench.main(argv, [exp_toy, ("plain", {"plain_images": 3}), exp_broken]) == 0

    run = json.loads((out / "results.json").read_text())
    (level,) = run["levels"]
    assert level["results"]["toy"]["double"] == 42
    assert run["results"]["plain"] == {"images": 3, "device": "cpu"}
    assert run["results"]["broken"] == {"failed": "RuntimeError: no figures today"}
    isa = level["isa"]["isa"]
    text = markdown.read_text()
    assert text.startswith("# Benchmarks\n\nKept text.\n") and "## How to rerun\n\nKept too.\n" in text
    block = text.split(f"<!-- bench:{isa}:begin -->", 1)[1].split(f"<!-- bench:{isa}:end -->", 1)[0]
    assert f"## {isa} (as the machine is)" in block and "--toy-value 21" in block
    assert "| toy | 42 |" in block and "Failed: RuntimeError: no figures today" in block
    assert "### plain (`bench/plain.py`)\n\n| plain | 3 | cpu |" in block
    assert f"| {isa} | toy doubles | 42 | yes |" in text.split("<!-- bench:targets:begin -->", 1)[1]


def test_runner_refuses_an_unknown_part(bench_path, capsys):
    import bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(["--skip", "tools,nonsense"])
    assert exit_.value.code == 2
    assert "unknown part(s) nonsense" in capsys.readouterr().err


def test_markdown_keeps_the_levels_a_run_did_not_measure(tmp_path, bench_path):
    from report import write_levels

    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nIntro.\n")
    write_levels(path, {"AVX-512": ["## AVX-512", "first"], "AVX2": ["## AVX2", "first"]},
                 [("AVX-512", "speed", "2x", True), ("AVX2", "speed", "1.2x", False)], "")
    write_levels(path, {"AVX2": ["## AVX2", "second"]}, [("AVX2", "speed", "1.6x", True)], "")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nIntro.\n")
    assert "## AVX-512\nfirst" in text and "## AVX2\nsecond" in text and "## AVX2\nfirst" not in text
    rows = [line for line in text.split("<!-- bench:targets:begin -->")[1].splitlines() if line.startswith("| AVX")]
    assert rows == ["| AVX-512 | speed | 2x | yes |", "| AVX2 | speed | 1.6x | yes |"]
    assert text.index("<!-- bench:AVX2:end -->") < text.index("<!-- bench:targets:begin -->")
