"""Plain-data pickles (EDM2's reference statistics) read without running anything in them."""

import os
import pickle

import numpy as np
import pytest

from ganmetrics.errors import GanMetricsError
from ganmetrics.store.safepickle import load_plain_pickle


def edm2_statistics() -> dict:
    """What EDM2's calculate_metrics.py pickles: float64 mean and covariance per metric."""
    rng = np.random.default_rng(0)
    stats = {"num_images": 50000}
    for metric, dims in (("fid", 8), ("fd_dinov2", 6)):
        features = rng.standard_normal((20, dims))
        stats[metric] = {"mu": features.mean(axis=0), "sigma": np.cov(features, rowvar=False)}
    return stats


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.flags.f_contiguous == b.flags.f_contiguous
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_edm2_statistics_are_read_as_written(tmp_path, protocol):
    stats = edm2_statistics()
    with open(tmp_path / "ref.pkl", "wb") as file:
        pickle.dump(stats, file, protocol=protocol)
    assert_same(load_plain_pickle(tmp_path / "ref.pkl"), stats)


def test_numpy_scalars_lists_and_other_dtypes_are_plain_data(tmp_path):
    value = {"n": np.int64(3), "x": np.float32(0.5), "flag": True, "none": None, "names": ["a", ("b", 2.5)],
             "f32": np.ones((2, 3), np.float32), "fortran": np.asfortranarray(np.eye(3)), "bools": np.array([True])}
    (tmp_path / "v.pkl").write_bytes(pickle.dumps(value))
    assert_same(load_plain_pickle(tmp_path / "v.pkl"), value)


def test_a_pickle_written_by_numpy_1_is_read(tmp_path):
    """NumPy 1 names its array functions ``numpy.core.*`` (NumPy 2: ``numpy._core.*``)."""
    stats = edm2_statistics()
    data = pickle.dumps(stats, protocol=2)  # protocol 2 writes module names as plain text lines
    assert b"numpy._core.multiarray\n" in data
    (tmp_path / "v1.pkl").write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert_same(load_plain_pickle(tmp_path / "v1.pkl"), stats)


class Payload:
    """An object whose unpickling would call ``call(*args)``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("payload, named", [
    (lambda marker: Payload(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
    (lambda marker: Payload(open, str(marker), "w"), "io.open"),
    (lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
], ids=["os.system", "open", "eval"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, payload, named):
    marker = tmp_path / "created-by-the-pickle"
    stats = edm2_statistics()
    stats["fd_dinov2"]["mu"] = payload(marker)  # deep inside an otherwise genuine file
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(stats))
    with pytest.raises(GanMetricsError) as excinfo:
        load_plain_pickle(tmp_path / "evil.pkl")
    message = str(excinfo.value)
    assert "\n" not in message and f"it holds a call of {named}," in message and "nothing in it was run" in message
    assert not marker.exists()


@pytest.mark.parametrize("value, held", [
    (np.array([{"a": 1}, None], dtype=object), "a NumPy array of Python objects (dtype object)"),
    ({"sigma": {1, 2}}, "a value of type set"),
    ([b"raw"], "a value of type bytes"),
    ({"mu": 1 + 2j}, "a call of builtins.complex"),
], ids=["object-array", "set", "bytes", "complex"])
def test_values_beyond_plain_data_are_refused(tmp_path, value, held):
    (tmp_path / "v.pkl").write_bytes(pickle.dumps(value))
    with pytest.raises(GanMetricsError, match=f"it holds {held.replace('(', '[(]').replace(')', '[)]')},"):
        load_plain_pickle(tmp_path / "v.pkl")


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps(edm2_statistics())[:-40]],
                         ids=["empty", "text", "truncated"])
def test_a_file_that_is_no_pickle_or_a_damaged_one_is_refused_in_one_line(tmp_path, content):
    (tmp_path / "bad.pkl").write_bytes(content)
    with pytest.raises(GanMetricsError) as excinfo:
        load_plain_pickle(tmp_path / "bad.pkl")
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith(f"cannot read {tmp_path / 'bad.pkl'} (")
    assert message.endswith("as EDM2's reference statistics are")


def test_a_missing_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(GanMetricsError, match=r"^cannot open .*missing\.pkl \(FileNotFoundError: .*\): pass an existing"):
        load_plain_pickle(tmp_path / "missing.pkl")
