"""Simulation-based calibration (SBC) of a model and its method, with the user's own design.

Each replication r draws the parameters from the prior and one data set from the prior
predictive with the data's design — the same groups, sizes, covariates and exposures
(the kind's ``_prior_draws``) — puts the data set back into the prepared data
(``_with_simulated``), fits it with the same model and method, and records the normalised
rank of each true value among L evenly spaced posterior draws,

    u_r = (#{draws < truth} + V + U) / (L + 1),   V uniform on {0, …, #{draws = truth}},
                                                   U ~ Uniform(0, 1),

which is Uniform(0, 1) exactly when the method draws from the posterior (Talts, Betancourt,
Simpson, Vehtari & Gelman 2018, arXiv:1804.06788; the jitter makes the discrete rank
continuous). Every hyperparameter is ranked, and :data:`GROUPS` group parameters of each
grouping (chosen at random once, the same in every replication).

**The test of each parameter.** The ECDF F_R of R values u_r, at z_i = i/R (i = 1 … R−1),
and the smallest two-sided pointwise binomial tail probability

    s = min_i min( P(Bin(R, z_i) ≤ R F_R(z_i)), P(Bin(R, z_i) ≥ R F_R(z_i)) ),

the statistic whose null distribution sets the simultaneous band of Säilynoja, Bürkner &
Vehtari (2022, "Graphical test for discrete uniformity and its applications in goodness-of-fit
evaluation and multiple sample comparison", Statistics and Computing 32:32): the band at
level 1 − a is the pointwise binomial band at the level 1 − 2 s_a, s_a the a-quantile of s
under uniformity. Its p-value P(s_null ≤ s) is simulated (:data:`NULL_SIMULATIONS` uniform
samples of size R); the pointwise bands are arviz-stats' (:func:`poolwise._arviz.ecdf_band`).
A parameter is flagged when p < :data:`ALPHA` / K over the K parameters (Bonferroni), so a
calibrated method is called miscalibrated in at most 1 % of calibrations.

**Coverage.** The central interval of probability c covers the truth iff
(1 − c)/2 < u < (1 + c)/2; reported at :data:`LEVELS`.

**Empirical Bayes** (methods ``eb-*``) has no prior: its intervals are not posteriors, and
their ranks need not be uniform. It is checked by the frequentist coverage of its group
intervals instead: the population's parameters fixed at the estimates from the user's data
(the kind's ``_fitted_draws``), group parameters and data simulated from them, the model
fitted again by the same method, and the coverage of every group's interval at
:data:`LEVELS` averaged over groups and replications, its standard error from the spread of
the replications' averages (the groups of one replication share its estimates). A level is
flagged when its coverage is further than z·SE from nominal, z the Bonferroni quantile of
:data:`ALPHA` over the levels.

Replications run in ``jobs`` processes started by 'spawn' (JAX is not fork-safe), in chunks,
each replication from its own random stream ``[seed, Stream.CALIBRATION, r]``. Each process
builds the model once, and the replications differ only in their simulated data, which
every NUTS path but a custom model's passes to its compiled program as arguments: a process
compiles its NUTS programs once, for the first replication, and reuses them
(:func:`poolwise.inference.nuts.run_chains`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poolwise._random import Stream, generator
from poolwise.exceptions import PoolwiseError, SpecificationError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from poolwise.kinds.base import BaseModel
    from poolwise.results.fit import Fit

__all__ = ["ALPHA", "LEVELS", "Calibration", "calibrate", "ecdf_statistic", "p_value",
           "simultaneous_band"]

#: central interval probabilities whose coverage is reported
LEVELS = (0.5, 0.8, 0.95)
#: the false-alarm rate of a whole calibration's verdict (Bonferroni over its tests)
ALPHA = 0.01
#: group parameters ranked per grouping in a Bayesian calibration
GROUPS = 3
#: groups whose intervals' coverage an empirical-Bayes calibration averages (at most)
COVERAGE_GROUPS = 50
#: posterior draws each true value is ranked among (evenly spaced: thins Markov chains)
RANKED_DRAWS = 100
#: uniform samples simulated for the null distribution of the ECDF statistic
NULL_SIMULATIONS = 10_000
#: the simultaneous band drawn in calibration.png
BAND_PROB = 0.95
#: fewest replications
MIN_REPS = 10

Draws = dict[str, tuple["NDArray", list[str]]]


# ----------------------------------------------------------------------------- statistics
def _ecdf_counts(pit: NDArray) -> NDArray[np.int64]:
    """R F_R(i/R) for i = 1 … R−1 of each row of ``pit`` (..., R): how many values ≤ i/R."""
    pit = np.atleast_2d(np.asarray(pit, dtype=float))
    rows, reps = pit.shape
    bins = np.clip(np.ceil(pit * reps).astype(np.int64), 0, reps)  # u ≤ i/R ⇔ ⌈uR⌉ ≤ i
    flat = np.bincount((np.arange(rows)[:, None] * (reps + 1) + bins).ravel(),
                       minlength=rows * (reps + 1)).reshape(rows, reps + 1)
    return np.cumsum(flat, axis=1)[:, 1:reps]


def _tail_statistic(counts: NDArray, reps: int) -> NDArray[np.float64]:
    """The smallest two-sided pointwise tail probability of each row of ECDF ``counts``."""
    from scipy.special import bdtr

    z = np.arange(1, reps) / reps
    lower = bdtr(counts, reps, z)
    upper = np.where(counts > 0, 1.0 - bdtr(np.maximum(counts - 1, 0), reps, z), 1.0)
    return np.asarray(np.minimum(lower, upper).min(axis=-1), dtype=float)


def ecdf_statistic(pit: Sequence[float] | NDArray) -> float:
    """The statistic s of values ``pit`` in (0, 1) (module docstring): small when their
    ECDF strays from the uniform's."""
    values = np.asarray(pit, dtype=float)
    return float(_tail_statistic(_ecdf_counts(values), values.size)[0])


@lru_cache(maxsize=16)
def _null_statistics(reps: int) -> NDArray[np.float64]:
    """The sorted statistic of :data:`NULL_SIMULATIONS` uniform samples of size ``reps``
    (a fixed stream: the p-values of one R are the same in every run)."""
    rng = np.random.default_rng([reps, 20220322])
    block = max(1, 2_000_000 // reps)
    parts = []
    for start in range(0, NULL_SIMULATIONS, block):
        rows = min(block, NULL_SIMULATIONS - start)
        parts.append(_tail_statistic(_ecdf_counts(rng.random((rows, reps))), reps))
    return np.sort(np.concatenate(parts))


def p_value(pit: Sequence[float] | NDArray) -> float:
    """P(s_null ≤ s) of values ``pit`` under uniformity, simulated (module docstring)."""
    values = np.asarray(pit, dtype=float)
    null = _null_statistics(values.size)
    below = np.searchsorted(null, ecdf_statistic(values), side="right")
    return float((1 + below) / (1 + null.size))


def simultaneous_band(reps: int, prob: float = BAND_PROB
                      ) -> tuple[NDArray, NDArray, NDArray]:
    """Säilynoja et al.'s simultaneous ``prob`` band of the ECDF of ``reps`` uniform values:
    the evaluation points z_i = i/R and the band's lower and upper ends."""
    from poolwise._arviz import pointwise_ecdf_band

    s = float(np.quantile(_null_statistics(reps), 1.0 - prob))
    z = np.arange(1, reps) / reps
    lower, upper = pointwise_ecdf_band(1.0 - 2.0 * s, reps, z)
    return z, np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def normalised_rank(draws: NDArray, truth: float, rng: np.random.Generator) -> float:
    """u = (#{draws < truth} + V + U)/(L + 1) (module docstring): Uniform(0, 1) when the
    truth and the L draws are exchangeable."""
    draws = np.asarray(draws, dtype=float)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return (below + int(rng.integers(0, ties + 1)) + float(rng.random())) / (draws.size + 1)


def _covered(pit: NDArray, level: float) -> NDArray[np.bool_]:
    return (pit > (1.0 - level) / 2.0) & (pit < (1.0 + level) / 2.0)


# ----------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found.

    ``mode`` is ``"sbc"`` (ranks of the prior's true values among posterior draws) or
    ``"coverage"`` (empirical Bayes: the frequentist coverage of group intervals). ``pit``
    holds each ranked parameter's normalised ranks, one per replication (shape (R,); in
    coverage mode (R, groups) per grouped variable). ``table``: per parameter its test
    statistic, p-value, flag and coverage (sbc), or per level the coverage, its standard
    error and flag (coverage). ``failed``/``warned``: replications whose fit failed (left
    out) or warned, with the first message of each.
    """

    mode: str
    kind: str
    method: str
    prior: str
    reps: int
    ranked_draws: int
    pit: dict[str, NDArray]
    table: pd.DataFrame
    verdict: str
    failed: int = 0
    failure: str | None = None
    warned: int = 0
    warning: str | None = None
    seed: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def calibrated(self) -> bool:
        return not bool(self.table["flagged"].any())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``calibration.json``."""
        return {"mode": self.mode, "kind": self.kind, "method": self.method,
                "prior": self.prior, "reps": self.reps, "ranked_draws": self.ranked_draws,
                "alpha": ALPHA, "verdict": self.verdict, "calibrated": self.calibrated,
                "failed": self.failed, "failure": self.failure, "warned": self.warned,
                "warning": self.warning, "seed": self.seed, "notes": list(self.notes),
                "table": self.table.to_dict(orient="records")}


def _sbc_table(pit: Mapping[str, NDArray]) -> tuple[pd.DataFrame, str]:
    rows = []
    threshold = ALPHA / max(len(pit), 1)
    for name, values in pit.items():
        p = p_value(values)
        rows.append({"param": name, "statistic": ecdf_statistic(values), "p_value": p,
                     "flagged": p < threshold,
                     **{f"coverage_{round(100 * c)}": float(np.mean(_covered(values, c)))
                        for c in LEVELS}})
    table = pd.DataFrame(rows)
    flagged = [str(n) for n in table.loc[table["flagged"], "param"]] if rows else []
    verdict = (f"miscalibrated: {', '.join(flagged)} (ranks not uniform, p < "
               f"{threshold:.2g} = {ALPHA:g}/{len(pit)})" if flagged else
               f"calibrated: no parameter's ranks depart from uniform (each p ≥ "
               f"{threshold:.2g} = {ALPHA:g}/{len(pit)})")
    return table, verdict


def _coverage_table(pit: Mapping[str, NDArray]) -> tuple[pd.DataFrame, str]:
    from scipy.special import ndtri

    values = np.concatenate([np.asarray(v).reshape(v.shape[0], -1) for v in pit.values()],
                            axis=1)
    z = float(ndtri(1.0 - ALPHA / (2 * len(LEVELS))))
    rows = []
    for level in LEVELS:
        per_rep = _covered(values, level).mean(axis=1)
        coverage = float(per_rep.mean())
        se = float(per_rep.std(ddof=1) / math.sqrt(per_rep.size))
        rows.append({"level": level, "coverage": coverage, "se": se,
                     "groups": values.shape[1], "flagged": abs(coverage - level) > z * se})
    table = pd.DataFrame(rows)
    bad = table[table["flagged"]]
    if bad.empty:
        verdict = ("coverage as nominal: every level within "
                   f"{z:.2f} standard errors of its nominal value")
    else:
        verdict = "coverage off nominal: " + "; ".join(
            f"{round(100 * r.level)} % intervals cover {100 * r.coverage:.1f} % ± "
            f"{100 * r.se:.1f} %" for r in bad.itertuples())
    return table, verdict


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Ranked:
    """One ranked quantity: its label, variable and index after (chain, draw)."""

    label: str
    name: str
    index: tuple[int, ...]


def _plan(truth: Draws, coords: Mapping[str, Any], group_dims: Sequence[str],
          rng: np.random.Generator, coverage: bool) -> list[_Ranked]:
    """What is ranked: every element of each variable without a group dimension (a
    correlation matrix's lower triangle only; none in coverage mode), and of each grouped
    variable :data:`GROUPS` levels chosen at random (:data:`COVERAGE_GROUPS` in coverage
    mode), with every element of its other dimensions."""
    plan = []
    for name, (values, dims) in truth.items():
        shape = np.shape(values)[1:]
        grouped = [k for k, d in enumerate(dims) if d in group_dims]
        if coverage and not grouped:
            continue
        chosen: dict[int, NDArray] = {}
        for axis in grouped:
            take = min(shape[axis], COVERAGE_GROUPS if coverage else GROUPS)
            chosen[axis] = np.sort(rng.choice(shape[axis], size=take, replace=False))
        for index in np.ndindex(*shape):
            if any(index[a] not in chosen[a] for a in grouped):
                continue
            if name.startswith("cor_") and len(index) == 2 and index[0] <= index[1]:
                continue
            labels = [str(coords[d][i]) if d in coords else str(i)
                      for d, i in zip(dims, index, strict=True)]
            label = f"{name}[{','.join(labels)}]" if labels else name
            plan.append(_Ranked(label, name, tuple(int(i) for i in index)))
    return plan


# ----------------------------------------------------------------------------- replications
@dataclass(frozen=True)
class _Job:
    """What a worker needs: the model to rebuild, the prepared data, the empirical-Bayes
    fit to simulate from (None: the prior), the plan and the seed."""

    model_type: type
    spec: dict[str, Any]
    data: Any
    source: Fit | None
    plan: list[_Ranked]
    seed: int
    ranked_draws: int


@dataclass
class _Outcome:
    """One replication: the normalised ranks by label, or why its fit failed; its first
    warning."""

    pit: dict[str, float] | None
    failure: str | None = None
    warning: str | None = None


def _replicate(job: _Job, reps: Sequence[int],
               done: Callable[[int], None] | None = None) -> list[_Outcome]:
    """Replications ``reps`` of ``job`` (in a worker process, or in this one), ``done(k)``
    after the k-th. One model serves them all (a custom model's file is loaded once)."""
    model = job.model_type(**job.spec)
    outcomes = []
    for rep in reps:
        outcomes.append(_replication(model, job, rep))
        if done is not None:
            done(len(outcomes))
    return outcomes


def _replication(model: BaseModel, job: _Job, rep: int) -> _Outcome:
    """Replication ``rep``: simulate, fit, rank."""
    rng = generator(job.seed, Stream.CALIBRATION, rep)
    if job.source is None:
        truth, predictive, _ = model._prior_draws(job.data, rng, 1)
    else:
        truth, predictive, _ = model._fitted_draws(job.source, rng, 1)
    data = model._with_simulated(job.data, {k: v[0] for k, (v, _) in predictive.items()})
    fitting = model.replace(seed=int(rng.integers(2**31 - 1)), progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = fitting.fit(data)
            pit = _ranks(fit, truth, job.plan, job.ranked_draws, rng)
        except PoolwiseError as error:
            return _Outcome(None, failure=str(error))
    return _Outcome(pit, warning=str(caught[0].message) if caught else None)


def _ranks(fit: Fit, truth: Draws, plan: Sequence[_Ranked], ranked: int,
           rng: np.random.Generator) -> dict[str, float]:
    """Each planned quantity's normalised rank among ``ranked`` evenly spaced draws."""
    result = {}
    cache: dict[str, NDArray] = {}
    for item in plan:
        if item.name not in fit.posterior:
            continue
        if item.name not in cache:
            values = fit.draws(item.name)
            cache[item.name] = values.reshape(-1, *values.shape[2:])
        draws = cache[item.name]
        keep = np.unique(np.linspace(0, draws.shape[0] - 1, min(ranked, draws.shape[0]))
                         .astype(int))
        true = float(np.asarray(truth[item.name][0])[(0, *item.index)])
        result[item.label] = normalised_rank(draws[(keep, *item.index)], true, rng)
    return result


def _run(job: _Job, reps: int, jobs: int,
         progress: Callable[[int, int], None] | None) -> list[_Outcome]:
    """All replications, in ``jobs`` spawned processes (in this one when 1), in chunks."""
    order = list(range(reps))
    if jobs <= 1:
        return _replicate(job, order, None if progress is None
                          else lambda done: progress(done, reps))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    size = max(1, math.ceil(reps / (4 * jobs)))
    chunks = [order[i:i + size] for i in range(0, reps, size)]
    results: dict[int, list[_Outcome]] = {}
    done = 0
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_replicate, job, chunk): k for k, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done += len(chunks[futures[future]])
            if progress is not None:
                progress(done, reps)
    return [outcome for k in range(len(chunks)) for outcome in results[k]]


# ----------------------------------------------------------------------------- the entry
def calibrate(model: BaseModel, data: Any, *, reps: int = 100, seed: int = 0,
              jobs: int | None = None, ranked_draws: int = RANKED_DRAWS,
              progress: Callable[[int, int], None] | None = None,
              **columns: Any) -> Calibration:
    """Simulation-based calibration of ``model`` (its kind, prior and method) with the
    design of ``data`` (module docstring); ``columns`` as for ``model.fit``.

    ``reps`` replications (at least :data:`MIN_REPS`), each fitted with the model's draws
    and chains and ranked among ``ranked_draws`` of them; ``jobs`` worker processes (default:
    the cores); ``progress(done, reps)`` after each replication or chunk. Refused, before
    anything is fitted, for an improper prior (it has no draws) and for a kind or method
    that cannot be calibrated.
    """
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < MIN_REPS:
        raise SpecificationError(f"reps must be a whole number ≥ {MIN_REPS}, got {reps!r}")
    if isinstance(ranked_draws, bool) or not isinstance(ranked_draws, int) or ranked_draws < 9:
        raise SpecificationError(f"ranked_draws must be a whole number ≥ 9, got "
                                 f"{ranked_draws!r}")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SpecificationError(f"jobs must be a whole number ≥ 1, got {jobs!r}")
    prepared = model.prepare(data, **columns)
    simulating = model._calibration_model(prepared)
    coverage = simulating.method.startswith("eb-")
    source = simulating.fit(prepared) if coverage else None
    rng = generator(seed, Stream.CALIBRATION)  # the plan; replication r: [seed, 8, r]
    try:
        if source is None:
            truth, _, coords = simulating._prior_draws(prepared, rng, 1)
        else:
            truth, _, coords = simulating._fitted_draws(source, rng, 1)
    except SpecificationError as error:
        raise SpecificationError(
            f"cannot calibrate: its true values are drawn from the prior (give a proper one "
            f"with --prior, prior= in Python), and {error}"
        ) from error
    group_dims = simulating._group_dims(prepared)
    if source is not None:
        group_dims = tuple(dict.fromkeys((*group_dims, *(d for _, dims in truth.values()
                                                          for d in dims))))
    plan = _plan(truth, coords, group_dims, rng, coverage)
    job = _Job(type(simulating), simulating.spec(), prepared, source, plan, seed,
               ranked_draws)
    outcomes = _run(job, reps, min(jobs, reps), progress)
    kept = [o.pit for o in outcomes if o.pit is not None]
    failures = [o.failure for o in outcomes if o.failure is not None]
    warned = [o.warning for o in outcomes if o.warning is not None]
    if len(kept) < MIN_REPS:
        raise SpecificationError(
            f"only {len(kept)} of {reps} replications could be fitted (first failure: "
            f"{failures[0] if failures else 'none'})")
    labels = [item.label for item in plan if all(item.label in k for k in kept)]
    pit = {label: np.array([k[label] for k in kept]) for label in labels}
    if coverage:
        by_name: dict[str, list[str]] = {}
        for item in plan:
            if item.label in pit:
                by_name.setdefault(item.name, []).append(item.label)
        pit = {name: np.column_stack([pit[label] for label in group])
               for name, group in by_name.items()}
        table, verdict = _coverage_table(pit)
    else:
        table, verdict = _sbc_table(pit)
    notes = []
    if coverage:
        notes.append(f"{simulating.method} estimates the population from the data and has no "
                     "prior, so its intervals are not posteriors: they are checked by their "
                     "frequentist coverage, with the data simulated from the estimates on "
                     "these data")
    if failures:
        notes.append(f"{len(failures)} of {reps} replications could not be fitted and are "
                     f"left out (which can bias the check); the first: {failures[0]}")
    if warned:
        notes.append(f"{len(warned)} of {reps} replications warned; the first: {warned[0]}")
    prior = simulating.describe_prior(prepared)
    return Calibration("coverage" if coverage else "sbc", simulating.kind, simulating.method,
                       prior, len(kept), ranked_draws, pit, table, verdict,
                       failed=len(failures), failure=failures[0] if failures else None,
                       warned=len(warned), warning=warned[0] if warned else None,
                       seed=seed, notes=tuple(notes))
