"""The Python API: ``fid``, ``inception_score`` and ``compute_stats``, wiring sources, weights,
the extractor, reducers and metrics. Every function raises ``GanMetricsError`` for bad input.

A source is a folder of images, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.npy``/``.npz``
array file, a uint8 array or tensor (N, H, W, 3) or (N, 3, H, W), or an ``ImageSource`` (e.g.
``GeneratorSource(generator, n=N)``); for ``fid`` also a statistics ``.npz`` (ours, pytorch-fid's
or TTUR's). Statistics of the reference side (``fid``'s first source) are cached by default for
folders and archives (see ``cache.py`` and ``Options.cache``).
"""

import os
import warnings
from dataclasses import dataclass

from .cache import cached_statistics
from .errors import GanMetricsError
from .extract import FeatureExtractor, default_workers, resolve_device
from .metrics import covariance_rank, frechet_distance, inception_score_from_sums
from .reducers import InceptionScoreAccumulator
from .sources import FolderSource, ImageSource, TarSource, ZipSource, open_source
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
    tf32: bool = False


@dataclass(frozen=True)
class ISResult:
    """Inception Score: mean and population std over ``splits`` contiguous splits of ``n`` images.
    ``tf32``: the network ran with TF32 on a GPU (``allow_tf32``)."""

    mean: float
    std: float
    splits: int
    n: int
    resize: str
    weights_sha256: str
    calibrated: bool
    tf32: bool = False


@dataclass
class Options:
    """Settings shared by every API function (the CLI's shared options).

    ``cache``: True caches the statistics of every source that can be fingerprinted (not
    generators), False none; None (default) only those of a folder or archive on the reference
    side. ``strict``: refuse non-image files in folders and archives instead of skipping them.
    ``allow_tf32``: let a CUDA GPU use TF32 (faster, moves FID; recorded as ``tf32``).
    """

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
    cache: bool | None = None
    strict: bool = False
    allow_tf32: bool = False

    @classmethod
    def from_keywords(cls, keywords: dict) -> "Options":
        """Options from an API function's keywords; an unknown one is a GanMetricsError."""
        try:
            return cls(**keywords)
        except TypeError as err:
            raise GanMetricsError(f"{err}: see help(ganmetrics.api.Options) for the accepted options") from None

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
            allow_tf32=self.allow_tf32,
        )

    def open(self, spec, minimum: int, purpose: str):
        source = open_source(spec, recursive=self.recursive, key=self.key, limit=self.limit, strict=self.strict)
        if len(source) < minimum:
            raise GanMetricsError(
                f"{source.describe()} has {len(source)} image{'s' if len(source) != 1 else ''}; "
                f"{purpose} needs at least {minimum}: add images"
            )
        return source

    def use_cache(self, source: ImageSource, reference: bool) -> bool:
        """Whether the statistics of ``source`` go through the cache (see ``cache``)."""
        if self.cache is not None:
            return self.cache
        return reference and isinstance(source, (FolderSource, ZipSource, TarSource))


def source_statistics(source: ImageSource, extractor: FeatureExtractor, use_cache: bool) -> Statistics:
    """FID statistics of an opened source, through the cache when ``use_cache``."""
    return cached_statistics(source, extractor) if use_cache else extractor.statistics(source)


def resolve_statistics(spec, extractor: FeatureExtractor, options: Options, reference: bool = False) -> Statistics:
    """Statistics of a source, or read from a statistics file and checked against this run.
    ``reference``: ``spec`` is the reference side (cached by default, see ``Options.cache``)."""
    if isinstance(spec, Statistics):
        check_compatible(spec, "the given statistics", extractor.dims, extractor.resize,
                         extractor.weights.sha256, options.allow_mismatch)
        return spec
    if isinstance(spec, (str, os.PathLike)) and is_statistics_file(spec):
        stats = load_statistics(spec)
        check_compatible(stats, spec, extractor.dims, extractor.resize, extractor.weights.sha256, options.allow_mismatch)
        return stats
    source = options.open(spec, 2, "a covariance (FID)")
    return source_statistics(source, extractor, options.use_cache(source, reference))


def fid_many(extractor: FeatureExtractor, reference, others: list, options: Options) -> list[FIDResult]:
    """FID of each of ``others`` against ``reference``, whose statistics are computed once."""
    ref = resolve_statistics(reference, extractor, options, reference=True)
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
            frechet_distance(ref.mu, ref.sigma, stats.mu, stats.sigma, extractor.device), ref.n, stats.n, extractor.dims,
            extractor.resize, extractor.weights.sha256, extractor.weights.calibrated,
            covariance_rank(ref.sigma), covariance_rank(stats.sigma), extractor.tf32,
        ))
    return results


def fid(a, b, **options) -> FIDResult:
    """Fréchet Inception Distance between sources ``a`` and ``b`` (see ``Options`` for keywords)."""
    opts = Options.from_keywords(options)
    return fid_many(opts.extractor(), a, [b], opts)[0]


def compute_stats(source, **options) -> Statistics:
    """FID statistics (mu, sigma, n, meta) of a source; save with ``statsfile.save_statistics``."""
    opts = Options.from_keywords(options)
    image_source = opts.open(source, 2, "a covariance")
    return source_statistics(image_source, opts.extractor(), opts.use_cache(image_source, reference=False))


def inception_score(source, splits: int = 10, **options) -> ISResult:
    """Inception Score of a source over ``splits`` contiguous splits (see ``Options``)."""
    opts = Options.from_keywords(options)
    if splits < 1:
        raise GanMetricsError(f"--splits must be at least 1, got {splits}")
    image_source = opts.open(source, max(2, splits), f"an Inception Score over {splits} splits")
    extractor = opts.extractor()
    accumulator = InceptionScoreAccumulator(splits, total=len(image_source), device=extractor.device)
    extractor.reduce(image_source, inception_score=accumulator)
    mean, std = inception_score_from_sums(*accumulator.sums())
    return ISResult(mean, std, splits, len(image_source), extractor.resize, extractor.weights.sha256,
                    extractor.weights.calibrated, extractor.tf32)
