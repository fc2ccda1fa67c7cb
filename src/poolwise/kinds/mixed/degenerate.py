"""Data a mixed model cannot be fitted to although every value is valid.

A normal response that never varies: the likelihood grows without bound as σ → 0 (as
σ^−(n−p) once β is integrated out), so neither REML nor any prior positive at σ = 0
gives a finite answer.

Separation: fixed effects along which a binomial or Poisson likelihood rises for ever.
The log likelihood of a GLM, and of a GLMM with its group effects integrated out, never
decreases along a direction d of β when every row at the lower end of its range (y = 0)
has x_i·d ≤ 0, every row at the upper end (y = n, binomial) has x_i·d ≥ 0, and every other
row has x_i·d = 0; when some x_i·d ≠ 0 it keeps rising, so its maximum is at infinity
(complete or quasi-complete separation, Albert & Anderson 1984, Biometrika 71:1–10; for
Poisson counts Haberman 1974). All-zero counts are the simplest case: d = −intercept.

Such d exist exactly when the linear programme

    maximise Σ_i s_i x_i·d  subject to  s_i x_i·d ≥ 0 (rows at an end, s_i = ±1),
                                        x_i·d = 0 (the others),  −1 ≤ d_k ≤ 1

has a positive optimum (Konis 2007, "Linear programming algorithms for detecting
separated data in binary logistic regression models", DPhil thesis, Oxford; R's
``detectseparation``). Its solution is such a direction.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from poolwise.exceptions import DataError
from poolwise.kinds.mixed.design import MixedDesign

#: the optimum, relative to the number of rows, above which the data are separated
TOLERANCE = 1e-7


def separating_direction(x: NDArray[np.float64], y: NDArray[np.float64],
                         trials: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
    """A direction d of β (one entry per column of ``x``, scaled so its largest is ±1)
    along which the likelihood of counts ``y`` (out of ``trials``; None: Poisson) never
    falls and somewhere rises; None when the maximum likelihood estimate is finite."""
    from scipy.optimize import linprog

    x = np.asarray(x, dtype=float)
    if x.shape[1] == 0:
        return None
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    x = x / scale  # the columns on one scale, so that the tolerance means the same for each
    sign = np.where(y == 0, -1.0, 0.0)
    if trials is not None:
        sign = np.where(y == trials, 1.0, sign)
    ends = sign != 0
    if not ends.any():
        return None
    signed = sign[ends, None] * x[ends]
    interior = x[~ends]
    result = linprog(-signed.sum(axis=0), A_ub=-signed, b_ub=np.zeros(len(signed)),
                     A_eq=interior if len(interior) else None,
                     b_eq=np.zeros(len(interior)) if len(interior) else None,
                     bounds=(-1.0, 1.0), method="highs")
    if result.status != 0 or -result.fun <= TOLERANCE * len(y):
        return None
    direction = np.asarray(result.x, dtype=float) / scale
    return direction / np.abs(direction).max()


def refuse_degenerate(design: MixedDesign, method: str) -> None:
    """Refuse, with one line, a constant normal response (every method) and maximum
    likelihood of separated binomial or Poisson data (a prior on b keeps a Bayesian fit
    of those proper)."""
    y = design.y
    if design.family == "normal" and y.size and np.all(y == y[0]):
        raise DataError(f"response {design.response!r} is {y[0]:g} in every row; a normal "
                        "model needs a response that varies (its residual sd would be 0)")
    if method == "eb-ml" and design.family in ("binomial", "bernoulli", "poisson"):
        refuse_separation(design)


def refuse_separation(design: MixedDesign) -> None:
    """Refuse maximum likelihood of separated data with one line naming the coefficients
    that would run off to ±∞."""
    direction = separating_direction(design.x, design.y, design.trials
                                     if design.family in ("binomial", "bernoulli") else None)
    if direction is None:
        return
    moving = [f"b[{name}] → {'+' if d > 0 else '−'}∞"
              for name, d in zip(design.fixed_names, direction, strict=True) if abs(d) > 1e-6]
    response, binomial = design.response, design.family in ("binomial", "bernoulli")
    if np.all(design.y == 0):
        why = f"{response!r} is 0 in every row"
    elif binomial and np.all(design.y == design.trials):
        why = f"{response!r} is a success in every trial"
    else:
        ends = "0 or all trials" if binomial else "0"
        why = (f"the fixed effects separate the rows where {response!r} is {ends} from the "
               "others (separation)")
    raise DataError(
        f"maximum likelihood (eb-ml) has no finite estimate: {why}, so the likelihood keeps "
        f"rising as {', '.join(moving)}; use a Bayesian method (--method nuts), whose prior "
        "on b keeps it finite, or simplify the fixed effects")

__all__ = ["refuse_degenerate", "refuse_separation", "separating_direction"]
