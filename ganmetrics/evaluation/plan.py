"""What a run computes, decided once before anything is opened: the metrics bound to their
encoders, the encoders (built, nothing loaded: weights and device are resolved on first need),
what each side needs, the fewest images that allows, and what a bootstrap resamples.

Every bad request is refused here, in one line, before any file is read: an unknown metric or
encoder (``fid@nosuch``), a metric its encoder cannot serve (``is@dinov2-vitl14``), weights or
options for an unknown encoder (``--weights nosuch=FILE``), an option an encoder does not take
(``--resize toy=MODE``) or a value outside its choices.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..config import IntervalOptions, RunConfig
from ..errors import GanMetricsError
from ..extractors.base import FeatureExtractor
from ..extractors.registry import DEFAULT_ENCODER, build_encoder, encoder_class
from ..metrics.base import Metric, Need
from ..metrics.registry import METRICS, build_metrics, check_suites
from ..metrics.resampling import GENERATED, REFERENCE

SIDES = ("a", "b")
"""The reference side ("a": only two-sided metrics need it) and a generated side ("b": every metric)."""


def _device(spec: str):
    from ..engine.runtime import resolve_device  # torch: only where something runs on a device

    return resolve_device(spec)


def build_encoders(names: Iterable[str], config: RunConfig) -> dict[str, FeatureExtractor]:
    """The encoders ``names`` (in that order), each with its options and weights from ``config``;
    every encoder ``config`` gives weights or options for must exist and take those options, used
    by this run or not (a typo is refused, not ignored)."""
    for name, options in config.encoders.items():
        encoder_class(name)
        build_encoder(name, options)  # checks the options; builds nothing heavy
    for name in config.weights:
        encoder_class(name)
    device = config.device
    return {name: build_encoder(name, config.encoders.get(name), weights=config.weights.get(name),
                                device=lambda: _device(device), allow_tf32=config.allow_tf32,
                                progress=config.progress)
            for name in names}


@dataclass
class Plan:
    """A run's ``metrics`` (bound to their encoders), its ``encoders`` by name (the default
    encoder first where used, then in the metrics' order), the run's ``config`` and bootstrap
    ``interval``; ``names``: what ``--metrics`` asked for (suites included)."""

    names: tuple[str, ...]
    metrics: list[Metric]
    encoders: dict[str, FeatureExtractor]
    config: RunConfig
    interval: IntervalOptions = field(default_factory=IntervalOptions)

    @property
    def bootstrapped(self) -> list[Metric]:
        """The metrics that get a ``--ci`` interval (none without one)."""
        return [m for m in self.metrics if m.interval_keys] if self.interval.replicates else []

    def metric_needs(self, metric: Metric, side: str) -> list[Need]:
        """What ``metric`` needs of ``side`` ("a": its ``reference_needs``; "b": its ``needs``)."""
        encoder = self.encoders[metric.encoder_name]
        return metric.reference_needs(encoder) if side == "a" else metric.needs(encoder)

    def needs(self, side: str, metrics: Iterable[Metric] | None = None) -> dict[Need, str]:
        """{need: the metric labels that need it} of ``side`` for ``metrics`` (default: all)."""
        needs: dict[Need, str] = {}
        for metric in self.metrics if metrics is None else metrics:
            if side == "b" or metric.sides == 2:
                for need in self.metric_needs(metric, side):
                    needs[need] = f"{needs[need]}, {metric.label}" if need in needs else metric.label
        return needs

    def side_needs(self, side: str, resampled: bool) -> dict[Need, str]:
        """``needs(side)`` and, where the side is ``resampled`` by ``--ci``, what its bootstrap
        replicates are recomputed from (each reducer's ``resampling`` need)."""
        needs = self.needs(side)
        if not resampled or not self.bootstrapped:
            return needs
        interval = self.interval
        stream = REFERENCE if side == "a" else GENERATED
        resampled_needs: dict[Need, str] = {}
        for need, names in self.needs(side, self.bootstrapped).items():
            resampling = need.reducer.resampling(need, stream, interval.replicates, interval.seed)
            if resampling is None:
                raise GanMetricsError(f"--ci: no bootstrap for {names}; drop --ci or that metric")
            names = f"{names} (--ci)"
            resampled_needs[resampling] = f"{resampled_needs[resampling]}, {names}" if resampling in resampled_needs else names
        return {**needs, **resampled_needs}

    def settings(self) -> dict:
        """The encoders' options for the output's ``settings``: the default encoder's by name (the
        Inception's ``resize``), every other's as ``<option>@<encoder>``."""
        settings = {}
        for name, encoder in self.encoders.items():
            for option, value in encoder.provenance_options().items():
                settings[option if name == DEFAULT_ENCODER else f"{option}@{name}"] = value
        return settings


def fewest_images(needs: Mapping[Need, str]) -> tuple[int, str]:
    """The fewest images ``needs`` allow, and what needs them (for the message)."""
    minimum, purpose = 1, ""
    for need, names in needs.items():
        least, purpose_of_need = need.reducer.fewest(dict(need.options), names)
        if least > minimum:
            minimum, purpose = least, purpose_of_need
    return minimum, purpose


def make_plan(names: Iterable[str], metric_options: Mapping, config: RunConfig,
              interval: IntervalOptions = IntervalOptions()) -> Plan:
    """The plan of a run of the metrics ``names`` (``NAME``, ``NAME@ENCODER`` or a suite) with
    their ``metric_options``, checked as the module says; ``interval``: ``--ci``."""
    names = tuple(dict.fromkeys(names))
    metrics = build_metrics(names, dict(metric_options))
    order = sorted(dict.fromkeys(m.encoder_name for m in metrics), key=lambda name: name != DEFAULT_ENCODER)
    for name in order:
        encoder_class(name)
    encoders = build_encoders(order, config)
    for metric in metrics:
        encoders[metric.encoder_name].default_feature(metric)  # refuses a metric the encoder cannot serve
    check_suites(names, metrics, encoders)
    plan = Plan(names, metrics, encoders, config, interval)
    if interval.replicates and not plan.bootstrapped:
        have = ", ".join(name for name, cls in METRICS.items() if cls.interval_keys)
        raise GanMetricsError(f"--ci: no interval for {', '.join(m.label for m in metrics)}; "
                              f"request a metric that has one ({have}) or drop --ci")
    return plan
