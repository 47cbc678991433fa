"""Gates: ``--fail-above NAME=X[,NAME=X]`` and ``--fail-below`` on result keys, exit 1 when crossed."""

from ..errors import GanMetricsError


class ThresholdCrossed(Exception):
    """A gating threshold was crossed: exit code 1 with this one-line reason."""


def parse_gates(spec: str | None, option: str, metrics) -> dict[str, float]:
    """``NAME=X[,NAME=X]`` -> {result key: X}. A NAME is a result key of a requested metric
    (``is_mean``, ``kid_std``, ...) or a metric's name (its first key: ``is`` -> ``is_mean``)."""
    if spec is None:
        return {}
    keys = {key for metric in metrics for key in metric.keys}
    by_name = {metric.name: metric.keys[0] for metric in metrics}
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
        if key not in keys:
            raise GanMetricsError(
                f"{option} {name}=...: {name!r} is not a requested result; use one of {', '.join(sorted(keys | set(by_name)))}"
            )
        gates[key] = threshold
    return gates


def crossed(values: dict, above: dict[str, float], below: dict[str, float]) -> list[str]:
    """One description per crossed gate, e.g. "fid 31.2000 > 30"; a value that is not a number
    crosses every gate on it (NaN compares false both ways)."""
    out = [f"{key} {values[key]:.4f} > {limit:g}" for key, limit in above.items() if not values[key] <= limit]
    return out + [f"{key} {values[key]:.4f} < {limit:g}" for key, limit in below.items() if not values[key] >= limit]
