"""Start-up: the import time and wall time of ``ganmetrics --version`` and of ``ganmetrics fid
a.npz b.npz --weights FILE`` (two synthetic 2048-d statistics files with ganmetrics' metadata,
made with that file's weights: no network is built, the file is hashed to check them), each a
fresh process under ``python -X importtime``, the median of ``--startup-repeats``.

"imports s" sums every top-level import of the process (each with what it imported); "wall s" is
the whole process; "torch imported" says whether the process loaded torch at all.

    python bench/exp_startup.py --startup-repeats 5
"""

import statistics
import sys
from pathlib import Path

from context import context_of
from data import stats_files
from report import fmt, table

NAME = "startup"
LABELS = {"version": "ganmetrics --version", "fid_stats": "ganmetrics fid a.npz b.npz --weights FILE (2048-d)"}


def add_arguments(p) -> None:
    p.add_argument("--startup-repeats", type=int, default=3, help="processes per start-up measurement; the median counts")


def import_report(log: str) -> dict:
    """From ``python -X importtime`` output: the seconds of every top-level import (each includes
    what it imported) and whether torch was imported."""
    total, torch = 0, False
    for line in log.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.strip() == "torch":
            torch = True
        if name.startswith(" ") and not name.startswith("  ") and cumulative.strip().isdigit():
            total += int(cumulative)
    return {"import_seconds": total / 1e6, "torch": torch}


def _measure(ctx, key: str, command: list[str], repeats: int) -> dict:
    """One command's ``repeats`` fresh processes: the medians, the highest peak RSS."""
    runs = []
    for number in range(repeats):
        r = ctx.runner.command(f"startup_{key}_{number}", [sys.executable, "-X", "importtime", "-m", "ganmetrics", *command])
        if "error" in r:
            return {"label": LABELS[key], "error": r["error"]}
        runs.append(dict(r, **import_report(Path(r["log"]).read_text(errors="replace"))))
    return {"label": LABELS[key], "runs": runs,
            "import_seconds": statistics.median(r["import_seconds"] for r in runs),
            "wall_seconds": statistics.median(r["process_seconds"] for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "torch": any(r["torch"] for r in runs)}


def run(args) -> dict:
    from ganmetrics.store.hashing import sha256_of_file  # no torch

    ctx = context_of(args)
    a, b = stats_files(ctx.runner, ctx.out / "stats", meta=True, weights_sha256=sha256_of_file(ctx.weights))
    commands = {"version": ["--version"], "fid_stats": ["fid", a, b, "--weights", ctx.weights, "--quiet"]}
    rows = {key: _measure(ctx, key, command, args.startup_repeats) for key, command in commands.items()}
    result = {"rows": rows, "targets": []}
    version = rows["version"]
    if "import_seconds" in version:
        result["targets"].append(("start-up: `ganmetrics --version` imports in ≤ 1 s",
                                  f"{version['import_seconds']:.2f} s of imports, {version['wall_seconds']:.2f} s "
                                  f"in all (median of {len(version['runs'])} processes)", version["import_seconds"] <= 1.0))
    return result


def render(result: dict) -> list[str]:
    rows = [[f"`{r['label']}`", r["error"], "", "", ""] if "error" in r else
            [f"`{r['label']}`", f"{r['import_seconds']:.2f}", f"{r['wall_seconds']:.2f}", fmt(r["peak_rss_mib"], 0),
             "yes" if r["torch"] else "no"] for r in result["rows"].values()]
    return ["", "Start-up (fresh processes, median of each; imports: every module the process imported, from "
            "`python -X importtime`):", "",
            *table(["command", "imports s", "wall s (whole process)", "peak RSS MiB", "torch imported"], "lrrrl", rows)]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
