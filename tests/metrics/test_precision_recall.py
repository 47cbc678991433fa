"""Precision/recall and density/coverage on the same features as the reference tools:
torch-fidelity's ``prc_features_to_metric`` (exact variant), a NumPy transcription of ADM's
``ManifoldEstimator`` (adm variant) and ``prdc.compute_prdc``; ties on a radius; distances held
one block at a time; bad options."""

import weakref

import numpy as np
import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_prc import calc_cdist_part, prc_features_to_metric

from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics import neighbours
from ganmetrics.metrics.density_coverage import DISTANCES, CoverageCounts, DensityCoverage, density_coverage
from ganmetrics.metrics.neighbours import adm_squared_distances, knn_radii, prdc_distances
from ganmetrics.metrics.precision_recall import PrecisionRecall, precision_recall


def pool3_like(n: int, seed: int, dims: int = 64, shift: float = 0.0) -> np.ndarray:
    """Non-negative float32 (n, dims) features, like averaged ReLU activations."""
    return (np.abs(np.random.default_rng(seed).normal(size=(n, dims))) * 0.3 + shift).astype(np.float32)


def lattice(n: int, seed: int, dims: int = 6, top: int = 3) -> np.ndarray:
    """float32 (n, dims) points with integer coordinates in [0, top): every distance is the
    square root of an integer, computed exactly, so many distances tie with a radius."""
    return np.random.default_rng(seed).integers(0, top, size=(n, dims)).astype(np.float32)


def ours(generated, reference, k, variant="exact", block=neighbours.BLOCK):
    radii = [knn_radii(torch.from_numpy(x), k, variant, block).numpy() for x in (reference, generated)]
    return precision_recall(reference, radii[0], generated, radii[1], variant, block=block)


def fidelity(generated, reference, k, batch_size=10000):
    out = prc_features_to_metric(torch.from_numpy(generated), torch.from_numpy(reference), prc_neighborhood=k,
                                 prc_batch_size=batch_size, save_cpu_ram=True, verbose=False)
    return out["precision"], out["recall"]


def as_float32(values) -> tuple:
    """torch-fidelity reports float32 means of its 0/1 flags: the float32 of the same count over N."""
    return tuple(float(np.float32(v)) for v in values)


# --- exact: torch-fidelity --------------------------------------------------------------------


@pytest.mark.parametrize("n_gen, n_ref, k, block", [(300, 260, 3, 10000), (120, 97, 5, 40), (90, 60, 1, 10000)])
def test_exact_variant_equals_torch_fidelity_on_the_same_features(n_gen, n_ref, k, block):
    generated, reference = pool3_like(n_gen, seed=1), pool3_like(n_ref, seed=2, shift=0.01)
    # The same radii bit for bit (torch-fidelity's own blocks and kthvalue) ...
    theirs_radii = torch.cat([calc_cdist_part(rows, torch.from_numpy(reference), block).kthvalue(k + 1).values
                              for rows in torch.from_numpy(reference).split(block)])
    assert torch.equal(knn_radii(torch.from_numpy(reference), k, "exact", block), theirs_radii)
    # ... and the same counts.
    got = ours(generated, reference, k, block=block)
    assert 0 < got[0] < 1 and 0 < got[1] < 1
    assert as_float32(got) == fidelity(generated, reference, k, block)
    assert got[0] * n_gen == round(got[0] * n_gen) and got[1] * n_ref == round(got[1] * n_ref)  # counts over N


def test_ties_on_a_radius_count_as_inside_as_in_torch_fidelity():
    generated, reference = lattice(70, seed=3), lattice(50, seed=4)
    got = ours(generated, reference, 3)
    assert as_float32(got) == fidelity(generated, reference, 3)
    # The ties are there and decide the result: with `<` instead of `<=` precision would differ.
    gen, ref = torch.from_numpy(generated), torch.from_numpy(reference)
    radii = knn_radii(ref, 3, "exact")
    distances = torch.cdist(gen, ref)
    assert int((distances == radii).sum()) > 20
    assert (distances < radii).any(dim=1).double().mean().item() != got[0]


# --- adm: a NumPy transcription of guided-diffusion's evaluations/evaluator.py ---------------


def adm_distance_block(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``DistanceBlock.pairwise_distances``: float16 squared distances (squares, norms and
    products rounded to float16, sums accumulated in float32), float32 where any is not finite."""
    def squared(u, v, dtype):
        with np.errstate(over="ignore", invalid="ignore"):  # float16 overflows are what the fallback catches
            u, v = u.astype(dtype), v.astype(dtype)
            norm_u = np.square(u).astype(np.float32).sum(axis=1).astype(dtype).reshape(-1, 1)
            norm_v = np.square(v).astype(np.float32).sum(axis=1).astype(dtype).reshape(1, -1)
            product = (u.astype(np.float32) @ v.astype(np.float32).T).astype(dtype)
            return np.maximum(norm_u - 2 * product + norm_v, dtype(0.0))

    block = squared(u, v, np.float16)
    return block.astype(np.float32) if np.isfinite(block).all() else squared(u, v, np.float32)


def adm_manifold_radii(features: np.ndarray, k: int, batch: int) -> np.ndarray:
    """``ManifoldEstimator.manifold_radii`` with nhood_sizes=(k,): (N, 1) float32."""
    n = len(features)
    radii = np.zeros([n, 1], dtype=np.float32)
    distance_batch = np.zeros([batch, n], dtype=np.float32)
    for begin1 in range(0, n, batch):
        end1 = min(begin1 + batch, n)
        for begin2 in range(0, n, batch):
            end2 = min(begin2 + batch, n)
            distance_batch[0:end1 - begin1, begin2:end2] = adm_distance_block(features[begin1:end1],
                                                                              features[begin2:end2])
        radii[begin1:end1, :] = np.partition(distance_batch[0:end1 - begin1, :], np.arange(k + 1), axis=1)[:, [k]]
    return radii


def adm_evaluate_pr(features_1, radii_1, features_2, radii_2, batch: int) -> tuple[float, float]:
    """``ManifoldEstimator.evaluate_pr`` (features_1 the reference): (precision, recall)."""
    features_1_status = np.zeros([len(features_1), radii_2.shape[1]], dtype=bool)
    features_2_status = np.zeros([len(features_2), radii_1.shape[1]], dtype=bool)
    for begin_1 in range(0, len(features_1), batch):
        end_1 = begin_1 + batch
        for begin_2 in range(0, len(features_2), batch):
            end_2 = begin_2 + batch
            dist32 = adm_distance_block(features_1[begin_1:end_1], features_2[begin_2:end_2])[..., None]
            features_1_status[begin_1:end_1] |= np.any(dist32 <= radii_2[begin_2:end_2], axis=1)
            features_2_status[begin_2:end_2] |= np.any(dist32 <= radii_1[begin_1:end_1][:, None], axis=0)
    return (float(np.mean(features_2_status.astype(np.float64), axis=0)[0]),
            float(np.mean(features_1_status.astype(np.float64), axis=0)[0]))


def quantised(n: int, seed: int, dims: int = 64, overflow_rows: slice = slice(0, 0)) -> np.ndarray:
    """float32 multiples of 1/8 in [0, 4): products and their float32 sums are exact in any
    order, so only the float16 roundings ADM makes can move a distance; ``overflow_rows`` x 64
    (to 248), whose squared norms overflow float16, so their blocks fall back to float32."""
    x = np.random.default_rng(seed).integers(0, 32, size=(n, dims)).astype(np.float32) / 8
    x[overflow_rows] *= 64
    return x


def test_adm_variant_equals_a_numpy_transcription_of_adms_manifold_estimator():
    batch, k = 32, 3  # several row and column blocks (ADM's are 10,000)
    reference = quantised(70, seed=5)
    generated = quantised(90, seed=6, overflow_rows=slice(32, 40))
    ref_radii, gen_radii = adm_manifold_radii(reference, k, batch), adm_manifold_radii(generated, k, batch)
    expected = adm_evaluate_pr(reference, ref_radii, generated, gen_radii, batch)

    for features, radii in ((reference, ref_radii), (generated, gen_radii)):
        assert np.array_equal(knn_radii(torch.from_numpy(features), k, "adm", batch).numpy(), radii[:, 0])
    assert ours(generated, reference, k, "adm", batch) == expected
    assert ours(generated, reference, k, "adm", batch) != ours(generated, reference, k, "exact", batch)

    # What the features exercise: float16 rounding in the plain blocks, the float32 fallback in
    # the blocks holding the overflowing rows (only those), and squared distances throughout.
    def squared_distances(rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(adm's, exact float64) squared distances of a block."""
        ref, gen = torch.from_numpy(reference[rows]), torch.from_numpy(generated[cols])
        return adm_squared_distances(ref, gen).double(), ((ref.double()[:, None] - gen.double()) ** 2).sum(dim=2)

    plain, exact = squared_distances(slice(0, 32), slice(0, 32))
    assert (plain != exact).mean(dtype=torch.float64) > 0.5 and (plain - exact).abs().max() <= 1.5
    with np.errstate(over="ignore"):
        assert np.isinf(np.square(generated[32:40]).sum(axis=1).astype(np.float16)).all()  # float16 norms overflow
    fallback, exact = squared_distances(slice(0, 32), slice(32, 64))
    assert torch.allclose(fallback, exact, rtol=1e-6, atol=0)  # float32: float16 would be infinite or 1e-3 off


# --- density and coverage: prdc ----------------------------------------------------------------


def streamed_density_coverage(reference: np.ndarray, generated: np.ndarray, k: int, batch: int, block: int):
    """Density and coverage as a generated side streams: ``CoverageCounts`` fed in batches, in two halves merged."""
    radii = knn_radii(torch.from_numpy(reference), k, DISTANCES, block)
    first, second = (CoverageCounts(torch.from_numpy(reference), radii, k, block) for _ in range(2))
    for start in range(0, len(generated), batch):
        (first if start < len(generated) // 2 else second).update(torch.from_numpy(generated[start:start + batch]))
    return density_coverage(*first.merge(second).result(), k)


@pytest.mark.parametrize("kind", ["continuous", "lattice"])
def test_density_and_coverage_equal_prdc(kind):
    if kind == "continuous":
        reference, generated = pool3_like(200, seed=7), pool3_like(150, seed=8, shift=0.02)
    else:  # many exact ties: prdc's strict `<` leaves them out
        reference, generated = lattice(120, seed=9), lattice(100, seed=10)
    expected = compute_prdc(real_features=reference, fake_features=generated, nearest_k=5)
    density, coverage = streamed_density_coverage(reference, generated, 5, batch=23, block=64)
    assert 0 < coverage < 1 and density > 0
    assert (density, coverage) == (expected["density"], expected["coverage"])
    if kind == "lattice":  # the ties are there and decide: `<=` would count more
        ref = torch.from_numpy(reference)
        radii = knn_radii(ref, 5, DISTANCES)
        cross = prdc_distances(ref, torch.from_numpy(generated))
        assert int((cross == radii[:, None]).sum()) > 20
        assert (cross <= radii[:, None]).sum().item() / (5 * len(generated)) != density


def test_a_repeated_feature_gives_zero_density_and_coverage_as_prdc():
    same = np.ones((30, 16), np.float32)  # prdc issue #7: every radius 0, nothing strictly inside
    expected = compute_prdc(real_features=same, fake_features=same, nearest_k=5)
    assert streamed_density_coverage(same, same, 5, batch=10, block=64) == (0.0, 0.0)
    assert (expected["density"], expected["coverage"]) == (0.0, 0.0)


# --- one block at a time -----------------------------------------------------------------------


def test_distances_are_held_one_bounded_block_at_a_time(monkeypatch):
    """Each block at most block x block, each freed before the next is made, and the results
    those of one unblocked block (lattice and quantised features: every distance kind is exact
    on them, in any block shape)."""
    blocks, alive = [], []
    original = neighbours.distances

    def recorded(u, v, variant):
        alive.append(sum(ref() is not None for ref in blocks))
        out = original(u, v, variant)
        blocks.append(weakref.ref(out))
        assert out.shape[0] <= 16 and out.shape[1] <= 16
        return out

    for variant, features in (("exact", lattice), ("adm", quantised)):
        generated, reference = features(90, seed=11), features(70, seed=12)
        whole = ours(generated, reference, 3, variant, block=10000)
        unbounded = streamed_density_coverage(reference, generated, 5, batch=90, block=10000)
        monkeypatch.setattr(neighbours, "distances", recorded)
        assert ours(generated, reference, 3, variant, block=16) == whole
        assert streamed_density_coverage(reference, generated, 5, batch=9, block=16) == unbounded
        monkeypatch.setattr(neighbours, "distances", original)
    assert len(blocks) > 100 and max(alive) == 0  # never a second block alive


# --- options and counts ------------------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: PrecisionRecall(pr_k=0), "--pr-k must be at least 1, got 0"),
    (lambda: PrecisionRecall(pr_variant="fast"), "--pr-variant 'fast' is unknown: use one of exact, adm"),
    (lambda: DensityCoverage(dc_k=0), "--dc-k must be at least 1, got 0"),
    (lambda: PrecisionRecall().check_counts(40, 3), "--pr-k 3 needs more than 3 images on the generated side"),
    (lambda: PrecisionRecall(pr_k=5).check_counts(5, None), "--pr-k 5 needs more than 5 images on the reference"),
    (lambda: DensityCoverage().check_counts(5, 100), "--dc-k 5 needs more than 5 images on the reference side"),
])
def test_bad_options_and_too_few_images_are_one_line_errors(make, message):
    with pytest.raises(GanMetricsError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_counts_that_allow_the_radii_pass():
    PrecisionRecall(pr_k=3).check_counts(4, 4)
    PrecisionRecall().check_counts(None, None)
    DensityCoverage(dc_k=5).check_counts(6, 1)  # the generated side has no radii
