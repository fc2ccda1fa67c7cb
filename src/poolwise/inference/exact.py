"""``exact``: independent draws from the full posterior, no Markov chain.

Partial pooling: p(u, v | y) ∝ p(α, β) |J| Π_j p(y_j | α, β) is gridded in the two
hyperparameter coordinates (:mod:`poolwise.inference.quadrature`), (u, v) are drawn from
the grid and θ_j from its conjugate conditional p(θ_j | y_j, α, β) (BDA3 §5.3, steps 1-3).
No or complete pooling: the posterior is conjugate and drawn directly.

The normal family with a hyperprior under which μ | τ is conjugate (μ flat or normal, any
prior on τ) needs only a 1-D grid, in log τ; μ and θ are then drawn from their normal
conditionals (:mod:`poolwise.inference.exact_normal`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from poolwise._random import Stream, generator
from poolwise.inference.base import (
    ConjugateSpec,
    Draws,
    HyperLogPosterior,
    SamplerConfig,
    draws_theta,
)
from poolwise.inference.exact_normal import (
    TauData,
    conjugate_split,
    sample_exact_normal,
    tau_terms,
    warn_heavy_tail,
)
from poolwise.inference.quadrature import (
    TAIL_EXPONENT,
    build_grid,
    far_tail_exponent,
    log_marginal_v,
)

#: the 2-D grid's points per axis: GRID_RESOLUTION, or fewer where a point costs many terms
#: (at most GRID_BUDGET terms in all); at the fewest, a cell is about 0.2 posterior sds
#: wide (the grid spans ±6 sds), which widens a draw's sd by under 0.2 %
GRID_RESOLUTION = 128
MIN_GRID_RESOLUTION = 64
GRID_BUDGET = 1 << 26

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts

def measured_tail(spec: ConjugateSpec, data: GroupCounts, u: NDArray, v: NDArray
                  ) -> float | None:
    """The tail exponent of p(v | y) (:func:`far_tail_exponent`) for a posterior known by
    draws of (u, v), a Markov chain's: past the largest v drawn, the rate families' density
    summed over u across the draws' range, the normal family's 1-D density of log τ (μ
    integrated out; None under a hyperprior that does not allow it)."""
    family = spec.family
    y, n, w = data.compressed()
    start = float(np.max(v))
    if family.name == "normal":
        split = conjugate_split(spec.hyperprior)
        if split is None:
            return None
        tau_data = TauData.of(y, n, w)
        return far_tail_exponent(lambda at: tau_terms(at, tau_data, *split).log_density, start)
    low, high = np.quantile(u, [0.0005, 0.9995])
    margin = 0.5 * (high - low) + 1e-6
    u_grid = np.linspace(low - margin, high + margin, 128)
    log_density = HyperLogPosterior(family, spec.hyperprior, y, n, w)
    return far_tail_exponent(log_marginal_v(log_density, u_grid), start)


__all__ = ["measured_tail", "sample_exact", "sample_grid", "starting_point"]


def starting_point(spec: ConjugateSpec, data: GroupCounts) -> np.ndarray:
    """A sensible (u, v) to start optimisers and chains from (the family decides)."""
    return spec.family.start_uv(data.y, data.n)


def sample_exact(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    rng = generator(config.seed, Stream.FIT)
    family, total = spec.family, config.chains * config.draws
    shape = (config.chains, config.draws)
    if spec.pooling != "partial":
        if not draws_theta(config, data.n_groups):
            return Draws(theta=None)  # θ's posterior is conjugate: the fit summarises it
        a0, b0 = spec.theta_prior.a, spec.theta_prior.b
        prior_a, prior_b = np.full((total, 1), a0), np.full((total, 1), b0)
        if spec.pooling == "none":
            theta = family.sample_conditional(rng, prior_a, prior_b, data.y, data.n)
        else:
            common = family.sample_conditional(rng, prior_a, prior_b,
                                               *family.pool(data.y, data.n))
            theta = np.repeat(common, data.n_groups, axis=1)
        return Draws(theta=theta.reshape(*shape, data.n_groups))
    one_dimensional = sample_exact_normal(spec, data, config, stacklevel=3)
    if one_dimensional is not None:
        return one_dimensional
    return sample_grid(spec, data, config)


def sample_grid(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    """Partial pooling by the 2-D grid in (u, v), for any family and hyperprior."""
    rng = generator(config.seed, Stream.FIT)
    family, total = spec.family, config.chains * config.draws
    shape = (config.chains, config.draws)
    y, n, w = data.compressed()
    log_density = HyperLogPosterior(family, spec.hyperprior, y, n, w)
    # as many points as GRID_BUDGET terms allow, within the limits: a point of a million
    # distinct groups costs thousands of terms, and the posterior is then narrow
    resolution = int(np.clip(np.sqrt(GRID_BUDGET / log_density.terms_per_point),
                             MIN_GRID_RESOLUTION, GRID_RESOLUTION))
    grid = build_grid(log_density, starting_point(spec, data), names=family.uv_names,
                      scale=family.uv_scale(data.y, data.n), resolution=resolution)
    exponent = far_tail_exponent(grid.log_marginal_v(log_density), float(grid.v[-1]))
    warn_heavy_tail(exponent, family.uv_names[1], stacklevel=4)
    u, v = grid.sample(rng, total)
    alpha, beta = family.from_uv(u, v)
    theta = (family.sample_conditional(rng, alpha[:, None], beta[:, None], data.y, data.n)
             .reshape(*shape, data.n_groups) if draws_theta(config, data.n_groups) else None)
    info = {"grid_points": int(grid.log_density.size),
            "grid_box": [float(grid.u[0]), float(grid.u[-1]), float(grid.v[0]), float(grid.v[-1])],
            TAIL_EXPONENT: exponent}
    return Draws(
        theta=theta,
        alpha=alpha.reshape(shape),
        beta=beta.reshape(shape),
        info=info,
    )
