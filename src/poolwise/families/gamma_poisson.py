"""Gamma-Poisson: y_j ~ Poisson(E_j θ_j), θ_j ~ Gamma(α, rate β).

E_j is the exposure (population, person-years, ...), θ_j the rate per unit exposure.
Coordinates: u = log(α / β) (log population mean rate) and v = log α (the shape, a prior
count). The marginal of y_j is negative binomial.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from poolwise._ops import NUMPY_OPS, Ops, log_rising
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families.base import CORNISH_FISHER_SHAPE, FloatArray, RateFamily, cornish_fisher
from poolwise.families.sums import RisingSums, ShiftedSums


class GammaPoissonTerms(NamedTuple):
    """The data of :meth:`GammaPoisson.log_marginal_sum`, reduced once."""

    counts: RisingSums
    exposures: ShiftedSums
    weight_y: float
    constant: float

    @property
    def size(self) -> int:
        return self.counts.size + self.exposures.size

    def padded(self) -> GammaPoissonTerms:
        """The same terms, each sum padded (:meth:`RisingSums.padded`)."""
        return GammaPoissonTerms(self.counts.padded(), self.exposures.padded(),
                                 self.weight_y, self.constant)


class GammaPoisson(RateFamily):
    """Poisson counts with exposure and Gamma-distributed rates."""

    name = "gamma-poisson"
    theta_label = "rate θ per unit exposure"
    size_label = "exposure"
    uv_names = ("log(α/β)", "log α")
    population_text = "Gamma(α, β)"
    likelihood_latex = r"\mathrm{{Poisson}}({size}_j \, {theta})"
    default_theta_prior = (0.5, 0.0)
    reference_prior_text = (
        "p(α, β) ∝ α^(-3/2) / β  (uniform on log(α/β) and on α^(-1/2), "
        "the population coefficient of variation)"
    )

    def log_likelihood(self, theta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log Poisson(y | E θ) = y log(E θ) − E θ − log y!."""
        return ops.xlogy(y, n * theta) - n * theta - ops.gammaln(y + 1.0)

    def sample_data(self, rng: np.random.Generator, theta: ArrayLike, n: ArrayLike) -> NDArray:
        return rng.poisson(np.multiply(n, theta))

    def population(self, alpha: ArrayLike, beta: ArrayLike) -> Any:
        from scipy import stats

        return stats.gamma(alpha, scale=1.0 / np.asarray(beta, dtype=float))

    def population_quantile(self, alpha: ArrayLike, beta: ArrayLike, level: float
                            ) -> FloatArray:
        """Gamma(α, β)'s quantile: Cornish–Fisher where α ≥ :data:`CORNISH_FISHER_SHAPE`
        (skewness 2/√α, excess kurtosis 6/α), the inverse regularised incomplete gamma
        function elsewhere; divided by the rate β."""
        a, b = np.broadcast_arrays(np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float))
        standard = np.empty(a.shape)
        large = a >= CORNISH_FISHER_SHAPE
        al = a[large]
        standard[large] = cornish_fisher(al, np.sqrt(al), 2.0 / np.sqrt(al), 6.0 / al, level)
        standard[~large] = special.gammaincinv(a[~large], level)
        return standard / b

    def sample_population(
        self, rng: np.random.Generator, alpha: ArrayLike, beta: ArrayLike
    ) -> FloatArray:
        # broadcast first: a shape (draws, 1) against a rate (draws, groups) would draw one
        # λ per draw and give every group that same λ
        shape, rate = np.broadcast_arrays(np.asarray(alpha, dtype=float),
                                          np.asarray(beta, dtype=float))
        return rng.standard_gamma(shape) / rate

    def population_moments(self, alpha: ArrayLike, beta: ArrayLike
                           ) -> tuple[FloatArray, FloatArray]:
        """Gamma(shape α, rate β): mean α/β, variance α/β²."""
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        return alpha / beta, alpha / beta**2

    def population_from_moments(self, mean: ArrayLike, variance: ArrayLike
                                ) -> tuple[FloatArray, FloatArray]:
        """α = m²/v, β = m/v."""
        mean, variance = np.asarray(mean, dtype=float), np.asarray(variance, dtype=float)
        return mean**2 / variance, mean / variance

    def conjugate_update(
        self, alpha: ArrayLike, beta: ArrayLike, y: ArrayLike, n: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """θ_j | y_j, α, β ~ Gamma(α + y_j, β + E_j)."""
        return np.add(alpha, y), np.add(beta, n)

    def log_marginal(self, alpha: Any, beta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """Negative binomial: lnΓ(α+y) − lnΓ(α) − ln y! − α ln(1 + E/β) + y ln(E/(β+E)).

        Written with a rising factorial and log1p so that it stays accurate as α → ∞.
        """
        return (
            log_rising(alpha, y, ops)
            - ops.gammaln(y + 1.0)
            - alpha * ops.log1p(n / beta)
            + ops.xlogy(y, n)
            - y * ops.log(beta + n)
        )

    def marginal_terms(self, y: NDArray, n: NDArray, weights: NDArray) -> GammaPoissonTerms:
        """Σ_j w_j log p(y_j | α, β) = Σ_j w_j [lnΓ(α + y_j) − lnΓ(α)] − α Σ_j w_j L_j
        − Σ_j w_j y_j L_j − log β Σ_j w_j y_j + Σ_j w_j (y_j log E_j − ln y_j!), with
        L_j = log1p(E_j / β): the first sum over distinct counts
        (:class:`~poolwise.families.sums.RisingSums`), those of L_j over bins of exposures
        (:class:`~poolwise.families.sums.ShiftedSums`) when they are many."""
        y, n, weights = (np.asarray(a, dtype=float) for a in (y, n, weights))
        wy = weights * y
        constant = float(np.sum(weights * (special.xlogy(y, n) - special.gammaln(y + 1))))
        return GammaPoissonTerms(RisingSums.of(y, weights),
                                 ShiftedSums.of(n, np.stack([weights, wy], axis=1)),
                                 float(wy.sum()), constant)

    def log_marginal_sum(self, alpha: Any, beta: Any, terms: Any, ops: Ops = NUMPY_OPS
                         ) -> Any:
        """Σ_j w_j log p(y_j | α, β) from :meth:`marginal_terms` (equal to summing
        :meth:`log_marginal`, tested); α and β may be JAX tracers."""
        ratios, _ = terms.exposures.at(beta, ops, relative=True)  # Σ w L, Σ w y L
        return (terms.counts(alpha, ops) - alpha * ratios[..., 0] - ratios[..., 1]
                - ops.log(beta) * terms.weight_y + terms.constant)

    def population_stats(self, theta: NDArray, axis: int = -1) -> tuple[Any, Any, Any]:
        """(J, Σ log θ_j, Σ θ_j)."""
        return theta.shape[axis], np.log(theta).sum(axis), theta.sum(axis)

    def log_population_from_stats(
        self, alpha: Any, beta: Any, stats: tuple[Any, Any, Any], ops: Ops = NUMPY_OPS
    ) -> Any:
        """Σ log Gamma(θ_j | α, β) = J [α ln β − lnΓ(α)] + (α − 1) S₁ − β S₂."""
        count, sum_log, total = stats
        return (
            count * (alpha * ops.log(beta) - ops.gammaln(alpha))
            + (alpha - 1.0) * sum_log
            - beta * total
        )

    def from_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> tuple[Any, Any]:
        """α = e^v, β = e^(v − u)."""
        return ops.exp(v), ops.exp(v - u)

    def to_uv(self, alpha: ArrayLike, beta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        return np.log(alpha) - np.log(beta), np.log(alpha)

    def log_jacobian_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> Any:
        """|∂(α, β)/∂(u, v)| = α β = e^(2v − u)."""
        return 2.0 * v - u

    def pooling_factor(self, alpha: Any, beta: Any, n: Any) -> FloatArray:
        """E[θ_j | y_j] = (1 − B) y_j/E_j + B α/β with B = β/(β + E_j)."""
        return np.asarray(np.divide(beta, np.add(beta, n)), dtype=float)

    def population_with_mean(self, mean: Any, concentration: Any) -> tuple[Any, Any]:
        return concentration, concentration / mean

    def mean_concentration(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS
                           ) -> tuple[Any, Any, Any]:
        """The mean rate μ = α/β and the shape κ = α; |∂(μ, κ)/∂(α, β)| = α/β²."""
        return alpha / beta, alpha, ops.log(alpha) - 2.0 * ops.log(beta)

    def population_mean(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        return np.divide(alpha, beta)

    def concentration(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        return np.asarray(alpha, dtype=float)

    def reference_log_prior(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(α, β) = −3/2 log α − log β."""
        return -1.5 * ops.log(alpha) - ops.log(beta)

    def moments_estimate(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """Match Gamma(α, β)'s mean α/β and variance α/β² to the raw rates y_j / E_j.

        Like the beta-binomial estimator of the lecture it ignores Poisson noise, so it
        overstates the population variance; ``eb-ml`` does not.
        """
        rates = self.raw_rate(y, n)
        mean, var = float(np.mean(rates)), float(np.var(rates))
        if var <= 1e-12 * mean**2 or mean <= 0:
            raise DataError(
                "the method of moments needs rates that vary and are not all zero "
                f"(mean {mean:.4g}, variance {var:.4g}); the estimate would be complete "
                "pooling. Use --method exact, which keeps the uncertainty"
            )
        return mean**2 / var, mean / var

    def check_theta_prior(self, a: float, b: float) -> None:
        if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b >= 0):
            raise SpecificationError(
                f"gamma({a:g}, {b:g}) is not a valid prior for θ: "
                "the shape must be > 0 and the rate ≥ 0 (0 gives the Jeffreys-type prior)"
            )

    def check_data(self, y: NDArray, n: NDArray, labels: NDArray) -> None:
        """Exposure must be positive; counts are checked by the data layer."""
        bad = np.flatnonzero(~(n > 0))
        if bad.size:
            j = bad[0]
            raise DataError(f"group {str(labels[j])!r} has exposure {n[j]:g}; exposure must be > 0")
