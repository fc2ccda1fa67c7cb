"""``calibration.png``: what a calibration (:mod:`poolwise.kinds.calibration`) found.

Simulation-based calibration: one panel per ranked parameter, the ECDF of its normalised
ranks less the uniform's, F_R(z) − z, inside the simultaneous band of Säilynoja, Bürkner &
Vehtari (2022) at :data:`~poolwise.kinds.calibration.BAND_PROB`; a calibrated method stays
inside every band but rarely. Empirical Bayes: the coverage of the group intervals at each
level against the nominal one, with ±2 standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from poolwise.kinds.calibration import BAND_PROB, simultaneous_band
from poolwise.outputs.plots._style import BLUE, GREY, VERMILLION, new_figure, style

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from poolwise.kinds.calibration import Calibration

__all__ = ["EcdfPanel", "calibration_data", "plot_calibration"]

#: panels per row
COLUMNS = 4


@dataclass(frozen=True)
class EcdfPanel:
    """One parameter's ECDF difference F_R(z) − z at z = i/R and its band's ends (less z)."""

    param: str
    z: NDArray
    difference: NDArray
    lower: NDArray
    upper: NDArray
    p_value: float
    flagged: bool


def calibration_data(calibration: Calibration) -> list[EcdfPanel]:
    """The panels of an SBC calibration (none for a coverage check)."""
    if calibration.mode != "sbc":
        return []
    z, lower, upper = simultaneous_band(calibration.reps)
    panels = []
    for row in calibration.table.itertuples():
        values = np.sort(calibration.pit[str(row.param)])
        ecdf = np.searchsorted(values, z, side="right") / values.size
        panels.append(EcdfPanel(str(row.param), z, ecdf - z, lower - z, upper - z,
                                float(row.p_value), bool(row.flagged)))
    return panels


def plot_calibration(calibration: Calibration) -> Figure:
    """The ECDF-difference panels with their bands, or the coverage of empirical Bayes."""
    with style():
        if calibration.mode != "sbc":
            return _plot_coverage(calibration)
        panels = calibration_data(calibration)
        rows = max(1, math.ceil(len(panels) / COLUMNS))
        cols = min(COLUMNS, max(1, len(panels)))
        fig, axes = new_figure(rows, cols, figsize=(2.6 * cols + 0.6, 2.2 * rows + 0.8),
                               sharex=True)
        for ax, panel in zip(axes.ravel(), panels, strict=False):
            ax.fill_between(panel.z, panel.lower, panel.upper, step="post", color=GREY,
                            alpha=0.25, lw=0)
            ax.step(panel.z, panel.difference, where="post",
                    color=VERMILLION if panel.flagged else BLUE, lw=1.2)
            ax.axhline(0.0, color="black", lw=0.5)
            ax.set_title(f"{panel.param}  (p = {panel.p_value:.2g})", fontsize=9)
        for ax in axes.ravel()[len(panels):]:
            ax.set_visible(False)
        for k in range(cols):  # the lowest panel of each column carries the rank axis
            ax = axes[(len(panels) - 1 - k) // cols, k] if k < len(panels) else axes[0, k]
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("normalised rank")
        for ax in axes[:, 0]:
            ax.set_ylabel("ECDF − uniform")
        fig.suptitle(f"{calibration.kind}, {calibration.method}: {calibration.reps} "
                     f"replications, ranks among {calibration.ranked_draws} draws, "
                     f"{round(100 * BAND_PROB)} % simultaneous bands", fontsize=10)
    return fig


def _plot_coverage(calibration: Calibration) -> Figure:
    table = calibration.table
    fig, axes = new_figure(figsize=(5.0, 3.6))
    ax = axes[0, 0]
    levels = table["level"].to_numpy(dtype=float)
    ax.plot([0.4, 1.0], [0.4, 1.0], color=GREY, lw=0.8, ls="--", label="nominal")
    colours = [VERMILLION if flagged else BLUE for flagged in table["flagged"]]
    ax.errorbar(levels, table["coverage"], yerr=2 * table["se"], fmt="none", ecolor=colours)
    ax.scatter(levels, table["coverage"], color=colours, zorder=3,
               label="observed ± 2 SE")
    ax.set_xlabel("interval probability")
    ax.set_ylabel("coverage of the group intervals")
    low = min(0.4, float(np.min(table["coverage"] - 2 * table["se"])) - 0.05)
    ax.set_xlim(0.4, 1.0)
    ax.set_ylim(max(low, 0.0), 1.0)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{calibration.kind}, {calibration.method}: frequentist coverage, "
                 f"{calibration.reps} replications", fontsize=9)
    return fig
