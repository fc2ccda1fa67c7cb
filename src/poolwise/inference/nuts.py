"""``nuts``: the No-U-Turn sampler of NumPyro, on the same posterior as ``exact``.

Partial pooling, marginal (``parametrisation="marginal"``; "auto" for the rate families)
    θ is integrated out. NUTS samples the two unconstrained hyperparameter coordinates
    z = (u, v) of the family (:attr:`RateFamily.uv_names`), with a flat base measure, from

        log p(u, v | y) = Σ_j w_j log p(y_j | α, β) + log p(α, β) + log |∂(α, β)/∂(u, v)|,

    with (α, β) = ``family.from_uv(u, v)``, the marginal likelihood from
    ``family.log_marginal_sum`` on the compressed data (unique (y, n) pairs with their
    counts w_j) and the hyperprior from :func:`poolwise.priors.hyperprior_log_density_uv`,
    both evaluated with JAX operations, so no density is written twice. With no θ in the
    chain there is no funnel. After sampling, every θ_j is drawn exactly (NumPy) from its
    conjugate conditional p(θ_j | y_j, α, β) at each (α, β) draw: draws of
    p(α, β | y) p(θ | α, β, y), the full joint posterior.

Partial pooling, explicit θ (normal family: ``"non-centred"``, its "auto", or ``"centred"``)
    For y_j ~ N(θ_j, σ_j²), θ_j ~ N(μ, τ²) NUTS samples θ with the hyperparameters
    (u, v) = (μ, log τ), as Stan and PyMC users write the model, so that ``nuts`` and
    ``gibbs`` can be checked against ``exact`` and each other on the same joint posterior:

        non-centred   z = (μ, log τ, η_1..η_J),  θ_j = μ + τ η_j,  η_j ~ N(0, 1),
                      log p(z | y) = log p(μ, log τ) + Σ_j log N(η_j | 0, 1)
                                     + Σ_j log N(y_j | θ_j, σ_j²);
        centred       z = (μ, log τ, θ_1..θ_J),
                      log p(z | y) = log p(μ, log τ) + Σ_j log N(θ_j | μ, τ²)
                                     + Σ_j log N(y_j | θ_j, σ_j²),

    with log p(μ, log τ) = log p(μ, τ) + log τ from
    :func:`~poolwise.priors.hyperprior_log_density_uv`, the population density from
    ``family.log_population_from_stats`` (at μ = 0, τ = 1 for η) and the likelihood from
    ``family.log_likelihood``, all with JAX operations. The centred form has the funnel of
    Neal (2003): where τ is small the θ_j are squeezed together, NUTS cannot follow the
    curvature and reports divergent transitions (eight schools shows them; the Fit warns).
    The non-centred form makes η independent of τ a priori and, with groups whose data are
    weak (σ_j large against τ), has no funnel (Betancourt and Girolami 2015). Here ``lp``
    is the log density of z, and θ is T(z), not drawn afterwards.

No or complete pooling
    θ is explicit (one per group, or one shared) with its fixed conjugate prior from
    ``spec.theta_prior`` (NumPyro's Beta, Gamma or Normal, sampled on the logit, log or
    identity scale through NumPyro's bijection to the support, Jacobian included) and the
    likelihood ``family.log_likelihood``. The improper Gamma(a, 0) prior (the default
    Gamma(1/2, 0)) is handled on the log scale: p(log θ) ∝ θ^(a−1) · θ = e^(a log θ); the
    normal family's flat prior (its default) adds nothing. ``parametrisation`` must be
    "auto" here: θ is always explicit.

How the chains run
    Each target is a potential function −log p(z | data) of the sampled coordinates and
    the data, given to NumPyro's functional NUTS (:func:`numpyro.infer.hmc.hmc`:
    ``init_kernel`` with step size and diagonal mass matrix adaptation, ``sample_kernel``).
    A chain is one compiled program, ``advance``, called :data:`CALLS_PER_CHAIN` times:
    the first call initialises the chain, each runs a fixed number of iterations, and the
    progress bar advances between calls. It takes the data as arguments rather than
    compiling them in as constants (the marginal form's reduced terms padded to a size
    class, :func:`poolwise.families.sums.size_class`), and is kept per potential, settings
    and shapes (:func:`run_chains`), so a fit of the same structure and shapes — other
    data, another seed, a calibration's replications — compiles nothing;
    with JAX's persistent compilation cache (:func:`poolwise._ops.start_jax`) a new process
    reads them from disk. The chains run in parallel threads (``ThreadPoolExecutor`` with
    min(chains, CPU cores) workers; XLA releases the GIL while a program runs). On CPU,
    compilation dominates the cost of these small models. Earlier measurements on the
    2-core test machine (rat tumours, 4 chains × (1000 + 1000) iterations, compilation
    included): about 4.5-7 s for one program run chain after chain, against about 17-21 s
    for ``numpyro.infer.MCMC`` with ``chain_method="vectorized"`` (a larger vmapped program
    plus many small eager compilations) and about 42 s with ``"sequential"`` (which
    compiles again for every chain); ``"parallel"`` needs host devices declared before JAX
    starts and warns when there are fewer than chains, so it is not used. Threads against
    chain after chain, same machine, two runs each, other jobs sharing its cores (load
    about 2), sampling seconds after compilation:

        ================================  ===========  ===========
        model (4 × (1000 + 1000))          one by one   threaded
        ================================  ===========  ===========
        rat tumours, marginal             0.30, 0.43   0.13, 0.16
        sleepstudy mixed model, marginal  0.59, 0.52   0.29, 0.48
        sleepstudy, non-centred           2.95, 3.01   2.26, 2.34
        ================================  ===========  ===========

    Compilation (2-5 s, varying more than that from run to run) is unchanged, so totals
    gain 0.2-0.8 s. ``tree_depth`` = ⌊log2(n_steps)⌋ + 1, as ArviZ's ``from_numpyro``
    computes it from NumPyro's ``num_steps``.

JAX is switched to 64-bit floats (``jax_enable_x64``) when this method runs; the setting
is global to the process, as is the persistent cache (``POOLWISE_COMPILE_CACHE``).

References: Hoffman and Gelman (2014), "The No-U-Turn Sampler", JMLR 15:1593-1623;
Phan, Pradhan and Jankowiak (2019), "Composable effects for flexible and accelerated
probabilistic programming in NumPyro", arXiv:1912.11554; BDA3 §5.3 for p(α, β | y);
Betancourt and Girolami (2015), "Hamiltonian Monte Carlo for hierarchical models",
in *Current Trends in Bayesian Methodology with Applications*, CRC Press (the funnel and
the non-centred parametrisation); BDA3 §5.5 (eight schools).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from poolwise._ops import start_jax
from poolwise._random import Stream, generator, jax_key
from poolwise.exceptions import SpecificationError
from poolwise.inference.base import ConjugateSpec, Draws, SamplerConfig
from poolwise.inference.exact import starting_point
from poolwise.priors import HyperPrior, hyperprior_log_density_uv

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts
    from poolwise.families.base import RateFamily

#: how the chains are run (see the module docstring for the measurements behind it)
CHAIN_METHOD = "one compiled program, chains in parallel threads (one per CPU core)"
#: NUTS step-size adaptation target
TARGET_ACCEPT = 0.8
#: the target for the normal family's explicit θ (non-centred and centred): at 0.8 the
#: non-centred eight schools still shows a few divergences in some runs (0-4 in 4 × 1000
#: draws over six seeds), at 0.9 none; smaller steps, as Stan's advice to raise adapt_delta
#: (Betancourt, "Diagnosing biased inference with divergences", 2017). The centred form
#: diverges at either target: the funnel, not the step size, is the cause there.
EXPLICIT_TARGET_ACCEPT = 0.9
#: half-width of the uniform jitter (unconstrained scale) that spreads the chains' starts
INIT_JITTER = 0.5
#: values of ``SamplerConfig.parametrisation`` this method understands
PARAMETRISATIONS = ("auto", "non-centred", "centred", "marginal")
#: what each explicit-θ parametrisation samples, for ``info["sampled"]``
EXPLICIT_SAMPLED = {"non-centred": "(μ, log τ, η) with θ = μ + τ η",
                    "centred": "(μ, log τ, θ)"}
#: per-iteration statistics kept, ArviZ name -> attribute of NumPyro's ``HMCState``
STAT_FIELDS = {
    "diverging": "diverging",
    "n_steps": "num_steps",
    "acceptance_rate": "accept_prob",
    "lp": "potential_energy",
    "energy": "energy",
}

#: calls of the compiled sampling program per chain; the progress bar advances between them
CALLS_PER_CHAIN = 20
#: compiled chain programs kept in a process (:func:`_programs`), least recently used dropped
PROGRAMS_KEPT = 16

#: −log p(z | data) as a function of (z, data)
Potential = Callable[[Any, Any], Any]


def sample_nuts(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    """Sample the model's posterior with NUTS (NumPyro) and return draws like ``exact``.

    Parameters
    ----------
    spec
        The model (:class:`~poolwise.inference.base.ConjugateSpec`); any pooling level and
        family.
    data
        Per-group counts y_j and sizes n_j (estimates and standard errors for the normal
        family).
    config
        ``chains`` × (``warmup`` + ``draws``) iterations, seeded by ``seed``
        (one stream per purpose, :mod:`poolwise._random`: the chains, their starts and the
        conjugate θ draws); ``progress`` shows a progress bar. ``parametrisation``
        (partial pooling): ``"auto"`` (default: ``"non-centred"`` for the normal family,
        ``"marginal"`` for the rate families), ``"marginal"`` (θ integrated out, any
        family), or ``"non-centred"`` / ``"centred"`` (θ sampled, normal family only).

    Returns
    -------
    Draws
        ``theta`` shaped (chains, draws, J); ``alpha`` and ``beta`` shaped (chains, draws)
        under partial pooling; ``sample_stats`` under ArviZ's names (``diverging``,
        ``n_steps``, ``tree_depth``, ``acceptance_rate``, ``lp``, ``energy``,
        ``step_size``), each shaped
        (chains, draws); ``info`` with the number of divergences and how chains ran.

    Raises
    ------
    SpecificationError
        For an unknown ``parametrisation``, an explicit-θ one outside the normal family,
        or anything but ``"auto"`` under no or complete pooling.

    Notes
    -----
    ``lp`` is the log density of the sampled coordinates: under ``"marginal"`` that of
    (u, v) with θ integrated out, under the explicit forms that of (μ, log τ, η) or
    (μ, log τ, θ) — comparable within one parametrisation only. ``info`` records the
    parametrisation used and what was sampled. The module docstring gives the models.
    """
    start_jax()
    parametrisation = _resolve_parametrisation(spec, config)
    init_rng = generator(config.seed, Stream.INIT)
    theta_rng = generator(config.seed, Stream.CONDITIONAL)
    family = spec.family
    to_theta: Callable[[Any], Any] | None = None
    arrays: Any = ()
    potential: Potential
    if parametrisation == "marginal":
        assert spec.hyperprior is not None  # partial pooling always has a hyperprior
        potential = _CollapsedPotential(family, spec.hyperprior)
        arrays = family.marginal_terms(*data.compressed()).padded()
        start = starting_point(spec, data)
        sampled = "(u, v) with θ integrated out"
    elif spec.pooling == "partial":
        potential = _NormalPotential(family, spec.hyperprior, parametrisation == "centred")
        arrays = (np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float))
        start, to_theta = _normal_start(spec, data, potential)
        sampled = EXPLICIT_SAMPLED[parametrisation]
    else:
        y, n = data.y, data.n
        if spec.pooling == "complete":
            y, n = (np.atleast_1d(value) for value in family.pool(y, n))
        potential = _ThetaPotential(family, float(spec.theta_prior.a), float(spec.theta_prior.b))
        arrays = (np.asarray(y, dtype=float), np.asarray(n, dtype=float))
        start, to_theta = potential.start(y, n), potential.transform()
        sampled = "θ"
    target = EXPLICIT_TARGET_ACCEPT if parametrisation in EXPLICIT_SAMPLED else TARGET_ACCEPT
    init = start + init_rng.uniform(-INIT_JITTER, INIT_JITTER, size=(config.chains, start.size))
    z, stats = run_chains(potential, init, config, target, data=arrays)
    info: dict[str, Any] = {
        "divergences": int(np.sum(stats["diverging"])),
        "chain_method": CHAIN_METHOD,
        "target_accept": target,
        "parametrisation": parametrisation,
        "sampled": sampled,
    }
    if spec.pooling == "partial":
        alpha, beta = family.from_uv(z[..., 0], z[..., 1])
        if to_theta is None:
            theta = family.sample_conditional(
                theta_rng, alpha[..., None], beta[..., None], data.y, data.n
            )
        else:
            theta = np.asarray(to_theta(z))
        return Draws(theta=theta, alpha=alpha, beta=beta, sample_stats=stats, info=info)
    assert to_theta is not None  # no or complete pooling always samples θ
    theta = np.asarray(to_theta(z))
    if spec.pooling == "complete":
        theta = np.repeat(theta, data.n_groups, axis=-1)
    return Draws(theta=theta, sample_stats=stats, info=info)


def _resolve_parametrisation(spec: ConjugateSpec, config: SamplerConfig) -> str:
    """What to sample: "marginal", "non-centred" or "centred" under partial pooling,
    "explicit" otherwise; "auto" is non-centred for the normal family, marginal else."""
    choice = config.parametrisation
    if choice not in PARAMETRISATIONS:
        raise SpecificationError(
            f"unknown parametrisation {choice!r}; valid: {', '.join(PARAMETRISATIONS)}")
    if spec.pooling != "partial":
        if choice != "auto":
            raise SpecificationError(
                f"parametrisation {choice!r} is for partial pooling; with pooling "
                f"{spec.pooling!r} θ is always sampled explicitly: use 'auto'")
        return "explicit"
    if choice == "auto":
        return "non-centred" if spec.family.name == "normal" else "marginal"
    if choice != "marginal" and spec.family.name != "normal":
        raise SpecificationError(
            f"parametrisation {choice!r} (explicit θ) is for the normal family; the "
            f"{spec.family.name} family samples θ integrated out: use 'auto' or 'marginal'")
    return str(choice)


@dataclass(frozen=True)
class _CollapsedPotential:
    """−log p(u, v | y) with θ integrated out, a function of z and the family's reduced
    terms (``family.marginal_terms``, padded to a size class: a NamedTuple of arrays),
    so that every data set whose terms share a size class shares one program."""

    family: RateFamily
    prior: HyperPrior

    def __call__(self, z: Any, terms: Any) -> Any:
        from poolwise._ops import jax_ops

        family, ops = self.family, jax_ops()
        alpha, beta = family.from_uv(z[0], z[1], ops)
        return -(family.log_marginal_sum(alpha, beta, terms, ops)
                 + hyperprior_log_density_uv(self.prior, family, z[0], z[1], ops))


@dataclass(frozen=True)
class _NormalPotential:
    """−log p(μ, log τ, η or θ | y) for the normal family (module docstring), a function of
    z and the data (y_j, σ_j); equal for every fit with the same prior and form."""

    family: RateFamily
    prior: HyperPrior | None
    centred: bool

    def log_population(self, x: Any, mean: Any, sd: Any) -> Any:
        import jax.numpy as jnp

        from poolwise._ops import jax_ops

        stats = (x.shape[-1], jnp.sum(x, axis=-1), jnp.sum(jnp.square(x), axis=-1))
        return self.family.log_population_from_stats(mean, sd, stats, jax_ops())

    def to_theta(self, z: Any) -> Any:
        from poolwise._ops import jax_ops

        mu, tau = self.family.from_uv(z[..., 0:1], z[..., 1:2], jax_ops())
        return z[..., 2:] if self.centred else mu + tau * z[..., 2:]

    def __call__(self, z: Any, data: tuple[Any, Any]) -> Any:
        import jax.numpy as jnp

        from poolwise._ops import jax_ops

        family, ops, (y, se) = self.family, jax_ops(), data
        assert self.prior is not None  # partial pooling always has a hyperprior
        u, v, x = z[0], z[1], z[2:]
        mu, tau = family.from_uv(u, v, ops)
        theta = x if self.centred else mu + tau * x
        population = (self.log_population(x, mu, tau) if self.centred
                      else self.log_population(x, 0.0, 1.0))
        return -(hyperprior_log_density_uv(self.prior, family, u, v, ops) + population
                 + jnp.sum(family.log_likelihood(theta, y, se, ops)))


def _normal_start(spec: ConjugateSpec, data: GroupCounts, potential: _NormalPotential
                  ) -> tuple[NDArray, Callable[[Any], Any]]:
    """A start for the normal family's explicit θ (each θ_j at its conditional mean given
    the starting (μ, τ)), and z ↦ θ."""
    y, se = np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float)
    uv = starting_point(spec, data)
    mu0, tau0 = spec.family.from_uv(uv[0], uv[1])
    mean, _ = spec.family.conjugate_update(mu0, tau0, y, se)
    x0 = mean if potential.centred else (mean - mu0) / tau0
    return np.concatenate([uv, x0]), potential.to_theta


@dataclass(frozen=True)
class _ThetaPotential:
    """−log p(z | y) for θ = T(z) explicit under its fixed prior with parameters (a, b),
    a function of z and the data (y_j, n_j); equal for every fit with the same prior."""

    family: RateFamily
    a: float
    b: float

    def __post_init__(self) -> None:
        if self.family.name not in ("beta-binomial", "gamma-poisson", "normal"):
            raise SpecificationError(
                f"nuts has no fixed θ prior for the {self.family.name!r} family")

    def prior(self) -> Any:
        """NumPyro's prior of θ, or None for the improper Gamma(a, 0) and flat priors."""
        from numpyro import distributions as dist

        if self.family.name == "beta-binomial":
            return dist.Beta(self.a, self.b)
        if self.family.name == "gamma-poisson":
            return None if self.b == 0 else dist.Gamma(self.a, self.b)
        return None if np.isinf(self.b) else dist.Normal(self.a, self.b)

    def transform(self) -> Any:
        """T, from the real line to θ's support (NumPyro's bijection)."""
        from numpyro.distributions.transforms import ExpTransform, IdentityTransform, biject_to

        prior = self.prior()
        if prior is not None:
            return biject_to(prior.support)
        return IdentityTransform() if self.family.name == "normal" else ExpTransform()

    def __call__(self, z: Any, data: tuple[Any, Any]) -> Any:
        import jax.numpy as jnp

        from poolwise._ops import jax_ops

        prior, transform = self.prior(), self.transform()
        theta = transform(z)
        if prior is not None:
            log_prior = prior.log_prob(theta) + transform.log_abs_det_jacobian(z, theta)
        elif self.family.name == "normal":  # the improper uniform prior on the real line
            log_prior = 0.0 * z
        else:  # Gamma(a, 0): p(θ) ∝ θ^(a−1), so p(log θ) ∝ θ^a
            log_prior = self.a * z
        y, n = data
        return -jnp.sum(log_prior + self.family.log_likelihood(theta, y, n, jax_ops()))

    def start(self, y: NDArray, n: NDArray) -> NDArray:
        """T⁻¹ of each θ's conjugate posterior median."""
        import jax.numpy as jnp

        median = np.atleast_1d(self.family.conditional(self.a, self.b, y, n).median())
        return np.asarray(self.transform().inv(jnp.asarray(median)), dtype=float)


def run_chains(
    potential: Potential,
    init: NDArray,
    config: SamplerConfig,
    target_accept: float,
    *,
    data: Any = (),
    timings: dict[str, float] | None = None,
) -> tuple[NDArray, dict[str, NDArray]]:
    """NUTS from each row of ``init``: z shaped (chains, draws, dim) and statistics.

    ``potential(z, data)`` is −log p(z | data); ``data`` is a pytree of arrays (or ``()``).
    The chains run one compiled program, ``advance``: :data:`CALLS_PER_CHAIN` calls a
    chain, the first starting it (NumPyro's ``init_kernel``), each then a fixed number of
    ``sample_kernel`` iterations, so the progress bar advances between calls and the
    program holds no host callback, which JAX's persistent cache refuses to store. It
    takes the data as arguments, so nothing of it is compiled in as a constant, and is
    kept per (``potential``, warm-up, iterations per call, ``target_accept``, shapes and
    dtypes of z and the data), and a fit of the same structure and shapes runs without
    compiling. ``potential`` is compared by ``==``: a frozen dataclass whose fields are the
    model's structure serves every fit of it; a closure serves only itself.

    The statistics, each shaped (chains, draws), are those of :data:`STAT_FIELDS`, with
    ``lp`` = −potential, plus ``step_size`` and ``tree_depth`` = ⌊log2(n_steps)⌋ + 1 (the
    depth of NumPyro's doubling tree, as ArviZ's ``from_numpyro`` computes it). Where a
    ``timings`` dict is given, it receives ``compile_seconds`` (tracing, lowering and
    compiling, or reading the persistent cache; 0 when this process holds the programs)
    and ``sample_seconds``.
    """
    import jax
    import jax.numpy as jnp
    from jax import random

    start_jax()
    warmup, total = config.warmup, config.warmup + config.draws
    chunk = -(-total // CALLS_PER_CHAIN)
    keys = random.split(jax_key(config.seed, Stream.FIT), config.chains)
    starts = jnp.asarray(init, dtype=jnp.float64)
    data = jax.tree.map(lambda leaf: jnp.asarray(np.asarray(leaf)), data)
    began = time.perf_counter()
    placeholder, advance = _programs(potential, warmup, chunk, float(target_accept),
                                     _signature((keys[0], starts[0], data)))
    compiled = time.perf_counter()
    tick, close_bar = _progress_bar(config, total)

    def run(c: int) -> dict[str, NDArray]:
        state, parts = placeholder, []
        for done in range(0, total, chunk):
            state, part = advance(done == 0, keys[c], starts[c], state, data)
            parts.append(part)
            tick(min(chunk, total - done))
        return {name: np.concatenate([np.asarray(part[name]) for part in parts])[warmup:total]
                for name in parts[0]}

    try:
        runs = _run_each(run, config.chains)
    finally:
        close_bar()
    if timings is not None:
        timings["compile_seconds"] = compiled - began
        timings["sample_seconds"] = time.perf_counter() - compiled
    out = {name: np.stack([r[name] for r in runs]) for name in runs[0]}
    z = out.pop("z")
    out["lp"] = -out["lp"]
    out["diverging"] = out["diverging"].astype(bool)
    out["tree_depth"] = np.floor(np.log2(np.maximum(out["n_steps"], 1))).astype(np.int64) + 1
    return z, out


Signature = tuple[Any, tuple[tuple[tuple[int, ...], str], ...]]


def _signature(tree: Any) -> Signature:
    """The structure of a pytree of arrays with each leaf's shape and dtype (hashable)."""
    import jax

    leaves, structure = jax.tree.flatten(tree)
    return structure, tuple((tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves)


@functools.lru_cache(maxsize=PROGRAMS_KEPT)
def _programs(potential: Potential, warmup: int, chunk: int, target_accept: float,
              signature: Signature) -> tuple[Any, Callable[..., Any]]:
    """The compiled ``advance(fresh, key, z0, state, data)`` → (state, ``chunk``
    iterations' records) of :func:`run_chains`, and a placeholder state for its first call.

    With ``fresh`` true the chain starts at ``z0`` (NumPyro's ``init_kernel``, which also
    sets up the adaptation that ``sample_kernel`` then uses) and ``state`` is ignored;
    otherwise it goes on from ``state``. Initialisation and sampling are one program, so
    XLA compiles the potential's gradient once for both (as two programs, each compiled
    it: about twice the compile time).
    """
    import jax
    import jax.numpy as jnp
    from jax import lax
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda data: functools.partial(_bound, potential, data), algo="NUTS")

    def start(key: Any, z0: Any, data: Any) -> Any:
        return init_kernel(z0, num_warmup=warmup, target_accept_prob=target_accept,
                           model_args=(data,), rng_key=key)

    def advance(fresh: Any, key: Any, z0: Any, state: Any, data: Any
                ) -> tuple[Any, dict[str, Any]]:
        def record(state: Any) -> dict[str, Any]:
            out = {name: getattr(state, field) for name, field in STAT_FIELDS.items()}
            return {"z": state.z, "step_size": state.adapt_state.step_size, **out}

        def step(i: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            state, records = carry
            state = sample_kernel(state, model_args=(data,))
            return state, jax.tree.map(lambda r, x: r.at[i].set(x), records, record(state))

        state = lax.cond(fresh, lambda: start(key, z0, data), lambda: state)
        records = jax.tree.map(lambda x: jnp.zeros((chunk, *jnp.shape(x)), jnp.result_type(x)),
                               record(state))
        return lax.fori_loop(0, chunk, step, (state, records))

    structure, leaves = signature
    key, z0, data = jax.tree.unflatten(structure, [jax.ShapeDtypeStruct(shape, dtype)
                                                   for shape, dtype in leaves])
    state = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype),
                         jax.eval_shape(start, key, z0, data))
    flag = jax.ShapeDtypeStruct((), jnp.bool_)
    return state, jax.jit(advance).trace(flag, key, z0, state, data).lower().compile()


def _bound(potential: Potential, data: Any, z: Any) -> Any:
    """``potential(z, data)``, for NumPyro's ``potential_fn_gen``."""
    return potential(z, data)


def _run_each(run: Callable[[int], Any], chains: int) -> list[Any]:
    """``run(c)`` for each chain c, in parallel threads (:data:`CHAIN_METHOD`).

    XLA releases the GIL while a program runs, so up to one chain per CPU core runs at once.
    """
    workers = max(1, min(chains, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(chains)))


def _progress_bar(config: SamplerConfig, total: int
                  ) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A function that advances a progress bar by some iterations (from any thread), and
    its closer; both do nothing without ``config.progress``."""
    if not config.progress:
        return lambda steps: None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=config.chains * total, desc="nuts", unit="it")
    lock = threading.Lock()

    def tick(steps: int) -> None:
        with lock:
            bar.update(steps)

    return tick, bar.close


__all__ = ["run_chains", "sample_nuts"]
