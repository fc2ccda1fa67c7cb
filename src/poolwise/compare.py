"""Fit no, complete and partial pooling on the same data and set them side by side."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from poolwise import _arviz
from poolwise.data.tables import GroupCounts
from poolwise.fit import Fit
from poolwise.model import POOLINGS, Model


@dataclass(frozen=True)
class Comparison:
    """Three fits of one data set, one per pooling level."""

    fits: dict[str, Fit]

    @property
    def data(self) -> GroupCounts:
        return self.fits["partial"].data

    def estimates(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """Per group: the data, the raw rate and each pooling level's mean and interval."""
        data = self.data
        family = self.fits["partial"].model.family
        table = pd.DataFrame({"group": data.labels, "y": data.y, "n": data.n,
                              "raw": family.raw_rate(data.y, data.n)})
        for pooling, fit in self.fits.items():
            theta = fit.summary(ci_prob).query("param == 'theta'")
            if pooling == "complete":  # one row for the common θ, the same for every group
                theta = pd.concat([theta] * data.n_groups, ignore_index=True)
            for column in ("mean", "lower", "upper"):
                table[f"{pooling}_{column}"] = theta[column].to_numpy()
        return table

    def predictive(self) -> pd.DataFrame:
        """PSIS-LOO expected log predictive density of each group's data, best first.

        Each group's y_j is one point, so this scores predictions of new data from the
        existing groups. Pareto k > 0.7 means that point's estimate is unreliable.
        """
        return loo_table(self.fits)


def loo_table(fits: Mapping[str, Any]) -> pd.DataFrame:
    """PSIS-LOO of each fit (anything with ``with_log_likelihood()``), best first, with the
    difference to the best, the effective number of parameters and the Pareto k check
    (k > 0.7: that point's estimate is unreliable); ArviZ's warnings are kept per row."""
    rows = []
    for pooling, fit in fits.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            elpd = _arviz.loo(fit.with_log_likelihood())
        k = np.asarray(elpd.pareto_k).ravel()
        rows.append({
            "pooling": pooling,
            "elpd_loo": float(elpd.elpd),
            "se": float(elpd.se),
            "p_loo": float(elpd.p),
            "pareto_k_max": float(np.max(k)),
            "n_bad_k": int(np.sum(k > 0.7)),
            "warning": "; ".join(str(w.message).splitlines()[0] for w in caught) or None,
        })
    table = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False, ignore_index=True)
    table.insert(2, "elpd_diff", table["elpd_loo"] - table["elpd_loo"].iloc[0])
    return table


def compare(
    data: pd.DataFrame | GroupCounts,
    *,
    family: str = "beta-binomial",
    y: str | None = None,
    n: str | None = None,
    group: str | None = None,
    se: str | None = None,
    method: str = "exact",
    prior: str | None = None,
    theta_prior: str | None = None,
    draws: int = 1000,
    chains: int = 4,
    warmup: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """Fit the three pooling levels.

    ``method`` and ``prior`` (a hyperprior) apply to partial pooling; no and complete
    pooling are conjugate and use ``exact`` with ``theta_prior`` (default Jeffreys).
    """
    fits = {}
    for pooling in POOLINGS:
        partial = pooling == "partial"
        model = Model(family=family, pooling=pooling, prior=prior if partial else theta_prior)
        fits[pooling] = model.fit(
            data, y=y, n=n, group=group, se=se, method=method if partial else "exact",
            draws=draws, chains=chains, warmup=warmup, seed=seed, progress=progress,
        )
    return Comparison(fits)
