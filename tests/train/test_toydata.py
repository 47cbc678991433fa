"""The toy image set: deterministic for a seed, and diverse."""

import numpy as np
from PIL import Image, ImageDraw

from ganmetrics.train.toydata import toy_images, write_toy_dataset


def test_files_are_bit_identical_for_a_seed(tmp_path):
    first = write_toy_dataset(tmp_path / "a", 12, image_size=32, seed=3)
    second = write_toy_dataset(tmp_path / "b", 12, image_size=32, seed=3)
    assert [p.name for p in first] == [f"{i:05d}.png" for i in range(12)]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [p.name for p in first]  # no temporary files left
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    other = write_toy_dataset(tmp_path / "c", 12, image_size=32, seed=4)
    assert not any(a.read_bytes() == c.read_bytes() for a, c in zip(first, other))


def test_files_hold_the_arrays(tmp_path):
    paths = write_toy_dataset(tmp_path, 5, image_size=64, seed=1)
    arrays = toy_images(5, image_size=64, seed=1)
    assert arrays.shape == (5, 64, 64, 3) and arrays.dtype == np.uint8
    for path, array in zip(paths, arrays):
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (64, 64)
            assert np.array_equal(np.asarray(image), array)
    # Image i depends on (seed, i) only, so a longer set starts with the shorter one.
    assert np.array_equal(toy_images(8, image_size=64, seed=1)[:5], arrays)


def test_images_are_diverse():
    images = toy_images(64, image_size=32, seed=0).astype(np.float64)
    flat = images.reshape(64, -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=2)
    pairwise = distances[np.triu_indices(64, k=1)]
    assert pairwise.min() > 15  # no two images alike
    assert pairwise.mean() > 50  # on a 0..255 scale: different colours and layouts
    mean_colours = images.mean(axis=(1, 2))
    assert mean_colours.std(axis=0).min() > 30  # every channel varies from image to image
    assert (images.std(axis=(1, 2, 3)) > 10).all()  # every image has structure, none is flat
    assert images.min() == 0 and images.max() == 255


def test_shapes_of_every_kind_scale_and_position(monkeypatch):
    drawn = []
    ellipse, polygon = ImageDraw.ImageDraw.ellipse, ImageDraw.ImageDraw.polygon

    def record_ellipse(self, box, *args, **kwargs):
        drawn.append(("circle", (box[2] - box[0]) / 2, (box[0] + box[2]) / 2))
        return ellipse(self, box, *args, **kwargs)

    def record_polygon(self, corners, *args, **kwargs):
        xs = [x for x, _ in corners]
        drawn.append(({3: "triangle", 4: "square"}[len(corners)], None, sum(xs) / len(xs)))
        return polygon(self, corners, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "ellipse", record_ellipse)
    monkeypatch.setattr(ImageDraw.ImageDraw, "polygon", record_polygon)
    toy_images(40, image_size=32, seed=0)
    kinds = [kind for kind, _, _ in drawn]
    assert {kind: kinds.count(kind) >= 10 for kind in ("circle", "square", "triangle")} == \
        {"circle": True, "square": True, "triangle": True}
    radii = [r for _, r, _ in drawn if r is not None]
    assert max(radii) > 2 * min(radii)  # several scales (in the 4x supersampled canvas)
    centres = [x for _, _, x in drawn]
    assert max(centres) - min(centres) > 64  # spread over the 128-pixel canvas
