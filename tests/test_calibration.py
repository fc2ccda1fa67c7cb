"""Simulation-based calibration (poolwise.kinds.calibration): its statistics, every kind ×
method, and ``poolwise calibrate``.

The statistic's power, simulated (200 calibrations each; a posterior N(δ, s²) in units of the
true posterior, one parameter tested at p < 0.002, the threshold of five parameters; R = 12
and 20 with 100 draws ranked, the conjugate toy of ``normal_toy``):

    R = 12:   δ = 1.5: 87 %,  δ = 2: 99 %,   s = 0.33: 36 %   — the fast NUTS checks
    R = 20:   δ = 1: 76 %,    δ = 1.5: ≈ 100 %, s = 0.33: 71 %
    R = 40:   δ = 0.5: 31 %,  s = 0.67: 27 %   — the fast versions catch gross errors only
    R = 100:  δ = 0.5: 91 %,  s = 0.67: 87 %,  s = 1.5: 42 %
    R = 200:  δ = 0.5: 100 %, s = 0.8: 51 %,   s = 0.67: 99 %, s = 1.5: 97 %

An sd 0.67 of the truth's makes 95 % intervals cover 81 %: at R = 200 a miscoverage of
14 points of 95 % intervals, or a bias of half a posterior sd, is found (power ≥ 99 %). Every
verdict has the false-alarm rate ALPHA = 1 % (Bonferroni over its parameters). The
empirical-Bayes coverage checks flag a level further than z = 2.94 standard errors from
nominal (1 % over the three levels); the SE of a coverage at R replications of J groups is
about √(c(1−c)/(R·J)) or more, e.g. 1.1 points for 95 % intervals at R = 200, J = 20, so a
miscoverage of 4 points is found.

The full-power empirical-Bayes checks (every eb method of every kind, R = 200) share one
criterion, :func:`assert_eb_coverage`: every level within 5 points of nominal. Their
intervals include the hyperparameters' uncertainty (Kass–Steffey,
poolwise.inference.eb_intervals) only to the order of their approximation, so a small
miscoverage remains with few groups and is bounded rather than tested for presence (the
verdict's 2.94-SE test flags 2-4 points at these SEs of 0.4-1.6 points). The bound finds the
plug-in intervals' error with power ≈ 1 (with 8 groups their 95 % intervals cover 75 % for
NIG, 89 % for REML and 90 % for the binomial GLMM) and passes a correct method unless its
coverage strays by more than 3 SE.

The fast versions (default run) use fewer replications and draws and show that each check
can fail: the same machinery fed deliberately wrong posteriors (biased data, a wider
population than the method assumes) flags them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import poolwise
from poolwise import CustomModel, MixedModel, Model, NestedModel, NIGModel
from poolwise.cli import main
from poolwise.exceptions import SpecificationError
from poolwise.kinds.base import BaseModel
from poolwise.kinds.calibration import (
    ALPHA,
    Calibration,
    ecdf_statistic,
    normalised_rank,
    p_value,
    simultaneous_band,
)

RATES = pd.DataFrame({"y": [3, 5, 8, 2, 6, 1, 4, 7], "n": [20.0] * 8})
PROPER = "alpha=gamma(4, 1), beta=gamma(4, 0.2)"
FAST = {"draws": 100, "chains": 1}


def estimates(groups: int = 20, tau: float = 2.0, seed: int = 3) -> pd.DataFrame:
    """Estimates ± 1 of ``groups`` groups whose true effects spread with sd ``tau``."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, tau, groups)
    return pd.DataFrame({"g": [f"s{j}" for j in range(groups)],
                         "y": theta + rng.standard_normal(groups), "se": 1.0})


def assert_calibrated(result: Calibration) -> None:
    """The verdict is 'calibrated' (the table is printed: ``pytest -rP`` shows it)."""
    print(f"{result.kind} {result.method}: {result.verdict}; {result.failed} failed "
          f"({result.failure}), {result.warned} warned ({result.warning})\n"
          f"{result.table.to_string()}")
    assert result.calibrated, f"{result.verdict}\n{result.table.to_string()}"


#: the largest miscoverage the full empirical-Bayes checks accept (module docstring)
EB_TOLERANCE = 0.05


def assert_eb_coverage(result: Calibration) -> None:
    """Every level of an empirical-Bayes coverage check within EB_TOLERANCE of nominal."""
    assert result.mode == "coverage"
    off = (result.table["coverage"] - result.table["level"]).abs()
    assert off.max() < EB_TOLERANCE, f"{result.verdict}\n{result.table.to_string()}"


# ----------------------------------------------------------------------------- statistics
def test_p_values_of_uniform_ranks_are_uniform():
    """Under uniformity the simulated p-value is itself uniform: 300 p-values of R = 50
    uniform samples pass a KS test (false alarm 1e-3)."""
    rng = np.random.default_rng(1)
    p = [p_value(rng.random(50)) for _ in range(300)]
    assert stats.kstest(p, "uniform").pvalue > 1e-3


def test_band_is_arviz_stats_simulated_band():
    """The simultaneous band from the statistic's null quantile equals arviz-stats' own
    simulation of Säilynoja et al.'s band (ecdf_pit, 2000 simulations) to one count in R."""
    from arviz_stats.ecdf_utils import ecdf_pit

    reps = 100
    z, lower, upper = simultaneous_band(reps, 0.95)
    points, _, arviz_lower, arviz_upper = ecdf_pit(np.random.default_rng(0).random(reps),
                                                   0.95, 2000, rng=np.random.default_rng(5))
    assert np.allclose(points, z)
    assert np.max(np.abs(lower - arviz_lower)) <= 1.0 / reps + 1e-12
    assert np.max(np.abs(upper - arviz_upper)) <= 1.0 / reps + 1e-12


def test_statistic_matches_the_band():
    """An ECDF leaves the 95 % band exactly when its p-value is below 0.05 (up to the band's
    one-count discreteness): checked on 200 samples, uniform and skewed."""
    rng = np.random.default_rng(2)
    reps = 60
    z, lower, upper = simultaneous_band(reps, 0.95)
    agree = 0
    for k in range(200):
        u = rng.random(reps) ** (1.0 if k % 2 else 1.4)
        ecdf = np.searchsorted(np.sort(u), z, side="right") / reps
        outside = bool(np.any((ecdf < lower) | (ecdf > upper)))
        agree += outside == (p_value(u) < 0.05)
    assert agree >= 190


def normal_toy(reps: int, shift: float, scale: float, seed: int) -> float:
    """p-value of SBC ranks of μ ~ N(0, 1), y ~ N(μ, 1), from 100 draws of N(y/2 + shift·s,
    (scale·s)²), s = √½ the true posterior sd (shift 0, scale 1: the true posterior)."""
    rng = np.random.default_rng(seed)
    pit = []
    for _ in range(reps):
        mu = rng.standard_normal()
        y = mu + rng.standard_normal()
        sd = np.sqrt(0.5)
        draws = y / 2 + shift * sd + scale * sd * rng.standard_normal(100)
        pit.append(normalised_rank(draws, mu, rng))
    return p_value(pit)


@pytest.mark.parametrize(("shift", "scale", "wrong"), [
    (0.0, 1.0, False), (0.5, 1.0, True), (0.0, 0.5, True), (0.0, 2.0, True)])
def test_ranks_flag_wrong_posteriors(shift, scale, wrong):
    """The exact posterior of a conjugate toy is not flagged; one shifted by half an sd, or
    half or twice as wide, is (R = 200: power > 99.9 % for each, false alarm 1e-3)."""
    p = normal_toy(200, shift, scale, seed=4)
    assert (p < 1e-3) == wrong, p


def test_statistic_is_the_smallest_binomial_tail():
    """s of three values by hand: z = 1/3, 2/3; counts 1, 3 (values 0.1, 0.5, 0.6):
    s = min(P(Bin(3, 1/3) ≥ 1), P(Bin(3, 1/3) ≤ 1), P(Bin(3, 2/3) ≥ 3), …) = (2/3)³."""
    assert ecdf_statistic([0.1, 0.5, 0.6]) == pytest.approx((2 / 3) ** 3)


# ----------------------------------------------------------------------------- fast SBC
class BiasedRates(Model):
    """A deliberately wrong fit: every simulated count is raised by 3 (capped at n) before
    fitting, so the posterior sits above the truth."""

    def _with_simulated(self, data, simulated):
        y = np.minimum(np.asarray(simulated["y"]) + 3, data.n)
        return super()._with_simulated(data, {"y": y})


def test_rates_exact_fast():
    """Fast: 20 replications of exact on 8 groups; a bias of 2 sds or more is caught."""
    result = Model(prior=PROPER, **FAST).calibrate(RATES, y="y", n="n", reps=20, jobs=1)
    assert_calibrated(result)
    assert set(result.table["param"]) >= {"alpha", "beta"}
    assert result.table["param"].str.startswith("theta[").sum() == 3


def test_rates_exact_fast_flags_a_biased_posterior():
    result = BiasedRates(prior=PROPER, **FAST).calibrate(RATES, y="y", n="n", reps=20, jobs=1)
    assert not result.calibrated
    assert result.verdict.startswith("miscalibrated: ")


def test_rates_gibbs_fast():
    """Fast: gibbs with 10 replications, ranks among 10 of 200 draws (every 20th: the
    sampler mixes slowly along the α-β ridge)."""
    model = Model(prior=PROPER, method="gibbs", draws=200, chains=1, warmup=100)
    assert_calibrated(model.calibrate(RATES, y="y", n="n", reps=10, jobs=1, ranked_draws=10))


def test_nig_unpooled_exact_fast():
    """Fast: NIG exact draws under the default prior scaled to the data (fixed at its value
    on the user's data, so that simulated data do not rescale it)."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"g": np.repeat(list("ABCDE"), 6), "v": rng.normal(5, 2, 30)})
    result = NIGModel(pooling="none", **FAST).calibrate(table, y="v", group="g", reps=20,
                                                         jobs=1)
    assert_calibrated(result)
    assert "sigma2[" in " ".join(result.table["param"])


def test_mixed_importance_fast():
    """Fast: importance sampling of a random-intercept model, 12 replications."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"g": np.repeat(list("ABCDEF"), 5), "x": np.tile(np.arange(5.0), 6)})
    table["y"] = 1.0 + 0.5 * table["x"] + rng.normal(size=30)
    model = MixedModel(formula="y ~ x + (1 | g)", **FAST)
    result = model.calibrate(table, reps=12, jobs=1)
    assert_calibrated(result)
    assert {"b[Intercept]", "b[x]", "sigma", "sd_g[Intercept]"} <= set(result.table["param"])


# ----------------------------------------------------------------------------- fast NUTS
#: one short chain: ranks among its 100 draws (the targets are small and mix well)
NUTS_FAST = {"method": "nuts", "draws": 100, "warmup": 100, "chains": 1}
#: the nested and custom models' tables
LABS = pd.DataFrame({"lab": np.repeat(list("ABC"), 3), "experiment": list("123") * 3,
                     "y": [3, 5, 8, 2, 6, 1, 4, 7, 5], "n": 20.0})
NORMAL_MEAN = {"y": np.array([0.3, 1.2, 2.5, 1.9, 0.7]), "sd": 1.0}


def small_mixed() -> pd.DataFrame:
    """6 groups × 5 rows, a random intercept and a slope."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"g": np.repeat(list("ABCDEF"), 5), "x": np.tile(np.arange(5.0), 6)})
    table["y"] = 1.0 + 0.5 * table["x"] + rng.normal(size=30)
    return table


def nuts_case(kind: str) -> tuple[BaseModel, object, dict, int]:
    """Each NUTS path's model, data, columns and replications for the fast check."""
    if kind == "rates":
        return Model(prior=PROPER, **NUTS_FAST), RATES, {"y": "y", "n": "n"}, 20
    if kind == "normal":
        return (Model(family="normal", prior="mu=normal(0, 5), tau=halfnormal(3)",
                      **NUTS_FAST), estimates(8), {"y": "y", "se": "se", "group": "g"}, 20)
    if kind == "mixed":
        return MixedModel(formula="y ~ x + (1 | g)", **NUTS_FAST), small_mixed(), {}, 12
    if kind == "nested":
        return (NestedModel(**NUTS_FAST), LABS,
                {"y": "y", "n": "n", "group": "lab/experiment"}, 12)
    return (CustomModel(model="tests/data/contract_model.py:model", **NUTS_FAST),
            NORMAL_MEAN, {}, 12)


@pytest.mark.filterwarnings("ignore::poolwise.exceptions.SamplingWarning")  # one short chain
@pytest.mark.parametrize("kind", [
    "rates", "normal", "mixed",
    # their first compilation (about 10 and 30 CPU-s) is over the default run's budget
    pytest.param("nested", marks=pytest.mark.full),
    pytest.param("custom", marks=pytest.mark.full)])
def test_nuts_fast(kind):
    """Fast SBC of each NUTS path: the rate families' marginal (u, v), the normal family's
    non-centred θ, a normal mixed model's marginal variances (nested models and custom
    models in ``make test-slow``). A calibration's replications share one compiled program
    (asserted, but for custom models: after the first, nothing is compiled), so each kind
    costs one compilation.
    Power, simulated for one parameter at p < 0.002: R = 20 (rates, normal) finds a bias of
    1.5 posterior sds with power ≈ 1 (1 sd: 76 %) and a posterior a third as wide as the
    truth's 71 %; R = 12 (mixed, nested, custom) a bias of 2 sds 99 % (1.5 sds: 87 %).
    False alarm 1 % per kind (Bonferroni over its parameters)."""
    import jax.monitoring

    model, data, columns, reps = nuts_case(kind)
    compiled = {"after first": -1, "all": 0}

    def count(event: str, seconds: float, **kwargs: object) -> None:
        compiled["all"] += event == "/jax/core/compile/backend_compile_duration"

    def progress(done: int, total: int) -> None:
        if done == 1:
            compiled["after first"] = compiled["all"]

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        result = model.calibrate(data, **columns, reps=reps, jobs=1, progress=progress)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert_calibrated(result)
    assert result.method == "nuts" and result.reps == reps
    # the later replications reuse the first one's programs (a custom model's programs
    # still hold its data as constants: compiled again for each replication)
    if kind != "custom":
        assert compiled["all"] == compiled["after first"]


@pytest.mark.filterwarnings("ignore::poolwise.exceptions.SamplingWarning")  # one short chain
def test_nuts_fast_flags_a_biased_posterior():
    """The rates' fast NUTS check fed a posterior of counts raised by 3 (BiasedRates): the
    same 20 replications flag it (and compile nothing new)."""
    result = BiasedRates(prior=PROPER, **NUTS_FAST).calibrate(RATES, y="y", n="n", reps=20,
                                                               jobs=1)
    assert not result.calibrated
    assert result.verdict.startswith("miscalibrated: ")


# ----------------------------------------------------------------------------- EB coverage
class ShiftedEstimates(Model):
    """A deliberately wrong fit: every simulated estimate is raised by 1.5 standard errors
    before fitting, so the intervals sit above the true effects."""

    def _with_simulated(self, data, simulated):
        return super()._with_simulated(data, {"y": np.asarray(simulated["y"]) + 1.5})


def test_eb_coverage_fast():
    """Fast: eb-ml of 20 estimates, 20 replications: coverage near nominal (a gross
    error — intervals half as wide — would put the 95 % coverage near 66 %)."""
    result = Model(family="normal", method="eb-ml", **FAST).calibrate(
        estimates(), y="y", se="se", group="g", reps=20, jobs=1)
    assert result.mode == "coverage"
    assert_calibrated(result)
    assert list(result.table["level"]) == [0.5, 0.8, 0.95]
    assert "not posteriors" in result.notes[0]


def test_eb_coverage_fast_flags_a_wrong_population():
    result = ShiftedEstimates(family="normal", method="eb-ml", **FAST).calibrate(
        estimates(), y="y", se="se", group="g", reps=20, jobs=1)
    assert not result.calibrated
    assert result.verdict.startswith("coverage off nominal")


# ----------------------------------------------------------------------------- refusals
def test_improper_prior_is_refused_with_the_prior_named():
    with pytest.raises(SpecificationError, match=r"'bda' is improper.*halfnormal"):
        Model().calibrate(RATES, y="y", n="n", reps=10)


@pytest.mark.full  # a custom model imports JAX: 8 s of the default run for a refusal
def test_map_is_refused():
    model = CustomModel(model="tests/data/contract_model.py:model", method="map")
    with pytest.raises(SpecificationError, match=r"map.*one point"):
        model.calibrate({"y": np.zeros(3), "sd": 1.0}, reps=10)


@pytest.mark.parametrize("reps", [5, 2.5, True])
def test_bad_reps_refused(reps):
    with pytest.raises(SpecificationError, match="reps must be a whole number ≥ 10"):
        Model(prior=PROPER).calibrate(RATES, y="y", n="n", reps=reps)


# ----------------------------------------------------------------------------- the CLI
def test_cli_calibrate_writes_the_files(tmp_path, capsys):
    out = tmp_path / "cal"
    code = main(["calibrate", "eight-schools", "--prior", "mu=normal(0, 5), tau=halfcauchy(5)",
                 "--reps", "10", "--draws", "50", "--chains", "1", "--jobs", "1", "--quiet",
                 "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "verdict: " in stdout and "tau" in stdout
    assert {p.name for p in out.iterdir()} == {"calibration.csv", "calibration.json",
                                               "calibration.png", "report.html"}
    document = json.loads((out / "calibration.json").read_text())
    assert document["reps"] == 10 and document["alpha"] == ALPHA
    assert len(document["pit"]["tau"]) == 10
    assert "Verdict:" in (out / "report.html").read_text()


def test_cli_calibrate_refuses_an_improper_prior(tmp_path, capsys):
    code = main(["calibrate", "rats", "--reps", "10", "--out", str(tmp_path / "x")])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "'bda' is improper" in stderr and "--prior" in stderr
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- full power
FULL = {"reps": 200, "jobs": None}


@pytest.mark.full
@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson"])
def test_rates_exact_full(family):
    """exact, R = 200: finds a half-sd bias or 95 % intervals covering 81 % (power ≥ 99 %,
    module docstring); false alarm 1 %."""
    table = RATES if family == "beta-binomial" else RATES.assign(n=RATES["n"] * 10)
    model = Model(family=family, prior=PROPER, draws=100, chains=1)
    assert_calibrated(model.calibrate(table, y="y", n="n", **FULL))


@pytest.mark.full
@pytest.mark.parametrize("method", ["gibbs", "nuts"])
def test_rates_markov_chains_full(method):
    """gibbs and nuts, R = 200 (ranks among 100 thinned draws): as exact's power; 1 %."""
    model = Model(prior=PROPER, method=method, draws=1000, chains=2, warmup=500)
    assert_calibrated(model.calibrate(RATES, y="y", n="n", **FULL))


@pytest.mark.full
@pytest.mark.parametrize("method", ["exact", "nuts"])
def test_normal_full(method):
    """The normal family (meta-analysis), R = 200: power as above; false alarm 1 %."""
    model = Model(family="normal", prior="mu=normal(0, 5), tau=halfnormal(3)", method=method,
                  draws=500, chains=2)
    assert_calibrated(model.calibrate(estimates(8), y="y", se="se", group="g", **FULL))


@pytest.mark.full
@pytest.mark.parametrize(("family", "method"), [
    ("normal", "eb-ml"), ("normal", "eb-moments"), ("normal", "eb-js"),
    ("beta-binomial", "eb-ml"), ("beta-binomial", "eb-moments")])
def test_eb_coverage_full(family, method):
    """Empirical Bayes, R = 200 over 20 groups: every level's coverage within 5 points of
    nominal (:func:`assert_eb_coverage`; its SE is about 0.5-0.8 points, so a miscoverage of
    5 points fails with power ≈ 1 and a correct one passes but for > 6 SE). The plug-in
    intervals under-covered slightly here (eb-ml's 50 % and 80 % intervals 47.6 % and
    77.4 %). Estimates ± 1 (eb-js needs one se) or counts of 50 trials, well away from
    complete pooling."""
    if family == "normal":
        table, columns = estimates(), {"y": "y", "se": "se", "group": "g"}
    else:
        rng = np.random.default_rng(7)
        theta = rng.beta(4.0, 12.0, 20)
        table = pd.DataFrame({"y": rng.binomial(50, theta), "n": 50.0})
        columns = {"y": "y", "n": "n"}
    model = Model(family=family, method=method, draws=200, chains=1)
    assert_eb_coverage(model.calibrate(table, **columns, **FULL))


@pytest.mark.full
@pytest.mark.parametrize("pooling", ["none", "partial"])
def test_nig_full(pooling):
    """NIG exact (no pooling, default prior fixed), R = 200: power as above, false alarm
    1 %; and its eb-ml coverage (8 groups × 6 rows with distinct means; α is estimated
    → ∞ in a quarter of the replications) within :func:`assert_eb_coverage`'s bound."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"g": np.repeat(list("ABCDEFGH"), 6)})
    table["v"] = rng.normal(np.repeat(rng.normal(0, 3, 8), 6), 2.0)
    result = NIGModel(pooling=pooling, draws=200, chains=1).calibrate(table, y="v",
                                                                       group="g", **FULL)
    if pooling == "none":
        assert_calibrated(result)
    else:
        assert_eb_coverage(result)


@pytest.mark.full
@pytest.mark.parametrize("method", ["importance", "nuts", "eb-ml"])
def test_mixed_normal_full(method):
    """Normal mixed model (random intercept, 8 groups × 5 rows), R = 200: importance and
    nuts by SBC (power as above; false alarm 1 %), REML by coverage
    (:func:`assert_eb_coverage`)."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"g": np.repeat(list("ABCDEFGH"), 5), "x": np.tile(np.arange(5.0), 8)})
    table["y"] = 1.0 + 0.5 * table["x"] + rng.normal(size=40) + np.repeat(rng.normal(0, 1, 8), 5)
    model = MixedModel(formula="y ~ x + (1 | g)", method=method, draws=200, chains=2)
    result = model.calibrate(table, **FULL)
    if method == "eb-ml":
        assert_eb_coverage(result)
    else:
        assert_calibrated(result)


@pytest.mark.full
@pytest.mark.parametrize("method", ["nuts", "importance", "eb-ml"])
def test_mixed_binomial_full(method):
    """Binomial GLMM (cbpp's design), R = 200: nuts and importance (over the AGQ marginal)
    by SBC, ML by AGQ by coverage (:func:`assert_eb_coverage`)."""
    cbpp = poolwise.datasets.load("cbpp")
    model = MixedModel(formula="incidence | trials(size) ~ period + (1 | herd)",
                       family="binomial", method=method, draws=200, chains=2)
    result = model.calibrate(cbpp, **FULL)
    if method == "eb-ml":
        assert_eb_coverage(result)
    else:
        assert_calibrated(result)


@pytest.mark.full
def test_nested_full():
    """Nested rates (3 labs × 3 experiments), NUTS, R = 200: power as above; 1 %."""
    table = pd.DataFrame({"lab": np.repeat(list("ABC"), 3), "experiment": list("123") * 3,
                          "y": [3, 5, 8, 2, 6, 1, 4, 7, 5], "n": 20.0})
    model = NestedModel(draws=200, chains=2)
    assert_calibrated(model.calibrate(table, y="y", n="n", group="lab/experiment", **FULL))


@pytest.mark.full
@pytest.mark.parametrize("method", ["laplace", "nuts"])
def test_custom_full(method):
    """A custom NumPyro model (normal mean, tests/data/contract_model.py), R = 200: the
    Laplace approximation is exact here (a normal posterior); power as above; 1 %."""
    model = CustomModel(model="tests/data/contract_model.py:model", method=method,
                        draws=200, chains=2)
    data = {"y": np.array([0.3, 1.2, 2.5, 1.9, 0.7]), "sd": 1.0}
    assert_calibrated(model.calibrate(data, **FULL))


def test_prepared_mixed_data_reach_worker_processes():
    """Calibration sends the prepared data to spawned workers: a mixed model's priors (with
    read-only maps) must pickle and come back equal (they raised 'cannot pickle
    mappingproxy', so every parallel calibration of a mixed model failed)."""
    import pickle

    table = pd.DataFrame({"g": np.repeat(list("ABCD"), 3), "x": np.tile([0.0, 1.0, 2.0], 4),
                          "y": np.arange(12.0) % 5})
    prepared = MixedModel(formula="y ~ x + (x | g)").prepare(table)
    again = pickle.loads(pickle.dumps(prepared))
    assert again.priors == prepared.priors
    assert dict(again.priors.sd) == dict(prepared.priors.sd)
