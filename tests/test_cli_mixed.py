"""The command line with --formula: mixed models fitted, compared and refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from poolwise.cli import main

FAST = ["--draws", "150", "--warmup", "150", "--chains", "2", "--quiet"]


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_reml_on_the_bundled_sleepstudy_matches_lme4(capsys):
    code, out, err = run(["fit", "sleepstudy", "--method", "eb-ml", "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["formula"] == "Reaction ~ Days + (Days | Subject)"
    rows = {row["param"]: row for row in doc["summary"]}
    # lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy) (REML)
    assert rows["b[Intercept]"]["mean"] == pytest.approx(251.405, abs=1e-3)
    assert rows["b[Days]"]["sd"] == pytest.approx(1.546, abs=1e-3)
    assert rows["sd_Subject[Intercept]"]["mean"] == pytest.approx(24.74, abs=0.01)
    # lme4::ranef(fit)$Subject["308", ]: the conditional modes
    modes = {(row["param"], row["group"]): row["mean"] for row in doc["summary"]}
    assert modes["r_Subject[Intercept]", "308"] == pytest.approx(2.2586, abs=1e-3)
    assert modes["r_Subject[Days]", "308"] == pytest.approx(9.1990, abs=1e-3)


def test_nuts_fit_shows_the_priors_before_the_table(capsys):
    code, out, err = run(["fit", "sleepstudy", *FAST, "--method", "nuts", "--prior",
                          "b[Days] = normal(10, 20); sd[Subject] = halfnormal(30)"], capsys)
    assert code == 0, err
    priors_at, table_at = out.index("priors:"), out.index("equal-tailed intervals")
    assert priors_at < table_at
    assert "b[Days] ~ Normal(10, 20)" in out and "sd_Subject[Days] ~ HalfNormal(30)" in out
    assert "r_Subject[Days]" in out and "divergent transitions" in out


def test_own_csv_with_missing_values_is_refused_unless_dropped(tmp_path, capsys):
    csv = tmp_path / "scores.csv"
    pd.DataFrame({"score": [1.0, 2.0, None, 4.0, 5.0, 3.0, 2.5, 4.5],
                  "hours": [0, 1, 2, 3, 0, 1, 2, 3],
                  "school": list("aaaabbbb")}).to_csv(csv, index=False)
    args = ["fit", str(csv), "--formula", "score ~ hours + (1 | school)"]
    code, _, err = run(args, capsys)
    assert code == 2 and "1 of 8 rows" in err and "--drop-missing" in err
    code, out, err = run([*args, "--drop-missing", "--method", "eb-ml"], capsys)
    assert code == 0, err
    assert "dropped 1 of 8 rows" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--formula", "Reaction ~ Days + (1 | Nobody)"], "Nobody"),
    (["--formula", "Reaction ~ open('x') + (1 | Subject)"], "a string"),
    (["--formula", "Reaction ~ eval(Days) + (1 | Subject)"], "eval"),
    (["--formula", "Reaction ~ Days", "--pooling", "partial"], "no group terms"),
    (["--method", "gibbs"], "unknown method 'gibbs'"),
    (["--y", "Reaction"], "from --formula; leave out"),
    (["--group", "Subject"], "leave out --y, --n, --se and --group"),
    (["--prior", "b[Weeks] = normal(0, 1)"], "Weeks"),
])
def test_bad_mixed_input_exits_2_with_one_line(args, message, capsys):
    code, _, err = run(["fit", "sleepstudy", *args], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_family_poisson_needs_a_formula(tmp_path, capsys):
    csv = tmp_path / "counts.csv"
    pd.DataFrame({"y": [1, 2], "n": [3, 4]}).to_csv(csv, index=False)
    code, _, err = run(["fit", str(csv), "--family", "poisson", "--y", "y"], capsys)
    assert code == 2 and "mixed-model family" in err


def test_compare_fits_three_poolings_side_by_side(tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    code, out, err = run(["compare", "sleepstudy", "--draws", "100", "--warmup", "150",
                          "--chains", "2", "--format", "json", "--out", str(out_dir)], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert {row["model"] for row in doc["predictive"]["rows"]} == {"none", "complete", "partial"}
    rows = {row["param"]: row for row in doc["estimates"]}
    # the fixed slope: shared by complete and partial pooling, absent under no pooling
    assert rows["b[Days]"]["none_mean"] is None
    assert abs(rows["b[Days]"]["complete_mean"] - 10.47) < 1.5
    assert {"estimates.csv", "comparison.csv", "group_lines.png"} <= {
        p.name for p in out_dir.iterdir()}


def test_compare_prints_the_population_level_table(capsys):
    code, out, err = run(["compare", "sleepstudy", "--method", "eb-ml"], capsys)
    assert code == 0, err
    assert "b[Days]" in out and "elpd" in out
    assert max(len(line) for line in out.splitlines()) < 400  # no 2,000-character prior line



def test_out_writes_conditional_effects_and_group_lines_of_a_factor(tmp_path, capsys):
    out_dir = tmp_path / "sleep"
    code, _, err = run(["fit", "sleep", "--formula", "extra ~ group + (1 | ID)", "--method",
                        "eb-ml", "--draws", "100", "--quiet", "--out", str(out_dir)], capsys)
    assert code == 0, err
    names = {p.name for p in out_dir.iterdir()}
    assert {"conditional_effects.png", "group_lines.png", "group_effects.png"} <= names
