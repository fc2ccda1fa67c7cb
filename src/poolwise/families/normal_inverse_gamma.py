"""Normal data with unknown mean and variance under the Normal-Inverse-Gamma prior.

The model (one group; the lecture's "hierarchical prior for normal data")::

    y_i | θ, σ²  ~iid  N(θ, σ²),        i = 1..n
    θ | σ²       ~     N(μ, σ² τ²)
    σ²           ~     IG(α, β)          (density ∝ (σ²)^(−α−1) exp(−β/σ²))

with μ, τ, α, β fixed. The prior is conjugate: the posterior is again Normal-Inverse-
Gamma, σ² | y ~ IG(α*, β*) and θ | σ², y ~ N(m*, σ² v*), so everything here is closed
form and the posterior is sampled exactly (no Markov chain). With several independent
groups j = 1..J, each with its own (θ_j, σ_j²) and the prior shared, the same formulas
apply group by group: every function broadcasts over the group axis of
:class:`NormalStats`.

Plain NumPy/SciPy maths; nothing heavier is imported.

References
----------
.. [1] L. Zhang, "Hierarchical Models", lecture notes, Division of Biostatistics,
   University of Minnesota: "Hierarchical prior for normal data".
.. [2] A. Gelman, J. B. Carlin, H. S. Stern, D. B. Dunson, A. Vehtari and D. B. Rubin,
   *Bayesian Data Analysis*, 3rd ed. (BDA3), §3.3 "Normal data with a conjugate prior
   distribution" (there with κ₀ = 1/τ², ν₀ = 2α, σ₀² = β/α).
.. [3] K. P. Murphy (2007), "Conjugate Bayesian analysis of the Gaussian distribution",
   §6 "Normal-Inverse-Gamma prior" (there with V₀ = τ², a₀ = α, b₀ = β).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from poolwise.exceptions import DataError, SpecificationError
from poolwise.families.base import FloatArray

__all__ = [
    "NIGPosterior",
    "NIGPrior",
    "NormalStats",
    "group_stats",
    "log_marginal_likelihood",
    "posterior",
    "sample_posterior",
    "sigma2_marginal",
    "sufficient_stats",
    "theta_marginal",
]

# --- the prior ------------------------------------------------------------------------

#: The declared constraints of :class:`NIGPrior`: name → (check, what is valid).
_PRIOR_CONSTRAINTS: dict[str, tuple[Callable[[float], bool], str]] = {
    "mu": (math.isfinite, "a finite real number"),
    "tau": (lambda x: math.isfinite(x) and x > 0, "a finite number > 0"),
    "alpha": (lambda x: math.isfinite(x) and x > 0, "a finite number > 0"),
    "beta": (lambda x: math.isfinite(x) and x > 0, "a finite number > 0"),
}


@dataclass(frozen=True)
class NIGPrior:
    """The Normal-Inverse-Gamma prior θ | σ² ~ N(μ, σ² τ²), σ² ~ IG(α, β).

    Parameters
    ----------
    mu : float
        Prior mean of θ, μ. Any finite number.
    tau : float
        τ > 0: the prior standard deviation of θ in units of σ, so that
        sd(θ | σ²) = σ τ. 1/τ² acts as a prior number of observations.
    alpha : float
        Shape α > 0 of the inverse-gamma prior of σ² (2α prior degrees of freedom).
    beta : float
        Scale β > 0 of the inverse-gamma prior of σ² (density ∝ (σ²)^(−α−1) e^(−β/σ²)).

    Raises
    ------
    TypeError
        If a value is not a real number.
    SpecificationError
        If a value is outside its range (non-finite, or τ, α, β ≤ 0).

    Examples
    --------
    >>> NIGPrior(mu=0.0, tau=2.0, alpha=1.0, beta=1.0)
    NIGPrior(mu=0.0, tau=2.0, alpha=1.0, beta=1.0)
    """

    mu: float
    tau: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        for name, (check, valid) in _PRIOR_CONSTRAINTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"NIGPrior {name} must be a real number, not {type(value).__name__}"
                )
            value = float(value)
            if not check(value):
                raise SpecificationError(
                    f"NIGPrior {name} = {value:g} is not valid: {name} must be {valid}"
                )
            object.__setattr__(self, name, value)


# --- sufficient statistics ------------------------------------------------------------


def _as_array(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=float)


def _first_bad(ok: NDArray[np.bool_]) -> tuple[int, ...] | None:
    """The index of the first False in ``ok`` (``()`` for a 0-d False), or None."""
    bad = np.argwhere(~np.atleast_1d(ok))
    if not bad.size:
        return None
    return tuple(int(i) for i in bad[0])[: ok.ndim]


@dataclass(frozen=True, eq=False, init=False)
class NormalStats:
    """Sufficient statistics of normal observations, one set per group.

    Parameters
    ----------
    n : array_like
        Number of observations n_j ≥ 1 (whole numbers).
    mean : array_like
        Sample mean ȳ_j.
    sum_sq_dev : array_like
        Sum of squared deviations from the mean, Σ_i (y_ij − ȳ_j)² = (n_j − 1) s_j² ≥ 0
        (0 when n_j = 1).

    The three broadcast to a common shape: ``()`` for one group, ``(J,)`` for J groups.
    Build them from raw observations with :func:`sufficient_stats` (one group) or
    :func:`group_stats` (several).

    Raises
    ------
    DataError
        If a count is not a whole number ≥ 1, a mean is not finite, or a sum of squares
        is negative or not finite.

    Notes
    -----
    The centred sum of squares is stored rather than Σ y² (the lecture's statistic,
    :attr:`sum_sq`) because Σ y² − n ȳ² loses all precision when |ȳ| ≫ s.
    """

    n: FloatArray
    mean: FloatArray
    sum_sq_dev: FloatArray

    def __init__(self, n: ArrayLike, mean: ArrayLike, sum_sq_dev: ArrayLike) -> None:
        try:
            arrays = np.broadcast_arrays(_as_array(n), _as_array(mean), _as_array(sum_sq_dev))
        except ValueError as err:  # shapes that do not broadcast, or non-numbers
            raise DataError(f"NormalStats needs numbers of broadcastable shapes: {err}") from None
        count, ybar, ss = (np.array(a) for a in arrays)  # own, writable copies
        if count.ndim > 1:
            raise DataError(
                f"NormalStats holds one group (shape ()) or J groups (shape (J,)), not shape "
                f"{count.shape}"
            )
        for name, values, ok, valid in (
            (
                "n",
                count,
                np.isfinite(count) & (count >= 1) & (count == np.round(count)),
                "a whole number ≥ 1",
            ),
            ("mean", ybar, np.isfinite(ybar), "finite"),
            ("sum_sq_dev", ss, np.isfinite(ss) & (ss >= 0), "finite and ≥ 0"),
            ("sum_sq_dev", ss, (count != 1) | (ss == 0), "0 when n = 1"),
        ):
            index = _first_bad(np.asarray(ok))
            if index is not None:
                where = f"group {index[0]}: " if index else ""
                raise DataError(
                    f"{where}{name} = {values[index]:g} is not valid; it must be {valid}"
                )
        for name, values in (("n", count), ("mean", ybar), ("sum_sq_dev", ss)):
            values.flags.writeable = False
            object.__setattr__(self, name, values)

    @property
    def shape(self) -> tuple[int, ...]:
        """The group shape: ``()`` for one group, ``(J,)`` for J groups."""
        return self.n.shape

    @property
    def sum_sq(self) -> FloatArray:
        """Σ_i y_i², the lecture's statistic: Σ (y_i − ȳ)² + n ȳ²."""
        return self.sum_sq_dev + self.n * self.mean**2

    def __repr__(self) -> str:
        return f"NormalStats(n={self.n!r}, mean={self.mean!r}, sum_sq_dev={self.sum_sq_dev!r})"


def _observations(y: ArrayLike, where: str) -> FloatArray:
    """y as a 1-D float array, or a one-line DataError naming the first bad value."""
    raw = np.asarray(y)
    if raw.ndim != 1:
        raise DataError(f"{where}observations must be a 1-D sequence, not shape {raw.shape}")
    if raw.size == 0:
        raise DataError(f"{where}needs at least 1 observation, got none")
    if raw.dtype.kind not in "iuf":
        for i, value in enumerate(raw.tolist()):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise DataError(
                    f"{where}observation {i} is {value!r}; observations must be real numbers"
                )
    values = raw.astype(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}observation {i} is {values[i]:g}; observations must be finite")
    return values


def sufficient_stats(y: ArrayLike) -> NormalStats:
    """(n, ȳ, Σ (y_i − ȳ)²) of one group's observations.

    Parameters
    ----------
    y : array_like, shape (n,)
        The observations, at least one, all finite.

    Returns
    -------
    NormalStats
        With scalar (shape ``()``) fields.

    Raises
    ------
    DataError
        If ``y`` is empty, not 1-D, or holds a value that is not a finite number (the
        message names its 0-based position and value).

    Examples
    --------
    >>> s = sufficient_stats([1.0, 2.0, 6.0])
    >>> float(s.n), float(s.mean), float(s.sum_sq_dev)
    (3.0, 3.0, 14.0)
    """
    values = _observations(y, "")
    mean = values.mean()
    return NormalStats(values.size, mean, np.sum((values - mean) ** 2))


def group_stats(groups: Sequence[ArrayLike]) -> NormalStats:
    """Sufficient statistics of J groups of observations (the groups may differ in size).

    Parameters
    ----------
    groups : sequence of array_like
        ``groups[j]`` holds group j's observations, at least one, all finite.

    Returns
    -------
    NormalStats
        With fields of shape ``(J,)``, in the order of ``groups``.

    Raises
    ------
    DataError
        If there are no groups, or a group is empty or holds a value that is not a finite
        number (the message names the group, the position and the value, 0-based).

    Examples
    --------
    >>> s = group_stats([[1.0, 3.0], [2.0, 2.0, 5.0]])
    >>> s.shape, s.n.tolist(), s.mean.tolist()
    ((2,), [2.0, 3.0], [2.0, 3.0])
    """
    if len(groups) == 0:
        raise DataError("group_stats needs at least 1 group, got none")
    per_group = [_group_stats_at(g, j) for j, g in enumerate(groups)]
    return NormalStats(*(np.array([s[k] for s in per_group]) for k in range(3)))


def _group_stats_at(y: ArrayLike, j: int) -> tuple[float, float, float]:
    values = _observations(y, f"group {j}: ")
    mean = float(values.mean())
    return float(values.size), mean, float(np.sum((values - mean) ** 2))


# --- the posterior --------------------------------------------------------------------


@dataclass(frozen=True, eq=False, init=False)
class NIGPosterior:
    """The Normal-Inverse-Gamma posterior: σ² | y ~ IG(α*, β*), θ | σ², y ~ N(m*, σ² v*).

    Parameters
    ----------
    m : array_like
        m*, the posterior mean of θ (given any σ²).
    v : array_like
        v* > 0, the posterior variance of θ in units of σ²: Var(θ | σ², y) = σ² v*.
    alpha : array_like
        α* > 0, the shape of the inverse-gamma posterior of σ².
    beta : array_like
        β* > 0, its scale.

    All four broadcast to the group shape (``()`` or ``(J,)``). Usually made by
    :func:`posterior`. It has the prior's form with τ² = v*, so :meth:`as_prior` turns a
    one-group posterior into the prior for more data.

    Raises
    ------
    SpecificationError
        If a value is not finite or (for v, alpha, beta) not > 0.
    """

    m: FloatArray
    v: FloatArray
    alpha: FloatArray
    beta: FloatArray

    def __init__(self, m: ArrayLike, v: ArrayLike, alpha: ArrayLike, beta: ArrayLike) -> None:
        try:
            arrays = np.broadcast_arrays(*(_as_array(x) for x in (m, v, alpha, beta)))
        except ValueError as err:  # shapes that do not broadcast, or non-numbers
            raise SpecificationError(
                f"NIGPosterior needs numbers of broadcastable shapes: {err}"
            ) from None
        if arrays[0].ndim > 1:
            raise SpecificationError(
                f"NIGPosterior holds one group (shape ()) or J groups (shape (J,)), not shape "
                f"{arrays[0].shape}"
            )
        for name, array in zip(("m", "v", "alpha", "beta"), arrays, strict=True):
            values = np.array(array)  # an own, writable copy
            positive = name != "m"
            ok = np.isfinite(values) & (values > 0) if positive else np.isfinite(values)
            index = _first_bad(np.asarray(ok))
            if index is not None:
                where = f"group {index[0]}: " if index else ""
                valid = "finite and > 0" if positive else "finite"
                raise SpecificationError(
                    f"{where}NIGPosterior {name} = {values[index]:g} is not valid; "
                    f"it must be {valid}"
                )
            values.flags.writeable = False
            object.__setattr__(self, name, values)

    @property
    def shape(self) -> tuple[int, ...]:
        """The group shape: ``()`` for one group, ``(J,)`` for J groups."""
        return self.m.shape

    def as_prior(self) -> NIGPrior:
        """This one-group posterior as the prior for further data (μ = m*, τ = √v*)."""
        if self.shape != ():
            raise SpecificationError(
                f"as_prior needs a one-group posterior; this one has group shape {self.shape}"
            )
        return NIGPrior(
            float(self.m), math.sqrt(float(self.v)), float(self.alpha), float(self.beta)
        )

    def __repr__(self) -> str:
        return f"NIGPosterior(m={self.m!r}, v={self.v!r}, alpha={self.alpha!r}, beta={self.beta!r})"


def _check_types(prior: Any, stats_: Any) -> None:
    if not isinstance(prior, NIGPrior):
        raise TypeError(f"prior must be an NIGPrior, not {type(prior).__name__}")
    if not isinstance(stats_, NormalStats):
        raise TypeError(
            f"stats must be NormalStats (see sufficient_stats), not {type(stats_).__name__}"
        )


def posterior(prior: NIGPrior, stats: NormalStats) -> NIGPosterior:
    """The posterior parameters (m*, v*, α*, β*), for each group.

    Parameters
    ----------
    prior : NIGPrior
        (μ, τ, α, β), shared by all groups.
    stats : NormalStats
        Each group's (n, ȳ, Σ (y − ȳ)²), shape ``()`` or ``(J,)``.

    Returns
    -------
    NIGPosterior
        Fields of the group shape of ``stats``.

    Notes
    -----
    Multiplying the likelihood by the prior and completing the square in θ
    ([2]_ §3.3, [3]_ §6)::

        θ | σ², y ~ N(m*, σ² v*),  v* = 1 / (n + 1/τ²),  m* = (n ȳ + μ/τ²) v*
        σ² | y    ~ IG(α*, β*),    α* = α + n/2,
        β* = β + ½ [Σ y_i² + μ²/τ² − (n ȳ + μ/τ²)² / (n + 1/τ²)]
           = β + ½ [Σ (y_i − ȳ)² + n (ȳ − μ)² / (1 + n τ²)].

    The second form of β* is the one computed (it avoids the cancellation in
    Σ y² − n ȳ²); the two are algebraically equal. m* is the lecture's
    (μ/n + τ² ȳ) / (1/n + τ²) multiplied above and below by n/τ².

    **Correction to the lecture slide** [1]_. The slide prints the kernel of p(σ² | y)
    as (σ²)^(−α+n/2+1) exp{−(1/σ²) (Σ y² + μ²/τ² − (nȳ + μ/τ²)²/(n + 1/τ²))} and so
    β* = Σ y² + μ²/τ² − (nȳ + μ/τ²)²/(n + 1/τ²). Three things are wrong there:

    * the exponent is −(α + n/2 + 1), not −α + n/2 + 1 (a sign typo; with it α* would
      not be α + n/2 as the slide then states);
    * the bracket must be halved, because every normal density contributes
      exp{−(·)/(2σ²)}: the likelihood exp{−Σ (y_i − θ)²/(2σ²)} and the prior of θ
      exp{−(θ − μ)²/(2σ²τ²)}; integrating out θ leaves exp{−[bracket]/(2σ²)};
    * the prior's own β is missing: IG(σ² | α, β) contributes exp(−β/σ²).

    Hence β* = β + ½[bracket]. (The (σ²)^(−1/2) of N(θ | μ, σ²τ²) cancels against the
    (σ²)^(+1/2) from integrating θ out, which is why α* gains n/2 and not (n+1)/2.)
    The test suite checks the corrected β* against a brute-force numerical integration
    of likelihood × prior, and that the slide's literal β* does not match it.

    Examples
    --------
    >>> post = posterior(NIGPrior(mu=0.0, tau=1.0, alpha=2.0, beta=1.0),
    ...                  sufficient_stats([1.0, 2.0, 3.0]))
    >>> float(post.m), float(post.v), float(post.alpha), float(post.beta)
    (1.5, 0.25, 3.5, 3.5)
    """
    _check_types(prior, stats)
    return NIGPosterior(*posterior_parameters(prior.mu, prior.tau, prior.alpha, prior.beta,
                                              stats))


def posterior_parameters(mu: ArrayLike, tau: ArrayLike, alpha: ArrayLike, beta: ArrayLike,
                         stats: NormalStats
                         ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(m*, v*, α*, β*) of :func:`posterior` for priors given as arrays that broadcast
    against the groups (e.g. shaped (P, 1) for P priors and J groups), unchecked: the
    formulas of :func:`posterior` once, for many priors at once."""
    n, ybar, ss = stats.n, stats.mean, stats.sum_sq_dev
    mu, tau2 = np.asarray(mu, dtype=float), np.asarray(tau, dtype=float) ** 2
    v = 1.0 / (n + 1.0 / tau2)
    m = (n * ybar + mu / tau2) * v
    alpha_post = np.asarray(alpha, dtype=float) + 0.5 * n
    beta_post = beta + 0.5 * (ss + n * (ybar - mu) ** 2 / (1.0 + n * tau2))
    return (np.asarray(m, dtype=float), np.asarray(v, dtype=float),
            np.asarray(alpha_post, dtype=float), np.asarray(beta_post, dtype=float))


def log_marginal_at(mu: ArrayLike, tau: ArrayLike, alpha: ArrayLike, beta: ArrayLike,
                    stats: NormalStats) -> FloatArray:
    """log p(y_j | μ, τ, α, β) of :func:`log_marginal_likelihood` for priors given as
    arrays that broadcast against the groups, unchecked."""
    _, _, alpha_post, beta_post = posterior_parameters(mu, tau, alpha, beta, stats)
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    n = stats.n
    return np.asarray(-0.5 * n * math.log(2.0 * math.pi)
                      - 0.5 * np.log1p(n * np.asarray(tau, dtype=float) ** 2)
                      + alpha * np.log(beta) - alpha_post * np.log(beta_post)
                      + special.gammaln(alpha_post) - special.gammaln(alpha), dtype=float)


def sample_posterior(
    posterior: NIGPosterior, size: int, seed: int | np.random.Generator = 0
) -> tuple[FloatArray, FloatArray]:
    """Exact, independent draws of (θ, σ²) from the posterior (the lecture's algorithm).

    For each draw i = 1..size (vectorised), and for each group:

    1. σ²_(i) ~ p(σ² | y) = IG(α*, β*);
    2. θ_(i) ~ p(θ | σ²_(i), y) = N(m*, σ²_(i) v*).

    Each pair is an exact draw from the joint posterior, so the draws are independent
    (the effective sample size is ``size``).

    Parameters
    ----------
    posterior : NIGPosterior
        From :func:`posterior`; group shape ``()`` or ``(J,)``.
    size : int
        Number of draws, ≥ 1.
    seed : int or numpy.random.Generator, default 0
        Passed to :func:`numpy.random.default_rng`; the same seed gives the same draws.

    Returns
    -------
    theta, sigma2 : ndarray, shape (size,) + group shape
        The draws; the draw axis comes first, then the group axis, as in ArviZ's
        ``(draw, group)`` dims.

    Raises
    ------
    TypeError
        If ``posterior`` is not an :class:`NIGPosterior` or ``size`` not an integer.
    SpecificationError
        If ``size`` < 1.

    Examples
    --------
    >>> post = posterior(NIGPrior(0.0, 1.0, 2.0, 1.0), group_stats([[1.0, 2.0], [5.0]]))
    >>> theta, sigma2 = sample_posterior(post, size=1000, seed=1)
    >>> theta.shape, sigma2.shape
    ((1000, 2), (1000, 2))
    """
    if not isinstance(posterior, NIGPosterior):
        raise TypeError(f"posterior must be an NIGPosterior, not {type(posterior).__name__}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"size must be an integer, not {type(size).__name__}")
    if size < 1:
        raise SpecificationError(f"size = {size} is not valid; it must be an integer ≥ 1")
    rng = np.random.default_rng(seed)
    shape = (int(size), *posterior.shape)
    return draw_parameters(rng, posterior.m, posterior.v, posterior.alpha, posterior.beta,
                           shape)


def draw_parameters(rng: np.random.Generator, m: ArrayLike, v: ArrayLike, alpha: ArrayLike,
                    beta: ArrayLike, shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """One draw of (θ, σ²) of each element of ``shape`` from the posterior (m*, v*, α*, β*)
    broadcast to it: the steps of :func:`sample_posterior`."""
    # 1. σ² ~ IG(α*, β*): if G ~ Gamma(α*, 1) then β*/G ~ IG(α*, β*)
    sigma2 = np.asarray(beta, dtype=float) / rng.standard_gamma(np.broadcast_to(alpha, shape))
    # 2. θ | σ² ~ N(m*, σ² v*)
    theta = np.asarray(m, dtype=float) + np.sqrt(sigma2 * np.asarray(v)) * rng.standard_normal(
        shape)
    return np.asarray(theta, dtype=float), np.asarray(sigma2, dtype=float)


def theta_marginal(posterior: NIGPosterior) -> Any:
    """p(θ | y) as a frozen :func:`scipy.stats.t`: t_{2α*}(m*, β* v* / α*).

    Parameters
    ----------
    posterior : NIGPosterior

    Returns
    -------
    scipy.stats frozen t distribution
        ``df = 2α*``, ``loc = m*``, ``scale = √(β* v* / α*)``, vectorised over groups.

    Notes
    -----
    The answer to the lecture's closing question [1]_. Integrating σ² out of
    N(θ | m*, σ² v*) IG(σ² | α*, β*)::

        p(θ | y) ∝ ∫ (σ²)^(−α*−1/2−1) exp{−[β* + (θ − m*)²/(2v*)]/σ²} dσ²
                 ∝ [1 + (θ − m*)² / (2α* · β* v*/α*)]^(−(2α*+1)/2),

    a Student t with 2α* degrees of freedom. Its mean m* exists when α* > 1/2 and its
    variance β* v* / (α* − 1) when α* > 1 ([3]_ eq. 110).
    """
    if not isinstance(posterior, NIGPosterior):
        raise TypeError(f"posterior must be an NIGPosterior, not {type(posterior).__name__}")
    from scipy import stats

    scale = np.sqrt(posterior.beta * posterior.v / posterior.alpha)
    return stats.t(df=2.0 * posterior.alpha, loc=posterior.m, scale=scale)


def sigma2_marginal(posterior: NIGPosterior) -> Any:
    """p(σ² | y) as a frozen :func:`scipy.stats.invgamma`: IG(α*, β*).

    ``scipy.stats.invgamma(a=α*, scale=β*)``, density ∝ (σ²)^(−α*−1) exp(−β*/σ²); mean
    β*/(α* − 1) when α* > 1, variance β*² / ((α* − 1)² (α* − 2)) when α* > 2.
    """
    if not isinstance(posterior, NIGPosterior):
        raise TypeError(f"posterior must be an NIGPosterior, not {type(posterior).__name__}")
    from scipy import stats

    return stats.invgamma(posterior.alpha, scale=posterior.beta)


def log_marginal_likelihood(prior: NIGPrior, stats: NormalStats) -> float | FloatArray:
    """log p(y | μ, τ, α, β) in closed form, for each group.

    Parameters
    ----------
    prior : NIGPrior
    stats : NormalStats
        Shape ``()`` or ``(J,)``.

    Returns
    -------
    float or ndarray of shape (J,)
        log p(y_j) for each group. Given the fixed prior the groups are independent, so
        the log marginal likelihood of all the data is the sum over groups.

    Notes
    -----
    With (m*, v*, α*, β*) from :func:`posterior` ([3]_ eq. 95; [2]_ §3.3)::

        p(y) = ∫∫ Π N(y_i | θ, σ²) N(θ | μ, σ²τ²) IG(σ² | α, β) dθ dσ²
             = (2π)^(−n/2) · √(v*/τ²) · β^α / β*^α* · Γ(α*) / Γ(α),

    and √(v*/τ²) = (1 + n τ²)^(−1/2). Equivalently y is multivariate t with 2α degrees of
    freedom, location μ 1 and scale matrix (β/α)(I + τ² 1 1ᵀ) (used in the tests).

    Examples
    --------
    >>> prior = NIGPrior(mu=0.0, tau=1.0, alpha=2.0, beta=1.0)
    >>> round(float(log_marginal_likelihood(prior, sufficient_stats([1.0, 2.0, 3.0]))), 6)
    -6.63366
    """
    _check_types(prior, stats)
    out = log_marginal_at(prior.mu, prior.tau, prior.alpha, prior.beta, stats)
    return out[()] if out.ndim == 0 else out
