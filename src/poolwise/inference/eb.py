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

from poolwise.exceptions import ConvergenceWarning, DataError
from poolwise.inference.base import Draws, EBEstimate, SamplerConfig, hyper_log_posterior
from poolwise.inference.exact import starting_point
from poolwise.inference.optimize import find_mode

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts
    from poolwise.model import Model

#: how far the log concentration may move from its start before we call it a boundary
V_REACH = 25.0


def estimate_moments(model: Model, data: GroupCounts) -> EBEstimate:
    alpha, beta = model.family.moments_estimate(model.family.raw_rate(data.y, data.n))
    return EBEstimate("eb-moments", alpha, beta)


def estimate_ml(model: Model, data: GroupCounts) -> EBEstimate:
    family = model.family
    y, n, w = data.compressed()
    log_lik = hyper_log_posterior(family, None, y, n, w)
    start = starting_point(model, data)
    try:
        moments = estimate_moments(model, data)
        start = np.array(family.to_uv(moments.alpha, moments.beta), dtype=float)
    except DataError:
        pass
    bounds = ((start[0] - 40.0, start[0] + 40.0), (start[1] - V_REACH, start[1] + V_REACH))
    mode = find_mode(log_lik, start, bounds)
    alpha, beta = family.from_uv(mode.point[0], mode.point[1])
    on_boundary = any(mode.at_bound) or mode.covariance is None
    if on_boundary:
        direction = "infinite" if mode.point[1] > start[1] else "zero"
        warnings.warn(
            f"the type-II likelihood is maximised on a boundary: the concentration "
            f"{family.uv_names[1]} runs to {direction} "
            + (
                "(the population variance collapses to zero), so empirical Bayes equals "
                "complete pooling; use --method exact for a posterior that keeps the "
                "uncertainty"
                if direction == "infinite"
                else "(the groups look unrelated); use --method exact"
            ),
            ConvergenceWarning,
            stacklevel=3,
        )
    return EBEstimate(
        "eb-ml",
        float(alpha),
        float(beta),
        uv_covariance=None if on_boundary else mode.covariance,
        on_boundary=on_boundary,
        log_marginal_likelihood=mode.value,
    )


def _eb_draws(model: Model, data: GroupCounts, config: SamplerConfig, eb: EBEstimate) -> Draws:
    rng = np.random.default_rng(config.seed)
    theta = model.family.sample_conditional(
        rng, np.full((config.chains * config.draws, 1), eb.alpha), eb.beta, data.y, data.n
    )
    return Draws(theta=theta.reshape(config.chains, config.draws, data.n_groups), eb=eb)


def sample_eb_moments(model: Model, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(model, data, config, estimate_moments(model, data))


def sample_eb_ml(model: Model, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(model, data, config, estimate_ml(model, data))
