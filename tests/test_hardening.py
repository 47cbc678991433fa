"""Issue 14, hardening: no silent wrong number, no smaller data set from a damaged archive, no
hang, no traceback, one line per message. Each test names the class of bad input it covers; the
fast ones read sources directly, a few go through the command line with the tiny settings."""

import io
import os
import pickle
import signal
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics.cli import cli
from ganmetrics.cli.render import echo_json, require_finite
from ganmetrics.errors import GanMetricsError
from ganmetrics.sources import decode_image, open_source
from ganmetrics.errors import quoted
from ganmetrics.store.statsfile import Statistics, load_statistics, save_statistics

D = 64


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


def good_statistics(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((100, D))
    return x.mean(0), np.cov(x, rowvar=False)


def error_after_warnings(result) -> str:
    """The one error line of an exit-2 run whose only other stderr lines are warnings (the
    "no metadata" warning of files written as a foreign tool would)."""
    assert result.exit_code == 2 and "Traceback" not in result.output, (result.exit_code, result.output)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("ganmetrics: warning:")]
    assert len(lines) == 1 and lines[0].startswith("ganmetrics: error:"), result.stderr
    return lines[0]


def write_stats(path: Path, mu, sigma) -> Path:
    np.savez(path, mu=mu, sigma=sigma)  # as a foreign tool would: no meta, nothing checked
    return path


# --- 1. statistics are checked; a non-finite result never reaches a gate or exit 0 ----------------

def _not_psd(sigma: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(sigma)
    values[0] = -0.05 * values[-1]
    return (vectors * values) @ vectors.T


@pytest.mark.parametrize("damage, check", [
    (lambda mu, s: (np.where(np.arange(D) == 3, np.nan, mu), s), "mu holds NaN"),
    (lambda mu, s: (mu, np.where(np.eye(D, dtype=bool), np.inf, s)), "sigma holds NaN or infinity"),
    (lambda mu, s: (mu, s + np.triu(np.full((D, D), 0.5), 1)), "not symmetric"),
    (lambda mu, s: (mu, -s), "not positive semi-definite"),
    (lambda mu, s: (mu, (lambda p: (p + p.T) / 2)(_not_psd(s))), "not positive semi-definite"),
])
def test_statistics_that_are_not_finite_symmetric_and_psd_are_refused_naming_the_check(tmp_path, damage, check):
    path = write_stats(tmp_path / "bad.npz", *damage(*good_statistics()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no meta
        with pytest.raises(GanMetricsError, match=check) as caught:
            load_statistics(path)
    assert str(path) in str(caught.value) and "ganmetrics stats" in str(caught.value)


def test_statistics_with_rounding_asymmetry_and_rank_deficiency_are_accepted(tmp_path):
    x = np.random.default_rng(1).standard_normal((3, D))  # 3 images, 8 dims: rank 2
    sigma = np.cov(x, rowvar=False)
    sigma[0, 1] += 1e-12 * np.abs(sigma).max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = load_statistics(write_stats(tmp_path / "ok.npz", x.mean(0), sigma))
    assert stats.dims == D


@pytest.mark.parametrize("order", ["C", "F"])
def test_checking_statistics_leaves_them_as_they_were_read(tmp_path, order):
    # The check shifts the diagonal of a Fortran-ordered copy in place: a file stored in
    # Fortran order (np.save keeps the order) is read as one, and must not be the copy shifted.
    mu, sigma = good_statistics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = load_statistics(write_stats(tmp_path / "s.npz", mu, np.asarray(sigma, order=order)))
    assert stats.sigma.flags.f_contiguous == (order == "F")
    assert np.array_equal(stats.sigma, sigma)


def test_statistics_that_are_not_finite_are_never_written(tmp_path):
    mu, sigma = good_statistics()
    with pytest.raises(GanMetricsError, match="not finite .*nothing written"):
        save_statistics(tmp_path / "s.npz", Statistics(mu * np.nan, sigma, 50, {}))
    assert not (tmp_path / "s.npz").exists()


def test_fid_of_a_nan_statistics_file_exits_2_even_with_a_gate(tmp_path):
    mu, sigma = good_statistics()
    good = write_stats(tmp_path / "good.npz", mu, sigma)
    bad = write_stats(tmp_path / "nan.npz", np.full(D, np.nan), sigma)
    line = error_after_warnings(run_cli("fid", bad, good, "--fail-above", "10"))
    assert "nan.npz" in line and "mu holds NaN" in line


def test_json_output_refuses_nan_and_infinity():
    with pytest.raises(GanMetricsError, match=r"not finite \(results.fid = nan\)"):
        echo_json({"metric": "eval", "results": {"fid": float("nan")}})
    with pytest.raises(GanMetricsError, match=r"not finite \(1.value = inf\)"):
        echo_json([{"value": 1.0}, {"value": float("inf")}])
    require_finite({"fid": 1.5, "n": 3, "rank": None}, "FID")


def test_a_nan_fid_on_the_cli_with_json_exits_2_never_0(tmp_path, monkeypatch):
    import ganmetrics.metrics.fid as fid_module

    monkeypatch.setattr(fid_module, "frechet_distance", lambda *args, **kwargs: float("nan"))
    mu, sigma = good_statistics()
    a, b = write_stats(tmp_path / "a.npz", mu, sigma), write_stats(tmp_path / "b.npz", mu + 1, sigma)
    line = error_after_warnings(run_cli("fid", a, b, "--json", "--fail-above", "10"))
    assert "not finite" in line


def test_a_nan_fid_on_the_cli_in_text_exits_2_never_0(tmp_path, monkeypatch):
    import ganmetrics.metrics.fid as fid_module

    monkeypatch.setattr(fid_module, "frechet_distance", lambda *args, **kwargs: float("nan"))
    mu, sigma = good_statistics()
    a, b = write_stats(tmp_path / "a.npz", mu, sigma), write_stats(tmp_path / "b.npz", mu + 1, sigma)
    line = error_after_warnings(run_cli("fid", a, b, "--fail-above", "10"))
    assert "not finite" in line


# --- 2. a damaged archive is an error, never a smaller data set ----------------------------------

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


# --- 4. 16-bit images are scaled, not clipped ----------------------------------------------------

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


# --- 6. only regular files are read from folders -------------------------------------------------

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


# --- 7. bounded reads per member and per image ---------------------------------------------------

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


# --- 8. seeds out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["random:99999999999999999999", "random:18446744073709551616", "random:²"])
def test_random_seed_out_of_range_is_one_line_naming_the_range(spec, tmp_path):
    folder = write_images(tmp_path / "a", smooth_images(2, (16, 16), seed=0))
    line = one_line_error(run_cli("is", folder, options=("--weights", spec, "--quiet", "--workers", "0")))
    assert "from 0 to 18446744073709551615" in line


# --- 9. one line, whatever the names and whatever third parties print -----------------------------

def test_quoted_escapes_only_names_that_need_it():
    assert quoted("runs/a b/x.png") == "runs/a b/x.png"
    assert quoted(Path("a\nb.png")) == "'a\\nb.png'"


def test_a_file_name_with_a_newline_keeps_the_error_on_one_line(tmp_path):
    folder = write_images(tmp_path / "two\nlines", smooth_images(2, (16, 16), seed=0))
    (folder / "notes\n.txt").write_text("x")
    line = one_line_error(run_cli("stats", folder, "-o", tmp_path / "s.npz", "--strict", "--no-cache"))
    assert "two\\nlines" in line and "notes\\n.txt" in line


def test_a_bare_pickle_as_weights_is_one_line_without_torchs_warning(tmp_path):
    path = tmp_path / "bare.pth"
    with path.open("wb") as file:
        pickle.dump({"conv.weight": [1.0]}, file, protocol=4)
    result = run_cli("weights", "verify", path, options=())
    line = one_line_error(result)
    assert "cannot read weights file" in line and "protocol" not in result.stderr


# --- 10. a crash is exit 3 and one line, never exit 1 and never a traceback ---------------------

def _all_commands(group, prefix=()):
    import click

    for name in group.list_commands(None):  # the lazy group imports each command here
        command = group.get_command(None, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_all_commands(cli))
# enough arguments for click to reach each command's body
ARGUMENTS = {("fid",): ("a", "b"), ("eval",): ("a", "b"), ("is",): ("a",), ("sample",): ("c", "-n", "1", "-o", "o"),
             ("toy-data",): ("o", "-n", "1"), ("train",): ("d", "--out", "o"), ("weights", "install"): ("f",),
             ("pack",): ("a", "-o", "o.npz"), ("report",): ("r.json", "-o", "r.html")}


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_turns_an_unexpected_exception_into_one_line_and_exit_3(path, command, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("deep trouble\nsecond line")

    monkeypatch.setattr(command, "callback", crash)
    result = run_cli(*path, *ARGUMENTS.get(path, ()), options=())
    assert result.exit_code == 3, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines == ["ganmetrics: internal error: RuntimeError: deep trouble (please report it at the project's "
                     "issue tracker; rerun with --debug for the traceback)"]


@pytest.mark.parametrize("command", ["fid", "is", "stats", "eval"])
def test_metric_commands_turn_a_deep_exception_into_exit_3(command, tmp_path, monkeypatch):
    import ganmetrics.sources.files as files

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(files.FolderSource, "__init__", crash)
    folder = write_images(tmp_path / "a", smooth_images(2, (16, 16), seed=0))
    args = {"fid": (folder, folder), "is": (folder,), "stats": (folder, "-o", tmp_path / "s.npz"),
            "eval": (folder, folder)}[command]
    line = one_line_error(run_cli(command, *args), 3)
    assert line.startswith("ganmetrics: internal error: RuntimeError: boom")


def test_debug_flag_and_variable_keep_the_traceback(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("deep trouble")

    monkeypatch.setattr(cli.get_command(None, "is"), "callback", crash)
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["--debug", "is", "x"])
    assert isinstance(result.exception, RuntimeError)
    monkeypatch.setenv("GANMETRICS_DEBUG", "1")
    assert isinstance(CliRunner().invoke(cli, ["is", "x"]).exception, RuntimeError)
    monkeypatch.setenv("GANMETRICS_DEBUG", "0")
    assert CliRunner().invoke(cli, ["is", "x"]).exit_code == 3


def test_a_value_that_is_not_a_number_crosses_every_gate_on_it():
    from ganmetrics.cli.gates import crossed

    nan = float("nan")
    assert crossed({"fid": nan}, {"fid": 30.0}, {}) and crossed({"is_mean": nan}, {}, {"is_mean": 5.0})
    assert crossed({"fid": 12.0}, {"fid": 30.0}, {}) == []
