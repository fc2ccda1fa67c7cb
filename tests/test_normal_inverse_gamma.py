"""The Normal-Inverse-Gamma family against independent computations.

References are brute-force numerical integration of likelihood × prior (built from
scipy.stats densities, not from the module's formulas), scipy.integrate, SciPy's
multivariate t, and goodness-of-fit tests of the exact sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from poolwise.exceptions import DataError, SpecificationError
from poolwise.families.normal_inverse_gamma import (
    NIGPosterior,
    NIGPrior,
    NormalStats,
    group_stats,
    log_marginal_likelihood,
    posterior,
    sample_posterior,
    sigma2_marginal,
    sufficient_stats,
    theta_marginal,
)

PRIOR = NIGPrior(mu=0.5, tau=1.5, alpha=2.5, beta=1.5)
Y = np.array([1.3, 0.2, 2.4, 1.9, 0.8])
GROUPS = [
    np.array([0.7]),
    np.array([2.1, 1.4, 3.3, 2.2]),
    np.array([-1.2, 0.4, -0.3, 0.9, -2.0, 0.1, -0.6]),
]


def log_joint(theta, sigma2, y, prior):
    """log [Π N(y_i | θ, σ²) · N(θ | μ, σ²τ²) · IG(σ² | α, β)] from scipy.stats densities."""
    sd = np.sqrt(sigma2)
    loglik = sum(stats.norm.logpdf(yi, theta, sd) for yi in y)
    return (
        loglik
        + stats.norm.logpdf(theta, prior.mu, sd * prior.tau)
        + stats.invgamma.logpdf(sigma2, prior.alpha, scale=prior.beta)
    )


def grid_posterior(y, prior):
    """Normalised p(θ, s | y) on a grid of θ and s = log σ² (Jacobian σ²), and the grid."""
    theta = np.linspace(-8.0, 10.0, 1201)
    s = np.linspace(-10.0, 8.0, 1201)
    tt, ss = np.meshgrid(theta, s, indexing="ij")
    logp = log_joint(tt, np.exp(ss), y, prior) + ss
    dens = np.exp(logp - logp.max())
    dens /= integrate.trapezoid(integrate.trapezoid(dens, s, axis=1), theta)
    return theta, s, dens


def grid_moments(dens, theta, s, f):
    """E[f] and Var[f] under the grid density ``dens``, f given on the same grid."""

    def expect(g):
        return integrate.trapezoid(integrate.trapezoid(g * dens, s, axis=1), theta)

    mean = expect(f)
    return mean, expect((f - mean) ** 2)


def test_posterior_matches_brute_force_integration():
    """Posterior mean and variance of θ and σ² from a 2-D grid of likelihood × prior.

    Closed forms: E θ = m*, Var θ = β* v* / (α* − 1), E σ² = β*/(α* − 1),
    Var σ² = β*² / ((α* − 1)² (α* − 2)); read here from the frozen marginals.
    """
    post = posterior(PRIOR, sufficient_stats(Y))
    theta, s, dens = grid_posterior(Y, PRIOR)
    tt, ss = np.meshgrid(theta, s, indexing="ij")
    t_mean, t_var = grid_moments(dens, theta, s, tt)
    s2_mean, s2_var = grid_moments(dens, theta, s, np.exp(ss))

    th, sg = theta_marginal(post), sigma2_marginal(post)
    assert th.mean() == pytest.approx(t_mean, rel=1e-6)
    assert th.var() == pytest.approx(t_var, rel=1e-6)
    assert sg.mean() == pytest.approx(s2_mean, rel=1e-6)
    assert sg.var() == pytest.approx(s2_var, rel=1e-5)
    # the same from the raw parameters
    assert float(post.m) == pytest.approx(t_mean, rel=1e-6)
    assert float(post.beta / (post.alpha - 1)) == pytest.approx(s2_mean, rel=1e-6)
    assert float(post.beta * post.v / (post.alpha - 1)) == pytest.approx(t_var, rel=1e-6)

    # and the marginal densities pointwise (θ: integrate out s; σ²: integrate out θ)
    theta_density = integrate.trapezoid(dens, s, axis=1)
    np.testing.assert_allclose(theta_density, th.pdf(theta), atol=1e-7)
    log_sigma2_density = integrate.trapezoid(dens, theta, axis=0)  # density of s = log σ²
    np.testing.assert_allclose(log_sigma2_density, sg.pdf(np.exp(s)) * np.exp(s), atol=1e-7)


def test_the_slides_literal_beta_star_is_wrong():
    """The slide's β* = Σy² + μ²/τ² − (nȳ + μ/τ²)²/(n + 1/τ²) lacks ½ and the prior's β.

    The corrected β* = β + ½[same bracket] equals the implemented (centred) form, and only
    it gives the grid's E[σ² | y].
    """
    prior = NIGPrior(mu=0.5, tau=1.5, alpha=2.5, beta=0.2)
    n, ybar, mu, tau2 = Y.size, Y.mean(), prior.mu, prior.tau**2
    bracket = np.sum(Y**2) + mu**2 / tau2 - (n * ybar + mu / tau2) ** 2 / (n + 1 / tau2)
    post = posterior(prior, sufficient_stats(Y))
    assert float(post.beta) == pytest.approx(prior.beta + 0.5 * bracket, rel=1e-12)
    # the lecture's m* = (μ/n + τ² ȳ) / (1/n + τ²) and Var(θ | σ²) = σ²/(n + 1/τ²)
    assert float(post.m) == pytest.approx((mu / n + tau2 * ybar) / (1 / n + tau2), rel=1e-12)
    assert float(post.v) == pytest.approx(1 / (n + 1 / tau2), rel=1e-12)

    theta, s, dens = grid_posterior(Y, prior)
    _, ss = np.meshgrid(theta, s, indexing="ij")
    s2_mean, _ = grid_moments(dens, theta, s, np.exp(ss))
    alpha_star = prior.alpha + n / 2
    assert (prior.beta + 0.5 * bracket) / (alpha_star - 1) == pytest.approx(s2_mean, rel=1e-6)
    assert abs(bracket / (alpha_star - 1) / s2_mean - 1) > 0.1


def test_sum_sq_is_the_lectures_statistic():
    s = sufficient_stats(Y)
    assert float(s.sum_sq) == pytest.approx(np.sum(Y**2), rel=1e-12)
    assert float(s.sum_sq_dev) == pytest.approx((Y.size - 1) * np.var(Y, ddof=1), rel=1e-12)


def test_posterior_is_translation_equivariant_for_far_off_data():
    """Shifting y and μ by c shifts m* by c and leaves v*, α*, β* alone (even c = 1e8)."""
    c = 1e8
    base = posterior(PRIOR, sufficient_stats(Y))
    shifted_prior = NIGPrior(PRIOR.mu + c, PRIOR.tau, PRIOR.alpha, PRIOR.beta)
    shifted = posterior(shifted_prior, sufficient_stats(Y + c))
    assert float(shifted.m - c) == pytest.approx(float(base.m), abs=1e-6)
    assert float(shifted.beta) == pytest.approx(float(base.beta), rel=1e-7)
    assert float(shifted.alpha) == float(base.alpha)
    assert float(shifted.v) == float(base.v)


def test_updating_in_two_batches_equals_one_batch():
    """Conjugacy: the posterior after y₁ is the prior for y₂; log p(y₁, y₂) chains."""
    y1, y2 = Y[:2], Y[2:]
    once = posterior(PRIOR, sufficient_stats(Y))
    first = posterior(PRIOR, sufficient_stats(y1))
    twice = posterior(first.as_prior(), sufficient_stats(y2))
    for name in ("m", "v", "alpha", "beta"):
        assert float(getattr(twice, name)) == pytest.approx(float(getattr(once, name)), rel=1e-12)
    chained = log_marginal_likelihood(PRIOR, sufficient_stats(y1)) + log_marginal_likelihood(
        first.as_prior(), sufficient_stats(y2)
    )
    assert chained == pytest.approx(log_marginal_likelihood(PRIOR, sufficient_stats(Y)), rel=1e-12)


# --- the exact sampler ----------------------------------------------------------------

N_DRAWS = 20_000


def test_draws_pass_goodness_of_fit_against_the_marginals():
    """KS tests of θ draws against theta_marginal and σ² draws against sigma2_marginal.

    Declared failure rate: each KS test rejects a correct sampler with probability 1e-3
    (p ≤ 1e-3), so the three tests here would fail together with probability < 3e-3 for a
    random seed; the seed is fixed, so the outcome is deterministic. The third test checks
    the conditional step: z = (θ − m*)/√(σ² v*) is N(0, 1) within the largest σ² draws.
    Sample means are compared with the closed forms in Monte Carlo standard errors
    (exact draws: ESS = number of draws), |mean − truth| / (sd/√N) < 4.
    """
    post = posterior(PRIOR, sufficient_stats(Y))
    theta, sigma2 = sample_posterior(post, N_DRAWS, seed=20240611)
    assert theta.shape == sigma2.shape == (N_DRAWS,)
    th, sg = theta_marginal(post), sigma2_marginal(post)
    assert stats.kstest(theta, th.cdf).pvalue > 1e-3
    assert stats.kstest(sigma2, sg.cdf).pvalue > 1e-3
    z = (theta - post.m) / np.sqrt(sigma2 * post.v)
    upper = sigma2 > np.median(sigma2)
    assert stats.kstest(z[upper], stats.norm.cdf).pvalue > 1e-3
    for draws, dist in ((theta, th), (sigma2, sg)):
        assert abs(draws.mean() - dist.mean()) / (dist.std() / np.sqrt(N_DRAWS)) < 4


def test_sampler_is_reproducible():
    post = posterior(PRIOR, sufficient_stats(Y))
    a = sample_posterior(post, 100, seed=3)
    b = sample_posterior(post, 100, seed=3)
    c = sample_posterior(post, 100, seed=np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


# --- the marginal likelihood ----------------------------------------------------------


def test_log_marginal_likelihood_matches_double_quadrature():
    """p(y) = ∫∫ Π N(y_i | θ, σ²) N(θ | μ, σ²τ²) IG(σ² | α, β) dθ dσ², n = 3.

    Integrated with scipy.integrate.dblquad over θ and s = log σ² (Jacobian e^s). The
    integrand is written out with ``math`` (scipy.stats is 50× slower per scalar call) and
    checked against the scipy.stats densities first.
    """
    y = [0.3, 1.1, -0.4]
    prior = NIGPrior(mu=0.2, tau=2.0, alpha=3.0, beta=2.0)
    mu, tau2, a, b = prior.mu, prior.tau**2, prior.alpha, prior.beta

    def log_density(theta, sigma2):
        return (
            -0.5 * sum((yi - theta) ** 2 for yi in y) / sigma2
            - 0.5 * len(y) * math.log(2 * math.pi * sigma2)
            - 0.5 * (theta - mu) ** 2 / (sigma2 * tau2)
            - 0.5 * math.log(2 * math.pi * sigma2 * tau2)
            + a * math.log(b)
            - math.lgamma(a)
            - (a + 1) * math.log(sigma2)
            - b / sigma2
        )

    assert log_density(0.7, 1.3) == pytest.approx(log_joint(0.7, 1.3, y, prior), rel=1e-13)

    def integrand(theta, s):
        return math.exp(log_density(theta, math.exp(s)) + s)

    value, err = integrate.dblquad(integrand, -12.0, 8.0, -25.0, 25.0, epsabs=0, epsrel=1e-10)
    assert err < 1e-8 * value
    got = log_marginal_likelihood(prior, sufficient_stats(y))
    assert got == pytest.approx(math.log(value), abs=1e-8)


@pytest.mark.parametrize("y", [Y, np.array([4.2]), np.linspace(-3.0, 5.0, 12)])
def test_log_marginal_likelihood_is_a_multivariate_t(y):
    """Integrating θ then σ²: y ~ t_{2α}(μ 1, (β/α)(I + τ² 1 1ᵀ)) (Murphy 2007, eq. 96)."""
    n = y.size
    shape = PRIOR.beta / PRIOR.alpha * (np.eye(n) + PRIOR.tau**2 * np.ones((n, n)))
    expected = stats.multivariate_t(np.full(n, PRIOR.mu), shape, df=2 * PRIOR.alpha).logpdf(y)
    got = log_marginal_likelihood(PRIOR, sufficient_stats(y))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-10)


# --- several groups -------------------------------------------------------------------


def test_grouped_results_equal_single_group_results():
    grouped = group_stats(GROUPS)
    assert grouped.shape == (3,)
    post = posterior(PRIOR, grouped)
    lml = log_marginal_likelihood(PRIOR, grouped)
    assert lml.shape == (3,)
    th, sg = theta_marginal(post), sigma2_marginal(post)
    for j, y in enumerate(GROUPS):
        single_stats = sufficient_stats(y)
        single = posterior(PRIOR, single_stats)
        for name in ("m", "v", "alpha", "beta"):
            assert getattr(post, name)[j] == pytest.approx(float(getattr(single, name)), rel=1e-14)
        assert lml[j] == pytest.approx(log_marginal_likelihood(PRIOR, single_stats), rel=1e-14)
        x = np.array([-1.0, 0.5, 2.0])
        np.testing.assert_allclose(
            th.cdf(x[:, None])[:, j], theta_marginal(single).cdf(x), rtol=1e-12
        )
        np.testing.assert_allclose(
            sg.cdf(x[:, None] + 1.5)[:, j], sigma2_marginal(single).cdf(x + 1.5), rtol=1e-12
        )


def test_grouped_draws_fit_each_groups_marginals():
    """Draws have shape (draw, group); each column passes KS against its group's marginal.

    Declared failure rate 1e-3 per KS test (six here), fixed seed.
    """
    post = posterior(PRIOR, group_stats(GROUPS))
    theta, sigma2 = sample_posterior(post, N_DRAWS, seed=7)
    assert theta.shape == sigma2.shape == (N_DRAWS, 3)
    for j, y in enumerate(GROUPS):
        single = posterior(PRIOR, sufficient_stats(y))
        assert stats.kstest(theta[:, j], theta_marginal(single).cdf).pvalue > 1e-3
        assert stats.kstest(sigma2[:, j], sigma2_marginal(single).cdf).pvalue > 1e-3


def test_normal_stats_from_summaries_equal_raw_data():
    grouped = group_stats(GROUPS)
    direct = NormalStats(
        [y.size for y in GROUPS],
        [y.mean() for y in GROUPS],
        [np.sum((y - y.mean()) ** 2) for y in GROUPS],
    )
    for name in ("n", "mean", "sum_sq_dev"):
        np.testing.assert_allclose(getattr(direct, name), getattr(grouped, name), rtol=1e-14)


# --- bad inputs -----------------------------------------------------------------------


def raises_one_line(error, match):
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(error, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            assert "\n" not in str(self.info.value)
            return handled

    return Check()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 0.0}, r"tau = 0 is not valid: tau must be a finite number > 0"),
        ({"tau": -1.0}, r"tau = -1 is not valid"),
        ({"alpha": np.nan}, r"alpha = nan is not valid: alpha must be a finite number > 0"),
        ({"beta": np.inf}, r"beta = inf is not valid"),
        ({"beta": 0}, r"beta = 0 is not valid"),
        ({"mu": -np.inf}, r"mu = -inf is not valid: mu must be a finite real number"),
    ],
)
def test_bad_prior_values(kwargs, match):
    values = {"mu": 0.0, "tau": 1.0, "alpha": 1.0, "beta": 1.0} | kwargs
    with raises_one_line(SpecificationError, match):
        NIGPrior(**values)


@pytest.mark.parametrize("bad", ["1.0", None, True, [1.0]])
def test_prior_values_of_the_wrong_type(bad):
    with raises_one_line(TypeError, r"NIGPrior tau must be a real number"):
        NIGPrior(mu=0.0, tau=bad, alpha=1.0, beta=1.0)


def test_prior_converts_to_float_and_is_frozen():
    prior = NIGPrior(mu=np.int64(1), tau=2, alpha=np.float32(0.5), beta=3)  # type: ignore[arg-type]
    assert all(type(getattr(prior, k)) is float for k in ("mu", "tau", "alpha", "beta"))
    with pytest.raises(AttributeError):
        prior.mu = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([], r"needs at least 1 observation, got none"),
        ([1.0, np.nan, 2.0], r"observation 1 is nan; observations must be finite"),
        ([1.0, 2.0, -np.inf], r"observation 2 is -inf"),
        ([[1.0, 2.0], [3.0, 4.0]], r"must be a 1-D sequence, not shape \(2, 2\)"),
        (["a", 1.0], r"observation 0 is 'a'; observations must be real numbers"),
        (np.array([1.0, None], dtype=object), r"observation 1 is None"),
    ],
)
def test_bad_observations(y, match):
    with raises_one_line(DataError, match):
        sufficient_stats(y)


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ([], r"at least 1 group"),
        ([[1.0], []], r"group 1: needs at least 1 observation"),
        ([[1.0, 2.0], [3.0, np.nan]], r"group 1: observation 1 is nan"),
    ],
)
def test_bad_groups(groups, match):
    with raises_one_line(DataError, match):
        group_stats(groups)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 1.0, 0.0), r"n = 0 is not valid; it must be a whole number ≥ 1"),
        ((2.5, 1.0, 0.3), r"n = 2.5 is not valid"),
        (([3, 4], [1.0, np.inf], [1.0, 1.0]), r"group 1: mean = inf is not valid"),
        (([3, 4], [1.0, 2.0], [-1.0, 1.0]), r"group 0: sum_sq_dev = -1 is not valid"),
        ((1, 0.0, 2.0), r"sum_sq_dev = 2 is not valid; it must be 0 when n = 1"),
        (([1, 2], [1.0, 2.0, 3.0], 0.0), r"broadcastable shapes"),
    ],
)
def test_bad_summary_statistics(args, match):
    with raises_one_line(DataError, match):
        NormalStats(*args)


def test_bad_posterior_and_sampler_arguments():
    post = posterior(PRIOR, sufficient_stats(Y))
    with raises_one_line(SpecificationError, r"size = 0 is not valid; it must be an integer ≥ 1"):
        sample_posterior(post, 0)
    with raises_one_line(TypeError, r"size must be an integer, not float"):
        sample_posterior(post, 10.0)  # type: ignore[arg-type]
    with raises_one_line(TypeError, r"stats must be NormalStats"):
        posterior(PRIOR, Y)  # type: ignore[arg-type]
    with raises_one_line(TypeError, r"prior must be an NIGPrior"):
        log_marginal_likelihood((0.0, 1.0, 1.0, 1.0), sufficient_stats(Y))  # type: ignore[arg-type]
    with raises_one_line(SpecificationError, r"NIGPosterior v = -1 is not valid"):
        NIGPosterior(0.0, -1.0, 1.0, 1.0)
    with raises_one_line(SpecificationError, r"as_prior needs a one-group posterior"):
        posterior(PRIOR, group_stats(GROUPS)).as_prior()


def test_statistics_are_read_only():
    s = group_stats(GROUPS)
    with pytest.raises(ValueError, match="read-only"):
        s.n[0] = 5.0
