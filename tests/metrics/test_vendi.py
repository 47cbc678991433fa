"""The Vendi score against vertaix/Vendi-Score (``vendi-score`` on PyPI), and the exactness of
its streamed state: the same bits for any batching and any split into merged parts; through
``eval`` (and its ``--ci``) the same bits for any batch size and worker count, on any encoder;
too few images are one line, exit 2, nothing written. The rank count: ``tests/test_torchrun.py``."""

import json

import numpy as np
import pytest
import torch

from helpers import FAST_OPTIONS, counted_decodes, cpu_extractor, features_of, one_line_error, run_cli, smooth_images, \
    write_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.extractors import registry
from ganmetrics.extractors.base import FeatureExtractor
from ganmetrics.extractors.registry import build_encoder
from ganmetrics.metrics.base import REDUCERS, Need
from ganmetrics.metrics.reducers import FeatureBank
from ganmetrics.metrics.registry import METRICS
from ganmetrics.metrics.vendi import LO_BITS, CosineGram, Vendi, normalised_pieces, vendi_score

vendi = pytest.importorskip("vendi_score.vendi")
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")]  # vendi-score's


def features(n: int, dims: int, seed: int) -> np.ndarray:
    """float32 (n, dims) non-negative features with correlated directions (a low-rank part plus
    noise, through a ReLU), as an encoder's embedding might be."""
    rng = np.random.RandomState(seed)
    mixed = rng.randn(n, 8) @ rng.randn(8, dims) + 0.5 * rng.randn(n, dims)
    return np.maximum(mixed, 0).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def streamed(parts, dims: int) -> CosineGram:
    """A reducer fed ``parts`` (float32 arrays) one update each."""
    gram = CosineGram.create(dims, None, "cpu")
    for part in parts:
        gram.update(torch.from_numpy(part))
    return gram


def ours(x: np.ndarray) -> float:
    return vendi_score(streamed([x], x.shape[1]).result())


@pytest.mark.parametrize("n, dims", [(60, 48), (30, 64), (120, 16)])
def test_vendi_equals_vendi_scores_cosine_kernel_score(n, dims):
    x = features(n, dims, seed=n)
    expected = vendi.score(x.astype(np.float64), k=cosine)  # the n x n kernel, element by element
    assert ours(x) == pytest.approx(expected, rel=1e-9)
    assert ours(x) == pytest.approx(vendi.score_dual(x.astype(np.float64)), rel=1e-9)  # the D x D route
    assert 1 <= ours(x) <= min(n, dims)


def test_vendi_of_identical_directions_is_one_and_of_orthogonal_ones_is_their_count():
    assert ours(np.tile(np.float32([[1, 2, 3, 4]]), (5, 1)) * np.float32([[1], [2], [3], [4], [5]])) == pytest.approx(1)
    assert ours(np.eye(6, dtype=np.float32) * 3) == pytest.approx(6)


def test_a_zero_feature_row_stays_zero_as_scikit_learns_normalize_leaves_it():
    x = features(40, 24, seed=1)
    x[7] = 0
    assert ours(x) == pytest.approx(vendi.score_X(x.astype(np.float64)), rel=1e-9)


def test_the_state_is_the_same_bits_for_any_batch_size_and_any_split_into_merged_parts():
    x = features(600, 300, seed=2)  # 300 dims: two slabs of the Gram matrix; 600 images: three of ROWS
    whole = streamed([x], 300)
    splits = {
        "batches of 7": streamed(np.split(x, range(7, 600, 7)), 300),
        "batches of 50": streamed(np.split(x, range(50, 600, 50)), 300),
        "2 parts merged": streamed(np.split(x[:333], range(7, 333, 7)), 300).merge(streamed([x[333:]], 300)),
        "2 parts merged the other way": streamed([x[333:]], 300).merge(streamed(np.split(x[:333], range(50, 333, 50)), 300)),
        "3 parts through their states": CosineGram.from_state(streamed([x[:100]], 300).state()).merge(
            CosineGram.from_state(streamed([x[100:401]], 300).state())).merge(streamed([x[401:]], 300)),
    }
    expected_state, expected = whole.state(), vendi_score(whole.result())
    for name, gram in splits.items():
        for field in CosineGram.state_fields:
            assert np.array_equal(gram.state()[field], expected_state[field]), (name, field)
        assert vendi_score(gram.result()) == expected, name
    assert expected == pytest.approx(vendi.score_dual(x.astype(np.float64)), rel=1e-9)


def test_the_fixed_point_sum_is_the_exact_integer_gram_matrix_of_the_pieces():
    x = features(300, 20, seed=3)
    x[:, 5] *= 1e-6  # entries far below the others: kept to 2^-67
    gram = streamed([x], 20)
    p0, p1, p2 = (torch.stack(p).numpy().astype(np.int64).astype(object) for p in
                  zip(*(normalised_pieces(torch.from_numpy(row[None])) for row in x)))
    p0, p1, p2 = (p[:, 0, :] for p in (p0, p1, p2))
    exact = (p0.T @ p0) * 2 ** 44 + (p0.T @ p1 + p1.T @ p0) * 2 ** 22 + (p0.T @ p2 + p2.T @ p0 + p1.T @ p1)
    state = gram.state()
    assert ((state["lo"] >= 0) & (state["lo"] < 2 ** LO_BITS)).all()
    held = state["hi"].astype(object) * 2 ** LO_BITS + state["lo"].astype(object)
    upper = np.triu_indices(20)
    assert (held[upper] == exact[upper]).all()
    assert (np.tril(state["hi"], -1) == 0).all() and (np.tril(state["lo"], -1) == 0).all()


def test_the_pieces_of_a_row_are_its_normalised_entries_to_within_2_to_the_minus_67():
    x = torch.from_numpy(features(4, 33, seed=4)).double()
    p0, p1, p2 = normalised_pieces(x)
    assert p0.abs().max() <= 2 ** 22 and p1.abs().max() <= 2 ** 21 and p2.abs().max() <= 2 ** 21
    rebuilt = (p0 + p1 * 2.0 ** -22 + p2 * 2.0 ** -44) * 2.0 ** -22
    assert (rebuilt - x / x.norm(dim=1, keepdim=True)).abs().max() <= 2.0 ** -52  # float64 rounding of x̂ itself


def test_fewer_than_two_images_are_refused_in_one_line():
    with pytest.raises(GanMetricsError, match="vendi needs at least 2 images, got 1") as err:
        vendi_score(streamed([features(1, 8, seed=5)], 8).result())
    assert "\n" not in str(err.value)
    with pytest.raises(GanMetricsError, match="at least 2 images, got 0"):
        Vendi().check_counts(None, 0)


def test_features_holding_nan_are_refused_when_the_state_is_read():
    x = features(10, 8, seed=6)
    x[3, 2] = np.nan
    gram = streamed([x], 8)
    with pytest.raises(GanMetricsError, match="NaN or infinity"):
        gram.result()


def test_vendi_is_registered_one_sided_and_runs_on_any_encoders_embedding():
    assert REDUCERS["cosine_gram"] is CosineGram and METRICS["vendi"] is Vendi and Vendi.sides == 1
    for name, feature in (("inception", "2048"), ("vgg16", "fc2_relu")):
        metric = Vendi(encoder=None if name == "inception" else name)
        assert metric.needs(build_encoder(name)) == [Need(name, feature, CosineGram)]
        assert metric.label == ("vendi" if name == "inception" else "vendi@vgg16")


def test_a_bootstrap_replicate_is_the_vendi_score_of_the_images_repeated_by_their_weights():
    x = features(40, 24, seed=8)
    need = Need("inception", "2048", CosineGram)
    assert CosineGram.resampling(need, 1, 10, 0) == Need("inception", "2048", FeatureBank)
    bank = CosineGram.prepare_resampling(x, None)
    weights = np.random.RandomState(9).poisson(1, 40)
    replicate = CosineGram.resampled(need, bank, 0, lambda count: weights, None)
    assert replicate.count == weights.sum()
    repeated = np.repeat(x, weights, axis=0).astype(np.float64)
    assert vendi_score(replicate) == pytest.approx(vendi.score_dual(repeated), rel=1e-9)
    ones = CosineGram.resampled(need, bank, 0, lambda count: np.ones(count, np.int64), None)
    np.testing.assert_allclose(ones.moment, streamed([x], 24).result().moment, rtol=0, atol=1e-15)


class Tiny(FeatureExtractor):
    """A fixed random projection of each image's 8 x 8 area-average downsample through a ReLU:
    24 non-negative features (registered only in the tests that name it)."""

    name, model = "tiny", "tiny-projection-8x8"
    features = {"proj": 24}
    roles = {"embedding": "proj"}

    @classmethod
    def architecture(cls):
        return torch.nn.Linear(8 * 8 * 3, 24, bias=False)

    def forward(self, network, pixels, wanted):
        x = torch.nn.functional.interpolate(pixels.permute(0, 3, 1, 2).float(), size=(8, 8), mode="area")
        return {"proj": torch.relu(network(x.flatten(1) / 255))}


@pytest.fixture(scope="module")
def generated_set(tmp_path_factory) -> tuple:
    """A folder of 12 generated images, and the images."""
    images = smooth_images(12, (32, 32), seed=81)
    return write_images(tmp_path_factory.mktemp("vendi") / "b", images), images


def run_json(*args, options=FAST_OPTIONS) -> dict:
    result = run_cli(*args, "--json", "--no-cache", options=options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_vendi_equals_vendi_scores_cosine_kernel_score_on_the_pool3_features(generated_set):
    folder, images = generated_set
    row = run_json("eval", folder, folder, "--metrics", "vendi")  # one-sided: SOURCE_A is not read
    pool3 = features_of(cpu_extractor(), list(images), ("2048",))["2048"].double().numpy()
    assert row["results"] == {"vendi": pytest.approx(vendi.score(pool3, k=cosine), rel=1e-9)}
    assert row["n_b"] == 12 and row["n_a"] is None


def test_eval_vendi_and_its_interval_are_the_same_bits_for_batch_sizes_7_and_50_and_workers_1_and_2(generated_set):
    folder, _ = generated_set
    runs = {(batch, workers): run_json("eval", folder, folder, "--metrics", "vendi", "--ci", 4, "--batch-size", batch,
                                       "--workers", workers, options=("--weights", "random:0", "--quiet"))["results"]
            for batch, workers in ((7, 1), (50, 1), (50, 2))}
    first, *others = runs.values()
    assert set(first) == {"vendi", "vendi_ci_low", "vendi_ci_high"} and first["vendi_ci_low"] < first["vendi_ci_high"]
    assert all(other == first for other in others), runs


def test_vendi_at_another_encoder_is_its_score_on_that_encoders_features(generated_set, monkeypatch):
    folder, images = generated_set
    monkeypatch.setitem(registry.ENCODERS, Tiny.name, Tiny)
    row = run_json("eval", folder, folder, "--metrics", "vendi@tiny", "--weights", "tiny=random:0")
    # One batch of all 12 images, as the engine ran them (batch size 50): the same features.
    projected = Tiny(weights="random:0")(torch.from_numpy(images), {"proj"})["proj"].double().numpy()
    assert set(row["results"]) == {"vendi@tiny"} and list(row["encoders"]) == ["tiny"]  # no Inception built
    assert row["results"]["vendi@tiny"] == pytest.approx(vendi.score_dual(projected), rel=1e-9)
    assert 1 < row["results"]["vendi@tiny"] < 12


@pytest.mark.parametrize("count, extra, expected", [
    (1, (), "has 1 image; VENDI needs at least 2"),
    (2, ("--ci", "20"), "resamples the 2 generated images as 1"),
])
def test_too_few_images_for_vendi_are_one_line_errors_and_write_nothing(generated_set, tmp_path, monkeypatch, count,
                                                                       extra, expected):
    _, images = generated_set
    few = write_images(tmp_path / "few", images[:count])
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", few, few, "--metrics", "vendi", "--plot", tmp_path / "plot.png",
                                         "--cache", *extra))
    assert expected in message
    assert decoded[0] == 0 and not (tmp_path / "plot.png").exists() and not (tmp_path / "cache").exists()
