"""The feature extractors by name: a new one is one module plus one line here."""

import torch

from ..errors import GanMetricsError
from .inception.extractor import NAME as INCEPTION, InceptionExtractor
from .inception.weights import load_weights


def _inception(weights, device: torch.device, resize: str, allow_tf32: bool, progress: bool) -> InceptionExtractor:
    return InceptionExtractor(load_weights(weights, progress=progress), device, resize=resize, allow_tf32=allow_tf32)


EXTRACTORS = {INCEPTION: _inception}
DEFAULT_EXTRACTOR = INCEPTION


def build_extractor(name: str, **settings):
    """The extractor ``name`` built with ``settings`` (weights, device, resize, allow_tf32, progress)."""
    if name not in EXTRACTORS:
        raise GanMetricsError(f"unknown feature extractor {name!r}: use one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name](**settings)
