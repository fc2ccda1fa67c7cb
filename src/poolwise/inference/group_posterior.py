"""Each group's posterior from the hyperparameter draws, without a draws × groups matrix.

Given draws φ_s = (α_s, β_s), s = 1..S, of the hyperparameters, θ_j's posterior is the
mixture of its conjugate conditionals,

    p(θ_j | y) ≈ (1/S) Σ_s p(θ_j | y_j, n_j, φ_s),

so its summaries need only the conditionals' closed forms (Gelfand & Smith 1990's
Rao-Blackwellisation):

    E[θ_j | y]   ≈ (1/K) Σ_k m_j(φ_k),        m_j, v_j the conditional mean and variance,
    Var[θ_j | y] ≈ (1/K) Σ_k (v_j(φ_k) + m_j(φ_k)²) − E[θ_j | y]²,

and a quantile t of level p solves the mixture's F_j(t) = (1/K) Σ_k F_j(t | φ_k) = p, found
by Newton's method from the quantile of the conditional family's distribution with the same
mean and variance. Their Monte Carlo errors come from the spread over the K draws used:
sd_k(m_j(φ_k))/√K for the mean, the delta method for the sd, and
sd_k(F_j(t | φ_k)) / (√K f_j(t)) for a quantile.

The work depends on a group only through its statistics (y_j, n_j), so it is done once per
distinct pair, in chunks, on every core — or, for a fit whose rows a Dask cluster reduced
(:func:`~poolwise._threads.on_cluster`) with at least :data:`CLUSTER_PAIRS` distinct pairs,
as tasks of :data:`CLUSTER_BLOCK_ELEMENTS` on that cluster, fetched one at a time. K is
all S draws while (distinct pairs × S) is small and a subset of evenly spaced draws above
(at least :data:`MIN_MEAN_DRAWS` for the moments, :data:`MIN_QUANTILE_DRAWS` for the
quantiles, whose special functions cost more): with many groups the hyperparameters are
well determined, the conditionals barely differ between draws, and the Monte Carlo errors,
which are reported, stay small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from poolwise._threads import cluster_scheduler, map_on_cluster, run_blocks
from poolwise.families.base import RateFamily

__all__ = ["GroupSummary", "distinct_pairs", "summarise_groups"]

FloatArray = NDArray[np.float64]

#: conditional moments evaluated (distinct pairs × draws) before draws are subsampled
MEAN_BUDGET = 1 << 25
#: conditional CDFs evaluated per quantile (distinct pairs × draws) before subsampling:
#: at 3,000 distinct pairs, 175 of 4,000 draws put an interval end's Monte Carlo error
#: near 0.002 sd, some 20 times below that of the sample quantile of 4,000 draws of θ
QUANTILE_BUDGET = 1 << 19
MIN_MEAN_DRAWS = 32
MIN_QUANTILE_DRAWS = 16
#: elements of one (draws × pairs) block
BLOCK_ELEMENTS = 1 << 20
#: with a cluster at hand (on_cluster), this many distinct pairs or more are summarised
#: there: below, sending the blocks costs more than the cores here take
CLUSTER_PAIRS = 1_000_000
#: elements of one (draws × pairs) task sent to a cluster (the task's arrays ~ 10× this),
#: and at most this many pairs a task (2 MB of data sent; empirical Bayes has one draw)
CLUSTER_BLOCK_ELEMENTS = 1 << 22
CLUSTER_BLOCK_PAIRS = 1 << 17
#: Newton stops once every step is below this fraction of the group's posterior sd
NEWTON_TOLERANCE = 1e-3
NEWTON_STEPS = 30
#: conditional means spread (sd over draws) by less than this fraction of the posterior sd
#: make the mixture the family's distribution with the same mean and variance
SPREAD_FOR_MIXTURE = 0.01


#: the per-group arrays of a :class:`GroupSummary`
ARRAYS = ("mean", "sd", "lower", "upper", "pooling_factor", "mcse_mean", "mcse_sd",
          "mcse_lower", "mcse_upper")


@dataclass(frozen=True)
class GroupSummary:
    """Per-group posterior summaries of θ_j (arrays over groups) and their Monte Carlo
    errors; ``draws_moments`` and ``draws_quantiles`` say how many hyperparameter draws
    each was averaged over."""

    ci_prob: float
    mean: FloatArray
    sd: FloatArray
    lower: FloatArray
    upper: FloatArray
    pooling_factor: FloatArray
    mcse_mean: FloatArray
    mcse_sd: FloatArray
    mcse_lower: FloatArray
    mcse_upper: FloatArray
    draws_moments: int
    draws_quantiles: int

    def variables(self) -> dict[str, FloatArray]:
        """The per-group arrays by name (how a fit stores them)."""
        return {name: getattr(self, name) for name in ARRAYS}

    def attributes(self) -> dict[str, float | int]:
        """The scalars (how a fit stores them beside :meth:`variables`)."""
        return {"ci_prob": self.ci_prob, "draws_moments": self.draws_moments,
                "draws_quantiles": self.draws_quantiles}

    @classmethod
    def from_stored(cls, variables: Mapping[str, Any], attributes: Mapping[str, Any]
                    ) -> GroupSummary:
        """The summary :meth:`variables` and :meth:`attributes` stored."""
        return cls(ci_prob=float(attributes["ci_prob"]),
                   draws_moments=int(attributes["draws_moments"]),
                   draws_quantiles=int(attributes["draws_quantiles"]),
                   **{name: np.asarray(variables[name], dtype=float) for name in ARRAYS})

    def largest_errors(self) -> dict[str, float]:
        """The largest Monte Carlo error of each kind of figure, over the groups."""
        return {name: float(np.max(values, initial=0.0)) for name, values in
                (("mean", self.mcse_mean), ("sd", self.mcse_sd),
                 ("interval", np.maximum(self.mcse_lower, self.mcse_upper)))}


def distinct_pairs(y: FloatArray, n: FloatArray
                   ) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """The distinct (y, n) pairs and, for each group, the index of its pair."""
    codes, uniques = pd.factorize(np.asarray(y, dtype=float) + 1j * np.asarray(n, dtype=float))
    return uniques.real.copy(), uniques.imag.copy(), np.asarray(codes)


def summarise_groups(family: RateFamily, alpha: FloatArray, beta: FloatArray,
                     y: FloatArray, n: FloatArray, ci_prob: float,
                     threads: int | None = None) -> GroupSummary:
    """Summaries of every θ_j from the draws ``alpha``, ``beta`` (1-D, length S; length 1
    for fixed empirical-Bayes estimates, which makes every figure exact)."""
    alpha, beta = np.ravel(alpha).astype(float), np.ravel(beta).astype(float)
    y_d, n_d, which = distinct_pairs(np.asarray(y, dtype=float), np.asarray(n, dtype=float))
    draws = alpha.size
    k_moments = min(draws, max(MIN_MEAN_DRAWS, MEAN_BUDGET // max(y_d.size, 1)))
    k_quantiles = min(k_moments, max(MIN_QUANTILE_DRAWS, QUANTILE_BUDGET // max(y_d.size, 1)))
    chosen = _evenly_spaced(draws, k_moments)
    a_k, b_k = alpha[chosen], beta[chosen]
    # the quantiles' draws: evenly spaced among the moments' draws
    q_index = _evenly_spaced(k_moments, k_quantiles)
    tail = (1.0 - ci_prob) / 2.0

    out = {name: np.empty(y_d.size) for name in ARRAYS}
    levels = (tail, 1.0 - tail)
    if cluster_scheduler() is not None and y_d.size >= CLUSTER_PAIRS:
        step = max(1, min(CLUSTER_BLOCK_ELEMENTS // k_moments, CLUSTER_BLOCK_PAIRS))
        parts = [slice(start, min(start + step, y_d.size))
                 for start in range(0, y_d.size, step)]
        blocks = [(family, a_k, b_k, q_index, y_d[part], n_d[part], levels) for part in parts]
        for k, values in map_on_cluster(_summarise_block, blocks):
            for name, array in values.items():
                out[name][parts[k]] = array
    else:
        step = max(1, BLOCK_ELEMENTS // k_moments)

        def block(start: int) -> None:
            part = slice(start, min(start + step, y_d.size))
            values = _summarise_block(family, a_k, b_k, q_index, y_d[part], n_d[part], levels)
            for name, array in values.items():
                out[name][part] = array

        run_blocks(block, range(0, y_d.size, step), threads)
    per_group = {name: values[which] for name, values in out.items()}
    return GroupSummary(ci_prob=ci_prob, draws_moments=k_moments, draws_quantiles=k_quantiles,
                        **per_group)


def _evenly_spaced(total: int, size: int) -> NDArray[np.intp]:
    """``size`` indices spread evenly over range(total) (all of them when size = total)."""
    if size >= total:
        return np.arange(total)
    return np.floor(np.arange(size) * (total / size)).astype(np.intp)


def _summarise_block(family: RateFamily, alpha: FloatArray, beta: FloatArray,
                     q_index: NDArray[np.intp], y: FloatArray, n: FloatArray,
                     levels: tuple[float, float]) -> dict[str, FloatArray]:
    """The summaries of one block of distinct pairs (module docstring)."""
    draws = alpha.size
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = family.conjugate_update(alpha[:, None], beta[:, None], y, n)
        m, v = family.population_moments(a, b)
        mean = m.mean(axis=0)
        variance = np.maximum((v + m**2).mean(axis=0) - mean**2, 0.0)
        sd = np.sqrt(variance)
        factor = np.asarray(family.pooling_factor(alpha[:, None], beta[:, None], n)).mean(axis=0)
        spread = m.std(axis=0, ddof=1) if draws > 1 else np.zeros_like(mean)
        mcse_mean = spread / np.sqrt(draws)
        # Var = E[v + m²] − mean²: each draw's influence on it is v + m² − 2 mean m
        influence = v + m**2 - 2.0 * mean * m
        mcse_sd = (np.where(sd > 0, influence.std(axis=0, ddof=1) / (2.0 * sd), 0.0)
                   / np.sqrt(draws) if draws > 1 else np.zeros_like(mean))
        matched = family.population_from_moments(mean, variance)
    # where the conditionals barely differ between draws, the mixture is the family's
    # distribution with its mean and variance (to O(spread²)), its quantiles shifted alike
    mixed = np.flatnonzero(spread >= SPREAD_FOR_MIXTURE * sd)
    ends = []
    for level in levels:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = family.population_quantile(*matched, level)
        error = mcse_mean.copy()
        if mixed.size:
            cells = np.ix_(q_index, mixed)
            t[mixed], error[mixed] = _mixture_quantile(family, a[cells], b[cells], level,
                                                       t[mixed], sd[mixed])
        ends.append((t, error))
    return {"mean": mean, "sd": sd, "lower": ends[0][0], "upper": ends[1][0],
            "pooling_factor": factor, "mcse_mean": mcse_mean, "mcse_sd": mcse_sd,
            "mcse_lower": ends[0][1], "mcse_upper": ends[1][1]}


def _mixture_quantile(family: RateFamily, a: FloatArray, b: FloatArray, level: float,
                      start: FloatArray, scale: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The ``level`` quantile of each column's mixture (1/K) Σ_k Pop(a_k, b_k), and its Monte
    Carlo error.

    Newton's method on F(t) − level from ``start`` (the quantile of the family's distribution
    with the mixture's mean and variance), stopping once a step is below
    :data:`NEWTON_TOLERANCE` × ``scale`` (the posterior sd; Newton's error after such a step
    is of order step²/sd); a step that leaves the bracket of points known to lie below and
    above the quantile is replaced by bisection.
    """
    components = a.shape[0]
    t = start.copy()
    low = np.full_like(t, -np.inf)
    high = np.full_like(t, np.inf)
    error = np.zeros_like(t)
    active = np.flatnonzero(np.isfinite(t) & (scale > 0))
    for _ in range(NEWTON_STEPS):
        if active.size == 0:
            break
        dist = family.population(a[:, active], b[:, active])
        cdf = np.asarray(dist.cdf(t[active]), dtype=float)
        density = np.asarray(dist.pdf(t[active]), dtype=float).mean(axis=0)
        below = cdf.mean(axis=0) - level
        low[active] = np.where(below < 0, t[active], low[active])
        high[active] = np.where(below >= 0, t[active], high[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            error[active] = cdf.std(axis=0, ddof=1) / np.sqrt(components) / density
            step = below / density
            proposal = t[active] - step
        outside = ~((proposal > low[active]) & (proposal < high[active]))
        bracketed = np.isfinite(low[active]) & np.isfinite(high[active])
        proposal = np.where(outside & bracketed, 0.5 * (low[active] + high[active]), proposal)
        # unbracketed and outside (or no density there): at most one sd towards the quantile
        jump = np.where(np.isfinite(step), np.clip(-step, -scale[active], scale[active]),
                        -np.sign(below) * scale[active])
        proposal = np.where(outside & ~bracketed, t[active] + jump, proposal)
        moved = np.abs(proposal - t[active])
        t[active] = proposal
        active = active[moved > NEWTON_TOLERANCE * scale[active]]
    return t, error
