"""End-to-end FID against the other tools, per instruction-set level: each tool of
``tools.TOOLS`` on each size set in its own process, the same images, checkpoint and batch size.

The call is timed alone (weights loading, decoding, network, statistics, FID; not the Python
imports), with its CPU time, its peak RSS and its tree's peak PSS (``measure``). Like with like:
ganmetrics ``--resize pytorch`` against pytorch-fid and clean-fid (``legacy_pytorch``),
ganmetrics ``--resize tf`` against torch-fidelity and torchmetrics (``antialias=False``, i.e.
torch-fidelity's TF1 resize). Every tool gets ``--workers`` decoding workers where it takes the
number (torch-fidelity has no such knob).

After each round of the tools the bare network is measured (``exp_bare``): a machine's speed
drifts over minutes, and the rounds pair each call with the bare rate right after it. Parts:
``tools`` (the FID rows) and ``bare``; with ``--skip tools`` the bare network runs alone.

    python bench/exp_tools.py --n-small 400 --n-large 100 --tools ganmetrics-tf,torch-fidelity
"""

import statistics
import sys

import exp_bare
import exp_decode
from context import context_of
from data import SETS
from measure import rounds, timed, torch_setup
from report import all_seconds, fmt, fmt_rel, notes, pct, rel, table
from tools import TOOLS, Inputs, Skip, tool_names

NAME = "tools"
PARTS = ("tools", "bare")
PER_LEVEL = True
EQUAL_RTOL = 1e-4  # "equal values" for the speed-up target: the parity tests' FID tolerance


def add_arguments(p) -> None:
    p.add_argument("--tools", default=None,
                   help=f"comma-separated subset of {','.join(tool_names(cuda=False))} (with --device cuda also "
                        f"{','.join(sorted(set(tool_names(cuda=True)) - set(tool_names(cuda=False))))}; default all)")
    exp_bare.add_arguments(p)


def selected(args) -> list[str]:
    known = tool_names(cuda=args.device.startswith("cuda"))
    return [t.strip() for t in (args.tools or ",".join(known)).split(",") if t.strip()]


def check(args) -> None:
    known = tool_names(cuda=args.device.startswith("cuda"))
    unknown = sorted(set(selected(args)) - set(known))
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown} for --device {args.device}: choose from {', '.join(known)}")


def work_tool(job) -> dict:
    """One tool's FID between folders A and B (its adapter in ``tools.TOOLS``); times the call
    only (after the imports and patches)."""
    torch = torch_setup(job)
    try:
        call = TOOLS[job["tool"]].prepare(Inputs.of_job(job))
    except Skip as skip:
        return {"skipped": str(skip)}
    value, timing = timed(torch, job["device"], lambda: float(call()))
    return {"value": value, **timing}


def run(args) -> dict:
    ctx = context_of(args)
    tools, bare_runs, rows = selected(args), [], {}
    measure_bare = "bare" not in args.skip
    if "tools" not in args.skip:
        def job_of(tool, set_name, round_index):
            a, b = ctx.folders[set_name]
            return f"{tool}_{set_name}{ctx.tag}_r{round_index}", work_tool, ctx.base(tool=tool, a=str(a), b=str(b))

        def bare_after(round_index):
            # The bare rate right after each round: a machine whose speed drifts over minutes
            # moves both, and the rounds pair them (exp_bare.paired_fractions).
            bare_runs.append(exp_bare.measure(ctx, f"bare{ctx.tag}_r{round_index}"))

        rows = rounds(ctx.runner, args.rounds, tools, SETS, job_of, after_round=bare_after if measure_bare else None)
    elif measure_bare:
        bare_runs.append(exp_bare.measure(ctx, f"bare{ctx.tag}"))
    result = {"isa": ctx.level["isa"]["isa"], "tools": tools, "sets": ctx.set_sizes(), "rows": rows,
              "device": args.device, "batch_size": args.batch_size, "dims": args.dims, "rounds": args.rounds,
              "bare_batches": args.bare_batches, "workers": ctx.machine["workers"]}
    if bare_runs:
        result["bare"] = exp_bare.combine(bare_runs)
    result["per_set"] = summarize(result)
    decode = exp_decode.rates(args) if args.device.startswith("cuda") and "decode" not in args.skip else {}
    result["targets"] = targets(result, decode)
    return result


def _ok(row) -> bool:
    return bool(row) and "value" in row


def _speed(result: dict, tool: str, set_names: list) -> float | None:
    parts = [result["rows"].get(f"{tool}/{s}") for s in set_names]
    if not all(_ok(p) for p in parts):
        return None
    return sum(result["sets"][s]["images"] for s in set_names) / sum(p["seconds"] for p in parts)


def _fastest_other(result: dict, speeds: dict, set_names: list) -> dict:
    """The fastest other tool, ganmetrics' like-for-like speed-up over it, and whether their
    values are equal (within ``EQUAL_RTOL``) on every set."""
    others = {t: v for t, v in speeds.items() if not TOOLS[t].ours and v}
    if not others:
        return {}
    rows, fastest = result["rows"], max(others, key=others.get)
    ours = TOOLS[fastest].reference
    equal = all(_ok(rows.get(f"{fastest}/{s}")) and _ok(rows.get(f"{ours}/{s}"))
                and abs(rel(rows[f"{fastest}/{s}"]["value"], rows[f"{ours}/{s}"]["value"])) <= EQUAL_RTOL
                for s in set_names)
    return {"fastest": fastest, "ours": ours, "equal": equal,
            "speedup": (speeds[ours] / others[fastest]) if speeds.get(ours) else None}


def _bare_fractions(result: dict, speeds: dict, set_names: list) -> dict:
    """The bare rates over ``set_names`` and ganmetrics-tf's fractions of ganmetrics' bare rate."""
    bare, sets = result["bare"], result["sets"]
    per_round = bare.get("per_round") or []
    calls = {s: result["rows"].get(f"ganmetrics-tf/{s}") for s in set_names}
    rates = {s: exp_bare.round_rates(per_round, s, result["batch_size"]) for s in set_names}

    def bare_speed(network):
        return sum(sets[s]["images"] for s in set_names) / sum(
            sets[s]["images"] / bare[s][network]["images_per_s"] for s in set_names)

    return {"bare": bare_speed("ganmetrics"), "bare_plain": bare_speed("plain"),
            "fraction": speeds["ganmetrics-tf"] / bare_speed("ganmetrics"),
            "paired": exp_bare.paired_fractions(calls, per_round, sets, set_names),
            "median": exp_bare.median_fraction(calls, rates, sets, set_names),
            "bare_spread": {s: (min(r), max(r)) for s, r in rates.items() if r},
            "cpu_fraction": exp_bare.cpu_fraction(calls, bare, sets, set_names, result["device"])}


def _peaks(result: dict, set_names: list) -> dict:
    """The highest peak RSS of ganmetrics' rows and the lowest other tool's highest row."""
    rows = result["rows"]
    peaks = {t: max(rows[f"{t}/{s}"]["peak_rss_mib"] for s in set_names)
             for t in result["tools"] if all(_ok(rows.get(f"{t}/{s}")) for s in set_names)}
    ours = [v for t, v in peaks.items() if TOOLS[t].ours]
    others = {t: v for t, v in peaks.items() if not TOOLS[t].ours}
    if not (ours and others):
        return {}
    lowest = min(others, key=others.get)
    return {"peak_ours": max(ours), "peak_lowest_other": others[lowest], "lowest_other": lowest}


def summarize(result: dict) -> dict:
    """Per set and both sets: each tool's speed (images/s), the fastest other tool and
    ganmetrics' speed-up over it, ganmetrics' fraction of the bare rate, the peaks."""
    per_set = {}
    for group, set_names in {**{s: [s] for s in SETS}, "both": list(SETS)}.items():
        speeds = {t: _speed(result, t, set_names) for t in result["tools"]}
        entry = {"speeds": speeds, **_fastest_other(result, speeds, set_names), **_peaks(result, set_names)}
        if speeds.get("ganmetrics-tf") and all(s in result.get("bare", {}) for s in set_names):
            entry.update(_bare_fractions(result, speeds, set_names))
        per_set[group] = entry
    return per_set


def targets(result: dict, decode: dict) -> list[tuple[str, str, bool]]:
    """The level's targets: the speed-up at equal values, the fraction of the bare rate, the
    peak RSS; on a GPU the 256px JPEG rate (``decode``: ``exp_decode.rates``)."""
    per_set, out = result["per_set"], []
    both = per_set["both"]
    if both.get("speedup"):
        goal = " (goal at AVX-512: ≥ 2x)" if "AVX-512" in result["isa"] else ""
        by_set = ", ".join(f"{SETS[s]}: {per_set[s].get('speedup') or 0:.2f}x vs {per_set[s].get('fastest')}" for s in SETS)
        out.append((f"end to end ≥ 1.5x the fastest other tool, equal values{goal}",
                    f"{both['speedup']:.2f}x vs {both['fastest']} (both sets; {by_set}); values "
                    f"{'equal' if both['equal'] else 'NOT equal'} within {EQUAL_RTOL:g}", both["speedup"] >= 1.5 and both["equal"]))
    if "fraction" in both:
        by_set = ", ".join(f"{SETS[s]}: {per_set[s].get('fraction', 0):.1%}" for s in SETS)
        out.append(("ganmetrics ≥ 90% of the bare network's rate", f"{both['fraction']:.1%} (both sets; {by_set})",
                    both["fraction"] >= 0.9))
    if "peak_ours" in both:
        out.append((f"peak RSS of ganmetrics ≤ the lowest other tool's (batch {result['batch_size']})",
                    f"{fmt(both['peak_ours'], 0)} MiB (highest ganmetrics row) vs {fmt(both['peak_lowest_other'], 0)} "
                    f"MiB ({both['lowest_other']}, the lowest other tool's highest row)",
                    both["peak_ours"] <= both["peak_lowest_other"]))
    large = per_set["large"]
    if result["device"].startswith("cuda") and large["speeds"].get("ganmetrics-tf"):
        speed, workers = large["speeds"]["ganmetrics-tf"], max(result["workers"], 1)
        decoding = (decode.get("large", {}).get("images_per_s") or 0) * workers
        bound = "decoding" if decoding and decoding < large.get("bare", float("inf")) else "the network (compute)"
        out.append(("≥ 2,000 images/s for 256px JPEGs on the GPU at fp32",
                    f"{speed:,.0f} images/s, {large.get('fraction', 0):.0%} of the bare forward rate "
                    f"({fmt(large.get('bare'), 0)} images/s); decoding at most {fmt(decoding, 0)} images/s "
                    f"({workers} workers x the 1-process rate): bound by {bound}", speed >= 2000))
    return out


def _row_cells(result: dict, tool: str, set_name: str) -> list:
    info, r = result["sets"][set_name], result["rows"][f"{tool}/{set_name}"]
    label = f"{tool} · {SETS[set_name]}"
    if "skipped" in r or "error" in r:
        return [label, info["images"], *["–"] * 6, r.get("skipped") or r.get("error")]
    reference = TOOLS[tool].reference
    difference = rel(r["value"], (result["rows"].get(f"{reference}/{set_name}") or {}).get("value"))
    compare = ("(reference)" if reference == tool else
               f"{fmt_rel(difference)} vs {reference}" if difference is not None else "–")
    return [label, info["images"], f"{fmt(r['seconds'])}{all_seconds(r)}", fmt(info["images"] / r["seconds"], 2),
            fmt(r.get("cpu_seconds")), fmt(r["peak_rss_mib"], 0), fmt(r["peak_pss_mib"], 0), f"{r['value']:.6g}", compare]


def _speed_table(result: dict) -> list[str]:
    tools, rows = result["tools"], []
    for group, entry in result["per_set"].items():
        speedup = (f"{entry['speedup']:.2f}x ({entry['ours']} vs {entry['fastest']}"
                   f"{'' if entry['equal'] else '; values differ'})") if entry.get("speedup") else "–"
        rows.append([SETS.get(group, "both sets"), *(fmt(entry["speeds"].get(t), 2) for t in tools),
                     entry.get("fastest", "–"), speedup])
    images = sum(i["images"] for i in result["sets"].values())
    cpu = [[(result["rows"].get(f"{t}/{s}") or {}).get("cpu_seconds") for s in SETS] for t in tools]
    rows.append(["CPU s an image, both sets", *("–" if None in c else f"{sum(c) / images:.3f}" for c in cpu), "", ""])
    return ["", "Speed (images/s of the FID call; both sets = all images / summed seconds):", "",
            *table(["", *tools, "fastest other", "ganmetrics speed-up (like for like)"], "l" + "r" * (len(tools) + 2), rows)]


def _bare_table(result: dict) -> list[str]:
    rows = [[SETS.get(group, "both sets"), fmt(e.get("bare"), 2), fmt(e.get("bare_plain"), 2),
             fmt(e["speeds"].get("ganmetrics-tf"), 2), pct(e.get("fraction")), pct(e.get("cpu_fraction"))]
            for group, e in result["per_set"].items()]
    bare = result.get("bare", {})
    lines = ["", f"Where the time goes (ganmetrics, resize tf; bare network: {exp_bare.NOTE}; measured after each round "
             f"of the tools, fastest of {result['bare_batches']} rounds, {bare.get('torch_threads')} torch threads):", "",
             *table(["", "bare network images/s (ganmetrics)", "bare plain network images/s (the other tools')",
                     "ganmetrics end to end images/s", "fraction of bare", "fraction of bare by CPU seconds"],
                    "lrrrrr", rows)]
    both = result["per_set"]["both"]
    paired = both.get("paired") or []
    if len(paired) > 1:
        median = statistics.median(x for x in paired if x is not None) if any(x is not None for x in paired) else None
        lines.append(f"\nPaired by round (each round's calls against the bare rate right after it, both sets): "
                     f"{', '.join(pct(x) for x in paired)}; median {pct(median)}.")
        if both.get("median") is not None:
            spread = ", ".join(f"{SETS[s]} {low:.2f}-{high:.2f}" for s, (low, high) in both["bare_spread"].items())
            lines.append(f"\nMedians (the median call against the median bare round, both sets): {both['median']:.1%}; "
                         f"the bare rounds' rates spread {spread} images/s.")
    return lines


def render(result: dict) -> list[str]:
    lines = []
    if result["rows"]:
        best = f" (best of {result['rounds']}; all)" if result["rounds"] > 1 else ""
        rows = [_row_cells(result, t, s) for s in SETS for t in result["tools"] if f"{t}/{s}" in result["rows"]]
        lines += ["", f"FID between A and B, dims {result['dims']}, batch {result['batch_size']}, "
                  f"device {result['device']}, decoding workers {result['workers']}:", "",
                  *table(["tool", "images", f"FID call s{best}", "images/s", "CPU s", "peak RSS MiB",
                          "peak tree PSS MiB", "FID", "vs ganmetrics (same resize)"], "lrrrrrrrr", rows)]
        lines += _speed_table(result)
    if "bare" in result:
        lines += _bare_table(result) if result["rows"] else exp_bare.render(result)
    if result["rows"]:
        lines += ["", notes("Tools", ((t, TOOLS[t].note) for t in result["tools"]))]
    return lines


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
