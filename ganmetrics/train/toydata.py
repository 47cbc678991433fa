"""A seeded toy image set with real structure, small enough to train a GAN on a CPU.

Each image is a textured background (a gradient, stripes, a checkerboard or smooth noise between
two random colours) with one to three filled shapes (circles, squares, triangles) of random
colour, scale, position and rotation. The set is diverse enough that a collapsed generator
scores visibly worse FID than a healthy one. Rendered at 4x and box-filtered down, so edges are
anti-aliased; image ``i`` depends only on ``(seed, i)``, and the bytes are identical on every run.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..store.atomicfile import atomic_write

SHAPES = ("circle", "square", "triangle")
SUPERSAMPLE = 4


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float64 (size, size, 3) in [0, 255]: a blend of two random colours by a texture t in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    kind = rng.integers(4)
    if kind == 0:  # linear gradient
        t = (along - along.min()) / (along.max() - along.min())
    elif kind == 1:  # stripes
        t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * along + rng.uniform(0, 2 * np.pi))
    elif kind == 2:  # checkerboard
        cells = rng.integers(2, 7)
        t = ((xx * cells).astype(int) + (yy * cells).astype(int)) % 2
    else:  # smooth noise: a 4x4 random grid upsampled bicubically
        coarse = Image.fromarray(rng.random((4, 4)).astype(np.float32), mode="F")
        t = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).clip(0, 1)
    low, high = rng.integers(0, 256, size=(2, 3))
    return low + (high - low) * t[..., None]


def _draw_shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    shape = SHAPES[rng.integers(len(SHAPES))]
    radius = rng.uniform(0.12, 0.35) * size
    cx, cy = rng.uniform(radius, size - radius, size=2)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
        return
    sides = 4 if shape == "square" else 3
    rotation = rng.uniform(0, 2 * np.pi)
    corners = [
        (cx + radius * np.cos(rotation + 2 * np.pi * k / sides), cy + radius * np.sin(rotation + 2 * np.pi * k / sides))
        for k in range(sides)
    ]
    draw.polygon(corners, fill=colour)


def render_toy_image(rng: np.random.Generator, image_size: int = 32) -> np.ndarray:
    """One image drawn from ``rng``: uint8 (image_size, image_size, 3)."""
    size = image_size * SUPERSAMPLE
    canvas = Image.fromarray(_background(rng, size).round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(1, 4)):
        _draw_shape(draw, rng, size)
    image = np.asarray(canvas.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.float64)
    grain = rng.normal(0, 4, size=image.shape)  # fine texture that survives at the final size
    return (image + grain).round().clip(0, 255).astype(np.uint8)


def toy_images(n: int, image_size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` toy images as uint8 (n, image_size, image_size, 3); image i is seeded by (seed, i)."""
    return np.stack([render_toy_image(np.random.default_rng([seed, i]), image_size) for i in range(n)])


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as a PNG, through a temporary file in the same
    folder renamed into place, so an interrupted write leaves no partial ``path``."""
    with atomic_write(path) as file:
        Image.fromarray(image).save(file, format="PNG")


def write_toy_dataset(out_dir: str | os.PathLike, n: int, image_size: int = 32, seed: int = 0) -> list[Path]:
    """Render ``n`` toy images into ``out_dir`` (created if needed) as ``00000.png``,
    ``00001.png``, ...; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = out_dir / f"{i:05d}.png"
        save_png(render_toy_image(np.random.default_rng([seed, i]), image_size), path)
        paths.append(path)
    return paths
