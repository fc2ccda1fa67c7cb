"""The negative binomial with a log link, mean μ = e^η and shape φ > 0 (NB2; lme4's and
glmmTMB's ``nbinom2``, NumPyro's ``NegativeBinomial2``):

    p(y | μ, φ) = Γ(y + φ) / (Γ(φ) y!) · (φ / (φ + μ))^φ · (μ / (φ + μ))^y,
    E[y] = μ,  Var[y] = μ + μ²/φ.

It is the gamma–Poisson mixture y | λ ~ Poisson(λ), λ ~ Gamma(shape φ, rate φ/μ), and
SciPy's ``nbinom(n=φ, p=φ/(φ+μ))``; as φ → ∞ it tends to Poisson(μ). Hilbe (2011),
*Negative Binomial Regression*, 2nd ed., §8.
"""

from __future__ import annotations

from typing import Any

from poolwise._ops import NUMPY_OPS, Ops, log_rising, log_sigmoid


def log_pmf(y: Any, eta: Any, phi: Any, ops: Ops = NUMPY_OPS) -> Any:
    """log p(y | μ = e^η, φ), elementwise (NumPy, or JAX with :func:`~poolwise._ops.jax_ops`).

    With p = φ/(φ + μ) = σ(log φ − η), 1 − p = σ(η − log φ) (σ the logistic function):

        log p = lnΓ(y + φ) − lnΓ(φ) − ln y! + φ log σ(log φ − η) + y log σ(η − log φ),

    written on the log scale so that it holds for any η, and with
    :func:`~poolwise._ops.log_rising` so that it stays accurate as φ → ∞ (the Poisson limit
    y η − e^η − ln y!).

    >>> import math
    >>> round(float(log_pmf(0.0, math.log(2.0), 2.0)), 12)  # (φ/(φ+μ))^φ = (1/2)²
    -1.38629436112
    """
    log_phi = ops.log(phi)
    return (log_rising(phi, y, ops) - ops.gammaln(y + 1.0)
            + phi * log_sigmoid(log_phi - eta, ops) + y * log_sigmoid(eta - log_phi, ops))


__all__ = ["log_pmf"]
