"""The feature extractors by name: a new one is one module plus one line here."""

import functools

from ..errors import GanMetricsError
from .inception.extractor import InceptionExtractor
from .inception.spec import NAME as INCEPTION
from .inception.weights import load_weights, random_seed_of, weights_identity


def _inception(weights, device, resize: str, allow_tf32: bool, progress: bool) -> InceptionExtractor:
    random_seed_of(weights)  # a malformed random:SEED is refused now; loading waits for a network
    return InceptionExtractor(functools.partial(load_weights, weights, progress=progress), device, resize=resize,
                              allow_tf32=allow_tf32, identify=functools.partial(weights_identity, weights))


EXTRACTORS = {INCEPTION: _inception}
DEFAULT_EXTRACTOR = INCEPTION


def build_extractor(name: str, **settings):
    """The extractor ``name`` built with ``settings``: ``weights`` (a spec: a path, ``random:SEED``
    or None), ``device`` (a ``torch.device``, or a function of no arguments returning one),
    ``resize``, ``allow_tf32``, ``progress``. Weights and device are resolved on first need;
    ``provenance_without_network`` identifies the weights without loading them."""
    if name not in EXTRACTORS:
        raise GanMetricsError(f"unknown feature extractor {name!r}: use one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name](**settings)
