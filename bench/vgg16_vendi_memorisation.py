"""Precision/recall on VGG16, the Vendi score and the memorisation check: what they cost next to
the reference tools, on this machine.

    python bench/vgg16_vendi_memorisation.py                                        # full size
    python bench/vgg16_vendi_memorisation.py --images 50 --vendi-n 4000 --block-n 3000   # reduced

Steps, each in a fresh spawned process (its peak RSS is that process's ``ru_maxrss``; for the
feature steps also the rise over the process once its inputs are made):

- ``pr_vgg16``: ``ganmetrics eval A B --metrics pr@vgg16`` (the command line's own entry point,
  uncached) against torch-fidelity 0.4.0's ``calculate_metrics(prc=True,
  feature_extractor="vgg16")`` on the same two folders of ``--images`` 32px PNGs and the same
  VGG16 weights file (``random:0``, written once: the real one cannot be downloaded here);
  the call's seconds, the process's peak RSS, precision and recall of each.
- ``vendi``: ``--vendi-n`` seeded non-negative 2048-d float32 features; ganmetrics' streamed
  ``CosineGram`` (fed 50 at a time) and ``vendi_score`` against vendi-score 0.0.3's ``score_X``
  (its n x n kernel X̂X̂ᵀ in float64 and SciPy's eigenvalues of it), both timed alone.
- ``memorisation``: ``nearest_references`` of ``--block-n`` generated against ``--block-n``
  reference 2048-d features (one block of the package's 10,000 or less): distances a second;
  50,000 x 50,000 on paper is 2 x 2.5e9 distances (the nearest references, and the reference
  gaps: each reference image's nearest other one) at that rate.

``--steps`` runs some of them. Everything goes under ``--out`` (default
bench/out/vgg16_vendi_memorisation, git-ignored); the load average before and after is printed,
as other jobs on a shared machine move every time.
"""

import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DIMS = 2048
PAPER_N = 50_000


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _in_fresh_process(function, *args):
    """``function(*args)`` in a new spawned process (nothing imported or allocated before): the
    timed steps measure their own peak RSS there."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _folder(path: Path, n: int, seed: int, low: int, high: int) -> str:
    """``n`` 32px PNGs of 4 x 4 noise in [low, high) upsampled, in a new folder ``path``."""
    import shutil

    import numpy as np
    from PIL import Image

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray(rng.randint(low, high, (4, 4, 3), dtype=np.uint8)).resize((32, 32)).save(path / f"{i:05d}.png")
    return str(path)


def _vgg16_weights(path: Path) -> str:
    """``random:0`` of the vgg16 encoder as a file both tools load (written once)."""
    if not path.exists():
        import torch

        from ganmetrics.extractors.vgg16 import VGG16Extractor

        torch.save(VGG16Extractor.random_state_dict(0), path)
    return str(path)


def ganmetrics_pr(a: str, b: str, weights: str, device: str) -> dict:
    from ganmetrics.cli import cli

    args = ["eval", a, b, "--metrics", "pr@vgg16", "--weights", f"vgg16={weights}", "--device", device, "--no-cache",
            "--quiet", "--json"]
    stdout = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.suppress(SystemExit):
        cli.main(args)
    seconds = time.perf_counter() - started
    results = json.loads(stdout.getvalue())["results"]
    return {"seconds": seconds, "precision": results["precision@vgg16"], "recall": results["recall@vgg16"],
            "peak_rss_mib": _peak_mib()}


def torch_fidelity_pr(a: str, b: str, weights: str, device: str) -> dict:
    import warnings

    import torch_fidelity

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    out = torch_fidelity.calculate_metrics(input1=b, input2=a, prc=True, feature_extractor="vgg16",
                                           feature_extractor_weights_path=weights, cuda=device.startswith("cuda"),
                                           cache=False, verbose=False, save_cpu_ram=True)
    return {"seconds": time.perf_counter() - started, "precision": float(out["precision"]),
            "recall": float(out["recall"]), "peak_rss_mib": _peak_mib()}


def _features(n: int, seed: int):
    """float32 (n, DIMS) non-negative features with correlated directions (as an embedding)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mixed = rng.standard_normal((n, 16), np.float32) @ rng.standard_normal((16, DIMS), np.float32)
    return np.maximum(mixed + rng.standard_normal((n, DIMS), np.float32), 0)


def _ganmetrics_vendi(x) -> float:
    import torch

    from ganmetrics.metrics.vendi import CosineGram, vendi_score

    gram = CosineGram(DIMS)
    for start in range(0, len(x), 50):
        gram.update(torch.from_numpy(x[start:start + 50]))
    return vendi_score(gram.result())


def _vendi_score_package(x) -> float:
    from vendi_score.vendi import score_X

    return float(score_X(x.astype("float64")))


VENDI_TOOLS = {"ganmetrics": _ganmetrics_vendi, "vendi-score": _vendi_score_package}


def vendi_run(tool: str, n: int) -> dict:
    """One tool's Vendi score of ``n`` features: seconds, value, the process's peak RSS and its
    rise over the process once the inputs are made and the tool imported (a first call on 2
    features does the imports)."""
    x = _features(n, seed=1)
    VENDI_TOOLS[tool](x[:2])
    before = _peak_mib()
    started = time.perf_counter()
    value = VENDI_TOOLS[tool](x)
    return {"seconds": time.perf_counter() - started, "value": value, "peak_rss_mib": _peak_mib(),
            "rise_mib": _peak_mib() - before}


def memorisation_rate(n: int) -> dict:
    """Seconds of ``nearest_references`` of ``n`` generated against ``n`` reference features,
    the rate, and 50,000 x 50,000 at that rate (twice: the gaps are one more such sweep)."""
    from ganmetrics.metrics.memorisation import nearest_references

    reference, generated = _features(n, seed=2), _features(n, seed=3)
    nearest_references(generated[:100], reference[:100])  # warm-up
    started = time.perf_counter()
    nearest_references(generated, reference)
    seconds = time.perf_counter() - started
    rate = n * n / seconds
    return {"n": n, "seconds": seconds, "distances_per_s": rate, "paper_seconds": 2 * PAPER_N ** 2 / rate,
            "peak_rss_mib": _peak_mib()}


def pr_vgg16(args) -> dict:
    """{tool: row} of the ``pr_vgg16`` step."""
    out = Path(args.out)
    a = _folder(out / "A", args.images, seed=1, low=0, high=220)
    b = _folder(out / "B", args.images, seed=2, low=30, high=256)
    weights = _in_fresh_process(_vgg16_weights, out / "vgg16-random0.pth")
    return {name: _in_fresh_process(tool, a, b, weights, args.device)
            for name, tool in (("ganmetrics", ganmetrics_pr), ("torch-fidelity", torch_fidelity_pr))}


STEPS = {
    "pr_vgg16": pr_vgg16,
    "vendi": lambda args: {name: _in_fresh_process(vendi_run, name, args.vendi_n) for name in VENDI_TOOLS},
    "memorisation": lambda args: _in_fresh_process(memorisation_rate, args.block_n),
}


def run(args) -> dict:
    """The figures of each of ``args.steps``: {"pr_vgg16": {tool: row}, "vendi": {tool: row},
    "memorisation": row}, with the run's settings and the load average it ran under."""
    Path(args.out).mkdir(parents=True, exist_ok=True)
    steps = [name.strip() for name in args.steps.split(",") if name.strip()]
    unknown = [name for name in steps if name not in STEPS]
    if unknown:
        raise SystemExit(f"unknown step {unknown[0]!r}: use {', '.join(STEPS)}")
    result = {"images": args.images, "device": args.device, "vendi_n": args.vendi_n, "cpus": os.cpu_count(),
              "load": os.getloadavg()[0]}
    for name in steps:
        result[name] = STEPS[name](args)
    result["load_after"] = os.getloadavg()[0]
    return result


def render(result: dict) -> list[str]:
    """The markdown block of ``run``'s figures."""
    lines = [f"Precision/recall on VGG16, Vendi, memorisation ({result['cpus']} CPUs, load average "
             f"{result['load']:.1f} before and {result['load_after']:.1f} after).", ""]
    if "pr_vgg16" in result:
        lines += [f"`pr@vgg16`, {result['images']} 32px PNGs a side, random:0 VGG16 weights file, device "
                  f"{result['device']}:", "", "| tool | seconds | peak RSS | precision | recall |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {row['seconds']:.1f} | {row['peak_rss_mib']:,.0f} MiB | {row['precision']:.4f} | "
                  f"{row['recall']:.4f} |" for name, row in result["pr_vgg16"].items()]
        lines.append("")
    if "vendi" in result:
        n = result["vendi_n"]
        lines += [f"Vendi score of {n:,} features of {DIMS} dims (vendi-score: the {n:,} x {n:,} kernel, "
                  f"{8 * n * n / 2**20:,.0f} MiB in float64; ganmetrics: a {DIMS} x {DIMS} state):", "",
                  "| tool | seconds | peak RSS | rise over inputs and imports | value |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {row['seconds']:.1f} | {row['peak_rss_mib']:,.0f} MiB | {row['rise_mib']:,.0f} MiB | "
                  f"{row['value']:.10g} |" for name, row in result["vendi"].items()]
        lines.append("")
    if "memorisation" in result:
        m = result["memorisation"]
        lines.append(f"Memorisation: {m['n']:,} x {m['n']:,} nearest references ({DIMS} dims) in {m['seconds']:.1f} s, "
                     f"{m['distances_per_s']:.3g} distances/s (peak RSS {m['peak_rss_mib']:,.0f} MiB); "
                     f"{PAPER_N:,} x {PAPER_N:,} on paper (nearest references and reference gaps): "
                     f"{m['paper_seconds'] / 60:,.1f} min.")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "out" / "vgg16_vendi_memorisation", help="work folder")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    p.add_argument("--images", type=int, default=1000, help="pr_vgg16: 32px PNGs a side (default 1000)")
    p.add_argument("--device", default="cpu", help="pr_vgg16: cpu or cuda")
    p.add_argument("--vendi-n", type=int, default=20_000, help="vendi: features (default 20,000: a 3 GB kernel)")
    p.add_argument("--block-n", type=int, default=10_000, help="memorisation: features a side (default 10,000)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    print("\n".join(render(run(parse_args(argv)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
