"""Beta-binomial: y_j ~ Binomial(n_j, θ_j), θ_j ~ Beta(α, β).

Coordinates: u = logit(α / (α + β)) (the population mean) and v = log(α + β)
(the concentration, a prior sample size). BDA3 §5.3 uses the same pair.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from poolwise._ops import NUMPY_OPS, Ops, log_rising, log_sigmoid
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families.base import CORNISH_FISHER_SHAPE, FloatArray, RateFamily, cornish_fisher
from poolwise.families.sums import RisingSums


class BetaBinomialTerms(NamedTuple):
    """The data of :meth:`BetaBinomial.log_marginal_sum`, reduced once."""

    successes: RisingSums
    failures: RisingSums
    trials: RisingSums
    log_choose: float

    @property
    def size(self) -> int:
        return self.successes.size + self.failures.size + self.trials.size

    def padded(self) -> BetaBinomialTerms:
        """The same terms, each sum padded (:meth:`RisingSums.padded`)."""
        return BetaBinomialTerms(self.successes.padded(), self.failures.padded(),
                                 self.trials.padded(), self.log_choose)


class BetaBinomial(RateFamily):
    """Binomial counts with Beta-distributed success probabilities."""

    name = "beta-binomial"
    theta_label = "success probability θ"
    size_label = "trials"
    uv_names = ("logit(α/(α+β))", "log(α+β)")
    population_text = "Beta(α, β)"
    likelihood_latex = r"\mathrm{{Binomial}}({size}_j, {theta})"
    default_theta_prior = (0.5, 0.5)
    reference_prior_text = (
        "p(α, β) ∝ (α + β)^(-5/2)  (BDA3 §5.3: uniform on α/(α+β) and (α+β)^(-1/2))"
    )

    def log_likelihood(self, theta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log Binomial(y | n, θ) = log C(n, y) + y log θ + (n − y) log(1 − θ)."""
        log_choose = ops.gammaln(n + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(n - y + 1.0)
        return log_choose + ops.xlogy(y, theta) + ops.xlogy(n - y, 1.0 - theta)

    def sample_data(self, rng: np.random.Generator, theta: ArrayLike, n: ArrayLike) -> NDArray:
        return rng.binomial(np.asarray(n, dtype=np.int64), np.clip(theta, 0.0, 1.0))

    def population(self, alpha: ArrayLike, beta: ArrayLike) -> Any:
        from scipy import stats

        return stats.beta(alpha, beta)

    def population_quantile(self, alpha: ArrayLike, beta: ArrayLike, level: float
                            ) -> FloatArray:
        """Beta(α, β)'s quantile: Cornish–Fisher where α, β ≥ :data:`CORNISH_FISHER_SHAPE`
        (skewness 2(β − α)√(α+β+1) / ((α+β+2)√(αβ)), excess kurtosis
        6[(α − β)²(α+β+1) − αβ(α+β+2)] / (αβ(α+β+2)(α+β+3))), the inverse regularised
        incomplete beta function elsewhere."""
        a, b = np.broadcast_arrays(np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float))
        out = np.empty(a.shape)
        large = np.minimum(a, b) >= CORNISH_FISHER_SHAPE
        al, bl = a[large], b[large]
        total = al + bl
        mean, variance = self.population_moments(al, bl)
        skewness = 2.0 * (bl - al) * np.sqrt(total + 1.0) / ((total + 2.0) * np.sqrt(al * bl))
        kurtosis = (6.0 * ((al - bl) ** 2 * (total + 1.0) - al * bl * (total + 2.0))
                    / (al * bl * (total + 2.0) * (total + 3.0)))
        out[large] = cornish_fisher(mean, np.sqrt(variance), skewness, kurtosis, level)
        out[~large] = special.betaincinv(a[~large], b[~large], level)
        return out

    def sample_population(
        self, rng: np.random.Generator, alpha: ArrayLike, beta: ArrayLike
    ) -> FloatArray:
        return rng.beta(np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float))

    def population_moments(self, alpha: ArrayLike, beta: ArrayLike
                           ) -> tuple[FloatArray, FloatArray]:
        """Beta(α, β): mean α/(α+β), variance αβ / ((α+β)² (α+β+1))."""
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        total = alpha + beta
        mean = alpha / total
        return mean, mean * (beta / total) / (total + 1.0)

    def population_from_moments(self, mean: ArrayLike, variance: ArrayLike
                                ) -> tuple[FloatArray, FloatArray]:
        """α = m c, β = (1 − m) c with c = m(1 − m)/v − 1."""
        mean = np.asarray(mean, dtype=float)
        total = mean * (1.0 - mean) / np.asarray(variance, dtype=float) - 1.0
        return mean * total, (1.0 - mean) * total

    def conjugate_update(
        self, alpha: ArrayLike, beta: ArrayLike, y: ArrayLike, n: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """θ_j | y_j, α, β ~ Beta(α + y_j, β + n_j − y_j)."""
        y = np.asarray(y, dtype=float)
        return np.add(alpha, y), np.add(beta, np.subtract(n, y))

    def log_marginal(self, alpha: Any, beta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(y | α, β) = log C(n, y) + log B(α + y, β + n − y) − log B(α, β).

        Written as rising factorials, lnΓ(α+y) − lnΓ(α) etc., which stay accurate as
        α + β → ∞ (the complete-pooling limit).
        """
        log_choose = ops.gammaln(n + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(n - y + 1.0)
        return (
            log_choose
            + log_rising(alpha, y, ops)
            + log_rising(beta, n - y, ops)
            - log_rising(alpha + beta, n, ops)
        )

    def marginal_terms(self, y: NDArray, n: NDArray, weights: NDArray) -> BetaBinomialTerms:
        """Σ_j w_j log p(y_j | α, β) = R(α; y) + R(β; n − y) − R(α + β; n) + Σ_j w_j log C(n_j,
        y_j), R(a; x) = Σ_j w_j [lnΓ(a + x_j) − lnΓ(a)], each R reduced once
        (:class:`~poolwise.families.sums.RisingSums`)."""
        y, n, weights = (np.asarray(a, dtype=float) for a in (y, n, weights))
        log_choose = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        return BetaBinomialTerms(RisingSums.of(y, weights), RisingSums.of(n - y, weights),
                                 RisingSums.of(n, weights), float(np.sum(weights * log_choose)))

    def log_marginal_sum(self, alpha: Any, beta: Any, terms: Any, ops: Ops = NUMPY_OPS
                         ) -> Any:
        """Σ_j w_j log p(y_j | α, β) from :meth:`marginal_terms` (equal to summing
        :meth:`log_marginal`, tested); α and β may be JAX tracers."""
        return (terms.successes(alpha, ops) + terms.failures(beta, ops)
                - terms.trials(alpha + beta, ops) + terms.log_choose)

    def population_stats(self, theta: NDArray, axis: int = -1) -> tuple[Any, Any, Any]:
        """(J, Σ log θ_j, Σ log(1 − θ_j))."""
        return theta.shape[axis], np.log(theta).sum(axis), np.log1p(-theta).sum(axis)

    def log_population_from_stats(
        self, alpha: Any, beta: Any, stats: tuple[Any, Any, Any], ops: Ops = NUMPY_OPS
    ) -> Any:
        """Σ log Beta(θ_j | α, β) = J [lnΓ(α+β) − lnΓ(α) − lnΓ(β)] + (α−1) S₁ + (β−1) S₂."""
        count, sum_log, sum_log1m = stats
        return (
            count * (ops.gammaln(alpha + beta) - ops.gammaln(alpha) - ops.gammaln(beta))
            + (alpha - 1.0) * sum_log
            + (beta - 1.0) * sum_log1m
        )

    def from_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> tuple[Any, Any]:
        """α = e^v σ(u), β = e^v σ(−u)."""
        return ops.exp(v + log_sigmoid(u, ops)), ops.exp(v + log_sigmoid(-u, ops))

    def to_uv(self, alpha: ArrayLike, beta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        return np.log(alpha) - np.log(beta), np.log(alpha + beta)

    def log_jacobian_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> Any:
        """|∂(α, β)/∂(u, v)| = (α + β)² m (1 − m) with m = σ(u)."""
        return 2.0 * v + log_sigmoid(u, ops) + log_sigmoid(-u, ops)

    def pooling_factor(self, alpha: Any, beta: Any, n: Any) -> FloatArray:
        """E[θ_j | y_j] = (1 − B) y_j/n_j + B μ with B = (α + β)/(α + β + n_j)."""
        total = np.add(alpha, beta)
        return np.asarray(total / (total + n), dtype=float)

    def population_with_mean(self, mean: Any, concentration: Any) -> tuple[Any, Any]:
        mean = np.clip(mean, 1e-6, 1 - 1e-6)
        return mean * concentration, (1 - mean) * concentration

    def mean_concentration(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS
                           ) -> tuple[Any, Any, Any]:
        """μ = α/(α + β), κ = α + β; |∂(μ, κ)/∂(α, β)| = 1/κ."""
        concentration = alpha + beta
        return alpha / concentration, concentration, -ops.log(concentration)

    def population_mean(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        return np.divide(alpha, np.add(alpha, beta))

    def concentration(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        return np.add(alpha, beta)

    def reference_log_prior(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(α, β) = −5/2 log(α + β)."""
        return -2.5 * ops.log(alpha + beta)

    def moments_estimate(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """Match Beta(α, β)'s mean m and variance V to the raw rates (the lecture's estimator).

        α + β = m (1 − m) / V − 1, α = m (α + β), β = (1 − m)(α + β), with V the
        population variance (ddof 0) of y_j / n_j. It ignores binomial noise, so it
        overstates V; ``eb-ml`` does not.
        """
        rates = self.raw_rate(y, n)
        mean, var = float(np.mean(rates)), float(np.var(rates))
        if var <= 1e-12 * mean * (1.0 - mean) or not 0 < mean < 1:
            raise DataError(
                "the method of moments needs rates that vary and are not all 0 or all 1 "
                f"(mean {mean:.4g}, variance {var:.4g}); the estimate would be complete "
                "pooling. Use --method exact, which keeps the uncertainty"
            )
        total = mean * (1.0 - mean) / var - 1.0
        if total <= 0:
            raise DataError(
                f"the rates vary more than any Beta distribution allows (variance {var:.4g} "
                f"≥ m(1−m) = {mean * (1 - mean):.4g}); use --method exact or eb-ml"
            )
        return mean * total, (1.0 - mean) * total

    def check_theta_prior(self, a: float, b: float) -> None:
        if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
            raise SpecificationError(
                f"beta({a:g}, {b:g}) is not a valid prior for θ: both parameters must be > 0"
            )

    def check_data(self, y: NDArray, n: NDArray, labels: NDArray) -> None:
        bad = np.flatnonzero(y > n)
        if bad.size:
            j = bad[0]
            raise DataError(
                f"group {str(labels[j])!r} has y = {y[j]:g} successes out of n = {n[j]:g} trials; "
                "y must be between 0 and n"
            )
        nonint = np.flatnonzero(n != np.round(n))
        if nonint.size:
            j = nonint[0]
            raise DataError(
                f"group {str(labels[j])!r} has n = {n[j]:g} trials; trials must be whole numbers"
            )

