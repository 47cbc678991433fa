"""One side of a comparison, reduced: from a statistics object or file, from the statistics
cache, or by running its source once for every need that is not already there.

Needs reduced by ``GaussianStats`` and ``FeatureBank`` are what statistics files and cache
entries hold (one entry per feature: the Gaussian, plus the bank when one was asked for); any
other need (the IS split sums) always comes from a run of the source.

Nothing is resolved before it is needed: a run between statistics files resolves no weights,
builds no network and imports no torch (``run_provenance``).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import RunConfig
from ..errors import GanMetricsError
from ..extractors.registry import DEFAULT_EXTRACTOR, build_extractor
from ..metrics.base import Metric, Need
from ..metrics.reducers import FeatureBank, GaussianStats, SplitSums
from ..provenance import Provenance
from ..sources import FolderSource, ImageSource, TarSource, ZipSource, open_source
from ..store import cache
from ..store.statsfile import Statistics, is_statistics_file, load_statistics

STORED = (GaussianStats, FeatureBank)
"""The reducers whose values statistics files and cache entries hold."""


@dataclass(frozen=True)
class Side:
    """A reduced side. ``label``: what the user passed, for the output; ``n``: its images (None
    for a statistics file that does not say); ``reduced``: {need: reduced value}."""

    label: str
    n: int | None
    reduced: Mapping[Need, Any]


def open_extractor(config: RunConfig):
    """The feature extractor of a run. Its device (checked then) and its weights are resolved
    on first need: ``run_provenance`` resolves them before any image is decoded."""
    return build_extractor(DEFAULT_EXTRACTOR, weights=config.weights, device=lambda: _device(config.device),
                           resize=config.resize, allow_tf32=config.allow_tf32, progress=config.progress)


def _device(spec: str):
    from .runtime import resolve_device  # torch: only where something runs on a device

    return resolve_device(spec)


def needs_of(metrics: list[Metric], extractor, side: str) -> dict[Need, str]:
    """{need: the metric names that need it} of the reference side ("a": two-sided metrics
    only) or of a generated side ("b": every metric)."""
    needs: dict[Need, str] = {}
    for metric in metrics:
        if side == "b" or metric.sides == 2:
            for need in metric.needs(extractor):
                needs[need] = f"{needs[need]}, {metric.name}" if need in needs else metric.name
    return needs


def minimum_images(needs: Mapping[Need, str]) -> tuple[int, str]:
    """The fewest images the needs allow, and what needs them (for the message)."""
    minimum, purpose = 1, ""
    for need, names in needs.items():
        least, purpose_of_need = 2, f"a covariance ({names.upper()})"
        if need.reducer is SplitSums:
            splits = dict(need.options)["splits"]
            least, purpose_of_need = max(2, splits), f"an Inception Score over {splits} splits"
        elif need.reducer is FeatureBank:
            purpose_of_need = names.upper()
        if least > minimum:
            minimum, purpose = least, purpose_of_need
    return minimum, purpose


def use_cache(source: ImageSource, config: RunConfig, reference: bool) -> bool:
    """Whether the reduced states of ``source`` go through the cache (``RunConfig.cache``)."""
    if config.cache is not None:
        return config.cache
    return reference and isinstance(source, (FolderSource, ZipSource, TarSource))


def open_checked(spec, config: RunConfig, needs: Mapping[Need, str]) -> ImageSource:
    """``spec`` opened as a source, with at least as many images as ``needs`` allow."""
    options = config.sources
    source = open_source(spec, recursive=options.recursive, key=options.key, limit=options.limit, strict=options.strict)
    minimum, purpose = minimum_images(needs)
    if len(source) < minimum:
        raise GanMetricsError(
            f"{source.describe()} has {len(source)} image{'s' if len(source) != 1 else ''}; "
            f"{purpose} needs at least {minimum}: add images"
        )
    return source


@dataclass(frozen=True)
class OpenedSide:
    """A side checked and opened, not yet reduced: a statistics file's contents (``stats``) or
    an opened ``source``. Opening is cheap (a folder listing, an archive's index), so every
    side of a run is opened, and every count checked, before any image is decoded."""

    label: str
    n: int | None
    stats: Statistics | None = None
    source: ImageSource | None = None


def open_side(spec, extractor, needs: Mapping[Need, str], config: RunConfig) -> OpenedSide:
    """Open one side for ``needs`` ({need: the metric names that need it}). ``spec``: a
    ``Statistics``, a statistics file, or any source. A statistics file is checked for what the
    needs take from it (its dims, a feature bank); its resize and weights are checked against
    the run's provenance by ``check_provenance``, once that is known."""
    if isinstance(spec, Statistics) or isinstance(spec, (str, os.PathLike)) and is_statistics_file(spec):
        stats, where = (spec, "the given statistics") if isinstance(spec, Statistics) else (load_statistics(spec), spec)
        for need, names in needs.items():
            _check_statistics(stats, where, extractor, need, names.upper())
        return OpenedSide(str(where), stats.n, stats=stats)
    source = open_checked(spec, config, needs)
    label = str(spec) if isinstance(spec, (str, os.PathLike)) else source.describe()
    return OpenedSide(label, len(source), source=source)


def run_provenance(extractor, opened: list[OpenedSide], config: RunConfig) -> tuple[Provenance, Any]:
    """(where this run's numbers come from, the device its metric math runs on; None: the CPU).

    A run that decodes images needs the network: its device is checked and its weights resolved
    here, before any image is decoded. A run between statistics files alone builds no network
    and resolves no weights (``--weights`` is not used): its provenance is that of the first
    file that carries metadata (the others must match it, as ``check_provenance`` checks), with
    this run's resize, and its math runs on the CPU unless ``--device`` names a GPU. Files
    without metadata (pytorch-fid's, TTUR's) say nothing of their weights: the run's then stand in."""
    if any(side.source is not None for side in opened):
        extractor.device  # noqa: B018  (the cheap check first)
        return extractor.provenance, extractor.device
    metas = [side.stats.meta for side in opened if side.stats.meta and "weights_sha256" in side.stats.meta]
    provenance = Provenance.of_meta(metas[0], extractor.resize) if metas else extractor.provenance
    return provenance, None if config.device in ("auto", "cpu") else _device(config.device)


def check_provenance(opened: OpenedSide, provenance: Provenance, extractor, needs: Mapping[Need, str],
                     config: RunConfig) -> None:
    """Refuse a statistics side made with another resize or weights than ``provenance`` (unless
    ``--allow-mismatch``); a side of images passes."""
    if opened.stats is not None:
        for need in needs:
            provenance.check(opened.stats.meta, opened.stats.dims, extractor.features[need.feature], opened.label,
                             config.allow_mismatch)


def reduce_side(opened: OpenedSide, extractor, needs: Mapping[Need, str], config: RunConfig,
                reference: bool = False) -> Side:
    """The reduced values of an opened side; ``reference``: cached by default when a folder or archive."""
    if opened.stats is not None:
        reduced = {need: opened.stats.features if need.reducer is FeatureBank else opened.stats for need in needs}
    else:
        reduced = reduce_with_cache(opened.source, extractor, needs, config, reference)
    return Side(opened.label, opened.n, reduced)


def resolve_side(spec, extractor, needs: Mapping[Need, str], config: RunConfig, reference: bool = False) -> Side:
    """``open_side``, ``check_provenance`` against the extractor's, then ``reduce_side``."""
    opened = open_side(spec, extractor, needs, config)
    check_provenance(opened, extractor.provenance, extractor, needs, config)
    return reduce_side(opened, extractor, needs, config, reference)


def _check_statistics(stats: Statistics, where, extractor, need: Need, purpose: str) -> None:
    if need.reducer not in STORED:
        raise GanMetricsError(f"{where} holds statistics, but {purpose} needs the images: pass the image source")
    if need.reducer is FeatureBank and stats.features is None:
        raise GanMetricsError(
            f"{where} holds statistics only, but {purpose} needs every image's features: pass the image "
            "source, or write the file with `ganmetrics stats --features`"
        )
    Provenance.check_dims(stats.dims, extractor.features[need.feature], where)


def cache_key(fingerprint: dict, provenance, dims: int) -> dict:
    """The cache key of the ``dims``-wide statistics of the source with ``fingerprint``
    (``ImageSource.fingerprint()``) under ``provenance``: what changes the numbers."""
    return {"source": fingerprint, "settings": provenance.meta(dims)}


def reduce_with_cache(source: ImageSource, extractor, needs: Mapping[Need, str], config: RunConfig,
                      reference: bool) -> dict[Need, Any]:
    """{need: reduced value} of an opened source: cached entries where they hold what is
    needed, the rest from one run of the source (whose new entries are then stored)."""
    fingerprint = source.fingerprint() if use_cache(source, config, reference) else None
    features = sorted({need.feature for need in needs if need.reducer in STORED}) if fingerprint is not None else []
    reduced, missing = {}, {}
    for feature in features:
        dims = extractor.features[feature]
        key = cache_key(fingerprint, extractor.provenance, dims)
        entry = cache.get(key, dims, source.describe())
        wanted = [need for need in needs if need.feature == feature and need.reducer in STORED]
        if entry is not None and (entry.features is not None or all(n.reducer is GaussianStats for n in wanted)):
            reduced.update({need: entry.features if need.reducer is FeatureBank else entry for need in wanted})
        else:
            missing[feature] = key
    to_run = [need for need in needs if need not in reduced]
    # An entry is stored whole: its Gaussian, with the bank where one is needed.
    to_run += [Need(feature, GaussianStats) for feature in missing]
    if not to_run:
        return reduced
    from .runner import reduce_source  # torch: only where images run through the network

    reducers = reduce_source(source, extractor, to_run, config)
    for feature, key in missing.items():
        gaussian = reducers[Need(feature, GaussianStats)].result()
        bank = reducers.get(Need(feature, FeatureBank))
        cache.put(key, Statistics(gaussian.mu, gaussian.sigma, gaussian.n,
                                  extractor.provenance.meta(len(gaussian.mu), source.describe()),
                                  None if bank is None else bank.result()))
    return {**reduced, **{need: reducers[need].result() for need in needs if need not in reduced}}
