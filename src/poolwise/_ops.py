"""Array operations shared by the NumPy and JAX code paths.

The maths of a family is written once against an :class:`Ops` namespace, so the same
log densities serve the NumPy methods (exact, empirical Bayes, Gibbs) and NUTS in JAX.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from poolwise.exceptions import SpecificationError

#: the environment variable that places or turns off JAX's persistent compilation cache
COMPILE_CACHE_VARIABLE = "POOLWISE_COMPILE_CACHE"
#: values of :data:`COMPILE_CACHE_VARIABLE` that turn the cache off
CACHE_OFF = ("0", "off", "false", "no")


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


def compile_cache_dir() -> Path | None:
    """Where JAX keeps compiled programs between processes, from ``POOLWISE_COMPILE_CACHE``.

    Unset or empty: ``$XDG_CACHE_HOME/poolwise/jax`` (``~/.cache/poolwise/jax`` without
    ``XDG_CACHE_HOME``); ``0``, ``off``, ``false`` or ``no``: None (no cache); anything
    else: that directory.
    """
    value = os.environ.get(COMPILE_CACHE_VARIABLE, "").strip()
    if value.lower() in CACHE_OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "poolwise" / "jax"


@cache
def start_jax() -> None:
    """Switch JAX to float64 and turn on its persistent compilation cache (once a process).

    Compiled programs are written to :func:`compile_cache_dir`, however quickly they
    compiled, so that a later process running the same program (a fit of data of the same
    shapes) reads it instead of compiling it again. A cache directory set for JAX itself
    (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is. A default directory
    that cannot be made means no cache; one named in ``POOLWISE_COMPILE_CACHE`` is an error.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    directory = compile_cache_dir()
    if directory is None or jax.config.jax_compilation_cache_dir:  # type: ignore[attr-defined]
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if os.environ.get(COMPILE_CACHE_VARIABLE, "").strip():
            raise SpecificationError(
                f"{COMPILE_CACHE_VARIABLE}={os.environ[COMPILE_CACHE_VARIABLE]!r} is not a "
                f"directory poolwise can write ({error.strerror}); give a writable directory, "
                f"or 0 to turn the compilation cache off") from None
        return
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@cache
def jax_ops() -> Ops:
    """The same operations in JAX (imported on first use; :func:`start_jax`)."""
    start_jax()
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
