"""The one Fit contract, checked for every model kind × pooling level × method it offers.

Each kind is one line of :data:`KINDS`: how to make a model of it and tiny data. Every
combination of pooling and method the kind declares (``Model.METHODS``) is fitted once,
with few draws, and checked: the summary's columns; save → :func:`poolwise.load` → the same
summary; every prediction request answered or refused naming the ones it answers; the
posterior predictive and its check; the prior predictive (or a reason why there is none);
the same seed giving the same draws; the graph and the equations; that ArviZ 1.x summarises
and plots the tree (where it is installed: Python ≥ 3.12); and, once per kind, that
``poolwise fit --out`` writes the same core files. Adding a kind means adding one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import poolwise
from poolwise import (
    ExistingGroup,
    NewGroup,
    NewGroupIn,
    NewRows,
    Population,
    Prediction,
    SpecificationError,
)
from poolwise.cli import main
from poolwise.outputs.writer import CORE_FILES
from poolwise.results.checks import CHECK_COLUMNS
from poolwise.results.graph import ModelGraph
from poolwise.results.summary import SUMMARY_COLUMNS
from poolwise.vocabulary import MCMC_METHODS

FAST = {"draws": 60, "chains": 2, "warmup": 60, "seed": 3}


def _rates() -> pd.DataFrame:
    return pd.DataFrame({"g": list("abcdef"), "y": [2, 5, 1, 7, 3, 4],
                         "n": [20, 25, 15, 30, 22, 18]})


def _normal() -> pd.DataFrame:
    """One standard error for every group, which James–Stein (``eb-js``) needs; the other
    methods' unequal errors are tested in test_normal.py and test_exact_normal.py."""
    return pd.DataFrame({"g": list("abcdef"), "y": [1.2, -0.3, 2.5, 0.8, 1.9, 0.1],
                         "se": 0.9})


def _nig() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"g": np.repeat(list("abcde"), 4),
                         "y": rng.normal(np.repeat([0.0, 1.0, 2.0, 1.5, 0.5], 4), 1.0)})


def _mixed() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    g = np.repeat(list("abcdef"), 5)
    x = np.tile(np.arange(5.0), 6)
    effect = dict(zip("abcdef", rng.normal(0.0, 1.0, 6), strict=True))
    y = 1.0 + 0.5 * x + np.array([effect[k] for k in g]) + rng.normal(0.0, 0.5, g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def _nested() -> pd.DataFrame:
    rows = [(f"L{lab}", f"e{e}", 3 + lab + e, 20) for lab in range(3) for e in range(3)]
    return pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"])


def _custom() -> pd.DataFrame:
    return pd.DataFrame({"y": [1.0, 2.0, 0.5, 1.5, 1.1, 0.7], "sd": 1.0})


@dataclass(frozen=True)
class Kind:
    """One model kind: its model class, its options, tiny data and their columns."""

    name: str
    model: Callable[..., Any]
    options: dict[str, Any]
    data: Callable[[], pd.DataFrame]
    columns: dict[str, str] = field(default_factory=dict)
    #: a prediction request of each type that makes sense for these data
    requests: tuple[Any, ...] = ()
    #: the command line's options for this kind (after DATA)
    cli: tuple[str, ...] = ()


def _model_file() -> str:
    path = Path(__file__).parent / "data" / "contract_model.py"
    return f"{path}:model"


def _kinds() -> list[Kind]:
    groups = (ExistingGroup("b"), NewGroup(size=10), Population())
    return [
        Kind("rates", poolwise.Model, {"family": "beta-binomial"}, _rates,
             {"y": "y", "n": "n", "group": "g"}, groups, ("--y", "y", "--n", "n", "--group",
                                                          "g")),
        Kind("normal", poolwise.Model, {"family": "normal"}, _normal,
             {"y": "y", "se": "se", "group": "g"}, groups,
             ("--y", "y", "--se", "se", "--group", "g")),
        Kind("nig", poolwise.NIGModel, {}, _nig, {"y": "y", "group": "g"},
             (ExistingGroup("b", size=2), NewGroup(size=2), Population()),
             ("--family", "nig", "--y", "y", "--group", "g")),
        Kind("mixed", poolwise.MixedModel, {"formula": "y ~ x + (1 | g)"}, _mixed, {},
             (ExistingGroup("b"), NewGroup(), Population(),
              NewRows(pd.DataFrame({"x": [0.0, 2.0], "g": ["a", "new"]}))),
             ("--formula", "y ~ x + (1 | g)")),
        Kind("nested", poolwise.NestedModel, {"family": "beta-binomial"}, _nested,
             {"y": "y", "n": "n", "group": "lab/experiment"},
             (ExistingGroup("L0:e1", size=20), NewGroup(size=20), NewGroupIn("L1", size=20),
              Population()),
             ("--y", "y", "--n", "n", "--group", "lab/experiment")),
        Kind("custom", poolwise.CustomModel, {"model": _model_file()}, _custom, {}, (),
             ("--model", _model_file())),
    ]


KINDS = {kind.name: kind for kind in _kinds()}


def _combinations() -> list[tuple[str, str, str]]:
    out = []
    for kind in KINDS.values():
        methods = kind.model(**kind.options).offered_methods()
        out += [(kind.name, pooling, method)
                for pooling, offered in methods.items() for method in offered]
    return out


COMBINATIONS = _combinations()
IDS = [f"{k}-{p}-{m}" for k, p, m in COMBINATIONS]


def _model(kind: Kind, pooling: str, method: str, **changes: Any) -> Any:
    options = {**kind.options, "method": method, **FAST, **changes}
    if kind.name != "custom":
        options["pooling"] = pooling
    return kind.model(**options)


_FITS: dict[tuple[str, str, str], Any] = {}


def _fit(key: tuple[str, str, str]) -> Any:
    """Each combination fitted once for the whole module (warnings about few draws are
    expected with so few draws, and not what this module checks)."""
    if key not in _FITS:
        kind = KINDS[key[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = _model(kind, key[1], key[2]).fit(kind.data(), **kind.columns)
    return _FITS[key]


@pytest.fixture(scope="module", params=COMBINATIONS, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Kind, Any]:
    return KINDS[request.param[0]], _fit(request.param)


def test_summary_has_the_common_columns(case):
    kind, fit = case
    table = fit.summary()
    assert list(table.columns) == SUMMARY_COLUMNS
    assert len(table) > 0 and table["param"].map(type).eq(str).all()
    assert table[SUMMARY_COLUMNS[2:]].dtypes.map(lambda d: d.kind == "f").all()
    assert fit.kind == kind.name
    assert isinstance(fit.title(), str) and isinstance(fit.describe_prior(), str)
    assert repr(fit) == f"<{type(fit).__name__}: {fit.title()}>"  # one line, not the tree


def _data_labels(kind: Kind) -> set[str]:
    """The group labels as the kind's data write them (a nested experiment as lab:exp)."""
    table = kind.data()
    if kind.name == "nested":
        return set(table["lab"]) | set(table["lab"] + ":" + table["experiment"])
    return set(table["g"].astype(str)) if "g" in table else set()


def test_per_group_outputs_are_labelled_by_group(case):
    """Every per-group row of the summary names its group as the data do (never a row
    number), and pooling_factors(), where a kind has it, is indexed by those labels."""
    kind, fit = case
    labels = _data_labels(kind)
    grouped = fit.summary()["group"].dropna().astype(str)
    assert set(grouped) <= labels
    if labels and fit.model.pooling == "partial":
        assert len(grouped) > 0
    if hasattr(fit, "pooling_factors"):
        assert set(fit.pooling_factors().index.astype(str)) == labels


def test_save_load_gives_the_same_summary(case, tmp_path):
    _, fit = case
    fit.save(tmp_path / "fit.nc")
    loaded = poolwise.load(tmp_path / "fit.nc")
    assert type(loaded) is type(fit) and loaded.kind == fit.kind
    assert loaded.model.spec() == fit.model.spec()
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    pd.testing.assert_frame_equal(loaded.predictive_check(), fit.predictive_check())


def test_save_with_group_draws_holds_every_draw(case, tmp_path):
    """``save(path, group_draws=True)``: the file holds every draw of every group. These
    small fits keep their draws, so it writes what ``save(path)`` writes."""
    _, fit = case
    fit.save(tmp_path / "fit.nc", group_draws=True)
    loaded = poolwise.load(tmp_path / "fit.nc")
    assert loaded.draws_note() is None
    if "posterior" in fit.tree.children:
        for name in fit.posterior.data_vars:
            np.testing.assert_array_equal(loaded.draws(name), fit.draws(name))
    if hasattr(fit, "group_draws"):
        np.testing.assert_array_equal(loaded.group_draws(), fit.group_draws())
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())


def test_every_request_is_answered_or_refused_by_name(case):
    kind, fit = case
    answered = fit.requests()
    for request in (*kind.requests, NewRows(kind.data()), NewGroupIn("a"), Population()):
        if type(request) in answered and request in kind.requests:
            try:
                prediction = fit.predict(request)
            except SpecificationError as err:  # e.g. a new group under an improper prior
                assert "improper" in str(err), err
                continue
            assert isinstance(prediction, Prediction) and prediction.description
            assert prediction.draws.sizes["chain"] == fit.config.chains
            assert prediction.draws.sizes["draw"] == fit.config.draws
            table = prediction.summary()
            assert {"param", "mean"} <= set(table.columns) and len(table) > 0
            assert np.isfinite(table["mean"]).all()
            # same request, same seed: the same draws
            again = fit.predict(request)
            for name in prediction.draws.data_vars:
                np.testing.assert_array_equal(prediction[name], again[name])
        elif type(request) not in answered:
            with pytest.raises(SpecificationError, match="the requests it answers"):
                fit.predict(request)


def test_posterior_predictive_and_its_check(case):
    _, fit = case
    replicated = fit.posterior_predictive()
    assert replicated.sizes["chain"] == fit.config.chains
    assert replicated.sizes["draw"] == fit.config.draws
    assert list(fit.predictive_check().columns) == CHECK_COLUMNS
    p = fit.predictive_check()["p_value"]
    assert p.between(0, 1).all()


def test_prior_predictive_or_a_reason(case):
    kind, fit = case
    try:
        prior = fit.model.prior_predictive(kind.data(), draws=50, **kind.columns)
    except SpecificationError as err:
        assert str(err)  # a reason, e.g. an improper prior or empirical Bayes
        return
    assert {"prior", "prior_predictive"} <= set(prior.tree.children)
    assert prior.tree["prior_predictive"].sizes["draw"] == 50
    assert list(prior.check().columns) == CHECK_COLUMNS
    assert len(prior.summary()) > 0


def test_ranks_or_the_reason_there_are_none(case):
    _, fit = case
    try:
        table = fit.ranks()
    except SpecificationError as err:  # no per-group parameter, or one shared by all
        assert "rank" in str(err), err
        return
    assert table["p_best"].sum() == pytest.approx(1.0)
    summary = fit.summary(diagnostics=False)
    labels = summary.loc[summary["param"] == table["param"].iloc[0], "group"]
    assert table["group"].tolist() == labels.tolist()


def test_graph_and_equations_build(case):
    _, fit = case
    graph = fit.graph()
    assert isinstance(graph, ModelGraph) and graph.observed()
    lines = fit.equations()
    assert lines and all(isinstance(line, str) for line in lines)


def test_spec_rebuilds_the_model(case):
    _, fit = case
    model = fit.model
    assert type(model)(**model.spec()).spec() == model.spec()


def _refit(key: tuple[str, str, str], **changes: Any) -> Any:
    kind = KINDS[key[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _model(kind, key[1], key[2], **changes).fit(kind.data(), **kind.columns)


@pytest.mark.parametrize("key", COMBINATIONS, ids=IDS)
def test_same_seed_same_draws(key):
    fit, again = _fit(key), _refit(key)
    for name in fit.posterior.data_vars:
        np.testing.assert_array_equal(fit.draws(name), again.draws(name))
    pd.testing.assert_frame_equal(fit.predictive_check(), again.predictive_check())


#: each kind's default: partial pooling (a custom model's own structure), default method
DEFAULTS = [next(key for key in COMBINATIONS if key[0] == name and key[1] == "partial")
            for name in KINDS]


@pytest.mark.parametrize("key", DEFAULTS, ids=[k[0] for k in DEFAULTS])
def test_another_seed_other_draws(key):
    """Every random stream changes with the seed: the fit's draws, the replicated data and
    the predictions."""
    fit, other = _fit(key), _refit(key, seed=4)
    for name in fit.posterior.data_vars:
        if np.ptp(fit.draws(name)) > 0:  # a constant (a correlation's diagonal) stays
            assert not np.array_equal(fit.draws(name), other.draws(name)), name
    assert not fit.predictive_check().equals(other.predictive_check())
    request = next((r for r in KINDS[key[0]].requests if type(r) in fit.requests()), None)
    if request is not None:
        first, second = fit.predict(request), fit.predict(request, seed=4)
        # what is drawn afresh differs (a group's θ itself comes from the posterior)
        assert any(not np.array_equal(first[name], second[name])
                   for name in first.draws.data_vars)


@pytest.mark.parametrize("name", list(KINDS))
def test_cli_writes_the_same_core_files_for_every_kind(name, tmp_path, capsys):
    kind = KINDS[name]
    csv = tmp_path / "data.csv"
    kind.data().to_csv(csv, index=False)
    out = tmp_path / "out"
    chains = ["--warmup", "60"] if kind.model(**kind.options).method in MCMC_METHODS else []
    code = main(["fit", str(csv), *kind.cli, "--draws", "60", *chains, "--chains", "2",
                 "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    written = {p.name for p in out.iterdir()}
    assert set(CORE_FILES) <= written, set(CORE_FILES) - written
    assert poolwise.load(out / "posterior.nc").kind == name


def test_every_fit_with_a_log_likelihood_takes_part_in_a_comparison(case):
    """A fit compared with itself: the same elpd, a difference of 0 with SE 0; each of its
    groupings (and its points' own dimension, one point a group) leaves out that many
    points. A fit without pointwise log likelihood says so."""
    _, fit = case
    try:
        loo = poolwise.Comparison({"a": fit, "b": fit}).predictive()
    except SpecificationError as err:
        assert "log likelihood" in str(err) or "draw" in str(err), err
        return
    table = loo.table
    assert table["elpd"].iloc[0] == table["elpd"].iloc[1]
    assert table["elpd_diff"].tolist() == [0.0, 0.0] and table["dse"].tolist() == [0.0, 0.0]
    for by, labels in {loo.points: loo.pointwise.index, **fit.point_groupings()}.items():
        grouped = poolwise.Comparison({"a": fit, "b": fit}).predictive(by=by)
        assert grouped.table["n_points"].iloc[0] == len(set(np.asarray(labels).astype(str)))


def test_arviz_summarises_and_plots_the_tree(case):
    """``import arviz as az; az.summary(fit.tree); az.plot_trace(fit.tree)`` on every fit
    (ArviZ 1.x, installed with poolwise on Python ≥ 3.12; ``make test313`` runs this)."""
    az = pytest.importorskip("arviz", minversion="1.0",
                             reason="ArviZ 1.x needs Python >= 3.12; here poolwise uses its "
                                    "parts at 0.8")
    import matplotlib.pyplot as plt

    _, fit = case
    with np.errstate(invalid="ignore", divide="ignore"):  # R-hat of a constant (EB's τ): NaN
        table = az.summary(fit.tree)
    assert {row.split("[")[0] for row in table.index} == set(fit.tree["posterior"].data_vars)
    az.plot_trace(fit.tree)
    plt.close("all")
