"""Reading tables and reducing them to group counts: every bad input gets one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poolwise import (
    DataError,
    GroupCounts,
    Model,
    SpecificationError,
    datasets,
    group_counts,
    read_table,
)
from poolwise.families import BetaBinomial, GammaPoisson

BB, GP = BetaBinomial(), GammaPoisson()


def test_bundled_datasets_load_with_their_sources():
    assert datasets.names() == ["rats", "spacex", "kidney", "eight-schools", "aspirin", "baseball",
                                "sleepstudy", "sleep", "radon", "pastes", "cbpp"]
    rats = datasets.load("rats")
    assert len(rats) == 71 and rats["historical"].sum() == 70
    historical = rats.query("historical == 1")
    assert historical["y"].sum() == 263 and historical["n"].sum() == 1725  # data README
    assert rats.iloc[-1][["y", "n"]].tolist() == [4, 14]
    kidney = datasets.load("kidney")
    assert len(kidney) == 3110
    np.testing.assert_array_equal(kidney["deaths"], kidney["dc"] + kidney["dc.2"])
    assert all(datasets.info(name).source for name in datasets.names())


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(SpecificationError, match="did you mean 'rats'"):
        datasets.load("rat")


def test_one_row_per_observation_is_summed_per_group():
    table = pd.DataFrame({"clinic": ["a", "a", "b", "b", "b"], "cured": [1, 0, 1, 1, 0]})
    counts = group_counts(table, BB, y="cured", group="clinic")
    np.testing.assert_array_equal(counts.y, [1, 2])
    np.testing.assert_array_equal(counts.n, [2, 3])
    assert "summed 5 rows into 2 groups" in counts.notes[0]


def test_compressed_counts_keep_the_likelihood():
    table = pd.DataFrame({"y": [1, 1, 2, 1], "n": [5, 5, 5, 6]})
    counts = group_counts(table, BB, y="y", n="n")
    y, n, w = counts.compressed()
    assert w.sum() == 4
    full = BB.log_marginal(2.0, 3.0, counts.y, counts.n).sum()
    assert (w * BB.log_marginal(2.0, 3.0, y, n)).sum() == pytest.approx(full)


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (pd.DataFrame({"y": [1], "n": [2]}), {"y": "z", "n": "n"}, "column 'z' not found"),
        (pd.DataFrame({"succ": [1], "n": [2]}), {"y": "suc", "n": "n"}, "did you mean 'succ'"),
        (pd.DataFrame({"y": ["a", 1], "n": [2, 2]}), {"y": "y", "n": "n"}, "row 1.*'a'"),
        (pd.DataFrame({"y": [1.5, 1], "n": [2, 2]}), {"y": "y", "n": "n"}, "whole numbers"),
        (pd.DataFrame({"y": [1, -1], "n": [2, 2]}), {"y": "y", "n": "n"}, "row 2.*≥ 0"),
        (pd.DataFrame({"y": [1, 3], "n": [2, 2]}), {"y": "y", "n": "n"}, "row 2: 'y' is 3 but"),
        (pd.DataFrame({"y": [1, np.nan], "n": [2, 2]}), {"y": "y", "n": "n"}, "row 2.*missing"),
        (pd.DataFrame({"y": [1, 1], "n": [2, 2.5]}), {"y": "y", "n": "n"}, "whole numbers"),
        (pd.DataFrame({"y": [1, 2]}), {"y": "y", "group": None}, "group column"),
        (pd.DataFrame({"y": [1, 2], "g": ["a", "b"]}), {"y": "y", "group": "g"}, "0 or 1"),
        (pd.DataFrame({"y": [0, 0], "n": [0, 0]}), {"y": "y", "n": "n"}, "no group has"),
        (pd.DataFrame({"y": [1], "n": [np.inf]}), {"y": "y", "n": "n"}, "finite"),
    ],
)
def test_bad_tables_are_rejected_with_one_line(table, kwargs, message):
    with pytest.raises(DataError, match=message) as info:
        group_counts(table, BB, **kwargs)
    assert "\n" not in str(info.value)


def test_zero_trials_are_dropped_with_a_note():
    table = pd.DataFrame({"g": ["a", "b", "c"], "y": [1, 0, 2], "n": [5, 0, 6]})
    counts = group_counts(table, BB, y="y", n="n", group="g")
    assert counts.labels.tolist() == ["a", "c"]
    assert "dropped 1 group(s)" in counts.notes[0]


def test_exposure_must_be_positive_where_there_are_events():
    table = pd.DataFrame({"y": [3, 1], "e": [0.0, 10.0]})
    with pytest.raises(DataError, match="exposure 0"):
        group_counts(table, GP, y="y", n="e")


def test_partial_pooling_needs_two_groups_and_some_events():
    with pytest.raises(DataError, match="at least 2 groups"):
        Model().fit(pd.DataFrame({"y": [1], "n": [4]}), y="y", n="n")
    zeros = pd.DataFrame({"y": [0, 0, 0], "n": [4, 5, 6]})
    with pytest.raises(DataError, match="every group has y = 0"):
        Model().fit(zeros, y="y", n="n")
    # a proper hyperprior makes all-zero data a legitimate question
    Model(prior="halfnormal(10)", draws=100, chains=1).fit(zeros, y="y", n="n")


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("y,n\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(header)
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"y": [1, 2], "n": [3, 4]}).to_parquet(parquet)
    assert read_table(parquet)["n"].tolist() == [3, 4]


def test_compression_counts_every_pair_for_small_and_large_tables():
    """Both code paths (sorting below 10,000 groups, hashing above) count pairs exactly."""
    from collections import Counter

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 20_000).astype(float)
    n = y + rng.integers(0, 3, 20_000)
    labels = np.arange(20_000).astype(str)
    for size in (20_000, 9_999):
        got = GroupCounts(labels[:size], y[:size], n[:size]).compressed()
        expected = Counter(zip(y[:size], n[:size], strict=True))
        assert dict(zip(zip(got[0], got[1], strict=True), got[2], strict=True)) == expected


def test_successes_over_trials_are_refused_per_row_before_summing():
    table = pd.DataFrame({"lab": ["A", "A", "B"], "y": [27, 3, 5], "n": [25, 40, 30]})
    with pytest.raises(DataError, match=r"row 1: 'y' is 27 but 'n' is 25"):
        group_counts(table, BB, y="y", n="n", group="lab")
