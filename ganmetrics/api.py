"""The Python API: one function per entry point, each ``f(..., config=None, **keywords)``:
``evaluate`` (any registered metrics on any encoders, one pass per source; ``evaluate_many`` for
several generated sets against one reference), ``fid`` and ``inception_score`` (views of the
same evaluation), ``compute_stats``, ``compute_stats_shard`` and ``merge_stats_shards`` (reference
statistics, whole or in parts), and ``pack`` (images to an ADM batch). Every function raises
``GanMetricsError`` for bad input.

A source is a folder of images, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.npy``/``.npz``
array file, a uint8 array or tensor (N, H, W, 3) or (N, 3, H, W), or an ``ImageSource`` (e.g.
``GeneratorSource(generator, n=N)``); for the reference side also a statistics ``.npz`` (ours,
pytorch-fid's, TTUR's, or an ADM batch's: images with statistics beside them) or ``Statistics``.
The reference side's reduced values are cached by default for folders and archives (see
``store/cache.py`` and ``RunConfig.cache``). Keywords: ``config`` (a ``RunConfig``) or its
fields, the source options (``limit``, ``recursive``, ``key``, ``strict``) and the default
encoder's options (the Inception's ``resize`` and ``dims``); ``encoders={name: {option:
value}}`` and ``weights={name: spec}`` for any encoder; the metrics' options (``splits``,
``is_split_size``, ``kid_subsets``, ``kid_subset_size``, ``seed``, ``pr_k``, ``dc_k``,
``inf_min``, ...); and for ``evaluate`` and ``fid`` the bootstrap interval's ``ci``,
``ci_level``, ``ci_method`` and ``ci_seed`` (``IntervalOptions``).

Inside a torch.distributed job (the caller's process group, e.g. under torchrun) every function
runs on every rank: each reads its own share of each source, and every rank returns the same
result (``engine/distributed.py``).
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import IntervalOptions, RunConfig
from .engine.distributed import ShardSpec
from .engine.readahead import ReadAhead
from .errors import GanMetricsError, quoted
from .evaluation.cache import reduce_with_cache
from .evaluation.classes import class_sides, evaluate_classes
from .evaluation.plan import Plan, make_plan
from .evaluation.run import evaluate_sides
from .evaluation.shards import compute_shard, merge_shards
from .evaluation.sides import network_provenance, open_checked
from .evaluation.statistics import stats_needs, statistics_of
from .metrics.registry import metric_option_names
from .provenance import Provenance
from .store.batchfile import image_batch_writer
from .store.shardfile import Shard, load_shard, read_shard_meta
from .store.statsfile import Statistics

DEFAULT_METRICS = ("fid", "is")


@dataclass(frozen=True)
class EvalResult:
    """The requested metrics of one generated side against the reference. ``results``: {key:
    value} (``fid``, ``is_mean``, ``is_std``, ``kid``, ``kid_std``, ..., ``fid@ENCODER`` for a
    metric on another encoder than its default, and with ``ci`` the ``<key>_ci_low``/
    ``<key>_ci_high`` of each metric's interval keys); ``settings``: the encoders' options and
    every option the metrics ran with; ``n_a``/``n_b``: image counts (None where unknown or, for
    ``n_a``, where no metric needed the reference); ``details``: what metrics return beyond
    their results (FID∞'s fitted points, memorisation's closest pairs). A ``per_class`` result's
    keys are those of each class (``fid/cat``, ...) and ``intra_fid`` (``evaluation/classes.py``);
    ``classes``: {class: {"n_a", "n_b"}} (empty otherwise), ``n_a``/``n_b`` the classes' totals.
    ``names_a``/``names_b``: each side's image names in image order, which the image indices of
    details refer to (None where a side's images were not opened: a statistics file, or classes)."""

    source_a: str
    source_b: str
    n_a: int | None
    n_b: int | None
    results: dict
    settings: dict
    provenance: Provenance
    details: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)
    names_a: Sequence[str] | None = field(default=None, repr=False)
    names_b: Sequence[str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FIDResult:
    """FID in squared feature units, with what it was computed from: a view of the evaluation
    of ``fid`` (``of``). ``rank_a``/``rank_b``: numerical ranks of the covariances (below ``dims``
    when a set has fewer than dims+1 images)."""

    value: float
    n_a: int | None
    n_b: int | None
    dims: int
    resize: str | None
    weights_sha256: str
    calibrated: bool
    rank_a: int
    rank_b: int
    tf32: bool = False
    ci_low: float | None = None
    ci_high: float | None = None
    ci_settings: dict = field(default_factory=dict)

    @classmethod
    def of(cls, result: EvalResult) -> "FIDResult":
        values, settings, first = result.results, result.settings, result.provenance.encoders[0]
        return cls(values["fid"], result.n_a, result.n_b, settings["dims"], settings.get("resize"), first.weights_sha256,
                   first.calibrated, result.details["fid_rank_a"], result.details["fid_rank_b"], result.provenance.tf32,
                   values.get("fid_ci_low"), values.get("fid_ci_high"),
                   {k: v for k, v in settings.items() if k.startswith("ci")})


@dataclass(frozen=True)
class ISResult:
    """Inception Score: mean and population std over ``splits`` contiguous splits of ``n`` images
    (with ``split_size``: runs of that many images, the last one shorter, as the ADM evaluator):
    a view of the evaluation of ``is`` (``of``). ``tf32``: the network ran with TF32 on a GPU."""

    mean: float
    std: float
    splits: int
    n: int
    resize: str | None
    weights_sha256: str
    calibrated: bool
    tf32: bool = False
    split_size: int | None = None

    @classmethod
    def of(cls, result: EvalResult) -> "ISResult":
        values, settings, first = result.results, result.settings, result.provenance.encoders[0]
        return cls(values["is_mean"], values["is_std"], settings["splits"], result.n_b, settings.get("resize"),
                   first.weights_sha256, first.calibrated, result.provenance.tf32, settings.get("is_split_size"))


def plan_of(metrics, config: RunConfig | None, keywords: dict) -> Plan:
    """The plan of ``metrics`` from ``config`` (or the run keywords), the metrics' options and
    the interval keywords among ``keywords`` (the API functions' keywords, consumed)."""
    interval = IntervalOptions.pop_keywords(keywords)
    names = metric_option_names()
    metric_options = {key: keywords.pop(key) for key in list(keywords) if key in names}
    if config is None:
        config = RunConfig.from_keywords(keywords)
    elif keywords:
        raise GanMetricsError(f"unexpected keyword argument {sorted(keywords)[0]!r} beside config=: put it in the "
                              "RunConfig, or pass keywords without config")
    return make_plan([metrics] if isinstance(metrics, str) else metrics, metric_options, config, interval)


def evaluate_many(a, others: list, metrics=DEFAULT_METRICS, config: RunConfig | None = None, per_class: bool = False,
                  **keywords) -> list[EvalResult]:
    """``evaluate`` of each of ``others`` against ``a``, whose work is done once."""
    plan = plan_of(metrics, config, keywords)
    evaluated = (evaluate_classes if per_class else evaluate_sides)(plan, a, list(others))
    return [EvalResult(str(a) if e.side_a is None else e.side_a.label, e.side_b.label,
                       None if e.side_a is None else e.side_a.n, e.side_b.n, e.values, e.settings, e.provenance, e.details,
                       e.classes, None if e.side_a is None else e.side_a.names, e.side_b.names)
            for e in evaluated]


def evaluate(a, b, metrics=DEFAULT_METRICS, config: RunConfig | None = None, per_class: bool = False,
             **keywords) -> EvalResult:
    """The ``metrics`` (``NAME`` of ``metrics.registry.METRICS`` on its default encoder, or
    ``NAME@ENCODER``; default fid and is) of the generated source ``b`` against the reference
    ``a``, every source read once and every image decoded once. One-sided metrics (is) are
    computed on ``b``. ``ci=B`` adds bootstrap intervals (``ci_level``, default 0.95;
    ``ci_method``, "basic" or "percentile"; ``ci_seed``, default 0) to the metrics that have them.
    ``per_class``: ``a`` and ``b`` are folders of class subfolders (``a`` also per-class
    statistics), and every metric is computed on each class, with ``intra_fid`` the mean of the
    classes' FIDs (``evaluation/classes.py``)."""
    return evaluate_many(a, [b], metrics, config, per_class, **keywords)[0]


def fid(a, b, config: RunConfig | None = None, **keywords) -> FIDResult:
    """Fréchet Inception Distance between sources ``a`` and ``b`` (with ``ci=B`` a bootstrap
    interval: ``ci_low``, ``ci_high``)."""
    return FIDResult.of(evaluate(a, b, ["fid"], config, fid_ranks=True, **keywords))


def inception_score(source, splits: int = 10, is_split_size: int | None = None, config: RunConfig | None = None,
                    **keywords) -> ISResult:
    """Inception Score of a source over ``splits`` contiguous splits, or with ``is_split_size``
    over contiguous runs of that many images (the ADM evaluator's 5000)."""
    return ISResult.of(evaluate(None, source, ["is"], config, splits=splits, is_split_size=is_split_size, **keywords))


def _stats_plan(metrics, features: bool, more, config, keywords) -> tuple[Plan, dict]:
    plan = plan_of(metrics, config, keywords)
    needs = stats_needs(plan, features, more)
    if not needs:
        raise GanMetricsError(f"{', '.join(m.label for m in plan.metrics)} compare nothing with a reference: "
                              "statistics hold what two-sided metrics (fid, kid, ...) need of it")
    return plan, needs


def compute_stats(source, features: bool = False, more: tuple[str, ...] = (), metrics=("fid",),
                  config: RunConfig | None = None, per_class: bool = False, **keywords) -> Statistics:
    """The statistics of an image source that the reference side of ``metrics`` needs (default
    FID's: mu, sigma, n, meta), for every encoder they run on, in one pass; with ``features``
    also each FID Gaussian's feature bank (every image's features, for KID: 4 x dims bytes an
    image); with ``more`` the default encoder's Gaussians of those further features
    (``("spatial",)``: sFID's, what ``ganmetrics stats --format adm`` writes); with
    ``per_class``, of each class subfolder of the folder ``source`` apart (``Statistics.classes``,
    for ``evaluate(..., per_class=True)``). Save with ``save_statistics``."""
    plan, needs = _stats_plan(metrics, features, more, config, keywords)
    if per_class:
        return _class_stats(source, plan, needs)
    image_source = open_checked(source, plan.config, needs)
    provenance = network_provenance(plan)
    values = reduce_with_cache(image_source, plan, needs, provenance, reference=False)
    return statistics_of(plan, provenance, values, image_source.describe())


def _class_stats(folder, plan: Plan, needs: dict) -> Statistics:
    """``compute_stats`` of each class of ``folder`` apart: every class opened before any is
    read, then read in turn; the classes share their encoders' metas (whose source: ``folder``)."""
    classes = class_sides(folder, plan.config.sources)
    if any(isinstance(spec, Statistics) for spec, _ in classes.classes.values()):
        raise GanMetricsError(f"{quoted(classes.label)} holds per-class statistics already: pass the folder of class "
                              "subfolders they were made of")
    sources = {name: open_checked(spec, plan.config, needs) for name, (spec, _) in classes.classes.items()}
    provenance = network_provenance(plan)
    with ReadAhead(list(sources.values())) as read_ahead:
        values = {name: reduce_with_cache(source, plan, needs, provenance, reference=False, read_ahead=read_ahead)
                  for name, source in sources.items()}
    parts = {name: statistics_of(plan, provenance, value, f"folder {classes.label}") for name, value in values.items()}
    return Statistics(metas=next(iter(parts.values())).metas, classes=parts)


def compute_stats_shard(source, shard: str, features: bool = False, metrics=("fid",), config: RunConfig | None = None,
                        **keywords) -> Shard:
    """The exact reduced states of part ``shard`` ("K/N": K from 0 to N-1) of ``source`` (a
    contiguous block of whole batches of ``batch_size``), to save with ``save_shard`` and merge
    with ``merge_stats_shards``: what a batch scheduler runs, one part a job. Never cached."""
    plan, needs = _stats_plan(metrics, features, (), config, keywords)
    return compute_shard(plan, open_checked(source, plan.config, needs), needs, ShardSpec.parse(shard))


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

    return merge_shards(metas, states_of)


@dataclass(frozen=True)
class PackResult:
    """What ``pack`` wrote: ``n`` images of ``height`` x ``width`` as ``arr_0`` of ``path``."""

    path: str
    n: int
    height: int
    width: int


def pack(source, output, config: RunConfig | None = None, **keywords) -> PackResult:
    """Write the images of ``source`` (a folder, archive, array or ``ImageSource``) to ``output``
    as an ADM batch: an ``.npz`` whose ``arr_0`` is uint8 (N, H, W, 3), streamed batch by batch
    (memory: a few decoded batches, whatever N), atomically. Every image must have the size of
    the first (keywords: ``RunConfig``'s ``batch_size``, ``workers``, ``progress`` and the
    source options)."""
    from tqdm import tqdm  # with importlib.metadata: not at start-up

    from .engine.loader import checked_batches, make_loader  # torch's DataLoader
    from .engine.runtime import default_workers
    from .sources.base import unchanged

    config = RunConfig.from_keywords(keywords) if config is None else config
    image_source = open_checked(source, config, {})
    workers = default_workers() if config.workers is None else config.workers
    batches = checked_batches(make_loader(image_source, (unchanged,), config.batch_size, workers, pin_memory=False))
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
