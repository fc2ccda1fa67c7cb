"""The DuckDB and Dask engines give the pandas path's group statistics and error messages.

Every source (CSV, Parquet, a glob of Parquet files, a directory) is reduced by each engine
and compared with :func:`group_counts` / :func:`group_estimates` of the same rows as one
pandas table: the same labels in the same order, the same sums, the same notes (after the
engine's own note of what it read), and for every bad input the same message — with the
row counted in its own file where the source has several.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from layouts import write_table

from poolwise.cli import main
from poolwise.data.engines import Columns, choose_engine, reduce, resolve
from poolwise.data.estimates import group_estimates
from poolwise.data.tables import group_counts
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families import get_family

ENGINES = ("duckdb", "dask")


def _table(seed: int = 0, rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"g": rng.choice([f"s{i}" for i in range(37)], rows),
                          "win": rng.integers(0, 2, rows),
                          "n": rng.integers(1, 6, rows),
                          "x": rng.normal(100.0, 3.0, rows),
                          "exposure": rng.uniform(0.5, 2.0, rows)})
    table["y"] = rng.binomial(table["n"], 0.3)
    table["events"] = rng.poisson(2.0 * table["exposure"])
    table.loc[5, "x"] = 7.0  # a group of one observation: s8 appears once below
    table.loc[rows - 1, "g"] = "only"
    return table


LAYOUTS = ("csv", "parquet", "glob", "directory")
RATES = [  # family, y, n, group
    ("beta-binomial", "y", "n", "g"),
    ("beta-binomial", "win", None, "g"),
    ("gamma-poisson", "events", "exposure", "g"),
    ("gamma-poisson", "events", None, "g"),
    ("beta-binomial", "y", "n", None),
]


def _same_counts(got, want) -> None:
    assert got.labels.tolist() == want.labels.tolist()
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_allclose(got.n, want.n, rtol=1e-12)
    assert got.group_name == want.group_name
    assert got.notes[1:] == want.notes  # the first says what read the rows


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("family", "y", "n", "group"), RATES)
def test_rates_match_pandas(tmp_path, engine, layout, family, y, n, group):
    table = _table()
    fam = get_family(family)
    got = reduce(write_table(table, tmp_path, layout), fam, y=y, n=n, group=group, engine=engine)
    _same_counts(got.stats, group_counts(table, fam, y=y, n=n, group=group))
    assert got.rows == len(table) and got.engine == engine
    assert engine.replace("db", "DB").replace("duck", "Duck").replace("dask", "Dask") \
        in got.stats.notes[0]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_normal_raw_matches_pandas(tmp_path, engine, layout):
    table = _table()
    got = reduce(write_table(table, tmp_path, layout), None, y="x", group="g", engine=engine).stats
    want = group_estimates(table, y="x", group="g")
    assert got.labels.tolist() == want.labels.tolist()
    np.testing.assert_allclose(got.y, want.y, rtol=1e-13)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-10)
    np.testing.assert_array_equal(got.n_obs, want.n_obs)
    assert got.notes[1:] == want.notes and len(want.notes) == 2  # the group of one


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("group", ["g", None])
def test_normal_estimates_match_pandas(tmp_path, engine, layout, group):
    table = pd.DataFrame({"g": [f"study {k}" for k in range(30)],
                          "est": np.linspace(-1, 2, 30), "se": np.linspace(0.1, 0.9, 30)})
    got = reduce(write_table(table, tmp_path, layout), None, y="est", se="se", group=group,
                 engine=engine).stats
    want = group_estimates(table, y="est", se="se", group=group)
    assert got.labels.tolist() == want.labels.tolist() and got.group_name == want.group_name
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_array_equal(got.se, want.se)


def _error(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    return str(caught.value)


BAD = [  # what is wrong, the column it is in, the value put in row 8, the call's columns
    ("missing", "y", None, {"y": "y", "n": "n"}),
    ("non-numeric", "y", "lots", {"y": "y", "n": "n"}),
    ("decimal comma", "y", "1,5", {"y": "y", "n": "n"}),
    ("negative", "y", -2, {"y": "y", "n": "n"}),
    ("fractional", "y", 1.5, {"y": "y", "n": "n"}),
    ("over trials", "y", 9, {"y": "y", "n": "n"}),
    ("not 0/1", "win", 2, {"y": "win"}),
    ("missing label", "g", None, {"y": "y", "n": "n"}),
    ("no column", None, None, {"y": "wins"}),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", ["csv", "parquet", "glob"])
@pytest.mark.parametrize(("what", "column", "value", "columns"), BAD, ids=[b[0] for b in BAD])
def test_rate_errors_match_pandas(tmp_path, engine, layout, what, column, value, columns):
    table = _table().astype({"y": object, "win": object, "g": object})
    if column is not None:
        table.loc[[8, 450], column] = value  # 8 and 450: in the glob's first and third files
    if layout != "csv" and what in ("non-numeric", "decimal comma"):
        table["y"] = table["y"].astype(str)  # Parquet keeps the column's type
    fam = get_family("beta-binomial")
    want = _error(lambda: group_counts(table, fam, group="g", **columns))
    source = write_table(table, tmp_path, layout)
    got = _error(lambda: reduce(source, fam, group="g", engine=engine, **columns))
    if layout == "glob" and what != "no column":
        want = want.replace("row 9:", "row 9 in file " + str(tmp_path / "part-0.parquet") + ":")
    assert got == want
    if what == "no column":
        assert "did you mean 'win'?" in got


@pytest.mark.parametrize("engine", ENGINES)
def test_error_row_counts_within_its_file(tmp_path, engine):
    table = _table()
    table.loc[450, "y"] = -1  # the third of three files holds rows 400..599
    source = write_table(table, tmp_path, "glob")
    got = _error(lambda: reduce(source, get_family("beta-binomial"), y="y", n="n", group="g",
                                engine=engine))
    assert got == (f"data row 51 in file {tmp_path / 'part-2.parquet'}: count (y) column 'y' has "
                   "-1; it must be ≥ 0")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", ["csv", "parquet"])
def test_estimate_and_group_errors_match_pandas(tmp_path, engine, layout):
    base = pd.DataFrame({"g": list("abcdef"), "est": [1.0, 2, 3, 4, 5, 6],
                         "se": [1.0, 1, 0, 1, 1, -1]})
    want = _error(lambda: group_estimates(base, y="est", se="se", group="g"))
    assert want.startswith("data row 3: standard error column 'se' has 0")
    source = write_table(base, tmp_path / "se", layout)
    assert _error(lambda: reduce(source, None, y="est", se="se", group="g",
                                 engine=engine)) == want
    twice = base.assign(se=1.0, g=list("abcdbf"))
    want = _error(lambda: group_estimates(twice, y="est", se="se", group="g"))
    source = write_table(twice, tmp_path / "twice", layout)
    assert _error(lambda: reduce(source, None, y="est", se="se", group="g",
                                 engine=engine)) == want
    exposure = pd.DataFrame({"g": list("aabb"), "events": [1, 2, 3, 0],
                             "exposure": [0.0, 0.0, 1.0, 1.0]})
    fam = get_family("gamma-poisson")
    want = _error(lambda: group_counts(exposure, fam, y="events", n="exposure", group="g"))
    assert "exposure 0" in want
    source = write_table(exposure, tmp_path / "zero", layout)
    assert _error(lambda: reduce(source, fam, y="events", n="exposure", group="g",
                                 engine=engine)) == want


def test_auto_engine_and_refusals(tmp_path):
    table = _table()
    one = resolve(write_table(table, tmp_path / "one", "parquet"))
    many = resolve(write_table(table, tmp_path / "many", "glob"))
    assert choose_engine(one) == "pandas" and choose_engine(many) == "duckdb"
    assert choose_engine(resolve(str(tmp_path / "many"))) == "duckdb"
    with pytest.raises(SpecificationError, match="engine 'pandas' reads one file"):
        choose_engine(many, "pandas")
    with pytest.raises(DataError, match="no file matches"):
        resolve(str(tmp_path / "none-*.parquet"))
    fam = get_family("beta-binomial")
    with pytest.raises(SpecificationError, match="scheduler is for engine 'dask'"):
        reduce(str(tmp_path / "many"), fam, y="y", n="n", group="g", engine="duckdb",
               scheduler="tcp://127.0.0.1:1")
    with pytest.raises(DataError, match="for text tables"):
        reduce(str(tmp_path / "many"), fam, y="y", n="n", group="g", engine="duckdb",
               text={"sep": ";"})


def test_dask_is_an_optional_extra(tmp_path, monkeypatch, capsys):
    """Without Dask installed, --engine dask says which extra to install, in one line."""
    import sys

    path = write_table(_table(), tmp_path / "many", "glob")
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)  # import fails as if absent
    assert main(["fit", str(path), "--y", "y", "--n", "n", "--group", "g",
                 "--engine", "dask", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "engine 'dask' needs Dask: pip install 'poolwise[cluster]'" in error
    assert "Traceback" not in error


def test_duckdb_reads_semicolons_and_decimal_commas(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("g;x\na;1,5\na;2,5\nb;3,25\nb;4,0\n")
    got = reduce(path, None, y="x", group="g", engine="duckdb").stats
    assert got.y.tolist() == [2.0, 3.625]
    assert any("decimal commas" in note for note in got.notes)


@pytest.mark.parametrize(("column", "value", "decimal"), [
    ("y", "lots", "."), ("n", "12x", "."), ("x", "n/a?", "."), ("x", "abc", ",")])
def test_duckdb_names_a_bad_value_past_the_rows_it_guesses_types_from(tmp_path, column,
                                                                      value, decimal):
    """DuckDB guesses a CSV column's type from its first rows (20,480 by default): a value
    that is not a number at row 40,001 is named with its row, as pandas names it, not met
    as a conversion error of the whole query."""
    table = _table(rows=50_000)
    table[column] = table[column].astype(object)
    table.loc[40_000, column] = value
    path = tmp_path / "t.csv"
    if decimal == ",":  # the column written with decimal commas (str: repr's digits)
        written = table.assign(**{column: table[column].map(lambda v: str(v).replace(".", ","))})
        written.to_csv(path, index=False, sep=";")
        read = {"text": {"sep": ";", "decimal": ","}}
    else:
        table.to_csv(path, index=False)
        read = {}
    if column == "x":
        call = {"family": None, "y": "x"}
        want = _error(lambda: group_estimates(table, y="x", group="g"))
    else:
        call = {"family": get_family("beta-binomial"), "y": "y", "n": "n"}
        want = _error(lambda: group_counts(table, call["family"], y="y", n="n", group="g"))
    assert want.startswith("data row 40001: ") and repr(value) in want
    got = _error(lambda: reduce(path, group="g", engine="duckdb", **call, **read))
    assert got == want


def test_python_fit_reads_a_glob(tmp_path):
    import poolwise

    table = _table()
    source = write_table(table, tmp_path, "glob")
    settings = {"y": "y", "n": "n", "group": "g", "method": "eb-moments"}
    fit = poolwise.fit(source, engine="duckdb", **settings)
    direct = poolwise.fit(table, **settings)
    pd.testing.assert_frame_equal(fit.summary(), direct.summary())
    with pytest.raises(SpecificationError, match="needs its rows in memory"):
        poolwise.fit(source, formula="y | trials(n) ~ 1 + (1 | g)", family="binomial")
    with pytest.raises(SpecificationError, match="need the rows in memory"):
        poolwise.fit(source, y="y", group="g", family="nig")


def test_dask_dataframe_as_data():
    import dask.dataframe as dd

    table = _table()
    frame = dd.from_pandas(table, npartitions=4)
    fam = get_family("beta-binomial")
    _same_counts(reduce(frame, fam, y="y", n="n", group="g").stats,
                 group_counts(table, fam, y="y", n="n", group="g"))
    bad = table.astype({"y": float})
    bad.loc[400, "y"] = -1.0
    got = _error(lambda: reduce(dd.from_pandas(bad, npartitions=4), fam, y="y", n="n",
                                group="g"))
    assert got.startswith("data row 401: count (y) column 'y' has -1")


def _cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_fits_a_glob_with_duckdb(tmp_path, capsys):
    source = write_table(_table(), tmp_path, "glob")
    code, out, err = _cli(["fit", source, "--y", "y", "--n", "n", "--group", "g",
                           "--engine", "duckdb", "--method", "eb-moments", "--quiet"], capsys)
    assert code == 0, err
    assert "with DuckDB" in out and "s0" in out


@pytest.mark.parametrize(("extra", "message"), [
    (["--y", "y", "--n", "n", "--group", "g", "--engine", "duckdb", "--scheduler",
      "tcp://127.0.0.1:8786"], "--scheduler is for --engine dask"),
    (["--formula", "y ~ 1 + (1 | g/win)"], "mixed model needs its rows in memory"),
    (["--family", "nig", "--y", "x", "--group", "g"], "nig models need the rows in memory"),
    (["--y", "y", "--n", "n", "--group", "g", "--engine", "spark"], "engine must be one of"),
])
def test_cli_refusals(tmp_path, capsys, extra, message):
    source = write_table(_table(), tmp_path, "glob")
    code, _, err = _cli(["fit", source, *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one line, wrapped at most



def test_dask_merges_each_disjoint_set_of_groups_on_its_own():
    """Five partitions' per-group sums are merged in five parts by a hash of the group: no
    group is in two parts, no part holds every group, and together they are the sums of
    the whole table."""
    import dask

    from poolwise.data.engines import _merge_counts, _merge_tables, merge_by_group
    from poolwise.data.rows import frame_sums

    table = _table()
    chunks = np.array_split(np.arange(len(table)), 5)
    partials = [dask.delayed(((len(rows), [None]),
                              frame_sums(table.iloc[rows], y="y", n="n", group="g",
                                         positions=rows)))
                for rows in chunks]
    summary, parts = merge_by_group(partials, ["label"], _merge_counts, _merge_tables)
    (rows, found), *merged = dask.compute(summary, *parts, scheduler="sync")
    assert rows == len(table) and found == [None] and len(merged) == 5
    labels = [set(part["label"]) for part in merged]
    assert sum(map(len, labels)) == len(set().union(*labels)) == table["g"].nunique()
    assert max(map(len, labels)) < table["g"].nunique()
    whole = pd.concat(merged).sort_values("first").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, frame_sums(table, y="y", n="n", group="g"),
                                  check_dtype=False)


def test_dask_names_a_file_a_worker_cannot_read(tmp_path):
    """Read where the client looked, gone where the partition is read: one line."""
    from poolwise.data.engines import DaskTable
    from poolwise.data.rows import rate_checks

    source = resolve(write_table(_table(), tmp_path, "glob"))
    table = DaskTable.open(source, None)
    source.files[1].unlink()
    checks = rate_checks("beta-binomial", "trials", y="y", n="n", group="g")
    got = _error(lambda: table.reduce(get_family("beta-binomial"), checks,
                                      Columns("y", "n", None, "g")))
    assert got.startswith("a Dask worker could not read the data: ")
    assert got.endswith("the workers must see the files at the same paths")
