"""``exact`` against brute-force integration, the lecture notes and internal consistency.

Tolerances are in Monte Carlo standard errors: draws are independent, so the MCSE of a
mean is sd / sqrt(number of draws); |difference| / MCSE < 4 fails by chance with
probability about 6e-5 per comparison.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from poolwise import Model, NewGroup, datasets
from poolwise.exceptions import ImproperPosteriorError, PosteriorWarning, SamplingWarning

Z = 4.0


def brute_force_moments(y, n, prior_scale, size=1200):
    """Posterior expectations under α, β ~ HalfNormal(s) by a dense grid in (log α, log β).

    A different parametrisation and SciPy's betabinom: independent of poolwise's code.
    Returns E and sd of μ = α/(α+β), E of log(α+β) and E[θ_j] = E[(α+y_j)/(α+β+n_j)].
    """
    la = np.linspace(-9.0, np.log(12 * prior_scale), size)
    lb = np.linspace(-9.0, np.log(12 * prior_scale), size)
    LA, LB = np.meshgrid(la, lb, indexing="ij")
    A, B = np.exp(LA), np.exp(LB)
    prior = stats.halfnorm(scale=prior_scale)
    logp = prior.logpdf(A) + prior.logpdf(B) + LA + LB  # + Jacobian of (log α, log β)
    for yj, nj in zip(y, n, strict=True):
        logp += stats.betabinom.logpmf(yj, nj, A, B)
    w = np.exp(logp - logsumexp(logp))
    mu = A / (A + B)
    e_mu = np.sum(w * mu)
    out = {"mu": e_mu, "mu_sd": np.sqrt(np.sum(w * (mu - e_mu) ** 2)),
           "log_kappa": np.sum(w * np.log(A + B))}
    out["theta"] = np.array([np.sum(w * (A + yj) / (A + B + nj)) for yj, nj in zip(y, n,
                                                                                     strict=True)])
    return out


def test_exact_matches_brute_force_integration(spacex):
    """The SpaceX hierarchical model of the notes (HalfNormal(10) on α and β)."""
    y, n = spacex["successes"].to_numpy(), spacex["launches"].to_numpy()
    truth = brute_force_moments(y, n, 10.0)
    fit = Model(prior="halfnormal(10)", draws=5000, chains=4, seed=3).fit(
        spacex, y="successes", n="launches", group="vehicle_family")
    size = 20_000
    mu = fit.draws("mu").ravel()
    assert abs(mu.mean() - truth["mu"]) < Z * mu.std() / np.sqrt(size)
    # sd: the MCSE of a sample sd is about sd * sqrt((kurtosis - 1) / (4 N))
    kurt = stats.kurtosis(mu, fisher=False)
    assert abs(mu.std() - truth["mu_sd"]) < Z * mu.std() * np.sqrt((kurt - 1) / (4 * size))
    log_kappa = np.log(fit.draws("kappa").ravel())
    assert abs(log_kappa.mean() - truth["log_kappa"]) < Z * log_kappa.std() / np.sqrt(size)
    theta = fit.draws("theta").reshape(size, -1)
    err = np.abs(theta.mean(0) - truth["theta"]) / (theta.std(0) / np.sqrt(size))
    assert np.all(err < Z), err


def test_exact_draws_are_independent(rats):
    fit = Model(draws=1000, chains=4).fit(rats, y="y", n="n", group="experiment")
    table = fit.summary()
    # independent draws: ESS close to the number of draws, R-hat close to 1
    assert table["ess_bulk"].min() > 3000
    assert table["r_hat"].max() < 1.01


def test_new_group_with_data_equals_refitting_with_it(rats):
    """Reweighting by p(y_71 | α, β) is Bayes' rule: it must match a fit that includes it."""
    all71 = datasets.load("rats")
    with_71 = Model(draws=4000, seed=1).fit(all71, y="y", n="n", group="experiment")
    direct = with_71.draws("theta")[..., -1].ravel()
    historical = Model(draws=4000, seed=2).fit(rats, y="y", n="n", group="experiment")
    new = historical.predict(NewGroup(y=4, size=14))
    theta = new["theta"]
    mcse = np.hypot(direct.std() / np.sqrt(direct.size),
                    theta.std() * np.sqrt(1 / new.importance_ess + 1 / theta.size))
    assert abs(theta.mean() - direct.mean()) < Z * mcse
    assert new.importance_ess > 2000  # one small experiment barely moves (α, β)


def test_spacex_complete_pooling_is_above_094(spacex):
    """The notes: under complete pooling θ is 'almost entirely above 0.94'."""
    fit = Model(pooling="complete").fit(spacex, y="successes", n="launches",
                                        group="vehicle_family")
    # closed form: Beta(1/2 + Σy, 1/2 + Σ(n − y))
    post = stats.beta(0.5 + 317, 0.5 + 10)
    assert post.sf(0.94) > 0.99
    theta = fit.draws("theta")[..., 0].ravel()
    assert np.mean(theta > 0.94) == pytest.approx(post.sf(0.94), abs=Z * 0.01 / np.sqrt(40))
    assert abs(theta.mean() - post.mean()) < Z * post.std() / np.sqrt(theta.size)


def test_spacex_partial_pooling_pulls_the_weak_vehicles_together(spacex):
    kwargs = dict(y="successes", n="launches", group="vehicle_family")
    none = Model(pooling="none").fit(spacex, **kwargs).summary().set_index("group")
    partial = Model(prior="halfnormal(10)").fit(spacex, **kwargs).summary()
    partial = partial.query("param == 'theta'").set_index("group")
    for vehicle in ("Falcon 1", "Starship"):
        assert partial.loc[vehicle, "mean"] > none.loc[vehicle, "mean"] + 0.02
    # Falcon 9's 304 launches keep it where its data put it
    assert partial.loc["Falcon 9", "mean"] == pytest.approx(none.loc["Falcon 9", "mean"], abs=0.01)


def test_no_pooling_is_the_conjugate_posterior(spacex):
    fit = Model(pooling="none", draws=2000).fit(
        spacex, y="successes", n="launches", group="vehicle_family")
    table = fit.summary().set_index("group")
    post = stats.beta(0.5 + spacex["successes"], 0.5 + spacex["launches"] - spacex["successes"])
    size = 8000
    err = np.abs(table["mean"].to_numpy() - post.mean()) / (post.std() / np.sqrt(size))
    assert np.all(err < Z)


def test_kidney_smallest_counties_shrink_most():
    kidney = datasets.load("kidney")
    fit = Model(family="gamma-poisson", draws=250, chains=2).fit(
        kidney, y="deaths", n="population", group="Location")
    theta = fit.summary().query("param == 'theta'")
    mu = fit.population_mean()["mean"]
    # Bedford County, Virginia has two rows; they are summed into one group
    assert fit.data.n_groups == len(kidney) - 1
    population = fit.data.n
    raw = fit.data.y / population
    moved = np.abs(raw - theta["mean"].to_numpy())
    distance = np.abs(raw - mu)
    fraction = moved / np.where(distance > 0, distance, np.nan)
    small = population < np.quantile(population, 0.1)
    large = population > np.quantile(population, 0.9)
    assert np.nanmean(fraction[small]) > 0.8
    assert np.nanmean(fraction[large]) < 0.5
    assert stats.spearmanr(population, fraction, nan_policy="omit")[0] < -0.5


def test_homogeneous_data_give_a_long_but_proper_tail():
    """Equal rates everywhere: the concentration's posterior follows the prior's tail."""
    import pandas as pd

    table = pd.DataFrame({"g": list("abcdefghij"), "y": [5] * 10, "n": [50] * 10})
    # p(v) ∝ e^(-v/2) far out: the (α+β)^(-5/2) prior times a flat likelihood, so
    # E[α + β] is infinite and the fit must say so
    with pytest.warns(PosteriorWarning, match=r"exp\(−0\.5"):
        fit = Model(draws=500).fit(table, y="y", n="n", group="g")
    assert fit.summary().set_index("param").loc["mu", "mean"] == pytest.approx(0.1, abs=0.02)


def test_rats_under_bda_have_no_mean_of_alpha_but_one_of_mu(rats):
    """Under p(α, β) ∝ (α+β)^(−5/2) the likelihood tends to a constant as α + β → ∞, so
    p(v | y) ∝ e^(−v/2) far out (past v ≈ 8, beyond the grid): E[α], E[β], E[κ] and their sds
    are infinite, while μ and the θ_j, bounded, have both. The summary, the JSON flag and the
    CLI line must say so; under halfnormal(10) every moment exists."""
    with pytest.warns(PosteriorWarning, match=r"exp\(−0\.50 v\) far out"):
        fit = Model(draws=400).fit(rats, y="y", n="n", group="experiment")
    assert fit.info["tail_exponent"] == pytest.approx(0.5, abs=0.01)
    assert fit.infinite_moments() == {name: ["mean", "sd"] for name in ("alpha", "beta", "kappa")}
    table = fit.summary().set_index("param")
    for name in ("alpha", "beta", "kappa"):
        assert np.isnan(table.loc[name, "mean"]) and np.isnan(table.loc[name, "sd"])
        assert np.isfinite(table.loc[name, "lower"]) and np.isfinite(table.loc[name, "upper"])
    assert np.isfinite(table.loc["mu", "mean"]) and np.isfinite(table.loc["mu", "sd"])
    theta = table.loc["theta"]
    assert np.isfinite(theta["mean"]).all() and np.isfinite(theta["sd"]).all()
    from poolwise.outputs.writer import infinite_moments

    flag = infinite_moments(fit)
    assert flag is not None and set(flag) == {"alpha", "beta", "kappa"}
    assert flag["alpha"]["median"] == pytest.approx(np.median(fit.draws("alpha")))
    # the posterior, not the method: a Markov chain's fit measures the same tail past its draws
    with warnings.catch_warnings():  # a short chain's R-hat is not what this checks
        warnings.simplefilter("ignore", SamplingWarning)
        gibbs = Model(method="gibbs", draws=200, warmup=200).fit(rats, y="y", n="n",
                                                                group="experiment")
    assert gibbs.infinite_moments() == fit.infinite_moments()
    assert np.isnan(gibbs.summary().set_index("param").loc["alpha", "mean"])
    light = Model(draws=100, prior="halfnormal(10)").fit(rats, y="y", n="n", group="experiment")
    assert light.info["tail_exponent"] is None and light.infinite_moments() == {}
    assert infinite_moments(light) is None


@pytest.mark.parametrize(("log_density", "expected"), [
    (lambda v: -0.5 * v + np.log1p(np.exp(-v)), 0.5),  # the rats' tail, with a correction
    (lambda v: -2.5 * v - 3.0 * np.exp(-0.3 * v), 2.5),
    (lambda v: -np.exp(2.0 * v) / 200.0, None),  # half-normal in e^v: lighter than any e^(−cv)
    (lambda v: np.where(v < 20.0, -v, -np.inf), None),  # a density that ends
])
def test_far_tail_exponent_measures_the_asymptotic_rate(log_density, expected):
    from poolwise.inference.quadrature import far_tail_exponent, finite_moments

    measured = far_tail_exponent(log_density, 5.0)
    if expected is None:
        assert measured is None and finite_moments(measured) == 2
    else:
        assert measured == pytest.approx(expected, abs=0.01)
        assert finite_moments(measured) == int(expected > 1) + int(expected > 2)


def test_improper_posterior_is_refused():
    """Under (α+β)^(-5/2), groups that are all 0 or all n leave log(α+β) unbounded below."""
    import pandas as pd

    table = pd.DataFrame({"g": list("abcdef"), "y": [0, 10, 0, 8, 0, 0], "n": [10, 10, 8, 8, 9, 7]})
    with pytest.raises(ImproperPosteriorError, match="improper"):
        Model().fit(table, y="y", n="n", group="g")
