"""The FID Inception on the CPU in oneDNN's blocked layout: the same numbers, faster (BENCHMARKS.md).

On the CPU, PyTorch runs every fp32 convolution of a plain (NCHW) tensor with oneDNN: it
reorders the input into oneDNN's blocked layout, convolves there, and reorders the output back;
batch norm, ReLU and the pools then run on the plain tensor. Those reorders, repeated for each
branch of each Inception block, and ATen's scalar pooling loops take about a third of the
forward time. Here the activations stay in the blocked layout from the network input to each
block's concatenation, and every step computes exactly what the plain path computes:

- the convolutions are the same oneDNN convolution kernels on the same blocked data;
- each block's input (the plain concatenation of the previous block's branches) is moved into
  the blocked layout once, by a 1x1 depthwise convolution with weight 1 and bias 0, which
  returns every value unchanged (``fma(x, 1, 0) = x``): its branches then take it without a
  reorder each, and its pool runs on blocked data, for which oneDNN has vectorised kernels on
  every x86 level (on the plain layout it has them only from AVX-512 on: AVX2 machines fell
  back to a reference loop, a fifth of the forward time);
- batch norm in inference is ``fma(x, alpha, beta)`` per channel in ATen; a 1x1 depthwise
  oneDNN convolution with weight ``alpha`` and bias ``beta`` computes the same fused
  multiply-add. ``alpha`` and ``beta`` are read off ATen's own batch norm (see
  ``_batch_norm_terms``), so they carry its exact rounding;
- ReLU and max pooling are exact in any layout; oneDNN's average pool excluding padding sums
  the window in the same order as ATen's and divides by the same count.

``use_blocked_layout`` checks the whole equivalence on this machine (a probe image through both
forms, bit for bit) and leaves the network plain where it does not hold. It compares with the
plain network as the reference tools run it, at batch 50: there PyTorch gives every convolution
to oneDNN. (With one thread and fewer than 16 images PyTorch computes 1x1 convolutions of plain
tensors with its own matrix products instead, whose rounding differs; the plain reference is
therefore computed on at least two threads, whatever the thread count of the caller.) The tests
pin the equivalence on more images, batch sizes and feature taps, at every instruction-set
level the machine runs (oneDNN and ATen can be held to AVX2 on an AVX-512 machine).
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


class BlockedInput:
    """A block's input (plain, or oneDNN) -> the same values in oneDNN's blocked layout, through
    a 1x1 depthwise convolution with weight 1 and bias 0 (exact: ``fma(x, 1, 0) = x``, and
    -0 becomes +0, which compares equal). Its weights, one pair per channel count, are made on
    first use (two threads making the same pair make equal ones)."""

    def __init__(self):
        self.identity: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels not in self.identity:
            self.identity[channels] = (torch.ones(channels, 1, 1, 1).to_mkldnn(), torch.zeros(channels).to_mkldnn())
        weight, bias = self.identity[channels]
        x = x if x.is_mkldnn else x.to_mkldnn()
        return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), channels)


def _to_onednn_plain(x: torch.Tensor) -> torch.Tensor:
    """The network input (3 channels) -> oneDNN, keeping the plain layout: the first
    convolution's kernel reads it so in the plain path too."""
    return x if x.is_mkldnn else x.to_mkldnn()


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
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # the plain path as at batch 50: oneDNN for every convolution
    try:
        with torch.inference_mode():
            expected = network(probe, PROBED)
    finally:
        torch.set_num_threads(threads)
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
    blocked_input = BlockedInput()
    for module in network.modules():
        if isinstance(module, LayoutAware):
            module.to_onednn = (_to_onednn_plain if module is network else blocked_input) if blocked else None
