"""The figure of ``eval --plot FILE.png`` and of the report: each metric per SOURCE_B (in the
order given) with its interval, and FID∞/IS∞'s points and fitted lines, drawn from ``eval``'s
JSON rows (``results.py``). matplotlib is an optional extra (``pip install 'ganmetrics[plot]'``);
without it ``--plot`` and ``--report`` are one-line errors before any work."""

import io
import math
from pathlib import Path

from ..errors import GanMetricsError
from ..store.atomicfile import atomic_write, check_writable_folder
from .results import calibrated, detail_keys, interval, parse_key, plotted_keys, sibling

DPI = 100


def missing_extra(request: str, package: str) -> GanMetricsError:
    """The error for ``request`` (an option such as "--plot", or a command) that needs
    ``package`` of the ``plot`` extra, which is not installed."""
    drop = f", or drop {request}" if request.startswith("--") else ""
    return GanMetricsError(f"{request} needs {package}, which is not installed: pip install 'ganmetrics[plot]' "
                           f"(or pip install {package}){drop}")


def figure_class(request: str = "--plot"):
    """matplotlib's ``Figure`` (no pyplot: no global state, no display backend); without
    matplotlib a one-line error naming the extra and ``request``, what needs it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_extra(request, "matplotlib") from None
    return Figure


def check_plot_output(path: Path) -> None:
    """Refuse, before any work, a plot file that is not a .png, whose folder is missing or not
    writable, or that cannot be drawn (no matplotlib)."""
    if path.suffix.lower() != ".png":
        raise GanMetricsError(f"--plot {path}: the plot is a PNG file; pass e.g. {path.with_suffix('.png')}")
    check_writable_folder(path, "--plot")
    figure_class()


def _short(label: str) -> str:
    return Path(label).name or label


def _bars(rows: list[dict], key: str, present: list[int]) -> tuple[list | None, list | None, str]:
    """(low ends, high ends, panel title) of ``key``'s bars over the rows at ``present``: its
    ``--ci`` interval, or ± its standard error (``<key>_se``: FID∞/IS∞), or none."""
    first = rows[present[0]]
    if interval(first, key):
        ends = [interval(rows[i], key) for i in present]
        level, replicates = first["settings"].get("ci_level", 0.95), first["settings"].get("ci")
        return [e[0] for e in ends], [e[1] for e in ends], f"{key} ({level * 100:g}% CI, B={replicates})"
    spread = sibling(key, "_se")
    if spread in first["results"]:
        values = [(rows[i]["results"][key], rows[i]["results"][spread]) for i in present]
        return [v - se for v, se in values], [v + se for v, se in values], f"{key} (± 1 s.e. of the fit)"
    return None, None, key


def _draw_fit(ax, rows: list[dict], detail: str) -> None:
    """One fit panel: each row's values at N against 1/N and its line a + b/N out to 1/N = 0."""
    for row in rows:
        fit = row.get("details", {}).get(detail)
        if fit is None:
            continue
        inverse = [1 / n for n in fit["n"]]
        points = ax.plot(inverse, fit["value"], "o", markersize=3, label=_short(row["source_b"]), gid="points")
        ends = [0.0, max(inverse)]
        ax.plot(ends, [fit["intercept"] + fit["slope"] * x for x in ends], "-", color=points[0].get_color(), gid="fit")
    base, encoder = parse_key(detail)
    ax.set_title(f"{base.removesuffix('_fit')}{f'@{encoder}' if encoder else ''}: values at N against 1/N, fitted line")
    ax.set_xlabel("1/N")
    ax.legend(fontsize="small")


def plot_results(rows: list[dict], request: str = "--plot"):
    """A matplotlib Figure of ``eval`` JSON rows: one panel per plotted key with a point per
    row that has it (x = the row's place in the given order) and a vertical bar over its
    interval (``<key>_ci_low``..``_ci_high``), or ± its standard error (FID∞/IS∞); then, per
    fit in the details (``<name>_fit``), its points against 1/N and each line extended to
    1/N = 0. ``request`` names what asked for it, for the error without matplotlib."""
    Figure = figure_class(request)
    keys, fits = plotted_keys(rows), detail_keys(rows, "_fit")
    panels = len(keys) + len(fits)
    columns = min(3, panels)
    figure = Figure(figsize=(4.6 * columns, 3.6 * math.ceil(panels / columns)), layout="constrained")
    axes = figure.subplots(math.ceil(panels / columns), columns, squeeze=False).ravel()
    labels = [_short(row["source_b"]) for row in rows]
    for ax, key in zip(axes, keys):
        present = [i for i, row in enumerate(rows) if key in row["results"]]
        low, high, title = _bars(rows, key, present)
        if low is not None:
            ax.vlines(present, low, high, colors="tab:blue", linewidth=2, alpha=0.5, gid="interval")
        ax.plot(present, [rows[i]["results"][key] for i in present], "o", color="tab:blue", gid="values")
        ax.set_title(title)
        many = len(labels) > 3
        ax.set_xticks(range(len(rows)), labels, rotation=30 if many else 0, ha="right" if many else "center")
        ax.set_xlim(-0.5, len(rows) - 0.5)
    for ax, detail in zip(axes[len(keys):], fits):
        _draw_fit(ax, rows, detail)
    for ax in axes[panels:]:
        ax.set_visible(False)
    if not all(calibrated(row) for row in rows):
        figure.suptitle("UNCALIBRATED weights: not comparable with published values", color="tab:red")
    return figure


def figure_png(figure) -> bytes:
    """``figure`` as PNG bytes at ``DPI``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save_plot(rows: list[dict], path: Path) -> None:
    """Draw ``plot_results`` of ``rows`` into ``path`` (PNG), written atomically."""
    png = figure_png(plot_results(rows))
    with atomic_write(path) as file:
        file.write(png)
