"""The hyperparameter posterior on a 2-D grid, with automatic bounds.

The posterior p(u, v | y) of the two hyperparameter coordinates is evaluated on a
rectangular grid whose box is grown until the density on every edge is negligible and then
trimmed to where the mass is. Draws pick a cell with probability proportional to its
density and a point uniformly inside it (midpoint rule), so they are independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from poolwise.exceptions import ImproperPosteriorError
from poolwise.inference.optimize import LogDensity, find_mode

#: log density below the maximum at which an edge counts as negligible
EDGE_DROP = 12.0
#: log density below the maximum outside which the box is trimmed
TRIM_DROP = 20.0
#: how far (in u or v) the box may grow from the mode before the posterior is called improper
MAX_REACH = 60.0
COARSE = 48


@dataclass(frozen=True)
class HyperGrid:
    """The unnormalised log posterior of (u, v) at the centres of a regular grid."""

    u: NDArray[np.float64]
    v: NDArray[np.float64]
    log_density: NDArray[np.float64]  # shape (len(u), len(v))

    @property
    def probabilities(self) -> NDArray[np.float64]:
        """Cell masses, normalised to sum to one."""
        p = np.exp(self.log_density - np.max(self.log_density))
        return p / p.sum()

    def sample(self, rng: np.random.Generator, size: int) -> tuple[NDArray, NDArray]:
        """Independent draws of (u, v)."""
        p = self.probabilities.ravel()
        cells = rng.choice(p.size, size=size, p=p)
        iu, iv = np.unravel_index(cells, self.log_density.shape)
        du, dv = self.u[1] - self.u[0], self.v[1] - self.v[0]
        u = self.u[iu] + du * (rng.random(size) - 0.5)
        v = self.v[iv] + dv * (rng.random(size) - 0.5)
        return u, v

    def log_marginal_v(self, log_density: LogDensity) -> Callable[[NDArray], NDArray]:
        """log p(v | y) up to a constant at any v, summed over the grid's u."""
        return log_marginal_v(log_density, self.u)


def log_marginal_v(log_density: LogDensity, u: NDArray) -> Callable[[NDArray], NDArray]:
    """log p(v | y) up to a constant at any v, by summing ``log_density`` over the regular
    grid ``u`` (for :func:`far_tail_exponent`: the conditional of u must stay inside it as
    v grows, as it does for the rate families, whose u tends to its complete-pooling
    posterior)."""
    du = float(u[1] - u[0])

    def at(v: NDArray) -> NDArray:
        values = _evaluate(log_density, u, np.asarray(v, dtype=float))
        top = np.max(values, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = top + np.log(np.sum(np.exp(values - top), axis=0) * du)
        return np.where(np.isfinite(top), total, -np.inf)

    return at


#: the key of a fit's info that holds :func:`far_tail_exponent` (None: a light tail)
TAIL_EXPONENT = "tail_exponent"
#: a moment of order k of e^v is taken to exist when the tail exponent exceeds k by this
MOMENT_MARGIN = 0.05
#: how far past the end of a grid the tail of v is followed (offsets in v)
TAIL_OFFSETS = np.array([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
#: slopes of log p(v) over successive spans that differ by less than this have converged
TAIL_TOLERANCE = 0.01


def far_tail_exponent(log_marginal: Callable[[NDArray], NDArray], v_end: float
                      ) -> float | None:
    """c in p(v | y) ∝ e^(−c v) as v → ∞, measured rather than assumed; None when the
    density falls faster than any exponential (every moment of e^v exists).

    log p(v | y) is evaluated at ``v_end`` + :data:`TAIL_OFFSETS` (far past the grid, which
    ends where the mass does, often before the asymptotic tail begins) and c is the slope
    over the last two spans once they agree within :data:`TAIL_TOLERANCE` (a likelihood
    that tends to a constant, as it does for the rate families towards complete pooling,
    leaves the prior's rate). Slopes that keep steepening, or a density that vanishes,
    mean a lighter tail. The moment E[e^(k v)] is finite only when c > k.
    """
    v = v_end + TAIL_OFFSETS
    values = np.asarray(log_marginal(v), dtype=float)
    if not np.all(np.isfinite(values)):
        return None
    slopes = -np.diff(values) / np.diff(v)
    last, before = float(slopes[-1]), float(slopes[-2])
    if abs(last - before) <= TAIL_TOLERANCE * max(1.0, abs(last)):
        return max(last, 0.0)
    return None if last > before else max(last, 0.0)


def finite_moments(exponent: float | None) -> int:
    """How many moments of e^v (and of what grows as fast) are finite, up to 2: 0 (no mean),
    1 (a mean but no variance) or 2, from the tail exponent c of p(v | y) ∝ e^(−c v):
    E[e^(k v)] is finite when c > k (with :data:`MOMENT_MARGIN` for the measurement)."""
    if exponent is None:
        return 2
    return int(sum(exponent > k + MOMENT_MARGIN for k in (1, 2)))


def _evaluate(log_density: LogDensity, u: NDArray, v: NDArray) -> NDArray:
    uu, vv = np.meshgrid(u, v, indexing="ij")
    values = np.asarray(log_density(uu, vv), dtype=float)
    return np.where(np.isfinite(values), values, -np.inf)


def build_grid(
    log_density: LogDensity,
    start: NDArray,
    *,
    names: tuple[str, str] = ("u", "v"),
    scale: tuple[float, float] = (1.0, 1.0),
    resolution: int = 128,
) -> HyperGrid:
    """Grid the posterior ``log_density(u, v)`` (vectorised) around its mode.

    ``scale`` is the natural unit of each coordinate (1 for logs and logits, the data's
    spread for a location such as μ). Raises :class:`ImproperPosteriorError` when the
    density does not fall off within ``MAX_REACH`` units of the mode in some direction,
    which is what an improper posterior does.
    """
    start = np.asarray(start, dtype=float)
    unit = np.asarray(scale, dtype=float)
    reach = MAX_REACH * unit
    bounds = ((start[0] - reach[0], start[0] + reach[0]),
              (start[1] - reach[1], start[1] + reach[1]))
    mode = find_mode(log_density, start, bounds)
    centre = mode.point
    if mode.covariance is not None:
        half = np.clip(5.0 * np.sqrt(np.diag(mode.covariance)), 0.05 * unit, 10.0 * unit)
    else:
        half = 2.0 * unit
    lo, hi = centre - half, centre + half

    for _ in range(60):
        u = np.linspace(lo[0], hi[0], COARSE)
        v = np.linspace(lo[1], hi[1], COARSE)
        values = _evaluate(log_density, u, v)
        top = np.max(values)
        if not np.isfinite(top):
            raise ImproperPosteriorError(
                "the posterior density is zero or undefined around its mode; check the prior"
            )
        limit = top - EDGE_DROP
        grow = [
            (0, 0, values[0, :].max() > limit),
            (0, 1, values[-1, :].max() > limit),
            (1, 0, values[:, 0].max() > limit),
            (1, 1, values[:, -1].max() > limit),
        ]
        if not any(flag for *_, flag in grow):
            break
        width = hi - lo
        for axis, side, flag in grow:
            if not flag:
                continue
            limit = centre[axis] + (reach[axis] if side else -reach[axis])
            bound = hi if side else lo
            if bound[axis] == limit:
                direction = "large" if side else "small"
                raise ImproperPosteriorError(
                    f"the posterior of {names[axis]} does not fall off as it grows {direction}: "
                    "the hyperprior gives an improper posterior for these data; "
                    "use a proper hyperprior"
                )
            step = 0.5 * width[axis] if side else -0.5 * width[axis]
            bound[axis] = min(bound[axis] + step, limit) if side else max(bound[axis] + step, limit)
    else:  # pragma: no cover - the reach limit stops the loop first
        raise ImproperPosteriorError("could not bound the hyperparameter posterior")

    # trim to the region that holds the mass, keeping one coarse cell of margin
    keep = values > top - TRIM_DROP
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    u_lo, u_hi = u[max(rows[0] - 1, 0)], u[min(rows[-1] + 1, COARSE - 1)]
    v_lo, v_hi = v[max(cols[0] - 1, 0)], v[min(cols[-1] + 1, COARSE - 1)]
    u_edges = np.linspace(u_lo, u_hi, resolution + 1)
    v_edges = np.linspace(v_lo, v_hi, resolution + 1)
    u_mid, v_mid = 0.5 * (u_edges[1:] + u_edges[:-1]), 0.5 * (v_edges[1:] + v_edges[:-1])
    return HyperGrid(u_mid, v_mid, _evaluate(log_density, u_mid, v_mid))
