"""FID and IS from reduced statistics, against closed forms, SciPy and torch-fidelity."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.fid import frechet_distance
from ganmetrics.metrics.inception_score import inception_score_from_sums
from ganmetrics.metrics.linalg import _trace_sqrt_product_torch, column_major, covariance_rank, trace_sqrt_product
from ganmetrics.metrics.reducers import SplitSums


def random_spd(dims: int, seed: int, condition: float = 10.0) -> np.ndarray:
    """A random symmetric positive definite matrix I + c A A^T / D, A standard normal: its
    eigenvalues lie in [1, about ``condition``] (Marchenko-Pastur: A A^T / D is within [0, 4])."""
    a = np.random.default_rng(seed).normal(size=(dims, dims))
    return np.eye(dims) + (condition - 1) / 4 * (a @ a.T) / dims


def singular_covariance(samples: int, dims: int, seed: int) -> np.ndarray:
    """np.cov of ``samples`` < dims random feature vectors: rank samples - 1."""
    return np.cov(np.random.default_rng(seed).normal(size=(samples, dims)), rowvar=False)


def scipy_trace_sqrt_product(sigma1, sigma2) -> float:
    return float(np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2)).real)


# --- FID --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [1, 5, 64])
def test_fid_of_diagonal_gaussians_has_closed_form(dims):
    rng = np.random.default_rng(dims)
    mu1, mu2 = rng.normal(size=dims), rng.normal(size=dims)
    a, b = rng.uniform(0.1, 4.0, dims), rng.uniform(0.1, 4.0, dims)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_fid_of_one_dimensional_gaussians_is_the_textbook_value():
    # N(0, 4) vs N(3, 1): 3^2 + (2 - 1)^2 = 10.
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(10.0, rel=1e-14)


@pytest.mark.parametrize("dims", [3, 32, 128])
def test_fid_of_commuting_covariances_has_closed_form(dims):
    # S1 = Q diag(l) Q^T, S2 = Q diag(l^2 / 3 + 0.5) Q^T share eigenvectors, so
    # tr sqrt(S1 S2) = sum sqrt(l f(l)) and FID = |dmu|^2 + sum (sqrt l - sqrt f(l))^2.
    rng = np.random.default_rng(dims)
    q, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    l1 = rng.uniform(0.2, 5.0, dims)
    l2 = l1 ** 2 / 3 + 0.5
    sigma1, sigma2 = (q * l1) @ q.T, (q * l2) @ q.T
    mu1, mu2 = rng.normal(size=dims), rng.normal(size=dims)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-10)
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(np.sum(np.sqrt(l1 * l2)), rel=1e-12)


@pytest.mark.parametrize("dims", [4, 64])
def test_fid_matches_the_scipy_sqrtm_formula_on_well_conditioned_covariances(dims):
    rng = np.random.default_rng(10 + dims)
    sigma1, sigma2 = random_spd(dims, seed=dims), random_spd(dims, seed=dims + 1)
    mu1, mu2 = rng.normal(size=dims), rng.normal(size=dims)
    diff = mu1 - mu2
    expected = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * scipy_trace_sqrt_product(sigma1, sigma2)
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert value > 0
    assert value == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("dims", [2, 16, 64, 256])
def test_trace_sqrt_product_equals_trace_of_scipy_sqrtm(dims):
    sigma1, sigma2 = random_spd(dims, seed=3 * dims), random_spd(dims, seed=3 * dims + 1, condition=50.0)
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(scipy_trace_sqrt_product(sigma1, sigma2), rel=1e-8)


@pytest.mark.parametrize("dims", [8, 256])
def test_fid_of_a_distribution_with_itself_is_zero(dims):
    mu, sigma = np.random.default_rng(dims).normal(size=dims), random_spd(dims, seed=dims, condition=100.0)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) <= 1e-8 * np.trace(sigma)


def test_fid_of_a_singular_covariance_with_itself_is_zero():
    sigma = singular_covariance(10, 64, seed=0)
    mu = np.zeros(64)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) <= 1e-6 * np.trace(sigma)


def test_fid_is_symmetric():
    rng = np.random.default_rng(5)
    sigma1, sigma2 = random_spd(48, seed=5), random_spd(48, seed=6, condition=1000.0)
    mu1, mu2 = rng.normal(size=48), rng.normal(size=48)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-10)


def test_fid_accepts_float32_inputs_and_computes_in_float64():
    sigma1, sigma2 = random_spd(16, seed=1), random_spd(16, seed=2)
    mu1, mu2 = np.ones(16), np.zeros(16)
    as32 = frechet_distance(mu1.astype(np.float32), sigma1.astype(np.float32), mu2.astype(np.float32), sigma2.astype(np.float32))
    exact = frechet_distance(mu1, sigma1.astype(np.float32).astype(np.float64), mu2, sigma2.astype(np.float32).astype(np.float64))
    assert isinstance(as32, float)
    assert as32 == pytest.approx(exact, rel=1e-12)


def test_singular_covariances_give_a_real_finite_value_equal_to_the_eigvals_formula():
    # 10 samples in 64 dims (N < D): scipy.linalg.sqrtm is unreliable here; torch-fidelity's
    # alternative is the sum of the square roots of the eigenvalues of S1 S2.
    sigma1, sigma2 = singular_covariance(10, 64, seed=1), singular_covariance(10, 64, seed=2)
    mu1 = np.random.default_rng(3).normal(size=64)
    mu2 = np.zeros(64)
    tsp = trace_sqrt_product(sigma1, sigma2)
    eigvals_tsp = np.sqrt(scipy.linalg.eigvals(sigma1 @ sigma2).astype(complex)).real.sum()
    assert isinstance(tsp, float) and np.isfinite(tsp)
    assert tsp == pytest.approx(eigvals_tsp, rel=1e-6)
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    expected = mu1 @ mu1 + np.trace(sigma1) + np.trace(sigma2) - 2 * eigvals_tsp
    assert isinstance(value, float) and np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-6)


def test_covariance_rank_of_ten_samples_in_64_dims_is_nine():
    assert covariance_rank(singular_covariance(10, 64, seed=1)) == 9
    assert covariance_rank(random_spd(64, seed=1)) == 64
    assert covariance_rank(np.zeros((3, 3))) == 0


def test_fid_of_different_dimensions_is_an_error():
    with pytest.raises(GanMetricsError, match="--dims"):
        frechet_distance(np.zeros(64), np.eye(64), np.zeros(192), np.eye(192))
    with pytest.raises(GanMetricsError):
        frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), np.eye(5))


# --- Inception Score --------------------------------------------------------------------------


def inception_score_of(logits: np.ndarray, splits: int) -> tuple[float, float]:
    accumulator = SplitSums(splits, total=len(logits), num_classes=logits.shape[1])
    accumulator.update(torch.from_numpy(logits))
    return inception_score_from_sums(*accumulator.sums())


def tf_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The original TF code's formula (openai/improved-gan), in NumPy float64."""
    z = logits - logits.max(axis=1, keepdims=True)
    preds = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(preds)
    scores = []
    for i in range(splits):
        part = preds[(i * n // splits):((i + 1) * n // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def one_hot_logits(classes: int, per_class: int, splits: int, num_classes: int = 1008) -> np.ndarray:
    """Each split holds ``per_class`` images of each of the first ``classes`` classes, each
    with p(y|x) one-hot (a margin of 1000 in the logits)."""
    labels = np.tile(np.repeat(np.arange(classes), per_class), splits)
    logits = np.zeros((len(labels), num_classes))
    logits[np.arange(len(labels)), labels] = 1000.0
    return logits


@pytest.mark.parametrize("classes, per_class, splits", [(1, 3, 2), (2, 2, 3), (10, 3, 10), (1008, 2, 2)])
def test_inception_score_of_evenly_spread_one_hot_predictions_is_the_number_of_classes(classes, per_class, splits):
    mean, std = inception_score_of(one_hot_logits(classes, per_class, splits), splits)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std <= 1e-12 * classes


@pytest.mark.parametrize("splits", [1, 4])
def test_inception_score_is_one_when_every_image_has_the_same_prediction(splits):
    row = np.random.default_rng(0).normal(0, 3, 1008)
    mean, std = inception_score_of(np.tile(row, (12, 1)), splits)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std <= 1e-12


def test_inception_score_std_is_zero_when_every_split_holds_the_same_images():
    split = np.random.default_rng(1).normal(0, 4, (7, 1008))
    mean, std = inception_score_of(np.tile(split, (5, 1)), splits=5)
    assert mean > 1.5
    assert std <= 1e-12 * mean
    assert mean == pytest.approx(inception_score_of(split, splits=1)[0], rel=1e-12)


@pytest.mark.parametrize("n", [100, 103])
def test_inception_score_matches_the_tf_formula_over_ten_contiguous_splits(n):
    logits = np.random.default_rng(n).normal(0, 4, (n, 1008))
    mean, std = inception_score_of(logits, splits=10)
    tf_mean, tf_std = tf_inception_score(logits, splits=10)
    assert std > 0.01
    assert mean == pytest.approx(tf_mean, rel=1e-10)
    assert std == pytest.approx(tf_std, rel=1e-10)


def test_inception_score_matches_torch_fidelity():
    logits = np.random.default_rng(7).normal(0, 4, (64, 1008))
    reference = isc_features_to_metric(torch.from_numpy(logits), splits=1)
    mean, std = inception_score_of(logits, splits=1)
    assert mean == pytest.approx(reference["inception_score_mean"], rel=1e-10)
    assert std == reference["inception_score_std"] == 0.0
    # Without its shuffle, torch-fidelity's splits are the TF code's contiguous splits.
    reference = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    mean, std = inception_score_of(logits, splits=10)
    assert mean == pytest.approx(reference["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(reference["inception_score_std"], rel=1e-10)


def test_inception_score_with_an_empty_split_is_an_error():
    accumulator = SplitSums(splits=5, total=3)
    accumulator.update(torch.zeros(3, 1008))
    with pytest.raises(GanMetricsError, match="split"):
        inception_score_from_sums(*accumulator.sums())
    with pytest.raises(GanMetricsError):
        inception_score_from_sums(np.array([2.0, 0.0]), np.ones((2, 4)), np.zeros(2))


def test_cholesky_and_eigendecomposition_routes_give_the_same_trace(monkeypatch):
    # A positive definite S1 takes the Cholesky route; forcing its factorisation to "fail"
    # sends the same pair down the eigendecomposition route used for singular covariances.
    sigma1, sigma2 = random_spd(96, seed=11, condition=1e4), random_spd(96, seed=12, condition=30.0)
    cholesky = trace_sqrt_product(sigma1, sigma2)
    monkeypatch.setattr(scipy.linalg.lapack, "dpotrf", lambda a, lower, clean: (a, 1))
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(cholesky, rel=1e-11)
    assert cholesky == pytest.approx(scipy_trace_sqrt_product(sigma1, sigma2), rel=1e-9)


def test_two_singular_covariances_give_the_nuclear_norm_of_their_factors_product():
    # S1 = A A^T, S2 = B B^T of rank 20 in 256 dims: tr sqrt(S1 S2) is the sum of the singular
    # values of A^T B, in closed form. The pivoted low-rank factors leave out only rounding;
    # square roots of eigenvalues at rounding level (what an eigendecomposition of a singular
    # covariance leaves) would add ~1e-8 each, hundreds of them.
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(256, 20)), rng.normal(size=(256, 20)) * np.linspace(0.1, 3, 20)
    sigma1, sigma2 = a @ a.T, b @ b.T
    assert covariance_rank(sigma1) == covariance_rank(sigma2) == 20
    expected = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    assert trace_sqrt_product(sigma1, sigma2) == pytest.approx(expected, rel=1e-11)
    assert trace_sqrt_product(sigma2, sigma1) == pytest.approx(expected, rel=1e-11)


def test_a_singular_first_covariance_factors_the_second_one():
    # 30 samples in 64 dims against a positive definite covariance, in both orders. The zero
    # eigenvalues of the product come out as rounding noise whose square roots add ~1e-8.
    singular, definite = singular_covariance(30, 64, seed=9), random_spd(64, seed=10)
    assert scipy.linalg.lapack.dpotrf(singular, lower=1)[1] != 0
    expected = np.sqrt(scipy.linalg.eigvals(singular @ definite).real.clip(0)).sum()
    assert trace_sqrt_product(singular, definite) == pytest.approx(expected, rel=1e-6)
    assert trace_sqrt_product(definite, singular) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("samples", [30, 200])
def test_the_lapack_route_gives_the_same_bits_for_either_memory_order(samples):
    # LAPACK reads one triangle; a C-ordered matrix is handed to it as a Fortran-ordered copy
    # (``column_major``). With the two triangles apart in their last bits (as a matrix product
    # leaves them), a copy that swapped them would change the result. 30 samples in 64 dims:
    # both covariances singular (the low-rank route); 200: the Cholesky route.
    rng = np.random.default_rng(samples)
    sigma1, sigma2 = (singular_covariance(samples, 64, seed) for seed in (21, 22))
    for sigma in (sigma1, sigma2):
        upper = np.triu_indices(64, 1)
        sigma[upper] *= 1 + 1e-12 * rng.uniform(1, 2, len(upper[0]))
        assert not np.array_equal(sigma, sigma.T)
    fortran = column_major(sigma1)
    assert fortran.flags.f_contiguous and np.array_equal(fortran, sigma1) and column_major(fortran) is fortran
    private = column_major(fortran, private=True)
    assert private is not fortran and private.flags.f_contiguous and np.array_equal(private, fortran)
    in_c = trace_sqrt_product(sigma1, sigma2)
    assert in_c == trace_sqrt_product(np.asfortranarray(sigma1), np.asfortranarray(sigma2))
    every_other_column = np.zeros((64, 128))
    every_other_column[:, ::2] = sigma1
    assert in_c == trace_sqrt_product(every_other_column[:, ::2], sigma2)  # neither C- nor Fortran-ordered
    as_given = np.asfortranarray(sigma1)
    assert covariance_rank(sigma1) == covariance_rank(as_given) == min(samples - 1, 64)
    assert np.array_equal(as_given, sigma1) and np.array_equal(fortran, sigma1)  # neither factorised in place


def test_covariance_rank_of_a_rank_deficient_full_size_covariance():
    # 40 samples in 256 dims, then scaled: the rank depends on neither dimension nor scale.
    sigma = singular_covariance(40, 256, seed=4)
    assert covariance_rank(sigma) == 39
    assert covariance_rank(sigma * 1e-6) == 39


@pytest.mark.parametrize("singular", ["none", "first", "both"])
def test_the_torch_route_for_gpus_equals_the_lapack_route(singular):
    # The GPU route (torch.linalg) runs here on the CPU: same algorithm, same float64 answer, up
    # to the square roots of rounding-level eigenvalues that singular covariances add (~1e-8).
    if singular == "both":
        sigma1, sigma2 = singular_covariance(20, 64, seed=7), singular_covariance(30, 64, seed=8)
    elif singular == "first":
        sigma1, sigma2 = singular_covariance(20, 64, seed=7), random_spd(64, seed=8)
    else:
        sigma1, sigma2 = random_spd(64, seed=7, condition=1e3), random_spd(64, seed=8)
    lapack = trace_sqrt_product(sigma1, sigma2)
    rel = 1e-10 if singular == "none" else 1e-6
    assert _trace_sqrt_product_torch(sigma1, sigma2, torch.device("cpu")) == pytest.approx(lapack, rel=rel)
    assert trace_sqrt_product(sigma1, sigma2, "cpu") == lapack
