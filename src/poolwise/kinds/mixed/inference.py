"""NUTS for mixed models, with the group effects (and β) integrated out where Gaussian.

The model (:mod:`poolwise.kinds.mixed.design`) is

    g(E[y_i]) = x_iᵀ β + Σ_t z_tiᵀ b_t[l_t(i)] + offset_i,   b_t[l] ~ N(0, Σ_t),
    Σ_t = D_t R_t D_t,  D_t = diag(sd_t),  R_t = L_t L_tᵀ ~ LKJ(η_t),
    β_j ~ N(m_j, s_j²),  sd_te ~ p(sd_te),  (normal family) σ ~ p(σ),
    (negative binomial family) φ ~ p(φ),

with the priors of :mod:`poolwise.kinds.mixed.priors`. Write b = (b_t[l])_{t,l} stacked term by
term, level by level (column ``offset_t + l k_t + e`` of Z holds z_tie on the rows of level
l), so that y = Xβ + Zb + ε and Cov(b) = G = blockdiag_t(I_{L_t} ⊗ Σ_t) = ΛΛᵀ with
Λ = blockdiag_t(I_{L_t} ⊗ Λ_t), Λ_t = D_t L_t (lower triangular).

``parametrisation="marginal"`` (normal family; its "auto")
    Both b and β are Gaussian given the variance parameters, so both are integrated out:
    with W = [Z X], δ = (b, β − m) ~ N(0, Ψ), Ψ = blockdiag(G, diag(s²)) = Λ_ΨΛ_Ψᵀ and
    r = y − offset − Xm,

        r ~ N(0, V),  V = σ²I + WΨWᵀ.

    By the Woodbury identity and the matrix determinant lemma, with the scaled
    (m × m, m = q + p) matrix A = I + Λ_ΨᵀWᵀWΛ_Ψ/σ² = LLᵀ and u = L⁻¹Λ_ΨᵀWᵀr/σ²,

        log|V| = n log σ² + log|A|,   rᵀV⁻¹r = rᵀr/σ² − uᵀu,

    the form lme4 uses (Bates et al. 2015, §3), which never inverts Σ_t and so stays finite
    as an sd goes to zero. Only WᵀW, Wᵀr and rᵀr enter: they are computed once (WᵀW in
    blocks, :class:`GaussianStats`), and A is factorised by blocks, the term with the most
    levels first (:func:`gaussian_marginal`), so each density evaluation costs the cube of
    the columns outside that term, whatever n. NUTS samples only the variance parameters,
    unconstrained: log σ, log sd_te and, for a correlated term with k_t > 1, the
    k_t(k_t − 1)/2 coordinates x_t of NumPyro's ``CorrCholeskyTransform`` (L_t = T(x_t)),
    from

        log p(x | y) = log N(r | 0, V) + Σ log p(sd) + log sd (the same for σ)
                       + log LKJCholesky(L_t | η_t) + log |∂L_t/∂x_t|.

    A coefficient with a Student-t prior t_ν(m_j, s_j) is the scale mixture
    β_j | λ_j ~ N(m_j, s_j²/λ_j), λ_j ~ Gamma(ν/2, rate ν/2): its sd in Ψ is s_j/√λ_j, and
    NUTS samples log λ_j too, with log p(x | y) gaining log Gamma(λ_j; ν/2, ν/2) + log λ_j
    (Andrews and Mallows 1974), so β stays integrated out exactly given λ.

    After sampling, δ is drawn exactly from its Gaussian conditional at each draw,
    δ = Λ_Ψ L⁻ᵀ(u + ε), ε ~ N(0, I): draws of the full joint posterior, the same variables
    as the explicit parametrisations. The same algebra with β given a flat prior (its
    columns unscaled and no identity added there) is the restricted likelihood maximised
    by :func:`poolwise.kinds.mixed.reml.fit_reml`; :func:`gaussian_marginal` serves both.

    Method ``importance`` (:func:`integrate_mixed`) uses the same log p(x | y) without a
    Markov chain: evaluated in NumPy at thousands of x at once (every function here takes
    an array namespace ``xp`` and leading batch dimensions), its mode found, weighted
    draws from a Student-t around it Pareto-smoothed and resampled
    (:mod:`poolwise.inference.importance`), then δ drawn exactly at each draw as above.

``parametrisation="non-centred"`` (any family; "auto" for all but normal)
    NUTS samples β, log σ (normal family) or log φ (negative binomial), log sd_t, x_t and
    standard normal ζ_t (L_t × k_t),
    with b_t[l] = Λ_t ζ_t[l], so that ζ is independent of the sds a priori and the funnel
    between sds and group effects is gone (Betancourt and Girolami 2015).
``parametrisation="centred"``
    As non-centred, but b_t[l] is sampled directly with its N(0, Σ_t) density: prone to
    the funnel (divergences) when groups carry little information.

A Student-t prior on a coefficient enters the explicit parametrisations as its density.

Likelihoods on the linear predictor η: normal N(y | η, σ²); binomial (logit link,
``trials`` n) y log σ(η) + (n − y) log σ(−η) + log C(n, y) with ``jax.nn.log_sigmoid``;
bernoulli the same with n = 1; poisson (log link, offset) y η − e^η − log y!;
negbinomial (log link, offset, shape φ) :func:`poolwise.families.negative_binomial.log_pmf`.

References: Bates, Mächler, Bolker and Walker (2015), "Fitting linear mixed-effects models
using lme4", J. Stat. Softw. 67(1); Lewandowski, Kurowicka and Joe (2009), "Generating
random correlation matrices based on vines and extended onion method", J. Multivariate
Anal. 100:1989-2001; Andrews and Mallows (1974), "Scale mixtures of normal
distributions", J. R. Stat. Soc. B 36:99-102; Betancourt and Girolami (2015),
"Hamiltonian Monte Carlo for hierarchical models", in *Current Trends in Bayesian
Methodology with Applications*.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from poolwise._ops import start_jax
from poolwise._random import Stream, generator, jax_key
from poolwise.exceptions import SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.inference.importance import DEFAULT_DF
from poolwise.inference.nuts import CHAIN_METHOD, run_chains
from poolwise.kinds.mixed.design import FAMILIES, FAMILY_PARAMETERS, GroupTerm, MixedDesign
from poolwise.kinds.mixed.priors import MixedPriors, icc_log_density
from poolwise.priors import Distribution

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: values of ``parametrisation``
PARAMETRISATIONS = ("auto", "marginal", "non-centred", "centred")
#: NUTS step-size adaptation targets: the marginal posterior of the few variance
#: parameters is smooth; the explicit forms get smaller steps, as in poolwise.inference.nuts
TARGET_ACCEPT = {"marginal": 0.8, "non-centred": 0.9, "centred": 0.9}
#: NumPyro's default limit on the depth of the NUTS tree (2^10 − 1 leapfrog steps)
MAX_TREE_DEPTH = 10
#: half-width of the uniform jitter of the starts on the unconstrained (log-sd, ζ) scale
INIT_JITTER = 0.5
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class MixedDraws:
    """Posterior draws of a mixed model, ready for ArviZ.

    ``posterior``: ``b`` (chain, draw, coef); ``sigma`` (normal family) or ``phi`` (negative
    binomial); per term with factor f
    ``sd_f`` (…, f_effect), ``cor_f`` (…, f_effect, f_effect_bis; correlated terms with two
    or more effects) and ``r_f`` (…, f, f_effect), the group effects. ``dims`` names the
    dimensions after (chain, draw); ``coords`` their labels.
    """

    posterior: dict[str, np.ndarray]
    dims: dict[str, list[str]]
    coords: dict[str, Any]
    sample_stats: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ Gaussian marginal


@dataclass(frozen=True)
class Segment:
    """Columns ``offset .. offset + n_levels · n_effects`` of W scaled by I ⊗ Λ (k × k)."""

    offset: int
    n_levels: int
    n_effects: int

    @property
    def stop(self) -> int:
        return self.offset + self.n_levels * self.n_effects


class SparseCross(NamedTuple):
    """M = W_restᵀW₁: the cross-products of the columns factorised densely (the other
    terms, β) with those of the eliminated segment (L levels × k effects), stored by
    (rest column, level) pair: entry a is the k-vector M[rows[a], levels[a]·k + (0..k−1)],
    and only pairs that share a row of the data are stored (for crossed factors, the level
    pairs that occur together; for one factor, each level with the p columns of X).

    ``schur_*`` list the nonzeros of the linear map from the per-level k × k matrices B_l
    to the lower triangle of S = M blockdiag(B) Mᵀ (:func:`_schur_product`): S[i, j]
    (i ≥ j, flat index ``schur_target`` = i·m + j for m rest columns) gains
    ``schur_weight`` × B_l[e, f] (``schur_source`` = l·k² + e·k + f), with weight
    M[i, (l, e)] M[j, (l, f)]: one term per pair of entries of the same level, so the map
    costs Σ_l n_l² k² (n_l: the entries of level l), never m·L.

    Where at least half of M is filled (one grouping factor: every level meets every
    column of X), M is held as ``dense`` (m, L, k) instead, its products made by BLAS, and
    the other fields are empty; otherwise ``dense`` is empty.
    """

    rows: IntArray
    levels: IntArray
    values: FloatArray
    schur_target: IntArray
    schur_source: IntArray
    schur_weight: FloatArray
    dense: FloatArray


@dataclass(frozen=True)
class GaussianStats:
    """Sufficient statistics of a linear mixed model, W = [Z X]: WᵀW in blocks, Wᵀr, rᵀr.

    ``segments`` are the column blocks with a Gaussian prior, one per group term and, when
    β has its Normal prior, one for β (one level, p effects); the last ``n_flat`` columns
    (β under REML or ML) have a flat prior. The segment with the most levels
    (:func:`eliminated_segment`, columns W₁) is eliminated first: ``first`` holds the k × k
    diagonal blocks of W₁ᵀW₁ (shaped (L, k, k); it has no others, each row being in one
    level), ``cross`` the sparse M = W_restᵀW₁, and ``rest`` the dense W_restᵀW_rest of
    the other columns (in their order). ``wtr`` is Wᵀr in the order of W's columns. No
    matrix of WᵀW's full size is held.
    """

    n_obs: int
    first: FloatArray
    cross: SparseCross
    rest: FloatArray
    wtr: FloatArray
    rtr: float
    segments: tuple[Segment, ...]
    n_flat: int

    @property
    def arrays(self) -> dict[str, Any]:
        """The arrays, to give a compiled JAX function as arguments (:meth:`with_arrays`)."""
        return {"first": self.first, "cross": self.cross, "rest": self.rest, "wtr": self.wtr}

    def with_arrays(self, arrays: dict[str, Any]) -> GaussianStats:
        """The same statistics with :attr:`arrays` replaced (traced arrays in JAX)."""
        return replace(self, **arrays)


class GaussianMarginal(NamedTuple):
    """log N(r | 0, V) with the flat columns integrated out, and its pieces.

    ``log_det`` = log|V| + log|W_fᵀV⁻¹W_f| and ``quadratic`` = min over the flat
    coefficients of (r − W_f c)ᵀV⁻¹(r − W_f c); ``log_density`` =
    −½((n − n_flat) log 2π + log_det + quadratic). The Cholesky factor of A, in blocks
    (eliminated segment, rest), is [[L₁, 0], [C, L₂]] with L₁ block diagonal (``first_chol``
    holds its k × k blocks, shaped (levels, k, k)), C = Λ_restᵀMΛ₁L₁⁻ᵀ/σ² (never formed)
    and ``rest_chol`` = L₂; ``u`` = L⁻¹Λᵀ Wᵀr/σ² in the same split (``u_first``,
    ``u_rest``); ``variance`` is σ². :func:`draw_coefficients` uses them for the
    conditional of the coefficients.
    """

    log_density: Any
    log_det: Any
    quadratic: Any
    first_chol: Any
    rest_chol: Any
    u_first: Any
    u_rest: Any
    variance: Any

def random_effects_matrix(design: MixedDesign) -> sparse.csr_array:
    """Z (n × q), term by term and level by level: column offset_t + l k_t + e."""
    n, rows, cols, values, offset = design.n_obs, [], [], [], 0
    for term in design.terms:
        k = term.n_effects
        for e in range(k):
            rows.append(np.arange(n))
            cols.append(offset + np.asarray(term.index) * k + e)
            values.append(np.asarray(term.z[:, e], dtype=float))
        offset += term.n_levels * k
    if not rows:
        return sparse.csr_array((n, 0))
    return sparse.csr_array(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, offset))

def term_segments(design: MixedDesign) -> tuple[Segment, ...]:
    """The column block of Z of each group term."""
    segments, offset = [], 0
    for term in design.terms:
        segments.append(Segment(offset, term.n_levels, term.n_effects))
        offset = segments[-1].stop
    return tuple(segments)

def eliminated_segment(segments: Sequence[Segment]) -> int | None:
    """The segment whose block of A is eliminated first: the one with the most levels (the
    earliest of equals), as MixedModels.jl orders its terms; None without segments."""
    if not segments:
        return None
    return max(range(len(segments)), key=lambda s: (segments[s].n_levels, -s))


def _rest_segments(segments: Sequence[Segment], first: int | None) -> tuple[Segment, ...]:
    """The segments other than ``first``, their offsets counted in the rest's columns."""
    if first is None:
        return tuple(segments)
    width = segments[first].stop - segments[first].offset
    return tuple(Segment(s.offset - (width if i > first else 0), s.n_levels, s.n_effects)
                 for i, s in enumerate(segments) if i != first)


def _span(stats: GaussianStats) -> tuple[int, int]:
    """The columns a..b of W of the eliminated segment ((0, 0) without one)."""
    first = eliminated_segment(stats.segments)
    if first is None:
        return 0, 0
    return stats.segments[first].offset, stats.segments[first].stop


def gaussian_stats(design: MixedDesign, fixed_loc: FloatArray | None) -> GaussianStats:
    """WᵀW in blocks, Wᵀr and rᵀr, r = y − offset − X m, for β ~ N(m, ·) or (``None``) β
    flat (:class:`GaussianStats`)."""
    segments = term_segments(design)
    q, p = (segments[-1].stop if segments else 0), len(design.fixed_names)
    if fixed_loc is not None and p:
        segments = (*segments, Segment(q, 1, p))
    n_flat = 0 if fixed_loc is not None else p
    if design.cross is not None:
        wtw, wty, yty = _cross_products(design)
        if fixed_loc is None:
            return _blocked_stats(design.n_obs, wtw, wty, yty, segments, n_flat)
        xtx, xty = wtw[q:, q:].toarray(), wty[q:]
        wtr = wty - wtw[:, q:] @ fixed_loc
        rtr = yty - 2.0 * float(fixed_loc @ xty) + float(fixed_loc @ xtx @ fixed_loc)
        return _blocked_stats(design.n_obs, wtw, wtr, rtr, segments, n_flat)
    x = np.asarray(design.x, dtype=float)
    w = sparse.hstack([random_effects_matrix(design), sparse.csr_array(x)], format="csr")
    r = np.asarray(design.y, dtype=float)
    if design.offset is not None:
        r = r - design.offset
    if fixed_loc is not None:
        r = r - x @ fixed_loc
    return _blocked_stats(design.n_obs, sparse.csr_array(w.T @ w), np.asarray(w.T @ r),
                          float(r @ r), segments, n_flat)


def _cross_products(design: MixedDesign) -> tuple[sparse.csr_array, FloatArray, float]:
    """Sparse WᵀW, Wᵀy and yᵀy from a streamed design's per-level sums (one grouping
    factor): ZᵀZ = blockdiag_j Z_jᵀZ_j, ZᵀX = [Z_jᵀX_j]_j, XᵀX = Σ_j X_jᵀX_j, Wᵀy likewise."""
    cross = design.cross
    assert cross is not None
    p = len(design.fixed_names)
    levels, k = (cross.ztz.shape[0], cross.ztz.shape[1]) if design.terms else (0, 0)
    q = levels * k
    column = np.arange(q).reshape(levels, k)
    rows = [np.broadcast_to(column[:, :, None], (levels, k, k)),
            np.broadcast_to(column[:, :, None], (levels, k, p)),
            np.broadcast_to(q + np.arange(p)[None, :, None], (levels, p, k)),
            np.broadcast_to(q + np.arange(p)[:, None], (p, p))]
    cols = [np.broadcast_to(column[:, None, :], (levels, k, k)),
            np.broadcast_to(q + np.arange(p)[None, None, :], (levels, k, p)),
            np.broadcast_to(column[:, None, :], (levels, p, k)),
            np.broadcast_to(q + np.arange(p)[None, :], (p, p))]
    values = [cross.ztz, cross.ztx, np.swapaxes(cross.ztx, 1, 2), cross.total("xtx")]
    if not design.terms:
        rows, cols, values = rows[3:], cols[3:], values[3:]
    wtw = sparse.csr_array((np.concatenate([np.ravel(v) for v in values]),
                            (np.concatenate([np.ravel(r) for r in rows]),
                             np.concatenate([np.ravel(c) for c in cols]))), shape=(q + p, q + p))
    wty = np.concatenate([np.ravel(cross.zty) if design.terms else np.zeros(0),
                          cross.total("xty")])
    return wtw, wty, float(cross.total("yty"))


def _blocked_stats(n_obs: int, wtw: sparse.csr_array, wtr: FloatArray, rtr: float,
                   segments: tuple[Segment, ...], n_flat: int) -> GaussianStats:
    """:class:`GaussianStats` from the sparse WᵀW: its blocks around the eliminated segment."""
    size = wtw.shape[0]
    first = eliminated_segment(segments)
    levels, k = (segments[first].n_levels, segments[first].n_effects) if first is not None \
        else (0, 0)
    start, stop = (segments[first].offset, segments[first].stop) if first is not None \
        else (0, 0)
    keep = np.r_[0:start, stop:size]
    by_row = wtw.tocsr()
    rest = np.asarray(by_row[keep][:, keep].toarray(), dtype=float)
    diagonal = sparse.coo_array(by_row[start:stop][:, start:stop])
    blocks = np.zeros((levels, k, k))
    if levels:
        blocks[diagonal.row // k, diagonal.row % k, diagonal.col % k] = diagonal.data
    products = sparse.coo_array(by_row[keep][:, start:stop])
    cross = _sparse_cross(products.row, products.col, products.data, keep.size, levels, k)
    return GaussianStats(n_obs, blocks, cross, rest, np.asarray(wtr, dtype=float),
                         float(rtr), segments, n_flat)


def _sparse_cross(row: IntArray, col: IntArray, value: FloatArray, n_rest: int, levels: int,
                  k: int) -> SparseCross:
    """:class:`SparseCross` from the nonzeros (row, col, value) of M = W_restᵀW₁."""
    empty = np.zeros(0, dtype=np.intp)
    if not levels:
        return SparseCross(empty, empty, np.zeros((0, k)), empty, empty, np.zeros(0),
                           np.zeros((n_rest, 0, k)))
    key = row.astype(np.intp) * levels + col // k
    pairs, entry = np.unique(key, return_inverse=True)
    if 2 * pairs.size >= n_rest * levels:
        dense = np.zeros((n_rest, levels, k))
        dense[row, col // k, col % k] = value
        return SparseCross(empty, empty, np.zeros((0, k)), empty, empty, np.zeros(0), dense)
    values = np.zeros((pairs.size, k))
    values[entry, col % k] = value
    rows, level = pairs // levels, pairs % levels
    # every ordered pair (a, b) of entries of the same level, then i = rows[a] ≥ rows[b]
    order = np.argsort(level, kind="stable")
    counts = np.bincount(level, minlength=levels)
    starts = np.cumsum(counts) - counts
    partners = counts[level[order]]
    position = np.repeat(np.arange(order.size), partners)
    within = np.arange(position.size) - np.repeat(np.cumsum(partners) - partners, partners)
    a = order[position]
    b = order[starts[level[a]] + within]
    lower = rows[a] >= rows[b]
    a, b = a[lower], b[lower]
    weight = values[a][:, :, None] * values[b][:, None, :]
    target = np.repeat(rows[a] * n_rest + rows[b], k * k)
    source = (level[a] * k * k)[:, None] + np.arange(k * k)
    return SparseCross(rows, level, values, target, source.ravel(), weight.ravel(),
                       np.zeros((0, levels, k)))


def _segment_sum(values: Any, ids: Any, size: int, xp: Any) -> Any:
    """out[..., s] = Σ_{a: ids[a] = s} values[..., a] for s < ``size`` (batch in front)."""
    if xp is np:
        flat = values.reshape(-1, values.shape[-1])
        shifted = ids + (np.arange(flat.shape[0]) * size)[:, None]
        out = np.bincount(shifted.ravel(), weights=flat.ravel(), minlength=flat.shape[0] * size)
        return out.reshape(*values.shape[:-1], size)
    import jax

    summed = jax.ops.segment_sum(xp.moveaxis(values, -1, 0), ids, num_segments=size)
    return xp.moveaxis(summed, 0, -1)


def _schur_product(cross: SparseCross, coupling: Any, n_rest: int, xp: Any) -> Any:
    """S = M blockdiag(B) Mᵀ (…, m, m) for B = ``coupling`` (…, L, k, k)."""
    if cross.dense.size or not cross.values.size:
        pairwise = {"optimize": True} if xp is np else {}  # NumPy: by BLAS, pairwise
        return xp.einsum("ile,...lef,jlf->...ij", cross.dense, coupling, cross.dense,
                         **pairwise)
    flat = coupling.reshape(*coupling.shape[:-3], -1)
    lower = _segment_sum(cross.schur_weight * flat[..., cross.schur_source],
                         cross.schur_target, n_rest * n_rest, xp)
    lower = lower.reshape(*lower.shape[:-1], n_rest, n_rest)
    return lower + xp.swapaxes(lower, -1, -2) - lower * np.eye(n_rest)


def _cross_times(cross: SparseCross, h: Any, n_rest: int, xp: Any) -> Any:
    """M h (…, m) for h shaped (…, L, k)."""
    if cross.dense.size or not cross.values.size:
        return xp.einsum("ile,...le->...i", cross.dense, h)
    return _segment_sum(xp.sum(cross.values * h[..., cross.levels, :], axis=-1), cross.rows,
                        n_rest, xp)


def _cross_transposed_times(cross: SparseCross, v: Any, levels: int, xp: Any) -> Any:
    """Mᵀ v (…, L, k) for v shaped (…, m)."""
    if cross.dense.size or not cross.values.size:
        return xp.einsum("ile,...i->...le", cross.dense, v)
    terms = cross.values * v[..., cross.rows, None]  # (…, entries, k)
    return xp.swapaxes(_segment_sum(xp.swapaxes(terms, -1, -2), cross.levels, levels, xp),
                       -1, -2)

def marginal_values(stats: GaussianStats) -> int:
    """The values (8 bytes each) one evaluation of :func:`gaussian_marginal` or
    :func:`draw_coefficients` holds per point at its peak."""
    cross = stats.cross
    return _evaluation_values(stats.first.size, stats.rest.shape[0], cross.values.size,
                              cross.schur_weight.size, stats.wtr.size)


def draw_values(stats: GaussianStats) -> int:
    """The values one draw of :func:`draw_coefficients` given a factorisation holds (M's
    entries gathered, vectors of every column): draws given one factorisation, vectorised,
    go in blocks of :data:`CHUNK_VALUES` values."""
    return _draw_values(stats.cross.values.size, stats.wtr.size)


def _draw_values(entries: int, columns: int) -> int:
    return 2 * (entries + columns)


def _evaluation_values(first: int, n_rest: int, entries: int, schur: int, columns: int) -> int:
    """L₁'s blocks with K and B, the dense rest and its factor, the Schur map's terms and
    their indices, M's entries, a vector of every column."""
    return 4 * first + 3 * n_rest * n_rest + 3 * schur + 2 * entries + columns + 1


def marginal_memory(design: MixedDesign, draws: int, shared: bool) -> tuple[int, int]:
    """(values :func:`gaussian_stats` holds, values the conditional draws hold) for
    ``design``, counted before anything is built (the memory guard's estimate). ``shared``:
    the ``draws`` draws share one factorisation (eb-ml); otherwise each draw has its own;
    either way they are made in chunks of :data:`CHUNK_VALUES` values. M has, for
    each level of the eliminated term, one entry per column of X and per level of each
    other term that shares a row with it (all levels of a streamed design's one factor
    meet every column of X and nothing else)."""
    segments = term_segments(design)
    p = len(design.fixed_names)
    columns = (segments[-1].stop if segments else 0) + p
    first = eliminated_segment(segments)
    if first is None:
        held, per_point, per_draw = (p * p + p, _evaluation_values(0, p, 0, 0, p),
                                     _draw_values(0, p))
    else:
        term = design.terms[first]
        levels, k = term.n_levels, term.n_effects
        per_level = np.full(levels, p, dtype=np.int64)
        for other in design.terms:
            if other is not term and not design.streamed:
                pairs = np.unique(np.asarray(term.index, dtype=np.int64) * other.n_levels
                                  + np.asarray(other.index))
                per_level += other.n_effects * np.bincount(pairs // other.n_levels,
                                                           minlength=levels)
        entries = int(per_level.sum())
        schur = int(np.sum(per_level * (per_level + 1) // 2)) * k * k
        n_rest = columns - levels * k
        # M's rows, levels and k values per entry; the Schur map's target, source, weight
        held = levels * k * k + n_rest * n_rest + (2 + k) * entries + 3 * schur + columns
        per_point = _evaluation_values(levels * k * k, n_rest, entries * k, schur, columns)
        per_draw = _draw_values(entries * k, columns)
    unit = per_draw if shared else per_point
    return held, min(draws * unit, max(CHUNK_VALUES, unit))


def array_namespace(xp: Any | None) -> Any:
    """``xp`` itself, or ``jax.numpy`` for None: the maths below runs in either.

    NumPy evaluates many points at once (leading batch dimensions, no compilation); JAX
    evaluates one point inside a compiled NUTS potential (and ``vmap`` adds the batch).
    """
    if xp is not None:
        return xp
    import jax.numpy as jnp

    return jnp

def times_factor(m: Any, factors: Sequence[Any], segments: Sequence[Segment],
                 transpose: bool = False, xp: Any = None) -> Any:
    """M Λ (or M Λᵀ) for Λ = blockdiag(I_L ⊗ Λ_s for each segment, I for the rest).

    Λ acts on the last axis of M, shaped (..., R, n): R rows, each scaled alike.
    ``factors[s]`` is Λ_s, shaped (..., k, k) with the same (broadcasting) leading batch
    dimensions as M's; the result has the batch dimensions of both.
    """
    xp = array_namespace(xp)
    rows = m.shape[:-1]
    pieces = []
    for segment, factor in zip(segments, factors, strict=True):
        block = m[..., segment.offset:segment.stop].reshape(
            *rows, segment.n_levels, segment.n_effects)
        factor = xp.swapaxes(factor, -1, -2) if transpose else factor
        scaled = _small_matmul(block, factor[..., None, :, :])  # the same Λ_s for all
        pieces.append(scaled.reshape(*scaled.shape[:-2], segment.n_levels * segment.n_effects))
    end = segments[-1].stop if segments else 0
    pieces.append(m[..., end:])
    lead = np.broadcast_shapes(*(piece.shape[:-1] for piece in pieces))
    return xp.concatenate([xp.broadcast_to(piece, (*lead, piece.shape[-1]))
                           for piece in pieces], axis=-1)

def gaussian_marginal(stats: GaussianStats, sigma: Any, factors: Sequence[Any],
                      xp: Any = None) -> GaussianMarginal:
    """log N(r | 0, σ²I + WΨWᵀ), Ψ = ΛΛᵀ on the segments, flat on the last columns.

    ``factors[s]`` is the lower-triangular Λ_s of segment s (for a group term the Cholesky
    factor of Σ_t, diag(sd) L_t; for β, diag(s)). Formulas in the module docstring.
    ``sigma`` may carry batch dimensions B (NumPy: many points at once) and then each
    factor is shaped B + (k, k); every result has them in front. ``xp``: the array
    namespace (:func:`array_namespace`; JAX should be in 64-bit mode,
    :func:`poolwise._ops.jax_ops` switches it on).

    A = I + ΛᵀWᵀWΛ/σ² is factorised by blocks, as lme4 and MixedModels.jl do (Bates et al.
    2015, §3.3; MixedModels.jl's blocked Cholesky factor). Its block A₁₁ on the eliminated
    segment (the term with the most levels, :func:`eliminated_segment`) is block diagonal,
    since each row of the data is in one level of its factor: L₁ is one k × k Cholesky
    factor per level. With B_l = Λ₁A₁₁,l⁻¹Λ₁ᵀ = K_lᵀK_l (K_l = L₁,l⁻¹Λ₁ᵀ), the Schur
    complement of A₁₁,

        A₂₂ − CCᵀ = I + Λ₂ᵀ(W₂ᵀW₂ − M blockdiag(B) Mᵀ/σ²)Λ₂/σ²,   M = W₂ᵀW₁,

    is the only dense matrix factorised (L₂; m = the other terms' columns and β's), and
    M blockdiag(B) Mᵀ costs one term per pair of M's entries of the same level
    (:class:`SparseCross`): for crossed factors of thousands of levels nothing of size
    q × q or m × L is formed. Likewise u₁ = K Wᵀ₁r/σ² and the right side of the rest,
    Λ₂ᵀ(W₂ᵀr − M blockdiag(B) W₁ᵀr/σ²)/σ². Per evaluation: O(L k³ + Σ_l n_l² k² + m³).
    """
    xp = array_namespace(xp)
    variance = xp.square(xp.asarray(sigma, dtype=float))
    batch = variance.shape
    scale = variance[..., None]  # divides vectors; scale[..., None] divides matrices
    segments = stats.segments
    first = eliminated_segment(segments)
    start, stop = _span(stats)
    rest_segments = _rest_segments(segments, first)
    rest_factors = [f for s, f in enumerate(factors) if s != first]
    n_rest = stats.rest.shape[0]
    prior = np.concatenate([np.ones(n_rest - stats.n_flat), np.zeros(stats.n_flat)])
    wtr = xp.asarray(stats.wtr)
    wtr_rest = xp.concatenate([wtr[:start], wtr[stop:]])
    rest = xp.asarray(stats.rest)
    log_det = stats.n_obs * xp.log(variance)
    quadratic = stats.rtr / variance
    first_chol = u_first = xp.zeros((*batch, 0))
    if first is not None:
        levels, k = segments[first].n_levels, segments[first].n_effects
        factor = factors[first]
        # L₁: the Cholesky factors of the diagonal blocks Λ₁ᵀ(W₁ᵀW₁)_lΛ₁/σ² + I
        # NumPy: contracted pairwise (its default einsum loops over all five indices)
        pairwise = {"optimize": True} if xp is np else {}
        blocks = (xp.einsum("...ji,ljm,...mn->...lin", factor, stats.first, factor, **pairwise)
                  / scale[..., None, None] + np.eye(k))
        first_chol = cholesky(blocks, xp)
        solved = _first_solved(first_chol, factor, xp)  # K_l = L₁,l⁻¹Λ₁ᵀ
        wtr_first = wtr[start:stop].reshape(levels, k, 1)
        u_first = _small_matmul(solved, wtr_first)[..., 0] / scale[..., None]
        coupling = _small_matmul(xp.swapaxes(solved, -1, -2), solved)  # B_l = K_lᵀK_l
        rest = rest - _schur_product(stats.cross, coupling, n_rest, xp) / scale[..., None]
        wtr_rest = wtr_rest - _cross_times(
            stats.cross, _small_matmul(coupling, wtr_first)[..., 0] / scale[..., None],
            n_rest, xp)
        quadratic = quadratic - xp.sum(xp.square(u_first), axis=(-2, -1))
        log_det = log_det + 2.0 * xp.sum(
            xp.log(xp.diagonal(first_chol, axis1=-2, axis2=-1)), axis=(-2, -1))
        u_first = u_first.reshape(*batch, levels * k)
    rest = _sandwich(rest, rest_factors, rest_segments, xp) / scale[..., None] + np.diag(prior)
    u_rest = times_factor(wtr_rest[..., None, :], rest_factors, rest_segments,
                          xp=xp)[..., 0, :] / scale
    rest_chol = cholesky(rest, xp)
    u_rest = forward_solve(rest_chol, u_rest[..., None], xp)[..., 0]
    quadratic = quadratic - xp.sum(xp.square(u_rest), axis=-1)
    log_det = log_det + 2.0 * xp.sum(xp.log(xp.diagonal(rest_chol, axis1=-2, axis2=-1)),
                                     axis=-1)
    log_density = -0.5 * ((stats.n_obs - stats.n_flat) * _LOG_2PI + log_det + quadratic)
    return GaussianMarginal(log_density, log_det, quadratic, first_chol, rest_chol,
                            u_first, u_rest, variance)


def _small_matmul(a: Any, b: Any) -> Any:
    """a @ b for stacks of small matrices, (…, i, m) @ (…, m, j), as m broadcast products
    (NumPy's matmul and einsum loop slowly over many tiny matrices)."""
    return sum((a[..., :, m, None] * b[..., m, None, :] for m in range(1, a.shape[-1])),
               a[..., :, 0, None] * b[..., 0, None, :])


def _first_solved(first_chol: Any, factor: Any, xp: Any) -> Any:
    """K_l = L₁,l⁻¹Λ₁ᵀ for every level (…, L, k, k)."""
    factor_t = xp.swapaxes(factor, -1, -2)[..., None, :, :]
    return forward_solve(first_chol, xp.broadcast_to(factor_t, first_chol.shape), xp)


def _sandwich(m: Any, factors: Sequence[Any], segments: Sequence[Segment], xp: Any) -> Any:
    """Λᵀ M Λ for a square M (Λ as in :func:`times_factor`)."""
    right = times_factor(m, factors, segments, xp=xp)
    return xp.swapaxes(times_factor(xp.swapaxes(right, -1, -2), factors, segments, xp=xp),
                       -1, -2)


def draw_coefficients(marginal: GaussianMarginal, stats: GaussianStats,
                      factors: Sequence[Any], noise: Any, xp: Any = None) -> Any:
    """δ = Λ L⁻ᵀ(u + ε): a draw of the coefficients given y (ε = 0: their mean), in the
    order of W's columns.

    With L = [[L₁, 0], [C, L₂]]: γ₂ = L₂⁻ᵀ(u₂ + ε₂), γ₁ = L₁⁻ᵀ(u₁ + ε₁ − Cᵀγ₂), where
    Cᵀγ₂ = KMᵀΛ₂γ₂/σ² (K and M as in :func:`gaussian_marginal`); δ₂ = Λ₂γ₂, δ₁ = Λ₁γ₁.
    Batch dimensions as in :func:`gaussian_marginal`; ``noise`` is shaped B + (m,) or
    broadcasts to it."""
    xp = array_namespace(xp)
    segments = stats.segments
    first = eliminated_segment(segments)
    start, stop = _span(stats)
    rest_segments = _rest_segments(segments, first)
    rest_factors = [f for s, f in enumerate(factors) if s != first]
    batch = marginal.u_rest.shape[:-1]
    noise = xp.broadcast_to(noise, (*batch, stats.wtr.shape[0]))
    noise_rest = xp.concatenate([noise[..., :start], noise[..., stop:]], axis=-1)
    gamma = backward_solve(marginal.rest_chol,
                           (marginal.u_rest + noise_rest)[..., None], xp)[..., 0]
    delta = times_factor(gamma[..., None, :], rest_factors, rest_segments, transpose=True,
                         xp=xp)[..., 0, :]
    if first is None:
        return delta
    levels, k = segments[first].n_levels, segments[first].n_effects
    factor = factors[first]
    solved = _first_solved(marginal.first_chol, factor, xp)
    coupled = _cross_transposed_times(stats.cross, delta, levels, xp)  # Mᵀδ₂ (…, L, k)
    coupled = (_small_matmul(solved, coupled[..., None])[..., 0]
               / marginal.variance[..., None, None])
    right = (marginal.u_first + noise[..., start:stop]).reshape(*batch, levels, k) - coupled
    gamma_first = backward_solve(marginal.first_chol, right[..., None], xp)[..., 0]
    delta_first = _small_matmul(gamma_first[..., None, :],
                                xp.swapaxes(factor, -1, -2)[..., None, :, :])
    delta_first = delta_first.reshape(*batch, levels * k)
    return xp.concatenate([delta[..., :start], delta_first, delta[..., start:]], axis=-1)

#: matrices up to this size are factorised and solved with unrolled elementwise operations,
#: which XLA compiles several times faster than its Cholesky and triangular solvers (and
#: which NumPy runs over many small matrices at once)
UNROLLED_SIZE = 4

def cholesky(a: Any, xp: Any = None) -> Any:
    """The lower Cholesky factor of each matrix in a (..., k, k) stack (NaN if not PD)."""
    xp = array_namespace(xp)
    k = a.shape[-1]
    if k > UNROLLED_SIZE:
        if xp is np:
            return _numpy_cholesky(a)
        return xp.linalg.cholesky(a)
    if not k:
        return a
    chol: list[list[Any]] = [[xp.zeros(a.shape[:-2])] * k for _ in range(k)]
    for j in range(k):
        diagonal = a[..., j, j] - sum((xp.square(chol[j][m]) for m in range(j)), 0.0)
        with np.errstate(invalid="ignore"):  # NaN where not PD, as JAX gives
            chol[j][j] = xp.sqrt(diagonal)
        for i in range(j + 1, k):
            below = a[..., i, j] - sum((chol[i][m] * chol[j][m] for m in range(j)), 0.0)
            chol[i][j] = below / chol[j][j]
    return xp.stack([xp.stack(row, axis=-1) for row in chol], axis=-2)

def _numpy_cholesky(a: FloatArray) -> FloatArray:
    """NumPy's batched Cholesky factorisation, NaN (as JAX) for a matrix that is not PD."""
    try:
        return np.asarray(np.linalg.cholesky(a), dtype=float)
    except np.linalg.LinAlgError:
        flat = a.reshape(-1, *a.shape[-2:])
        out = np.full_like(flat, np.nan)
        for i, matrix in enumerate(flat):
            try:
                out[i] = np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                pass
        return out.reshape(a.shape)

def forward_solve(chol: Any, b: Any, xp: Any = None) -> Any:
    """x with L x = b for each lower-triangular L (..., k, k) and b (..., k, r)."""
    xp = array_namespace(xp)
    k = chol.shape[-1]
    if k > UNROLLED_SIZE:
        if xp is np:
            return _numpy_triangular_solve(chol, b, transpose=False)
        from jax.lax.linalg import triangular_solve

        return triangular_solve(chol, b, left_side=True, lower=True)
    x: list[Any] = []
    for i in range(k):
        rest = sum((chol[..., i, m, None] * x[m] for m in range(i)), 0.0)
        x.append((b[..., i, :] - rest) / chol[..., i, i, None])
    return xp.stack(x, axis=-2) if k else b

#: above this size NumPy's triangular solves go matrix by matrix through LAPACK's trtrs
#: (O(k²r)) rather than through the batched general solver (O(k³))
TRIANGULAR_SIZE = 64


def _numpy_triangular_solve(chol: FloatArray, b: FloatArray, transpose: bool) -> FloatArray:
    """x with L x = b (Lᵀ x = b when ``transpose``) for each L (..., k, k), b (..., k, r)."""
    if chol.shape[-1] <= TRIANGULAR_SIZE:
        return np.asarray(np.linalg.solve(np.swapaxes(chol, -1, -2) if transpose else chol, b),
                          dtype=float)
    from scipy.linalg import solve_triangular

    batch = np.broadcast_shapes(chol.shape[:-2], b.shape[:-2])
    chols = np.broadcast_to(chol, (*batch, *chol.shape[-2:])).reshape(-1, *chol.shape[-2:])
    rights = np.broadcast_to(b, (*batch, *b.shape[-2:])).reshape(-1, *b.shape[-2:])
    out = np.stack([solve_triangular(c, r, trans=1 if transpose else 0, lower=True,
                                     check_finite=False)
                    for c, r in zip(chols, rights, strict=True)])
    return out.reshape(*batch, *b.shape[-2:])


def backward_solve(chol: Any, b: Any, xp: Any = None) -> Any:
    """x with Lᵀ x = b for each lower-triangular L (..., k, k) and b (..., k, r)."""
    xp = array_namespace(xp)
    k = chol.shape[-1]
    if k > UNROLLED_SIZE:
        if xp is np:
            return _numpy_triangular_solve(chol, b, transpose=True)
        from jax.lax.linalg import triangular_solve

        return triangular_solve(chol, b, left_side=True, lower=True, transpose_a=True)
    x: list[Any] = [None] * k
    for i in reversed(range(k)):
        rest = sum((chol[..., m, i, None] * x[m] for m in range(i + 1, k)), 0.0)
        x[i] = (b[..., i, :] - rest) / chol[..., i, i, None]
    return xp.stack(x, axis=-2) if k else b


# ------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class _Layout:
    """Named blocks of the unconstrained vector NUTS samples, as (name, size) in order."""

    blocks: tuple[tuple[str, int], ...] = ()

    def add(self, name: str, size: int) -> _Layout:
        return _Layout((*self.blocks, (name, size)))

    @property
    def size(self) -> int:
        return sum(size for _, size in self.blocks)

    def slice(self, name: str) -> slice:
        start = 0
        for block, size in self.blocks:
            if block == name:
                return slice(start, start + size)
            start += size
        raise KeyError(name)

    def get(self, z: Any, name: str) -> Any:
        return z[..., self.slice(name)]


@dataclass(frozen=True)
class _TermShape:
    """What a group term brings to the structure of the sampled model (no data)."""

    factor: str
    names: tuple[str, ...]
    n_levels: int
    correlated: bool

    @property
    def n_effects(self) -> int:
        return len(self.names)


def correlated(term: GroupTerm | _TermShape) -> bool:
    """Whether a term has a correlation matrix to sample (correlated, two or more effects)."""
    return bool(term.correlated and term.n_effects > 1)


def term_factor(sd: Any, corr_chol: Any | None) -> Any:
    """Λ_t = diag(sd) L_t, or diag(sd) without correlations (``sd`` shaped (..., k))."""
    unit = np.eye(sd.shape[-1]) if corr_chol is None else corr_chol
    return sd[..., :, None] * unit


_LOG_2 = math.log(2.0)


def corr_cholesky(x: Any, xp: Any = None) -> tuple[Any, Any]:
    """The Cholesky factor L of a correlation matrix from unconstrained coordinates, and
    log |∂L/∂x|: NumPyro's ``CorrCholeskyTransform`` (the same L for the same x).

    With t = tanh(x) filling the strict lower triangle row by row ((1, 0), (2, 0), (2, 1),
    …), the signed stick-breaking construction gives L_ij = t_ij Π_{m<j} √(1 − t_im²) for
    j < i and L_ii = Π_{m<i} √(1 − t_im²), so each row has unit length (Lewandowski et al.
    2009). log|J| = Σ log(1 − t²) + ½ Σ_i Σ_{j ≤ i−2} Σ_{m ≤ j} log(1 − t_im²), with
    log(1 − tanh² x) = 2(log 2 − |x| − log1p(e^{−2|x|})) so that large |x| stay finite.
    ``x`` is shaped (..., D(D − 1)/2).
    """
    xp = array_namespace(xp)
    size = x.shape[-1]
    dim = round((1 + math.sqrt(1 + 8 * size)) / 2)
    t = xp.tanh(x)
    log_one_minus = 2.0 * (_LOG_2 - xp.abs(x) - xp.log1p(xp.exp(-2.0 * xp.abs(x))))
    zero, one = xp.zeros(x.shape[:-1]), xp.ones(x.shape[:-1])
    rows, log_jacobian, at = [[one] + [zero] * (dim - 1)], xp.sum(log_one_minus, axis=-1), 0
    for i in range(1, dim):
        row, left, log_left = [], one, zero  # Π_{m<j} √(1 − t_im²) and log Π (1 − t_im²)
        for j in range(i):
            row.append(t[..., at + j] * left)
            left = left * xp.sqrt(1.0 - xp.square(t[..., at + j]))
            log_left = log_left + log_one_minus[..., at + j]
            if j <= i - 2:
                log_jacobian = log_jacobian + 0.5 * log_left
        rows.append(row + [left] + [zero] * (dim - i - 1))
        at += i
    return xp.stack([xp.stack(row, axis=-1) for row in rows], axis=-2), log_jacobian


def lkj_log_density(chol: Any, eta: Any, xp: Any = None) -> Any:
    """log LKJCholesky(L | η) up to its constant: Σ_{i=2}^{D} (D − i + 2η − 2) log L_ii
    (Lewandowski et al. 2009; NumPyro's ``LKJCholesky``, whose normaliser does not depend
    on L)."""
    xp = array_namespace(xp)
    dim = chol.shape[-1]
    order = 2.0 * eta + np.array([dim - i - 2.0 for i in range(2, dim + 1)])  # η: traced too
    return xp.sum(order * xp.log(xp.diagonal(chol, axis1=-2, axis2=-1)[..., 1:]), axis=-1)


def sample_mixed(design: MixedDesign, priors: MixedPriors, config: SamplerConfig, *,
                 parametrisation: str = "auto",
                 target_accept: float | None = None) -> MixedDraws:
    """Sample a mixed model's posterior with NUTS (:func:`run_chains`).

    Parameters
    ----------
    design, priors
        The data and priors (:func:`poolwise.kinds.mixed.priors.default_priors`).
    config
        ``chains`` × (``warmup`` + ``draws``), ``seed``, ``progress``; its
        ``parametrisation`` is used when the keyword is "auto".
    parametrisation
        "marginal" (normal family only: β and b integrated out, drawn afterwards),
        "non-centred", "centred", or "auto": marginal for the normal family, non-centred
        otherwise.
    target_accept
        NUTS's step-size target; None: the parametrisation's :data:`TARGET_ACCEPT`.

    Returns
    -------
    MixedDraws
        The variables of the class docstring; ``sample_stats`` of :func:`run_chains`;
        ``info`` with ``divergences``, ``max_tree_depth_hits``, ``parametrisation``,
        ``sampled``, ``chain_method``, ``target_accept``, ``compile_seconds``,
        ``sample_seconds``.
    """
    start_jax()
    choice = resolve_parametrisation(design.family, parametrisation
                                     if parametrisation != "auto" else config.parametrisation)
    _check(design, priors)
    if choice != "marginal":
        design.needs_rows(f"the {choice} parametrisation (it evaluates every row)")
    accept = TARGET_ACCEPT[choice] if target_accept is None else float(target_accept)
    rng = generator(config.seed, Stream.INIT)
    builder = _marginal_model if choice == "marginal" else _explicit_model
    model = builder(design, priors, choice)
    start = model.start
    jitter = rng.uniform(-1.0, 1.0, size=(config.chains, start.size)) * model.jitter
    timings: dict[str, float] = {}
    z, stats = run_chains(model.potential, start + jitter, config, accept, data=model.data,
                          timings=timings)
    posterior = model.constrain(z, config.seed)
    info: dict[str, Any] = {
        "divergences": int(np.sum(stats["diverging"])),
        "max_tree_depth_hits": int(np.sum(stats["tree_depth"] >= MAX_TREE_DEPTH)),
        "parametrisation": choice,
        "sampled": model.sampled,
        "chain_method": CHAIN_METHOD,
        "target_accept": accept,
        **timings,
    }
    dims, coords = posterior_dims(design)
    return MixedDraws(posterior, {k: dims[k] for k in posterior}, coords, stats, info)


#: proposals per final draw, and at least this many, for method "importance"
PROPOSALS_PER_DRAW = 2
MIN_PROPOSALS = 4000
#: a GLMM's proposals per final draw: each integrates every group by quadrature, some
#: thousand times a normal model's cost; with the weights' ESS near the proposals'
#: (k̂ < 0) one per draw still leaves the resampled draws an ESS above half their number
GLMM_PROPOSALS_PER_DRAW = 1
#: values (8 bytes each) of the NumPy marginal's intermediate arrays per chunk of points
CHUNK_VALUES = 4_000_000


def integrate_mixed(design: MixedDesign, priors: MixedPriors, config: SamplerConfig, *,
                    n_agq: int | None = None) -> tuple[MixedDraws | None, dict[str, Any]]:
    """Method ``importance``: the few parameters x left once the group effects (and, in
    the normal family, β) are integrated out, by Pareto-smoothed importance sampling of
    log p(x | y) from a Student-t at its mode
    (:func:`poolwise.inference.importance.importance_sample`), then the rest drawn exactly
    at each resampled x. NumPy only.

    Normal family: x = (log σ, log sd, correlation coordinates), β and b integrated out
    (module docstring) and drawn from their Gaussian conditional, as the marginal
    parametrisation does after NUTS. Binomial, bernoulli and poisson with one group term of
    one or two effects: x = (β, log sd, atanh ρ), each group's effects integrated out by
    adaptive quadrature with ``n_agq`` points per dimension (None: the default) and drawn
    exactly from their conditional (:class:`poolwise.kinds.mixed.glmm.GlmmPosterior`).

    Returns the draws (None when the diagnostic fails: k̂ too large, or no mode, or a GLMM
    that adaptive quadrature does not cover) and the info: ``pareto_k``,
    ``pareto_k_limit``, ``importance_ess`` (of the weights), ``ess`` (of the chains ×
    draws resampled draws, :func:`resampled_ess`), ``proposals``, ``sampled``,
    ``importance_problem`` (None, or why the draws cannot be used).
    """
    from poolwise.inference.importance import importance_sample, pareto_k_limit, resampled_ess
    from poolwise.kinds.mixed.glmm import (
        DEFAULT_AGQ,
        GLMM_FAMILIES,
        GlmmPosterior,
        agq_obstacle,
    )

    _check(design, priors)
    target: _NumpyMarginal | GlmmPosterior
    if design.family == "normal":
        target = _NumpyMarginal(design, priors)
    elif design.family in GLMM_FAMILIES:
        obstacle = agq_obstacle(design, "importance sampling")
        if obstacle is not None:  # effects not separable by group: NUTS, as stated
            return None, {"importance_problem": obstacle}
        target = GlmmPosterior(design, priors, DEFAULT_AGQ if n_agq is None else n_agq)
    else:
        raise SpecificationError(
            f"method 'importance' is for the normal, {', '.join(GLMM_FAMILIES)} families, "
            f"not {design.family}; use method 'nuts'")
    total = config.chains * config.draws
    per_draw = PROPOSALS_PER_DRAW if design.family == "normal" else GLMM_PROPOSALS_PER_DRAW
    size = max(per_draw * total, MIN_PROPOSALS)
    rng = generator(config.seed, Stream.FIT)
    sample = importance_sample(target.log_density, target.start, size=size, rng=rng,
                               weighting=(target.weighting
                                          if isinstance(target, GlmmPosterior) else None))
    info: dict[str, Any] = {
        "pareto_k": sample.pareto_k, "pareto_k_limit": pareto_k_limit(size),
        "importance_ess": sample.ess, "proposals": size,
        "sampled": target.sampled,
        "importance_problem": sample.problem}
    if not sample.ok:
        return None, info
    info["ess"] = resampled_ess(sample.ess, total)
    drawn = target.draw(sample.resample(rng, total), config.seed)
    posterior = {name: values.reshape(config.chains, config.draws, *values.shape[1:])
                 for name, values in drawn.items()}
    dims, coords = posterior_dims(design)
    return MixedDraws(posterior, {k: dims[k] for k in posterior}, coords, {}, info), info


class _NumpyMarginal:
    """log p(x | y) of the marginal parametrisation (module docstring) and the exact draws
    of (b, β) given x, in NumPy over many points x at once (in chunks of about
    :data:`CHUNK_VALUES` intermediate values): :class:`_MarginalPotential`, NUTS's
    potential, evaluated with ``xp = numpy`` on the same data."""

    def __init__(self, design: MixedDesign, priors: MixedPriors) -> None:
        structure = _Structure.of(design, priors, explicit=False)
        self.stats = gaussian_stats(design, priors.fixed_loc)
        self.potential = _MarginalPotential(structure, self.stats.segments)
        self.data = _marginal_data(self.stats, design, priors)
        residual_sd = _fixed_effects_start(design, priors)[2]
        self.start = _variance_start(design, priors, residual_sd, structure.layout)[0]
        self.chunk = max(1, CHUNK_VALUES // marginal_values(self.stats))
        self.sampled = (f"({_variance_coordinates(design, 'log σ, ')}"
                        f"{_MIXING[structure.mixture]}) by importance sampling from a "
                        f"Student-t({DEFAULT_DF:g}) at their posterior mode, "
                        "Pareto-smoothed and resampled; β and group effects drawn exactly "
                        "given them")

    def log_density(self, z: FloatArray) -> FloatArray:
        out = np.empty(z.shape[0])
        for start in range(0, z.shape[0], self.chunk):
            with np.errstate(all="ignore"):  # far out, an sd underflows: density −inf or NaN
                out[start:start + self.chunk] = -self.potential(
                    z[start:start + self.chunk], self.data, np)
        return out

    def draw(self, z: FloatArray, seed: int) -> dict[str, FloatArray]:
        """σ, β (``b``), and per term the sds, correlations and group effects at each z,
        (b, β) drawn from their Gaussian conditional."""
        noise = generator(seed, Stream.CONDITIONAL).standard_normal(
            (z.shape[0], self.stats.wtr.shape[0]))
        return self.coefficients(z, noise)

    def coefficients(self, z: FloatArray, noise: FloatArray) -> dict[str, FloatArray]:
        """σ, β (``b``), and per term the sds, correlations and group effects at each z."""
        pieces: list[dict[str, FloatArray]] = []
        for start in range(0, z.shape[0], self.chunk):
            part = slice(start, start + self.chunk)
            with np.errstate(all="ignore"):
                pieces.append(self.potential.draw(z[part], noise[part], self.data, np))
        return {name: np.concatenate([piece[name] for piece in pieces])
                for name in pieces[0]}


def resolve_parametrisation(family: str, choice: str) -> str:
    """The parametrisation NUTS uses: ``"auto"`` is marginal for the normal family and
    non-centred otherwise; ``"marginal"`` is refused outside the normal family."""
    if choice not in PARAMETRISATIONS:
        raise SpecificationError(
            f"unknown parametrisation {choice!r}; valid: {', '.join(PARAMETRISATIONS)}")
    if family not in FAMILIES:
        raise SpecificationError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    if choice == "auto":
        return "marginal" if family == "normal" else "non-centred"
    if choice == "marginal" and family != "normal":
        raise SpecificationError(
            f"parametrisation 'marginal' integrates Gaussian effects out and needs the "
            f"normal family, not {family}; use 'non-centred'")
    return choice


def _check(design: MixedDesign, priors: MixedPriors) -> None:
    if priors.fixed_names != design.fixed_names:
        raise SpecificationError(
            f"the priors are for coefficients {priors.fixed_names}, the design has "
            f"{design.fixed_names}")
    expected = FAMILY_PARAMETERS.get(design.family)
    given = priors.family_parameter[0] if priors.family_parameter is not None else None
    if given != expected:
        raise SpecificationError(
            f"the priors of the {design.family} family have {given or 'no sigma or phi'}; "
            "sigma needs a prior in the normal family only, phi in the negbinomial only")
    factors = [term.factor for term in design.terms]
    if len(set(factors)) != len(factors):
        raise SpecificationError(f"each grouping factor may appear in one term only: {factors}")
    for term in design.terms:
        missing = [e for e in term.names if (term.factor, e) not in priors.sd]
        if missing or (correlated(term) and term.factor not in priors.cor):
            raise SpecificationError(f"the priors do not cover the term {term.label}")


@dataclass(frozen=True)
class _Structure:
    """What a mixed model's density depends on besides its data: the family, the group
    terms, the layout of z and the names of the variance priors (their parameters are data,
    :func:`_prior_data`). Equal structures share NUTS's compiled programs."""

    family: str
    terms: tuple[_TermShape, ...]
    n_fixed: int
    layout: _Layout
    #: the family's parameter and the name of its prior, ("sigma" or "phi", distribution)
    family_parameter: tuple[str, str] | None
    sd_priors: tuple[tuple[str, ...], ...]
    #: the coefficients with a Student-t prior (:attr:`MixedPriors.student`)
    student: tuple[int, ...] = ()
    #: whether β is integrated out with those priors as scale mixtures, log λ sampled
    mixture: bool = False

    @classmethod
    def of(cls, design: MixedDesign, priors: MixedPriors, explicit: bool) -> _Structure:
        """The structure of ``design`` under ``priors``; ``explicit``: β and the group
        effects are sampled too (first β, then the variance coordinates, then the effects)."""
        terms = tuple(_TermShape(t.factor, tuple(t.names), t.n_levels, bool(t.correlated))
                      for t in design.terms)
        layout = _Layout()
        if explicit:
            layout = layout.add("beta", len(design.fixed_names))
        if design.family in FAMILY_PARAMETERS:
            layout = layout.add(f"log_{FAMILY_PARAMETERS[design.family]}", 1)
        for term in terms:
            layout = layout.add(f"log_sd_{term.factor}", term.n_effects)
            if correlated(term):
                k = term.n_effects
                layout = layout.add(f"corr_{term.factor}", k * (k - 1) // 2)
        # the normal family's β is integrated out unless explicit (a GLMM's is sampled)
        mixture = bool(priors.student) and not explicit and design.family == "normal"
        if mixture:
            layout = layout.add("log_lambda", len(priors.student))
        if explicit:
            for term in terms:
                layout = layout.add(f"effects_{term.factor}", term.n_levels * term.n_effects)
        own = priors.family_parameter  # checked against the family in _check
        return cls(design.family, terms, len(design.fixed_names), layout,
                   None if own is None else (own[0], own[1].name),
                   tuple(tuple(_sd_prior_name(priors, t.factor, e) for e in t.names)
                         for t in terms), priors.student, mixture)

    def fixed_scales(self, z: Any, prior: dict[str, Any], xp: Any = None) -> tuple[Any, Any]:
        """(log prior of the scale-mixture coordinates log λ, the sds of β's Gaussian prior
        given them: s_j, or s_j/√λ_j for a Student-t prior; module docstring) at z."""
        from poolwise._ops import NUMPY_OPS, jax_ops

        xp = array_namespace(xp)
        scale = xp.asarray(prior["scale"])
        if not self.mixture:
            return 0.0, scale
        log_lambda = self.layout.get(z, "log_lambda")
        selection = np.zeros((len(self.student), self.n_fixed))
        selection[np.arange(len(self.student)), list(self.student)] = 1.0
        half_df = 0.5 * xp.asarray(prior["df"])
        mixing = Distribution("gamma", (half_df, half_df)).log_density(
            xp.exp(log_lambda), NUMPY_OPS if xp is np else jax_ops())
        return (xp.sum(mixing + log_lambda, axis=-1),
                scale * xp.exp(-0.5 * (log_lambda @ selection)))

    def variance_parts(self, z: Any, prior: dict[str, Any], xp: Any = None
                       ) -> tuple[Any, Any, list[Any], list[Any | None]]:
        """(log prior of the variance coordinates, the family's parameter σ or φ (None
        without one), sds per term, L_t per term) at z, which may carry leading batch
        dimensions (NumPy). ``prior``: the priors' parameters (:func:`_prior_data`; traced
        arrays inside a NUTS program); ``xp``: the array namespace (:func:`array_namespace`).
        """
        from poolwise._ops import NUMPY_OPS, jax_ops

        xp = array_namespace(xp)
        ops, layout = NUMPY_OPS if xp is np else jax_ops(), self.layout
        log_prior: Any = 0.0
        value = None
        if self.family_parameter is not None:
            name, distribution = self.family_parameter
            log_value = layout.get(z, f"log_{name}")[..., 0]
            value = xp.exp(log_value)
            log_prior = (Distribution(distribution, prior["family"]).log_density(value, ops)
                         + log_value)
        sds, chols = [], []
        for term, names, params, eta in zip(self.terms, self.sd_priors, prior["sd"],
                                            prior["eta"], strict=True):
            log_sd = layout.get(z, f"log_sd_{term.factor}")
            sd = xp.exp(log_sd)
            for e, (name, values) in enumerate(zip(names, params, strict=True)):
                log_prior = log_prior + (
                    icc_log_density(sd[..., e], value, values, ops) if name == ICC
                    else Distribution(name, values).log_density(sd[..., e], ops))
            log_prior = log_prior + xp.sum(log_sd, axis=-1)
            chol = None
            if correlated(term):
                chol, log_jacobian = corr_cholesky(layout.get(z, f"corr_{term.factor}"), xp)
                log_prior = log_prior + lkj_log_density(chol, eta, xp) + log_jacobian
            sds.append(sd)
            chols.append(chol)
        return log_prior, value, sds, chols


def _prior_data(design: MixedDesign, priors: MixedPriors) -> dict[str, Any]:
    """The parameters of the priors, as arrays NUTS's programs take as arguments: the
    priors' locations and scales of β (and the Student-t ones' ν), the prior of the family's
    parameter (σ or φ), each term's sd priors and LKJ shape (1 where the term has no
    correlation)."""
    own = priors.family_parameter
    return {"loc": priors.fixed_loc, "scale": priors.fixed_scale, "df": priors.student_df,
            "family": () if own is None else own[1].params,
            "sd": tuple(tuple(priors.sd_prior(t.factor, e)[1].params for e in t.names)
                        for t in design.terms),
            "eta": tuple(float(priors.cor.get(t.factor, 1.0)) for t in design.terms)}


#: what the marginal samples besides the variance parameters, with Student-t priors on β
def _variance_coordinates(design: MixedDesign, own: str) -> str:
    """What the variance parameters are sampled as, in words: the family's own (``log σ,
    ``), the log sds and, where a term's effects are correlated, the coordinates of their
    correlation's Cholesky factor."""
    cholesky = any(correlated(term) for term in design.terms)
    return f"{own}log sd" + (", correlation Cholesky coordinates" if cholesky else "")


_MIXING = {False: "", True: ", the Student-t priors' scale-mixture weights log λ"}

#: the name a sd's prior has in :class:`_Structure` when it is a prior on the ICC
ICC = "icc"


def _sd_prior_name(priors: MixedPriors, factor: str, effect: str) -> str:
    """The distribution of the sd's prior, or :data:`ICC` for a prior on the ICC."""
    name, dist = priors.sd_prior(factor, effect)
    return ICC if name.startswith("icc_") else dist.name


@dataclass(frozen=True)
class _Model:
    """What NUTS needs for one parametrisation, and how to read its draws."""

    potential: _MarginalPotential | _ExplicitPotential
    data: dict[str, Any]
    start: FloatArray
    jitter: FloatArray
    sampled: str
    #: draws of a chain constrained at once (the marginal's factorisations per draw are
    #: large for crossed factors of many levels); None: the whole chain
    block: int | None = None

    def constrain(self, z: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """The posterior's variables at each draw of z, chain by chain (one compiled
        program, kept for every fit of the same structure and shapes)."""
        import jax

        potential = self.potential
        if isinstance(potential, _MarginalPotential):
            noise = jax.random.normal(jax_key(seed, Stream.CONDITIONAL),
                                      (*z.shape[:-1], self.data["arrays"]["wtr"].shape[0]))
            return _per_chain(_vectorised(potential, (0, 0, None)), self.data, z, noise,
                              block=self.block)
        return _per_chain(_vectorised(potential, (0, None)), self.data, z)


def _variance_start(design: MixedDesign, priors: MixedPriors, residual_sd: float,
                    layout: _Layout) -> tuple[FloatArray, FloatArray]:
    """Start and jitter half-widths: σ at 0.7 × the residual sd of the fixed-effects fit,
    φ at its prior's scale, each sd at half its prior's scale (the scale rule of
    default_priors), correlations 0."""
    start, jitter = np.zeros(layout.size), np.zeros(layout.size)
    if design.family == "normal":
        start[layout.slice("log_sigma")] = math.log(0.7 * residual_sd)
    elif priors.phi is not None:
        start[layout.slice("log_phi")] = math.log(_scale_of(priors.phi))
    for term in design.terms:
        scales = [_scale_of(priors.sd[term.factor, e]) for e in term.names]
        start[layout.slice(f"log_sd_{term.factor}")] = np.log(0.5 * np.asarray(scales))
    jitter[:] = INIT_JITTER
    return start, jitter


def _scale_of(dist: Any) -> float:
    """A typical value of a positive prior: its scale, 1/rate, mean or median."""
    if dist.name in {"halfnormal", "halfcauchy"}:
        return float(dist.params[0])
    if dist.name == "halfstudentt":
        return float(dist.params[1])
    if dist.name == "exponential":
        return 1.0 / dist.params[0]
    if dist.name == "gamma":
        return dist.params[0] / dist.params[1]
    return math.exp(dist.params[0])  # lognormal: its median


@dataclass(frozen=True)
class _MarginalPotential:
    """−log p(x | y) of the normal model with β and b integrated out (module docstring),
    a function of z and the data: WᵀW, Wᵀr, rᵀr, n and the priors' parameters
    (:func:`_marginal_data`). NUTS calls it in JAX at one z; method ``importance`` in
    NumPy (``xp``) at many z at once (leading batch dimensions)."""

    structure: _Structure
    segments: tuple[Segment, ...]

    def marginal(self, z: Any, data: dict[str, Any], xp: Any = None
                 ) -> tuple[Any, GaussianMarginal, list[Any], list[Any], list[Any | None], Any]:
        """(log prior, the Gaussian marginal, Λ factors, sds, L_t, σ) at z."""
        xp = array_namespace(xp)
        log_prior, sigma, sds, chols = self.structure.variance_parts(z, data["prior"], xp)
        factors = [term_factor(sd, chol) for sd, chol in zip(sds, chols, strict=True)]
        if self.structure.n_fixed:
            log_mixing, scale = self.structure.fixed_scales(z, data["prior"], xp)
            log_prior = log_prior + log_mixing
            factors.append(term_factor(scale, None))
        stats = self.stats(data)
        return (log_prior, gaussian_marginal(stats, sigma, factors, xp), factors, sds, chols,
                sigma)

    def stats(self, data: dict[str, Any]) -> GaussianStats:
        """The statistics :func:`_marginal_data` put into ``data`` (traced arrays in JAX)."""
        return GaussianStats(data["n_obs"], **data["arrays"], rtr=data["rtr"],
                             segments=self.segments, n_flat=0)

    def __call__(self, z: Any, data: dict[str, Any], xp: Any = None) -> Any:
        log_prior, marginal, *_ = self.marginal(z, data, xp)
        return -(log_prior + marginal.log_density)

    def draw(self, z: Any, noise: Any, data: dict[str, Any], xp: Any = None
             ) -> dict[str, Any]:
        """The posterior's variables at z, δ drawn from its Gaussian conditional."""
        xp = array_namespace(xp)
        _, marginal, factors, sds, chols, sigma = self.marginal(z, data, xp)
        delta = draw_coefficients(marginal, self.stats(data), factors, noise, xp)
        batch, p = delta.shape[:-1], self.structure.n_fixed
        out = {"b": delta[..., delta.shape[-1] - p:] + data["prior"]["loc"], "sigma": sigma}
        terms = self.structure.terms
        for term, segment, sd, chol in zip(terms, self.segments[:len(terms)], sds, chols,
                                           strict=True):
            out[f"sd_{term.factor}"] = sd
            if chol is not None:
                out[f"cor_{term.factor}"] = chol @ xp.swapaxes(chol, -1, -2)
            out[f"r_{term.factor}"] = delta[..., segment.offset:segment.stop].reshape(
                *batch, segment.n_levels, segment.n_effects)
        return out


def _marginal_data(stats: GaussianStats, design: MixedDesign, priors: MixedPriors
                   ) -> dict[str, Any]:
    """The arguments of :class:`_MarginalPotential` besides z (NumPy arrays)."""
    return {"arrays": stats.arrays, "rtr": stats.rtr, "n_obs": float(stats.n_obs),
            "prior": _prior_data(design, priors)}


def _marginal_model(design: MixedDesign, priors: MixedPriors, choice: str) -> _Model:
    """The normal model with β and b integrated out (module docstring)."""
    structure = _Structure.of(design, priors, explicit=False)
    stats = gaussian_stats(design, priors.fixed_loc)
    residual_sd = _fixed_effects_start(design, priors)[2]
    start, jitter = _variance_start(design, priors, residual_sd, structure.layout)
    return _Model(_MarginalPotential(structure, stats.segments),
                  _marginal_data(stats, design, priors), start, jitter,
                  f"({_variance_coordinates(design, 'log σ, ')}"
                  f"{_MIXING[structure.mixture]}) with β and group effects integrated out, "
                  "then drawn from their Gaussian conditional",
                  block=max(1, CHUNK_VALUES // marginal_values(stats)))


@dataclass(frozen=True)
class _ExplicitPotential:
    """−log p(β, variance coordinates, ζ or b | y) (module docstring), a function of z and
    the data: y, X, the offset, each term's Z columns and level index, the binomial trials
    and the priors' parameters."""

    structure: _Structure
    centred: bool

    def parts(self, z: Any, data: dict[str, Any]
              ) -> tuple[Any, Any, list[Any], list[Any | None], list[Any], list[Any]]:
        """(log prior of the variance coordinates, σ or φ, sds, L_t, Λ_t, b_t) at z."""
        log_prior, sigma, sds, chols = self.structure.variance_parts(z, data["prior"])
        factors = [term_factor(sd, chol) for sd, chol in zip(sds, chols, strict=True)]
        effects = []  # b_t (L × k) for each term: sampled directly, or ζ_t[l] Λ_tᵀ
        for term, factor in zip(self.structure.terms, factors, strict=True):
            raw = self.structure.layout.get(z, f"effects_{term.factor}").reshape(
                term.n_levels, term.n_effects)
            effects.append(raw if self.centred else raw @ factor.T)
        return log_prior, sigma, sds, chols, factors, effects

    def log_prior_effects(self, z: Any, factors: list[Any], effects: list[Any]) -> Any:
        """Σ_t log N(ζ_t | 0, I), or Σ_t Σ_l log N(b_t[l] | 0, Λ_tΛ_tᵀ) when centred."""
        import jax.numpy as jnp
        from jax.scipy.linalg import solve_triangular

        if not self.centred:  # the ζ are the last coordinates
            n_effects = sum(t.n_levels * t.n_effects for t in self.structure.terms)
            zeta = z[self.structure.layout.size - n_effects:]
            return -0.5 * jnp.sum(jnp.square(zeta)) - 0.5 * n_effects * _LOG_2PI
        total: Any = 0.0
        for b, factor in zip(effects, factors, strict=True):
            white = solve_triangular(factor, b.T, lower=True)
            total = total - 0.5 * jnp.sum(jnp.square(white)) - b.shape[0] * (
                jnp.sum(jnp.log(jnp.diagonal(factor))) + 0.5 * b.shape[1] * _LOG_2PI)
        return total

    def __call__(self, z: Any, data: dict[str, Any]) -> Any:
        import jax.numpy as jnp

        from poolwise._ops import jax_ops

        log_prior, sigma, _, _, factors, effects = self.parts(z, data)
        beta = self.structure.layout.get(z, "beta")
        loc, scale = data["prior"]["loc"], data["prior"]["scale"]
        log_beta = -0.5 * jnp.square((beta - loc) / scale) - jnp.log(scale) - 0.5 * _LOG_2PI
        student = np.asarray(self.structure.student, dtype=int)
        if student.size:
            log_beta = log_beta.at[student].set(
                Distribution("studentt", (data["prior"]["df"], loc[student], scale[student]))
                .log_density(beta[student], jax_ops()))
        log_prior = log_prior + jnp.sum(log_beta)
        eta = data["x"] @ beta + data["offset"]
        for (zt, index), b in zip(data["columns"], effects, strict=True):
            eta = eta + jnp.sum(zt * b[index], axis=1)
        return -(log_prior + self.log_prior_effects(z, factors, effects)
                 + _log_likelihood(self.structure.family, eta, sigma, data))

    def draw(self, z: Any, data: dict[str, Any]) -> dict[str, Any]:
        """The posterior's variables at z."""
        _, sigma, sds, chols, _, effects = self.parts(z, data)
        out: dict[str, Any] = {"b": self.structure.layout.get(z, "beta")}
        own = self.structure.family_parameter
        if own is not None:  # σ or φ
            out[own[0]] = sigma
        for term, sd, chol, b in zip(self.structure.terms, sds, chols, effects, strict=True):
            out[f"sd_{term.factor}"] = sd
            if chol is not None:
                out[f"cor_{term.factor}"] = chol @ chol.T
            out[f"r_{term.factor}"] = b
        return out


def _explicit_model(design: MixedDesign, priors: MixedPriors, choice: str) -> _Model:
    """β, variance coordinates and the group effects (ζ, or b when centred) all sampled."""
    from scipy.special import gammaln

    centred = choice == "centred"
    structure = _Structure.of(design, priors, explicit=True)
    layout = structure.layout
    y = np.asarray(design.y, dtype=float)
    trials = np.ones_like(y) if design.trials is None else np.asarray(design.trials, dtype=float)
    if design.family == "poisson":
        constant = -float(np.sum(gammaln(y + 1.0)))
    elif design.family in ("binomial", "bernoulli"):  # log C(n, y)
        constant = float(np.sum(gammaln(trials + 1.0) - gammaln(y + 1.0)
                                - gammaln(trials - y + 1.0)))
    else:  # normal; the negative binomial's log pmf has its own − log y!
        constant = 0.0
    data = {"y": y, "trials": trials, "constant": constant,
            "x": np.asarray(design.x, dtype=float),
            "offset": np.zeros_like(y) if design.offset is None
            else np.asarray(design.offset, dtype=float),
            "columns": tuple((np.asarray(t.z, dtype=float), np.asarray(t.index))
                             for t in design.terms),
            "prior": _prior_data(design, priors)}
    beta, beta_se, residual_sd = _fixed_effects_start(design, priors)
    start, jitter = _variance_start(design, priors, residual_sd, layout)
    start[layout.slice("beta")] = beta
    jitter[layout.slice("beta")] = 2.0 * beta_se
    if centred:
        for term in design.terms:
            sd0 = np.exp(start[layout.slice(f"log_sd_{term.factor}")])
            jitter[layout.slice(f"effects_{term.factor}")] = INIT_JITTER * np.tile(
                sd0, term.n_levels)
    sampled = "b" if centred else "ζ ~ N(0, I) with b = Λ ζ"
    own = {"normal": "log σ, ", "negbinomial": "log φ, "}.get(design.family, "")
    return _Model(_ExplicitPotential(structure, centred), data, start, jitter,
                  f"(β, {_variance_coordinates(design, own)}, {sampled})")


@functools.lru_cache(maxsize=32)
def _vectorised(potential: _MarginalPotential | _ExplicitPotential,
                axes: tuple[int | None, ...]) -> Callable[..., dict[str, Any]]:
    """``potential.draw`` vectorised over draws (``axes`` as ``jax.vmap``'s ``in_axes``)
    and jitted, once for every equal potential (a bound method would compare its potential
    by identity, so the potential is the key)."""
    import jax

    return jax.jit(jax.vmap(potential.draw, in_axes=axes))


def _per_chain(transform: Callable[..., dict[str, Any]], data: dict[str, Any],
               *arrays: Any, block: int | None = None) -> dict[str, np.ndarray]:
    """``transform(*arrays, data)`` chain by chain, ``block`` draws at a time (None: a
    chain at once): the arrays are shaped (chains, draws, ...), the results stacked back
    the same way."""
    n_draws = arrays[0].shape[1]
    size = n_draws if block is None else block

    def chain(c: int) -> dict[str, np.ndarray]:
        pieces = [transform(*(a[c, at:at + size] for a in arrays), data)
                  for at in range(0, n_draws, size)]
        return {name: np.concatenate([np.asarray(piece[name]) for piece in pieces])
                for name in pieces[0]}

    chains = [chain(c) for c in range(arrays[0].shape[0])]
    return {name: np.stack([chain[name] for chain in chains]) for name in chains[0]}


def _log_likelihood(family: str, eta: Any, sigma: Any, data: dict[str, Any]) -> Any:
    """log p(y | η, σ), summed over the rows (JAX; module docstring); σ is the family's
    parameter (φ for the negative binomial; unused without one); ``data`` holds y, the
    binomial trials and the constant log y!-type terms (0 for the negative binomial, whose
    log pmf has its own)."""
    import jax
    import jax.numpy as jnp

    from poolwise._ops import jax_ops
    from poolwise.families import negative_binomial

    y = data["y"]
    if family == "normal":
        return jnp.sum(-0.5 * jnp.square((y - eta) / sigma)) - y.shape[0] * (
            jnp.log(sigma) + 0.5 * _LOG_2PI)
    if family == "poisson":
        return jnp.sum(y * eta - jnp.exp(eta)) + data["constant"]
    if family == "negbinomial":
        return jnp.sum(negative_binomial.log_pmf(y, eta, sigma, jax_ops()))
    trials = data["trials"]
    return jnp.sum(y * jax.nn.log_sigmoid(eta)
                   + (trials - y) * jax.nn.log_sigmoid(-eta)) + data["constant"]


def _fixed_effects_start(design: MixedDesign,
                         priors: MixedPriors) -> tuple[FloatArray, FloatArray, float]:
    """β at the mode of the model without group effects (Newton's method with step halving
    on the log posterior under the Normal priors), its standard errors, and the residual sd
    (normal family; 1 otherwise). A log link starts from the Poisson fit, also for the
    negative binomial (the same mean, other weights: a consistent start)."""
    x, y = np.asarray(design.x, dtype=float), np.asarray(design.y, dtype=float)
    offset = np.zeros_like(y) if design.offset is None else np.asarray(design.offset, float)
    trials = np.ones_like(y) if design.trials is None else np.asarray(design.trials, float)
    loc, precision = priors.fixed_loc, 1.0 / np.square(priors.fixed_scale)
    if design.cross is not None:
        return _fixed_effects_start_cross(design, priors)
    if design.family == "normal":
        noise = float(np.var(y)) or 1.0
        beta = np.linalg.solve(x.T @ x / noise + np.diag(precision),
                               x.T @ (y - offset) / noise + precision * loc)
        residual_sd = float(np.std(y - offset - x @ beta)) or 1.0
        hessian = x.T @ x / residual_sd**2 + np.diag(precision)
        return beta, np.sqrt(np.diag(np.linalg.inv(hessian))), residual_sd

    def log_posterior(beta: FloatArray) -> float:
        eta = x @ beta + offset
        if design.link == "log":
            fit = float(np.sum(y * eta - np.exp(eta)))
        else:
            fit = float(np.sum(-y * np.logaddexp(0.0, -eta)
                               - (trials - y) * np.logaddexp(0.0, eta)))
        return fit - 0.5 * float(np.sum(precision * np.square(beta - loc)))

    beta = loc.copy()
    for _ in range(100):
        eta = x @ beta + offset
        if design.link == "log":
            mean = np.exp(eta)
            weight = mean
        else:
            prob = 1.0 / (1.0 + np.exp(-eta))
            mean, weight = trials * prob, trials * prob * (1.0 - prob)
        hessian = x.T @ (weight[:, None] * x) + np.diag(precision)
        step = np.linalg.solve(hessian, x.T @ (y - mean) - precision * (beta - loc))
        current = log_posterior(beta)
        while log_posterior(beta + step) < current and np.max(np.abs(step)) > 1e-10:
            step = step / 2.0
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta, np.sqrt(np.diag(np.linalg.inv(hessian))), 1.0


def _fixed_effects_start_cross(design: MixedDesign, priors: MixedPriors
                               ) -> tuple[FloatArray, FloatArray, float]:
    """:func:`_fixed_effects_start` of the normal family from a streamed design's sums:
    var(y) = Σy²/n − ȳ², and the residuals' r = y − Xβ sums Σr = Σy − (Σx)ᵀβ and
    Σr² = Σy² − 2βᵀXᵀy + βᵀXᵀXβ."""
    cross = design.cross
    assert cross is not None
    n = float(cross.n.sum())
    xtx, xty = cross.total("xtx"), cross.total("xty")
    y_sum, yty = float(cross.total("y_sum")), float(cross.total("yty"))
    loc, precision = priors.fixed_loc, 1.0 / np.square(priors.fixed_scale)
    noise = max(yty / n - (y_sum / n) ** 2, 0.0) or 1.0
    beta = np.linalg.solve(xtx / noise + np.diag(precision), xty / noise + precision * loc)
    r_sum = y_sum - float(cross.total("x_sum") @ beta)
    r_squares = yty - 2.0 * float(beta @ xty) + float(beta @ xtx @ beta)
    residual_sd = float(np.sqrt(max(r_squares / n - (r_sum / n) ** 2, 0.0))) or 1.0
    hessian = xtx / residual_sd**2 + np.diag(precision)
    return beta, np.sqrt(np.diag(np.linalg.inv(hessian))), residual_sd


def posterior_dims(design: MixedDesign) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The dimensions of each posterior variable (after chain, draw) and their labels."""
    dims: dict[str, list[str]] = {"b": ["coef"], "sigma": [], "phi": []}
    coords: dict[str, Any] = {"coef": list(design.fixed_names)}
    for term in design.terms:
        f, effect = term.factor, f"{term.factor}_effect"
        dims[f"sd_{f}"] = [effect]
        dims[f"cor_{f}"] = [effect, f"{effect}_bis"]
        dims[f"r_{f}"] = [f, effect]
        coords[f] = list(term.levels)
        coords[effect] = list(term.names)
        if correlated(term):
            coords[f"{effect}_bis"] = list(term.names)
    return dims, coords


__all__ = [
    "CHUNK_VALUES",
    "PARAMETRISATIONS",
    "TARGET_ACCEPT",
    "GaussianMarginal",
    "GaussianStats",
    "MixedDraws",
    "Segment",
    "SparseCross",
    "draw_coefficients",
    "draw_values",
    "eliminated_segment",
    "gaussian_marginal",
    "gaussian_stats",
    "integrate_mixed",
    "marginal_memory",
    "marginal_values",
    "posterior_dims",
    "random_effects_matrix",
    "resolve_parametrisation",
    "sample_mixed",
    "term_segments",
    "times_factor",
]
