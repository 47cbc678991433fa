"""What ``ganmetrics stats`` computes and writes: the reference-side values of the requested
metrics that a statistics file can hold (Gaussians and feature banks), of every encoder they
run on, in one pass; and the ``Statistics`` built from them."""

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import GanMetricsError
from ..extractors.registry import DEFAULT_ENCODER
from ..metrics.base import Need
from ..metrics.reducers import FeatureBank, GaussianStats
from ..provenance import Provenance
from ..store.compat import legacy_meta
from ..store.statsfile import Statistics
from .plan import Plan


def stats_needs(plan: Plan, features: bool, more: Iterable[str] = ()) -> dict[Need, str]:
    """{need: what needs it} that a statistics file of the plan's metrics holds: each storable
    reference-side need (a derived one's source), with ``features`` each FID Gaussian's bank
    too, and the Gaussians of the default encoder's features ``more`` (``("spatial",)``: sFID's)."""
    needs: dict[Need, str] = {}
    for need, names in plan.needs("a").items():
        source = need.source
        if not source.reducer.value_fields:
            raise GanMetricsError(f"{names} needs the images of each side, not statistics: drop it from stats --metrics")
        needs.setdefault(source, names)
    if features:
        for need in [need for need in needs if need.reducer is GaussianStats]:
            needs.setdefault(Need(need.encoder, need.feature, FeatureBank), "the feature bank")
    encoder = plan.encoders.get(DEFAULT_ENCODER)
    for feature in more:
        if encoder is None or feature not in encoder.features:
            known = ", ".join(encoder.features) if encoder else "none"
            raise GanMetricsError(f"the encoder {DEFAULT_ENCODER} has no feature {feature!r}: use one of {known}")
        needs.setdefault(Need(DEFAULT_ENCODER, feature, GaussianStats), f"the {feature} statistics")
    return needs


def encoder_metas(plan: Plan, provenance: Provenance, label: str) -> dict[str, dict]:
    """{encoder: its meta in a statistics file}: its provenance, the width (``dims``) and name
    (``feature``) of its FID features, and the ``source`` the values are of (for the legacy
    encoder as earlier versions wrote it: ``compat.legacy_meta``)."""
    metas = {}
    for name, encoder in plan.encoders.items():
        feature = encoder.feature_of_role("frechet")
        metas[name] = legacy_meta({**provenance.of(name).meta(provenance.tf32), "dims": encoder.features.get(feature),
                                   "feature": feature, "source": label})
    return metas


def statistics_of(plan: Plan, provenance: Provenance, values: Mapping[Need, Any], label: str) -> Statistics:
    """The ``Statistics`` of reduced ``values`` ({need: value}) of the source ``label`` describes."""
    entries = {(need.encoder, need.feature, need.reducer.kind): need.reducer.value_arrays(value)
               for need, value in values.items()}
    return Statistics(entries=entries, metas=encoder_metas(plan, provenance, label))
