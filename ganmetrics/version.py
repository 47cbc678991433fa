"""The version of ganmetrics: the one place it is written (``pyproject.toml`` reads it from here),
so that ``ganmetrics --version`` and every run's recorded version need no package metadata
lookup at start-up (``importlib.metadata`` is slow to import), and a source tree that was never
installed reports it too."""

__version__ = "0.1.0"
