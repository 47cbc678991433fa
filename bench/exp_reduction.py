"""FID from two statistics files: ganmetrics' ``frechet_distance`` against pytorch-fid's
``calculate_frechet_distance`` (scipy ``sqrtm``), load + reduce, on two synthetic 2048-d
full-rank statistics files; with BLAS's default threads and with one.

    python bench/exp_reduction.py
"""

import statistics
import sys
import time

from context import context_of
from data import stats_files
from report import fmt_rel, rel, table

NAME = "reduction"
THREADS = {"default": {}, "1 (OPENBLAS_NUM_THREADS=1)": {"OPENBLAS_NUM_THREADS": "1"}}
"""The BLAS thread settings measured: {label: environment}."""


def add_arguments(p) -> None:
    p.add_argument("--fid-repeats", type=int, default=3, help="repeats of each FID-from-statistics timing (default 3)")


def work_reduction(job) -> dict:
    """FID from two 2048-d statistics files: ganmetrics vs pytorch-fid (scipy sqrtm)."""
    import numpy as np
    from pytorch_fid.fid_score import calculate_frechet_distance

    from ganmetrics.metrics.fid import frechet_distance

    def load():
        (f1, f2) = (np.load(f) for f in job["stats_files"])
        return f1["mu"], f1["sigma"], f2["mu"], f2["sigma"]

    out = {}
    for name, function in (("ganmetrics", frechet_distance), ("pytorch-fid", calculate_frechet_distance)):
        times, value = [], None
        for _ in range(job["repeats"]):
            start = time.perf_counter()
            mu1, s1, mu2, s2 = load()
            value = float(function(mu1, s1, mu2, s2))
            times.append(time.perf_counter() - start)
        out[name] = {"seconds": statistics.median(times), "all_seconds": times, "value": value}
    return out


def run(args) -> dict:
    ctx = context_of(args)
    files = stats_files(ctx.runner, ctx.out / "stats")
    rows = {}
    for label, extra in THREADS.items():
        ctx.runner.env = dict(ctx.env, **extra)
        rows[label] = ctx.runner.job("reduction", work_reduction, ctx.base(stats_files=files, repeats=args.fid_repeats))
    ctx.runner.env = ctx.env
    result = {"rows": rows, "repeats": args.fid_repeats, "targets": []}
    default = rows["default"]
    if "ganmetrics" in default:
        speedup = default["pytorch-fid"]["seconds"] / default["ganmetrics"]["seconds"]
        result["targets"].append(("FID from statistics ≥ 10x faster than scipy sqrtm",
                                  f"{speedup:.2f}x (default BLAS threads)", speedup >= 10))
    return result


def render(result: dict) -> list[str]:
    rows = []
    for label, r in result["rows"].items():
        if "error" in r:
            rows.append([label, r["error"], "", "", "", "", ""])
            continue
        g, p = r["ganmetrics"], r["pytorch-fid"]
        rows.append([label, f"{g['seconds']:.2f}", f"{p['seconds']:.2f}", f"{p['seconds'] / g['seconds']:.2f}x",
                     f"{g['value']:.6f}", f"{p['value']:.6f}", fmt_rel(rel(p["value"], g["value"]))])
    return ["", f"FID from two 2048-d statistics files (synthetic full-rank covariances; load + reduce, median of "
            f"{result['repeats']}):", "",
            *table(["BLAS threads", "ganmetrics `frechet_distance` s",
                    "pytorch-fid `calculate_frechet_distance` (scipy sqrtm) s", "speed-up", "FID ganmetrics",
                    "FID pytorch-fid", "rel. diff"], "lrrrrrr", rows)]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
