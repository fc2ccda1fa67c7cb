"""Conditional effects of a mixed model: each predictor across its range, the others held.

The display of brms's ``conditional_effects`` (Bürkner 2017, *J. Stat. Softw.* 80(1)):
for each column of the formula's fixed part, rows are made that vary that column over its
observed range (a numeric column) or its levels (a categorical one) while every other
column stays at a reference value (the mean of a numeric column, the first level of a
categorical one). :meth:`MixedFit.predict` answers those rows at the population level
(``NewRows(rows, groups="population")``: group effects at 0), giving at each draw the mean
response E[y | η] = g⁻¹(xᵀβ) and a new observation y*. The line is the posterior mean of
E[y | η], the dark band its equal-tailed credible interval, the light band the interval of
y* (the predictive interval of a new observation). Binomial models are drawn as
proportions y/n, for a new observation of the median number of trials. A fit reduced out
of core to per-group sums has no rows: its numeric covariates' ranges, means and (when
few) values were collected in the same pass as the sums
(:class:`~poolwise.kinds.mixed.design.CovariateRange`), and its categorical columns' levels
are those of its skeleton table, so the rows made are the same.

>>> import poolwise
>>> from poolwise import plots
>>> sleep = poolwise.datasets.load("sleepstudy")
>>> fit = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)",
...                           method="eb-ml", draws=100).fit(sleep)
>>> effects = plots.conditional_effects_data(fit)
>>> effects.reference
{'Days': 4.5}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from poolwise.exceptions import SpecificationError
from poolwise.kinds.mixed.design import FEW_VALUES
from poolwise.kinds.mixed.model import MixedFit
from poolwise.outputs.plots._style import BLUE, format_value, new_figure, percent, style
from poolwise.results.prediction import NewRows
from poolwise.vocabulary import POOLING_PHRASES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: evenly spaced values of a numeric predictor (its observed values are added when there
#: are at most FEW_VALUES of them)
GRID_POINTS = 60
#: panels per row of the figure
MAX_COLUMNS = 3
#: opacity of the credible and the predictive intervals
BAND_ALPHA, PRED_ALPHA = 0.4, 0.18


@dataclass(frozen=True)
class ConditionalEffects:
    """What :func:`plot_conditional_effects` draws.

    ``table`` has one row per (predictor, value): ``predictor``, ``value`` (the number, or
    the level's label), ``position`` (the number, or the level's place 0, 1, …),
    ``categorical``, and on the response scale the posterior ``mean`` of E[y | η] with its
    credible interval ``lower``/``upper`` and the predictive interval of a new observation
    ``pred_lower``/``pred_upper``. ``reference`` holds the value each column keeps while
    another varies; ``trials`` the trials of a binomial new observation (None otherwise).
    """

    table: pd.DataFrame
    reference: dict[str, Any]
    response: str
    ci_prob: float
    trials: float | None
    description: str


def _is_categorical(column: str, values: pd.Series, formula: str) -> bool:
    """A column the formula codes as categories: text, bool, categorical, or ``C(column)``."""
    kind = values.dtype
    if isinstance(kind, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(kind):
        return True
    if not pd.api.types.is_numeric_dtype(kind):
        return True
    return f"C({column})" in formula.replace(" ", "")


def _levels(values: pd.Series) -> list[Any]:
    """The levels present, in the order the formula codes them (the first is the reference):
    a categorical column's categories, otherwise sorted."""
    present = values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [c for c in values.dtype.categories if (present == c).any()]
    return sorted(present.unique().tolist())


def _grid(minimum: float, maximum: float, observed: Sequence[float]) -> np.ndarray:
    """:data:`GRID_POINTS` values from ``minimum`` to ``maximum`` and the ``observed``
    values (given only when there are at most :data:`FEW_VALUES`)."""
    grid = np.linspace(minimum, maximum, GRID_POINTS)
    return np.union1d(grid, observed) if len(observed) else grid


class _Covariate(NamedTuple):
    """How a covariate enters the panels: categorical or not, the value it keeps while
    another varies (mean or first level), and the values it takes in its own panel."""

    categorical: bool
    reference: Any
    values: list[Any]


def _covariates(fit: MixedFit) -> dict[str, _Covariate]:
    """Each covariate's :class:`_Covariate`, from the rows, or for a fit reduced to sums
    from its covariate ranges and its skeleton's levels."""
    table, formula = fit.data.table, fit.model.formula
    ranges = {r.column: r for r in fit.full_design.ranges}
    out = {}
    for column in fit.model.columns.covariates:
        if _is_categorical(column, table[column], formula):
            levels = _levels(table[column])  # a skeleton holds every level
            out[column] = _Covariate(True, levels[0], levels)
        elif not fit.data.streamed:
            numbers = table[column].to_numpy(dtype=float)
            distinct = np.unique(numbers)
            observed = distinct.tolist() if distinct.size <= FEW_VALUES else []
            out[column] = _Covariate(False, float(table[column].mean()),
                                     list(_grid(numbers.min(), numbers.max(), observed)))
        elif column in ranges:
            known = ranges[column]
            out[column] = _Covariate(False, known.mean, list(_grid(
                known.minimum, known.maximum, known.values)))
        else:  # saved before streamed fits kept their ranges
            fit.full_design.needs_rows(f"conditional effects (the range and mean of "
                                       f"{column!r}, which this saved fit does not hold)")
    return out


def _response_label(fit: MixedFit) -> str:
    design = fit.full_design
    if design.family == "binomial":
        return f"{design.response} (proportion of trials)"
    if design.family == "bernoulli":
        return f"P({design.response} = 1)"
    return design.response


def conditional_effects_data(fit: MixedFit, *, ci_prob: float = 0.95
                             ) -> ConditionalEffects:
    """Population-level predictions along each predictor, the others at reference values.

    Parameters
    ----------
    fit
        A :class:`~poolwise.kinds.mixed.model.MixedFit` with population-level coefficients
        (pooling ``"partial"`` or ``"complete"``), from draws or ``eb-ml``.
    ci_prob
        Probability of the equal-tailed intervals, default 0.95.

    Returns
    -------
    ConditionalEffects
        See :class:`ConditionalEffects`.
    """
    if not isinstance(fit, MixedFit):
        raise TypeError(f"fit must be a poolwise MixedFit, not {type(fit).__name__}")
    if not isinstance(ci_prob, (int, float)) or not 0 < ci_prob < 1:
        raise SpecificationError(f"the interval level must be between 0 and 1, got {ci_prob!r}")
    if fit.model.pooling == "none":
        raise SpecificationError(
            "conditional effects are population-level predictions, which a no-pooling fit "
            "(a separate model per group) does not make; fit pooling 'partial' or 'complete'")
    columns = fit.model.columns
    if not columns.predictors:
        raise SpecificationError(
            f"{fit.model.formula!r} has no predictor in its fixed part to draw effects of; "
            "add one, e.g. y ~ x + (1 | g)")
    table = fit.data.table
    covariates = _covariates(fit)
    reference: dict[str, Any] = {c: known.reference for c, known in covariates.items()}
    base: dict[str, Any] = dict(reference)
    for column in columns.factor_columns:  # ignored at the population level; kept for safety
        base.setdefault(column, table[column].iloc[0])
    trials = None
    if fit.full_design.family == "binomial" and fit.full_design.trials is not None:
        trials = float(max(1, round(float(np.median(fit.full_design.trials)))))
        if columns.trials is not None:
            base[columns.trials] = trials
    parts, frames = [], []
    for column in columns.predictors:
        categorical, values = covariates[column].categorical, covariates[column].values
        rows = pd.DataFrame({name: [value] * len(values) for name, value in base.items()})
        rows[column] = values
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            rows[column] = pd.Categorical(values, categories=table[column].dtype.categories)
        frames.append(rows)
        parts.append(pd.DataFrame({
            "predictor": column,
            "value": pd.Series(values, dtype=object),
            "position": np.arange(len(values), dtype=float) if categorical
            else np.asarray(values, dtype=float),
            "categorical": categorical}))
    prediction = fit.predict(NewRows(pd.concat(frames, ignore_index=True),
                                     groups="population"))
    scale = 1.0 if trials is None else trials
    mu, y = prediction["mu"] / scale, prediction["y"] / scale
    tail = (1 - ci_prob) / 2
    effects = pd.concat(parts, ignore_index=True)
    effects["mean"] = mu.mean(axis=0)
    effects["lower"], effects["upper"] = np.quantile(mu, [tail, 1 - tail], axis=0)
    effects["pred_lower"], effects["pred_upper"] = np.quantile(y, [tail, 1 - tail], axis=0)
    source = f"eb-ml (draws given the {fit.estimate.method} estimates)" \
        if fit.estimate is not None else fit.method
    return ConditionalEffects(
        table=effects, reference=reference, response=_response_label(fit),
        ci_prob=float(ci_prob), trials=trials,
        description=f"{POOLING_PHRASES[fit.model.pooling]}, {source}")


def _held(reference: dict[str, Any], column: str) -> str:
    """"others at Days = 4.5, group = 1" for the panel of ``column``."""
    others = [f"{name} = {format_value(value) if isinstance(value, float) else value}"
              for name, value in reference.items() if name != column]
    return "others at " + ", ".join(others) if others else ""


def plot_conditional_effects(fit: MixedFit, *, ci_prob: float = 0.95) -> Figure:
    """One panel per predictor: the population-level mean response along it, with the
    credible band of that mean and the wider predictive band of a new observation.

    Numeric predictors are drawn as a line and bands, categorical ones as a point per
    level with two intervals. Group effects are set to 0 (a typical group); see
    :func:`conditional_effects_data` for the numbers.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per predictor (grid cells left over are hidden).
    """
    effects = conditional_effects_data(fit, ci_prob=ci_prob)
    table = effects.table
    predictors = list(dict.fromkeys(table["predictor"]))
    ncols = min(len(predictors), MAX_COLUMNS)
    nrows = math.ceil(len(predictors) / ncols)
    interval = percent(effects.ci_prob)
    new = ("a new observation" if effects.trials is None
           else f"a new observation of {effects.trials:g} trials")
    with style():
        fig, axes = new_figure(nrows, ncols, figsize=(0.6 + 3.9 * ncols, 1.4 + 3.3 * nrows),
                               sharey=True)
        for k, column in enumerate(predictors):
            ax = axes.flat[k]
            part = table[table["predictor"] == column]
            x = part["position"].to_numpy(dtype=float)
            mean = part["mean"].to_numpy()
            if bool(part["categorical"].iloc[0]):  # a point per level, two intervals
                for low, high, width, alpha in (("pred_lower", "pred_upper", 9, PRED_ALPHA),
                                                ("lower", "upper", 4, BAND_ALPHA)):
                    ax.vlines(x, part[low], part[high], color=BLUE, lw=width, alpha=alpha)
                ax.plot(x, mean, "o", color=BLUE, ms=7, zorder=4)
                ax.set_xticks(x, [str(v) for v in part["value"]])
                ax.set_xlim(x.min() - 0.6, x.max() + 0.6)
                ax.grid(False, axis="x")
            else:
                ax.fill_between(x, part["pred_lower"], part["pred_upper"], color=BLUE,
                                alpha=PRED_ALPHA, lw=0)
                ax.fill_between(x, part["lower"], part["upper"], color=BLUE,
                                alpha=BAND_ALPHA, lw=0)
                ax.plot(x, mean, color=BLUE, lw=2)
            ax.set_xlabel(column)
            held = _held(effects.reference, column)
            if held:
                ax.set_title(held, fontsize=9)
        for k in range(len(predictors), nrows * ncols):
            axes.flat[k].set_visible(False)
        for row in range(nrows):
            axes[row, 0].set_ylabel(effects.response)
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        kinds = set(table["categorical"])
        handles = [
            Line2D([], [], color=BLUE, lw=2, ls="-" if False in kinds else "none",
                   marker="o" if True in kinds else None,
                   label="posterior mean of E[y]"),
            Patch(color=BLUE, alpha=BAND_ALPHA, lw=0,
                  label=f"{interval} credible interval of E[y]"),
            Patch(color=BLUE, alpha=PRED_ALPHA, lw=0,
                  label=f"{interval} predictive interval of {new}")]
        fig.legend(handles=handles, loc="outside lower center",
                   ncol=3 if ncols > 1 else 1, frameon=False)
        fig.suptitle(f"Conditional effects on {effects.response} "
                     f"(population level: group effects at 0)\n{effects.description}")
    return fig


__all__ = ["ConditionalEffects", "conditional_effects_data", "plot_conditional_effects"]
