"""The ADM evaluator's suite: ``ganmetrics eval A.npz B.npz --metrics adm`` (IS, FID, sFID,
precision and recall) against torch-fidelity's ``calculate_metrics(fid=True, isc=True,
prc=True)`` (``tools.ADM_TOOLS``) on two ADM batches of ``--n-adm`` 64px images each (``.npz``,
``arr_0`` uint8), and ganmetrics once more on batches of a quarter the size: its peak RSS at
both sizes gives the growth an image and the peak projected to 50,000 a side (an over-estimate:
the P/R distance blocks stop growing at 10,000 images).

    python bench/exp_adm.py --n-adm 400
"""

import sys

from context import context_of
from data import ADM_SIZE, make_adm_batches
from measure import combine_rounds, timed, torch_setup
from report import all_seconds, fmt, fmt_rel, notes, rel, table
from tools import ADM_REFERENCE, ADM_TOOLS, Inputs, Skip

NAME = "adm"
ADM_KEYS = ("is_mean", "fid", "sfid", "precision", "recall")
ADM_MIN_IMAGES = 50  # the smallest ADM batches of the memory row (P/R needs more than k images)
ADM_TARGET_IMAGES, ADM_TARGET_RAM_GIB = 50_000, 24  # the issue: 50k vs 50k on a 24 GB CPU box


def add_arguments(p) -> None:
    p.add_argument("--n-adm", type=int, default=1000,
                   help="64px images in each ADM batch of the `eval --metrics adm` rows (default 1000; the issue's "
                        "figure is 10000)")


def work_adm(job) -> dict:
    """The ADM evaluator's suite between batches A and B (``tools.ADM_TOOLS``), timed alone."""
    torch = torch_setup(job)
    try:
        call = ADM_TOOLS[job["tool"]][1](Inputs.of_job(job))
    except Skip as skip:
        return {"skipped": str(skip)}
    values, timing = timed(torch, job["device"], call)
    return {"values": values, **timing}


def run(args) -> dict:
    ctx = context_of(args)
    a, b = make_adm_batches(ctx.out / "data", args.n_adm, args.seed)
    rows = {tool: combine_rounds([ctx.runner.job(f"adm_{tool}_r{round_index}", work_adm,
                                                 ctx.base(tool=tool, a=str(a), b=str(b), dims=2048))
                                  for round_index in range(args.rounds)])
            for tool in ADM_TOOLS}
    # Memory against the image count: ganmetrics again on batches of a quarter the size.
    quarter = max(ADM_MIN_IMAGES, args.n_adm // 4)
    a, b = make_adm_batches(ctx.out / "data", quarter, args.seed)
    quarter_row = dict(ctx.runner.job("adm_ganmetrics_quarter", work_adm,
                                      ctx.base(tool=ADM_REFERENCE, a=str(a), b=str(b), dims=2048)), images=quarter)
    result = {"rows": rows, "quarter": quarter_row, "n": args.n_adm, "targets": []}
    growth = result["growth"] = adm_growth(result)
    if growth:
        result["targets"].append((
            f"`eval --metrics adm` at {ADM_TARGET_IMAGES:,} vs {ADM_TARGET_IMAGES:,} fits a {ADM_TARGET_RAM_GIB} GB box "
            "(peak RSS projected linearly)",
            f"{growth['projected_gib']:.1f} GiB projected ({fmt(growth['peak_quarter'], 0)} MiB at {growth['quarter']:,}, "
            f"{fmt(growth['peak_n'], 0)} MiB at {growth['n']:,} images a side: {growth['kib_per_image']:.0f} KiB an image)",
            growth["projected_gib"] <= ADM_TARGET_RAM_GIB))
    return result


def adm_growth(result: dict) -> dict | None:
    """Peak RSS of ganmetrics' ADM suite at a quarter and at the whole ``--n-adm``: KiB an image
    of growth, and the peak projected linearly to 50,000 a side (an over-estimate: the distance
    blocks stop growing at 10,000 images)."""
    whole, quarter = result["rows"].get(ADM_REFERENCE, {}), result["quarter"]
    if "peak_rss_mib" not in whole or "peak_rss_mib" not in quarter:
        return None
    n, m = result["n"], quarter["images"]
    if n <= m:
        return None
    per_image = (whole["peak_rss_mib"] - quarter["peak_rss_mib"]) / (n - m)
    projected = whole["peak_rss_mib"] + max(0.0, per_image) * (ADM_TARGET_IMAGES - n)
    return {"n": n, "quarter": m, "peak_n": whole["peak_rss_mib"], "peak_quarter": quarter["peak_rss_mib"],
            "kib_per_image": per_image * 1024, "projected_gib": projected / 1024}


def _row(result: dict, tool: str) -> list:
    r, n = result["rows"].get(tool, {}), result["n"]
    if "values" not in r:
        return [tool, *["–"] * 10, r.get("skipped") or r.get("error", "–")]
    v, ours = r["values"], result["rows"].get(ADM_REFERENCE, {}).get("values")
    compare = "(reference)" if tool == ADM_REFERENCE else (fmt_rel(rel(v["fid"], ours["fid"])) if ours else "–")
    return [tool, f"{fmt(r['seconds'])}{all_seconds(r)}", fmt(2 * n / r["seconds"], 2), fmt(r.get("cpu_seconds")),
            fmt(r["peak_rss_mib"], 0), fmt(r["peak_pss_mib"], 0),
            *(f"{v[k]:.6g}" if k in v else "–" for k in ADM_KEYS), compare]


def render(result: dict) -> list[str]:
    lines = ["", f"`ganmetrics eval A.npz B.npz --metrics adm` vs torch-fidelity on two ADM batches of {result['n']} "
             f"{ADM_SIZE}px images each (resize tf; the call only):", "",
             *table(["tool", "eval call s", "images/s", "CPU s", "peak RSS MiB", "peak tree PSS MiB", "IS (reported)",
                     "FID", "sFID", "precision", "recall", "FID vs ganmetrics"], "l" + "r" * 11,
                    [_row(result, tool) for tool in ADM_TOOLS])]
    growth = result["growth"]
    if growth:
        lines.append(f"\nMemory against the image count (ganmetrics): peak RSS {fmt(growth['peak_quarter'], 0)} MiB at "
                     f"{growth['quarter']:,} images a side, {fmt(growth['peak_n'], 0)} MiB at {growth['n']:,}: "
                     f"{growth['kib_per_image']:.0f} KiB an image.")
    return lines + ["", "IS is reported, not compared (torch-fidelity shuffles before its splits); precision and "
                    "recall differ by design where ganmetrics runs ADM's float16 distances.",
                    "", notes("ADM tools", ((name, note) for name, (note, _) in ADM_TOOLS.items()))]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
