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
``partial`` (the default)
    The groups share a population: (μ, τ, α, β) are not fixed but learnt from all
    groups. ``eb-ml`` estimates them by type-II maximum likelihood, maximising
    Σ_j log p(y_j | μ, τ, α, β) (closed form: a product of a normal and a Student-t
    kernel, see :func:`~poolwise.families.normal_inverse_gamma.log_marginal_likelihood`),
    then draws every group exactly given hyperparameters drawn from their normalised
    likelihood (the Kass–Steffey correction, :mod:`poolwise.inference.eb_intervals`), or
    given the estimates (``eb_intervals="plug-in"``).

The maths lives in :mod:`poolwise.families.normal_inverse_gamma`; this module turns a table
into group statistics, picks the prior, and makes an :class:`NIGFit` that answers
predictions (:mod:`poolwise.results.prediction`).

>>> table = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 2, "y": [1.0, 2.0, 3.0, 5.0, 7.0]})
>>> model = NIGModel(pooling="none", prior="mu=0, tau=1, alpha=2, beta=1")
>>> model.fit(table, y="y", group="g").theta_marginal("a").mean().round(3)
np.float64(1.5)
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Unpack

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy import stats as scipy_stats

from poolwise import _arviz
from poolwise._random import Stream, generator
from poolwise.data.tables import _require_column, finite_column, group_labels
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.families.normal_inverse_gamma import (
    NIGPosterior,
    NIGPrior,
    NormalStats,
    draw_parameters,
    log_marginal_at,
    log_marginal_likelihood,
    posterior,
    posterior_parameters,
    sample_posterior,
    theta_marginal,
)
from poolwise.inference.eb_intervals import (
    PLUG_IN,
    hyperparameter_draws,
    interval_note,
    too_many_groups,
    uncorrected_warning,
)
from poolwise.kinds.base import BaseModel, Settings, group_answers
from poolwise.resources import MemoryEstimate
from poolwise.results.checks import CheckData
from poolwise.results.fit import Answer, Fit, finish_fit
from poolwise.results.graph import SYMBOLS, GraphNode, ModelGraph, Plate, number, range_label
from poolwise.results.prediction import (
    ExistingGroup,
    NewGroup,
    Population,
    Prediction,
    check_size,
    find_label,
    prediction_dataset,
)
from poolwise.results.storage import FitRecord, record_attrs
from poolwise.results.summary import SUMMARY_COLUMNS, posterior_summary
from poolwise.vocabulary import canonical_family, unknown

__all__ = ["NIGData", "NIGFit", "NIGModel", "default_prior", "nig_data", "parse_nig_prior",
           "type2_ml"]

#: the default prior's τ: θ_j may lie 10 within-group sds from the overall mean a priori
DEFAULT_TAU = 10.0
#: bound on |log τ| and |log α| for type-II ML: beyond it the estimate is on the boundary
LOG_BOUND = 12.0
#: the default prior's α: 2α = 2 prior degrees of freedom for σ²
DEFAULT_ALPHA = 1.0
#: the names of the prior's constants, in the order the summary lists them
CONSTANTS = ("mu", "tau", "alpha", "beta")

_PRIOR_ITEM = re.compile(r"^\s*([^\s=,]+)\s*=\s*([^,]+?)\s*$")


# ----------------------------------------------------------------------------- the data
@dataclass(frozen=True)
class NIGData:
    """Each group's sufficient statistics (n_j, ȳ_j, Σ_i (y_ij − ȳ_j)²) and its label."""

    labels: NDArray[np.str_]
    stats: NormalStats
    group_name: str
    notes: tuple[str, ...] = ()
    #: the name of the observations' column
    y_name: str = "y"

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

    def group(self, index: int) -> NormalStats:
        """The statistics of group ``index`` alone."""
        s = self.stats
        return NormalStats(s.n[index], s.mean[index], s.sum_sq_dev[index])


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
    counts = grouped.agg(["count", "mean"])
    with np.errstate(over="ignore", invalid="ignore"):
        squares = (values - grouped.transform("mean").to_numpy()) ** 2
    if not np.all(np.isfinite(squares)):
        i = int(np.flatnonzero(~np.isfinite(squares))[0])
        raise DataError(f"row {i + 1}: observation (y) column {y!r} has {values[i]:g}, too "
                        "large for its group's sum of squares (it overflows); rescale the "
                        "column, e.g. divide it by a power of 10")
    ss = pd.Series(squares).groupby(frame["label"], sort=False).sum()
    notes = (f"{values.size} observations in {len(counts)} groups by {group_name!r}",)
    return NIGData(counts.index.to_numpy().astype(str),
                   NormalStats(counts["count"].to_numpy(dtype=float),
                               counts["mean"].to_numpy(dtype=float),
                               ss.reindex(counts.index).to_numpy(dtype=float)),
                   group_name, notes, str(y))


# ---------------------------------------------------------------------------- the prior
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
        if name not in CONSTANTS:
            raise unknown("constant", name, CONSTANTS, "in the NIG prior")
        try:
            values[name] = float(raw)
        except ValueError:
            raise SpecificationError(f"NIG prior {name} = {raw!r} is not a number") from None
    missing = [k for k in CONSTANTS if k not in values]
    if missing:
        raise SpecificationError(
            f"the NIG prior needs mu, tau, alpha and beta; missing: {', '.join(missing)}")
    return NIGPrior(**values)


def prior_text(prior: NIGPrior) -> str:
    """The prior as the string :func:`parse_nig_prior` reads back exactly."""
    return ", ".join(f"{name}={getattr(prior, name)!r}" for name in CONSTANTS)


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


def type2_ml(stats: NormalStats, *, stacklevel: int = 1) -> dict[str, float]:
    """(μ, τ, α, β) maximising Σ_j log p(y_j | μ, τ, α, β), with the maximum.

    Optimised by L-BFGS in (μ, log τ, log α, log β) from a moments start. Groups with one
    observation inform μ and τ but σ_j² only through their spread about μ. A warning on a
    boundary (τ → 0 or α → ∞) points ``stacklevel`` frames above the caller.
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
    # a step may reach where the likelihood is 0 (−log = inf): the finite differences there
    # are nan, which L-BFGS-B steps back from
    with np.errstate(invalid="ignore", over="ignore"):
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
                      stacklevel=stacklevel + 1)
    if log_alpha >= LOG_BOUND - 0.1:
        warnings.warn("eb-ml estimates α → ∞: the groups' variances look equal, so every "
                      "σ_j² is pooled completely (to β/α)", ConvergenceWarning,
                      stacklevel=stacklevel + 1)
    return {"mu": float(mu), "tau": math.exp(log_tau), "alpha": math.exp(log_alpha),
            "beta": math.exp(log_beta), "log_marginal_likelihood": -float(best.fun)}


# ---------------------------------------------------------------------------- the model
class NIGModel(BaseModel):
    """Normal observations with unknown mean and variance per group under the NIG prior.

    Parameters
    ----------
    family
        ``"nig"`` (alias ``"normal-inverse-gamma"``) or None: the kind is its family.
    pooling
        ``"partial"`` (default), ``"none"`` or ``"complete"`` (see the module docstring).
    prior
        No or complete pooling: ``"mu=…, tau=…, alpha=…, beta=…"`` or an
        :class:`NIGPrior`; default :func:`default_prior`. Partial pooling estimates them
        (empirical Bayes), so it takes none.
    method
        ``"exact"`` (no or complete pooling) or ``"eb-ml"`` (partial pooling); None picks it.
    draws, chains, warmup, seed, progress
        Independent draws are ``chains`` × ``draws``; ``warmup`` and ``progress`` are
        accepted for the common interface but unused (no Markov chain); ``seed`` seeds
        every random stream (:mod:`poolwise._random`).
    """

    kind = "nig"
    METHODS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "none": ("exact",), "complete": ("exact",), "partial": ("eb-ml",)}
    #: exact draws and type-II ML: no NUTS settings
    TAKES = ("pooling", "method", "draws", "chains", "warmup", "seed", "progress",
             "eb_intervals")

    def __init__(self, *, family: str | None = "nig", prior: str | NIGPrior | None = None,
                 **settings: Unpack[Settings]) -> None:
        if family is not None and canonical_family(family) != "nig":
            raise SpecificationError(
                f"NIGModel is the normal-inverse-gamma family ('nig'), not {family!r}; the "
                "other per-group families are fitted by poolwise.Model")
        self._settle({"family": "nig"}, settings)
        self.prior: NIGPrior | None
        if prior is None:
            self.prior = None
            return
        if self.pooling == "partial":
            raise SpecificationError(
                "partial pooling estimates μ, τ, α and β from the groups (eb-ml); "
                "give a fixed prior only with pooling none or complete")
        if isinstance(prior, str):
            self.prior = parse_nig_prior(prior)
        elif isinstance(prior, NIGPrior):
            self.prior = prior
        else:
            raise SpecificationError(
                f"the NIG prior is a string 'mu=…, tau=…, alpha=…, beta=…' or an NIGPrior, "
                f"not {type(prior).__name__}")
        self._spec["prior"] = prior_text(self.prior)

    # ------------------------------------------------------------------ describing
    def title(self, data: NIGData) -> str:
        groups = f"{data.n_groups} group{'s' if data.n_groups != 1 else ''}"
        return (f"normal-inverse-gamma, {self.pooling_phrase}, method {self.method}, "
                f"{groups} by {data.group_name!r}")

    def _fixed_prior(self, data: NIGData | None) -> NIGPrior | None:
        """The fixed prior for ``data`` (the given one, or the default scaled to them);
        None under partial pooling (estimated when fitting) or without data to scale to."""
        if self.pooling == "partial":
            return None
        if self.prior is not None:
            return self.prior
        return default_prior(data) if data is not None else None

    def describe_prior(self, data: NIGData | None = None) -> str:
        """The prior in words and symbols, with its values where they are known (a given
        prior, or the default scaled to ``data``)."""
        return _describe(self, self._fixed_prior(data))

    def graph(self, data: NIGData | None = None) -> ModelGraph:
        """The graphical model (:func:`_graph`); the constants carry their values where
        they are known (a given prior, or the default scaled to ``data``)."""
        return _graph(self, self._fixed_prior(data), data)

    def equations(self, data: NIGData | None = None) -> list[str]:
        r"""The model as LaTeX lines (no ``$`` delimiters), with the prior's values where
        they are known.

        >>> NIGModel(pooling="none", prior="mu=0, tau=1, alpha=2, beta=1").equations()[2]
        '\\sigma_j^2 \\sim \\mathrm{IG}(2, 1)'
        """
        return _equations(self, self._fixed_prior(data), data)

    # ------------------------------------------------------------------ data
    def prepare(self, data: pd.DataFrame | NIGData, *,
                y: str | None = None, group: str | None = None) -> NIGData:
        """Validate one row per observation and reduce it to group statistics: the column
        of observations ``y`` and the grouping column ``group`` (all rows one group
        without it)."""
        if isinstance(data, NIGData):
            groups = data
        elif isinstance(data, pd.DataFrame):
            if y is None:
                raise SpecificationError("name the column of observations: y='...'")
            groups = nig_data(data, y=y, group=group)
        else:
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        if self.pooling == "partial" and groups.n_groups < 2:
            raise DataError(
                f"partial pooling needs at least 2 groups, got {groups.n_groups}; use "
                "--pooling complete or none for a single group")
        stats = groups.stats
        spread = np.any(stats.sum_sq_dev) or np.any(stats.mean != stats.mean[0])
        if self.pooling == "partial" and not np.any(stats.sum_sq_dev) and (
                np.any(stats.n > 1) or not spread):
            raise DataError(
                "every group's observations are all equal, so type-II maximum likelihood "
                "(partial pooling) has no finite estimate (σ_j² → 0); give a fixed prior "
                "instead: --pooling none or complete with --prior 'mu=…, tau=…, alpha=…, "
                "beta=…'")
        return groups

    def memory_estimate(self, data: NIGData) -> MemoryEstimate:
        """θ_j and σ_j² at every draw (one pair under complete pooling) and the three
        statistics per group that the predictive check replicates."""
        stored = 2 if self.pooling == "complete" else 2 * data.n_groups
        return self._draws_estimate(stored=stored, observed=3 * data.n_groups)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | NIGData, *,
            y: str | None = None, group: str | None = None) -> NIGFit:
        """Independent posterior draws, ``chains`` × ``draws`` of them, for every group:
        σ_j² ~ IG(α*, β*), then θ_j | σ_j² ~ N(m*, σ_j² v*) (lecture 001), from the fixed
        prior or, under partial pooling, from the type-II ML estimate of it."""
        groups = self.prepare(data, y=y, group=group)
        self.check_memory(groups)
        start = time.perf_counter()
        estimate: dict[str, float] | None = None
        if self.pooling == "partial":
            estimate = type2_ml(groups.stats, stacklevel=2)
            prior = NIGPrior(**{k: estimate[k] for k in CONSTANTS})
        else:
            fixed = self._fixed_prior(groups)
            assert fixed is not None  # no or complete pooling, with data: a fixed prior
            prior = fixed
        stats = groups.pooled() if self.pooling == "complete" else groups.stats
        config = self.config
        size = config.chains * config.draws
        info: dict[str, Any] = {}
        hyper = None
        if estimate is not None:
            hyper, info["eb_intervals"] = _hyperparameter_draws(
                self.eb_intervals, stats, prior, size,
                generator(config.seed, Stream.HYPERPARAMETERS))
        if hyper is None:
            theta, sigma2 = sample_posterior(posterior(prior, stats), size=size,
                                             seed=generator(config.seed, Stream.FIT))
        else:  # one draw of every group given each draw of the hyperparameters
            m, v, a, b = posterior_parameters(hyper[:, :1], hyper[:, 1:2], hyper[:, 2:3],
                                              hyper[:, 3:], stats)
            theta, sigma2 = draw_parameters(generator(config.seed, Stream.FIT), m, v, a, b,
                                            (size, groups.n_groups))
        shape = (config.chains, config.draws, *theta.shape[1:])
        info["seconds"] = time.perf_counter() - start
        dims = [] if self.pooling == "complete" else ["group"]
        attrs = record_attrs(
            self.kind, self.spec(),
            {"group_name": groups.group_name, "notes": list(groups.notes),
             "y_name": groups.y_name},
            {"prior": asdict(prior), "estimate": estimate, "info": info})
        tree = _arviz.make_datatree(
            {"posterior": {"theta": theta.reshape(shape), "sigma2": sigma2.reshape(shape)},
             "observed_data": {"n": groups.stats.n, "mean": groups.stats.mean,
                               "sum_sq_dev": groups.stats.sum_sq_dev}},
            dims={"theta": dims, "sigma2": dims, "n": ["group"], "mean": ["group"],
                  "sum_sq_dev": ["group"]},
            coords={"group": groups.labels}, attrs=attrs)
        fit = NIGFit(self, groups, tree, info, prior=prior, estimate=estimate)
        finish_fit(fit, stacklevel=2)
        return fit

    # ------------------------------------------------------------------ checks
    def check_data(self, data: NIGData, replicated: Mapping[str, NDArray]
                   ) -> list[CheckData]:
        """Each group's mean ȳ_j and standard deviation s_j = √(SS_j/(n_j − 1)), observed
        and replicated (groups with one observation have no s_j and are left out of it)."""
        n, ss = data.stats.n, data.stats.sum_sq_dev
        checks = [CheckData("mean", data.stats.mean, np.asarray(replicated["mean"]),
                            data.labels, label=f"group mean of {data.y_name}")]
        several = n > 1
        if np.any(several):
            dof = n[several] - 1
            checks.append(CheckData(
                "sd", np.sqrt(ss[several] / dof),
                np.sqrt(np.asarray(replicated["sum_sq_dev"])[:, several] / dof),
                data.labels[several], label=f"group sd of {data.y_name}"))
        return checks

    def _prior_draws(self, data: NIGData, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """σ² ~ IG(α, β), θ | σ² ~ N(μ, σ² τ²) from the fixed prior (one pair per group, or
        one shared pair under complete pooling), then each group's replicated statistics
        (:func:`_replicate_stats`)."""
        prior = self._fixed_prior(data)
        if prior is None:
            raise SpecificationError(
                "eb-ml estimates the prior from the data, so there is no prior to draw "
                "from; use pooling none or complete with --prior 'mu=…, tau=…, alpha=…, "
                "beta=…' (or the default prior scaled to the data)")
        width = data.n_groups if self.pooling == "none" else 1
        sigma2 = prior.beta / rng.standard_gamma(prior.alpha, size=(size, width))
        theta = prior.mu + prior.tau * np.sqrt(sigma2) * rng.standard_normal((size, width))
        mean, ss = _replicate_stats(rng, theta, sigma2, data.stats.n)
        dims = ["group"] if self.pooling == "none" else []
        if self.pooling != "none":
            theta, sigma2 = theta[:, 0], sigma2[:, 0]
        return ({"theta": (theta, dims), "sigma2": (sigma2, dims)},
                {"mean": (mean, ["group"]), "sum_sq_dev": (ss, ["group"])},
                {"group": data.labels})

    def _calibration_model(self, data: NIGData) -> NIGModel:
        """The default prior, scaled to the user's data, fixed (simulated data would
        rescale it)."""
        fixed = self._fixed_prior(data)
        return self if self.prior is not None or fixed is None else self.replace(prior=fixed)

    def _with_simulated(self, data: NIGData, simulated: Mapping[str, NDArray]) -> NIGData:
        """The groups with simulated means and sums of squares, their sizes kept."""
        return replace(data, stats=NormalStats(data.stats.n, simulated["mean"],
                                               simulated["sum_sq_dev"]))

    def _fitted_draws(self, fit: Fit, rng: np.random.Generator, size: int
                      ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                 dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """(θ_j, σ_j²) from the NIG prior at the type-II ML estimates, then each group's
        statistics: the prior draws of unpooled groups under that prior."""
        estimate = getattr(fit, "estimate", None)
        if estimate is None:
            raise SpecificationError("only partial pooling (eb-ml) has estimates to simulate "
                                     "from")
        prior = NIGPrior(**{k: estimate[k] for k in CONSTANTS})
        return self.replace(pooling="none", method="exact", prior=prior)._prior_draws(
            fit.data, rng, size)


def _unsigned(points: NDArray) -> NDArray:
    """(μ, τ, α, β) at each row of points (μ, τ, s, m) with a sign on the scales τ and
    s = 1/√α that vanish at complete pooling (of θ_j and of σ_j²): α = 1/s² and β = α e^m
    (e^m = β/α, the scale of σ_j²)."""
    with np.errstate(divide="ignore", over="ignore"):
        alpha = 1.0 / points[:, 2] ** 2
        return np.column_stack([points[:, 0], np.abs(points[:, 1]), alpha,
                                alpha * np.exp(points[:, 3])])


def _hyperparameter_draws(setting: str, stats: NormalStats, prior: NIGPrior, size: int,
                          rng: np.random.Generator) -> tuple[NDArray | None, str]:
    """Partial pooling's (μ, τ, α, β) drawn from the type-II ML estimates' sampling
    distribution (:func:`~poolwise.inference.eb_intervals.hyperparameter_draws`, τ and
    1/√α folded), or None (plug-in: asked for, more groups than the correction needs, or
    none can be made, which warns); and the intervals' label."""
    skipped = too_many_groups(int(np.size(stats.n)))
    if setting == PLUG_IN or skipped is not None:
        return None, interval_note(setting, skipped=skipped)

    def log_lik(points: NDArray) -> NDArray:
        with np.errstate(all="ignore"):
            at = _unsigned(points)
            out = np.sum(log_marginal_at(at[:, :1], at[:, 1:2], at[:, 2:3], at[:, 3:], stats),
                         axis=1)
        return np.where(np.isfinite(out), out, -np.inf)

    point = np.array([prior.mu, prior.tau, prior.alpha ** -0.5,
                      math.log(prior.beta / prior.alpha)])
    correction = hyperparameter_draws(log_lik, point, size, rng, folded=(1, 2))
    if correction.draws is None:
        assert correction.problem is not None
        warnings.warn(uncorrected_warning(correction.problem, "exact with --pooling none"),
                      ConvergenceWarning, stacklevel=4)
        return None, interval_note(setting, problem=correction.problem,
                                   full_bayes="exact with --pooling none")
    return _unsigned(correction.draws), interval_note(setting, method=str(correction.method))


def _replicate_stats(rng: np.random.Generator, theta: NDArray, sigma2: NDArray,
                     n: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Replicated sufficient statistics of groups of sizes ``n`` given (θ_j, σ_j²) draws
    shaped (..., J) or (..., 1): ȳ_j ~ N(θ_j, σ_j²/n_j) and, independently (Cochran),
    SS_j ~ σ_j² χ²(n_j − 1), which is 0 when n_j = 1."""
    shape = np.broadcast_shapes(np.shape(theta), np.shape(n))
    mean = theta + np.sqrt(sigma2 / n) * rng.standard_normal(shape)
    # χ²(k) = 2 Gamma(k/2, 1); Gamma(0) is 0
    ss = sigma2 * 2.0 * rng.standard_gamma(np.broadcast_to((n - 1) / 2.0, shape))
    return np.asarray(mean, dtype=float), np.asarray(ss, dtype=float)


# -------------------------------------------------------------- describing, graph, LaTeX
def _describe(model: NIGModel, prior: NIGPrior | None) -> str:
    """The prior in words: with its values when ``prior`` is given (under partial pooling
    the eb-ml estimates), else in symbols."""
    j = "" if model.pooling == "complete" else "_j"
    if prior is None:
        text = f"θ{j} | σ{j}² ~ N(μ, σ{j}² τ²), σ{j}² ~ IG(α, β)"
    else:
        text = (f"θ{j} | σ{j}² ~ N({prior.mu:.4g}, σ{j}² · {prior.tau:.4g}²), "
                f"σ{j}² ~ IG({prior.alpha:.4g}, {prior.beta:.4g})")
    if model.pooling == "partial":
        return (text + f" with (μ, τ, α, β) estimated by {model.method} (type-II maximum "
                "likelihood); no hyperprior is used")
    if model.prior is not None:
        return text
    if prior is not None:
        return text + "  (the default prior, scaled to the data)"
    return text + ("  (the default prior, scaled to the data: μ = the grand mean, τ = 10, "
                   "α = 1, β = the pooled within-group variance)")


def _constant(name: str, prior: NIGPrior | None, estimated: bool) -> str:
    """A constant's LaTeX symbol (with a hat when estimated) and its value if known."""
    symbol = rf"\hat{{{SYMBOLS[name]}}}" if estimated else SYMBOLS[name]
    return symbol if prior is None else f"{symbol} = {number(getattr(prior, name))}"


def _graph(model: NIGModel, prior: NIGPrior | None, data: NIGData | None) -> ModelGraph:
    """The graphical model: the constants μ, τ, α, β as fixed dots (their values when
    known; under partial pooling the eb-ml estimates, with hats), σ_j² ← (α, β),
    θ_j ← (μ, τ, σ_j²), and the observations y_ij ← (θ_j, σ_j²) in a plate over i inside
    the plate over groups j. Under complete pooling, or for one group, there is one (θ, σ²)
    and the plate over all observations i = 1..N."""
    estimated = model.pooling == "partial"
    plates: tuple[Plate, ...]
    constants = [GraphNode(name, f"${_constant(name, prior, estimated)}$", "fixed")
                 for name in ("alpha", "beta", "mu", "tau")]
    per_group = model.pooling != "complete" and (data is None or data.n_groups > 1)
    if per_group:
        sigma2 = GraphNode("sigma2", r"$\sigma^2_{j}$", "latent")
        theta = GraphNode("theta", r"$\theta_{j}$", "latent")
        y = GraphNode("y", r"$y_{ij}$", "observed")
        extent = "J" if data is None else str(data.n_groups)
        plates = (Plate("groups", range_label("j", extent), ("sigma2", "theta")),
                  Plate("observations", range_label("i", "n_j"), ("y",), inside="groups"))
    else:
        sigma2 = GraphNode("sigma2", r"$\sigma^2$", "latent")
        theta = GraphNode("theta", r"$\theta$", "latent")
        y = GraphNode("y", r"$y_{i}$", "observed")
        extent = "n" if data is None else f"{float(np.sum(data.stats.n)):g}"
        plates = (Plate("observations", range_label("i", extent), ("y",)),)
    edges = (("alpha", "sigma2"), ("beta", "sigma2"), ("mu", "theta"), ("tau", "theta"),
             ("sigma2", "theta"), ("sigma2", "y"), ("theta", "y"))
    return ModelGraph((*constants, sigma2, theta, y), edges, plates,
                      f"normal-inverse-gamma, {model.pooling_phrase}")


def _equations(model: NIGModel, prior: NIGPrior | None, data: NIGData | None) -> list[str]:
    """The model as LaTeX lines (lecture 001) with the prior's values where known; under
    partial pooling the constants are the eb-ml estimates μ̂, τ̂, α̂, β̂ (their values on
    a last line when known)."""
    estimated = model.pooling == "partial"
    if estimated:
        value = {name: rf"\hat{{{SYMBOLS[name]}}}" for name in CONSTANTS}
    elif prior is None:
        value = dict(SYMBOLS)
    else:
        value = {name: number(getattr(prior, name)) for name in CONSTANTS}
    if model.pooling == "complete" or (data is not None and data.n_groups == 1):
        extent = "N" if data is None else f"{float(np.sum(data.stats.n)):g}"
        theta, sigma2 = r"\theta", r"\sigma^2"
        first = rf"y_i \sim \mathrm{{N}}(\theta, \sigma^2), \quad i = 1, \ldots, {extent}"
    else:
        extent = "J" if data is None else str(data.n_groups)
        theta, sigma2 = r"\theta_j", r"\sigma_j^2"
        first = (rf"y_{{ij}} \sim \mathrm{{N}}(\theta_j, \sigma_j^2), \quad i = 1, \ldots, "
                 rf"n_j, \quad j = 1, \ldots, {extent}")
    lines = [
        first,
        rf"{theta} \mid {sigma2} \sim \mathrm{{N}}({value['mu']}, "
        rf"{sigma2} \cdot {value['tau']}^2)",
        rf"{sigma2} \sim \mathrm{{IG}}({value['alpha']}, {value['beta']})",
    ]
    if estimated and prior is not None:
        lines.append(r", \quad ".join(_constant(name, prior, True) for name in CONSTANTS))
    return lines


# ------------------------------------------------------------------------------ the fit
@dataclass(frozen=True, repr=False)  # Fit.__repr__: one line, not the tree
class NIGFit(Fit):
    """Exact posterior draws of (θ_j, σ_j²) — one (θ, σ²) under complete pooling — and the
    prior they came from: the fixed one, or the type-II ML estimate (``estimate``, with the
    maximised log marginal likelihood) under partial pooling."""

    model: NIGModel
    data: NIGData
    prior: NIGPrior = field(kw_only=True)
    estimate: dict[str, float] | None = None

    # ------------------------------------------------------------------ describing
    def describe_prior(self) -> str:
        """The prior this fit used, with its values (estimated under partial pooling)."""
        return _describe(self.model, self.prior)

    def graph(self) -> ModelGraph:
        return _graph(self.model, self.prior, self.data)

    def equations(self) -> list[str]:
        return _equations(self.model, self.prior, self.data)

    # ------------------------------------------------------------------ summaries
    def _summary(self, ci_prob: float, diagnostics: bool) -> pd.DataFrame:
        """θ and σ² for each group (one pair under complete pooling); with partial pooling
        the estimated (μ, τ, α, β) first, as fixed values (sd and interval NaN)."""
        table = posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics)
        if self.estimate is None:
            return table
        # the means are the empirical-Bayes estimates E[θ_j | y, η̂] = m*_j and
        # E[σ_j² | y, η̂] = β*_j/(α*_j − 1) (none where α*_j ≤ 1); the sds and intervals
        # are those of the draws (with the estimates' uncertainty: interval_notes)
        point = posterior(self.prior, self.data.stats)
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma2 = np.where(point.alpha > 1, point.beta / (point.alpha - 1), np.nan)
        for name, values in (("theta", point.m), ("sigma2", sigma2)):
            rows = (table["param"] == name).to_numpy()
            table.loc[rows, "mean"] = values
            table.loc[rows, "mcse_mean"] = np.where(np.isfinite(values), 0.0, np.nan)
        rows = pd.DataFrame({"param": list(CONSTANTS), "group": [None] * len(CONSTANTS),
                             "mean": [float(self.estimate[k]) for k in CONSTANTS]})
        return pd.concat([rows.reindex(columns=SUMMARY_COLUMNS), table], ignore_index=True)

    def _index(self, group: str) -> int:
        return find_label(self.data.labels, group, "group")

    def interval_notes(self, ci_prob: float = 0.95) -> dict[str, str]:
        """Partial pooling (eb-ml): what θ_j's and σ_j²'s intervals are
        (:func:`~poolwise.inference.eb_intervals.interval_note`); μ, τ, α and β have none."""
        if self.estimate is None:
            return {}
        return {"theta, sigma2": str(self.info.get("eb_intervals", "")),
                ", ".join(CONSTANTS): "none: point estimates (type-II ML)"}

    def _posterior_of(self, index: int | None) -> NIGPosterior:
        """The closed-form posterior of group ``index`` (of the common (θ, σ²) under
        complete pooling, where ``index`` does not matter)."""
        if self.model.pooling == "complete":
            return posterior(self.prior, self.data.pooled())
        if index is None:
            raise SpecificationError("name the group: theta_marginal('label')")
        return posterior(self.prior, self.data.group(index))

    def theta_marginal(self, group: str | None = None) -> Any:
        """The closed-form p(θ_j | y): a Student t (see
        :func:`~poolwise.families.normal_inverse_gamma.theta_marginal`)."""
        index = None if group is None else self._index(group)
        return theta_marginal(self._posterior_of(index))

    def _draws_of(self, index: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Flat posterior draws of (θ, σ²) of group ``index`` (the common pair under
        complete pooling)."""
        theta, sigma2 = self.draws("theta"), self.draws("sigma2")
        if self.model.pooling != "complete":
            theta, sigma2 = theta[..., index], sigma2[..., index]
        return theta.ravel(), sigma2.ravel()

    # ------------------------------------------------------------------ log likelihood
    def point_groupings(self) -> dict[str, NDArray]:
        """The points are the groups (each one's observations together)."""
        return {self.data.group_name: self.data.labels}

    def _log_likelihood(self) -> tuple[NDArray, str, NDArray]:
        """Each group's log likelihood given (θ_j, σ_j²), from its sufficient statistics:
        −(n_j/2) log(2π σ_j²) − [SS_j + n_j (ȳ_j − θ_j)²] / (2σ_j²)."""
        theta, sigma2 = self.draws("theta"), self.draws("sigma2")
        if self.model.pooling == "complete":
            theta, sigma2 = theta[..., None], sigma2[..., None]
        s = self.data.stats
        values = (-0.5 * s.n * np.log(2 * math.pi * sigma2)
                  - (s.sum_sq_dev + s.n * (s.mean - theta) ** 2) / (2 * sigma2))
        return values, "group", self.data.labels

    # ------------------------------------------------------------------ predictions
    def _answers(self) -> dict[type, Answer]:
        return group_answers(self.model.pooling, self._existing_group, self._new_group,
                             self._population)

    def _existing_group(self, request: ExistingGroup, rng: np.random.Generator
                        ) -> Prediction:
        """θ_j, σ_j² from the posterior, then ȳ* ~ N(θ_j, σ_j²/k), the mean of k new
        observations (k = ``size``, default 1); closed form t_{2α*}(m*, β*(v* + 1/k)/α*)."""
        if request.factor is not None and request.factor != self.data.group_name:
            raise SpecificationError(
                f"a nig fit has one grouping factor, {self.data.group_name!r}, not "
                f"{request.factor!r}")
        k = _new_size(request.size)
        index = self._index(request.group)
        theta, sigma2 = self._draws_of(index)
        post = self._posterior_of(index)
        if self.model.pooling == "complete":
            drawn = ("the common θ and σ² of complete pooling (every group shares them) "
                     "from the posterior")
        else:
            drawn = "its θ_j and σ_j² from the posterior"
        return self._with_mean(
            request, f"the mean of {_observations(k)} from group {request.group!r}: "
            f"{drawn}, then ȳ* ~ N(θ, σ²/{k:g})", theta, sigma2, k, post, rng)

    def _new_group(self, request: NewGroup, rng: np.random.Generator) -> Prediction:
        """(θ_new, σ²_new) from the population — the estimated prior (partial pooling), the
        fixed prior (no pooling: it is also the population of a new group), the common
        (θ, σ²) (complete pooling) — then ȳ* ~ N(θ_new, σ²_new/k)."""
        if request.y is not None:
            raise SpecificationError(
                "a nig fit cannot take a new group's own data as NewGroup(y=...): a group's "
                "data are its observations (their number, mean and spread), not one value; "
                "add the new group's rows to the table and fit again")
        k = _new_size(request.size)
        total = self.config.chains * self.config.draws
        p = self.prior
        if self.model.pooling == "complete":
            theta, sigma2 = self._draws_of(0)
            post = self._posterior_of(None)
            drawn = ("it shares the common θ and σ² of complete pooling, drawn from their "
                     "posterior")
        else:
            sigma2 = p.beta / rng.standard_gamma(p.alpha, size=total)
            theta = p.mu + p.tau * np.sqrt(sigma2) * rng.standard_normal(total)
            post = NIGPosterior(p.mu, p.tau**2, p.alpha, p.beta)
            drawn = ("σ²_new ~ IG(α̂, β̂), θ_new ~ N(μ̂, σ²_new τ̂²) from the population "
                     f"estimated by {self.method}, held fixed at the estimates"
                     if self.model.pooling == "partial" else
                     "σ²_new ~ IG(α, β), θ_new ~ N(μ, σ²_new τ²) from the fixed prior, which "
                     "under no pooling is also the population of a new group")
        return self._with_mean(
            request, f"a new group, the mean of {_observations(k)}: {drawn}; then "
            f"ȳ* ~ N(θ_new, σ²_new/{k:g})", theta, sigma2, k, post, rng)

    def _with_mean(self, request: Any, description: str, theta: NDArray,
                   sigma2: NDArray, k: float, post: NIGPosterior,
                   rng: np.random.Generator) -> Prediction:
        """The prediction of θ and ȳ* ~ N(θ, σ²/k), with their closed forms given
        ``post``: θ ~ t_{2α*}(m*, β* v*/α*), ȳ* ~ t_{2α*}(m*, β* (v* + 1/k)/α*)."""
        y = theta + np.sqrt(sigma2 / k) * rng.standard_normal(theta.size)
        exact = {"theta": theta_marginal(post),
                 "y": scipy_stats.t(df=2 * post.alpha, loc=post.m,
                                    scale=np.sqrt(post.beta * (post.v + 1 / k) / post.alpha))}
        return Prediction(request, description,
                          prediction_dataset({"theta": (theta, []), "y": (y, [])},
                                             self.config.chains), exact)

    def _population(self, request: Population, rng: np.random.Generator) -> Prediction:
        """Partial pooling: μ̂, the eb-ml estimate of the population mean of θ (fixed, every
        draw equal). Complete pooling: the posterior draws of the common θ."""
        chains, total = self.config.chains, self.config.chains * self.config.draws
        if self.model.pooling == "complete":
            theta = self.draws("theta").ravel()
            return Prediction(Population(), "the common θ of complete pooling (its "
                              "posterior draws)",
                              prediction_dataset({"theta": (theta, [])}, chains),
                              {"theta": self.theta_marginal()})
        mu = np.full(total, self.prior.mu)
        return Prediction(Population(), f"the population mean μ of θ: the {self.method} "
                          "(empirical-Bayes) estimate μ̂, fixed — every draw equals it, "
                          "with no uncertainty about it",
                          prediction_dataset({"mu": (mu, [])}, chains))

    # ------------------------------------------------------------------ replicates
    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """Each group's replicated mean and sum of squared deviations at every posterior
        draw (:func:`_replicate_stats`)."""
        theta, sigma2 = self.draws("theta"), self.draws("sigma2")
        if self.model.pooling == "complete":
            theta, sigma2 = theta[..., None], sigma2[..., None]
        mean, ss = _replicate_stats(rng, theta, sigma2, self.data.stats.n)
        return {"mean": (mean, ["group"]), "sum_sq_dev": (ss, ["group"])}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> NIGFit:
        record = FitRecord(tree)
        observed = tree["observed_data"].to_dataset()
        data = NIGData(
            labels=np.asarray(observed["group"].values).astype(str),
            stats=NormalStats(np.asarray(observed["n"].values, dtype=float),
                              np.asarray(observed["mean"].values, dtype=float),
                              np.asarray(observed["sum_sq_dev"].values, dtype=float)),
            group_name=str(record.data["group_name"]), notes=tuple(record.data["notes"]),
            y_name=str(record.data.get("y_name", "y")))
        return cls(NIGModel(**record.model), data, tree, record.fitted["info"],
                   prior=NIGPrior(**record.fitted["prior"]),
                   estimate=record.fitted["estimate"])


def _new_size(size: float | None) -> float:
    """The number k of new observations whose mean is predicted (default 1)."""
    checked = check_size(size, "number of new observations", whole=True)
    return 1.0 if checked is None else checked


def _observations(k: float) -> str:
    return f"{k:g} new observation{'s' if k != 1 else ''}"
