"""One side of a comparison, resolved once: a statistics file read once, its provenance checked
once, the cache looked up once, the engine run once for what is missing, the cache written once.

A side is opened first (``open_side``: cheap — a folder listing, an archive's index, a file's
statistics), so every side of a run is opened and every count checked before any image is
decoded; once the run's provenance is known (``run_provenance``: between statistics files no
network is built and nothing is downloaded) every statistics file is checked against it, and
then each side is reduced (``reduce_side``). An ADM batch (``arr_0`` images with ``mu``,
``sigma``, ``mu_s``, ``sigma_s`` beside them) is both: its statistics serve FID and sFID as the
ADM evaluator uses them, its images everything else.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import GanMetricsError, quoted
from ..metrics.base import Need
from ..provenance import EncoderProvenance, Provenance
from ..sources import ImageSource, images_key, open_source
from ..store.shardfile import is_shard_file
from ..store.statsfile import Statistics, is_statistics_file, read_statistics, warn_without_metadata
from .cache import reduce_with_cache, with_derived
from .plan import Plan, _device, fewest_images


@dataclass(frozen=True)
class Side:
    """A reduced side. ``label``: what the user passed, for the output; ``n``: its images (None
    for a statistics file that does not say); ``reduced``: {need: reduced value}; ``names``: its
    images' names in image order (the source's: paths in a folder, members of an archive, row
    numbers of an array), which per-image results index; None where no images were opened."""

    label: str
    n: int | None
    reduced: Mapping[Need, Any]
    names: Sequence[str] | None = None


@dataclass(frozen=True)
class OpenedSide:
    """A side checked and opened, not yet reduced: a statistics file's contents (``stats``), an
    opened ``source``, or both (an ADM batch: statistics beside its images, which serve what the
    statistics do not)."""

    label: str
    n: int | None
    stats: Statistics | None = None
    source: ImageSource | None = None

    def served(self, needs) -> list[Need]:
        """The needs of ``needs`` whose values its statistics hold (or derive from what they hold)."""
        return [] if self.stats is None else [need for need in needs if stored_fields(self.stats, need) is not None]


def open_checked(spec, config: RunConfig, needs: Mapping[Need, str]) -> ImageSource:
    """``spec`` opened as a source, with at least as many images as ``needs`` allow."""
    options = config.sources
    source = open_source(spec, recursive=options.recursive, key=options.key, limit=options.limit, strict=options.strict)
    minimum, purpose = fewest_images(needs)
    if len(source) < minimum:
        raise GanMetricsError(
            f"{source.describe()} has {len(source)} image{'s' if len(source) != 1 else ''}; "
            f"{purpose} needs at least {minimum}: add images"
        )
    return source


def stored_fields(stats: Statistics, need: Need) -> Mapping | None:
    """The entry of ``stats`` that holds ``need``'s value (for a derived need, its source's), or None."""
    source = need.source
    return stats.entries.get((source.encoder, source.feature, source.reducer.kind))


def stored_value(stats: Statistics, need: Need) -> Any:
    """``need``'s value (not derived) from the entry of ``stats`` that holds it."""
    return need.reducer.value_of(stored_fields(stats, need))


def _refuse_missing(stats: Statistics, where, plan: Plan, need: Need, purpose: str) -> None:
    """The one-line error for statistics that do not hold what ``need`` takes from them."""
    source = need.source
    if not source.reducer.value_fields:
        raise GanMetricsError(f"{where} holds statistics, but {purpose} needs the images: pass the image source")
    banks = [key for key in stats.entries if key[0] == source.encoder and key[2] == source.reducer.kind]
    if source.reducer.kind == "feature_bank" and not banks:
        raise GanMetricsError(f"{where} holds statistics only, but {purpose} needs every image's features: pass the "
                              "image source, or write the file with `ganmetrics stats --features`")
    held = [feature for encoder, feature, kind in stats.entries if encoder == source.encoder and kind == source.reducer.kind]
    encoder = plan.encoders[source.encoder]
    if held and held[0] in encoder.features and encoder.features[held[0]] != encoder.features[source.feature]:
        hint = encoder.option_hint(held[0])
        raise GanMetricsError(
            f"{where} holds {encoder.features[held[0]]}-dim statistics but this run uses "
            f"{encoder.features[source.feature]}-dim features: {f'pass {hint} or ' if hint else ''}recompute the statistics")
    raise GanMetricsError(
        f"{where} holds no statistics of the {source.feature} features of {source.encoder}, but {purpose} needs them: "
        "pass the image source, or write the file with `ganmetrics stats --metrics` naming that metric"
        f"{' (or --format adm)' if source.feature == 'spatial' else ''}")


def open_side(spec, plan: Plan, needs: Mapping[Need, str], unmixed: str | None = None,
              label: str | None = None) -> OpenedSide:
    """Open one side for ``needs`` ({need: the metric labels that need it}). ``spec``: a
    ``Statistics`` (of one set: per-class ones are refused), a statistics file (with images
    beside: an ADM batch), or any source; ``label``: what to call it where ``spec`` does not
    say (a class of per-class statistics: "ref.npz, class cat"). A
    statistics file is checked for what the needs take from it; its encoder options and weights
    are checked against the run's provenance by ``check_provenance``, once that is known.
    ``unmixed``: the option (e.g. "--ci") that resamples the side's images, so that none of its
    values may come from statistics stored beside them (refused: the interval and the point
    estimate would describe different data); None: such a side's statistics serve what they
    hold and its images the rest."""
    is_path = isinstance(spec, (str, os.PathLike))
    if not isinstance(spec, Statistics) and not (is_path and is_statistics_file(spec)):
        if is_path and is_shard_file(spec):
            raise GanMetricsError(f"{spec} is a shard file (part of a source's statistics): merge every part first, "
                                  "with `ganmetrics stats merge PART... -o all.npz`")
        source = open_checked(spec, plan.config, needs)
        return OpenedSide(str(spec) if is_path else label or source.describe(), len(source), source=source)
    stats, where = (spec, label or "the given statistics") if isinstance(spec, Statistics) else (read_statistics(spec), spec)
    if stats.classes:
        raise GanMetricsError(f"{quoted(where)} holds per-class statistics ({', '.join(stats.classes)}), none of the whole "
                              "set: add --per-class (the API's per_class=True), or pass the images")
    images_beside = is_path and images_key(Path(spec)) is not None
    from_images = {need: names for need, names in needs.items() if stored_fields(stats, need) is None}
    if unmixed and images_beside and 0 < len(from_images) < len(needs):
        raise GanMetricsError(
            f"{unmixed} resamples the images of {quoted(where)}, but its point estimate would come from the statistics "
            f"stored beside them: pass its images alone (`ganmetrics pack {quoted(where)} -o images.npz`) or drop {unmixed}"
        )
    if not images_beside:
        for need, names in from_images.items():
            _refuse_missing(stats, where, plan, need, names.upper())
    served = [need for need in needs if need not in from_images]
    if any(stats.metas.get(need.encoder) is None for need in served) and is_path:  # used, and cannot be checked
        warn_without_metadata(spec)
    if not from_images:
        return OpenedSide(str(where), stats.n, stats=stats)
    source = open_checked(spec, plan.config, from_images)
    return OpenedSide(str(where), len(source), stats=stats, source=source)


def _file_provenance(plan: Plan, name: str, opened: list[OpenedSide]) -> EncoderProvenance:
    """Encoder ``name``'s provenance in a run of statistics files alone: its weights identified
    where they are at hand (``random:SEED`` built; a file hashed, not loaded), else that of the
    first file whose meta records it (the others must match it), else resolved as for a network."""
    encoder = plan.encoders[name]
    provenance = encoder.provenance_without_network()
    if provenance is not None:
        return provenance
    for side in opened:
        meta = side.stats.metas.get(name)
        if meta and "weights_sha256" in meta:
            return EncoderProvenance.of_meta(name, meta, tuple(encoder.provenance_options()))
    return encoder.provenance


def network_provenance(plan: Plan) -> Provenance:
    """The provenance of a run whose networks run: every encoder's weights resolved (loaded)."""
    encoders = plan.encoders.values()
    return Provenance(tuple(encoder.provenance for encoder in encoders), tf32=any(encoder.tf32 for encoder in encoders))


def run_provenance(plan: Plan, opened: list[OpenedSide]) -> tuple[Provenance, Any]:
    """(where this run's numbers come from, the device its metric math runs on; None: the CPU).

    A run that decodes images needs the networks: their device is checked and their weights
    resolved here, before any image is decoded. A run between statistics files alone builds no
    network, and its math runs on the CPU unless ``--device`` names a GPU; each encoder's
    weights are identified where they are at hand (``_file_provenance``), so files made with
    other weights are refused, and nothing is downloaded. The ``tf32`` recorded is then the
    first file's that records one."""
    encoders = plan.encoders
    if any(side.source is not None for side in opened):
        device = next(iter(encoders.values())).device  # the cheap check first
        return network_provenance(plan), device
    metas = [meta for side in opened for meta in side.stats.metas.values() if meta and "weights_sha256" in meta]
    provenances = tuple(_file_provenance(plan, name, opened) for name in encoders)
    device = None if plan.config.device in ("auto", "cpu") else _device(plan.config.device)
    return Provenance(provenances, tf32=bool(metas[0].get("tf32", False)) if metas else False), device


def check_provenance(opened: OpenedSide, needs, provenance: Provenance, plan: Plan) -> None:
    """Refuse statistics that a side serves ``needs`` from, made with other encoder options or
    weights than ``provenance`` (unless ``--allow-mismatch``); what its images serve passes."""
    for encoder in dict.fromkeys(need.encoder for need in opened.served(needs)):
        provenance.of(encoder).check(opened.stats.metas.get(encoder), opened.label, plan.config.allow_mismatch)


def reduce_side(opened: OpenedSide, plan: Plan, needs: Mapping[Need, str], provenance: Provenance,
                reference: bool = False, given: Mapping[Need, Any] | None = None, read_ahead=None) -> Side:
    """The reduced values of an opened side: from its statistics what they serve (and what derives
    from that), the rest from its images through the cache (``cache.reduce_with_cache``);
    ``reference``: cached by default when a folder or archive; ``given``: the reference side's
    values, for needs built with some (``Need.given``); ``read_ahead``: the sources the run reads
    in turn (``readahead.ReadAhead``)."""
    served = opened.served(needs)
    values = with_derived({need.source: stored_value(opened.stats, need.source) for need in served}, served, plan)
    rest = {need: names for need, names in needs.items() if need not in served}
    if rest:
        values.update(reduce_with_cache(opened.source, plan, rest, provenance, reference, given, read_ahead))
    names = None if opened.source is None else opened.source.names
    return Side(opened.label, opened.n, {need: values[need] for need in needs}, names)


def reduce_reference(spec, plan: Plan, needs: Mapping[Need, str]) -> Side:
    """The reference side ``spec`` of a run whose provenance is its encoders' own (an in-process
    one, e.g. the training-loop tracker): opened, checked (its counts for the plan's metrics,
    its statistics' provenance) and reduced once (through the cache)."""
    opened = open_side(spec, plan, needs)
    provenance = network_provenance(plan)
    check_provenance(opened, needs, provenance, plan)
    for metric in plan.metrics:
        metric.check_counts(opened.n if metric.sides == 2 else None, None)
    return reduce_side(opened, plan, needs, provenance, reference=True)
