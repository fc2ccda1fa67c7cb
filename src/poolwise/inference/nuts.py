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
    Each target is a plain potential function −log p(z) given to NumPyro's functional
    NUTS (:func:`numpyro.infer.hmc.hmc`: ``init_kernel`` with step size and diagonal mass
    matrix adaptation, ``sample_kernel``). One chain — initialisation, warm-up and
    sampling — is a single jitted program; it is compiled once (ahead of time, so the
    compile and sample seconds can be reported) and run once per chain, with a different
    key and start, the chains in parallel threads (``ThreadPoolExecutor`` with
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
    gain 0.2-0.8 s. The progress bar advances from every thread (``jax.debug.callback``
    into a thread-safe ``tqdm``). ``tree_depth`` = ⌊log2(n_steps)⌋ + 1, as ArviZ's
    ``from_numpyro`` computes it from NumPyro's ``num_steps``.

JAX is switched to 64-bit floats (``jax_enable_x64``) when this method runs; the setting
is global to the process.

References: Hoffman and Gelman (2014), "The No-U-Turn Sampler", JMLR 15:1593-1623;
Phan, Pradhan and Jankowiak (2019), "Composable effects for flexible and accelerated
probabilistic programming in NumPyro", arXiv:1912.11554; BDA3 §5.3 for p(α, β | y);
Betancourt and Girolami (2015), "Hamiltonian Monte Carlo for hierarchical models",
in *Current Trends in Bayesian Methodology with Applications*, CRC Press (the funnel and
the non-centred parametrisation); BDA3 §5.5 (eight schools).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from poolwise._random import Stream, generator, jax_key
from poolwise.exceptions import SpecificationError
from poolwise.inference.base import ConjugateSpec, Draws, SamplerConfig
from poolwise.inference.exact import starting_point
from poolwise.priors import hyperprior_log_density_uv

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts

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

Potential = Callable[[Any], Any]


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
    import jax

    jax.config.update("jax_enable_x64", True)

    parametrisation = _resolve_parametrisation(spec, config)
    init_rng = generator(config.seed, Stream.INIT)
    theta_rng = generator(config.seed, Stream.CONDITIONAL)
    family = spec.family
    to_theta: Callable[[Any], Any] | None = None
    if parametrisation == "marginal":
        potential, start = _collapsed_potential(spec, data)
        sampled = "(u, v) with θ integrated out"
    elif spec.pooling == "partial":
        potential, start, to_theta = _normal_potential(spec, data, parametrisation)
        sampled = EXPLICIT_SAMPLED[parametrisation]
    else:
        potential, start, to_theta = _theta_potential(spec, data)
        sampled = "θ"
    target = EXPLICIT_TARGET_ACCEPT if parametrisation in EXPLICIT_SAMPLED else TARGET_ACCEPT
    init = start + init_rng.uniform(-INIT_JITTER, INIT_JITTER, size=(config.chains, start.size))
    z, stats = run_chains(potential, init, config, target)
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


def _collapsed_potential(spec: ConjugateSpec, data: GroupCounts) -> tuple[Potential, NDArray]:
    """−log p(u, v | y) with θ integrated out, and a start."""
    from poolwise._ops import jax_ops

    family, prior, ops = spec.family, spec.hyperprior, jax_ops()
    assert prior is not None  # partial pooling always has a hyperprior
    terms = family.marginal_terms(*data.compressed())

    def potential(z: Any) -> Any:
        u, v = z[0], z[1]
        alpha, beta = family.from_uv(u, v, ops)
        return -(family.log_marginal_sum(alpha, beta, terms, ops)
                 + hyperprior_log_density_uv(prior, family, u, v, ops))

    return potential, starting_point(spec, data)


def _normal_potential(
    spec: ConjugateSpec, data: GroupCounts, parametrisation: str
) -> tuple[Potential, NDArray, Callable[[Any], Any]]:
    """−log p(μ, log τ, η or θ | y) for the normal family, a start and z ↦ θ (module docs)."""
    import jax.numpy as jnp

    from poolwise._ops import jax_ops

    family, prior, ops = spec.family, spec.hyperprior, jax_ops()
    assert prior is not None  # partial pooling always has a hyperprior
    y, se = np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float)
    centred = parametrisation == "centred"

    def log_population(x: Any, mean: Any, sd: Any) -> Any:
        stats = (x.shape[-1], jnp.sum(x, axis=-1), jnp.sum(jnp.square(x), axis=-1))
        return family.log_population_from_stats(mean, sd, stats, ops)

    def to_theta(z: Any) -> Any:
        mu, tau = family.from_uv(z[..., 0:1], z[..., 1:2], ops)
        return z[..., 2:] if centred else mu + tau * z[..., 2:]

    def potential(z: Any) -> Any:
        u, v, x = z[0], z[1], z[2:]
        mu, tau = family.from_uv(u, v, ops)
        theta = x if centred else mu + tau * x
        population = log_population(x, mu, tau) if centred else log_population(x, 0.0, 1.0)
        return -(hyperprior_log_density_uv(prior, family, u, v, ops) + population
                 + jnp.sum(family.log_likelihood(theta, y, se, ops)))

    uv = starting_point(spec, data)
    mu0, tau0 = family.from_uv(uv[0], uv[1])
    mean, _ = family.conjugate_update(mu0, tau0, y, se)
    x0 = mean if centred else (mean - mu0) / tau0
    return potential, np.concatenate([uv, x0]), to_theta


def _theta_potential(
    spec: ConjugateSpec, data: GroupCounts
) -> tuple[Potential, NDArray, Callable[[Any], Any]]:
    """−log p(z | y) for θ = T(z) explicit, a start near the conjugate posterior, and T."""
    import jax.numpy as jnp
    from numpyro import distributions as dist
    from numpyro.distributions.transforms import ExpTransform, IdentityTransform, biject_to

    from poolwise._ops import jax_ops

    family, ops = spec.family, jax_ops()
    a, b = spec.theta_prior.a, spec.theta_prior.b
    y, n = data.y, data.n
    if spec.pooling == "complete":
        y, n = (np.atleast_1d(value) for value in family.pool(y, n))
    prior: Any
    if family.name == "beta-binomial":
        prior = dist.Beta(a, b)
    elif family.name == "gamma-poisson":
        prior = None if b == 0 else dist.Gamma(a, b)
    elif family.name == "normal":
        prior = None if np.isinf(b) else dist.Normal(a, b)
    else:
        raise SpecificationError(f"nuts has no fixed θ prior for the {family.name!r} family")
    flat_normal = prior is None and family.name == "normal"
    transform: Any
    if flat_normal:
        transform = IdentityTransform()
    else:
        transform = ExpTransform() if prior is None else biject_to(prior.support)

    def log_prior(z: Any, theta: Any) -> Any:
        if flat_normal:  # the improper uniform prior on the real line
            return 0.0 * z
        if prior is None:  # Gamma(a, 0): p(θ) ∝ θ^(a−1), so p(log θ) ∝ θ^a
            return a * z
        return prior.log_prob(theta) + transform.log_abs_det_jacobian(z, theta)

    def potential(z: Any) -> Any:
        theta = transform(z)
        return -jnp.sum(log_prior(z, theta) + family.log_likelihood(theta, y, n, ops))

    median = np.atleast_1d(family.conditional(a, b, y, n).median())
    start = np.asarray(transform.inv(jnp.asarray(median)), dtype=float)
    return potential, start, transform


def run_chains(
    potential: Potential,
    init: NDArray,
    config: SamplerConfig,
    target_accept: float,
    *,
    timings: dict[str, float] | None = None,
) -> tuple[NDArray, dict[str, NDArray]]:
    """NUTS from each row of ``init``: z shaped (chains, draws, dim) and statistics.

    The statistics, each shaped (chains, draws), are those of :data:`STAT_FIELDS`, with
    ``lp`` = −potential, plus ``step_size`` and ``tree_depth`` = ⌊log2(n_steps)⌋ + 1 (the
    depth of NumPyro's doubling tree, as ArviZ's ``from_numpyro`` computes it). Where a
    ``timings`` dict is given, it receives ``compile_seconds`` and ``sample_seconds``.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax, random
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
    warmup, draws = config.warmup, config.draws
    total = warmup + draws
    tick, close_bar = _progress_bar(config, total)

    def record(state: Any) -> dict[str, Any]:
        out = {name: getattr(state, field) for name, field in STAT_FIELDS.items()}
        return {"z": state.z, "step_size": state.adapt_state.step_size, **out}

    def one_chain(key: Any, z0: Any) -> dict[str, Any]:
        state = init_kernel(z0, num_warmup=warmup, target_accept_prob=target_accept,
                            rng_key=key)
        buffers = jax.tree.map(lambda x: jnp.zeros((draws, *jnp.shape(x)), jnp.result_type(x)),
                               record(state))

        def body(i: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            state, buffers = carry
            state = sample_kernel(state)
            if tick is not None:
                tick(i)
            # warm-up iterations write to slot 0, which the first draw overwrites
            slot = jnp.maximum(i - warmup, 0)
            buffers = jax.tree.map(lambda buf, x: buf.at[slot].set(x), buffers, record(state))
            return state, buffers

        return lax.fori_loop(0, total, body, (state, buffers))[1]

    keys = random.split(jax_key(config.seed, Stream.FIT), config.chains)
    starts = jnp.asarray(init, dtype=jnp.float64)
    started = time.perf_counter()
    chain = jax.jit(one_chain).lower(keys[0], starts[0]).compile()
    compiled = time.perf_counter()
    try:
        runs = _run_each(chain, keys, starts)
    finally:
        close_bar()
    if timings is not None:
        timings["compile_seconds"] = compiled - started
        timings["sample_seconds"] = time.perf_counter() - compiled
    out = {name: np.stack([np.asarray(r[name]) for r in runs]) for name in runs[0]}
    z = out.pop("z")
    out["lp"] = -out["lp"]
    out["diverging"] = out["diverging"].astype(bool)
    out["tree_depth"] = np.floor(np.log2(np.maximum(out["n_steps"], 1))).astype(np.int64) + 1
    return z, out


def _run_each(chain: Callable[[Any, Any], Any], keys: Any, starts: Any) -> list[Any]:
    """Run the compiled chain once per (key, start), in parallel threads (:data:`CHAIN_METHOD`).

    XLA releases the GIL while a program runs, so up to one chain per CPU core runs at once.
    """
    import jax

    def run(c: int) -> Any:
        return jax.block_until_ready(chain(keys[c], starts[c]))

    workers = max(1, min(len(starts), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(len(starts))))


def _progress_bar(
    config: SamplerConfig, total: int
) -> tuple[Callable[[Any], None] | None, Callable[[], None]]:
    """A tick for inside the compiled loop that advances a progress bar, and its closer."""
    if not config.progress:
        return None, lambda: None
    import jax
    from jax import lax
    from tqdm.auto import tqdm

    bar = tqdm(total=config.chains * total, desc="nuts", unit="it")
    every = max(1, total // 100)

    def advance(i: Any) -> None:
        bar.update(min(every, total - int(i)))

    def tick(i: Any) -> None:
        lax.cond(i % every == 0, lambda: jax.debug.callback(advance, i), lambda: None)

    return tick, bar.close


__all__ = ["run_chains", "sample_nuts"]
