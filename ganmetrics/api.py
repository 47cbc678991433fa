"""The Python API: ``evaluate`` (any registered metrics, one pass per source), the thin
``fid``, ``inception_score`` and ``compute_stats`` wrappers, and ``pack`` (images to an ADM batch). Every function raises
``GanMetricsError`` for bad input.

A source is a folder of images, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.npy``/``.npz``
array file, a uint8 array or tensor (N, H, W, 3) or (N, 3, H, W), or an ``ImageSource`` (e.g.
``GeneratorSource(generator, n=N)``); for the reference side also a statistics ``.npz`` (ours,
pytorch-fid's, TTUR's, or an ADM batch's: images with statistics beside them) or ``Statistics``. The reference side's reduced states are cached by
default for folders and archives (see ``store/cache.py`` and ``RunConfig.cache``). Keywords:
the fields of ``RunConfig`` and ``SourceOptions``, the metrics' options (``dims``,
``splits``, ``is_split_size``, ``kid_subsets``, ``kid_subset_size``, ``kid_degree``,
``kid_gamma``, ``kid_coef0``, ``seed``, ``kid_shrink``, ``pr_k``, ``pr_variant``, ``dc_k``,
``inf_min``, ...), and for ``evaluate`` and ``fid`` the bootstrap interval's ``ci``,
``ci_level``, ``ci_method`` and ``ci_seed`` (``IntervalOptions``).

Inside a torch.distributed job (the caller's process group, e.g. under torchrun) every function
runs on every rank: each reads its own share of each source, and every rank returns the same
result (``engine/distributed.py``). ``compute_stats_shard`` and ``merge_stats_shards`` split one
``compute_stats`` into parts that separate jobs run and any machine merges exactly.
"""

import itertools
from dataclasses import dataclass, field, replace

from .config import IntervalOptions, RunConfig
from .engine import distributed
from .engine.distributed import ShardSpec
from .engine.sides import (check_provenance, needs_of, open_checked, open_extractor, open_side, reads_in_turn,
                           reduce_side, reduce_with_cache, run_provenance)
from .errors import GanMetricsError, quoted
from .metrics.base import Metric, Need
from .metrics.bootstrap import (GENERATED, REFERENCE, bootstrap_intervals, check_replicate_counts,
                                resampling_needs)
from .metrics.fid import FID
from .metrics.inception_score import InceptionScore
from .metrics.linalg import covariance_rank
from .metrics.reducers import FeatureBank, GaussianStats
from .metrics.registry import METRICS, build_metrics, metric_option_names
from .provenance import Provenance
from .store.batchfile import image_batch_writer
from .store.shardfile import Shard, load_shard, read_shard_meta
from .store.statsfile import Statistics

DEFAULT_METRICS = ("fid", "is")


@dataclass(frozen=True)
class EvalResult:
    """The requested metrics of one generated side against the reference. ``results``: {key:
    value} (``fid``, ``is_mean``, ``is_std``, ``kid``, ``kid_std``, ..., and with ``ci`` the
    ``<key>_ci_low``/``<key>_ci_high`` of each metric's ``interval_keys``); ``settings``: the
    resize and every option the metrics ran with; ``n_a``/``n_b``: image counts (None where
    unknown or, for ``n_a``, where no metric needed the reference); ``details``: what metrics
    return beyond their results (FID∞'s fitted points)."""

    source_a: str
    source_b: str
    n_a: int | None
    n_b: int | None
    results: dict
    settings: dict
    provenance: Provenance
    details: dict = field(default_factory=dict)


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
    ci_low: float | None = None
    ci_high: float | None = None
    ci_settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ISResult:
    """Inception Score: mean and population std over ``splits`` contiguous splits of ``n`` images
    (with ``split_size``: runs of that many images, the last one shorter, as the ADM evaluator).
    ``tf32``: the network ran with TF32 on a GPU (``allow_tf32``)."""

    mean: float
    std: float
    splits: int
    n: int
    resize: str
    weights_sha256: str
    calibrated: bool
    tf32: bool = False
    split_size: int | None = None


def split_options(options: dict) -> tuple[RunConfig, dict]:
    """API keywords -> (the run's config, the metrics' options)."""
    metric_names = metric_option_names()
    config = RunConfig.from_keywords({k: v for k, v in options.items() if k not in metric_names})
    return config, {"dims": config.dims, **{k: v for k, v in options.items() if k in metric_names}}


def evaluate_sides(extractor, a, others: list, metrics: list[Metric], config: RunConfig,
                   interval: IntervalOptions = IntervalOptions()):
    """Yield (side a or None, side b, values, settings, details, provenance) for each of
    ``others``. Every side is opened and every count checked before anything heavy; then the
    device and the weights are resolved where images need the network (``run_provenance``:
    between statistics files, the weights are only identified, where at hand), every statistics
    file checked against the run's provenance, and the reference ``a`` reduced once (only where
    a two-sided metric needs it) and each other side in one pass for every metric. Each metric
    sees the needs it declared.
    With ``interval.replicates``, the metrics that have ``interval_keys`` also get their
    bootstrap intervals (``metrics.bootstrap``), from the values their needs resample from,
    reduced in the same pass; the reference side is resampled unless it is a statistics file
    without features."""
    needs_a, needs_b = needs_of(metrics, extractor, "a"), needs_of(metrics, extractor, "b")
    bootstrapped = [metric for metric in metrics if metric.interval_keys] if interval.replicates else []
    if interval.replicates and not bootstrapped:
        have = ", ".join(name for name, cls in METRICS.items() if cls.interval_keys)
        raise GanMetricsError(f"--ci: no interval for {', '.join(m.name for m in metrics)}; "
                              f"request a metric that has one ({have}) or drop --ci")
    opened_a = open_side(a, extractor, needs_a, config) if needs_a else None
    resample_a = opened_a is not None and (opened_a.stats is None or opened_a.stats.features is not None)
    if bootstrapped:
        options = (interval.replicates, interval.seed)
        if resample_a:
            needs_a = {**needs_a, **resampling_needs(needs_of(bootstrapped, extractor, "a"), REFERENCE, *options)}
        needs_b = {**needs_b, **resampling_needs(needs_of(bootstrapped, extractor, "b"), GENERATED, *options)}
    opened = [open_side(other, extractor, needs_b, config, unmixed="--ci" if bootstrapped else None) for other in others]
    for side in opened:
        for metric in metrics:
            metric.check_counts(opened_a.n if opened_a and metric.sides == 2 else None, side.n)
        if bootstrapped:
            check_replicate_counts(bootstrapped, opened_a.n if opened_a else None, side.n, interval, resample_a)
    provenance, device = run_provenance(extractor, [side for side in (opened_a, *opened) if side], config)
    for side, needs in ((opened_a, needs_a), *((side, needs_b) for side in opened)):
        if side:
            check_provenance(side, provenance, extractor, needs, config)
    with reads_in_turn(opened_a, opened, config) as read_ahead:
        side_a = reduce_side(opened_a, extractor, needs_a, config, reference=True, read_ahead=read_ahead) if opened_a else None
        given = side_a.reduced if side_a else None
        for side_b in (reduce_side(side, extractor, needs_b, config, given=given, read_ahead=read_ahead) for side in opened):
            values, settings, details = {}, {"resize": provenance.resize}, {}
            for metric in metrics:
                reference = ({need: side_a.reduced[need] for need in metric.reference_needs(extractor)}
                             if metric.sides == 2 else None)
                generated = {need: side_b.reduced[need] for need in metric.needs(extractor)}
                out = metric.compute(reference, generated, device)
                values.update({key: out[key] for key in metric.keys})
                details.update({key: value for key, value in out.items() if key not in metric.keys})
                settings.update(metric.settings(reference, generated))
            if bootstrapped:
                values.update(bootstrap_intervals(bootstrapped, extractor, side_a.reduced if side_a else None,
                                                  side_b.reduced, values, interval, resample_a, device))
                settings.update(interval.settings())
                if any(metric.sides == 2 for metric in bootstrapped):
                    settings["ci_reference_resampled"] = resample_a
            yield side_a, side_b, values, settings, details, provenance


def evaluate_many(a, others: list, metrics=DEFAULT_METRICS, **options) -> list[EvalResult]:
    """``evaluate`` of each of ``others`` against ``a``, whose work is done once."""
    interval = IntervalOptions.pop_keywords(options)
    config, metric_options = split_options(options)
    return evaluate_with_config(config, a, others, build_metrics(metrics, metric_options), interval)


def evaluate_with_config(config: RunConfig, a, others: list, chosen: list[Metric],
                         interval: IntervalOptions = IntervalOptions()) -> list[EvalResult]:
    """``evaluate_many`` with a ``RunConfig``, built metrics and interval options (the CLI's entry)."""
    extractor = open_extractor(config)
    return [EvalResult(str(a) if side_a is None else side_a.label, side_b.label, None if side_a is None else side_a.n,
                       side_b.n, values, settings, provenance, details)
            for side_a, side_b, values, settings, details, provenance
            in evaluate_sides(extractor, a, list(others), chosen, config, interval)]


def evaluate(a, b, metrics=DEFAULT_METRICS, **options) -> EvalResult:
    """The ``metrics`` (names of ``metrics.registry.METRICS``; default fid and is) of the
    generated source ``b`` against the reference ``a``, every source read once. One-sided
    metrics (is) are computed on ``b``. ``ci=B`` adds bootstrap intervals (``ci_level``,
    default 0.95; ``ci_method``, "basic" or "percentile"; ``ci_seed``, default 0) to the
    metrics that have them."""
    return evaluate_many(a, [b], metrics, **options)[0]


def fid_with_config(config: RunConfig, a, others: list, interval: IntervalOptions = IntervalOptions()) -> list[FIDResult]:
    """FID of each of ``others`` against ``a``, whose statistics are computed once (the CLI's entry)."""
    extractor = open_extractor(config)
    metric = FID(config.dims)
    need = metric.need(extractor)
    return [FIDResult(values["fid"], side_a.n, side_b.n, config.dims, provenance.resize, provenance.weights_sha256,
                      provenance.calibrated, covariance_rank(side_a.reduced[need].sigma),
                      covariance_rank(side_b.reduced[need].sigma), provenance.tf32, values.get("fid_ci_low"),
                      values.get("fid_ci_high"), {k: v for k, v in settings.items() if k.startswith("ci")})
            for side_a, side_b, values, settings, _, provenance
            in evaluate_sides(extractor, a, others, [metric], config, interval)]


def fid(a, b, **options) -> FIDResult:
    """Fréchet Inception Distance between sources ``a`` and ``b`` (keywords: ``RunConfig``, and
    ``ci=B``, ``ci_level``, ``ci_method``, ``ci_seed`` for a bootstrap interval: ``ci_low``, ``ci_high``)."""
    interval = IntervalOptions.pop_keywords(options)
    return fid_with_config(RunConfig.from_keywords(options), a, [b], interval)[0]


def inception_score(source, splits: int = 10, is_split_size: int | None = None, **options) -> ISResult:
    """Inception Score of a source over ``splits`` contiguous splits, or with ``is_split_size``
    over contiguous runs of that many images (the ADM evaluator's 5000) (keywords: ``RunConfig``)."""
    return inception_score_with_config(RunConfig.from_keywords(options), source, splits, is_split_size)


def inception_score_with_config(config: RunConfig, source, splits: int = 10,
                                is_split_size: int | None = None) -> ISResult:
    """``inception_score`` with a ``RunConfig`` (the CLI's entry)."""
    metric = InceptionScore(splits, is_split_size)
    extractor = open_extractor(config)
    (_, side, values, settings, _, provenance), = evaluate_sides(extractor, None, [source], [metric], config)
    return ISResult(values["is_mean"], values["is_std"], settings["splits"], side.n, provenance.resize,
                    provenance.weights_sha256, provenance.calibrated, provenance.tf32, is_split_size)


def compute_stats(source, features: bool = False, more: tuple[str, ...] = (), **options) -> Statistics:
    """FID statistics (mu, sigma, n, meta) of an image source at ``dims``; with ``features``
    also its feature bank (every image's features, for KID: 4 x dims bytes an image); with
    ``more`` the Gaussians of those further features, in the same pass (``("spatial",)``:
    sFID's, what ``ganmetrics stats --format adm`` writes). Save with ``save_statistics``."""
    return compute_stats_with_config(RunConfig.from_keywords(options), source, features, more)


def _stats_needs(extractor, config: RunConfig, features: bool,
                 more: tuple[str, ...] = ()) -> tuple[Need, Need, dict[Need, Need], dict[Need, str]]:
    """(the Gaussian need, the bank need, {further feature's Gaussian need} of ``more``, the needs
    of ``stats``: the bank's when ``features``)."""
    gaussian = FID(config.dims).need(extractor)
    bank = Need(gaussian.feature, FeatureBank)
    unknown = [feature for feature in more if feature not in extractor.features]
    if unknown:
        raise GanMetricsError(f"the feature extractor has no feature {unknown[0]!r}: use one of {', '.join(extractor.features)}")
    beside = {Need(feature, GaussianStats): f"the {feature} statistics" for feature in more if feature != gaussian.feature}
    return gaussian, bank, beside, {gaussian: "fid", **({bank: "the feature bank"} if features else {}), **beside}


def compute_stats_with_config(config: RunConfig, source, features: bool = False,
                              more: tuple[str, ...] = ()) -> Statistics:
    """``compute_stats`` with a ``RunConfig`` (the CLI's entry)."""
    extractor = open_extractor(config)
    gaussian, bank, beside, needs = _stats_needs(extractor, config, features, more)
    image_source = open_checked(source, config, needs)
    reduced = reduce_with_cache(image_source, extractor, needs, config, reference=False)
    stats = reduced[gaussian]
    primary = Statistics(stats.mu, stats.sigma, stats.n,
                         extractor.provenance.meta(len(stats.mu), image_source.describe()), reduced.get(bank))
    return replace(primary, more={need.feature: primary.beside(reduced[need].mu, reduced[need].sigma) for need in beside})


def compute_stats_shard(source, shard: str, features: bool = False, **options) -> Shard:
    """The exact reduced state of part ``shard`` ("K/N": K from 0 to N-1) of ``source`` (a
    contiguous block of whole batches of ``batch_size``), to save with ``save_shard`` and merge
    with ``merge_stats_shards``: what a batch scheduler runs, one part a job. Never cached."""
    return compute_stats_shard_with_config(RunConfig.from_keywords(options), source, ShardSpec.parse(shard), features)


def compute_stats_shard_with_config(config: RunConfig, source, spec: ShardSpec, features: bool = False) -> Shard:
    """``compute_stats_shard`` with a ``RunConfig`` (the CLI's entry)."""
    extractor = open_extractor(config)
    gaussian, _, _, needs = _stats_needs(extractor, config, features)
    image_source = open_checked(source, config, needs)
    info = distributed.shard_info(image_source, spec, config.batch_size)
    from .engine.runner import reduce_source  # torch: only where images run through the network

    reducers = reduce_source(image_source, extractor, list(needs), config, positions=range(info["start"], info["stop"]))
    meta = {**extractor.provenance.meta(extractor.features[gaussian.feature], image_source.describe()), "shard": info}
    return Shard(meta, {reducer.kind: reducer.state() for reducer in reducers.values()})


def merge_stats_shards(shards) -> Statistics:
    """The statistics of a whole source from every shard of one ``compute_stats_shard`` run
    (``Shard`` objects or shard file paths, in any order): exact (the counts, means and
    co-moments merge as one pass would; feature banks join in image order); refused with a
    one-line error when a shard is missing or given twice, or when they differ in source or
    settings. The same result as ``compute_stats`` of the whole, to rounding (1e-12)."""
    shards = list(shards)
    metas = [(f"shard {i}", shard.meta) if isinstance(shard, Shard) else (str(shard), read_shard_meta(shard))
             for i, shard in enumerate(shards)]

    def states_of(position: int) -> dict:
        shard = shards[position]
        return (shard if isinstance(shard, Shard) else load_shard(shard)).states

    meta, reducers = distributed.merge_shards(metas, states_of)
    gaussian = reducers[GaussianStats.kind]
    bank = reducers.get(FeatureBank.kind)
    if gaussian.count < 2:
        raise GanMetricsError(f"the shards hold {gaussian.count} image(s); a covariance needs at least 2: add images")
    return Statistics(gaussian.mu(), gaussian.sigma(), gaussian.count, meta, None if bank is None else bank.result())


@dataclass(frozen=True)
class PackResult:
    """What ``pack`` wrote: ``n`` images of ``height`` x ``width`` as ``arr_0`` of ``path``."""

    path: str
    n: int
    height: int
    width: int


def pack(source, output, **options) -> PackResult:
    """Write the images of ``source`` (a folder, archive, array or ``ImageSource``) to ``output``
    as an ADM batch: an ``.npz`` whose ``arr_0`` is uint8 (N, H, W, 3), streamed batch by batch
    (memory: a few decoded batches, whatever N), atomically. Every image must have the size of
    the first (keywords: ``RunConfig``'s ``batch_size``, ``workers``, ``progress`` and the
    source options)."""
    return pack_with_config(RunConfig.from_keywords(options), source, output)


def pack_with_config(config: RunConfig, source, output) -> PackResult:
    """``pack`` with a ``RunConfig`` (the CLI's entry)."""
    from tqdm import tqdm  # with importlib.metadata, 0.05 s: not at start-up

    from .engine.loader import checked_batches, make_loader  # torch's DataLoader
    from .engine.runtime import default_workers
    from .sources.base import unchanged

    image_source = open_checked(source, config, {})
    workers = default_workers() if config.workers is None else config.workers
    loader = make_loader(image_source, unchanged, config.batch_size, workers, pin_memory=False)
    batches = checked_batches(loader)
    first = next(batches)
    height, width = first.groups[0][1].shape[1:3]
    with tqdm(total=len(image_source), desc=image_source.describe(), unit="img", disable=not config.progress,
              leave=False, dynamic_ncols=True) as bar, \
            image_batch_writer(output, (len(image_source), height, width, 3)) as write:
        for batch in itertools.chain([first], batches):
            if len(batch.groups) > 1 or batch.groups[0][1].shape[1:3] != (height, width):
                _refuse_mixed_sizes(image_source, batch, (height, width))
            write(batch.groups[0][1].numpy())
            bar.update(batch.size)
    return PackResult(str(output), len(image_source), height, width)


def _refuse_mixed_sizes(source, batch, size: tuple[int, int]) -> None:
    """The error for a batch holding an image of another size than the first image's."""
    position, shape = min((int(positions.min()), tuple(images.shape[1:3])) for positions, images in batch.groups
                          if tuple(images.shape[1:3]) != size)
    name, first = source.names[batch.start + position], source.names[0]
    raise GanMetricsError(
        f"image {quoted(name)} in {source.describe()} is {shape[1]}x{shape[0]}, but the first image {quoted(first)} is "
        f"{size[1]}x{size[0]}: the images of a batch share one size; resize them first"
    )
