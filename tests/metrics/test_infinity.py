"""FID∞ and IS∞ (metrics/infinity.py): Chong & Forsyth's procedure replayed in NumPy on the same
features, the fit's standard error, and the extrapolation against a closed-form FID."""

import numpy as np
import pytest
import scipy.special
import torch

from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.fid import frechet_distance, frechet_distance_scipy
from ganmetrics.metrics.infinity import FIDInfinity, ISInfinity, fit_inverse_n
from ganmetrics.metrics.reducers import FeatureBank, Gaussian, GaussianStats

DIMS = 6

pytestmark = pytest.mark.usefixtures("one_thread", "one_blas_thread")  # small matrices: one thread is fastest


def float32_normal(rng, size, scale=1.0, shift=0.0) -> np.ndarray:
    return (rng.normal(size=size) * scale + shift).astype(np.float32)


def replay(activations: np.ndarray, score, smallest: int, points: int, seed: int) -> tuple[list, float]:
    """Chong & Forsyth's loop as written in score_infinity.py (global np.random, in-place
    shuffles of the activations, np.linspace(...).astype("int32"), a linear fit on 1/N), on a
    float64 copy; returns (the points, the intercept)."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        activations = activations.astype(np.float64)
        batches = np.linspace(smallest, len(activations), points).astype("int32")
        values = []
        for batch in batches:
            np.random.shuffle(activations)
            values.append(score(activations[:batch]))
    finally:
        np.random.set_state(state)
    slope, intercept = np.polyfit(1 / batches, values, 1)
    return values, intercept


def test_fid_inf_equals_a_numpy_replay_of_chong_and_forsyth():
    rng = np.random.default_rng(0)
    generated = float32_normal(rng, (700, DIMS), 1.3, 0.4)
    reference = float32_normal(rng, (900, DIMS)).astype(np.float64)
    mu, sigma = reference.mean(axis=0), np.cov(reference, rowvar=False)
    metric = FIDInfinity(inf_min=100, seed=7)
    out = metric.compute({Need("inception", str(DIMS), GaussianStats): Gaussian(mu, sigma, 900)},
                         {Need("inception", str(DIMS), FeatureBank): generated})
    def fid(act):  # score_infinity.calculate_FID: np.mean, np.cov, the sqrtm formula
        return frechet_distance_scipy(act.mean(0), np.cov(act, rowvar=False), mu, sigma)

    values, intercept = replay(generated, fid, 100, 15, 7)
    assert out["fid_inf"] == pytest.approx(intercept, rel=1e-9)
    assert out["fid_inf_fit"]["value"] == pytest.approx(values, rel=1e-9)
    assert out["fid_inf_fit"]["n"] == np.linspace(100, 700, 15).astype("int32").tolist()
    assert out["fid_inf_se"] == out["fid_inf_fit"]["se"] > 0


def test_is_inf_equals_a_numpy_replay_of_chong_and_forsyth():
    logits = float32_normal(np.random.default_rng(1), (500, 12), 2.0)

    def inception_score(pred):  # score_infinity.calculate_inception_score, one split
        kl = pred * (np.log(pred) - np.log(np.expand_dims(np.mean(pred, 0), 0)))
        return np.exp(np.mean(np.sum(kl, 1)))

    out = ISInfinity(inf_min=50, inf_points=9, seed=3).compute(None, {Need("inception", "logits", FeatureBank): logits})
    probabilities = scipy.special.softmax(logits.astype(np.float64), axis=1)
    values, intercept = replay(probabilities, inception_score, 50, 9, 3)
    assert out["is_inf"] == pytest.approx(intercept, rel=1e-9)
    assert out["is_inf_fit"]["value"] == pytest.approx(values, rel=1e-9)


def test_the_standard_error_is_the_textbook_one_of_the_intercept():
    sizes = np.array([100, 150, 220, 300, 450, 600])
    values = 5 + 40 / sizes + np.array([0.01, -0.02, 0.015, 0.0, -0.01, 0.005])
    intercept, slope, se = fit_inverse_n(sizes, values)
    x = 1 / sizes
    residuals = values - intercept - slope * x
    s2 = residuals @ residuals / (len(x) - 2)
    assert se == pytest.approx(np.sqrt(s2 * (1 / len(x) + x.mean() ** 2 / np.sum((x - x.mean()) ** 2))), rel=1e-10)
    assert (slope, intercept) == pytest.approx(tuple(np.polyfit(x, values, 1)), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_inf_of_gaussian_features_is_closer_to_the_closed_form_than_fid_at_n(seed):
    # Generated: N(gap, diag(v)) against the reference distribution N(0, I) itself. At 32 dims
    # and 2,000 images, FID at N is biased upwards by 0.10-0.18 (about five times its spread);
    # FID∞ lands within 0.05.
    dims, count = 32, 2000
    rng = np.random.default_rng(seed)
    gap, variances = np.full(dims, 0.05), np.linspace(0.6, 1.6, dims)
    true_fid = gap @ gap + np.sum((1 - np.sqrt(variances)) ** 2)
    generated = float32_normal(rng, (count, dims), np.sqrt(variances), gap)
    reference = {Need("inception", str(dims), GaussianStats): Gaussian(np.zeros(dims), np.eye(dims), None)}
    fid_inf = FIDInfinity(inf_min=400, seed=seed).compute(reference, {Need("inception", str(dims), FeatureBank): generated})
    stats = GaussianStats(dims)
    stats.update(torch.from_numpy(generated))
    fid_at_n = frechet_distance(stats.mu(), stats.sigma(), np.zeros(dims), np.eye(dims))
    assert fid_at_n - true_fid > 0.08
    assert abs(fid_inf["fid_inf"] - true_fid) < 0.5 * (fid_at_n - true_fid)


def test_too_few_generated_images_and_bad_options_are_one_line_errors():
    with pytest.raises(GanMetricsError, match=r"fid_inf needs more generated images than --inf-min 5000 .* got 400: "
                                              r"add images, or lower --inf-min"):
        FIDInfinity().check_counts(10_000, 400)
    ISInfinity(inf_min=399).check_counts(None, 400)
    with pytest.raises(GanMetricsError, match="is_inf needs more generated images than --inf-min 400"):
        ISInfinity(inf_min=400).check_counts(None, 400)
    for options, message in (({"inf_min": 1}, "--inf-min must be at least 2"),
                             ({"inf_points": 2}, "--inf-points must be at least 3"),
                             ({"seed": 2**32}, "--seed must lie in 0..2\\*\\*32-1")):
        with pytest.raises(GanMetricsError, match=message):
            FIDInfinity(**options)
