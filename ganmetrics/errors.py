"""The one exception type of ganmetrics.

Raised deep in the library with a message that names the cause and the fix; the CLI turns it
into a one-line message on stderr and exit code 2.
"""


class GanMetricsError(Exception):
    """Bad input or an impossible request; ``str(err)`` is a complete one-line message."""
