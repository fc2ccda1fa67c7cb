"""The rank plot: each group's posterior rank with its interval, and P(best).

Groups are sorted by their mean rank (1 the best). With more than ``max_groups`` groups the
best and the worst halves of that many are drawn and the title says how many are left out,
so the plot reads the same for 8 schools and for 3,109 counties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from poolwise.exceptions import SpecificationError
from poolwise.outputs.plots._style import BLUE, GREY, VERMILLION, new_figure, percent, style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from poolwise.results.fit import Fit

__all__ = ["RankData", "plot_ranks", "rank_data"]


@dataclass(frozen=True)
class RankData:
    """What :func:`plot_ranks` draws: ``table`` (the rows of
    :func:`~poolwise.results.decisions.ranks` shown, best first), how many groups there are
    and how many were left out, and whether higher is better."""

    table: pd.DataFrame
    groups: int
    left_out: int
    higher: bool
    ci_prob: float


def rank_data(fit: Fit, *, higher: bool = True, parameter: str | None = None,
              ci_prob: float = 0.95, max_groups: int = 40, draws: int | None = None
              ) -> RankData:
    """The ranks of :meth:`Fit.ranks <poolwise.results.fit.Fit.ranks>` (at ``draws``
    draws when given), best first, cut to the ``max_groups`` best and worst."""
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 2:
        raise SpecificationError(f"max_groups must be an integer ≥ 2, got {max_groups!r}")
    table = fit.ranks(higher=higher, parameter=parameter, ci_prob=ci_prob, draws=draws)
    table = table.sort_values("rank_mean", kind="stable").reset_index(drop=True)
    groups = len(table)
    if groups > max_groups:
        half = max_groups // 2
        table = pd.concat([table.head(half), table.tail(max_groups - half)],
                          ignore_index=True)
    return RankData(table, groups, groups - len(table), higher, ci_prob)


def plot_ranks(fit: Fit, *, higher: bool = True, parameter: str | None = None,
               ci_prob: float = 0.95, max_groups: int = 40, draws: int | None = None
               ) -> Figure:
    """Each group's mean rank and ``ci_prob`` interval (left) and P(best) (right)."""
    data = rank_data(fit, higher=higher, parameter=parameter, ci_prob=ci_prob,
                     max_groups=max_groups, draws=draws)
    table = data.table
    rows = np.arange(len(table))[::-1]  # the best at the top
    from matplotlib.ticker import FuncFormatter

    with style():
        fig, axes = new_figure(1, 2, figsize=(10.0, 1.2 + 0.24 * len(table)),
                               gridspec_kw={"width_ratios": (2.2, 1.0)}, sharey=True)
        left, right = axes[0]
        left.hlines(rows, table["rank_lower"], table["rank_upper"], color=BLUE, lw=3,
                    alpha=0.5, label=f"{percent(data.ci_prob)} interval")
        left.plot(table["rank_mean"], rows, "o", color="black", ms=4, label="mean rank")
        left.set_yticks(rows, [str(g) for g in table["group"]], fontsize=8)
        left.set_xlabel(f"rank (1 = {'highest' if data.higher else 'lowest'} "
                        f"{table['param'].iloc[0]})")
        left.set_xlim(0.5, data.groups + 0.5)
        # ranks are counts: 20,000 on the axis, not 2 with a ×1e4 offset
        left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        if data.left_out:  # where the groups left out would be
            gap = rows[len(table) // 2] + 0.5
            for ax in (left, right):
                ax.axhline(gap, color=GREY, ls="--", lw=0.8)
            left.text(0.99, gap, f"{data.left_out:,} groups not shown ", ha="right",
                      va="center", fontsize=8, color=GREY, transform=left.get_yaxis_transform(),
                      bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        left.grid(axis="y", visible=False)
        right.barh(rows, table["p_best"], color=VERMILLION, alpha=0.7, label="P(best)")
        right.barh(rows, -table["p_worst"], color=GREY, alpha=0.5, label="P(worst)")
        right.axvline(0.0, color="black", lw=0.6)
        right.set_xlim(-1.0, 1.0)
        right.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0], ["1", "0.5", "0", "0.5", "1"])
        right.set_xlabel("P(worst)  |  P(best)")
        handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
        fig.legend(handles, [str(h.get_label()) for h in handles], loc="outside lower center",
                   ncol=4, fontsize=8, frameon=False)
        best = len(table) // 2
        shown = (f"the best {best} and worst {len(table) - best} of {data.groups:,} groups"
                 if data.left_out else f"{data.groups:,} groups")
        draws = int(table["rank_draws"].iloc[0])
        fig.suptitle(f"posterior ranks of {table['param'].iloc[0]}: {shown}, from {draws:,} "
                     "draws")
    return fig
