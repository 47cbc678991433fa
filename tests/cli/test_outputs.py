"""Every output path the user names is checked before any work: a folder the user may not enter
(another user's, mode 700: the operating system refuses even to look at what is inside) is bad
input, one line and exit 2 naming the path and the fix, not an internal error; the cache folder
in such a place costs the cache, one warning, not the run."""

import errno
import os
import pytest

from helpers import counted_decodes, one_line_error, run_cli, smooth_images, write_images

OPTIONS = ("--weights", "random:0", "--dims", "64", "--quiet", "--workers", "0")


@pytest.fixture
def locked(tmp_path, monkeypatch):
    """A folder whose contents the operating system refuses to look at, as another user's 700
    folder refuses a non-root user (the tests may run as root, whom no mode stops)."""
    folder = tmp_path / "other-user"
    folder.mkdir()
    stat, mkdir = os.stat, os.mkdir

    def refused(path):
        text = os.fspath(path)
        return text.startswith(str(folder) + os.sep)

    def guarded_stat(path, *args, **kwargs):
        if refused(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return stat(path, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if refused(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", guarded_stat)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    return write_images(root / "a", smooth_images(6, (16, 16), seed=3)), write_images(root / "b", smooth_images(6, (16, 16), seed=4))


@pytest.mark.parametrize("command", [
    ("stats", "A", "-o", "LOCKED/sub/out.npz"),
    ("stats", "A", "--shard", "0/2", "-o", "LOCKED/sub/part.npz"),
    ("pack", "A", "-o", "LOCKED/sub/batch.npz"),
    ("eval", "A", "B", "--metrics", "fid", "--plot", "LOCKED/sub/plot.png"),
    ("eval", "A", "B", "--metrics", "fid", "--report", "LOCKED/sub/report.html"),
])
def test_an_output_in_a_folder_the_user_may_not_enter_is_one_line_and_exit_2_before_any_work(images, locked,
                                                                                          command):
    a, b = images
    args = [str(arg).replace("LOCKED", str(locked)) if isinstance(arg, str) else arg for arg in command]
    args = [str(a) if arg == "A" else str(b) if arg == "B" else arg for arg in args]
    options = OPTIONS if args[0] != "pack" else ("--quiet", "--workers", "0")
    with counted_decodes() as decoded:
        message = one_line_error(run_cli(*args, options=options))
    assert str(locked / "sub") in message and "Permission denied" in message and "choose another" in message
    assert decoded[0] == 0


def test_merging_into_a_folder_the_user_may_not_enter_is_refused_before_reading_the_parts(images, locked, tmp_path):
    a, _ = images
    parts = [tmp_path / f"part-{k}.npz" for k in range(2)]
    for k, part in enumerate(parts):
        assert run_cli("stats", a, "--shard", f"{k}/2", "-o", part).exit_code == 0
    message = one_line_error(run_cli("stats", "merge", *parts, "-o", locked / "sub" / "all.npz", options=()))
    assert "Permission denied" in message and str(locked / "sub") in message


def test_a_cache_folder_the_user_may_not_enter_costs_the_cache_not_the_run(images, locked, monkeypatch):
    a, b = images
    monkeypatch.setenv("GANMETRICS_CACHE_DIR", str(locked / "cache"))
    result = run_cli("fid", a, b, "--json")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "cache" in line]
    assert len(warnings) == 1 and str(locked / "cache") in warnings[0] and "continuing uncached" in warnings[0]
    assert "GANMETRICS_CACHE_DIR" in warnings[0] and "--no-cache" in warnings[0]
    monkeypatch.undo()  # look inside again
    assert list(locked.iterdir()) == []
