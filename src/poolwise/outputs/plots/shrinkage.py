"""Shrinkage: how far each group's estimate moves from its raw rate y/n towards the pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.outputs.plots._style import (
    BLUE,
    GREY,
    ORANGE,
    VERMILLION,
    check_fit,
    describe,
    figure_and_axes,
    format_count,
    format_value,
    percent,
    pooling_target,
    sample_marks,
    style,
    target_name,
    theta_table,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: above this many groups the shrinkage plot leaves out the interval bars
MAX_INTERVAL_BARS = 200
#: marker areas (points²) of the smallest and largest group
SIZE_RANGE = (20.0, 180.0)


def shrinkage_data(fit: ConjugateFit, *, ci_prob: float = 0.95) -> pd.DataFrame:
    """Raw rate, posterior mean and shrinkage fraction of every group.

    Parameters
    ----------
    fit
        A fitted model, any pooling level and method.
    ci_prob
        Probability of the equal-tailed posterior interval, default 0.95.

    Returns
    -------
    pandas.DataFrame
        One row per group, in the data's order, with columns ``group``, ``y``, ``n``,
        ``raw`` (y/n), ``mean``, ``lower``, ``upper`` (posterior mean and interval of θ),
        ``target`` (what estimates are pulled towards: the population mean μ under partial
        pooling, the shared θ under complete pooling, NaN under no pooling) and
        ``shrinkage`` = (raw − mean) / (raw − target).

    Notes
    -----
    The shrinkage fraction is 0 for an estimate left at its raw rate and 1 for one pulled
    all the way to the target. With empirical Bayes it is exactly the weight of the prior
    in the conjugate posterior mean, (α+β)/(α+β+n_j) for the beta-binomial and β/(β+E_j)
    for the gamma-Poisson family (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §5.3).
    It is undefined (NaN) for a group whose raw rate equals the target.
    """
    fit = check_fit(fit)
    data = fit.data
    raw = fit.model.family.raw_rate(data.y, data.n)
    table = theta_table(fit, ci_prob)
    target = pooling_target(fit)
    target_value = np.nan if target is None else target[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = (raw - table["mean"].to_numpy()) / (raw - target_value)
    fraction = np.where(raw == target_value, np.nan, fraction)
    return pd.DataFrame({
        "group": data.labels,
        "y": data.y,
        "n": data.n,
        "raw": raw,
        "mean": table["mean"].to_numpy(),
        "lower": table["lower"].to_numpy(),
        "upper": table["upper"].to_numpy(),
        "target": target_value,
        "shrinkage": fraction,
    })


def marker_sizes(n: NDArray[np.float64], reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Marker areas for group sizes ``n``, scaled over the range of ``reference``.

    Linear in n when sizes span less than a factor 50, in log n otherwise (exposures such
    as county populations span four orders of magnitude).
    """
    n, reference = np.asarray(n, dtype=float), np.asarray(reference, dtype=float)
    positive = reference[reference > 0]
    lo, hi = (positive.min(), positive.max()) if positive.size else (1.0, 1.0)
    if hi <= lo:
        return np.full(n.shape, np.mean(SIZE_RANGE))
    if hi / lo > 50:
        scaled = (np.log(np.clip(n, lo, hi)) - np.log(lo)) / (np.log(hi) - np.log(lo))
    else:
        scaled = (np.clip(n, lo, hi) - lo) / (hi - lo)
    return SIZE_RANGE[0] + scaled * (SIZE_RANGE[1] - SIZE_RANGE[0])


def legend_sizes(n: NDArray[np.float64]) -> list[float]:
    """Two or three round group sizes spanning ``n``, for the marker-size legend."""
    positive = np.asarray(n, dtype=float)
    positive = positive[positive > 0]
    if positive.size == 0:
        return []
    picks = [positive.min(), np.median(positive), positive.max()]
    # two significant digits, so that standard errors below 1 keep their entries
    return sorted({float(f"{value:.2g}") for value in picks})


def plot_shrinkage(fit: ConjugateFit, *, ci_prob: float = 0.95, ax: Axes | None = None) -> Figure:
    """Observed rate y/n against posterior mean, one point per group, with the 45° line.

    Points on the 45° line are not pooled at all; points on the horizontal line at the
    population mean are pooled completely. Marker area grows with the group's size n, so
    that small groups, which shrink most, are easy to tell apart.

    Parameters
    ----------
    fit
        A fitted model, any pooling level and method.
    ci_prob
        Probability of the vertical interval bars (drawn for up to 200 groups).
    ax
        Axes to draw into; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.

    Examples
    --------
    >>> from poolwise import Model, datasets
    >>> rats = datasets.load("rats").query("historical == 1")
    >>> fit = Model(method="eb-moments").fit(rats, y="y", n="n", group="experiment")
    >>> fig = plot_shrinkage(fit)
    """
    fit = check_fit(fit)
    table = shrinkage_data(fit, ci_prob=ci_prob)
    groups = len(table)
    table, drawn = sample_marks(table)
    family = fit.model.family
    many = len(table) > MAX_INTERVAL_BARS
    with style():
        fig, ax = figure_and_axes(ax, (6.6, 6.2))
        raw, mean = table["raw"].to_numpy(), table["mean"].to_numpy()
        spans = [raw, mean]
        if not many:
            ax.vlines(raw, table["lower"], table["upper"], color=BLUE,
                      alpha=0.5 if len(table) < 30 else 0.25, lw=1,
                      zorder=1, label=f"{percent(ci_prob)} posterior interval")
            spans += [table["lower"].to_numpy(), table["upper"].to_numpy()]
        information = family.information(table["n"].to_numpy())
        sizes = marker_sizes(information, information)
        ax.scatter(raw, mean, s=sizes, color=BLUE, alpha=0.35 if many else 0.75,
                   edgecolors="white", linewidths=0.4, zorder=3)
        lo = float(min(np.nanmin(s) for s in spans))
        hi = float(max(np.nanmax(s) for s in spans))
        pad = 0.04 * (hi - lo if hi > lo else 1.0)
        limits = (lo - pad, hi + pad)
        ax.plot(limits, limits, color="black", lw=1, zorder=2,
                label=f"45° line: no pooling (posterior mean = observed {family.raw_label})")
        target = table["target"].iloc[0]
        if np.isfinite(target):
            name = target_name(fit)
            ax.axhline(target, color=VERMILLION, ls="--", lw=1.2, zorder=2,
                       label=f"{name} = {format_value(target)}")
        ax.set_xlim(limits)
        ax.set_ylim(limits)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"observed {family.raw_label}")
        ax.set_ylabel(f"posterior mean of {family.theta_label}")
        ax.set_title(f"Shrinkage by {fit.data.group_name} ({groups:,} groups{drawn})\n"
                     f"{describe(fit)}")
        lines = ax.legend(loc="upper left")
        shown = legend_sizes(table["n"].to_numpy())
        handles = [
            ax.scatter([], [], s=float(marker_sizes(family.information(np.array([v])),
                                                    information)[0]),
                       color=BLUE, alpha=0.75, edgecolors="white")
            for v in shown
        ]
        labels = [format_count(v) for v in shown]
        # outside the axes, where it can hide no point
        ax.legend(handles, labels, title=f"{family.size_label} {family.size_symbol}",
                  loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), labelspacing=1.2, borderpad=0.8, frameon=False)
        ax.add_artist(lines)
    return fig


#: the shortest arrow drawn among many groups, as a fraction of the rates' range
VISIBLE_ARROW = 0.002


@dataclass(frozen=True)
class ShrinkageArrows:
    """What :func:`plot_shrinkage_arrows` draws.

    ``table`` is :func:`shrinkage_data` sorted for drawing, with a ``position`` column: the
    row of each arrow (``layout == "rows"``) or the group's size n (``layout == "size"``).
    """

    table: pd.DataFrame
    layout: Literal["rows", "size"]
    sort_by: Literal["n", "raw"]
    log_size: bool


def shrinkage_arrows_data(
    fit: ConjugateFit,
    *,
    sort_by: Literal["n", "raw"] = "n",
    layout: Literal["auto", "rows", "size"] = "auto",
    max_rows: int = 80,
) -> ShrinkageArrows:
    """Arrows from each group's raw rate to its posterior mean, laid out for drawing.

    Parameters
    ----------
    fit
        A fitted model.
    sort_by
        ``"n"`` (group size) or ``"raw"`` (raw rate): the order of the rows.
    layout
        ``"rows"``: one labelled row per group; ``"size"``: the arrow of each group at the
        height of its size n, which stays readable for thousands of groups (small groups,
        which move most, at the bottom); ``"auto"``: rows up to ``max_rows`` groups.
    max_rows
        Most groups drawn one row each under ``layout="auto"``.

    Returns
    -------
    ShrinkageArrows
        The sorted table (see :func:`shrinkage_data`) with a ``position`` column.
    """
    fit = check_fit(fit)
    if sort_by not in ("n", "raw"):
        raise SpecificationError(f"sort_by must be 'n' or 'raw', got {sort_by!r}")
    if layout not in ("auto", "rows", "size"):
        raise SpecificationError(f"layout must be 'auto', 'rows' or 'size', got {layout!r}")
    if not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise SpecificationError(f"max_rows must be an integer ≥ 1, got {max_rows!r}")
    table = shrinkage_data(fit)
    chosen: Literal["rows", "size"]
    if layout == "auto":
        chosen = "rows" if len(table) <= max_rows else "size"
    else:
        chosen = layout
    keys = ["n", "raw"] if sort_by == "n" else ["raw", "n"]
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    n = table["n"].to_numpy()
    positive = n[n > 0]
    log_size = bool(positive.size and positive.max() / positive.min() > 50)
    if chosen == "rows":
        table["position"] = np.arange(len(table), dtype=float)
    else:
        table["position"] = n
    return ShrinkageArrows(table, chosen, sort_by, log_size)


def plot_shrinkage_arrows(
    fit: ConjugateFit,
    *,
    sort_by: Literal["n", "raw"] = "n",
    layout: Literal["auto", "rows", "size"] = "auto",
    max_rows: int = 80,
    ax: Axes | None = None,
) -> Figure:
    """An arrow per group from its raw rate y/n to its posterior mean.

    Up to ``max_rows`` groups get a labelled row each, sorted by size or raw rate; more
    groups (such as the 3,110 counties of the kidney-cancer data) are drawn all at once,
    each arrow at the height of its group's size, so that the long arrows of small groups
    and the short ones of large groups show how shrinkage depends on n.

    Parameters
    ----------
    fit
        A fitted model.
    sort_by, layout, max_rows
        See :func:`shrinkage_arrows_data`.
    ax
        Axes to draw into; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.
    """
    arrows = shrinkage_arrows_data(fit, sort_by=sort_by, layout=layout, max_rows=max_rows)
    table, drawn = sample_marks(arrows.table)
    family = fit.model.family
    count = len(table)
    rows = arrows.layout == "rows"
    height = 1.6 + 0.17 * count if rows else 6.0
    with style():
        fig, ax = figure_and_axes(ax, (7.5, min(max(height, 3.5), 24.0)))
        from matplotlib.lines import Line2D

        raw, mean, y = (table[c].to_numpy(dtype=float) for c in ("raw", "mean", "position"))
        alpha = 0.85 if count <= 200 else 0.4
        ax.scatter(raw, y, s=14 if rows else 5, facecolors="none", edgecolors=GREY,
                   linewidths=0.8, alpha=alpha, zorder=2)
        handles = [Line2D([], [], ls="none", marker="o", mfc="none", mec=GREY,
                          label=f"observed {family.raw_label}")]
        # at thousands of groups, arrows shorter than VISIBLE_ARROW of the axis would be
        # drawn as coloured dots that hide the circles: their groups show as circles only
        span = float(np.ptp(np.concatenate([raw, mean]))) if count else 0.0
        visible = rows | (np.abs(mean - raw) >= VISIBLE_ARROW * span)
        for up, colour, word in ((True, BLUE, "raised"), (False, ORANGE, "lowered")):
            pick = visible & (mean >= raw if up else mean < raw)
            if not pick.any():
                continue
            ax.quiver(raw[pick], y[pick], (mean - raw)[pick], np.zeros(pick.sum()),
                      angles="xy", scale_units="xy", scale=1, color=colour, alpha=alpha,
                      zorder=3, width=0.004 if rows else 0.002, headwidth=4, headlength=4.5,
                      headaxislength=4, minlength=0.5)
            handles.append(Line2D([], [], color=colour, lw=2, marker=">" if up else "<",
                                  markevery=[1 if up else 0],
                                  label=f"posterior mean ({word})"))
        target = table["target"].iloc[0]
        if np.isfinite(target):
            name = target_name(fit)
            handles.append(ax.axvline(target, color=VERMILLION, ls="--", lw=1.2, zorder=1,
                                      label=f"{name} = {format_value(target)}"))
        size_name = f"{family.size_label} {family.size_symbol}"
        if rows:
            labels = [f"{g}  ({format_count(v)})" for g, v in zip(table["group"], table["n"],
                                                                  strict=True)]
            ax.set_yticks(y, labels, fontsize=9 if count <= 40 else 7)
            ax.set_ylim(count - 0.4, -0.6)
            ax.grid(False, axis="y")
            order = "size" if arrows.sort_by == "n" else "observed rate"
            ax.set_ylabel(f"{fit.data.group_name}  ({size_name}), by {order}")
            title = (f"Shrinkage of each {fit.data.group_name}: {family.raw_label} → "
                     "posterior mean")
        else:
            if arrows.log_size:
                ax.set_yscale("log")
            ax.set_ylabel(size_name + (" (log scale)" if arrows.log_size else ""))
            title = (f"Shrinkage of {'all ' if not drawn else ''}{len(arrows.table):,} groups "
                     f"by {fit.data.group_name}{drawn}: {family.raw_label} → posterior mean")
        ax.set_xlabel(family.theta_label)
        ax.set_title(f"{title}\n{describe(fit)}")
        # "best" searches every artist: quick for a few hundred, slow for thousands, so
        # those put the legend beside the axes, where it covers none of them
        if count <= 200:
            ax.legend(handles=handles, loc="best")
        else:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0.0)
    return fig


__all__ = [
    "ShrinkageArrows",
    "plot_shrinkage",
    "plot_shrinkage_arrows",
    "shrinkage_arrows_data",
    "shrinkage_data",
]
