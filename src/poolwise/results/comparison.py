"""Several fits of the same data side by side: estimates, and PSIS-LOO predictive accuracy.

Written for any kind: :class:`Comparison` holds fits by label (the three pooling levels,
or models to choose between), :meth:`Comparison.estimates` sets their summaries side by
side (a kind may present its own table, :meth:`~poolwise.results.fit.Fit.comparison_table`)
and :meth:`Comparison.predictive` scores them with PSIS-LOO (Vehtari, Gelman and Gabry
2017).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poolwise import _arviz

if TYPE_CHECKING:
    from poolwise.results.fit import Fit

__all__ = ["Comparison", "loo_table", "side_by_side"]


@dataclass(frozen=True)
class Comparison:
    """Fits of one data set, by label (``"none"``, ``"complete"``, ``"partial"``)."""

    fits: dict[str, Fit]

    def estimates(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """The fits' estimates side by side: one row per parameter (and group), columns
        ``<label>_mean``, ``<label>_lower``, ``<label>_upper``."""
        first = next(iter(self.fits.values()))
        return type(first).comparison_table(self.fits, ci_prob)

    def predictive(self) -> pd.DataFrame:
        """PSIS-LOO expected log predictive density of each fit, best first."""
        return loo_table(self.fits)


def side_by_side(tables: Mapping[str, pd.DataFrame], order: str | None = None
                 ) -> pd.DataFrame:
    """Summaries joined on (param, group): the rows of ``order``'s table first (default the
    first), then rows only the others have; ``<label>_mean/lower/upper`` per table."""
    labels = list(tables)
    first = order if order is not None else labels[0]
    ordered = [first, *(label for label in labels if label != first)]
    keys = list(dict.fromkeys(
        (row["param"], row["group"]) for label in ordered
        for row in tables[label][["param", "group"]].to_dict("records")))
    out = pd.DataFrame(keys, columns=["param", "group"])
    for label, table in tables.items():
        indexed = table.set_index(["param", "group"])
        for column in ("mean", "lower", "upper"):
            out[f"{label}_{column}"] = [
                float(indexed[column].get(key, np.nan)) if key in indexed.index else np.nan
                for key in keys]
    return out


def loo_table(fits: Mapping[str, Any]) -> pd.DataFrame:
    """PSIS-LOO of each fit (anything with ``with_log_likelihood()``), best first, with the
    difference to the best, the effective number of parameters and the Pareto k check
    (k > 0.7: that point's estimate is unreliable); ArviZ's warnings are kept per row."""
    rows = []
    for label, fit in fits.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            elpd = _arviz.loo(fit.with_log_likelihood())
        k = np.asarray(elpd.pareto_k).ravel()
        rows.append({
            "pooling": label,
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
