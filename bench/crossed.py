"""Crossed random effects at the size of lme4's InstEval: REML and full Bayes through the CLI.

Run from the repository root::

    .venv/bin/python bench/crossed.py                      # REML, then the default method
    .venv/bin/python bench/crossed.py --methods eb-ml      # REML only
    .venv/bin/python bench/crossed.py --chains 2 --draws 500   # a shorter Bayesian run

InstEval (lme4) has 73,421 ratings of 1,128 lecturers (d) by 2,972 students (s) in 14
departments; its simpler model is ``y ~ 1 + (1 | s) + (1 | d) + (1 | dept)``. This script
simulates a design of that size (each rating a uniformly drawn student and lecturer, the
lecturer's department fixed, y = 3 + s + d + dept + ε with sds 0.32, 0.52, 0.08 and 1.18,
about InstEval's REML estimates), writes it as a CSV, and runs ``poolwise fit`` on it once
per method, each in its own process under ``/usr/bin/time -v``: wall time and peak
resident memory of the whole command (imports, reading, fitting, the summary), and the
estimated sds from its JSON. The students' term is eliminated first (block diagonal);
the Schur complement of the lecturers, departments and intercept (1,143 columns) is the
one dense matrix, factorised once per evaluation of the likelihood.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

FORMULA = "y ~ 1 + (1 | s) + (1 | d) + (1 | dept)"
#: the simulated sds of s, d, dept and the residual
TRUTH = {"s": 0.32, "d": 0.52, "dept": 0.08, "sigma": 1.18}


def simulate(rows: int, students: int, lecturers: int, departments: int,
             seed: int) -> pd.DataFrame:
    """A crossed design of InstEval's size (module docstring)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, students, rows)
    d = rng.integers(0, lecturers, rows)
    dept = rng.integers(0, departments, lecturers)[d]
    y = (3.0 + rng.normal(0, TRUTH["s"], students)[s] + rng.normal(0, TRUTH["d"], lecturers)[d]
         + rng.normal(0, TRUTH["dept"], departments)[dept]
         + rng.normal(0, TRUTH["sigma"], rows))
    return pd.DataFrame({"y": y, "s": [f"s{i}" for i in s], "d": [f"d{i}" for i in d],
                         "dept": [f"dept{i}" for i in dept]})


def run(data: Path, method: str, extra: list[str], timeout: float) -> dict[str, object]:
    """One ``poolwise fit`` under ``/usr/bin/time -v``: wall seconds, peak RSS, the sds."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "poolwise", "fit", str(data),
               "--formula", FORMULA, "--method", method, "--format", "json", *extra]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"method": method, "error": f"ran past {timeout:g} s"}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result: dict[str, object] = {"method": method, "exit": done.returncode}
    if wall:
        seconds = 0.0
        for part in wall.group(1).split(":"):
            seconds = 60 * seconds + float(part)
        result["wall_s"] = seconds
    if peak:
        result["peak_rss_mb"] = int(peak.group(1)) / 1024
    if done.returncode:
        result["error"] = done.stderr.strip().splitlines()[-20:]
        return result
    summary = json.loads(done.stdout)["summary"]
    for row in summary:
        if row["param"] == "sigma" or row["param"].startswith("sd_"):
            result[row["param"]] = row["mean"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=73_421)
    parser.add_argument("--students", type=int, default=2_972)
    parser.add_argument("--lecturers", type=int, default=1_128)
    parser.add_argument("--departments", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", default="eb-ml,importance")
    parser.add_argument("--chains", type=int, default=None)
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    table = simulate(args.rows, args.students, args.lecturers, args.departments, args.seed)
    extra = [*(["--chains", str(args.chains)] if args.chains else []),
             *(["--draws", str(args.draws)] if args.draws else [])]
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "crossed.csv"
        table.to_csv(data, index=False)
        print(f"{args.rows} rows, {args.students} × {args.lecturers} crossed levels, "
              f"{args.departments} departments; truth {TRUTH}", flush=True)
        for method in args.methods.split(","):
            print(json.dumps(run(data, method, extra if method != "eb-ml" else [],
                                 args.timeout)), flush=True)


if __name__ == "__main__":
    main()
