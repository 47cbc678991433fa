"""A conditional run's training set: one subfolder a class, in sorted order."""

import numpy as np
import pytest
import torch
from PIL import Image

from ganmetrics.errors import GanMetricsError
from ganmetrics.train.data import load_images, load_labelled_images
from ganmetrics.train.toydata import write_toy_dataset


def test_classes_are_the_sorted_subfolders_and_their_images(tmp_path):
    write_toy_dataset(tmp_path, 7, image_size=32, seed=0, classes=3)  # circle: 0, 3, 6; square: 1, 4; triangle: 2, 5
    (tmp_path / "circle" / "more").mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "circle" / "more" / "extra.png")
    images, labels, classes = load_labelled_images(tmp_path, 32)
    assert classes == ["circle", "square", "triangle"]
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 2, 2] and labels.dtype == torch.int64
    # The same images as an unlabelled read of each class folder, in that order.
    expected = torch.cat([load_images(tmp_path / name, 32) for name in classes])
    assert torch.equal(images, expected) and images.shape == (8, 3, 32, 32)


def test_names_sort_as_strings_and_hidden_folders_are_no_class(tmp_path):
    for name in ("b", "a10", "a2", ".ipynb_checkpoints"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((8, 8, 3), len(name), np.uint8)).save(tmp_path / name / "0.png")
    _, labels, classes = load_labelled_images(tmp_path, 32)
    assert classes == ["a10", "a2", "b"] and labels.tolist() == [0, 1, 2]  # the classes `eval --per-class` reads


def test_folders_that_are_not_a_labelled_set_are_refused(tmp_path):
    flat = write_toy_dataset(tmp_path / "flat", 4)[0].parent
    with pytest.raises(GanMetricsError, match="one subfolder of images per class, at least 2, and .* has none"):
        load_labelled_images(flat, 32)
    one = write_toy_dataset(tmp_path / "one", 4, classes=2)[0].parent.parent
    for path in (one / "square").iterdir():
        path.rename(one / "circle" / path.name)
    (one / "square").rmdir()
    with pytest.raises(GanMetricsError, match="has 1;"):
        load_labelled_images(one, 32)
    (one / "square").mkdir()
    (one / "square" / "notes.txt").write_text("no images")
    with pytest.raises(GanMetricsError, match="class 'square' .* holds no PNG/JPG images"):
        load_labelled_images(one, 32)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / "square" / "0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / "loose.png")
    with pytest.raises(GanMetricsError, match="loose.png is in no class"):
        load_labelled_images(one, 32)
    with pytest.raises(GanMetricsError, match="does not exist"):
        load_labelled_images(tmp_path / "missing", 32)
