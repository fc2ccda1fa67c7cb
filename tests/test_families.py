"""Each family's maths against independent computations (SciPy, numerical integration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from poolwise._ops import NUMPY_OPS, jax_ops, log_rising
from poolwise.families import BetaBinomial, GammaPoisson

BB, GP = BetaBinomial(), GammaPoisson()


@pytest.mark.parametrize(("alpha", "beta", "y", "n"), [(2.0, 5.0, 3, 10), (0.3, 0.7, 0, 4),
                                                        (40.0, 9.0, 12, 12)])
def test_beta_binomial_marginal_is_scipy_betabinom(alpha, beta, y, n):
    """log p(y | α, β) equals scipy.stats.betabinom.logpmf."""
    assert BB.log_marginal(alpha, beta, y, n) == pytest.approx(
        stats.betabinom.logpmf(y, n, alpha, beta), rel=1e-12)


@pytest.mark.parametrize(("alpha", "beta", "y", "e"), [(2.0, 0.5, 3, 4.0), (0.4, 3.0, 0, 1.5)])
def test_gamma_poisson_marginal_integrates_the_likelihood(alpha, beta, y, e):
    """p(y | α, β) = ∫ Poisson(y | E θ) Gamma(θ | α, β) dθ by quadrature."""
    def integrand(t):
        return stats.poisson.pmf(y, e * t) * stats.gamma.pdf(t, alpha, scale=1 / beta)

    value, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    assert np.exp(GP.log_marginal(alpha, beta, y, e)) == pytest.approx(value, rel=1e-8)


def test_marginals_stay_accurate_near_complete_pooling():
    """As the concentration grows the marginal tends to the binomial/Poisson at the mean."""
    for kappa in (1e6, 1e9, 1e14):
        mean = 0.3
        got = BB.log_marginal(mean * kappa, (1 - mean) * kappa, 7, 20)
        assert got == pytest.approx(stats.binom.logpmf(7, 20, mean), abs=1e-4)
        got = GP.log_marginal(kappa, kappa / 0.02, 5, 300.0)
        assert got == pytest.approx(stats.poisson.logpmf(5, 6.0), abs=1e-4)


def test_log_rising_matches_gammaln_on_both_sides_of_the_switch():
    a = np.array([1e4, 9.9e4, 1.01e5, 1e6])
    y = np.array([3.0, 17.0, 17.0, 250.0])
    exact = np.array([sum(np.log(ai + k) for k in range(int(yi))) for ai, yi in zip(a, y,
                                                                                    strict=True)])
    np.testing.assert_allclose(log_rising(a, y, NUMPY_OPS), exact, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(log_rising(a, y, jax_ops())), exact, rtol=1e-9)


@pytest.mark.parametrize("family", [BB, GP])
def test_conjugate_update_is_the_normalised_product(family):
    """p(θ | y, α, β) ∝ p(y | θ) p(θ | α, β), checked pointwise on a grid."""
    alpha, beta, y, n = 2.5, 4.0, 3.0, 9.0
    grid = np.linspace(0.02, 0.9, 50)
    unnorm = family.log_likelihood(grid, y, n) + family.population(alpha, beta).logpdf(grid)
    post = family.conditional(alpha, beta, y, n).logpdf(grid)
    # equal up to the constant log p(y | α, β)
    np.testing.assert_allclose(unnorm - post, family.log_marginal(alpha, beta, y, n), atol=1e-10)


@pytest.mark.parametrize("family", [BB, GP])
def test_population_from_stats_is_the_sum_of_logpdfs(family):
    rng = np.random.default_rng(1)
    theta = family.sample_population(rng, np.full(25, 2.0), 7.0 if family is BB else 30.0)
    alpha, beta = 1.7, 5.5
    expected = family.population(alpha, beta).logpdf(theta).sum()
    got = family.log_population_from_stats(alpha, beta, family.population_stats(theta))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("family", [BB, GP])
def test_coordinates_round_trip_and_jacobian(family):
    u, v = 0.3, 1.2
    alpha, beta = family.from_uv(u, v)
    np.testing.assert_allclose(family.to_uv(alpha, beta), (u, v), rtol=1e-12)
    h = 1e-6
    jac = np.column_stack([
        (np.array(family.from_uv(u + h, v)) - np.array(family.from_uv(u - h, v))) / (2 * h),
        (np.array(family.from_uv(u, v + h)) - np.array(family.from_uv(u, v - h))) / (2 * h),
    ])
    assert family.log_jacobian_uv(u, v) == pytest.approx(np.log(abs(np.linalg.det(jac))),
                                                         rel=1e-6)


@pytest.mark.parametrize("family", [BB, GP])
def test_numpy_and_jax_paths_agree(family):
    alpha, beta = np.array([0.7, 3.0]), np.array([2.0, 40.0])
    y, n = np.array([2.0, 0.0]), np.array([11.0, 30.0])
    np.testing.assert_allclose(
        np.asarray(family.log_marginal(alpha, beta, y, n, jax_ops())),
        family.log_marginal(alpha, beta, y, n), rtol=1e-10)


def test_moments_estimate_inverts_the_population_moments():
    """Beta(α, β) has mean α/(α+β) and variance αβ/((α+β)²(α+β+1))."""
    rng = np.random.default_rng(0)
    rates = rng.beta(1.5, 9.0, 400_000)
    alpha, beta = BB.moments_estimate(rates * 1e9, np.full(rates.size, 1e9))
    assert alpha == pytest.approx(1.5, rel=0.03)
    assert beta == pytest.approx(9.0, rel=0.03)
    alpha, beta = GP.moments_estimate(rng.gamma(3.0, 1 / 200.0, 400_000), np.ones(400_000))
    assert alpha == pytest.approx(3.0, rel=0.03)
    assert beta == pytest.approx(200.0, rel=0.03)


@pytest.mark.parametrize("family", [BB, GP])
def test_total_is_the_weighted_sum_of_marginals(family):
    """The rearranged sums (over distinct counts) equal the plain weighted sum."""
    rng = np.random.default_rng(3)
    y = rng.poisson(3.0, 50).astype(float)
    n = y + rng.integers(0, 30, 50) if family is BB else rng.uniform(10, 1e5, 50)
    w = rng.integers(1, 4, 50).astype(float)
    alpha = np.array([[0.4, 3.0], [50.0, 2e6]])
    beta = np.array([[100.0, 5e3], [1e4, 1e8]]) if family is GP else np.array([[2.0, 0.1],
                                                                               [7e5, 3.0]])
    expected = (w * family.log_marginal(alpha[..., None], beta[..., None], y, n)).sum(-1)
    np.testing.assert_allclose(family.log_marginal_total(alpha, beta, y, n, w), expected,
                               rtol=1e-10)
    got_jax = family.log_marginal_total(alpha, beta, y, n, w, jax_ops())
    np.testing.assert_allclose(np.asarray(got_jax), expected, rtol=1e-10)


@pytest.mark.parametrize("family", [BB, GP])
def test_population_quantile_is_scipy_within_the_stated_error(family):
    """Cornish–Fisher above CORNISH_FISHER_SHAPE (error < 2e-4 sd, as base.py states) and
    SciPy's inverse below it, on shapes from 1 to 10^7 and levels in the far tails."""
    from poolwise.families.base import CORNISH_FISHER_SHAPE

    shapes = np.geomspace(1.0, 1e7, 29)
    alpha, beta = (a.ravel() for a in np.meshgrid(shapes, shapes))
    if family is GP:
        beta = beta / 1e3  # a rate: the quantile scales with 1/β
    large = np.minimum(alpha, beta) >= CORNISH_FISHER_SHAPE if family is BB \
        else alpha >= CORNISH_FISHER_SHAPE
    assert large.any() and (~large).any()
    sd = np.sqrt(family.population_moments(alpha, beta)[1])
    for level in (0.0005, 0.025, 0.5, 0.95, 0.9995):
        ours = family.population_quantile(alpha, beta, level)
        theirs = family.population(alpha, beta).ppf(level)
        error = np.abs(ours - theirs) / sd
        assert np.max(error[large]) < 2e-4, level
        np.testing.assert_allclose(ours[~large], theirs[~large], rtol=1e-12)
        # the approximation is not the exact inverse: it differs where it is used
        assert np.max(error[large]) > 0.0


@pytest.mark.parametrize("family", [BB, GP])
def test_sample_population_draws_each_group_apart(family):
    """A shape per draw (S, 1) against a rate per draw and group (S, G), as the prior
    predictive passes them, gives every group its own θ (the gamma-Poisson draw gave all
    groups one λ, which simulation-based calibration found), with Pop(α, β)'s moments."""
    rng = np.random.default_rng(5)
    alpha = np.full((4000, 1), 3.0)
    beta = np.full((4000, 6), 5.0)
    theta = family.sample_population(rng, alpha, beta)
    assert theta.shape == (4000, 6)
    mean, var = family.population_moments(3.0, 5.0)
    within = theta.var(axis=1, ddof=1)  # across groups in one draw: Var θ if independent
    se = within.std() / np.sqrt(within.size)
    assert abs(within.mean() - var) < 4 * se
    assert abs(theta.mean() - mean) < 4 * np.sqrt(var / theta.size)


def test_normal_population_quantile_is_scipys_ppf():
    """μ + τ Φ⁻¹(level) by ndtri is SciPy's frozen normal's ppf, a point mass (τ = 0)
    included."""
    from poolwise.families import get_family

    normal = get_family("normal")
    rng = np.random.default_rng(5)
    mu, tau = rng.normal(0.0, 10.0, 500), np.concatenate([[0.0], rng.gamma(1.0, 3.0, 499)])
    for level in (0.0005, 0.025, 0.5, 0.975):
        np.testing.assert_allclose(normal.population_quantile(mu, tau, level),
                                   normal.population(mu, tau).ppf(level), rtol=1e-13,
                                   atol=1e-300)
