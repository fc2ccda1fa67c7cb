"""poolwise: Bayesian hierarchical models for grouped data.

>>> import poolwise
>>> rats = poolwise.datasets.load("rats").query("historical == 1")
>>> fit = poolwise.Model(family="beta-binomial").fit(rats, y="y", n="n", group="experiment")
>>> table = fit.summary()
"""

from poolwise._version import __version__
from poolwise.custom import CustomFit, CustomModel, load_model
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
from poolwise.fit import Fit, NewGroup
from poolwise.mixed.model import MixedFit, MixedModel
from poolwise.model import Model
from poolwise.nested import NestedFit, NestedModel
from poolwise.nig import NIGFit, NIGModel

__all__ = [
    "ConvergenceWarning",
    "CustomFit",
    "CustomModel",
    "DataError",
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
    "PoolwiseError",
    "PosteriorWarning",
    "SamplingWarning",
    "SpecificationError",
    "__version__",
    "datasets",
    "group_counts",
    "load_model",
    "read_table",
]
