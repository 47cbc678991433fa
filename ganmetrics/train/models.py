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
    """z ~ N(0, I), float32 (N, nz) or (N, nz, 1, 1), and a code float32 (N, code_dims) where
    ``code_dims`` > 0 -> images float32 (N, channels, S, S) in [-1, 1]. The code (a class
    one-hot, or InfoGAN's codes) is concatenated to z (Mirza & Osindero, 2014; Chen et al., 2016).

    ConvTranspose2d to a 4x4 map of ``ngf * 2**(stages-1)`` channels, then stride-2
    ConvTranspose2d stages halving the width, each with BatchNorm and ReLU, and a Tanh output.
    """

    def __init__(self, image_size: int = 32, channels: int = 3, nz: int = NZ, ngf: int = 64, code_dims: int = 0):
        super().__init__()
        stages = _num_stages(image_size)
        width = ngf * 2 ** (stages - 1)
        layers = [nn.ConvTranspose2d(nz + code_dims, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz, self.code_dims = nz, code_dims
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.size(0), self.nz)
        if self.code_dims:
            z = torch.cat([z, code], dim=1)
        return self.main(z[:, :, None, None])


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(width)
    if norm == "layer":
        # Normalises each sample over (C, H, W) with a per-channel affine: layer norm that, unlike
        # batch norm, keeps samples independent, as the per-sample gradient penalty needs.
        return nn.GroupNorm(1, width)
    return nn.Identity()


class Discriminator(nn.Module):
    """Images float32 (N, channels, S, S) in [-1, 1], and for a conditional critic (``classes``
    > 0) their classes' one-hots float32 (N, classes) -> raw scores float32 (N,): logits of
    "real" for the GAN losses, critic values for the WGAN losses. The one-hot enters as
    ``classes`` constant input planes beside the image's channels.

    The trunk: stride-2 Conv2d stages doubling the width from ``ndf``, LeakyReLU(0.2), a norm
    layer on every stage but the first, down to a 4x4 map of ``trunk_width`` channels; then a 4x4
    convolution to one value. ``norm``: "batch" (DCGAN), "layer" (GroupNorm(1, C), for WGAN-GP)
    or "none". ``trunk``/``head`` split the forward pass where InfoGAN's Q branches off.
    """

    def __init__(self, image_size: int = 32, channels: int = 3, ndf: int = 64, norm: str = "batch", classes: int = 0):
        super().__init__()
        if norm not in CRITIC_NORMS:
            raise GanMetricsError(f"unknown discriminator norm {norm!r}; use one of {', '.join(CRITIC_NORMS)}")
        stages = _num_stages(image_size)
        layers = [nn.Conv2d(channels + classes, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
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
        self.classes, self.trunk_width = classes, width
        self.apply(dcgan_init)

    def trunk(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Features float32 (N, trunk_width, 4, 4) of images (and their classes' one-hots)."""
        if self.classes:
            x = torch.cat([x, condition[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.main[:-1](x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Raw scores float32 (N,) of trunk features."""
        return self.main[-1](features).flatten()

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.trunk(x, condition))


class InfoHead(nn.Module):
    """InfoGAN's Q on the discriminator's trunk: features float32 (N, trunk_width, 4, 4) ->
    (categorical logits float32 (N, categories), continuous means float32 (N, continuous)).

    Q models each continuous code as a Gaussian with these means and unit variance (a fixed
    variance, as in the paper's released code), so its negative log-likelihood is a squared
    error. One hidden layer of 128 units (the paper's Q); no batch norm, which would couple the
    samples of a batch.
    """

    def __init__(self, trunk_width: int, categories: int, continuous: int):
        super().__init__()
        self.main = nn.Sequential(nn.Flatten(), nn.Linear(trunk_width * 16, 128), nn.LeakyReLU(0.2),
                                  nn.Linear(128, categories + continuous))
        self.categories = categories

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.main(features)
        return out[:, :self.categories], out[:, self.categories:]
