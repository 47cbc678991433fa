"""What knowing how sure the number is costs: ``ganmetrics eval A B --metrics fid`` against the
same with ``--ci B`` (``--ci-replicates``) and with ``--metrics fid,fid_inf``
(``tools.INTERVAL_RUNS``) on each size set: the extra call time, time a replicate and peak
memory over the plain run. Chong & Forsyth's smallest sample is 5,000 images, more than these
sets hold: FID∞ runs from ``--inf-min`` (default a fifth of B).

    python bench/exp_interval.py --n-small 400 --n-large 100 --ci-replicates 20
"""

import sys

from context import context_of
from data import SETS
from measure import rounds, timed, torch_setup
from report import fmt, notes, table
from tools import INTERVAL_REFERENCE, INTERVAL_RUNS, Inputs, IntervalSettings

NAME = "interval"


def add_arguments(p) -> None:
    p.add_argument("--ci-replicates", type=int, default=100, help="B of the --ci row (default 100)")
    p.add_argument("--inf-min", type=int, default=None,
                   help="--inf-min of the fid_inf row (default: a fifth of the set's B folder; the paper's 5000 "
                        "needs more images than these sets hold)")


def work_interval(job) -> dict:
    """One row of ``tools.INTERVAL_RUNS`` between folders A and B, timed alone; its results."""
    torch = torch_setup(job)
    call = INTERVAL_RUNS[job["run"]][1](Inputs.of_job(job), IntervalSettings(job["replicates"], job["inf_min"]))
    values, timing = timed(torch, job["device"], call)
    return {"values": values, **timing, "inf_min": job["inf_min"]}


def run(args) -> dict:
    ctx = context_of(args)
    inf_min = {s: args.inf_min or max(2, ctx.counts(s)[1] // 5) for s in SETS}

    def job_of(name, set_name, round_index):
        a, b = ctx.folders[set_name]
        return (f"interval_{name.replace(' ', '').replace(',', '_')}_{set_name}_r{round_index}", work_interval,
                ctx.base(run=name, a=str(a), b=str(b), replicates=args.ci_replicates, inf_min=inf_min[set_name]))

    rows = rounds(ctx.runner, args.rounds, list(INTERVAL_RUNS), SETS, job_of, rotate=False)
    return {"rows": rows, "sets": ctx.set_sizes(), "replicates": args.ci_replicates, "dims": args.dims}


def _row(result: dict, name: str, set_name: str) -> list:
    info, r = result["sets"][set_name], result["rows"][f"{name}/{set_name}"]
    plain = result["rows"].get(f"{INTERVAL_REFERENCE}/{set_name}") or {}
    label = f"{name} · {SETS[set_name]}"
    if "values" not in r:
        return [label, info["images"], *["–"] * 7, r.get("error", "–")]
    v, extra_of = r["values"], "values" in plain and name != INTERVAL_REFERENCE
    extra = r["seconds"] - plain["seconds"] if extra_of else None
    per_replicate = extra / result["replicates"] if extra is not None and "fid_ci_low" in v else None
    memory = r["peak_rss_mib"] - plain["peak_rss_mib"] if extra_of else None
    sure = (f"[{v['fid_ci_low']:.4g}, {v['fid_ci_high']:.4g}]" if "fid_ci_low" in v else
            f"{v['fid_inf']:.4g} ± {v['fid_inf_se']:.2g} (M = {r['inf_min']})" if "fid_inf" in v else "–")
    return [label, info["images"], fmt(r["seconds"]), fmt(extra), fmt(per_replicate, 2), fmt(r.get("cpu_seconds")),
            fmt(r["peak_rss_mib"], 0), fmt(memory, 0), f"{v['fid']:.6g}", sure]


def render(result: dict) -> list[str]:
    rows = [_row(result, name, s) for s in SETS for name in INTERVAL_RUNS if f"{name}/{s}" in result["rows"]]
    return ["", f"What `--ci {result['replicates']}` and `fid_inf` add to a plain FID run (dims {result['dims']}, the "
            "call only; extra: over the plain run of the same set):", "",
            *table(["run · set", "images", "call s", "extra s", "extra s a replicate", "CPU s", "peak RSS MiB",
                    "extra RSS MiB", "FID", "interval or FID∞ ± s.e."], "l" + "r" * 9, rows),
            "", notes("Runs", ((name, note) for name, (note, _) in INTERVAL_RUNS.items()))]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
