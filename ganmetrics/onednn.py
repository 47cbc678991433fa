"""The FID Inception on the CPU in oneDNN's blocked layout: the same numbers, about 1.4x faster.

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

``use_blocked_layout`` checks the batch-norm equivalence on this machine's kernels before it
converts anything, and leaves the network plain where it does not hold. The parity tests pin
the whole network bit for bit against the plain path.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .inception import BasicConv2d, FIDInceptionV3, LayoutAware


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


def _batch_norm_matches(layer: BasicConv2d) -> bool:
    """Whether ``BlockedConv2d``'s batch norm equals ATen's, bit for bit, on this machine."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, layer.bn.num_features, 9, 11, generator=generator) * 4
    blocked = BlockedConv2d(layer)
    got = torch.mkldnn_convolution(x.to_mkldnn(), blocked.bn_weight, blocked.bn_bias, (0, 0), (1, 1), (1, 1),
                                   x.shape[1]).to_dense()
    return torch.equal(got, layer.bn(x))


def blocked_layout_available(network: FIDInceptionV3) -> bool:
    """oneDNN is built in, the network is on the CPU in fp32, and its batch norm maps exactly."""
    parameter = network.fc.weight
    return (torch.backends.mkldnn.is_available() and parameter.device.type == "cpu"
            and parameter.dtype == torch.float32 and _batch_norm_matches(network.Conv2d_1a_3x3))


def use_blocked_layout(network: FIDInceptionV3) -> bool:
    """Convert an eval-mode network in place to run in oneDNN's blocked layout (inference only:
    no gradients). Returns False, and leaves it plain, where that would change its outputs."""
    if not blocked_layout_available(network):
        return False
    with torch.no_grad():
        _replace_layers(network)
    for module in network.modules():
        if isinstance(module, LayoutAware):
            module.blocked_layout = True
    return True


def _replace_layers(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, BasicConv2d):
            setattr(module, name, BlockedConv2d(child))
        else:
            _replace_layers(child)
