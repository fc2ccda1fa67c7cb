"""NUTS compiles once per model structure and shapes, and JAX's persistent cache serves a
new process.

In one process, a second fit of the same structure and shapes (different data, so different
data-scaled priors too) must run without a single XLA compilation: jax.monitoring's
``/jax/core/compile/backend_compile_duration`` event, which JAX records for every program
it compiles or reads from the persistent cache (off here), is counted. Across processes, a
second process with the same cache directory must compile nothing: every such event is a
cache hit (``/jax/compilation_cache/cache_hits``), and the draws are the same; with the
cache off nothing is written. The suite itself runs with ``POOLWISE_COMPILE_CACHE=0`` (conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import poolwise
from poolwise._ops import compile_cache_dir
from poolwise.inference.base import SamplerConfig

SRC = Path(__file__).resolve().parents[1] / "src"
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"

#: a child process: one small NUTS fit of sleepstudy, then its compilations, cache hits and
#: draws as one JSON line
FIT_SCRIPT = f"""
import json, jax.monitoring, poolwise
counts = {{"compiles": 0, "hits": 0}}
def duration(event, seconds, **kwargs):
    if event == {BACKEND_COMPILE!r}:
        counts["compiles"] += 1
def event(name, **kwargs):
    if name == {CACHE_HIT!r}:
        counts["hits"] += 1
jax.monitoring.register_event_duration_secs_listener(duration)
jax.monitoring.register_event_listener(event)
table = poolwise.datasets.load("sleepstudy")
fit = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)", method="nuts",
                          draws=30, warmup=30, chains=2, seed=3).fit(table)
compiled = counts["compiles"] - counts["hits"]  # programs not read from the cache
print(json.dumps({{"compiled": compiled, "hits": counts["hits"],
                  "b": fit.draws("b").ravel().tolist()}}))
"""


def _run_fit(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", FIT_SCRIPT], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(SRC)}, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "POOLWISE_COMPILE_CACHE"}
    return {**env, **values}


def test_a_second_process_compiles_nothing(tmp_path: Path) -> None:
    """The default directory under XDG_CACHE_HOME is filled by the first process and read
    by the second, which compiles nothing and draws the same; with the cache off the
    directory is not even made."""
    env = _env(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    first = _run_fit(env)
    directory = tmp_path / "xdg" / "poolwise" / "jax"
    entries = list(directory.iterdir())
    assert first["compiled"] > 0 and first["hits"] == 0 and entries
    second = _run_fit(env)
    assert second["compiled"] == 0 and second["hits"] == first["compiled"]
    assert second["b"] == first["b"]
    off = _run_fit(_env(XDG_CACHE_HOME=str(tmp_path / "off"), POOLWISE_COMPILE_CACHE="0"))
    assert off["compiled"] == first["compiled"] and off["hits"] == 0
    assert not (tmp_path / "off").exists()
    assert off["b"] == first["b"]


def test_cache_directory_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.delenv("POOLWISE_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache_dir() == tmp_path / "xdg" / "poolwise" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache_dir() == tmp_path / "home" / ".cache" / "poolwise" / "jax"
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv("POOLWISE_COMPILE_CACHE", off)
        assert compile_cache_dir() is None
    monkeypatch.setenv("POOLWISE_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"


def test_a_cache_directory_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = subprocess.run(
        [sys.executable, "-m", "poolwise", "fit", "sleepstudy", "--method", "nuts",
         "--draws", "10", "--warmup", "10", "--quiet"],
        capture_output=True, text=True, check=False, timeout=600,
        env=_env(PYTHONPATH=str(SRC), POOLWISE_COMPILE_CACHE=str(blocker / "jax")))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "POOLWISE_COMPILE_CACHE" in lines[0], done.stderr
    assert "0 to turn the compilation cache off" in lines[0]


# ----------------------------------------------------------------------- one process
@pytest.fixture(scope="module")
def compilations() -> dict[str, int]:
    """A running count of XLA compilations in this process."""
    import jax.monitoring

    counts = {"compiles": 0}

    def duration(event: str, seconds: float, **kwargs: object) -> None:
        if event == BACKEND_COMPILE:
            counts["compiles"] += 1

    jax.monitoring.register_event_duration_secs_listener(duration)
    return counts


def _sleepstudy(shift: float) -> pd.DataFrame:
    """sleepstudy, with Reaction moved and stretched: other data, other default priors."""
    table = poolwise.datasets.load("sleepstudy")
    return table.assign(Reaction=table["Reaction"] * (1.0 + shift) + 100.0 * shift)


@pytest.mark.filterwarnings("ignore::poolwise.exceptions.SamplingWarning")  # short chains
@pytest.mark.parametrize("parametrisation", ["auto", "non-centred"])
def test_same_shapes_share_one_program(compilations: dict[str, int],
                                       parametrisation: str) -> None:
    """A second mixed-model fit of other data of the same shapes compiles nothing, and its
    draws are its own (not the first fit's)."""
    settings = {"method": "nuts", "draws": 100, "warmup": 100, "chains": 2, "seed": 5,
                "parametrisation": parametrisation}
    model = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)", **settings)
    first = model.fit(_sleepstudy(0.0))
    before = compilations["compiles"]
    second = model.fit(_sleepstudy(0.5))
    assert compilations["compiles"] == before
    assert second.info["compile_seconds"] < first.info["compile_seconds"]
    b_first, b_second = first.draws("b").mean(axis=(0, 1)), second.draws("b").mean(axis=(0, 1))
    # Reaction × 1.5 + 50: the intercept moves by about 50 + 0.5 × 251, the slope × 1.5
    assert b_second[0] - b_first[0] == pytest.approx(50.0 + 0.5 * b_first[0], rel=0.1)
    assert b_second[1] / b_first[1] == pytest.approx(1.5, rel=0.15)


def _counts(seed: int) -> pd.DataFrame:
    """Over-dispersed counts, 12 groups × 8 rows with an exposure offset (gamma-Poisson)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 8)
    x, exposure = rng.normal(size=g.size), rng.uniform(0.5, 2.0, size=g.size)
    mu = exposure * np.exp(0.5 + 0.3 * x + rng.normal(0.0, 0.5, 12)[g])
    return pd.DataFrame({"y": rng.poisson(rng.gamma(3.0, mu / 3.0)), "x": x,
                         "exposure": exposure, "g": [f"g{j:02d}" for j in g]})


@pytest.mark.filterwarnings("ignore::poolwise.exceptions.SamplingWarning")  # short chains
def test_negative_binomial_same_shapes_share_one_program(compilations: dict[str, int]) -> None:
    """The negative binomial's likelihood takes the counts, and its φ prior's parameters,
    as arguments: other counts of the same shapes under another φ scale compile nothing."""
    settings = {"formula": "y ~ x + offset(log(exposure)) + (1 | g)", "family": "negbinomial",
                "method": "nuts", "draws": 50, "warmup": 50, "chains": 2, "seed": 5}
    first = poolwise.MixedModel(**settings).fit(_counts(1))
    before = compilations["compiles"]
    second = poolwise.MixedModel(**settings, prior="phi = halfcauchy(3)").fit(_counts(2))
    assert compilations["compiles"] == before
    assert not np.array_equal(first.draws("phi"), second.draws("phi"))


@pytest.mark.filterwarnings("ignore::poolwise.exceptions.SamplingWarning")  # short chains
def test_conjugate_same_shapes_share_one_program(compilations: dict[str, int]) -> None:
    """The normal family's explicit θ: eight schools and the same schools with other
    estimates compile once."""
    schools = poolwise.datasets.load("eight-schools")
    model = poolwise.Model(family="normal", method="nuts", draws=40, warmup=40, chains=2,
                           seed=5, prior="mu=normal(0, 5), tau=halfcauchy(5)")
    columns = {"y": "y", "se": "sigma", "group": "school"}
    model.fit(schools, **columns)
    before = compilations["compiles"]
    model.fit(schools.assign(y=schools["y"][::-1].to_numpy()), **columns)
    assert compilations["compiles"] == before


def test_progress_bar_leaves_the_draws_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    """The bar advances between calls of the same compiled program, so draws are the same
    with and without it; warm-up and draws that the calls do not divide evenly."""
    from poolwise.inference.nuts import run_chains

    def potential(z: object, data: object) -> object:
        import jax.numpy as jnp

        return 0.5 * jnp.sum(jnp.square(z - data))

    init = np.zeros((2, 3))
    data = np.array([1.0, -2.0, 0.5])
    runs = [run_chains(potential, init, SamplerConfig(draws=23, chains=2, warmup=17, seed=1,
                                                      progress=progress), 0.8, data=data)
            for progress in (False, True)]
    assert "nuts" in capsys.readouterr().err
    (z, stats), (z_bar, stats_bar) = runs
    assert z.shape == (2, 23, 3)
    np.testing.assert_array_equal(z, z_bar)
    for name, values in stats.items():
        assert values.shape == (2, 23)
        np.testing.assert_array_equal(values, stats_bar[name])
