"""Normal mixed models with one grouping factor, read out of core by DuckDB and Dask.

The engines reduce the rows to per-group cross-products (:mod:`poolwise.kinds.mixed.stream`);
everything the fit computes from them is compared with the in-memory (pandas) path on the
same rows: the marginal likelihood's WᵀW, Wᵀr, rᵀr and the default priors to rounding, the
NUTS target density at fixed points, REML estimates and their draws, predictions for new
rows, and the leave-one-group-out elpd (the pandas path's ``by=`` the factor). NUTS draws
themselves cannot agree to rounding — a trajectory amplifies a difference in the last bit
of a sum until the chains decorrelate — so the posterior means are compared within their
Monte Carlo error. Then the bad inputs, each one line, and the models that cannot stream.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from layouts import write_table

import poolwise
from poolwise import ExistingGroup, NewGroup, NewRows, Population
from poolwise.cli import main
from poolwise.exceptions import DataError, SpecificationError
from poolwise.kinds.mixed.inference import _marginal_model, gaussian_stats
from poolwise.kinds.mixed.stream import reduce_mixed
from poolwise.outputs.writer import CORE_FILES

ENGINES = ("duckdb", "dask")
LAYOUTS = ("csv", "parquet", "glob", "directory")
FORMULAS = (
    "y ~ x + (x | g)",
    "y ~ x * c + log(w) + C(k) + flag + (1 + x || g)",
    "y ~ 0 + c + x:c + sqrt(w) + (c | g)",
)


def _table(seed: int = 0, rows: int = 400) -> pd.DataFrame:
    """One grouping factor g (12 levels), numeric x and w > 0, a text category c, an integer
    k used as a category, a boolean flag; y from a random intercept and slope."""
    rng = np.random.default_rng(seed)
    g = rng.choice([f"s{i:02d}" for i in range(12)], rows)
    x = rng.uniform(0.0, 9.0, rows)
    intercept = dict(zip(sorted(set(g)), rng.normal(0.0, 20.0, 12), strict=True))
    slope = dict(zip(sorted(set(g)), rng.normal(0.0, 3.0, 12), strict=True))
    c = rng.choice(["lo", "mid", "hi"], rows)
    y = (250.0 + 10.0 * x + np.array([intercept[v] + slope[v] * xi for v, xi in zip(g, x,
                                                                                   strict=True)])
         + 5.0 * (c == "hi") + rng.normal(0.0, 15.0, rows))
    return pd.DataFrame({"g": g, "x": x, "w": rng.uniform(0.5, 3.0, rows), "c": c,
                         "k": rng.integers(1, 4, rows), "flag": rng.integers(0, 2, rows) == 1,
                         "y": y})


def _same_estimates(got, want) -> None:
    """REML from the sums and from the rows: equal to the optimiser's tolerance. L-BFGS-B
    stops when f falls by less than ftol·|f| = 1e-14 × ~2000 a step, so θ is known to about
    √(2 · 2e-11 / curvature) ~ 1e-5, and the two fits' rounding differs (their WᵀW agree to
    1e-13, test_cross_products_match_the_rows)."""
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=1e-5,
                               atol=1e-5, equal_nan=True)


def _streamed(model, source: str, engine: str):
    return model.prepare_streamed(reduce_mixed(model, source, engine=engine))


def _dense_cross(stats) -> np.ndarray:
    """M = W_restᵀW₁ of the blocked statistics as a dense (rest, levels, effects) array."""
    cross = stats.cross
    if cross.dense.size:
        return cross.dense
    dense = np.zeros((stats.rest.shape[0], *stats.first.shape[:2]))
    dense[cross.rows, cross.levels] = cross.values
    return dense


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("formula", FORMULAS)
def test_cross_products_match_the_rows(tmp_path, engine, layout, formula):
    """The marginal likelihood's sufficient statistics, the names, levels and default
    priors: those of the in-memory design of the same rows."""
    table = _table()
    model = poolwise.MixedModel(formula=formula)
    streamed = _streamed(model, write_table(table, tmp_path, layout), engine)
    memory = model.prepare(table)
    design, want = streamed.design, memory.design
    assert design.fixed_names == want.fixed_names
    assert design.terms[0].names == want.terms[0].names
    assert design.terms[0].levels == want.terms[0].levels
    assert design.terms[0].correlated == want.terms[0].correlated
    assert design.n_obs == want.n_obs
    for loc in (None, memory.priors.fixed_loc):
        got, expected = gaussian_stats(design, loc), gaussian_stats(want, loc)
        for block in ("first", "rest"):
            want_block = getattr(expected, block)
            np.testing.assert_allclose(getattr(got, block), want_block, rtol=0,
                                       atol=1e-13 * max(np.abs(want_block).max(), 1.0))
        want_cross = _dense_cross(expected)  # the entries stored may differ by zeros
        np.testing.assert_allclose(_dense_cross(got), want_cross, rtol=0,
                                   atol=1e-13 * max(np.abs(want_cross).max(initial=0), 1.0))
        np.testing.assert_allclose(got.wtr, expected.wtr, rtol=1e-12,
                                   atol=1e-13 * np.abs(expected.wtr).max())
        assert got.rtr == pytest.approx(expected.rtr, rel=1e-12)
        assert got.segments == expected.segments and got.n_flat == expected.n_flat
    np.testing.assert_allclose(streamed.priors.fixed_loc, memory.priors.fixed_loc, rtol=1e-12)
    np.testing.assert_allclose(streamed.priors.fixed_scale, memory.priors.fixed_scale,
                               rtol=1e-12)
    for key, prior in memory.priors.sd.items():
        np.testing.assert_allclose(streamed.priors.sd[key].params, prior.params, rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_nuts_target_density_matches_the_rows(tmp_path, engine):
    """The density NUTS samples (β and b integrated out) at random points: the same
    function of the variance parameters as from the rows."""
    import jax

    jax.config.update("jax_enable_x64", True)
    table = _table(1)
    model = poolwise.MixedModel(formula=FORMULAS[0])
    streamed = _streamed(model, write_table(table, tmp_path, "glob"), engine)
    memory = model.prepare(table)
    got = _marginal_model(streamed.design, streamed.priors, "marginal")
    want = _marginal_model(memory.design, memory.priors, "marginal")
    np.testing.assert_allclose(got.start, want.start, rtol=1e-12)
    for point in np.random.default_rng(2).normal(0.0, 1.0, (5, want.start.size)):
        z = want.start + point
        assert float(got.potential(z, got.data)) == pytest.approx(
            float(want.potential(z, want.data)), rel=1e-11)


@pytest.mark.parametrize("engine", ENGINES)
def test_reml_fit_matches_the_rows(tmp_path, engine):
    """eb-ml (REML as lme4) from the sums: the summary, draws given the estimates (same
    seed), predictions for new rows, the predictive check of group means and the
    leave-one-group-out elpd all as the in-memory fit gives them (to the optimiser's
    tolerance, as the estimates)."""
    table = _table(2)
    settings = {"formula": FORMULAS[1], "method": "eb-ml", "draws": 200, "chains": 2,
                "seed": 4}
    fit = poolwise.fit(write_table(table, tmp_path, "glob"), engine=engine, **settings)
    direct = poolwise.fit(table, **settings)
    got, want = fit.summary(), direct.summary()
    assert got["param"].tolist() == want["param"].tolist()
    assert got["group"].tolist() == want["group"].tolist()
    numbers = ["mean", "sd", "lower", "upper"]
    _same_estimates(got[numbers], want[numbers])
    new = pd.DataFrame({"x": [0.0, 4.5], "w": [1.0, 2.0], "c": ["hi", "lo"], "k": [1, 3],
                        "flag": [True, False], "g": ["s03", "brand new"]})
    _same_estimates(fit.predict(NewRows(new))["mu"], direct.predict(NewRows(new))["mu"])
    _same_estimates(fit.predict(Population())["coef"], direct.predict(Population())["coef"])
    # the group means of the rows, and the leave-one-group-out elpd of the pandas fit
    check = fit.predictive_check()
    means = table.groupby("g")["y"].mean()
    observed = check[check["statistic"] == "group mean"].set_index("group")["observed"]
    np.testing.assert_allclose(observed[means.index].to_numpy(), means.to_numpy(), rtol=1e-12)
    logo = poolwise.Comparison({"a": fit, "b": fit}).predictive().table
    by_group = poolwise.Comparison({"a": direct, "b": direct}).predictive(by="g").table
    assert logo["elpd"].iloc[0] == pytest.approx(by_group["elpd"].iloc[0], rel=1e-6)
    assert logo["n_points"].iloc[0] == 12


def test_nuts_fit_agrees_with_the_rows_within_monte_carlo_error(tmp_path):
    """Full Bayes, the same seed: posterior means of β, σ and the sds within 4 Monte Carlo
    standard errors of the difference (the chains cannot agree to rounding: a trajectory
    amplifies a last-bit difference in a sum)."""
    table = _table(3)
    settings = {"formula": FORMULAS[0], "draws": 500, "warmup": 300, "chains": 2, "seed": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: low-ESS warnings are not the point
        fit = poolwise.fit(write_table(table, tmp_path, "parquet"), engine="duckdb", **settings)
        direct = poolwise.fit(table, **settings)
    got, want = fit.summary().set_index("param"), direct.summary().set_index("param")
    for param in ["b[Intercept]", "b[x]", "sigma", "sd_g[Intercept]", "sd_g[x]"]:
        error = np.hypot(got.loc[param, "mcse_mean"], want.loc[param, "mcse_mean"])
        assert abs(got.loc[param, "mean"] - want.loc[param, "mean"]) < 4 * error, param


def test_missing_values_refused_or_dropped_as_in_memory(tmp_path):
    table = _table(4).astype({"x": float})
    table.loc[[7, 300], "x"] = np.nan
    table.loc[20, "g"] = None
    source = write_table(table, tmp_path, "parquet")
    formula = FORMULAS[0]
    with pytest.raises(DataError) as memory:
        poolwise.MixedModel(formula=formula).prepare(table)
    for engine in ENGINES:
        with pytest.raises(DataError) as streamed:
            poolwise.fit(source, formula=formula, method="eb-ml", engine=engine)
        # the same counts and advice; in memory it also names the first such row ("data row
        # 8: 'x' missing; …"), which the streamed engines' sums do not locate
        assert str(memory.value) == f"data row 8: 'x' missing; {streamed.value}"
    settings = {"formula": formula, "method": "eb-ml", "missing": "drop", "draws": 50,
                "chains": 1}
    direct = poolwise.fit(table, **settings)
    for engine in ENGINES:
        fit = poolwise.fit(source, engine=engine, **settings)
        assert fit.design.dropped_rows == 3 and fit.design.n_obs == len(table) - 3
        assert any(note == direct.data.notes[0] for note in fit.data.notes)
        _same_estimates(fit.summary()["mean"], direct.summary()["mean"])


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_values_name_the_row_in_its_file(tmp_path, engine):
    """A response that is not a number, and a transformation outside its domain: one line
    with the row counted in its own file."""
    table = _table(5)
    table["y"] = table["y"].astype(str)  # a text column, as a file with a stray word has
    table.loc[290, "y"] = "lots"  # the third of three files holds rows 268..399
    source = write_table(table, tmp_path / "text", "glob")
    with pytest.raises(DataError) as caught:
        poolwise.fit(source, formula=FORMULAS[0], method="eb-ml", engine=engine)
    third = tmp_path / "text" / "part-2.parquet"
    assert str(caught.value) == (f"data row 24 in file {third}: response column 'y' has 'lots', "
                                 "which is not a finite number")
    negative = _table(5)
    negative.loc[3, "w"] = -1.0
    source = write_table(negative, tmp_path / "log", "parquet")
    with pytest.raises(DataError, match=r"^data row 4: fixed-effect column 'log\(w\)' is nan; "
                                        "check the transformation's domain"):
        poolwise.fit(source, formula="y ~ log(w) + (1 | g)", method="eb-ml", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_data_errors_match_the_in_memory_path(tmp_path, engine):
    table = _table(6)
    cases = [("y ~ x + (1 | g)", table.assign(g="only")),  # one level
             ("y ~ x + z + (1 | g)", table.assign(z=2.0 * table["x"] + 1.0)),  # collinear
             ("y ~ xx + (1 | g)", table)]  # no such column
    for k, (formula, data) in enumerate(cases):
        with pytest.raises(DataError) as memory:
            poolwise.MixedModel(formula=formula).prepare(data)
        source = write_table(data, tmp_path / str(k), "parquet")
        with pytest.raises(DataError) as streamed:
            poolwise.fit(source, formula=formula, method="eb-ml", engine=engine)
        assert str(streamed.value) == str(memory.value)


@pytest.mark.parametrize(("settings", "why"), [
    ({"formula": "y | trials(n) ~ x + (1 | g)", "family": "binomial"}, "binomial family"),
    ({"formula": "y ~ x + (1 | g)", "family": "negbinomial"}, "negbinomial family"),
    ({"formula": "y ~ x + (1 | g/c)"}, "2 grouping factors"),
    ({"formula": "y ~ x + (1 | g) + (1 | c)"}, "2 grouping factors"),
    ({"formula": "y ~ scale(x) + (1 | g)"}, "scale() is fitted to all the rows"),
    ({"formula": "y ~ x + (1 | g)", "pooling": "none"}, "no pooling"),
    ({"formula": "y ~ x + (1 | g)", "method": "nuts", "parametrisation": "non-centred"},
     "non-centred"),
])
def test_models_that_need_their_rows_refuse_in_one_line(tmp_path, settings, why):
    source = write_table(_table(7).assign(n=20, y=5), tmp_path, "glob")
    with pytest.raises(SpecificationError) as caught:
        poolwise.fit(source, engine="duckdb", **settings)
    message = str(caught.value)
    assert why in message and "needs its rows in memory" in message
    assert "--engine pandas" in message and "\n" not in message


def test_streamed_fit_keeps_the_fit_contract(tmp_path):
    """Save → load → the same summary and check; requests answered or refused by name;
    prior predictive of group means; graph and equations; another pooling and another
    formula of the same reduced data."""
    table = _table(8)
    source = write_table(table, tmp_path, "directory")
    fit = poolwise.fit(source, formula=FORMULAS[1], method="eb-ml", draws=100, chains=2,
                       engine="duckdb")
    fit.save(tmp_path / "fit.nc")
    loaded = poolwise.load(tmp_path / "fit.nc")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    pd.testing.assert_frame_equal(loaded.predictive_check(), fit.predictive_check())
    new = pd.DataFrame({"x": [1.0], "w": [1.0], "c": ["mid"], "k": [2], "flag": [True],
                        "g": ["s01"]})
    np.testing.assert_array_equal(loaded.predict(NewRows(new))["mu"],
                                  fit.predict(NewRows(new))["mu"])
    assert ExistingGroup not in fit.requests() and NewGroup in fit.requests()
    with pytest.raises(SpecificationError, match="the requests it answers"):
        fit.predict(ExistingGroup("s01"))
    with pytest.raises(SpecificationError, match="needs the rows in memory"):
        fit.linear_predictor()
    nuts = poolwise.MixedModel(formula=FORMULAS[1], draws=20, warmup=20, chains=1)
    prior = nuts.prior_predictive(fit.data, draws=50)
    assert prior.tree["prior_predictive"]["y_mean"].sizes["g"] == 12
    assert fit.graph().observed() and fit.equations()
    complete = poolwise.MixedModel(formula=FORMULAS[1], method="eb-ml", pooling="complete",
                                   draws=50, chains=1).fit(fit.data)
    in_memory = poolwise.MixedModel(formula=FORMULAS[1], method="eb-ml", pooling="complete",
                                    draws=50, chains=1).fit(table)
    _same_estimates(complete.summary()["mean"], in_memory.summary()["mean"])
    with pytest.raises(SpecificationError, match="reduce the files again"):
        poolwise.MixedModel(formula="y ~ w + (1 | g)").prepare(fit.data)


def test_cli_streams_a_glob_and_writes_the_core_files(tmp_path, capsys):
    source = write_table(_table(9), tmp_path / "data", "glob")
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [0.0, 8.0], "g": ["s00", "other"]}).to_csv(new, index=False)
    out = tmp_path / "out"
    code = main(["fit", source, "--formula", FORMULAS[0], "--method", "eb-ml", "--draws",
                 "100", "--chains", "2", "--new-data", str(new), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "with DuckDB (out of core) into per-group cross-products" in captured.out
    assert "warning" not in captured.err
    written = {p.name for p in out.iterdir()}
    assert set(CORE_FILES) <= written and "group_lines.png" not in written
    assert "conditional_effects.png" in written  # from the covariates' ranges
    assert poolwise.load(out / "posterior.nc").data.streamed


def test_cli_refuses_what_needs_rows_with_exit_code_2(tmp_path, capsys):
    source = write_table(_table(10), tmp_path, "glob")
    code = main(["fit", source, "--formula", "y ~ x + (1 | g/c)"])
    err = capsys.readouterr().err
    assert code == 2 and "needs its rows in memory" in err and "Traceback" not in err


def test_dask_frame_and_small_file_default(tmp_path):
    """A Dask DataFrame streams; a small single file still goes to pandas (rows kept)."""
    import dask.dataframe as dd

    table = _table(11)
    settings = {"formula": FORMULAS[0], "method": "eb-ml", "draws": 50, "chains": 1}
    fit = poolwise.fit(dd.from_pandas(table, npartitions=3), **settings)
    direct = poolwise.fit(write_table(table, tmp_path, "parquet"), **settings)
    assert fit.data.streamed and not direct.data.streamed
    _same_estimates(fit.summary()["mean"], direct.summary()["mean"])


def test_conditional_effects_of_a_streamed_fit_match_the_rows(tmp_path):
    """Each numeric covariate's range, mean and few values (k: 1, 2, 3) collected by
    DuckDB beside the sums give the rows the in-memory path makes, and so its effects;
    they are saved with the fit. A saved fit without them says in one line what it
    needs."""
    from poolwise import plots
    from poolwise.kinds.mixed.model import CROSS_GROUP, RANGES_ATTR

    table = _table(13)
    settings = {"formula": "y ~ x + k + c + (1 | g)", "method": "eb-ml", "draws": 50,
                "chains": 1}
    fit = poolwise.fit(write_table(table, tmp_path, "glob"), engine="duckdb", **settings)
    got = plots.conditional_effects_data(fit)
    want = plots.conditional_effects_data(poolwise.fit(table, **settings))
    assert got.reference["c"] == want.reference["c"] == "hi"
    for column in ("x", "k"):
        assert got.reference[column] == pytest.approx(want.reference[column], rel=1e-12)
    assert got.table["value"].astype(str).tolist() == want.table["value"].astype(str).tolist()
    assert {1.0, 2.0, 3.0} <= set(got.table.loc[got.table["predictor"] == "k", "position"])
    _same_estimates(got.table["mean"], want.table["mean"])
    fit.save(tmp_path / "fit.nc")
    again = plots.conditional_effects_data(poolwise.load(tmp_path / "fit.nc"))
    pd.testing.assert_frame_equal(again.table, got.table)
    del fit.tree[CROSS_GROUP].attrs[RANGES_ATTR]  # as saved before ranges were kept
    fit.save(tmp_path / "old.nc")
    with pytest.raises(SpecificationError, match=r"range and mean of 'x'.*needs the rows"):
        plots.conditional_effects_data(poolwise.load(tmp_path / "old.nc"))


def test_a_column_of_numbers_and_text_is_refused_as_in_memory(tmp_path):
    """Read as text by the engine, '1, 2, two' would be categories, one coefficient per
    spelling: refused with the in-memory message (less its row), accepted as C(x)."""
    table = _table(6, rows=60)
    table["x"] = np.round(table["x"], 1).astype(str)
    table.loc[3, "x"] = "two"
    source = write_table(table, tmp_path, "parquet")
    with pytest.raises(DataError) as memory:
        poolwise.MixedModel(formula="y ~ x + (1 | g)").prepare(table)
    with pytest.raises(DataError) as streamed:
        poolwise.fit(source, formula="y ~ x + (1 | g)", method="eb-ml", engine="duckdb")
    assert str(memory.value) == f"data row 4: {streamed.value}"
    assert "write C(x) in the formula" in str(streamed.value)
