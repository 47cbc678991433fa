"""Gates: ``--fail-above NAME=X[,NAME=X]`` and ``--fail-below`` on result keys, and their
interval-aware forms ``--fail-above-ci`` / ``--fail-below-ci`` on the bounds of a ``--ci``
interval; exit 1 when crossed."""

from ..errors import GanMetricsError


class ThresholdCrossed(Exception):
    """A gating threshold was crossed: exit code 1 with this one-line reason."""


def interval_ends(metrics) -> set[str]:
    """The ``<key>_ci_low`` and ``<key>_ci_high`` result keys that ``--ci`` adds for ``metrics``."""
    return {f"{metric.result_key(key)}_ci_{end}" for metric in metrics for key in metric.interval_keys
            for end in ("low", "high")}


def parse_gates(spec: str | None, option: str, metrics, interval: bool = False, with_ci: bool = False) -> dict[str, float]:
    """``NAME=X[,NAME=X]`` -> {result key: X}. A NAME is a result key of a requested metric
    (``is_mean``, ``kid_std``, ...; with ``with_ci``, a run with ``--ci``, also an interval's
    end, ``fid_ci_high``) or a metric's name (its first key: ``is`` -> ``is_mean``); with
    ``interval`` (the ``-ci`` gates), a key that gets a bootstrap interval (``interval_keys``)."""
    if spec is None:
        return {}
    if interval:
        keys = {metric.result_key(key) for metric in metrics for key in metric.interval_keys}
    else:
        keys = {metric.result_key(key) for metric in metrics for key in metric.keys} | \
            (interval_ends(metrics) if with_ci else set())
    by_name = {metric.label: metric.result_key(metric.keys[0]) for metric in metrics}
    gates = {}
    for item in spec.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            threshold = float(value) if sep and name else None
        except ValueError:
            threshold = None
        if threshold is None:
            raise GanMetricsError(f"{option} {spec!r}: each item must be NAME=NUMBER, e.g. {option} fid=30,kid=0.01")
        key = by_name.get(name, name)
        if key not in keys and key in interval_ends(metrics):
            raise GanMetricsError(f"{option} {name}=...: {name!r} is an end of a confidence interval: add --ci B "
                                  "(e.g. --ci 100)")
        if key not in keys:
            what = "has no bootstrap interval" if interval and key in {m.result_key(k) for m in metrics for k in m.keys} else \
                "is not a requested result"
            choices = ", ".join(sorted(keys | {name for name, first in by_name.items() if first in keys}))
            raise GanMetricsError(f"{option} {name}=...: {name!r} {what}; use one of {choices or '(none)'}")
        gates[key] = threshold
    return gates


def crossed(values: dict, above: dict[str, float], below: dict[str, float]) -> list[str]:
    """One description per crossed gate, e.g. "fid 31.2000 > 30"; a value that is not a number
    crosses every gate on it (NaN compares false both ways)."""
    out = [f"{key} {values[key]:.4f} > {limit:g}" for key, limit in above.items() if not values[key] <= limit]
    return out + [f"{key} {values[key]:.4f} < {limit:g}" for key, limit in below.items() if not values[key] >= limit]


def crossed_interval(values: dict, above: dict[str, float], below: dict[str, float], level: float) -> list[str]:
    """One description per crossed interval gate: above when the whole interval is above the
    limit (its low end is), below when the whole interval is below it (its high end is), e.g.
    "fid 95% CI [31.2000, 33.0000] > 30"."""
    def describe(key: str, relation: str, limit: float) -> str:
        return (f"{key} {level * 100:g}% CI [{values[f'{key}_ci_low']:.4f}, {values[f'{key}_ci_high']:.4f}] "
                f"{relation} {limit:g}")

    out = [describe(key, ">", limit) for key, limit in above.items() if not values[f"{key}_ci_low"] <= limit]
    return out + [describe(key, "<", limit) for key, limit in below.items() if not values[f"{key}_ci_high"] >= limit]


def verdicts(values: dict, gates: tuple[dict, dict, dict, dict], level: float) -> list[dict]:
    """Every gate of ``eval``'s ``gates`` (``--fail-above``, ``--fail-below``, ``--fail-above-ci``,
    ``--fail-below-ci``: {key: threshold} each) on the results ``values``, in that order, as
    {"gate": option, "key", "threshold", "crossed": bool, "reason": the description of
    ``crossed``/``crossed_interval`` or None}: for the JSON and the report."""
    above, below, above_ci, below_ci = gates
    checks = (("--fail-above", above, lambda key, limit: crossed(values, {key: limit}, {})),
              ("--fail-below", below, lambda key, limit: crossed(values, {}, {key: limit})),
              ("--fail-above-ci", above_ci, lambda key, limit: crossed_interval(values, {key: limit}, {}, level)),
              ("--fail-below-ci", below_ci, lambda key, limit: crossed_interval(values, {}, {key: limit}, level)))
    found = []
    for option, chosen, describe in checks:
        for key, limit in chosen.items():
            reasons = describe(key, limit)
            found.append({"gate": option, "key": key, "threshold": limit, "crossed": bool(reasons),
                          "reason": reasons[0] if reasons else None})
    return found
