"""Helpers the tests share (imported as ``helpers``; fixtures live in ``conftest.py``)."""

import contextlib
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from click.testing import CliRunner
from PIL import Image

from ganmetrics.cli import cli
from ganmetrics.config import RunConfig
from ganmetrics.engine.loader import ImageBatch
from ganmetrics.engine.runner import Task, forward_batch, reduce_source
from ganmetrics.extractors.inception.extractor import InceptionExtractor, InceptionOptions
from ganmetrics.extractors.weights import load_weights
from ganmetrics.metrics.base import Need
from ganmetrics.provenance import EncoderProvenance, Provenance
from ganmetrics.store.compat import legacy_meta
from ganmetrics.metrics.reducers import GaussianStats
from ganmetrics.store.states import read_state_file

FAST_OPTIONS = ("--weights", "random:0", "--dims", "64", "--quiet", "--workers", "0")


class FeatureNames:
    """What metrics ask an encoder for their needs, without a network: the encoder "inception",
    whose FID feature is "D" (``dims``), class logits "logits", any other role's "bank"."""

    name = "inception"

    def __init__(self, dims: int = 64):
        self.dims = dims

    def default_feature(self, metric) -> str:
        return {"frechet": str(self.dims), "logits": "logits"}.get(metric.role, "bank")


def inception_provenance(weights_sha256: str = "0" * 64, resize: str = "tf", calibrated: bool = False,
                         extractor: str = "inception-v3-2015-12-05") -> EncoderProvenance:
    """The Inception's provenance with these weights and resize, without a network."""
    return EncoderProvenance("inception", extractor, weights_sha256, calibrated, (("resize", resize),))


def statistics_meta(provenance: EncoderProvenance, dims: int, source: str, tf32: bool = False) -> dict:
    """The ``meta`` a statistics file of the Inception's ``dims``-wide FID statistics records."""
    return legacy_meta({**provenance.meta(tf32), "dims": dims, "feature": str(dims), "source": source})


def plain_network(spec="random:0"):
    """A new Inception network of the weights ``spec`` on the CPU, in its plain layout (the
    extractor's own is built once per process and set up for the CPU)."""
    return InceptionExtractor.build_network(load_weights(InceptionExtractor, spec).state_dict, torch.device("cpu"))


def cpu_extractor(resize: str = "tf", weights="random:0") -> InceptionExtractor:
    """The Inception encoder on the CPU, by default with ``random:0`` weights (a spec or a path)."""
    return InceptionExtractor(InceptionOptions(resize=resize), weights=weights, device=torch.device("cpu"))


def encoders_of(extractor: InceptionExtractor) -> dict:
    """{its name: the encoder}: the encoders of a pass of one encoder."""
    return {extractor.name: extractor}


def statistics(source, extractor: InceptionExtractor | None = None, dims: int = 64, batch_size: int = 5,
               workers: int = 0):
    """The Gaussian (mu, sigma, n) of a source's ``dims`` features, through the engine's one pass."""
    need = Need("inception", str(dims), GaussianStats)
    reducers = reduce_source(source, encoders_of(extractor or cpu_extractor()), [need],
                             RunConfig(batch_size=batch_size, workers=workers))
    return reducers[need].result()


def features_of(extractor: InceptionExtractor, images: list, wanted=("2048", "logits_unbiased")) -> dict:
    """{feature: float32 (N, width)} of decoded images (uint8 (H, W, 3), any sizes) in one batch."""
    task = Task(extractor, tuple(sorted(wanted)))
    return forward_batch({extractor.name: task}, ImageBatch.of_images(list(images)))[extractor.name]


@contextlib.contextmanager
def counted_decodes():
    """Count the images decoded in this process (``PIL.Image.open`` calls) inside the block: a
    one-element list holding the count. Tests run with ``--workers 0``, so every decode is here."""
    count = [0]
    original = PIL.Image.open

    def counting(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    PIL.Image.open = counting
    try:
        yield count
    finally:
        PIL.Image.open = original


def cached_values(cache_dir: Path, kind: str) -> dict[str, dict]:
    """{the source it describes: its fields} of every statistics-cache entry under ``cache_dir``
    holding a value of reducer ``kind`` (e.g. "feature_bank")."""
    found = {}
    for path in Path(cache_dir).glob("*.npz"):
        contents = read_state_file(path, "cache entry", "")
        ((_, _, entry_kind), fields), = contents.entries.items()
        if entry_kind == kind:
            found[contents.meta["source"]] = fields
    return found


def run_cli(*args, options=FAST_OPTIONS):
    """``ganmetrics ARGS`` in-process, by default with the fast options (random weights, 64 dims,
    no progress bar, no worker processes)."""
    return CliRunner().invoke(cli, [*map(str, args), *options])


def one_line_error(result, code: int = 2) -> str:
    """The single stderr line of a failed run: exit 2 allows nothing else on stderr; exit 1
    (a threshold) allows the run's warnings before its one-line reason."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 1:
        lines = [line for line in lines if not line.startswith("ganmetrics: warning:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ganmetrics: error:" if code == 2 else "ganmetrics: ")
    return lines[0]


def smooth_images(n: int, size: tuple[int, int], seed: int, offset: float = 0.0) -> np.ndarray:
    """n uint8 (H, W, 3) images of smooth random colour fields plus noise, brightness shifted by
    ``offset`` (0..1): photo-like enough to give varied features."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.random((n, 4, 4, 3))
    yy, xx = np.meshgrid(np.linspace(0, 3, h), np.linspace(0, 3, w), indexing="ij")
    y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 2)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    field = (coarse[:, y0, x0] * (1 - fy) * (1 - fx) + coarse[:, y0 + 1, x0] * fy * (1 - fx)
             + coarse[:, y0, x0 + 1] * (1 - fy) * fx + coarse[:, y0 + 1, x0 + 1] * fy * fx)
    pixels = (field * 0.8 + offset) * 255 + rng.normal(0, 12, field.shape)
    return pixels.clip(0, 255).astype(np.uint8)


def write_images(folder: Path, images: np.ndarray, fmt: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.{fmt}")
    return folder
