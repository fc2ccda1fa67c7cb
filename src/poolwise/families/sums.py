"""Sums over groups that the hyperparameter densities evaluate at every grid point, reduced
once per data set so that a point costs O(bins), not O(groups).

A log marginal likelihood of a million groups is a sum of a million terms at every one of
thousands of (α, β) points. Where the terms repeat (small counts) they are summed over the
distinct values; where they do not (large counts, continuous exposures or standard
errors) the values fall in narrow bins of log x and each bin's terms are a Taylor series
around the bin's centre, summed from the bin's moments Σ_(j∈b) w_j δ_j^k, δ_j = x_j − c_b.
The remainders are stated where each series is; all are far below what moves a draw.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from poolwise._ops import NUMPY_OPS, Ops, log_rising

__all__ = ["BIN_HALF_WIDTH", "MIN_VALUES_PER_BIN", "RisingSums", "ShiftedSums", "binned", "padded",
           "size_class"]

FloatArray = NDArray[np.float64]

#: half the width of a bin in log x: a value is within ρ = e^(2r) − 1 ≈ 0.2 % of its bin's
#: centre
BIN_HALF_WIDTH = 1e-3
#: bins are used only where they hold this many values on average (else: the values)
MIN_VALUES_PER_BIN = 8
#: counts up to this are summed exactly over their distinct values (they repeat a lot)
EXACT_COUNTS = 4096
#: Taylor orders: of lnΓ around a large count's bin (remainder below ρ⁵ z / 20 per group,
#: z ≥ 4096), and of log and 1/x around a bin of shifts (below ρ⁴ / (1 − ρ) per group)
RISING_ORDER = 4
SHIFT_ORDER = 3
#: the shortest length :func:`padded` gives an array of terms
MIN_PADDED = 16


def size_class(length: int) -> int:
    """The smallest of 16, 24, 32, 48, 64, … (2^k and 3·2^(k−1), at least
    :data:`MIN_PADDED`) that is ≥ ``length``: terms padded to it keep one shape for data
    sets of similar size, so that one compiled program serves them (NUTS), at a cost of at
    most half as many terms again."""
    size = MIN_PADDED
    while size < length:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def padded(values: NDArray, fill: float) -> NDArray:
    """``values`` lengthened along axis 0 to :func:`size_class` of its length with ``fill``
    (an empty array stays empty)."""
    values = np.asarray(values, dtype=float)
    if values.shape[0] == 0:
        return values
    extra = np.full((size_class(values.shape[0]) - values.shape[0], *values.shape[1:]), fill)
    return np.concatenate([values, extra])


def binned(values: FloatArray, weights: FloatArray, order: int
           ) -> tuple[FloatArray, FloatArray]:
    """Bins of log x of width 2r (r = :data:`BIN_HALF_WIDTH`) over the positive
    ``values``: each bin's centre (the mean of its values) and its moments
    Σ_(j∈b) w_jc δ_j^k / k! for k = 0..order (shape (B, order + 1, columns))."""
    logs = np.log(values)
    width = 2.0 * BIN_HALF_WIDTH
    index = np.floor((logs - logs.min()) / width).astype(np.intp)
    used, index = np.unique(index, return_inverse=True)
    centres = np.bincount(index, weights=values) / np.bincount(index)
    delta = values - centres[index]
    moments = np.empty((used.size, order + 1, weights.shape[1]))
    power = np.ones_like(delta)
    for k in range(order + 1):
        for column in range(weights.shape[1]):
            moments[:, k, column] = np.bincount(index, weights=weights[:, column] * power,
                                                minlength=used.size)
        power = power * delta / (k + 1)
    return centres, moments


def _bins_pay(values: FloatArray) -> bool:
    """Whether binning these positive values saves work: enough values per bin."""
    if values.size == 0:
        return False
    spread = float(np.log(values.max()) - np.log(values.min()))
    return values.size >= MIN_VALUES_PER_BIN * (spread / (2.0 * BIN_HALF_WIDTH) + 1)


class ShiftedSums(NamedTuple):
    """Σ_j a_jk log(t + s_j) and Σ_j a_jk / (t + s_j) at many t > 0, for positive s_j
    (σ_j² of the normal family, exposures E_j of the gamma-Poisson) and weight columns k.

    Binned (when :func:`_bins_pay`), with x = t + c_b and |δ_j| / x ≤ ρ:

        1 / (x + δ) = Σ_k (−δ)^k / x^(k+1),   log(x + δ) = log x − Σ_(k≥1) (−δ)^k / (k x^k),

    to k = :data:`SHIFT_ORDER`; the remainder is below ρ^(K+1) / (1 − ρ) ≈ 2e-11 of each
    term: 2e-5 in a log density summed over a million groups. Unbinned: ``centres`` are the
    s_j and ``moments`` (groups, 1, columns) the weights.
    """

    centres: FloatArray
    moments: FloatArray

    @classmethod
    def of(cls, shifts: FloatArray, weights: FloatArray) -> ShiftedSums:
        """The sums of the columns of ``weights`` (groups, columns)."""
        shifts = np.asarray(shifts, dtype=float)
        weights = np.asarray(weights, dtype=float).reshape(shifts.size, -1)
        if not _bins_pay(shifts):
            return cls(shifts, weights[:, None, :])
        centres, moments = binned(shifts, weights, SHIFT_ORDER)
        factorials = np.array([math.factorial(k) for k in range(SHIFT_ORDER + 1)])
        return cls(centres, moments * factorials[None, :, None])  # Σ w δ^k

    @property
    def size(self) -> int:
        """Terms per point: the bins, or the groups."""
        return max(self.centres.size, 1)

    def padded(self) -> ShiftedSums:
        """The same sums, their terms padded to a :func:`size_class` by shifts of zero
        weight (a NamedTuple of arrays: a JAX argument)."""
        fill = float(self.centres[0]) if self.centres.size else 1.0
        return ShiftedSums(padded(self.centres, fill), padded(self.moments, 0.0))

    def at(self, t: Any, ops: Ops = NUMPY_OPS, *, relative: bool = False
           ) -> tuple[Any, Any]:
        """Σ_j a_j log(t + s_j) and Σ_j a_j / (t + s_j), each (..., columns), at t (...);
        with ``relative``, Σ_j a_j log1p(s_j / t) in place of the first (no cancellation
        where s_j ≪ t)."""
        x = t[..., None] + self.centres
        logs = ops.log1p(self.centres / t[..., None]) if relative else ops.log(x)
        log_sums = logs @ self.moments[:, 0, :]
        inverse = 1.0 / x
        power = inverse  # 1 / x^k
        sums = power @ self.moments[:, 0, :]
        for k in range(1, self.moments.shape[1]):
            sign = -1.0 if k % 2 else 1.0
            log_sums = log_sums - sign / k * (power @ self.moments[:, k, :])
            power = power * inverse
            sums = sums + sign * (power @ self.moments[:, k, :])
        return log_sums, sums


def _log_gamma_derivatives(z: Any, order: int, ops: Ops) -> list[Any]:
    """The first ``order`` derivatives of lnΓ at z ≥ 4096 (ψ and the polygammas ψ⁽¹⁾,
    ψ⁽²⁾, ψ⁽³⁾) by their asymptotic series (Abramowitz and Stegun 6.3.18, 6.4.11), each to
    an error below z^(−7)."""
    inverse = 1.0 / z
    i2 = inverse * inverse
    series = [
        ops.log(z) - 0.5 * inverse - i2 * (1 / 12 - i2 * (1 / 120 - i2 / 252)),
        inverse + i2 * (0.5 + inverse * (1 / 6 - i2 * (1 / 30 - i2 / 42))),
        -i2 * (1.0 + inverse * (1.0 + inverse * (0.5 - i2 / 6))),
        i2 * inverse * (2.0 + inverse * (3.0 + inverse * (2.0 - i2))),
    ]
    return series[:order]


class RisingSums(NamedTuple):
    """Σ_j w_j [lnΓ(a + x_j) − lnΓ(a)] at any a ≥ 0, for counts x_j ≥ 0.

    Counts up to :data:`EXACT_COUNTS` are summed over their distinct values (``values``,
    ``totals``). Larger ones, when binning pays, by bins: lnΓ(z_b + δ) = Σ_k lnΓ^(k)(z_b)
    δ^k / k! with z_b = a + c_b ≥ 4096, to k = :data:`RISING_ORDER`, the k = 0 term as
    lnΓ(a + c_b) − lnΓ(a) by :func:`~poolwise._ops.log_rising` (no cancellation at huge a);
    the remainder,
    |ψ^(K)(z)| δ^(K+1) / (K+1)! ≤ ρ^(K+1) z / (K(K+1)), is below 5e-11 per group at
    z = 10^6: 5e-5 in a log density summed over a million groups.
    """

    values: FloatArray
    totals: FloatArray
    centres: FloatArray
    moments: FloatArray  # (bins, RISING_ORDER + 1): Σ w δ^k / k!

    @classmethod
    def of(cls, values: FloatArray, weights: FloatArray) -> RisingSums:
        values = np.asarray(values, dtype=float)
        weights = np.asarray(weights, dtype=float)
        large = values > EXACT_COUNTS
        if not _bins_pay(values[large]):
            large = np.zeros_like(large)
        distinct, which = np.unique(values[~large], return_inverse=True)
        totals = np.asarray(np.bincount(which.ravel(), weights=weights[~large],
                                        minlength=distinct.size), dtype=float)
        if not large.any():
            return cls(distinct, totals, np.empty(0), np.empty((0, RISING_ORDER + 1)))
        centres, moments = binned(values[large], weights[large, None], RISING_ORDER)
        return cls(distinct, totals, centres, moments[:, :, 0])

    @property
    def size(self) -> int:
        """Terms per point: the distinct small counts and the bins."""
        return max(self.values.size + self.centres.size, 1)

    def padded(self) -> RisingSums:
        """The same sums, the counts and the bins each padded to a :func:`size_class` by
        terms of zero weight (a NamedTuple of arrays: a JAX argument)."""
        centre = float(self.centres[0]) if self.centres.size else 0.0
        return RisingSums(padded(self.values, 0.0), padded(self.totals, 0.0),
                          padded(self.centres, centre), padded(self.moments, 0.0))

    def __call__(self, a: Any, ops: Ops = NUMPY_OPS) -> Any:
        """The sum at ``a`` of any shape (...); ``a`` may be a JAX tracer."""
        total = log_rising(a[..., None], self.values, ops) @ self.totals
        if self.centres.size:  # lnΓ(a + c_b) − lnΓ(a) without cancellation, as for counts
            total = total + log_rising(a[..., None], self.centres, ops) @ self.moments[:, 0]
            derivatives = _log_gamma_derivatives(a[..., None] + self.centres, RISING_ORDER, ops)
            for k, derivative in enumerate(derivatives, start=1):
                total = total + derivative @ self.moments[:, k]
        return total
