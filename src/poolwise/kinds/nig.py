"""Normal data with unknown mean and variance in each group: the Normal-Inverse-Gamma model.

For groups j = 1..J of raw observations (the lecture's "hierarchical prior for normal
data", applied group by group)::

    y_ij | θ_j, σ_j²  ~  N(θ_j, σ_j²),        i = 1..n_j
    θ_j | σ_j²        ~  N(μ, σ_j² τ²)
    σ_j²              ~  IG(α, β)

Pooling levels:

``none``
    Every group has its own (θ_j, σ_j²) under the same fixed prior (μ, τ, α, β). The
    posterior is Normal-Inverse-Gamma group by group; ``exact`` draws it by the lecture's
    sequential algorithm (σ_j² from its inverse-gamma marginal, then θ_j given σ_j²).
``complete``
    One (θ, σ²) for all observations, drawn the same way.
``partial``
    The groups share a population: (μ, τ, α, β) are not fixed but learnt from all
    groups. ``eb-ml`` estimates them by type-II maximum likelihood, maximising
    Σ_j log p(y_j | μ, τ, α, β) (closed form: a product of a normal and a Student-t
    kernel, see :func:`~poolwise.families.normal_inverse_gamma.log_marginal_likelihood`),
    then draws every group exactly given the estimates.

The maths lives in :mod:`poolwise.families.normal_inverse_gamma`; this module turns a table
into group statistics, picks a prior and makes a :class:`NIGFit`.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._version import __version__
from poolwise.data.tables import _require_column, finite_column, group_labels
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.normal_inverse_gamma import (
    NIGPrior,
    NormalStats,
    log_marginal_likelihood,
    posterior,
    sample_posterior,
    theta_marginal,
)
from poolwise.results.summary import posterior_summary
from poolwise.inference.base import SamplerConfig
from poolwise.vocabulary import POOLING_PHRASES, POOLINGS

#: methods for each pooling level
NIG_METHODS = {"none": ("exact",), "complete": ("exact",), "partial": ("eb-ml",)}
#: the default prior's τ: θ_j may lie 10 within-group sds from the overall mean a priori
DEFAULT_TAU = 10.0
#: bound on |log τ| and |log α| for type-II ML: beyond it the estimate is on the boundary
LOG_BOUND = 12.0
#: the default prior's α: 2α = 2 prior degrees of freedom for σ²
DEFAULT_ALPHA = 1.0

_PRIOR_ITEM = re.compile(r"^\s*(mu|tau|alpha|beta)\s*=\s*([^,]+?)\s*$")


@dataclass(frozen=True)
class NIGData:
    """Each group's sufficient statistics (n_j, ȳ_j, Σ_i (y_ij − ȳ_j)²) and its label."""

    labels: NDArray[np.str_]
    stats: NormalStats
    group_name: str
    notes: tuple[str, ...] = ()

    @property
    def n_groups(self) -> int:
        return int(self.labels.size)

    def pooled(self) -> NormalStats:
        """All observations as one group: n = Σ n_j, ȳ the grand mean, and the total sum
        of squares Σ_j [SS_j + n_j (ȳ_j − ȳ)²]."""
        n, mean, ss = self.stats.n, self.stats.mean, self.stats.sum_sq_dev
        total = float(np.sum(n))
        grand = float(np.sum(n * mean)) / total
        return NormalStats(total, grand, float(np.sum(ss + n * (mean - grand) ** 2)))


def nig_data(table: pd.DataFrame, *, y: str, group: str | None = None) -> NIGData:
    """Group statistics from one row per observation (all rows one group without ``group``)."""
    if table.empty:
        raise DataError("the table has no rows")
    values = finite_column(_require_column(table, y, "observation (y)"), "observation (y)")
    if group is None:
        labels, group_name = np.full(values.size, "all"), "all rows"
    else:
        labels, group_name = group_labels(table, group), str(group)
    frame = pd.DataFrame({"label": labels, "y": values})
    grouped = frame.groupby("label", sort=False)["y"]
    stats = grouped.agg(["count", "mean"])
    centred = values - grouped.transform("mean").to_numpy()
    ss = pd.Series(centred**2).groupby(frame["label"], sort=False).sum()
    notes = (f"{values.size} observations in {len(stats)} groups by {group_name!r}",)
    return NIGData(stats.index.to_numpy().astype(str),
                   NormalStats(stats["count"].to_numpy(dtype=float),
                               stats["mean"].to_numpy(dtype=float),
                               ss.reindex(stats.index).to_numpy(dtype=float)),
                   group_name, notes)


def parse_nig_prior(text: str) -> NIGPrior:
    """``"mu=0, tau=1, alpha=2, beta=1"`` (all four, any order) as an :class:`NIGPrior`."""
    values: dict[str, float] = {}
    for item in text.split(","):
        match = _PRIOR_ITEM.match(item)
        if match is None:
            raise SpecificationError(
                f"cannot read {item.strip()!r} in the NIG prior; write "
                "'mu=0, tau=1, alpha=2, beta=1' (numbers for all four)")
        name, raw = match.groups()
        try:
            values[name] = float(raw)
        except ValueError:
            raise SpecificationError(f"NIG prior {name} = {raw!r} is not a number") from None
    missing = [k for k in ("mu", "tau", "alpha", "beta") if k not in values]
    if missing:
        raise SpecificationError(
            f"the NIG prior needs mu, tau, alpha and beta; missing: {', '.join(missing)}")
    return NIGPrior(**values)


def default_prior(data: NIGData) -> NIGPrior:
    """A weakly informative prior scaled to the data, always printed with the fit.

    μ = the grand mean; τ = 10, so sd(θ | σ²) = 10σ; α = 1 (two prior degrees of
    freedom) and β = the pooled within-group variance s_p² (the grand variance when no
    group has two observations), so that the prior mode of σ² is s_p²/2 and its median
    about 1.44 s_p². The data thus set only the location and the scale of the prior.
    """
    pooled = data.pooled()
    n, ss = data.stats.n, data.stats.sum_sq_dev
    dof = float(np.sum(n - 1))
    variance = float(np.sum(ss)) / dof if dof > 0 else float(pooled.sum_sq_dev) / max(
        float(pooled.n) - 1, 1.0)
    if not variance > 0:
        raise DataError("every observation is equal, so the data set no scale for the prior; "
                        "give one: --prior 'mu=…, tau=…, alpha=…, beta=…'")
    return NIGPrior(float(pooled.mean), DEFAULT_TAU, DEFAULT_ALPHA, variance)


class NIGModel:
    """Normal observations with unknown mean and variance per group under the NIG prior.

    Parameters
    ----------
    pooling
        ``"none"`` (default), ``"complete"`` or ``"partial"`` (see the module docstring).
    prior
        No or complete pooling: ``"mu=…, tau=…, alpha=…, beta=…"`` or an
        :class:`NIGPrior`; default :func:`default_prior`. Partial pooling estimates them.

    Examples
    --------
    >>> table = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 2, "y": [1.0, 2.0, 3.0, 5.0, 7.0]})
    >>> fit = NIGModel(prior="mu=0, tau=1, alpha=2, beta=1").fit(table, y="y", group="g")
    >>> fit.theta_marginal("a").mean().round(3)
    np.float64(1.5)
    """

    def __init__(self, *, pooling: str = "none", prior: str | NIGPrior | None = None) -> None:
        if pooling not in POOLINGS:
            raise SpecificationError(
                f"unknown pooling {pooling!r}; valid pooling levels: {', '.join(POOLINGS)}")
        if pooling == "partial" and prior is not None:
            raise SpecificationError(
                "partial pooling estimates μ, τ, α and β from the groups (eb-ml); "
                "give a fixed prior only with pooling none or complete")
        self.pooling = pooling
        self.prior = parse_nig_prior(prior) if isinstance(prior, str) else prior

    def __repr__(self) -> str:
        return f"NIGModel(pooling={self.pooling!r}, prior={self.prior!r})"

    def fit(self, data: pd.DataFrame, *, y: str, group: str | None = None,
            method: str | None = None, draws: int = 1000, chains: int = 4,
            seed: int = 0) -> NIGFit:
        """Independent posterior draws, ``chains`` × ``draws`` of them, for every group."""
        valid = NIG_METHODS[self.pooling]
        method = method or valid[0]
        if method not in valid:
            raise SpecificationError(
                f"the NIG model with {POOLING_PHRASES[self.pooling]} is fitted by "
                f"{' or '.join(valid)}, not {method!r}")
        for name, value in (("draws", draws), ("chains", chains)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SpecificationError(f"{name} must be an integer ≥ 1, got {value!r}")
        groups = nig_data(data, y=y, group=group)
        if self.pooling == "partial" and groups.n_groups < 2:
            raise DataError(f"partial pooling needs at least 2 groups, got {groups.n_groups}")
        start = time.perf_counter()
        estimate: dict[str, float] | None = None
        if self.pooling == "partial":
            estimate = type2_ml(groups.stats)
            prior = NIGPrior(**{k: estimate[k] for k in ("mu", "tau", "alpha", "beta")})
        else:
            prior = self.prior or default_prior(groups)
        stats = groups.pooled() if self.pooling == "complete" else groups.stats
        theta, sigma2 = sample_posterior(posterior(prior, stats), size=chains * draws,
                                         seed=seed)
        shape = (chains, draws, *theta.shape[1:])
        config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=0, seed=int(seed))
        info = {"seconds": time.perf_counter() - start}
        dims = [] if self.pooling == "complete" else ["group"]
        tree = _arviz.make_datatree(
            {"posterior": {"theta": theta.reshape(shape), "sigma2": sigma2.reshape(shape)},
             "observed_data": {"n": groups.stats.n, "mean": groups.stats.mean,
                               "sum_sq_dev": groups.stats.sum_sq_dev}},
            dims={"theta": dims, "sigma2": dims, "n": ["group"], "mean": ["group"],
                  "sum_sq_dev": ["group"]},
            coords={"group": groups.labels},
            attrs={"poolwise_version": __version__, "family": "normal-inverse-gamma",
                   "pooling": self.pooling, "method": method, "prior": repr(prior),
                   "seed": seed, "draws": draws, "chains": chains},
        )
        return NIGFit(self, groups, method, config, tree, prior, estimate, info)


def type2_ml(stats: NormalStats) -> dict[str, float]:
    """(μ, τ, α, β) maximising Σ_j log p(y_j | μ, τ, α, β), with the maximum.

    Optimised by L-BFGS in (μ, log τ, log α, log β) from a moments start. Groups with one
    observation inform μ and τ but σ_j² only through their spread about μ.
    """
    from scipy import optimize

    n, mean, ss = stats.n, stats.mean, stats.sum_sq_dev
    dof = float(np.sum(n - 1))
    within = float(np.sum(ss)) / dof if dof > 0 else float(np.var(mean)) or 1.0
    between = max(float(np.var(mean)) - within * float(np.mean(1 / n)), 0.05 * within)
    start = np.array([float(np.average(mean, weights=n)), 0.5 * math.log(between / within),
                      math.log(2.0), math.log(within)])

    def negative(z: NDArray) -> float:
        try:
            prior = NIGPrior(float(z[0]), *(math.exp(float(v)) for v in z[1:]))
        except (SpecificationError, OverflowError):
            return math.inf
        return -float(np.sum(log_marginal_likelihood(prior, stats)))

    bounds = [(None, None), (-LOG_BOUND, LOG_BOUND), (-LOG_BOUND, LOG_BOUND),
              (None, None)]
    best = optimize.minimize(negative, start, method="L-BFGS-B", bounds=bounds)
    if not np.isfinite(best.fun):
        raise DataError("type-II maximum likelihood failed for these groups")
    # a flat likelihood can stop L-BFGS short of α → ∞ (equal variances); try the bound
    # with the same prior mean of σ² (β/α)
    at_bound = best.x + np.array([0.0, 0.0, 1.0, 1.0]) * (LOG_BOUND - best.x[2])
    if negative(at_bound) <= best.fun + 1e-6:
        best.x, best.fun = at_bound, negative(at_bound)
    mu, log_tau, log_alpha, log_beta = best.x
    if log_tau <= -LOG_BOUND + 0.1:
        warnings.warn("eb-ml estimates τ → 0: the group means vary no more than their "
                      "noise, so every θ_j is pooled completely to μ", ConvergenceWarning,
                      stacklevel=3)
    if log_alpha >= LOG_BOUND - 0.1:
        warnings.warn("eb-ml estimates α → ∞: the groups' variances look equal, so every "
                      "σ_j² is pooled completely (to β/α)", ConvergenceWarning, stacklevel=3)
    return {"mu": float(mu), "tau": math.exp(log_tau), "alpha": math.exp(log_alpha),
            "beta": math.exp(log_beta), "log_marginal_likelihood": -float(best.fun)}


@dataclass(frozen=True)
class NIGFit:
    """Exact posterior draws of (θ_j, σ_j²) and the prior they came from."""

    model: NIGModel
    data: NIGData
    method: str
    config: SamplerConfig
    tree: xr.DataTree
    prior: NIGPrior
    #: type-II ML estimates of (μ, τ, α, β) under partial pooling, else None
    estimate: dict[str, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    is_mcmc = False

    def describe_prior(self) -> str:
        p = self.prior
        text = f"θ_j | σ_j² ~ N({p.mu:.4g}, σ_j² · {p.tau:.4g}²), σ_j² ~ IG({p.alpha:.4g}, " \
               f"{p.beta:.4g})"
        if self.estimate is not None:
            return text + " with (μ, τ, α, β) estimated by eb-ml; no hyperprior is used"
        return text.replace("_j", "") if self.model.pooling == "complete" else text

    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """θ and σ² for each group (one pair under complete pooling); with partial pooling
        the estimated (μ, τ, α, β) first, as fixed values."""
        table = posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics)
        if self.estimate is None:
            return table
        rows = pd.DataFrame([{"param": k, "group": None, "mean": self.estimate[k]}
                             for k in ("mu", "tau", "alpha", "beta")], columns=table.columns)
        return pd.concat([rows, table], ignore_index=True)

    def _index(self, group: str) -> int:
        labels = [str(label) for label in self.data.labels]
        if str(group) not in labels:
            raise SpecificationError(
                f"no group {group!r} in the fit; groups: {', '.join(labels[:8])}"
                + (" …" if len(labels) > 8 else ""))
        return labels.index(str(group))

    def theta_marginal(self, group: str | None = None) -> Any:
        """The closed-form p(θ_j | y): a Student t (see ``theta_marginal``)."""
        if self.model.pooling == "complete":
            return theta_marginal(posterior(self.prior, self.data.pooled()))
        if group is None:
            raise SpecificationError("name the group: theta_marginal('label')")
        index = self._index(group)
        stats = self.data.stats
        one = NormalStats(stats.n[index], stats.mean[index], stats.sum_sq_dev[index])
        return theta_marginal(posterior(self.prior, one))

    def predict_group(self, group: str, *, seed: int | None = None) -> NDArray[np.float64]:
        """Draws of one new observation y* ~ N(θ_j, σ_j²) from an existing group."""
        theta, sigma2 = self.posterior["theta"], self.posterior["sigma2"]
        if self.model.pooling != "complete":
            index = self._index(group)
            theta, sigma2 = theta.isel(group=index), sigma2.isel(group=index)
        rng = np.random.default_rng(self.config.seed + 2 if seed is None else seed)
        t, s2 = np.ravel(theta.values), np.ravel(sigma2.values)
        return np.asarray(t + np.sqrt(s2) * rng.standard_normal(t.size))

    def predict_new_group(self, *, seed: int | None = None
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """θ_new, then y* ~ N(θ_new, σ_new²), for a group not in the fit: (θ, y*) draws.

        (θ_new, σ_new²) come from the prior (estimated under partial pooling); under
        complete pooling the new group shares the common (θ, σ²).
        """
        rng = np.random.default_rng(self.config.seed + 1 if seed is None else seed)
        if self.model.pooling == "complete":
            theta = np.ravel(self.posterior["theta"].values)
            sigma2 = np.ravel(self.posterior["sigma2"].values)
        else:
            p, size = self.prior, self.config.chains * self.config.draws
            sigma2 = p.beta / rng.standard_gamma(p.alpha, size=size)
            theta = p.mu + p.tau * np.sqrt(sigma2) * rng.standard_normal(size)
        return theta, theta + np.sqrt(sigma2) * rng.standard_normal(theta.size)

    def save(self, path: str) -> None:
        """Write the draws to NetCDF (an ArviZ DataTree)."""
        _arviz.save(self.tree, path)


__all__ = ["NIGData", "NIGFit", "NIGModel", "default_prior", "nig_data", "parse_nig_prior",
           "type2_ml"]
