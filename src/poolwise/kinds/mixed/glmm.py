"""Maximum likelihood of a generalised linear mixed model with one grouping factor, its
group effects integrated out by adaptive Gauss–Hermite quadrature: lme4's
``glmer(..., nAGQ = n)``.

For a binomial, bernoulli or poisson model with one term ``(1 | g)`` or ``(1 + x | g)``
(k = 1 or 2 effects per level), the log likelihood

    ℓ(β, Σ) = Σ_j log ∫ p(y_j | β, b) N(b | 0, Σ) db

is evaluated group by group by :func:`poolwise.inference.agq.log_marginal` (``n_agq``
points per dimension; 1 is the Laplace approximation) and maximised over
θ = (β, log sd_1..k, atanh ρ for a correlated pair) by SciPy's L-BFGS-B with central
finite-difference gradients, the modes of each evaluation starting from the last ones.
Σ = ΛΛᵀ with Λ = [[sd₁, 0], [ρ sd₂, √(1 − ρ²) sd₂]]. β's covariance is the β block of
the inverse of the Hessian of −ℓ in θ (central differences at the optimum), as lme4's
default ``vcov`` for GLMMs; at an interior optimum that block does not depend on how the
variance parameters are written. An sd estimated at zero (a singular fit) is left out of
that Hessian, along with the correlation: ℓ is flat there in log sd. The group effects
reported are their conditional modes at the estimates (lme4's ``ranef``).

Like lme4, ℓ includes the binomial coefficients log C(n, y) and −log y!, so
``log_likelihood`` is comparable with lme4's ``logLik``. lme4 itself allows nAGQ > 1 only
for a single scalar effect; for k = 2 the quadrature is the n_agq² tensor grid
(GLMMadaptive's, Pinheiro and Chao 2006).

References: Bates, Mächler, Bolker and Walker (2015), J. Stat. Softw. 67(1), §5;
Pinheiro and Chao (2006), "Efficient Laplacian and adaptive Gaussian quadrature
algorithms for multilevel generalized linear mixed models", J. Comput. Graph. Stat.
15:58–81.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from poolwise._random import Stream, generator
from poolwise.exceptions import SpecificationError
from poolwise.families.glm import row_likelihood
from poolwise.inference.agq import (
    GroupedRows,
    Modes,
    conditional_modes,
    draw_effects,
    group_rows,
    log_marginal,
)
from poolwise.inference.importance import DEFAULT_DF, second_differences
from poolwise.kinds.mixed.design import MixedDesign
from poolwise.kinds.mixed.inference import (
    _prior_data,
    _Structure,
    _variance_start,
    corr_cholesky,
    term_factor,
)
from poolwise.kinds.mixed.priors import MixedPriors
from poolwise.kinds.mixed.reml import LMMEstimate

FloatArray = NDArray[np.float64]

#: lme4's limit on nAGQ; the same here per dimension
MAX_AGQ = 25
#: points per dimension unless told: on cbpp the log likelihood at 9 points is within
#: 3e-6 of that at 25 and β within 3e-7, where Laplace (lme4's default, 1) is off by 0.04
#: and 7e-4 (tests/test_agq.py), for 9 (k = 1) or 81 (k = 2) evaluations per group
DEFAULT_AGQ = 9
#: rows × draws handled at once when drawing the group effects (memory, not results)
DRAW_BLOCK_ROWS = 2_000_000
#: bounds of log sd in the optimisation; at the lower one an sd is effectively zero
LOG_SD_BOUNDS = (-20.0, 5.0)
#: an sd below this, or a correlation within this of ±1, makes the fit singular
SINGULAR_TOLERANCE = 1e-4
#: relative step of the central differences of the Hessian
HESSIAN_STEP = 1e-4
#: points evaluated at once from which Newton's method starts at predicted modes
#: (:meth:`_Problem.predicted_modes`; below it the prediction costs more than it saves),
#: and the step of the central differences of the modes in θ
PREDICT_FROM = 64
PREDICT_STEP = 1e-3
#: the largest spread over the check's design of the difference between the log
#: likelihoods by fewer quadrature points and by the requested number for which method
#: importance weighs its proposals by the fewer (:meth:`GlmmPosterior.weighting`): a
#: posterior mean moves by at most half of it in posterior sds
AGQ_CHECK_TOLERANCE = 0.01
GLMM_FAMILIES = ("binomial", "bernoulli", "poisson")


def check_agq(n_agq: Any) -> int:
    """``n_agq`` as a whole number in 1..25, or a clear error."""
    if isinstance(n_agq, bool) or not isinstance(n_agq, (int, np.integer)) or not (
            1 <= n_agq <= MAX_AGQ):
        raise SpecificationError(
            "agq (--agq) must be a whole number of quadrature points from 1 (Laplace) to "
            f"{MAX_AGQ}, not {n_agq!r}")
    return int(n_agq)


def agq_obstacle(design: MixedDesign, what: str) -> str | None:
    """Why ``what`` (a method) by adaptive quadrature does not cover ``design``, or None:
    it needs the binomial, bernoulli or poisson family and one group term of one or two
    effects (each group's effects a separate low-dimensional integral)."""
    if design.family not in GLMM_FAMILIES:
        return (f"{what} by adaptive quadrature is for the {', '.join(GLMM_FAMILIES)} "
                f"families, not {design.family}")
    if len(design.terms) != 1 or design.terms[0].n_effects > 2:
        terms = " + ".join(t.label for t in design.terms) or "no group terms"
        return (f"{what} by adaptive quadrature needs one group term with one or two "
                f"effects, such as (1 | g) or (1 + x | g), not {terms}")
    return None


def check_glmm(design: MixedDesign, what: str = "maximum likelihood") -> None:
    """Refuse what the AGQ likelihood does not cover (:func:`agq_obstacle`), saying what
    would do."""
    design.needs_rows(f"{what} by adaptive quadrature")
    obstacle = agq_obstacle(design, what)
    if obstacle is not None:
        raise SpecificationError(f"{obstacle}; use method 'nuts'")


class _Problem:
    """The data of one fit, sorted by group, and θ ↦ (Xβ + offset, Λ)."""

    def __init__(self, design: MixedDesign) -> None:
        term = design.terms[0]
        likelihood = row_likelihood(design.family, design.y, design.trials)
        self.rows: GroupedRows
        self.rows, order = group_rows(term.index, term.z, likelihood, term.n_levels)
        self.x = np.asarray(design.x, dtype=float)[order]
        offset = np.zeros(design.n_obs) if design.offset is None else design.offset
        self.offset = np.asarray(offset, dtype=float)[order]
        self.p, self.k = self.x.shape[1], term.n_effects
        self.correlated = term.correlated and self.k == 2
        self.size = self.p + self.k + int(self.correlated)
        self.modes: Modes | None = None

    def split(self, theta: FloatArray) -> tuple[FloatArray, FloatArray, float]:
        """(β, sd, ρ) of θ."""
        beta, sd = theta[:self.p], np.exp(theta[self.p:self.p + self.k])
        rho = math.tanh(theta[-1]) if self.correlated else 0.0
        return beta, sd, rho

    def factors(self, theta: FloatArray) -> FloatArray:
        """Λ (P, k, k) at each row of θ (P, size): diag(sd) L, L the Cholesky factor of the
        correlation matrix from the coordinate atanh ρ (NumPyro's, as NUTS samples it)."""
        sd = np.exp(theta[:, self.p:self.p + self.k])
        chol = corr_cholesky(theta[:, -1:], np)[0] if self.correlated else None
        return np.asarray(term_factor(sd, chol), dtype=float)

    def parts(self, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(base η = Xβ + offset, Λ) at θ."""
        return self.x @ theta[:self.p] + self.offset, self.factors(theta[None, :])[0]

    def copies(self, theta: FloatArray) -> tuple[GroupedRows, FloatArray, FloatArray]:
        """The rows once per row of θ (P, size), each (point, level) pair a group of its
        own (group P·J), with each row's loadings Λ_Pᵀz_i as its covariates so that AGQ and
        the draws run at Λ = I on the whitened effects u (b = Λ_P u); the base η (P·n,);
        and Λ_P (P, k, k)."""
        rows, n = self.rows, self.rows.group.size
        copies = theta.shape[0]
        factors = self.factors(theta)
        loadings = np.einsum("ne,pef->pnf", rows.z, factors)
        expanded = GroupedRows(
            loadings.reshape(copies * n, self.k),
            (np.arange(copies)[:, None] * rows.n_groups + rows.group[None, :]).ravel(),
            (np.arange(copies)[:, None] * n + rows.starts[None, :]).ravel(),
            rows.likelihood.take(np.tile(np.arange(n), copies)))
        base = (theta[:, :self.p] @ self.x.T + self.offset).ravel()
        return expanded, base, factors

    def whitened_modes(self, theta: FloatArray) -> FloatArray:
        """The conditional modes û_j (whitened, b = Λu) at each row of θ (P, size) →
        (P, J, k), by :func:`poolwise.inference.agq.conditional_modes` on the copies."""
        rows, base, _ = self.copies(theta)
        with np.errstate(all="ignore"):
            modes = conditional_modes(rows, base, np.eye(self.k))
        return modes.mode.reshape(theta.shape[0], self.rows.n_groups, self.k)

    def predicted_modes(self, theta: FloatArray) -> FloatArray | None:
        """Starting points for Newton's method at each row of θ (P, size) → (P·J, k), or
        None for fewer than :data:`PREDICT_FROM` points: the first-order expansion
        û(θ) ≈ û(θ̄) + Σ_i ∂û/∂θ_i (θ_i − θ̄_i) around the points' coordinatewise median
        θ̄, the derivatives by central differences of step :data:`PREDICT_STEP` (2·size + 1
        mode searches in all). Only a start: the modes are then found to
        :data:`poolwise.inference.agq.MODE_TOLERANCE` from it, in fewer steps than from 0."""
        if theta.shape[0] < PREDICT_FROM:
            return None
        centre = np.median(theta, axis=0)
        steps = PREDICT_STEP * np.eye(self.size)
        modes = self.whitened_modes(np.vstack([centre, centre + steps, centre - steps]))
        slopes = (modes[1:self.size + 1] - modes[self.size + 1:]) / (2.0 * PREDICT_STEP)
        start = modes[0] + np.einsum("pi,ijk->pjk", theta - centre, slopes)
        start = np.where(np.isfinite(start), start, 0.0)
        return np.asarray(start.reshape(-1, self.k))

    def log_marginals(self, theta: FloatArray, n_agq: int) -> FloatArray:
        """ℓ(θ) = Σ_j log p(y_j | β, Σ) at each row of θ (P,), by AGQ, in blocks of
        about :data:`DRAW_BLOCK_ROWS` rows, Newton's method at each block started at
        :meth:`predicted_modes`; −inf where it is not finite."""
        block = max(1, DRAW_BLOCK_ROWS // self.rows.group.size)
        out = np.empty(theta.shape[0])
        eye = np.eye(self.k)
        for at in range(0, theta.shape[0], block):
            part = theta[at:at + block]
            rows, base, _ = self.copies(part)
            with np.errstate(all="ignore"):  # far out, η overflows: −inf or NaN
                modes = conditional_modes(rows, base, eye, self.predicted_modes(part))
                values = log_marginal(rows, base, eye, n_agq, modes)
            out[at:at + block] = values.reshape(-1, self.rows.n_groups).sum(axis=1)
        return np.where(np.isfinite(out), out, -np.inf)

    def draw_effects(self, theta: FloatArray, rng: np.random.Generator) -> FloatArray:
        """One exact draw of every group's effects given y at each row of θ (P, size)
        (P, J, k): :func:`poolwise.inference.agq.draw_effects` on the whitened u, then
        b = Λu, in blocks of draws."""
        block = max(1, DRAW_BLOCK_ROWS // self.rows.group.size)
        eye = np.eye(self.k)
        out = []
        for at in range(0, theta.shape[0], block):
            part = theta[at:at + block]
            rows, base, factors = self.copies(part)
            modes = conditional_modes(rows, base, eye, self.predicted_modes(part))
            white = draw_effects(rows, base, eye, modes, 1, rng)[0]
            white = white.reshape(factors.shape[0], self.rows.n_groups, self.k)
            out.append(np.einsum("pjf,pef->pje", white, factors))
        return np.concatenate(out, axis=0)

    def log_likelihood(self, theta: FloatArray, n_agq: int) -> float:
        """ℓ(θ), the modes starting from the last evaluation's."""
        base, factor = self.parts(theta)
        start = None if self.modes is None else self.modes.mode
        self.modes = conditional_modes(self.rows, base, factor, start)
        return float(np.sum(log_marginal(self.rows, base, factor, n_agq, self.modes)))


def agq_method(n_agq: int) -> str:
    """How the likelihood was integrated, as the estimate records it."""
    if n_agq == 1:
        return "ML by the Laplace approximation"
    return f"ML by adaptive quadrature with {n_agq} points"


def fit_glmm(design: MixedDesign, *, n_agq: int) -> LMMEstimate:
    """Maximise the AGQ log likelihood (module docstring). The estimate has no residual
    ``sigma``; ``method`` says how the likelihood was integrated (:func:`agq_method`).

    Raises
    ------
    SpecificationError
        Outside binomial, bernoulli and poisson, or not one group term with k ≤ 2.
    """
    check_glmm(design)
    n_agq = check_agq(n_agq)
    problem = _Problem(design)
    evaluations = 0

    def objective(theta: FloatArray) -> float:
        nonlocal evaluations
        evaluations += 1
        value = -problem.log_likelihood(theta, n_agq)
        return value if math.isfinite(value) else 1e300

    start = np.zeros(problem.size)
    start[:problem.p] = _glm_start(problem)
    bounds = ([(None, None)] * problem.p + [LOG_SD_BOUNDS] * problem.k
              + [(-10.0, 10.0)] * int(problem.correlated))
    result = optimize.minimize(objective, start, jac="3-point", method="L-BFGS-B",
                               bounds=bounds,
                               options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-7})
    theta = np.asarray(result.x, dtype=float)
    value = problem.log_likelihood(theta, n_agq)
    beta, sd, rho = problem.split(theta)
    # an sd at zero (and with it the correlation) is on the boundary, where ℓ is flat in
    # log sd: β's covariance is then that of the Hessian of the other coordinates
    free = np.ones(problem.size, dtype=bool)
    free[problem.p:problem.p + problem.k] = sd >= SINGULAR_TOLERANCE
    if problem.correlated:
        free[-1] = bool(np.all(sd >= SINGULAR_TOLERANCE))

    def restricted(values: FloatArray) -> float:
        point = theta.copy()
        point[free] = values
        return -problem.log_likelihood(point, n_agq)

    hessian = _hessian(restricted, theta[free])
    beta_cov = np.asarray(np.linalg.inv(hessian)[:problem.p, :problem.p], dtype=float)
    base, factor = problem.parts(theta)
    modes = conditional_modes(problem.rows, base, factor)
    factor_name = design.terms[0].factor
    return LMMEstimate(
        method=agq_method(n_agq),
        fixed_names=design.fixed_names,
        beta=beta,
        beta_se=np.sqrt(np.diag(beta_cov)),
        beta_cov=beta_cov,
        sigma=None,
        sd={factor_name: sd},
        cor=({factor_name: np.array([[1.0, rho], [rho, 1.0]])} if problem.correlated
             else {}),
        random_effects={factor_name: modes.effects(factor)},
        log_likelihood=value,
        converged=bool(result.success),
        singular=bool(np.any(sd < SINGULAR_TOLERANCE)
                      or abs(rho) > 1.0 - SINGULAR_TOLERANCE),
        n_iterations=evaluations,
    )


def draw_glmm_effects(design: MixedDesign, estimate: LMMEstimate, beta: FloatArray,
                      rng: np.random.Generator) -> FloatArray:
    """One exact draw of every group's effects given y, each row of ``beta`` (draws, p)
    and the estimated Σ (draws, levels, k), by
    :func:`poolwise.inference.agq.draw_effects` (:meth:`_Problem.draw_effects`)."""
    check_glmm(design)
    term = design.terms[0]
    problem = _Problem(design)
    sd = estimate.sd[term.factor]
    rho = float(estimate.cor[term.factor][1, 0]) if term.factor in estimate.cor else 0.0
    variance = np.concatenate([np.log(np.maximum(sd, 1e-300)),
                               [math.atanh(rho)] if problem.correlated else []])
    theta = np.column_stack([np.asarray(beta, dtype=float),
                             np.broadcast_to(variance, (beta.shape[0], variance.size))])
    return problem.draw_effects(theta, rng)


def corrected_glmm_draws(design: MixedDesign, estimate: LMMEstimate, setting: str,
                         size: int, n_agq: int, rng: np.random.Generator
                         ) -> tuple[tuple[FloatArray, FloatArray] | None, str]:
    """``size`` draws of β and, at each, every group's effects drawn exactly given y, with
    (β, sd, atanh ρ) from the ML estimates' sampling distribution (Kass & Steffey,
    :mod:`poolwise.inference.eb_intervals`: the information of the AGQ likelihood, the
    sds with a sign, folded); or None where the plug-in draws are kept (asked for, many
    levels, or no correction possible, which warns); and the group intervals' label."""
    import warnings

    from poolwise.exceptions import ConvergenceWarning
    from poolwise.inference.eb_intervals import (
        PLUG_IN,
        hyperparameter_draws,
        interval_note,
        too_many_groups,
        uncorrected_warning,
    )

    term = design.terms[0]
    skipped = too_many_groups(term.n_levels)
    if setting == PLUG_IN or skipped is not None:
        return None, interval_note(setting, skipped=skipped)
    problem = _Problem(design)
    p, k = problem.p, problem.k

    def unsigned(points: FloatArray) -> FloatArray:
        """θ = (β, log sd, atanh ρ) of points with signed sds."""
        theta = np.array(points, dtype=float)
        with np.errstate(divide="ignore"):
            theta[:, p:p + k] = np.log(np.abs(theta[:, p:p + k]))
        return theta

    sd = estimate.sd[term.factor]
    rho = [math.atanh(float(estimate.cor[term.factor][1, 0]))] if problem.correlated else []
    point = np.concatenate([estimate.beta, sd, rho])
    correction = hyperparameter_draws(
        lambda points: problem.log_marginals(unsigned(points), n_agq), point, size, rng,
        folded=range(p, p + k))
    if correction.draws is None or not np.all(np.isfinite(point)):
        reason = correction.problem or "the correlation is estimated at ±1"
        warnings.warn(uncorrected_warning(reason, "importance"), ConvergenceWarning,
                      stacklevel=4)
        return None, interval_note(setting, problem=reason, full_bayes="importance")
    theta = unsigned(correction.draws)
    return ((theta[:, :p], problem.draw_effects(theta, rng)),
            interval_note(setting, method=str(correction.method)))


class GlmmPosterior:
    """The posterior of θ = (β, log sd, atanh ρ) of a one-factor GLMM with every group's
    effects integrated out by AGQ, for method ``importance``:

        log p(θ | y) = Σ_j log p(y_j | β, Σ) + Σ_i log p(β_i) + Σ_e [log p(sd_e) + log sd_e]
                       + log LKJ(L | η) + log |∂L/∂x|,

    the first term by :func:`poolwise.inference.agq.log_marginal` (``n_agq`` points per
    dimension), the others the priors that NUTS uses (:mod:`poolwise.kinds.mixed.priors`;
    for the variance coordinates the same code,
    :meth:`poolwise.kinds.mixed.inference._Structure.variance_parts`), with the Jacobians
    of the unconstrained coordinates. Evaluated at many θ at once in NumPy (Newton's
    method for the modes started at their first-order prediction,
    :meth:`_Problem.predicted_modes`); the proposals are weighted with fewer points per
    dimension where a check at the mode allows (:meth:`weighting`); the group effects are
    then drawn exactly from their conditional at each draw of θ.
    """

    def __init__(self, design: MixedDesign, priors: MixedPriors, n_agq: int) -> None:
        check_glmm(design, "importance sampling")
        self.n_agq = check_agq(n_agq)
        self.design, self.priors = design, priors
        self.problem = _Problem(design)
        self.structure = _Structure.of(design, priors, explicit=False)
        self.prior = _prior_data(design, priors)
        variance = _variance_start(design, priors, 1.0, self.structure.layout)[0]
        self.start = np.concatenate([_glm_start(self.problem), variance])
        #: points per dimension of the proposals' quadrature (:meth:`weighting`) and the
        #: spread of its difference from ``n_agq``'s over the check's design
        self.proposal_agq, self.agq_spread = self.n_agq, 0.0

    @property
    def sampled(self) -> str:
        """What was sampled and how, in words (the points the proposals were weighted by)."""
        correlation = ", atanh ρ" if self.problem.correlated else ""
        square = "" if self.problem.k == 1 else "²"
        points = f"{self.proposal_agq}{square} points"
        if self.proposal_agq < self.n_agq:
            points += (f", its log likelihood within {self.agq_spread:.1g} of "
                       f"{self.n_agq}{square} points' over the posterior's bulk")
        return (
            f"(β, log sd{correlation}) by importance sampling from a "
            f"Student-t({DEFAULT_DF:g}) at their "
            f"posterior mode, each group's effects integrated out by adaptive Gauss–Hermite "
            f"quadrature ({points}), Pareto-smoothed and resampled; group effects drawn "
            "exactly given them")

    def weighting(self, mode: FloatArray, covariance: FloatArray
                  ) -> Callable[[FloatArray], FloatArray]:
        """The log density the proposals are weighted by: :meth:`log_density` with the
        fewest points per dimension m < ``n_agq`` whose log likelihood ℓ_m differs from
        ℓ_{n_agq} by a spread (max − min) under :data:`AGQ_CHECK_TOLERANCE` over a design
        around the mode — the mode, ±3 along each axis and the 2^d corners at ±1.5 in the
        coordinates x of θ = θ̂ + C x, CCᵀ the Laplace covariance — or ``n_agq`` itself. A
        difference that is constant in θ cancels in the normalised weights; one of spread
        δ shifts a posterior mean by at most δ/2 posterior sds (|Cov(θ_i, e)| ≤ sd_i·sd(e)).
        Records the choice (``proposal_agq``, ``agq_spread``; :attr:`sampled`)."""
        size = mode.size
        chol = np.linalg.cholesky(0.5 * (covariance + covariance.T))
        corners = np.array(np.meshgrid(*([[-1.5, 1.5]] * size), indexing="ij"))
        white = np.vstack([np.zeros(size), 3.0 * np.eye(size), -3.0 * np.eye(size),
                           corners.reshape(size, -1).T])
        design = mode + white @ chol.T
        with np.errstate(all="ignore"):
            full = self.problem.log_marginals(design, self.n_agq)
            for points in range(1, self.n_agq):
                difference = self.problem.log_marginals(design, points) - full
                finite = np.isfinite(difference)
                spread = float(np.ptp(difference[finite])) if np.any(finite) else math.inf
                if np.all(finite == np.isfinite(full)) and spread < AGQ_CHECK_TOLERANCE:
                    self.proposal_agq, self.agq_spread = points, spread
                    return lambda theta: self.log_density(theta, points)
        return self.log_density

    def log_density(self, theta: FloatArray, n_agq: int | None = None) -> FloatArray:
        """log p(θ | y) up to a constant at each row of θ (P, size), by AGQ with ``n_agq``
        points per dimension (None: the posterior's own)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        p = self.problem.p
        with np.errstate(all="ignore"):
            log_prior = self.structure.variance_parts(theta[:, p:], self.prior, np)[0]
            log_prior = log_prior + sum(
                (prior.log_density(theta[:, i]) for i, prior in enumerate(self.priors.fixed)),
                np.zeros(theta.shape[0]))
        log_prior = np.where(np.isfinite(log_prior), log_prior, -np.inf)
        out = np.full(theta.shape[0], -np.inf)
        finite = np.isfinite(log_prior)
        if np.any(finite):
            out[finite] = log_prior[finite] + self.problem.log_marginals(
                theta[finite], self.n_agq if n_agq is None else n_agq)
        return out

    def draw(self, theta: FloatArray, seed: int) -> dict[str, FloatArray]:
        """The posterior's variables at each row of θ (S, size): ``b``, ``sd_f``,
        ``cor_f`` (a correlated pair) and ``r_f``, the group effects drawn exactly."""
        term, problem = self.design.terms[0], self.problem
        rng = generator(seed, Stream.CONDITIONAL)
        out = {"b": theta[:, :problem.p].copy(),
               f"sd_{term.factor}": np.exp(theta[:, problem.p:problem.p + problem.k])}
        if problem.correlated:
            chol = corr_cholesky(theta[:, -1:], np)[0]
            out[f"cor_{term.factor}"] = chol @ np.swapaxes(chol, 1, 2)
        out[f"r_{term.factor}"] = problem.draw_effects(theta, rng)
        return out


def _glm_start(problem: _Problem) -> FloatArray:
    """β of the model without group effects: the AGQ problem's own Newton steps, with
    Λ = 0 (every group's effects then stay at zero), as one group holding all rows."""
    rows = problem.rows
    everything = GroupedRows(problem.x, np.zeros(rows.group.size, dtype=np.intp),
                             np.zeros(1, dtype=np.intp), rows.likelihood)
    # β as the "effects" of one group with a very wide prior: Newton on ℓ(β) − ½|β|²/10⁸
    modes = conditional_modes(everything, problem.offset, 1e4 * np.eye(problem.p))
    return modes.effects(1e4 * np.eye(problem.p))[0]


def _hessian(function: Any, theta: FloatArray) -> FloatArray:
    """Central second differences of ``function`` at θ, steps HESSIAN_STEP·max(1, |θ_i|)."""
    steps = HESSIAN_STEP * np.maximum(1.0, np.abs(theta))
    return second_differences(lambda points: np.array([function(p) for p in points]), theta,
                              steps)


__all__ = ["DEFAULT_AGQ", "GLMM_FAMILIES", "MAX_AGQ", "GlmmPosterior", "agq_method", "agq_obstacle",
           "check_agq", "check_glmm", "corrected_glmm_draws", "draw_glmm_effects", "fit_glmm"]
