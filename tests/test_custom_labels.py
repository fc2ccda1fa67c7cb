"""Custom models as their data name them: the priors written with every parameter
(``HalfStudentT(4, 3.7)``, not ``FoldedDistribution()``), plates labelled by a group column
of the data (``group="region"``, ``--group region``), and divergences answered with advice
that names the Python argument and the command-line option."""

from __future__ import annotations

import json
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

import poolwise
from poolwise import CustomModel
from poolwise.cli import main
from poolwise.exceptions import DataError, SamplingWarning, SpecificationError
from poolwise.kinds.custom import describe_distribution, distribution_values

T = dist.transforms


# ------------------------------------------------------------------ priors in full
@pytest.mark.parametrize(("distribution", "text"), [
    (dist.Normal(0.0, 10.0), "Normal(0, 10)"),
    (dist.FoldedDistribution(dist.StudentT(4.0, 0.0, 3.7)), "HalfStudentT(4, 3.7)"),
    (dist.FoldedDistribution(dist.Normal(0.0, 2.5)), "HalfNormal(2.5)"),
    (dist.FoldedDistribution(dist.Normal(1.0, 2.0)), "FoldedDistribution(Normal(1, 2))"),
    (dist.HalfCauchy(5.0), "HalfCauchy(5)"),
    (dist.StudentT(3.0, 1.0, 2.0), "StudentT(3, 1, 2)"),
    (dist.LogNormal(0.0, 0.5), "LogNormal(0, 0.5)"),
    (dist.Gamma(2.0, 0.1), "Gamma(2, 0.1)"),
    (dist.InverseGamma(3.0, 1.0), "InverseGamma(3, 1)"),
    (dist.Beta(0.5, 0.5), "Beta(0.5, 0.5)"),
    (dist.Exponential(1.5), "Exponential(1.5)"),
    (dist.Uniform(0.0, 10.0), "Uniform(0, 10)"),
    (dist.Binomial(10, 0.3), "Binomial(10, 0.3)"),
    (dist.Binomial(10, logits=0.2), "Binomial(10, logits=0.2)"),
    (dist.Bernoulli(logits=-1.0), "Bernoulli(logits=-1)"),
    (dist.Poisson(3.0), "Poisson(3)"),
    (dist.NegativeBinomial2(3.0, 2.0), "NegativeBinomial2(3, 2)"),
    (dist.TruncatedNormal(0.0, 1.0, low=0.0), "TruncatedNormal(0, 1, low=0)"),
    (dist.TruncatedNormal(0.0, 1.0, low=-1.0, high=3.0), "TruncatedNormal(0, 1, low=-1, high=3)"),
    (dist.TruncatedDistribution(dist.StudentT(3.0, 0.0, 1.0), high=2.0),
     "TruncatedDistribution(StudentT(3, 0, 1), high=2)"),
    (dist.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.eye(2)),
     "MultivariateNormal(0, scale_tril=<4 values>)"),
    (dist.LKJCholesky(3, 2.0), "LKJCholesky(3, 2)"),
    (dist.Dirichlet(jnp.ones(4)), "Dirichlet(1)"),
    (dist.Normal(jnp.arange(3.0), 1.0), "Normal(<3 values>, 1)"),
    (dist.Normal(0.0, 1.0).expand([3]).to_event(1), "Normal(0, 1)"),
    (dist.HalfNormal(2.0).expand([4]).mask(False), "HalfNormal(2)"),
    (dist.TransformedDistribution(dist.Normal(0.0, 1.0),
                                  [T.AffineTransform(2.0, 3.0), T.ExpTransform()]),
     "TransformedDistribution(Normal(0, 1), [AffineTransform(2, 3), ExpTransform()])"),
    (dist.ImproperUniform(dist.constraints.real, (), ()), "ImproperUniform()"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_distribution_is_written_with_its_parameters(distribution, text) -> None:
    assert describe_distribution(distribution) == text


def test_distribution_values_follow_the_written_order() -> None:
    folded = dist.FoldedDistribution(dist.StudentT(4.0, 0.0, 3.7))
    assert [float(v) for v in distribution_values(folded)] == [4.0, 3.7]
    assert describe_distribution(dist.Binomial(10, logits=0.2), latex=True) == (
        r"\mathrm{Binomial}(10, \mathrm{logits} = 0.2)")


MODEL_FILE = """
import numpyro
import numpyro.distributions as dist


def by_region(region, y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    tau = numpyro.sample("tau", dist.FoldedDistribution(dist.StudentT(4.0, 0.0, 3.7)))
    with numpyro.plate("regions", int(region.max()) + 1):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(theta[region], 1.0), obs=y)
"""


@pytest.fixture(scope="module")
def by_region(tmp_path_factory) -> str:
    """A normal hierarchical model whose groups the data name (``region``: 0, 1, ...), as
    ``FILE.py:by_region``."""
    path = tmp_path_factory.mktemp("model") / "regions.py"
    path.write_text(MODEL_FILE)
    return f"{path}:by_region"


def truncated(region, y):
    """The same with θ truncated below −20."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    tau = numpyro.sample("tau", dist.FoldedDistribution(dist.StudentT(4.0, 0.0, 3.7)))
    with numpyro.plate("regions", int(region.max()) + 1):
        theta = numpyro.sample("theta", dist.TruncatedNormal(mu, tau, low=-20.0))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(theta[region], 1.0), obs=y)


@pytest.fixture(scope="module")
def regions() -> pd.DataFrame:
    """12 rows of three regions, shuffled, far apart: south ≈ 8, north ≈ 0, east ≈ −5."""
    rng = np.random.default_rng(1)
    region = np.array(["north"] * 4 + ["south"] * 5 + ["east"] * 3)
    rng.shuffle(region)
    centre = {"north": 0.0, "south": 8.0, "east": -5.0}
    y = np.array([centre[r] for r in region]) + rng.normal(size=region.size)
    return pd.DataFrame({"region": region, "y": y})


def test_priors_are_written_in_full(regions) -> None:
    model = CustomModel(model=truncated)
    assert model.describe_prior(regions.assign(region=pd.factorize(regions["region"])[0])) == (
        "mu ~ Normal(0, 10); tau ~ HalfStudentT(4, 3.7); "
        "theta ~ TruncatedNormal(mu, tau, low=-20)")
    equations = model.equations(model.prepare(regions, group="region"))
    assert r"\tau \sim \mathrm{HalfStudentT}(4, 3.7)" in equations
    assert (r"\theta_{i} \sim \mathrm{TruncatedNormal}(\mu, \tau, \mathrm{low} = -20), "
            r"\quad i = 1, \ldots, 3") in equations


# ------------------------------------------------------------------ groups by their names
def test_a_group_column_labels_its_plate(by_region, regions, tmp_path) -> None:
    """group="region" gives the function each row's level (in order of first appearance),
    as coding the column by hand would, and labels the plate of three with the names; each
    name's θ is its own rows' level."""
    model = CustomModel(model=by_region, method="laplace", draws=100, chains=1, seed=3,
                        restarts=0)
    prepared = model.prepare(regions, group="region")
    codes, levels = pd.factorize(regions["region"])
    np.testing.assert_array_equal(prepared.kwargs["region"], codes)
    assert prepared.labels == tuple(levels) and prepared.group_plate == "regions"
    fit = model.fit(prepared)
    theta = fit.summary().query("param == 'theta'").set_index("group")
    assert list(theta.index) == list(dict.fromkeys(regions["region"]))
    # the rows' means with known σ = 1 and a wide population: θ within 4 of their sd
    means = regions.groupby("region")["y"].mean()
    counts = regions.groupby("region")["y"].size()
    for name, row in theta.iterrows():
        assert abs(row["mean"] - means[name]) < 4 / np.sqrt(counts[name])
    check = fit.predictive_check().query("statistic == 'group mean'")
    assert sorted(check["group"]) == ["east", "north", "south"]
    labels = {plate.name: plate.label for plate in fit.graph().plates}
    assert labels["regions"] == f"regions, $i$ = {', '.join(levels)}"
    fit.save(tmp_path / "regions.nc")
    loaded = poolwise.load(tmp_path / "regions.nc")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    pd.testing.assert_frame_equal(loaded.predictive_check(), fit.predictive_check())
    assert loaded.graph() == fit.graph()


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"group": "county"}, DataError, "no column 'county' for group=; the data's columns: "
                                     "region, y"),
    ({"missing": True}, DataError, "row 2: the group column 'region' is missing"),
    ({"levels": 12}, SpecificationError, "the group column 'region' has 12 levels, and "
                                         "plates 'regions' and 'obs' both have 12"),
    ({"y": "n"}, SpecificationError, r"takes no column names \(y=\)"),
])
def test_a_bad_group_column_is_one_clear_error(by_region, regions, change, error,
                                               message) -> None:
    table = regions.copy()
    columns = {"group": change.get("group", "region")}
    if change.get("missing"):
        table.loc[1, "region"] = None
    if change.get("levels"):
        table["region"] = [f"r{i}" for i in range(len(table))]
    if "y" in change:
        columns["y"] = change["y"]
    with pytest.raises(error, match=message):
        CustomModel(model=by_region).prepare(table, **columns)


def test_a_group_column_needs_a_plate_of_its_size(regions) -> None:
    def flat(region, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("obs", len(y)):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with pytest.raises(SpecificationError, match=r"has 3 levels, but no plate of flat\(\) has "
                       r"3 elements to label \(its plates: obs 12\)"):
        CustomModel(model=flat).prepare(regions, group="region")


def test_group_on_the_command_line(by_region, regions, tmp_path, capsys) -> None:
    regions.to_csv(tmp_path / "regions.csv", index=False)
    code = main(["fit", str(tmp_path / "regions.csv"), "--model", by_region, "--group",
                 "region", "--method",
                 "map", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    groups = [row["group"] for row in document["summary"] if row["param"] == "theta"]
    assert groups == list(dict.fromkeys(regions["region"]))
    assert "tau ~ HalfStudentT(4, 3.7)" in document["prior"]


# ------------------------------------------------------------------ divergences
def funnel(y):
    """Neal's funnel, sharpened: x_k ~ N(0, e^{2v}) with v ~ N(0, 3²)."""
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    with numpyro.plate("k", 9):
        numpyro.sample("x", dist.Normal(0.0, jnp.exp(v)))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)


def test_divergences_name_the_setting_and_a_non_centred_form() -> None:
    model = CustomModel(model=funnel, draws=100, warmup=100, chains=1, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit({"y": np.zeros(3)})
    assert fit.info["divergences"] > 0
    advice = [str(w.message) for w in caught if issubclass(w.category, SamplingWarning)
              and "divergent transitions" in str(w.message)]
    assert len(advice) == 1
    assert ("raise the step-size target from 0.8 to 0.95 (target_accept=0.95 in Python; "
            "--target-accept 0.95 on the command line)") in advice[0]
    assert "non-centred" in advice[0] and "LocScaleReparam" in advice[0]
