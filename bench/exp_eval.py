"""``ganmetrics eval A B --metrics fid,is,kid`` against torch-fidelity's
``calculate_metrics(fid=True, isc=True, kid=True)`` on each size set (``tools.EVAL_TOOLS``: the
call's time, memory and values), and the KID step alone on random float32 2048-d features of
the same counts (``tools.KID_STEPS``). Parts: ``eval`` and ``kid``.

Folder B is the generated side (IS, and KID's first indices: torch-fidelity's ``input1``), A the
reference, resize tf, uncached. KID's subset size is min(1000, the smaller side), IS's splits
min(10, the generated side), ``--kid-subsets`` and seed 2020, the same for both tools. FID and
KID are compared; IS is only reported: torch-fidelity shuffles the images before its splits,
ganmetrics splits them in order.

    python bench/exp_eval.py --n-small 400 --n-large 100 --kid-subsets 20
"""

import sys

from context import context_of
from data import SETS
from measure import repeat_timed, rounds, timed, torch_setup
from report import all_seconds, fmt, fmt_rel, notes, rel, table
from tools import EVAL_REFERENCE, EVAL_TOOLS, KID_STEPS, EvalSettings, Inputs

NAME = "eval"
PARTS = ("eval", "kid")
KID_MAX_SUBSET = 1000  # KID subset size: min(this, the smaller side), the same for both tools
BANK_BYTES = 4 * 2048  # one image's float32 pool3 features in a KID feature bank


def add_arguments(p) -> None:
    p.add_argument("--kid-subsets", type=int, default=100,
                   help="KID subsets for the eval rows and the KID step, both tools (default 100, both tools' default)")
    p.add_argument("--kid-repeats", type=int, default=3, help="repeats of each KID-step timing; the median counts (default 3)")


def work_eval(job) -> dict:
    """FID + IS + KID between folders A and B in one call (``tools.EVAL_TOOLS``), timed alone."""
    torch = torch_setup(job)
    settings = EvalSettings(job["kid_subsets"], job["kid_subset_size"], job["is_splits"])
    call = EVAL_TOOLS[job["tool"]][1](Inputs.of_job(job), settings)
    values, timing = timed(torch, job["device"], call)
    return {"values": values, "kid_subsets": settings.kid_subsets, "kid_subset_size": settings.kid_subset_size,
            "is_splits": settings.is_splits, **timing}


def work_kid_step(job) -> dict:
    """KID alone from random float32 2048-d features (n_gen and n_ref rows): each tool of
    ``tools.KID_STEPS`` on the same arrays, median of ``repeats`` timed calls each (after the
    imports)."""
    import numpy as np

    torch = torch_setup(job)
    rng = np.random.default_rng([job["seed"], 2048])
    # Non-negative like pool3 features, and apart, so KID is far from 0 and a relative difference means something.
    generated = rng.random((job["n_gen"], 2048), dtype=np.float32)
    reference = rng.random((job["n_ref"], 2048), dtype=np.float32) * np.float32(1.1) + np.float32(0.05)
    settings = EvalSettings(job["kid_subsets"], job["kid_subset_size"])
    out = {"torch_threads": torch.get_num_threads()}
    for name, (_, prepare) in KID_STEPS.items():
        kid = prepare(settings, job["device"])
        timing = repeat_timed(torch, job["device"], lambda: kid(generated, reference), job["repeats"])
        out[name] = {"seconds": timing["seconds"], "all_seconds": timing["all_seconds"], "kid": timing["value"][0],
                     "kid_std": timing["value"][1]}
    return out


def run(args) -> dict:
    ctx = context_of(args)
    counts = {s: ctx.counts(s) for s in SETS}  # (A: reference, B: generated)
    subset_size = {s: min(KID_MAX_SUBSET, *counts[s]) for s in SETS}
    result = {"sets": ctx.set_sizes(), "dims": args.dims, "kid_subsets": args.kid_subsets,
              "kid_repeats": args.kid_repeats}
    if "eval" not in args.skip:
        def job_of(tool, set_name, round_index):
            a, b = ctx.folders[set_name]
            return (f"eval_{tool}_{set_name}_r{round_index}", work_eval,
                    ctx.base(tool=tool, a=str(a), b=str(b), kid_subsets=args.kid_subsets,
                             kid_subset_size=subset_size[set_name], is_splits=min(10, counts[set_name][1])))

        result["rows"] = rounds(ctx.runner, args.rounds, list(EVAL_TOOLS), SETS, job_of)
        result["compared"] = compare(result["rows"])
    if "kid" not in args.skip:
        result["kid_step"] = {}
        for set_name in SETS:
            n_ref, n_gen = counts[set_name]
            r = ctx.runner.job(f"kid_step_{set_name}", work_kid_step,
                               ctx.base(n_gen=n_gen, n_ref=n_ref, kid_subsets=args.kid_subsets,
                                        kid_subset_size=subset_size[set_name], repeats=args.kid_repeats, seed=args.seed))
            result["kid_step"]["torch_threads"] = r.get("torch_threads")
            result["kid_step"][set_name] = dict(r, n_gen=n_gen, n_ref=n_ref, kid_subset_size=subset_size[set_name])
    return result


def compare(rows: dict) -> dict:
    """Per set: each other eval tool's speed-up of ganmetrics and the values' relative
    differences from ganmetrics' (FID, KID mean and std; IS mean only as reported)."""
    out = {}
    for set_name in SETS:
        ours = rows.get(f"{EVAL_REFERENCE}/{set_name}")
        if not (ours and "values" in ours):
            continue
        for tool in EVAL_TOOLS:
            other = rows.get(f"{tool}/{set_name}")
            if tool == EVAL_REFERENCE or not (other and "values" in other):
                continue
            out[f"{tool}/{set_name}"] = {
                "speedup": other["seconds"] / ours["seconds"],
                "rel": {k: rel(other["values"][k], ours["values"][k]) for k in ("fid", "kid", "kid_std", "is_mean")},
            }
    return out


def _eval_row(result: dict, tool: str, set_name: str) -> list:
    info, r = result["sets"][set_name], result["rows"][f"{tool}/{set_name}"]
    label = f"{tool} · {SETS[set_name]}"
    if "values" not in r:
        return [label, info["images"], *["–"] * 10, r.get("error", "–")]
    v, d = r["values"], result["compared"].get(f"{tool}/{set_name}")
    compared = ["(reference)"] * 2 if tool == EVAL_REFERENCE else [fmt_rel(d["rel"][k]) if d else "–" for k in ("fid", "kid")]
    return [label, info["images"], f"{fmt(r['seconds'])}{all_seconds(r)}", fmt(info["images"] / r["seconds"], 2),
            fmt(r.get("cpu_seconds")), fmt(r["peak_rss_mib"], 0), fmt(r["peak_pss_mib"], 0), f"{v['fid']:.6g}",
            f"{v['is_mean']:.6g}", f"{v['kid']:.6g}", r["kid_subset_size"], *compared]


def _eval_table(result: dict) -> list[str]:
    rows = [_eval_row(result, t, s) for s in SETS for t in EVAL_TOOLS if f"{t}/{s}" in result["rows"]]
    speedups = [f"{SETS[key.split('/')[1]]}: {d['speedup']:.2f}x vs {key.split('/')[0]}" for key, d in result["compared"].items()]
    return ["", f"`ganmetrics eval A B --metrics fid,is,kid` vs torch-fidelity (resize tf, dims {result['dims']}; KID "
            f"{result['kid_subsets']} subsets, seed 2020; B generated, A reference; the call only):", "",
            *table(["tool · set", "images", "eval call s", "images/s", "CPU s", "peak RSS MiB", "peak tree PSS MiB", "FID",
                    "IS mean (reported)", "KID mean", "KID subset size", "FID vs ganmetrics", "KID vs ganmetrics"],
                   "l" + "r" * 12, rows),
            *([f"\nganmetrics eval speed-up (eval call s of the other / ours): {', '.join(speedups)}."] if speedups else []),
            "", notes("Eval tools", ((name, note) for name, (note, _) in EVAL_TOOLS.items()))]


def _kid_row(set_name: str, r: dict, subsets: int) -> list:
    sizes = f"{r['n_gen']} / {r['n_ref']}"
    banks = f"{r['n_gen'] * BANK_BYTES / 2**20:.2f} + {r['n_ref'] * BANK_BYTES / 2**20:.2f}"
    if "error" in r:
        return [SETS[set_name], sizes, "", banks, r["error"], "", "", "", "", ""]
    g, t = r["ganmetrics"], r["torch-fidelity"]
    return [SETS[set_name], sizes, f"{subsets} x {r['kid_subset_size']}", banks, f"{g['seconds']:.3f}",
            f"{t['seconds']:.3f}", f"{t['seconds'] / g['seconds']:.2f}x", f"{g['kid']:.6g}", f"{t['kid']:.6g}",
            fmt_rel(rel(t["kid"], g["kid"]))]


def _kid_table(result: dict) -> list[str]:
    steps = result["kid_step"]
    rows = [_kid_row(s, steps[s], result["kid_subsets"]) for s in SETS]
    return ["", f"KID step alone: random float32 2048-d features of the eval rows' counts, median of "
            f"{result['kid_repeats']} runs, {steps.get('torch_threads', '–')} torch threads:", "",
            *table(["set", "N generated / reference", "subsets x size", "feature banks MiB (gen + ref)",
                    "ganmetrics s", "torch-fidelity s", "speed-up", "KID ganmetrics", "KID torch-fidelity", "rel. diff"],
                   "l" + "r" * 9, rows),
            "", notes("KID steps", ((name, note) for name, (note, _) in KID_STEPS.items()))]


def render(result: dict) -> list[str]:
    return (_eval_table(result) if "rows" in result else []) + (_kid_table(result) if "kid_step" in result else [])


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
