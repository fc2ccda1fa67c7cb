"""Graphical models and equations of mixed models: the structure built for the bundled data
(sleepstudy, the nested and crossed pastes terms, binomial rats, Poisson kidney counts with
an offset), complete and no pooling, the equations with the priors' values, and drawings
that write PNG and SVG with nothing overlapping."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.mathtext import MathTextParser
from matplotlib.patches import Ellipse, Rectangle
from matplotlib.transforms import Bbox

from poolwise import MixedModel, SpecificationError, datasets
from poolwise.kinds.mixed.graph import mixed_equations, mixed_graph
from poolwise.kinds.mixed.model import MixedData
from poolwise.outputs.render import render
from poolwise.results.graph import ModelGraph, Plate

matplotlib.use("Agg")

SLEEP = "Reaction ~ Days + (Days | Subject)"
PASTES_NESTED = "strength ~ 1 + (1 | batch/cask)"
PASTES_CROSSED = "strength ~ 1 + (1 | batch) + (1 | cask)"


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def pastes() -> pd.DataFrame:
    return datasets.load("pastes")


Built = tuple[MixedModel, MixedData]


def built(formula: str, table: pd.DataFrame, **settings: str) -> Built:
    """A model and its prepared data, as graph() and equations() take them."""
    model = MixedModel(formula=formula, **settings)
    return model, model.prepare(table)


def graph_of(pair: Built) -> ModelGraph:
    return mixed_graph(*pair)


def equations_of(pair: Built) -> list[str]:
    return mixed_equations(*pair)


@pytest.fixture(scope="module")
def models(sleep, pastes) -> dict[str, Built]:
    kidney = datasets.load("kidney").iloc[:300]
    return {
        "sleepstudy": built(SLEEP, sleep),
        "nested": built(PASTES_NESTED, pastes),
        "crossed": built(PASTES_CROSSED, pastes),
        "binomial": built("y | trials(n) ~ 1 + (1 | experiment)", datasets.load("rats"),
                          family="binomial"),
        "poisson": built("deaths ~ 1 + offset(log(population)) + (1 | state)", kidney,
                         family="poisson"),
        "complete": built(SLEEP, sleep, pooling="complete"),
        "none": built(SLEEP, sleep, pooling="none"),
    }


def _plate(graph: ModelGraph, node: str) -> Plate:
    plate = graph.plate_of(node)
    assert plate is not None, node
    return plate


# ------------------------------------------------------------------------ structure
def test_sleepstudy_partial_pooling(models):
    graph = graph_of(models["sleepstudy"])
    assert set(graph.names()) == {
        "b", "b_mu", "b_sigma", "sigma", "sigma_scale",
        "sd_Subject[Intercept]", "sd_Subject[Intercept]_scale",
        "sd_Subject[Days]", "sd_Subject[Days]_scale", "cor_Subject", "cor_Subject_eta",
        "r_Subject", "y", "x"}
    assert graph.observed() == ("y",)
    assert {graph.node(n).kind for n in ("b", "sigma", "r_Subject", "cor_Subject",
                                         "sd_Subject[Days]")} == {"latent"}
    assert set(graph.fixed()) == {"b_mu", "b_sigma", "sigma_scale", "x", "cor_Subject_eta",
                                  "sd_Subject[Intercept]_scale", "sd_Subject[Days]_scale"}
    assert set(graph.parents("y")) == {"b", "sigma", "r_Subject", "x"}
    assert graph.parents("r_Subject") == ("sd_Subject[Intercept]", "sd_Subject[Days]",
                                          "cor_Subject")
    assert graph.parents("b") == ("b_mu", "b_sigma")
    obs, subject = _plate(graph, "y"), _plate(graph, "r_Subject")
    assert obs.label == r"$i = 1, \ldots, 180$" and set(obs.nodes) == {"y", "x"}
    assert subject.label == r"Subject: $l = 1, \ldots, 18$" and subject.nodes == ("r_Subject",)
    assert obs.inside is None and subject.inside is None
    for name in ("b", "sigma", "cor_Subject", "sd_Subject[Days]"):
        assert graph.plate_of(name) is None
    assert "Subject" in graph.node("r_Subject").label
    assert graph.title == "Reaction ~ Days + (Days | Subject), normal, partial pooling"


def test_prior_constants_show_their_values(models):
    graph = graph_of(models["sleepstudy"])
    # b[Intercept] ~ Normal(298.508, 140.822), b[Days] ~ Normal(0, 48.8915)
    # a vector of constants is named, not a bare tuple
    assert graph.node("b_mu").label == r"$m_{\beta} = (298.5, 0)$"
    assert graph.node("b_sigma").label == r"$s_{\beta} = (140.8, 48.89)$"
    assert graph.node("sigma_scale").label == "$56.33$"
    assert graph.node("sd_Subject[Days]_scale").label == "$19.56$"
    assert graph.node("cor_Subject_eta").label == "$2$"


def test_many_coefficients_get_symbolic_constants():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"y": rng.normal(size=40), "g": np.repeat(list("abcd"), 10),
                          **{f"x{k}": rng.normal(size=40) for k in range(4)}})
    graph = graph_of(built("y ~ x0 + x1 + x2 + x3 + (1 | g)", table))
    assert graph.node("b_mu").label == r"$m_{\beta}$"
    assert graph.node("b_sigma").label == r"$s_{\beta}$"


def test_pastes_nested_plates(models, pastes):
    assert pastes["batch"].nunique() == 10
    assert pastes.groupby(["batch", "cask"]).ngroups == 30
    graph = graph_of(models["nested"])
    batch, cask = _plate(graph, "r_batch"), _plate(graph, "r_batch:cask")
    assert cask.inside == batch.name and batch.inside is None
    assert graph.enclosing(cask) == (cask, batch)
    assert batch.label == r"batch: $l = 1, \ldots, 10$"
    assert cask.label == r"cask in batch: $m = 1, \ldots, 30$"
    assert graph.parents("r_batch:cask") == ("sd_batch:cask[Intercept]",)
    assert set(graph.parents("y")) == {"b", "sigma", "r_batch", "r_batch:cask"}
    assert "x" not in graph.names()  # an intercept-only model has no covariates
    assert "cor_batch" not in graph.names()


def test_factors_nested_in_the_data_nest_their_plates(pastes):
    # sample ("A:a", …) lies within batch without the formula saying so
    graph = graph_of(built("strength ~ 1 + (1 | batch) + (1 | sample)", pastes))
    assert _plate(graph, "r_sample").inside == _plate(graph, "r_batch").name
    assert _plate(graph, "r_sample").label == r"sample in batch: $m = 1, \ldots, 30$"


def test_crossed_factors_get_separate_plates(models):
    graph = graph_of(models["crossed"])
    batch, cask = _plate(graph, "r_batch"), _plate(graph, "r_cask")
    assert batch is not cask
    assert batch.inside is None and cask.inside is None
    assert batch.label == r"batch: $l = 1, \ldots, 10$"
    assert cask.label == r"cask: $m = 1, \ldots, 3$"
    assert len(graph.plates) == 3


def test_binomial_has_trials_and_no_sigma(models):
    graph = graph_of(models["binomial"])
    assert "sigma" not in graph.names()
    assert graph.node("n").kind == "fixed" and _plate(graph, "n") is _plate(graph, "y")
    assert set(graph.parents("y")) == {"b", "r_experiment", "n"}
    assert _plate(graph, "r_experiment").label == r"experiment: $l = 1, \ldots, 71$"
    lines = equations_of(models["binomial"])
    assert lines[0] == r"y_i \sim \mathrm{Binomial}(n_i, p_i), \quad i = 1, \ldots, 71"
    assert lines[1] == r"\mathrm{logit}(p_i) = \beta_0 + b_{\mathrm{experiment}[i]}"


def test_bernoulli_has_no_trials():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"y": rng.integers(0, 2, 60), "x": rng.normal(size=60),
                          "g": np.repeat(list("abcdef"), 10)})
    model = built("y ~ x + (1 | g)", table, family="bernoulli")
    assert set(graph_of(model).parents("y")) == {"b", "r_g", "x"}
    assert equations_of(model)[0].startswith(r"y_i \sim \mathrm{Bernoulli}(p_i)")


def test_poisson_has_the_offset(models):
    graph = graph_of(models["poisson"])
    assert graph.node("offset").kind == "fixed"
    assert _plate(graph, "offset") is _plate(graph, "y")
    assert set(graph.parents("y")) == {"b", "r_state", "offset"}
    lines = equations_of(models["poisson"])
    assert lines[0] == r"y_i \sim \mathrm{Poisson}(\lambda_i), \quad i = 1, \ldots, 300"
    assert lines[1] == (r"\log \lambda_i = \log(\mathrm{population}_i) + \beta_0 "
                        r"+ b_{\mathrm{state}[i]}")


def test_complete_pooling(models):
    graph = graph_of(models["complete"])
    assert set(graph.names()) == {"b", "b_mu", "b_sigma", "sigma", "sigma_scale", "y", "x"}
    assert [plate.label for plate in graph.plates] == [r"$i = 1, \ldots, 180$"]
    assert graph.title.endswith("complete pooling")
    lines = equations_of(models["complete"])
    assert lines[1] == r"\mu_i = \beta_0 + \beta_1 \mathrm{Days}_i"
    assert not any("b_" in line for line in lines)


def test_no_pooling_draws_per_level_coefficients_in_a_plate(models):
    graph = graph_of(models["none"])
    # Intercept and Days are spanned by the per-subject columns: no shared β is left
    assert "b" not in graph.names() and "r_Subject" not in graph.names()
    plate = _plate(graph, "b[Subject]")
    assert plate.label == r"Subject: $l = 1, \ldots, 18$" and plate.nodes == ("b[Subject]",)
    assert set(graph.parents("y")) == {"b[Subject]", "sigma", "x"}
    # every subject has the same priors: Normal(0, 613.068) and Normal(0, 113.873)
    assert graph.node("b[Subject]_mu").label == r"$m_{\beta} = 0$"
    assert graph.node("b[Subject]_sigma").label == r"$s_{\beta} = (613.1, 113.9)$"
    assert graph.plate_of("b[Subject]_sigma") is None
    lines = equations_of(models["none"])
    assert lines[1] == (r"\mu_i = \beta_{0,\mathrm{Subject}[i]} + \beta_{1,\mathrm{Subject}[i]}"
                        r" \mathrm{Days}_i")
    assert (r"\beta_{1,\mathrm{Subject},l} \sim \mathrm{Normal}(0, 113.873), "
            r"\quad l = 1, \ldots, 18") in lines


def test_no_pooling_with_shared_coefficients_and_level_specific_priors():
    radon = datasets.load("radon")
    model = built("log_radon ~ floor + log_uppm + (1 | county)", radon, pooling="none")
    graph = graph_of(model)
    # floor stays shared; log_uppm (a county-level column) is spanned by the counties
    assert set(graph.parents("y")) == {"b", "b[county]", "sigma", "x"}
    assert graph.node("b_sigma").label == r"$s_{\beta} = 5.724$"
    # the counties' priors differ, so their scale is a symbol inside the plate
    assert _plate(graph, "b[county]_sigma") is _plate(graph, "b[county]")
    assert graph.node("b[county]_sigma").label == r"$s_{\beta,l}$"
    lines = equations_of(model)
    assert lines[1] == r"\mu_i = \beta_1 \mathrm{floor}_i + \beta_{0,\mathrm{county}[i]}"
    assert r"\beta_1 \sim \mathrm{Normal}(0, 5.72367)" in lines
    assert sum(r"\beta_{0,\mathrm{county},l}" in line for line in lines) == 85
    assert (r"\beta_{0,\mathrm{county},l} \sim \mathrm{Normal}(0, 37.3789), "
            r"\quad l = \mathrm{BIG\ STONE}") in lines


def test_no_pooling_of_a_nested_term_keeps_the_inner_factor(pastes):
    graph = graph_of(built(PASTES_NESTED, pastes, pooling="none"))
    plate = _plate(graph, "b[batch:cask]")
    assert plate.label == r"batch:cask: $l = 1, \ldots, 30$" and plate.inside is None


# ------------------------------------------------------------------------ equations
def test_sleepstudy_equations(models):
    assert equations_of(models["sleepstudy"]) == [
        r"y_i \sim \mathrm{N}(\mu_i, \sigma^2), \quad i = 1, \ldots, 180",
        r"\mu_i = \beta_0 + \beta_1 \mathrm{Days}_i + b_{0,\mathrm{Subject}[i]} "
        r"+ b_{1,\mathrm{Subject}[i]} \mathrm{Days}_i",
        r"(b_{0,\mathrm{Subject},l}, b_{1,\mathrm{Subject},l})^\top \sim "
        r"\mathrm{MVN}(\mathbf{0}, \Sigma_{\mathrm{Subject}}), \quad l = 1, \ldots, 18",
        r"\Sigma_{\mathrm{Subject}} = \mathrm{diag}(\tau_{0,\mathrm{Subject}}, "
        r"\tau_{1,\mathrm{Subject}}) \, \Omega_{\mathrm{Subject}} \, "
        r"\mathrm{diag}(\tau_{0,\mathrm{Subject}}, \tau_{1,\mathrm{Subject}})",
        r"\beta_0 \sim \mathrm{Normal}(298.508, 140.822)",
        r"\beta_1 \sim \mathrm{Normal}(0, 48.8915)",
        r"\sigma \sim \mathrm{HalfNormal}(56.3288)",
        r"\tau_{0,\mathrm{Subject}} \sim \mathrm{HalfNormal}(56.3288)",
        r"\tau_{1,\mathrm{Subject}} \sim \mathrm{HalfNormal}(19.5566)",
        r"\Omega_{\mathrm{Subject}} \sim \mathrm{LKJ}(2)",
    ]


def test_equations_carry_every_prior_value(sleep):
    model = built(SLEEP, sleep, prior="b[Days] = normal(10, 20); sigma = gamma(2, 0.1); "
                                      "sd[Subject][Days] = halfcauchy(7); cor = lkj(3)")
    lines = equations_of(model)
    assert r"\beta_1 \sim \mathrm{Normal}(10, 20)" in lines
    assert r"\sigma \sim \mathrm{Gamma}(2, 0.1)" in lines
    assert r"\tau_{1,\mathrm{Subject}} \sim \mathrm{HalfCauchy}(7)" in lines
    assert r"\Omega_{\mathrm{Subject}} \sim \mathrm{LKJ}(3)" in lines
    # every description's numbers reach the equations
    for description in model[1].priors.describe():
        numbers = description.split("~")[1]
        assert any(numbers.split("(")[1] in line for line in lines), description
    graph = graph_of(model)
    assert graph.parents("sigma") == ("sigma_shape", "sigma_rate")
    assert graph.node("sigma_rate").label == "$0.1$"


def test_nested_and_uncorrelated_equations(models):
    lines = equations_of(models["nested"])
    assert lines[1] == r"\mu_i = \beta_0 + b_{\mathrm{batch}[i]} + b_{\mathrm{batch{:}cask}[i]}"
    assert (r"b_{\mathrm{batch{:}cask},m} \sim \mathrm{N}(0, \tau_{\mathrm{batch{:}cask}}^2), "
            r"\quad m = 1, \ldots, 30") in lines
    radon = datasets.load("radon")
    model = built("log_radon ~ floor + log_uppm + (1 + floor || county)", radon)
    lines = equations_of(model)
    assert r"\beta_2 \mathrm{log\_uppm}_i" in lines[1]
    assert (r"b_{1,\mathrm{county},l} \sim \mathrm{N}(0, \tau_{1,\mathrm{county}}^2), "
            r"\quad l = 1, \ldots, 85") in lines
    assert not any("MVN" in line or "Omega" in line for line in lines)
    assert "cor_county" not in graph_of(model).names()


def test_every_equation_and_label_is_valid_mathtext(models):
    parser = MathTextParser("path")
    for model in models.values():
        for line in equations_of(model):
            parser.parse(f"${line}$", 72)
        graph = graph_of(model)
        for text in [n.label for n in graph.nodes] + [p.label for p in graph.plates]:
            parser.parse(text, 72)


def test_only_mixed_models_are_drawn(models):
    _, data = models["sleepstudy"]
    with pytest.raises(TypeError, match="MixedModel"):
        mixed_graph("Reaction ~ Days", data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MixedModel"):
        mixed_equations(None, data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model.prepare\(table\)"):
        mixed_graph(MixedModel(formula=SLEEP), None)  # type: ignore[arg-type]


def test_the_model_draws_itself_from_a_table_or_prepared_data(models, sleep):
    model, data = models["sleepstudy"]
    assert model.graph(sleep) == model.graph(data) == mixed_graph(model, data)
    assert model.equations(sleep) == mixed_equations(model, data)
    with pytest.raises(SpecificationError, match="depend on its data"):
        model.equations()


# -------------------------------------------------------------------------- render
@pytest.mark.parametrize("name", ["sleepstudy", "nested", "none"])
def test_render_writes_png_and_svg(tmp_path, models, name):
    figure = render(graph_of(models[name]), tmp_path / name, fmt=("png", "svg"))
    assert isinstance(figure, Figure)
    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(svg).getroot().tag.endswith("svg")


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return (outer.x0 <= inner.x0 and inner.x1 <= outer.x1
            and outer.y0 <= inner.y0 and inner.y1 <= outer.y1)


@pytest.mark.parametrize("name", [
    "sleepstudy", "binomial", "poisson", "complete", "none", "nested", "crossed",
])
def test_nothing_overlaps(models, name):
    """Circles apart, free labels clear of circles and of each other, each circle wholly
    inside or outside each plate, and plates either nested or apart."""
    graph = graph_of(models[name])
    figure = render(graph)
    renderer = FigureCanvasAgg(figure).get_renderer()
    (ax,) = figure.axes
    circles = [Bbox.from_bounds(*b) for b in sorted(
        {tuple(p.get_window_extent(renderer).bounds) for p in ax.patches
         if isinstance(p, Ellipse)})]
    plates = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle)]
    assert len(circles) == len(graph.nodes) and len(plates) == len(graph.plates)
    for a, b in itertools.combinations(circles, 2):
        assert not a.overlaps(b)
    free = []
    for box, text in ((t.get_window_extent(renderer), t.get_text()) for t in ax.texts):
        if not any(_inside(box, c) for c in circles):
            assert not any(box.overlaps(c) for c in circles), text
            free.append((box, text))
    for (a, first), (b, second) in itertools.combinations(free, 2):
        assert not a.overlaps(b), (first, second)
    for plate in plates:
        for circle in circles:
            assert _inside(circle, plate) or not circle.overlaps(plate)
    for a, b in itertools.combinations(plates, 2):
        assert _inside(a, b) or _inside(b, a) or not a.overlaps(b)
