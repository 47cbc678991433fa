"""ganmetrics: Inception Score and Fréchet Inception Distance for generative image models."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("ganmetrics")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
