"""The k-NN steps alone: precision/recall and density/coverage from clustered random float32
2048-d features (``tools.NEIGHBOUR_STEPS``: ganmetrics' exact and adm variants against
torch-fidelity's ``prc_features_to_metric``; ganmetrics' streamed D/C against prdc), each tool in
its own process, on each size set's counts and on ``--pr-sizes`` N vs N. Each row: the median
of ``--pr-repeats`` calls, and the step's own peak memory (the process's peak RSS over its RSS
before the first call, the features already made). Parts: ``pr`` and ``dc``.

    python bench/exp_neighbours.py --pr-sizes 10000
"""

import resource
import sys

from context import context_of
from data import SETS
from measure import repeat_timed, torch_setup
from report import fmt, notes, table
from tools import NEIGHBOUR_STEPS, Skip

NAME = "neighbours"
PARTS = tuple(NEIGHBOUR_STEPS)


def add_arguments(p) -> None:
    p.add_argument("--pr-sizes", type=lambda text: [int(n) for n in text.split(",") if n], default=[],
                   help="comma-separated N: also run the P/R and D/C steps on N vs N random features (e.g. 10000,50000)")
    p.add_argument("--pr-repeats", type=int, default=3,
                   help="repeats of each P/R- and D/C-step timing; the median counts (default 3)")


def clustered_features(n_gen: int, n_ref: int, seed: int):
    """Random float32 2048-d (generated, reference) features for the k-NN steps: 64 uniform
    cluster centres, the reference drawn around the first 48, the generated around the last
    48, so k-NN balls overlap in part and precision, recall and coverage are neither 0 nor 1."""
    import numpy as np

    rng = np.random.default_rng([seed, 2048, 3])
    centres = rng.random((64, 2048), dtype=np.float32)

    def around(n: int, first: int):
        spread = rng.random((n, 2048), dtype=np.float32) * np.float32(0.6)
        return centres[rng.integers(first, first + 48, n)] + spread

    return around(n_gen, 16), around(n_ref, 0)


def work_neighbour_step(job) -> dict:
    """One tool of one k-NN step (``tools.NEIGHBOUR_STEPS[job["step"]]``) on ``clustered_features``
    (n_gen and n_ref rows), alone in this process: median of ``repeats`` timed calls, and the
    step's own peak memory (this process's peak RSS over its RSS before the first call)."""
    torch = torch_setup(job)
    step = NEIGHBOUR_STEPS[job["step"]]
    generated, reference = clustered_features(job["n_gen"], job["n_ref"], job["seed"])
    call = step.tools[job["tool"]][1](step.k, job["device"], job["batch_size"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        timing = repeat_timed(torch, job["device"], lambda: call(generated, reference), job["repeats"])
    except Skip as skip:
        return {"error": f"skipped: {skip}"}
    step_peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"seconds": timing["seconds"], "all_seconds": timing["all_seconds"],
            "values": [float(v) for v in timing["value"]], "step_peak_mib": step_peak, "rss_before_mib": before / 1024,
            "torch_threads": torch.get_num_threads()}


def run(args) -> dict:
    ctx = context_of(args)
    sizes = {s: tuple(reversed(ctx.counts(s))) for s in SETS}  # (B: generated, A: reference)
    sizes.update({f"{n} vs {n}": (n, n) for n in args.pr_sizes})
    steps = {}
    for name, step in NEIGHBOUR_STEPS.items():
        if name in args.skip:
            continue
        rows = steps[name] = {}
        for label, (n_gen, n_ref) in sizes.items():
            for tool in step.tools:
                job = ctx.base(step=name, tool=tool, n_gen=n_gen, n_ref=n_ref, repeats=args.pr_repeats, seed=args.seed)
                rows[f"{tool}/{label}"] = dict(ctx.runner.job(f"{name}_step_{tool}_{label.replace(' ', '_')}",
                                                              work_neighbour_step, job), n_gen=n_gen, n_ref=n_ref)
    return {"steps": steps, "repeats": args.pr_repeats}


def _row(rows: dict, key: str, ours: str) -> list:
    r, (tool, label) = rows[key], key.split("/", 1)
    sizes = f"{r['n_gen']} / {r['n_ref']}" + (f" ({SETS[label]})" if label in SETS else "")
    if "error" in r:
        return [sizes, tool, r["error"], "", "", "", "", "", ""]
    reference = rows.get(f"{ours}/{label}", {})
    speedup = f"{r['seconds'] / reference['seconds']:.2f}x" if tool != ours and "seconds" in reference else ""
    # torch-fidelity reports float32 fractions: a difference below 1e-6 is the same count.
    same = ("(reference)" if tool == ours else "–" if "values" not in reference else
            ", ".join("equal" if abs(v) < 1e-6 else f"{v:+.2g}"
                      for v in (x - y for x, y in zip(r["values"], reference["values"]))))
    return [sizes, tool, f"{r['seconds']:.3f}", speedup, fmt(r["step_peak_mib"]), fmt(r["peak_rss_mib"]),
            f"{r['values'][0]:.6g}", f"{r['values'][1]:.6g}", same]


def render(result: dict) -> list[str]:
    lines = []
    for name, rows in result["steps"].items():
        step = NEIGHBOUR_STEPS[name]
        ours, (first, second) = next(iter(step.tools)), step.values
        lines += ["", f"{name.upper()} step alone (k = {step.k}): clustered random float32 2048-d features, median of "
                  f"{result['repeats']} runs, each tool in its own process; step peak = the peak RSS over the RSS "
                  "before the first call:", "",
                  *table(["N generated / reference", "tool", "s", f"speed-up of {ours}", "step peak MiB", "peak RSS MiB",
                          first, second, f"vs {ours}"], "llrrrrrrl", [_row(rows, key, ours) for key in rows]),
                  "", notes("Tools", ((tool, note) for tool, (note, _) in step.tools.items()))]
    return lines


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
