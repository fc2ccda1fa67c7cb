"""Reducing files larger than memory to group statistics: pandas, DuckDB and Dask engines.

A source is a CSV/TSV or Parquet file, a glob (``data/*.parquet``), a directory of such
files, or (Dask) a ``dask.dataframe.DataFrame``. Every engine checks the rows with the
same :class:`~poolwise.data.rows.Check` s and reduces them to the same mergeable per-group
statistics (:mod:`poolwise.data.rows`), so the result — :class:`GroupCounts` or
:class:`GroupEstimates`, labels in order of first appearance, sums, notes and error
messages — is the one the pandas path gives (:func:`~poolwise.data.tables.group_counts`,
:func:`~poolwise.data.estimates.group_estimates`).

- ``pandas`` reads one file into memory: today's path, for small files.
- ``duckdb`` never holds the rows: one aggregate query counts the rows failing each check
  (the first by ``file_row_number`` for Parquet, by position for CSV), and an
  out-of-core ``GROUP BY`` reduces the rows to one row per group; with a
  ``memory_limit`` it spills to a directory under the system's temporary directory.
- ``dask`` runs the pandas reduction on each partition (a thread pool, or a
  ``distributed`` cluster given a scheduler address or a ``Client``), splits each
  partition's per-group table into :func:`bucket_count` parts by a hash of the group
  (:func:`hash_split`: a group's rows land in the same part whichever partition they came
  from) and merges each part's pieces in its own tree (:func:`merge_by_group`), so every
  merged part holds a disjoint set of groups and no worker holds them all; only the
  merged parts travel to the client.

Rows of one group are summed (rates) or reduced to count, mean, sum of squared deviations,
min and max (raw observations of the normal family); estimates with standard errors are
one row per group already and are read as such. Normal mixed models with one grouping
factor reduce to per-group cross-products with these tables
(:mod:`poolwise.kinds.mixed.stream`); models that need every row (other mixed models,
nested, NIG, custom) read one file with pandas.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from poolwise.data.estimates import (
    GroupEstimates,
    estimates_from_moments,
    estimates_given,
    group_estimates,
)
from poolwise.data.rows import (
    LARGEST,
    LARGEST_COUNT,
    Check,
    Locate,
    Violation,
    estimate_checks,
    frame_moments,
    frame_sums,
    frame_violations,
    merge_partials,
    merge_violations,
    numbers,
    raise_first,
    rate_checks,
    require_columns,
    row_number,
)
from poolwise.data.tables import (
    GroupCounts,
    counts_from_groups,
    group_counts,
    read_table_noted,
    read_text,
)
from poolwise.exceptions import DataError, SpecificationError

if TYPE_CHECKING:
    from poolwise.families.base import RateFamily

ENGINES = ("auto", "pandas", "duckdb", "dask")
#: above this size a single file is read out of core (``engine="auto"``)
LARGE_FILE = 200 * 2**20
PARQUET = (".parquet", ".pq")
TEXT = (".csv", ".tsv", ".tab", ".txt")
#: the strings pandas reads as missing (its default ``na_values``), given to DuckDB too
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
              "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
              "nan", "null")
#: the encodings DuckDB's read_csv knows without extensions
DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16",
                    "utf16": "utf-16", "latin-1": "latin-1", "latin1": "latin-1",
                    "iso-8859-1": "latin-1"}
#: a position packs (file or partition, row) as part · 2⁴⁰ + row
_SHIFT = 40
_ROW = (1 << _SHIFT) - 1


@dataclass(frozen=True)
class Source:
    """Files named by a path, a glob or a directory, all Parquet or all text."""

    given: str
    files: tuple[Path, ...]
    parquet: bool
    single: bool

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


class Reduced(NamedTuple):
    """Group statistics, how many rows they came from, and the engine that read them."""

    stats: GroupCounts | GroupEstimates
    rows: int
    engine: str


def is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def resolve(data: str | Path) -> Source:
    """The files ``data`` names: a file, a glob (sorted) or the data files under a
    directory (sorted, searched recursively)."""
    text = str(data)
    path = Path(text)
    if is_pattern(text):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not files:
            raise DataError(f"no file matches {text}")
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file()
                       and f.suffix.lower() in PARQUET + TEXT and not f.name.startswith("."))
        if not files:
            raise DataError(f"{text} holds no data files ({', '.join(PARQUET + TEXT)})")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"file not found: {text}")
    kinds = {f.suffix.lower() in PARQUET for f in files}
    if len(kinds) > 1:
        raise DataError(f"{text} names both Parquet and text files; name one kind, e.g. "
                        f"{Path(text) / '*.parquet' if path.is_dir() else '*.parquet'}")
    return Source(text, tuple(files), kinds.pop(), len(files) == 1 and not is_pattern(text)
                  and not path.is_dir())


def choose_engine(source: Source | Any, engine: str = "auto") -> str:
    """The engine that reads ``source``: ``auto`` is pandas for one file up to
    :data:`LARGE_FILE` bytes, DuckDB for larger files, globs and directories, and Dask for
    a Dask DataFrame."""
    if engine not in ENGINES:
        raise SpecificationError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not isinstance(source, Source):
        if engine not in ("auto", "dask"):
            raise SpecificationError(f"a Dask DataFrame is reduced by engine 'dask', not "
                                     f"{engine!r}")
        return "dask"
    if engine == "auto":
        return "pandas" if source.single and source.size <= LARGE_FILE else "duckdb"
    if engine == "pandas" and not source.single:
        raise SpecificationError(f"engine 'pandas' reads one file; {source.given} names "
                                 f"{len(source.files)} — use engine 'duckdb' or 'dask'")
    return engine


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame (without importing Dask when it is not)."""
    module = type(data).__module__
    return module.startswith(("dask.", "dask_expr")) and hasattr(data, "npartitions")


def reduce(data: str | Path | Source | Any, family: RateFamily | None, *, y: str,
           n: str | None = None, se: str | None = None, group: str | None = None,
           engine: str = "auto", scheduler: Any = None, threads: int | None = None,
           memory_limit: str | None = None, text: dict[str, str | None] | None = None
           ) -> Reduced:
    """Check and reduce ``data`` for a rate ``family`` (counts ``y``, sizes ``n``) or,
    with ``family=None``, for the normal family (estimates ``y`` with ``se``, or raw
    observations ``y``).

    Parameters
    ----------
    data
        A CSV/TSV/Parquet file, a glob, a directory, or a Dask DataFrame.
    engine
        ``auto``, ``pandas``, ``duckdb`` or ``dask`` (:func:`choose_engine`).
    scheduler
        Dask only: a ``distributed`` scheduler address (``tcp://host:8786``) or
        ``Client``; default the current client, else threads.
    threads, memory_limit
        DuckDB only: its worker threads (default: the cores) and memory limit (default
        :func:`default_memory_limit`), beyond which it spills to disk.
    text
        ``sep``, ``decimal`` and ``encoding`` of text files (as ``--sep`` ...).
    """
    source = data if isinstance(data, Source) or is_dask_frame(data) else resolve(data)
    chosen = choose_engine(source, engine)
    given: dict[str, str] = {k: v for k, v in (text or {}).items() if v is not None}
    if scheduler is not None and chosen != "dask":
        raise SpecificationError(f"a scheduler is for engine 'dask', not {chosen!r}")
    if (threads is not None or memory_limit is not None) and chosen != "duckdb":
        raise SpecificationError(f"threads and memory_limit are for engine 'duckdb', not "
                                 f"{chosen!r}")
    if family is not None:
        checks = rate_checks(family.name, family.size_label, y=y, n=n, group=group)
    else:
        if se is None and group is None:
            raise DataError(
                "without a standard-error column (se) each row is one observation, so a "
                "group column is needed to form group means and standard errors")
        checks = estimate_checks(y=y, se=se, group=group)
    columns = Columns(y, n, se, group)
    if chosen == "pandas":
        assert isinstance(source, Source)
        table, notes = read_table_noted(source.files[0], **given)
        stats: GroupCounts | GroupEstimates = (
            group_counts(table, family, y=y, n=n, group=group) if family is not None
            else group_estimates(table, y=y, se=se, group=group))
        return Reduced(_noted(stats, notes), len(table), chosen)
    if chosen == "duckdb":
        assert isinstance(source, Source)
        with _duckdb(threads, memory_limit) as con:
            table = DuckTable.open(con, source, given,
                                   numbers=[c.column for c in checks if c.test == "number"])
            return table.reduce(family, checks, columns)
    if given:
        raise SpecificationError("--sep, --decimal and --encoding are for engines pandas and "
                                 "duckdb; engine 'dask' reads comma-separated UTF-8 text "
                                 "and Parquet")
    return DaskTable.open(source, scheduler).reduce(family, checks, columns)


class Columns(NamedTuple):
    y: str
    n: str | None
    se: str | None
    group: str | None


def _noted(stats: GroupCounts | GroupEstimates, notes: Sequence[str]
           ) -> GroupCounts | GroupEstimates:
    from dataclasses import replace

    return replace(stats, notes=(*notes, *stats.notes)) if notes else stats


def _finish(rows: int, family: RateFamily | None, columns: Columns, checks: Sequence[Check],
            found: Sequence[Violation | None], locate: Locate,
            groups: Any, engine: str, note: str) -> Reduced:
    """Raise the first failed check; else turn the engine's per-group table (or, where the
    rows are the groups, its rows) into the statistics, with the engine's note."""
    if rows == 0:
        raise DataError("the table has no rows")
    raise_first(checks, found, locate)
    frame: pd.DataFrame = groups()
    stats: GroupCounts | GroupEstimates
    if family is not None and columns.group is None:
        y = numbers(frame["y"])
        sizes = np.ones_like(y) if columns.n is None else numbers(frame["n"])
        stats = counts_from_groups(np.array([str(i + 1) for i in range(rows)]), y, sizes,
                                   family, rows=rows, group_name="row")
    elif family is not None:
        stats = counts_from_groups(frame["label"].to_numpy().astype(str),
                                   frame["y"].to_numpy(dtype=float),
                                   frame["n"].to_numpy(dtype=float), family, rows=rows,
                                   group_name=str(columns.group))
    elif columns.se is not None:
        positions = frame["first"].to_numpy()
        named = frame.rename(columns={"label": columns.group or "label", "y": columns.y,
                                      "se": columns.se})
        stats = estimates_given(named, y=columns.y, se=columns.se, group=columns.group,
                                locate=lambda i: locate(int(positions[i])))
    else:
        stats = estimates_from_moments(frame, rows=rows, y=columns.y, group=str(columns.group))
    return Reduced(_noted(stats, (note,)), rows, engine)


# ----------------------------------------------------------------------------- DuckDB
def default_memory_limit() -> str:
    """DuckDB's memory limit: a quarter of the machine's memory, at most 2 GiB; beyond it a
    GROUP BY spills to disk."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return f"{max(256, min(total // 4, 2 * 2**30) // 2**20)}MB"


@contextmanager
def _duckdb(threads: int | None, memory_limit: str | None) -> Iterator[Any]:
    """An in-memory DuckDB connection that spills to a fresh directory under the system's
    temporary directory, removed afterwards."""
    import duckdb

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise SpecificationError(f"threads must be a whole number ≥ 1, not {threads!r}")
    spill = tempfile.mkdtemp(prefix="poolwise-duckdb-")
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit or default_memory_limit(), "temp_directory": spill,
        "preserve_insertion_order": False}
    if threads is not None:
        config["threads"] = threads
    try:
        try:
            con = duckdb.connect(config=config)
        except duckdb.Error as err:
            raise SpecificationError(f"DuckDB refuses its settings: {_first_line(err)}"
                                     ) from None
        con.execute("SET enable_progress_bar = false")  # else drawn on stderr past 2 s
        try:
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _describe(con: Any, sql: str, source: Source) -> dict[str, str]:
    """The relation's columns and their types (without the file and position)."""
    import duckdb

    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()
    except duckdb.Error as err:
        raise DataError(f"cannot read {source.given}: {_first_line(err)}") from None
    return {str(row[0]): str(row[1]) for row in described if row[0] not in (_FILE, _POS)}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_FILE, _POS = "__poolwise_file", "__poolwise_pos"


@dataclass
class DuckTable:
    """A source as a DuckDB relation with a position per row (file index · 2⁴⁰ + row).

    DuckDB guesses a CSV column's type from its first rows, and a value deep in the file
    that does not fit the guess stops the query with no row named; so the columns read as
    numbers (``numbers``) that it guesses numeric are read as text and cast with
    ``TRY_CAST``, and the checks name the first row that is not a number, as pandas's path
    does. ``point`` is the text's decimal separator. Parquet records its own types."""

    con: Any
    source: Source
    sql: str
    types: dict[str, str]
    notes: tuple[str, ...]
    point: str = "."

    @classmethod
    def open(cls, con: Any, source: Source, text: dict[str, str],
             numbers: Sequence[str] = ()) -> DuckTable:
        files = "[" + ", ".join(_literal(str(f)) for f in source.files) + "]"
        index = f"((list_position({files}, {_FILE}) - 1)::BIGINT << {_SHIFT})"
        notes: tuple[str, ...] = ()
        point = "."
        if source.parquet:
            if text:
                given = " and ".join(f"--{k}" for k in text)
                raise DataError(f"{given} {'is' if len(text) == 1 else 'are'} for text tables "
                                f"(CSV, TSV); {source.given} is Parquet, which records its "
                                "own types")
            scan = (f"read_parquet({files}, filename={_literal(_FILE)}, "
                    "file_row_number=true)")
            sql = (f"(SELECT * EXCLUDE (file_row_number), {index} + file_row_number "
                   f"AS {_POS} FROM {scan})")
        else:
            encoding = text.get("encoding")
            if encoding is not None and encoding.lower() not in DUCKDB_ENCODINGS:
                raise DataError(f"engine 'duckdb' reads UTF-8, UTF-16 and Latin-1 text, not "
                                f"--encoding {encoding!r}; convert the files or read one "
                                "file with --engine pandas")
            _, sep, point, notes = read_text(source.files[0], sep=text.get("sep"),
                                                decimal=text.get("decimal"),
                                                encoding=encoding, rows=10_000)
            options = [f"filename={_literal(_FILE)}", "header=true", f"delim={_literal(sep)}",
                       f"decimal_separator={_literal(point)}",
                       "nullstr=[" + ", ".join(_literal(s) for s in NA_STRINGS) + "]"]
            if encoding is not None:
                options.append(f"encoding={_literal(DUCKDB_ENCODINGS[encoding.lower()])}")

            def relation(options: list[str]) -> str:
                return (f"(SELECT * EXCLUDE (ordinality), {index} + ordinality - 1 AS {_POS} "
                        f"FROM read_csv({files}, {', '.join(options)}) WITH ORDINALITY)")

            sql = relation(options)
            guessed = _describe(con, sql, source)
            text_numbers = [c for c in dict.fromkeys(numbers)
                            if guessed.get(c, "").split("(")[0] in _NUMERIC]
            if text_numbers:  # read as text, cast by number(): a bad value's row is named
                sql = relation([*options, "types={" + ", ".join(
                    f"{_literal(c)}: 'VARCHAR'" for c in text_numbers) + "}"])
        return cls(con, source, sql, _describe(con, sql, source), notes, point)

    def query(self, sql: str) -> Any:
        import duckdb

        try:
            return self.con.execute(sql)
        except duckdb.ConversionException as err:
            raise DataError(f"cannot read {self.source.given}: {_first_line(err)}; DuckDB "
                            "guessed the column's type from the first rows, so name the "
                            "file with --engine pandas if it fits in memory") from None
        except duckdb.Error as err:
            raise DataError(f"cannot read {self.source.given}: {_first_line(err)}") from None

    def number(self, column: str) -> str:
        kind = self.types[column].split("(")[0]
        if kind in _NUMERIC:
            return f"CAST({_quote(column)} AS DOUBLE)"
        if kind == "BOOLEAN":
            return f"CAST({_quote(column)} AS INTEGER)::DOUBLE"
        if self.point != ".":  # as text: 0,5 → 0.5 (DuckDB's guessed types read it so)
            return f"TRY_CAST(replace({_quote(column)}, {_literal(self.point)}, '.') AS DOUBLE)"
        return f"TRY_CAST({_quote(column)} AS DOUBLE)"

    def label(self, column: str) -> str:
        if self.types[column] == "BOOLEAN":  # as pandas writes them
            return f"CASE WHEN {_quote(column)} THEN 'True' ELSE 'False' END"
        return f"CAST({_quote(column)} AS VARCHAR)"

    def failing(self, check: Check) -> str:
        """SQL that is true where a row fails ``check`` (see :func:`frame_violations`)."""
        column, x = _quote(check.column), self.number(check.column)
        floating = self.types[check.column] in ("FLOAT", "DOUBLE")
        if check.test in ("missing", "label"):
            return f"({column} IS NULL" + (f" OR isnan({column}))" if floating else ")")
        if check.test == "number":
            return (f"({column} IS NOT NULL AND NOT coalesce(isfinite({x}), false)"
                    + (f" AND NOT isnan({column}))" if floating else ")"))
        other = self.number(check.other) if check.other is not None else ""
        return {"negative": f"({x} < 0)", "whole": f"({x} <> round({x}))",
                "binary": f"({x} > 1)", "positive": f"({x} <= 0)",
                "within": f"({x} > {other})", "large": f"(abs({x}) > {LARGEST!r})",
                "small": f"({x} > 0 AND {x} < {1 / LARGEST!r})",
                "count": f"({x} > {LARGEST_COUNT!r})"}[check.test]

    def violations(self, checks: Sequence[Check]) -> tuple[int, list[Violation | None]]:
        """The number of rows and each check's :class:`Violation`, in one pass."""
        parts = ["count(*)"]
        for check in checks:
            where = f"FILTER (WHERE {self.failing(check)})"
            value = (f"CAST({_quote(check.column)} AS VARCHAR)" if check.test == "number"
                     else self.number(check.column))
            other = self.number(check.other) if check.other is not None else "NULL"
            parts += [f"count(*) {where}", f"min({_POS}) {where}",
                      f"arg_min({value}, {_POS}) {where}", f"arg_min({other}, {_POS}) {where}"]
        row = self.query(f"SELECT {', '.join(parts)} FROM {self.sql}").fetchone()
        found: list[Violation | None] = []
        for k in range(len(checks)):
            failing, position, value, other = row[1 + 4 * k: 5 + 4 * k]
            found.append(Violation(int(failing), int(position), value, other)
                         if failing else None)
        return int(row[0]), found

    def locate(self, position: int) -> str:
        """``row r`` for one file, ``row r in file f`` for several."""
        file, row = position >> _SHIFT, position & _ROW
        if self.source.single:
            return row_number(row)
        path = self.source.files[file]
        if not self.source.parquet:  # positions of text rows count on across files
            start = self.query(f"SELECT min({_POS}) FROM {self.sql} WHERE {_FILE} = "
                               f"{_literal(str(path))}").fetchone()[0]
            row -= int(start) & _ROW
        return f"{row_number(row)} in file {path}"

    def reduce(self, family: RateFamily | None, checks: Sequence[Check], columns: Columns
               ) -> Reduced:
        require_columns(self.types, checks)
        rows, found = self.violations(checks)
        y = self.number(columns.y)
        if columns.group is None:  # each row is a group
            second = columns.n if family is not None else columns.se
            fields = f"{y} AS y" + (f", {self.number(second)} AS {'n' if family else 'se'}"
                                    if second else "")
            sql = f"SELECT {_POS} AS first, {fields} FROM {self.sql} ORDER BY {_POS}"
        elif family is not None:
            size = "count(*)" if columns.n is None else f"sum({self.number(columns.n)})"
            sql = (f"SELECT {self.label(columns.group)} AS label, min({_POS}) AS first, "
                   f"sum({y}) AS y, {size} AS n FROM {self.sql} GROUP BY label "
                   "ORDER BY first")
        elif columns.se is not None:
            sql = (f"SELECT {self.label(columns.group)} AS label, {_POS} AS first, {y} AS y, "
                   f"{self.number(columns.se)} AS se FROM {self.sql} ORDER BY {_POS}")
        else:
            sql = (f"SELECT {self.label(columns.group)} AS label, min({_POS}) AS first, "
                   f"count({y}) AS count, avg({y}) AS mean, "
                   f"coalesce(var_samp({y}) * (count({y}) - 1), 0) AS m2, min({y}) AS min, "
                   f"max({y}) AS max FROM {self.sql} GROUP BY label ORDER BY first")
        files = len(self.source.files)
        note = (f"read {rows} rows{f' from {files} files' if files > 1 else ''} with DuckDB "
                "(out of core)")
        reduced = _finish(rows, family, columns, checks, found, self.locate,
                          lambda: self.query(sql).df(), "duckdb", note)
        return reduced._replace(stats=_noted(reduced.stats, self.notes))


# ----------------------------------------------------------------------------- Dask
def _positions(part: pd.DataFrame, number: int) -> np.ndarray:
    return (number << _SHIFT) + np.arange(len(part), dtype=np.int64)


Part = tuple[tuple[int, list["Violation | None"]], pd.DataFrame]


def _partition(part: pd.DataFrame, number: int, checks: Sequence[Check], columns: Columns,
               rates: bool) -> Part:
    """One partition's number of rows and violations, and its partial per-group table (or,
    where the rows are the groups, its rows)."""
    positions = _positions(part, number)
    found = frame_violations(part, checks, positions)
    return (len(part), found), _partial(part, positions, columns, rates)


def _partial(part: pd.DataFrame, positions: np.ndarray, columns: Columns, rates: bool
             ) -> pd.DataFrame:
    if columns.group is None or columns.se is not None:
        keep = [c for c in (columns.group, columns.y, columns.n, columns.se) if c]
        rows = part[keep].reset_index(drop=True)
        rows = rows.rename(columns={columns.group or "": "label", columns.y: "y",
                                    columns.n or "": "n", columns.se or "": "se"})
        rows["first"] = positions
        return rows
    if rates:
        return frame_sums(part, y=columns.y, n=columns.n, group=columns.group,
                          positions=positions)
    return frame_moments(part, y=columns.y, group=columns.group, positions=positions)


def _merge_counts(*counts: tuple[int, list[Violation | None]]
                  ) -> tuple[int, list[Violation | None]]:
    """Partitions' row counts and violations as one (a node of the reduction tree)."""
    return sum(c[0] for c in counts), merge_violations(c[1] for c in counts)


def _merge_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """Per-group tables of disjoint rows as one (:func:`merge_partials`)."""
    return merge_partials(pd.concat(tables, ignore_index=True))


#: partial results merged by one task of a reduction tree
FAN_IN = 8
#: at most this many disjoint parts of the groups, each merged on its own worker
MAX_BUCKETS = 64


def bucket_count(partitions: int) -> int:
    """Parts the groups of ``partitions`` partitions are merged in: one per partition (so a
    part holds about as many groups as a partition), at most :data:`MAX_BUCKETS`."""
    return max(1, min(partitions, MAX_BUCKETS))


def hash_split(table: pd.DataFrame, keys: Sequence[str], buckets: int) -> list[pd.DataFrame]:
    """``table``'s rows in ``buckets`` parts by a hash of their ``keys`` columns
    (pandas's ``hash_pandas_object``, the same in every process), so that the rows of one
    group land in the same part whichever partition they came from."""
    if buckets == 1:
        return [table]
    code = pd.util.hash_pandas_object(table[list(keys)], index=False).to_numpy() % buckets
    return [table[code == b] for b in range(buckets)]


def _split(partial: tuple[Any, pd.DataFrame], keys: Sequence[str], buckets: int
           ) -> tuple[Any, list[pd.DataFrame]]:
    summary, table = partial
    return summary, hash_split(table, keys, buckets)


def tree(values: list[Any], merge: Any, **options: Any) -> Any:
    """``values`` (Dask delayed) merged :data:`FAN_IN` at a time until one is left."""
    import dask

    while len(values) > 1:
        values = [dask.delayed(merge)(*values[i:i + FAN_IN], **options)
                  for i in range(0, len(values), FAN_IN)]
    return values[0]


def merge_by_group(partials: list[Any], keys: Sequence[str], merge_summaries: Any,
                   merge_tables: Any) -> tuple[Any, list[Any]]:
    """A partition-aware reduction of ``partials`` (Dask delayed pairs: a small summary
    — rows, violations — and a per-group table with the ``keys`` columns): the summaries
    merged in one tree, and the tables split by :func:`hash_split` into
    :func:`bucket_count` parts, each merged in a tree of its own. Returns the delayed
    summary and the delayed merged parts, whose groups are disjoint."""
    import dask

    buckets = bucket_count(len(partials))
    split = [dask.delayed(_split, nout=2)(p, keys, buckets) for p in partials]
    summary = tree([s[0] for s in split], merge_summaries)
    parts = [tree([s[1][b] for s in split], merge_tables) for b in range(buckets)]
    return summary, parts


@dataclass
class DaskTable:
    """A Dask DataFrame, where each partition came from, and where to compute."""

    frame: Any
    files: tuple[str | None, ...]
    single: bool
    scheduler: Any

    @classmethod
    def open(cls, source: Source | Any, scheduler: Any) -> DaskTable:
        try:
            import dask.dataframe as dd
        except ImportError:
            raise SpecificationError("engine 'dask' needs Dask: pip install "
                                     "'poolwise[cluster]'") from None

        if not isinstance(source, Source):
            return cls(source, (None,) * source.npartitions, True, scheduler)
        frames, files = [], []
        for path in source.files:
            absolute = str(path.resolve())  # workers may start elsewhere
            try:
                frame = (dd.read_parquet(absolute) if source.parquet else
                         dd.read_csv(absolute, sep="\t" if path.suffix.lower() in
                                     (".tsv", ".tab") else ",", dtype=object))
            except (OSError, ValueError) as err:
                raise DataError(f"cannot read {path}: {_first_line(err)}") from None
            frames.append(frame)
            files += [str(path)] * frame.npartitions
        frame = frames[0] if len(frames) == 1 else dd.concat(frames)
        return cls(frame, tuple(files), source.single, scheduler)

    def compute(self, *values: Any) -> Any:
        """``values`` computed where :attr:`scheduler` says; a file a worker cannot read
        (it sees other paths, or the file went away) ends in one line."""
        import dask

        with dask_client(self.scheduler) as client:
            try:
                return dask.compute(*values, scheduler=client)
            except OSError as err:
                raise DataError(f"a Dask worker could not read the data: {_first_line(err)}; "
                                "the workers must see the files at the same paths"
                                ) from None

    def locate(self, position: int) -> str:
        """The row within its file (lengths of the file's earlier partitions are counted
        only when an error needs them)."""
        part, row = position >> _SHIFT, position & _ROW
        file = self.files[part]
        earlier = [k for k in range(part) if self.files[k] == file]
        if earlier:
            lengths = self.compute(*(self.frame.partitions[k].shape[0] for k in earlier))
            row += int(sum(lengths))
        where = row_number(row)
        return where if self.single or file is None else f"{where} in file {file}"

    def reduce(self, family: RateFamily | None, checks: Sequence[Check], columns: Columns
               ) -> Reduced:
        import dask

        require_columns(self.frame.columns, checks)
        needed = list(dict.fromkeys(c for check in checks
                                    for c in (check.column, check.other) if c))
        groups = columns.group is not None and columns.se is None
        parts = [dask.delayed(_partition, nout=2)(part, k, checks, columns, family is not None)
                 for k, part in enumerate(self.frame[needed].to_delayed())]
        if groups:  # each group's pieces merged in the part its hash names
            summary, tables = merge_by_group(parts, ["label"], _merge_counts, _merge_tables)
        else:  # the rows are the groups: each partition's come back as they are
            summary, tables = tree([p[0] for p in parts], _merge_counts), [p[1] for p in parts]
        (total, found), *pieces = self.compute(summary, *tables)
        table = pd.concat(pieces, ignore_index=True).sort_values("first", kind="stable") \
            .reset_index(drop=True)
        note = (f"read {total} rows in {len(self.files)} partitions with Dask"
                + (f" (scheduler {self.scheduler})" if isinstance(self.scheduler, str) else ""))
        return _finish(int(total), family, columns, checks, found, self.locate,
                       lambda: table, "dask", note)


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """What Dask computes on: a ``distributed.Client`` connected to ``scheduler`` when it
    is an address (closed afterwards), else ``scheduler`` itself (a ``Client``, or None:
    the current client, else threads)."""
    if not isinstance(scheduler, str):
        yield scheduler
        return
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except OSError as err:
        raise DataError(f"cannot reach the Dask scheduler {scheduler}: "
                        f"{_first_line(err)}") from None
    with client:
        yield client


__all__ = ["ENGINES", "LARGE_FILE", "Reduced", "Source", "bucket_count", "choose_engine",
           "dask_client", "default_memory_limit", "hash_split", "merge_by_group", "reduce",
           "resolve", "tree"]
