"""FD_DINOv2: ganmetrics against EDM2 and dgm-eval on the same images and the same weights.

    python bench/fd_dinov2.py --edm2 PATH --dinov2-hub PATH --dgm-eval PATH [--n 16] [--size 128]

Runs, each in its own process, on two seeded folders of ``--n`` PNGs (``--size`` square) and one
random-weight ViT-L/14 file (``DINOv2Extractor.random_state_dict(0)``, the real file's keys and
shapes; uncalibrated, so the values compare the tools with each other, never with published ones):

- ``ganmetrics eval A B --metrics fd_dinov2`` (the API's ``evaluate``) with ``resize`` torch and pil;
- EDM2's path (``calculate_metrics.py``): ``calculate_stats_for_files`` of each folder with the
  ``fd_dinov2`` detector (``DINOv2Detector``, ``resize_mode="torch"``), then
  ``calculate_metrics_from_stats``;
- dgm-eval's path: its ``DataLoader`` with ``DINOv2Encoder.transform`` (PIL bicubic),
  ``get_representations``, ``compute_FD_with_reps``;
- ``ganmetrics eval A B --metrics fid`` (the Inception, random weights), and each network alone
  on decoded images at its input size (224 and 299), for the cost per image.

The references install from no package registry: each PATH is a local checkout (NVlabs/edm2,
facebookresearch/dinov2, layer6ai-labs/dgm-eval). Only ``torch.hub.load`` is replaced: it returns
the hub's own ``dinov2_vitl14`` built from the checkout (``pretrained=False``) with the random
weights loaded. EDM2's ``dnnlib`` gets an empty ``requests`` module (it opens no URL here) and one
gloo rank; dgm-eval's modules are loaded without its package ``__init__`` files (they import every
other encoder's dependencies); its ``metrics/fd.py`` imports scikit-learn.

Each row: images/s = the images of both folders over the wall time of the call (weights loading,
decoding, network, statistics, distance; not the imports), peak RSS = ``ru_maxrss`` of the
process from ``wait4`` (its largest process), and the value's relative difference from
ganmetrics' with the same resize. Every tool gets ``--batch-size`` and ``--workers``; torch uses
every core in each. Everything is written under ``--out`` (default ``bench/out/fd_dinov2``,
which git ignores; the weights file is 1.2 GB and kept for later runs).
"""

import argparse
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WEIGHTS_SEED = 0


# --- inputs -------------------------------------------------------------------------------------


def make_images(root: Path, n: int, size: int, seed: int) -> tuple[str, str]:
    """Two folders ``A``, ``B`` of ``n`` seeded ``size``-square PNGs each: smooth colour fields
    under noise, B's brighter, so the distance is far from zero."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folders = []
    for name, offset in (("A", 0.0), ("B", 0.15)):
        folder = root / f"{name}-{n}-{size}"
        if not folder.is_dir() or len(list(folder.glob("*.png"))) != n:
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                coarse = Image.fromarray((rng.random((4, 4, 3)) * 200 + offset * 255).astype(np.uint8))
                field = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float64)
                pixels = (field + rng.normal(0, 12, field.shape)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.png")
        folders.append(str(folder))
    return folders[0], folders[1]


def make_weights(path: Path) -> str:
    """The full ViT-L/14's ``random:0`` weights as a plain state-dict file (made once)."""
    if not path.is_file():
        import torch

        from ganmetrics.extractors.dinov2.extractor import DINOv2Extractor

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(DINOv2Extractor.random_state_dict(WEIGHTS_SEED), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return str(path)


# --- the jobs (each in its own process) ------------------------------------------------------------


def hub_model(hub: str, weights: str):
    """facebookresearch/dinov2's ``dinov2_vitl14`` from the checkout ``hub`` with ``weights`` loaded."""
    import torch

    model = torch.hub.load(hub, "dinov2_vitl14", source="local", pretrained=False)
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    return model.eval()


def job_ganmetrics(job: dict) -> dict:
    import ganmetrics

    metric = job["metric"]
    if metric == "fd_dinov2":
        keywords = dict(weights={"dinov2-vitl14": job["weights"]}, encoders={"dinov2-vitl14": {"resize": job["resize"]}})
    else:
        keywords = dict(weights={"inception": f"random:{WEIGHTS_SEED}"})
    start = time.perf_counter()
    result = ganmetrics.evaluate(job["a"], job["b"], [metric], device="cpu", batch_size=job["batch_size"],
                                 workers=job["workers"], cache=False, progress=False, **keywords)
    return {"seconds": time.perf_counter() - start, "value": result.results[metric]}


def job_edm2(job: dict) -> dict:
    import torch

    sys.path.insert(0, job["edm2"])
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it; no URL is opened
    with socket.socket() as probe:  # one gloo rank: EDM2's statistics all-reduce
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    import calculate_metrics as edm2

    start = time.perf_counter()
    model = hub_model(job["hub"], job["weights"])
    torch.hub.load = lambda *args, **kwargs: model  # the one replaced call: no download
    stats = []
    for folder in (job["a"], job["b"]):
        for r in edm2.calculate_stats_for_files(folder, max_batch_size=job["batch_size"], num_workers=job["workers"],
                                                metrics=["fd_dinov2"], device=torch.device("cpu"), verbose=False):
            pass
        stats.append(r.stats)
    value = edm2.calculate_metrics_from_stats(stats[1], stats[0], metrics=["fd_dinov2"], verbose=False)["fd_dinov2"]
    return {"seconds": time.perf_counter() - start, "value": value}


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def job_dgm_eval(job: dict) -> dict:
    import torch

    root = Path(job["dgm_eval"]) / "dgm_eval"
    for package, folder in (("dgm_eval", root), ("dgm_eval.models", root / "models"), ("dgm_eval.metrics", root / "metrics")):
        module = types.ModuleType(package)
        module.__path__ = [str(folder)]
        sys.modules[package] = module
    modules = {}
    for name in ("resizer", "dataloaders", "representations", "models.encoder", "models.dinov2", "metrics.fd"):
        modules[name] = _load_module(f"dgm_eval.{name}", root / f"{name.replace('.', '/')}.py")
    start = time.perf_counter()
    model = hub_model(job["hub"], job["weights"])
    torch.hub.load = lambda *args, **kwargs: model  # the one replaced call: no download
    encoder = modules["models.dinov2"].DINOv2Encoder(arch="vitl14")  # clean_resize=False, its default
    reps = []
    for folder in (job["a"], job["b"]):
        loader = modules["dataloaders"].DataLoader(folder, transform=encoder.transform, batch_size=job["batch_size"],
                                                   num_workers=job["workers"])
        reps.append(modules["representations"].get_representations(encoder, loader, torch.device("cpu")))
    value = modules["metrics.fd"].compute_FD_with_reps(reps[0], reps[1])
    return {"seconds": time.perf_counter() - start, "value": float(value)}


BARE_SIZES = {"dinov2-vitl14": 224, "inception": 299}
"""The side each network sees (no resize work beyond its own at that size)."""


def job_bare(job: dict) -> dict:
    """Seconds per image of one encoder's network alone (ganmetrics' extractor, its preprocessing
    included) on ``bare_images`` random uint8 images of its input size, already decoded, after
    one warm-up image; torch on every core. Also the floating-point operations of one image
    (``FlopCounterMode`` on the plain network, before the Inception's oneDNN layout, whose
    operators it does not count: convolutions, matrix products and attention, a multiply-add
    counted as 2), which no other job on the machine moves."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ganmetrics.extractors.registry import build_encoder

    name = job["encoder"]
    weights = job["weights"] if name == "dinov2-vitl14" else f"random:{WEIGHTS_SEED}"
    encoder = build_encoder(name, weights=weights, device=torch.device("cpu"))
    size = BARE_SIZES[name]
    pixels = torch.randint(0, 256, (job["bare_images"], size, size, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    wanted = {encoder.feature_of_role("frechet")}
    plain = type(encoder).build_network(encoder.weights.state_dict, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder.forward(plain, pixels[:1], wanted)
    del plain
    encoder(pixels[:1], wanted)
    start = time.perf_counter()
    encoder(pixels, wanted)
    return {"seconds_per_image": (time.perf_counter() - start) / len(pixels), "flops": counter.get_total_flops()}


JOBS = {"ganmetrics": job_ganmetrics, "edm2": job_edm2, "dgm-eval": job_dgm_eval, "bare": job_bare}

CHECKOUTS = {"edm2": ("edm2", "dinov2_hub"), "dgm-eval": ("dgm_eval", "dinov2_hub")}
"""The checkouts (options) each reference job needs; without them its row is not run."""
ROWS = (  # (label, job, metric, resize, the ganmetrics row it is compared with)
    ("ganmetrics eval --metrics fd_dinov2", "ganmetrics", "fd_dinov2", "torch", None),
    ("EDM2 DINOv2Detector", "edm2", "fd_dinov2", "torch", "ganmetrics eval --metrics fd_dinov2"),
    ("ganmetrics eval --metrics fd_dinov2 --resize dinov2-vitl14=pil", "ganmetrics", "fd_dinov2", "pil", None),
    ("dgm-eval DINOv2Encoder", "dgm-eval", "fd_dinov2", "pil", "ganmetrics eval --metrics fd_dinov2 --resize dinov2-vitl14=pil"),
    ("ganmetrics eval --metrics fid (Inception)", "ganmetrics", "fid", "tf", None),
)


def run_job(job: dict, log: Path) -> dict:
    """``job`` in a new process: its result with ``peak_rss_mib`` (``ru_maxrss`` from ``wait4``)."""
    with open(log, "w") as err:
        process = subprocess.Popen([sys.executable, __file__, "--job", json.dumps(job)], stdout=subprocess.PIPE,
                                   stderr=err, cwd=REPO)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{job['tool']} failed (exit {process.returncode}): see {log}")
    return {**json.loads(out.splitlines()[-1]), "peak_rss_mib": usage.ru_maxrss / 1024}


# --- the experiment -----------------------------------------------------------------------------


def cpu_isa() -> str:
    """The vector instruction sets the CPU reports (``avx512*``, ``avx2``)."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    found = sorted(flag for flag in flags if flag.startswith("avx512") or flag == "avx2")
    return " ".join(found) or "no AVX2"


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    a, b = make_images(out, args.n, args.size, args.seed)
    weights = make_weights(out / "dinov2_vitl14_random0.pth")
    common = dict(a=a, b=b, weights=weights, batch_size=args.batch_size, workers=args.workers, hub=args.dinov2_hub,
                  edm2=args.edm2, dgm_eval=args.dgm_eval)
    rows, bare = {}, {}
    for label, tool, metric, resize, _ in ROWS:
        missing = [name for name in CHECKOUTS.get(tool, ()) if getattr(args, name) is None]
        if missing:
            rows[label] = {"not_run": ", ".join(f"--{name.replace('_', '-')} DIR" for name in missing)}
            continue
        print(f"running {label} ...", file=sys.stderr)
        rows[label] = run_job({**common, "tool": tool, "metric": metric, "resize": resize},
                              out / f"{tool}-{metric}-{resize}.log")
    for name in BARE_SIZES:
        print(f"timing the bare {name} network ...", file=sys.stderr)
        bare[name] = run_job({**common, "tool": "bare", "encoder": name, "bare_images": args.bare_images},
                             out / f"bare-{name}.log")
    import torch

    return {"n": args.n, "size": args.size, "batch_size": args.batch_size, "workers": args.workers,
            "bare_images": args.bare_images, "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "isa": cpu_isa(), "cpu": platform.processor() or platform.machine(), "rows": rows, "bare": bare}


def render(result: dict) -> list[str]:
    images = 2 * result["n"]
    rows = result["rows"]
    lines = [f"### FD_DINOv2 against EDM2 and dgm-eval ({result['n']} + {result['n']} {result['size']}px PNGs, "
             f"random ViT-L/14 weights, CPU: {result['cpus']} cores, {result['threads']} torch threads, {result['isa']}; "
             f"batch {result['batch_size']}, {result['workers']} decoding workers)", "",
             "| run | resize | images/s | peak RSS (MiB) | value | relative difference |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for label, _, _, resize, compared in ROWS:
        row = rows[label]
        if "not_run" in row:
            lines.append(f"| {label} | {resize} | not run: pass {row['not_run']} | | | |")
            continue
        difference = "" if compared is None else f"{abs(row['value'] - rows[compared]['value']) / abs(rows[compared]['value']):.2e}"
        lines.append(f"| {label} | {resize} | {images / row['seconds']:.2f} | {row['peak_rss_mib']:.0f} | "
                     f"{row['value']:.6g} | {difference} |")
    dinov2, inception = (result["bare"][name] for name in BARE_SIZES)
    lines += ["", f"Cost per image of the network alone ({result['bare_images']} decoded images at its input size, "
                  f"preprocessing included): DINOv2 ViT-L/14 {dinov2['seconds_per_image']:.2f} s and "
                  f"{dinov2['flops'] / 1e9:.1f} GFLOP, the Inception {inception['seconds_per_image']:.3f} s and "
                  f"{inception['flops'] / 1e9:.1f} GFLOP: {dinov2['seconds_per_image'] / inception['seconds_per_image']:.1f}x "
                  f"the time, {dinov2['flops'] / inception['flops']:.1f}x the operations. Whole calls include "
                  "loading the weights (the ViT-L/14 file is 1.2 GB) and, for the Inception row, making its "
                  "random:0 weights."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edm2", help="a checkout of NVlabs/edm2 (without it and --dinov2-hub, EDM2's row is not run)")
    parser.add_argument("--dinov2-hub", help="a checkout of facebookresearch/dinov2 (both references need it)")
    parser.add_argument("--dgm-eval", help="a checkout of layer6ai-labs/dgm-eval (without it, dgm-eval's row is not run)")
    parser.add_argument("--n", type=int, default=16, help="images per folder (default 16)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per batch, every tool (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes, every tool (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images (default 0)")
    parser.add_argument("--bare-images", type=int, default=8, help="images of the bare-network timings (default 8)")
    parser.add_argument("--out", default=str(HERE / "out" / "fd_dinov2"), help="working folder (default bench/out/fd_dinov2)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job = json.loads(args.job)
        print(json.dumps(JOBS[job["tool"]](job)))
        return
    result = run(args)
    (Path(args.out) / "results.json").write_text(json.dumps(result, indent=2))
    print("\n".join(render(result)))


if __name__ == "__main__":
    main()
