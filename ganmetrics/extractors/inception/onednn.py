"""The FID Inception on the CPU in oneDNN's blocked layout: the same numbers, faster (BENCHMARKS.md).

On the CPU, PyTorch runs every fp32 convolution of a plain (NCHW) tensor with oneDNN: it
reorders the input into oneDNN's blocked layout, convolves there, and reorders the output back;
batch norm, ReLU and the pools then run on the plain tensor. Those reorders, repeated for each
branch of each Inception block, and ATen's scalar pooling loops take about a third of the
forward time. Here the activations stay in the blocked layout from the network input to each
block's concatenation, and every step computes exactly what the plain path computes:

- the convolutions are the same oneDNN convolution kernels on the same blocked data;
- batch norm in inference is ``fma(x, alpha, beta)`` per channel in ATen; a 1x1 depthwise
  oneDNN convolution with weight ``alpha`` and bias ``beta`` computes the same fused
  multiply-add. ``alpha`` and ``beta`` are read off ATen's own batch norm (see
  ``_batch_norm_terms``), so they carry its exact rounding;
- ReLU and max pooling are exact in any layout; oneDNN's average pool excluding padding sums
  the window in the same order as ATen's and divides by the same count.

``use_blocked_layout`` checks the whole equivalence on this machine (a probe image through both
forms, bit for bit) and leaves the network plain where it does not hold. The tests pin it on
more images, batch sizes and feature taps.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .network import BasicConv2d, FIDInceptionV3, LayoutAware
from .preprocess import INPUT_SIZE

PROBED = ("spatial", "2048", "logits_unbiased")


def _batch_norm_terms(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """ATen's inference batch norm as ``fma(x, alpha, beta)``: (alpha, beta), float32 (C,).

    Both are read off ATen itself: with zero mean and bias, an input of ones gives
    ``fma(1, alpha, 0) = alpha``; with the real mean and bias, zeros give ``beta``.
    """
    channels = bn.num_features
    zero = torch.zeros(channels)
    probe = (1, channels, 2, 8)  # 16 pixels a channel: the same vectorised kernel as real maps
    alpha = F.batch_norm(torch.ones(probe), zero, bn.running_var, bn.weight, zero, False, 0.0, bn.eps)
    beta = F.batch_norm(torch.zeros(probe), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return alpha[0, :, 0, 0].clone(), beta[0, :, 0, 0].clone()


class BlockedConv2d(nn.Module):
    """``BasicConv2d`` (convolution, batch norm, ReLU) on oneDNN tensors (``x.is_mkldnn``)."""

    def __init__(self, layer: BasicConv2d):
        super().__init__()
        conv = layer.conv
        self.padding, self.stride, self.dilation = conv.padding, conv.stride, conv.dilation
        self.register_buffer("weight", conv.weight.detach().to_mkldnn())
        alpha, beta = _batch_norm_terms(layer.bn)
        self.register_buffer("bn_weight", alpha.view(-1, 1, 1, 1).to_mkldnn())
        self.register_buffer("bn_bias", beta.to_mkldnn())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.mkldnn_convolution(x, self.weight, None, self.padding, self.stride, self.dilation, 1)
        x = torch.mkldnn_convolution(x, self.bn_weight, self.bn_bias, (0, 0), (1, 1), (1, 1), x.shape[1])
        return torch.relu_(x)


def use_blocked_layout(network: FIDInceptionV3) -> bool:
    """Convert an eval-mode network in place to run in oneDNN's blocked layout (inference only:
    no gradients). Returns True when converted. It stays plain, and False is returned, where
    oneDNN is missing, the network is not fp32 on the CPU, or the converted network's features
    (sFID's spatial ones and pool3) and logits of a probe image differ in any bit from the plain network's: the kernels oneDNN
    picks depend on the machine, and the equivalence is checked on this one."""
    parameter = network.fc.weight
    if not (torch.backends.mkldnn.is_available() and parameter.device.type == "cpu"
            and parameter.dtype == torch.float32):
        return False
    probe = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        expected = network(probe, PROBED)
    with torch.no_grad():
        replaced = _replace_layers(network)
    _set_blocked_layout(network, True)
    with torch.inference_mode():
        got = network(probe, PROBED)
    if all(torch.equal(got[feature], expected[feature]) for feature in PROBED):
        return True
    for parent, name, layer in replaced:
        setattr(parent, name, layer)
    _set_blocked_layout(network, False)
    return False


def _replace_layers(module: nn.Module) -> list[tuple[nn.Module, str, BasicConv2d]]:
    """Swap every ``BasicConv2d`` below ``module`` for a ``BlockedConv2d``; (parent, name, the
    original layer) of each swap."""
    replaced = []
    for name, child in module.named_children():
        if isinstance(child, BasicConv2d):
            setattr(module, name, BlockedConv2d(child))
            replaced.append((module, name, child))
        else:
            replaced += _replace_layers(child)
    return replaced


def _set_blocked_layout(network: FIDInceptionV3, blocked: bool) -> None:
    for module in network.modules():
        if isinstance(module, LayoutAware):
            module.blocked_layout = blocked
