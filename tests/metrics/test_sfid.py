"""The ADM evaluator's numbers from reduced states: sFID is its Fréchet formula on the spatial
Gaussians, and the IS of ``--is-split-size`` is its ``compute_inception_score`` on the same
logits (``adm_reference.py`` writes both out). No network: features and logits are drawn here
(the features themselves are pinned against torch-fidelity in tests/extractors/test_spatial.py)."""

import numpy as np
import pytest
import torch

from adm_reference import adm_frechet_distance, adm_inception_score
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.fid import frechet_distance
from ganmetrics.metrics.inception_score import InceptionScore
from ganmetrics.metrics.reducers import GaussianStats, SplitSums
from ganmetrics.metrics.sfid import SFID

D = 2023
SPATIAL = Need("inception", "spatial", GaussianStats)


def relu_features(n: int, shift: float, seed: int) -> np.ndarray:
    """n non-negative 2023-wide rows on a 30-dimensional manifold, as ReLU outputs are."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(30, D))
    return (rng.gamma(2.0, size=(n, 30)) @ basis / 5 + shift).clip(0)


def gaussian(x: np.ndarray):
    stats = GaussianStats(D)
    stats.update(torch.from_numpy(x))
    return stats.result()


def test_sfid_is_the_adm_frechet_formula_on_the_same_statistics():
    """ADM's formula runs ``scipy.linalg.sqrtm`` on the 2023 x 2023 product: 10-40 s here. With
    40 images a side, both covariances and the mean difference lie in the span Q of the two
    sides' centred features and the mean difference (81 dims), and the Fréchet distance is
    unchanged by writing the statistics in that orthonormal basis (Qᵀμ, QᵀΣQ): traces, the
    eigenvalues of Σ₁Σ₂ and |μ₁ - μ₂| are all kept. So ADM's own formula runs on the 81-dim
    form of exactly these statistics; our full-width distance of that form checks the identity."""
    a, b = relu_features(40, 0.0, seed=1), relu_features(40, 0.1, seed=2)
    ref, other = gaussian(a), gaussian(b)
    with pytest.warns(UserWarning, match="only 40 images for 2023-dim features"):
        sfid = SFID().compute({SPATIAL: ref}, {SPATIAL: other})["sfid"]

    basis, _ = np.linalg.qr(np.concatenate([a - a.mean(0), b - b.mean(0), (ref.mu - other.mu)[None]]).T)
    assert basis.shape == (D, 81)
    mu1, sigma1, mu2, sigma2 = (basis.T @ ref.mu, basis.T @ ref.sigma @ basis,
                                basis.T @ other.mu, basis.T @ other.sigma @ basis)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(sfid, rel=1e-7)  # the identity holds
    assert sfid > 100
    assert sfid == pytest.approx(adm_frechet_distance(mu1, sigma1, mu2, sigma2), rel=1e-6)


def split_sums(logits: np.ndarray, split_size: int, total: int | None, batch: int) -> SplitSums:
    sums = SplitSums(None, total, logits.shape[1], split_size=split_size)
    for start in range(0, len(logits), batch):
        chunk = torch.from_numpy(logits[start:start + batch])
        sums.update(chunk, torch.arange(start, start + len(chunk)))
    return sums


@pytest.mark.parametrize("n, split_size", [(23, 5), (20, 5), (7, 5000)])
def test_is_split_size_is_adms_compute_inception_score_on_the_same_logits(n, split_size):
    logits = np.random.default_rng(n).normal(0, 3, size=(n, 1008))
    metric = InceptionScore(is_split_size=split_size)
    (need,) = metric.needs(type("Extractor", (), {"name": "inception",
                                                  "default_feature": staticmethod(lambda _: "logits_unbiased")}))
    assert need == Need("inception", "logits_unbiased", SplitSums, (("split_size", split_size),))
    expected = adm_inception_score(logits, split_size)
    splits = -(-n // split_size)
    for total, batch in ((n, 4), (None, 3)):  # a known count, and an open-ended stream (the tracker)
        sums = split_sums(logits, split_size, total, batch)
        values = metric.compute(None, {need: sums.result()})
        assert values["is_mean"] == pytest.approx(expected, rel=1e-12)
        assert metric.settings(None, {need: sums.result()}) == {"splits": splits, "is_split_size": split_size}
    # Merged halves (other workers or ranks) give the same sums.
    first, second = SplitSums(None, n, 1008, split_size=split_size), SplitSums(None, n, 1008, split_size=split_size)
    first.update(torch.from_numpy(logits[:n // 2]), torch.arange(n // 2))
    second.update(torch.from_numpy(logits[n // 2:]), torch.arange(n // 2, n))
    merged = SplitSums.from_state(first.merge(second).state())
    assert metric.compute(None, {need: merged.result()})["is_mean"] == pytest.approx(expected, rel=1e-12)


def test_is_split_size_reports_the_population_std_of_the_split_scores():
    logits = np.random.default_rng(5).normal(0, 3, size=(12, 1008))
    sums = split_sums(logits, 5, 12, 12)  # splits of 5, 5 and 2 images
    scores = [adm_inception_score(logits[s:s + 5], 5) for s in (0, 5, 10)]
    values = InceptionScore(is_split_size=5).compute(None, {Need("inception", "logits_unbiased", SplitSums, (("split_size", 5),)):
                                                             sums.result()})
    assert values["is_std"] == pytest.approx(np.std(scores), rel=1e-10)
    assert sums.result()[0].tolist() == [5, 5, 2]
