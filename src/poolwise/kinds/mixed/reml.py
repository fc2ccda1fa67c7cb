"""REML and ML point estimates of a linear mixed model, as lme4 computes them.

For y = Xβ + Zb + ε, b ~ N(0, G), ε ~ N(0, σ²I), write G = σ²ΛΛᵀ with the relative factor
Λ = blockdiag_t(I ⊗ Λ_t), Λ_t = diag(sd_t / σ) L_t (L_t the Cholesky factor of the
correlation matrix). With W = [Z X], the columns of X unscaled and given a flat prior,
:func:`poolwise.kinds.mixed.inference.gaussian_marginal` at σ = 1 gives, for V₁ = I + ZΛΛᵀZᵀ,

    d = log|V₁| + log|XᵀV₁⁻¹X|,   Q = min_β (y − Xβ)ᵀ V₁⁻¹ (y − Xβ),

and the trailing p × p block L_X of its Cholesky factor, L_X L_Xᵀ = XᵀV₁⁻¹X. Profiling σ
out (σ̂² = Q/ν) gives the restricted (ν = n − p) and the ordinary (ν = n) log likelihoods

    ℓ_REML(θ) = −½ [ν (1 + log(2π σ̂²)) + d],
    ℓ_ML(θ)   = −½ [ν (1 + log(2π σ̂²)) + d − log|XᵀV₁⁻¹X|],

Bates et al. (2015, eqs. 34 and 42). They are maximised over θ = (log sd_t/σ, the
correlation coordinates of NumPyro's ``CorrCholeskyTransform``,
:func:`~poolwise.kinds.mixed.inference.corr_cholesky`) by SciPy's L-BFGS-B with
JAX gradients. Then β̂ is the generalised least-squares estimate, Cov(β̂) =
σ̂²(XᵀV₁⁻¹X)⁻¹ (its square-root diagonal, lme4's standard errors), and the group effects are
their conditional modes (BLUPs) E[b | y, θ̂, β̂].

An sd estimated at zero (a singular fit, lme4's ``isSingular``) appears as a log-sd run
down to its lower bound; ``singular`` then says so.

:func:`conditional_draws` draws the coefficients (β, b) from their distribution given y and
the estimated variance parameters, β with a flat prior: δ = Λ L⁻ᵀ(u + ε) with ε ~ N(0, I),
from :func:`~poolwise.kinds.mixed.inference.gaussian_marginal` at σ̂ and Λ_t = diag(ŝd_t)
L̂_t. Their mean is (b̂, β̂) and the covariance of the β part σ̂²(XᵀV₁⁻¹X)⁻¹, the REML
standard errors: the empirical-Bayes analogue of posterior draws (the variance parameters
held at their estimates).

Reference: Bates, Mächler, Bolker and Walker (2015), "Fitting linear mixed-effects models
using lme4", J. Stat. Softw. 67(1), §3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from poolwise.exceptions import SpecificationError
from poolwise.kinds.mixed.design import MixedDesign, effect_sd
from poolwise.kinds.mixed.inference import (
    CHUNK_VALUES,
    corr_cholesky,
    correlated,
    draw_coefficients,
    draw_values,
    gaussian_marginal,
    gaussian_stats,
    marginal_values,
    term_factor,
    term_segments,
)

FloatArray = NDArray[np.float64]

#: bounds of log(sd / σ) in the optimisation; at the lower one an sd is effectively zero
LOG_RELATIVE_SD_BOUNDS = (-20.0, 20.0)
#: an sd / σ below this, or a correlation within this of ±1, makes the fit singular
SINGULAR_TOLERANCE = 1e-4
#: the largest |∂(−ℓ)/∂θ| at an optimum whose line search ended abnormally that still counts
#: as converged (lme4's ``check.conv.grad`` tolerance, 2e-3)
CONVERGED_GRADIENT = 2e-3
#: shifts of the starting log relative sds: the first, then (when its optimum has an sd
#: near zero or failed) the others, the best optimum kept
REML_START_SHIFTS = (0.0, -2.0, 2.0)


@dataclass(frozen=True)
class LMMEstimate:
    """REML or ML estimates of a linear mixed model, or ML estimates of a generalised one
    (:func:`poolwise.kinds.mixed.glmm.fit_glmm`; ``sigma`` None, no residual scale).

    ``sd[factor]`` holds the sd of each effect of the term, ``cor[factor]`` the correlation
    matrix of correlated terms with two or more effects, ``random_effects[factor]`` the
    conditional modes of the group effects (levels × effects). ``log_likelihood`` is the
    restricted (REML) or ordinary (ML) log likelihood at the estimate, as lme4's
    ``logLik``.
    """

    method: str
    fixed_names: tuple[str, ...]
    beta: FloatArray
    beta_se: FloatArray
    beta_cov: FloatArray
    sigma: float | None
    sd: dict[str, FloatArray]
    cor: dict[str, FloatArray]
    random_effects: dict[str, FloatArray]
    log_likelihood: float
    converged: bool
    singular: bool
    n_iterations: int

    def covariance(self, factor: str) -> FloatArray:
        """Σ_t = diag(sd) R diag(sd) of one grouping factor's effects."""
        sd = self.sd[factor]
        cor = self.cor.get(factor, np.eye(sd.size))
        return np.asarray(sd[:, None] * cor * sd[None, :])


def fit_reml(design: MixedDesign, *, reml: bool = True) -> LMMEstimate:
    """Maximise the profiled restricted (``reml=True``) or ordinary log likelihood.

    Raises
    ------
    SpecificationError
        Outside the normal family.
    """
    if design.family != "normal":
        raise SpecificationError(
            f"REML and ML estimates are for normal mixed models, not {design.family}")
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    stats = gaussian_stats(design, None)
    n, p = design.n_obs, len(design.fixed_names)
    nu = n - p if reml else n
    if nu <= 0:
        raise SpecificationError(f"{n} observations are too few for {p} fixed effects")
    sizes = [(t.n_effects, t.n_effects * (t.n_effects - 1) // 2 if correlated(t) else 0)
             for t in design.terms]

    def unpack(theta: Any) -> tuple[list[Any], list[Any | None]]:
        relative_sds, chols, at = [], [], 0
        for k, n_corr in sizes:
            relative_sds.append(jnp.exp(theta[at:at + k]))
            chols.append(corr_cholesky(theta[at + k:at + k + n_corr], jnp)[0] if n_corr
                         else None)
            at += k + n_corr
        return relative_sds, chols

    arrays = stats.arrays  # arguments of the compiled functions, not constants to fold

    def profile(theta: Any, arrays: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(profiled log likelihood, σ̂², the marginal at σ = 1) at θ."""
        relative_sds, chols = unpack(theta)
        factors = [term_factor(sd, c) for sd, c in zip(relative_sds, chols, strict=True)]
        marginal = gaussian_marginal(stats.with_arrays(arrays), 1.0, factors)
        log_det = marginal.log_det
        if not reml and p:
            log_det = log_det - 2.0 * jnp.sum(jnp.log(jnp.diagonal(marginal.rest_chol)[-p:]))
        sigma2 = marginal.quadratic / nu
        value = -0.5 * (nu * (1.0 + jnp.log(2.0 * math.pi * sigma2)) + log_det)
        return value, sigma2, marginal

    objective = jax.jit(jax.value_and_grad(lambda theta, arrays: -profile(theta, arrays)[0]))

    def fun(theta: FloatArray) -> tuple[float, FloatArray]:
        value, grad = objective(jnp.asarray(theta), arrays)
        return float(value), np.asarray(grad, dtype=float)

    start, bounds = [], []
    for term, (k, n_corr) in zip(design.terms, sizes, strict=True):
        for e, effect in enumerate(term.names):
            spread = effect_sd(design, term, e, ddof=0)
            start.append(0.0 if effect == "Intercept" or spread == 0 else -math.log(spread))
        bounds += [LOG_RELATIVE_SD_BOUNDS] * k + [(None, None)] * n_corr
        start += [0.0] * n_corr
    if start:
        # in log relative sds the likelihood is flat towards sd → 0, so a first long step
        # can land there and stop: when the first run ends with an sd near zero (or where
        # it began), start also from smaller and larger sds, and keep the best
        is_sd = np.array([b == LOG_RELATIVE_SD_BOUNDS for b in bounds])

        def run(shift: float) -> optimize.OptimizeResult:
            return optimize.minimize(fun, np.asarray(start) + shift * is_sd, jac=True,
                                     method="L-BFGS-B", bounds=bounds,
                                     options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-8})

        runs = [run(REML_START_SHIFTS[0])]
        first = runs[0]
        if not (first.nit > 0 and np.isfinite(first.fun)
                and np.all(first.x[is_sd] > math.log(SINGULAR_TOLERANCE))):
            runs += [run(shift) for shift in REML_START_SHIFTS[1:]]
        # a run whose line search stepped far out (an sd ~e^18 σ: the Schur complement
        # loses every digit) ends on a NaN at its start: it is never the best
        result = min(runs, key=lambda run: float(run.fun) if np.isfinite(run.fun)
                     else math.inf)
        # a line search that cannot descend further where the gradient is rounding noise
        # ends "abnormally" at the optimum: converged as lme4's gradient check calls it
        theta = result.x
        converged = bool(result.success) or bool(
            np.isfinite(result.fun) and np.max(np.abs(result.jac)) < CONVERGED_GRADIENT)
        iterations = sum(int(run.nit) for run in runs)
    else:  # no group terms: least squares, nothing to optimise
        theta, converged, iterations = np.zeros(0), True, 0

    def estimates(theta: Any, arrays: dict[str, Any]) -> tuple[Any, ...]:
        """The log likelihood, σ̂², the coefficients (b, β̂), L₂ and the parameters at θ."""
        value, sigma2, marginal = profile(theta, arrays)
        relative_sds, chols = unpack(theta)
        factors = [term_factor(sd, c) for sd, c in zip(relative_sds, chols, strict=True)]
        coefficients = draw_coefficients(marginal, stats.with_arrays(arrays), factors, 0.0)
        return value, sigma2, coefficients, marginal.rest_chol, relative_sds, chols

    value, sigma2, coefficients, rest_chol, relative_sds, chols = jax.jit(estimates)(
        jnp.asarray(theta), arrays)
    coefficients = np.asarray(coefficients)
    sigma = math.sqrt(float(sigma2))
    chol_x = np.asarray(rest_chol)[-p:, -p:] if p else np.zeros((0, 0))
    beta_cov = sigma**2 * np.linalg.inv(chol_x @ chol_x.T) if p else chol_x
    sd, cor, effects = {}, {}, {}
    singular = False
    for term, segment, rel, chol in zip(design.terms, stats.segments, relative_sds, chols,
                                        strict=True):
        sd[term.factor] = sigma * np.asarray(rel)
        singular |= bool(np.any(np.asarray(rel) < SINGULAR_TOLERANCE))
        if chol is not None:
            cor[term.factor] = np.asarray(chol @ chol.T)
            off_diagonal = cor[term.factor][~np.eye(term.n_effects, dtype=bool)]
            singular |= bool(np.any(np.abs(off_diagonal) > 1.0 - SINGULAR_TOLERANCE))
        effects[term.factor] = coefficients[segment.offset:segment.stop].reshape(
            segment.n_levels, segment.n_effects)
    return LMMEstimate(
        method="REML" if reml else "ML",
        fixed_names=design.fixed_names,
        beta=coefficients[coefficients.size - p:],
        beta_se=np.sqrt(np.diag(beta_cov)),
        beta_cov=beta_cov,
        sigma=sigma,
        sd=sd,
        cor=cor,
        random_effects=effects,
        log_likelihood=float(value),
        converged=converged,
        singular=singular,
        n_iterations=iterations,
    )


def conditional_draws(design: MixedDesign, estimate: LMMEstimate,
                      noise: FloatArray) -> dict[str, FloatArray]:
    """Draws of β (``b``) and each term's group effects (``r_<factor>``, levels × effects)
    given y and the estimated σ̂, sds and correlations (module docstring); ``noise`` is
    standard normal, shaped (draws, columns of [Z X]).

    With ``noise`` 0 they are β̂ and the conditional modes.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    stats = gaussian_stats(design, None)
    factors = []
    for term in design.terms:
        sd = jnp.asarray(estimate.sd[term.factor])
        cor = estimate.cor.get(term.factor)
        chol = None if cor is None else jnp.asarray(
            np.linalg.cholesky(cor + 1e-12 * np.eye(term.n_effects)))
        factors.append(term_factor(sd, chol))
    assert estimate.sigma is not None  # a normal model's estimate
    sigma = estimate.sigma
    # compiled whole (op by op, each of its operations would be compiled on its own), the
    # statistics as arguments (as constants, XLA would fold them, slowly)
    marginal = jax.jit(lambda arrays: gaussian_marginal(stats.with_arrays(arrays), sigma,
                                                        factors))(stats.arrays)
    draw = jax.jit(jax.vmap(lambda eps, at, arrays: draw_coefficients(
        at, stats.with_arrays(arrays), factors, eps), in_axes=(0, None, None)))
    block = max(1, CHUNK_VALUES // draw_values(stats))  # crossed factors: M's entries per draw
    coefficients = np.concatenate([np.asarray(draw(jnp.asarray(noise[at:at + block],
                                                               dtype=float), marginal,
                                                   stats.arrays))
                                   for at in range(0, noise.shape[0], block)])
    return _split(design, coefficients)


#: values (8 bytes each) that the corrected draws may hold at once (one factorisation per
#: draw); a design costlier than this keeps the plug-in draws and says why
CORRECTION_VALUES = 2_000_000_000


def corr_coordinates(cor: FloatArray) -> FloatArray:
    """The coordinates x of :func:`~poolwise.kinds.mixed.inference.corr_cholesky` of a
    correlation matrix (its inverse): t_ij = L_ij / Π_{m<j} √(1 − t_im²), x = atanh t."""
    chol = np.linalg.cholesky(cor)
    out = []
    for i in range(1, chol.shape[0]):
        left = 1.0
        for j in range(i):
            t = chol[i, j] / left
            out.append(math.atanh(t) if abs(t) < 1.0 else math.copysign(math.inf, t))
            left *= math.sqrt(max(1.0 - t * t, 0.0))
    return np.asarray(out, dtype=float)


class RestrictedLikelihood:
    """The restricted likelihood and the coefficients' conditional draws of a normal mixed
    model at many points η = (log σ, then per term its sds with a sign and its correlation
    coordinates) at once, in NumPy: :func:`~poolwise.kinds.mixed.inference.gaussian_marginal`
    with β flat (integrated out), at σ and Λ_t = diag(|sd_t|) L_t."""

    def __init__(self, design: MixedDesign) -> None:
        self.design = design
        self.stats = gaussian_stats(design, None)
        self.sizes = [(t.n_effects, t.n_effects * (t.n_effects - 1) // 2 if correlated(t)
                       else 0) for t in design.terms]
        #: the positions of the sds in η (folded: the likelihood is even in each)
        self.scales = [1 + at + e for at, (k, _) in zip(self._offsets(), self.sizes,
                                                        strict=True) for e in range(k)]
        #: points per chunk of about CHUNK_VALUES intermediate values
        self.chunk = max(1, CHUNK_VALUES // marginal_values(self.stats))

    def _offsets(self) -> list[int]:
        offsets, at = [], 0
        for k, n_corr in self.sizes:
            offsets.append(at)
            at += k + n_corr
        return offsets

    def point(self, estimate: LMMEstimate) -> FloatArray:
        """η at the estimates."""
        assert estimate.sigma is not None  # a normal model's estimate
        parts = [np.array([math.log(estimate.sigma)])]
        for term, (_, n_corr) in zip(self.design.terms, self.sizes, strict=True):
            parts.append(np.asarray(estimate.sd[term.factor], dtype=float))
            if n_corr:
                parts.append(corr_coordinates(estimate.cor[term.factor]))
        return np.concatenate(parts)

    def _marginal(self, points: FloatArray) -> tuple[Any, list[Any]]:
        sigma = np.exp(points[:, 0])
        factors = []
        for at, (k, n_corr) in zip(self._offsets(), self.sizes, strict=True):
            sd = np.abs(points[:, 1 + at:1 + at + k])
            chol = (corr_cholesky(points[:, 1 + at + k:1 + at + k + n_corr], np)[0]
                    if n_corr else None)
            factors.append(np.asarray(term_factor(sd, chol), dtype=float))
        return gaussian_marginal(self.stats, sigma, factors, np), factors

    def __call__(self, points: FloatArray) -> FloatArray:
        """ℓ_REML (up to a constant) at each row of ``points`` (P, size)."""
        out = np.empty(points.shape[0])
        for at in range(0, points.shape[0], self.chunk):
            with np.errstate(all="ignore"):
                out[at:at + self.chunk] = self._marginal(points[at:at + self.chunk])[
                    0].log_density
        return np.where(np.isfinite(out), out, -np.inf)

    def draws(self, points: FloatArray, noise: FloatArray) -> dict[str, FloatArray]:
        """β (``b``) and each term's group effects (``r_<factor>``) drawn given y and each
        row of ``points``, as :func:`conditional_draws` does at one."""
        pieces = []
        for at in range(0, points.shape[0], self.chunk):
            part = slice(at, at + self.chunk)
            marginal, factors = self._marginal(points[part])
            pieces.append(np.asarray(draw_coefficients(marginal, self.stats, factors,
                                                       noise[part], np)))
        return _split(self.design, np.concatenate(pieces))


def corrected_draws(design: MixedDesign, estimate: LMMEstimate, setting: str,
                    noise: FloatArray, rng: np.random.Generator
                    ) -> tuple[dict[str, FloatArray] | None, str]:
    """β and the group effects drawn with the variance parameters from their estimates'
    sampling distribution (Kass & Steffey, :mod:`poolwise.inference.eb_intervals`, the
    information of the restricted likelihood, sds folded), or None where the plug-in draws
    of :func:`conditional_draws` are kept (asked for, many levels, a costly design, or no
    correction possible, which warns); and the group intervals' label."""
    import warnings

    from poolwise.exceptions import ConvergenceWarning
    from poolwise.inference.eb_intervals import (
        PLUG_IN,
        hyperparameter_draws,
        interval_note,
        too_many_groups,
        uncorrected_warning,
    )

    if setting == PLUG_IN or not design.terms:
        return None, interval_note(setting)
    skipped = too_many_groups(min(term.n_levels for term in design.terms))
    likelihood = RestrictedLikelihood(design)
    if skipped is None and noise.shape[0] * marginal_values(likelihood.stats) > CORRECTION_VALUES:
        skipped = ("it needs a factorisation per draw, too costly for a design this size; "
                   "method importance draws the variance parameters too")
    if skipped is not None:
        return None, interval_note(setting, skipped=skipped)
    point = likelihood.point(estimate)
    correction = hyperparameter_draws(likelihood, point, noise.shape[0], rng,
                                      folded=likelihood.scales)
    if correction.draws is None or not np.all(np.isfinite(point)):
        problem = correction.problem or "a correlation is estimated at ±1"
        warnings.warn(uncorrected_warning(problem, "importance"), ConvergenceWarning,
                      stacklevel=4)
        return None, interval_note(setting, problem=problem, full_bayes="importance")
    return (likelihood.draws(correction.draws, noise),
            interval_note(setting, method=str(correction.method)))


def _split(design: MixedDesign, coefficients: FloatArray) -> dict[str, FloatArray]:
    """Coefficient draws (draws, columns of [Z X]) as β (``b``) and each term's group
    effects (``r_<factor>``, draws × levels × effects)."""
    p = len(design.fixed_names)
    out = {"b": coefficients[:, coefficients.shape[1] - p:]}
    for term, segment in zip(design.terms, term_segments(design), strict=True):
        out[f"r_{term.factor}"] = coefficients[:, segment.offset:segment.stop].reshape(
            -1, segment.n_levels, segment.n_effects)
    return out


def estimate_to_dict(estimate: LMMEstimate) -> dict[str, Any]:
    """The estimate as JSON-ready values (saved with the fit)."""
    return {"method": estimate.method, "fixed_names": list(estimate.fixed_names),
            "beta": estimate.beta.tolist(), "beta_se": estimate.beta_se.tolist(),
            "beta_cov": estimate.beta_cov.tolist(), "sigma": estimate.sigma,
            "sd": {k: v.tolist() for k, v in estimate.sd.items()},
            "cor": {k: v.tolist() for k, v in estimate.cor.items()},
            "random_effects": {k: v.tolist() for k, v in estimate.random_effects.items()},
            "log_likelihood": estimate.log_likelihood, "converged": estimate.converged,
            "singular": estimate.singular, "n_iterations": estimate.n_iterations}


def estimate_from_dict(d: dict[str, Any]) -> LMMEstimate:
    """The estimate :func:`estimate_to_dict` wrote."""
    def arrays(values: dict[str, Any]) -> dict[str, FloatArray]:
        return {k: np.asarray(v, dtype=float) for k, v in values.items()}

    p = len(d["fixed_names"])
    return LMMEstimate(
        method=d["method"], fixed_names=tuple(d["fixed_names"]),
        beta=np.asarray(d["beta"], dtype=float), beta_se=np.asarray(d["beta_se"], dtype=float),
        beta_cov=np.asarray(d["beta_cov"], dtype=float).reshape(p, p),
        sigma=None if d["sigma"] is None else float(d["sigma"]),
        sd=arrays(d["sd"]), cor=arrays(d["cor"]), random_effects=arrays(d["random_effects"]),
        log_likelihood=float(d["log_likelihood"]), converged=bool(d["converged"]),
        singular=bool(d["singular"]), n_iterations=int(d["n_iterations"]))


__all__ = ["LMMEstimate", "RestrictedLikelihood", "conditional_draws", "corr_coordinates",
           "corrected_draws", "estimate_from_dict", "estimate_to_dict", "fit_reml"]
