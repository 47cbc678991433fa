"""Weights: resolution order, validation, download into the cache, random:SEED, and the
`ganmetrics weights` commands."""

import dataclasses
import hashlib
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from helpers import one_line_error, smooth_images
from helpers import plain_network
from ganmetrics.extractors import weights as weights_module
from ganmetrics.cli import cli
from ganmetrics.errors import GanMetricsError
from ganmetrics.store.paths import cache_dir
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.inception.spec import FEATURE_DIMS
from ganmetrics.extractors.inception.preprocess import to_network_input
from ganmetrics.extractors.inception.weights import WEIGHTS_FILE, WEIGHTS_FILENAME, random_state_dict

# The weights functions are the same for every encoder (extractors/weights.py): here the Inception's.
expected_shapes, read_state_dict = InceptionExtractor.expected_shapes, InceptionExtractor.read_state_dict


def find_weights_file(explicit=None):
    return weights_module.find_weights_file(InceptionExtractor, explicit)


def resolve_weights_file(explicit=None):
    return weights_module.resolve_weights_file(InceptionExtractor, explicit)


def fetch_weights(progress=True):
    return weights_module.fetch_weights(InceptionExtractor, progress)


def load_weights(spec, progress=True):
    return weights_module.load_weights(InceptionExtractor, spec, progress)


def weights_identity(spec=None):
    return weights_module.weights_identity(InceptionExtractor, spec)


def random_weights(seed):
    return weights_module.random_weights(InceptionExtractor, seed)


def as_if_standard(monkeypatch, digest: str) -> None:
    """Take a file of sha256 ``digest`` for the Inception's standard file (its name's prefix)."""
    monkeypatch.setattr(InceptionExtractor, "weights_file", dataclasses.replace(WEIGHTS_FILE, sha256=digest[:8]))

SERVED = random.Random(1).randbytes(200_000)
SERVED_SHA256 = hashlib.sha256(SERVED).hexdigest()


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No weights anywhere: GANMETRICS_WEIGHTS unset, empty project folder and user cache."""
    project, cache = tmp_path / "project_weights", tmp_path / "cache"
    project.mkdir()
    monkeypatch.delenv("GANMETRICS_WEIGHTS", raising=False)
    monkeypatch.delenv("GANMETRICS_WEIGHTS_URL", raising=False)
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(cache))
    monkeypatch.setattr(weights_module, "PROJECT_WEIGHTS_DIR", project)
    return project, cache


@pytest.fixture(scope="module")
def real_state(weights_file) -> dict:
    """The fixture checkpoint's state dict (the real file's keys and shapes)."""
    return torch.load(weights_file, map_location="cpu", weights_only=True)


def sha256_bytes(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- resolution order -------------------------------------------------------------------------


def test_resolution_order(tmp_path, clean_env, monkeypatch):
    project, cache = clean_env
    explicit, env_file = tmp_path / "explicit.pth", tmp_path / "env.pth"
    for path in (explicit, env_file, project / WEIGHTS_FILENAME):
        path.write_bytes(b"x")
    cache.mkdir()
    (cache / WEIGHTS_FILENAME).write_bytes(b"x")
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(env_file))
    fetched = []
    monkeypatch.setattr(weights_module, "fetch_weights",
                        lambda encoder, progress=True: fetched.append(1) or tmp_path / "downloaded")

    assert find_weights_file(explicit) == explicit
    assert resolve_weights_file(str(explicit)) == explicit
    assert find_weights_file() == env_file
    monkeypatch.delenv("GANMETRICS_WEIGHTS")
    assert find_weights_file() == project / WEIGHTS_FILENAME
    (project / WEIGHTS_FILENAME).unlink()
    assert find_weights_file() == cache / WEIGHTS_FILENAME
    assert resolve_weights_file() == cache / WEIGHTS_FILENAME
    assert fetched == []
    (cache / WEIGHTS_FILENAME).unlink()
    assert find_weights_file() is None
    assert resolve_weights_file() == tmp_path / "downloaded"
    assert fetched == [1]


def test_explicit_path_wins_over_a_broken_environment_variable(tmp_path, clean_env, monkeypatch):
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(tmp_path / "missing.pth"))
    assert find_weights_file(explicit) == explicit


def test_cache_folder_from_xdg_cache_home(tmp_path, clean_env, monkeypatch):
    monkeypatch.delenv("GANMETRICS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ganmetrics"


def test_missing_explicit_path_is_an_error_naming_it(tmp_path, clean_env):
    with pytest.raises(GanMetricsError, match="nope.pth") as info:
        find_weights_file(tmp_path / "nope.pth")
    assert "--weights" in str(info.value)


def test_missing_environment_path_is_an_error_naming_it(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(GanMetricsError, match="GANMETRICS_WEIGHTS") as info:
        find_weights_file()
    assert "gone.pth" in str(info.value)


def test_weights_identity_hashes_the_file_of_the_resolution_order_and_never_downloads(tmp_path, clean_env,
                                                                                      monkeypatch):
    project, cache = clean_env
    monkeypatch.setattr(weights_module, "fetch_weights", lambda encoder, progress=True: pytest.fail("downloaded"))
    monkeypatch.setattr(InceptionExtractor, "read_state_dict", classmethod(lambda cls, path: pytest.fail("loaded")))
    explicit, env_file = tmp_path / "explicit.pth", tmp_path / "env.pth"
    for path, text in ((explicit, b"explicit"), (env_file, b"env"), (project / WEIGHTS_FILENAME, b"project")):
        path.write_bytes(text)
    cache.mkdir()
    (cache / WEIGHTS_FILENAME).write_bytes(b"cache")
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(env_file))
    assert weights_identity(explicit) == (sha256_bytes(explicit), False)
    assert weights_identity() == (sha256_bytes(env_file), False)
    monkeypatch.delenv("GANMETRICS_WEIGHTS")
    assert weights_identity() == (sha256_bytes(project / WEIGHTS_FILENAME), False)
    (project / WEIGHTS_FILENAME).unlink()
    digest = sha256_bytes(cache / WEIGHTS_FILENAME)
    as_if_standard(monkeypatch, digest)
    assert weights_identity() == (digest, True)
    (cache / WEIGHTS_FILENAME).unlink()
    assert weights_identity() is None
    with pytest.raises(GanMetricsError, match="missing.pth"):
        weights_identity(tmp_path / "missing.pth")


# --- loading and validation -------------------------------------------------------------------


def test_load_weights_of_a_non_standard_file_warns_and_is_uncalibrated(weights_file, clean_env):
    with pytest.warns(UserWarning, match="uncalibrated"):
        loaded = load_weights(weights_file, progress=False)
    assert loaded.calibrated is False
    assert loaded.sha256 == sha256_bytes(weights_file)
    assert loaded.source == str(weights_file)
    assert set(loaded.state_dict) == set(expected_shapes())


def test_load_weights_follows_the_environment_variable(weights_file, clean_env, monkeypatch):
    monkeypatch.setenv("GANMETRICS_WEIGHTS", str(weights_file))
    with pytest.warns(UserWarning):
        assert load_weights(None, progress=False).sha256 == sha256_bytes(weights_file)


def save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_read_state_dict_rejects_missing_keys(tmp_path, real_state):
    path = save(tmp_path, "few.pth", dict(list(real_state.items())[:3]))
    with pytest.raises(GanMetricsError, match="few.pth.*missing"):
        read_state_dict(path)


def test_read_state_dict_rejects_unexpected_keys(tmp_path, real_state):
    path = save(tmp_path, "extra.pth", {**real_state, "AuxLogits.fc.weight": torch.zeros(1008, 768)})
    with pytest.raises(GanMetricsError, match="extra.pth.*unexpected"):
        read_state_dict(path)


def test_read_state_dict_rejects_wrong_shapes(tmp_path, real_state):
    path = save(tmp_path, "shape.pth", {**real_state, "fc.weight": torch.zeros(1000, 2048)})
    with pytest.raises(GanMetricsError, match=r"shape.pth.*fc\.weight.*\(1000, 2048\)"):
        read_state_dict(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_read_state_dict_rejects_a_value_that_is_not_finite(tmp_path, real_state, bad):
    weight = real_state["Mixed_7c.branch_pool.conv.weight"].clone()
    weight.view(-1)[1234] = bad  # one value of 393,216
    path = save(tmp_path, "damaged.pth", {**real_state, "Mixed_7c.branch_pool.conv.weight": weight})
    with pytest.raises(GanMetricsError, match=r"damaged.pth.*Mixed_7c\.branch_pool\.conv\.weight.*NaN or infinity"):
        read_state_dict(path)


def test_read_state_dict_rejects_a_non_dict(tmp_path):
    path = save(tmp_path, "list.pth", [torch.zeros(3)])
    with pytest.raises(GanMetricsError, match="list.pth"):
        read_state_dict(path)


def test_read_state_dict_rejects_non_string_keys(tmp_path):
    path = save(tmp_path, "intkeys.pth", {0: torch.zeros(3)})
    with pytest.raises(GanMetricsError, match="intkeys.pth"):
        read_state_dict(path)


def test_read_state_dict_rejects_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(GanMetricsError, match="garbage.pth"):
        read_state_dict(path)


class _OpensAFile:
    """Unpickling this creates a file: what weights_only=True must never do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return open, (self.target, "w")


def test_read_state_dict_never_unpickles_arbitrary_objects(tmp_path):
    marker = tmp_path / "unpickled"
    path = save(tmp_path, "evil.pth", {"fc.weight": _OpensAFile(str(marker))})
    with pytest.raises(GanMetricsError, match="evil.pth"):
        read_state_dict(path)
    assert not marker.exists()


def test_read_state_dict_accepts_num_batches_tracked(tmp_path, real_state):
    batch_norms = {key.rsplit(".", 1)[0] for key in real_state if key.endswith(".running_mean")}
    assert len(batch_norms) == 94
    extended = {**real_state, **{f"{bn}.num_batches_tracked": torch.tensor(0) for bn in batch_norms}}
    state = read_state_dict(save(tmp_path, "bn.pth", extended))
    assert set(state) == set(expected_shapes())
    assert all(value.dtype == torch.float32 for value in state.values())


# --- download ---------------------------------------------------------------------------------


class _ServeBytes(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(SERVED)))
        self.end_headers()
        self.wfile.write(SERVED)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def weights_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ServeBytes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{WEIGHTS_FILENAME}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def cache_files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_fetch_of_a_file_with_the_wrong_hash_fails_and_leaves_the_cache_empty(clean_env, weights_server, monkeypatch):
    _, cache = clean_env
    monkeypatch.setenv("GANMETRICS_WEIGHTS_URL", weights_server)
    with pytest.raises(GanMetricsError) as info:
        fetch_weights(progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert SERVED_SHA256 in message and "6726825d" in message
    for way in ("--weights", "GANMETRICS_WEIGHTS=", "ganmetrics weights install"):
        assert way in message
    assert cache_files(cache) == []


def test_fetch_lands_the_file_in_the_cache(clean_env, weights_server, monkeypatch):
    _, cache = clean_env
    monkeypatch.setenv("GANMETRICS_WEIGHTS_URL", weights_server)
    as_if_standard(monkeypatch, SERVED_SHA256)
    path = fetch_weights(progress=False)
    assert path == cache / WEIGHTS_FILENAME
    assert path.read_bytes() == SERVED
    assert cache_files(cache) == [WEIGHTS_FILENAME]
    assert find_weights_file() == path  # found there from now on, without a download


def test_fetch_from_a_server_that_is_down_is_a_one_line_error(clean_env, monkeypatch):
    _, cache = clean_env
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("GANMETRICS_WEIGHTS_URL", f"http://127.0.0.1:{port}/{WEIGHTS_FILENAME}")
    with pytest.raises(GanMetricsError) as info:
        fetch_weights(progress=False)
    message = str(info.value)
    assert "\n" not in message
    for way in ("--weights", "GANMETRICS_WEIGHTS", "ganmetrics weights install"):
        assert way in message
    assert cache_files(cache) == []


# --- random:SEED --------------------------------------------------------------------------------


def test_random_weights_are_deterministic(weights_file):
    # The fixture file and random_weights(0) are two independent builds of seed 0.
    built = random_weights(0).state_dict
    stored = torch.load(weights_file, map_location="cpu", weights_only=True)
    assert set(built) == set(stored)
    for key in built:
        torch.testing.assert_close(built[key], stored[key], rtol=0, atol=0, msg=key)
    assert random_weights(0).sha256 == weights_module.tensor_digest(stored)


def test_random_weights_of_another_seed_differ_with_the_same_keys_and_shapes():
    zero, one = random_weights(0).state_dict, random_state_dict(1)
    shapes = expected_shapes()
    assert {key: tuple(value.shape) for key, value in one.items()} == shapes
    assert {key: tuple(value.shape) for key, value in zero.items()} == shapes
    assert all(value.dtype == torch.float32 for value in one.values())
    assert not torch.equal(zero["Conv2d_1a_3x3.conv.weight"], one["Conv2d_1a_3x3.conv.weight"])
    assert not torch.equal(zero["fc.weight"], one["fc.weight"])
    assert weights_module.tensor_digest(one) != random_weights(0).sha256


def test_random_spec_loads_uncalibrated_weights():
    loaded = load_weights("random:0")
    assert loaded is random_weights(0)
    assert loaded.calibrated is False and loaded.source == "random:0"
    assert len(loaded.sha256) == 64
    assert weights_identity("random:0") == (loaded.sha256, False)


@pytest.mark.parametrize("spec", ["random:x", "random:", "random:-1", "random:1.5"])
def test_bad_random_spec_is_an_error(spec):
    with pytest.raises(GanMetricsError, match="random:SEED"):
        load_weights(spec)


def test_random_network_activations_are_order_one_and_not_collapsed():
    # One pass through the whole network; the four taps are read where forward() takes them:
    # the inputs of Conv2d_3b_1x1 (64) and Mixed_5b (192), the outputs of Mixed_6e (768) and
    # Mixed_7c (2048), each averaged over space.
    network = plain_network()
    taps = {}
    hooks = [
        network.Conv2d_3b_1x1.register_forward_pre_hook(lambda m, args: taps.__setitem__(64, args[0])),
        network.Mixed_5b.register_forward_pre_hook(lambda m, args: taps.__setitem__(192, args[0])),
        network.Mixed_6e.register_forward_hook(lambda m, args, out: taps.__setitem__(768, out)),
        network.Mixed_7c.register_forward_hook(lambda m, args, out: taps.__setitem__(2048, out)),
    ]
    images = np.concatenate([smooth_images(2, (32, 32), seed=5), smooth_images(1, (32, 32), seed=6, offset=0.2)])
    x = to_network_input(torch.from_numpy(images).permute(0, 3, 1, 2), "tf")
    with torch.inference_mode():
        pool3 = network(x, {"2048"})["2048"]
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(taps[2048].mean(dim=(2, 3)), pool3)
    for dims in FEATURE_DIMS:
        features = taps[dims].double().mean(dim=(2, 3))
        assert features.shape == (3, dims)
        mean_abs = features.abs().mean().item()
        assert 0.05 < mean_abs < 20, (dims, mean_abs)
        spread = features.std(dim=0).mean().item()
        assert spread > 0.01 * mean_abs, (dims, spread, mean_abs)


# --- `ganmetrics weights` -----------------------------------------------------------------------


def test_cli_weights_verify(weights_file, clean_env):
    result = CliRunner().invoke(cli, ["weights", "verify", str(weights_file)])
    assert result.exit_code == 0, result.output
    assert sha256_bytes(weights_file) in result.stdout
    assert "uncalibrated" in result.stdout


def test_cli_weights_verify_of_a_bad_file(tmp_path, clean_env):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"garbage")
    result = CliRunner().invoke(cli, ["weights", "verify", str(path)])
    assert result.exit_code == 2
    assert "bad.pth" in one_line_error(result)


def test_cli_weights_install_then_path(weights_file, clean_env):
    _, cache = clean_env
    runner = CliRunner()
    result = runner.invoke(cli, ["weights", "install", str(weights_file)])
    assert result.exit_code == 0, result.output
    dest = cache / WEIGHTS_FILENAME
    assert str(dest) in result.stdout
    assert "uncalibrated" in result.stderr
    assert sha256_bytes(dest) == sha256_bytes(weights_file)
    assert cache_files(cache) == [WEIGHTS_FILENAME]
    result = runner.invoke(cli, ["weights", "path"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(dest)


def test_cli_weights_path_with_nothing_anywhere(clean_env):
    result = CliRunner().invoke(cli, ["weights", "path"])
    assert result.exit_code == 2
    assert result.stdout == ""
    message = one_line_error(result)
    assert WEIGHTS_FILENAME in message and "ganmetrics weights install" in message
