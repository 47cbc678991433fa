"""The DINOv2 ViT-L/14 network of facebookresearch/dinov2 (its ``dinov2_vitl14``), inference only.

A small module of our own rather than timm's ``vit_large_patch14_dinov2``: timm builds the same
blocks, but resamples the position embedding to the input's patch grid with an output size,
where the hub passes a scale factor (``resample_position_embedding``); the difference moves the
features. What the hub's numbers depend on is written out here in PyTorch's own layers, with
the parameter names and shapes of ``dinov2_vitl14_pretrain.pth`` (``mask_token`` included:
the file has it, inference does not use it), so the file loads as it is.

As the hub builds it: patch 14, width 1024, ``DEPTH`` 24 pre-norm blocks of 16 heads, MLP ratio
4 with exact (erf) GELU, LayerScale on both residual branches, LayerNorm eps 1e-6, biases on
every linear layer, one class token and no register tokens, a position embedding for a 37 x 37
grid (``img_size=518``). The feature is the class token after the final norm (1024-d), what the
hub model's ``forward`` returns.

Attention runs in ``F.scaled_dot_product_attention`` (PyTorch's fused kernels; the hub's own
code has used it since June 2025). The hub's code of EDM2's and dgm-eval's papers computed the
same product explicitly (``softmax(q * scale @ k^T) @ v``); both round differently in the last
float32 bits only (``tests/extractors/test_dinov2.py`` holds the features to the explicit form's
within 1e-5 relative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14
WIDTH = 1024
DEPTH = 24
HEADS = 16
MLP_RATIO = 4
GRID = 37
"""The position embedding's grid: the hub's ``img_size=518`` in patches of 14."""
INTERPOLATE_OFFSET = 0.1
"""The hub's ``interpolate_offset``: added to the output grid in the scale factor (see
``resample_position_embedding``)."""
NORM_EPS = 1e-6


def resample_position_embedding(pos_embed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The hub's ``interpolate_pos_encoding``: the position embedding (1, 1 + GRID², D) for a
    grid of ``rows`` x ``cols`` patches -> (1, 1 + rows * cols, D) float32, the class token's
    entry unchanged.

    The GRID x GRID patch entries are resampled as the hub does, in float32, bicubic without
    antialias, with the *scale factor* ``(n + 0.1) / GRID`` per axis rather than the output
    size ``n``: PyTorch maps output to input coordinates with the scale it is given, so the
    offset moves every sample point (at 224 pixels, 16 patches: by up to 0.22 source cells
    from where ``size=(16, 16)`` samples). The hub returns the embedding untouched for a square
    input of GRID x GRID patches (518 pixels), where a factor of 37.1 / 37 would still move it.
    """
    if rows == cols == GRID:
        return pos_embed
    pos_embed = pos_embed.float()
    dim = pos_embed.shape[-1]
    patch_grid = pos_embed[:, 1:].reshape(1, GRID, GRID, dim).permute(0, 3, 1, 2)
    scale = ((rows + INTERPOLATE_OFFSET) / GRID, (cols + INTERPOLATE_OFFSET) / GRID)
    patch_grid = F.interpolate(patch_grid, scale_factor=scale, mode="bicubic", antialias=False)
    return torch.cat((pos_embed[:, :1], patch_grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)), dim=1)


class PatchEmbed(nn.Module):
    """Non-overlapping 14 x 14 patches -> tokens: (N, 3, H, W) -> (N, H/14 * W/14, WIDTH), row-major."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, WIDTH, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (the hub's key layout)."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, width = x.shape
        q, k, v = self.qkv(x).reshape(n, tokens, 3, HEADS, width // HEADS).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(64), as the hub's head_dim ** -0.5
        return self.proj(x.transpose(1, 2).reshape(n, tokens, width))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(WIDTH, MLP_RATIO * WIDTH)
        self.fc2 = nn.Linear(MLP_RATIO * WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    """A learned per-channel factor on a residual branch (``gamma``, as the hub names it)."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(x))): the hub's block at inference."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH, eps=NORM_EPS)
        self.attn = Attention()
        self.ls1 = LayerScale()
        self.norm2 = nn.LayerNorm(WIDTH, eps=NORM_EPS)
        self.mlp = Mlp()
        self.ls2 = LayerScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DINOv2ViT(nn.Module):
    """``dinov2_vitl14`` with ``depth`` blocks (``DEPTH``; fewer only for tests): normalised
    float32 images (N, 3, H, W), H and W multiples of 14 -> the class token after the final
    norm, float32 (N, WIDTH)."""

    def __init__(self, depth: int = DEPTH):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, WIDTH))
        self.mask_token = nn.Parameter(torch.zeros(1, WIDTH))  # in the file; used only in training
        self.blocks = nn.ModuleList(Block() for _ in range(depth))
        self.norm = nn.LayerNorm(WIDTH, eps=NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + resample_position_embedding(self.pos_embed, rows, cols)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])
