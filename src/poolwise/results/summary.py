"""Tables of posterior draws: one row per scalar, the same columns for every model kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise.exceptions import SpecificationError

__all__ = ["SUMMARY_COLUMNS", "check_prob", "posterior_draws", "posterior_summary",
           "quantile_interval"]

#: columns of every fit's ``summary()``, in order; other tools read these names
SUMMARY_COLUMNS = ["param", "group", "mean", "sd", "lower", "upper",
                   "ess_bulk", "ess_tail", "r_hat", "mcse_mean", "pooling_factor"]


#: draws up to which :func:`quantile_interval` sorts rather than partitions
FEW_DRAWS = 64


def check_prob(ci_prob: float) -> None:
    """Refuse an interval level outside (0, 1)."""
    if isinstance(ci_prob, bool) or not isinstance(ci_prob, (int, float)) \
            or not 0 < ci_prob < 1:
        raise SpecificationError(f"the interval level must be between 0 and 1, got {ci_prob!r}")


def quantile_interval(values: NDArray, ci_prob: float, axis: int = 0
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The equal-tailed ``ci_prob`` interval of draws along ``axis`` (NumPy's default,
    linear, quantiles). Few draws of many values (a predictive check of a million groups
    has ten) are sorted and interpolated directly, several times faster than np.quantile's
    partition along a strided axis."""
    tail = (1 - ci_prob) / 2
    values = np.asarray(values)
    if values.ndim < 2 or values.shape[axis] > FEW_DRAWS:
        lower, upper = np.quantile(values, [tail, 1 - tail], axis=axis)
        return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    ordered = np.sort(np.moveaxis(values, axis, 0), axis=0).astype(float, copy=False)
    ends = []
    for level in (tail, 1 - tail):
        position = level * (ordered.shape[0] - 1)
        below = int(np.floor(position))
        above = min(below + 1, ordered.shape[0] - 1)
        weight = position - below
        ends.append(ordered[below] + weight * (ordered[above] - ordered[below]))
    return ends[0], ends[1]


def posterior_draws(posterior: xr.Dataset, name: str) -> NDArray[np.float64]:
    """Draws of the variable ``name``, shaped (chain, draw, ...); an error that lists the
    variables when there is none of that name."""
    if name not in posterior:
        valid = ", ".join(str(v) for v in posterior.data_vars)
        raise SpecificationError(f"no variable {name!r} in the posterior; it has {valid}")
    return np.asarray(posterior[name].values)


def posterior_summary(
    posterior: xr.Dataset,
    ci_prob: float = 0.95,
    *,
    diagnostics: bool = True,
    group_dims: tuple[str, ...] = ("group",),
    shared: tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per scalar of every variable, in :data:`SUMMARY_COLUMNS`.

    Mean, sd and the equal-tailed ``ci_prob`` interval over all chains and draws; bulk and
    tail ESS, R-hat and the MCSE of the mean from ArviZ (NaN when ``diagnostics=False``).
    A dimension in ``group_dims`` gives the ``group`` column its label; any other dimension
    is written into the name, ``b[Days]`` or ``r_Subject[Intercept]``. Variables in
    ``shared`` repeat one value along their group dimension (complete pooling) and get one
    row. A variable with a single draw (a point estimate) has NaN sd and interval.
    """
    check_prob(ci_prob)
    diag = _arviz.diagnostics(posterior) if diagnostics else {}
    rows = []
    for name in posterior.data_vars:
        variable = posterior[name]
        if name in shared:
            variable = variable.isel({d: 0 for d in variable.dims if d in group_dims})
        extra = [d for d in variable.dims if d not in ("chain", "draw")]
        values = np.asarray(variable.transpose("chain", "draw", *extra).values, dtype=float)
        flat = values.reshape(-1, *values.shape[2:])
        stats = {"mean": flat.mean(axis=0)}
        if flat.shape[0] > 1:
            stats["sd"] = flat.std(axis=0, ddof=1)
            stats["lower"], stats["upper"] = quantile_interval(flat, ci_prob)
        for key, dataset in diag.items():
            chosen = dataset[name]
            if name in shared:
                chosen = chosen.isel({d: 0 for d in chosen.dims if d in group_dims})
            stats[key] = np.asarray(chosen.transpose(*extra).values)
        for key in SUMMARY_COLUMNS[3:10]:
            stats.setdefault(key, np.full(flat.shape[1:], np.nan))
        labels = [[str(v) for v in np.asarray(variable[d].values)] if d in variable.coords
                  else [str(i) for i in range(variable.sizes[d])] for d in extra]
        for index in np.ndindex(*flat.shape[1:]):
            group = [labels[k][i] for k, i in enumerate(index) if extra[k] in group_dims]
            inner = [labels[k][i] for k, i in enumerate(index) if extra[k] not in group_dims]
            rows.append({
                "param": f"{name}[{', '.join(inner)}]" if inner else str(name),
                "group": ", ".join(group) if group else None,
                **{key: float(value[index]) for key, value in stats.items()},
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
