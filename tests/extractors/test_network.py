"""The network's stem in small batches (as on the CPU): each image's outputs are those of the
whole batch at once, bit for bit, at every feature tap."""

import pytest
import torch

from helpers import plain_network
from ganmetrics.extractors.inception.spec import FEATURES
from ganmetrics.extractors.inception.onednn import use_blocked_layout
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from ganmetrics.extractors.weights import random_weights


@pytest.mark.parametrize("blocked", [False, True])
def test_stem_batches_give_the_outputs_of_the_whole_batch(blocked):
    network = plain_network()
    if blocked:
        assert use_blocked_layout(network)
    x = torch.rand(3, 3, 299, 299, generator=torch.Generator().manual_seed(3)) * 2 - 1
    requests = [{tap} for tap in FEATURES] + [{tap, "logits_unbiased"} for tap in ("64", "192", "768", "2048")]
    requests.append(set(FEATURES))
    with torch.inference_mode():
        whole = [network(x, wanted) for wanted in requests]
        network.stem_batch = 2  # chunks of 2 and 1 images: a full one and a short last one
        for wanted, expected in zip(requests, whole):
            got = network(x, wanted)
            assert set(got) == wanted
            for feature in wanted:
                assert got[feature].shape == (3, FEATURES[feature]) and not got[feature].is_mkldnn
                assert torch.equal(got[feature], expected[feature]), (wanted, feature)
    assert whole[0]["64"].std(dim=0).mean() > 1e-3  # features that vary across images
