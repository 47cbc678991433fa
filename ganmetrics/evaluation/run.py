"""A run of a plan over a reference side and generated sides: every side opened and every count
checked before anything heavy; then the device and the weights resolved where images need the
networks (between statistics files the weights are only identified, where at hand); every
statistics file checked against the run's provenance; the reference reduced once (only where a
two-sided metric needs it) and each generated side in one pass for every metric; then the one
compute loop, and with ``--ci`` the bootstrap intervals from values reduced in the same pass."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.readahead import ReadAhead
from ..provenance import Provenance
from .cache import use_cache
from .compute import results
from .intervals import bootstrap_intervals, check_replicate_counts
from .plan import Plan
from .sides import OpenedSide, Side, check_provenance, open_side, reduce_side, run_provenance, stored_fields


@dataclass(frozen=True)
class Evaluated:
    """One generated side's results against the reference: the reduced sides (``side_a`` None
    where no metric needed the reference), ``values``, ``settings`` and ``details`` of the
    compute loop (with ``--ci`` the intervals), and the run's ``provenance``."""

    side_a: Side | None
    side_b: Side
    values: dict
    settings: dict
    details: dict
    provenance: Provenance


def reads_in_turn(plan: Plan, first: OpenedSide | None, others: list[OpenedSide]) -> ReadAhead:
    """The sources a run reads in turn: ``first``'s (the reference side, read first where it is
    read at all), then those of ``others`` that the run reads for sure (those the cache cannot
    serve), in order; each one's decoding starts during the last batches of the one before."""
    sources = [first.source] if first is not None and first.source is not None else []
    sources += [side.source for side in others if side.source is not None and not use_cache(side.source, plan, False)]
    return ReadAhead(sources)


def _check_counts(plan: Plan, opened_a: OpenedSide | None, opened: list[OpenedSide], resample_a: bool) -> None:
    """Each metric's ``check_counts`` on each pair of sides (and on each bootstrap replicate's counts)."""
    n_a = opened_a.n if opened_a else None
    for side in opened:
        for metric in plan.metrics:
            metric.check_counts(n_a if metric.sides == 2 else None, side.n)
        if plan.bootstrapped:
            check_replicate_counts(plan.bootstrapped, n_a, side.n, plan.interval, resample_a)


def evaluate_sides(plan: Plan, a, others: list) -> Iterator[Evaluated]:
    """``Evaluated`` for each of ``others`` against the reference ``a`` (the module says how)."""
    needs_a = plan.needs("a")
    opened_a = open_side(a, plan, needs_a) if needs_a else None
    # A side is resampled by --ci unless it is a statistics file that cannot be (without features).
    resample_a = opened_a is not None and (opened_a.stats is None or all(
        stored_fields(opened_a.stats, need) is not None for need in plan.side_needs("a", True)))
    needs_a = plan.side_needs("a", resample_a) if needs_a else needs_a
    needs_b = plan.side_needs("b", True)
    opened = [open_side(other, plan, needs_b, unmixed="--ci" if plan.bootstrapped else None) for other in others]
    _check_counts(plan, opened_a, opened, resample_a)
    provenance, device = run_provenance(plan, [side for side in (opened_a, *opened) if side])
    for side, needs in ((opened_a, needs_a), *((side, needs_b) for side in opened)):
        if side:
            check_provenance(side, needs, provenance, plan)
    with reads_in_turn(plan, opened_a, opened) as read_ahead:
        side_a = reduce_side(opened_a, plan, needs_a, provenance, reference=True, read_ahead=read_ahead) if opened_a else None
        reduced_a = side_a.reduced if side_a else None
        for side in opened:
            side_b = reduce_side(side, plan, needs_b, provenance, given=reduced_a, read_ahead=read_ahead)
            yield _evaluated(plan, side_a, side_b, provenance, device, resample_a)


def _evaluated(plan: Plan, side_a: Side | None, side_b: Side, provenance: Provenance, device: Any,
               resample_a: bool) -> Evaluated:
    reduced_a = side_a.reduced if side_a else None
    values, settings, details = results(plan, reduced_a, side_b.reduced, device)
    if plan.bootstrapped:
        values.update(bootstrap_intervals(plan, reduced_a, side_b.reduced, values, resample_a, device))
        settings.update(plan.interval.settings())
        if any(metric.sides == 2 for metric in plan.bootstrapped):
            settings["ci_reference_resampled"] = resample_a
    return Evaluated(side_a, side_b, values, settings, details, provenance)
