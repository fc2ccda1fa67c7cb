"""Empirical Bayes against the lecture's numbers and an independent SciPy optimisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from poolwise import ConvergenceWarning, DataError, Model, NewGroup, datasets


def test_moments_reproduce_the_lecture(rats):
    """000_eaef46a3cde24800.txt: α = 1.3778, β = 8.7524; the 71st experiment → 0.2229."""
    fit = Model(method="eb-moments").fit(rats, y="y", n="n", group="experiment")
    assert fit.eb.alpha == pytest.approx(1.3777748, abs=5e-5)
    assert fit.eb.beta == pytest.approx(8.7524354, abs=5e-5)
    new = fit.predict(NewGroup(y=4, size=14))
    assert new.brief()["mean"] == pytest.approx(0.2228648, abs=5e-7)
    # the posterior means of the lecture's shrinkage plot: (α + y) / (α + β + n)
    table = fit.summary().query("param == 'theta'")
    expected = (fit.eb.alpha + rats["y"]) / (fit.eb.alpha + fit.eb.beta + rats["n"])
    np.testing.assert_allclose(table["mean"], expected, rtol=1e-12)


def _scipy_type2(logpmf, y, n, start):
    """Maximise Σ log p(y_j | α, β) over (log α, log β) with Nelder-Mead."""
    def negative(x):
        return -np.sum(logpmf(y, n, np.exp(x[0]), np.exp(x[1])))
    result = optimize.minimize(negative, start, method="Nelder-Mead",
                               options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000})
    return np.exp(result.x), result


def test_ml_agrees_with_scipy_betabinom(rats):
    fit = Model(method="eb-ml").fit(rats, y="y", n="n", group="experiment")
    (alpha, beta), _ = _scipy_type2(lambda y, n, a, b: stats.betabinom.logpmf(y, n, a, b),
                                    rats["y"].to_numpy(), rats["n"].to_numpy(), [0.0, 2.0])
    assert fit.eb.alpha == pytest.approx(alpha, rel=1e-4)
    assert fit.eb.beta == pytest.approx(beta, rel=1e-4)
    assert not fit.eb.on_boundary


def test_ml_standard_errors_match_an_independent_hessian(rats):
    """Observed information is invariant: Cov(log α, log β) from SciPy's coordinates agrees."""
    fit = Model(method="eb-ml").fit(rats, y="y", n="n", group="experiment")
    y, n = rats["y"].to_numpy(), rats["n"].to_numpy()
    x0 = np.log([fit.eb.alpha, fit.eb.beta])

    def loglik(x):
        return np.sum(stats.betabinom.logpmf(y, n, np.exp(x[0]), np.exp(x[1])))

    h = 1e-4
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (loglik(x0 + ei + ej) - loglik(x0 + ei - ej) - loglik(x0 - ei + ej)
                          + loglik(x0 - ei - ej)) / (4 * h * h)
    cov_log = np.linalg.inv(-hess)
    se_alpha = fit.eb.alpha * np.sqrt(cov_log[0, 0])  # delta method
    row = fit.summary().set_index("param").loc["alpha"]
    # the summary's sd is simulated from the normal approximation in (u, v)
    assert row["sd"] == pytest.approx(se_alpha, rel=0.1)


def test_ml_gamma_poisson_agrees_with_scipy_nbinom():
    rng = np.random.default_rng(5)
    exposure = rng.uniform(200, 5000, 40)
    y = rng.poisson(exposure * rng.gamma(4.0, 1 / 2000.0, 40))
    table = pd.DataFrame({"g": np.arange(40), "y": y, "e": exposure})
    fit = Model(family="gamma-poisson", method="eb-ml").fit(table, y="y", n="e", group="g")

    def nb(y, e, a, b):  # NB with size a and success probability b / (b + e)
        return stats.nbinom.logpmf(y, a, b / (b + e))

    (alpha, beta), _ = _scipy_type2(nb, y, exposure, [1.0, 7.0])
    assert fit.eb.alpha == pytest.approx(alpha, rel=1e-4)
    assert fit.eb.beta == pytest.approx(beta, rel=1e-4)


def test_ml_warns_when_the_population_variance_collapses():
    table = pd.DataFrame({"g": list("abcdefghij"), "y": [5] * 10, "n": [50] * 10})
    with pytest.warns(ConvergenceWarning, match="complete pooling"):
        fit = Model(method="eb-ml").fit(table, y="y", n="n", group="g")
    assert fit.eb.on_boundary
    # every group's estimate is then the pooled rate
    theta = fit.summary().query("param == 'theta'")
    np.testing.assert_allclose(theta["mean"], 0.1, atol=1e-3)


def test_moments_refuse_constant_rates():
    """Equal rates (up to rounding: np.var of equal floats can be 1e-34) have no estimate."""
    table = pd.DataFrame({"g": list("abc"), "y": [2, 2, 2], "n": [20, 20, 20]})
    with pytest.raises(DataError, match="vary"):
        Model(method="eb-moments").fit(table, y="y", n="n", group="g")


@pytest.mark.parametrize("method", ["eb-moments", "eb-ml"])
def test_eb_refuses_all_zero_counts(method):
    table = pd.DataFrame({"g": list("abc"), "y": [0, 0, 0], "n": [5, 6, 7]})
    with pytest.raises(DataError, match="every group has y = 0"):
        Model(method=method).fit(table, y="y", n="n", group="g")


def test_ml_boundary_does_not_overflow():
    """Three identical groups: the maximum is at infinite concentration, found cleanly."""
    table = pd.DataFrame({"g": list("abc"), "y": [2, 2, 2], "n": [20, 20, 20]})
    with pytest.warns(ConvergenceWarning, match="variance collapses to zero"):
        fit = Model(method="eb-ml").fit(table, y="y", n="n", group="g")
    assert np.isfinite(fit.eb.alpha) and fit.eb.alpha / (fit.eb.alpha + fit.eb.beta) == (
        pytest.approx(0.1, rel=1e-3))


def test_eb_methods_only_for_partial_pooling(rats):
    from poolwise import SpecificationError

    with pytest.raises(SpecificationError, match="is for partial pooling"):
        Model(pooling="none", method="eb-ml").fit(rats, y="y", n="n")


def test_kidney_eb_ml_runs():
    kidney = datasets.load("kidney")
    fit = Model(family="gamma-poisson", method="eb-ml").fit(
        kidney, y="deaths", n="population", group="Location")
    mu = fit.eb.alpha / fit.eb.beta
    pooled = kidney["deaths"].sum() / kidney["population"].sum()
    assert mu == pytest.approx(pooled, rel=0.15)


def _baseball() -> pd.DataFrame:
    table = datasets.load("baseball")
    return table.assign(se=np.sqrt(table["avg_45"].mean() * (1 - table["avg_45"].mean()) / 45))


def test_james_stein_reproduces_efron_and_morris():
    """Efron & Morris (1977, Scientific American 236(5)): c = 1 − (k − 3)σ²/Σ(y − ȳ)² = 0.212
    for the 18 batting averages after 45 at-bats, σ² = ȳ(1 − ȳ)/45; Clemente's .400 → .294.
    c is computed here from the formula; the fit's group means must be ȳ + c (y − ȳ)."""
    table = _baseball()
    y = table["avg_45"].to_numpy()
    sigma2 = y.mean() * (1 - y.mean()) / 45
    c = 1 - (y.size - 3) * sigma2 / np.sum((y - y.mean()) ** 2)
    assert round(c, 3) == 0.212
    fit = Model(family="normal", method="eb-js").fit(table, y="avg_45", se="se", group="player")
    from poolwise.inference.eb import james_stein_factor

    assert james_stein_factor(fit.eb, float(np.sqrt(sigma2))) == pytest.approx(c, rel=1e-12)
    assert fit.eb.alpha == pytest.approx(y.mean(), rel=1e-12)
    means = fit.summary().query("param == 'theta'").set_index("group")["mean"]
    np.testing.assert_allclose(means[table["player"]], y.mean() + c * (y - y.mean()),
                               rtol=1e-10)
    assert round(means["Roberto Clemente"], 3) == 0.294


def test_james_stein_refuses_what_it_cannot_shrink():
    table = _baseball()
    with pytest.raises(DataError, match="one standard error for every group"):
        Model(family="normal", method="eb-js").fit(
            table.assign(se=np.linspace(0.05, 0.1, len(table))), y="avg_45", se="se",
            group="player")
    with pytest.raises(DataError, match="at least 4 groups"):
        Model(family="normal", method="eb-js").fit(table.head(3), y="avg_45", se="se",
                                                   group="player")
    with pytest.raises(Exception, match="unknown method 'eb-js' for a rates model"):
        Model(family="beta-binomial", method="eb-js")


def test_james_stein_at_c_zero_pools_completely():
    """When Σ(y − ȳ)² ≤ (k − 3)σ² the positive part sets c = 0: every estimate is ȳ."""
    table = pd.DataFrame({"g": list("abcdef"), "y": [0.1, -0.2, 0.05, 0.0, 0.15, -0.1],
                          "se": 1.0})
    with pytest.warns(ConvergenceWarning, match="complete pooling"):
        fit = Model(family="normal", method="eb-js").fit(table, y="y", se="se", group="g")
    assert fit.eb.beta == 0.0 and fit.eb.on_boundary
    means = fit.summary().query("param == 'theta'")["mean"].to_numpy()
    np.testing.assert_allclose(means, table["y"].mean(), atol=1e-12)
