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

import poolwise
from poolwise.cli import main
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.normal_inverse_gamma import (
    NIGPrior,
    NormalStats,
    log_marginal_likelihood,
)
from poolwise.kinds.nig import NIGData, NIGFit, NIGModel, default_prior, nig_data, type2_ml
from poolwise.results.checks import CHECK_COLUMNS
from poolwise.results.prediction import (
    ExistingGroup,
    NewGroup,
    NewGroupIn,
    NewRows,
    Population,
)

PRIOR = NIGPrior(mu=1.0, tau=2.0, alpha=2.0, beta=1.5)
POOLINGS = ("none", "complete", "partial")


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = [(label, value) for label, (mean, sd, n) in
            {"a": (0.0, 1.0, 6), "b": (3.0, 2.0, 4), "c": (1.0, 0.5, 9)}.items()
            for value in rng.normal(mean, sd, n)]
    return pd.DataFrame(rows, columns=["g", "y"])


@pytest.fixture
def with_single(table: pd.DataFrame) -> pd.DataFrame:
    """The table and a fourth group, ``d``, of one observation."""
    return pd.concat([table, pd.DataFrame({"g": ["d"], "y": [2.0]})], ignore_index=True)


def closed_form(prior: NIGPrior, y: np.ndarray) -> tuple[float, float, float, float]:
    """(m*, v*, α*, β*) written out from the textbook formulas (BDA3 §3.3)."""
    n, ybar = y.size, float(np.mean(y))
    v = 1.0 / (n + 1.0 / prior.tau**2)
    m = (n * ybar + prior.mu / prior.tau**2) * v
    beta = prior.beta + 0.5 * (np.sum(y**2) + prior.mu**2 / prior.tau**2 - m**2 / v)
    return m, v, prior.alpha + n / 2, float(beta)


def mean_predictive(m: float, v: float, a: float, b: float, k: float = 1.0):
    """The mean of k new observations: ȳ* = θ + σ ε/√k ~ t_{2α*}(m*, β*(v* + 1/k)/α*)."""
    return stats.t(df=2 * a, loc=m, scale=math.sqrt(b * (v + 1 / k) / a))


# ------------------------------------------------------------------ the posterior
def test_no_pooling_draws_match_the_closed_form_for_each_group(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR, draws=2000).fit(table, y="y", group="g")
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
    assert fit.summary()["group"].isna().all()


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
    fit = NIGModel(pooling="none").fit(table, y="y", group="g")
    assert fit.prior == prior
    assert "default prior, scaled to the data" in fit.describe_prior()


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
    fit = NIGModel().fit(table, y="y", group="g")  # partial pooling is the default
    assert fit.method == "eb-ml"
    mu = fit.estimate["mu"] if fit.estimate else math.nan
    raw = table.groupby("g", sort=False)["y"].mean()
    posterior_means = np.array([fit.theta_marginal(label).mean() for label in raw.index])
    assert np.all(np.abs(posterior_means - mu) < np.abs(raw - mu))
    hyper = fit.summary().head(4)
    assert hyper["param"].tolist() == ["mu", "tau", "alpha", "beta"]
    assert hyper["group"].isna().all() and hyper["sd"].isna().all()
    assert hyper["mean"].iloc[0] == mu
    assert fit.prior == NIGPrior(*(fit.estimate[k] for k in ("mu", "tau", "alpha", "beta")))


def test_equal_variances_warn_that_sigma_is_pooled_completely() -> None:
    table = pd.DataFrame({"g": list("aaabbbccc"),
                          "y": [0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 2.0, 3.0, 4.0]})
    with pytest.warns(ConvergenceWarning, match="α → ∞") as caught:
        NIGModel(pooling="partial").fit(table, y="y", group="g")
    assert caught[0].filename == __file__  # the warning points at the caller of fit


# ------------------------------------------------------------------ the model's settings
@pytest.mark.parametrize(("kwargs", "fit_kwargs", "error", "match"), [
    ({"pooling": "partial", "prior": "mu=0, tau=1, alpha=1, beta=1"}, {}, SpecificationError,
     "estimates μ, τ, α and β"),
    ({"pooling": "none", "method": "nuts"}, {}, SpecificationError,
     "unknown method 'nuts' for a nig model"),
    ({"pooling": "none", "method": "eb-ml"}, {}, SpecificationError,
     "'eb-ml' is for partial pooling"),
    ({"pooling": "none", "prior": "mu=0, tau=1"}, {}, SpecificationError, "missing: alpha"),
    ({"pooling": "none", "prior": "mu=0, tau=-1, alpha=1, beta=1"}, {}, SpecificationError,
     "tau = -1"),
    ({"pooling": "none", "prior": 3.0}, {}, SpecificationError, "not float"),
    ({"pooling": "none", "draws": 0}, {}, SpecificationError, "draws must be an integer ≥ 1"),
    ({"pooling": "sometimes"}, {}, SpecificationError, "pooling must be one of"),
    ({"family": "normal"}, {}, SpecificationError, "not 'normal'"),
    ({"family": "poison"}, {}, SpecificationError, "NIGModel is the normal-inverse-gamma family"),
    ({"pooling": "none"}, {"y": "x"}, DataError, "'x'"),
    ({"pooling": "partial"}, {"group": None}, DataError, "at least 2 groups"),
])
def test_bad_specifications_are_refused(table: pd.DataFrame, kwargs: dict, fit_kwargs: dict,
                                        error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        NIGModel(**kwargs).fit(table, **({"y": "y", "group": "g"} | fit_kwargs))


def test_the_nuts_settings_are_not_options_of_the_nig_kind(table: pd.DataFrame) -> None:
    with pytest.raises(TypeError):
        NIGModel(target_accept=0.9)  # type: ignore[call-arg]
    with pytest.raises(SpecificationError, match="target_accept= is for"):
        poolwise.fit(table, family="nig", y="y", group="g", target_accept=0.9)


@pytest.mark.parametrize("family", ["nig", "normal-inverse-gamma", "NIG", None])
def test_the_family_names_the_kind(family: str | None) -> None:
    assert NIGModel(family=family).kind == "nig"


def test_the_spec_rebuilds_the_model() -> None:
    model = NIGModel(pooling="none", prior="mu=0.1, tau=2, alpha=3, beta=0.7", seed=3,
                     draws=10)
    spec = model.spec()
    assert json.loads(json.dumps(spec)) == spec
    rebuilt = NIGModel(**spec)
    assert rebuilt.spec() == spec and rebuilt.prior == model.prior
    assert rebuilt.config == model.config and rebuilt.method == "exact"
    given = NIGModel(pooling="complete", prior=PRIOR)
    assert NIGModel(**given.spec()).prior == PRIOR
    assert model.replace(pooling="complete").pooling == "complete"


def test_poolwise_fit_picks_the_nig_kind(table: pd.DataFrame) -> None:
    fit = poolwise.fit(table, family="nig", y="y", group="g", pooling="none", draws=50)
    assert isinstance(fit, NIGFit) and fit.kind == "nig" and fit.method == "exact"
    assert poolwise.fit(table, family="normal-inverse-gamma", y="y", group="g",
                        draws=50).method == "eb-ml"


@pytest.mark.parametrize(("pooling", "title"), [
    ("none", "normal-inverse-gamma, no pooling, method exact, 3 groups by 'g'"),
    ("complete", "normal-inverse-gamma, complete pooling, method exact, 3 groups by 'g'"),
    ("partial", "normal-inverse-gamma, partial pooling, method eb-ml, 3 groups by 'g'"),
])
def test_title(table: pd.DataFrame, pooling: str, title: str) -> None:
    assert NIGModel(pooling=pooling, draws=10).fit(table, y="y", group="g").title() == title


# ------------------------------------------------------------------ saving
@pytest.mark.parametrize(("pooling", "prior"), [
    ("none", None), ("none", PRIOR), ("complete", None), ("partial", None)])
def test_save_and_load_keep_everything(with_single: pd.DataFrame, tmp_path, pooling: str,
                                       prior: NIGPrior | None) -> None:
    fit = NIGModel(pooling=pooling, prior=prior, draws=200, seed=4).fit(
        with_single, y="y", group="g")
    fit.save(tmp_path / "fit.nc")
    loaded = poolwise.load(tmp_path / "fit.nc")
    assert isinstance(loaded, NIGFit)
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    assert loaded.prior == fit.prior  # the resolved prior, exactly
    assert loaded.estimate == fit.estimate
    assert loaded.model.spec() == fit.model.spec() and loaded.config == fit.config
    assert (loaded.title(), loaded.describe_prior(), loaded.equations()) == (
        fit.title(), fit.describe_prior(), fit.equations())
    assert loaded.data.labels.tolist() == fit.data.labels.tolist()
    assert loaded.data.notes == fit.data.notes and loaded.data.y_name == "y"
    for name in ("n", "mean", "sum_sq_dev"):
        np.testing.assert_array_equal(getattr(loaded.data.stats, name),
                                      getattr(fit.data.stats, name))
    for request in (ExistingGroup("a", size=3), NewGroup(size=2)):
        np.testing.assert_array_equal(loaded.predict(request)["y"], fit.predict(request)["y"])
    pd.testing.assert_frame_equal(loaded.predictive_check(), fit.predictive_check())


# ------------------------------------------------------------------ predictions
@pytest.mark.parametrize("size", [None, 5])
def test_existing_group_follows_the_student_t_predictive(table: pd.DataFrame,
                                                         size: int | None) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR).fit(table, y="y", group="g")
    prediction = fit.predict(ExistingGroup("b", size=size))
    k = 1 if size is None else size
    m, v, a, b = closed_form(PRIOR, table.loc[table["g"] == "b", "y"].to_numpy())
    # ȳ* = θ + σ ε/√k: t_{2α*}(m*, β*(v* + 1/k)/α*)
    predictive = mean_predictive(m, v, a, b, k)
    assert stats.kstest(prediction["y"], predictive.cdf).pvalue > 1e-3
    np.testing.assert_array_equal(prediction["theta"], fit.draws("theta")[..., 1].ravel())
    summary = prediction.summary().set_index("param")
    assert summary.loc["y", "mean"] == pytest.approx(m)
    assert summary.loc["y", "upper"] == pytest.approx(predictive.ppf(0.975))
    assert summary.loc["theta", "sd"] == pytest.approx(fit.theta_marginal("b").std())
    assert "group 'b'" in prediction.description
    assert prediction.draws["y"].shape == (4, 1000)


def test_existing_group_under_complete_pooling_uses_the_common_theta(
        table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="complete", prior=PRIOR).fit(table, y="y", group="g")
    prediction = fit.predict(ExistingGroup("a", size=2))
    np.testing.assert_array_equal(prediction["theta"], fit.draws("theta").ravel())
    m, v, a, b = closed_form(PRIOR, table["y"].to_numpy())
    assert stats.kstest(prediction["y"], mean_predictive(m, v, a, b, 2).cdf).pvalue > 1e-3
    assert "common θ and σ²" in prediction.description


def test_new_group_comes_from_the_fixed_prior_under_no_pooling(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR, draws=2000).fit(table, y="y", group="g")
    prediction = fit.predict(NewGroup())
    # θ_new ~ t_{2α}(μ, β τ²/α) marginally, and ȳ* ~ t_{2α}(μ, β (τ² + 1)/α)
    prior_theta = stats.t(df=2 * PRIOR.alpha, loc=PRIOR.mu,
                          scale=math.sqrt(PRIOR.beta * PRIOR.tau**2 / PRIOR.alpha))
    assert stats.kstest(prediction["theta"], prior_theta.cdf).pvalue > 1e-3
    prior_y = mean_predictive(PRIOR.mu, PRIOR.tau**2, PRIOR.alpha, PRIOR.beta)
    assert stats.kstest(prediction["y"], prior_y.cdf).pvalue > 1e-3
    assert prediction["y"].shape == prediction["theta"].shape == (8000,)
    assert "population of a new group" in prediction.description


def test_new_group_comes_from_the_estimated_population_under_partial_pooling(
        table: pd.DataFrame) -> None:
    fit = NIGModel(draws=2000).fit(table, y="y", group="g")
    p = fit.prior
    prediction = fit.predict(NewGroup(size=4))
    population = stats.t(df=2 * p.alpha, loc=p.mu, scale=math.sqrt(p.beta * p.tau**2 / p.alpha))
    assert stats.kstest(prediction["theta"], population.cdf).pvalue > 1e-3
    assert stats.kstest(prediction["y"],
                        mean_predictive(p.mu, p.tau**2, p.alpha, p.beta, 4).cdf).pvalue > 1e-3
    assert "estimated by eb-ml" in prediction.description


def test_new_group_shares_the_common_theta_under_complete_pooling(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="complete").fit(table, y="y", group="g")
    prediction = fit.predict(NewGroup(size=3))
    np.testing.assert_array_equal(prediction["theta"], fit.draws("theta").ravel())


@pytest.mark.parametrize("pooling", POOLINGS)
def test_a_new_group_with_its_own_data_is_refused(table: pd.DataFrame, pooling: str) -> None:
    fit = NIGModel(pooling=pooling, draws=10).fit(table, y="y", group="g")
    with pytest.raises(SpecificationError, match="add the new group's rows"):
        fit.predict(NewGroup(size=3, y=1.0))


def test_population(table: pd.DataFrame) -> None:
    partial = NIGModel().fit(table, y="y", group="g")
    mu = partial.predict(Population())["mu"]
    assert np.all(mu == partial.estimate["mu"]) and mu.size == 4000
    assert "fixed" in partial.predict(Population()).description
    complete = NIGModel(pooling="complete").fit(table, y="y", group="g")
    theta = complete.predict(Population())
    np.testing.assert_array_equal(theta["theta"], complete.draws("theta").ravel())
    assert theta.summary()["mean"].iloc[0] == pytest.approx(complete.theta_marginal().mean())
    none = NIGModel(pooling="none").fit(table, y="y", group="g")
    with pytest.raises(SpecificationError, match="cannot answer Population"):
        none.predict(Population())


@pytest.mark.parametrize("pooling", POOLINGS)
def test_requests_it_does_not_answer_are_refused(table: pd.DataFrame, pooling: str) -> None:
    fit = NIGModel(pooling=pooling, draws=10).fit(table, y="y", group="g")
    for request in (NewGroupIn("a"), NewRows(table)):
        with pytest.raises(SpecificationError, match="cannot answer"):
            fit.predict(request)
    with pytest.raises(SpecificationError, match="no group 'z'"):
        fit.predict(ExistingGroup("z"))
    with pytest.raises(SpecificationError, match="whole number"):
        fit.predict(ExistingGroup("a", size=2.5))
    with pytest.raises(SpecificationError, match="one grouping factor"):
        fit.predict(ExistingGroup("a", factor="lab"))


def test_the_same_seed_gives_the_same_draws(table: pd.DataFrame) -> None:
    first = NIGModel(pooling="none", seed=5, draws=100).fit(table, y="y", group="g")
    again = NIGModel(pooling="none", seed=5, draws=100).fit(table, y="y", group="g")
    other = NIGModel(pooling="none", seed=6, draws=100).fit(table, y="y", group="g")
    np.testing.assert_array_equal(first.draws("theta"), again.draws("theta"))
    assert not np.array_equal(first.draws("theta"), other.draws("theta"))
    request = ExistingGroup("a")
    np.testing.assert_array_equal(first.predict(request)["y"], again.predict(request)["y"])
    assert not np.array_equal(first.predict(request)["y"], first.predict(request, seed=9)["y"])
    np.testing.assert_array_equal(first.posterior_predictive()["mean"],
                                  again.posterior_predictive()["mean"])
    assert not np.array_equal(first.posterior_predictive()["mean"],
                              first.posterior_predictive(seed=9)["mean"])


# ------------------------------------------------------------------ predictive checks
@pytest.mark.parametrize("pooling", POOLINGS)
def test_posterior_predictive_shapes(with_single: pd.DataFrame, pooling: str) -> None:
    fit = NIGModel(pooling=pooling, draws=300, chains=2).fit(with_single, y="y", group="g")
    replicated = fit.posterior_predictive()
    assert set(replicated.data_vars) == {"mean", "sum_sq_dev"}
    for name in ("mean", "sum_sq_dev"):
        assert replicated[name].dims == ("chain", "draw", "group")
        assert replicated[name].shape == (2, 300, 4)
    assert replicated["group"].values.tolist() == ["a", "b", "c", "d"]
    assert np.all(replicated["sum_sq_dev"].sel(group="d") == 0)
    assert np.all(replicated["sum_sq_dev"].sel(group="a") > 0)


def test_replicated_statistics_follow_their_closed_forms(table: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", prior=PRIOR, draws=2000).fit(table, y="y", group="g")
    replicated = fit.posterior_predictive()
    y = table.loc[table["g"] == "c", "y"].to_numpy()
    m, v, a, b = closed_form(PRIOR, y)
    mean = replicated["mean"].sel(group="c").values.ravel()
    # the replicated mean of n_j observations: t_{2α*}(m*, β*(v* + 1/n_j)/α*)
    assert stats.kstest(mean, mean_predictive(m, v, a, b, y.size).cdf).pvalue > 1e-3
    # E[SS_rep / (n − 1)] = E[σ²] = β*/(α* − 1); the draws are independent
    per_dof = replicated["sum_sq_dev"].sel(group="c").values.ravel() / (y.size - 1)
    se = per_dof.std(ddof=1) / math.sqrt(per_dof.size)
    assert abs(per_dof.mean() - b / (a - 1)) < 4 * se


def test_predictive_check_columns(with_single: pd.DataFrame) -> None:
    fit = NIGModel(pooling="none", draws=200).fit(with_single, y="y", group="g")
    table = fit.predictive_check()
    assert table.columns.tolist() == CHECK_COLUMNS
    assert set(table["variable"]) == {"mean", "sd"}
    groups = table[table["statistic"] == "group mean"]
    assert groups.loc[groups["variable"] == "mean", "group"].tolist() == ["a", "b", "c", "d"]
    assert groups.loc[groups["variable"] == "sd", "group"].tolist() == ["a", "b", "c"]
    observed = groups.set_index(["variable", "group"])["observed"]
    sd = with_single.groupby("g")["y"].std()
    assert observed[("sd", "b")] == pytest.approx(sd["b"])
    assert observed[("mean", "d")] == 2.0
    checks = fit.check_data()
    assert [c.label for c in checks] == ["group mean of y", "group sd of y"]
    assert not any(c.discrete for c in checks)


def test_log_likelihood_of_each_group(table: pd.DataFrame) -> None:
    for pooling in ("none", "complete"):
        fit = NIGModel(pooling=pooling, draws=20).fit(table, y="y", group="g")
        values = fit.with_log_likelihood()["log_likelihood"]["y"]
        assert values.shape == (4, 20, 3)
        theta = fit.draws("theta")[1, 7]
        sigma2 = fit.draws("sigma2")[1, 7]
        if pooling == "none":
            theta, sigma2 = theta[2], sigma2[2]
        y = table.loc[table["g"] == "c", "y"].to_numpy()
        expected = stats.norm(theta, math.sqrt(sigma2)).logpdf(y).sum()
        assert float(values.sel(group="c")[1, 7]) == pytest.approx(expected)


# ------------------------------------------------------------------ prior predictive
def test_prior_predictive_under_no_pooling(table: pd.DataFrame) -> None:
    model = NIGModel(pooling="none", prior=PRIOR, draws=1000, seed=2)
    drawn = model.prior_predictive(table, y="y", group="g")
    theta = drawn.tree["prior"]["theta"]
    assert theta.dims == ("chain", "draw", "group") and theta.shape == (1, 4000, 3)
    # θ ~ t_{2α}(μ, β τ²/α); the mean of n_j observations ~ t_{2α}(μ, β (τ² + 1/n_j)/α)
    prior_theta = stats.t(df=2 * PRIOR.alpha, loc=PRIOR.mu,
                          scale=math.sqrt(PRIOR.beta * PRIOR.tau**2 / PRIOR.alpha))
    assert stats.kstest(theta.values[0, :, 0], prior_theta.cdf).pvalue > 1e-3
    mean = drawn.tree["prior_predictive"]["mean"].values[0, :, 1]  # group b, n = 4
    predictive = mean_predictive(PRIOR.mu, PRIOR.tau**2, PRIOR.alpha, PRIOR.beta, 4)
    assert stats.kstest(mean, predictive.cdf).pvalue > 1e-3
    assert drawn.check().columns.tolist() == CHECK_COLUMNS
    assert set(drawn.summary()["param"]) == {"theta", "sigma2"}
    np.testing.assert_array_equal(
        theta.values, model.prior_predictive(table, y="y", group="g").tree["prior"]["theta"])


def test_prior_predictive_under_complete_pooling_shares_one_theta(table: pd.DataFrame) -> None:
    drawn = NIGModel(pooling="complete", draws=100).prior_predictive(table, y="y", group="g")
    assert drawn.tree["prior"]["theta"].dims == ("chain", "draw")
    assert drawn.tree["prior_predictive"]["mean"].shape == (1, 400, 3)
    assert "default prior" in drawn.prior


def test_prior_predictive_is_refused_for_empirical_bayes(table: pd.DataFrame) -> None:
    with pytest.raises(SpecificationError, match="eb-ml estimates the prior from the data, "
                       "so there is no prior to draw from"):
        NIGModel().prior_predictive(table, y="y", group="g")


# ------------------------------------------------------------------ graph and equations
def _data(n_groups: int) -> NIGData:
    return NIGData(np.arange(n_groups).astype(str),
                   NormalStats(np.full(n_groups, 3.0), np.zeros(n_groups), np.ones(n_groups)),
                   "g")


@pytest.mark.parametrize(("n_groups", "plates"), [
    (None, [("groups", r"$j = 1, \ldots, J$", None), ("observations", r"$i = 1, \ldots, n_j$",
                                                      "groups")]),
    (12, [("groups", r"$j = 1, \ldots, 12$", None), ("observations",
                                                     r"$i = 1, \ldots, n_j$", "groups")]),
    (1, [("observations", r"$i = 1, \ldots, 3$", None)]),
])
def test_graph(n_groups: int | None, plates: list) -> None:
    model = NIGModel(pooling="none", prior=NIGPrior(mu=0.0, tau=2.0, alpha=3.0, beta=1.5))
    graph = model.graph(None if n_groups is None else _data(n_groups))
    assert [(p.name, p.label, p.inside) for p in graph.plates] == plates
    assert {n: graph.node(n).label for n in graph.fixed()} == {
        "mu": r"$\mu = 0$", "tau": r"$\tau = 2$", "alpha": r"$\alpha = 3$",
        "beta": r"$\beta = 1.5$"}
    assert graph.observed() == ("y",)
    assert set(graph.parents("theta")) == {"mu", "tau", "sigma2"}
    assert set(graph.parents("sigma2")) == {"alpha", "beta"}
    assert set(graph.parents("y")) == {"theta", "sigma2"}
    assert graph.plate_of("y").name == "observations"
    if n_groups != 1:
        assert graph.plate_of("theta").name == "groups"
        assert [p.name for p in graph.enclosing(graph.plate_of("y"))] == [
            "observations", "groups"]


def test_graph_of_complete_and_partial_pooling(table: pd.DataFrame) -> None:
    complete = NIGModel(pooling="complete").fit(table, y="y", group="g").graph()
    assert complete.plate_of("theta") is None
    assert [p.label for p in complete.plates] == [r"$i = 1, \ldots, 19$"]
    model = NIGModel()
    assert model.graph().node("mu").label == r"$\hat{\mu}$"
    fit = model.fit(table, y="y", group="g")
    assert fit.graph().node("tau").label == rf"$\hat{{\tau}} = {fit.prior.tau:g}$"
    default = NIGModel(pooling="none").graph(nig_data(table, y="y", group="g"))
    assert default.node("tau").label == r"$\tau = 10$"


def test_equations_parse_and_carry_the_values(table: pd.DataFrame) -> None:
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("agg")
    none = NIGModel(pooling="none", prior=NIGPrior(1.5, 2.0, 3.0, 4.0)).equations(_data(5))
    assert r"\mathrm{IG}(3, 4)" in none[2] and "1.5" in none[1]
    assert r"j = 1, \ldots, 5" in none[0]
    complete = NIGModel(pooling="complete").equations()
    assert complete[0] == r"y_i \sim \mathrm{N}(\theta, \sigma^2), \quad i = 1, \ldots, N"
    partial = NIGModel().fit(table, y="y", group="g").equations()
    assert len(partial) == 4 and f"{partial[-1]}".startswith(r"\hat{\mu} = ")
    for line in none + complete + partial:
        parser.parse(f"${line}$", dpi=72)


# ------------------------------------------------------------------ the command line
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
    assert "--se is for normal and nested models, not nig ones" in capsys.readouterr().err


def test_a_misspelt_nig_constant_is_named():
    from poolwise.kinds.nig import parse_nig_prior

    with pytest.raises(SpecificationError, match=r"unknown constant 'tua' in the NIG prior "
                                                 r"\(did you mean 'tau'\?\); valid: mu, tau"):
        parse_nig_prior("mu=0, tua=1, alpha=2, beta=1")
