"""sFID's "spatial" feature: the Mixed_6d.branch1x1 output, channels 0-6, flattened channels last,
equal to torch-fidelity's network hooked at the same layer (same random checkpoint, tf resize),
computed without the layers after Mixed_6d when nothing deeper is wanted."""

import torch

from helpers import cpu_extractor, features_of, smooth_images
from ganmetrics.extractors.inception.extractor import InceptionExtractor

N = 5


def test_spatial_features_equal_torch_fidelity_hooked_at_mixed_6d_branch1x1(weights_file):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    images = smooth_images(N, (32, 32), seed=61)
    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["768"], feature_extractor_weights_path=str(weights_file))
    hooked = []
    fidelity.Mixed_6d.branch1x1.register_forward_hook(lambda module, args, output: hooked.append(output.clone()))
    with torch.no_grad():
        fidelity(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    (maps,) = hooked
    assert maps.shape == (N, 192, 17, 17)
    expected = maps.movedim(1, -1)[..., :7].reshape(N, -1)

    extractor = cpu_extractor("tf", weights_file)
    deeper = []
    extractor.network.Mixed_6e.register_forward_hook(lambda *_: deeper.append(True))
    got = features_of(extractor, list(images), ["spatial"])
    assert set(got) == {"spatial"} and got["spatial"].shape == (N, 2023) and got["spatial"].dtype == torch.float32
    assert not deeper  # stopped after Mixed_6d
    assert (got["spatial"] - expected).abs().max() < 1e-5
    assert got["spatial"].std(dim=0).mean() > 1e-3  # features that vary across images
    # The layout: index (h * 17 + w) * 7 + c holds channel c at row h, column w.
    h, w, c = 5, 11, 6
    assert torch.allclose(got["spatial"][:, (h * 17 + w) * 7 + c], maps[:, c, h, w], rtol=0, atol=1e-5)
