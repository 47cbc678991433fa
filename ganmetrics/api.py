"""The Python API: ``fid``, ``inception_score`` and ``compute_stats``, wiring sources, weights,
the extractor, reducers and metrics. Every function raises ``GanMetricsError`` for bad input.

A source is a folder of images, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.npy``/``.npz``
array file, a uint8 array or tensor (N, H, W, 3) or (N, 3, H, W), or an ``ImageSource``; for
``fid`` also a statistics ``.npz`` (ours, pytorch-fid's or TTUR's).
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import GanMetricsError
from .extract import FeatureExtractor, default_workers, resolve_device
from .metrics import covariance_rank, frechet_distance, inception_score_from_sums
from .reducers import InceptionScoreAccumulator
from .sources import open_source
from .statsfile import Statistics, check_compatible, is_statistics_file, load_statistics
from .weights import load_weights


@dataclass(frozen=True)
class FIDResult:
    """FID in squared pool-feature units, with what it was computed from. ``rank_a``/``rank_b``:
    numerical ranks of the covariances (below ``dims`` when a set has fewer than dims+1 images)."""

    value: float
    n_a: int | None
    n_b: int | None
    dims: int
    resize: str
    weights_sha256: str
    calibrated: bool
    rank_a: int
    rank_b: int


@dataclass(frozen=True)
class ISResult:
    """Inception Score: mean and population std over ``splits`` contiguous splits of ``n`` images."""

    mean: float
    std: float
    splits: int
    n: int
    resize: str
    weights_sha256: str
    calibrated: bool


@dataclass
class Options:
    """Settings shared by every API function (the CLI's shared options)."""

    weights: str | os.PathLike | None = None
    device: str = "auto"
    batch_size: int = 50
    workers: int | None = None
    resize: str = "tf"
    dims: int = 2048
    limit: int | None = None
    recursive: bool = True
    key: str | None = None
    progress: bool = False
    allow_mismatch: bool = False

    def extractor(self) -> FeatureExtractor:
        weights = load_weights(self.weights, progress=self.progress)
        return FeatureExtractor(
            weights,
            resolve_device(self.device),
            resize=self.resize,
            dims=self.dims,
            batch_size=self.batch_size,
            workers=default_workers() if self.workers is None else self.workers,
            progress=self.progress,
        )

    def open(self, spec, minimum: int, purpose: str):
        source = open_source(spec, recursive=self.recursive, key=self.key, limit=self.limit)
        if len(source) < minimum:
            raise GanMetricsError(
                f"{source.describe()} has {len(source)} image{'s' if len(source) != 1 else ''}; "
                f"{purpose} needs at least {minimum}: add images"
            )
        return source


def _options(kwargs) -> Options:
    try:
        return Options(**kwargs)
    except TypeError as err:
        raise GanMetricsError(f"{err}: see help(ganmetrics.api.Options) for the accepted options") from None


def resolve_statistics(spec, extractor: FeatureExtractor, options: Options) -> Statistics:
    """Statistics of a source, or read from a statistics file and checked against this run."""
    if isinstance(spec, Statistics):
        check_compatible(spec, "the given statistics", extractor.dims, extractor.resize,
                         extractor.weights.sha256, options.allow_mismatch)
        return spec
    if isinstance(spec, (str, os.PathLike)) and is_statistics_file(spec):
        stats = load_statistics(spec)
        check_compatible(stats, spec, extractor.dims, extractor.resize, extractor.weights.sha256, options.allow_mismatch)
        return stats
    return extractor.statistics(options.open(spec, 2, "a covariance (FID)"))


def fid_many(extractor: FeatureExtractor, reference, others: list, options: Options) -> list[FIDResult]:
    """FID of each of ``others`` against ``reference``, whose statistics are computed once."""
    ref = resolve_statistics(reference, extractor, options)
    results = []
    for other in others:
        stats = resolve_statistics(other, extractor, options)
        for s in (ref, stats):
            if s.n is not None and s.n <= extractor.dims:
                warnings.warn(
                    f"only {s.n} images for {extractor.dims}-dim features: the covariance is singular and "
                    f"FID is biased upwards; use more than {extractor.dims} images or a smaller --dims",
                    stacklevel=2,
                )
        results.append(FIDResult(
            frechet_distance(ref.mu, ref.sigma, stats.mu, stats.sigma), ref.n, stats.n, extractor.dims,
            extractor.resize, extractor.weights.sha256, extractor.weights.calibrated,
            covariance_rank(ref.sigma), covariance_rank(stats.sigma),
        ))
    return results


def fid(a, b, **options) -> FIDResult:
    """Fréchet Inception Distance between sources ``a`` and ``b`` (see ``Options`` for keywords)."""
    opts = _options(options)
    return fid_many(opts.extractor(), a, [b], opts)[0]


def compute_stats(source, **options) -> Statistics:
    """FID statistics (mu, sigma, n, meta) of a source; save with ``statsfile.save_statistics``."""
    opts = _options(options)
    return opts.extractor().statistics(opts.open(source, 2, "a covariance"))


def inception_score(source, splits: int = 10, **options) -> ISResult:
    """Inception Score of a source over ``splits`` contiguous splits (see ``Options``)."""
    opts = _options(options)
    if splits < 1:
        raise GanMetricsError(f"--splits must be at least 1, got {splits}")
    extractor = opts.extractor()
    image_source = opts.open(source, max(2, splits), f"an Inception Score over {splits} splits")
    accumulator = InceptionScoreAccumulator(splits, total=len(image_source))
    extractor.reduce(image_source, inception_score=accumulator)
    mean, std = inception_score_from_sums(*accumulator.sums())
    return ISResult(mean, std, splits, len(image_source), extractor.resize, extractor.weights.sha256,
                    extractor.weights.calibrated)
