"""Adaptive Gauss–Hermite quadrature of GLMM group effects, its exact conditional draws,
and maximum likelihood by AGQ — each against something computed independently.

* The row log-likelihoods against scipy.stats and their derivatives against differences.
* Each group's log marginal likelihood log ∫ p(y_j | β, b) N(b | 0, Σ) db against direct
  numerical integration over b (SciPy's ``quad`` for k = 1, a Gauss–Legendre product rule
  for k = 2), for the
  binomial, bernoulli and poisson likelihoods; its error shrinks as points are added; one
  point equals the Laplace formula computed in b with SciPy's optimiser.
* The draws of b_j against the exact conditional: a Kolmogorov–Smirnov distance to the CDF
  tabulated on a fine grid (k = 1), the mean and covariance on a fine grid within their
  Monte Carlo errors (k = 2).
* cbpp (lme4's example) against published estimates: the Laplace fit against glmmML,
  glmmADMB and lme4.0 (lme4's tests/glmer-1.R) and lme4's printed summary; nAGQ = 25
  against lme4's fixed effects and deviance in the same file.
* eb-ml of a GLMM through MixedModel and the command line: the summary is the estimate,
  β's draws have its mean and standard errors, the group effects drawn at each draw's β
  follow their exact conditional, save → load keeps the summary, bad --agq is refused.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

import poolwise
from poolwise import SpecificationError
from poolwise.families.glm import row_likelihood
from poolwise.inference.agq import (
    conditional_modes,
    draw_effects,
    group_rows,
    hermite_rule,
    log_marginal,
)
from poolwise.kinds.mixed.glmm import check_agq, fit_glmm

SEED = 20261205
FAMILIES = ("binomial", "bernoulli", "poisson")


def _case(family: str, k: int, seed: int, groups: int = 3, rows: int = 24) -> dict:
    """A small random GLMM: y drawn from the model at β, Σ; Λ the Cholesky factor of Σ."""
    rng = np.random.default_rng([SEED, seed])
    index = np.concatenate([np.arange(groups), rng.integers(0, groups, rows - groups)])
    x = rng.normal(size=rows)
    z = np.column_stack([np.ones(rows), x])[:, :k]
    sigma = np.array([[0.8, 0.3], [0.3, 0.5]])[:k, :k]
    factor = np.linalg.cholesky(sigma)
    b = rng.multivariate_normal(np.zeros(k), sigma, size=groups)
    base = 0.2 + 0.4 * x + (np.log(3.0) if family == "poisson" else 0.0)
    eta = base + np.sum(z * b[index], axis=1)
    trials = None
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    elif family == "bernoulli":
        y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    else:
        trials = rng.integers(1, 12, rows).astype(float)
        y = rng.binomial(trials.astype(int), 1.0 / (1.0 + np.exp(-eta)))
    likelihood = row_likelihood(family, y.astype(float), trials)
    grouped, order = group_rows(index, z, likelihood, groups)
    return {"rows": grouped, "base": base[order], "factor": factor, "sigma": sigma,
            "likelihood": likelihood, "index": index, "z": z, "base_rows": base}


def _group_log_density(case: dict, j: int):
    """b ↦ log p(y_j | b) + log N(b | 0, Σ), written directly in b (not the whitened u);
    b is (k,) or (points, k)."""
    selected = case["index"] == j
    z, base = case["z"][selected], case["base_rows"][selected]
    rows = case["likelihood"].take(np.flatnonzero(selected))
    prior = stats.multivariate_normal(np.zeros(z.shape[1]), case["sigma"])

    def log_density(b: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(b)
        values = (np.sum(rows.log_density(base[:, None] + z @ points.T), axis=0)
                  + prior.logpdf(points))
        return values if np.ndim(b) > 1 else float(values[0])
    return log_density


def _box(case: dict, j: int) -> tuple[np.ndarray, np.ndarray]:
    """The mode of b_j's conditional (SciPy's BFGS) and a half-width: 20 of its Laplace sds
    (from a central-difference Hessian; a log-concave density has at most exponential
    tails on that scale), at most 10 prior sds (it lies under N(·, Σ),
    poolwise.inference.agq)."""
    log_density = _group_log_density(case, j)
    k = case["sigma"].shape[0]
    mode = optimize.minimize(lambda b: -log_density(b), np.zeros(k), method="BFGS",
                             options={"gtol": 1e-10}).x
    h, eye = 1e-4, np.eye(k)
    hessian = np.array([[(log_density(mode + h * (eye[a] + eye[b]))
                          - log_density(mode + h * (eye[a] - eye[b]))
                          - log_density(mode - h * (eye[a] - eye[b]))
                          + log_density(mode - h * (eye[a] + eye[b]))) / (4 * h * h)
                         for b in range(k)] for a in range(k)])
    laplace_sd = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    return mode, np.minimum(20.0 * laplace_sd, 10.0 * np.sqrt(np.diag(case["sigma"])))


def _direct(case: dict, j: int) -> float:
    """log ∫ p(y_j | b) N(b | 0, Σ) db directly in b: SciPy's adaptive ``quad`` for k = 1,
    a 300 × 300 Gauss–Legendre product rule over the box for k = 2."""
    log_density = _group_log_density(case, j)
    mode, span = _box(case, j)
    peak = log_density(mode)
    if mode.size == 1:
        value = integrate.quad(lambda b: math.exp(log_density(np.array([b])) - peak),
                               mode[0] - span[0], mode[0] + span[0], epsabs=0,
                               epsrel=1e-11, limit=400)[0]
        return peak + math.log(value)
    nodes, weights = np.polynomial.legendre.leggauss(300)
    axes = [mode[e] + span[e] * nodes for e in range(2)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    w = np.outer(weights * span[0], weights * span[1]).ravel()
    return peak + math.log(float(w @ np.exp(log_density(points) - peak)))


# ------------------------------------------------------------------ row likelihoods


def test_row_likelihoods_are_scipys_and_their_derivatives_are_right() -> None:
    rng = np.random.default_rng([SEED, 1])
    eta = rng.normal(size=40)
    trials = rng.integers(1, 20, 40).astype(float)
    y = rng.binomial(trials.astype(int), 0.4).astype(float)
    binomial = row_likelihood("binomial", y, trials)
    np.testing.assert_allclose(binomial.log_density(eta),
                               stats.binom.logpmf(y, trials, 1 / (1 + np.exp(-eta))),
                               rtol=1e-12)
    counts = rng.poisson(2.0, 40).astype(float)
    poisson = row_likelihood("poisson", counts)
    np.testing.assert_allclose(poisson.log_density(eta), stats.poisson.logpmf(counts,
                                                                              np.exp(eta)),
                               rtol=1e-12)
    ones = row_likelihood("bernoulli", (y > 3).astype(float))
    np.testing.assert_allclose(ones.log_density(eta), stats.bernoulli.logpmf(
        (y > 3), 1 / (1 + np.exp(-eta))), rtol=1e-12)
    h = 1e-5
    for rows in (binomial, poisson, ones):
        value, score, weight = rows.values(eta)
        np.testing.assert_allclose(value, rows.log_density(eta), rtol=1e-14)
        up, down = rows.log_density(eta + h), rows.log_density(eta - h)
        np.testing.assert_allclose(score, (up - down) / (2 * h), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(weight, -(up - 2 * rows.log_density(eta) + down) / h**2,
                                   rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="no row likelihood for family 'normal'"):
        row_likelihood("normal", y)


def test_hermite_rule_integrates_normal_moments() -> None:
    """E x⁴ = 3 and E x²y² = 1 under N(0, I): exact for 3 points per dimension."""
    nodes, log_w = hermite_rule(3, 2)
    weights = np.exp(log_w)
    assert nodes.shape == (9, 2)
    assert math.isclose(weights.sum(), 1.0, rel_tol=1e-14)
    assert math.isclose(weights @ nodes[:, 0] ** 4, 3.0, rel_tol=1e-13)
    assert math.isclose(weights @ (nodes[:, 0] ** 2 * nodes[:, 1] ** 2), 1.0, rel_tol=1e-13)


# ------------------------------------------------------------------ log marginal


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_log_marginal_is_the_integral(family: str, k: int) -> None:
    """With enough points AGQ is the integral to quadrature precision (1e-7); with 7
    points it is much closer than with 1 (Laplace) or 3."""
    case = _case(family, k, seed=10 + k)
    direct = np.array([_direct(case, j) for j in range(case["rows"].n_groups)])
    many = 25 if k == 1 else 15
    agq = log_marginal(case["rows"], case["base"], case["factor"], many)
    np.testing.assert_allclose(agq, direct, rtol=0, atol=1e-7)
    errors = [np.max(np.abs(log_marginal(case["rows"], case["base"], case["factor"], n)
                            - direct)) for n in (1, 3, 7)]
    # the error need not fall at every step, but 7 points beat 1 and 3 by far
    assert errors[2] < 0.05 * min(errors[:2]), errors
    assert errors[0] > 1e-5  # the Laplace approximation is not exact for these data


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_one_point_is_the_laplace_formula(family: str, k: int) -> None:
    """log p(y_j | b̂) + log N(b̂ | 0, Σ) + (k/2) log 2π − ½ log|ZᵀWZ + Σ⁻¹| at the mode b̂
    found by SciPy in b, with W the rows' −ℓ″ there."""
    case = _case(family, k, seed=20 + k)
    laplace = log_marginal(case["rows"], case["base"], case["factor"], 1)
    modes = conditional_modes(case["rows"], case["base"], case["factor"])
    for j in range(case["rows"].n_groups):
        log_density = _group_log_density(case, j)
        fit = optimize.minimize(lambda b, f=log_density: -f(b), np.zeros(k), method="BFGS",
                                options={"gtol": 1e-10})
        selected = case["index"] == j
        z = case["z"][selected]
        eta = case["base_rows"][selected] + z @ fit.x
        weight = case["likelihood"].take(np.flatnonzero(selected)).values(eta)[2]
        curvature = z.T @ (weight[:, None] * z) + np.linalg.inv(case["sigma"])
        formula = (log_density(fit.x) + 0.5 * k * math.log(2 * math.pi)
                   - 0.5 * np.linalg.slogdet(curvature)[1])
        assert math.isclose(laplace[j], formula, abs_tol=1e-8)
        np.testing.assert_allclose(modes.effects(case["factor"])[j], fit.x, atol=1e-5)


def test_a_zero_sd_gives_the_likelihood_without_group_effects() -> None:
    case = _case("poisson", 1, seed=30)
    agq = log_marginal(case["rows"], case["base"], np.zeros((1, 1)), 9)
    plain = case["rows"].sum(case["rows"].likelihood.log_density(case["base"]))
    np.testing.assert_allclose(agq, plain, rtol=1e-12)


# ------------------------------------------------------------------ conditional draws


def _grid_density(case: dict, j: int, size: int) -> tuple[list, np.ndarray]:
    """The exact conditional density of b_j on a fine grid over the box (axes, weights
    normalised to sum to one)."""
    log_density = _group_log_density(case, j)
    mode, span = _box(case, j)
    axes = [np.linspace(mode[e] - span[e], mode[e] + span[e], size) for e in range(mode.size)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, mode.size)
    values = log_density(points)
    weights = np.exp(values - values.max())
    return axes, weights / weights.sum()


@pytest.mark.parametrize("family", FAMILIES)
def test_draws_follow_the_exact_conditional_k1(family: str) -> None:
    """Kolmogorov–Smirnov distance of 20,000 draws per group to the CDF integrated on a
    grid of 20,001 points: below the 0.999 quantile 1.949/√n of its null distribution.
    (Draws from the Laplace Gaussian N(b̂, H⁻¹) fail it for every family here.)"""
    case = _case(family, 1, seed=40)
    modes = conditional_modes(case["rows"], case["base"], case["factor"])
    size = 20000
    draws = draw_effects(case["rows"], case["base"], case["factor"], modes, size,
                         np.random.default_rng([SEED, 41]))
    assert draws.shape == (size, case["rows"].n_groups, 1)
    for j in range(case["rows"].n_groups):
        (grid,), weights = _grid_density(case, j, 20001)
        cdf = np.cumsum(weights)
        sample = np.sort(draws[:, j, 0])
        model = np.interp(sample, grid, cdf)
        ranks = np.arange(1, size + 1) / size
        distance = max(np.max(ranks - model), np.max(model - (ranks - 1.0 / size)))
        assert distance < 1.949 / math.sqrt(size), (j, distance)


@pytest.mark.parametrize("family", FAMILIES)
def test_draws_follow_the_exact_conditional_k2(family: str) -> None:
    """Mean and covariance of 6,000 draws per group against the conditional's on a
    301 × 301 grid: within 4.5 Monte Carlo standard errors (sd/√n for the mean; the
    sd of the products' mean for each covariance entry)."""
    case = _case(family, 2, seed=50)
    modes = conditional_modes(case["rows"], case["base"], case["factor"])
    size = 6000
    draws = draw_effects(case["rows"], case["base"], case["factor"], modes, size,
                         np.random.default_rng([SEED, 51]))
    for j in range(case["rows"].n_groups):
        axes, weights = _grid_density(case, j, 301)
        points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
        mean = weights @ points
        centred = points - mean
        cov = (weights[:, None] * centred).T @ centred
        sample = draws[:, j, :]
        se = np.sqrt(np.diag(cov) / size)
        assert np.all(np.abs(sample.mean(axis=0) - mean) < 4.5 * se), (j, sample.mean(0), mean)
        products = (sample - mean)[:, :, None] * (sample - mean)[:, None, :]
        product_se = products.std(axis=0) / math.sqrt(size)
        assert np.all(np.abs(products.mean(axis=0) - cov) < 4.5 * product_se), j


# ------------------------------------------------------------------ maximum likelihood


@pytest.fixture(scope="module")
def cbpp():
    info = poolwise.datasets.info("cbpp")
    model = poolwise.MixedModel(formula=info.formula, family="binomial")
    return model.prepare(poolwise.datasets.load("cbpp")).design


def test_cbpp_laplace_is_lme4s(cbpp) -> None:
    """lme4's tests/glmer-1.R: the Laplace fixed effects of glmmML, glmmADMB and lme4.0
    agree to 4e-5 (relative); lme4's printed summary: logLik −92.0, AIC 194.1, sd 0.642
    (its default optimiser stops slightly short: it prints −1.3983 for the intercept,
    0.4123 for the variance)."""
    fit = fit_glmm(cbpp, n_agq=1)
    glmm_ml = np.array([-1.39853234657711, -0.992336901732793, -1.12867036466201,
                        -1.58030977686564])
    lme4_0 = np.array([-1.39853505102576, -0.992334712470269, -1.12867541092127,
                       -1.58037389566025])
    for published in (glmm_ml, lme4_0):
        assert np.mean(np.abs(fit.beta - published)) / np.mean(np.abs(published)) < 4e-5
    assert fit.converged and not fit.singular and fit.sigma is None
    assert round(fit.log_likelihood, 1) == -92.0
    assert round(2 * 5 - 2 * fit.log_likelihood, 1) == 194.1
    assert round(float(fit.sd["herd"][0]), 3) == 0.642
    assert fit.random_effects["herd"].shape == (15, 1)
    assert fit.method == "ML by the Laplace approximation"


def test_cbpp_agq25_is_lme4s(cbpp) -> None:
    """lme4's tests/glmer-1.R, nAGQ = 25: fixed effects to 5e-4 (relative) and the
    deviance 100.010030538022 to 1e-9, the deviance being −2 × (log likelihood − that of
    the saturated model, Σ log Binomial(y | n, y/n))."""
    fit = fit_glmm(cbpp, n_agq=25)
    lme4 = np.array([-1.39922533406847, -0.991407294757321, -1.12782184600404,
                     -1.57946627431248])
    assert np.mean(np.abs(fit.beta - lme4)) / np.mean(np.abs(lme4)) < 5e-4
    y, n = cbpp.y, cbpp.trials
    saturated = float(np.sum(stats.binom.logpmf(y, n, y / n)))
    deviance = -2.0 * (fit.log_likelihood - saturated)
    assert math.isclose(deviance, 100.010030538022, rel_tol=1e-9)
    assert fit.log_likelihood > fit_glmm(cbpp, n_agq=1).log_likelihood


def test_the_default_points_are_near_25_on_cbpp(cbpp) -> None:
    """DEFAULT_AGQ's claim: on cbpp 9 points give the log likelihood within 3e-6 of 25
    points and β within 3e-7, where Laplace is off by more than 0.04 and 5e-4."""
    from poolwise.kinds.mixed.glmm import DEFAULT_AGQ

    fits = {n: fit_glmm(cbpp, n_agq=n) for n in (1, DEFAULT_AGQ, 25)}
    assert DEFAULT_AGQ == 9
    assert abs(fits[9].log_likelihood - fits[25].log_likelihood) < 3e-6
    assert np.max(np.abs(fits[9].beta - fits[25].beta)) < 3e-7
    assert abs(fits[1].log_likelihood - fits[25].log_likelihood) > 0.04
    assert np.max(np.abs(fits[1].beta - fits[25].beta)) > 5e-4


def test_ml_recovers_a_simulated_random_slope_model() -> None:
    """A poisson model with an exposure and (1 + x | g), 60 groups: β within 3.5 of its
    standard errors of the values simulated from, the sds within half of theirs."""
    rng = np.random.default_rng([SEED, 60])
    groups, per = 60, 15
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    sigma = np.array([[0.5, 0.1], [0.1, 0.2]])
    b = rng.multivariate_normal(np.zeros(2), sigma, size=groups)
    exposure = rng.uniform(0.5, 2.0, size=g.size)
    y = rng.poisson(exposure * np.exp(0.5 + 0.3 * x + b[g, 0] + b[g, 1] * x))
    table = {"y": y, "x": x, "e": exposure, "g": [f"g{v}" for v in g]}
    model = poolwise.MixedModel(formula="y ~ x + offset(log(e)) + (1 + x | g)",
                                family="poisson")
    design = model.prepare(pd.DataFrame(table)).design
    fit = fit_glmm(design, n_agq=5)
    assert np.all(np.abs(fit.beta - [0.5, 0.3]) < 3.5 * fit.beta_se)
    assert abs(fit.cor["g"][0, 1]) < 1
    np.testing.assert_allclose(fit.sd["g"], np.sqrt(np.diag(sigma)), rtol=0.5)


def test_a_singular_fit_is_the_glm() -> None:
    """Every group a copy of the same rows: the ML sd is 0 (a singular fit), and β and
    its standard errors are the logistic regression's, β̂ by SciPy's optimiser and
    Cov β̂ = (XᵀWX)⁻¹, W = n p(1 − p), written out here."""
    rng = np.random.default_rng([SEED, 80])
    x = rng.normal(size=8)
    trials = rng.integers(5, 15, 8).astype(float)
    y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(0.3 - 0.8 * x))).astype(float)
    groups = 6
    table = pd.DataFrame({"y": np.tile(y, groups), "n": np.tile(trials, groups),
                          "x": np.tile(x, groups), "g": np.repeat(np.arange(groups), 8)})
    design = poolwise.MixedModel(formula="y | trials(n) ~ x + (1 | g)",
                                 family="binomial").prepare(table).design
    fit = fit_glmm(design, n_agq=5)
    assert fit.singular and fit.sd["g"][0] < 1e-4
    xs = np.column_stack([np.ones(8 * groups), np.tile(x, groups)])
    ys, ns = np.tile(y, groups), np.tile(trials, groups)

    def negative(beta: np.ndarray) -> float:
        return -float(np.sum(stats.binom.logpmf(ys, ns, 1 / (1 + np.exp(-xs @ beta)))))
    glm = optimize.minimize(negative, np.zeros(2), method="BFGS", options={"gtol": 1e-9}).x
    np.testing.assert_allclose(fit.beta, glm, atol=1e-5)
    p = 1 / (1 + np.exp(-xs @ fit.beta))
    cov = np.linalg.inv(xs.T @ ((ns * p * (1 - p))[:, None] * xs))
    np.testing.assert_allclose(fit.beta_se, np.sqrt(np.diag(cov)), rtol=1e-4)


@pytest.mark.parametrize("bad", [0, 26, 2.5, True, "9"])
def test_bad_agq_is_refused(bad) -> None:
    with pytest.raises(SpecificationError, match="whole number of quadrature points from 1"):
        check_agq(bad)


def test_other_models_are_refused(cbpp) -> None:
    sleep = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)").prepare(
        poolwise.datasets.load("sleepstudy")).design
    with pytest.raises(SpecificationError, match="not normal"):
        fit_glmm(sleep, n_agq=1)
    crossed = poolwise.MixedModel(formula="incidence | trials(size) ~ 1 + (1 | herd) + "
                                          "(1 | period)", family="binomial").prepare(
        poolwise.datasets.load("cbpp")).design
    with pytest.raises(SpecificationError, match=r"one group term .* not \(1 \| herd\) \+"):
        fit_glmm(crossed, n_agq=1)


# ------------------------------------------------------------------ eb-ml of a GLMM


def _cbpp_conditional_cdf(design, beta: np.ndarray, sd: float, herd: int):
    """The grid and CDF of herd ``herd``'s effect given y, β and sd, written directly:
    Π Binomial(y_i | n_i, expit(x_iβ + b)) N(b | 0, sd²) on 20,001 points over ±8 sd."""
    rows = design.terms[0].index == herd
    grid = np.linspace(-8 * sd, 8 * sd, 20001)
    eta = design.x[rows] @ beta
    p = 1.0 / (1.0 + np.exp(-(eta[:, None] + grid[None, :])))
    log_density = (stats.binom.logpmf(design.y[rows][:, None], design.trials[rows][:, None],
                                      p).sum(axis=0) + stats.norm.logpdf(grid, 0, sd))
    weights = np.exp(log_density - log_density.max())
    return grid, np.cumsum(weights) / weights.sum()


def test_glmm_effect_draws_follow_each_draws_beta(cbpp) -> None:
    """draw_glmm_effects with β alternating between β̂ and β̂ + 0.5 on the intercept: each
    half's draws of two herds' effects pass the KS check against their own conditional
    (so the β of each draw is the one used)."""
    from poolwise.kinds.mixed.glmm import draw_glmm_effects

    fit = fit_glmm(cbpp, n_agq=1)
    shifted = fit.beta + np.array([0.5, 0, 0, 0])
    size = 20000
    beta = np.where((np.arange(size) % 2 == 0)[:, None], fit.beta, shifted)
    draws = draw_glmm_effects(cbpp, fit, beta, np.random.default_rng([SEED, 70]))
    assert draws.shape == (size, 15, 1)
    sd = float(fit.sd["herd"][0])
    half = size // 2
    for herd in (0, 13):
        for which, b in ((0, fit.beta), (1, shifted)):
            grid, cdf = _cbpp_conditional_cdf(cbpp, b, sd, herd)
            sample = np.sort(draws[which::2, herd, 0])
            model = np.interp(sample, grid, cdf)
            ranks = np.arange(1, half + 1) / half
            distance = max(np.max(ranks - model), np.max(model - (ranks - 1.0 / half)))
            assert distance < 1.949 / math.sqrt(half), (herd, which, distance)


def test_eb_ml_of_a_glmm_through_the_model(tmp_path) -> None:
    """MixedModel(method="eb-ml") of cbpp: the summary is fit_glmm's estimate (default 9
    points), β's draws have its mean and standard errors within Monte Carlo error
    (4.5 sd/√n for the mean, 4.5/√(2n) relatively for the sd), and save → load keeps the
    summary."""
    table = poolwise.datasets.load("cbpp")
    model = poolwise.MixedModel(formula=poolwise.datasets.info("cbpp").formula,
                                family="binomial", method="eb-ml", draws=1000, chains=2,
                                seed=SEED)
    assert "adaptive quadrature with 9 points" in model.describe_prior()
    fit = model.fit(table)
    estimate = fit_glmm(model.prepare(table).design, n_agq=9)
    summary = fit.summary().set_index("param")
    np.testing.assert_allclose(summary.loc[[f"b[{n}]" for n in estimate.fixed_names], "mean"],
                               estimate.beta, rtol=1e-10)
    assert "sigma" not in summary.index
    assert math.isclose(summary.loc["sd_herd[Intercept]", "mean"], estimate.sd["herd"][0],
                        rel_tol=1e-10)
    b = fit.draws("b").reshape(-1, 4)
    n = b.shape[0]
    assert np.all(np.abs(b.mean(axis=0) - estimate.beta) < 4.5 * estimate.beta_se / n**0.5)
    assert np.all(np.abs(b.std(axis=0) / estimate.beta_se - 1) < 4.5 / (2 * n) ** 0.5)
    assert fit.draws("r_herd").shape == (2, 1000, 15, 1)
    fit.save(tmp_path / "cbpp.nc")
    loaded = poolwise.load(tmp_path / "cbpp.nc")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    assert loaded.estimate.sigma is None and loaded.model.agq is None


def test_eb_ml_of_a_glmm_on_the_command_line(capsys) -> None:
    """--agq 1 prints lme4's Laplace log likelihood (−92.0263, glmmML's optimum); a bad
    --agq ends with one line and exit code 2."""
    from poolwise.cli import main

    code = main(["fit", "cbpp", "--method", "eb-ml", "--agq", "1", "--draws", "100",
                 "--chains", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ML by the Laplace approximation, as lme4's glmer; log likelihood -92.0263" in out
    code = main(["fit", "cbpp", "--method", "eb-ml", "--agq", "0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "agq (--agq) must be a whole number of quadrature points from 1" in err
