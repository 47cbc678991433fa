"""The ``ganmetrics`` command line. The one place where errors become messages and exit codes:
0 success, 1 a --fail-above/--fail-below threshold crossed, 2 bad usage or bad input (one line
on stderr, never a traceback)."""

import sys
import warnings

import click

from ..errors import GanMetricsError
from ..train.commands import sample_command, toy_data_command, train_command
from ..version import __version__
from .commands import eval_command, fid_command, is_command, stats_command
from .gates import ThresholdCrossed
from .store_commands import cache_group, weights_group


class GanMetricsGroup(click.Group):
    """Runs a command and turns every failure into one line on stderr and an exit code."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                result = super().main(args, prog_name or "ganmetrics", standalone_mode=False, **extra)
            except ThresholdCrossed as err:
                _exit(str(err), 1)
            except GanMetricsError as err:
                _exit(f"error: {err}", 2)
            except click.UsageError as err:
                command = err.ctx.command_path if err.ctx else "ganmetrics"
                _exit(f"error: {err.format_message()} (see `{command} --help`)", 2)
            except click.ClickException as err:
                _exit(f"error: {err.format_message()}", err.exit_code)
            except click.Abort:
                _exit("aborted", 130)
            except KeyboardInterrupt:
                _exit("interrupted", 130)
        sys.exit(result if isinstance(result, int) else 0)


def _exit(message: str, code: int):
    click.echo(f"ganmetrics: {message}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"ganmetrics: warning: {message}", err=True)


@click.group(cls=GanMetricsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganmetrics")
def cli():
    """Scores for generative image models: FID, IS, KID and more, identical to the reference tools."""


for command in (fid_command, is_command, stats_command, eval_command, cache_group, weights_group,
                train_command, sample_command, toy_data_command):
    cli.add_command(command)


def main():
    cli()
