"""Meta-analysis outputs of the normal family: I², a new study's effect, the forest's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import poolwise
from poolwise.cli import main
from poolwise.families.normal_normal import i_squared, typical_variance
from poolwise.outputs.plots.forest import _pooled_rows

Z = 4.0


@pytest.fixture(scope="module")
def aspirin():
    return poolwise.datasets.load("aspirin")


def test_i_squared_is_higgins_and_thompsons_q_statistic(aspirin):
    """At the DerSimonian-Laird τ², τ²/(τ² + s²) = (Q − (k − 1))/Q exactly (Higgins and
    Thompson 2002, §3), Q = Σ w (y − ȳ_w)², w = 1/σ²."""
    y, se = aspirin["y"].to_numpy(float), aspirin["sd"].to_numpy(float)
    w = 1 / se**2
    pooled = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - pooled) ** 2))
    df = y.size - 1
    tau2 = max(0.0, (q - df) / (w.sum() - np.sum(w**2) / w.sum()))
    assert float(i_squared(np.sqrt(tau2), se)) == pytest.approx((q - df) / q, rel=1e-12)
    # equal standard errors: the typical variance is their square
    assert typical_variance(np.full(5, 3.0)) == pytest.approx(9.0)


def test_full_bayes_adds_a_new_studys_effect_and_i_squared(aspirin):
    fit = poolwise.fit(aspirin, y="y", se="sd", group="study", seed=3)
    table = fit.summary().set_index("param")
    assert {"theta_new", "I2"} <= set(table.index)
    mu, tau = fit.draws("mu").ravel(), fit.draws("tau").ravel()
    new = fit.draws("theta_new").ravel()
    size = new.size
    # E[θ_new] = E[μ]; Var[θ_new] = Var[μ] + E[τ²] (the law of total variance)
    assert abs(new.mean() - mu.mean()) < Z * new.std() / np.sqrt(size)
    expected = mu.var() + np.mean(tau**2)
    se_var = np.sqrt((np.mean((new - new.mean()) ** 4) - new.var() ** 2) / size)
    assert abs(new.var() - expected) < Z * se_var
    np.testing.assert_allclose(fit.draws("I2").ravel(), i_squared(tau, aspirin["sd"]))
    assert table.loc["theta_new", "upper"] - table.loc["theta_new", "lower"] > (
        table.loc["mu", "upper"] - table.loc["mu", "lower"])  # wider than μ's interval


def test_empirical_bayes_gives_the_closed_form(aspirin):
    fit = poolwise.fit(aspirin, y="y", se="sd", group="study", method="eb-ml")
    table = fit.summary(0.9).set_index("param")
    mu, tau = fit.eb.alpha, fit.eb.beta
    assert table.loc["theta_new", "mean"] == pytest.approx(mu)
    assert table.loc["theta_new", "upper"] == pytest.approx(stats.norm(mu, tau).ppf(0.95))
    assert table.loc["I2", "mean"] == pytest.approx(float(i_squared(tau, aspirin["sd"])))
    assert table.loc["I2", "lower"] < table.loc["I2", "mean"] < table.loc["I2", "upper"]


def test_forest_rows_and_json(aspirin, capsys):
    fit = poolwise.fit(aspirin, y="y", se="sd", group="study", seed=1)
    rows = _pooled_rows(fit, 0.95)
    assert [r[0] for r in rows] == ["pooled effect μ", "prediction (a new study's θ)"]
    rats = poolwise.datasets.load("rats").query("historical == 1")
    assert _pooled_rows(poolwise.fit(rats, y="y", n="n", method="eb-moments"), 0.95) == []
    assert main(["fit", "aspirin", "--format", "json"]) == 0
    params = {row["param"] for row in json.loads(capsys.readouterr().out)["summary"]}
    assert {"mu", "tau", "theta_new", "I2"} <= params


def test_theta_new_in_the_summary_is_the_new_group_prediction():
    """One set of draws of a new study's θ: the summary's row, ``predict(NewGroup())`` and
    hence the new-group figure agree exactly."""
    schools = poolwise.datasets.load("eight-schools")
    fit = poolwise.fit(schools, y="y", se="sigma", group="school", draws=500, seed=4)
    predicted = fit.predict(poolwise.NewGroup())["theta"]
    np.testing.assert_array_equal(fit.draws("theta_new").ravel(), np.ravel(predicted))
