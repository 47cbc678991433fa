"""The report: ``eval ... --report FILE.html`` and ``ganmetrics report RESULTS.json... -o
FILE.html`` (the same page from saved ``eval --json`` output, e.g. in a later CI step). The page
itself is drawn by ``ganmetrics/report``; here are the options, the checks before any work and
the command."""

import functools
from dataclasses import dataclass
from pathlib import Path

import click

from ..engine import distributed
from ..report.page import require_tools
from .outputs import check_output

GRID_HELP = "Thumbnails a row and a column of each side's sample grid in the report."
SEED_HELP = "Seed of the images drawn for the report's sample grids."


@dataclass(frozen=True)
class ReportOptions:
    """``--report``'s file (None: no report), the sample grids' size and seed."""

    path: Path | None = None
    grid: int = 8
    seed: int = 0

    def check(self, inputs: list[str], option: str = "--report", request: str = "--report") -> None:
        """Refuse, before any work, a report file (given as ``option``) that does not end in
        .html, whose folder is missing or not writable, or that is one of the ``inputs``; or,
        without the plot extra, the ``request``. Under torchrun rank 0 alone writes, so only it
        checks."""
        if self.path is None or not distributed.is_main():
            return
        check_output(self.path, inputs, what="an input", kind="reports", option=option, suffix=".html")
        require_tools(request)

    def write(self, rows: list[dict]) -> None:
        """The page of ``eval``'s JSON ``rows``, on rank 0 alone."""
        if self.path is not None and distributed.is_main():
            from ..report.evaluation import write_evaluation_report

            write_evaluation_report(rows, self.path, self.grid, self.seed)


def report_options(command):
    """Add ``--report FILE.html``, ``--report-grid N`` and ``--report-seed S`` to a click
    command, which then receives ``report: ReportOptions`` instead."""
    @click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  metavar="FILE.html",
                  help="Also write a self-contained HTML report: the results with their intervals, encoders, weights "
                       "and gates, a plot across the SOURCE_Bs, sample grids, settings and this command line "
                       "(needs matplotlib: pip install 'ganmetrics[plot]').")
    @click.option("--report-grid", type=click.IntRange(1, 32), default=8, show_default=True, metavar="N", help=GRID_HELP)
    @click.option("--report-seed", type=click.IntRange(0), default=0, show_default=True, help=SEED_HELP)
    @functools.wraps(command)
    def wrapper(report_file, report_grid, report_seed, **kwargs):
        return command(report=ReportOptions(report_file, report_grid, report_seed), **kwargs)

    return wrapper


@click.command("report")
@click.argument("results", metavar="RESULTS.json...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="The report to write (.html).")
@click.option("--grid", type=click.IntRange(1, 32), default=8, show_default=True, metavar="N", help=GRID_HELP)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help=SEED_HELP)
def report_command(results: tuple[Path, ...], output: Path, grid: int, seed: int):
    """Write the HTML report of saved `ganmetrics eval ... --json` output: each RESULTS.json one
    object or a list of them, their SOURCE_Bs in the order given (e.g. one file a checkpoint).
    The sample grids re-open the sources by the paths the JSON names, where they still exist."""
    from ..report.evaluation import write_evaluation_report
    from ..report.results import read_rows

    options = ReportOptions(output, grid, seed)
    options.check([str(path) for path in results], option="-o", request="`ganmetrics report`")
    rows = read_rows(list(results))
    write_evaluation_report(rows, output, grid, seed)
    click.echo(f"wrote {output}: the report of {len(rows)} generated set{'s' if len(rows) > 1 else ''}")
