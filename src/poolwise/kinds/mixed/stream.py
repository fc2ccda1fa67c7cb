"""Normal mixed models with one grouping factor, reduced out of core to per-level sums.

For y = Xβ + Zb + ε with one grouping factor, every quantity the normal model's inference
uses is a sum over rows (Bates et al. 2015, §3): per level j of the factor, Z_jᵀZ_j,
Z_jᵀX_j, Z_jᵀy_j, X_jᵀX_j, X_jᵀy_j, y_jᵀy_j, the column sums and n_j
(:class:`~poolwise.kinds.mixed.design.CrossProducts`). DuckDB computes them in one
out-of-core ``GROUP BY`` over the factor's columns; Dask computes them per partition and
adds the partial tables by level, each disjoint set of levels on its own worker
(:func:`~poolwise.data.engines.merge_by_group`). The rows never reach memory. The same pass
keeps each numeric covariate's range, mean and (when few) its values
(:class:`~poolwise.kinds.mixed.design.CovariateRange`), which the conditional-effects plot
needs.

The formula's columns are translated once into a :class:`Plan`: each column of X and Z is
a product of factors — a numeric column, ``log``/``log1p``/``exp``/``sqrt`` of one, or a
categorical column's contrast (levels from a ``DISTINCT`` pass, coded by the formulae
library exactly as the in-memory path codes them) — written as SQL for DuckDB and as NumPy
for Dask. The plan is checked against formulae's own design matrix on a small table with
every level (the *skeleton*, kept with the fit to code new rows), so a formula the
translation would get wrong is refused rather than fitted.

What streams: family normal (``gaussian``), partial or complete pooling, at most one
grouping factor (``(x | g)``, ``(x || g)``, ``(1 | a:b)``), numeric and categorical
predictors, ``C()``, interactions and products, ``log log1p exp sqrt`` of a column,
methods ``eb-ml`` (REML) and ``nuts`` with the marginal parametrisation. What needs the
rows in memory: other families (their likelihood is not a function of these sums),
several grouping factors (nested or crossed: their ZᵀZ couples levels), no pooling,
``offset()``, the data-fitted transforms ``scale center poly``, the explicit NUTS
parametrisations. Those are refused with one line naming ``--engine pandas``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import product
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from poolwise.data.engines import (
    DaskTable,
    DuckTable,
    Source,
    _duckdb,
    _literal,
    _quote,
    choose_engine,
    is_dask_frame,
    merge_by_group,
    resolve,
    tree,
)
from poolwise.data.rows import Check, Violation, frame_violations, numbers, raise_first
from poolwise.exceptions import DataError, SpecificationError
from poolwise.kinds.mixed.design import (
    FEW_VALUES,
    CovariateRange,
    CrossProducts,
    GroupTerm,
    MixedDesign,
    mixed_family,
)
from poolwise.kinds.mixed.formula import (
    _check_columns,
    _design_matrices,
    _group_terms,
    _matrix,
    _parse,
    _Parsed,
    numbers_and_text,
)

#: functions of one column a streamed formula may use, as SQL and NumPy
FUNCTIONS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "log": ("ln({})", np.log), "log1p": ("ln(1 + {})", np.log1p),
    "exp": ("exp({})", np.exp), "sqrt": ("sqrt({})", np.sqrt)}
#: transforms fitted to all the rows: a streamed reduction cannot apply them
STATEFUL = ("scale", "center", "centre", "poly")
_CALL = re.compile(r"^(\w+)\((.+)\)$")
_ROWS = "__poolwise_rows"


def refuse(why: str) -> SpecificationError:
    """The one line a model that cannot stream ends with."""
    return SpecificationError(
        f"{why}, so this mixed model needs its rows in memory: read one file with "
        "--engine pandas (engine='pandas'); out of core, normal mixed models with one "
        "grouping factor stream")


class Factor(NamedTuple):
    """One factor of a design column: ``number`` (a numeric column), ``call`` (``function``
    of a numeric column) or ``levels`` (a categorical column's contrast: the value of each
    level, pairs in ``values``; other levels give 0)."""

    kind: str
    column: str
    function: str = ""
    values: tuple[tuple[Any, float], ...] = ()


#: a design column: the product of its factors (the empty product is the intercept)
Column = tuple[Factor, ...]


@dataclass(frozen=True)
class Plan:
    """How to compute a streamed design's columns from the rows: the response ``y``, X's
    columns ``x`` (named ``fixed_names``), Z's ``z`` (named ``effects``; none without a
    group term), the factor's columns ``keys``, the columns read ``used``, and the small
    ``skeleton`` table."""

    response: str
    y: Column
    x: tuple[Column, ...]
    fixed_names: tuple[str, ...]
    z: tuple[Column, ...]
    effects: tuple[str, ...]
    correlated: bool
    keys: tuple[str, ...]
    used: tuple[str, ...]
    skeleton: pd.DataFrame

    def base(self) -> list[tuple[str, Column, str]]:
        """(name, column, what) of every column summed: y, X's, Z's."""
        named = [("y", self.y, f"response {self.response!r}")]
        named += [(f"x{j}", c, f"fixed-effect column {n!r}")
                  for j, (c, n) in enumerate(zip(self.x, self.fixed_names, strict=True))]
        named += [(f"z{e}", c, f"group-term column {n!r}")
                  for e, (c, n) in enumerate(zip(self.z, self.effects, strict=True))]
        return named

    def products(self) -> list[tuple[str, str, str | None]]:
        """(sum's name, first column, second column or None) of every sum per level."""
        p, k = len(self.x), len(self.z)
        out: list[tuple[str, str, str | None]] = []
        out += [(f"z_sum_{e}", f"z{e}", None) for e in range(k)]
        out += [(f"ztz_{e}_{f}", f"z{e}", f"z{f}") for e in range(k) for f in range(e, k)]
        out += [(f"ztx_{e}_{c}", f"z{e}", f"x{c}") for e in range(k) for c in range(p)]
        out += [(f"zty_{e}", f"z{e}", "y") for e in range(k)]
        out += [(f"x_sum_{c}", f"x{c}", None) for c in range(p)]
        out += [(f"xtx_{c}_{d}", f"x{c}", f"x{d}") for c in range(p) for d in range(c, p)]
        out += [(f"xty_{c}", f"x{c}", "y") for c in range(p)]
        return [*out, ("y_sum", "y", None), ("yty", "y", "y")]


# ----------------------------------------------------------------------------- the plan
def streamable(model: Any) -> None:
    """Refuse (one line) a mixed model whose fit needs the rows, before reading them."""
    family = mixed_family(model.family)
    if family != "normal":
        raise refuse(f"the {family} family's likelihood is not a function of sums over rows")
    if model.pooling == "none":
        raise refuse("no pooling turns every level's effects into fixed columns checked "
                     "against the rows")
    if model.method == "nuts" and model.parametrisation != "marginal":
        raise refuse(f"the {model.parametrisation} parametrisation evaluates every row")
    factors = model.columns.factors
    if len(factors) > 1:
        raise refuse(f"the formula has {len(factors)} grouping factors "
                     f"({', '.join(':'.join(f) for f in factors)}), whose ZᵀZ couples levels")
    used = [name for name in STATEFUL if re.search(rf"\b{name}\s*\(", model.formula)]
    if used:
        raise refuse(f"{', '.join(used)}() {'is' if len(used) == 1 else 'are'} fitted to "
                     "all the rows")
    if re.search(r"\boffset\s*\(", model.formula):
        raise refuse("offset() is not streamed")


def _call_column(text: str, names: Sequence[str]) -> tuple[str, str]:
    """(function, column) of ``f(column)``, or refuse."""
    match = _CALL.match(text.replace(" ", ""))
    inner = match.group(2).strip("`") if match else ""
    if match is None or inner not in names:
        raise refuse(f"{text!r} is not a function of one column")
    return match.group(1), inner


def _component(component: Any, names: Sequence[str]) -> list[Column]:
    """The factor of each column a formulae component contributes."""
    kind = type(component).__name__
    if component.kind == "categoric":
        column = component.name if kind == "Variable" else _call_column(component.name,
                                                                         names)[1]
        if kind != "Variable" and _call_column(component.name, names)[0] != "C":
            raise refuse(f"{component.name!r} is not streamed")
        matrix = np.asarray(component.contrast_matrix.matrix, dtype=float)
        levels = list(component.levels)
        return [(Factor("levels", column, values=tuple(
            (level, float(matrix[i, c])) for i, level in enumerate(levels)
            if matrix[i, c] != 0.0)),) for c in range(matrix.shape[1])]
    if kind == "Variable":
        return [(Factor("number", component.name),)]
    function, column = _call_column(component.name, names)
    if function not in FUNCTIONS:
        raise refuse(f"{function}() is not streamed")
    return [(Factor("call", column, function),)]


def _columns(common: Any, names: Sequence[str]) -> list[Column]:
    """The plan of each column of a formulae common-effects matrix (offset excluded)."""
    if common is None:
        return []
    out: list[Column] = []
    for name in common.slices:
        term = common.terms[name]
        kind = getattr(term, "kind", None)
        if kind == "intercept":
            out.append(())
        elif kind == "offset":
            raise refuse("offset() is not streamed")
        else:
            pieces = [_component(c, names) for c in term.components]
            out += [tuple(f for column in combo for f in column) for combo in product(*pieces)]
    return out


def _skeleton(types: dict[str, str], columns: Sequence[str], levels: dict[str, list[Any]],
              keys: Sequence[str]) -> pd.DataFrame:
    """A small table with the source's column types in which every categorical column
    takes each of its levels and numeric columns vary from row to row and column to
    column (so that a wrong translation cannot agree with formulae by chance)."""
    most = max((len(v) for v in levels.values()), default=1)
    rows = 2 * most + 8
    r = np.arange(rows)
    table: dict[str, Any] = {}
    for i, column in enumerate(columns):
        if column in levels:
            values = levels[column]
            order = np.where(r < len(values), r, (7 * r + 3 * i) % len(values))
            table[column] = pd.Series([values[j] for j in order],
                                      dtype=object if types[column] == "text" else None)
        elif types[column] == "bool":
            table[column] = (r * (i + 2)) % 3 == 1
        elif column in keys:
            table[column] = pd.Series(["0"] * rows if types[column] == "text"
                                      else np.zeros(rows))
        else:
            table[column] = 1.0 + ((r * (2 * i + 3)) % rows) / rows + 0.01 * i
    return pd.DataFrame(table)


def evaluate(column: Column, frame: pd.DataFrame) -> np.ndarray:
    """A planned column on the rows of a pandas table (NumPy's arithmetic, as formulae's)."""
    value = np.ones(len(frame))
    with np.errstate(all="ignore"):
        for factor in column:
            raw = frame[factor.column]
            if factor.kind == "levels":
                mapping = dict(factor.values)
                value = value * raw.map(lambda v, m=mapping: m.get(v, 0.0)).to_numpy(float)
            elif factor.kind == "number":
                value = value * numbers(raw)
            else:
                value = value * FUNCTIONS[factor.function][1](numbers(raw))
    return value


def make_plan(formula: str, types: dict[str, str],
              distinct: Callable[[Sequence[str]], dict[str, list[Any]]]) -> Plan:
    """The :class:`Plan` of ``formula`` on a source whose columns have ``types`` (``number``,
    ``bool`` or ``text``); ``distinct`` gives the sorted levels of categorical columns."""
    parsed = _parse(formula)
    names = list(types)
    used = _check_columns(parsed, pd.DataFrame(columns=names))
    factors = tuple(dict.fromkeys(f for bar in parsed.bar_terms for f in bar.factors))
    keys = factors[0] if factors else ()
    wrapped = set(re.findall(r"\bC\s*\(\s*`?([^`()]+?)`?\s*\)", formula))
    covariates = _covariates(parsed)
    categorical = [c for c in used if c in covariates and (types[c] == "text" or c in wrapped)]
    levels = distinct(categorical) if categorical else {}
    for column in categorical:
        if column not in wrapped:
            _refuse_numbers_and_text(column, levels[column])
    skeleton = _skeleton(types, used, levels, keys)
    fixed = _design_matrices(f"{parsed.response} ~ {parsed.fixed}", skeleton, "the fixed part")
    matrix, fixed_names, _ = _matrix(fixed.common, len(skeleton))
    x = _columns(fixed.common, names)
    response = _columns_of_response(parsed.response, names)
    z: list[Column] = []
    effects: tuple[str, ...] = ()
    correlated = False
    reference = [(x, matrix, "fixed part")]
    if parsed.bar_terms:
        terms, _ = _group_terms(parsed.bar_terms, skeleton, np.arange(len(skeleton)),
                                new_rows=True)
        for bar in parsed.bar_terms:
            where = f"the group-term expression in ({bar.expr} | …)"
            z += _columns(_design_matrices(bar.expr, skeleton, where).common, names)
        effects, correlated = terms[0].names, terms[0].correlated
        reference.append((z, terms[0].z, "group term"))
    for columns, want, what in reference:
        got = np.column_stack([evaluate(c, skeleton) for c in columns]) if columns \
            else np.zeros((len(skeleton), 0))
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=0.0,
                                                      equal_nan=True):
            raise refuse(f"the formula's {what} could not be translated for the engine")
    return Plan(parsed.response, response, tuple(x), tuple(fixed_names), tuple(z),
                tuple(effects), correlated, tuple(keys), tuple(used), skeleton)


def _refuse_numbers_and_text(column: str, levels: Sequence[Any]) -> None:
    """As in memory (:func:`~poolwise.kinds.mixed.formula.numbers_and_text`), a text column
    whose distinct values are mostly numbers is refused unless written ``C(x)``."""
    found = numbers_and_text(column, pd.Series(levels, dtype=object))
    if found is not None:
        raise DataError(found[1])


def _covariates(parsed: _Parsed) -> set[str]:
    from poolwise.kinds.mixed.formula import formula_columns

    return set(formula_columns(f"{parsed.response} ~ {parsed.fixed}").covariates) | {
        c for bar in parsed.bar_terms
        for c in formula_columns(f"{parsed.response} ~ {bar.expr}").covariates}


def _columns_of_response(text: str, names: Sequence[str]) -> Column:
    bare = text.strip().strip("`")
    if bare in names:
        return (Factor("number", bare),)
    function, column = _call_column(text.strip(), names)
    if function not in FUNCTIONS:
        raise refuse(f"the response {text!r} is not streamed")
    return (Factor("call", column, function),)


# ----------------------------------------------------------------------------- the design
def cross_from_sums(plan: Plan, table: pd.DataFrame
                    ) -> tuple[CrossProducts, pd.DataFrame]:
    """The :class:`CrossProducts` of an engine's per-level sums (columns ``k0``… the
    factor's, ``n`` and :meth:`Plan.products`), levels sorted as the in-memory path sorts
    them, and the levels' key columns."""
    p, k = len(plan.x), len(plan.z)
    keys = [f"k{i}" for i in range(len(plan.keys))]
    if keys:
        table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    levels = len(table)

    def matrix(prefix: str, first: int, second: int, symmetric: bool) -> np.ndarray:
        out = np.zeros((levels, first, second))
        for a in range(first):
            for b in range(a if symmetric else 0, second):
                out[:, a, b] = table[f"{prefix}_{a}_{b}"].to_numpy(dtype=float)
                if symmetric:
                    out[:, b, a] = out[:, a, b]
        return out

    def vector(prefix: str, size: int) -> np.ndarray:
        return np.column_stack([table[f"{prefix}_{a}"].to_numpy(dtype=float)
                                for a in range(size)]) if size else np.zeros((levels, 0))

    cross = CrossProducts(table["n"].to_numpy(dtype=float), vector("z_sum", k),
                          matrix("ztz", k, k, True), matrix("ztx", k, p, False),
                          vector("zty", k), vector("x_sum", p), matrix("xtx", p, p, True),
                          vector("xty", p), table["y_sum"].to_numpy(dtype=float),
                          table["yty"].to_numpy(dtype=float))
    return cross, table[keys]


def build_design(formula: str, plan: Plan, cross: CrossProducts, labels: Sequence[str],
                 dropped: int, notes: Sequence[str],
                 ranges: Sequence[CovariateRange] = ()) -> MixedDesign:
    """The streamed design: the plan's names, one group term with ``labels`` (if the
    formula has one), the sums ``cross`` and the numeric covariates' ``ranges``; refuses
    one level and collinear columns as the in-memory path does."""
    terms: tuple[GroupTerm, ...] = ()
    if plan.keys:
        factor = ":".join(plan.keys)
        if len(labels) < 2:
            raise DataError(f"grouping factor {factor!r} has one level ({labels[0]!r}); a "
                            "group term needs at least 2 levels")
        terms = (GroupTerm(factor, plan.effects, np.zeros((0, len(plan.z))),
                           np.zeros(0, np.intp), tuple(labels), plan.correlated),)
    _check_full_rank(cross.total("xtx"), plan.fixed_names)
    return MixedDesign(formula, "normal", plan.response, np.zeros(0),
                       np.zeros((0, len(plan.x))), plan.fixed_names, terms,
                       dropped_rows=dropped, notes=tuple(notes), columns=plan.used,
                       cross=cross, ranges=tuple(ranges))


def level_labels(keys: pd.DataFrame) -> list[str]:
    """"A:a" for each level's key values, as the in-memory path writes levels."""
    return [":".join(str(v) for v in row) for row in keys.itertuples(index=False)]


def _check_full_rank(gram: np.ndarray, names: Sequence[str]) -> None:
    """:func:`~poolwise.kinds.mixed.formula._check_full_rank` from XᵀX: column j is
    spanned by the earlier ones when the Schur complement XᵀX[j, j] − XᵀX[j, :j]
    (XᵀX[:j, :j])⁺ XᵀX[:j, j], its squared distance from their span, is ~0."""
    for j in range(1, gram.shape[0]):
        before = gram[:j, :j]
        residual = gram[j, j] - gram[j, :j] @ np.linalg.pinv(before) @ gram[:j, j]
        if residual <= 1e-12 * max(gram[j, j], 1.0):
            earlier = [names[i] for i in range(j) if gram[i, i] > 0]
            raise DataError(
                f"fixed-effect column {names[j]!r} is a linear combination of "
                f"{', '.join(earlier)} (collinear), so its coefficient cannot be estimated; "
                "remove it or one of those from the formula")


def _missing_notes(total: int, incomplete: int, per_column: dict[str, int], missing: str
                   ) -> tuple[str, ...]:
    """The note of rows dropped for missing values (none when none are), or the one-line
    error when the table is empty or ``missing`` does not allow dropping them."""
    if total == 0:
        raise DataError("the table has no rows")
    if not incomplete:
        return ()
    problem = _missing_message(total, incomplete, per_column, missing)
    if problem is not None:
        raise DataError(problem)
    return (f"dropped {incomplete} of {total} rows with missing values "
            f"({', '.join(f'{c}: {k}' for c, k in per_column.items() if k)})",)


def _missing_message(total: int, incomplete: int, per_column: dict[str, int],
                     missing: str) -> str | None:
    """The in-memory path's refusal of rows with missing values (None to drop them)."""
    counts = ", ".join(f"{c}: {k}" for c, k in per_column.items() if k)
    if missing == "refuse":
        return (f"{incomplete} of {total} rows have missing values ({counts}); "
                'pass missing="drop" (CLI --drop-missing) to drop those rows')
    if incomplete == total:
        return f"every row has a missing value ({counts}); nothing is left to fit"
    return None


def numeric_covariates(formula: str, plan: Plan, types: dict[str, str]) -> list[str]:
    """The formula's covariates read as numbers, whose ranges a streamed design keeps."""
    covariates = _covariates(_parse(formula))
    return [c for c in plan.used if c in covariates and types[c] == "number"]


#: a slice's non-missing values of a covariate: min, max, sum, count and its distinct
#: values (None when there are more than FEW_VALUES)
RangePart = tuple[float, float, float, int, "np.ndarray | None"]


def _range_part(values: np.ndarray) -> RangePart:
    values = values[~np.isnan(values)]
    distinct = np.unique(values)
    return (float(values.min(initial=np.inf)), float(values.max(initial=-np.inf)),
            float(values.sum()), int(values.size),
            distinct if distinct.size <= FEW_VALUES else None)


def _merge_ranges(parts: Sequence[RangePart]) -> RangePart:
    """Slices' :data:`RangePart` s of one covariate as one."""
    found = [p[4] for p in parts if p[4] is not None]
    distinct = np.unique(np.concatenate(found)) if len(found) == len(parts) else None
    return (min(p[0] for p in parts), max(p[1] for p in parts), sum(p[2] for p in parts),
            sum(p[3] for p in parts),
            distinct if distinct is not None and distinct.size <= FEW_VALUES else None)


def _covariate_range(column: str, part: RangePart) -> CovariateRange:
    low, high, total, count, distinct = part
    return CovariateRange(column, low, high, total / count if count else float("nan"),
                          () if distinct is None else tuple(float(v) for v in distinct))


# ----------------------------------------------------------------------------- DuckDB
def _sql(column: Column, table: DuckTable) -> str:
    parts = []
    for factor in column:
        if factor.kind == "number":
            parts.append(table.number(factor.column))
        elif factor.kind == "call":
            parts.append(FUNCTIONS[factor.function][0].format(table.number(factor.column)))
        else:
            raw = _quote(factor.column)
            text = table.types[factor.column] not in _NUMERIC_OR_BOOL
            cases = " ".join(f"WHEN {raw} = {_value_sql(v, text)} THEN {w!r}"
                             for v, w in factor.values)
            parts.append(f"(CASE {cases} ELSE 0.0 END)" if cases else "0.0")
    return " * ".join(f"({p})" for p in parts) or "1.0"


def _value_sql(value: Any, text: bool) -> str:
    if text:
        return _literal(str(value))
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return repr(float(value)) if isinstance(value, float | np.floating) else str(int(value))


_NUMERIC_OR_BOOL = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                    "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
                    "BOOLEAN")


def _duck_types(table: DuckTable) -> dict[str, str]:
    out = {}
    for name, kind in table.types.items():
        base = kind.split("(")[0]
        out[name] = ("bool" if base == "BOOLEAN" else
                     "number" if base in _NUMERIC_OR_BOOL or base == "DECIMAL" else "text")
    return out


def _duck_ranges(table: DuckTable, columns: Sequence[str]) -> tuple[CovariateRange, ...]:
    """Each numeric covariate's :class:`CovariateRange` over the rows of ``table``: one
    query for the min, max, mean and approximate count of distinct values (HyperLogLog),
    and the distinct values themselves only where that count is small."""
    if not columns:
        return ()
    parts = []
    for column in columns:
        x = table.number(column)
        parts += [f"min({x})", f"max({x})", f"fsum({x}) / count({x})",
                  f"approx_count_distinct({x})"]
    row = table.query(f"SELECT {', '.join(parts)} FROM {table.sql}").fetchone()
    out = []
    for i, column in enumerate(columns):
        low, high, mean, approximate = row[4 * i: 4 * i + 4]
        values: tuple[float, ...] = ()
        if approximate <= 2 * FEW_VALUES:  # HyperLogLog errs by a few per cent
            x = table.number(column)
            found = table.query(f"SELECT DISTINCT {x} FROM {table.sql} WHERE {x} IS NOT NULL"
                                ).fetchall()
            if len(found) <= FEW_VALUES:
                values = tuple(sorted(float(v[0]) for v in found))
        out.append(CovariateRange(column, float(low), float(high), float(mean), values))
    return tuple(out)


def _duck_reduce(table: DuckTable, formula: str, missing: str
                 ) -> tuple[Plan, pd.DataFrame, int, int, tuple[str, ...],
                            tuple[CovariateRange, ...]]:
    """Plan, per-level sums, rows read, rows dropped, notes, covariate ranges (DuckDB)."""
    types = _duck_types(table)

    def distinct(columns: Sequence[str]) -> dict[str, list[Any]]:
        out = {}
        for column in columns:
            values = table.query(f"SELECT DISTINCT {_quote(column)} FROM {table.sql} WHERE "
                                 f"{_quote(column)} IS NOT NULL").fetchall()
            out[column] = sorted(v[0] for v in values)
        return out

    plan = make_plan(formula, types, distinct)
    # rows, rows with a missing value, and each column's missing values
    missing_sql = {c: table.failing(Check("missing", c, c)) for c in plan.used}
    counts = table.query(
        "SELECT count(*), count(*) FILTER (WHERE " + " OR ".join(missing_sql.values())
        + "), " + ", ".join(f"count(*) FILTER (WHERE {w})" for w in missing_sql.values())
        + f" FROM {table.sql}").fetchone()
    total, incomplete = int(counts[0]), int(counts[1])
    per_column = dict(zip(plan.used, (int(c) for c in counts[2:]), strict=True))
    notes = _missing_notes(total, incomplete, per_column, missing)
    if incomplete:
        table = replace(table, sql=f"(SELECT * FROM {table.sql} WHERE NOT ("
                        + " OR ".join(missing_sql.values()) + "))")
    response = plan.y[0].column
    checks = [Check("number", response, "response")] if types[response] == "text" else []
    if checks:
        _, found = table.violations(checks)
        raise_first(checks, found, table.locate)
    base = plan.base()
    pos = "__poolwise_pos"
    expressions = ", ".join(f"{_sql(c, table)} AS {name}" for name, c, _ in base)
    keys = ", ".join(f"{_quote(k)} AS k{i}" for i, k in enumerate(plan.keys))
    inner = f"SELECT {keys + ', ' if keys else ''}{pos}, {expressions} FROM {table.sql}"
    bad = []
    for name, _, _ in base:
        where = f"FILTER (WHERE NOT coalesce(isfinite({name}), false))"
        bad += [f"count(*) {where}", f"min({pos}) {where}", f"arg_min({name}, {pos}) {where}"]
    row = table.query(f"SELECT {', '.join(bad)} FROM ({inner})").fetchone()
    _raise_not_finite(base, [Violation(int(row[3 * i]), int(row[3 * i + 1] or 0),
                                       row[3 * i + 2]) if row[3 * i] else None
                             for i in range(len(base))], table.locate)
    sums = ", ".join(f"fsum({a}{' * ' + b if b else ''}) AS {name}"
                     for name, a, b in plan.products())
    group = (f" GROUP BY {', '.join(f'k{i}' for i in range(len(plan.keys)))}"
             if plan.keys else "")
    frame = table.query(f"SELECT {', '.join(f'k{i}' for i in range(len(plan.keys)))}"
                        f"{', ' if plan.keys else ''}count(*) AS n, {sums} FROM ({inner})"
                        f"{group}").df()
    ranges = _duck_ranges(table, numeric_covariates(formula, plan, types))
    return plan, frame, total, incomplete, notes, ranges


def _raise_not_finite(base: Sequence[tuple[str, Column, str]],
                      found: Sequence[Violation | None], locate: Callable[[int], str]) -> None:
    """The in-memory path's line for the first column with a value that is not finite."""
    for (_, _, what), violation in zip(base, found, strict=True):
        if violation is not None:
            raise DataError(f"{locate(violation.position)}: {what} is {violation.value}; "
                            "check the transformation's domain (e.g. log needs positive "
                            "values)")


# ----------------------------------------------------------------------------- Dask
def _pandas_types(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): ("bool" if pd.api.types.is_bool_dtype(t) else
                     "number" if pd.api.types.is_numeric_dtype(t) else "text")
            for c, t in frame.dtypes.items()}


def _typed(part: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """A partition's columns as the types the plan was made for (Dask reads CSV as
    text)."""
    out = {}
    for column in part.columns:
        kind = types.get(str(column), "text")
        raw = part[column]
        if kind == "number" and not pd.api.types.is_numeric_dtype(raw):
            out[column] = pd.to_numeric(raw, errors="coerce").where(raw.notna(), np.nan)
        elif kind == "bool" and not pd.api.types.is_bool_dtype(raw):
            out[column] = raw.map({"True": True, "False": False, "true": True,
                                   "false": False, True: True, False: False})
        else:
            out[column] = raw
    return pd.DataFrame(out, index=part.index)


#: a partition's rows, incomplete rows, missing values per column, the response check, the
#: first value that is not finite of each summed column, and each numeric covariate's
#: :data:`RangePart`
DaskSummary = tuple[int, int, dict[str, int], list[Violation | None], list[Violation | None],
                    dict[str, RangePart]]
#: a partition's summary and per-level sums
DaskPart = tuple[DaskSummary, pd.DataFrame]


#: a partition is summed this many rows at a time (the products of one slice in memory)
SLICE_ROWS = 500_000


def _dask_partition(part: pd.DataFrame, number: int, plan: Plan, types: dict[str, str],
                    drop: bool, numeric: Sequence[str]) -> DaskPart:
    """One partition's :data:`DaskSummary` and per-level sums, :data:`SLICE_ROWS` rows at
    a time."""
    if len(part) <= SLICE_ROWS:
        return _dask_slice(part, number, 0, plan, types, drop, numeric)
    slices = [_dask_slice(part.iloc[start:start + SLICE_ROWS], number, start, plan, types,
                          drop, numeric) for start in range(0, len(part), SLICE_ROWS)]
    return (_merge_summaries(*(p[0] for p in slices)),
            _merge_sums(*(p[1] for p in slices), keys=len(plan.keys)))


def _dask_slice(part: pd.DataFrame, number: int, start: int, plan: Plan,
                types: dict[str, str], drop: bool, numeric: Sequence[str]) -> DaskPart:
    """:func:`_dask_partition` of the rows from ``start`` of partition ``number``."""
    from poolwise.data.engines import _positions

    positions = _positions(part, number) + start
    # missing as read: text that is not a number is found by the finiteness check below
    missing = {c: part[c].isna().to_numpy() for c in plan.used}
    part = _typed(part, types)
    incomplete = np.logical_or.reduce(list(missing.values())) if missing \
        else np.zeros(len(part), bool)
    keep = ~incomplete if drop else np.ones(len(part), bool)
    rows, kept_positions = part[keep], positions[keep]
    response = plan.y[0].column
    check = [Check("number", response, "response")]
    found: list[Violation | None] = (frame_violations(rows, check, kept_positions)
                                     if types[response] == "text" else [None])
    base = {name: evaluate(column, rows) for name, column, _ in plan.base()}
    bad: list[Violation | None] = []
    for values in base.values():
        where = np.flatnonzero(~np.isfinite(values))
        bad.append(Violation(int(where.size), int(kept_positions[where[0]]),
                             values[where[0]]) if where.size else None)
    columns: dict[str, Any] = {f"k{i}": rows[k].to_numpy() for i, k in enumerate(plan.keys)}
    columns["n"] = np.ones(len(rows))
    for name, a, b in plan.products():
        columns[name] = base[a] * base[b] if b else base[a]
    table = pd.DataFrame(columns)
    keys = [f"k{i}" for i in range(len(plan.keys))]
    sums = table.groupby(keys, sort=False).sum().reset_index() if keys \
        else table.sum().to_frame().T
    ranges = {c: _range_part(numbers(rows[c])) for c in numeric}
    return ((len(part), int(incomplete.sum()), {c: int(v.sum()) for c, v in missing.items()},
             found, bad, ranges), sums)


def _merge_summaries(*parts: DaskSummary) -> DaskSummary:
    """Partitions' :data:`DaskSummary` s as one (a node of the reduction tree)."""
    from poolwise.data.rows import merge_violations

    missing = {c: sum(p[2][c] for p in parts) for c in parts[0][2]}
    ranges = {c: _merge_ranges([p[5][c] for p in parts]) for c in parts[0][5]}
    return (sum(p[0] for p in parts), sum(p[1] for p in parts), missing,
            merge_violations(p[3] for p in parts), merge_violations(p[4] for p in parts),
            ranges)


def _merge_sums(*tables: pd.DataFrame, keys: int) -> pd.DataFrame:
    """Per-level sums of disjoint rows as one (a level's sums are added)."""
    table = pd.concat(tables, ignore_index=True)
    names = [f"k{i}" for i in range(keys)]
    return table.groupby(names, sort=False).sum().reset_index() if names \
        else table.sum().to_frame().T


def _dask_types(table: DaskTable, source: Source | Any) -> dict[str, str]:
    """Column types as pandas reads them: Parquet's own; a CSV's from its first 10,000
    rows (Dask reads text columns as text)."""
    if isinstance(source, Source) and not source.parquet:
        first = source.files[0]
        sample = pd.read_csv(first, nrows=10_000, sep="\t" if first.suffix.lower() in
                             (".tsv", ".tab") else ",")
        return _pandas_types(sample)
    return _pandas_types(table.frame._meta)


def _dask_reduce(table: DaskTable, source: Source | Any, formula: str, missing: str
                 ) -> tuple[Plan, pd.DataFrame, int, int, tuple[str, ...],
                            tuple[CovariateRange, ...]]:
    """Plan, per-level sums, rows read, rows dropped, notes, covariate ranges (Dask): the
    levels' sums added by :func:`~poolwise.data.engines.merge_by_group`, each disjoint set
    of levels on one worker."""
    import dask

    types = _dask_types(table, source)

    def distinct(columns: Sequence[str]) -> dict[str, list[Any]]:
        found = table.compute(*(table.frame[c].dropna().unique() for c in columns))
        out = {}
        for column, values in zip(columns, found, strict=True):
            series = _typed(pd.DataFrame({column: np.asarray(values)}), types)[column]
            out[column] = sorted(series.dropna().unique().tolist())
        return out

    plan = make_plan(formula, types, distinct)
    drop = missing == "drop"
    numeric = numeric_covariates(formula, plan, types)
    parts = [dask.delayed(_dask_partition, nout=2)(part, k, plan, types, drop, numeric)
             for k, part in enumerate(table.frame[list(plan.used)].to_delayed())]
    keys = len(plan.keys)
    merge = partial(_merge_sums, keys=keys)
    if keys:
        summary, tables = merge_by_group(parts, [f"k{i}" for i in range(keys)],
                                         _merge_summaries, merge)
    else:  # one level: every row's sums add up to one row
        summary, tables = (tree([p[0] for p in parts], _merge_summaries),
                           [tree([p[1] for p in parts], merge)])
    (total, incomplete, per_column, found, bad, ranges), *pieces = table.compute(summary,
                                                                                 *tables)
    # the parts' levels are disjoint, unless a key's type differs between partitions
    # (3 and 3.0 hash apart): adding them once more costs one pass over the levels
    sums = merge(*pieces)
    notes = _missing_notes(int(total), int(incomplete), per_column, missing)
    raise_first([Check("number", plan.y[0].column, "response")], found, table.locate)
    _raise_not_finite(plan.base(), bad, table.locate)
    return (plan, sums, int(total), int(incomplete) if drop else 0, notes,
            tuple(_covariate_range(c, part) for c, part in ranges.items()))


# ----------------------------------------------------------------------------- entry
@dataclass(frozen=True)
class Streamed:
    """A mixed model's data reduced out of core: the design (its ``cross`` the sums, its
    notes what was read and how) and the skeleton table, and how many rows were read."""

    design: MixedDesign
    skeleton: pd.DataFrame
    rows: int


def reduce_mixed(model: Any, data: str | Any, *, engine: str = "auto",
                 scheduler: Any = None, text: dict[str, str] | None = None) -> Streamed:
    """Check ``data`` (a file, glob, directory or Dask DataFrame) against ``model``'s
    formula and reduce its rows to per-level sums (module docstring), with DuckDB or Dask
    (``engine``: ``duckdb``, ``dask``, or ``auto``, which is DuckDB for files)."""
    streamable(model)
    source = data if isinstance(data, Source) or is_dask_frame(data) else resolve(data)
    chosen = choose_engine(source, engine)
    if chosen == "pandas":
        chosen = "duckdb"
    text = dict(text or {})
    if scheduler is not None and chosen != "dask":
        raise SpecificationError(f"a scheduler is for engine 'dask', not {chosen!r}")
    if chosen == "duckdb":
        assert isinstance(source, Source)
        with _duckdb(None, None) as con:
            table = DuckTable.open(con, source, text)
            plan, sums, rows, dropped, notes, ranges = _duck_reduce(table, model.formula,
                                                                    model.missing)
            notes = (*table.notes, *notes)
        files = len(source.files)
        read = (f"read {rows} rows{f' from {files} files' if files > 1 else ''} with DuckDB "
                "(out of core) into per-group cross-products")
    else:
        if text:
            raise SpecificationError("--sep, --decimal and --encoding are for engines pandas "
                                     "and duckdb; engine 'dask' reads comma-separated UTF-8 "
                                     "text and Parquet")
        dask_table = DaskTable.open(source, scheduler)
        plan, sums, rows, dropped, notes, ranges = _dask_reduce(dask_table, source,
                                                                model.formula, model.missing)
        read = (f"read {rows} rows in {len(dask_table.files)} partitions with Dask"
                + (f" (scheduler {scheduler})" if isinstance(scheduler, str) else "")
                + " into per-group cross-products")
    cross, keys = cross_from_sums(plan, sums)
    kept = ("the rows are not kept: the predictive check compares each group's mean, "
            "and group lines and a group's own rows need --engine pandas")
    design = build_design(model.formula, plan, cross, level_labels(keys), dropped,
                          (read, *notes, kept), ranges)
    skeleton = plan.skeleton.copy()
    for i, column in enumerate(plan.keys):
        values = keys[f"k{i}"].to_numpy()
        skeleton[column] = pd.Series(values[np.arange(len(skeleton)) % len(values)])
    return Streamed(design, skeleton, rows)


def restore_design(formula: str, skeleton: pd.DataFrame, cross: CrossProducts,
                   labels: Sequence[str], dropped: int, notes: Sequence[str],
                   ranges: Sequence[CovariateRange] = ()) -> MixedDesign:
    """A saved streamed design: the plan made again on its skeleton (which holds every
    level of its categorical columns), with the saved sums and covariate ranges."""
    types = _pandas_types(skeleton)

    def distinct(columns: Sequence[str]) -> dict[str, list[Any]]:
        return {c: sorted(skeleton[c].dropna().unique().tolist()) for c in columns}

    plan = make_plan(formula, types, distinct)
    return build_design(formula, plan, cross, labels, dropped, notes, ranges)


__all__ = ["FUNCTIONS", "Plan", "Streamed", "build_design", "cross_from_sums", "level_labels",
           "make_plan", "reduce_mixed", "refuse", "restore_design", "streamable"]
