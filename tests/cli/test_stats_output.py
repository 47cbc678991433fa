"""`stats -o`: refused before any work when it would replace the input or cannot be written."""

import os

import numpy as np
import pytest

from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images


@pytest.fixture
def images(tmp_path):
    array = tmp_path / "images.npz"
    np.savez(array, smooth_images(4, (16, 16), seed=41))
    return array


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(images, tmp_path):
    before = images.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(images)
    for output in (images, link):
        message = one_line_error(run_cli("stats", images, "-o", output))
        assert "replace the images" in message
    assert images.read_bytes() == before


def test_a_read_only_folder_is_refused_before_any_work(images, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    # The tests run as root in CI, for whom every folder is writable: ask as a user would.
    monkeypatch.setattr(os, "access", lambda path, mode: not (mode & os.W_OK and str(path) == str(folder)))
    assert "not writable" in one_line_error(run_cli("stats", images, "-o", folder / "s.npz"))


def test_a_missing_folder_is_refused_before_any_image_is_decoded(tmp_path):
    source = write_images(tmp_path / "set", smooth_images(3, (16, 16), seed=42))
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("stats", source, "-o", tmp_path / "nowhere" / "s.npz"))
    assert "does not exist" in message and decoded[0] == 0
