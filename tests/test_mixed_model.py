"""MixedModel end to end (formula → priors → NUTS or REML → summary and predictions), each
result checked against something computed independently of the mixed-model code.

* Simulation-based calibration of a nested three-level model, y ~ 1 + (1 | school/classroom):
  parameters drawn from the very priors given to the model, data from the parameters, then
  a fit; the 90% (and 50%) posterior intervals cover the truth a Binomial(R, level) number
  of times when the posterior is right (Cook, Gelman and Rubin 2006; Talts et al. 2018).
* Student's (1908) sleep trial, extra ~ group + (1 | ID): the drug difference against the
  classical paired t analysis (scipy), each drug's mean against its sample mean.
* sleepstudy under the three poolings against least squares computed with NumPy: no pooling
  ≈ per-subject OLS, complete pooling ≈ one OLS line, partial pooling shrinks in between.
* Every prediction request against the same quantities computed from the posterior
  arrays, and the spread of new-group predictions against the law of total variance.
* eb-ml: REML's summary, and draws given the REML estimates centred on β̂ and the
  conditional modes with REML's standard errors.
* Binomial (trials) and Poisson (offset) GLMMs through formulas recover simulated values.
* The contract every kind keeps: save → load → the same summary and predictions, the
  posterior and prior predictive, the seed.
* Bad input is refused with messages that say what to do.

Without the slow calibration test it runs in a few minutes on two cores; each fit compiles
its own NUTS program (2-3 s, most of the cost of the small fits).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import poolwise
from poolwise import (
    DataError,
    ExistingGroup,
    MixedFit,
    MixedModel,
    NewGroup,
    NewGroupIn,
    NewRows,
    Population,
    SamplingWarning,
    SpecificationError,
    datasets,
)
from poolwise.results.checks import CHECK_COLUMNS

SEED = 20261123
FORMULA = "Reaction ~ Days + (Days | Subject)"


def _fit_quietly(model: MixedModel, data: Any) -> tuple[MixedFit, list[str]]:
    """Fit, returning the diagnostic warnings instead of raising them (pytest makes
    warnings errors; the calibration fits are short and some warn about ESS)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        fit = model.fit(data)
    return fit, [str(w.message) for w in caught]


def _rows(prediction: poolwise.Prediction, name: str, ci_prob: float = 0.95) -> pd.DataFrame:
    """The summary rows of one per-row variable (``mu`` or ``y``), in row order."""
    table = prediction.summary(ci_prob)
    return table[table["param"] == name].reset_index(drop=True)


# ------------------------------------------------------------------ three-level calibration

#: the generating distribution, and the priors of the fitted model: the same
SBC_PRIORS = ("b[Intercept] = normal(0, 1); sigma = halfnormal(1); "
              "sd[school] = halfnormal(1); sd[school:classroom] = halfnormal(1)")
SBC_SCHOOLS, SBC_CLASSROOMS, SBC_STUDENTS = 10, 3, 5
#: replications: each fit compiles afresh (2-4 s), so R is modest and the test slow
SBC_REPLICATIONS = 20
#: two-sided false-alarm probability of each coverage band
SBC_ALPHA = 0.001
SBC_COMPONENTS = ("b[Intercept]", "sigma", "sd_school[Intercept]",
                  "sd_school:classroom[Intercept]")
SBC_FORMULA = "y ~ 1 + (1 | school/classroom)"


def simulate_three_levels(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """μ ~ N(0, 1), σ, σ_school, σ_class ~ HalfNormal(1) (as SBC_PRIORS), then students in
    classrooms in schools: y = μ + u_school + v_classroom + ε."""
    mu = rng.normal(0.0, 1.0)
    sigma, sd_school, sd_class = np.abs(rng.normal(0.0, 1.0, size=3))
    n_classes = SBC_SCHOOLS * SBC_CLASSROOMS
    school = np.repeat(np.arange(SBC_SCHOOLS), SBC_CLASSROOMS * SBC_STUDENTS)
    classroom = np.repeat(np.arange(n_classes), SBC_STUDENTS)
    y = (mu + rng.normal(0.0, sd_school, SBC_SCHOOLS)[school]
         + rng.normal(0.0, sd_class, n_classes)[classroom]
         + rng.normal(0.0, sigma, classroom.size))
    # classroom labels repeat across schools ("a" in every school): only school/classroom
    # (nesting) tells them apart
    table = pd.DataFrame({"y": y, "school": [f"s{s}" for s in school],
                          "classroom": [chr(ord("a") + c % SBC_CLASSROOMS) for c in classroom]})
    truth = {"b[Intercept]": mu, "sigma": sigma, "sd_school[Intercept]": sd_school,
             "sd_school:classroom[Intercept]": sd_class}
    return table, truth


def binomial_band(replications: int, level: float, alpha: float) -> tuple[int, int]:
    """Counts k with P(X ≤ k) > α/2 and P(X ≥ k) > α/2 for X ~ Binomial(R, level)."""
    accepted = [k for k in range(replications + 1)
                if stats.binom.cdf(k, replications, level) > alpha / 2
                and stats.binom.sf(k - 1, replications, level) > alpha / 2]
    return min(accepted), max(accepted)


def test_nested_design_has_the_expected_terms() -> None:
    table, _ = simulate_three_levels(np.random.default_rng(0))
    data = MixedModel(formula=SBC_FORMULA, prior=SBC_PRIORS).prepare(table)
    school, classroom = data.design.terms
    assert (school.factor, classroom.factor) == ("school", "school:classroom")
    assert (school.n_levels, classroom.n_levels) == (SBC_SCHOOLS, SBC_SCHOOLS * SBC_CLASSROOMS)
    assert data.priors.describe() == [
        "b[Intercept] ~ Normal(0, 1)", "sigma ~ HalfNormal(1)",
        "sd_school[Intercept] ~ HalfNormal(1)",
        "sd_school:classroom[Intercept] ~ HalfNormal(1)"]


@pytest.mark.full  # make test: test_calibration's fast SBC of mixed models
def test_nested_three_level_calibration() -> None:
    """Simulation-based calibration: with the priors equal to the generating distribution,
    each component's 90% interval covers its truth Binomial(R, 0.9) times (50%: Binomial(R,
    0.5)) if the posterior is right; the bands have false-alarm probability 0.001 each.

    The engine builds and compiles a new NUTS program for every fit, even for data of the
    same shape (the data enter the program as constants), about 2-4 s of the 3-5 s per fit
    on two cores, so R = 20 (about 60-90 s); the bands are wide (90%: 13-20 of 20) and catch
    gross miscalibration only (e.g. intervals of the wrong component or far too narrow)."""
    rng = np.random.default_rng(SEED)
    levels = (0.9, 0.5)
    covered = {level: dict.fromkeys(SBC_COMPONENTS, 0) for level in levels}
    divergences = 0
    for r in range(SBC_REPLICATIONS):
        data, truth = simulate_three_levels(rng)
        model = MixedModel(formula=SBC_FORMULA, prior=SBC_PRIORS, method="nuts", draws=300,
                           warmup=300, chains=2, seed=SEED + r)
        fit, _ = _fit_quietly(model, data)
        divergences += fit.info["divergences"]
        for level in levels:
            summary = fit.summary(ci_prob=level, diagnostics=False).set_index("param")
            for name in SBC_COMPONENTS:
                covered[level][name] += int(summary.loc[name, "lower"] <= truth[name]
                                            <= summary.loc[name, "upper"])
    print(f"coverage of {SBC_REPLICATIONS} replications: {covered}; {divergences} divergences")
    # the marginal sampler has no funnel: at most one divergence per fit on average
    assert divergences <= SBC_REPLICATIONS
    for level in levels:
        low, high = binomial_band(SBC_REPLICATIONS, level, SBC_ALPHA)
        for name, count in covered[level].items():
            assert low <= count <= high, (
                f"{name}: {level:.0%} intervals covered the truth {count} of "
                f"{SBC_REPLICATIONS} times, outside [{low}, {high}]")


# ------------------------------------------------------------------ Student's sleep trial


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return datasets.load("sleep")


@pytest.fixture(scope="module")
def sleep_fit(sleep: pd.DataFrame) -> MixedFit:
    model = MixedModel(formula=datasets.info("sleep").formula, draws=1000, warmup=1000,
                       chains=4, seed=SEED)
    return model.fit(sleep)


def test_sleep_formula_names_the_drug_difference(sleep: pd.DataFrame) -> None:
    data = MixedModel(formula="extra ~ group + (1 | ID)").prepare(sleep)
    assert data.design.fixed_names == ("Intercept", "group[2]")
    assert [t.factor for t in data.design.terms] == ["ID"]


def test_sleep_drug_difference_agrees_with_paired_t(sleep: pd.DataFrame, sleep_fit) -> None:
    """Classical: mean paired difference 1.58, se 0.389, t₉ 95% interval (0.70, 2.46).

    With a random intercept per person the difference is estimated from within-person
    contrasts, so given σ its posterior is N(d̄, 2σ²/10): the centre is d̄ up to the
    negligible shrinkage of the N(0, 9.8) prior (< 0.01) and Monte Carlo error. Averaging
    over σ gives a t-like posterior; the weakly informative HalfNormal prior on σ is nearly
    flat where σ lies, which costs about one degree of freedom against the t test's
    Jeffreys-like 1/σ (t₈ instead of t₉) and widens the interval by 5-10%. So: the sd within
    20% of the t₉ distribution's sd 0.389·√(9/7) = 0.441 and each end of the 95% interval
    within 0.15 (a sixth of its half-width) of the t interval's."""
    wide = sleep.pivot(index="ID", columns="group", values="extra")
    differences = (wide[2] - wide[1]).to_numpy()
    test = stats.ttest_rel(wide[2], wide[1])
    t_interval = test.confidence_interval(0.95)
    se = differences.std(ddof=1) / np.sqrt(differences.size)
    assert differences.mean() == pytest.approx(1.58)
    assert se == pytest.approx(0.389, abs=5e-4)
    assert (t_interval.low, t_interval.high) == pytest.approx((0.70, 2.46), abs=5e-3)

    row = sleep_fit.summary(ci_prob=0.95).set_index("param").loc["b[group[2]]"]
    assert abs(row["mean"] - differences.mean()) < 4 * row["mcse_mean"] + 0.01
    t_sd = se * np.sqrt(9 / 7)
    assert row["sd"] == pytest.approx(t_sd, rel=0.2)
    assert row["lower"] == pytest.approx(t_interval.low, abs=0.15)
    assert row["upper"] == pytest.approx(t_interval.high, abs=0.15)
    assert (sleep_fit.draws("b")[..., 1] > 0).mean() > 0.99  # the second drug helps more


def test_sleep_each_drug_mean_agrees_with_its_sample_mean(sleep: pd.DataFrame,
                                                          sleep_fit) -> None:
    """Population predictions (group effects 0) are β₀ for drug 1 and β₀ + β₁ for drug 2;
    balanced data make their centres the per-drug sample means 0.75 and 2.33 (up to the
    N(1.54, 5.04) intercept prior's pull of about 0.015 and Monte Carlo error): within a
    tenth of a posterior sd (about 0.066)."""
    prediction = sleep_fit.predict(NewRows(sleep, groups="population"))
    mu = prediction["mu"]
    table = _rows(prediction, "mu")
    drug = sleep["group"].astype(int).to_numpy()
    b = sleep_fit.draws("b").reshape(-1, 2)
    for level, sample_mean, direct in ((1, 0.75, b[:, 0]), (2, 2.33, b[:, 0] + b[:, 1])):
        rows = drug == level
        assert sleep.loc[rows, "extra"].mean() == pytest.approx(sample_mean)
        # every row of one drug has the same population prediction, β₀ (+ β₁)
        np.testing.assert_allclose(mu[:, rows], np.repeat(direct[:, None], rows.sum(), 1))
        np.testing.assert_allclose(table.loc[rows, "mean"], direct.mean())
        assert abs(direct.mean() - sample_mean) < 0.1 * direct.std()
        low, high = table.loc[rows, ["lower", "upper"]].iloc[0]
        assert low < sample_mean < high


# ------------------------------------------------------------------ sleepstudy, three poolings


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def pooled_fits(sleepstudy: pd.DataFrame) -> dict[str, MixedFit]:
    return {pooling: MixedModel(formula=FORMULA, pooling=pooling, draws=1000, warmup=500,
                                chains=2, seed=SEED).fit(sleepstudy)
            for pooling in ("partial", "none", "complete")}


@pytest.fixture(scope="module")
def least_squares(sleepstudy: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-subject OLS lines (18 × 2, sorted subjects) and the one pooled OLS line."""
    x = np.column_stack([np.ones(len(sleepstudy)), sleepstudy["Days"]])
    y = sleepstudy["Reaction"].to_numpy()
    subjects = np.unique(sleepstudy["Subject"])
    each = np.array([np.linalg.lstsq(x[sleepstudy["Subject"] == s],
                                     y[sleepstudy["Subject"] == s], rcond=None)[0]
                     for s in subjects])
    return {"each": each, "pooled": np.linalg.lstsq(x, y, rcond=None)[0],
            "subjects": subjects.astype(str)}


def test_no_pooling_equals_per_subject_least_squares(pooled_fits, least_squares) -> None:
    """With the wide default priors (sd ≈ 600 ms for an intercept whose se is ≈ 15) the
    posterior means are the OLS estimates up to a prior pull below 0.05 posterior sd and
    Monte Carlo error (4 MCSE)."""
    fit = pooled_fits["none"]
    names = [f"{e}[{s}]" for s in least_squares["subjects"] for e in ("Intercept", "Days")]
    assert fit.design.fixed_names == tuple(names)
    table = fit.summary().set_index("param").loc[[f"b[{n}]" for n in names]]
    ols = least_squares["each"].ravel()
    error = np.abs(table["mean"].to_numpy() - ols)
    assert np.all(error < 4 * table["mcse_mean"].to_numpy() + 0.05 * table["sd"].to_numpy()), \
        error / table["sd"].to_numpy()


def test_complete_pooling_equals_one_least_squares_line(pooled_fits, least_squares) -> None:
    fit = pooled_fits["complete"]
    assert fit.design.terms == ()
    table = fit.summary().set_index("param").loc[["b[Intercept]", "b[Days]"]]
    error = np.abs(table["mean"].to_numpy() - least_squares["pooled"])
    assert np.all(error < 4 * table["mcse_mean"].to_numpy() + 0.05 * table["sd"].to_numpy())


def test_partial_pooling_shrinks_between_none_and_complete(pooled_fits, least_squares) -> None:
    """Each subject's posterior mean line b + r_s lies between its OLS line o_s and the
    pooled OLS line c. Given (Σ, σ) the partial estimate is c + (Σ⁻¹ + M/σ²)⁻¹(M/σ²)(o_s − c)
    with M = X_sᵀX_s (the same for every subject: balanced days), so in the metric M its
    projection t_s = ⟨p_s − c, o_s − c⟩_M / |o_s − c|²_M lies in [0, 1] for every subject;
    checked within 4 Monte Carlo standard errors of t_s. Coordinate by coordinate
    (intercept, slope) the matrix shrinkage need not stay between, so only most subjects
    (two thirds) are required there. Every subject's line is also closer to the pooled line
    than its OLS line is, as the rms difference over the ten days."""
    import arviz_stats as azs

    fit = pooled_fits["partial"]
    assert list(fit.posterior["r_Subject"].coords["Subject"].values) == list(
        least_squares["subjects"])
    line_draws = fit.draws("b")[..., None, :] + fit.draws("r_Subject")  # chain, draw, subject, 2
    lines = line_draws.mean(axis=(0, 1))
    none, complete = least_squares["each"], least_squares["pooled"]
    days = np.column_stack([np.ones(10), np.arange(10)])
    metric = days.T @ days
    gap = none - complete
    t_draws = np.einsum("cdsi,ij,sj->cds", line_draws - complete, metric, gap) / np.einsum(
        "si,ij,sj->s", gap, metric, gap)
    t = t_draws.mean(axis=(0, 1))
    error = np.array([float(azs.mcse(t_draws[..., s], method="mean"))
                      for s in range(t.size)])
    assert np.all((t + 4 * error > 0) & (t - 4 * error < 1)), (t, error)
    assert np.all(t < 1 + 4 * error) and np.median(t) < 0.95  # shrunk, not copied

    between = (np.minimum(none, complete) <= lines) & (lines <= np.maximum(none, complete))
    assert np.all(between.sum(axis=0) >= 12), between.sum(axis=0)

    def distance(line: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(np.square((line - complete) @ days.T), axis=-1))

    assert np.all(distance(lines) < distance(none))


def test_comparison_table_sets_the_poolings_side_by_side(pooled_fits) -> None:
    table = MixedFit.comparison_table(pooled_fits, 0.9)
    assert list(table.columns[:4]) == ["param", "partial_mean", "partial_lower",
                                       "partial_upper"]
    # the partial fit's parameters first, then no pooling's per-subject coefficients
    assert list(table["param"][:6]) == ["b[Intercept]", "b[Days]", "sigma",
                                        "sd_Subject[Intercept]", "sd_Subject[Days]",
                                        "cor_Subject[Days, Intercept]"]
    days = table.set_index("param").loc["b[Days]"]
    partial = pooled_fits["partial"].summary(0.9).set_index("param").loc["b[Days]"]
    assert days["partial_mean"] == partial["mean"] and days["partial_lower"] == partial["lower"]
    assert np.isnan(days["none_mean"]) and not np.isnan(days["complete_mean"])
    assert table["param"].iloc[-1] == "b[Days[372]]"
    loo = poolwise.Comparison(pooled_fits).predictive().table
    assert set(loo["model"]) == {"partial", "none", "complete"}
    assert loo["elpd"].is_monotonic_decreasing


# ------------------------------------------------------------------ predictions


def test_requests_answered_follow_the_pooling(pooled_fits) -> None:
    assert pooled_fits["partial"].requests() == (ExistingGroup, NewGroup, NewGroupIn,
                                                 Population, NewRows)
    assert pooled_fits["complete"].requests() == (ExistingGroup, Population, NewRows)
    assert pooled_fits["none"].requests() == (ExistingGroup,)
    for pooling, request in (("complete", NewGroup()), ("none", Population())):
        with pytest.raises(SpecificationError, match=f"cannot answer {type(request).__name__}"):
            pooled_fits[pooling].predict(request)


def test_group_and_population_predictions_equal_direct_computation(sleepstudy,
                                                                   pooled_fits) -> None:
    fit = pooled_fits["partial"]
    x = np.column_stack([np.ones(len(sleepstudy)), sleepstudy["Days"]])
    levels = list(fit.posterior["r_Subject"].coords["Subject"].values)
    index = np.array([levels.index(s) for s in sleepstudy["Subject"].astype(str)])
    b = fit.draws("b").reshape(-1, 2)
    r = fit.draws("r_Subject").reshape(b.shape[0], len(levels), 2)
    population = b @ x.T
    groups = population + np.sum(r[:, index, :] * x[None], axis=-1)
    np.testing.assert_allclose(fit.linear_predictor(), groups, rtol=1e-12)
    for kind, direct in (("as-given", groups), ("population", population)):
        prediction = fit.predict(NewRows(sleepstudy, groups=kind))
        np.testing.assert_allclose(prediction["mu"], direct, rtol=1e-12)
        table, y = _rows(prediction, "mu", 0.9), _rows(prediction, "y", 0.9)
        np.testing.assert_allclose(table["mean"], direct.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(table["lower"], np.quantile(direct, 0.05, axis=0),
                                   rtol=1e-12)
        np.testing.assert_allclose(table["upper"], np.quantile(direct, 0.95, axis=0),
                                   rtol=1e-12)
        # a new observation adds σ: its interval contains the mean's
        assert np.all(y["lower"] < table["lower"])
        assert np.all(y["upper"] > table["upper"])
    # a group's own rows: the same η, and y* around it with the residual sd
    own = fit.predict(ExistingGroup("308"))
    rows = np.flatnonzero(sleepstudy["Subject"].astype(str) == "308")
    np.testing.assert_allclose(own["mu"], groups[:, rows], rtol=1e-12)
    np.testing.assert_array_equal(own.draws["row"], rows)
    noise = (own["y"] - own["mu"]) / fit.draws("sigma").reshape(-1, 1)
    assert abs(noise.mean()) < 4 / np.sqrt(noise.size) and abs(noise.std() - 1) < 0.03
    assert "308" in own.description and "drawn afresh" in own.description


def test_existing_group_refusals(pooled_fits) -> None:
    fit = pooled_fits["partial"]
    with pytest.raises(SpecificationError, match=r"takes no size.*NewRows"):
        fit.predict(ExistingGroup("308", size=3))
    with pytest.raises(SpecificationError, match="no Subject '999' in the fit"):
        fit.predict(ExistingGroup("999"))
    with pytest.raises(SpecificationError, match="no grouping factor 'Days'"):
        fit.predict(ExistingGroup("308", factor="Days"))
    # no pooling: the level's own coefficients
    none = pooled_fits["none"].predict(ExistingGroup(308))
    b = pooled_fits["none"].draws("b").reshape(-1, 36)
    np.testing.assert_allclose(none["mu"][:, 3], b[:, 0] + 3 * b[:, 1], rtol=1e-12)


def test_new_group_and_population_are_the_coefficients(pooled_fits) -> None:
    """Population: β itself. NewGroup: β + b_new with b_new ~ N(0, Σ) at each draw, so
    L⁻¹(coef − β) (L the Cholesky factor of each draw's Σ) is standard normal: mean 0
    (within 4 Monte Carlo sds), variance 1 and no correlation (within 0.05, about 4 sds for
    2000 draws)."""
    fit = pooled_fits["partial"]
    b = fit.draws("b").reshape(-1, 2)
    population = fit.predict(Population())
    np.testing.assert_array_equal(population["coef"], b)
    assert list(population.draws["effect"].values) == ["Intercept", "Days"]
    new = fit.predict(NewGroup())
    sd = fit.draws("sd_Subject").reshape(-1, 2)
    cor = fit.draws("cor_Subject").reshape(-1, 2, 2)
    chol = sd[:, :, None] * np.linalg.cholesky(cor)
    white = np.linalg.solve(chol, (new["coef"] - b)[:, :, None])[..., 0]
    assert np.all(np.abs(white.mean(axis=0)) < 4 / np.sqrt(white.shape[0]))
    np.testing.assert_allclose(white.var(axis=0), 1.0, atol=0.1)
    assert abs(np.corrcoef(white.T)[0, 1]) < 0.1
    assert "Subject" in new.description
    with pytest.raises(SpecificationError, match=r"takes no y or size.*NewRows"):
        fit.predict(NewGroup(size=10))
    with pytest.raises(SpecificationError, match=r"needs nested grouping factors.*NewGroup"):
        fit.predict(NewGroupIn("308"))


def test_new_group_predictions_are_wider_with_the_population_centre(sleepstudy,
                                                                    pooled_fits) -> None:
    """η_new = xᵀb + zᵀu with u ~ N(0, Σ) drawn afresh: its mean is the population mean
    (within 4 Monte Carlo sds of the added term), and by the law of total variance
    Var(η_new) = Var(xᵀb) + E[zᵀΣz] = … + E[sd_I² + 2ρ sd_I sd_D d + sd_D² d²] exactly;
    with 2000 draws the sample variances agree within about 5%, so 15% is allowed."""
    fit = pooled_fits["partial"]
    days = sleepstudy["Days"].to_numpy(float)
    sd = fit.draws("sd_Subject").reshape(-1, 2)
    rho = fit.draws("cor_Subject")[..., 0, 1].ravel()
    added = (sd[:, :1] ** 2 + 2 * rho[:, None] * sd[:, :1] * sd[:, 1:] * days
             + sd[:, 1:] ** 2 * days**2)  # zᵀΣz for each draw and row
    narrow = fit.predict(NewRows(sleepstudy, groups="population"))
    wide = fit.predict(NewRows(sleepstudy, groups="new"), seed=1)
    population, new = narrow["mu"], wide["mu"]
    draws = population.shape[0]
    assert np.all(np.abs(new.mean(axis=0) - population.mean(axis=0))
                  < 4 * np.sqrt(added.mean(axis=0) / draws))
    expected = population.var(axis=0) + added.mean(axis=0)
    np.testing.assert_allclose(new.var(axis=0), expected, rtol=0.15)

    wide_mu, narrow_mu = _rows(wide, "mu"), _rows(narrow, "mu")
    wide_y, narrow_y = _rows(wide, "y"), _rows(narrow, "y")
    assert np.all((wide_mu["upper"] - wide_mu["lower"])
                  / (narrow_mu["upper"] - narrow_mu["lower"]) > 1)
    assert np.all(wide_y["upper"] - wide_y["lower"] > narrow_y["upper"] - narrow_y["lower"])
    assert "18 new levels" in wide.description
    # reproducible with a seed, and a different seed draws other groups
    again = fit.predict(NewRows(sleepstudy, groups="new"), seed=1)
    pd.testing.assert_frame_equal(wide.summary(), again.summary())
    assert not np.allclose(fit.predict(NewRows(sleepstudy, groups="new"), seed=2)["mu"], new)


def test_new_observations_do_not_reuse_the_new_groups_noise(sleep, sleep_fit) -> None:
    """NewRows(groups="new") draws the new levels' effects and then y*; the two must not
    be the same random numbers. (They once shared default_rng(s), so y*'s noise in the
    first draw equalled the standardised new effects: perfectly correlated.)"""
    new = sleep_fit.predict(NewRows(sleep, groups="new"), seed=5)
    population = sleep_fit.predict(NewRows(sleep, groups="population"), seed=5)["mu"]
    sd = sleep_fit.draws("sd_ID").reshape(-1, 1)
    standardised = (new["mu"] - population) / sd  # N(0, 1) per level
    noise = (new["y"] - new["mu"]) / sleep_fit.draws("sigma").reshape(-1, 1)
    assert abs(np.corrcoef(standardised.ravel(), noise.ravel())[0, 1]) < 0.05
    assert not np.any(np.isclose(standardised[0], noise[0]))


def test_predicted_rows_come_with_their_input_columns(pooled_fits) -> None:
    """Each predicted row's summary carries the row's number and its input columns (a
    column named like a summary column gets an input_ prefix)."""
    rows = pd.DataFrame({"Days": [3.0, 5.0], "Subject": [308, 999], "mean": [1, 2]},
                        index=[10, 11])
    prediction = pooled_fits["partial"].predict(NewRows(rows))
    table = prediction.summary()
    assert list(table.columns[:5]) == ["param", "row", "Days", "Subject", "input_mean"]
    assert table["param"].tolist() == ["mu", "mu", "y", "y"]
    assert table["row"].tolist() == [0, 1, 0, 1]
    assert table["Subject"].tolist() == [308, 999, 308, 999]
    np.testing.assert_allclose(table["mean"], [*prediction["mu"].mean(axis=0),
                                               *prediction["y"].mean(axis=0)])


def test_predictions_for_new_rows_match_the_fitted_rows(sleepstudy, pooled_fits) -> None:
    """New rows that repeat fitted ones get the fitted rows' η; a subject the fit has not
    seen gets effects drawn from N(0, Σ) (one draw per level), a missing one none."""
    fit = pooled_fits["partial"]
    rows = sleepstudy.iloc[[0, 5, 17]]
    new = fit.predict(NewRows(rows.drop(columns="Reaction")))
    np.testing.assert_allclose(new["mu"], fit.linear_predictor()[:, [0, 5, 17]], rtol=1e-12)
    assert "3 rows at levels in the fit" in new.description
    b = fit.draws("b").reshape(-1, 2)
    strangers = pd.DataFrame({"Days": [3.0, 3.0, 5.0, 3.0],
                              "Subject": [999, 999, 998, None]})
    mixed = fit.predict(NewRows(strangers))
    assert ("0 rows at levels in the fit" in mixed.description
            and "3 rows at 2 new levels" in mixed.description
            and "1 row without a level" in mixed.description)
    mu = mixed["mu"]
    np.testing.assert_array_equal(mu[:, 0], mu[:, 1])  # one draw per level, shared
    assert not np.allclose(mu[:, 0], mu[:, 3])
    np.testing.assert_allclose(mu[:, 3], b @ [1.0, 3.0], rtol=1e-12)  # no level: β only
    population = fit.predict(NewRows(strangers, groups="population"))["mu"]
    np.testing.assert_allclose(population[:, :2], np.repeat((b @ [1.0, 3.0])[:, None], 2, 1))
    assert mu[:, 0].std() > 2 * population[:, 0].std()
    with pytest.raises(SpecificationError, match="no pooling"):
        pooled_fits["none"].predict(NewRows(strangers))
    with pytest.raises(DataError, match=r"lack the column.*'Days'"):
        fit.predict(NewRows(strangers.drop(columns="Days")))
    with pytest.raises(DataError, match="new row 1: 'Days' is missing"):
        fit.predict(NewRows(strangers.assign(Days=np.nan)))
    # without its grouping column every row is at the population level: β only
    no_column = fit.predict(NewRows(strangers.drop(columns="Subject")))
    np.testing.assert_allclose(no_column["mu"], np.outer(b @ [1.0, 0.0], np.ones(4))
                               + np.outer(b @ [0.0, 1.0], strangers["Days"]), rtol=1e-12)
    assert "4 rows without a level (no effect)" in no_column.description
    population = fit.predict(NewRows(strangers[["Days"]], groups="population"))["mu"]
    np.testing.assert_allclose(population, no_column["mu"], rtol=1e-12)
    # complete pooling reads no grouping factor
    complete = pooled_fits["complete"].predict(NewRows(pd.DataFrame({"Days": [3.0]})))
    np.testing.assert_allclose(complete["mu"][:, 0],
                               pooled_fits["complete"].draws("b").reshape(-1, 2) @ [1.0, 3.0])


def test_new_rows_are_refused_when_the_formula_fits_transformations(sleepstudy) -> None:
    model = MixedModel(formula="Reaction ~ scale(Days) + (1 | Subject)", draws=50, warmup=50,
                       chains=1)
    fit, _ = _fit_quietly(model, sleepstudy)
    with pytest.raises(SpecificationError, match="scale, which are fitted to the data"):
        fit.predict(NewRows(sleepstudy.head(3)))


def test_new_level_in_a_nested_parent() -> None:
    """(1 | batch/cask): a new cask in batch A is β + b_batch[A] + b_new, b_new ~
    N(0, sd_cask²): (coef − β − b_batch[A]) / sd_cask is standard normal."""
    pastes = datasets.load("pastes")
    model = MixedModel(formula="strength ~ 1 + (1 | batch/cask)", draws=500, warmup=500,
                       chains=2, seed=SEED)
    fit, _ = _fit_quietly(model, pastes)
    new = fit.predict(NewGroupIn("A"))
    b = fit.draws("b").reshape(-1)
    batch = fit.draws("r_batch").reshape(b.size, -1)[:, 0]
    white = (new["coef"][:, 0] - b - batch) / fit.draws("sd_batch:cask").reshape(-1)
    assert abs(white.mean()) < 4 / np.sqrt(b.size) and abs(white.var() - 1) < 0.15
    assert "new cask in batch 'A'" in new.description
    with pytest.raises(SpecificationError, match="no batch 'Z' in the fit"):
        fit.predict(NewGroupIn("Z"))
    # a new cask row in batch A, as given: the batch's effect and a new cask's
    rows = fit.predict(NewRows(pd.DataFrame({"batch": ["A", "A"], "cask": ["z", "a"]})))
    assert "batch: 2 rows at levels in the fit" in rows.description
    assert "batch:cask: 1 row at levels in the fit" in rows.description


# ------------------------------------------------------------------ eb-ml (REML)


@pytest.fixture(scope="module")
def reml_fit(sleepstudy: pd.DataFrame) -> MixedFit:
    return MixedModel(formula=FORMULA, method="eb-ml", seed=SEED).fit(sleepstudy)


def test_reml_summary_is_lme4s(reml_fit) -> None:
    table = reml_fit.summary().set_index("param")
    np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "mean"],
                               [251.405, 10.467], atol=5e-4)
    np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "sd"],
                               [6.825, 1.546], atol=5e-4)
    assert table.loc["sigma", "mean"] == pytest.approx(25.59, abs=5e-3)
    assert table.loc["cor_Subject[Days, Intercept]", "mean"] == pytest.approx(0.066, abs=5e-4)
    assert not reml_fit.is_mcmc and reml_fit.diagnostics() == []
    assert "with no prior" in reml_fit.describe_prior()


def test_reml_draws_centre_on_the_estimates(reml_fit) -> None:
    """The draws given the REML variance estimates: b has mean β̂ and sd the REML standard
    errors (4000 independent draws: within 4 Monte Carlo sds, and the sd within 5%), the
    group effects' means are the conditional modes; σ, sds, correlation constant."""
    estimate = reml_fit.estimate
    b = reml_fit.draws("b").reshape(-1, 2)
    assert b.shape == (4000, 2)
    assert np.all(np.abs(b.mean(axis=0) - estimate.beta) < 4 * estimate.beta_se / np.sqrt(4000))
    np.testing.assert_allclose(b.std(axis=0, ddof=1), estimate.beta_se, rtol=0.05)
    r = reml_fit.draws("r_Subject").reshape(4000, 18, 2)
    spread = r.std(axis=0)
    assert np.all(np.abs(r.mean(axis=0) - estimate.random_effects["Subject"])
                  < 4 * spread / np.sqrt(4000))
    assert np.all(reml_fit.draws("sigma") == estimate.sigma)
    np.testing.assert_array_equal(reml_fit.draws("sd_Subject")[1, 7], estimate.sd["Subject"])
    # predictions and the posterior predictive work as for NUTS fits
    own = reml_fit.predict(ExistingGroup("308"))
    assert own["y"].shape == (4000, 10) and "REML" in own.description
    replicated = reml_fit.posterior_predictive()
    assert replicated["y"].shape == (4, 1000, 180)


def test_eb_ml_outside_the_normal_family_needs_one_small_group_term() -> None:
    """eb-ml of a GLMM is maximum likelihood by adaptive quadrature (tests/test_agq.py):
    one group term with one or two effects, agq only there."""
    table = pd.DataFrame({"y": [0, 1, 2, 3] * 3, "x": np.arange(12.0),
                          "g": list("aabb") * 3, "h": list("cdcd") * 3})
    crossed = MixedModel(formula="y ~ x + (1 | g) + (1 | h)", family="poisson",
                         method="eb-ml")
    with pytest.raises(SpecificationError, match=r"one group term with one or two effects"):
        crossed.fit(table)
    with pytest.raises(SpecificationError, match=r"agq \(--agq\) sets the quadrature of "
                                                 r"methods eb-ml and importance .* not of "
                                                 r"method 'nuts'"):
        MixedModel(formula="y ~ x + (1 | g)", family="poisson", agq=3, method="nuts")
    with pytest.raises(SpecificationError, match=r"'marginal'.*normal family.*non-centred"):
        MixedModel(formula="y ~ x + (1 | g)", family="poisson", parametrisation="marginal")


# ------------------------------------------------------------------ GLMMs through formulas


def simulate_glmm(family: str, seed: int) -> tuple[pd.DataFrame, np.ndarray, float]:
    """β = (−0.4, 0.7), random intercepts of sd 0.6 in 30 groups of 12 rows; binomial with
    10 trials, Poisson with exposure in (0.5, 3)."""
    rng = np.random.default_rng(seed)
    groups, per_group = 30, 12
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    beta, sd = np.array([-0.4, 0.7]), 0.6
    eta = beta[0] + beta[1] * x + rng.normal(0.0, sd, groups)[g]
    table = pd.DataFrame({"x": x, "g": [f"g{j:02d}" for j in g]})
    if family == "binomial":
        table["n"] = 10
        table["y"] = rng.binomial(10, 1.0 / (1.0 + np.exp(-eta)))
    else:
        table["exposure"] = rng.uniform(0.5, 3.0, size=g.size)
        table["y"] = rng.poisson(table["exposure"] * np.exp(eta))
    return table, beta, sd


GLMM_FORMULAS = {"binomial": "y | trials(n) ~ x + (1 | g)",
                 "poisson": "y ~ x + offset(log(exposure)) + (1 | g)"}


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_glmm_through_formula_recovers_fixed_effects(family: str) -> None:
    table, beta, sd = simulate_glmm(family, seed=7)
    model = MixedModel(formula=GLMM_FORMULAS[family], family=family, method="nuts",
                       draws=800, warmup=800, chains=4, seed=SEED)
    if family == "poisson":
        np.testing.assert_allclose(model.prepare(table).design.offset, np.log(table["exposure"]))
    # non-centred (the GLMM default) mixes the intercept slowly when the groups are well
    # informed (120 trials each): R-hat can exceed the strict 1.01 of the SamplingWarning
    # for some seeds, so the warnings are collected and a looser bound checked here
    fit, _ = _fit_quietly(model, table)
    assert fit.info["parametrisation"] == "non-centred"
    assert fit.info["target_accept"] == 0.9
    assert fit.info["divergences"] == 0
    assert "sigma" not in fit.posterior
    summary = fit.summary().set_index("param")
    assert summary["r_hat"].max() < 1.05 and summary["ess_bulk"].min() > 100
    for name, value in zip(("b[Intercept]", "b[x]"), beta, strict=True):
        row = summary.loc[name]
        assert abs(row["mean"] - value) < 3 * row["sd"], (name, row["mean"], value, row["sd"])
    row = summary.loc["sd_g[Intercept]"]
    assert abs(row["mean"] - sd) < 3 * row["sd"]
    # the mean response on the data scale: n·logit⁻¹(η) or exposure·exp(η), offset included
    b = fit.draws("b").reshape(-1, 2)
    r = fit.draws("r_g").reshape(b.shape[0], -1)
    levels = list(fit.posterior["g"].values)
    no_offset = b @ np.column_stack([np.ones(len(table)), table["x"]]).T
    eta = no_offset + r[:, [levels.index(g) for g in table["g"]]]
    if family == "binomial":
        mean = table["n"].to_numpy() / (1 + np.exp(-eta))
    else:
        eta = eta + np.log(table["exposure"].to_numpy())
        mean = np.exp(eta)
    prediction = fit.predict(NewRows(table))
    np.testing.assert_allclose(prediction["mu"], mean, rtol=1e-10)
    if family == "poisson":
        population = fit.predict(NewRows(table, groups="population"))["mu"]
        np.testing.assert_allclose(np.log(population),
                                   no_offset + np.log(table["exposure"].to_numpy()))
    # the predictive check compares counts (binomial: proportions of the trials)
    (check,) = fit.check_data()
    assert check.discrete and check.groups is not None
    assert check.label == ("y / trials" if family == "binomial" else "y")


# ------------------------------------------------------------------ the contract


@pytest.fixture(scope="module")
def small_fit(sleep: pd.DataFrame) -> MixedFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return MixedModel(formula="extra ~ group + (1 | ID)", method="nuts", draws=100,
                          warmup=100, chains=2, seed=3).fit(sleep)


def test_spec_title_and_priors(sleep: pd.DataFrame, small_fit) -> None:
    model = small_fit.model
    assert type(model)(**model.spec()).spec() == model.spec()
    assert model.spec()["family"] == "normal" and model.kind == "mixed"
    assert small_fit.title() == ("normal mixed model 'extra ~ group + (1 | ID)', partial "
                                 "pooling, method nuts, 20 rows")
    assert small_fit.describe_prior().startswith("b[Intercept] ~ Normal(")
    assert "scaled to the data" in model.describe_prior()
    gaussian = MixedModel(formula="extra ~ group + (1 | ID)", family="gaussian",
                          prior="sd = halfnormal(2)")
    assert gaussian.family == "normal" and gaussian.prior == "sd = halfnormal(2)"
    assert "sd_ID[Intercept] ~ HalfNormal(2)" in gaussian.describe_prior(sleep)
    prepared = gaussian.prepare(sleep)
    assert gaussian.prepare(prepared) is prepared  # fit(prepared) does not parse again
    assert list(prepared.table.columns) == ["extra", "group", "ID"]
    assert small_fit.info["target_accept"] == 0.8 and small_fit.info["parametrisation"] == \
        "marginal"


def test_save_and_load_keep_the_summary_and_predictions(small_fit, sleep, tmp_path) -> None:
    path = tmp_path / "mixed.nc"
    small_fit.save(path)
    loaded = poolwise.load(path)
    assert isinstance(loaded, MixedFit) and loaded.model.spec() == small_fit.model.spec()
    pd.testing.assert_frame_equal(loaded.summary(), small_fit.summary())
    assert loaded.describe_prior() == small_fit.describe_prior()
    np.testing.assert_array_equal(loaded.design.x, small_fit.design.x)
    request = NewRows(sleep.head(4).assign(ID=[1, 2, 99, None]))
    np.testing.assert_array_equal(loaded.predict(request)["y"], small_fit.predict(request)["y"])
    pd.testing.assert_frame_equal(loaded.predictive_check(), small_fit.predictive_check())


def test_save_and_load_keep_dropped_rows_and_reml(sleepstudy, tmp_path) -> None:
    table = sleepstudy.assign(Noise=1.0)
    table.loc[[2, 50], "Days"] = np.nan
    model = MixedModel(formula=FORMULA, method="eb-ml", missing="drop", draws=50, chains=2)
    fit = model.fit(table)
    assert fit.data.notes[0].startswith("dropped 2 of 180 rows")
    fit.save(tmp_path / "reml.nc")
    loaded = poolwise.load(tmp_path / "reml.nc")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    assert loaded.data.notes == fit.data.notes
    assert loaded.full_design.dropped_rows == 2
    np.testing.assert_array_equal(loaded.data.rows, np.delete(np.arange(180), [2, 50]))
    np.testing.assert_array_equal(loaded.predict(ExistingGroup("308"))["mu"],
                                  fit.predict(ExistingGroup("308"))["mu"])


def test_posterior_predictive_and_its_check(small_fit, sleep) -> None:
    replicated = small_fit.posterior_predictive()
    assert replicated["y"].dims == ("chain", "draw", "row")
    assert replicated["y"].shape == (2, 100, 20)
    fresh = small_fit.posterior_predictive(seed=1)["y"].values
    assert fresh.shape == (2, 100, 20) and not np.array_equal(fresh, replicated["y"].values)
    table = small_fit.predictive_check()
    assert list(table.columns) == CHECK_COLUMNS
    groups = table[table["statistic"] == "group mean"]
    assert len(groups) == 10 and set(groups["group"]) == {str(i) for i in range(1, 11)}
    observed = table.set_index("statistic").loc["mean", "observed"]
    assert observed == pytest.approx(sleep["extra"].mean())


def test_prior_predictive_draws_from_the_priors(sleepstudy) -> None:
    """Each sd's prior draws have the HalfNormal(s) mean s√(2/π) (within 4 Monte Carlo sds),
    each correlation matrix is one, and y is drawn on the data's rows."""
    model = MixedModel(formula=FORMULA, seed=2)
    prior = model.prior_predictive(sleepstudy, draws=2000)
    draws = prior.tree["prior"]
    scale = model.prepare(sleepstudy).priors.sd["Subject", "Days"].params[0]
    sd = draws["sd_Subject"].values[0, :, 1]
    assert abs(sd.mean() - scale * np.sqrt(2 / np.pi)) < 4 * sd.std() / np.sqrt(sd.size)
    cor = draws["cor_Subject"].values[0]
    np.testing.assert_allclose(cor[:, 0, 0], 1.0)
    assert np.all(np.abs(cor[:, 0, 1]) < 1) and cor[:, 0, 1].std() > 0.2
    assert draws["r_Subject"].shape == (1, 2000, 18, 2)
    assert prior.tree["prior_predictive"]["y"].shape == (1, 2000, 180)
    summary = prior.summary()
    assert set(summary["group"].dropna()) == {str(s) for s in sleepstudy["Subject"].unique()}
    assert list(prior.check().columns) == CHECK_COLUMNS
    again = model.prior_predictive(sleepstudy, draws=2000)
    np.testing.assert_array_equal(again.tree["prior_predictive"]["y"].values,
                                  prior.tree["prior_predictive"]["y"].values)
    with pytest.raises(SpecificationError, match=r"eb-ml .*no prior"):
        model.replace(method="eb-ml").prior_predictive(sleepstudy)


def test_the_seed_fixes_the_draws(sleep, small_fit) -> None:
    model = small_fit.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        again = model.fit(sleep)
        other = model.replace(seed=4).fit(sleep)
    np.testing.assert_array_equal(again.draws("r_ID"), small_fit.draws("r_ID"))
    assert not np.array_equal(other.draws("b"), small_fit.draws("b"))


# ------------------------------------------------------------------ bad input


def test_bad_input_is_refused_with_clear_messages(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(SpecificationError, match=r"no group terms.*pooling 'complete'"):
        MixedModel(formula="Reaction ~ Days", pooling="partial")
    with pytest.raises(SpecificationError, match="no group terms"):
        MixedModel(formula="Reaction ~ Days", pooling="none")
    # unstated, a formula without group terms has nothing to pool: complete pooling
    assert MixedModel(formula="Reaction ~ Days").pooling == "complete"
    complete = MixedModel(formula="Reaction ~ Days", pooling="complete")
    assert complete.prepare(sleepstudy).design.terms == ()
    with pytest.raises(SpecificationError, match=r"pooling must be one of .*, got 'partially'"):
        MixedModel(formula=FORMULA, pooling="partially")
    model = MixedModel(formula=FORMULA)
    with pytest.raises(TypeError, match="DataFrame"):
        model.prepare(sleepstudy.to_dict())  # type: ignore[arg-type]
    with pytest.raises(SpecificationError, match="reads its columns from the formula"):
        model.fit(sleepstudy, y="Reaction")
    with pytest.raises(SpecificationError, match=r"unknown method .*'exact'.*nuts, eb-ml"):
        MixedModel(formula=FORMULA, method="exact")
    with pytest.raises(SpecificationError, match=r"parametrisation must be one of auto, "
                                                  r"marginal, non-centred, centred"):
        MixedModel(formula=FORMULA, parametrisation="collapsed")
    with pytest.raises(SpecificationError, match="unknown mixed-model family 'beta-binomial'"):
        MixedModel(formula=FORMULA, family="beta-binomial")
    with pytest.raises(SpecificationError, match="missing must be one of refuse, drop"):
        MixedModel(formula=FORMULA, missing="ignore")
    for name, value in (("draws", 0), ("chains", 1.5), ("warmup", -1), ("draws", True)):
        with pytest.raises(SpecificationError, match=f"{name} must be an integer"):
            MixedModel(formula=FORMULA, **{name: value})
    with pytest.raises(SpecificationError, match="depend on its data"):
        model.graph()


@pytest.mark.parametrize(("priors", "message"), [
    ("b[Hours] = normal(0, 1)", "unknown coefficient 'Hours'; coefficients: Intercept, Days"),
    ("sd[Patient] = halfnormal(1)", "unknown grouping factor 'Patient'; factors: Subject"),
    ("sigma = normal(0, 1)", "a scale's prior must be one of halfnormal"),
    ("cor[Subject] = lkj(-1)", "lkj\\(eta\\), eta > 0"),
    ("tau = halfnormal(1)", "cannot read prior statement 'tau = halfnormal\\(1\\)'"),
])
def test_prior_errors_surface_through_mixed_model(sleepstudy: pd.DataFrame, priors: str,
                                                  message: str) -> None:
    with pytest.raises(SpecificationError, match=message):
        MixedModel(formula=FORMULA, prior=priors).prepare(sleepstudy)


def test_priors_follow_the_pooling(sleepstudy: pd.DataFrame) -> None:
    """Without group terms there is no sd to give a prior; sigma only for the normal
    family."""
    with pytest.raises(SpecificationError, match="the model has no group terms"):
        MixedModel(formula=FORMULA, pooling="complete",
                   prior="sd[Subject] = halfnormal(10)").prepare(sleepstudy)
    table, _, _ = simulate_glmm("binomial", seed=1)
    with pytest.raises(SpecificationError, match="binomial family has no residual sd"):
        MixedModel(formula=GLMM_FORMULAS["binomial"], family="binomial",
                   prior="sigma = halfnormal(1)").prepare(table)


def test_resolved_priors_read_back_with_bracketed_names(sleep, sleepstudy) -> None:
    """Coefficients named with brackets (a category, group[2]; no pooling's Days[308])
    round-trip through the priors' spec, as saving a fit needs."""
    from poolwise.kinds.mixed.priors import parse_priors

    for model, table in ((MixedModel(formula="extra ~ group + (1 | ID)"), sleep),
                         (MixedModel(formula=FORMULA, pooling="none"), sleepstudy)):
        data = model.prepare(table)
        assert parse_priors(data.priors.spec(), data.design) == data.priors
    data = MixedModel(formula="extra ~ group + (1 | ID)",
                      prior="b[group[2]] = normal(1, 2)").prepare(sleep)
    assert "b[group[2]] ~ Normal(1, 2)" in data.priors.describe()


def test_reml_does_not_stop_at_a_zero_sd_on_radon():
    """The first L-BFGS step from sd/σ = 1 used to land at sd → 0 and stop there
    (REML sd 1.6e-9 against statsmodels' 0.16); the restricted log likelihood must be at
    least statsmodels' (−1067.098, which reports it did not fully converge)."""
    import statsmodels.formula.api as smf

    from poolwise.kinds.mixed.reml import fit_reml

    radon = datasets.load("radon")
    design = MixedModel(formula="log_radon ~ floor + log_uppm + (1 | county)").prepare(
        radon).design
    estimate = fit_reml(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = smf.mixedlm("log_radon ~ floor + log_uppm", radon,
                                groups=radon["county"]).fit(reml=True)
    assert not estimate.singular
    assert estimate.log_likelihood >= reference.llf - 1e-6
    assert estimate.sd["county"][0] == pytest.approx(0.16, abs=0.01)
    np.testing.assert_allclose(estimate.beta, reference.fe_params.to_numpy(), atol=2e-3)


def test_one_row_per_level_is_refused_for_normal_models() -> None:
    table = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1, 2, 3],
                          "student": list("abcd")})
    with pytest.raises(DataError, match="4 levels for 4 rows"):
        MixedModel(formula="y ~ x + (1 | student)").prepare(table)


def test_a_thinned_predictive_check_reads_the_thinned_draws(reml_fit, monkeypatch) -> None:
    """Above PREDICTIVE_LIMIT replicated values the check replicates every k-th draw (here
    k = 40 of 4 × 1000 draws of 180 rows); the draws were reshaped by the settings' 4000."""
    import poolwise.results.fit as fit_module

    monkeypatch.setattr(fit_module, "PREDICTIVE_LIMIT", 18_000)
    (check,) = reml_fit.check_data(seed=1)
    assert check.replicated.shape == (100, 180)
