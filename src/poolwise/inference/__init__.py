"""Inference methods of the one-level conjugate models, one registry row each.

Each method is a function ``(spec, data, config) -> Draws``
(:class:`~poolwise.inference.base.ConjugateSpec`); what its name means is in
:data:`poolwise.vocabulary.METHODS`. Methods that need heavy libraries are imported when
first used. A new method is one module here and one row in :data:`METHODS`.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from poolwise.inference.base import ConjugateSpec, Draws, EBEstimate, Method, SamplerConfig


class MethodRow(NamedTuple):
    """Where a method's function lives and the pooling levels it fits."""

    module: str
    function: str
    poolings: tuple[str, ...]


#: name → where its function lives and the pooling levels it fits (the default first)
METHODS: dict[str, MethodRow] = {
    "exact": MethodRow("poolwise.inference.exact", "sample_exact",
                       ("none", "complete", "partial")),
    "eb-moments": MethodRow("poolwise.inference.eb", "sample_eb_moments", ("partial",)),
    "eb-ml": MethodRow("poolwise.inference.eb", "sample_eb_ml", ("partial",)),
    "gibbs": MethodRow("poolwise.inference.gibbs", "sample_gibbs", ("partial",)),
    "nuts": MethodRow("poolwise.inference.nuts", "sample_nuts", ("none", "complete", "partial")),
}


def methods_by_pooling() -> dict[str, tuple[str, ...]]:
    """Pooling level → the methods that fit it, in :data:`METHODS` order."""
    poolings = dict.fromkeys(p for row in METHODS.values() for p in row.poolings)
    return {p: tuple(name for name, row in METHODS.items() if p in row.poolings)
            for p in poolings}


def get_method(name: str) -> Method:
    """The sampling function called ``name`` (a key of :data:`METHODS`)."""
    row = METHODS[name]
    method: Method = getattr(importlib.import_module(row.module), row.function)
    return method


__all__ = ["METHODS", "ConjugateSpec", "Draws", "EBEstimate", "SamplerConfig", "get_method",
           "methods_by_pooling"]
