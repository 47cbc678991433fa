"""``eval --plot FILE.png``: each metric per SOURCE_B (in the order given) with its interval, and
FID∞/IS∞'s points and fitted lines, for people. matplotlib is an optional extra
(``pip install 'ganmetrics[plot]'``); without it ``--plot`` is a one-line error before any work."""

import math
from pathlib import Path

from ..errors import GanMetricsError
from ..store.atomicfile import atomic_write, check_writable_folder

SPREAD_SUFFIXES = ("_std", "_se")
"""Result keys that are a spread of another result (``is_std``, ``fid_inf_se``): drawn as its
error bars where they are FID∞/IS∞'s standard errors, never as panels of their own."""


def _figure_class():
    """matplotlib's ``Figure`` (no pyplot: no global state, no display backend)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GanMetricsError("--plot needs matplotlib, which is not installed: pip install 'ganmetrics[plot]' "
                              "(or pip install matplotlib), or drop --plot") from None
    return Figure


def check_plot_output(path: Path) -> None:
    """Refuse, before any work, a plot file that is not a .png, whose folder is missing or not
    writable, or that cannot be drawn (no matplotlib)."""
    if path.suffix.lower() != ".png":
        raise GanMetricsError(f"--plot {path}: the plot is a PNG file; pass e.g. {path.with_suffix('.png')}")
    check_writable_folder(path, "--plot")
    _figure_class()


def _short(label: str) -> str:
    return Path(label).name or label


def plotted_keys(results: list, metrics: list) -> list[str]:
    """The result keys drawn as panels: every metric's keys but the spreads, in metric order."""
    present = results[0].results
    keys = [metric.result_key(key) for metric in metrics for key in metric.keys if not key.endswith(SPREAD_SUFFIXES)]
    return [key for key in keys if key in present]


def plot_results(results: list, metrics: list):
    """A matplotlib Figure: one panel per plotted key with a point per SOURCE_B (x = its place in
    the given order) and a vertical bar over its interval (``<key>_ci_low``..``_ci_high``), or
    ± its standard error (``<key>_se``, FID∞/IS∞); then, per metric with a fit (details
    ``<name>_fit``), its points against 1/N and each line extended to 1/N = 0."""
    Figure = _figure_class()
    keys = plotted_keys(results, metrics)
    fits = [(metric.label, metric.result_key(f"{metric.name}_fit")) for metric in metrics
            if metric.result_key(f"{metric.name}_fit") in results[0].details]
    panels = len(keys) + len(fits)
    columns = min(3, panels)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    labels = [_short(r.source_b) for r in results]
    positions = list(range(len(results)))
    for ax, key in zip(axes, keys):
        values = [r.results[key] for r in results]
        if f"{key}_ci_low" in results[0].results:
            low = [r.results[f"{key}_ci_low"] for r in results]
            high = [r.results[f"{key}_ci_high"] for r in results]
            level = results[0].settings.get("ci_level", 0.95)
            title = f"{key} ({level * 100:g}% CI, B={results[0].settings.get('ci')})"
        elif f"{key}_se" in results[0].results:
            low = [r.results[key] - r.results[f"{key}_se"] for r in results]
            high = [r.results[key] + r.results[f"{key}_se"] for r in results]
            title = f"{key} (± 1 s.e. of the fit)"
        else:
            low = high = None
            title = key
        if low is not None:
            ax.vlines(positions, low, high, colors="tab:blue", linewidth=2, alpha=0.5, gid="interval")
        ax.plot(positions, values, "o", color="tab:blue", gid="values")
        ax.set_title(title)
        ax.set_xticks(positions, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
        ax.set_xlim(-0.5, len(results) - 0.5)
    for ax, (name, detail) in zip(axes[len(keys):], fits):
        for r in results:
            fit = r.details[detail]
            inverse = [1 / n for n in fit["n"]]
            points = ax.plot(inverse, fit["value"], "o", markersize=3, label=_short(r.source_b), gid="points")
            ends = [0.0, max(inverse)]
            ax.plot(ends, [fit["intercept"] + fit["slope"] * x for x in ends], "-", color=points[0].get_color(), gid="fit")
        ax.set_title(f"{name}: values at N against 1/N, fitted line")
        ax.set_xlabel("1/N")
        ax.legend(fontsize="small")
    for ax in axes[panels:]:
        ax.set_visible(False)
    if not results[0].provenance.calibrated:
        figure.suptitle("UNCALIBRATED weights: not comparable with published values", color="tab:red")
    return figure


def save_plot(results: list, metrics: list, path: Path) -> None:
    """Draw ``plot_results`` into ``path`` (PNG, 100 dpi), written atomically."""
    figure = plot_results(results, metrics)
    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=100)
