"""The rows a report is drawn from: ``eval``'s JSON objects (CONTRACT.md "eval"), as ``eval
--report`` builds them or as ``ganmetrics report`` reads them back from saved ``--json`` output,
and what a page needs to know of their keys without the metrics at hand.

Key names (``metrics.base.Metric.result_key``): a metric's key on its default encoder is plain
(``fid``, ``is_mean``), on another encoder suffixed ``@ENCODER`` (``fid@vgg16``, ``fid_inf_se@vgg16``);
``--ci`` adds ``<key>_ci_low``/``<key>_ci_high`` after that suffix (``fid@vgg16_ci_low``).
"""

import json
import math
from pathlib import Path

from ..errors import GanMetricsError, describe_error, quoted
from ..extractors.base import option_fields
from ..extractors.registry import DEFAULT_ENCODER, ENCODERS
from ..metrics.registry import METRICS

INTERVAL_ENDS = ("_ci_low", "_ci_high")
SPREAD_SUFFIXES = ("_std", "_se")
"""Result keys that are a spread of another result (``is_std``, ``fid_inf_se``): shown beside
it, never plotted as a panel of their own."""
REQUIRED = {"source_a": str, "source_b": str, "results": dict, "settings": dict, "weights": dict}
"""The keys (and types) every ``eval`` JSON object has, which a report reads."""
FIX = "pass the output of `ganmetrics eval SOURCE_A SOURCE_B... --json` (e.g. saved with > results.json)"


def parse_key(key: str) -> tuple[str, str | None]:
    """(the metric's own key, the encoder of its ``@ENCODER`` suffix or None) of a result or
    details key that is not an interval end: "fid@vgg16" -> ("fid", "vgg16")."""
    base, _, encoder = key.partition("@")
    return base, encoder or None


def sibling(key: str, suffix: str) -> str:
    """The key of the same metric and encoder with ``suffix`` on its own key:
    ("fid_inf@vgg16", "_se") -> "fid_inf_se@vgg16"."""
    base, encoder = parse_key(key)
    return f"{base}{suffix}" + (f"@{encoder}" if encoder else "")


def value_keys(rows: list[dict]) -> list[str]:
    """The result keys of ``rows`` that are values (not interval ends), each once, in order."""
    keys = (key for row in rows for key in row["results"] if not key.endswith(INTERVAL_ENDS))
    return list(dict.fromkeys(keys))


def plotted_keys(rows: list[dict]) -> list[str]:
    """The value keys that get a panel of their own: all but the spreads."""
    return [key for key in value_keys(rows) if not parse_key(key)[0].endswith(SPREAD_SUFFIXES)]


def detail_keys(rows: list[dict], suffix: str) -> list[str]:
    """The ``details`` keys of ``rows`` whose own key ends in ``suffix`` ("_fit", "_pairs"), in order."""
    keys = (key for row in rows for key in row.get("details", {}) if parse_key(key)[0].endswith(suffix))
    return list(dict.fromkeys(keys))


def interval(row: dict, key: str) -> tuple[float, float] | None:
    """The ``--ci`` interval (low, high) of ``key`` in ``row``, or None."""
    values = row["results"]
    low, high = f"{key}_ci_low", f"{key}_ci_high"
    return (values[low], values[high]) if low in values and high in values else None


def encoders_of(row: dict) -> dict[str, dict]:
    """{encoder: {"extractor", "options", "weights"}} of the encoders ``row`` ran: its
    ``encoders`` where a non-default encoder ran, else the default encoder alone, its options
    read from ``settings`` and its weights from ``weights``."""
    if "encoders" in row:
        return row["encoders"]
    names = option_fields(ENCODERS[DEFAULT_ENCODER].Options)
    options = {name: value for name, value in row["settings"].items() if name in names}
    return {DEFAULT_ENCODER: {"extractor": ENCODERS[DEFAULT_ENCODER].model, "options": options,
                              "weights": row["weights"]}}


def encoder_of(key: str, row: dict) -> str:
    """The encoder a value key of ``row`` was computed on: its ``@ENCODER`` suffix, else the
    default encoder of the registered metric with that key, else the row's first encoder."""
    base, encoder = parse_key(key)
    if encoder:
        return encoder
    owner = next((cls for cls in METRICS.values() if base in cls.keys), None)
    return owner.default_encoder if owner else next(iter(encoders_of(row)))


def calibrated(row: dict) -> bool:
    """Whether every encoder of ``row`` ran with its standard weights."""
    return all(encoder["weights"].get("calibrated") is True for encoder in encoders_of(row).values())


def check_row(row, where: str) -> dict:
    """``row`` if it is an ``eval`` JSON object with the keys a report reads, else a one-line
    error naming ``where`` it came from."""
    if not isinstance(row, dict):
        raise GanMetricsError(f"{where} is not a JSON object of `ganmetrics eval --json`: {FIX}")
    if row.get("metric") != "eval":
        what = f"the output of `ganmetrics {row['metric']} --json`" if isinstance(row.get("metric"), str) else \
            "not the output of `ganmetrics eval --json`"
        raise GanMetricsError(f"{where} is {what}, not of `eval`: {FIX}")
    for key, kind in REQUIRED.items():
        if not isinstance(row.get(key), kind):
            raise GanMetricsError(f"{where} has no {key!r} {kind.__name__}: not the output of `ganmetrics eval --json`; {FIX}")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row["results"].values())
    if not row["results"] or not numbers:
        raise GanMetricsError(f"{where} has no results, or results that are not numbers: {FIX}")
    return row


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_rows(paths: list[Path]) -> list[dict]:
    """Every ``eval`` JSON object of the files ``paths`` (each one object or a list of them, as
    ``eval --json`` prints for one SOURCE_B or several), in order; anything else is a one-line
    error naming the file."""
    rows = []
    for path in paths:
        try:
            value = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise GanMetricsError(f"cannot read {quoted(path)} as JSON ({describe_error(err)}): {FIX}") from None
        items = value if isinstance(value, list) else [value]
        if not items:
            raise GanMetricsError(f"{quoted(path)} holds an empty list: {FIX}")
        rows += [check_row(item, quoted(path) if len(items) == 1 else f"{quoted(path)}[{i}]")
                 for i, item in enumerate(items)]
    return rows



def number(value: float) -> str:
    """A value as tables print it: 6 decimals, or 6 significant digits below 0.001."""
    return f"{value:.6f}" if math.isfinite(value) and abs(value) >= 1e-3 or value == 0 else f"{value:.6g}"
