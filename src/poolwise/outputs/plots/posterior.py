"""Distributions of one quantity: a new group's θ, the population mean μ, or any scalar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.outputs.plots._style import (
    BLUE,
    GREY,
    VERMILLION,
    check_fit,
    describe,
    figure_and_axes,
    format_count,
    format_value,
    percent,
    style,
)
from poolwise.results.prediction import NewGroup

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: points of the density curves
GRID_POINTS = 400


@dataclass(frozen=True)
class NewGroupData:
    """What :func:`plot_new_group` draws.

    ``kind`` is ``"posterior"`` for a new group with data (y, n) and ``"predictive"`` for
    a brand-new group; ``summary`` has mean, sd, lower and upper of θ (and of the
    predicted count when n was given alone); ``curve`` is the closed-form density of θ on
    a grid when there is one (fixed hyperparameters), else None.
    """

    theta: NDArray[np.float64]
    summary: dict[str, float]
    kind: Literal["posterior", "predictive"]
    y: float | None
    n: float | None
    ci_prob: float
    curve: tuple[NDArray[np.float64], NDArray[np.float64]] | None


def new_group_data(
    fit: ConjugateFit,
    *,
    y: float | None = None,
    n: float | None = None,
    ci_prob: float = 0.95,
    seed: int | None = None,
) -> NewGroupData:
    """Draws and summary of θ for a group that was not in the fit.

    Parameters
    ----------
    fit
        A fitted model.
    y, n
        The new group's count and size. With both: the posterior of its θ given these
        data. With neither (or n alone): the predictive distribution of θ for a brand-new
        group (:class:`~poolwise.results.prediction.NewGroup`).
    ci_prob
        Probability of the equal-tailed interval.
    seed
        Seed of the draws; default the fit's own (its prediction stream).

    Returns
    -------
    NewGroupData
        See :class:`NewGroupData`.
    """
    fit = check_fit(fit)
    new = fit.predict(NewGroup(size=n, y=y), seed=seed)
    summary = new.brief(ci_prob)
    theta = new["theta"]
    curve = None
    if "theta" in new.exact:
        lo, hi = np.quantile(theta, [0.0005, 0.9995])
        grid = np.linspace(lo, hi, GRID_POINTS)
        curve = (grid, np.asarray(new.exact["theta"].pdf(grid), dtype=float))
    kind: Literal["posterior", "predictive"] = "posterior" if y is not None else "predictive"
    return NewGroupData(theta, summary, kind, y, n, ci_prob, curve)


def _legend_clear_of(ax: Axes, centre: float) -> None:
    """Leave headroom above the density and put the legend on the side away from its bulk."""
    low, high = ax.get_xlim()
    ax.set_ylim(0, 1.45 * ax.get_ylim()[1])
    ax.legend(loc="upper left" if centre > (low + high) / 2 else "upper right")


def _interval_bar(ax: Axes, lower: float, upper: float, label: str) -> None:
    """A thick bar on the x axis for an interval (drawn below the histogram)."""
    ax.plot([lower, upper], [0, 0], color="black", lw=5, solid_capstyle="butt",
            label=label, zorder=5, clip_on=False)


def plot_new_group(
    fit: ConjugateFit,
    *,
    y: float | None = None,
    n: float | None = None,
    ci_prob: float = 0.95,
    ax: Axes | None = None,
) -> Figure:
    """Histogram of θ for a new group, with its mean and interval marked.

    With ``y`` and ``n`` the title says it is the posterior for a new group with data
    (the lecture's 71st rat experiment, 4 tumours in 14 rats); without them it is the
    predictive distribution of θ for a brand-new group (a new SpaceX launcher).

    Parameters
    ----------
    fit
        A fitted model.
    y, n
        The new group's data; see :func:`new_group_data`.
    ci_prob
        Probability of the interval, default 0.95.
    ax
        Axes to draw into; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.
    """
    data = new_group_data(fit, y=y, n=n, ci_prob=ci_prob)
    family = fit.model.family
    s = data.summary
    with style():
        fig, ax = figure_and_axes(ax, (7.0, 4.6))
        lo, hi = np.quantile(data.theta, [0.0005, 0.9995])
        ax.hist(data.theta, bins=60, range=(lo, hi), density=True, color=BLUE, alpha=0.45,
                label=f"{data.theta.size:,} draws")
        if data.curve is not None:
            ax.plot(*data.curve, color=BLUE, lw=1.6, label="exact density")
        ax.axvline(s["mean"], color=VERMILLION, lw=1.6, label=f"mean {format_value(s['mean'])}")
        _interval_bar(ax, s["lower"], s["upper"], f"{percent(ci_prob)} interval "
                      f"[{format_value(s['lower'])}, {format_value(s['upper'])}]")
        if "y_mean" in s and n is not None:
            ax.plot([], [], " ", label=(
                f"predicted y for n = {format_count(n)}: mean {s['y_mean']:.3g}, "
                f"{percent(ci_prob)} [{s['y_lower']:.0f}, {s['y_upper']:.0f}]"))
        ax.set_xlabel(family.theta_label)
        ax.set_ylabel("density")
        ax.set_yticks([])
        _legend_clear_of(ax, float(np.median(data.theta)))
        group = fit.data.group_name
        if data.kind == "posterior":
            title = (f"Posterior of θ for a new {group} with y = {format_count(float(y or 0))}"
                     f" in n = {format_count(float(n or 0))} {family.size_label}")
        else:
            title = f"Predictive θ for a brand-new {group} (no data yet)"
        ax.set_title(f"{title}\n{describe(fit)}")
    return fig


@dataclass(frozen=True)
class PopulationMeanData:
    """What :func:`plot_population_mean` draws.

    ``draws`` are posterior draws of μ (full Bayes) or draws of the estimate from its
    approximate sampling distribution (empirical Bayes; ``source == "sampling"``); they
    are empty for an empirical-Bayes estimate without a covariance (``"point"``).
    ``grid`` and ``density`` trace the density of μ, estimated by a kernel density on the
    unconstrained scale (logit μ or log μ) carried back with the Jacobian, as
    :meth:`~poolwise.kinds.conjugate.ConjugateFit.population_mean` does for the MAP.
    ``summary`` is that method's result (mean, sd, lower, upper, map).
    """

    draws: NDArray[np.float64]
    grid: NDArray[np.float64]
    density: NDArray[np.float64]
    summary: dict[str, float]
    source: Literal["posterior", "sampling", "point"]
    ci_prob: float


def population_mean_data(fit: ConjugateFit, *, ci_prob: float = 0.95) -> PopulationMeanData:
    """Draws, density and summary of the population mean μ.

    Parameters
    ----------
    fit
        A partial-pooling fit (no and complete pooling have no population distribution;
        :class:`~poolwise.exceptions.SpecificationError` is raised for them).
    ci_prob
        Probability of the equal-tailed interval.

    Returns
    -------
    PopulationMeanData
        See :class:`PopulationMeanData`.
    """
    fit = check_fit(fit)
    summary = fit.population_mean(ci_prob)  # raises for no and complete pooling
    family = fit.model.family
    empty = np.array([], dtype=float)
    if fit.eb is not None:
        if fit.eb.uv_covariance is None:
            return PopulationMeanData(empty, empty, empty, summary, "point", ci_prob)
        sampled = fit.eb_sampling_draws()
        assert sampled is not None  # the estimates have a covariance
        u = np.asarray(family.to_uv(*sampled)[0])
        source: Literal["posterior", "sampling"] = "sampling"
    else:
        hyper = fit.hyperparameter_draws()
        assert hyper is not None  # population_mean above raised for complete pooling
        u = np.asarray(family.to_uv(*hyper)[0])
        source = "posterior"
    mu = np.asarray(family.population_mean(*family.from_uv(u, np.zeros_like(u))), dtype=float)
    grid, density = family.population_mean_density(u, GRID_POINTS)
    return PopulationMeanData(mu, grid, density, summary, source, ci_prob)


def plot_population_mean(
    fit: ConjugateFit, *, ci_prob: float = 0.95, ax: Axes | None = None
) -> Figure:
    """Histogram and density of the population mean μ, with its MAP, mean and interval.

    The MAP (the mode of the density) is the better point estimate for a skewed μ, as
    in the lecture on the SpaceX launches. For empirical Bayes μ is a point estimate; the
    histogram then shows its approximate sampling distribution.

    Parameters
    ----------
    fit
        A partial-pooling fit.
    ci_prob
        Probability of the interval, default 0.95.
    ax
        Axes to draw into; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.
    """
    data = population_mean_data(fit, ci_prob=ci_prob)
    s = data.summary
    family = fit.model.family
    with style():
        fig, ax = figure_and_axes(ax, (7.0, 4.6))
        interval = (f"{percent(ci_prob)} interval "
                    f"[{format_value(s['lower'])}, {format_value(s['upper'])}]")
        if data.source == "posterior":
            # the central 99 % and a margin: a heavy tail's extreme draws would squash the rest
            low, high = np.quantile(data.draws, [0.005, 0.995])
            shown = (low - 0.1 * (high - low), high + 0.1 * (high - low))
            width = (shown[1] - shown[0]) / 60  # a density of all draws, not of those shown
            ax.hist(data.draws, bins=60, range=shown, color=BLUE, alpha=0.4,
                    weights=np.full(data.draws.size, 1.0 / (data.draws.size * width)),
                    label=f"{data.draws.size:,} posterior draws")
            ax.plot(data.grid, data.density, color=BLUE, lw=1.6, label="density (KDE)")
            ax.axvline(s["map"], color=VERMILLION, lw=1.8, label=f"MAP {format_value(s['map'])}")
            if np.isfinite(s["mean"]):
                ax.axvline(s["mean"], color=GREY, lw=1.2, ls="--",
                           label=f"mean {format_value(s['mean'])}")
            else:  # a heavy tail: no mean to draw
                median = float(np.median(data.draws))
                ax.axvline(median, color=GREY, lw=1.2, ls="--",
                           label=f"median {format_value(median)} (no finite mean)")
            _interval_bar(ax, s["lower"], s["upper"], interval)
            ax.set_xlim(*shown)
            what = "posterior of the population mean μ"
        elif data.source == "sampling":
            ax.hist(data.draws, bins=60, range=tuple(np.quantile(data.draws, [5e-4, 1 - 5e-4])),
                    density=True, color=BLUE, alpha=0.4,
                    label="approximate sampling distribution")
            ax.plot(data.grid, data.density, color=BLUE, lw=1.6)
            ax.axvline(s["map"], color=VERMILLION, lw=1.8,
                       label=f"estimate μ̂ = {format_value(s['map'])}")
            _interval_bar(ax, s["lower"], s["upper"], interval.replace("interval",
                                                                       "sampling interval"))
            what = "empirical-Bayes estimate of μ"
        else:  # a point estimate: show it against the observed rates for scale
            raw = family.raw_rate(fit.data.y, fit.data.n)
            ax.plot(raw, np.zeros_like(raw), "|", color=GREY, ms=14, alpha=0.6,
                    label=f"observed {family.raw_label} of each group", clip_on=False)
            ax.axvline(s["map"], color=VERMILLION, lw=1.8,
                       label=f"estimate μ̂ = {format_value(s['map'])}")
            ax.plot([], [], " ", label=f"{fit.method} gives no uncertainty for μ")
            what = "empirical-Bayes point estimate of μ"
        ax.set_ylim(bottom=0)
        ax.set_yticks([])
        ax.set_ylabel("density" if data.source != "point" else "")
        _legend_clear_of(ax, s["map"])
        ax.set_xlabel(f"population mean μ of the {family.theta_label}")
        ax.set_title(f"{what[0].upper() + what[1:]}, over all {fit.data.group_name} groups\n"
                     f"{describe(fit)}")
    return fig


__all__ = [
    "NewGroupData",
    "PopulationMeanData",
    "new_group_data",
    "plot_new_group",
    "plot_population_mean",
    "population_mean_data",
]


@dataclass(frozen=True)
class MarginalData:
    """What :func:`plot_marginal` draws: the draws of one scalar, a Gaussian KDE on a
    grid (reflected at 0 for positive quantities such as τ) and its summary."""

    name: str
    draws: NDArray[np.float64]
    grid: NDArray[np.float64]
    density: NDArray[np.float64]
    summary: dict[str, float]
    ci_prob: float


def marginal_data(fit: ConjugateFit, name: str = "tau", *, ci_prob: float = 0.95) -> MarginalData:
    """The marginal posterior of one scalar hyperparameter (default τ, the between-group sd)."""
    from scipy.stats import gaussian_kde

    fit = check_fit(fit)
    values = fit.draws(name)
    if values.ndim != 2:
        raise SpecificationError(f"{name!r} has one value per group; plot_marginal draws "
                                 "a single quantity such as 'tau' or 'mu'")
    draws = values.ravel()
    tail = (1 - ci_prob) / 2
    summary = {"mean": float(draws.mean()), "median": float(np.median(draws)),
               "lower": float(np.quantile(draws, tail)),
               "upper": float(np.quantile(draws, 1 - tail))}
    kde = gaussian_kde(draws)
    low, high = np.quantile(draws, [0.0005, 0.9995])
    positive = bool(np.all(draws > 0))
    grid = np.linspace(0.0 if positive else float(low), float(high), GRID_POINTS)
    density = kde(grid)
    if positive:  # reflect at zero so the estimate does not leak below the support
        density = density + kde(-grid)
    return MarginalData(name, draws, grid, density, summary, ci_prob)


def plot_marginal(fit: ConjugateFit, name: str = "tau", *, ci_prob: float = 0.95,
                  ax: Axes | None = None) -> Figure:
    """Histogram and density of one hyperparameter's marginal posterior, median and
    interval marked (BDA3 Fig. 5.5 draws τ's for eight schools)."""
    data = marginal_data(fit, name, ci_prob=ci_prob)
    s = data.summary
    with style():
        fig, ax = figure_and_axes(ax, (7.0, 4.4))
        upper = float(np.quantile(data.draws, 0.995))
        shown = data.draws[data.draws <= upper]
        ax.hist(shown, bins=60, density=True, color=BLUE, alpha=0.35,
                label=f"draws (up to the 99.5% quantile, {format_count(shown.size)})")
        keep = data.grid <= upper
        ax.plot(data.grid[keep], data.density[keep], color=BLUE, lw=1.6, label="density")
        ax.axvline(s["median"], color=VERMILLION, lw=1.6,
                   label=f"median {format_value(s['median'])}")
        ax.axvspan(s["lower"], s["upper"], color=GREY, alpha=0.15,
                   label=f"{percent(ci_prob)} interval [{format_value(s['lower'])}, "
                         f"{format_value(s['upper'])}]")
        ax.set_xlabel(name)
        ax.set_ylabel("posterior density")
        ax.set_title(f"Marginal posterior of {name}\n{describe(fit)}")
        ax.legend(loc="upper right")
    return fig
