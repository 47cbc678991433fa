"""Shared fixtures: a random-weight checkpoint with the real file's keys and shapes, and small
deterministic image sets. Nothing here is committed data: everything is generated per session."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganmetrics.cli import cli
from ganmetrics.weights import random_state_dict

RANDOM_SEED = 0
FAST_OPTIONS = ("--weights", "random:0", "--dims", "64", "--quiet", "--workers", "0")


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Every test's weights and statistics cache is a fresh folder, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def restore_determinism_flags():
    """train() switches on deterministic algorithms for the whole process: restore the setting."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def run_cli(*args, options=FAST_OPTIONS):
    """``ganmetrics ARGS`` in-process, by default with the fast options (random weights, 64 dims,
    no progress bar, no worker processes)."""
    return CliRunner().invoke(cli, [*map(str, args), *options])


def one_line_error(result, code: int = 2) -> str:
    """The single stderr line of a failed run: exit 2 allows nothing else on stderr; exit 1
    (a threshold) allows the run's warnings before its one-line reason."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 1:
        lines = [line for line in lines if not line.startswith("ganmetrics: warning:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ganmetrics: error:" if code == 2 else "ganmetrics: ")
    return lines[0]


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module: tiny convolutions run fastest so, and OpenMP
    threads crawl on a busy 2-core machine. Restores the previous count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """``random:0`` written as a .pth file (~95 MB), as the reference tools need a file."""
    path = tmp_path_factory.mktemp("weights") / "random-0.pth"
    torch.save(random_state_dict(RANDOM_SEED), path)
    return path


def smooth_images(n: int, size: tuple[int, int], seed: int, offset: float = 0.0) -> np.ndarray:
    """n uint8 (H, W, 3) images of smooth random colour fields plus noise, brightness shifted by
    ``offset`` (0..1): photo-like enough to give varied features."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.random((n, 4, 4, 3))
    yy, xx = np.meshgrid(np.linspace(0, 3, h), np.linspace(0, 3, w), indexing="ij")
    y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 2)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    field = (coarse[:, y0, x0] * (1 - fy) * (1 - fx) + coarse[:, y0 + 1, x0] * fy * (1 - fx)
             + coarse[:, y0, x0 + 1] * (1 - fy) * fx + coarse[:, y0 + 1, x0 + 1] * fy * fx)
    pixels = (field * 0.8 + offset) * 255 + rng.normal(0, 12, field.shape)
    return pixels.clip(0, 255).astype(np.uint8)


def write_images(folder: Path, images: np.ndarray, fmt: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.{fmt}")
    return folder


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory) -> Path:
    """48 images of mixed sizes and kinds: RGB, grayscale, RGBA and palette PNGs, and JPEGs."""
    folder = tmp_path_factory.mktemp("mixed")
    sizes = [(32, 32), (48, 40), (64, 64), (299, 299), (20, 35), (320, 300)]
    for i in range(48):
        image = smooth_images(1, sizes[i % len(sizes)], seed=100 + i)[0]
        kind = i % 6
        pil = Image.fromarray(image)
        if kind == 0:
            pil.save(folder / f"{i:03d}_rgb.png")
        elif kind == 1:
            pil.convert("L").save(folder / f"{i:03d}_gray.png")
        elif kind == 2:
            rgba = pil.convert("RGBA")
            rgba.putalpha(Image.fromarray((np.arange(image.shape[1]) * 7 % 256).astype(np.uint8)[None].repeat(image.shape[0], 0)))
            rgba.save(folder / f"{i:03d}_rgba.png")
        elif kind == 3:
            pil.convert("P", palette=Image.ADAPTIVE, colors=64).save(folder / f"{i:03d}_palette.png")
        else:
            pil.save(folder / f"{i:03d}_photo.jpg", quality=85 + kind)
    return folder


@pytest.fixture(scope="session")
def image_sets(tmp_path_factory) -> tuple[Path, Path]:
    """Two folders of 150 32x32 PNGs from shifted distributions (N > 64 dims)."""
    root = tmp_path_factory.mktemp("sets")
    a = write_images(root / "a", smooth_images(150, (32, 32), seed=1))
    b = write_images(root / "b", smooth_images(150, (32, 32), seed=2, offset=0.15))
    return a, b
