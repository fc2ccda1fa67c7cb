"""Student-t priors on a mixed model's coefficients b[…], and the intercept's own prior
(issue 13, item 4).

The posterior of a one-way random-intercept model whose intercept has a Student-t prior is
integrated on a grid here, independently of poolwise: the group effects analytically
(normal family: ȳ_j ~ N(b, τ² + σ²/n_j) and the within-group sum of squares) or by
Gauss–Hermite quadrature (binomial family), the rest — (b, log σ, log τ) or (b, log τ) —
on a grid with the priors' densities from SciPy. The fits (importance sampling, NUTS) must
agree with it within 4 Monte Carlo standard errors (their summary's ``mcse_mean``:
sd/√ESS of the chains, or of the importance weights). Each test also checks that the same
grid under a Normal prior of the same scale is far from the t prior's answer, so a fit that
ignored the t prior would fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from poolwise import MixedModel, SpecificationError
from poolwise.cli import main
from poolwise.kinds.mixed.priors import parse_priors

SEED = 20261205
Z = 4.0
#: the t prior under test, and the Normal of the same scale it is told apart from
T_PRIOR = stats.t(3.0, loc=0.0, scale=1.0)
NORMAL_PRIOR = stats.norm(0.0, 1.0)
SIGMA_PRIOR, TAU_PRIOR = stats.halfnorm(scale=2.0), stats.halfnorm(scale=2.0)
PRIORS = "Intercept = student_t(3, 0, 1); sigma = halfnormal(2); sd = halfnormal(2)"


@pytest.fixture(scope="module")
def groups() -> pd.DataFrame:
    """6 groups of 4 rows, y = 5 + u_j + ε: far from the intercept's prior centre 0."""
    rng = np.random.default_rng(SEED)
    g = np.repeat(np.arange(6), 4)
    y = 5.0 + rng.normal(0.0, 1.5, 6)[g] + rng.normal(0.0, 1.0, g.size)
    return pd.DataFrame({"y": y, "g": [f"g{j}" for j in g]})


def _moments(log_density: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, float]:
    """Posterior means of ``values`` (arrays on the grid) from an unnormalised log density
    on an evenly spaced grid."""
    weight = np.exp(log_density - log_density.max())
    weight /= weight.sum()
    return {name: float(np.sum(weight * value)) for name, value in values.items()}


def normal_grid(table: pd.DataFrame, intercept_prior) -> dict[str, float]:
    """E[b], E[σ], E[τ] of y_ij = b + u_j + ε_ij, u_j ~ N(0, τ²), ε ~ N(0, σ²), by a grid on
    (b, log σ, log τ) with p(y_j | b, σ, τ) ∝ σ^-(n_j−1) exp(−S_j/2σ²) N(ȳ_j; b, τ² + σ²/n_j)."""
    grouped = table.groupby("g")["y"]
    n, mean = grouped.size().to_numpy(float), grouped.mean().to_numpy()
    squares = grouped.apply(lambda v: float(np.sum((v - v.mean()) ** 2))).to_numpy()
    b = np.linspace(-2.0, 10.0, 241)[:, None, None]
    log_sigma = np.linspace(np.log(0.3), np.log(5.0), 70)[None, :, None]
    log_tau = np.linspace(np.log(0.01), np.log(12.0), 90)[None, None, :]
    sigma, tau = np.exp(log_sigma), np.exp(log_tau)
    log_density = (intercept_prior.logpdf(b) + SIGMA_PRIOR.logpdf(sigma) + log_sigma
                   + TAU_PRIOR.logpdf(tau) + log_tau)
    for n_j, mean_j, squares_j in zip(n, mean, squares, strict=True):
        log_density = (log_density - (n_j - 1.0) * log_sigma - squares_j / (2.0 * sigma**2)
                       + stats.norm.logpdf(mean_j, b, np.sqrt(tau**2 + sigma**2 / n_j)))
    shape = np.broadcast(b, sigma, tau).shape
    return _moments(log_density, {"b[Intercept]": np.broadcast_to(b, shape),
                                  "sigma": np.broadcast_to(sigma, shape),
                                  "sd_g[Intercept]": np.broadcast_to(tau, shape)})


def assert_agrees(fit, exact: dict[str, float], other: dict[str, float]) -> None:
    """Each posterior mean within Z MCSE of the grid's; the intercept's mean under the
    Normal prior further than 3 Z MCSE away (the check could fail)."""
    summary = fit.summary().set_index("param")
    for name, value in exact.items():
        row = summary.loc[name]
        assert abs(row["mean"] - value) < Z * row["mcse_mean"], (
            f"{name}: {fit.method} {row['mean']:.4g}, grid {value:.4g}, "
            f"MCSE {row['mcse_mean']:.3g}")
    row = summary.loc["b[Intercept]"]
    assert abs(other["b[Intercept]"] - exact["b[Intercept]"]) > 3 * Z * row["mcse_mean"]


@pytest.mark.parametrize("method", ["importance",
                                    pytest.param("nuts", marks=pytest.mark.full)])
def test_normal_model_with_a_t_prior_on_the_intercept_matches_the_grid(groups, method):
    """β integrated out as a scale mixture, log λ sampled (importance, marginal NUTS; the
    same potential, in NumPy and in JAX: :func:`test_nuts_potentials_take_the_t_prior`)."""
    model = MixedModel(formula="y ~ 1 + (1 | g)", prior=PRIORS, method=method, seed=SEED,
                       chains=2, draws=500, warmup=400)
    fit = model.fit(groups)
    assert fit.method == method
    assert "scale-mixture weights log λ" in fit.info["sampled"]
    assert_agrees(fit, normal_grid(groups, T_PRIOR), normal_grid(groups, NORMAL_PRIOR))


@pytest.mark.full
def test_normal_model_explicit_nuts_with_a_t_prior_matches_the_grid(groups):
    """The non-centred parametrisation samples β with the t density itself."""
    model = MixedModel(formula="y ~ 1 + (1 | g)", prior=PRIORS, method="nuts", seed=SEED,
                       parametrisation="non-centred", target_accept=0.95)
    fit = model.fit(groups)
    assert_agrees(fit, normal_grid(groups, T_PRIOR), normal_grid(groups, NORMAL_PRIOR))


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    """10 groups of 15 to 30 trials at logit 2.5 + u_j: far from the prior centre 0."""
    rng = np.random.default_rng(SEED)
    n = rng.integers(15, 31, 10)
    p = special.expit(2.5 + rng.normal(0.0, 0.5, 10))
    return pd.DataFrame({"y": rng.binomial(n, p), "n": n, "g": [f"g{j}" for j in range(10)]})


def binomial_grid(table: pd.DataFrame, intercept_prior) -> dict[str, float]:
    """E[b], E[τ] of y_j ~ Binomial(n_j, logistic(b + u_j)), u_j ~ N(0, τ²), by a grid on
    (b, log τ), each u_j integrated by 40-point Gauss–Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)  # ∫ f(z) φ(z) dz √(2π)
    b = np.linspace(-1.0, 6.0, 141)[:, None, None]
    log_tau = np.linspace(np.log(0.005), np.log(6.0), 90)[None, :, None]
    tau = np.exp(log_tau)
    log_density = (intercept_prior.logpdf(b) + TAU_PRIOR.logpdf(tau) + log_tau)[..., 0]
    for y_j, n_j in zip(table["y"], table["n"], strict=True):
        eta = b + tau * nodes
        likelihood = y_j * -np.logaddexp(0.0, -eta) + (n_j - y_j) * -np.logaddexp(0.0, eta)
        log_density = log_density + special.logsumexp(likelihood, b=weights, axis=-1)
    shape = log_density.shape
    return _moments(log_density, {"b[Intercept]": np.broadcast_to(b[..., 0], shape),
                                  "sd_g[Intercept]": np.broadcast_to(tau[..., 0], shape)})


def _binomial(method: str, **settings):
    return MixedModel(formula="y | trials(n) ~ 1 + (1 | g)", family="binomial",
                      prior="Intercept = student_t(3, 0, 1); sd = halfnormal(2)",
                      method=method, seed=SEED, **settings)


def test_binomial_model_with_a_t_prior_on_the_intercept_matches_the_grid(trials):
    """β sampled with the t density (importance with the effects integrated out by AGQ)."""
    fit = _binomial("importance", chains=2, draws=500).fit(trials)
    assert fit.method == "importance"
    assert_agrees(fit, binomial_grid(trials, T_PRIOR), binomial_grid(trials, NORMAL_PRIOR))


@pytest.mark.full
def test_binomial_model_nuts_with_a_t_prior_matches_the_grid(trials):
    fit = _binomial("nuts").fit(trials)
    assert_agrees(fit, binomial_grid(trials, T_PRIOR), binomial_grid(trials, NORMAL_PRIOR))


def test_nuts_potentials_take_the_t_prior(groups, trials):
    """NUTS's potentials in JAX: the marginal one (β a scale mixture) equals the NumPy
    evaluation that importance sampling uses, and the explicit one (β sampled) differs from
    the same model's under a Normal prior by exactly log t − log N at β (SciPy)."""
    import jax
    import jax.numpy as jnp

    from poolwise._ops import start_jax
    from poolwise.kinds.mixed.inference import _explicit_model, _marginal_model

    start_jax()  # float64, as NUTS runs
    rng = np.random.default_rng(SEED)
    data = MixedModel(formula="y ~ 1 + (1 | g)", prior=PRIORS).prepare(groups)
    model = _marginal_model(data.design, data.priors, "marginal")
    assert model.start.size == 3  # log σ, log τ, log λ
    potential = jax.jit(lambda z: model.potential(z, model.data, jnp))
    for z in model.start + rng.normal(0.0, 0.5, (3, model.start.size)):
        assert float(potential(z)) == pytest.approx(
            float(model.potential(z[None], model.data, np)[0]), rel=1e-9)
    binomial = _binomial("nuts")
    normal = binomial.replace(prior="Intercept = normal(0, 1); sd = halfnormal(2)")
    with_t, with_normal = (_explicit_model(m.prepare(trials).design, m.prepare(trials).priors,
                                           "non-centred") for m in (binomial, normal))
    t_potential, normal_potential = (jax.jit(lambda z, m=m: m.potential(z, m.data))
                                     for m in (with_t, with_normal))
    for z in with_t.start + rng.normal(0.0, 0.5, (3, with_t.start.size)):
        difference = float(normal_potential(z)) - float(t_potential(z))
        expected = T_PRIOR.logpdf(z[0]) - NORMAL_PRIOR.logpdf(z[0])
        assert difference == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_the_graph_shows_a_t_priors_degrees_of_freedom(groups):
    table = groups.assign(x=np.arange(len(groups)) % 3)
    graph = MixedModel(formula="y ~ x + (1 | g)", prior="b[x] = student_t(3, 0, 10)"
                       ).graph(table)
    labels = {node.name: node.label for node in graph.nodes}
    assert labels["b_df"] == r"$\nu_{\beta} = (\infty, 3)$"  # a Normal is a t with ν = ∞
    assert labels["b_sigma"].endswith(", 10)$")


# ----------------------------------------------------------------------- prior draws
def test_prior_draws_of_a_t_coefficient_follow_the_t(groups):
    """The prior predictive's β: its quantiles' CDF values under SciPy's t within 4
    binomial sds; the Normal coefficient keeps its Normal."""
    model = MixedModel(formula="y ~ 1 + (1 | g)", seed=SEED,
                       prior="Intercept = student_t(3, 2, 0.5); sigma = halfnormal(2)")
    priors = model.prepare(groups).priors
    draws = priors.sample_fixed(np.random.default_rng(SEED), 20000)[:, 0]
    for p in (0.01, 0.1, 0.5, 0.9, 0.99):
        cdf = stats.t(3.0, loc=2.0, scale=0.5).cdf(np.quantile(draws, p))
        assert abs(cdf - p) < 4 * np.sqrt(p * (1 - p) / draws.size), p


# ----------------------------------------------------------------------- the intercept
def test_b_leaves_the_intercept_and_says_so(groups):
    """As brms's class b: `b = …` sets the other coefficients; the intercept keeps its own
    prior, the printed line says so and reads back; `Intercept = …` and `b[Intercept] = …`
    set it."""
    table = groups.assign(x=np.arange(len(groups)) % 3)
    model = MixedModel(formula="y ~ x + (1 | g)", prior="b = normal(0, 5)")
    lines = model.prior_statements(table)
    assert lines[0].startswith("b[Intercept] ~ Normal(")
    assert "the intercept's own prior, which b = … leaves" in lines[0]
    assert "Intercept = …" in lines[0]
    assert lines[1] == "b[x] ~ Normal(0, 5)"
    pasted = MixedModel(formula="y ~ x + (1 | g)", prior="; ".join(lines))
    assert pasted.prior_statements(table) == [lines[0].partition("  (")[0], *lines[1:]]
    for text in ("b = normal(0, 5); Intercept = student_t(3, 1, 2)",
                 "b = normal(0, 5); b[Intercept] ~ StudentT(3, 1, 2)"):
        model = MixedModel(formula="y ~ x + (1 | g)", prior=text)
        lines = model.prior_statements(table)
        assert lines[:2] == ["b[Intercept] ~ StudentT(3, 1, 2)", "b[x] ~ Normal(0, 5)"]
    design = MixedModel(formula="y ~ 0 + x + (1 | g)").prepare(table).design
    with pytest.raises(SpecificationError, match="unknown coefficient 'Intercept'"):
        parse_priors("Intercept = normal(0, 1)", design)
    with pytest.raises(SpecificationError, match=r"normal\(loc, scale\) or student_t"):
        MixedModel(formula="y ~ x + (1 | g)", prior="b = cauchy(0, 1)").prepare(table)


def test_cli_takes_a_t_prior_on_a_coefficient(capsys):
    code = main(["fit", "sleepstudy", "--formula", "Reaction ~ Days + (1 | Subject)",
                 "--prior", "b[Days] = student_t(3, 0, 10)", "--draws", "200",
                 "--chains", "2", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    result = json.loads(out)
    assert "b[Days] ~ StudentT(3, 0, 10)" in result["prior"]
    code = main(["fit", "sleepstudy", "--prior", "b[Days] = student_t(3, 0, 10)",
                 "--method", "eb-ml"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "uses no priors" in err
    assert "'b[Days] = student_t(3, 0, 10)'" in err and "'importance' or 'nuts'" in err
