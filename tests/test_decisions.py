"""Decision answers: ranks, P(best), pairwise probabilities and hypotheses, checked against
SciPy's ranking of the same draws and against closed forms (empirical Bayes: each θ_j is an
independent Beta given α̂, β̂)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import poolwise
import poolwise.inference.base as inference_base
from poolwise import ResourceError, SpecificationError
from poolwise.cli import main
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.results import decisions

Z = 4.0  # Monte Carlo standard errors: |error| ≥ 4 MCSE happens with probability 6e-5


@pytest.fixture(scope="module")
def rats_eb():
    rats = poolwise.datasets.load("rats").query("historical == 1")
    return poolwise.Model(method="eb-moments", seed=2).fit(rats, y="y", n="n",
                                                           group="experiment")


def _conditional(fit, label):
    eb, row = fit.eb, list(fit.data.labels).index(label)
    return stats.beta(eb.alpha + fit.data.y[row], eb.beta + fit.data.n[row] - fit.data.y[row])


def test_ranks_are_scipys_ranks_of_every_draw(rats_eb):
    table = rats_eb.ranks(higher=True)
    draws = rats_eb.draws("theta").reshape(-1, rats_eb.data.n_groups)
    expected = stats.rankdata(-draws, axis=1, method="ordinal")
    np.testing.assert_allclose(table["rank_mean"], expected.mean(axis=0))
    np.testing.assert_allclose(table["p_best"], np.mean(expected == 1, axis=0))
    assert table["p_best"].sum() == pytest.approx(1.0)
    assert table["p_worst"].sum() == pytest.approx(1.0)
    assert table["group"].tolist() == [str(g) for g in rats_eb.data.labels]


def test_lower_is_the_mirror_of_higher(rats_eb):
    higher, lower = rats_eb.ranks(higher=True), rats_eb.ranks(higher=False)
    groups = rats_eb.data.n_groups
    np.testing.assert_allclose(lower["rank_mean"], groups + 1 - higher["rank_mean"])
    np.testing.assert_allclose(lower["p_best"], higher["p_worst"])


def test_pairwise_probability_matches_the_closed_form(rats_eb):
    """P(θ_i > θ_j) = ∫ f_i(t) F_j(t) dt for independent Betas."""
    table = rats_eb.pairwise(["60", "70", "1"])
    size = rats_eb.config.chains * rats_eb.config.draws
    for first, second in (("70", "60"), ("70", "1"), ("60", "1")):
        a, b = _conditional(rats_eb, first), _conditional(rats_eb, second)
        exact = integrate.quad(lambda t, a=a, b=b: a.pdf(t) * b.cdf(t), 0, 1)[0]
        error = max(np.sqrt(exact * (1 - exact) / size), 1 / size)
        assert abs(table.loc[first, second] - exact) < Z * error
        assert table.loc[first, second] + table.loc[second, first] == pytest.approx(1.0)


def test_hypotheses_match_closed_forms(rats_eb):
    size = rats_eb.config.chains * rats_eb.config.draws
    dist = _conditional(rats_eb, "70")
    answer = rats_eb.hypothesis("theta[70] > 0.2")
    exact = float(dist.sf(0.2))
    assert abs(answer["probability"] - exact) < Z * np.sqrt(exact * (1 - exact) / size)
    assert abs(answer["mean"] - dist.mean()) < Z * dist.std() / np.sqrt(size)
    difference = rats_eb.hypothesis("theta[70] - theta[1] <= 0")
    other = _conditional(rats_eb, "1")
    spread = np.hypot(dist.std(), other.std())
    assert abs(difference["mean"] - (dist.mean() - other.mean())) < Z * spread / np.sqrt(size)
    # arithmetic and functions apply draw by draw
    logit = rats_eb.hypothesis("logit(theta[70]) - 2 * log(theta[1])")
    theta = rats_eb.draws("theta").reshape(size, -1)
    direct = np.log(theta[:, 69] / (1 - theta[:, 69])) - 2 * np.log(theta[:, 0])
    assert logit["mean"] == pytest.approx(direct.mean()) and logit["probability"] is None


def test_pairwise_and_hypotheses_of_a_fit_without_theta_draw_only_the_groups_named(
        summaries_only, monkeypatch):
    """Past the θ limit, θ is drawn for the named groups alone (fit.group_draws), and the
    answers still match the closed forms."""
    rats = poolwise.datasets.load("rats").query("historical == 1")
    fit = poolwise.Model(method="eb-moments", seed=2).fit(rats, y="y", n="n",
                                                          group="experiment")
    assert not fit.stores_group_draws
    asked: list[int] = []
    original = ConjugateFit.group_draws

    def spy(self, groups=None):
        asked.append(len(groups) if groups is not None else fit.data.n_groups)
        return original(self, groups)

    monkeypatch.setattr(ConjugateFit, "group_draws", spy)
    size = fit.config.chains * fit.config.draws
    table = fit.pairwise(["70", "1"])
    a, b = _conditional(fit, "70"), _conditional(fit, "1")
    exact = integrate.quad(lambda t: a.pdf(t) * b.cdf(t), 0, 1)[0]
    assert abs(table.loc["70", "1"] - exact) < Z * max(np.sqrt(exact * (1 - exact) / size),
                                                       1 / size)
    answer = fit.hypothesis("theta[70] > 0.2")
    truth = float(a.sf(0.2))
    assert abs(answer["probability"] - truth) < Z * np.sqrt(truth * (1 - truth) / size)
    assert asked == [2, 1]
    with pytest.raises(SpecificationError, match="no group 'nope'"):
        fit.hypothesis("theta[nope] > 0.2")


@pytest.mark.parametrize("expression", [
    "__import__('os').system('touch pwned')",
    "theta[1].__class__",
    "open('pwned', 'w')",
    "[t for t in theta[1]]",
    "lambda: 0",
    "mu if mu else mu",
    "'text' > 0",
    "mu > 0 > 1",
    "mu ==",
    "exp(mu, 2)",
])
def test_expressions_cannot_run_code(rats_eb, expression, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecificationError):
        rats_eb.hypothesis(expression)
    assert not Path("pwned").exists()


def test_bad_names_list_what_is_valid(rats_eb):
    with pytest.raises(SpecificationError, match="no group '999'"):
        rats_eb.hypothesis("theta[999] > 0")
    with pytest.raises(SpecificationError, match=r"name one value, e.g. theta\[1\]"):
        rats_eb.hypothesis("theta > 0")
    with pytest.raises(SpecificationError, match=r"no parameter 'rho'.*; it has theta"):
        rats_eb.ranks(parameter="rho")


def test_mixed_models_rank_group_effects_and_test_coefficients():
    sleep = poolwise.datasets.load("sleepstudy")
    fit = poolwise.fit(sleep, formula="Reaction ~ Days + (Days | Subject)", method="eb-ml")
    slopes = fit.ranks(parameter="r_Subject[Days]")
    assert slopes["param"].iloc[0] == "r_Subject[Days]" and len(slopes) == 18
    assert fit.ranks()["param"].iloc[0] == "r_Subject[Intercept]"  # the first effect
    # β | y, θ̂ is normal with REML's mean and standard error: P(β_Days > 5) in closed form
    answer = fit.hypothesis("b[Days] > 5")
    estimate = fit.summary().set_index("param").loc["b[Days]"]
    exact = float(stats.norm.sf(5, estimate["mean"], estimate["sd"]))
    size = fit.config.chains * fit.config.draws
    assert abs(answer["probability"] - exact) < Z * np.sqrt(exact * (1 - exact) / size) + 1e-3
    both = fit.hypothesis("r_Subject[308, Days] - r_Subject[309, Days] > 0")
    assert 0 <= both["probability"] <= 1
    with pytest.raises(SpecificationError, match="valid: Intercept, Days"):
        fit.ranks(parameter="r_Subject[Weeks]")


def _scipy_ranks(draws: np.ndarray, higher: bool = True) -> np.ndarray:
    return stats.rankdata(-draws if higher else draws, axis=1, method="ordinal")


def test_ranks_streamed_in_blocks_are_those_of_the_whole_matrix(rats_eb, monkeypatch):
    """Every draw used: the ranks from blocks of 3 draws (and statistics a group at a
    time) are exactly those of ranking the whole (S, G) matrix, and the MCSE is
    sd/√S of the same ranks (empirical-Bayes draws are independent)."""
    whole = rats_eb.ranks()
    monkeypatch.setattr(decisions, "RANK_BLOCK", 3 * rats_eb.data.n_groups)
    blocks = decisions.ranks(rats_eb)  # not the fit's kept table
    pd.testing.assert_frame_equal(blocks, whole, rtol=1e-12)
    draws = rats_eb.draws("theta").reshape(-1, rats_eb.data.n_groups)
    expected = _scipy_ranks(draws)
    size = draws.shape[0]
    assert (blocks["rank_draws"] == size).all()
    np.testing.assert_array_equal(blocks["rank_mean"], expected.mean(axis=0))
    np.testing.assert_allclose(blocks["rank_lower"], np.quantile(expected, 0.025, axis=0),
                               rtol=1e-12)
    np.testing.assert_allclose(blocks["rank_upper"], np.quantile(expected, 0.975, axis=0),
                               rtol=1e-12)
    np.testing.assert_array_equal(blocks["p_worst"], np.mean(expected == expected.shape[1],
                                                             axis=0))
    np.testing.assert_allclose(blocks["rank_mean_mcse"],
                               expected.std(axis=0, ddof=1) / np.sqrt(size), rtol=1e-12)
    best = (expected == 1).astype(float)
    np.testing.assert_allclose(blocks["p_best_mcse"], best.std(axis=0, ddof=1) / np.sqrt(size),
                               rtol=1e-12)


@pytest.fixture
def summaries_only(monkeypatch):
    """Fits leave θ undrawn from 1 draw × group up (the limit is 10^7 in use)."""
    monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)


def _simulated_rates(groups: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 200, groups)
    return pd.DataFrame({"g": np.arange(groups), "y": rng.binomial(n, rng.beta(4, 30, groups)),
                         "n": n})


def test_ranks_without_theta_agree_with_all_draws_within_their_error(summaries_only,
                                                                    monkeypatch):
    """A fit above the θ limit ranks evenly spaced draws (RANK_LIMIT lowered to allow 100
    of 2,000), θ drawn from its conditionals at each; its mean ranks and P(best) agree
    with the ranks of all 2,000 draws of θ (fit.group_draws, other random streams) within
    both reported errors: |a − b| < Z √(mcse_a² + mcse_b²) for every group."""
    groups = 40
    fit = poolwise.Model(draws=500, seed=4).fit(_simulated_rates(groups), y="y", n="n",
                                                group="g")
    assert not fit.stores_group_draws
    monkeypatch.setattr(decisions, "RANK_LIMIT", 100 * groups)
    table = fit.ranks()
    assert (table["rank_draws"] == 100).all()
    everything = _scipy_ranks(fit.group_draws().reshape(-1, groups))
    size = everything.shape[0]
    full_mean = everything.mean(axis=0)
    full_error = everything.std(axis=0, ddof=1) / np.sqrt(size)
    z = (table["rank_mean"] - full_mean) / np.hypot(table["rank_mean_mcse"], full_error)
    assert np.all(np.abs(z) < Z), z.abs().max()
    assert np.all(table["rank_mean_mcse"] > full_error)  # 100 draws, not 2,000
    best = (everything == 1).mean(axis=0)
    error = np.hypot(table["p_best_mcse"], np.sqrt(best * (1 - best) / size))
    assert np.all(np.abs(table["p_best"] - best) <= Z * np.maximum(error, 1 / 100))
    # the mean is the summary's (Rao-Blackwellised), and the same seed gives the same ranks
    summary = fit.summary(diagnostics=False).query("param == 'theta'")
    np.testing.assert_allclose(table["mean"], summary["mean"])
    pd.testing.assert_frame_equal(decisions.ranks(fit), table)


@pytest.mark.parametrize("stored", [True, False])
def test_p_best_and_mean_rank_match_numerical_integration(stored, monkeypatch):
    """Three groups without pooling under a Beta(1, 1) prior: θ_j | y ~ Beta(1 + y_j,
    1 + n_j − y_j) independently, so P(j best) = ∫ f_j(t) Π_{k≠j} F_k(t) dt,
    P(j worst) = ∫ f_j(t) Π_{k≠j} (1 − F_k(t)) dt and E[rank_j] = 1 + Σ_{k≠j} P(θ_k > θ_j)
    = 1 + Σ_{k≠j} ∫ f_j(t) (1 − F_k(t)) dt; the estimates lie within Z reported MCSEs,
    whether θ's draws are stored or drawn at each ranked draw."""
    if not stored:
        monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)
    table = pd.DataFrame({"g": ["a", "b", "c"], "y": [12, 15, 9], "n": [40, 45, 35]})
    fit = poolwise.Model(pooling="none", prior="beta(1, 1)", draws=2000, chains=2,
                         seed=5).fit(table, y="y", n="n", group="g")
    assert fit.stores_group_draws == stored
    ranks = fit.ranks().set_index("group")
    posterior = {g: stats.beta(1 + y, 1 + n - y)
                 for g, y, n in table.itertuples(index=False)}

    def integral(j: str, term) -> float:
        return integrate.quad(lambda t: posterior[j].pdf(t) * term(t), 0, 1, limit=200)[0]

    for j in posterior:
        others = [posterior[k] for k in posterior if k != j]
        p_best = integral(j, lambda t, o=others: np.prod([d.cdf(t) for d in o]))
        p_worst = integral(j, lambda t, o=others: np.prod([d.sf(t) for d in o]))
        mean_rank = 1 + sum(integral(j, d.sf) for d in others)
        row = ranks.loc[j]
        assert abs(row["p_best"] - p_best) < Z * row["p_best_mcse"]
        assert abs(row["rank_mean"] - mean_rank) < Z * row["rank_mean_mcse"]
        worst_error = np.sqrt(p_worst * (1 - p_worst) / row["rank_draws"])
        assert abs(row["p_worst"] - p_worst) < Z * worst_error
    assert ranks["rank_draws"].iloc[0] == 4000


def test_streamed_ranks_ask_for_blocks_of_draws_never_the_matrix(summaries_only,
                                                                 monkeypatch):
    """With room for 3 draws × groups at a time, θ is asked for in blocks of at most 3
    draws, each of the evenly spaced draws once and in order, and never for every draw of
    every group (group_draws); a draw's θ does not depend on the block it is drawn in."""
    groups = 40
    fit = poolwise.Model(draws=250, seed=6).fit(_simulated_rates(groups), y="y", n="n",
                                                group="g")
    asked: list[np.ndarray] = []
    theta_at = ConjugateFit.theta_at

    def recording(self, draws):
        asked.append(np.asarray(draws).copy())
        values = theta_at(self, draws)
        assert values.shape == (len(asked[-1]), groups)
        return values

    def refused(self, groups=None):
        raise AssertionError("the draws × groups matrix was asked for")

    monkeypatch.setattr(ConjugateFit, "theta_at", recording)
    monkeypatch.setattr(ConjugateFit, "group_draws", refused)
    monkeypatch.setattr(decisions, "RANK_BLOCK", 3 * groups)
    table = fit.ranks(draws=301)
    assert (table["rank_draws"] == 301).all()
    assert max(len(block) for block in asked) == 3
    used = np.concatenate(asked)
    np.testing.assert_array_equal(used, np.arange(301) * 1000 // 301)
    assert np.array_equal(theta_at(fit, used[5:9]), theta_at(fit, used)[5:9])


def test_ranks_that_do_not_fit_in_memory_are_refused_with_fewer_draws(summaries_only,
                                                                      monkeypatch):
    """The int32 buffer of ranks (draws used × groups) is checked against the memory
    available before anything is drawn; the refusal names a number of draws that fits."""
    fit = poolwise.Model(draws=500, seed=6).fit(_simulated_rates(40), y="y", n="n",
                                                group="g")
    monkeypatch.setattr(decisions, "RANK_BLOCK", 120)
    monkeypatch.setenv("POOLWISE_MEMORY_LIMIT", "200k")  # the buffer of 2,000 draws: 320 kB
    with pytest.raises(ResourceError, match=r"ranking 40 groups at 2,000 draws.*"
                       r"--rank-draws (\d+) \(ranks\(draws=(\d+)\)\)") as refused:
        fit.ranks()
    fewer = int(re.search(r"draws=(\d+)", str(refused.value)).group(1))
    assert 1_000 < fewer < 2_000
    assert (fit.ranks(draws=fewer)["rank_draws"] == fewer).all()


def test_batch_means_see_the_autocorrelation_of_markov_chains():
    """The MCSE of a mean of AR(1) draws x_t = φ x_{t−1} + e_t (unit innovations) is
    √(1/(1 − φ)²) / √n = 2/√n at φ = ½ (the long-run variance σ²/(1 − φ)²); the batch
    means estimate finds it (within 10 %, averaged over 200 chains), where sd/√n, which
    is right for independent draws, would give √(1/(1 − φ²))/√n ≈ 1.15/√n."""
    rng = np.random.default_rng(7)
    size, chains, phi = 10_000, 200, 0.5
    noise = rng.normal(size=(size, chains))
    x = np.empty_like(noise)
    x[0] = noise[0] / np.sqrt(1 - phi**2)
    for t in range(1, size):
        x[t] = phi * x[t - 1] + noise[t]
    ratio = decisions._mcse(x, independent=False) / (2 / np.sqrt(size))
    assert 0.9 < ratio.mean() < 1.1
    assert decisions._mcse(x, independent=True).mean() * np.sqrt(size) < 1.2


def test_rank_options_are_checked(rats_eb):
    with pytest.raises(SpecificationError, match="draws must be a whole number"):
        rats_eb.ranks(draws=0)
    with pytest.raises(SpecificationError, match="parameter is a name"):
        rats_eb.ranks(parameter=["theta"])  # type: ignore[arg-type]


def test_nothing_to_rank_is_said(spacex):
    complete = poolwise.Model(pooling="complete").fit(spacex, y="successes", n="launches",
                                                      group="vehicle_family")
    with pytest.raises(SpecificationError, match="nothing to rank"):
        complete.ranks()


def test_cli_adds_ranks_hypotheses_and_pairwise(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["fit", "eight-schools", "--rank", "higher", "--hypothesis",
                 "theta[A] - theta[C] > 0", "--hypothesis", "tau > 5", "--pairwise", "A,B,C",
                 "--format", "json", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    theta = [row for row in document["summary"] if row["param"] == "theta"]
    assert all({"rank_mean", "rank_mean_mcse", "p_best", "p_best_mcse", "p_worst",
                "rank_draws"} <= set(row) for row in theta)
    assert {row["rank_draws"] for row in theta} == {4000}
    assert all(isinstance(row["rank_draws"], int) for row in theta)  # a count: 4000, not 4000.0
    assert all(row["rank_draws"] is None for row in document["summary"] if row["param"] == "mu")
    assert sum(row["p_best"] for row in theta) == pytest.approx(1.0)
    assert [h["expression"] for h in document["hypotheses"]] == ["theta[A] - theta[C] > 0",
                                                                  "tau > 5"]
    assert document["pairwise"]["A"]["B"] + document["pairwise"]["B"]["A"] == pytest.approx(1)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.query("param == 'theta'")["rank_mean"].notna().all()
    assert {"ranks.png", "hypotheses.csv", "pairwise.csv"} <= {p.name for p in out.iterdir()}
    assert main(["fit", "eight-schools", "--rank", "lower", "--draws", "250"]) == 0
    printed = capsys.readouterr().out
    assert "ranks (lower is better; 1 the best) from all 1,000 draws" in printed
    assert "P(best) ± MCSE" in printed
    assert main(["fit", "eight-schools", "--rank", "best"]) == 2
    assert "--rank is 'higher' or 'lower'" in capsys.readouterr().err
    assert main(["fit", "eight-schools", "--rank", "higher", "--rank-draws", "40"]) == 0
    assert "from 40 of 4,000 draws" in capsys.readouterr().out
    assert main(["fit", "eight-schools", "--rank-draws", "40"]) == 2
    assert "--rank-draws needs --rank" in capsys.readouterr().err
    assert main(["fit", "eight-schools", "--rank", "higher", "--rank-draws", "0"]) == 2
    assert "--rank-draws is a whole number ≥ 1, not 0" in capsys.readouterr().err
    assert main(["fit", "eight-schools", "--hypothesis", "open('x')"]) == 2
    assert "only parameters, numbers" in capsys.readouterr().err  # refused before the fit


def test_a_factor_level_is_named_as_the_summary_writes_it():
    """b[group[2]] — a level's brackets inside the coefficient's — reads that coefficient."""
    sleep = poolwise.datasets.load("sleep")
    fit = poolwise.fit(sleep, formula="extra ~ group + (1 | ID)", method="eb-ml")
    level = fit.draws("b").reshape(-1, 2)[:, 1]
    answer = fit.hypothesis("b[group[2]] > 1")
    assert answer["mean"] == pytest.approx(level.mean())
    assert answer["probability"] == pytest.approx(np.mean(level > 1))


def test_an_unreadable_hypothesis_is_refused_before_the_fit(capsys):
    """Syntax and the whitelist are checked before anything is fitted: nothing printed on
    standard output (no header, no table), one line on standard error."""
    from poolwise.results.decisions import check_hypothesis

    for bad in ("theta[A] >> 0", "theta[A] > 0 > 1", "__import__('os').system('true') > 0",
                "theta[A].real > 0", ""):
        with pytest.raises(SpecificationError):
            check_hypothesis(bad)
    check_hypothesis("exp(b[group[2]]) / (1 + theta[A]) >= 0.5")
    assert main(["fit", "eight-schools", "--method", "eb-ml", "--hypothesis",
                 "theta[A] >> 0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "only parameters, numbers" in captured.err
