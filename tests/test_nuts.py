"""``nuts`` against ``exact`` on the same model and data.

Both methods target the same posterior, so their posterior means and standard deviations
must agree within Monte Carlo error:

    |mean_nuts − mean_exact| < Z · sqrt(mcse_nuts² + mcse_exact²)

with MCSE from ArviZ (``arviz_stats.mcse``, method "mean" or "sd") on the (chain, draw)
arrays; ``exact`` draws are independent, NUTS draws are a Markov chain. Z = 4 gives a
false-alarm rate of about 6e-5 per comparison. Fits are made once per module (JAX
compilation dominates the run time).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from agreement import assert_same_posterior

from poolwise import Fit, Model
from poolwise.inference.base import SamplerConfig
from poolwise.inference.nuts import sample_nuts

pytestmark = pytest.mark.slow

SEED = 20261122


def fit_both(model: Model, data: pd.DataFrame, **columns: str) -> tuple[Fit, Fit]:
    nuts = model.replace(method="nuts", seed=SEED).fit(data, **columns)
    exact = model.replace(method="exact", seed=SEED).fit(data, **columns)
    return nuts, exact


# ----------------------------------------------------------------------- rat tumours
@pytest.fixture(scope="module")
def rats_fits(rats: pd.DataFrame) -> tuple[Fit, Fit]:
    model = Model(family="beta-binomial", prior="halfnormal(10)")
    return fit_both(model, rats, y="y", n="n", group="experiment")


def test_rats_no_divergences_and_shapes(rats_fits: tuple[Fit, Fit]) -> None:
    nuts, _ = rats_fits
    assert nuts.info["divergences"] == 0
    stats = nuts.tree["sample_stats"]
    assert int(stats["diverging"].sum()) == 0
    assert nuts.draws("theta").shape == (4, 1000, 70)
    assert nuts.draws("alpha").shape == (4, 1000)
    for name in ("n_steps", "acceptance_rate", "lp", "energy", "step_size"):
        assert stats[name].shape == (4, 1000)


def test_rats_hyperparameters_agree(rats_fits: tuple[Fit, Fit]) -> None:
    nuts, exact = rats_fits
    assert_same_posterior(nuts.draws("mu"), exact.draws("mu"), "mu")
    assert_same_posterior(np.log(nuts.draws("kappa")), np.log(exact.draws("kappa")),
                          "log kappa")


@pytest.mark.parametrize("j", [0, 13, 35, 52, 66, 69])
def test_rats_group_rates_agree(rats_fits: tuple[Fit, Fit], j: int) -> None:
    nuts, exact = rats_fits
    assert_same_posterior(nuts.draws("theta")[..., j], exact.draws("theta")[..., j],
                          f"theta[{j}]")


# ----------------------------------------------------------------------- SpaceX
@pytest.fixture(scope="module", params=["none", "complete"])
def spacex_fits(request: pytest.FixtureRequest, spacex: pd.DataFrame) -> tuple[Fit, Fit]:
    model = Model(family="beta-binomial", pooling=request.param)
    return fit_both(model, spacex, y="successes", n="launches", group="vehicle_family")


def test_spacex_agrees(spacex_fits: tuple[Fit, Fit]) -> None:
    nuts, exact = spacex_fits
    theta_nuts, theta_exact = nuts.draws("theta"), exact.draws("theta")
    assert theta_nuts.shape == theta_exact.shape == (4, 1000, 4)
    assert nuts.info["divergences"] == 0
    if nuts.model.pooling == "complete":
        np.testing.assert_array_equal(theta_nuts[..., 0:1].repeat(4, axis=-1), theta_nuts)
        assert_same_posterior(theta_nuts[..., 0], theta_exact[..., 0], "common theta")
        return
    for j, label in enumerate(nuts.data.labels):
        assert_same_posterior(theta_nuts[..., j], theta_exact[..., j], f"theta[{label}]")


# ----------------------------------------------------------------------- gamma-Poisson
@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    """15 groups, exposure 20-200, rates θ_j ~ Gamma(5, rate 5), y_j ~ Poisson(E_j θ_j)."""
    rng = np.random.default_rng(SEED)
    exposure = rng.uniform(20.0, 200.0, size=15)
    rate = rng.gamma(5.0, 1.0 / 5.0, size=15)
    return pd.DataFrame({"group": [f"g{j:02d}" for j in range(15)],
                         "y": rng.poisson(exposure * rate), "exposure": exposure})


@pytest.fixture(scope="module")
def gamma_partial(counts: pd.DataFrame) -> tuple[Fit, Fit]:
    model = Model(family="gamma-poisson", prior="halfnormal(10)")
    return fit_both(model, counts, y="y", n="exposure", group="group")


def test_gamma_poisson_partial_agrees(gamma_partial: tuple[Fit, Fit]) -> None:
    nuts, exact = gamma_partial
    assert nuts.info["divergences"] == 0
    assert_same_posterior(np.log(nuts.draws("mu")), np.log(exact.draws("mu")), "log mu")
    assert_same_posterior(np.log(nuts.draws("alpha")), np.log(exact.draws("alpha")),
                          "log alpha")
    for j in (0, 7, 14):
        assert_same_posterior(nuts.draws("theta")[..., j], exact.draws("theta")[..., j],
                              f"theta[{j}]")


def test_gamma_poisson_no_pooling_improper_prior_agrees(counts: pd.DataFrame) -> None:
    """The default Gamma(1/2, 0) prior of θ is improper; the posterior is not."""
    model = Model(family="gamma-poisson", pooling="none")
    assert model.theta_prior.b == 0
    nuts, exact = fit_both(model, counts, y="y", n="exposure", group="group")
    for j in (0, 5, 10):
        assert_same_posterior(nuts.draws("theta")[..., j], exact.draws("theta")[..., j],
                              f"theta[{j}]")


# ----------------------------------------------------------------------- plumbing
def test_same_seed_same_draws(spacex: pd.DataFrame) -> None:
    model = Model(family="beta-binomial", pooling="complete")
    data = model.prepare(spacex, y="successes", n="launches", group="vehicle_family")
    config = SamplerConfig(draws=30, warmup=30, chains=2, seed=3)
    first, second = sample_nuts(model, data, config), sample_nuts(model, data, config)
    np.testing.assert_array_equal(first.theta, second.theta)
    assert first.theta.shape == (2, 30, 4)
    other = sample_nuts(model, data, SamplerConfig(draws=30, warmup=30, chains=2, seed=4))
    assert not np.array_equal(first.theta, other.theta)


def test_importing_the_method_does_not_import_jax() -> None:
    code = ("import sys, poolwise, poolwise.inference.nuts; "
            "sys.exit('jax' in sys.modules or 'numpyro' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
