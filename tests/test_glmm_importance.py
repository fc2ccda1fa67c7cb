"""Method ``importance`` for one-factor binomial, bernoulli and poisson GLMMs: (β, log sd,
atanh ρ) by Pareto-smoothed importance sampling with each group's effects integrated out
by adaptive quadrature, the effects then drawn exactly (poolwise.kinds.mixed.glmm).

Checked against an exact posterior computed by brute force on grids (no modes, no
Gauss–Hermite rule), against NUTS on the same model, against eb-ml's maximum likelihood
(the mode under flat priors), and for its visible fallback to NUTS."""

from __future__ import annotations

import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import poolwise
from poolwise.exceptions import SamplingWarning, SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.inference.importance import find_mode
from poolwise.kinds.mixed.glmm import GlmmPosterior, fit_glmm
from poolwise.kinds.mixed.inference import integrate_mixed

#: |difference| / its Monte Carlo standard error allowed (chance ≈ 6e-5 each)
Z = 4.0
PRIOR = "b[Intercept] = normal(0, 3); b = normal(0, 3); sd = halfnormal(2)"


# ------------------------------------------------------------ exact posterior by grids
def intercept_table(family: str, groups: int, rows: int, trials: int, b0: float, sd: float,
                    seed: int) -> pd.DataFrame:
    """y ~ 1 + (1 | g) data: ``rows`` rows of ``trials`` trials (1: bernoulli) a group."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), rows)
    eta = b0 + rng.normal(0.0, sd, groups)[g]
    table = pd.DataFrame({"g": [f"g{j:02d}" for j in g],
                          "y": rng.binomial(trials, expit(eta))})
    if family == "binomial":
        table["n"] = trials
    return table


def grid_posterior(successes: np.ndarray, trials: np.ndarray) -> dict[str, np.ndarray]:
    """Exact posterior means and sds of β₀, sd and each group's effect r_j for
    y_j ~ Binomial(n_j, logit⁻¹(β₀ + r_j)), r_j ~ N(0, sd²), β₀ ~ N(0, 3²),
    sd ~ HalfNormal(2) — the rows of a group share η, so their sums suffice.

    p(y_j | β₀, sd) = ∫ Bin(y_j | n_j, logit⁻¹(β₀ + sd·u)) φ(u) du by the trapezoid rule on
    u ∈ [−8, 8] (spacing 1/8: exponentially accurate for a smooth integrand times φ), and
    E[r_j | β₀, sd, y] = sd ∫ u Bin(…) φ(u) du / p(y_j | β₀, sd); then (β₀, log sd) on a
    grid of spacing 0.05 × 0.1 covering the posterior (a Riemann sum of a smooth density:
    its error falls as exp(−2π² sd²/h²)), the Jacobian sd included."""
    u = np.linspace(-8.0, 8.0, 129)
    log_phi = stats.norm.logpdf(u)
    b0 = np.linspace(-4.0, 2.5, 131)
    log_sd = np.linspace(-12.0, 1.8, 139)
    sd = np.exp(log_sd)
    eta = b0[:, None, None] + sd[None, :, None] * u  # (b0, sd, u)
    log_p1, log_p0 = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    log_post = (stats.norm.logpdf(b0, 0.0, 3.0)[:, None]
                + stats.halfnorm.logpdf(sd, scale=2.0)[None, :] + log_sd[None, :])
    pairs, index = np.unique(np.column_stack([successes, trials]), axis=0, return_inverse=True)
    conditional_mean = np.zeros((pairs.shape[0], b0.size, sd.size))
    for i, (y, n) in enumerate(pairs):
        integrand = np.exp(y * log_p1 + (n - y) * log_p0 + log_phi)
        marginal = np.trapezoid(integrand, u, axis=-1)
        log_post = log_post + np.sum(index == i) * np.log(marginal)
        conditional_mean[i] = sd * np.trapezoid(integrand * u, u, axis=-1) / marginal
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    # the grid must hold the posterior: negligible mass on its edges; towards sd = 0 the
    # density of log sd falls only as sd (the prior's density at 0 times the Jacobian), so
    # the mass below the grid is about the edge's weight over its spacing of 0.1
    assert max(weights[[0, -1], :].max(), weights[:, -1].max()) < 1e-10
    assert weights[:, 0].sum() < 1e-6

    def moments(values: np.ndarray) -> np.ndarray:
        mean = np.sum(weights * values)
        return np.array([mean, math.sqrt(np.sum(weights * (values - mean) ** 2))])

    r_mean = np.array([np.sum(weights * conditional_mean[i]) for i in index])
    return {"b0": moments(np.broadcast_to(b0[:, None], weights.shape)),
            "sd": moments(np.broadcast_to(sd[None, :], weights.shape)), "r_mean": r_mean}


@pytest.mark.parametrize(("family", "groups", "rows", "trials", "b0", "sd"), [
    # 200 groups × 20 trials in the issue; 30 here
    ("binomial", 30, 2, 10, -1.0, 0.8),
    # few rows a group, a large sd: where the plain Laplace approximation is poor
    ("bernoulli", 40, 3, 1, -0.5, 1.5),
])
def test_random_intercepts_match_the_exact_grid_posterior(family: str, groups: int, rows: int,
                                                          trials: int, b0: float,
                                                          sd: float) -> None:
    """The posterior means of β₀, sd and every group effect, and the sds of β₀ and sd,
    within Z Monte Carlo errors of the grid's exact values (MCSE of a mean sd/√ESS with the
    fit's own ESS of its resampled draws; of an sd, sd·√((m₄/sd⁴ − 1)/(4 ESS)))."""
    table = intercept_table(family, groups, rows, trials, b0, sd, seed=groups)
    formula = "y | trials(n) ~ 1 + (1 | g)" if family == "binomial" else "y ~ 1 + (1 | g)"
    fit = poolwise.MixedModel(formula=formula, family=family, prior=PRIOR,
                              seed=3).fit(table)
    assert fit.method == "importance" and fit.info["pareto_k"] <= fit.info["pareto_k_limit"]
    if family == "binomial":  # 20 trials a group: fewer points pass the check, and are tested
        assert "points, its log likelihood within" in fit.info["sampled"]
    ess = fit.info["ess"]
    counts = table.groupby("g", sort=True)["y"].sum().to_numpy()
    sizes = table.groupby("g", sort=True).size().to_numpy() * trials
    exact = grid_posterior(counts, sizes)
    for name, values in (("b0", fit.draws("b")[..., 0]), ("sd", fit.draws("sd_g")[..., 0])):
        flat = values.ravel()
        mean, spread = exact[name]
        assert abs(flat.mean() - mean) < Z * spread / math.sqrt(ess), name
        excess = np.mean((flat - flat.mean()) ** 4) / flat.var() ** 2 - 1.0
        assert abs(flat.std() - spread) < Z * spread * math.sqrt(excess / (4 * ess)), name
    effects = fit.draws("r_g")[..., 0].reshape(-1, groups)
    levels = list(fit.posterior["g"].values)
    order = [levels.index(level) for level in sorted(levels)]
    error = effects.std(axis=0)[order] / math.sqrt(ess)
    np.testing.assert_array_less(np.abs(effects.mean(axis=0)[order] - exact["r_mean"]),
                                 Z * error)


@pytest.mark.parametrize(("family", "groups", "rows", "trials", "b0", "sd"), [
    ("binomial", 30, 2, 10, -1.0, 0.8), ("bernoulli", 40, 3, 1, -0.5, 1.5)])
def test_fewer_quadrature_points_agree_beyond_the_checks_design(
        family: str, groups: int, rows: int, trials: int, b0: float, sd: float) -> None:
    """The proposals' points per dimension (GlmmPosterior.weighting) are chosen on a
    design of 1 + 2d + 2^d points around the mode; at 400 other points from the Laplace
    approximation the difference from 9 points' log likelihood still varies by less than
    1.5 × AGQ_CHECK_TOLERANCE (a design too small to see the bulk would fail this)."""
    from poolwise.kinds.mixed.glmm import AGQ_CHECK_TOLERANCE

    table = intercept_table(family, groups, rows, trials, b0, sd, seed=groups)
    formula = "y | trials(n) ~ 1 + (1 | g)" if family == "binomial" else "y ~ 1 + (1 | g)"
    data = poolwise.MixedModel(formula=formula, family=family, prior=PRIOR).prepare(table)
    posterior = GlmmPosterior(data.design, data.priors, 9)
    mode, hessian, problem = find_mode(posterior.log_density, posterior.start)
    assert problem is None
    covariance = np.linalg.inv(-hessian)
    posterior.weighting(mode, covariance)
    assert posterior.agq_spread < AGQ_CHECK_TOLERANCE
    points = np.random.default_rng(5).multivariate_normal(mode, covariance, 400)
    difference = (posterior.problem.log_marginals(points, posterior.proposal_agq)
                  - posterior.problem.log_marginals(points, 9))
    assert np.ptp(difference) < 1.5 * AGQ_CHECK_TOLERANCE


def test_newton_from_predicted_modes_finds_the_same_modes() -> None:
    """Newton's method started at the first-order prediction of the modes
    (_Problem.predicted_modes) ends where it ends from 0, to the modes' tolerance, at
    proposals as far out as a Student-t's."""
    from poolwise.inference.agq import conditional_modes

    data = poolwise.MixedModel(formula="y ~ x + (x | g)", family="poisson").prepare(
        slopes_table(groups=10, rows=6))
    problem = GlmmPosterior(data.design, data.priors, 9).problem
    rng = np.random.default_rng(3)
    theta = (np.array([1.0, 0.5, math.log(0.5), math.log(0.3), 0.3])
             + 0.3 * rng.standard_t(5, (100, 5)))
    rows, base, _ = problem.copies(theta)
    start = problem.predicted_modes(theta)
    assert start is not None
    eye = np.eye(problem.k)
    np.testing.assert_allclose(conditional_modes(rows, base, eye, start).mode,
                               conditional_modes(rows, base, eye).mode, atol=1e-8)


# ------------------------------------------------------------ the mode and eb-ml
def slopes_table(groups: int = 25, rows: int = 8, seed: int = 4) -> pd.DataFrame:
    """Poisson y ~ x + (x | g): β = (1, 0.5), sds (0.5, 0.3), correlation 0.3."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), rows)
    x = rng.uniform(-1.0, 1.0, g.size)
    cov = np.array([[0.25, 0.045], [0.045, 0.09]])
    r = rng.multivariate_normal(np.zeros(2), cov, groups)
    y = rng.poisson(np.exp(1.0 + r[g, 0] + (0.5 + r[g, 1]) * x))
    return pd.DataFrame({"g": [f"g{j:02d}" for j in g], "x": x, "y": y})


@pytest.mark.parametrize("case", ["cbpp", "slopes"])
def test_the_mode_under_flat_priors_is_the_ml_estimate(case: str) -> None:
    """With flat priors on θ = (β, log sd, atanh ρ) the posterior mode is the maximum of
    the AGQ likelihood: the batched evaluation (each point's loadings Λᵀz) found by BFGS
    gives eb-ml's estimate (one point at a time, L-BFGS-B; lme4's on cbpp)."""
    if case == "cbpp":
        table, formula, family = (poolwise.datasets.load("cbpp"),
                                  "incidence | trials(size) ~ period + (1 | herd)", "binomial")
    else:
        table, formula, family = slopes_table(), "y ~ x + (x | g)", "poisson"
    data = poolwise.MixedModel(formula=formula, family=family).prepare(table)
    posterior = GlmmPosterior(data.design, data.priors, 9)
    mode, _, problem = find_mode(lambda theta: posterior.problem.log_marginals(theta, 9),
                                 posterior.start)
    assert problem is None
    estimate = fit_glmm(data.design, n_agq=9)
    p = len(estimate.beta)
    factor = data.design.terms[0].factor
    np.testing.assert_allclose(mode[:p], estimate.beta, atol=1e-4)
    np.testing.assert_allclose(np.exp(mode[p:p + len(estimate.sd[factor])]),
                               estimate.sd[factor], rtol=1e-4)
    if case == "slopes":
        assert math.tanh(mode[-1]) == pytest.approx(estimate.cor[factor][1, 0], abs=1e-4)


def test_the_prior_is_the_one_nuts_uses() -> None:
    """log p(θ | y) − ℓ_AGQ(θ) is the log prior of β, the sds and the correlation with the
    Jacobians of (log sd, atanh ρ): written out here with SciPy's densities (HalfNormal,
    Normal) and the LKJ(η) density of a 2 × 2 correlation, ∝ (1 − ρ²)^(η − 1), times
    dρ/dx = 1 − ρ²."""
    data = poolwise.MixedModel(formula="y ~ x + (x | g)", family="poisson",
                               prior=PRIOR + "; cor = lkj(2)").prepare(slopes_table())
    posterior = GlmmPosterior(data.design, data.priors, 5)
    theta = np.random.default_rng(1).normal([1.0, 0.5, -0.7, -1.2, 0.3], 0.3, (4, 5))
    prior = posterior.log_density(theta) - posterior.problem.log_marginals(theta, 5)
    sd, rho = np.exp(theta[:, 2:4]), np.tanh(theta[:, 4])
    expected = (stats.norm.logpdf(theta[:, :2], 0.0, 3.0).sum(axis=1)
                + stats.halfnorm.logpdf(sd, scale=2.0).sum(axis=1) + theta[:, 2:4].sum(axis=1)
                + (2.0 - 1.0) * np.log1p(-rho**2) + np.log1p(-rho**2))
    # the LKJ density's normalising constant does not depend on ρ
    differences = prior - expected
    np.testing.assert_allclose(differences, differences[0], atol=1e-10)


# ------------------------------------------------------------ against NUTS
def _agree_with_nuts(table: pd.DataFrame, formula: str, family: str, prior: str,
                     draws: int) -> None:
    """Means of β, the sds, the correlation and every group effect within Z Monte Carlo
    errors of NUTS's (ArviZ's ESS for NUTS, the fit's own for importance)."""
    from poolwise import _arviz

    fast = poolwise.MixedModel(formula=formula, family=family, prior=prior, seed=1,
                               method="importance").fit(table)
    assert fast.method == "importance"
    slow = poolwise.MixedModel(formula=formula, family=family, prior=prior, method="nuts",
                               draws=draws, warmup=1000, target_accept=0.98,
                               seed=2).fit(table)
    ess = _arviz.diagnostics(slow.posterior)["ess_bulk"]
    for name in fast.posterior.data_vars:
        a, b = fast.draws(name), slow.draws(name)
        ess_b = np.asarray(ess[name].values)
        if name.startswith("cor_"):
            a, b, ess_b = a[..., 1, 0], b[..., 1, 0], ess_b[..., 1, 0]
        a, b = a.reshape(-1, *a.shape[2:]), b.reshape(-1, *b.shape[2:])
        error = np.sqrt(a.var(axis=0) / fast.info["ess"] + b.var(axis=0) / ess_b)
        np.testing.assert_array_less(np.abs(a.mean(axis=0) - b.mean(axis=0)), Z * error,
                                     err_msg=name)


@pytest.mark.full
def test_intercepts_and_slopes_agree_with_nuts() -> None:
    _agree_with_nuts(slopes_table(groups=12, rows=6), "y ~ x + (x | g)", "poisson",
                     PRIOR + "; cor = lkj(2)", draws=1000)


def test_effect_draws_at_each_draws_own_covariance() -> None:
    """The group effects drawn at many (β, Σ) at once (each point's rows with loadings
    Λᵀz, b = Λu) have the means and sds of draws at one (β, Σ) by
    :func:`poolwise.inference.agq.draw_effects` with Λ itself (tests/test_agq.py checks
    those against the exact conditional), within Z Monte Carlo errors."""
    from poolwise.inference.agq import conditional_modes, draw_effects

    data = poolwise.MixedModel(formula="y ~ x + (x | g)", family="poisson").prepare(
        slopes_table(groups=6, rows=5))
    problem = GlmmPosterior(data.design, data.priors, 9).problem
    theta = np.array([1.0, 0.5, math.log(0.6), math.log(0.4), 0.5])
    size = 4000
    batched = problem.draw_effects(np.tile(theta, (size, 1)), np.random.default_rng(1))
    base, factor = problem.parts(theta)
    modes = conditional_modes(problem.rows, base, factor)
    single = draw_effects(problem.rows, base, factor, modes, size, np.random.default_rng(2))
    error = np.hypot(batched.std(axis=0), single.std(axis=0)) / math.sqrt(size)
    np.testing.assert_array_less(np.abs(batched.mean(axis=0) - single.mean(axis=0)),
                                 Z * error)
    spread = np.hypot(batched.std(axis=0), single.std(axis=0)) / math.sqrt(2 * size)
    np.testing.assert_array_less(np.abs(batched.std(axis=0) - single.std(axis=0)),
                                 Z * 1.5 * spread)


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.mark.full
@pytest.mark.parametrize("workload", ["binomial", "bernoulli", "slopes", "poisson-obs"])
def test_the_issue_workloads_agree_with_long_nuts(workload: str) -> None:
    """The four GLMM workloads of issue 12 (bench/glmm.py) at full size, against NUTS with
    4 chains × 4000 draws."""
    import glmm

    work = glmm.WORKLOADS[workload]
    _agree_with_nuts(work.table(), work.formula, work.family, work.priors, draws=4000)


# ------------------------------------------------------------ the fallback
def _noise() -> pd.DataFrame:
    """12 groups × 6 coin flips with no group effect: sd's posterior piles up against 0."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 6)
    return pd.DataFrame({"y": rng.integers(0, 2, g.size), "g": [f"g{j}" for j in g]})


#: p(sd) ∝ sd^−0.99 near 0: log sd has a tail of rate 0.01 to −∞, far from any Student-t
BOUNDARY_PRIOR = "sd = gamma(0.01, 0.01)"


def test_the_diagnostic_fires_on_a_boundary_posterior() -> None:
    model = poolwise.MixedModel(formula="y ~ 1 + (1 | g)", family="bernoulli",
                                prior=BOUNDARY_PRIOR)
    data = model.prepare(_noise())
    drawn, info = integrate_mixed(data.design, data.priors, SamplerConfig())
    assert drawn is None
    assert info["pareto_k"] > info["pareto_k_limit"]
    assert "Pareto k̂" in info["importance_problem"]


@pytest.mark.full
def test_a_failed_diagnostic_falls_back_to_nuts_visibly() -> None:
    model = poolwise.MixedModel(formula="y ~ 1 + (1 | g)", family="bernoulli",
                                prior=BOUNDARY_PRIOR, draws=300, warmup=300, chains=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(_noise())
    messages = [str(w.message) for w in caught if issubclass(w.category, SamplingWarning)]
    assert any("importance sampling failed its check" in m for m in messages)
    assert fit.method == "nuts" and fit.is_mcmc and "method nuts" in fit.title()
    assert fit.info["pareto_k"] > fit.info["pareto_k_limit"]


def test_a_term_of_three_effects_falls_back_with_its_reason() -> None:
    """Adaptive quadrature covers one group term of one or two effects: with three,
    integrate_mixed declines, naming the term (the model then runs NUTS and says why)."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"y": rng.poisson(2.0, 40), "x": rng.normal(size=40),
                          "z": rng.normal(size=40), "g": np.repeat(list("abcdefgh"), 5)})
    data = poolwise.MixedModel(formula="y ~ x + (x + z | g)", family="poisson").prepare(table)
    drawn, info = integrate_mixed(data.design, data.priors, SamplerConfig())
    assert drawn is None
    assert info["importance_problem"] == (
        "importance sampling by adaptive quadrature needs one group term with one or two "
        "effects, such as (1 | g) or (1 + x | g), not (1 + x + z | g)")


# ------------------------------------------------------------ methods and the CLI
def test_importance_is_the_default_of_one_factor_glmms() -> None:
    """A random intercept's default is importance; with a slope (81 quadrature nodes a group
    and proposal) NUTS is quicker and the default, importance still offered."""
    for family in ("binomial", "bernoulli", "poisson"):
        assert poolwise.MixedModel(formula="y ~ x + (1 | g)", family=family).method == \
            "importance"
        slopes = poolwise.MixedModel(formula="y ~ x + (x | g)", family=family)
        assert slopes.method == "nuts"
        assert slopes.offered_methods()["partial"] == ("nuts", "importance", "eb-ml")
        assert poolwise.MixedModel(formula="y ~ x + (1 | g) + (1 | h)",
                                   family=family).method == "nuts"
        assert poolwise.MixedModel(formula="y ~ x + (1 | g)", family=family,
                                   pooling="none").method == "nuts"
    assert poolwise.MixedModel(formula="y ~ x + (1 | g)", family="poisson",
                               agq=5).agq == 5
    assert poolwise.MixedModel(formula="y ~ x + (1 | g)", family="negbinomial").method == "nuts"
    with pytest.raises(SpecificationError, match="use method 'nuts' for the negbinomial"):
        poolwise.MixedModel(formula="y ~ x + (1 | g)", family="negbinomial",
                            method="importance")
    with pytest.raises(SpecificationError, match="method 'importance' is for partial pooling"):
        poolwise.MixedModel(formula="y ~ x + (1 | g)", family="poisson",
                            method="importance", pooling="none")


def test_the_command_line_fits_cbpp_by_importance(capsys) -> None:
    """``poolwise fit cbpp``: method importance with its k̂ and what it sampled; a bad
    --agq ends with one line and exit code 2."""
    from poolwise.cli import main

    code = main(["fit", "cbpp", "--draws", "250", "--chains", "2", "--quiet", "--agq", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "method importance" in out and "importance sampling: Pareto k̂" in out
    # 5 points, or fewer checked against 5 (GlmmPosterior.weighting)
    assert re.search(r"adaptive Gauss–Hermite quadrature \((5 points|[1-4] points, its log "
                     r"likelihood within \S+ of 5 points' over the posterior's bulk)\)", out)
    assert main(["fit", "cbpp", "--agq", "30"]) == 2
    out, err = capsys.readouterr()
    assert "agq (--agq) must be a whole number" in err and out == ""
