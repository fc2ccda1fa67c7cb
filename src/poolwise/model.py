"""A model is a specification: family × pooling × prior. Fitting returns a :class:`Fit`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from poolwise.data.estimates import GroupEstimates, group_estimates
from poolwise.data.tables import GroupCounts, group_counts
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families import RateFamily, get_family
from poolwise.inference import SamplerConfig, get_method
from poolwise.priors import (
    ConjugatePrior,
    HyperPrior,
    IndependentPrior,
    ReferencePrior,
    UniformVariancePrior,
    parse_hyperprior,
    parse_theta_prior,
)

if TYPE_CHECKING:
    from poolwise.fit import Fit
    from poolwise.graph import ModelGraph

Pooling = Literal["none", "complete", "partial"]
POOLINGS: tuple[str, ...] = ("none", "complete", "partial")
PARAMETRISATIONS: tuple[str, ...] = ("auto", "non-centred", "centred", "marginal")
#: how each pooling level reads in a sentence
POOLING_PHRASES = {"none": "no pooling", "complete": "complete pooling",
                   "partial": "partial pooling"}


class Model:
    """A hierarchical rate model.

    Parameters
    ----------
    family
        ``"beta-binomial"`` (y_j ~ Binomial(n_j, θ_j)) or ``"gamma-poisson"``
        (y_j ~ Poisson(E_j θ_j)).
    pooling
        ``"partial"``: θ_j ~ Beta(α, β) or Gamma(α, β) with a hyperprior on (α, β);
        ``"none"``: each θ_j has its own fixed prior; ``"complete"``: one θ for all groups.
    prior
        Partial pooling: a hyperprior string such as ``"bda"`` (default) or
        ``"halfnormal(10)"``; see :mod:`poolwise.priors`. No or complete pooling: the fixed
        prior of θ, ``"beta(a, b)"`` / ``"gamma(a, b)"`` (default Beta(1/2, 1/2) and
        Gamma(1/2, 0), the Jeffreys priors).

    Examples
    --------
    >>> from poolwise import Model, datasets
    >>> rats = datasets.load("rats").query("historical == 1")
    >>> fit = Model(family="beta-binomial").fit(rats, y="y", n="n", method="eb-moments")
    >>> round(fit.eb.alpha, 4), round(fit.eb.beta, 4)
    (1.3778, 8.7524)
    """

    def __init__(
        self,
        *,
        family: str | RateFamily = "beta-binomial",
        pooling: str = "partial",
        prior: str | HyperPrior | ConjugatePrior | None = None,
    ) -> None:
        self.family = get_family(family)
        if pooling not in POOLINGS:
            raise SpecificationError(
                f"unknown pooling {pooling!r}; valid pooling levels: {', '.join(POOLINGS)}"
            )
        self.pooling = pooling
        self.hyperprior: HyperPrior | None
        if pooling == "partial":
            if isinstance(prior, ConjugatePrior):
                raise SpecificationError("partial pooling needs a hyperprior on (α, β)")
            self.hyperprior = parse_hyperprior(prior if prior is not None else "bda")
            _check_hyperprior(self.family, self.hyperprior)
            self.theta_prior = parse_theta_prior(None, self.family)
        else:
            if isinstance(prior, HyperPrior):
                raise SpecificationError(f"{POOLING_PHRASES[pooling]} takes a fixed prior for θ")
            self.hyperprior = None
            self.theta_prior = parse_theta_prior(prior, self.family)

    def graph(self, data: GroupCounts | None = None) -> ModelGraph:
        """The model's probabilistic graphical model (plates sized by ``data`` if given);
        draw it with :func:`poolwise.graph.render`."""
        from poolwise.graph import model_graph

        return model_graph(self, data)

    def describe_prior(self, method: str | None = None) -> str:
        """The prior in words and symbols, as shown to the user.

        With an empirical-Bayes ``method`` the hyperprior is not used, and it says so.
        """
        if self.hyperprior is not None:
            population = self.family.population_text
            if method is not None and method.startswith("eb-"):
                return (f"θ_j ~ {population} with its parameters estimated by {method}; "
                        "no hyperprior is used")
            return f"θ_j ~ {population};  {self.hyperprior.describe(self.family)}"
        scope = "each θ_j" if self.pooling == "none" else "one θ shared by all groups:"
        return f"{scope} {self.theta_prior.describe(self.family).removeprefix('θ ~ ')}"

    def prior_spec(self) -> str:
        """The prior as a string that :class:`Model` parses back."""
        if self.hyperprior is not None:
            return self.hyperprior.spec()
        a, b = self.theta_prior.a, self.theta_prior.b
        name = {"beta-binomial": "beta", "gamma-poisson": "gamma"}.get(self.family.name, "normal")
        return f"{name}({a!r}, {b!r})"

    def __repr__(self) -> str:
        return (
            f"Model(family={self.family.name!r}, pooling={self.pooling!r}, "
            f"prior={self.prior_spec()!r})"
        )

    def prepare(
        self,
        data: pd.DataFrame | GroupCounts,
        *,
        y: str | None = None,
        n: str | None = None,
        group: str | None = None,
        se: str | None = None,
    ) -> GroupCounts:
        """Validate the data and reduce them to per-group statistics for this model.

        Rate families take counts ``y`` and sizes ``n``; the normal family takes estimates
        ``y`` with standard errors ``se``, or raw observations ``y`` with a ``group``
        (reduced to group means and standard errors).
        """
        if isinstance(data, GroupCounts):
            counts = data
        elif isinstance(data, pd.DataFrame):
            if y is None:
                raise SpecificationError("name the column of counts or estimates: y='...'")
            if self.family.name == "normal":
                if n is not None:
                    raise SpecificationError(
                        "the normal family takes standard errors (se=, --se), not sizes (n=)")
                counts = _estimates_as_counts(group_estimates(data, y=y, se=se, group=group))
            else:
                if se is not None:
                    raise SpecificationError(
                        f"the {self.family.name} family takes sizes (n=, --n), not se=")
                counts = group_counts(data, self.family, y=y, n=n, group=group)
        else:
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        self._check_informative(counts)
        return counts

    def _check_informative(self, data: GroupCounts) -> None:
        if self.pooling != "partial":
            return
        if data.n_groups < 2:
            raise DataError(
                f"partial pooling needs at least 2 groups, got {data.n_groups}; "
                "use --pooling complete or none for a single group"
            )
        if self.family.name == "normal" and self.hyperprior is not None:
            # with flat priors on μ and on τ (or τ²), p(τ | y) ∝ τ^(−(J−1)) (or τ^(−(J−2)))
            # for large τ: proper only for J ≥ 3 (or J ≥ 4); BDA3 §5.4, lecture 001
            least = {ReferencePrior: 3, UniformVariancePrior: 4}.get(
                type(self.hyperprior))
            if least is not None and data.n_groups < least:
                raise DataError(
                    f"with {data.n_groups} groups the {self.hyperprior.spec()!r} hyperprior "
                    f"gives an improper posterior (it needs at least {least} groups); use a "
                    "proper prior on τ, e.g. --prior 'mu=normal(0, 10), tau=halfcauchy(5)'"
                )
            return
        if self.hyperprior is not None and not self.hyperprior.proper:
            if np.all(data.y == 0):
                raise DataError(
                    "every group has y = 0, so the data cannot tell the population's rate "
                    "from zero and the posterior under the 'bda' prior is improper; use a "
                    "proper hyperprior (e.g. --prior 'halfnormal(10)') or complete pooling"
                )
            if self.family.name == "beta-binomial" and np.all(data.y == data.n):
                raise DataError(
                    "every group has y = n, so the posterior under the 'bda' prior is "
                    "improper; use a proper hyperprior (e.g. --prior 'halfnormal(10)')"
                )

    def fit(
        self,
        data: pd.DataFrame | GroupCounts,
        *,
        y: str | None = None,
        n: str | None = None,
        group: str | None = None,
        se: str | None = None,
        method: str = "exact",
        draws: int = 1000,
        chains: int = 4,
        warmup: int = 1000,
        seed: int = 0,
        progress: bool = False,
        parametrisation: str = "auto",
    ) -> Fit:
        """Fit the model and return a :class:`~poolwise.fit.Fit`.

        ``draws`` and ``warmup`` are per chain; ``warmup`` is used by the Markov chain
        methods only. The same ``seed`` gives the same draws. ``parametrisation`` is for
        ``nuts``: ``"marginal"`` integrates θ out (the default for the rate families),
        ``"non-centred"`` (the default for the normal family) and ``"centred"`` sample θ.
        """
        from poolwise.fit import Fit, check_diagnostics

        for name, value, least in (("draws", draws, 1), ("chains", chains, 1),
                                   ("warmup", warmup, 0)):
            if not isinstance(value, (int, np.integer)) or value < least:
                raise SpecificationError(f"{name} must be an integer ≥ {least}, got {value!r}")
        if parametrisation not in PARAMETRISATIONS:
            raise SpecificationError(
                f"unknown parametrisation {parametrisation!r}; valid: "
                f"{', '.join(PARAMETRISATIONS)}")
        sampler = get_method(method, self.pooling)
        counts = self.prepare(data, y=y, n=n, group=group, se=se)
        config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=int(warmup),
                               seed=int(seed), progress=progress,
                               parametrisation=parametrisation)
        start = time.perf_counter()
        result = sampler(self, counts, config)
        elapsed = time.perf_counter() - start
        fit = Fit.from_draws(self, counts, method, config, result, seconds=elapsed)
        check_diagnostics(fit, stacklevel=2)
        return fit


def _check_hyperprior(family: RateFamily, prior: HyperPrior) -> None:
    """The hyperprior must fit the family's parameters: names, and supports."""
    if isinstance(prior, UniformVariancePrior) and family.name != "normal":
        raise SpecificationError("'flat-tau2' is a prior for the normal family's (μ, τ)")
    if not isinstance(prior, IndependentPrior):
        return
    if family.name == "normal":
        if prior.names != ("mu", "tau"):
            raise SpecificationError(
                "the normal family needs a prior on each of μ and τ: write e.g. "
                "'mu=normal(0, 5), tau=halfcauchy(5)', or 'bda' (flat) or 'flat-tau2'"
            )
        if not prior.beta.positive:
            raise SpecificationError(f"τ > 0 needs a prior on (0, ∞), not {prior.beta}")
        return
    if prior.names != ("alpha", "beta"):
        raise SpecificationError(
            f"the {family.name} family's hyperparameters are α and β: write alpha=, beta=")
    for symbol, dist in (("α", prior.alpha), ("β", prior.beta)):
        if not dist.positive:
            raise SpecificationError(f"{symbol} > 0 needs a prior on (0, ∞), not {dist}")


def _estimates_as_counts(estimates: GroupEstimates) -> GroupCounts:
    """Per-group estimates and standard errors in the container every method reads
    (its second column, ``n``, holds the standard error)."""
    return GroupCounts(estimates.labels, estimates.y, estimates.se, estimates.group_name,
                       estimates.notes)
