"""The one exception type of ganmetrics.

Raised deep in the library with a message that names the cause and the fix; the CLI turns it
into a one-line message on stderr and exit code 2.

It also holds the two helpers every message uses: ``quoted`` for names, ``describe_error`` for
a third-party exception's cause.
"""

import os


class GanMetricsError(Exception):
    """Bad input or an impossible request; ``str(err)`` is a complete one-line message."""


def quoted(name) -> str:
    """``name`` (a str or path) fit for a one-line message: unchanged when every character is
    printable, else as Python's ``repr`` (quotes, ``\\n`` and other escapes)."""
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    return text if text.isprintable() else repr(text)


def describe_error(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters, quoted), for "(...)" in a message."""
    text = str(err).strip()
    return f"{type(err).__name__}: {quoted(text.splitlines()[0][:200])}" if text else type(err).__name__
