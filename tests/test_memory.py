"""The memory guard (issue 11, item 4): the memory available, each kind's estimate, and a
refusal in one line, before anything is allocated, that names settings which would fit."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from poolwise import MixedModel, NestedModel, PoolwiseError, ResourceError, datasets
from poolwise.cli import main
from poolwise.exceptions import SpecificationError
from poolwise.resources import (
    ENVIRONMENT,
    HEADROOM,
    MemoryEstimate,
    MemoryLimits,
    available_memory,
    format_bytes,
    parse_size,
)

SOURCE = str(Path(__file__).resolve().parents[1] / "src")
FORMULA = "Reaction ~ Days + (Days | Subject)"


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != ENVIRONMENT}
    environ["PYTHONPATH"] = SOURCE
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**environ, **(env or {})}, timeout=150, check=True)


def _labs() -> pd.DataFrame:
    rows = [(f"L{lab}", f"e{e}", 3 + lab + e % 2, 20) for lab in range(4) for e in range(3)]
    return pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"])


# ----------------------------------------------------------------------------- sizes
def test_sizes_are_read_and_written_in_one_convention() -> None:
    assert parse_size("8G") == 8 * 10**9
    assert parse_size(" 500 MB ") == 500 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("123456") == 123456
    for bad in ("eight", "8X", "-1G", ""):
        with pytest.raises(SpecificationError, match="is not a size"):
            parse_size(bad)
    assert format_bytes(38.4e9) == "38 GB"
    assert format_bytes(7.61e9) == "7.6 GB"
    assert format_bytes(520e6) == "520 MB"
    assert format_bytes(12) == "12 bytes"


# ----------------------------------------------------------------------------- available
def test_the_environment_variable_sets_the_memory_available(monkeypatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "500M")
    assert available_memory() == 500 * 10**6
    monkeypatch.setenv(ENVIRONMENT, "lots")
    with pytest.raises(SpecificationError, match=ENVIRONMENT):
        available_memory()


def test_an_address_space_limit_bounds_the_memory_available() -> None:
    """``ulimit -v``: the limit less the virtual size already used (which a process with
    NumPy loaded has, so the answer is well below the limit)."""
    code = """if True:
        import resource
        from poolwise.resources import _proc_field, available_memory
        size = _proc_field("/proc/self/status", "VmSize")
        limit = size + 300 * 10**6
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        available = available_memory()
        print(available, _proc_field("/proc/self/status", "VmSize") + available - limit)
    """
    available, gap = map(int, _python(code).stdout.split())
    assert 250 * 10**6 < available <= 300 * 10**6
    assert gap == 0  # available = limit − VmSize, exactly


def test_the_least_limit_is_the_one_that_refuses() -> None:
    estimate = MemoryEstimate((("draws", 800),), reserved=500)
    assert estimate.fits(MemoryLimits(1000, None))
    assert not estimate.fits(MemoryLimits(850, None))  # HEADROOM: 765 usable
    assert not estimate.fits(MemoryLimits(10**6, 1200))  # 1300 with JAX's reserve
    assert estimate.fits(MemoryLimits(None, 1500))
    assert HEADROOM < 1


# ----------------------------------------------------------------------------- refusals
def test_a_mixed_fit_that_does_not_fit_names_the_draws_that_would(monkeypatch) -> None:
    """The limit is set where 500 draws a chain fit and 1000 do not: the line gives the
    estimate of 1000 and offers 500, with its estimate."""
    sleep = datasets.load("sleepstudy")
    model = MixedModel(formula=FORMULA, seed=1)
    prepared = model.prepare(sleep)
    full = model.memory_estimate(prepared)
    half = model.replace(draws=500).memory_estimate(prepared)
    assert half.bytes < full.bytes
    monkeypatch.setenv(ENVIRONMENT, str(int(half.bytes / HEADROOM) + 1))
    with pytest.raises(ResourceError) as refused:
        model.fit(sleep)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"fitting {model.title(prepared)} with 4 × 1000 draws needs "
                              f"about {format_bytes(full.bytes)} (")
    assert f"draws=500 (--draws 500, about {format_bytes(half.bytes)})" in message
    assert f"is available ({ENVIRONMENT})" in message
    assert isinstance(refused.value, MemoryError) and isinstance(refused.value, PoolwiseError)


def test_a_nested_fit_with_nothing_that_fits_says_so(monkeypatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "1M")
    model = NestedModel(family="beta-binomial", draws=200, chains=2)
    with pytest.raises(ResourceError, match=r"needs about .* \(JAX .*\), but 1\.0 MB is "
                       r"available .*; no smaller setting fits"):
        model.fit(_labs(), y="y", n="n", group="lab/experiment")


@pytest.mark.parametrize("args", [
    ["sleepstudy"],
    ["labs.csv", "--y", "y", "--n", "n", "--group", "lab/experiment"],
], ids=["mixed", "nested"])
def test_the_command_line_refuses_before_any_output(args, tmp_path, capsys, monkeypatch
                                                     ) -> None:
    _labs().to_csv(tmp_path / "labs.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENVIRONMENT, "5M")
    out = tmp_path / "results" / "out"
    code = main(["fit", *args, "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("error: fitting ")
    assert "needs about" in stderr and "5.0 MB is available" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- calibration
def test_an_exact_fit_peaks_below_its_estimate_and_above_half_of_it() -> None:
    """NIG exact draws, 200 groups × 4 × 5000 draws (64 MB of θ and σ² draws): the peak
    RSS the fit, its summary and its predictive check add (VmHWM of the child less its
    RSS before the fit, with ru_maxrss of the child as a check on VmHWM) is below the
    estimate, which errs high, and above half of it."""
    code = """if True:
        import json, numpy as np, pandas as pd
        from poolwise import NIGModel
        from poolwise.resources import _proc_field
        rng = np.random.default_rng(3)
        groups = np.repeat(np.arange(200), 5)
        table = pd.DataFrame({"y": rng.normal(groups % 7, 1.0), "g": groups.astype(str)})
        model = NIGModel(pooling="none", draws=5000, chains=4)
        prepared = model.prepare(table, y="y", group="g")
        before = _proc_field("/proc/self/status", "VmRSS")
        fit = model.fit(prepared)
        fit.summary()
        fit.predictive_check()
        print(json.dumps({"before": before, "estimate": model.memory_estimate(prepared).bytes,
                          "peak": _proc_field("/proc/self/status", "VmHWM")}))
    """
    result = json.loads(_python(code).stdout)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib * 1024 >= result["peak"] * 0.99
    grown = result["peak"] - result["before"]
    assert grown < result["estimate"] < 2 * grown, (grown, result["estimate"])
