"""Drawing a :class:`~poolwise.results.graph.ModelGraph` with daft-pgm.

The drawing follows the lecture notes' conventions: random quantities are circles, observed
ones shaded; fixed quantities (known sizes n_j or standard errors σ_j, the constants of a
prior) are small dots; plates are boxes around what is repeated for every group, labelled
with the range of their index in the bottom-right corner. Rows are placed from the graph's
structure (a node below its random parents), and plates are sized around what they hold.
daft and matplotlib are imported only when a graph is drawn.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from poolwise.exceptions import SpecificationError
from poolwise.results.graph import ModelGraph, Plate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "render"]

#: the file formats :func:`render` writes
FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


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
    from poolwise.outputs.plots._style import style

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
                ".pdf")
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
