"""VGG16 as torch-fidelity 0.4.0's ``vgg16`` feature extractor: the encoder of precision and
recall as Kynkäänniemi et al. (2019) define them (``pr@vgg16``).

The network is torchvision's ``vgg16`` (torchvision is a core dependency and is what
torch-fidelity builds), with torchvision's ImageNet weights ``vgg16-397923af.pth``: the file
torch-fidelity loads (``VGG16_Weights.IMAGENET1K_V1``, from the same URL). Preprocessing and
forward are those of torch-fidelity's ``FeatureExtractorVGG16.forward``: uint8 to float32, the
TF 1.x bilinear resize to 224 x 224 (the Inception's ``tf`` resize, the same function),
ImageNet mean and standard deviation times 255, the convolutions, the 7 x 7 average pool,
fc1, ReLU, fc2, ReLU. Its one feature ``fc2_relu`` (4096) serves every role, as torch-fidelity
uses it for every metric; torch-fidelity's ``fc2`` (before the ReLU) is not offered.

StyleGAN's ``pr50k3`` runs NVIDIA's own VGG16 port (a TorchScript file, in fp16): other weights,
so other numbers at the same k.

A single module, not a folder: torchvision holds the architecture, so what is ours is the
preprocessing, the forward and the random weights.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .base import FeatureExtractor
from .weights import WeightsFile

if TYPE_CHECKING:
    import torch

WEIGHTS_FILENAME = "vgg16-397923af.pth"
WEIGHTS_FILE = WeightsFile(
    filename=WEIGHTS_FILENAME,
    sha256="397923af",  # the prefix the name carries, as torch.hub checks it
    url="https://download.pytorch.org/models/" + WEIGHTS_FILENAME,
    env="GANMETRICS_WEIGHTS_VGG16",
    env_url="GANMETRICS_WEIGHTS_VGG16_URL",
)

INPUT_SIZE = 224
MEAN = (255 * 0.485, 255 * 0.456, 255 * 0.406)
STD = (255 * 0.229, 255 * 0.224, 255 * 0.225)
"""ImageNet's normalisation on [0, 255] pixels, the Python floats torch-fidelity passes to
``torchvision.transforms.functional.normalize``."""

CPU_CHUNK = 8
"""Images run through the network at once on the CPU: the first block's activations are
12.8 MB an image (64 x 224 x 224 float32), so a batch of 50 at once would hold over 1 GB. As in
torch-fidelity, an image's features move in their last bits (about 1e-6 relative) with the
chunk it runs in: the convolutions' and products' rounding depends on how many images they hold."""

PROBE_IMAGES_PER_SCALE = 2
PROBE_SCALES = (4, 8, 16, 64)
PROBE_SIZE = 64
"""The calibration images of ``random_state_dict``: noise drawn at each of ``PROBE_SCALES``
pixels and upsampled to ``PROBE_SIZE``, from smooth to white (at 64 pixels: a twelfth of the
cost of 224; random weights need only roughly calibrated scales)."""


class VGG16Extractor(FeatureExtractor):
    """torchvision's VGG16 up to fc2 after its ReLU, fed as torch-fidelity 0.4.0 feeds it."""

    name = "vgg16"
    model = "vgg16-torchvision-imagenet"
    features = {"fc2_relu": 4096}
    roles = {"frechet": "fc2_relu", "embedding": "fc2_relu"}
    weights_file = WEIGHTS_FILE
    cpu_chunk = CPU_CHUNK

    @classmethod
    def architecture(cls) -> torch.nn.Module:
        import torchvision

        return torchvision.models.vgg16()

    def forward(self, network, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, H, W, 3) at any one size -> {"fc2_relu": float32 (N, 4096)}."""
        import torch
        from torchvision.transforms.functional import normalize

        from .inception.preprocess import tf1_bilinear_resize

        # Contiguous NCHW, as torch-fidelity feeds it: another layout picks other kernels.
        x = tf1_bilinear_resize(pixels.permute(0, 3, 1, 2).contiguous(), INPUT_SIZE)
        x = normalize(x, MEAN, STD, inplace=True)  # (x - mean) / std, as torch-fidelity's copy does
        x = torch.flatten(network.avgpool(network.features(x)), 1)
        return {"fc2_relu": torch.relu(network.classifier[:4](x))}  # fc1, ReLU, dropout (off), fc2

    @classmethod
    def random_state_dict(cls, seed: int) -> dict:
        """Deterministic random weights with the real file's keys and shapes, whose fc2 features
        keep distinct images apart.

        torchvision's own initialisation (Kaiming normal convolutions, N(0, 0.01) linear layers,
        zero biases) makes a network that maps every image to nearly the same direction: the
        cosine similarity of the fc2 features of unrelated noise images is 0.93-0.996. Here
        every weight is uniform in [-1, 1) (``torch.rand``, the same bits on every machine),
        and layer by layer, on a fixed batch of random images (``PROBE_*``) computed in float64,
        each output channel is centred (its bias) and the layer scaled so its outputs have unit
        variance: half of every ReLU's inputs are positive, activations stay O(1) through all
        15 layers, and unrelated images' features have cosine similarities of about 0.3-0.6.
        The last classifier layer (unused by the features, but in the file) gets scaled uniform
        weights and a uniform bias. Deterministic across machines up to float64 rounding of the
        calibration pass (whose scales and biases are rounded to float32).
        """
        import torch
        import torch.nn.functional as F
        from torchvision.transforms.functional import normalize

        generator = torch.Generator().manual_seed(seed)
        with torch.device("meta"):  # nothing drawn from any generator for the default initialisation
            network = cls.architecture()
        network = network.to_empty(device="cpu")

        def uniform(shape) -> torch.Tensor:
            return torch.rand(shape, generator=generator).mul_(2).sub_(1)

        def calibrate(layer: torch.nn.Module, x: torch.Tensor, channel_axes: tuple[int, ...]) -> torch.Tensor:
            """Draw ``layer``'s weights, centre and scale its outputs on ``x`` (float64); return them."""
            weight = uniform(layer.weight.shape)
            if isinstance(layer, torch.nn.Conv2d):
                y = F.conv2d(x, weight.double(), None, layer.stride, layer.padding)
            else:  # fc1 is 103M weights: multiplied 512 outputs at a time, not copied to float64 whole
                y = torch.cat([x @ rows.double().T for rows in weight.split(512)], dim=1)
            mean = y.mean(dim=channel_axes, keepdim=True)
            y -= mean
            scale = 1.0 / y.square().mean().sqrt().item()
            layer.weight.data = weight.mul_(scale)  # in float32: fc1 is 411 MB as it is
            layer.bias.data = (mean * -scale).flatten().float()
            return y.mul_(scale)

        probe = torch.cat([
            F.interpolate(torch.rand((PROBE_IMAGES_PER_SCALE, 3, size, size), generator=generator, dtype=torch.float64),
                          size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear", align_corners=False)
            for size in PROBE_SCALES
        ]) * 255
        x = normalize(probe, MEAN, STD)
        with torch.no_grad():
            for layer in network.features:
                x = calibrate(layer, x, (0, 2, 3)) if isinstance(layer, torch.nn.Conv2d) else layer(x)
            x = torch.flatten(network.avgpool(x), 1)
            x = torch.relu(calibrate(network.classifier[0], x, (0,)))
            calibrate(network.classifier[3], x, (0,))
            last = network.classifier[6]
            last.weight.data = uniform(last.weight.shape) * (3.0 / last.in_features) ** 0.5
            last.bias.data = uniform(last.bias.shape)
        return {key: value.detach() for key, value in network.state_dict().items()}
