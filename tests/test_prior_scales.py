"""Student-t and half-t priors, rate-family priors on the population mean and concentration,
and the pooling factor a prior implies (issue 13, item 4).

Each is checked against something independent: densities against SciPy; the Jacobian of
(μ, κ) → (α, β) → (u, v) by the prior's normalisation and moments on the quadrature grid
against closed forms; the exact (quadrature) posterior against NUTS on the same model and
data within Monte Carlo error (``agreement.py``); the implied pooling factor's quantiles
against the closed-form distribution of λ.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from agreement import assert_same_posterior
from scipy import special, stats

from poolwise import MixedModel, Model, SpecificationError
from poolwise.cli import main
from poolwise.exceptions import PosteriorWarning
from poolwise.families import BetaBinomial, GammaPoisson, NormalNormal
from poolwise.kinds.mixed.priors import check_prior_syntax
from poolwise.kinds.nested import NestedPrior
from poolwise.priors import (
    POOLING_DRAWS,
    IndependentPrior,
    MeanConcentrationPrior,
    hyperprior_log_density_uv,
    implied_pooling,
    make_distribution,
    parse_hyperprior,
)

SEED = 20261205
X = np.array([-30.0, -2.0, 0.05, 0.7, 3.0, 25.0])
POSITIVE = X[X > 0]


# ----------------------------------------------------------------------- densities
@pytest.mark.parametrize(("name", "params", "reference", "x"), [
    ("studentt", (3.0, 1.5, 10.0), stats.t(3.0, loc=1.5, scale=10.0), X),
    ("halfstudentt", (4.0, 2.0), stats.halfcauchy(), None),  # reference built below
    ("beta", (2.0, 20.0), stats.beta(2.0, 20.0), np.array([0.01, 0.2, 0.7])),
])
def test_new_distributions_match_scipy(name, params, reference, x):
    dist = make_distribution(name, params)
    if name == "halfstudentt":  # 2 t_ν(x; 0, s) on x > 0
        x = POSITIVE
        expected = np.log(2.0) + stats.t(params[0], scale=params[1]).logpdf(x)
    else:
        expected = reference.logpdf(x)
    np.testing.assert_allclose(dist.log_density(x), expected, rtol=1e-12)


@pytest.mark.parametrize(("name", "params", "reference"), [
    ("studentt", (3.0, 1.5, 10.0), stats.t(3.0, loc=1.5, scale=10.0)),
    ("halfstudentt", (4.0, 2.0), stats.chi(1)),  # |t|: compared through its own CDF
    ("beta", (2.0, 20.0), stats.beta(2.0, 20.0)),
])
def test_new_distributions_sample_what_they_describe(name, params, reference):
    """Kolmogorov–Smirnov at level 1e-4 (a false alarm once in 10,000 runs)."""
    draws = make_distribution(name, params).sample(np.random.default_rng(SEED), 4000)
    if name == "halfstudentt":  # P(|T| ≤ x) = 2 F_t(x/s) − 1
        df, scale = params
        cdf = lambda x: 2.0 * stats.t(df).cdf(np.asarray(x) / scale) - 1.0  # noqa: E731
        assert stats.kstest(draws, cdf).pvalue > 1e-4
    else:
        assert stats.kstest(draws, reference.cdf).pvalue > 1e-4


def test_new_densities_are_the_same_in_jax():
    """NUTS evaluates the priors through JAX's operations, quadrature through NumPy's."""
    from poolwise._ops import jax_ops

    for name, params, x in (("studentt", (3.0, 1.5, 10.0), X),
                            ("halfstudentt", (4.0, 2.0), POSITIVE),
                            ("beta", (2.0, 20.0), np.array([0.01, 0.2, 0.7]))):
        dist = make_distribution(name, params)
        np.testing.assert_allclose(np.asarray(dist.log_density(x, jax_ops())),
                                   dist.log_density(x), rtol=1e-12)


# ----------------------------------------------------------------------- names
@pytest.mark.parametrize(("text", "alpha"), [
    ("student_t(3, 0, 10)", "HalfStudentT(3, 10)"),  # brms: on a parameter > 0, a half-t
    ("half_t(4, 10)", "HalfStudentT(4, 10)"),
    ("halfstudentt(4, 10)", "HalfStudentT(4, 10)"),
    ("HalfStudentT(4, 10)", "HalfStudentT(4, 10)"),  # as printed
])
def test_half_t_is_read_as_people_write_it(text, alpha):
    prior = parse_hyperprior(text)
    assert isinstance(prior, IndependentPrior) and str(prior.alpha) == alpha
    assert parse_hyperprior(prior.spec()) == prior


@pytest.mark.parametrize(("family", "text", "message"), [
    (None, "halfstudent(4, 1)", "unknown prior distribution 'halfstudent' \\(did you mean "
     "'halfstudentt'\\?\\); valid: "
     "halfnormal, halfcauchy, halfstudentt, exponential, gamma, lognormal, normal, studentt"),
    (None, "student_t(3, 1, 10)", r"location must be 0, not 1; write halfstudentt\(3, 10\)"),
    (None, "halfstudentt(0, 1)", "df must be > 0"),
    ("beta-binomial", "mu=lognormal(0, 1), kappa=halfnormal(10)", r"mean μ lies in \(0, 1\)"),
    ("gamma-poisson", "mu=beta(1, 1), kappa=halfnormal(10)", r"mean μ lies in \(0, ∞\)"),
    ("beta-binomial", "mean=beta(1, 1), shape=halfnormal(10)", "has no shape"),
    ("beta-binomial", "mu=beta(1, 1), kappa=normal(0, 10)", "κ > 0 needs a prior on"),
    ("normal", "mu=normal(0, 1), kappa=halfnormal(10)", "unknown hyperparameter 'kappa'"),
    ("normal", "mu=normal(0, 1), icc=beta(1, 1)", "known and differ between groups"),
])
def test_bad_priors_say_what_is_valid(family, text, message):
    with pytest.raises(SpecificationError, match=message):
        if family is None:
            parse_hyperprior(text)
        else:
            Model(family=family, prior=text)


@pytest.mark.parametrize(("family", "text", "printed"), [
    ("beta-binomial", "mean=beta(2, 20), concentration=lognormal(3, 1)",
     "μ ~ Beta(2, 20), κ ~ LogNormal(3, 1)"),
    ("gamma-poisson", "mean=lognormal(-7, 1), shape=lognormal(0, 1)",
     "μ ~ LogNormal(-7, 1), κ ~ LogNormal(0, 1)"),
    ("normal", "mu=student_t(3, 0, 10), tau=student_t(4, 0, 5)",
     "μ ~ StudentT(3, 0, 10), τ ~ HalfStudentT(4, 5)"),
])
def test_interpretable_priors_print_and_paste_back(family, text, printed):
    model = Model(family=family, prior=text)
    line = model.describe_prior()
    assert line.endswith(printed)
    assert Model(family=family, prior=line).hyperprior == model.hyperprior
    assert Model(family=family, prior=model.prior_spec()).hyperprior == model.hyperprior


def test_mixed_and_nested_take_student_t():
    sleep = pd.DataFrame({"y": [1.0, 2.0, 3.5, 2.5, 4.0, 5.5], "x": [0, 1, 2, 0, 1, 2],
                          "g": list("aaabbb")})
    model = MixedModel(formula="y ~ x + (1 | g)",
                       prior="sigma = student_t(3, 0, 10); sd = half_t(4, 2)")
    assert model.describe_prior(sleep).split("; ")[2:] == [
        "sigma ~ HalfStudentT(3, 10)", "sd_g[Intercept] ~ HalfStudentT(4, 2)"]
    assert MixedModel(formula="y ~ x + (1 | g)", prior="b[x] = student_t(3, 0, 10)"
                      ).describe_prior(sleep).split("; ")[1] == "b[x] ~ StudentT(3, 0, 10)"
    check_prior_syntax("sd_g = student_t(3, 0, 1)")
    nested = NestedPrior.parse("m_u=student_t(3, 0, 2), s_u=student_t(3, 0, 1)")
    assert (str(nested.m_u), str(nested.s_u)) == ("StudentT(3, 0, 2)", "HalfStudentT(3, 1)")


# ----------------------------------------------------------------------- the Jacobian
def _grid_moments(prior, family, u, v):
    """∫∫ p(u, v) du dv and E[u], E[v] by the trapezoid rule over a wide (u, v) box."""
    uu, vv = np.meshgrid(u, v, indexing="ij")
    density = np.exp(hyperprior_log_density_uv(prior, family, uu, vv))
    mass = np.trapezoid(np.trapezoid(density, v, axis=1), u)
    mean_u = np.trapezoid(np.trapezoid(density * uu, v, axis=1), u) / mass
    mean_v = np.trapezoid(np.trapezoid(density * vv, v, axis=1), u) / mass
    return mass, mean_u, mean_v


@pytest.mark.parametrize(("family", "text", "mean_u"), [
    # u = logit μ with μ ~ Beta(a, b): E[u] = ψ(a) − ψ(b); v = log κ ~ N(3, 1)
    (BetaBinomial(), "mu=beta(2, 5), kappa=lognormal(3, 1)",
     special.digamma(2.0) - special.digamma(5.0)),
    # u = log μ ~ N(−7, 0.5); v = log α = log κ ~ N(3, 1)
    (GammaPoisson(), "mu=lognormal(-7, 0.5), shape=lognormal(3, 1)", -7.0),
])
def test_mean_concentration_density_has_the_right_jacobian(family, text, mean_u):
    """The prior on (μ, κ), carried to (α, β) and on to the grid's (u, v) by the two
    Jacobians, integrates to 1 and has the closed-form E[u] and E[v] = E[log κ] = 3."""
    prior = parse_hyperprior(text, family)
    assert isinstance(prior, MeanConcentrationPrior)
    u = np.linspace(mean_u - 12.0, mean_u + 12.0, 1201)
    v = np.linspace(3.0 - 9.0, 3.0 + 9.0, 1201)
    mass, grid_u, grid_v = _grid_moments(prior, family, u, v)
    assert mass == pytest.approx(1.0, abs=1e-6)
    assert grid_u == pytest.approx(mean_u, abs=1e-6)
    assert grid_v == pytest.approx(3.0, abs=1e-6)
    # and its draws, carried to (u, v) by the family, have the same means within 4 MCSE
    alpha, beta = prior.sample(family, np.random.default_rng(SEED), 20000)
    for drawn, exact in zip(family.to_uv(alpha, beta), (mean_u, 3.0), strict=True):
        assert abs(drawn.mean() - exact) < 4 * drawn.std() / np.sqrt(drawn.size)


# ----------------------------------------------------------------------- quadrature vs NUTS
@pytest.fixture(scope="module")
def eight_schools() -> pd.DataFrame:
    from poolwise import datasets

    return datasets.load("eight-schools")


def _both(model: Model, data: pd.DataFrame, **columns: str):
    settings = {"seed": SEED, "draws": 600, "warmup": 400, "chains": 2}
    nuts = model.replace(method="nuts", **settings).fit(data, **columns)
    exact = model.replace(method="exact", **settings).fit(data, **columns)
    assert nuts.info["divergences"] == 0
    return nuts, exact


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    """8 groups of 10 to 40 trials, θ_j ~ Beta(3, 12)."""
    rng = np.random.default_rng(SEED)
    n = rng.integers(10, 41, size=8)
    return pd.DataFrame({"g": [f"g{j}" for j in range(8)], "n": n,
                         "y": rng.binomial(n, rng.beta(3.0, 12.0, size=8))})


def test_mean_concentration_prior_quadrature_agrees_with_nuts(trials):
    model = Model(family="beta-binomial", prior="mu=beta(2, 8), kappa=lognormal(2.5, 1)")
    nuts, exact = _both(model, trials, y="y", n="n", group="g")
    for name, transform in (("mu", special.logit), ("kappa", np.log)):
        assert_same_posterior(transform(nuts.draws(name)), transform(exact.draws(name)), name)
    assert_same_posterior(nuts.draws("theta")[..., 0], exact.draws("theta")[..., 0], "theta[0]")


@pytest.mark.full
def test_student_t_priors_quadrature_agrees_with_nuts(eight_schools):
    """μ ~ Student-t leaves μ | τ non-conjugate, so ``exact`` grids (μ, log τ) in 2-D."""
    model = Model(family="normal", prior="mu=student_t(3, 0, 10), tau=half_t(4, 5)")
    nuts, exact = _both(model, eight_schools, y="y", se="sigma", group="school")
    assert_same_posterior(nuts.draws("mu"), exact.draws("mu"), "mu")
    assert_same_posterior(np.log(nuts.draws("tau")), np.log(exact.draws("tau")), "log tau")


@pytest.mark.full
@pytest.mark.parametrize(("family", "prior"), [
    ("gamma-poisson", "mu=lognormal(0, 1), shape=lognormal(1.5, 1)"),
    ("beta-binomial", "student_t(3, 0, 10)"),
    ("normal", "mu=normal(0, 20), tau=half_t(4, 5)"),  # the 1-D quadrature in log τ
])
def test_full_quadrature_agrees_with_nuts(family, prior, eight_schools, trials):
    """The full-size versions: 4 × 1000 draws, every hyperparameter and three groups."""
    model = Model(family=family, prior=prior, seed=SEED)
    if family == "normal":
        data, columns = eight_schools, {"y": "y", "se": "sigma", "group": "school"}
    else:
        rate = trials.assign(n=trials["n"] * 1.0)
        data, columns = rate, {"y": "y", "n": "n", "group": "g"}
    nuts = model.replace(method="nuts").fit(data, **columns)
    exact = model.replace(method="exact").fit(data, **columns)
    first, second = model.family.hyper_names
    assert_same_posterior(nuts.draws(first) if family == "normal" else
                          np.log(nuts.draws(first)),
                          exact.draws(first) if family == "normal" else
                          np.log(exact.draws(first)), first)
    assert_same_posterior(np.log(nuts.draws(second)), np.log(exact.draws(second)), second)
    for j in (0, 3, 7):
        assert_same_posterior(nuts.draws("theta")[..., j], exact.draws("theta")[..., j],
                              f"theta[{j}]")


@pytest.mark.full
def test_full_mixed_half_t_importance_agrees_with_nuts():
    from poolwise import datasets

    sleep = datasets.load("sleepstudy")
    model = MixedModel(formula="Reaction ~ Days + (1 | Subject)", seed=SEED,
                       prior="sigma = student_t(3, 0, 30); sd = half_t(4, 20)")
    importance = model.replace(method="importance").fit(sleep)
    nuts = model.replace(method="nuts").fit(sleep)
    for name in ("sigma", "sd_Subject"):
        assert_same_posterior(np.log(nuts.draws(name)).squeeze(),
                              np.log(importance.draws(name)).squeeze(), name)


# ----------------------------------------------------------------------- heavy tails
def test_a_heavy_half_t_leaves_out_the_sd_that_does_not_exist():
    """Two groups, μ flat, τ ~ half-t with ν = ½: p(τ | y) ∝ τ^(−(J−1)) τ^(−(ν+1)) for large
    τ, so p(log τ | y) ∝ e^(−1.5 log τ): E[τ] exists, its sd does not."""
    data = pd.DataFrame({"g": ["a", "b"], "y": [0.0, 1.0], "se": [1.0, 1.0]})
    model = Model(family="normal", prior="mu=flat, tau=halfstudentt(0.5, 1)", draws=500,
                  seed=SEED)
    with pytest.warns(PosteriorWarning, match="a posterior mean but no finite sd"):
        fit = model.fit(data, y="y", se="se", group="g")
    assert fit.infinite_moments()["tau"] == ["sd"]
    row = fit.summary().set_index("param").loc["tau"]
    assert np.isfinite(row["mean"]) and np.isnan(row["sd"])


# ----------------------------------------------------------------------- implied pooling
def _assert_quantiles(factors, cdf):
    """The draws' 5 %, 50 % and 95 % quantiles have CDF values within 4 binomial sds."""
    for p in (0.05, 0.5, 0.95):
        q = np.quantile(factors, p)
        assert abs(cdf(q) - p) < 4 * np.sqrt(p * (1 - p) / POOLING_DRAWS), p


def test_implied_pooling_of_the_normal_family_matches_its_closed_form():
    """λ = σ²/(σ² + τ²) decreases in τ: P(λ ≤ x) = P(τ ≥ σ √((1 − x)/x))."""
    prior = parse_hyperprior("mu=flat, tau=half_t(4, 5)")  # μ improper: λ needs only τ
    se = 8.0
    factors = implied_pooling(prior, NormalNormal(), se, np.random.default_rng(SEED))
    tau = stats.t(4.0, scale=5.0)
    _assert_quantiles(factors, lambda x: 2.0 * tau.sf(se * np.sqrt((1 - x) / x)))


def test_implied_pooling_of_mean_and_concentration_matches_its_closed_form():
    """Beta-binomial: λ = κ/(κ + n) increases in κ ~ LogNormal(2, 1)."""
    prior = parse_hyperprior("mu=beta(2, 8), kappa=lognormal(2, 1)")
    n = 20.0
    factors = implied_pooling(prior, BetaBinomial(), n, np.random.default_rng(SEED))
    kappa = stats.lognorm(1.0, scale=np.exp(2.0))
    _assert_quantiles(factors, lambda x: kappa.cdf(n * x / (1 - x)))


def test_implied_pooling_of_a_mixed_intercept_matches_its_closed_form():
    """λ = (σ²/n)/(σ²/n + τ²) with σ ~ HalfNormal(a), τ ~ HalfNormal(b): τ/σ = (b/a)|C|, C
    Cauchy, so P(λ ≤ x) = P(τ/σ ≥ r) = 1 − (2/π) arctan(r a/b), r = √((1 − x)/(x n))."""
    table = pd.DataFrame({"y": np.arange(12.0) % 5, "g": list("aaabbbbcccdd")})
    model = MixedModel(formula="y ~ 1 + (1 | g)",
                       prior="sigma = halfnormal(2); sd = halfnormal(3)")
    line = model.implied_pooling(table)
    prefix = "the prior's pooling factor for a g of 3 rows (the median), its intercept: median "
    assert line is not None and line.startswith(prefix)
    median = float(line.removeprefix(prefix).split(",")[0])

    def cdf(x: float) -> float:
        return 1 - 2 / np.pi * np.arctan(np.sqrt((1 - x) / (x * 3.0)) * 2.0 / 3.0)

    # the printed median, to two decimals: its CDF within 4 binomial sds and the rounding
    slope = (cdf(median + 0.005) - cdf(median - 0.005)) / 0.01
    assert abs(cdf(median) - 0.5) < 4 * np.sqrt(0.25 / POOLING_DRAWS) + 0.005 * slope


def test_implied_pooling_is_shown_beside_the_prior(capsys):
    code = main(["fit", "rats", "--prior", "mu=beta(2, 8), kappa=lognormal(3, 1)",
                 "--draws", "100", "--chains", "2", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    line = json.loads(out)["implied_pooling"]
    assert line.startswith("the prior's pooling factor for a group with n = 20 (the median)")
    assert Model(prior="bda").implied_pooling(None) is None
    code = main(["fit", "rats", "--prior", "bda", "--draws", "100", "--chains", "2",
                 "--format", "json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["implied_pooling"] is None  # improper: no draws


def test_an_unknown_distribution_ends_with_one_line(capsys):
    code = main(["fit", "rats", "--prior", "halfstudent(4, 1)"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and out == ""
    assert "valid: halfnormal, halfcauchy, halfstudentt" in err


# ----------------------------------------------------------------------- the ICC
def test_icc_prior_is_a_density_with_the_stated_icc():
    """The variance coordinates' log prior (log σ, log τ) that importance sampling and NUTS
    both use, with σ ~ HalfNormal(2) and τ²/(τ² + σ²) ~ Beta(2, 3): it integrates to 1 over
    the plane, and E[ρ] = 2/5, E[log σ] that of HalfNormal(2) (ψ(½)/2 + log(2√2))."""
    from poolwise.kinds.mixed.inference import _prior_data, _Structure

    table = pd.DataFrame({"y": np.arange(12.0) % 5, "g": list("aaabbbbcccdd")})
    model = MixedModel(formula="y ~ 1 + (1 | g)", prior="sigma = halfnormal(2); icc = beta(2, 3)")
    prepared = model.prepare(table)
    assert model.describe_prior(table).endswith("sigma ~ HalfNormal(2); icc_g ~ Beta(2, 3)")
    assert prepared.priors == model.replace(prior=prepared.priors.spec()).prepare(table).priors
    structure = _Structure.of(prepared.design, prepared.priors, explicit=False)
    axis = np.linspace(-20.0, 6.0, 801)
    log_sigma, log_tau = np.meshgrid(axis, axis, indexing="ij")
    z = np.stack([log_sigma, log_tau], axis=-1)
    log_prior = structure.variance_parts(z, _prior_data(prepared.design, prepared.priors),
                                         np)[0]
    density = np.exp(log_prior)
    mass = np.trapezoid(np.trapezoid(density, axis, axis=1), axis)
    icc = np.exp(2 * log_tau) / (np.exp(2 * log_tau) + np.exp(2 * log_sigma))

    def mean(values):
        return np.trapezoid(np.trapezoid(density * values, axis, axis=1), axis)

    assert mass == pytest.approx(1.0, abs=1e-6)
    assert mean(icc) == pytest.approx(0.4, abs=1e-6)
    assert mean(log_sigma) == pytest.approx(special.digamma(0.5) / 2 + np.log(2 * np.sqrt(2)),
                                            abs=1e-6)


@pytest.mark.parametrize(("prior", "message"), [
    ("icc_h = beta(2, 2)", "with a factor whose term has an intercept"),
    ("icc = halfnormal(1)", r"an ICC's prior is beta\(a, b\)"),
])
def test_bad_icc_priors(prior, message):
    table = pd.DataFrame({"y": np.arange(12.0) % 5, "g": list("aaabbbbcccdd")})
    with pytest.raises(SpecificationError, match=message):
        MixedModel(formula="y ~ 1 + (1 | g)", prior=prior).describe_prior(table)


def test_icc_needs_a_residual_sd():
    table = pd.DataFrame({"y": [0, 1, 1, 0, 1, 1], "g": list("aaabbb")})
    with pytest.raises(SpecificationError, match="only the normal family has"):
        MixedModel(formula="y ~ 1 + (1 | g)", family="bernoulli",
                   prior="icc = beta(2, 2)").describe_prior(table)


@pytest.mark.full
def test_full_icc_prior_importance_agrees_with_nuts():
    from poolwise import datasets

    sleep = datasets.load("sleepstudy")
    model = MixedModel(formula="Reaction ~ Days + (1 | Subject)", seed=SEED,
                       prior="icc = beta(2, 3)")
    importance = model.replace(method="importance").fit(sleep)
    nuts = model.replace(method="nuts").fit(sleep)
    for name in ("sigma", "sd_Subject"):
        assert_same_posterior(np.log(nuts.draws(name)).squeeze(),
                              np.log(importance.draws(name)).squeeze(), name)


# ----------------------------------------------------------------------- implied pooling:
# GLMMs and nested models, against the same λ computed here from independent prior draws
MONTE_CARLO = 200_000
_PRINTED = re.compile(r"median (\S+), 90% \[(\S+), (\S+)\]")


def _assert_printed_quantiles(line: str, factors: np.ndarray) -> None:
    """The printed median and 90 % interval of λ (two decimals) are the 50 %, 5 % and 95 %
    quantiles of ``factors``, λ drawn here independently: the draws' ECDF at each printed
    number within 4 binomial sds (of the printed 8,000 draws and of these) plus the ECDF's
    rise over the rounding (± 0.005)."""
    match = _PRINTED.search(line)
    assert match is not None, line
    ecdf = np.sort(factors)
    for text, p in zip(match.groups(), (0.5, 0.05, 0.95), strict=True):
        if text.startswith(("<", ">")):
            bound = float(text[1:])
            below = np.searchsorted(ecdf, bound) / ecdf.size
            assert below > p if text[0] == "<" else below < p, (text, p)
            continue
        value = float(text)
        at = [np.searchsorted(ecdf, x) / ecdf.size for x in (value - 0.005, value, value + 0.005)]
        tolerance = 4 * np.sqrt(p * (1 - p)) * (1 / np.sqrt(POOLING_DRAWS)
                                                + 1 / np.sqrt(ecdf.size))
        assert abs(at[1] - p) < tolerance + max(at[2] - at[1], at[1] - at[0]), (text, p, at)


def test_implied_pooling_of_a_glmm_intercept_matches_monte_carlo():
    """Binomial: λ = (w/n)/(w/n + τ²), w = 1/(m p̄(1 − p̄)) at the observed rate; negative
    binomial: w = 1/ȳ + 1/φ, φ ~ its prior HalfCauchy(10)."""
    rng = np.random.default_rng(SEED)
    g = np.repeat(np.arange(8), [3, 4, 4, 5, 4, 3, 4, 6])
    trials = rng.integers(5, 30, g.size)
    table = pd.DataFrame({"g": g, "m": trials, "y": rng.binomial(trials, 0.3),
                          "count": rng.poisson(4.0, g.size)})
    tau = stats.halfnorm(scale=1.5).rvs(MONTE_CARLO, random_state=rng)
    model = MixedModel(formula="y | trials(m) ~ 1 + (1 | g)", family="binomial",
                       prior="sd = halfnormal(1.5)")
    line = model.implied_pooling(table)
    rate = table["y"].sum() / table["m"].sum()
    noise = 1 / (table["m"].mean() * rate * (1 - rate)) / 4.0  # the median level: 4 rows
    assert line.startswith("the prior's pooling factor for a g of 4 rows (the median), its "
                           "intercept (approximate: a row's variance on the logit scale")
    _assert_printed_quantiles(line, noise / (noise + tau**2))
    model = MixedModel(formula="count ~ 1 + (1 | g)", family="negbinomial",
                       prior="sd = halfnormal(1.5)")
    line = model.implied_pooling(table)
    phi = stats.halfcauchy(scale=10.0).rvs(MONTE_CARLO, random_state=rng)
    noise = (1 / table["count"].mean() + 1 / phi) / 4.0
    assert "1/μ + 1/φ" in line
    _assert_printed_quantiles(line, noise / (noise + tau**2))


@pytest.mark.parametrize("family", ["beta-binomial", "normal"])
def test_implied_pooling_of_a_nested_model_matches_monte_carlo(family):
    """Two lines: an experiment within its lab, the lab's weight κ/(κ + n) (beta-binomial;
    κ = e^v) or se²/(se² + τ²) (normal; τ = e^v); the lab's location from its J experiments,
    (w/J)/(w/J + s_u²), w = (1 + (n − 1)/(κ + 1))/(n p(1 − p)) (p = expit u) or τ² + se²;
    with m ~ N, s ~ HalfNormal and u, v ~ N(m, s²) drawn here."""
    from poolwise import NestedModel

    rng = np.random.default_rng(SEED)
    table = pd.DataFrame({"lab": np.repeat(list("ABCD"), 3), "experiment": np.tile([1, 2, 3], 4),
                          "y": rng.integers(2, 9, 12), "n": rng.integers(20, 41, 12),
                          "se": rng.uniform(1.0, 3.0, 12)})
    prior = "m_u=normal(0, 1), s_u=halfnormal(0.5), m_v=normal(2, 1), s_v=halfnormal(0.5)"
    model = NestedModel(family=family, prior=prior)
    columns = {"n": "n"} if family == "beta-binomial" else {"se": "se"}
    lines = model.implied_pooling(model.prepare(table, y="y", **columns)).split("; ")
    m_u, m_v = rng.normal([[0.0], [2.0]], 1.0, (2, MONTE_CARLO))
    s_u, s_v = np.abs(rng.normal(0, 0.5, (2, MONTE_CARLO)))
    u = m_u + s_u * rng.standard_normal(MONTE_CARLO)
    v = m_v + s_v * rng.standard_normal(MONTE_CARLO)
    size = float(np.median(table[columns.popitem()[1]]))
    if family == "beta-binomial":
        kappa, p = np.exp(v), special.expit(u)
        within = kappa / (kappa + size)
        variance = (1 + (size - 1) / (kappa + 1)) / (size * p * (1 - p))
        assert "approximate" in lines[1]
    else:
        within = size**2 / (size**2 + np.exp(2 * v))
        variance = np.exp(2 * v) + size**2
        assert "approximate" not in lines[1]
    assert lines[0].startswith("the prior's pooling factor for an experiment of ")
    assert "for a lab's " in lines[1] and "from 3 experiments" in lines[1]
    _assert_printed_quantiles(lines[0], within)
    _assert_printed_quantiles(lines[1], variance / 3 / (variance / 3 + s_u**2))


def test_a_glmms_implied_pooling_is_in_the_json(capsys):
    code = main(["fit", "cbpp", "--draws", "100", "--chains", "2", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    line = json.loads(out)["implied_pooling"]
    assert line.startswith("the prior's pooling factor for a herd of 4 rows (the median)")
    assert "approximate" in line


def test_implied_pooling_of_nested_factors_matches_monte_carlo():
    """(1 | a/b): a level of a averages its rows and its J levels of a:b, so
    λ_a = v/(v + τ_a²) with v = σ²/n + τ_ab²/J; λ_ab = (σ²/m)/(σ²/m + τ_ab²)."""
    rng = np.random.default_rng(SEED)
    table = pd.DataFrame({"a": np.repeat(list("ABCDEF"), 6),
                          "b": np.tile(np.repeat(list("xyz"), 2), 6), "y": rng.normal(size=36)})
    model = MixedModel(formula="y ~ 1 + (1 | a/b)",
                       prior="sigma = halfnormal(2); sd_a = halfnormal(3); sd_a:b = halfnormal(1)")
    outer, inner = model.implied_pooling(table).split("; ")
    assert outer.startswith("the prior's pooling factor for an a of 6 rows in 3 a:b (the medians)")
    sigma2, tau_a2, tau_ab2 = (stats.halfnorm(scale=s).rvs(MONTE_CARLO, random_state=rng) ** 2
                               for s in (2.0, 3.0, 1.0))
    noise = sigma2 / 6 + tau_ab2 / 3
    _assert_printed_quantiles(outer, noise / (noise + tau_a2))
    _assert_printed_quantiles(inner, (sigma2 / 2) / (sigma2 / 2 + tau_ab2))
