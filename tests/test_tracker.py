"""The training-loop API: GenerativeMetrics gives the CLI's FID on the same images written to
disk, accepts every value range, works under no_grad, and leaves the caller's model mode and RNG
state alone; reset() clears the generated side only."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from helpers import smooth_images, write_images
from ganmetrics import api
from ganmetrics.cli import cli
from ganmetrics.errors import GanMetricsError
from ganmetrics.store.statsfile import save_statistics
from ganmetrics.tracker import GenerativeMetrics

FAST = {"weights": "random:0", "dims": 64, "workers": 0, "batch_size": 8}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("tracker") / "ref", smooth_images(10, (32, 32), seed=31))


@pytest.fixture(scope="module")
def generated() -> torch.Tensor:
    """10 float images in [-1, 1], (N, 3, 32, 32), as a tanh generator would give."""
    pixels = torch.from_numpy(smooth_images(10, (32, 32), seed=32, offset=0.1)).permute(0, 3, 1, 2)
    noise = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(0)) * 0.02
    return (pixels.double() / 127.5 - 1 + noise).clamp(-1, 1).float()


@pytest.fixture(scope="module")
def tracker(reference):
    return GenerativeMetrics(reference, inception_score=False, **FAST)


@pytest.mark.parametrize("resize", ["tf", "clean"])
def test_same_fid_as_the_cli_on_the_same_images_written_to_disk(reference, generated, tmp_path, resize):
    pixels = ((generated + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{i:03d}.png")
    result = CliRunner().invoke(cli, ["fid", str(reference), str(tmp_path), "--json", "--weights", "random:0",
                                      "--dims", "64", "--resize", resize, "--quiet", "--workers", "0"])
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)["value"]

    metrics = GenerativeMetrics(reference, inception_score=False, **{**FAST, "resize": resize})
    metrics.update(generated[:5])  # batches of any size
    metrics.update(generated[5:])
    scores = metrics.compute()
    assert scores["n"] == 10 and set(scores) == {"fid", "n"}
    assert scores["fid"] == pytest.approx(expected, rel=1e-6)


def test_every_value_range_and_layout_gives_the_same_fid(tracker, generated):
    uint8 = ((generated[:8] + 1) * 127.5).round().to(torch.uint8)
    variants = [
        (uint8, None),
        (uint8.float() / 255, "0,1"),
        (uint8.double() / 127.5 - 1, "-1,1"),
        (uint8.permute(0, 2, 3, 1).numpy(), "uint8"),  # channels last, NumPy
    ]
    values = []
    for images, value_range in variants:
        tracker.reset()
        tracker.update(images, value_range=value_range)
        values.append(tracker.compute()["fid"])
    assert values == [values[0]] * len(values)


def test_update_keeps_a_tensor_batch_in_torch_from_the_caller_to_the_reducers(tracker, generated, monkeypatch):
    # No NumPy round trip: a batch on a GPU goes through the network and into the sums there.
    tracker.reset()
    tracker.update(generated)
    expected = tracker.compute()["fid"]
    tracker.reset()

    def no_numpy(self, *args, **kwargs):
        raise AssertionError("update went through NumPy")

    monkeypatch.setattr(torch.Tensor, "numpy", no_numpy)
    tracker.update(generated)
    monkeypatch.undo()
    assert tracker.compute()["fid"] == expected


def test_update_under_no_grad_leaves_model_mode_and_rng_alone(reference, generated):
    rng_before = torch.get_rng_state()
    metrics = GenerativeMetrics(reference, inception_score=False, **FAST)
    assert torch.equal(torch.get_rng_state(), rng_before)  # reading the reference drew nothing

    model = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Tanh()).train()
    with torch.no_grad():
        images = model(generated.atanh().clamp(-5, 5))
        rng_before = torch.get_rng_state()
        metrics.update(images)
        scores = metrics.compute()
    assert model.training and torch.equal(torch.get_rng_state(), rng_before)
    assert scores["n"] == 10 and np.isfinite(scores["fid"])

    with_grad = model(generated.atanh().clamp(-5, 5).requires_grad_())  # a graph is fine too
    rng_before = torch.get_rng_state()
    metrics.update(with_grad)
    assert torch.equal(torch.get_rng_state(), rng_before) and metrics.compute()["n"] == 20


def test_reset_clears_the_generated_side_only(tracker, generated):
    tracker.reset()
    tracker.update(generated)
    first = tracker.compute()["fid"]
    reference_mu = tracker.reference.mu.copy()
    tracker.reset()
    with pytest.raises(GanMetricsError, match="at least 2 generated images"):
        tracker.compute()
    tracker.update(generated)
    assert tracker.compute()["fid"] == first
    assert np.array_equal(tracker.reference.mu, reference_mu)


def test_reference_from_a_statistics_file(tracker, generated, tmp_path):
    save_statistics(tmp_path / "ref.npz", tracker.reference)
    from_file = GenerativeMetrics(tmp_path / "ref.npz", inception_score=False, **FAST)
    tracker.reset()
    tracker.update(generated)
    from_file.update(generated)
    assert from_file.compute()["fid"] == tracker.compute()["fid"]


def test_compute_gives_numbers_only_not_a_metrics_details(reference, generated):
    """FID∞ returns its fitted points beside its value: compute() keeps the values (eval's
    results), equal to the API's on the same images."""
    options = {**FAST, "inf_min": 4, "inf_points": 3}
    metrics = GenerativeMetrics(reference, metrics=["fid", "fid_inf"], **options)
    metrics.update(generated)
    out = metrics.compute()
    assert list(out) == ["n", "fid", "fid_inf", "fid_inf_se"]
    uint8 = ((generated + 1) * 127.5).round().to(torch.uint8)
    expected = api.evaluate(reference, uint8, metrics=["fid", "fid_inf"], cache=False, **options).results
    assert out["fid_inf"] == pytest.approx(expected["fid_inf"], rel=1e-6)
    assert out["fid"] == pytest.approx(expected["fid"], rel=1e-6)


def test_reference_is_fids_gaussian_whichever_metric_comes_first(tracker, reference):
    """sFID's spatial Gaussian sits beside FID's in the reference side: `reference` is FID's."""
    metrics = GenerativeMetrics(reference, metrics=["sfid", "fid"], **FAST)
    assert metrics.reference.dims == 64
    np.testing.assert_array_equal(metrics.reference.sigma, tracker.reference.sigma)


def test_inception_score_with_one_split_equals_the_api(tracker, generated):
    uint8 = ((generated[:4] + 1) * 127.5).round().to(torch.uint8)
    metrics = GenerativeMetrics(tracker.reference, splits=1, **FAST)
    metrics.update(uint8[:2])
    metrics.update(uint8[2:])
    scores = metrics.compute()
    expected = api.inception_score(uint8, splits=1, **{**FAST, "batch_size": 2})  # one batch shape: faster
    assert scores["is_mean"] == pytest.approx(expected.mean, rel=1e-6)
    assert scores["is_std"] == 0.0 and scores["n"] == 4


@pytest.mark.parametrize("images, value_range, message", [
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "-1,1", "needs a float tensor"),
    (torch.zeros(2, 3, 8, 8), "uint8", "needs a uint8 tensor"),
    (torch.zeros(2, 3, 8, 8), "0,255", "unknown"),
    (torch.zeros(2, 4, 8, 8), None, "shaped"),
    (torch.zeros(3, 8, 8), None, "shaped"),
])
def test_bad_batches_are_one_line_errors(tracker, images, value_range, message):
    with pytest.raises(GanMetricsError, match=message):
        tracker.update(images, value_range=value_range)


def test_unknown_option_is_a_one_line_error(reference):
    with pytest.raises(GanMetricsError, match="unexpected keyword .*help\\(ganmetrics.RunConfig\\)"):
        GenerativeMetrics(reference, colour="blue")
