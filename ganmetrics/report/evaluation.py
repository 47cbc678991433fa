"""An evaluation's page, from ``eval``'s JSON rows (one per SOURCE_B, in the given order) and the
sources they name: results, encoders and gates; the metrics across the SOURCE_Bs; a seeded
sample grid of each side; the closest generated/reference pairs; settings, versions and the
command line. Rows from saved JSON name their sources by the paths given to ``eval``: a side
that no longer exists (or is a statistics file) gets a note instead of its grid."""

import json
from dataclasses import asdict, fields
from pathlib import Path

from ..config import SourceOptions
from ..errors import GanMetricsError
from ..sources import ImageSource
from .page import Cell, Code, Figure, Grid, Listing, Page, Pair, Pairs, Picture, Section, Table, as_text, write_page
from .plot import figure_png, plot_results
from .results import calibrated, detail_keys, encoder_of, encoders_of, interval, number, value_keys
from .thumbnails import open_images, png_picture, read_images, sample_indices, thumbnail

PAIRS_SHOWN = 32
"""The most pairs a ``<name>_pairs`` entry shows (the closest)."""
SOURCE_OPTIONS = {f.name for f in fields(SourceOptions)}


def _value_cell(row: dict, key: str) -> Cell:
    """``key``'s value in ``row`` (with its interval below, where ``--ci`` gave one), or a dash."""
    if key not in row["results"]:
        return Cell("—")
    value = row["results"][key]
    ends = interval(row, key)
    return Cell(number(value), value, key, f"[{number(ends[0])}, {number(ends[1])}]" if ends else "")


def results_table(rows: list[dict]) -> Table:
    """One row per SOURCE_B, one column per result: its value and interval; each column's
    header names the encoder the result was computed on."""
    keys = value_keys(rows)
    level = next((row["settings"].get("ci_level") for row in rows if "ci" in row["settings"]), None)
    header = [Cell("SOURCE_B", note="n_b"),
              *(Cell(key, note=encoder_of(key, next(row for row in rows if key in row["results"]))) for key in keys)]
    body = [[Cell(row["source_b"], note=f"n={'?' if row.get('n_b') is None else row['n_b']}"),
             *(_value_cell(row, key) for key in keys)] for row in rows]
    name = "results" if level is None else f"results ({level * 100:g}% CI below each value)"
    return Table(header, body, name)


def _weights_cell(weights: dict) -> Cell:
    if weights.get("calibrated") is True:
        return Cell("standard weights", note=weights.get("sha256", "")[:16])
    return Cell("UNCALIBRATED: not comparable with published values", note=weights.get("sha256", "")[:16], css="bad")


def encoders_table(rows: list[dict]) -> Table:
    """One row per encoder (and distinct options or weights): its model, options (resize, ...),
    weights (uncalibrated in red), the results computed on it and the SOURCE_Bs it served."""
    found: dict[str, tuple[str, dict, set, list]] = {}
    for row in rows:
        for name, encoder in encoders_of(row).items():
            identity = json.dumps([name, encoder], sort_keys=True)
            _, _, keys, sources = found.setdefault(identity, (name, encoder, set(), []))
            keys.update(key for key in value_keys([row]) if encoder_of(key, row) == name)
            sources.append(row["source_b"])
    body = [[Cell(name, note=encoder.get("extractor", "")),
             Cell(", ".join(f"{k}={v}" for k, v in encoder.get("options", {}).items()) or "—"),
             _weights_cell(encoder.get("weights", {})),
             Cell(", ".join(key for key in value_keys(rows) if key in keys) or "—"),
             Cell(", ".join(dict.fromkeys(sources)))] for name, encoder, keys, sources in found.values()]
    header = [Cell("encoder", note="model"), Cell("options"), Cell("weights", note="sha256"), Cell("results"),
              Cell("SOURCE_B")]
    return Table(header, body, "encoders")


def _gate_name(gate: dict) -> str:
    return f"{gate['gate']} {gate['key']}={gate['threshold']:g}"


def gates_table(rows: list[dict]) -> Table | None:
    """One row per gate (``--fail-above``, ...), one column per SOURCE_B: passed, or crossed
    and why (red); None where no row was gated."""
    verdicts = [{_gate_name(gate): gate for gate in row.get("run", {}).get("gates", [])} for row in rows]
    names = list(dict.fromkeys(name for gates in verdicts for name in gates))
    if not names:
        return None

    def cell(gates: dict, name: str) -> Cell:
        gate = gates.get(name)
        if gate is None:
            return Cell("—")
        return Cell("CROSSED", note=gate["reason"], css="bad") if gate["crossed"] else Cell("passed", css="good")

    body = [[Cell(name), *(cell(gates, name) for gates in verdicts)] for name in names]
    return Table([Cell("gate"), *(Cell(row["source_b"]) for row in rows)], body, "gates")


def alerts(rows: list[dict]) -> list[str]:
    """The page's red lines: uncalibrated weights, and every crossed gate."""
    found = []
    uncalibrated = [row["source_b"] for row in rows if not calibrated(row)]
    if uncalibrated:
        found.append(f"UNCALIBRATED weights ({', '.join(uncalibrated)}): these values are not comparable with "
                     "published ones")
    for row in rows:
        crossed = [gate["reason"] for gate in row.get("run", {}).get("gates", []) if gate["crossed"]]
        if crossed:
            found.append(f"threshold crossed by {row['source_b']}: {', '.join(crossed)}")
    return found


class Sides:
    """The sources of a page's sides, each opened once (with the source options its row
    records), with why one cannot be shown."""

    def __init__(self):
        self.opened = {}

    def get(self, spec: str, row: dict) -> tuple[ImageSource | None, str]:
        """``thumbnails.open_images`` of ``spec`` with the source options ``row`` records (the
        defaults where it records none), opened on first use."""
        if spec not in self.opened:
            recorded = row.get("run", {}).get("sources") or {}
            options = {**asdict(SourceOptions()), **{k: v for k, v in recorded.items() if k in SOURCE_OPTIONS}}
            self.opened[spec] = open_images(spec, options)
        return self.opened[spec]

    def pictures(self, spec: str, row: dict, indices: list[int]) -> tuple[dict[int, Picture], str]:
        """({index: thumbnail} of the images of ``spec`` at ``indices`` that it has, a note
        saying why none are, or which indices it lacks)."""
        source, note = self.get(spec, row)
        if source is None:
            return {}, note
        present = sorted({i for i in indices if 0 <= i < len(source)})
        missing = sorted(set(indices) - set(present))
        try:
            images = read_images(source, present)
        except GanMetricsError as err:
            return {}, f"cannot read {spec}: {err}"
        pictures = {i: thumbnail(image, f"#{i} {source.names[i]}") for i, image in images.items()}
        return pictures, f"{spec} has no image {', '.join(map(str, missing))}" if missing else ""


def sample_grids(rows: list[dict], sides: Sides, grid: int, seed: int) -> list[Grid]:
    """A ``grid`` x ``grid`` seeded sample of each side (SOURCE_A, then each SOURCE_B), once each."""
    specs = {row["source_a"]: ("SOURCE_A", row) for row in rows}
    specs.update({row["source_b"]: ("SOURCE_B", row) for row in rows if row["source_b"] not in specs})
    grids = []
    for spec, (role, row) in specs.items():
        source, note = sides.get(spec, row)
        if source is None:
            grids.append(Grid(f"{role} {spec}", [], grid, note))
            continue
        indices = sample_indices(len(source), grid * grid, seed)
        pictures, note = sides.pictures(spec, row, indices)
        shown = f"{len(pictures)} of its {len(source)} images, drawn without replacement with seed {seed}"
        grids.append(Grid(f"{role} {spec}", list(pictures.values()), grid, f"{shown}; {note}" if note else shown))
    return grids


def _pair_entries(value) -> list[tuple[int, int, float]] | None:
    """The [generated index, reference index, distance] entries of a ``<name>_pairs`` detail,
    or None where it is not in that format."""
    def integer(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if not isinstance(value, list) or not all(isinstance(item, (list, tuple)) and len(item) == 3 and integer(item[0])
                                              and integer(item[1]) and isinstance(item[2], (int, float))
                                              and not isinstance(item[2], bool) for item in value):
        return None
    return [(g, r, float(d)) for g, r, d in value]


def closest_pairs(rows: list[dict], sides: Sides) -> list[Pairs]:
    """Each row's ``<name>_pairs`` details: the closest ``PAIRS_SHOWN`` pairs side by side
    (generated left, reference right) with their distance."""
    blocks = []
    for row in rows:
        for key in detail_keys([row], "_pairs"):
            caption = f"{key}: {row['source_b']} against {row['source_a']}"
            entries = _pair_entries(row["details"][key])
            if entries is None:
                blocks.append(Pairs(caption, [], "not shown: not a list of [generated index, reference index, "
                                                 "distance]"))
                continue
            shown = entries[:PAIRS_SHOWN]
            generated, missing_b = sides.pictures(row["source_b"], row, [g for g, _, _ in shown])
            reference, missing_a = sides.pictures(row["source_a"], row, [r for _, r, _ in shown])
            pairs = [Pair(generated.get(g), reference.get(r), d, f"generated #{g}, reference #{r}: {number(d)}")
                     for g, r, d in shown]
            note = "; ".join(filter(None, [f"the {len(shown)} closest of {len(entries)}, closest first, distances "
                                           f"in the features of {encoder_of(key, row)}", missing_b, missing_a]))
            blocks.append(Pairs(caption, pairs, note))
    return blocks


def _grouped(rows: list[dict], part) -> dict[str, tuple[object, list[str]]]:
    """{identity: (``part(row)``, the SOURCE_Bs whose rows share it)}, in order."""
    groups: dict[str, tuple[object, list[str]]] = {}
    for row in rows:
        value = part(row)
        groups.setdefault(json.dumps(value, sort_keys=True), (value, []))[1].append(row["source_b"])
    return groups


def reproduction(rows: list[dict]) -> Section:
    """The settings (one list where every row shares them, else one column a SOURCE_B), then
    each command line and the versions it ran with."""
    settings = _grouped(rows, lambda row: row["settings"])
    if len(settings) == 1:
        blocks = [Listing([(k, as_text(v)) for k, v in rows[0]["settings"].items()], "settings")]
    else:
        names = list(dict.fromkeys(k for row in rows for k in row["settings"]))
        body = [[Cell(name), *(Cell(as_text(row["settings"][name]) if name in row["settings"] else "—") for row in rows)]
                for name in names]
        blocks = [Table([Cell("setting"), *(Cell(row["source_b"]) for row in rows)], body, "settings")]
    run = _grouped(rows, lambda row: {"command": row.get("run", {}).get("command"), "tf32": row.get("tf32"),
                                      "versions": row.get("run", {}).get("versions", {"ganmetrics": row.get("version")})})
    for (record, sources) in run.values():
        which = f" (SOURCE_B {', '.join(sources)})" if len(run) > 1 else ""
        blocks.append(Code(record["command"] or "not recorded: the JSON holds no \"run\" (written before ganmetrics "
                           "recorded it, or from the Python API)", f"command line{which}"))
        blocks.append(Listing([*((k, v) for k, v in record["versions"].items()), ("tf32", as_text(record["tf32"]))],
                              f"versions{which}"))
    return Section("Settings and how to reproduce", blocks)


def evaluation_page(rows: list[dict], grid: int, seed: int) -> Page:
    """The whole page of ``rows``: thumbnails ``grid`` x ``grid`` a side, drawn with ``seed``."""
    sides = Sides()
    plot = png_picture(figure_png(plot_results(rows, "--report")), "each result per SOURCE_B")
    gates = gates_table(rows)
    pairs = closest_pairs(rows, sides)
    sections = [
        Section("Results", [results_table(rows), encoders_table(rows), *([gates] if gates else [])]),
        Section("Across the generated sets", [Figure(plot, "each result per SOURCE_B, in the order given, with its "
                                                           "interval")]),
        Section("Samples", sample_grids(rows, sides, grid, seed)),
        *([Section("Closest generated and reference images", pairs)] if pairs else []),
        reproduction(rows),
    ]
    against = ", ".join(dict.fromkeys(row["source_a"] for row in rows))
    subtitle = f"{len(rows)} generated set{'s' if len(rows) > 1 else ''} against {against}"
    return Page("ganmetrics evaluation", subtitle, sections, alerts(rows), rows)


def write_evaluation_report(rows: list[dict], path: Path, grid: int, seed: int) -> None:
    """``evaluation_page`` of ``rows`` written atomically to ``path``."""
    write_page(path, evaluation_page(rows, grid, seed))
