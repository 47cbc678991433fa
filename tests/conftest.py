"""Shared fixtures: a random-weight checkpoint with the real file's keys and shapes, and small
deterministic image sets. Nothing here is committed data: everything is generated per session."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import smooth_images, write_images
from ganmetrics.extractors.inception.weights import random_state_dict

RANDOM_SEED = 0


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


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module: tiny convolutions run fastest so, and OpenMP
    threads crawl on a busy 2-core machine. Restores the previous count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_blas_thread():
    """NumPy's and SciPy's BLAS on one thread for a test module: small matrix products run
    fastest so, and on a busy 2-core machine multi-threaded ones crawl (a 32-dim FID took 0.1 s)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    """``random:0`` written as a .pth file (~95 MB), as the reference tools need a file."""
    path = tmp_path_factory.mktemp("weights") / "random-0.pth"
    torch.save(random_state_dict(RANDOM_SEED), path)
    return path


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
