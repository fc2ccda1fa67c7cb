"""poolwise.load refuses, in one line, what it cannot read; it reads every kind (the
contract test) and files written before nothing else changed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import poolwise
from poolwise import SpecificationError
from poolwise.results.storage import FORMAT_VERSION, dataset_to_table, table_to_dataset


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    table = pd.DataFrame({"g": list("abcd"), "y": [1, 3, 2, 5], "n": [10, 12, 9, 15]})
    fit = poolwise.Model(method="eb-moments").fit(table, y="y", n="n", group="g")
    path = tmp_path_factory.mktemp("saved") / "fit.nc"
    fit.save(path)
    return fit, path


def _rewrite(path, tmp_path, **attrs):
    tree = poolwise.load(path).tree.copy()
    tree.attrs.update(attrs)
    for name in [k for k, v in attrs.items() if v is None]:
        del tree.attrs[name]
    target = tmp_path / "changed.nc"
    tree.to_netcdf(target, engine="h5netcdf")
    return target


def test_the_file_records_kind_format_and_model(saved):
    fit, path = saved
    attrs = poolwise.load(path).tree.attrs
    assert attrs["kind"] == "rates" and int(attrs["poolwise_format"]) == FORMAT_VERSION
    assert json.loads(attrs["model"]) == fit.model.spec()


@pytest.mark.parametrize(("attrs", "message"), [
    ({"poolwise_format": FORMAT_VERSION + 1}, "has format 2.*upgrade poolwise"),
    ({"kind": "quantum"}, "unknown kind 'quantum'.*rates, normal, nig, mixed"),
    ({"poolwise_format": None}, "not written by poolwise"),
])
def test_unreadable_files_are_refused_in_one_line(saved, tmp_path, attrs, message):
    target = _rewrite(saved[1], tmp_path, **attrs)
    with pytest.raises(SpecificationError, match=message) as caught:
        poolwise.load(target)
    assert "\n" not in str(caught.value)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(SpecificationError, match="no file"):
        poolwise.load(tmp_path / "none.nc")
    (tmp_path / "text.nc").write_text("not netcdf")
    with pytest.raises(SpecificationError, match="not a NetCDF file"):
        poolwise.load(tmp_path / "text.nc")


def test_tables_keep_their_types():
    table = pd.DataFrame({"x": [1.5, 2.0, np.nan], "k": [1, 2, 3], "s": ["a", "b", "c"],
                          "b": [True, False, True],
                          "c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"])})
    back = dataset_to_table(table_to_dataset(table))
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert list(back["c"].cat.categories) == ["lo", "hi"] and back["b"].dtype == bool


def test_text_is_written_as_the_utf8_bytes_of_each_label(tmp_path):
    """Labels go to the file as fixed-width UTF-8 (encoded through Arrow, not xarray's
    loop): the bytes of each are str.encode's, and a fit with labels of any script and
    length reads back with the same labels and rows."""
    from poolwise._arviz import utf8_bytes

    labels = np.array(["école", "", "a", "日本語ラベル", "z" * 40, "Ünïcode ✓"])
    expected = [text.encode("utf-8") for text in labels]
    assert utf8_bytes(labels).tolist() == expected
    assert utf8_bytes(pd.Index(labels)).tolist() == expected
    assert utf8_bytes(labels.reshape(2, 3)).reshape(-1).tolist() == expected
    table = pd.DataFrame({"g": labels[[0, 2, 3, 4, 5]], "y": [1, 3, 2, 5, 4],
                          "n": [10, 12, 9, 15, 11]})
    fit = poolwise.Model(method="eb-moments").fit(table, y="y", n="n", group="g")
    fit.save(tmp_path / "fit.nc")
    loaded = poolwise.load(tmp_path / "fit.nc")
    assert loaded.data.labels.tolist() == table["g"].tolist()
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
