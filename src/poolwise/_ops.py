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


NUMPY_OPS = Ops(
    np.log, np.log1p, np.exp, special.gammaln, np.logaddexp, np.square, special.xlogy
)


@cache
def jax_ops() -> Ops:
    """The same operations in JAX (imported on first use)."""
    import jax.numpy as jnp
    from jax.scipy import special as jspecial

    return Ops(
        jnp.log, jnp.log1p, jnp.exp, jspecial.gammaln, jnp.logaddexp, jnp.square, jspecial.xlogy
    )


def log_sigmoid(x: Any, ops: Ops) -> Any:
    """log(1 / (1 + exp(-x))), stable for large |x|."""
    return -ops.logaddexp(0.0 * x, -x)
