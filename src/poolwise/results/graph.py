r"""Probabilistic graphical models as data, and the LaTeX pieces of the model equations.

:class:`ModelGraph` is plain data with no plotting dependency: nodes (latent circles,
observed shaded circles, fixed dots), edges and plates, checked for cycles, dangling edges
and impossible plates when it is built. Each model kind builds its own graph and equations
(``model.graph(data)``, ``model.equations(data)``); :func:`poolwise.outputs.render.render`
draws a graph with daft-pgm.

>>> graph = ModelGraph((GraphNode("theta", r"$\theta_j$", "latent"),
...                     GraphNode("y", "$y_j$", "observed")), (("theta", "y"),),
...                    (Plate("groups", range_label("j", "J"), ("theta", "y")),))
>>> graph.parents("y")
('theta',)
>>> print(latex("θ_j ~ Beta(α, β)"))
\theta_j \sim \mathrm{Beta}(\alpha, \beta)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from poolwise.exceptions import SpecificationError

__all__ = ["SYMBOLS", "UNICODE_SYMBOLS", "GraphNode", "ModelGraph", "NodeKind", "Plate",
           "latex", "maths", "number", "prior_line", "range_label"]

NodeKind = Literal["latent", "observed", "fixed"]
NODE_KINDS: tuple[str, ...] = ("latent", "observed", "fixed")


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

    # --- plain data ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The graph as JSON-ready lists (saved with fits whose graph cannot be rebuilt)."""
        return {"nodes": [[n.name, n.label, n.kind] for n in self.nodes],
                "edges": [list(edge) for edge in self.edges],
                "plates": [[p.name, p.label, list(p.nodes), p.inside] for p in self.plates],
                "title": self.title}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelGraph:
        """The graph :meth:`to_dict` wrote."""
        return cls(tuple(GraphNode(*node) for node in data["nodes"]),
                   tuple((a, b) for a, b in data["edges"]),
                   tuple(Plate(name, label, tuple(nodes), inside)
                         for name, label, nodes, inside in data["plates"]),
                   str(data["title"]))

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


# ------------------------------------------------------------------ shared LaTeX pieces
#: LaTeX and plain symbols of the population parameters' names
SYMBOLS = {"alpha": r"\alpha", "beta": r"\beta", "mu": r"\mu", "tau": r"\tau",
           "kappa": r"\kappa"}
UNICODE_SYMBOLS = {"alpha": "α", "beta": "β", "mu": "μ", "tau": "τ", "kappa": "κ"}
_GREEK = {"α": "alpha", "β": "beta", "μ": "mu", "τ": "tau", "θ": "theta", "σ": "sigma",
          "κ": "kappa"}


def range_label(index: str, extent: str) -> str:
    """A plate's label, ``$j = 1, \\ldots, 70$``."""
    return rf"${index} = 1, \ldots, {extent}$"


def number(value: float) -> str:
    return f"{value:g}"


def latex(text: str) -> str:
    """The plain-text maths of the priors' descriptions as LaTeX: ``"α^(-3/2) ∝ N(μ, τ²)"``
    → ``r"\\alpha^{-3/2} \\propto \\mathrm{N}(\\mu, \\tau^2)"``."""
    text = re.sub(r"\^\(([^()]*)\)", r"^{\1}", text)
    text = re.sub(r"\b([A-Z][A-Za-z]*)\(", r"\\mathrm{\1}(", text)
    text = text.replace("∝", r"\propto").replace("~", r"\sim").replace("²", "^2")
    return re.sub("[αβμτθσκ](?=([A-Za-z]?))",
                  lambda m: "\\" + _GREEK[m.group(0)] + (" " if m.group(1) else ""), text)


def prior_line(symbol: str, text: str) -> str:
    """``symbol ~ text`` in LaTeX, where ``text`` is a distribution as the priors print it
    (``"HalfNormal(10)"``), or ``p(symbol) ∝ 1`` for ``"flat"``."""
    if text.startswith("flat"):
        return latex(f"p({symbol}) ∝ 1")
    return latex(f"{symbol} ~ {text}")


def maths(description: str) -> str:
    """The maths of a prior's description, without the note in parentheses after it
    (the descriptions separate the two by two spaces)."""
    return description.split("  ")[0].strip()
