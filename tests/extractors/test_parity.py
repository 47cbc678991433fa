"""Agreement with the reference implementations, fed the same random-weight checkpoint and the
same images: pytorch-fid (--resize pytorch), torch-fidelity (--resize tf), clean-fid (--resize
clean). This is how we show the numbers are right without the real weights."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

import ganmetrics
from ganmetrics.extractors.inception.extractor import InceptionExtractor
from helpers import cpu_extractor, features_of
from ganmetrics.extractors.inception.preprocess import clean_resize, to_network_input
from ganmetrics.sources import open_source
from ganmetrics.store.statsfile import save_statistics


def sorted_images(folder):
    return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))


@pytest.fixture(scope="module")
def fidelity_extractor(weights_file):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(
        "inception-v3-compat", ["64", "2048", "logits_unbiased"], feature_extractor_weights_path=str(weights_file)
    )


@pytest.fixture(scope="module")
def pytorch_fid_model_factory(weights_file):
    """pytorch-fid's InceptionV3 for a dims, its weights loader pointed at our file."""
    import pytorch_fid.inception as inception_module

    def build(dims):
        original = inception_module.load_state_dict_from_url
        inception_module.load_state_dict_from_url = lambda *a, **k: torch.load(weights_file, weights_only=True)
        try:
            return inception_module.InceptionV3([inception_module.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
        finally:
            inception_module.load_state_dict_from_url = original

    return build


def ours(weights_file, resize):
    return cpu_extractor(resize, weights_file)


def by_size(paths, load) -> list[tuple[list[int], torch.Tensor]]:
    """(indices, the images ``load``ed and stacked) of each group of same-sized images, so a
    reference tool runs one batch per size instead of one image at a time."""
    groups: dict[tuple, list[int]] = {}
    for i, path in enumerate(paths):
        groups.setdefault(Image.open(path).size, []).append(i)
    return [(indices, torch.stack([load(paths[i]) for i in indices])) for indices in groups.values()]


def per_image(paths, outputs: list[tuple[list[int], torch.Tensor]]) -> torch.Tensor:
    """The rows of per-group ``outputs`` put back in the order of ``paths``."""
    rows = [None] * len(paths)
    for indices, out in outputs:
        for i, row in zip(indices, out):
            rows[i] = row
    return torch.stack(rows)


@pytest.fixture(scope="module")
def fidelity_outputs(mixed_folder, fidelity_extractor):
    """torch-fidelity's pool3 and unbiased logits of each mixed image, a batch per image size."""
    paths = sorted_images(mixed_folder)
    with torch.no_grad():
        outputs = [(indices, fidelity_extractor(batch)) for indices, batch in
                   by_size(paths, lambda p: TF.pil_to_tensor(Image.open(p).convert("RGB")))]
    return tuple(per_image(paths, [(indices, out[k]) for indices, out in outputs]) for k in (1, 2))


def test_pool3_and_logits_equal_torch_fidelity(weights_file, mixed_folder, fidelity_outputs):
    extractor = ours(weights_file, "tf")
    source = open_source(mixed_folder)
    out = features_of(extractor, [source.read(i) for i in range(len(source))])
    pool3, logits = fidelity_outputs
    assert (out["2048"] - pool3).abs().max() < 1e-5
    assert (out["logits_unbiased"] - logits).abs().max() < 1e-4 * logits.abs().max()
    assert out["2048"].std(dim=0).mean() > 1e-3  # the features really vary across images


def test_pool3_equals_pytorch_fid(weights_file, mixed_folder, pytorch_fid_model_factory):
    extractor = ours(weights_file, "pytorch")
    source = open_source(mixed_folder)
    features = features_of(extractor, [source.read(i) for i in range(len(source))], ["2048"])["2048"]
    model = pytorch_fid_model_factory(2048)
    paths = sorted_images(mixed_folder)
    with torch.no_grad():
        reference = per_image(paths, [(indices, model(batch)[0].flatten(1)) for indices, batch in
                                      by_size(paths, lambda p: TF.to_tensor(Image.open(p).convert("RGB")))])
    for i, path in enumerate(paths):
        assert torch.allclose(features[i], reference[i], rtol=0, atol=1e-5), path.name


def test_fid_equals_torch_fidelity(weights_file, image_sets):
    import torch_fidelity

    a, b = image_sets
    reference = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), fid=True, feature_extractor="inception-v3-compat",
        feature_layer_fid="64", feature_extractor_weights_path=str(weights_file), batch_size=50,
        cuda=False, cache=False, verbose=False, save_cpu_ram=True,
    )["frechet_inception_distance"]
    result = ganmetrics.fid(a, b, weights=weights_file, dims=64, resize="tf", workers=0)
    assert result.value > 1.0
    assert result.value == pytest.approx(reference, rel=1e-4)
    assert (result.n_a, result.n_b, result.rank_a) == (150, 150, 64)


def test_fid_equals_pytorch_fid_and_our_stats_file_loads_there(weights_file, image_sets, tmp_path,
                                                             pytorch_fid_model_factory):
    from pytorch_fid import fid_score

    a, b = image_sets
    model = pytorch_fid_model_factory(64)
    mu_a, sigma_a = fid_score.calculate_activation_statistics(sorted_images(a), model, 50, 64, "cpu", 0)
    mu_b, sigma_b = fid_score.calculate_activation_statistics(sorted_images(b), model, 50, 64, "cpu", 0)
    reference = fid_score.calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    options = dict(weights=weights_file, dims=64, resize="pytorch", workers=0)
    assert ganmetrics.fid(a, b, **options).value == pytest.approx(reference, rel=1e-4)

    # Our statistics files, read by pytorch-fid's own loader, give the same FID.
    for name, folder in (("a", a), ("b", b)):
        save_statistics(tmp_path / f"{name}.npz", ganmetrics.compute_stats(folder, **options))
    (mu1, s1), (mu2, s2) = (fid_score.compute_statistics_of_path(str(tmp_path / f"{n}.npz"), None, 50, 64, "cpu")
                            for n in ("a", "b"))
    assert np.allclose(mu1, mu_a, atol=1e-5) and np.allclose(s1, sigma_a, atol=1e-6)
    assert fid_score.calculate_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-4)


def test_inception_score_equals_torch_fidelity_and_the_formula(weights_file, mixed_folder, fidelity_outputs):
    from torch_fidelity.metric_isc import isc_features_to_metric

    _, logits = fidelity_outputs
    one_split = ganmetrics.inception_score(mixed_folder, splits=1, weights=weights_file, workers=1)
    reference = isc_features_to_metric(logits, splits=1)
    assert one_split.mean > 1.05  # far from the degenerate IS = 1
    assert one_split.mean == pytest.approx(reference["inception_score_mean"], rel=1e-4)

    # 10 contiguous splits, against a direct NumPy evaluation of the original TF formula.
    ten = ganmetrics.inception_score(mixed_folder, splits=10, weights=weights_file, workers=1)
    p = torch.softmax(logits.double(), dim=1).numpy()
    n = len(p)
    scores = []
    for s in range(10):
        part = p[s * n // 10:(s + 1) * n // 10]
        kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    assert ten.mean == pytest.approx(np.mean(scores), rel=1e-4)
    assert ten.std == pytest.approx(np.std(scores), rel=1e-3)


def test_clean_resize_equals_clean_fid(mixed_folder):
    from cleanfid.resize import make_resizer

    resizer = make_resizer("PIL", False, "bicubic", (299, 299))
    source = open_source(mixed_folder)
    for i, path in enumerate(sorted_images(mixed_folder)):
        image = source.read(i)
        reference = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(image, reference)
        expected = torch.from_numpy(resizer(reference)).permute(2, 0, 1)[None]
        got = to_network_input(torch.from_numpy(clean_resize(image)).permute(2, 0, 1)[None], "clean")
        assert torch.allclose(got, (expected - 128) / 128, rtol=0, atol=1e-6), path.name
