"""The bare network, per instruction-set level: random uint8 batches already on the device
through an ``InceptionExtractor`` (resize tf + forward of the FID tap), no decoding, no files.

Two networks: ganmetrics' as ganmetrics runs it (``forward_batches``; on the CPU in oneDNN's
blocked layout, in parts of ten images, one part per core at once on one thread each; a round
is one batch per core), and the plain PyTorch network as the other tools run it
(``forward_batch``: each whole batch at once on all threads). Each is timed ``--bare-batches``
rounds after one warm-up; the fastest round counts, with its wall and CPU time.

``exp_tools`` measures it after each round of its tools (see there); alone:

    python bench/exp_bare.py --isa native
"""

import statistics
import sys
import time

from context import context_of
from data import SETS
from measure import cpu_seconds, torch_setup
from report import fmt, table

NAME = "bare"
PER_LEVEL = True
NOTE = ("random uint8 batches on the device, resize tf + forward of the FID tap; ganmetrics' network as it "
        "runs it (`forward_batches`: oneDNN blocked layout, parts of ten images, one part per core), the plain one "
        "as the other tools run it (`forward_batch`, the whole batch on all threads)")


def add_arguments(p) -> None:
    p.add_argument("--bare-batches", type=int, default=3,
                   help="timed batches per size for the bare network; the fastest counts (default 3)")


def _networks(torch, job: dict):
    """(ganmetrics' extractor, the plain one, the FID tap, batches a round of ganmetrics' network)."""
    from ganmetrics.engine.runner import concurrent_parts
    from ganmetrics.extractors.inception.extractor import InceptionExtractor, InceptionOptions
    from ganmetrics.extractors.weights import load_weights

    device = torch.device(job["device"])
    options = InceptionOptions(resize=job["resize"], dims=job["dims"])
    ours = InceptionExtractor(options, weights=job["weights"], device=device)
    plain = InceptionExtractor(options, weights=job["weights"], device=device)
    state = load_weights(InceptionExtractor, job["weights"], progress=False).state_dict
    plain.network = InceptionExtractor.build_network(state, device)  # instead of the one built on first use
    plain.cpu_chunk = job["batch_size"]  # the whole batch at once, as the other tools run it
    # Built here, on every thread, as reduce_source builds it: a network first used by a
    # one-thread forward would be built and probed there (see onednn.use_blocked_layout).
    ours.prepare()
    # The FID tap only, as the end-to-end ganmetrics rows compute it (no logits).
    return ours, plain, (ours.feature_of_role("frechet"),), concurrent_parts(device)


def work_bare(job) -> dict:
    """Both networks' fastest round on each set (images/s, CPU seconds an image, every round's seconds)."""
    torch = torch_setup(job)
    from ganmetrics.engine.loader import ImageBatch
    from ganmetrics.engine.runner import Task, forward_batch, forward_batches

    ours, plain, wanted, batches_per_round = _networks(torch, job)
    rounds = {"ganmetrics": lambda batches: list(forward_batches({"i": Task(ours, wanted)}, batches)),
              "plain": lambda batches: [forward_batch({"i": Task(plain, wanted)}, batch) for batch in batches]}
    generator, device = torch.Generator().manual_seed(0), torch.device(job["device"])
    out = {}
    for set_name, size in (("small", 32), ("large", 256)):
        pixels = torch.randint(0, 256, (job["batch_size"], size, size, 3), dtype=torch.uint8,
                               generator=generator).to(device)
        batch = ImageBatch.of_pixels(pixels)
        out[set_name] = {}
        for name, run_round in rounds.items():
            count = batches_per_round if name == "ganmetrics" else 1
            times, cpu = [], []
            for i in range(1 + job["bare_batches"]):  # the first is a warm-up
                start, cpu_start = time.perf_counter(), cpu_seconds()
                run_round([batch] * count)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    times.append(time.perf_counter() - start)
                    cpu.append(cpu_seconds() - cpu_start)
            # The fastest round: on a shared machine the others only add other jobs' time.
            out[set_name][name] = {"images_per_s": count * job["batch_size"] / min(times),
                                   "cpu_seconds_per_image": min(cpu) / (count * job["batch_size"]),
                                   "round_seconds": times, "batches_per_round": count}
    out["torch_threads"] = torch.get_num_threads()
    return out


def measure(ctx, label: str) -> dict:
    """One bare measurement at the context's level (a job named ``label``)."""
    return ctx.runner.job(label, work_bare, ctx.base(resize="tf", bare_batches=ctx.args.bare_batches))


def combine(results: list[dict]) -> dict:
    """The bare rates of every measurement: per set and network the fastest (as the tool rows keep
    their fastest call), the least CPU time an image of any, and each measurement's own rates
    under ``per_round`` (a failed one is ``None`` there)."""
    good = [r for r in results if "error" not in r]
    if not good:
        return results[0]
    out = {"torch_threads": good[0]["torch_threads"],
           "per_round": [None if "error" in r else {s: r[s] for s in SETS} for r in results]}
    for s in SETS:
        out[s] = {network: max((r[s][network] for r in good), key=lambda x: x["images_per_s"])
                  for network in good[0][s]}
        for network in out[s]:  # the least CPU time of any round (the fastest round need not have it)
            least = [r[s][network].get("cpu_seconds_per_image") for r in good]
            out[s][network] = dict(out[s][network], cpu_seconds_per_image=None if None in least else min(least))
    return out


def round_rates(per_round: list, set_name: str, batch_size: int) -> list[float]:
    """Every bare round's rate (images/s) of ganmetrics' network on ``set_name``, of every
    measurement (``combine``'s ``per_round``; failed ones left out)."""
    return [r[set_name]["ganmetrics"]["batches_per_round"] * batch_size / t
            for r in per_round if r is not None for t in r[set_name]["ganmetrics"]["round_seconds"]]


def paired_fractions(calls: dict, per_round: list, sets: dict, set_names: list) -> list:
    """Each round's ganmetrics-tf call (``calls``: {set: its row}) against the bare rate measured
    right after that round (images/s over images/s, over ``set_names``); ``None`` where either failed."""
    out = []
    seconds = [(calls.get(s) or {}).get("all_seconds") or [] for s in set_names]
    for round_index, bare in enumerate(per_round):
        if bare is None or any(len(x) <= round_index or x[round_index] is None for x in seconds):
            out.append(None)
            continue
        call = sum(x[round_index] for x in seconds)
        bare_seconds = sum(sets[s]["images"] / bare[s]["ganmetrics"]["images_per_s"] for s in set_names)
        out.append(bare_seconds / call if call else None)
    return out


def median_fraction(calls: dict, rates: dict, sets: dict, set_names: list) -> float | None:
    """ganmetrics-tf's median call against the median of every bare round of every measurement
    (``rates``: {set: ``round_rates``}; images/s over images/s, over ``set_names``); None where
    either is missing. Where other jobs move the machine's speed from minute to minute, the
    fastest of many short bare rounds is faster than the fastest of a few long calls for that
    alone; medians are not biased so."""
    seconds, bare_seconds = [], []
    for s in set_names:
        times = [x for x in (calls.get(s) or {}).get("all_seconds") or [] if x]
        if not times or not rates.get(s):
            return None
        seconds.append(statistics.median(times))
        bare_seconds.append(sets[s]["images"] / statistics.median(rates[s]))
    return sum(bare_seconds) / sum(seconds)


def cpu_fraction(calls: dict, bare: dict, sets: dict, set_names: list, device: str) -> float | None:
    """The bare network's CPU seconds for the images of ``set_names`` (its least per image of any
    round) over the CPU seconds of ganmetrics-tf's calls (the least of any round, decoding
    workers included): the fraction of the bare rate by CPU time, which other jobs on a shared
    machine move less than wall time (they take cores, not CPU time of ours). None on a GPU, or
    where either was not measured."""
    if not device.startswith("cpu"):
        return None
    seconds = [(calls.get(s) or {}).get("least_cpu_seconds") for s in set_names]
    per_image = [bare[s]["ganmetrics"].get("cpu_seconds_per_image") for s in set_names]
    if None in seconds or None in per_image or not sum(seconds):
        return None
    return sum(sets[s]["images"] * p for s, p in zip(set_names, per_image)) / sum(seconds)


def run(args) -> dict:
    ctx = context_of(args)
    return {"bare": combine([measure(ctx, f"bare{ctx.tag}")]), "batch_size": args.batch_size, "dims": args.dims,
            "bare_batches": args.bare_batches}


def render(result: dict) -> list[str]:
    bare = result["bare"]
    if "error" in bare:
        return ["", f"Bare network: {bare['error']}"]
    rows = [[SETS[s], fmt(bare[s]["ganmetrics"]["images_per_s"], 2), fmt(bare[s]["plain"]["images_per_s"], 2),
             fmt(bare[s]["ganmetrics"]["cpu_seconds_per_image"], 3)] for s in SETS]
    return ["", f"Bare network, batch {result['batch_size']}, dims {result['dims']}, fastest of {result['bare_batches']} "
            f"rounds, {bare['torch_threads']} torch threads ({NOTE}):", "",
            *table(["", "ganmetrics images/s", "plain images/s", "ganmetrics CPU s an image"], "lrrr", rows)]


if __name__ == "__main__":
    from bench import standalone

    sys.exit(standalone(__file__))
