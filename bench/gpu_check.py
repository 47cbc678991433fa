"""The GPU path, checked and timed in one short run (issue 13): every figure into one JSON and
one Markdown table under --out.

    PYTHONPATH=. timeout 480 python bench/gpu_check.py --out gpu-out        # on a GPU machine, <= 7 min
    PYTHONPATH=. python bench/gpu_check.py --dry-run --out /tmp/gpu-dry     # on the CPU, tiny sizes

bench/GPU.md says what each figure means and what to record afterwards. In short, in this order:

- environment: the GPU (``torch.cuda.get_device_name``), torch/CUDA/cuDNN/torchvision versions,
  the CPU model and cores, the default decode workers.
- data: seeded images written under --work (not --out, whose files travel back): the
  correctness set (2,000 64-px images, half reference A, half generated B, as arrays and as
  PNGs), the speed sets (10,000 256-px JPEGs and 10,000 32-px PNGs, half in A, half in B) and
  ``random_state_dict(0)`` saved as a .pth file for the other tools and the CLI subprocess.
- correctness: the same images through ``--device cpu`` and the device, TF32 off and on: max abs
  pool3 and logit differences, FID and IS relative differences; ``GenerativeMetrics.update`` with
  device tensors (uint8, and float in [0, 1]) against ``ganmetrics fid --weights random:0`` (the
  CLI's entry, in this process) on the same images as PNG; ``trace_sqrt_product`` on the device
  against LAPACK, on the features' (singular) covariances and on full-rank ones.
- model_speed: the network alone (uint8 batches already on the device, resize + forward) at
  batch 50/100/200, 256 px and 32 px inputs.
- decode_speed: ganmetrics' loader alone (PIL in worker processes), with and without the copy to
  the device, and in one process.
- end_to_end: ``ganmetrics.fid`` on the speed sets with the default and the most decode workers
  (and ``python -m ganmetrics fid`` once, as a subprocess from the source tree with the .pth file:
  the same tensors as random:0, which takes seconds to build in every new process), the fraction
  of the model-only rate reached and what bounds it (summary).
- gpu_decode: ``torchvision.io.decode_jpeg(..., device=DEVICE)`` end to end against ganmetrics'
  CPU decoding: rate, pixels, FID (measured only: ganmetrics has no --decode option yet).
- other_tools: pytorch-fid and torch-fidelity on the same sets and device, where importable.

Each section runs under its own time budget (and the whole under --time-limit) inside a
try/except: a failure or a timeout records its error string and the figures it had so far, and
the other sections still run. results.json and results.md are rewritten after every section.

Runs from the source tree (``PYTHONPATH=.``) on any torch >= 2.x, with nothing beyond the standard
library, torch, torchvision, numpy, scipy, pillow, click and tqdm (pytorch-fid and torch-fidelity
are optional: put them, pure Python, in --deps). With --dry-run, ``--device cpu`` stands in for
the GPU so that every code path runs; its cpu-vs-"cuda" differences are then exactly zero.
"""

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SECTIONS = ("environment", "data", "correctness", "model_speed", "decode_speed", "end_to_end", "gpu_decode",
            "other_tools")
# Caps in seconds; the expected times on an H100/H200 with 16 cores are about a third of these.
BUDGETS = {"environment": 20, "data": 60, "correctness": 150, "model_speed": 45, "decode_speed": 45,
           "end_to_end": 100, "gpu_decode": 60, "other_tools": 100}
FID_RTOL = 1e-4  # the target: FID from device features equal to CPU features within this, TF32 off
E2E_TARGET = 2000  # images/s end to end on 256-px JPEGs
DATA_VERSION = 1
# Per folder: channel gains, channel offsets, the largest noise std.
STYLES = {"A": ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), 12.0), "B": ((1.1, 0.9, 0.7), (20.0, 0.0, 10.0), 20.0)}
CHUNK = 250  # images per data-writing task (fixed, so the data does not depend on the core count)


class SectionTimeout(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Small helpers


def rel_diff(value, reference) -> float:
    """|value - reference| / |reference| (0 when both are 0)."""
    value, reference = float(value), float(reference)
    if value == reference:
        return 0.0
    return abs(value - reference) / abs(reference) if reference else math.inf


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _identity(image):
    return image


def batched(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def make_image(rng, size: int, style: str) -> np.ndarray:
    """One uint8 (size, size, 3) image: a smooth random colour field, tinted, plus noise."""
    from PIL import Image

    gains, offsets, noise = STYLES[style]
    grid = int(rng.integers(2, 9))
    coarse = (rng.random((grid, grid, 3)) * 255).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), np.float32)
    pixels = field * np.float32(gains) + np.float32(offsets)
    pixels += rng.normal(0, float(rng.uniform(2, noise)), pixels.shape).astype(np.float32)
    return pixels.clip(0, 255).astype(np.uint8)


def write_chunk(task) -> int:
    """Write images ``start``..``start + count`` of a folder (a worker-process task)."""
    from PIL import Image

    folder, style, start, count, size, ext, seed = task
    rng = np.random.default_rng([seed, size, ord(style), start])
    for i in range(start, start + count):
        image = Image.fromarray(make_image(rng, size, style))
        if ext == "jpg":
            image.save(Path(folder) / f"{i:05d}.jpg", quality=90)
        else:
            image.save(Path(folder) / f"{i:05d}.png")
    return count


def image_files(folder) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix in (".png", ".jpg"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------
# The run: sections, budgets, results


class Run:
    """Holds the settings, the shared state between sections, and the results."""

    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.device_name = args.device
        self.started = time.monotonic()
        self.deadline = self.started + args.time_limit
        self.section_deadline = self.deadline
        self.lock = threading.Lock()
        self.state: dict = {}
        self.results = {
            "script": "bench/gpu_check.py",
            "dry_run": args.dry_run,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "sections": {},
            "summary": {},
        }

    # Time

    def left(self) -> float:
        """Seconds left in the running section (its budget, and the whole run's limit)."""
        return min(self.section_deadline, self.deadline) - time.monotonic()

    def enough(self, seconds: float) -> bool:
        return self.left() > seconds

    # Results

    def write(self, note: str | None = None) -> None:
        with self.lock:
            if note:
                self.results["note"] = note
            self.results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            self.results["seconds"] = round(time.monotonic() - self.started, 1)
            try:
                self.results["summary"] = summarize(self)
            except Exception as err:  # the summary must never lose the figures
                self.results["summary"] = {"error": f"{type(err).__name__}: {err}"}
            self.out.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.results, indent=1, default=_json_default)
            (self.out / "results.json.tmp").write_text(text)
            os.replace(self.out / "results.json.tmp", self.out / "results.json")
            (self.out / "results.md.tmp").write_text(render_markdown(self.results))
            os.replace(self.out / "results.md.tmp", self.out / "results.md")

    def section(self, name: str, function) -> None:
        figures: dict = {}
        entry = {"status": "running", "budget_s": BUDGETS[name], "seconds": None, "error": None, "figures": figures}
        self.results["sections"][name] = entry
        start = time.monotonic()
        remaining = self.deadline - start
        if remaining < 2:
            entry.update(status="skipped", error=f"no time left of --time-limit {self.args.time_limit} s")
            self.write()
            return
        budget = min(BUDGETS[name] * self.args.budget_scale, remaining)
        self.section_deadline = start + budget

        def on_alarm(signum, frame):
            raise SectionTimeout(f"section {name} ran past its budget of {budget:.0f} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, budget + 5)  # a grace for the checks inside to stop first
        print(f"[gpu_check] {name} (budget {budget:.0f} s) ...", file=sys.stderr, flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                function(self, figures)
            entry["status"] = "ok"
        except BaseException as err:  # KeyboardInterrupt too: the figures so far are written
            entry["status"] = "timeout" if isinstance(err, SectionTimeout) else "error"
            entry["error"] = f"{type(err).__name__}: {err}"
            entry["traceback"] = traceback.format_exc(limit=8)
            if isinstance(err, KeyboardInterrupt):
                raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            entry["seconds"] = round(time.monotonic() - start, 2)
            self.section_deadline = self.deadline
            print(f"[gpu_check] {name}: {entry['status']} in {entry['seconds']} s"
                  + (f" ({entry['error']})" if entry["error"] else ""), file=sys.stderr, flush=True)
            self.write()

    # Shared objects

    def device(self):
        import torch

        return torch.device(self.device_name)

    def weights(self):
        from ganmetrics.extractors.inception.extractor import InceptionExtractor
        from ganmetrics.extractors.weights import random_weights

        return random_weights(InceptionExtractor, 0)

    def extractor(self, device=None, allow_tf32: bool = False):
        """An InceptionExtractor of random:0, one per (device, effective TF32), built once."""
        import torch

        from ganmetrics.extractors.inception.extractor import InceptionExtractor

        device = torch.device(device or self.device_name)
        key = (str(device), allow_tf32 and device.type == "cuda")
        cache = self.state.setdefault("extractors", {})
        if key not in cache:
            cache[key] = InceptionExtractor(weights="random:0", device=device, allow_tf32=allow_tf32)
            cache[key].prepare()
        return cache[key]

    def cli_arguments(self, a, b, weights: str, batch_size: int) -> list[str]:
        return ["fid", str(a), str(b), "--weights", weights, "--device", self.device_name, "--json", "--quiet",
                "--no-cache", "--workers", str(self.state["workers"]), "--batch-size", str(batch_size), "--dims",
                str(self.args.dims)]

    def cli_fid_here(self, a, b, fig: dict, prefix: str, batch_size: int) -> float:
        """``ganmetrics fid A B --weights random:0 --json``: the command line's own entry, in this
        process (random:0 is built once per process)."""
        from ganmetrics.cli import cli

        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(self.cli_arguments(a, b, "random:0", batch_size))
                code = 0
            except SystemExit as exit_:
                code = exit_.code
        if code != 0:
            raise RuntimeError(f"the CLI failed ({code}): {err.getvalue().strip()[-500:]}")
        fig[f"{prefix}.seconds"] = round(time.perf_counter() - start, 2)
        fig[f"{prefix}.fid"] = value = json.loads(out.getvalue())["value"]
        return value

    def cli_fid(self, a, b, fig: dict, prefix: str, batch_size: int) -> float:
        """``python -m ganmetrics fid A B --json`` in a subprocess, with the saved random:0 file
        (the same tensors, read in a fraction of the time random:0 takes to build)."""
        command = [sys.executable, "-m", "ganmetrics", *self.cli_arguments(a, b, str(self.state["weights_file"]),
                                                                           batch_size)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=self.env(), timeout=max(5, self.left() - 2))
        if done.returncode != 0:
            raise RuntimeError(f"the CLI failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        fig[f"{prefix}.wall_seconds"] = round(time.perf_counter() - start, 2)
        fig[f"{prefix}.fid"] = value = json.loads(done.stdout)["value"]
        return value

    def env(self) -> dict:
        """The environment of the subprocesses: this source tree first on the path."""
        env = dict(os.environ)
        paths = [str(REPO)] + ([str(self.args.deps)] if Path(self.args.deps).is_dir() else [])
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        if self.args.threads:
            env["OMP_NUM_THREADS"] = str(self.args.threads)
        return env


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Sections


def section_environment(run: Run, fig: dict) -> None:
    import PIL
    import scipy
    import torch
    import torchvision

    import ganmetrics
    from ganmetrics.engine.runtime import default_workers

    device = run.device()
    fig["device"] = str(device)
    fig["gpu"] = (torch.cuda.get_device_name(device) if device.type == "cuda"
                  else "none: the CPU stands in for the GPU (dry run)")
    fig["cuda_available"] = torch.cuda.is_available()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        fig["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        fig["gpu_capability"] = f"{props.major}.{props.minor}"
    fig["torch"] = torch.__version__
    fig["torch_cuda"] = torch.version.cuda
    fig["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    fig["torchvision"] = torchvision.__version__
    fig["numpy"] = np.__version__
    fig["scipy"] = scipy.__version__
    fig["pillow"] = PIL.__version__
    fig["python"] = platform.python_version()
    fig["ganmetrics"] = ganmetrics.__version__
    fig["cpu_model"] = cpu_model()
    fig["cpu_count"] = os.cpu_count()
    fig["cpus_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fig["torch_threads"] = torch.get_num_threads()
    fig["default_workers"] = default_workers()
    fig["max_workers"] = run.state["max_workers"] = max(1, fig["cpus_usable"] - 1)
    run.state["workers"] = default_workers()
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if smi.returncode == 0:
            fig["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        fig["git_commit"] = commit.stdout.strip() if commit.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        fig["git_commit"] = None


def _write_images(args, folders: dict) -> int:
    """The data section's folders ({name: (A, B)}) emptied and written anew, in parallel: images written."""
    tasks = []
    half = {"check": args.n_check // 2, "jpeg": args.n_speed // 2, "png": args.n_speed // 2}
    kinds = {"check": (args.check_size, "png"), "jpeg": (args.jpeg_size, "jpg"), "png": (args.png_size, "png")}
    for name, pair in folders.items():
        size, ext = kinds[name]
        for folder in pair:
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            for first in range(0, half[name], CHUNK):
                tasks.append((str(folder), folder.name, first, min(CHUNK, half[name] - first), size, ext, args.seed))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = max(1, min(len(tasks), usable))
    import multiprocessing

    # fork: no CUDA has been touched yet; the tasks need only numpy and PIL.
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        return sum(pool.map(write_chunk, tasks))


def section_data(run: Run, fig: dict) -> None:
    import torch
    from PIL import Image

    args = run.args
    root = run.work / "data"
    manifest = {"version": DATA_VERSION, "n_check": args.n_check, "check_size": args.check_size,
                "n_speed": args.n_speed, "jpeg_size": args.jpeg_size, "png_size": args.png_size, "seed": args.seed}
    folders = {
        "check": (root / "check" / "A", root / "check" / "B"),
        "jpeg": (root / "jpeg" / "A", root / "jpeg" / "B"),
        "png": (root / "png" / "A", root / "png" / "B"),
    }
    run.state["folders"] = folders
    run.state["weights_file"] = root / "random0.pth"
    manifest_path = root / "manifest.json"
    start = time.perf_counter()
    reuse = manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest
    if not reuse:
        if manifest_path.exists():
            manifest_path.unlink()
        fig["images_written"] = _write_images(args, folders)
    fig["reused"] = reuse
    fig["write_seconds"] = round(time.perf_counter() - start, 2)
    # The correctness arrays are the PNGs read back: the same pixels for every path.
    for side, folder in zip("AB", folders["check"]):
        images = []
        for path in image_files(folder):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
        run.state[f"check_{side}"] = np.stack(images)
    for name, pair in folders.items():
        fig[f"{name}.images"] = sum(len(image_files(f)) for f in pair)
        fig[f"{name}.bytes"] = sum(p.stat().st_size for f in pair for p in image_files(f))
    start = time.perf_counter()
    weights = run.weights()
    fig["random_weights_seconds"] = round(time.perf_counter() - start, 2)
    fig["weights_sha256"] = weights.sha256[:16]
    if not run.state["weights_file"].is_file():
        torch.save(weights.state_dict, str(run.state["weights_file"]) + ".tmp")
        os.replace(str(run.state["weights_file"]) + ".tmp", run.state["weights_file"])
    if not reuse:
        manifest_path.write_text(json.dumps(manifest))


def _forward(extractor, batch, wanted: set) -> dict:
    """{feature: values} of a batch through one encoder (the engine's ``forward_batch``)."""
    from ganmetrics.engine.runner import Task, forward_batch

    return forward_batch({extractor.name: Task(extractor, tuple(sorted(wanted)))}, batch)[extractor.name]


def _features(extractor, images: np.ndarray, batch_size: int) -> dict:
    """{"2048", "logits_unbiased"} of uint8 NHWC images, computed on the extractor's device, on the CPU."""
    import torch

    from ganmetrics.engine.loader import ImageBatch

    extractor.prepare()
    parts = []
    for start in range(0, len(images), batch_size):
        pixels = torch.from_numpy(images[start:start + batch_size]).to(extractor.device)
        out = _forward(extractor, ImageBatch.of_pixels(pixels), {"2048", "logits_unbiased"})
        parts.append({k: v.cpu() for k, v in out.items()})
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def section_correctness(run: Run, fig: dict) -> None:
    args, device = run.args, run.device()
    a, b = run.state["check_A"], run.state["check_B"]
    fig["images"] = len(a) + len(b)
    fig["splits"] = args.splits
    fig["dims"] = args.dims
    sides = (("cpu", "cpu", False), ("device", str(device), False), ("device_tf32", str(device), True))
    values = _correctness_api(run, fig, sides)
    reference = _correctness_features(run, fig, sides)
    _correctness_trace_sqrt(run, fig, reference["2048"], len(a))
    _correctness_tracker(run, fig, values["device"]["fid"])


def _correctness_api(run: Run, fig: dict, sides: tuple) -> dict:
    """1. FID and IS through the API, on the CPU and on the device, TF32 off and on: {label: results}."""
    import ganmetrics

    args, a, b = run.args, run.state["check_A"], run.state["check_B"]
    options = dict(weights="random:0", batch_size=args.batch_size, workers=run.state["workers"], cache=False,
                   progress=False, dims=args.dims)
    values = {}
    for label, where, tf32 in sides:
        start = time.perf_counter()
        result = ganmetrics.evaluate(a, b, metrics=["fid", "is"], device=where, allow_tf32=tf32, splits=args.splits,
                                     **options)
        values[label] = result.results
        fig[f"{label}.fid"] = result.results["fid"]
        fig[f"{label}.is_mean"] = result.results["is_mean"]
        fig[f"{label}.seconds"] = round(time.perf_counter() - start, 2)
    for label in ("device", "device_tf32"):
        fig[f"{label}.fid_rel_diff"] = rel_diff(values[label]["fid"], values["cpu"]["fid"])
        fig[f"{label}.is_rel_diff"] = rel_diff(values[label]["is_mean"], values["cpu"]["is_mean"])
    fig["fid_within_1e-4"] = fig["device.fid_rel_diff"] <= FID_RTOL
    return values


def _correctness_features(run: Run, fig: dict, sides: tuple) -> dict:
    """2. The features themselves: pool3 and logits of every image; the CPU's ({feature: values})."""
    args = run.args
    images = np.concatenate([run.state["check_A"], run.state["check_B"]])
    cpu_extractor = run.extractor("cpu")
    reference = _features(cpu_extractor, images, args.batch_size)
    for label, where, tf32 in sides[1:]:
        extractor = run.extractor(where, tf32)
        # The same extractor (a dry run: the CPU stands in) computes the same features: not twice.
        got = reference if extractor is cpu_extractor else _features(extractor, images, args.batch_size)
        for feature, key in (("2048", "pool3"), ("logits_unbiased", "logits")):
            diff = np.abs(got[feature].astype(np.float64) - reference[feature])
            fig[f"{label}.{key}_max_abs_diff"] = float(diff.max())
            fig[f"{label}.{key}_max_abs_value"] = float(np.abs(reference[feature]).max())
    return reference


def _correctness_trace_sqrt(run: Run, fig: dict, pool3: np.ndarray, n_a: int) -> None:
    """3. The trace square root: torch.linalg on the device against LAPACK on the CPU, on the
    (singular, N < D) covariances of the features (``pool3``: side A's ``n_a`` rows, then B's)
    and on full-rank ones."""
    from ganmetrics.metrics import linalg

    device = run.device()
    rng = np.random.default_rng(run.args.seed)
    dims = run.args.dims
    full = [np.cov(rng.standard_normal((2 * dims, dims)) * scale, rowvar=False) for scale in (1.0, 1.5)]
    pool3 = pool3[:, :dims].astype(np.float64)
    pairs = {"features": [np.cov(pool3[:n_a], rowvar=False), np.cov(pool3[n_a:], rowvar=False)],
             "full_rank": full}
    for name, (s1, s2) in pairs.items():
        start = time.perf_counter()
        lapack = linalg.trace_sqrt_product(s1, s2)
        fig[f"trace_sqrt.{name}.lapack_seconds"] = round(time.perf_counter() - start, 4)
        linalg.trace_sqrt_product(s1, s2, device)  # warm-up (cuSOLVER handles)
        synchronize(device)
        start = time.perf_counter()
        on_device = linalg.trace_sqrt_product(s1, s2, device)
        fig[f"trace_sqrt.{name}.device_seconds"] = round(time.perf_counter() - start, 4)
        fig[f"trace_sqrt.{name}.lapack"] = lapack
        fig[f"trace_sqrt.{name}.device"] = on_device
        fig[f"trace_sqrt.{name}.rel_diff"] = rel_diff(on_device, lapack)
        torch_route = getattr(linalg, "_trace_sqrt_product_torch", None)
        if device.type == "cpu" and torch_route is not None:  # dry run: the torch route, on the CPU
            fig[f"trace_sqrt.{name}.torch_on_cpu_rel_diff"] = rel_diff(torch_route(s1, s2, device), lapack)
    fig["trace_sqrt.dims"] = dims


def _correctness_tracker(run: Run, fig: dict, api_fid: float) -> None:
    """4. The tracker with device tensors against the CLI on the same images as PNG files (and
    the CLI against the API's FID on the device, ``api_fid``)."""
    import torch

    import ganmetrics

    args, device, b = run.args, run.device(), run.state["check_B"]
    png_a, png_b = run.state["folders"]["check"]
    cli = run.cli_fid_here(png_a, png_b, fig, "cli", args.batch_size)
    pixels = torch.from_numpy(b).to(device).permute(0, 3, 1, 2)  # NCHW uint8 on the device, as a generator gives
    tracker = ganmetrics.GenerativeMetrics(str(png_a), inception_score=False, device=str(device), weights="random:0",
                                           batch_size=args.batch_size, cache=False, dims=args.dims)
    for label, tensor, value_range in (("uint8", pixels, "uint8"), ("float01", pixels.float() / 255, "0,1")):
        tracker.reset()
        for chunk in torch.split(tensor, max(1, len(tensor) // 4)):  # as a training loop would
            tracker.update(chunk, value_range=value_range)
        value = tracker.compute()["fid"]
        fig[f"tracker_{label}.fid"] = value
        fig[f"tracker_{label}.rel_diff_vs_cli"] = rel_diff(value, cli)
    fig["cli_vs_api_device.rel_diff"] = rel_diff(cli, api_fid)


def _time_batches(run: Run, function, device, warmup: int, minimum: int, min_seconds: float) -> tuple[float, int]:
    """Seconds per call of ``function`` (after ``warmup`` calls): at least ``minimum`` calls and
    ``min_seconds``, fewer if the section's time runs short."""
    for _ in range(warmup):
        function()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while calls < minimum or (time.perf_counter() - start < min_seconds and run.enough(10)):
        function()
        calls += 1
        if not run.enough(5):
            break
    synchronize(device)
    return (time.perf_counter() - start) / calls, calls


def section_model_speed(run: Run, fig: dict) -> None:
    import torch

    from ganmetrics.engine.loader import ImageBatch

    args, device = run.args, run.device()
    generator = torch.Generator().manual_seed(0)
    warmup, minimum, min_seconds = (0, 1, 0.0) if args.dry_run else (3, 5, 1.5)
    rates = {}
    sizes = sorted({args.jpeg_size, args.png_size}, reverse=True)
    variants = [(False, size, bs) for size in sizes for bs in args.batch_sizes]
    variants.append((True, args.jpeg_size, max(args.batch_sizes)))
    for tf32, size, batch_size in variants:
        extractor = run.extractor(device, tf32)
        pixels = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, generator=generator).to(device)
        batch = ImageBatch.of_pixels(pixels)
        seconds, calls = _time_batches(run, lambda: _forward(extractor, batch, {str(args.dims)}), device, warmup,
                                       minimum, min_seconds)
        key = f"{size}px.batch{batch_size}" + (".tf32" if tf32 else "")
        rates[key] = fig[f"{key}.images_per_s"] = batch_size / seconds
        fig[f"{key}.batches_timed"] = calls
    run.state["model_rates"] = rates
    if device.type == "cuda":
        fig["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _loader_rate(run: Run, source, workers: int, to_device=None) -> float:
    from ganmetrics.engine.loader import checked_batches, make_loader

    pin = to_device is not None and to_device.type == "cuda"
    loader = make_loader(source, (_identity,), run.args.batch_size, workers, pin_memory=pin)
    count, start = 0, time.perf_counter()
    for batch in checked_batches(loader):
        if to_device is not None:
            for _, images in batch.groups:
                images.to(to_device, non_blocking=pin)
        count += batch.size
    if to_device is not None:
        synchronize(to_device)
    return count / (time.perf_counter() - start)


class FolderPair:
    """Folders A and B read as one random-access source (A then B) with ganmetrics' own
    decoding: what ``make_loader`` needs of an ``ImageSource`` (module-level, so picklable)."""

    random_access, in_process = True, False

    def __init__(self, folders, limit=None):
        self.names = [str(p) for folder in folders for p in image_files(folder)][:limit]

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        return f"{len(self)} images"

    def read(self, index: int) -> np.ndarray:
        from ganmetrics.sources import decode_image

        return decode_image(Path(self.names[index]), self.names[index])


def section_decode_speed(run: Run, fig: dict) -> None:
    device = run.device()
    workers, most = run.state["workers"], run.state["max_workers"]
    run.state["decode_rates"] = rates = {}
    for name in ("jpeg", "png"):
        folders = run.state["folders"][name]
        source = FolderPair(folders)
        fig[f"{name}.images"] = len(source)
        rates[f"{name}.workers{workers}"] = fig[f"{name}.workers{workers}.images_per_s"] = \
            _loader_rate(run, source, workers)
        rates[f"{name}.workers{workers}.to_device"] = fig[f"{name}.workers{workers}.to_device.images_per_s"] = \
            _loader_rate(run, source, workers, device)
        if most != workers and name == "jpeg":
            rates[f"{name}.workers{most}"] = fig[f"{name}.workers{most}.images_per_s"] = \
                _loader_rate(run, source, most)
        one = FolderPair(folders, limit=1000)
        fig[f"{name}.one_process.images_per_s"] = _loader_rate(run, one, 0)
    fig["workers"], fig["max_workers"] = workers, most


def section_end_to_end(run: Run, fig: dict) -> None:
    import ganmetrics

    args, device = run.args, run.device()
    workers, most = run.state["workers"], run.state["max_workers"]
    bs, big = args.batch_size, max(args.batch_sizes)
    # (set, resize, batch, workers); repeated keys are timed again (the best counts). A dry run
    # runs each code path once.
    runs = [("jpeg", "tf", bs, workers), ("png", "tf", bs, workers), ("jpeg", "pytorch", bs, workers)]
    if not args.dry_run:
        runs += [("jpeg", "tf", bs, workers), ("png", "pytorch", bs, workers), ("jpeg", "tf", big, workers)]
        runs += [("jpeg", "tf", bs, most)] if most != workers else []
    run.state["e2e"] = e2e = {}
    for name, resize, batch_size, n_workers in runs:
        if not run.enough(5):
            fig["truncated"] = "section budget spent"
            break
        a, b = run.state["folders"][name]
        start = time.perf_counter()
        result = ganmetrics.fid(str(a), str(b), weights="random:0", device=str(device), batch_size=batch_size,
                                workers=n_workers, resize=resize, cache=False, progress=False, dims=args.dims)
        seconds = time.perf_counter() - start
        key = f"{name}.{resize}.batch{batch_size}.workers{n_workers}"
        n = (result.n_a or 0) + (result.n_b or 0)
        rate = n / seconds
        first = key not in e2e
        fig[f"{key}.fid"] = result.value
        fig[f"{key}.{'first' if first else 'repeat'}_run.seconds"] = round(seconds, 2)
        fig[f"{key}.{'first' if first else 'repeat'}_run.images_per_s"] = rate
        if first:
            e2e[key] = {"fid": result.value, "images_per_s": rate, "n": n, "seconds": seconds}
        else:
            fig[f"{key}.repeat_fid_rel_diff"] = rel_diff(result.value, e2e[key]["fid"])
            if rate > e2e[key]["images_per_s"]:
                e2e[key].update(images_per_s=rate, seconds=seconds)
        fig[f"{key}.images_per_s"] = e2e[key]["images_per_s"]
    # The CLI once, as a user runs it: its wall time includes Python, torch and the weights file.
    # (A dry run too: it proves `python -m ganmetrics` runs from the source tree uninstalled.)
    key = f"jpeg.tf.batch{bs}.workers{workers}"
    if run.enough(10):
        value = run.cli_fid(*run.state["folders"]["jpeg"], fig, "cli.jpeg", bs)
        if key in e2e:
            fig["cli.jpeg.images_per_s_with_startup"] = e2e[key]["n"] / fig["cli.jpeg.wall_seconds"]
            fig["cli.jpeg.rel_diff_vs_api"] = rel_diff(value, e2e[key]["fid"])


def _fid_of_features(x1, x2) -> float:
    """FID from two (N, D) feature tensors: mean and covariance in float64, LAPACK's trace sqrt."""
    from ganmetrics.metrics.fid import frechet_distance

    stats = []
    for x in (x1, x2):
        x = x.double()
        stats += [x.mean(0).cpu().numpy(), torch_cov(x).cpu().numpy()]
    return frechet_distance(stats[0], stats[1], stats[2], stats[3])


def torch_cov(x):
    centred = x - x.mean(0)
    return centred.T @ centred / (len(x) - 1)


def _decoded_pixels(fig: dict, device, sample: list) -> None:
    """Pixels: nvJPEG against PIL (what ganmetrics decodes with) on the files of ``sample``."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    from ganmetrics.sources import decode_image

    data = [read_file(str(p)) for p in sample]
    on_device = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    diffs = [np.abs(g.permute(1, 2, 0).cpu().numpy().astype(np.int16) - decode_image(p, str(p)).astype(np.int16))
             for g, p in zip(on_device, sample)]
    fig["pixels.compared_images"] = len(sample)
    fig["pixels.max_abs_diff"] = int(max(d.max() for d in diffs))
    fig["pixels.mean_abs_diff"] = float(np.mean([d.mean() for d in diffs]))
    fig["pixels.fraction_differing"] = float(np.mean([(d > 0).mean() for d in diffs]))


def _decode_only(fig: dict, device, paths: list, decode_batches: list[int], batch_size: int) -> None:
    """Decoding alone, the bytes already in memory: on the device at each of ``decode_batches``,
    and torchvision on the CPU in one process."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    all_data = [read_file(str(p)) for p in paths]
    for decode_batch in decode_batches:
        decode_jpeg(all_data[:decode_batch], mode=ImageReadMode.RGB, device=device)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        for chunk in batched(all_data, decode_batch):
            decode_jpeg(chunk, mode=ImageReadMode.RGB, device=device)
        synchronize(device)
        fig[f"decode_only.device.batch{decode_batch}.images_per_s"] = len(all_data) / (time.perf_counter() - start)
    some = all_data[:min(len(all_data), 500)]
    start = time.perf_counter()
    for chunk in batched(some, batch_size):
        decode_jpeg(chunk, mode=ImageReadMode.RGB, device="cpu")
    fig["decode_only.torchvision_cpu_one_process.images_per_s"] = len(some) / (time.perf_counter() - start)


def section_gpu_decode(run: Run, fig: dict) -> None:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    from ganmetrics.engine.loader import ImageBatch, checked_batches, make_loader
    from ganmetrics.sources import open_source

    args, device = run.args, run.device()
    batch_size, workers = args.batch_size, run.state["workers"]
    folders = run.state["folders"]["jpeg"]
    files = [image_files(f) for f in folders]
    extractor = run.extractor(device)
    feature = str(args.dims)
    _decoded_pixels(fig, device, files[0][:64])
    _decode_only(fig, device, files[0] + files[1], sorted({batch_size, max(args.batch_sizes)}), batch_size)

    def device_decode_features(paths):
        """Read the files on threads, decode each batch on the device, forward: (N, dims) features."""
        parts = []
        with ThreadPoolExecutor(8) as pool:
            for chunk in batched(pool.map(lambda p: read_file(str(p)), paths), batch_size):
                images = torch.stack(decode_jpeg(chunk, mode=ImageReadMode.RGB, device=device))
                out = _forward(extractor, ImageBatch.of_pixels(images.permute(0, 2, 3, 1)), {feature})
                parts.append(out[feature])
        return torch.cat(parts)

    def cpu_decode_features(folder):
        """ganmetrics' loader (PIL in worker processes, pinned copies), forward: (N, dims) features."""
        loader = make_loader(open_source(str(folder)), (_identity,), batch_size, workers, pin_memory=device.type == "cuda")
        return torch.cat([_forward(extractor, batch, {feature})[feature] for batch in checked_batches(loader)])

    n = len(files[0]) + len(files[1])
    fids = {}
    for label, function, inputs in (("cpu_decode", cpu_decode_features, folders),
                                    ("device_decode", device_decode_features, files)):
        if not run.enough(5):
            fig["truncated"] = "section budget spent"
            break
        start = time.perf_counter()
        x1, x2 = (function(item) for item in inputs)
        fids[label] = _fid_of_features(x1, x2)
        seconds = time.perf_counter() - start
        fig[f"{label}.end_to_end.images_per_s"] = n / seconds
        fig[f"{label}.end_to_end.seconds"] = round(seconds, 2)
        fig[f"{label}.fid"] = fids[label]
    if len(fids) == 2:
        fig["fid_rel_diff"] = rel_diff(fids["device_decode"], fids["cpu_decode"])
        faster = fig["device_decode.end_to_end.images_per_s"] > fig["cpu_decode.end_to_end.images_per_s"]
        equal = fig["fid_rel_diff"] <= FID_RTOL
        fig["device_faster"], fig["fid_equal_within_1e-4"] = faster, equal
        fig["pixels_identical"] = fig["pixels.max_abs_diff"] == 0
        fig["auto_would_pick"] = "gpu" if faster and equal else "cpu"
    e2e_key = f"jpeg.tf.batch{batch_size}.workers{workers}"
    if "cpu_decode" in fids and e2e_key in run.state.get("e2e", {}):
        fig["cpu_decode.rel_diff_vs_ganmetrics_fid"] = rel_diff(fids["cpu_decode"], run.state["e2e"][e2e_key]["fid"])


def section_other_tools(run: Run, fig: dict) -> None:
    import torch

    args, device = run.args, run.device()
    weights_file = str(run.state["weights_file"])
    workers = run.state["workers"]
    fig["torch_defaults.cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    fig["torch_defaults.cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)

    def pytorch_fid_call():
        import pytorch_fid.inception
        from pytorch_fid.fid_score import calculate_fid_given_paths

        pytorch_fid.inception.load_state_dict_from_url = \
            lambda *a, **k: torch.load(weights_file, map_location="cpu", weights_only=True)
        return lambda a, b: calculate_fid_given_paths([str(a), str(b)], args.batch_size, str(device), args.dims,
                                                      num_workers=workers)

    def torch_fidelity_call():
        import torch_fidelity

        return lambda a, b: torch_fidelity.calculate_metrics(
            input1=str(a), input2=str(b), fid=True, feature_extractor="inception-v3-compat",
            feature_layer_fid=str(args.dims), feature_extractor_weights_path=weights_file, batch_size=args.batch_size,
            cuda=device.type == "cuda", cache=False, verbose=False)["frechet_inception_distance"]

    # Like with like: pytorch-fid resizes as ganmetrics --resize pytorch, torch-fidelity as tf.
    tools = (("pytorch-fid", "pytorch_fid", pytorch_fid_call, "pytorch"),
             ("torch-fidelity", "torch_fidelity", torch_fidelity_call, "tf"))
    for tool, module, make_call, resize in tools:
        try:
            imported = __import__(module)
        except Exception as err:
            fig[f"{tool}.skipped"] = f"not importable: {type(err).__name__}: {err}"
            continue
        fig[f"{tool}.version"] = getattr(imported, "__version__", "?")
        call = make_call()
        for name in ("jpeg",) if args.dry_run else ("jpeg", "png"):
            if not run.enough(10):
                fig[f"{tool}.{name}.skipped"] = "section budget spent"
                continue
            a, b = run.state["folders"][name]
            n = len(image_files(a)) + len(image_files(b))
            start = time.perf_counter()
            try:
                value = float(call(a, b))
            except Exception as err:
                fig[f"{tool}.{name}.error"] = f"{type(err).__name__}: {err}"
                continue
            synchronize(device)
            seconds = time.perf_counter() - start
            key = f"{tool}.{name}"
            fig[f"{key}.fid"] = value
            fig[f"{key}.seconds"] = round(seconds, 2)
            fig[f"{key}.images_per_s"] = n / seconds
            ours = run.state.get("e2e", {}).get(f"{name}.{resize}.batch{args.batch_size}.workers{workers}")
            if ours:
                fig[f"{key}.ganmetrics_resize"] = resize
                fig[f"{key}.fid_rel_diff_vs_ganmetrics"] = rel_diff(value, ours["fid"])
                fig[f"{key}.ganmetrics_speedup"] = ours["images_per_s"] / (n / seconds)


SECTION_FUNCTIONS = {
    "environment": section_environment, "data": section_data, "correctness": section_correctness,
    "model_speed": section_model_speed, "decode_speed": section_decode_speed, "end_to_end": section_end_to_end,
    "gpu_decode": section_gpu_decode, "other_tools": section_other_tools,
}
NEEDS = {name: ("environment", "data") for name in SECTIONS if name not in ("environment", "data")}
NEEDS["data"] = ("environment",)


# --------------------------------------------------------------------------------------------
# Summary and Markdown


def summarize(run: Run) -> dict:
    """The issue's targets, from the figures there are."""
    sections = run.results["sections"]
    fig = lambda name: sections.get(name, {}).get("figures", {})  # noqa: E731
    args = run.args
    workers = run.state.get("workers")
    out = {}
    correctness = fig("correctness")
    if "device.fid_rel_diff" in correctness:
        out["fid_rel_diff_cpu_vs_device"] = correctness["device.fid_rel_diff"]
        out["fid_target_met"] = correctness["device.fid_rel_diff"] <= FID_RTOL
    if "device_tf32.fid_rel_diff" in correctness:
        out["fid_rel_diff_cpu_vs_device_tf32"] = correctness["device_tf32.fid_rel_diff"]
    if "tracker_uint8.rel_diff_vs_cli" in correctness:
        out["tracker_vs_cli_fid_rel_diff"] = correctness["tracker_uint8.rel_diff_vs_cli"]
    model = run.state.get("model_rates", {})
    decode = run.state.get("decode_rates", {})
    e2e = run.state.get("e2e", {})
    for name, size in (("jpeg", args.jpeg_size), ("png", args.png_size)):
        if f"{name}.tf.batch{args.batch_size}.workers{workers}" not in e2e:
            continue
        rate = e2e[f"{name}.tf.batch{args.batch_size}.workers{workers}"]["images_per_s"]
        out[f"{name}.end_to_end_images_per_s"] = rate
        model_rate = model.get(f"{size}px.batch{args.batch_size}")
        decode_rate = decode.get(f"{name}.workers{workers}.to_device")
        if model_rate:
            out[f"{name}.fraction_of_model_rate"] = rate / model_rate
        if model_rate and decode_rate:
            bound = "decode (+ copy to the device)" if decode_rate < model_rate else "compute (the network)"
            limit = min(decode_rate, model_rate)
            out[f"{name}.bound"] = bound if rate >= 0.8 * limit else f"pipeline overhead (below both; nearest: {bound})"
            out[f"{name}.bound_rate_images_per_s"] = limit
            # What the call spent beyond streaming at the bound: building the network, starting
            # the workers, the last batches, the statistics and the trace square root.
            run_ = e2e[f"{name}.tf.batch{args.batch_size}.workers{workers}"]
            out[f"{name}.seconds_beyond_bound"] = run_["seconds"] - run_["n"] / limit
    if "jpeg.end_to_end_images_per_s" in out:
        out["jpeg_target_2000_met"] = out["jpeg.end_to_end_images_per_s"] >= E2E_TARGET
    tools = fig("other_tools")
    for tool in ("pytorch-fid", "torch-fidelity"):
        if f"{tool}.skipped" in tools:
            out[f"vs_{tool}"] = f"skipped: {tools[f'{tool}.skipped']}"
        speedups = [tools[k] for k in tools if k.startswith(tool + ".") and k.endswith(".ganmetrics_speedup")]
        if speedups:
            out[f"vs_{tool}.min_speedup"] = min(speedups)
    decode_fig = fig("gpu_decode")
    if "auto_would_pick" in decode_fig:
        out["gpu_decode.auto_would_pick"] = decode_fig["auto_would_pick"]
        out["gpu_decode.speedup_end_to_end"] = (decode_fig["device_decode.end_to_end.images_per_s"]
                                                / decode_fig["cpu_decode.end_to_end.images_per_s"])
        out["gpu_decode.fid_rel_diff"] = decode_fig["fid_rel_diff"]
    out["sections_ok"] = sum(s.get("status") == "ok" for s in sections.values())
    out["sections_failed"] = sorted(k for k, s in sections.items() if s.get("status") not in ("ok", "running"))
    return out


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(results: dict) -> str:
    env = results["sections"].get("environment", {}).get("figures", {})
    lines = [
        "# ganmetrics GPU check" + (" (dry run: the CPU stands in for the GPU)" if results["dry_run"] else ""),
        "",
        f"- GPU: {env.get('gpu', '?')}" + (f" ({env['gpu_memory_gib']} GiB)" if "gpu_memory_gib" in env else ""),
        f"- torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), "
        f"torchvision {env.get('torchvision', '?')}, Python {env.get('python', '?')}",
        f"- CPU: {env.get('cpu_model', '?')}, {env.get('cpus_usable', '?')} usable cores; decode workers "
        f"{env.get('default_workers', '?')} (default), {env.get('max_workers', '?')} (cores - 1)",
        f"- ganmetrics {env.get('ganmetrics', '?')} at {env.get('git_commit') or '?'}; weights random:0 "
        "(uncalibrated: FIDs compare only with each other)",
        f"- started {results['started']}, finished {results['finished']}, {results.get('seconds', '?')} s",
        "",
        "## Summary",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {_cell(value)} |" for key, value in results.get("summary", {}).items()]
    lines += ["", "## Sections", "", "| section | status | seconds | budget (s) | error |", "| --- | --- | --- | --- | --- |"]
    for name, entry in results["sections"].items():
        lines.append(f"| {name} | {entry['status']} | {_cell(entry['seconds'])} | {entry['budget_s']} | "
                     f"{_cell(entry['error'] or '')} |")
    for name, entry in results["sections"].items():
        lines += ["", f"## {name}", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {_cell(value)} |" for key, value in entry["figures"].items()]
    if results.get("note"):
        lines += ["", f"Note: {results['note']}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="where results.json and results.md go")
    p.add_argument("--work", type=Path, default=None,
                   help="where the data goes (default: <tmp>/ganmetrics-gpu-check; reused when it matches)")
    p.add_argument("--device", default=None, help="the device under test (default cuda; cpu with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: every code path, in seconds")
    p.add_argument("--time-limit", type=float, default=420, help="seconds for the whole run (default 420)")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every section's budget")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset (environment and data always run)")
    p.add_argument("--n-check", type=int, default=2000, help="correctness images in all, half A half B (default 2000)")
    p.add_argument("--check-size", type=int, default=64)
    p.add_argument("--n-speed", type=int, default=10000, help="images in each speed set, half A half B (default 10000)")
    p.add_argument("--jpeg-size", type=int, default=256)
    p.add_argument("--png-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=50, help="the batch of the end-to-end runs (ganmetrics' default)")
    p.add_argument("--batch-sizes", default="50,100,200", help="the model-only batches")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--dims", type=int, default=2048, help="the FID feature layer of every FID here (default 2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch (and OpenMP) threads here and in the subprocesses (default: torch's; 1 with --dry-run)")
    p.add_argument("--deps", type=Path, default=REPO / "bench" / "out" / "gpu-deps",
                   help="a folder of pure-Python packages (pytorch-fid, torch-fidelity) appended to the path")
    args = p.parse_args(argv)
    if args.dry_run:
        # One thread: on a small shared machine, OpenMP threads contending with other work run
        # these tiny batches slower than one. --dims 64: the 2048-d trace square root of a
        # singular covariance alone takes seconds there (and FID stops at the first block).
        defaults = dict(n_check=8, check_size=32, n_speed=8, jpeg_size=32, png_size=32, batch_size=4,
                        batch_sizes="2,4", splits=2, threads=1, dims=64)
        for key, value in defaults.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    args.work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "ganmetrics-gpu-check"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if Path(args.deps).is_dir() and str(args.deps) not in sys.path:
        sys.path.append(str(args.deps))  # after torch & co, so it can only add packages
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run = Run(args)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")

    # A watchdog for a hang inside C code (which the per-section alarm cannot interrupt):
    # write what there is and leave, shortly after the whole run's limit.
    def watchdog():
        run.write(note=f"stopped by the watchdog {args.time_limit + 30:.0f} s after the start (a hang?)")
        os._exit(3)

    timer = threading.Timer(args.time_limit + 30, watchdog)
    timer.daemon = True
    timer.start()
    for name in SECTIONS:
        if name not in wanted and name not in ("environment", "data"):
            continue
        failed = [need for need in NEEDS.get(name, ()) if run.results["sections"].get(need, {}).get("status") != "ok"]
        if failed:
            run.results["sections"][name] = {"status": "skipped", "budget_s": BUDGETS[name], "seconds": 0,
                                             "error": f"needs {', '.join(failed)}", "figures": {}}
            run.write()
            continue
        run.section(name, SECTION_FUNCTIONS[name])
    timer.cancel()
    run.write()
    print((run.out / "results.md").read_text())
    return 0 if all(s["status"] == "ok" for s in run.results["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
