"""The toy image set: deterministic for a seed, and diverse."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ganmetrics.errors import GanMetricsError
from ganmetrics.train.toydata import CLASS_SHAPES, render_toy_image, toy_images, write_toy_dataset


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


def test_a_labelled_set_puts_each_class_in_the_folder_of_its_shape(tmp_path):
    paths = write_toy_dataset(tmp_path, 7, image_size=32, seed=2, classes=3)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "circle/00000.png", "square/00001.png", "triangle/00002.png", "circle/00003.png", "square/00004.png",
        "triangle/00005.png", "circle/00006.png"]
    arrays = toy_images(7, image_size=32, seed=2, classes=3)
    for path, array in zip(paths, arrays):
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image), array)
    # A labelled set draws the same backgrounds as the unlabelled one: only its shapes differ.
    plain = toy_images(7, image_size=32, seed=2)
    assert not any(np.array_equal(a, b) for a, b in zip(arrays, plain))


def test_each_class_draws_only_its_shape_in_colours_near_its_hue(monkeypatch):
    import colorsys

    drawn = []
    ellipse, polygon = ImageDraw.ImageDraw.ellipse, ImageDraw.ImageDraw.polygon

    def record_ellipse(self, box, *args, fill=None, outline=None, **kwargs):
        drawn.append(("circle" if fill is not None else "ring", fill or outline))
        return ellipse(self, box, *args, fill=fill, outline=outline, **kwargs)

    def record_polygon(self, corners, *args, fill=None, **kwargs):
        drawn.append(({3: "triangle", 4: "square", 10: "star", 12: "cross"}[len(corners)], fill))
        return polygon(self, corners, *args, fill=fill, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "ellipse", record_ellipse)
    monkeypatch.setattr(ImageDraw.ImageDraw, "polygon", record_polygon)
    labelled = toy_images(len(CLASS_SHAPES), image_size=32, seed=0, classes=len(CLASS_SHAPES))
    for label, shape in enumerate(CLASS_SHAPES):
        drawn.clear()
        image = render_toy_image(np.random.default_rng([0, label]), 32, shape)
        assert np.array_equal(image, labelled[label])  # image i is of class i % classes
        assert drawn and {kind for kind, _ in drawn} == {shape}
        for _, colour in drawn:
            hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
            offset = (hue - label / len(CLASS_SHAPES) + 0.5) % 1 - 0.5  # around the colour wheel
            assert abs(offset) <= 0.04 + 1e-2 and saturation >= 0.69 and value >= 0.69


@pytest.mark.parametrize("n, classes, message", [(10, 1, "use 2 to 6"), (10, 7, "use 2 to 6"),
                                                 (2, 3, "2 images cannot fill 3 classes")])
def test_impossible_labelled_sets_are_refused(tmp_path, n, classes, message):
    with pytest.raises(GanMetricsError, match=message):
        write_toy_dataset(tmp_path / "toy", n, classes=classes)
    assert not (tmp_path / "toy").exists()
