"""Bootstrap intervals over images (evaluation/intervals.py, metrics/resampling.py): the counter-based Poisson weights, the
weighted Gaussian and the streamed IS sums against the explicitly resampled images, and the
interval's coverage of a closed-form FID on synthetic Gaussian features."""

import numpy as np
import pytest
import scipy.stats
import torch

from helpers import FeatureNames
from ganmetrics.config import IntervalOptions
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.base import Need
from ganmetrics.config import RunConfig
from ganmetrics.evaluation.compute import Fixed
from ganmetrics.evaluation.intervals import SideResampler, bootstrap_draws, interval_of, intervals_of
from ganmetrics.evaluation.plan import Plan
from ganmetrics.metrics.reducers import ReplicatedSplitSums, weighted_gaussian
from ganmetrics.metrics.resampling import GENERATED, REFERENCE, poisson_weights
from ganmetrics.metrics.fid import FID
from ganmetrics.metrics.inception_score import InceptionScore, inception_score_from_sums
from ganmetrics.metrics.kid import KID, kernel_inception_distance
from ganmetrics.metrics.reducers import FeatureBank, GaussianStats, SplitSums

pytestmark = pytest.mark.usefixtures("one_thread", "one_blas_thread")  # small matrices: one thread is fastest


def gaussian_side(x: np.ndarray) -> dict:
    """A side's reduced values for FID with --ci: its Gaussian and its feature bank."""
    stats = GaussianStats(x.shape[1])
    stats.update(torch.from_numpy(x))
    return {Need("inception", str(x.shape[1]), GaussianStats): stats.result(), Need("inception", str(x.shape[1]), FeatureBank): x.astype(np.float32)}


def only(side: dict, needs: list) -> dict:
    """The values of ``side`` that a metric's ``needs`` name: what the compute loop hands it."""
    return {need: side[need] for need in needs}


# --- weights ----------------------------------------------------------------------------------


def test_weights_are_poisson_one_and_independent_across_images_replicates_and_streams():
    weights = poisson_weights(7, GENERATED, range(40), np.arange(25_000))
    counts = np.bincount(weights.ravel(), minlength=8)
    counts = np.append(counts[:7], counts[7:].sum())  # 0..6, then 7 or more
    expected = np.append(scipy.stats.poisson.pmf(np.arange(7), 1.0), scipy.stats.poisson.sf(6, 1.0)) * weights.size
    assert scipy.stats.chisquare(counts, expected).pvalue > 1e-3
    assert weights.mean() == pytest.approx(1.0, abs=0.005) and weights.var() == pytest.approx(1.0, abs=0.01)
    others = (poisson_weights(7, REFERENCE, range(40), np.arange(25_000)),
              poisson_weights(8, GENERATED, range(40), np.arange(25_000)))
    for other in (weights[1:], *others):  # next replicate, other stream, other seed
        assert abs(np.corrcoef(weights[: len(other)].ravel(), other.ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(weights[0, :-1], weights[0, 1:])[0, 1]) < 0.03  # neighbouring images


def test_a_weight_depends_only_on_seed_stream_replicate_and_position():
    whole = poisson_weights(2**64 - 1, GENERATED, range(6), np.arange(1000))
    shuffled = np.random.default_rng(0).permutation(1000)
    assert np.array_equal(poisson_weights(2**64 - 1, GENERATED, range(6), shuffled), whole[:, shuffled])
    assert np.array_equal(poisson_weights(2**64 - 1, GENERATED, [4, 2], np.arange(300, 400)), whole[[4, 2], 300:400])
    # The documented stream, replayed with Python integers: a change of it changes every interval.
    assert poisson_weights(12345, GENERATED, [3], np.arange(40))[0].tolist() == specified_weights(12345, GENERATED, 3, 40)


def specified_weights(seed: int, stream: int, replicate: int, count: int) -> list[int]:
    """``poisson_weights`` as its docstring specifies it, in plain Python: splitmix64 keyed by
    seed, stream and replicate; image i's uniform the top 53 bits of its (i + 1)-th output; its
    weight the smallest k with u < F(k), F the Poisson(1) CDF."""
    mask, golden = 2**64 - 1, 0x9E3779B97F4A7C15

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    key = mix(mix(mix(seed) ^ ((stream + 1) * golden & mask)) ^ ((replicate + 1) * golden & mask))
    uniforms = [(mix((key + (i + 1) * golden) & mask) >> 11) / 2**53 for i in range(count)]
    return [int(np.argmax(u < scipy.stats.poisson.cdf(np.arange(30), 1.0))) for u in uniforms]


# --- resampled reduced values -----------------------------------------------------------------


@pytest.mark.parametrize("rows_at_once", [7, 8192])
def test_the_weighted_gaussian_is_the_gaussian_of_the_repeated_images(rows_at_once):
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(301, 6)).astype(np.float32)
    weights = poisson_weights(3, REFERENCE, [5], np.arange(301))[0]
    explicit = GaussianStats(6)
    explicit.update(torch.from_numpy(np.repeat(x, weights, axis=0)))
    for features, mean in ((x, x.mean(axis=0, dtype=np.float64)),
                           (torch.from_numpy(x), torch.from_numpy(x).double().mean(dim=0))):
        got = weighted_gaussian(features, mean, weights, rows_at_once)
        assert got.n == explicit.count == weights.sum()
        np.testing.assert_allclose(got.mu, explicit.mu(), rtol=1e-12)
        np.testing.assert_allclose(got.sigma, explicit.sigma(), rtol=1e-10, atol=1e-12)
    with pytest.raises(GanMetricsError, match="fewer than 2 images"):
        weighted_gaussian(x, x.mean(axis=0, dtype=np.float64), np.eye(1, 301, 4, dtype=np.int64)[0])


@pytest.mark.parametrize("splits, split_size, bounds", [(3, None, [17, 35]), (None, 20, [20, 40])])
def test_streamed_split_sums_equal_the_split_sums_of_each_resampled_set_in_any_batching(splits, split_size, bounds):
    """Three splits of 53 images, or ADM-style contiguous runs of 20 (20, 20 and 13 images)."""
    logits = torch.from_numpy(np.random.default_rng(2).normal(0, 3, (53, 11)))
    whole = ReplicatedSplitSums(splits, 53, 11, split_size=split_size, replicates=5, seed=9)
    whole.update(logits, torch.arange(53))
    halves = [ReplicatedSplitSums(splits, 53, 11, split_size=split_size, replicates=5, seed=9) for _ in range(2)]
    halves[1].update(logits[30:], torch.arange(30, 53))  # rank 1 first: merges do not care
    for start in range(0, 30, 7):
        halves[0].update(logits[start:min(start + 7, 30)], torch.arange(start, min(start + 7, 30)))
    merged = halves[0].merge(halves[1])
    restored = ReplicatedSplitSums.from_state(whole.state())
    weights = poisson_weights(9, GENERATED, range(5), np.arange(53))
    for r in range(5):
        explicit = SplitSums(3, None, 11)  # the same contiguous splits of the 53 images, repeated by weight
        split_of = np.repeat(np.searchsorted(bounds, np.arange(53), side="right"), weights[r])
        explicit.counts += torch.from_numpy(np.bincount(split_of, minlength=3).astype(np.float64))
        p = torch.softmax(logits, dim=1)[np.repeat(np.arange(53), weights[r])]
        one_hot = torch.from_numpy((split_of == np.arange(3)[:, None]).astype(np.float64))
        explicit.prob_sums += one_hot @ p
        explicit.neg_entropy_sums += one_hot @ torch.special.xlogy(p, p).sum(dim=1)
        for sums in (whole, merged, restored):
            for got, expected in zip(sums.result(), explicit.sums()):
                np.testing.assert_allclose(got[r], expected, rtol=1e-12, atol=1e-12)


def test_every_metric_with_an_interval_is_recomputed_on_the_resampled_images():
    rng = np.random.default_rng(3)
    a, b = (x.astype(np.float32).astype(np.float64) for x in (rng.normal(size=(60, 5)), rng.normal(0.3, 1.0, (60, 5))))
    logits = torch.from_numpy(rng.normal(0, 2, (60, 7)))
    fid, kid, inception = FID(), KID(kid_subsets=3, kid_subset_size=20, seed=4), InceptionScore(splits=2)
    names = FeatureNames(5)
    bank = Need("inception", "bank", FeatureBank)
    side_a = {**gaussian_side(a), bank: a.astype(np.float32)}
    side_b = {**gaussian_side(b), bank: b.astype(np.float32)}
    splits = Need("inception", "logits", SplitSums, (("splits", 2),))
    streamed = ReplicatedSplitSums(2, 60, 7, replicates=4, seed=11)
    streamed.update(logits, torch.arange(60))
    side_b[SplitSums.resampling(splits, GENERATED, 4, 11)] = streamed.result()
    ra, rb = SideResampler(side_a, REFERENCE, 4, 11), SideResampler(side_b, GENERATED, 4, 11)
    for r in range(4):
        wa, wb = (poisson_weights(11, stream, [r], np.arange(60))[0] for stream in (REFERENCE, GENERATED))
        ea, eb = np.repeat(a, wa, axis=0), np.repeat(b, wb, axis=0)
        got = fid.compute(ra.at(r).values(fid.needs(names)), rb.at(r).values(fid.needs(names)))["fid"]
        expected = fid.compute(*(only(gaussian_side(x), fid.needs(names)) for x in (ea, eb)))["fid"]
        assert got == pytest.approx(expected, rel=1e-9)
        got = kid.compute(ra.at(r).values(kid.needs(names)), rb.at(r).values(kid.needs(names)))["kid"]
        expected, _ = kernel_inception_distance(eb.astype(np.float32), ea.astype(np.float32), 3, 20, seed=4)
        assert got == expected
        got = inception.compute(None, rb.at(r).values(inception.needs(names)))["is_mean"]
        first = np.arange(60) < 30
        halves = [torch.softmax(logits[np.repeat(np.arange(60)[part], wb[part])], 1) for part in (first, ~first)]
        expected = np.mean([inception_score_from_sums([len(p)], p.sum(0, keepdim=True).numpy(),
                                                      torch.special.xlogy(p, p).sum().reshape(1).numpy())[0]
                            for p in halves])
        assert got == pytest.approx(expected, rel=1e-12)
    fixed = Fixed(side_a)  # a statistics file: the same values on every replicate
    assert fixed.at(2).values(fid.needs(names)) == {need: side_a[need] for need in fid.needs(names)}


def test_a_split_that_a_replicate_draws_no_image_of_is_left_out_of_its_inception_score():
    """ADM-style splits of 4 (4, 4 and a last split of 1 image): a replicate whose Poisson weight
    for that one image is 0 scores the two full splits alone (as IS of the drawn images would),
    instead of failing on an empty split."""
    logits = torch.from_numpy(np.random.default_rng(5).normal(0, 2, (9, 7)))
    inception = InceptionScore(is_split_size=4)
    (need,) = inception.needs(FeatureNames())
    streamed = ReplicatedSplitSums(None, 9, 7, split_size=4, replicates=40, seed=2)
    streamed.update(logits, torch.arange(9))
    side = SideResampler({SplitSums.resampling(need, GENERATED, 40, 2): streamed.result()}, GENERATED, 40, 2)
    weights = poisson_weights(2, GENERATED, range(40), np.arange(9))
    empty_last = [r for r in range(40) if weights[r, 8] == 0 and weights[r, :4].sum() and weights[r, 4:8].sum()]
    assert empty_last  # P(weight 0) = 1/e: some of 40 replicates draw the last image no time
    for r in empty_last[:3]:
        got = inception.compute(None, side.at(r).values(inception.needs(FeatureNames())))["is_mean"]
        scores = []
        for part in (np.arange(4), np.arange(4, 8)):
            p = torch.softmax(logits[np.repeat(part, weights[r, part])], 1)
            scores.append(inception_score_from_sums([len(p)], p.sum(0, keepdim=True).numpy(),
                                                    torch.special.xlogy(p, p).sum().reshape(1).numpy())[0])
        assert got == pytest.approx(np.mean(scores), rel=1e-12)


def test_basic_intervals_mirror_the_percentile_quantiles_about_the_value():
    draws = np.random.default_rng(4).gamma(2.0, 1.0, 999)
    low, high = np.quantile(draws, [0.05, 0.95])
    assert interval_of(draws, 1.5, 0.9, "percentile") == (low, high)
    assert interval_of(draws, 1.5, 0.9, "basic") == pytest.approx((3.0 - high, 3.0 - low), rel=1e-15)


# --- coverage on Gaussians of known FID -------------------------------------------------------

DIMS = 8
MEAN_GAP = np.array([1.0, 0.5, 0, 0, 0, 0, 0, 0])
VARIANCES = np.array([1.0, 1.0, 1.5, 0.7, 1.0, 1.0, 1.0, 1.0])
TRUE_FID = MEAN_GAP @ MEAN_GAP + np.sum((1 - np.sqrt(VARIANCES)) ** 2)  # N(0, I) against N(gap, diag(variances))


def interval_on_gaussians(n: int, seed: int, replicates: int = 100, ci_seed: int | None = None) -> tuple:
    """(FID, low, high) of a 95% basic interval of n draws of each Gaussian (``ci_seed``: default ``seed``)."""
    rng = np.random.default_rng(seed)
    a = gaussian_side(rng.normal(size=(n, DIMS)))
    b = gaussian_side(rng.normal(size=(n, DIMS)) * np.sqrt(VARIANCES) + MEAN_GAP)
    names = FeatureNames(DIMS)
    fid = FID().compute(only(a, FID().needs(names)), only(b, FID().needs(names)))["fid"]
    interval = IntervalOptions(replicates, 0.95, seed=seed if ci_seed is None else ci_seed)
    plan = Plan(("fid",), [FID()], {"inception": names}, RunConfig(), interval)
    out = intervals_of(bootstrap_draws(plan, a, b, True), {"fid": fid}, interval)
    return fid, out["fid_ci_low"], out["fid_ci_high"]


@pytest.fixture(scope="module")
def small_sample_intervals(one_thread, one_blas_thread):
    """200 seeded repetitions at n = 300 images a side, B = 100 (8 dims: FID's bias there is
    about one standard deviation)."""
    return np.array([interval_on_gaussians(300, seed) for seed in range(200)])


def test_the_95_percent_interval_covers_the_closed_form_fid_in_90_to_99_percent_of_repetitions(small_sample_intervals):
    fid, low, high = small_sample_intervals.T
    assert 0.90 <= np.mean((low <= TRUE_FID) & (TRUE_FID <= high)) <= 0.99
    # FID at n is biased upwards (by about its spread here): the percentile interval, the
    # quantiles themselves (mirror images of the basic ones), covers the true value far less.
    assert np.mean(fid) - TRUE_FID > 0.5 * np.std(fid)
    percentile_low, percentile_high = 2 * fid - high, 2 * fid - low
    assert np.mean((percentile_low <= TRUE_FID) & (TRUE_FID <= percentile_high)) < 0.8


def test_the_interval_narrows_as_one_over_the_square_root_of_the_image_count(small_sample_intervals):
    _, low, high = small_sample_intervals[:20].T
    larger = np.array([interval_on_gaussians(1200, seed) for seed in range(20)])
    ratio = np.mean(larger[:, 2] - larger[:, 1]) / np.mean(high - low)
    assert 0.35 <= ratio <= 0.65  # 4x the images: 1/2


def test_the_interval_is_seeded():
    first = interval_on_gaussians(50, seed=1, replicates=20, ci_seed=5)
    assert interval_on_gaussians(50, seed=1, replicates=20, ci_seed=5) == first
    other = interval_on_gaussians(50, seed=1, replicates=20, ci_seed=6)
    assert other[0] == first[0] and other[1:] != first[1:]
