"""Row-level checks and per-group partial statistics, written once for every engine.

A table is checked against an ordered list of :class:`Check` s (a count column must be
present, numeric, ≥ 0, whole...). Each engine — pandas here (:func:`frame_violations`),
DuckDB in SQL and Dask per partition (:mod:`poolwise.data.engines`) — finds, for each
check, how many rows fail it and the first that does (a :class:`Violation`);
:func:`raise_first` turns the first failed check into the one-line
:class:`~poolwise.exceptions.DataError` the user sees, whichever engine found it.

Rows are then reduced to one row per group of mergeable statistics — sums of y and n
(:func:`frame_sums`), or count, mean, sum of squared deviations, min and max
(:func:`frame_moments`) — with each group's first position, which orders the groups by
first appearance. Partial tables from chunks of rows merge exactly
(:func:`merge_partials`; for the variance Chan, Golub & LeVeque 1979).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from poolwise.exceptions import DataError

#: a number written with a decimal comma: 0,5 or -1,25 or 3,1e-05
DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*$")
#: the largest magnitude of a continuous value: its square (and sums of squares of a few
#: thousand) stay finite in double precision, whose largest number is 1.8e308
LARGEST = 1e150
#: the largest count: whole numbers above 2^53 are not exact in double precision
LARGEST_COUNT = 2.0**53
#: the columns of a partial table of sums and of moments
SUMS = ("label", "first", "y", "n")
MOMENTS = ("label", "first", "count", "mean", "m2", "min", "max")


class Check(NamedTuple):
    """One test every row of ``column`` must pass.

    ``test`` is one of: ``missing`` (no value), ``number`` (a finite number), ``negative``
    (≥ 0), ``whole`` (a whole number), ``binary`` (≤ 1, a 0/1 trial), ``positive`` (> 0),
    ``within`` (≤ the value in ``other``), ``label`` (a group label is present), ``large``
    (|x| ≤ :data:`LARGEST`), ``small`` (x ≥ 1/:data:`LARGEST`, for a positive scale),
    ``count`` (x ≤ :data:`LARGEST_COUNT`).
    """

    test: str
    column: str
    role: str
    other: str | None = None


class Violation(NamedTuple):
    """How many rows fail a check, the position of the first and its value(s) there
    (the value as text for ``number``; ``other`` is the other column's, for ``within``)."""

    failing: int
    position: int
    value: Any
    other: Any = None


#: turns an engine's position into the words naming the row: "row 5", "row 5 in file x"
Locate = Callable[[int], str]


def row_number(position: int) -> str:
    """A position counted from 0 in one table, as the user counts rows: "data row 5" is the
    fifth row of values (a file's header line is not counted; pandas' index is not used)."""
    return f"data row {position + 1}"


def rate_checks(family_name: str, size_label: str, *, y: str, n: str | None,
                group: str | None) -> tuple[Check, ...]:
    """The checks of a rate table (:func:`poolwise.data.tables.group_counts`), in order."""
    binomial = family_name == "beta-binomial"
    if n is None and binomial and group is None:
        raise DataError("without a trials column (--n) each row is one 0/1 trial, so a group "
                        "column (--group) is needed")
    role = "count (y)"
    checks = [Check("missing", y, role), Check("number", y, role),
              Check("negative", y, role), Check("whole", y, role), Check("count", y, role)]
    if n is None and binomial:
        checks.append(Check("binary", y, role))
    if n is not None:
        checks += [Check("missing", n, size_label), Check("number", n, size_label),
                   Check("negative", n, size_label)]
        if binomial:
            checks += [Check("whole", n, size_label), Check("count", n, size_label),
                       Check("within", y, role, n)]
        else:
            checks.append(Check("large", n, size_label))
    if group is not None:
        checks.append(Check("label", group, "group"))
    return tuple(checks)


def estimate_checks(*, y: str, se: str | None, group: str | None) -> tuple[Check, ...]:
    """The checks of a table of estimates (with ``se``) or raw observations (without)."""
    role = "observation (y)" if se is None else "estimate (y)"
    checks = [Check("missing", y, role), Check("number", y, role), Check("large", y, role)]
    if se is not None:
        checks += [Check("missing", se, "standard error"), Check("number", se, "standard error"),
                   Check("positive", se, "standard error"), Check("large", se, "standard error"),
                   Check("small", se, "standard error")]
    if group is not None:
        checks.append(Check("label", group, "group"))
    return tuple(checks)


def require_columns(columns: Iterable[Any], checks: Sequence[Check]) -> None:
    """Error naming the first column the checks need that the table lacks, with the closest
    name it has, or that it has twice."""
    have = [str(c) for c in columns]
    for check in checks:
        for column in (check.column, check.other):
            if column is not None:
                unique_columns(have, [str(column)])
            if column is not None and column not in have:
                role = check.role if column == check.column else _role_of(checks, column)
                close = difflib.get_close_matches(str(column), have, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(f"{role} column {column!r} not found{hint}; the columns are: "
                                f"{', '.join(have)}")


def unique_columns(columns: Sequence[str], names: Iterable[str] | None = None) -> None:
    """Error at the first of ``names`` (default: every non-empty column name) that
    ``columns`` holds twice: which of the two is meant is anyone's guess."""
    for name in dict.fromkeys(columns if names is None else names):
        where = [i + 1 for i, column in enumerate(columns) if column == name]
        if name and len(where) > 1:
            raise DataError(f"columns {where[0]} and {where[1]} are both named {name!r}; "
                            "give each column its own name")


def _role_of(checks: Sequence[Check], column: str) -> str:
    return next(c.role for c in checks if c.column == column)


def message(check: Check, found: Violation, where: str) -> str:
    """The one line for the first row that fails ``check``, at ``where``."""
    name, value = check.column, found.value
    if check.test == "missing":
        return (f"{where}: {check.role} column {name!r} is missing ({found.failing} missing "
                "value(s) in all); fill or remove those rows")
    if check.test == "number":
        comma = ("; for numbers with decimal commas give --decimal ','"
                 if DECIMAL_COMMA.match(str(value)) else "")
        return (f"{where}: {check.role} column {name!r} has {str(value)!r}, which is not a "
                f"finite number{comma}")
    if check.test == "negative":
        return f"{where}: {check.role} column {name!r} has {value:g}; it must be ≥ 0"
    if check.test == "whole":
        return (f"{where}: {check.role} column {name!r} has {value:g}; counts must be whole "
                "numbers")
    if check.test == "binary":
        return (f"{where}: {name!r} is {value:g}; without a trials column (--n) each row is "
                "one trial and y must be 0 or 1")
    if check.test == "positive":
        return (f"{where}: {check.role} column {name!r} has {value:g}; a standard error must "
                "be > 0")
    if check.test == "within":
        return (f"{where}: {name!r} is {value:g} but {check.other!r} is {found.other:g}; "
                "successes cannot exceed trials")
    if check.test == "large":
        return (f"{where}: {check.role} column {name!r} has {value:g}; poolwise squares such "
                f"values, so they must be within ±{LARGEST:g}: rescale the column (other units)")
    if check.test == "count":
        return (f"{where}: {check.role} column {name!r} has {value:g}; counts above "
                f"{LARGEST_COUNT:.0f} (2^53) are not exact in floating point")
    if check.test == "small":
        return (f"{where}: {check.role} column {name!r} has {value:g}; a standard error must be "
                f"at least {1 / LARGEST:g} (its inverse square must be finite): rescale the "
                "column (other units)")
    if check.test == "label":
        return f"{where}: group column {name!r} is missing; every row needs a group"
    raise ValueError(f"unknown check {check.test!r}")


def raise_first(checks: Sequence[Check], found: Sequence[Violation | None],
                locate: Locate = row_number) -> None:
    """Raise :class:`DataError` for the first check (in order) that some row fails."""
    for check, violation in zip(checks, found, strict=True):
        if violation is not None and violation.failing:
            raise DataError(message(check, violation, locate(violation.position)))


def numbers(series: pd.Series) -> np.ndarray:
    """A column as floats; what is not a number becomes NaN."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def frame_violations(frame: pd.DataFrame, checks: Sequence[Check],
                     positions: np.ndarray | None = None) -> list[Violation | None]:
    """Each check's :class:`Violation` in ``frame`` (None where every row passes);
    ``positions`` are the rows' positions (default 0, 1, ...)."""
    positions = np.arange(len(frame)) if positions is None else positions
    cache: dict[str, np.ndarray] = {}

    def values(column: str) -> np.ndarray:
        if column not in cache:
            cache[column] = numbers(frame[column])
        return cache[column]

    found: list[Violation | None] = []
    for check in checks:
        raw = frame[check.column]
        if check.test in ("missing", "label"):
            bad = raw.isna().to_numpy()
        else:
            other = values(str(check.other)) if check.other is not None else None
            bad = _failing(check.test, values(check.column), raw, other)
        where = np.flatnonzero(bad)
        if not where.size:
            found.append(None)
            continue
        i = where[0]
        value = raw.iloc[i] if check.test == "number" else (
            None if check.test in ("missing", "label") else values(check.column)[i])
        other = values(str(check.other))[i] if check.other is not None else None
        found.append(Violation(int(where.size), int(positions[i]), value, other))
    return found


def _failing(test: str, x: np.ndarray, raw: pd.Series, other: np.ndarray | None
             ) -> np.ndarray:
    """Which values ``x`` (the column ``raw`` as numbers) fail ``test``."""
    with np.errstate(invalid="ignore"):
        if test == "number":
            return ~raw.isna().to_numpy() & ~np.isfinite(x)
        if test == "negative":
            return x < 0
        if test == "whole":
            return x != np.round(x)
        if test == "binary":
            return x > 1
        if test == "positive":
            return x <= 0
        if test == "within" and other is not None:
            return x > other
        if test == "large":
            return np.abs(x) > LARGEST
        if test == "small":
            return (x > 0) & (x < 1 / LARGEST)
        if test == "count":
            return x > LARGEST_COUNT
    raise ValueError(f"unknown check {test!r}")


def merge_violations(parts: Iterable[Sequence[Violation | None]]) -> list[Violation | None]:
    """The violations of chunks of rows as those of all the rows (counts add up; the first
    position wins)."""
    merged: list[Violation | None] | None = None
    for part in parts:
        if merged is None:
            merged = list(part)
            continue
        for k, new in enumerate(part):
            old = merged[k]
            if new is None:
                continue
            if old is None:
                merged[k] = new
            else:
                first = new if new.position < old.position else old
                merged[k] = first._replace(failing=old.failing + new.failing)
    return merged or []


def labels_of(series: pd.Series) -> pd.Series:
    """Group labels as text, as every engine writes them."""
    return series.astype(str)


def frame_sums(frame: pd.DataFrame, *, y: str, n: str | None, group: str,
               positions: np.ndarray | None = None) -> pd.DataFrame:
    """Per group: the first position, Σ y and Σ n (the number of rows without ``n``),
    in order of first appearance (:data:`SUMS`)."""
    positions = np.arange(len(frame)) if positions is None else positions
    parts = pd.DataFrame({"label": labels_of(frame[group]).to_numpy(),
                          "first": positions,
                          "y": numbers(frame[y]),
                          "n": 1.0 if n is None else numbers(frame[n])})
    return parts.groupby("label", sort=False, as_index=False).agg(
        first=("first", "min"), y=("y", "sum"), n=("n", "sum"))


def frame_moments(frame: pd.DataFrame, *, y: str, group: str,
                  positions: np.ndarray | None = None) -> pd.DataFrame:
    """Per group: the first position, the count, mean, sum of squared deviations from the
    mean (m2), min and max of ``y``, in order of first appearance (:data:`MOMENTS`)."""
    positions = np.arange(len(frame)) if positions is None else positions
    parts = pd.DataFrame({"label": labels_of(frame[group]).to_numpy(),
                          "first": positions, "x": numbers(frame[y])})
    stats = parts.groupby("label", sort=False, as_index=False).agg(
        first=("first", "min"), count=("x", "count"), mean=("x", "mean"),
        var=("x", "var"), min=("x", "min"), max=("x", "max"))
    several = stats["count"] > 1  # var has divisor n − 1: NaN for one observation
    stats["m2"] = np.where(several, stats.pop("var") * (stats["count"] - 1), 0.0)
    return stats[list(MOMENTS)]


def merge_partials(parts: pd.DataFrame) -> pd.DataFrame:
    """Partial tables (:data:`SUMS` or :data:`MOMENTS`) of chunks of rows, concatenated, as
    one row per group ordered by first position. Moments merge as (Chan et al. 1979)

        n = Σ n_i,  mean = Σ n_i mean_i / n,  m2 = Σ m2_i + Σ n_i (mean_i − mean)².
    """
    grouped = parts.groupby("label", sort=False)
    if "m2" not in parts.columns:
        merged = grouped.agg(first=("first", "min"), y=("y", "sum"), n=("n", "sum"))
    else:
        total = grouped["count"].transform("sum")
        mean = (parts["count"] * parts["mean"]).groupby(parts["label"], sort=False) \
            .transform("sum") / total
        spread = parts["m2"] + parts["count"] * (parts["mean"] - mean) ** 2
        merged = pd.DataFrame({"first": grouped["first"].min(), "count": grouped["count"].sum(),
                               "mean": mean.groupby(parts["label"], sort=False).first(),
                               "m2": spread.groupby(parts["label"], sort=False).sum(),
                               "min": grouped["min"].min(), "max": grouped["max"].max()})
    return merged.reset_index().sort_values("first", kind="stable").reset_index(drop=True)


__all__ = ["LARGEST", "LARGEST_COUNT", "Check", "Locate", "Violation", "estimate_checks",
           "frame_moments", "frame_sums", "frame_violations", "merge_partials",
           "merge_violations", "raise_first", "rate_checks", "require_columns",
           "unique_columns"]
