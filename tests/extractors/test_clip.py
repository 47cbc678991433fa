"""The CLIP encoders against their references' own code, on the same seeded random weights:
``clip-vitl14-336`` against openai/CLIP's model fed google-research CMMD's preprocessing, and
``clip-vitb32`` against clean-fid's ``CLIP_fx`` (its ``clip.load`` download replaced by our
file); OpenAI's TorchScript files read without running them; bad weight files refused.

Most cases run 2-layer copies of the towers (full width); each full architecture runs once, on
one image.
"""

import json
import os
import pickle
import sys
import zipfile

import clip  # openai/CLIP (pip install openai-clip): the reference model code
import cleanfid.clip_features as cleanfid_clip
import numpy as np
import pytest
import torch
from cleanfid import fid as cleanfid_fid
from PIL import Image

from clip_reference import openai_model, openai_state_dict, save_torchscript
from cmmd_reference import google_research_cmmd_input, google_research_normalise
from helpers import counted_decodes, one_line_error, run_cli, smooth_images
from ganmetrics.errors import GanMetricsError
from ganmetrics.extractors import registry
from ganmetrics.extractors.clip.extractor import CleanFIDClipExtractor, CMMDClipExtractor
from ganmetrics.extractors.clip.preprocess import clean_fid_crop_resize, cmmd_crop_resize
from ganmetrics.extractors.registry import build_encoder
from ganmetrics.extractors.weights import random_weights
from ganmetrics.metrics.cmmd import CMMD
from ganmetrics.sources.base import decode_image


class SmallCMMDClip(CMMDClipExtractor):
    """ViT-L/14@336 with 2 transformer layers (full width)."""

    layers = 2


class SmallCleanFIDClip(CleanFIDClipExtractor):
    """ViT-B/32 with 2 transformer layers (full width)."""

    layers = 2


class NarrowCleanFIDClip(CleanFIDClipExtractor):
    """ViT-B/32 with 2 layers and an 8-wide projection: a dozen images then give full-rank
    covariances, so the Fréchet distance is well conditioned and comparable to 1e-4."""

    layers = 2
    embed_dim = 8
    features = {"embedding": 8}


def relative_error(ours, theirs) -> float:
    """The largest ‖ours - theirs‖ / ‖theirs‖ over rows."""
    ours, theirs = torch.as_tensor(np.asarray(ours)).double(), torch.as_tensor(np.asarray(theirs)).double()
    return float(((ours - theirs).norm(dim=1) / theirs.norm(dim=1)).max())


# -- the references --------------------------------------------------------------------------
def openai_cmmd_embedding(model: torch.nn.Module, inputs: list[np.ndarray]) -> torch.Tensor:
    """CMMD's embedding from openai/CLIP's model: ``encode_image`` divided by its L2 norm (scenic's ``normalize=True``)."""
    with torch.no_grad():
        x = model.encode_image(torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2).contiguous())
    return x / x.norm(dim=-1, keepdim=True)


def clean_fid_features(files, archive) -> np.ndarray:
    """clean-fid's CLIP features of ``files`` on the CPU: its folder pipeline (``ResizeDataset``
    with ``img_preprocess_clip``) and ``CLIP_fx("ViT-B/32")``, whose ``clip.load`` reads ``archive``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clip.clip, "_download", lambda url, root: str(archive))
        extractor = cleanfid_clip.CLIP_fx("ViT-B/32", device="cpu")
    return cleanfid_fid.get_files_features([str(f) for f in files], extractor, num_workers=0, batch_size=8,
                                           device="cpu", mode="clean", verbose=False,
                                           custom_fn_resize=cleanfid_clip.img_preprocess_clip)


def our_features(encoder, files) -> np.ndarray:
    """Our pipeline on image files: decode to RGB, the encoder's host transform, one forward."""
    pixels = np.stack([encoder.host_transform(decode_image(f, f.name)) for f in files])
    return encoder(torch.from_numpy(pixels), {"embedding"})["embedding"].numpy()


# -- images ----------------------------------------------------------------------------------
def write_image(path, height: int, width: int, mode: str, seed: int) -> None:
    """A seeded photo-like image (``helpers.smooth_images``: its fine noise makes the resampling
    filter matter) saved in PIL ``mode``."""
    image = Image.fromarray(smooth_images(1, (height, width), seed)[0])
    image = image.convert("P", palette=Image.ADAPTIVE) if mode == "P" else image.convert(mode)
    image.save(path)


IMAGES = [("rgb_landscape.png", 300, 451, "RGB"), ("rgb_portrait.jpg", 517, 333, "RGB"),
          ("gray.png", 200, 301, "L"), ("rgba.png", 181, 200, "RGBA"), ("palette.png", 150, 224, "P"),
          ("small.png", 48, 64, "RGB")]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for seed, (name, height, width, mode) in enumerate(IMAGES):
        write_image(folder / name, height, width, mode, seed)
    return [folder / name for name, *_ in IMAGES]


# -- weights ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cleanfid_state():
    """The 2-layer ViT-B/32's random:0 weights, as a whole OpenAI state dict."""
    return openai_state_dict(SmallCleanFIDClip.random_state_dict(0), 512)


@pytest.fixture(scope="module")
def cleanfid_archive(cleanfid_state, tmp_path_factory):
    """``cleanfid_state`` as an OpenAI-style TorchScript file."""
    return save_torchscript(openai_model(cleanfid_state), 224, tmp_path_factory.mktemp("w") / "ViT-B-32.pt")


@pytest.fixture(scope="module")
def full_vitb32_archive(tmp_path_factory):
    """The full ViT-B/32's random:1 weights as an OpenAI-style TorchScript file."""
    state = openai_state_dict(CleanFIDClipExtractor.random_state_dict(1), 512)
    return save_torchscript(openai_model(state), 224, tmp_path_factory.mktemp("w") / "ViT-B-32.pt")


# -- CMMD's encoder --------------------------------------------------------------------------
def test_cmmd_embeddings_equal_openai_clip_fed_cmmds_preprocessing(images):
    files = [images[i] for i in (0, 1, 2, 4)]  # RGB landscape and portrait (JPEG), grayscale, palette
    ours = our_features(SmallCMMDClip(weights="random:0"), files)
    reference = openai_model(openai_state_dict(SmallCMMDClip.random_state_dict(0), 768))
    theirs = openai_cmmd_embedding(reference, [google_research_cmmd_input(f) for f in files])
    assert relative_error(ours, theirs) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, rtol=1e-6)
    # The tolerance is meaningful: the box one pixel off moves the embedding a hundred times more.
    with Image.open(images[0]) as im:
        shifted = np.asarray(im.convert("RGB").crop((76, 0, 376, 300)).resize((336, 336), Image.BICUBIC))
    moved = openai_cmmd_embedding(reference, [google_research_normalise(shifted)])
    assert relative_error(moved, theirs[:1]) > 1e-3


def test_cmmd_crop_of_a_grayscale_image_equals_the_references_tiled_grayscale(images):
    """google-research crops and resizes the L image itself, then tiles it to 3 channels; we
    convert to RGB first: the same pixels."""
    with Image.open(images[2]) as im:
        im.load()
        assert im.mode == "L"
        w, h = im.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        gray = np.asarray(im.crop(box).resize((336, 336), resample=Image.BICUBIC))
    np.testing.assert_array_equal(cmmd_crop_resize(decode_image(images[2], "gray.png")),
                                  np.tile(gray[..., None], (1, 1, 3)))


@pytest.mark.slow
def test_full_vitl14_336_equals_openai_clip_on_one_image(images):
    encoder = CMMDClipExtractor(weights="random:0")
    ours = our_features(encoder, images[:1])
    # openai/CLIP's image tower with the same weights (build_model's fp16 round trip is exact on them).
    weights = random_weights(CMMDClipExtractor, 0)  # the encoder's own, cached: drawn once
    state = {key[len("visual."):]: value for key, value in weights.state_dict.items()}
    with torch.device("meta"):
        visual = clip.model.VisionTransformer(input_resolution=336, patch_size=14, width=1024, layers=24, heads=16,
                                              output_dim=768)
    visual.load_state_dict(state, assign=True)
    with torch.no_grad():
        x = visual.eval()(torch.from_numpy(google_research_cmmd_input(images[0])).permute(2, 0, 1)[None].contiguous())
    assert relative_error(ours, x / x.norm(dim=-1, keepdim=True)) < 1e-5


# -- clean-fid's encoder ---------------------------------------------------------------------
@pytest.mark.parametrize("height, width", [(224, 224), (225, 300), (300, 225), (227, 500), (500, 226), (224, 231),
                                           (100, 101), (64, 48), (1000, 229), (333, 517)])
def test_clean_fid_crop_resize_equals_clean_fids_img_preprocess_clip(height, width):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_array_equal(clean_fid_crop_resize(image), cleanfid_clip.img_preprocess_clip(image))


def test_clip_vitb32_features_equal_clean_fids_clip_fx(images, cleanfid_archive):
    ours = our_features(SmallCleanFIDClip(weights="random:0"), images)
    assert relative_error(ours, clean_fid_features(images, cleanfid_archive)) < 1e-5


def test_fid_at_clip_vitb32_equals_clean_fids_compute_fid(tmp_path, monkeypatch):
    """``eval --metrics fid@clip-vitb32`` (our whole pipeline: sources, engine, Gaussian
    statistics, FID) against clean-fid's ``compute_fid(..., model_name="clip_vit_b_32",
    mode="clean")`` on the CPU, reading the same OpenAI-style file. The tower has an 8-wide
    projection (``NarrowCleanFIDClip``, registered here as clip-vitb32), so a dozen images give
    full-rank covariances and both Fréchet distances are well conditioned."""
    folders = {"a": 12, "b": 11}
    for side, count in folders.items():
        (tmp_path / side).mkdir()
        for i in range(count):
            height, width = 100 + 37 * i % 190, 90 + 53 * i % 230
            write_image(tmp_path / side / f"{i:02d}.png", height, width, "RGB" if i % 3 else "L",
                        seed=i + (500 if side == "b" else 0))
    state = openai_state_dict(NarrowCleanFIDClip.random_state_dict(3), 8)
    archive = save_torchscript(openai_model(state), 224, tmp_path / "ViT-B-32.pt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clip.clip, "_download", lambda url, root: archive)
        theirs = cleanfid_fid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean",
                                          model_name="clip_vit_b_32", device="cpu", num_workers=0, verbose=False)
    monkeypatch.setitem(registry.ENCODERS, NarrowCleanFIDClip.name, NarrowCleanFIDClip)
    result = run_cli("eval", tmp_path / "a", tmp_path / "b", "--metrics", "fid@clip-vitb32", "--json",
                     options=("--weights", f"clip-vitb32={archive}", "--quiet", "--workers", "0", "--no-cache"))
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["results"]["fid@clip-vitb32"] == pytest.approx(theirs, rel=1e-4)
    assert row["settings"]["dims@clip-vitb32"] == 8 and (row["n_a"], row["n_b"]) == (12, 11)


@pytest.mark.slow
def test_full_vitb32_reads_openais_file_and_equals_clean_fid_on_one_image(images, full_vitb32_archive):
    encoder = CleanFIDClipExtractor(weights=full_vitb32_archive)
    ours = our_features(encoder, images[1:2])
    assert relative_error(ours, clean_fid_features(images[1:2], full_vitb32_archive)) < 1e-5
    assert not encoder.weights.calibrated  # not OpenAI's file: its hash is not the URL's


# -- weights ---------------------------------------------------------------------------------
def test_random_weights_are_float16_values():
    state = SmallCMMDClip.random_state_dict(0)
    assert all(value.dtype == torch.float32 and torch.equal(value, value.half().float()) for value in state.values())
    assert set(state) == set(SmallCMMDClip.expected_shapes()) and all(key.startswith("visual.") for key in state)


def test_openais_torchscript_file_is_read_without_running_it(cleanfid_archive, cleanfid_state, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load was called")

    monkeypatch.setattr(torch.jit, "load", refuse)
    state = SmallCleanFIDClip.read_state_dict(cleanfid_archive)
    visual = {key: value for key, value in cleanfid_state.items() if key.startswith("visual.")}
    assert state.keys() == visual.keys()
    assert all(torch.equal(state[key], visual[key]) for key in visual)


@pytest.mark.parametrize("part", ["whole", "visual"])
def test_a_plain_state_dict_with_openais_key_names_is_read(part, cleanfid_state, tmp_path):
    saved = {k: v.half() for k, v in cleanfid_state.items() if part == "whole" or k.startswith("visual.")}
    torch.save(saved, tmp_path / "clip.pt")
    state = SmallCleanFIDClip.read_state_dict(tmp_path / "clip.pt")
    assert state.keys() == {key for key in saved if key.startswith("visual.")}
    assert all(torch.equal(state[key], saved[key].float()) for key in state)


def test_the_file_and_random_seed_give_the_same_embeddings(cleanfid_archive, images):
    from_file = SmallCleanFIDClip(weights=cleanfid_archive)
    pixels = torch.from_numpy(np.stack([clean_fid_crop_resize(decode_image(f, f.name)) for f in images[3:5]]))
    assert torch.equal(from_file(pixels, {"embedding"})["embedding"],
                       SmallCleanFIDClip(weights="random:0")(pixels, {"embedding"})["embedding"])
    assert not from_file.weights.calibrated


def test_registry_roles_and_transforms():
    for name, width, size in (("clip-vitl14-336", 768, 336), ("clip-vitb32", 512, 224)):
        encoder = build_encoder(name)
        assert encoder.features == {"embedding": width}
        assert encoder.default_feature(CMMD()) == "embedding"
        assert encoder.feature_of_role("frechet") == "embedding"
        transform = pickle.loads(pickle.dumps(encoder.host_transform))  # travels to the decoding workers
        out = transform(np.zeros((50, 70, 3), np.uint8))
        assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert CMMDClipExtractor.weights_file.sha256 == clip.clip._MODELS["ViT-L/14@336px"].split("/")[-2]
    assert CleanFIDClipExtractor.weights_file.sha256 == clip.clip._MODELS["ViT-B/32"].split("/")[-2]


# -- bad input -------------------------------------------------------------------------------
def refused(call, match: str) -> str:
    """The message of the one-line GanMetricsError ``call()`` raises, checked against ``match``."""
    with pytest.raises(GanMetricsError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_vitb32_file_given_as_clip_vitl14_336_is_refused(full_vitb32_archive):
    message = refused(lambda: CMMDClipExtractor.read_state_dict(full_vitb32_archive),
                      "holds a CLIP ViT of width 768, patch 32, 224 px, 12 layers, not the clip-vitl14-336")
    assert "--weights clip-vitb32=FILE" in message and "ViT-L-14-336px.pt" in message


class Reduce:
    """Pickles as a call of ``function(*args)``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def write_archive(path, data_pkl: bytes, records: dict | None = None) -> str:
    """A zip laid out as a TorchScript archive around ``data_pkl``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("archive/version", b"3\n")
        for name, data in (records or {}).items():
            archive.writestr(f"archive/data/{name}", data)
    return str(path)


@pytest.mark.parametrize("payload", ["system", "eval", "torch.load"])
def test_a_torchscript_archive_holding_anything_but_tensors_is_refused(payload, tmp_path):
    marker = tmp_path / "ran"
    function, args, named = {"system": (os.system, (f"touch {marker}",), "system"),
                             "eval": (eval, (f"open({str(marker)!r}, 'w')",), "eval"),
                             "torch.load": (torch.load, (str(marker),), "load")}[payload]
    path = write_archive(tmp_path / "evil.pt", pickle.dumps({"visual": Reduce(function, *args)}, protocol=2))
    refused(lambda: SmallCleanFIDClip.read_state_dict(path), f"references .*{named}.*not a tensor")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["eval", "stats"])
@pytest.mark.parametrize("bad", ["a ViT-B/32 file", "an archive holding a call"])
def test_bad_clip_weights_through_the_command_line_are_one_line_and_write_nothing(command, bad, images,
                                                                                  full_vitb32_archive, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    marker, out, folder = tmp_path / "ran", tmp_path / "out.npz", images[0].parent
    if bad == "a ViT-B/32 file":
        weights, expected = full_vitb32_archive, "patch 32, 224 px, 12 layers, not the clip-vitl14-336 one"
    else:
        weights = write_archive(tmp_path / "evil.pt", pickle.dumps({"visual": Reduce(os.system, f"touch {marker}")}))
        expected = "system, which is not a tensor"
    args = ("eval", folder, folder) if command == "eval" else ("stats", folder, "-o", out)
    with counted_decodes() as decoded:
        message = one_line_error(run_cli(*args, "--metrics", "cmmd", options=(
            "--weights", f"clip-vitl14-336={weights}", "--quiet", "--workers", "0")))
    assert expected in message
    assert decoded[0] == 0 and not marker.exists() and not out.exists() and not (tmp_path / "cache").exists()


def test_a_storage_record_of_the_wrong_size_is_refused(cleanfid_archive, tmp_path):
    with zipfile.ZipFile(cleanfid_archive) as source, zipfile.ZipFile(tmp_path / "damaged.pt", "w") as damaged:
        for info in source.infolist():
            data = source.read(info)
            damaged.writestr(info, data[:-2] if info.filename.endswith("/data/0") else data)
    refused(lambda: SmallCleanFIDClip.read_state_dict(tmp_path / "damaged.pt"), "record holds .* bytes")


@pytest.mark.parametrize("kind", ["torchscript", "state dict"])
def test_a_truncated_file_is_refused(kind, cleanfid_archive, cleanfid_state, tmp_path):
    whole = tmp_path / "whole.pt"
    if kind == "torchscript":
        whole.write_bytes(open(cleanfid_archive, "rb").read())
    else:
        torch.save({k: v.half() for k, v in cleanfid_state.items()}, whole)
    data = whole.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])
    refused(lambda: SmallCleanFIDClip.read_state_dict(tmp_path / "cut.pt"), "cannot read weights file")


def test_a_missing_open_clip_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    monkeypatch.setitem(sys.modules, "open_clip.transformer", None)
    refused(SmallCleanFIDClip.expected_shapes, r"clip-vitb32 needs open_clip .*pip install 'ganmetrics\[clip\]'")
    refused(lambda: build_encoder("clip-vitl14-336", weights="random:7").prepare(), "needs open_clip")
