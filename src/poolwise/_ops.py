"""Array operations shared by the NumPy and JAX code paths.

The maths of a family is written once against an :class:`Ops` namespace, so the same
log densities serve the NumPy methods (exact, empirical Bayes, Gibbs) and NUTS in JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import numpy as np
from scipy import special


class Ops(NamedTuple):
    """The handful of elementwise functions the families need."""

    log: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    exp: Callable[[Any], Any]
    gammaln: Callable[[Any], Any]
    logaddexp: Callable[[Any, Any], Any]
    square: Callable[[Any], Any]
    xlogy: Callable[[Any, Any], Any]
    where: Callable[[Any, Any, Any], Any]


NUMPY_OPS = Ops(
    np.log, np.log1p, np.exp, special.gammaln, np.logaddexp, np.square, special.xlogy, np.where
)


@cache
def jax_ops() -> Ops:
    """The same operations in JAX (imported on first use; switches JAX to float64)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.scipy import special as jspecial

    return Ops(
        jnp.log,
        jnp.log1p,
        jnp.exp,
        jspecial.gammaln,
        jnp.logaddexp,
        jnp.square,
        jspecial.xlogy,
        jnp.where,
    )


def log_sigmoid(x: Any, ops: Ops) -> Any:
    """log(1 / (1 + exp(-x))), stable for large |x|."""
    return -ops.logaddexp(0.0 * x, -x)


#: above this, lnΓ(a + y) − lnΓ(a) is computed from Stirling's series (no cancellation)
STIRLING_FROM = 1e5


def log_rising(a: Any, y: Any, ops: Ops) -> Any:
    """lnΓ(a + y) − lnΓ(a), accurate also for huge a, where the direct difference cancels.

    For a > 1e5 it uses Stirling's series: (a − ½) log1p(y/a) + y log(a + y) − y
    + 1/(12(a+y)) − 1/(12a) − 1/(360(a+y)³) + 1/(360a³), whose error is below 1e-25 there.
    """
    if ops is NUMPY_OPS:  # evaluate each branch only where it is used
        a, y = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(y, dtype=float))
        out = np.asarray(special.gammaln(a + y) - special.gammaln(a))
        large = a > STIRLING_FROM
        if np.any(large):
            out[large] = _stirling_rising(a[large], y[large], ops)
        return out if out.ndim else float(out)
    return ops.where(
        a > STIRLING_FROM, _stirling_rising(a, y, ops), ops.gammaln(a + y) - ops.gammaln(a)
    )


def _stirling_rising(a: Any, y: Any, ops: Ops) -> Any:
    b = a + y
    return (
        (a - 0.5) * ops.log1p(y / a)
        + y * ops.log(b)
        - y
        + (1.0 / (12.0 * b) - 1.0 / (12.0 * a))
        - (1.0 / (360.0 * b**3) - 1.0 / (360.0 * a**3))
    )
