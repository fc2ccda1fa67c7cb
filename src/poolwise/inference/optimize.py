"""Two-dimensional optimisation helpers shared by empirical Bayes and the quadrature grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

LogDensity = Callable[[NDArray, NDArray], NDArray]


@dataclass(frozen=True)
class Mode:
    """The maximum of a log density in (u, v) and its curvature there."""

    point: NDArray[np.float64]
    value: float
    covariance: NDArray[np.float64] | None  # inverse of −Hessian; None if not positive definite
    at_bound: tuple[bool, bool]  # whether u / v stopped on a bound


def find_mode(
    log_density: LogDensity,
    start: NDArray,
    bounds: tuple[tuple[float, float], tuple[float, float]],
) -> Mode:
    """Maximise a 2-D log density with L-BFGS-B from ``start`` within ``bounds``."""

    def negative(x: NDArray) -> float:
        value = float(log_density(np.asarray(x[0]), np.asarray(x[1])))
        return -value if np.isfinite(value) else 1e300

    best = optimize.minimize(negative, np.asarray(start, dtype=float), method="L-BFGS-B",
                             bounds=bounds)
    # polish with Nelder-Mead, which is robust to the finite-difference gradient's noise;
    # the tolerance on f is relative, as sums over a million groups are large numbers
    polished = optimize.minimize(negative, best.x, method="Nelder-Mead",
                                 options={"xatol": 1e-6, "fatol": 1e-12 * max(1.0, abs(best.fun)),
                                          "maxiter": 1000})
    point = polished.x if polished.fun <= best.fun else best.x
    point = np.clip(point, [b[0] for b in bounds], [b[1] for b in bounds])
    at_bound = tuple(
        bool(min(abs(point[i] - bounds[i][0]), abs(point[i] - bounds[i][1])) < 1e-3)
        for i in range(2)
    )
    neg_hess = -hessian(log_density, point)
    covariance: NDArray[np.float64] | None
    try:
        np.linalg.cholesky(neg_hess)
        covariance = np.asarray(np.linalg.inv(neg_hess), dtype=np.float64)
    except np.linalg.LinAlgError:
        covariance = None
    return Mode(point, -negative(point), covariance, (at_bound[0], at_bound[1]))


def hessian(log_density: LogDensity, point: NDArray, step: float = 1e-3) -> NDArray[np.float64]:
    """Central finite-difference Hessian of a 2-D function (9 evaluations, vectorised)."""
    offsets = np.array([-step, 0.0, step])
    du, dv = np.meshgrid(offsets, offsets, indexing="ij")
    f = np.asarray(log_density(point[0] + du, point[1] + dv), dtype=float)
    h_uu = (f[2, 1] - 2 * f[1, 1] + f[0, 1]) / step**2
    h_vv = (f[1, 2] - 2 * f[1, 1] + f[1, 0]) / step**2
    h_uv = (f[2, 2] - f[2, 0] - f[0, 2] + f[0, 0]) / (4 * step**2)
    return np.array([[h_uu, h_uv], [h_uv, h_vv]])
