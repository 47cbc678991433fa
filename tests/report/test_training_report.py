"""A training run's page: every evaluation's values (those of metrics.jsonl, exactly), the loss
and FID curves, each evaluation's sample sheet (at most ``MAX_SHEETS``, the first and the last
among them, each within its byte budget), settings; it opens in headless Chromium with no error
and no request."""

import base64
import html
import io
import json

import numpy as np
from PIL import Image

import browser
from ganmetrics.report import thumbnails
from ganmetrics.report.plot import figure_png
from ganmetrics.report.training import MAX_SHEETS, shown_steps, write_training_report
from ganmetrics.train.loop import curves_figure, sheet_path

STEPS = list(range(0, 2000, 100))
CELLS = ("JSON.stringify([...document.querySelectorAll('table[data-name=evaluations] td[data-key]')].map(td => "
         "[td.dataset.key, JSON.parse(td.dataset.value)]))")
SHEETS = "JSON.stringify([...document.querySelectorAll('figure img')].map(i => [i.title, i.src]))"


def metrics_rows() -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"step": step, "fid": float(100 / (1 + step)), "is_mean": None, "is_std": None,
             "class_fid": {"cat": float(rng.random()), "dog": float(rng.random())},
             "loss_d": None if step == 0 else float(rng.random()), "loss_g": None if step == 0 else float(rng.random()),
             "calibrated": False, "seconds": step * 0.5} for step in STEPS]


def test_the_training_page_shows_every_evaluation_its_curves_and_sheets(tmp_path):
    rows = metrics_rows()
    (tmp_path / "samples").mkdir()
    rng = np.random.default_rng(1)
    for step in STEPS[:-2]:  # the last two evaluations' sheets are missing
        Image.fromarray(rng.integers(0, 256, (8 * 34 + 2, 8 * 34 + 2, 3), dtype=np.uint8)).save(sheet_path(tmp_path, step))
    page = tmp_path / "report.html"
    settings = {"data_dir": "data", "steps": 1900, "metric_options": {"weights": {"inception": "random:0"}}}
    write_training_report(page, rows, figure_png(curves_figure(rows)), {s: sheet_path(tmp_path, s) for s in STEPS},
                          settings)
    seen = browser.visit(page, (CELLS, SHEETS))
    assert seen.errors == [] and [u for u in seen.requests if not u.startswith("data:")] == [page.as_uri()]
    expected = [(key, value) for row in rows for key, value in
                [("step", row["step"]), ("fid", row["fid"]), ("class_fid/cat", row["class_fid"]["cat"]),
                 ("class_fid/dog", row["class_fid"]["dog"]), ("loss_d", row["loss_d"]), ("loss_g", row["loss_g"]),
                 ("seconds", row["seconds"])] if value is not None]
    assert [tuple(cell) for cell in json.loads(seen.values[CELLS])] == expected  # exactly the JSON's
    figures = json.loads(seen.values[SHEETS])
    shown = [step for step in shown_steps(STEPS) if step < STEPS[-2]]
    assert len(shown_steps(STEPS)) == MAX_SHEETS and shown_steps(STEPS)[0] == 0 and shown_steps(STEPS)[-1] == STEPS[-1]
    assert [title for title, _ in figures] == ["losses and FID", *(f"step {step}" for step in shown)]
    for _, uri in figures[1:]:
        data = base64.b64decode(uri.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as sheet:
            assert len(data) <= thumbnails.budget(*sheet.size)
    text = html.unescape(page.read_text())
    assert f"{len(STEPS) - MAX_SHEETS} of {len(STEPS)} evaluations' sheets left out" in text
    missing = [str(step) for step in shown_steps(STEPS) if step >= STEPS[-2]]
    assert f"no sheet for step {', '.join(missing)}" in text and "UNCALIBRATED" in text
    assert 'metric_options</dt><dd>{"weights": {"inception": "random:0"}}' in text
    assert "not run from the command line" in text

