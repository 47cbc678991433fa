"""The vgg16 encoder against torch-fidelity 0.4.0's own ``FeatureExtractorVGG16`` and, through
``eval --metrics pr@vgg16,dc@vgg16``, against its precision/recall and prdc's density/coverage,
on seeded random weights (the real file cannot be downloaded here).

Most tests use a reduced copy of the architecture (the same torchvision ``VGG`` class and the
same forward, with fewer and narrower layers), fed to torch-fidelity by replacing
``torchvision.models.vgg16`` only; the full network runs once.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from prdc import compute_prdc

from helpers import run_cli, write_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.extractors import registry
from ganmetrics.extractors.registry import ENCODERS, build_encoder
from ganmetrics.extractors.vgg16 import VGG16Extractor
from ganmetrics.extractors.weights import random_weights

torch_fidelity = pytest.importorskip("torch_fidelity")
pytestmark = pytest.mark.filterwarnings("ignore:weights file .* has sha256:UserWarning")  # test files are uncalibrated

FEATURE = "fc2_relu"


def reduced_vgg16():
    """torchvision's VGG with five narrow convolution stages and a 64-wide classifier, its
    parameters uninitialised (whoever builds it loads or draws them)."""
    import torchvision

    with torch.device("meta"):  # VGG's own 25088 x 4096 classifier is never drawn
        network = torchvision.models.vgg.VGG(
            torchvision.models.vgg.make_layers([8, "M", 16, "M", 16, "M", 32, "M", 32, "M"]), init_weights=False)
        network.classifier = torch.nn.Sequential(
            torch.nn.Linear(32 * 7 * 7, 64), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(64, 64), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(64, 10))
    return network.to_empty(device=torch.get_default_device())


class ReducedVGG16(VGG16Extractor):
    """The vgg16 encoder on ``reduced_vgg16`` (registered as ``vgg16`` only where a test says so)."""

    features = {FEATURE: 64}

    @classmethod
    def architecture(cls):
        return reduced_vgg16()


def save_legacy(state: dict, path) -> str:
    """``state`` in torch's pre-1.6 (non-zip) format, the format of ``vgg16-397923af.pth``."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return str(path)


@pytest.fixture(scope="session")
def reduced_weights(tmp_path_factory):
    return save_legacy(ReducedVGG16.random_state_dict(1), tmp_path_factory.mktemp("vgg16") / "reduced.pth")


@pytest.fixture
def reference_on_reduced(monkeypatch):
    """torch-fidelity building ``reduced_vgg16`` where it calls ``torchvision.models.vgg16()``."""
    import torchvision

    monkeypatch.setattr(torchvision.models, "vgg16", reduced_vgg16)


def images_of_several_kinds() -> list[np.ndarray]:
    """uint8 (H, W, 3) images of several sizes, from RGB, grayscale, RGBA and palette files,
    converted to RGB as ganmetrics reads every image."""
    rng = np.random.RandomState(0)
    rgb = Image.fromarray(rng.randint(0, 256, (300, 200, 3), dtype=np.uint8))
    made = [
        Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)),
        Image.fromarray(rng.randint(0, 256, (41, 57), dtype=np.uint8), mode="L"),
        Image.fromarray(rng.randint(0, 256, (224, 224, 4), dtype=np.uint8), mode="RGBA"),
        rgb.quantize(64),
        Image.fromarray(rng.randint(0, 256, (7, 13, 3), dtype=np.uint8)),
    ]
    return [np.array(image.convert("RGB")) for image in made]


def reference_features(weights_path: str, batch: np.ndarray) -> np.ndarray:
    """torch-fidelity's ``fc2_relu`` of uint8 (N, H, W, 3) images."""
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    extractor = FeatureExtractorVGG16("vgg16", [FEATURE], feature_extractor_weights_path=weights_path)
    with torch.no_grad():
        return extractor(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())[0].numpy()


def our_features(encoder, batch: np.ndarray) -> np.ndarray:
    return encoder(torch.from_numpy(batch), {FEATURE})[FEATURE].numpy()


def assert_relative(ours: np.ndarray, reference: np.ndarray, tolerance: float = 1e-5) -> None:
    """Equal to ``tolerance`` relative to the reference features' largest magnitude."""
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=tolerance * np.abs(reference).max())


def test_vgg16_is_registered_with_torchvisions_file():
    assert ENCODERS["vgg16"] is VGG16Extractor
    standard = VGG16Extractor.weights_file
    assert standard.filename == "vgg16-397923af.pth" and standard.sha256 == "397923af"
    assert standard.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    import torchvision

    assert torchvision.models.VGG16_Weights.IMAGENET1K_V1.url == standard.url  # the file torch-fidelity loads
    assert VGG16Extractor.expected_shapes()["classifier.3.weight"] == (4096, 4096)


def test_features_equal_torch_fidelitys_on_images_of_several_sizes(reduced_weights, reference_on_reduced):
    encoder = ReducedVGG16(weights=reduced_weights)
    for image in images_of_several_kinds():
        batch = image[None]
        assert_relative(our_features(encoder, batch), reference_features(reduced_weights, batch))


def test_a_batch_split_into_cpu_chunks_gives_torch_fidelitys_features(reduced_weights, reference_on_reduced):
    batch = np.random.RandomState(1).randint(0, 256, (11, 48, 40, 3), dtype=np.uint8)
    encoder = ReducedVGG16(weights=reduced_weights)
    assert len(encoder.plan(torch.from_numpy(batch), {FEATURE})[0]) == 2  # 8 + 3 images
    assert_relative(our_features(encoder, batch), reference_features(reduced_weights, batch))


class Images(torch.utils.data.Dataset):
    """uint8 (N, H, W, 3) images as torch-fidelity takes a dataset: uint8 (3, H, W) tensors."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return torch.from_numpy(self.images[index]).permute(2, 0, 1).contiguous()


def test_pr_and_dc_at_vgg16_through_eval_equal_torch_fidelitys_prc_and_prdc_to_1_over_n(
        reduced_weights, reference_on_reduced, monkeypatch, tmp_path):
    monkeypatch.setitem(registry.ENCODERS, "vgg16", ReducedVGG16)  # the reduced network as `vgg16`
    rng = np.random.RandomState(2)
    # Smooth random images (noise at 4 px upsampled) with a brighter generated set: partly overlapping sets.
    real = np.stack([np.asarray(Image.fromarray(rng.randint(0, 200, (4, 4, 3), dtype=np.uint8)).resize((40, 40)))
                     for _ in range(16)])
    generated = np.stack([np.asarray(Image.fromarray(rng.randint(40, 256, (4, 4, 3), dtype=np.uint8)).resize((36, 44)))
                          for _ in range(14)])
    result = run_cli("eval", write_images(tmp_path / "real", real), write_images(tmp_path / "generated", generated),
                     "--metrics", "pr@vgg16,dc@vgg16", "--weights", f"vgg16={reduced_weights}", "--json", "--no-cache",
                     options=("--quiet", "--workers", "0"))
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout)["results"]
    expected = torch_fidelity.calculate_metrics(
        input1=Images(generated), input2=Images(real), prc=True, feature_extractor="vgg16",
        feature_extractor_weights_path=reduced_weights, cuda=False, cache=False, verbose=False,
        save_cpu_ram=True, batch_size=8)
    assert abs(ours["precision@vgg16"] - expected["precision"]) <= 1 / len(generated)
    assert abs(ours["recall@vgg16"] - expected["recall"]) <= 1 / len(real)
    assert 0 < ours["precision@vgg16"] < 1 or 0 < ours["recall@vgg16"] < 1  # the sets overlap partly: the balls decide
    # Density and coverage: prdc on the encoder's features of the same images.
    encoder = ReducedVGG16(weights=reduced_weights)
    prdc = compute_prdc(real_features=our_features(encoder, real), fake_features=our_features(encoder, generated),
                        nearest_k=5)
    assert abs(ours["density@vgg16"] - prdc["density"]) <= 1 / len(generated)
    assert abs(ours["coverage@vgg16"] - prdc["coverage"]) <= 1 / len(real)


@pytest.fixture
def reference_skips_default_init(monkeypatch):
    """torch-fidelity building torchvision's own vgg16 without drawing the default initialisation
    it overwrites at once with the weights file (138M parameters: seconds)."""
    import torchvision

    vgg16 = torchvision.models.vgg16

    def uninitialised_vgg16():
        with torch.device("meta"):
            network = vgg16()
        return network.to_empty(device=torch.get_default_device())

    monkeypatch.setattr(torchvision.models, "vgg16", uninitialised_vgg16)


def test_full_vgg16_with_random_weights_equals_torch_fidelity_and_keeps_images_apart(tmp_path,
                                                                                     reference_skips_default_init):
    # Two unrelated images (white noise; smooth grayscale noise) of two sizes, one batch each.
    images = np.stack([
        np.random.RandomState(3).randint(0, 256, (97, 131, 3), dtype=np.uint8),
        np.array(Image.fromarray(np.random.RandomState(4).randint(0, 256, (4, 4), dtype=np.uint8), mode="L")
                 .resize((131, 97)).convert("RGB")),
    ])
    encoder = build_encoder("vgg16", weights="random:0")
    ours = our_features(encoder, images)
    assert ours.shape == (2, 4096) and not encoder.provenance.calibrated
    path = save_legacy(random_weights(VGG16Extractor, 0).state_dict, tmp_path / "vgg16-random0.pth")
    assert_relative(ours, reference_features(path, images))
    # The random weights keep unrelated images apart: no collapse to one direction (the point of
    # random_state_dict's calibration; torchvision's default initialisation gives 0.93-0.996).
    a, b = torch.nn.functional.normalize(torch.from_numpy(ours), dim=1)
    assert float(a @ b) < 0.9
    assert 0.2 < float((a > 0).float().mean()) < 0.8


def test_a_weights_file_with_wrong_keys_is_refused_in_one_line(tmp_path):
    path = tmp_path / "not-vgg16.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(GanMetricsError) as err:
        build_encoder("vgg16", weights=str(path)).weights  # noqa: B018
    message = str(err.value)
    assert "\n" not in message and "not the vgg16 checkpoint" in message and "vgg16-397923af.pth" in message
