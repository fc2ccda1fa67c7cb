"""Mixed-model inference against independent references.

* The Woodbury/Schur marginal likelihood equals a dense multivariate normal density with
  the full n × n covariance (scipy), for β integrated out, β given and β flat (REML), and
  the conditional draws of the coefficients have the dense conditional's mean and
  covariance.
* REML and ML on sleepstudy equal statsmodels' MixedLM and lme4's published values.
* Marginalised and non-centred NUTS agree within Monte Carlo error (tests/agreement.py)
  and their posterior means lie near the REML estimates.
* Binomial and Poisson GLMMs simulated with known parameters are recovered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from agreement import assert_same_posterior
from dense_mixed import dense_conditional, dense_covariance
from scipy import stats

from poolwise.exceptions import SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
from poolwise.kinds.mixed.inference import (
    draw_coefficients,
    gaussian_marginal,
    gaussian_stats,
    sample_mixed,
)
from poolwise.kinds.mixed.priors import check_prior_syntax, default_priors, parse_priors
from poolwise.kinds.mixed.reml import (
    LMMEstimate,
    conditional_draws,
    estimate_from_dict,
    estimate_to_dict,
    fit_reml,
)

DATA = Path("/work/shared/data")
SEED = 20261122


def sleepstudy_design() -> MixedDesign:
    """Reaction ~ Days + (Days | Subject), built by hand (no formula parser)."""
    data = pd.read_csv(DATA / "sleepstudy.csv")
    levels, index = np.unique(data["Subject"].astype(str), return_inverse=True)
    x = np.column_stack([np.ones(len(data)), data["Days"].to_numpy(float)])
    term = GroupTerm("Subject", ("Intercept", "Days"), x.copy(), index, tuple(levels), True)
    return MixedDesign("Reaction ~ Days + (Days | Subject)", "normal", "Reaction",
                       data["Reaction"].to_numpy(float), x, ("Intercept", "Days"), (term,))


@pytest.fixture(scope="module", autouse=True)
def jax_in_64_bits() -> None:
    """The library switches JAX to float64 when it samples; the direct calls here must too."""
    from poolwise._ops import jax_ops

    jax_ops()


@pytest.fixture(scope="module")
def sleepstudy() -> MixedDesign:
    return sleepstudy_design()


# ------------------------------------------------------------------ the Gaussian marginal


def random_design(seed: int, with_offset: bool) -> tuple[MixedDesign, list[np.ndarray], float]:
    """A small design with a correlated (1 + x | g) term crossed with (1 | h), and a
    covariance and σ for each term."""
    rng = np.random.default_rng(seed)
    n = 40
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    g, h = rng.integers(0, 5, size=n), rng.integers(0, 4, size=n)
    terms = (GroupTerm("g", ("Intercept", "x"), x.copy(), g, tuple("abcde"), True),
             GroupTerm("h", ("Intercept",), np.ones((n, 1)), h, tuple("pqrs"), False))
    offset = rng.normal(size=n) if with_offset else None
    y = x @ np.array([1.0, -0.5]) + rng.normal(size=n)
    design = MixedDesign("y ~ x + (x | g) + (1 | h)", "normal", "y", y, x, ("Intercept", "x"),
                         terms, offset=offset)
    sigma_g = np.array([[1.3, 0.4], [0.4, 0.7]])
    return design, [sigma_g, np.array([[0.6]])], 0.8


def marginal_at(design: MixedDesign, covariances: list[np.ndarray], sigma: float,
                fixed: tuple[np.ndarray, np.ndarray] | None):
    """gaussian_marginal for β ~ N(loc, diag(scale²)), or flat when ``fixed`` is None."""
    import jax

    loc = None if fixed is None else fixed[0]
    marginal_stats = gaussian_stats(design, loc)
    factors = [np.linalg.cholesky(c) for c in covariances]
    if fixed is not None and design.x.shape[1]:
        factors.append(np.diag(fixed[1]))
    result = jax.jit(lambda s: gaussian_marginal(marginal_stats, s, factors))(sigma)
    return result, marginal_stats, factors


@pytest.mark.parametrize("with_offset", [False, True])
def test_marginal_with_beta_integrated_equals_dense(with_offset: bool) -> None:
    design, covariances, sigma = random_design(1, with_offset)
    loc, scale = np.array([0.5, -1.0]), np.array([2.0, 0.7])
    result, *_ = marginal_at(design, covariances, sigma, (loc, scale))
    _, _, v = dense_covariance(design, covariances, sigma)
    offset = 0.0 if design.offset is None else design.offset
    cov = v + design.x @ np.diag(scale**2) @ design.x.T
    expected = stats.multivariate_normal(design.x @ loc + offset, cov).logpdf(design.y)
    assert float(result.log_density) == pytest.approx(expected, rel=1e-10)


def test_marginal_with_beta_given_equals_dense() -> None:
    design, covariances, sigma = random_design(2, with_offset=True)
    beta = np.array([0.3, 1.1])
    known = MixedDesign(design.formula, "normal", "y", design.y, np.zeros((design.n_obs, 0)),
                        (), design.terms, offset=design.offset + design.x @ beta)
    result, *_ = marginal_at(known, covariances, sigma, (np.zeros(0), np.zeros(0)))
    _, _, v = dense_covariance(design, covariances, sigma)
    expected = stats.multivariate_normal(design.x @ beta + design.offset, v).logpdf(design.y)
    assert float(result.log_density) == pytest.approx(expected, rel=1e-10)


def test_restricted_likelihood_with_flat_beta_equals_dense() -> None:
    """REML: log ∫ N(y | Xβ, V) dβ = −½((n−p) log 2π + log|V| + log|XᵀV⁻¹X| + Q)."""
    design, covariances, sigma = random_design(3, with_offset=False)
    result, *_ = marginal_at(design, covariances, sigma, None)
    _, _, v = dense_covariance(design, covariances, sigma)
    x, y = design.x, design.y
    v_inv = np.linalg.inv(v)
    information = x.T @ v_inv @ x
    beta_hat = np.linalg.solve(information, x.T @ v_inv @ y)
    residual = y - x @ beta_hat
    n, p = x.shape
    expected = -0.5 * ((n - p) * np.log(2 * np.pi) + np.linalg.slogdet(v)[1]
                       + np.linalg.slogdet(information)[1] + residual @ v_inv @ residual)
    assert float(result.log_density) == pytest.approx(expected, rel=1e-10)


def test_conditional_draws_have_the_dense_conditional_moments() -> None:
    """δ = (b, β − m) | y ~ N(ΨWᵀV⁻¹r, Ψ − ΨWᵀV⁻¹WΨ); draw_coefficients is affine in ε."""
    import jax

    design, covariances, sigma = random_design(4, with_offset=False)
    loc, scale = np.array([0.2, 0.1]), np.array([1.5, 2.5])
    result, marginal_stats, factors = marginal_at(design, covariances, sigma, (loc, scale))
    mean, cov = dense_conditional(design, covariances, sigma, loc, scale)
    draw = jax.jit(lambda eps: draw_coefficients(result, marginal_stats, factors, eps))
    centre = np.asarray(draw(np.zeros(len(mean))))
    columns = np.stack([np.asarray(draw(e)) - centre for e in np.eye(len(mean))], axis=1)
    np.testing.assert_allclose(centre, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(columns @ columns.T, cov, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ REML and ML


@pytest.fixture(scope="module")
def statsmodels_reml() -> object:
    import statsmodels.formula.api as smf

    data = pd.read_csv(DATA / "sleepstudy.csv")
    model = smf.mixedlm("Reaction ~ Days", data, groups=data["Subject"], re_formula="~Days")
    return model.fit(reml=True)


@pytest.fixture(scope="module")
def reml_estimate(sleepstudy: MixedDesign) -> LMMEstimate:
    return fit_reml(sleepstudy, reml=True)


def test_reml_equals_lme4_and_statsmodels(sleepstudy: MixedDesign, reml_estimate: LMMEstimate,
                                          statsmodels_reml: Any) -> None:
    estimate = reml_estimate
    assert estimate.converged and not estimate.singular
    # lme4: lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
    np.testing.assert_allclose(estimate.beta, [251.405, 10.467], atol=5e-4)
    np.testing.assert_allclose(estimate.beta_se, [6.825, 1.546], atol=5e-4)
    np.testing.assert_allclose(estimate.sd["Subject"], [24.74, 5.92], atol=5e-3)
    assert estimate.cor["Subject"][0, 1] == pytest.approx(0.066, abs=5e-4)
    assert estimate.sigma == pytest.approx(25.59, abs=5e-3)
    assert estimate.log_likelihood == pytest.approx(-1743.6 / 2, abs=0.05)  # REML criterion
    # statsmodels: the same estimates to optimiser precision
    fitted = statsmodels_reml
    np.testing.assert_allclose(estimate.beta, np.asarray(fitted.fe_params), rtol=1e-6)
    np.testing.assert_allclose(estimate.beta_se, np.asarray(fitted.bse_fe), rtol=1e-4)
    cov_re = np.asarray(fitted.cov_re)
    np.testing.assert_allclose(estimate.covariance("Subject"), cov_re, rtol=1e-3)
    assert estimate.sigma == pytest.approx(np.sqrt(fitted.scale), rel=1e-5)
    assert estimate.log_likelihood == pytest.approx(fitted.llf, abs=1e-6)
    modes = np.array([np.asarray(fitted.random_effects[int(s)])
                      for s in sleepstudy.terms[0].levels])
    np.testing.assert_allclose(estimate.random_effects["Subject"], modes, atol=2e-3)


def test_ml_equals_lme4(sleepstudy: MixedDesign) -> None:
    estimate = fit_reml(sleepstudy, reml=False)
    # lme4: lmer(..., REML = FALSE): logLik −875.97, sds 23.78 and 5.717, cor 0.081
    assert estimate.method == "ML"
    assert estimate.log_likelihood == pytest.approx(-875.9697, abs=1e-3)
    np.testing.assert_allclose(estimate.sd["Subject"], [23.780, 5.717], atol=2e-3)
    assert estimate.cor["Subject"][0, 1] == pytest.approx(0.081, abs=5e-4)
    np.testing.assert_allclose(estimate.beta, [251.405, 10.467], atol=5e-4)


def test_reml_refuses_other_families(sleepstudy: MixedDesign) -> None:
    counts = MixedDesign("y ~ 1", "poisson", "y", np.ones(3), np.ones((3, 1)), ("Intercept",), ())
    with pytest.raises(SpecificationError, match="normal mixed models, not poisson"):
        fit_reml(counts)


def test_conditional_draws_centre_on_reml_with_its_standard_errors(
        sleepstudy: MixedDesign, reml_estimate: LMMEstimate) -> None:
    """The draws are affine in the noise: at 0 they are β̂ and the conditional modes, and
    the β part's covariance (from the unit vectors) is σ̂²(XᵀV₁⁻¹X)⁻¹, REML's."""
    estimate = reml_estimate
    columns = 18 * 2 + 2
    centre = conditional_draws(sleepstudy, estimate, np.zeros((1, columns)))
    np.testing.assert_allclose(centre["b"][0], estimate.beta, rtol=1e-9)
    np.testing.assert_allclose(centre["r_Subject"][0], estimate.random_effects["Subject"],
                               rtol=1e-9, atol=1e-9)
    unit = conditional_draws(sleepstudy, estimate, np.eye(columns))["b"] - centre["b"]
    np.testing.assert_allclose(unit.T @ unit, estimate.beta_cov, rtol=1e-8)


def test_estimate_round_trips_through_json(reml_estimate: LMMEstimate) -> None:
    import json

    again = estimate_from_dict(json.loads(json.dumps(estimate_to_dict(reml_estimate))))
    for name in ("beta", "beta_se", "beta_cov"):
        np.testing.assert_array_equal(getattr(again, name), getattr(reml_estimate, name))
    np.testing.assert_array_equal(again.cor["Subject"], reml_estimate.cor["Subject"])
    assert again.sigma == reml_estimate.sigma and again.fixed_names == ("Intercept", "Days")


# ------------------------------------------------------------------ NUTS on sleepstudy


@pytest.fixture(scope="module")
def sleepstudy_fits(sleepstudy: MixedDesign) -> dict:
    priors = default_priors(sleepstudy)
    config = SamplerConfig(draws=1000, warmup=1000, chains=4, seed=SEED)
    return {p: sample_mixed(sleepstudy, priors, config, parametrisation=p)
            for p in ("marginal", "non-centred")}


def test_sleepstudy_draws_shapes_and_stats(sleepstudy_fits: dict) -> None:
    for parametrisation, draws in sleepstudy_fits.items():
        assert draws.info["parametrisation"] == parametrisation
        assert draws.info["divergences"] == 0
        post = draws.posterior
        assert post["b"].shape == (4, 1000, 2)
        assert post["sigma"].shape == (4, 1000)
        assert post["sd_Subject"].shape == (4, 1000, 2)
        assert post["cor_Subject"].shape == (4, 1000, 2, 2)
        assert post["r_Subject"].shape == (4, 1000, 18, 2)
        assert draws.dims["r_Subject"] == ["Subject", "Subject_effect"]
        assert draws.dims["cor_Subject"] == ["Subject_effect", "Subject_effect_bis"]
        assert draws.coords["coef"] == ["Intercept", "Days"]
        for name in ("diverging", "tree_depth", "n_steps", "acceptance_rate", "lp", "energy",
                     "step_size"):
            assert draws.sample_stats[name].shape == (4, 1000)
        depth = draws.sample_stats["tree_depth"]
        assert np.all(2.0 ** (depth - 1) <= draws.sample_stats["n_steps"])
        assert np.all(draws.sample_stats["n_steps"] < 2.0**depth)
        np.testing.assert_allclose(post["cor_Subject"][..., 0, 0], 1.0)


def test_marginal_and_non_centred_agree(sleepstudy_fits: dict) -> None:
    marginal, explicit = sleepstudy_fits["marginal"].posterior, \
        sleepstudy_fits["non-centred"].posterior
    pairs = {"b[Intercept]": ("b", 0), "b[Days]": ("b", 1), "sd[Intercept]": ("sd_Subject", 0),
             "sd[Days]": ("sd_Subject", 1)}
    for label, (name, j) in pairs.items():
        assert_same_posterior(marginal[name][..., j], explicit[name][..., j], label)
    assert_same_posterior(marginal["sigma"], explicit["sigma"], "sigma")
    assert_same_posterior(marginal["cor_Subject"][..., 0, 1], explicit["cor_Subject"][..., 0, 1],
                          "cor")
    for level in (0, 8, 17):
        for e in (0, 1):
            assert_same_posterior(marginal["r_Subject"][..., level, e],
                                  explicit["r_Subject"][..., level, e], f"r[{level}, {e}]")


def test_posterior_means_near_reml(reml_estimate: LMMEstimate, sleepstudy_fits: dict) -> None:
    """The priors are weak and the data informative: posterior means within about a
    posterior sd of REML (sds skew right, so their means sit above REML's modes)."""
    estimate = reml_estimate
    post = sleepstudy_fits["marginal"].posterior
    for name, reml_value, tolerance in (("b", estimate.beta, 0.25),
                                        ("sigma", estimate.sigma, 0.5),
                                        ("sd_Subject", estimate.sd["Subject"], 0.75)):
        mean, sd = post[name].mean(axis=(0, 1)), post[name].std(axis=(0, 1))
        assert np.all(np.abs(mean - reml_value) < tolerance * sd), (name, mean, reml_value, sd)
    effects = post["r_Subject"].mean(axis=(0, 1))
    np.testing.assert_allclose(effects, estimate.random_effects["Subject"], atol=3.0)


def test_parametrisation_errors(sleepstudy: MixedDesign) -> None:
    priors = default_priors(sleepstudy)
    with pytest.raises(SpecificationError, match="valid: auto, marginal"):
        sample_mixed(sleepstudy, priors, SamplerConfig(), parametrisation="collapsed")
    counts = MixedDesign("y ~ 1", "poisson", "y", np.ones(3), np.ones((3, 1)), ("Intercept",), ())
    with pytest.raises(SpecificationError, match="normal family, not poisson"):
        sample_mixed(counts, default_priors(counts), SamplerConfig(), parametrisation="marginal")


# ------------------------------------------------------------------ GLMMs


def simulated_glmm(family: str, seed: int) -> tuple[MixedDesign, dict[str, np.ndarray]]:
    """y with logit or log link, β = (−0.3, 0.8), a random intercept of sd 0.7 over 40
    groups of 15 rows; binomial with 8 trials, poisson with a log-exposure offset."""
    rng = np.random.default_rng(seed)
    groups, per_group = 40, 15
    n = groups * per_group
    index = np.repeat(np.arange(groups), per_group)
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    beta, sd = np.array([-0.3, 0.8]), 0.7
    effects = rng.normal(scale=sd, size=groups)
    eta = x @ beta + effects[index]
    trials = offset = None
    if family == "binomial":
        trials = np.full(n, 8.0)
        y = rng.binomial(8, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    else:
        offset = np.log(rng.uniform(0.5, 2.0, size=n))
        y = rng.poisson(np.exp(eta + offset)).astype(float)
    term = GroupTerm("g", ("Intercept",), np.ones((n, 1)), index,
                     tuple(f"g{j}" for j in range(groups)), False)
    design = MixedDesign("y ~ x + (1 | g)", family, "y", y, x, ("Intercept", "x"), (term,),
                         trials=trials, offset=offset)
    return design, {"b": beta, "sd_g": np.array([sd]), "r_g": effects}


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_glmm_recovers_known_parameters(family: str) -> None:
    design, truth = simulated_glmm(family, seed=11)
    config = SamplerConfig(draws=500, warmup=500, chains=2, seed=SEED)
    draws = sample_mixed(design, default_priors(design), config)
    assert draws.info["parametrisation"] == "non-centred"
    assert draws.info["divergences"] == 0
    assert "sigma" not in draws.posterior
    post = draws.posterior
    for name in ("b", "sd_g"):
        mean, sd = post[name].mean(axis=(0, 1)), post[name].std(axis=(0, 1))
        assert np.all(np.abs(mean - truth[name]) < 3.5 * sd), (name, mean, truth[name], sd)
    effects = post["r_g"][..., 0].mean(axis=(0, 1))
    assert np.corrcoef(effects, truth["r_g"])[0, 1] > 0.85


# ------------------------------------------------------------------ priors


def test_default_priors_follow_the_documented_rule(sleepstudy: MixedDesign) -> None:
    priors = default_priors(sleepstudy)
    sd_y = np.std(sleepstudy.y, ddof=1)
    sd_days = np.std(sleepstudy.x[:, 1], ddof=1)
    assert priors.fixed[0].params == pytest.approx((np.mean(sleepstudy.y), 2.5 * sd_y))
    assert priors.fixed[1].params == pytest.approx((0.0, 2.5 * sd_y / sd_days))
    assert priors.sigma is not None and priors.sigma.params == pytest.approx((sd_y,))
    assert priors.sd["Subject", "Intercept"].params == pytest.approx((sd_y,))
    assert priors.sd["Subject", "Days"].params == pytest.approx((sd_y / sd_days,))
    assert dict(priors.cor) == {"Subject": 2.0}
    counts, _ = simulated_glmm("poisson", seed=1)
    glmm = default_priors(counts)
    assert glmm.sigma is None and glmm.fixed[0].params == (0.0, 2.5)
    assert glmm.sd["g", "Intercept"].params == (1.0,)


def test_parse_priors_overrides_and_round_trips(sleepstudy: MixedDesign) -> None:
    priors = parse_priors("b = normal(0, 20); b[Intercept] = normal(250, 50); "
                          "sigma = exponential(0.1); sd = halfcauchy(10); "
                          "sd[Subject][Days] = halfnormal(5); cor[Subject] = lkj(1)", sleepstudy)
    assert priors.describe() == [
        "b[Intercept] ~ Normal(250, 50)", "b[Days] ~ Normal(0, 20)",
        "sigma ~ Exponential(0.1)", "sd_Subject[Intercept] ~ HalfCauchy(10)",
        "sd_Subject[Days] ~ HalfNormal(5)", "cor_Subject ~ LKJ(1)"]
    assert parse_priors(priors.spec(), sleepstudy) == priors
    defaults = default_priors(sleepstudy)
    assert parse_priors(defaults.spec(), sleepstudy) == defaults
    only_days = parse_priors("sd[Subject] = halfnormal(3)", sleepstudy, base=priors)
    assert {str(d) for d in only_days.sd.values()} == {"HalfNormal(3)"}


def test_printed_priors_paste_back(sleepstudy: MixedDesign) -> None:
    """The lines describe() prints (name ~ Dist, the summary's names) are prior text, and
    the older sd[Subject][Days] and cor[Subject] mean the same parameters."""
    priors = parse_priors("b[Days] = normal(0, 20); sd_Subject[Days] = halfnormal(5); "
                          "cor_Subject = lkj(1)", sleepstudy)
    pasted = parse_priors("; ".join(priors.describe()), sleepstudy)
    assert pasted.describe() == priors.describe()  # the defaults printed to 6 digits
    block = "\n".join(f"  {line}" for line in priors.describe())  # as the CLI prints it
    check_prior_syntax(block)
    assert parse_priors(block, sleepstudy).describe() == priors.describe()
    assert pasted.sd["Subject", "Days"] == priors.sd["Subject", "Days"]
    assert pasted.cor == priors.cor
    assert parse_priors("sd[Subject][Days] = halfnormal(5); cor[Subject] = lkj(1); "
                        "b[Days] ~ Normal(0, 20)", sleepstudy) == priors
    factor_wide = parse_priors("sd_Subject ~ halfcauchy(3)", sleepstudy)
    assert {str(d) for d in factor_wide.sd.values()} == {"HalfCauchy(3)"}


@pytest.mark.parametrize(("text", "message"), [
    ("b[Hours] = normal(0, 1)", "unknown coefficient 'Hours'; coefficients: Intercept, Days"),
    ("b = halfnormal(1)", "normal\\(loc, scale\\)"),
    ("sd[Patient] = halfnormal(1)", "factors: Subject"),
    ("sd[Subject][Age] = halfnormal(1)", "its effects: Intercept, Days"),
    ("sd = normal(0, 1)", "halfnormal"),
    ("sigma = halfnormal(-1)", "must be > 0"),
    ("cor[Subject] = lkj(0)", "lkj\\(eta\\)"),
    ("tau = halfnormal(1)", "sd_Subject\\[Days\\]"),
    ("sd_Subjct[Days] ~ halfnormal(1)", "unknown grouping factor 'Subjct' \\(did you mean "
                                         "'Subject'\\?\\)"),
    ("sd_Subject[Dys] = halfnormal(1)", "no effect 'Dys' \\(did you mean 'Days'\\?\\)"),
    ("b[Dayz] = normal(0, 1)", "unknown coefficient 'Dayz' \\(did you mean 'Days'\\?\\)"),
    ("sgima ~ halfnormal(1)", "\\(did you mean 'sigma'\\?\\)"),
    ("b_Days = normal(0, 1)", "\\(did you mean 'b\\[Days\\]'\\?\\)"),
    ("sd = halfnormal(a)", "numbers"),
])
def test_parse_priors_errors_name_the_valid_choices(sleepstudy: MixedDesign, text: str,
                                                    message: str) -> None:
    with pytest.raises(SpecificationError, match=message):
        parse_priors(text, sleepstudy)


def test_sigma_prior_only_for_gaussian() -> None:
    counts, _ = simulated_glmm("poisson", seed=2)
    with pytest.raises(SpecificationError, match="no residual sd"):
        parse_priors("sigma = halfnormal(1)", counts)
