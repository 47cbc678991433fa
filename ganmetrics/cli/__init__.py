"""The ``ganmetrics`` command line. The one place where errors become messages and exit codes:
0 success, 1 a --fail-above/--fail-below threshold crossed, 2 bad usage or bad input (one line
on stderr, never a traceback), 3 an internal error (a bug: one line asking for a report; the
traceback with ``--debug`` or ``GANMETRICS_DEBUG=1``), 130 interrupted. Every message is one
line: a newline inside one (a file name, a third-party warning) is escaped.

Each command's module is imported when that command runs (``COMMANDS``), so ``ganmetrics
--version`` and the metric commands start without the trainer, and without torch until a
network runs (``tests/cli/test_startup.py``).
"""

import contextlib
import importlib
import os
import sys
import warnings

import click

from ..engine import distributed
from ..errors import GanMetricsError
from ..report import COMMAND_LINE
from ..version import __version__
from .gates import ThresholdCrossed

ENV_DEBUG = "GANMETRICS_DEBUG"
EXIT_INTERNAL_ERROR = 3
COMMANDS = {
    "fid": "ganmetrics.cli.commands:fid_command",
    "is": "ganmetrics.cli.commands:is_command",
    "stats": "ganmetrics.cli.commands:stats_command",
    "eval": "ganmetrics.cli.commands:eval_command",
    "pack": "ganmetrics.cli.commands:pack_command",
    "report": "ganmetrics.cli.report_commands:report_command",
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
    subcommands).

    Under torchrun the commands marked ``runs_distributed`` (fid, is, eval, stats) join the
    process group before they run (``engine/distributed.py``); any other refuses. Rank 0 alone
    prints results and warnings; every rank ends with the same outcome, and a failure's one
    line is printed by every rank (each node's log says why it stopped)."""

    debug = False
    owns_process_group = False

    def resolve_command(self, ctx, args):
        ctx.meta[COMMAND_LINE] = list(args)  # the command as typed, for the report (report/page.py)
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and distributed.launched_by_torchrun():
            if not getattr(command, "runs_distributed", False):
                raise GanMetricsError(f"`ganmetrics {name}` does not run under torchrun: run it as one process "
                                      "(fid, is, eval and stats run across ranks)")
            self.owns_process_group = distributed.init_from_environment()
        return name, command, rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        self.debug = os.environ.get(ENV_DEBUG, "").strip() not in ("", "0")
        self.owns_process_group = False
        other_rank = distributed.launched_by_torchrun() and os.environ["RANK"] != "0"
        code, line, agreed = 0, None, False
        with warnings.catch_warnings(), _stdout_silenced(other_rank):
            warnings.showwarning = _show_warning
            if other_rank:
                warnings.simplefilter("ignore")  # rank 0 shows them
            try:
                result = super().main(args, prog_name or "ganmetrics", standalone_mode=False, **extra)
                code = result if isinstance(result, int) else 0
            except distributed.AgreedError as err:
                code, line, agreed = err.code, err.line, True
            except ThresholdCrossed as err:
                code, line = 1, str(err)
            except GanMetricsError as err:
                code, line = 2, f"error: {err}"
            except click.UsageError as err:
                command = err.ctx.command_path if err.ctx else "ganmetrics"
                code, line = 2, f"error: {err.format_message()} (see `{command} --help`)"
            except click.ClickException as err:
                code, line = err.exit_code, f"error: {err.format_message()}"
            except click.Abort:
                _exit("aborted", 130)
            except KeyboardInterrupt:
                _exit("interrupted", 130)
            except Exception as err:  # a bug: never the gate's exit 1, never a bare traceback
                if self.debug:
                    raise
                text = str(err).strip()
                first = text.splitlines()[0][:300] if text else "(no message)"
                code, line = EXIT_INTERNAL_ERROR, (f"internal error: {type(err).__name__}: {first} (please report it at "
                                                   "the project's issue tracker; rerun with --debug for the traceback)")
        code, line = distributed.settle(code, line, agreed)
        if self.owns_process_group:
            distributed.shutdown()
        if line:
            _exit(line, code)
        sys.exit(code)


@contextlib.contextmanager
def _stdout_silenced(silenced: bool):
    """Standard output thrown away inside the block when ``silenced`` (ranks other than 0)."""
    if not silenced:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


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
