"""The network's stem in small batches (as on the CPU): each image's outputs are those of the
whole batch at once, bit for bit, at every feature tap."""

import pytest
import torch

from ganmetrics.onednn import use_blocked_layout
from ganmetrics.weights import random_weights


@pytest.mark.parametrize("blocked", [False, True])
def test_stem_batches_give_the_outputs_of_the_whole_batch(blocked):
    network = random_weights(0).build_network()
    if blocked:
        assert use_blocked_layout(network)
    x = torch.rand(5, 3, 299, 299, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        whole = {(dims, logits): network(x, dims=dims, logits=logits)
                 for dims in (64, 192, 768, 2048) for logits in (False, True)}
        network.stem_batch = 2  # chunks of 2, 2 and 1 images
        for (dims, logits), expected in whole.items():
            got = network(x, dims=dims, logits=logits)
            assert got.features.shape == (5, dims) and not got.features.is_mkldnn
            assert torch.equal(got.features, expected.features), (dims, logits)
            if logits:
                assert torch.equal(got.logits, expected.logits), dims
            else:
                assert got.logits is None
    assert whole[64, False].features.std(dim=0).mean() > 1e-3  # features that vary across images
