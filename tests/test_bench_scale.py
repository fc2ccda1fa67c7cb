"""bench/scale.py: a run that is too slow or too big is reported as such, and the exponent."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import scale

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/time").exists() or shutil.which("prlimit") is None,
    reason="needs /usr/bin/time (GNU time) and prlimit (util-linux)")


def test_exponent_is_the_log_log_slope() -> None:
    sizes = [10**4, 10**5, 10**6]
    assert scale.exponent(sizes, [2.0 * g for g in sizes]) == pytest.approx(1.0)
    assert scale.exponent(sizes, [3e-9 * g**2 for g in sizes]) == pytest.approx(2.0)
    assert scale.exponent([10**4], [1.0]) is None


def test_mem_cap_is_parsed() -> None:
    assert scale.parse_bytes("8G") == 8 * 2**30
    assert scale.parse_bytes("512m") == 512 * 2**20
    assert scale.parse_bytes("none") is None


def test_a_run_past_its_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    run = scale.measure([sys.executable, "-c", "import time; time.sleep(60)"], 1.0, None,
                        tmp_path)
    assert run.status == "timeout"
    assert run.wall < 30


def test_a_run_past_its_memory_cap_is_reported(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import numpy; numpy.ones(2**31)"]  # 16 GiB
    run = scale.measure(command, 60.0, 2 * 2**30, tmp_path)
    assert run.status == "memory"
    assert "Unable to allocate" in run.message


def test_a_run_past_its_resident_memory_cap_is_killed_and_reported(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import numpy, time; a = numpy.ones(2**28); time.sleep(60)"]
    run = scale.measure(command, 60.0, 2**30, tmp_path, cap_kind="rss")  # 2 GiB > 1 GiB
    assert run.status == "memory"
    assert run.wall < 30 and "resident" in run.message


def test_a_finished_run_has_its_time_and_peak_memory(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import numpy; a = numpy.ones(2**25); print(a.sum())"]
    run = scale.measure(command, 60.0, 2 * 2**30, tmp_path)
    assert run.status == "ok", run.message
    assert run.rss is not None and run.rss > 2**28  # the 256 MiB array was resident
    assert run.cpu is not None and 0 < run.cpu < 60
    assert float(run.stdout) == 2**25


def test_workloads_are_seeded_and_as_described() -> None:
    repeats = scale.generate("bb-repeats", 2000, seed=1)
    assert repeats.equals(scale.generate("bb-repeats", 2000, seed=1))
    assert repeats["n"].between(5, 500).all() and (repeats["y"] <= repeats["n"]).all()
    distinct = scale.generate("bb-distinct", 2000, seed=1)
    assert len(distinct[["y", "n"]].drop_duplicates()) > 1990
    assert len(repeats[["y", "n"]].drop_duplicates()) < 1900
    normal = scale.generate("normal", 2000, seed=1)
    assert normal["se"].between(0.5, 3).all()
    assert np.isclose(normal["y"].mean(), 1.0, atol=0.15)
    counts = scale.generate("gamma-poisson", 2000, seed=1)
    assert counts["n"].between(0.5, 50).all() and counts["g"].is_unique
