"""Probabilistic graphical models of poolwise models, as data, as a drawing and as equations.

The drawing follows the lecture notes' conventions: random quantities are circles, observed
ones shaded; fixed quantities (known sizes n_j or standard errors σ_j, the constants of a
prior) are small dots; plates are boxes around what is repeated for every group, labelled
with the range of their index in the bottom-right corner.

:class:`ModelGraph` is plain data with no plotting dependency. :func:`model_graph` builds it
for any :class:`~poolwise.model.Model` (and :func:`nig_graph` for the Normal-Inverse-Gamma
model); :func:`render` draws it with `daft <https://docs.daft-pgm.org>`_, imported only
when a graph is drawn; :func:`equations` writes the same model as LaTeX.

>>> from poolwise import Model
>>> graph = model_graph(Model(family="beta-binomial", prior="halfnormal(10)"))
>>> graph.parents("theta")
('alpha', 'beta')
>>> [plate.label for plate in graph.plates]
['$j = 1, \\\\ldots, J$']
>>> equations(Model(family="beta-binomial", prior="halfnormal(10)"))[2]
'\\\\alpha \\\\sim \\\\mathrm{HalfNormal}(10)'
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from poolwise.data.tables import GroupCounts
from poolwise.exceptions import SpecificationError
from poolwise.families.base import RateFamily
from poolwise.families.normal_inverse_gamma import NIGPrior
from poolwise.model import POOLING_PHRASES, Model
from poolwise.priors import (
    _DISTRIBUTIONS,
    ConjugatePrior,
    Distribution,
    HyperPrior,
    IndependentPrior,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["GraphNode", "ModelGraph", "NodeKind", "Plate", "equations", "model_graph",
           "nig_graph", "render"]

NodeKind = Literal["latent", "observed", "fixed"]
NODE_KINDS: tuple[str, ...] = ("latent", "observed", "fixed")
#: the file formats :func:`render` writes
FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


# ----------------------------------------------------------------------------- the graph
@dataclass(frozen=True)
class GraphNode:
    """One quantity of the model.

    ``label`` is LaTeX (matplotlib mathtext), e.g. ``r"$\\theta_j$"``. ``kind`` is
    ``"latent"`` (unknown, a circle), ``"observed"`` (data, a shaded circle) or ``"fixed"``
    (known, a dot).
    """

    name: str
    label: str
    kind: NodeKind


@dataclass(frozen=True)
class Plate:
    """A box around quantities repeated over an index, e.g. ``j = 1, …, 70``.

    ``nodes`` are the names of the nodes directly inside it; ``inside`` is the name of the
    plate this one sits in (None for a plate at the top level), so that a node in an inner
    plate is also inside every plate around it.
    """

    name: str
    label: str
    nodes: tuple[str, ...]
    inside: str | None = None


@dataclass(frozen=True)
class ModelGraph:
    """A directed acyclic graph of a model's quantities, with plates; checked on creation.

    Raises :class:`~poolwise.exceptions.SpecificationError` for a graph that cannot be
    drawn: repeated names, an unknown kind, an edge to an unknown node, a cycle, a fixed
    node with parents, or plates that name unknown nodes, share a node, are empty or sit
    inside each other in a loop.
    """

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]
    plates: tuple[Plate, ...] = ()
    title: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        for edge in self.edges:
            if not (isinstance(edge, Sequence) and not isinstance(edge, str)
                    and len(edge) == 2):
                raise SpecificationError(f"an edge is a (parent, child) pair, not {edge!r}")
        object.__setattr__(self, "edges", tuple((a, b) for a, b in self.edges))
        object.__setattr__(self, "plates", tuple(self.plates))
        self._check_nodes()
        self._check_edges()
        self._check_plates()

    # --- queries ------------------------------------------------------------------------
    def node(self, name: str) -> GraphNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecificationError(
            f"the graph has no node {name!r}; its nodes: {', '.join(self.names())}")

    def names(self) -> tuple[str, ...]:
        """The names of the nodes, in order."""
        return tuple(node.name for node in self.nodes)

    def parents(self, name: str) -> tuple[str, ...]:
        """The nodes with an edge into ``name``, in the order of the edges."""
        self.node(name)
        return tuple(parent for parent, child in self.edges if child == name)

    def children(self, name: str) -> tuple[str, ...]:
        """The nodes that ``name`` has an edge into, in the order of the edges."""
        self.node(name)
        return tuple(child for parent, child in self.edges if parent == name)

    def observed(self) -> tuple[str, ...]:
        """The names of the observed nodes (the data)."""
        return tuple(node.name for node in self.nodes if node.kind == "observed")

    def fixed(self) -> tuple[str, ...]:
        """The names of the fixed nodes (known sizes, standard errors, prior constants)."""
        return tuple(node.name for node in self.nodes if node.kind == "fixed")

    def plate_of(self, name: str) -> Plate | None:
        """The innermost plate holding ``name``, or None if it is outside every plate."""
        self.node(name)
        return next((plate for plate in self.plates if name in plate.nodes), None)

    def enclosing(self, plate: Plate) -> tuple[Plate, ...]:
        """``plate`` and the plates around it, innermost first."""
        by_name = {p.name: p for p in self.plates}
        chain = [plate]
        while chain[-1].inside is not None:
            chain.append(by_name[chain[-1].inside])
        return tuple(chain)

    # --- checks -------------------------------------------------------------------------
    def _check_nodes(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if not isinstance(node, GraphNode):
                raise SpecificationError(
                    f"graph nodes must be GraphNode objects, not {type(node).__name__}")
            if node.name in seen:
                raise SpecificationError(f"the graph has two nodes called {node.name!r}")
            if node.kind not in NODE_KINDS:
                raise SpecificationError(
                    f"node {node.name!r} has kind {node.kind!r}; valid kinds: "
                    f"{', '.join(NODE_KINDS)}")
            seen.add(node.name)

    def _check_edges(self) -> None:
        names = set(self.names())
        for parent, child in self.edges:
            for end in (parent, child):
                if end not in names:
                    raise SpecificationError(
                        f"the edge {parent} → {child} names an unknown node {end!r}; the "
                        f"graph's nodes: {', '.join(self.names())}")
            if parent == child:
                raise SpecificationError(f"the edge {parent} → {child} is a loop")
        if len(set(self.edges)) < len(self.edges):
            raise SpecificationError("the graph has the same edge twice")
        for name in self.fixed():
            if self.parents(name):
                raise SpecificationError(
                    f"fixed node {name!r} has parents ({', '.join(self.parents(name))}); a "
                    "fixed quantity is known, so nothing points into it")
        cycle = _find_cycle(self.names(), self.edges)
        if cycle:
            raise SpecificationError(
                f"the graph has a cycle, {' → '.join(cycle)}; a graphical model must be "
                "acyclic")

    def _check_plates(self) -> None:
        names = set(self.names())
        plate_names = [plate.name for plate in self.plates]
        if len(set(plate_names)) < len(plate_names):
            raise SpecificationError("two plates have the same name")
        holder: dict[str, str] = {}
        for plate in self.plates:
            if plate.inside is not None and plate.inside not in plate_names:
                raise SpecificationError(
                    f"plate {plate.name!r} sits inside an unknown plate {plate.inside!r}")
            if not plate.nodes and plate.name not in {p.inside for p in self.plates}:
                raise SpecificationError(f"plate {plate.name!r} is empty")
            for name in plate.nodes:
                if name not in names:
                    raise SpecificationError(
                        f"plate {plate.name!r} holds an unknown node {name!r}")
                if name in holder:
                    raise SpecificationError(
                        f"node {name!r} is directly inside two plates, {holder[name]!r} and "
                        f"{plate.name!r}; put one plate inside the other (Plate.inside)")
                holder[name] = plate.name
        nesting = tuple((p.name, p.inside) for p in self.plates if p.inside is not None)
        cycle = _find_cycle(tuple(plate_names), nesting)
        if cycle:
            raise SpecificationError(f"plates sit inside each other in a loop: "
                                     f"{' in '.join(cycle)}")


def _find_cycle(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """A cycle of the directed graph as [a, b, ..., a], or [] if it is acyclic."""
    children: dict[str, list[str]] = {name: [] for name in names}
    for parent, child in edges:
        children[parent].append(child)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for child in children[name]:
            if state.get(child) == 1:
                return [*path[path.index(child):], child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        state[name] = 2
        path.pop()
        return []

    for name in names:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return []


# ----------------------------------------------------------------------- model → graph
#: LaTeX of the hyperparameters' and NIG constants' names
_SYMBOLS = {"alpha": r"\alpha", "beta": r"\beta", "mu": r"\mu", "tau": r"\tau"}
_UNICODE_SYMBOLS = {"alpha": "α", "beta": "β", "mu": "μ", "tau": "τ"}
#: the likelihood of each built-in family; {size} and {theta} are filled in
_LIKELIHOODS = {
    "beta-binomial": r"\mathrm{{Binomial}}({size}_j, {theta})",
    "gamma-poisson": r"\mathrm{{Poisson}}({size}_j \, {theta})",
    "normal": r"\mathrm{{N}}({theta}, {size}_j^2)",
}
#: the node name and LaTeX of each family's size symbol (RateFamily.size_symbol)
_SIZES = {"n": ("n", "n"), "σ": ("sigma", r"\sigma")}


def _check_family(family: RateFamily) -> None:
    if family.name not in _LIKELIHOODS:
        raise SpecificationError(
            f"no graph for the {family.name!r} family; graphs are drawn for "
            f"{', '.join(_LIKELIHOODS)}")


def _range_label(index: str, extent: str) -> str:
    return rf"${index} = 1, \ldots, {extent}$"


def _number(value: float) -> str:
    return f"{value:g}"


def model_graph(model: Model, data: GroupCounts | None = None) -> ModelGraph:
    """The graphical model of ``model``; with ``data`` the plate shows the number of groups.

    Nodes: the data ``y`` (observed) and the group sizes ``n`` — standard errors ``sigma``
    for the normal family — (fixed), both in the plate over groups j; ``theta`` (θ_j in the
    plate, or one θ outside it under complete pooling); under partial pooling the two
    hyperparameters (``alpha``, ``beta`` or ``mu``, ``tau``) above the plate, each with its
    hyperprior's constants as fixed dots (``alpha_scale``, ... ; none for flat or
    reference priors); under no or complete pooling the constants ``a``, ``b`` of θ's fixed
    prior (none for a flat prior).
    """
    family = model.family
    _check_family(family)
    size_name, size_label = _SIZES[family.size_symbol]
    per_group = model.pooling != "complete"
    nodes = [
        GraphNode("theta", r"$\theta_j$" if per_group else r"$\theta$", "latent"),
        GraphNode(size_name, f"${size_label}_j$", "fixed"),
        GraphNode("y", "$y_j$", "observed"),
    ]
    edges = [("theta", "y"), (size_name, "y")]
    top: list[GraphNode] = []
    if model.hyperprior is not None:
        for name, dist in _hyperprior_parts(model.hyperprior, family):
            top.append(GraphNode(name, f"${_SYMBOLS.get(name, name)}$", "latent"))
            edges.append((name, "theta"))
            for param, value in zip(_DISTRIBUTIONS[dist.name], dist.params, strict=True):
                top.append(GraphNode(f"{name}_{param}", f"${_number(value)}$", "fixed"))
                edges.append((f"{name}_{param}", name))
    else:
        for symbol, value in _conjugate_constants(model.theta_prior):
            top.append(GraphNode(symbol, f"${symbol} = {_number(value)}$", "fixed"))
            edges.append((symbol, "theta"))
    in_plate = tuple(n.name for n in nodes if per_group or n.name != "theta")
    extent = str(data.n_groups) if data is not None else "J"
    plate = Plate("groups", _range_label("j", extent), in_plate)
    return ModelGraph(tuple(top + nodes), tuple(edges), (plate,),
                      f"{family.name}, {POOLING_PHRASES[model.pooling]}")


def _hyperprior_parts(prior: HyperPrior, family: RateFamily
                      ) -> list[tuple[str, Distribution]]:
    """Each hyperparameter's name and its own prior; flat for a joint prior without
    constants (the reference priors)."""
    if isinstance(prior, IndependentPrior):
        return list(zip(family.hyper_names, (prior.alpha, prior.beta), strict=True))
    flat = Distribution("flat", ())
    return [(name, flat) for name in family.hyper_names]


def _conjugate_constants(prior: ConjugatePrior) -> list[tuple[str, float]]:
    """The constants (a, b) of θ's fixed prior; none for the normal family's flat prior."""
    if math.isinf(prior.b):
        return []
    return [("a", prior.a), ("b", prior.b)]


def nig_graph(prior: NIGPrior, n_groups: int | None = None) -> ModelGraph:
    """The graphical model of the Normal-Inverse-Gamma model of
    :mod:`poolwise.families.normal_inverse_gamma`.

    y_ij ~ N(θ_j, σ_j²) for i = 1..n_j in each group j, θ_j | σ_j² ~ N(μ, σ_j² τ²),
    σ_j² ~ IG(α, β), with μ, τ, α, β fixed (dots labelled with their values). The
    observations sit in a plate over i inside the plate over groups j = 1..``n_groups``
    (``J`` when not given); with one group there is no group plate (θ, σ², y_i).
    """
    if n_groups is not None and (isinstance(n_groups, bool) or int(n_groups) != n_groups
                                 or n_groups < 1):
        raise SpecificationError(f"n_groups must be an integer ≥ 1, got {n_groups!r}")
    one_group = n_groups == 1
    j = "" if one_group else "j"
    constants = [GraphNode(name, f"${_SYMBOLS[name]} = {_number(getattr(prior, name))}$",
                           "fixed") for name in ("alpha", "beta", "mu", "tau")]
    sigma2 = GraphNode("sigma2", f"$\\sigma^2_{{{j}}}$" if j else r"$\sigma^2$", "latent")
    theta = GraphNode("theta", f"$\\theta_{{{j}}}$" if j else r"$\theta$", "latent")
    y = GraphNode("y", f"$y_{{i{j}}}$", "observed")
    edges = (("alpha", "sigma2"), ("beta", "sigma2"), ("mu", "theta"), ("tau", "theta"),
             ("sigma2", "theta"), ("sigma2", "y"), ("theta", "y"))
    plates: tuple[Plate, ...]
    if one_group:
        plates = (Plate("observations", _range_label("i", "n"), ("y",)),)
    else:
        extent = "J" if n_groups is None else str(n_groups)
        plates = (Plate("groups", _range_label("j", extent), ("sigma2", "theta")),
                  Plate("observations", _range_label("i", "n_j"), ("y",), inside="groups"))
    return ModelGraph((*constants, sigma2, theta, y), edges, plates,
                      "normal-inverse-gamma")


# -------------------------------------------------------------------------- equations
_GREEK = {"α": "alpha", "β": "beta", "μ": "mu", "τ": "tau", "θ": "theta", "σ": "sigma"}


def _latex(text: str) -> str:
    """The plain-text maths of the priors' descriptions as LaTeX: ``"α^(-3/2) ∝ N(μ, τ²)"``
    → ``r"\\alpha^{-3/2} \\propto \\mathrm{N}(\\mu, \\tau^2)"``."""
    text = re.sub(r"\^\(([^()]*)\)", r"^{\1}", text)
    text = re.sub(r"\b([A-Z][A-Za-z]*)\(", r"\\mathrm{\1}(", text)
    text = text.replace("∝", r"\propto").replace("~", r"\sim").replace("²", "^2")
    return re.sub("[αβμτθσ](?=([A-Za-z]?))",
                  lambda m: "\\" + _GREEK[m.group(0)] + (" " if m.group(1) else ""), text)


def _prior_line(symbol: str, text: str) -> str:
    """``symbol ~ text`` in LaTeX, where ``text`` is a distribution as the priors print it
    (``"HalfNormal(10)"``), or ``p(symbol) ∝ 1`` for ``"flat"``."""
    if text.startswith("flat"):
        return _latex(f"p({symbol}) ∝ 1")
    return _latex(f"{symbol} ~ {text}")


def _maths(description: str) -> str:
    """The maths of a prior's description, without the note in parentheses after it
    (the descriptions separate the two by two spaces)."""
    return description.split("  ")[0].strip()


def equations(model: Model, data: GroupCounts | None = None) -> list[str]:
    """The model as LaTeX lines (without ``$`` delimiters): the likelihood, the population
    distribution of θ_j (partial pooling) and the priors with their values.

    With ``data`` the first line gives the number of groups, e.g. ``j = 1, \\ldots, 70``.

    >>> from poolwise import Model
    >>> for line in equations(Model(family="normal", pooling="complete")):
    ...     print(line)
    y_j \\sim \\mathrm{N}(\\theta, \\sigma_j^2), \\quad j = 1, \\ldots, J
    p(\\theta) \\propto 1
    """
    family = model.family
    _check_family(family)
    theta = r"\theta_j" if model.pooling != "complete" else r"\theta"
    size = _SIZES[family.size_symbol][1]
    extent = str(data.n_groups) if data is not None else "J"
    likelihood = _LIKELIHOODS[family.name].format(size=size, theta=theta)
    lines = [rf"y_j \sim {likelihood}, \quad j = 1, \ldots, {extent}"]
    if model.hyperprior is None:
        text = model.theta_prior.describe(family).removeprefix("θ ~ ")
        lines.append(_prior_line("θ_j" if model.pooling == "none" else "θ", text))
        return lines
    lines.append(_latex(f"θ_j ~ {family.population_text}"))
    if isinstance(model.hyperprior, IndependentPrior):
        for name, dist in _hyperprior_parts(model.hyperprior, family):
            lines.append(_prior_line(_UNICODE_SYMBOLS.get(name, name), str(dist)))
    else:
        lines.append(_latex(_maths(model.hyperprior.describe(family))))
    return lines


def nig_equations(prior: NIGPrior, n_groups: int | None = None) -> list[str]:
    """The Normal-Inverse-Gamma model as LaTeX lines with its prior's values (lecture 001).

    >>> nig_equations(NIGPrior(0.0, 1.0, 2.0, 1.0), 3)[2]
    '\\\\sigma_j^2 \\\\sim \\\\mathrm{IG}(2, 1)'
    """
    extent = "J" if n_groups is None else str(n_groups)
    return [
        rf"y_{{ij}} \sim \mathrm{{N}}(\theta_j, \sigma_j^2), \quad i = 1, \ldots, n_j, "
        rf"\quad j = 1, \ldots, {extent}",
        rf"\theta_j \mid \sigma_j^2 \sim \mathrm{{N}}({_number(prior.mu)}, "
        rf"\sigma_j^2 \cdot {_number(prior.tau)}^2)",
        rf"\sigma_j^2 \sim \mathrm{{IG}}({_number(prior.alpha)}, {_number(prior.beta)})",
    ]


def nested_equations(family: RateFamily, prior_text: str, n_labs: int | None = None
                     ) -> list[str]:
    """A nested (labs / experiments) model as LaTeX lines: the likelihood, then each
    statement of its prior as :func:`poolwise.nested.describe_nested_prior` prints it."""
    _check_family(family)
    size = _SIZES[family.size_symbol][1]
    likelihood = _LIKELIHOODS[family.name].format(size=size, theta=r"\theta_{ij}")
    likelihood = likelihood.replace(f"{size}_j", f"{size}_{{ij}}")
    extent = "I" if n_labs is None else str(n_labs)
    lines = [rf"y_{{ij}} \sim {likelihood}, \quad j = 1, \ldots, J_i, \quad i = 1, "
             rf"\ldots, {extent}"]
    statements = [part.strip() for part in prior_text.split(";")]
    u, v = _NESTED_COORDINATES[family.name]
    lines.append(_latex(statements[0]).replace("_ij", "_{ij}"))  # θ_ij's population
    lines += [rf"{u} \sim \mathrm{{N}}(m_u, s_u^2)", rf"{v} \sim \mathrm{{N}}(m_v, s_v^2)"]
    lines += [_latex(statement) for statement in statements[3:]]  # the top-level priors
    return lines


#: the lab coordinates (u_i, v_i) of the nested models, in LaTeX
_NESTED_COORDINATES = {
    "beta-binomial": (r"\mathrm{logit} \frac{\alpha_i}{\alpha_i + \beta_i}",
                      r"\log(\alpha_i + \beta_i)"),
    "gamma-poisson": (r"\log \frac{\alpha_i}{\beta_i}", r"\log \alpha_i"),
    "normal": (r"\mu_i", r"\log \tau_i"),
}


# ------------------------------------------------------------------------------ layout
# All lengths in the layout are in grid units (daft's model coordinates).
_GRID_CM = 2.0          # one grid unit, in centimetres
_NODE_CM = 1.0          # diameter of a circle, in centimetres
_PT = 2.54 / 72 / _GRID_CM  # one typographic point, in grid units
_RADIUS = _NODE_CM / _GRID_CM / 2
_DOT_RADIUS = _RADIUS / 6   # daft draws fixed nodes at a sixth of the size
_DOT_LABEL_RISE = 6 * _PT   # daft lifts a fixed node's label this far above its centre
_GAP = 0.45             # between neighbours in a row
_CLEARANCE = 0.12       # between an edge and a node it passes
_PAD = 0.18             # between a plate and what it holds
_LABEL_OFFSET_PT = 5.0  # the plate label's distance from the plate's corner, in points


@dataclass(frozen=True)
class _Box:
    """A rectangle: left, right, bottom, top."""

    left: float
    right: float
    bottom: float
    top: float


@dataclass(frozen=True)
class _Layout:
    """Where everything goes: node centres, the room each node takes, plate rectangles."""

    centres: dict[str, tuple[float, float]]
    boxes: dict[str, _Box]
    plates: dict[str, _Box]


def _ranks(graph: ModelGraph) -> dict[str, int]:
    """Rows from the top: a random node sits below its random parents (and below the row
    of its fixed parents), a fixed node in the row just above its highest child."""
    rank: dict[str, int] = {}

    def rank_of(name: str) -> int:  # the graph is acyclic, so this recursion ends
        if name not in rank:
            parents = graph.parents(name)
            random = [p for p in parents if graph.node(p).kind != "fixed"]
            has_fixed = len(random) < len(parents)
            rank[name] = max([rank_of(p) + 1 for p in random] + [int(has_fixed)])
        return rank[name]

    for name in graph.names():
        if graph.node(name).kind != "fixed":
            rank_of(name)
    for name in graph.fixed():
        children = graph.children(name)
        rank[name] = min(rank[c] for c in children) - 1 if children else 0
    return rank


def _segment_distance(point: tuple[float, float], start: tuple[float, float],
                      end: tuple[float, float]) -> float:
    (px, py), (ax, ay), (bx, by) = point, start, end
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


class _Placer:
    """Places nodes row by row, each as near its preferred x as the row, the plates and
    the edges already drawn allow."""

    def __init__(self, graph: ModelGraph, half_widths: dict[str, float],
                 heights: dict[str, tuple[float, float]]) -> None:
        self.graph = graph
        self.rank = _ranks(graph)
        self.half = half_widths
        self.heights = heights  # below and above the centre
        self.x: dict[str, float] = {}
        self.plate_boxes: dict[str, _Box] = {}

    def y(self, name: str) -> float:
        return -float(self.rank[name])

    def box(self, name: str, x: float | None = None) -> _Box:
        centre = self.x[name] if x is None else x
        below, above = self.heights[name]
        return _Box(centre - self.half[name], centre + self.half[name],
                    self.y(name) - below, self.y(name) + above)

    def _edges_placed(self) -> list[tuple[str, str]]:
        return [(a, b) for a, b in self.graph.edges if a in self.x and b in self.x]

    def fits(self, names: Sequence[str], xs: Sequence[float], avoid_plates: bool) -> bool:
        """Whether nodes ``names`` at ``xs`` keep clear of the placed nodes in their rows,
        of the placed edges, of the edges into them, and (if asked) of the plates."""
        for name, x in zip(names, xs, strict=True):
            own = self.box(name, x)
            for other in self.x:
                if self.rank[other] == self.rank[name]:
                    theirs = self.box(other)
                    if own.left < theirs.right + _GAP and theirs.left < own.right + _GAP:
                        return False
            if avoid_plates:
                for plate in self.plate_boxes.values():
                    if (plate.bottom < own.top and own.bottom < plate.top
                            and own.left < plate.right + _GAP
                            and plate.left < own.right + _GAP):
                        return False
            centre = (x, self.y(name))
            for a, b in self._edges_placed():
                if name not in (a, b) and self._crosses(centre, name, a, b):
                    return False
            for parent in self.graph.parents(name):
                if parent in self.x and not self._edge_clear(parent, name, centre):
                    return False
        return True

    def _crosses(self, centre: tuple[float, float], name: str, a: str, b: str) -> bool:
        between = self.rank[a] < self.rank[name] < self.rank[b]
        start, end = (self.x[a], self.y(a)), (self.x[b], self.y(b))
        return between and _segment_distance(centre, start, end) < self.half[name] + _CLEARANCE

    def _edge_clear(self, parent: str, child: str, centre: tuple[float, float]) -> bool:
        start = (self.x[parent], self.y(parent))
        for other in self.x:
            if self.rank[parent] < self.rank[other] < self.rank[child]:
                point = (self.x[other], self.y(other))
                if _segment_distance(point, start, centre) < self.half[other] + _CLEARANCE:
                    return False
        return True

    def place(self, names: Sequence[str], want: float, avoid_plates: bool = False) -> None:
        """Put ``names`` (one row, left to right, side by side) centred as near ``want``
        as they fit."""
        offsets = [0.0]
        for left, right in itertools.pairwise(names):
            offsets.append(offsets[-1] + self.half[left] + _GAP + self.half[right])
        middle = offsets[-1] / 2
        steps = [k * 0.05 for k in range(1, 801)]
        for shift in [0.0, *(s for step in steps for s in (step, -step))]:
            xs = [want + shift + offset - middle for offset in offsets]
            if self.fits(names, xs, avoid_plates):
                self.x.update(zip(names, xs, strict=True))
                return
        raise SpecificationError(f"cannot find room for {', '.join(names)} in the drawing")

    def next_free(self, name: str) -> float:
        """Right of what is already in the row of ``name``."""
        row = [self.box(other).right for other in self.x if self.rank[other] == self.rank[name]]
        return max(row) + _GAP + self.half[name] if row else 0.0

    def fixed_groups(self, inside_plates: bool) -> list[tuple[str, ...]]:
        """Fixed nodes grouped by the children they point into, for the plates or outside."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for name in self.graph.fixed():
            if (self.graph.plate_of(name) is not None) == inside_plates:
                groups.setdefault(self.graph.children(name), []).append(name)
        return [tuple(group) for group in groups.values()]

    def place_fixed(self, inside_plates: bool) -> None:
        for group in self.fixed_groups(inside_plates):
            children = [c for c in self.graph.children(group[0]) if c in self.x]
            want = (sum(self.x[c] for c in children) / len(children) if children
                    else self.next_free(group[0]))
            self.place(group, want, avoid_plates=not inside_plates)


def _layout(graph: ModelGraph, label_sizes: dict[str, tuple[float, float, float]],
            plate_label_sizes: dict[str, tuple[float, float]]) -> _Layout:
    """Positions of the nodes and rectangles of the plates.

    ``label_sizes`` gives each node label's width, height and depth below the baseline,
    ``plate_label_sizes`` each plate label's width and height (grid units).
    """
    half: dict[str, float] = {}
    heights: dict[str, tuple[float, float]] = {}
    for node in graph.nodes:
        width, height, _ = label_sizes[node.name]
        if node.kind == "fixed":
            half[node.name] = max(_DOT_RADIUS, width / 2)
            heights[node.name] = (_DOT_RADIUS, _DOT_LABEL_RISE + height)
        else:
            half[node.name] = max(_RADIUS, width / 2 + 4 * _PT)
            heights[node.name] = (_RADIUS, _RADIUS)
    placer = _Placer(graph, half, heights)
    random = sorted((n for n in graph.names() if graph.node(n).kind != "fixed"),
                    key=lambda n: placer.rank[n])
    for name in random:
        parents = [p for p in graph.parents(name) if p in placer.x]
        want = (sum(placer.x[p] for p in parents) / len(parents) if parents
                else placer.next_free(name))
        if any(placer.rank[c] > placer.rank[name] for p in parents
               for c in graph.children(p)):
            # a parent also points past this row: step aside so that edge runs clear
            want -= 2 * _RADIUS + _GAP
        placer.place([name], want)
    placer.place_fixed(inside_plates=True)
    _plate_boxes(graph, placer, plate_label_sizes)
    placer.place_fixed(inside_plates=False)
    centres = {name: (placer.x[name], placer.y(name)) for name in graph.names()}
    return _Layout(centres, {name: placer.box(name) for name in graph.names()},
                   placer.plate_boxes)


def _plate_boxes(graph: ModelGraph, placer: _Placer,
                 label_sizes: dict[str, tuple[float, float]]) -> None:
    """Draw each plate around its nodes (inner plates first), leaving a strip at the bottom
    for its label; move the plate's nodes sideways if a node outside it would be inside."""
    depth = {plate.name: len(graph.enclosing(plate)) for plate in graph.plates}
    for plate in sorted(graph.plates, key=lambda p: -depth[p.name]):
        members = _members(graph, plate)
        inner = [p for p in graph.plates if p.inside == plate.name]
        within = {p.name for p in _nested(graph, plate)}
        while True:
            box = _plate_box(placer, plate, members, inner, label_sizes[plate.name])
            intruder = next((placer.box(name) for name in placer.x if name not in members
                             and _overlaps(placer.box(name), box)), None)
            if intruder is None:  # a plate drawn beside this one (not inside it)
                intruder = next((other for name, other in placer.plate_boxes.items()
                                 if name not in within and _overlaps(other, box)), None)
            if intruder is None:
                break
            shift = intruder.right + _GAP - box.left
            for name in members:
                placer.x[name] += shift
            for nested in _nested(graph, plate):
                old = placer.plate_boxes[nested.name]
                placer.plate_boxes[nested.name] = _Box(old.left + shift, old.right + shift,
                                                       old.bottom, old.top)
        placer.plate_boxes[plate.name] = box


def _members(graph: ModelGraph, plate: Plate) -> set[str]:
    """The nodes inside ``plate``, in it directly or in a plate inside it."""
    names = set(plate.nodes)
    for nested in _nested(graph, plate):
        names.update(nested.nodes)
    return names


def _nested(graph: ModelGraph, plate: Plate) -> list[Plate]:
    return [p for p in graph.plates if p is not plate and plate in graph.enclosing(p)]


def _overlaps(a: _Box, b: _Box) -> bool:
    return a.left < b.right and b.left < a.right and a.bottom < b.top and b.bottom < a.top


def _plate_box(placer: _Placer, plate: Plate, members: set[str], inner: list[Plate],
               label_size: tuple[float, float]) -> _Box:
    boxes = [placer.box(name) for name in plate.nodes if name in placer.x]
    boxes += [placer.plate_boxes[p.name] for p in inner]
    label_width, label_height = label_size
    strip = label_height + 2 * _LABEL_OFFSET_PT * _PT
    left = min(b.left for b in boxes) - _PAD
    right = max(b.right for b in boxes) + _PAD
    right = max(right, left + label_width + 2 * _LABEL_OFFSET_PT * _PT)
    return _Box(left, right, min(b.bottom for b in boxes) - _PAD - strip,
                max(b.top for b in boxes) + _PAD)


# ------------------------------------------------------------------------------ render
def render(graph: ModelGraph, path: str | Path | None = None, *,
           fmt: str | Sequence[str] | None = None) -> Figure:
    """Draw ``graph`` with daft and return the matplotlib figure.

    With a ``path`` the figure is written there in the format its suffix names (png, svg
    or pdf); ``fmt`` names the format(s) instead, each written to ``path`` with that
    suffix: ``render(graph, "out/model", fmt=("png", "svg"))`` writes ``out/model.png``
    and ``out/model.svg``. The figure is not registered with pyplot.
    """
    if not isinstance(graph, ModelGraph):
        raise TypeError(f"graph must be a ModelGraph, not {type(graph).__name__}")
    targets = _targets(path, fmt)
    from poolwise.plots._style import style

    with style():
        figure = _draw(graph)
    for target, kind in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format=kind, dpi=200, metadata=_metadata(kind, graph.title))
    return figure


def _metadata(kind: str, title: str) -> dict[str, str | None]:
    if kind == "png":
        return {"Title": title}
    if kind == "svg":
        return {"Title": title, "Date": None}
    return {"Title": title, "CreationDate": None}


def _targets(path: str | Path | None, fmt: str | Sequence[str] | None
             ) -> list[tuple[Path, str]]:
    """The files to write and their formats."""
    if path is None:
        if fmt is not None:
            raise SpecificationError("fmt needs a path to write to")
        return []
    path = Path(path)
    if fmt is None:
        kind = path.suffix.lower().lstrip(".")
        if kind not in FORMATS:
            raise SpecificationError(
                f"cannot tell the format of {path} from its suffix; name it .png, .svg or "
                ".pdf, or pass fmt=")
        return [(path, kind)]
    kinds = [fmt] if isinstance(fmt, str) else list(fmt)
    for kind in kinds:
        if kind.lower() not in FORMATS:
            raise SpecificationError(
                f"unknown format {kind!r}; valid formats: {', '.join(FORMATS)}")
    return [(path.with_suffix(f".{kind.lower()}"), kind.lower()) for kind in kinds]


def _text_size(text: str, size: float) -> tuple[float, float, float]:
    """Width, height above the baseline and depth below it of mathtext ``text``, in grid
    units."""
    from matplotlib.textpath import TextPath

    extents = TextPath((0, 0), text, size=size).get_extents()
    return extents.width * _PT, max(extents.y1, 0.0) * _PT, max(-extents.y0, 0.0) * _PT


def _draw(graph: ModelGraph) -> Figure:
    import daft
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    font_size = float(mpl.rcParams["font.size"])
    label_sizes = {node.name: _text_size(node.label, font_size) for node in graph.nodes}
    plate_sizes = {}
    for plate in graph.plates:
        width, above, below = _text_size(plate.label, font_size)
        plate_sizes[plate.name] = (width, above + below)
    layout = _layout(graph, label_sizes, plate_sizes)

    boxes = [*layout.boxes.values(), *layout.plates.values()]
    title_height = 0.0
    if graph.title:
        title_height = 1.6 * _text_size(graph.title, font_size + 1)[1] + 0.1
    margin = 0.12
    left = min(b.left for b in boxes) - margin
    right = max(b.right for b in boxes) + margin
    bottom = min(b.bottom for b in boxes) - margin
    top = max(b.top for b in boxes) + margin + title_height
    if graph.title:
        right = max(right, left + _text_size(graph.title, font_size + 1)[0] + 2 * margin)

    pgm = daft.PGM(shape=(right - left, top - bottom), origin=(left, bottom),
                   grid_unit=_GRID_CM, node_unit=_NODE_CM, observed_style="shaded")
    for plate in graph.plates:
        box = layout.plates[plate.name]
        pgm.add_plate([box.left, box.bottom, box.right - box.left, box.top - box.bottom],
                      label=plate.label, position="bottom right",
                      label_offset=(_LABEL_OFFSET_PT, _LABEL_OFFSET_PT), fontsize=font_size)
    for node in graph.nodes:
        x, y = layout.centres[node.name]
        width = label_sizes[node.name][0]
        aspect = (None if node.kind == "fixed"
                  else max(1.0, (width + 8 * _PT) / (2 * _RADIUS)))
        pgm.add_node(node.name, node.label, x, y, aspect=aspect,
                     observed=node.kind == "observed", fixed=node.kind == "fixed",
                     fontsize=font_size)
    for parent, child in graph.edges:
        pgm.add_edge(parent, child)
    pgm.render()
    figure = pgm.figure
    if graph.title:
        pgm.ax.text((right - left) / 2 * _GRID_CM, (top - bottom - margin) * _GRID_CM,
                    graph.title, ha="center", va="top", fontsize=font_size + 1)
    plt.close(figure)  # daft makes the figure with pyplot; the caller owns it, not pyplot
    return figure
