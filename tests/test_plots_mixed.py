"""Plots of mixed models: the numbers each draws, checked against direct computations from
the draws (and least squares), the errors for what they cannot draw, and one smoke render
per figure; plus trace plots of a MixedFit."""

from __future__ import annotations

import io
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poolwise import MixedModel, SamplingWarning, SpecificationError, datasets, plots

matplotlib.use("Agg")

DRAWS, WARMUP, CHAINS = 200, 200, 2
FORMULA = "Reaction ~ Days + (Days | Subject)"
POOLINGS = ("none", "complete", "partial")


def _fit(formula: str, data: pd.DataFrame, **kwargs):
    """A small NUTS fit; its convergence warnings are expected at this size."""
    settings = {"draws": DRAWS, "warmup": WARMUP, "chains": CHAINS, "seed": 11, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return MixedModel(formula=formula, **settings).fit(data)


def _reml(formula: str, data: pd.DataFrame):
    return MixedModel(formula=formula, method="eb-ml", draws=100).fit(data)


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fits(sleep: pd.DataFrame) -> dict:
    return {p: _fit(FORMULA, sleep, pooling=p) for p in POOLINGS}


@pytest.fixture(scope="module")
def reml(sleep: pd.DataFrame):
    return _reml(FORMULA, sleep)


def flat(fit, name: str) -> np.ndarray:
    """Draws of a variable with chains pooled: (draws, ...)."""
    values = fit.draws(name)
    return values.reshape(-1, *values.shape[2:])


def line_at(data, model: str, group: str, x: float) -> pd.Series:
    lines = data.lines
    row = lines[(lines["model"] == model) & (lines["group"] == group)
                & np.isclose(lines["x"], x)]
    assert len(row) == 1
    return row.iloc[0]


def render(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


# ------------------------------------------------------------------------- group lines
def test_partial_line_is_the_posterior_mean_of_b_plus_r(fits):
    fit = fits["partial"]
    data = plots.group_lines_data(fits)
    assert data.x == "Days" and data.factor == "Subject" and data.response == "Reaction"
    assert len(data.groups) == 18 and data.groups[0] == "308"
    b, r = flat(fit, "b"), flat(fit, "r_Subject")
    subject = list(fit.design.terms[0].levels).index("308")
    line = b[:, 0] + r[:, subject, 0] + (b[:, 1] + r[:, subject, 1]) * 3
    got = line_at(data, "partial", "308", 3.0)
    assert got["mean"] == pytest.approx(line.mean(), rel=1e-10)
    assert [got["lower"], got["upper"]] == pytest.approx(np.quantile(line, [0.025, 0.975]))
    assert got["pooling"] == "partial"
    # the data points are the subject's rows
    points = data.points[data.points["group"] == "308"]
    assert len(points) == 10 and points["x"].tolist() == list(range(10))


def test_complete_line_is_shared_and_none_lines_are_least_squares(fits, sleep):
    data = plots.group_lines_data(fits, "Days")
    b = flat(fits["complete"], "b")
    complete = data.lines[data.lines["model"] == "complete"]
    for x in (0.0, 9.0):
        at = complete[np.isclose(complete["x"], x)]
        assert len(at) == 18
        np.testing.assert_allclose(at["mean"], (b[:, 0] + b[:, 1] * x).mean(), rtol=1e-10)
    none = fits["none"]
    coefs = list(none.posterior["b"].coords["coef"].values)
    b_none = flat(none, "b")
    for subject, rows in sleep.groupby("Subject"):
        intercept = b_none[:, coefs.index(f"Intercept[{subject}]")]
        slope = b_none[:, coefs.index(f"Days[{subject}]")]
        ls = np.polyfit(rows["Days"], rows["Reaction"], 1)[::-1]  # wide priors: ≈ least squares
        for x in (0.0, 9.0):
            got = line_at(data, "none", str(subject), x)
            draws = intercept + slope * x
            assert got["mean"] == pytest.approx(draws.mean(), rel=1e-10)
            # 4.5 Monte Carlo standard errors with an effective sample size of at least 150
            assert abs(got["mean"] - (ls[0] + ls[1] * x)) < 4.5 * draws.std() / np.sqrt(150)


def test_reml_lines_are_the_point_estimates(reml):
    data = plots.group_lines_data({"reml": reml}, ci_prob=0.9)
    est = reml.estimate
    modes = est.random_effects["Subject"]
    subject = list(reml.design.terms[0].levels).index("309")
    got = line_at(data, "reml", "309", 4.0)
    expected = est.beta[0] + modes[subject, 0] + (est.beta[1] + modes[subject, 1]) * 4
    assert got["mean"] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(got["lower"]) and np.isnan(got["upper"])


def test_poisson_lines_apply_the_inverse_link():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(6), 5)
    x = np.tile(np.arange(5.0), 6)
    exposure = rng.uniform(1, 3, g.size)
    y = rng.poisson(exposure * np.exp(0.5 + rng.normal(0, 0.3, 6)[g] + 0.2 * x))
    table = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "exposure": exposure})
    fit = _fit("y ~ x + offset(log(exposure)) + (1 | g)", table, family="poisson",
               draws=100, warmup=150)
    data = plots.group_lines_data(fit)
    b, r = flat(fit, "b"), flat(fit, "r_g")
    got = line_at(data, "partial pooling", "g2", 2.0)
    assert got["mean"] == pytest.approx(np.exp(b[:, 0] + r[:, 2, 0] + b[:, 1] * 2).mean())
    assert data.response == "y per unit exposure"
    np.testing.assert_allclose(data.points["y"], y / exposure)


def test_group_selection(fits):
    chosen = plots.group_lines_data(fits["partial"], groups=["337", "308"])
    assert chosen.groups == ("337", "308")
    assert set(chosen.points["group"]) == {"337", "308"}
    assert set(chosen.lines["group"]) == {"337", "308"}
    few = plots.group_lines_data(fits, max_groups=5)
    assert len(few.groups) == 5 and "5 of 18" in few.note
    means = [few.points.loc[few.points["group"] == g, "y"].mean() for g in few.groups]
    assert means == sorted(means)  # evenly spaced by mean response, in that order


def test_group_lines_errors(fits, sleep, reml):
    with pytest.raises(SpecificationError, match="candidates are Days"):
        plots.group_lines_data(fits, "Hours")
    with pytest.raises(SpecificationError, match="unknown Subject '999'"):
        plots.group_lines_data(fits, groups=["308", "999"])
    with pytest.raises(SpecificationError, match="same data"):
        plots.group_lines_data({"all": reml, "half": _reml(FORMULA, sleep.iloc[:90])})
    with pytest.raises(TypeError, match="MixedFit"):
        plots.group_lines_data({"x": object()})  # type: ignore[dict-item]
    extra = sleep.assign(Noise=np.sin(np.arange(len(sleep))))
    two = _reml("Reaction ~ Days + Noise + (1 | Subject)", extra)
    with pytest.raises(SpecificationError, match=r"ambiguous.*Days, Noise"):
        plots.group_lines_data(two)
    with pytest.raises(SpecificationError, match="also has Noise"):
        plots.group_lines_data(two, "Days")


# ------------------------------------------------------------------------- group effects
def test_group_effects_data(fits, reml):
    fit = fits["partial"]
    table = plots.group_effects_data(fit, ci_prob=0.9)
    assert len(table) == 36 and list(dict.fromkeys(table["effect"])) == ["Intercept", "Days"]
    r = flat(fit, "r_Subject")
    days = table[table["effect"] == "Days"]
    np.testing.assert_allclose(days["mean"], r[:, :, 1].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(days["lower"], np.quantile(r[:, :, 1], 0.05, axis=0))
    intercept = table[table["effect"] == "Intercept"].sort_values("row")
    assert np.all(np.diff(intercept["mean"]) >= 0)  # rows follow the intercepts' means
    by_days = plots.group_effects_data(fit, "r_Subject", sort_by="Days")
    assert np.all(np.diff(by_days[by_days["effect"] == "Days"].sort_values("row")["mean"]) >= 0)
    modes = plots.group_effects_data(reml)
    np.testing.assert_allclose(modes["mean"][:18], reml.estimate.random_effects["Subject"][:, 0])
    assert modes["lower"].isna().all()
    with pytest.raises(SpecificationError, match="no pooling fit has no group effects"):
        plots.group_effects_data(fits["none"])
    with pytest.raises(SpecificationError, match="no grouping factor 'Days'"):
        plots.group_effects_data(fit, "Days")
    with pytest.raises(SpecificationError, match="sort_by"):
        plots.group_effects_data(fit, sort_by="Reaction")


# ------------------------------------------------------------------------- trace
def test_trace_data_of_a_mixed_fit(fits):
    fit = fits["partial"]
    names = list(plots.trace_data(fit).diagnostics["variable"])
    assert names == ["b[Intercept]", "b[Days]", "sigma", "sd_Subject[Intercept]",
                     "sd_Subject[Days]", "cor_Subject[Days, Intercept]",
                     "r_Subject[308, Intercept]", "r_Subject[308, Days]"]
    chosen = plots.trace_data(fit, ["b[Days]", "r_Subject[309,Days]",
                                    "cor_Subject[Intercept, Days]", "r_Subject[310]"])
    assert list(chosen.diagnostics["variable"]) == [
        "b[Days]", "r_Subject[309, Days]", "cor_Subject[Days, Intercept]",
        "r_Subject[310, Intercept]", "r_Subject[310, Days]"]
    draws = chosen.draws.set_index("variable")
    np.testing.assert_array_equal(draws.loc["r_Subject[309, Days]", "value"],
                                  fit.draws("r_Subject")[:, :, 1, 1].ravel())
    np.testing.assert_array_equal(draws.loc["cor_Subject[Days, Intercept]", "value"],
                                  fit.draws("cor_Subject")[:, :, 1, 0].ravel())
    wide = plots.trace_data(fit, ["r_Subject"], max_theta=4)
    assert len(wide.diagnostics) == 4  # two whole levels of two effects
    none = list(plots.trace_data(fits["none"]).diagnostics["variable"])
    assert none == ["b[Intercept[308]]", "b[Days[308]]", "sigma"]
    with pytest.raises(SpecificationError, match="the levels are '308'"):
        plots.trace_data(fit, ["r_Subject[999, Days]"])
    with pytest.raises(SpecificationError, match="sd_Subject has sd_Subject"):
        plots.trace_data(fit, ["sd_Subject[Hours]"])
    with pytest.raises(SpecificationError, match="no variable 'theta'"):
        plots.trace_data(fit, ["theta"])


def test_trace_of_a_reml_fit_shows_its_draws_given_the_estimates(reml):
    """eb-ml fits hold draws of β and the group effects given the REML estimates (σ and the
    sds constant); they are independent draws, not Markov chains."""
    assert not reml.is_mcmc
    data = plots.trace_data(reml, ["b[Days]", "sigma"])
    draws = data.draws.set_index("variable")
    np.testing.assert_array_equal(draws.loc["b[Days]", "value"],
                                  reml.draws("b")[..., 1].ravel())
    assert np.all(draws.loc["sigma", "value"] == reml.estimate.sigma)


# ------------------------------------------------------------------------- figures
def test_plot_group_lines(fits):
    fig = plots.plot_group_lines(fits)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 18
    # each panel: a band (partial), three lines and the data
    assert len(visible[0].get_lines()) == 4 and len(visible[0].collections) == 1
    legend = fig.subfigs[1].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "data", "no pooling", "complete pooling", "partial pooling",
        "partial pooling: 95% interval"]
    render(fig)
    five = plots.plot_group_lines(fits["partial"], groups=["308", "309", "310", "330", "331"])
    assert sum(ax.get_visible() for ax in five.axes) == 5
    render(five)


def test_plot_group_effects(fits):
    fig = plots.plot_group_effects(fits["partial"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].get_yticklabels()) == 18
    render(fig)


def test_plot_trace_of_a_mixed_fit(fits):
    fig = plots.plot_trace(fits["partial"], ["b", "sd_Subject[Days]"])
    assert len(fig.axes) == 2 * 3 and len(fig.axes[0].get_lines()) == CHAINS
    render(fig)


def test_trace_of_importance_draws_gives_the_weights_ess_and_no_r_hat(fits):
    """Resampled importance draws repeat: ArviZ's ESS of them (4,003 of 4,000) and R̂ say
    nothing; the titles give the weights' ESS, as the summary does."""
    fit = fits["partial"]
    assert fit.method == "importance"
    fig = plots.plot_trace(fit, ["b[Days]"])
    assert fig.axes[0].get_title(loc="left") == f"b[Days]   (ESS = {fit.info['ess']:,.0f})"
    assert "resampled importance draws" in fig._suptitle.get_text()


def test_a_two_level_factor_is_drawn_at_its_levels_not_along_0_to_1():
    # extra ~ group: the fixed column group[2] is 0/1; lines join the two drugs' means
    fit = _reml("extra ~ group + (1 | ID)", datasets.load("sleep"))
    data = plots.group_lines_data(fit)
    assert data.x == "group[2]" and data.categories == ("group", "1", "2")
    assert sorted(data.lines["x"].unique()) == [0.0, 1.0]
    b, r = fit.estimate.beta, fit.estimate.random_effects["ID"]
    row = line_at(data, "partial pooling", "3", 1.0)  # subject 3 given drug 2
    subject = list(fit.design.terms[0].levels).index("3")
    assert row["mean"] == pytest.approx(b[0] + b[1] + r[subject, 0])
    fig = plots.plot_group_lines(fit)
    bottom = [ax for ax in fig.axes if ax.get_visible()][-1]
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["1", "2"]
    assert "against group by ID" in fig._suptitle.get_text()
    render(fig)


def test_many_levels_make_a_caterpillar_that_says_how_many():
    rng = np.random.default_rng(1)
    levels = 200
    subject = np.repeat(np.arange(levels), 3)
    table = pd.DataFrame({"subject": [f"s{i}" for i in subject],
                          "x": np.tile([0.0, 1, 2], levels)})
    table["y"] = table["x"] + rng.normal(0, 2, levels)[subject] + rng.normal(0, 1, subject.size)
    fit = _reml("y ~ x + (1 | subject)", table)
    fig = plots.plot_group_effects(fit)
    ax = fig.axes[0]
    assert fig.get_figheight() <= 7  # not one row-height per level
    assert "all 200 levels" in fig._suptitle.get_text()
    assert ax.get_ylabel() == "subject: 200 levels by rank of Intercept"
    assert not any(t.get_text().startswith("s") for t in ax.get_yticklabels())  # unnamed
    (dots,) = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots.get_xdata()) == 200  # every level drawn
    assert ax.get_ylim() == (-0.5, 199.5)
    render(fig)
