"""Generalised linear mixed models: poolwise against hand-written NumPyro and PyMC + nutpie.

Run from the repository root (the peers come with ``pip install -e ".[test,bench]"``)::

    .venv/bin/python bench/glmm.py                # 4 chains × 1000 warm-up × 1000 draws
    .venv/bin/python bench/glmm.py --quick        # 200 × 200
    .venv/bin/python bench/glmm.py --only bernoulli --engines poolwise,numpyro

The workloads of issue 12 (item 2), simulated with a fixed seed (not shipped):

- ``binomial``: 200 groups, two rows each (x = 0 and x = 1) of 10 trials — 20 trials a group
  — ``y | trials(n) ~ x + (1 | g)``, b = (−1, 0.5), sd = 0.8;
- ``bernoulli``: 300 groups of 3 rows of 0/1, ``y ~ x + (1 | g)``, x ~ N(0, 1),
  b = (−0.5, 1), sd = 1.5: few rows a group, where a plain Laplace approximation is poor;
- ``slopes``: Poisson, 100 groups of 8 rows, ``y ~ x + (x | g)``, x ~ U(−1, 1),
  b = (1, 0.5), sds (0.5, 0.3), correlation 0.3: random intercepts and slopes;
- ``poisson-obs``: Poisson, N = 5,000 rows each its own level, ``y ~ x + (1 | obs)``,
  x ~ N(0, 1), b = (0.5, 0.3), sd = 0.5: one effect per observation (over-dispersion), the
  model of the R-INLA comparison (Modrák 2018: R-INLA 6–11 s, Stan 389 s).

Priors, the same for every engine: b[·] ~ N(0, 5); the sds ~ HalfNormal(2); the slopes'
correlation ~ LKJ(2). Every peer is non-centred (r_j = diag(sd) L z_j, z_j ~ N(0, I)).

Engines: ``poolwise`` (the family's default method, whatever it is at the time: the
method that ran and any fallback are printed), ``poolwise-importance``
(``method="importance"``, which a slope's default is not), ``poolwise-nuts`` (``method="nuts"``),
``numpyro`` (the model written directly, vectorised chains, x64) and ``nutpie`` (PyMC,
numba backend). Each runs in a fresh Python process; "total" is the wall time of the call
that turns data into draws, compilation included, imports excluded (shown apart). Min bulk
ESS is ``arviz_stats.ess(..., method="bulk")`` over every coefficient, sd, correlation and
group effect, from (chain, draw) arrays; for importance-weighted draws poolwise's own ESS
(from the weights) is what counts, and is printed beside it. The posterior means of b and
the sds are printed per engine, with the largest gap between engines in posterior sds.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rates import RESULT, SEED, CompileClock, _cpus, workload_in_subprocess, workload_parser

#: the prior scale of every coefficient and of every sd
B_SCALE, SD_SCALE, LKJ_ETA = 5.0, 2.0, 2.0


@dataclass(frozen=True)
class Workload:
    """One simulated GLMM data set: family, formula and the truth it is drawn from."""

    title: str
    family: str  # poolwise's family name
    groups: int
    rows: int  # rows per group
    b: tuple[float, float]
    sd: tuple[float, ...]  # one per group effect: (intercept,) or (intercept, slope)
    cor: float = 0.0
    trials: int = 1

    @property
    def slopes(self) -> bool:
        return len(self.sd) == 2

    @property
    def group(self) -> str:
        return "obs" if self.rows == 1 and self.family == "poisson" else "g"

    @property
    def formula(self) -> str:
        lhs = "y | trials(n)" if self.family == "binomial" else "y"
        term = f"(x | {self.group})" if self.slopes else f"(1 | {self.group})"
        return f"{lhs} ~ x + {term}"

    @property
    def effects(self) -> tuple[str, ...]:
        return ("Intercept", "x") if self.slopes else ("Intercept",)

    @property
    def priors(self) -> str:
        g = self.group
        parts = [f"b[Intercept] = normal(0, {B_SCALE:g})", f"b[x] = normal(0, {B_SCALE:g})"]
        parts += [f"sd[{g}][{e}] = halfnormal({SD_SCALE:g})" for e in self.effects]
        if self.slopes:
            parts.append(f"cor[{g}] = lkj({LKJ_ETA:g})")
        return "; ".join(parts)

    def table(self) -> Any:
        """The simulated rows (seeded by the workload's name: every engine sees the same)."""
        import pandas as pd

        rng = np.random.default_rng([SEED, sum(map(ord, self.title))])
        g = np.repeat(np.arange(self.groups), self.rows)
        if self.family == "binomial":
            x = np.tile(np.arange(self.rows, dtype=float), self.groups)
        elif self.slopes:
            x = rng.uniform(-1.0, 1.0, g.size)
        else:
            x = rng.standard_normal(g.size)
        if self.slopes:
            cov = np.array([[self.sd[0] ** 2, self.cor * self.sd[0] * self.sd[1]],
                            [self.cor * self.sd[0] * self.sd[1], self.sd[1] ** 2]])
            r = rng.multivariate_normal(np.zeros(2), cov, self.groups)
        else:
            r = np.column_stack([rng.normal(0.0, self.sd[0], self.groups), np.zeros(self.groups)])
        eta = self.b[0] + r[g, 0] + (self.b[1] + r[g, 1]) * x
        if self.family == "poisson":
            y = rng.poisson(np.exp(eta))
        else:
            y = rng.binomial(self.trials, 1.0 / (1.0 + np.exp(-eta)))
        width = len(str(self.groups - 1))
        table = pd.DataFrame({self.group: [f"{self.group}{k:0{width}d}" for k in g],
                              "x": x, "y": y})
        if self.family == "binomial":
            table["n"] = self.trials
        return table

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """y, x, the 0-based group of every row (labels sorted) and the group count."""
        table = self.table()
        levels, index = np.unique(table[self.group].to_numpy(), return_inverse=True)
        return (table["y"].to_numpy(dtype=float), table["x"].to_numpy(dtype=float),
                index.astype(np.int64), len(levels))


WORKLOADS = {
    "binomial": Workload("binomial, 200 groups × 20 trials, y | trials(n) ~ x + (1 | g)",
                         "binomial", groups=200, rows=2, b=(-1.0, 0.5), sd=(0.8,), trials=10),
    "bernoulli": Workload("bernoulli, 300 groups × 3 rows, y ~ x + (1 | g)", "bernoulli",
                          groups=300, rows=3, b=(-0.5, 1.0), sd=(1.5,)),
    "slopes": Workload("poisson, 100 groups × 8 rows, y ~ x + (x | g)", "poisson",
                       groups=100, rows=8, b=(1.0, 0.5), sd=(0.5, 0.3), cor=0.3),
    "poisson-obs": Workload("poisson, 5,000 rows, an effect each, y ~ x + (1 | obs)", "poisson",
                            groups=5000, rows=1, b=(0.5, 0.3), sd=(0.5,)),
}
ENGINES = {"poolwise": "poolwise (default)", "poolwise-importance": "poolwise importance",
           "poolwise-nuts": "poolwise nuts",
           "numpyro": "NumPyro, hand-written", "nutpie": "PyMC + nutpie"}


def _import_dask() -> None:
    """Import Dask where it is installed: xarray imports it on its first array (about 1 s
    of CPU), inside whatever call makes one — an import, not inference."""
    try:
        import dask.array  # noqa: F401
    except ImportError:
        pass


def engine_poolwise(method: str | None, work: Workload, draws: int,
                    warmup: int) -> dict[str, Any]:
    """poolwise's ``fit``; the libraries it imports lazily are imported first."""
    t0 = time.perf_counter()
    import arviz_base  # noqa: F401
    import arviz_stats  # noqa: F401
    import numpyro.infer  # noqa: F401
    import scipy.optimize  # noqa: F401

    import poolwise

    _import_dask()
    clock = CompileClock()
    gc.collect()
    imported = time.perf_counter() - t0
    table = work.table()
    options = {} if method is None else {"method": method}
    start = time.perf_counter()
    fit = poolwise.fit(table, formula=work.formula, family=work.family, prior=work.priors,
                       draws=draws, chains=4, warmup=warmup, seed=SEED, **options)
    total = time.perf_counter() - start
    post, g = fit.posterior, work.group

    def chain_draw(name: str) -> np.ndarray:
        return np.asarray(post[name].transpose("chain", "draw", ...).values, dtype=float)

    labels = [str(c) for c in post["b"].coords["coef"].values]
    b = chain_draw("b")[..., [labels.index(e) for e in ("Intercept", "x")]]
    effect_labels = [str(c) for c in post[f"sd_{g}"].coords[f"{g}_effect"].values]
    order = [effect_labels.index(e) for e in work.effects]
    sd = chain_draw(f"sd_{g}")[..., order]
    r = chain_draw(f"r_{g}")[..., order]
    levels = [str(c) for c in post[f"r_{g}"].coords[g].values]
    r = r[:, :, np.argsort(levels)]
    cor = None
    if work.slopes:
        cor = chain_draw(f"cor_{g}")
        cor = cor[..., 0, 1] if cor.ndim == 4 else cor.reshape((*cor.shape[:2], -1))[..., 0]
    info = getattr(fit, "info", {}) or {}
    return {"import_s": imported, "total_s": total, "compile_s": clock.seconds, "b": b,
            "sd": sd, "cor": cor, "r": r, "divergences": info.get("divergences"),
            "method": fit.method, "own_ess": info.get("ess"), "note": info.get("fallback")}


def engine_numpyro(work: Workload, draws: int, warmup: int) -> dict[str, Any]:
    """The non-centred model, written as a NumPyro user would."""
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()
    clock = CompileClock()
    gc.collect()
    imported = time.perf_counter() - t0
    y, x, g, n_groups = work.arrays()
    k = len(work.sd)

    def model(y: Any, x: Any, g: Any) -> None:
        b = numpyro.sample("b", dist.Normal(0.0, B_SCALE).expand([2]).to_event(1))
        sd = numpyro.sample("sd", dist.HalfNormal(SD_SCALE).expand([k]).to_event(1))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([n_groups, k]).to_event(2))
        if work.slopes:
            chol = numpyro.sample("L", dist.LKJCholesky(2, LKJ_ETA))
            r = numpyro.deterministic("r", (z @ chol.T) * sd)
            eta = b[0] + r[g, 0] + (b[1] + r[g, 1]) * x
        else:
            r = numpyro.deterministic("r", z * sd)
            eta = b[0] + r[g, 0] + b[1] * x
        with numpyro.plate("obs", len(y)):
            if work.family == "poisson":
                numpyro.sample("y", dist.Poisson(jnp.exp(eta)), obs=y)
            else:
                numpyro.sample("y", dist.Binomial(work.trials, logits=eta), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), jnp.asarray(y), jnp.asarray(x), jnp.asarray(g),
             extra_fields=("diverging",))
    samples = {n: np.asarray(v) for n, v in mcmc.get_samples(group_by_chain=True).items()}
    total = time.perf_counter() - start
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return {"import_s": imported, "total_s": total, "compile_s": clock.seconds,
            "b": samples["b"], "sd": samples["sd"],
            "cor": samples["L"][..., 1, 0] if work.slopes else None, "r": samples["r"],
            "divergences": int(diverging.sum()), "method": "nuts"}


def engine_nutpie(work: Workload, draws: int, warmup: int) -> dict[str, Any]:
    """The same model in PyMC, compiled (numba) and sampled by nutpie."""
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import nutpie
        import pymc as pm
    _import_dask()
    gc.collect()
    imported = time.perf_counter() - t0
    y, x, g, n_groups = work.arrays()
    start = time.perf_counter()
    with pm.Model() as model:
        b = pm.Normal("b", mu=0.0, sigma=B_SCALE, shape=2)
        z = pm.Normal("z", mu=0.0, sigma=1.0, shape=(n_groups, len(work.sd)))
        if work.slopes:
            chol, corr, sd = pm.LKJCholeskyCov(
                "chol", n=2, eta=LKJ_ETA, compute_corr=True,
                sd_dist=pm.HalfNormal.dist(sigma=SD_SCALE, shape=2))
            pm.Deterministic("sd", sd)
            pm.Deterministic("cor", corr[0, 1])
            r = pm.Deterministic("r", z @ chol.T)
            eta = b[0] + r[g, 0] + (b[1] + r[g, 1]) * x
        else:
            sd = pm.HalfNormal("sd", sigma=SD_SCALE, shape=1)
            r = pm.Deterministic("r", z * sd)
            eta = b[0] + r[g, 0] + b[1] * x
        if work.family == "poisson":
            pm.Poisson("y", mu=pm.math.exp(eta), observed=y)
        else:
            pm.Binomial("y", n=work.trials, logit_p=eta, observed=y)
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    trace = nutpie.sample(compiled, draws=draws, tune=warmup, chains=4, seed=SEED,
                          progress_bar=False)
    total = time.perf_counter() - start
    post = trace.posterior
    return {"import_s": imported, "total_s": total, "compile_s": compiled_at - start,
            "b": post["b"].values, "sd": post["sd"].values,
            "cor": post["cor"].values if work.slopes else None, "r": post["r"].values,
            "divergences": int(trace.sample_stats["diverging"].values.sum()), "method": "nuts"}


def run_engine(name: str, data: str, draws: int, warmup: int) -> dict[str, Any]:
    """In this (fresh) process: run one engine and reduce its draws to the table's numbers."""
    import arviz_stats as azs

    work = WORKLOADS[data]
    if name.startswith("poolwise"):
        method = None if name == "poolwise" else name.removeprefix("poolwise-")
        out = engine_poolwise(method, work, draws, warmup)
    elif name == "numpyro":
        out = engine_numpyro(work, draws, warmup)
    elif name == "nutpie":
        out = engine_nutpie(work, draws, warmup)
    else:
        raise SystemExit(f"unknown engine {name!r}")
    b, sd, r = (np.asarray(out.pop(key), dtype=float) for key in ("b", "sd", "r"))
    cor = out.pop("cor")
    chains, n_draws = b.shape[:2]
    names = ["b[Intercept]", "b[x]", *(f"sd[{e}]" for e in work.effects)]
    stacks = [b, sd]
    if cor is not None:
        names.append("cor")
        stacks.append(np.asarray(cor, dtype=float)[..., None])
    names += [f"r[{j},{e}]" for j in range(r.shape[2]) for e in work.effects]
    stacks.append(r.reshape(chains, n_draws, -1))
    values = np.concatenate(stacks, axis=-1)
    start = time.perf_counter()
    ess = np.atleast_1d(azs.ess(values, method="bulk"))
    where = int(np.argmin(ess))
    shared = len(names) - r.shape[2] * len(work.effects)  # b, the sds and cor: not r
    return {**out, "min_ess": float(ess[where]), "min_ess_param": names[where],
            "ess_s": time.perf_counter() - start, "n_params": values.shape[-1],
            "means": {n: float(values[..., i].mean()) for i, n in enumerate(names[:shared])},
            "sds": {n: float(values[..., i].std()) for i, n in enumerate(names[:shared])},
            "draws": n_draws, "warmup": warmup, "chains": chains}


def engine_in_subprocess(name: str, data: str, draws: int, warmup: int,
                         timeout: float) -> dict[str, Any] | str:
    """Run one engine in a fresh interpreter (:func:`rates.workload_in_subprocess`)."""
    return workload_in_subprocess(__file__, name, data, draws, warmup, timeout)

def bench(data: str, draws: int, warmup: int, engines: list[str], timeout: float) -> None:
    work = WORKLOADS[data]
    print(f"\n== {work.title}: 4 chains × {warmup} warm-up × {draws} draws ==")
    print(f"priors: {work.priors}")
    results = {name: engine_in_subprocess(name, data, draws, warmup, timeout)
               for name in engines}
    print(f"{'engine':<23}{'method':>12}{'import s':>9}{'total s':>9}{'compile s':>10}"
          f"{'min ESS':>9}{'(where)':>19}{'ESS/s':>8}{'div':>5}{'×time':>8}")
    # the ratios are to the first poolwise engine asked for
    base = next((r for k, r in results.items() if k.startswith("poolwise")), None)
    base = base if isinstance(base, dict) else None
    done = {k: r for k, r in results.items() if isinstance(r, dict)}
    for name, r in results.items():
        if isinstance(r, str):
            print(f"{ENGINES[name]:<23}{r}")
            continue
        ratio = f"{r['total_s'] / base['total_s']:8.1f}" if base is not None else ""
        div = "–" if r["divergences"] is None else str(r["divergences"])
        print(f"{ENGINES[name]:<23}{r['method']:>12}{r['import_s']:9.2f}{r['total_s']:9.2f}"
              f"{r['compile_s']:10.2f}{r['min_ess']:9.0f}{r['min_ess_param']:>19}"
              f"{r['min_ess'] / r['total_s']:8.0f}{div:>5}{ratio}")
        if r.get("own_ess") is not None or r.get("note"):
            own = "—" if r.get("own_ess") is None else f"{r['own_ess']:.0f}"
            note = f"; {r['note']}" if r.get("note") else ""
            print(f"{'':<23}poolwise's own ESS {own}{note}")
    print("ESS/s = min ESS ÷ total time; ×time = the engine's total ÷ the first poolwise "
          "engine's.")
    if len(done) > 1:
        print("posterior means (and the largest gap between engines, in posterior sds):")
        keys = list(next(iter(done.values()))["means"])
        print(f"{'engine':<23}" + "".join(f"{k:>15}" for k in keys))
        for name, r in done.items():
            print(f"{ENGINES[name]:<23}" + "".join(f"{r['means'][k]:15.4f}" for k in keys))
        gaps = {k: (max(r["means"][k] for r in done.values())
                    - min(r["means"][k] for r in done.values()))
                / min(r["sds"].get(k, np.inf) for r in done.values())
                for k in keys if all(k in r["sds"] for r in done.values())}
        print("gap: " + ", ".join(f"{k} {v:.3f}" for k, v in gaps.items())
              + f" ({'agree' if max(gaps.values(), default=0) < 0.2 else 'CHECK'}: "
              "< 0.2 expected)")
    if data == "poisson-obs":
        print("R-INLA's published time for this model: 6–11 s (Modrák 2018); Stan 389 s.")


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__.splitlines()[0], list(WORKLOADS),
                             "poolwise,poolwise-nuts,numpyro,nutpie")
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
        bench(data, draws, warmup, engines, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
