"""Empirical Bayes: point estimates of (α, β), then θ_j from p(θ_j | y_j, α̂, β̂).

``eb-moments`` matches the population distribution's mean and variance to the raw rates
(the lecture's estimator); ``eb-ml`` maximises the marginal (type-II) likelihood
Π_j p(y_j | α, β) in the coordinates (u, v), with standard errors from the observed
information there. Both ignore the uncertainty in (α, β): full Bayes (``exact``) does not.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from poolwise._random import Stream, generator
from poolwise.exceptions import ConvergenceWarning, DataError
from poolwise.families.base import RateFamily
from poolwise.inference.base import (
    ConjugateSpec,
    Draws,
    EBEstimate,
    HyperLogPosterior,
    SamplerConfig,
    draws_theta,
)
from poolwise.inference.exact import starting_point
from poolwise.inference.optimize import find_mode

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts

#: how far the log concentration may move from its start before we call it a boundary
V_REACH = 25.0


def estimate_moments(spec: ConjugateSpec, data: GroupCounts) -> EBEstimate:
    _require_events(spec.family, data)
    alpha, beta = spec.family.moments_estimate(data.y, data.n)
    return EBEstimate("eb-moments", alpha, beta)


def estimate_ml(spec: ConjugateSpec, data: GroupCounts) -> EBEstimate:
    family = spec.family
    _require_events(family, data)
    y, n, w = data.compressed()
    log_lik = HyperLogPosterior(family, None, y, n, w)
    start = starting_point(spec, data)
    bounds = ((start[0] - 40.0, start[0] + 40.0), (start[1] - V_REACH, start[1] + V_REACH))
    mode = find_mode(log_lik, start, bounds)
    at_bound = mode.at_bound
    if mode.covariance is None:
        # a flat ridge towards complete pooling (e.g. τ → 0) is that boundary, reached
        probe = mode.point + np.array([0.0, 5.0 * family.pooling_direction])
        if float(log_lik(np.asarray(probe[0]), np.asarray(probe[1]))) >= mode.value - 1e-6:
            at_bound = (at_bound[0], True)
    on_boundary = any(at_bound) or mode.covariance is None
    if on_boundary:
        warnings.warn(_boundary_message(family, mode.point, start, at_bound),
                      ConvergenceWarning, stacklevel=3)
    alpha, beta = family.from_uv(mode.point[0], mode.point[1])
    return EBEstimate(
        "eb-ml",
        float(alpha),
        float(beta),
        uv_covariance=None if on_boundary else mode.covariance,
        on_boundary=on_boundary,
        log_marginal_likelihood=mode.value,
    )


def _require_events(family: RateFamily, data: GroupCounts) -> None:
    """Type-II ML has no maximum when every count is 0 (or, for binomials, every y = n)."""
    if np.all(data.y == 0) or (family.name == "beta-binomial" and np.all(data.y == data.n)):
        which = "0" if np.all(data.y == 0) else "n"
        raise DataError(
            f"every group has y = {which}, so the type-II likelihood is largest at a population "
            "mean on the edge of its range and empirical Bayes has no estimate; use "
            "--method exact with a proper hyperprior such as 'halfnormal(10)'"
        )


def _boundary_message(family: RateFamily, point: np.ndarray, start: np.ndarray,
                      at_bound: tuple[bool, bool]) -> str:
    head = "the type-II likelihood is maximised on a boundary: "
    pools = (point[1] >= start[1]) == (family.pooling_direction > 0)
    if at_bound[1] and pools:
        return (head + f"{family.uv_names[1]} runs to its limit where the population "
                "variance collapses to zero, so empirical Bayes equals complete pooling; use "
                "--method exact for a posterior that keeps the uncertainty")
    if at_bound[1]:
        return (head + f"{family.uv_names[1]} runs to its limit where the groups look "
                "unrelated, so empirical Bayes equals no pooling; use --method exact")
    if at_bound[0]:
        return (head + f"{family.uv_names[0]} runs off to an edge of its range; "
                "use --method exact with a proper hyperprior")
    return ("the type-II likelihood is flat around its maximum, so the estimates have no "
            "standard errors; use --method exact")


def _eb_draws(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig,
              eb: EBEstimate) -> Draws:
    if not draws_theta(config, data.n_groups):
        return Draws(theta=None, eb=eb)  # the fit summarises θ_j in closed form
    rng = generator(config.seed, Stream.FIT)
    theta = spec.family.sample_conditional(
        rng, np.full((config.chains * config.draws, 1), eb.alpha), eb.beta, data.y, data.n
    )
    return Draws(theta=theta.reshape(config.chains, config.draws, data.n_groups), eb=eb)


def sample_eb_moments(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(spec, data, config, estimate_moments(spec, data))


def sample_eb_ml(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(spec, data, config, estimate_ml(spec, data))
