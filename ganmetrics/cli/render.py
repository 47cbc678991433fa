"""Results as text for people and JSON for machines (CONTRACT.md)."""

import json
import math

import click

from ..provenance import Provenance


def calibration_note(calibrated: bool) -> str:
    return "" if calibrated else " [UNCALIBRATED weights: not comparable with published values]"


def echo_json(value) -> None:
    click.echo(json.dumps(value))


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
    """The JSON object of one ``EvalResult`` (CONTRACT.md "eval")."""
    return {"metric": "eval", "source_a": result.source_a, "source_b": result.source_b, "n_a": result.n_a,
            "n_b": result.n_b, "results": result.results, "settings": result.settings,
            **result.provenance.json_tail()}


def _value(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) and abs(value) >= 1e-3 or value == 0 else f"{value:.6g}"


def echo_eval(results: list, provenance: Provenance) -> None:
    """One row per SOURCE_B, one column per result key, then what they were computed against."""
    keys = list(results[0].results)
    echo_table([[r.source_b, "?" if r.n_b is None else str(r.n_b), *(_value(r.results[k]) for k in keys)]
                for r in results], ["SOURCE_B", "n_b", *keys])
    first = results[0]
    settings = ", ".join(f"{k}={v}" for k, v in first.settings.items())
    click.echo(f"against {first.source_a} (n_a={'?' if first.n_a is None else first.n_a}; {settings})"
               f"{calibration_note(provenance.calibrated)}")
