"""ganmetrics alone (resize tf) on the 32px PNG set for torch threads (1, 2) x decoding workers
(0, 1, 2): which settings suit this machine. Not part of ``make bench``; run it alone:

    python bench/exp_sweep.py --n-small 200 --n-large 50
"""

import sys

from context import context_of
from exp_tools import work_tool
from report import fmt, table

NAME = "sweep"
CONFIGS = [(threads, workers) for threads in (1, 2) for workers in (0, 1, 2)]
"""(torch threads, decoding workers) measured."""


def run(args) -> dict:
    ctx = context_of(args)
    a, b = ctx.folders["small"]
    rows = []
    for threads, workers in CONFIGS:
        job = ctx.base(tool="ganmetrics-tf", a=str(a), b=str(b), threads=threads, workers=workers)
        rows.append([threads, workers, ctx.runner.job(f"sweep_t{threads}_w{workers}", work_tool, job)])
    return {"rows": rows, "images": sum(ctx.counts("small")), "dims": args.dims, "batch_size": args.batch_size,
            "device": args.device}


def render(result: dict) -> list[str]:
    n = result["images"]
    rows = [[t, w, r["error"], "", "", ""] if "error" in r else
            [t, w, f"{r['seconds']:.1f}", f"{n / r['seconds']:.2f}", fmt(r.get("cpu_seconds")), f"{r['value']:.6g}"]
            for t, w, r in result["rows"]]
    return ["", f"Threads sweep: ganmetrics `--resize tf` on {n} 32px PNGs, dims {result['dims']}, batch "
            f"{result['batch_size']}, device {result['device']}:", "",
            *table(["torch threads", "decoding workers", "FID call s", "images/s", "CPU s", "FID"], "rrrrrr", rows)]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
