"""Empirical Bayes: point estimates of (α, β), then θ_j from p(θ_j | y_j, α̂, β̂).

``eb-moments`` matches the population distribution's mean and variance to the raw rates
(the lecture's estimator); ``eb-ml`` maximises the marginal (type-II) likelihood
Π_j p(y_j | α, β) in the coordinates (u, v), with standard errors from the observed
information there; ``eb-js`` is James–Stein's estimator (normal family, one known standard
error for every group). θ_j's draws and summaries include the estimates' uncertainty
(Kass–Steffey, :func:`corrected_hyperparameters`, :mod:`poolwise.inference.eb_intervals`)
unless ``eb_intervals="plug-in"``; the estimates themselves are points: full Bayes
(``exact``) gives (α, β) a posterior.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from poolwise._random import Stream, generator
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.base import RateFamily
from poolwise.inference.base import (
    ConjugateSpec,
    Draws,
    EBEstimate,
    HyperLogPosterior,
    SamplerConfig,
    draws_theta,
)
from poolwise.inference.eb_intervals import (
    PLUG_IN,
    Correction,
    hyperparameter_draws,
    interval_note,
    too_many_groups,
    uncorrected_warning,
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


def estimate_james_stein(spec: ConjugateSpec, data: GroupCounts) -> EBEstimate:
    """The positive-part James–Stein estimator (James and Stein 1961; Efron and Morris 1975,
    JASA 70:311-319) of k ≥ 4 normal estimates y_j with one known standard error σ:

        θ̂_j = ȳ + c (y_j − ȳ),   c = max(0, 1 − (k − 3) σ² / S),   S = Σ_j (y_j − ȳ)²,

    which is the posterior mean of θ_j under θ_j ~ N(μ, τ²) at μ̂ = ȳ and
    τ̂² = σ² c / (1 − c) = max(0, S/(k − 3) − σ²) (the shrinkage factor c = τ²/(σ² + τ²)).
    ``c`` = 0 (S ≤ (k − 3)σ²) shrinks every group to ȳ: complete pooling, on the boundary.
    """
    if spec.family.name != "normal":
        raise SpecificationError(
            f"eb-js (James–Stein) shrinks normal estimates with a known standard error; the "
            f"{spec.family.name} family has none: use --method eb-ml or eb-moments")
    y, se = np.asarray(data.y, dtype=float), np.asarray(data.n, dtype=float)
    check_james_stein(se)
    k = y.size
    sigma2 = float(np.mean(se)) ** 2
    spread = float(np.sum((y - y.mean()) ** 2))
    tau2 = max(0.0, spread / (k - 3) - sigma2)
    if tau2 == 0.0:
        warnings.warn(
            "James–Stein's factor c = 1 − (k − 3)σ²/S is at most 0 for these data, so every "
            "group is shrunk to the mean (complete pooling); use --method exact for a "
            "posterior that keeps the uncertainty", ConvergenceWarning, stacklevel=3)
    return EBEstimate("eb-js", float(y.mean()), float(np.sqrt(tau2)), on_boundary=tau2 == 0.0)


def check_james_stein(se: NDArray) -> None:
    """James–Stein's data: at least 4 groups (its factor has k − 3) and one standard error."""
    if se.size < 4:
        raise DataError(f"James–Stein needs at least 4 groups (its factor has k − 3); there "
                        f"are {se.size}: use --method exact")
    if np.ptp(se) > 1e-9 * np.max(se):
        raise DataError(
            f"James–Stein needs one standard error for every group; the standard errors run "
            f"from {np.min(se):.4g} to {np.max(se):.4g}: use --method eb-ml, which weighs "
            "each group by its own")


def james_stein_factor(estimate: EBEstimate, se: float) -> float:
    """c = τ̂² / (σ² + τ̂²): the fraction of each y_j − ȳ that James–Stein keeps."""
    return estimate.beta**2 / (se**2 + estimate.beta**2)


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


def _signed_scale_power(family: RateFamily) -> float:
    """c of the scale s = e^(c v) that vanishes at complete pooling, about the population's
    sd at a fixed mean: τ = e^v for a spread (normal), 1/√κ = e^(−v/2) for a
    concentration (the rates' α + β or α)."""
    return 1.0 if family.pooling_direction < 0 else -0.5


def _signed_likelihood(family: RateFamily, data: GroupCounts
                       ) -> tuple[Callable[[NDArray], NDArray], float]:
    """The type-II log likelihood at points (u, s), s = e^(c v) the signed scale, and c."""
    y, n, w = data.compressed()
    log_lik = HyperLogPosterior(family, None, y, n, w)
    power = _signed_scale_power(family)

    def signed(points: NDArray) -> NDArray:
        with np.errstate(divide="ignore"):
            v = np.log(np.maximum(np.abs(points[:, 1]), 1e-300)) / power
        return np.asarray(log_lik(points[:, 0], v), dtype=float)

    return signed, power


def corrected_hyperparameters(family: RateFamily, eb: EBEstimate, data: GroupCounts,
                              size: int, seed: int, plug_in: bool = False
                              ) -> tuple[tuple[NDArray, NDArray] | None, Correction | None]:
    """``size`` draws of (α, β) for the Kass–Steffey correction
    (:func:`~poolwise.inference.eb_intervals.hyperparameter_draws` in (u, s), s folded;
    from the normalised likelihood for eb-ml, around the estimate for the others),
    from the stream ``[seed, HYPERPARAMETERS]``: the same draws wherever they are asked for
    (the draws of θ, the closed-form summaries, a loaded fit); None where the intervals
    are plug-in (``plug_in``, or too many groups) with the correction's problem if any."""
    if plug_in or too_many_groups(data.n_groups) is not None:
        return None, None
    signed, power = _signed_likelihood(family, data)
    u, v = family.to_uv(eb.alpha, eb.beta)
    point = np.array([float(u), float(np.exp(power * float(v)))])
    correction = hyperparameter_draws(signed, point, size,
                                      generator(seed, Stream.HYPERPARAMETERS), folded=(1,),
                                      weighted=eb.method == "eb-ml")
    if correction.draws is None:
        return None, correction
    with np.errstate(divide="ignore", over="ignore"):
        v_draws = np.log(np.maximum(correction.draws[:, 1], 1e-300)) / power
        alpha, beta = family.from_uv(correction.draws[:, 0], v_draws)
    return (np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)), correction


def _eb_draws(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig,
              eb: EBEstimate) -> Draws:
    """θ's draws given the estimates (plug-in) or given each draw of the hyperparameters
    (Kass–Steffey, ``config.eb_intervals``), and the estimates with their intervals' label
    (a correction that cannot be made warns)."""
    size = config.chains * config.draws
    plug_in = config.eb_intervals == PLUG_IN
    hyper, correction = corrected_hyperparameters(spec.family, eb, data, size, config.seed,
                                                  plug_in)
    if correction is not None and correction.problem is not None:
        warnings.warn(uncorrected_warning(correction.problem, "exact"), ConvergenceWarning,
                      stacklevel=4)
    eb = replace(eb, corrected=hyper is not None, intervals=interval_note(
        config.eb_intervals, skipped=too_many_groups(data.n_groups),
        problem=None if correction is None else correction.problem,
        method=str(correction.method if correction is not None else "")))
    if not draws_theta(config, data.n_groups):
        return Draws(theta=None, eb=eb)  # the fit summarises θ_j in closed form
    rng = generator(config.seed, Stream.FIT)
    alpha, beta = ((np.full(size, eb.alpha), np.full(size, eb.beta)) if hyper is None
                   else hyper)
    theta = spec.family.sample_conditional(rng, alpha[:, None], beta[:, None], data.y, data.n)
    return Draws(theta=theta.reshape(config.chains, config.draws, data.n_groups), eb=eb)


def sample_eb_moments(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(spec, data, config, estimate_moments(spec, data))


def sample_eb_ml(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(spec, data, config, estimate_ml(spec, data))


def sample_eb_js(spec: ConjugateSpec, data: GroupCounts, config: SamplerConfig) -> Draws:
    return _eb_draws(spec, data, config, estimate_james_stein(spec, data))
