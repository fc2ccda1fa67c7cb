"""Growth with the number of groups: the command line end to end, and its peers.

Run from the repository root (the peers come with ``pip install -e ".[test,bench]"``)::

    .venv/bin/python bench/scale.py                          # 10^4, 10^5, 10^6 groups
    .venv/bin/python bench/scale.py --sizes 1e4,1e5 --mem-cap 12G --timeout 300
    .venv/bin/python bench/scale.py --families normal --methods exact --no-peers

Every run is ``poolwise fit FILE --family F --y y --n n|--se se --group g --method M
--quiet`` (``python -m poolwise`` on this checkout's ``src``), once with ``--out DIR
--force`` (summary, result, report, posterior file) and once without (the terminal
summary only), each a separate process under ``/usr/bin/time -v``: wall time, peak RSS
("Maximum resident set size"), CPU time (user + system: what the run itself used, steadier
than wall time on a loaded machine) and exit status. ``--mem-cap`` limits poolwise's address
space (``prlimit --as``: an allocation past it fails as it would on a smaller machine;
the address space counts more than the resident memory, so a cap of 12G stops a process
somewhat before 12 GB of RSS); ``--timeout`` kills the process group. A run that stops
for either is reported as such.

Workloads (CSV files generated into a temporary directory, seeded, not shipped):

- ``bb-repeats``: beta-binomial, n_j uniform on 5..500, y_j ~ BetaBinomial(n_j, 2, 18)
  (mean 0.1): many (y, n) pairs repeat;
- ``bb-distinct``: the same with n_j uniform on 5..10^6, so almost no pair repeats;
- ``gamma-poisson``: E_j uniform on 0.5..50 (continuous: every group distinct),
  λ_j ~ Gamma(2, rate 20) (mean 0.1), y_j ~ Poisson(E_j λ_j);
- ``normal``: se_j uniform on 0.5..3, θ_j ~ N(1, 0.5²), y_j ~ N(θ_j, se_j²).

The growth exponent is the least-squares slope of log wall time (and of log peak RSS)
against log groups over the sizes that finished; one above 1.2 is flagged. Peak RSS
includes the interpreter and its libraries (a few hundred MB), so its exponent is below 1
at small sizes even when the data-dependent part grows linearly.

Peers (``--peers``, at ``--peer-sizes``): the models of ``rates.py`` (centred θ, α, β ~
HalfNormal(10)) on ``bb-repeats`` and of ``normal.py`` (non-centred, μ ~ N(0, 5),
τ ~ HalfCauchy(5)) on ``normal``, hand-written in NumPyro and in PyMC sampled by nutpie,
4 chains × ``--peer-draws`` warm-up × ``--peer-draws`` draws, each a separate process
under the same ``/usr/bin/time -v`` and timeout, reading the same CSV. Their cap is on
resident memory (a watchdog kills the process group past ``--mem-cap``), not address
space: nutpie reserves about 13 GB of address space for 10^5 groups while resident in
under 1 GB, and a 12G ``prlimit --as`` made it abort at 0.7 GB. poolwise
``exact`` runs on the same data with the same prior (terminal summary) for the ratios.
A peer's wall time excludes the minimum bulk ESS that the benchmark computes afterwards
(over every parameter, from the draws; timed inside the process and subtracted); its peak
RSS includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rates import RESULT, SEED, _cpus, min_bulk_ess, nutpie_missing

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"bb-repeats": "beta-binomial", "bb-distinct": "beta-binomial",
            "gamma-poisson": "gamma-poisson", "normal": "normal"}
CASES = {"bb-repeats": "repeats", "bb-distinct": "distinct"}  # the beta-binomial cases
STREAMS = {name: k for k, name in enumerate(FAMILIES)}  # one random stream per workload
METHODS = ("exact", "eb-ml", "eb-moments")
PEER_WORKLOADS = {"bb-repeats": "halfnormal(10)", "normal": "mu=normal(0, 5), tau=halfcauchy(5)"}
PEERS = {"numpyro": "NumPyro", "nutpie": "nutpie"}
FLAG = 1.2  # a growth exponent above this is flagged


# ============================================================== data
def generate(workload: str, groups: int, seed: int) -> Any:
    """The workload's table of ``groups`` rows: g, y and n (or se)."""
    import pandas as pd

    rng = np.random.default_rng([seed, STREAMS[workload], groups])
    if workload in CASES:
        top = 500 if workload == "bb-repeats" else 1_000_000
        n = rng.integers(5, top + 1, size=groups)
        columns = {"y": rng.binomial(n, rng.beta(2.0, 18.0, size=groups)), "n": n}
    elif workload == "gamma-poisson":
        exposure = rng.uniform(0.5, 50.0, size=groups)
        columns = {"y": rng.poisson(exposure * rng.gamma(2.0, 1 / 20.0, size=groups)),
                   "n": exposure}
    else:
        se = rng.uniform(0.5, 3.0, size=groups)
        columns = {"y": rng.normal(rng.normal(1.0, 0.5, size=groups), se), "se": se}
    width = len(str(groups - 1))
    labels = np.char.add("g", np.char.zfill(np.arange(groups).astype(str), width))
    return pd.DataFrame({"g": labels, **columns})


class DataFile(NamedTuple):
    path: Path
    distinct: int  # distinct (y, n) or (y, se) pairs
    seconds: float  # to generate and write


def data_file(folder: Path, workload: str, groups: int, seed: int,
              cache: dict[tuple[str, int], DataFile]) -> DataFile:
    """The workload's CSV at this size, written once per benchmark run."""
    if (workload, groups) not in cache:
        start = time.perf_counter()
        table = generate(workload, groups, seed)
        path = folder / f"{workload}_{groups}.csv"
        table.to_csv(path, index=False)
        distinct = len(table.drop_duplicates(subset=list(table.columns[1:])))
        cache[workload, groups] = DataFile(path, distinct, time.perf_counter() - start)
    return cache[workload, groups]


# ============================================================== one measured process
class Run(NamedTuple):
    status: str  # ok, timeout, memory, killed (signal), exit N
    wall: float  # seconds
    rss: float | None  # peak resident set size, bytes
    written: int | None  # bytes under --out
    message: str  # the last line of stderr when it failed
    stdout: str
    cpu: float | None = None  # user + system seconds (on a loaded machine, steadier than wall)


def parse_bytes(text: str) -> int | None:
    """'8G', '512M', '12g' → bytes; 'none' → None."""
    if text.lower() in {"none", "0", ""}:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", text.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(f"--mem-cap {text!r}: give e.g. 8G, 512M or none")
    power = " KMGT".index(match.group(2) or " ")
    return int(float(match.group(1)) * 1024**power)


def tree_memory(pid: int, field: str = "VmHWM") -> float | None:
    """Over a process and its descendants: the largest VmHWM (peak RSS), or the sum of
    VmRSS (resident now), in bytes; None when none can be read."""
    values, stack = [], [pid]
    while stack:
        here = stack.pop()
        try:
            status = Path(f"/proc/{here}/status").read_text()
            for task in Path(f"/proc/{here}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        found = re.search(rf"{field}:\s+(\d+) kB", status)
        if found:
            values.append(int(found.group(1)) * 1024.0)
    if not values:
        return None
    return max(values) if field == "VmHWM" else sum(values)


def measure(command: list[str], timeout: float, cap: int | None, scratch: Path,
            out: Path | None = None, env: dict[str, str] | None = None,
            cap_kind: str = "as") -> Run:
    """Run ``command`` under /usr/bin/time -v, killed past ``timeout`` seconds.

    ``cap`` (bytes) limits its memory: with ``cap_kind="as"`` its address space
    (``prlimit --as``: allocations past it fail, as they would on a full machine); with
    ``"rss"`` its resident memory, watched every 0.2 s and the process group killed past it
    (for programs that reserve far more address space than they use, such as nutpie).
    """
    timing, stdout_file, stderr_file = (scratch / f"{name}.txt"
                                        for name in ("time", "stdout", "stderr"))
    wrapped = ["/usr/bin/time", "-v", "-o", str(timing)]
    if cap is not None and cap_kind == "as":
        wrapped += ["prlimit", f"--as={cap}", "--"]
    timing.unlink(missing_ok=True)
    start = time.perf_counter()
    stopped, rss = "", None
    with open(stdout_file, "w") as sink, open(stderr_file, "w") as errors:
        proc = subprocess.Popen(wrapped + command, stdout=sink, stderr=errors,
                                start_new_session=True, env=env)
        while proc.poll() is None:
            if time.perf_counter() - start > timeout:
                stopped = f"killed after {timeout:.0f} s"
            elif cap is not None and cap_kind == "rss":
                resident = tree_memory(proc.pid, "VmRSS")
                if resident is not None and resident > cap:
                    stopped = f"killed at {resident / 1e9:.2f} GB resident (cap {cap / 1e9:.2f} GB)"
            if stopped:
                rss = tree_memory(proc.pid)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.2)
    wall = time.perf_counter() - start
    stdout = stdout_file.read_text(errors="replace")
    err = stderr_file.read_text(errors="replace")
    written = (sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
               if out is not None and out.exists() else None)
    last = next((line.strip() for line in reversed(err.splitlines()) if line.strip()
                 and not line.startswith(("note:", "stack backtrace"))), "")
    if stopped:
        status = "timeout" if "after" in stopped else "memory"
        return Run(status, wall, rss, written, stopped, stdout)
    report = timing.read_text() if timing.exists() else ""
    rss_kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", report)
    if clock:  # /usr/bin/time's own clock: the command alone, without starting time itself
        parts = [float(p) for p in clock.group(1).split(":")]
        wall = sum(p * 60**k for k, p in enumerate(reversed(parts)))
    times = [re.search(rf"{kind} time \(seconds\): ([\d.]+)", report)
             for kind in ("User", "System")]
    cpu = sum(float(t.group(1)) for t in times if t) if all(times) else None
    signalled = re.search(r"Command terminated by signal (\d+)", report)
    exit_code = re.search(r"Exit status: (\d+)", report)
    code = int(exit_code.group(1)) if exit_code else proc.returncode
    failed = bool(signalled) or code != 0
    if failed and re.search(r"Unable to allocate|MemoryError|bad_alloc|out of memory"
                            r"|memory allocation of", err, re.I):
        status = "memory"
    elif signalled:
        status = f"signal {signalled.group(1)}" + (" (OOM?)" if signalled.group(1) == "9" else "")
    elif code == 0:
        status, last = "ok", ""
    else:
        status = f"exit {code}"
    return Run(status, wall, int(rss_kb.group(1)) * 1024.0 if rss_kb else None, written,
               last, stdout, cpu)


def poolwise_command(file: Path, workload: str, method: str, out: Path | None,
                     prior: str | None = None) -> list[str]:
    family = FAMILIES[workload]
    size = ["--se", "se"] if family == "normal" else ["--n", "n"]
    command = [sys.executable, "-m", "poolwise", "fit", str(file), "--family", family,
               "--y", "y", *size, "--group", "g", "--method", method, "--quiet"]
    if prior is not None:
        command += ["--prior", prior]
    if out is not None:
        command += ["--out", str(out), "--force"]
    return command


def checkout_env() -> dict[str, str]:
    """The environment of every run: this checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


# ============================================================== printing
def gigabytes(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e9:.2f} GB"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def wrap(text: str, indent: str = "") -> str:
    """One note in lines of at most 80 columns."""
    return textwrap.fill(text, 80, initial_indent=indent, subsequent_indent=indent + "  ")


def exponent(sizes: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log value against log size (None with fewer than 2 sizes)."""
    if len(set(sizes)) < 2:
        return None
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def machine_line() -> str:
    memory = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    ram = int(memory.group(1)) * 1024 / 2**30 if memory else float("nan")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M')}; {_cpus()} cores "
            f"({model.group(1).strip() if model else platform.machine()}), {ram:.0f} GiB RAM, "
            f"load {load};\nPython {platform.python_version()}; poolwise at {commit or '?'}")


# ============================================================== the growth table
def bench_growth(args: argparse.Namespace, folder: Path,
                 cache: dict[tuple[str, int], DataFile]) -> list[str]:
    """Every workload × method × output at every size; returns the flagged lines."""
    env = checkout_env()
    print(f"\n== poolwise fit, end to end (timeout {args.timeout:.0f} s, "
          f"memory cap {args.mem_cap_text}) ==")
    print(f"{'workload':<14}{'method':<11}{'out':<5}{'groups':>10}{'wall':>9}{'cpu':>9}"
          f"{'peak RSS':>10}{'written':>10}  status")
    results: dict[tuple[str, str, str], list[tuple[int, Run]]] = {}
    notes: list[str] = []
    for workload in args.workloads:
        for method in args.methods:
            for with_out in args.outputs:
                key = (workload, method, "out" if with_out else "term")
                for groups in args.sizes:
                    data = data_file(folder, workload, groups, args.seed, cache)
                    out = folder / "out" if with_out else None
                    run = measure(poolwise_command(data.path, workload, method, out),
                                  args.timeout, args.mem_cap, folder, out=out, env=env)
                    results.setdefault(key, []).append((groups, run))
                    written = gigabytes(run.written) if run.written is not None else ""
                    cpu = "–" if run.cpu is None else seconds(run.cpu)
                    print(f"{workload:<14}{method:<11}{key[2]:<5}{groups:>10,}"
                          f"{seconds(run.wall):>9}{cpu:>9}{gigabytes(run.rss):>10}"
                          f"{written:>10}  {run.status}", flush=True)
                    if run.status != "ok":
                        notes.append(f"{workload} {method} {key[2]} {groups:,}: {run.message}")
                    if out is not None:
                        subprocess.run(["rm", "-rf", str(out)], check=True)
    print(wrap("Distinct (y, n) or (y, se) pairs: " + "; ".join(
        f"{w} {g:,}: {d.distinct:,}" for (w, g), d in cache.items())))
    if notes:
        print("Runs that did not finish, with the last line each printed:")
        for note in notes:
            print(wrap(note, indent="  "))
    return growth_table(results)


def growth_table(results: dict[tuple[str, str, str], list[tuple[int, Run]]]) -> list[str]:
    print(f"\nGrowth exponents: slope of log(wall) and log(peak RSS) against log(groups),\n"
          f"least squares over the sizes that finished; ! above {FLAG}")
    print(f"{'workload':<14}{'method':<11}{'out':<5}{'sizes':<22}{'time':>7}{'memory':>8}"
          f"{'  beyond':<10}")
    flagged = []
    for (workload, method, output), runs in results.items():
        done = [(g, r) for g, r in runs if r.status == "ok" and r.rss]
        failed = [f"{g:.0e}".replace("e+0", "e") for g, r in runs if r.status != "ok"]
        sizes = [g for g, _ in done]
        span = "–" if not sizes else f"{min(sizes):,}..{max(sizes):,} ({len(sizes)})"
        cells = []
        for values in ([r.wall for _, r in done], [float(r.rss or 0) for _, r in done]):
            slope = exponent(sizes, values)
            cells.append("–" if slope is None else f"{slope:.2f}{'!' if slope > FLAG else ' '}")
            if slope is not None and slope > FLAG:
                flagged.append(f"{workload} {method} {output}: "
                               f"{'time' if len(cells) == 1 else 'memory'} exponent {slope:.2f}")
        beyond = ("not at " + ",".join(failed)) if failed else ""
        print(f"{workload:<14}{method:<11}{output:<5}{span:<22}{cells[0]:>7}{cells[1]:>8}"
              f"  {beyond}")
        if failed and done:
            flagged.append(f"{workload} {method} {output}: finished up to {max(sizes):,} "
                           f"groups, not at {', '.join(failed)}")
    return flagged


# ============================================================== peers
def run_peer(engine: str, workload: str, file: Path, draws: int) -> dict[str, Any]:
    """In this (fresh) process: one peer on one CSV, reduced to the table's numbers."""
    import normal
    import pandas as pd
    import rates

    table = pd.read_csv(file)
    if workload == "normal":
        data = (table["y"].to_numpy(dtype=float), table["se"].to_numpy(dtype=float))
        engines = {"numpyro": normal.engine_numpyro, "nutpie": normal.engine_nutpie}
        out = engines[engine](data, draws, draws)
        names = ("mu", "tau", "theta")
    else:
        counts = (table["y"].to_numpy(dtype=np.int64), table["n"].to_numpy(dtype=np.int64))
        engines = {"numpyro": rates.engine_numpyro, "nutpie": rates.engine_nutpie}
        out = engines[engine](draws, draws, data=counts)
        names = ("alpha", "beta", "theta")
    first, second, theta = (np.asarray(out.pop(k), dtype=float) for k in names)
    start = time.perf_counter()
    ess, where = min_bulk_ess(first, second, theta)
    where = {"alpha": names[0], "beta": names[1]}.get(where, where)
    return {**out, "min_ess": ess, "min_ess_param": where, "ess_s": time.perf_counter() - start}


def bench_peers(args: argparse.Namespace, folder: Path,
                cache: dict[tuple[str, int], DataFile]) -> None:
    draws = args.peer_draws
    print(f"\n== Peers on the same data: 4 chains × {draws} warm-up × {draws} draws ==\n"
          "(poolwise: exact, 4 × 1000 independent draws, the same prior, terminal summary)")
    missing = nutpie_missing() if "nutpie" in args.peers else ""
    if missing:
        print(f"nutpie: {missing}")
    peers = [p for p in args.peers if not (p == "nutpie" and missing)]
    print(f"{'workload':<14}{'engine':<9}{'groups':>9}{'wall':>9}{'peak RSS':>10}"
          f"{'min ESS':>9}{'  status':<10}{'×wall':>6}{'×RSS':>6}")
    env = checkout_env()
    notes = []
    for workload in [w for w in PEER_WORKLOADS if w in args.workloads]:
        for groups in args.peer_sizes:
            data = data_file(folder, workload, groups, args.seed, cache)
            base = measure(poolwise_command(data.path, workload, "exact", None,
                                            prior=PEER_WORKLOADS[workload]),
                           args.timeout, args.mem_cap, folder, env=env)
            print(f"{workload:<14}{'poolwise':<9}{groups:>9,}{seconds(base.wall):>9}"
                  f"{gigabytes(base.rss):>10}{'(4000)':>9}  {base.status}", flush=True)
            for engine in peers:
                command = [sys.executable, __file__, "--peer", engine, "--peer-workload",
                           workload, "--peer-data", str(data.path), "--peer-draws", str(draws)]
                run = measure(command, args.peer_timeout, args.mem_cap, folder, env=env,
                              cap_kind="rss")
                result = next((json.loads(line[len(RESULT):]) for line in run.stdout.splitlines()
                               if line.startswith(RESULT)), None)
                wall, ess, ratios = run.wall, "–", ""
                if result is not None and run.status == "ok":
                    wall -= result["ess_s"]
                    ess = f"{result['min_ess']:.0f}"
                    notes.append(f"{workload} {engine} {groups:,}: compile "
                                 f"{result['compile_s']:.1f} s, sampling {result['sampling_s']:.1f}"
                                 f" s, min ESS at {result['min_ess_param']}, "
                                 f"{result['divergences']} divergences, ESS took "
                                 f"{result['ess_s']:.1f} s")
                    if base.status == "ok" and base.rss and run.rss:
                        ratios = f"{wall / base.wall:6.1f}{run.rss / base.rss:6.1f}"
                elif run.status != "ok":
                    notes.append(f"{workload} {engine} {groups:,}: {run.status}: {run.message}")
                print(f"{'':<14}{PEERS[engine]:<9}{groups:>9,}{seconds(wall):>9}"
                      f"{gigabytes(run.rss):>10}{ess:>9}  {run.status:<8}{ratios}", flush=True)
    print("×wall, ×RSS: the peer's ÷ poolwise exact's in the row above (above 1: poolwise\n"
          "is faster / smaller). A peer's wall leaves out the ESS computation.")
    for note in notes:
        print(wrap(note, indent="  "))


# ============================================================== main
def size_list(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s]


def name_list(choices: list[str] | tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        names = [s for s in text.split(",") if s]
        unknown = sorted(set(names) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: choose from "
                                             f"{', '.join(choices)}")
        return names
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=size_list, default=[10**4, 10**5, 10**6],
                        help="numbers of groups, e.g. 1e4,1e5 (default 1e4,1e5,1e6)")
    parser.add_argument("--families", type=name_list(["beta-binomial", "gamma-poisson",
                                                      "normal"]),
                        default=["beta-binomial", "gamma-poisson", "normal"])
    parser.add_argument("--repeat-case", type=name_list(list(CASES.values())),
                        default=list(CASES.values()),
                        help="beta-binomial cases: repeats (n_j ≤ 500), distinct (n_j ≤ 10^6)")
    parser.add_argument("--methods", type=name_list(METHODS), default=list(METHODS))
    parser.add_argument("--outputs", type=name_list(["out", "term"]), default=["out", "term"],
                        help="with --out (out), terminal summary only (term)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--mem-cap", default="8G",
                        help="memory cap per run, e.g. 12G, or none: poolwise's address "
                             "space (prlimit --as), the peers' resident memory")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-growth", action="store_true", help="only the peers")
    parser.add_argument("--peers", type=name_list(list(PEERS)), default=list(PEERS),
                        help="nutpie,numpyro (empty: none)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-sizes", type=size_list, default=[10**4, 10**5])
    parser.add_argument("--peer-draws", type=int, default=1000,
                        help="warm-up and draws per chain for the peers")
    parser.add_argument("--peer-timeout", type=float, default=None,
                        help="seconds per peer run (default --timeout)")
    parser.add_argument("--keep-data", type=Path, default=None,
                        help="write the CSV files here and keep them")
    parser.add_argument("--peer", choices=list(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--peer-workload", help=argparse.SUPPRESS)
    parser.add_argument("--peer-data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        print(RESULT + json.dumps(run_peer(args.peer, args.peer_workload, args.peer_data,
                                           args.peer_draws)))
        return 0
    args.mem_cap_text = args.mem_cap
    args.mem_cap = parse_bytes(args.mem_cap)
    args.peer_timeout = args.peer_timeout or args.timeout
    args.outputs = [o == "out" for o in args.outputs]
    args.workloads = [w for w, f in FAMILIES.items() if f in args.families
                      and (w not in CASES or CASES[w] in args.repeat_case)]
    print(f"Machine: {machine_line()}")
    cache: dict[tuple[str, int], DataFile] = {}
    with tempfile.TemporaryDirectory(prefix="poolwise-scale-") as temporary:
        folder = args.keep_data or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        flagged = [] if args.no_growth else bench_growth(args, folder, cache)
        if not args.no_peers and args.peers:
            bench_peers(args, folder, cache)
        made = sum(d.seconds for d in cache.values())
        print(f"\nData: {len(cache)} CSV files generated in {made:.1f} s (seed {args.seed}).")
    print(f"Flagged ({len(flagged)}):" if flagged else "Flagged: none.")
    for line in flagged:
        print(f"  {line}")
    print(f"Machine at the end: load {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
