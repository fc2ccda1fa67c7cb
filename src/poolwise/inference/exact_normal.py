"""``exact`` for the normal family: τ by 1-D quadrature, then μ | τ and θ | μ, τ exactly.

Model: y_j ~ N(θ_j, σ_j²) with σ_j known, θ_j ~ N(μ, τ²), and a hyperprior under which
μ | τ is conjugate: μ flat or μ ~ N(m, s²), with any prior on τ. Integrating out θ and then
μ leaves the one-dimensional marginal posterior of τ (BDA3 §5.4, eqs. 5.20-5.21):

    V_μ(τ) = 1 / (w₀ + Σ_j w_j),   μ̂(τ) = V_μ (w₀ m + Σ_j w_j y_j),   w_j = 1 / (σ_j² + τ²),

    log p(τ | y) = log p(τ) + ½ log V_μ − ½ Σ_j log(σ_j² + τ²)
                   − ½ Σ_j w_j (y_j − μ̂)² − ½ w₀ (m − μ̂)²  + const,

with w₀ = 1/s² for μ ~ N(m, s²) and w₀ = 0 for a flat μ. This is log p(τ) + log ∫ p(μ)
Π_j N(y_j | μ, σ_j² + τ²) dμ: the prior of μ acts as one more observation m with variance
s² that does not depend on τ.

The density of v = log τ (Jacobian τ) is evaluated on a regular grid whose bounds grow
until both ends are negligible, draws of v pick a cell in proportion to its mass and a
point uniformly inside it, and then μ | τ, y ~ N(μ̂(τ), V_μ(τ)) and θ_j | μ, τ, y_j ~
N(y_j − B_j (y_j − μ), (1 − B_j) σ_j²) with B_j = σ_j² / (σ_j² + τ²) (lecture 001,
"τ² → μ → θ"). Every draw is independent. Cost: one pass over the groups per grid point,
and one normal per group and draw.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from poolwise._random import Stream, generator
from poolwise._threads import run_blocks
from poolwise.exceptions import ImproperPosteriorError, PosteriorWarning
from poolwise.families.normal_normal import NormalTerms
from poolwise.inference.base import ConjugateSpec, Draws, SamplerConfig, draws_theta
from poolwise.inference.quadrature import (
    EDGE_DROP,
    MAX_REACH,
    TAIL_EXPONENT,
    far_tail_exponent,
    finite_moments,
)
from poolwise.priors import HyperPrior, IndependentPrior, ReferencePrior, UniformVariancePrior

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts

FloatArray = NDArray[np.float64]
LogTauPrior = Callable[[FloatArray], FloatArray]

#: points of the coarse grid used to find the bounds
COARSE = 64
#: points of the grid the draws come from: as many as fit in about 4M point × group
#: evaluations, within these limits
RESOLUTION = 4096
MIN_RESOLUTION = 256
#: log density below the peak at which the grid ends (past the 1e-9 the tail fit reads)
TAIL_DROP = 25.0
#: grid points × groups evaluated at once
CHUNK_ELEMENTS = 1 << 20

#: draws × groups above which μ̂(τ) and V_μ(τ) are interpolated from the grid (error far
#: below the Monte Carlo error there) instead of computed at every draw
INTERPOLATE_ABOVE = 1 << 22
#: elements of θ drawn per block (blocks are seeded by their index, so the draws do not
#: depend on how many threads run)
THETA_BLOCK = 1 << 18


class MuPrior(NamedTuple):
    """μ ~ N(mean, variance), or flat when ``variance`` is infinite."""

    mean: float
    variance: float

    @property
    def precision(self) -> float:
        return 0.0 if math.isinf(self.variance) else 1.0 / self.variance


FLAT_MU = MuPrior(0.0, math.inf)


def conjugate_split(prior: HyperPrior | None) -> tuple[MuPrior, LogTauPrior] | None:
    """The prior of μ and the log prior density of τ, when μ | τ is conjugate; else None.

    ``bda``: p(μ, τ) ∝ 1; ``flat-tau2``: p(μ, τ) ∝ τ; ``mu=flat`` or ``mu=normal(m, s)``
    with any prior on τ.
    """
    if isinstance(prior, ReferencePrior):
        return FLAT_MU, lambda tau: np.zeros_like(tau)
    if isinstance(prior, UniformVariancePrior):
        return FLAT_MU, np.log
    if isinstance(prior, IndependentPrior):
        tau_prior = prior.beta

        def log_tau(tau: FloatArray) -> FloatArray:
            return np.asarray(tau_prior.log_density(tau), dtype=float)

        if prior.alpha.name == "flat":
            return FLAT_MU, log_tau
        if prior.alpha.name == "normal":
            m, s = prior.alpha.params
            return MuPrior(float(m), float(s) ** 2), log_tau
    return None


class TauTerms(NamedTuple):
    """At each v = log τ: log p(v | y) up to a constant, μ̂(τ) and V_μ(τ)."""

    log_density: FloatArray
    mu_hat: FloatArray
    mu_var: FloatArray


#: the data as :func:`tau_terms` reads them: y's weighted mean ``centre`` and the sums of
#: the counts c_j, c_j (y_j − centre) and c_j (y_j − centre)² over σ_j² + τ² (the normal
#: family's reduced terms, which its type-II likelihood reads too)
TauData = NormalTerms


def tau_terms(
    v: FloatArray,
    data: TauData,
    mu_prior: MuPrior,
    log_tau_prior: LogTauPrior,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> TauTerms:
    """The marginal posterior of v = log τ and the moments of μ | τ, y (module docstring).

    Vectorised over ``v`` (1-D); points are processed in chunks of ``chunk_elements``
    points × groups (or bins of σ²), the chunks over the cores.
    """
    v = np.asarray(v, dtype=float)
    centre, sums = data
    w0, m = mu_prior.precision, mu_prior.mean - centre
    log_density, mu_hat, mu_var = (np.empty(v.size) for _ in range(3))
    step = max(1, chunk_elements // sums.size)

    def chunk(start: int) -> None:
        part = slice(start, start + step)
        with np.errstate(all="ignore"):
            log_sums, weighted = sums.at(np.exp(2.0 * v[part]))
            log_det = log_sums[:, 0]
            weight, weight_y, weight_y2 = weighted.T
            precision = w0 + weight
            mean = (w0 * m + weight_y) / precision
            quad = (weight_y2 - 2.0 * mean * weight_y + mean * mean * weight
                    + w0 * (m - mean) ** 2)
            log_density[part] = -0.5 * (np.log(precision) + log_det + quad)
            mu_hat[part], mu_var[part] = mean + centre, 1.0 / precision

    run_blocks(chunk, range(0, v.size, step))
    with np.errstate(all="ignore"):
        log_density += log_tau_prior(np.exp(v)) + v  # the prior of τ and the Jacobian τ
    log_density[~np.isfinite(log_density)] = -np.inf
    return TauTerms(log_density, mu_hat, mu_var)


@dataclass(frozen=True)
class TauGrid:
    """p(v | y) at the centres of a regular grid in v = log τ, with μ̂ and V_μ there."""

    v: FloatArray
    terms: TauTerms

    @property
    def width(self) -> float:
        return float(self.v[1] - self.v[0])

    @property
    def probabilities(self) -> FloatArray:
        p = np.exp(self.terms.log_density - np.max(self.terms.log_density))
        return np.asarray(p / p.sum(), dtype=float)

    def sample_v(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Independent draws of v: a cell by its mass, then uniformly inside it."""
        cells = rng.choice(self.v.size, size=size, p=self.probabilities)
        return np.asarray(self.v[cells] + self.width * (rng.random(size) - 0.5), dtype=float)


def build_tau_grid(
    evaluate: Callable[[FloatArray], TauTerms],
    start: float,
    *,
    resolution: int = RESOLUTION,
) -> TauGrid:
    """Grid p(v | y) around ``start`` and refine it where the density is not negligible.

    Each end of a coarse grid moves out until the density there is ``TAIL_DROP`` below the
    peak. An end that reaches ``MAX_REACH`` from ``start`` while still within ``EDGE_DROP``
    of the peak means the density does not fall off, which is what an improper posterior
    does: :class:`~poolwise.exceptions.ImproperPosteriorError`. The box is then narrowed
    to the cells within ``TAIL_DROP`` of the peak (zooming in while they are few, so a
    sharp peak is resolved) and evaluated at ``resolution`` cell centres.
    """
    lo, hi = start - 4.0, start + 4.0
    reach = (start - MAX_REACH, start + MAX_REACH)
    for _ in range(100):
        v = np.linspace(lo, hi, COARSE)
        values = evaluate(v).log_density
        top = float(np.max(values))
        if not np.isfinite(top):
            raise ImproperPosteriorError(
                "the posterior density of τ is zero or undefined; check the prior")
        peak = int(np.argmax(values))
        grown = False
        for side, edge_value, at_peak in ((0, values[0], peak == 0),
                                          (1, values[-1], peak == COARSE - 1)):
            if edge_value <= top - TAIL_DROP and not at_peak:
                continue
            if (hi if side else lo) == reach[side]:
                if at_peak or edge_value > top - EDGE_DROP:
                    direction = "large" if side else "small"
                    raise ImproperPosteriorError(
                        f"the posterior of log τ does not fall off as τ grows {direction}: "
                        "the hyperprior gives an improper posterior for these data; use a "
                        "proper prior on τ, e.g. 'mu=normal(0, 10), tau=halfcauchy(5)'")
                continue  # a long tail, but it has fallen enough to be cut here
            width, grown = hi - lo, True
            if side:
                hi = min(hi + width, reach[1])
            else:
                lo = max(lo - width, reach[0])
        if not grown:
            break
    else:  # pragma: no cover - the reach limits stop the loop first
        raise ImproperPosteriorError("could not bound the posterior of τ")

    for _ in range(30):
        keep = np.flatnonzero(values > top - TAIL_DROP)
        lo, hi = v[max(keep[0] - 1, 0)], v[min(keep[-1] + 1, COARSE - 1)]
        if keep.size >= COARSE // 4:
            break
        v = np.linspace(lo, hi, COARSE)
        values = evaluate(v).log_density
        top = float(np.max(values))
    edges = np.linspace(lo, hi, resolution + 1)
    mid = 0.5 * (edges[1:] + edges[:-1])
    return TauGrid(mid, evaluate(mid))


def sample_theta(
    seed: np.random.SeedSequence,
    mu: FloatArray,
    tau: FloatArray,
    y: FloatArray,
    se: FloatArray,
) -> FloatArray:
    """θ_j ~ N(y_j − B_j (y_j − μ), (1 − B_j) σ_j²), B_j = σ_j² / (σ_j² + τ²), for each draw.

    Shape (draws, groups). The same law as ``NormalNormal.sample_conditional``, computed in
    cache-sized blocks of draws (in threads, each block with its own stream spawned from
    ``seed``), which matters when draws × groups runs to tens of millions.
    """
    y, se = np.asarray(y, dtype=float), np.asarray(se, dtype=float)
    s2 = np.square(se)
    out = np.empty((mu.size, y.size))
    rows = max(1, THETA_BLOCK // max(y.size, 1))
    starts = list(range(0, mu.size, rows))
    streams = seed.spawn(len(starts))

    def block(i: int) -> None:
        part = slice(starts[i], starts[i] + rows)
        tau2 = np.square(tau[part])[:, None]
        total = tau2 + s2
        shrink = np.divide(s2, total)  # B_j
        mean = y + shrink * (mu[part, None] - y)
        sd = np.sqrt(np.multiply(1.0 - shrink, s2, out=shrink), out=shrink)
        draws = np.random.default_rng(streams[i]).standard_normal(mean.shape)
        out[part] = mean + sd * draws

    run_blocks(block, range(len(starts)))
    return out


def warn_heavy_tail(exponent: float | None, name: str, stacklevel: int) -> None:
    """PosteriorWarning when p(v) ∝ e^(−c v) far out has c ≤ 2 (:func:`finite_moments`):
    then e^v, and what grows with it, has no finite variance (c ≤ 1: no finite mean)."""
    moments = finite_moments(exponent)
    if moments == 2:
        return
    missing = "no finite posterior mean or sd" if moments == 0 else \
        "a posterior mean but no finite sd"
    left_out = "means and sds" if moments == 0 else "sds"
    warnings.warn(
        f"the posterior of v = {name} has a heavy upper tail (density ∝ exp(−{exponent:.2f} v) "
        f"far out), so e^v and the hyperparameters that grow with it have {missing}: the "
        f"summary leaves those {left_out} out (—); read their medians and intervals",
        PosteriorWarning,
        stacklevel=stacklevel + 1,
    )


def sample_exact_normal(
    spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig, *, stacklevel: int = 2
) -> Draws | None:
    """Independent draws τ → μ → θ for the normal family, or None when μ | τ is not
    conjugate under the model's hyperprior (the caller then grids (μ, log τ) in 2-D)."""
    split = conjugate_split(spec.hyperprior)
    if spec.family.name != "normal" or spec.pooling != "partial" or split is None:
        return None
    mu_prior, log_tau_prior = split
    rng = generator(config.seed, Stream.FIT)
    total, shape = config.chains * config.draws, (config.chains, config.draws)
    y, se, counts = data.compressed()

    tau_data = TauData.of(y, se, counts)

    def evaluate(v: FloatArray) -> TauTerms:
        return tau_terms(v, tau_data, mu_prior, log_tau_prior)

    start = float(spec.family.start_uv(data.y, data.n)[1])
    resolution = int(np.clip((1 << 22) // max(y.size, 1), MIN_RESOLUTION, RESOLUTION))
    grid = build_tau_grid(evaluate, start, resolution=resolution)
    exponent = far_tail_exponent(lambda v: evaluate(v).log_density, float(grid.v[-1]))
    warn_heavy_tail(exponent, spec.family.uv_names[1], stacklevel + 1)

    v = grid.sample_v(rng, total)
    if total * y.size <= INTERPOLATE_ABOVE:
        moments = evaluate(v)
        mu_hat, mu_var = moments.mu_hat, moments.mu_var
    else:
        mu_hat = np.interp(v, grid.v, grid.terms.mu_hat)
        mu_var = np.exp(np.interp(v, grid.v, np.log(grid.terms.mu_var)))
    tau = np.exp(v)
    mu = mu_hat + np.sqrt(mu_var) * rng.standard_normal(total)
    seed = np.random.SeedSequence(int(rng.integers(2**63)))
    theta = (sample_theta(seed, mu, tau, data.y, data.n).reshape(*shape, data.n_groups)
             if draws_theta(config, data.n_groups) else None)
    info = {"grid_points": int(grid.v.size), "grid_box": [float(grid.v[0]), float(grid.v[-1])],
            "integration": "1-D in log τ", TAIL_EXPONENT: exponent}
    return Draws(theta=theta, alpha=mu.reshape(shape),
                 beta=tau.reshape(shape), info=info)


__all__ = [
    "MuPrior",
    "TauData",
    "TauGrid",
    "TauTerms",
    "build_tau_grid",
    "conjugate_split",
    "sample_exact_normal",
    "sample_theta",
    "tau_terms",
]
