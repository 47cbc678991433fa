"""KID: the subset stream and formula of torch-fidelity, on the same features and seed; the
polynomial kernel's MMD² against a direct evaluation; sizes refused or shrunk on request."""

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.kid import KID, kernel_inception_distance, polynomial_mmd2
from ganmetrics.metrics.reducers import FeatureBank


def pool3_like(n: int, seed: int, scale: float = 0.3) -> np.ndarray:
    """Non-negative float32 (n, 2048) features, like averaged ReLU activations."""
    return (np.abs(np.random.default_rng(seed).normal(size=(n, 2048))) * scale).astype(np.float32)


def fidelity_kid(generated, reference, subsets, subset_size, **kernel):
    out = kid_features_to_metric(torch.from_numpy(generated), torch.from_numpy(reference), kid_subsets=subsets,
                                 kid_subset_size=subset_size, rng_seed=kernel.pop("seed", 2020), verbose=False,
                                 kid_kernel="poly", kid_kernel_poly_degree=kernel.get("degree", 3),
                                 kid_kernel_poly_gamma=kernel.get("gamma"), kid_kernel_poly_coef0=kernel.get("coef0", 1))
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def numpy_replay(generated, reference, subsets, subset_size, seed=2020, degree=3, gamma=None, coef0=1.0):
    """torch-fidelity's procedure transcribed in float64: generated indices first, then reference."""
    rng = np.random.RandomState(seed)
    gamma = 1.0 / generated.shape[1] if gamma is None else gamma
    mmds = []
    for _ in range(subsets):
        x = generated[rng.choice(len(generated), subset_size, replace=False)].astype(np.float64)
        y = reference[rng.choice(len(reference), subset_size, replace=False)].astype(np.float64)
        k = lambda p, q: (p @ q.T * gamma + coef0) ** degree  # noqa: E731
        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        m = subset_size
        mmds.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2)
    return float(np.mean(mmds)), float(np.std(mmds))


@pytest.mark.parametrize("subsets, subset_size, kernel", [
    (20, 100, {}),
    (7, 50, {"degree": 2, "gamma": 0.01, "coef0": 0.5, "seed": 7}),
])
def test_kid_equals_torch_fidelity_on_the_same_features_and_seed(subsets, subset_size, kernel):
    generated, reference = pool3_like(300, seed=1), pool3_like(260, seed=2, scale=0.32)
    ours = kernel_inception_distance(generated, reference, subsets, subset_size, kernel.get("degree", 3),
                                     kernel.get("gamma"), kernel.get("coef0", 1.0), kernel.get("seed", 2020))
    theirs = fidelity_kid(generated, reference, subsets, subset_size, **dict(kernel))
    assert ours[0] > 1e-5  # the sets differ: a clearly positive KID
    # The same subsets: an all-float64 replay of its procedure agrees to the float32 Gram products.
    replay = numpy_replay(generated, reference, subsets, subset_size, kernel.get("seed", 2020), kernel.get("degree", 3),
                          kernel.get("gamma"), kernel.get("coef0", 1.0))
    assert ours == pytest.approx(replay, rel=0, abs=1e-8)
    # torch-fidelity sums the kernels in float32, so it is exact to float32 rounding of the mean kernel value
    # (how far depends on the machine's summation order: 2e-8 to 1.2e-7 here); we are at least as close.
    gamma = kernel.get("gamma") or 1 / generated.shape[1]
    products = generated.astype(np.float64) @ reference.T.astype(np.float64)
    mean_kernel = float(((products * gamma + kernel.get("coef0", 1.0)) ** kernel.get("degree", 3)).mean())
    float32_rounding = np.finfo(np.float32).eps * mean_kernel
    for value in (0, 1):
        assert abs(theirs[value] - replay[value]) <= float32_rounding
        assert abs(ours[value] - theirs[value]) <= float32_rounding + 1e-8
    assert abs(ours[0] - replay[0]) <= abs(theirs[0] - replay[0])  # no further from exact than torch-fidelity


def test_another_seed_draws_other_subsets():
    generated, reference = pool3_like(120, seed=3), pool3_like(120, seed=4)
    assert kernel_inception_distance(generated, reference, 5, 50, seed=1) != kernel_inception_distance(
        generated, reference, 5, 50, seed=2)


def test_mmd2_is_the_unbiased_estimator_and_zero_in_expectation_for_one_distribution():
    rng = np.random.default_rng(5)
    x, y = (torch.from_numpy(rng.normal(size=(40, 6))) for _ in range(2))  # float64: exact products
    k = lambda p, q: (p @ q.T / 6 + 1) ** 3  # noqa: E731
    direct = sum(float(k(x[i:i + 1], x[j:j + 1]) + k(y[i:i + 1], y[j:j + 1]))
                 for i in range(40) for j in range(40) if i != j) / (40 * 39) - 2 * float(k(x, y).mean())
    assert polynomial_mmd2(x, y, 3, 1 / 6, 1.0) == pytest.approx(direct, rel=1e-10)
    # Same distribution: the estimate scatters around 0 and may be negative (an unbiased estimator).
    same = [kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), 1, 200, seed=s)[0]
            for s in range(20)]
    assert min(same) < 0 < max(same) and abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(20)


def test_too_few_images_are_refused_or_shrunk_on_request():
    bank = Need("inception", "2048", FeatureBank)
    a, b = {bank: pool3_like(30, seed=6)}, {bank: pool3_like(40, seed=7)}
    with pytest.raises(GanMetricsError, match="--kid-subset-size 1000 .* 30 reference and 40 generated.*--kid-shrink"):
        KID().check_counts(30, 40)
    shrunk = KID(kid_subsets=3, kid_shrink=True)
    assert shrunk.settings(a, b)["kid_subset_size"] == 30
    assert shrunk.compute(a, b)["kid"] == pytest.approx(kernel_inception_distance(b[bank], a[bank], 3, 30)[0])


@pytest.mark.parametrize("options, message", [
    ({"kid_subsets": 0}, "--kid-subsets"), ({"kid_subset_size": 1}, "--kid-subset-size"), ({"kid_degree": 0}, "--kid-degree"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(GanMetricsError, match=message) as err:
        KID(**options)
    assert "\n" not in str(err.value)
