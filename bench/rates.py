"""Benchmarks of the rate models: poolwise against hand-written NumPyro and PyMC + nutpie.

Run from the repository root (the peers come with ``pip install -e ".[test,bench]"``)::

    .venv/bin/python bench/rates.py            # 4 chains × 1000 warm-up × 1000 draws
    .venv/bin/python bench/rates.py --quick    # fewer draws, smaller synthetic data

Sections
--------
1. Rat tumours (BDA3 Table 5.1, 70 historical experiments), partial pooling,
   y_j ~ Binomial(n_j, θ_j), θ_j ~ Beta(α, β), α, β ~ HalfNormal(10), through
   poolwise ``exact``, poolwise ``gibbs`` (the lecture's sampler, whose speed a timed test
   once checked), poolwise ``nuts``, the textbook model written directly in NumPyro
   (θ explicit, centred) and the same model in PyMC sampled by nutpie. Every engine runs
   in a fresh Python process; "total" is the wall time of the call that turns data into
   draws, compilation included, imports excluded (they are shown apart, and the garbage
   they leave is collected with them: otherwise a full collection of it, ≈ 80 ms, lands at
   a random point of the first timed call, which matters for exact). Min bulk ESS is
   ``arviz_stats.ess(..., method="bulk")`` over α, β and every θ_j, computed by the same
   function from (chain, draw) arrays for every engine.
2. Empirical Bayes (``eb-moments``, ``eb-ml``) on 1,000,000 synthetic beta-binomial
   groups (n_j uniform on 5..100, θ_j ~ Beta(2, 20), fixed seed).
3. ``exact`` gamma-Poisson on the kidney-cancer counties (default reference prior),
   checked against an independent brute-force integration on a fine grid written here
   with NumPy/SciPy, and against the expected order of shrinkage.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261122
RESULT = "RESULT "


# ============================================================== 1. rat tumours, per engine
def min_bulk_ess(alpha: np.ndarray, beta: np.ndarray, theta: np.ndarray) -> tuple[float, str]:
    """Smallest bulk ESS over α, β and each θ_j; arrays shaped (chain, draw[, group])."""
    import arviz_stats as azs

    values = {"alpha": float(azs.ess(alpha, method="bulk")),
              "beta": float(azs.ess(beta, method="bulk"))}
    ess_theta = np.atleast_1d(azs.ess(theta, method="bulk"))
    j = int(np.argmin(ess_theta))
    values[f"theta[{j}]"] = float(ess_theta[j])
    name = min(values, key=lambda k: values[k])
    return values[name], name


class CompileClock:
    """Sums JAX's tracing, lowering and XLA compilation times while active."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
              "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self) -> None:
        import jax.monitoring

        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_: Any) -> None:
        if event in self.EVENTS:
            self.seconds += duration


def rats_data() -> tuple[np.ndarray, np.ndarray]:
    from poolwise import datasets

    rats = datasets.load("rats").query("historical == 1")
    return rats["y"].to_numpy(dtype=np.int64), rats["n"].to_numpy(dtype=np.int64)


def engine_poolwise(method: str, draws: int, warmup: int) -> dict[str, Any]:
    """poolwise's own ``fit``; the libraries it imports lazily are imported first."""
    t0 = time.perf_counter()
    import arviz_base  # noqa: F401
    import arviz_stats  # noqa: F401
    import scipy.optimize  # noqa: F401

    from poolwise import Model, datasets
    from poolwise.inference import get_method

    get_method(method)  # poolwise's own lazily imported method module
    clock = None
    if method == "nuts":
        import numpyro.infer  # noqa: F401

        clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    rats = datasets.load("rats").query("historical == 1")
    model = Model(family="beta-binomial", prior="halfnormal(10)")
    runs = []
    for _ in range(2 if method == "exact" else 1):  # exact: also a second, warm call
        start = time.perf_counter()
        chosen = model.replace(method=method, draws=draws, warmup=warmup, chains=4, seed=SEED)
        fit = chosen.fit(rats, y="y", n="n", group="experiment")
        runs.append(time.perf_counter() - start)
    total = runs[0]
    if clock is not None:
        compile_s, sampling = clock.seconds, total - clock.seconds
    else:  # exact: the sampler's own time, without building the result
        compile_s, sampling = 0.0, float(fit.info["seconds"])
    alpha, beta, theta = fit.draws("alpha"), fit.draws("beta"), fit.draws("theta")
    return {"import_s": imported, "total_s": total, "compile_s": compile_s,
            "sampling_s": sampling, "alpha": alpha, "beta": beta, "theta": theta,
            "divergences": int(fit.info.get("divergences", 0)), "warm_s": runs[1:]}


def engine_numpyro(draws: int, warmup: int,
                   data: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """The textbook centred model, written as a NumPyro user would; ``data`` is (y, n),
    the rat tumours by default."""
    t0 = time.perf_counter()
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()  # the same precision as poolwise
    clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, n = rats_data() if data is None else data

    def model(y: Any, n: Any) -> None:
        alpha = numpyro.sample("alpha", dist.HalfNormal(10.0))
        beta = numpyro.sample("beta", dist.HalfNormal(10.0))
        with numpyro.plate("experiment", len(y)):
            theta = numpyro.sample("theta", dist.Beta(alpha, beta))
            numpyro.sample("y", dist.Binomial(n, probs=theta), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), y, n, extra_fields=("diverging",))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    total = time.perf_counter() - start
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return {"import_s": imported, "total_s": total, "compile_s": clock.seconds,
            "sampling_s": total - clock.seconds, "alpha": samples["alpha"],
            "beta": samples["beta"], "theta": samples["theta"],
            "divergences": int(diverging.sum())}


def engine_nutpie(draws: int, warmup: int,
                  data: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """The same model in PyMC, compiled (numba backend) and sampled by nutpie; ``data`` is
    (y, n), the rat tumours by default."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the legacy arviz that PyMC imports announces a refactor
        warnings.simplefilter("ignore", FutureWarning)
        import nutpie
        import pymc as pm
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, n = rats_data() if data is None else data

    start = time.perf_counter()
    with pm.Model() as model:
        alpha = pm.HalfNormal("alpha", sigma=10.0)
        beta = pm.HalfNormal("beta", sigma=10.0)
        theta = pm.Beta("theta", alpha=alpha, beta=beta, shape=len(y))
        pm.Binomial("y", n=n, p=theta, observed=y)
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    trace = nutpie.sample(compiled, draws=draws, tune=warmup, chains=4, seed=SEED,
                          progress_bar=False)
    total = time.perf_counter() - start
    posterior = trace.posterior
    return {"import_s": imported, "total_s": total, "compile_s": compiled_at - start,
            "sampling_s": total - (compiled_at - start),
            "alpha": posterior["alpha"].values, "beta": posterior["beta"].values,
            "theta": posterior["theta"].values,
            "divergences": int(trace.sample_stats["diverging"].values.sum())}


def run_engine(name: str, draws: int, warmup: int) -> dict[str, Any]:
    """In this (fresh) process: run one engine and reduce its draws to the table's numbers."""
    if name in {"exact", "gibbs", "nuts"}:
        out = engine_poolwise(name, draws, warmup)
    elif name == "numpyro":
        out = engine_numpyro(draws, warmup)
    elif name == "nutpie":
        out = engine_nutpie(draws, warmup)
    else:
        raise SystemExit(f"unknown engine {name!r}")
    alpha, beta, theta = (np.asarray(out.pop(k), dtype=float) for k in ("alpha", "beta", "theta"))
    ess, where = min_bulk_ess(alpha, beta, theta)
    return {**out, "min_ess": ess, "min_ess_param": where,
            "mu_mean": float(np.mean(alpha / (alpha + beta))),
            "theta0_mean": float(theta[..., 0].mean()), "shape": list(theta.shape)}


ENGINES = {
    "exact": "poolwise exact",
    "gibbs": "poolwise gibbs",
    "nuts": "poolwise nuts",
    "numpyro": "NumPyro, hand-written",
    "nutpie": "PyMC + nutpie",
}


def nutpie_missing() -> str:
    """Why PyMC + nutpie cannot run here (the line a table prints), or "" when they can."""
    probe = subprocess.run([sys.executable, "-c", "import nutpie, pymc"],
                           capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return ""
    last = (probe.stderr.strip().splitlines() or ["?"])[-1]
    return f"skipped: PyMC/nutpie not importable ({last})"


def workload_in_subprocess(script: str, name: str, data: str, draws: int, warmup: int,
                           timeout: float, env: dict[str, str] | None = None
                           ) -> dict[str, Any] | str:
    """Run engine ``name`` on workload ``data`` of a per-workload benchmark ``script``
    (normal.py, mixed.py, glmm.py) in a fresh interpreter: its result, or one line saying why
    there is none (PyMC/nutpie missing, the timeout, or the failure's last line)."""
    if name == "nutpie" and (missing := nutpie_missing()):
        return missing
    command = [sys.executable, script, "--engine", name, "--workload", data,
               "--draws", str(draws), "--warmup", str(warmup)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"skipped: still running after {timeout:.0f} s ({warmup} warm-up × {draws} draws)"
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT):])
            return result
    last = (done.stderr.strip().splitlines() or ["no output"])[-1].strip()
    return f"failed: {last} (exit {done.returncode})"


def engine_in_subprocess(name: str, draws: int, warmup: int) -> dict[str, Any] | str:
    """Run one engine in a fresh interpreter; its result, or the reason it was skipped."""
    if name == "nutpie" and (missing := nutpie_missing()):
        return missing
    command = [sys.executable, __file__, "--engine", name, "--draws", str(draws),
               "--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT):])
            return result
    tail = "\n".join(done.stderr.strip().splitlines()[-5:])
    return f"failed (exit {done.returncode}):\n{tail}"


def bench_rats(draws: int, warmup: int, engines: list[str]) -> None:
    print(f"\n== 1. Rat tumours, partial pooling, α, β ~ HalfNormal(10): "
          f"4 chains × {warmup} warm-up × {draws} draws ==")
    results: dict[str, dict[str, Any]] = {}
    for name in engines:
        outcome = engine_in_subprocess(name, draws, warmup)
        if isinstance(outcome, str):
            print(f"{ENGINES[name]}: {outcome}")
        else:
            results[name] = outcome
    if not results:
        return
    print(f"{'engine':<24}{'import s':>9}{'total s':>8}{'compile s':>10}{'sample s':>9}"
          f"{'min ESS':>8}{'(where)':>11}{'ESS/s tot':>10}{'ESS/s smp':>10}{'div':>5}"
          f"{'mean μ':>8}{'×ESS/s':>8}{'×time':>7}")
    base = results.get("exact")
    for name, r in results.items():
        per_total, per_sampling = r["min_ess"] / r["total_s"], r["min_ess"] / r["sampling_s"]
        ratio_ess = ratio_time = ""
        if base is not None:  # how many times better exact is than this engine
            ratio_ess = f"{(base['min_ess'] / base['total_s']) / per_total:8.1f}"
            ratio_time = f"{r['total_s'] / base['total_s']:7.1f}"
        print(f"{ENGINES[name]:<24}{r['import_s']:9.2f}{r['total_s']:8.2f}{r['compile_s']:10.2f}"
              f"{r['sampling_s']:9.2f}{r['min_ess']:8.0f}{r['min_ess_param']:>11}"
              f"{per_total:10.0f}{per_sampling:10.0f}{r['divergences']:5d}{r['mu_mean']:8.4f}"
              f"{ratio_ess:>8}{ratio_time:>7}")
        for warm in r.get("warm_s", []):
            print(f"{'  same, 2nd call (warm)':<24}{'':9}{warm:8.2f}{'':19}"
                  f"{r['min_ess']:8.0f}{r['min_ess_param']:>11}{r['min_ess'] / warm:10.0f}")
    print("ESS/s tot = min ESS ÷ total time; ESS/s smp = min ESS ÷ sampling time. "
          "×ESS/s = exact's ESS/s tot ÷ the engine's; ×time = the engine's total ÷ exact's.")
    print("Compile for JAX engines: JAX tracing + lowering + XLA compilation "
          "(jax.monitoring); for nutpie: PyMC model build + compile_pymc_model; exact: none "
          "(sample = its sampler alone, total adds building the ArviZ result).")
    if base is None:
        return
    exact_total = base["min_ess"] / base["total_s"]
    print("Targets (issue): exact ≥ 20× nutpie's min-ESS/s and ≥ 10× lower total time.")
    print(f"  against the issue's nutpie (880-1,470 min-ESS/s, 6-10 s total): exact's "
          f"{exact_total:.0f} min-ESS/s of total time is {exact_total / 1470:.1f}-"
          f"{exact_total / 880:.1f}×, its total time {6 / base['total_s']:.0f}-"
          f"{10 / base['total_s']:.0f}× lower")
    if "nutpie" in results:
        r = results["nutpie"]
        print(f"  against nutpie measured here: {exact_total / (r['min_ess'] / r['total_s']):.1f}×"
              f" its min-ESS/s of total time, "
              f"{exact_total / (r['min_ess'] / r['sampling_s']):.1f}× its min-ESS/s of "
              f"sampling time, {r['total_s'] / base['total_s']:.1f}× lower total time")


# ============================================================== 2. empirical Bayes, 1M groups
def bench_eb(groups: int) -> None:
    import pandas as pd

    from poolwise import Model
    from poolwise.inference.eb import estimate_ml, estimate_moments

    print(f"\n== 2. Empirical Bayes on {groups:,} synthetic beta-binomial groups "
          "(n_j ~ U{5..100}, θ_j ~ Beta(2, 20)) ==")
    rng = np.random.default_rng(SEED)
    n = rng.integers(5, 101, size=groups)
    y = rng.binomial(n, rng.beta(2.0, 20.0, size=groups))
    table = pd.DataFrame({"y": y, "n": n})
    model = Model(family="beta-binomial")
    start = time.perf_counter()
    counts = model.prepare(table, y="y", n="n")
    prepare = time.perf_counter() - start
    print(f"prepare (validate and reduce the table to GroupCounts): {prepare:.2f} s")
    start = time.perf_counter()
    pairs = counts.compressed()[0].size
    compress = time.perf_counter() - start
    print(f"GroupCounts.compressed(), the (y, n) compression that eb-ml does first: "
          f"{compress:.2f} s ({pairs} distinct pairs)")
    print(f"{'method':<12}{'estimate s':>11}{'fit(draws=1) s':>15}{'fit(draws=10) s':>16}"
          f"{'α̂':>9}{'β̂':>9}")
    for method, estimate in (("eb-moments", estimate_moments), ("eb-ml", estimate_ml)):
        start = time.perf_counter()
        eb = estimate(model, counts)
        estimated = time.perf_counter() - start
        timings = []
        for draws in (1, 10):
            start = time.perf_counter()
            model.replace(method=method, draws=draws, chains=1, seed=SEED).fit(table, y="y", n="n")
            timings.append(time.perf_counter() - start)
        print(f"{method:<12}{estimated:11.3f}{timings[0]:15.2f}{timings[1]:16.2f}"
              f"{eb.alpha:9.3f}{eb.beta:9.3f}")
    print("fit() includes validation, the estimate, θ draws for every group, the pointwise "
          "log likelihood and the ArviZ DataTree. Truth: α = 2, β = 20 (eb-moments "
          "ignores binomial noise, so it overstates the spread: smaller α + β).")


# ============================================================== 3. kidney cancer, exact
def brute_force_kidney(y: np.ndarray, exposure: np.ndarray, fine: int) -> dict[str, Any]:
    """Posterior of (log α, log β) on a fine grid, from first principles.

    p(α, β | y) ∝ α^(-3/2) β^(-1) Π_j NegBin(y_j | α, β/(β + E_j)); in (a, b) = (log α,
    log β) the Jacobian is α β. The log likelihood separates,
    Σ_j [lnΓ(α + y_j) − lnΓ(α)] + α Σ_j ln(β/(β + E_j)) − Σ_j y_j ln(β + E_j) + const,
    so each sum is computed once per α or per β and the grid costs (#a + #b) × J.
    (u, v) = (a − b, a) is a unit-Jacobian linear map, so means in either agree.
    """
    from scipy.special import gammaln, logsumexp

    def log_post(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        alpha, beta = np.exp(a), np.exp(b)
        term_a = (gammaln(alpha[:, None] + y).sum(1) - y.size * gammaln(alpha)
                  - 1.5 * a + a)  # prior α^(-3/2), Jacobian α
        log_total = np.log(beta[:, None] + exposure)
        s1, s2 = log_total.sum(1), (y * log_total).sum(1)
        # β^(-1) prior and Jacobian β cancel; α-dependent part of the β terms is α(J b − s1)
        return (term_a[:, None] + alpha[:, None] * (y.size * b - s1)[None, :]
                - s2[None, :])

    a = np.linspace(-4.0, 12.0, 321)
    b = np.linspace(-2.0, 30.0, 641)
    lp = log_post(a, b)
    keep = lp > lp.max() - 30.0
    ia, ib = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    da, db = a[1] - a[0], b[1] - b[0]
    a = np.linspace(a[ia[0]] - da, a[ia[-1]] + da, fine)
    b = np.linspace(b[ib[0]] - db, b[ib[-1]] + db, fine)
    lp = log_post(a, b)
    w = np.exp(lp - logsumexp(lp))
    edge = max(w[0].max(), w[-1].max(), w[:, 0].max(), w[:, -1].max()) / w.max()
    A, B = np.meshgrid(a, b, indexing="ij")
    alpha, beta = np.exp(A), np.exp(B)
    out = {"mu": float(np.sum(w * alpha / beta)), "log_alpha": float(np.sum(w * A)),
           "edge": float(edge), "grid": (fine, fine), "box": (a[0], a[-1], b[0], b[-1])}
    for j in np.argsort(exposure)[[0, exposure.size // 2, -1]]:
        out[f"theta[{j}]"] = float(np.sum(w * (alpha + y[j]) / (beta + exposure[j])))
    return out


def bench_kidney(fine: int) -> None:
    from scipy.stats import spearmanr

    from poolwise import Model, datasets

    print("\n== 3. Kidney cancer, US counties, gamma-Poisson partial pooling, exact "
          "(reference prior p(α, β) ∝ α^(-3/2)/β) ==")
    table = datasets.load("kidney")
    model = Model(family="gamma-poisson")
    start = time.perf_counter()
    fit = model.replace(method="exact", seed=SEED).fit(table, y="deaths", n="population",
                                                       group="Location")
    total = time.perf_counter() - start
    print(f"{len(table)} rows, {fit.data.n_groups} groups; notes: {'; '.join(fit.data.notes)}")
    print(f"exact: fit {total:.2f} s (sampler {fit.info['seconds']:.2f} s), "
          f"{fit.info['grid_points']} grid points, 4 × 1000 independent draws")
    y, exposure = fit.data.y, fit.data.n
    start = time.perf_counter()
    brute = brute_force_kidney(y, exposure, fine)
    print(f"brute force: {brute['grid'][0]}×{brute['grid'][1]} grid on (log α, log β) "
          f"in {time.perf_counter() - start:.1f} s; largest edge mass / peak "
          f"{brute['edge']:.1e}")
    draws = {"mu": fit.draws("mu"), "log_alpha": np.log(fit.draws("alpha"))}
    draws |= {k: fit.draws("theta")[..., int(k[6:-1])] for k in brute if k.startswith("theta[")}
    print(f"{'quantity':<14}{'exact':>14}{'brute force':>14}{'|Δ| / MCSE':>12}")
    worst = 0.0
    for name, values in draws.items():
        mcse = values.std() / np.sqrt(values.size)  # independent draws
        z = abs(values.mean() - brute[name]) / mcse
        worst = max(worst, z)
        print(f"{name:<14}{values.mean():14.6g}{brute[name]:14.6g}{z:12.2f}")
    print(f"agreement: {'yes' if worst < 4 else 'NO'} (every |Δ| < 4 MCSE of exact's draws)")

    # shrinkage: how far each county's posterior mean moved from its raw rate to μ
    raw = y / exposure
    mu = float(draws["mu"].mean())
    post = fit.draws("theta").mean(axis=(0, 1))
    far = np.abs(raw - mu) > 0.5 * mu  # a fraction is only stable away from raw ≈ μ
    fraction = (raw - post)[far] / (raw - mu)[far]
    rho = spearmanr(exposure[far], fraction).statistic
    order = np.argsort(exposure[far])
    decile = max(1, order.size // 10)
    small, large = fraction[order[:decile]].mean(), fraction[order[-decile:]].mean()
    print(f"shrinkage fraction (raw − posterior mean)/(raw − μ) over {far.sum()} counties "
          f"with |raw − μ| > μ/2: Spearman ρ with population {rho:.3f}; smallest decile "
          f"{small:.3f}, largest decile {large:.3f} "
          f"({'smallest counties shrink most' if rho < 0 and small > large else 'UNEXPECTED'})")


# ============================================================== main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws, smaller data")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--only", choices=["rats", "eb", "kidney"], action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--engines", default="exact,gibbs,nuts,numpyro,nutpie",
                        help="comma-separated engines for section 1")
    args = parser.parse_args(argv)
    draws = args.draws or (200 if args.quick else 1000)
    warmup = args.warmup or (200 if args.quick else 1000)
    if args.engine:
        print(RESULT + json.dumps(run_engine(args.engine, draws, warmup)))
        return 0
    import platform

    import poolwise

    print(f"poolwise {poolwise.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {Path('/proc/cpuinfo').exists() and _cpus()} CPUs")
    sections = args.only or ["rats", "eb", "kidney"]
    if "rats" in sections:
        bench_rats(draws, warmup, [e for e in args.engines.split(",") if e])
    if "eb" in sections:
        bench_eb(100_000 if args.quick else 1_000_000)
    if "kidney" in sections:
        bench_kidney(300 if args.quick else 1200)
    return 0


def workload_parser(description: str, workloads: list[str], engines: str
                    ) -> argparse.ArgumentParser:
    """The options every per-workload benchmark script (normal.py, mixed.py) takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="200 warm-up × 200 draws")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=workloads, help=argparse.SUPPRESS)
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--only", choices=workloads, action="append",
                        help="run only these workloads (repeatable)")
    parser.add_argument("--engines", default=engines, help="comma-separated engines")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds after which an engine is skipped")
    return parser


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
