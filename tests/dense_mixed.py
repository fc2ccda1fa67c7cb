"""The Gaussian mixed model written densely, as the textbook does, to check the blocked and
JAX computations of poolwise.kinds.mixed.inference against (tests/test_mixed_inference.py,
tests/test_mixed_crossed.py)."""

from __future__ import annotations

import numpy as np

from poolwise.kinds.mixed.design import MixedDesign
from poolwise.kinds.mixed.inference import random_effects_matrix


def dense_covariance(design: MixedDesign, covariances: list[np.ndarray], sigma: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z, G (block-diagonal: each term's covariance once a level) and V = σ²I + ZGZᵀ."""
    z = random_effects_matrix(design).toarray()
    g = np.zeros((z.shape[1], z.shape[1]))
    at = 0
    for term, cov in zip(design.terms, covariances, strict=True):
        for _ in range(term.n_levels):
            k = term.n_effects
            g[at:at + k, at:at + k] = cov
            at += k
    return z, g, sigma**2 * np.eye(design.n_obs) + z @ g @ z.T


def dense_conditional(design: MixedDesign, covariances: list[np.ndarray], sigma: float,
                      loc: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance of δ = (b, β − m) | y under β ~ N(m, diag(s²)):
    N(ΨWᵀV⁻¹r, Ψ − ΨWᵀV⁻¹WΨ) with W = [Z X], Ψ = diag(G, diag(s²)), r = y − Xm and
    V = σ²I + ZGZᵀ + X diag(s²) Xᵀ."""
    z, g, v = dense_covariance(design, covariances, sigma)
    w = np.hstack([z, design.x])
    psi = np.zeros((w.shape[1], w.shape[1]))
    psi[:g.shape[0], :g.shape[0]] = g
    psi[g.shape[0]:, g.shape[0]:] = np.diag(scale**2)
    gain = psi @ w.T @ np.linalg.inv(v + design.x @ np.diag(scale**2) @ design.x.T)
    return gain @ (design.y - design.x @ loc), psi - gain @ w @ psi
