"""Benchmarks of the linear mixed model: poolwise against hand-written NumPyro and PyMC + nutpie.

Run from the repository root (the peers come with ``pip install -e ".[test,bench]"``)::

    .venv/bin/python bench/mixed.py            # 4 chains × 1000 warm-up × 1000 draws
    .venv/bin/python bench/mixed.py --quick    # 200 × 200
    .venv/bin/python bench/mixed.py --only sleepstudy --engines numpyro,nutpie
    .venv/bin/python bench/mixed.py --fresh-caches   # nutpie's first compilation included

Model: varying intercepts and slopes with correlated group effects, lme4's
``y ~ x + (x | g)``,

    y_i ~ N(b0 + r[g_i, 0] + (b1 + r[g_i, 1]) x_i, σ²),
    r[j] ~ N(0, Σ),  Σ = diag(sd) Ω diag(sd),  Ω ~ LKJ(2),

non-centred in the hand-written peers: z[j] ~ N(0, I₂) and r[j] = diag(sd) L z[j] (as
rows, r = z Lᵀ diag(sd)), with L the Cholesky factor of Ω, on two workloads:

- ``sleepstudy``: lme4's sleepstudy (``poolwise.datasets.load("sleepstudy")``; 180 rows, 18
  subjects × 10 days), ``Reaction ~ Days + (Days | Subject)``, with b0 ~ N(250, 100),
  b1 ~ N(10, 20), σ ~ HalfNormal(50), sd[Intercept] ~ HalfNormal(50),
  sd[Days] ~ HalfNormal(20) (every second argument a standard deviation);
- ``radon``: Minnesota radon (``poolwise.datasets.load("radon")``; 919 houses, 85
  counties), ``log_radon ~ floor + (floor | county)`` (log_radon = log activity, 0 → 0.1;
  floor 0 basement, 1 first floor), with weakly-informative priors on the log scale
  (log_radon has mean 1.2 and standard deviation 0.8): b0 ~ N(0, 10),
  b[floor] ~ N(0, 10), σ ~ HalfNormal(1), sd[Intercept] ~ HalfNormal(1),
  sd[floor] ~ HalfNormal(1).

Every engine gets the same priors. Engines: poolwise ``MixedModel`` with its default method
``importance`` (``poolwise``: the variance parameters by Pareto-smoothed importance
sampling, no Markov chain and no JIT; β and the group effects drawn exactly; its min ESS is
the weights' effective size for the resampled draws, ``fit.info["ess"]``, the same for
every parameter, not ArviZ's ESS of draws that repeat points), with ``method="nuts"`` and
``parametrisation="auto"`` (``poolwise-nuts``; for the gaussian family the group effects
are integrated out in the chain and drawn afterwards) and ``"non-centred"``
(``poolwise-nc``);
the non-centred model written directly in NumPyro (``dist.LKJCholesky(2, 2.0)``,
vectorized chains, x64); and the same model in PyMC with ``pm.LKJCholeskyCov``, compiled
(numba backend) and sampled by nutpie. As in ``rates.py``, whose helpers this script
imports, every engine runs in a fresh Python process; "total" is the wall time of the
call that turns data into draws, compilation included, imports excluded (shown apart);
"compile" is JAX tracing + lowering + XLA compilation (``CompileClock``) for the JAX
engines and building the PyMC model + ``compile_pymc_model`` for nutpie. Min bulk ESS is
``arviz_stats.ess(..., method="bulk")`` (``rates.min_bulk_ess``) over the same parameters
for every engine, computed from (chain, draw) arrays: b[0], b[1], σ, sd[0], sd[1], the
correlation and every group effect r[j, k] (deviation of group j from the fixed effect
k; 36 for sleepstudy, 170 for radon). An engine that fails or runs past ``--timeout``
is shown as such in the table, with one line saying why.

PyTensor (behind nutpie) and numba keep compiled code on disk, so nutpie compiles much
faster once an earlier run has filled those caches (sleepstudy on a 2-core machine: about
7 s against about 40 s from empty caches); so does poolwise, in JAX's persistent cache
(``~/.cache/poolwise/jax``, ``POOLWISE_COMPILE_CACHE``), where its "compile" is then
tracing the model and reading the cache. ``--fresh-caches`` gives every engine empty
PyTensor, numba and poolwise cache directories, to time a first compilation; without it
the caches are used as found, as in ``rates.py``. The hand-written NumPyro engine keeps no
compiled code between processes (no persistent cache configured). ``warm.py`` times
poolwise's command line cold and warm.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
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


class Workload:
    """One data set with its columns and priors, written once for every engine."""

    def __init__(self, title: str, dataset: str, y: str, x: str, group: str,
                 b: tuple[tuple[float, float], tuple[float, float]], sigma: float,
                 sd: tuple[float, float], eta: float = 2.0) -> None:
        self.title, self.dataset, self.y, self.x, self.group = title, dataset, y, x, group
        self.b, self.sigma, self.sd, self.eta = b, sigma, sd, eta

    @property
    def formula(self) -> str:
        return f"{self.y} ~ {self.x} + ({self.x} | {self.group})"

    @property
    def effects(self) -> tuple[str, str]:
        return "Intercept", self.x

    @property
    def priors(self) -> str:
        """The priors in poolwise's syntax."""
        (m0, s0), (m1, s1) = self.b
        g = self.group
        return (f"b[Intercept] = normal({m0:g}, {s0:g}); b[{self.x}] = normal({m1:g}, {s1:g}); "
                f"sigma = halfnormal({self.sigma:g}); "
                f"sd[{g}][Intercept] = halfnormal({self.sd[0]:g}); "
                f"sd[{g}][{self.x}] = halfnormal({self.sd[1]:g}); cor[{g}] = lkj({self.eta:g})")

    def table(self) -> Any:
        from poolwise import datasets

        return datasets.load(self.dataset)

    def levels(self) -> list[str]:
        """The group labels in the order of every engine's group effects (sorted)."""
        return [str(level) for level in np.unique(self.table()[self.group].to_numpy())]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """y, x, the 0-based group index of every row (levels sorted) and the group count."""
        table = self.table()
        levels, index = np.unique(table[self.group].to_numpy(), return_inverse=True)
        return (table[self.y].to_numpy(dtype=float), table[self.x].to_numpy(dtype=float),
                index.astype(np.int64), len(levels))


WORKLOADS = {
    "sleepstudy": Workload("Sleepstudy, Reaction ~ Days + (Days | Subject) (18 subjects)",
                           "sleepstudy", "Reaction", "Days", "Subject",
                           b=((250.0, 100.0), (10.0, 20.0)), sigma=50.0, sd=(50.0, 20.0)),
    "radon": Workload("Minnesota radon, log_radon ~ floor + (floor | county) (85 counties)",
                      "radon", "log_radon", "floor", "county",
                      b=((0.0, 10.0), (0.0, 10.0)), sigma=1.0, sd=(1.0, 1.0)),
}
ENGINES = {"poolwise": "poolwise (importance)", "poolwise-nuts": "poolwise nuts (marginal)",
           "poolwise-nc": "poolwise nuts non-centred",
           "numpyro": "NumPyro, hand-written", "nutpie": "PyMC + nutpie"}
#: the issue's figures on this machine, sleepstudy: (min-ESS/s, total s)
ISSUE = {"nutpie": (940, 28), "Stan": (190, 66), "NumPyro": (115, 9.5)}


def engine_poolwise(method: str, parametrisation: str, work: Workload, draws: int,
                    warmup: int) -> dict[str, Any]:
    """poolwise's own ``MixedModel.fit``; the libraries it imports lazily are imported first
    (JAX and NumPyro only for NUTS: ``importance`` never imports them unless it falls back;
    dask because xarray imports it when the first DataTree is built)."""
    t0 = time.perf_counter()
    import arviz_base  # noqa: F401
    import arviz_stats  # noqa: F401
    import dask.array  # noqa: F401
    import scipy.optimize  # noqa: F401

    import poolwise

    clock = None
    if method == "nuts":
        import numpyro.infer  # noqa: F401

        clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    table = work.table()
    start = time.perf_counter()  # parsing the formula and building the design count too
    model = poolwise.MixedModel(formula=work.formula, family="gaussian", prior=work.priors,
                                method=method, draws=draws, chains=4, warmup=warmup, seed=SEED,
                                parametrisation=parametrisation)
    fit = model.fit(table)
    total = time.perf_counter() - start
    compiled = 0.0 if clock is None else clock.seconds
    post = fit.posterior
    g = work.group

    def chain_draw(name: str) -> np.ndarray:
        var = post[name]
        return np.asarray(var.transpose("chain", "draw", ...).values, dtype=float)

    b = chain_draw("b")
    if "coef" in post["b"].coords:  # by label where there are labels, else by position
        labels = [str(c) for c in post["b"].coords["coef"].values]
        b = b[..., [labels.index(e) for e in work.effects]]
    sd = chain_draw(f"sd_{g}")
    effect_dim = f"{g}_effect"
    if effect_dim in post[f"sd_{g}"].coords:
        labels = [str(c) for c in post[f"sd_{g}"].coords[effect_dim].values]
        order = [labels.index(e) for e in work.effects]
        sd = sd[..., order]
    else:
        order = [0, 1]
    cor = chain_draw(f"cor_{g}")
    cor = cor[..., 0, 1] if cor.ndim == 4 else cor.reshape((*cor.shape[:2], -1))[..., 0]
    r = chain_draw(f"r_{g}")[..., order]  # (chain, draw, group, effect)
    if g in post[f"r_{g}"].coords:  # groups in the peers' (sorted) order
        labels = [str(c) for c in post[f"r_{g}"].coords[g].values]
        r = r[:, :, [labels.index(level) for level in work.levels()]]
    info = getattr(fit, "info", {}) or {}
    # importance's draws are resampled (they repeat points): its ESS is the weights'
    # (fit.info["ess"]), not ArviZ's of the draws
    return {"import_s": imported, "total_s": total, "compile_s": compiled,
            "sampling_s": total - compiled, "b": b, "sigma": chain_draw("sigma"),
            "sd": sd, "cor": cor, "r": r, "divergences": info.get("divergences"),
            "ess": info.get("ess"), "method": fit.method, "pareto_k": info.get("pareto_k")}


def engine_numpyro(work: Workload, draws: int, warmup: int) -> dict[str, Any]:
    """The non-centred model, written as a NumPyro user would."""
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()  # the same precision as poolwise
    clock = CompileClock()
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, x, g, n_groups = work.arrays()
    (m0, s0), (m1, s1) = work.b

    def model(y: Any, x: Any, g: Any) -> None:
        b0 = numpyro.sample("b0", dist.Normal(m0, s0))
        b1 = numpyro.sample("b1", dist.Normal(m1, s1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(work.sigma))
        sd = numpyro.sample("sd", dist.HalfNormal(jnp.asarray(work.sd)).to_event(1))
        chol = numpyro.sample("L", dist.LKJCholesky(2, work.eta))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([n_groups, 2]).to_event(2))
        r = numpyro.deterministic("r", (z @ chol.T) * sd)  # rows r_j = diag(sd) L z_j
        mu = b0 + r[g, 0] + (b1 + r[g, 1]) * x
        with numpyro.plate("obs", len(y)):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), y, x, g, extra_fields=("diverging",))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    total = time.perf_counter() - start
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return {"import_s": imported, "total_s": total, "compile_s": clock.seconds,
            "sampling_s": total - clock.seconds,
            "b": np.stack([samples["b0"], samples["b1"]], axis=-1), "sigma": samples["sigma"],
            "sd": samples["sd"], "cor": samples["L"][..., 1, 0], "r": samples["r"],
            "divergences": int(diverging.sum())}


def engine_nutpie(work: Workload, draws: int, warmup: int) -> dict[str, Any]:
    """The same model in PyMC's ``LKJCholeskyCov`` form, compiled (numba) and sampled by nutpie."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the legacy arviz that PyMC imports announces a refactor
        warnings.simplefilter("ignore", FutureWarning)
        import nutpie
        import pymc as pm
    gc.collect()  # the imports' garbage, so no full collection of it lands in the timed call
    imported = time.perf_counter() - t0
    y, x, g, n_groups = work.arrays()
    (m0, s0), (m1, s1) = work.b

    start = time.perf_counter()
    with pm.Model() as model:
        b0 = pm.Normal("b0", mu=m0, sigma=s0)
        b1 = pm.Normal("b1", mu=m1, sigma=s1)
        sigma = pm.HalfNormal("sigma", sigma=work.sigma)
        chol, corr, _ = pm.LKJCholeskyCov(
            "chol", n=2, eta=work.eta, compute_corr=True,
            sd_dist=pm.HalfNormal.dist(sigma=np.asarray(work.sd), shape=2))
        pm.Deterministic("cor", corr[0, 1])
        z = pm.Normal("z", mu=0.0, sigma=1.0, shape=(n_groups, 2))
        r = pm.Deterministic("r", z @ chol.T)  # rows r_j = diag(sd) L z_j
        mu = b0 + r[g, 0] + (b1 + r[g, 1]) * x
        pm.Normal("y", mu=mu, sigma=sigma, observed=y)
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    trace = nutpie.sample(compiled, draws=draws, tune=warmup, chains=4, seed=SEED,
                          progress_bar=False)
    total = time.perf_counter() - start
    posterior = trace.posterior
    return {"import_s": imported, "total_s": total, "compile_s": compiled_at - start,
            "sampling_s": total - (compiled_at - start),
            "b": np.stack([posterior["b0"].values, posterior["b1"].values], axis=-1),
            "sigma": posterior["sigma"].values, "sd": posterior["chol_stds"].values,
            "cor": posterior["cor"].values, "r": posterior["r"].values,
            "divergences": int(trace.sample_stats["diverging"].values.sum())}


def run_engine(name: str, data: str, draws: int, warmup: int) -> dict[str, Any]:
    """In this (fresh) process: run one engine and reduce its draws to the table's numbers."""
    work = WORKLOADS[data]
    if name == "poolwise":
        out = engine_poolwise("importance", "auto", work, draws, warmup)
    elif name == "poolwise-nuts":
        out = engine_poolwise("nuts", "auto", work, draws, warmup)
    elif name == "poolwise-nc":
        out = engine_poolwise("nuts", "non-centred", work, draws, warmup)
    elif name == "numpyro":
        out = engine_numpyro(work, draws, warmup)
    elif name == "nutpie":
        out = engine_nutpie(work, draws, warmup)
    else:
        raise SystemExit(f"unknown engine {name!r}")
    b, sigma, sd, cor, r = (np.asarray(out.pop(k), dtype=float)
                            for k in ("b", "sigma", "sd", "cor", "r"))
    chains, n_draws, n_groups, n_effects = r.shape
    if b.shape != (chains, n_draws, 2) or sd.shape != b.shape or n_effects != 2:
        raise SystemExit(f"unexpected shapes: b {b.shape}, sd {sd.shape}, r {r.shape}")
    e0, e1 = work.effects
    # rates' helper takes two scalars and one stack: b0, b1, then σ, sds, cor and every r
    names = ["sigma", f"sd[{e0}]", f"sd[{e1}]", "cor"]
    levels = work.levels()
    if len(levels) != n_groups:
        raise SystemExit(f"{n_groups} groups in the draws, {len(levels)} in the data")
    names += [f"r[{level},{e}]" for level in levels for e in (e0, e1)]
    rest = np.concatenate([sigma[..., None], sd, cor[..., None],
                           r.reshape(chains, n_draws, -1)], axis=-1)
    start = time.perf_counter()
    ess, where = min_bulk_ess(b[..., 0], b[..., 1], rest)
    if where.startswith("theta["):
        where = names[int(where[6:-1])]
    where = {"alpha": f"b[{e0}]", "beta": f"b[{e1}]"}.get(where, where)
    weighted = out.pop("ess", None)
    if weighted is not None:  # importance: the weights' ESS, the same for every parameter
        ess, where = float(weighted), "(weights)"
    return {**out, "min_ess": ess, "min_ess_param": where, "ess_s": time.perf_counter() - start,
            "n_params": 2 + rest.shape[-1], "b0_mean": float(b[..., 0].mean()),
            "b1_mean": float(b[..., 1].mean()), "sigma_mean": float(sigma.mean()),
            "sd0_mean": float(sd[..., 0].mean()), "sd1_mean": float(sd[..., 1].mean()),
            "cor_mean": float(cor.mean()), "r00_mean": float(r[..., 0, 0].mean()),
            "b0_sd": float(b[..., 0].std()), "b1_sd": float(b[..., 1].std()),
            "sigma_sd": float(sigma.std()),
            "draws": n_draws, "warmup": warmup, "chains": chains}


def engine_in_subprocess(name: str, data: str, draws: int, warmup: int, timeout: float,
                         fresh_caches: bool = False) -> dict[str, Any] | str:
    """Run one engine in a fresh interpreter (:func:`rates.workload_in_subprocess`), with
    empty compile caches when ``fresh_caches``."""
    with tempfile.TemporaryDirectory(prefix="mixed-bench-") as scratch:
        env = dict(os.environ)
        if fresh_caches:  # no compiled code left on disk by an earlier run
            env["PYTENSOR_FLAGS"] = ",".join(
                f for f in (env.get("PYTENSOR_FLAGS"), f"base_compiledir={scratch}/pytensor")
                if f)
            env["NUMBA_CACHE_DIR"] = f"{scratch}/numba"
            env.pop("JAX_COMPILATION_CACHE_DIR", None)
            env["POOLWISE_COMPILE_CACHE"] = f"{scratch}/poolwise-jax"
        return workload_in_subprocess(__file__, name, data, draws, warmup, timeout, env)

def bench(data: str, draws: int, warmup: int, engines: list[str], timeout: float,
          fresh_caches: bool) -> None:
    work = WORKLOADS[data]
    caches = "fresh on-disk compile caches" if fresh_caches else "on-disk caches as found"
    print(f"\n== {work.title}: 4 chains × {warmup} warm-up × {draws} draws ({caches}) ==")
    print(f"priors: {work.priors}")
    first = work.levels()[0]
    results: dict[str, dict[str, Any] | str] = {}
    for name in engines:
        results[name] = engine_in_subprocess(name, data, draws, warmup, timeout, fresh_caches)
    print(f"{'engine':<23}{'import s':>9}{'total s':>8}{'compile s':>10}{'sample s':>9}"
          f"{'min ESS':>8}{'(where)':>17}{'ESS/s tot':>10}{'ESS/s smp':>10}{'div':>5}"
          f"{'×ESS/s':>8}{'×time':>7}")
    base = results.get("poolwise")
    base = base if isinstance(base, dict) else None
    done = {k: r for k, r in results.items() if isinstance(r, dict)}
    for name, r in results.items():
        if isinstance(r, str):
            print(f"{ENGINES[name]:<23}{r}")
            continue
        per_total, per_sampling = r["min_ess"] / r["total_s"], r["min_ess"] / r["sampling_s"]
        ratio_ess = ratio_time = ""
        if base is not None:  # how many times better poolwise (default) is than this engine
            ratio_ess = f"{(base['min_ess'] / base['total_s']) / per_total:8.1f}"
            ratio_time = f"{r['total_s'] / base['total_s']:7.1f}"
        div = "–" if r["divergences"] is None else str(r["divergences"])
        print(f"{ENGINES[name]:<23}{r['import_s']:9.2f}{r['total_s']:8.2f}"
              f"{r['compile_s']:10.2f}{r['sampling_s']:9.2f}{r['min_ess']:8.0f}"
              f"{r['min_ess_param']:>17}{per_total:10.0f}{per_sampling:10.0f}{div:>5}"
              f"{ratio_ess:>8}{ratio_time:>7}")
    print("ESS/s tot = min ESS ÷ total time; ESS/s smp = min ESS ÷ sampling time. "
          "×ESS/s = poolwise's ESS/s tot ÷ the engine's; ×time = the engine's total ÷ "
          "poolwise's.")
    if done:
        n_params = next(iter(done.values()))["n_params"]
        print(f"Min ESS over {n_params} parameters. Posterior means:")
        e0, e1 = work.effects
        print(f"{'engine':<23}{f'b[{e0}]':>13}{f'b[{e1}]':>11}{'σ':>9}{f'sd[{e0}]':>14}"
              f"{f'sd[{e1}]':>11}{'cor':>8}{f'r[{first},{e0}]':>22}")
        for name, r in done.items():
            print(f"{ENGINES[name]:<23}{r['b0_mean']:13.4f}{r['b1_mean']:11.4f}"
                  f"{r['sigma_mean']:9.4f}{r['sd0_mean']:14.4f}{r['sd1_mean']:11.4f}"
                  f"{r['cor_mean']:8.3f}{r['r00_mean']:22.4f}")
        if len(done) > 1:  # the largest gap between two engines' means, in posterior sds
            gaps = {q: (max(r[f"{q}_mean"] for r in done.values())
                        - min(r[f"{q}_mean"] for r in done.values()))
                    / min(r[f"{q}_sd"] for r in done.values()) for q in ("b0", "b1", "sigma")}
            print("largest gap between engines' means, in posterior sds: "
                  + ", ".join(f"{q} {v:.3f}" for q, v in gaps.items())
                  + f" ({'agree' if max(gaps.values()) < 0.2 else 'CHECK'}: < 0.2 expected)")
    peers = {k: r for k, r in done.items() if k in ("numpyro", "nutpie")}
    if data == "sleepstudy":
        print("Issue's figures (this machine): " + ", ".join(
            f"{k} {e} min-ESS/s, {t} s total" for k, (e, t) in ISSUE.items()))
    print("Target (issue): poolwise ≥ 2× the best peer's min-ESS/s and the lowest total time.")
    if base is None or not peers:
        return
    best_total = max(r["min_ess"] / r["total_s"] for r in peers.values())
    best_sampling = max(r["min_ess"] / r["sampling_s"] for r in peers.values())
    fastest = min(r["total_s"] for r in peers.values())
    mine = base["min_ess"] / base["total_s"]
    print(f"  poolwise: {mine / best_total:.1f}× the best peer's min-ESS/s of total time, "
          f"{mine / best_sampling:.1f}× the best peer's min-ESS/s of sampling time; total "
          f"{base['total_s']:.2f} s against the fastest peer's {fastest:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__.splitlines()[0], list(WORKLOADS),
                             "poolwise,poolwise-nuts,poolwise-nc,numpyro,nutpie")
    parser.add_argument("--fresh-caches", action="store_true",
                        help="give every engine empty PyTensor and numba cache directories")
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
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {list(ENGINES)}")
    for data in args.only or list(WORKLOADS):
        bench(data, draws, warmup, engines, args.timeout, args.fresh_caches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
