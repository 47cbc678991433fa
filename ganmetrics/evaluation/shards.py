"""Shard files for batch schedulers: one part of a source reduced to its exact states
(``compute_shard``), and every part of one run merged into a statistics file (``merge_shards``),
the same result as one pass over the whole to rounding (1e-12; feature banks bit for bit).

A run's images are cut into whole batches and part K of N gets a contiguous block of them
(``engine/distributed.span``: the same blocks as ranks). Every part's meta must match: the same
encoders, options, weights and version, the same source and image names, number of parts and
batch size; every part exactly once. States are merged in part order, one part at a time
(memory: the merged reducers and one part's states).
"""

from collections.abc import Callable, Sequence
from typing import Any

from ..engine import distributed
from ..engine.distributed import ShardSpec, span
from ..errors import GanMetricsError
from ..metrics.base import REDUCERS, Need
from ..sources import ImageSource
from ..store.shardfile import Shard
from ..store.states import Key
from ..store.statsfile import Statistics
from .plan import Plan
from .sides import network_provenance
from .statistics import encoder_metas

RUN_KEYS = ("count", "total", "batch_size", "names_sha256")
"""What every part of one run shares in its ``shard`` meta."""


def compute_shard(plan: Plan, source: ImageSource, needs: dict[Need, str], spec: ShardSpec) -> Shard:
    """Part ``spec`` of ``source``'s values of ``needs``, as exact reducer states."""
    from ..engine.runner import reduce_source  # torch: only where images run through the networks

    info = distributed.shard_info(source, spec, plan.config.batch_size)
    reducers = reduce_source(source, plan.encoders, list(needs), plan.config, positions=range(info["start"], info["stop"]))
    meta = {"encoders": encoder_metas(plan, network_provenance(plan), source.describe()), "shard": info}
    return Shard(meta, {(need.encoder, need.feature, need.reducer.kind): reducer.state()
                        for need, reducer in reducers.items()})


def _flat(meta: dict, prefix: str = "") -> dict:
    """``meta`` with nested objects flattened to dotted keys ("encoders.inception.resize")."""
    flat = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_parts(metas: Sequence[tuple[str, dict]]) -> dict[int, int]:
    """{part index: its position in ``metas``} of parts given as (name, meta) pairs, refused in
    one line unless they are every part of one run, once, tiling the images."""
    if not metas:
        raise GanMetricsError("stats merge needs shard files: pass e.g. part-*.npz")
    first_name, first = metas[0]
    common = _flat({key: value for key, value in first.items() if key != "shard"})
    run = {key: first["shard"][key] for key in RUN_KEYS}
    by_index: dict[int, int] = {}
    for position, (name, meta) in enumerate(metas):
        info = meta["shard"]
        mine = _flat({key: value for key, value in meta.items() if key != "shard"}) | {key: info[key] for key in run}
        ours = common | run
        differ = [key for key in sorted(set(mine) | set(ours)) if mine.get(key) != ours.get(key)]
        if differ:
            key = differ[0]
            what = "the images (names)" if key == "names_sha256" else f"{key} ({mine.get(key)!r} vs {ours.get(key)!r})"
            raise GanMetricsError(f"{name} differs from {first_name} in {what}: merge only the shards of one run "
                                  "(same source, options and number of shards)")
        index = info["index"]
        if index in by_index:
            raise GanMetricsError(f"{metas[by_index[index]][0]} and {name} are both shard {index}/{run['count']}: "
                                  "pass each shard once")
        expected = span(range(run["total"]), run["batch_size"], index, run["count"])
        if (info["start"], info["stop"]) != (expected.start, expected.stop):
            raise GanMetricsError(f"{name} says it is shard {index}/{run['count']} but holds images {info['start']} "
                                  f"to {info['stop'] - 1}: compute it again")
        by_index[index] = position
    missing = [index for index in range(run["count"]) if index not in by_index]
    if missing:
        images = span(range(run["total"]), run["batch_size"], missing[0], run["count"])
        held = f"images {images.start} to {images.stop - 1}" if images else "no images"
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise GanMetricsError(f"shard {missing[0]}/{run['count']} ({held}) is missing{more}: compute it with "
                              f"`ganmetrics stats SOURCE --shard {missing[0]}/{run['count']}` and pass every shard")
    return by_index


def merge_shards(metas: Sequence[tuple[str, dict]], states_of: Callable[[int], dict[Key, dict]]) -> Statistics:
    """The statistics of a whole source from its parts given as (name, meta) pairs, checked on the
    metas alone (``_check_parts``) before ``states_of(i)`` ({entry: state} of ``metas[i]``) reads
    any states, one part at a time, each entry's states merged in part order. A part whose states
    are not of its images, or of a reducer this ganmetrics does not know, is refused; so is a
    Gaussian of fewer than two images."""
    by_index = _check_parts(metas)
    merged: dict[Key, Any] = {}
    for index in range(len(by_index)):
        name, meta = metas[by_index[index]]
        for key, state in states_of(by_index[index]).items():
            part = _part(name, meta["shard"], key, state)
            merged[key] = part if key not in merged else merged[key].merge(part)
    entries = {}
    for key, reducer in merged.items():
        try:
            entries[key] = type(reducer).value_arrays(reducer.result())
        except ValueError as err:  # a Gaussian of fewer than two images
            total = metas[0][1]["shard"]["total"]
            raise GanMetricsError(f"the shards hold {total} image(s); {err}: add images") from None
    return Statistics(entries=entries, metas=metas[0][1]["encoders"])


def _part(name: str, info: dict, key: Key, state: dict) -> Any:
    """The reducer of one part's ``state`` of entry ``key``, refused unless it is of the part's images."""
    if key[2] not in REDUCERS:
        raise GanMetricsError(f"{name} holds reducer states of kind {key[2]!r}, unknown to this ganmetrics: "
                              "merge with the version that wrote it")
    try:
        part = REDUCERS[key[2]].from_state(state)
        held = part.covers(range(info["start"], info["stop"]))
    except (KeyError, ValueError, TypeError):
        held = False
    if not held:
        raise GanMetricsError(f"shard file {name} does not hold the {key[2]} state of its images {info['start']} to "
                              f"{info['stop'] - 1}: compute it again with `ganmetrics stats SOURCE --shard K/N`")
    return part
