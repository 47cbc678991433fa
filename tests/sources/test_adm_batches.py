"""ADM evaluator batches without the network: ``arr_0`` read image by image from the zip member
(stored or deflated) with memory independent of the batch's size, the statistics beside it read
alone, ``pack`` writing what ``np.savez`` writes, and every bad batch a one-line error."""

import tracemalloc
import zipfile

import numpy as np
import pytest

from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.sources import open_source
from ganmetrics.sources.arrays import NpzMember
from ganmetrics.store.statsfile import is_statistics_file, read_statistics

SIZE = 64  # 12 KiB an image


def adm_batch(path, n: int, statistics: bool, compressed: bool = False):
    """An ADM-layout batch of n random SIZE x SIZE images with labels (``arr_1``) and, with
    ``statistics``, small ``mu``, ``sigma``, ``mu_s``, ``sigma_s`` after them."""
    rng = np.random.default_rng(n)
    arrays = {"arr_0": rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), "arr_1": np.arange(n)}
    if statistics:
        arrays.update(mu=rng.normal(size=8), sigma=np.eye(8), mu_s=rng.normal(size=7), sigma_s=2 * np.eye(7))
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays["arr_0"]


def peak_bytes_of_reading(path) -> int:
    """Peak Python-traced memory of reading a batch as a side does: its statistics (when it has
    them), then every image of ``arr_0`` in order."""
    tracemalloc.start()
    try:
        if is_statistics_file(path):
            read_statistics(path)
        source = open_source(path)
        for index in range(len(source)):
            source.read(index)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("statistics", [False, True], ids=["images only", "with the four statistics"])
@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_a_batch_is_read_with_memory_independent_of_its_size(tmp_path, statistics, compressed):
    small, large = tmp_path / "small.npz", tmp_path / "large.npz"
    adm_batch(small, 20, statistics, compressed)
    images = adm_batch(large, 2000, statistics, compressed)  # 24.6 MB of pixels
    source = open_source(large)
    assert isinstance(source.array, NpzMember) and source.array.member == "arr_0.npy"  # past mu/sigma, not arr_1
    assert np.array_equal(source.read(1999), images[1999]) and np.array_equal(source.read(0), images[0])
    if statistics:
        stats = read_statistics(large)
        assert stats.dims == 8 and stats.n is None and set(stats.more) == {"spatial"}
        assert stats.more["spatial"].dims == 7 and np.array_equal(stats.more["spatial"].sigma, 2 * np.eye(7))
    peak_small, peak_large = peak_bytes_of_reading(small), peak_bytes_of_reading(large)
    assert peak_large - peak_small < 2 * 2**20, (peak_small, peak_large)  # the pixels alone are 24.6 MB
    assert peak_large < 4 * 2**20


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_images_read_in_order_never_reread_the_member_from_its_start(tmp_path, monkeypatch, compressed):
    adm_batch(tmp_path / "b.npz", 30, statistics=False, compressed=compressed)
    rewinds = []
    seek = zipfile.ZipExtFile.seek

    def recording_seek(self, offset, whence=0):
        if whence == 0 and offset < self.tell():
            rewinds.append((self.tell(), offset))
        return seek(self, offset, whence)

    monkeypatch.setattr(zipfile.ZipExtFile, "seek", recording_seek)
    source = open_source(tmp_path / "b.npz")
    for index in range(len(source)):
        source.read(index)
    worker = open_source(tmp_path / "b.npz")  # one of two decoding workers: every other batch of 3
    for index in [i for start in range(0, 30, 6) for i in range(start, start + 3)]:
        worker.read(index)
    assert rewinds == []
    worker.read(2)  # behind the last read: the one case that reads the member from its start again
    assert rewinds == [(27 * SIZE * SIZE * 3 + worker.array.offset, 2 * SIZE * SIZE * 3 + worker.array.offset)]


def test_pack_writes_what_np_savez_writes_and_reads_back_bit_for_bit(tmp_path):
    images = smooth_images(7, (24, 40), seed=71)
    write_images(tmp_path / "folder", images)
    out = tmp_path / "batch.npz"
    result = run_cli("pack", tmp_path / "folder", "-o", out, "--batch-size", "3", options=("--quiet", "--workers", "0"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}: 7 images of 40x24 as arr_0"
    with np.load(out, allow_pickle=False) as data:
        assert data.files == ["arr_0"]
        assert data["arr_0"].dtype == np.uint8 and np.array_equal(data["arr_0"], images)
    source = open_source(out)
    assert all(np.array_equal(source.read(i), images[i]) for i in range(7))
    np.savez(tmp_path / "numpy.npz", images)
    with zipfile.ZipFile(out) as ours, zipfile.ZipFile(tmp_path / "numpy.npz") as numpys:
        assert ours.read("arr_0.npy") == numpys.read("arr_0.npy")  # header and pixels, byte for byte
        assert ours.getinfo("arr_0.npy").compress_type == zipfile.ZIP_STORED
    # Any source packs: a channels-first array file, and the batch itself.
    np.save(tmp_path / "chw.npy", images.transpose(0, 3, 1, 2))
    assert run_cli("pack", tmp_path / "chw.npy", "-o", tmp_path / "again.npz", options=("--quiet",)).exit_code == 0
    assert np.array_equal(np.load(tmp_path / "again.npz")["arr_0"], images)


def test_pack_refuses_mixed_sizes_naming_the_first_mismatch_and_writes_nothing(tmp_path):
    folder = write_images(tmp_path / "mixed", smooth_images(5, (32, 32), seed=72))
    write_images(tmp_path / "odd", smooth_images(1, (32, 30), seed=73))
    (tmp_path / "odd" / "0000.png").rename(folder / "0003b.png")
    line = one_line_error(run_cli("pack", folder, "-o", tmp_path / "b.npz", "--batch-size", "2",
                                  options=("--quiet", "--workers", "0")))
    assert "image 0003b.png in folder" in line and "is 30x32, but the first image 0000.png is 32x32" in line
    assert list(tmp_path.glob("*.npz")) == [] and list(tmp_path.glob(".*")) == []
    assert "end in .npz" in one_line_error(run_cli("pack", folder, "-o", tmp_path / "b.zip", options=("--quiet",)))


def test_stats_in_complete_pairs_or_a_one_line_error_naming_what_is_missing(tmp_path):
    adm_batch(tmp_path / "full.npz", 3, statistics=True)
    with np.load(tmp_path / "full.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "no_sigma_s.npz", **{k: v for k, v in arrays.items() if k != "sigma_s"})
    np.savez(tmp_path / "only_s.npz", **{k: v for k, v in arrays.items() if k not in ("mu", "sigma")})
    for name, message in (("no_sigma_s.npz", "has 'mu', 'sigma', 'mu_s' but no 'sigma_s'"),
                          ("only_s.npz", "has 'mu_s', 'sigma_s' but no 'mu', 'sigma'")):
        line = one_line_error(run_cli("eval", tmp_path / name, tmp_path / "full.npz", "--metrics", "fid"))
        assert message in line and name in line


BAD_BATCHES = {
    "float": ("dtype float32", lambda arrays: {**arrays, "arr_0": arrays["arr_0"].astype(np.float32)}),
    "gray": ("shape (4, 64, 64)", lambda arrays: {**arrays, "arr_0": arrays["arr_0"][..., 0]}),
}


@pytest.mark.parametrize("statistics", [False, True], ids=["images only", "with statistics"])
@pytest.mark.parametrize("name", BAD_BATCHES)
def test_a_batch_of_the_wrong_dtype_or_shape_is_a_one_line_error(tmp_path, name, statistics):
    adm_batch(tmp_path / "good.npz", 4, statistics)
    with np.load(tmp_path / "good.npz") as data:
        message, damage = BAD_BATCHES[name]
        np.savez(tmp_path / "bad.npz", **damage(dict(data)))
    # IS needs the images even where the statistics serve FID.
    line = one_line_error(run_cli("eval", tmp_path / "good.npz", tmp_path / "bad.npz", "--metrics", "is"))
    assert message in line and "bad.npz" in line


def test_a_truncated_batch_is_a_one_line_error_before_any_work(tmp_path):
    adm_batch(tmp_path / "full.npz", 4, statistics=True)
    with zipfile.ZipFile(tmp_path / "full.npz") as full, zipfile.ZipFile(tmp_path / "short.npz", "w") as short:
        for name in full.namelist():  # a valid zip whose arr_0 lost its last image
            short.writestr(name, full.read(name)[:-SIZE * SIZE * 3] if name == "arr_0.npy" else full.read(name))
    cut = tmp_path / "cut.npz"
    cut.write_bytes((tmp_path / "full.npz").read_bytes()[:40_000])  # the file itself ends early
    with pytest.raises(GanMetricsError, match="arr_0.npy is truncated"):
        open_source(tmp_path / "short.npz")
    for bad, message in ((tmp_path / "short.npz", "truncated"), (cut, "cannot read")):
        line = one_line_error(run_cli("eval", tmp_path / "full.npz", bad, "--metrics", "is"))
        assert message in line and bad.name in line
