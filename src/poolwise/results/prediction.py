"""What a user can ask a fit to predict, and the one type every answer comes in.

A prediction is asked for with a *request*, one small frozen dataclass per question, whose
name says what is held fixed and what is drawn afresh (the lesson of brms's
``sample_new_levels`` and of bambi's changing defaults: the semantics must be in the name):

:class:`ExistingGroup`
    New data from a group that is in the fit: its parameter θ_j is drawn from its posterior,
    then new data y* given θ_j (``size`` more trials, exposure, observations or standard
    error; by default the group's own). Mixed models: new observations at the group's own
    rows.
:class:`NewGroup`
    A group that is not in the fit, drawn from the population: θ_new ~ p(θ | hyperparameters)
    at each posterior draw (the between-group spread and the uncertainty about the
    population both in it), then y* for a group of ``size``. With ``y`` (and ``size``) the
    new group's own data: the posterior of its θ given them. Nested models: a new outer
    group (a new lab) and a new inner group in it. Mixed models: a new level's coefficients.
:class:`NewGroupIn`
    A new group inside a parent that is in the fit: a new experiment in lab ``parent``
    (nested models), a new classroom in school ``parent`` (mixed models with nested
    factors). The parent's parameters come from their posterior; only the child is new.
:class:`Population`
    The population level itself: the population mean (μ, α/(α+β)) or, for mixed models,
    the fixed effects (group effects at zero).
:class:`NewRows`
    Mixed models: rows of covariates. Each row's level of each grouping factor is looked up:
    a level in the fit uses its posterior effects, a level not in the fit gets effects drawn
    from the population (one draw per level, shared by its rows), and a missing level none.
    ``groups="new"`` treats every level as new, ``groups="population"`` uses no group
    effects at all.

Every answer is a :class:`Prediction`: the request, a sentence saying what was drawn, the
draws in an :class:`xarray.Dataset` shaped (chain, draw, ...), and ``summary()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from poolwise.exceptions import SpecificationError
from poolwise.results.summary import SUMMARY_COLUMNS, check_prob, posterior_summary

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["REQUESTS", "ExistingGroup", "NewGroup", "NewGroupIn", "NewRows", "Population",
           "Prediction", "Request", "check_size", "find_label", "prediction_dataset"]


@dataclass(frozen=True)
class ExistingGroup:
    """New data from ``group``, a group in the fit (see the module docstring).

    ``factor`` picks the grouping factor of a mixed model with several.
    """

    group: str
    size: float | None = None
    factor: str | None = None


@dataclass(frozen=True)
class NewGroup:
    """A group not in the fit, drawn from the population; ``y`` its own data if any."""

    size: float | None = None
    y: float | None = None


@dataclass(frozen=True)
class NewGroupIn:
    """A new group inside ``parent``, a group in the fit (a new experiment in a known lab)."""

    parent: str
    size: float | None = None


@dataclass(frozen=True)
class Population:
    """The population level: its mean, or (mixed models) the fixed effects."""


@dataclass(frozen=True, eq=False)
class NewRows:
    """Rows of covariates for a mixed model; ``groups`` says how their levels are read:
    ``"as-given"`` (levels in the fit keep their effects, others are drawn as new),
    ``"new"`` (every level drawn as new) or ``"population"`` (no group effects)."""

    data: pd.DataFrame
    groups: str = "as-given"

    def __post_init__(self) -> None:
        if not isinstance(self.data, pd.DataFrame):
            raise SpecificationError(
                f"NewRows needs a pandas DataFrame of rows, not {type(self.data).__name__}")
        if self.groups not in NEW_ROW_GROUPS:
            raise SpecificationError(
                f"NewRows(groups={self.groups!r}): valid are {', '.join(NEW_ROW_GROUPS)}")


NEW_ROW_GROUPS = ("as-given", "new", "population")
Request = ExistingGroup | NewGroup | NewGroupIn | Population | NewRows
#: every kind of request, in the order they are listed to users
REQUESTS: tuple[type, ...] = (ExistingGroup, NewGroup, NewGroupIn, Population, NewRows)


def find_label(labels: Iterable[Any], label: Any, what: str, hint: str = "") -> int:
    """The position of ``label`` among ``labels`` (compared as text), or an error naming
    what is missing and listing the first labels: ``no group 'Z' in the fit; its group
    labels: 'A', 'B', …``; ``hint`` says what to do instead."""
    texts = [str(value) for value in labels]
    if str(label) in texts:
        return texts.index(str(label))
    shown = ", ".join(repr(text) for text in texts[:8])
    more = f", … ({len(texts)} in all)" if len(texts) > 8 else ""
    raise SpecificationError(f"no {what} {label!r} in the fit; its {what} labels: {shown}"
                             f"{more}" + (f". {hint}" if hint else ""))


def check_size(size: float | None, what: str, *, whole: bool = False) -> float | None:
    """A prediction's size (trials, exposure, observations, standard error): > 0 and finite,
    whole when ``whole``; None stays None."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)) \
            or not np.isfinite(size) or size <= 0:
        raise SpecificationError(f"the {what} must be a number > 0, got {size!r}")
    if whole and float(size) != round(float(size)):
        raise SpecificationError(f"the {what} must be a whole number, got {size!r}")
    return float(size)


@dataclass(frozen=True)
class Prediction:
    """The answer to a request: draws shaped (chain, draw, ...) and what they mean.

    ``draws`` holds the parameter (``theta``, or a mixed model's ``coef`` or ``mu``) and,
    where data were predicted, ``y``. ``exact`` maps a variable to its closed-form SciPy
    distribution where there is one (empirical Bayes: the hyperparameters are fixed), used by
    :meth:`summary` instead of the draws. ``importance_ess`` is the effective sample size
    of a reweighting by the new group's own data (None when none was done). ``rows`` holds
    the input rows of a :class:`NewRows` request, whose draws run along a ``row`` dimension:
    :meth:`summary` gives each row's number and its input columns beside its predictions.
    """

    request: Any
    description: str
    draws: xr.Dataset
    exact: Mapping[str, Any] = field(default_factory=dict)
    importance_ess: float | None = None
    group_dims: tuple[str, ...] = ()
    rows: pd.DataFrame | None = None

    def __getitem__(self, name: str) -> NDArray[np.float64]:
        """All draws of one variable, chains concatenated: shaped (draws, ...)."""
        if name not in self.draws:
            raise SpecificationError(
                f"the prediction has no {name!r}; it has {', '.join(map(str, self.draws))}")
        values = np.asarray(self.draws[name].values, dtype=float)
        return values.reshape(-1, *values.shape[2:])

    def summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """Mean, sd and equal-tailed interval of each predicted quantity, in the columns of
        a fit's summary (closed form where :attr:`exact` has it)."""
        check_prob(ci_prob)
        table = posterior_summary(self.draws, ci_prob, diagnostics=False,
                                  group_dims=("row",) if self.rows is not None
                                  else self.group_dims)
        tail = (1 - ci_prob) / 2
        for name, dist in self.exact.items():
            rows = table["param"] == name
            table.loc[rows, ["mean", "sd", "lower", "upper"]] = [
                float(dist.mean()), float(dist.std()), float(dist.ppf(tail)),
                float(dist.ppf(1 - tail))]
        table = table.dropna(axis=1, how="all")
        if self.rows is None:
            return table
        number = table.pop("group").astype(int)
        given = self.rows.reset_index(drop=True)
        given.columns = [f"input_{c}" if c in SUMMARY_COLUMNS or c == "row" else str(c)
                         for c in given.columns]
        beside = given.iloc[number.to_numpy()].reset_index(drop=True)
        return pd.concat([table[["param"]], number.rename("row").reset_index(drop=True),
                          beside, table.drop(columns="param").reset_index(drop=True)], axis=1)

    def brief(self, ci_prob: float = 0.95) -> dict[str, float]:
        """A prediction of one θ as a flat record: θ's ``mean``, ``sd``, ``lower``,
        ``upper`` and, when data were predicted, ``y_mean``, ``y_lower``, ``y_upper`` (the
        keys of the command line's JSON). Refused for predictions without a scalar θ."""
        table = self.summary(ci_prob)
        table = table[table["param"].isin(["theta", "y"])].set_index("param")
        if "theta" not in table.index or table.index.duplicated().any():
            raise SpecificationError("brief() is for a prediction of one θ (and its y); "
                                     "use summary()")
        out = {k: float(table.loc["theta", k]) for k in ("mean", "sd", "lower", "upper")}
        if "y" in table.index:
            out |= {f"y_{k}": float(table.loc["y", k]) for k in ("mean", "lower", "upper")}
        return out


def prediction_dataset(variables: Mapping[str, tuple[NDArray, list[str]]], chains: int,
                       coords: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Flat draws (n, ...) of each variable as (chain, draw, ...) in a Dataset."""
    data_vars = {}
    for name, (values, dims) in variables.items():
        values = np.asarray(values, dtype=float)
        data_vars[name] = (("chain", "draw", *dims),
                           values.reshape(chains, -1, *values.shape[1:]))
    dataset = xr.Dataset(data_vars)
    used = {d for _, dims in variables.values() for d in dims}
    return dataset.assign_coords({k: v for k, v in (coords or {}).items() if k in used})
