"""``exact`` for the normal family by 1-D quadrature in log τ (BDA3 §5.4, lecture 001).

The 1-D path (τ from its marginal, then μ | τ and θ | μ, τ) is checked against the 2-D grid
in (μ, log τ), an independent computation of the same posterior, against the lecture's
closed form for equal standard errors, and on a 10,000-group meta-analysis. Tolerances are
Monte Carlo standard errors of independent draws (sd / √N); |difference| / MCSE < 4 fails
by chance with probability about 6e-5 per comparison.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poolwise import Model, datasets
from poolwise.exceptions import ImproperPosteriorError, PosteriorWarning
from poolwise.inference.base import SamplerConfig
from poolwise.inference.exact import sample_exact, sample_grid
from poolwise.inference.exact_normal import MuPrior, TauData, conjugate_split, tau_terms

Z = 4.0
SCHOOLS = dict(y="y", se="sigma", group="school")


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    return datasets.load("eight-schools")


@pytest.mark.parametrize("prior", ["bda", "flat-tau2", "mu=normal(0, 5), tau=halfcauchy(5)"])
def test_one_dimensional_path_matches_the_two_dimensional_grid(schools, prior):
    model = Model(family="normal", prior=prior)
    data = model.prepare(schools, **SCHOOLS)
    one = sample_exact(model, data, SamplerConfig(draws=5000, chains=4, seed=1))
    two = sample_grid(model, data, SamplerConfig(draws=5000, chains=4, seed=2))
    assert one.info["integration"] == "1-D in log τ" and "integration" not in two.info
    for name, a, b in (("mu", one.alpha, two.alpha), ("tau", one.beta, two.beta),
                       ("theta_A", one.theta[..., 0], two.theta[..., 0])):
        a, b = a.ravel(), b.ravel()
        mcse = math.hypot(a.std() / math.sqrt(a.size), b.std() / math.sqrt(b.size))
        assert abs(a.mean() - b.mean()) < Z * mcse, name


def test_log_density_is_the_integral_over_mu():
    """log p(v | y) − log p(τ) − v = log ∫ N(μ | m, s²) Π N(y_j | μ, σ_j² + τ²) dμ + const,
    the integral by SciPy quadrature."""
    from scipy import integrate

    y, se = np.array([1.0, -2.0, 4.5]), np.array([1.0, 2.0, 0.5])
    m, s = 0.5, 3.0
    v = np.array([-1.0, 0.3, 1.5])

    def direct(t: float) -> float:
        def integrand(mu: float) -> float:
            return float(stats.norm.pdf(mu, m, s)
                         * np.prod(stats.norm.pdf(y, mu, np.hypot(se, t))))
        return math.log(integrate.quad(integrand, -40, 40, points=[m, *y], limit=200)[0])

    ours = tau_terms(v, TauData.of(y, se, np.ones(3)), MuPrior(m, s**2),
                     np.zeros_like).log_density - v
    truth = np.array([direct(math.exp(x)) for x in v])
    # ours drops the constants −(J/2) log 2π − ½ log s²
    np.testing.assert_allclose(ours - truth, (ours - truth)[0], atol=1e-9)


def test_equal_standard_errors_give_the_truncated_inverse_gamma():
    """001: σ_j = σ and p(μ, τ²) ∝ 1 give σ² + τ² | y ~ IG((k−3)/2, (k−1)s²/2) truncated
    to σ² + τ² > σ². KS test of the draws at a declared false-alarm rate of 1e-3."""
    rng = np.random.default_rng(11)
    k, sigma = 12, 2.0
    y = rng.normal(rng.normal(1.0, 1.5, k), sigma)
    table = pd.DataFrame({"y": y, "se": sigma, "g": np.arange(k)})
    fit = Model(family="normal", prior="flat-tau2", draws=2500, seed=5).fit(
        table, y="y", se="se", group="g")
    total = sigma**2 + fit.draws("tau").ravel() ** 2
    ig = stats.invgamma((k - 3) / 2, scale=(k - 1) * np.var(y, ddof=1) / 2)
    below = ig.cdf(sigma**2)

    def truncated_cdf(x: np.ndarray) -> np.ndarray:
        return (ig.cdf(x) - below) / (1.0 - below)

    assert stats.kstest(total, truncated_cdf).pvalue > 1e-3
    # and μ | τ, y ~ N(ȳ, (σ² + τ²)/k): its standardised draws are N(0, 1)
    standard = (fit.draws("mu").ravel() - y.mean()) / np.sqrt(total / k)
    assert stats.kstest(standard, "norm").pvalue > 1e-3


def test_ten_thousand_groups_recover_mu_and_tau():
    rng = np.random.default_rng(3)
    groups, mu, tau = 10_000, 0.3, 0.5
    se = rng.uniform(0.2, 1.5, groups)
    y = rng.normal(rng.normal(mu, tau, groups), se)
    table = pd.DataFrame({"y": y, "se": se, "g": np.arange(groups)})
    model = Model(family="normal", prior="mu=normal(0, 5), tau=halfcauchy(5)")
    draws = sample_exact(model, model.prepare(table, y="y", se="se", group="g"),
                         SamplerConfig(draws=1000, chains=4))
    assert draws.theta is None  # 4 × 10^7 values: above GROUP_DRAWS_LIMIT, summarised instead
    # 99.9% intervals: each misses the truth with probability 1e-3
    for name, values, truth in (("mu", draws.alpha, mu), ("tau", draws.beta, tau)):
        lo, hi = np.quantile(values, [0.0005, 0.9995])
        assert lo < truth < hi, (name, lo, hi)


def test_other_mu_priors_keep_the_two_dimensional_grid():
    model = Model(family="normal", prior="mu=halfnormal(20), tau=halfcauchy(5)")
    assert conjugate_split(model.hyperprior) is None
    assert conjugate_split(Model(family="normal", prior="mu=flat, tau=gamma(2, 1)").hyperprior)


def test_flat_prior_with_two_groups_is_refused(schools):
    """p(τ | y) ∝ τ^(−(J−1)) far out under 'bda': with J = 2, p(log τ) does not fall off."""
    data = Model(family="normal", pooling="none").prepare(schools.head(2), **SCHOOLS)
    with pytest.raises(ImproperPosteriorError, match="does not fall off as τ grows large"):
        sample_exact(Model(family="normal"), data, SamplerConfig(draws=10, chains=1))


def test_three_groups_under_the_flat_prior_warn_of_a_heavy_tail(schools):
    """With J = 3, p(log τ | y) ∝ τ^(−(J−1)) τ = e^(−v) far out: E[τ] is infinite, and so
    are those of μ (sd ∝ τ given τ) and of a new group's θ; the groups' θ_j, pulled to
    y_j as τ grows, keep theirs. The population mean's line gives its median."""
    with pytest.warns(PosteriorWarning, match=r"exp\(−1\.00 v\)"):
        fit = Model(family="normal", draws=400).fit(schools.head(3), **SCHOOLS)
    assert fit.info["tail_exponent"] == pytest.approx(1.0, abs=0.01)
    assert set(fit.infinite_moments()) == {"tau", "mu", "theta_new"}
    table = fit.summary().set_index("param")
    assert table.loc[["tau", "mu", "theta_new"], ["mean", "sd"]].isna().all().all()
    assert np.isfinite(table.loc["theta", ["mean", "sd"]].to_numpy()).all()
    assert np.isfinite(table.loc["I2", ["mean", "sd"]].to_numpy()).all()
    assert np.isnan(fit.population_mean()["mean"])
    # eight groups: p(v | y) ∝ e^(−6v) far out, every moment of τ up to the fifth exists
    fit = Model(family="normal", draws=200).fit(schools, **SCHOOLS)
    assert fit.info["tail_exponent"] == pytest.approx(6.0, abs=0.01)
    assert fit.infinite_moments() == {}
