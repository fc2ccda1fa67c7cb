"""MixedModel end to end (formula → priors → NUTS → summary and predictions), each result
checked against something computed independently of the mixed-model code.

* Simulation-based calibration of a nested three-level model, y ~ 1 + (1 | school/classroom):
  parameters drawn from the very priors given to the model, data from the parameters, then
  a fit; the 90% (and 50%) posterior intervals cover the truth a Binomial(R, level) number
  of times when the posterior is right (Cook, Gelman and Rubin 2006; Talts et al. 2018).
* Student's (1908) sleep trial, extra ~ group + (1 | ID): the drug difference against the
  classical paired t analysis (scipy), each drug's mean against its sample mean.
* sleepstudy under the three poolings against least squares computed with NumPy: no pooling
  ≈ per-subject OLS, complete pooling ≈ one OLS line, partial pooling shrinks in between.
* predict() and linear_predictor() against the same quantities computed from the posterior
  arrays, and the spread of new-group predictions against the law of total variance.
* Binomial (trials) and Poisson (offset) GLMMs through formulas recover simulated values.
* Bad input is refused at the MixedModel level with messages that say what to do.

Without the slow calibration test it runs in 35-65 s on two cores (more when they are
shared); each fit compiles its own NUTS program (2-3 s, most of the cost; see
test_nested_three_level_calibration).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poolwise import DataError, MixedFit, MixedModel, SamplingWarning, SpecificationError, datasets

SEED = 20261123


def _fit_quietly(model: MixedModel, **kwargs: object) -> tuple[MixedFit, list[str]]:
    """Fit, returning the diagnostic warnings instead of raising them (pytest makes
    warnings errors; the calibration fits are short and some warn about ESS)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        fit = model.fit(**kwargs)  # type: ignore[arg-type]
    return fit, [str(w.message) for w in caught]


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
    model = MixedModel("y ~ 1 + (1 | school/classroom)", table, priors=SBC_PRIORS)
    school, classroom = model.design.terms
    assert (school.factor, classroom.factor) == ("school", "school:classroom")
    assert (school.n_levels, classroom.n_levels) == (SBC_SCHOOLS, SBC_SCHOOLS * SBC_CLASSROOMS)
    assert model.priors.describe() == [
        "b[Intercept] ~ Normal(0, 1)", "sigma ~ HalfNormal(1)",
        "sd[school][Intercept] ~ HalfNormal(1)",
        "sd[school:classroom][Intercept] ~ HalfNormal(1)"]


@pytest.mark.slow
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
        model = MixedModel("y ~ 1 + (1 | school/classroom)", data, priors=SBC_PRIORS)
        fit, _ = _fit_quietly(model, draws=300, warmup=300, chains=2, seed=SEED + r)
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
    model = MixedModel(datasets.info("sleep").formula, sleep)
    return model.fit(draws=1000, warmup=1000, chains=4, seed=SEED)


def test_sleep_formula_names_the_drug_difference(sleep: pd.DataFrame) -> None:
    model = MixedModel("extra ~ group + (1 | ID)", sleep)
    assert model.design.fixed_names == ("Intercept", "group[2]")
    assert [t.factor for t in model.design.terms] == ["ID"]


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
    eta = sleep_fit.linear_predictor("population")
    prediction = sleep_fit.predict("population")
    drug = sleep["group"].astype(int).to_numpy()
    b = sleep_fit.draws("b").reshape(-1, 2)
    for level, sample_mean, direct in ((1, 0.75, b[:, 0]), (2, 2.33, b[:, 0] + b[:, 1])):
        rows = drug == level
        assert sleep.loc[rows, "extra"].mean() == pytest.approx(sample_mean)
        # every row of one drug has the same population prediction, β₀ (+ β₁)
        np.testing.assert_allclose(eta[:, rows], np.repeat(direct[:, None], rows.sum(), 1))
        np.testing.assert_allclose(prediction.loc[rows, "mean"], direct.mean())
        assert abs(direct.mean() - sample_mean) < 0.1 * direct.std()
        low, high = prediction.loc[rows, ["lower", "upper"]].iloc[0]
        assert low < sample_mean < high


# ------------------------------------------------------------------ sleepstudy, three poolings


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def pooled_fits(sleepstudy: pd.DataFrame) -> dict[str, MixedFit]:
    formula = "Reaction ~ Days + (Days | Subject)"
    return {pooling: MixedModel(formula, sleepstudy, pooling=pooling).fit(
                draws=1000, warmup=500, chains=2, seed=SEED)
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


# ------------------------------------------------------------------ predictions


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
    for kind, direct in (("groups", groups), ("population", population)):
        np.testing.assert_allclose(fit.linear_predictor(kind), direct, rtol=1e-12)
        table = fit.predict(kind, ci_prob=0.9)
        np.testing.assert_allclose(table["mean"], direct.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(table["lower"], np.quantile(direct, 0.05, axis=0),
                                   rtol=1e-12)
        np.testing.assert_allclose(table["upper"], np.quantile(direct, 0.95, axis=0),
                                   rtol=1e-12)
        # a new observation adds σ: its interval contains the mean's
        assert np.all(table["y_lower"] < table["lower"])
        assert np.all(table["y_upper"] > table["upper"])


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
    population = fit.linear_predictor("population")
    new = fit.linear_predictor("new-groups", seed=1)
    draws = population.shape[0]
    assert np.all(np.abs(new.mean(axis=0) - population.mean(axis=0))
                  < 4 * np.sqrt(added.mean(axis=0) / draws))
    expected = population.var(axis=0) + added.mean(axis=0)
    np.testing.assert_allclose(new.var(axis=0), expected, rtol=0.15)

    wide, narrow = fit.predict("new-groups", seed=1), fit.predict("population")
    assert np.all((wide["upper"] - wide["lower"]) / (narrow["upper"] - narrow["lower"]) > 1)
    assert np.all(wide["y_upper"] - wide["y_lower"] > narrow["y_upper"] - narrow["y_lower"])
    # reproducible with a seed, and a different seed draws other groups
    again = fit.predict("new-groups", seed=1)
    pd.testing.assert_frame_equal(wide, again)
    assert not np.allclose(fit.linear_predictor("new-groups", seed=2), new)


def test_new_observations_do_not_reuse_the_new_groups_noise(sleep_fit, monkeypatch) -> None:
    """predict("new-groups", seed=s) draws the new groups' effects and then y*; the two
    must come from different random streams. (They once shared default_rng(s), so y*'s
    noise in the first draw equalled the standardised new effects: perfectly correlated.)"""
    import copy

    import poolwise.mixed.model as mixed_model

    seen: dict[str, np.ndarray] = {}
    original = mixed_model._response_draws

    def spy(design, eta, fit, rng):
        seen["noise"] = copy.deepcopy(rng).standard_normal(eta.shape)
        return original(design, eta, fit, rng)

    monkeypatch.setattr(mixed_model, "_response_draws", spy)
    sleep_fit.predict("new-groups", seed=5)
    effects = (sleep_fit.linear_predictor("new-groups", seed=5)
               - sleep_fit.linear_predictor("population"))
    standardised = effects / sleep_fit.draws("sd_ID").reshape(-1, 1)  # N(0, 1) per level
    assert abs(np.corrcoef(standardised.ravel(), seen["noise"].ravel())[0, 1]) < 0.05
    assert not np.any(np.isclose(standardised[0], seen["noise"][0]))


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
    model = MixedModel(GLMM_FORMULAS[family], table, family=family)
    if family == "poisson":
        np.testing.assert_allclose(model.design.offset, np.log(table["exposure"]))
    # non-centred (the GLMM default) mixes the intercept slowly when the groups are well
    # informed (120 trials each): R-hat can exceed the strict 1.01 of the SamplingWarning
    # for some seeds, so the warnings are collected and a looser bound checked here
    fit, _ = _fit_quietly(model, draws=800, warmup=800, chains=4, seed=SEED)
    assert fit.info["parametrisation"] == "non-centred"
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
    eta = fit.linear_predictor("groups")
    scale = table["n"].to_numpy() if family == "binomial" else 1.0
    mean = scale * (1 / (1 + np.exp(-eta)) if family == "binomial" else np.exp(eta))
    np.testing.assert_allclose(fit.predict("groups")["mean"], mean.mean(axis=0), rtol=1e-10)
    if family == "poisson":
        no_offset = (fit.draws("b").reshape(-1, 2) @ np.column_stack(
            [np.ones(len(table)), table["x"]]).T)
        np.testing.assert_allclose(fit.linear_predictor("population"),
                                   no_offset + np.log(table["exposure"].to_numpy()))


def test_eb_ml_is_refused_for_non_gaussian_families() -> None:
    table, _, _ = simulate_glmm("poisson", seed=1)
    model = MixedModel(GLMM_FORMULAS["poisson"], table, family="poisson")
    with pytest.raises(SpecificationError, match=r"eb-ml .*gaussian.*use method 'nuts'"):
        model.fit(method="eb-ml")
    with pytest.raises(SpecificationError, match=r"'marginal'.*gaussian family.*non-centred"):
        model.fit(parametrisation="marginal")


# ------------------------------------------------------------------ bad input


def test_bad_input_is_refused_with_clear_messages(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(SpecificationError, match=r"no group terms.*pooling 'complete'"):
        MixedModel("Reaction ~ Days", sleepstudy)
    with pytest.raises(SpecificationError, match="no group terms"):
        MixedModel("Reaction ~ Days", sleepstudy, pooling="none")
    assert MixedModel("Reaction ~ Days", sleepstudy, pooling="complete").design.terms == ()
    with pytest.raises(SpecificationError, match="unknown pooling 'partially'"):
        MixedModel("Reaction ~ Days + (1 | Subject)", sleepstudy, pooling="partially")
    with pytest.raises(TypeError, match="DataFrame"):
        MixedModel("Reaction ~ Days + (1 | Subject)", sleepstudy.to_dict())  # type: ignore

    model = MixedModel("Reaction ~ Days + (Days | Subject)", sleepstudy)
    with pytest.raises(SpecificationError, match=r"unknown method 'exact'.*nuts, eb-ml"):
        model.fit(method="exact")
    with pytest.raises(SpecificationError, match=r"unknown parametrisation 'collapsed'.*"
                                                  r"auto, marginal, non-centred, centred"):
        model.fit(parametrisation="collapsed")
    for name, value in (("draws", 0), ("chains", 1.5), ("warmup", -1), ("draws", True)):
        with pytest.raises(SpecificationError, match=f"{name} must be an integer"):
            model.fit(**{name: value})


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
        MixedModel("Reaction ~ Days + (Days | Subject)", sleepstudy, priors=priors)


def test_priors_follow_the_pooling(sleepstudy: pd.DataFrame) -> None:
    """Without group terms there is no sd to give a prior; sigma only for gaussian."""
    with pytest.raises(SpecificationError, match="the model has no group terms"):
        MixedModel("Reaction ~ Days + (Days | Subject)", sleepstudy, pooling="complete",
                   priors="sd[Subject] = halfnormal(10)")
    table, _, _ = simulate_glmm("binomial", seed=1)
    with pytest.raises(SpecificationError, match="binomial family has no residual sd"):
        MixedModel(GLMM_FORMULAS["binomial"], table, family="binomial",
                   priors="sigma = halfnormal(1)")


def test_reml_does_not_stop_at_a_zero_sd_on_radon():
    """The first L-BFGS step from sd/σ = 1 used to land at sd → 0 and stop there
    (REML sd 1.6e-9 against statsmodels' 0.16); the restricted log likelihood must be at
    least statsmodels' (−1067.098, which reports it did not fully converge)."""
    import statsmodels.formula.api as smf

    from poolwise.mixed.reml import fit_reml

    radon = datasets.load("radon")
    model = MixedModel("log_radon ~ floor + log_uppm + (1 | county)", radon)
    estimate = fit_reml(model.design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = smf.mixedlm("log_radon ~ floor + log_uppm", radon,
                                groups=radon["county"]).fit(reml=True)
    assert not estimate.singular
    assert estimate.log_likelihood >= reference.llf - 1e-6
    assert estimate.sd["county"][0] == pytest.approx(0.16, abs=0.01)
    np.testing.assert_allclose(estimate.beta, reference.fe_params.to_numpy(), atol=2e-3)


def test_predictions_for_new_rows_match_the_fitted_rows(sleepstudy, pooled_fits) -> None:
    """New rows that repeat fitted ones get the same predicted means, and a subject the
    fit has not seen is refused for its own effects but predicted as a new group."""
    fit = pooled_fits["partial"]
    rows = sleepstudy.iloc[[0, 5, 17]]
    expected = fit.predict().iloc[[0, 5, 17]]
    new = fit.predict(data=rows.drop(columns="Reaction"))
    np.testing.assert_allclose(new["mean"], expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(new[["lower", "upper"]], expected[["lower", "upper"]],
                               rtol=1e-12)
    stranger = pd.DataFrame({"Days": [3.0], "Subject": [999]})
    with pytest.raises(SpecificationError, match="'999' not in the fitted data"):
        fit.predict(data=stranger)
    population = fit.predict("population", data=stranger)["mean"].iloc[0]
    assert population == pytest.approx(float(np.mean(fit.draws("b") @ [1.0, 3.0])))
    assert fit.predict("new-groups", data=stranger)["upper"].iloc[0] > population
    with pytest.raises(SpecificationError, match="no pooling"):
        pooled_fits["none"].predict(data=stranger)


def test_new_rows_are_refused_when_the_formula_fits_transformations(sleepstudy) -> None:
    model = MixedModel("Reaction ~ scale(Days) + (1 | Subject)", sleepstudy)
    fit, _ = _fit_quietly(model, draws=50, warmup=50, chains=1)
    with pytest.raises(SpecificationError, match="scale, which are fitted to the data"):
        fit.predict(data=sleepstudy.head(3))


def test_one_row_per_level_is_refused_for_gaussian_models() -> None:
    table = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1, 2, 3],
                          "student": list("abcd")})
    with pytest.raises(DataError, match="4 levels for 4 rows"):
        MixedModel("y ~ x + (1 | student)", table)
