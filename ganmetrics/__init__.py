"""ganmetrics: FID, IS, KID and more for generative image models, identical to the reference tools."""

from .api import (EvalResult, FIDResult, ISResult, PackResult, compute_stats, evaluate, evaluate_many, fid,
                  inception_score, pack)
from .config import RunConfig, SourceOptions
from .errors import GanMetricsError
from .sources import GeneratorSource
from .store.statsfile import Statistics, load_statistics, save_statistics
from .tracker import GenerativeMetrics
from .version import __version__

__all__ = [
    "EvalResult", "FIDResult", "GanMetricsError", "GenerativeMetrics", "GeneratorSource", "ISResult", "PackResult",
    "RunConfig", "SourceOptions", "Statistics", "__version__", "compute_stats", "evaluate", "evaluate_many", "fid",
    "inception_score", "load_statistics", "pack", "save_statistics",
]
