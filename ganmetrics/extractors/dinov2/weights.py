"""The DINOv2 ViT-L/14 weights: its standard file and its ``random:SEED`` weights.

The standard file is the hub's ``dinov2_vitl14_pretrain.pth`` (a plain state dict, 343 tensors,
``mask_token`` included), found, fetched and checked as every encoder's file is
(``extractors/weights.py``); ``GANMETRICS_WEIGHTS_DINOV2_VITL14`` names a file to use instead.
"""

from __future__ import annotations

from ..weights import WeightsFile

WEIGHTS_FILENAME = "dinov2_vitl14_pretrain.pth"
WEIGHTS_FILE = WeightsFile(
    filename=WEIGHTS_FILENAME,
    # The sha256 of the 1,217,586,395-byte file as published in finegrain-ai/refiners,
    # src/refiners/conversion/models/dinov2.py (``expected_sha256`` of the hub's vitl14 file,
    # commit 30dbf44b), and pinned alike by several projects that check the download.
    sha256="d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/" + WEIGHTS_FILENAME,
    env="GANMETRICS_WEIGHTS_DINOV2_VITL14",
    env_url="GANMETRICS_WEIGHTS_DINOV2_VITL14_URL",
)


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict:
    """Deterministic random weights with the keys and ``shapes`` of the network (``{key: shape}``
    in state-dict order), drawn in that order from a generator seeded with ``seed``.

    Chosen so a test sees every part of the network move the features: linear and patch
    weights N(0, 1/fan_in) keep activations O(1) through the blocks and make the attention
    logits O(1) (neither uniform nor one-hot); biases N(0, 0.1²); norm weights 1 + N(0, 0.1²);
    LayerScale factors uniform in [0.1, 0.5] (never the identity a missing LayerScale would
    also give); class token, position embedding and mask token N(0, 1), so that an error in
    resampling the position embedding moves the features as much as the image does.
    """
    import math

    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        module, _, kind = key.rpartition(".")
        if kind == "gamma":
            value = torch.rand(shape, generator=generator) * 0.4 + 0.1
        else:
            value = torch.randn(shape, generator=generator)
            if module.rpartition(".")[2].startswith("norm"):
                value = value * 0.1 + (1.0 if kind == "weight" else 0.0)
            elif kind == "bias":
                value = value * 0.1
            elif kind == "weight":
                value = value / math.sqrt(math.prod(shape[1:]))
        state[key] = value
    return state
