"""fd_dinov2, and every metric on dinov2-vitl14, through the command line and the API: the golden
FD_DINOv2 of EDM2's statistics code on the hub model's features, one pass beside the Inception,
KID, precision/recall and density/coverage on its features with ``--ci``, both resize modes named
in the output, the statistics file and the cache key, the statistics round trip, EDM2's ``.pkl``
reference statistics read as plain data only, and gates.

The encoder is the reduced-depth copy (``dinov2_golden.DINOv2Depth2``: the hub's first 2 blocks,
full width) registered as dinov2-vitl14 for the whole module, so ``fd_dinov2`` runs it.
"""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

import ganmetrics
from dinov2_golden import BATCH_IMAGES, FD_SETS, GOLDEN, SINGLE_IMAGES, DINOv2Depth2, set_features, write_set
from helpers import FAST_OPTIONS, counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.extractors import registry
from ganmetrics.store.states import read_state_file

N_A, N_B = map(len, FD_SETS)
OPTIONS = (*FAST_OPTIONS, "--weights", "dinov2-vitl14=random:0")
KID = ("--kid-subsets", "5", "--kid-subset-size", "4")
RTOL = 1e-6
"""fd_dinov2 equals the golden Fréchet distance to 1e-6 relative."""


@pytest.fixture(scope="module", autouse=True)
def reduced_dinov2(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.ENCODERS, "dinov2-vitl14", DINOv2Depth2)
        patch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fd-sets")
    return write_set(root / "a", FD_SETS[0]), write_set(root / "b", FD_SETS[1])


@pytest.fixture(scope="module")
def golden_fd() -> float:
    with np.load(GOLDEN) as data:
        return float(data["fd_depth2_torch"])


def run_json(*args):
    result = run_cli(*args, "--json", options=OPTIONS)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def one_pass(sets):
    """``eval a b --metrics fid,fd_dinov2,kid``: (its JSON row, images decoded, images the
    DINOv2 network ran on)."""
    counted = [0]
    forward = DINOv2Depth2.forward

    def counting(self, network, pixels, wanted):
        counted[0] += len(pixels)
        return forward(self, network, pixels, wanted)

    with pytest.MonkeyPatch.context() as patch, counted_decodes() as decoded:
        patch.setattr(DINOv2Depth2, "forward", counting)
        row = run_json("eval", *sets, "--metrics", "fid,fd_dinov2,kid", *KID, "--no-cache")
    return row, decoded[0], counted[0]


def test_fd_dinov2_is_the_golden_in_one_pass_beside_fid_and_kid(sets, one_pass, golden_fd):
    """Each image decoded once and run once through each encoder; fid and kid as a run of the
    Inception alone; fd_dinov2 the Fréchet distance EDM2's statistics code gives on the hub
    model's features."""
    row, decoded, through_dinov2 = one_pass
    assert decoded == through_dinov2 == N_A + N_B
    assert row["results"]["fd_dinov2"] == pytest.approx(golden_fd, rel=RTOL)
    alone = run_json("eval", *sets, "--metrics", "fid,kid", *KID, "--no-cache")
    assert row["results"] == {**alone["results"], "fd_dinov2": row["results"]["fd_dinov2"]}
    assert row["settings"] == {**alone["settings"], "resize@dinov2-vitl14": "torch"}
    assert list(row["encoders"]) == ["inception", "dinov2-vitl14"]
    assert row["encoders"]["dinov2-vitl14"]["options"] == {"resize": "torch"}


def test_the_api_gives_the_golden_and_fid_at_dinov2_is_fd_dinov2(sets, stats_files, golden_fd):
    """``evaluate`` of the reference's statistics file and the generated folder."""
    result = ganmetrics.evaluate(stats_files[0], sets[1], ["fd_dinov2", "fid@dinov2-vitl14"],
                                 weights={"dinov2-vitl14": "random:0"}, workers=0, cache=False)
    assert result.results["fd_dinov2"] == pytest.approx(golden_fd, rel=RTOL)
    assert result.results["fid@dinov2-vitl14"] == result.results["fd_dinov2"]


def test_kid_pr_dc_on_dinov2_equal_the_references_on_its_features_with_intervals(sets):
    """kid, pr and dc at dinov2-vitl14 equal torch-fidelity's KID and precision/recall and prdc's
    density/coverage on the encoder's own features; ``--ci`` gives fd_dinov2 and kid their
    intervals (precision/recall and density/coverage have none, on any encoder)."""
    names = "fd_dinov2,kid@dinov2-vitl14,pr@dinov2-vitl14,dc@dinov2-vitl14"
    # --kid-shrink: a replicate may draw fewer than 4 of a side's images (its point estimate has all of them).
    row = run_json("eval", *sets, "--metrics", names, *KID, "--kid-shrink", "--ci", "10", "--no-cache")
    real, fake = (torch.tensor(x) for x in set_features("torch"))
    results = row["results"]
    # torch-fidelity in float64; ours sums float64 kernels of float32 Gram products, which round
    # these features' kernel values (about 8, nearly alike) by ~1e-7 each: 1e-6 absolute.
    kid = kid_features_to_metric(fake.double(), real.double(), kid_subsets=5, kid_subset_size=4, rng_seed=2020,
                                 verbose=False)
    assert results["kid@dinov2-vitl14"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=0, abs=1e-6)
    assert results["kid_std@dinov2-vitl14"] == pytest.approx(kid["kernel_inception_distance_std"], rel=0, abs=1e-6)
    pr = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=True, verbose=False)
    assert (results["precision@dinov2-vitl14"], results["recall@dinov2-vitl14"]) == (pr["precision"], pr["recall"])
    dc = compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=5)
    assert (results["density@dinov2-vitl14"], results["coverage@dinov2-vitl14"]) == (dc["density"], dc["coverage"])
    with_interval = {"fd_dinov2", "kid@dinov2-vitl14"}
    assert {key for key in results if "_ci_" in key} == {f"{key}_ci_{end}" for key in with_interval for end in ("low", "high")}
    assert all(results[f"{key}_ci_low"] < results[f"{key}_ci_high"] for key in with_interval)


@pytest.mark.parametrize("mode", ["torch", "pil"])
def test_the_engine_gives_the_hub_models_features_of_image_files_of_any_size_and_mode(tmp_path, mode):
    """Grayscale, RGBA and palette PNGs smaller than, equal to and larger than 224, decoded and
    resized as ``mode`` (``pil`` in the decoding workers) and run in the engine's batches and
    parts: ``stats --features`` holds the hub model's features after EDM2's (torch) or dgm-eval's
    (pil) preprocessing, to 1e-5 of each image's largest; the file records the resize mode."""
    with np.load(GOLDEN) as data:
        reference = data[f"{mode}_depth2"]
    folder = write_set(tmp_path / "images", [*SINGLE_IMAGES, *BATCH_IMAGES], keep_mode=True)
    out = tmp_path / "ref.npz"
    written = run_json("stats", folder, "--metrics", "fd_dinov2", "--features", "--resize", f"dinov2-vitl14={mode}",
                       "-o", out)
    assert (written["encoder"], written["resize"]) == ("dinov2-vitl14", mode)
    with np.load(out) as data:
        assert json.loads(str(data["meta"]))["encoders"]["dinov2-vitl14"]["resize"] == mode
        bank = data["dinov2-vitl14/cls/feature_bank/features"]
    assert (np.abs(bank - reference).max(axis=1) / np.abs(reference).max(axis=1)).max() <= 1e-5


def test_the_resize_mode_is_named_in_the_json_and_the_cache_key_and_checked_against_files(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(cache))
    a = write_images(tmp_path / "a", smooth_images(3, (20, 20), seed=71))
    b = write_images(tmp_path / "b", smooth_images(3, (20, 28), seed=72))
    args = ("eval", a, b, "--metrics", "fd_dinov2")
    torch_row = run_json(*args)
    with counted_decodes() as decoded:
        pil_row = run_json(*args, "--resize", "dinov2-vitl14=pil")
    assert decoded[0] == 6 and pil_row["results"] != torch_row["results"]  # the torch entry does not serve pil
    assert (torch_row["settings"], pil_row["settings"]) == ({"resize@dinov2-vitl14": "torch"}, {"resize@dinov2-vitl14": "pil"})
    with counted_decodes() as decoded:
        assert run_json(*args)["results"] == torch_row["results"]
    assert decoded[0] == 3  # the reference side came from the cache
    modes = {read_state_file(path, "cache entry", "").meta["encoders"]["dinov2-vitl14"]["resize"]
             for path in (cache / "stats").glob("*.npz")}
    assert modes == {"torch", "pil"}
    run_json("stats", a, "--metrics", "fd_dinov2", "--resize", "dinov2-vitl14=pil", "-o", tmp_path / "pil.npz")
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", tmp_path / "pil.npz", b, "--metrics", "fd_dinov2", options=OPTIONS))
    assert "resize 'pil' vs 'torch'" in message and "--allow-mismatch" in message and decoded[0] == 0


@pytest.fixture(scope="module")
def stats_files(sets, tmp_path_factory):
    """``stats --metrics fid,fd_dinov2`` of each set."""
    root = tmp_path_factory.mktemp("stats")
    paths = root / "a.npz", root / "b.npz"
    for source, path in zip(sets, paths):
        run_json("stats", source, "--metrics", "fid,fd_dinov2", "-o", path)
    return paths


def edm2_pickle(path, stats_file) -> None:
    """Write ``stats_file``'s two Gaussians as EDM2's calculate_metrics.py pickles its statistics."""
    with np.load(stats_file) as data:
        stats = {"num_images": int(data["n"]), "fid": {"mu": data["mu"], "sigma": data["sigma"]},
                 "fd_dinov2": {"mu": data["dinov2-vitl14/cls/gaussian/mu"],
                               "sigma": data["dinov2-vitl14/cls/gaussian/sigma"]}}
    with open(path, "wb") as file:
        pickle.dump(stats, file)


def test_statistics_files_and_edm2_pickles_give_the_folders_values(sets, one_pass, stats_files, tmp_path):
    """``stats`` then ``eval ref.npz fake/`` gives the folder-to-folder values; EDM2's ``.pkl`` of
    the same statistics gives them too, with the warning that it has no metadata."""
    (folders, _, _), (ref_a, ref_b) = one_pass, stats_files
    expected = {key: folders["results"][key] for key in ("fid", "fd_dinov2")}
    from_file = run_json("eval", ref_a, sets[1], "--metrics", "fid,fd_dinov2", "--no-cache")
    assert from_file["results"] == expected and from_file["n_a"] == N_A
    edm2_pickle(tmp_path / "ref.pkl", ref_a)
    result = run_cli("eval", tmp_path / "ref.pkl", ref_b, "--metrics", "fid,fd_dinov2", "--json", options=OPTIONS)
    assert result.exit_code == 0, result.output
    assert "ref.pkl has no metadata" in result.stderr and "EDM2" in result.stderr
    row = json.loads(result.stdout)
    assert row["results"] == pytest.approx(expected, rel=1e-12) and row["n_a"] == N_A


def test_gates_take_fd_dinov2_and_its_name_on_another_encoder(stats_files, golden_fd):
    crossed = one_line_error(run_cli("eval", *stats_files, "--metrics", "fd_dinov2", "--fail-above",
                                     f"fd_dinov2={golden_fd / 2}", options=OPTIONS), code=1)
    assert f"fd_dinov2 {golden_fd:.4f} > {golden_fd / 2:g}" in crossed
    row = run_json("eval", *stats_files, "--metrics", "fid,fd_dinov2@inception", "--fail-below", "fd_dinov2@inception=0")
    assert row["results"]["fd_dinov2@inception"] == row["results"]["fid"]


def test_help_names_the_resize_modes_of_dinov2():
    help = run_cli("eval", "--help", options=()).stdout
    assert "dinov2-vitl14=torch|pil [default: torch]" in " ".join(help.split())


class Payload:
    """An object whose unpickling would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("content, message", [
    ("payload", "it holds a call of posix.system, and a .pkl is read only as plain data"),
    ({"is": {"mu": np.zeros(3)}}, "holds no EDM2 statistics (a dict of 'fid'/'fd_dinov2' to {'mu', 'sigma'}; it holds ['is'])"),
    ([np.zeros(3)], "holds no EDM2 statistics (a dict of 'fid'/'fd_dinov2' to {'mu', 'sigma'}; it holds list)"),
    ({"fd_dinov2": {"mu": np.zeros(4), "sigma": np.eye(3)}}, "fd_dinov2.mu (4,) and fd_dinov2.sigma (3, 3) are not"),
], ids=["code", "other-statistics", "a-list", "bad-shapes"])
def test_a_pickle_of_anything_else_is_refused_and_nothing_in_it_runs(sets, tmp_path, content, message):
    marker = tmp_path / "created-by-the-pickle"
    (tmp_path / "ref.pkl").write_bytes(pickle.dumps(Payload(marker) if content == "payload" else content))
    with counted_decodes() as decoded:
        error = one_line_error(run_cli("eval", tmp_path / "ref.pkl", sets[1], "--metrics", "fd_dinov2", options=OPTIONS))
    assert message in error and decoded[0] == 0 and not marker.exists()


def test_an_edm2_pickle_is_statistics_of_one_set_for_per_class(tmp_path):
    """``--per-class`` against an EDM2 ``.pkl`` (which holds no classes) is the one-line refusal of
    any whole-set statistics file, before anything is decoded."""
    stats = {"num_images": 5, "fd_dinov2": {"mu": np.zeros(3), "sigma": np.eye(3)}}
    (tmp_path / "ref.pkl").write_bytes(pickle.dumps(stats))
    for seed, name in enumerate(("cat", "dog")):
        write_images(tmp_path / "classes" / name, smooth_images(2, (16, 16), seed=seed))
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("eval", tmp_path / "ref.pkl", tmp_path / "classes", "--per-class",
                                         "--metrics", "fd_dinov2", options=OPTIONS))
    assert f"{tmp_path / 'ref.pkl'} holds the statistics of one set of images, not per class" in message
    assert decoded[0] == 0
