"""Negative binomial mixed models (family ``negbinomial``, log link, shape φ estimated).

Independent checks:

* the log pmf equals SciPy's ``nbinom(n=φ, p=φ/(φ+μ))`` (NumPy and JAX) and tends to the
  Poisson pmf as φ → ∞; the fit's pointwise log likelihood is SciPy's at every draw;
* replicated counts (the gamma–Poisson mixture) follow SciPy's negative binomial
  (a chi-square goodness-of-fit test);
* simulated over-dispersed data (40 groups × 25 rows, drawn with SciPy): the posterior
  covers the true β, sd and φ;
* the same model written by hand in NumPyro (``NegativeBinomial2``) with the same priors
  gives the same posterior means and sds within Monte Carlo error (on smaller data);
* a Poisson GLMM of those data is worse by PSIS-LOO; with φ held near 10⁶ by its prior
  the negative binomial fit is the Poisson fit (within Monte Carlo error);
* the Fit contract (save/load, predictions, prior and posterior predictive, the seed),
  graph and equations, the CLI with its outputs, and bad input.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from agreement import assert_same_posterior
from scipy import stats

import poolwise
from poolwise import ExistingGroup, MixedFit, MixedModel, NewGroup, NewRows, Population
from poolwise.cli import main
from poolwise.exceptions import DataError, SamplingWarning, SpecificationError
from poolwise.families.negative_binomial import log_pmf
from poolwise.kinds.mixed.model import response_draws
from poolwise.outputs.writer import CORE_FILES
from poolwise.results.comparison import loo_compare

SEED = 20261205
FORMULA = "y ~ x + offset(log(exposure)) + (1 | g)"
#: the truth of :func:`simulate`
BETA, SD, PHI = np.array([0.4, 0.5]), 0.6, 2.0
#: round priors that the hand-written NumPyro model states too
PRIORS = ("b[Intercept] = normal(0, 2.5); b[x] = normal(0, 2); sd = halfnormal(1); "
          "phi = halfcauchy(10)")


def simulate(seed: int, groups: int = 40, per_group: int = 25, phi: float = PHI
             ) -> pd.DataFrame:
    """Counts y ~ NB(μ, φ) (SciPy's sampler) with log μ = log E + β₀ + β₁ x + b_g,
    b_g ~ N(0, SD²), exposure E ~ U(0.5, 2)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    exposure = rng.uniform(0.5, 2.0, size=g.size)
    mu = exposure * np.exp(BETA[0] + BETA[1] * x + rng.normal(0.0, SD, groups)[g])
    y = stats.nbinom.rvs(phi, phi / (phi + mu), random_state=rng)
    return pd.DataFrame({"y": y, "x": x, "exposure": exposure,
                         "g": [f"g{j:02d}" for j in g]})


def fit(table: pd.DataFrame, **settings: Any) -> MixedFit:
    options = {"formula": FORMULA, "family": "negbinomial", "draws": 1000, "warmup": 1000,
               "chains": 4, "seed": SEED, **settings}
    return MixedModel(**options).fit(table)


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return simulate(SEED)


@pytest.fixture(scope="module")
def nb_fit(counts: pd.DataFrame) -> MixedFit:
    return fit(counts, prior=PRIORS)


# ------------------------------------------------------------------ the log pmf


def test_log_pmf_is_scipys_nbinom() -> None:
    """n = φ, p = φ/(φ + μ), over counts, means and shapes from strong over-dispersion to
    nearly Poisson; NumPy and JAX give the same numbers."""
    from poolwise._ops import jax_ops

    y = np.array([0.0, 1.0, 3.0, 17.0, 250.0])
    eta = np.array([-3.0, 0.0, 1.1, 2.5, 5.3])
    phi = np.array([[0.05], [0.7], [3.0], [40.0], [1e4]])
    mu = np.exp(eta)
    expected = stats.nbinom.logpmf(y, phi, phi / (phi + mu))
    np.testing.assert_allclose(log_pmf(y, eta, phi), expected, rtol=1e-10, atol=1e-10)
    ops = jax_ops()
    np.testing.assert_allclose(np.asarray(log_pmf(y, eta, phi, ops)), expected,
                               rtol=1e-10, atol=1e-10)


def test_log_pmf_tends_to_poisson() -> None:
    """Var = μ + μ²/φ: at φ = 10¹² the pmf is Poisson(μ)'s to rounding (the rising
    factorial's Stirling branch keeps it accurate)."""
    y = np.array([0.0, 2.0, 9.0, 40.0])
    eta = np.array([-1.0, 0.5, 2.2, 3.7])
    np.testing.assert_allclose(log_pmf(y, eta, 1e12), stats.poisson.logpmf(y, np.exp(eta)),
                               rtol=1e-9, atol=1e-9)


def test_replicated_counts_follow_the_negative_binomial() -> None:
    """The gamma–Poisson draws against SciPy's pmf: chi-square over the counts 0..29 and a
    tail bin, at a declared failure rate of 1e-4 per case."""
    rng = np.random.default_rng(SEED)
    for mu, phi in ((3.0, 0.8), (6.0, 15.0)):
        draws = 40_000
        eta = np.full((draws, 1), np.log(mu))
        mean, y = response_draws("negbinomial", eta, None, np.full(draws, phi), rng)
        np.testing.assert_allclose(mean, mu)
        observed = np.bincount(np.minimum(y.ravel().astype(int), 30), minlength=31)
        p = stats.nbinom.pmf(np.arange(30), phi, phi / (phi + mu))
        expected = draws * np.append(p, 1.0 - p.sum())
        assert stats.chisquare(observed, expected).pvalue > 1e-4, (mu, phi)


def test_pointwise_log_likelihood_is_scipys(nb_fit: MixedFit, counts: pd.DataFrame) -> None:
    ll = nb_fit.log_likelihood()
    phi = nb_fit.draws("phi").reshape(-1)[:, None]
    mu = np.exp(nb_fit.linear_predictor())
    expected = stats.nbinom.logpmf(counts["y"].to_numpy(), phi, phi / (phi + mu))
    np.testing.assert_allclose(ll.reshape(-1, len(counts)), expected, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ the posterior


def test_posterior_covers_the_truth(nb_fit: MixedFit) -> None:
    assert nb_fit.info["parametrisation"] == "non-centred"
    assert nb_fit.info["divergences"] == 0
    summary = nb_fit.summary().set_index("param")
    assert summary["r_hat"].max() < 1.01 and summary["ess_bulk"].min() > 400
    assert list(summary.index[:4]) == ["b[Intercept]", "b[x]", "phi", "sd_g[Intercept]"]
    for name, truth in (("b[Intercept]", BETA[0]), ("b[x]", BETA[1]), ("phi", PHI),
                        ("sd_g[Intercept]", SD)):
        row = summary.loc[name]
        assert abs(row["mean"] - truth) < 3.5 * row["sd"], (name, row["mean"], truth)


@pytest.mark.slow
def test_hand_written_numpyro_model_gives_the_same_posterior() -> None:
    """The model of :data:`PRIORS` written out in NumPyro, with NumPyro's own
    ``NegativeBinomial2`` and non-centred group effects, sampled by NumPyro's NUTS, on 15
    groups of 10 rows (where the priors still matter)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    counts = simulate(SEED + 3, groups=15, per_group=10)
    nb_fit = fit(counts, prior=PRIORS)
    jax.config.update("jax_enable_x64", True)
    levels, g = np.unique(counts["g"], return_inverse=True)
    x, y = counts["x"].to_numpy(), counts["y"].to_numpy()
    offset = np.log(counts["exposure"].to_numpy())

    def model() -> None:
        b0 = numpyro.sample("b0", dist.Normal(0.0, 2.5))
        b1 = numpyro.sample("b1", dist.Normal(0.0, 2.0))
        sd = numpyro.sample("sd", dist.HalfNormal(1.0))
        phi = numpyro.sample("phi", dist.HalfCauchy(10.0))
        with numpyro.plate("groups", levels.size):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        mean = jnp.exp(b0 + b1 * x + sd * z[g] + offset)
        numpyro.sample("y", dist.NegativeBinomial2(mean, phi), obs=y)

    mcmc = MCMC(NUTS(model, target_accept_prob=0.9), num_warmup=400, num_samples=800,
                num_chains=2, chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(7))
    hand = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    ours = {"b0": nb_fit.draws("b")[..., 0], "b1": nb_fit.draws("b")[..., 1],
            "sd": nb_fit.draws("sd_g")[..., 0], "phi": nb_fit.draws("phi")}
    for name, draws in ours.items():
        assert_same_posterior(draws, hand[name], name)


@pytest.mark.slow
def test_poisson_is_worse_by_loo(nb_fit: MixedFit, counts: pd.DataFrame) -> None:
    """The over-dispersion (φ = 2, so Var = μ + μ²/2) is what the Poisson GLMM misses."""
    with warnings.catch_warnings():
        # the misfitting Poisson model: its non-centred intercept mixes slowly (R-hat may
        # pass 1.01 at these draws) and its Pareto k̂ are high; neither changes the verdict
        warnings.simplefilter("ignore")
        poisson_fit = fit(counts, family="poisson", draws=500, warmup=500, chains=2)
        table = loo_compare({"negbinomial": nb_fit, "poisson": poisson_fit}).table
    table = table.set_index("model")
    assert table.index[0] == "negbinomial"
    assert table.loc["poisson", "elpd_diff"] < -5 * table.loc["poisson", "dse"]


@pytest.mark.slow
def test_large_phi_is_the_poisson_fit() -> None:
    """φ held near 10⁶ by a tight prior (the Poisson GLMM's default priors otherwise):
    β and the sd have the Poisson fit's posterior within Monte Carlo error."""
    table = simulate(SEED + 2, groups=20, per_group=10, phi=1e8)  # nearly Poisson counts
    poisson = fit(table, family="poisson", chains=2)
    near = fit(table, prior="phi = lognormal(13.8, 0.01)", chains=2)
    assert near.draws("phi").min() > 9e5
    for name, index in (("b", 0), ("b", 1), ("sd_g", 0)):
        assert_same_posterior(near.draws(name)[..., index], poisson.draws(name)[..., index],
                              f"{name}[{index}]")


# ------------------------------------------------------------------ the contract


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, MixedFit]:
    table = simulate(SEED + 1, groups=8, per_group=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return table, fit(table, draws=100, warmup=100, chains=2)


def test_save_load_predictions_and_seed(small, tmp_path) -> None:
    table, small_fit = small
    path = tmp_path / "nb.nc"
    small_fit.save(path)
    loaded = poolwise.load(path)
    assert isinstance(loaded, MixedFit) and loaded.model.family == "negbinomial"
    pd.testing.assert_frame_equal(loaded.summary(), small_fit.summary())
    assert loaded.describe_prior() == small_fit.describe_prior()
    assert "phi ~ HalfCauchy(10)" in small_fit.describe_prior()
    new = NewRows(table.head(3).assign(g=["g00", "new", None]))
    np.testing.assert_array_equal(loaded.predict(new)["y"], small_fit.predict(new)["y"])
    # mu = E[y | η] = exposure · exp(x β + b_g); y* are counts scattered more than Poisson
    b, r = small_fit.draws("b").reshape(-1, 2), small_fit.draws("r_g").reshape(-1, 8)
    rows = table.head(3)
    eta = b[:, 0] + b[:, 1] * rows["x"].to_numpy()[0] + r[:, 0]
    np.testing.assert_allclose(small_fit.predict(new)["mu"][:, 0],
                               rows["exposure"].iloc[0] * np.exp(eta))
    own = small_fit.predict(ExistingGroup("g03"))
    assert own["y"].shape == (200, 6) and np.all(own["y"] % 1 == 0)
    assert small_fit.predict(NewGroup())["coef"].shape == (200, 1)
    assert small_fit.predict(Population())["coef"].shape == (200, 2)
    replicated = small_fit.posterior_predictive()["y"]
    assert replicated.shape == (2, 100, 48) and np.all(replicated.values >= 0)
    (check,) = small_fit.check_data()
    assert check.discrete and check.label == "y"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        again = small_fit.model.fit(table)
    np.testing.assert_array_equal(again.draws("phi"), small_fit.draws("phi"))


def test_prior_predictive_draws_phi_from_its_prior(small) -> None:
    """HalfCauchy(10) has median 10: the share of draws below it is ½ within 4 binomial
    sds; y is drawn on the data's rows as counts."""
    table, small_fit = small
    prior = small_fit.model.prior_predictive(table, draws=4000)
    phi = prior.tree["prior"]["phi"].values.ravel()
    assert abs(np.mean(phi < 10.0) - 0.5) < 4 * np.sqrt(0.25 / phi.size)
    y = prior.tree["prior_predictive"]["y"].values
    assert y.shape == (1, 4000, 48) and np.all(y >= 0) and np.all(y % 1 == 0)


def test_graph_and_equations_name_phi(small) -> None:
    table, small_fit = small
    model = small_fit.model
    graph = model.graph(table)
    assert "phi" in graph.parents("y") and "sigma" not in {n.name for n in graph.nodes}
    lines = model.equations(table)
    assert lines[0].startswith(r"y_i \sim \mathrm{NegBinomial}(\mu_i, \phi)")
    assert lines[1].startswith(r"\log \mu_i = \log(\mathrm{exposure}_i)")
    assert r"\phi \sim \mathrm{HalfCauchy}(10)" in lines


def test_priors_of_phi_are_set_and_refused_by_name(small) -> None:
    table = small[0]
    model = MixedModel(formula=FORMULA, family="negbinomial", prior="phi = gamma(2, 0.1)")
    priors = model.prepare(table).priors
    assert priors.phi is not None and str(priors.phi) == "Gamma(2, 0.1)"
    assert priors.sigma is None
    with pytest.raises(SpecificationError, match="no residual sd sigma"):
        MixedModel(formula=FORMULA, family="negbinomial", prior="sigma = halfnormal(1)"
                   ).prepare(table)
    with pytest.raises(SpecificationError, match="poisson family has no shape phi"):
        MixedModel(formula=FORMULA, family="poisson", prior="phi = halfnormal(1)"
                   ).prepare(table)
    with pytest.raises(SpecificationError, match="scale's prior must be one of"):
        MixedModel(formula=FORMULA, family="negbinomial", prior="phi = normal(0, 1)"
                   ).prepare(table)
    with pytest.raises(SpecificationError, match="did you mean 'phi'"):
        MixedModel(formula=FORMULA, family="negbinomial", prior="phhi = halfnormal(1)")


@pytest.mark.parametrize(("value", "message"), [
    (2.5, r"row 4: response 'y' \(a negative binomial count\) is 2.5; it must be a whole"),
    (-1, r"row 4: response 'y' \(a negative binomial count\) is -1; .*≥ 0"),
])
def test_bad_counts_are_refused_in_one_line(small, value, message, tmp_path, capsys) -> None:
    table = small[0].copy()
    table["y"] = table["y"].astype(float)
    table.loc[3, "y"] = value
    with pytest.raises(DataError, match=message):
        MixedModel(formula=FORMULA, family="negbinomial").prepare(table)
    csv = tmp_path / "bad.csv"
    table.to_csv(csv, index=False)
    code = main(["fit", str(csv), "--formula", FORMULA, "--family", "negbinomial"])
    err = capsys.readouterr().err
    assert code == 2 and "negative binomial count" in err and err.count("\n") == 1


def test_per_group_family_names_the_formula(tmp_path, capsys) -> None:
    csv = tmp_path / "counts.csv"
    pd.DataFrame({"y": [1, 4], "g": ["a", "b"]}).to_csv(csv, index=False)
    code = main(["fit", str(csv), "--family", "negbinomial", "--y", "y"])
    err = capsys.readouterr().err
    assert code == 2 and "'negbinomial' is a mixed-model family" in err
    assert err.count("\n") == 1


def test_cli_fits_and_writes_every_output(small, tmp_path, capsys) -> None:
    csv = tmp_path / "counts.csv"
    small[0].to_csv(csv, index=False)
    out = tmp_path / "out"
    code = main(["fit", str(csv), "--formula", FORMULA, "--family", "negbinomial",
                 "--draws", "100", "--warmup", "100", "--chains", "2", "--quiet",
                 "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert "phi ~ HalfCauchy(10)" in printed
    written = {p.name for p in out.iterdir()}
    assert set(CORE_FILES) <= written and "trace.png" in written
    assert "group_lines.png" in written  # an exposure offset of a log-link model
    report = (out / "report.html").read_text()
    assert "negbinomial" in report and "phi" in report
    assert poolwise.load(out / "posterior.nc").model.family == "negbinomial"
