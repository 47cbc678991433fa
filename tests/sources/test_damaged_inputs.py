"""Bad inputs in sources: a damaged archive is an error, never a smaller data set; 16-bit images
are scaled, not clipped; only regular files are read from folders (never a hang on a FIFO); each
member and image is bounded in bytes and pixels."""

import io
import os
import signal
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.sources import decode_image, open_source


def png_bytes(image: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def noise_images(n: int, seed: int = 0, size: int = 16) -> np.ndarray:
    """Incompressible images, so an archive's bytes are mostly member data."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_tar(path: Path, images: np.ndarray, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for i, image in enumerate(images):
            data = png_bytes(image)
            info = tarfile.TarInfo(f"{i:04d}.png")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def read_all(source) -> list:
    return [image for _, image in source.iterate()]


# --- a damaged archive is an error, never a smaller data set ----------------------------------

def test_tar_with_a_damaged_member_header_midway_is_an_error_not_fewer_images(tmp_path):
    path = write_tar(tmp_path / "a.tar", noise_images(6))
    data = bytearray(path.read_bytes())
    offsets = [m.offset for m in tarfile.open(path)]
    data[offsets[3]:offsets[3] + 512] = os.urandom(512)  # garbage where the 4th header was
    path.write_bytes(bytes(data))
    with pytest.raises(GanMetricsError, match="a.tar.*damaged member header"):
        open_source(path)


def test_tar_truncated_at_a_member_boundary_is_an_error(tmp_path):
    path = write_tar(tmp_path / "a.tar", noise_images(6))
    offsets = [m.offset for m in tarfile.open(path)]
    path.write_bytes(path.read_bytes()[:offsets[4]])
    with pytest.raises(GanMetricsError, match="a.tar.*without the end-of-archive marker"):
        open_source(path)


def test_tar_gz_with_a_bad_crc_is_an_error(tmp_path):
    path = write_tar(tmp_path / "a.tar.gz", noise_images(4), "w:gz")
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the gzip trailer's CRC-32 of the (intact) tar stream
    path.write_bytes(bytes(data))
    with pytest.raises(GanMetricsError, match=r"a\.tar\.gz.*(CRC|check)"):
        open_source(path)


def test_tar_gz_corrupted_midway_is_an_error_naming_the_archive(tmp_path):
    path = write_tar(tmp_path / "a.tar.gz", noise_images(8), "w:gz")
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(GanMetricsError, match=r"a\.tar\.gz"):
        read_all(open_source(path))


def test_tar_changed_during_a_run_is_an_error(tmp_path):
    path = write_tar(tmp_path / "a.tar", noise_images(6))
    source = open_source(path)
    write_tar(path, noise_images(4))  # fewer members, read by the same source
    with pytest.raises(GanMetricsError, match="4 images, not the 6"):
        read_all(source)


def test_zip_member_with_a_bad_crc_is_one_line_naming_the_member(tmp_path):
    path = tmp_path / "a.zip"
    members = {f"{i:04d}.png": png_bytes(image) for i, image in enumerate(noise_images(3))}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = bytearray(path.read_bytes())
    start = data.index(members["0001.png"]) + len(members["0001.png"]) - 20  # inside the PNG's last chunk
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    source = open_source(path)
    with pytest.raises(GanMetricsError, match=r"member 0001\.png of zip archive .*a\.zip is damaged .*CRC"):
        source.read(1)


# --- 16-bit images are scaled, not clipped ----------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_image_gives_the_pixels_of_its_8_bit_version(fmt):
    values = np.random.default_rng(0).integers(0, 65536, (12, 10)).astype(np.uint16)
    values[0, :3] = [0, 257 * 200, 65535]
    wide, narrow = io.BytesIO(), io.BytesIO()
    Image.fromarray(values).save(wide, format=fmt)
    Image.fromarray((values // 257).astype(np.uint8)).save(narrow, format=fmt)
    assert Image.open(io.BytesIO(wide.getvalue())).mode.startswith("I")
    pixels = decode_image(wide.getvalue(), "wide")
    assert pixels.dtype == np.uint8 and pixels.shape == (12, 10, 3)
    np.testing.assert_array_equal(pixels, decode_image(narrow.getvalue(), "narrow"))
    assert list(pixels[0, :3, 0]) == [0, 200, 255]


# --- only regular files are read from folders -------------------------------------------------

@pytest.fixture
def alarm():
    """Fail (instead of hanging) a test that blocks for more than 60 s (a FIFO opened for reading)."""
    def timeout(*_):
        raise TimeoutError("blocked")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def folder_with_specials(tmp_path):
    folder = write_images(tmp_path / "imgs", smooth_images(3, (16, 16), seed=1))
    os.mkfifo(folder / "x.png")
    os.symlink("loop.png", folder / "loop.png")  # a link to itself
    os.symlink("missing.png", folder / "broken.png")
    os.symlink(folder / "0000.png", folder / "link.png")  # a link to a regular file is read
    return folder


def test_fifos_and_broken_or_looping_links_are_skipped_with_the_count(folder_with_specials, alarm):
    with pytest.warns(UserWarning, match="skipped 3 entries that are not regular files") as caught:
        source = open_source(folder_with_specials)
    assert source.names == ["0000.png", "0001.png", "0002.png", "link.png"]
    assert len(read_all(source)) == 4 and source.fingerprint()
    assert len([w for w in caught if "regular" in str(w.message)]) == 1


def test_strict_refuses_a_fifo(folder_with_specials, alarm):
    with pytest.raises(GanMetricsError, match="broken.png .* is not a regular file .*--strict"):
        open_source(folder_with_specials, strict=True)


def test_strict_on_the_cli_refuses_special_entries_in_one_line(folder_with_specials, tmp_path, alarm):
    result = run_cli("stats", folder_with_specials, "-o", tmp_path / "s.npz", "--no-cache", "--strict")
    assert "not a regular file" in one_line_error(result)


def test_without_recursion_special_entries_are_counted_too(folder_with_specials, alarm):
    with pytest.warns(UserWarning, match="skipped 3 entries that are not regular files"):
        assert len(open_source(folder_with_specials, recursive=False)) == 4


def test_a_fifo_given_as_the_source_is_refused_without_blocking(tmp_path, alarm):
    os.mkfifo(tmp_path / "x.npy")
    with pytest.raises(GanMetricsError, match="not a regular file"):
        open_source(tmp_path / "x.npy")


# --- bounded reads per member and per image ---------------------------------------------------

def test_an_archive_member_larger_than_the_limit_is_refused_naming_it(tmp_path, monkeypatch):
    images = noise_images(2, size=32)  # ~3 KiB PNGs
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, image in enumerate(images):
            archive.writestr(f"{i}.png", png_bytes(image))
    tpath = write_tar(tmp_path / "a.tar", images)
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(GanMetricsError, match=r"0\.png is [0-9,]+ bytes, above the limit of 1,000 .*GANMETRICS_MAX_IMAGE_BYTES"):
        open_source(zpath).read(0)
    with pytest.raises(GanMetricsError, match="above the limit of 1,000 .*GANMETRICS_MAX_IMAGE_BYTES"):
        read_all(open_source(tpath))
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_BYTES", "100000")
    assert open_source(zpath).read(0).shape == (32, 32, 3)


def test_an_image_file_in_a_folder_larger_than_the_limit_is_refused_naming_it(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(noise_images(2, size=32)):  # ~3 KiB PNGs
        (folder / f"{i}.png").write_bytes(png_bytes(image))
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(GanMetricsError, match=r"0\.png is [0-9,]+ bytes, above the limit of 1,000 .*GANMETRICS_MAX_IMAGE_BYTES"):
        open_source(folder).read(0)
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_BYTES", "100000")
    assert open_source(folder).read(0).shape == (32, 32, 3)


def test_a_zip_member_that_lies_about_its_size_is_still_bounded(tmp_path, monkeypatch):
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.png", b"\0" * 50_000)
    data = bytearray(zpath.read_bytes())  # declare 100 bytes in the central directory
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (100).to_bytes(4, "little")
    zpath.write_bytes(bytes(data))
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(GanMetricsError, match="big.png"):
        open_source(zpath).read(0)


def test_an_image_with_more_pixels_than_the_limit_is_refused_naming_the_variable(monkeypatch):
    data = png_bytes(np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(GanMetricsError, match="limit of 1,000 pixels .*GANMETRICS_MAX_IMAGE_PIXELS"):
        decode_image(data, "big.png")
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_PIXELS", "2000")
    assert decode_image(data, "big.png").shape == (40, 40, 3)


def test_a_bad_limit_variable_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("GANMETRICS_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(GanMetricsError, match="GANMETRICS_MAX_IMAGE_PIXELS='lots' is not a positive whole number"):
        decode_image(png_bytes(np.zeros((4, 4, 3), np.uint8)), "x.png")
