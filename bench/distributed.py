"""Sharding benchmark: what torchrun ranks and shard files cost on this machine.

    python bench/distributed.py                       # full size (about 34 GB of temporary shard files)
    python bench/distributed.py --images 40 --bank-images 2000 --merge-files 50 --merge-dims 256   # reduced
    python bench/distributed.py --write               # also into BENCHMARKS.md (distributed:begin/end)

Steps (``STEPS``, one adapter each, as in ``tools.py``: a function of the parsed arguments and
the work folder that returns its figures):

- ``torchrun``: ``ganmetrics stats A`` on ``--images`` 32px PNGs as one process, and as
  ``torchrun --standalone --nproc_per_node=2``: wall time of the whole command (start-up
  included) and images/s. On a machine whose cores the two ranks share, this shows the cost of
  ranks (a second network, lock step, the end-of-run gather), not a speed-up.
- ``gather``: two gloo processes merging at the end of a run (``distributed.merged``): 2048-d
  Gaussian statistics, and a feature bank of ``--bank-images`` 2048-d images split between
  them; seconds (median of ``--repeats``) and the bytes each rank sends and receives.
- ``merge``: ``--merge-files`` synthetic shard files of ``--merge-dims``-d statistics (written
  first, not timed), then ``ganmetrics stats merge`` of all of them (its command-line entry in
  this process, imports excluded): seconds, and the bytes read.

Everything goes under ``--out`` (default bench/out/distributed, git-ignored); the shard files
are deleted afterwards unless ``--keep``.
"""

import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (REPO, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from data import make_dataset, work_weights  # noqa: E402
from report import write_markdown  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- distributed:begin -->", "<!-- distributed:end -->"
DIMS = 2048


def _environment(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            **extra}


# --------------------------------------------------------------------------------------------
# torchrun: one process vs two ranks, end to end


def step_torchrun(args, work: Path) -> dict:
    folder, _ = make_dataset(work / "data", 2 * args.images, 0, seed=0)["small"]
    weights = work_weights({"path": str(work / "random-0.pth")})["path"]
    common = ["stats", str(folder), "--weights", weights, "--dims", str(DIMS), "--batch-size", str(args.batch_size),
              "--quiet", "--no-cache"]
    rows = {}
    for name, launcher in (("1 process", [sys.executable, "-m", "ganmetrics"]),
                           ("2 ranks (gloo)", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                               "--nproc_per_node=2", "-m", "ganmetrics"])):
        output = work / f"stats-{name.split()[0]}.npz"
        started = time.perf_counter()
        done = subprocess.run([*launcher, *common, "-o", str(output)], env=_environment(), capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr[-2000:]}")
        rows[name] = {"seconds": seconds, "images_per_s": args.images / seconds}
    import numpy as np

    with np.load(work / "stats-1.npz") as one, np.load(work / "stats-2.npz") as two:
        rows["sigma_relative_difference"] = float(np.linalg.norm(one["sigma"] - two["sigma"]) / np.linalg.norm(one["sigma"]))
    return {"images": args.images, "batch_size": args.batch_size, "rows": rows}


# --------------------------------------------------------------------------------------------
# gather: the end-of-run merge across two gloo processes


def _gather_worker(rank: int, init_method: str, bank_images: int, repeats: int, out: str) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    from ganmetrics.engine import distributed
    from ganmetrics.metrics.reducers import FeatureBank, GaussianStats

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=2)
    rng = np.random.default_rng(rank)
    gaussian = GaussianStats.from_state({"count": np.int64(25_000), "mean": rng.normal(size=DIMS),
                                         "comoment": np.eye(DIMS) * 25_000.0})
    share = distributed.span(range(bank_images), 50, rank, 2)
    bank = FeatureBank.from_state({"positions": np.arange(share.start, share.stop),
                                   "features": rng.normal(size=(len(share), DIMS)).astype(np.float32)})
    figures = {}
    for name, reducers in (("gaussian", {"g": gaussian}), ("bank", {"b": bank})):
        sent = len(pickle.dumps([r.state() for r in reducers.values()], protocol=pickle.HIGHEST_PROTOCOL))
        times = []
        for _ in range(repeats):
            distributed.gathered(None)  # both ranks start together
            started = time.perf_counter()
            distributed.merged(reducers)
            times.append(time.perf_counter() - started)
        figures[name] = {"seconds": statistics.median(times), "sent_bytes": sent,
                         "received_bytes": sum(distributed.gathered(sent)) - sent}
    if rank == 0:
        Path(out).write_text(json.dumps(figures))
    dist.destroy_process_group()


def step_gather(args, work: Path) -> dict:
    out = work / "gather.json"
    store = work / "gather-store"
    store.unlink(missing_ok=True)
    context = multiprocessing.get_context("spawn")
    ranks = [context.Process(target=_gather_worker, args=(rank, store.as_uri(), args.bank_images, args.repeats, str(out)))
             for rank in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join()
    if any(process.exitcode != 0 for process in ranks):
        raise RuntimeError("a gather rank failed")
    return {"bank_images": args.bank_images, "dims": DIMS, **json.loads(out.read_text())}


# --------------------------------------------------------------------------------------------
# merge: `ganmetrics stats merge` of many shard files


def step_merge(args, work: Path) -> dict:
    import numpy as np

    from ganmetrics.cli import cli
    from ganmetrics.engine.distributed import span
    from ganmetrics.store.shardfile import Shard, save_shard

    folder = work / "shards"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files, per_shard, dims = args.merge_files, 50, args.merge_dims
    total = files * per_shard
    rng = np.random.default_rng(0)
    comoment = np.eye(dims) * per_shard  # the values do not change the cost
    encoders = {"inception": {"extractor": "synthetic", "dims": dims, "resize": "tf", "weights_sha256": "0" * 64,
                              "calibrated": False, "tf32": False, "version": "bench", "source": "synthetic"}}
    paths = []
    for index in range(files):
        images = span(range(total), per_shard, index, files)
        info = {"index": index, "count": files, "start": images.start, "stop": images.stop, "total": total,
                "batch_size": per_shard, "names_sha256": "0" * 64}
        paths.append(folder / f"part-{index:05d}.npz")
        save_shard(paths[-1], Shard({"encoders": encoders, "shard": info}, {("inception", str(dims), "gaussian"): {
            "count": np.int64(len(images)), "mean": rng.normal(size=dims), "comoment": comoment}}))
    read = sum(path.stat().st_size for path in paths)
    started = time.perf_counter()
    try:
        cli.main(["stats", "merge", *map(str, paths), "-o", str(work / "merged.npz")])
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(f"stats merge exited {exit_.code}") from None
    seconds = time.perf_counter() - started
    if not args.keep:
        shutil.rmtree(folder)
    return {"files": files, "dims": dims, "seconds": seconds, "files_per_s": files / seconds, "read_bytes": read}


@dataclass(frozen=True)
class Step:
    note: str
    run: Callable[[argparse.Namespace, Path], dict]


STEPS: dict[str, Step] = {
    "torchrun": Step("`ganmetrics stats A` as 1 process vs `torchrun --standalone --nproc_per_node=2` (gloo)", step_torchrun),
    "gather": Step("`distributed.merged` across 2 gloo processes (spawn, FileStore)", step_gather),
    "merge": Step("`ganmetrics stats merge part-*.npz -o all.npz` (in-process entry, imports excluded)", step_merge),
}


# --------------------------------------------------------------------------------------------
# Report


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def render(results: dict, args) -> str:
    lines = [f"Sharding ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, `python bench/distributed.py "
             f"--images {args.images} --batch-size {args.batch_size} --bank-images {args.bank_images} --merge-files {args.merge_files} "
             f"--merge-dims {args.merge_dims}`{'' if args.label is None else f'; {args.label}'}).", ""]
    if "torchrun" in results:
        run = results["torchrun"]
        lines += [f"`ganmetrics stats` of {run['images']} 32px PNGs, dims {DIMS}, batch {run['batch_size']}, whole "
                  "command (start-up included). Two ranks on the same cores show what ranks cost, not a speed-up.", "",
                  "| run | seconds | images/s |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {row['seconds']:.1f} | {row['images_per_s']:.2f} |"
                  for name, row in run["rows"].items() if isinstance(row, dict)]
        lines += ["", f"Statistics of the two runs differ by {run['rows']['sigma_relative_difference']:.1e} (relative, "
                  "Frobenius norm of sigma): torchrun gives each rank OMP_NUM_THREADS=1 and the one process runs on "
                  "torch's default threads; a difference comes from the thread count "
                  "([docs/distributed.md](docs/distributed.md)), not from sharding.", ""]
    if "gather" in results:
        gather = results["gather"]
        lines += ["End-of-run gather and merge on 2 gloo ranks (each rank sends its states and receives the other's):",
                  "", "| state | seconds | sent per rank | received per rank |", "| --- | ---: | ---: | ---: |"]
        for name, label in (("gaussian", f"Gaussian, {DIMS}-d"), ("bank", f"feature bank, {gather['bank_images']:,} images")):
            row = gather[name]
            lines.append(f"| {label} | {row['seconds']:.3f} | {_mib(row['sent_bytes'])} | {_mib(row['received_bytes'])} |")
        lines.append("")
    if "merge" in results:
        merge = results["merge"]
        lines += [f"`stats merge` of {merge['files']:,} shard files of {merge['dims']}-d statistics "
                  f"({_mib(merge['read_bytes'])} read): {merge['seconds']:.1f} s ({merge['files_per_s']:.1f} files/s).", ""]
    lines.append("Steps: " + "; ".join(f"{name}: {step.note}" for name, step in STEPS.items() if name in results) + ".")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "out" / "distributed", help="work folder (git-ignored)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    p.add_argument("--images", type=int, default=1000, help="torchrun: 32px PNGs (default 1000)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--bank-images", type=int, default=50_000, help="gather: images in the feature bank (default 50,000)")
    p.add_argument("--repeats", type=int, default=3, help="gather: timed repeats (median)")
    p.add_argument("--merge-files", type=int, default=1000, help="merge: shard files (default 1,000)")
    p.add_argument("--merge-dims", type=int, default=DIMS, help=f"merge: dims of their statistics (default {DIMS})")
    p.add_argument("--keep", action="store_true", help="keep the shard files")
    p.add_argument("--label", default=None, help="a note for the table, e.g. 'reduced size, machine under load'")
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = [name.strip() for name in args.steps.split(",") if name.strip()]
    unknown = [name for name in steps if name not in STEPS]
    if unknown:
        raise SystemExit(f"unknown step {unknown[0]!r}: use {', '.join(STEPS)}")
    if "merge" in steps:
        need = args.merge_files * 8 * args.merge_dims ** 2 * 1.05
        free = shutil.disk_usage(args.out).free
        if need > free:
            raise SystemExit(f"merge needs about {need / 1e9:.1f} GB of shard files, {free / 1e9:.1f} GB free: "
                             "lower --merge-dims or --merge-files")
    results = {}
    for name in steps:
        print(f"[{name}] {STEPS[name].note}", flush=True)
        results[name] = STEPS[name].run(args, args.out)
        print(json.dumps(results[name]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    body = render(results, args)
    print(body)
    if args.write:
        write_markdown(REPO / "BENCHMARKS.md", body, MARK_BEGIN, MARK_END, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
