"""The DINOv2 ViT-L/14 encoder: features equal to facebookresearch/dinov2's own model fed EDM2's
``torch`` and dgm-eval's ``pil`` preprocessing, the hub's position-embedding resampling, its
parts on the CPU, and one-line refusals of bad weights files and options.

The reference values are goldens (``tests/golden/dinov2.npz``, made as its README says from the
inputs in ``tests/dinov2_golden.py``): the hub's code, EDM2's ``DINOv2Detector`` and dgm-eval's
``DINOv2Encoder`` install from no package registry, so they ran once on those seeded weights
and images.
"""

import numpy as np
import pytest
import torch

from dinov2_golden import (BATCH_IMAGES, GOLDEN, POS_EMBED_DIM, POS_EMBED_GRIDS, SINGLE_IMAGES, WEIGHTS_SEED,
                           DINOv2Depth2, encoder, features, frechet_distance, seeded_pos_embed, set_features)
from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.extractors import registry
from ganmetrics.extractors.dinov2.extractor import DINOv2Extractor
from ganmetrics.extractors.dinov2.network import GRID, resample_position_embedding
from ganmetrics.extractors.weights import load_weights

RTOL = 1e-5
"""Features agree with the references' to 1e-5 of their largest magnitude, image by image."""
GOLDEN_GROUPS = [(spec,) for spec in SINGLE_IMAGES] + [BATCH_IMAGES]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


@pytest.fixture(scope="module")
def depth2_state() -> dict:
    return DINOv2Depth2.random_state_dict(WEIGHTS_SEED)


@pytest.fixture(scope="module")
def depth2_file(tmp_path_factory, depth2_state):
    """The reduced copy's random weights as a plain state-dict file (the real file's form)."""
    path = tmp_path_factory.mktemp("dinov2") / "depth2.pth"
    torch.save(depth2_state, path)
    return path


def assert_features_close(ours: np.ndarray, reference: np.ndarray):
    for row, (a, b) in enumerate(zip(ours, reference, strict=True)):
        error = np.abs(a - b).max() / np.abs(b).max()
        assert error <= RTOL, f"image {row}: relative error {error:.3g}"


# --- parity with the references ---------------------------------------------------------------


@pytest.mark.parametrize("mode, reference", [("torch", "EDM2 DINOv2Detector(resize_mode='torch')"),
                                             ("pil", "dgm-eval DINOv2Encoder.transform")])
def test_features_equal_the_hub_model_fed_the_references_preprocessing(golden, mode, reference):
    """Images smaller than, equal to and larger than 224, non-square, grayscale, RGBA, palette,
    and a batch of two: the hub model's features after ``reference``'s resize."""
    assert_features_close(features(encoder(mode), GOLDEN_GROUPS), golden[f"{mode}_depth2"])


def test_the_two_resizes_give_different_features(golden):
    """What the tolerance can tell apart: ``torch`` and ``pil`` differ by more than ten times it,
    except at 224 x 224, where both resizes keep the image."""
    torch_features, pil_features = golden["torch_depth2"], golden["pil_depth2"]
    difference = np.abs(torch_features - pil_features).max(axis=1) / np.abs(torch_features).max(axis=1)
    at_224 = np.array([spec[1:3] == (224, 224) for group in GOLDEN_GROUPS for spec in group])
    assert np.all(difference[at_224] == 0) and np.all(difference[~at_224] > 10 * RTOL)


def test_full_vit_l14_equals_the_hub_model(golden):
    """All 24 blocks once, one RGBA image larger than 224, EDM2's default resize."""
    assert_features_close(features(encoder("torch", DINOv2Extractor), [(SINGLE_IMAGES[3],)]), golden["torch_full"])


@pytest.mark.parametrize("rows, cols", POS_EMBED_GRIDS)
def test_position_embedding_is_resampled_as_the_hub_does(golden, rows, cols):
    """The hub's ``interpolate_pos_encoding`` (scale factor (n + 0.1) / 37), not a resize to the
    grid's size (what timm and transformers do), which lands far from it."""
    pos_embed = seeded_pos_embed()
    reference = golden[f"pos_embed_{rows}x{cols}"]
    np.testing.assert_allclose(resample_position_embedding(pos_embed, rows, cols).numpy(), reference,
                               rtol=0, atol=1e-6)
    grid = pos_embed[:, 1:].reshape(1, GRID, GRID, POS_EMBED_DIM).permute(0, 3, 1, 2)
    by_size = torch.nn.functional.interpolate(grid, size=(rows, cols), mode="bicubic")
    assert np.abs(by_size.permute(0, 2, 3, 1).reshape(1, -1, POS_EMBED_DIM).numpy() - reference[:, 1:]).max() > 0.1


def test_position_embedding_is_kept_at_its_own_grid():
    """At 518 x 518 (37 x 37 patches) the hub uses the embedding as it is: a factor of 37.1 / 37
    would move it."""
    pos_embed = seeded_pos_embed()
    assert resample_position_embedding(pos_embed, GRID, GRID) is pos_embed


def test_fd_golden_is_the_frechet_distance_of_these_features(golden):
    """The golden FD (EDM2's statistics code on the hub model's features) is the FD of this
    encoder's features to 1e-6: the value ``fd_dinov2`` must give on these sets."""
    assert frechet_distance(*set_features("torch")) == pytest.approx(golden["fd_depth2_torch"], rel=1e-6)


def test_cpu_parts_of_any_size_give_the_same_features_on_one_thread(one_thread):
    """The parts the engine runs side by side on the CPU (``plan``: of ``CPU_CHUNK`` images, or
    of the given sizes toward a source's end) give one batch's features, bit for bit."""
    enc = encoder("torch")
    pixels = torch.from_numpy(smooth_images(5, (30, 40), seed=5))
    whole = enc.forward(enc.network, pixels, {"cls"})["cls"]
    for sizes in (None, (2, 2, 1)):
        parts, join = enc.plan(pixels, {"cls"}, sizes)
        assert len(parts) == (2 if sizes is None else 3)
        assert torch.equal(join([part() for part in parts])["cls"], whole)


# --- the encoder's declarations ---------------------------------------------------------------


def test_the_cls_feature_serves_frechet_and_embedding_metrics():
    enc = registry.build_encoder("dinov2-vitl14")
    assert enc.features == {"cls": 1024}
    assert [enc.feature_of_role(role) for role in ("frechet", "embedding", "logits", "spatial")] == ["cls", "cls", None, None]
    assert enc.options.resize == "torch" and enc.provenance_options() == {"resize": "torch"}
    assert registry.build_encoder("dinov2-vitl14", {"resize": "pil"}).provenance_options() == {"resize": "pil"}


def test_the_standard_file_has_the_hubs_keys_and_shapes():
    shapes = DINOv2Extractor.expected_shapes()
    assert len(shapes) == 7 + 24 * 14
    assert shapes["pos_embed"] == (1, 1370, 1024) and shapes["mask_token"] == (1, 1024)
    assert shapes["patch_embed.proj.weight"] == (1024, 3, 14, 14) and shapes["blocks.23.ls2.gamma"] == (1024,)


# --- bad input: one line, exit 2, nothing decoded or written -----------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("few"), smooth_images(3, (20, 20), seed=9))


def refused(images, tmp_path, *options) -> str:
    """The one-line error of ``stats`` of ``fd_dinov2`` with ``options``, having decoded nothing
    and written neither the output nor a cache entry."""
    out = tmp_path / "out.npz"
    with counted_decodes() as decoded:
        message = one_line_error(run_cli("stats", images, "--metrics", "fd_dinov2", "-o", out, *options))
    assert decoded[0] == 0 and not out.exists() and not (tmp_path / "cache").exists()
    return message


@pytest.fixture
def private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))


def test_unknown_resize_mode_is_refused_in_one_line(images, tmp_path, private_cache):
    message = refused(images, tmp_path, "--resize", "dinov2-vitl14=bogus")
    assert message == "ganmetrics: error: --resize 'bogus' is unknown for dinov2-vitl14: use one of torch, pil"


@pytest.mark.parametrize("change, named", [
    (lambda s: s.update(register_tokens=torch.zeros(1, 4, 1024)), "unexpected ['register_tokens']"),
    (lambda s: s.pop("mask_token"), "missing ['mask_token']"),
    (lambda s: s.update(pos_embed=torch.zeros(1, 257, 1024)), "pos_embed has shape (1, 257, 1024), expected (1, 1370, 1024)"),
], ids=["registers-checkpoint", "no-mask-token", "resampled-pos-embed"])
def test_a_file_with_other_keys_or_shapes_is_refused_in_one_line(images, tmp_path, private_cache, monkeypatch,
                                                                depth2_state, change, named):
    monkeypatch.setitem(registry.ENCODERS, "dinov2-vitl14", DINOv2Depth2)
    state = dict(depth2_state)
    change(state)
    torch.save(state, tmp_path / "other.pth")
    message = refused(images, tmp_path, "--weights", f"dinov2-vitl14={tmp_path / 'other.pth'}")
    assert named in message and "use dinov2_vitl14_pretrain.pth" in message


def test_a_file_of_fewer_blocks_is_not_the_vit_l14(images, tmp_path, private_cache, depth2_file):
    message = refused(images, tmp_path, "--weights", f"dinov2-vitl14={depth2_file}")
    assert "is not the dinov2-vitl14 checkpoint (missing ['blocks.10." in message


def test_a_truncated_file_is_refused_in_one_line(images, tmp_path, private_cache):
    path = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 1024)}, path)
    path.write_bytes(path.read_bytes()[:-200])
    message = refused(images, tmp_path, "--weights", f"dinov2-vitl14={path}")
    assert message.startswith(f"ganmetrics: error: cannot read weights file {path} (")
    assert message.endswith("it must be a PyTorch state dict of dinov2-vitl14")


def test_weights_come_from_the_dinov2_environment_variable(monkeypatch, depth2_file, depth2_state):
    """GANMETRICS_WEIGHTS_DINOV2_VITL14 names the file; one that is not the standard file loads
    with a warning and is marked uncalibrated."""
    monkeypatch.setenv("GANMETRICS_WEIGHTS_DINOV2_VITL14", str(depth2_file))
    with pytest.warns(UserWarning, match="not the standard d5383ea8f487"):
        weights = load_weights(DINOv2Depth2)
    assert weights.source == str(depth2_file) and not weights.calibrated
    assert all(torch.equal(weights.state_dict[key], value) for key, value in depth2_state.items())
