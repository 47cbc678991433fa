"""A source's reduced values through the statistics cache: each value that can be stored (a
reducer or derivation with ``value_fields``: a Gaussian, a feature bank, k-NN radii) is one
cache entry, keyed by the source's fingerprint, its encoder's provenance and what it is; the
cache is looked up once, the engine run once for what is missing, and the new entries written
once. Under torch.distributed rank 0 alone reads and writes the cache, and its hits reach every
rank."""

from collections.abc import Mapping
from typing import Any

from ..engine import distributed
from ..metrics.base import Need
from ..provenance import Provenance
from ..sources import ImageSource
from ..store import cache
from ..store.states import StateFile
from .plan import Plan


def with_derived(reduced: Mapping[Need, Any], needs, plan: Plan) -> dict[Need, Any]:
    """``reduced`` and the value of every derived need of ``needs`` it lacks, from its source's
    value, computed on the encoders' device."""
    out = dict(reduced)
    for need in needs:
        if need.derived and need not in out:
            out[need] = need.derive(out[need.source], plan.encoders[need.encoder].device)
    return out


def use_cache(source: ImageSource, plan: Plan, reference: bool) -> bool:
    """Whether the reduced values of ``source`` go through the cache (``RunConfig.cache``; by
    default a reference side of a kind ``cached_by_default``)."""
    if plan.config.cache is not None:
        return plan.config.cache
    return reference and source.cached_by_default


def cache_key(fingerprint: dict, provenance: Provenance, need: Need) -> dict:
    """The cache key of ``need``'s value for the source with ``fingerprint``
    (``ImageSource.fingerprint()``) under ``provenance``: everything that changes the numbers."""
    return {"source": fingerprint, "settings": provenance.of(need.encoder).meta(provenance.tf32, provenance.version),
            "value": {"feature": need.feature, "kind": need.reducer.kind, "options": dict(need.options)}}


def _entry(plan: Plan, provenance: Provenance, need: Need, value: Any, source: ImageSource) -> StateFile:
    """The cache entry of ``need``'s ``value`` of the images of ``source``: a file of the one
    layout, readable as statistics (``encoders``: its encoder's meta), that also says its image
    count ``n``, ``source`` and what it holds (``kind``, ``options``)."""
    label = source.describe()
    encoder = {**provenance.of(need.encoder).meta(provenance.tf32, provenance.version), "feature": need.feature,
               "dims": plan.encoders[need.encoder].features[need.feature], "source": label}
    meta = {"encoders": {need.encoder: encoder}, "kind": need.reducer.kind, "options": dict(need.options),
            "n": len(source), "source": label}
    return StateFile(meta, {(need.encoder, need.feature, need.reducer.kind): need.reducer.value_arrays(value)})


def _lookup(source: ImageSource, provenance: Provenance, needs: list[Need]) -> tuple[dict, dict]:
    """({need: its cache key}, {need: its cached value} of those found) of the storable ``needs``."""
    fingerprint = source.fingerprint()
    if fingerprint is None:
        return {}, {}
    keys, found = {}, {}
    for need in needs:
        if need.reducer.value_fields:
            keys[need] = cache_key(fingerprint, provenance, need)
            entry = cache.get(keys[need], len(source), source.describe())
            if entry is not None:
                (fields,) = entry.entries.values()
                found[need] = need.reducer.value_of(fields)
    return keys, found


def _to_run(needs: list[Need], found: Mapping[Need, Any]) -> list[Need]:
    """The needs reduced from images: those not found, and the sources of derived ones not found
    (a derived value found in the cache needs no source)."""
    return list(dict.fromkeys(need.source for need in needs if need not in found))


def reduce_with_cache(source: ImageSource, plan: Plan, needs: Mapping[Need, str], provenance: Provenance,
                      reference: bool, given: Mapping[Need, Any] | None = None, read_ahead=None) -> dict[Need, Any]:
    """{need: value} of an opened source: cached entries where they hold what is needed, the rest
    from one run of the source and its derivations (whose new entries are then stored).
    ``given``: the reference side's values, for needs built with some (``Need.given``);
    ``read_ahead``: as ``runner.reduce_source`` takes it."""
    needs = list(needs)
    keys: dict[Need, dict] = {}
    found: dict[Need, Any] = {}
    if use_cache(source, plan, reference):
        if distributed.is_main() and cache.usable():
            keys, found = _lookup(source, provenance, needs)
        found = distributed.broadcast_from_main(found)
    values = dict(found)
    to_run = [need for need in _to_run(needs, found) if need not in found]
    if to_run:
        from ..engine.runner import reduce_source  # torch: only where images run through the networks

        reducers = reduce_source(source, plan.encoders, to_run, plan.config, given, read_ahead=read_ahead)
        values.update({need: reducer.result() for need, reducer in reducers.items()})
    values = with_derived(values, needs, plan)
    for need, key in keys.items():  # none on ranks other than 0
        if need not in found and need in values:
            cache.put(key, _entry(plan, provenance, need, values[need], source))
    return {need: values[need] for need in needs}
