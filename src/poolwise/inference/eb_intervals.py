"""Empirical-Bayes intervals that account for the uncertainty of the hyperparameters.

Every empirical-Bayes method estimates the hyperparameters η (a population's α and β, μ and
τ; a mixed model's σ, sds and correlations) and then summarises each group's θ_j by
p(θ_j | y, η̂). Those *plug-in* intervals treat η̂ as known and under-cover when the groups
are few. Kass & Steffey (1989, "Approximate Bayesian inference in conditionally independent
hierarchical models (parametric empirical Bayes models)", JASA 84:717-726, eq. 3.3)
correct the variance to first order:

    Var(θ_j | y) ≈ Var(θ_j | y, η̂) + ∇_η E[θ_j | y, η]ᵀ I(η̂)⁻¹ ∇_η E[θ_j | y, η],

I(η̂) the observed information of the marginal (type-II, restricted, or quadrature)
likelihood that the method maximised. Here the correction is made by simulation, once for
every kind: η_s ~ N(η̂, I(η̂)⁻¹), then θ_j drawn from p(θ_j | y, η_s) by the kind's own
conditional sampler. By the law of total variance the mixture's variance is
E_s Var(θ_j | y, η_s) + Var_s E[θ_j | y, η_s], which is Kass & Steffey's to first order in
I⁻¹ (the delta method); the mixture's quantiles also keep the conditionals' skewness. It is
the first-order approximation of the posterior under a flat hyperprior (Kass & Steffey §2).

**The boundary.** An estimate at complete pooling (τ̂ = 0, an sd at zero, α̂ → ∞ for the
variances of a normal-inverse-gamma model) has no information in log τ. So the scale that
vanishes there (τ, an sd, 1/√α, 1/√(α+β)) is used as a coordinate with a sign: the
likelihood depends on it through its square, so it is even and smooth through 0, and an
estimate at 0 is an interior maximum with a finite, negative curvature. Draws of such a
*folded* coordinate are reflected, |s|: near the boundary the mixture is a half-normal in
the scale — the case that plug-in intervals get most wrong. Where the information is not
positive definite (a direction in which the likelihood is flat, or not finite), nothing can
be corrected: :func:`hyperparameter_draws` returns the reason, and the kind keeps its
plug-in intervals and warns, naming a full-Bayes method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poolwise.inference.importance import second_differences

FloatArray = NDArray[np.float64]
#: log likelihood at each row of an array of points (P, k) → (P,)
VectorLogLikelihood = Callable[[FloatArray], FloatArray]

__all__ = ["CORRECTION_GROUPS", "EB_INTERVALS", "FIRST_ORDER", "KASS_STEFFEY", "PLUG_IN",
           "WEIGHTED", "Correction", "corrected", "hyperparameter_draws", "interval_note",
           "observed_information", "too_many_groups", "uncorrected_warning"]

#: the setting ``eb_intervals``: the corrected intervals (default) and the plug-in ones
KASS_STEFFEY = "kass-steffey"
PLUG_IN = "plug-in"
EB_INTERVALS = (KASS_STEFFEY, PLUG_IN)
#: groups beyond which the correction is skipped: it shrinks like 1/groups (Kass & Steffey
#: §3), so past this many (with the default 4 × 1,000 draws: 10^7 draws × groups) it is
#: below the intervals' Monte Carlo error, and the fit stays O(groups)
CORRECTION_GROUPS = 2500
#: the first finite-difference step, relative to max(1, |η_i|); then a fifth of each
#: coordinate's standard error
FIRST_STEP = 1e-3
REFINED_STEP = 0.2
#: importance proposals per draw of η (at least MIN_PROPOSALS)
PROPOSALS_PER_DRAW = 2
MIN_PROPOSALS = 2000
#: how the hyperparameters were drawn (:attr:`Correction.method`)
WEIGHTED = "their normalised likelihood"
FIRST_ORDER = "N(η̂, I(η̂)⁻¹), the first-order approximation"


@dataclass(frozen=True)
class Correction:
    """Draws of the hyperparameters from N(η̂, I(η̂)⁻¹) (folded coordinates reflected), the
    covariance I(η̂)⁻¹; or, when no correction can be made, None and ``problem``."""

    draws: FloatArray | None
    covariance: FloatArray | None
    problem: str | None = None
    #: how η was drawn: WEIGHTED (its normalised likelihood) or FIRST_ORDER (N(η̂, I⁻¹))
    method: str | None = None


def observed_information(log_lik: VectorLogLikelihood, point: Sequence[float] | FloatArray
                         ) -> FloatArray:
    """I(η̂) = −∇²ℓ(η̂) by central differences: first with steps FIRST_STEP·max(1, |η_i|),
    then again with steps a fifth of each coordinate's standard error √(I⁻¹)_ii (where
    that is finite), so that the step suits the likelihood's own scale."""
    point = np.asarray(point, dtype=float)
    steps = FIRST_STEP * np.maximum(1.0, np.abs(point))
    information = -second_differences(log_lik, point, steps)
    with np.errstate(all="ignore"):
        try:
            spread = np.sqrt(np.diag(np.linalg.inv(information)))
        except np.linalg.LinAlgError:
            return information
    if np.all(np.isfinite(spread)) and np.all(spread > 0):
        information = -second_differences(log_lik, point, REFINED_STEP * spread)
    return information


def hyperparameter_draws(log_lik: VectorLogLikelihood, point: Sequence[float] | FloatArray,
                         size: int, rng: np.random.Generator, *,
                         folded: Sequence[int] = (), weighted: bool = True) -> Correction:
    """``size`` draws of η, the coordinates ``folded`` (scales that vanish at complete
    pooling, used with a sign) reflected to |η_i|; or the reason none can be made.

    ``weighted`` (for a maximum-likelihood η̂, the likelihood's mode): from its normalised
    likelihood L(η) (a flat prior on η's coordinates; module docstring), drawn by
    Pareto-smoothed importance sampling
    (:func:`~poolwise.inference.importance.importance_sample`) in the coordinates whitened
    by Kass & Steffey's N(η̂, I(η̂)⁻¹), z = L⁻¹(η − η̂) with LLᵀ = I(η̂)⁻¹, so that its
    finite-difference steps suit every likelihood's own scale; where the weights fail
    their check (Pareto k̂ too large), from N(η̂, I(η̂)⁻¹) itself, the first-order
    correction (``method`` says which). Otherwise (an estimate that is not the
    likelihood's mode: moments, James–Stein) from N(η̂, I(η̂)⁻¹), centred at it.
    """
    from poolwise.inference.importance import importance_sample

    point = np.asarray(point, dtype=float)
    information = observed_information(log_lik, point)
    if not np.all(np.isfinite(information)):
        return Correction(None, None, "the likelihood's curvature at the estimates is not "
                                      "finite")
    eigenvalues = np.linalg.eigvalsh(information)
    if eigenvalues[0] <= 1e-10 * max(abs(eigenvalues[-1]), 1.0):
        return Correction(None, None, "the likelihood is flat in some direction at the "
                                      "estimates (its information is not positive definite)")
    covariance = np.linalg.inv(information)
    covariance = 0.5 * (covariance + covariance.T)
    chol = np.linalg.cholesky(covariance)
    sample = importance_sample(lambda z: log_lik(point + z @ chol.T), np.zeros(point.size),
                               size=max(PROPOSALS_PER_DRAW * size, MIN_PROPOSALS),
                               rng=rng) if weighted else None
    if sample is not None and sample.ok:
        draws, method = point + sample.resample(rng, size) @ chol.T, WEIGHTED
    else:
        draws, method = point + rng.standard_normal((size, point.size)) @ chol.T, FIRST_ORDER
    for index in folded:
        draws[:, index] = np.abs(draws[:, index])
    return Correction(draws, covariance, method=method)


def too_many_groups(groups: int) -> str | None:
    """Why the correction is skipped for ``groups`` groups (None: it is made)."""
    if groups <= CORRECTION_GROUPS:
        return None
    return (f"it shrinks like 1/groups and is skipped above {CORRECTION_GROUPS:,} groups "
            f"({groups:,} here)")


def interval_note(setting: str, *, skipped: str | None = None, problem: str | None = None,
                  full_bayes: str = "exact", method: str = WEIGHTED) -> str:
    """The label of the group parameters' intervals of an empirical-Bayes fit: with the
    hyperparameters drawn by ``method`` (Kass–Steffey); plug-in as asked for, or because
    the correction was ``skipped`` (why), or because none could be made (``problem``)."""
    if setting == PLUG_IN:
        return ("plug-in: equal-tailed, given the estimated hyperparameters as if known "
                "(eb_intervals='plug-in'); they ignore the estimates' uncertainty")
    if problem is not None:
        return (f"plug-in: no correction could be made ({problem}); they ignore the "
                f"estimates' uncertainty: use --method {full_bayes}")
    if skipped is not None:
        return (f"plug-in: given the estimated hyperparameters; the correction for their "
                f"uncertainty (Kass–Steffey) is left out: {skipped}")
    return (f"Kass–Steffey: equal-tailed, of draws given hyperparameters drawn from {method} "
            "(scales folded at 0), so they include the estimates' uncertainty; "
            "--eb-intervals plug-in gives the plug-in ones")


def corrected(notes: dict[str, str]) -> bool:
    """Whether a fit's interval notes (``fit.interval_notes()``) say that its group
    intervals include the hyperparameters' uncertainty."""
    return any(note.startswith("Kass–Steffey") for note in notes.values())


def uncorrected_warning(problem: str, full_bayes: str) -> str:
    """The one-line warning of an empirical-Bayes fit whose intervals stay plug-in."""
    return (f"empirical Bayes's intervals ignore the hyperparameters' uncertainty here: "
            f"{problem}, so no Kass–Steffey correction can be made; use --method "
            f"{full_bayes} for intervals that include it")
