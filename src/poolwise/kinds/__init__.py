"""The model kinds, one registry row each.

=========  ==========================================  =====================================
kind       model                                       what it fits
=========  ==========================================  =====================================
rates      :class:`~poolwise.kinds.conjugate.Model`    counts per group (beta-binomial,
                                                       gamma-Poisson)
normal     :class:`~poolwise.kinds.conjugate.Model`    estimates with standard errors
nig        :class:`~poolwise.kinds.nig.NIGModel`       raw normal observations per group
mixed      :class:`~poolwise.kinds.mixed.MixedModel`   rows, an lme4/brms formula
nested     :class:`~poolwise.kinds.nested.NestedModel` groups within groups (labs /
                                                       experiments)
custom     :class:`~poolwise.kinds.custom.CustomModel` a NumPyro model function
=========  ==========================================  =====================================

Each row names where the kind's model and fit classes live; they are imported when first
used. A new kind is one module (or package) here and one row.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from poolwise.kinds.base import BaseModel
    from poolwise.results.fit import Fit

__all__ = ["KINDS", "KindRow", "fit_class", "model_class"]


class KindRow(NamedTuple):
    """Where a kind's model and fit classes live."""

    module: str
    model: str
    fit: str


KINDS: dict[str, KindRow] = {
    "rates": KindRow("poolwise.kinds.conjugate", "Model", "ConjugateFit"),
    "normal": KindRow("poolwise.kinds.conjugate", "Model", "ConjugateFit"),
    "nig": KindRow("poolwise.kinds.nig", "NIGModel", "NIGFit"),
    "mixed": KindRow("poolwise.kinds.mixed.model", "MixedModel", "MixedFit"),
    "nested": KindRow("poolwise.kinds.nested", "NestedModel", "NestedFit"),
    "custom": KindRow("poolwise.kinds.custom", "CustomModel", "CustomFit"),
}


def model_class(kind: str) -> type[BaseModel]:
    """The model class of ``kind``."""
    row = KINDS[kind]
    cls: type[BaseModel] = getattr(importlib.import_module(row.module), row.model)
    return cls


def fit_class(kind: str) -> type[Fit]:
    """The fit class of ``kind``."""
    row = KINDS[kind]
    cls: type[Fit] = getattr(importlib.import_module(row.module), row.fit)
    return cls
