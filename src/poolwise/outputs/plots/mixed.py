"""Plots of mixed models: each group's data with its fitted lines, and the group effects.

:func:`plot_group_lines` is the sleepstudy figure: one panel per subject with its reaction
times against days of sleep deprivation, and the line each pooling level fits to that
subject — no pooling (a line per subject from its own data), complete pooling (one line for
everybody) and partial pooling (between the two, with its posterior interval as a band).
:func:`plot_group_effects` is a forest of the group effects ``r_<factor>[effect]``.

>>> import poolwise
>>> from poolwise import plots
>>> sleep = poolwise.datasets.load("sleepstudy")
>>> fit = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)",
...                           method="eb-ml", draws=100).fit(sleep)
>>> data = plots.group_lines_data(fit)
>>> data.x, data.factor, len(data.groups)
('Days', 'Subject', 18)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
from poolwise.kinds.mixed.model import MixedFit
from poolwise.outputs.plots._style import (
    GREY,
    PALETTE,
    POOLING_COLOURS,
    draw_intervals,
    interval_limits,
    new_figure,
    percent,
    style,
)
from poolwise.vocabulary import POOLING_PHRASES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INTERCEPT = "Intercept"
#: evenly spaced x values of each fitted line (the observed x values are added when few)
GRID_POINTS = 41
#: up to this many distinct observed x values are added to the grid
MAX_OBSERVED_IN_GRID = 100
#: above this many levels a group-effects forest becomes a caterpillar: no level named
MAX_NAMED_ROWS = 80


def _check_mixed(fit: Any, name: str = "fit") -> MixedFit:
    if not isinstance(fit, MixedFit):
        raise TypeError(f"{name} must be a poolwise MixedFit, not {type(fit).__name__}")
    return fit


def _check_prob(ci_prob: float) -> None:
    if not isinstance(ci_prob, (int, float)) or not 0 < ci_prob < 1:
        raise SpecificationError(f"the interval level must be between 0 and 1, got {ci_prob!r}")


def _as_mixed_fits(fits: MixedFit | Mapping[str, MixedFit]) -> dict[str, MixedFit]:
    if isinstance(fits, MixedFit):
        return {POOLING_PHRASES[fits.model.pooling]: fits}
    if not isinstance(fits, Mapping):
        raise TypeError(
            f"fits must be a MixedFit or a dict {{label: MixedFit}}, not {type(fits).__name__}")
    if not fits:
        raise SpecificationError("fits is empty: give at least one MixedFit")
    return {str(label): _check_mixed(fit, f"fits[{label!r}]") for label, fit in fits.items()}


def _colours(poolings: Mapping[str, str]) -> dict[str, str]:
    """One colour per fit: the pooling level's colour while those are distinct."""
    if len(set(poolings.values())) == len(poolings):
        return {label: POOLING_COLOURS[p] for label, p in poolings.items()}
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(poolings)}


def _show(values: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(str(v)) for v in values[:limit])
    return shown + ("" if len(values) <= limit else f", … ({len(values)} in all)")


# ----------------------------------------------------------------------------- group lines
@dataclass(frozen=True)
class GroupLinesData:
    """What :func:`plot_group_lines` draws.

    ``points`` has one row per observation of a shown group: ``group``, ``x`` and ``y`` (on
    the scale of the lines: the response; for binomial families the proportion y/n; for a
    count model with an offset the rate y/exp(offset)). ``lines`` has one row per (fit,
    group, x of the grid): ``model`` (the fit's label), ``pooling``, ``group``, ``x``, and
    the posterior ``mean``, ``lower`` and ``upper`` of the mean response g⁻¹(η) at that x
    (for an ``eb-ml`` fit the point estimate, with NaN bounds). ``groups`` are the shown
    levels in panel order, ``note`` says which they are; ``poolings`` maps each label to its
    fit's pooling level. ``categories`` is set when x is the 0/1 column of a two-level factor
    (``group[2]``): the factor's name and its two levels, at x = 0 and 1.
    """

    points: pd.DataFrame
    lines: pd.DataFrame
    x: str
    response: str
    factor: str
    groups: tuple[str, ...]
    note: str
    poolings: dict[str, str]
    ci_prob: float
    categories: tuple[str, str, str] | None = None


def _single_term(fit: MixedFit, label: str) -> GroupTerm:
    terms = fit.full_design.terms
    if len(terms) != 1:
        raise SpecificationError(
            f"group lines need a formula with exactly one group term; that of {label!r} "
            f"has {len(terms)}: {', '.join(t.label for t in terms) or 'none'}")
    return terms[0]


def _choose_x(design: MixedDesign, x: str | None) -> str:
    """The slope variable: the one non-intercept fixed column that varies, unless named."""
    candidates = [name for j, name in enumerate(design.fixed_names)
                  if name != INTERCEPT and np.ptp(design.x[:, j]) > 0]
    if x is not None:
        if not isinstance(x, str) or x not in design.fixed_names or x == INTERCEPT:
            raise SpecificationError(
                f"x must name a fixed effect of the formula other than the intercept; "
                f"got {x!r}, the candidates are {', '.join(candidates) or 'none'}")
        return x
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise SpecificationError(
            f"{design.formula!r} has no fixed effect besides the intercept to draw lines "
            "against: add one, e.g. y ~ x + (x | group)")
    raise SpecificationError(
        f"x is ambiguous: the fixed effects {', '.join(candidates)} all vary; in Python name "
        "one, plots.plot_group_lines(fit, x=…) (lines are drawn against one slope variable); "
        "conditional_effects.png shows every predictor")


def _two_levels(fit: MixedFit, x: str) -> tuple[str, str, str] | None:
    """(factor, reference level, other level) when the fixed column ``x`` is the indicator
    ``factor[level]`` of a two-level factor of the data; None for a numeric column."""
    table = fit.data.table
    for column in fit.model.columns.predictors:
        if x.startswith(f"{column}[") or x.startswith(f"C({column})["):
            values = table[column]
            levels = (list(values.cat.categories) if isinstance(values.dtype, pd.CategoricalDtype)
                      else sorted(values.dropna().unique().tolist()))
            if len(levels) == 2:
                return column, str(levels[0]), str(levels[1])
    return None


def _check_supported(fit: MixedFit, label: str, x: str, term: GroupTerm) -> None:
    """Intercept + one slope variable x, group intercepts and/or slopes in x, no offset
    except for the exposure of a count (log-link) model."""
    full = fit.full_design
    allowed = {INTERCEPT, x}
    extra = [n for n in full.fixed_names if n not in allowed]
    if x not in full.fixed_names:
        raise SpecificationError(f"fit {label!r} has no fixed effect {x!r}; its fixed "
                                 f"effects are {', '.join(full.fixed_names)}")
    if extra:
        raise SpecificationError(
            f"group lines are drawn for designs whose fixed effects are an intercept and one "
            f"slope variable ({x}); fit {label!r} also has {', '.join(extra)}")
    other = [n for n in term.names if n not in allowed]
    if other:
        raise SpecificationError(
            f"group lines need group effects on the intercept and {x} only; the term "
            f"{term.label} of fit {label!r} also has {', '.join(other)}")
    if full.offset is not None and full.link != "log":
        raise SpecificationError(
            f"fit {label!r} has an offset; group lines take an offset only as the exposure "
            "of a Poisson or negative binomial model")


def _inverse_link(design: MixedDesign, eta: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy import special

    if design.link == "identity":
        return eta
    if design.link == "log":
        return np.asarray(np.exp(eta))
    return np.asarray(special.expit(eta))


def _observed(design: MixedDesign) -> tuple[NDArray[np.float64], str]:
    """The data on the lines' scale, and its axis label."""
    if design.family == "binomial" and design.trials is not None:
        return design.y / design.trials, f"{design.response} (proportion of trials)"
    if design.link == "log" and design.offset is not None:
        return design.y / np.exp(design.offset), f"{design.response} per unit exposure"
    return design.y, design.response


def _coefficients(fit: MixedFit, x: str, factor: str, levels: tuple[str, ...]
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each level's intercept and slope on the link scale, per draw: (draws, levels) each.

    Sums whatever the pooling level's design has: the common ``b[Intercept]``/``b[x]``, the
    no-pooling coefficients ``b[Intercept[level]]``/``b[x[level]]`` and the group effects
    ``r_<factor>[level, effect]``. An ``eb-ml`` fit gives one "draw": its estimates.
    """
    design = fit.design
    if fit.estimate is not None:
        coefs = list(fit.estimate.fixed_names)
        b = np.asarray(fit.estimate.beta, dtype=float)[None, :]
        modes = fit.estimate.random_effects.get(factor)
        r_effects = list(design.terms[0].names) if modes is not None and design.terms else []
        r = None if modes is None else np.asarray(modes, dtype=float)[None, :, :]
    else:
        coefs = [str(c) for c in fit.posterior["b"].coords["coef"].values]
        b = fit.draws("b").reshape(-1, len(coefs))
        r, r_effects = None, []
        name = f"r_{factor}"
        if name in fit.posterior:
            var = fit.posterior[name].transpose("chain", "draw", factor, f"{factor}_effect")
            var = var.sel({factor: list(levels)})
            r_effects = [str(e) for e in var.coords[f"{factor}_effect"].values]
            r = np.asarray(var.values).reshape(b.shape[0], len(levels), len(r_effects))
    used: set[str] = set()
    out = []
    for effect in (INTERCEPT, x):
        total = np.zeros((b.shape[0], len(levels)))
        if effect in coefs:
            total += b[:, [coefs.index(effect)]]
            used.add(effect)
        per_level = [f"{effect}[{level}]" for level in levels]
        if any(name in coefs for name in per_level):
            total += b[:, [coefs.index(name) for name in per_level]]
            used.update(per_level)
        if r is not None and effect in r_effects:
            total += r[:, :, r_effects.index(effect)]
        out.append(total)
    unused = [c for c in coefs if c not in used]
    if unused:  # the pooling level's design is not intercept + slope per group
        raise SpecificationError(
            f"cannot draw group lines from coefficients {', '.join(unused[:5])} of a "
            f"{fit.model.pooling}-pooling fit")
    return out[0], out[1]


def _select(term: GroupTerm, y: NDArray[np.float64], groups: Sequence[str] | None,
            max_groups: int) -> tuple[list[int], str]:
    levels = list(term.levels)
    if groups is not None:
        if isinstance(groups, str):
            groups = [groups]
        if not groups:
            raise SpecificationError("groups is empty: name at least one group")
        missing = [g for g in groups if str(g) not in levels]
        if missing:
            raise SpecificationError(
                f"unknown {term.factor} {', '.join(repr(str(g)) for g in missing)}; the "
                f"levels are {_show(levels)}")
        plural = "" if len(groups) == 1 else "s"
        return [levels.index(str(g)) for g in groups], f"{len(groups)} chosen level{plural}"
    if not isinstance(max_groups, (int, np.integer)) or max_groups < 1:
        raise SpecificationError(f"max_groups must be an integer ≥ 1, got {max_groups!r}")
    if len(levels) <= max_groups:
        return list(range(len(levels))), f"all {len(levels)} levels"
    sums = np.bincount(term.index, weights=y, minlength=len(levels))
    counts = np.bincount(term.index, minlength=len(levels))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    order = np.argsort(means, kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(levels) - 1, max_groups)).astype(int))
    return ([int(i) for i in order[picks]],
            f"{picks.size} of {len(levels)} levels, evenly spaced by mean response")


def group_lines_data(
    fits: Mapping[str, MixedFit] | MixedFit,
    x: str | None = None,
    *,
    ci_prob: float = 0.95,
    groups: Sequence[str] | None = None,
    max_groups: int = 18,
) -> GroupLinesData:
    """Each group's data and the line each fit gives that group, for :func:`plot_group_lines`.

    The line of group g is the posterior mean (and equal-tailed interval) of the mean
    response g⁻¹(η) with η = (b_Intercept + r_g,Intercept) + (b_x + r_g,x)·x, computed from
    the draws over a grid of x across the observed range. Under no pooling the per-level
    coefficients ``b[Intercept[g]]``, ``b[x[g]]`` take the place of b + r_g; under complete
    pooling there are no group effects.

    Supported designs: one grouping factor, fixed effects an intercept (optional) and one
    slope variable x, group effects on the intercept and/or x (``(1 | g)``, ``(x | g)``,
    ``(x || g)``, ``(0 + x | g)``); any family, the inverse link applied (binomial lines
    and data are proportions); an offset only as the log exposure of a Poisson or negative
    binomial model (lines then are rates per unit exposure). Other designs raise
    :class:`SpecificationError`.

    Parameters
    ----------
    fits
        One :class:`~poolwise.kinds.mixed.model.MixedFit`, or a dict ``{label: MixedFit}`` of fits
        to the same data, typically ``{"none": …, "complete": …, "partial": …}``.
        ``nuts`` fits give intervals, ``eb-ml`` fits a point estimate.
    x
        The slope variable, a fixed-effect column such as ``"Days"``; default the one
        non-intercept fixed effect that varies.
    ci_prob
        Probability of the intervals, default 0.95.
    groups
        Levels to show, in panel order; default all, or ``max_groups`` of them evenly
        spaced by mean response when there are more.
    max_groups
        Most panels when ``groups`` is not given.

    Returns
    -------
    GroupLinesData
        See :class:`GroupLinesData`.
    """
    named = _as_mixed_fits(fits)
    _check_prob(ci_prob)
    first_label, first = next(iter(named.items()))
    for fit in named.values():
        fit.full_design.needs_rows("group lines (each group's rows with its fitted line)")
    term = _single_term(first, first_label)
    full = first.full_design
    x = _choose_x(full, x)
    for label, fit in named.items():
        other = _single_term(fit, label)
        _check_supported(fit, label, x, other)
        design = fit.full_design
        same = (other.factor == term.factor and other.levels == term.levels
                and np.array_equal(other.index, term.index)
                and np.array_equal(design.y, full.y)
                and np.array_equal(design.x[:, design.fixed_names.index(x)],
                                   full.x[:, full.fixed_names.index(x)]))
        if not same:
            raise SpecificationError(
                f"the fits must be fitted to the same data and grouping factor: {label!r} "
                f"differs from {first_label!r}")
    x_values = full.x[:, full.fixed_names.index(x)]
    y_values, response = _observed(full)
    shown, note = _select(term, y_values, groups, max_groups)
    low, high = float(x_values.min()), float(x_values.max())
    categories = _two_levels(first, x)
    grid = np.linspace(low, high, GRID_POINTS)
    distinct = np.unique(x_values)
    if categories is not None:  # a factor: its two levels only, nothing between
        grid = distinct
    elif distinct.size <= MAX_OBSERVED_IN_GRID:
        grid = np.union1d(grid, distinct)
    levels = term.levels
    shown_levels = tuple(levels[i] for i in shown)
    tail = (1 - ci_prob) / 2
    parts = []
    for label, fit in named.items():
        intercept, slope = _coefficients(fit, x, term.factor, levels)
        for i in shown:
            mu = _inverse_link(fit.design, intercept[:, [i]] + slope[:, [i]] * grid[None, :])
            if mu.shape[0] > 1:
                lower, upper = np.quantile(mu, [tail, 1 - tail], axis=0)
            else:
                lower = upper = np.full(grid.size, np.nan)
            parts.append(pd.DataFrame({
                "model": label, "pooling": fit.model.pooling, "group": levels[i], "x": grid,
                "mean": mu.mean(axis=0), "lower": lower, "upper": upper}))
    rows = np.isin(term.index, shown)
    points = pd.DataFrame({"group": np.asarray(levels, dtype=object)[term.index[rows]],
                           "x": x_values[rows], "y": y_values[rows]})
    return GroupLinesData(
        points=points, lines=pd.concat(parts, ignore_index=True), x=x, response=response,
        factor=term.factor, groups=shown_levels, note=note,
        poolings={label: fit.model.pooling for label, fit in named.items()},
        ci_prob=float(ci_prob), categories=categories)


def _legend_label(label: str, poolings: Mapping[str, str]) -> str:
    """A fit labelled by its pooling level ("none") is shown by its phrase ("no pooling")."""
    fit_label, colon, rest = label.partition(": ")
    if poolings.get(fit_label) == fit_label:
        return POOLING_PHRASES[fit_label] + colon + rest
    return label


def _grid_shape(count: int, ncols: int | None) -> tuple[int, int]:
    """Rows and columns of the panels: about √(1.5 × count) columns, rebalanced so the last
    row is as full as the number of rows allows (4 panels: 2 × 2), unless ncols is given."""
    if ncols is not None:
        if not isinstance(ncols, (int, np.integer)) or ncols < 1:
            raise SpecificationError(f"ncols must be an integer ≥ 1, got {ncols!r}")
        ncols = min(int(ncols), count)
        return math.ceil(count / ncols), ncols
    nrows = math.ceil(count / min(count, math.ceil(math.sqrt(1.5 * count))))
    return nrows, math.ceil(count / nrows)


def plot_group_lines(
    fits: Mapping[str, MixedFit] | MixedFit,
    x: str | None = None,
    *,
    ci_prob: float = 0.95,
    groups: Sequence[str] | None = None,
    max_groups: int = 18,
    bands: str | Sequence[str] | None = None,
    ncols: int | None = None,
) -> Figure:
    """One panel per group: its data, and the line each fit gives it (shared axes).

    With the three pooling levels this is the classic sleepstudy figure: the no-pooling
    line follows each subject's own points, the complete-pooling line is the same in every
    panel, and the partial-pooling line lies between, pulled towards the population line
    most for subjects whose own data say least.

    Parameters
    ----------
    fits, x, ci_prob, groups, max_groups
        What to draw; see :func:`group_lines_data`.
    bands
        Labels of the fits whose interval is shaded; default the partial-pooling fits
        (or the fit, when only one is given). ``[]`` shades none.
    ncols
        Panels per row; default about √(1.5 × panels), 6 for 18 panels.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per shown group (grid cells left over are hidden).
    """
    data = group_lines_data(fits, x, ci_prob=ci_prob, groups=groups, max_groups=max_groups)
    labels = list(data.poolings)
    if bands is None:
        banded = [lab for lab in labels if data.poolings[lab] == "partial"]
        if len(labels) == 1:
            banded = labels
    else:
        banded = [bands] if isinstance(bands, str) else list(bands)
        unknown = [b for b in banded if b not in labels]
        if unknown:
            raise SpecificationError(f"bands names unknown fits {', '.join(map(repr, unknown))}; "
                                     f"the fits are {', '.join(map(repr, labels))}")
    colours = _colours(data.poolings)
    count = len(data.groups)
    nrows, ncols = _grid_shape(count, ncols)
    interval = percent(data.ci_prob)
    # legend entries: the data, each fit, each shaded interval; as many per row as fit
    shaded = [lab for lab in banded
              if data.lines.loc[data.lines["model"] == lab, "lower"].notna().any()]
    entries = 1 + len(labels) + len(shaded)
    width = max(4.5, 0.6 + 2.1 * ncols)
    legend_cols = max(1, min(entries, int(width // 2.1)))
    legend_height = 0.15 + 0.25 * math.ceil(entries / legend_cols)
    with style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, 0.85 + legend_height + 1.85 * nrows), layout="constrained")
        # the legend gets a strip of its own, so it clears the shared x label
        subfigures = fig.subfigures(2, 1, height_ratios=(0.7 + 1.85 * nrows, legend_height))
        panels, strip = np.asarray(subfigures, dtype=object).ravel()
        axes = panels.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
        handles: dict[str, Any] = {}
        for k, group in enumerate(data.groups):
            ax = axes.flat[k]
            points = data.points[data.points["group"] == group]
            for label in labels:
                line = data.lines[(data.lines["model"] == label) & (data.lines["group"] == group)]
                colour = colours[label]
                if label in shaded and data.categories is not None:  # an interval per level
                    bars = ax.vlines(line["x"], line["lower"], line["upper"], color=colour,
                                     lw=5, alpha=0.3)
                    handles.setdefault(f"{label}: {interval} interval", bars)
                elif label in shaded:
                    patch = ax.fill_between(line["x"], line["lower"], line["upper"],
                                            color=colour, alpha=0.18, lw=0)
                    handles.setdefault(f"{label}: {interval} interval", patch)
                drawn = ax.plot(line["x"], line["mean"], color=colour, lw=1.6,
                                marker=None if data.categories is None else "_", ms=12,
                                ls="--" if data.poolings[label] == "complete" else "-")
                handles.setdefault(label, drawn[0])
            dots = ax.plot(points["x"], points["y"], "o", color="black", ms=3.2, alpha=0.75,
                           zorder=4)
            handles.setdefault("data", dots[0])
            ax.set_title(str(group), fontsize=10, pad=3)
            ax.tick_params(labelsize=8)
        for k in range(count, nrows * ncols):
            axes.flat[k].set_visible(False)
        # sharex hides inner tick labels: show them where no panel is drawn below
        for k in range(count):
            if k + ncols >= count:
                axes.flat[k].tick_params(labelbottom=True)
        x_label = data.x
        if data.categories is not None:  # the levels by name, not an axis from 0 to 1
            x_label = data.categories[0]
            axes.flat[0].set_xticks([0, 1], list(data.categories[1:]))
            axes.flat[0].set_xlim(-0.5, 1.5)
        panels.supxlabel(x_label, fontsize=11)
        panels.supylabel(data.response, fontsize=11)
        order = [h for h in ("data", *labels) if h in handles]
        order += [h for h in handles if h not in order]
        strip.legend([handles[h] for h in order],
                     [_legend_label(h, data.poolings) for h in order],
                     loc="center", ncol=legend_cols, frameon=False)
        fig.suptitle(f"{data.response} against {x_label} by {data.factor}"
                     + ("\n" if width < 9 else " ") + f"({data.note})")
    return fig


# ---------------------------------------------------------------------------- group effects
def _term(fit: MixedFit, term: str | None) -> GroupTerm:
    terms = fit.design.terms
    if not terms:
        raise SpecificationError(
            f"a {POOLING_PHRASES[fit.model.pooling]} fit has no group effects; fit the model "
            "with pooling 'partial'")
    if term is None:
        return terms[0]
    factor = term.removeprefix("r_") if isinstance(term, str) else term
    for candidate in terms:
        if candidate.factor == factor:
            return candidate
    raise SpecificationError(f"no grouping factor {term!r}; the model's factors are "
                             f"{', '.join(t.factor for t in terms)}")


def group_effects_data(
    fit: MixedFit,
    term: str | None = None,
    *,
    ci_prob: float = 0.95,
    sort_by: str | None = None,
) -> pd.DataFrame:
    """Posterior mean and interval of every group effect ``r_<factor>[level, effect]``.

    Parameters
    ----------
    fit
        A partial-pooling :class:`~poolwise.kinds.mixed.model.MixedFit`. An ``eb-ml`` fit gives
        the conditional modes, with NaN intervals.
    term
        The grouping factor, e.g. ``"Subject"`` (or ``"r_Subject"``); default the first.
    ci_prob
        Probability of the equal-tailed intervals, default 0.95.
    sort_by
        The effect whose posterior means order the levels; default the term's first effect
        (usually the intercept). The order is shared by all effects, so each level keeps
        its row across the panels of :func:`plot_group_effects`.

    Returns
    -------
    pandas.DataFrame
        One row per (effect, level), effects in the term's order, with columns ``factor``,
        ``effect``, ``group``, ``row`` (0 for the smallest mean of ``sort_by``), ``mean``,
        ``lower``, ``upper``, on the link scale.
    """
    fit = _check_mixed(fit)
    _check_prob(ci_prob)
    chosen = _term(fit, term)
    factor, effects, levels = chosen.factor, list(chosen.names), list(chosen.levels)
    if sort_by is None:
        sort_by = effects[0]
    if sort_by not in effects:
        raise SpecificationError(f"sort_by must be an effect of {chosen.label}: "
                                 f"{', '.join(effects)}; got {sort_by!r}")
    if fit.estimate is not None:
        mean = np.asarray(fit.estimate.random_effects[factor], dtype=float)
        lower = upper = np.full(mean.shape, np.nan)
    else:
        var = fit.posterior[f"r_{factor}"].transpose("chain", "draw", factor, f"{factor}_effect")
        var = var.sel({factor: levels, f"{factor}_effect": effects})
        draws = np.asarray(var.values).reshape(-1, len(levels), len(effects))
        tail = (1 - ci_prob) / 2
        mean = draws.mean(axis=0)
        lower, upper = np.quantile(draws, [tail, 1 - tail], axis=0)
    order = np.argsort(mean[:, effects.index(sort_by)], kind="stable")
    row = np.empty(len(levels), dtype=int)
    row[order] = np.arange(len(levels))
    parts = [pd.DataFrame({"factor": factor, "effect": effect, "group": levels, "row": row,
                           "mean": mean[:, j], "lower": lower[:, j], "upper": upper[:, j]})
             for j, effect in enumerate(effects)]
    return pd.concat(parts, ignore_index=True)


def plot_group_effects(
    fit: MixedFit,
    term: str | None = None,
    *,
    ci_prob: float = 0.95,
    sort_by: str | None = None,
) -> Figure:
    """Forest of the group effects: one panel per effect, one row per level.

    Levels are sorted by the posterior mean of ``sort_by`` (default the first effect),
    largest at the top, and keep their row in every panel; a dashed line marks 0, the
    population value. Above :data:`MAX_NAMED_ROWS` levels the forest becomes a caterpillar
    of fixed height with no level named; an extreme interval runs past the edge (arrow)
    rather than squash the others.

    Parameters
    ----------
    fit, term, ci_prob, sort_by
        See :func:`group_effects_data`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per effect of the term.
    """
    table = group_effects_data(fit, term, ci_prob=ci_prob, sort_by=sort_by)
    factor = str(table["factor"].iloc[0])
    effects = list(dict.fromkeys(table["effect"]))
    count = int(table["row"].max()) + 1
    many = count > MAX_NAMED_ROWS  # a caterpillar: every level, sorted, none named
    fontsize = 10 if count <= 30 else 8
    past = 0
    with style():
        fig, axes = new_figure(1, len(effects), sharey=True,
                               figsize=(max(6.0, 1.2 + 3.4 * len(effects)),
                                        6.5 if many else min(1.8 + 0.24 * count, 30.0)))
        for j, effect in enumerate(effects):
            ax = axes[0, j]
            part = table[table["effect"] == effect]
            ax.axvline(0, color=GREY, ls="--", lw=1)
            limits = interval_limits(np.append(part["mean"], 0.0), part["lower"],
                                     part["upper"])
            if part["lower"].notna().any():
                past += draw_intervals(ax, part["row"], part["lower"], part["upper"], limits,
                                       color=PALETTE[0], alpha=0.5 if many else 0.9,
                                       lw=max(0.4, min(1.6, 300 / count)))
            ax.plot(part["mean"], part["row"], "o", color=PALETTE[0],
                    ms=1.5 if many else 4)
            ax.set_title(f"r_{factor}[{effect}]", fontsize=11)
            ax.grid(False, axis="y")
            ax.set_xlabel("effect" if fit.design.link == "identity"
                          else f"effect ({fit.design.link} scale)")
        if many:
            axes[0, 0].set_ylabel(f"{factor}: {count:,} levels by rank of {sort_by or effects[0]}")
        else:
            rows = table.drop_duplicates("row").sort_values("row")
            axes[0, 0].set_yticks(rows["row"], rows["group"].astype(str), fontsize=fontsize)
            axes[0, 0].set_ylabel(factor)
        axes[0, 0].set_ylim(-0.5, count - 0.5)
        what = (f"{percent(ci_prob)} posterior intervals" if fit.estimate is None
                else "conditional modes (eb-ml)")
        shown = (f"all {count:,} levels, sorted by {sort_by or effects[0]}"
                 + ("; levels not named" if many else ""))
        beyond = "" if not past else (
            f"; {past} interval{' runs' if past == 1 else 's run'} past the edge (arrow)")
        fig.suptitle(f"Group effects by {factor}\n{what}, {shown}{beyond}")
    return fig


__all__ = [
    "GroupLinesData",
    "group_effects_data",
    "group_lines_data",
    "plot_group_effects",
    "plot_group_lines",
]
