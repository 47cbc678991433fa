"""Memory against the image count: peak RSS of ``ganmetrics stats`` on 1x and 4x the images
(32px PNGs, ``--rss-n`` and four times as many), each run in its own process.

A peak is a maximum, and with one part per core in flight a single run's peak moves by about 5%
with how the batches' largest layers happen to coincide: each size runs ``--rss-repeats`` times,
interleaved (so that a slow spell of the machine hits both), and its highest peak counts.

    python bench/exp_rss.py --rss-n 100
"""

import sys

from context import context_of
from data import make_rss_folders
from report import fmt, table

NAME = "rss"


def add_arguments(p) -> None:
    p.add_argument("--rss-n", type=int, default=500, help="images for the 1x `ganmetrics stats` memory run (4x: 4 times as many)")
    p.add_argument("--rss-repeats", type=int, default=2, help="runs of each memory measurement; the highest peak counts (default 2)")


def _stats_command(ctx, folder, label: str) -> list[str]:
    a = ctx.args
    return [sys.executable, "-c", "from ganmetrics.cli import main; main()", "stats", str(folder),
            "-o", str(ctx.out / "stats" / f"rss_{label}.npz"), "--weights", ctx.weights, "--dims", str(a.dims),
            "--batch-size", str(a.batch_size), "--device", a.device, "--workers", str(ctx.machine["workers"]), "--quiet"]


def run(args) -> dict:
    ctx = context_of(args)
    one, four = make_rss_folders(ctx.out / "data", args.rss_n, args.seed)
    (ctx.out / "stats").mkdir(parents=True, exist_ok=True)
    sizes = {"1x": {"images": args.rss_n, "runs": []}, "4x": {"images": 4 * args.rss_n, "runs": []}}
    for run_index in range(args.rss_repeats):  # interleaved, so a slow spell of the machine hits both
        for label, folder in (("1x", one), ("4x", four)):
            sizes[label]["runs"].append(ctx.runner.command(f"stats_{label}_{run_index}", _stats_command(ctx, folder, label)))
    result = {"sizes": sizes, "targets": []}
    if all(r["runs"] and all("error" not in run for run in r["runs"]) for r in sizes.values()):
        peaks = {label: max(run["peak_rss_mib"] for run in r["runs"]) for label, r in sizes.items()}
        result["ratio"] = peaks["4x"] / peaks["1x"]
        result["targets"].append(("peak RSS of `ganmetrics stats` on 4x images within 10% of 1x",
                                  f"{result['ratio']:.3f}x (highest of {args.rss_repeats} runs each: "
                                  f"{fmt(peaks['1x'])} → {fmt(peaks['4x'])} MiB)", result["ratio"] <= 1.10))
    return result


def render(result: dict) -> list[str]:
    rows = []
    for label, r in result["sizes"].items():
        for number, run in enumerate(r["runs"], 1):
            size = f"{r['images']} ({label}, run {number})"
            rows.append([size, run["error"], "", ""] if "error" in run else
                        [size, fmt(run["process_seconds"]), fmt(run["peak_rss_mib"], 0), fmt(run["peak_pss_mib"], 0)])
    lines = ["", "`ganmetrics stats` memory, 32px PNGs, separate processes:", "",
             *table(["images", "seconds", "peak RSS MiB", "peak tree PSS MiB"], "rrrr", rows)]
    if "ratio" in result:
        lines.append(f"\nRatio 4x / 1x of the highest peak RSS of each size: {result['ratio']:.3f}.")
    return lines


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
