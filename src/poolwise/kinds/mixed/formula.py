"""lme4/brms-style formulas → :class:`~poolwise.kinds.mixed.design.MixedDesign`.

A formula ``response ~ fixed + (expr | factor) + …`` is split here into its fixed part and
its group terms; the ``formulae`` library then evaluates the fixed part and each term's
``expr`` (the columns of X and of every Z_t), and poolwise builds the factor levels itself,
because formulae has no ``||`` and does not say which effects share a covariance matrix.

Syntax (Bates et al. 2015, *J. Stat. Softw.* 67(1), Table 2; Bürkner 2017, *JSS* 80(1)):

==============================  ===============================================================
``y ~ x + (x | g)``             intercept and slope vary by g, correlated (Σ_g full 2 × 2)
``y ~ x + (x || g)``            the same, uncorrelated (Σ_g diagonal): one GroupTerm, correlated
                                False
``(1 | g) + (0 + x | g)``       separate terms of one factor: merged into that same
                                uncorrelated GroupTerm; a correlated term ``(x | g)`` with another
                                term of g is refused (write ``(x + z | g)`` or ``(x + z || g)``)
``(1 | school/classroom)``      nested: ``(1 | school) + (1 | school:classroom)``, levels "A:a"
``(1 | a) + (1 | b)``           crossed
``y | trials(n) ~ …``           binomial successes y out of n (n a column or a whole number)
``… + offset(log(exposure))``   known term on the link scale, e.g. Poisson exposure
==============================  ===============================================================

Bernoulli responses are 0/1 without ``trials()`` (``trials`` is then all ones).

Formulas are parsed safely: before formulae sees one, every token is checked against
:data:`ALLOWED_FUNCTIONS`, column names, numbers and the operators ``~ + - * : / | || ( ) ,``
(no strings, attributes, subscripts or other names), and formulae evaluates it in a namespace
that holds only those functions, so nothing else is reachable.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from poolwise.data.rows import LARGEST, row_number, unique_columns
from poolwise.exceptions import DataError, SpecificationError
from poolwise.kinds.mixed.design import FloatArray, GroupTerm, IntArray, MixedDesign, mixed_family

#: functions a formula may call, and what they compute
ALLOWED_FUNCTIONS: dict[str, str] = {
    "log": "natural logarithm",
    "log1p": "log(1 + x)",
    "exp": "exponential",
    "sqrt": "square root",
    "scale": "(x − mean) / sd, sd with divisor n (formulae's scale)",
    "center": "x − mean",
    "centre": "x − mean",
    "poly": "orthogonal polynomial: poly(x, degree)",
    "C": "treat as categorical",
    "offset": "known term on the link scale, fixed part only: offset(log(exposure))",
    "trials": "binomial trials, left-hand side only: y | trials(n)",
}
MISSING_ACTIONS = ("refuse", "drop")
POOLINGS = ("none", "complete", "partial")

_ALLOWED_TEXT = (
    "a formula may use column names (`backticks` for odd names), numbers, the operators "
    "~ + - * : / | || ( ) , and the functions " + ", ".join(ALLOWED_FUNCTIONS)
)
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<number>\d+(?:\.\d+)?)|(?P<name>[^\W\d]\w*)|(?P<quoted>`[^`]*`)"
    r"|(?P<op>\|\||\*\*|//|[~+\-*:/|(),])"
    r"|(?P<string>'[^']*'?|\"[^\"]*\"?)|(?P<other>.)"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "quoted" or "op"
    text: str
    start: int
    end: int

    @property
    def column(self) -> str:
        return self.text[1:-1] if self.kind == "quoted" else self.text

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.text in ops


@dataclass(frozen=True)
class _BarTerm:
    expr: str
    factors: tuple[tuple[str, ...], ...]  # nested a/b → (("a",), ("a", "b"))
    correlated: bool  # "|" rather than "||"


def _forbidden(token: str, start: int, why: str) -> SpecificationError:
    return SpecificationError(f"formula has {why} {token!r} at character {start + 1}; "
                              f"{_ALLOWED_TEXT}")


def _tokenize(formula: str) -> list[_Token]:
    """The formula's tokens, refusing anything outside the documented syntax."""
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(formula):
        kind, text, start = str(match.lastgroup), match.group(), match.start()
        if kind == "space":
            continue
        if kind == "string":
            raise _forbidden(text, start, "a string")
        if kind == "other":
            why = "attribute access" if text == "." else "the forbidden character"
            raise _forbidden(text, start, why)
        if kind == "op" and text in ("**", "//"):
            raise _forbidden(text, start, "the operator")
        if kind == "name" and (text.startswith("_") or "__" in text):
            raise _forbidden(text, start, "the forbidden name")
        tokens.append(_Token(kind, text, start, match.end()))
    depth = 0
    for token in tokens:
        depth += token.is_op("(") - token.is_op(")")
        if depth < 0:
            raise SpecificationError(f"formula has a ) without its ( at character "
                                     f"{token.start + 1}")
    if depth:
        raise SpecificationError(f"formula has {depth} ( without a matching )")
    for i, token in enumerate(tokens):
        is_call = i + 1 < len(tokens) and tokens[i + 1].is_op("(")
        if is_call and token.kind != "name" and not token.is_op(*"~+-*:/|(,", "||"):
            raise _forbidden(token.text + "(", token.start, "a call of")
        if is_call and token.kind == "name" and token.text not in ALLOWED_FUNCTIONS:
            raise _forbidden(token.text + "(", token.start, "the unknown function")
    return tokens


def _split_top(tokens: list[_Token], *ops: str) -> list[list[_Token]]:
    """Split ``tokens`` at the operators ``ops`` outside parentheses."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.is_op("("):
            depth += 1
        elif token.is_op(")"):
            depth -= 1
        if depth == 0 and token.is_op(*ops):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _text(formula: str, tokens: list[_Token]) -> str:
    return formula[tokens[0].start:tokens[-1].end] if tokens else ""


def _calls(tokens: list[_Token]) -> set[str]:
    return {t.text for i, t in enumerate(tokens[:-1])
            if t.kind == "name" and tokens[i + 1].is_op("(")}


def _columns(tokens: list[_Token]) -> list[_Token]:
    """The tokens that name columns (names that are not called, and `quoted` names)."""
    return [t for i, t in enumerate(tokens)
            if t.kind == "quoted"
            or (t.kind == "name" and not (i + 1 < len(tokens) and tokens[i + 1].is_op("(")))]


def _bar_term(formula: str, piece: list[_Token]) -> _BarTerm:
    """``( expr | factor )`` or ``( expr || factor )``, with nested factors ``a/b`` expanded."""
    text = _text(formula, piece)
    inner = piece[1:-1]
    depths = np.cumsum([t.is_op("(") - t.is_op(")") for t in piece])
    if not (piece[0].is_op("(") and np.all(depths[:-1] > 0)):  # one pair of ( ) round it all
        raise SpecificationError(
            f"group term {text!r} must be written (expr | factor) and added with +, "
            "e.g. y ~ x + (1 + x | g)"
        )
    halves = _split_top(inner, "|", "||")
    bars = [t for t in inner if t.is_op("|", "||")]
    if len(halves) != 2 or len(bars) != 1 or not halves[0] or not halves[1]:
        raise SpecificationError(f"group term {text!r} needs one | or || between an "
                                 "expression and a grouping factor, e.g. (1 + x | g)")
    expr, factor = halves
    if {"offset", "trials"} & _calls(expr):
        raise SpecificationError(f"group term {text!r}: offset() and trials() belong outside "
                                 "group terms")
    nested: list[tuple[str, ...]] = []
    for part in _split_top(factor, "/"):
        names = _split_top(part, ":")
        if not all(len(n) == 1 and n[0].kind in ("name", "quoted") for n in names):
            raise SpecificationError(
                f"grouping factor {_text(formula, factor)!r} in {text!r} must be column names "
                "joined by : (interaction) or / (nesting), e.g. (1 | school/classroom)"
            )
        outer = nested[-1] if nested else ()
        nested.append(outer + tuple(n[0].column for n in names))
    return _BarTerm(_text(formula, expr), tuple(nested), bars[0].text == "|")


@dataclass(frozen=True)
class _Parsed:
    response: str  # the left-hand side without "| trials(…)"
    trials: _Token | None
    fixed: str
    bar_terms: tuple[_BarTerm, ...]
    columns: tuple[_Token, ...]


def _parse(formula: str) -> _Parsed:
    tokens = _tokenize(formula)
    if not tokens:
        raise SpecificationError("the formula is empty; write e.g. y ~ x + (1 | g)")
    sides = _split_top(tokens, "~")
    if len(sides) != 2 or not sides[0] or not sides[1]:
        raise SpecificationError(
            f"formula {formula!r} needs one ~ with the response on its left, e.g. y ~ x + (1 | g)"
        )
    left, right = sides
    lhs = _split_top(left, "|")
    if len(lhs) > 2 or any(t.is_op("||") for t in left):
        raise SpecificationError(f"left-hand side {_text(formula, left)!r}: write y or "
                                 "y | trials(n)")
    trials = None
    if len(lhs) == 2:
        call = lhs[1]
        if not (len(call) == 4 and call[0].text == "trials" and call[1].is_op("(")
                and call[2].kind in ("name", "quoted", "number") and call[3].is_op(")")):
            raise SpecificationError(
                f"after | on the left of ~ only trials(n) is allowed, with n a column or a "
                f"whole number; got {_text(formula, call)!r}"
            )
        trials = call[2]
    response = lhs[0]
    if not response or {"trials", "offset"} & _calls(response):
        raise SpecificationError(f"left-hand side {_text(formula, left)!r}: write y or "
                                 "y | trials(n); offset() goes on the right")
    if "trials" in _calls(right):
        raise SpecificationError("trials() goes on the left of ~: y | trials(n) ~ x")
    if sum(t.text == "offset" for t in right if t.kind == "name") > 1:
        raise SpecificationError("the formula has more than one offset(); combine them in "
                                 "one, e.g. offset(log(exposure) + log(area))")
    fixed: list[str] = []
    bar_terms: list[_BarTerm] = []
    for piece in _split_top(right, "+"):
        if any(t.is_op("|", "||") for t in piece):
            bar_terms.append(_bar_term(formula, piece))
        elif not piece:
            raise SpecificationError(f"formula {formula!r} has an empty term (a + with nothing "
                                     "on one side)")
        else:
            fixed.append(_text(formula, piece))
    columns = _columns(response) + ([trials] if trials and trials.kind != "number" else [])
    columns += _columns(right)
    return _Parsed(_text(formula, response), trials, " + ".join(fixed) or "1",
                   tuple(bar_terms), tuple(columns))


@dataclass(frozen=True)
class FormulaColumns:
    """The columns a formula reads, by role: the response's (``response``), the binomial
    trials column (``trials``, None for a number or none), the grouping factors (``factors``:
    one tuple of columns per factor, ``("school", "classroom")`` for ``school:classroom``)
    and every other (``covariates``: fixed part, group-term expressions, offset). A column
    may have several roles. ``predictors`` are the covariates of the fixed part outside
    ``offset()``: those a population-level (conditional-effects) display varies."""

    response: tuple[str, ...]
    trials: str | None
    factors: tuple[tuple[str, ...], ...]
    covariates: tuple[str, ...]
    predictors: tuple[str, ...] = ()
    #: each group term's effects as written before the bar: "1", "1 + x", "0 + x"
    group_effects: tuple[str, ...] = ()

    @property
    def intercepts_only(self) -> bool:
        """Whether every group term is a random intercept, ``(1 | g)``."""
        return all(effects.replace(" ", "") == "1" for effects in self.group_effects)

    @property
    def factor_columns(self) -> tuple[str, ...]:
        """Every column that is part of a grouping factor."""
        return tuple(dict.fromkeys(c for factor in self.factors for c in factor))


def formula_columns(formula: str) -> FormulaColumns:
    """Check the formula's syntax (no data needed) and name its columns by role.

    >>> formula_columns("y ~ x + (1 + z | school/classroom)").factors
    (('school',), ('school', 'classroom'))
    """
    if not isinstance(formula, str):
        raise SpecificationError(f"the formula must be text, not {type(formula).__name__}")
    parsed = _parse(formula)
    response = [t.column for t in _columns(_tokenize(parsed.response))]
    trials = (parsed.trials.column if parsed.trials is not None
              and parsed.trials.kind != "number" else None)
    factors = [f for bar in parsed.bar_terms for f in bar.factors]
    covariates = [t.column for text in (parsed.fixed, *(b.expr for b in parsed.bar_terms))
                  for t in _columns(_tokenize(text))]
    predictors = [t.column for t in _columns(_outside_offset(_tokenize(parsed.fixed)))]
    return FormulaColumns(tuple(dict.fromkeys(response)), trials,
                          tuple(dict.fromkeys(factors)), tuple(dict.fromkeys(covariates)),
                          tuple(dict.fromkeys(predictors)),
                          tuple(bar.expr for bar in parsed.bar_terms))


def _outside_offset(tokens: list[_Token]) -> list[_Token]:
    """``tokens`` without the calls ``offset(…)`` and what they hold."""
    kept: list[_Token] = []
    skipping, depth = False, 0
    for i, token in enumerate(tokens):
        if skipping:
            depth += token.is_op("(") - token.is_op(")")
            skipping = depth > 0
        elif token.text == "offset" and i + 1 < len(tokens) and tokens[i + 1].is_op("("):
            skipping, depth = True, 0
        else:
            kept.append(token)
    return kept


# ----------------------------------------------------------------------------- data checks
def _check_columns(parsed: _Parsed, data: pd.DataFrame) -> list[str]:
    """The columns the formula uses, in order; an unknown one is an error with suggestions."""
    names = [str(c) for c in data.columns]
    used: list[str] = []
    for token in parsed.columns:
        if token.column not in names:
            close = difflib.get_close_matches(token.column, names, n=3)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            shown = ", ".join(names[:30]) + (", …" if len(names) > 30 else "")
            raise DataError(f"the formula names column {token.column!r}, which is not in the "
                            f"data{hint}; the columns are: {shown}")
        if token.column not in used:
            unique_columns(names, [token.column])
            used.append(token.column)
    return used


def _handle_missing(data: pd.DataFrame, used: list[str],
                    missing: str) -> tuple[pd.DataFrame, IntArray, int, tuple[str, ...]]:
    """Rows without missing values in ``used``, their positions, and how many were dropped."""
    table = data[used]
    incomplete = table.isna().to_numpy().any(axis=1)
    n_bad = int(incomplete.sum())
    rows = np.flatnonzero(~incomplete)
    if n_bad == 0:
        return table.reset_index(drop=True), rows, 0, ()
    per_column = ", ".join(f"{c}: {int(k)}" for c, k in table.isna().sum().items() if k)
    if missing == "refuse":
        first = int(np.flatnonzero(incomplete)[0])
        empty = ", ".join(repr(c) for c in used if pd.isna(table[c].iloc[first]))
        raise DataError(
            f"{row_number(int(first))}: {empty} missing; {n_bad} of {len(table)} rows have "
            f'missing values ({per_column}); pass missing="drop" (CLI --drop-missing) to drop '
            "those rows"
        )
    if n_bad == len(table):
        raise DataError(f"every row has a missing value ({per_column}); nothing is left to fit")
    note = f"dropped {n_bad} of {len(table)} rows with missing values ({per_column})"
    return table[~incomplete].reset_index(drop=True), rows, n_bad, (note,)


def _first_bad(bad: np.ndarray) -> int | None:
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _check_counts(values: FloatArray, rows: IntArray, what: str, *, minimum: float) -> None:
    """Whole numbers ≥ ``minimum``; ``what`` names the column in the message."""
    i = _first_bad((values < minimum) | (values != np.round(values)))
    if i is not None:
        raise DataError(f"{row_number(int(rows[i]))}: {what} is {values[i]:g}; it must be a "
                        f"whole number ≥ {minimum:g}")


def _check_finite(values: np.ndarray, rows: IntArray, names: tuple[str, ...], what: str) -> None:
    values = values.reshape(len(rows), -1)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{row_number(int(rows[i]))}: {what} {names[j]!r} is {values[i, j]}; "
                        "check the transformation's domain (e.g. log needs positive values)")
    large = np.abs(values) > LARGEST
    if large.any():
        i, j = np.argwhere(large)[0]
        raise DataError(f"{row_number(int(rows[i]))}: {what} {names[j]!r} is "
                        f"{values[i, j]:g}; poolwise squares such values, so they must be "
                        f"within ±{LARGEST:g}: rescale the column (other units)")


def _response(data: pd.DataFrame, parsed: _Parsed, family: str, rows: IntArray) -> None:
    """Refuse a non-numeric response column before formulae turns it into indicators."""
    name = parsed.response.strip("`")
    if name not in data.columns or pd.api.types.is_bool_dtype(data[name]):
        return
    series = data[name]
    if not pd.api.types.is_numeric_dtype(series):
        # the first value that reads as no number, else the first that is text of one
        unread = (pd.to_numeric(series, errors="coerce").isna() & series.notna()).to_numpy()
        text = series.map(lambda v: not isinstance(v, int | float | np.number)).to_numpy()
        if not text.any():  # numbers, held as Python objects
            return
        i = int(np.flatnonzero(unread if unread.any() else text)[0])
        raise DataError(f"{row_number(int(rows[i]))}: response {name!r} has {series.iloc[i]!r}; a "
                        f"{family} response must be numeric")


def _read_predictors(formula: str, data: pd.DataFrame, rows: IntArray) -> pd.DataFrame:
    """``data`` with its covariates checked: a column of numbers and text (``1, 2, two``),
    which formulae would silently read as categories, one coefficient per spelling, is
    refused unless written ``C(x)`` (or mostly text), and then read as its text. A column of
    text only is categorical as it is."""
    columns = formula_columns(formula)
    factors = {c for factor in columns.factors for c in factor}
    categorical = set(re.findall(r"\bC\(\s*`?([^`,)]+?)`?\s*[,)]", formula))
    for name in dict.fromkeys(columns.covariates):
        if name in factors or name not in data.columns:
            continue
        series = data[name]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        numbers = pd.to_numeric(series, errors="coerce").notna().to_numpy()
        present = series.notna().to_numpy()
        if not (numbers & present).any() or not (present & ~numbers).any():
            continue
        if name not in categorical and (found := numbers_and_text(name, series)) is not None:
            raise DataError(f"{row_number(int(rows[found[0]]))}: {found[1]}")
        data = data.assign(**{name: series.astype(str)})  # categories, as their text
    return data


def numbers_and_text(name: str, values: pd.Series) -> tuple[int, str] | None:
    """Where ``values`` (a column's rows, or its distinct values) are mostly numbers and
    some text (``1, 2, two``): the position of the first text and the message; else None."""
    numbers = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    present = values.notna().to_numpy()
    if not numbers.any() or not (present & ~numbers).any() or 2 * numbers.sum() < present.sum():
        return None
    i = int(np.flatnonzero(present & ~numbers)[0])
    return i, (f"column {name!r} holds numbers and text ({values.iloc[i]!r}); as a number, "
               f"correct that value; as categories, write C({name}) in the formula")


def _check_family(y: FloatArray, trials: FloatArray | None, family: str, response: str,
                  rows: IntArray) -> None:
    what = f"response {response!r}"
    if family in ("poisson", "negbinomial"):
        name = "Poisson" if family == "poisson" else "negative binomial"
        _check_counts(y, rows, f"{what} (a {name} count)", minimum=0)
    elif family == "bernoulli":
        i = _first_bad((y != 0) & (y != 1))
        if i is not None:
            raise DataError(f"{row_number(int(rows[i]))}: {what} is {y[i]:g}; a bernoulli "
                            "response is 0 or 1 (use binomial with y | trials(n) ~ … for "
                            "counts out of n)")
    elif family == "binomial" and trials is not None:
        _check_counts(y, rows, what + " (binomial successes)", minimum=0)
        _check_counts(trials, rows, "trials", minimum=1)
        i = _first_bad(y > trials)
        if i is not None:
            raise DataError(f"{row_number(int(rows[i]))}: {what} is {y[i]:g} but trials is "
                            f"{trials[i]:g}; successes must not exceed trials")


# ----------------------------------------------------------------------------- formulae
def _formulae_namespace() -> object:
    """The only names formulae may resolve besides columns (its own transforms C, center,
    scale, poly and offset come first)."""
    from formulae.environment import Environment
    from formulae.transforms import Center

    return Environment([{"log": np.log, "log1p": np.log1p, "exp": np.exp, "sqrt": np.sqrt,
                         "centre": Center}])


def _design_matrices(text: str, data: pd.DataFrame, where: str) -> Any:
    """formulae's design for ``text``, with its errors and numerical warnings made ours."""
    import formulae

    try:
        with np.errstate(all="ignore"):
            return formulae.design_matrices(text, data, na_action="error",
                                            env=_formulae_namespace())
    except Exception as err:  # formulae raises bare ValueError, TypeError, ParseError, …
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecificationError(f"cannot evaluate {where} {text!r}: {first}") from None


def _matrix(common: Any, n_rows: int) -> tuple[FloatArray, tuple[str, ...], FloatArray | None]:
    """Columns, their names and the offset (if any) of a formulae common-effects matrix."""
    if common is None:  # y ~ 0
        return np.zeros((n_rows, 0)), (), None
    matrix = np.asarray(common.design_matrix, dtype=float)
    keep: list[int] = []
    names: list[str] = []
    offsets: list[FloatArray] = []
    for name, columns in common.slices.items():
        term = common.terms[name]
        if getattr(term, "kind", None) == "offset":
            offsets.append(matrix[:, columns].ravel())
        else:
            if columns.stop == columns.start:
                raise DataError(f"the term {name!r} takes one value in every row, so it has no "
                                "effect to estimate; a factor needs at least 2 levels — remove "
                                "it from the formula")
            keep.extend(range(columns.start, columns.stop))
            names.extend(term.labels)
    return matrix[:, keep], tuple(names), offsets[0] if offsets else None


def _levels(table: pd.DataFrame, factor: tuple[str, ...]) -> tuple[IntArray, tuple[str, ...]]:
    """Level of every row and the sorted level labels ("A:a" for an interaction)."""
    codes, uniques = [], []
    for column in factor:
        code, unique = pd.factorize(table[column], sort=True)
        codes.append(code)
        uniques.append([str(u) for u in unique])
    combos, index = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    labels = tuple(":".join(uniques[k][c] for k, c in enumerate(combo)) for combo in combos)
    return index.ravel().astype(np.intp), labels


def _group_terms(bar_terms: tuple[_BarTerm, ...], table: pd.DataFrame,
                 rows: IntArray, *, new_rows: bool = False
                 ) -> tuple[tuple[GroupTerm, ...], tuple[str, ...]]:
    """One GroupTerm per grouping factor; several terms of one factor merged, uncorrelated."""
    parts: dict[tuple[str, ...], list[tuple[_BarTerm, FloatArray, tuple[str, ...]]]] = {}
    notes: list[str] = []
    for bar in bar_terms:
        where = f"the group-term expression in ({bar.expr} {'|' if bar.correlated else '||'} …)"
        z, names, _ = _matrix(_design_matrices(bar.expr, table, where).common,
                                    len(table))
        if not names:
            raise SpecificationError(f"group term ({bar.expr} | …) has no effects; write e.g. "
                                     "(1 | g)")
        _check_finite(z, rows, names, "group-term column")
        for factor in bar.factors:
            parts.setdefault(factor, []).append((bar, z, names))
        if len(bar.factors) > 1:
            expanded = " + ".join(f"({bar.expr} | {':'.join(f)})" for f in bar.factors)
            notes.append(f"nested ({bar.expr} | {'/'.join(f[-1] for f in bar.factors)}) "
                         f"means {expanded}")
    terms: list[GroupTerm] = []
    for factor, pieces in parts.items():
        label = ":".join(factor)
        index, levels = _levels(table, factor)
        if len(levels) < 2 and not new_rows:
            raise DataError(f"grouping factor {label!r} has one level ({levels[0]!r}); a group "
                            "term needs at least 2 levels")
        names = tuple(n for _, _, piece_names in pieces for n in piece_names)
        if len(set(names)) < len(names):
            raise SpecificationError(f"grouping factor {label!r} has the effect(s) "
                                     f"{sorted({n for n in names if names.count(n) > 1})} in "
                                     "more than one group term; list each effect once")
        if len(pieces) > 1 and any(b.correlated and len(n) > 1 for b, _, n in pieces):
            raise SpecificationError(
                f"grouping factor {label!r} appears in several group terms, one of them "
                "correlated; write one term, (x + z | g) for correlated effects or "
                "(x + z || g) for uncorrelated ones"
            )
        correlated = pieces[0][0].correlated and len(pieces) == 1 and len(names) > 1
        z = np.hstack([piece_z for _, piece_z, _ in pieces])
        terms.append(GroupTerm(label, names, z, index, levels, correlated))
    return tuple(terms), tuple(notes)


# ----------------------------------------------------------------------------- public
def parse_formula(formula: str, data: pd.DataFrame, *, family: str = "normal",
                  missing: str = "refuse", new_rows: bool = False) -> MixedDesign:
    """The :class:`MixedDesign` of ``formula`` (lme4/brms syntax, see the module) on ``data``.

    ``family`` is a key of :data:`~poolwise.kinds.mixed.design.FAMILIES` (or the alias
    ``"gaussian"``). ``missing="refuse"`` refuses rows with missing values in the formula's
    columns; ``"drop"`` drops them and records how many in ``dropped_rows`` and ``notes``.
    The design records the columns read and the positions of the rows used (``columns``,
    ``rows``). ``new_rows=True`` reads rows to predict for: a single group level or too few
    rows to identify the coefficients is fine.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "x": [0, 1, 0, 1], "g": list("aabb")})
    >>> design = parse_formula("y ~ x + (1 | g)", table)
    >>> design.fixed_names, design.terms[0].label, design.terms[0].levels
    (('Intercept', 'x'), '(1 | g)', ('a', 'b'))
    """
    family = mixed_family(family)
    if missing not in MISSING_ACTIONS:
        raise SpecificationError(f"missing={missing!r}: use 'refuse' (the default) or 'drop'")
    if not isinstance(formula, str):
        raise SpecificationError(f"the formula must be text, not {type(formula).__name__}")
    parsed = _parse(formula)
    if data.empty:
        raise DataError("the table has no rows")
    used = _check_columns(parsed, data)
    table, rows, dropped, notes = _handle_missing(data, used, missing)
    _response(table, parsed, family, rows)
    table = _read_predictors(formula, table, rows)

    trials: FloatArray | None = None
    if parsed.trials is not None:
        if family not in ("binomial", "bernoulli"):
            raise SpecificationError(f"trials() is for the binomial family, not {family}")
        if parsed.trials.kind == "number":
            trials = np.full(len(table), float(parsed.trials.text))
        else:
            column = table[parsed.trials.column]
            if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
                raise DataError(f"trials column {parsed.trials.column!r} must hold whole "
                                f"numbers, not {column.dtype} values")
            trials = column.to_numpy(dtype=float)
        if family == "bernoulli" and not np.all(trials == 1):
            raise SpecificationError("bernoulli means one trial per row; use family binomial "
                                     "for y | trials(n) with n > 1")
    elif family == "binomial":
        raise SpecificationError("the binomial family needs the trials: write "
                                 "y | trials(n) ~ …, or use bernoulli for a 0/1 response")
    if family == "bernoulli":
        trials = np.ones(len(table))

    response_table = table.copy()
    if parsed.response in table.columns and pd.api.types.is_bool_dtype(table[parsed.response]):
        response_table[parsed.response] = table[parsed.response].astype(int)
    fixed = _design_matrices(f"{parsed.response} ~ {parsed.fixed}", response_table,
                             "the fixed part")
    if getattr(fixed.response, "kind", "numeric") == "categoric":
        raise DataError(f"response {parsed.response!r} is categorical; a {family} response "
                        "must be numeric")
    y = np.asarray(fixed.response.design_matrix, dtype=float).ravel()
    x, fixed_names, offset = _matrix(fixed.common, len(table))
    _check_finite(y, rows, (parsed.response,), "response")
    _check_finite(x, rows, fixed_names, "fixed-effect column")
    if offset is not None:
        _check_finite(offset, rows, ("offset",), "the")
    if trials is not None:
        _check_finite(trials, rows, ("trials",), "the")
    _check_family(y, trials, family, parsed.response, rows)
    if not new_rows:  # rows to predict for need not identify anything
        _check_full_rank(x, fixed_names)
    terms, term_notes = _group_terms(parsed.bar_terms, table, rows, new_rows=new_rows)
    return MixedDesign(formula, family, parsed.response, y, x, fixed_names, terms,
                       trials, offset, dropped, notes + term_notes, tuple(used), rows)


def _check_full_rank(x: FloatArray, names: tuple[str, ...]) -> None:
    """Refuse collinear fixed-effect columns, naming the first that the earlier ones span:
    its coefficient would not be identified (only the priors would tell it apart)."""
    for j in range(1, x.shape[1]):
        if _spanned(x[:, :j], x[:, [j]]):
            earlier = [names[i] for i in range(j) if np.any(x[:, i] != 0)]
            raise DataError(
                f"fixed-effect column {names[j]!r} is a linear combination of "
                f"{', '.join(earlier)} (collinear), so its coefficient cannot be estimated; "
                "remove it or one of those from the formula")


def _spanned(basis: FloatArray, columns: FloatArray) -> bool:
    """Whether every column of ``columns`` lies in the column space of ``basis``."""
    if basis.shape[1] == 0:
        return not np.any(columns)
    coef = np.linalg.lstsq(basis, columns, rcond=None)[0]
    residual = columns - basis @ coef
    scale = max(float(np.abs(columns).max()), 1.0)
    return bool(np.abs(residual).max() <= 1e-8 * scale * np.sqrt(basis.shape[0]))


def _per_level(term: GroupTerm) -> FloatArray:
    """One column per (level l, effect e): z_e(i) · 1[level(i) = l], level-major."""
    n_rows = term.z.shape[0]
    columns = np.zeros((n_rows, term.n_levels, term.n_effects))
    columns[np.arange(n_rows), term.index, :] = term.z
    return columns.reshape(n_rows, -1)


def pooling_design(design: MixedDesign, pooling: str) -> MixedDesign:
    """The design for a pooling level: ``partial`` (the formula), ``complete`` (no group
    terms) or ``none`` (every group term as fixed effects).

    Under ``none`` each term's effects become one fixed column per (level, effect), named
    ``Days[308]`` (``Days|Subject[308]`` when there are several terms). Terms are taken from
    the most levels to the fewest; a term whose columns the earlier ones span (the outer
    factor of a nested pair) is left out, and so is every fixed column they span (the
    intercept, ``Days``, or a group-level predictor such as county uranium), each with a note.
    If X is still rank-deficient (crossed factors) the design is refused.
    """
    if pooling not in POOLINGS:
        raise SpecificationError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
    if pooling == "partial":
        return design
    if pooling == "complete" or not design.terms:
        return design.without_group_terms()
    design.needs_rows("no pooling (each level's effects as fixed columns)")
    notes = list(design.notes)
    kept: list[tuple[GroupTerm, FloatArray]] = []
    for term in sorted(design.terms, key=lambda t: -t.n_levels):
        columns = _per_level(term)
        if kept and _spanned(np.hstack([c for _, c in kept]), columns):
            notes.append(f"no pooling: {term.label} left out, its per-level columns are "
                         f"spanned by those of {', '.join(t.factor for t, _ in kept)}")
            continue
        kept.append((term, columns))
    factors = ", ".join(t.factor for t, _ in kept)
    per_level = np.hstack([c for _, c in kept])
    keep = [j for j in range(design.x.shape[1]) if not _spanned(per_level, design.x[:, [j]])]
    dropped = [design.fixed_names[j] for j in range(design.x.shape[1]) if j not in keep]
    if dropped:
        notes.append(f"no pooling: fixed column(s) {', '.join(dropped)} left out, spanned by "
                     f"the per-level columns of {factors}")
    x = np.hstack([per_level, design.x[:, keep]])
    rank = int(np.linalg.matrix_rank(x))
    if rank < x.shape[1]:
        short = [f"{t.factor} {level!r}" for t, _ in kept for k, level in enumerate(t.levels)
                 if np.linalg.matrix_rank(t.z[t.index == k]) < t.n_effects]
        why = (f"levels whose rows cannot identify all their effects: {', '.join(short[:5])}"
               + (f" and {len(short) - 5} more" if len(short) > 5 else "") if short
               else "the grouping factors are crossed")
        raise SpecificationError(
            f"no pooling of {' and '.join(t.label for t in design.terms)} gives {x.shape[1]} "
            f"fixed columns of rank {rank} ({why}); use partial pooling, or a formula whose "
            "group terms every level can identify"
        )
    qualify = len(kept) > 1
    names = [f"{e}{f'|{t.factor}' if qualify else ''}[{level}]"
             for t, _ in kept for level in t.levels for e in t.names]
    return replace(design, x=x, terms=(), notes=tuple(notes),
                   fixed_names=tuple(names) + tuple(design.fixed_names[j] for j in keep))


__all__ = ["ALLOWED_FUNCTIONS", "MISSING_ACTIONS", "POOLINGS", "FormulaColumns",
           "formula_columns", "parse_formula", "pooling_design"]
