"""The blocked-layout CPU network: bit for bit the plain network's outputs, or left plain."""

import json
import os
import subprocess
import sys

import pytest
import torch

import ganmetrics.extractors.inception.onednn as onednn
from helpers import plain_network, cpu_extractor
from ganmetrics.extractors.inception.extractor import CPU_STEM_BATCH
from ganmetrics.extractors.inception.network import BasicConv2d
from ganmetrics.extractors.inception.preprocess import to_network_input
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.weights import random_weights


@pytest.fixture(scope="module")
def networks():
    plain, blocked = plain_network(), plain_network()
    assert onednn.use_blocked_layout(blocked)
    return plain, blocked


def test_every_layer_is_replaced_and_every_block_switched(networks):
    _, blocked = networks
    assert not any(isinstance(m, BasicConv2d) for m in blocked.modules())
    assert sum(isinstance(m, onednn.BlockedConv2d) for m in blocked.modules()) == 94
    assert blocked.blocked_layout and blocked.Mixed_7c.blocked_layout


@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_equal_the_plain_network_bit_for_bit(networks, batch):
    plain, blocked = networks
    x = torch.rand(batch, 3, 299, 299, generator=torch.Generator().manual_seed(batch)) * 2 - 1
    with torch.inference_mode():
        for dims in ("64", "192", "768", "2048"):
            wanted = {dims, "spatial", "logits_unbiased"}
            expected, got = plain(x, wanted), blocked(x, wanted)
            for feature in wanted:
                assert torch.equal(got[feature], expected[feature]), dims
            assert not got[dims].is_mkldnn and got[dims].shape == (batch, int(dims))
        expected = plain(x, {"2048"})["2048"]
        assert expected.std(dim=1).min() > 1e-3  # real, varied features, not zeros
        assert torch.equal(blocked(x, {"2048"})["2048"], expected)


def test_batch_norm_terms_reproduce_aten_batch_norm_exactly():
    layer = plain_network().Mixed_6b.branch7x7_2
    alpha, beta = onednn._batch_norm_terms(layer.bn)
    generator = torch.Generator().manual_seed(1)
    x = layer.conv(torch.randn(2, layer.conv.in_channels, 5, 7, generator=generator) * 3)
    fused = (x.double() * alpha.double().view(1, -1, 1, 1) + beta.double().view(1, -1, 1, 1)).float()
    assert torch.equal(fused, layer.bn(x))  # ATen's batch norm is one fused multiply-add
    blocked = onednn.BlockedConv2d(layer)  # ... and so is the depthwise oneDNN convolution
    got = torch.mkldnn_convolution(x.to_mkldnn(), blocked.bn_weight, blocked.bn_bias, (0, 0), (1, 1), (1, 1),
                                   x.shape[1]).to_dense()
    assert torch.equal(got, layer.bn(x))


def test_network_stays_plain_where_the_blocked_outputs_differ_by_one_bit(monkeypatch):
    # As if this machine's oneDNN computed one layer differently: the probe shows it.
    forward = onednn.BlockedConv2d.forward
    bumped = {"done": False}

    def one_bit_off(self, x):
        out = forward(self, x)
        if not bumped["done"]:
            bumped["done"] = True
            dense = out.to_dense()
            return torch.nextafter(dense, torch.full_like(dense, float("inf"))).to_mkldnn()
        return out

    monkeypatch.setattr(onednn.BlockedConv2d, "forward", one_bit_off)
    network = plain_network()
    assert not onednn.use_blocked_layout(network)
    assert bumped["done"]
    assert not any(m.blocked_layout for m in network.modules() if isinstance(m, onednn.LayoutAware))
    assert sum(isinstance(m, BasicConv2d) for m in network.modules()) == 94


def test_the_cpu_extractor_runs_the_blocked_network():
    extractor = cpu_extractor()
    assert extractor.network.blocked_layout and extractor.network.stem_batch == CPU_STEM_BATCH


def test_a_network_built_on_one_thread_still_converts():
    # PyTorch's plain path on one thread computes 1x1 convolutions of small batches with its own
    # matrix products; the probe compares with the plain path as at batch 50 (oneDNN throughout).
    network = plain_network()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert onednn.use_blocked_layout(network)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("asked, sizes", [(None, [2, 2]), ([1, 2, 1], [1, 2, 1])])  # cpu_chunk 2; or the sizes asked for
def test_the_extractor_in_chunks_gives_the_plain_network_s_outputs_bit_for_bit(networks, asked, sizes):
    plain, _ = networks
    extractor = cpu_extractor()
    extractor.cpu_chunk = 2
    pixels = torch.randint(0, 256, (4, 40, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    wanted = {"2048", "logits_unbiased"}
    chunks, join = extractor.plan(pixels, wanted, sizes=asked)
    outs = [chunk() for chunk in chunks]
    assert [len(out["2048"]) for out in outs] == sizes
    got = join(outs)
    with torch.inference_mode():
        expected = plain(to_network_input(pixels.permute(0, 3, 1, 2).contiguous(), "tf"), wanted)
    for feature in wanted:
        assert torch.equal(got[feature], expected[feature]), feature


def test_the_network_is_built_once_per_process_and_the_extractor_keeps_no_copy_of_the_weights():
    first, second = cpu_extractor(), cpu_extractor()
    assert first.network is second.network
    assert first.weights.state_dict is None and first.provenance.weights_sha256 == random_weights(InceptionExtractor, 0).sha256


# Runs in a process whose oneDNN and ATen are held to AVX2 (ONEDNN_VERBOSE on: its kernels' names
# go to stdout): the CPU extractor, built and run on one thread as the forward threads run it,
# in chunks, against the plain network on two threads as the reference tools run it.
AVX2_CHECK = """
import json, sys, torch
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.inception.preprocess import to_network_input
from ganmetrics.extractors.weights import load_weights
plain = InceptionExtractor.build_network(load_weights(InceptionExtractor, sys.argv[1]).state_dict, torch.device("cpu"))
extractor = InceptionExtractor(weights=sys.argv[1], device=torch.device("cpu"))
extractor.cpu_chunk = 2
pixels = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
wanted = {"2048", "logits_unbiased"}
torch.set_num_threads(1)
got = extractor(pixels, wanted)
torch.set_num_threads(2)
with torch.inference_mode():
    expected = plain(to_network_input(pixels.permute(0, 3, 1, 2).contiguous(), "tf"), wanted)
print(json.dumps({"blocked": extractor.network.blocked_layout, "aten": torch.backends.cpu.get_cpu_capability(),
                  "equal": {f: torch.equal(got[f], expected[f]) for f in wanted}}), file=sys.stderr)
"""


def test_at_avx2_the_extractor_gives_the_plain_network_s_outputs_bit_for_bit(weights_file):
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("this CPU runs below AVX2: there is no AVX2 level to check")
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2", ONEDNN_VERBOSE="1")
    done = subprocess.run([sys.executable, "-c", AVX2_CHECK, str(weights_file)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stderr.strip().splitlines()[-1])
    kernels = {line.split(",")[6] for line in done.stdout.splitlines() if ",exec,cpu,convolution," in line}
    assert kernels and all("avx2" in k for k in kernels), kernels  # the cap took effect
    assert report == {"blocked": True, "aten": "AVX2", "equal": {"2048": True, "logits_unbiased": True}}
