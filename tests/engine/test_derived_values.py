"""Derived values through the engine (no network: a tiny stand-in extractor): the k-NN radii of
precision/recall and density/coverage are computed once per side and cached with the reference,
whose second use decodes and recomputes nothing; density/coverage streams a generated side
against the reference; the training-loop API and a statistics file serve the same numbers."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from prdc import compute_prdc
from torch_fidelity.metric_prc import prc_features_to_metric

import ganmetrics
from helpers import counted_decodes, smooth_images, write_images
from ganmetrics.extractors import registry
from ganmetrics.extractors.base import FeatureExtractor, encoder_option
from ganmetrics.cli import cli
from ganmetrics.errors import GanMetricsError
from ganmetrics.metrics.density_coverage import CoverageCounts
from ganmetrics.metrics.neighbours import NeighbourRadii, knn_radii
from ganmetrics.metrics.precision_recall import precision_recall
from ganmetrics.sources import open_source

N_REF, N_GEN = 24, 18
OPTIONS = {"workers": 0, "batch_size": 7, "weights": "random:0", "device": "cpu"}


@dataclass(frozen=True)
class TinyOptions:
    resize: str = encoder_option("tf", "The stand-in's one resize.", choices=("tf",))


class TinyEncoder(FeatureExtractor):
    """A stand-in for the default encoder (registered under its name by ``tiny``): an image's 4x4
    mean colours as its 48-wide "2048" embedding. No parameters: its weights are ``random:0``."""

    name = "inception"
    model = "tiny-test"
    features = {"2048": 48}
    roles = {"frechet": "2048", "embedding": "2048"}
    Options = TinyOptions

    @classmethod
    def architecture(cls):
        return torch.nn.Identity()

    def forward(self, network, pixels, wanted):
        x = pixels.permute(0, 3, 1, 2).float() / 255
        return {"2048": torch.nn.functional.adaptive_avg_pool2d(x, 4).reshape(len(x), -1)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("derived")
    return (write_images(root / "ref", smooth_images(N_REF, (16, 16), seed=41)),
            write_images(root / "gen", smooth_images(N_GEN, (16, 16), seed=42, offset=0.05)))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The tiny extractor in every API entry, a fresh cache, and the radii derivations made."""
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.ENCODERS, TinyEncoder.name, TinyEncoder)
    derived = []
    derive = NeighbourRadii.derive.__func__
    monkeypatch.setattr(NeighbourRadii, "derive",
                        classmethod(lambda cls, features, *args, **kw: derived.append(len(features))
                                    or derive(cls, features, *args, **kw)))
    return derived


def features_of(folder) -> np.ndarray:
    source = open_source(folder)
    pixels = torch.from_numpy(np.stack([source.read(i) for i in range(len(source))]))
    return TinyEncoder(weights="random:0")(pixels, {"2048"})["2048"].numpy()


def test_the_reference_radii_come_from_the_cache_with_no_decode_and_no_recompute(folders, tiny, tmp_path):
    ref, gen = folders
    with counted_decodes() as decoded:
        first = ganmetrics.evaluate(ref, gen, metrics=["pr", "dc"], **OPTIONS)
    assert decoded[0] == N_REF + N_GEN
    assert sorted(tiny) == sorted([N_REF, N_REF, N_GEN])  # P/R's radii of both sides, D/C's (k=5) of the reference
    tiny.clear()
    with counted_decodes() as decoded:
        second = ganmetrics.evaluate(ref, gen, metrics=["pr", "dc"], **OPTIONS)
    assert decoded[0] == N_GEN and tiny == [N_GEN]  # only the generated side: its images and its P/R radii
    assert second.results == first.results
    assert second.settings == {"resize": "tf", "pr_k": 3, "pr_variant": "exact", "dc_k": 5}

    # The numbers of the reference tools on the same features.
    real, fake = features_of(ref), features_of(gen)
    prc = prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), prc_neighborhood=3,
                                 prc_batch_size=10000, save_cpu_ram=True, verbose=False)
    assert (np.float32(first.results["precision"]), np.float32(first.results["recall"])) == (prc["precision"], prc["recall"])
    prdc = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    assert (first.results["density"], first.results["coverage"]) == (prdc["density"], prdc["coverage"])
    assert 0 < first.results["precision"] < 1 and 0 < first.results["coverage"] < 1

    # One entry per stored value: the reference's feature bank and each derivation's radii; listed as such.
    entries = sorted((tmp_path / "cache" / "stats").glob("*.npz"))
    assert len(entries) == 3
    listing = CliRunner().invoke(cli, ["cache", "list"]).stdout.splitlines()
    assert all(f"folder {ref}" in line and f"n={N_REF}" in line for line in listing)
    for holds in ("neighbour_radii distances=exact k=3", "neighbour_radii distances=prdc k=5", " feature_bank "):
        assert sum(holds in line for line in listing) == 1, listing
    radii = [np.load(path)[name] for path in entries for name in np.load(path).files if name.endswith("/radii")]
    assert [r.shape for r in radii] == [(N_REF,), (N_REF,)] and radii[0].dtype == np.float32


def test_the_adm_variant_has_its_own_radii_and_gives_the_features_level_numbers(folders, tiny, tmp_path):
    ref, gen = folders
    adm = ganmetrics.evaluate(ref, gen, metrics=["pr"], pr_variant="adm", **OPTIONS)
    real, fake = features_of(ref), features_of(gen)
    radii = [knn_radii(torch.from_numpy(x), 3, "adm").numpy() for x in (real, fake)]
    assert (adm.results["precision"], adm.results["recall"]) == precision_recall(real, radii[0], fake, radii[1], "adm")
    assert adm.settings["pr_variant"] == "adm"
    listing = CliRunner().invoke(cli, ["cache", "list"]).stdout
    assert "neighbour_radii distances=adm k=3" in listing and "distances=exact" not in listing


def test_a_damaged_radii_entry_is_reported_and_recomputed(folders, tiny, tmp_path):
    ref, gen = folders
    first = ganmetrics.evaluate(ref, gen, metrics=["dc"], **OPTIONS)
    (entry,) = [path for path in (tmp_path / "cache" / "stats").glob("*.npz")
                if any(name.endswith("/radii") for name in np.load(path).files)]
    np.savez(entry, n=np.int64(N_REF), meta=np.array("{}"), radii=np.full(N_REF, np.nan, np.float32))
    tiny.clear()
    with pytest.warns(UserWarning, match="corrupt cache entry .* recomputing"):
        again = ganmetrics.evaluate(ref, gen, metrics=["dc"], **OPTIONS)
    assert tiny == [N_REF] and again.results == first.results


def test_density_and_coverage_stream_in_the_training_loop_api_and_pr_needs_enough_images(folders, tiny):
    ref, gen = folders
    expected = ganmetrics.evaluate(ref, gen, metrics=["pr", "dc"], **OPTIONS).results
    images = np.stack([open_source(gen).read(i) for i in range(N_GEN)])
    metrics = ganmetrics.GenerativeMetrics(ref, metrics=["pr", "dc"], **OPTIONS)
    metrics.update(images[:5])
    metrics.update(images[5:])
    assert metrics.compute() == {"n": N_GEN, **expected}
    streaming = ganmetrics.GenerativeMetrics(ref, metrics=["dc"], **OPTIONS)
    assert {type(reducer) for reducer in streaming.reducers.values()} == {CoverageCounts}  # no generated features kept
    metrics.reset()
    metrics.update(images[:3])
    with pytest.raises(GanMetricsError, match=r"--pr-k 3 needs more than 3 images on the generated side \(.*\), got 3"):
        metrics.compute()
    with pytest.raises(GanMetricsError, match=r"--dc-k 30 needs more than 30 images on the reference side \(.*\), got 24"):
        ganmetrics.GenerativeMetrics(ref, metrics=["dc"], dc_k=30, **OPTIONS)


def test_a_statistics_file_with_features_serves_pr_and_dc(folders, tiny):
    ref, gen = folders
    expected = ganmetrics.evaluate(ref, gen, metrics=["pr", "dc"], cache=False, **OPTIONS).results
    stats = ganmetrics.compute_stats(ref, features=True, **OPTIONS)
    assert ganmetrics.evaluate(stats, gen, metrics=["pr", "dc"], **OPTIONS).results == expected
    with pytest.raises(GanMetricsError, match="statistics only.*stats --features"):
        ganmetrics.evaluate(ganmetrics.compute_stats(ref, **OPTIONS), gen, metrics=["dc"], **OPTIONS)
