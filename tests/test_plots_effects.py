"""Conditional effects of mixed models: the lines and bands checked against the draws of β
computed here (the linear predictor by hand, the inverse link applied), the values held
for the other predictors, categories drawn as points, and what is refused."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import special

from poolwise import MixedModel, SamplingWarning, SpecificationError, datasets, plots

matplotlib.use("Agg")


def reml(formula: str, data: pd.DataFrame, **kwargs):
    return MixedModel(formula=formula, method="eb-ml", draws=400, seed=3, **kwargs).fit(data)


def beta(fit) -> dict[str, np.ndarray]:
    """Draws of each fixed coefficient, chains pooled."""
    names = [str(c) for c in fit.posterior["b"].coords["coef"].values]
    draws = fit.draws("b").reshape(-1, len(names))
    return {name: draws[:, k] for k, name in enumerate(names)}


def panel(effects, predictor: str) -> pd.DataFrame:
    return effects.table[effects.table["predictor"] == predictor].reset_index(drop=True)


@pytest.fixture(scope="module")
def sleepstudy_fit():
    return reml("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def interaction():
    """y ~ x * f + (1 | g): a numeric and a three-level factor that interact."""
    rng = np.random.default_rng(5)
    size = 240
    table = pd.DataFrame({"x": rng.uniform(2, 8, size), "f": rng.choice(["a", "b", "c"], size),
                          "g": rng.integers(0, 12, size).astype(str)})
    slope = table["f"].map({"a": 1.0, "b": -0.5, "c": 2.0})
    table["y"] = 1 + slope * table["x"] + rng.normal(0, 1, size) + table["g"].astype(int) / 6
    return table, reml("y ~ x * f + (1 | g)", table)


def test_numeric_line_is_the_mean_of_the_linear_predictor(sleepstudy_fit):
    effects = plots.conditional_effects_data(sleepstudy_fit)
    assert effects.reference == {"Days": 4.5} and effects.trials is None
    days = panel(effects, "Days")
    # the grid spans the observed range and holds every observed day
    assert days["position"].min() == 0 and days["position"].max() == 9
    assert set(range(10)) <= set(days["position"])
    b = beta(sleepstudy_fit)
    for x in (0.0, 3.0, 9.0):
        row = days[np.isclose(days["position"], x)].iloc[0]
        line = b["Intercept"] + b["Days"] * x  # group effects at 0
        assert row["mean"] == pytest.approx(line.mean(), rel=1e-9)
        assert (row["lower"], row["upper"]) == pytest.approx(
            tuple(np.quantile(line, [0.025, 0.975])), rel=1e-9)
    # the credible band holds the line, the predictive band (σ added) holds the credible one
    assert (days["lower"] <= days["mean"]).all() and (days["mean"] <= days["upper"]).all()
    assert (days["pred_lower"] < days["lower"]).all()
    assert (days["upper"] < days["pred_upper"]).all()
    # a new observation's spread is about √(σ² + var E[y]): REML σ = 25.59 (lme4)
    width = (days["pred_upper"] - days["pred_lower"]).mean() / (2 * 1.96)
    assert width == pytest.approx(np.hypot(25.59, 7), rel=0.15)


def test_interaction_holds_the_others_at_reference(interaction):
    table, fit = interaction
    effects = plots.conditional_effects_data(fit)
    assert effects.reference == {"x": pytest.approx(table["x"].mean()), "f": "a"}
    b = beta(fit)
    x = panel(effects, "x")
    row = x.iloc[-1]  # the largest x, with f at its reference level "a"
    assert row["mean"] == pytest.approx(
        (b["Intercept"] + b["x"] * row["position"]).mean(), rel=1e-9)
    f = panel(effects, "f")
    assert list(f["value"]) == ["a", "b", "c"] and f["categorical"].all()
    assert list(f["position"]) == [0, 1, 2]
    mean_x = table["x"].mean()
    for level in ("b", "c"):  # x at its mean: the interaction's coefficient counts
        expected = b["Intercept"] + b[f"f[{level}]"] + (b["x"] + b[f"x:f[{level}]"]) * mean_x
        assert f.loc[f["value"] == level, "mean"].item() == pytest.approx(expected.mean(),
                                                                           rel=1e-9)


def test_factor_is_drawn_as_points_with_intervals():
    fit = reml("extra ~ group + (1 | ID)", datasets.load("sleep"))
    effects = plots.conditional_effects_data(fit)
    group = panel(effects, "group")
    assert list(group["value"]) == [1, 2]
    assert group.loc[1, "mean"] - group.loc[0, "mean"] == pytest.approx(
        beta(fit)["group[2]"].mean(), rel=1e-9)
    fig = plots.plot_conditional_effects(fit)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(points) == 1 and points[0].get_linestyle() == "None"
    assert list(points[0].get_xdata()) == [0, 1]
    # two intervals per level: the predictive one, then the credible one around the point
    predictive, credible = ax.collections
    assert len(predictive.get_segments()) == len(credible.get_segments()) == 2
    for outer, inner, mean in zip(predictive.get_segments(), credible.get_segments(),
                                  group["mean"], strict=True):
        assert outer[0, 1] < inner[0, 1] < mean < inner[1, 1] < outer[1, 1]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["posterior mean of E[y]", "95% credible interval of E[y]",
                      "95% predictive interval of a new observation"]


def test_binomial_effects_are_proportions_on_the_response_scale():
    rng = np.random.default_rng(8)
    size = 120
    table = pd.DataFrame({"x": rng.normal(0, 1, size), "g": rng.integers(0, 8, size),
                          "n": rng.integers(10, 31, size)})
    table["y"] = rng.binomial(table["n"], special.expit(-0.5 + 0.8 * table["x"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = MixedModel(formula="y | trials(n) ~ x + (1 | g)", family="binomial",
                         draws=150, warmup=150, chains=2, seed=2).fit(table)
    effects = plots.conditional_effects_data(fit)
    assert effects.trials == np.median(table["n"]).round()
    x = panel(effects, "x")
    b = beta(fit)
    for _, row in x.iloc[[0, 30, -1]].iterrows():
        p = special.expit(b["Intercept"] + b["x"] * row["position"])
        assert row["mean"] == pytest.approx(p.mean(), rel=1e-9)
    assert ((0 <= x["pred_lower"]) & (x["pred_upper"] <= 1)).all()
    assert x["mean"].is_monotonic_increasing  # the fitted slope is positive


def test_offset_columns_are_held_not_drawn():
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"x": rng.normal(0, 1, 150), "g": rng.integers(0, 6, 150),
                          "exposure": rng.uniform(10, 100, 150)})
    table["y"] = rng.poisson(table["exposure"] * np.exp(-2 + 0.3 * table["x"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = MixedModel(formula="y ~ x + offset(log(exposure)) + (1 | g)", family="poisson",
                         draws=100, warmup=100, chains=1, seed=1).fit(table)
    effects = plots.conditional_effects_data(fit)
    assert set(effects.table["predictor"]) == {"x"}
    held = effects.reference["exposure"]
    assert held == pytest.approx(table["exposure"].mean())
    x, b = panel(effects, "x"), beta(fit)
    row = x.iloc[-1]  # the expected count at the mean exposure
    expected = held * np.exp(b["Intercept"] + b["x"] * row["position"])
    assert row["mean"] == pytest.approx(expected.mean(), rel=1e-9)


def test_refused_without_population_predictions_or_predictors(sleepstudy_fit):
    sleep = datasets.load("sleepstudy")
    with pytest.raises(SpecificationError, match="no-pooling"):
        plots.conditional_effects_data(
            reml("Reaction ~ Days + (Days | Subject)", sleep, pooling="none"))
    with pytest.raises(SpecificationError, match="no predictor"):
        plots.conditional_effects_data(reml("Reaction ~ 1 + (1 | Subject)", sleep))
    with pytest.raises(SpecificationError, match="between 0 and 1"):
        plots.conditional_effects_data(sleepstudy_fit, ci_prob=1.5)


def test_plot_has_one_panel_per_predictor(interaction):
    _, fit = interaction
    fig = plots.plot_conditional_effects(fit)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in visible] == ["x", "f"]
    assert visible[0].get_title() == "others at f = a"
    assert visible[1].get_title().startswith("others at x = ")
