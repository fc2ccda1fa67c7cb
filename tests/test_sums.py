"""The sums over groups that a hyperparameter density evaluates at every grid point,
reduced once (poolwise.families.sums): against the direct sums over every group, within
the remainder bounds the classes state."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from poolwise._ops import NUMPY_OPS, log_rising
from poolwise.families import get_family
from poolwise.families.sums import (
    BIN_HALF_WIDTH,
    EXACT_COUNTS,
    RISING_ORDER,
    SHIFT_ORDER,
    RisingSums,
    ShiftedSums,
)

RHO = np.expm1(2 * BIN_HALF_WIDTH)  # a value's distance from its bin's centre, relative


def test_rising_sums_of_large_counts_agree_with_every_count():
    """Counts to 10^6, almost all distinct: the large ones binned, each group's term within
    ρ^(K+1) z / (K(K+1)) of lnΓ's (the bound RisingSums states), beside the floating point
    error of sums of this size."""
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 1_000_000, 300_000).astype(float)
    weights = rng.integers(1, 3, counts.size).astype(float)
    sums = RisingSums.of(counts, weights)
    assert sums.centres.size and sums.size < counts.size / 20  # it did bin
    assert sums.values.max() <= EXACT_COUNTS
    a = np.array([0.05, 1.0, 30.0, 2_000.0, 3e5, 1e20])  # huge a: no cancellation either
    direct = np.array([np.sum(weights * log_rising(x, counts, NUMPY_OPS)) for x in a])
    scale = np.array([np.sum(weights * np.abs(log_rising(x, counts, NUMPY_OPS))) for x in a])
    bound = (RHO ** (RISING_ORDER + 1) * (a + counts.max()) / (RISING_ORDER * (RISING_ORDER + 1))
             * weights.sum())
    assert np.all(np.abs(sums(a) - direct) <= bound + 1e-14 * scale)


def test_few_distinct_counts_are_summed_exactly():
    counts = np.array([0.0, 3.0, 3.0, 10.0, 5000.0, 5000.0])
    sums = RisingSums.of(counts, np.ones(6))
    assert sums.centres.size == 0  # two large counts do not pay for bins
    np.testing.assert_allclose(sums(np.array([2.5])),
                               np.sum(special.gammaln(2.5 + counts) - special.gammaln(2.5)),
                               rtol=1e-13)


@pytest.mark.parametrize("relative", [False, True])
def test_shifted_sums_agree_with_the_direct_sums(relative):
    """σ² or exposures over five decades: each term within ρ^(K+1)/(1 − ρ) of its value."""
    rng = np.random.default_rng(5)
    groups = 200_000
    shifts = np.square(rng.uniform(0.05, 20.0, groups))
    weights = np.stack([rng.integers(1, 4, groups), rng.normal(size=groups),
                        rng.uniform(size=groups)], axis=1).astype(float)
    binned = ShiftedSums.of(shifts, weights)
    assert binned.size * 8 <= groups  # it did bin
    t = np.exp(np.linspace(-6.0, 6.0, 7))
    log_sums, sums = binned.at(t, relative=relative)
    x = t[:, None] + shifts
    logs = np.log1p(shifts / t[:, None]) if relative else np.log(x)
    bound = RHO ** (SHIFT_ORDER + 1) / (1 - RHO)
    for got, terms in ((log_sums, logs), (sums, 1.0 / x)):
        scale = np.abs(terms) @ np.abs(weights)
        assert np.all(np.abs(got - terms @ weights) <= (bound + 1e-12) * scale)


def test_equal_shifts_fall_in_one_exact_bin():
    sums = ShiftedSums.of(np.full(1000, 2.5), np.ones((1000, 1)))
    assert sums.centres.size == 1
    log_sums, inverse = sums.at(np.array([0.5]))
    np.testing.assert_allclose(log_sums, [[1000 * np.log(3.0)]], rtol=1e-13)
    np.testing.assert_allclose(inverse, [[1000 / 3.0]], rtol=1e-13)


@pytest.mark.parametrize("name", ["beta-binomial", "gamma-poisson"])
def test_log_marginal_sum_of_binned_data_is_the_sum_of_the_groups(name):
    """The families' reduced sums over 200,000 groups with large counts or continuous
    exposures equal Σ_j w_j log p(y_j | α, β) summed group by group, to the floating point
    error of sums of lnΓ terms of this size (they cancel: ~10^12 each, ~10^6 left)."""
    family = get_family(name)
    rng = np.random.default_rng(7)
    groups = 200_000
    if name == "beta-binomial":
        n = rng.integers(5, 1_000_000, groups).astype(float)
        y = rng.binomial(n.astype(int), rng.beta(2.0, 18.0, groups)).astype(float)
        alpha, beta = np.array([0.5, 2.0, 40.0]), np.array([4.0, 18.0, 360.0])
    else:
        n = rng.uniform(0.5, 50.0, groups)
        y = rng.poisson(n * rng.gamma(2.0, 1 / 20.0, groups)).astype(float)
        alpha, beta = np.array([0.5, 2.0, 400.0]), np.array([5.0, 20.0, 4000.0])
    weights = rng.integers(1, 3, groups).astype(float)
    terms = family.marginal_terms(y, n, weights)
    assert terms.size < groups / 10  # reduced
    direct = family.log_marginal(alpha[:, None], beta[:, None], y, n) @ weights
    size = weights @ np.abs(special.gammaln(alpha[:, None] + y + n).T)  # the terms' scale
    assert np.all(np.abs(family.log_marginal_sum(alpha, beta, terms) - direct)
                  <= 1e-14 * size + 1e-9 * np.abs(direct))


def test_normal_log_marginal_sum_of_binned_standard_errors_is_the_sum_of_the_groups():
    """The normal family's reduced sums (binned σ², centred y) over 200,000 groups equal
    Σ_j w_j log N(y_j | μ, σ_j² + τ²) summed group by group, within the binning's Taylor
    remainder (below 2e-11 of each term), at τ from far below to far above the σ_j and μ
    far from the data."""
    family = get_family("normal")
    rng = np.random.default_rng(11)
    groups = 200_000
    se = rng.uniform(0.5, 3.0, groups)
    y = rng.normal(rng.normal(1.0, 0.5, groups), se)
    weights = rng.integers(1, 3, groups).astype(float)
    mu, tau = np.array([1.0, -3.0, 1.0, 40.0]), np.array([0.5, 0.01, 30.0, 2.0])
    terms = family.marginal_terms(y, se, weights)
    assert terms.size < groups / 10  # reduced
    each = family.log_marginal(mu[:, None], tau[:, None], y, se)
    direct = each @ weights
    assert np.all(np.abs(family.log_marginal_sum(mu, tau, terms) - direct)
                  <= 1e-9 * (np.abs(each) @ weights))
