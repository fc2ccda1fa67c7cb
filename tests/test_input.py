"""Tables as people export them from Excel: a ';' separator with decimal commas (detected
and said in a note), other encodings (--encoding), and one clear line when a file cannot be
read."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from poolwise.cli import main
from poolwise.data.tables import read_table, read_table_noted
from poolwise.exceptions import DataError

#: the eight schools (Rubin 1981), with French column names as a European Excel saves them
SCHOOLS = pd.DataFrame({
    "école": list("ABCDEFGH"),
    "effet": [28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16],
    "erreur": [14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6],
})
COLUMNS = ["--y", "effet", "--se", "erreur", "--group", "école"]


def excel_text(table: pd.DataFrame) -> str:
    """The table as Excel writes CSV where the comma is the decimal mark."""
    return table.to_csv(sep=";", decimal=",", index=False)


@pytest.fixture
def excel(tmp_path):
    path = tmp_path / "schools.csv"
    path.write_text(excel_text(SCHOOLS), encoding="utf-8")
    return path


def test_semicolons_and_decimal_commas_are_detected_and_noted(excel):
    assert "28,39" in excel.read_text(encoding="utf-8")  # the file really has decimal commas
    table, notes = read_table_noted(excel)
    pd.testing.assert_frame_equal(table, SCHOOLS, check_dtype=False)
    assert notes == ("read as semicolon-separated with decimal commas (detected; Excel saves "
                     "CSV where the comma is the decimal mark); give --sep and --decimal to "
                     "read it otherwise",)


def test_told_separator_and_decimal_read_the_same_without_a_note(excel):
    table, notes = read_table_noted(excel, sep="semicolon", decimal=",")
    pd.testing.assert_frame_equal(table, SCHOOLS, check_dtype=False)
    assert notes == ()


@pytest.mark.parametrize(("sep", "word"), [("\t", "tab"), ("|", "pipe"), (";", "semicolon")])
def test_other_separators_are_detected_from_the_header(tmp_path, sep, word):
    path = tmp_path / "t.csv"
    SCHOOLS.to_csv(path, sep=sep, index=False)
    table, notes = read_table_noted(path)
    pd.testing.assert_frame_equal(table, SCHOOLS)
    assert notes == (f"read as {word}-separated (detected); give --sep to read it otherwise",)


def test_a_comma_file_is_read_as_before(tmp_path):
    path = tmp_path / "t.csv"
    SCHOOLS.to_csv(path, index=False)
    table, notes = read_table_noted(path)
    pd.testing.assert_frame_equal(table, SCHOOLS)
    assert notes == ()


def test_the_fit_of_an_excel_file_is_that_of_the_comma_file(excel, tmp_path, capsys):
    """Same numbers, however the file was written; the note is printed and in the JSON."""
    plain = tmp_path / "plain.csv"
    SCHOOLS.to_csv(plain, index=False)
    documents = []
    for path in (excel, plain):
        assert main(["fit", str(path), *COLUMNS, "--format", "json", "--quiet"]) == 0
        documents.append(json.loads(capsys.readouterr().out))
    assert documents[0]["summary"] == documents[1]["summary"]
    assert documents[0]["notes"][0].startswith("read as semicolon-separated with decimal commas")
    assert documents[1]["notes"] == []
    assert main(["fit", str(excel), *COLUMNS, "--quiet"]) == 0
    assert "note: read as semicolon-separated with decimal commas" in capsys.readouterr().out


def test_latin1_file_error_names_encoding(excel, tmp_path, capsys):
    latin = tmp_path / "latin.csv"
    latin.write_text(excel_text(SCHOOLS), encoding="latin-1")  # 'é' is the byte 0xe9
    assert main(["fit", str(latin), *COLUMNS, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "it is not UTF-8 text (byte 0xe9 on line 1); name its encoding with --encoding, " \
           "e.g. --encoding latin-1" in err
    assert "codec" not in err
    table = read_table(latin, encoding="latin-1")
    pd.testing.assert_frame_equal(table, SCHOOLS, check_dtype=False)


@pytest.mark.parametrize(("options", "message"), [
    (["--encoding", "latin-9x"], "unknown --encoding 'latin-9x'; e.g. utf-8, latin-1"),
    (["--sep", ";", "--decimal", "."],
     "row 1: estimate (y) column 'effet' has '28,39', which is not a finite number; for "
     "numbers with decimal commas give --decimal ','"),
    (["--sep", ";", "--decimal", ";"], "--decimal must be one character other than the "
                                       "separator"),
])
def test_bad_reading_options_one_line(excel, options, message, capsys):
    assert main(["fit", str(excel), *COLUMNS, *options, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_reading_options_are_refused_where_they_mean_nothing(tmp_path, capsys):
    assert main(["fit", "rats", "--sep", ";"]) == 2
    assert "--sep is for data files; 'rats' is a bundled dataset" in capsys.readouterr().err
    parquet = tmp_path / "t.parquet"
    SCHOOLS.to_parquet(parquet)
    with pytest.raises(DataError, match="--decimal and --encoding are for text tables"):
        read_table(parquet, decimal=",", encoding="latin-1")


def test_an_undetected_separator_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b|c\n1;2|3\n")
    with pytest.raises(DataError, match=re.escape("reads as the single column 'a;b|c'; name "
                                                  "its separator with --sep")):
        read_table(path)
