"""Reducing a table to per-group estimates and standard errors, for normal models.

The normal hierarchical model with known standard errors,

    y_j ~ N(θ_j, σ_j²),  θ_j ~ N(μ, τ²),

sees the data only through each group's estimate y_j and its standard error σ_j. A table
gives them directly (one row per group: eight schools, a meta-analysis), or as raw
observations, one row each, which are reduced to group means and s_j/√n_j.
As in :mod:`poolwise.data.tables`, every bad input raises one line of
:class:`~poolwise.exceptions.DataError` that names the row, column and value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.data.rows import (
    Locate,
    estimate_checks,
    frame_moments,
    frame_violations,
    labels_of,
    numbers,
    raise_first,
    require_columns,
    row_number,
)
from poolwise.exceptions import DataError


@dataclass(frozen=True)
class GroupEstimates:
    """Per-group estimates y_j and their standard errors σ_j, ready for a normal model.

    Attributes
    ----------
    labels : ndarray of str, shape (J,)
        Group labels, in order of first appearance.
    y : ndarray of float, shape (J,)
        Estimates (given, or group means of raw observations).
    se : ndarray of float, shape (J,)
        Standard errors of ``y``, all finite and > 0.
    group_name : str
        Name of the group column (``"row"`` when each row is its own group).
    notes : tuple of str
        What was done to the data on the way (reductions, substitutions).
    n_obs : ndarray of int, shape (J,), or None
        Observations per group when reduced from raw data; None when given directly.
    """

    labels: NDArray[np.str_]
    y: NDArray[np.float64]
    se: NDArray[np.float64]
    group_name: str = "group"
    notes: tuple[str, ...] = field(default=())
    n_obs: NDArray[np.int64] | None = None

    @property
    def n_groups(self) -> int:
        return int(self.y.size)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({self.group_name: self.labels, "y": self.y, "se": self.se})
        if self.n_obs is not None:
            frame["n_obs"] = self.n_obs
        return frame


def _listed(labels: NDArray[np.str_], limit: int = 5) -> str:
    shown = ", ".join(repr(str(s)) for s in labels[:limit])
    return shown if labels.size <= limit else f"{shown} and {labels.size - limit} more"


def group_estimates(
    table: pd.DataFrame,
    *,
    y: str,
    se: str | None = None,
    group: str | None = None,
) -> GroupEstimates:
    """Reduce a table to per-group estimates and standard errors for a normal model.

    Parameters
    ----------
    table
        Either one row per group with an estimate and its standard error (``se`` given),
        or one row per observation with a group column (``se=None``).
    y
        Column of estimates (with ``se``) or of raw observations (without).
    se
        Column of standard errors of ``y``, each finite and > 0. Without it, the rows
        are raw observations and each group's standard error is computed from them.
    group
        Column of group labels. With ``se`` it is optional (default: each row is its own
        group, labelled by row number) and labels must be unique; without ``se`` it is
        required.

    Returns
    -------
    GroupEstimates
        ``labels``, ``y`` and ``se`` of shape (J,), in order of first appearance;
        ``n_obs`` (observations per group) when reduced from raw data.

    Raises
    ------
    DataError
        A missing column, a missing, non-numeric or non-finite value, a standard error
        ≤ 0, a duplicated group label (with ``se``), or raw data in which no group has
        two observations.

    Notes
    -----
    From raw observations x_ij, i = 1..n_j, the estimate is the group mean
    y_j = x̄_j and its standard error σ_j = s_j/√n_j, with s_j the sample standard
    deviation (divisor n_j − 1). A group with a single observation has no s_j; one whose
    observations are all equal has s_j = 0, which a model with known standard errors
    cannot use. Both get the pooled within-group standard deviation

        s_p = sqrt(Σ_j (n_j − 1) s_j² / Σ_j (n_j − 1))

    over the groups with n_j ≥ 2 in place of s_j, and a note says which groups. Treating
    σ_j as known ignores the uncertainty in s_j, which matters when the n_j are small
    (BDA3 §5.5 treats the eight schools' standard errors as known for the same reason:
    each is based on a large sample).

    Examples
    --------
    >>> from poolwise import datasets
    >>> schools = group_estimates(datasets.load("eight-schools"), y="y", se="sigma",
    ...                           group="school")
    >>> schools.n_groups, schools.se.tolist()[:3]
    (8, [15.0, 10.0, 16.0])
    >>> raw = pd.DataFrame({"g": ["a", "a", "b", "b", "b"], "x": [1.0, 3.0, 2.0, 4.0, 6.0]})
    >>> est = group_estimates(raw, y="x", group="g")
    >>> est.y.tolist(), est.se.round(3).tolist(), est.n_obs.tolist()
    ([2.0, 4.0], [1.0, 1.155], [2, 3])
    """
    if table.empty:
        raise DataError("the table has no rows")
    checks = estimate_checks(y=y, se=se, group=_needs_group(se, group))
    require_columns(table.columns, checks)
    raise_first(checks, frame_violations(table, checks))
    if se is not None:
        return estimates_given(table, y=y, se=se, group=group)
    moments = frame_moments(table, y=y, group=str(group))
    return estimates_from_moments(moments, rows=len(table), y=y, group=str(group))


def _needs_group(se: str | None, group: str | None) -> str | None:
    """``group``, which raw observations (no ``se``) cannot do without."""
    if se is None and group is None:
        raise DataError(
            "without a standard-error column (se) each row is one observation, so a group "
            "column is needed to form group means and standard errors"
        )
    return group


def estimates_given(table: pd.DataFrame, *, y: str, se: str, group: str | None,
                    locate: Locate = row_number) -> GroupEstimates:
    """One checked row per group: its estimate and standard error; an error naming both
    rows (``locate`` names positions) where a group label appears twice."""
    y_values, se_values = numbers(table[y]), numbers(table[se])
    if group is None:
        labels = np.array([str(i + 1) for i in range(len(table))])
        return GroupEstimates(labels, y_values, se_values, "row")
    labels = labels_of(table[group]).to_numpy().astype(str)
    duplicated = np.flatnonzero(pd.Series(labels).duplicated().to_numpy())
    if duplicated.size:
        second = duplicated[0]
        first = np.flatnonzero(labels == labels[second])[0]
        a, b = locate(first), locate(second)
        both = f"{a} and {b}"
        raise DataError(
            f"{both}: group "
            f"{str(labels[second])!r} appears twice in column {group!r}; with a "
            "standard-error column each group needs exactly one row (its estimate and "
            "standard error)"
        )
    return GroupEstimates(labels, y_values, se_values, str(group))


def estimates_from_moments(moments: pd.DataFrame, *, rows: int, y: str, group: str
                           ) -> GroupEstimates:
    """Group means and standard errors s_j/√n_j from per-group moments of checked raw
    observations (:data:`poolwise.data.rows.MOMENTS`, in order of first appearance), with
    the pooled standard deviation where s_j is missing or 0 (see :func:`group_estimates`)."""
    labels_g = moments["label"].to_numpy().astype(str)
    n_obs = moments["count"].to_numpy(dtype=np.int64)
    means = moments["mean"].to_numpy(dtype=float)
    several = n_obs >= 2
    # all-equal observations: exactly 0, not the rounding error of a computed variance
    constant = several & (moments["min"] == moments["max"]).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        variances = moments["m2"].to_numpy(dtype=float) / (n_obs - 1)  # divisor n − 1
    variances = np.where(constant | ~several, 0.0, variances)

    notes = [
        f"reduced {rows} observations to {labels_g.size} group means by {group!r}, "
        "with standard errors s_j/√n_j"
    ]
    if not np.any(several):
        raise DataError(
            f"every group in {group!r} has one observation, so there is no within-group "
            f"spread to estimate standard errors from; give a standard-error column (se) "
            "or at least one group with 2 or more observations"
        )
    dof = n_obs[several] - 1
    pooled_sd = float(np.sqrt(np.sum(dof * variances[several]) / np.sum(dof)))
    if pooled_sd == 0.0:
        raise DataError(
            f"every observation of {y!r} equals its group's mean, so the within-group "
            "standard deviation is 0 and no standard error can be estimated; give a "
            "standard-error column (se)"
        )
    single = ~several
    sd = np.sqrt(variances)
    basis = (
        f"the pooled within-group standard deviation s_p = {pooled_sd:.4g} (from "
        f"{int(several.sum())} group(s) with ≥ 2 observations) in place of s_j, so "
        "σ_j = s_p/√n_j"
    )
    if np.any(single):
        notes.append(
            f"{int(single.sum())} group(s) with one observation have no within-group "
            f"standard deviation: {_listed(labels_g[single])}; used {basis}"
        )
    if np.any(constant):
        notes.append(
            f"{int(constant.sum())} group(s) whose observations are all equal would have "
            f"standard error 0: {_listed(labels_g[constant])}; used {basis}"
        )
    sd = np.where(single | constant, pooled_sd, sd)
    se_values = sd / np.sqrt(n_obs)
    return GroupEstimates(labels_g, means, se_values, group, tuple(notes), n_obs)


__all__ = ["GroupEstimates", "estimates_from_moments", "estimates_given", "group_estimates"]
