"""``gibbs``: the lecture's sampler, Gibbs for θ and Metropolis for α and β.

Each iteration draws every θ_j from its conjugate conditional, then updates log α and
log β one at a time with normal random-walk Metropolis steps, all chains at once. The
sampler is written as pure functions over a small immutable state (:class:`GibbsState`),
with :func:`sample_gibbs` on top running warm-up (proposal tuning) and sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from poolwise._random import Stream, generator
from poolwise.exceptions import DataError
from poolwise.families.base import FloatArray, RateFamily
from poolwise.inference.base import ConjugateSpec, Draws, SamplerConfig
from poolwise.inference.exact import starting_point
from poolwise.priors import HyperPrior, IndependentPrior, ReferencePrior, UniformVariancePrior

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts

#: acceptance rate the warm-up tunes each one-dimensional random walk towards
TARGET_ACCEPTANCE = 0.44
#: iterations between two adjustments of the proposal scales during warm-up
ADAPT_WINDOW = 50
#: Metropolis updates of (α, β) per θ update: each costs O(1), as it reads only the
#: sufficient statistics of θ, and 5 doubled the min ESS per second on the rats
HYPER_STEPS = 5
#: standard deviation of the jitter around the starting point, in (u, v)
INIT_JITTER = 0.5


class GibbsState(NamedTuple):
    """Where every chain is: θ (chains, J), log α and log β (chains,)."""

    theta: FloatArray
    log_alpha: FloatArray
    log_beta: FloatArray


class GibbsKernel(NamedTuple):
    """What a step needs to know about the model and the data."""

    family: RateFamily
    hyperprior: HyperPrior
    y: FloatArray
    n: FloatArray
    #: θ is clipped into [low, high], the support of the population without its ends
    theta_bounds: tuple[float, float]


class StepInfo(NamedTuple):
    """The fraction of Metropolis proposals accepted in one sweep, per chain."""

    accept_alpha: FloatArray
    accept_beta: FloatArray


def make_kernel(spec: ConjugateSpec, data: GroupCounts) -> GibbsKernel:
    """The kernel of ``spec`` on ``data``; θ stays inside the open support of Pop(α, β)."""
    if spec.hyperprior is None:  # get_method only lets partial pooling through
        raise AssertionError("gibbs needs partial pooling")
    low, high = (float(b) for b in spec.family.population(1.0, 1.0).support())
    bounds = (float(np.nextafter(low, np.inf)), float(np.nextafter(high, -np.inf)))
    y, n = np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float)
    return GibbsKernel(spec.family, spec.hyperprior, y, n, bounds)


def log_hyper_conditional(
    kernel: GibbsKernel,
    log_alpha: FloatArray,
    log_beta: FloatArray,
    stats: tuple[Any, Any, Any],
) -> FloatArray:
    """log p(log α, log β | θ) up to a constant, one value per chain.

    p(α, β) Π_j Pop(θ_j | α, β) times the Jacobian α β of (α, β) → (log α, log β);
    ``stats`` are the family's sufficient statistics of θ for each chain.
    """
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    family = kernel.family
    value = (
        kernel.hyperprior.log_density(alpha, beta, family)
        + family.log_population_from_stats(alpha, beta, stats)
        + log_alpha
        + log_beta
    )
    return np.asarray(value, dtype=float)


def update_theta(rng: np.random.Generator, kernel: GibbsKernel, state: GibbsState) -> GibbsState:
    """Gibbs step: θ_j ~ p(θ_j | y_j, α, β) for every group and chain."""
    alpha, beta = np.exp(state.log_alpha)[:, None], np.exp(state.log_beta)[:, None]
    theta = kernel.family.sample_conditional(rng, alpha, beta, kernel.y, kernel.n)
    # the RNG can return the ends of the support (0 or 1) when α + y_j is tiny
    theta = np.clip(theta, *kernel.theta_bounds)
    return state._replace(theta=theta)


def _metropolis(
    rng: np.random.Generator, current: FloatArray, proposal: FloatArray
) -> NDArray[np.bool_]:
    """Accept with probability min(1, exp(proposal − current)); NaN proposals are rejected."""
    log_u = np.log(rng.uniform(size=current.shape))
    return np.asarray(log_u < proposal - current)


def update_hyper(
    rng: np.random.Generator,
    kernel: GibbsKernel,
    state: GibbsState,
    scales: tuple[FloatArray, FloatArray],
) -> tuple[GibbsState, StepInfo]:
    """Metropolis steps for log α, then log β, each holding everything else fixed."""
    stats = kernel.family.population_stats(state.theta)
    log_alpha, log_beta = state.log_alpha, state.log_beta
    current = log_hyper_conditional(kernel, log_alpha, log_beta, stats)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing proposal is rejected
        proposed = log_alpha + scales[0] * rng.standard_normal(log_alpha.shape)
        candidate = log_hyper_conditional(kernel, proposed, log_beta, stats)
        accept_alpha = _metropolis(rng, current, candidate)
        log_alpha = np.where(accept_alpha, proposed, log_alpha)
        current = np.where(accept_alpha, candidate, current)

        proposed = log_beta + scales[1] * rng.standard_normal(log_beta.shape)
        candidate = log_hyper_conditional(kernel, log_alpha, proposed, stats)
        accept_beta = _metropolis(rng, current, candidate)
        log_beta = np.where(accept_beta, proposed, log_beta)
    return (
        state._replace(log_alpha=log_alpha, log_beta=log_beta),
        StepInfo(accept_alpha.astype(float), accept_beta.astype(float)),
    )


def gibbs_step(
    rng: np.random.Generator,
    kernel: GibbsKernel,
    state: GibbsState,
    scales: tuple[FloatArray, FloatArray],
) -> tuple[GibbsState, StepInfo]:
    """One sweep: θ | α, β, y, then :data:`HYPER_STEPS` times α | β, θ and β | α, θ."""
    state = update_theta(rng, kernel, state)
    accepted = np.zeros((2, state.log_alpha.size))
    for _ in range(HYPER_STEPS):
        state, step = update_hyper(rng, kernel, state, scales)
        accepted += (step.accept_alpha, step.accept_beta)
    return state, StepInfo(accepted[0] / HYPER_STEPS, accepted[1] / HYPER_STEPS)


def adapt_scale(scale: FloatArray, acceptance: FloatArray, window: int) -> FloatArray:
    """Move a proposal scale towards :data:`TARGET_ACCEPTANCE` (the ``window``-th update).

    log σ ← log σ + γ (rate − 0.44) with a gain γ = 2 / √window that shrinks, so the
    scales settle down before they are frozen at the end of warm-up.
    """
    gain = 2.0 / np.sqrt(window)
    return np.asarray(scale * np.exp(gain * (acceptance - TARGET_ACCEPTANCE)), dtype=float)


def initial_state(
    rng: np.random.Generator, kernel: GibbsKernel, spec: ConjugateSpec, data: GroupCounts,
    chains: int,
) -> GibbsState:
    """Chains dispersed around a sensible point, θ drawn from its conditional there.

    The centre is :func:`~poolwise.inference.exact.starting_point` (the pooled rate and a
    moderate concentration); each chain adds N(0, 0.5²) to both coordinates (u, v).
    """
    family = kernel.family
    centre = starting_point(spec, data)
    u, v = (centre[:, None] + INIT_JITTER * rng.standard_normal((2, chains)))
    alpha, beta = family.from_uv(u, v)
    state = GibbsState(np.empty((chains, data.n_groups)), np.log(alpha), np.log(beta))
    return update_theta(rng, kernel, state)


#: one sweep of a sampler: (rng, kernel, state, proposal scales) -> (state, acceptance)
Step = Callable[[np.random.Generator, Any, Any, tuple[FloatArray, FloatArray]],
                tuple[Any, StepInfo]]


def run_chains(
    rng: np.random.Generator,
    step: Step,
    kernel: Any,
    state: tuple[FloatArray, ...],
    scales: tuple[FloatArray, FloatArray],
    config: SamplerConfig,
) -> tuple[list[FloatArray], tuple[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    """Warm-up with proposal tuning, then sampling, for any sweep ``step``.

    During ``config.warmup`` sweeps the two proposal scales are moved every
    :data:`ADAPT_WINDOW` sweeps by :func:`adapt_scale`; they are then frozen for the
    ``config.draws`` kept sweeps. Returns every field of the state stacked over the kept
    sweeps (chains, draws, ...), the per-sweep acceptance fractions of the two updates
    (chains, draws), and the frozen scales.
    """
    chains, draws = config.chains, config.draws
    window_accepts = [np.zeros(chains), np.zeros(chains)]
    window = 0
    for i in range(config.warmup):
        state, info = step(rng, kernel, state, scales)
        window_accepts[0] += info.accept_alpha
        window_accepts[1] += info.accept_beta
        if (i + 1) % ADAPT_WINDOW == 0:
            window += 1
            scales = (
                adapt_scale(scales[0], window_accepts[0] / ADAPT_WINDOW, window),
                adapt_scale(scales[1], window_accepts[1] / ADAPT_WINDOW, window),
            )
            window_accepts = [np.zeros(chains), np.zeros(chains)]

    trace = [np.empty((chains, draws, *np.shape(field)[1:])) for field in state]
    accept_alpha, accept_beta = np.empty((chains, draws)), np.empty((chains, draws))
    for i in range(draws):
        state, info = step(rng, kernel, state, scales)
        for stored, field in zip(trace, state, strict=True):
            stored[:, i] = field
        accept_alpha[:, i], accept_beta[:, i] = info.accept_alpha, info.accept_beta
    return trace, (accept_alpha, accept_beta), scales


def sample_gibbs(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    """Metropolis-within-Gibbs for the partially pooled model (the lecture's sampler).

    Parameters
    ----------
    spec
        A model with ``pooling="partial"``; any family and hyperprior.
    data
        The per-group counts y_j and sizes n_j, J groups.
    config
        ``chains`` chains run side by side (vectorised), each ``warmup`` tuning
        iterations, which are discarded, then ``draws`` kept iterations. ``seed`` seeds
        :func:`numpy.random.default_rng`: the same seed gives the same draws.

    Returns
    -------
    Draws
        ``theta`` (chains, draws, J), ``alpha`` and ``beta`` (chains, draws);
        ``sample_stats`` holds ``accept_alpha`` and ``accept_beta`` (chains, draws), the
        fraction of each sweep's proposals accepted; ``info`` the per-chain acceptance
        rates after warm-up (``acceptance_alpha``, ``acceptance_beta``) and the frozen
        proposal scales (``proposal_scale_alpha``, ``proposal_scale_beta``, on the log scale).

    Notes
    -----
    The joint posterior is

    .. math::

        p(θ, α, β | y) ∝ p(α, β) \\prod_j \\mathrm{Pop}(θ_j | α, β)\\, p(y_j | θ_j, n_j).

    Each iteration

    1. draws θ_j ~ p(θ_j | y_j, α, β), which is conjugate: Beta(α + y_j, β + n_j − y_j)
       for the beta-binomial family, Gamma(α + y_j, β + E_j) for the gamma-Poisson one;
    2. updates a = log α by random-walk Metropolis, a' = a + σ_α ε with ε ~ N(0, 1),
       holding θ and β fixed, against the conditional
       p(a | β, θ) ∝ p(α, β) Π_j Pop(θ_j | α, β) · α. The last factor is the Jacobian
       dα/da, so the acceptance probability is

       .. math::

           \\min\\Bigl(1, \\frac{p(α', β) \\prod_j \\mathrm{Pop}(θ_j | α', β)\\, α'}
                              {p(α, β) \\prod_j \\mathrm{Pop}(θ_j | α, β)\\, α}\\Bigr);

    3. updates b = log β in the same way, with the Jacobian factor β;
    4. repeats steps 2-3 :data:`HYPER_STEPS` (5) times before the next θ update: they
       need only the sufficient statistics of θ, so they cost little, and they move
       (α, β) further along the ridge of their conditional.

    Working on the log scale means a proposal is never negative. The product over
    groups is evaluated from the family's sufficient statistics of θ, and θ is clipped
    into the open support of Pop so that log θ (and log(1 − θ)) stay finite.

    During warm-up the scales σ_α, σ_β of every chain start at 2.4 / √J and are moved
    every 50 iterations towards an acceptance rate of 0.44, the optimum for a
    one-dimensional random walk (Roberts & Rosenthal 2001); they are frozen afterwards,
    so the kept draws come from a fixed Markov kernel. Chains start dispersed around
    the pooled rate with a moderate concentration.

    References
    ----------
    Gelman et al., *Bayesian Data Analysis*, 3rd ed., ch. 5 (hierarchical models, the rat
    tumours) and §11.1-11.3 (Gibbs and Metropolis); the lecture notes, section "A fully
    Bayesian treatment".

    Examples
    --------
    >>> from poolwise import Model, datasets
    >>> rats = datasets.load("rats").query("historical == 1")
    >>> model = Model(family="beta-binomial", prior="halfnormal(10)")
    >>> data = model.prepare(rats, y="y", n="n", group="experiment")
    >>> draws = sample_gibbs(model, data, SamplerConfig(draws=500, warmup=500, seed=1))
    >>> draws.theta.shape, draws.alpha.shape
    ((4, 500, 70), (4, 500))
    >>> all(0.15 < rate < 0.8 for rate in draws.info["acceptance_alpha"])
    True
    """
    if spec.family.name == "normal":
        return sample_gibbs_normal(spec, data, config)
    rng = generator(config.seed, Stream.FIT)
    kernel = make_kernel(spec, data)
    state = initial_state(rng, kernel, spec, data, config.chains)
    start = np.full(config.chains, 2.4 / np.sqrt(max(data.n_groups, 1)))
    trace, (accept_alpha, accept_beta), scales = run_chains(
        rng, gibbs_step, kernel, state, (start, start.copy()), config)
    theta, log_alpha, log_beta = trace

    info = {
        "acceptance_alpha": accept_alpha.mean(axis=1).tolist(),
        "acceptance_beta": accept_beta.mean(axis=1).tolist(),
        "proposal_scale_alpha": scales[0].tolist(),
        "proposal_scale_beta": scales[1].tolist(),
        "target_acceptance": TARGET_ACCEPTANCE,
        "random_walk": "normal proposals on log α and log β, one at a time",
    }
    return Draws(
        theta=theta,
        alpha=np.exp(log_alpha),
        beta=np.exp(log_beta),
        sample_stats={"accept_alpha": accept_alpha, "accept_beta": accept_beta},
        info=info,
    )


# ------------------------------------------------------------------ the normal family
class NormalGibbsState(NamedTuple):
    """Where every chain is: θ (chains, J), μ and log τ (chains,)."""

    theta: FloatArray
    mu: FloatArray
    log_tau: FloatArray


class NormalGibbsKernel(NamedTuple):
    """What a sweep of the normal-normal sampler needs to know about the model and the data."""

    family: RateFamily
    hyperprior: HyperPrior
    y: FloatArray
    se: FloatArray
    #: (mean m, precision 1/s²) of a normal prior on μ, precision 0 for a flat one, so that
    #: μ | θ, τ is normal; None: μ is updated by random-walk Metropolis
    mu_prior: tuple[float, float] | None
    #: whether the prior of μ lives on (0, ∞): a Metropolis proposal μ ≤ 0 is rejected
    mu_positive: bool
    #: degrees of freedom ν of τ² | θ, μ ~ S / χ²_ν; None: Metropolis on log τ
    tau_df: int | None


def make_normal_kernel(spec: ConjugateSpec, data: GroupCounts) -> NormalGibbsKernel:
    """The kernel of the normal ``spec`` on ``data``: which updates are exact draws.

    μ is drawn from its normal conditional under a flat or normal prior on μ; τ² from its
    scaled inverse χ² conditional under a flat prior on τ (ν = J − 1, ``bda``) or on τ²
    (ν = J − 2, ``flat-tau2``). Every other prior gets a random-walk Metropolis step.
    """
    prior, groups = spec.hyperprior, data.n_groups
    if prior is None:  # get_method only lets partial pooling through
        raise AssertionError("gibbs needs partial pooling")
    mu_prior: tuple[float, float] | None = None
    tau_df: int | None = None
    mu_positive = False
    if isinstance(prior, ReferencePrior | UniformVariancePrior):
        mu_prior = (0.0, 0.0)
        tau_df = groups - (1 if isinstance(prior, ReferencePrior) else 2)
    elif isinstance(prior, IndependentPrior):
        if prior.alpha.name == "flat":
            mu_prior = (0.0, 0.0)
        elif prior.alpha.name == "normal":
            mean, sd = prior.alpha.params
            mu_prior = (mean, 1.0 / sd**2)
        mu_positive = prior.alpha.positive
        if prior.beta.name == "flat":
            tau_df = groups - 1
    if tau_df is not None and tau_df < 1:  # the Model refuses these data for these priors
        raise DataError(
            f"with {groups} groups the {prior.spec()!r} hyperprior gives an improper "
            "conditional for τ; use more groups or a proper prior on τ")
    y, se = np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float)
    return NormalGibbsKernel(spec.family, prior, y, se, mu_prior, mu_positive, tau_df)


def log_normal_conditional(
    kernel: NormalGibbsKernel, mu: FloatArray, log_tau: FloatArray, stats: tuple[Any, Any, Any]
) -> FloatArray:
    """log p(μ, log τ | θ) up to a constant, one value per chain.

    p(μ, τ) Π_j N(θ_j | μ, τ²) times the Jacobian τ of τ → log τ. As a function of μ
    alone it is the conditional of μ; as a function of log τ alone, that of log τ.
    """
    tau = np.exp(log_tau)
    value = np.asarray(
        kernel.hyperprior.log_density(mu, tau, kernel.family)
        + kernel.family.log_population_from_stats(mu, tau, stats)
        + log_tau,
        dtype=float,
    )
    if kernel.mu_positive:
        value = np.where(mu > 0, value, -np.inf)
    return value


def update_normal_theta(
    rng: np.random.Generator, kernel: NormalGibbsKernel, state: NormalGibbsState
) -> NormalGibbsState:
    """Gibbs step: θ_j ~ N(y_j − B_j (y_j − μ), (1 − B_j) σ_j²) for every group and chain."""
    mu, tau = state.mu[:, None], np.exp(state.log_tau)[:, None]
    theta = kernel.family.sample_conditional(rng, mu, tau, kernel.y, kernel.se)
    return state._replace(theta=np.asarray(theta, dtype=float))


def update_mu(
    rng: np.random.Generator, kernel: NormalGibbsKernel, state: NormalGibbsState, scale: FloatArray
) -> tuple[NormalGibbsState, FloatArray]:
    """μ | θ, τ: a normal draw (flat or normal prior), else a random-walk Metropolis step.

    Returns the new state and the acceptance indicator per chain (1 for a direct draw).
    """
    theta, mu, log_tau = state
    if kernel.mu_prior is not None:
        prior_mean, prior_precision = kernel.mu_prior
        precision = theta.shape[1] * np.exp(-2.0 * log_tau) + prior_precision
        mean = (theta.sum(axis=1) * np.exp(-2.0 * log_tau)
                + prior_mean * prior_precision) / precision
        mu = mean + rng.standard_normal(mu.shape) / np.sqrt(precision)
        return state._replace(mu=mu), np.ones_like(mu)
    stats = kernel.family.population_stats(theta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        current = log_normal_conditional(kernel, mu, log_tau, stats)
        proposed = mu + scale * rng.standard_normal(mu.shape)
        accept = _metropolis(rng, current, log_normal_conditional(kernel, proposed, log_tau, stats))
    return state._replace(mu=np.where(accept, proposed, mu)), accept.astype(float)


def update_tau(
    rng: np.random.Generator, kernel: NormalGibbsKernel, state: NormalGibbsState, scale: FloatArray
) -> tuple[NormalGibbsState, FloatArray]:
    """τ | θ, μ: τ² = S / χ²_ν (flat τ or τ²), else random-walk Metropolis on log τ.

    S = Σ_j (θ_j − μ)². Returns the new state and the acceptance indicator per chain.
    """
    theta, mu, log_tau = state
    if kernel.tau_df is not None:
        spread = np.square(theta - mu[:, None]).sum(axis=1)
        tau2 = spread / rng.chisquare(kernel.tau_df, size=mu.shape)
        return state._replace(log_tau=0.5 * np.log(tau2)), np.ones_like(mu)
    stats = kernel.family.population_stats(theta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        current = log_normal_conditional(kernel, mu, log_tau, stats)
        proposed = log_tau + scale * rng.standard_normal(log_tau.shape)
        accept = _metropolis(rng, current, log_normal_conditional(kernel, mu, proposed, stats))
    return state._replace(log_tau=np.where(accept, proposed, log_tau)), accept.astype(float)


def normal_gibbs_step(
    rng: np.random.Generator,
    kernel: NormalGibbsKernel,
    state: NormalGibbsState,
    scales: tuple[FloatArray, FloatArray],
) -> tuple[NormalGibbsState, StepInfo]:
    """One sweep: θ | μ, τ, y, then :data:`HYPER_STEPS` times μ | τ, θ and τ | μ, θ."""
    state = update_normal_theta(rng, kernel, state)
    accepted = np.zeros((2, state.mu.size))
    for _ in range(HYPER_STEPS):
        state, accept_mu = update_mu(rng, kernel, state, scales[0])
        state, accept_tau = update_tau(rng, kernel, state, scales[1])
        accepted += (accept_mu, accept_tau)
    return state, StepInfo(accepted[0] / HYPER_STEPS, accepted[1] / HYPER_STEPS)


def initial_normal_state(
    rng: np.random.Generator, kernel: NormalGibbsKernel, spec: ConjugateSpec, data: GroupCounts,
    chains: int,
) -> NormalGibbsState:
    """Chains dispersed around the pooled mean and the spread of the estimates.

    Each chain adds N(0, 0.5²) to log τ and N(0, (0.5 s)²) to μ, s the scale of the
    estimates (:meth:`~poolwise.families.base.RateFamily.uv_scale`); θ is then drawn from
    its conditional.
    """
    centre = starting_point(spec, data)
    scale_mu, _ = kernel.family.uv_scale(kernel.y, kernel.se)
    jitter = INIT_JITTER * rng.standard_normal((2, chains))
    mu = centre[0] + scale_mu * jitter[0]
    if kernel.mu_positive:
        mu = np.abs(mu)
    state = NormalGibbsState(np.empty((chains, data.n_groups)), mu, centre[1] + jitter[1])
    return update_normal_theta(rng, kernel, state)


def sample_gibbs_normal(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    r"""Gibbs (Metropolis where needed) for y_j ~ N(θ_j, σ_j²), θ_j ~ N(μ, τ²).

    Parameters
    ----------
    spec
        A normal-family model with ``pooling="partial"``; any hyperprior on (μ, τ).
    data
        The estimates y_j and their standard errors σ_j (in ``data.n``), J groups.
    config
        As for :func:`sample_gibbs`: ``chains`` vectorised chains, ``warmup`` discarded
        tuning sweeps, ``draws`` kept sweeps, ``seed`` for :func:`numpy.random.default_rng`.

    Returns
    -------
    Draws
        ``theta`` (chains, draws, J), ``alpha`` = μ and ``beta`` = τ (chains, draws).
        Where a Metropolis step is used, ``sample_stats`` holds the fraction of each sweep's
        proposals accepted, ``accept_alpha`` for μ and ``accept_beta`` for τ (chains,
        draws), and ``info`` the per-chain rates (``acceptance_alpha``,
        ``acceptance_beta``) and frozen proposal scales (``proposal_scale_alpha`` in the
        units of μ, ``proposal_scale_beta`` on log τ). ``info["updates"]`` names how μ and
        τ are updated.

    Notes
    -----
    The joint posterior is p(μ, τ) Π_j N(θ_j | μ, τ²) N(y_j | θ_j, σ_j²). Each sweep

    1. draws θ_j | μ, τ, y ~ N(y_j − B_j (y_j − μ), (1 − B_j) σ_j²), B_j = σ_j²/(σ_j² + τ²);
    2. updates μ | θ, τ: with a flat prior on μ it is N(θ̄, τ²/J); with μ ~ N(m, s²)

       .. math::

           μ | θ, τ \sim N\Bigl(\frac{J θ̄ / τ² + m / s²}{J/τ² + 1/s²},
                                 \frac{1}{J/τ² + 1/s²}\Bigr);

       any other prior on μ gets a random-walk Metropolis step μ' = μ + σ_μ ε;
    3. updates τ | θ, μ with S = Σ_j (θ_j − μ)², since
       p(τ | θ, μ) ∝ p(τ) τ^{−J} exp(−S / 2τ²): with a flat prior on τ (``bda``)
       τ² ~ Inv-χ²(J − 1, S/(J − 1)), i.e. τ² = S / X with X ~ χ²_{J−1}, which needs
       J ≥ 2; with a flat prior on τ² (``flat-tau2``, p(μ, τ) ∝ τ) τ² = S / X with
       X ~ χ²_{J−2}, which needs J ≥ 3 (the Model asks for more groups still, for the
       posterior to be proper). Any other prior on τ gets random-walk Metropolis on
       log τ against p(τ) Π_j N(θ_j | μ, τ²) · τ, the last factor the Jacobian;
    4. repeats steps 2-3 :data:`HYPER_STEPS` times before the next θ update.

    Metropolis scales are tuned during warm-up towards an acceptance rate of 0.44 and then
    frozen, exactly as in :func:`sample_gibbs`. This centred Gibbs sampler mixes slowly
    when the posterior puts mass near τ = 0 (eight schools): θ and τ then pin each other
    down, so run long chains and check the ESS.

    References
    ----------
    Gelman et al., *Bayesian Data Analysis*, 3rd ed., §5.4 (the normal hierarchical
    model, eight schools) and §11.6 (Gibbs sampling for it); lecture 001.

    Examples
    --------
    >>> from poolwise import Model, datasets
    >>> schools = datasets.load("eight-schools")
    >>> model = Model(family="normal", prior="bda")
    >>> data = model.prepare(schools, y="y", se="sigma", group="school")
    >>> draws = sample_gibbs_normal(model, data, SamplerConfig(draws=200, warmup=100, seed=1))
    >>> draws.theta.shape, draws.alpha.shape, draws.info["updates"]["tau"]
    ((4, 200, 8), (4, 200), 'scaled inverse chi-square, 7 degrees of freedom')
    """
    rng = generator(config.seed, Stream.FIT)
    kernel = make_normal_kernel(spec, data)
    state = initial_normal_state(rng, kernel, spec, data, config.chains)
    start = 2.4 / np.sqrt(max(data.n_groups, 1))
    scale_mu, _ = kernel.family.uv_scale(kernel.y, kernel.se)
    scales = (np.full(config.chains, start * scale_mu), np.full(config.chains, start))
    trace, accepts, scales = run_chains(rng, normal_gibbs_step, kernel, state, scales, config)
    theta, mu, log_tau = trace

    updates = {
        "mu": "random-walk Metropolis" if kernel.mu_prior is None else "normal",
        "tau": "random-walk Metropolis on log τ" if kernel.tau_df is None
        else f"scaled inverse chi-square, {kernel.tau_df} degrees of freedom",
    }
    info: dict[str, Any] = {"updates": updates}
    sample_stats: dict[str, NDArray[Any]] = {}
    for name, gibbs, accept, scale in (
        ("alpha", kernel.mu_prior is not None, accepts[0], scales[0]),
        ("beta", kernel.tau_df is not None, accepts[1], scales[1]),
    ):
        if not gibbs:
            sample_stats[f"accept_{name}"] = accept
            info[f"acceptance_{name}"] = accept.mean(axis=1).tolist()
            info[f"proposal_scale_{name}"] = scale.tolist()
            info["target_acceptance"] = TARGET_ACCEPTANCE
    return Draws(theta=theta, alpha=mu, beta=np.exp(log_tau), sample_stats=sample_stats,
                 info=info)


__all__ = [
    "GibbsKernel",
    "GibbsState",
    "NormalGibbsKernel",
    "NormalGibbsState",
    "StepInfo",
    "adapt_scale",
    "gibbs_step",
    "initial_state",
    "log_hyper_conditional",
    "log_normal_conditional",
    "make_kernel",
    "make_normal_kernel",
    "normal_gibbs_step",
    "run_chains",
    "sample_gibbs",
    "sample_gibbs_normal",
    "update_hyper",
    "update_mu",
    "update_normal_theta",
    "update_tau",
    "update_theta",
]
