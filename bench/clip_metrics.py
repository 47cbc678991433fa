"""CLIP metrics benchmark: ganmetrics' CMMD and CLIP-FID against the reference paths on the same
images and the same random weights, each tool in its own process.

    python bench/clip_metrics.py                                        # full size
    python bench/clip_metrics.py --images 32 --fid-images 64 --bank 10000   # reduced

Parts (``PARTS``; ``--skip`` leaves some out):

- ``cmmd``: ``ganmetrics eval A B --metrics cmmd`` (its command-line entry in the worker) against
  a PyTorch CMMD following google-research's ``cmmd/`` code (``reference_cmmd``): the folder's
  ``*png``/``*jpg``/``*jpeg`` files sorted, in batches of 32 with the remainder dropped
  (``--images`` is a multiple of 32, so both count every image), each image centre-cropped,
  PIL-bicubic resized to 336, ``/ 255`` and normalised as scenic does
  (``tests/cmmd_reference.py``), openai/CLIP's ViT-L/14@336 built by ``clip.model.build_model``
  from the same state dict (as ``clip.load`` on the CPU), its ``encode_image`` divided by its
  norm, then ``distance.py``'s full n x n matrices in float32 (JAX's default). ``--images``
  images a side (landscape and portrait JPEGs: the crops matter). Images/s (both sides' images
  over the call), peak RSS, the two values.
- ``cmmd_step``: the distance alone, where the reference's n x n matrices dominate its memory:
  ``--bank`` random unit 768-d embeddings a side (clustered like CLIP's), as statistics files
  holding feature banks (``ganmetrics eval a.npz b.npz --metrics cmmd``: no network) against
  ``distance.py`` in float32 torch on the same arrays. Seconds, peak RSS, values.
- ``clip_fid``: ``ganmetrics eval A B --metrics fid@clip-vitb32`` against clean-fid's
  ``compute_fid(A, B, mode="clean", model_name="clip_vit_b_32", device="cpu")`` (its CPU path,
  float32; its ``clip.load`` download replaced by the same file) on ``--fid-images`` images a
  side. With no more images than the 512 features the covariances are singular: both FIDs are
  then ill-conditioned, and their agreement is not guaranteed.

Weights: ``random:0`` of both CLIP towers (float16 values, as OpenAI's files), each with a small
random text tower that ``build_model`` needs, saved under ``--out`` in float16: ViT-L/14@336 as
a whole OpenAI-style state dict, ViT-B/32 as an OpenAI-style TorchScript archive (``work_weights``);
every tool loads the same file. Uncalibrated: the values are comparable
between the tools here, never with published ones. The timed call includes loading the weights
and building the network for every tool, not the Python imports. Peak RSS is ``ru_maxrss`` of
the largest process of the tool's process tree (``bench.run_measured``).
"""

import argparse
import contextlib
import glob
import io
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (REPO, HERE, REPO / "tests"):  # tests/: the reference replays the parity tests use
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from data import FOLDER_STYLE, _image  # noqa: E402
from measure import run_measured  # noqa: E402
from tools import import_ganmetrics  # noqa: E402

PARTS = ("cmmd", "cmmd_step", "clip_fid")
CMMD_BATCH = 32  # google-research's batch size; it drops each side's last partial batch
DATA_VERSION = 1


# --------------------------------------------------------------------------------------------
# Data and weights (made in worker processes: this one never imports torch)


def make_images(root: Path, n: int, seed: int) -> tuple[str, str]:
    """Folders A and B of ``n`` seeded 320x240 and 240x320 JPEGs each (reused when their
    manifest matches): ``bench.py``'s images, in the styles of its A and B folders."""
    import numpy as np
    from PIL import Image

    manifest = {"version": DATA_VERSION, "n": n, "seed": seed}
    manifest_path = root / "manifest.json"
    folders = (root / "A", root / "B")
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return tuple(map(str, folders))
    for index, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        (gains, offsets), shape_share = FOLDER_STYLE[folder.name]
        colour = (np.array(gains, np.float32), np.array(offsets, np.float32))
        rng = np.random.default_rng([seed, index])
        for i in range(n):
            square = _image(rng, 320, colour, shape_share)
            image = square[:240] if i % 2 else square[:, :240]
            Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{i:05d}.jpg", quality=90)
    manifest_path.write_text(json.dumps(manifest))
    return tuple(map(str, folders))


def work_weights(job) -> dict:
    """Both towers' ``random:0`` weights (float16 values) with a small random text tower, as files
    (built once: deterministic, so reused): ViT-L/14@336 as a whole OpenAI-style state dict,
    ViT-B/32 as an OpenAI-style TorchScript archive (openai/CLIP's ``clip.load``, clean-fid's
    loader, cannot read a plain state dict from its open file once ``torch.jit.load`` has failed
    on it)."""
    import torch
    from clip_reference import openai_model, openai_state_dict, save_torchscript

    from ganmetrics.extractors.clip.extractor import CleanFIDClipExtractor, CMMDClipExtractor

    paths = {}
    for encoder in (CMMDClipExtractor, CleanFIDClipExtractor):
        path = Path(job["folder"]) / f"{encoder.name}-random-0.pt"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            state, temporary = openai_state_dict(encoder.random_state_dict(0), encoder.embed_dim), path.with_suffix(".tmp")
            if encoder is CMMDClipExtractor:
                torch.save({key: value.half() for key, value in state.items()}, temporary)
            else:
                save_torchscript(openai_model(state), encoder.image_size, temporary)
            os.replace(temporary, path)
        paths[encoder.name] = str(path)
    return paths


def clip_like(n: int, seed: int, shift: float, dims: int = 768) -> "np.ndarray":
    """float32 (n, dims) unit vectors clustered like CLIP embeddings: a common direction, noise,
    and a ``shift`` that moves one set from the other."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = 3 * np.random.default_rng(12345).standard_normal(dims) + rng.standard_normal((n, dims))
    x += shift * np.arange(dims) / dims
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def work_banks(job) -> dict:
    """Two statistics files holding ``n`` embeddings each as clip-vitl14-336 feature banks (as
    ``ganmetrics stats --metrics cmmd`` writes them), and the same arrays as ``.npy``."""
    import numpy as np

    from ganmetrics.extractors.clip.extractor import CMMDClipExtractor
    from ganmetrics.provenance import EncoderProvenance
    from ganmetrics.store.statsfile import Statistics, save_statistics

    folder, n = Path(job["folder"]), job["n"]
    folder.mkdir(parents=True, exist_ok=True)
    provenance = EncoderProvenance(CMMDClipExtractor.name, CMMDClipExtractor.model, "0" * 64, False, ())
    files = {}
    for side, seed, shift in (("a", 1, 0.0), ("b", 2, 0.5)):
        bank = clip_like(n, seed, shift)
        meta = {**provenance.meta(False), "dims": 768, "feature": "embedding", "source": f"synthetic {side}"}
        stats = Statistics(entries={(CMMDClipExtractor.name, "embedding", "feature_bank"): {"features": bank}},
                           metas={CMMDClipExtractor.name: meta})
        files[side] = str(folder / f"bank_{side}_{n}.npz")
        save_statistics(files[side], stats)
        np.save(folder / f"bank_{side}_{n}.npy", bank)
    return files


# --------------------------------------------------------------------------------------------
# The tools (each a worker job: its call timed, its process measured)


def ganmetrics_call(args: list[str], network: bool = True):
    """A call of ``ganmetrics ARGS --json`` in this process (its command-line entry), returning
    the JSON's ``results``; ganmetrics imported first, and open_clip where a ``network`` runs (as
    the other tools' model code is imported before their call)."""
    if network:
        import open_clip.transformer  # noqa: F401

    from ganmetrics.cli import cli

    import_ganmetrics()

    def call():
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            try:
                cli.main([*args, "--no-cache", "--quiet", "--json"])
            except SystemExit as exit_:
                if exit_.code not in (0, None):
                    raise RuntimeError(f"ganmetrics exited {exit_.code}") from None
        return json.loads(stdout.getvalue())["results"]

    return call


def google_research_distance(x, y) -> float:
    """google-research ``cmmd/distance.py`` ``mmd`` in float32 torch (JAX's default dtype):
    ``cmmd_reference.distance_mmd``, its full n x n Gram and kernel matrices."""
    import torch
    from cmmd_reference import distance_mmd

    return distance_mmd(torch.as_tensor(x), torch.as_tensor(y), torch)


def google_research_batches(folder: str):
    """google-research ``io_util.py``'s reading of a folder: its ``*png``/``*jpg``/``*jpeg`` files
    (and upper-case extensions) sorted, in batches of 32, the last partial batch dropped; each
    image as ``cmmd_reference.google_research_cmmd_input`` prepares it (cropped, resized to 336,
    normalised): float32 (32, 336, 336, 3) a batch."""
    import numpy as np
    from cmmd_reference import google_research_cmmd_input

    files = sorted(f for ext in ("png", "jpg", "jpeg") for pattern in (f"*{ext}", f"*.{ext.upper()}")
                   for f in glob.glob(os.path.join(folder, pattern)))
    for start in range(0, len(files) // CMMD_BATCH * CMMD_BATCH, CMMD_BATCH):
        yield np.stack([google_research_cmmd_input(path) for path in files[start:start + CMMD_BATCH]])


def reference_cmmd(job):
    """google-research's CMMD in PyTorch (the module docstring) on folders A and B."""
    import clip
    import numpy as np
    import torch

    def call():
        model = clip.model.build_model(torch.load(job["weights"], map_location="cpu")).float().eval()
        embeddings = []
        for folder in (job["a"], job["b"]):
            parts = []
            for batch in google_research_batches(folder):
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
                with torch.no_grad():
                    e = model.encode_image(x)
                parts.append((e / e.norm(dim=-1, keepdim=True)).numpy())
            embeddings.append(np.concatenate(parts))
        return {"cmmd": google_research_distance(*embeddings)}

    return call


def ganmetrics_cmmd(job):
    return ganmetrics_call(["eval", job["a"], job["b"], "--metrics", "cmmd", "--weights",
                            f"clip-vitl14-336={job['weights']}", "--batch-size", str(CMMD_BATCH),
                            "--workers", str(job["workers"]), "--device", "cpu"])


def reference_cmmd_step(job):
    import numpy as np

    a, b = (np.load(path) for path in job["arrays"])
    return lambda: {"cmmd": google_research_distance(a, b)}


def ganmetrics_cmmd_step(job):
    return ganmetrics_call(["eval", *job["files"], "--metrics", "cmmd", "--device", "cpu"], network=False)


def clean_fid_clip_fid(job):
    """clean-fid's ``compute_fid(..., model_name="clip_vit_b_32", mode="clean")`` on the CPU; its
    ``clip.load`` reads the bench's file instead of downloading."""
    import clip
    from cleanfid import fid as cleanfid_fid

    clip.clip._download = lambda url, root: job["weights"]
    return lambda: {"fid@clip-vitb32": float(cleanfid_fid.compute_fid(
        job["a"], job["b"], mode="clean", model_name="clip_vit_b_32", device="cpu", num_workers=job["workers"],
        batch_size=job["batch_size"], verbose=False))}


def ganmetrics_clip_fid(job):
    return ganmetrics_call(["eval", job["a"], job["b"], "--metrics", "fid@clip-vitb32", "--weights",
                            f"clip-vitb32={job['weights']}", "--batch-size", str(job["batch_size"]),
                            "--workers", str(job["workers"]), "--device", "cpu"])


TOOLS = {
    "cmmd": {"ganmetrics": ganmetrics_cmmd, "google-research (PyTorch)": reference_cmmd},
    "cmmd_step": {"ganmetrics": ganmetrics_cmmd_step, "google-research (PyTorch)": reference_cmmd_step},
    "clip_fid": {"ganmetrics": ganmetrics_clip_fid, "clean-fid (CPU)": clean_fid_clip_fid},
}
"""{part: {tool: adapter}}: an adapter takes the job, does the imports and patches (not timed)
and returns the timed call, which returns {result key: value}."""


def work_tool(job) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    call = TOOLS[job["part"]][job["tool"]](job)
    started = time.perf_counter()
    values = call()
    return {"values": values, "seconds": time.perf_counter() - started}


WORKERS = {"weights": work_weights, "banks": work_banks, "tool": work_tool,
           "images": lambda job: dict(zip("ab", make_images(Path(job["folder"]), job["n"], 0)))}


# --------------------------------------------------------------------------------------------
# Running and reporting


def job(out: Path, name: str, spec: dict) -> dict:
    """A worker job in its own process: its result merged with the process's measurements."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = logs / f"{name}.json"
    result.unlink(missing_ok=True)
    env = {**os.environ, "GANMETRICS_CACHE_DIR": str(out / "cache")}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({**spec, "result": str(result)})]
    measured = run_measured(command, logs / f"{name}.log", env)
    print(f"  {name}: {measured['process_seconds']:.1f} s, exit {measured['returncode']}", file=sys.stderr, flush=True)
    if measured["returncode"] != 0:
        tail = (logs / f"{name}.log").read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{name} failed: {tail[0][:300]} (see {logs / name}.log)")
    return {**measured, **json.loads(result.read_text())}


def machine() -> dict:
    """The CPU's model, its vector instruction sets (AVX2, AVX-512 subsets) and core count."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    isa = sorted(flag for flag in flags if flag == "avx2" or flag.startswith("avx512"))
    return {"cpu": model, "isa": isa, "cores": os.cpu_count()}


def run(args) -> dict:
    """Every part not skipped: {"machine", "settings", part: {tool: measurements}}."""
    out = Path(args.out)
    settings = {"images": args.images, "fid_images": args.fid_images, "bank": args.bank, "workers": args.workers,
                "batch_size": args.batch_size}
    result = {"machine": machine(), "settings": settings}
    parts = [part for part in PARTS if part not in args.skip]
    weights = job(out, "weights", {"kind": "weights", "folder": str(out / "weights")})
    specs = {}
    if "cmmd" in parts:
        folders = job(out, "images_cmmd", {"kind": "images", "folder": str(out / f"data-{args.images}"), "n": args.images})
        specs["cmmd"] = {"a": folders["a"], "b": folders["b"], "weights": weights["clip-vitl14-336"]}
    if "cmmd_step" in parts:
        files = job(out, "banks", {"kind": "banks", "folder": str(out / "banks"), "n": args.bank})
        specs["cmmd_step"] = {"files": [files["a"], files["b"]],
                              "arrays": [files[side][:-len(".npz")] + ".npy" for side in "ab"]}
    if "clip_fid" in parts:
        folders = job(out, "images_fid", {"kind": "images", "folder": str(out / f"data-{args.fid_images}"),
                                          "n": args.fid_images})
        specs["clip_fid"] = {"a": folders["a"], "b": folders["b"], "weights": weights["clip-vitb32"]}
    for part, spec in specs.items():
        result[part] = {tool: job(out, f"{part}_{tool.split()[0]}", {"kind": "tool", "part": part, "tool": tool,
                                                                     "workers": args.workers,
                                                                     "batch_size": args.batch_size, **spec})
                        for tool in TOOLS[part]}
    return result


def _row(name: str, measured: dict, images: int | None) -> str:
    rate = f"{images / measured['seconds']:.2f}" if images else "–"
    values = ", ".join(f"{key} {value:.6g}" for key, value in measured["values"].items())
    return f"| {name} | {measured['seconds']:.1f} | {rate} | {measured['peak_rss_mib']:,.0f} | {values} |"


def _agreement(rows: dict) -> str:
    (ours, theirs) = (next(iter(row["values"].values())) for row in rows.values())
    return f"relative difference of the values: {abs(ours - theirs) / abs(theirs):.2e}"


PART_NOTES = {
    "cmmd": "The reference sums its kernels in float32 (JAX's default) and ganmetrics in float64 (equal to a "
            "float64 replay of distance.py to 1e-9 in the tests): beyond the embeddings' rounding, that is the "
            "difference.",
    "cmmd_step": "ganmetrics holds the two float32 banks and at most 8 x (2 x 2048 x 768 + 2048^2 + N_A + N_B) bytes "
                 "more (58 MB plus the squared norms); the reference holds n x n float32 matrices (two at a time). "
                 "The difference of the values is the reference's float32 rounding.",
    "clip_fid": "Both compute the statistics in float64 from float32 features. With no more images than the 512 "
                "features the covariances are singular and the square root of their product ill-conditioned: "
                "agreement is then not guaranteed (the parity test compares full-rank covariances, to 1e-4).",
}
PART_TITLES = {
    "cmmd": "CMMD end to end, ViT-L/14@336 (random:0), {images} images a side",
    "cmmd_step": "CMMD from feature banks alone, {bank} embeddings a side (768-d)",
    "clip_fid": "CLIP-FID (clean-fid's clip_vit_b_32), ViT-B/32 (random:0), {fid_images} images a side",
}


def render(result: dict) -> list[str]:
    """The markdown block of ``run``'s result."""
    settings, host = result["settings"], result["machine"]
    lines = [f"CPU: {host['cpu']}, {host['cores']} cores; ISA: {' '.join(host['isa']) or 'no AVX2'}; "
             f"torch threads as the machine gives them, --workers {settings['workers']}.", ""]
    for part in PARTS:
        if part not in result:
            continue
        images = None if part == "cmmd_step" else 2 * settings["fid_images" if part == "clip_fid" else "images"]
        lines += [f"**{PART_TITLES[part].format(**settings)}**", "",
                  "| tool | call s | images/s | peak RSS MiB | value |", "| --- | ---: | ---: | ---: | --- |"]
        lines += [_row(tool, measured, images) for tool, measured in result[part].items()]
        lines += ["", f"{_agreement(result[part])}. {PART_NOTES[part]}", ""]
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=128, help="CMMD end to end: images a side, a multiple of 32 (default 128)")
    p.add_argument("--fid-images", type=int, default=512, help="CLIP-FID: images a side (default 512)")
    p.add_argument("--bank", type=int, default=20000, help="CMMD step: embeddings a side (default 20000)")
    p.add_argument("--batch-size", type=int, default=32, help="CLIP-FID batch size, both tools (CMMD: 32, as google-research)")
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)),
                   help="decoding processes, ganmetrics and clean-fid (default CPUs - 1, at most 8)")
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts to leave out")
    p.add_argument("--out", default=str(HERE / "out" / "clip"), help="work folder (default bench/out/clip)")
    args = p.parse_args(argv)
    if args.images % CMMD_BATCH:
        p.error(f"--images must be a multiple of {CMMD_BATCH}: google-research drops the rest, ganmetrics does not")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        spec = json.loads(argv[1])
        Path(spec["result"]).write_text(json.dumps(WORKERS[spec["kind"]](spec)))
        return 0
    args = parse_args(argv)
    result = run(args)
    Path(args.out, "results.json").write_text(json.dumps(result, indent=1))
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
