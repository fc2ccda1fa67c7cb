"""``nuts`` on the normal family: explicit θ (non-centred, centred) and θ integrated out.

Eight schools (BDA3 §5.5) with μ ~ N(0, 5²), τ ~ HalfCauchy(5): the non-centred and the
marginal forms must agree with ``exact`` on the same posterior,

    |mean_nuts − mean_exact| < Z · sqrt(mcse_nuts² + mcse_exact²)

(and likewise for the sd), MCSE from ArviZ (``arviz_stats.mcse``) on the (chain, draw)
arrays, Z = 4. The centred form has the funnel of Neal (2003): it must show divergent
transitions, and the Fit must warn about them with advice. Each fit is made once per
module (JAX compilation dominates the run time).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from agreement import assert_same_posterior

from poolwise import Fit, Model, SamplingWarning, SpecificationError, datasets
from poolwise.inference.base import SamplerConfig
from poolwise.inference.nuts import sample_nuts
from poolwise.results.diagnostics import diagnostic_problems

pytestmark = pytest.mark.slow

SEED = 20261122
PRIOR = "mu=normal(0, 5), tau=halfcauchy(5)"


def fit_schools(model: Model, schools: pd.DataFrame, method: str,
                parametrisation: str = "auto") -> Fit:
    return model.replace(method=method, seed=SEED, parametrisation=parametrisation).fit(
        schools, y="y", se="sigma", group="school")


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    return datasets.load("eight-schools")


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(family="normal", prior=PRIOR)


@pytest.fixture(scope="module")
def exact(model: Model, schools: pd.DataFrame) -> Fit:
    return fit_schools(model, schools, "exact")


@pytest.fixture(scope="module", params=["auto", "marginal"])
def nuts(request: pytest.FixtureRequest, model: Model, schools: pd.DataFrame) -> Fit:
    """"auto" is the non-centred explicit θ for the normal family. A stray divergence in
    4 × 1000 draws is chance, not a funnel (non-centred, target 0.9: one divergence for one
    of eight seeds, none for the others), so its warning is kept, not raised; the test
    below allows one and no other problem."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", SamplingWarning)
        return fit_schools(model, schools, "nuts", request.param)


@pytest.fixture(scope="module")
def centred(model: Model, schools: pd.DataFrame) -> tuple[Fit, list[warnings.WarningMessage]]:
    with pytest.warns(SamplingWarning) as records:
        fit = fit_schools(model, schools, "nuts", "centred")
    return fit, list(records)


def posterior_quantities(fit: Fit) -> dict[str, np.ndarray]:
    return {"mu": fit.draws("mu"), "log tau": np.log(fit.draws("tau")),
            "theta[A]": fit.draws("theta")[..., 0]}


def test_auto_is_non_centred_for_the_normal_family(nuts: Fit) -> None:
    expected, sampled = (("non-centred", "(μ, log τ, η) with θ = μ + τ η")
                         if nuts.config.parametrisation == "auto"
                         else ("marginal", "(u, v) with θ integrated out"))
    assert nuts.info["parametrisation"] == expected
    assert nuts.info["sampled"] == sampled
    assert nuts.info["divergences"] <= 1
    assert [p for p in diagnostic_problems(nuts) if "divergent" not in p] == []


def assert_shapes(fit: Fit) -> None:
    assert fit.draws("theta").shape == (4, 1000, 8)
    assert fit.draws("mu").shape == fit.draws("tau").shape == (4, 1000)
    stats = fit.tree["sample_stats"]
    for name in ("diverging", "n_steps", "acceptance_rate", "lp", "energy", "step_size"):
        assert stats[name].shape == (4, 1000)
    assert list(fit.data.labels) == list("ABCDEFGH")


def test_shapes_match_the_other_methods(
    nuts: Fit, centred: tuple[Fit, list[warnings.WarningMessage]]
) -> None:
    assert_shapes(nuts)
    assert_shapes(centred[0])


@pytest.mark.parametrize("name", ["mu", "log tau", "theta[A]"])
def test_agrees_with_exact(nuts: Fit, exact: Fit, name: str) -> None:
    assert_same_posterior(posterior_quantities(nuts)[name], posterior_quantities(exact)[name],
                          f"{nuts.info['parametrisation']} {name}")


def test_centred_diverges_and_the_fit_warns(
    centred: tuple[Fit, list[warnings.WarningMessage]],
) -> None:
    fit, records = centred
    assert fit.info["parametrisation"] == "centred"
    assert fit.info["divergences"] > 0
    assert int(fit.tree["sample_stats"]["diverging"].sum()) == fit.info["divergences"]
    problems = diagnostic_problems(fit)
    assert any("divergent transitions" in p and "non-centred" in p for p in problems), problems
    messages = [str(r.message) for r in records]
    assert all(issubclass(r.category, SamplingWarning) for r in records)
    assert any("divergent transitions" in m for m in messages), messages


def test_centred_divergences_sit_in_the_neck_of_the_funnel(
    centred: tuple[Fit, list[warnings.WarningMessage]],
) -> None:
    """The divergent iterations are where τ is small and the θ_j are squeezed together."""
    fit, _ = centred
    diverging = np.asarray(fit.tree["sample_stats"]["diverging"], dtype=bool)
    log_tau = np.log(fit.draws("tau"))
    assert np.median(log_tau[diverging]) < np.quantile(log_tau, 0.25)


@pytest.mark.parametrize("pooling", ["none", "complete"])
def test_no_and_complete_pooling_agree_with_exact(schools: pd.DataFrame, pooling: str) -> None:
    """θ explicit with the flat prior; complete pooling is the precision-weighted mean."""
    model = Model(family="normal", pooling=pooling)
    fits = [fit_schools(model, schools, method) for method in ("nuts", "exact")]
    assert fits[0].info["divergences"] == 0
    for j in (0, 3) if pooling == "none" else (0,):
        assert_same_posterior(fits[0].draws("theta")[..., j], fits[1].draws("theta")[..., j],
                              f"{pooling} theta[{j}]")


@pytest.mark.parametrize(("family", "pooling", "parametrisation", "message"), [
    ("normal", "partial", "funnel", "unknown parametrisation 'funnel'"),
    ("beta-binomial", "partial", "centred", "is for the normal family"),
    ("normal", "none", "non-centred", "is for partial pooling"),
])
def test_bad_parametrisations_are_refused(
    schools: pd.DataFrame, family: str, pooling: str, parametrisation: str, message: str
) -> None:
    model = Model(family=family, pooling=pooling)
    data = (model.prepare(schools, y="y", se="sigma", group="school") if family == "normal"
            else model.prepare(pd.DataFrame({"y": [1, 2], "n": [5, 6]}), y="y", n="n"))
    config = SamplerConfig(draws=5, warmup=5, chains=1, parametrisation=parametrisation)
    with pytest.raises(SpecificationError, match=message):
        sample_nuts(model, data, config)
