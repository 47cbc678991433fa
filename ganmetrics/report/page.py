"""One self-contained HTML page: the blocks a report is made of, drawn by one Jinja2 template
(``templates/report.html``, package data) and written atomically.

Self-contained: every picture is a ``data:`` URI, the style sheet is inline, fonts are the
system's, and the page runs no script (the rows it was drawn from ride along as inert
``application/json`` data), so it opens offline, as a CI attachment, and loads nothing.
"""

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import click

from ..store.atomicfile import atomic_write
from ..version import __version__
from . import COMMAND_LINE
from .plot import figure_class, missing_extra

VERSIONED = ("torch", "torchvision", "numpy", "scipy", "pillow", "matplotlib", "jinja2")
"""The packages whose versions a page records beside ganmetrics' and Python's."""


@dataclass(frozen=True)
class Picture:
    """An embedded image: its ``data:`` URI, size in pixels and hover text."""

    uri: str
    width: int
    height: int
    title: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell: its ``text``; for a number, the exact ``value`` (the page's ``data-value``,
    as JSON writes it) and its result ``key``; a second, smaller line ``note``; a CSS class."""

    text: str
    value: float | None = None
    key: str = ""
    note: str = ""
    css: str = ""


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    header: list[str]
    rows: list[list[Cell]]
    name: str = ""


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = "figure"
    picture: Picture
    caption: str


@dataclass(frozen=True)
class Grid:
    """Thumbnails ``columns`` a row, under a ``caption``; ``note`` says what is shown or missing."""

    kind: ClassVar[str] = "grid"
    caption: str
    pictures: list[Picture]
    columns: int
    note: str = ""


@dataclass(frozen=True)
class Pair:
    """A generated image and its nearest reference image (None: not available), their distance."""

    generated: Picture | None
    reference: Picture | None
    distance: float
    text: str


@dataclass(frozen=True)
class Pairs:
    kind: ClassVar[str] = "pairs"
    caption: str
    pairs: list[Pair]
    note: str = ""


@dataclass(frozen=True)
class Listing:
    """Names and values, e.g. settings."""

    kind: ClassVar[str] = "listing"
    items: list[tuple[str, str]]
    caption: str = ""


@dataclass(frozen=True)
class Code:
    kind: ClassVar[str] = "code"
    text: str
    caption: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list
    note: str = ""


@dataclass(frozen=True)
class Page:
    """A whole page: ``alerts`` (red, at the top: uncalibrated weights, crossed gates), its
    sections in order, and ``data``, the JSON-able rows it was drawn from."""

    title: str
    subtitle: str
    sections: list[Section]
    alerts: list[str] = field(default_factory=list)
    data: object = None


def require_tools(request: str) -> None:
    """Refuse, before any work, a page that cannot be drawn: matplotlib (the plots) and Jinja2
    (the template) are the ``plot`` extra; ``request`` (an option, a command) names what asked."""
    figure_class(request)
    try:
        import jinja2  # noqa: F401
    except ImportError:
        raise missing_extra(request, "jinja2") from None


def render(page: Page) -> str:
    """The HTML of ``page``: ``templates/report.html`` with autoescaping (every text is escaped)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("ganmetrics.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    return environment.get_template("report.html").render(page=page)


def write_page(path: Path, page: Page) -> None:
    """Render ``page`` into ``path`` (UTF-8), written atomically: a reader sees the old file or the whole new one."""
    html = render(page).encode("utf-8")
    with atomic_write(path) as file:
        file.write(html)


def as_text(value) -> str:
    """A setting's value as a page shows it: a string as it is, anything else as JSON (true, null, {...})."""
    return value if isinstance(value, str) else json.dumps(value)


def command_line() -> str | None:
    """The running ``ganmetrics`` command as typed (the group records its words in the click
    context's ``meta``), shell-quoted; None outside the command line (the Python API)."""
    import shlex

    context = click.get_current_context(silent=True)
    words = context.meta.get(COMMAND_LINE) if context is not None else None
    return shlex.join(["ganmetrics", *words]) if words else None


def versions() -> dict[str, str]:
    """{package: version} of ganmetrics, Python and the installed ``VERSIONED`` packages."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"ganmetrics": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found

