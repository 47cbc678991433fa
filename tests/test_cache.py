"""The statistics cache: a second run decodes nothing for the reference, any change to the
images or to a setting that moves the numbers misses, a damaged entry is reported in one line
and recomputed; `cache list|clear` and `stats --info`."""

import copy
import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import run_cli, smooth_images, write_images
from ganmetrics import api, cache, extract, sources
from ganmetrics.cli import cli
from ganmetrics.extract import FeatureExtractor
from ganmetrics.sources import open_source
from ganmetrics.statsfile import Statistics, load_statistics, save_statistics
from ganmetrics.weights import random_weights

N = 8


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "stats"


@pytest.fixture
def folders(tmp_path):
    return (write_images(tmp_path / "ref", smooth_images(N, (32, 32), seed=11)),
            write_images(tmp_path / "fake", smooth_images(N, (32, 32), seed=12, offset=0.2)))


def fid_decoding(*args) -> tuple[dict, int, str]:
    """`fid ARGS --json`: (its row, images decoded, stderr)."""
    before = sources.decode_count
    result = run_cli("fid", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), sources.decode_count - before, result.stderr


def entries(cache_dir) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.is_dir() else []


def test_second_run_takes_the_reference_from_the_cache_without_decoding(folders, cache_dir):
    ref, fake = folders
    first, decoded, _ = fid_decoding(ref, fake)
    assert decoded == 2 * N
    assert len(entries(cache_dir)) == 1 and entries(cache_dir)[0].endswith(".npz")  # no temporary files left
    second, decoded, _ = fid_decoding(ref, fake)
    assert decoded == N  # only the generated side
    assert second["value"] == first["value"]

    listing = CliRunner().invoke(cli, ["cache", "list"])
    assert listing.exit_code == 0
    (line,) = listing.stdout.splitlines()
    assert line.startswith(f"folder {ref}") and f"n={N}" in line and "dims=64" in line and "resize=tf" in line
    assert line.endswith("KiB")


def test_a_touched_file_or_another_resize_misses(folders, cache_dir):
    ref, fake = folders
    fid_decoding(ref, fake)
    stat = os.stat(ref / "0003.png")
    os.utime(ref / "0003.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    _, decoded, _ = fid_decoding(ref, fake)
    assert decoded == 2 * N and len(entries(cache_dir)) == 2
    _, decoded, _ = fid_decoding(ref, fake, "--resize", "pytorch")
    assert decoded == 2 * N and len(entries(cache_dir)) == 3


def test_a_truncated_entry_is_reported_in_one_line_and_recomputed(folders, cache_dir):
    ref, fake = folders
    first, _, _ = fid_decoding(ref, fake)
    (entry,) = cache_dir.iterdir()
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    listing = CliRunner().invoke(cli, ["cache", "list"])
    assert listing.stdout.startswith(f"{entry} (unreadable)  n=?  dims=?  resize=?")
    again, decoded, stderr = fid_decoding(ref, fake)
    (line,) = [line for line in stderr.splitlines() if "cache" in line]
    assert line.startswith("ganmetrics: warning: corrupt cache entry") and "recomputing" in line
    assert decoded == 2 * N and again["value"] == first["value"]
    assert load_statistics(entry).n == N  # rewritten whole


# --- the cache logic, with an extractor whose statistics are counted (no network) ----------------


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(random_weights(0), torch.device("cpu"), dims=64, workers=0)


@pytest.fixture
def counting(extractor):
    """A copy of ``extractor`` whose ``statistics`` returns fixed values and records each call."""
    stub = copy.copy(extractor)
    stub.calls = []

    def statistics(source):
        stub.calls.append(source.describe())
        return Statistics(np.arange(64.0), np.eye(64), len(source), stub.metadata(source.describe()))

    stub.statistics = statistics
    return stub


@pytest.mark.parametrize("damage", ["garbage", "no meta", "other dims"])
def test_damaged_entries_are_recomputed(folders, counting, damage):
    source = open_source(folders[0])
    cache.cached_statistics(source, counting)
    entry = cache.entry_path(source, counting)
    if damage == "garbage":
        entry.write_bytes(b"\0" * 1000)
    elif damage == "no meta":
        np.savez(entry, mu=np.zeros(64), sigma=np.eye(64))
    else:
        save_statistics(entry, Statistics(np.zeros(8), np.eye(8), N, {"dims": 8}))
    with pytest.warns(UserWarning, match="corrupt cache entry .* recomputing") as caught:
        stats = cache.cached_statistics(source, counting)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert len(counting.calls) == 2 and np.array_equal(stats.mu, np.arange(64.0))
    assert cache.cached_statistics(source, counting).n == N and len(counting.calls) == 2


def test_which_sources_are_cached_by_default(folders):
    folder, array = open_source(folders[0]), open_source(smooth_images(2, (8, 8), seed=1))
    default, on, off = api.Options(), api.Options(cache=True), api.Options(cache=False)
    assert default.use_cache(folder, reference=True) and not default.use_cache(folder, reference=False)
    assert not default.use_cache(array, reference=True)
    assert on.use_cache(array, reference=False) and not off.use_cache(folder, reference=True)


def test_no_cache_stores_nothing_and_cache_stores_every_source(folders, counting, cache_dir):
    ref, fake = folders
    for cache_option, stored in [(False, 0), (None, 1), (True, 2)]:
        options = api.Options(cache=cache_option, dims=64)
        api.resolve_statistics(ref, counting, options, reference=True)
        api.resolve_statistics(fake, counting, options)
        assert len(entries(cache_dir)) == stored, cache_option
    assert len(counting.calls) == 2 + 2 + 1  # --no-cache both; default the reference; --cache the fake


def test_an_unwritable_cache_is_a_warning_not_a_failure(folders, counting, tmp_path, monkeypatch):
    (tmp_path / "not_a_folder").write_text("")
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "not_a_folder"))
    with pytest.warns(UserWarning, match="cannot write cache entry .* continuing uncached"):
        stats = cache.cached_statistics(open_source(folders[0]), counting)
    assert stats.n == N


def test_cache_clear_removes_entries_and_leftover_temporary_files(folders, counting, cache_dir):
    for folder in folders:
        cache.cached_statistics(open_source(folder), counting)
    (cache_dir / ".abc.npz.123.tmp").write_bytes(b"partial")
    listing = CliRunner().invoke(cli, ["cache", "list"])
    assert [line.split()[1] for line in listing.stdout.splitlines()] == [str(folders[1]), str(folders[0])]
    result = CliRunner().invoke(cli, ["cache", "clear"])
    assert result.exit_code == 0 and result.stdout.startswith("removed 2 cached statistics files")
    assert entries(cache_dir) == []
    result = CliRunner().invoke(cli, ["cache", "list"])
    assert result.exit_code == 0 and result.stdout == "" and "no cached statistics" in result.stderr


# --- what the key covers (no images decoded) ------------------------------------------------------


def varied(extractor, **changes):
    """A shallow copy with other settings (the network is not rebuilt: the key needs none)."""
    other = copy.copy(extractor)
    for name, value in changes.items():
        setattr(other, name, value)
    return other


def test_the_key_covers_images_and_every_setting_that_changes_the_numbers(tmp_path, extractor, monkeypatch):
    folder = write_images(tmp_path / "set", smooth_images(4, (16, 16), seed=3))
    write_images(folder / "sub", smooth_images(1, (16, 16), seed=4))
    key = cache.entry_path(open_source(folder), extractor)
    assert key == cache.entry_path(open_source(folder), extractor)  # stable
    other_weights = dataclasses.replace(extractor.weights, sha256="0" * 64)
    changed = [
        cache.entry_path(open_source(folder), varied(extractor, resize="clean")),
        cache.entry_path(open_source(folder), varied(extractor, dims=192)),
        cache.entry_path(open_source(folder), varied(extractor, weights=other_weights)),
        cache.entry_path(open_source(folder, limit=3), extractor),
        cache.entry_path(open_source(folder, recursive=False), extractor),
    ]
    monkeypatch.setattr(extract, "__version__", "99.0.0")
    changed.append(cache.entry_path(open_source(folder), extractor))
    monkeypatch.undo()
    (folder / "0001.png").write_bytes((folder / "0002.png").read_bytes())  # another size
    changed.append(cache.entry_path(open_source(folder), extractor))
    assert len({key, *changed}) == len(changed) + 1
    # Batch size and workers do not change the numbers, so they share the entry.
    assert cache.entry_path(open_source(folder), varied(extractor, batch_size=7, workers=3)) == changed[-1]


def test_arrays_are_keyed_by_content(tmp_path, extractor):
    images = smooth_images(4, (16, 16), seed=5)
    key = cache.entry_path(open_source(images), extractor)
    assert cache.entry_path(open_source(images.copy()), extractor) == key
    assert cache.entry_path(open_source(torch.from_numpy(images)), extractor) == key
    touched = images.copy()
    touched[2, 5, 5, 1] ^= 1
    assert cache.entry_path(open_source(touched), extractor) != key
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "a.npz", x=images, y=touched)
    file_keys = {cache.entry_path(open_source(p, key=k), extractor)
                 for p, k in [(tmp_path / "a.npy", None), (tmp_path / "a.npz", None), (tmp_path / "a.npz", "y")]}
    assert len(file_keys) == 3
    assert cache.entry_path(sources.GeneratorSource(lambda n: images[:n], n=4), extractor) is None


def test_an_array_with_cache_true_is_computed_once(monkeypatch):
    calls = []
    statistics = FeatureExtractor.statistics
    monkeypatch.setattr(FeatureExtractor, "statistics", lambda self, source: calls.append(1) or statistics(self, source))
    images = smooth_images(4, (32, 32), seed=6)
    options = {"weights": "random:0", "dims": 64, "workers": 0, "cache": True}
    first = api.compute_stats(images, **options)
    second = api.compute_stats(images.copy(), **options)
    assert len(calls) == 1 and np.array_equal(first.sigma, second.sigma)
    api.compute_stats(images, **{**options, "cache": None})  # default: only a reference folder or archive
    assert len(calls) == 2


# --- stats --info ---------------------------------------------------------------------------------


def test_stats_info_prints_the_metadata(folders, counting, tmp_path):
    ref, _ = folders
    save_statistics(tmp_path / "ref.npz", counting.statistics(open_source(ref)))
    info = CliRunner().invoke(cli, ["stats", "--info", str(tmp_path / "ref.npz")])
    assert info.exit_code == 0, info.output
    lines = info.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'ref.npz'}: {N} images, dims=64"
    assert {"  calibrated: false", "  resize: tf", f"  source: folder {ref}",
            f"  weights_sha256: {random_weights(0).sha256}"} <= set(lines)
    row = json.loads(CliRunner().invoke(cli, ["stats", "--info", str(tmp_path / "ref.npz"), "--json"]).stdout)
    assert (row["n"], row["dims"], row["resize"], row["calibrated"]) == (N, 64, "tf", False)


def test_stats_info_of_a_pytorch_fid_file_warns(tmp_path):
    np.savez(tmp_path / "ttur.npz", mu=np.zeros(8), sigma=np.eye(8))
    info = CliRunner().invoke(cli, ["stats", "--info", str(tmp_path / "ttur.npz")])
    assert info.exit_code == 0, info.output
    assert "no metadata" in info.stderr and info.stderr.startswith("ganmetrics: warning:")
    assert info.stdout.splitlines()[0].endswith("unknown number of images, dims=8")


@pytest.mark.parametrize("args", [["stats", "--info", "x.npz", "somewhere"], ["stats", "--info", "x.npz", "-o", "y.npz"],
                                  ["stats", "somewhere"]])
def test_stats_usage_errors_exit_2(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
