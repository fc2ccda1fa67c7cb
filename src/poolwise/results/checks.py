"""Predictive checks: observed data against data replicated from the posterior (or prior).

Every model kind reduces its observed and replicated data to :class:`CheckData` — a flat
vector of what was observed, the replicated vectors, and the group of each element — and
everything else is written once here: test statistics T (mean, sd, min, max over all
elements; the mean of each group's elements), their replicated distributions, and the
Bayesian p-value (Gelman, Meng and Stern 1996)

    p = P(T(y_rep) > T(y)) + ½ P(T(y_rep) = T(y)),

the mid-p form, so that discrete data with ties give p = ½ when the model fits, not a
value pushed towards 1. A p-value near 0 or 1 flags a feature of the data the model does
not reproduce. Per-group p-values are many; :func:`check_table` lists them and
:func:`extreme_groups` counts those outside (0.025, 0.975).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise.results.summary import check_prob, posterior_summary, quantile_interval

__all__ = ["CHECK_COLUMNS", "MIN_FLAG_REPLICATES", "STATISTICS", "CheckData",
           "PriorPredictive", "check_table", "describe_extreme", "extreme_groups", "p_value"]

#: statistics of the whole data set, each of an (..., N) array along its last axis
STATISTICS: dict[str, Callable[[NDArray], NDArray]] = {
    "mean": lambda y: np.mean(y, axis=-1),
    "sd": lambda y: (np.std(y, axis=-1, ddof=1) if y.shape[-1] > 1
                     else np.zeros(y.shape[:-1])),
    "min": lambda y: np.min(y, axis=-1),
    "max": lambda y: np.max(y, axis=-1),
}
#: columns of :func:`check_table` (``replicates``: the replicated data sets behind a row)
CHECK_COLUMNS = ["variable", "statistic", "group", "observed", "predictive_mean", "lower",
                 "upper", "p_value", "replicates"]
#: per-group p-values outside this band are counted as extreme
EXTREME = (0.025, 0.975)
#: replicated data sets below which groups are not flagged: from S replicates a p-value of 0
#: comes by chance with probability 1/(S + 1), above 0.025 for S < 40 (at 10^6 groups the
#: check has 10, and would flag 18 % of the groups of a model that fits)
MIN_FLAG_REPLICATES = 40


@dataclass(frozen=True)
class CheckData:
    """One quantity to check: ``observed`` (N,) and ``replicated`` (S, N) draws of it.

    ``groups`` (N,) labels each element's group (None: no per-group statistics);
    ``discrete`` says whether the values are counts (plots draw bars, not densities);
    ``label`` names the quantity on a plot axis (``"y / n"``, ``"Reaction"``);
    ``one_per_group`` says that ``groups`` are distinct (one element a group, a rate per
    group), so that the group means are the elements themselves.
    """

    name: str
    observed: NDArray[np.float64]
    replicated: NDArray[np.float64]
    groups: NDArray[np.str_] | None = None
    discrete: bool = False
    label: str = ""
    one_per_group: bool = False

    def statistics(self) -> dict[str, NDArray[np.float64]]:
        """Each of :data:`STATISTICS` of every replicated data set (S,), computed once per
        check (the table and the plot both read them)."""
        return self._statistics

    @cached_property
    def _statistics(self) -> dict[str, NDArray[np.float64]]:
        replicated = np.asarray(self.replicated, dtype=float)
        return {name: np.asarray(function(replicated), dtype=float)
                for name, function in STATISTICS.items()}

    def group_means(self) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
        """Labels, observed means and replicated means (S, G) of each group's elements, the
        groups in order of first appearance in the data (computed once per check)."""
        return self._group_means

    @cached_property
    def _group_means(self) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
        assert self.groups is not None
        if self.one_per_group:
            return np.asarray(self.groups), self.observed, self.replicated
        from scipy import sparse

        index, labels = pd.factorize(np.asarray(self.groups), sort=False)
        labels = np.asarray(labels)
        if labels.size == index.size:  # one element per group (a rate per group), in order
            return labels, self.observed, self.replicated
        counts = np.bincount(index, minlength=labels.size).astype(float)
        observed = np.bincount(index, weights=self.observed, minlength=labels.size) / counts
        averaging = sparse.csr_array((1.0 / counts[index], (np.arange(index.size), index)),
                                     shape=(index.size, labels.size))
        replicated = np.asarray((averaging.T @ self.replicated.T).T)
        return labels, observed, replicated


def p_value(replicated: NDArray, observed: NDArray | float) -> NDArray[np.float64]:
    """Mid-p Bayesian p-value along axis 0: P(T_rep > T) + ½ P(T_rep = T)."""
    replicated = np.asarray(replicated, dtype=float)
    return np.asarray(np.mean(replicated > observed, axis=0)
                      + 0.5 * np.mean(replicated == observed, axis=0), dtype=float)


def check_table(checks: Sequence[CheckData], ci_prob: float = 0.9) -> pd.DataFrame:
    """Each statistic's observed value, replicated mean and ``ci_prob`` interval, and p-value:
    first the whole-data statistics of every quantity, then the group means."""
    check_prob(ci_prob)
    rows: list[dict[str, Any]] = []
    for check in checks:
        statistics = check.statistics()
        for statistic, function in STATISTICS.items():
            observed = float(function(check.observed[None])[0])
            values = statistics[statistic]
            lower, upper = quantile_interval(values, ci_prob)
            rows.append({"variable": check.name, "statistic": statistic, "group": None,
                         "observed": observed, "predictive_mean": float(np.mean(values)),
                         "lower": float(lower), "upper": float(upper),
                         "p_value": float(p_value(values, observed)),
                         "replicates": check.replicated.shape[0]})
    tables = [pd.DataFrame(rows, columns=CHECK_COLUMNS)]
    for check in checks:
        if check.groups is None:
            continue
        labels, group_observed, replicated = check.group_means()
        low, high = quantile_interval(replicated, ci_prob)
        tables.append(pd.DataFrame({
            "variable": check.name, "statistic": "group mean",
            "group": np.asarray(labels).astype(str).astype(object),
            "observed": np.asarray(group_observed, dtype=float),
            "predictive_mean": replicated.mean(axis=0), "lower": low, "upper": high,
            "p_value": p_value(replicated, group_observed),
            "replicates": replicated.shape[0]}, columns=CHECK_COLUMNS))
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]


def extreme_groups(table: pd.DataFrame) -> dict[str, tuple[int | None, int, int]]:
    """For each checked quantity with groups: (groups whose group-mean p-value is outside
    (0.025, 0.975) — None when fewer than :data:`MIN_FLAG_REPLICATES` replicated data sets
    cannot tell —, groups checked, replicated data sets)."""
    per_group = table[table["statistic"] == "group mean"]
    out: dict[str, tuple[int | None, int, int]] = {}
    for variable, rows in per_group.groupby("variable", sort=False):
        p = rows["p_value"].to_numpy()
        replicates = int(rows["replicates"].iloc[0])
        extreme = (int(np.sum((p < EXTREME[0]) | (p > EXTREME[1])))
                   if replicates >= MIN_FLAG_REPLICATES else None)
        out[str(variable)] = (extreme, int(p.size), replicates)
    return out


def describe_extreme(variable: str, extreme: int | None, groups: int, replicates: int) -> str:
    """One line on the groups a predictive check flags, or why it flags none."""
    if extreme is None:
        return (f"groups of {variable}: not flagged — {replicates} replicated data sets (a "
                f"p-value of 0 would come by chance once in {replicates + 1}); at least "
                f"{MIN_FLAG_REPLICATES} are needed")
    return (f"groups whose {variable} has p < {EXTREME[0]} or > {EXTREME[1]}: {extreme} of "
            f"{groups} ({replicates} replicated data sets)")


@dataclass(frozen=True)
class PriorPredictive:
    """Draws from the prior and the prior predictive of a model on its data's design.

    ``tree`` holds ArviZ's ``prior`` and ``prior_predictive`` groups (and
    ``observed_data``); ``checks`` compare the observed data with the prior predictive, so
    that a prior that cannot produce data like these shows up before any fitting.
    """

    tree: xr.DataTree
    checks: tuple[CheckData, ...]
    prior: str
    group_dims: tuple[str, ...] = ("group",)

    def summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """The prior of every parameter: mean, sd and equal-tailed interval."""
        prior = self.tree["prior"].to_dataset()
        return posterior_summary(prior, ci_prob, diagnostics=False,
                                 group_dims=self.group_dims).dropna(axis=1, how="all")

    def check(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """The observed data's statistics against their prior predictive distribution."""
        return check_table(self.checks, ci_prob)
