"""The predictive check plot, for every kind: observed data against replicated data.

One row per checked quantity (:class:`~poolwise.results.checks.CheckData`), three panels:

1. the empirical CDF of the observed values (black) over those of replicated data sets
   (blue), the display ArviZ's ``plot_ppc(kind="cumulative")`` uses, which reads the same
   for continuous and discrete data and for any number of values;
2. the replicated distribution of four statistics of the whole data (mean, sd, min, max),
   each with its observed value and Bayesian p-value;
3. the groups: with few groups, each group's observed mean (a dot) against its replicated
   ``ci_prob`` interval, the groups whose p-value is below 0.025 or above 0.975 in
   vermillion; with many, the histogram of the per-group p-values (a display that holds at
   thousands of groups).

The same plot shows a prior predictive check (``stage="prior"``): what the priors imply
for data like these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.outputs.plots._style import BLUE, GREY, VERMILLION, percent, style
from poolwise.results.checks import (
    EXTREME,
    MIN_FLAG_REPLICATES,
    STATISTICS,
    CheckData,
    check_table,
    p_value,
)
from poolwise.results.summary import check_prob

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CheckPlotData", "plot_predictive_check", "predictive_check_data"]

#: replicated data sets drawn over the observed ECDF
OVERLAY = 40
#: up to this many groups are drawn one by one; more get a histogram of their p-values
MAX_GROUP_ROWS = 30
#: values up to which an ECDF steps at every value; past it, at ECDF_GRID points
EXACT_ECDF = 100_000
ECDF_GRID = 2_000
STAGES = ("posterior", "prior")


@dataclass(frozen=True)
class CheckPlotData:
    """What :func:`plot_predictive_check` draws for one quantity.

    ``overlay`` holds the replicated data sets drawn (``OVERLAY`` of them, evenly spaced
    through the draws); ``statistics`` one row per statistic with its observed value,
    the replicated values (``replicated``: statistic → draws) and the p-value; ``groups``
    the per-group rows of :func:`~poolwise.results.checks.check_table` (empty without
    groups).
    """

    check: CheckData
    overlay: NDArray[np.float64]
    statistics: pd.DataFrame
    replicated: dict[str, NDArray[np.float64]]
    groups: pd.DataFrame
    ci_prob: float


def predictive_check_data(checks: Sequence[CheckData], *, ci_prob: float = 0.9,
                          table: pd.DataFrame | None = None) -> list[CheckPlotData]:
    """Compute what the plot shows, one :class:`CheckPlotData` per quantity; ``table``, the
    :func:`~poolwise.results.checks.check_table` of ``checks`` at ``ci_prob`` where it was
    already made (a million groups' rows are not computed twice)."""
    check_prob(ci_prob)
    if not checks:
        raise SpecificationError("nothing to check: the fit gave no replicated data")
    out = []
    for check in checks:
        replicated = np.asarray(check.replicated, dtype=float)
        chosen = np.unique(np.linspace(0, replicated.shape[0] - 1,
                                       min(OVERLAY, replicated.shape[0])).astype(int))
        values = check.statistics()
        rows = []
        for name, function in STATISTICS.items():
            observed = float(function(check.observed[None])[0])
            rows.append({"statistic": name, "observed": observed,
                         "p_value": float(p_value(values[name], observed))})
        own = check_table([check], ci_prob) if table is None else table
        groups = own[(own["variable"] == check.name).to_numpy()
                     & (own["statistic"] == "group mean").to_numpy()]  # one copy of the rows
        out.append(CheckPlotData(check, replicated[chosen], pd.DataFrame(rows), values,
                                 groups.reset_index(drop=True), ci_prob))
    return out


def _ecdf(values: NDArray, grid: NDArray | None = None) -> tuple[NDArray, NDArray]:
    """The empirical CDF of ``values``: at every value, or, with an evenly spaced ``grid``
    (for many values), the fraction below each grid point (one O(N) histogram of equal
    bins, no sort: NumPy sorts the values for bins given by their edges)."""
    x = np.asarray(values, dtype=float)
    if grid is None:
        x = np.sort(x)
        return x, np.arange(1, x.size + 1) / x.size
    counts, _ = np.histogram(x, bins=grid.size - 1, range=(grid[0], grid[-1]))
    below = np.count_nonzero(x < grid[0]) + np.concatenate([[0], np.cumsum(counts)])
    return grid, below / x.size


def _display_range(data: CheckPlotData) -> tuple[float, float]:
    """The 0.2 % and 99.8 % quantiles of observed and overlaid values (of an evenly spaced
    subset past :data:`EXACT_ECDF` values): a few far values (tiny groups' raw rates) would
    squeeze the bulk into a corner."""
    step = max(1, (data.overlay.size + data.check.observed.size) // EXACT_ECDF)
    pooled = np.concatenate([data.overlay.ravel()[::step], data.check.observed[::step]])
    low, high = np.quantile(pooled, [0.002, 0.998])
    return float(low), float(high)


def _draw_overlay(ax: Axes, data: CheckPlotData, stage: str) -> None:
    low, high = _display_range(data)
    pad = 0.04 * (high - low)
    grid = None
    if data.check.observed.size > EXACT_ECDF and high > low:
        grid = np.linspace(low - pad, high + pad, ECDF_GRID)
    for k, replicate in enumerate(data.overlay):
        x, p = _ecdf(replicate, grid)
        ax.step(x, p, where="post", color=BLUE, alpha=0.25, lw=0.8,
                label=f"{stage} predictive" if k == 0 else None)
    x, p = _ecdf(data.check.observed, grid)
    ax.step(x, p, where="post", color="black", lw=1.8, label="observed")
    if high > low:
        ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel(data.check.label or data.check.name)
    ax.set_ylabel("cumulative proportion")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    ax.set_title(f"{data.check.name}: {data.check.observed.size:,} values")


def _draw_statistic(ax: Axes, data: CheckPlotData, row: dict[str, Any]) -> None:
    """The replicated distribution of one statistic, its observed value and p-value."""
    from matplotlib.ticker import MaxNLocator

    name, observed, p = str(row["statistic"]), float(row["observed"]), float(row["p_value"])
    values = data.replicated[name]
    if np.ptp(values) > 0:
        ax.hist(values, bins=30, color=BLUE, alpha=0.6)
    else:
        ax.axvline(float(values[0]), color=BLUE, lw=3, alpha=0.6)
    ax.axvline(observed, color="black", lw=1.6)
    replicates = values.size
    extreme = not 0.025 <= p <= 0.975 and replicates >= MIN_FLAG_REPLICATES
    shown = f"p = {p:.2f}" if replicates >= MIN_FLAG_REPLICATES else \
        f"p = {p:.2f} ({replicates} replicates)"
    ax.set_title(f"{name}: {shown}", fontsize=10, color=VERMILLION if extreme else "black")
    ax.set_yticks([])
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(3))
    # values that differ in the sixth digit (a mean over a million groups) in full, not as
    # an offset such as "1e−6+1.0005e−1" under the axis
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.grid(False)


def _draw_groups(ax: Axes, data: CheckPlotData) -> None:
    from matplotlib.ticker import FuncFormatter

    groups = data.groups
    if groups.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no groups to check", ha="center", va="center", color=GREY,
                transform=ax.transAxes)
        return
    p = groups["p_value"]
    replicates = int(data.check.replicated.shape[0])
    flagged = replicates >= MIN_FLAG_REPLICATES
    extreme = ((p < EXTREME[0]) | (p > EXTREME[1])) & flagged
    summary = (f"{int(extreme.sum())} of {len(groups)} groups with p < {EXTREME[0]} or "
               f"> {EXTREME[1]}" if flagged else
               f"{replicates} replicated data sets: too few to flag groups")
    # one value per group (a rate per group): the "group mean" is the value itself
    what = data.check.label or data.check.name
    if len(groups) != data.check.observed.size:
        what = f"group mean of {what}"
    if len(groups) > MAX_GROUP_ROWS:
        # 20 equal bins on [0, 1] (NumPy's fast path; explicit edges sort every value)
        ax.hist(groups["p_value"].to_numpy(), bins=20, range=(0.0, 1.0), color=BLUE, alpha=0.7)
        for edge in (0.025, 0.975):
            ax.axvline(edge, color=VERMILLION, ls=":", lw=1)
        ax.set_xlabel(f"per-group p-value of the {what}")
        ax.set_ylabel("groups")
        # counts in full (200,000), not with a "1e5" that would sit on the title
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.set_xlim(0, 1)
        ax.set_title(summary, fontsize=10)
        return
    order = np.argsort(groups["observed"].to_numpy(), kind="stable")
    shown = groups.iloc[order].reset_index(drop=True)
    flags = extreme.to_numpy()[order]
    rows = np.arange(len(shown))
    ax.hlines(rows, shown["lower"], shown["upper"], color=BLUE, lw=3, alpha=0.5,
              label=f"{percent(data.ci_prob)} interval")
    ax.plot(shown["observed"], rows, "o", color="black", ms=4, label="observed")
    if flags.any():
        ax.plot(shown["observed"][flags], rows[flags], "o", color=VERMILLION, ms=5)
    ax.set_yticks(rows, [str(g) for g in shown["group"]], fontsize=8)
    ax.set_xlabel(what)
    ax.set_title(summary, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", visible=False)


def plot_predictive_check(checks: Sequence[CheckData], *, ci_prob: float = 0.9,
                          stage: str = "posterior", title: str | None = None,
                          table: pd.DataFrame | None = None) -> Figure:
    """Draw the predictive check of ``checks`` (module docstring); ``stage`` is
    ``"posterior"`` (a fit's replicated data) or ``"prior"`` (the prior predictive);
    ``table`` their check table at ``ci_prob`` where it is at hand."""
    from matplotlib.figure import Figure

    if stage not in STAGES:
        raise SpecificationError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    panels = predictive_check_data(checks, ci_prob=ci_prob, table=table)
    with style():
        fig = Figure(figsize=(15.0, 4.8 * len(panels)), layout="constrained")
        grid = fig.add_gridspec(2 * len(panels), 4, width_ratios=(2.2, 1.0, 1.0, 2.2))
        for k, data in enumerate(panels):
            top, bottom = 2 * k, 2 * k + 2
            _draw_overlay(fig.add_subplot(grid[top:bottom, 0]), data, stage)
            for i, row in enumerate(data.statistics.to_dict("records")):
                _draw_statistic(fig.add_subplot(grid[top + i // 2, 1 + i % 2]), data, row)
            _draw_groups(fig.add_subplot(grid[top:bottom, 3]), data)
        fig.suptitle(title or f"{stage} predictive check: observed data (black) against "
                     f"data replicated from the {stage}")
    return fig

