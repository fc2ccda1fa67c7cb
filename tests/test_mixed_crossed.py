"""Crossed grouping factors: the blocked Gaussian marginal (the term with the most levels
eliminated by its block-diagonal factor, the rest through a dense Schur complement with the
cross-products kept sparse) against dense computations and a closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from dense_mixed import dense_conditional, dense_covariance
from scipy import stats

import poolwise
from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
from poolwise.kinds.mixed.inference import (
    draw_coefficients,
    eliminated_segment,
    gaussian_marginal,
    gaussian_stats,
    marginal_memory,
)
from poolwise.kinds.mixed.reml import fit_reml


def crossed_design(seed: int) -> tuple[MixedDesign, list[np.ndarray], float]:
    """Rows in a factor a (12 levels, random intercept) and a larger b (15 levels,
    correlated intercept and slope), each row in one level of each: b is eliminated
    although it is the second term, and with 4 rows a level its cross-products with a are
    sparse (the level pairs that share a row)."""
    rng = np.random.default_rng(seed)
    n = 60
    a, b = rng.integers(0, 12, n), np.repeat(np.arange(15), 4)
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    terms = (GroupTerm("a", ("Intercept",), np.ones((n, 1)), a, tuple("ABCDEFGHIJKL"), False),
             GroupTerm("b", ("Intercept", "x"), x.copy(), b, tuple("abcdefghijklmno"), True))
    y = x @ np.array([1.0, -0.5]) + rng.normal(size=n)
    design = MixedDesign("y ~ x + (1 | a) + (x | b)", "normal", "y", y, x, ("Intercept", "x"),
                         terms)
    return design, [np.array([[0.7]]), np.array([[1.2, 0.3], [0.3, 0.6]])], 0.9


def test_the_largest_term_is_eliminated_and_no_square_of_every_column_is_held() -> None:
    design, *_ = crossed_design(0)
    flat = gaussian_stats(design, None)
    assert eliminated_segment(flat.segments) == 1
    # the rest: a's 12 intercepts and the 2 columns of X
    assert flat.rest.shape == (14, 14) and flat.first.shape == (15, 2, 2)
    # M holds one entry per (rest column, level of b) that share a row
    pairs = {(int(a), int(b)) for a, b in zip(design.terms[0].index, design.terms[1].index,
                                                strict=True)}
    assert flat.cross.values.shape[0] == len(pairs) + 2 * 15 and not flat.cross.dense.size


@pytest.mark.parametrize("fixed", [None, (np.array([0.5, -1.0]), np.array([2.0, 0.7]))])
def test_blocked_marginal_equals_the_dense_normal(fixed) -> None:
    """log N(y | Xm, V + XSXᵀ) (β ~ N(m, S)), or the REML likelihood with β flat:
    −½((n−p) log 2π + log|V| + log|XᵀV⁻¹X| + (y − Xβ̂)ᵀV⁻¹(y − Xβ̂)); to 1e-10."""
    design, covariances, sigma = crossed_design(1)
    factors = [np.linalg.cholesky(c) for c in covariances]
    _, _, v = dense_covariance(design, covariances, sigma)
    x, y = design.x, design.y
    if fixed is None:
        result = gaussian_marginal(gaussian_stats(design, None), sigma, factors, np)
        v_inv = np.linalg.inv(v)
        information = x.T @ v_inv @ x
        residual = y - x @ np.linalg.solve(information, x.T @ v_inv @ y)
        n, p = x.shape
        expected = -0.5 * ((n - p) * math.log(2 * math.pi) + np.linalg.slogdet(v)[1]
                           + np.linalg.slogdet(information)[1] + residual @ v_inv @ residual)
    else:
        loc, scale = fixed
        result = gaussian_marginal(gaussian_stats(design, loc), sigma,
                                   [*factors, np.diag(scale)], np)
        expected = stats.multivariate_normal(x @ loc, v + x @ np.diag(scale**2) @ x.T
                                             ).logpdf(y)
    assert float(result.log_density) == pytest.approx(expected, rel=1e-10)


def test_blocked_draws_have_the_dense_conditional_moments() -> None:
    """δ = (b, β − m) | y ~ N(ΨWᵀV⁻¹r, Ψ − ΨWᵀV⁻¹WΨ), in W's column order although the
    second term is eliminated first; draw_coefficients is affine in ε (to 1e-9)."""
    design, covariances, sigma = crossed_design(2)
    loc, scale = np.array([0.2, 0.1]), np.array([1.5, 2.5])
    marginal_stats = gaussian_stats(design, loc)
    factors = [*(np.linalg.cholesky(c) for c in covariances), np.diag(scale)]
    result = gaussian_marginal(marginal_stats, sigma, factors, np)
    mean, cov = dense_conditional(design, covariances, sigma, loc, scale)
    draws = np.stack([draw_coefficients(result, marginal_stats, factors, noise, np)
                      for noise in np.vstack([np.zeros(len(mean)), np.eye(len(mean))])])
    np.testing.assert_allclose(draws[0], mean, rtol=1e-9, atol=1e-12)
    columns = (draws[1:] - draws[0]).T
    np.testing.assert_allclose(columns @ columns.T, cov, rtol=1e-9, atol=1e-12)


def test_numpy_batch_equals_jax_on_a_crossed_design() -> None:
    """The NumPy batch (method importance) and JAX (NUTS, REML) give the same marginal."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    design, covariances, sigma = crossed_design(3)
    flat = gaussian_stats(design, None)
    rng = np.random.default_rng(4)
    scales = np.exp(rng.normal(0.0, 0.3, (5, 3)))
    chol = np.linalg.cholesky(covariances[1])
    factors = [scales[:, :1, None] * np.eye(1), scales[:, 1:2, None] * chol]
    batch = gaussian_marginal(flat, sigma * scales[:, 2], factors, np)
    one = jax.jit(lambda s, a, b: gaussian_marginal(flat, s, [a, b], jnp).log_density)
    for i in range(5):
        value = one(sigma * scales[i, 2], *(jnp.asarray(f[i]) for f in factors))
        assert float(value) == pytest.approx(batch.log_density[i], rel=1e-12)


def balanced_two_way(seed: int) -> pd.DataFrame:
    """24 plates × 6 samples, one row each (the layout of lme4's Penicillin), simulated
    from diameter = 23 + plate + sample + ε, sds 0.85, 1.9 and 0.55."""
    rng = np.random.default_rng(seed)
    plates, samples = 24, 6
    plate = np.repeat(np.arange(plates), samples)
    sample = np.tile(np.arange(samples), plates)
    y = (23.0 + rng.normal(0, 0.85, plates)[plate] + rng.normal(0, 1.9, samples)[sample]
         + rng.normal(0, 0.55, plates * samples))
    return pd.DataFrame({"diameter": y, "plate": [f"p{i:02d}" for i in plate],
                         "sample": [f"s{j}" for j in sample]})


def test_reml_of_a_balanced_crossed_design_is_the_anova_estimate() -> None:
    """For a balanced two-way crossed layout with one row per cell, REML equals the ANOVA
    estimates when they are positive (Searle, Casella and McCulloch 1992, §4.7 and §6.6):
    σ² = MSE, σ_plate² = (MS_plate − MSE)/J, σ_sample² = (MS_sample − MSE)/I, β̂ = ȳ and
    Var(β̂) = σ_plate²/I + σ_sample²/J + σ²/(IJ); to the optimiser's ~1e-5."""
    table = balanced_two_way(5)
    design = poolwise.MixedModel(formula="diameter ~ 1 + (1 | plate) + (1 | sample)",
                                 method="eb-ml").prepare(table).design
    estimate = fit_reml(design)
    cells = table.pivot(index="plate", columns="sample", values="diameter").to_numpy()
    i, j = cells.shape
    grand = cells.mean()
    ms_plate = j * np.sum((cells.mean(axis=1) - grand) ** 2) / (i - 1)
    ms_sample = i * np.sum((cells.mean(axis=0) - grand) ** 2) / (j - 1)
    residual = cells - cells.mean(axis=1, keepdims=True) - cells.mean(axis=0) + grand
    mse = np.sum(residual**2) / ((i - 1) * (j - 1))
    plate, sample = (ms_plate - mse) / j, (ms_sample - mse) / i
    assert plate > 0 and sample > 0
    assert estimate.converged and not estimate.singular
    assert estimate.sigma == pytest.approx(math.sqrt(mse), rel=1e-5)
    assert estimate.sd["plate"][0] == pytest.approx(math.sqrt(plate), rel=1e-5)
    assert estimate.sd["sample"][0] == pytest.approx(math.sqrt(sample), rel=1e-5)
    assert estimate.beta[0] == pytest.approx(grand, rel=1e-9)
    se = math.sqrt(plate / i + sample / j + mse / (i * j))
    assert estimate.beta_se[0] == pytest.approx(se, rel=1e-5)


def test_memory_estimate_counts_the_blocked_statistics() -> None:
    """The guard's count of what gaussian_stats holds is what it holds (rows, levels and
    values of M, the Schur map's three arrays, the blocks, Wᵀr), and nothing of size
    (q + p)² enters the estimate of a crossed design of 2,000 × 500 levels."""
    design, *_ = crossed_design(6)
    flat = gaussian_stats(design, None)
    cross = flat.cross
    held = (flat.first.size + flat.rest.size + cross.rows.size + cross.levels.size
            + cross.values.size + 3 * cross.schur_weight.size + flat.wtr.size)
    assert marginal_memory(design, 1, shared=True)[0] == held
    rng = np.random.default_rng(7)
    n = 20_000
    table = pd.DataFrame({"y": rng.normal(size=n), "s": rng.integers(0, 2000, n),
                          "d": rng.integers(0, 500, n)})
    model = poolwise.MixedModel(formula="y ~ 1 + (1 | s) + (1 | d)", method="eb-ml")
    parts = dict(model.memory_estimate(table).parts)
    assert parts["blocked WᵀW"] < 0.2 * (2500 + 1) ** 2 * 8
