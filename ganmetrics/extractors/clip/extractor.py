"""OpenAI CLIP image towers as encoders: ``clip-vitl14-336``, CMMD's (google-research ``cmmd/``),
and ``clip-vitb32``, clean-fid's (``compute_fid(..., model_name="clip_vit_b_32")``).

Each has one feature, ``embedding``, which serves both roles (``frechet``: FID on it;
``embedding``: CMMD, KID, precision/recall, ...):

- ``clip-vitl14-336``: ViT-L/14 at 336 px (width 1024, 24 layers, 16 heads, QuickGELU,
  LayerNorm eps 1e-5); ``ln_post(CLS) @ proj`` (768), divided by its L2 norm, as CMMD's
  ``ClipEmbeddingModel`` (scenic's ``encode_image(normalize=True)``); CMMD's centre crop and
  resize to 336 (``preprocess.cmmd_crop_resize``).
- ``clip-vitb32``: ViT-B/32 at 224 px (width 768, 12 layers, 12 heads, QuickGELU); openai/CLIP's
  ``encode_image`` (512, after the projection, not normalised) as clean-fid's ``CLIP_fx``;
  clean-fid's resize of the shorter side and centre crop to 224
  (``preprocess.clean_fid_crop_resize``). clean-fid on CUDA runs this model in float16 (its
  ``clip.load`` keeps OpenAI's fp16 weights there and casts the input); on the CPU in float32,
  as we do everywhere: our features equal its CPU features.

The network is open_clip's ``VisionTransformer`` with QuickGELU (the ``ganmetrics[clip]``
extra): it holds OpenAI's parameters under their own names and gives openai/CLIP's image
embeddings up to float32 rounding (its batch-first attention rounds differently from
openai/CLIP's sequence-first one, by under 1e-6 relative in the tests). Its state dict is OpenAI's
``visual.*`` part.

Weights: OpenAI's files (``ViT-L-14-336px.pt``, ``ViT-B-32.pt``; their sha256 is the folder of
their URL) are TorchScript archives, read by ``torchscript.read_torchscript_tensors`` without
running their code; a plain state dict with OpenAI's key names, whole or only its ``visual.``
part, is read with ``torch.load(weights_only=True)``. Only the ``visual.`` tensors are kept (the
text tower and the ``input_resolution``/``context_length``/``vocab_size`` buffers are
dropped), as float32. ``random:SEED`` weights are drawn in float32 and rounded to float16:
OpenAI's files hold float16 values, and openai/CLIP's ``build_model`` (clean-fid's loader)
converts the model to float16 before loading its state dict, so a reference built from
float32 random weights would silently round them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...errors import GanMetricsError, describe_error, quoted
from ..base import FeatureExtractor
from ..weights import WeightsFile, check_state_dict, torch_load

if TYPE_CHECKING:
    import numpy as np
    import torch

PREFIX = "visual."
"""The image tower's keys in OpenAI's CLIP state dicts (and in our network's)."""

_LAYER_KEY = re.compile(re.escape(PREFIX) + r"transformer\.resblocks\.(\d+)\.attn\.in_proj_weight")


def openai_weights_file(filename: str, sha256: str, env: str) -> WeightsFile:
    """An OpenAI CLIP file: its URL's folder is its sha256 (openai/CLIP ``clip.py`` ``_MODELS``)."""
    return WeightsFile(filename=filename, sha256=sha256,
                       url=f"https://openaipublic.azureedge.net/clip/models/{sha256}/{filename}",
                       env=env, env_url=f"{env}_URL")


class ClipExtractor(FeatureExtractor):
    """An OpenAI CLIP ViT image tower (module docstring). Subclasses give its geometry
    (``image_size``, ``patch_size``, ``width``, ``layers``, ``embed_dim``; 64-wide heads),
    whether the embedding is L2-normalised (``normalise``) and the reference's crop and resize
    (``host_transform``)."""

    roles = {"frechet": "embedding", "embedding": "embedding"}
    image_size: ClassVar[int]
    patch_size: ClassVar[int]
    width: ClassVar[int]
    layers: ClassVar[int]
    embed_dim: ClassVar[int]
    normalise: ClassVar[bool]

    @classmethod
    def architecture(cls) -> torch.nn.Module:
        """``{"visual": open_clip VisionTransformer}``: keys as OpenAI's ``visual.*``."""
        try:
            from open_clip.transformer import QuickGELU, VisionTransformer
        except ImportError as err:
            raise GanMetricsError(f"the encoder {cls.name} needs open_clip ({describe_error(err)}): "
                                  "pip install 'ganmetrics[clip]'") from None
        import torch

        visual = VisionTransformer(image_size=cls.image_size, patch_size=cls.patch_size, width=cls.width,
                                   layers=cls.layers, heads=cls.width // 64, mlp_ratio=4.0,
                                   output_dim=cls.embed_dim, act_layer=QuickGELU)
        return torch.nn.ModuleDict({"visual": visual})

    @classmethod
    def random_state_dict(cls, seed: int) -> dict:
        """Deterministic random weights with the real file's keys and shapes, float16 values
        (module docstring) held as float32: matrices and convolutions N(0, 1/fan_in), the
        class and position embeddings N(0, 1/width) (OpenAI's scale), LayerNorm gains
        1 + 0.1 N(0, 1) and every bias 0.1 N(0, 1), so that a network that drops a bias or a
        gain is caught."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        state = {}
        for key, shape in cls.expected_shapes().items():
            value = torch.randn(shape, generator=generator)
            if key.endswith(("class_embedding", "positional_embedding")):
                value = value * cls.width ** -0.5
            elif len(shape) == 1:
                value = value * 0.1 + (1.0 if key.endswith(".weight") else 0.0)
            else:
                value = value * (shape[0] if key == PREFIX + "proj" else math.prod(shape[1:])) ** -0.5
            state[key] = value.half().float()
        return state

    @classmethod
    def read_state_dict(cls, path) -> dict:
        """The ``visual.`` tensors of an OpenAI TorchScript file or of a plain state dict with
        OpenAI's key names, checked: a CLIP of another geometry is refused naming what it is."""
        from .torchscript import is_torchscript_archive, read_torchscript_tensors

        path = Path(path)
        if is_torchscript_archive(path):
            state = read_torchscript_tensors(path)
        else:
            state = torch_load(path, f"OpenAI's {cls.weights_file.filename} or a state dict with its key names")
        if isinstance(state, dict) and any(isinstance(key, str) and key.startswith(PREFIX) for key in state):
            state = {key: value for key, value in state.items() if key.startswith(PREFIX)}
            cls._check_geometry(state, path)
        return check_state_dict(cls, state, path)

    @classmethod
    def geometry(cls) -> tuple[int, int, int, int]:
        """(width, patch size, image size, layers)."""
        return cls.width, cls.patch_size, cls.image_size, cls.layers

    @classmethod
    def _check_geometry(cls, state: Mapping, path: Path) -> None:
        """Refuse, naming both, a CLIP ViT whose width, patch, resolution or depth is not ours."""
        import torch

        conv, positions = state.get(PREFIX + "conv1.weight"), state.get(PREFIX + "positional_embedding")
        if not (isinstance(conv, torch.Tensor) and conv.ndim == 4 and isinstance(positions, torch.Tensor)
                and positions.ndim == 2):
            return  # not a ViT tower: check_state_dict names what is missing
        layers = sum(1 for key in state if _LAYER_KEY.fullmatch(key))
        grid = round(math.sqrt(max(positions.shape[0] - 1, 0)))
        found = (conv.shape[0], conv.shape[-1], conv.shape[-1] * grid, layers)
        if found == cls.geometry():
            return
        served = [other.name for other in (CMMDClipExtractor, CleanFIDClipExtractor) if other.geometry() == found]
        hint = f" (it is {served[0]}'s: pass it as --weights {served[0]}=FILE)" if served else ""
        raise GanMetricsError(
            f"weights file {quoted(path)} holds a CLIP ViT of width {found[0]}, patch {found[1]}, {found[2]} px, "
            f"{found[3]} layers, not the {cls.name} one (width {cls.width}, patch {cls.patch_size}, "
            f"{cls.image_size} px, {cls.layers} layers){hint}: use {cls.weights_file.filename}")

    def forward(self, network, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, S, S, 3) from ``host_transform`` -> {"embedding": float32 (N, embed_dim)}."""
        from .preprocess import to_network_input

        embedding = network["visual"](to_network_input(pixels))
        if self.normalise:
            embedding = embedding / embedding.norm(dim=-1, keepdim=True)
        return {"embedding": embedding}


class CMMDClipExtractor(ClipExtractor):
    """CMMD's CLIP: ViT-L/14@336, the L2-normalised image embedding (768), CMMD's crop and resize."""

    name = "clip-vitl14-336"
    model = "openai-clip-vit-l-14-336px"
    features = {"embedding": 768}
    image_size, patch_size, width, layers, embed_dim = 336, 14, 1024, 24, 768
    normalise = True
    weights_file = openai_weights_file("ViT-L-14-336px.pt",
                                       "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                                       "GANMETRICS_WEIGHTS_CLIP_VITL14_336")

    @property
    def host_transform(self) -> Callable[[np.ndarray], np.ndarray]:
        """CMMD's centre crop and PIL bicubic resize to 336: uint8 (H, W, 3) -> uint8 (336, 336, 3)."""
        from .preprocess import cmmd_crop_resize

        return cmmd_crop_resize


class CleanFIDClipExtractor(ClipExtractor):
    """clean-fid's CLIP: ViT-B/32, ``encode_image`` (512, not normalised), clean-fid's resize and crop."""

    name = "clip-vitb32"
    model = "openai-clip-vit-b-32"
    features = {"embedding": 512}
    image_size, patch_size, width, layers, embed_dim = 224, 32, 768, 12, 512
    normalise = False
    weights_file = openai_weights_file("ViT-B-32.pt",
                                       "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
                                       "GANMETRICS_WEIGHTS_CLIP_VITB32")

    @property
    def host_transform(self) -> Callable[[np.ndarray], np.ndarray]:
        """clean-fid's resize and centre crop to 224: uint8 (H, W, 3) -> uint8 (224, 224, 3)."""
        from .preprocess import clean_fid_crop_resize

        return clean_fid_crop_resize
