"""Data larger than memory: `poolwise fit` of an N-row Parquet file.

Generates (not shipped) a Parquet file of ``--rows`` rows, ``g`` a group in
0..``--groups``−1, written in chunks of ``--chunk`` rows with pyarrow so generation holds
one chunk at a time:

- ``--model bernoulli`` (default): ``y`` a 0/1 outcome with the group's rate
  θ_g ~ Beta(2, 20), fitted by ``poolwise fit FILE --y y --group g``;
- ``--model mixed``: a normal mixed model with one grouping factor, x uniform on 0..9 and
  y = 250 + 10 x + b_g0 + b_g1 x + ε, (b_g0, b_g1) ~ N(0, diag(25², 6²)), ε ~ N(0, 25²),
  fitted by ``poolwise fit FILE --formula 'y ~ x + (x | g)'`` (streamed as per-group
  cross-products).

Then runs, for each ``--engines`` entry, as a separate process under ``/usr/bin/time -v``,
``poolwise fit FILE … --engine ENGINE --method METHOD --quiet`` and prints its wall time
and peak RSS (issue 11: < 4 GB at 10^8 rows with DuckDB).

    PYTHONPATH=src .venv/bin/python bench/big_data.py --rows 10000000 --engines duckdb,pandas
    PYTHONPATH=src .venv/bin/python bench/big_data.py            # 10^8 rows (≈ 0.5 GB file)
    PYTHONPATH=src .venv/bin/python bench/big_data.py --model mixed --rows 10000000 \
        --groups 1000 --method eb-ml --engines duckdb,dask
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, rows: int, groups: int, chunk: int, seed: int) -> None:
    """The Parquet file, one row group per chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([seed, 0])
    theta = rng.beta(2.0, 20.0, size=groups)
    schema = pa.schema([("g", pa.int32()), ("y", pa.int8())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            g = rng.integers(0, groups, size=size, dtype=np.int32)
            y = (rng.random(size) < theta[g]).astype(np.int8)
            writer.write_table(pa.table({"g": g, "y": y}, schema=schema))


def generate_mixed(path: Path, rows: int, groups: int, chunk: int, seed: int) -> None:
    """The mixed model's Parquet file (module docstring), one row group per chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([seed, 1])
    effects = rng.normal(0.0, [25.0, 6.0], size=(groups, 2))
    schema = pa.schema([("g", pa.int32()), ("x", pa.float64()), ("y", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            g = rng.integers(0, groups, size=size, dtype=np.int32)
            x = rng.uniform(0.0, 9.0, size=size)
            y = (250.0 + effects[g, 0] + (10.0 + effects[g, 1]) * x
                 + rng.normal(0.0, 25.0, size=size))
            writer.write_table(pa.table({"g": g, "x": x, "y": y}, schema=schema))


#: each model's generator and the options that fit it
MODELS = {"bernoulli": (generate, ["--y", "y", "--group", "g"]),
          "mixed": (generate_mixed, ["--formula", "y ~ x + (x | g)"])}


def measure(path: Path, engine: str, method: str, options: list[str]
            ) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in GB, exit code and the last lines of output."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "poolwise", "fit", str(path),
               *options, "--engine", engine, "--method", method, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(),
                          check=False)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60
               + float(wall.group(3))) if wall else float("nan")
    peak = int(rss.group(1)) / 2**20 if rss else float("nan")
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[:6])
    return seconds, peak, done.returncode, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--groups", type=int, default=10**4)
    parser.add_argument("--chunk", type=int, default=5 * 10**6)
    parser.add_argument("--model", choices=sorted(MODELS), default="bernoulli")
    parser.add_argument("--engines", default="duckdb")
    parser.add_argument("--method", default="exact")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, help="where to write the file (default: a "
                                                  "temporary directory, removed after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="poolwise-big-") as scratch:
        make, options = MODELS[args.model]
        path = args.path or Path(scratch) / f"{args.model}_{args.rows}.parquet"
        if not path.exists():
            start = time.perf_counter()
            make(path, args.rows, args.groups, args.chunk, args.seed)
            print(f"generated {args.rows:,} rows in {args.groups:,} groups: "
                  f"{path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s")
        print(f"{'engine':8} {'wall':>9} {'peak RSS':>9}  exit")
        for engine in args.engines.split(","):
            seconds, peak, code, tail = measure(path, engine, args.method, options)
            print(f"{engine:8} {seconds:8.1f}s {peak:7.2f} GB  {code}")
            if code != 0:
                print("   " + tail.replace("\n", "\n   "))


if __name__ == "__main__":
    main()
