"""Results as text for people and JSON for machines (CONTRACT.md)."""

import json
import math

import click

from ..errors import GanMetricsError
from ..provenance import Provenance


def calibration_note(calibrated: bool) -> str:
    return "" if calibrated else " [UNCALIBRATED weights: not comparable with published values]"


def _non_finite(value, where: str = "") -> tuple[str, float] | None:
    """The first (key path, value) in a JSON-able value (dicts, lists, floats) that is a float
    NaN or infinity, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where or "value", value)
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def require_finite(values, what: str) -> None:
    """Refuse a result that is not finite (NaN or infinity anywhere in ``values``: a dict,
    list or float), so that it never reaches a gate (NaN > X is False) or an exit 0. ``what``
    names the result, e.g. "FID of runs/b"."""
    found = _non_finite(values)
    if found:
        key, value = found
        raise GanMetricsError(
            f"{what}: result is not finite ({key} = {value}): the features hold NaN or infinity; check the "
            "images, the weights and the device (--device cpu to compare)"
        )


def echo_json(value) -> None:
    """``value`` as one JSON line on stdout; a NaN or infinity anywhere is refused (it is not
    JSON, and it must never pass for a result)."""
    require_finite(value, "JSON output")
    click.echo(json.dumps(value, allow_nan=False))


def echo_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    rows = [header, *rows] if header else rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def eval_row(result) -> dict:
    """The JSON object of one ``EvalResult`` (CONTRACT.md "eval"), with its ``details`` (FID∞'s
    fitted points, ...) where a metric gave some."""
    return {"metric": "eval", "source_a": result.source_a, "source_b": result.source_b, "n_a": result.n_a,
            "n_b": result.n_b, "results": result.results, "settings": result.settings,
            **({"details": result.details} if result.details else {}), **result.provenance.json_tail()}


def _value(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) and abs(value) >= 1e-3 or value == 0 else f"{value:.6g}"


def echo_eval(results: list, provenance: Provenance) -> None:
    """One row per SOURCE_B, one column per result key, then what they were computed against."""
    keys = list(results[0].results)
    echo_table([[r.source_b, "?" if r.n_b is None else str(r.n_b), *(_value(r.results[k]) for k in keys)]
                for r in results], ["SOURCE_B", "n_b", *keys])
    _echo_against(results[0], provenance)


def echo_suite(results: list, rows: tuple[tuple[str, str], ...], provenance: Provenance) -> None:
    """A suite's results as the tool it follows prints them: one "Label: value" line per row, in
    its order (the ADM evaluator's "Inception Score: 215.8..." to "Recall: ..."), under a
    "SOURCE_B:" line each where there are several; then what they were computed against."""
    for r in results:
        if len(results) > 1:
            click.echo(f"{r.source_b}:")
        for key, label in rows:
            click.echo(f"{label}: {float(r.results[key])}")
    _echo_against(results[0], provenance, with_n_b=True)


def _echo_against(first, provenance: Provenance, with_n_b: bool = False) -> None:
    """The closing line: the reference, its count (and ``first``'s generated count where the
    rows above do not show it), the settings and the calibration note."""
    counts = f"n_a={'?' if first.n_a is None else first.n_a}"
    if with_n_b:
        counts += f", n_b={'?' if first.n_b is None else first.n_b}"
    settings = ", ".join(f"{k}={v}" for k, v in first.settings.items())
    click.echo(f"against {first.source_a} ({counts}; {settings}){calibration_note(provenance.calibrated)}")
