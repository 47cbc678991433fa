"""Running a measured job in its own process, and the helpers every experiment measures with.

A job is a JSON object naming its worker function (``"worker": "module:function"``, a function
of an experiment module that takes the job and returns a JSON-able dict); ``Runner.job`` runs it
as ``python bench/measure.py JOB`` and returns the worker's dict merged with what the parent saw
of the process: its wall seconds, ``ru_maxrss`` from ``wait4`` (the largest single process of its
tree) and its tree's peak PSS (sampled from ``/proc/*/smaps_rollup``, DataLoader workers counted
once each without double counting shared pages).

The parent must stay small and never import torch: a child's ``ru_maxrss`` starts from its
parent's peak RSS (it is kept across fork and exec).
"""

import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for tid in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{tid}/children") as f:
                    pids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


PSS_PERIOD = 0.25
"""Seconds between peak-PSS samples of a job's process tree, at least (``run_measured``)."""


def run_measured(cmd: list[str], log: Path, env: dict) -> dict:
    """Run cmd; wall seconds, ru_maxrss of its tree's largest process (MiB), peak tree PSS (MiB)."""
    start = time.perf_counter()
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        peak_pss = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            sampled = time.perf_counter()
            peak_pss = max(peak_pss, sum(_pss_kib(p) for p in _tree(proc.pid)))
            # A sample walks every page table of the tree: 80 ms (up to 160) for a ganmetrics FID
            # call and its decoding worker on a 2-core EPYC, so sampling every 0.25 s took a
            # quarter of a core from the timed job. Now at most 2% of one core.
            time.sleep(max(PSS_PERIOD, 50 * (time.perf_counter() - sampled)))
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "process_seconds": time.perf_counter() - start,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "peak_pss_mib": peak_pss / 1024,
    }


def worker_name(function: Callable) -> str:
    """The ``"module:function"`` a job names its worker by."""
    return f"{function.__module__}:{function.__name__}"


class Runner:
    """Runs jobs and commands one after the other, each in its own measured process, with one
    environment (``env``: an instruction-set level changes it) and one numbered log each under
    ``out/logs``."""

    def __init__(self, out: Path, env: dict):
        self.out, self.env, self.count = out, env, 0
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def job(self, name: str, worker: Callable, job: dict) -> dict:
        """Run ``worker(job)`` in a subprocess; its result merged with the process measurements."""
        self.count += 1
        stem = f"{self.count:02d}_{name}"
        result_path = self.out / "logs" / f"{stem}.json"
        result_path.unlink(missing_ok=True)
        job = dict(job, worker=worker_name(worker), result=str(result_path))
        cmd = [sys.executable, str(HERE / "measure.py"), json.dumps(job)]
        return self._finish(name, run_measured(cmd, self.out / "logs" / f"{stem}.log", self.env), result_path)

    def command(self, name: str, cmd: list[str]) -> dict:
        """Run a command; its measurements, and ``log``: the file holding its stdout and stderr."""
        self.count += 1
        log = self.out / "logs" / f"{self.count:02d}_{name}.log"
        return dict(self._finish(name, run_measured(cmd, log, self.env), None), log=str(log))

    def _finish(self, name, measured, result_path):
        print(f"  {name}: {measured['process_seconds']:.1f} s, exit {measured['returncode']}", file=sys.stderr, flush=True)
        if measured["returncode"] != 0:
            log = self.out / "logs" / f"{self.count:02d}_{name}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            return dict(measured, error=f"exit {measured['returncode']}: {tail[0][:200]} (see {log})")
        if result_path is not None:
            measured.update(json.loads(result_path.read_text()))
        return measured


def rotated(names: list, round_index: int) -> list:
    """``names`` rotated by the round, so that no tool always runs first (cold caches) or last."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def combine_rounds(results: list[dict]) -> dict:
    """One row from a tool's rounds: the best (lowest) call time, the highest memory;
    ``all_seconds`` holds every round's call time in round order (``None`` for a failed one),
    ``least_cpu_seconds`` the least CPU time of any round's call."""
    good = [r for r in results if "seconds" in r]
    if not good:
        return results[0]
    best = min(good, key=lambda r: r["seconds"])
    cpu = [r.get("cpu_seconds") for r in good]
    return dict(best, all_seconds=[r.get("seconds") for r in results], least_cpu_seconds=None if None in cpu else min(cpu),
                peak_rss_mib=max(r["peak_rss_mib"] for r in good), peak_pss_mib=max(r["peak_pss_mib"] for r in good))


def rounds(runner: Runner, count: int, names: list, sets: dict, job_of: Callable, rotate: bool = True,
           after_round: Callable[[int], None] | None = None) -> dict:
    """Every name on every set, ``count`` rounds (each round's order rotated unless ``rotate`` is
    False; ``after_round(i)`` after round i), each run a ``job_of(name, set_name, i)`` = (label,
    worker, job); returns {"name/set": ``combine_rounds`` of its rounds}."""
    runs: dict[str, list] = {}
    for round_index in range(count):
        for set_name in sets:
            for name in rotated(names, round_index) if rotate else names:
                runs.setdefault(f"{name}/{set_name}", []).append(runner.job(*job_of(name, set_name, round_index)))
        if after_round is not None:
            after_round(round_index)
    return {key: combine_rounds(results) for key, results in runs.items()}


# --------------------------------------------------------------------------------------------
# In the worker process


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (DataLoader workers)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def torch_setup(job: dict):
    """torch, with the job's ``threads`` set (torch's default where it has none)."""
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    return torch


def timed(torch, device: str, call) -> tuple:
    """(what call() returns, {seconds, cpu_seconds, torch_threads}) of the call alone."""
    cpu_start, start = cpu_seconds(), time.perf_counter()
    value = call()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return value, {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu_start,
                   "torch_threads": torch.get_num_threads()}


def repeat_timed(torch, device: str, call, repeats: int) -> dict:
    """``call`` timed ``repeats`` times (``timed``): {"seconds": the median, "all_seconds", "value": the last value}."""
    times, value = [], None
    for _ in range(repeats):
        value, timing = timed(torch, device, call)
        times.append(timing["seconds"])
    return {"seconds": statistics.median(times), "all_seconds": times, "value": value}


def work(job: dict) -> None:
    """The worker process: run the job's worker function, write its dict to ``job["result"]``."""
    import warnings

    warnings.simplefilter("ignore")
    module, function = job["worker"].split(":")
    result = getattr(importlib.import_module(module), function)(job)
    Path(job["result"]).write_text(json.dumps(result))


if __name__ == "__main__":
    work(json.loads(sys.argv[1]))
