"""Nested groups (experiments within labs, classrooms within schools): poolwise.nested.

* Each lab's marginal likelihood, θ integrated out in closed form, equals brute-force
  numerical integration over θ (SciPy quad) for all three families, and the JAX log density
  NUTS uses equals the NumPy one.
* Data simulated from the three-level beta-binomial model are recovered: the top
  hyperparameters inside their 95% intervals, the labs' means and concentrations inside
  their 90% intervals as often as a binomial bound allows.
* The predictive of a new experiment in a known lab is centred at that lab's mean and
  narrower than that of a new experiment in a new lab.
* Bad inputs give one-line errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from poolwise.exceptions import DataError, SamplingWarning, SpecificationError
from poolwise.families import get_family
from poolwise.nested import (
    TOP_NAMES,
    NestedFit,
    NestedModel,
    NestedPrior,
    _log_density,
    lab_log_marginal,
    nested_data,
    parse_group_path,
)

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
        fit = NestedModel("beta-binomial").fit(table, y="y", n="n", draws=500, warmup=500,
                                               chains=4, seed=1)
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
    assert list(posterior["lab_of_experiment"].values[:6]) == ["lab0"] * 5 + ["lab1"]
    table = fit.summary(diagnostics=False)
    assert list(table["param"][:4]) == list(TOP_NAMES)
    assert table["group"].iloc[:4].isna().all()
    assert (table["param"] == "theta").sum() == fit.data.n_experiments
    # θ are exact conditional draws: the mean of θ_ij lies between the raw rate and its lab
    theta = table[table["param"] == "theta"]["mean"].to_numpy()
    assert np.all(np.abs(theta - fit.data.y / fit.data.n) < 0.3)


def test_predictions_new_experiment_vs_new_lab(simulated):
    fit, _ = simulated
    new = fit.predict_new_lab(n=50)
    # a typical lab: the one whose mean is nearest the new-lab predictive mean. (A lab whose
    # own experiments vary more than the typical lab's, e.g. one with a mean rate nearer ½,
    # can have a wider new-experiment predictive than a new lab; on average it is narrower.)
    means = fit.draws("mu_lab").reshape(-1, fit.data.n_labs).mean(axis=0)
    lab = str(fit.data.labs[np.argmin(np.abs(means - new.theta.mean()))])
    known = fit.predict_new_experiment(lab, n=50)
    assert known.kind == "new-experiment" and new.kind == "new-lab"
    assert lab in known.description and "new lab" in new.description
    mu = fit.draws("mu_lab")[..., list(fit.data.labs).index(lab)].ravel()
    # centred at the lab's mean: E[θ*] = E[μ_i], within Monte Carlo error
    assert abs(known.theta.mean() - mu.mean()) < 4 * known.theta.std() / math.sqrt(mu.size)
    # narrower than a new lab's: the new lab adds the between-lab variation
    assert known.theta.std() < new.theta.std()
    assert new.lab_mean.std() > 1.5 * mu.std()
    every = [fit.predict_new_experiment(str(other)).theta.var() for other in fit.data.labs]
    assert np.mean(every) < new.theta.var()
    k, n = known.summary(0.9), new.summary(0.9)
    assert k["upper"] - k["lower"] < n["upper"] - n["lower"]
    assert k["y_upper"] - k["y_lower"] <= n["y_upper"] - n["y_lower"]
    assert known.y is not None and np.all((known.y >= 0) & (known.y <= 50))
    assert fit.predict_new_experiment(lab).y is None
    existing = fit.predict_experiment(f"{lab}:e0")
    assert existing.n == fit.data.n[list(fit.data.labels).index(f"{lab}:e0")]
    assert existing.theta.std() < known.theta.std()


def test_graph_has_nested_plates(simulated, tmp_path):
    from poolwise.graph import render

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
    back = NestedFit.load(tmp_path / "fit.nc")
    assert list(back.data.labels) == list(fit.data.labels)
    assert list(back.data.inner[:2]) == ["e0", "e1"]
    np.testing.assert_array_equal(back.data.lab_index, fit.data.lab_index)
    np.testing.assert_allclose(back.draws("m_u"), fit.draws("m_u"))
    assert back.describe_prior() == fit.describe_prior()


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
    model = NestedModel("normal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # few draws
        fit = model.fit(table, y="score", outer="school", inner="classroom", draws=200,
                        warmup=300, chains=2)
    assert set(fit.posterior.data_vars) == set(TOP_NAMES) | {"mu_lab", "tau_lab", "theta"}
    assert any("unique only within their school" in note for note in fit.data.notes)
    assert "Normal(" in fit.describe_prior() and "log τ_i" in fit.describe_prior()
    lab = fit.lab_summary()
    assert list(lab.columns[:2]) == ["school", "classrooms"]
    assert np.all(np.abs(lab["mean"] - lab["raw"]) < 3 * lab["sd"] + 3)
    known, new = fit.predict_new_experiment("s1"), fit.predict_new_lab()
    assert known.theta.std() < new.theta.std()


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
        fit = NestedModel("gamma-poisson", prior="s_u=halfnormal(0.5)").fit(
            table, y="deaths", n="exposure", outer="hospital", inner="ward", draws=200,
            warmup=300, chains=2)
    assert "s_u ~ HalfNormal(0.5)" in fit.describe_prior()
    mu = fit.lab_summary()["mean"].to_numpy()
    assert np.all((mu > 0.005) & (mu < 0.08))
    prediction = fit.predict_new_lab(n=500.0)
    assert prediction.y is not None and np.all(prediction.y >= 0)


# ---------------------------------------------------------------------------- bad inputs
BASE = TINY["beta-binomial"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"y": "yy", "n": "n"}, "count (y) column 'yy' not found (did you mean 'y'?)"),
    ({"y": "y", "n": "trials"}, "trials column 'trials' not found"),
    ({"y": "y", "n": "n", "outer": "laboratory"}, "group column 'laboratory' not found"),
    ({"y": "y", "n": "n", "inner": "run"}, "group column 'run' not found"),
    ({"y": "y", "n": "n", "inner_unique": True},
     "experiment '1' appears under lab 'A' (row 1) and lab 'B' (row 3)"),
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
    with pytest.raises(SpecificationError, match="unknown family"):
        NestedModel("poisson")
    with pytest.raises(SpecificationError, match="unknown hyperparameter 'tau'"):
        NestedModel(prior="tau=halfnormal(1)")
    with pytest.raises(SpecificationError, match="s_u is a scale"):
        NestedModel(prior="s_u=normal(0, 1)")
    with pytest.raises(SpecificationError, match="m_v is a location"):
        NestedModel(prior="m_v=halfnormal(1)")
    with pytest.raises(SpecificationError, match="unknown parametrisation"):
        NestedModel().fit(BASE, y="y", n="n", parametrisation="marginal")
    with pytest.raises(SpecificationError, match="draws must be"):
        NestedModel().fit(BASE, y="y", n="n", draws=0)


def test_bad_predictions(simulated):
    fit, _ = simulated
    with pytest.raises(SpecificationError, match=r"no lab 'lab99'.*predict_new_lab"):
        fit.predict_new_experiment("lab99")
    with pytest.raises(SpecificationError, match="must be a number > 0"):
        fit.predict_new_lab(n=-3)
    with pytest.raises(SpecificationError, match="whole number"):
        fit.predict_new_experiment("lab1", n=2.5)
    with pytest.raises(SpecificationError, match="lab:experiment"):
        fit.predict_experiment("e0")


def test_prior_parsing_and_description():
    prior = NestedPrior.parse("s_u=halfnormal(0.5), m_v=normal(2, 1)")
    assert prior.m_u is None and str(prior.s_u) == "HalfNormal(0.5)"
    assert NestedPrior.parse(prior.spec()) == prior
    text = NestedModel("beta-binomial").describe_prior()
    for piece in ("logit of lab i's mean rate", "m_u ~ Normal(logit pooled rate, 2)",
                  "s_v ~ HalfNormal(1)"):
        assert piece in text


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
