"""Decision answers: ranks, P(best), pairwise probabilities and hypotheses, checked against
SciPy's ranking of the same draws and against closed forms (empirical Bayes: each θ_j is an
independent Beta given α̂, β̂)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import poolwise
from poolwise import SpecificationError
from poolwise.cli import main

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
    assert all({"rank_mean", "p_best", "p_worst"} <= set(row) for row in theta)
    assert sum(row["p_best"] for row in theta) == pytest.approx(1.0)
    assert [h["expression"] for h in document["hypotheses"]] == ["theta[A] - theta[C] > 0",
                                                                  "tau > 5"]
    assert document["pairwise"]["A"]["B"] + document["pairwise"]["B"]["A"] == pytest.approx(1)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.query("param == 'theta'")["rank_mean"].notna().all()
    assert {"ranks.png", "hypotheses.csv", "pairwise.csv"} <= {p.name for p in out.iterdir()}
    assert main(["fit", "eight-schools", "--rank", "best"]) == 2
    assert "--rank is 'higher' or 'lower'" in capsys.readouterr().err
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
