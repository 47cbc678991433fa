"""The Python API: ``evaluate`` (any registered metrics, one pass per source) and the thin
``fid``, ``inception_score`` and ``compute_stats`` wrappers. Every function raises
``GanMetricsError`` for bad input.

A source is a folder of images, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.npy``/``.npz``
array file, a uint8 array or tensor (N, H, W, 3) or (N, 3, H, W), or an ``ImageSource`` (e.g.
``GeneratorSource(generator, n=N)``); for the reference side also a statistics ``.npz`` (ours,
pytorch-fid's or TTUR's) or ``Statistics``. The reference side's reduced states are cached by
default for folders and archives (see ``store/cache.py`` and ``RunConfig.cache``). Keywords:
the fields of ``RunConfig`` and ``SourceOptions``, and the metrics' options (``dims``,
``splits``, ``kid_subsets``, ``kid_subset_size``, ``kid_degree``, ``kid_gamma``,
``kid_coef0``, ``seed``, ``kid_shrink``).
"""

from dataclasses import dataclass

from .config import RunConfig
from .engine.sides import (check_provenance, needs_of, open_checked, open_extractor, open_side, reduce_side,
                           reduce_with_cache, run_provenance)
from .metrics.base import Metric, Need
from .metrics.fid import FID
from .metrics.inception_score import InceptionScore
from .metrics.linalg import covariance_rank
from .metrics.reducers import FeatureBank
from .metrics.registry import build_metrics, metric_option_names
from .provenance import Provenance
from .store.statsfile import Statistics

DEFAULT_METRICS = ("fid", "is")


@dataclass(frozen=True)
class EvalResult:
    """The requested metrics of one generated side against the reference. ``results``: {key:
    value} (``fid``, ``is_mean``, ``is_std``, ``kid``, ``kid_std``, ...); ``settings``: the
    resize and every option the metrics ran with; ``n_a``/``n_b``: image counts (None where
    unknown or, for ``n_a``, where no metric needed the reference)."""

    source_a: str
    source_b: str
    n_a: int | None
    n_b: int | None
    results: dict
    settings: dict
    provenance: Provenance


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


def split_options(options: dict) -> tuple[RunConfig, dict]:
    """API keywords -> (the run's config, the metrics' options)."""
    metric_names = metric_option_names()
    config = RunConfig.from_keywords({k: v for k, v in options.items() if k not in metric_names})
    return config, {"dims": config.dims, **{k: v for k, v in options.items() if k in metric_names}}


def evaluate_sides(extractor, a, others: list, metrics: list[Metric], config: RunConfig):
    """Yield (side a or None, side b, values, settings, provenance) for each of ``others``.
    Every side is opened and every count checked before anything heavy; then the device and
    the weights are resolved where images need the network (``run_provenance``: between
    statistics files, neither), every statistics file checked against the run's provenance,
    and the reference ``a`` reduced once (only where a two-sided metric needs it) and each
    other side in one pass for every metric."""
    needs_a, needs_b = needs_of(metrics, extractor, "a"), needs_of(metrics, extractor, "b")
    opened_a = open_side(a, extractor, needs_a, config) if needs_a else None
    opened = [open_side(other, extractor, needs_b, config) for other in others]
    for side in opened:
        for metric in metrics:
            metric.check_counts(opened_a.n if opened_a and metric.sides == 2 else None, side.n)
    provenance, device = run_provenance(extractor, [side for side in (opened_a, *opened) if side], config)
    for side, needs in ((opened_a, needs_a), *((side, needs_b) for side in opened)):
        if side:
            check_provenance(side, provenance, extractor, needs, config)
    side_a = reduce_side(opened_a, extractor, needs_a, config, reference=True) if opened_a else None
    for side_b in (reduce_side(side, extractor, needs_b, config) for side in opened):
        values, settings = {}, {"resize": provenance.resize}
        for metric in metrics:
            reference = side_a.reduced if metric.sides == 2 else None
            values.update(metric.compute(reference, side_b.reduced, device))
            settings.update(metric.settings(reference, side_b.reduced))
        yield side_a, side_b, values, settings, provenance


def evaluate_many(a, others: list, metrics=DEFAULT_METRICS, **options) -> list[EvalResult]:
    """``evaluate`` of each of ``others`` against ``a``, whose work is done once."""
    config, metric_options = split_options(options)
    return evaluate_with_config(config, a, others, build_metrics(metrics, metric_options))


def evaluate_with_config(config: RunConfig, a, others: list, chosen: list[Metric]) -> list[EvalResult]:
    """``evaluate_many`` with a ``RunConfig`` and built metrics (the CLI's entry)."""
    extractor = open_extractor(config)
    return [EvalResult(str(a) if side_a is None else side_a.label, side_b.label, None if side_a is None else side_a.n,
                       side_b.n, values, settings, provenance)
            for side_a, side_b, values, settings, provenance in evaluate_sides(extractor, a, list(others), chosen, config)]


def evaluate(a, b, metrics=DEFAULT_METRICS, **options) -> EvalResult:
    """The ``metrics`` (names of ``metrics.registry.METRICS``; default fid and is) of the
    generated source ``b`` against the reference ``a``, every source read once. One-sided
    metrics (is) are computed on ``b``."""
    return evaluate_many(a, [b], metrics, **options)[0]


def fid_with_config(config: RunConfig, a, others: list) -> list[FIDResult]:
    """FID of each of ``others`` against ``a``, whose statistics are computed once (the CLI's entry)."""
    extractor = open_extractor(config)
    metric = FID(config.dims)
    need = metric.need(extractor)
    return [FIDResult(values["fid"], side_a.n, side_b.n, config.dims, provenance.resize, provenance.weights_sha256,
                      provenance.calibrated, covariance_rank(side_a.reduced[need].sigma),
                      covariance_rank(side_b.reduced[need].sigma), provenance.tf32)
            for side_a, side_b, values, _, provenance in evaluate_sides(extractor, a, others, [metric], config)]


def fid(a, b, **options) -> FIDResult:
    """Fréchet Inception Distance between sources ``a`` and ``b`` (keywords: ``RunConfig``)."""
    return fid_with_config(RunConfig.from_keywords(options), a, [b])[0]


def inception_score(source, splits: int = 10, **options) -> ISResult:
    """Inception Score of a source over ``splits`` contiguous splits (keywords: ``RunConfig``)."""
    return inception_score_with_config(RunConfig.from_keywords(options), source, splits)


def inception_score_with_config(config: RunConfig, source, splits: int = 10) -> ISResult:
    """``inception_score`` with a ``RunConfig`` (the CLI's entry)."""
    metric = InceptionScore(splits)
    extractor = open_extractor(config)
    (_, side, values, _, provenance), = evaluate_sides(extractor, None, [source], [metric], config)
    return ISResult(values["is_mean"], values["is_std"], splits, side.n, provenance.resize, provenance.weights_sha256,
                    provenance.calibrated, provenance.tf32)


def compute_stats(source, features: bool = False, **options) -> Statistics:
    """FID statistics (mu, sigma, n, meta) of an image source at ``dims``; with ``features``
    also its feature bank (every image's features, for KID: 4 x dims bytes an image). Save
    with ``save_statistics``."""
    return compute_stats_with_config(RunConfig.from_keywords(options), source, features)


def compute_stats_with_config(config: RunConfig, source, features: bool = False) -> Statistics:
    """``compute_stats`` with a ``RunConfig`` (the CLI's entry)."""
    extractor = open_extractor(config)
    gaussian = FID(config.dims).need(extractor)
    bank = Need(gaussian.feature, FeatureBank)
    needs = {gaussian: "fid", **({bank: "the feature bank"} if features else {})}
    image_source = open_checked(source, config, needs)
    reduced = reduce_with_cache(image_source, extractor, needs, config, reference=False)
    stats = reduced[gaussian]
    return Statistics(stats.mu, stats.sigma, stats.n, extractor.provenance.meta(len(stats.mu), image_source.describe()),
                      reduced.get(bank))
