"""What the experiments of one run share: the options every experiment reads, and the context
made from them on first use (``context_of(args)``): the work folder and its job runner, the
machine, the image folders, the checkpoint, and the instruction-set level being measured.

The process that holds a context is the orchestrator: it imports no torch (every figure is
measured in a worker job, ``measure.Runner``), so that its children's peak RSS is their own.
"""

import argparse
import contextlib
import os
import platform
from pathlib import Path

from data import SETS, make_dataset, work_weights
from isa import isa_levels
from measure import REPO, Runner


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options every experiment reads (the work folder, the image sets, the device and run settings)."""
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="work folder (default bench/out, git-ignored)")
    p.add_argument("--n-small", type=int, default=2000, help="32x32 PNGs in all, half in A and half in B (default 2000)")
    p.add_argument("--n-large", type=int, default=500, help="256x256 JPEGs in all, half in A and half in B (default 500)")
    p.add_argument("--dims", type=int, default=2048, choices=(64, 192, 768, 2048))
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding workers for every tool that takes the number (default: ganmetrics' default, CPUs - 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every tool process (default: torch's)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every tool of the end-to-end rows this many times, in rotated order, and keep the fastest "
                        "(default 1)")
    p.add_argument("--isa", choices=("all", "native"), default="all",
                   help="instruction-set levels of the per-level experiments: all the machine allows (as it is, and "
                        "held to AVX2 on an AVX-512 machine; default) or native only")
    p.add_argument("--seed", type=int, default=0)


def work_info(job) -> dict:
    """The machine and the library defaults, read in a worker so the orchestrator never loads torch."""
    import torch

    from ganmetrics.engine.runtime import default_workers

    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "default_workers": default_workers(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


class Context:
    """One run's shared state, each part made on first use. ``level`` is the instruction-set
    level being measured (``at``); the runner's environment carries its caps."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = args.out.resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, GANMETRICS_CACHE_DIR=str(self.out / "cache"), TORCH_HOME=str(self.out / "torch_home"),
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.runner = Runner(self.out, self.env)
        self.level: dict | None = None
        self._made: dict = {}

    def once(self, key: str, make):
        """``make()``, called once per run (the measurements several experiments share)."""
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def made(self, key: str) -> bool:
        """Whether ``once(key, ...)`` has run."""
        return key in self._made

    @property
    def machine(self) -> dict:
        """torch's version and threads, the GPU, the CPU model, cores, Python, load average; sets
        ``args.workers`` to ganmetrics' default where it was not given."""
        return self.once("machine", self._machine)

    def _machine(self) -> dict:
        info = self.runner.job("info", work_info, {})
        if "error" in info:
            raise RuntimeError(f"cannot start a worker: {info['error']}")
        if self.args.workers is None:
            self.args.workers = info["default_workers"]
        return {"torch": info["torch"], "torch_threads": info["torch_threads"], "cuda": info["cuda"], "cpu": cpu_model(),
                "cores": os.cpu_count(), "python": platform.python_version(),
                "load_before": " / ".join(f"{x:.1f}" for x in os.getloadavg()), "workers": self.args.workers}

    @property
    def folders(self) -> dict[str, tuple[Path, Path]]:
        """{set: (folder A, folder B)} of ``data.make_dataset``."""
        return self.once("folders", lambda: make_dataset(self.out / "data", self.args.n_small, self.args.n_large,
                                                         self.args.seed))

    def counts(self, set_name: str) -> tuple[int, int]:
        """The images in folders A and B of a set."""
        return tuple(len(list(folder.iterdir())) for folder in self.folders[set_name])

    def set_sizes(self) -> dict:
        """{set: {"images": A + B}}: what the tables print beside each set."""
        return {s: {"images": sum(self.counts(s))} for s in SETS}

    @property
    def weights(self) -> str:
        """The checkpoint's path (``data.work_weights``, built in a worker)."""
        def build():
            built = self.runner.job("weights", work_weights, {"path": str(self.out / "random-0.pth")})
            if "error" in built:
                raise RuntimeError(f"cannot build the weights file: {built['error']}")
            return built["path"]
        return self.once("weights", build)

    def base(self, **fields) -> dict:
        """A tool job: the checkpoint and the run's settings, with ``fields`` (which may replace them)."""
        a = self.args
        return {"weights": self.weights, "dims": a.dims, "batch_size": a.batch_size, "device": a.device,
                "workers": self.machine["workers"], "threads": a.threads, **fields}

    def levels(self, native_only: bool = False) -> tuple[list[dict], list[str]]:
        """The instruction-set levels (``isa.isa_levels``) and why any other is not run."""
        native_only = native_only or self.args.isa == "native" or self.args.device.startswith("cuda")
        return self.once(f"levels{native_only}", lambda: isa_levels(self.runner, native_only))

    @property
    def tag(self) -> str:
        """A job-name suffix naming the level being measured where it is not the machine's own."""
        return f"_{self.level['isa']['isa']}" if self.level and self.level["caps"] else ""

    @contextlib.contextmanager
    def at(self, level: dict):
        """Measure at ``level``: its caps in every job's environment meanwhile."""
        self.level, self.runner.env = level, dict(self.env, **level["caps"])
        try:
            yield
        finally:
            self.level, self.runner.env = None, self.env


def context_of(args: argparse.Namespace) -> Context:
    """The run's context, made on the first call and kept in ``args.context``."""
    if getattr(args, "context", None) is None:
        args.context = Context(args)
    return args.context
