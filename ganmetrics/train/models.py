"""DCGAN generator and discriminator/critic (Radford et al., 2016) for 32x32 and 64x64 images.

Both nets double (generator) or halve (discriminator) the spatial size with 4x4, stride-2
convolutions between a 4x4 map and the image, so 32x32 uses three stages and 64x64 four. The
widths scale with ``ngf``/``ndf`` (64 in the paper; 16-32 is enough for tests and CPU demos).
"""

import math

import torch
import torch.nn as nn

from ..errors import GanMetricsError

NZ = 100
IMAGE_SIZES = (32, 64)
CRITIC_NORMS = ("batch", "layer", "none")


def _num_stages(image_size: int) -> int:
    """Size-changing layers between a 4x4 map and the image: 3 for 32x32, 4 for 64x64."""
    if image_size not in IMAGE_SIZES:
        raise GanMetricsError(f"image size {image_size} is not supported; use 32 or 64")
    return int(math.log2(image_size)) - 2


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation, for ``Module.apply``: convolution weights ~ N(0, 0.02), norm-layer
    weights ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z ~ N(0, I), float32 (N, nz) or (N, nz, 1, 1) -> images float32 (N, channels, S, S) in [-1, 1].

    ConvTranspose2d to a 4x4 map of ``ngf * 2**(stages-1)`` channels, then stride-2
    ConvTranspose2d stages halving the width, each with BatchNorm and ReLU, and a Tanh output.
    """

    def __init__(self, image_size: int = 32, channels: int = 3, nz: int = NZ, ngf: int = 64):
        super().__init__()
        stages = _num_stages(image_size)
        width = ngf * 2 ** (stages - 1)
        layers = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.size(0), self.nz, 1, 1))


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(width)
    if norm == "layer":
        # Normalises each sample over (C, H, W) with a per-channel affine: layer norm that, unlike
        # batch norm, keeps samples independent, as the per-sample gradient penalty needs.
        return nn.GroupNorm(1, width)
    return nn.Identity()


class Discriminator(nn.Module):
    """Images float32 (N, channels, S, S) in [-1, 1] -> raw scores float32 (N,): logits of
    "real" for the GAN losses, critic values for the WGAN losses.

    Stride-2 Conv2d stages doubling the width from ``ndf``, LeakyReLU(0.2), a norm layer on every
    stage but the first, and a 4x4 convolution to one value. ``norm``: "batch" (DCGAN), "layer"
    (GroupNorm(1, C), for WGAN-GP) or "none".
    """

    def __init__(self, image_size: int = 32, channels: int = 3, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        if norm not in CRITIC_NORMS:
            raise GanMetricsError(f"unknown discriminator norm {norm!r}; use one of {', '.join(CRITIC_NORMS)}")
        stages = _num_stages(image_size)
        layers = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        width = ndf
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm == "none"),
                _norm_layer(norm, width * 2),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()
