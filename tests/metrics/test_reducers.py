"""GaussianStats, SplitSums and FeatureBank: values against NumPy, merges against one pass
(across ranks and shard files: tests/engine/test_distributed.py)."""

import numpy as np
import pytest
import torch

from ganmetrics.metrics.reducers import GaussianStats, SplitSums

def features(n: int, dims: int, seed: int) -> np.ndarray:
    """Correlated, off-centre float64 features (N, D)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dims)) @ rng.normal(size=(dims, dims)) + rng.normal(0, 50, dims)


def gaussian_of(chunks, dims: int) -> GaussianStats:
    stats = GaussianStats(dims)
    for chunk in chunks:
        stats.update(torch.from_numpy(chunk))
    return stats


def assert_same_gaussian(actual: GaussianStats, expected: GaussianStats, rel: float):
    assert actual.count == expected.count
    np.testing.assert_allclose(actual.mu(), expected.mu(), rtol=rel, atol=rel * np.abs(expected.mu()).max())
    scale = np.abs(expected.sigma()).max()
    np.testing.assert_allclose(actual.sigma(), expected.sigma(), rtol=rel, atol=rel * scale)


def logits(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 3, (n, 1008)))


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# --- GaussianStats ----------------------------------------------------------------------------


def test_mean_and_covariance_equal_numpy():
    x = features(57, 6, seed=0)
    stats = gaussian_of([x], 6)
    assert stats.count == 57
    assert stats.mu().dtype == stats.sigma().dtype == np.float64
    np.testing.assert_allclose(stats.mu(), np.mean(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma(), np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12 * np.abs(np.cov(x, rowvar=False)).max())


def test_float32_features_are_accumulated_in_float64():
    x = features(20, 4, seed=1).astype(np.float32)
    stats = gaussian_of([x], 4)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mu(), x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma(), np.cov(x64, rowvar=False), rtol=1e-10)


def test_batched_updates_equal_one_pass():
    x = features(50, 5, seed=2)
    one_pass = gaussian_of([x], 5)
    bounds = [0, 1, 2, 9, 10, 33, 49, 50]  # uneven chunks, several of size 1
    assert_same_gaussian(gaussian_of([x[a:b] for a, b in zip(bounds, bounds[1:])], 5), one_pass, 1e-10)


@pytest.mark.parametrize("dims, threads", [(300, None), (2048, 1)])
def test_updates_by_row_blocks_into_one_buffer_give_the_bits_of_the_whole_matrix_formula(dims, threads):
    # Stats files stay bit-identical to those of ``comoment += M + outer(delta, delta) * scale``
    # in one expression, M a fresh product each batch; 300 dims: blocks of 128, 128 and 44 rows;
    # 2048 dims on one thread, as the CPU pass updates its reducers beside the network's parts.
    from ganmetrics.engine.runtime import intra_op_threads

    chunks = [torch.from_numpy(features(n, dims, seed=n)) for n in (50, 50, 25)]
    assert GaussianStats.ROWS < dims
    with intra_op_threads(threads or torch.get_num_threads()):
        count, mean, comoment = 0, torch.zeros(dims, dtype=torch.float64), torch.zeros(dims, dims, dtype=torch.float64)
        for x in chunks:
            batch_mean = x.mean(dim=0)
            centred = x - batch_mean
            total, delta = count + len(x), batch_mean - mean
            comoment += centred.T @ centred + torch.outer(delta, delta) * (count * len(x) / total)
            mean += delta * (len(x) / total)
            count = total
        stats = gaussian_of([x.numpy() for x in chunks], dims)
    assert torch.equal(stats.comoment, comoment) and torch.equal(stats.mean, mean)


def test_merge_of_two_halves_equals_one_pass():
    x = features(41, 7, seed=3)
    one_pass = gaussian_of([x], 7)
    merged = gaussian_of([x[:20]], 7).merge(gaussian_of([x[20:]], 7))
    assert_same_gaussian(merged, one_pass, 1e-10)


def test_merge_of_uneven_chunks_including_single_samples_equals_one_pass():
    x = features(30, 3, seed=4)
    bounds = [0, 1, 2, 3, 17, 29, 30]
    merged = GaussianStats(3)
    for a, b in zip(bounds, bounds[1:]):
        merged.merge(gaussian_of([x[a:b]], 3))
    assert_same_gaussian(merged, gaussian_of([x], 3), 1e-10)


def test_merge_with_empty_statistics_changes_nothing():
    x = features(12, 4, seed=5)
    stats = gaussian_of([x], 4)
    stats.merge(GaussianStats(4))
    assert_same_gaussian(stats, gaussian_of([x], 4), 1e-15)
    empty = GaussianStats(4).merge(gaussian_of([x], 4))
    assert_same_gaussian(empty, gaussian_of([x], 4), 1e-15)
    stats.update(torch.zeros(0, 4, dtype=torch.float64))
    assert stats.count == 12


def test_mismatched_dimensions_are_refused():
    with pytest.raises(ValueError):
        GaussianStats(4).merge(GaussianStats(5))
    with pytest.raises(ValueError):
        GaussianStats(4).update(torch.zeros(3, 5))
    with pytest.raises(ValueError):
        GaussianStats(4).update(torch.zeros(4))


def test_covariance_needs_two_samples():
    stats = gaussian_of([features(1, 3, seed=6)], 3)
    with pytest.raises(ValueError):
        stats.sigma()


# --- SplitSums ------------------------------------------------------------------


@pytest.mark.parametrize("n, splits", [(23, 5), (10, 10), (7, 3), (100, 7)])
def test_contiguous_splits_follow_the_tf_slice_bounds(n, splits):
    x = logits(n, seed=n)
    accumulator = SplitSums(splits, total=n)
    accumulator.update(x[:4])  # in several batches, positions continuing
    accumulator.update(x[4:])
    counts, prob_sums, neg_entropy_sums = accumulator.sums()
    p = softmax(x.numpy())
    for s in range(splits):
        lo, hi = s * n // splits, (s + 1) * n // splits
        assert counts[s] == hi - lo
        np.testing.assert_allclose(prob_sums[s], p[lo:hi].sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(neg_entropy_sums[s], (p[lo:hi] * np.log(p[lo:hi])).sum(), rtol=1e-12)


def test_split_counts_for_23_images_in_5_splits():
    accumulator = SplitSums(5, total=23)
    accumulator.update(logits(23, seed=0))
    np.testing.assert_array_equal(accumulator.sums()[0], [4, 5, 4, 5, 5])


def test_merge_of_two_halves_with_start_positions_equals_one_pass():
    x = logits(31, seed=1)
    one_pass = SplitSums(4, total=31)
    one_pass.update(x)
    first, second = SplitSums(4, total=31), SplitSums(4, total=31)
    second.update(x[13:], torch.arange(13, 31))  # order of arrival does not matter
    first.update(x[:13], torch.arange(0, 13))
    merged = first.merge(second)
    for a, b in zip(merged.sums(), one_pass.sums()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert merged.seen == 31


def test_merge_refuses_other_splits_or_totals():
    with pytest.raises(ValueError):
        SplitSums(4, total=31).merge(SplitSums(5, total=31))
    with pytest.raises(ValueError):
        SplitSums(4, total=31).merge(SplitSums(4, total=30))


def test_round_robin_routing_without_a_total():
    x = logits(23, seed=2)
    accumulator = SplitSums(5, total=None)
    accumulator.update(x[:6])
    accumulator.update(x[6:])
    counts, prob_sums, _ = accumulator.sums()
    np.testing.assert_array_equal(counts, [5, 5, 5, 4, 4])
    p = softmax(x.numpy())
    for s in range(5):
        np.testing.assert_allclose(prob_sums[s], p[s::5].sum(axis=0), rtol=1e-12)


def test_update_beyond_the_declared_total_is_refused_and_changes_nothing():
    accumulator = SplitSums(2, total=10)
    accumulator.update(logits(8, seed=3))
    before = [a.copy() for a in accumulator.sums()]
    with pytest.raises(ValueError, match="beyond"):
        accumulator.update(logits(3, seed=4))
    with pytest.raises(ValueError):
        accumulator.update(logits(1, seed=4), torch.tensor([10]))
    for a, b in zip(accumulator.sums(), before):
        np.testing.assert_array_equal(a, b)
    assert accumulator.seen == 8


def test_at_least_one_split():
    with pytest.raises(ValueError):
        SplitSums(0, total=10)


# --- FeatureBank -------------------------------------------------------------------------------


def test_feature_bank_returns_features_in_global_order_whatever_the_arrival():
    from ganmetrics.metrics.reducers import FeatureBank

    x = torch.randn(11, 5)
    one_pass = FeatureBank(5)
    one_pass.update(x, torch.arange(11))
    scattered, other = FeatureBank(5), FeatureBank(5)
    scattered.update(x[7:], torch.arange(7, 11))  # batches arrive out of order, on two "ranks"
    other.update(x[[1, 3, 5]], torch.tensor([1, 3, 5]))
    scattered.update(x[[0, 2, 4, 6]], torch.tensor([0, 2, 4, 6]))
    merged = scattered.merge(other)
    assert np.array_equal(merged.result(), x.numpy()) and np.array_equal(one_pass.result(), x.numpy())
    assert merged.result().dtype == np.float32 and len(merged) == 11
    rebuilt = FeatureBank.from_state(merged.state())
    assert np.array_equal(rebuilt.result(), x.numpy())


def test_feature_bank_copies_each_batch_into_pieces_that_span_batches(monkeypatch):
    # The bank keeps no reference to the forward pass's tensors (they are freed at once, so the
    # heap does not fragment around them), and a batch may straddle two of its pieces.
    from ganmetrics.metrics import reducers

    monkeypatch.setattr(reducers, "SLAB_BYTES", 4 * 5 * 4)  # pieces of 4 rows of 5 floats
    x = torch.randn(11, 5)
    bank = reducers.FeatureBank(5)
    batches = [(0, 3), (3, 6), (6, 11)]
    for start, stop in reversed(batches):  # out of order
        given = x[start:stop].clone()
        bank.update(given, torch.arange(start, stop))
        given.fill_(0)
    assert len(bank.slabs) == 3 and len(bank) == 11
    assert np.array_equal(bank.result(), x.numpy())
    known = reducers.FeatureBank.create(5, total=2)  # a known count bounds a piece
    known.update(x[:2], torch.arange(2))
    assert known.slab_rows == 2 and len(known.slabs) == 1
    merged = known.merge(reducers.FeatureBank.from_state({"positions": np.arange(2, 11), "features": x[2:].numpy()}))
    assert np.array_equal(merged.result(), x.numpy()) and len(merged.slabs) == 6  # 11 rows, 2 a piece


def test_feature_bank_refuses_a_position_twice_and_a_wrong_width():
    from ganmetrics.metrics.reducers import FeatureBank

    bank = FeatureBank(3)
    bank.update(torch.zeros(2, 3), torch.tensor([0, 1]))
    bank.update(torch.ones(1, 3), torch.tensor([1]))
    with pytest.raises(ValueError, match="twice"):
        bank.result()
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        bank.update(torch.zeros(2, 4))


def test_gaussian_and_split_sum_states_rebuild_them_exactly():
    from ganmetrics.metrics.reducers import GaussianStats, SplitSums

    x = torch.randn(9, 4, dtype=torch.float64)
    stats = GaussianStats(4)
    stats.update(x)
    again = GaussianStats.from_state(stats.state())
    assert again.count == 9 and torch.equal(again.mean, stats.mean) and torch.equal(again.comoment, stats.comoment)
    sums = SplitSums(3, total=9, num_classes=4)
    sums.update(x, torch.arange(9))
    rebuilt = SplitSums.from_state(sums.state())
    assert all(np.array_equal(p, q) for p, q in zip(rebuilt.sums(), sums.sums())) and rebuilt.total == 9
