"""What every inference method takes and returns.

A method of the one-level conjugate models (``exact``, ``eb-*``, ``gibbs``, ``nuts``) is a
function ``(spec, data, config) -> Draws``: ``spec`` is anything with the four attributes
of :class:`ConjugateSpec` (the :class:`~poolwise.kinds.rates.Model` has them), so this
layer knows no model kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from poolwise._ops import NUMPY_OPS, Ops
from poolwise._threads import run_blocks
from poolwise.families.base import RateFamily
from poolwise.priors import ConjugatePrior, HyperPrior, hyperprior_log_density_uv

if TYPE_CHECKING:
    from poolwise.data.tables import GroupCounts


class ConjugateSpec(Protocol):
    """What a method needs of a one-level conjugate model."""

    @property
    def family(self) -> RateFamily: ...

    @property
    def pooling(self) -> str: ...

    #: the prior of the population parameters (partial pooling), else None
    @property
    def hyperprior(self) -> HyperPrior | None: ...

    #: the fixed conjugate prior of θ (no or complete pooling)
    @property
    def theta_prior(self) -> ConjugatePrior: ...


@dataclass(frozen=True)
class SamplerConfig:
    """How many draws to make and how."""

    draws: int = 1000
    chains: int = 4
    warmup: int = 1000
    seed: int = 0
    progress: bool = False
    #: nuts only: "auto" (the kind's default), or one of the kind's parametrisations
    parametrisation: str = "auto"
    #: nuts only: the step-size adaptation's target acceptance rate
    target_accept: float = 0.8
    #: empirical Bayes only: "kass-steffey" or "plug-in" group intervals
    #: (:mod:`poolwise.inference.eb_intervals`)
    eb_intervals: str = "kass-steffey"


@dataclass(frozen=True)
class EBEstimate:
    """Empirical-Bayes point estimates of (α, β), with standard errors where available."""

    method: str
    alpha: float
    beta: float
    #: covariance of (u, v) from the observed information, None for moments or on a boundary
    uv_covariance: NDArray[np.float64] | None = None
    on_boundary: bool = False
    log_marginal_likelihood: float | None = None
    #: whether the group intervals include the estimates' uncertainty (Kass–Steffey,
    #: :func:`poolwise.inference.eb.corrected_hyperparameters`) or are plug-in
    corrected: bool = False
    #: what the group intervals are (:func:`poolwise.inference.eb_intervals.interval_note`)
    intervals: str = ""


#: draws × groups above which the exact and empirical-Bayes methods leave θ undrawn: the
#: fit summarises each group from the hyperparameter draws
#: (:mod:`poolwise.inference.group_posterior`) and draws θ when asked, group by group
GROUP_DRAWS_LIMIT = 10_000_000


def draws_theta(config: SamplerConfig, groups: int) -> bool:
    """Whether a method that can leave θ undrawn should draw it (:data:`GROUP_DRAWS_LIMIT`)."""
    return config.chains * config.draws * groups <= GROUP_DRAWS_LIMIT


@dataclass(frozen=True)
class Draws:
    """Posterior draws, shaped (chains, draws[, groups]); ``theta`` is None where the
    method left it undrawn (:data:`GROUP_DRAWS_LIMIT`)."""

    theta: NDArray[np.float64] | None
    alpha: NDArray[np.float64] | None = None
    beta: NDArray[np.float64] | None = None
    sample_stats: dict[str, NDArray[Any]] = field(default_factory=dict)
    eb: EBEstimate | None = None
    info: dict[str, Any] = field(default_factory=dict)


Method = Callable[[ConjugateSpec, "GroupCounts", SamplerConfig], Draws]


class HyperLogPosterior:
    """log p(u, v | y) up to a constant, vectorised over (u, v) arrays of any shape.

    With ``prior=None`` it is the log marginal likelihood in (u, v) (type-II likelihood).
    The data are reduced once (:meth:`RateFamily.marginal_terms`; ``terms_per_point`` is
    what one point costs); points are processed in chunks so that points × terms stays
    below ``chunk_elements``, the chunks over the cores.
    """

    def __init__(self, family: RateFamily, prior: HyperPrior | None, y: NDArray,
                 n: NDArray, weights: NDArray, ops: Ops = NUMPY_OPS,
                 chunk_elements: int = 4_000_000) -> None:
        self.family, self.prior, self.ops = family, prior, ops
        self.terms = family.marginal_terms(y, n, weights)
        self.terms_per_point = int(self.terms.size)
        self.step = max(1, chunk_elements // self.terms_per_point)

    def __call__(self, u: NDArray, v: NDArray) -> NDArray:
        u, v = np.broadcast_arrays(np.asarray(u, dtype=float), np.asarray(v, dtype=float))
        flat_u, flat_v = u.ravel(), v.ravel()
        out = np.empty(flat_u.size)
        family, prior, ops, step = self.family, self.prior, self.ops, self.step

        def chunk(start: int) -> None:
            # far from the mass, α or β may under- or overflow; such points get density zero
            with np.errstate(all="ignore"):
                cu, cv = flat_u[start:start + step], flat_v[start:start + step]
                alpha, beta = family.from_uv(cu, cv, ops)
                total = family.log_marginal_sum(alpha, beta, self.terms, ops)
                if prior is not None:
                    total = total + hyperprior_log_density_uv(prior, family, cu, cv, ops)
                out[start:start + step] = total

        run_blocks(chunk, range(0, flat_u.size, step))
        out[~np.isfinite(out)] = -np.inf
        return out.reshape(u.shape)


