"""The ``ganmetrics`` command line. The one place where errors become messages and exit codes:
0 success, 1 a --fail-above/--fail-below threshold crossed, 2 bad usage or bad input (one line
on stderr, never a traceback), 3 an internal error (a bug: one line asking for a report; the
traceback with ``--debug`` or ``GANMETRICS_DEBUG=1``), 130 interrupted. Every message is one
line: a newline inside one (a file name, a third-party warning) is escaped.

Each command's module is imported when that command runs (``COMMANDS``), so ``ganmetrics
--version`` and the metric commands start without the trainer, and without torch until a
network runs (``tests/cli/test_startup.py``).
"""

import importlib
import os
import sys
import warnings

import click

from ..errors import GanMetricsError
from ..version import __version__
from .gates import ThresholdCrossed

ENV_DEBUG = "GANMETRICS_DEBUG"
EXIT_INTERNAL_ERROR = 3
COMMANDS = {
    "fid": "ganmetrics.cli.commands:fid_command",
    "is": "ganmetrics.cli.commands:is_command",
    "stats": "ganmetrics.cli.commands:stats_command",
    "eval": "ganmetrics.cli.commands:eval_command",
    "cache": "ganmetrics.cli.store_commands:cache_group",
    "weights": "ganmetrics.cli.store_commands:weights_group",
    "train": "ganmetrics.train.commands:train_command",
    "sample": "ganmetrics.train.commands:sample_command",
    "toy-data": "ganmetrics.train.commands:toy_data_command",
}
"""Every command: its name and where it is defined ("module:attribute"), imported on first use."""


class GanMetricsGroup(click.Group):
    """Runs a command and turns every failure into one line on stderr and an exit code.
    ``debug`` (``--debug`` or ``GANMETRICS_DEBUG=1``): an internal error keeps its traceback.
    Its commands are ``COMMANDS``, each imported when it is first looked up (click's lazy
    subcommands)."""

    debug = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        self.debug = os.environ.get(ENV_DEBUG, "").strip() not in ("", "0")
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
            except Exception as err:  # a bug: never the gate's exit 1, never a bare traceback
                if self.debug:
                    raise
                text = str(err).strip()
                first = text.splitlines()[0][:300] if text else "(no message)"
                _exit(f"internal error: {type(err).__name__}: {first} (please report it at the project's issue "
                      "tracker; rerun with --debug for the traceback)", EXIT_INTERNAL_ERROR)
        sys.exit(result if isinstance(result, int) else 0)


def _one_line(message: str) -> str:
    return message.strip().replace("\r", "\\r").replace("\n", "\\n")


def _exit(message: str, code: int):
    click.echo(f"ganmetrics: {_one_line(str(message))}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"ganmetrics: warning: {_one_line(str(message))}", err=True)


def _set_debug(ctx: click.Context, _param, value: bool) -> bool:
    if value:
        ctx.find_root().command.debug = True
    return value


@click.group(cls=GanMetricsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganmetrics")
@click.option("--debug", is_flag=True, is_eager=True, expose_value=False, callback=_set_debug,
              help=f"Show the traceback of an internal error (exit 3) instead of one line; also {ENV_DEBUG}=1.")
def cli():
    """Scores for generative image models: FID, IS, KID and more, identical to the reference tools."""


def main():
    cli()
