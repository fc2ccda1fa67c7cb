"""Method ``importance`` for Gaussian mixed models: PSIS, the NumPy marginal, agreement with
NUTS and REML, and the visible fallback to NUTS when the Pareto k̂ fires."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import poolwise
from poolwise.exceptions import SamplingWarning, SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.inference.importance import (
    PARETO_K_MAX,
    importance_sample,
    pareto_k_limit,
    psis,
    systematic_resample,
)
from poolwise.kinds.mixed.inference import (
    corr_cholesky,
    gaussian_marginal,
    gaussian_stats,
    integrate_mixed,
    lkj_log_density,
    term_factor,
)
from poolwise.kinds.mixed.reml import fit_reml

#: |difference| / its Monte Carlo standard error allowed over ~40 compared quantities
Z = 4.0


# ----------------------------------------------------------------------------- PSIS
@pytest.mark.parametrize(("size", "scale"), [(100, 1.0), (4000, 0.5), (8000, 2.0)])
def test_psis_equals_arviz_stats(size: int, scale: float) -> None:
    """The same smoothed weights and k̂ as arviz-stats' psislw (an independent
    implementation of Vehtari et al. 2024; it smooths the weights 1/exp(ary))."""
    from arviz_stats.base import array_stats

    log_weights = np.random.default_rng(size).standard_t(3, size=size) * scale
    expected, k_expected = array_stats.psislw(-log_weights)
    smoothed, k = psis(log_weights)
    assert k == pytest.approx(float(k_expected), abs=1e-12)
    np.testing.assert_allclose(smoothed, expected, atol=1e-12)


def test_importance_sampling_of_a_known_target() -> None:
    """x = log g, g ~ Gamma(3) (skewed in x): E[e^x] = 3, sd √3; with x₂ ~ N(1, 0.5²)
    beside it. The weighted means are within Z MCSEs (sd/√ESS) of the truth and k̂ is
    small."""
    def log_density(x: np.ndarray) -> np.ndarray:
        return (3.0 * x[:, 0] - np.exp(x[:, 0])
                + stats.norm.logpdf(x[:, 1], 1.0, 0.5))

    rng = np.random.default_rng(1)
    sample = importance_sample(log_density, np.array([0.0, 0.0]), size=8000, rng=rng)
    assert sample.ok and sample.pareto_k < 0.5
    weights = np.exp(sample.log_weights)
    g = np.exp(sample.points[:, 0])
    assert abs(weights @ g - 3.0) < Z * math.sqrt(3.0 / sample.ess)
    assert abs(weights @ sample.points[:, 1] - 1.0) < Z * 0.5 / math.sqrt(sample.ess)
    draws = sample.resample(rng, 4000)
    assert abs(np.exp(draws[:, 0]).mean() - 3.0) < Z * math.sqrt(
        3.0 * (1 / sample.ess + 1 / 4000))


@pytest.mark.parametrize("shape", [0.3, 0.9])
def test_pareto_k_estimates_a_known_tail_shape(shape: float) -> None:
    """Weights drawn from a generalised Pareto distribution of shape k: k̂ is within 3
    standard errors, (1 + k)/√M for the M tail weights (Zhang and Stephens 2009), of k; at
    k = 0.9 it exceeds the 0.7 limit (infinite variance is seen)."""
    size = 40_000
    weights = stats.genpareto.rvs(shape, size=size, random_state=np.random.default_rng(6))
    k = psis(np.log(weights))[1]
    tail = math.floor(3 * math.sqrt(size))
    assert abs(k - shape) < 3 * (1 + shape) / math.sqrt(tail)
    assert (k > pareto_k_limit(size)) == (shape > PARETO_K_MAX)


def test_systematic_resampling_keeps_the_weights() -> None:
    """Each index appears ⌊N w_i⌋ or ⌈N w_i⌉ times."""
    weights = np.array([0.5, 0.25, 0.125, 0.125])
    counts = np.bincount(systematic_resample(np.random.default_rng(3), np.log(weights), 1000),
                         minlength=4)
    assert np.all(np.abs(counts - 1000 * weights) <= 1)


# ------------------------------------------------------------------ the NumPy marginal
def test_correlation_coordinates_equal_numpyros() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from numpyro.distributions import LKJCholesky
    from numpyro.distributions.transforms import CorrCholeskyTransform

    rng = np.random.default_rng(4)
    for dim in (2, 3):
        x = 1.5 * rng.normal(size=(6, dim * (dim - 1) // 2))
        chol, log_jacobian = corr_cholesky(x, np)
        transform = CorrCholeskyTransform()
        expected = np.asarray(transform(x))
        np.testing.assert_allclose(chol, expected, atol=1e-12)
        np.testing.assert_allclose(
            log_jacobian, np.asarray(transform.log_abs_det_jacobian(x, expected)), atol=1e-10)
        difference = lkj_log_density(chol, 1.7, np) - np.asarray(
            LKJCholesky(dim, 1.7).log_prob(expected))
        assert np.ptp(difference) < 1e-10  # equal up to the normalising constant


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    return poolwise.datasets.load("sleepstudy")


def test_numpy_batch_equals_jax_point_by_point(sleepstudy: pd.DataFrame) -> None:
    """gaussian_marginal over a batch of points in NumPy equals JAX's at each point (JAX's
    is checked against the dense N(0, V) in test_mixed_inference)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    model = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)")
    data = model.prepare(sleepstudy)
    stats_ = gaussian_stats(data.design, data.priors.fixed_loc)
    rng = np.random.default_rng(5)
    sigma = np.exp(rng.normal(3.2, 0.3, 7))
    sds = np.exp(rng.normal([3.2, 1.8], 0.4, (7, 2)))
    chol = corr_cholesky(rng.normal(size=(7, 1)), np)[0]
    fixed = np.diag(data.priors.fixed_scale)
    batch = gaussian_marginal(stats_, sigma, [term_factor(sds, chol), fixed], np)
    for i in range(7):
        one = gaussian_marginal(stats_, jnp.asarray(sigma[i]),
                                [term_factor(jnp.asarray(sds[i]), jnp.asarray(chol[i])),
                                 jnp.asarray(fixed)], jnp)
        assert float(one.log_density) == pytest.approx(batch.log_density[i], rel=1e-12)


def test_flat_prior_mode_is_reml(sleepstudy: pd.DataFrame) -> None:
    """With β flat and no prior on (log σ, log sd, correlation coordinate), the mode of the
    NumPy marginal (BFGS, finite differences) is the REML estimate (lme4's numbers, and
    fit_reml's profiled L-BFGS-B in JAX): σ 25.59, sds 24.74 and 5.92, correlation 0.066."""
    from poolwise.inference.importance import find_mode

    model = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)")
    design = model.prepare(sleepstudy).design
    flat = gaussian_stats(design, None)

    def log_density(x: np.ndarray) -> np.ndarray:
        chol = corr_cholesky(x[:, 3:4], np)[0]
        factor = term_factor(np.exp(x[:, 1:3]), chol)
        return gaussian_marginal(flat, np.exp(x[:, 0]), [factor], np).log_density

    mode, _, problem = find_mode(log_density, np.array([3.0, 3.0, 1.0, 0.0]))
    assert problem is None
    estimate = fit_reml(design)
    cor = corr_cholesky(mode[3:4], np)[0][1, 0]
    assert math.exp(mode[0]) == pytest.approx(estimate.sigma, rel=1e-4)
    np.testing.assert_allclose(np.exp(mode[1:3]), estimate.sd["Subject"], rtol=1e-4)
    assert cor == pytest.approx(estimate.cor["Subject"][1, 0], abs=1e-4)
    assert math.exp(mode[0]) == pytest.approx(25.592, abs=1e-3)
    np.testing.assert_allclose(np.exp(mode[1:3]), [24.741, 5.922], atol=1e-3)


# ----------------------------------------------------------------------- vs NUTS
def _moments(fit: poolwise.MixedFit, factor: str
             ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scalar: mean, sd and the sd's relative kurtosis factor (m₄/sd⁴ − 1)."""
    out = {}
    for name in ("b", "sigma", f"sd_{factor}", f"cor_{factor}", f"r_{factor}"):
        values = fit.draws(name)
        if name.startswith("cor_"):
            values = values[..., 1, 0]
        flat = values.reshape(-1, *values.shape[2:])
        sd = flat.std(axis=0, ddof=1)
        kurtosis = np.mean((flat - flat.mean(axis=0)) ** 4, axis=0) / sd**4 - 1.0
        out[name] = (flat.mean(axis=0), sd, kurtosis)
    return out


RADON_PRIORS = ("b[Intercept] = normal(0, 10); b[floor] = normal(0, 10); "
                "sigma = halfnormal(1); sd = halfnormal(1)")


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "formula", "prior", "draws"), [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", None, 2000),
    # sd[floor] near 0: a Laplace proposal alone passed k̂ at 0.68 with sd[floor] 0.298
    # against NUTS's 0.277 (then the proposal was refined while k̂ > 0.5)
    pytest.param("radon", "log_radon ~ floor + (floor | county)", RADON_PRIORS, 1000,
                 marks=pytest.mark.full),  # make test: sleepstudy's
])
def test_importance_agrees_with_a_long_nuts_run(dataset: str, formula: str,
                                                prior: str | None, draws: int) -> None:
    """Means and sds of β, σ, the sds, the correlation and every group effect within Z
    Monte Carlo standard errors of NUTS (4 chains, marginal parametrisation). MCSE of a
    mean sd/√ESS, of an sd sd·√((m₄/sd⁴ − 1)/(4 ESS)); ESS from ArviZ for NUTS and the
    fit's weights-based ESS for importance."""
    from poolwise import _arviz

    table = poolwise.datasets.load(dataset)
    factor = formula.rsplit("|", 1)[1].strip(" )")
    fast = poolwise.MixedModel(formula=formula, prior=prior, seed=1).fit(table)
    assert fast.method == "importance" and not fast.is_mcmc
    slow = poolwise.MixedModel(formula=formula, prior=prior, method="nuts", draws=draws,
                               warmup=1000, seed=2).fit(table)
    ess_fast = fast.info["ess"]
    diagnostics = _arviz.diagnostics(slow.posterior)["ess_bulk"]
    a, b = _moments(fast, factor), _moments(slow, factor)
    for name in a:
        mean_a, sd_a, kurt_a = a[name]
        mean_b, sd_b, kurt_b = b[name]
        ess_b = np.asarray(diagnostics[name].values)
        if name.startswith("cor_"):
            ess_b = ess_b[..., 1, 0]
        mcse_mean = np.sqrt(sd_a**2 / ess_fast + sd_b**2 / ess_b)
        assert np.all(np.abs(mean_a - mean_b) < Z * mcse_mean), name
        mcse_sd = np.sqrt(sd_a**2 * kurt_a / (4 * ess_fast) + sd_b**2 * kurt_b / (4 * ess_b))
        assert np.all(np.abs(sd_a - sd_b) < Z * mcse_sd), name


def test_fit_reports_the_weights_ess_not_the_draw_count(sleepstudy: pd.DataFrame) -> None:
    fit = poolwise.MixedModel(formula="Reaction ~ Days + (1 | Subject)", draws=500,
                              chains=2).fit(sleepstudy)
    assert fit.method == "importance" and "importance" in fit.title()
    info = fit.info
    assert info["pareto_k"] <= info["pareto_k_limit"]
    assert info["ess"] == pytest.approx(1 / (1 / info["importance_ess"] + 1 / 1000))
    table = fit.summary()
    assert np.all(table["ess_bulk"] == info["ess"]) and table["r_hat"].isna().all()
    np.testing.assert_allclose(table["mcse_mean"], table["sd"] / np.sqrt(info["ess"]))
    assert fit.diagnostics() == []
    # ranks' Monte Carlo errors too: P(best) ± √(p(1 − p) S/(S − 1)) / √(ESS/N · S)
    ranks = fit.ranks()
    p, size = ranks["p_best"].to_numpy(), ranks["rank_draws"].to_numpy()
    expected = np.sqrt(p * (1 - p) * size / (size - 1)) / np.sqrt(info["ess"] / 1000 * size)
    np.testing.assert_allclose(ranks["p_best_mcse"], expected, rtol=1e-10)


#: replications of the importance method's calibration (each fit about 0.3 s)
SBC_IMPORTANCE_REPLICATIONS = 50


@pytest.mark.full  # make test: test_calibration's fast SBC of importance
def test_importance_is_calibrated_on_three_levels() -> None:
    """Simulation-based calibration of the default method, as test_mixed_model's for NUTS
    (the same generating distribution = priors, y ~ 1 + (1 | school/classroom)), with
    R = 50: each component's 90% and 50% intervals cover the truth a Binomial(R, level)
    number of times, within bands of false-alarm probability 0.001 each."""
    from test_mixed_model import (
        SBC_ALPHA,
        SBC_COMPONENTS,
        SBC_FORMULA,
        SBC_PRIORS,
        binomial_band,
        simulate_three_levels,
    )

    rng = np.random.default_rng(20261205)
    levels = (0.9, 0.5)
    covered = {level: dict.fromkeys(SBC_COMPONENTS, 0) for level in levels}
    methods = []
    for r in range(SBC_IMPORTANCE_REPLICATIONS):
        data, truth = simulate_three_levels(rng)
        model = poolwise.MixedModel(formula=SBC_FORMULA, prior=SBC_PRIORS, draws=500,
                                    chains=2, seed=r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)  # a fallback, counted below
            fit = model.fit(data)
        methods.append(fit.method)
        for level in levels:
            summary = fit.summary(ci_prob=level, diagnostics=False).set_index("param")
            for name in SBC_COMPONENTS:
                covered[level][name] += int(summary.loc[name, "lower"] <= truth[name]
                                            <= summary.loc[name, "upper"])
    print(f"coverage: {covered}; fell back to NUTS {methods.count('nuts')} times")
    assert methods.count("importance") >= 0.9 * SBC_IMPORTANCE_REPLICATIONS
    for level in levels:
        low, high = binomial_band(SBC_IMPORTANCE_REPLICATIONS, level, SBC_ALPHA)
        for name, count in covered[level].items():
            assert low <= count <= high, (name, level, count, (low, high))


# ------------------------------------------------------------------ the fallback
def _boundary_data() -> pd.DataFrame:
    """10 groups × 5 rows of pure noise: the group sd's posterior piles up against 0."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 5)
    return pd.DataFrame({"y": rng.normal(size=g.size), "g": g.astype(str)})


#: Gamma(0.01, 0.01) on the sd: p(sd) ∝ sd^−0.99 near 0, so log sd has a tail of rate 0.01
#: to −∞ beside the data's bump: far from any Student-t
BOUNDARY_PRIOR = "sd = gamma(0.01, 0.01)"


def test_the_diagnostic_fires_on_a_boundary_posterior() -> None:
    model = poolwise.MixedModel(formula="y ~ 1 + (1 | g)", prior=BOUNDARY_PRIOR)
    data = model.prepare(_boundary_data())
    drawn, info = integrate_mixed(data.design, data.priors, SamplerConfig())
    assert drawn is None
    assert info["pareto_k"] > info["pareto_k_limit"]
    assert "Pareto k̂" in info["importance_problem"]


@pytest.mark.slow
def test_a_failed_diagnostic_falls_back_to_nuts_visibly(tmp_path) -> None:
    """The fit warns, runs NUTS, and says so: fit.method, the title, the info, the JSON
    document; save → load keeps it."""
    from poolwise.outputs.writer import fit_document

    model = poolwise.MixedModel(formula="y ~ 1 + (1 | g)", prior=BOUNDARY_PRIOR,
                                draws=300, warmup=300, chains=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(_boundary_data())
    messages = [str(w.message) for w in caught if issubclass(w.category, SamplingWarning)]
    assert any("importance sampling failed its check" in m for m in messages)
    assert len(messages) == len(caught)  # NUTS's own diagnostics may warn too
    assert fit.method == "nuts" and fit.is_mcmc
    assert "method nuts" in fit.title()
    assert fit.info["pareto_k"] > fit.info["pareto_k_limit"]
    assert "fitted by NUTS instead" in fit.info["fallback"]
    assert "diverging" in fit.tree["sample_stats"]
    document = fit_document(fit, summary=fit.summary(), check=fit.predictive_check(),
                            predictions=[], messages=[], ci_prob=0.9)
    assert document["method"] == "nuts" and "fallback" in document["sampler"]
    fit.save(tmp_path / "fit.nc")
    loaded = poolwise.load(tmp_path / "fit.nc")
    assert loaded.method == "nuts" and loaded.info["fallback"] == fit.info["fallback"]


def test_importance_is_not_for_the_negative_binomial() -> None:
    """(Binomial, bernoulli and poisson GLMMs: tests/test_glmm_importance.py.)"""
    assert poolwise.MixedModel(formula="y ~ x + (1 | g)").method == "importance"
    assert poolwise.MixedModel(formula="y ~ x + (1 | g)", family="negbinomial").method == "nuts"
    with pytest.raises(SpecificationError, match="normal, binomial, bernoulli, poisson"):
        poolwise.MixedModel(formula="y ~ x + (1 | g)", family="negbinomial",
                            method="importance")


def test_the_command_line_shows_the_method_and_its_check(capsys) -> None:
    """``poolwise fit sleepstudy``: the terminal names importance sampling with its k̂ and
    ESS; the JSON document's method and sampler carry them."""
    from poolwise.cli import main

    assert main(["fit", "sleepstudy", "--draws", "250", "--chains", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "method importance" in out and "importance sampling: Pareto k̂" in out
    assert main(["fit", "sleepstudy", "--draws", "250", "--chains", "2", "--quiet",
                 "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    sampler = document["sampler"]
    assert document["method"] == "importance" and "fallback" not in sampler
    assert sampler["pareto_k"] <= sampler["pareto_k_limit"]
    assert sampler["ess"] == pytest.approx(1 / (1 / sampler["importance_ess"] + 1 / 500))
