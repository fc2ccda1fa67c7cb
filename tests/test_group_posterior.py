"""Each group's posterior from the hyperparameter draws (inference/group_posterior.py)
against independent references: θ's own draws, the conjugate closed form, and the mixture
CDF evaluated over every draw."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import poolwise.inference.base as inference_base
from poolwise import Model, load
from poolwise.families import get_family
from poolwise.inference.group_posterior import SPREAD_FOR_MIXTURE, summarise_groups
from poolwise.results.prediction import ExistingGroup

CI = 0.95
TAIL = (1 - CI) / 2
#: |z| beyond which a group disagrees; over ≤ 2,000 groups a false alarm has probability
#: about 2,000 × 5.7e-7 ≈ 1e-3 (two-sided normal tail at 5)
Z = 5.0


def simulated(family: str, groups: int, seed: int = 1) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    if family == "beta-binomial":
        n = rng.integers(5, 200, groups)
        y = rng.binomial(n, rng.beta(2.0, 18.0, groups))
        return pd.DataFrame({"g": np.arange(groups), "y": y, "n": n}), {"n": "n"}
    if family == "gamma-poisson":
        exposure = rng.uniform(0.5, 5.0, groups)
        y = rng.poisson(exposure * rng.gamma(3.0, 1 / 1.5, groups))
        return pd.DataFrame({"g": np.arange(groups), "y": y, "n": exposure}), {"n": "n"}
    se = rng.uniform(0.3, 2.0, groups)
    y = rng.normal(rng.normal(1.0, 0.5, groups), se)
    return pd.DataFrame({"g": np.arange(groups), "y": y, "se": se}), {"se": "se"}


def mixture(fit, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1/S) Σ_s F(t_j | y_j, α_s, β_s) over every hyperparameter draw of the fit, and the
    mixture's density there."""
    family = fit.model.family
    alpha, beta, y, n = fit.model.conditionals(fit.data, fit._hyper_draws(), fit.eb)
    cdf, pdf = np.empty(t.size), np.empty(t.size)
    for start in range(0, t.size, 200):
        part = slice(start, start + 200)
        conditional = family.population(*family.conjugate_update(
            alpha[:, None], beta[:, None], y[part], n[part]))
        cdf[part] = conditional.cdf(t[part]).mean(axis=0)
        pdf[part] = conditional.pdf(t[part]).mean(axis=0)
    return cdf, pdf


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson", "normal"])
def test_summaries_from_hyperparameters_agree_with_theta_draws(family):
    """1,000 groups × 4,000 draws: θ is drawn and stored (today's full-draw path); the
    Rao-Blackwellised summary must agree with its draws within both Monte Carlo errors, and
    its interval ends must solve the mixture's CDF equation over every draw within their
    reported error."""
    table, columns = simulated(family, 1000)
    fit = Model(family=family).fit(table, y="y", group="g", **columns)
    assert fit.stores_group_draws
    theta = fit.draws("theta").reshape(-1, 1000)
    draws = theta.shape[0]
    summary = fit.group_summary(CI)
    z = (summary.mean - theta.mean(axis=0)) / np.hypot(theta.std(axis=0) / np.sqrt(draws),
                                                       summary.mcse_mean)
    assert np.max(np.abs(z)) < Z
    for level, end, error in ((TAIL, summary.lower, summary.mcse_lower),
                              (1 - TAIL, summary.upper, summary.mcse_upper)):
        cdf, pdf = mixture(fit, end)
        allowed = Z * np.maximum(error * pdf, 1e-6)  # 1e-6: Newton's stopping error
        assert np.all(np.abs(cdf - level) < allowed)
        # the draws' quantile: the level up to the binomial error of the draws
        cdf_drawn, _ = mixture(fit, np.quantile(theta, level, axis=0))
        assert np.max(np.abs(cdf_drawn - level)) < Z * np.sqrt(level * (1 - level) / draws)
    assert np.allclose(summary.pooling_factor, fit.pooling_factors().to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson", "normal"])
def test_fixed_estimates_give_the_conjugate_closed_form(family):
    table, columns = simulated(family, 300)
    # the plug-in intervals: θ_j | y_j, α̂, β̂ exactly (the default adds the estimates'
    # uncertainty, tests/test_eb_intervals.py)
    fit = Model(family=family, method="eb-ml", eb_intervals="plug-in").fit(
        table, y="y", group="g", **columns)
    conditional = fit.model.family.conditional(fit.eb.alpha, fit.eb.beta, fit.data.y,
                                               fit.data.n)
    summary = fit.group_summary(CI)
    assert np.allclose(summary.mean, conditional.mean(), rtol=1e-10)
    assert np.allclose(summary.sd, conditional.std(), rtol=1e-8)
    assert np.allclose(summary.lower, conditional.ppf(TAIL), rtol=1e-8)
    assert np.allclose(summary.upper, conditional.ppf(1 - TAIL), rtol=1e-8)
    assert np.all(summary.mcse_mean == 0) and summary.draws_moments == 1


def test_subsampled_draws_report_an_honest_error():
    """With many distinct groups a subset of the draws is used; each figure's reported
    Monte Carlo error must cover its distance from the one computed with every draw."""
    rng = np.random.default_rng(5)
    family = get_family("beta-binomial")
    groups = 200_000
    n = rng.integers(5, 3000, groups).astype(float)
    y = rng.binomial(n.astype(int), rng.beta(2.0, 18.0, groups)).astype(float)
    alpha, beta = rng.gamma(400.0, 2.0 / 400, 4000), rng.gamma(400.0, 18.0 / 400, 4000)
    many = summarise_groups(family, alpha, beta, y, n, CI)
    assert many.draws_moments < 4000 and many.draws_quantiles < many.draws_moments
    some = rng.choice(groups, 100, replace=False)  # few enough for every draw
    every = summarise_groups(family, alpha, beta, y[some], n[some], CI)
    assert every.draws_moments == every.draws_quantiles == 4000
    for name in ("mean", "lower", "upper"):
        error = getattr(many, f"mcse_{name}")[some]
        assert np.max(np.abs(getattr(many, name)[some] - getattr(every, name))
                      / np.hypot(error, getattr(every, f"mcse_{name}"))) < Z, name


def test_conditionals_that_barely_differ_need_no_newton_step():
    """Where the conditional means spread by < 1 % of the sd, the moment-matched quantile
    is the mixture's to well within a thousandth of the sd."""
    rng = np.random.default_rng(2)
    family = get_family("gamma-poisson")
    alpha, beta = rng.normal(3.0, 0.003, 4000), rng.normal(1.5, 0.0015, 4000)
    y, exposure = rng.poisson(20.0, 500).astype(float), rng.uniform(5.0, 15.0, 500)
    summary = summarise_groups(family, alpha, beta, y, exposure, CI)
    a, b = family.conjugate_update(alpha[:, None], beta[:, None], y, exposure)
    means = family.population_moments(a, b)[0]
    assert np.all(means.std(axis=0) < SPREAD_FOR_MIXTURE * summary.sd)
    cdf = family.population(a, b).cdf(summary.lower).mean(axis=0)
    density = family.population(a, b).pdf(summary.lower).mean(axis=0)
    assert np.max(np.abs(cdf - TAIL) / density / summary.sd) < 1e-3


@pytest.fixture
def summaries_only(monkeypatch):
    """Fits leave θ undrawn from 1 draw × group up (the limit is 10^7 in use)."""
    monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)


@pytest.mark.parametrize("method", ["exact", "eb-ml"])
def test_a_fit_without_theta_draws_saves_loads_and_predicts(summaries_only, tmp_path,
                                                           method):
    table, columns = simulated("beta-binomial", 500)
    fit = Model(method=method, draws=500).fit(table, y="y", group="g", **columns)
    assert not fit.stores_group_draws and "group_summary" in fit.tree.children
    fit.save(tmp_path / "fit.nc")
    loaded = load(tmp_path / "fit.nc")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    # a group's draws do not depend on which other groups are asked for
    every = loaded.group_draws()
    assert np.array_equal(loaded.group_draws([300, 7])[..., 0], every[..., 300])
    label = str(fit.data.labels[300])
    predicted = loaded.predict(ExistingGroup(label)).draws["theta"]
    assert np.array_equal(np.ravel(predicted), np.ravel(every[..., 300]))
    # θ's draws are those of its conditionals: their mean agrees with the summary's
    row = loaded.summary().query("param == 'theta' and group == @label").iloc[0]
    assert abs(every[..., 300].mean() - row["mean"]) < Z * row["sd"] / np.sqrt(2000)
    assert loaded.predictive_check().shape[0] > 0


def test_theta_is_not_drawn_above_the_limit(summaries_only):
    table, columns = simulated("normal", 50)
    for pooling in ("partial", "none", "complete"):
        fit = Model(family="normal", pooling=pooling,
                    prior="mu=normal(0, 5), tau=halfcauchy(5)" if pooling == "partial"
                    else None).fit(table, y="y", group="g", **columns)
        theta = fit.summary().query("param == 'theta'")
        assert len(theta) == (1 if pooling == "complete" else 50)
        if pooling == "none":  # flat prior: θ_j | y_j ~ N(y_j, σ_j²) exactly
            assert np.allclose(theta["mean"], table["y"]) and np.allclose(theta["sd"],
                                                                          table["se"])
            assert np.allclose(theta["upper"], stats.norm(table["y"], table["se"]).ppf(0.975))


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson", "normal"])
def test_replicates_without_theta_draws_follow_each_groups_predictive(summaries_only,
                                                                      family):
    """Replicated data of a fit that keeps no θ draws (θ drawn block by block with y_rep)
    against the closed-form posterior predictive of empirical Bayes, group by group: y_rep_j
    ~ BetaBinomial(n_j, α̂ + y_j, β̂ + n_j − y_j), NegBinomial(α̂ + y_j, (β̂ + E_j)/(β̂ + 2E_j))
    or N(m_j, v_j + σ_j²); the means within Z Monte Carlo standard errors, and the
    variances within Z standard errors of a sample variance."""
    table, columns = simulated(family, 100)
    # plug-in: the closed forms below are given (α̂, β̂), without Kass–Steffey's spread
    fit = Model(family=family, method="eb-ml", draws=1000, eb_intervals="plug-in").fit(
        table, y="y", group="g", **columns)
    assert not fit.stores_group_draws
    y_rep = fit.posterior_predictive()["y"].values.reshape(4000, -1)
    y, n = fit.data.y, fit.data.n
    a, b = fit.model.family.conjugate_update(fit.eb.alpha, fit.eb.beta, y, n)
    if family == "beta-binomial":
        mean = n * a / (a + b)
        var = n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1))
    elif family == "gamma-poisson":  # θ ~ Gamma(a, rate b), y ~ Poisson(E θ)
        mean, var = n * a / b, n * a / b + n**2 * a / b**2
    else:  # θ ~ N(a, b²) (mean and sd), y ~ N(θ, σ²)
        mean, var = a, b**2 + n**2
    draws = y_rep.shape[0]
    assert np.all(np.abs(y_rep.mean(axis=0) - mean) < Z * np.sqrt(var / draws))
    centred = y_rep - y_rep.mean(axis=0)
    se_var = np.sqrt((np.mean(centred**4, axis=0) - y_rep.var(axis=0) ** 2) / draws)
    assert np.all(np.abs(y_rep.var(axis=0) - var) < Z * se_var)


def test_replicates_of_an_exact_fit_agree_with_and_without_theta_draws(monkeypatch):
    """Full Bayes: the replicates drawn block by block (θ not kept) and those drawn from
    θ's stored draws (the computation below the limit) are draws of one distribution:
    each group's mean and sd agree within Z of their two-sample standard errors."""
    table, columns = simulated("beta-binomial", 30)
    model = Model(method="exact", prior="halfnormal(10)", draws=1000, seed=3)
    stored = model.fit(table, y="y", group="g", **columns)
    monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)
    summarised = model.fit(table, y="y", group="g", **columns)
    assert stored.stores_group_draws and not summarised.stores_group_draws
    old, new = (f.posterior_predictive()["y"].values.reshape(4000, -1)
                for f in (stored, summarised))
    se = np.sqrt((old.var(axis=0) + new.var(axis=0)) / 4000)
    assert np.all(np.abs(old.mean(axis=0) - new.mean(axis=0)) < Z * se)
    sd_se = np.sqrt((old.var(axis=0) + new.var(axis=0)) / (2 * 4000))  # sd's SE ≈ sd/√(2S)
    assert np.all(np.abs(old.std(axis=0) - new.std(axis=0)) < Z * sd_se)
