"""Inference methods of the one-level conjugate models, one registry row each.

Each method is a function ``(spec, data, config) -> Draws``
(:class:`~poolwise.inference.base.ConjugateSpec`). Methods that need heavy libraries are
imported when first used. A new method is one module here and one row in :data:`METHODS`.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from poolwise.inference.base import ConjugateSpec, Draws, EBEstimate, Method, SamplerConfig


class MethodRow(NamedTuple):
    """Where a method's function lives, the pooling levels it fits, what it does, and the
    families it is for (every family when empty)."""

    module: str
    function: str
    poolings: tuple[str, ...]
    description: str
    families: tuple[str, ...] = ()


#: name → where its function lives and the pooling levels it fits (the default first)
METHODS: dict[str, MethodRow] = {
    "exact": MethodRow(
        "poolwise.inference.exact", "sample_exact", ("none", "complete", "partial"),
        "independent draws: hyperparameters by 2-D quadrature (1-D in log τ for the normal "
        "family), then conjugate draws of θ"),
    "eb-moments": MethodRow(
        "poolwise.inference.eb", "sample_eb_moments", ("partial",),
        "empirical Bayes: population parameters by the method of moments on the raw rates"),
    "eb-ml": MethodRow(
        "poolwise.inference.eb", "sample_eb_ml", ("partial",),
        "empirical Bayes: population parameters by type-II maximum likelihood"),
    "eb-js": MethodRow(
        "poolwise.inference.eb", "sample_eb_js", ("partial",),
        "empirical Bayes: James–Stein shrinkage towards the mean (one known standard "
        "error)", families=("normal",)),
    "gibbs": MethodRow(
        "poolwise.inference.gibbs", "sample_gibbs", ("partial",),
        "the lecture's sampler: Gibbs for θ, Metropolis for the hyperparameters"),
    "nuts": MethodRow(
        "poolwise.inference.nuts", "sample_nuts", ("none", "complete", "partial"),
        "NUTS in NumPyro (rates: θ integrated out, then drawn exactly; normal: explicit θ, "
        "non-centred by default)"),
}


def methods_by_pooling(family: str | None = None) -> dict[str, tuple[str, ...]]:
    """Pooling level → the methods that fit it (those for ``family``; every method when
    None), in :data:`METHODS` order."""
    rows = {name: row for name, row in METHODS.items()
            if family is None or not row.families or family in row.families}
    poolings = dict.fromkeys(p for row in rows.values() for p in row.poolings)
    return {p: tuple(name for name, row in rows.items() if p in row.poolings)
            for p in poolings}


def get_method(name: str) -> Method:
    """The sampling function called ``name`` (a key of :data:`METHODS`)."""
    row = METHODS[name]
    method: Method = getattr(importlib.import_module(row.module), row.function)
    return method


__all__ = ["METHODS", "ConjugateSpec", "Draws", "EBEstimate", "SamplerConfig", "get_method",
           "methods_by_pooling"]
