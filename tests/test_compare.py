"""Comparing models by PSIS-LOO: against exact leave-one-out, against the differences and
their standard errors worked out by hand, leave-one-group-out, the refusals, and
``poolwise compare`` end to end (pooling levels, formulas, saved fits)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import poolwise
from poolwise import _arviz
from poolwise.cli import main
from poolwise.results.comparison import LOO_COLUMNS, loo_compare

DRAWS = {"draws": 2000, "chains": 2, "seed": 1}


def _quiet_fit(data: pd.DataFrame, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return poolwise.fit(data, **options)


@pytest.fixture(scope="module")
def rats() -> pd.DataFrame:
    return poolwise.datasets.load("rats").query("historical == 1")


@pytest.fixture(scope="module")
def rat_fits(rats) -> dict[str, poolwise.Fit]:
    """Exact (independent) draws of partial and complete pooling of the 70 experiments."""
    return {pooling: _quiet_fit(rats, y="y", n="n", group="experiment", pooling=pooling,
                                method="exact", **DRAWS)
            for pooling in ("partial", "complete")}


def _mixed_data() -> pd.DataFrame:
    """Eight groups with their own intercepts: a model with group effects should win."""
    rng = np.random.default_rng(7)
    g = np.repeat([f"g{k}" for k in range(8)], 6)
    x = np.tile(np.arange(6.0), 8)
    effect = dict(zip(np.unique(g), rng.normal(0.0, 2.0, 8), strict=True))
    y = 1.0 + 0.5 * x + np.array([effect[k] for k in g]) + rng.normal(0.0, 0.5, g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def test_complete_pooling_elpd_matches_exact_leave_one_out(rat_fits, rats):
    """Complete pooling under the Jeffreys Beta(½, ½) prior has an exact leave-one-out:
    p(y_j | y_−j) = C(n_j, y_j) B(a_j + y_j, b_j + n_j − y_j) / B(a_j, b_j) with
    a_j = ½ + Σ_{i≠j} y_i, b_j = ½ + Σ_{i≠j} (n_i − y_i). PSIS from independent draws must
    agree within four Monte Carlo standard errors: per group the delta-method MCSE of
    log mean_s 1/p(y_j | θ_s); for the sum their sum (the groups share the draws, so their
    errors are correlated, and sd(Σ X_j) ≤ Σ sd(X_j)). Plain elpd would miss by p_loo ≈ 2."""
    y, n = rats["y"].to_numpy(float), rats["n"].to_numpy(float)
    a = 0.5 + y.sum() - y
    b = 0.5 + (n - y).sum() - (n - y)
    exact = (special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
             + special.betaln(a + y, b + n - y) - special.betaln(a, b))
    loo = loo_compare(rat_fits)
    row = loo.table.set_index("model").loc["complete"]
    theta = rat_fits["complete"].draws("theta")[..., :1].reshape(-1, 1)  # one θ, repeated
    inverse = 1.0 / stats.binom.pmf(y, n, theta)  # importance ratios, draws × groups
    mcse = inverse.std(axis=0) / inverse.mean(axis=0) / np.sqrt(theta.shape[0])
    assert row["n_bad_k"] == 0
    assert abs(row["elpd"] - exact.sum()) < 4 * mcse.sum()
    np.testing.assert_allclose(loo.pointwise["complete"], exact, atol=4 * mcse.max())


def test_differences_and_their_standard_errors_by_hand(rat_fits):
    """elpd_diff = Σ_i (elpd_i^model − elpd_i^best); dse = sqrt(n · var_i(the same
    differences)); se = sqrt(n · var_i(elpd_i)), sample variances as R's loo_compare;
    computed here from each fit's own pointwise PSIS-LOO."""
    loo = loo_compare(rat_fits)
    assert list(loo.table.columns) == list(LOO_COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial pooling's Pareto k, said in loo.warnings
        pointwise = {label: np.asarray(_arviz.loo(fit.with_log_likelihood(), pointwise=True)
                                       .elpd_i) for label, fit in rat_fits.items()}
    # the known ranking (BDA3 §5.3): the experiments differ, so partial pooling wins
    assert loo.table["model"].tolist() == ["partial", "complete"]
    diff = pointwise["complete"] - pointwise["partial"]
    table = loo.table.set_index("model")
    assert table.loc["complete", "elpd_diff"] == pytest.approx(diff.sum())
    assert table.loc["complete", "dse"] == pytest.approx(np.sqrt(diff.size * np.var(diff, ddof=1)))
    assert table.loc["partial", ["elpd_diff", "dse"]].tolist() == [0.0, 0.0]
    for label, values in pointwise.items():
        assert table.loc[label, "elpd"] == pytest.approx(values.sum())
        se = np.sqrt(values.size * np.var(values, ddof=1))
        assert table.loc[label, "se"] == pytest.approx(se)
    assert table["weight"].sum() == pytest.approx(1.0)
    # a difference of about 20 with a dse near 7 is clear; the verdict says so
    (verdict,) = loo.verdicts()
    assert verdict.startswith("complete:") and "clear difference" in verdict
    # partial pooling's left-out experiments with high k̂ make the difference rough
    assert ("rough" in verdict) == bool(loo.table["n_bad_k"].sum())


def test_a_grouping_of_one_point_each_is_plain_leave_one_out(rat_fits):
    """For rates the points are the experiments: leaving out each experiment is LOO."""
    plain, grouped = loo_compare(rat_fits), loo_compare(rat_fits, by="experiment")
    assert grouped.criterion == "PSIS-LOGO" and grouped.points == "experiment"
    pd.testing.assert_frame_equal(plain.table, grouped.table)


def test_leave_one_group_out_sums_each_groups_log_likelihood():
    """PSIS-LOGO = PSIS-LOO of log p(y_g | draw) = Σ_{i in g} log p(y_i | draw), summed
    here by hand with pandas."""
    data = _mixed_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = poolwise.compare(data, formulas=["y ~ x + (1 | g)", "y ~ x"], method="eb-ml",
                                draws=400, chains=2).fits
    # y ~ x (complete pooling) has no column g: the grouping comes from the other fit
    assert "g" not in fits["y ~ x"].point_groupings()
    loo = loo_compare(fits, by="g")
    assert loo.table["model"].iloc[0] == "y ~ x + (1 | g)"
    assert loo.table["n_points"].tolist() == [8, 8]
    for label, fit in fits.items():
        ll = fit.with_log_likelihood()["log_likelihood"]["y"].values
        summed = pd.DataFrame(ll.reshape(-1, ll.shape[-1]).T).groupby(data["g"].to_numpy()
                                                                     ).sum()
        expected = _loo_of(fit, summed.to_numpy().T.reshape(*ll.shape[:2], -1),
                           summed.index.to_numpy())
        row = loo.table.set_index("model").loc[label]
        assert row["elpd"] == pytest.approx(expected.elpd)
        np.testing.assert_allclose(loo.pointwise[label].to_numpy(),
                                   np.asarray(expected.elpd_i))
    # leaving out one row at a time is the plain LOO
    pd.testing.assert_frame_equal(loo_compare(fits).table, loo_compare(fits, by="row").table)


def _loo_of(fit, values, labels):
    """PSIS-LOO of the given pointwise log likelihood with the fit's posterior."""
    import xarray as xr

    posterior = fit.posterior
    log_likelihood = xr.Dataset({"y": (("chain", "draw", "g"), values)},
                                coords={"chain": posterior["chain"],
                                        "draw": posterior["draw"], "g": labels})
    tree = xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": log_likelihood})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _arviz.loo(tree, pointwise=True)


# ----------------------------------------------------------------------------- refusals
def test_fits_of_other_data_are_refused(rat_fits, rats):
    other = rats.assign(y=rats["y"].where(rats["experiment"] != rats["experiment"].iloc[5],
                                          rats["y"] + 1))
    changed = _quiet_fit(other, y="y", n="n", group="experiment", method="exact", draws=50)
    with pytest.raises(poolwise.SpecificationError,
                       match=r"observed y differs at 1 of 70 groups \(first at group 6"):
        loo_compare({"rats": rat_fits["partial"], "changed": changed})
    fewer = _quiet_fit(rats.head(60), y="y", n="n", group="experiment", method="exact",
                       draws=50)
    with pytest.raises(poolwise.SpecificationError, match="70 groups against 60 groups"):
        loo_compare({"rats": rat_fits["partial"], "fewer": fewer})
    with pytest.raises(poolwise.SpecificationError, match="two fits or more"):
        loo_compare({"rats": rat_fits["partial"]})


def test_an_unknown_grouping_is_refused_with_the_valid_ones(rat_fits):
    with pytest.raises(poolwise.SpecificationError,
                       match="'lab': the rates fits' points group by group, experiment"):
        loo_compare(rat_fits, by="lab")


def test_compare_formulas_takes_two_different_ones():
    data = _mixed_data()
    with pytest.raises(poolwise.SpecificationError, match="two different formulas"):
        poolwise.compare(data, formulas=["y ~ x", "y ~ x"])
    with pytest.raises(poolwise.SpecificationError, match="leave out y"):
        poolwise.compare(data, formulas=["y ~ x", "y ~ 1"], y="y")


# ----------------------------------------------------------------------------- the CLI
FAST = ["--draws", "200", "--chains", "2", "--quiet"]


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "groups.csv"
    _mixed_data().to_csv(path, index=False)
    return str(path)


def test_cli_compares_formulas_and_writes_the_table(mixed_csv, tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    code, out, err = run(["compare", mixed_csv, "--formula", "y ~ x", "--formula",
                          "y ~ x + (1 | g)", "--method", "eb-ml", *FAST, "--by-group", "g",
                          "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "2 models" in out and "PSIS-LOGO: one g left out at a time, 8 of them" in out
    assert "y ~ x: " in out and "below y ~ x + (1 | g)" in out
    table = pd.read_csv(out_dir / "comparison.csv")
    assert list(table.columns) == list(LOO_COLUMNS)
    assert table["model"].tolist() == ["y ~ x + (1 | g)", "y ~ x"]
    pointwise = pd.read_csv(out_dir / "elpd_pointwise.csv", index_col="g")
    assert pointwise.shape == (8, 2)
    assert pointwise.sum().to_numpy() == pytest.approx(
        table.set_index("model").loc[pointwise.columns, "elpd"].to_numpy())
    doc = json.loads((out_dir / "result.json").read_text())
    assert doc["predictive"]["criterion"] == "PSIS-LOGO" and doc["predictive"]["by"] == "g"
    assert set(doc["models"]) == {"y ~ x", "y ~ x + (1 | g)"}
    assert doc["predictive"]["warnings"] == doc["warnings"][:len(doc["predictive"]["warnings"])]
    if table["n_bad_k"].any():  # said on standard error, with what to do
        assert "K-fold cross-validation over the groups" in err


def test_cli_compares_saved_fits(tmp_path, capsys):
    for pooling in ("partial", "complete"):
        code, _, err = run(["fit", "rats", "--pooling", pooling, *FAST, "--out",
                            str(tmp_path / pooling)], capsys)
        assert code == 0, err
    code, out, err = run(["compare", str(tmp_path / "partial" / "posterior.nc"),
                          str(tmp_path / "complete" / "posterior.nc"), "--format", "json"],
                         capsys)
    assert code == 0, err
    rows = json.loads(out)["predictive"]["rows"]
    assert [_folder(r["model"]) for r in rows] == ["partial", "complete"]
    # options that build models make no sense for saved fits
    code, _, err = run(["compare", str(tmp_path / "partial" / "posterior.nc"),
                        str(tmp_path / "complete" / "posterior.nc"), "--draws", "10"], capsys)
    assert code == 2 and "leave out --draws" in err and "Traceback" not in err


def _folder(label: str) -> str:
    return label.rsplit("/", 1)[-1]


def test_cli_refuses_saved_fits_of_other_data(tmp_path, capsys):
    for name in ("rats", "kidney"):
        code, _, err = run(["fit", name, "--method", "eb-ml", *FAST, "--out",
                            str(tmp_path / name)], capsys)
        assert code == 0, err
    code, _, err = run(["compare", str(tmp_path / "rats" / "posterior.nc"),
                        str(tmp_path / "kidney" / "posterior.nc")], capsys)
    assert code == 2
    assert "were not fitted to the same data" in err and "Traceback" not in err


def test_cli_poolings_by_group_refuses_an_unknown_column(capsys):
    code, _, err = run(["compare", "spacex", *FAST, "--by-group", "nope"], capsys)
    assert code == 2 and "cannot leave out groups of 'nope'" in err
