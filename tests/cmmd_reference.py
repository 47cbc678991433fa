"""google-research CMMD (``cmmd/``), written out in NumPy for the tests to compare with, step
for step: its distance (``distance.py``) in float64 and what its folder reader keeps of a
folder's embeddings (``io_util.py``), and its preprocessing of one image (``io_util.py``,
``embedding.py`` and scenic's CLIP ``model.py``). Its source is read, not installed (it is not on PyPI, and
runs on JAX): the commits are named beside each function."""

import numpy as np
from PIL import Image

SCENIC_MEAN = (0.48145466, 0.4578275, 0.40821073)
SCENIC_STD = (0.26862954, 0.26130258, 0.27577711)
"""scenic ``projects/baselines/clip/model.py`` ``IMAGE_MEAN``/``IMAGE_STD`` (commit
03c3032af3e4885489d2e201cf18331753b3c366): what ``normalize_image`` subtracts and divides by."""


def distance_mmd(x, y, xp):
    """google-research/google-research ``cmmd/distance.py`` at commit
    4c4299485319ed72ef782020c81784be5468924e, ``mmd``'s body (lines 51-90) with the array library
    ``xp`` (NumPy or torch) in the dtype of ``x`` and ``y`` (n, D) and (m, D): ``_SIGMA = 10``
    (line 25), ``_SCALE = 1000`` (line 28), full n x n matrices, the squared norms from the Gram
    matrices' diagonals, ``gamma = 1 / (2 * _SIGMA**2)``, the three kernel means,
    ``_SCALE * (k_xx + k_yy - 2 * k_xy)``. (The reference evaluates it in JAX's default float32.)"""
    x_sqnorms = xp.diag(x @ x.T)
    y_sqnorms = xp.diag(y @ y.T)
    gamma = 1 / (2 * 10**2)
    k_xx = xp.mean(xp.exp(-gamma * (-2 * (x @ x.T) + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = xp.mean(xp.exp(-gamma * (-2 * (x @ y.T) + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = xp.mean(xp.exp(-gamma * (-2 * (y @ y.T) + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return float(1000 * (k_xx + k_yy - 2 * k_xy))


def google_research_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """``distance_mmd`` replayed in float64 NumPy."""
    return distance_mmd(np.asarray(x, np.float64), np.asarray(y, np.float64), np)


def google_research_embeddings(embeddings: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """What google-research keeps of a folder's embeddings: ``cmmd/io_util.py``
    ``compute_embeddings_for_dir`` (commit 19638399cc9e03623c5b9087a1d6fa8813974ce9) batches
    them with ``drop_remainder=True``."""
    return embeddings[:len(embeddings) // batch_size * batch_size]


def google_research_cmmd_input(path) -> np.ndarray:
    """google-research ``cmmd``'s input for one image file, float32 (336, 336, 3): ``io_util.py``
    ``_read_image`` and ``_center_crop_and_resize`` (PIL BICUBIC on uint8, box at (w - l) // 2),
    ``compute_embeddings_for_dir``'s ``/ 255.0``, ``embedding.py``'s ``jax.image.resize`` to the
    same size (skipped by JAX) and scenic's ``normalize_image``, in float32 as JAX computes it.
    The image is converted to RGB first: the reference tiles grayscale itself and fails on RGBA.
    Read at google-research/google-research ``cmmd/io_util.py`` 19638399cc9e03623c5b9087a1d6fa8813974ce9,
    ``cmmd/embedding.py`` 5b09c22d73a9d35eb6c5d2a99b95677a45053466 and google-research/scenic
    ``projects/baselines/clip/model.py`` 03c3032af3e4885489d2e201cf18331753b3c366."""
    with Image.open(path) as im:
        im.load()
        im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((336, 336), resample=Image.BICUBIC)
    return google_research_normalise(np.asarray(im))


def google_research_normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32: ``/ 255.0``, then scenic's ``normalize_image``."""
    x = pixels.astype(np.float32) / 255.0
    return (x - np.float32(SCENIC_MEAN)) / np.float32(SCENIC_STD)
