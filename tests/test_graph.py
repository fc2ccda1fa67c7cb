"""Graphical models: the structure built for every family × pooling on real data, the
equations with the priors' values, drawings that write PNG and SVG with nothing overlapping,
and clear errors for graphs that cannot be drawn."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle
from matplotlib.transforms import Bbox

from poolwise import GroupCounts, Model, SpecificationError, datasets
from poolwise.families.normal_inverse_gamma import NormalStats
from poolwise.kinds.nig import NIGData, NIGModel
from poolwise.outputs.render import render
from poolwise.results.graph import GraphNode, ModelGraph, Plate

matplotlib.use("Agg")

FAMILIES = ("beta-binomial", "gamma-poisson", "normal")
POOLINGS = ("partial", "none", "complete")


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(rats: pd.DataFrame) -> dict[str, GroupCounts]:
    """Each family's data as the model reads it: the 70 historical rat experiments, the
    first 250 counties of the kidney-cancer data, the eight schools."""
    kidney = datasets.load("kidney").iloc[:250]
    schools = datasets.load("eight-schools")
    return {
        "beta-binomial": Model(family="beta-binomial").prepare(
            rats, y="y", n="n", group="experiment"),
        "gamma-poisson": Model(family="gamma-poisson").prepare(
            kidney, y="deaths", n="population", group="Location"),
        "normal": Model(family="normal").prepare(schools, y="y", se="sigma", group="school"),
    }


def _size(family: str) -> str:
    return "sigma" if family == "normal" else "n"


def _hypers(family: str) -> tuple[str, str]:
    return ("mu", "tau") if family == "normal" else ("alpha", "beta")


# -------------------------------------------------------------------------- structure
def test_the_rats_plate_counts_the_70_historical_experiments(data):
    assert data["beta-binomial"].n_groups == 70
    graph = Model(family="beta-binomial").graph(data["beta-binomial"])
    assert [plate.label for plate in graph.plates] == [r"$j = 1, \ldots, 70$"]


@pytest.mark.parametrize(("family", "pooling"), list(itertools.product(FAMILIES, POOLINGS)))
def test_structure_of_every_family_and_pooling(data, family, pooling):
    counts = data[family]
    graph = Model(family=family, pooling=pooling).graph(counts)
    size = _size(family)
    kinds = {node.name: node.kind for node in graph.nodes}
    expected_edges = {("theta", "y"), (size, "y")}
    if pooling == "partial":  # the default reference prior: no hyperprior constants
        first, second = _hypers(family)
        assert kinds == {first: "latent", second: "latent", "theta": "latent",
                         size: "fixed", "y": "observed"}
        expected_edges |= {(first, "theta"), (second, "theta")}
    elif family == "normal":  # the default fixed prior of θ is flat: no constants
        assert kinds == {"theta": "latent", size: "fixed", "y": "observed"}
    else:  # Jeffreys Beta(1/2, 1/2) or Gamma(1/2, 0)
        assert kinds == {"a": "fixed", "b": "fixed", "theta": "latent", size: "fixed",
                         "y": "observed"}
        expected_edges |= {("a", "theta"), ("b", "theta")}
    assert set(graph.edges) == expected_edges
    assert len(graph.edges) == len(expected_edges)
    assert graph.observed() == ("y",)
    (plate,) = graph.plates
    assert plate.label == rf"$j = 1, \ldots, {counts.n_groups}$"
    assert plate.inside is None
    in_plate = {"y", size} | ({"theta"} if pooling != "complete" else set())
    assert set(plate.nodes) == in_plate
    theta_label = graph.node("theta").label
    assert theta_label == (r"$\theta$" if pooling == "complete" else r"$\theta_j$")
    assert graph.node(size).label == (r"$\sigma_j$" if family == "normal" else "$n_j$")
    assert family in graph.title


def test_without_data_the_plate_runs_to_J():
    graph = Model(family="gamma-poisson", pooling="none").graph()
    assert [plate.label for plate in graph.plates] == [r"$j = 1, \ldots, J$"]


@pytest.mark.parametrize(("prior", "constants"), [
    ("halfnormal(10)", {"alpha_scale": "$10$", "beta_scale": "$10$"}),
    ("gamma(2, 0.5)", {"alpha_shape": "$2$", "alpha_rate": "$0.5$",
                       "beta_shape": "$2$", "beta_rate": "$0.5$"}),
    ("alpha=exponential(0.1), beta=lognormal(1, 2)",
     {"alpha_rate": "$0.1$", "beta_mu": "$1$", "beta_sigma": "$2$"}),
])
def test_hyperprior_constants_are_fixed_dots_with_their_values(data, prior, constants):
    graph = Model(family="beta-binomial", prior=prior).graph(data["beta-binomial"])
    fixed = {name: graph.node(name).label for name in graph.fixed() if name != "n"}
    assert fixed == constants
    for name in constants:
        assert graph.children(name) == (name.split("_")[0],)
        assert graph.plate_of(name) is None
    assert graph.parents("alpha") == tuple(n for n in constants if n.startswith("alpha"))


def test_normal_hyperprior_constants(data):
    model = Model(family="normal", prior="mu=normal(0, 5), tau=halfcauchy(5)")
    graph = model.graph(data["normal"])
    assert {n: graph.node(n).label for n in graph.fixed()} == {
        "mu_mu": "$0$", "mu_sigma": "$5$", "tau_scale": "$5$", "sigma": r"$\sigma_j$"}
    assert graph.parents("theta") == ("mu", "tau")
    assert graph.parents("y") == ("theta", "sigma")
    assert graph.children("mu") == ("theta",)
    assert graph.plate_of("sigma") == graph.plates[0]
    assert graph.plate_of("mu") is None


def test_conjugate_constants_carry_their_values(data):
    model = Model(family="beta-binomial", pooling="none", prior="beta(2, 3)")
    graph = model.graph(data["beta-binomial"])
    assert graph.node("a").label == "$a = 2$"
    assert graph.node("b").label == "$b = 3$"
    normal = Model(family="normal", pooling="complete", prior="normal(1, 10)").graph()
    assert {n: normal.node(n).label for n in ("a", "b")} == {"a": "$a = 1$", "b": "$b = 10$"}


# -------------------------------------------------------------------------- equations
@pytest.mark.parametrize(("family", "likelihood"), [
    ("beta-binomial", r"y_j \sim \mathrm{Binomial}(n_j, \theta_j)"),
    ("gamma-poisson", r"y_j \sim \mathrm{Poisson}(n_j \, \theta_j)"),
    ("normal", r"y_j \sim \mathrm{N}(\theta_j, \sigma_j^2)"),
])
def test_equations_start_with_the_likelihood_over_the_groups(data, family, likelihood):
    lines = Model(family=family).equations(data[family])
    assert lines[0] == rf"{likelihood}, \quad j = 1, \ldots, {data[family].n_groups}"
    population = {"beta-binomial": r"\mathrm{Beta}(\alpha, \beta)",
                  "gamma-poisson": r"\mathrm{Gamma}(\alpha, \beta)",
                  "normal": r"\mathrm{N}(\mu, \tau^2)"}[family]
    assert lines[1] == rf"\theta_j \sim {population}"


def test_equations_give_the_hyperprior_values():
    lines = Model(family="beta-binomial", prior="halfnormal(10)").equations()
    assert lines[2:] == [r"\alpha \sim \mathrm{HalfNormal}(10)",
                         r"\beta \sim \mathrm{HalfNormal}(10)"]
    lines = Model(family="gamma-poisson", prior="alpha=gamma(2, 0.5), "
                            "beta=exponential(1.5)").equations()
    assert lines[2:] == [r"\alpha \sim \mathrm{Gamma}(2, 0.5)",
                         r"\beta \sim \mathrm{Exponential}(1.5)"]
    lines = Model(family="normal", prior="mu=flat, tau=halfcauchy(25)").equations()
    assert lines[2:] == [r"p(\mu) \propto 1", r"\tau \sim \mathrm{HalfCauchy}(25)"]


@pytest.mark.parametrize(("family", "prior", "line"), [
    ("beta-binomial", "bda", r"p(\alpha, \beta) \propto (\alpha + \beta)^{-5/2}"),
    ("gamma-poisson", "bda", r"p(\alpha, \beta) \propto \alpha^{-3/2} / \beta"),
    ("normal", "bda", r"p(\mu, \tau) \propto 1"),
    ("normal", "flat-tau2", r"p(\mu, \tau^2) \propto 1"),
])
def test_equations_of_the_joint_reference_priors(family, prior, line):
    assert Model(family=family, prior=prior).equations()[2:] == [line]


@pytest.mark.parametrize(("family", "pooling", "prior", "line"), [
    ("beta-binomial", "none", None, r"\theta_j \sim \mathrm{Beta}(0.5, 0.5)"),
    ("beta-binomial", "complete", "beta(2, 8)", r"\theta \sim \mathrm{Beta}(2, 8)"),
    ("gamma-poisson", "none", None, r"\theta_j \sim \mathrm{Gamma}(0.5, 0)"),
    ("normal", "none", None, r"p(\theta_j) \propto 1"),
    ("normal", "complete", "normal(0, 10)", r"\theta \sim \mathrm{Normal}(0, 10)"),
])
def test_equations_of_the_fixed_prior_of_theta(family, pooling, prior, line):
    lines = Model(family=family, pooling=pooling, prior=prior).equations()
    assert lines[1:] == [line]
    assert (r"\theta)" in lines[0] or r"\theta," in lines[0]) == (pooling == "complete")


# -------------------------------------------------------------------------- rendering
def _check_written(png: Path, svg: Path) -> None:
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert svg.stat().st_size > 0
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")


@pytest.mark.parametrize("family", FAMILIES)
def test_render_writes_png_and_svg(tmp_path, data, family):
    prior = "halfnormal(10)" if family != "normal" else None
    graph = Model(family=family, prior=prior).graph(data[family])
    open_before = plt.get_fignums()
    figure = render(graph, tmp_path / "model.png")
    assert isinstance(figure, Figure)
    render(graph, tmp_path / "model.svg")
    _check_written(tmp_path / "model.png", tmp_path / "model.svg")
    assert plt.get_fignums() == open_before  # daft's figure is not left with pyplot


def test_render_nig_in_several_formats_at_once(tmp_path):
    graph = NIGModel(pooling="none", prior="mu=0, tau=2, alpha=1, beta=1").graph(_nig_data(5))
    render(graph, tmp_path / "out" / "nig", fmt=("png", "svg"))
    _check_written(tmp_path / "out" / "nig.png", tmp_path / "out" / "nig.svg")


def test_render_without_a_path_only_draws():
    figure = render(Model(family="normal", pooling="none").graph())
    assert isinstance(figure, Figure)


def _extents(figure: Figure) -> tuple[list[Bbox], list[Bbox], list[tuple[Bbox, str]]]:
    """Window extents of the node circles (dots included), the plates and the texts."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    (ax,) = figure.axes
    # daft draws an observed node as two ellipses, a shaded one under an outline
    outlines = {tuple(p.get_window_extent(renderer).bounds) for p in ax.patches
                if isinstance(p, Ellipse)}
    circles = [Bbox.from_bounds(*bounds) for bounds in sorted(outlines)]
    plates = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle)]
    texts = [(t.get_window_extent(renderer), t.get_text()) for t in ax.texts]
    return circles, plates, texts


def _counts(n_groups: int) -> GroupCounts:
    return GroupCounts(np.arange(n_groups).astype(str), np.ones(n_groups),
                       np.full(n_groups, 10.0))


def _nig_data(n_groups: int) -> NIGData:
    return NIGData(np.arange(n_groups).astype(str),
                   NormalStats(np.full(n_groups, 3.0), np.zeros(n_groups), np.ones(n_groups)), "g")


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return (outer.x0 <= inner.x0 and inner.x1 <= outer.x1
            and outer.y0 <= inner.y0 and inner.y1 <= outer.y1)


@pytest.mark.parametrize("graph", [
    Model(family="beta-binomial", prior="halfnormal(10)").graph(_counts(70)),
    Model(family="normal", prior="mu=normal(0, 5), tau=halfcauchy(5)").graph(),
    Model(family="beta-binomial", pooling="complete").graph(),
    Model(family="gamma-poisson", pooling="none", prior="gamma(2, 0.001)").graph(),
    NIGModel(pooling="none", prior="mu=0, tau=2, alpha=1, beta=1").graph(_nig_data(70)),
], ids=["rats", "schools", "complete", "none", "nig"])
def test_nothing_overlaps(graph):
    """Circles apart; each label in its circle or clear of every circle and other label;
    each node wholly inside or wholly outside each plate, inside exactly its plates."""
    circles, plates, texts = _extents(render(graph))
    assert len(circles) == len(graph.nodes)
    assert len(plates) == len(graph.plates)
    for a, b in itertools.combinations(circles, 2):
        assert not a.overlaps(b)
    free_texts = []
    for box, text in texts:
        if any(_inside(box, c) for c in circles):  # a node's label, in its circle
            continue
        assert not any(box.overlaps(c) for c in circles), text
        free_texts.append((box, text))
    for (a, first), (b, second) in itertools.combinations(free_texts, 2):
        assert not a.overlaps(b), (first, second)
    for plate in plates:
        for circle in circles:
            assert _inside(circle, plate) or not circle.overlaps(plate)
    members = sum(len(_members(graph, p)) for p in graph.plates)
    assert sum(_inside(c, p) for c in circles for p in plates) == members


def _members(graph: ModelGraph, plate: Plate) -> set[str]:
    names = set(plate.nodes)
    for other in graph.plates:
        if other.inside == plate.name:
            names |= _members(graph, other)
    return names


@pytest.mark.parametrize(("path", "fmt", "message"), [
    ("model.jpg", None, "suffix"),
    ("model", None, "suffix"),
    ("model", "gif", "unknown format"),
    (None, "png", "needs a path"),
])
def test_render_rejects_unknown_formats(tmp_path, path, fmt, message):
    graph = Model().graph()
    with pytest.raises(SpecificationError, match=message):
        render(graph, None if path is None else tmp_path / path, fmt=fmt)


def test_render_wants_a_graph():
    with pytest.raises(TypeError, match="ModelGraph"):
        render(Model())  # type: ignore[arg-type]


# ------------------------------------------------------------------------- bad graphs
def _nodes(*names: str) -> tuple[GraphNode, ...]:
    return tuple(GraphNode(name, f"${name}$", "latent") for name in names)


@pytest.mark.parametrize(("nodes", "edges", "plates", "message"), [
    (_nodes("a", "b", "c"), [("a", "b"), ("b", "c"), ("c", "a")], (),
     "cycle, a → b → c → a"),
    (_nodes("a", "b"), [("a", "z")], (), "unknown node 'z'"),
    (_nodes("a"), [("a", "a")], (), "loop"),
    (_nodes("a", "b"), [("a", "b"), ("a", "b")], (), "same edge twice"),
    (_nodes("a", "b"), [("a", "b", "c")], (), r"\(parent, child\) pair"),
    ((*_nodes("a"), GraphNode("k", "$k$", "fixed")), [("a", "k")], (),
     "fixed node 'k' has parents"),
    (_nodes("a", "a"), [], (), "two nodes called 'a'"),
    ((GraphNode("a", "$a$", "hidden"),), [], (), "kind 'hidden'"),
    (_nodes("a"), [], (Plate("p", "$p$", ("z",)),), "unknown node 'z'"),
    (_nodes("a"), [], (Plate("p", "$p$", ("a",)), Plate("q", "$q$", ("a",))),
     "inside two plates"),
    (_nodes("a"), [], (Plate("p", "$p$", ("a",), inside="q"),), "unknown plate 'q'"),
    (_nodes("a", "b"), [], (Plate("p", "$p$", ("a",), inside="q"),
                            Plate("q", "$q$", ("b",), inside="p")), "loop"),
    (_nodes("a"), [], (Plate("p", "$p$", ()),), "empty"),
])
def test_graphs_that_cannot_be_drawn_say_why(nodes, edges, plates, message):
    with pytest.raises(SpecificationError, match=message):
        ModelGraph(nodes, tuple(edges), plates)


def test_queries_name_unknown_nodes():
    graph = Model().graph()
    with pytest.raises(SpecificationError, match="no node 'gamma'"):
        graph.parents("gamma")


def test_a_family_brings_its_own_likelihood_and_size_node():
    """A new family is one module: its graph and equations come from its own attributes."""
    class Custom(type(Model().family)):  # type: ignore[misc]
        name = "custom"
        likelihood_latex = r"\mathrm{{Custom}}({size}_j, {theta})"
        size_node = ("m", "m")

    model = Model(family=Custom())
    assert model.equations()[0].startswith(r"y_j \sim \mathrm{Custom}(m_j, \theta_j)")
    assert model.graph().parents("y") == ("theta", "m")


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson", "normal"])
def test_nested_equations_parse_and_carry_the_values(family):
    from matplotlib.mathtext import MathTextParser

    from poolwise.kinds.nested import NestedModel

    parser = MathTextParser("agg")
    size = "se" if family == "normal" else "n"
    six_labs = pd.DataFrame({"lab": np.repeat(list("ABCDEF"), 2), "experiment": [1, 2] * 6,
                             "y": [3, 5] * 6, size: [10.0, 12.0] * 6})
    model = NestedModel(family=family, prior="s_u=halfnormal(0.5)")
    lines = model.equations(model.prepare(six_labs, y="y", **{size: size}))
    assert r"i = 1, \ldots, 6" in lines[0]
    assert r"s_u \sim \mathrm{HalfNormal}(0.5)" in lines
    for line in lines:
        parser.parse(f"${line}$", dpi=72)
