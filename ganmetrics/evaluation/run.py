"""A run of a plan over a reference side and generated sides: every side opened and every count
checked before anything heavy (``open_run``, ``check_counts``); then the device and the weights
resolved where images need the networks (between statistics files the weights are only
identified, where at hand) and every statistics file checked against the run's provenance
(``checked_provenance``); the reference reduced once (only where a two-sided metric needs it)
and each generated side in one pass for every metric; then the one compute loop, and with
``--ci`` the bootstrap intervals from values reduced in the same pass (``evaluate_run``). A
``--per-class`` run (``classes.py``) opens and checks one run a class before it reduces any."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.readahead import ReadAhead
from ..provenance import Provenance
from ..sources import ImageSource
from .cache import use_cache
from .compute import results
from .intervals import bootstrap_draws, check_replicate_counts, intervals_of
from .plan import Plan
from .sides import OpenedSide, Side, check_provenance, open_side, reduce_side, run_provenance, stored_fields


@dataclass(frozen=True)
class Evaluated:
    """One generated side's results against the reference: the reduced sides (``side_a`` None
    where no metric needed the reference), ``values``, ``settings`` and ``details`` of the
    compute loop (with ``--ci`` the intervals, and ``draws``: {result key: its values on each
    bootstrap replicate}), the run's ``provenance``; ``classes``: a ``--per-class`` result's
    {class: {"n_a", "n_b"}}."""

    side_a: Side | None
    side_b: Side
    values: dict
    settings: dict
    details: dict
    provenance: Provenance
    draws: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpenedRun:
    """A run's sides opened, nothing reduced: the reference side ``a`` (None where no metric
    needs it) and the generated ``others``; what each needs (``needs_a``, ``needs_b``: with what
    ``--ci`` resamples); whether ``--ci`` resamples ``a``; and the number of each side's first
    image in the bootstrap's weight streams (``offset_a``; ``offsets``, one per generated side:
    0 but for the classes of a ``--per-class`` run)."""

    a: OpenedSide | None
    others: list[OpenedSide]
    needs_a: dict
    needs_b: dict
    resample_a: bool
    offset_a: int = 0
    offsets: tuple[int, ...] = ()

    def sides(self) -> list[tuple[OpenedSide, dict]]:
        """(side, its needs) of every side, the reference first."""
        return ([(self.a, self.needs_a)] if self.a else []) + [(side, self.needs_b) for side in self.others]

    def reads(self, plan: Plan) -> list[ImageSource]:
        """The sources the run reads in turn: the reference side's (read first, where read at
        all), then those of the generated sides that it reads for sure (that the cache cannot
        serve), in order; each one's decoding starts during the last batches of the one before."""
        sources = [self.a.source] if self.a is not None and self.a.source is not None else []
        return sources + [side.source for side in self.others
                          if side.source is not None and not use_cache(side.source, plan, False)]


def open_run(plan: Plan, a, others: list, label_a: str | None = None,
             labels: Sequence[str | None] | None = None) -> OpenedRun:
    """The sides ``a`` (the reference) and ``others`` opened for ``plan`` (``open_side``;
    ``label_a``, ``labels``: what to call them where their specs do not say)."""
    needs_a = plan.needs("a")
    opened_a = open_side(a, plan, needs_a, label=label_a) if needs_a else None
    # A side is resampled by --ci unless it is a statistics file that cannot be (without features).
    resample_a = opened_a is not None and (opened_a.stats is None or all(
        stored_fields(opened_a.stats, need) is not None for need in plan.side_needs("a", True)))
    needs_a = plan.side_needs("a", resample_a) if needs_a else needs_a
    needs_b = plan.side_needs("b", True)
    unmixed = "--ci" if plan.bootstrapped else None
    opened = [open_side(other, plan, needs_b, unmixed, label)
              for other, label in zip(others, labels or [None] * len(others))]
    return OpenedRun(opened_a, opened, needs_a, needs_b, resample_a, offsets=(0,) * len(opened))


def check_counts(plan: Plan, run: OpenedRun) -> None:
    """Each metric's ``check_counts`` on each pair of sides (and on each bootstrap replicate's counts)."""
    n_a = run.a.n if run.a else None
    for side, offset in zip(run.others, run.offsets):
        for metric in plan.metrics:
            metric.check_counts(n_a if metric.sides == 2 else None, side.n)
        if plan.bootstrapped:
            check_replicate_counts(plan.bootstrapped, n_a, side.n, plan.interval, run.resample_a, (run.offset_a, offset))


def checked_provenance(plan: Plan, runs: list[OpenedRun]) -> tuple[Provenance, Any]:
    """(the provenance, the device) of a run of ``runs``' sides (``run_provenance``), every
    statistics file among them checked against it."""
    provenance, device = run_provenance(plan, [side for run in runs for side, _ in run.sides()])
    for run in runs:
        for side, needs in run.sides():
            check_provenance(side, needs, provenance, plan)
    return provenance, device


def evaluate_run(plan: Plan, run: OpenedRun, provenance: Provenance, device: Any,
                 read_ahead: ReadAhead) -> Iterator[Evaluated]:
    """``Evaluated`` for each generated side of an opened and checked ``run``, reducing each
    side once; ``read_ahead``: the sources read in turn (``OpenedRun.reads``)."""
    side_a = None
    if run.a:
        side_a = reduce_side(run.a, plan, run.needs_a, provenance, reference=True, read_ahead=read_ahead)
    for side, offset in zip(run.others, run.offsets):
        side_b = reduce_side(side, plan, run.needs_b, provenance, given=side_a and side_a.reduced, read_ahead=read_ahead)
        yield _evaluated(plan, side_a, side_b, provenance, device, run.resample_a, (run.offset_a, offset))


def evaluate_sides(plan: Plan, a, others: list) -> Iterator[Evaluated]:
    """``Evaluated`` for each of ``others`` against the reference ``a`` (the module says how)."""
    run = open_run(plan, a, others)
    check_counts(plan, run)
    provenance, device = checked_provenance(plan, [run])
    with ReadAhead(run.reads(plan)) as read_ahead:
        yield from evaluate_run(plan, run, provenance, device, read_ahead)


def _evaluated(plan: Plan, side_a: Side | None, side_b: Side, provenance: Provenance, device: Any,
               resample_a: bool, offsets: tuple[int, int]) -> Evaluated:
    reduced_a = side_a.reduced if side_a else None
    values, settings, details = results(plan, reduced_a, side_b.reduced, device)
    draws = {}
    if plan.bootstrapped:
        draws = bootstrap_draws(plan, reduced_a, side_b.reduced, resample_a, device, offsets)
        values.update(intervals_of(draws, values, plan.interval))
        settings.update(plan.interval.settings())
        if any(metric.sides == 2 for metric in plan.bootstrapped):
            settings["ci_reference_resampled"] = resample_a
    return Evaluated(side_a, side_b, values, settings, details, provenance, draws)
