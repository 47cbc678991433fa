"""The metrics by name (as ``--metrics`` takes them): a new metric is one module plus one line here."""

import dataclasses

from ..errors import GanMetricsError
from .base import Metric
from .fid import FID
from .inception_score import InceptionScore
from .infinity import FIDInfinity, ISInfinity
from .kid import KID

METRICS: dict[str, type[Metric]] = {
    FID.name: FID,
    InceptionScore.name: InceptionScore,
    KID.name: KID,
    FIDInfinity.name: FIDInfinity,
    ISInfinity.name: ISInfinity,
}


def metric_options() -> dict[str, dataclasses.Field]:
    """Every option any registered metric takes, by name: {name: the field that declares it}.
    Metrics that share an option (``seed``) must declare it alike (type and default)."""
    options: dict[str, dataclasses.Field] = {}
    owners: dict[str, str] = {}
    for cls in METRICS.values():
        for f in dataclasses.fields(cls):
            first = options.setdefault(f.name, f)
            owner = owners.setdefault(f.name, cls.__name__)
            if (first.type, first.default) != (f.type, f.default):
                raise TypeError(f"metric option {f.name!r} is declared twice, differently: by {owner} and {cls.__name__}")
    return options


def metric_option_names() -> set[str]:
    """Every option any registered metric takes."""
    return set(metric_options())


def build_metrics(names, options: dict) -> list[Metric]:
    """The metrics ``names`` (in that order, duplicates dropped), each given the ``options``
    it declares as fields. An unknown name is a GanMetricsError listing the known ones."""
    metrics = []
    for name in dict.fromkeys(names):
        if name not in METRICS:
            raise GanMetricsError(f"unknown metric {name!r}: use one of {', '.join(METRICS)} (comma-separated)")
        cls = METRICS[name]
        metrics.append(cls(**{f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options}))
    if not metrics:
        raise GanMetricsError(f"no metric requested: pass --metrics with some of {', '.join(METRICS)}")
    return metrics
