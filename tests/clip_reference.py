"""OpenAI CLIP's files and model as the reference tools load them, for the tests and the bench:
a whole state dict (the image tower given, a small random text tower that ``build_model`` needs),
openai/CLIP's model as ``clip.load`` builds it on the CPU, and an OpenAI-style TorchScript
archive (float16 storages). Nothing here is the reference's code: it calls it."""

import warnings

import clip  # openai/CLIP (pip install openai-clip)
import torch

TEXT_WIDTH = 64


def openai_state_dict(visual: dict, embed_dim: int, seed: int = 99) -> dict:
    """A whole OpenAI CLIP state dict: ``visual`` plus a random one-layer, 64-wide text tower
    (float16 values), which ``build_model`` needs and the image embedding never uses."""
    width, prefix = TEXT_WIDTH, "transformer.resblocks.0."
    shapes = {"positional_embedding": (77, width), "token_embedding.weight": (100, width),
              "ln_final.weight": (width,), "ln_final.bias": (width,), "text_projection": (width, embed_dim),
              "logit_scale": (), prefix + "attn.in_proj_weight": (3 * width, width),
              prefix + "attn.in_proj_bias": (3 * width,), prefix + "attn.out_proj.weight": (width, width),
              prefix + "attn.out_proj.bias": (width,), prefix + "ln_1.weight": (width,), prefix + "ln_1.bias": (width,),
              prefix + "ln_2.weight": (width,), prefix + "ln_2.bias": (width,),
              prefix + "mlp.c_fc.weight": (4 * width, width), prefix + "mlp.c_fc.bias": (4 * width,),
              prefix + "mlp.c_proj.weight": (width, 4 * width), prefix + "mlp.c_proj.bias": (width,)}
    generator = torch.Generator().manual_seed(seed)
    text = {key: (torch.randn(shape, generator=generator) * 0.05).half().float() for key, shape in shapes.items()}
    return {**visual, **text}


def openai_model(state: dict) -> torch.nn.Module:
    """openai/CLIP's model as ``clip.load`` builds it on the CPU: ``build_model`` (fp16), then float32."""
    return clip.model.build_model(dict(state)).float().eval()


def save_torchscript(model: torch.nn.Module, size: int, path) -> str:
    """``model`` traced through ``encode_image`` and saved with float16 storages, as OpenAI's files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, {"encode_image": torch.zeros(1, 3, size, size)}, check_trace=False)
        traced.half().save(str(path))
    return str(path)
