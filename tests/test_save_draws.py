"""Every group's draws written in chunks (``fit.save(path, group_draws=True)``,
``poolwise fit --out DIR --save-draws``) for fits that keep only their groups' summaries,
read back from the file a slice at a time; and ``group_draws`` refused by the memory guard
(issue 11, items 3 and 4)."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from markupsafe import escape

import poolwise.inference.base as inference_base
import poolwise.kinds.conjugate as conjugate
from poolwise import Model, ResourceError, load
from poolwise.cli import main
from poolwise.resources import ENVIRONMENT, HEADROOM, format_bytes
from poolwise.results.prediction import ExistingGroup

SETTINGS = {"draws": 100, "chains": 2}


def simulated(family: str, groups: int, seed: int = 1) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    if family == "normal":
        se = rng.uniform(0.3, 2.0, groups)
        y = rng.normal(rng.normal(1.0, 0.5, groups), se)
        return pd.DataFrame({"g": np.arange(groups), "y": y, "se": se}), {"se": "se"}
    n = rng.integers(5, 200, groups)
    y = rng.binomial(n, rng.beta(2.0, 18.0, groups))
    return pd.DataFrame({"g": np.arange(groups), "y": y, "n": n}), {"n": "n"}


@pytest.fixture
def summaries_only(monkeypatch):
    """Fits leave θ undrawn from 1 draw × group up (the limit is 10^7 in use), and write
    and read it 256 groups (one block) at a time, so that small fits take several chunks."""
    monkeypatch.setattr(inference_base, "GROUP_DRAWS_LIMIT", 0)
    monkeypatch.setattr(conjugate, "CHUNK_VALUES", 1)


@pytest.mark.parametrize(("family", "method", "pooling"), [
    ("beta-binomial", "exact", "partial"), ("beta-binomial", "eb-ml", "partial"),
    ("normal", "exact", "partial"), ("beta-binomial", "exact", "none"),
    ("beta-binomial", "exact", "complete")])
def test_saved_draws_load_back_identical(summaries_only, tmp_path, family, method, pooling):
    table, columns = simulated(family, 700)
    fit = Model(family=family, method=method, pooling=pooling, **SETTINGS).fit(
        table, y="y", group="g", **columns)
    assert not fit.stores_group_draws
    written: list[int] = []
    path = tmp_path / "fit.nc"
    fit.save(path, group_draws=True, progress=lambda done, groups: written.append(done))
    assert written == [256, 512, 700]  # one chunk of 256 groups at a time
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]  # no partial file left
    fit.save(tmp_path / "plain.nc")
    grown = path.stat().st_size - (tmp_path / "plain.nc").stat().st_size
    assert 2 * 100 * 700 * 8 <= grown < 2 * 100 * 700 * 8 * 1.05  # draws × groups × 8 bytes
    (tmp_path / "plain.nc").unlink()
    loaded = load(path)
    assert loaded.file_theta is not None
    assert "posterior" not in loaded.tree.children or "theta" not in loaded.tree["posterior"]
    every = fit.group_draws()
    np.testing.assert_array_equal(loaded.group_draws(), every)
    np.testing.assert_array_equal(loaded.draws("theta"), every)
    chosen = [650, 3, 300, 3, 255, 256]  # across chunks, unsorted, repeated
    np.testing.assert_array_equal(loaded.group_draws(chosen), every[..., chosen])
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    label = str(fit.data.labels[300])
    predicted = loaded.predict(ExistingGroup(label)).draws["theta"]
    np.testing.assert_array_equal(np.ravel(predicted), np.ravel(every[..., 300]))
    assert loaded.predictive_check().shape[0] > 0
    assert "are in fit.nc" in str(loaded.draws_note())
    # ArviZ's layout: a DataTree that xarray opens, θ among the posterior's variables
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        theta = tree["posterior"]["theta"]
        assert theta.dims == ("chain", "draw", "group")
        np.testing.assert_array_equal(theta.values, every)
        assert list(theta["group"].values) == list(fit.data.labels)
    # saved again: without group_draws the draws are left out, with it copied from the file
    loaded.save(tmp_path / "again.nc")
    assert load(tmp_path / "again.nc").file_theta is None
    loaded.save(tmp_path / "copy.nc", group_draws=True)
    np.testing.assert_array_equal(load(tmp_path / "copy.nc").group_draws(), every)


def test_loading_leaves_the_draws_in_the_file(summaries_only, tmp_path):
    """θ holds 3,000 groups × 4,000 draws (96 MB; too many for the posterior predictive
    to be stored with the fit); loading the fit, its summary and one group's draws
    allocate a small fraction of that (tracemalloc sees NumPy's arrays)."""
    table, columns = simulated("beta-binomial", 3000)
    fit = Model(draws=2000, chains=2).fit(table, y="y", group="g", **columns)
    assert "posterior_predictive" not in fit.tree.children
    fit.save(tmp_path / "fit.nc", group_draws=True)
    expected = fit.summary()  # (imports what a summary needs before the count starts)
    tracemalloc.start()
    try:
        loaded = load(tmp_path / "fit.nc")
        summary = loaded.summary()
        one = loaded.group_draws([1234])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48e6 / 8
    pd.testing.assert_frame_equal(summary, expected)
    np.testing.assert_array_equal(one, fit.group_draws([1234]))


def test_a_failed_save_leaves_no_file(summaries_only, tmp_path):
    table, columns = simulated("beta-binomial", 700)
    fit = Model(**SETTINGS).fit(table, y="y", group="g", **columns)

    def interrupted(done: int, groups: int) -> None:
        if done > 256:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit.save(tmp_path / "fit.nc", group_draws=True, progress=interrupted)
    assert list(tmp_path.iterdir()) == []


def test_group_draws_beyond_the_memory_available_are_refused_with_what_fits(
        summaries_only, monkeypatch):
    """4,000 groups × 600 draws (19 MB) under a 15 MB limit: one line with the estimate,
    and the alternatives, each of which fits."""
    table, columns = simulated("beta-binomial", 4000)
    fit = Model(draws=300, chains=2).fit(table, y="y", group="g", **columns)
    monkeypatch.setenv(ENVIRONMENT, "15M")
    with pytest.raises(ResourceError) as refused:
        fit.group_draws()
    message = str(refused.value)
    assert "\n" not in message
    working = 8 * 600 * 3 * 256  # one block of 256 groups, three arrays of its size
    assert message.startswith(f"drawing θ for 4,000 groups × 600 draws needs about "
                              f"{format_bytes(4000 * 600 * 8 + working)} (")
    assert "15 MB is available (POOLWISE_MEMORY_LIMIT)" in message
    assert "--save-draws (fit.save(path, group_draws=True))" in message
    fewer = int(message.split("fit.group_draws(indices) with at most ")[1].split()[0]
                .replace(",", ""))
    assert 1000 < fewer < 4000
    assert fit.group_draws(np.arange(fewer)).shape == (2, 300, fewer)
    draws = re.search(r"draws=(\d+) \(--draws \1\) in a new fit", message)
    assert draws is not None and 100 <= int(draws.group(1)) < 300, message
    with pytest.raises(ResourceError):
        fit.draws("theta")


def test_the_memory_guard_counts_the_chunks_of_saved_draws(summaries_only, monkeypatch):
    table, _ = simulated("beta-binomial", 700)
    model = Model(**SETTINGS)
    prepared = model.prepare(table, y="y", n="n", group="g")
    size, chunks = model.save_draws_estimate(prepared)
    assert size == 700 * 200 * 8 and chunks > 0
    fitting = model.memory_estimate(prepared).bytes
    monkeypatch.setenv(ENVIRONMENT, str(int((fitting + chunks / 2) / HEADROOM)))
    model.check_memory(prepared)
    with pytest.raises(ResourceError, match="group draws written in chunks"):
        model.check_memory(prepared, save_draws=True)
    assert Model(method="gibbs", **SETTINGS).save_draws_estimate(prepared) == (0, 0)


# ----------------------------------------------------------------------------- the CLI
def _cli(tmp_path: Path, *options: str) -> list[str]:
    table, _ = simulated("beta-binomial", 700)
    table.to_csv(tmp_path / "data.csv", index=False)
    return ["fit", str(tmp_path / "data.csv"), "--y", "y", "--n", "n", "--group", "g",
            "--draws", "100", "--chains", "2", *options]


def test_save_draws_writes_every_group_and_says_where(summaries_only, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(tmp_path, "--out", str(out), "--save-draws")) == 0
    stdout = capsys.readouterr().out
    size = format_bytes(700 * 200 * 8)
    assert f"note: --save-draws: every group's draws go into posterior.nc in chunks, about " \
           f"{size}" in stdout
    note = f"θ's draws of every group (700 groups × 200 draws, {size}) are in posterior.nc"
    assert f"note: {note}" in stdout
    assert any(n.startswith(note) for n in json.loads((out / "result.json").read_text())
               ["notes"])
    assert str(escape(note)) in (out / "report.html").read_text()
    table, columns = simulated("beta-binomial", 700)
    fitted = Model(**SETTINGS).fit(table, y="y", group="g", **columns)
    loaded = load(out)
    assert loaded.file_theta is not None
    np.testing.assert_array_equal(loaded.group_draws(), fitted.group_draws())


def test_without_save_draws_the_outputs_say_how_to_get_them(summaries_only, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(tmp_path, "--out", str(out))) == 0
    stdout = capsys.readouterr().out
    note = "θ's draws are not kept (700 groups × 200 draws"
    advice = ("fit.group_draws(indices) draws those of the groups asked for, and "
              "--save-draws (fit.save(path, group_draws=True))")
    line = next(line for line in stdout.splitlines() if line.startswith(f"note: {note}"))
    assert advice in line
    assert any(note in n and advice in n
               for n in json.loads((out / "result.json").read_text())["notes"])
    assert str(escape(note)) in (out / "report.html").read_text()
    assert load(out).file_theta is None


def test_save_draws_needs_out(tmp_path, capsys):
    assert main(_cli(tmp_path, "--save-draws")) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert stderr == ("error: --save-draws writes the posterior's draws into posterior.nc of "
                      "--out: give --out DIR\n")


def test_save_draws_refused_when_the_disk_is_too_small(summaries_only, tmp_path, capsys,
                                                       monkeypatch):
    import shutil

    free = shutil.disk_usage(tmp_path)._replace(free=10_000)
    monkeypatch.setattr("poolwise.resources.shutil.disk_usage", lambda _: free)
    out = tmp_path / "results" / "out"
    assert main(_cli(tmp_path, "--out", str(out), "--save-draws")) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"error: --save-draws would write about "
                             f"{format_bytes(700 * 200 * 8)}, but {tmp_path} has 10 kB free; "
                             "use --out on a larger disk or fewer --draws or no --save-draws")
    assert not (tmp_path / "results").exists()


def test_save_draws_changes_nothing_for_a_fit_that_keeps_its_draws(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(tmp_path, "--out", str(out), "--save-draws")) == 0
    assert "note:" not in capsys.readouterr().out
    loaded = load(out)
    assert loaded.stores_group_draws and loaded.file_theta is None
    assert loaded.draws("theta").shape == (2, 100, 700)
