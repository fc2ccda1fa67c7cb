"""Normal-normal with known standard errors: y_j ~ N(θ_j, σ_j²), θ_j ~ N(μ, τ²).

The model of a meta-analysis (each group reports an estimate y_j with standard error σ_j),
of eight schools and of the Efron-Morris batting averages (BDA3 §5.4-5.6; lecture 001).
Coordinates: u = μ and v = log τ. Shrinkage is written with the pooling factor
B_j = σ_j² / (σ_j² + τ²), which stays finite at τ = 0 (complete pooling, B = 1) and at
τ = ∞ (no pooling, B = 0).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from poolwise._ops import NUMPY_OPS, Ops
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.base import FloatArray, RateFamily
from poolwise.families.sums import ShiftedSums

LOG_2PI = math.log(2.0 * math.pi)


def pooling_factor(tau: ArrayLike, se: ArrayLike) -> FloatArray:
    """B = σ² / (σ² + τ²) = 1 / (1 + (τ/σ)²): the weight of μ in E[θ_j | μ, τ, y_j]."""
    ratio = np.divide(tau, se)
    return np.asarray(1.0 / (1.0 + ratio * ratio), dtype=float)


def typical_variance(se: ArrayLike) -> float:
    """The "typical" within-study variance of Higgins and Thompson (2002, eq. 9),
    s² = (k − 1) Σ w / ((Σ w)² − Σ w²) with w_j = 1/σ_j²: the variance of one study in a
    meta-analysis of k studies, used by I²."""
    weights = 1.0 / np.square(np.asarray(se, dtype=float))
    total = float(weights.sum())
    return float((weights.size - 1) * total / (total**2 - float(np.sum(weights**2))))


def i_squared(tau: ArrayLike, se: ArrayLike) -> FloatArray:
    """I² = τ² / (τ² + s²): the share of the variation in the estimates due to the studies'
    true effects rather than to sampling error (Higgins and Thompson 2002), s² the
    :func:`typical_variance`."""
    tau2 = np.square(np.asarray(tau, dtype=float))
    return np.asarray(tau2 / (tau2 + typical_variance(se)), dtype=float)


class NormalTerms(NamedTuple):
    """The estimates reduced for sums over σ_j² + τ² at many τ: y's weighted mean
    ``centre`` c and, binned over σ_j² (:class:`~poolwise.families.sums.ShiftedSums`), the
    sums of w_j, w_j (y_j − c) and w_j (y_j − c)² (the counts w_j of each distinct
    (y_j, σ_j)). Centred, Σ w d² − 2 m Σ w d + m² Σ w (d = y − c, m = μ − c) does not
    cancel catastrophically."""

    centre: float
    sums: ShiftedSums

    @classmethod
    def of(cls, y: ArrayLike, se: ArrayLike, weights: ArrayLike) -> NormalTerms:
        y, s2, count = (np.asarray(a, dtype=float) for a in (y, np.square(se), weights))
        centre = float(np.average(y, weights=count)) if count.sum() > 0 else 0.0
        y = y - centre
        return cls(centre, ShiftedSums.of(s2, np.stack([count, count * y, count * y * y],
                                                         axis=1)))

    @property
    def size(self) -> int:
        """Terms per point: the bins of σ², or the groups."""
        return self.sums.size

    def padded(self) -> NormalTerms:
        """The same terms, the sums padded to a size class by zero weights
        (:meth:`~poolwise.families.sums.ShiftedSums.padded`): NUTS's data argument, so
        that data sets of similar sizes share one compiled program."""
        return NormalTerms(self.centre, self.sums.padded())


class NormalNormal(RateFamily):
    """Normal estimates with known standard errors and a normal population."""

    name = "normal"
    theta_label = "group mean θ"
    size_label = "standard error"
    uv_names = ("μ", "log τ")
    hyper_names = ("mu", "tau")
    population_text = "N(μ, τ²)"
    likelihood_latex = r"\mathrm{{N}}({theta}, {size}_j^2)"
    size_node = ("sigma", r"\sigma")
    raw_label = "estimate y"
    size_symbol = "σ"
    #: τ = e^v; μ given τ has sd of order τ/√J, a new group's θ sd τ
    grow_with_v = ("tau", "mu", "theta_new")
    pooling_direction = -1
    default_theta_prior = (0.0, math.inf)
    reference_prior_text = "p(μ, τ) ∝ 1  (uniform on μ and τ, BDA3 §5.4)"

    def marginal_terms(self, y: NDArray, n: NDArray, weights: NDArray) -> NormalTerms:
        """The data reduced once (:class:`NormalTerms`): a point of (μ, τ) then costs the
        bins of σ², not the groups."""
        return NormalTerms.of(y, n, weights)

    def log_marginal_sum(self, alpha: Any, beta: Any, terms: Any, ops: Ops = NUMPY_OPS
                         ) -> Any:
        """Σ_j w_j log N(y_j | μ, σ_j² + τ²) = −½ [Σ w log 2π + Σ w log(σ² + τ²)
        + Σ w d²/(σ² + τ²) − 2m Σ w d/(σ² + τ²) + m² Σ w/(σ² + τ²)] from
        :meth:`marginal_terms` (equal to summing :meth:`log_marginal`, tested)."""
        log_sums, inverse = terms.sums.at(ops.square(beta), ops)
        m = alpha - terms.centre
        quad = inverse[..., 2] - 2.0 * m * inverse[..., 1] + m * m * inverse[..., 0]
        weight = terms.sums.moments[:, 0, 0].sum()  # Σ w (traced when NUTS passes it)
        return -0.5 * (weight * LOG_2PI + log_sums[..., 0] + quad)

    def log_likelihood(self, theta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log N(y_j | θ_j, σ_j²), with n the standard error σ_j."""
        return -0.5 * LOG_2PI - ops.log(n) - 0.5 * ops.square((y - theta) / n)

    def sample_data(self, rng: np.random.Generator, theta: ArrayLike, n: ArrayLike) -> NDArray:
        return rng.normal(np.asarray(theta, dtype=float), np.asarray(n, dtype=float))

    def population(self, alpha: ArrayLike, beta: ArrayLike) -> Any:
        """N(μ, τ²); τ = 0 (a point mass) is kept as a vanishingly narrow normal."""
        from scipy import stats

        return stats.norm(alpha, np.maximum(np.asarray(beta, dtype=float), 1e-300))

    def population_quantile(self, alpha: ArrayLike, beta: ArrayLike, level: float
                            ) -> FloatArray:
        """μ + τ Φ⁻¹(level), as :meth:`population`'s ``ppf`` (τ at least 1e-300), without
        SciPy's frozen distribution over a million groups."""
        from scipy.special import ndtri

        scale = np.maximum(np.asarray(beta, dtype=float), 1e-300)
        return np.asarray(np.asarray(alpha, dtype=float) + scale * ndtri(level), dtype=float)

    def sample_population(
        self, rng: np.random.Generator, alpha: ArrayLike, beta: ArrayLike
    ) -> FloatArray:
        return rng.normal(np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float))

    def population_moments(self, alpha: ArrayLike, beta: ArrayLike
                           ) -> tuple[FloatArray, FloatArray]:
        """N(μ, τ²): mean μ, variance τ²."""
        alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
        return np.broadcast_arrays(alpha, beta**2)  # type: ignore[return-value]

    def population_from_moments(self, mean: ArrayLike, variance: ArrayLike
                                ) -> tuple[FloatArray, FloatArray]:
        """μ = m, τ = √v."""
        return np.asarray(mean, dtype=float), np.sqrt(np.asarray(variance, dtype=float))

    def conjugate_update(
        self, alpha: ArrayLike, beta: ArrayLike, y: ArrayLike, n: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """θ_j | y_j, μ, τ ~ N(y_j − B_j (y_j − μ), (1 − B_j) σ_j²) (lecture 001)."""
        shrink = pooling_factor(beta, n)
        y = np.asarray(y, dtype=float)
        mean = y - shrink * (y - np.asarray(alpha, dtype=float))
        return mean, np.asarray(n, dtype=float) * np.sqrt(1.0 - shrink)

    def log_marginal(self, alpha: Any, beta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log N(y_j | μ, σ_j² + τ²)."""
        variance = ops.square(n) + ops.square(beta)
        return -0.5 * (LOG_2PI + ops.log(variance)) - 0.5 * ops.square(y - alpha) / variance

    def population_stats(self, theta: NDArray, axis: int = -1) -> tuple[Any, Any, Any]:
        """(J, Σ θ_j, Σ θ_j²)."""
        return theta.shape[axis], theta.sum(axis), np.square(theta).sum(axis)

    def log_population_from_stats(
        self, alpha: Any, beta: Any, stats: tuple[Any, Any, Any], ops: Ops = NUMPY_OPS
    ) -> Any:
        """Σ log N(θ_j | μ, τ²) = −J log τ − J/2 log 2π − (S₂ − 2μS₁ + Jμ²) / (2τ²)."""
        count, total, total_sq = stats
        return (-count * (ops.log(beta) + 0.5 * LOG_2PI)
                - (total_sq - 2.0 * alpha * total + count * ops.square(alpha))
                / (2.0 * ops.square(beta)))

    def from_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> tuple[Any, Any]:
        """μ = u, τ = e^v."""
        return u, ops.exp(v)

    def to_uv(self, alpha: ArrayLike, beta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        with np.errstate(divide="ignore"):
            return np.asarray(alpha, dtype=float), np.log(np.asarray(beta, dtype=float))

    def log_jacobian_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> Any:
        """|∂(μ, τ)/∂(u, v)| = τ = e^v."""
        return v + 0.0 * u

    def population_mean(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        return np.asarray(alpha, dtype=float)

    def concentration(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        """The between-group standard deviation τ (a spread: small τ pools more)."""
        return np.asarray(beta, dtype=float)

    def derived(self, a: Any, b: Any) -> dict[str, Any]:
        """Nothing beyond μ and τ themselves."""
        return {}

    def pool(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """Precision-weighted mean Σ w y / Σ w and its standard error 1/√Σw, w = 1/σ²."""
        weights = 1.0 / np.square(n)
        return float(np.sum(weights * y) / np.sum(weights)), float(1.0 / np.sqrt(weights.sum()))

    def pooling_factor(self, alpha: Any, beta: Any, n: Any) -> FloatArray:
        """B_j = σ_j²/(σ_j² + τ²)."""
        return pooling_factor(beta, n)

    def information(self, n: NDArray) -> FloatArray:
        """A group's precision 1/σ² (a smaller standard error says more)."""
        return np.asarray(1.0 / np.square(n), dtype=float)

    def raw_rate(self, y: NDArray, n: NDArray) -> FloatArray:
        """The no-pooling estimate is the group's own estimate y_j."""
        return np.asarray(y, dtype=float)

    def start_uv(self, y: NDArray, n: NDArray) -> NDArray:
        """The pooled mean and the spread of the estimates (at least a tenth of their se)."""
        mean, _ = self.pool(y, n)
        spread = max(float(np.std(y)), 0.1 * float(np.median(n)))
        return np.array([mean, math.log(spread)])

    def uv_scale(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """μ is in the data's units: its scale is the spread of the estimates or their se."""
        return max(float(np.std(y)), float(np.median(n))), 1.0

    def reference_log_prior(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(μ, τ) = 0."""
        return 0.0 * (alpha + beta)

    def moments_estimate(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """DerSimonian & Laird (1986): τ² = max(0, (Q − (J − 1)) / (Σw − Σw²/Σw)).

        Q = Σ w_j (y_j − ȳ_w)² with w_j = 1/σ_j² and ȳ_w the fixed-effect mean; μ is then the
        mean weighted by 1/(σ_j² + τ²). When τ² is truncated at 0 empirical Bayes equals
        complete pooling, and a ConvergenceWarning says so.
        """
        weights = 1.0 / np.square(n)
        fixed = np.sum(weights * y) / weights.sum()
        q = float(np.sum(weights * np.square(y - fixed)))
        scale = float(weights.sum() - np.sum(np.square(weights)) / weights.sum())
        tau2 = max(0.0, (q - (y.size - 1)) / scale) if scale > 0 else 0.0
        if tau2 == 0.0:
            warnings.warn(
                f"the moment estimate of τ is 0 (Q = {q:.3g} ≤ J − 1 = {y.size - 1}): the "
                "estimates vary no more than their standard errors explain, so empirical "
                "Bayes equals complete pooling; use --method exact to keep the uncertainty",
                ConvergenceWarning, stacklevel=4)
        random = 1.0 / (np.square(n) + tau2)
        return float(np.sum(random * y) / random.sum()), math.sqrt(tau2)

    def check_theta_prior(self, a: float, b: float) -> None:
        if not (math.isfinite(a) and b > 0):
            raise SpecificationError(
                f"normal({a:g}, {b:g}) is not a valid prior for θ: the mean must be finite "
                "and the sd > 0 ('flat' is the improper uniform prior)"
            )

    def check_data(self, y: NDArray, n: NDArray, labels: NDArray) -> None:
        bad = np.flatnonzero(~(n > 0) | ~np.isfinite(n) | ~np.isfinite(y))
        if bad.size:
            j = bad[0]
            raise DataError(
                f"group {str(labels[j])!r} has estimate {y[j]:g} with standard error "
                f"{n[j]:g}; estimates must be finite and standard errors > 0"
            )


__all__ = ["NormalNormal", "i_squared", "pooling_factor", "typical_variance"]
