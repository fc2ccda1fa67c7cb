"""What every conjugate rate family provides.

A rate family has group parameters θ_j with a conjugate population distribution
p(θ | α, β), so that θ can be integrated out and the hyperparameters live in two
dimensions. Methods work in the unconstrained coordinates (u, v) = (location of the
population mean, log of its concentration) that each family defines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from poolwise._ops import NUMPY_OPS, Ops
from poolwise.families.sums import padded

FloatArray = NDArray[np.float64]

#: shape parameters from which :func:`cornish_fisher` replaces an inverse incomplete beta or
#: gamma function: its error there is below 2e-4 posterior sd (measured over levels 0.0005 to
#: 0.9995 and shape ratios 1 to 10^4, tests/test_families.py), far below the 1e-3 sd to
#: which group quantiles are solved, and it costs a few array operations where the inverse
#: costs microseconds a value (10^6 groups: seconds)
CORNISH_FISHER_SHAPE = 200.0


def cornish_fisher(mean: FloatArray, sd: FloatArray, skewness: FloatArray,
                   excess_kurtosis: FloatArray, level: float) -> FloatArray:
    """The ``level`` quantile from the first four cumulants (Cornish and Fisher 1938):
    mean + sd w, w = z + (z² − 1)γ₁/6 + (z³ − 3z)γ₂/24 − (2z³ − 5z)γ₁²/36, z = Φ⁻¹(level);
    its error is of order γ₁³, γ₁γ₂ (shape^(-3/2) for a beta or gamma)."""
    from scipy import special

    z = float(special.ndtri(level))
    w = (z + (z * z - 1.0) * skewness / 6.0 + (z**3 - 3.0 * z) * excess_kurtosis / 24.0
         - (2.0 * z**3 - 5.0 * z) * skewness**2 / 36.0)
    return mean + sd * w


class CompressedGroups(NamedTuple):
    """The compressed data (distinct (y, n) and their counts) as they come."""

    y: NDArray
    n: NDArray
    weights: NDArray

    @property
    def size(self) -> int:
        return max(int(self.y.size), 1)

    def padded(self) -> CompressedGroups:
        """The same groups padded to a :func:`~poolwise.families.sums.size_class` by groups
        (y = 0, n = 1) of weight 0."""
        return CompressedGroups(padded(self.y, 0.0), padded(self.n, 1.0),
                                padded(self.weights, 0.0))


class RateFamily(ABC):
    """A likelihood with a conjugate population distribution, θ_j ~ Pop(α, β)."""

    #: name used on the command line and in saved fits
    name: str
    #: what one group's θ means, for tables and plots
    theta_label: str
    #: what the size column means ("trials" or "exposure")
    size_label: str
    #: names of the unconstrained hyperparameter coordinates (u, v)
    uv_names: tuple[str, str]
    #: the fixed conjugate prior for θ under no or complete pooling (Jeffreys)
    default_theta_prior: tuple[float, float]
    #: the no-pooling estimate, as labelled in plots
    raw_label: str = "rate y / n"
    #: the symbol of the size column, as labelled in plots
    size_symbol: str = "n"
    #: the population distribution, as printed
    population_text: str = "Pop(α, β)"
    #: the likelihood in LaTeX, with {size} (the size's symbol) and {theta} to fill in
    likelihood_latex: str
    #: the size column as a graph node: its name and its LaTeX symbol
    size_node: tuple[str, str] = ("n", "n")
    #: names of the population's two parameters, as posterior variables
    hyper_names: tuple[str, str] = ("alpha", "beta")
    #: +1 if v → +∞ means complete pooling (a concentration), −1 if v → −∞ does (a spread)
    pooling_direction: int = 1
    #: posterior variables that grow as e^v when v → +∞: their mean exists only when
    #: p(v | y) falls faster than e^(−v), their sd when faster than e^(−2v)
    grow_with_v: tuple[str, ...] = ("alpha", "beta", "kappa")

    def derived(self, a: Any, b: Any) -> dict[str, Any]:
        """Quantities reported beside the two hyperparameters: population mean μ and
        concentration κ for the rate families."""
        return {"mu": self.population_mean(a, b), "kappa": self.concentration(a, b)}

    def start_uv(self, y: NDArray, n: NDArray) -> NDArray:
        """A sensible (u, v): the pooled rate and a moderate concentration of 10."""
        pooled = float(np.sum(y) + 0.5) / float(np.sum(n) + 1.0)
        alpha, beta = self.population_with_mean(pooled, 10.0)
        u, v = self.to_uv(alpha, beta)
        return np.array([float(u), float(v)])

    def uv_scale(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """Natural units of (u, v) for the quadrature box: 1 for logs and logits."""
        return 1.0, 1.0

    def population_with_mean(self, mean: Any, concentration: Any) -> tuple[Any, Any]:
        """(α, β) of the population with this mean and concentration (elementwise)."""
        raise NotImplementedError

    def mean_concentration(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS
                           ) -> tuple[Any, Any, Any]:
        """(μ, κ, log |∂(μ, κ)/∂(α, β)|): the population mean :meth:`population_mean`, the
        concentration :meth:`concentration` and the log Jacobian that turns a prior on
        (μ, κ) into one on (α, β), in arithmetic JAX can trace."""
        from poolwise.exceptions import SpecificationError

        raise SpecificationError(
            f"the {self.name} family takes no prior on a population mean and concentration")

    def pool(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """The data of all groups as one group (complete pooling): (Σ y, Σ n)."""
        return float(np.sum(y)), float(np.sum(n))

    # --- the likelihood -------------------------------------------------------------
    @abstractmethod
    def log_likelihood(self, theta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(y_j | θ_j, n_j) for each group."""

    @abstractmethod
    def sample_data(self, rng: np.random.Generator, theta: ArrayLike, n: ArrayLike) -> NDArray:
        """Draw y ~ p(y | θ, n)."""

    # --- the population distribution and conjugacy -----------------------------------
    @abstractmethod
    def population(self, alpha: ArrayLike, beta: ArrayLike) -> Any:
        """The population distribution of θ as a frozen SciPy distribution."""

    def population_quantile(self, alpha: ArrayLike, beta: ArrayLike, level: float
                            ) -> FloatArray:
        """The ``level`` quantile of Pop(α, β), elementwise (a family may compute it faster
        than its frozen SciPy distribution)."""
        return np.asarray(self.population(alpha, beta).ppf(level), dtype=float)

    @abstractmethod
    def population_moments(self, alpha: ArrayLike, beta: ArrayLike
                           ) -> tuple[FloatArray, FloatArray]:
        """The mean and variance of the population distribution Pop(α, β) (closed form)."""

    @abstractmethod
    def population_from_moments(self, mean: ArrayLike, variance: ArrayLike
                                ) -> tuple[FloatArray, FloatArray]:
        """(α, β) of the population distribution with this mean and variance (moment
        matching)."""

    @abstractmethod
    def conjugate_update(
        self, alpha: ArrayLike, beta: ArrayLike, y: ArrayLike, n: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Parameters of p(θ_j | y_j, α, β), which is of the population's form."""

    @abstractmethod
    def log_marginal(self, alpha: Any, beta: Any, y: Any, n: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(y_j | α, β) = log ∫ p(y_j | θ) p(θ | α, β) dθ for each group."""

    @abstractmethod
    def log_population_from_stats(
        self, alpha: Any, beta: Any, stats: tuple[Any, Any, Any], ops: Ops = NUMPY_OPS
    ) -> Any:
        """Σ_j log p(θ_j | α, β) from the sufficient statistics of :meth:`population_stats`."""

    @abstractmethod
    def population_stats(self, theta: NDArray, axis: int = -1) -> tuple[Any, Any, Any]:
        """Sufficient statistics of θ_1..θ_J for the population density (J, s1, s2)."""

    # --- coordinates ----------------------------------------------------------------
    @abstractmethod
    def from_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> tuple[Any, Any]:
        """(α, β) from the unconstrained coordinates (u, v)."""

    @abstractmethod
    def to_uv(self, alpha: ArrayLike, beta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(u, v) from (α, β)."""

    @abstractmethod
    def log_jacobian_uv(self, u: Any, v: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log |∂(α, β) / ∂(u, v)|, so that p(u, v) = p(α, β) |J|."""

    def population_mean_density(self, u: NDArray, points: int = 2001
                                ) -> tuple[FloatArray, FloatArray]:
        """The density of the population mean μ = g(u) on a grid of ``points``, from draws
        of the coordinate ``u``: a Gaussian KDE of u divided by |dμ/du|, so that it respects
        the bounds of μ. The bandwidth is Silverman's robust rule, 0.9 min(sd, IQR/1.349)
        n^(−1/5): a heavy tail (μ without a finite mean) would inflate the sd's.
        Empty arrays when every draw is the same."""
        from scipy.stats import gaussian_kde

        u = np.asarray(u, dtype=float)
        spread = float(np.std(u))
        if spread == 0.0:
            empty = np.array([], dtype=float)
            return empty, empty
        q1, q3 = np.quantile(u, [0.25, 0.75])
        robust = min(spread, float(q3 - q1) / 1.349) or spread
        factor = 0.9 * robust / spread * u.size ** (-0.2)
        low, high = np.quantile(u, [0.0005, 0.9995])
        grid_u = np.linspace(float(low), float(high), points)
        mu_grid = np.asarray(self.population_mean(*self.from_uv(grid_u, np.zeros_like(grid_u))),
                             dtype=float)
        density = gaussian_kde(u, bw_method=factor)(grid_u) / np.abs(np.gradient(mu_grid, grid_u))
        return mu_grid, np.asarray(density, dtype=float)

    @abstractmethod
    def population_mean(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        """E[θ | α, β], the population mean rate."""

    @abstractmethod
    def concentration(self, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
        """The family's concentration (prior sample size), exp(v)."""

    @abstractmethod
    def reference_log_prior(self, alpha: Any, beta: Any, ops: Ops = NUMPY_OPS) -> Any:
        """The diffuse reference hyperprior log p(α, β) (BDA ch. 5 and its analogue)."""

    reference_prior_text: str

    @abstractmethod
    def moments_estimate(self, y: NDArray, n: NDArray) -> tuple[float, float]:
        """The population parameters by the method of moments."""

    # --- validation -----------------------------------------------------------------
    @abstractmethod
    def check_theta_prior(self, a: float, b: float) -> None:
        """Raise if (a, b) are not valid parameters of the fixed conjugate prior."""

    @abstractmethod
    def check_data(self, y: NDArray, n: NDArray, labels: NDArray) -> None:
        """Raise :class:`~poolwise.exceptions.DataError` naming the first bad group."""

    def pooling_factor(self, alpha: Any, beta: Any, n: Any) -> FloatArray:
        """The weight of the population mean in E[θ_j | y_j, α, β] (0: none, 1: complete)."""
        raise NotImplementedError

    def information(self, n: NDArray) -> FloatArray:
        """How much a group's data say, for marker sizes: its size n."""
        return np.asarray(n, dtype=float)

    def raw_rate(self, y: NDArray, n: NDArray) -> FloatArray:
        """The no-pooling point estimate y_j / n_j."""
        return np.asarray(y, dtype=float) / np.asarray(n, dtype=float)

    def conditional(self, alpha: ArrayLike, beta: ArrayLike, y: ArrayLike, n: ArrayLike) -> Any:
        """p(θ_j | y_j, α, β) as a frozen SciPy distribution (vectorised)."""
        a, b = self.conjugate_update(alpha, beta, y, n)
        return self.population(a, b)

    def sample_conditional(
        self,
        rng: np.random.Generator,
        alpha: ArrayLike,
        beta: ArrayLike,
        y: ArrayLike,
        n: ArrayLike,
    ) -> FloatArray:
        """Draw θ_j ~ p(θ_j | y_j, α, β), broadcasting over draws and groups."""
        a, b = self.conjugate_update(alpha, beta, y, n)
        return self.sample_population(rng, a, b)

    @abstractmethod
    def sample_population(
        self, rng: np.random.Generator, alpha: ArrayLike, beta: ArrayLike
    ) -> FloatArray:
        """Draw θ ~ Pop(α, β), broadcasting."""

    def log_marginal_total(
        self, alpha: Any, beta: Any, y: Any, n: Any, weights: Any, ops: Ops = NUMPY_OPS
    ) -> Any:
        """Σ_j w_j log p(y_j | α, β) for α, β of any shape (...), the data concrete arrays."""
        return self.log_marginal_sum(alpha, beta, self.marginal_terms(y, n, weights), ops)

    def marginal_terms(self, y: NDArray, n: NDArray, weights: NDArray) -> Any:
        """The data reduced once for :meth:`log_marginal_sum` at many (α, β): a NamedTuple
        of arrays with ``size``, the terms one point costs, and ``padded()``, the same
        terms in arrays of a size class (by default the data themselves)."""
        return CompressedGroups(np.asarray(y, dtype=float), np.asarray(n, dtype=float),
                            np.asarray(weights, dtype=float))

    def log_marginal_sum(self, alpha: Any, beta: Any, terms: Any, ops: Ops = NUMPY_OPS
                         ) -> Any:
        """Σ_j w_j log p(y_j | α, β) from :meth:`marginal_terms` (by default the sum of
        :meth:`log_marginal` over the groups)."""
        return self.log_marginal(alpha[..., None], beta[..., None], terms.y, terms.n,
                                 ops) @ terms.weights


__all__ = ["CompressedGroups", "FloatArray", "RateFamily"]
