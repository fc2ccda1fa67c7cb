"""Custom NumPyro models: loading, MAP, Laplace and NUTS against a closed form, graphs,
predictive checks, and a reduced version of the lecture's radioactive widgets."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

from poolwise import _arviz
from poolwise.custom import (
    CustomFit,
    CustomModel,
    latex_label,
    load_model,
    model_graph_from_numpyro,
)
from poolwise.exceptions import SamplingWarning, SpecificationError
from poolwise.fit import SUMMARY_COLUMNS, diagnostic_problems

ROOT = Path(__file__).parents[1]
DECAY = ROOT / "examples" / "models" / "decay.py"

# ------------------------------------------------------------------ the conjugate toy
#: y_i ~ N(μ, σ²) with σ known and μ ~ N(m0, s0²): the posterior of μ is normal with
#: precision 1/s0² + n/σ² and mean (m0/s0² + Σy/σ²) / precision (BDA3 §2.5), which is
#: also its mode, whatever the coordinates (μ is unconstrained).
Y = np.array([0.3, 1.2, 2.5, 1.9, 0.7, -0.4, 1.1])
SIGMA, M0, S0 = 1.5, 1.0, 2.0
PRECISION = 1 / S0**2 + Y.size / SIGMA**2
POST_MEAN = (M0 / S0**2 + Y.sum() / SIGMA**2) / PRECISION
POST_SD = PRECISION**-0.5


def normal_mean(y, sigma):
    mu = numpyro.sample("mu", dist.Normal(M0, S0))
    numpyro.deterministic("mu_doubled", 2 * mu)
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture(scope="module")
def toy() -> CustomModel:
    return CustomModel(normal_mean, {"y": Y}, sigma=SIGMA)


@pytest.fixture(scope="module")
def toy_nuts(toy: CustomModel) -> CustomFit:
    return toy.fit(draws=1000, warmup=500, chains=4, seed=1)


# ------------------------------------------------------------------ load_model
def write(tmp_path: Path, text: str, name: str = "my_model.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MODEL_FILE = """
import numpyro
import numpyro.distributions as dist

SCALE = 2.0

def model(y):
    mu = numpyro.sample("mu", dist.Normal(0, SCALE))
    numpyro.sample("y", dist.Normal(mu, 1), obs=y)

def no_sites(y):
    return y

def no_data(y):
    numpyro.sample("mu", dist.Normal(0, 1))

def _private():
    pass
"""


def test_load_model_returns_the_function(tmp_path):
    path = write(tmp_path, MODEL_FILE)
    function = load_model(f"{path}:model", {"y": np.array([1.0, 2.0])})
    assert callable(function) and function.__name__ == "model"


def test_load_model_missing_file(tmp_path):
    with pytest.raises(SpecificationError, match="no model file"):
        load_model(f"{tmp_path / 'nope.py'}:model")


def test_load_model_not_python(tmp_path):
    path = write(tmp_path, "x = 1", name="model.txt")
    with pytest.raises(SpecificationError, match=r"not a Python file \(\.py\)"):
        load_model(f"{path}:model")


def test_load_model_needs_a_function_name(tmp_path):
    path = write(tmp_path, MODEL_FILE)
    with pytest.raises(SpecificationError, match=r"FILE\.py:FUNCTION"):
        load_model(str(path))


def test_load_model_missing_function_lists_the_callables(tmp_path):
    path = write(tmp_path, MODEL_FILE)
    with pytest.raises(SpecificationError) as error:
        load_model(f"{path}:modle")
    message = str(error.value)
    assert "no function 'modle'" in message
    assert "model, no_data, no_sites" in message
    assert "_private" not in message and "\n" not in message


def test_load_model_not_callable(tmp_path):
    path = write(tmp_path, MODEL_FILE)
    with pytest.raises(SpecificationError, match="'SCALE' is a float, not a model function"):
        load_model(f"{path}:SCALE")


def test_load_model_syntax_error(tmp_path):
    path = write(tmp_path, "def model(y):\n    return (y\n")
    with pytest.raises(SpecificationError, match="syntax error on line") as error:
        load_model(f"{path}:model")
    assert "\n" not in str(error.value)


def test_load_model_import_error(tmp_path):
    path = write(tmp_path, "import not_a_module_anywhere\n")
    with pytest.raises(SpecificationError,
                       match=r"importing my_model\.py failed: ModuleNotFoundError"):
        load_model(f"{path}:model")


@pytest.mark.parametrize(("function", "message"), [
    ("no_sites", "not a NumPyro model: it has no numpyro.sample"),
    ("no_data", "none of its numpyro.sample sites \\(mu\\) is observed"),
])
def test_load_model_not_a_model(tmp_path, function, message):
    path = write(tmp_path, MODEL_FILE)
    with pytest.raises(SpecificationError, match=message):
        load_model(f"{path}:{function}", {"y": np.array([1.0])})


def test_a_failing_model_is_reported_in_one_line():
    def broken(y):
        raise RuntimeError("boom\nsecond line")

    with pytest.raises(SpecificationError, match=r"calling broken\(\) on the data failed: "
                       r"RuntimeError: boom$"):
        CustomModel(broken, {"y": Y})


# ------------------------------------------------------------------ data → keyword arguments
def test_table_columns_become_keyword_arguments():
    table = pd.DataFrame({"y": Y, "label": [f"s{i}" for i in range(Y.size)]})
    model = CustomModel(normal_mean, table, sigma=SIGMA)
    assert model.ignored == ("label",)
    assert set(model.kwargs) == {"y", "sigma"}


def test_unknown_and_missing_arguments():
    with pytest.raises(SpecificationError, match="has no argument 'z'; its arguments: y, sigma"):
        CustomModel(normal_mean, {"y": Y, "z": 1.0}, sigma=SIGMA)
    with pytest.raises(SpecificationError, match="needs 'sigma'"):
        CustomModel(normal_mean, {"y": Y})
    with pytest.raises(SpecificationError, match="given twice"):
        CustomModel(normal_mean, {"y": Y, "sigma": 1.0}, sigma=SIGMA)


# ------------------------------------------------------------------ against the closed form
@pytest.mark.parametrize("jacobian", [False, True])
@pytest.mark.parametrize("optimizer", ["newton", "lbfgs"])
def test_map_is_the_closed_form_mode(toy, jacobian, optimizer):
    mode = toy.map(jacobian=jacobian, optimizer=optimizer)
    assert mode.converged
    assert float(mode.params["mu"]) == pytest.approx(POST_MEAN, abs=1e-6)
    assert float(mode.params["mu_doubled"]) == pytest.approx(2 * POST_MEAN, abs=1e-6)


def test_laplace_matches_the_closed_form(toy):
    fit = toy.laplace(draws=4000, seed=3)
    assert not fit.is_mcmc
    draws = fit.draws("mu").ravel()
    # the approximation is exact here; 4000 independent draws: sd within 5% (~4.5 se)
    assert draws.std(ddof=1) == pytest.approx(POST_SD, rel=0.05)
    assert abs(draws.mean() - POST_MEAN) < 4 * POST_SD / np.sqrt(draws.size)
    assert fit.mode is not None and fit.mode.jacobian


def test_nuts_matches_the_closed_form_within_mcse(toy_nuts):
    table = toy_nuts.summary().set_index("param")
    row = table.loc["mu"]
    assert abs(row["mean"] - POST_MEAN) < 4 * row["mcse_mean"]
    assert row["sd"] == pytest.approx(POST_SD, rel=0.1)
    assert row["r_hat"] < 1.01
    assert toy_nuts.info["divergences"] == 0 and toy_nuts.info["preconditioned"]
    assert not diagnostic_problems(toy_nuts)


def test_nuts_from_the_prior_without_whitening(toy):
    fit = toy.fit(draws=1000, warmup=500, chains=4, init="prior", seed=2)
    assert fit.mode is None and not fit.info["preconditioned"]
    assert abs(fit.draws("mu").mean() - POST_MEAN) < 0.3


def test_map_fit_summary_has_the_mode_only(toy):
    table = toy.fit(method="map").summary()
    assert list(table.columns) == SUMMARY_COLUMNS
    row = table.set_index("param").loc["mu"]
    assert row["mean"] == pytest.approx(POST_MEAN, abs=1e-6)
    assert np.isnan(row["sd"]) and np.isnan(row["lower"])


def test_bad_options(toy):
    with pytest.raises(SpecificationError, match="unknown method 'gibbs'"):
        toy.fit(method="gibbs")
    with pytest.raises(SpecificationError, match="unknown init"):
        toy.fit(init="mode")
    with pytest.raises(SpecificationError, match="unknown optimizer"):
        toy.map(optimizer="adam")
    with pytest.raises(SpecificationError, match="start values for unknown site"):
        toy.map(start={"nu": 1.0})


# ------------------------------------------------------------------ the fit's tree
def test_tree_predictive_and_loo(toy_nuts, tmp_path):
    tree = toy_nuts.tree
    assert {"posterior", "log_likelihood", "observed_data", "sample_stats"} <= set(tree.children)
    assert set(toy_nuts.posterior.data_vars) == {"mu", "mu_doubled"}
    assert tree["log_likelihood"]["y"].shape == (4, 1000, Y.size)
    assert tree["log_likelihood"]["y"].dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(tree["observed_data"]["y"].values, Y)

    replicated = toy_nuts.posterior_predictive(seed=0)
    assert replicated["y"].shape == (4, 1000, Y.size)
    assert not np.allclose(replicated["y"].values[0, 0], Y)  # drawn afresh
    # y_rep ~ N(μ, σ²) at each draw: its mean over all draws is the posterior mean of μ
    assert abs(replicated["y"].values.mean() - POST_MEAN) < 0.1

    check = toy_nuts.ppc_summary()
    assert list(check["statistic"]) == ["mean", "sd", "min", "max"]
    assert check["p_value"].between(0.02, 0.98).all()
    assert check.loc[check["statistic"] == "mean", "p_value"].item() == pytest.approx(0.5,
                                                                                      abs=0.1)

    elpd = _arviz.loo(toy_nuts.with_log_likelihood())
    assert np.isfinite(float(elpd.elpd))

    toy_nuts.save(tmp_path / "toy.nc")
    loaded = _arviz.load(tmp_path / "toy.nc")
    assert loaded.attrs["model"] == "normal_mean" and loaded.attrs["method"] == "nuts"


# ------------------------------------------------------------------ graphs
def decay_data(n: int = 4) -> dict[str, np.ndarray | float]:
    return {"t_initial": np.zeros(n), "t_measured": np.linspace(50, 100, n),
            "N_measured": np.full(n, 0.5), "sigma_N_measured": np.full(n, 0.1),
            "N_initial_max": 10.0}


def test_graph_of_the_decay_model():
    model = load_model(f"{DECAY}:model")
    graph = model_graph_from_numpyro(model, **decay_data(7))
    kinds = {node.name: node.kind for node in graph.nodes}
    assert kinds == {"alpha": "latent", "N_initial": "latent", "N_measured": "observed",
                     "t_initial": "fixed", "t_measured": "fixed",
                     "sigma_N_measured": "fixed", "N_initial_max": "fixed"}
    assert graph.observed() == ("N_measured",)
    assert set(graph.parents("N_measured")) == {"alpha", "N_initial", "t_initial",
                                                "t_measured", "sigma_N_measured"}
    assert graph.parents("N_initial") == ("N_initial_max",)
    (plate,) = graph.plates
    assert plate.name == "widgets" and "7" in plate.label
    assert graph.plate_of("alpha") is None and graph.plate_of("N_initial_max") is None
    assert graph.plate_of("N_measured") == plate
    assert graph.node("alpha").label == r"$\alpha$"


def test_decay_model_from_a_table_with_labels():
    """As the command line runs it: a table whose columns are the model's arguments (and
    one it ignores), the plate labelled by the widgets' ids."""
    table = pd.DataFrame(decay_data(3) | {"widget": ["w1", "w2", "w3"]})
    model = CustomModel(load_model(f"{DECAY}:model"), table, name="decay.py:model",
                        coords={"widgets": table["widget"]})
    assert model.ignored == ("widget",)
    fit = model.fit(method="map")
    table = fit.summary()
    assert list(table.loc[table["param"] == "N_initial", "group"]) == ["w1", "w2", "w3"]
    with pytest.raises(SpecificationError, match="3 elements but 2 labels"):
        CustomModel(load_model(f"{DECAY}:model"), decay_data(3), coords={"widgets": [1, 2]})


def test_graph_of_the_day_model_from_a_fit():
    data = decay_data()
    data["manufacture_day"] = np.arange(4.0)
    del data["t_initial"]
    graph = CustomModel(load_model(f"{DECAY}:model_day"), data).graph()
    assert graph.node("t_initial").kind == "latent"
    assert graph.parents("t_initial") == ("manufacture_day",)


def test_nested_plates():
    def nested(y):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        with numpyro.plate("groups", y.shape[0], dim=-2):
            theta = numpyro.sample("theta", dist.Normal(mu, 1))
            with numpyro.plate("obs", y.shape[1], dim=-1):
                numpyro.sample("y", dist.Normal(theta, 1), obs=y)

    graph = model_graph_from_numpyro(nested, y=np.zeros((3, 5)))
    plates = {plate.name: plate for plate in graph.plates}
    assert plates["obs"].inside == "groups" and plates["groups"].inside is None
    assert plates["groups"].nodes == ("theta",) and plates["obs"].nodes == ("y",)
    assert graph.node("y").label == r"$\mathrm{y}_{i,j}$"


def test_crossed_plates_are_a_clear_error():
    def crossed(y):
        with numpyro.plate("rows", 3, dim=-2):
            r = numpyro.sample("r", dist.Normal(0, 1))
        with numpyro.plate("cols", 4, dim=-1):
            c = numpyro.sample("c", dist.Normal(0, 1))
        with numpyro.plate("rows", 3, dim=-2), numpyro.plate("cols", 4, dim=-1):
            numpyro.sample("y", dist.Normal(r + c, 1), obs=y)

    model = CustomModel(crossed, {"y": np.zeros((3, 4))})  # fits, but cannot be drawn
    with pytest.raises(SpecificationError, match="cross"):
        model.graph()


def test_dynamic_structure_is_a_clear_error():
    def dynamic(y):
        k = numpyro.sample("k", dist.Normal(0, 1))
        if k > 0:
            numpyro.sample("extra", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(k, 1), obs=y)

    with pytest.raises(SpecificationError, match="cannot draw the graph of dynamic") as error:
        model_graph_from_numpyro(dynamic, y=np.zeros(2))
    assert "\n" not in str(error.value)


def test_latex_labels():
    assert latex_label("tau") == r"$\tau$"
    assert latex_label("sigma_y", ["i"]) == r"$\sigma_{\mathrm{y},i}$"
    assert latex_label("N_initial") == r"$\mathrm{N}_{\mathrm{initial}}$"
    assert latex_label("theta", ["j"]) == r"$\theta_{j}$"


# ------------------------------------------------------------------ the widgets
@pytest.fixture(scope="module")
def widgets():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import radioactive_widgets
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return radioactive_widgets


def test_widget_simulation_is_the_lectures(widgets):
    sim = widgets.simulate(seed=0)
    assert sim["alpha"] == pytest.approx(0.5488135039273248e-6)  # np.random.seed(0) first draw
    assert sim["N_initial"].shape == (100,) and sim["N_initial_max"] == 10.0
    days = sim["t_measured"] / widgets.DAY
    assert days.min() >= 49 and days.max() <= 139
    assert sim["t_initial"].max() / widgets.DAY <= 35


def test_reduced_widgets_fit_recovers_alpha(widgets):
    """The notes' workflow on the notes' data (known t0), with fewer draws: the true α is
    inside the 90% interval."""
    sim = widgets.simulate(seed=0)
    known, _ = widgets.datasets(sim)
    model = CustomModel(load_model(f"{DECAY}:model"), known)
    with warnings.catch_warnings():
        # 2 × 300 draws leave a few of the 100 N_initial with R-hat above 1.01
        warnings.simplefilter("ignore", SamplingWarning)
        fit = model.fit(draws=300, warmup=300, chains=2, seed=0)
    row = fit.summary(0.9).set_index("param").loc["alpha"]
    truth = sim["alpha"] * widgets.DAY
    assert row["lower"] < truth < row["upper"]
    assert row["r_hat"] < 1.05
    assert fit.summary(0.9)["group"].notna().sum() == 100  # N_initial per widget
    assert fit.tree["log_likelihood"]["N_measured"].dims == ("chain", "draw", "widgets")
