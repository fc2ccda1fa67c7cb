"""Formulas → MixedDesign: shapes and contents against hand-built matrices, bad input,
formulas that try to run code, and the designs of the three pooling levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poolwise import DataError, SpecificationError, datasets
from poolwise.kinds.mixed import parse_formula, pooling_design
from poolwise.kinds.mixed.formula import _design_matrices, formula_columns


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture
def counts() -> pd.DataFrame:
    return pd.DataFrame({
        "y": [1, 0, 3, 4, 2, 5], "n": [5, 5, 5, 6, 6, 8], "x": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        "exposure": [1.0, 2.0, 4.0, 1.0, 2.0, 4.0], "g": list("aabbcc"), "label": list("pqrstu"),
    })


def _hand_built_z(table: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(table)), table["Days"]])


# ----------------------------------------------------------------------------- designs
def test_sleepstudy_design_is_intercept_and_days_by_subject(sleepstudy):
    design = parse_formula("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_array_equal(design.y, sleepstudy["Reaction"])
    np.testing.assert_array_equal(design.x, _hand_built_z(sleepstudy))
    assert design.fixed_names == ("Intercept", "Days")
    assert (design.family, design.link, design.response) == ("normal", "identity", "Reaction")
    assert design.trials is None and design.offset is None and design.dropped_rows == 0
    assert design.columns == ("Reaction", "Days", "Subject")
    np.testing.assert_array_equal(design.rows, np.arange(180))
    # "gaussian" is read as the one name of the normal family
    assert parse_formula("Reaction ~ Days + (1 | Subject)", sleepstudy,
                         family="gaussian").family == "normal"
    (term,) = design.terms
    assert term.factor == "Subject" and term.names == ("Intercept", "Days") and term.correlated
    assert term.label == "(1 + Days | Subject)"
    subjects = sorted(sleepstudy["Subject"].unique())
    assert term.levels == tuple(str(s) for s in subjects) and term.n_levels == 18
    np.testing.assert_array_equal(term.z, _hand_built_z(sleepstudy))
    np.testing.assert_array_equal(np.asarray(term.levels)[term.index],
                                  sleepstudy["Subject"].astype(str))


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days || Subject)",
                                     "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"])
def test_uncorrelated_effects_are_one_term_with_a_diagonal_covariance(sleepstudy, formula):
    (term,) = parse_formula(formula, sleepstudy).terms
    assert term.factor == "Subject" and term.names == ("Intercept", "Days")
    assert not term.correlated and term.label == "(1 + Days || Subject)"
    np.testing.assert_array_equal(term.z, _hand_built_z(sleepstudy))


def test_intercept_only_and_transformed_terms(sleepstudy):
    design = parse_formula("log(Reaction) ~ scale(Days) + (1 | Subject)", sleepstudy)
    days = sleepstudy["Days"].to_numpy(dtype=float)
    np.testing.assert_allclose(design.y, np.log(sleepstudy["Reaction"]))
    np.testing.assert_allclose(design.x[:, 1], (days - days.mean()) / days.std())
    (term,) = design.terms
    assert term.names == ("Intercept",) and not term.correlated and term.label == "(1 | Subject)"
    for spelling in ("centre", "center"):
        centred = parse_formula(f"Reaction ~ {spelling}(Days) + (1 | Subject)", sleepstudy)
        np.testing.assert_allclose(centred.x[:, 1], days - days.mean())


def test_nested_factors_expand_to_outer_and_inner_terms():
    pastes = datasets.load("pastes")
    design = parse_formula("strength ~ 1 + (1 | batch/cask)", pastes)
    outer, inner = design.terms
    assert (outer.factor, outer.n_levels) == ("batch", 10)
    assert (inner.factor, inner.n_levels) == ("batch:cask", 30)
    assert inner.levels[:4] == ("A:a", "A:b", "A:c", "B:a")
    np.testing.assert_array_equal(np.asarray(inner.levels)[inner.index], pastes["sample"])
    np.testing.assert_array_equal(np.asarray(outer.levels)[outer.index], pastes["batch"])
    assert design.x.shape == (60, 1) and any("batch:cask" in note for note in design.notes)


def test_crossed_factors_are_separate_terms(counts):
    design = parse_formula("x ~ 1 + (1 | g) + (1 | label)", counts)
    assert [t.factor for t in design.terms] == ["g", "label"]
    assert [t.n_levels for t in design.terms] == [3, 6]


def test_binomial_trials_and_bernoulli(counts):
    design = parse_formula("y | trials(n) ~ x + (1 | g)", counts, family="binomial")
    np.testing.assert_array_equal(design.trials, counts["n"])
    np.testing.assert_array_equal(design.y, counts["y"])
    assert design.link == "logit"
    constant = parse_formula("y | trials(8) ~ x + (1 | g)", counts, family="binomial")
    np.testing.assert_array_equal(constant.trials, np.full(6, 8.0))
    counts["hit"] = (counts["y"] > 1)  # booleans are 0/1 for bernoulli
    bernoulli = parse_formula("hit ~ x + (1 | g)", counts, family="bernoulli")
    np.testing.assert_array_equal(bernoulli.trials, np.ones(6))
    np.testing.assert_array_equal(bernoulli.y, [0, 0, 1, 1, 1, 1])


def test_poisson_offset_is_on_the_log_scale(counts):
    design = parse_formula("y ~ x + offset(log(exposure)) + (1 | g)", counts, family="poisson")
    np.testing.assert_allclose(design.offset, np.log(counts["exposure"]))
    assert design.fixed_names == ("Intercept", "x") and design.link == "log"


def test_categorical_predictors_and_backticks():
    sleep = datasets.load("sleep")
    design = parse_formula(datasets.info("sleep").formula, sleep)
    assert design.fixed_names == ("Intercept", "group[2]")
    np.testing.assert_array_equal(design.x[:, 1], sleep["group"].astype(int) == 2)
    assert design.terms[0].n_levels == 10
    renamed = sleep.rename(columns={"extra": "extra sleep"})
    same = parse_formula("`extra sleep` ~ C(group) + (1 | `ID`)", renamed)
    np.testing.assert_array_equal(same.x, design.x)


def test_formula_columns_by_role_without_data():
    columns = formula_columns("y | trials(n) ~ x + offset(log(e)) + (1 + z | school/class)")
    assert columns.response == ("y",) and columns.trials == "n"
    assert columns.covariates == ("x", "e", "z")
    assert columns.factors == (("school",), ("school", "class"))
    assert columns.factor_columns == ("school", "class")
    assert formula_columns("y | trials(8) ~ 1 + (1 | g)").trials is None
    with pytest.raises(SpecificationError, match="needs one ~"):
        formula_columns("y + (1 | g)")


def test_a_response_without_variation_is_fine(counts):
    counts["flat"] = 2.0
    assert parse_formula("flat ~ x + (1 | g)", counts).y.tolist() == [2.0] * 6


@pytest.mark.parametrize("name", ["sleepstudy", "sleep", "radon", "pastes"])
def test_mixed_datasets_parse_with_their_default_formula(name):
    info = datasets.info(name)
    design = parse_formula(str(info.formula), datasets.load(name), family=info.family)
    assert design.response == info.y and design.terms[0].factor == info.group


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("formula", "family", "error", "message"),
    [
        ("y ~ xx + (1 | g)", "gaussian", DataError, "column 'xx'.*did you mean 'x'"),
        ("y ~ x + (1 | gg)", "gaussian", DataError, "column 'gg'.*did you mean 'g'"),
        ("y ~ x + (1 | one)", "gaussian", DataError, "grouping factor 'one' has one level"),
        ("label ~ x + (1 | g)", "gaussian", DataError, "row 1: response 'label' has 'p'.*numeric"),
        ("x ~ 1 + (1 | g)", "poisson", DataError, "row 1: response 'x'.* 0.5; .*whole number"),
        ("neg ~ 1 + (1 | g)", "poisson", DataError, "row 2: response 'neg'.*-1; .*≥ 0"),
        ("x | trials(n) ~ 1 + (1 | g)", "binomial", DataError, "row 1: .*'x'.*whole number"),
        ("big | trials(n) ~ 1 + (1 | g)", "binomial", DataError,
         "row 3: response 'big' is 9 but trials is 5"),
        ("y | trials(zero) ~ 1 + (1 | g)", "binomial", DataError, "row 1: trials is 0; .*≥ 1"),
        ("y ~ x + (1 | g)", "binomial", SpecificationError, r"y \| trials\(n\)"),
        ("y ~ x + (1 | g)", "bernoulli", DataError, "row 3: .*'y' is 3; a bernoulli response is 0"),
        ("y | trials(n) ~ x + (1 | g)", "poisson", SpecificationError, "trials.*binomial"),
        ("y ~ x + (1 | g)", "gausian", SpecificationError, "did you mean 'gaussian'"),
        ("y ~ log(x - 1) + (1 | g)", "gaussian", DataError, r"row 1: .*'log\(x - 1\)' is nan"),
        ("y ~ x + (1 | g) + (x | g)", "gaussian", SpecificationError, "'Intercept'.*more than one"),
        ("y ~ x + (x | g) + (0 + exposure | g)", "gaussian", SpecificationError,
         r"several group terms.*\(x \+ z \|\| g\)"),
        ("y ~ x - (1 | g)", "gaussian", SpecificationError, "added with +"),
        ("y ~ x + (1 | g + label)", "gaussian", SpecificationError, "column names joined by :"),
        ("y ~ x + (offset(x) | g)", "gaussian", SpecificationError, "outside group terms"),
        ("y ~ offset(x) + offset(exposure)", "poisson", SpecificationError, "more than one offset"),
        ("y ~ x + (1 | g", "gaussian", SpecificationError, "without a matching"),
        ("~ x + (1 | g)", "gaussian", SpecificationError, "response on its left"),
        ("y ~ x + ", "gaussian", SpecificationError, "empty term"),
        ("y | log(n) ~ x", "gaussian", SpecificationError, r"only trials\(n\)"),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_it(counts, formula, family, error, message):
    counts = counts.assign(one="k", neg=[1, -1, 2, 3, 1, 0], big=[1, 2, 9, 3, 1, 0], zero=0)
    with pytest.raises(error, match=message) as caught:
        parse_formula(formula, counts, family=family)
    assert "\n" not in str(caught.value)


def test_missing_values_are_refused_unless_dropping_is_asked_for(sleepstudy):
    table = sleepstudy.copy()
    table.loc[[3, 7], "Reaction"] = np.nan
    table.loc[[7, 20], "Days"] = np.nan
    with pytest.raises(DataError, match=r"3 of 180 rows have missing values \(Reaction: 2, "
                                        r"Days: 2\); pass missing=\"drop\" \(CLI --drop-missing\)"):
        parse_formula("Reaction ~ Days + (Days | Subject)", table)
    design = parse_formula("Reaction ~ Days + (Days | Subject)", table, missing="drop")
    assert design.n_obs == 177 and design.dropped_rows == 3
    assert design.notes == ("dropped 3 of 180 rows with missing values (Reaction: 2, Days: 2)",)
    np.testing.assert_array_equal(design.y, sleepstudy["Reaction"].drop([3, 7, 20]))
    np.testing.assert_array_equal(design.rows, np.delete(np.arange(180), [3, 7, 20]))
    assert sum(np.bincount(design.terms[0].index)) == 177
    with pytest.raises(SpecificationError, match=r"'refuse'.*'drop'"):
        parse_formula("Reaction ~ Days", table, missing="ignore")


def test_missing_values_in_unused_columns_do_not_matter(sleepstudy):
    table = sleepstudy.assign(note=np.nan)
    assert parse_formula("Reaction ~ Days + (1 | Subject)", table).n_obs == 180


def test_rows_are_counted_from_one_in_the_original_table(counts):
    counts.loc[0, "x"] = np.nan
    counts["bad"] = [1, 1, 1, 1.5, 1, 1]
    with pytest.raises(DataError, match="row 4: response 'bad'"):
        parse_formula("bad ~ x + (1 | g)", counts, family="poisson", missing="drop")


# ----------------------------------------------------------------------------- safety
MALICIOUS = [
    "y ~ __import__('os').system('touch {marker}') + (1 | g)",
    "y ~ os.system('touch {marker}')",
    'y ~ x + {{__import__("os").system("touch {marker}")}}',
    "y ~ I(open('{marker}', 'w'))",
    "y ~ eval(x)",
    "y ~ exec(x)",
    "y ~ x.__class__",
    "y ~ log.__globals__",
    "y ~ np.log(x)",
    "y ~ x[0]",
    "y ~ x + (1 | g); import os",
    "y ~ lambda: x",
    "y ~ I(x ** 2)",
    "y ~ bs(x, df=3)",
    "y ~ _x",
    "y ~ x @ x",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_formulas_cannot_run_code(counts, tmp_path, template):
    marker = tmp_path / "created"
    with pytest.raises((SpecificationError, DataError)) as caught:
        parse_formula(template.format(marker=marker), counts)
    assert not marker.exists()
    message = str(caught.value)
    assert "\n" not in message
    if isinstance(caught.value, SpecificationError):
        assert "log, log1p, exp, sqrt, scale, center, centre, poly, C, offset, trials" in message


def test_the_forbidden_token_is_named(counts):
    with pytest.raises(SpecificationError, match=r"forbidden name '__import__' at character 5"):
        parse_formula("y ~ __import__('os')", counts)
    with pytest.raises(SpecificationError, match=r"unknown function 'eval\('"):
        parse_formula("y ~ eval(x)", counts)
    with pytest.raises(SpecificationError, match=r"a string \"'rm'\""):
        parse_formula("y ~ C(x, 'rm')", counts)


def test_formulae_sees_only_the_allowed_functions(counts, tmp_path):
    """Even past the token check, formulae cannot reach modules or builtins."""
    marker = tmp_path / "created"
    counts["command"] = f"touch {marker}"
    for text in ("y ~ os.system(command)", "y ~ np.log(x)", "y ~ print(x)",
                 "y ~ __import__(command)"):
        with pytest.raises(SpecificationError, match="cannot evaluate"):
            _design_matrices(text, counts, "the test formula")
    assert not marker.exists()


# ----------------------------------------------------------------------------- pooling
def test_no_pooling_on_sleepstudy_is_a_line_per_subject(sleepstudy):
    design = pooling_design(parse_formula("Reaction ~ Days + (Days | Subject)", sleepstudy),
                            "none")
    assert design.terms == () and design.x.shape == (180, 36)
    assert np.linalg.matrix_rank(design.x) == 36
    assert design.fixed_names[:3] == ("Intercept[308]", "Days[308]", "Intercept[309]")
    assert any("Intercept, Days left out" in note for note in design.notes)
    coef = np.linalg.lstsq(design.x, design.y, rcond=None)[0]
    for k, (subject, rows) in enumerate(sleepstudy.groupby("Subject", sort=True)):
        slope, intercept = np.polyfit(rows["Days"], rows["Reaction"], 1)
        assert design.fixed_names[2 * k] == f"Intercept[{subject}]"
        np.testing.assert_allclose(coef[2 * k:2 * k + 2], [intercept, slope], rtol=1e-9)


def test_no_pooling_spans_the_same_fits_as_statsmodels(sleepstudy):
    smf = pytest.importorskip("statsmodels.formula.api")
    design = pooling_design(parse_formula("Reaction ~ Days + (Days | Subject)", sleepstudy),
                            "none")
    fitted = design.x @ np.linalg.lstsq(design.x, design.y, rcond=None)[0]
    reference = smf.ols("Reaction ~ C(Subject) * Days", sleepstudy).fit().fittedvalues
    np.testing.assert_allclose(fitted, reference, rtol=1e-9)


def test_complete_and_partial_pooling(sleepstudy):
    design = parse_formula("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert pooling_design(design, "partial") is design
    complete = pooling_design(design, "complete")
    assert complete.terms == () and complete.x is design.x
    with pytest.raises(SpecificationError, match=r"unknown pooling 'nonee'.*none, complete"):
        pooling_design(design, "nonee")


def test_no_pooling_drops_group_level_predictors_and_outer_nested_factors():
    radon = parse_formula("log_radon ~ floor + log_uppm + (1 | county)", datasets.load("radon"))
    unpooled = pooling_design(radon, "none")
    assert unpooled.x.shape == (919, 86) and unpooled.fixed_names[-1] == "floor"
    assert any("Intercept, log_uppm left out" in note for note in unpooled.notes)
    pastes = pooling_design(parse_formula("strength ~ 1 + (1 | batch/cask)",
                                          datasets.load("pastes")), "none")
    assert pastes.x.shape == (60, 30) and pastes.fixed_names[0] == "Intercept[A:a]"
    assert any("(1 | batch) left out" in note for note in pastes.notes)


def test_no_pooling_refuses_rank_deficient_designs(counts):
    crossed = parse_formula("x ~ 1 + (1 | g) + (1 | parity)", counts.assign(parity=[0, 1] * 3))
    with pytest.raises(SpecificationError, match="crossed"):
        pooling_design(crossed, "none")
    radon = parse_formula("log_radon ~ floor + (1 + floor | county)", datasets.load("radon"))
    with pytest.raises(SpecificationError, match=r"rank 145 .*county 'BIG STONE'"):
        pooling_design(radon, "none")


def test_collinear_fixed_columns_are_refused_by_name():
    table = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 3], "x": [0.0, 1, 2, 3, 1, 2],
                          "g": list("aabbcc")})
    table["x2"] = 2 * table["x"]
    with pytest.raises(DataError, match=r"'x2' is a linear combination of Intercept, x"):
        parse_formula("y ~ x + x2 + (1 | g)", table)


def test_a_column_of_numbers_and_text_is_refused_unless_written_as_categories():
    """formulae would read [1, 'two', 1, 2] as four categories; C(x) says categories are meant."""
    table = pd.DataFrame({"y": [1.1, 2.3, 2.9, 4.2, 5.1, 5.8], "x": [1, "two", 1, 2, 3, 2],
                          "g": list("aabbcc")})
    with pytest.raises(DataError, match=r"data row 2: column 'x' holds numbers and text"):
        parse_formula("y ~ x + (1 | g)", table)
    design = parse_formula("y ~ C(x) + (1 | g)", table)
    assert len(design.fixed_names) == 4  # the intercept and three of the four levels
    text = table.assign(x=["u", "v", "u", "v", "w", "v"])  # text only: categories as it is
    assert len(parse_formula("y ~ x + (1 | g)", text).fixed_names) == 3
