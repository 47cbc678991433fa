"""Markdown: the number formats every table uses, and writing generated blocks into a file.

``BENCHMARKS.md`` holds one generated block per instruction-set level
(``<!-- bench:LEVEL:begin -->`` ... ``<!-- bench:LEVEL:end -->``) and one targets table
(``<!-- bench:targets:begin -->`` ... ``end``) whose rows name their level: a run replaces the
blocks and the target rows of the levels it measured and keeps every other level's, and all
text outside the markers.
"""

from pathlib import Path

TARGETS_BEGIN, TARGETS_END = "<!-- bench:targets:begin -->", "<!-- bench:targets:end -->"
TARGETS_HEAD = ["## Targets", "", "| level | target | measured | met? |", "| --- | --- | --- | --- |"]


def fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def rel(x, ref):
    if x is None or ref is None or ref == 0:
        return None
    return (x - ref) / abs(ref)


def fmt_rel(r):
    return "–" if r is None else ("0" if r == 0 else f"{r:+.1e}")


def pct(x):
    return "–" if x is None else f"{x:.0%}"


def all_seconds(r: dict) -> str:
    """`` (12.1, failed, 11.8)``: every round's seconds where there were several."""
    seconds = r.get("all_seconds") or []
    return f" ({', '.join('failed' if x is None else f'{x:.1f}' for x in seconds)})" if len(seconds) > 1 else ""


def table(head: list[str], aligns: str, rows: list[list]) -> list[str]:
    """A markdown table: ``aligns`` one letter a column (``l`` left, ``r`` right)."""
    def line(cells):
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"
    return [line(head), line("---" if a == "l" else "---:" for a in aligns)] + [line(row) for row in rows]


def notes(label: str, entries) -> str:
    """``Label: a: note; b: note.`` from (name, note) pairs."""
    return f"{label}: " + "; ".join(f"{name}: {note}" for name, note in entries) + "."


def write_markdown(path: Path, body: str, begin: str, end: str, title: str) -> None:
    """``body`` between the markers ``begin`` and ``end`` of ``path`` (appended where absent)."""
    text = path.read_text() if path.is_file() else f"# Benchmarks\n\n{title}\n"
    path.write_text(_replaced(text, begin, end, body))


def _replaced(text: str, begin: str, end: str, body: str, before: str | None = None) -> str:
    """``text`` with ``body`` between ``begin`` and ``end``; where they are absent, the block goes
    before the marker ``before`` if the text has it, else at the end."""
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    if before and before in text:
        head, rest = text.split(before, 1)
        return head + block + "\n\n" + before + rest
    return text.rstrip("\n") + "\n\n" + block + "\n"


def level_markers(level: str) -> tuple[str, str]:
    return f"<!-- bench:{level}:begin -->", f"<!-- bench:{level}:end -->"


def write_levels(path: Path, blocks: dict[str, list[str]], targets: list[tuple], title: str) -> None:
    """Each level's block (``blocks``: {level: lines}) and its target rows (``targets``: (level,
    target, measured, met)) into ``path``, keeping the other levels' blocks and rows."""
    text = path.read_text() if path.is_file() else f"# Benchmarks\n\n{title}\n"
    for level, lines in blocks.items():
        text = _replaced(text, *level_markers(level), "\n".join(lines), before=TARGETS_BEGIN)
    kept = [row for row in _target_rows(text) if row.split("|")[1].strip() not in blocks]
    rows = kept + [f"| {level} | {target} | {measured} | {'yes' if met else '**no**'} |"
                   for level, target, measured, met in targets]
    order = _levels_in(text)
    rows.sort(key=lambda row: order.index(row.split("|")[1].strip()) if row.split("|")[1].strip() in order else len(order))
    path.write_text(_replaced(text, TARGETS_BEGIN, TARGETS_END, "\n".join(TARGETS_HEAD + rows)))


def _target_rows(text: str) -> list[str]:
    if TARGETS_BEGIN not in text:
        return []
    block = text.split(TARGETS_BEGIN, 1)[1].split(TARGETS_END, 1)[0]
    return [line for line in block.strip().splitlines()[len(TARGETS_HEAD):] if line.startswith("| ")]


def _levels_in(text: str) -> list[str]:
    """The levels whose blocks the text holds, in its order."""
    return [part.split(":begin -->", 1)[0] for part in text.split("<!-- bench:")[1:]
            if ":begin -->" in part.split("\n", 1)[0] and not part.startswith("targets:")]
