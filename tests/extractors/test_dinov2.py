"""The DINOv2 ViT-L/14 encoder: features equal to facebookresearch/dinov2's own model fed EDM2's
``torch`` and dgm-eval's ``pil`` preprocessing, the hub's position-embedding resampling, and
one-line refusals of bad weights files and options.

The reference values are goldens (``tests/golden/dinov2.npz``, made as its README says): the
hub's code, EDM2's ``DINOv2Detector`` and dgm-eval's ``DINOv2Encoder`` install from no package
registry, so they ran once on the seeded weights and images defined here.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganmetrics.errors import GanMetricsError
from ganmetrics.extractors import registry
from ganmetrics.extractors.dinov2.extractor import DINOv2Extractor
from ganmetrics.extractors.dinov2.network import GRID, resample_position_embedding
from ganmetrics.extractors.weights import load_weights

GOLDEN = "dinov2.npz"
WEIGHTS_SEED = 0
RTOL = 1e-5
"""Features agree with the references' to 1e-5 of their largest magnitude, image by image."""


class DINOv2Depth2(DINOv2Extractor):
    """The encoder with the hub's first 2 blocks only (full width): the reduced copy most goldens use."""

    name = "dinov2-vitl14-depth2"
    depth = 2


# --- the golden inputs (tests/golden/README.md: the golden script imports these) -------------

SINGLE_IMAGES = (  # (PIL mode, height, width, seed): smaller than, equal to and larger than 224
    ("RGB", 64, 64, 1),
    ("L", 100, 150, 2),
    ("RGB", 224, 224, 3),
    ("RGBA", 300, 256, 4),
    ("P", 389, 517, 5),
)
BATCH_IMAGES = (("RGB", 96, 128, 6), ("RGB", 96, 128, 7))
"""Two same-sized images the references ran as one batch."""
FD_SETS = (
    tuple(("RGB", 64, 48, 100 + i) for i in range(8)),
    tuple([("RGB", 72, 72, 200 + i) for i in range(5)] + [("RGB", 60, 90, 300 + i) for i in range(5)]),
)
"""Two small image sets whose Fréchet distance of depth-2 ``torch`` features is a golden."""
POS_EMBED_DIM = 4
POS_EMBED_GRIDS = ((16, 16), (20, 31))
"""Patch grids (rows, cols) of the resampling goldens: 224 x 224 and 280 x 434 pixels."""


def make_image(mode: str, height: int, width: int, seed: int) -> Image.Image:
    """A seeded test image in PIL ``mode`` (RGB, RGBA, L or P): random 8 x 8 blocks of colour under
    random noise, in integer arithmetic only, so every machine makes the same pixels."""
    rng = np.random.RandomState(seed)
    blocks = rng.randint(0, 256, size=(height // 8 + 1, width // 8 + 1, 4))
    smooth = blocks.repeat(8, axis=0).repeat(8, axis=1)[:height, :width]
    pixels = ((3 * smooth + rng.randint(0, 256, size=(height, width, 4))) // 4).astype(np.uint8)
    if mode == "P":
        image = Image.fromarray(pixels[:, :, 0], "P")
        image.putpalette(rng.randint(0, 256, size=768).astype(np.uint8).tobytes())
        return image
    return Image.fromarray({"RGB": pixels[:, :, :3], "RGBA": pixels, "L": pixels[:, :, 0]}[mode], mode)


def decoded(spec) -> np.ndarray:
    """A test image as our decoder gives it: ``convert("RGB")``, uint8 (H, W, 3)."""
    return np.asarray(make_image(*spec).convert("RGB"))


def seeded_pos_embed() -> torch.Tensor:
    """A random position embedding for the 37 x 37 grid, ``POS_EMBED_DIM`` channels wide."""
    generator = torch.Generator().manual_seed(WEIGHTS_SEED)
    return torch.randn((1, 1 + GRID * GRID, POS_EMBED_DIM), generator=generator)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden():
    with np.load(Path(__file__).parents[1] / "golden" / GOLDEN) as data:
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


def encoder(mode: str, cls=DINOv2Depth2):
    return cls(cls.Options(resize=mode), weights=f"random:{WEIGHTS_SEED}")


def features(enc, groups) -> np.ndarray:
    """float32 (N, 1024) of the image groups, each group one batch, as the engine runs them:
    decoded, ``host_transform`` per image, stacked."""
    out = []
    for group in groups:
        pixels = torch.from_numpy(np.stack([enc.host_transform(decoded(spec)) for spec in group]))
        out.append(enc(pixels, {"cls"})["cls"].numpy())
    return np.concatenate(out)


def assert_features_close(ours: np.ndarray, reference: np.ndarray):
    for row, (a, b) in enumerate(zip(ours, reference, strict=True)):
        error = np.abs(a - b).max() / np.abs(b).max()
        assert error <= RTOL, f"image {row}: relative error {error:.3g}"


def same_size_groups(images) -> list[tuple]:
    """The images in batches of one size each, in first-seen order (as the golden script ran them)."""
    groups: dict[tuple, list] = {}
    for spec in images:
        groups.setdefault(spec[1:3], []).append(spec)
    return [tuple(group) for group in groups.values()]


GOLDEN_GROUPS = [(spec,) for spec in SINGLE_IMAGES] + [BATCH_IMAGES]


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


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD of two feature sets (n, d) in float64, ddof-1 covariances, the trace square root exact
    for singular covariances: tr sqrt(S1 S2) is the nuclear norm of A B^T, where A^T A = S1 and
    B^T B = S2 are the centred features over sqrt(n - 1)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    a = (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(axis=0)) / np.sqrt(len(y) - 1)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2) + np.sum(a * a) + np.sum(b * b) - 2 * trace_sqrt)


def test_fd_golden_is_the_frechet_distance_of_these_features(golden):
    """The golden FD (EDM2's statistics code on the hub model's features) is the FD of this
    encoder's features to 1e-6: the value ``fd_dinov2`` must give on these sets."""
    enc = encoder("torch")
    x, y = (features(enc, same_size_groups(images)) for images in FD_SETS)
    assert frechet_distance(x, y) == pytest.approx(golden["fd_depth2_torch"], rel=1e-6)


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


# --- bad input --------------------------------------------------------------------------------


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_unknown_resize_mode_is_refused_in_one_line():
    with pytest.raises(GanMetricsError) as excinfo:
        registry.build_encoder("dinov2-vitl14", {"resize": "bogus"})
    assert one_line(excinfo) == "--resize 'bogus' is unknown for dinov2-vitl14: use one of torch, pil"


@pytest.mark.parametrize("change, named", [
    (lambda s: s.update(register_tokens=torch.zeros(1, 4, 1024)), "unexpected ['register_tokens']"),
    (lambda s: s.pop("mask_token"), "missing ['mask_token']"),
    (lambda s: s.update(pos_embed=torch.zeros(1, 257, 1024)), "pos_embed has shape (1, 257, 1024), expected (1, 1370, 1024)"),
], ids=["registers-checkpoint", "no-mask-token", "resampled-pos-embed"])
def test_a_file_with_other_keys_or_shapes_is_refused_in_one_line(tmp_path, depth2_state, change, named):
    state = dict(depth2_state)
    change(state)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(GanMetricsError) as excinfo:
        load_weights(DINOv2Depth2, tmp_path / "other.pth")
    assert named in one_line(excinfo) and "use dinov2_vitl14_pretrain.pth" in one_line(excinfo)


def test_a_file_of_fewer_blocks_is_not_the_vit_l14(depth2_file):
    with pytest.raises(GanMetricsError) as excinfo:
        load_weights(DINOv2Extractor, depth2_file)
    assert "is not the dinov2-vitl14 checkpoint (missing ['blocks.10." in one_line(excinfo)


def test_a_truncated_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 1024)}, path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(GanMetricsError) as excinfo:
        load_weights(DINOv2Extractor, path)
    assert one_line(excinfo).startswith(f"cannot read weights file {path} (")
    assert one_line(excinfo).endswith("it must be a PyTorch state dict of dinov2-vitl14")


def test_weights_come_from_the_dinov2_environment_variable(monkeypatch, depth2_file, depth2_state):
    """GANMETRICS_WEIGHTS_DINOV2_VITL14 names the file; one that is not the standard file loads
    with a warning and is marked uncalibrated."""
    monkeypatch.setenv("GANMETRICS_WEIGHTS_DINOV2_VITL14", str(depth2_file))
    with pytest.warns(UserWarning, match="not the standard d5383ea8f487"):
        weights = load_weights(DINOv2Depth2)
    assert weights.source == str(depth2_file) and not weights.calibrated
    assert all(torch.equal(weights.state_dict[key], value) for key, value in depth2_state.items())
