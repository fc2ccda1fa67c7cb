"""A corpus of malformed inputs for every kind (rates, normal, NIG, mixed, nested, custom)
and for the command line itself (issue 13, item 6): each ends with one line ``error: …``
that names the column, row or value and says what would be valid, exit code 2, no
traceback and nothing written — neither files under --out nor a header on standard output.

The cases are data: the files a case writes (small CSV texts, or bundled files under
tests/data/bad/ where the bytes matter), the command line, and a fragment of the message.
Each runs in process (``poolwise.cli.main``), as tests/test_cli.py does. Inputs that a
statistician would still fit — with a warning where the data say little — are at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from toy_files import CUSTOM_MODEL

from poolwise.cli import main
from poolwise.exceptions import DataError

BAD = Path(__file__).parent / "data" / "bad"

RATES = "g,y,n\na,1,5\nb,2,6\nc,0,4\n"
SCHOOLS = "s,e,se\na,28,15\nb,8,10\nc,-3,16\nd,7,11\n"
RAW = "g,y\na,1.2\na,0.8\nb,2.1\nb,1.7\nc,0.4\nc,0.9\n"
LABS = "lab,e,y,n\nA,1,3,20\nA,2,5,20\nB,1,8,20\nB,2,6,20\nC,1,2,20\nC,2,4,20\n"
ROWS = "y,x,g\n1.1,1,a\n2.3,2,a\n2.9,1,b\n4.2,2,b\n5.1,3,c\n5.8,2,c\n"

OBS = "y,sd\n1.0,1\n2.0,1\n0.5,1\n"


class Case(NamedTuple):
    """One malformed input: the files it writes ({name} in ``args`` is the file's path,
    {bad} the bundled folder, {tmp} the test's folder), the arguments after the command,
    and a fragment of the one-line message."""

    id: str
    files: dict[str, str]
    args: list[str]
    message: str
    command: str = "fit"


def rates(text: str, *extra: str) -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text}, ["{t.csv}", "--y", "y", "--n", "n", "--group", "g", *extra]


def normal(text: str, *extra: str) -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text}, ["{t.csv}", "--y", "e", "--se", "se", "--group", "s", *extra]


def nig(text: str, *extra: str) -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text}, ["{t.csv}", "--family", "nig", "--y", "y", "--group", "g", *extra]


def nested(text: str, *extra: str) -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text}, ["{t.csv}", "--y", "y", "--n", "n", "--group", "lab/e", *extra]


def mixed(text: str, formula: str, *extra: str) -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text}, ["{t.csv}", "--formula", formula, *extra]


def custom(text: str, function: str = "model") -> tuple[dict[str, str], list[str]]:
    return {"t.csv": text, "toy.py": CUSTOM_MODEL}, ["{t.csv}", "--model", "{toy.py}:" + function,
                                              "--method", "map"]


def case(id: str, made: tuple[dict[str, str], list[str]], message: str) -> Case:
    return Case(id, *made, message)


CASES = [
    # ---- rates: counts out of trials
    case("rates-negative-count", rates("g,y,n\na,1,5\nb,-2,5\n"),
         "row 2: count (y) column 'y' has -2; it must be ≥ 0"),
    case("rates-more-successes-than-trials", rates("g,y,n\na,1,5\nb,7,5\n"),
         "row 2: 'y' is 7 but 'n' is 5; successes cannot exceed trials"),
    case("rates-text-count", rates("g,y,n\na,1,5\nb,two,5\n"),
         "row 2: count (y) column 'y' has 'two', which is not a finite number"),
    case("rates-infinite-count", rates("g,y,n\na,1,5\nb,inf,5\n"),
         "row 2: count (y) column 'y' has 'inf', which is not a finite number"),
    case("rates-infinite-trials", rates("g,y,n\na,1,5\nb,2,-inf\n"),
         "row 2: trials column 'n' has '-inf', which is not a finite number"),
    case("rates-inexact-trials", rates("g,y,n\na,1,5\nb,2,1e300\n"),
         "row 2: trials column 'n' has 1e+300; counts above 9007199254740992 (2^53) are not "
         "exact"),
    case("rates-overflowing-exposure", ({"t.csv": "g,y,E\na,1,5\nb,2,1e300\n"},
                                        ["{t.csv}", "--family", "gamma-poisson", "--y", "y",
                                         "--n", "E", "--group", "g"]),
         "row 2: exposure column 'E' has 1e+300; poolwise squares such values"),
    case("rates-fractional-count", rates("g,y,n\na,1.5,5\nb,2,5\n"),
         "row 1: count (y) column 'y' has 1.5; counts must be whole numbers"),
    case("rates-missing-count", rates("g,y,n\na,1,5\nb,,5\n"),
         "row 2: count (y) column 'y' is missing"),
    case("rates-missing-group", rates("g,y,n\na,1,5\n,2,5\n"),
         "row 2: group column 'g' is missing; every row needs a group"),
    case("rates-single-group", rates("g,y,n\na,1,5\n"), "at least 2 groups"),
    # the 'bda' prior is improper, and with no success anywhere so is its posterior
    case("rates-all-zero-under-bda", rates("g,y,n\na,0,5\nb,0,6\n"), "every group has y = 0"),
    case("rates-count-without-trials", rates("g,y,n\na,1,5\nb,2,0\n"),
         "row 2: 'y' is 2 but 'n' is 0; successes cannot exceed trials"),
    case("rates-duplicated-column", rates("g,y,y\na,1,5\nb,2,5\n"),
         "columns 2 and 3 are both named 'y'; give each column its own name"),
    case("rates-unknown-column", rates(RATES, "--y", "k"),
         "column 'k' not found"),
    case("rates-empty-file", rates(""), "is empty: expected a header row and data rows"),
    case("rates-header-only", rates("g,y,n\n"), "has a header but no data rows"),
    case("rates-unknown-prior", rates(RATES, "--prior", "student(3)"), "valid: halfnormal"),
    case("rates-negative-prior-scale", rates(RATES, "--prior", "halfnormal(-3)"), "must be > 0"),
    # ---- normal: estimates and standard errors, or raw observations
    case("normal-zero-se", normal("s,e,se\na,1,1\nb,2,0\nc,3,1\n"),
         "row 2: standard error column 'se' has 0; a standard error must be > 0"),
    case("normal-negative-se", normal("s,e,se\na,1,1\nb,2,-1\nc,3,1\n"),
         "row 2: standard error column 'se' has -1; a standard error must be > 0"),
    case("normal-infinite-se", normal("s,e,se\na,1,1\nb,2,inf\nc,3,1\n"),
         "row 2: standard error column 'se' has 'inf', which is not a finite number"),
    case("normal-text-se", normal("s,e,se\na,1,1\nb,2,n/a?\nc,3,1\n"),
         "row 2: standard error column 'se' has 'n/a?', which is not a finite number"),
    case("normal-infinite-estimate", normal("s,e,se\na,1,1\nb,-inf,1\nc,3,1\n"),
         "row 2: estimate (y) column 'e' has '-inf', which is not a finite number"),
    case("normal-group-twice", normal("s,e,se\na,1,1\na,2,1\nc,3,1\n"),
         "data row 1 and data row 2: group 'a' appears twice in column 's'"),
    case("normal-single-group", normal("s,e,se\na,1,1\n"),
         "partial pooling needs at least 2 groups, got 1"),
    case("normal-duplicated-column", normal("s,e,e,se\na,1,1,1\nb,2,2,1\n"),
         "columns 2 and 3 are both named 'e'"),
    case("normal-raw-constant", ({"t.csv": "g,y\na,1\na,1\nb,1\nb,1\n"},
                                 ["{t.csv}", "--family", "normal", "--y", "y", "--group", "g"]),
         "within-group standard deviation is 0"),
    case("normal-raw-one-per-group", ({"t.csv": "g,y\na,1\nb,2\n"},
                                      ["{t.csv}", "--family", "normal", "--y", "y", "--group",
                                       "g"]),
         "every group in 'g' has one observation"),
    case("normal-james-stein-unequal-se", normal(SCHOOLS, "--method", "eb-js"),
         "one standard error for every group"),
    # ---- NIG: raw observations, unknown mean and variance per group
    case("nig-infinite-observation", nig("g,y\na,1\na,inf\nb,2\nb,3\n"),
         "row 2: observation (y) column 'y' has 'inf', which is not a finite number"),
    case("nig-text-observation", nig("g,y\na,1\na,x\nb,2\nb,3\n"),
         "row 2: observation (y) column 'y' has 'x', which is not a finite number"),
    case("nig-missing-group", nig("g,y\na,1\n,2\nb,2\nb,3\n"),
         "row 2: group column 'g' is missing"),
    # type-II ML of the variances runs to σ² → 0; a fixed prior would do
    case("nig-constant-response", nig("g,y\na,1\na,1\nb,1\nb,1\n"),
         "every group's observations are all equal"),
    case("nig-overflowing-magnitude", nig("g,y\na,1e300\na,-1e300\nb,1\nb,2\n"),
         "row 1: observation (y) column 'y' has 1e+300; poolwise squares such values, so they "
         "must be within ±1e+150"),
    case("normal-tiny-se", normal("s,e,se\na,1,1\nb,2,1e-200\n"),
         "row 2: standard error column 'se' has 1e-200; a standard error must be at least "
         "1e-150"),
    case("mixed-overflowing-predictor", mixed(ROWS.replace("2.3,2", "2.3,-1e200"),
                                              "y ~ x + (1 | g)"),
         "row 2: fixed-effect column 'x' is -1e+200; poolwise squares such values"),
    case("nig-single-group", nig("g,y\na,1\na,2\n"),
         "partial pooling needs at least 2 groups, got 1"),
    case("nig-incomplete-prior", nig(RAW, "--pooling", "none", "--prior", "mu=0, tau=1"),
         "the NIG prior needs mu, tau, alpha and beta; missing: alpha, beta"),
    case("nig-unknown-column", nig(RAW, "--y", "value"),
         "observation (y) column 'value' not found"),
    # ---- nested: experiments within labs
    case("nested-single-lab", nested("lab,e,y,n\nA,1,1,5\nA,2,2,5\n"),
         "the data have one lab ('A')"),
    case("nested-three-levels", ({"t.csv": LABS},
                                 ["{t.csv}", "--y", "y", "--n", "n", "--group", "lab/e/y"]),
         "has 3 levels; nested models take two"),
    case("nested-unknown-inner", ({"t.csv": LABS},
                                  ["{t.csv}", "--y", "y", "--n", "n", "--group", "lab/ex"]),
         "group column 'ex' not found (did you mean 'e'?)"),
    case("nested-negative-count", nested(LABS.replace("A,2,5,20", "A,2,-5,20")),
         "row 2: count (y) column 'y' has -5; it must be ≥ 0"),
    case("nested-method-exact", nested(LABS, "--method", "exact"),
         "unknown method 'exact' for a nested model; valid: nuts"),
    case("nested-missing-lab", nested(LABS.replace("B,1,8", ",1,8")),
         "row 3: group column 'lab' is missing"),
    # ---- mixed: formulas and families
    case("mixed-predictor-numbers-and-text", mixed(ROWS.replace("2.3,2", "2.3,two"),
                                                   "y ~ x + (1 | g)"),
         "data row 2: column 'x' holds numbers and text ('two'); as a number, correct that "
         "value; as categories, write C(x) in the formula"),
    case("mixed-unknown-column", mixed(ROWS, "y ~ z + (1 | g)"),
         "the formula names column 'z', which is not in the data"),
    case("mixed-constant-predictor", mixed(ROWS.replace(",2,", ",1,").replace(",3,", ",1,"),
                                           "y ~ x + (1 | g)"),
         "fixed-effect column 'x' is a linear combination of Intercept"),
    case("mixed-single-level-group", mixed(ROWS.replace(",b\n", ",a\n").replace(",c\n", ",a\n"),
                                           "y ~ x + (1 | g)"),
         "grouping factor 'g' has one level ('a')"),
    # lme4: "contrasts can be applied only to factors with 2 or more levels"
    case("mixed-single-level-factor", mixed("y,f,g\n1,u,a\n2,u,a\n3,u,b\n4,u,b\n",
                                            "y ~ f + (1 | g)"),
         "the term 'f' takes one value in every row"),
    case("mixed-text-response", mixed(ROWS.replace("2.3", "high"), "y ~ x + (1 | g)"),
         "row 2: response 'y' has 'high'; a normal response must be numeric"),
    case("mixed-infinite-response", mixed(ROWS.replace("2.3", "inf"), "y ~ x + (1 | g)"),
         "row 2: response 'y' is inf"),
    case("mixed-infinite-predictor", mixed(ROWS.replace("2.3,2", "2.3,-inf"), "y ~ x + (1 | g)"),
         "row 2: fixed-effect column 'x' is -inf"),
    case("mixed-log-of-zero", mixed(ROWS.replace("2.3,2", "2.3,0"), "y ~ log(x) + (1 | g)"),
         "row 2: fixed-effect column 'log(x)' is -inf"),
    case("mixed-unmatched-parenthesis", mixed(ROWS, "y ~ x + (1 | g"),
         "formula has 1 ( without a matching )"),
    case("mixed-stray-operator", mixed(ROWS, "y ~ x +* (1 | g)"),
         "must be written (expr | factor) and added with +"),
    case("mixed-no-tilde", mixed(ROWS, "y x"), "needs one ~ with the response on its left"),
    case("mixed-forbidden-name", mixed(ROWS, "y ~ __import__('os') + (1 | g)"),
         "formula has the forbidden name '__import__'"),
    case("mixed-family-not-offered", mixed(ROWS, "y ~ x + (1 | g)", "--family", "gamma"),
         "unknown mixed-model family 'gamma'; valid: normal, binomial"),
    # a normal model of a constant: the likelihood grows as σ^−(n−p) when σ → 0, so the
    # posterior is improper under any prior positive at 0 (degenerate.py)
    case("mixed-constant-response", mixed("y,x,g\n1,1,a\n1,2,a\n1,1,b\n1,2,b\n1,3,c\n1,2,c\n",
                                          "y ~ x + (1 | g)"),
         "response 'y' is 1 in every row; a normal model needs a response that varies"),
    # separated binomial data and all-zero counts: the ML estimate is at infinity (the
    # optimiser used to run on for ever), while a Bayesian fit stays proper under b's prior
    case("mixed-separated-bernoulli",
         mixed("y,x,g\n0,1,a\n0,2,a\n1,5,b\n1,6,b\n0,1,c\n1,6,c\n0,2,d\n1,5,d\n",
               "y ~ x + (1 | g)", "--family", "bernoulli", "--method", "eb-ml"),
         "the fixed effects separate the rows where 'y' is 0 or all trials from the others"),
    case("mixed-poisson-all-zero", mixed("y,x,g\n0,1,a\n0,2,a\n0,5,b\n0,6,b\n0,1,c\n0,6,c\n",
                                         "y ~ x + (1 | g)", "--family", "poisson",
                                         "--method", "eb-ml"),
         "maximum likelihood (eb-ml) has no finite estimate: 'y' is 0 in every row"),
    case("mixed-poisson-negative-count", mixed("y,x,g\n0,1,a\n-1,2,a\n2,5,b\n1,6,b\n",
                                               "y ~ x + (1 | g)", "--family", "poisson"),
         "row 2: response 'y' (a Poisson count) is -1; it must be a whole number ≥ 0"),
    case("mixed-bernoulli-two", mixed("y,x,g\n0,1,a\n2,2,a\n0,5,b\n1,6,b\n",
                                      "y ~ x + (1 | g)", "--family", "bernoulli"),
         "row 2: response 'y' is 2; a bernoulli response is 0 or 1"),
    case("mixed-binomial-without-trials", mixed(ROWS, "y ~ x + (1 | g)", "--family",
                                                "binomial"),
         "the binomial family needs the trials: write y | trials(n) ~ …"),
    case("mixed-more-successes-than-trials",
         mixed("y,n,x,g\n1,5,1,a\n7,5,2,a\n2,5,1,b\n3,5,2,b\n", "y | trials(n) ~ x + (1 | g)",
               "--family", "binomial"),
         "row 2: response 'y' is 7 but trials is 5"),
    case("mixed-missing-value", mixed(ROWS.replace("2.3,2,a", "2.3,2,"), "y ~ x + (1 | g)"),
         "row 2: 'g' missing"),
    case("mixed-duplicated-column", mixed("y,x,x,g\n1,1,1,a\n2,2,2,a\n3,1,1,b\n4,2,2,b\n",
                                          "y ~ x + (1 | g)"),
         "columns 2 and 3 are both named 'x'"),
    case("mixed-one-row-per-level", mixed("y,x,g\n1,1,a\n2,2,b\n3,1,c\n4,2,d\n",
                                          "y ~ x + (1 | g)"),
         "grouping factor 'g' has 4 levels for 4 rows"),
    case("mixed-columns-as-options", mixed(ROWS, "y ~ x + (1 | g)", "--y", "y"),
         "leave out --y, --n, --se and --group"),
    # ---- custom: a NumPyro model in a file
    case("custom-missing-value", custom("y,sd\n1.0,1\n,1\n0.5,1\n"),
         "row 2: model argument column 'y' is missing"),
    case("custom-infinite-value", custom("y,sd\n1.0,1\n2.0,inf\n0.5,1\n"),
         "row 2: model argument column 'sd' has 'inf', which is not a finite number"),
    case("custom-text-value", custom("y,sd\n1.0,1\nabc,1\n0.5,1\n"),
         "row 2: model argument column 'y' has 'abc', which is not a finite number"),
    case("custom-missing-argument", custom("y\n1.0\n2.0\n"),
         "model() needs 'sd', which the data do not have"),
    case("custom-unknown-function", custom(OBS, "nope"), "helper, model"),
    case("custom-not-a-model", custom(OBS, "helper"), "has no numpyro.sample statements"),
    case("custom-no-file", ({"t.csv": OBS}, ["{t.csv}", "--model", "{tmp}/none.py:model"]),
         "no model file"),
    case("custom-duplicated-column", custom("y,sd,y\n1.0,1,1\n2.0,1,2\n"),
         "columns 1 and 3 are both named 'y'"),
    # ---- files as Excel and others save them
    case("file-utf16-without-encoding",
         ({}, ["{bad}/schools-utf16.csv", "--y", "effet", "--se", "erreur", "--group", "école"]),
         "it is UTF-16 text (it starts with UTF-16's byte-order mark), not UTF-8; read it with "
         "--encoding utf-16"),
    case("file-latin1-without-encoding",
         ({}, ["{bad}/schools-latin1.csv", "--y", "effet", "--se", "erreur", "--group", "école"]),
         "it is not UTF-8 text (byte 0xe9 on line 1); name its encoding with --encoding"),
    # UTF-16 tab-separated (Excel's "Unicode text"): tabs are detected, decimal commas are not
    case("file-utf16-tabs-decimal-commas",
         ({}, ["{bad}/schools-utf16-tab.txt", "--encoding", "utf-16", "--y", "effet", "--se",
               "erreur", "--group", "école"]),
         "row 1: estimate (y) column 'effet' has '28,39', which is not a finite number; for "
         "numbers with decimal commas give --decimal ','"),
    case("file-unknown-encoding", ({}, ["{bad}/schools-latin1.csv", "--encoding", "latin-9x",
                                        "--y", "effet"]),
         "unknown --encoding 'latin-9x'"),
    case("file-decimal-same-as-separator",
         ({}, ["{bad}/schools-utf8-bom.csv", "--sep", ";", "--decimal", ";", "--y", "effet"]),
         "--decimal must be one character other than the separator"),
    case("file-undetected-separator", ({"t.csv": "a;b|c\n1;2|3\n"}, ["{t.csv}", "--y", "a"]),
         "reads as the single column 'a;b|c'; name its separator with --sep"),
    case("file-not-found", ({}, ["{tmp}/none.csv", "--y", "y"]), "file not found"),
    case("file-unknown-dataset", ({}, ["ratz"]), "bundled datasets: rats, spacex"),
    case("file-options-for-a-dataset", ({}, ["rats", "--decimal", ","]),
         "--decimal is for data files; 'rats' is a bundled dataset"),
    case("file-custom-on-a-dataset",
         ({"toy.py": CUSTOM_MODEL}, ["rats", "--model", "{toy.py}:model"]),
         "a custom model needs a data file, not the bundled dataset 'rats'"),
    # ---- the command line
    case("cli-unknown-option", ({}, ["rats", "--bogus", "1"]),
         "No such option: --bogus"),
    case("cli-not-a-number", ({}, ["rats", "--draws", "many"]), "Invalid value for '--draws'"),
    case("cli-zero-draws", ({}, ["rats", "--draws", "0"]),
         "Invalid value for '--draws': Input should be greater than or equal to 1"),
    case("cli-interval-out-of-range", ({}, ["rats", "--ci", "1.5"]),
         "--ci must be between 0 and 1, got 1.5"),
    case("cli-unknown-format", ({}, ["rats", "--format", "xml"]),
         "unknown format 'xml'; valid: table, json"),
    case("cli-option-of-another-kind", rates(RATES, "--agq", "5"), "--agq"),
    case("cli-unknown-method", rates(RATES, "--method", "mcmc"), "unknown method 'mcmc'"),
    case("cli-unknown-rank", ({}, ["rats", "--rank", "sideways"]),
         "--rank is 'higher' or 'lower' (which is better), not 'sideways'"),
    # named only after the fit, whose header must then not have been printed
    case("cli-hypothesis-unknown-parameter", ({}, ["rats", "--hypothesis", "foo > 0.1"]),
         "no parameter 'foo' in the posterior; it has alpha, beta, mu, kappa, theta"),
    case("cli-output-is-a-file", ({"taken.txt": "x"}, ["rats", "--out", "{taken.txt}"]),
         "exists and is not a directory"),
    case("cli-output-under-a-file", ({"taken.txt": "x"}, ["rats", "--out", "{taken.txt}/out"]),
         "taken.txt is a file, not a directory"),
    Case("cli-graph-into-a-directory", {}, ["rats", "-o", "{tmp}"],
         "is a directory; give an image file", command="graph"),
    Case("cli-graph-unknown-suffix", {}, ["rats", "-o", "{tmp}/g.txt"], ".png, .svg or .pdf",
         command="graph"),
]


def test_the_corpus_covers_every_kind_and_the_command_line():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    kinds = {c.id.split("-")[0] for c in CASES}
    assert kinds == {"rates", "normal", "nig", "nested", "mixed", "custom", "file", "cli"}


def run(case: Case, tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    paths = {"bad": str(BAD), "tmp": str(tmp)}
    for name, text in case.files.items():
        (tmp / name).write_text(text, encoding="utf-8")
        paths[name] = str(tmp / name)
    args = []
    for arg in case.args:
        for name, path in paths.items():
            arg = arg.replace("{" + name + "}", path)
        args.append(arg)
    if case.command == "fit" and "--out" not in args:
        args += ["--out", str(tmp / "never")]
    code = main([case.command, *args, "--quiet"] if case.command == "fit" else
                [case.command, *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert message in err, err
    assert out == ""  # no header, no table: nothing before the error


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_ends_in_one_line(case, tmp_path, capsys):
    before = {p.name for p in tmp_path.iterdir()}
    code, out, err = run(case, tmp_path, capsys)
    assert_one_line_error(code, out, err, case.message)
    written = {p.name for p in tmp_path.iterdir()} - before - set(case.files)
    assert not written, written  # no output directory, no staging left behind


@pytest.fixture
def unwritable(tmp_path):
    """A directory nobody may write in: a read-only one, or for root (whom permissions
    do not stop) /sys, which refuses new entries to everyone."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


@pytest.mark.parametrize("command", ["fit", "graph", "report"])
def test_an_unwritable_output_is_refused_before_any_work(command, unwritable, tmp_path, capsys):
    target = unwritable / "poolwise-never"
    args = {"fit": ["fit", "rats", "--out", str(target)],
            "graph": ["graph", "rats", "-o", f"{target}.png"],
            "report": ["report", str(tmp_path), "-o", f"{target}.html"]}[command]
    code = main(args)
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, f"cannot write in {unwritable}")
    assert not target.exists()


def test_a_folder_with_files_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    code = main(["fit", "rats", "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "already has files; use --force")
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(("column", "value"), [("est", 2e200), ("se", 1e-200)])
def test_duckdb_refuses_the_magnitudes_pandas_refuses(column, value, tmp_path):
    """The checks of extreme magnitudes read the same in SQL as in pandas."""
    from poolwise.data.engines import reduce
    from poolwise.data.estimates import group_estimates

    table = pd.DataFrame({"g": list("abcd"), "est": [1.0, 2, 3, 4], "se": [1.0, 1, 2, 1]})
    table.loc[2, column] = value
    with pytest.raises(DataError) as pandas_error:
        group_estimates(table, y="est", se="se", group="g")
    table.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError) as duckdb_error:
        reduce(str(tmp_path / "t.parquet"), None, y="est", se="se", group="g",
               engine="duckdb")
    assert str(duckdb_error.value) == str(pandas_error.value)
    assert str(pandas_error.value).startswith("data row 3: ")


# ------------------------------------------------------------- inputs that still fit
def test_excel_utf8_with_byte_order_mark_fits_as_the_plain_file(capsys):
    """Excel's "CSV UTF-8": a byte-order mark, ';' and decimal commas, all detected."""
    args = ["--y", "effet", "--se", "erreur", "--group", "école", "--method", "eb-moments",
            "--format", "json", "--quiet"]
    assert main(["fit", str(BAD / "schools-utf8-bom.csv"), *args]) == 0
    bom = json.loads(capsys.readouterr().out)
    assert main(["fit", str(BAD / "schools-utf16.csv"), "--encoding", "utf-16", *args]) == 0
    utf16 = json.loads(capsys.readouterr().out)
    assert main(["fit", str(BAD / "schools-latin1.csv"), "--encoding", "latin-1", *args]) == 0
    latin = json.loads(capsys.readouterr().out)
    assert bom["summary"] == utf16["summary"] == latin["summary"]
    assert bom["notes"][0].startswith("read as semicolon-separated with decimal commas")
    assert {row["group"] for row in bom["summary"] if row["param"] == "theta"} == set("ABCD")


def test_a_constant_estimate_is_a_proper_fit(tmp_path, capsys):
    """Estimates that agree exactly (known standard errors) say τ is small, not that the
    data are wrong: the posterior under the flat prior on (μ, τ) is proper and the fit
    finishes. Far out p(τ | y) ∝ τ^(−(J−1)) (BDA3 §5.4), so in v = log τ the tail is
    e^(−(J−2)v): with J = 3, c = 1 and τ (and μ, which spreads with it) has no mean —
    left out of the table with a warning, as the README promises."""
    path = tmp_path / "t.csv"
    path.write_text("s,e,se\na,1,1\nb,1,1\nc,1,1\n")
    code = main(["fit", str(path), "--y", "e", "--se", "se", "--group", "s", "--draws", "200",
                 "--format", "json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    assert "density ∝ exp(−1.00 v) far out" in document["warnings"][0]
    assert {"tau", "mu"} <= set(document["infinite_moments"])
    mu = next(row for row in document["summary"] if row["param"] == "mu")
    assert mu["mean"] is None and mu["lower"] < 1 < mu["upper"]
