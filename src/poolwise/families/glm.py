"""Row log-likelihoods of the generalised linear families, as functions of the linear
predictor η, with the two derivatives Newton's method needs.

For a row with response y (and trials n):

binomial (logit link; bernoulli is n = 1)
    ℓ(η) = y log σ(η) + (n − y) log σ(−η) + log C(n, y),
    ℓ′(η) = y − n σ(η),   −ℓ″(η) = n σ(η) σ(−η);
poisson (log link)
    ℓ(η) = y η − e^η − log y!,   ℓ′(η) = y − e^η,   −ℓ″(η) = e^η.

Both are concave in η (−ℓ″ ≥ 0): with η linear in the coefficients, a group's
log-likelihood is concave in its effects, which is what
:mod:`poolwise.inference.agq` relies on (its Newton steps and the envelope of its
exact draws). A new family is one more class with the same three methods.

``eta`` may carry trailing axes (one column per quadrature node or per proposal): the
rows are its first axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

FloatArray = NDArray[np.float64]


def _rows(values: FloatArray, eta: FloatArray) -> FloatArray:
    """``values`` (n,) shaped to broadcast against ``eta`` (n, ...)."""
    return values.reshape(values.shape + (1,) * (eta.ndim - 1))


@dataclass(frozen=True, eq=False)
class BinomialRows:
    """y successes of n trials per row, logit link (module docstring)."""

    y: FloatArray
    trials: FloatArray
    #: log C(n, y) per row (:meth:`of` computes it)
    constant: FloatArray
    name: ClassVar[str] = "binomial"

    @classmethod
    def of(cls, y: FloatArray, trials: FloatArray) -> BinomialRows:
        return cls(y, trials, np.asarray(gammaln(trials + 1.0) - gammaln(y + 1.0)
                                         - gammaln(trials - y + 1.0)))

    def take(self, order: NDArray[np.intp]) -> BinomialRows:
        """The rows ``order`` (a subset, a permutation or repeats)."""
        return BinomialRows(self.y[order], self.trials[order], self.constant[order])

    def log_density(self, eta: FloatArray) -> FloatArray:
        """ℓ(η) = yη − n log(1 + e^η) + log C(n, y) (the module's form, as log σ(η) =
        η − log(1 + e^η)): one transcendental function per value."""
        y, n = _rows(self.y, eta), _rows(self.trials, eta)
        return np.asarray(y * eta - n * np.logaddexp(0.0, eta) + _rows(self.constant, eta))

    def values(self, eta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(ℓ(η), ℓ′(η), −ℓ″(η)) from one exponential e = exp(−|η|):
        log(1 + e^η) = max(η, 0) + log1p(e), σ(η) = 1/(1 + e) for η ≥ 0, e/(1 + e) below."""
        y, n = _rows(self.y, eta), _rows(self.trials, eta)
        e = np.exp(-np.abs(eta))
        p = np.where(eta >= 0.0, 1.0, e) / (1.0 + e)
        log_density = (y * eta - n * (np.maximum(eta, 0.0) + np.log1p(e))
                       + _rows(self.constant, eta))
        return log_density, y - n * p, n * p * (1.0 - p)


@dataclass(frozen=True, eq=False)
class PoissonRows:
    """Counts y per row, log link (an exposure enters η as an offset)."""

    y: FloatArray
    #: −log y! per row (:meth:`of` computes it)
    constant: FloatArray
    name: ClassVar[str] = "poisson"

    @classmethod
    def of(cls, y: FloatArray) -> PoissonRows:
        return cls(y, np.asarray(-gammaln(y + 1.0)))

    def take(self, order: NDArray[np.intp]) -> PoissonRows:
        """The rows ``order`` (a subset, a permutation or repeats)."""
        return PoissonRows(self.y[order], self.constant[order])

    def log_density(self, eta: FloatArray) -> FloatArray:
        y = _rows(self.y, eta)
        return np.asarray(y * eta - np.exp(eta) + _rows(self.constant, eta))

    def values(self, eta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(ℓ(η), ℓ′(η), −ℓ″(η)) from one exponential."""
        y, mean = _rows(self.y, eta), np.exp(eta)
        return y * eta - mean + _rows(self.constant, eta), y - mean, mean


RowLikelihood = BinomialRows | PoissonRows


def row_likelihood(family: str, y: FloatArray,
                   trials: FloatArray | None = None) -> RowLikelihood:
    """The rows' likelihood for ``family`` (``binomial``, ``bernoulli`` or ``poisson``)."""
    y = np.asarray(y, dtype=float)
    if family == "poisson":
        return PoissonRows.of(y)
    if family in ("binomial", "bernoulli"):
        n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
        return BinomialRows.of(y, n)
    raise ValueError(f"no row likelihood for family {family!r}; valid: binomial, bernoulli, "
                     "poisson")


__all__ = ["BinomialRows", "PoissonRows", "RowLikelihood", "row_likelihood"]
