"""NUTS for mixed models, with the group effects (and β) integrated out where Gaussian.

The model (:mod:`poolwise.kinds.mixed.design`) is

    g(E[y_i]) = x_iᵀ β + Σ_t z_tiᵀ b_t[l_t(i)] + offset_i,   b_t[l] ~ N(0, Σ_t),
    Σ_t = D_t R_t D_t,  D_t = diag(sd_t),  R_t = L_t L_tᵀ ~ LKJ(η_t),
    β_j ~ N(m_j, s_j²),  sd_te ~ p(sd_te),  (normal family) σ ~ p(σ),

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
    as an sd goes to zero. Only WᵀW, Wᵀr and rᵀr enter: they are computed once, and each
    density evaluation costs O(m³) whatever n. NUTS samples only the variance parameters,
    unconstrained: log σ, log sd_te and, for a correlated term with k_t > 1, the
    k_t(k_t − 1)/2 coordinates x_t of NumPyro's ``CorrCholeskyTransform`` (L_t = T(x_t)),
    from

        log p(x | y) = log N(r | 0, V) + Σ log p(sd) + log sd (the same for σ)
                       + log LKJCholesky(L_t | η_t) + log |∂L_t/∂x_t|.

    After sampling, δ is drawn exactly from its Gaussian conditional at each draw,
    δ = Λ_Ψ L⁻ᵀ(u + ε), ε ~ N(0, I): draws of the full joint posterior, the same variables
    as the explicit parametrisations. The same algebra with β given a flat prior (its
    columns unscaled and no identity added there) is the restricted likelihood maximised
    by :func:`poolwise.kinds.mixed.reml.fit_reml`; :func:`gaussian_marginal` serves both.

``parametrisation="non-centred"`` (any family; "auto" for binomial, bernoulli, poisson)
    NUTS samples β, log σ (normal family), log sd_t, x_t and standard normal ζ_t (L_t × k_t),
    with b_t[l] = Λ_t ζ_t[l], so that ζ is independent of the sds a priori and the funnel
    between sds and group effects is gone (Betancourt and Girolami 2015).
``parametrisation="centred"``
    As non-centred, but b_t[l] is sampled directly with its N(0, Σ_t) density: prone to
    the funnel (divergences) when groups carry little information.

Likelihoods on the linear predictor η: normal N(y | η, σ²); binomial (logit link,
``trials`` n) y log σ(η) + (n − y) log σ(−η) + log C(n, y) with ``jax.nn.log_sigmoid``;
bernoulli the same with n = 1; poisson (log link, offset) y η − e^η − log y!.

References: Bates, Mächler, Bolker and Walker (2015), "Fitting linear mixed-effects models
using lme4", J. Stat. Softw. 67(1); Lewandowski, Kurowicka and Joe (2009), "Generating
random correlation matrices based on vines and extended onion method", J. Multivariate
Anal. 100:1989-2001; Betancourt and Girolami (2015), "Hamiltonian Monte Carlo for
hierarchical models", in *Current Trends in Bayesian Methodology with Applications*.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from poolwise._ops import start_jax
from poolwise._random import Stream, generator, jax_key
from poolwise.exceptions import SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.inference.nuts import CHAIN_METHOD, run_chains
from poolwise.kinds.mixed.design import FAMILIES, GroupTerm, MixedDesign
from poolwise.kinds.mixed.priors import MixedPriors
from poolwise.priors import Distribution

FloatArray = NDArray[np.float64]

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

    ``posterior``: ``b`` (chain, draw, coef); ``sigma`` (normal family); per term with factor f
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


@dataclass(frozen=True)
class GaussianStats:
    """Sufficient statistics of a linear mixed model: WᵀW, Wᵀr, rᵀr for W = [Z X].

    ``segments`` are the column blocks with a Gaussian prior, one per group term and, when
    β has its Normal prior, one for β (one level, p effects); the last ``n_flat`` columns
    (β under REML or ML) have a flat prior.
    """

    n_obs: int
    wtw: FloatArray
    wtr: FloatArray
    rtr: float
    segments: tuple[Segment, ...]
    n_flat: int


class GaussianMarginal(NamedTuple):
    """log N(r | 0, V) with the flat columns integrated out, and its pieces.

    ``log_det`` = log|V| + log|W_fᵀV⁻¹W_f| and ``quadratic`` = min over the flat
    coefficients of (r − W_f c)ᵀV⁻¹(r − W_f c); ``log_density`` =
    −½((n − n_flat) log 2π + log_det + quadratic). The Cholesky factor of A, in blocks
    (first segment, rest), is [[L₁, 0], [C, L₂]] with L₁ block diagonal (``first_chol``
    holds its k × k blocks, shaped (levels, k, k)), ``cross`` = C and ``rest_chol`` = L₂;
    ``u`` = L⁻¹Λᵀ Wᵀr/σ² in the same split (``u_first``, ``u_rest``).
    :func:`draw_coefficients` uses them for the conditional of the coefficients.
    """

    log_density: Any
    log_det: Any
    quadratic: Any
    first_chol: Any
    cross: Any
    rest_chol: Any
    u_first: Any
    u_rest: Any


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


def gaussian_stats(design: MixedDesign, fixed_loc: FloatArray | None) -> GaussianStats:
    """WᵀW, Wᵀr and rᵀr, r = y − offset − X m, for β ~ N(m, ·) or (``None``) β flat."""
    if design.cross is not None:
        return _cross_stats(design, fixed_loc)
    x = np.asarray(design.x, dtype=float)
    w = sparse.hstack([random_effects_matrix(design), sparse.csr_array(x)], format="csr")
    r = np.asarray(design.y, dtype=float)
    if design.offset is not None:
        r = r - design.offset
    segments = term_segments(design)
    q, p = (segments[-1].stop if segments else 0), x.shape[1]
    if fixed_loc is not None:
        r = r - x @ fixed_loc
        if p:
            segments = (*segments, Segment(q, 1, p))
    return GaussianStats(design.n_obs, np.asarray((w.T @ w).toarray()), np.asarray(w.T @ r),
                         float(r @ r), segments, 0 if fixed_loc is not None else p)


def _cross_stats(design: MixedDesign, fixed_loc: FloatArray | None) -> GaussianStats:
    """:func:`gaussian_stats` from a streamed design's per-level sums (one grouping factor):
    ZᵀZ = blockdiag_j Z_jᵀZ_j, ZᵀX = [Z_jᵀX_j]_j, XᵀX = Σ_j X_jᵀX_j, Wᵀy likewise, and for
    r = y − Xm: Wᵀr = Wᵀy − WᵀX m, rᵀr = yᵀy − 2 mᵀXᵀy + mᵀXᵀX m."""
    cross = design.cross
    assert cross is not None
    segments = term_segments(design)
    q, p = (segments[-1].stop if segments else 0), len(design.fixed_names)
    wtw = np.zeros((q + p, q + p))
    wty = np.zeros(q + p)
    if q:
        levels, k = segments[0].n_levels, segments[0].n_effects
        blocks = np.zeros((levels, k, levels, k))
        blocks[np.arange(levels), :, np.arange(levels), :] = cross.ztz
        wtw[:q, :q] = blocks.reshape(q, q)
        wtw[:q, q:] = cross.ztx.reshape(q, p)
        wtw[q:, :q] = wtw[:q, q:].T
        wty[:q] = cross.zty.reshape(q)
    xtx, xty, yty = cross.total("xtx"), cross.total("xty"), float(cross.total("yty"))
    wtw[q:, q:] = xtx
    wty[q:] = xty
    if fixed_loc is None:
        return GaussianStats(design.n_obs, wtw, wty, yty, segments, p)
    wtr = wty - wtw[:, q:] @ fixed_loc
    rtr = yty - 2.0 * float(fixed_loc @ xty) + float(fixed_loc @ xtx @ fixed_loc)
    if p:
        segments = (*segments, Segment(q, 1, p))
    return GaussianStats(design.n_obs, wtw, wtr, rtr, segments, 0)


def times_factor(m: Any, factors: Sequence[Any], segments: Sequence[Segment],
                 transpose: bool = False) -> Any:
    """M Λ (or M Λᵀ) for Λ = blockdiag(I_L ⊗ Λ_s for each segment, I for the rest).

    Λ acts on the last axis of M; Λ_s = ``factors[s]`` (k × k)."""
    import jax.numpy as jnp

    lead = m.shape[:-1]
    pieces = []
    for segment, factor in zip(segments, factors, strict=True):
        block = m[..., segment.offset:segment.stop].reshape(
            *lead, segment.n_levels, segment.n_effects)
        scaled = block @ (factor.T if transpose else factor)
        pieces.append(scaled.reshape(*lead, segment.n_levels * segment.n_effects))
    end = segments[-1].stop if segments else 0
    pieces.append(m[..., end:])
    return jnp.concatenate(pieces, axis=-1)


def gaussian_marginal(stats: GaussianStats, sigma: Any, factors: Sequence[Any]) -> GaussianMarginal:
    """log N(r | 0, σ²I + WΨWᵀ), Ψ = ΛΛᵀ on the segments, flat on the last columns (JAX).

    ``factors[s]`` is the lower-triangular Λ_s of segment s (for a group term the Cholesky
    factor of Σ_t, diag(sd) L_t; for β, diag(s)). Formulas in the module docstring. JAX
    should be in 64-bit mode (:func:`poolwise._ops.jax_ops` switches it on).

    The first segment's block of A = I + ΛᵀWᵀWΛ/σ² is block diagonal (each row of the data
    is in one level of its factor, so ZᵀZ has no entries between two levels): its Cholesky
    factor is one k × k factorisation per level, and only the rest (the other terms, β)
    is factorised densely, through its Schur complement, as a sparse Cholesky
    factorisation would (Bates et al. 2015, §3.3). For one grouping factor the cost per
    evaluation is O(L k³ + L k p² + p³); a dense factorisation of the whole (q + p)-square
    A is much slower with JAX on CPU.
    """
    import jax.numpy as jnp

    variance = jnp.square(sigma)
    segments = stats.segments
    split = segments[0].stop if segments else 0
    size = stats.wtw.shape[0]
    rest_segments = _shifted(segments[1:], split)
    prior = np.concatenate([np.ones(size - split - stats.n_flat), np.zeros(stats.n_flat)])
    wtr = times_factor(jnp.asarray(stats.wtr), factors, segments) / variance
    rest = times_factor(times_factor(jnp.asarray(stats.wtw[split:, split:]), factors[1:],
                                     rest_segments).T, factors[1:], rest_segments)
    rest = rest / variance + jnp.diag(prior)
    u_rest = wtr[split:]
    log_det = stats.n_obs * jnp.log(variance)
    quadratic = stats.rtr / variance
    first_chol = cross = u_first = jnp.zeros((0,))
    if split:
        levels, k = segments[0].n_levels, segments[0].n_effects
        # L₁: the Cholesky factors of the diagonal blocks Λ₁ᵀ(W₁ᵀW₁)_lΛ₁/σ² + I
        blocks = _diagonal_blocks(stats.wtw[:split, :split], levels, k)
        factor = factors[0]
        first = jnp.einsum("ji,ljm,mn->lin", factor, blocks, factor) / variance + jnp.eye(k)
        first_chol = cholesky(first)
        u_first = forward_solve(first_chol, wtr[:split].reshape(levels, k, 1))[..., 0]
        quadratic = quadratic - jnp.sum(jnp.square(u_first))
        log_det = log_det + 2.0 * jnp.sum(jnp.log(jnp.diagonal(first_chol, axis1=1, axis2=2)))
        # C = Λ_restᵀW_restᵀW₁Λ₁L₁⁻ᵀ/σ², then the Schur complement A_rest − CCᵀ
        scaled_cross = times_factor(
            times_factor(jnp.asarray(stats.wtw[:split, split:]), factors[1:], rest_segments).T,
            factors[:1], segments[:1]) / variance
        cross_t = forward_solve(first_chol, scaled_cross.reshape(size - split, levels, k)
                                .transpose(1, 2, 0))
        cross = cross_t.transpose(2, 0, 1).reshape(size - split, split)
        u_first = u_first.reshape(-1)
        rest = rest - cross @ cross.T
        u_rest = u_rest - cross @ u_first
    rest_chol = cholesky(rest)
    u_rest = forward_solve(rest_chol, u_rest[:, None])[:, 0]
    quadratic = quadratic - jnp.sum(jnp.square(u_rest))
    log_det = log_det + 2.0 * jnp.sum(jnp.log(jnp.diagonal(rest_chol)))
    log_density = -0.5 * ((stats.n_obs - stats.n_flat) * _LOG_2PI + log_det + quadratic)
    return GaussianMarginal(log_density, log_det, quadratic, first_chol, cross, rest_chol,
                            u_first, u_rest)


def draw_coefficients(marginal: GaussianMarginal, factors: Sequence[Any],
                      segments: Sequence[Segment], noise: Any) -> Any:
    """δ = Λ L⁻ᵀ(u + ε): a draw of the coefficients given y (ε = 0: their mean).

    With L = [[L₁, 0], [C, L₂]]: γ₂ = L₂⁻ᵀ(u₂ + ε₂), γ₁ = L₁⁻ᵀ(u₁ + ε₁ − Cᵀγ₂)."""
    import jax.numpy as jnp

    split = marginal.u_first.shape[0]
    noise = jnp.broadcast_to(noise, (split + marginal.u_rest.shape[0],))
    gamma = backward_solve(marginal.rest_chol, (marginal.u_rest + noise[split:])[:, None])[:, 0]
    if split:
        levels, k = marginal.first_chol.shape[:2]
        first = marginal.u_first + noise[:split] - marginal.cross.T @ gamma
        gamma_first = backward_solve(marginal.first_chol, first.reshape(levels, k, 1))
        gamma = jnp.concatenate([gamma_first.reshape(-1), gamma])
    return times_factor(gamma, factors, segments, transpose=True)


#: matrices up to this size are factorised and solved with unrolled elementwise operations,
#: which XLA compiles several times faster than its Cholesky and triangular solvers
UNROLLED_SIZE = 4


def cholesky(a: Any) -> Any:
    """The lower Cholesky factor of each matrix in a (..., k, k) stack (NaN if not PD)."""
    import jax.numpy as jnp

    k = a.shape[-1]
    if k > UNROLLED_SIZE:
        return jnp.linalg.cholesky(a)
    if not k:
        return a
    chol: list[list[Any]] = [[jnp.zeros(a.shape[:-2])] * k for _ in range(k)]
    for j in range(k):
        diagonal = a[..., j, j] - sum((jnp.square(chol[j][m]) for m in range(j)), 0.0)
        chol[j][j] = jnp.sqrt(diagonal)
        for i in range(j + 1, k):
            below = a[..., i, j] - sum((chol[i][m] * chol[j][m] for m in range(j)), 0.0)
            chol[i][j] = below / chol[j][j]
    return jnp.stack([jnp.stack(row, axis=-1) for row in chol], axis=-2)


def forward_solve(chol: Any, b: Any) -> Any:
    """x with L x = b for each lower-triangular L (..., k, k) and b (..., k, r)."""
    import jax.numpy as jnp
    from jax.lax.linalg import triangular_solve

    k = chol.shape[-1]
    if k > UNROLLED_SIZE:
        return triangular_solve(chol, b, left_side=True, lower=True)
    x: list[Any] = []
    for i in range(k):
        rest = sum((chol[..., i, m, None] * x[m] for m in range(i)), 0.0)
        x.append((b[..., i, :] - rest) / chol[..., i, i, None])
    return jnp.stack(x, axis=-2) if k else b


def backward_solve(chol: Any, b: Any) -> Any:
    """x with Lᵀ x = b for each lower-triangular L (..., k, k) and b (..., k, r)."""
    import jax.numpy as jnp
    from jax.lax.linalg import triangular_solve

    k = chol.shape[-1]
    if k > UNROLLED_SIZE:
        return triangular_solve(chol, b, left_side=True, lower=True, transpose_a=True)
    x: list[Any] = [None] * k
    for i in reversed(range(k)):
        rest = sum((chol[..., m, i, None] * x[m] for m in range(i + 1, k)), 0.0)
        x[i] = (b[..., i, :] - rest) / chol[..., i, i, None]
    return jnp.stack(x, axis=-2) if k else b


def _diagonal_blocks(matrix: FloatArray, levels: int, k: int) -> FloatArray:
    """The k × k diagonal blocks of a (levels·k)-square matrix, shaped (levels, k, k)."""
    blocks = matrix.reshape(levels, k, levels, k)
    return blocks[np.arange(levels), :, np.arange(levels), :]


def _shifted(segments: Sequence[Segment], by: int) -> tuple[Segment, ...]:
    """The segments with their offsets moved back by ``by`` columns."""
    return tuple(Segment(s.offset - by, s.n_levels, s.n_effects) for s in segments)


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
    """Λ_t = diag(sd) L_t, or diag(sd) without correlations."""
    import jax.numpy as jnp

    return jnp.diag(sd) if corr_chol is None else sd[:, None] * corr_chol


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
    if (priors.sigma is None) != (design.family != "normal"):
        raise SpecificationError("sigma needs a prior in the normal family only")
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
    sigma_prior: str | None
    sd_priors: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, design: MixedDesign, priors: MixedPriors, explicit: bool) -> _Structure:
        """The structure of ``design`` under ``priors``; ``explicit``: β and the group
        effects are sampled too (first β, then the variance coordinates, then the effects)."""
        terms = tuple(_TermShape(t.factor, tuple(t.names), t.n_levels, bool(t.correlated))
                      for t in design.terms)
        layout = _Layout()
        if explicit:
            layout = layout.add("beta", len(design.fixed_names))
        if design.family == "normal":
            layout = layout.add("log_sigma", 1)
        for term in terms:
            layout = layout.add(f"log_sd_{term.factor}", term.n_effects)
            if correlated(term):
                k = term.n_effects
                layout = layout.add(f"corr_{term.factor}", k * (k - 1) // 2)
        if explicit:
            for term in terms:
                layout = layout.add(f"effects_{term.factor}", term.n_levels * term.n_effects)
        return cls(design.family, terms, len(design.fixed_names), layout,
                   None if priors.sigma is None else priors.sigma.name,
                   tuple(tuple(priors.sd[t.factor, e].name for e in t.names) for t in terms))

    def variance_parts(self, z: Any, prior: dict[str, Any]
                       ) -> tuple[Any, Any, list[Any], list[Any | None]]:
        """(log prior of the variance coordinates, σ, sds per term, L_t per term) at z."""
        import jax.numpy as jnp
        from numpyro.distributions import LKJCholesky
        from numpyro.distributions.transforms import CorrCholeskyTransform

        from poolwise._ops import jax_ops

        ops, layout = jax_ops(), self.layout
        log_prior: Any = 0.0
        sigma = None
        if self.sigma_prior is not None:
            log_sigma = layout.get(z, "log_sigma")[0]
            sigma = jnp.exp(log_sigma)
            log_prior = (Distribution(self.sigma_prior, prior["sigma"]).log_density(sigma, ops)
                         + log_sigma)
        sds, chols = [], []
        for term, names, params, eta in zip(self.terms, self.sd_priors, prior["sd"],
                                            prior["eta"], strict=True):
            log_sd = layout.get(z, f"log_sd_{term.factor}")
            sd = jnp.exp(log_sd)
            for e, (name, values) in enumerate(zip(names, params, strict=True)):
                log_prior = log_prior + Distribution(name, values).log_density(sd[e], ops)
            log_prior = log_prior + jnp.sum(log_sd)
            chol = None
            if correlated(term):
                x = layout.get(z, f"corr_{term.factor}")
                transform = CorrCholeskyTransform()
                chol = transform(x)
                lkj = LKJCholesky(term.n_effects, eta)
                log_prior = (log_prior + lkj.log_prob(chol)
                             + transform.log_abs_det_jacobian(x, chol))
            sds.append(sd)
            chols.append(chol)
        return log_prior, sigma, sds, chols


def _prior_data(design: MixedDesign, priors: MixedPriors) -> dict[str, Any]:
    """The parameters of the priors, as arrays NUTS's programs take as arguments: the
    Normal priors' means and sds of β, σ's prior, each term's sd priors and LKJ shape (1
    where the term has no correlation)."""
    return {"loc": priors.fixed_loc, "scale": priors.fixed_scale,
            "sigma": () if priors.sigma is None else priors.sigma.params,
            "sd": tuple(tuple(priors.sd[t.factor, e].params for e in t.names)
                        for t in design.terms),
            "eta": tuple(float(priors.cor.get(t.factor, 1.0)) for t in design.terms)}


@dataclass(frozen=True)
class _Model:
    """What NUTS needs for one parametrisation, and how to read its draws."""

    potential: _MarginalPotential | _ExplicitPotential
    data: dict[str, Any]
    start: FloatArray
    jitter: FloatArray
    sampled: str

    def constrain(self, z: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """The posterior's variables at each draw of z, chain by chain (one compiled
        program, kept for every fit of the same structure and shapes)."""
        import jax

        potential = self.potential
        if isinstance(potential, _MarginalPotential):
            noise = jax.random.normal(jax_key(seed, Stream.CONDITIONAL),
                                      (*z.shape[:-1], self.data["wtw"].shape[0]))
            return _per_chain(_vectorised(potential, (0, 0, None)), self.data, z, noise)
        return _per_chain(_vectorised(potential, (0, None)), self.data, z)


def _variance_start(design: MixedDesign, priors: MixedPriors, residual_sd: float,
                    layout: _Layout) -> tuple[FloatArray, FloatArray]:
    """Start and jitter half-widths: σ at 0.7 × the residual sd of the fixed-effects fit,
    each sd at half its prior's scale (the scale rule of default_priors), correlations 0."""
    start, jitter = np.zeros(layout.size), np.zeros(layout.size)
    if design.family == "normal":
        start[layout.slice("log_sigma")] = math.log(0.7 * residual_sd)
    for term in design.terms:
        scales = [_scale_of(priors.sd[term.factor, e]) for e in term.names]
        start[layout.slice(f"log_sd_{term.factor}")] = np.log(0.5 * np.asarray(scales))
    jitter[:] = INIT_JITTER
    return start, jitter


def _scale_of(dist: Any) -> float:
    """A typical value of a positive prior: its scale, 1/rate, mean or median."""
    if dist.name in {"halfnormal", "halfcauchy"}:
        return float(dist.params[0])
    if dist.name == "exponential":
        return 1.0 / dist.params[0]
    if dist.name == "gamma":
        return dist.params[0] / dist.params[1]
    return math.exp(dist.params[0])  # lognormal: its median


@dataclass(frozen=True)
class _MarginalPotential:
    """−log p(x | y) of the normal model with β and b integrated out (module docstring),
    a function of z and the data: WᵀW, Wᵀr, rᵀr, n and the priors' parameters."""

    structure: _Structure
    segments: tuple[Segment, ...]

    def marginal(self, z: Any, data: dict[str, Any]
                 ) -> tuple[Any, GaussianMarginal, list[Any], list[Any], list[Any | None], Any]:
        """(log prior, the Gaussian marginal, Λ factors, sds, L_t, σ) at z."""
        import jax.numpy as jnp

        log_prior, sigma, sds, chols = self.structure.variance_parts(z, data["prior"])
        factors = [term_factor(sd, chol) for sd, chol in zip(sds, chols, strict=True)]
        if self.structure.n_fixed:
            factors.append(jnp.diag(data["prior"]["scale"]))
        stats = GaussianStats(data["n_obs"], data["wtw"], data["wtr"], data["rtr"],
                              self.segments, 0)
        return log_prior, gaussian_marginal(stats, sigma, factors), factors, sds, chols, sigma

    def __call__(self, z: Any, data: dict[str, Any]) -> Any:
        log_prior, marginal, *_ = self.marginal(z, data)
        return -(log_prior + marginal.log_density)

    def draw(self, z: Any, noise: Any, data: dict[str, Any]) -> dict[str, Any]:
        """The posterior's variables at z, δ drawn from its Gaussian conditional."""
        _, marginal, factors, sds, chols, sigma = self.marginal(z, data)
        delta = draw_coefficients(marginal, factors, self.segments, noise)
        p = self.structure.n_fixed
        out = {"b": delta[delta.shape[0] - p:] + data["prior"]["loc"], "sigma": sigma}
        terms = self.structure.terms
        for term, segment, sd, chol in zip(terms, self.segments[:len(terms)], sds, chols,
                                           strict=True):
            out[f"sd_{term.factor}"] = sd
            if chol is not None:
                out[f"cor_{term.factor}"] = chol @ chol.T
            out[f"r_{term.factor}"] = delta[segment.offset:segment.stop].reshape(
                segment.n_levels, segment.n_effects)
        return out


def _marginal_model(design: MixedDesign, priors: MixedPriors, choice: str) -> _Model:
    """The normal model with β and b integrated out (module docstring)."""
    structure = _Structure.of(design, priors, explicit=False)
    stats = gaussian_stats(design, priors.fixed_loc)
    data = {"wtw": stats.wtw, "wtr": stats.wtr, "rtr": stats.rtr, "n_obs": float(stats.n_obs),
            "prior": _prior_data(design, priors)}
    residual_sd = _fixed_effects_start(design, priors)[2]
    start, jitter = _variance_start(design, priors, residual_sd, structure.layout)
    return _Model(_MarginalPotential(structure, stats.segments), data, start, jitter,
                  "(log σ, log sd, correlation Cholesky coordinates) with β and group "
                  "effects integrated out, then drawn from their Gaussian conditional")


@dataclass(frozen=True)
class _ExplicitPotential:
    """−log p(β, variance coordinates, ζ or b | y) (module docstring), a function of z and
    the data: y, X, the offset, each term's Z columns and level index, the binomial trials
    and the priors' parameters."""

    structure: _Structure
    centred: bool

    def parts(self, z: Any, data: dict[str, Any]
              ) -> tuple[Any, Any, list[Any], list[Any | None], list[Any], list[Any]]:
        """(log prior of the variance coordinates, σ, sds, L_t, Λ_t, b_t) at z."""
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

        log_prior, sigma, _, _, factors, effects = self.parts(z, data)
        beta = self.structure.layout.get(z, "beta")
        loc, scale = data["prior"]["loc"], data["prior"]["scale"]
        log_prior = log_prior + jnp.sum(-0.5 * jnp.square((beta - loc) / scale)
                                        - jnp.log(scale) - 0.5 * _LOG_2PI)
        eta = data["x"] @ beta + data["offset"]
        for (zt, index), b in zip(data["columns"], effects, strict=True):
            eta = eta + jnp.sum(zt * b[index], axis=1)
        return -(log_prior + self.log_prior_effects(z, factors, effects)
                 + _log_likelihood(self.structure.family, eta, sigma, data))

    def draw(self, z: Any, data: dict[str, Any]) -> dict[str, Any]:
        """The posterior's variables at z."""
        _, sigma, sds, chols, _, effects = self.parts(z, data)
        out: dict[str, Any] = {"b": self.structure.layout.get(z, "beta")}
        if sigma is not None:
            out["sigma"] = sigma
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
    elif design.family == "normal":
        constant = 0.0
    else:  # log C(n, y)
        constant = float(np.sum(gammaln(trials + 1.0) - gammaln(y + 1.0)
                                - gammaln(trials - y + 1.0)))
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
    return _Model(_ExplicitPotential(structure, centred), data, start, jitter,
                  f"(β, {'log σ, ' if design.family == 'normal' else ''}log sd, "
                  f"correlation Cholesky coordinates, {sampled})")


@functools.lru_cache(maxsize=32)
def _vectorised(potential: _MarginalPotential | _ExplicitPotential,
                axes: tuple[int | None, ...]) -> Callable[..., dict[str, Any]]:
    """``potential.draw`` vectorised over draws (``axes`` as ``jax.vmap``'s ``in_axes``)
    and jitted, once for every equal potential (a bound method would compare its potential
    by identity, so the potential is the key)."""
    import jax

    return jax.jit(jax.vmap(potential.draw, in_axes=axes))


def _per_chain(transform: Callable[..., dict[str, Any]], data: dict[str, Any],
               *arrays: Any) -> dict[str, np.ndarray]:
    """``transform(*arrays, data)`` chain by chain: the arrays are shaped
    (chains, draws, ...), the results stacked back the same way."""
    chains = [transform(*(a[c] for a in arrays), data) for c in range(arrays[0].shape[0])]
    return {name: np.stack([np.asarray(chain[name]) for chain in chains]) for name in chains[0]}


def _log_likelihood(family: str, eta: Any, sigma: Any, data: dict[str, Any]) -> Any:
    """log p(y | η, σ), summed over the rows (JAX; module docstring); ``data`` holds y, the
    binomial trials and the constant log y!-type terms."""
    import jax
    import jax.numpy as jnp

    y = data["y"]
    if family == "normal":
        return jnp.sum(-0.5 * jnp.square((y - eta) / sigma)) - y.shape[0] * (
            jnp.log(sigma) + 0.5 * _LOG_2PI)
    if family == "poisson":
        return jnp.sum(y * eta - jnp.exp(eta)) + data["constant"]
    trials = data["trials"]
    return jnp.sum(y * jax.nn.log_sigmoid(eta)
                   + (trials - y) * jax.nn.log_sigmoid(-eta)) + data["constant"]


def _fixed_effects_start(design: MixedDesign,
                         priors: MixedPriors) -> tuple[FloatArray, FloatArray, float]:
    """β at the mode of the model without group effects (Newton's method with step halving
    on the log posterior under the Normal priors), its standard errors, and the residual sd
    (normal family; 1 otherwise)."""
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
        if design.family == "poisson":
            fit = float(np.sum(y * eta - np.exp(eta)))
        else:
            fit = float(np.sum(-y * np.logaddexp(0.0, -eta)
                               - (trials - y) * np.logaddexp(0.0, eta)))
        return fit - 0.5 * float(np.sum(precision * np.square(beta - loc)))

    beta = loc.copy()
    for _ in range(100):
        eta = x @ beta + offset
        if design.family == "poisson":
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
    dims: dict[str, list[str]] = {"b": ["coef"], "sigma": []}
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
    "PARAMETRISATIONS",
    "TARGET_ACCEPT",
    "GaussianMarginal",
    "GaussianStats",
    "MixedDraws",
    "Segment",
    "draw_coefficients",
    "gaussian_marginal",
    "gaussian_stats",
    "posterior_dims",
    "random_effects_matrix",
    "resolve_parametrisation",
    "sample_mixed",
    "term_segments",
    "times_factor",
]
