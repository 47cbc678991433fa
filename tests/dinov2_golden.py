"""What ``tests/golden/dinov2.npz`` was made from (its README): the reduced-depth copy of the DINOv2
encoder, the seeded weights, the seeded images and their batches, read by the tests of the
encoder and of ``fd_dinov2`` and by the script that made the goldens."""

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganmetrics.extractors.dinov2.extractor import DINOv2Extractor
from ganmetrics.extractors.dinov2.network import GRID

GOLDEN = Path(__file__).parent / "golden" / "dinov2.npz"
WEIGHTS_SEED = 0


class DINOv2Depth2(DINOv2Extractor):
    """The encoder with the hub's first 2 blocks only (full width): the reduced copy most goldens
    use, under the encoder's own name, so that a test may register it in its place."""

    depth = 2


SINGLE_IMAGES = (  # (PIL mode, height, width, seed): smaller than, equal to and larger than 224
    ("RGB", 64, 64, 1),
    ("L", 100, 150, 2),
    ("RGB", 224, 224, 3),
    ("RGBA", 300, 256, 4),
    ("P", 389, 517, 5),
)
BATCH_IMAGES = (("RGB", 96, 128, 6), ("RGB", 96, 128, 7))
"""Two same-sized images the references ran as one batch."""
FD_SETS = (
    tuple(("RGB", 64, 48, 100 + i) for i in range(8)),
    tuple([("RGB", 72, 72, 200 + i) for i in range(5)] + [("RGB", 60, 90, 300 + i) for i in range(5)]),
)
"""Two small image sets whose Fréchet distance of depth-2 ``torch`` features is a golden."""
POS_EMBED_DIM = 4
POS_EMBED_GRIDS = ((16, 16), (20, 31))
"""Patch grids (rows, cols) of the resampling goldens: 224 x 224 and 280 x 434 pixels."""


def make_image(mode: str, height: int, width: int, seed: int) -> Image.Image:
    """A seeded test image in PIL ``mode`` (RGB, RGBA, L or P): random 8 x 8 blocks of colour under
    random noise, in integer arithmetic only, so every machine makes the same pixels."""
    rng = np.random.RandomState(seed)
    blocks = rng.randint(0, 256, size=(height // 8 + 1, width // 8 + 1, 4))
    smooth = blocks.repeat(8, axis=0).repeat(8, axis=1)[:height, :width]
    pixels = ((3 * smooth + rng.randint(0, 256, size=(height, width, 4))) // 4).astype(np.uint8)
    if mode == "P":
        image = Image.fromarray(pixels[:, :, 0], "P")
        image.putpalette(rng.randint(0, 256, size=768).astype(np.uint8).tobytes())
        return image
    return Image.fromarray({"RGB": pixels[:, :, :3], "RGBA": pixels, "L": pixels[:, :, 0]}[mode], mode)


def decoded(spec) -> np.ndarray:
    """A test image as our decoder gives it: ``convert("RGB")``, uint8 (H, W, 3)."""
    return np.asarray(make_image(*spec).convert("RGB"))


def same_size_groups(images) -> list[tuple]:
    """The images in batches of one size each, in first-seen order (as the golden script ran them)."""
    groups: dict[tuple, list] = {}
    for spec in images:
        groups.setdefault(spec[1:3], []).append(spec)
    return [tuple(group) for group in groups.values()]


def seeded_pos_embed() -> torch.Tensor:
    """A random position embedding for the 37 x 37 grid, ``POS_EMBED_DIM`` channels wide."""
    generator = torch.Generator().manual_seed(WEIGHTS_SEED)
    return torch.randn((1, 1 + GRID * GRID, POS_EMBED_DIM), generator=generator)


def encoder(mode: str, cls=DINOv2Depth2):
    """The encoder ``cls`` with ``resize=mode`` and the goldens' seeded weights, on the CPU."""
    return cls(cls.Options(resize=mode), weights=f"random:{WEIGHTS_SEED}")


def features(enc, groups) -> np.ndarray:
    """float32 (N, 1024) of the image groups, each group one batch, as the engine runs them:
    decoded, ``host_transform`` per image, stacked."""
    out = []
    for group in groups:
        pixels = torch.from_numpy(np.stack([enc.host_transform(decoded(spec)) for spec in group]))
        out.append(enc(pixels, {"cls"})["cls"].numpy())
    return np.concatenate(out)


@functools.cache
def set_features(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Both ``FD_SETS``' features straight from the reduced copy (no engine) with ``resize=mode``,
    in batches of one size each: float32 (N, 1024) each, computed once a session (read-only)."""
    out = tuple(features(encoder(mode), same_size_groups(images)) for images in FD_SETS)
    for x in out:
        x.flags.writeable = False
    return out


def write_set(folder: Path, images, keep_mode: bool = False) -> Path:
    """The images written as PNG files (lossless) into ``folder``, in their order: ``decoded``,
    or with ``keep_mode`` in their own PIL mode (grayscale, RGBA, palette), which our decoder
    converts to RGB as ``decoded`` does."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(images):
        (make_image(*spec) if keep_mode else Image.fromarray(decoded(spec))).save(folder / f"{i:02d}.png")
    return folder


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD of two feature sets (n, d) in float64, ddof-1 covariances, the trace square root exact
    for singular covariances: tr sqrt(S1 S2) is the nuclear norm of A B^T, where A^T A = S1 and
    B^T B = S2 are the centred features over sqrt(n - 1)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    a = (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(axis=0)) / np.sqrt(len(y) - 1)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2) + np.sum(a * a) + np.sum(b * b) - 2 * trace_sqrt)
