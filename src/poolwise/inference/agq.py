"""Each group's effects integrated out by adaptive Gauss–Hermite quadrature (AGQ), and
drawn exactly from their conditional distribution.

For groups j = 1..J with k ∈ {1, 2} effects b_j ~ N(0, Σ), Σ = ΛΛᵀ (Λ lower triangular),
and rows i of group j with linear predictor η_i = base_i + z_iᵀ b_j (base = Xβ + offset),
write b_j = Λu_j, u_j ~ N(0, I), and

    h_j(u) = ℓ_j(u) − ½uᵀu,   ℓ_j(u) = Σ_{i ∈ j} log p(y_i | base_i + z_iᵀΛu).

The group's marginal likelihood is p(y_j | β, Σ) = (2π)^{−k/2} ∫ exp h_j(u) du. Its
integrand peaks at the conditional mode û_j, where the negative Hessian is

    H_j = I + Λᵀ (Σ_{i ∈ j} w_i z_i z_iᵀ) Λ = L_j L_jᵀ,   w_i = −ℓ″(η_i),

found by Newton's method with step halving for all groups at once (h_j is strictly
concave for the log-concave likelihoods of :mod:`poolwise.families.glm`). With
u = û_j + L_j⁻ᵀ x and the Gauss–Hermite rule (x_m, W_m) of the standard normal
(``n_agq`` points per dimension; a tensor product for k = 2),

    log p(y_j | β, Σ) ≈ −log|L_j| + log Σ_m W_m exp(h_j(û_j + L_j⁻ᵀ x_m) + ½ x_mᵀx_m),

exact when exp(h_j(û_j + L_j⁻ᵀx) + ½xᵀx) is a polynomial of degree at most 2 n_agq − 1 in
each coordinate of x (one point: when h_j is quadratic, a Gaussian integrand); one point
(x = 0, W = 1) is the Laplace approximation h_j(û_j) − log|L_j|. This is lme4's ``nAGQ``
(Bates et al. 2015, §5; Pinheiro and Bates 1995, "Approximations to the log-likelihood
function in the nonlinear mixed-effects model", J. Comput. Graph. Stat. 4:12–35), with the
tensor grid of Pinheiro and Chao (2006) for k = 2.

Exact draws of b_j given y_j, β, Σ (:func:`draw_effects`): ℓ_j is concave, so it lies
below its tangent at any point v: ℓ_j(u) ≤ ℓ_j(v) + gᵀ(u − v), g = ∇ℓ_j(v). Hence

    exp h_j(u) ≤ exp(ℓ_j(v) − gᵀv + ½gᵀg) · exp(−½ |u − g|²),

an envelope proportional to N(g, I). Rejection sampling proposes u ~ N(g, I) and accepts
with probability exp(ℓ_j(u) − ℓ_j(v) − gᵀ(u − v)) ≤ 1: every accepted u is an exact draw
from the conditional (von Neumann 1951), whatever v. With v = û_j (where g = û_j) the
proposal is b ~ N(b̂_j, Σ), and the acceptance rate is p(y_j | β, Σ)/exp h_j(û_j) ≈
|H_j|^{−1/2}: cheap while the prior Σ is not much wider than the conditional, more
proposals per draw for groups whose data dominate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from poolwise.families.glm import RowLikelihood

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Newton's method stops when no group's step exceeds this (in whitened units)...
MODE_TOLERANCE = 1e-10
#: ...or when its last step was a full one shorter than this: Newton's method converges
#: quadratically on these concave h_j (H_j ⪰ I, and the third derivative of ℓ along a
#: loading a is at most |a| times the second), so the error after a full step of length
#: s is of order |a| s² / 2, about MODE_TOLERANCE; one step fewer than waiting for s itself
#: to fall below MODE_TOLERANCE
FULL_STEP_TOLERANCE = 1e-5
MAX_NEWTON_STEPS = 200
#: step halvings before a Newton step is given up (the mode is then as good as found)
MAX_HALVINGS = 60
#: rows × nodes evaluated at once by :func:`log_marginal` (memory, not results)
BLOCK_VALUES = 4_000_000


class GroupedRows(NamedTuple):
    """Rows sorted by group: ``z`` (n, k) each row's effect covariates, ``group`` (n,) its
    group, ``starts`` (J,) the first row of each group, ``likelihood`` the rows' family
    (in the same order). Build with :func:`group_rows`."""

    z: FloatArray
    group: IntArray
    starts: IntArray
    likelihood: RowLikelihood

    @property
    def n_groups(self) -> int:
        return int(self.starts.size)

    @property
    def n_effects(self) -> int:
        return int(self.z.shape[1])

    def sum(self, values: FloatArray) -> FloatArray:
        """Σ over each group's rows of ``values`` (n, ...) → (J, ...)."""
        if self.starts.size == self.group.size:  # a row a group: nothing to add
            return values
        return np.asarray(np.add.reduceat(values, self.starts, axis=0))


def group_rows(index: IntArray, z: FloatArray, likelihood: RowLikelihood,
               n_groups: int) -> tuple[GroupedRows, IntArray]:
    """The rows sorted by group (stable), and the order that sorts them (apply it to the
    base linear predictor). Every group needs a row."""
    index = np.asarray(index, dtype=np.intp)
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=n_groups)
    if np.any(counts == 0):
        raise ValueError(f"group {int(np.argmin(counts))} has no rows")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    z = np.asarray(z, dtype=float).reshape(index.size, -1)[order]
    return GroupedRows(z, index[order], starts, likelihood.take(order)), order


def _cholesky(matrix: FloatArray) -> FloatArray:
    """Lower Cholesky factors of symmetric positive definite (J, k, k) matrices; for
    k ≤ 2 in closed form, L = [[√a, 0], [c/√a, √(d − c²/a)]] for [[a, c], [c, d]]
    (NumPy's batched LAPACK call costs more than the arithmetic for millions of them)."""
    k = matrix.shape[-1]
    if k == 1:
        return np.sqrt(matrix)
    if k == 2:
        first = np.sqrt(matrix[:, 0, 0])
        lower = matrix[:, 1, 0] / first
        out = np.zeros_like(matrix)
        out[:, 0, 0], out[:, 1, 0] = first, lower
        out[:, 1, 1] = np.sqrt(matrix[:, 1, 1] - lower * lower)
        return out
    return np.asarray(np.linalg.cholesky(matrix), dtype=float)


def _solve(matrix: FloatArray, vector: FloatArray) -> FloatArray:
    """A⁻¹v for symmetric (J, k, k) A and (J, k) v; for k ≤ 2 by Cramer's rule."""
    k = matrix.shape[-1]
    if k == 1:
        return vector / matrix[:, 0, :]
    if k == 2:
        a, c, d = matrix[:, 0, 0], matrix[:, 1, 0], matrix[:, 1, 1]
        det = a * d - c * c
        return np.stack([(d * vector[:, 0] - c * vector[:, 1]) / det,
                         (a * vector[:, 1] - c * vector[:, 0]) / det], axis=1)
    return np.asarray(np.linalg.solve(matrix, vector[..., None])[..., 0])


def _inverse_lower(chol: FloatArray) -> FloatArray:
    """L⁻¹ of lower triangular (J, k, k) factors; for k ≤ 2 in closed form."""
    k = chol.shape[-1]
    if k == 1:
        return 1.0 / chol
    if k == 2:
        out = np.zeros_like(chol)
        out[:, 0, 0], out[:, 1, 1] = 1.0 / chol[:, 0, 0], 1.0 / chol[:, 1, 1]
        out[:, 1, 0] = -chol[:, 1, 0] * out[:, 0, 0] * out[:, 1, 1]
        return out
    return np.asarray(np.linalg.inv(chol), dtype=float)


class Modes(NamedTuple):
    """Each group's conditional mode in whitened units and what AGQ and the draws need:
    ``mode`` û (J, k); ``chol`` L (J, k, k) with LLᵀ = H at û; ``log_lik`` ℓ_j(û) and
    ``gradient`` ∇ℓ_j(û) (= û at the exact mode); ``log_joint`` h_j(û)."""

    mode: FloatArray
    chol: FloatArray
    log_lik: FloatArray
    gradient: FloatArray

    @property
    def log_joint(self) -> FloatArray:
        return np.asarray(self.log_lik - 0.5 * np.sum(np.square(self.mode), axis=1))

    def effects(self, factor: FloatArray) -> FloatArray:
        """The conditional modes on the scale of b: b̂_j = Λû_j (J, k)."""
        return np.asarray(self.mode @ np.asarray(factor).T)


def _loadings(rows: GroupedRows, factor: FloatArray) -> FloatArray:
    """Λᵀz_i per row (n, k): η_i = base_i + (Λᵀz_i)ᵀu."""
    return _outer_sum(rows.z, np.asarray(factor, dtype=float).T)


def _per_row(rows: GroupedRows, values: FloatArray) -> FloatArray:
    """Each row's group's entry of ``values`` (J, ...) → (n, ...)."""
    return values if rows.starts.size == rows.group.size else values[rows.group]


def _eta(rows: GroupedRows, base: FloatArray, loadings: FloatArray,
         u: FloatArray) -> FloatArray:
    """η_i = base_i + (Λᵀz_i)ᵀu_j for every row (n,)."""
    if rows.n_effects == 1:
        return base + loadings[:, 0] * _per_row(rows, u[:, 0])
    return base + np.sum(loadings * _per_row(rows, u), axis=1)


def _log_lik(rows: GroupedRows, base: FloatArray, loadings: FloatArray,
             u: FloatArray) -> FloatArray:
    """ℓ_j(u_j) for every group (J,)."""
    eta = _eta(rows, base, loadings, u)
    return rows.sum(rows.likelihood.log_density(eta))


def _subset(rows: GroupedRows, groups: IntArray) -> tuple[GroupedRows, IntArray]:
    """The rows of ``groups`` (increasing indices), renumbered 0..len − 1, and their
    positions among ``rows``."""
    counts = np.diff(np.append(rows.starts, rows.group.size))[groups]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    positions = np.repeat(rows.starts[groups] - starts, counts) + np.arange(int(counts.sum()))
    return (GroupedRows(rows.z[positions], np.repeat(np.arange(groups.size), counts), starts,
                        rows.likelihood.take(positions)), positions)


#: ℓ_j, ∇ℓ_j and H_j at a point, for every group (J,), (J, k), (J, k, k)
_Parts = tuple[FloatArray, FloatArray, FloatArray]


def _newton_parts(rows: GroupedRows, base: FloatArray, loadings: FloatArray,
                  u: FloatArray) -> _Parts:
    """(ℓ_j, ∇ℓ_j, H_j) at u for every group of ``rows``, from one pass over the rows."""
    value, score, weight = rows.likelihood.values(_eta(rows, base, loadings, u))
    if rows.n_effects == 1:
        return (rows.sum(value), rows.sum(loadings[:, 0] * score)[:, None],
                rows.sum(np.square(loadings[:, 0]) * weight)[:, None, None] + 1.0)
    outer = loadings[:, :, None] * loadings[:, None, :]
    return (rows.sum(value), rows.sum(loadings * score[:, None]),
            rows.sum(outer * weight[:, None, None]) + np.eye(rows.n_effects))


def _ascend(rows: GroupedRows, base: FloatArray, loadings: FloatArray, u: FloatArray,
            parts: _Parts) -> tuple[FloatArray, _Parts, NDArray[np.bool_]]:
    """One Newton step H⁻¹∇h for every group of ``rows`` from u (``parts`` there), halved
    (per group, evaluating only the rows of the groups halved) until h_j does not
    decrease: the new u, the parts there, and whether each group is at its mode
    (:data:`MODE_TOLERANCE`, :data:`FULL_STEP_TOLERANCE`)."""
    log_lik, gradient, hessian = parts
    step = _solve(hessian, gradient - u)
    current = log_lik - 0.5 * np.sum(u * u, axis=1)
    floor = current - 1e-13 * (1.0 + np.abs(current))
    new_u = u + step
    new_lik, new_gradient, new_hessian = _newton_parts(rows, base, loadings, new_u)
    worse = np.flatnonzero(new_lik - 0.5 * np.sum(new_u * new_u, axis=1) < floor)
    halved = worse
    scale = np.ones(rows.n_groups)
    for _ in range(MAX_HALVINGS):
        if not worse.size:
            break
        scale[worse] /= 2.0
        part, at = _subset(rows, worse)
        trial = u[worse] + scale[worse, None] * step[worse]
        trial_lik = _log_lik(part, base[at], loadings[at], trial)
        new_u[worse], new_lik[worse] = trial, trial_lik
        worse = worse[trial_lik - 0.5 * np.sum(trial * trial, axis=1) < floor[worse]]
    else:  # no ascent left in these groups: they are at their mode to rounding
        scale[worse] = 0.0
        new_u[worse] = u[worse]
    if halved.size:  # the parts where the halved groups ended
        part, at = _subset(rows, halved)
        (new_lik[halved], new_gradient[halved],
         new_hessian[halved]) = _newton_parts(part, base[at], loadings[at], new_u[halved])
    length = np.max(np.abs(step), axis=1)
    done = ((scale * length < MODE_TOLERANCE)
            | ((scale == 1.0) & (length < FULL_STEP_TOLERANCE)))
    return new_u, (new_lik, new_gradient, new_hessian), done


def conditional_modes(rows: GroupedRows, base: FloatArray, factor: FloatArray,
                      start: FloatArray | None = None) -> Modes:
    """The conditional modes û_j of every group at once (module docstring): Newton steps
    H⁻¹∇h, each halved (per group) until h_j does not decrease; a group at its mode
    (:func:`_ascend`) stops, and the others go on with only their rows.

    ``base`` (n,) is Xβ + offset in the rows' sorted order, ``factor`` Λ (k × k);
    ``start`` (J, k) a starting point (e.g. the modes at nearby parameters)."""
    base = np.asarray(base, dtype=float)
    loadings = _loadings(rows, factor)
    u = (np.zeros((rows.n_groups, rows.n_effects)) if start is None
         else np.array(start, dtype=float))
    parts = _newton_parts(rows, base, loadings, u)
    moving = np.arange(rows.n_groups)
    part, at = rows, np.arange(rows.group.size)
    for _ in range(MAX_NEWTON_STEPS):
        new_u, new_parts, done = _ascend(part, base[at], loadings[at], u[moving],
                                         (parts[0][moving], parts[1][moving],
                                          parts[2][moving]))
        u[moving] = new_u
        for whole, moved in zip(parts, new_parts, strict=True):
            whole[moving] = moved
        still = ~done
        if not np.any(still):
            break
        if not np.all(still):
            moving = moving[still]
            part, at = _subset(rows, moving)
    log_lik, gradient, hessian = parts
    return Modes(u, _cholesky(hessian), log_lik, gradient)


def hermite_rule(n_agq: int, k: int) -> tuple[FloatArray, FloatArray]:
    """Gauss–Hermite nodes (n_agq^k, k) and log weights for E f(x), x ~ N(0, I_k): the
    probabilists' rule (``hermegauss``) with weights divided by √(2π), as a tensor
    product over the k dimensions."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_agq)
    log_w = np.log(weights) - 0.5 * math.log(2.0 * math.pi)
    grids = np.meshgrid(*([nodes] * k), indexing="ij")
    log_grids = np.meshgrid(*([log_w] * k), indexing="ij")
    return (np.stack([g.ravel() for g in grids], axis=1),
            np.sum([g.ravel() for g in log_grids], axis=0))


def _outer_sum(a: FloatArray, b: FloatArray) -> FloatArray:
    """a bᵀ for a (N, q) and b (m, q) with few columns q, as q broadcast products: for
    q ≤ 5 several times faster than NumPy's matrix product of such thin matrices."""
    out = a[:, 0, None] * b[None, :, 0]
    for c in range(1, a.shape[1]):
        out += a[:, c, None] * b[None, :, c]
    return np.asarray(out)


def log_marginal(rows: GroupedRows, base: FloatArray, factor: FloatArray, n_agq: int,
                 modes: Modes | None = None) -> FloatArray:
    """log p(y_j | β, Σ) for every group (J,) by AGQ with ``n_agq`` points per dimension
    (1: Laplace), centred at the conditional modes (computed unless given)."""
    if n_agq < 1:
        raise ValueError(f"n_agq must be a positive number of points, not {n_agq}")
    base = np.asarray(base, dtype=float)
    if modes is None:
        modes = conditional_modes(rows, base, factor)
    log_det = np.sum(np.log(np.diagonal(modes.chol, axis1=1, axis2=2)), axis=1)
    if n_agq == 1:
        return np.asarray(modes.log_joint - log_det)
    nodes, log_weights = hermite_rule(n_agq, rows.n_effects)
    loadings = _loadings(rows, factor)
    # u_m = û + L⁻ᵀ x_m; per row η = η(û) + (L⁻¹Λᵀz_i)ᵀ x_m
    inverse = _inverse_lower(modes.chol)  # L⁻¹ per group
    eta_mode = _eta(rows, base, loadings, modes.mode)
    spread = np.einsum("nba,na->nb", _per_row(rows, inverse), loadings)
    # each node's term less h_j(û) = ℓ_j(û) − ½|û|² (no term exceeds it by more than
    # ½|x_m|² + log W_m < 0.5, h_j being concave with its maximum at û):
    #   ℓ_j(u_m) − ℓ_j(û) − vᵀx_m − ½x_mᵀ(M − I)x_m + log W_m,  v = L⁻¹û, M = L⁻¹L⁻ᵀ,
    # the quadratic part as one matrix product over the nodes' monomials x_a x_b
    k = rows.n_effects
    v = np.einsum("jab,jb->ja", inverse, modes.mode)
    excess = inverse @ np.swapaxes(inverse, 1, 2) - np.eye(k)
    upper = np.triu_indices(k)
    weight = np.where(upper[0] == upper[1], 0.5, 1.0)
    coefficients = np.concatenate([-v, -weight * excess[:, upper[0], upper[1]]], axis=1)
    monomials = np.concatenate([nodes, nodes[:, upper[0]] * nodes[:, upper[1]]], axis=1)
    block = max(1, BLOCK_VALUES // max(1, base.size))
    total = np.zeros(rows.n_groups)
    for at in range(0, nodes.shape[0], block):
        x = nodes[at:at + block]
        eta = eta_mode[:, None] + _outer_sum(spread, x)
        log_lik = rows.sum(rows.likelihood.log_density(eta))  # (J, m)
        terms = (log_lik - modes.log_lik[:, None]
                 + _outer_sum(coefficients, monomials[at:at + block])
                 + log_weights[at:at + block])
        total += np.sum(np.exp(terms), axis=1)
    return np.asarray(np.log(total) + modes.log_joint - log_det)


def draw_effects(rows: GroupedRows, base: FloatArray, factor: FloatArray, modes: Modes,
                 size: int, rng: np.random.Generator) -> FloatArray:
    """``size`` exact draws of every group's effects b_j = Λu_j given y_j, β and Σ
    (size, J, k), by rejection from the tangent envelope (module docstring) at the modes.

    Each round proposes one u ~ N(g_j, I) for every draw not yet accepted and keeps
    those accepted; only the rows of groups still drawing are evaluated."""
    base = np.asarray(base, dtype=float)
    loadings = _loadings(rows, factor)
    counts = np.diff(np.append(rows.starts, rows.group.size))
    k, n_groups = rows.n_effects, rows.n_groups
    out = np.zeros((size, n_groups, k))
    pending_draw, pending_group = np.divmod(np.arange(size * n_groups), n_groups)
    while pending_group.size:
        g = modes.gradient[pending_group]
        u = g + rng.standard_normal((pending_group.size, k))
        # each pending (draw, group) pair gets its group's rows, pairs one after another
        lengths = counts[pending_group]
        pair = np.repeat(np.arange(pending_group.size), lengths)
        first = np.cumsum(lengths) - lengths
        row = rows.starts[pending_group][pair] + np.arange(pair.size) - first[pair]
        eta = base[row] + np.sum(loadings[row] * u[pair], axis=1)
        log_lik = np.add.reduceat(rows.likelihood.take(row).log_density(eta), first)
        log_ratio = (log_lik - modes.log_lik[pending_group]
                     - np.sum(g * (u - modes.mode[pending_group]), axis=1))
        accept = np.log(rng.uniform(size=pending_group.size)) < log_ratio
        out[pending_draw[accept], pending_group[accept]] = u[accept]
        pending_draw, pending_group = pending_draw[~accept], pending_group[~accept]
    return np.asarray(out @ np.asarray(factor, dtype=float).T)


__all__ = ["GroupedRows", "Modes", "conditional_modes", "draw_effects", "group_rows",
           "hermite_rule", "log_marginal"]
