"""What every experiment measures on: the seeded image folders, the random-weight checkpoint and
synthetic statistics files, each written once under the work folder and reused.

The folders: ``small/{A,B}`` hold 32x32 PNGs, ``large/{A,B}`` 256x256 JPEGs, half of each count
per folder. A and B differ in colour balance and content mix, so the FID is far from zero. Each
folder is single-sized, because torch-fidelity and pytorch-fid batch images without resizing
them first; every tool therefore gets one row per size set.

The checkpoint is ``random_state_dict(0)`` of ``ganmetrics.extractors.inception.weights`` as a
.pth file that every tool loads (none downloads anything). It has the real file's keys and
shapes but is uncalibrated: the FIDs are only comparable between the tools here, never with
published ones.
"""

import json
import os
from pathlib import Path

SETS = {"small": "32px PNG", "large": "256px JPEG"}
"""The size sets: {name: label}."""
DATA_VERSION = 1
ADM_SIZE = 64  # the ADM rows' images: 64px, as the issue's benchmark


def _image(rng, size: int, colour: tuple, shape_share: float):
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


def work_stats_files(job) -> dict:
    """``make_stats_files`` in a worker process: the orchestrating one never holds their matrices,
    whose peak every later job's ``ru_maxrss`` would start from (a child's starts from its
    parent's peak)."""
    return {"files": make_stats_files(Path(job["folder"]), meta=job["meta"], weights_sha256=job["weights_sha256"])}


def stats_files(runner, folder: Path, meta: bool = False, weights_sha256: str = "0" * 64) -> list[str]:
    """The two files of ``make_stats_files``, made in a worker job (``work_stats_files``)."""
    r = runner.job("stats_files", work_stats_files, {"folder": str(folder), "meta": meta, "weights_sha256": weights_sha256})
    if "error" in r:
        raise RuntimeError(f"making the statistics files failed: {r['error']}")
    return r["files"]
