"""The metrics by name (as ``--metrics`` takes them): a new metric is one module plus one line
here; a suite of metrics reported together (``--metrics adm``) is one ``Suite`` line."""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import GanMetricsError
from .base import Metric
from .density_coverage import DensityCoverage
from .fid import FID
from .inception_score import InceptionScore
from .infinity import FIDInfinity, ISInfinity
from .kid import KID
from .precision_recall import PrecisionRecall
from .sfid import SFID

METRICS: dict[str, type[Metric]] = {
    FID.name: FID,
    InceptionScore.name: InceptionScore,
    KID.name: KID,
    PrecisionRecall.name: PrecisionRecall,
    DensityCoverage.name: DensityCoverage,
    SFID.name: SFID,
    FIDInfinity.name: FIDInfinity,
    ISInfinity.name: ISInfinity,
}


@dataclass(frozen=True)
class Suite:
    """A name for several metrics with options fixed as another tool runs them, printed as that
    tool's table. ``metrics``: (metric name, {option: value}) in order; ``rows``: (result key,
    label) in the table's order, e.g. (("is_mean", "Inception Score"), ("fid", "FID"), ...)."""

    metrics: tuple[tuple[str, dict], ...]
    rows: tuple[tuple[str, str], ...]


SUITES: dict[str, Suite] = {
    "adm": Suite((("is", {"is_split_size": 5000}), ("fid", {"dims": 2048}), ("sfid", {}), ("pr", {"pr_variant": "adm"})),
                 (("is_mean", "Inception Score"), ("fid", "FID"), ("sfid", "sFID"), ("precision", "Precision"),
                  ("recall", "Recall"))),
}
"""The suites by name, as ``--metrics`` takes them beside the metrics: ``adm`` is the ADM
evaluator's (guided-diffusion ``evaluations/evaluator.py``): IS over contiguous splits of 5,000,
FID and sFID, and precision/recall as its float16 ``ManifoldEstimator``, printed in its order."""


def suite_rows(names) -> tuple[tuple[str, str], ...] | None:
    """The table rows of a request that is exactly one suite (``--metrics adm``), else None."""
    names = list(dict.fromkeys(names))
    return SUITES[names[0]].rows if len(names) == 1 and names[0] in SUITES else None


@dataclass(frozen=True)
class MetricOption:
    """An option a metric takes (a field declared with ``base.option``): its ``name``, ``type``
    (the field's annotation resolved: ``int``, ``float | None``, ...), ``default`` and ``help``."""

    name: str
    type: Any
    default: Any
    help: str


def metric_options() -> dict[str, MetricOption]:
    """Every option any registered metric takes, by name. Metrics that share an option
    (``seed``) must declare it alike (type and default)."""
    options: dict[str, MetricOption] = {}
    owners: dict[str, str] = {}
    for cls in METRICS.values():
        hints = typing.get_type_hints(cls)  # annotations may be strings (``from __future__ import annotations``)
        for f in dataclasses.fields(cls):
            declared = MetricOption(f.name, hints[f.name], f.default, f.metadata.get("help", ""))
            first = options.setdefault(f.name, declared)
            owner = owners.setdefault(f.name, cls.__name__)
            if (first.type, first.default) != (declared.type, declared.default):
                raise TypeError(f"metric option {f.name!r} is declared twice, differently: by {owner} and {cls.__name__}")
    return options


def metric_option_names() -> set[str]:
    """Every option any registered metric takes."""
    return set(metric_options())


def known_names() -> str:
    """The names ``--metrics`` takes, for messages and help: the metrics, then the suites."""
    return ", ".join([*METRICS, *SUITES])


def build_metrics(names, options: dict) -> list[Metric]:
    """The metrics ``names`` (in that order, a suite's metrics in its order, each metric once:
    its first request counts), each given the ``options`` it declares as fields (a suite's
    fixed options over them). An unknown name is a GanMetricsError listing the known ones."""
    requests: dict[str, dict] = {}
    for name in dict.fromkeys(names):
        if name in SUITES:
            for metric, fixed in SUITES[name].metrics:
                requests.setdefault(metric, fixed)
        elif name in METRICS:
            requests.setdefault(name, {})
        else:
            raise GanMetricsError(f"unknown metric {name!r}: use one of {known_names()} (comma-separated)")
    metrics = []
    for name, fixed in requests.items():
        cls = METRICS[name]
        given = {**options, **fixed}
        metrics.append(cls(**{f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}))
    if not metrics:
        raise GanMetricsError(f"no metric requested: pass --metrics with some of {known_names()}")
    return metrics
