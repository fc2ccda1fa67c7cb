"""The answers analysts come for: which group is best and how sure, and hypotheses.

Written once for every kind, on the posterior draws of a fit.

Ranks (:func:`ranks`). At each draw s the groups' parameters θ_1..θ_G are ranked, 1 the
best (the highest with ``higher=True``); the posterior of group j's rank is the
distribution of r_j over the draws, summarised by its mean and equal-tailed interval, and

    P(j is best) = (1/S) Σ_s 1[r_js = 1],   P(j is worst) = (1/S) Σ_s 1[r_js = G]

(Laird and Louis 1989; the "rank" summaries of BDA3 §2.7 and of brms/bayesplot).

The draws are streamed, never a draws × groups matrix of θ: the fit gives every group's
value at a block of draws (:meth:`Fit.draw_source <poolwise.results.fit.Fit.draw_source>`:
slices of stored draws, or, for a conjugate fit that keeps none, θ drawn from its
conditionals at those draws), the block is ranked and its ranks kept in an int32 buffer
(draws used × groups, 4 bytes each), from which the mean, the interval (its exact sample
quantiles: a streaming quantile sketch would save the buffer but not be exact, and the
buffer is bounded by the number of draws used) and P(best), P(worst) are taken, a chunk of
groups at a time. Up to :data:`RANK_LIMIT` draws × groups every draw is used; beyond, evenly
spaced draws, as many as that limit allows (at least :data:`RANK_MIN_DRAWS`). Each figure
carries its Monte Carlo standard error: sd/√S for independent draws, and for Markov chains
the non-overlapping batch means estimate with ⌊√S⌋ batches (Flegal and Jones 2010), and the
table says how many draws it used (``rank_draws``).

Hypotheses (:func:`hypothesis`). An expression such as ``theta[S28] - theta[S37] > 0`` or
``b[Days] > 5``: its left-hand side is computed at every draw and summarised (mean, sd,
interval), and with a comparison the posterior probability that it holds is the fraction of
draws where it does. Parameters are named as the summary names them — ``name`` or
``name[label]``, labels of several dimensions separated by commas (``r_Subject[308, Days]``)
— and the rest may use numbers, ``+ - * / **``, parentheses and the functions of
:data:`FUNCTIONS`. The expression is parsed by :mod:`ast` and evaluated by walking the
tree over a whitelist of node types: no name, attribute or call outside it exists, so
nothing in an expression can run code.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.resources import HEADROOM, MemoryEstimate, available_memory, check_memory
from poolwise.results.summary import check_prob, quantile_interval

if TYPE_CHECKING:
    from poolwise.results.fit import Fit

__all__ = ["FUNCTIONS", "RANK_BLOCK", "RANK_COLUMNS", "RANK_LIMIT", "RANK_MIN_DRAWS",
           "DrawSource", "GroupDraws", "check_hypothesis", "check_ranks", "group_draws",
           "hypothesis", "pairwise", "ranks", "stored_source"]

#: draws × groups up to which every draw is ranked (beyond: evenly spaced draws); ranking
#: costs 130-350 ns a value on one core with θ drawn anew (argsort and a beta draw about
#: half each; measured at 10^5 and 10^6 groups, 2026-12-05), so 3-7 s at the limit,
#: whatever the number of groups: 20 draws of 10^6 groups, all 4,000 of 5,000
RANK_LIMIT = 20_000_000
#: draws ranked at least, however many groups there are (for a standard error)
RANK_MIN_DRAWS = 4
#: values (draws × groups) in memory at once while ranking: a block of draws, or a chunk of
#: groups of the rank buffer while it is summarised
RANK_BLOCK = 4_000_000
#: bytes a value of a block takes while it is ranked: θ, its negation, its order (8 each)
_BLOCK_BYTES = 24
#: the columns :func:`ranks` adds to a summary
RANK_COLUMNS = ["rank_mean", "rank_mean_mcse", "rank_lower", "rank_upper", "p_best",
                "p_best_mcse", "p_worst", "rank_draws"]
#: the functions a hypothesis may call
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "expit":
    lambda x: 1.0 / (1.0 + np.exp(-x)), "logit": lambda p: np.log(p) - np.log1p(-p)}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le}
#: a parameter as the summary writes it: name, or name[labels], where a label may hold
#: one pair of brackets itself (a factor's level: b[group[2]])
_PARAMETER = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?:\[((?:[^\[\]]|\[[^\[\]]*\])*)\])?")


@dataclass(frozen=True)
class GroupDraws:
    """One parameter's draws for every group: ``draws`` (S, G), ``labels`` (G,)."""

    name: str
    labels: NDArray[np.str_]
    draws: NDArray[np.float64]


@dataclass(frozen=True)
class DrawSource:
    """A per-group parameter at any of a fit's posterior draws, without a draws × groups
    matrix: ``at(indices)`` gives the values (len(indices), G) of all G groups at those
    draws (increasing indices into the chain-major flattening of (chain, draw), of which
    there are ``draws``); ``columns(groups)`` the values (draws, len(groups)) of the groups
    at those indices at every draw; ``mean`` (G,) is each group's posterior mean."""

    name: str
    labels: NDArray[np.str_]
    mean: NDArray[np.float64]
    draws: int
    at: Callable[[NDArray[np.intp]], NDArray[np.float64]]
    columns: Callable[[NDArray[np.intp]], NDArray[np.float64]]


def stored_source(fit: Fit, parameter: str | None = None) -> DrawSource:
    """The draws a fit stores (:func:`group_draws`), sliced."""
    found = group_draws(fit, parameter)
    values = found.draws
    return DrawSource(found.name, found.labels, values.mean(axis=0), values.shape[0],
                      lambda index: values[index], lambda groups: values[:, groups])


def _parameter(fit: Fit, name: str) -> tuple[NDArray, list[str], Any]:
    """The draws (S, ...) of the posterior variable ``name``, its dimensions after (chain,
    draw), and the variable."""
    posterior = fit.posterior
    if name not in posterior:
        valid = ", ".join(str(v) for v in posterior.data_vars)
        raise SpecificationError(f"no parameter {name!r} in the posterior; it has {valid}")
    variable = posterior[name]
    extra = [str(d) for d in variable.dims if d not in ("chain", "draw")]
    values = np.asarray(variable.transpose("chain", "draw", *extra).values, dtype=float)
    return values.reshape(-1, *values.shape[2:]), extra, variable


def _labels(variable: Any, dim: str) -> list[str]:
    return [str(v) for v in np.asarray(variable[dim].values)] if dim in variable.coords \
        else [str(i) for i in range(variable.sizes[dim])]


def group_draws(fit: Fit, parameter: str | None = None) -> GroupDraws:
    """The draws of a per-group parameter, (S, G) with the group labels.

    ``parameter`` is named as in the summary, ``"theta"`` or ``"r_Subject[Days]"`` (the
    labels of dimensions other than the group's in brackets); by default the first
    per-group variable of the posterior (θ; a mixed model's first group effect).
    """
    posterior = fit.posterior
    groups = fit.group_dims
    if parameter is None:
        parameter = next((str(name) for name in posterior.data_vars
                          if any(d in groups for d in posterior[name].dims)), None)
        if parameter is None:
            raise SpecificationError(f"a {fit.kind} fit has no per-group parameter to rank")
    match = _PARAMETER.fullmatch(parameter.strip())
    if match is None:
        raise SpecificationError(f"cannot read the parameter {parameter!r}; write it as the "
                                 "summary does, e.g. 'theta' or 'r_Subject[Intercept]'")
    name, inside = match.group(1), match.group(2)
    values, extra, variable = _parameter(fit, name)
    group_dims = [d for d in extra if d in groups]
    if len(group_dims) != 1:
        raise SpecificationError(f"{name!r} is not a per-group parameter (its dimensions: "
                                 f"{', '.join(extra) or 'none'})")
    others = [d for d in extra if d not in groups]
    wanted = [part.strip() for part in inside.split(",")] if inside else []
    if not wanted:  # the first label of every other dimension (a mixed model's Intercept)
        wanted = [_labels(variable, d)[0] for d in others]
    if len(wanted) != len(others):
        raise SpecificationError(
            f"{name} needs {len(others)} label(s) in brackets for "
            f"{', '.join(others) or 'no other dimension'}, got {inside!r}")
    index: list[Any] = []
    for dim in extra:
        if dim in groups:
            index.append(slice(None))
            continue
        label, options = wanted[others.index(dim)], _labels(variable, dim)
        if label not in options:
            raise SpecificationError(f"{name}: no {dim} {label!r}; valid: {', '.join(options)}")
        index.append(options.index(label))
    chosen = values[(slice(None), *index)]
    shown = f"{name}[{', '.join(wanted)}]" if wanted else name
    labels = np.asarray(_labels(variable, group_dims[0]), dtype=str)
    if np.all(np.ptp(chosen, axis=1) == 0) and labels.size > 1:
        raise SpecificationError(f"{shown} is the same in every group (complete pooling?): "
                                 "there is nothing to rank")
    return GroupDraws(shown, labels, chosen)


def check_ranks(higher: bool, parameter: str | None, ci_prob: float, draws: int | None
                ) -> None:
    """Refuse options of :func:`ranks` that cannot be answered."""
    check_prob(ci_prob)
    if not isinstance(higher, bool):
        raise SpecificationError(f"higher must be True or False, got {higher!r}")
    if parameter is not None and not isinstance(parameter, str):
        raise SpecificationError(f"parameter is a name such as 'theta', got {parameter!r}")
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int)
                              or draws < 1):
        raise SpecificationError(f"draws must be a whole number ≥ 1, got {draws!r}")


def ranks(fit: Fit, *, higher: bool = True, parameter: str | None = None,
          ci_prob: float = 0.95, draws: int | None = None) -> pd.DataFrame:
    """Each group's posterior rank (1 the best: the highest with ``higher=True``, the
    lowest otherwise) — mean and equal-tailed interval — and P(best), P(worst), with the
    Monte Carlo standard errors of the mean rank and P(best) and the number of draws used;
    one row per group, labelled, in the groups' order (module docstring).

    ``draws``: how many posterior draws to rank, evenly spaced (default: every draw up to
    :data:`RANK_LIMIT` draws × groups). Ties, which have probability zero for continuous
    parameters, are broken in no particular order.
    """
    check_ranks(higher, parameter, ci_prob, draws)
    source = fit.draw_source(parameter)
    groups = source.labels.size
    used = min(source.draws, max(RANK_MIN_DRAWS, RANK_LIMIT // max(groups, 1))
               if draws is None else draws)
    _check_rank_memory(used, groups)
    chosen = np.arange(used, dtype=np.intp) * source.draws // used  # evenly spaced
    rank = np.empty((used, groups), dtype=np.int32)
    step = max(1, RANK_BLOCK // max(groups, 1))
    for start in range(0, used, step):
        values = source.at(chosen[start:start + step])
        order = np.argsort(-values if higher else values, axis=1)
        rows = np.arange(start, start + values.shape[0])[:, None]
        rank[rows, order] = np.arange(1, groups + 1, dtype=np.int32)
    return pd.DataFrame({"param": source.name, "group": source.labels, "mean": source.mean,
                         **_rank_statistics(rank, ci_prob, independent=not fit.is_mcmc,
                                            fraction=fit.effective_fraction),
                         "rank_draws": used})


def _rank_statistics(rank: NDArray[np.int32], ci_prob: float, *, independent: bool,
                     fraction: float | None = None) -> dict[str, NDArray[np.float64]]:
    """The rank columns but ``rank_draws`` from the ranks (draws, groups), a chunk of
    groups at a time (:data:`RANK_BLOCK` values); ``fraction``: resampled weighted draws'
    effective size per draw (:attr:`~poolwise.results.fit.Fit.effective_fraction`)."""
    used, groups = rank.shape
    out = {name: np.empty(groups) for name in RANK_COLUMNS[:-1]}
    width = max(1, RANK_BLOCK // used)
    for start in range(0, groups, width):
        part = slice(start, start + width)
        values = rank[:, part].astype(float)
        best = (rank[:, part] == 1).astype(float)
        out["rank_mean"][part] = values.mean(axis=0)
        out["rank_mean_mcse"][part] = _mcse(values, independent, fraction)
        out["rank_lower"][part], out["rank_upper"][part] = quantile_interval(values, ci_prob)
        out["p_best"][part] = best.mean(axis=0)
        out["p_best_mcse"][part] = _mcse(best, independent, fraction)
        out["p_worst"][part] = np.mean(rank[:, part] == groups, axis=0)
    return out


def _mcse(values: NDArray[np.float64], independent: bool,
          fraction: float | None = None) -> NDArray[np.float64]:
    """The Monte Carlo standard error of the column means of ``values`` (draws, columns):
    sd/√S for independent draws, sd/√(fraction × S) for resampled weighted draws; for
    Markov chains sd(batch means)/√b over b = ⌊√S⌋ non-overlapping batches of ⌊S/b⌋ draws
    (Flegal and Jones 2010, Ann. Statist. 38). NaN where there are too few draws for it
    (S < 2, or b < 2)."""
    size = values.shape[0]
    if independent:
        if size < 2:
            return np.full(values.shape[1], np.nan)
        effective = size * (1.0 if fraction is None else min(fraction, 1.0))
        return np.asarray(values.std(axis=0, ddof=1) / math.sqrt(effective), dtype=float)
    batches = math.isqrt(size)
    if batches < 2:
        return np.full(values.shape[1], np.nan)
    length = size // batches
    means = values[:batches * length].reshape(batches, length, -1).mean(axis=1)
    return np.asarray(means.std(axis=0, ddof=1) / math.sqrt(batches), dtype=float)


def _check_rank_memory(used: int, groups: int) -> None:
    """Refuse, with the number of draws that would fit, ranks whose buffer (draws ×
    groups int32), block of draws and chunk of statistics do not fit in memory
    (:func:`poolwise.resources.check_memory`)."""
    working = (min(used, max(1, RANK_BLOCK // max(groups, 1))) * groups * _BLOCK_BYTES
               + 4 * RANK_BLOCK * 8)  # a block's θ; a chunk's ranks, indicators, quantiles
    estimate = MemoryEstimate((("the ranks at every draw used", used * groups * 4),
                               ("a block of draws", working)))
    fewer = int((HEADROOM * available_memory() - working) // (4 * max(groups, 1)))
    alternatives = ([f"fewer draws: --rank-draws {fewer} (ranks(draws={fewer}))"]
                    if 1 <= fewer < used else [])
    check_memory(estimate, what=f"ranking {groups:,} groups at {used:,} draws",
                 alternatives=alternatives)


def pairwise(fit: Fit, groups: Sequence[str], *, parameter: str | None = None
             ) -> pd.DataFrame:
    """P(θ_i > θ_j) for the chosen groups: row i, column j (the diagonal empty)."""
    source = fit.draw_source(parameter)
    from poolwise.results.prediction import find_label

    chosen = [str(g) for g in groups]
    if len(chosen) < 2:
        raise SpecificationError("name at least two groups to compare")
    index = np.array([find_label(source.labels, g, "group") for g in chosen], dtype=np.intp)
    values = source.columns(index)
    table = np.mean(values[:, :, None] > values[:, None, :], axis=0)
    np.fill_diagonal(table, np.nan)
    return pd.DataFrame(table, index=pd.Index(chosen, name=f"P({source.name} of row > column)"),
                        columns=chosen)


def hypothesis(fit: Fit, expression: str, *, ci_prob: float = 0.95) -> dict[str, Any]:
    """The posterior of an expression's left-hand side, and the probability of the
    comparison (module docstring): ``expression``, ``mean``, ``sd``, ``lower``, ``upper``
    and ``probability`` (None without a comparison)."""
    check_prob(ci_prob)
    left, comparison = _evaluated(expression, lambda name, inside: _value(fit, name, inside))
    left = np.broadcast_to(np.asarray(left, dtype=float),
                           (fit.config.chains * fit.config.draws,))
    lower, upper = quantile_interval(left, ci_prob)
    probability = None
    if comparison is not None:
        probability = float(np.mean(comparison[0](left, comparison[1])))
    return {"expression": expression, "mean": float(np.mean(left)),
            "sd": float(np.std(left, ddof=1)) if left.size > 1 else float("nan"),
            "lower": float(lower), "upper": float(upper), "probability": probability}


def check_hypothesis(expression: str) -> None:
    """Refuse an expression that cannot be read, before anything is fitted (its parameter
    names are checked against the fit's when it is answered): every parameter stands in as
    a number and the expression is evaluated over the same whitelist."""
    with np.errstate(all="ignore"):
        _evaluated(expression, lambda name, inside: np.full(1, 0.5))


def _evaluated(expression: str, value: Callable[[str, str | None], NDArray]
               ) -> tuple[Any, tuple[Callable[[Any, Any], Any], Any] | None]:
    """The left-hand side's value, and the comparison (its operator and right-hand value)
    or None; each parameter's draws come from ``value(name, labels)``."""
    if not isinstance(expression, str) or not expression.strip():
        raise SpecificationError("a hypothesis is an expression such as 'b[Days] > 5'")
    names: dict[str, NDArray] = {}

    def placeholder(match: re.Match[str]) -> str:
        name, inside = match.group(1), match.group(2)
        if inside is None and name in FUNCTIONS:
            return name
        key = f"_p{len(names)}"
        names[key] = value(name, inside)
        return key

    text = _PARAMETER.sub(placeholder, expression)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise SpecificationError(f"cannot read the hypothesis {expression!r}; write e.g. "
                                 "'theta[A] - theta[B] > 0' or 'b[Days] > 5'") from None
    body = tree.body
    comparison = None
    if isinstance(body, ast.Compare):
        if len(body.ops) != 1 or type(body.ops[0]) not in _COMPARE:
            raise SpecificationError(f"{expression!r}: one comparison, >, >=, < or <=")
        comparison = (_COMPARE[type(body.ops[0])], _evaluate(body.comparators[0], names,
                                                              expression))
        body = body.left
    return _evaluate(body, names, expression), comparison


def _value(fit: Fit, name: str, inside: str | None) -> NDArray:
    """The draws (S,) of one scalar named as in the summary (a group's parameter that the
    fit does not store, such as θ past the size limit, drawn for that group alone)."""
    stored = "posterior" in fit.tree.children and name in fit.tree["posterior"]
    if not stored and inside is not None:
        try:
            source = fit.draw_source(name)
        except SpecificationError:
            source = None
        if source is not None and source.name == name:
            from poolwise.results.prediction import find_label

            group = find_label(source.labels, inside.strip(), "group")
            return np.asarray(source.columns(np.array([group], dtype=np.intp))[:, 0],
                              dtype=float)
    values, extra, variable = _parameter(fit, name)
    wanted = [part.strip() for part in inside.split(",")] if inside else []
    if len(wanted) != len(extra):
        example = f"{name}[{', '.join(_labels(variable, d)[0] for d in extra)}]" if extra \
            else name
        raise SpecificationError(
            f"{name} has {len(extra)} dimension(s) ({', '.join(extra) or 'a single number'}): "
            f"name one value, e.g. {example}")
    index: list[Any] = []
    for dim, label in zip(extra, wanted, strict=True):
        options = _labels(variable, dim)
        if label not in options:
            shown = ", ".join(options[:8]) + (" …" if len(options) > 8 else "")
            raise SpecificationError(f"{name}: no {dim} {label!r}; valid: {shown}")
        index.append(options.index(label))
    return np.asarray(values[(slice(None), *index)], dtype=float)


def _evaluate(node: ast.AST, names: dict[str, NDArray], expression: str) -> Any:
    """The value of an expression tree made only of the whitelisted nodes."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, names, expression),
                                      _evaluate(node.right, names, expression))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, names, expression)
        return -value if isinstance(node.op, ast.USub) else value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS and len(node.args) == 1 and not node.keywords):
        with np.errstate(all="ignore"):
            return FUNCTIONS[node.func.id](_evaluate(node.args[0], names, expression))
    raise SpecificationError(
        f"{expression!r}: only parameters, numbers, + - * / **, parentheses, one comparison "
        f"and the functions {', '.join(FUNCTIONS)} are allowed")
