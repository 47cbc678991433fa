"""The statistics cache: a second run decodes nothing for the reference, any change to the
images or to a setting that moves the numbers misses, a damaged entry is reported in one line
and recomputed; `cache list|clear` and `stats --info`."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers import counted_decodes, cpu_extractor, run_cli, smooth_images, write_images
from ganmetrics import api, sources
from ganmetrics.cli import cli
from ganmetrics.config import RunConfig
from ganmetrics.engine import runner
from ganmetrics.evaluation.cache import cache_key, reduce_with_cache, use_cache
from ganmetrics.evaluation.plan import make_plan
from ganmetrics.evaluation.sides import network_provenance, open_side, reduce_side
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.weights import random_weights
from ganmetrics.provenance import Provenance
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.reducers import Gaussian, GaussianStats
from ganmetrics.sources import open_source
from ganmetrics.store import cache
from ganmetrics.store.statsfile import Statistics, load_statistics, save_statistics

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
    with counted_decodes() as decoded:
        result = run_cli("fid", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), decoded[0], result.stderr


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
    assert listing.stdout.startswith(f"{entry} (unreadable)  n=?  dims=?")
    again, decoded, stderr = fid_decoding(ref, fake)
    (line,) = [line for line in stderr.splitlines() if "cache" in line]
    assert line.startswith("ganmetrics: warning: corrupt cache entry") and "recomputing" in line
    assert decoded == 2 * N and again["value"] == first["value"]
    assert load_statistics(entry).n == N  # rewritten whole


# --- the cache logic, with a one pass whose results are fixed and counted (no network) ----------


GAUSSIAN_64 = Need("inception", "64", GaussianStats)


def fid_plan(cache: bool | None = True):
    """The plan of FID at 64 dims with ``random:0`` weights and this ``cache`` setting."""
    return make_plan(["fid"], {}, RunConfig(weights="random:0", cache=cache, encoders={"inception": {"dims": 64}},
                                            workers=0, device="cpu"))


@pytest.fixture(scope="module")
def extractor():
    return cpu_extractor()


class FixedGaussian:
    """A reducer stand-in whose result is a fixed 64-dim Gaussian of the source's size."""

    def __init__(self, n):
        self.n = n

    def result(self):
        return Gaussian(np.arange(64.0), np.eye(64), self.n)


@pytest.fixture
def counting(monkeypatch):
    """The engine's one pass replaced by fixed statistics; the list records each source run."""
    calls = []

    def reduce_source(source, encoders, needs, config, reference=None, read_ahead=None):
        calls.append(source.describe())
        return {need: FixedGaussian(len(source)) for need in needs}

    monkeypatch.setattr(runner, "reduce_source", reduce_source)
    return calls


def cached(source, extractor, plan=None, reference=True):
    """The 64-dim Gaussian of ``source`` through the cache (``plan``: FID at 64 dims, cached)."""
    plan = fid_plan() if plan is None else plan
    return reduce_with_cache(source, plan, {GAUSSIAN_64: "fid"}, network_provenance(plan), reference)[GAUSSIAN_64]


def entry_of(source, extractor_or_provenance, dims=64):
    """The cache entry of ``source``'s ``dims``-wide Gaussian under the Inception's provenance (an
    encoder's, its ``EncoderProvenance`` or a run's ``Provenance``)."""
    provenance = getattr(extractor_or_provenance, "provenance", extractor_or_provenance)
    if not isinstance(provenance, Provenance):
        provenance = Provenance((provenance,))
    fingerprint = source.fingerprint()
    need = Need("inception", str(dims), GaussianStats)
    return None if fingerprint is None else cache.entry_path(cache_key(fingerprint, provenance, need))


@pytest.mark.parametrize("damage", ["garbage", "no meta", "other dims"])
def test_damaged_entries_are_recomputed(folders, extractor, counting, damage):
    source = open_source(folders[0])
    cached(source, extractor)
    entry = entry_of(source, extractor)
    if damage == "garbage":
        entry.write_bytes(b"\0" * 1000)
    elif damage == "no meta":
        np.savez(entry, mu=np.zeros(64), sigma=np.eye(64))
    else:
        save_statistics(entry, Statistics(np.zeros(8), np.eye(8), N, {"dims": 8}))
    with pytest.warns(UserWarning, match="corrupt cache entry .* recomputing") as caught:
        stats = cached(source, extractor)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert len(counting) == 2 and np.array_equal(stats.mu, np.arange(64.0))
    assert cached(source, extractor).n == N and len(counting) == 2


def test_which_sources_are_cached_by_default(folders):
    folder, array = open_source(folders[0]), open_source(smooth_images(2, (8, 8), seed=1))
    default, on, off = fid_plan(None), fid_plan(True), fid_plan(False)
    assert use_cache(folder, default, reference=True) and not use_cache(folder, default, reference=False)
    assert not use_cache(array, default, reference=True)
    assert use_cache(array, on, reference=False) and not use_cache(folder, off, reference=True)


def test_no_cache_stores_nothing_and_cache_stores_every_source(folders, extractor, counting, cache_dir):
    ref, fake = folders
    for cache_option, stored in [(False, 0), (None, 1), (True, 2)]:
        plan = fid_plan(cache_option)
        for side, reference in ((ref, True), (fake, False)):
            opened = open_side(side, plan, {GAUSSIAN_64: "fid"})
            reduce_side(opened, plan, {GAUSSIAN_64: "fid"}, network_provenance(plan), reference=reference)
        assert len(entries(cache_dir)) == stored, cache_option
    assert len(counting) == 2 + 2 + 1  # --no-cache both; default the reference; --cache the fake


def test_an_unwritable_cache_is_a_warning_not_a_failure(folders, extractor, counting, tmp_path, monkeypatch):
    (tmp_path / "not_a_folder").write_text("")
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "not_a_folder"))
    with pytest.warns(UserWarning, match="cannot use the cache folder .* continuing uncached"):
        stats = cached(open_source(folders[0]), extractor)
    assert stats.n == N


def test_cache_clear_removes_entries_and_leftover_temporary_files(folders, extractor, counting, cache_dir):
    for folder in folders:
        cached(open_source(folder), extractor)
    (cache_dir / ".abc.npz.123.tmp").write_bytes(b"partial")
    listing = CliRunner().invoke(cli, ["cache", "list"])
    assert [line.split()[1] for line in listing.stdout.splitlines()] == [str(folders[1]), str(folders[0])]
    result = CliRunner().invoke(cli, ["cache", "clear"])
    assert result.exit_code == 0 and result.stdout.startswith("removed 2 cached statistics files")
    assert entries(cache_dir) == []
    result = CliRunner().invoke(cli, ["cache", "list"])
    assert result.exit_code == 0 and result.stdout == "" and "no cached statistics" in result.stderr


# --- what the key covers (no images decoded) ------------------------------------------------------


def test_the_key_covers_images_and_every_setting_that_changes_the_numbers(tmp_path, extractor):
    folder = write_images(tmp_path / "set", smooth_images(4, (16, 16), seed=3))
    write_images(folder / "sub", smooth_images(1, (16, 16), seed=4))
    provenance = Provenance((extractor.provenance,))
    key = entry_of(open_source(folder), provenance)
    assert key == entry_of(open_source(folder), provenance)  # stable
    encoder = extractor.provenance
    changed = [
        entry_of(open_source(folder), dataclasses.replace(encoder, options=(("resize", "clean"),))),
        entry_of(open_source(folder), provenance, dims=192),
        entry_of(open_source(folder), dataclasses.replace(encoder, weights_sha256="0" * 64)),
        entry_of(open_source(folder), dataclasses.replace(provenance, tf32=True)),
        entry_of(open_source(folder), dataclasses.replace(provenance, version="99.0.0")),
        entry_of(open_source(folder, limit=3), provenance),
        entry_of(open_source(folder, recursive=False), provenance),
    ]
    # The extractor's resize is part of its provenance.
    assert entry_of(open_source(folder), cpu_extractor("clean")) == changed[0]
    (folder / "0001.png").write_bytes((folder / "0002.png").read_bytes())  # another size
    changed.append(entry_of(open_source(folder), provenance))
    assert len({key, *changed}) == len(changed) + 1


def test_arrays_are_keyed_by_content(tmp_path, extractor):
    images = smooth_images(4, (16, 16), seed=5)
    key = entry_of(open_source(images), extractor)
    assert entry_of(open_source(images.copy()), extractor) == key
    assert entry_of(open_source(torch.from_numpy(images)), extractor) == key
    touched = images.copy()
    touched[2, 5, 5, 1] ^= 1
    assert entry_of(open_source(touched), extractor) != key
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "a.npz", x=images, y=touched)
    file_keys = {entry_of(open_source(p, key=k), extractor)
                 for p, k in [(tmp_path / "a.npy", None), (tmp_path / "a.npz", None), (tmp_path / "a.npz", "y")]}
    assert len(file_keys) == 3
    assert entry_of(sources.GeneratorSource(lambda n: images[:n], n=4), extractor) is None


def test_an_array_with_cache_true_is_computed_once(monkeypatch):
    calls = []
    reduce_source = runner.reduce_source
    monkeypatch.setattr(runner, "reduce_source", lambda *args, **kw: calls.append(1) or reduce_source(*args, **kw))
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
    save_statistics(tmp_path / "ref.npz", api.compute_stats(ref, weights="random:0", dims=64, workers=0))
    info = CliRunner().invoke(cli, ["stats", "--info", str(tmp_path / "ref.npz")])
    assert info.exit_code == 0, info.output
    lines = info.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'ref.npz'}: {N} images, dims=64"
    assert {"  calibrated: false", "  resize: tf", f"  source: folder {ref}",
            f"  weights_sha256: {random_weights(InceptionExtractor, 0).sha256}"} <= set(lines)
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


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_rewrite_that_keeps_size_and_modification_time_misses(tmp_path, extractor, kind):
    folder = write_images(tmp_path / "set", smooth_images(3, (16, 16), seed=7))
    if kind == "zip":
        import zipfile

        path = tmp_path / "set.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for image in sorted(folder.iterdir()):
                archive.write(image, image.name)
    else:
        path = folder / "0001.png"
    target = path if kind == "zip" else folder
    before = entry_of(open_source(target), extractor)
    info = os.stat(path)
    content = path.read_bytes()
    changed = content[:-5] + bytes(b ^ 1 for b in content[-5:])  # same size, other bytes
    # As rsync -t or a tar extraction does: a new file renamed over the old one, times copied.
    # (A rewrite in place changes only the ctime, which a test cannot move past the clock tick
    # of the first write without waiting: the rename is the case that needs no timing.)
    fresh = path.with_name(".fresh")
    fresh.write_bytes(changed)
    os.utime(fresh, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(fresh, path)
    assert os.stat(path).st_size == info.st_size and os.stat(path).st_mtime_ns == info.st_mtime_ns
    assert entry_of(open_source(target), extractor) != before
