"""poolwise: Bayesian hierarchical models for grouped data.

Six model kinds (rates, normal, NIG, mixed, nested, custom) share one interface: a model is
a specification with keyword-only settings, ``model.fit(data, ...)`` returns a
:class:`Fit`, and every fit summarises, predicts (:class:`ExistingGroup`,
:class:`NewGroup`, :class:`NewGroupIn`, :class:`Population`, :class:`NewRows`), checks
itself against replicated data, draws its graph and saves; :func:`load` reads any of them
back. :func:`fit` picks the kind from its arguments, as the command line does.

>>> import poolwise
>>> rats = poolwise.datasets.load("rats").query("historical == 1")
>>> fit = poolwise.fit(rats, y="y", n="n", group="experiment")
>>> table = fit.summary()
"""

import importlib
from typing import TYPE_CHECKING, Any

from poolwise._version import __version__
from poolwise.api import compare, fit, load
from poolwise.data import datasets
from poolwise.data.tables import GroupCounts, group_counts, read_table
from poolwise.exceptions import (
    ConvergenceWarning,
    DataError,
    ImproperPosteriorError,
    PoolwiseError,
    PosteriorWarning,
    SamplingWarning,
    SpecificationError,
)
from poolwise.kinds.conjugate import ConjugateFit, Model
from poolwise.results.checks import PriorPredictive
from poolwise.results.comparison import Comparison
from poolwise.results.fit import Fit
from poolwise.results.prediction import (
    ExistingGroup,
    NewGroup,
    NewGroupIn,
    NewRows,
    Population,
    Prediction,
)

if TYPE_CHECKING:
    from poolwise.kinds.custom import CustomFit, CustomModel, load_model
    from poolwise.kinds.mixed.model import MixedFit, MixedModel
    from poolwise.kinds.nested import NestedFit, NestedModel
    from poolwise.kinds.nig import NIGFit, NIGModel
    from poolwise.outputs import plots

#: names imported when first used: the other kinds, and the plots (the heaviest part)
_LAZY = {
    "CustomFit": "poolwise.kinds.custom", "CustomModel": "poolwise.kinds.custom",
    "load_model": "poolwise.kinds.custom", "MixedFit": "poolwise.kinds.mixed.model",
    "MixedModel": "poolwise.kinds.mixed.model", "NestedFit": "poolwise.kinds.nested",
    "NestedModel": "poolwise.kinds.nested", "NIGFit": "poolwise.kinds.nig",
    "NIGModel": "poolwise.kinds.nig",
}

__all__ = [
    "Comparison",
    "ConjugateFit",
    "ConvergenceWarning",
    "CustomFit",
    "CustomModel",
    "DataError",
    "ExistingGroup",
    "Fit",
    "GroupCounts",
    "ImproperPosteriorError",
    "MixedFit",
    "MixedModel",
    "Model",
    "NIGFit",
    "NIGModel",
    "NestedFit",
    "NestedModel",
    "NewGroup",
    "NewGroupIn",
    "NewRows",
    "PoolwiseError",
    "Population",
    "PosteriorWarning",
    "Prediction",
    "PriorPredictive",
    "SamplingWarning",
    "SpecificationError",
    "__version__",
    "compare",
    "datasets",
    "fit",
    "group_counts",
    "load",
    "load_model",
    "plots",
    "read_table",
]


def __getattr__(name: str) -> Any:
    """The names of :data:`_LAZY` and ``poolwise.plots``, imported when first used."""
    if name == "plots":
        return importlib.import_module("poolwise.outputs.plots")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'poolwise' has no attribute {name!r}")
