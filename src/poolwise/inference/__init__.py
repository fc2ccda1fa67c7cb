"""Inference methods. Each takes (model, data, config) and returns :class:`Draws`.

Methods that need heavy libraries are imported when first used.
"""

from __future__ import annotations

import importlib

from poolwise.exceptions import SpecificationError
from poolwise.inference.base import Draws, EBEstimate, Method, SamplerConfig

#: name -> (module, function, description, pooling levels it supports)
METHODS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "exact": ("poolwise.inference.exact", "sample_exact",
              "independent draws: hyperparameters by 2-D quadrature, then conjugate draws",
              ("none", "complete", "partial")),
    "eb-moments": ("poolwise.inference.eb", "sample_eb_moments",
                   "empirical Bayes, method of moments on the raw rates", ("partial",)),
    "eb-ml": ("poolwise.inference.eb", "sample_eb_ml",
              "empirical Bayes, type-II maximum likelihood", ("partial",)),
    "gibbs": ("poolwise.inference.gibbs", "sample_gibbs",
              "Gibbs for θ, Metropolis for α and β (the lecture's sampler)", ("partial",)),
    "nuts": ("poolwise.inference.nuts", "sample_nuts",
             "NUTS in NumPyro (rates: θ integrated out, then drawn exactly; normal: explicit "
             "θ, non-centred by default)",
             ("none", "complete", "partial")),
}


def get_method(name: str, pooling: str) -> Method:
    """The sampling function for ``name``, checked against the pooling level."""
    if name not in METHODS:
        raise SpecificationError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    module, function, _, poolings = METHODS[name]
    if pooling not in poolings:
        raise SpecificationError(
            f"method {name!r} needs pooling {' or '.join(poolings)}, not {pooling!r}; "
            "for no or complete pooling the posterior is conjugate: use --method exact"
        )
    method: Method = getattr(importlib.import_module(module), function)
    return method


__all__ = ["METHODS", "Draws", "EBEstimate", "SamplerConfig", "get_method"]
