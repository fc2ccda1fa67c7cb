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

from poolwise.exceptions import (
    ConvergenceWarning,
    DataError,
    ImproperPosteriorError,
    PoolwiseError,
    PosteriorWarning,
    ResourceError,
    SamplingWarning,
    SpecificationError,
)

if TYPE_CHECKING:
    from poolwise._version import __version__
    from poolwise.api import compare, fit, load
    from poolwise.data import datasets
    from poolwise.data.tables import GroupCounts, group_counts, read_table
    from poolwise.kinds.conjugate import ConjugateFit, Model
    from poolwise.kinds.custom import CustomFit, CustomModel, load_model
    from poolwise.kinds.mixed.model import MixedFit, MixedModel
    from poolwise.kinds.nested import NestedFit, NestedModel
    from poolwise.kinds.nig import NIGFit, NIGModel
    from poolwise.outputs import plots
    from poolwise.resources import available_memory
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

#: where each public name lives; imported when first used, so that ``import poolwise`` (and
#: ``poolwise --help``) stays quick: NumPy, pandas, SciPy and JAX load when a model needs them
_LAZY = {
    **dict.fromkeys(("compare", "fit", "load", "report"), "poolwise.api"),
    **dict.fromkeys(("GroupCounts", "group_counts", "read_table"), "poolwise.data.tables"),
    **dict.fromkeys(("ConjugateFit", "Model"), "poolwise.kinds.conjugate"),
    **dict.fromkeys(("CustomFit", "CustomModel", "load_model"), "poolwise.kinds.custom"),
    **dict.fromkeys(("MixedFit", "MixedModel"), "poolwise.kinds.mixed.model"),
    **dict.fromkeys(("NestedFit", "NestedModel"), "poolwise.kinds.nested"),
    **dict.fromkeys(("NIGFit", "NIGModel"), "poolwise.kinds.nig"),
    "PriorPredictive": "poolwise.results.checks",
    "available_memory": "poolwise.resources",
    "Comparison": "poolwise.results.comparison",
    "Fit": "poolwise.results.fit",
    **dict.fromkeys(("ExistingGroup", "NewGroup", "NewGroupIn", "NewRows", "Population",
                     "Prediction"), "poolwise.results.prediction"),
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
    "ResourceError",
    "SamplingWarning",
    "SpecificationError",
    "__version__",
    "available_memory",
    "compare",
    "datasets",
    "fit",
    "group_counts",
    "load",
    "load_model",
    "plots",
    "read_table",
    "report",
]


#: the public modules, imported when first used
_MODULES = {"datasets": "poolwise.data.datasets", "plots": "poolwise.outputs.plots"}
_LAZY["__version__"] = "poolwise._version"  # reading the installed metadata takes 70 ms


def __getattr__(name: str) -> Any:
    """The names of :data:`_LAZY` and :data:`_MODULES`, imported when first used."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'poolwise' has no attribute {name!r}")
    globals()[name] = value  # once found, an ordinary attribute
    return value
