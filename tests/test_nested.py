"""Nested groups (experiments within labs, classrooms within schools):
poolwise.kinds.nested.

* Each lab's marginal likelihood, θ integrated out in closed form, equals brute-force
  numerical integration over θ (SciPy quad) for all three families, and the JAX log density
  NUTS uses equals the NumPy one.
* Data simulated from the three-level beta-binomial model are recovered: the top
  hyperparameters inside their 95% intervals, the labs' means and concentrations inside
  their 90% intervals as often as a binomial bound allows.
* The predictive of a new experiment in a known lab is centred at that lab's mean and
  narrower than that of a new experiment in a new lab.
* The Fit contract: every request answered (checked against the posterior draws) or
  refused, posterior and prior predictive draws and their checks, save → load, seeds.
* Bad inputs give one-line errors.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import poolwise
from poolwise import ExistingGroup, NewGroup, NewGroupIn, NewRows, Population
from poolwise.exceptions import DataError, SamplingWarning, SpecificationError
from poolwise.families import get_family
from poolwise.kinds.nested import (
    TOP_NAMES,
    NestedFit,
    NestedModel,
    NestedPrior,
    _log_density,
    describe_nested_prior,
    lab_log_marginal,
    nested_data,
    parse_group_path,
)
from poolwise.results.checks import CHECK_COLUMNS

#: the generating top-level parameters of the simulation: lab mean rates around 15%
#: (logit −1.73, lab-to-lab sd 0.5 on the logit scale), concentrations around 30
TRUTH = {"m_u": float(special.logit(0.15)), "s_u": 0.5, "m_v": math.log(30.0), "s_v": 0.5}


def simulate_labs(seed: int, labs: int = 16, experiments: int = 5) -> tuple[pd.DataFrame, dict]:
    """Experiments within labs from the three-level beta-binomial model, and the truth."""
    rng = np.random.default_rng(seed)
    u = TRUTH["m_u"] + TRUTH["s_u"] * rng.standard_normal(labs)
    v = TRUTH["m_v"] + TRUTH["s_v"] * rng.standard_normal(labs)
    alpha, beta = np.exp(v) * special.expit(u), np.exp(v) * special.expit(-u)
    rows = []
    for i in range(labs):
        for j in range(experiments):
            n = int(rng.integers(20, 80))
            rows.append((f"lab{i}", f"e{j}", rng.binomial(n, rng.beta(alpha[i], beta[i])), n))
    table = pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"])
    return table, {"mu_lab": special.expit(u), "kappa_lab": np.exp(v)}


@pytest.fixture(scope="module")
def simulated() -> tuple[NestedFit, dict]:
    table, truth = simulate_labs(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)  # the diagnostics must pass
        fit = NestedModel(family="beta-binomial", draws=500, warmup=500, chains=4,
                          seed=1).fit(table, y="y", n="n", group="lab/experiment")
    return fit, truth


# ------------------------------------------------------------------ the marginal likelihood
def _quadrature(family: str, alpha: float, beta: float, y: float, n: float) -> float:
    """log ∫ p(y | θ) Pop(θ | α, β) dθ by adaptive quadrature."""
    if family == "beta-binomial":
        def integrand(t: float) -> float:
            return float(stats.binom.pmf(y, n, t) * stats.beta.pdf(t, alpha, beta))
        value = integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0]
    elif family == "gamma-poisson":
        def integrand(t: float) -> float:
            return float(stats.poisson.pmf(y, n * t) * stats.gamma.pdf(t, alpha, scale=1 / beta))
        value = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]
    else:
        def integrand(t: float) -> float:
            return float(stats.norm.pdf(y, t, n) * stats.norm.pdf(t, alpha, beta))
        value = integrate.quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-11,
                               limit=200)[0]
    return math.log(value)


TINY = {
    "beta-binomial": pd.DataFrame({"lab": ["A", "A", "B", "B", "B"], "experiment": [1, 2, 1, 2, 3],
                                   "y": [3, 0, 7, 12, 5], "n": [10, 8, 20, 25, 9]}),
    "gamma-poisson": pd.DataFrame({"lab": ["A", "A", "B", "B", "B"], "experiment": [1, 2, 1, 2, 3],
                                   "y": [3, 0, 7, 12, 5], "n": [2.5, 1.0, 4.0, 6.0, 3.0]}),
    "normal": pd.DataFrame({"lab": ["A", "A", "B", "B", "B"], "experiment": [1, 2, 1, 2, 3],
                            "y": [1.2, -0.4, 3.1, 2.2, 2.9], "se": [0.8, 1.1, 0.5, 0.9, 1.4]}),
}
POINT = {"beta-binomial": ([-0.9, 0.2], [1.5, 2.8]), "gamma-poisson": ([0.4, 0.9], [0.7, 2.0]),
         "normal": ([0.3, 2.7], [-0.2, 0.4])}


def _tiny(family: str):
    normal = family == "normal"
    return nested_data(TINY[family], "y", n=None if normal else "n", se="se" if normal else None,
                       family=family)


@pytest.mark.parametrize("family", list(TINY))
def test_lab_marginal_equals_numerical_integration(family):
    data = _tiny(family)
    u, v = (np.array(values) for values in POINT[family])
    closed = lab_log_marginal(get_family(family), u, v, data)
    alpha, beta = get_family(family).from_uv(u, v)
    brute = [sum(_quadrature(family, alpha[i], beta[i], data.y[j], data.n[j])
                 for j in np.flatnonzero(data.lab_index == i)) for i in range(data.n_labs)]
    np.testing.assert_allclose(closed, brute, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family", list(TINY))
@pytest.mark.parametrize("centred", [(False, False), (True, True)])
def test_jax_log_density_equals_numpy(family, centred):
    from poolwise._ops import NUMPY_OPS, jax_ops

    data = _tiny(family)
    fam = get_family(family)
    prior = NestedPrior().resolve(fam, data)
    z = np.array([0.3, -0.4, 1.1, -0.9, 0.5, -1.2, 0.8, 0.1])
    numpy_value = _log_density(fam, prior, data, centred, NUMPY_OPS)(z)
    jax_value = float(_log_density(fam, prior, data, centred, jax_ops())(z))
    assert np.isfinite(numpy_value)
    assert jax_value == pytest.approx(float(numpy_value), rel=1e-12)


# --------------------------------------------------------------------- simulation recovery
def test_top_level_parameters_recovered(simulated):
    fit, _ = simulated
    table = fit.top_summary(0.95).set_index("param")
    for name in TOP_NAMES:
        assert table.loc[name, "lower"] < TRUTH[name] < table.loc[name, "upper"], name
    assert fit.info["divergences"] == 0


def test_lab_parameters_covered_at_nominal_rate(simulated):
    fit, truth = simulated
    table = fit.summary(0.90, diagnostics=False)
    inside = []
    for name in ("mu_lab", "kappa_lab"):
        rows = table[table["param"] == name].set_index("group").loc[fit.data.labs]
        inside += list((rows["lower"] < truth[name]) & (truth[name] < rows["upper"]))
    # 32 interval checks at 90%: fewer than binom.ppf(0.005) inside would be a 1-in-200 event
    # (the checks share the top-level draws, so they are not quite independent)
    least = stats.binom.ppf(0.005, len(inside), 0.90)
    assert sum(inside) >= least, f"{sum(inside)} of {len(inside)} inside, need {least}"


def test_posterior_layout(simulated):
    fit, _ = simulated
    posterior = fit.posterior
    assert set(TOP_NAMES) | {"alpha", "beta", "mu_lab", "kappa_lab", "theta"} \
        == set(posterior.data_vars)
    assert posterior["alpha"].dims == ("chain", "draw", "lab")
    assert posterior["theta"].dims == ("chain", "draw", "experiment")
    assert list(posterior["experiment"].values[:2]) == ["lab0:e0", "lab0:e1"]
    lab_of = fit.tree["observed_data"]["lab_of_experiment"]
    assert list(lab_of.values[:6]) == ["lab0"] * 5 + ["lab1"]
    table = fit.summary(diagnostics=False)
    assert list(table["param"][:4]) == list(TOP_NAMES)
    assert table["group"].iloc[:4].isna().all()
    assert (table["param"] == "theta").sum() == fit.data.n_experiments
    # θ are exact conditional draws: the mean of θ_ij lies between the raw rate and its lab
    theta = table[table["param"] == "theta"]["mean"].to_numpy()
    assert np.all(np.abs(theta - fit.data.y / fit.data.n) < 0.3)


def test_predictions_new_experiment_vs_new_lab(simulated):
    fit, _ = simulated
    new = fit.predict(NewGroup(size=50))
    # a typical lab: the one whose mean is nearest the new-lab predictive mean. (A lab whose
    # own experiments vary more than the typical lab's, e.g. one with a mean rate nearer ½,
    # can have a wider new-experiment predictive than a new lab; on average it is narrower.)
    means = fit.draws("mu_lab").reshape(-1, fit.data.n_labs).mean(axis=0)
    lab = str(fit.data.labs[np.argmin(np.abs(means - new["theta"].mean()))])
    known = fit.predict(NewGroupIn(lab, size=50))
    assert lab in known.description and "new lab" in new.description
    mu = fit.draws("mu_lab")[..., list(fit.data.labs).index(lab)].ravel()
    # centred at the lab's mean: E[θ*] = E[μ_i], within Monte Carlo error
    theta = known["theta"]
    assert abs(theta.mean() - mu.mean()) < 4 * theta.std() / math.sqrt(mu.size)
    # narrower than a new lab's: the new lab adds the between-lab variation
    assert theta.std() < new["theta"].std()
    assert new["lab_mean"].std() > 1.5 * mu.std()
    every = [fit.predict(NewGroupIn(str(other)))["theta"].var() for other in fit.data.labs]
    assert np.mean(every) < new["theta"].var()
    k = known.summary(0.9).set_index("param")
    n = new.summary(0.9).set_index("param")
    assert k.loc["theta", "upper"] - k.loc["theta", "lower"] \
        < n.loc["theta", "upper"] - n.loc["theta", "lower"]
    assert k.loc["y", "upper"] - k.loc["y", "lower"] <= n.loc["y", "upper"] - n.loc["y", "lower"]
    assert np.all((known["y"] >= 0) & (known["y"] <= 50))
    assert "y" not in fit.predict(NewGroupIn(lab)).draws
    existing = fit.predict(ExistingGroup(f"{lab}:e0"))
    own = fit.data.n[list(fit.data.labels).index(f"{lab}:e0")]
    assert f"trials {own:g}" in existing.description
    assert existing["y"].max() <= own
    assert existing["theta"].std() < theta.std()


def test_graph_has_nested_plates(simulated, tmp_path):
    from poolwise.outputs.render import render

    graph = fit_graph = simulated[0].graph()
    plates = {plate.name: plate for plate in graph.plates}
    assert plates["experiments"].inside == "labs"
    assert set(plates["labs"].nodes) == {"u", "v"}
    assert set(plates["experiments"].nodes) == {"theta", "n", "y"}
    assert graph.parents("theta") == ("u", "v")
    assert "16" in plates["labs"].label
    render(fit_graph, tmp_path / "nested.png")
    assert (tmp_path / "nested.png").stat().st_size > 0


def test_save_and_load(simulated, tmp_path):
    fit, _ = simulated
    fit.save(tmp_path / "fit.nc")
    back = poolwise.load(tmp_path / "fit.nc")
    assert isinstance(back, NestedFit)
    assert list(back.data.labels) == list(fit.data.labels)
    assert list(back.data.inner[:2]) == ["e0", "e1"]
    np.testing.assert_array_equal(back.data.lab_index, fit.data.lab_index)
    np.testing.assert_array_equal(back.data.y, fit.data.y)
    assert back.data.notes == fit.data.notes and back.data.inner_unique == fit.data.inner_unique
    np.testing.assert_allclose(back.draws("m_u"), fit.draws("m_u"))
    assert back.describe_prior() == fit.describe_prior()
    assert back.model.spec() == fit.model.spec() and back.config == fit.config
    assert back.title() == fit.title()
    assert back.info["divergences"] == fit.info["divergences"]
    pd.testing.assert_frame_equal(back.summary(), fit.summary())
    pd.testing.assert_frame_equal(back.lab_summary(), fit.lab_summary())
    request = NewGroupIn("lab3", size=40)
    pd.testing.assert_frame_equal(back.predict(request).summary(),
                                  fit.predict(request).summary())


# --------------------------------------------------------------------------- the Fit contract
def test_model_spec_rebuilds_the_model():
    model = NestedModel(family="gaussian", prior="s_u=halfnormal(0.5)", draws=20, seed=3,
                        parametrisation="centred")
    spec = model.spec()
    assert json.loads(json.dumps(spec)) == spec
    again = type(model)(**spec)
    assert again.spec() == spec and again.family.name == "normal"
    assert str(again.prior.s_u) == "HalfNormal(0.5)" and again.prior.m_u is None
    assert again.parametrisation == "centred" and NestedModel().parametrisation == "non-centred"
    assert NestedModel().config.target_accept == NestedModel.TARGET_ACCEPT == 0.9
    assert NestedModel(target_accept=0.95).config.target_accept == 0.95
    assert (model.kind, model.method, model.pooling) == ("nested", "nuts", "partial")


def test_every_request_is_answered(simulated):
    fit, _ = simulated
    assert fit.requests() == (ExistingGroup, NewGroup, NewGroupIn, Population)
    draws = fit.config.chains * fit.config.draws
    # an experiment in the fit: θ is its posterior draws, y* ~ Binomial(n_ij, θ) within its
    # trials, so E[y*] = n E[θ] (y* − nθ are independent across draws given θ)
    j = 7
    label, n = str(fit.data.labels[j]), float(fit.data.n[j])
    existing = fit.predict(ExistingGroup(label))
    theta = existing["theta"]
    np.testing.assert_array_equal(theta, fit.draws("theta")[..., j].ravel())
    lab = int(fit.data.lab_index[j])
    np.testing.assert_array_equal(existing["lab_mean"], fit.draws("mu_lab")[..., lab].ravel())
    y = existing["y"]
    assert y.shape == (draws,) and np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= n
    assert abs(y.mean() - n * theta.mean()) < 4 * math.sqrt(n * 0.25 / draws)
    assert existing.draws["theta"].dims == ("chain", "draw")
    assert "held" in existing.description and "afresh" in existing.description
    # a new experiment in lab i: lab_mean is μ_i's posterior draws
    known = fit.predict(NewGroupIn("lab2", size=30))
    np.testing.assert_array_equal(known["lab_mean"], fit.draws("mu_lab")[..., 2].ravel())
    assert "held" in known.description and "afresh" in known.description
    assert set(known.draws) == {"theta", "y", "lab_mean"}
    # a new lab: θ* ~ Beta(α*, β*), so E[θ*] = E[the new lab's mean]
    new = fit.predict(NewGroup())
    assert set(new.draws) == {"theta", "lab_mean"}
    gap = new["theta"] - new["lab_mean"]
    assert abs(gap.mean()) < 4 * gap.std() / math.sqrt(draws)
    assert "afresh" in new.description
    # the population: the typical lab's mean rate, expit(m_u) for the beta-binomial
    population = fit.predict(Population())
    assert list(population.draws) == ["mu"]
    np.testing.assert_allclose(population["mu"], special.expit(fit.draws("m_u").ravel()),
                               rtol=1e-12)


def test_posterior_predictive_and_its_check(simulated):
    fit, _ = simulated
    assert "posterior_predictive" in fit.tree.children
    replicated = fit.posterior_predictive()
    assert replicated["y"].dims == ("chain", "draw", "experiment")
    assert replicated["y"].shape == (4, 500, fit.data.n_experiments)
    y = replicated["y"].values
    assert np.all((y >= 0) & (y <= fit.data.n)) and np.all(y == np.round(y))
    # E[y_rep,ij] = n_ij E[θ_ij]; y_rep − n θ are independent across draws given θ
    theta = fit.draws("theta")
    gap = (y - fit.data.n * theta).reshape(-1, fit.data.n_experiments)
    assert np.all(np.abs(gap.mean(axis=0)) < 4.5 * gap.std(axis=0) / math.sqrt(gap.shape[0]))
    table = fit.predictive_check()
    assert list(table.columns) == CHECK_COLUMNS
    assert set(table["variable"]) == {"y/n"}
    per_lab = table[table["statistic"] == "group mean"]
    assert per_lab["group"].tolist() == fit.data.labs.tolist()
    whole = table[table["group"].isna()].set_index("statistic")
    assert whole.loc["mean", "observed"] == pytest.approx(np.mean(fit.data.y / fit.data.n))
    assert 0.01 < whole.loc["mean", "p_value"] < 0.99
    check = fit.check_data()[0]
    assert check.groups.tolist() == fit.data.lab_of().tolist() and not check.discrete
    assert check.replicated.shape == (2000, fit.data.n_experiments)


def test_prior_predictive():
    model = NestedModel(family="normal", draws=500, chains=2)
    table = TINY["normal"]
    pp = model.prior_predictive(table, y="y", se="se")
    prior = pp.tree["prior"].to_dataset()
    assert prior["theta"].shape == (1, 1000, 5)
    assert prior["mu_lab"].dims == ("chain", "draw", "lab")
    y = np.asarray(pp.tree["prior_predictive"]["y"].values)
    assert y.shape == (1, 1000, 5)
    # the draws follow the priors as resolved for the data: m_u ~ Normal(mean, sd)
    resolved = model.prior.resolve(model.family, model.prepare(table, y="y", se="se"))
    assert resolved.m_u is not None
    mean, sd = resolved.m_u.params
    m_u = prior["m_u"].values.ravel()
    assert abs(m_u.mean() - mean) < 4 * sd / math.sqrt(m_u.size)
    # and y_ij ~ N(θ_ij, se_ij²)
    z = ((y - prior["theta"].values) / table["se"].to_numpy()).ravel()
    assert abs(z.std() - 1) < 4 / math.sqrt(2 * z.size)
    summary = pp.summary()
    assert set(summary["param"]) == set(TOP_NAMES) | {"mu_lab", "tau_lab", "theta"}
    assert summary[summary["param"] == "mu_lab"]["group"].tolist() == ["A", "B"]
    check = pp.check()
    assert list(check.columns) == CHECK_COLUMNS
    assert check[check["statistic"] == "group mean"]["group"].tolist() == ["A", "B"]
    again = model.prior_predictive(table, y="y", se="se")
    np.testing.assert_array_equal(again.tree["prior"]["m_u"].values, prior["m_u"].values)
    rates = NestedModel().prior_predictive(BASE, y="y", n="n", draws=50)
    counts = np.asarray(rates.tree["prior_predictive"]["y"].values)
    assert np.all((counts >= 0) & (counts <= BASE["n"].to_numpy()))
    with pytest.raises(SpecificationError, match="prior of m_u is flat"):
        NestedModel(prior="m_u=flat").prior_predictive(BASE, y="y", n="n")


def test_seed_fixes_the_draws():
    settings = {"draws": 30, "warmup": 30, "chains": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # few draws
        fit = NestedModel(seed=5, **settings).fit(BASE, y="y", n="n")
        again = poolwise.fit(BASE, y="y", n="n", group="lab/experiment", seed=5, **settings)
        other = NestedModel(seed=6, **settings).fit(BASE, y="y", n="n")
    assert again.kind == "nested"
    for name in ("m_u", "s_v", "theta"):
        np.testing.assert_array_equal(fit.draws(name), again.draws(name))
        assert not np.array_equal(fit.draws(name), other.draws(name))
    request = NewGroup(size=20)
    np.testing.assert_array_equal(fit.predict(request)["y"], again.predict(request)["y"])
    assert not np.array_equal(fit.predict(request)["theta"],
                              fit.predict(request, seed=1)["theta"])
    np.testing.assert_array_equal(fit.posterior_predictive()["y"],
                                  again.posterior_predictive()["y"])
    assert not np.array_equal(fit.posterior_predictive()["y"],
                              fit.posterior_predictive(seed=9)["y"])
    assert fit.info["parametrisation"] == "non-centred"
    assert fit.title() == "beta-binomial, experiments within labs (2 labs, 5 experiments), " \
        "method nuts"


@pytest.mark.parametrize("family", list(TINY))
def test_equations_parse_and_carry_the_values(family):
    from matplotlib.mathtext import MathTextParser

    model = NestedModel(family=family, prior="s_u=halfnormal(0.5)")
    lines = model.equations(_tiny(family))
    assert r"i = 1, \ldots, 2" in lines[0]
    assert r"s_u \sim \mathrm{HalfNormal}(0.5)" in lines
    assert model.equations()[0].endswith(r"i = 1, \ldots, I")
    flat = NestedModel(family=family, prior="m_u=flat").equations()
    assert r"p(m_u) \propto 1" in flat
    parser = MathTextParser("agg")
    for line in lines + model.equations() + flat:
        parser.parse(f"${line}$", dpi=72)
    # the graph: the priors' constants as fixed nodes where they are known
    assert "s_u_scale" in model.graph().fixed() and "m_u_mu" not in model.graph().fixed()
    assert "m_u_mu" in model.graph(_tiny(family)).fixed()


# ----------------------------------------------------------------- the other two families
def test_normal_students_in_classrooms_in_schools():
    """Raw scores of students, reduced to classroom means and standard errors."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(5):
        school = 70 + 6 * rng.standard_normal()
        for j in range(3):
            classroom = school + 3 * rng.standard_normal()
            rows += [(f"s{i}", f"c{j}", classroom + 10 * rng.standard_normal())
                     for _ in range(12)]
    table = pd.DataFrame(rows, columns=["school", "classroom", "score"])
    model = NestedModel(family="gaussian", draws=200, warmup=300, chains=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # few draws
        fit = model.fit(table, y="score", group="school/classroom")
    assert set(fit.posterior.data_vars) == set(TOP_NAMES) | {"mu_lab", "tau_lab", "theta"}
    assert any("unique only within their school" in note for note in fit.data.notes)
    assert "Normal(" in fit.describe_prior() and "log τ_i" in fit.describe_prior()
    lab = fit.lab_summary()
    assert list(lab.columns[:2]) == ["school", "classrooms"]
    assert np.all(np.abs(lab["mean"] - lab["raw"]) < 3 * lab["sd"] + 3)
    known, new = fit.predict(NewGroupIn("s1")), fit.predict(NewGroup())
    assert known["theta"].std() < new["theta"].std()
    # the typical school's mean is m_u itself; a classroom's new data are N(θ_ij, se_ij²)
    np.testing.assert_array_equal(fit.predict(Population())["mu"], fit.draws("m_u").ravel())
    existing = fit.predict(ExistingGroup("s0:c0"))
    se = float(fit.data.n[0])
    assert f"standard error {se:g}" in existing.description
    theta = fit.draws("theta")[..., 0].ravel()
    excess = existing["y"] - existing["theta"]
    assert abs(excess.std() - se) < 4 * se / math.sqrt(2 * theta.size)
    assert fit.title() == ("normal, classrooms within schools (5 schools, 15 classrooms), "
                           "method nuts")


def test_gamma_poisson_runs():
    rng = np.random.default_rng(6)
    rows = []
    for i in range(4):
        rate = 0.02 * math.exp(0.4 * rng.standard_normal())
        for j in range(4):
            exposure = float(rng.uniform(200, 800))
            rows.append((f"h{i}", j, rng.poisson(exposure * rng.gamma(8.0, rate / 8.0)),
                         exposure))
    table = pd.DataFrame(rows, columns=["hospital", "ward", "deaths", "exposure"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = NestedModel(family="gamma-poisson", prior="s_u=halfnormal(0.5)", draws=200,
                          warmup=300, chains=2).fit(table, y="deaths", n="exposure",
                                                    group="hospital/ward")
    assert "s_u ~ HalfNormal(0.5)" in fit.describe_prior()
    mu = fit.lab_summary()["mean"].to_numpy()
    assert np.all((mu > 0.005) & (mu < 0.08))
    prediction = fit.predict(NewGroup(size=500.0))
    assert np.all(prediction["y"] >= 0)
    # the typical hospital's rate: exp(m_u), the mean of Gamma(α, β) at (u, v) = (m_u, m_v)
    np.testing.assert_allclose(fit.predict(Population())["mu"],
                               np.exp(fit.draws("m_u").ravel()), rtol=1e-12)


# ---------------------------------------------------------------------------- bad inputs
BASE = TINY["beta-binomial"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"y": "yy", "n": "n"}, "count (y) column 'yy' not found (did you mean 'y'?)"),
    ({"y": "y", "n": "trials"}, "trials column 'trials' not found"),
    ({"y": "y", "n": "n", "outer": "laboratory"}, "group column 'laboratory' not found"),
    ({"y": "y", "n": "n", "inner": "run"}, "group column 'run' not found"),
    ({"y": "y", "n": "n", "inner_unique": True},
     "experiment '1' appears under lab 'A' (data row 1) and lab 'B' (data row 3)"),
])
def test_bad_tables(kwargs, message):
    with pytest.raises(DataError) as error:
        nested_data(BASE, **kwargs)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_inner_labels_unique_or_within_lab():
    within = nested_data(BASE, "y", "n")
    assert not within.inner_unique and within.notes
    assert list(within.labels) == ["A:1", "A:2", "B:1", "B:2", "B:3"]
    unique = nested_data(BASE.assign(experiment=["a", "b", "c", "d", "e"]), "y", "n",
                         inner_unique=True)
    assert unique.inner_unique and not unique.notes
    assert list(unique.labels) == ["A:a", "A:b", "B:c", "B:d", "B:e"]
    # rows of one experiment are summed; labs keep their order of first appearance
    interleaved = pd.DataFrame({"lab": ["B", "A", "B", "A"], "experiment": [1, 1, 1, 2],
                                "y": [1, 2, 3, 4], "n": [10, 10, 10, 10]})
    data = nested_data(interleaved, "y", "n")
    assert list(data.labs) == ["B", "A"]
    assert list(data.labels) == ["B:1", "A:1", "A:2"]
    np.testing.assert_array_equal(data.y, [4, 2, 4])
    np.testing.assert_array_equal(data.lab_index, [0, 1, 1])


def test_other_bad_inputs():
    with pytest.raises(DataError, match=r"one lab .*'A'.*flat model"):
        nested_data(BASE[BASE["lab"] == "A"], "y", "n")
    with pytest.raises(DataError, match="successes cannot exceed trials"):
        nested_data(BASE.assign(y=[30, 0, 7, 12, 5]), "y", "n")
    with pytest.raises(SpecificationError, match="standard errors"):
        nested_data(BASE, "y", "n", family="normal")
    with pytest.raises(SpecificationError, match="not se="):
        nested_data(BASE, "y", se="n", family="beta-binomial")
    with pytest.raises(SpecificationError, match="no nested model for the 'poison' family"):
        NestedModel(family="poison")
    with pytest.raises(SpecificationError, match="no nested model for the 'poisson' family"):
        NestedModel(family="poisson")
    with pytest.raises(SpecificationError, match="unknown hyperparameter 'tau'"):
        NestedModel(prior="tau=halfnormal(1)")
    with pytest.raises(SpecificationError, match="s_u is a scale"):
        NestedModel(prior="s_u=normal(0, 1)")
    with pytest.raises(SpecificationError, match="m_v is a location"):
        NestedModel(prior="m_v=halfnormal(1)")
    with pytest.raises(SpecificationError, match="parametrisation must be one of auto, "
                                                 "non-centred, centred, got 'marginal'"):
        NestedModel(parametrisation="marginal")
    with pytest.raises(SpecificationError, match="draws must be"):
        NestedModel(draws=0)
    with pytest.raises(SpecificationError, match="offers partial pooling, not no pooling"):
        NestedModel(pooling="none")
    with pytest.raises(SpecificationError, match="unknown method 'gibbs' for a nested model"):
        NestedModel(method="gibbs")
    with pytest.raises(SpecificationError, match="target_accept must be"):
        NestedModel(target_accept=1.5)
    with pytest.raises(SpecificationError, match="one grouping column"):
        NestedModel().fit(BASE, y="y", n="n", group="lab")
    with pytest.raises(SpecificationError, match="name the column"):
        NestedModel().fit(BASE, n="n")


def test_bad_predictions(simulated):
    fit, _ = simulated
    with pytest.raises(SpecificationError, match=r"no lab 'lab99'.*NewGroup\(\)"):
        fit.predict(NewGroupIn("lab99"))
    with pytest.raises(SpecificationError, match="must be a number > 0"):
        fit.predict(NewGroup(size=-3))
    with pytest.raises(SpecificationError, match="whole number"):
        fit.predict(NewGroupIn("lab1", size=2.5))
    with pytest.raises(SpecificationError, match="lab:experiment"):
        fit.predict(ExistingGroup("e0"))
    with pytest.raises(SpecificationError, match="for mixed models"):
        fit.predict(ExistingGroup("lab0:e0", factor="lab"))
    with pytest.raises(SpecificationError, match=r"NewGroup\(y=...\).*refit"):
        fit.predict(NewGroup(size=30, y=4))
    with pytest.raises(SpecificationError, match="cannot answer NewRows"):
        fit.predict(NewRows(pd.DataFrame({"lab": ["lab0"]})))


def test_prior_parsing_and_description():
    prior = NestedPrior.parse("s_u=halfnormal(0.5), m_v=normal(2, 1)")
    assert prior.m_u is None and str(prior.s_u) == "HalfNormal(0.5)"
    assert NestedPrior.parse(prior.spec()) == prior
    text = NestedModel(family="beta-binomial").describe_prior()
    for piece in ("logit of lab i's mean rate", "m_u ~ Normal(logit pooled rate, 2)",
                  "s_v ~ HalfNormal(1)"):
        assert piece in text
    # the prior lines as printed ('~', separated by ';') read back; a misspelt name is named
    printed = describe_nested_prior(get_family("beta-binomial"), prior).split("; ")
    assert NestedPrior.parse("; ".join(printed[3:]).replace(
        "Normal(logit pooled rate, 2)", "Normal(-2, 2)")).s_u == prior.s_u
    with pytest.raises(SpecificationError, match="'s_uu' in nested prior 's_uu=halfnormal"
                                                 r"\(1\)' \(did you mean 's_u'\?\)"):
        NestedPrior.parse("s_uu=halfnormal(1)")


@pytest.mark.parametrize(("text", "expected"), [("lab/experiment", ("lab", "experiment")),
                                                (" school / classroom ", ("school", "classroom"))])
def test_parse_group_path(text, expected):
    assert parse_group_path(text) == expected


@pytest.mark.parametrize(("text", "message"), [("lab", "one grouping column"),
                                               ("a/b/c", "3 levels"), ("lab/", "empty"),
                                               ("lab/lab", "same column")])
def test_parse_group_path_errors(text, message):
    with pytest.raises(SpecificationError, match=message):
        parse_group_path(text)
