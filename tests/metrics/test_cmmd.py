"""CMMD: google-research's formula (``cmmd/distance.py``), every image counted, in blocks whose
memory does not grow with the number of images."""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from cmmd_reference import google_research_embeddings, google_research_mmd
from ganmetrics.errors import GanMetricsError
from ganmetrics.extractors.registry import build_encoder
from ganmetrics.metrics.base import Need
from ganmetrics.metrics.cmmd import CMMD, cmmd
from ganmetrics.metrics.reducers import FeatureBank


def clip_like(n: int, seed: int, shift: float = 0.0, dims: int = 768) -> np.ndarray:
    """float32 (n, dims) unit vectors clustered like CLIP embeddings (a common direction, plus noise)."""
    rng = np.random.default_rng(seed)
    common = np.random.default_rng(12345).standard_normal(dims)
    x = 3 * common + rng.standard_normal((n, dims)) + shift * np.arange(dims) / dims
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_cmmd_equals_google_researchs_formula_on_every_image():
    reference, generated = clip_like(100, 0), clip_like(77, 1, shift=0.5)
    expected = google_research_mmd(reference, generated)
    assert expected > 0.05  # of the size CMMD has between image sets, far from float64 noise
    assert cmmd(reference, generated) == pytest.approx(expected, rel=1e-9)


def test_google_research_drops_the_last_partial_batch_of_32_and_we_do_not():
    reference, generated = clip_like(100, 0), clip_like(77, 1, shift=0.5)
    theirs = google_research_mmd(google_research_embeddings(reference), google_research_embeddings(generated))
    # On the 96 and 64 images it keeps, the same value; on all 100 and 77, ours counts them all.
    assert cmmd(reference[:96], generated[:64]) == pytest.approx(theirs, rel=1e-9)
    assert cmmd(reference, generated) == pytest.approx(google_research_mmd(reference, generated), rel=1e-9)
    assert cmmd(reference, generated) != pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("block", [1, 7, 16, 48, 64, 1000])
def test_blocked_sums_equal_the_full_matrices_whether_or_not_the_block_divides_the_sizes(block):
    reference, generated = clip_like(64, 2), clip_like(48, 3, shift=0.3)
    full = google_research_mmd(reference, generated)
    assert cmmd(reference, generated, block=block) == pytest.approx(full, rel=1e-9)


def test_two_points_each_give_the_closed_form():
    x0, y0 = np.eye(4, dtype=np.float32)[0] * 3, np.eye(4, dtype=np.float32)[1] * 4
    value = cmmd(np.stack([x0, x0]), np.stack([y0, y0]), block=1)
    assert value == pytest.approx(1000 * (2 - 2 * np.exp(-0.005 * 25)), rel=1e-12)


def test_identical_sets_give_zero():
    x = clip_like(50, 4)
    assert abs(cmmd(x, x.copy(), block=16)) < 1e-9


class LargestTensor(TorchFunctionMode):
    """Records the most elements of any tensor a torch function returns while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


@pytest.mark.parametrize("n", [320, 640])
def test_no_tensor_grows_with_the_number_of_images_squared(n):
    block, dims = 64, 4
    reference, generated = clip_like(n, 5, dims=dims), clip_like(n - 11, 6, shift=1.0, dims=dims)
    with LargestTensor() as mode:
        value = cmmd(reference, generated, block=block)
    assert value == pytest.approx(google_research_mmd(reference, generated), rel=1e-9)
    # The largest tensor is one block of kernel values at either size (the banks are smaller here).
    assert mode.largest == block * block < n * n / 20


def test_fewer_than_two_images_on_a_side_is_refused_in_one_line():
    x = clip_like(5, 7)
    for reference, generated in ((x[:1], x), (x, x[:1]), (x[:0], x)):
        with pytest.raises(GanMetricsError, match="at least 2 images on each side") as err:
            cmmd(reference, generated)
        assert "\n" not in str(err.value)
    with pytest.raises(GanMetricsError, match=r"got 1 reference and an unknown number of generated"):
        CMMD().check_counts(1, None)
    CMMD().check_counts(2, None)
    CMMD().check_counts(None, None)


def test_metric_needs_its_encoders_feature_bank_and_computes_cmmd_from_exactly_it():
    metric = CMMD()
    assert (metric.name, metric.sides, metric.keys, metric.interval_keys) == ("cmmd", 2, ("cmmd",), ("cmmd",))
    assert metric.encoder_name == "clip-vitl14-336" and metric.label == "cmmd"
    encoder = build_encoder("clip-vitl14-336")  # builds nothing: the needs are named without a network
    need, = metric.needs(encoder)
    assert need == Need("clip-vitl14-336", "embedding", FeatureBank) and metric.reference_needs(encoder) == [need]
    reference, generated = clip_like(40, 8), clip_like(33, 9, shift=0.2)
    assert metric.compute({need: reference}, {need: generated}) == {
        "cmmd": pytest.approx(google_research_mmd(reference, generated), rel=1e-9)}
    assert CMMD(encoder="clip-vitb32").label == "cmmd@clip-vitb32"
    with pytest.raises(GanMetricsError, match="--cmmd-block must be at least 1"):
        CMMD(cmmd_block=0)
