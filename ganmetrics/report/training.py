"""A training run's page (``RUN_DIR/report.html``, written by the trainer at the end of a run):
its loss and FID curves, every evaluation's metrics (the rows of ``metrics.jsonl``), the sample
sheet of each evaluation step, and the run's settings, versions and command line."""

from pathlib import Path

import numpy as np
from PIL import Image

from .page import Cell, Code, Figure, Listing, Page, Section, Table, as_text, command_line, versions, write_page
from .results import number
from .thumbnails import picture, png_picture

MAX_SHEETS = 16
"""The most sample sheets a page shows: every evaluation's up to this many, else this many
spread evenly over the run, the first and the last among them."""


def _flat(row: dict) -> dict:
    """``row`` with each dict value spread into "key/name" entries (``class_fid`` per class)."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def _cell(value, key: str) -> Cell:
    if value is None:
        return Cell("—")
    if isinstance(value, float):
        return Cell(number(value), value, key)
    return Cell(str(value), value if isinstance(value, int) and not isinstance(value, bool) else None, key)


def evaluations_table(rows: list[dict]) -> Table:
    """One row per evaluation, one column per value it recorded (the calibration flag aside)."""
    flat = [_flat(row) for row in rows]
    keys = [key for key in dict.fromkeys(k for row in flat for k in row) if key != "calibrated"]
    return Table([Cell(key) for key in keys], [[_cell(row.get(key), key) for key in keys] for row in flat],
                 "evaluations")


def shown_steps(steps: list[int]) -> list[int]:
    """The steps whose sheets a page shows: all of ``steps``, or ``MAX_SHEETS`` spread evenly."""
    if len(steps) <= MAX_SHEETS:
        return steps
    return [steps[i] for i in sorted(set(np.linspace(0, len(steps) - 1, MAX_SHEETS).round().astype(int)))]


def sheets(paths: dict[int, Path]) -> tuple[list[Figure], str]:
    """(the sample sheet of each shown step, each within its byte budget, a note of what is not shown)."""
    figures, missing = [], []
    shown = shown_steps(list(paths))
    for step in shown:
        if not paths[step].is_file():
            missing.append(str(step))
            continue
        with Image.open(paths[step]) as sheet:
            figures.append(Figure(picture(sheet.convert("RGB"), f"step {step}"), f"step {step}"))
    notes = [f"{len(paths) - len(shown)} of {len(paths)} evaluations' sheets left out (all are in samples/)"
             if len(shown) < len(paths) else "", f"no sheet for step {', '.join(missing)}" if missing else ""]
    return figures, "; ".join(filter(None, notes))


def training_page(rows: list[dict], curves: bytes, sheet_paths: dict[int, Path], settings: dict) -> Page:
    """The page of a run whose evaluations are ``rows``, whose curves are the PNG ``curves``,
    whose sample sheets are at ``sheet_paths`` ({step: PNG file}), run with ``settings``."""
    figures, note = sheets(sheet_paths)
    command = command_line()
    sections = [
        Section("Evaluations", [evaluations_table(rows)]),
        Section("Curves", [Figure(png_picture(curves, "losses and FID"), "losses and FID against steps")]),
        Section("Samples at each evaluation", figures, note),
        Section("Settings and how to reproduce", [
            Listing([(key, as_text(value)) for key, value in settings.items()], "settings"),
            Code(command or "not run from the command line: train(TrainConfig(...)) with the settings above",
                 "command line"),
            Listing(list(versions().items()), "versions")]),
    ]
    alerts = [] if all(row.get("calibrated") is True for row in rows) else [
        "UNCALIBRATED (or unrecorded) evaluator weights: these values are not comparable with published ones"]
    last = rows[-1]
    return Page("ganmetrics training run", f"{len(rows)} evaluations, up to step {last['step']}", sections, alerts, rows)


def write_training_report(path: Path, rows: list[dict], curves: bytes, sheet_paths: dict[int, Path],
                          settings: dict) -> None:
    """``training_page`` written atomically to ``path``."""
    write_page(path, training_page(rows, curves, sheet_paths, settings))
