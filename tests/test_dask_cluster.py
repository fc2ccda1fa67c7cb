"""The Dask engine on a ``distributed`` cluster: two worker processes on this machine, one
cluster for the module (starting one takes seconds).

The cluster's reductions — rate sums, moments of raw observations, a normal mixed model's
cross-products, each merged by disjoint sets of groups on the workers — give the
statistics DuckDB and pandas give, and each group's posterior summarised by tasks on the
cluster (:func:`~poolwise._threads.map_on_cluster`) is the one summarised in threads here.
"""

from __future__ import annotations

import numpy as np
import pytest
from layouts import write_table
from test_engines import _same_counts
from test_engines import _table as _rates_table
from test_mixed_streaming import FORMULAS, _same_estimates
from test_mixed_streaming import _table as _mixed_table

import poolwise
from poolwise import plots
from poolwise.cli import main
from poolwise.data.engines import reduce
from poolwise.data.tables import group_counts
from poolwise.families import get_family
from poolwise.inference import base as inference_base
from poolwise.inference import group_posterior

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow  # a cluster of two processes


@pytest.fixture(scope="module")
def cluster():
    """Its HTTP server on a free port: left at None it takes 8787, and warns (an error
    here) when another cluster on the machine holds that port."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", silence_logs=50) as local:
        yield local


def test_rates_and_moments_match_duckdb_and_pandas(cluster, tmp_path):
    table = _rates_table(seed=3, rows=3000)
    source = write_table(table, tmp_path, "glob")
    fam = get_family("beta-binomial")
    with distributed.Client(cluster, set_as_default=False) as client:
        by_address = reduce(source, fam, y="y", n="n", group="g", engine="dask",
                            scheduler=cluster.scheduler_address).stats
        by_client = reduce(source, None, y="x", group="g", engine="dask",
                           scheduler=client).stats
    want = group_counts(table, fam, y="y", n="n", group="g")
    _same_counts(by_address, want)
    _same_counts(reduce(source, fam, y="y", n="n", group="g", engine="duckdb").stats, want)
    moments = reduce(source, None, y="x", group="g", engine="duckdb").stats
    assert by_client.labels.tolist() == moments.labels.tolist()
    np.testing.assert_allclose(by_client.y, moments.y, rtol=1e-13)
    np.testing.assert_allclose(by_client.se, moments.se, rtol=1e-10)


def test_mixed_model_and_its_conditional_effects_match(cluster, tmp_path):
    """The same REML fit as DuckDB and pandas, and the same conditional effects as the
    rows give (the covariates' ranges and means collected on the workers)."""
    table = _mixed_table(12, rows=3000)
    source = write_table(table, tmp_path, "glob")
    # plug-in: Kass–Steffey's resampling would turn last-digit differences into other draws
    settings = {"formula": FORMULAS[1], "method": "eb-ml", "draws": 50, "chains": 1,
                "eb_intervals": "plug-in"}
    fit = poolwise.fit(source, engine="dask", scheduler=cluster.scheduler_address,
                       **settings)
    in_memory = poolwise.fit(table, **settings)
    for other in (poolwise.fit(source, engine="duckdb", **settings), in_memory):
        _same_estimates(fit.summary()["mean"], other.summary()["mean"])
    got, want = (plots.conditional_effects_data(f) for f in (fit, in_memory))
    assert got.reference.keys() == want.reference.keys()
    for column, value in want.reference.items():
        assert got.reference[column] == (pytest.approx(value, rel=1e-12)
                                          if isinstance(value, float) else value)
    assert got.table["value"].astype(str).tolist() == want.table["value"].astype(str) \
        .tolist()
    np.testing.assert_allclose(got.table["position"], want.table["position"], rtol=1e-12)
    _same_estimates(got.table["mean"], want.table["mean"])


def test_group_posteriors_are_summarised_on_the_cluster(cluster, tmp_path, monkeypatch,
                                                        capsys):
    """θ left undrawn (as at 10^7 groups) and every distinct (y, n) sent to the cluster in
    blocks of about a dozen: the same summaries as in threads, to rounding."""
    table = _rates_table(seed=5, rows=2000)
    source = write_table(table, tmp_path / "data", "glob")
    monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)
    settings = {"y": "y", "n": "n", "group": "g", "method": "exact", "draws": 100,
                "chains": 2, "seed": 4}
    here = poolwise.fit(table, **settings).group_summary()
    sent = []

    def counted(work, blocks):
        sent.append(len(blocks))
        yield from group_posterior_map(work, blocks)

    group_posterior_map = group_posterior.map_on_cluster
    monkeypatch.setattr(group_posterior, "CLUSTER_PAIRS", 0)
    monkeypatch.setattr(group_posterior, "CLUSTER_BLOCK_ELEMENTS", 12 * 200)
    monkeypatch.setattr(group_posterior, "map_on_cluster", counted)
    there = poolwise.fit(source, engine="dask", scheduler=cluster.scheduler_address,
                         **settings).group_summary()
    assert sent and sent[0] > 2  # 37 groups' pairs, a dozen a task
    for name, values in here.variables().items():
        np.testing.assert_allclose(getattr(there, name), values, rtol=1e-12, atol=1e-15,
                                   err_msg=name)
    code = main(["fit", source, "--y", "y", "--n", "n", "--group", "g", "--method",
                 "eb-moments", "--engine", "dask", "--scheduler", cluster.scheduler_address,
                 "--quiet", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(sent) == 2 and (tmp_path / "out" / "summary.csv").exists()
