"""Normal-model data: bundled estimate tables, raw observations reduced per group, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poolwise import DataError, datasets
from poolwise.cli import main
from poolwise.data.estimates import GroupEstimates, group_estimates


def _from_info(name: str) -> GroupEstimates:
    info = datasets.info(name)
    return group_estimates(datasets.load(name), y=info.y, se=info.se, group=info.group)


def test_normal_datasets_name_their_estimate_and_standard_error_columns():
    for name in ("eight-schools", "aspirin", "baseball"):
        info = datasets.info(name)
        assert info.family == "normal" and info.n is None and info.se is not None
        table = datasets.load(name)
        assert {info.y, info.se, info.group} <= set(table.columns)
    for name in ("rats", "spacex", "kidney"):
        assert datasets.info(name).se is None and datasets.info(name).n is not None


def test_eight_schools_is_bda3_table_5_2():
    schools = _from_info("eight-schools")
    assert schools.labels.tolist() == list("ABCDEFGH")
    assert schools.y.tolist() == [28, 8, -3, 7, -1, 1, 18, 12]
    assert schools.se.tolist() == [15, 10, 16, 11, 9, 11, 10, 18]
    assert schools.group_name == "school" and schools.notes == () and schools.n_obs is None
    # data README: the rounded data give the complete-pooling estimate 7.69, variance 16.58
    w = 1 / schools.se**2
    assert (w * schools.y).sum() / w.sum() == pytest.approx(7.69, abs=0.005)
    assert 1 / w.sum() == pytest.approx(16.58, abs=0.005)


def test_aspirin_is_draper_1992():
    aspirin = _from_info("aspirin")
    assert aspirin.labels.tolist() == ["UK-1", "CDPA", "GAMS", "UK-2", "PARIS", "AMIS"]
    np.testing.assert_array_equal(aspirin.y, [2.77, 2.50, 1.84, 2.56, 2.31, -1.15])
    np.testing.assert_array_equal(aspirin.se, [1.65, 1.31, 2.34, 1.67, 1.98, 0.90])


def test_aspirin_estimates_reproduce_from_the_trial_counts():
    """y = 100·(d_p/n_p − d_a/n_a), sd = 100·sqrt(p_a(1−p_a)/n_a + p_p(1−p_p)/n_p), to 2 dp.

    An independent check that the (y, sd) pairs of Draper et al. belong to the Peto (1980)
    counts in this order (data README).
    """
    t = datasets.load("aspirin")
    p_a = t["aspirin_deaths"] / t["aspirin_n"]
    p_p = t["placebo_deaths"] / t["placebo_n"]
    y = 100 * (p_p - p_a)
    sd = 100 * np.sqrt(p_a * (1 - p_a) / t["aspirin_n"] + p_p * (1 - p_p) / t["placebo_n"])
    np.testing.assert_allclose(y, t["y"], atol=0.005)
    np.testing.assert_allclose(sd, t["sd"], atol=0.005)


def test_baseball_standard_error_is_binomial_at_the_common_mean():
    table = datasets.load("baseball")
    baseball = _from_info("baseball")
    assert baseball.n_groups == 18 and len(set(baseball.labels)) == 18
    np.testing.assert_array_equal(baseball.y, table["avg_45"])
    ybar = table["avg_45"].mean()
    assert round(ybar, 3) == 0.265
    np.testing.assert_allclose(baseball.se, np.sqrt(ybar * (1 - ybar) / 45), rtol=1e-12)
    assert round(float(baseball.se[0]), 3) == 0.066
    assert "45" in datasets.info("baseball").derived["se"][0]  # the formula text is kept
    # avg_45 is hits_45/45 to 3 dp, and the "true" θ of Efron & Morris is kept
    np.testing.assert_allclose(table["avg_45"], table["hits_45"] / 45, atol=0.0005)
    assert table.loc[table["player"] == "Roberto Clemente", "remaining_avg"].item() == 0.346
    # Efron & Morris (1977, Scientific American): James–Stein shrinkage factor
    # c = 1 − (k − 3)σ²/Σ(y − ȳ)² = 0.212 with this σ
    y, k = baseball.y, baseball.n_groups
    c = 1 - (k - 3) * baseball.se[0] ** 2 / ((y - y.mean()) ** 2).sum()
    assert round(c, 3) == 0.212


def test_raw_observations_reduce_to_means_and_standard_errors():
    rng = np.random.default_rng(20240601)
    groups = np.repeat(["c", "a", "b"], [4, 7, 2])
    table = pd.DataFrame({"site": groups, "score": rng.normal(10, 3, size=groups.size)})
    est = group_estimates(table, y="score", group="site")
    by_hand = table.groupby("site", sort=False)["score"]
    assert est.labels.tolist() == ["c", "a", "b"]  # order of first appearance
    np.testing.assert_allclose(est.y, by_hand.mean().to_numpy())
    np.testing.assert_allclose(est.se, (by_hand.std(ddof=1) / np.sqrt(by_hand.size())).to_numpy())
    assert est.n_obs.tolist() == [4, 7, 2] and est.group_name == "site"
    assert len(est.notes) == 1 and "reduced 13 observations to 3 group means" in est.notes[0]
    frame = est.to_frame()
    assert frame.columns.tolist() == ["site", "y", "se", "n_obs"]


def test_one_observation_groups_get_the_pooled_standard_deviation_with_a_note():
    table = pd.DataFrame({
        "g": ["a", "a", "a", "b", "b", "solo", "c", "c", "c", "c", "lone"],
        "x": [1.0, 2.0, 6.0, 4.0, 8.0, 5.0, 0.0, 1.0, 3.0, 4.0, -2.0],
    })
    est = group_estimates(table, y="x", group="g")
    several = table[table["g"].isin(["a", "b", "c"])].groupby("g")["x"]
    dof = several.size() - 1
    pooled = np.sqrt((dof * several.var(ddof=1)).sum() / dof.sum())
    se = dict(zip(est.labels, est.se, strict=True))
    assert se["solo"] == pytest.approx(pooled) and se["lone"] == pytest.approx(pooled)
    assert se["a"] == pytest.approx(np.std([1, 2, 6], ddof=1) / np.sqrt(3))  # own s_j
    assert est.y[est.labels == "solo"].item() == 5.0
    note = next(n for n in est.notes if "one observation" in n)
    assert "2 group(s)" in note and "'solo', 'lone'" in note
    assert f"{pooled:.4g}" in note and "from 3 group(s) with ≥ 2 observations" in note


def test_groups_of_equal_observations_get_the_pooled_standard_deviation_with_a_note():
    # a computed variance of (0.1, 0.1, 0.1) is 3e-34, not 0: equality is tested directly
    table = pd.DataFrame({"g": ["a", "a", "a", "b", "b", "b"], "x": [0.1, 0.1, 0.1, 1, 2, 4]})
    est = group_estimates(table, y="x", group="g")
    pooled = np.sqrt(2 * np.var([1.0, 2.0, 4.0], ddof=1) / 4)  # group a adds 0 with 2 dof
    assert est.se[0] == pytest.approx(pooled / np.sqrt(3))
    assert any("all equal" in n and "'a'" in n for n in est.notes)


def test_normal_datasets_are_listed_by_the_cli(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("eight-schools", "aspirin", "baseball", "normal"))


GIVEN = {"y": "y", "se": "s", "group": "g"}


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (pd.DataFrame({"y": [1.0], "s": [1.0]}), {"y": "z", "se": "s"}, "column 'z' not found"),
        (pd.DataFrame({"y": [1.0], "sigma": [1.0]}), {"y": "y", "se": "sigam"},
         "standard error column 'sigam' not found \\(did you mean 'sigma'\\?\\)"),
        (pd.DataFrame({"y": [1.0], "s": [1.0], "school": ["A"]}), {**GIVEN, "group": "scool"},
         "group column 'scool' not found \\(did you mean 'school'\\?\\)"),
        (pd.DataFrame({"y": [1.0, "big"], "s": [1, 2], "g": ["a", "b"]}), GIVEN,
         "row 2: estimate \\(y\\) column 'y' has 'big', which is not a finite number"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": ["1", "n/a"], "g": ["a", "b"]}), GIVEN,
         "row 2: standard error column 's' has 'n/a'"),
        (pd.DataFrame({"y": [np.nan, 2.0], "s": [1, 2], "g": ["a", "b"]}), GIVEN,
         "row 1: estimate \\(y\\) column 'y' is missing"),
        (pd.DataFrame({"y": [1.0, np.inf], "s": [1, 2], "g": ["a", "b"]}), GIVEN,
         "row 2: .*'inf', which is not a finite number"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": [1, -np.inf], "g": ["a", "b"]}), GIVEN,
         "row 2: standard error .* not a finite number"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": [1.0, None], "g": ["a", "b"]}), GIVEN,
         "row 2: standard error column 's' is missing"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": [1.0, 0.0], "g": ["a", "b"]}), GIVEN,
         "row 2: standard error column 's' has 0; a standard error must be > 0"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": [-3.0, 1.0], "g": ["a", "b"]}), GIVEN,
         "row 1: .* has -3; a standard error must be > 0"),
        (pd.DataFrame({"y": [1.0, 2.0, 3.0], "s": [1, 1, 1], "g": ["a", "b", "a"]}), GIVEN,
         "data row 1 and data row 3: group 'a' appears twice in column 'g'.*exactly one row"),
        (pd.DataFrame({"y": [1.0, 2.0], "s": [1, 1], "g": ["a", None]}), GIVEN,
         "row 2: group column 'g' is missing"),
        (pd.DataFrame({"y": [], "s": [], "g": []}), GIVEN, "the table has no rows"),
        (pd.DataFrame({"x": [1.0, 2.0]}), {"y": "x"}, "a group column is needed"),
        (pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"]}), {"y": "x", "group": "g"},
         "every group in 'g' has one observation.*give a standard-error column"),
        (pd.DataFrame({"x": [3.0, 3.0, 1.0, 1.0], "g": ["a", "a", "b", "b"]}),
         {"y": "x", "group": "g"}, "within-group standard deviation is 0"),
        (pd.DataFrame({"x": [1.0, "?"], "g": ["a", "a"]}), {"y": "x", "group": "g"},
         "row 2: observation \\(y\\) column 'x' has '\\?'"),
        (pd.DataFrame({"x": [1.0, 2.0], "g": ["a", np.nan]}), {"y": "x", "group": "g"},
         "row 2: group column 'g' is missing"),
    ],
)
def test_bad_tables_are_rejected_with_one_line(table, kwargs, message):
    with pytest.raises(DataError, match=message) as info:
        group_estimates(table, **kwargs)
    assert "\n" not in str(info.value)


def test_without_a_group_column_each_row_is_a_group():
    est = group_estimates(pd.DataFrame({"y": [1.0, -2.0], "s": [0.5, 1.5]}), y="y", se="s")
    assert est.labels.tolist() == ["1", "2"] and est.group_name == "row"
    np.testing.assert_array_equal(est.se, [0.5, 1.5])


def test_estimates_are_frozen():
    est = _from_info("eight-schools")
    with pytest.raises(AttributeError):
        est.y = est.se  # type: ignore[misc]
