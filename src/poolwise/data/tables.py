"""Reading tables and reducing them to per-group sufficient statistics.

All validation of user data happens here, once, with messages that name the row,
column and value and say what is valid.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.data.rows import (
    DECIMAL_COMMA,
    Check,
    frame_sums,
    frame_violations,
    labels_of,
    numbers,
    raise_first,
    rate_checks,
    require_columns,
    unique_columns,
)
from poolwise.exceptions import DataError
from poolwise.families.base import RateFamily


@dataclass(frozen=True)
class GroupCounts:
    """Per-group counts y_j and sizes n_j (trials or exposure), ready for a rate model."""

    labels: NDArray[np.str_]
    y: NDArray[np.float64]
    n: NDArray[np.float64]
    group_name: str = "group"
    notes: tuple[str, ...] = field(default=())

    @property
    def n_groups(self) -> int:
        return int(self.y.size)

    def compressed(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Unique (y, n) pairs and how often each occurs.

        The marginal likelihood depends on the data only through these, so a million
        groups with small counts reduce to a few thousand terms.
        """
        if self.y.size < 10_000:  # sorting is quicker than hashing for small tables
            unique, counts = np.unique(np.stack([self.y, self.n], axis=1), axis=0,
                                       return_counts=True)
            return unique[:, 0], unique[:, 1], counts.astype(float)
        table = pd.DataFrame({"y": self.y, "n": self.n}).value_counts(sort=False)
        y, n = (table.index.get_level_values(k).to_numpy(dtype=float) for k in ("y", "n"))
        return y, n, table.to_numpy(dtype=float)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({self.group_name: self.labels, "y": self.y, "n": self.n})


#: how a separator given on the command line may be spelled, and what it means
SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def read_table(path: str | Path, *, sep: str | None = None, decimal: str | None = None,
               encoding: str | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, with a one-line error for every failure.

    ``sep`` (default: comma, tab for .tsv), ``decimal`` (default '.') and ``encoding``
    (default UTF-8) are those of :func:`pandas.read_csv`. Left out, the separator is
    the one the header line shows (',' unless it has no comma but ';', tab or '|'), and a
    ';' table whose numbers have decimal commas is read with ``decimal=','``.
    :func:`read_table_noted` also says what it detected.
    """
    return read_table_noted(path, sep=sep, decimal=decimal, encoding=encoding)[0]


def read_table_noted(path: str | Path, *, sep: str | None = None, decimal: str | None = None,
                     encoding: str | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """:func:`read_table`, and a note for each format it detected rather than was told."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        given = [f"--{k}" for k, v in (("sep", sep), ("decimal", decimal),
                                       ("encoding", encoding)) if v is not None]
        if given:
            raise DataError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for "
                            f"text tables (CSV, TSV); {path} is Parquet, which records its "
                            "own types")
        return _read(path, lambda: pd.read_parquet(path)), ()
    table, _, _, notes = read_text(path, sep=sep, decimal=decimal, encoding=encoding)
    return table, notes


def read_text(path: Path, *, sep: str | None, decimal: str | None, encoding: str | None,
              rows: int | None = None) -> tuple[pd.DataFrame, str, str, tuple[str, ...]]:
    """A text table (its first ``rows`` rows), the separator and decimal mark it was read
    with, and a note for each of them that was detected rather than given."""
    if encoding is not None:
        _check_encoding(encoding)
    sep = SEPARATOR_NAMES.get(sep, sep) if sep is not None else None
    if decimal is not None and (len(decimal) != 1 or decimal == sep):
        raise DataError(f"--decimal must be one character other than the separator, such "
                        f"as '.' or ',', not {decimal!r}")
    notes: list[str] = []
    if sep is None and path.suffix.lower() in {".tsv", ".tab"}:
        sep = "\t"
    elif sep is None:
        sep = _header_separator(path, encoding)
        if sep != ",":
            notes.append(f"read as {_SEPARATOR_WORDS[sep]}-separated (detected); give --sep "
                         "to read it otherwise")

    def parse(point: str) -> pd.DataFrame:
        return _read(path, lambda: pd.read_csv(path, sep=sep, decimal=point,
                                               encoding=encoding, nrows=rows), encoding)

    point = decimal or "."
    table = parse(point)
    if table.shape[1] == 1 and any(c in str(table.columns[0]) for c in ";|\t,"):
        raise DataError(
            f"{path} reads as the single column {str(table.columns[0])!r}; name its "
            "separator with --sep, e.g. --sep ';' or --sep tab")
    if decimal is None and sep == ";" and _has_decimal_commas(table):
        point = ","
        table = parse(point)
        notes = ["read as semicolon-separated with decimal commas (detected; Excel saves CSV "
                 "where the comma is the decimal mark); give --sep and --decimal to read "
                 "it otherwise"]
    _check_header(path, table, sep=sep, encoding=encoding)
    return table, sep, point, tuple(notes)


def _check_header(path: Path, table: pd.DataFrame, *, sep: str, encoding: str | None) -> None:
    """Refuse a header that names a column twice, which pandas would read as ``x`` and
    ``x.1``: which of them the options mean is anyone's guess."""
    names = [str(c) for c in table.columns]
    renamed = [c for c in names if "." in c and c.rsplit(".", 1)[0] in names
               and c.rsplit(".", 1)[1].isdigit()]
    if not renamed:
        return
    header = pd.read_csv(path, sep=sep, encoding=encoding, header=None, nrows=1, dtype=str)
    unique_columns(["" if pd.isna(c) else str(c) for c in header.iloc[0]])


_SEPARATOR_WORDS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def _read(path: Path, reader: Callable[[], pd.DataFrame],
          encoding: str | None = None) -> pd.DataFrame:
    """Run ``reader``; turn each way it can fail into one line naming the file."""
    try:
        table = reader()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: expected a header row and data rows") from None
    except UnicodeDecodeError as err:
        raise DataError(_decode_error(path, err, encoding)) from None
    except (pd.errors.ParserError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read {path}: {first}") from None
    if table.empty:
        raise DataError(f"{path} has a header but no data rows")
    return table


def _decode_error(path: Path, err: UnicodeDecodeError, encoding: str | None) -> str:
    """Where the file stops being text in its encoding, and the option that fixes it."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding or "utf-8")
        where = ""
    except UnicodeDecodeError as first:
        line = raw[:first.start].count(b"\n") + 1
        where = f" (byte 0x{raw[first.start]:02x} on line {line})"
    name = encoding or "UTF-8"
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Excel's "Unicode text"
        return (f"cannot read {path}: it is UTF-16 text (it starts with UTF-16's byte-order "
                "mark), not " + name + "; read it with --encoding utf-16")
    return (f"cannot read {path}: it is not {name} text{where}; name its encoding with "
            "--encoding, e.g. --encoding latin-1 (or cp1252, as Excel saves on Windows)")


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown --encoding {encoding!r}; e.g. utf-8, latin-1, cp1252, "
                        "utf-16") from None


def _header_separator(path: Path, encoding: str | None) -> str:
    """The separator the header line shows: ',' unless it has no comma and one of ';', tab
    or '|' (column names rarely hold these, while a ';' file's numbers may hold commas)."""
    with open(path, encoding=encoding or "utf-8", errors="replace", newline="") as file:
        header = file.readline()
    found = [c for c in ";\t|" if c in header]
    return found[0] if "," not in header and len(found) == 1 else ","


def _has_decimal_commas(table: pd.DataFrame) -> bool:
    """Whether some text column holds only numbers, one at least with a decimal comma (0,5)."""
    for column in table.columns:
        values = table[column].dropna()
        if pd.api.types.is_numeric_dtype(values) or not len(values):
            continue
        text = values.astype(str)
        commas = text.str.match(DECIMAL_COMMA.pattern)
        whole = text.str.fullmatch(r"\s*[+-]?\d+\s*")
        if commas.any() and (commas | whole).all():
            return True
    return False


def _require_column(table: pd.DataFrame, column: str, role: str) -> pd.Series:
    require_columns(table.columns, [Check("missing", column, role)])
    return table[column]


def finite_column(series: pd.Series, role: str) -> NDArray[np.float64]:
    """The column as floats; error at the first missing, non-numeric, non-finite or too
    large value."""
    checks = (Check("missing", series.name, role), Check("number", series.name, role),
              Check("large", series.name, role))
    raise_first(checks, frame_violations(series.to_frame(), checks))
    return numbers(series)


def group_labels(table: pd.DataFrame, group: str) -> NDArray[np.str_]:
    """The group column as strings; error at the first missing label."""
    checks = (Check("label", group, "group"),)
    require_columns(table.columns, checks)
    raise_first(checks, frame_violations(table, checks))
    return labels_of(table[group]).to_numpy()


def group_counts(
    table: pd.DataFrame,
    family: RateFamily,
    *,
    y: str,
    n: str | None = None,
    group: str | None = None,
) -> GroupCounts:
    """Reduce a table to per-group counts for a rate family.

    Parameters
    ----------
    table
        One row per group (a count and a size), or one row per observation with a group
        column; rows that share a group label are summed (sums are sufficient).
    family
        The rate family; it decides what a valid size is.
    y
        Column of counts (successes, or events). With ``n=None`` in the beta-binomial
        family, each row is one 0/1 trial.
    n
        Column of trials (beta-binomial) or exposure (gamma-Poisson; default 1 per row).
    group
        Column of group labels; without it each row is its own group.

    The same reduction of a file, glob or directory too large for memory is
    :func:`poolwise.data.engines.reduce` (DuckDB or Dask).
    """
    if table.empty:
        raise DataError("the table has no rows")
    checks = rate_checks(family.name, family.size_label, y=y, n=n, group=group)
    require_columns(table.columns, checks)
    raise_first(checks, frame_violations(table, checks))
    if group is None:
        y_values = numbers(table[y])
        n_values = np.ones_like(y_values) if n is None else numbers(table[n])
        labels = np.array([str(i + 1) for i in range(len(table))])
        return counts_from_groups(labels, y_values, n_values, family, rows=len(table),
                                  group_name="row")
    sums = frame_sums(table, y=y, n=n, group=group)
    return counts_from_groups(sums["label"].to_numpy().astype(str),
                              sums["y"].to_numpy(dtype=float), sums["n"].to_numpy(dtype=float),
                              family, rows=len(table), group_name=str(group))


def counts_from_groups(labels: NDArray[np.str_], y: NDArray[np.float64], n: NDArray[np.float64],
                       family: RateFamily, *, rows: int, group_name: str) -> GroupCounts:
    """Per-group sums of checked rows (in order of first appearance) as :class:`GroupCounts`:
    a note when rows were summed, groups of size 0 dropped with a note (an error where they
    have counts), and the family's own checks."""
    notes: list[str] = []
    if labels.size < rows:
        notes.append(f"summed {rows} rows into {labels.size} groups by {group_name!r}")
    empty = n == 0
    if np.any(empty & (y > 0)):
        j = np.flatnonzero(empty & (y > 0))[0]
        raise DataError(
            f"group {str(labels[j])!r} has y = {y[j]:g} but {family.size_label} 0; "
            f"{family.size_label} must be > 0 where there are counts"
        )
    if np.any(empty):
        dropped = ", ".join(repr(str(s)) for s in labels[empty][:5])
        more = "" if empty.sum() <= 5 else f" and {empty.sum() - 5} more"
        notes.append(
            f"dropped {int(empty.sum())} group(s) with {family.size_label} 0, which carry no "
            f"information: {dropped}{more}"
        )
        labels, y, n = labels[~empty], y[~empty], n[~empty]
    if labels.size == 0:
        raise DataError(f"no group has {family.size_label} > 0")
    family.check_data(y, n, labels)
    return GroupCounts(labels, y, n, group_name, tuple(notes))


__all__ = ["GroupCounts", "counts_from_groups", "group_counts", "read_table", "read_table_noted"]
