"""The encoders by name: a new one is one module plus one line here.

Importing this module imports no torch: each encoder's class declares its name, features,
roles, options and standard weights file, and builds its network only when it first runs.
"""

from collections.abc import Mapping
from typing import Any

from ..errors import GanMetricsError
from .base import FeatureExtractor, parse_options
from .clip.extractor import CleanFIDClipExtractor, CMMDClipExtractor
from .dinov2.extractor import DINOv2Extractor
from .inception.extractor import InceptionExtractor
from .vgg16 import VGG16Extractor

ENCODERS: dict[str, type[FeatureExtractor]] = {
    InceptionExtractor.name: InceptionExtractor,
    CMMDClipExtractor.name: CMMDClipExtractor, CleanFIDClipExtractor.name: CleanFIDClipExtractor,
    DINOv2Extractor.name: DINOv2Extractor,
    VGG16Extractor.name: VGG16Extractor,
}
DEFAULT_ENCODER = InceptionExtractor.name
"""The encoder of a metric named without ``@ENCODER``, and of a bare ``--weights``/``--resize``."""


def encoder_class(name: str) -> type[FeatureExtractor]:
    """The encoder class registered as ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in ENCODERS:
        raise GanMetricsError(f"unknown encoder {name!r}: use one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def build_encoder(name: str, options: Mapping[str, Any] | None = None, **settings) -> FeatureExtractor:
    """The encoder ``name`` with ``options`` ({option: value}, checked by ``parse_options``) and
    ``settings``: ``weights`` (a path, ``random:SEED`` or None), ``device`` (a ``torch.device``,
    or a function of no arguments returning one), ``allow_tf32``, ``progress``. Weights and
    device are resolved on first need."""
    cls = encoder_class(name)
    return cls(parse_options(cls, options or {}), **settings)
