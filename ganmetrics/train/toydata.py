"""A seeded toy image set with real structure, small enough to train a GAN on a CPU.

Each image is a textured background (a gradient, stripes, a checkerboard or smooth noise between
two random colours) with one to three filled shapes (circles, squares, triangles) of random
colour, scale, position and rotation. The set is diverse enough that a collapsed generator
scores visibly worse FID than a healthy one. Rendered at 4x and box-filtered down, so edges are
anti-aliased; image ``i`` depends only on ``(seed, i)``, and the bytes are identical on every run.

A labelled set (``classes`` = K > 0) gives image ``i`` the class ``i % K``: its shapes are all
``CLASS_SHAPES[i % K]`` (circle, square, triangle, star, cross, ring), drawn in colours near
that class's own hue, and it is written into a subfolder named after the shape.
"""

import colorsys
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import GanMetricsError
from ..store.atomicfile import atomic_write

SHAPES = ("circle", "square", "triangle")
# One shape per class of a labelled set, in class order; the unlabelled set draws from SHAPES.
CLASS_SHAPES = (*SHAPES, "star", "cross", "ring")
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


def _outline(shape: str) -> list[tuple[float, float]]:
    """(distance from the centre in radii, angle in radians) of each corner of a polygonal
    shape, before rotation."""
    if shape in ("square", "triangle"):
        sides = 4 if shape == "square" else 3
        return [(1.0, 2 * np.pi * k / sides) for k in range(sides)]
    if shape == "star":  # five points, the inner corners at 0.45 of the radius
        return [(1.0 if k % 2 == 0 else 0.45, 2 * np.pi * k / 10) for k in range(10)]
    # cross: a plus sign with arms 0.6 of the radius wide; one quarter's corners, turned four times
    quarter = [(1.0, 0.3), (0.3, 0.3), (0.3, 1.0)]
    return [(float(np.hypot(x, y)), float(np.arctan2(y, x)) + np.pi / 2 * q) for q in range(4) for x, y in quarter]


def _class_colour(rng: np.random.Generator, shape: str) -> tuple[int, int, int]:
    """A saturated RGB colour near the hue of ``shape``'s class (hues evenly spaced around the
    colour wheel): a labelled set's classes differ in colour as well as in outline, so that
    early features, such as a random-weight Inception's first block, tell them apart."""
    hue = CLASS_SHAPES.index(shape) / len(CLASS_SHAPES) + rng.uniform(-0.04, 0.04)
    rgb = colorsys.hsv_to_rgb(hue % 1, rng.uniform(0.7, 1), rng.uniform(0.7, 1))
    return tuple(round(255 * c) for c in rgb)


def _draw_shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, shape: str | None = None) -> None:
    """One filled shape of random scale, position and rotation. ``shape`` None: a random one of
    ``SHAPES`` in a random colour; else that one of ``CLASS_SHAPES`` in its class's colours."""
    labelled = shape is not None
    if not labelled:
        shape = SHAPES[rng.integers(len(SHAPES))]
    radius = rng.uniform(0.12, 0.35) * size
    cx, cy = rng.uniform(radius, size - radius, size=2)
    colour = _class_colour(rng, shape) if labelled else tuple(int(c) for c in rng.integers(0, 256, size=3))
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
        return
    if shape == "ring":
        draw.ellipse(box, outline=colour, width=max(1, round(0.35 * radius)))
        return
    rotation = rng.uniform(0, 2 * np.pi)
    corners = [(cx + radius * r * np.cos(rotation + angle), cy + radius * r * np.sin(rotation + angle))
               for r, angle in _outline(shape)]
    draw.polygon(corners, fill=colour)


def render_toy_image(rng: np.random.Generator, image_size: int = 32, shape: str | None = None) -> np.ndarray:
    """One image drawn from ``rng``: uint8 (image_size, image_size, 3). ``shape``: every shape in
    it is that one of ``CLASS_SHAPES``, in its class's colours (a labelled set); None: each a
    random one of ``SHAPES`` in a random colour."""
    size = image_size * SUPERSAMPLE
    canvas = Image.fromarray(_background(rng, size).round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(1, 4)):
        _draw_shape(draw, rng, size, shape)
    image = np.asarray(canvas.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.float64)
    grain = rng.normal(0, 4, size=image.shape)  # fine texture that survives at the final size
    return (image + grain).round().clip(0, 255).astype(np.uint8)


def toy_images(n: int, image_size: int = 32, seed: int = 0, classes: int = 0) -> np.ndarray:
    """``n`` toy images as uint8 (n, image_size, image_size, 3); image i is seeded by (seed, i)
    and, with ``classes`` > 0, is of class i % classes (drawn with the shape ``CLASS_SHAPES[i % classes]``)."""
    check_classes(n, classes)
    return np.stack([render_toy_image(np.random.default_rng([seed, i]), image_size, class_shape(i, classes))
                     for i in range(n)])


def check_classes(n: int, classes: int) -> None:
    """Refuse a number of classes that ``CLASS_SHAPES`` cannot draw, or that leaves a class empty."""
    if classes and not 2 <= classes <= len(CLASS_SHAPES):
        raise GanMetricsError(f"--classes {classes}: use 2 to {len(CLASS_SHAPES)} (one shape a class: "
                              f"{', '.join(CLASS_SHAPES)})")
    if n < classes:
        raise GanMetricsError(f"{n} images cannot fill {classes} classes; pass -n {classes} or more")


def class_shape(i: int, classes: int) -> str | None:
    """The shape of image ``i`` of a set of ``classes`` classes (0: unlabelled, None)."""
    return CLASS_SHAPES[i % classes] if classes else None


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as a PNG, through a temporary file in the same
    folder renamed into place, so an interrupted write leaves no partial ``path``."""
    with atomic_write(path) as file:
        Image.fromarray(image).save(file, format="PNG")


def write_toy_dataset(out_dir: str | os.PathLike, n: int, image_size: int = 32, seed: int = 0,
                      classes: int = 0) -> list[Path]:
    """Render ``n`` toy images into ``out_dir`` (created if needed) as ``00000.png``,
    ``00001.png``, ...; with ``classes`` > 0, image i goes into the subfolder of its class,
    named after its shape (e.g. ``circle/00000.png``, ``square/00001.png``: one folder a class,
    as ``--conditional`` reads them). Returns their paths."""
    check_classes(n, classes)
    out_dir = Path(out_dir)
    paths = []
    for i in range(n):
        shape = class_shape(i, classes)
        folder = out_dir / shape if shape else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.png"
        save_png(render_toy_image(np.random.default_rng([seed, i]), image_size, shape), path)
        paths.append(path)
    return paths
