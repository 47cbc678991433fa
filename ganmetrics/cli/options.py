"""The one shared-options decorator: the options of CONTRACT.md shared by the metric commands
(and, a subset of them, by ``train``), gathered into a ``RunConfig``."""

import functools
import types

import click

from ..config import IntervalOptions, RunConfig, SourceOptions
from ..extractors.inception.spec import FEATURE_DIMS, RESIZE_MODES
from ..extractors.inception.weights import ENV_WEIGHTS
from ..metrics.registry import MetricOption, metric_options

OPTIONS = {
    "weights": click.option("--weights", "weights", default=None, metavar="SPEC",
                            help=f"Weights file, or random:SEED (uncalibrated). Default: ${ENV_WEIGHTS}, weights/, the user cache, then download."),
    "device": click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    "batch_size": click.option("--batch-size", default=50, show_default=True, type=int, help="Images per forward pass."),
    "workers": click.option("--workers", default=None, type=int, help="Decoding processes [default: CPUs - 1, at most 8]."),
    "resize": click.option("--resize", default="tf", show_default=True, type=click.Choice(RESIZE_MODES),
                           help="tf (as the TF code / torch-fidelity), pytorch (as pytorch-fid), clean (as clean-fid)."),
    "dims": click.option("--dims", default="2048", show_default=True, type=click.Choice([str(d) for d in FEATURE_DIMS]),
                         help="FID feature layer."),
    "limit": click.option("--limit", default=None, type=int, help="Use only the first N images of each source."),
    "recursive": click.option("--no-recursive", "recursive", flag_value=False, default=True, help="Do not search subfolders."),
    "key": click.option("--key", default=None, help="Array to read from an .npz source [default: the first holding uint8 images]."),
    "allow_mismatch": click.option("--allow-mismatch", is_flag=True,
                                   help="Accept statistics files made with other resize or weights."),
    "strict": click.option("--strict", is_flag=True,
                           help="Refuse non-image files in folders and archives instead of skipping them."),
    "allow_tf32": click.option("--allow-tf32", is_flag=True,
                               help="Let a CUDA GPU compute in TF32: faster on Ampere and later, but moves FID [default: exact fp32]."),
    "cache": click.option("--cache/--no-cache", "cache", default=None,
                          help="Cache the statistics (and feature banks) of every source / of none "
                               "[default: of the reference side when a folder or archive]."),
    "as_json": click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, nothing else."),
    "quiet": click.option("--quiet", is_flag=True, help="No progress bar."),
}
SOURCE_FIELDS = ("limit", "recursive", "key", "strict")


def shared_options(command=None, *, only: tuple[str, ...] | None = None):
    """Add the shared options (or ``only`` those named) to a click command, which then receives
    ``options: RunConfig`` (and ``as_json`` when that option is among them) instead."""
    if command is None:
        return functools.partial(shared_options, only=only)
    names = [name for name in OPTIONS if only is None or name in only]
    for name in reversed(names):
        command = OPTIONS[name](command)

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {name: kwargs.pop(name) for name in names}
        as_json = given.pop("as_json", None)
        quiet = given.pop("quiet", True)
        if "dims" in given:
            given["dims"] = int(given["dims"])
        sources = SourceOptions(**{name: given.pop(name) for name in SOURCE_FIELDS if name in given})
        options = RunConfig(**given, progress=not quiet, sources=sources)
        return command(options=options, **({"as_json": as_json} if "as_json" in names else {}), **kwargs)

    return wrapper


CI_HELP = (
    "Bootstrap a confidence interval over images from B resampled copies of each side (Poisson(1) "
    "weights keyed by --ci-seed, side, image and replicate: the same for any --batch-size or --workers): "
    "ci_low/ci_high for fid; <key>_ci_low/<key>_ci_high for eval's fid, is_mean and kid. A statistics file "
    "without features as SOURCE_A "
    "stays fixed. Memory: FID keeps every feature of each side, 4 x dims bytes an image (410 MB at 50,000 "
    "images, 2048 dims); IS streams (8 MB at B=100). Time per replicate: FID 1.3 x N x dims^2 float64 flops "
    "per resampled side plus one trace square root (0.5 s at 2048 dims on 2 CPU cores; about 10 s a "
    "replicate at 50,000 images a side there); KID a whole KID; IS negligible."
)


def interval_options(command):
    """Add ``--ci``, ``--ci-level``, ``--ci-method`` and ``--ci-seed`` to a click command, which
    then receives ``interval: IntervalOptions`` instead."""
    @click.option("--ci", "ci", type=int, default=None, metavar="B", help=CI_HELP)
    @click.option("--ci-level", "ci_level", type=float, default=0.95, show_default=True,
                  help="Coverage of the --ci interval, strictly between 0 and 1.")
    @click.option("--ci-method", "ci_method", type=click.Choice(IntervalOptions.METHODS), default="basic",
                  show_default=True,
                  help="basic: the bootstrap quantiles mirrored about the value, which removes the metric's bias: "
                       "an interval for its value on the distributions themselves (at 2048 dims it lies below FID "
                       "at N); percentile: the quantiles themselves (shifted by twice the bias).")
    @click.option("--ci-seed", "ci_seed", type=click.IntRange(0), default=0, show_default=True,
                  help="Seed of the --ci image weights.")
    @functools.wraps(command)
    def wrapper(ci, ci_level, ci_method, ci_seed, **kwargs):
        return command(interval=IntervalOptions(ci, ci_level, ci_method, ci_seed), **kwargs)

    return wrapper


def _metric_option(option: MetricOption) -> click.Option:
    """The ``eval`` option of a metric's field (``metrics.base.option``): ``--kid-subset-size``
    for ``kid_subset_size``, its default and help from the field; a bool is a flag."""
    flag = "--" + option.name.replace("_", "-")
    kind = option.type
    if isinstance(kind, types.UnionType):  # e.g. float | None
        kind = next(t for t in kind.__args__ if t is not type(None))
    if kind is bool:
        return click.Option([flag, option.name], is_flag=True, default=option.default, help=option.help)
    return click.Option([flag, option.name], type=kind, default=option.default, show_default=option.default is not None,
                        help=option.help)


class MetricOptionsCommand(click.Command):
    """A command that also takes every registered metric's options (``metrics.registry``; those
    not already shared options, like ``dims``), read from the registry when the command runs:
    a metric registered by one line brings its options. The callback receives them as keywords."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        taken = {param.name for param in params}
        extra = [_metric_option(option) for name, option in metric_options().items() if name not in taken]
        shared = next(i for i, param in enumerate(params) if param.name in OPTIONS)
        return params[:shared] + extra + params[shared:]  # before the shared options, as in --help
