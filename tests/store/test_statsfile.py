"""The statistics .npz: round trip, the format on disk, foreign and broken files, metadata
checks and the atomic write."""

import json
import os
import stat

import numpy as np
import pytest

from ganmetrics.errors import GanMetricsError
from ganmetrics.config import RunConfig
from ganmetrics.evaluation.plan import make_plan
from ganmetrics.evaluation.sides import check_provenance, open_side
from ganmetrics.provenance import Provenance
from helpers import inception_provenance
from ganmetrics.store.statsfile import (Statistics, is_statistics_file, load_statistics,
                                  save_statistics)

META = {"extractor": "inception-v3-2015-12-05", "dims": 4, "resize": "tf", "weights_sha256": "ab" * 32,
        "calibrated": False, "version": "0.1.0", "source": "folder x"}


def example_stats(dims: int = 4, n: int | None = 17, meta: dict | None = None) -> Statistics:
    rng = np.random.default_rng(dims)
    a = rng.normal(size=(dims, dims))
    return Statistics(rng.normal(size=dims), a @ a.T, n, dict(META, dims=dims) if meta is None else meta)


@pytest.fixture
def saved(tmp_path):
    stats = example_stats()
    path = tmp_path / "ref.npz"
    save_statistics(path, stats)
    return path, stats


def test_round_trip(saved):
    path, stats = saved
    loaded = load_statistics(path)
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.mu.dtype == loaded.sigma.dtype == np.float64
    assert loaded.n == 17 and isinstance(loaded.n, int)
    assert loaded.meta == stats.meta
    assert loaded.dims == 4


def test_file_is_a_plain_npz_with_exactly_the_contract_keys(saved):
    path, stats = saved
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["meta", "mu", "n", "sigma"]
        assert data["mu"].dtype == np.float64 and data["mu"].shape == (4,)
        assert data["sigma"].dtype == np.float64 and data["sigma"].shape == (4, 4)
        assert data["n"].dtype == np.int64 and data["n"].shape == () and int(data["n"]) == 17
        assert data["meta"].shape == () and data["meta"].dtype.kind == "U"
        assert json.loads(str(data["meta"])) == stats.meta


def test_float32_statistics_are_written_as_float64(tmp_path):
    stats = example_stats()
    save_statistics(tmp_path / "s.npz", Statistics(stats.mu.astype(np.float32), stats.sigma.astype(np.float32), 3, META))
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["mu"].dtype == data["sigma"].dtype == np.float64


def test_unknown_count_round_trips_as_none(tmp_path):
    save_statistics(tmp_path / "s.npz", example_stats(n=None))
    assert load_statistics(tmp_path / "s.npz").n is None


def test_pytorch_fid_file_without_meta_loads_with_a_warning(tmp_path):
    stats = example_stats()
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mu, sigma=stats.sigma)
    with pytest.warns(UserWarning, match="no metadata"):
        loaded = load_statistics(tmp_path / "pytorch_fid.npz")
    assert loaded.meta is None and loaded.n is None
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)


def test_float32_foreign_file_is_read_as_float64(tmp_path):
    stats = example_stats()
    np.savez(tmp_path / "ttur.npz", mu=stats.mu.astype(np.float32), sigma=stats.sigma.astype(np.float32))
    with pytest.warns(UserWarning):
        loaded = load_statistics(tmp_path / "ttur.npz")
    assert loaded.mu.dtype == loaded.sigma.dtype == np.float64


def test_garbage_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(GanMetricsError, match="garbage.npz"):
        load_statistics(path)


def test_truncated_file_is_an_error(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GanMetricsError, match="ref.npz"):
        load_statistics(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(GanMetricsError, match="does not exist"):
        load_statistics(tmp_path / "nope.npz")


def test_file_with_other_keys_is_an_error(tmp_path):
    np.savez(tmp_path / "images.npz", a=np.zeros(3), b=np.zeros((3, 3)))
    with pytest.raises(GanMetricsError, match="mu"):
        load_statistics(tmp_path / "images.npz")


@pytest.mark.parametrize("mu, sigma", [
    (np.zeros(4), np.eye(5)),            # D differs
    (np.zeros(4), np.zeros((4, 5))),     # not square
    (np.zeros((4, 1)), np.eye(4)),       # mu not (D,)
    (np.zeros(4), np.full((4, 4), np.nan)),
    (np.array(["a", "b"]), np.eye(2)),   # not numbers
])
def test_mismatched_or_broken_shapes_are_an_error(tmp_path, mu, sigma):
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=sigma, n=np.int64(5), meta=np.array("{}"))
    with pytest.raises(GanMetricsError, match="bad.npz"):
        load_statistics(tmp_path / "bad.npz")


def test_meta_that_is_not_json_is_an_error(tmp_path):
    stats = example_stats()
    np.savez(tmp_path / "bad.npz", mu=stats.mu, sigma=stats.sigma, n=np.int64(5), meta=np.array("{not json"))
    with pytest.raises(GanMetricsError, match="meta"):
        load_statistics(tmp_path / "bad.npz")


def test_meta_that_is_json_but_not_an_object_is_an_error(tmp_path):
    stats = example_stats()
    np.savez(tmp_path / "bad.npz", mu=stats.mu, sigma=stats.sigma, n=np.int64(5), meta=np.array("[1, 2]"))
    with pytest.raises(GanMetricsError, match="bad.npz"):
        load_statistics(tmp_path / "bad.npz")


def test_count_that_is_not_a_scalar_is_an_error(tmp_path):
    stats = example_stats()
    np.savez(tmp_path / "bad.npz", mu=stats.mu, sigma=stats.sigma, n=np.arange(3), meta=np.array("{}"))
    with pytest.raises(GanMetricsError, match="bad.npz"):
        load_statistics(tmp_path / "bad.npz")


def check_compatible(stats, path, dims, resize, weights_sha256, allow_mismatch):
    """The compatibility check of a run with these settings against ``stats``: the side opened
    for FID of the ``dims`` tap, then checked against the run's provenance."""
    config = RunConfig(encoders={"inception": {"dims": dims, "resize": resize}}, allow_mismatch=allow_mismatch)
    plan = make_plan(["fid"], {}, config)
    needs = plan.needs("a")
    opened = open_side(stats, plan, needs)
    check_provenance(opened, needs, Provenance((inception_provenance(weights_sha256, resize),)), plan)


def test_check_compatible_always_refuses_other_dims():
    stats = example_stats(dims=64)
    for allow_mismatch in (False, True):
        with pytest.raises(GanMetricsError, match="--dims 64"):
            check_compatible(stats, "ref.npz", 192, "tf", META["weights_sha256"], allow_mismatch)
    foreign = Statistics(stats.mu, stats.sigma, None, None)
    with pytest.raises(GanMetricsError):
        check_compatible(foreign, "ref.npz", 192, "tf", META["weights_sha256"], True)


def test_check_compatible_refuses_other_resize_or_weights_unless_allowed():
    stats = example_stats(dims=64)
    check_compatible(stats, "ref.npz", 64, "tf", META["weights_sha256"], False)
    for resize, sha in [("pytorch", META["weights_sha256"]), ("tf", "cd" * 32), ("clean", "cd" * 32)]:
        with pytest.raises(GanMetricsError, match="--allow-mismatch"):
            check_compatible(stats, "ref.npz", 64, resize, sha, False)
        check_compatible(stats, "ref.npz", 64, resize, sha, True)


def test_check_compatible_accepts_files_without_meta():
    stats = example_stats(dims=64)
    check_compatible(Statistics(stats.mu, stats.sigma, None, None), "ref.npz", 64, "pytorch", "cd" * 32, False)


class WriteFailed(Exception):
    pass


def test_failed_write_leaves_no_file_and_no_temporary_file(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise WriteFailed

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(WriteFailed):
        save_statistics(tmp_path / "ref.npz", example_stats())
    assert list(tmp_path.iterdir()) == []


def test_os_error_while_writing_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch):
    # A full disk or a read-only folder is bad input like any other: GanMetricsError, which
    # the CLI turns into one line and exit code 2 (an OSError would print a traceback).
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(GanMetricsError, match="ref.npz"):
        save_statistics(tmp_path / "ref.npz", example_stats())
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(saved, monkeypatch):
    path, stats = saved
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        save_statistics(path, example_stats(dims=6))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]


def test_successful_write_leaves_only_the_file(saved):
    path, _ = saved
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]


def test_overwrite_replaces_the_file(saved):
    path, _ = saved
    save_statistics(path, example_stats(dims=6))
    assert load_statistics(path).dims == 6
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]


def test_written_file_has_the_permissions_a_plain_write_would_give(tmp_path):
    # The temporary file comes from mkstemp (mode 0600); the renamed statistics file must get
    # the mode np.savez(path) would give (0666 & ~umask), so shared reference statistics stay
    # readable by the group and others.
    umask = os.umask(0)
    os.umask(umask)
    save_statistics(tmp_path / "ref.npz", example_stats())
    np.savez(tmp_path / "plain.npz", x=np.zeros(1))
    mode = stat.S_IMODE((tmp_path / "ref.npz").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.npz").stat().st_mode) == 0o666 & ~umask


def test_writing_into_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(GanMetricsError, match="does not exist"):
        save_statistics(tmp_path / "missing" / "ref.npz", example_stats())
    assert list(tmp_path.iterdir()) == []


def test_is_statistics_file(tmp_path, saved):
    path, stats = saved
    assert is_statistics_file(path)
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mu, sigma=stats.sigma)
    assert is_statistics_file(tmp_path / "pytorch_fid.npz")
    with open(tmp_path / "upper.NPZ", "wb") as f:  # np.savez would append .npz to the name
        np.savez(f, mu=stats.mu, sigma=stats.sigma)
    assert is_statistics_file(tmp_path / "upper.NPZ")

    np.savez(tmp_path / "images.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    np.savez(tmp_path / "only_mu.npz", mu=stats.mu)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    np.save(tmp_path / "mu.npy", stats.mu)
    (tmp_path / "renamed.zip").write_bytes(path.read_bytes())
    (tmp_path / "folder.npz").mkdir()
    for name in ("images.npz", "only_mu.npz", "garbage.npz", "mu.npy", "renamed.zip", "folder.npz", "missing.npz"):
        assert not is_statistics_file(tmp_path / name), name


def per_class_stats() -> Statistics:
    """Per-class statistics of two classes, each a Gaussian and a bank of the Inception's 4-dim features."""
    metas = {"inception": dict(META)}
    parts = {}
    for name, n in (("cat", 3), ("dog", 5)):
        bank = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
        entries = {("inception", "4", "gaussian"): {"n": np.int64(n), "mu": bank.mean(0).astype(np.float64),
                                                   "sigma": np.cov(bank.T.astype(np.float64))},
                   ("inception", "4", "feature_bank"): {"features": bank}}
        parts[name] = Statistics(entries=entries, metas=metas)
    return Statistics(metas=metas, classes=parts)


def test_per_class_statistics_round_trip_with_a_class_level_in_the_array_names(tmp_path):
    path = tmp_path / "classes.npz"
    save_statistics(path, per_class_stats())
    assert is_statistics_file(path)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["cat/inception/4/feature_bank/features", "cat/inception/4/gaussian/mu",
                                      "cat/inception/4/gaussian/n", "cat/inception/4/gaussian/sigma",
                                      "dog/inception/4/feature_bank/features", "dog/inception/4/gaussian/mu",
                                      "dog/inception/4/gaussian/n", "dog/inception/4/gaussian/sigma", "meta"]
        assert json.loads(str(data["meta"])) == {"classes": ["cat", "dog"], "encoders": {"inception": META}}
    loaded = load_statistics(path)
    assert list(loaded.classes) == ["cat", "dog"] and loaded.entries == {} and loaded.metas == {"inception": META}
    for name, part in per_class_stats().classes.items():
        assert (loaded.classes[name].n, loaded.classes[name].meta) == (part.n, META)
        for key, fields in part.entries.items():
            for field, value in fields.items():
                np.testing.assert_array_equal(loaded.classes[name].entries[key][field], value)
                assert loaded.classes[name].entries[key][field].dtype == value.dtype
    with pytest.raises(GanMetricsError, match=r"these statistics are per class \(cat, dog\): take one class's"):
        loaded.mu


def test_damaged_per_class_files_are_one_line_errors_naming_what_is_wrong(tmp_path):
    save_statistics(tmp_path / "good.npz", per_class_stats())
    with np.load(tmp_path / "good.npz") as data:
        arrays = dict(data)
    meta = json.loads(str(arrays.pop("meta")))
    sigma = arrays["dog/inception/4/gaussian/sigma"].copy()
    sigma[0, 1] += 1.0
    cases = {
        "unlisted": ({**arrays, "owl/inception/4/gaussian/mu": np.zeros(4)}, meta,
                     "array 'owl/inception/4/gaussian/mu' is of none of the classes its meta names (cat, dog)"),
        "no_dog": ({k: v for k, v in arrays.items() if not k.startswith("dog/")}, meta,
                   "holds no statistics of the class 'dog' its meta names"),
        "not_a_list": (arrays, {**meta, "classes": "cat"}, "its meta 'classes' is not a list of distinct class names"),
        "asymmetric": ({**arrays, "dog/inception/4/gaussian/sigma": sigma}, meta,
                       "dog/inception/4/gaussian/mu/dog/inception/4/gaussian/sigma: sigma is not symmetric"),
        "short_bank": ({**arrays, "cat/inception/4/feature_bank/features": np.zeros((2, 4), np.float32)}, meta,
                       "its 'cat/inception/4/feature_bank/features' (2, 4) are not one 4-wide row per image (3)"),
    }
    for name, (stored, stored_meta, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **stored, meta=np.array(json.dumps(stored_meta)))
        with pytest.raises(GanMetricsError) as raised:
            load_statistics(path)
        assert message in str(raised.value) and "\n" not in str(raised.value), name
