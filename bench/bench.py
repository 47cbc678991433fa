"""End-to-end FID benchmark: ganmetrics against pytorch-fid, torch-fidelity, clean-fid and
torchmetrics on the same generated images, the same random-weight checkpoint, the same batch size.

    python bench/bench.py                                  # full size: 2,000 32px PNGs + 500 256px JPEGs
    python bench/bench.py --n-small 400 --n-large 100      # scaled down
    python bench/bench.py --sweep-threads                  # ganmetrics only: torch threads x decode workers

What it does (everything goes under --out, default bench/out, which git ignores):

1. Writes a seeded image set: ``small/{A,B}`` hold 32x32 PNGs, ``large/{A,B}`` 256x256 JPEGs,
   half of each count per folder. A and B differ in colour balance and content mix, so the FID
   is far from zero. Each folder is single-sized, because torch-fidelity and pytorch-fid batch
   images without resizing them first; every tool therefore gets one row per size set.
2. Writes the random checkpoint ``random_state_dict(0)`` (of
   ``ganmetrics.extractors.inception.weights``) as a .pth file that every tool loads (none
   downloads anything). It has the real file's keys and shapes but is uncalibrated: the FIDs
   are only comparable between the tools here, never with published ones.
3. Runs each tool (an adapter of ``tools.TOOLS``) on each size set in its own subprocess, one
   after the other, and records the wall time of the FID call (weights loading, decoding,
   network, statistics, FID; not the Python imports), the peak RSS (``ru_maxrss`` from
   ``wait4``: the largest single process of the tool's process tree) and the peak PSS summed
   over the process tree (sampled every 0.25 s or less often, so that the sampling takes at
   most 2% of one core from the timed job; DataLoader workers count once each without double
   counting shared pages).
4. Measures the bare network (random uint8 batches already on the device, resize + normalise
   + forward only; its wall and CPU time, so that ganmetrics' fraction of its rate is given by
   both: other jobs on a shared machine move the wall time more), decoding alone, the FID
   reduction from two 2048-d statistics files (ours vs pytorch-fid's scipy ``sqrtm``), and the
   peak RSS of ``ganmetrics stats`` on 1x vs 4x images.
5. Compares ``ganmetrics eval A B --metrics fid,is,kid`` with torch-fidelity's
   ``calculate_metrics(fid=True, isc=True, kid=True)`` on each size set (time, memory, values;
   ``tools.EVAL_TOOLS``), and times the KID step alone on random float32 2048-d features of the
   same counts (``tools.KID_STEPS``); likewise the precision/recall and density/coverage steps
   (``tools.NEIGHBOUR_STEPS``: ganmetrics' exact and adm variants vs torch-fidelity's
   ``prc_features_to_metric``, ganmetrics' streamed D/C vs prdc), each tool in its own process,
   with its time and the step's peak memory (``--pr-sizes`` adds larger equal-size rows).
6. Compares ``ganmetrics eval A.npz B.npz --metrics adm`` (the ADM evaluator's IS, FID, sFID,
   precision and recall) with torch-fidelity's ``calculate_metrics(fid=True, isc=True, prc=True)``
   on two ADM batches of ``--n-adm`` 64px images each (``tools.ADM_TOOLS``).
7. Measures what knowing how sure the number is costs: ``ganmetrics eval A B --metrics fid``
   against the same with ``--ci B`` (``--ci-replicates``, default 100) and with
   ``--metrics fid,fid_inf`` (``tools.INTERVAL_RUNS``): the extra call time, time per bootstrap
   replicate and peak memory over the plain run. Chong & Forsyth's smallest sample is 5,000
   images, more than these sets hold: FID∞ runs from ``--inf-min`` (default a fifth of B).
8. Measures start-up: the import time and wall time of ``ganmetrics --version`` and of
   ``ganmetrics fid a.npz b.npz`` (two statistics files: no network), each a fresh process.
7. Prints the tables and writes them into BENCHMARKS.md between the ``bench:begin``/``bench:end``
   markers (text outside the markers is kept), plus ``results.json`` under --out.

Instruction sets: the tool rows and the bare network (steps 3 and 4) run at each instruction-set
level the machine allows, one table per level: as the machine is, and, on an AVX-512 (or AMX)
machine, again with oneDNN, ATen and MKL held to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``,
``ATEN_CPU_CAPABILITY=avx2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2`` in every tool's process), as an
AVX2-only machine runs them. Each level's instruction set is what oneDNN actually used: the
kernels of a probe convolution run with ``ONEDNN_VERBOSE`` under that level's settings (a cap
that did not take effect is reported, and its level skipped). ``--isa native`` runs one level.

Like with like: ganmetrics ``--resize pytorch`` is compared with pytorch-fid and clean-fid
(``legacy_pytorch``); ganmetrics ``--resize tf`` with torch-fidelity and torchmetrics (with
``antialias=False``, i.e. torch-fidelity's TF1 resize; torchmetrics 1.9's default
``antialias=True`` is a plain bilinear resize with TF normalisation, which none of the others do).

Decoding workers: ganmetrics, pytorch-fid, clean-fid and the torchmetrics loop (which has no
folder reader of its own, so this script decodes with PIL in a DataLoader, as user code would)
all get ``--workers`` (default: ganmetrics' own default, CPUs - 1). torch-fidelity has no such
knob; it uses its default (min(4, 2 x CPUs) workers).
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from tools import (ADM_REFERENCE, ADM_TOOLS, EVAL_REFERENCE, EVAL_TOOLS, INTERVAL_REFERENCE, INTERVAL_RUNS,  # noqa: E402
                   KID_STEPS, NEIGHBOUR_STEPS, TOOLS, EvalSettings, Inputs, IntervalSettings, Skip, tool_names)

SETS = {"small": "32px PNG", "large": "256px JPEG"}
EQUAL_RTOL = 1e-4  # "equal values" for the speed-up target: the parity tests' FID tolerance
KID_MAX_SUBSET = 1000  # KID subset size: min(this, the smaller side), the same for both tools
BANK_BYTES = 4 * 2048  # one image's float32 pool3 features in a KID feature bank
DATA_VERSION = 1
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"
SWEEP_BEGIN, SWEEP_END = "<!-- bench-sweep:begin -->", "<!-- bench-sweep:end -->"


# --------------------------------------------------------------------------------------------
# Data and weights


def _image(rng, size: int, colour: "np.ndarray", shape_share: float):
    """One uint8 (size, size, 3) image: a smooth colour field, maybe shapes, then noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    grid = int(rng.integers(2, 9))
    coarse = (rng.random((grid, grid, 3)) * 255).astype(np.uint8)
    field = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    if rng.random() < shape_share:
        draw = ImageDraw.Draw(field)
        for _ in range(int(rng.integers(1, 6))):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 8, size // 2 + 1, 2)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    pixels = np.asarray(field, np.float32) * colour[0] + colour[1]
    pixels += rng.normal(0, float(rng.uniform(2, 20)), pixels.shape)
    return pixels.clip(0, 255).astype(np.uint8)


# Per folder: (channel gains, channel offsets) and the share of images with shapes drawn on.
FOLDER_STYLE = {
    "A": (((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), 0.3),
    "B": (((1.1, 0.9, 0.7), (20.0, 0.0, 10.0)), 0.7),
}


def make_dataset(root: Path, n_small: int, n_large: int, seed: int) -> dict:
    """The seeded image folders (reused when their manifest matches). Returns {set: (A, B)}."""
    import numpy as np
    from PIL import Image

    manifest = {"version": DATA_VERSION, "n_small": n_small, "n_large": n_large, "seed": seed}
    manifest_path = root / "manifest.json"
    folders = {s: (root / s / "A", root / s / "B") for s in SETS}
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return folders
    if manifest_path.exists():
        manifest_path.unlink()
    for set_name, count, size, ext in (("small", n_small, 32, "png"), ("large", n_large, 256, "jpg")):
        for folder_index, folder in enumerate(folders[set_name]):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            (gains, offsets), shape_share = FOLDER_STYLE[folder.name]
            colour = (np.array(gains, np.float32), np.array(offsets, np.float32))
            rng = np.random.default_rng([seed, size, folder_index])
            for i in range(count // 2 + (count % 2 if folder.name == "A" else 0)):
                image = Image.fromarray(_image(rng, size, colour, shape_share))
                if ext == "png":
                    image.save(folder / f"{i:05d}.png")
                else:
                    image.save(folder / f"{i:05d}.jpg", quality=90)
    manifest_path.write_text(json.dumps(manifest))
    return folders


def make_rss_folders(root: Path, n: int, seed: int) -> tuple[Path, Path]:
    """Folders of n and 4n 32px PNGs for the `ganmetrics stats` memory check."""
    import numpy as np
    from PIL import Image

    out = []
    for factor in (1, 4):
        folder = root / f"rss_{factor}x_{n}"
        count = factor * n
        if not (folder.is_dir() and len(list(folder.glob("*.png"))) == count):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            rng = np.random.default_rng([seed, 99, factor])
            colour = (np.ones(3, np.float32), np.zeros(3, np.float32))
            for i in range(count):
                Image.fromarray(_image(rng, 32, colour, 0.5)).save(folder / f"{i:05d}.png")
        out.append(folder)
    return out[0], out[1]


ADM_SIZE = 64  # the ADM rows' images: 64px, as the issue's benchmark


def make_adm_batches(root: Path, n: int, seed: int) -> tuple[Path, Path]:
    """Two ADM batches (``arr_0``: n uint8 64px images each, A and B styled as the folders),
    written with ``np.savez`` as the ADM evaluator's are (reused while their size matches)."""
    import numpy as np

    out = []
    for folder, ((gains, offsets), shape_share) in FOLDER_STYLE.items():
        path = root / f"adm_{folder}_{n}.npz"
        if not path.is_file():
            root.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, 64, ord(folder)])
            colour = (np.array(gains, np.float32), np.array(offsets, np.float32))
            images = np.stack([_image(rng, ADM_SIZE, colour, shape_share) for _ in range(n)])
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, images)
            tmp.replace(path)
        out.append(path)
    return out[0], out[1]


def work_weights(job) -> dict:
    """random_state_dict(0) as a .pth file, built once (deterministic, so reused)."""
    import torch

    from ganmetrics.extractors.inception.weights import random_state_dict

    path = Path(job["path"])
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(random_state_dict(0), tmp)
        os.replace(tmp, path)
    return {"path": str(path)}


def work_info(job) -> dict:
    """The machine and the library defaults, read in a worker so this process never loads torch."""
    import torch

    from ganmetrics.engine.runtime import default_workers

    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "default_workers": default_workers(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


ISA_CAPS = {"AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
"""The instruction-set levels below the machine's own that the bench can hold the libraries to."""


def isa_name(kernel: str) -> str:
    """The instruction set of a oneDNN kernel name ("jit:avx512_core" -> "AVX-512")."""
    name = kernel.lower()
    for marker, isa in (("amx", "AMX"), ("avx512", "AVX-512"), ("avx10", "AVX-512"), ("avx2", "AVX2"),
                        ("avx", "AVX"), ("sse41", "SSE4.1")):
        if marker in name:
            return isa
    return kernel


def work_isa(job) -> dict:
    """Which instruction sets oneDNN and ATen use in this process (under its environment's
    caps): Inception-sized 3x3 and 1x1 convolutions run once with ``ONEDNN_VERBOSE`` on, and
    the names of the kernels oneDNN ran read back from its output."""
    import ctypes
    import tempfile

    torch = _torch_setup(job)
    x = torch.rand(16, 64, 35, 35)
    convolutions = [torch.nn.Conv2d(64, 96, 3, padding=1, bias=False), torch.nn.Conv2d(64, 64, 1, bias=False)]
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile() as capture:  # oneDNN prints to file descriptor 1
        sys.stdout.flush()
        libc.fflush(None)
        saved = os.dup(1)
        os.dup2(capture.fileno(), 1)
        try:
            with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for convolution in convolutions:
                    convolution(x)
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        lines = capture.read().decode(errors="replace").splitlines()
    kernels = sorted({line.split(",")[6] for line in lines if ",exec,cpu,convolution," in line})
    detected = next((line.split("isa:", 1)[1] for line in lines if ",info,cpu,isa:" in line), None)
    isas = sorted({isa_name(kernel) for kernel in kernels})
    return {"kernels": kernels, "isa": " + ".join(isas) or "unknown", "onednn_detected": detected,
            "aten_capability": torch.backends.cpu.get_cpu_capability()}


# --------------------------------------------------------------------------------------------
# Workers: each job runs in its own process (`bench.py --worker JSON`)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (DataLoader workers)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _torch_setup(job):
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    return torch


def _timed(torch, device: str, call) -> tuple:
    """(what call() returns, {seconds, cpu_seconds, torch_threads}) of the call alone."""
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    value = call()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return value, {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu_start,
                   "torch_threads": torch.get_num_threads()}


def work_tool(job) -> dict:
    """One tool's FID between folders A and B (its adapter in ``tools.TOOLS``); times the call
    only (after the imports and patches)."""
    import warnings

    warnings.simplefilter("ignore")
    torch = _torch_setup(job)
    try:
        call = TOOLS[job["tool"]].prepare(Inputs.of_job(job))
    except Skip as skip:
        return {"skipped": str(skip)}
    value, timing = _timed(torch, job["device"], lambda: float(call()))
    return {"value": value, **timing}


def work_eval(job) -> dict:
    """FID + IS + KID between folders A and B in one call (``tools.EVAL_TOOLS``), timed alone."""
    import warnings

    warnings.simplefilter("ignore")
    torch = _torch_setup(job)
    settings = EvalSettings(job["kid_subsets"], job["kid_subset_size"], job["is_splits"])
    call = EVAL_TOOLS[job["tool"]][1](Inputs.of_job(job), settings)
    values, timing = _timed(torch, job["device"], call)
    return {"values": values, "kid_subsets": settings.kid_subsets, "kid_subset_size": settings.kid_subset_size,
            "is_splits": settings.is_splits, **timing}


def work_adm(job) -> dict:
    """The ADM evaluator's suite between batches A and B (``tools.ADM_TOOLS``), timed alone."""
    import warnings

    warnings.simplefilter("ignore")
    torch = _torch_setup(job)
    try:
        call = ADM_TOOLS[job["tool"]][1](Inputs.of_job(job))
    except Skip as skip:
        return {"skipped": str(skip)}
    values, timing = _timed(torch, job["device"], call)
    return {"values": values, **timing}



def work_interval(job) -> dict:
    """One row of ``tools.INTERVAL_RUNS`` between folders A and B, timed alone; its results."""
    import warnings

    warnings.simplefilter("ignore")
    torch = _torch_setup(job)
    call = INTERVAL_RUNS[job["run"]][1](Inputs.of_job(job), IntervalSettings(job["replicates"], job["inf_min"]))
    values, timing = _timed(torch, job["device"], call)
    return {"values": values, **timing}

def work_kid_step(job) -> dict:
    """KID alone from random float32 2048-d features (n_gen and n_ref rows): each tool of
    ``tools.KID_STEPS`` on the same arrays, median of ``repeats`` timed calls each (after the
    imports)."""
    import numpy as np

    torch = _torch_setup(job)
    rng = np.random.default_rng([job["seed"], 2048])
    # Non-negative like pool3 features, and apart, so KID is far from 0 and a relative difference means something.
    generated = rng.random((job["n_gen"], 2048), dtype=np.float32)
    reference = rng.random((job["n_ref"], 2048), dtype=np.float32) * np.float32(1.1) + np.float32(0.05)
    settings = EvalSettings(job["kid_subsets"], job["kid_subset_size"])
    out = {"torch_threads": torch.get_num_threads()}
    for name, (_, prepare) in KID_STEPS.items():
        kid, times, value = prepare(settings, job["device"]), [], None
        for _ in range(job["repeats"]):
            value, timing = _timed(torch, job["device"], lambda: kid(generated, reference))
            times.append(timing["seconds"])
        out[name] = {"seconds": statistics.median(times), "all_seconds": times, "kid": value[0], "kid_std": value[1]}
    return out


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
    """One tool of one k-NN step (``tools.NEIGHBOUR_STEPS[job["step"]]``) on clustered random
    float32 2048-d features (n_gen and n_ref rows), alone in this process: median of ``repeats`` timed
    calls, and the step's own peak memory (this process's peak RSS over its RSS before the
    first call, the features already made)."""
    import resource

    torch = _torch_setup(job)
    step = NEIGHBOUR_STEPS[job["step"]]
    generated, reference = clustered_features(job["n_gen"], job["n_ref"], job["seed"])
    call = step.tools[job["tool"]][1](step.k, job["device"], job["batch_size"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, values = [], None
    for _ in range(job["repeats"]):
        try:
            values, timing = _timed(torch, job["device"], lambda: call(generated, reference))
        except Skip as skip:
            return {"error": f"skipped: {skip}"}
        times.append(timing["seconds"])
    step_peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"seconds": statistics.median(times), "all_seconds": times, "values": [float(v) for v in values],
            "step_peak_mib": step_peak, "rss_before_mib": before / 1024, "torch_threads": torch.get_num_threads()}


def work_bare(job) -> dict:
    """The network alone: random uint8 batches already on the device through an
    ``InceptionExtractor`` (resize + forward of the FID tap, GPU numerics with TF32 off). Both
    ganmetrics' network as ganmetrics runs it (``forward_batches``; on the CPU: oneDNN blocked
    layout, parts of ten images with the stem two at a time, one part per core at once on one
    thread each; a round is one batch per core) and the plain PyTorch network as the other tools
    run it (``forward_batch``: each whole batch at once, one batch at a time on all threads)."""
    torch = _torch_setup(job)
    from ganmetrics.engine.loader import ImageBatch
    from ganmetrics.engine.runner import Task, concurrent_parts, forward_batch, forward_batches
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
    wanted = (ours.feature_of_role("frechet"),)
    batches_per_round = concurrent_parts(device)
    rounds = {"ganmetrics": lambda batches: list(forward_batches({"i": Task(ours, wanted)}, batches)),
              "plain": lambda batches: [forward_batch({"i": Task(plain, wanted)}, batch) for batch in batches]}
    generator = torch.Generator().manual_seed(0)
    out = {}
    for set_name, size in (("small", 32), ("large", 256)):
        pixels = torch.randint(0, 256, (job["batch_size"], size, size, 3), dtype=torch.uint8,
                               generator=generator).to(device)
        batch = ImageBatch.of_pixels(pixels)
        out[set_name] = {}
        for name, run in rounds.items():
            count = batches_per_round if name == "ganmetrics" else 1
            times, cpu = [], []
            for i in range(1 + job["bare_batches"]):  # the first is a warm-up
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                run([batch] * count)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    times.append(time.perf_counter() - start)
                    cpu.append(_cpu_seconds() - cpu_start)
            # The fastest round: on a shared machine the others only add other jobs' time.
            out[set_name][name] = {"images_per_s": count * job["batch_size"] / min(times),
                                   "cpu_seconds_per_image": min(cpu) / (count * job["batch_size"]),
                                   "round_seconds": times, "batches_per_round": count}
    out["torch_threads"] = torch.get_num_threads()
    return out


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


def work_reduction(job) -> dict:
    """FID from two 2048-d statistics files: ganmetrics vs pytorch-fid (scipy sqrtm)."""
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    from ganmetrics.metrics.fid import frechet_distance
    from pytorch_fid.fid_score import calculate_frechet_distance

    files = job["stats_files"]

    def load():
        (f1, f2) = (np.load(f) for f in files)
        return f1["mu"], f1["sigma"], f2["mu"], f2["sigma"]

    out = {}
    for name, function in (("ganmetrics", frechet_distance), ("pytorch-fid", calculate_frechet_distance)):
        times, value = [], None
        for _ in range(job["repeats"]):
            start = time.perf_counter()
            mu1, s1, mu2, s2 = load()
            value = float(function(mu1, s1, mu2, s2))
            times.append(time.perf_counter() - start)
        out[name] = {"seconds": statistics.median(times), "all_seconds": times, "value": value}
    return out


def work_stats_files(job) -> dict:
    """``make_stats_files`` in a worker process: the orchestrating one never holds their matrices,
    whose peak every later job's ``ru_maxrss`` would start from (a child's starts from its
    parent's peak)."""
    return {"files": make_stats_files(Path(job["folder"]), meta=job["meta"], weights_sha256=job["weights_sha256"])}


def stats_files(runner: "Runner", folder: Path, meta: bool = False, weights_sha256: str = "0" * 64) -> list[str]:
    """The two files of ``make_stats_files``, made in a worker job (``work_stats_files``)."""
    r = runner.job("stats_files", {"kind": "stats_files", "folder": str(folder), "meta": meta,
                                   "weights_sha256": weights_sha256})
    if "error" in r:
        raise RuntimeError(f"making the statistics files failed: {r['error']}")
    return r["files"]


WORKERS = {"tool": work_tool, "eval": work_eval, "adm": work_adm, "interval": work_interval, "kid_step": work_kid_step,
           "neighbour_step": work_neighbour_step, "bare": work_bare, "decode": work_decode,
           "reduction": work_reduction, "weights": work_weights, "info": work_info, "isa": work_isa,
           "stats_files": work_stats_files}


def make_stats_files(folder: Path, dims: int = 2048, meta: bool = False, weights_sha256: str = "0" * 64) -> list[str]:
    """Two full-rank synthetic statistics files (mu, sigma), as pytorch-fid and ganmetrics read
    them; with ``meta`` also ``n`` and ganmetrics' metadata (recording weights of
    ``weights_sha256``), as ``ganmetrics stats`` writes them (ganmetrics then builds no network
    to compare them, and checks them against the weights file it is given by its hash)."""
    import numpy as np

    files = [folder / f"synthetic_{dims}_{k}{f'_meta_{weights_sha256[:12]}' if meta else ''}.npz" for k in (1, 2)]
    if all(f.is_file() for f in files):
        return [str(f) for f in files]
    folder.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(files, 1):
        rng = np.random.default_rng([7, k])
        samples = dims + dims // 2
        g = rng.standard_normal((dims, samples)) * np.linspace(1.0, 0.05, dims)[:, None]
        sigma = g @ g.T / samples
        mu = rng.standard_normal(dims) * 0.1 + (0.05 if k == 2 else 0.0)
        extra = {}
        if meta:
            extra = {"n": np.int64(samples), "meta": np.array(json.dumps({
                "extractor": "inception-v3-2015-12-05", "dims": dims, "resize": "tf", "weights_sha256": weights_sha256,
                "calibrated": False, "tf32": False, "version": "bench", "source": "synthetic"}))}
        np.savez(path, mu=mu, sigma=sigma, **extra)
    return [str(f) for f in files]


# --------------------------------------------------------------------------------------------
# Running a job in a subprocess and measuring its memory


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


class Runner:
    def __init__(self, out: Path, env: dict):
        self.out, self.env, self.count = out, env, 0
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def job(self, name: str, job: dict) -> dict:
        """Run a worker job in a subprocess; its result merged with the process measurements."""
        self.count += 1
        stem = f"{self.count:02d}_{name}"
        result_path = self.out / "logs" / f"{stem}.json"
        result_path.unlink(missing_ok=True)
        job = dict(job, result=str(result_path))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
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


def combine_bare(results: list[dict]) -> dict:
    """The bare rates of every round: per set and network the fastest (as the tool rows keep
    their fastest call), and each round's own rates under ``per_round`` (for the paired
    fractions of ``summarize_level``; a failed round is ``None`` there)."""
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


# --------------------------------------------------------------------------------------------
# Reporting


def _fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def _rel(x, ref):
    if x is None or ref is None or ref == 0:
        return None
    return (x - ref) / abs(ref)


def _all(r):
    seconds = r.get("all_seconds") or []
    return f" ({', '.join('failed' if x is None else f'{x:.1f}' for x in seconds)})" if len(seconds) > 1 else ""


def _pct(x):
    return "–" if x is None else f"{x:.0%}"


def _fmt_rel(r):
    return "–" if r is None else ("0" if r == 0 else f"{r:+.1e}")


def machine_info(info: dict) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return dict(info, cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), load_before=load)


def summarize(res: dict) -> dict:
    """Derived figures: per instruction-set level its per-set and combined speeds, like-for-like
    differences and targets; then the targets of the shared parts (FID from statistics, memory
    growth, start-up)."""
    derived = {"levels": [summarize_level(level, res) for level in res["levels"]], "targets": []}
    red = res.get("reduction", {}).get("default")
    if red and "ganmetrics" in red:
        speedup = red["pytorch-fid"]["seconds"] / red["ganmetrics"]["seconds"]
        derived["reduction_speedup"] = speedup
        derived["targets"].append(("FID from statistics ≥ 10x faster than scipy sqrtm",
                                   f"{speedup:.2f}x (default BLAS threads)", speedup >= 10))
    rss = res.get("rss")
    if rss and all(r["runs"] and all("error" not in run for run in r["runs"]) for r in rss.values()):
        # Peak RSS is a maximum, and a single run samples it: with one part per core in flight
        # it moves with how the batches' largest layers happen to coincide. Each size's peak is
        # the highest of its runs.
        peaks = {label: max(run["peak_rss_mib"] for run in r["runs"]) for label, r in rss.items()}
        ratio = peaks["4x"] / peaks["1x"]
        derived["rss_ratio"] = ratio
        derived["targets"].append(("peak RSS of `ganmetrics stats` on 4x images within 10% of 1x",
                                   f"{ratio:.3f}x (highest of {len(rss['1x']['runs'])} runs each: "
                                   f"{_fmt(peaks['1x'])} → {_fmt(peaks['4x'])} MiB)",
                                   ratio <= 1.10))
    startup = res.get("startup", {}).get("version")
    if startup and "import_seconds" in startup:
        derived["targets"].append(("start-up: `ganmetrics --version` imports in ≤ 1 s",
                                   f"{startup['import_seconds']:.2f} s of imports, {startup['wall_seconds']:.2f} s "
                                   f"in all (median of {len(startup['runs'])} processes)",
                                   startup["import_seconds"] <= 1.0))
    growth = adm_growth(res)
    if growth:
        derived["targets"].append((
            f"`eval --metrics adm` at {ADM_TARGET_IMAGES:,} vs {ADM_TARGET_IMAGES:,} fits a {ADM_TARGET_RAM_GIB} GB box "
            "(peak RSS projected linearly)",
            f"{growth['projected_gib']:.1f} GiB projected ({_fmt(growth['peak_quarter'], 0)} MiB at {growth['quarter']:,}, "
            f"{_fmt(growth['peak_n'], 0)} MiB at {growth['n']:,} images a side: {growth['kib_per_image']:.0f} KiB an image)",
            growth["projected_gib"] <= ADM_TARGET_RAM_GIB))
    derived["eval"] = summarize_eval(res.get("eval", {}))
    return derived


def paired_fractions(rows: dict, per_round: list, sets: dict, set_names: list) -> list:
    """Each round's ganmetrics-tf call against the bare rate measured right after that round
    (images/s over images/s, over ``set_names``); ``None`` where either failed."""
    out = []
    seconds = [(rows.get(f"ganmetrics-tf/{s}") or {}).get("all_seconds") or [] for s in set_names]
    for round_index, bare in enumerate(per_round):
        if bare is None or any(len(x) <= round_index or x[round_index] is None for x in seconds):
            out.append(None)
            continue
        call = sum(x[round_index] for x in seconds)
        bare_seconds = sum(sets[s]["images"] / bare[s]["ganmetrics"]["images_per_s"] for s in set_names)
        out.append(bare_seconds / call if call else None)
    return out


def bare_round_rates(per_round: list, set_name: str, batch_size: int) -> list[float]:
    """Every bare round's rate (images/s) of ganmetrics' network on ``set_name``, of every
    measurement (``combine_bare``'s ``per_round``; failed ones left out)."""
    return [r[set_name]["ganmetrics"]["batches_per_round"] * batch_size / t
            for r in per_round if r is not None for t in r[set_name]["ganmetrics"]["round_seconds"]]


def median_fraction(rows: dict, rates: dict, sets: dict, set_names: list) -> float | None:
    """ganmetrics-tf's median call against the median of every bare round of every measurement
    (``rates``: {set: ``bare_round_rates``}; images/s over images/s, over ``set_names``); None
    where either is missing. Where other jobs
    move the machine's speed from minute to minute, the fastest of many short bare rounds is
    faster than the fastest of a few long calls for that alone; medians are not biased so."""
    calls, bare_seconds = [], []
    for s in set_names:
        seconds = [x for x in (rows.get(f"ganmetrics-tf/{s}") or {}).get("all_seconds") or [] if x]
        if not seconds or not rates.get(s):
            return None
        calls.append(statistics.median(seconds))
        bare_seconds.append(sets[s]["images"] / statistics.median(rates[s]))
    return sum(bare_seconds) / sum(calls)


def cpu_fraction(rows: dict, bare: dict, sets: dict, set_names: list, device: str) -> float | None:
    """The bare network's CPU seconds for the images of ``set_names`` (its least per image of any
    round) over the CPU seconds of ganmetrics-tf's calls (the least of any round, decoding
    workers included): the fraction of the bare rate by CPU time, which other jobs on a shared machine
    move less than wall time (they take cores, not CPU time of ours). None on a GPU, or where
    either was not measured."""
    if not device.startswith("cpu"):
        return None
    calls = [(rows.get(f"ganmetrics-tf/{s}") or {}).get("least_cpu_seconds") for s in set_names]
    per_image = [bare[s]["ganmetrics"].get("cpu_seconds_per_image") for s in set_names]
    if None in calls or None in per_image or not sum(calls):
        return None
    return sum(sets[s]["images"] * p for s, p in zip(set_names, per_image)) / sum(calls)


def summarize_level(level: dict, res: dict) -> dict:
    """One instruction-set level: per set (and both) each tool's speed, the fastest other tool,
    ganmetrics' speed-up over it (like for like), the bare rates; and the level's targets."""
    rows, sets, bare = level.get("rows", {}), res["sets"], level.get("bare", {})
    derived = {"per_set": {}, "targets": []}
    ok = lambda r: r and "value" in r  # noqa: E731

    def speed(tool, set_names):
        parts = [rows.get(f"{tool}/{s}") for s in set_names]
        if not all(ok(p) for p in parts):
            return None
        return sum(sets[s]["images"] for s in set_names) / sum(p["seconds"] for p in parts)

    groups = {**{s: [s] for s in sets}, "both": list(sets)}
    for group, set_names in groups.items():
        speeds = {t: speed(t, set_names) for t in res["tools"]}
        others = {t: v for t, v in speeds.items() if not TOOLS[t].ours and v}
        entry = {"speeds": speeds}
        if others:
            fastest = max(others, key=others.get)
            ours = TOOLS[fastest].reference
            equal = all(
                ok(rows.get(f"{fastest}/{s}")) and ok(rows.get(f"{ours}/{s}"))
                and abs(_rel(rows[f"{fastest}/{s}"]["value"], rows[f"{ours}/{s}"]["value"])) <= EQUAL_RTOL
                for s in set_names
            )
            entry.update(fastest=fastest, ours=ours, speedup=(speeds[ours] / others[fastest]) if speeds[ours] else None,
                         equal=equal)
        if speeds.get("ganmetrics-tf") and all(s in bare for s in set_names):
            rates = {s: bare_round_rates(bare.get("per_round") or [], s, res["args"]["batch_size"]) for s in set_names}
            def bare_speed(network):
                return sum(sets[s]["images"] for s in set_names) / sum(
                    sets[s]["images"] / bare[s][network]["images_per_s"] for s in set_names)
            entry.update(bare=bare_speed("ganmetrics"), bare_plain=bare_speed("plain"),
                         fraction=speeds["ganmetrics-tf"] / bare_speed("ganmetrics"),
                         paired=paired_fractions(rows, bare.get("per_round") or [], sets, set_names),
                         median=median_fraction(rows, rates, sets, set_names),
                         bare_spread={s: (min(r), max(r)) for s, r in rates.items() if r},
                         cpu_fraction=cpu_fraction(rows, bare, sets, set_names, res["args"]["device"]))
        peaks = {t: max(rows[f"{t}/{s}"]["peak_rss_mib"] for s in set_names)
                 for t in res["tools"] if all(ok(rows.get(f"{t}/{s}")) for s in set_names)}
        ours_peak = [v for t, v in peaks.items() if TOOLS[t].ours]
        others_peak = {t: v for t, v in peaks.items() if not TOOLS[t].ours}
        if ours_peak and others_peak:
            lowest = min(others_peak, key=others_peak.get)
            entry.update(peak_ours=max(ours_peak), peak_lowest_other=others_peak[lowest], lowest_other=lowest)
        derived["per_set"][group] = entry

    name, both = level["isa"]["isa"], derived["per_set"]["both"]
    if both.get("speedup"):
        goal = " (goal at AVX-512: ≥ 2x)" if "AVX-512" in name else ""
        derived["targets"].append((
            f"{name}: end to end ≥ 1.5x the fastest other tool, equal values{goal}",
            f"{both['speedup']:.2f}x vs {both['fastest']} (both sets; "
            + ", ".join(f"{SETS[s]}: {derived['per_set'][s].get('speedup') or 0:.2f}x vs {derived['per_set'][s].get('fastest')}"
                        for s in sets)
            + f"); values {'equal' if both['equal'] else 'NOT equal'} within {EQUAL_RTOL:g}",
            both["speedup"] >= 1.5 and both["equal"]))
    if "fraction" in both:
        derived["targets"].append((
            f"{name}: ganmetrics ≥ 90% of the bare network's rate",
            f"{both['fraction']:.1%} (both sets; "
            + ", ".join(f"{SETS[s]}: {derived['per_set'][s].get('fraction', 0):.1%}" for s in sets) + ")",
            both["fraction"] >= 0.9))
    if "peak_ours" in both:
        derived["targets"].append((
            f"{name}: peak RSS of ganmetrics ≤ the lowest other tool's (batch {res['args']['batch_size']})",
            f"{_fmt(both['peak_ours'], 0)} MiB (highest ganmetrics row) vs {_fmt(both['peak_lowest_other'], 0)} MiB "
            f"({both['lowest_other']}, the lowest other tool's highest row)",
            both["peak_ours"] <= both["peak_lowest_other"]))
    large = derived["per_set"].get("large", {})
    if res["args"]["device"].startswith("cuda") and large.get("speeds", {}).get("ganmetrics-tf"):
        speed_large, workers = large["speeds"]["ganmetrics-tf"], res["args"]["workers"]
        decode = (res.get("decode", {}).get("large", {}).get("images_per_s") or 0) * max(workers, 1)
        bound = "decoding" if decode and decode < large.get("bare", float("inf")) else "the network (compute)"
        derived["targets"].append((
            "≥ 2,000 images/s for 256px JPEGs on the GPU at fp32",
            f"{speed_large:,.0f} images/s, {large.get('fraction', 0):.0%} of the bare forward rate "
            f"({_fmt(large.get('bare'), 0)} images/s); decoding at most {_fmt(decode, 0)} images/s "
            f"({max(workers, 1)} workers x the 1-process rate): bound by {bound}",
            speed_large >= 2000))
    return derived


def summarize_eval(rows: dict) -> dict:
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
                "rel": {k: _rel(other["values"][k], ours["values"][k]) for k in ("fid", "kid", "kid_std", "is_mean")},
            }
    return out


def render(res: dict, derived: dict) -> str:
    m, a = res["machine"], res["args"]
    lines = [
        f"Run {res['date']} on {m['cpu']}, {m['cores']} cores"
        + (f", GPU {m['cuda']}" if m["cuda"] else "")
        + f"; torch {m['torch']} ({m['torch_threads']} intra-op threads by default), Python {m['python']}; "
        f"load average before the run {m['load_before']}.",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Sizes: {res['sets']['small']['images']} 32px PNGs and {res['sets']['large']['images']} 256px JPEGs "
        f"(half in A, half in B); dims {a['dims']}, batch size {a['batch_size']}, device {a['device']}, "
        f"decoding workers {a['workers']}"
        + (f", torch threads {a['threads']}" if a["threads"] else "")
        + ". Weights: `random_state_dict(0)` (uncalibrated).",
        "",
        "Instruction-set levels (what oneDNN ran for a probe convolution under each level's settings): "
        + "; ".join(_level_text(level) for level in res["levels"]) + ".",
    ]
    for skipped in res.get("skipped_levels", []):
        lines.append(f"\nNot run: {skipped}")
    for level, level_derived in zip(res["levels"], derived["levels"]):
        lines += render_level(level, level_derived, res)

    red = res.get("reduction", {})
    if red:
        lines += ["", "FID from two 2048-d statistics files (synthetic full-rank covariances; load + reduce, "
                  f"median of {a['fid_repeats']}; as the machine is):", "",
                  "| BLAS threads | ganmetrics `frechet_distance` s | pytorch-fid `calculate_frechet_distance` (scipy sqrtm) s | speed-up | FID ganmetrics | FID pytorch-fid | rel. diff |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for label, r in red.items():
            if "error" in r:
                lines.append(f"| {label} | {r['error']} | | | | | |")
                continue
            g, p = r["ganmetrics"], r["pytorch-fid"]
            lines.append(f"| {label} | {g['seconds']:.2f} | {p['seconds']:.2f} | {p['seconds'] / g['seconds']:.2f}x | "
                         f"{g['value']:.6f} | {p['value']:.6f} | {_fmt_rel(_rel(p['value'], g['value']))} |")
    lines += render_eval(res, derived)
    lines += render_neighbour_steps(res)
    lines += render_adm(res)
    lines += render_interval(res)
    rss = res.get("rss")
    if rss:
        lines += ["", "`ganmetrics stats` memory, 32px PNGs, separate processes (as the machine is):", "",
                  "| images | seconds | peak RSS MiB | peak tree PSS MiB |", "| ---: | ---: | ---: | ---: |"]
        for label, r in rss.items():
            for number, run in enumerate(r["runs"], 1):
                if "error" in run:
                    lines.append(f"| {r['images']} ({label}, run {number}) | {run['error']} | | |")
                else:
                    lines.append(f"| {r['images']} ({label}, run {number}) | {_fmt(run['process_seconds'])} | "
                                 f"{_fmt(run['peak_rss_mib'], 0)} | {_fmt(run['peak_pss_mib'], 0)} |")
        if "rss_ratio" in derived:
            lines.append(f"\nRatio 4x / 1x of the highest peak RSS of each size: {derived['rss_ratio']:.3f}.")
    lines += render_startup(res.get("startup", {}))
    targets = [t for level in derived["levels"] for t in level["targets"]] + derived["targets"]
    if targets:
        lines += ["", "Targets (issues 5 and 15):", "", "| target | measured | met? |", "| --- | --- | --- |"]
        for target, measured, met in targets:
            lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    lines += ["", "Tools: " + "; ".join(f"{t}: {TOOLS[t].note}" for t in res["tools"]) + "."]
    return "\n".join(lines)


def _level_text(level: dict) -> str:
    isa = level["isa"]
    caps = " ".join(f"{k}={v}" for k, v in level["caps"].items())
    return (f"**{isa['isa']}** ({caps or 'as the machine is'}: oneDNN kernels {', '.join(isa['kernels'])}, "
            f"ATen {isa['aten_capability']})")


def render_level(level: dict, derived: dict, res: dict) -> list[str]:
    """One instruction-set level's tables: every tool on every set, the speeds, where the time goes."""
    a, rows, name = res["args"], level.get("rows", {}), level["isa"]["isa"]
    if not (rows or level.get("bare") or res.get("decode")):
        return []
    lines = ["", f"### {name}" + (" (held to it: " + ", ".join(f"`{k}={v}`" for k, v in level["caps"].items()) + ")"
                                  if level["caps"] else " (as the machine is)"), ""]
    if rows:
        lines += ["| tool | images | FID call s" + (f" (best of {a['rounds']}; all)" if a["rounds"] > 1 else "")
                  + " | images/s | CPU s | peak RSS MiB | peak tree PSS MiB | FID | vs ganmetrics (same resize) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for set_name, info in res["sets"].items():
        for tool in res["tools"]:
            r = rows.get(f"{tool}/{set_name}")
            if r is None:
                continue
            label = f"{tool} · {SETS[set_name]}"
            if "skipped" in r or "error" in r:
                lines.append(f"| {label} | {info['images']} | – | – | – | – | – | – | {r.get('skipped') or r.get('error')} |")
                continue
            reference = TOOLS[tool].reference
            ref = rows.get(f"{reference}/{set_name}") or {}
            is_reference = reference == tool
            rel = None if is_reference else _rel(r["value"], ref.get("value"))
            compare = "(reference)" if is_reference else (f"{_fmt_rel(rel)} vs {reference}" if rel is not None else "–")
            lines.append(
                f"| {label} | {info['images']} | {_fmt(r['seconds'])}{_all(r)} | {_fmt(info['images'] / r['seconds'], 2)} | {_fmt(r.get('cpu_seconds'))} | "
                f"{_fmt(r['peak_rss_mib'], 0)} | {_fmt(r['peak_pss_mib'], 0)} | {r['value']:.6g} | {compare} |")
    if rows:
        lines += ["", f"Speed at {name} (images/s, FID call only; both sets = all images / summed seconds):", "",
                  "| | " + " | ".join(res["tools"]) + " | fastest other | ganmetrics speed-up (like for like) |",
                  "| --- |" + " ---: |" * (len(res["tools"]) + 2)]
        for group, entry in derived["per_set"].items():
            cells = [_fmt(entry["speeds"].get(t), 2) for t in res["tools"]]
            speedup = (f"{entry['speedup']:.2f}x ({entry['ours']} vs {entry['fastest']}"
                       f"{'' if entry['equal'] else '; values differ'})") if entry.get("speedup") else "–"
            lines.append(f"| {SETS.get(group, 'both sets')} | " + " | ".join(cells) + f" | {entry.get('fastest', '–')} | {speedup} |")
        cpu_cells = []
        for tool in res["tools"]:
            parts = [rows.get(f"{tool}/{s}") or {} for s in res["sets"]]
            cpu = [p.get("cpu_seconds") for p in parts]
            cpu_cells.append("–" if None in cpu else f"{sum(cpu) / sum(i['images'] for i in res['sets'].values()):.3f}")
        lines.append("| CPU s per image, both sets (less sensitive to other jobs) | " + " | ".join(cpu_cells) + " | | |")

    bare, decode = level.get("bare", {}), res.get("decode", {})
    if bare or decode:
        lines += ["", f"Where the time goes at {name} (ganmetrics, resize tf):", "",
                  "| | bare network images/s (ganmetrics) | bare plain network images/s (the other tools') "
                  "| ganmetrics end to end images/s | fraction of bare | fraction of bare by CPU seconds "
                  "| decode only images/s (1 process) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for group, entry in derived["per_set"].items():
            dec = decode.get(group, {}).get("images_per_s") if group in res["sets"] else None
            lines.append(f"| {SETS.get(group, 'both sets')} | {_fmt(entry.get('bare'), 2)} | "
                         f"{_fmt(entry.get('bare_plain'), 2)} | {_fmt(entry['speeds'].get('ganmetrics-tf'), 2)} | "
                         f"{_pct(entry.get('fraction'))} | {_pct(entry.get('cpu_fraction'))} | {_fmt(dec, 0)} |")
        paired = derived["per_set"].get("both", {}).get("paired") or []
        if len(paired) > 1:
            lines.append("\nPaired by round (each round's ganmetrics-tf calls against the bare rate measured "
                         "right after that round, both sets): "
                         + ", ".join(_pct(x) for x in paired)
                         + (f"; median {_pct(statistics.median(x for x in paired if x is not None))}."
                            if any(x is not None for x in paired) else "."))
        both = derived["per_set"].get("both", {})
        if both.get("median") is not None and len(paired) > 1:
            median = both["median"]
            spread = ", ".join(f"{SETS[s]} {low:.2f}-{high:.2f}" for s, (low, high) in both["bare_spread"].items())
            lines.append(f"\nMedians (the median call against the median of every bare round, both sets): "
                         f"{median:.1%}. The bare rounds' rates (images/s) spread {spread}: the fastest of "
                         "many short rounds against the fastest of a few long calls is biased against the calls "
                         "where the machine's speed moves between them.")
        if bare:
            measured = len(bare.get("per_round") or [None])
            lines.append(f"\nBare network: batches of {a['batch_size']} random uint8 images on the device, "
                         f"an `InceptionExtractor` (resize tf + forward) at dims {a['dims']}, fastest of "
                         f"{a['bare_batches']} rounds after one warm-up"
                         + (f", measured after each of the {measured} tool rounds (the fastest of all counts)"
                            if measured > 1 else "")
                         + f", {bare.get('torch_threads')} torch threads. "
                         "ganmetrics' network runs as ganmetrics runs it (`forward_batches`): in oneDNN's blocked "
                         "layout on the CPU (bit-identical outputs), in parts of ten images with the stem two at a "
                         "time, one part per core at once on one thread each (a round is one batch per core); "
                         "the plain one is PyTorch's NCHW path (`forward_batch`), one batch at a time on all "
                         "threads, as pytorch-fid, clean-fid, torch-fidelity and torchmetrics run it.")
    return lines


def render_startup(startup: dict) -> list[str]:
    """The start-up table: import time and wall time of each measured command, fresh processes."""
    if not startup:
        return []
    lines = ["", "Start-up (fresh processes, median of each; import time: every module the process imported, "
             "from `python -X importtime`):", "",
             "| command | imports s | wall s (whole process) | peak RSS MiB | torch imported |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in startup.values():
        if "error" in r:
            lines.append(f"| `{r['label']}` | {r['error']} | | | |")
            continue
        lines.append(f"| `{r['label']}` | {r['import_seconds']:.2f} | {r['wall_seconds']:.2f} | "
                     f"{_fmt(r['peak_rss_mib'], 0)} | {'yes' if r['torch'] else 'no'} |")
    return lines


def _bank_mib(n: int) -> float:
    return n * BANK_BYTES / 2**20


def render_eval(res: dict, derived: dict) -> list[str]:
    """The eval table (ganmetrics eval vs torch-fidelity, FID + IS + KID) and the KID-step table."""
    a, lines = res["args"], []
    rows, steps = res.get("eval", {}), res.get("kid_step", {})
    if rows:
        lines += ["", "`ganmetrics eval A B --metrics fid,is,kid` vs torch-fidelity `calculate_metrics(fid=True, "
                  f"isc=True, kid=True)` (resize tf, dims {a['dims']}; KID: {a['kid_subsets']} subsets, seed 2020, "
                  "the same subset size for both; the call only, not the imports):", "",
                  "| tool · set | images | eval call s | images/s | CPU s | peak RSS MiB | peak tree PSS MiB | FID "
                  "| IS mean (reported) | KID mean | KID subset size | FID vs ganmetrics | KID vs ganmetrics |",
                  "| --- |" + " ---: |" * 12]
        for set_name, info in res["sets"].items():
            for tool in EVAL_TOOLS:
                r = rows.get(f"{tool}/{set_name}")
                if r is None:
                    continue
                label = f"{tool} · {SETS[set_name]}"
                if "values" not in r:
                    lines.append(f"| {label} | {info['images']} |" + " – |" * 10 + f" {r.get('error', '–')} |")
                    continue
                v, d = r["values"], derived["eval"].get(f"{tool}/{set_name}")
                compare = (["(reference)"] * 2 if tool == EVAL_REFERENCE else
                           [_fmt_rel(d["rel"][k]) if d else "–" for k in ("fid", "kid")])
                lines.append(
                    f"| {label} | {info['images']} | {_fmt(r['seconds'])}{_all(r)} | {_fmt(info['images'] / r['seconds'], 2)} | "
                    f"{_fmt(r.get('cpu_seconds'))} | {_fmt(r['peak_rss_mib'], 0)} | {_fmt(r['peak_pss_mib'], 0)} | "
                    f"{v['fid']:.6g} | {v['is_mean']:.6g} | {v['kid']:.6g} | {r['kid_subset_size']} | "
                    f"{compare[0]} | {compare[1]} |")
        speedups = [f"{SETS[key.split('/')[1]]}: {d['speedup']:.2f}x vs {key.split('/')[0]}"
                    for key, d in derived["eval"].items()]
        if speedups:
            lines.append(f"\nganmetrics eval speed-up (eval call s of the other / ours): {', '.join(speedups)}.")
        lines.append("\nGenerated side B (IS; KID's first indices), reference A, in both tools. IS is reported, not "
                     "compared: torch-fidelity shuffles the images before its splits (`samples_shuffle=True`), "
                     "ganmetrics splits them in order, so the means differ by design (IS splits: 10, or the generated count "
                     "when smaller, the same for both). FID and KID are computed from "
                     "the same features, KID on the same subsets (torch-fidelity's `RandomState(2020)` stream).")
    if steps:
        lines += ["", "KID step alone: random float32 2048-d features of the eval rows' counts, "
                  f"median of {a['kid_repeats']} runs, {steps.get('torch_threads', '–')} torch threads:", "",
                  "| set | N generated / reference | subsets x size | feature banks MiB (4 B x 2048 x N, gen + ref) "
                  "| ganmetrics `kernel_inception_distance` s | torch-fidelity `kid_features_to_metric` s | speed-up "
                  "| KID ganmetrics | KID torch-fidelity | rel. diff |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for set_name in SETS:
            r = steps.get(set_name)
            if r is None:
                continue
            sizes = f"{r['n_gen']} / {r['n_ref']}"
            banks = f"{_bank_mib(r['n_gen']):.2f} + {_bank_mib(r['n_ref']):.2f}"
            if "error" in r:
                lines.append(f"| {SETS[set_name]} | {sizes} | | {banks} | {r['error']} | | | | | |")
                continue
            g, t = r["ganmetrics"], r["torch-fidelity"]
            lines.append(f"| {SETS[set_name]} | {sizes} | {r['kid_subsets']} x {r['kid_subset_size']} | {banks} | "
                         f"{g['seconds']:.3f} | {t['seconds']:.3f} | {t['seconds'] / g['seconds']:.2f}x | "
                         f"{g['kid']:.6g} | {t['kid']:.6g} | {_fmt_rel(_rel(t['kid'], g['kid']))} |")
        lines.append("\nFeature banks: KID keeps every 2048-d float32 feature of both sides, 8 KiB an image "
                     "(4 B x 2048 x N per side: 391 MiB per side at 50,000 images); both KID steps add three m x m "
                     "kernel matrices per subset (ganmetrics float64, 24 MB at m = 1000; torch-fidelity float32). "
                     + "; ".join(f"{name}: {note}" for name, (note, _) in KID_STEPS.items()) + ".")
    if rows:
        lines.append("\nEval tools: " + "; ".join(f"{name}: {note}" for name, (note, _) in EVAL_TOOLS.items()) + ".")
    return lines


def render_neighbour_steps(res: dict) -> list[str]:
    """One table per k-NN step (P/R, D/C): each tool's time, step memory and values per size."""
    lines, a = [], res["args"]
    for name, rows in res.get("neighbour_steps", {}).items():
        step = NEIGHBOUR_STEPS[name]
        ours = next(iter(step.tools))
        first, second = step.values
        lines += ["", f"{name.upper()} step alone (k = {step.k}): clustered random float32 2048-d features, median of "
                  f"{a['pr_repeats']} runs, each tool in its own process; step peak = the process's peak RSS minus its "
                  "RSS before the first call (features and imports already there):", "",
                  f"| N generated / reference | tool | s | speed-up of {ours} | step peak MiB | peak RSS MiB | {first} "
                  f"| {second} | vs {ours} |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for key, r in rows.items():
            tool, label = key.split("/", 1)
            sizes = f"{r['n_gen']} / {r['n_ref']}" + (f" ({SETS[label]})" if label in SETS else "")
            if "error" in r:
                lines.append(f"| {sizes} | {tool} | {r['error']} | | | | | | |")
                continue
            reference = rows.get(f"{ours}/{label}", {})
            speedup = (f"{r['seconds'] / reference['seconds']:.2f}x" if tool != ours and "seconds" in reference else "")
            # torch-fidelity reports float32 fractions: a difference below 1e-6 is the same count.
            same = ("(reference)" if tool == ours else "–" if "values" not in reference else
                    ", ".join("equal" if abs(v) < 1e-6 else f"{v:+.2g}"
                              for v in (x - y for x, y in zip(r["values"], reference["values"]))))
            lines.append(f"| {sizes} | {tool} | {r['seconds']:.3f} | {speedup} | {_fmt(r['step_peak_mib'])} | "
                         f"{_fmt(r['peak_rss_mib'])} | {r['values'][0]:.6g} | {r['values'][1]:.6g} | {same} |")
        lines.append("\nTools: " + "; ".join(f"{tool}: {note}" for tool, (note, _) in step.tools.items()) + ".")
    return lines


ADM_KEYS = ("is_mean", "fid", "sfid", "precision", "recall")
ADM_MIN_IMAGES = 50  # the smallest ADM batches of the memory row (P/R needs more than k images)
ADM_TARGET_IMAGES, ADM_TARGET_RAM_GIB = 50_000, 24  # the issue: 50k vs 50k on a 24 GB CPU box


def adm_growth(res: dict) -> dict | None:
    """Peak RSS of ganmetrics' ADM suite at a quarter and at the whole ``--n-adm``: MiB an image
    of growth, and the peak projected linearly to 50,000 a side (an over-estimate: the distance
    blocks stop growing at 10,000 images)."""
    whole, quarter = res.get("adm", {}).get(ADM_REFERENCE, {}), res.get("adm_quarter", {})
    if "peak_rss_mib" not in whole or "peak_rss_mib" not in quarter:
        return None
    n, m = res["args"]["n_adm"], quarter["images"]
    if n <= m:
        return None
    per_image = (whole["peak_rss_mib"] - quarter["peak_rss_mib"]) / (n - m)
    projected = whole["peak_rss_mib"] + max(0.0, per_image) * (ADM_TARGET_IMAGES - n)
    return {"n": n, "quarter": m, "peak_n": whole["peak_rss_mib"], "peak_quarter": quarter["peak_rss_mib"],
            "kib_per_image": per_image * 1024, "projected_gib": projected / 1024}


def render_adm(res: dict) -> list[str]:
    """The ADM suite table: ganmetrics `eval --metrics adm` vs torch-fidelity, on two ADM batches."""
    rows = res.get("adm")
    if not rows:
        return []
    n = res["args"]["n_adm"]
    lines = ["", f"`ganmetrics eval A.npz B.npz --metrics adm` vs torch-fidelity `calculate_metrics(fid=True, "
             f"isc=True, prc=True)` on two ADM batches of {n} {ADM_SIZE}px images each (resize tf; the call only, "
             "not the imports):", "",
             "| tool | eval call s | images/s | CPU s | peak RSS MiB | peak tree PSS MiB | IS (reported) | FID | sFID "
             "| precision | recall | FID vs ganmetrics |", "| --- |" + " ---: |" * 11]
    ours = rows.get(ADM_REFERENCE, {}).get("values")
    for tool, (note, _) in ADM_TOOLS.items():
        r = rows.get(tool, {})
        if "values" not in r:
            reason = r.get("skipped") or r.get("error", "–")
            lines.append(f"| {tool} |" + " – |" * 10 + f" {reason} |")
            continue
        v = r["values"]
        compare = "(reference)" if tool == ADM_REFERENCE else (_fmt_rel(_rel(v["fid"], ours["fid"])) if ours else "–")
        lines.append(f"| {tool} | {_fmt(r['seconds'])}{_all(r)} | {_fmt(2 * n / r['seconds'], 2)} | "
                     f"{_fmt(r.get('cpu_seconds'))} | {_fmt(r['peak_rss_mib'], 0)} | {_fmt(r['peak_pss_mib'], 0)} | "
                     + " | ".join(f"{v[k]:.6g}" if k in v else "–" for k in ADM_KEYS) + f" | {compare} |")
    growth = adm_growth(res)
    if growth:
        lines.append(f"\nMemory against the image count (ganmetrics, batch 50): peak RSS {_fmt(growth['peak_quarter'], 0)} "
                     f"MiB at {growth['quarter']:,} images a side, {_fmt(growth['peak_n'], 0)} MiB at {growth['n']:,}: "
                     f"{growth['kib_per_image']:.0f} KiB an image (P/R keeps each side's pool3 bank, 8 KiB an image, "
                     "and its distance blocks grow to 10,000 x 10,000).")
    lines.append("\nIS is reported, not compared (torch-fidelity shuffles before its splits); precision and recall "
                 "differ by design where ganmetrics runs ADM's float16 distances. ADM tools: "
                 + "; ".join(f"{name}: {note}" for name, (note, _) in ADM_TOOLS.items()) + ".")
    return lines


def render_interval(res: dict) -> list[str]:
    """The table of what ``--ci`` and ``fid_inf`` add to a plain FID run (``tools.INTERVAL_RUNS``)."""
    rows, a = res.get("interval", {}), res["args"]
    if not rows:
        return []
    lines = ["", f"How sure is the number: what `--ci {a['ci_replicates']}` and `fid_inf` add to a plain FID run "
             f"(dims {a['dims']}, the call only; FID∞ from --inf-min M to N):", "",
             "| run · set | images | call s | extra s | extra s per replicate | CPU s | peak RSS MiB | extra RSS MiB "
             "| FID | interval or FID∞ ± s.e. |", "| --- |" + " ---: |" * 9]
    for set_name, info in res["sets"].items():
        plain = rows.get(f"{INTERVAL_REFERENCE}/{set_name}") or {}
        for run in INTERVAL_RUNS:
            r = rows.get(f"{run}/{set_name}")
            if r is None:
                continue
            label = f"{run} · {SETS[set_name]}"
            if "values" not in r:
                lines.append(f"| {label} | {info['images']} |" + " – |" * 7 + f" {r.get('error', '–')} |")
                continue
            v, base = r["values"], "values" in plain
            extra = r["seconds"] - plain["seconds"] if base and run != INTERVAL_REFERENCE else None
            per_replicate = extra / a["ci_replicates"] if extra is not None and "fid_ci_low" in v else None
            memory = r["peak_rss_mib"] - plain["peak_rss_mib"] if base and run != INTERVAL_REFERENCE else None
            sure = (f"[{v['fid_ci_low']:.4g}, {v['fid_ci_high']:.4g}]" if "fid_ci_low" in v else
                    f"{v['fid_inf']:.4g} ± {v['fid_inf_se']:.2g} (M = {r['inf_min']})" if "fid_inf" in v else "–")
            lines.append(f"| {label} | {info['images']} | {_fmt(r['seconds'])} | {_fmt(extra)} | {_fmt(per_replicate, 2)} "
                         f"| {_fmt(r.get('cpu_seconds'))} | {_fmt(r['peak_rss_mib'], 0)} | {_fmt(memory, 0)} | "
                         f"{v['fid']:.6g} | {sure} |")
    lines.append("\nExtra: over the plain run of the same set. `--ci` keeps both sides' feature banks (4 B x dims "
                 "an image) and recomputes each replicate's Gaussians from them (2 n dims² float64 flops a side for "
                 "its n = 63% of images of nonzero weight) plus one FID trace square root; FID∞ keeps the generated "
                 "bank and computes 15 subset Gaussians and FIDs. Runs: "
                 + "; ".join(f"{name}: {note}" for name, (note, _) in INTERVAL_RUNS.items()) + ".")
    return lines


def write_markdown(path: Path, body: str, begin: str, end: str, title: str) -> None:
    block = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.is_file() else f"# Benchmarks\n\n{title}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-small", type=int, default=2000, help="32x32 PNGs in all, half in A and half in B (default 2000)")
    p.add_argument("--n-large", type=int, default=500, help="256x256 JPEGs in all, half in A and half in B (default 500)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="work folder (default bench/out, git-ignored)")
    p.add_argument("--dims", type=int, default=2048, choices=(64, 192, 768, 2048))
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding workers for every tool that takes the number (default: ganmetrics' default, CPUs - 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every tool process (default: torch's)")
    p.add_argument("--tools", default=None,
                   help=f"comma-separated subset of {','.join(tool_names(cuda=False))} (with --device cuda also "
                        f"{','.join(sorted(set(tool_names(cuda=True)) - set(tool_names(cuda=False))))}; default all)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every tool this many times, in rotated order, and keep the fastest (default 1)")
    p.add_argument("--bare-batches", type=int, default=3,
                   help="timed batches per size for the bare network; the fastest counts (default 3)")
    p.add_argument("--fid-repeats", type=int, default=3, help="repeats of each FID-from-statistics timing (default 3)")
    p.add_argument("--rss-n", type=int, default=500, help="images for the 1x `ganmetrics stats` memory run (4x: 4 times as many)")
    p.add_argument("--rss-repeats", type=int, default=2, help="runs of each memory measurement; the highest peak counts (default 2)")
    p.add_argument("--kid-subsets", type=int, default=100,
                   help="KID subsets for the eval rows and the KID step, both tools (default 100, both tools' default)")
    p.add_argument("--kid-repeats", type=int, default=3, help="repeats of each KID-step timing; the median counts (default 3)")
    p.add_argument("--pr-sizes", type=lambda text: [int(n) for n in text.split(",") if n], default=[],
                   help="comma-separated N: also run the P/R and D/C steps on N vs N random features (e.g. 10000,50000)")
    p.add_argument("--pr-repeats", type=int, default=3,
                   help="repeats of each P/R- and D/C-step timing; the median counts (default 3)")
    p.add_argument("--n-adm", type=int, default=1000,
                   help="64px images in each ADM batch of the `eval --metrics adm` rows (default 1000; the issue's "
                        "figure is 10000)")
    p.add_argument("--ci-replicates", type=int, default=100, help="B of the --ci row (default 100)")
    p.add_argument("--inf-min", type=int, default=None,
                   help="--inf-min of the fid_inf row (default: a fifth of the set's B folder; the paper's 5000 "
                        "needs more images than these sets hold)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: tools,bare,decode,reduction,rss,eval,kid,pr,dc,"
                   "adm,interval,startup (eval: the `ganmetrics eval` vs torch-fidelity rows; kid, pr, dc: the KID, P/R "
                   "and D/C steps alone; adm: the `eval --metrics adm` rows; interval: the cost of --ci and fid_inf)")
    p.add_argument("--isa", choices=("all", "native"), default="all",
                   help="instruction-set levels for the tool rows and the bare network: all the machine allows "
                        "(as it is, and held to AVX2 on an AVX-512 machine; default) or native only")
    p.add_argument("--startup-repeats", type=int, default=3, help="processes per start-up measurement; the median counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md", help="file to write the tables into")
    p.add_argument("--no-markdown", action="store_true", help="print only; leave BENCHMARKS.md alone")
    p.add_argument("--sweep-threads", action="store_true",
                   help="instead: ganmetrics (tf) on the small set for torch threads x decoding workers")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_sweep(args, runner, folders, weights, base_job, command) -> None:
    configs = [(t, w) for t in (1, 2) for w in (0, 1, 2)]
    rows = []
    for threads, workers in configs:
        job = dict(base_job, tool="ganmetrics-tf", a=str(folders["small"][0]), b=str(folders["small"][1]),
                   threads=threads, workers=workers)
        r = runner.job(f"sweep_t{threads}_w{workers}", job)
        rows.append((threads, workers, r))
    n = args.n_small
    lines = [f"Threads sweep {datetime.datetime.now().isoformat(timespec='seconds')}: ganmetrics `--resize tf` "
             f"on {n} 32px PNGs, dims {args.dims}, batch {args.batch_size}, device {args.device}. Command: `{command}`",
             "", "| torch threads | decoding workers | FID call s | images/s | CPU s | FID |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for threads, workers, r in rows:
        if "error" in r:
            lines.append(f"| {threads} | {workers} | {r['error']} | | | |")
        else:
            lines.append(f"| {threads} | {workers} | {r['seconds']:.1f} | {n / r['seconds']:.2f} | "
                         f"{_fmt(r.get('cpu_seconds'))} | {r['value']:.6g} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_markdown:
        write_markdown(args.markdown, body, SWEEP_BEGIN, SWEEP_END, "")


def run_eval(args, runner, folders, base, res, skip) -> None:
    """The eval rows (each tool of ``EVAL_TOOLS`` on each size set, ``--rounds`` times) and the
    KID step on random features of each set's counts. KID's subset size: min(1000, the
    smaller side), IS's splits min(10, the generated side), the same for both tools."""
    counts = {s: (len(list(folders[s][0].iterdir())), len(list(folders[s][1].iterdir()))) for s in SETS}
    subset_size = {s: min(KID_MAX_SUBSET, *counts[s]) for s in SETS}
    if "eval" not in skip:
        runs: dict[str, list] = {}
        names = list(EVAL_TOOLS)
        for round_index in range(args.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for set_name in SETS:
                a, b = folders[set_name]
                for tool in order:
                    job = dict(base, kind="eval", tool=tool, a=str(a), b=str(b), kid_subsets=args.kid_subsets,
                               kid_subset_size=subset_size[set_name], is_splits=min(10, counts[set_name][1]))
                    runs.setdefault(f"{tool}/{set_name}", []).append(
                        runner.job(f"eval_{tool}_{set_name}_r{round_index}", job))
        res["eval"] = {key: combine_rounds(results) for key, results in runs.items()}
    if "kid" not in skip:
        res["kid_step"] = {}
        for set_name in SETS:
            n_ref, n_gen = counts[set_name]
            job = dict(base, kind="kid_step", n_gen=n_gen, n_ref=n_ref, kid_subsets=args.kid_subsets,
                       kid_subset_size=subset_size[set_name], repeats=args.kid_repeats, seed=args.seed)
            r = runner.job(f"kid_step_{set_name}", job)
            res["kid_step"]["torch_threads"] = r.get("torch_threads")
            res["kid_step"][set_name] = dict(r, n_gen=n_gen, n_ref=n_ref, kid_subsets=args.kid_subsets,
                                             kid_subset_size=subset_size[set_name])


def run_neighbour_steps(args, runner, folders, base, res, skip) -> None:
    """The P/R and D/C steps (``tools.NEIGHBOUR_STEPS``) on random features of each set's
    counts and of each ``--pr-sizes`` N (N against N): every tool in its own process."""
    sizes = {s: (len(list(folders[s][1].iterdir())), len(list(folders[s][0].iterdir()))) for s in SETS}
    sizes.update({f"{n} vs {n}": (n, n) for n in args.pr_sizes})
    for name, step in NEIGHBOUR_STEPS.items():
        if name in skip:
            continue
        rows = res.setdefault("neighbour_steps", {}).setdefault(name, {})
        for label, (n_gen, n_ref) in sizes.items():
            for tool in step.tools:
                job = dict(base, kind="neighbour_step", step=name, tool=tool, n_gen=n_gen, n_ref=n_ref,
                           repeats=args.pr_repeats, seed=args.seed)
                rows[f"{tool}/{label}"] = dict(runner.job(f"{name}_step_{tool}_{label.replace(' ', '_')}", job),
                                               n_gen=n_gen, n_ref=n_ref)


def run_interval(args, runner, folders, base, res) -> None:
    """The rows of ``INTERVAL_RUNS`` on each size set, ``--rounds`` times (the best call counts)."""
    runs: dict[str, list] = {}
    for round_index in range(args.rounds):
        for set_name in SETS:
            a, b = folders[set_name]
            inf_min = args.inf_min or max(2, len(list(b.iterdir())) // 5)
            for run in INTERVAL_RUNS:
                job = dict(base, kind="interval", run=run, a=str(a), b=str(b), replicates=args.ci_replicates,
                           inf_min=inf_min)
                result = runner.job(f"interval_{run.replace(' ', '').replace(',', '_')}_{set_name}_r{round_index}", job)
                runs.setdefault(f"{run}/{set_name}", []).append(dict(result, inf_min=inf_min))
    res["interval"] = {key: combine_rounds(results) for key, results in runs.items()}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa_levels(args, runner: "Runner", env: dict) -> tuple[list[dict], list[str]]:
    """The instruction-set levels to run ({"caps": env settings, "isa": ``work_isa``'s report})
    and why any other level is not run: the machine as it is, then each level of ``ISA_CAPS``
    below it that the CPU has, where the cap takes effect (oneDNN then runs that level's kernels)."""
    native = runner.job("isa_native", {"kind": "isa"})
    if "error" in native:
        return [{"caps": {}, "isa": {"isa": "unknown", "kernels": [], "aten_capability": "unknown"}}], [native["error"]]
    levels, skipped = [{"caps": {}, "isa": native}], []
    if args.isa == "native" or args.device.startswith("cuda"):
        return levels, skipped
    for name, caps in ISA_CAPS.items():
        if native["isa"] == name:
            continue
        if name.lower() not in cpu_flags():
            skipped.append(f"{name}: this CPU does not have it")
            continue
        runner.env = dict(env, **caps)
        capped = runner.job(f"isa_{name}", {"kind": "isa"})
        runner.env = env
        if capped.get("isa") != name:
            skipped.append(f"{name}: the cap did not take effect (oneDNN ran {capped.get('isa') or capped.get('error')})")
            continue
        levels.append({"caps": caps, "isa": capped})
    return levels, skipped


def run_startup(args, runner: "Runner", out: Path, weights: str) -> dict:
    """Import time and wall time of ``ganmetrics --version`` and of ``ganmetrics fid a.npz
    b.npz --weights FILE`` (two statistics files with metadata, made with that file's weights: no
    network, the file hashed to check them), each a fresh process under ``python -X importtime``,
    median of ``--startup-repeats``."""
    from ganmetrics.store.hashing import sha256_of_file  # no torch

    a, b = stats_files(runner, out / "stats", meta=True, weights_sha256=sha256_of_file(weights))
    commands = {"version": ["--version"], "fid_stats": ["fid", a, b, "--weights", weights, "--quiet"]}
    labels = {"version": "ganmetrics --version", "fid_stats": "ganmetrics fid a.npz b.npz --weights FILE (2048-d)"}
    results = {}
    for key, command in commands.items():
        runs = []
        for number in range(args.startup_repeats):
            r = runner.command(f"startup_{key}_{number}", [sys.executable, "-X", "importtime", "-m", "ganmetrics", *command])
            if "error" in r:
                runs = [r]
                break
            runs.append(dict(r, **import_report(Path(r["log"]).read_text(errors="replace"))))
        if "error" in runs[0]:
            results[key] = {"label": labels[key], "error": runs[0]["error"]}
            continue
        results[key] = {"label": labels[key], "runs": runs,
                        "import_seconds": statistics.median(r["import_seconds"] for r in runs),
                        "wall_seconds": statistics.median(r["process_seconds"] for r in runs),
                        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "torch": any(r["torch"] for r in runs)}
    return results


def import_report(log: str) -> dict:
    """From ``python -X importtime`` output: the seconds of every top-level import (each includes
    what it imported) and whether torch was imported."""
    total, torch = 0, False
    for line in log.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.strip() == "torch":
            torch = True
        if name.startswith(" ") and not name.startswith("  ") and cumulative.strip().isdigit():
            total += int(cumulative)
    return {"import_seconds": total / 1e6, "torch": torch}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        result = WORKERS[job["kind"]](job)
        Path(job["result"]).write_text(json.dumps(result))
        return 0

    known = tool_names(cuda=args.device.startswith("cuda"))
    tools = [t.strip() for t in (args.tools or ",".join(known)).split(",") if t.strip()]
    unknown = sorted(set(tools) - set(known))
    if unknown:
        print(f"unknown tool(s) {unknown} for --device {args.device}: choose from {', '.join(known)}", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/bench.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    env = dict(os.environ, GANMETRICS_CACHE_DIR=str(out / "cache"), TORCH_HOME=str(out / "torch_home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    # This process stays small (no torch): a forked child's ru_maxrss starts from its parent's.
    runner = Runner(out, env)
    info = runner.job("info", {"kind": "info"})
    if "error" in info:
        print(f"cannot start a worker: {info['error']}", file=sys.stderr)
        return 1
    machine = machine_info({k: info[k] for k in ("torch", "torch_threads", "cuda")})
    if args.workers is None:
        args.workers = info["default_workers"]
    print(f"data and weights in {out}", file=sys.stderr, flush=True)
    folders = make_dataset(out / "data", args.n_small, args.n_large, args.seed)
    built = runner.job("weights", {"kind": "weights", "path": str(out / "random-0.pth")})
    if "error" in built:
        print(f"cannot build the weights file: {built['error']}", file=sys.stderr)
        return 1
    weights = built["path"]
    base = {"kind": "tool", "weights": weights, "dims": args.dims, "batch_size": args.batch_size,
            "device": args.device, "workers": args.workers, "threads": args.threads}
    if args.sweep_threads:
        run_sweep(args, runner, folders, weights, base, command)
        return 0

    levels, skipped_levels = isa_levels(args, runner, env)
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; instruction-set levels: "
          + "; ".join(f"{level['isa']['isa']} (oneDNN {', '.join(level['isa']['kernels'])}; ATen "
                      f"{level['isa']['aten_capability']}"
                      + (f"; {' '.join(f'{k}={v}' for k, v in level['caps'].items())}" if level["caps"] else "") + ")"
                      for level in levels)
          + "".join(f"; not run: {reason}" for reason in skipped_levels), file=sys.stderr, flush=True)
    res = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command, "machine": machine,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"},
        "tools": tools, "levels": levels, "skipped_levels": skipped_levels,
        "sets": {s: {"images": sum(len(list(f.iterdir())) for f in folders[s])} for s in SETS},
    }
    for level in levels:
        runner.env = dict(env, **level["caps"])
        tag = "" if not level["caps"] else f"_{level['isa']['isa']}"
        bare_job = dict(base, kind="bare", resize="tf", bare_batches=args.bare_batches)
        bare_runs = []
        if "tools" not in skip:
            runs: dict[str, list] = {}
            for round_index in range(args.rounds):
                # Rotate the order each round, so no tool always runs first (cold caches) or last.
                order = tools[round_index % len(tools):] + tools[:round_index % len(tools)]
                for set_name in SETS:
                    a, b = folders[set_name]
                    for tool in order:
                        runs.setdefault(f"{tool}/{set_name}", []).append(runner.job(
                            f"{tool}_{set_name}{tag}_r{round_index}", dict(base, tool=tool, a=str(a), b=str(b))))
                if "bare" not in skip:
                    # The bare rate right after each round: a machine whose speed drifts over
                    # minutes moves both, and the rounds pair them (see combine_bare).
                    bare_runs.append(runner.job(f"bare{tag}_r{round_index}", bare_job))
            level["rows"] = {key: combine_rounds(results) for key, results in runs.items()}
        elif "bare" not in skip:
            bare_runs.append(runner.job(f"bare{tag}", bare_job))
        if bare_runs:
            level["bare"] = combine_bare(bare_runs)
    runner.env = env
    if "decode" not in skip:
        r = runner.job("decode", dict(base, kind="decode", folders={s: [str(f) for f in folders[s]] for s in SETS}))
        res["decode"] = {} if "error" in r else {s: r[s] for s in SETS}
    if "reduction" not in skip:
        files = stats_files(runner, out / "stats")
        res["reduction"] = {}
        for label, extra in (("default", {}), ("1 (OPENBLAS_NUM_THREADS=1)", {"OPENBLAS_NUM_THREADS": "1"})):
            runner.env = dict(env, **extra)
            res["reduction"][label] = runner.job("reduction", dict(base, kind="reduction", stats_files=files,
                                                                   repeats=args.fid_repeats))
        runner.env = env
    if "eval" not in skip or "kid" not in skip:
        run_eval(args, runner, folders, base, res, skip)
    run_neighbour_steps(args, runner, folders, base, res, skip)
    if "adm" not in skip:
        a, b = make_adm_batches(out / "data", args.n_adm, args.seed)
        res["adm"] = {}
        for tool in ADM_TOOLS:
            runs = [runner.job(f"adm_{tool}_r{round_index}", dict(base, kind="adm", tool=tool, a=str(a), b=str(b),
                                                                   dims=2048))
                    for round_index in range(args.rounds)]
            res["adm"][tool] = combine_rounds(runs)
        # Memory against the image count: ganmetrics again on batches of a quarter the size.
        quarter = max(ADM_MIN_IMAGES, args.n_adm // 4)
        a, b = make_adm_batches(out / "data", quarter, args.seed)
        res["adm_quarter"] = dict(runner.job("adm_ganmetrics_quarter", dict(base, kind="adm", tool=ADM_REFERENCE,
                                                                           a=str(a), b=str(b), dims=2048)),
                                  images=quarter)
    if "interval" not in skip:
        run_interval(args, runner, folders, base, res)
    if "rss" not in skip:
        one, four = make_rss_folders(out / "data", args.rss_n, args.seed)
        (out / "stats").mkdir(parents=True, exist_ok=True)
        res["rss"] = {"1x": {"images": args.rss_n, "runs": []}, "4x": {"images": 4 * args.rss_n, "runs": []}}
        for run in range(args.rss_repeats):  # interleaved, so a slow spell of the machine hits both
            for label, folder in (("1x", one), ("4x", four)):
                cmd = [sys.executable, "-c", "from ganmetrics.cli import main; main()", "stats", str(folder),
                       "-o", str(out / "stats" / f"rss_{label}.npz"), "--weights", weights, "--dims", str(args.dims),
                       "--batch-size", str(args.batch_size), "--device", args.device, "--workers", str(args.workers),
                       "--quiet"]
                res["rss"][label]["runs"].append(runner.command(f"stats_{label}_{run}", cmd))
    if "startup" not in skip:
        res["startup"] = run_startup(args, runner, out, weights)

    derived = summarize(res)
    body = render(res, derived)
    (out / "results.json").write_text(json.dumps({"results": res, "derived": derived}, indent=1, default=str))
    print(body)
    if not args.no_markdown:
        write_markdown(args.markdown, body, MARK_BEGIN, MARK_END, "")
        print(f"\nwritten to {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
