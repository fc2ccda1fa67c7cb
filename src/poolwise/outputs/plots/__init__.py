"""Plots of a fit, each in two steps: a function that computes what to draw, then a draw.

The ``*_data`` functions return DataFrames or small dataclasses and need no screen or
matplotlib; the ``plot_*`` functions draw them and return a
:class:`matplotlib.figure.Figure` (never shown; save it with ``fig.savefig``).
matplotlib is imported only when a figure is drawn, so importing the plots is light.

>>> from poolwise import Model, datasets, plots
>>> rats = datasets.load("rats").query("historical == 1")
>>> fit = Model(method="eb-moments").fit(rats, y="y", n="n", group="experiment")
>>> table = plots.shrinkage_data(fit)
>>> bool(table["shrinkage"].between(0, 1).all())
True
"""

from poolwise.outputs.plots.checks import (
    CheckPlotData,
    plot_predictive_check,
    predictive_check_data,
)
from poolwise.outputs.plots.effects import (
    ConditionalEffects,
    conditional_effects_data,
    plot_conditional_effects,
)
from poolwise.outputs.plots.forest import forest_data, plot_forest, select_groups
from poolwise.outputs.plots.mixed import (
    GroupLinesData,
    group_effects_data,
    group_lines_data,
    plot_group_effects,
    plot_group_lines,
)
from poolwise.outputs.plots.posterior import (
    MarginalData,
    NewGroupData,
    PopulationMeanData,
    marginal_data,
    new_group_data,
    plot_marginal,
    plot_new_group,
    plot_population_mean,
    population_mean_data,
)
from poolwise.outputs.plots.ranks import RankData, plot_ranks, rank_data
from poolwise.outputs.plots.shrinkage import (
    ShrinkageArrows,
    plot_shrinkage,
    plot_shrinkage_arrows,
    shrinkage_arrows_data,
    shrinkage_data,
)
from poolwise.outputs.plots.trace import TraceData, plot_trace, trace_data

__all__ = [
    "CheckPlotData",
    "ConditionalEffects",
    "GroupLinesData",
    "MarginalData",
    "NewGroupData",
    "PopulationMeanData",
    "RankData",
    "ShrinkageArrows",
    "TraceData",
    "conditional_effects_data",
    "forest_data",
    "group_effects_data",
    "group_lines_data",
    "marginal_data",
    "new_group_data",
    "plot_conditional_effects",
    "plot_forest",
    "plot_group_effects",
    "plot_group_lines",
    "plot_marginal",
    "plot_new_group",
    "plot_population_mean",
    "plot_predictive_check",
    "plot_ranks",
    "plot_shrinkage",
    "plot_shrinkage_arrows",
    "plot_trace",
    "population_mean_data",
    "predictive_check_data",
    "rank_data",
    "select_groups",
    "shrinkage_arrows_data",
    "shrinkage_data",
    "trace_data",
]
