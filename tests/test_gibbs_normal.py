"""The ``gibbs`` sampler for the normal family (y_j ~ N(θ_j, σ_j²), θ_j ~ N(μ, τ²)).

The statistical tests compare it with ``exact`` (independent draws, τ by quadrature) on
eight schools. Two estimates of the same posterior mean agree when

    |mean_gibbs − mean_exact| < z · sqrt(mcse_gibbs² + mcse_exact²),   z = 4,

with Monte Carlo standard errors from ArviZ (``arviz_stats.mcse``); posterior standard
deviations are compared the same way with the MCSE of the sd. All seeds are fixed, so
the tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from agreement import assert_agree
from scipy import stats

from poolwise import Model, datasets
from poolwise.inference.base import SamplerConfig
from poolwise.inference.gibbs import (
    NormalGibbsState,
    make_normal_kernel,
    sample_gibbs,
    update_mu,
    update_tau,
)

#: draws per chain: the centred Gibbs sampler is sticky near τ = 0, so log τ needs many
GIBBS_DRAWS = 20_000
EXACT_DRAWS = 5_000
MIN_ESS = 400
PRIORS = ["bda", "flat-tau2", "mu=normal(0, 5), tau=halfcauchy(5)"]
COLUMNS = {"y": "y", "se": "sigma", "group": "school"}


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    return datasets.load("eight-schools")


def summaries(mu: np.ndarray, tau: np.ndarray, theta_a: np.ndarray) -> xr.Dataset:
    """μ, log τ and θ_A as an ArviZ-ready Dataset (chain, draw)."""
    variables = {"mu": mu, "log_tau": np.log(tau), "theta[A]": theta_a}
    return xr.Dataset({k: (("chain", "draw"), np.asarray(v)) for k, v in variables.items()})


@pytest.mark.parametrize("prior", PRIORS)
def test_eight_schools_agrees_with_exact(schools: pd.DataFrame, prior: str) -> None:
    model = Model(family="normal", prior=prior)
    data = model.prepare(schools, **COLUMNS)
    draws = sample_gibbs(model, data, SamplerConfig(draws=GIBBS_DRAWS, warmup=1000, seed=7))
    assert draws.alpha is not None and draws.beta is not None
    assert draws.theta.shape == (4, GIBBS_DRAWS, 8)
    exact = model.replace(method="exact", draws=EXACT_DRAWS, seed=7).fit(schools, **COLUMNS)
    a = int(np.flatnonzero(data.labels == "A")[0])
    assert_agree(summaries(draws.alpha, draws.beta, draws.theta[..., a]),
                 summaries(exact.draws("mu"), exact.draws("tau"), exact.draws("theta")[..., a]),
                 MIN_ESS)


@pytest.mark.parametrize(("prior", "df"), [("bda", 7), ("flat-tau2", 6)])
def test_conjugate_priors_use_direct_draws(schools: pd.DataFrame, prior: str, df: int) -> None:
    model = Model(family="normal", prior=prior)
    data = model.prepare(schools, **COLUMNS)
    kernel = make_normal_kernel(model, data)
    assert kernel.mu_prior == (0.0, 0.0) and kernel.tau_df == df
    draws = sample_gibbs(model, data, SamplerConfig(draws=50, warmup=50, seed=1))
    assert draws.sample_stats == {}
    assert not any(key.startswith("acceptance") for key in draws.info)


def test_metropolis_on_tau_is_tuned_and_reported(schools: pd.DataFrame) -> None:
    model = Model(family="normal", prior=PRIORS[2])
    data = model.prepare(schools, **COLUMNS)
    kernel = make_normal_kernel(model, data)
    assert kernel.mu_prior == (0.0, 1.0 / 25.0) and kernel.tau_df is None
    draws = sample_gibbs(model, data, SamplerConfig(draws=2000, warmup=1000, seed=2))
    assert set(draws.sample_stats) == {"accept_beta"}
    assert draws.sample_stats["accept_beta"].shape == (4, 2000)
    assert all(0.3 < rate < 0.6 for rate in draws.info["acceptance_beta"])
    assert "acceptance_alpha" not in draws.info


def test_metropolis_on_mu_for_other_priors(schools: pd.DataFrame) -> None:
    model = Model(family="normal", prior="mu=halfnormal(20), tau=halfnormal(10)")
    data = model.prepare(schools, **COLUMNS)
    assert make_normal_kernel(model, data).mu_prior is None
    draws = sample_gibbs(model, data, SamplerConfig(draws=2000, warmup=1000, seed=2))
    assert draws.alpha is not None and np.all(draws.alpha > 0)
    assert set(draws.sample_stats) == {"accept_alpha", "accept_beta"}
    assert all(0.3 < rate < 0.6 for rate in draws.info["acceptance_alpha"])


def test_tau_and_mu_conditionals(schools: pd.DataFrame) -> None:
    """With a flat τ prior S/τ² ~ χ²_{J−1}; with a flat μ prior μ ~ N(θ̄, τ²/J).

    Many chains at one fixed (θ, μ, τ); KS tests at a 1e-4 failure rate each.
    """
    model = Model(family="normal", prior="bda")
    data = model.prepare(schools, **COLUMNS)
    kernel = make_normal_kernel(model, data)
    rng = np.random.default_rng(3)
    chains = 20_000
    theta = np.tile(rng.normal(8.0, 6.0, size=8), (chains, 1))
    state = NormalGibbsState(theta, np.full(chains, 5.0), np.full(chains, np.log(4.0)))
    new, accept = update_tau(rng, kernel, state, np.ones(chains))
    assert np.all(accept == 1.0)
    spread = np.square(theta[0] - 5.0).sum()
    assert stats.kstest(spread * np.exp(-2.0 * new.log_tau), stats.chi2(7).cdf).pvalue > 1e-4
    new, _ = update_mu(rng, kernel, state, np.ones(chains))
    reference = stats.norm(theta[0].mean(), 4.0 / np.sqrt(8)).cdf
    assert stats.kstest(new.mu, reference).pvalue > 1e-4


def test_same_seed_same_draws(schools: pd.DataFrame) -> None:
    model = Model(family="normal", prior=PRIORS[2])
    data = model.prepare(schools, **COLUMNS)
    config = SamplerConfig(draws=100, warmup=100, seed=5)
    first, second = sample_gibbs(model, data, config), sample_gibbs(model, data, config)
    other = sample_gibbs(model, data, SamplerConfig(draws=100, warmup=100, seed=6))
    np.testing.assert_array_equal(first.theta, second.theta)
    np.testing.assert_array_equal(first.beta, second.beta)
    assert not np.array_equal(first.theta, other.theta)


def test_fit_with_method_gibbs(schools: pd.DataFrame) -> None:
    model = Model(family="normal", prior="bda")
    fit = model.replace(method="gibbs", draws=5000, warmup=500, seed=1).fit(schools, **COLUMNS)
    assert fit.draws("theta").shape == (4, 5000, 8)
    assert np.all(fit.draws("tau") > 0)
