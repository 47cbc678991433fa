"""Memorisation checks against a brute-force replay (the full distance matrix in NumPy float64)
and against dgm-eval's own ``compute_authpct`` (golden values: ``tests/golden/README.md``)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.memorisation import closest_pairs, memorisation, nearest_references, reference_gaps

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "memorisation_authpct.npz"
EXACT_COPIES = {5: 3, 12: 17}  # generated row: the reference row it copies
NEAR_COPIES = {20: 41, 33: 55}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for this module (as ``tests/conftest.py``'s fixture of that name, which
    this branch cannot import): small products run fastest so on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def memorisation_sets(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference float32 (60, 32), generated float32 (40, 32)) with exact and near copies of
    reference rows among the generated ones; the inputs of the golden values."""
    rng = np.random.RandomState(seed)
    reference = rng.randn(60, 32).astype(np.float32)
    generated = rng.randn(40, 32).astype(np.float32)
    generated[[5, 12]] = reference[[3, 17]]
    generated[[20, 33]] = reference[[41, 55]] + (0.05 * rng.randn(2, 32)).astype(np.float32)
    return reference, generated


def brute_force(reference: np.ndarray, generated: np.ndarray):
    """dgm-eval's procedure replayed on full float64 distance matrices: (nearest reference
    index (M,), d1 (M,), d2 (N,), authpct, fraction with d1 < d2 of the matched reference)."""
    ref, gen = reference.astype(np.float64), generated.astype(np.float64)
    real = np.sqrt(((ref[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(real, np.inf)
    to_generated = np.sqrt(((ref[:, None, :] - gen[None, :, :]) ** 2).sum(-1))  # reference rows, as dgm-eval
    nearest, d1, d2 = to_generated.argmin(axis=0), to_generated.min(axis=0), real.min(axis=0)
    return nearest, d1, d2, 100 * np.mean(d2[nearest] < d1), np.mean(d1 < d2[nearest])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("block", [10_000, 7])
def test_memorisation_equals_a_brute_force_replay_in_any_block_size(seed, block):
    reference, generated = memorisation_sets(seed)
    result = memorisation(generated, reference, block=block)
    nearest, d1, d2, authpct, closer = brute_force(reference, generated)
    assert np.array_equal(result.nearest, nearest)
    # float32 |x|² - 2xᵀy + |y|² (torch.cdist, as dgm-eval) loses up to about sqrt(ε(|x|² + |y|²))
    # to cancellation: an exact copy is 0.003 away here, not 0.
    cancellation = np.sqrt(8 * np.finfo(np.float32).eps * np.square(reference).sum(axis=1).max())
    np.testing.assert_allclose(result.distance, d1, rtol=1e-5, atol=cancellation)
    np.testing.assert_allclose(result.gaps, d2, rtol=1e-5, atol=cancellation)
    assert result.authpct == pytest.approx(authpct, abs=1e-4) and result.closer_fraction == closer


@pytest.mark.parametrize("seed", [0, 1])
def test_authpct_equals_dgm_evals_compute_authpct(seed):
    reference, generated = memorisation_sets(seed)
    assert memorisation(generated, reference).authpct == np.load(GOLDEN)[f"authpct_seed{seed}"]


def test_exact_and_near_copies_are_the_closest_pairs_and_pull_authpct_below_100():
    reference, generated = memorisation_sets(0)
    result = memorisation(generated, reference)
    pairs = closest_pairs(result.nearest, result.distance, 6)
    copies = {**EXACT_COPIES, **NEAR_COPIES}
    assert {(g, r) for g, r, _ in pairs[:4]} == set(copies.items())
    assert {g for g, _, _ in pairs[:2]} == set(EXACT_COPIES)  # exact copies first
    assert [d for _, _, d in pairs] == sorted(d for _, _, d in pairs)
    assert all(pairs[4][2] > 10 * d for _, _, d in pairs[:4])
    assert result.authpct < 100 and result.closer_fraction >= len(copies) / len(generated)
    for g in copies:  # a copy is never authentic, and is closer than its reference's own neighbour
        assert result.distance[g] < result.gaps[result.nearest[g]]


def test_closest_pairs_stop_at_the_generated_count_and_refuse_a_count_below_one():
    reference, generated = memorisation_sets(1)
    nearest, distance = nearest_references(generated, reference)
    assert len(closest_pairs(nearest, distance, 1000)) == len(generated)
    with pytest.raises(GanMetricsError, match="positive number"):
        closest_pairs(nearest, distance, 0)


def test_reference_gaps_skip_each_images_own_distance_but_not_a_duplicates():
    reference = np.float32([[0, 0], [3, 4], [3, 4], [10, 0]])
    np.testing.assert_allclose(reference_gaps(reference), [5, 0, 0, np.hypot(7, 4)], atol=1e-6)
    np.testing.assert_allclose(reference_gaps(reference, block=3), [5, 0, 0, np.hypot(7, 4)], atol=1e-6)


def test_too_few_reference_or_generated_images_are_refused_in_one_line():
    reference, generated = memorisation_sets(0)
    with pytest.raises(GanMetricsError, match="at least 2 reference images .*, got 1"):
        memorisation(generated, reference[:1])
    with pytest.raises(GanMetricsError, match="at least 1 generated image"):
        memorisation(generated[:0], reference)
