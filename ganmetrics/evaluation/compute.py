"""The one compute loop: each metric of a plan on its encoder's reduced values of the two sides
(the reference side only for two-sided metrics), used by the API, the training-loop tracker and
the bootstrap intervals alike. Keys of a metric on another encoder than its default carry
``@ENCODER`` (``Metric.result_key``)."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from ..metrics.base import Metric, Need, Reduced
from .plan import Plan


class SideValues(Protocol):
    """A side's reduced values as the loop reads them: a side itself (``Fixed``) or one bootstrap
    replicate of it (``intervals.SideResampler``)."""

    def values(self, needs: Iterable[Need]) -> dict[Need, Any]:
        """{need: value} for ``needs``."""


class Fixed:
    """A side's values as they are: ``reduced`` ({need: value})."""

    def __init__(self, reduced: Mapping[Need, Any]):
        self.reduced = reduced

    def values(self, needs: Iterable[Need]) -> dict[Need, Any]:
        return {need: self.reduced[need] for need in needs}

    def at(self, replicate: int) -> "Fixed":
        """The side on a bootstrap replicate: a fixed side is the same on every one."""
        return self


def metric_outputs(plan: Plan, metrics: Iterable[Metric], a: SideValues | None, b: SideValues,
                   device=None) -> Iterator[tuple[Metric, dict, Reduced | None, Reduced]]:
    """(metric, what its ``compute`` returned, the reference values it saw, the generated ones)
    for each of ``metrics``: each sees exactly the needs it declared; ``device``: where the math
    runs (None: the CPU)."""
    for metric in metrics:
        reference = a.values(plan.metric_needs(metric, "a")) if metric.sides == 2 else None
        generated = b.values(plan.metric_needs(metric, "b"))
        yield metric, metric.compute(reference, generated, device), reference, generated


def results(plan: Plan, a: Reduced | None, b: Reduced, device=None) -> tuple[dict, dict, dict]:
    """(values, settings, details) of the plan's metrics on the reduced sides ``a`` (None where no
    metric needs the reference) and ``b``: ``values`` {result key: number}; ``settings`` the
    encoders' options and every option the metrics ran with; ``details`` what metrics return
    beyond their keys (FID∞'s fitted points)."""
    values, settings, details = {}, plan.settings(), {}
    side_a = None if a is None else Fixed(a)
    for metric, out, reference, generated in metric_outputs(plan, plan.metrics, side_a, Fixed(b), device):
        values.update({metric.result_key(key): out[key] for key in metric.keys})
        details.update({metric.result_key(key): value for key, value in out.items() if key not in metric.keys})
        settings.update({metric.result_key(key): value for key, value in metric.settings(reference, generated).items()})
    return values, settings, details
