"""The ``gibbs`` sampler (Gibbs for θ, Metropolis on log α and log β).

The statistical tests compare it with ``exact`` (independent draws from the same
posterior, hyperparameters by quadrature) on the same model and data. Two estimates of
the same posterior mean agree when

    |mean_gibbs − mean_exact| < z · sqrt(mcse_gibbs² + mcse_exact²),   z = 4,

with Monte Carlo standard errors from ArviZ (``arviz_stats.mcse``); posterior standard
deviations are compared the same way with the MCSE of the sd. All seeds are fixed, so
the tests are deterministic; with z = 4 a correct sampler fails one comparison with
probability about 6e-5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from agreement import assert_agree

from poolwise import Model, SamplingWarning, SpecificationError, datasets
from poolwise.inference.base import Draws, SamplerConfig
from poolwise.inference.gibbs import (
    GibbsState,
    adapt_scale,
    log_hyper_conditional,
    make_kernel,
    sample_gibbs,
    update_hyper,
)

Z = 4.0
#: draws per chain for the comparisons with exact: enough for an ESS of log κ of ~300
#: (log κ mixes slowest: about 1 effective draw in 100 to 200)
GIBBS_DRAWS = 12_000
EXACT_DRAWS = 5_000
#: the smallest ESS at which we trust the MCSE estimates the comparisons rely on
MIN_ESS = 200


@pytest.fixture(scope="module")
def rats() -> pd.DataFrame:
    return datasets.load("rats").query("historical == 1")


def gamma_poisson_groups() -> pd.DataFrame:
    """12 groups, exposure 200-3000, rates drawn from Gamma(4, rate 200) (mean 0.02)."""
    rng = np.random.default_rng(20240611)
    exposure = rng.integers(200, 3000, size=12).astype(float)
    rate = rng.gamma(4.0, 0.02 / 4.0, size=12)
    return pd.DataFrame({"region": [f"r{j + 1}" for j in range(12)],
                         "y": rng.poisson(exposure * rate), "exposure": exposure})


def summaries(model: Model, alpha: np.ndarray, beta: np.ndarray, theta: np.ndarray,
              labels: np.ndarray, groups: list[str]) -> xr.Dataset:
    """μ, log κ and the chosen θ_j as an ArviZ-ready Dataset (chain, draw)."""
    family = model.family
    index = [int(np.flatnonzero(labels == g)[0]) for g in groups]
    variables = {
        "mu": family.population_mean(alpha, beta),
        "log_kappa": np.log(family.concentration(alpha, beta)),
        **{f"theta[{g}]": theta[..., i] for g, i in zip(groups, index, strict=True)},
    }
    return xr.Dataset({k: (("chain", "draw"), np.asarray(v)) for k, v in variables.items()})


def compare_with_exact(model: Model, table: pd.DataFrame, groups: list[str], seed: int,
                       draws_per_chain: int = GIBBS_DRAWS, **columns: str) -> Draws:
    data = model.prepare(table, **columns)
    config = SamplerConfig(draws=draws_per_chain, warmup=1000, seed=seed)
    draws = sample_gibbs(model, data, config)
    assert draws.alpha is not None and draws.beta is not None
    exact = model.replace(method="exact", draws=EXACT_DRAWS, seed=seed).fit(table, **columns)
    assert_agree(
        summaries(model, draws.alpha, draws.beta, draws.theta, data.labels, groups),
        summaries(model, exact.draws("alpha"), exact.draws("beta"), exact.draws("theta"),
                  data.labels, groups),
        MIN_ESS,
    )
    return draws


# ----------------------------------------------------------------------- against exact
@pytest.mark.slow
@pytest.mark.parametrize("prior", ["halfnormal(10)", "bda"])
def test_rats_agrees_with_exact(rats: pd.DataFrame, prior: str) -> None:
    model = Model(family="beta-binomial", prior=prior)
    compare_with_exact(model, rats, ["1", "35", "70"], seed=11,
                       y="y", n="n", group="experiment")


@pytest.mark.slow
@pytest.mark.parametrize("prior", [
    "bda", pytest.param("alpha=gamma(2, 0.5), beta=halfcauchy(500)", marks=pytest.mark.full)])
def test_gamma_poisson_agrees_with_exact(prior: str) -> None:
    model = Model(family="gamma-poisson", prior=prior)
    # 12 groups say little about the shape α: its chain mixes slower, so run longer
    compare_with_exact(model, gamma_poisson_groups(), ["r1", "r6", "r12"], seed=5,
                       draws_per_chain=2 * GIBBS_DRAWS, y="y", n="exposure", group="region")


# ----------------------------------------------------------------------- the chains
def test_acceptance_rates_reported_and_tuned(rats: pd.DataFrame) -> None:
    model = Model(family="beta-binomial", prior="halfnormal(10)")
    data = model.prepare(rats, y="y", n="n", group="experiment")
    draws = sample_gibbs(model, data, SamplerConfig(draws=1000, warmup=1000, chains=4, seed=3))
    for name in ("alpha", "beta"):
        rates = np.asarray(draws.info[f"acceptance_{name}"])
        accepted = draws.sample_stats[f"accept_{name}"]
        assert accepted.shape == (4, 1000)
        assert rates.shape == (4,)
        np.testing.assert_allclose(rates, accepted.mean(axis=1))
        assert np.all((rates > 0.15) & (rates < 0.8)), rates
        scales = np.asarray(draws.info[f"proposal_scale_{name}"])
        assert scales.shape == (4,) and np.all(np.isfinite(scales) & (scales > 0))


def test_shapes_and_support(rats: pd.DataFrame) -> None:
    model = Model(family="beta-binomial")
    data = model.prepare(rats, y="y", n="n", group="experiment")
    draws = sample_gibbs(model, data, SamplerConfig(draws=50, warmup=20, chains=3, seed=0))
    assert draws.theta.shape == (3, 50, 70)
    assert draws.alpha is not None and draws.beta is not None
    assert draws.alpha.shape == draws.beta.shape == (3, 50)
    assert np.all((draws.theta > 0) & (draws.theta < 1))
    assert np.all(draws.alpha > 0) and np.all(draws.beta > 0)


def test_same_seed_same_draws_other_seed_other_draws(rats: pd.DataFrame) -> None:
    model = Model(family="beta-binomial", prior="halfnormal(10)")
    data = model.prepare(rats, y="y", n="n", group="experiment")
    config = SamplerConfig(draws=100, warmup=100, chains=2, seed=42)
    first, second = sample_gibbs(model, data, config), sample_gibbs(model, data, config)
    other = sample_gibbs(model, data, SamplerConfig(draws=100, warmup=100, chains=2, seed=43))
    for name in ("theta", "alpha", "beta"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert not np.array_equal(getattr(first, name), getattr(other, name))
    assert first.info == second.info


def test_chains_start_apart(rats: pd.DataFrame) -> None:
    """Without warm-up the first draws show the dispersed starting points."""
    model = Model(family="beta-binomial")
    data = model.prepare(rats, y="y", n="n", group="experiment")
    draws = sample_gibbs(model, data, SamplerConfig(draws=1, warmup=0, chains=4, seed=1))
    assert draws.alpha is not None
    assert np.unique(draws.alpha[:, 0]).size == 4


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson"])
def test_zero_counts_keep_theta_inside_support(family: str) -> None:
    """All y = 0 pushes α to ~0; θ draws that underflow to 0 are clipped, stay finite."""
    table = pd.DataFrame({"g": list("abcdef"), "y": 0, "n": [5, 10, 3, 8, 20, 4]})
    model = Model(family=family, prior="halfnormal(1)")
    data = model.prepare(table, y="y", n="n", group="g")
    draws = sample_gibbs(model, data, SamplerConfig(draws=500, warmup=200, seed=3))
    assert draws.alpha is not None and draws.beta is not None
    assert np.all(draws.theta > 0)
    if family == "beta-binomial":
        assert np.all(draws.theta < 1)
    assert np.all(np.isfinite(np.log(draws.theta)))
    assert np.all(np.isfinite(draws.alpha) & np.isfinite(draws.beta))


# ----------------------------------------------------------------------- the pieces
def test_hyper_conditional_is_prior_times_population_times_jacobian() -> None:
    """log p(log α, log β | θ) = log p(α, β) + Σ_j log Beta(θ_j | α, β) + log α + log β."""
    from scipy import stats

    model = Model(family="beta-binomial", prior="halfnormal(10)")
    table = pd.DataFrame({"g": ["a", "b", "c"], "y": [1, 2, 3], "n": [10, 10, 10]})
    kernel = make_kernel(model, model.prepare(table, y="y", n="n", group="g"))
    theta = np.array([[0.1, 0.2, 0.35], [0.05, 0.5, 0.9]])
    alpha, beta = np.array([1.5, 3.0]), np.array([7.0, 2.5])
    stats_theta = model.family.population_stats(theta)
    got = log_hyper_conditional(kernel, np.log(alpha), np.log(beta), stats_theta)
    prior = stats.halfnorm(scale=10).logpdf(alpha) + stats.halfnorm(scale=10).logpdf(beta)
    population = stats.beta(alpha[:, None], beta[:, None]).logpdf(theta).sum(axis=1)
    np.testing.assert_allclose(got, prior + population + np.log(alpha) + np.log(beta))


def test_hyper_step_leaves_the_conditional_invariant() -> None:
    """With θ held fixed, the α/β steps sample p(log α, log β | θ) (checked on a grid)."""
    model = Model(family="gamma-poisson", prior="halfnormal(10)")
    table = pd.DataFrame({"g": list("abcde"), "y": [3, 5, 2, 8, 4], "exposure": 100.0})
    kernel = make_kernel(model, model.prepare(table, y="y", n="exposure", group="g"))
    chains = 2000
    theta = np.tile([0.02, 0.05, 0.03, 0.08, 0.04], (chains, 1))
    state = GibbsState(theta, np.zeros(chains), np.zeros(chains))
    rng = np.random.default_rng(0)
    for _ in range(300):
        state, _info = update_hyper(rng, kernel, state, (np.full(chains, 0.8),) * 2)

    # the same conditional on a fine grid, marginal moments of log α
    grid_a = np.linspace(-4.0, 6.0, 801)
    grid_b = np.linspace(-4.0, 10.0, 1001)
    la, lb = np.meshgrid(grid_a, grid_b, indexing="ij")
    stats_theta = model.family.population_stats(theta[:1])
    log_p = log_hyper_conditional(kernel, la.ravel(), lb.ravel(), stats_theta).reshape(la.shape)
    p = np.exp(log_p - log_p.max())
    p_a = p.sum(axis=1) / p.sum()
    mean = float(np.sum(p_a * grid_a))
    sd = float(np.sqrt(np.sum(p_a * (grid_a - mean) ** 2)))
    # chains are independent: the final states are (nearly) independent draws
    sample = state.log_alpha
    assert abs(sample.mean() - mean) < Z * sd / np.sqrt(chains)
    assert abs(sample.std(ddof=1) - sd) < Z * sd / np.sqrt(2 * (chains - 1))


def test_adapt_scale_moves_towards_target() -> None:
    scale = np.array([1.0, 1.0, 1.0])
    new = adapt_scale(scale, np.array([0.05, 0.44, 0.9]), window=1)
    assert new[0] < 1.0 and new[1] == pytest.approx(1.0) and new[2] > 1.0


# ----------------------------------------------------------------------- through Model.fit
def test_fit_records_acceptance_and_warns_on_short_chains(rats: pd.DataFrame) -> None:
    """A short run goes through Model.fit; its ESS is too small, which is reported."""
    model = Model(family="beta-binomial")
    with pytest.warns(SamplingWarning) as caught:
        fit = model.replace(method="gibbs", draws=100, warmup=100, chains=2, seed=0).fit(
            rats, y="y", n="n", group="experiment")
    assert any("effective sample size" in str(w.message) for w in caught)
    assert set(fit.tree["sample_stats"].data_vars) >= {"accept_alpha", "accept_beta"}
    assert len(fit.info["acceptance_alpha"]) == 2
    assert fit.draws("theta").shape == (2, 100, 70)


def test_gibbs_refuses_other_pooling(rats: pd.DataFrame) -> None:
    model = Model(family="beta-binomial", pooling="none")
    with pytest.raises(SpecificationError, match=r"gibbs.*partial"):
        model.replace(method="gibbs").fit(rats, y="y", n="n", group="experiment")
