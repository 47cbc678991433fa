"""The encoder seam is real: an encoder defined here, in ~15 lines, runs every metric through the
command line and the API — eval, stats, the cache, shards, the training-loop tracker — with no
edit outside this file, beside the Inception in the same pass (each image decoded once); and
every bad request about encoders is one line, exit 2, with nothing written."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from prdc import compute_prdc

import ganmetrics
from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.extractors import registry
from ganmetrics.extractors.base import FeatureExtractor
from ganmetrics.metrics.fid import frechet_distance
from ganmetrics.metrics.kid import kernel_inception_distance
from ganmetrics.sources import open_source


class Toy(FeatureExtractor):
    """A fixed random projection of each image's 16 x 16 area-average downsample: 32 features."""

    name, model = "toy", "toy-projection-16x16"
    features = {"proj": 32}
    roles = {"frechet": "proj", "embedding": "proj"}

    @classmethod
    def architecture(cls):
        return torch.nn.Linear(16 * 16 * 3, 32, bias=False)

    def forward(self, network, pixels, wanted):
        x = F.interpolate(pixels.permute(0, 3, 1, 2).float(), size=(16, 16), mode="area")
        return {"proj": network(x.flatten(1) / 255)}


N = 40
TOY = ("--weights", "toy=random:0")
FAST = ("--weights", "random:0", "--dims", "64", "--quiet", "--workers", "0", *TOY)
KID = ("--kid-subsets", "5", "--kid-subset-size", "20")


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.ENCODERS, Toy.name, Toy)
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("seam")
    return (write_images(root / "a", smooth_images(N, (24, 24), seed=61)),
            write_images(root / "b", smooth_images(N, (20, 28), seed=62, offset=0.2)))


def toy_features(folder) -> np.ndarray:
    """The toy's features of a folder's images, straight from its network (no engine)."""
    source = open_source(folder)
    pixels = torch.from_numpy(np.stack([source.read(i) for i in range(len(source))]))
    return Toy(weights="random:0")(pixels, {"proj"})["proj"].double().numpy()


def run_json(*args, options=FAST):
    result = run_cli(*args, "--json", options=options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_any_metric_runs_on_the_toy_encoder_and_equals_its_formula_on_the_toy_features(sets):
    a, b = sets
    row = run_json("eval", a, b, "--metrics", "fid@toy,kid@toy,pr@toy,dc@toy", *KID, "--no-cache")
    assert set(row["results"]) == {"fid@toy", "kid@toy", "kid_std@toy", "precision@toy", "recall@toy",
                                   "density@toy", "coverage@toy"}
    fa, fb = toy_features(a), toy_features(b)
    expected = frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
    assert row["results"]["fid@toy"] == pytest.approx(expected, rel=1e-6)
    kid, _ = kernel_inception_distance(fb.astype(np.float32), fa.astype(np.float32), 5, 20)
    assert row["results"]["kid@toy"] == pytest.approx(kid, rel=1e-5, abs=1e-9)
    prdc = compute_prdc(real_features=fa.astype(np.float32), fake_features=fb.astype(np.float32), nearest_k=5)
    assert abs(row["results"]["density@toy"] - prdc["density"]) <= 1 / N
    assert abs(row["results"]["coverage@toy"] - prdc["coverage"]) <= 1 / N
    assert row["settings"]["dims@toy"] == 32 and row["settings"]["kid_subset_size@toy"] == 20
    toy_weights = ganmetrics.extractors.weights.random_weights(Toy, 0).sha256
    assert row["weights"] == {"sha256": toy_weights, "calibrated": False}  # the run's only encoder
    assert row["encoders"] == {"toy": {"extractor": "toy-projection-16x16", "options": {},
                                       "weights": {"sha256": toy_weights, "calibrated": False}}}


def test_one_pass_decodes_each_image_once_for_the_inception_and_the_toy(sets):
    a, b = sets
    with counted_decodes() as decoded:
        both = run_json("eval", a, b, "--metrics", "fid,fid@toy,is", "--splits", "2", "--no-cache")
    assert decoded[0] == 2 * N
    alone = run_json("eval", a, b, "--metrics", "fid,is", "--splits", "2", "--no-cache")
    toy = run_json("eval", a, b, "--metrics", "fid@toy", "--no-cache")
    assert both["results"] == {**alone["results"], "fid@toy": toy["results"]["fid@toy"]}
    assert list(both["encoders"]) == ["inception", "toy"] and both["weights"] == alone["weights"]
    assert both["settings"] == {**alone["settings"], "dims@toy": 32}


def test_a_statistics_file_of_both_encoders_serves_both(sets, tmp_path):
    a, b = sets
    written = run_json("stats", a, "--metrics", "fid,fid@toy", "-o", tmp_path / "ref.npz")
    assert written["dims"] == 64 and written["encoders"]["toy"]["dims"] == 32
    with np.load(tmp_path / "ref.npz", allow_pickle=False) as data:  # pytorch-fid reads the Inception's as ever
        assert data["mu"].shape == (64,) and data["toy/proj/gaussian/sigma"].shape == (32, 32)
    folders = run_json("eval", a, b, "--metrics", "fid,fid@toy", "--no-cache")
    from_file = run_json("eval", tmp_path / "ref.npz", b, "--metrics", "fid,fid@toy", "--no-cache")
    assert from_file["results"] == folders["results"] and from_file["n_a"] == N
    message = one_line_error(run_cli("eval", tmp_path / "ref.npz", b, "--metrics", "fid@toy",
                                     options=(*FAST[:-2], "--weights", "toy=random:1")))
    assert "--allow-mismatch" in message and "weights_sha256" in message


def test_the_reference_side_of_the_toy_comes_from_the_cache(sets, tmp_path):
    a, b = sets
    first = run_json("eval", a, b, "--metrics", "fid@toy,kid@toy", *KID)
    with counted_decodes() as decoded:
        second = run_json("eval", a, b, "--metrics", "fid@toy,kid@toy", *KID)
    assert decoded[0] == N and second["results"] == first["results"]
    listing = run_cli("cache", "list", options=()).stdout
    assert "toy proj gaussian" in listing and "toy proj feature_bank" in listing


def test_shards_of_the_toy_merge_into_the_whole_source_s_statistics(sets, tmp_path):
    a, _ = sets
    options = ("--metrics", "fid@toy", "--features", "--batch-size", "8")
    whole = tmp_path / "whole.npz"
    run_json("stats", a, *options, "-o", whole)
    parts = [tmp_path / f"part-{k}.npz" for k in range(3)]
    for k, part in enumerate(parts):
        run_json("stats", a, *options, "--shard", f"{k}/3", "-o", part)
    assert run_cli("stats", "merge", *parts, "-o", tmp_path / "merged.npz", options=()).exit_code == 0
    with np.load(whole) as expected, np.load(tmp_path / "merged.npz") as merged:
        assert sorted(merged.files) == sorted(expected.files)
        np.testing.assert_allclose(merged["toy/proj/gaussian/sigma"], expected["toy/proj/gaussian/sigma"], rtol=1e-12)
        assert np.array_equal(merged["toy/proj/feature_bank/features"], expected["toy/proj/feature_bank/features"])


def test_the_api_and_the_training_loop_tracker_take_the_toy(sets):
    a, b = sets
    options = dict(weights={"inception": "random:0", "toy": "random:0"}, workers=0, cache=False)
    cli = run_json("eval", a, b, "--metrics", "fid@toy,pr@toy", "--no-cache")
    api = ganmetrics.evaluate(a, b, ["fid@toy", "pr@toy"], **options)
    assert api.results == cli["results"]
    tracker = ganmetrics.GenerativeMetrics(a, metrics=["fid@toy", "pr@toy"], **options)
    source = open_source(b)
    tracker.update(np.stack([source.read(i) for i in range(len(source))]))
    # The tracker feeds its images in one batch of their own size; the engine decoded them by shape:
    # the same features, so the same numbers.
    assert tracker.compute() == {"n": N, **cli["results"]}
    assert not tracker.calibrated


@pytest.mark.parametrize("args, expected", [
    (("eval", "A", "B", "--metrics", "fid@nosuch"), "unknown encoder 'nosuch'"),
    (("eval", "A", "B", "--metrics", "is@toy"), "the encoder toy cannot serve is"),
    (("eval", "A", "B", "--metrics", "fid", "--weights", "nosuch=x.pth"), "unknown encoder 'nosuch'"),
    (("eval", "A", "B", "--metrics", "fid@toy", "--resize", "toy=tf"), "the encoder toy has no option resize"),
    (("eval", "A", "B", "--metrics", "fid", "--resize", "bicubic"), "--resize 'bicubic' is unknown"),
    (("stats", "A", "--metrics", "sfid@toy", "-o", "OUT"), "the encoder toy cannot serve sfid"),
    (("stats", "A", "--metrics", "fid", "--dims", "toy=64", "-o", "OUT"), "the encoder toy has no option dims"),
])
def test_bad_encoder_requests_are_one_line_errors_and_write_nothing(sets, tmp_path, args, expected):
    a, b = sets
    out = tmp_path / "out.npz"
    replaced = [str({"A": a, "B": b, "OUT": out}.get(arg, arg)) for arg in args]
    with counted_decodes() as decoded:
        message = one_line_error(run_cli(*replaced))
    assert expected in message
    assert decoded[0] == 0 and not out.exists() and not (tmp_path / "cache").exists()
