"""Sources: the same pixels give bit-identical statistics from a folder, zip, tar, .npy/.npz,
an in-memory array or tensor, and a generator; archives are read as data, never extracted;
non-image files are skipped and counted (or refused with --strict); bad arrays exit 2."""

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import cpu_extractor, one_line_error, run_cli, smooth_images, statistics, write_images
from ganmetrics import api
from ganmetrics.errors import GanMetricsError
from ganmetrics.sources import GeneratorSource, NpzMember, open_source

N = 10


@pytest.fixture(scope="module")
def extractor():
    return cpu_extractor()


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return smooth_images(N, (32, 32), seed=7)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps the name as given
    return path


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def same_images(tmp_path_factory, pixels) -> dict:
    """The same N images as every kind of source (archives and arrays in the folder's order)."""
    root = tmp_path_factory.mktemp("same")
    folder = write_images(root / "folder", pixels)
    members = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    chw = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    np.savez(root / "images.npz", images=pixels)
    np.savez_compressed(root / "chw_compressed.npz", chw)
    np.save(root / "images.npy", chw)
    return {
        "folder": folder,
        "zip": write_zip(root / "images.zip", members),
        "tar": write_tar(root / "images.tar", members),
        "tar.gz": write_tar(root / "images.tar.gz", members, "w:gz"),
        "npz": root / "images.npz",
        "npz compressed, channels first": root / "chw_compressed.npz",
        "npy, channels first": root / "images.npy",
        "tensor, channels first": torch.from_numpy(chw),
    }


def generator_of(batches: np.ndarray, float_range: bool):
    """A callable yielding the given images in order, as uint8 or as floats in [-1, 1]."""
    state = {"next": 0}

    def generate(count: int):
        start = state["next"]
        state["next"] += count
        batch = torch.from_numpy(batches[start:start + count]).permute(0, 3, 1, 2)
        return batch.double() / 127.5 - 1 if float_range else batch

    return generate


def test_every_source_type_decodes_the_same_pixels(same_images, pixels):
    kinds = {name: open_source(spec) for name, spec in same_images.items()}
    kinds["array, channels last"] = open_source(pixels)
    kinds["generator, uint8"] = GeneratorSource(generator_of(pixels, False), n=N, batch_size=5)
    kinds["generator, floats in [-1, 1]"] = GeneratorSource(generator_of(pixels, True), n=N, batch_size=5)
    assert isinstance(kinds["npz"].array, NpzMember)  # read image by image, never loaded whole
    assert isinstance(kinds["npz compressed, channels first"].array, NpzMember)
    for name, source in kinds.items():
        images = [image for _, image in source.iterate()]
        assert len(images) == N and all(image.dtype == np.uint8 for image in images), name
        assert np.array_equal(np.stack(images), pixels), name


def test_every_source_type_gives_bit_identical_statistics(extractor, same_images, pixels):
    expected = statistics(open_source(same_images["folder"]), extractor)
    assert expected.n == N
    kinds = {name: open_source(same_images[name]) for name in ("zip", "tar", "npz", "tensor, channels first")}
    kinds["generator, floats in [-1, 1]"] = GeneratorSource(generator_of(pixels, True), n=N, batch_size=7)
    for name, source in kinds.items():
        stats = statistics(source, extractor)
        assert stats.n == N, name
        assert np.array_equal(stats.mu, expected.mu), name
        assert np.array_equal(stats.sigma, expected.sigma), name


def test_worker_processes_give_the_same_statistics(same_images, extractor):
    a = statistics(open_source(same_images["npz"]), extractor, workers=1)  # each worker reads the .npz itself
    b = statistics(open_source(same_images["npz"]), extractor, workers=0)
    assert np.array_equal(a.mu, b.mu) and np.array_equal(a.sigma, b.sigma)


def test_limit_and_key_select_images(same_images, pixels, tmp_path):
    source = open_source(same_images["tar"], limit=5)
    assert [i for i, _ in source.iterate()] == list(range(5))
    np.savez(tmp_path / "two.npz", first=np.zeros((3, 8, 8, 3), np.uint8), second=pixels)
    source = open_source(tmp_path / "two.npz", key="second")
    assert len(source) == N and np.array_equal(source.read(3), pixels[3])
    assert len(open_source(tmp_path / "two.npz")) == 3


# --- generators ---------------------------------------------------------------------------------


class TinyGenerator(torch.nn.Module):
    """z (N, nz) -> (N, 3, 8, 8) in [-1, 1], with dropout and batch norm that act in train mode."""

    def __init__(self, nz: int = 6):
        super().__init__()
        self.nz = nz
        self.net = torch.nn.Sequential(torch.nn.Linear(nz, 192), torch.nn.BatchNorm1d(192),
                                       torch.nn.Dropout(0.5), torch.nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, 3, 8, 8)


@pytest.mark.parametrize("train_mode", [True, False])
def test_module_generator_keeps_mode_and_global_rng(train_mode):
    torch.manual_seed(123)
    generator = TinyGenerator().train(train_mode)
    rng_before = torch.get_rng_state()
    first = np.stack([image for _, image in GeneratorSource(generator, n=20, batch_size=8, seed=1).iterate()])
    assert generator.training is train_mode
    assert all(m.training is train_mode for m in generator.modules())
    assert torch.equal(torch.get_rng_state(), rng_before)
    again = np.stack([image for _, image in GeneratorSource(generator.eval(), n=20, batch_size=8, seed=1).iterate()])
    other_seed = np.stack([image for _, image in GeneratorSource(generator, n=20, batch_size=8, seed=2).iterate()])
    assert first.shape == (20, 8, 8, 3) and first.dtype == np.uint8
    if not train_mode:  # eval mode: the images depend on the seed only
        assert np.array_equal(first, again)
    assert not np.array_equal(again, other_seed)


def test_callable_drawing_from_the_global_rng_leaves_it_unchanged():
    rng_before = torch.get_rng_state()
    source = GeneratorSource(lambda count: torch.rand(count, 1, 4, 4), n=12, batch_size=4, value_range="0,1")
    images = np.stack([image for _, image in source.iterate()])
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert images.shape == (12, 4, 4, 3)
    assert np.array_equal(images[..., 0], images[..., 2])  # one channel is replicated, as grayscale files
    assert not np.array_equal(images[:4], images[4:8])  # the private RNG carries on across batches


def test_generator_image_i_depends_on_the_seed_and_i_only():
    from distributed_battery import ElementwiseGenerator

    def images(source, start=0, stop=None):
        return np.stack([image for _, image in source.iterate(start, stop)])

    module = ElementwiseGenerator()
    whole = images(GeneratorSource(module, n=20, batch_size=8, seed=1))
    assert np.array_equal(images(GeneratorSource(module, n=20, batch_size=5, seed=1)), whole)  # any batch size
    assert np.array_equal(images(GeneratorSource(module, n=20, batch_size=8, seed=1), 7, 13), whole[7:13])  # a shard
    assert not np.array_equal(images(GeneratorSource(module, n=20, batch_size=8, seed=2)), whole)
    # A callable: one call per chunk of batch_size, torch's RNG seeded per chunk, so a shard
    # starting inside a chunk gets the images the whole set has there.
    drawing = GeneratorSource(lambda count: torch.rand(count, 3, 4, 4), n=12, batch_size=4, value_range="0,1", seed=1)
    assert np.array_equal(images(drawing, 5, 11), images(drawing)[5:11])


def test_generator_statistics_through_the_api_are_computed_in_the_main_process(same_images, pixels, extractor):
    expected = statistics(open_source(same_images["folder"]), extractor)
    stats = api.compute_stats(GeneratorSource(generator_of(pixels, True), n=N, batch_size=9),
                              weights="random:0", dims=64, batch_size=5, workers=1)
    assert np.array_equal(stats.mu, expected.mu) and np.array_equal(stats.sigma, expected.sigma)


@pytest.mark.parametrize("make, message", [
    (lambda: GeneratorSource(torch.nn.Linear(3, 3), n=4), "latent_shape"),
    (lambda: GeneratorSource(lambda count: torch.zeros(count, 4, 8, 8), n=4), "shaped"),
    (lambda: GeneratorSource(lambda count: torch.zeros(count, 3, 8, 8), n=4, value_range="0,255"), "unknown"),
    (lambda: GeneratorSource(lambda count: torch.full((count, 3, 8, 8), float("nan")), n=4), "NaN"),
    (lambda: GeneratorSource(lambda count: torch.zeros(1, 3, 8, 8), n=4), "made 1 images"),
    (lambda: open_source(lambda count: None), "GeneratorSource"),
])
def test_bad_generators_are_one_line_errors(make, message):
    with pytest.raises(GanMetricsError, match=message) as err:
        list(make().iterate())
    assert "\n" not in str(err.value)


# --- archives are data --------------------------------------------------------------------------


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_member_paths_are_never_used_as_file_paths(kind, tmp_path, monkeypatch, extractor, pixels):
    names = ["../../evil.png", "/abs/evil.png", "ok/../../../sneaky.png", "plain.png"]
    members = {name: png_bytes(pixels[i]) for i, name in enumerate(names)}
    archive = (write_zip if kind == "zip" else write_tar)(tmp_path / f"evil.{kind}", members)
    workdir = tmp_path / "a" / "b" / "c"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    before = tree(tmp_path)

    source = open_source(archive)
    read = {source.names[i]: image for i, image in source.iterate()}
    stats = statistics(open_source(archive), extractor)

    assert stats.n == len(names)
    assert sorted(read) == sorted(names)
    for i, name in enumerate(names):
        assert np.array_equal(read[name], pixels[i])  # read as data, from memory
    assert tree(tmp_path) == before
    assert not Path("/abs/evil.png").exists()
    assert os.listdir(workdir) == []


# --- non-image files ----------------------------------------------------------------------------


@pytest.fixture
def with_extras(tmp_path, pixels) -> dict:
    """Folder, zip and tar with 3 images, 2 non-image files and hidden files (skipped silently)."""
    images = {f"img{i}.png": png_bytes(pixels[i]) for i in range(3)}
    extras = {"notes.txt": b"text", "sub/README": b"readme"}
    hidden = {".DS_Store": b"x", ".hidden/img.png": png_bytes(pixels[5]), "sub/.x.png": b"x"}
    members = {**images, **extras, **hidden}
    folder = tmp_path / "folder"
    for name, data in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return {"folder": folder, "zip": write_zip(tmp_path / "x.zip", members),
            "tar": write_tar(tmp_path / "x.tar", members)}


@pytest.mark.parametrize("kind", ["folder", "zip", "tar"])
def test_non_image_files_are_skipped_and_counted(with_extras, kind):
    with pytest.warns(UserWarning, match="skipped 2 non-image files") as caught:
        source = open_source(with_extras[kind])
    assert len(caught) == 1
    assert sorted(source.names) == ["img0.png", "img1.png", "img2.png"]


@pytest.mark.parametrize("kind", ["folder", "zip", "tar"])
def test_strict_refuses_the_first_non_image_file(with_extras, kind):
    with pytest.raises(GanMetricsError, match="notes.txt .* is not an image .*--strict"):
        open_source(with_extras[kind], strict=True)


def test_strict_on_the_cli_exits_2_with_one_line(with_extras):
    line = one_line_error(run_cli("fid", with_extras["tar"], with_extras["folder"], "--strict"))
    assert "notes.txt" in line and "--strict" in line


def test_non_image_count_is_one_warning_line_on_the_cli(with_extras):
    result = run_cli("fid", with_extras["zip"], with_extras["folder"], "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stderr.splitlines() if "non-image" in line]
    assert len(skipped) == 2 and all(line.startswith("ganmetrics: warning: skipped 2") for line in skipped)


def test_tar_links_count_as_non_image_files(tmp_path, pixels):
    archive = write_tar(tmp_path / "links.tar", {"a.png": png_bytes(pixels[0]), "b.png": png_bytes(pixels[1])})
    with tarfile.open(archive, "a") as tar:
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.warns(UserWarning, match="skipped 1 non-image files .*link.png"):
        assert open_source(archive).names == ["a.png", "b.png"]


# --- bad input: exit 2 with one line ------------------------------------------------------------


BAD_INPUTS = {
    "float.npz": ("dtype float32", lambda p, x: np.savez(p, x=x.astype(np.float32))),
    "shape.npz": ("shape (10, 32, 32)", lambda p, x: np.savez(p, x=x[..., 0])),
    "channels.npy": ("shape (10, 32, 32, 4)", lambda p, x: np.save(p, np.zeros((N, 32, 32, 4), np.uint8))),
    "noarrays.npz": ("holds no arrays", lambda p, x: np.savez(p)),
    "empty.zip": ("is empty", lambda p, x: write_zip(p, {})),
    "empty.tar": ("is empty", lambda p, x: write_tar(p, {})),
    "textonly.tar.gz": ("holds no images (1 other files)", lambda p, x: write_tar(p, {"a.txt": b"x"}, "w:gz")),
    "notazip.zip": ("cannot open zip", lambda p, x: p.write_bytes(b"not a zip")),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_inputs_are_one_line_errors(tmp_path, pixels, name):
    message, make = BAD_INPUTS[name]
    make(tmp_path / name, pixels)
    with pytest.raises(GanMetricsError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        open_source(tmp_path / name)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["float.npz", "empty.zip"])
def test_bad_inputs_exit_2_on_the_cli(tmp_path, pixels, name):
    message, make = BAD_INPUTS[name]
    make(tmp_path / name, pixels)
    assert message in one_line_error(run_cli("fid", tmp_path / name, tmp_path / name))


def test_undecodable_member_exits_2_and_a_missing_key_is_an_error(tmp_path, pixels):
    write_zip(tmp_path / "corrupt.zip", {"bad.png": b"\x89PNG garbage", "ok.png": png_bytes(pixels[0])})
    assert "corrupt.zip:bad.png" in one_line_error(run_cli("fid", tmp_path / "corrupt.zip", tmp_path / "corrupt.zip"))
    np.savez(tmp_path / "keyed.npz", images=pixels)
    with pytest.raises(GanMetricsError, match="no array 'nope' .*--key"):
        open_source(tmp_path / "keyed.npz", key="nope")


def test_truncated_npz_array_is_a_one_line_error(tmp_path, pixels):
    np.savez(tmp_path / "full.npz", images=pixels)
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:  # a valid zip whose array is short
        with zipfile.ZipFile(tmp_path / "full.npz") as full:
            archive.writestr("images.npy", full.read("images.npy")[:-5000])
    assert "truncated" in one_line_error(run_cli("fid", tmp_path / "cut.npz", tmp_path / "cut.npz", "--no-cache"))
