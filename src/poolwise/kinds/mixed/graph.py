r"""Graphical models and equations of mixed models, in the lecture notes' conventions.

:func:`mixed_graph` builds the backend-free :class:`~poolwise.results.graph.ModelGraph` of a
:class:`~poolwise.kinds.mixed.model.MixedModel` on its prepared data (draw it with
:func:`poolwise.outputs.render.render`), and :func:`mixed_equations` writes the same model
as LaTeX lines; ``model.graph(data)`` and ``model.equations(data)`` call them.

The drawing: the response y_i is observed (shaded) in the plate of observations
``i = 1, …, N``, with the covariates x_i (and the binomial trials n_i or the offset o_i) as
fixed dots beside it. The fixed coefficients β are one latent node (a vector), with the
constants of their Normal priors as dots, labelled with their values when there are at most
three coefficients (else ``m_β``, ``s_β``); σ (normal) or φ (negbinomial) is latent. Each
grouping factor f has its group effects b_f in a plate over its levels, labelled with the
factor's name (``Subject: l = 1, …, 18``), and above the plate one sd τ per effect and, for
a correlated term with several effects, the correlation matrix Ω_f (LKJ prior), each with
its prior's constants. A factor whose every level lies within one level of another factor
(``school`` and ``school:classroom`` from ``(1 | school/classroom)``, or any factor nested
in another in the data) has its plate inside that factor's plate; crossed factors have
separate plates. Each plate has its own index letter (l, m, k, …), the same in the
equations, and runs over all the factor's levels (``cask in batch: m = 1, …, 30`` for
``(1 | batch/cask)``).

Complete pooling has no group terms: β, σ and the data. No pooling draws the per-level
coefficients (``Intercept[308]``, ``Days[308]``, …) as one node β_{f,l} in a plate over the
levels of f, beside the shared coefficients β that are left (if any); the constants of
their priors are dots outside the plate with their values when every level has the same
prior (else symbolic dots ``m_{β,l}``, ``s_{β,l}`` inside the plate).

Node names follow the posterior's variable names: ``y``, ``x``, ``n`` (trials),
``offset``, ``b`` (fixed coefficients), ``sigma`` or ``phi``, ``r_<factor>`` (group effects),
``sd_<factor>[<effect>]``, ``cor_<factor>``, ``b[<factor>]`` (no pooling's per-level
coefficients); a prior's constants are ``<node>_<parameter>`` (``b_mu``, ``b_sigma``,
``sigma_scale``, ``sd_Subject[Days]_scale``, ``cor_Subject_eta``).

>>> import poolwise
>>> model = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)")
>>> data = model.prepare(poolwise.datasets.load("sleepstudy"))
>>> graph = mixed_graph(model, data)
>>> graph.parents("r_Subject")
('sd_Subject[Intercept]', 'sd_Subject[Days]', 'cor_Subject')
>>> print(*(plate.label for plate in graph.plates), sep="\n")
$i = 1, \ldots, 180$
Subject: $l = 1, \ldots, 18$
>>> print(*mixed_equations(model, data)[:2], sep="\n")  # doctest: +NORMALIZE_WHITESPACE
y_i \sim \mathrm{N}(\mu_i, \sigma^2), \quad i = 1, \ldots, 180
\mu_i = \beta_0 + \beta_1 \mathrm{Days}_i
    + b_{0,\mathrm{Subject}[i]} + b_{1,\mathrm{Subject}[i]} \mathrm{Days}_i
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from poolwise.exceptions import SpecificationError
from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
from poolwise.kinds.mixed.formula import _tokenize
from poolwise.kinds.mixed.model import MixedData, MixedModel
from poolwise.kinds.mixed.priors import INTERCEPT, MixedPriors
from poolwise.priors import Distribution
from poolwise.results.graph import GraphNode, ModelGraph, NodeKind, Plate, latex
from poolwise.vocabulary import POOLING_PHRASES

__all__ = ["mixed_equations", "mixed_graph"]

#: the index letter of each grouping factor's plate, in the order of the terms
INDEX_LETTERS = ("l", "m", "k", "p", "q", "r", "s", "t", "u", "v", "w")
#: at most this many coefficients' prior constants are written out on a dot
COMPACT_VALUES = 3
#: the likelihood and the link's left-hand side of each family
_LIKELIHOODS = {
    "normal": (r"\mathrm{N}(\mu_i, \sigma^2)", r"\mu_i"),
    "binomial": (r"\mathrm{Binomial}(n_i, p_i)", r"\mathrm{logit}(p_i)"),
    "bernoulli": (r"\mathrm{Bernoulli}(p_i)", r"\mathrm{logit}(p_i)"),
    "poisson": (r"\mathrm{Poisson}(\lambda_i)", r"\log \lambda_i"),
    "negbinomial": (r"\mathrm{NegBinomial}(\mu_i, \phi)", r"\log \mu_i"),
}
#: the LaTeX symbol of each family's parameter besides η (FAMILY_PARAMETERS)
_PARAMETER_SYMBOLS = {"sigma": r"\sigma", "phi": r"\phi"}
#: LaTeX of the functions a formula may call, for the offset
_FUNCTIONS = {"log": r"\log", "exp": r"\exp"}


# ------------------------------------------------------------------------------ text
_ESCAPES = {"\\": r"\backslash{}", "_": r"\_", "%": r"\%", "$": r"\$", "{": r"\{",
            "}": r"\}", "#": r"\sharp{}", "&": r"\&", "^": r"\hat{}", "~": r"\sim{}",
            " ": r"\ ", ":": "{:}"}


def _tex(name: str) -> str:
    r"""A column, factor or level name as upright LaTeX: ``\mathrm{log\_uppm}``."""
    return r"\mathrm{" + "".join(_ESCAPES.get(c, c) for c in str(name)) + "}"


def _plain(name: str) -> str:
    """A name as plain text in a matplotlib label (outside the ``$…$``)."""
    return str(name).replace("$", r"\$")


def _value(value: float) -> str:
    """Four significant figures; ∞ (a Normal's ν beside Student-t priors) in LaTeX."""
    return r"\infty" if value == float("inf") else f"{value:.4g}"


def _range(letter: str, extent: int | str) -> str:
    return rf"{letter} = 1, \ldots, {extent}"


# ------------------------------------------------------------------------ the groups
@dataclass(frozen=True)
class _Group:
    """A grouping factor's plate: its term, index letter and enclosing factor."""

    term: GroupTerm
    letter: str
    parent: str | None

    @property
    def factor(self) -> str:
        return self.term.factor

    @property
    def plate(self) -> str:
        return f"levels[{self.factor}]"


def _nested_in(inner: GroupTerm, outer: GroupTerm) -> bool:
    """Whether every level of ``inner`` lies within one level of ``outer``."""
    if inner.n_levels <= outer.n_levels:
        return False
    pairs = np.unique(np.stack([inner.index, outer.index], axis=1), axis=0)
    return len(pairs) == inner.n_levels


def _groups(terms: Sequence[GroupTerm]) -> list[_Group]:
    """Each term's plate, inside the plate of the factor it is nested in with the most
    levels (a factor named as its prefix first, ``school`` for ``school:classroom``)."""
    groups = []
    for position, term in enumerate(terms):
        outer = [t for t in terms if t is not term and _nested_in(term, t)]
        outer.sort(key=lambda t: (term.factor.startswith(t.factor + ":"), t.n_levels),
                   reverse=True)
        groups.append(_Group(term, _letter(position), outer[0].factor if outer else None))
    return groups


def _letter(position: int) -> str:
    """The index letter of the plate of the term at ``position``."""
    letter = INDEX_LETTERS[position % len(INDEX_LETTERS)]
    rounds = position // len(INDEX_LETTERS)
    return f"{letter}_{rounds + 1}" if rounds else letter


def _plate_label(group: _Group) -> str:
    name = group.factor
    if group.parent is not None:
        short = name.removeprefix(group.parent + ":")
        name = f"{short} in {group.parent}"
    return f"{_plain(name)}: ${_range(group.letter, group.term.n_levels)}$"


# ------------------------------------------------------------------------ subscripts
def _fixed_subscripts(names: Sequence[str], full: Sequence[str] | None = None) -> list[str]:
    """β's subscript of each fixed column: 0 for the intercept, then 1, 2, … in order;
    with ``full``, the columns of the formula, each column keeps its place there (no
    pooling drops some)."""
    if full is not None:
        place = dict(zip(full, _fixed_subscripts(full), strict=True))
        return [place[name] for name in names]
    out, count = [], 0
    for name in names:
        if name == INTERCEPT:
            out.append("0")
        else:
            count += 1
            out.append(str(count))
    return out


def _effect_subscripts(effects: Sequence[str], fixed_names: Sequence[str]) -> list[str]:
    """The subscript of each effect of a term: 0 for the intercept, the fixed coefficient's
    subscript for an effect that is also a fixed column (b_1 goes with β_1 Days), the next
    free number otherwise."""
    fixed = dict(zip(fixed_names, _fixed_subscripts(fixed_names), strict=True))
    taken = {fixed[e] for e in effects if e in fixed} | (
        {"0"} if INTERCEPT in effects else set())
    out, free = [], 0
    for effect in effects:
        if effect == INTERCEPT:
            out.append("0")
        elif effect in fixed:
            out.append(fixed[effect])
        else:
            free = max(free, 1)
            while str(free) in taken:
                free += 1
            taken.add(str(free))
            out.append(str(free))
    return out


def _covariate(name: str) -> str:
    """The covariate an effect multiplies, ``\\mathrm{Days}_i``; nothing for the intercept."""
    return "" if name == INTERCEPT else f" {_tex(name)}_i"


# ----------------------------------------------------------------- no-pooling columns
@dataclass(frozen=True)
class _PerLevel:
    """No pooling's per-level columns of one group term: column k of the design is
    effect ``effect[k]`` at level ``level[k]``."""

    term: GroupTerm
    columns: tuple[int, ...]
    effect: tuple[int, ...]
    level: tuple[int, ...]


def _per_level(data: MixedData) -> tuple[list[_PerLevel], list[int]]:
    """No pooling's per-level columns by term (of the formula's terms), and the indices of
    the shared fixed columns left."""
    names = data.design.fixed_names
    position = {name: k for k, name in enumerate(names)}
    found: list[_PerLevel] = []
    used: set[int] = set()
    for term in data.full_design.terms:
        for qualifier in ("", f"|{term.factor}"):
            hits = [(position[f"{e}{qualifier}[{level}]"], a, b)
                    for b, level in enumerate(term.levels) for a, e in enumerate(term.names)
                    if f"{e}{qualifier}[{level}]" in position]
            if len(hits) == term.n_levels * term.n_effects:
                columns, effect, level = zip(*hits, strict=True)
                found.append(_PerLevel(term, columns, effect, level))
                used.update(columns)
                break
    if not found:
        raise SpecificationError(
            "cannot find the per-level coefficients of the no-pooling design among "
            f"{', '.join(names[:5])}{', …' if len(names) > 5 else ''}")
    return found, [k for k in range(len(names)) if k not in used]


# ---------------------------------------------------------------------------- priors
def _prior_texts(priors: MixedPriors) -> dict[str, str]:
    """The distribution of each prior as :meth:`MixedPriors.describe` writes it, keyed
    ``b[name]``, ``sigma``, ``sd_factor[effect]``, ``cor_factor``."""
    keys = [f"b[{n}]" for n in priors.fixed_names]
    keys += [priors.family_parameter[0]] if priors.family_parameter is not None else []
    keys += [priors.sd_prior(f, e)[0] for f, e in priors.sd]
    keys += [f"cor_{f}" for f in priors.cor]
    lines = priors.describe()
    texts = {}
    for key, line in zip(keys, lines, strict=True):
        prefix = f"{key} ~ "
        if not line.startswith(prefix):  # describe() and the keys out of step: a bug
            raise SpecificationError(f"unexpected prior description {line!r}")
        texts[key] = line.removeprefix(prefix)
    return texts


def _prior_line(symbol: str, text: str, where: str = "") -> str:
    line = rf"{symbol} \sim {latex(text)}"
    return f"{line}, \\quad {where}" if where else line


# ----------------------------------------------------------------------------- graph
def _check(model: MixedModel, data: MixedData) -> None:
    if not isinstance(model, MixedModel):
        raise TypeError(f"model must be a MixedModel, not {type(model).__name__}")
    if not isinstance(data, MixedData):
        raise TypeError(f"data must be prepared by model.prepare(table), not "
                        f"{type(data).__name__}")


class _Builder:
    """Collects nodes, edges and plates."""

    def __init__(self) -> None:
        self.nodes: list[GraphNode] = []
        self.edges: list[tuple[str, str]] = []
        self.in_plate: dict[str, list[str]] = {}

    def add(self, name: str, label: str, kind: NodeKind, plate: str | None = None,
            children: Sequence[str] = ()) -> None:
        self.nodes.append(GraphNode(name, label, kind))
        self.edges.extend((name, child) for child in children)
        if plate is not None:
            self.in_plate.setdefault(plate, []).append(name)

    def constants(self, node: str, dist: Distribution) -> None:
        """A prior's constants as dots labelled with their values."""
        for param, value in zip(dist.param_names, dist.params, strict=True):
            self.add(f"{node}_{param}", f"${_value(value)}$", "fixed", children=(node,))


def _vector_label(values: Sequence[float]) -> str | None:
    """Values written out on one dot: one number if all are equal, a tuple of up to
    :data:`COMPACT_VALUES`, else None."""
    if len(set(values)) == 1:
        return _value(values[0])
    if len(values) <= COMPACT_VALUES:
        return "(" + ", ".join(_value(v) for v in values) + ")"
    return None


def _coefficient_constants(builder: _Builder, node: str, dists: Sequence[Distribution],
                           symbol: str, group: _Group | None = None,
                           levels: Sequence[int] = ()) -> None:
    """The constants of Normal or Student-t priors of several coefficients, one dot per
    parameter — ν (∞ for a Normal; only where a prior is a t), m, s — with their values when
    compact (and, for per-level coefficients, the same at every level), else symbolic
    (inside ``plate`` when they differ between levels)."""
    parameters = [("mu", "m", -2), ("sigma", "s", -1)]
    if any(d.name == "studentt" for d in dists):
        parameters.insert(0, ("df", r"\nu", 0))
    for param, letter, p in parameters:
        values = [d.params[p] if d.name == "studentt" or param != "df" else float("inf")
                  for d in dists]
        if group is not None:
            by_level: dict[int, list[float]] = {}
            for level, value in zip(levels, values, strict=True):
                by_level.setdefault(level, []).append(value)
            rows = {tuple(f"{v:g}" for v in row) for row in by_level.values()}
            if len(rows) > 1:
                builder.add(f"{node}_{param}", f"${letter}_{{{symbol},{group.letter}}}$",
                            "fixed", plate=group.plate, children=(node,))
                continue
            values = [float(v) for v in rows.pop()]
        name = f"{letter}_{{{symbol}}}"
        label = _vector_label(values)  # named, so that a tuple is not a bare (1.2, 0, 0)
        text = name if label is None else f"{name} = {label}"
        builder.add(f"{node}_{param}", f"${text}$", "fixed", children=(node,))


def mixed_graph(model: MixedModel, data: MixedData) -> ModelGraph:
    """The graphical model of a mixed model on its prepared data (see the module for what
    is drawn).

    Draw it with :func:`poolwise.outputs.render.render`, e.g.
    ``render(mixed_graph(model, data), "out/model", fmt=("png", "svg"))``.
    """
    _check(model, data)
    design, priors = data.design, data.priors
    builder = _Builder()
    obs = "observations"
    # above the observations: the fixed coefficients, σ, the group-level parameters
    shared = list(range(len(design.fixed_names)))
    per_level: list[_PerLevel] = []
    if model.pooling == "none":
        per_level, shared = _per_level(data)
    if shared:
        builder.add("b", r"$\beta$", "latent", children=("y",))
        _coefficient_constants(builder, "b", [priors.fixed[k] for k in shared], r"\beta")
    if priors.family_parameter is not None:
        name, dist = priors.family_parameter
        builder.add(name, f"${_PARAMETER_SYMBOLS[name]}$", "latent", children=("y",))
        builder.constants(name, dist)
    groups = _groups(design.terms)
    by_factor = {g.factor: g for g in groups}
    plates: list[Plate] = []
    for group in groups:
        term, factor = group.term, group.factor
        node = f"r_{factor}"
        name = _tex(factor)
        subscripts = _effect_subscripts(term.names, design.fixed_names)
        for effect, sub in zip(term.names, subscripts, strict=True):
            sd = f"sd_{factor}[{effect}]"
            symbol = rf"\tau_{{{sub},{name}}}" if term.n_effects > 1 else rf"\tau_{{{name}}}"
            builder.add(sd, f"${symbol}$", "latent", children=(node,))
            prior_name, prior = priors.sd_prior(factor, effect)
            builder.constants(sd, prior)
            if prior_name.startswith("icc_"):  # τ's prior is that of τ²/(τ² + σ²)
                builder.edges.append(("sigma", sd))
        if factor in priors.cor:
            cor = f"cor_{factor}"
            builder.add(cor, rf"$\Omega_{{{name}}}$", "latent", children=(node,))
            builder.add(f"{cor}_eta", f"${_value(priors.cor[factor])}$", "fixed",
                        children=(cor,))
        bold = r"\mathbf{b}" if term.n_effects > 1 else "b"
        builder.add(node, f"${bold}_{{{name},{group.letter}}}$", "latent",
                    plate=group.plate, children=("y",))
    for position, block in enumerate(per_level):
        term = block.term
        group = _Group(term, _letter(position), None)
        node = f"b[{term.factor}]"
        builder.add(node, rf"$\beta_{{{_tex(term.factor)},{group.letter}}}$", "latent",
                    plate=group.plate, children=("y",))
        dists = [priors.fixed[k] for k in block.columns]
        # one row of values per level, effects in order: compact if the rows agree
        order = np.lexsort((block.effect, block.level))
        _coefficient_constants(builder, node, [dists[k] for k in order], r"\beta",
                               group, levels=[block.level[k] for k in order])
        groups.append(group)
    # the observations
    builder.add("y", "$y_i$", "observed", plate=obs)
    effects = [design.fixed_names[k] for k in shared]
    effects += [n for t in design.terms for n in t.names]
    effects += [block.term.names[e] for block in per_level for e in block.effect]
    if any(name != INTERCEPT for name in effects):  # covariates beyond the constant 1
        builder.add("x", "$x_i$", "fixed", plate=obs, children=("y",))
    if design.family == "binomial":
        builder.add("n", "$n_i$", "fixed", plate=obs, children=("y",))
    if design.offset is not None:
        builder.add("offset", "$o_i$", "fixed", plate=obs, children=("y",))
    plates.append(Plate(obs, f"${_range('i', design.n_obs)}$", tuple(builder.in_plate[obs])))
    for group in groups:
        plates.append(Plate(group.plate, _plate_label(group),
                            tuple(builder.in_plate.get(group.plate, ())),
                            inside=None if group.parent is None
                            else by_factor[group.parent].plate))
    title = f"{_plain(model.formula)}, {design.family}, {POOLING_PHRASES[model.pooling]}"
    return ModelGraph(tuple(builder.nodes), tuple(builder.edges), tuple(plates), title)


# ------------------------------------------------------------------------- equations
def _offset_tex(formula: str) -> str:
    """The offset of ``formula`` as LaTeX, ``\\log(\\mathrm{population}_i)``."""
    tokens = _tokenize(formula)
    start = next(k for k, t in enumerate(tokens)
                 if t.kind == "name" and t.text == "offset" and k + 1 < len(tokens)
                 and tokens[k + 1].is_op("("))
    depth, out = 0, []
    for k in range(start + 1, len(tokens)):
        token = tokens[k]
        depth += token.is_op("(") - token.is_op(")")
        if depth == 0:
            break
        if k == start + 1:
            continue
        calls = k + 1 < len(tokens) and tokens[k + 1].is_op("(")
        if token.kind == "name" and calls:
            out.append(_FUNCTIONS.get(token.text, _tex(token.text)))
        elif token.kind in ("name", "quoted"):
            out.append(f"{_tex(token.column)}_i")
        elif token.is_op("*"):
            out.append(r" \cdot ")
        elif token.is_op("+", "-", "/"):
            out.append(f" {token.text} ")
        elif token.is_op(","):
            out.append(", ")
        else:
            out.append(token.text)
    return "".join(out)


def _shared(data: MixedData, shared: Sequence[int]) -> list[tuple[str, str]]:
    """The shared fixed columns and β's subscript of each (its place in the formula)."""
    names = [data.design.fixed_names[k] for k in shared]
    return list(zip(names, _fixed_subscripts(names, data.full_design.fixed_names),
                    strict=True))


def _predictor(data: MixedData, per_level: list[_PerLevel], shared: list[int]) -> str:
    design = data.design
    parts = []
    if design.offset is not None:
        parts.append(_offset_tex(design.formula))
    for name, sub in _shared(data, shared):
        parts.append(rf"\beta_{sub}{_covariate(name)}")
    for block in per_level:
        term = block.term
        subs = _effect_subscripts(term.names, data.full_design.fixed_names)
        for effect, sub in zip(term.names, subs, strict=True):
            parts.append(rf"\beta_{{{sub},{_tex(term.factor)}[i]}}{_covariate(effect)}")
    for term in design.terms:
        subs = _effect_subscripts(term.names, design.fixed_names)
        for effect, sub in zip(term.names, subs, strict=True):
            index = f"{_tex(term.factor)}[i]"
            symbol = f"b_{{{sub},{index}}}" if term.n_effects > 1 else f"b_{{{index}}}"
            parts.append(f"{symbol}{_covariate(effect)}")
    return " + ".join(parts) if parts else "0"


def mixed_equations(model: MixedModel, data: MixedData) -> list[str]:
    r"""The model as LaTeX lines (without ``$`` delimiters).

    In order: the likelihood over the observations, the linear predictor with the link
    (``\mu_i``, ``\mathrm{logit}(p_i)`` or ``\log \lambda_i``, the offset first), the
    distribution of each factor's group effects (MVN with
    Σ_f = diag(τ_f) Ω_f diag(τ_f) for a correlated term), then every prior with its values,
    as :meth:`~poolwise.kinds.mixed.priors.MixedPriors.describe` writes it: fixed coefficients
    (no pooling's per-level ones in one line per effect when every level has the same
    prior), σ, the group sds τ and the correlation matrices Ω.
    """
    _check(model, data)
    design, priors = data.design, data.priors
    likelihood, link = _LIKELIHOODS[design.family]
    shared = list(range(len(design.fixed_names)))
    per_level: list[_PerLevel] = []
    if model.pooling == "none":
        per_level, shared = _per_level(data)
    lines = [rf"y_i \sim {likelihood}, \quad {_range('i', design.n_obs)}",
             f"{link} = {_predictor(data, per_level, shared)}"]
    groups = _groups(design.terms)
    for group in groups:
        lines += _group_lines(group, design)
    texts = _prior_texts(priors)
    for name, sub in _shared(data, shared):
        lines.append(_prior_line(rf"\beta_{sub}", texts[f"b[{name}]"]))
    for position, block in enumerate(per_level):
        lines += _per_level_priors(block, _letter(position), texts, design, data.full_design)
    if priors.family_parameter is not None:
        name = priors.family_parameter[0]
        lines.append(_prior_line(_PARAMETER_SYMBOLS[name], texts[name]))
    for group in groups:
        term, name = group.term, _tex(group.factor)
        subs = _effect_subscripts(term.names, design.fixed_names)
        for effect, sub in zip(term.names, subs, strict=True):
            symbol = rf"\tau_{{{sub},{name}}}" if term.n_effects > 1 else rf"\tau_{{{name}}}"
            key = priors.sd_prior(term.factor, effect)[0]
            if key.startswith("icc_"):
                symbol = rf"{symbol}^2 / ({symbol}^2 + \sigma^2)"
            lines.append(_prior_line(symbol, texts[key]))
        if term.factor in priors.cor:
            lines.append(_prior_line(rf"\Omega_{{{name}}}", texts[f"cor_{term.factor}"]))
    return lines


def _group_lines(group: _Group, design: MixedDesign) -> list[str]:
    """The distribution of one factor's group effects."""
    term, name, letter = group.term, _tex(group.factor), group.letter
    where = _range(letter, term.n_levels)
    subs = _effect_subscripts(term.names, design.fixed_names)
    if term.n_effects == 1:
        return [rf"b_{{{name},{letter}}} \sim \mathrm{{N}}(0, \tau_{{{name}}}^2), \quad {where}"]
    taus = [rf"\tau_{{{s},{name}}}" for s in subs]
    if not term.correlated:
        return [rf"b_{{{s},{name},{letter}}} \sim \mathrm{{N}}(0, {tau}^2), \quad {where}"
                for s, tau in zip(subs, taus, strict=True)]
    vector = ", ".join(f"b_{{{s},{name},{letter}}}" for s in subs)
    diag = rf"\mathrm{{diag}}({', '.join(taus)})"
    return [rf"({vector})^\top \sim \mathrm{{MVN}}(\mathbf{{0}}, \Sigma_{{{name}}}), "
            rf"\quad {where}",
            rf"\Sigma_{{{name}}} = {diag} \, \Omega_{{{name}}} \, {diag}"]


def _per_level_priors(block: _PerLevel, letter: str, texts: dict[str, str],
                      design: MixedDesign, full: MixedDesign) -> list[str]:
    """No pooling's per-level priors: one line per effect when all levels share it, else
    one line per level."""
    term, name = block.term, _tex(block.term.factor)
    subs = _effect_subscripts(term.names, full.fixed_names)
    lines = []
    for e, sub in enumerate(subs):
        columns = [(k, level) for k, effect, level in
                   zip(block.columns, block.effect, block.level, strict=True) if effect == e]
        dists = [texts[f"b[{design.fixed_names[k]}]"] for k, _ in columns]
        symbol = rf"\beta_{{{sub},{name},{letter}}}"
        if len(set(dists)) == 1:
            lines.append(_prior_line(symbol, dists[0], _range(letter, term.n_levels)))
        else:
            lines += [_prior_line(symbol, text, f"{letter} = {_tex(term.levels[level])}")
                      for (_, level), text in zip(columns, dists, strict=True)]
    return lines
