"""What an encoder is: named features of uint8 RGB images, computed on one device by a network
that owns its weights, its preprocessing and its options.

A new encoder is one subclass of ``FeatureExtractor`` plus one line in ``registry.ENCODERS``:
it declares its ``features`` ({name: width}), which of them serves each metric ``role``, its
``Options`` (a frozen dataclass: the command line's ``--OPTION ENCODER=VALUE`` and the API's
``encoders={name: {...}}``), its standard ``weights_file``, and implements ``architecture``
(the network, for shapes and random weights) and ``forward``. Everything else — resolving and
checking the weights, building the network once per process, the device, the provenance that
statistics files, caches and outputs record — is done here, the same way for every encoder.

Roles (what a metric asks of an encoder, ``Metric.role``): ``frechet``, the feature whose
Gaussian FID compares; ``embedding``, the image embedding that kernel and neighbour metrics use
(KID, precision/recall, density/coverage); ``logits``, class logits (the Inception Score);
``spatial``, sFID's spatial features. An encoder without a role's feature cannot serve its
metrics: ``default_feature`` refuses them in one line.

Creating an encoder costs nothing and imports no torch: its weights and device are resolved, and
its network built, on first need, so FID between two statistics files builds no network.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import GanMetricsError
from ..provenance import EncoderProvenance
from ..sources.base import unchanged
from .weights import Weights, WeightsFile, check_state_dict, load_weights, random_seed_of, torch_load, weights_identity

if TYPE_CHECKING:
    import numpy as np
    import torch

ROLES = ("frechet", "embedding", "logits", "spatial")
"""What metrics ask of an encoder (module docstring)."""


def encoder_option(default, help: str, choices: Sequence | None = None, selects_feature: bool = False):
    """An encoder option: a field of its ``Options`` dataclass with its ``default``, the ``help``
    of its ``--NAME [ENCODER=]VALUE`` command-line option, the ``choices`` it accepts (None:
    any value of its type) and whether it only ``selects_feature`` (which of the encoder's
    features a role uses, like the Inception's ``dims``) rather than changing the features
    (like ``resize``): only the latter are part of the provenance."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices,
                                                        "selects_feature": selects_feature})


@dataclass(frozen=True)
class NoOptions:
    """The options of an encoder that takes none."""


def option_fields(options_class: type) -> dict[str, dataclasses.Field]:
    """The fields of an ``Options`` dataclass by name."""
    return {f.name: f for f in dataclasses.fields(options_class)}


_NETWORKS: dict[tuple, Any] = {}
"""Built networks by (encoder class, weights sha256, device): built once per process."""
_NETWORKS_KEPT = 2
_BUILDING = threading.Lock()


def _resolved(value, kind):
    """``value``, or what it returns when it is a function of no arguments (a deferred resolution)."""
    return value if isinstance(value, kind) else value()


class FeatureExtractor:
    """Base class of the encoders. An instance is one encoder with its ``options`` (an
    ``Options``; None: the defaults), its weights ``spec`` (a path, ``random:SEED`` or None:
    the resolution order of ``weights.py``) and its ``device`` (a ``torch.device``, or a
    function of no arguments returning one, called on first need). ``allow_tf32``: let a CUDA
    device compute convolutions and matrix products in TF32 (faster; moves the features).

    Subclasses set the class attributes below and implement ``architecture`` and ``forward``;
    they may override ``host_transform`` (per-image work in the decoding workers), ``plan``
    (how a group of images splits across CPU threads), ``random_state_dict``,
    ``read_state_dict`` and ``build_network``."""

    name: ClassVar[str]
    """The registry name: ``--metrics NAME@ENCODER``, ``--weights ENCODER=SPEC``."""
    model: ClassVar[str]
    """What the numbers come from (the network and its weights' origin), recorded as ``extractor``."""
    features: ClassVar[Mapping[str, int]]
    """{feature name: width} of one forward pass."""
    roles: ClassVar[Mapping[str, str]] = {}
    """{role: feature} (``ROLES``); a role absent here is one the encoder cannot serve."""
    Options: ClassVar[type] = NoOptions
    weights_file: ClassVar[WeightsFile | None] = None
    ignored_key_suffixes: ClassVar[tuple[str, ...]] = ()
    """State-dict keys a weights file may carry beyond the network's (e.g. batch norm's step counter)."""
    cpu_chunk: ClassVar[int | None] = None
    """Images run through the network at once on the CPU (``plan``; None: a whole group at once)."""

    def __init__(self, options=None, weights=None, device=None, allow_tf32: bool = False, progress: bool = False):
        self.options = self.Options() if options is None else options
        random_seed_of(weights)  # a malformed random:SEED is refused now; loading waits for a network
        self.weights_spec, self.allow_tf32, self.progress = weights, allow_tf32, progress
        self._device = device

    # -- what a subclass implements --------------------------------------------------------
    @classmethod
    def architecture(cls) -> torch.nn.Module:
        """The network with uninitialised or default parameters (built on the meta device for
        its shapes, and seeded for ``random_state_dict``)."""
        raise NotImplementedError

    def forward(self, network: torch.nn.Module, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """Same-sized images from ``host_transform``, stacked (N, H, W, C) on ``device`` ->
        {feature: float32 (N, width)} for each wanted feature, under inference mode."""
        raise NotImplementedError

    # -- weights ---------------------------------------------------------------------------
    @classmethod
    def expected_shapes(cls) -> dict[str, tuple[int, ...]]:
        """Every key of the real weights file and its shape."""
        import torch

        with torch.device("meta"):
            network = cls.architecture()
        return {key: tuple(value.shape) for key, value in network.state_dict().items()
                if not key.endswith(cls.ignored_key_suffixes)}

    @classmethod
    def random_state_dict(cls, seed: int) -> dict:
        """Deterministic random weights with the real file's keys and shapes: the architecture's
        own initialisation drawn from a generator seeded with ``seed`` (the global RNG untouched)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = cls.architecture()
        return {key: value.detach().clone() for key, value in network.state_dict().items()
                if not key.endswith(cls.ignored_key_suffixes)}

    @classmethod
    def read_state_dict(cls, path) -> dict:
        """A weights file's state dict, checked (exactly the expected keys and shapes, finite):
        by default a plain PyTorch state dict read with ``torch.load(weights_only=True)``."""
        return check_state_dict(cls, torch_load(path, f"a PyTorch state dict of {cls.name}"), path)

    @classmethod
    def build_network(cls, state_dict: dict, device: torch.device) -> torch.nn.Module:
        """The network with ``state_dict`` in eval mode on ``device``, gradients off; built on the
        meta device (nothing allocated or drawn from the RNG for parameters replaced anyway)."""
        import torch

        with torch.device("meta"):
            network = cls.architecture()
        network.load_state_dict(state_dict, assign=True)
        return network.eval().requires_grad_(False).to(device)

    @functools.cached_property
    def weights(self) -> Weights:
        """The weights, resolved on first use. Once the network is built they keep only their
        identity (``Weights.released``): the network holds the tensors."""
        return load_weights(type(self), self.weights_spec, self.progress)

    # -- device, network, provenance -------------------------------------------------------
    @functools.cached_property
    def device(self) -> torch.device:
        import torch

        return torch.device("cpu") if self._device is None else _resolved(self._device, torch.device)

    @functools.cached_property
    def network(self) -> torch.nn.Module:
        key = (type(self), self.weights.sha256, str(self.device))
        with _BUILDING:
            if key not in _NETWORKS:
                network = self.build_network(self.weights.state_dict, self.device)
                self.adapt_network(network)
                while len(_NETWORKS) >= _NETWORKS_KEPT:
                    del _NETWORKS[next(iter(_NETWORKS))]
                _NETWORKS[key] = network
            network = _NETWORKS[key]
        self.weights = self.weights.released()  # the network holds the tensors it needs
        return network

    def adapt_network(self, network: torch.nn.Module) -> None:
        """Once per built network: device-specific changes that keep its numbers (by default none)."""

    def prepare(self) -> None:
        """Build the network before any forward thread starts."""
        self.network  # noqa: B018

    @property
    def tf32(self) -> bool:
        """Whether this encoder's products run in TF32 (``allow_tf32`` on a CUDA device)."""
        return self.allow_tf32 and self.device.type == "cuda"

    def provenance_options(self) -> dict:
        """The options that change the numbers (not those that only select a feature), as recorded."""
        fields = option_fields(self.Options)
        return {name: getattr(self.options, name) for name, f in fields.items() if not f.metadata.get("selects_feature")}

    def _provenance(self, identity: tuple[str, bool]) -> EncoderProvenance:
        return EncoderProvenance(self.name, self.model, identity[0], identity[1], tuple(self.provenance_options().items()))

    @functools.cached_property
    def provenance(self) -> EncoderProvenance:
        """What this encoder's numbers depend on: its model, weights and options (resolves the weights)."""
        return self._provenance((self.weights.sha256, self.weights.calibrated))

    def provenance_without_network(self) -> EncoderProvenance | None:
        """The provenance of a run that builds no network (statistics files only): the weights
        identified without loading them (``weights.weights_identity``; weights already resolved:
        theirs), or None where nothing identifies them (they would have to be downloaded).
        Resolves no device."""
        if "weights" in self.__dict__:
            identity = self.weights.sha256, self.weights.calibrated
        else:
            identity = weights_identity(type(self), self.weights_spec)
        return None if identity is None else self._provenance(identity)

    # -- features --------------------------------------------------------------------------
    def feature_of_role(self, role: str) -> str | None:
        """The feature that serves ``role`` with these options, or None."""
        return self.roles.get(role)

    def default_feature(self, metric) -> str:
        """The feature ``metric`` (a ``metrics.base.Metric``) uses on this encoder (its ``role``'s);
        a metric it cannot serve is refused in one line."""
        feature = self.feature_of_role(metric.role)
        if feature is None:
            served = sorted(role for role in ROLES if self.feature_of_role(role) is not None)
            raise GanMetricsError(f"the encoder {self.name} cannot serve {metric.name}: it has no {metric.role} "
                                  f"features (it serves metrics of {', '.join(served) or 'no'} features); "
                                  f"drop {metric.name}@{self.name}")
        return feature

    def option_hint(self, feature: str) -> str | None:
        """The command-line option that makes a run use ``feature`` where another of the same
        role is in use (the Inception's ``--dims 64``), for messages; None where none does."""
        return None

    @property
    def host_transform(self) -> Callable[[np.ndarray], np.ndarray]:
        """Per image, in the decoding worker: uint8 (H, W, 3) -> what ``forward`` takes (by
        default the image itself). A small picklable function: it travels to the workers
        without the network; encoders with equal transforms share their output."""
        return unchanged

    def __call__(self, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """Stacked images from ``host_transform`` on ``device`` -> {feature: float32 (N, width)}."""
        parts, join = self.plan(pixels, wanted)
        return join([part() for part in parts])

    def plan(self, pixels: torch.Tensor, wanted: Collection[str],
             sizes: Sequence[int] | None = None) -> tuple[list[Callable[[], dict]], Callable]:
        """``self(pixels, wanted)`` as (parts, join): functions of no arguments that each compute
        some of the images' features and may run on different threads at once, and ``join``,
        which takes their results in order to what ``self(pixels, wanted)`` returns. By default
        one part; on the CPU, for an encoder that sets ``cpu_chunk``, one part per chunk of that
        many images (or of each of ``sizes`` images), joined by concatenation in order."""
        import torch

        network = self.network

        def part(chunk: torch.Tensor) -> Callable[[], dict]:
            def run() -> dict[str, torch.Tensor]:
                with torch.inference_mode():
                    return self.forward(network, chunk, wanted)
            return run

        chunked = self.device.type == "cpu" and self.cpu_chunk
        chunks = pixels.split(list(sizes) if sizes else self.cpu_chunk) if chunked else (pixels,)
        if len(chunks) == 1:
            return [part(pixels)], lambda outs: outs[0]

        def join(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            return {feature: torch.cat([out[feature] for out in outs]) for feature in wanted}

        return [part(chunk) for chunk in chunks], join


def parse_options(encoder: type[FeatureExtractor], given: Mapping[str, Any]) -> Any:
    """``encoder``'s ``Options`` with the values ``given`` ({option: value}, values as typed on
    the command line or already of the field's type): an option the encoder does not take, a
    value of the wrong type or outside its choices is a one-line error naming the option."""
    fields = option_fields(encoder.Options)
    types = typing.get_type_hints(encoder.Options)
    values = {}
    for name, value in given.items():
        if name not in fields:
            takes = ", ".join(f"--{n.replace('_', '-')}" for n in fields) or "no options"
            raise GanMetricsError(f"--{name.replace('_', '-')} {encoder.name}=...: the encoder {encoder.name} has no "
                                  f"option {name} (it takes {takes})")
        kind, choices = types[name], fields[name].metadata.get("choices")
        try:
            value = kind(value) if kind in (int, float, str) else value
        except (TypeError, ValueError):
            value = None
        if value is None or (choices is not None and value not in choices):
            shown = f" use one of {', '.join(map(str, choices))}" if choices else f" it takes a {kind.__name__}"
            raise GanMetricsError(f"--{name.replace('_', '-')} {given[name]!r} is unknown for {encoder.name}:{shown}")
        values[name] = value
    return encoder.Options(**values)
