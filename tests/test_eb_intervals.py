"""Empirical-Bayes intervals with the hyperparameters' uncertainty
(poolwise.inference.eb_intervals): the correction's ingredients against closed forms, the
corrected intervals against the full-Bayes posterior they approximate, the boundary, the
labels and the option that keeps the plug-in intervals.

Their frequentist coverage, the reason for the correction, is checked by the calibration
tests (tests/test_calibration.py, ``-m full -k "eb or nig or eb-ml"``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from poolwise import Model, NIGModel
from poolwise.cli import main
from poolwise.exceptions import ConvergenceWarning
from poolwise.inference.eb_intervals import (
    FIRST_ORDER,
    WEIGHTED,
    hyperparameter_draws,
    observed_information,
)

#: two-sided normal quantile of the Monte Carlo tolerances (false alarm about 1e-4 each)
Z = 4.0


def estimates(groups: int, tau: float, seed: int) -> pd.DataFrame:
    """Estimates ± 1 of ``groups`` groups whose true effects spread with sd ``tau``."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, tau, groups)
    return pd.DataFrame({"g": [f"s{j}" for j in range(groups)],
                         "y": theta + rng.standard_normal(groups), "se": 1.0})


def normal_normal_information(y: np.ndarray, se: np.ndarray, mu: float,
                              tau: float) -> np.ndarray:
    """−∇² of ℓ(μ, τ) = −½ Σ_j [log V_j + (y_j − μ)²/V_j], V_j = σ_j² + τ², by hand:
    ∂²ℓ/∂μ² = −Σ 1/V, ∂²ℓ/∂μ∂τ = −Σ 2τ(y − μ)/V²,
    ∂²ℓ/∂τ² = Σ [−1/V + 2τ²/V² + (y − μ)²/V² − 4τ²(y − μ)²/V³]."""
    v, r = se**2 + tau**2, y - mu
    h_mm = -np.sum(1 / v)
    h_mt = -np.sum(2 * tau * r / v**2)
    h_tt = np.sum(-1 / v + 2 * tau**2 / v**2 + r**2 / v**2 - 4 * tau**2 * r**2 / v**3)
    return -np.array([[h_mm, h_mt], [h_mt, h_tt]])


def test_observed_information_is_the_closed_form():
    """The finite-difference information of the normal–normal type-II likelihood at its
    maximum (τ̂ well inside) equals the hand-derived Hessian (above) to 1 %: its steps are
    a fifth of each standard error (the curvature on the likelihood's own scale), so the
    truncation error of the differences is of order (1/5)²/12 relative."""
    table = estimates(12, 3.0, seed=1)
    fit = Model(family="normal", method="eb-ml", draws=10, chains=1).fit(
        table, y="y", se="se", group="g")
    y, se = table["y"].to_numpy(), table["se"].to_numpy()

    def log_lik(points):
        v = se**2 + points[:, 1:2] ** 2
        return -0.5 * np.sum(np.log(v) + (y - points[:, 0:1]) ** 2 / v, axis=1)

    point = np.array([fit.eb.alpha, fit.eb.beta])
    expected = normal_normal_information(y, se, *point)
    assert point[1] > 1.0
    assert np.allclose(observed_information(log_lik, point), expected, rtol=1e-2, atol=1e-8)


def test_draws_of_a_gaussian_likelihood_are_that_gaussian():
    """A quadratic log likelihood is its own normal approximation: the weighted and the
    first-order draws both have its mean and covariance (within 4 Monte Carlo SEs of 4000
    draws), and a folded scale s ~ |N(0, 0.3²)| has the half-normal's mean 0.3·√(2/π)."""
    mean = np.array([1.0, -2.0])
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    precision = np.linalg.inv(cov)

    def log_lik(points):
        d = points - mean
        return -0.5 * np.einsum("pi,ij,pj->p", d, precision, d)

    size = 4000
    for weighted, method in ((True, WEIGHTED), (False, FIRST_ORDER)):
        found = hyperparameter_draws(log_lik, mean + 0.01, size, np.random.default_rng(2),
                                     weighted=weighted)
        assert found.method == method and found.draws is not None
        assert np.all(np.abs(found.draws.mean(axis=0) - mean)
                      < Z * np.sqrt(np.diag(cov) / size) + 0.0)
        assert np.allclose(np.cov(found.draws.T), cov, atol=Z * 0.5 * np.sqrt(2 / size))

    def scale(points):
        return -0.5 * (points[:, 0] / 0.3) ** 2

    folded = hyperparameter_draws(scale, [0.0], size, np.random.default_rng(3), folded=(0,))
    assert folded.draws is not None and np.all(folded.draws >= 0)
    half_normal_sd = 0.3 * np.sqrt(1 - 2 / np.pi)
    assert abs(folded.draws.mean() - 0.3 * np.sqrt(2 / np.pi)) < Z * half_normal_sd / np.sqrt(
        size)


def test_a_flat_likelihood_gives_no_correction():
    """A likelihood flat in one direction has no information: no draws, and the reason."""
    found = hyperparameter_draws(lambda p: -0.5 * p[:, 0] ** 2, [0.0, 1.0], 10,
                                 np.random.default_rng(0))
    assert found.draws is None and "flat" in str(found.problem)


def summary_sds(fit) -> pd.DataFrame:
    table = fit.summary().query("param == 'theta'")
    return table.set_index("group")[["sd", "mcse_mean", "lower", "upper"]]


def test_corrected_intervals_match_the_flat_prior_posterior():
    """eb-ml's corrected θ_j intervals (10 meta-analysis studies) are those of the posterior
    under a flat prior on (μ, τ), which ``exact`` computes independently by quadrature
    (the ``bda`` prior of the normal family): their sds agree within 4 Monte Carlo SEs
    (Rao-Blackwellised, about sd/√(2 · 4000) each), group by group. The plug-in intervals
    (the correction left out) are flagged by the same comparison: their sds are smaller by
    more than the tolerance, on average over the groups."""
    table = estimates(10, 1.0, seed=5)
    columns = {"y": "y", "se": "se", "group": "g"}
    exact = summary_sds(Model(family="normal", method="exact", prior="bda", seed=1).fit(
        table, **columns))
    corrected = summary_sds(Model(family="normal", method="eb-ml", seed=2).fit(
        table, **columns))
    plug_in = summary_sds(Model(family="normal", method="eb-ml", seed=2,
                                eb_intervals="plug-in").fit(table, **columns))
    tolerance = Z * np.sqrt(2.0) * exact["sd"] / np.sqrt(2 * 4000)
    assert np.all(np.abs(corrected["sd"] - exact["sd"]) < tolerance)
    shortfall = (exact["sd"] - plug_in["sd"]).mean()
    assert shortfall > Z * tolerance.mean() / np.sqrt(len(table)), shortfall


def test_boundary_estimate_still_has_wide_intervals():
    """Groups that vary no more than their noise: eb-js and eb-ml estimate τ̂ = 0
    (complete pooling), where the plug-in intervals of θ_j − μ̂ have width 0. Corrected,
    the scale τ is drawn from |N(0, I⁻¹)| (folded at 0) and every θ_j has an interval
    wider than the plug-in one, which is μ̂'s alone."""
    table = pd.DataFrame({"g": [f"s{j}" for j in range(8)],
                          "y": [0.1, -0.2, 0.05, 0.0, 0.15, -0.1, 0.2, -0.05], "se": 1.0})
    for method in ("eb-js", "eb-ml"):
        with pytest.warns(ConvergenceWarning):
            corrected = Model(family="normal", method=method, draws=1000, chains=2).fit(
                table, y="y", se="se", group="g")
            plug_in = Model(family="normal", method=method, draws=1000, chains=2,
                            eb_intervals="plug-in").fit(table, y="y", se="se", group="g")
        assert corrected.eb.corrected and not plug_in.eb.corrected
        width = summary_sds(corrected).eval("upper - lower")
        assert np.all(width > summary_sds(plug_in).eval("upper - lower") + 0.1)
        assert corrected.interval_notes()["theta"].startswith("Kass–Steffey")
        assert plug_in.interval_notes()["theta"].startswith("plug-in")


def test_nig_means_stay_the_estimates_and_intervals_widen():
    """NIG partial pooling: the means are the plug-in posterior means m*_j (the
    empirical-Bayes estimates), the intervals those of the corrected draws (wider on
    average than the plug-in draws'), and the label says which."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"g": np.repeat(list("ABCDEF"), 5)})
    table["v"] = rng.normal(np.repeat(rng.normal(0, 3, 6), 5), 2.0)
    fits = {s: NIGModel(draws=1000, chains=2, eb_intervals=s).fit(table, y="v", group="g")
            for s in ("kass-steffey", "plug-in")}
    theta = {s: f.summary().query("param == 'theta'") for s, f in fits.items()}
    np.testing.assert_allclose(theta["kass-steffey"]["mean"], theta["plug-in"]["mean"])
    widths = {s: (t["upper"] - t["lower"]).mean() for s, t in theta.items()}
    assert widths["kass-steffey"] > widths["plug-in"]
    assert fits["plug-in"].interval_notes()["theta, sigma2"].startswith("plug-in")


def test_cli_labels_the_intervals_and_keeps_plug_in(capsys):
    """The JSON's ``intervals`` names the correction, and ``--eb-intervals plug-in`` the
    plug-in intervals; the option is refused (exit 2, one line) for a method without
    estimates."""
    for option, start in (([], "Kass–Steffey"), (["--eb-intervals", "plug-in"], "plug-in")):
        code = main(["fit", "eight-schools", "--method", "eb-ml", "--draws", "200",
                     "--chains", "1", "--format", "json", *option])
        stdout, stderr = capsys.readouterr()
        assert code == 0, stderr
        assert json.loads(stdout)["intervals"]["theta"].startswith(start)
    code = main(["fit", "eight-schools", "--method", "exact", "--eb-intervals", "plug-in"])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "--eb-intervals is for method eb-ml" in stderr


def test_population_rows_of_rates_say_their_intervals_are_the_estimates_sampling(capsys):
    """eb-ml's α, β, μ, κ rows carry an sd and an interval from the estimates' sampling
    distribution, and say so (they were printed beside "point estimates" unlabelled)."""
    code = main(["fit", "rats", "--method", "eb-ml", "--draws", "200", "--chains", "1",
                 "--format", "json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert json.loads(stdout)["intervals"]["alpha, beta, mu, kappa"].startswith(
        "sampling distribution")
