"""The FID Inception-v3 network: the TF 2015-12-05 graph as ported to PyTorch.

Matches the parameter names and shapes of ``pt_inception-2015-12-05-6726825d.pth`` (the file
pytorch-fid and torch-fidelity load). It differs from torchvision's Inception3 where the TF
graph does:

- the average pools inside the A, C and first E blocks exclude the zero padding from the mean
  (``count_include_pad=False``), as TF's ``avg_pool`` with SAME padding does;
- the pool branch of the last E block (Mixed_7c) is a max pool, not an average pool;
- the classifier has 1008 classes, and its bias is kept apart: the Inception Score uses the
  logits without bias, as the original TF code and torch-fidelity's ``logits_unbiased`` do.

The network takes an already resized and normalised float32 batch (N, 3, 299, 299) in [-1, 1]
(see ``preprocess.py``) and returns, in one pass, the named features asked for (``FEATURES``).
``onednn.use_blocked_layout`` converts a built network to run its convolutions in oneDNN's
blocked layout on the CPU (bit-identical, faster); the blocks below are written so that both
forms run through the same code.
"""

from collections.abc import Callable, Collection

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spec import FEATURES, NUM_CLASSES, SPATIAL_CHANNELS

DEEP_FEATURES = frozenset({"spatial", "768", "2048", "logits_unbiased"})
"""The features that need the Inception blocks (beyond the stem)."""

AFTER_MIXED_6D = frozenset({"768", "2048", "logits_unbiased"})
"""The features that need the layers after Mixed_6d."""


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as TF), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class LayoutAware(nn.Module):
    """Base of the network and its blocks. ``to_onednn`` is set by ``onednn.use_blocked_layout``
    to a function that moves an input into oneDNN's layout: each block then does it once, for
    all its branches and its pool, instead of every convolution reordering the same input."""

    to_onednn: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def blocked_layout(self) -> bool:
        return self.to_onednn is not None

    def branch_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.to_onednn is None else self.to_onednn(x)


def _dense(x: torch.Tensor) -> torch.Tensor:
    return x.to_dense() if x.is_mkldnn else x


def _concat(branches: list[torch.Tensor]) -> torch.Tensor:
    """Channel concatenation of branch outputs, in the plain layout (torch.cat takes no oneDNN tensors)."""
    return torch.cat([_dense(b) for b in branches], 1)


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool with SAME padding divides by the number of real (unpadded) inputs.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(LayoutAware):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.branch_input(x)
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return _concat([b1, b5, b3, bp])


class InceptionB(LayoutAware):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.branch_input(x)
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return _concat([b3, bd, bp])


class InceptionC(LayoutAware):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_and_branch1x1(x)[0]

    def forward_and_branch1x1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the block's output, its ``branch1x1`` output: N x 192 x H x W, in the block's layout)."""
        x = self.branch_input(x)
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(_tf_avg_pool(x))
        return _concat([b1, b7, bd, bp]), b1


class InceptionD(LayoutAware):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.branch_input(x)
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return _concat([b3, b7, bp])


class InceptionE(LayoutAware):
    """The E block; ``max_pool_branch`` is True for Mixed_7c, whose TF graph max-pools there."""

    def __init__(self, in_channels: int, max_pool_branch: bool):
        super().__init__()
        self.max_pool_branch = max_pool_branch
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.branch_input(x)
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3a, b3b = self.branch3x3_2a(b3), self.branch3x3_2b(b3)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bda, bdb = self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)
        if self.max_pool_branch:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        bp = self.branch_pool(pooled)
        return _concat([b1, b3a, b3b, bda, bdb, bp])


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(_dense(x), output_size=(1, 1)).flatten(1)


def _channels_last_head(x: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> float32 (N, H * W * SPATIAL_CHANNELS): the first channels, flattened
    channels last (index (h * W + w) * SPATIAL_CHANNELS + c), as the ADM evaluator's
    ``mixed_6/conv[..., :7]`` of an NHWC TF tensor."""
    return _dense(x)[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(len(x), -1)


class FIDInceptionV3(LayoutAware):
    """The FID Inception-v3. Build it, then ``load_state_dict`` a checkpoint (see ``weights.py``)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool_branch=False)
        self.Mixed_7c = InceptionE(2048, max_pool_branch=True)
        self.fc = nn.Linear(2048, NUM_CLASSES)

    stem_batch: int | None = None
    """Images the stem (the layers up to the second max pool) runs at once; None: the whole
    batch. Each image's stem output is the same whatever its batch (``tests/extractors/
    test_network.py`` pins it bit for bit; a machine whose oneDNN picked batch-dependent kernels
    would differ at float32 rounding, well inside the parity tolerances). On the CPU a few images
    at a time keep the stem's large maps (64 x 147 x 147 floats, 5.5 MB an image) in the caches:
    faster (BENCHMARKS.md), and its memory no longer grows with the batch size. The Inception
    extractor sets it on the CPU (``extractor.CPU_STEM_BATCH``)."""

    def forward(self, x: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """x: float32 (N, 3, 299, 299) in [-1, 1] -> {feature: float32 (N, FEATURES[feature])}
        for each wanted feature of ``FEATURES``. Runs only as deep as the wanted features need:
        ``forward(x, {"64"})`` stops after the first max pool, ``forward(x, {"spatial"})`` after Mixed_6d."""
        unknown = set(wanted) - FEATURES.keys()
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}: the network provides {list(FEATURES)}")
        deeper = not DEEP_FEATURES.isdisjoint(wanted)
        chunks = [self._stem(chunk, wanted, deeper) for chunk in x.split(self.stem_batch or len(x))]
        out = {tap: torch.cat([taps[tap] for taps, _ in chunks]) for tap in ("64", "192") if tap in wanted}
        if not deeper:
            return out
        x = chunks[0][1] if len(chunks) == 1 else torch.cat([_dense(blocks) for _, blocks in chunks])  # N x 192 x 35 x 35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c):
            x = block(x)  # ends N x 768 x 17 x 17
        x, branch1x1 = self.Mixed_6d.forward_and_branch1x1(x)
        if "spatial" in wanted:
            out["spatial"] = _channels_last_head(branch1x1)
            if AFTER_MIXED_6D.isdisjoint(wanted):
                return out
        x = self.Mixed_6e(x)
        if "768" in wanted:
            out["768"] = _spatial_mean(x)
            if {"2048", "logits_unbiased"}.isdisjoint(wanted):
                return out
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # N x 2048 x 8 x 8
        pool3 = _spatial_mean(x)
        if "2048" in wanted:
            out["2048"] = pool3
        if "logits_unbiased" in wanted:
            out["logits_unbiased"] = self.logits(pool3)
        return out

    def logits(self, pool3: torch.Tensor) -> torch.Tensor:
        """The unbiased logits (the IS's) of pool3 features: float32 (N, 2048) -> (N, 1008)."""
        return pool3.mm(self.fc.weight.T)

    def _stem(self, x: torch.Tensor, wanted: Collection[str], deeper: bool) -> tuple[dict, torch.Tensor | None]:
        """The layers before the Inception blocks, on n images (n, 3, 299, 299) -> ({"64"/"192":
        float32 (n, 64/192)} for the wanted ones of those taps; the activations n x 192 x 35 x 35
        for the blocks, or None where neither they nor the 192 tap are wanted)."""
        x = self.branch_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # n x 64 x 73 x 73
        taps = {"64": _spatial_mean(x)} if "64" in wanted else {}
        if not deeper and "192" not in wanted:
            return taps, None
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # n x 192 x 35 x 35
        if "192" in wanted:
            taps["192"] = _spatial_mean(x)
        return taps, x
