"""The Normal-Inverse-Gamma model through NIGModel / NIGFit / the CLI.

References are closed forms (the NIG posterior, its Student-t marginal and predictive),
an independent reduction of the data with NumPy, and recovery of simulated parameters.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poolwise.cli import main
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.normal_inverse_gamma import (
    NIGPrior,
    NormalStats,
    log_marginal_likelihood,
)
from poolwise.nig import NIGModel, default_prior, nig_data, type2_ml

PRIOR = NIGPrior(mu=1.0, tau=2.0, alpha=2.0, beta=1.5)


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = [(label, value) for label, (mean, sd, n) in
            {"a": (0.0, 1.0, 6), "b": (3.0, 2.0, 4), "c": (1.0, 0.5, 9)}.items()
            for value in rng.normal(mean, sd, n)]
    return pd.DataFrame(rows, columns=["g", "y"])


def closed_form(prior: NIGPrior, y: np.ndarray) -> tuple[float, float, float, float]:
    """(m*, v*, α*, β*) written out from the textbook formulas (BDA3 §3.3)."""
    n, ybar = y.size, float(np.mean(y))
    v = 1.0 / (n + 1.0 / prior.tau**2)
    m = (n * ybar + prior.mu / prior.tau**2) * v
    beta = prior.beta + 0.5 * (np.sum(y**2) + prior.mu**2 / prior.tau**2 - m**2 / v)
    return m, v, prior.alpha + n / 2, float(beta)


def test_no_pooling_draws_match_the_closed_form_for_each_group(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR).fit(table, y="y", group="g", draws=2000)
    summary = fit.summary().set_index(["param", "group"])
    for label, rows in table.groupby("g"):
        m, _v, a, b = closed_form(PRIOR, rows["y"].to_numpy())
        theta, sigma2 = summary.loc[("theta", label)], summary.loc[("sigma2", label)]
        assert abs(theta["mean"] - m) < 4 * theta["mcse_mean"]
        assert abs(sigma2["mean"] - b / (a - 1)) < 4 * sigma2["mcse_mean"]
        assert fit.theta_marginal(label).mean() == pytest.approx(m)


def test_complete_pooling_is_one_group_of_all_observations(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="complete", prior=PRIOR).fit(table, y="y", group="g")
    m, v, a, b = closed_form(PRIOR, table["y"].to_numpy())
    t = fit.theta_marginal()
    assert t.mean() == pytest.approx(m)
    assert t.var() == pytest.approx(b * v / (a - 1))
    assert fit.posterior["theta"].dims == ("chain", "draw")


def test_predictive_draws_follow_the_student_t_predictive(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR).fit(table, y="y", group="g", draws=1000)
    y_new = fit.predict_group("b")
    m, v, a, b = closed_form(PRIOR, table.loc[table["g"] == "b", "y"].to_numpy())
    # y* = θ + σ ε: t_{2α*}(m*, β*(1 + v*)/α*)
    predictive = stats.t(df=2 * a, loc=m, scale=math.sqrt(b * (1 + v) / a))
    assert stats.kstest(y_new, predictive.cdf).pvalue > 1e-3


def test_new_group_predictive_comes_from_the_prior(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR).fit(table, y="y", group="g", draws=2000)
    theta, y_new = fit.predict_new_group()
    # θ_new ~ t_{2α}(μ, β τ²/α) marginally
    prior_theta = stats.t(df=2 * PRIOR.alpha, loc=PRIOR.mu,
                          scale=math.sqrt(PRIOR.beta * PRIOR.tau**2 / PRIOR.alpha))
    assert stats.kstest(theta, prior_theta.cdf).pvalue > 1e-3
    assert y_new.shape == theta.shape


def test_group_statistics_and_the_default_prior(table: pd.DataFrame) -> None:
    data = nig_data(table, y="y", group="g")
    by_group = table.groupby("g", sort=False)["y"]
    assert data.labels.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(data.stats.mean, by_group.mean())
    np.testing.assert_allclose(data.stats.sum_sq_dev, by_group.var() * (by_group.count() - 1))
    prior = default_prior(data)
    pooled_variance = float(np.sum(by_group.var() * (by_group.count() - 1))) / (len(table) - 3)
    assert prior.mu == pytest.approx(table["y"].mean())
    assert prior.beta == pytest.approx(pooled_variance)


def test_type2_ml_recovers_simulated_population() -> None:
    rng = np.random.default_rng(20261122)
    truth = NIGPrior(mu=2.0, tau=0.5, alpha=4.0, beta=3.0)
    groups = 3000
    n = rng.integers(2, 11, size=groups).astype(float)
    sigma2 = truth.beta / rng.standard_gamma(truth.alpha, size=groups)
    theta = rng.normal(truth.mu, truth.tau * np.sqrt(sigma2))
    y = [rng.normal(t, math.sqrt(s2), int(k)) for t, s2, k in zip(theta, sigma2, n, strict=True)]
    data = NormalStats(n, np.array([v.mean() for v in y]),
                       np.array([np.sum((v - v.mean()) ** 2) for v in y]))
    estimate = type2_ml(data)
    z = np.array([estimate["mu"], math.log(estimate["tau"]), math.log(estimate["alpha"]),
                  math.log(estimate["beta"])])

    def loglik(point: np.ndarray) -> float:
        prior = NIGPrior(point[0], *np.exp(point[1:]))
        return float(np.sum(log_marginal_likelihood(prior, data)))

    # asymptotic standard errors from a finite-difference Hessian at the estimate
    h, hessian = 1e-3, np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * h, np.eye(4)[j] * h
            hessian[i, j] = (loglik(z + e_i + e_j) - loglik(z + e_i - e_j)
                             - loglik(z - e_i + e_j) + loglik(z - e_i - e_j)) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    true = np.array([truth.mu, math.log(truth.tau), math.log(truth.alpha),
                     math.log(truth.beta)])
    assert np.all(np.abs(z - true) < 4 * se), (z, true, se)


def test_partial_pooling_shrinks_group_means_towards_mu() -> None:
    rng = np.random.default_rng(3)
    rows = [(f"g{j}", v) for j in range(40)
            for v in rng.normal(rng.normal(0, 1), rng.lognormal(0, 0.7), 4)]
    table = pd.DataFrame(rows, columns=["g", "y"])
    fit = NIGModel(pooling="partial").fit(table, y="y", group="g")
    mu = fit.estimate["mu"] if fit.estimate else math.nan
    raw = table.groupby("g", sort=False)["y"].mean()
    posterior_means = np.array([fit.theta_marginal(label).mean() for label in raw.index])
    assert np.all(np.abs(posterior_means - mu) < np.abs(raw - mu))
    hyper = fit.summary().head(4)
    assert hyper["param"].tolist() == ["mu", "tau", "alpha", "beta"]
    assert hyper["mean"].iloc[0] == mu


def test_equal_variances_warn_that_sigma_is_pooled_completely() -> None:
    table = pd.DataFrame({"g": list("aaabbbccc"),
                          "y": [0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 2.0, 3.0, 4.0]})
    with pytest.warns(ConvergenceWarning, match="α → ∞"):
        NIGModel(pooling="partial").fit(table, y="y", group="g")


@pytest.mark.parametrize(("kwargs", "fit_kwargs", "error", "match"), [
    ({"pooling": "partial", "prior": "mu=0, tau=1, alpha=1, beta=1"}, {}, SpecificationError,
     "estimates μ, τ, α and β"),
    ({"pooling": "none"}, {"method": "nuts"}, SpecificationError, "fitted by exact"),
    ({"pooling": "none", "prior": "mu=0, tau=1"}, {}, SpecificationError, "missing: alpha"),
    ({"pooling": "none", "prior": "mu=0, tau=-1, alpha=1, beta=1"}, {}, SpecificationError,
     "tau = -1"),
    ({"pooling": "none"}, {"y": "x"}, DataError, "'x'"),
])
def test_bad_specifications_are_refused(table: pd.DataFrame, kwargs: dict, fit_kwargs: dict,
                                        error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        NIGModel(**kwargs).fit(table, **({"y": "y", "group": "g"} | fit_kwargs))


def test_cli_fits_raw_observations(table: pd.DataFrame, tmp_path, capsys) -> None:
    path = tmp_path / "obs.csv"
    table.to_csv(path, index=False)
    code = main(["fit", str(path), "--family", "nig", "--y", "y", "--group", "g",
                 "--pooling", "none", "--format", "json", "--out", str(tmp_path / "out")])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["family"] == "nig" and document["method"] == "exact"
    assert {row["param"] for row in document["summary"]} == {"theta", "sigma2"}
    assert (tmp_path / "out" / "summary.csv").exists()


def test_cli_refuses_nig_with_standard_errors(table: pd.DataFrame, tmp_path, capsys) -> None:
    path = tmp_path / "obs.csv"
    table.assign(se=1.0).to_csv(path, index=False)
    code = main(["fit", str(path), "--family", "nig", "--y", "y", "--group", "g",
                 "--se", "se"])
    assert code == 2
    assert "raw observations" in capsys.readouterr().err
