"""The command line: each subcommand end to end with tiny settings, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from toy_files import CUSTOM_MODEL

from poolwise.cli import main

FAST = ["--draws", "100", "--chains", "2", "--quiet"]


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_bundled_dataset_writes_everything(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(["fit", "rats", *FAST, "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert out.startswith("rats: beta-binomial, partial pooling, method exact, 70 groups")
    assert "a new group with y = 4, trials 14" in out
    assert "(α + β)^(-5/2)" in out  # the prior in use is shown
    names = {p.name for p in out_dir.iterdir()}
    assert {"summary.csv", "posterior.nc", "result.json", "shrinkage.png", "forest.png",
            "trace.png", "new_group.png", "population_mean.png", "model.png",
            "model.svg", "ppc.png", "predictive_check.csv", "predictions.csv"} <= names
    summary = pd.read_csv(out_dir / "summary.csv")
    assert list(summary.columns)[:9] == ["param", "group", "mean", "sd", "lower", "upper",
                                         "ess_bulk", "ess_tail", "r_hat"]


def test_empirical_bayes_of_thousands_of_groups_draws_its_figures(tmp_path, capsys):
    """Past 2,500 groups an eb-ml fit keeps summaries, not draws: its shrinkage, forest and
    population figures are drawn from them (they were silently left out), and no trace,
    which is of full Bayes's draws."""
    import numpy as np

    rng = np.random.default_rng(5)
    n = rng.integers(5, 500, 3000)
    table = pd.DataFrame({"g": [f"g{j}" for j in range(3000)], "n": n,
                          "y": rng.binomial(n, rng.beta(4.0, 12.0, 3000))})
    table.to_csv(tmp_path / "many.csv", index=False)
    code, _, err = run(["fit", str(tmp_path / "many.csv"), "--y", "y", "--n", "n", "--group",
                        "g", "--method", "eb-ml", "--quiet", "--out", str(tmp_path / "out")],
                       capsys)
    assert code == 0, err
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"shrinkage.png", "shrinkage_arrows.png", "forest.png", "population_mean.png",
            "new_group.png"} <= names
    assert "trace.png" not in names


def test_fit_json_has_the_stable_keys(capsys):
    code, out, _ = run(["fit", "rats", "--method", "eb-moments", "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert {"method", "prior", "hyperparameters", "summary", "new_group"} <= doc.keys()
    assert doc["hyperparameters"]["alpha"]["estimate"] == pytest.approx(1.3778, abs=1e-4)
    assert doc["new_group"]["mean"] == pytest.approx(0.2229, abs=1e-4)
    # the rats' 71st experiment, 4 tumours in 14 rats, is what it was computed for
    assert (doc["new_group"]["size"], doc["new_group"]["size_label"],
            doc["new_group"]["y"]) == (14, "trials", 4)
    row = doc["summary"][0]
    assert list(row) == ["param", "group", "mean", "sd", "lower", "upper", "ess_bulk",
                         "ess_tail", "r_hat"]
    assert row["ess_bulk"] is None  # null where it does not apply


def test_fit_own_csv_per_observation(tmp_path, capsys):
    csv = tmp_path / "trials.csv"
    pd.DataFrame({"clinic": list("aabbbccc"), "cured": [1, 0, 1, 1, 0, 0, 0, 1]}).to_csv(
        csv, index=False)
    code, out, err = run(["fit", str(csv), "--y", "cured", "--group", "clinic",
                          "--prior", "halfnormal(10)", *FAST], capsys)
    assert code == 0, err
    assert "summed 8 rows into 3 groups" in out


@pytest.mark.parametrize("pooling", ["none", "complete"])
def test_fit_other_poolings(pooling, capsys):
    code, out, err = run(["fit", "spacex", "--pooling", pooling, *FAST], capsys)
    assert code == 0, err
    assert "Beta(0.5, 0.5)" in out


def test_fit_gamma_poisson_and_brand_new_group(capsys):
    code, out, err = run(["fit", "kidney", "--method", "eb-ml", "--new-group-n", "10000",
                          "--quiet"], capsys)
    assert code == 0, err
    assert "new group drawn from the population, and y* for exposure 10000" in out
    assert "predicted y mean" in out
    # empirical Bayes uses no hyperprior, and says so
    assert "estimated by eb-ml; no hyperprior is used" in out


def test_compare_warns_when_loo_is_unreliable(capsys):
    code, _, err = run(["compare", "spacex", *FAST], capsys)
    assert code == 0
    assert "PSIS-LOO is unreliable for no pooling" in " ".join(err.split())


def test_compare_writes_the_table(tmp_path, capsys):
    code, out, err = run(["compare", "spacex", *FAST, "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    assert "elpd" in out
    estimates = pd.read_csv(tmp_path / "c" / "estimates.csv")
    assert {"none_mean", "complete_mean", "partial_mean"} <= set(estimates.columns)
    assert (tmp_path / "c" / "forest.png").exists()


def test_compare_json(capsys):
    code, out, _ = run(["compare", "rats", "--format", "json", *FAST], capsys)
    assert code == 0
    doc = json.loads(out)
    assert {r["model"] for r in doc["predictive"]["rows"]} == {"none", "complete", "partial"}


def test_datasets_lists_sources(capsys):
    code, out, _ = run(["datasets"], capsys)
    assert code == 0
    assert "rats" in out and "kidney" in out and "Tarone" in out


def test_console_script_help_is_quick_and_light():
    """`poolwise --help` must not import JAX or matplotlib."""
    code = ("import sys; from poolwise.cli import main; rc = main(['--help']); "
            "heavy = [m for m in ('jax', 'matplotlib', 'scipy', 'pandas', 'numpy') "
            "if m in sys.modules]; assert not heavy, heavy; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout


@pytest.fixture
def bad_csvs(tmp_path) -> dict[str, Path]:
    tables = {
        "negative": "g,y,n\na,1,5\nb,-2,5\n",
        "y_over_n": "g,y,n\na,1,5\nb,7,5\n",
        "text": "g,y,n\na,1,5\nb,two,5\n",
        "fraction": "g,y,n\na,1.5,5\nb,2,5\n",
        "nan": "g,y,n\na,1,5\nb,,5\n",
        "single": "g,y,n\na,1,5\n",
        "zeros": "g,y,n\na,0,5\nb,0,6\n",
        "empty": "",
        "ok": "g,y,n\na,1,5\nb,2,6\nc,0,4\n",
    }
    paths = {}
    for name, text in tables.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("ok", ["--y", "k"], "column 'k' not found"),
        ("ok", ["--y", "yy"], "did you mean 'y'"),
        ("negative", [], "row 2.*≥ 0"),
        ("y_over_n", [], "row .*: .y. is 7 but .n. is 5"),
        ("text", [], "row 2.*'two'"),
        ("fraction", [], "whole numbers"),
        ("nan", [], "missing"),
        ("single", [], "at least 2 groups"),
        ("zeros", [], "every group has y = 0"),
        ("empty", [], "empty"),
        ("ok", ["--family", "poisson"], "mixed-model family.*gamma-poisson"),
        ("ok", ["--method", "mcmc"], "unknown method .mcmc.*valid: exact"),
        ("ok", ["--prior", "halfnormal(-3)"], "must be > 0"),
        ("ok", ["--prior", "student(3)"], "valid: halfnormal"),
        ("ok", ["--pooling", "full"], "pooling must be one of none, complete, partial"),
        ("ok", ["--method", "gibbs", "--pooling", "none"], "is for partial pooling"),
        ("ok", ["--warmup", "50"], "--warmup is for method gibbs and nuts; method 'exact'"),
        ("ok", ["--target-accept", "0.9"], "--target-accept is for method nuts"),
        ("ok", ["--method", "eb-ml", "--prior", "halfnormal(10)"], "uses no hyperprior"),
        ("ok", ["--new-data", "x.csv"], "--new-data is for mixed models, not rates ones"),
        ("ok", ["--formula", "y ~ 1 + (1 | g)"], "leave out --y, --n, --se and --group"),
    ],
)
def test_bad_input_exits_2_with_one_line(case, extra, message, bad_csvs, tmp_path, capsys):
    args = ["fit", str(bad_csvs[case]), "--y", "y", "--n", "n", "--group", "g", *extra,
            "--out", str(tmp_path / "never"), "--quiet"]
    code, _out, err = run(args, capsys)
    assert code == 2
    import re

    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()  # no partial output


def test_unknown_dataset_lists_the_bundled_ones(capsys):
    code, _, err = run(["fit", "ratz"], capsys)
    assert code == 2 and "bundled datasets: rats, spacex, kidney" in err


def test_missing_file(capsys, tmp_path):
    code, _, err = run(["fit", str(tmp_path / "nope.csv"), "--y", "y"], capsys)
    assert code == 2 and "file not found" in err


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me")
    code, _, err = run(["fit", "spacex", *FAST, "--out", str(out_dir)], capsys)
    assert code == 2 and "--force" in err
    assert [p.name for p in out_dir.iterdir()] == ["notes.txt"]
    code, _, err = run(["fit", "spacex", *FAST, "--out", str(out_dir), "--force"], capsys)
    assert code == 0, err
    assert (out_dir / "notes.txt").read_text() == "keep me"
    assert (out_dir / "summary.csv").exists()


def test_usage_errors_exit_2(capsys):
    code, _, err = run(["fit", "rats", "--draws", "many"], capsys)
    assert code == 2
    code, _, err = run(["fit", "rats", "--draws", "0"], capsys)
    assert code == 2 and "'--draws': Input should be greater than or equal to 1" in err


def test_fit_normal_dataset_and_own_estimates(tmp_path, capsys):
    code, out, err = run(["fit", "eight-schools", "--prior", "mu=normal(0, 5), tau=halfcauchy(5)",
                          *FAST, "--out", str(tmp_path / "es")], capsys)
    assert code == 0, err
    assert "N(μ, τ²)" in out and "μ ~ Normal(0, 5), τ ~ HalfCauchy(5)" in out
    assert (tmp_path / "es" / "forest.png").exists()
    csv = tmp_path / "meta.csv"
    csv.write_text("study,effect,se\na,0.3,0.1\nb,0.1,0.2\nc,0.5,0.15\nd,0.2,0\n")
    code, _, err = run(["fit", str(csv), "--family", "normal", "--y", "effect", "--se", "se",
                        "--group", "study", "--quiet"], capsys)
    assert code == 2 and "se" in err and "> 0" in err


def test_predict_group_draws_new_data_from_an_existing_group(capsys):
    assert main(["fit", "eight-schools", "--predict-group", "A", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    prediction = document["predict_group"]
    theta_a = next(row for row in document["summary"]
                   if row["param"] == "theta" and row["group"] == "A")
    # y* = θ_A + ε with sd 15: the same centre as θ_A within Monte Carlo error, wider
    assert abs(prediction["y_mean"] - theta_a["mean"]) < 4 * (15 + theta_a["sd"]) / 4000**0.5
    assert prediction["y_upper"] - prediction["y_lower"] > theta_a["upper"] - theta_a["lower"]
    assert main(["fit", "eight-schools", "--predict-group", "Z"]) == 2
    assert "no group 'Z'" in capsys.readouterr().err


def test_graph_writes_the_model_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "schools.svg"
    code, _, err = run(["graph", "eight-schools", "--prior",
                          "mu=normal(0, 5), tau=halfcauchy(5)", "-o", str(target)], capsys)
    assert code == 0, err
    svg = target.read_text()
    assert svg.startswith("<?xml") and "</svg>" in svg
    code, _, err = run(["graph", "eight-schools", "-o", str(target)], capsys)
    assert code == 2 and "--force" in err
    code, _, err = run(["graph", "eight-schools", "-o", str(tmp_path / "g.txt")], capsys)
    assert code == 2 and ".png, .svg or .pdf" in err


def test_describe_prints_the_equations_with_the_prior_values(capsys):
    code, out, err = run(["describe", "rats", "--prior", "halfnormal(10)"], capsys)
    assert code == 0, err
    assert r"y_j \sim \mathrm{Binomial}(n_j, \theta_j), \quad j = 1, \ldots, 70" in out
    assert r"\alpha \sim \mathrm{HalfNormal}(10)" in out


def test_nested_groups_fit_labs_and_predict_a_new_lab(tmp_path, capsys):
    rows = [(f"L{lab}", f"e{e}", 3 + lab + e % 2, 20) for lab in range(4) for e in range(3)]
    csv = tmp_path / "labs.csv"
    pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"]).to_csv(csv, index=False)
    code, out, err = run(["fit", str(csv), "--y", "y", "--n", "n", "--group",
                          "lab/experiment", "--draws", "200", "--warmup", "200",
                          "--chains", "2", "--new-group-n", "20", "--format", "json",
                          "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    doc = json.loads(out)
    params = {row["param"] for row in doc["summary"]}
    assert {"m_u", "s_u", "alpha", "theta"} <= params
    assert 0 <= doc["new_group"]["y_mean"] <= 20
    assert "new lab" in doc["new_group"]["description"]
    assert (tmp_path / "out" / "model.svg").exists()
    code, _, err = run(["fit", str(csv), "--y", "y", "--n", "n", "--group",
                        "lab/experiment", "--method", "exact"], capsys)
    assert code == 2 and "unknown method 'exact' for a nested model; valid: nuts" in err





def test_custom_model_file_is_fitted_and_checked(tmp_path, capsys):
    (tmp_path / "toy.py").write_text(CUSTOM_MODEL)
    csv = tmp_path / "obs.csv"
    pd.DataFrame({"y": [1.0, 2.0, 0.5, 1.5], "sd": 1.0, "note": "x"}).to_csv(csv, index=False)
    spec = f"{tmp_path / 'toy.py'}:model"
    code, out, err = run(["fit", str(csv), "--model", spec, "--draws", "300", "--warmup",
                          "300", "--chains", "2", "--format", "json", "--out",
                          str(tmp_path / "out")], capsys)
    assert code == 0, err
    doc = json.loads(out)
    mu = next(row for row in doc["summary"] if row["param"] == "mu")
    # conjugate: μ | y ~ N(Σy/(n + 1/100), 1/(n + 1/100))
    assert mu["mean"] == pytest.approx(5.0 / 4.01, abs=4 * (1 / 4.01) ** 0.5 / 300**0.5)
    assert doc["notes"] == ["columns not used by the model: note"]
    assert doc["predictive_check"]["statistics"]
    assert {"trace.png", "model.png", "predictive_check.csv"} <= {
        p.name for p in (tmp_path / "out").iterdir()}
    code, _, err = run(["fit", str(csv), "--model", f"{tmp_path / 'toy.py'}:helper"], capsys)
    assert code == 2 and err.count("\n") == 1
    code, _, err = run(["fit", str(csv), "--model", f"{tmp_path / 'toy.py'}:nope"], capsys)
    assert code == 2 and "helper, model" in err


def test_graph_and_describe_take_nested_groups_and_model_files(tmp_path, capsys):
    rows = [(f"L{lab}", f"e{e}", 3 + e, 20) for lab in range(3) for e in range(2)]
    csv = tmp_path / "labs.csv"
    pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"]).to_csv(csv, index=False)
    nested = ["--y", "y", "--n", "n", "--group", "lab/experiment"]
    code, _, err = run(["graph", str(csv), *nested, "-o", str(tmp_path / "labs.svg")], capsys)
    assert code == 0, err
    assert (tmp_path / "labs.svg").read_text().rstrip().endswith("</svg>")
    code, out, err = run(["describe", str(csv), *nested], capsys)
    assert code == 0 and r"\theta_{ij} \sim \mathrm{Beta}(\alpha_i, \beta_i)" in out, err
    (tmp_path / "toy.py").write_text(CUSTOM_MODEL)
    data = tmp_path / "obs.csv"
    pd.DataFrame({"y": [1.0, 2.0], "sd": 1.0}).to_csv(data, index=False)
    spec = f"{tmp_path / 'toy.py'}:model"
    code, _, err = run(["graph", str(data), "--model", spec, "-o", str(tmp_path / "t.png")],
                       capsys)
    assert code == 0 and (tmp_path / "t.png").stat().st_size > 0, err
    code, out, err = run(["describe", str(data), "--model", spec], capsys)
    assert code == 0 and r"\mu \sim \mathrm{Normal}(0, " in out, err


def test_prior_predictive_of_a_bundled_dataset(tmp_path, capsys):
    """The rats' held-out 71st experiment is not a prediction the user asked for."""
    out = tmp_path / "prior"
    code, text, err = run(["fit", "rats", "--prior", "halfnormal(10)", "--prior-predictive",
                           "--out", str(out)], capsys)
    assert code == 0, err
    assert "prior predictive check" in text
    assert {"prior_summary.csv", "prior_check.csv", "prior.nc", "prior_predictive.png",
            "result.json"} <= {p.name for p in out.iterdir()}
    code, _, err = run(["fit", "rats", "--prior-predictive"], capsys)
    assert code == 2 and "'bda' is improper" in err
    code, _, err = run(["fit", "rats", "--prior", "halfnormal(10)", "--prior-predictive",
                        "--new-group-n", "5"], capsys)
    assert code == 2 and "takes no predictions" in err



def test_progress_is_written_as_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    """A batch job's log sees --save-draws progress (a spinner there shows nothing), at most
    a line every LOG_PROGRESS_SECONDS, and a quick step writes none."""
    from poolwise import cli

    with cli.progress("writing", quiet=False) as update:
        update("1 of 3 groups")  # within the interval: nothing yet
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli, "LOG_PROGRESS_SECONDS", 0.0)
    with cli.progress("writing", quiet=False) as update:
        update("2 of 3 groups")
        update("3 of 3 groups")
    assert capsys.readouterr().err.splitlines() == ["2 of 3 groups", "3 of 3 groups"]
    with cli.progress("writing", quiet=True) as update:
        update("never shown")
    assert capsys.readouterr().err == ""


def test_james_stein_prints_its_factor(capsys):
    code, out, _ = run(["fit", "baseball", "--method", "eb-js"], capsys)
    assert code == 0
    assert "James–Stein factor c = 1 − (k − 3)σ²/Σ(y − ȳ)² = 0.2124" in out
    code, _, err = run(["fit", "eight-schools", "--method", "eb-js"], capsys)
    assert code == 2 and "one standard error for every group" in err


def test_moments_that_do_not_exist_are_not_printed(tmp_path, capsys):
    """The rats under 'bda': α, β and κ have no posterior mean (tests/test_exact.py); the
    table shows —, a line gives their medians, the JSON flags them, the report says so."""
    out_dir = tmp_path / "out"
    code, out, err = run(["fit", "rats", "--draws", "300", "--out", str(out_dir)], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("no finite posterior"))
    assert "alpha median" in line and "kappa median" in line and "mu median" not in line
    assert "heavy upper tail" in err
    document = json.loads((out_dir / "result.json").read_text())
    assert set(document["infinite_moments"]) == {"alpha", "beta", "kappa"}
    assert document["infinite_moments"]["alpha"]["missing"] == ["mean", "sd"]
    alpha = next(r for r in document["summary"] if r["param"] == "alpha")
    assert alpha["mean"] is None and alpha["lower"] is not None
    assert "no finite posterior mean or sd" in (out_dir / "report.html").read_text()
