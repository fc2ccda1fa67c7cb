"""The Fit: summaries, predictions, diagnostics gate, save and load."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

import poolwise
from poolwise import ExistingGroup, Model, NewGroup, SamplingWarning, SpecificationError
from poolwise.families import BetaBinomial
from poolwise.inference import Draws
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.results.diagnostics import check_diagnostics, diagnostic_problems
from poolwise.results.summary import SUMMARY_COLUMNS


@pytest.fixture(scope="module")
def rats_fit(rats):
    return Model(prior="halfnormal(10)", seed=7).fit(rats, y="y", n="n", group="experiment")


def test_summary_layout(rats_fit, rats):
    table = rats_fit.summary()
    assert list(table.columns) == SUMMARY_COLUMNS
    assert table["param"].tolist()[:4] == ["alpha", "beta", "mu", "kappa"]
    assert table.query("param == 'theta'")["group"].tolist() == rats["experiment"].astype(
        str).tolist()
    narrow, wide = rats_fit.summary(0.5), rats_fit.summary(0.99)
    assert np.all(wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"])
    assert rats_fit.model.prior_spec() == "alpha=halfnormal(10.0), beta=halfnormal(10.0)"
    assert rats_fit.posterior["theta"].dims == ("chain", "draw", "group")


def test_seed_fixes_the_draws(rats):
    fit = Model(draws=100, seed=11).fit(rats, y="y", n="n", group="experiment")
    again = Model(draws=100, seed=11).fit(rats, y="y", n="n", group="experiment")
    other = Model(draws=100, seed=12).fit(rats, y="y", n="n", group="experiment")
    np.testing.assert_array_equal(fit.draws("theta"), again.draws("theta"))
    assert not np.array_equal(fit.draws("theta"), other.draws("theta"))


def test_save_and_load_round_trip(rats_fit, tmp_path):
    path = tmp_path / "fit.nc"
    rats_fit.save(path)
    loaded = poolwise.load(path)
    assert loaded.model.prior_spec() == rats_fit.model.prior_spec()
    assert loaded.method == "exact" and loaded.config == rats_fit.config
    np.testing.assert_array_equal(loaded.data.labels, rats_fit.data.labels)
    np.testing.assert_allclose(loaded.summary()[["mean", "sd"]], rats_fit.summary()[["mean", "sd"]])


def test_save_and_load_keep_empirical_bayes(rats, tmp_path):
    fit = Model(method="eb-ml").fit(rats, y="y", n="n", group="experiment")
    fit.save(tmp_path / "eb.nc")
    loaded = poolwise.load(tmp_path / "eb.nc")
    assert (loaded.eb.alpha, loaded.eb.beta) == (fit.eb.alpha, fit.eb.beta)
    np.testing.assert_allclose(loaded.eb.uv_covariance, fit.eb.uv_covariance)
    request = NewGroup(y=4, size=14)
    assert loaded.predict(request).brief() == fit.predict(request).brief()


def test_brand_new_group_is_drawn_from_the_population(rats_fit):
    new = rats_fit.predict(NewGroup(size=20))
    theta, y = new["theta"], new["y"]
    assert y.min() >= 0 and y.max() <= 20
    mu = rats_fit.draws("mu").ravel()
    # E[θ_new] = E[μ]; both averages use the same (α, β) draws, so compare with θ_new's MCSE
    assert abs(theta.mean() - mu.mean()) < 4 * theta.std() / np.sqrt(theta.size)
    assert abs(y.mean() / 20 - theta.mean()) < 4 * y.std() / 20 / np.sqrt(y.size)


def _fit_from(alpha, beta, theta, method="exact", **stats_):
    chains, draws = alpha.shape
    model = Model(prior="halfnormal(10)", method=method, draws=draws, chains=chains)
    from poolwise.data import GroupCounts

    data = GroupCounts(np.array(["a", "b"]), np.array([3.0, 4.0]), np.array([10.0, 12.0]))
    return ConjugateFit.from_draws(model, data, Draws(theta, alpha, beta, stats_))


def test_population_map_is_the_mode_of_mu():
    """u = logit μ ~ N(m, s): μ is logit-normal, whose mode we find by optimisation."""
    rng = np.random.default_rng(0)
    m, s = -1.2, 0.5
    u = rng.normal(m, s, (4, 5000))
    alpha, beta = BetaBinomial().from_uv(u, np.full_like(u, 2.0))
    fit = _fit_from(alpha, beta, rng.uniform(0.1, 0.9, (4, 5000, 2)))

    def negative_density(x):
        return -stats.norm.logpdf(np.log(x / (1 - x)), m, s) + np.log(x * (1 - x))

    mode = optimize.minimize_scalar(negative_density, bounds=(0.01, 0.99), method="bounded").x
    assert fit.population_mean()["map"] == pytest.approx(mode, abs=0.01)
    assert fit.population_mean()["map"] < fit.population_mean()["mean"]  # right skew


def test_bad_chains_raise_sampling_warnings():
    rng = np.random.default_rng(1)
    alpha = rng.gamma(5, 1, (4, 300)) + np.arange(4)[:, None]  # chains disagree
    beta = rng.gamma(20, 1, (4, 300))
    theta = rng.beta(2, 5, (4, 300, 2))
    diverging = np.zeros((4, 300), dtype=bool)
    diverging[0, :3] = True
    fit = _fit_from(alpha, beta, theta, method="nuts", diverging=diverging)
    problems = diagnostic_problems(fit)
    assert any("R-hat" in p for p in problems)
    assert any("3 divergent transitions" in p for p in problems)
    assert all("--" in p and "=" in p for p in problems)  # advice for Python and the CLI
    with pytest.warns(SamplingWarning) as caught:
        check_diagnostics(fit)
    assert any("R-hat is" in str(w.message) and "alpha" in str(w.message) for w in caught)
    assert not any("nan" in str(w.message) for w in caught)
    # the same draws from an exact method are not Markov chains: no gate
    assert diagnostic_problems(_fit_from(alpha, beta, theta)) == []


def test_large_fits_compute_the_log_likelihood_when_asked(rats, monkeypatch):
    """Past EAGER_LOG_LIKELIHOOD it is not stored, and with_log_likelihood gives the same."""
    import poolwise.kinds.conjugate

    eager = Model(draws=100, seed=5).fit(rats, y="y", n="n", group="experiment")
    monkeypatch.setattr(poolwise.kinds.conjugate, "EAGER_LOG_LIKELIHOOD", 10)
    lazy = Model(draws=100, seed=5).fit(rats, y="y", n="n", group="experiment")
    assert "log_likelihood" not in lazy.tree.children
    np.testing.assert_allclose(lazy.with_log_likelihood()["log_likelihood"]["y"].values,
                               eager.tree["log_likelihood"]["y"].values)


@pytest.mark.parametrize(("family", "dataset", "columns"), [
    ("beta-binomial", "rats", dict(y="y", n="n", group="experiment")),
    ("normal", "aspirin", dict(y="y", se="sd", group="study")),
])
def test_pooling_factor_is_the_weight_of_the_population_mean(family, dataset, columns):
    """Given the hyperparameters, E[θ_j | y_j] = (1 − B_j) · raw_j + B_j · μ exactly."""
    from poolwise import datasets

    table = datasets.load(dataset)
    if dataset == "rats":
        table = table.query("historical == 1")
    fit = Model(family=family, method="eb-ml").fit(table, **columns)
    summary = fit.summary()
    theta = summary.query("param == 'theta'")
    mu = summary.set_index("param").loc["mu", "mean"]
    factor = theta["pooling_factor"].to_numpy()
    raw = fit.model.family.raw_rate(fit.data.y, fit.data.n)
    np.testing.assert_allclose(theta["mean"], (1 - factor) * raw + factor * mu, rtol=1e-9)
    assert np.all((factor > 0) & (factor < 1))


def test_predict_existing_group_matches_the_posterior_predictive():
    """y* | y ~ N(E[θ_j], Var[θ_j] + σ_j²) for the normal family: check mean and variance."""
    from poolwise import datasets

    schools = datasets.load("eight-schools")
    fit = Model(family="normal", seed=1).fit(schools, y="y", se="sigma", group="school")
    y = fit.predict(ExistingGroup("A"))["y"]
    theta = fit.draws("theta")[..., 0].ravel()
    size = y.size
    assert abs(y.mean() - theta.mean()) < 4 * y.std() / np.sqrt(size)
    expected_var = theta.var() + 15.0**2
    # standard error of a sample variance: sqrt((m4 − var²) / N), m4 the fourth central moment
    centred = y - y.mean()
    se_var = np.sqrt((np.mean(centred**4) - y.var() ** 2) / size)
    assert abs(y.var() - expected_var) < 4 * se_var
    with pytest.raises(SpecificationError, match="no group 'Z'"):
        fit.predict(ExistingGroup("Z"))


def test_predict_existing_rate_group_counts_within_trials(rats_fit):
    y = rats_fit.predict(ExistingGroup("70", size=30))["y"]
    assert y.min() >= 0 and y.max() <= 30


def test_groups_are_not_flagged_from_too_few_replicated_data_sets():
    """From S replicates a per-group p-value of 0 comes by chance once in S + 1: below
    MIN_FLAG_REPLICATES no group is flagged, and every output says how many there were."""
    import numpy as np

    from poolwise.results.checks import (
        MIN_FLAG_REPLICATES,
        CheckData,
        check_table,
        describe_extreme,
        extreme_groups,
    )

    rng = np.random.default_rng(1)
    labels = np.array([f"g{k}" for k in range(400)])
    for replicates in (10, MIN_FLAG_REPLICATES, 400):
        check = CheckData("y", rng.normal(size=400), rng.normal(size=(replicates, 400)),
                          groups=labels)
        table = check_table([check])
        assert (table["replicates"] == replicates).all()
        extreme, groups, counted = extreme_groups(table)["y"]
        assert groups == 400 and counted == replicates
        line = describe_extreme("y", extreme, groups, counted)
        if replicates < MIN_FLAG_REPLICATES:
            assert extreme is None and "not flagged" in line and "10 replicated" in line
        else:
            # a model that fits: about 1/(S+1) per side flagged, never a fifth of them
            assert extreme is not None and extreme < 0.15 * groups


def test_a_rates_fit_counts_one_observed_value_per_group():
    """n_j is each group's size, not an observation: replicates and pointwise log
    likelihoods have one value per group (the report counted them twice)."""
    import poolwise

    rats = poolwise.datasets.load("rats").query("historical == 1")
    fit = poolwise.Model(method="eb-moments").fit(rats, y="y", n="n", group="experiment")
    assert fit.observed_values() == fit.data.n_groups == 70
    replicated = fit.posterior_predictive()
    assert replicated["y"].shape[-1] == fit.observed_values()


@pytest.mark.parametrize(("shape", "axis"), [((10, 1000), 0), ((3, 7, 50), 2), ((64, 5), 0),
                                             ((65, 5), 0), ((1, 4), 0), ((2, 9), 1)])
@pytest.mark.parametrize("ci_prob", [0.5, 0.9, 0.999])
def test_quantile_interval_is_numpys_linear_quantile(shape, axis, ci_prob):
    """The sorted path for few draws and np.quantile's give the same interval."""
    from poolwise.results.summary import quantile_interval

    values = np.random.default_rng(sum(shape)).normal(size=shape)
    tail = (1 - ci_prob) / 2
    expected = np.quantile(values, [tail, 1 - tail], axis=axis)
    for ours, theirs in zip(quantile_interval(values, ci_prob, axis=axis), expected,
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14)
