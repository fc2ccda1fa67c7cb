"""Pareto-smoothed importance sampling of a few parameters around their mode.

For a low-dimensional parameter vector x (a mixed model's variance parameters once β and
the group effects are integrated out; a GLMM's, once its groups are integrated
numerically) whose unnormalised log density log p(x) is evaluated at many points in one
call, without compilation:

1. the mode x̂, by BFGS with central-difference gradients (the 2d + 1 points of each
   gradient in one call), and the Hessian H there by central differences (one call);
2. S proposals from a multivariate Student-t q with ``df`` degrees of freedom, centred at
   x̂ with scale matrix (−H)⁻¹: the Laplace approximation with heavier tails, so that the
   weights p/q stay bounded where the posterior is wider or more skewed than the normal;
3. log weights log p − log q, Pareto-smoothed (PSIS; Vehtari, Simpson, Gelman, Yao and
   Gabry 2024, "Pareto smoothed importance sampling", JMLR 25(72)): the largest
   M = min(S/5, 3√S) raw weights are replaced by the expected order statistics of a
   generalised Pareto distribution fitted to them, whose shape k̂ is the diagnostic
   (k̂ ≤ min(1 − 1/log₁₀ S, 0.7): the estimates are reliable; above it the weights'
   variance is effectively infinite and the draws must not be used);
   while k̂ > 0.5, up to :data:`REFINEMENTS` more proposals are drawn from a Student-t with
   the weighted sample's mean and covariance (moment matching: the posterior's spread
   rather than the curvature at its mode), and the pass with the smallest k̂ is kept;
4. the effective sample size of the normalised smoothed weights w̃, ESS = 1 / Σ w̃²;
5. N equally weighted draws by systematic resampling (Kitagawa 1996): one uniform u,
   indices at the weights' cumulative sums crossing (u + i)/N, then shuffled so that any
   block of them (a "chain") is a random subset.

The resampled draws repeat points; their Monte Carlo error is that of the weighted sample
plus the resampling's, at most that of multinomial resampling, so the effective size of
N resampled draws is at least 1 / (1/ESS + 1/N) (:func:`resampled_ess`), which is what a
fit reports instead of the count of draws.

References: Vehtari et al. (2024), above; Geweke (1989), "Bayesian inference in
econometric models using Monte Carlo integration", Econometrica 57(6) (the Student-t
proposal); Kitagawa (1996), "Monte Carlo filter and smoother for non-Gaussian nonlinear
state space models", J. Comput. Graph. Stat. 5(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
#: log p at many points: (points, d) → (points,), −inf (or NaN) outside the support
VectorLogDensity = Callable[[FloatArray], FloatArray]

__all__ = ["DEFAULT_DF", "ImportanceSample", "VectorLogDensity", "find_mode",
           "importance_sample", "pareto_k_limit", "psis", "resampled_ess",
           "systematic_resample"]

#: degrees of freedom of the Student-t proposal
DEFAULT_DF = 5.0
#: step of the central differences for the gradient and the Hessian (coordinates are
#: logs and unbounded correlation coordinates: unit scale)
GRADIENT_STEP = 1e-5
HESSIAN_STEP = 1e-3
#: further proposals fitted to the weighted draws of the last while its k̂ exceeds
#: PARETO_K_GOOD (the one with the smallest k̂ is kept): between 0.5 and 0.7 the weights
#: are usable but converge slowly (Vehtari et al. 2024, §3.2.3), and on radon's
#: (floor | county) a Laplace proposal at k̂ ≈ 0.68 gave sd[floor] 0.298 where NUTS and a
#: refined proposal (k̂ ≈ 0.4) give 0.277
REFINEMENTS = 2
PARETO_K_GOOD = 0.5
#: the absolute PSIS threshold (Vehtari et al. 2024, §3.2.3)
PARETO_K_MAX = 0.7


@dataclass(frozen=True)
class ImportanceSample:
    """Proposals, their Pareto-smoothed normalised log weights and the diagnostics.

    ``ok`` says whether the weights can be used (a mode was found, k̂ within
    :func:`pareto_k_limit`); otherwise ``problem`` says why, in words.
    """

    points: FloatArray
    log_weights: FloatArray
    pareto_k: float
    ess: float
    centre: FloatArray
    scale: FloatArray  # the Cholesky factor of the proposal's scale matrix
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def resample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` equally weighted draws (systematic resampling, shuffled)."""
        return self.points[systematic_resample(rng, self.log_weights, size)]


def pareto_k_limit(size: int) -> float:
    """k̂ above which S = ``size`` weighted draws are unreliable: min(1 − 1/log₁₀ S, 0.7)."""
    return min(1.0 - 1.0 / math.log10(size), PARETO_K_MAX)


def _evaluate(log_density: VectorLogDensity, points: FloatArray) -> FloatArray:
    values = np.asarray(log_density(np.atleast_2d(points)), dtype=float)
    return np.where(np.isfinite(values), values, -np.inf)


def find_mode(log_density: VectorLogDensity, start: FloatArray
              ) -> tuple[FloatArray, FloatArray, str | None]:
    """The mode of ``log_density``, its Hessian there, and None or what went wrong.

    BFGS (SciPy) on −log p with central-difference gradients; the Hessian by central
    differences with step :data:`HESSIAN_STEP`, symmetrised.
    """
    from scipy import optimize

    d = start.size
    steps = GRADIENT_STEP * np.eye(d)

    def objective(x: FloatArray) -> tuple[float, FloatArray]:
        values = _evaluate(log_density, np.vstack([x, x + steps, x - steps]))
        if not np.all(np.isfinite(values)):
            return math.inf, np.zeros(d)
        gradient = (values[1:d + 1] - values[d + 1:]) / (2.0 * GRADIENT_STEP)
        return -float(values[0]), -gradient

    if not np.isfinite(objective(start)[0]):
        return start, np.full((d, d), np.nan), "the log density is not finite at the start"
    result = optimize.minimize(objective, start, jac=True, method="BFGS",
                               options={"gtol": 1e-5, "maxiter": 500})
    mode = np.asarray(result.x, dtype=float)
    hessian = second_differences(lambda points: _evaluate(log_density, points), mode,
                                 np.full(mode.size, HESSIAN_STEP))
    problem = None
    if not np.all(np.isfinite(hessian)):
        problem = "the log density's curvature at the mode is not finite"
    elif np.max(np.linalg.eigvalsh(hessian)) >= 0.0:
        problem = ("the log density has no strict maximum (its Hessian at the optimiser's "
                   "end point is not negative definite)")
    elif not result.success and np.max(np.abs(objective(mode)[1])) > 1e-3:
        problem = f"the mode search did not converge ({result.message})"
    return mode, hessian, problem


def second_differences(log_density: VectorLogDensity, point: FloatArray,
                       steps: FloatArray) -> FloatArray:
    """∂²f/∂x_a∂x_b by central differences, [f(+,+) − f(+,−) − f(−,+) + f(−,−)]/(4 h_a h_b),
    for a ≤ b (the rest by symmetry), every point in one call of the vectorised
    ``log_density``."""
    k = point.size
    shifts = np.eye(k) * steps
    pairs = [(a, b) for a in range(k) for b in range(a, k)]
    signs = ((1, 1), (1, -1), (-1, 1), (-1, -1))
    points = np.array([point + s * shifts[a] + t * shifts[b] for a, b in pairs
                       for s, t in signs])
    values = np.asarray(log_density(points), dtype=float).reshape(len(pairs), 4)
    hessian = np.zeros((k, k))
    for (a, b), (pp, pm, mp, mm) in zip(pairs, values, strict=True):
        hessian[a, b] = hessian[b, a] = (pp - pm - mp + mm) / (4.0 * steps[a] * steps[b])
    return hessian


def _student_t(rng: np.random.Generator, centre: FloatArray, chol: FloatArray, df: float,
               size: int) -> tuple[FloatArray, FloatArray]:
    """Draws from the multivariate t(centre, chol cholᵀ, df) and their log densities."""
    d = centre.size
    normal = rng.standard_normal((size, d))
    chi2 = rng.chisquare(df, size)
    points = centre + (normal / np.sqrt(chi2 / df)[:, None]) @ chol.T
    white = np.linalg.solve(chol, (points - centre).T).T
    log_q = (math.lgamma((df + d) / 2) - math.lgamma(df / 2) - 0.5 * d * math.log(df * math.pi)
             - float(np.sum(np.log(np.diag(chol))))
             - 0.5 * (df + d) * np.log1p(np.sum(white**2, axis=1) / df))
    return points, log_q


def importance_sample(log_density: VectorLogDensity, start: FloatArray, *,
                      size: int, rng: np.random.Generator, df: float = DEFAULT_DF,
                      weighting: Callable[[FloatArray, FloatArray], VectorLogDensity]
                      | None = None) -> ImportanceSample:
    """Steps 1-4 of the module docstring with ``size`` proposals (per pass).

    ``weighting``, given the mode and the Laplace covariance (−H)⁻¹, returns the log
    density the proposals are weighted by, if not ``log_density`` itself (a cheaper
    evaluation of the same density, checked there against it). The result's ``problem``
    is set (and the weights are not to be used) when no mode is found, or k̂ exceeds
    :func:`pareto_k_limit`.
    """
    start = np.asarray(start, dtype=float)
    mode, hessian, problem = find_mode(log_density, start)
    d = start.size
    if problem is not None:
        empty = np.zeros((0, d))
        return ImportanceSample(empty, np.zeros(0), math.inf, 0.0, mode,
                                np.full((d, d), np.nan), problem)
    covariance = np.asarray(np.linalg.inv(-hessian), dtype=float)
    if weighting is not None:
        log_density = weighting(mode, covariance)
    centre = mode
    best: ImportanceSample | None = None
    for _ in range(1 + REFINEMENTS):
        chol = np.asarray(np.linalg.cholesky(0.5 * (covariance + covariance.T)), dtype=float)
        points, log_q = _student_t(rng, centre, chol, df, size)
        raw = _evaluate(log_density, points) - log_q
        if not np.any(np.isfinite(raw)):
            break
        smoothed, k = psis(raw)
        ess = float(1.0 / np.sum(np.exp(2.0 * smoothed)))
        if best is None or k < best.pareto_k:
            best = ImportanceSample(points, smoothed, float(k), ess, centre, chol)
        if k <= PARETO_K_GOOD:
            break
        # moment matching: the next proposal takes the weighted sample's mean and
        # covariance (Geweke 1989, §4; the posterior's spread, not the curvature at its mode)
        weights = np.exp(smoothed)
        centre = weights @ points
        spread = points - centre
        covariance = (weights[:, None] * spread).T @ spread
        if not np.all(np.isfinite(covariance)) or np.min(np.linalg.eigvalsh(covariance)) <= 0:
            break
    if best is None:
        return ImportanceSample(np.zeros((0, d)), np.zeros(0), math.inf, 0.0, mode,
                                np.full((d, d), np.nan),
                                "the log density is not finite at any proposal")
    limit = pareto_k_limit(size)
    if not best.pareto_k <= limit:
        best = replace(best, problem=(
            f"Pareto k̂ = {best.pareto_k:.2f} > {limit:.2f}: the importance weights have "
            "effectively infinite variance (the posterior is far from a Student-t: near a "
            "boundary, curved, or with several modes)"))
    return best


def resampled_ess(ess: float, size: int) -> float:
    """A lower bound on the effective size of ``size`` draws resampled from weights of
    effective size ``ess``: 1 / (1/ESS + 1/N), multinomial resampling's (module docstring)."""
    return 1.0 / (1.0 / ess + 1.0 / size)


def systematic_resample(rng: np.random.Generator, log_weights: FloatArray,
                        size: int) -> NDArray[np.intp]:
    """``size`` indices, index i about size × w_i times (systematic resampling), shuffled."""
    weights = np.exp(log_weights - np.max(log_weights))
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    positions = (rng.random() + np.arange(size)) / size
    indices = np.searchsorted(cumulative, positions, side="right")
    return rng.permutation(np.minimum(indices, weights.size - 1))


# ----------------------------------------------------------------------------- PSIS
def psis(log_weights: FloatArray) -> tuple[FloatArray, float]:
    """Pareto-smoothed log weights, normalised (log Σ w̃ = 0), and k̂ (Vehtari et al. 2024,
    Algorithm 1, r_eff = 1: independent proposals).

    The largest M = ⌊3√S⌋ (S > 225) or ⌊S/5⌋ raw weights, less the largest weight below
    them (u), are fitted by a generalised Pareto distribution (:func:`gpd_fit`), and
    replaced by its quantiles at (z − ½)/M, z = 1..M, plus u, capped at the largest raw
    weight. k̂ = ∞ when there are too few finite weights to fit.
    """
    log_weights = np.asarray(log_weights, dtype=float)
    finite = np.isfinite(log_weights)
    out = np.where(finite, log_weights - np.max(log_weights[finite]), -np.inf)
    size = int(finite.sum())
    tail = int(math.floor(3.0 * math.sqrt(size)) if size > 225 else size // 5)
    if tail < 5:
        return out - _logsumexp(out), math.inf
    order = np.argsort(out)
    tail_ids = order[out.size - tail:]
    cutoff = math.exp(out[order[out.size - tail - 1]])
    values = np.exp(out[tail_ids])
    if values.max() - values.min() < np.finfo(float).tiny:  # all equal: nothing to smooth
        return out - _logsumexp(out), 0.0
    k, sigma = gpd_fit(values - cutoff)
    if np.isfinite(k):
        probabilities = (np.arange(tail) + 0.5) / tail
        smoothed = cutoff + _gpd_quantile(probabilities, k, sigma)
        out[tail_ids] = np.log(np.minimum(smoothed, values.max()))
    return out - _logsumexp(out), float(k)


def gpd_fit(x: FloatArray) -> tuple[float, float]:
    """(k, σ) of a generalised Pareto distribution fitted to sorted exceedances ``x`` > 0:
    Zhang and Stephens's (2009) profile posterior mean of θ = −k/σ on a grid of
    m = 30 + ⌊√n⌋ points, then k = mean(log1p(−θ x)), shrunk towards 0.5 as if 10 more
    observations had k = 0.5 (Vehtari et al. 2024, Appendix C)."""
    n = x.size
    m = 30 + int(math.sqrt(n))
    theta = 1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    theta = theta / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k_grid = np.mean(np.log1p(-theta[:, None] * x), axis=1)
    profile = n * (np.log(-theta / k_grid) - k_grid - 1.0)
    weights = np.exp(profile - _logsumexp(profile))
    keep = weights >= 10 * np.finfo(float).eps
    theta, weights = theta[keep], weights[keep] / weights[keep].sum()
    theta_mean = float(np.sum(theta * weights))
    k = float(np.mean(np.log1p(-theta_mean * x)))
    sigma = -k / theta_mean
    return (n * k + 10 * 0.5) / (n + 10), sigma


def _gpd_quantile(p: FloatArray, k: float, sigma: float) -> FloatArray:
    """Quantiles of the generalised Pareto distribution (location 0)."""
    if k == 0:
        return -sigma * np.log1p(-p)
    return sigma * np.expm1(-k * np.log1p(-p)) / k


def _logsumexp(x: FloatArray) -> float:
    top = float(np.max(x))
    return top + math.log(float(np.sum(np.exp(x - top))))
