"""The blocked-layout CPU network: bit for bit the plain network's outputs, or left plain."""

import pytest
import torch

import ganmetrics.extractors.inception.onednn as onednn
from helpers import cpu_extractor
from ganmetrics.extractors.inception.extractor import CPU_STEM_BATCH
from ganmetrics.extractors.inception.network import BasicConv2d
from ganmetrics.extractors.inception.weights import random_weights


@pytest.fixture(scope="module")
def networks():
    weights = random_weights(0)
    plain, blocked = weights.build_network(), weights.build_network()
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
    layer = random_weights(0).build_network().Mixed_6b.branch7x7_2
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
    network = random_weights(0).build_network()
    assert not onednn.use_blocked_layout(network)
    assert bumped["done"]
    assert not any(m.blocked_layout for m in network.modules() if isinstance(m, onednn.LayoutAware))
    assert sum(isinstance(m, BasicConv2d) for m in network.modules()) == 94


def test_the_cpu_extractor_runs_the_blocked_network():
    extractor = cpu_extractor()
    assert extractor.network.blocked_layout and extractor.network.stem_batch == CPU_STEM_BATCH
