"""Every error is one line: seeds out of range, names with unprintable characters, third-party
warnings kept out; an unexpected exception is exit 3 and one line (a traceback only with
--debug or GANMETRICS_DEBUG=1), never exit 1."""

import pickle
from pathlib import Path

import pytest

from helpers import one_line_error, run_cli, smooth_images, write_images
from ganmetrics.cli import cli
from ganmetrics.errors import quoted


# --- seeds out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["random:99999999999999999999", "random:18446744073709551616", "random:²"])
def test_random_seed_out_of_range_is_one_line_naming_the_range(spec, tmp_path):
    folder = write_images(tmp_path / "a", smooth_images(2, (16, 16), seed=0))
    line = one_line_error(run_cli("is", folder, options=("--weights", spec, "--quiet", "--workers", "0")))
    assert "from 0 to 18446744073709551615" in line


# --- one line, whatever the names and whatever third parties print -----------------------------

def test_quoted_escapes_only_names_that_need_it():
    assert quoted("runs/a b/x.png") == "runs/a b/x.png"
    assert quoted(Path("a\nb.png")) == "'a\\nb.png'"


def test_a_file_name_with_a_newline_keeps_the_error_on_one_line(tmp_path):
    folder = write_images(tmp_path / "two\nlines", smooth_images(2, (16, 16), seed=0))
    (folder / "notes\n.txt").write_text("x")
    line = one_line_error(run_cli("stats", folder, "-o", tmp_path / "s.npz", "--strict", "--no-cache"))
    assert "two\\nlines" in line and "notes\\n.txt" in line


def test_a_bare_pickle_as_weights_is_one_line_without_torchs_warning(tmp_path):
    path = tmp_path / "bare.pth"
    with path.open("wb") as file:
        pickle.dump({"conv.weight": [1.0]}, file, protocol=4)
    result = run_cli("weights", "verify", path, options=())
    line = one_line_error(result)
    assert "cannot read weights file" in line and "protocol" not in result.stderr


# --- a crash is exit 3 and one line, never exit 1 and never a traceback ---------------------

def _all_commands(group, prefix=()):
    import click

    for name in group.list_commands(None):  # the lazy group imports each command here
        command = group.get_command(None, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_all_commands(cli))
# enough arguments for click to reach each command's body
ARGUMENTS = {("fid",): ("a", "b"), ("eval",): ("a", "b"), ("is",): ("a",), ("sample",): ("c", "-n", "1", "-o", "o"),
             ("toy-data",): ("o", "-n", "1"), ("train",): ("d", "--out", "o"), ("weights", "install"): ("f",),
             ("pack",): ("a", "-o", "o.npz"), ("report",): ("r.json", "-o", "r.html")}


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_turns_an_unexpected_exception_into_one_line_and_exit_3(path, command, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("deep trouble\nsecond line")

    monkeypatch.setattr(command, "callback", crash)
    result = run_cli(*path, *ARGUMENTS.get(path, ()), options=())
    assert result.exit_code == 3, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines == ["ganmetrics: internal error: RuntimeError: deep trouble (please report it at the project's "
                     "issue tracker; rerun with --debug for the traceback)"]


@pytest.mark.parametrize("command", ["fid", "is", "stats", "eval"])
def test_metric_commands_turn_a_deep_exception_into_exit_3(command, tmp_path, monkeypatch):
    import ganmetrics.sources.files as files

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(files.FolderSource, "__init__", crash)
    folder = write_images(tmp_path / "a", smooth_images(2, (16, 16), seed=0))
    args = {"fid": (folder, folder), "is": (folder,), "stats": (folder, "-o", tmp_path / "s.npz"),
            "eval": (folder, folder)}[command]
    line = one_line_error(run_cli(command, *args), 3)
    assert line.startswith("ganmetrics: internal error: RuntimeError: boom")


def test_debug_flag_and_variable_keep_the_traceback(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("deep trouble")

    monkeypatch.setattr(cli.get_command(None, "is"), "callback", crash)
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["--debug", "is", "x"])
    assert isinstance(result.exception, RuntimeError)
    monkeypatch.setenv("GANMETRICS_DEBUG", "1")
    assert isinstance(CliRunner().invoke(cli, ["is", "x"]).exception, RuntimeError)
    monkeypatch.setenv("GANMETRICS_DEBUG", "0")
    assert CliRunner().invoke(cli, ["is", "x"]).exit_code == 3


def test_a_value_that_is_not_a_number_crosses_every_gate_on_it():
    from ganmetrics.cli.gates import crossed

    nan = float("nan")
    assert crossed({"fid": nan}, {"fid": 30.0}, {}) and crossed({"is_mean": nan}, {}, {"is_mean": 5.0})
    assert crossed({"fid": 12.0}, {"fid": 30.0}, {}) == []
