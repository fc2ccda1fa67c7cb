"""A NUTS fit from the command line, cold and warm: JAX's persistent compilation cache.

Run from the repository root::

    .venv/bin/python bench/warm.py                 # 3 warm runs
    .venv/bin/python bench/warm.py --repeats 5 --args "fit sleepstudy --method nuts"

Every run is ``python -m poolwise ARGS --quiet`` on this checkout's ``src``, a separate
process under ``/usr/bin/time -v`` (wall time and peak RSS, as ``scale.py`` measures
them), with ``POOLWISE_COMPILE_CACHE`` set to a fresh temporary directory: first with the
cache off (``0``: every program compiled, nothing written), then cold (the directory
empty: everything compiled and written), then ``--repeats`` warm runs (every program read
from the directory). Then one more warm run under ``cProfile`` gives where a warm run's
time goes: importing (the command line's imports and the libraries the fit pulls in),
finding the NUTS programs (tracing and lowering the model, which JAX does to compute the
cache key, and reading the cache), sampling, drawing the integrated-out coefficients,
building the fit, its summary and predictive check. cProfile slows Python code, so the
parts add to more than a plain warm run.
"""

from __future__ import annotations

import argparse
import os
import platform
import pstats
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import measure

ROOT = Path(__file__).resolve().parents[1]
#: (label, file suffix, function) of the warm run's breakdown, as cProfile names them
PARTS = (
    ("command line up to the fit (imports, data, priors)", "poolwise/cli.py", "build_job"),
    ("fit (all of MixedModel.fit)", "kinds/mixed/model.py", "fit"),
    ("  NUTS programs: trace, lower, read cache", "inference/nuts.py", "_programs"),
    ("  sampling (4 chains in threads)", "inference/nuts.py", "_run_each"),
    ("  coefficients drawn given the variances", "kinds/mixed/inference.py", "constrain"),
    ("summary (ESS, R-hat)", "results/fit.py", "summary"),
    ("predictive check", "results/fit.py", "predictive_check"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--args", default="fit sleepstudy --method nuts",
                        help="the poolwise command line (without --quiet)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs")
    parser.add_argument("--timeout", type=float, default=600.0)
    options = parser.parse_args()
    command = [sys.executable, "-m", "poolwise", *shlex.split(options.args), "--quiet"]
    print(f"poolwise {options.args} --quiet; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="warm-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        cache = scratch / "cache"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        runs = [("cache off", "0"), ("cold (empty cache)", str(cache))]
        runs += [(f"warm {k + 1}", str(cache)) for k in range(options.repeats)]
        print(f"{'run':<22}{'wall s':>8}{'peak RSS':>10}  status")
        for label, value in runs:
            run = measure(command, options.timeout, None, scratch,
                          env={**env, "POOLWISE_COMPILE_CACHE": value})
            rss = f"{run.rss / 1e9:.2f} GB" if run.rss else "–"
            print(f"{label:<22}{run.wall:8.2f}{rss:>10}  {run.status} {run.message}".rstrip())
        entries = list(cache.iterdir())
        size = sum(f.stat().st_size for f in entries)
        print(f"cache: {len(entries)} programs, {size / 1e6:.1f} MB")
        profile = scratch / "warm.prof"
        measure([sys.executable, "-m", "cProfile", "-o", str(profile), *command[1:]],
                options.timeout, None, scratch,
                env={**env, "POOLWISE_COMPILE_CACHE": str(cache)})
        breakdown(profile)


def breakdown(profile: Path) -> None:
    """Cumulative seconds of :data:`PARTS` in a profiled warm run."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values())
    print(f"warm run under cProfile, {total:.2f} s in all:")
    for label, suffix, function in PARTS:
        seconds = sum(entry[3] for (file, _, name), entry in stats.items()
                      if file.endswith(suffix) and name == function)
        print(f"  {label:<54}{seconds:7.2f} s")


if __name__ == "__main__":
    main()
