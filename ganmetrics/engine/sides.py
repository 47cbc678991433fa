"""One side of a comparison, reduced: from a statistics object or file, from the statistics
cache, or by running its source once for every need that is not already there. An ADM batch
(``arr_0`` images with ``mu``, ``sigma``, ``mu_s``, ``sigma_s`` beside them) is both: its
statistics serve FID and sFID as the ADM evaluator uses them, its images everything else.

Needs reduced by ``GaussianStats`` and ``FeatureBank`` are what statistics files and cache
entries hold (one entry per feature: the Gaussian, plus the bank when one was asked for); any
other reduced need (the IS split sums) always comes from a run of the source. A derived need
(``Need.derived``: the k-NN radii of a bank) is computed from its source's value once that is
there, and cached beside the side's statistics, one entry per derivation and options, whose
key is the statistics' key plus the derivation (so every existing key stays as it was).

Nothing is resolved before it is needed: a run between statistics files builds no network and
downloads nothing; it identifies the weights only where they are at hand, a file by its hash, so
without weights at hand, or with a file, it imports no torch (``run_provenance``).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import GanMetricsError, quoted
from ..extractors.registry import DEFAULT_EXTRACTOR, build_extractor
from ..metrics.base import Metric, Need
from ..metrics.reducers import FeatureBank, GaussianStats, SplitSums
from ..provenance import Provenance
from ..sources import FolderSource, ImageSource, TarSource, ZipSource, images_key, open_source
from ..store import cache
from ..store.shardfile import is_shard_file
from ..store.statsfile import Statistics, is_statistics_file, read_statistics, warn_without_metadata
from . import distributed
from .readahead import ReadAhead

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
            for need in metric.needs(extractor) if side == "b" else metric.reference_needs(extractor):
                needs[need] = f"{needs[need]}, {metric.name}" if need in needs else metric.name
    return needs


def image_needs(needs) -> list[Need]:
    """The needs reduced from images: those of ``needs`` that are, and the sources of the derived ones."""
    return list(dict.fromkeys(need.source if need.derived else need for need in needs))


def with_derived(reduced: Mapping[Need, Any], needs, device) -> dict[Need, Any]:
    """``reduced`` and the value of every derived need of ``needs`` it lacks, from its source's value."""
    out = dict(reduced)
    for need in needs:
        if need.derived and need not in out:
            out[need] = need.derive(out[need.source], device)
    return out


def minimum_images(needs: Mapping[Need, str]) -> tuple[int, str]:
    """The fewest images the needs allow, and what needs them (for the message)."""
    minimum, purpose = 1, ""
    for need, names in needs.items():
        least, purpose_of_need = 2, names.upper()
        if need.reducer is GaussianStats:
            purpose_of_need = f"a covariance ({names.upper()})"
        elif need.reducer is SplitSums and "splits" in dict(need.options):
            splits = dict(need.options)["splits"]
            least, purpose_of_need = max(2, splits), f"an Inception Score over {splits} splits"
        elif need.reducer is SplitSums:  # with a split size, as many splits as the images make
            purpose_of_need = "an Inception Score"
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
    """A side checked and opened, not yet reduced: a statistics file's contents (``stats``), an
    opened ``source``, or both (an ADM batch: statistics beside its images, which serve what the
    statistics do not). Opening is cheap (a folder listing, an archive's index, an array's
    header), so every side of a run is opened, and every count checked, before any image is
    decoded."""

    label: str
    n: int | None
    stats: Statistics | None = None
    source: ImageSource | None = None


def reads_in_turn(first: OpenedSide | None, others: list[OpenedSide], config: RunConfig) -> ReadAhead:
    """The sources a run reads in turn: ``first``'s (the reference side, read first where it is
    read at all), then those of ``others`` that the run reads for sure (those the cache cannot
    serve), in order; each one's decoding starts during the last batches of the one before."""
    sources = [first.source] if first is not None and first.source is not None else []
    sources += [side.source for side in others if side.source is not None and not use_cache(side.source, config, False)]
    return ReadAhead(sources)


def open_side(spec, extractor, needs: Mapping[Need, str], config: RunConfig, unmixed: str | None = None) -> OpenedSide:
    """Open one side for ``needs`` ({need: the metric names that need it}). ``spec``: a
    ``Statistics``, a statistics file (with images beside: an ADM batch), or any source. A
    statistics file is checked for what the needs take from it (its dims, a feature bank); its
    resize and weights are checked against the run's provenance by ``check_provenance``, once
    that is known. ``unmixed``: the option (e.g. "--ci") that resamples the side's images, so
    that none of its values may come from statistics stored beside them (refused: the interval
    and the point estimate would describe different data); None: such a side's statistics
    serve what they hold and its images the rest."""
    is_path = isinstance(spec, (str, os.PathLike))
    if not isinstance(spec, Statistics) and not (is_path and is_statistics_file(spec)):
        if is_path and is_shard_file(spec):
            raise GanMetricsError(f"{spec} is a shard file (part of a source's statistics): merge every part first, "
                                  "with `ganmetrics stats merge PART... -o all.npz`")
        source = open_checked(spec, config, needs)
        label = str(spec) if is_path else source.describe()
        return OpenedSide(label, len(source), source=source)
    stats, where = (spec, "the given statistics") if isinstance(spec, Statistics) else (read_statistics(spec), spec)
    images_beside = is_path and images_key(Path(spec)) is not None
    from_images = {need: names for need, names in needs.items() if not _stored(stats, need)}
    if unmixed and images_beside and 0 < len(from_images) < len(needs):
        raise GanMetricsError(
            f"{unmixed} resamples the images of {quoted(where)}, but its point estimate would come from the statistics "
            f"stored beside them: pass its images alone (`ganmetrics pack {quoted(where)} -o images.npz`) or drop {unmixed}"
        )
    for need, names in needs.items():
        if need not in from_images or not images_beside:
            _check_statistics(stats, where, extractor, need, names.upper())
    if stats.meta is None and is_path and len(from_images) < len(needs):  # used, and cannot be checked
        warn_without_metadata(spec)
    if not from_images:
        return OpenedSide(str(where), stats.n, stats=stats)
    source = open_checked(spec, config, from_images)
    return OpenedSide(str(where), len(source), stats=stats, source=source)


def _stored(stats: Statistics, need: Need) -> bool:
    """Whether ``stats`` hold ``need``'s reduced value (its feature's Gaussian, or the bank), or
    for a derived need its source's."""
    need = need.source if need.derived else need
    if need.reducer is GaussianStats:
        return stats.of_feature(need.feature) is not None
    return need.reducer is FeatureBank and stats.features is not None and stats.of_feature(need.feature) is stats


def run_provenance(extractor, opened: list[OpenedSide], config: RunConfig) -> tuple[Provenance, Any]:
    """(where this run's numbers come from, the device its metric math runs on; None: the CPU).

    A run that decodes images needs the network: its device is checked and its weights resolved
    here, before any image is decoded. A run between statistics files alone builds no network,
    and its math runs on the CPU unless ``--device`` names a GPU. Its weights are identified
    where they are at hand (``provenance_without_network``: ``random:SEED`` built; a
    ``--weights`` file, ``GANMETRICS_WEIGHTS``, the ``weights/`` folder's or the cache's hashed,
    not loaded): that identity is then its provenance, and ``check_provenance`` refuses files
    made with other weights. With none at hand nothing is downloaded: the provenance is that of
    the first file that carries metadata (the others must match it), with this run's resize.
    The ``tf32`` recorded is that first file's. Only where no file carries metadata (pytorch-fid's,
    TTUR's) and no weights are at hand are the run's weights resolved as for a network."""
    if any(side.source is not None for side in opened):
        extractor.device  # noqa: B018  (the cheap check first)
        return extractor.provenance, extractor.device
    metas = [side.stats.meta for side in opened if side.stats.meta and "weights_sha256" in side.stats.meta]
    provenance = extractor.provenance_without_network(tf32=bool(metas[0].get("tf32", False)) if metas else False)
    if provenance is None:
        provenance = Provenance.of_meta(metas[0], extractor.resize) if metas else extractor.provenance
    return provenance, None if config.device in ("auto", "cpu") else _device(config.device)


def check_provenance(opened: OpenedSide, provenance: Provenance, extractor, needs: Mapping[Need, str],
                     config: RunConfig) -> None:
    """Refuse statistics that a side serves ``needs`` from, made with another resize or weights
    than ``provenance`` (unless ``--allow-mismatch``); what its images serve passes."""
    for need in needs if opened.stats is not None else ():
        if _stored(opened.stats, need):
            feature = (need.source if need.derived else need).feature
            stored = opened.stats.of_feature(feature)
            provenance.check(stored.meta, stored.dims, extractor.features[feature], opened.label, config.allow_mismatch)


def reduce_reference(spec, extractor, needs: Mapping[Need, str], metrics: list[Metric], config: RunConfig):
    """The reference side ``spec`` of a run whose provenance is ``extractor``'s own (an
    in-process one, e.g. the training-loop tracker): opened, checked (its counts for
    ``metrics``, its statistics' provenance) and reduced once (through the cache)."""
    opened = open_side(spec, extractor, needs, config)
    check_provenance(opened, extractor.provenance, extractor, needs, config)
    for metric in metrics:
        metric.check_counts(opened.n if metric.sides == 2 else None, None)
    return reduce_side(opened, extractor, needs, config, reference=True)


def reduce_side(opened: OpenedSide, extractor, needs: Mapping[Need, str], config: RunConfig,
                reference: bool = False, given: Mapping[Need, Any] | None = None,
                read_ahead: ReadAhead | None = None) -> Side:
    """The reduced values of an opened side: from its statistics what they hold (and what derives
    from that), the rest from its images; ``reference``: cached by default when a folder or
    archive; ``given``: the reference side's values, for needs built with some (``Need.given``);
    ``read_ahead``: the sources the run reads in turn (``reads_in_turn``)."""
    stats = opened.stats
    held = [need for need in needs if stats is not None and _stored(stats, need)]
    stored = {need: stats.features if need.reducer is FeatureBank else stats.of_feature(need.feature)
              for need in image_needs(held)}
    rest = {need: names for need, names in needs.items() if need not in held}
    values = with_derived(stored, held, extractor.device if any(need.derived for need in held) else None)
    if rest:
        values.update(reduce_with_cache(opened.source, extractor, rest, config, reference, given, read_ahead))
    return Side(opened.label, opened.n, {need: values[need] for need in needs})


def _check_statistics(stats: Statistics, where, extractor, need: Need, purpose: str) -> None:
    need = need.source if need.derived else need
    if need.reducer not in STORED:
        raise GanMetricsError(f"{where} holds statistics, but {purpose} needs the images: pass the image source")
    if need.reducer is FeatureBank and stats.features is None:
        raise GanMetricsError(
            f"{where} holds statistics only, but {purpose} needs every image's features: pass the image "
            "source, or write the file with `ganmetrics stats --features`"
        )
    stored = stats.of_feature(need.feature)
    if stored is None:
        raise GanMetricsError(
            f"{where} holds no statistics of the {need.feature} features, but {purpose} needs them: pass the "
            "image source, or write the file with `ganmetrics stats --format adm`"
        )
    Provenance.check_dims(stored.dims, extractor.features[need.feature], where)


def cache_key(fingerprint: dict, provenance, dims: int) -> dict:
    """The cache key of the ``dims``-wide statistics of the source with ``fingerprint``
    (``ImageSource.fingerprint()``) under ``provenance``: what changes the numbers."""
    return {"source": fingerprint, "settings": provenance.meta(dims)}


def derived_cache_key(fingerprint: dict, provenance, dims: int, need: Need) -> dict:
    """The cache key of a derived need's value (``Need.derived``) for the source with
    ``fingerprint``: its statistics' key plus the derivation's kind and options."""
    return {**cache_key(fingerprint, provenance, dims),
            "derived": {"kind": need.reducer.kind, "options": dict(need.options)}}


def reduce_with_cache(source: ImageSource, extractor, needs: Mapping[Need, str], config: RunConfig,
                      reference: bool, given: Mapping[Need, Any] | None = None,
                      read_ahead: ReadAhead | None = None) -> dict[Need, Any]:
    """{need: value} of an opened source: cached entries where they hold what is needed, the
    rest from one run of the source and its derivations (whose new entries are then stored).
    ``given``: the reference side's values, for needs built with some (``Need.given``);
    ``read_ahead``: as ``runner.reduce_source`` takes it. Under torch.distributed rank 0 alone
    reads and writes the cache, and its hits reach every rank."""
    derived_keys, derived, found, missing = {}, {}, {}, {}
    if use_cache(source, config, reference):
        if distributed.is_main():
            fingerprint = source.fingerprint()
            derived_keys, derived = _derived_lookup(source, extractor, needs, fingerprint)
            found, missing = _cache_lookup(source, extractor, image_needs(n for n in needs if n not in derived),
                                           fingerprint)
        derived, found, missing_features = distributed.broadcast_from_main((derived, found, list(missing)))
        missing = missing if distributed.is_main() else dict.fromkeys(missing_features)
    reduced = _reduce_images(source, extractor, image_needs(need for need in needs if need not in derived), config,
                             found, missing, given, read_ahead)
    values = with_derived({**reduced, **derived}, needs, extractor.device)
    for need, key in derived_keys.items():  # none on ranks other than 0
        if need not in derived:
            meta = extractor.provenance.meta(extractor.features[need.feature], source.describe())
            cache.put_state(key, need.reducer.state(values[need]), len(source), {**meta, "derived": key["derived"]})
    return {need: values[need] for need in needs}


def _derived_lookup(source: ImageSource, extractor, needs, fingerprint: dict | None) -> tuple[dict, dict]:
    """({derived need: cache key}, {derived need: its cached value} of those found)."""
    keys, found = {}, {}
    for need in (need for need in needs if need.derived) if fingerprint is not None else ():
        keys[need] = derived_cache_key(fingerprint, extractor.provenance, extractor.features[need.feature], need)
        state = cache.get_state(keys[need], len(source), source.describe())
        if state is not None:
            found[need] = need.reducer.from_state(state)
    return keys, found


def _cache_lookup(source: ImageSource, extractor, needs: list[Need], fingerprint: dict | None) -> tuple[dict, dict]:
    """({feature: cache entry} of the stored needs' features found in the cache, {feature:
    cache key} of those missing)."""
    found, missing = {}, {}
    for feature in sorted({need.feature for need in needs if need.reducer in STORED}) if fingerprint is not None else ():
        dims = extractor.features[feature]
        key = cache_key(fingerprint, extractor.provenance, dims)
        entry = cache.get(key, dims, source.describe())
        wanted = [need for need in needs if need.feature == feature and need.reducer in STORED]
        if entry is not None and (entry.features is not None or all(n.reducer is GaussianStats for n in wanted)):
            found[feature] = entry
        else:
            missing[feature] = key
    return found, missing


def _reduce_images(source: ImageSource, extractor, needs: list[Need], config: RunConfig, found: dict, missing: dict,
                   given: Mapping[Need, Any] | None, read_ahead: ReadAhead | None = None) -> dict[Need, Any]:
    """{need: reduced value} of needs reduced from images: the stored ones from the cache
    entries ``found`` ({feature: entry}) where they hold them, the rest from one run of the
    source, whose entries for the ``missing`` features ({feature: key}) rank 0 then stores."""
    reduced = {need: found[need.feature].features if need.reducer is FeatureBank else found[need.feature]
               for need in needs if need.feature in found and need.reducer in STORED}
    to_run = [need for need in needs if need not in reduced]
    # An entry is stored whole: its Gaussian, with the bank where one is needed.
    to_run += [Need(feature, GaussianStats) for feature in missing]
    if not to_run:
        return reduced
    from .runner import reduce_source  # torch: only where images run through the network

    reducers = reduce_source(source, extractor, to_run, config, given, read_ahead=read_ahead)
    for feature, key in missing.items() if distributed.is_main() else ():
        gaussian = reducers[Need(feature, GaussianStats)].result()
        bank = reducers.get(Need(feature, FeatureBank))
        cache.put(key, Statistics(gaussian.mu, gaussian.sigma, gaussian.n,
                                  extractor.provenance.meta(len(gaussian.mu), source.describe()),
                                  None if bank is None else bank.result()))
    return {**reduced, **{need: reducers[need].result() for need in needs if need not in reduced}}
