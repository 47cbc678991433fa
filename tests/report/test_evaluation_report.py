"""The evaluation report (``eval --report``, ``ganmetrics report``): a page that opens in headless
Chromium with no error logged and no request beyond the file and its data: URIs, whose numbers
are the JSON's, that embeds everything (thumbnails within a stated byte bound), is written
atomically, shows every encoder, gate and side, and the closest pairs of a ``<name>_pairs``
detail; bad requests are one line, exit 2, nothing written.

The metrics run on a toy encoder defined here (no Inception to build: seconds a run), and a
stand-in for ``memorisation`` gives the pairs in the documented details format."""

import base64
import html.parser
import io
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import browser
from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images
from ganmetrics.engine import distributed
from ganmetrics.extractors import registry as encoders
from ganmetrics.extractors.base import FeatureExtractor
from ganmetrics.metrics import registry as metrics
from ganmetrics.metrics.base import Metric, Need
from ganmetrics.metrics.reducers import FeatureBank
from ganmetrics.report import thumbnails
from ganmetrics.report.evaluation import PAIRS_SHOWN
from ganmetrics.sources import open_source

N = 70  # above the 64 thumbnails of the default 8 x 8 grid
OPTIONS = ("--weights", "tiny=random:0", "--quiet", "--workers", "0", "--no-cache")


class Tiny(FeatureExtractor):
    """A fixed random projection of each image's 4 x 4 area-average downsample: 8 features."""

    name, model = "tiny", "tiny-projection-4x4"
    features = {"proj": 8}
    roles = {"frechet": "proj", "embedding": "proj"}

    @classmethod
    def architecture(cls):
        return torch.nn.Linear(4 * 4 * 3, 8, bias=False)

    def forward(self, network, pixels, wanted):
        x = F.interpolate(pixels.permute(0, 3, 1, 2).float(), size=(4, 4), mode="area")
        return {"proj": network(x.flatten(1) / 255)}


@dataclass(frozen=True)
class ClosestPairs(Metric):
    """A stand-in for ``memorisation``: each generated image's nearest reference image
    (Euclidean, over the encoder's features); its result the smallest distance, its details the
    5 closest pairs as [generated index, reference index, distance], closest first."""

    name = "memorisation"
    sides = 2
    keys = ("nearest_distance",)

    def needs(self, extractor):
        return [Need(extractor.name, extractor.default_feature(self), FeatureBank)]

    def compute(self, a, b, device=None):
        (need,) = a
        distances = np.linalg.norm(b[need][:, None].astype(np.float64) - a[need][None], axis=2)
        nearest, closest = distances.argmin(1), distances.min(1)
        order = np.argsort(closest, kind="stable")[:5]
        return {"nearest_distance": float(closest.min()),
                "memorisation_pairs": [[int(g), int(nearest[g]), float(closest[g])] for g in order]}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(encoders.ENCODERS, Tiny.name, Tiny)
    monkeypatch.setitem(metrics.METRICS, ClosestPairs.name, ClosestPairs)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A reference of N images, two generated sets; image 3 of the first is reference image 5."""
    root = tmp_path_factory.mktemp("sides")
    a = smooth_images(N, (24, 24), seed=71)
    b = smooth_images(N, (24, 24), seed=72, offset=0.2)
    b[3] = a[5]
    return (write_images(root / "a", a), write_images(root / "b", b),
            write_images(root / "c", smooth_images(40, (20, 28), seed=73, offset=0.1)))


class Embedded(html.parser.HTMLParser):
    """Every ``src``/``href`` of a page, every image's (title, file bytes, decoded PIL image),
    and every table's rows by its ``data-name`` (each cell's text before its note)."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.images, self.tables, self.table, self.cell = [], [], {}, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[name] for name in ("src", "href") if name in attrs]
        if tag == "img":
            data = base64.b64decode(attrs["src"].split(",", 1)[1])
            self.images.append((attrs.get("title", ""), data, Image.open(io.BytesIO(data))))
        elif tag == "table":
            self.table = self.tables.setdefault(attrs.get("data-name"), [])
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = ""
        elif tag == "span" and self.cell is not None:
            self.table[-1].append(self.cell)
            self.cell = None

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.table[-1].append(self.cell)
        if tag in ("td", "th"):
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


CELLS = ("JSON.stringify([...document.querySelectorAll('table[data-name^=results] td[data-key]')].map(td => "
         "[td.parentElement.cells[0].firstChild.textContent, td.dataset.key, td.dataset.value, td.firstChild.textContent,"
         " (td.querySelector('.note') || {}).textContent || '']))")
DATA = "document.getElementById('ganmetrics-data').textContent"
PAIRS = "JSON.stringify([...document.querySelectorAll('.pair')].map(p => [...p.querySelectorAll('img')].map(i => i.title)))"


def shown_in_chromium(page) -> dict:
    """The page in headless Chromium: no error logged, no request but the file and data: URIs,
    a screenshot that shows something; returns the values of the expressions above."""
    seen = browser.visit(page, (CELLS, DATA, PAIRS))
    assert seen.errors == []
    assert [url for url in seen.requests if not url.startswith("data:")] == [page.resolve().as_uri()]
    with Image.open(io.BytesIO(seen.screenshot)) as shot:
        colours = np.unique(np.asarray(shot.convert("RGB")).reshape(-1, 3), axis=0)
        assert shot.size[0] == 1280 and len(colours) > 100  # text, plots and thumbnails, not a blank page
    return seen.values


def test_the_eval_report_opens_in_chromium_with_no_error_and_no_request_and_shows_the_json_s_numbers(sets, tmp_path):
    a, b, c = sets
    page = tmp_path / "report.html"
    result = run_cli("eval", a, b, c, "--metrics", "fid@tiny,kid@tiny,memorisation@tiny", "--kid-subsets", "5",
                     "--kid-subset-size", "20", "--ci", "10", "--fail-above", "kid@tiny=1",
                     "--fail-below", "nearest_distance@tiny=1e-6", "--json", "--report", page, options=OPTIONS)
    assert result.exit_code == 1  # b holds a copy of a reference image: its nearest distance is 0
    rows = json.loads(result.stdout)
    assert [[gate["crossed"] for gate in row["run"]["gates"]] for row in rows] == [[False, True], [False, False]]
    assert rows[0]["run"]["command"].startswith(f"ganmetrics eval {a} {b} {c} --metrics fid@tiny,kid@tiny")
    assert rows[0]["run"]["sources"] == {"recursive": True, "key": None, "limit": None, "strict": False}
    values = shown_in_chromium(page)
    assert json.loads(values[DATA]) == rows  # the rows ride along as data
    cells = json.loads(values[CELLS])
    expected = [(row["source_b"], key, value) for row in rows for key, value in row["results"].items()
                if not key.endswith(("_ci_low", "_ci_high"))]
    assert [(source, key, float(value)) for source, key, value, _, _ in cells] == expected  # exactly, every one
    by_source = {row["source_b"]: row for row in rows}
    for source, key, value, text, note in cells:  # what people read: the JSON's numbers to 6 places
        row = by_source[source]
        assert float(text) == pytest.approx(float(value), rel=5e-6, abs=5e-7)
        low, high = row["results"].get(f"{key}_ci_low"), row["results"].get(f"{key}_ci_high")
        shown = [float(end) for end in note.strip("[]").split(", ")] if note else None
        assert shown == (None if low is None else [pytest.approx(low, rel=5e-6, abs=5e-7),
                                                   pytest.approx(high, rel=5e-6, abs=5e-7)])
    # The closest pair of b: its image 3, a copy of reference image 5, at distance 0.
    assert rows[0]["details"]["memorisation_pairs@tiny"][0] == [3, 5, 0.0]
    assert json.loads(values[PAIRS])[0] == ["#3 0003.png", "#5 0005.png"]


def test_report_from_saved_json_is_the_same_page(sets, tmp_path, monkeypatch):
    a, b, _ = sets
    monkeypatch.chdir(tmp_path)
    result = run_cli("eval", a, b, "--metrics", "fid@tiny", "--json", "--report", "direct.html", options=OPTIONS)
    (tmp_path / "b.json").write_text(result.stdout)
    written = run_cli("report", "b.json", "-o", "later.html", options=())
    assert written.exit_code == 0, written.output
    assert written.stdout == "wrote later.html: the report of 1 generated set\n"
    assert (tmp_path / "later.html").read_text() == (tmp_path / "direct.html").read_text()


def test_under_torchrun_only_rank_0_checks_and_writes_the_report(sets, tmp_path, monkeypatch):
    a, b, _ = sets
    args = ("eval", a, b, "--metrics", "fid@tiny", "--report", tmp_path / "r.html")
    with monkeypatch.context() as other_rank:
        other_rank.setattr(distributed, "is_main", lambda: False)
        assert run_cli(*args, options=OPTIONS).exit_code == 0
        assert not (tmp_path / "r.html").exists()
    assert run_cli(*args, options=OPTIONS).exit_code == 0 and (tmp_path / "r.html").is_file()


def rows_of(a, b, encoders_: dict | None = None, **extra) -> list[dict]:
    """An ``eval`` JSON row as saved, for ``report``: the Inception's FID with its interval, a
    DINOv2 FID and VGG16 precision, gates, and memorisation pairs."""
    weights = {"sha256": "ab" * 32, "calibrated": True}
    row = {"metric": "eval", "source_a": str(a), "source_b": str(b), "n_a": N, "n_b": N,
           "results": {"fid": 12.5, "fid@dinov2-vitl14": 301.25, "precision@vgg16": 0.5, "fid_ci_low": 11.0,
                       "fid_ci_high": 14.0},
           "settings": {"resize": "tf", "dims": 2048, "resize@dinov2-vitl14": "pil", "ci": 100, "ci_level": 0.9},
           "details": {"memorisation_pairs": [[3, 5, 0.0], [1, 1, 2.5], [N + 1, 0, 3.0]]},
           "weights": weights, "tf32": False, "version": "0.1.0",
           "encoders": encoders_ or {
               "inception": {"extractor": "inception-v3-2015-12-05", "options": {"resize": "tf"}, "weights": weights},
               "dinov2-vitl14": {"extractor": "dinov2-vitl14", "options": {"resize": "pil"},
                                 "weights": {"sha256": "cd" * 32, "calibrated": False}},
               "vgg16": {"extractor": "vgg16-nvidia", "options": {}, "weights": weights}},
           "run": {"command": "ganmetrics eval a b --metrics fid,fid@dinov2-vitl14,pr@vgg16 --ci 100",
                   "versions": {"ganmetrics": "0.1.0"}, "sources": None,
                   "gates": [{"gate": "--fail-above", "key": "fid", "threshold": 10.0, "crossed": True,
                              "reason": "fid 12.5000 > 10"}]}}
    return [{**row, **extra}]


def test_every_encoder_its_options_and_weights_and_every_gate_are_shown(sets, tmp_path):
    a, b, _ = sets
    (tmp_path / "r.json").write_text(json.dumps(rows_of(a, b)))
    assert run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=()).exit_code == 0
    text = (tmp_path / "r.html").read_text()
    tables = Embedded(text).tables
    assert tables["encoders"][1:] == [
        ["inception", "resize=tf", "standard weights", "fid", str(b)],
        ["dinov2-vitl14", "resize=pil", "UNCALIBRATED: not comparable with published values", "fid@dinov2-vitl14", str(b)],
        ["vgg16", "—", "standard weights", "precision@vgg16", str(b)]]
    assert 'class="bad">UNCALIBRATED' in text
    header = tables["results (90% CI below each value)"][0]
    assert header == ["SOURCE_B", "fid", "fid@dinov2-vitl14", "precision@vgg16"]
    assert '<th>fid@dinov2-vitl14<span class="note">dinov2-vitl14</span></th>' in text
    assert tables["gates"][1] == ["--fail-above fid=10", "CROSSED"]
    assert "threshold crossed by" in text and "fid 12.5000 &gt; 10" in text


def test_the_pairs_show_the_indexed_images_side_by_side(sets, tmp_path):
    a, b, _ = sets
    (tmp_path / "r.json").write_text(json.dumps(rows_of(a, b)))
    assert run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=()).exit_code == 0
    text = (tmp_path / "r.html").read_text()
    shown = {title: image for title, _, image in Embedded(text).images}
    expected = thumbnails.thumbnail(open_source(b).read(3))
    pair = shown["#3 0003.png"]
    assert pair.size == (expected.width, expected.height)
    assert np.array_equal(np.asarray(pair.convert("RGB")), np.asarray(shown["#5 0005.png"].convert("RGB")))  # a copy
    assert "#1 0001.png" in shown and f"{b} has no image {N + 1}" in text and "n/a" in text
    assert "the 3 closest of 3, closest first, distances in the features of inception" in text
    malformed = rows_of(a, b, details={"memorisation_pairs": [[1, 2]]})
    (tmp_path / "bad.json").write_text(json.dumps(malformed))
    assert run_cli("report", tmp_path / "bad.json", "-o", tmp_path / "bad.html", options=()).exit_code == 0
    assert "not shown: not a list of [generated index, reference index, distance]" in (tmp_path / "bad.html").read_text()


def test_the_page_embeds_everything_within_its_stated_size_bound(tmp_path):
    """Worst case: 256 px pure noise (no image compresses less). Every thumbnail is at most 64 px
    a side and THUMBNAIL_BYTES; the page is at most its thumbnails at 8 KiB each (base64), its
    plot and 64 KiB of markup."""
    rng = np.random.default_rng(0)
    noise = [write_images(tmp_path / side, rng.integers(0, 256, (N, 256, 256, 3), dtype=np.uint8)) for side in "ab"]
    rows = rows_of(*noise, details={"memorisation_pairs": [[i, i, float(i)] for i in range(N)]})
    (tmp_path / "r.json").write_text(json.dumps(rows))
    assert run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=()).exit_code == 0
    text = (tmp_path / "r.html").read_text()
    page = Embedded(text)
    assert all(link.startswith("data:image/") for link in page.links)  # no http(s), no file, no relative path
    assert "http:" not in text.replace("http://www.w3.org", "") and "https:" not in text
    plot, *thumbs = page.images
    assert len(thumbs) == 2 * 64 + 2 * PAIRS_SHOWN
    assert all(max(image.size) <= 64 and len(data) <= thumbnails.THUMBNAIL_BYTES for _, data, image in thumbs)
    assert {image.format for _, _, image in thumbs} == {"JPEG"}  # noise does not fit as PNG
    assert len(text.encode()) <= len(thumbs) * 8 * 1024 + len(plot[1]) * 4 / 3 + 64 * 1024


def test_sample_grids_are_seeded_and_say_what_is_missing(sets, tmp_path):
    a, b, _ = sets
    gone, stats = tmp_path / "deleted", tmp_path / "ref.npz"
    assert run_cli("stats", a, "--metrics", "fid@tiny", "-o", stats, options=OPTIONS[:-1]).exit_code == 0
    (tmp_path / "r.json").write_text(json.dumps(rows_of(stats, b) + rows_of(stats, gone)))

    def grid_titles(*options) -> list[str]:
        assert run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", *options, options=()).exit_code == 0
        text = (tmp_path / "r.html").read_text()
        assert f"{stats} is a statistics file: it holds no images" in text
        assert f"{gone} does not exist here: no images to show" in text
        return [title for title, _, _ in Embedded(text).images[1:] if title]

    default, again = grid_titles(), grid_titles()
    assert default == again and len(default) == 64 + 2  # b's 8 x 8 of its 70, and a pair's two (3 -> 5, 1 -> 1) of b
    indices = thumbnails.sample_indices(N, 64, 0)
    assert default[:64] == [f"#{i} {i:04d}.png" for i in indices]
    other = grid_titles("--grid", "3", "--seed", "1")
    assert other[:9] == [f"#{i} {i:04d}.png" for i in thumbnails.sample_indices(N, 9, 1)] != default[:9]


def test_the_page_is_written_atomically(sets, tmp_path, monkeypatch):
    a, b, _ = sets
    (tmp_path / "r.json").write_text(json.dumps(rows_of(a, b)))
    page = tmp_path / "r.html"
    page.write_text("the previous report")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    message = one_line_error(run_cli("report", tmp_path / "r.json", "-o", page, options=()))
    assert "No space left on device" in message
    assert page.read_text() == "the previous report" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]


def test_the_browser_check_sees_a_request_and_an_error(tmp_path):
    """The check above can fail: a page that asks the network for an image and logs an error."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png">'
                    '<script>console.error("broken")</script></body></html>')
    seen = browser.visit(page)
    assert "http://192.0.2.1/x.png" in seen.requests and "console: broken" in seen.errors


@pytest.mark.parametrize("args, message", [
    (("--report", "out.txt"), "--report out.txt: reports end in .html; pass e.g. out.html"),
    (("--report", "missing/out.html"), "folder missing does not exist; create it first"),
    (("--report", "A"), "is a directory"),
    (("--report", "out.html", "--report-grid", "0"), "Invalid value for '--report-grid'"),
])
def test_bad_report_requests_are_one_line_errors_before_any_work(sets, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [str(sets[0]) if arg == "A" else arg for arg in args]
    with counted_decodes() as decoded:
        result = run_cli("eval", sets[0], sets[1], "--metrics", "fid@tiny", *args, options=OPTIONS)
    assert message in one_line_error(result)
    assert decoded[0] == 0 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, message", [
    ('{"metric": "fid", "value": 3.0}', "is the output of `ganmetrics fid --json`, not of `eval`"),
    ("not json", "cannot read"),
    ("[]", "holds an empty list"),
    ('[{"metric": "eval", "source_a": "a"}]', "has no 'source_b' str: not the output of `ganmetrics eval --json`"),
    ('{"metric": "eval", "source_a": "a", "source_b": "b", "results": {"fid": NaN}, "settings": {}, "weights": {}}',
     "NaN is not a number JSON allows"),
    ('{"metric": "eval", "source_a": "a", "source_b": "b", "results": {"fid": "1"}, "settings": {}, "weights": {}}',
     "results that are not numbers"),
])
def test_report_on_what_is_not_eval_output_is_one_line_and_writes_nothing(tmp_path, content, message):
    (tmp_path / "r.json").write_text(content)
    result = run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=())
    assert message in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_report_to_a_bad_place_is_one_line_and_reads_nothing(sets, tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(rows_of(*sets[:2])))
    for output, message in ((tmp_path / "r.htm", "-o"), (tmp_path / "no" / "r.html", "does not exist"),
                            (tmp_path / "r.json", "reports end in .html")):
        assert message in one_line_error(run_cli("report", tmp_path / "r.json", "-o", output, options=()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_without_the_plot_extra_a_report_is_a_one_line_error_naming_it(sets, tmp_path, monkeypatch):
    (tmp_path / "r.json").write_text(json.dumps(rows_of(*sets[:2])))
    with monkeypatch.context() as patch, counted_decodes() as decoded:
        patch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` now raises ImportError
        patch.setitem(sys.modules, "matplotlib.figure", None)
        line = one_line_error(run_cli("eval", *sets[:2], "--metrics", "fid@tiny", "--report", tmp_path / "r.html",
                                      options=OPTIONS))
        assert "--report needs matplotlib, which is not installed: pip install 'ganmetrics[plot]'" in line
        line = one_line_error(run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=()))
        assert "`ganmetrics report` needs matplotlib" in line and "or drop" not in line
    monkeypatch.setitem(sys.modules, "jinja2", None)
    line = one_line_error(run_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.html", options=()))
    assert "needs jinja2, which is not installed: pip install 'ganmetrics[plot]'" in line
    assert decoded[0] == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
