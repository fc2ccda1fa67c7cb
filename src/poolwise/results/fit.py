"""The one result every model kind returns: :class:`Fit`.

A base class rather than a Protocol, because most of what a fit does is the same for every
kind and is written here once: the summary table from the ArviZ ``DataTree``, draws by
name, the Markov chain diagnostics and their advice, predictions dispatched by request type
with one random-stream rule, posterior predictive draws and their checks, saving. A kind
adds only what differs, in a few small methods:

``from_tree`` (classmethod)
    Rebuild the fit from a saved tree (:func:`poolwise.load` calls it).
``_answers``
    Which :mod:`~poolwise.results.prediction` requests the fit answers, and the method
    that answers each.
``_replicate``
    Draws of the observed data given each posterior draw (the posterior predictive).

and, where its summary is not the plain table of the posterior (empirical Bayes, REML),
``_summary``. The model a fit holds (``fit.model``) describes itself: its prior, graph and
equations, and how its data turn into quantities to check (``check_data``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._random import Stream, generator
from poolwise.exceptions import SpecificationError
from poolwise.results import decisions
from poolwise.results.checks import check_table
from poolwise.results.comparison import side_by_side
from poolwise.results.diagnostics import check_diagnostics, diagnostic_problems
from poolwise.results.prediction import REQUESTS, Prediction
from poolwise.results.summary import check_prob, posterior_draws, posterior_summary
from poolwise.vocabulary import MCMC_METHODS

if TYPE_CHECKING:
    from poolwise.inference.base import SamplerConfig
    from poolwise.results.graph import ModelGraph

__all__ = ["PREDICTIVE_LIMIT", "Answer", "Fit", "finish_fit", "observed_size"]

#: a fit's method answering one kind of prediction request
Answer = Callable[[Any, np.random.Generator], Prediction]
#: above this many replicated values (draws × observations) the posterior predictive is
#: drawn when asked for, not stored with every fit
PREDICTIVE_LIMIT = 10_000_000


@dataclass(frozen=True, repr=False)
class Fit(ABC):
    """What fitting a model gives: posterior draws in an ArviZ ``DataTree``, the model (with
    its settings) and the data it was fitted to.

    ``tree`` follows ArviZ's layout: ``posterior`` (chain, draw, ...), ``observed_data``,
    ``log_likelihood``, ``posterior_predictive``, ``sample_stats`` for Markov chains, and
    the model's specification in its attributes (:mod:`poolwise.results.storage`).
    """

    model: Any
    data: Any
    tree: xr.DataTree
    info: dict[str, Any] = field(default_factory=dict)
    #: what the fit computed once and keeps (check data, group summaries), by key
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False,
                                  compare=False)

    # ------------------------------------------------------------------ identity
    @property
    def kind(self) -> str:
        """``rates``, ``normal``, ``nig``, ``mixed``, ``nested`` or ``custom``."""
        return str(self.model.kind)

    @property
    def method(self) -> str:
        return str(self.model.method)

    @property
    def config(self) -> SamplerConfig:
        """Draws, chains, warm-up, seed: the model's settings."""
        return self.model.config

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    @property
    def is_mcmc(self) -> bool:
        """Whether the draws are Markov chains (their diagnostics matter)."""
        return self.method in MCMC_METHODS

    @property
    def effective_fraction(self) -> float | None:
        """The effective sample size per draw of weighted draws resampled to equal weights
        (a mixed model's ``importance``): the Monte Carlo error of a mean over S of them is
        sd/√(fraction × S). None where the draws themselves tell (independent draws,
        Markov chains)."""
        return None

    @property
    def group_dims(self) -> tuple[str, ...]:
        """The posterior's dimensions that label groups (the summary's ``group``)."""
        return ("group",)

    def title(self) -> str:
        """One line: what was fitted, how, to what."""
        return self.model.title(self.data)

    def __repr__(self) -> str:
        """One line, as the title says it (the draws are in ``.tree``, the table in
        ``.summary()``)."""
        return f"<{type(self).__name__}: {self.title()}>"

    # ------------------------------------------------------------------ draws
    @property
    def posterior(self) -> xr.Dataset:
        if "posterior" not in self.tree.children:
            raise SpecificationError(f"a {self.method} fit holds point estimates, no draws")
        return self.tree["posterior"].to_dataset()

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw, ...)."""
        return posterior_draws(self.posterior, name)

    # ------------------------------------------------------------------ summaries
    def infinite_moments(self) -> dict[str, list[str]]:
        """Variables whose posterior mean or sd does not exist → which of ("mean", "sd"):
        the summary leaves those out. Empty where nothing is measured (the rate and normal
        kinds measure the tail of their hyperparameters' posterior)."""
        return {}

    def medians(self, names: Sequence[str]) -> dict[str, float]:
        """The posterior median of each named scalar variable (for those without a mean)."""
        return {name: float(np.median(self.draws(name))) for name in names}

    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """One row per parameter (and group): mean, sd, equal-tailed interval, and the
        diagnostics (bulk and tail ESS, R-hat, MCSE of the mean) in the columns of
        :data:`~poolwise.results.summary.SUMMARY_COLUMNS`.

        ``diagnostics=False`` skips ESS and R-hat (about 3 ms per group); they are NaN
        where they do not apply (point estimates, closed-form conditionals).
        """
        check_prob(ci_prob)
        key = ("summary", ci_prob, diagnostics and self.config.draws > 1)
        if key not in self._memo:  # kept: a fit of a million groups is summarised once
            self._memo[key] = self._summary(ci_prob, key[2])
        return self._memo[key].copy(deep=False)

    def _summary(self, ci_prob: float, diagnostics: bool) -> pd.DataFrame:
        return posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics,
                                 group_dims=self.group_dims)

    #: what else to try when NUTS diverges, beside smaller steps (the kind's own advice)
    DIVERGENCE_HINT: ClassVar[str | None] = None

    def interval_notes(self, ci_prob: float = 0.95) -> dict[str, str]:
        """What the summary's ``lower`` and ``upper`` are where they are not equal-tailed
        posterior intervals: the parameters' names (comma-separated) → ``"kind: how"``,
        e.g. ``{"b": "Wald: estimate ± 1.96 × sd, …"}``. Empty (the default): every
        interval is an equal-tailed interval of the fit's draws."""
        return {}

    def likelihood_statistics(self) -> dict[str, float] | None:
        """lme4's fit statistics of a point estimate (``REML criterion``, or ``AIC``,
        ``BIC``, ``logLik``, ``deviance``, ``df.resid`` and ``df``); None for a fit without
        one (full Bayes)."""
        return None

    def describe_prior(self) -> str:
        """The prior as this fit used it (with defaults resolved for its data)."""
        return self.model.describe_prior(self.data)

    def implied_pooling(self) -> str | None:
        """The prior's pooling factor of a typical group, in words (None where there is
        none): its median and central 90 % interval, shown beside the prior."""
        return self.model.implied_pooling(self.data)

    def prior_statements(self) -> list[str]:
        """The prior as the lines it is printed in (one per term for mixed models)."""
        return list(self.model.prior_statements(self.data))

    def graph(self) -> ModelGraph:
        """The graphical model with plates sized by the data; draw it with
        :func:`poolwise.outputs.render.render`."""
        return self.model.graph(self.data)

    def equations(self) -> list[str]:
        """The model as LaTeX lines (likelihood, population, priors with their values)."""
        return self.model.equations(self.data)

    @classmethod
    def comparison_table(cls, fits: Mapping[str, Fit], ci_prob: float = 0.95) -> pd.DataFrame:
        """Fits of this kind side by side (:class:`~poolwise.results.comparison.Comparison`):
        their summaries joined on (param, group), the partial-pooling fit's rows first."""
        tables = {label: fit.summary(ci_prob, diagnostics=False) for label, fit in fits.items()}
        return side_by_side(tables, order="partial" if "partial" in tables else None)

    def diagnostics(self) -> list[str]:
        """What the Markov chain diagnostics say is wrong, each with what to do."""
        return diagnostic_problems(self)

    # ------------------------------------------------------------------ predictions
    def requests(self) -> tuple[type, ...]:
        """The prediction requests this fit answers, in the order of
        :data:`~poolwise.results.prediction.REQUESTS`."""
        answers = self._answers()
        return tuple(request for request in REQUESTS if request in answers)

    def _answers(self) -> dict[type, Answer]:
        """Each request type this fit answers → the method that answers it (a request and
        the prediction stream's generator → a :class:`Prediction`); none by default."""
        return {}

    def predict(self, request: Any, *, seed: int | None = None) -> Prediction:
        """Answer a prediction ``request`` (:mod:`poolwise.results.prediction`).

        Random numbers come from the fit's seed (or ``seed``) and the prediction stream:
        the same request and seed give the same draws.
        """
        if not isinstance(request, REQUESTS):
            names = ", ".join(r.__name__ for r in REQUESTS)
            raise SpecificationError(
                f"predict() takes a request ({names}), not {type(request).__name__}")
        answered = self.requests()
        if not answered:
            raise SpecificationError(
                f"a {self.kind} fit ({self.model.pooling_phrase}) answers no prediction "
                f"requests ({type(request).__name__} given; the requests it answers: none): "
                "for replicated data use posterior_predictive(), and predictive_check() to "
                "compare them with the data")
        if type(request) not in answered:
            can = ", ".join(r.__name__ for r in answered)
            raise SpecificationError(
                f"a {self.kind} fit ({self.model.pooling_phrase}) cannot answer "
                f"{type(request).__name__}; the requests it answers: {can}")
        rng = generator(self.seed if seed is None else seed, Stream.PREDICT)
        return self._answers()[type(request)](request, rng)

    # ------------------------------------------------------------------ decisions
    def ranks(self, *, higher: bool = True, parameter: str | None = None,
              ci_prob: float = 0.95, draws: int | None = None) -> pd.DataFrame:
        """Each group's posterior rank (1 the best), its interval, P(best) and P(worst),
        with their Monte Carlo errors (:func:`poolwise.results.decisions.ranks`); kept, so
        that the table and the figure of a million groups rank them once."""
        decisions.check_ranks(higher, parameter, ci_prob, draws)
        key = ("ranks", higher, parameter, ci_prob, draws)
        if key not in self._memo:
            self._memo[key] = decisions.ranks(self, higher=higher, parameter=parameter,
                                              ci_prob=ci_prob, draws=draws)
        return self._memo[key].copy(deep=False)

    def draw_source(self, parameter: str | None = None) -> decisions.DrawSource:
        """A per-group parameter (named as in the summary; the first by default) at any
        posterior draws, for what streams over the draws (ranks): by default slices of
        the stored draws; a kind that keeps no draws of it draws them when asked."""
        return decisions.stored_source(self, parameter)

    def pairwise(self, groups: Sequence[str], *, parameter: str | None = None
                 ) -> pd.DataFrame:
        """P(θ_i > θ_j) for the chosen groups (:func:`poolwise.results.decisions.pairwise`)."""
        return decisions.pairwise(self, groups, parameter=parameter)

    def hypothesis(self, expression: str, *, ci_prob: float = 0.95) -> dict[str, Any]:
        """The posterior probability of ``"theta[A] - theta[B] > 0"`` or ``"b[Days] > 5"``
        and the interval of its left-hand side
        (:func:`poolwise.results.decisions.hypothesis`)."""
        return decisions.hypothesis(self, expression, ci_prob=ci_prob)

    # ------------------------------------------------------------------ predictive checks
    def posterior_predictive(self, seed: int | None = None) -> xr.Dataset:
        """Replicated data: the observed data drawn afresh at every posterior draw, shaped
        (chain, draw, ...) like ``observed_data``. With ``seed=None`` it is the fit's own
        (stored in the tree when small enough)."""
        if seed is None and "posterior_predictive" in self.tree.children:
            return self.tree["posterior_predictive"].to_dataset()
        rng = generator(self.seed if seed is None else seed, Stream.POSTERIOR_PREDICTIVE)
        return _as_dataset(self._replicate(rng), self._coords())

    @abstractmethod
    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """Replicated observed data: name → (draws shaped (chain, draw, ...), their dims)."""

    def _coords(self) -> dict[str, Any]:
        coords: dict[str, Any] = {}
        for name in ("posterior", "observed_data"):
            if name in self.tree.children:
                dataset = self.tree[name].to_dataset()
                coords |= {str(k): v.values for k, v in dataset.coords.items()}
        return coords

    def predictive_check(self, ci_prob: float = 0.9, *, seed: int | None = None
                         ) -> pd.DataFrame:
        """The posterior predictive check: for the whole data and for each group, the
        observed statistic, its replicated mean and ``ci_prob`` interval, and the Bayesian
        p-value (:func:`~poolwise.results.checks.check_table`; made once per ``ci_prob``
        unless a ``seed`` asks for other replicates)."""
        if seed is not None:
            return check_table(self.check_data(seed=seed), ci_prob)
        key = ("predictive_check", ci_prob)
        if key not in self._memo:
            self._memo[key] = check_table(self.check_data(), ci_prob)
        return self._memo[key].copy(deep=False)

    def check_data(self, *, seed: int | None = None) -> list[Any]:
        """The observed and replicated quantities the predictive check compares.

        When the posterior predictive is not stored (more than :data:`PREDICTIVE_LIMIT`
        values), it is drawn from evenly spaced posterior draws, as many as keep the
        replicated values within that limit: a check needs hundreds of draws, not all.
        """
        if seed is None and "check_data" in self._memo:
            return list(self._memo["check_data"])
        if seed is None and "posterior_predictive" in self.tree.children:
            replicated = self.posterior_predictive()
        else:
            source = self._thinned(PREDICTIVE_LIMIT)
            rng = generator(self.seed if seed is None else seed, Stream.POSTERIOR_PREDICTIVE)
            replicated = _as_dataset(source._replicate(rng), self._coords())
        flat = {name: _flat(replicated[name].values) for name in replicated.data_vars}
        checks = self.model.check_data(self.data, flat)
        if seed is None:
            self._memo["check_data"] = checks
        return list(checks)

    def observed_values(self) -> int:
        """How many values a replicate of the observed data holds (and how many pointwise
        log likelihoods a draw has): by default every value of ``observed_data``; a kind
        that stores other columns there (a group's size) says less."""
        return observed_size(self.tree)

    def _thinned(self, limit: int) -> Fit:
        """The fit with every k-th draw of each chain, k the least that keeps the
        replicated data within ``limit`` values (the fit itself when it already does)."""
        posterior = self.posterior
        per_draw = max(self.observed_values(), 1)
        total = posterior.sizes["chain"] * posterior.sizes["draw"]
        step = -(-total * per_draw // limit)  # ceil
        if step <= 1:
            return self
        tree = self.tree.copy()
        tree["posterior"] = xr.DataTree(posterior.isel(draw=slice(None, None, step)))
        return replace(self, tree=tree)

    # ------------------------------------------------------------------ saving
    def with_log_likelihood(self) -> xr.DataTree:
        """The tree with the pointwise log likelihood (for PSIS-LOO): the stored one, or
        computed now (:meth:`_log_likelihood`) for fits too large to store it."""
        if "log_likelihood" in self.tree.children:
            return self.tree
        values, dim, labels = self._log_likelihood()
        posterior = self.posterior
        tree = self.tree.copy()
        tree["log_likelihood"] = xr.DataTree(xr.Dataset(
            {"y": (("chain", "draw", dim), values)},
            coords={"chain": posterior["chain"], "draw": posterior["draw"], dim: labels}))
        return tree

    def point_groupings(self) -> dict[str, NDArray]:
        """The groupings of the pointwise log likelihood's points for leave-one-group-out
        (:func:`~poolwise.results.comparison.loo_compare` with ``by``): name → each point's
        group. Every kind also groups by the points' own dimension (one point a group)."""
        return {}

    def _log_likelihood(self) -> tuple[NDArray, str, NDArray]:
        """log p(y_i | parameters) at every draw, shaped (chain, draw, points), the points'
        dimension and labels."""
        raise SpecificationError(f"a {self.kind} fit has no pointwise log likelihood")

    def save(self, path: str | Path, *, group_draws: bool = False,
             progress: Callable[[int, int], None] | None = None) -> None:
        """Write the fit to NetCDF; :func:`poolwise.load` reads it back as this kind.

        ``group_draws``: the file holds every group's draws. A fit that keeps its draws
        writes them anyway, so for it this changes nothing; one that summarises its groups
        without draws (rates and normal fits of many groups) writes them in chunks,
        calling ``progress(groups written, groups)`` after each.
        """
        _arviz.save(self.tree, path)

    def draws_note(self, file: str | None = None) -> str | None:
        """Where the group-level draws are, for a fit that does not keep them in memory
        (written in chunks to ``file``, or not kept and how to get them); None for a fit
        that keeps them, as every kind but the summarised rates and normal fits does."""
        return None

    @classmethod
    @abstractmethod
    def from_tree(cls, tree: xr.DataTree) -> Fit:
        """The fit a saved tree holds (its model and data rebuilt from the tree)."""


def _flat(values: NDArray) -> NDArray[np.float64]:
    """(chain, draw, ...) → (chain × draw, ...)."""
    values = np.asarray(values, dtype=float)
    return values.reshape(-1, *values.shape[2:])


def _as_dataset(variables: Mapping[str, tuple[NDArray, list[str]]],
                coords: Mapping[str, Any]) -> xr.Dataset:
    data_vars = {name: (("chain", "draw", *dims), np.asarray(values))
                 for name, (values, dims) in variables.items()}
    dataset = xr.Dataset(data_vars)
    chains, draws = next(iter(data_vars.values()))[1].shape[:2]
    used = set(dataset.dims)
    return dataset.assign_coords(
        {k: v for k, v in coords.items() if k in used and k not in ("chain", "draw")}
        | {"chain": np.arange(chains), "draw": np.arange(draws)})


def observed_size(tree: xr.DataTree) -> int:
    """How many values the observed data hold (a replicate holds as many, or fewer)."""
    if "observed_data" not in tree.children:
        return 0
    return sum(int(variable.size) for variable in tree["observed_data"].to_dataset()
               .data_vars.values())


FitT = TypeVar("FitT", bound=Fit)


def finish_fit(fit: FitT, stacklevel: int = 1) -> FitT:
    """The last step of every kind's ``fit``: store the posterior predictive draws in the
    tree when they are small enough, and warn about failed Markov chain diagnostics."""
    if "posterior" in fit.tree.children:
        size = fit.observed_values()
        if size * fit.config.draws * fit.config.chains <= PREDICTIVE_LIMIT:
            fit.tree["posterior_predictive"] = xr.DataTree(fit.posterior_predictive())
    check_diagnostics(fit, stacklevel=stacklevel + 1)
    return fit
