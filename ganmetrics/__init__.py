"""ganmetrics: Inception Score and Fréchet Inception Distance for generative image models."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("ganmetrics")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from .api import FIDResult, ISResult, compute_stats, fid, inception_score  # noqa: E402
from .errors import GanMetricsError  # noqa: E402
from .sources import GeneratorSource  # noqa: E402
from .statsfile import Statistics, load_statistics, save_statistics  # noqa: E402
from .tracker import GenerativeMetrics  # noqa: E402

__all__ = [
    "FIDResult", "GanMetricsError", "GenerativeMetrics", "GeneratorSource", "ISResult", "Statistics", "compute_stats", "fid",
    "inception_score", "load_statistics", "save_statistics",
]
