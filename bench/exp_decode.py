"""Decoding alone: every image of both size sets read by ganmetrics' own reader
(``open_source(folder).read(i)``), in one process, as the machine is.

    python bench/exp_decode.py --n-small 400 --n-large 100
"""

import sys
import time

from context import context_of
from data import SETS
from report import fmt, table

NAME = "decode"


def work_decode(job) -> dict:
    """Decoding alone, in this one process, with ganmetrics' own reader."""
    from ganmetrics.sources import open_source

    out = {}
    for set_name, folders in job["folders"].items():
        count, start = 0, time.perf_counter()
        for folder in folders:
            source = open_source(folder)
            for i in range(len(source)):
                source.read(i)
                count += 1
        out[set_name] = {"images_per_s": count / (time.perf_counter() - start), "images": count}
    return out


def rates(args) -> dict:
    """{set: {"images_per_s", "images"}} ({"error"} where the job failed), measured once a run."""
    ctx = context_of(args)

    def measure():
        folders = {s: [str(f) for f in ctx.folders[s]] for s in SETS}
        r = ctx.runner.job("decode", work_decode, ctx.base(folders=folders))
        return {"error": r["error"]} if "error" in r else {s: r[s] for s in SETS}
    return ctx.once("decode", measure)


def run(args) -> dict:
    sets = rates(args)
    if "error" in sets:
        raise RuntimeError(sets["error"])
    return {"sets": sets}


def render(result: dict) -> list[str]:
    rows = [[SETS[s], r["images"], fmt(r["images_per_s"], 0)] for s, r in result["sets"].items()]
    return ["", "Decoding alone (ganmetrics' reader, 1 process):", "", *table(["set", "images", "images/s"], "lrr", rows)]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
