"""What the command line prints fits the terminal: COLUMNS is honoured, no parameter name
or number is cut, and a narrow terminal gets one parameter per line."""

from __future__ import annotations

import pandas as pd
import pytest

from poolwise import cli
from poolwise.cli import main

#: a mixed model's summary rows as lme4's sleepstudy gives them (the names matter here)
SLEEPSTUDY = pd.DataFrame({
    "param": ["b[Intercept]", "sigma", "sd_Subject[Intercept]", "sd_Subject[Days]",
              "cor_Subject[Days, Intercept]", "r_Subject[Days]"],
    "group": [None, None, None, None, None, "308"],
    "mean": [251.4, 25.59, 27.03, 6.557, 0.08345, 9.195],
    "sd": [7.435, 1.498, 6.699, 1.565, 0.2742, 2.833],
    "lower": [236.7, 23.19, 16.32, 4.151, -0.4595, 3.837],
    "upper": [266.0, 29.03, 42.72, 10.23, 0.5771, 15.19],
    "ess_bulk": [3991.0, 4128, 4106, 3885, 3381, 4042],
    "ess_tail": [3865.0, 2939, 2669, 2478, 2859, 3872],
    "r_hat": [1.000, 1.003, 1.002, 1.0031, 1.001, 1.001],
})


@pytest.fixture
def width():
    """Set the width of standard output for one test (main() sets it from COLUMNS)."""
    yield lambda columns: setattr(cli.stdout, "width", columns)
    cli.stdout.width = cli.PIPED_WIDTH


def table_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "│" in line or "┃" in line]


def test_output_width_honours_columns_even_when_piped(monkeypatch):
    monkeypatch.setenv("COLUMNS", "63")
    assert cli.output_width() == 63
    monkeypatch.delenv("COLUMNS")
    assert cli.output_width() == cli.PIPED_WIDTH  # pytest's stdout is not a terminal


def test_80_columns_keep_every_name_and_number(width, capsys):
    """At 80 columns the table drops its diagnostic columns for one line naming the worst
    rows, and prints every name and number whole."""
    width(80)
    cli.print_table(SLEEPSTUDY, 0.95)
    out = capsys.readouterr().out
    assert "…" not in out
    assert all(len(line) <= 80 for line in table_lines(out))
    for name in SLEEPSTUDY["param"]:
        assert name in out
    assert "0.08345" in out and "-0.4595" in out  # four significant digits, not decimals
    assert ("diagnostics over all 6 rows: largest r_hat 1.003 for sd_Subject[Days], "
            "smallest ess_bulk 3381 for cor_Subject[Days, Intercept], smallest ess_tail 2478 "
            "for sd_Subject[Days]") in out


def test_a_wide_terminal_gets_the_whole_table(width, capsys):
    width(120)
    cli.print_table(SLEEPSTUDY, 0.95)
    out = capsys.readouterr().out
    assert "ess_bulk" in out and "r_hat" in out and "diagnostics over" not in out


@pytest.mark.parametrize("columns", [60, 40])
def test_narrow_terminal_one_parameter_per_line(width, columns, capsys):
    """Too narrow even for the estimates: a line per parameter, its numbers on an indented
    line where name and numbers together do not fit."""
    width(columns)
    cli.print_table(SLEEPSTUDY, 0.95)
    lines = capsys.readouterr().out.splitlines()
    assert not table_lines("\n".join(lines))
    assert "sd_Subject[Days]" in lines
    assert "r_Subject[Days] (308)" in lines
    i = lines.index("cor_Subject[Days, Intercept]")
    assert lines[i + 1] == ("  mean 0.08345  sd 0.2742  [-0.4595, 0.5771]  ess 3381/2859  "
                            "r_hat 1.001")


def test_one_line_per_parameter_when_it_fits(width, capsys):
    width(50)  # the table of estimates is 53 wide
    summary = SLEEPSTUDY.drop(columns=["ess_bulk", "ess_tail", "r_hat"]).assign(
        param=["b", "s", "t", "u", "v", "r"])
    cli.print_table(summary, 0.95)
    lines = capsys.readouterr().out.splitlines()
    assert "r (308): mean 9.195  sd 2.833  [3.837, 15.19]" in lines
    assert "v: mean 0.08345  sd 0.2742  [-0.4595, 0.5771]" in lines


def test_fit_at_columns_60_end_to_end(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["fit", "eight-schools", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 60 for line in table_lines(out))
    assert "I2" in out and "0.0003679" in out  # whole, where an 80-column table cut it


@pytest.mark.parametrize("columns", [120, 40])
def test_other_tables_keep_names_and_numbers_whole(width, capsys, columns):
    """A table too wide for the terminal (ranks, PSIS-LOO) becomes one row per line, each
    value whole."""
    width(columns)
    rows = [["sd_Subject[Intercept]", "-23.97", "0.8969"], ["out-sleepstudy", "0", "0.1031"]]
    cli.print_rows(("model", "elpd_diff", "weight"), rows, title="comparison:")
    out = capsys.readouterr().out
    assert out.startswith("comparison:")
    for cells in rows:
        for cell in cells:
            assert cell in out
    if columns == 40:
        assert not table_lines(out)
        assert "sd_Subject[Intercept]\n  elpd_diff -23.97  weight 0.8969" in out
    else:
        assert len(table_lines(out)) == 3


def test_predicted_rows_are_labelled_by_their_inputs():
    table = pd.DataFrame({"param": ["mu", "mu"], "row": [0, 1], "Days": [0, 9],
                          "Subject": ["308", None], "mean": [253.3, 282.9]})
    labelled = cli.with_inputs(table)
    assert labelled["row"].tolist() == ["0: Days=0, Subject=308", "1: Days=9, Subject=—"]
    assert list(labelled.columns) == ["param", "row", "mean"]
