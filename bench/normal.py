"""Benchmarks of the normal hierarchical model: poolwise against NumPyro and PyMC + nutpie.

Run from the repository root (the peers come with ``pip install -e ".[test,bench]"``)::

    .venv/bin/python bench/normal.py            # 4 chains × 1000 warm-up × 1000 draws
    .venv/bin/python bench/normal.py --quick    # 200 × 200
    .venv/bin/python bench/normal.py --only meta --engines exact,nutpie

Model: y_j ~ N(θ_j, σ_j²) with σ_j known, θ_j ~ N(μ, τ²), μ ~ N(0, 5) (5 the standard
deviation), τ ~ HalfCauchy(5), on two workloads:

- ``schools``: eight schools (``poolwise.datasets.load("eight-schools")``, y, sigma);
- ``meta``: a synthetic meta-analysis of 10,000 groups (seed 20261122): μ = 1, τ = 0.5,
  σ_j ~ U(0.2, 2), θ_j ~ N(μ, τ²), y_j ~ N(θ_j, σ_j²).

Engines: poolwise ``exact`` (independent draws; τ by 1-D quadrature, then μ and θ
exactly), poolwise ``nuts`` (non-centred, its default), the non-centred model written
directly in NumPyro (θ = μ + τ η, vectorized chains, x64) and the same model in PyMC
sampled by nutpie (numba backend). As in ``rates.py``, whose helpers this script imports,
every engine runs in a fresh Python process; "total" is the wall time of the call that
turns data into draws, compilation included, imports excluded (shown apart), and min
bulk ESS is ``arviz_stats.ess(..., method="bulk")`` over μ, τ and every θ_j (10,002
parameters for ``meta``), computed by the same function from (chain, draw) arrays for
every engine. ``--meta-draws N`` runs the engines in ``--meta-reduced`` (default NumPyro
and nutpie) on ``meta`` with N warm-up and N draws when they would be too slow;
``--timeout`` skips an engine that runs longer. The README's run::

    .venv/bin/python bench/normal.py --meta-draws 200 --meta-reduced numpyro
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rates import (
    RESULT,
    SEED,
    CompileClock,
    _cpus,
    min_bulk_ess,
    workload_in_subprocess,
    workload_parser,
)

PRIOR = "mu=normal(0, 5), tau=halfcauchy(5)"
META_GROUPS = 10_000
WORKLOADS = {"schools": "Eight schools (J = 8)",
             "meta": f"Synthetic meta-analysis (J = {META_GROUPS:,}; μ = 1, τ = 0.5)"}
ENGINES = {"exact": "poolwise exact", "nuts": "poolwise nuts",
           "numpyro": "NumPyro, hand-written", "nutpie": "PyMC + nutpie"}


def workload(name: str) -> tuple[Any, str, str, str]:
    """The table and its (y, se, group) columns."""
    import pandas as pd

    if name == "schools":
        from poolwise import datasets

        return datasets.load("eight-schools"), "y", "sigma", "school"
    rng = np.random.default_rng(SEED)
    se = rng.uniform(0.2, 2.0, size=META_GROUPS)
    theta = rng.normal(1.0, 0.5, size=META_GROUPS)
    y = rng.normal(theta, se)
    table = pd.DataFrame({"study": [f"s{j:05d}" for j in range(META_GROUPS)], "y": y, "se": se})
    return table, "y", "se", "study"


def arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    table, y, se, _ = workload(name)
    return table[y].to_numpy(dtype=float), table[se].to_numpy(dtype=float)


def engine_poolwise(method: str, data: str, draws: int, warmup: int) -> dict[str, Any]:
    """poolwise's own ``fit``; the libraries it imports lazily are imported first."""
    t0 = time.perf_counter()
    import arviz_base  # noqa: F401
    import arviz_stats  # noqa: F401
    import scipy.optimize  # noqa: F401

    from poolwise import Model
    from poolwise.inference import get_method

    get_method(method)  # poolwise's own lazily imported method module
    clock = None
    if method == "nuts":
        import numpyro.infer  # noqa: F401

        clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    table, y, se, group = workload(data)
    model = Model(family="normal", prior=PRIOR)
    runs = []
    for _ in range(2 if method == "exact" else 1):  # exact: also a second, warm call
        start = time.perf_counter()
        chosen = model.replace(method=method, draws=draws, warmup=warmup, chains=4, seed=SEED)
        fit = chosen.fit(table, y=y, se=se, group=group)
        runs.append(time.perf_counter() - start)
    total = runs[0]
    if clock is not None:
        compile_s, sampling = clock.seconds, total - clock.seconds
    else:  # exact: the sampler's own time, without validation or building the result
        compile_s, sampling = 0.0, float(fit.info["seconds"])
    return {"import_s": imported, "total_s": total, "compile_s": compile_s,
            "sampling_s": sampling, "mu": fit.draws("mu"), "tau": fit.draws("tau"),
            "theta": fit.draws("theta"), "divergences": fit.info.get("divergences"),
            "warm_s": runs[1:]}


def engine_numpyro(data: str | tuple[np.ndarray, np.ndarray], draws: int,
                   warmup: int) -> dict[str, Any]:
    """The non-centred model, written as a NumPyro user would."""
    t0 = time.perf_counter()
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()  # the same precision as poolwise
    clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, se = arrays(data) if isinstance(data, str) else data  # a workload's name, or (y, se)

    def model(y: Any, se: Any) -> None:
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("group", len(y)):
            eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * eta)
            numpyro.sample("y", dist.Normal(theta, se), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), y, se, extra_fields=("diverging",))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    total = time.perf_counter() - start
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return {"import_s": imported, "total_s": total, "compile_s": clock.seconds,
            "sampling_s": total - clock.seconds, "mu": samples["mu"], "tau": samples["tau"],
            "theta": samples["theta"], "divergences": int(diverging.sum())}


def engine_nutpie(data: str | tuple[np.ndarray, np.ndarray], draws: int,
                  warmup: int) -> dict[str, Any]:
    """The same non-centred model in PyMC, compiled (numba backend) and sampled by nutpie."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the legacy arviz that PyMC imports announces a refactor
        warnings.simplefilter("ignore", FutureWarning)
        import nutpie
        import pymc as pm
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, se = arrays(data) if isinstance(data, str) else data  # a workload's name, or (y, se)

    start = time.perf_counter()
    with pm.Model() as model:
        mu = pm.Normal("mu", mu=0.0, sigma=5.0)
        tau = pm.HalfCauchy("tau", beta=5.0)
        eta = pm.Normal("eta", mu=0.0, sigma=1.0, shape=len(y))
        theta = pm.Deterministic("theta", mu + tau * eta)
        pm.Normal("y", mu=theta, sigma=se, observed=y)
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    trace = nutpie.sample(compiled, draws=draws, tune=warmup, chains=4, seed=SEED,
                          progress_bar=False)
    total = time.perf_counter() - start
    posterior = trace.posterior
    return {"import_s": imported, "total_s": total, "compile_s": compiled_at - start,
            "sampling_s": total - (compiled_at - start), "mu": posterior["mu"].values,
            "tau": posterior["tau"].values, "theta": posterior["theta"].values,
            "divergences": int(trace.sample_stats["diverging"].values.sum())}


def run_engine(name: str, data: str, draws: int, warmup: int) -> dict[str, Any]:
    """In this (fresh) process: run one engine and reduce its draws to the table's numbers."""
    if name in {"exact", "nuts"}:
        out = engine_poolwise(name, data, draws, warmup)
    elif name == "numpyro":
        out = engine_numpyro(data, draws, warmup)
    elif name == "nutpie":
        out = engine_nutpie(data, draws, warmup)
    else:
        raise SystemExit(f"unknown engine {name!r}")
    mu, tau, theta = (np.asarray(out.pop(k), dtype=float) for k in ("mu", "tau", "theta"))
    start = time.perf_counter()
    ess, where = min_bulk_ess(mu, tau, theta)  # rates' helper: its α, β slots hold μ, τ
    where = {"alpha": "mu", "beta": "tau"}.get(where, where)
    return {**out, "min_ess": ess, "min_ess_param": where, "ess_s": time.perf_counter() - start,
            "mu_mean": float(mu.mean()), "tau_mean": float(tau.mean()),
            "theta0_mean": float(theta[..., 0].mean()), "shape": list(theta.shape),
            "draws": draws, "warmup": warmup}


def engine_in_subprocess(name: str, data: str, draws: int, warmup: int,
                         timeout: float) -> dict[str, Any] | str:
    """Run one engine in a fresh interpreter (:func:`rates.workload_in_subprocess`)."""
    return workload_in_subprocess(__file__, name, data, draws, warmup, timeout)

def bench(data: str, draws: int, warmup: int, engines: list[str], meta_draws: int | None,
          reduced: set[str], timeout: float) -> None:
    print(f"\n== {WORKLOADS[data]}, non-centred NUTS, μ ~ N(0, 5), τ ~ HalfCauchy(5): "
          f"4 chains × {warmup} warm-up × {draws} draws ==")
    results: dict[str, dict[str, Any]] = {}
    for name in engines:
        d, w = draws, warmup
        if data == "meta" and meta_draws and name in reduced:
            d = w = meta_draws
        outcome = engine_in_subprocess(name, data, d, w, timeout)
        if isinstance(outcome, str):
            print(f"{ENGINES[name]}: {outcome}")
        else:
            results[name] = outcome
    if not results:
        return
    print(f"{'engine':<24}{'draws':>10}{'import s':>9}{'total s':>8}{'compile s':>10}"
          f"{'sample s':>9}{'min ESS':>8}{'(where)':>12}{'ESS/s tot':>10}{'ESS/s smp':>10}"
          f"{'div':>5}{'mean μ':>8}{'mean τ':>8}{'×ESS/s':>8}{'×time':>7}")
    base = results.get("exact")
    for name, r in results.items():
        per_total, per_sampling = r["min_ess"] / r["total_s"], r["min_ess"] / r["sampling_s"]
        ratio_ess = ratio_time = ""
        if base is not None:  # how many times better exact is than this engine
            ratio_ess = f"{(base['min_ess'] / base['total_s']) / per_total:8.1f}"
            ratio_time = f"{r['total_s'] / base['total_s']:7.1f}"
        div = "–" if r["divergences"] is None else str(r["divergences"])
        print(f"{ENGINES[name]:<24}{r['warmup']:>5}×{r['draws']:<4}{r['import_s']:9.2f}"
              f"{r['total_s']:8.2f}{r['compile_s']:10.2f}{r['sampling_s']:9.3f}"
              f"{r['min_ess']:8.0f}{r['min_ess_param']:>12}{per_total:10.0f}"
              f"{per_sampling:10.0f}{div:>5}{r['mu_mean']:8.3f}{r['tau_mean']:8.3f}"
              f"{ratio_ess:>8}{ratio_time:>7}")
        for warm in r.get("warm_s", []):
            print(f"{'  same, 2nd call (warm)':<24}{'':19}{warm:8.2f}{'':19}"
                  f"{r['min_ess']:8.0f}{r['min_ess_param']:>12}{r['min_ess'] / warm:10.0f}")
    print("ESS/s tot = min ESS ÷ total time; ESS/s smp = min ESS ÷ sampling time. "
          "×ESS/s = exact's ESS/s tot ÷ the engine's; ×time = the engine's total ÷ exact's.")
    if base is None:
        return
    exact_total = base["min_ess"] / base["total_s"]
    print("Targets (issue): exact ≥ 20× nutpie's min-ESS/s and ≥ 10× lower total time.")
    if data == "schools":
        print(f"  against the issue's nutpie (16,000-27,000 min-ESS/s, 4-6 s total): exact's "
              f"{exact_total:.0f} min-ESS/s of total time is {exact_total / 27000:.1f}-"
              f"{exact_total / 16000:.1f}×, its total time {4 / base['total_s']:.0f}-"
              f"{6 / base['total_s']:.0f}× lower")
    if "nutpie" in results:
        r = results["nutpie"]
        print(f"  against nutpie measured here: {exact_total / (r['min_ess'] / r['total_s']):.1f}×"
              f" its min-ESS/s of total time, "
              f"{exact_total / (r['min_ess'] / r['sampling_s']):.1f}× its min-ESS/s of "
              f"sampling time, {r['total_s'] / base['total_s']:.1f}× lower total time")


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__.splitlines()[0], list(WORKLOADS), "exact,nuts,numpyro,nutpie")
    parser.add_argument("--meta-draws", type=int, default=None,
                        help="warm-up and draws on the 10,000 groups for --meta-reduced")
    parser.add_argument("--meta-reduced", default="numpyro,nutpie",
                        help="comma-separated engines that --meta-draws applies to")
    args = parser.parse_args(argv)
    draws = args.draws or (200 if args.quick else 1000)
    warmup = args.warmup or (200 if args.quick else 1000)
    if args.engine:
        print(RESULT + json.dumps(run_engine(args.engine, args.workload, draws, warmup)))
        return 0
    import platform

    import poolwise

    print(f"poolwise {poolwise.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {_cpus()} CPUs")
    engines = [e for e in args.engines.split(",") if e]
    for data in args.only or list(WORKLOADS):
        bench(data, draws, warmup, engines, args.meta_draws,
              {e for e in args.meta_reduced.split(",") if e}, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
