"""ganmetrics: FID, IS, KID and more for generative image models, identical to the reference tools."""

from .errors import GanMetricsError
from .lazy import lazy_attributes
from .version import __version__

_PUBLIC = {
    **dict.fromkeys(["EvalResult", "FIDResult", "ISResult", "PackResult", "compute_stats", "compute_stats_shard",
                     "evaluate", "evaluate_many", "fid", "inception_score", "merge_stats_shards", "pack"], ".api"),
    **dict.fromkeys(["RunConfig", "SourceOptions"], ".config"),
    **dict.fromkeys(["Statistics", "load_statistics", "save_statistics"], ".store.statsfile"),
    "save_shard": ".store.shardfile",
    "GenerativeMetrics": ".tracker",
    "GeneratorSource": ".sources.generator",
}
# Imported on first use: the command line (``ganmetrics --version``, FID between two statistics
# files) starts without loading what it does not run, torch above all.
__getattr__ = lazy_attributes(__name__, _PUBLIC)

__all__ = sorted(["GanMetricsError", "__version__", *_PUBLIC])


def __dir__() -> list[str]:
    return __all__
