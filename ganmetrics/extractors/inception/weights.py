"""The FID Inception's weights: its standard file and its ``random:SEED`` weights.

The standard file ``pt_inception-2015-12-05-6726825d.pth`` is the TF 2015-12-05 Inception graph
ported to PyTorch (pytorch-fid's and torch-fidelity's), found, fetched and checked as every
encoder's file is (``extractors/weights.py``); ``GANMETRICS_WEIGHTS`` names a file to use
instead. ``random_state_dict`` builds deterministic random weights with its keys and shapes
whose activations stay in a useful range through all 94 layers.
"""

from __future__ import annotations

from ..weights import WeightsFile

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_FILE = WeightsFile(
    filename=WEIGHTS_FILENAME,
    sha256="6726825d",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILENAME,
    env="GANMETRICS_WEIGHTS",
    env_url="GANMETRICS_WEIGHTS_URL",
)
IGNORED_SUFFIXES = (".num_batches_tracked",)
"""BatchNorm's step counter is not part of the TF port; files that carry it are still accepted."""


def random_state_dict(seed: int) -> dict:
    """A deterministic random checkpoint with the real file's keys and shapes.

    Convolutions get He-normal weights; every batch norm's running statistics are then set from
    the activations of a fixed batch of smooth random images, computed in float64, so each layer
    sees zero-mean unit-variance inputs: activations stay O(1) through all 94 layers and distinct
    images keep distinct features (a purely random deep ReLU net collapses them together). The
    fc layer is scaled so the 1008 softmax probabilities are far from uniform, and has a random
    bias so code that wrongly keeps it is caught. Deterministic across machines up to float64
    rounding of the calibration pass.
    """
    import torch

    from .network import FIDInceptionV3

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # its throwaway initialisation leaves the global stream alone
        network = FIDInceptionV3().double()
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            std = (2.0 / fan_in) ** 0.5
            module.weight.data = torch.randn(module.weight.shape, generator=generator, dtype=torch.float64) * std
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
            module.momentum = None  # running stats = plain average of the calibration batch
            module.reset_running_stats()
    # Random images from smooth to white noise (noise drawn at 4..299 px and upsampled), so every
    # kind of input, a blurry 32 px sample or a noisy photo, lands in the calibrated range.
    probe = torch.cat([
        torch.nn.functional.interpolate(
            torch.rand((2, 3, size, size), generator=generator, dtype=torch.float64) * 2 - 1,
            size=(299, 299), mode="bilinear", align_corners=False)
        for size in (4, 16, 64, 299)
    ])
    network.train()
    with torch.no_grad():
        pool3 = network(probe, {"2048"})["2048"]
    scale = 3.0 / (pool3.std(dim=0).mean().item() * 2048 ** 0.5)
    network.fc.weight.data = torch.randn(network.fc.weight.shape, generator=generator, dtype=torch.float64) * scale
    network.fc.bias.data = torch.randn(network.fc.bias.shape, generator=generator, dtype=torch.float64)
    return {key: value.float() for key, value in network.state_dict().items() if not key.endswith(IGNORED_SUFFIXES)}
