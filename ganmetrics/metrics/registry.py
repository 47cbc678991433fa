"""The metrics by name (as ``--metrics`` takes them): a new metric is one module plus one line
here; a suite of metrics reported together (``--metrics adm``) is one ``Suite`` line."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GanMetricsError
from .base import Metric, options_of
from .cmmd import CMMD
from .density_coverage import DensityCoverage
from .fd_dinov2 import FDDINOv2
from .fid import FID
from .inception_score import InceptionScore
from .infinity import FIDInfinity, ISInfinity
from .kid import KID
from .memorisation import Memorisation
from .precision_recall import PrecisionRecall
from .sfid import SFID
from .vendi import Vendi

if TYPE_CHECKING:
    from ..extractors.base import FeatureExtractor

METRICS: dict[str, type[Metric]] = {
    FID.name: FID,
    InceptionScore.name: InceptionScore,
    KID.name: KID,
    PrecisionRecall.name: PrecisionRecall,
    DensityCoverage.name: DensityCoverage,
    SFID.name: SFID,
    FIDInfinity.name: FIDInfinity,
    ISInfinity.name: ISInfinity,
    CMMD.name: CMMD,
    FDDINOv2.name: FDDINOv2,
    Vendi.name: Vendi,
    Memorisation.name: Memorisation,
}


@dataclass(frozen=True)
class Suite:
    """A name for several metrics with options fixed as another tool runs them, printed as that
    tool's table. ``metrics``: (metric name, {option: value}) in order; ``rows``: (result key,
    label) in the table's order, e.g. (("is_mean", "Inception Score"), ("fid", "FID"), ...);
    ``same_features``: metrics that the tool computes on one feature of the encoder (checked
    where the encoders are known: ``check_features``)."""

    metrics: tuple[tuple[str, dict], ...]
    rows: tuple[tuple[str, str], ...]
    same_features: tuple[str, ...] = ()


SUITES: dict[str, Suite] = {
    "adm": Suite((("is", {"is_split_size": 5000}), ("fid", {}), ("sfid", {}), ("pr", {"pr_variant": "adm"})),
                 (("is_mean", "Inception Score"), ("fid", "FID"), ("sfid", "sFID"), ("precision", "Precision"),
                  ("recall", "Recall")), same_features=("fid", "pr")),
}
"""The suites by name, as ``--metrics`` takes them beside the metrics: ``adm`` is the ADM
evaluator's (guided-diffusion ``evaluations/evaluator.py``): IS over contiguous splits of 5,000,
FID and sFID, and precision/recall as its float16 ``ManifoldEstimator``, printed in its order."""


def check_suites(names, metrics: list[Metric], encoders: Mapping[str, FeatureExtractor]) -> None:
    """Refuse a requested suite whose ``same_features`` metrics would run on different features
    of their encoder with this run's encoder options (the Inception's ``--dims`` moves FID's)."""
    for name in dict.fromkeys(names):
        suite = SUITES.get(name)
        chosen = [m for m in metrics if suite and m.name in suite.same_features and m.encoder is None]
        features = {m.name: encoders[m.encoder_name].default_feature(m) for m in chosen}
        if len(set(features.values())) > 1:
            first, *_, last = chosen
            encoder = encoders[last.encoder_name]
            hint = encoder.option_hint(features[last.name])
            raise GanMetricsError(
                f"--metrics {name} computes {first.name} on the features {last.name} uses ({features[last.name]}), as "
                f"the tool it follows does: {f'pass {hint}' if hint else 'use the encoder options it was made with'}")


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
        for f in options_of(cls):
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


def _requests(names) -> dict[tuple[str, str | None], dict]:
    """{(metric name, encoder or None for its default): the options a suite fixes} of ``names``
    (``NAME``, ``NAME@ENCODER`` or a suite), in order, each once: its first request counts."""
    requests: dict[tuple[str, str | None], dict] = {}
    for item in dict.fromkeys(names):
        name, at, encoder = item.partition("@")
        if name in SUITES and not at:
            for metric, fixed in SUITES[name].metrics:
                requests.setdefault((metric, None), fixed)
        elif name in METRICS and (not at or encoder):
            requests.setdefault((name, encoder or None), {})
        else:
            raise GanMetricsError(f"unknown metric {item!r}: use one of {known_names()}, each optionally as "
                                  "NAME@ENCODER (comma-separated)")
    return requests


def build_metrics(names, options: dict) -> list[Metric]:
    """The metrics ``names`` (``NAME`` on its default encoder, ``NAME@ENCODER``, or a suite; in
    that order, a suite's metrics in its order, each once: its first request counts), each given
    the ``options`` it declares as fields (a suite's fixed options over them). An unknown name is
    a GanMetricsError listing the known ones; encoder names are checked where encoders are built."""
    metrics = []
    for (name, encoder), fixed in _requests(names).items():
        cls = METRICS[name]
        given = {**options, **fixed}
        chosen = {f.name: given[f.name] for f in options_of(cls) if f.name in given}
        metric = cls(**chosen, encoder=encoder)
        if metric.encoder_name == cls.default_encoder:
            metric = cls(**chosen)  # "fid@inception" is "fid"
        metrics.append(metric)
    if not metrics:
        raise GanMetricsError(f"no metric requested: pass --metrics with some of {known_names()}")
    return metrics
