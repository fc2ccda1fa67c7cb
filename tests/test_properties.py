"""Random tables for every kind (issue 13, item 6): numbers, NaN, ±inf, text, unicode and
duplicated labels, extreme magnitudes (1e300, 1e-300), negative values. Each table must
end in a clean poolwise error (a :class:`~poolwise.exceptions.PoolwiseError` with a
one-line message) or in a fit whose summary is finite and has a row for every group the
table has — never in another exception, a NumPy warning, or a silent NaN.

The tables are small and the methods the cheapest of each kind; hypothesis runs
derandomised (the same examples every run). ``make test`` runs a few examples per kind,
``make test-slow`` (the tests marked ``full``) many more.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poolwise
from poolwise.exceptions import (
    ConvergenceWarning,
    PoolwiseError,
    PosteriorWarning,
    SamplingWarning,
)

#: the same examples every run, however long a fit takes, and no example database on disk
PROFILE = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: examples per kind in the default run and under ``full``
FAST, FULL = 10, 300

#: odd cells: NaN, ±inf, extreme magnitudes, text, nothing, any float
ODD = st.one_of(st.sampled_from([-1, 1e300, -1e300, 1e-300, 5e-324, float("nan"), float("inf"),
                                 float("-inf")]),
                st.text(max_size=3), st.none(), st.floats(allow_nan=True, allow_infinity=True))
#: group labels: unicode, blanks, numbers as text; few of them, so groups repeat
LABELS = st.sampled_from(["a", "b", "c", "é", "日本", " ", "a ", "1", "1.0"])
ODD_LABELS = st.one_of(st.sampled_from(["", None, float("nan"), 1, 2.5]), st.text(max_size=2))
#: magnitudes that are valid but extreme (1e300 and the like are among the odd cells)
HUGE = st.sampled_from([1e-300, -1e-300, 1e15, -1e12, 0.0])


def numbers(low: float, high: float) -> st.SearchStrategy[float]:
    """Mostly ordinary floats in [low, high], sometimes extreme ones."""
    ordinary = st.floats(low, high)
    return st.one_of(ordinary, ordinary, ordinary, HUGE)


@st.composite
def tables(draw: st.DrawFn, rows: st.SearchStrategy[dict[str, Any]],
           labels: tuple[str, ...] = ("g",), unique: bool = False,
           size: tuple[int, int] = (1, 8)) -> pd.DataFrame:
    """``size`` valid ``rows`` (``unique``: each its own group); in half the tables one
    cell then made odd (a label column's cell an odd label)."""
    table = pd.DataFrame(draw(st.lists(rows, min_size=size[0], max_size=size[1],
                                       unique_by=(lambda r: r["g"]) if unique else None)))
    if draw(st.booleans()):
        column = draw(st.sampled_from(list(table.columns)))
        row = draw(st.integers(0, len(table) - 1))
        table[column] = table[column].astype(object)
        table.loc[row, column] = draw(ODD_LABELS if column in labels else ODD)
    return table


def counts_row(size: tuple[int, int]) -> st.SearchStrategy[dict[str, Any]]:
    """A count y of n, n in ``size``."""
    return st.integers(*size).flatmap(
        lambda n: st.fixed_dictionaries({"y": st.integers(0, n), "n": st.just(n)}))


COUNTS = tables(st.tuples(LABELS, counts_row((0, 20))).map(lambda t: {"g": t[0], **t[1]}))
ESTIMATES = tables(st.fixed_dictionaries({"g": LABELS, "y": numbers(-50, 50),
                                          "se": st.floats(0.1, 30)}), unique=True)
RAW = tables(st.fixed_dictionaries({"g": LABELS, "y": numbers(-1e3, 1e3)}))
#: rows of a mixed model: a few levels, each with several rows
ROWS = tables(st.fixed_dictionaries({"g": st.sampled_from(["a", "é", "日本"]),
                                     "x": numbers(-5, 5), "y": numbers(-20, 20)}), size=(4, 12))
LABS = tables(st.tuples(LABELS, LABELS, counts_row((1, 20))).map(
    lambda t: {"lab": t[0], "e": t[1], **t[2]}), labels=("lab", "e"))
OBSERVED = tables(st.fixed_dictionaries({"y": numbers(-10, 10), "sd": st.floats(0.1, 5)}))


def outcome(fit_it: Callable[[], Any]) -> pd.DataFrame | None:
    """The fit's summary, or None after a clean poolwise error; poolwise's own warnings
    about the posterior are answers, NumPy's (overflow, division by zero) are defects."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", (ConvergenceWarning, PosteriorWarning, SamplingWarning))
        try:
            fit = fit_it()
        except PoolwiseError as err:
            message = str(err)
            assert message and "\n" not in message, message
            return None
        return fit.summary()


def assert_finite(summary: pd.DataFrame) -> None:
    """Every estimate is a finite number; intervals, where given, are finite and hold it."""
    assert np.all(np.isfinite(summary["mean"].to_numpy(dtype=float))), summary
    for column in ("sd", "lower", "upper"):
        values = summary[column].to_numpy(dtype=float)
        assert not np.any(np.isinf(values)), summary
    inside = summary.dropna(subset=["lower", "upper"])
    assert np.all(inside["lower"] <= inside["upper"]), summary


def groups_of(summary: pd.DataFrame, param: str) -> set[str]:
    return set(summary.loc[summary["param"] == param, "group"].astype(str))


def labels(column: pd.Series) -> set[str]:
    return set(column.astype(str))


def check_rates(table: pd.DataFrame) -> None:
    model = poolwise.Model(family="beta-binomial", method="eb-moments", draws=50, chains=1)
    summary = outcome(lambda: model.fit(table, y="y", n="n", group="g"))
    if summary is not None:
        assert_finite(summary)
        sizes = pd.to_numeric(table["n"]).groupby(table["g"].astype(str)).sum()
        assert groups_of(summary, "theta") == set(sizes.index[sizes > 0])  # size 0: dropped


def check_normal(table: pd.DataFrame) -> None:
    model = poolwise.Model(family="normal", method="eb-ml", draws=50, chains=1)
    summary = outcome(lambda: model.fit(table, y="y", se="se", group="g"))
    if summary is not None:
        assert_finite(summary)
        assert groups_of(summary, "theta") == labels(table["g"])  # one row per group


def check_nig(table: pd.DataFrame) -> None:
    model = poolwise.NIGModel(draws=50, chains=1)
    summary = outcome(lambda: model.fit(table, y="y", group="g"))
    if summary is not None:
        assert_finite(summary)
        assert groups_of(summary, "theta") == groups_of(summary, "sigma2") == labels(table["g"])


def check_mixed(table: pd.DataFrame) -> None:
    model = poolwise.MixedModel(formula="y ~ x + (1 | g)", method="eb-ml", draws=50, chains=1)
    summary = outcome(lambda: model.fit(table))
    if summary is not None:
        assert_finite(summary)
        assert groups_of(summary, "r_g[Intercept]") == labels(table["g"])
        assert {"b[Intercept]", "b[x]", "sigma", "sd_g[Intercept]"} <= set(summary["param"])


def check_nested(table: pd.DataFrame) -> None:
    model = poolwise.NestedModel(draws=30, warmup=30, chains=1)
    summary = outcome(lambda: model.fit(table, y="y", n="n", group="lab/e"))
    if summary is not None:
        assert_finite(summary)
        assert groups_of(summary, "alpha") == labels(table["lab"])


def toy_model(y: Any, sd: Any) -> None:
    """y_i ~ N(μ, sd_i²), μ ~ N(0, 10²)."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(mu, sd), obs=y)


def check_custom(table: pd.DataFrame) -> None:
    model = poolwise.CustomModel(model=toy_model, method="map", draws=50, chains=1)
    summary = outcome(lambda: model.fit(table))
    if summary is not None:
        assert_finite(summary)
        assert list(summary["param"]) == ["mu"]


def property_tests(strategy: st.SearchStrategy[pd.DataFrame], check: Callable[..., None],
                   fast: int = FAST) -> tuple[Callable[..., None], Callable[..., None]]:
    """The default run's test of ``check`` on ``fast`` tables, and the full one's."""
    quick = settings(PROFILE, max_examples=fast)(given(strategy)(check))
    full = pytest.mark.full(settings(PROFILE, max_examples=FULL)(given(strategy)(check)))
    return quick, full


test_rates_tables, test_rates_tables_full = property_tests(COUNTS, check_rates)
test_normal_tables, test_normal_tables_full = property_tests(ESTIMATES, check_normal)
test_nig_tables, test_nig_tables_full = property_tests(RAW, check_nig)
# REML (formulae's design, an optimiser), NUTS and JAX's compilation make each mixed,
# nested or custom fit dear: a few in the default run
test_mixed_tables, test_mixed_tables_full = property_tests(ROWS, check_mixed, fast=4)
test_nested_tables, test_nested_tables_full = property_tests(LABS, check_nested, fast=2)
test_custom_tables, test_custom_tables_full = property_tests(OBSERVED, check_custom, fast=2)
