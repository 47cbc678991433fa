"""ganmetrics: FID, IS, KID and more for generative image models, identical to the reference tools."""

from .api import (EvalResult, FIDResult, ISResult, PackResult, compute_stats, compute_stats_shard, evaluate,
                  evaluate_many, fid, inception_score, merge_stats_shards, pack)
from .config import RunConfig, SourceOptions
from .errors import GanMetricsError
from .sources import GeneratorSource
from .store.shardfile import save_shard
from .store.statsfile import Statistics, load_statistics, save_statistics
from .tracker import GenerativeMetrics
from .version import __version__

__all__ = [
    "EvalResult", "FIDResult", "GanMetricsError", "GenerativeMetrics", "GeneratorSource", "ISResult", "PackResult",
    "RunConfig", "SourceOptions", "Statistics", "__version__", "compute_stats", "compute_stats_shard", "evaluate",
    "evaluate_many", "fid", "inception_score", "load_statistics", "merge_stats_shards", "pack", "save_shard",
    "save_statistics",
]
