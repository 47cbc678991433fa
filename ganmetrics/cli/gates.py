"""Gates: ``--fail-above NAME=X[,NAME=X]`` and ``--fail-below`` on result keys, and their
interval-aware forms ``--fail-above-ci`` / ``--fail-below-ci`` on the bounds of a ``--ci``
interval; exit 1 when crossed."""

from ..errors import GanMetricsError


class ThresholdCrossed(Exception):
    """A gating threshold was crossed: exit code 1 with this one-line reason."""


def _of_classes(keys: set[str], metrics, classes) -> set[str]:
    """``keys`` as a run gives them: as they are, or with ``classes`` (a ``--per-class`` run's)
    each of each class (``fid/cat``) and the intra keys of those among them (``intra_fid``)."""
    if classes is None:
        return keys
    from ..evaluation.classes import class_key, intra_keys  # NumPy and the stores: only for a --per-class run

    return {class_key(key, name) for key in keys for name in classes} | \
        {intra for intra, key in intra_keys(metrics).items() if key in keys}


def value_keys(metrics, classes=None) -> set[str]:
    """The result keys of ``metrics`` (with ``classes``: as ``_of_classes`` says)."""
    return _of_classes({metric.result_key(key) for metric in metrics for key in metric.keys}, metrics, classes)


def interval_bases(metrics, classes=None) -> set[str]:
    """The result keys that ``--ci`` gives an interval (with ``classes``: as ``_of_classes`` says)."""
    return _of_classes({metric.result_key(key) for metric in metrics for key in metric.interval_keys}, metrics, classes)


def _first_keys(metrics, classes) -> dict[str, str]:
    """{a metric's name: its first result key} (``is``: ``is_mean``); with ``classes``, of
    each class (``is/cat``: ``is_mean/cat``)."""
    firsts = {metric.label: metric.result_key(metric.keys[0]) for metric in metrics}
    if classes is None:
        return firsts
    from ..evaluation.classes import class_key

    return {class_key(name, of_class): class_key(key, of_class) for name, key in firsts.items() for of_class in classes}


def interval_end(key: str, end: str) -> str:
    """The key of the ``end`` ("low", "high") of ``key``'s interval: ``fid_ci_low``; of a
    class's, before its class: ``fid_ci_low/cat``."""
    base, slash, name = key.partition("/")
    return f"{base}_ci_{end}{slash}{name}"


def interval_ends(metrics, classes=None) -> set[str]:
    """The ``<key>_ci_low`` and ``<key>_ci_high`` result keys that ``--ci`` adds for ``metrics``."""
    return {interval_end(key, end) for key in interval_bases(metrics, classes) for end in ("low", "high")}


def parse_gates(spec: str | None, option: str, metrics, interval: bool = False, with_ci: bool = False,
                classes=None) -> dict[str, float]:
    """``NAME=X[,NAME=X]`` -> {result key: X}. A NAME is a result key of a requested metric
    (``is_mean``, ``kid_std``, ...; with ``with_ci``, a run with ``--ci``, also an interval's
    end, ``fid_ci_high``) or a metric's name (its first key: ``is`` -> ``is_mean``); with
    ``interval`` (the ``-ci`` gates), a key that gets a bootstrap interval (``interval_keys``).
    With ``classes`` (a ``--per-class`` run's), those of each class (``fid/cat``, ``is/cat``)
    and the intra keys (``intra_fid``)."""
    if spec is None:
        return {}
    if interval:
        keys = interval_bases(metrics, classes)
    else:
        keys = value_keys(metrics, classes) | (interval_ends(metrics, classes) if with_ci else set())
    by_name = _first_keys(metrics, classes)
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
        if key not in keys and key in interval_ends(metrics, classes):
            raise GanMetricsError(f"{option} {name}=...: {name!r} is an end of a confidence interval: add --ci B "
                                  "(e.g. --ci 100)")
        if key not in keys:
            what = "has no bootstrap interval" if interval and key in value_keys(metrics, classes) else \
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
        return (f"{key} {level * 100:g}% CI [{values[interval_end(key, 'low')]:.4f}, "
                f"{values[interval_end(key, 'high')]:.4f}] {relation} {limit:g}")

    out = [describe(key, ">", limit) for key, limit in above.items() if not values[interval_end(key, "low")] <= limit]
    return out + [describe(key, "<", limit) for key, limit in below.items() if not values[interval_end(key, "high")] >= limit]


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
