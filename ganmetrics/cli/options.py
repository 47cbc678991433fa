"""The one shared-options decorator: the options of CONTRACT.md shared by the metric commands
(and, a subset of them, by ``train``), gathered into a ``RunConfig``.

Encoder options come from the registry: ``--weights [ENCODER=]SPEC`` and one ``--NAME
[ENCODER=]VALUE`` per option any encoder declares (the Inception's ``--resize`` and ``--dims``),
each repeatable; a bare value is the default encoder's, so ``--resize clean`` and ``--dims 64``
mean what they always did.
"""

import functools
import os
import re
import types

import click

from ..config import IntervalOptions, RunConfig, SourceOptions
from ..errors import GanMetricsError
from ..extractors.base import option_fields
from ..extractors.registry import DEFAULT_ENCODER, ENCODERS
from ..metrics.registry import MetricOption, metric_options

_ENCODER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def encoder_option_fields() -> dict:
    """{option name: (the first encoder declaring it, its field)} over the registered encoders,
    the default encoder's first."""
    fields = {}
    for name in sorted(ENCODERS, key=lambda name: name != DEFAULT_ENCODER):
        for option, field in option_fields(ENCODERS[name].Options).items():
            fields.setdefault(option, (name, field))
    return fields


def split_encoder_value(option: str, text: str, path_like: bool = False) -> tuple[str, str]:
    """(encoder, value) of an ``--OPTION [ENCODER=]VALUE`` item: ``ENCODER=VALUE`` where the part
    before the first "=" is an encoder's name, else the default encoder's (for ``path_like``
    options, also where the whole item is an existing file). A name-like prefix that is no
    encoder is refused in one line."""
    name, sep, value = text.partition("=")
    if not sep or (path_like and os.path.exists(text)) or not _ENCODER_NAME.fullmatch(name):
        return DEFAULT_ENCODER, text
    if name not in ENCODERS:
        raise GanMetricsError(f"{option} {text}: unknown encoder {name!r}: use one of {', '.join(ENCODERS)} "
                              f"({option} ENCODER=VALUE, or a bare value for {DEFAULT_ENCODER})")
    return name, value


def _encoder_option(option: str, encoder: str, field) -> click.Option:
    return click.option(f"--{option.replace('_', '-')}", f"encoder_{option}", multiple=True,
                        metavar="[ENCODER=]VALUE",
                        help=f"{field.metadata.get('help', '')} [{encoder}'s default: {field.default}; or ENCODER=VALUE]")


OPTIONS = {
    "weights": click.option("--weights", "weights", multiple=True, metavar="[ENCODER=]SPEC",
                            help=f"Weights file or random:SEED (uncalibrated) of the {DEFAULT_ENCODER}, or "
                                 "ENCODER=SPEC [default: docs/encoders.md]."),
    "device": click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    "batch_size": click.option("--batch-size", default=50, show_default=True, type=int, help="Images per forward pass."),
    "workers": click.option("--workers", default=None, type=int, help="Decoding processes [default: CPUs - 1, at most 8]."),
    **{f"encoder_{option}": _encoder_option(option, encoder, field)
       for option, (encoder, field) in encoder_option_fields().items()},
    "limit": click.option("--limit", default=None, type=int, help="Use only the first N images of each source."),
    "recursive": click.option("--no-recursive", "recursive", flag_value=False, default=True, help="Do not search subfolders."),
    "key": click.option("--key", default=None, help="Array to read from an .npz source [default: the first holding uint8 images]."),
    "allow_mismatch": click.option("--allow-mismatch", is_flag=True,
                                   help="Accept statistics files made with other encoder options or weights."),
    "strict": click.option("--strict", is_flag=True,
                           help="Refuse non-image files in folders and archives instead of skipping them."),
    "allow_tf32": click.option("--allow-tf32", is_flag=True,
                               help="Let a CUDA GPU compute in TF32: faster on Ampere and later, but moves the "
                                    "features [default: exact fp32]."),
    "cache": click.option("--cache/--no-cache", "cache", default=None,
                          help="Cache the statistics (and feature banks) of every source / of none "
                               "[default: of the reference side when a folder or archive]."),
    "as_json": click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, nothing else."),
    "quiet": click.option("--quiet", is_flag=True, help="No progress bar."),
}
SOURCE_FIELDS = ("limit", "recursive", "key", "strict")
ENCODER_OPTIONS = tuple(name for name in OPTIONS if name.startswith("encoder_"))
"""The shared options that set encoder options (``only=`` may name them all as "encoder_options")."""


def _encoder_settings(given: dict) -> tuple[dict, dict]:
    """({encoder: weights spec}, {encoder: {option: value}}) of the ``--weights`` and encoder
    option items among ``given`` (removed from it)."""
    weights = dict(split_encoder_value("--weights", item, path_like=True) for item in given.pop("weights", ()))
    encoders: dict[str, dict] = {}
    for name in ENCODER_OPTIONS:
        option = name.removeprefix("encoder_")
        for item in given.pop(name, ()):
            encoder, value = split_encoder_value(f"--{option.replace('_', '-')}", item)
            encoders.setdefault(encoder, {})[option] = value
    return weights, encoders


def shared_options(command=None, *, only: tuple[str, ...] | None = None):
    """Add the shared options (or ``only`` those named; "encoder_options" names every encoder
    option) to a click command, which then receives ``options: RunConfig`` (and ``as_json``
    when that option is among them) instead."""
    if command is None:
        return functools.partial(shared_options, only=only)
    wanted = None if only is None else set(only) | (set(ENCODER_OPTIONS) if "encoder_options" in only else set())
    names = [name for name in OPTIONS if wanted is None or name in wanted]
    for name in reversed(names):
        command = OPTIONS[name](command)

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {name: kwargs.pop(name) for name in names}
        as_json = given.pop("as_json", None)
        quiet = given.pop("quiet", True)
        weights, encoders = _encoder_settings(given)
        sources = SourceOptions(**{name: given.pop(name) for name in SOURCE_FIELDS if name in given})
        options = RunConfig(**given, weights=weights, encoders=encoders, progress=not quiet, sources=sources)
        return command(options=options, **({"as_json": as_json} if "as_json" in names else {}), **kwargs)

    return wrapper


CI_HELP = "Bootstrap intervals from B resampled copies of each side: <key>_ci_low, <key>_ci_high (docs/ci-gating.md)."


def interval_options(command):
    """Add ``--ci``, ``--ci-level``, ``--ci-method`` and ``--ci-seed`` to a click command, which
    then receives ``interval: IntervalOptions`` instead."""
    @click.option("--ci", "ci", type=int, default=None, metavar="B", help=CI_HELP)
    @click.option("--ci-level", "ci_level", type=float, default=0.95, show_default=True,
                  help="Coverage of the --ci interval, strictly between 0 and 1.")
    @click.option("--ci-method", "ci_method", type=click.Choice(IntervalOptions.METHODS), default="basic",
                  show_default=True,
                  help="basic (the quantiles mirrored about the value: unbiased) or percentile.")
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
    not already shared options), read from the registry when the command runs: a metric
    registered by one line brings its options. The callback receives them as keywords."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        taken = {param.name for param in params}
        extra = [_metric_option(option) for name, option in metric_options().items() if name not in taken]
        shared = next(i for i, param in enumerate(params) if param.name in OPTIONS)
        return params[:shared] + extra + params[shared:]  # before the shared options, as in --help
