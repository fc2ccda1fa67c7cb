"""10^7 groups through the Dask engine on a `distributed.LocalCluster` (issue 11, item 6).

Generates (not shipped) a directory of Parquet files: ``--groups`` groups of gamma-Poisson
counts, each group's ``--rows-per-group`` rows spread over the files (so every group's sums
are merged across partitions), ``events`` ~ Poisson(λ_g · exposure) with λ_g ~ Gamma(2, 4)
and ``exposure`` uniform on 0.5..2 — continuous, so almost every group's (Σ events,
Σ exposure) is distinct and the per-group posterior step has 10^7 pairs to summarise.

Then, in this process, on a LocalCluster of ``--workers`` worker processes (one thread
each):

1. the reduction, ``poolwise.data.engines.reduce(..., engine="dask", scheduler=ADDRESS)``:
   each partition's per-group sums split by a hash of the group and merged part by part on
   the workers (no worker holds every group), the parts gathered here;
2. the per-group posterior step, ``summarise_groups`` inside ``on_cluster(ADDRESS)``, as
   a full-Bayes fit runs it once θ is left undrawn: every group's mean, sd, 95 % interval
   and pooling factor, with their Monte Carlo errors, from ``--draws`` hyperparameter
   draws (around the generating α = 2, β = 4, log-normal with sd 0.02), summarised by
   tasks on the cluster. (The whole fit is not run here: its client-side outputs at
   10^7 groups — summary table, files — are estimated by the memory guard at 14 GB.)

It prints each phase's wall time, the number of merged parts (so the groups one worker
merges at a time), the peak RSS of every worker (``ru_maxrss`` in each worker process) and
of this process.

    PYTHONPATH=src .venv/bin/python bench/dask_cluster.py                 # 10^7 groups
    PYTHONPATH=src .venv/bin/python bench/dask_cluster.py --groups 1000000 --files 8
    PYTHONPATH=OTHER/src .venv/bin/python bench/dask_cluster.py --reduce-only  # another version

``--reduce-only`` stops after the reduction (it uses only ``engines.reduce``, so it runs
against older versions of poolwise too).
"""

from __future__ import annotations

import argparse
import re
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(directory: Path, groups: int, per_group: int, files: int, seed: int) -> int:
    """The Parquet files (module docstring); returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([seed, 0])
    rate = rng.gamma(2.0, 1 / 4.0, size=groups)
    rows = groups * per_group
    order = rng.permutation(rows)  # a group's rows land in different files
    g = (order % groups).astype(np.int64)
    exposure = rng.uniform(0.5, 2.0, size=rows)
    events = rng.poisson(rate[g] * exposure)
    for k, part in enumerate(np.array_split(np.arange(rows), files)):
        pq.write_table(pa.table({"g": g[part], "events": events[part],
                                 "exposure": exposure[part]}),
                       directory / f"part-{k:03d}.parquet")
    return rows


def peak_gb() -> float:
    """This process's peak resident memory (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10**7)
    parser.add_argument("--rows-per-group", type=int, default=2)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--reduce-only", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import distributed

    from poolwise.data.engines import reduce
    from poolwise.families import get_family

    with tempfile.TemporaryDirectory(prefix="poolwise-dask-") as scratch:
        start = time.perf_counter()
        rows = generate(Path(scratch), args.groups, args.rows_per_group, args.files,
                        args.seed)
        print(f"generated {rows:,} rows in {args.groups:,} groups, {args.files} files, "
              f"in {time.perf_counter() - start:.1f} s")
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, dashboard_address=":0",
                                      silence_logs=50) as cluster, \
                distributed.Client(cluster) as client:
            address = cluster.scheduler_address
            start = time.perf_counter()
            family = get_family("gamma-poisson")
            reduced = reduce(scratch, family, y="events", n="exposure",
                             group="g", engine="dask", scheduler=address)
            reduction = time.perf_counter() - start
            counts = reduced.stats
            print(f"reduction on the cluster: {reduction:.1f} s, {counts.n_groups:,} groups",
                  flush=True)
            if args.reduce_only:
                for address, gb in sorted(client.run(peak_gb).items()):
                    print(f"worker {address}: peak RSS {gb:.2f} GB")
                return
            from poolwise._threads import on_cluster
            from poolwise.inference.group_posterior import summarise_groups

            rng = np.random.default_rng([args.seed, 1])
            alpha = 2.0 * np.exp(rng.normal(0.0, 0.02, args.draws))
            beta = 4.0 * np.exp(rng.normal(0.0, 0.02, args.draws))
            start = time.perf_counter()
            with on_cluster(address):
                summary = summarise_groups(family, alpha, beta, counts.y, counts.n, 0.95)
            fitting = time.perf_counter() - start
            workers = client.run(peak_gb)
    from poolwise.data.engines import bucket_count
    from poolwise.inference.group_posterior import CLUSTER_PAIRS, distinct_pairs

    read = re.search(r"in (\d+) partitions", counts.notes[0])
    parts = bucket_count(int(read.group(1)) if read else args.files)
    distinct = distinct_pairs(counts.y, counts.n)[0].size
    print(f"{counts.n_groups:,} groups in {parts} merged parts, about "
          f"{counts.n_groups // parts:,} groups each")
    errors = summary.largest_errors()
    where = "on the cluster" if distinct >= CLUSTER_PAIRS else "in threads here (few pairs)"
    print(f"posterior summaries {where}: {fitting:.1f} s; {distinct:,} distinct "
          f"(y, E) pairs, {summary.draws_moments} draws for the moments and "
          f"{summary.draws_quantiles} for the quantiles; largest Monte Carlo error of a mean "
          f"{errors['mean']:.2g}, of an interval end {errors['interval']:.2g}")
    for address, gb in sorted(workers.items()):
        print(f"worker {address}: peak RSS {gb:.2f} GB")
    print(f"this process (client): peak RSS {peak_gb():.2f} GB")


if __name__ == "__main__":
    main()
