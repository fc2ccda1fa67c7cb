"""One-level hierarchical models of per-group data with a conjugate population: rates
(beta-binomial, gamma-Poisson) and estimates with known standard errors (normal).

A :class:`Model` is family × pooling × prior × method and its settings; ``fit`` returns a
:class:`ConjugateFit`:

    y_j | θ_j ~ p(y | θ_j, n_j)        (Binomial(n_j, θ_j), Poisson(E_j θ_j), N(θ_j, σ_j²))
    θ_j | α, β ~ Pop(α, β)             (Beta, Gamma, N(μ, τ²)) — partial pooling
    α, β ~ the hyperprior

with ``pooling="none"`` (each θ_j its own fixed conjugate prior) or ``"complete"`` (one θ).
The methods (:mod:`poolwise.inference`) work with the family's maths
(:mod:`poolwise.families`); this module turns a table into group statistics, builds the
draws' tree, and answers predictions.

>>> from poolwise import Model, datasets
>>> rats = datasets.load("rats").query("historical == 1")
>>> fit = Model(family="beta-binomial", method="eb-moments").fit(rats, y="y", n="n")
>>> round(fit.eb.alpha, 4), round(fit.eb.beta, 4)
(1.3778, 8.7524)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._random import Stream, generator
from poolwise._threads import run_blocks
from poolwise.data.estimates import GroupEstimates, group_estimates
from poolwise.data.tables import GroupCounts, group_counts
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families import RateFamily, get_family
from poolwise.families.normal_normal import i_squared
from poolwise.inference import EBEstimate, get_method, methods_by_pooling
from poolwise.inference.base import draws_theta
from poolwise.inference.group_posterior import GroupSummary, summarise_groups
from poolwise.inference.quadrature import TAIL_EXPONENT, finite_moments
from poolwise.kinds.base import MIN_DRAWS, VALUE, BaseModel, Settings, group_answers
from poolwise.priors import (
    ConjugatePrior,
    Distribution,
    HyperPrior,
    ImpliedPooling,
    IndependentPrior,
    MeanConcentrationPrior,
    ReferencePrior,
    UniformVariancePrior,
    implied_pooling,
    parse_hyperprior,
    parse_theta_prior,
)
from poolwise.resources import (
    HEADROOM,
    MemoryEstimate,
    check_disk,
    check_memory,
    format_bytes,
    memory_limits,
)
from poolwise.results.checks import CheckData
from poolwise.results.decisions import DrawSource
from poolwise.results.fit import Answer, Fit, finish_fit
from poolwise.results.graph import (
    SYMBOLS,
    UNICODE_SYMBOLS,
    GraphNode,
    ModelGraph,
    Plate,
    latex,
    maths,
    number,
    prior_line,
    range_label,
)
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
from poolwise.results.summary import (
    SUMMARY_COLUMNS,
    check_prob,
    posterior_summary,
    quantile_interval,
)
from poolwise.vocabulary import MCMC_METHODS, POOLING_PHRASES, canonical_family

if TYPE_CHECKING:
    from poolwise.inference.base import Draws

__all__ = ["ConjugateFit", "Model"]

#: above this many draws × groups the pointwise log likelihood is computed when asked for
#: (by :meth:`ConjugateFit.with_log_likelihood`, e.g. for LOO), not stored with every fit
EAGER_LOG_LIKELIHOOD = 10_000_000
#: draws of the normal approximation to the empirical-Bayes estimates' sampling distribution
EB_SAMPLING_DRAWS = 20_000
#: the interval level of the group summaries stored with a fit whose θ is undrawn
STORED_CI_PROB = 0.95
#: groups whose θ draws come from one random stream (seeded by the block's index), so that
#: a group's draws do not depend on which other groups are asked for
GROUP_BLOCK = 256
#: memory per group for its summaries, the tables, figures and files written of it
#: (measured with --out at 10^6 groups, 2026-12-05: 1.37-1.47 GB peak for every family,
#: about 1.05-1.1 kB a group above the interpreter's 0.35 GB; a tenth more here)
PER_GROUP_BYTES = 1_400
#: θ values drawn and written per chunk by ``save(path, group_draws=True)``, and read per
#: chunk from such a file (64 MB)
CHUNK_VALUES = 2**23
#: arrays of one block's size that drawing a block holds at once (its draws, the sampler's)
BLOCK_COPIES = 3


class Model(BaseModel):
    """A one-level hierarchical model of per-group data.

    Parameters
    ----------
    family
        ``"beta-binomial"`` (y_j ~ Binomial(n_j, θ_j)), ``"gamma-poisson"``
        (y_j ~ Poisson(E_j θ_j)) or ``"normal"`` (alias ``"gaussian"``; an estimate
        y_j ~ N(θ_j, σ_j²) with known standard error σ_j).
    pooling
        ``"partial"`` (default): θ_j ~ Beta(α, β), Gamma(α, β) or N(μ, τ²) with a
        hyperprior; ``"none"``: each θ_j has its own fixed prior; ``"complete"``: one θ.
    prior
        Partial pooling: a hyperprior such as ``"bda"`` (default) or ``"halfnormal(10)"``
        (:mod:`poolwise.priors`). No or complete pooling: θ's fixed prior, ``"beta(a, b)"``,
        ``"gamma(a, b)"`` or ``"normal(m, s)"`` (default Jeffreys: Beta(½, ½), Gamma(½, 0),
        flat).
    method
        ``"exact"`` (default), ``"eb-moments"``, ``"eb-ml"``, ``"eb-js"`` (James–Stein:
        normal family, one known standard error), ``"gibbs"`` or ``"nuts"``
        (:data:`poolwise.inference.METHODS`; all but ``exact`` and ``nuts`` need partial
        pooling).
    draws, chains, warmup, seed, progress, target_accept
        Draws and warm-up per chain (warm-up for the Markov chain methods), the seed of
        every random stream, a progress bar, NUTS's target acceptance rate.
    parametrisation
        ``nuts`` only: ``"marginal"`` integrates θ out (the default for the rate
        families), ``"non-centred"`` (the normal family's default) or ``"centred"``.
    """

    METHODS = methods_by_pooling()
    PARAMETRISATIONS = ("marginal", "non-centred", "centred")

    def __init__(self, *, family: str | RateFamily = "beta-binomial",
                 prior: str | HyperPrior | ConjugatePrior | None = None,
                 **settings: Unpack[Settings]) -> None:
        self.family = get_family(family if isinstance(family, RateFamily)
                                 else canonical_family(family))
        self._settle({"family": self.family.name}, settings)
        if prior is not None and self.is_empirical_bayes:
            raise SpecificationError(
                f"{self.method} estimates the population's parameters from the data and "
                "uses no hyperprior: leave out prior= (--prior), or use method 'exact'")
        self.hyperprior: HyperPrior | None
        if self.pooling == "partial":
            if isinstance(prior, ConjugatePrior):
                raise SpecificationError("partial pooling needs a hyperprior on (α, β)")
            self.hyperprior = parse_hyperprior(prior if prior is not None else "bda",
                                               self.family)
            _check_hyperprior(self.family, self.hyperprior)
            self.theta_prior = parse_theta_prior(None, self.family)
        else:
            if isinstance(prior, HyperPrior):
                raise SpecificationError(f"{self.pooling_phrase} takes a fixed prior for θ")
            self.hyperprior = None
            self.theta_prior = parse_theta_prior(prior, self.family)
        if prior is not None:
            self._spec["prior"] = self.prior_spec()

    def offered_methods(self) -> Mapping[str, tuple[str, ...]]:
        """The methods for this family (James–Stein, ``eb-js``, is the normal family's)."""
        return methods_by_pooling(self.family.name)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "normal" if self.family.name == "normal" else "rates"

    @property
    def is_empirical_bayes(self) -> bool:
        return self.method.startswith("eb-")

    # ------------------------------------------------------------------ describing
    def prior_spec(self) -> str:
        """The prior as a string that :class:`Model` parses back."""
        if self.hyperprior is not None:
            return self.hyperprior.spec()
        a, b = self.theta_prior.a, self.theta_prior.b
        name = {"beta-binomial": "beta", "gamma-poisson": "gamma"}.get(self.family.name, "normal")
        return f"{name}({a!r}, {b!r})"

    def describe_prior(self, data: GroupCounts | None = None) -> str:
        """The prior in words and symbols; empirical Bayes says it uses no hyperprior."""
        if self.hyperprior is not None:
            population = self.family.population_text
            if self.is_empirical_bayes:
                return (f"θ_j ~ {population} with its parameters estimated by {self.method}; "
                        "no hyperprior is used")
            return f"θ_j ~ {population};  {self.hyperprior.describe(self.family)}"
        scope = "each θ_j" if self.pooling == "none" else "one θ shared by all groups:"
        return f"{scope} {self.theta_prior.describe(self.family).removeprefix('θ ~ ')}"

    def implied_pooling(self, data: GroupCounts | None = None) -> str | None:
        """The hyperprior's pooling factor of the median group (:class:`ImpliedPooling`):
        drawn from the hyperprior (the prior predictive's stream), so the same for every
        fit of the same model and data; None without data, or with an improper hyperprior."""
        if data is None or self.hyperprior is None or self.is_empirical_bayes:
            return None
        size = float(np.median(data.n))
        rng = generator(self.config.seed, Stream.PRIOR_PREDICTIVE, 1)
        factors = implied_pooling(self.hyperprior, self.family, size, rng)
        if factors is None:
            return None
        where = f"for a group with {self.family.size_symbol} = {size:.4g} (the median)"
        return ImpliedPooling.of(factors, where).describe()

    def title(self, data: GroupCounts) -> str:
        return (f"{self.family.name}, {self.pooling_phrase}, method {self.method}, "
                f"{data.n_groups} groups by {data.group_name!r}")

    def graph(self, data: GroupCounts | None = None) -> ModelGraph:
        """The graphical model; with ``data`` the plate shows the number of groups.

        Nodes: the data ``y`` (observed) and the group sizes ``n`` — standard errors
        ``sigma`` for the normal family — (fixed), both in the plate over groups j;
        ``theta`` (θ_j in the plate, or one θ outside it under complete pooling); under
        partial pooling the two hyperparameters (``alpha``, ``beta`` or ``mu``, ``tau``)
        above the plate, each with its hyperprior's constants as fixed dots
        (``alpha_scale``, ...; none for flat or reference priors); under no or complete
        pooling the constants ``a``, ``b`` of θ's fixed prior (none for a flat prior).

        >>> Model(family="beta-binomial", prior="halfnormal(10)").graph().parents("theta")
        ('alpha', 'beta')
        """
        family = self.family
        size_name, size_label = family.size_node
        per_group = self.pooling != "complete"
        nodes = [
            GraphNode("theta", r"$\theta_j$" if per_group else r"$\theta$", "latent"),
            GraphNode(size_name, f"${size_label}_j$", "fixed"),
            GraphNode("y", "$y_j$", "observed"),
        ]
        edges = [("theta", "y"), (size_name, "y")]
        top: list[GraphNode] = []
        if self.hyperprior is not None:
            for name, dist in _hyperprior_parts(self.hyperprior, family):
                top.append(GraphNode(name, f"${SYMBOLS.get(name, name)}$", "latent"))
                edges.append((name, "theta"))
                for param, value in zip(dist.param_names, dist.params, strict=True):
                    top.append(GraphNode(f"{name}_{param}", f"${number(value)}$", "fixed"))
                    edges.append((f"{name}_{param}", name))
        else:
            for symbol, value in _conjugate_constants(self.theta_prior):
                top.append(GraphNode(symbol, f"${symbol} = {number(value)}$", "fixed"))
                edges.append((symbol, "theta"))
        in_plate = tuple(n.name for n in nodes if per_group or n.name != "theta")
        extent = str(data.n_groups) if data is not None else "J"
        plate = Plate("groups", range_label("j", extent), in_plate)
        return ModelGraph(tuple(top + nodes), tuple(edges), (plate,),
                          f"{family.name}, {self.pooling_phrase}")

    def equations(self, data: GroupCounts | None = None) -> list[str]:
        r"""The model as LaTeX lines (no ``$`` delimiters): the likelihood, the population
        distribution of θ_j (partial pooling) and the priors with their values.

        >>> for line in Model(family="normal", pooling="complete").equations():
        ...     print(line)
        y_j \sim \mathrm{N}(\theta, \sigma_j^2), \quad j = 1, \ldots, J
        p(\theta) \propto 1
        """
        family = self.family
        theta = r"\theta_j" if self.pooling != "complete" else r"\theta"
        size = family.size_node[1]
        extent = str(data.n_groups) if data is not None else "J"
        likelihood = family.likelihood_latex.format(size=size, theta=theta)
        lines = [rf"y_j \sim {likelihood}, \quad j = 1, \ldots, {extent}"]
        if self.hyperprior is None:
            text = self.theta_prior.describe(family).removeprefix("θ ~ ")
            lines.append(prior_line("θ_j" if self.pooling == "none" else "θ", text))
            return lines
        lines.append(latex(f"θ_j ~ {family.population_text}"))
        if isinstance(self.hyperprior, IndependentPrior | MeanConcentrationPrior):
            for name, dist in _hyperprior_parts(self.hyperprior, family):
                lines.append(prior_line(UNICODE_SYMBOLS.get(name, name), str(dist)))
        else:
            lines.append(latex(maths(self.hyperprior.describe(family))))
        return lines

    # ------------------------------------------------------------------ data
    def prepare(self, data: pd.DataFrame | GroupCounts | GroupEstimates, *,
                y: str | None = None,
                n: str | None = None, se: str | None = None, group: str | None = None
                ) -> GroupCounts:
        """Validate the data and reduce them to per-group statistics for this model.

        Rate families take counts ``y`` and sizes ``n``; the normal family takes estimates
        ``y`` with standard errors ``se``, or raw observations ``y`` with a ``group``
        (reduced to group means and standard errors).
        """
        if isinstance(data, GroupEstimates) and self.family.name == "normal":
            counts = _estimates_as_counts(data)  # reduced by an engine (data/engines.py)
        elif isinstance(data, GroupCounts):
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
        if self.method == "eb-js":
            from poolwise.inference.eb import check_james_stein

            check_james_stein(np.asarray(counts.n, dtype=float))
        return counts

    def _check_informative(self, data: GroupCounts) -> None:
        if self.pooling != "partial":
            return
        if data.n_groups < 2:
            raise DataError(
                f"partial pooling needs at least 2 groups, got {data.n_groups}; "
                "use --pooling complete or none for a single group")
        if self.family.name == "normal" and self.hyperprior is not None:
            # with flat priors on μ and on τ (or τ²), p(τ | y) ∝ τ^(−(J−1)) (or τ^(−(J−2)))
            # for large τ: proper only for J ≥ 3 (or J ≥ 4); BDA3 §5.4, lecture 001
            least = {ReferencePrior: 3, UniformVariancePrior: 4}.get(type(self.hyperprior))
            if least is not None and data.n_groups < least:
                raise DataError(
                    f"with {data.n_groups} groups the {self.hyperprior.spec()!r} hyperprior "
                    f"gives an improper posterior (it needs at least {least} groups); use a "
                    "proper prior on τ, e.g. --prior 'mu=normal(0, 10), tau=halfcauchy(5)'")
            return
        # (empirical Bayes uses no hyperprior; its estimators refuse such data themselves)
        if (self.hyperprior is not None and not self.hyperprior.proper
                and not self.is_empirical_bayes):
            if np.all(data.y == 0):
                raise DataError(
                    "every group has y = 0, so the data cannot tell the population's rate "
                    "from zero and the posterior under the 'bda' prior is improper; use a "
                    "proper hyperprior (e.g. --prior 'halfnormal(10)') or complete pooling")
            if self.family.name == "beta-binomial" and np.all(data.y == data.n):
                raise DataError(
                    "every group has y = n, so the posterior under the 'bda' prior is "
                    "improper; use a proper hyperprior (e.g. --prior 'halfnormal(10)')")

    def memory_estimate(self, data: GroupCounts) -> MemoryEstimate:
        """θ's draws where the method keeps them (Markov chains always; exact and empirical
        Bayes below :data:`~poolwise.inference.base.GROUP_DRAWS_LIMIT`), the pointwise log
        likelihood stored with them, the replicated data of the check, NUTS's coordinates,
        and :data:`PER_GROUP_BYTES` for each group's summaries, tables and files."""
        groups = data.n_groups
        draws = self.config.chains * self.config.draws
        keeps_theta = self.keeps_theta(groups)
        marginal = self.method == "nuts" and self.config.parametrisation in ("auto", "marginal") \
            and self.family.name != "normal"
        return self._draws_estimate(
            stored=(groups if keeps_theta else 0) + 6,
            sampled=(2 if marginal else groups + 2) if self.method == "nuts" else 0,
            pointwise=groups if keeps_theta and draws * groups <= EAGER_LOG_LIKELIHOOD else 0,
            observed=groups, jax=self.method == "nuts",
            other=[("group summaries, tables and files", groups * PER_GROUP_BYTES)])

    def keeps_theta(self, groups: int) -> bool:
        """Whether a fit of ``groups`` groups keeps θ's draws: Markov chains always, exact
        and empirical Bayes below :data:`~poolwise.inference.base.GROUP_DRAWS_LIMIT`."""
        return self.method in ("gibbs", "nuts") or draws_theta(self.config, groups)

    def save_draws_estimate(self, data: GroupCounts) -> tuple[int, int]:
        """θ's draws that ``fit.save(path, group_draws=True)`` writes where the fit does not
        keep them (bytes in the file), and the memory of the chunks it writes them in."""
        if self.keeps_theta(data.n_groups):
            return 0, 0
        draws = self.config.chains * self.config.draws
        return draws * data.n_groups * VALUE, 2 * _chunk_groups(draws) * draws * VALUE

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | GroupCounts, *, y: str | None = None,
            n: str | None = None, se: str | None = None, group: str | None = None
            ) -> ConjugateFit:
        """Fit the model to ``data`` (see :meth:`prepare` for the columns)."""
        counts = self.prepare(data, y=y, n=n, se=se, group=group)
        self.check_memory(counts)
        sampler = get_method(self.method)
        start = time.perf_counter()
        draws = sampler(self, counts, self.config)
        fit = ConjugateFit.from_draws(self, counts, draws,
                                      seconds=time.perf_counter() - start)
        return finish_fit(fit, stacklevel=2)

    def _tree(self, data: GroupCounts, draws: Draws, info: dict[str, Any]) -> xr.DataTree:
        """The draws in ArviZ's layout, with the model's spec in the attributes."""
        family = self.family
        posterior: dict[str, NDArray] = {}
        if draws.alpha is not None and draws.beta is not None:
            a_name, b_name = family.hyper_names
            posterior |= {a_name: draws.alpha, b_name: draws.beta,
                          **family.derived(draws.alpha, draws.beta)}
            if family.name == "normal":
                posterior |= self._meta_analysis(data, draws.alpha, draws.beta)
        groups: dict[str, dict[str, NDArray]] = {}
        if draws.theta is not None:
            posterior["theta"] = draws.theta
            if draws.theta.size <= EAGER_LOG_LIKELIHOOD:
                groups["log_likelihood"] = {
                    "y": family.log_likelihood(draws.theta, data.y, data.n)}
        else:  # θ undrawn: each group's summary from the hyperparameter draws, stored
            hyper = (None if draws.alpha is None or draws.beta is None
                     else (draws.alpha, draws.beta))
            summary = summarise_groups(family, *self.conditionals(data, hyper, draws.eb),
                                       STORED_CI_PROB)
            groups["group_summary"] = summary.variables()
        if posterior:
            groups = {"posterior": posterior, **groups}
        groups["observed_data"] = {"y": data.y, "n": data.n}
        if draws.sample_stats:
            groups["sample_stats"] = draws.sample_stats
        attrs = record_attrs(
            self.kind, self.spec(),
            {"group_name": data.group_name, "notes": list(data.notes)},
            {"eb": _eb_to_dict(draws.eb), "prior": self.describe_prior(data), "info": info})
        # complete pooling summarises its one θ (dimension "pooled", of length 1)
        summarised = "pooled" if self.pooling == "complete" else "group"
        dims = {"theta": ["group"], "y": ["group"], "n": ["group"],
                **{name: [summarised] for name in groups.get("group_summary", {})}}
        tree = _arviz.make_datatree(groups, dims=dims, coords={"group": data.labels},
                                    attrs=attrs)
        if "group_summary" in groups:
            tree["group_summary"].attrs.update(summary.attributes())
        return tree

    def conditionals(self, data: GroupCounts,
                     hyper: tuple[NDArray, NDArray] | None, eb: EBEstimate | None
                     ) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """What each θ_j's posterior mixes (:func:`summarise_groups`): the parameters
        (α_s, β_s) of the population at each hyperparameter draw — under empirical Bayes
        the draws of the Kass–Steffey correction
        (:func:`~poolwise.inference.eb.corrected_hyperparameters`) or the one estimate
        (plug-in), θ's fixed prior under no pooling — and the data (y_j, n_j); under
        complete pooling the fixed prior and the data pooled into one group."""
        if eb is not None:
            from poolwise.inference.eb import corrected_hyperparameters

            config = self.config
            if eb.corrected:
                corrected = corrected_hyperparameters(self.family, eb, data,
                                                      config.chains * config.draws,
                                                      config.seed)[0]
                if corrected is not None:
                    return *corrected, data.y, data.n
            return np.array([eb.alpha]), np.array([eb.beta]), data.y, data.n
        if self.pooling == "partial":
            if hyper is None:
                raise SpecificationError("partial pooling without hyperparameter draws")
            return np.ravel(hyper[0]), np.ravel(hyper[1]), data.y, data.n
        prior = np.array([self.theta_prior.a]), np.array([self.theta_prior.b])
        if self.pooling == "none":
            return *prior, data.y, data.n
        y, n = self.family.pool(data.y, data.n)
        return *prior, np.array([y]), np.array([n])

    def _meta_analysis(self, data: GroupCounts, mu: NDArray, tau: NDArray
                       ) -> dict[str, NDArray]:
        """A meta-analysis's answers at each draw of (μ, τ): a new study's true effect
        θ_new ~ N(μ, τ²) (the prediction interval) and I² = τ²/(τ² + s²). θ_new are the
        very draws ``fit.predict(NewGroup())`` makes (the same stream), so the summary,
        the prediction and its figure agree."""
        rng = generator(self.config.seed, Stream.PREDICT)
        theta_new = self.family.sample_population(rng, np.ravel(mu), np.ravel(tau))
        return {"theta_new": theta_new.reshape(np.shape(mu)), "I2": i_squared(tau, data.n)}

    # ------------------------------------------------------------------ checks
    def check_data(self, data: GroupCounts, replicated: Mapping[str, NDArray]
                   ) -> list[CheckData]:
        """Each group's raw rate y_j/n_j (estimate y_j for the normal family), observed
        and replicated."""
        if self.family.name == "normal":
            return [CheckData("y", data.y, np.asarray(replicated["y"]), data.labels,
                              label="estimate y", one_per_group=True)]
        return [CheckData("y/n", data.y / data.n, np.asarray(replicated["y"]) / data.n,
                          data.labels, label=self.family.raw_label, one_per_group=True)]

    def _prior_draws(self, data: GroupCounts, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """(α, β) from a proper hyperprior, θ_j ~ Pop(α, β), y_j ~ p(y | θ_j, n_j); or θ from
        a proper fixed prior."""
        family = self.family
        prior: dict[str, tuple[NDArray, list[str]]] = {}
        if self.hyperprior is not None:
            if not self.hyperprior.proper:
                raise SpecificationError(
                    f"the hyperprior {self.hyperprior.spec()!r} is improper, so it has no "
                    "prior predictive; give a proper one, e.g. 'halfnormal(10)' (rates) or "
                    "'mu=normal(0, 10), tau=halfcauchy(5)' (normal)")
            alpha, beta = self.hyperprior.sample(family, rng, size)
            a_name, b_name = family.hyper_names
            prior = {a_name: (alpha, []), b_name: (beta, [])}
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                theta = family.sample_population(rng, alpha[:, None],
                                                 np.broadcast_to(beta[:, None],
                                                                 (size, data.n_groups)))
        else:
            a, b = self.theta_prior.a, self.theta_prior.b
            if not self.theta_prior.proper(family):
                raise SpecificationError(
                    f"θ's prior {self.theta_prior.describe(family)} is improper, so it has no "
                    "prior predictive; give a proper one with --prior")
            shape = (size, data.n_groups if self.pooling == "none" else 1)
            theta = family.sample_population(rng, np.full(shape, a), np.full(shape, b))
            theta = np.broadcast_to(theta, (size, data.n_groups))
        prior["theta"] = (np.asarray(theta, dtype=float), ["group"])
        y = family.sample_data(rng, np.asarray(theta), data.n).astype(float)
        return prior, {"y": (y, ["group"])}, {"group": data.labels}

    def _with_simulated(self, data: GroupCounts, simulated: Mapping[str, NDArray]
                        ) -> GroupCounts:
        """The groups with simulated counts (estimates), their sizes (standard errors) kept."""
        return replace(data, y=np.asarray(simulated["y"], dtype=float))

    def _fitted_draws(self, fit: Fit, rng: np.random.Generator, size: int
                      ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                 dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """θ_j ~ Pop(α̂, β̂) at the empirical-Bayes estimates, y_j ~ p(y | θ_j, n_j)."""
        data, eb = fit.data, getattr(fit, "eb", None)
        if eb is None:
            raise SpecificationError(f"method {self.method!r} has no estimates to simulate from")
        shape = (size, data.n_groups)
        theta = self.family.sample_population(rng, np.full(shape, eb.alpha),
                                              np.full(shape, eb.beta))
        y = self.family.sample_data(rng, np.asarray(theta), data.n).astype(float)
        return ({"theta": (np.asarray(theta, dtype=float), ["group"])},
                {"y": (y, ["group"])}, {"group": data.labels})


def _check_hyperprior(family: RateFamily, prior: HyperPrior) -> None:
    """The hyperprior must fit the family's parameters: names, and supports."""
    if isinstance(prior, UniformVariancePrior) and family.name != "normal":
        raise SpecificationError("'flat-tau2' is a prior for the normal family's (μ, τ)")
    if isinstance(prior, MeanConcentrationPrior):
        _check_mean_concentration(family, prior)
    if not isinstance(prior, IndependentPrior):
        return
    if family.name == "normal":
        if prior.names != ("mu", "tau"):
            raise SpecificationError(
                "the normal family needs a prior on each of μ and τ: write e.g. "
                "'mu=normal(0, 5), tau=halfcauchy(5)', or 'bda' (flat) or 'flat-tau2'")
        if not prior.beta.positive:
            raise SpecificationError(f"τ > 0 needs a prior on (0, ∞), not {prior.beta}")
        return
    if prior.names != ("alpha", "beta"):
        raise SpecificationError(
            f"the {family.name} family's hyperparameters are α and β: write alpha=, beta=")
    for symbol, dist in (("α", prior.alpha), ("β", prior.beta)):
        if not dist.positive:
            raise SpecificationError(f"{symbol} > 0 needs a prior on (0, ∞), not {dist}")


def _check_mean_concentration(family: RateFamily, prior: MeanConcentrationPrior) -> None:
    """μ in (0, 1) for beta-binomial and > 0 for gamma-Poisson; κ > 0; rate families only."""
    if family.name == "normal":
        raise SpecificationError(
            "the normal family's population is N(μ, τ²): write e.g. "
            "'mu=normal(0, 5), tau=halfstudentt(4, 5)', not a concentration kappa=")
    support, example = (("unit", "beta(2, 20)") if family.name == "beta-binomial"
                        else ("positive", "lognormal(-7, 1)"))
    if prior.mean.support != support:
        where = "(0, 1)" if support == "unit" else "(0, ∞)"
        raise SpecificationError(
            f"the {family.name} population's mean μ lies in {where}: give it a prior there, "
            f"e.g. mu={example}, not {prior.mean}")
    if not prior.concentration.positive:
        raise SpecificationError(
            f"the concentration κ > 0 needs a prior on (0, ∞), e.g. kappa=lognormal(3, 1), "
            f"not {prior.concentration}")


def _estimates_as_counts(estimates: GroupEstimates) -> GroupCounts:
    """Per-group estimates and standard errors in the container every method reads
    (its second column, ``n``, holds the standard error)."""
    return GroupCounts(estimates.labels, estimates.y, estimates.se, estimates.group_name,
                       estimates.notes)


def _hyperprior_parts(prior: HyperPrior, family: RateFamily
                      ) -> list[tuple[str, Distribution]]:
    """Each hyperparameter's name and its own prior; flat for a joint prior without
    constants (the reference priors)."""
    if isinstance(prior, IndependentPrior):
        return list(zip(family.hyper_names, (prior.alpha, prior.beta), strict=True))
    if isinstance(prior, MeanConcentrationPrior):
        return [("mu", prior.mean), ("kappa", prior.concentration)]
    flat = Distribution("flat", ())
    return [(name, flat) for name in family.hyper_names]


def _conjugate_constants(prior: ConjugatePrior) -> list[tuple[str, float]]:
    """The constants (a, b) of θ's fixed prior; none for the normal family's flat prior."""
    if math.isinf(prior.b):
        return []
    return [("a", prior.a), ("b", prior.b)]


# --------------------------------------------------------------------------- the fit
@dataclass(frozen=True, repr=False)  # Fit.__repr__: one line, not the tree
class ConjugateFit(Fit):
    """Draws of a :class:`Model`: ``alpha, beta, mu, kappa`` (``mu, tau`` for the normal
    family) and ``theta`` per group; ``eb`` holds empirical-Bayes estimates."""

    eb: EBEstimate | None = None
    #: use every ``draw_step``-th draw of each chain (a thinned copy, for predictive checks)
    draw_step: int = 1
    #: θ's draws (chain, draw, group) left in the file the fit was loaded from (one saved
    #: with ``group_draws=True``): file-backed, read a slice at a time
    file_theta: xr.Variable | None = None

    model: Model
    data: GroupCounts

    @classmethod
    def from_draws(cls, model: Model, data: GroupCounts, draws: Draws, *,
                   seconds: float = 0.0) -> ConjugateFit:
        """The fit made of a method's ``draws`` of ``model`` on ``data``."""
        info = {**draws.info, "seconds": seconds}
        return cls(model, data, model._tree(data, draws, info), info, draws.eb)

    # ------------------------------------------------------------------ group draws
    @property
    def stores_group_draws(self) -> bool:
        """Whether the posterior holds θ's draws (below
        :data:`~poolwise.inference.base.GROUP_DRAWS_LIMIT`); if not, each group is
        summarised from the hyperparameter draws and θ is drawn when asked for."""
        return "posterior" in self.tree.children and "theta" in self.tree["posterior"]

    def _hyper_draws(self) -> tuple[NDArray, NDArray] | None:
        """The hyperparameter draws (chain, draw) behind θ's conditionals (every
        ``draw_step``-th), or None under no or complete pooling and empirical Bayes."""
        a_name, b_name = self.model.family.hyper_names
        if self.eb is not None or "posterior" not in self.tree.children \
                or a_name not in self.tree["posterior"]:
            return None
        step = slice(None, None, self.draw_step)
        return self.draws(a_name)[:, step], self.draws(b_name)[:, step]

    def _draw_shape(self) -> tuple[int, int]:
        """(chains, draws) of θ's draws, thinned by ``draw_step``."""
        draws = -(-self.config.draws // self.draw_step)
        return self.config.chains, draws

    def group_draws(self, groups: Sequence[int] | NDArray[np.intp] | None = None
                    ) -> NDArray[np.float64]:
        """θ's draws (chain, draw, group) for the groups at the indices ``groups`` (all by
        default): the stored ones, those in the file the fit was loaded from (saved with
        ``group_draws=True``), or drawn now from θ_j's conditional given each
        hyperparameter draw (the estimates under empirical Bayes, θ's fixed prior under no
        pooling), :data:`GROUP_BLOCK` groups per random stream — the same draws whichever
        way, for a given seed.

        Raises
        ------
        ResourceError
            When the draws asked for would not fit in the memory available
            (:func:`poolwise.resources.check_memory`); the line names what would.
        """
        chosen = (np.arange(self.data.n_groups) if groups is None
                  else np.asarray(groups, dtype=np.intp).ravel())
        if chosen.size and (chosen.min() < 0 or chosen.max() >= self.data.n_groups):
            raise SpecificationError(
                f"group indices run from 0 to {self.data.n_groups - 1}, got "
                f"{int(chosen.min() if chosen.min() < 0 else chosen.max())}")
        chains, draws = self._draw_shape()
        self._check_group_draws(chains * draws, chosen.size)
        return self._group_draws(chosen)

    def _group_draws(self, chosen: NDArray[np.intp]) -> NDArray[np.float64]:
        """:meth:`group_draws` of valid indices, without the memory check."""
        if self.stores_group_draws:
            stored = self.draws("theta")[:, ::self.draw_step]
            return stored[..., chosen]
        chains, draws = self._draw_shape()
        if self.file_theta is not None:
            out = np.empty((chains, draws, chosen.size))
            for _, where in _spans(chosen, _chunk_groups(chains * self.config.draws)):
                low, high = chosen[where].min(), chosen[where].max() + 1
                part = self.file_theta[:, ::self.draw_step, low:high].values
                out[..., where] = part[..., chosen[where] - low]
            return out
        hyper = self._hyper_draws()
        alpha, beta, y, n = self.model.conditionals(self.data, hyper, self.eb)
        if self.model.pooling == "complete":
            common = self._block_draws(0, alpha, beta, y, n, chains * draws)
            return np.broadcast_to(common.reshape(chains, draws, 1),
                                   (chains, draws, chosen.size)).copy()
        out = np.empty((chains * draws, chosen.size))

        def fill(span: tuple[int, NDArray[np.intp]]) -> None:
            start, where = span
            members = slice(start, start + GROUP_BLOCK)
            values = self._block_draws(start // GROUP_BLOCK, alpha, beta, y[members],
                                       n[members], chains * draws)
            out[:, where] = values[:, chosen[where] - start]

        run_blocks(fill, list(_spans(chosen, GROUP_BLOCK)))
        return out.reshape(chains, draws, chosen.size)

    def theta_at(self, draws: Sequence[int] | NDArray[np.intp]) -> NDArray[np.float64]:
        """θ of every group at the posterior draws ``draws`` (indices into the chain-major
        flattening of (chain, draw)), shaped (len(draws), groups): the stored draws, or
        drawn now from each θ_j's conditional given that draw's hyperparameters (the
        estimates under empirical Bayes, θ's fixed prior under no pooling), one random
        stream per (chain, draw), so that a draw's θ does not depend on which other draws
        are asked for. With :meth:`group_draws`, which streams by block of groups, the two
        are different draws of the same posterior."""
        chains, per_chain = self._draw_shape()
        index = np.asarray(draws, dtype=np.intp).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= chains * per_chain):
            raise SpecificationError(f"draw indices run from 0 to {chains * per_chain - 1}")
        groups = self.data.n_groups
        if self.stores_group_draws:
            return self.draws("theta")[:, ::self.draw_step].reshape(-1, groups)[index]
        alpha, beta, y, n = self.model.conditionals(self.data, self._hyper_draws(), self.eb)
        out = np.empty((index.size, groups))
        for row, flat in enumerate(index):
            chain, draw = divmod(int(flat), per_chain)
            rng = generator(self.seed, Stream.CONDITIONAL_AT_DRAW, chain, draw * self.draw_step)
            at = flat if alpha.size > 1 else 0
            out[row] = self.model.family.sample_conditional(rng, alpha[at], beta[at], y, n)
        return out

    def draw_source(self, parameter: str | None = None) -> DrawSource:
        """θ's draws: the stored ones, or :meth:`theta_at` when the fit keeps none."""
        if self.stores_group_draws or (parameter is not None and parameter.strip() != "theta"):
            return super().draw_source(parameter)
        if self.model.pooling == "complete":
            raise SpecificationError("theta is the same in every group (complete pooling): "
                                     "there is nothing to rank")
        chains, per_chain = self._draw_shape()
        return DrawSource("theta", np.asarray(self.data.labels, dtype=str),
                          self.group_summary().mean, chains * per_chain, self.theta_at,
                          lambda groups: self.group_draws(groups).reshape(-1, groups.size))

    def _check_group_draws(self, draws: int, groups: int) -> None:
        """Refuse, with one line, θ's draws for ``groups`` groups × ``draws`` draws that
        would not fit in the memory available, naming what would: fewer groups at a time,
        every group's draws written to a file, fewer draws."""
        # a block drawn whole however few of its groups are asked for; a file read a span
        # of up to a chunk at a time
        span = _chunk_groups(draws)
        working = VALUE * draws * max(GROUP_BLOCK * BLOCK_COPIES, min(groups, span))
        estimate = MemoryEstimate((("θ draws", VALUE * draws * groups),
                                   ("working arrays", working)))
        if estimate.fits():
            return
        usable = HEADROOM * (memory_limits().available or 0) - working
        options = []
        fewer = int(usable // (VALUE * draws))
        if fewer >= 1:
            options.append(f"fit.group_draws(indices) with at most {fewer:,} groups at a time")
        if self.file_theta is None:
            options.append("--save-draws (fit.save(path, group_draws=True)) to write every "
                           "group's draws into posterior.nc in chunks")
        per_chain = int(usable // (VALUE * groups * self.config.chains))
        if MIN_DRAWS <= per_chain < self.config.draws:
            options.append(f"draws={per_chain} (--draws {per_chain}) in a new fit")
        check_memory(estimate, what=f"drawing θ for {groups:,} groups × {draws:,} draws",
                     alternatives=options)

    def _block_draws(self, block: int, alpha: NDArray, beta: NDArray, y: NDArray,
                     n: NDArray, size: int) -> NDArray[np.float64]:
        """θ draws (size, groups) of one block of groups, from the block's own stream."""
        rng = generator(self.seed, Stream.CONDITIONAL, block)
        alpha = np.broadcast_to(alpha, size)[:, None]
        beta = np.broadcast_to(beta, size)[:, None]
        return np.asarray(self.model.family.sample_conditional(rng, alpha, beta, y, n),
                          dtype=float)

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw, ...); θ is drawn now when
        the fit does not store it (:meth:`group_draws`)."""
        if name == "theta" and not self.stores_group_draws:
            return self.group_draws()
        return super().draws(name)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path, *, group_draws: bool = False,
             progress: Callable[[int, int], None] | None = None) -> None:
        """Write the fit to NetCDF; :func:`poolwise.load` reads it back.

        With ``group_draws`` a fit that does not keep θ's draws (above
        :data:`~poolwise.inference.base.GROUP_DRAWS_LIMIT`) writes every group's into the
        posterior as ``theta`` (chain, draw, group), in chunks of groups, never the whole
        draws × groups matrix in memory; the file grows by draws × groups × 8 bytes.
        ``poolwise.load`` leaves them in the file and :meth:`group_draws` reads the groups
        asked for. ``progress(groups written, groups)`` is called after each chunk.

        Raises
        ------
        ResourceError
            When the draws would not fit on the disk (or one chunk in memory).
        """
        if not group_draws or self.stores_group_draws:
            super().save(path)
            return
        chains, draws = self._draw_shape()
        groups = self.data.n_groups
        span = _chunk_groups(chains * draws)
        check_memory(MemoryEstimate((("group draws written in chunks",
                                      2 * span * chains * draws * VALUE),)),
                     what=f"writing θ's draws {span:,} groups at a time", alternatives=[])
        check_disk(chains * draws * groups * VALUE, Path(path).parent,
                   what=f"saving θ's draws of {groups:,} groups × {chains * draws:,} draws",
                   alternatives=["fit.save(path) without group_draws (--save-draws), and "
                                 "fit.group_draws(indices) for the groups needed"])
        tree = self.tree.copy()
        posterior = (tree["posterior"].to_dataset() if "posterior" in tree.children else
                     xr.Dataset(coords={"chain": np.arange(chains), "draw": np.arange(draws)}))
        tree["posterior"] = xr.DataTree(posterior.assign_coords(group=self.data.labels))

        def chunks() -> Iterator[tuple[slice, NDArray[np.float64]]]:
            for start in range(0, groups, span):
                stop = min(start + span, groups)
                yield slice(start, stop), self._group_draws(np.arange(start, stop))
                if progress is not None:
                    progress(stop, groups)

        _arviz.save_in_chunks(tree, path, group="posterior", name="theta",
                              dims=("chain", "draw", "group"), shape=(chains, draws, groups),
                              chunks=chunks())

    def draws_note(self, file: str | None = None) -> str | None:
        """Where θ's draws are, in one line, for a fit that does not keep them in memory
        (None for one that does): not kept, and how to get them; or in ``file`` (the file
        this fit was loaded from by default), where they were written in chunks."""
        if self.stores_group_draws:
            return None
        draws = self.config.chains * self.config.draws
        groups = self.data.n_groups
        size = f"{groups:,} groups × {draws:,} draws, {format_bytes(VALUE * draws * groups)}"
        if file is None and self.file_theta is not None:
            file = Path(self.file_theta.encoding["source"]).name
        if file is not None:
            return (f"θ's draws of every group ({size}) are in {file}, written in chunks; "
                    "poolwise.load reads the groups asked for (fit.group_draws(indices))")
        return (f"θ's draws are not kept ({size}): the group rows are summarised without "
                "them; fit.group_draws(indices) draws those of the groups asked for, and "
                "--save-draws (fit.save(path, group_draws=True)) writes every group's into "
                "posterior.nc in chunks")

    def observed_values(self) -> int:
        """One y_j per group (n_j, also in ``observed_data``, is the group's size)."""
        return self.data.n_groups

    def _thinned(self, limit: int) -> ConjugateFit:
        if self.stores_group_draws:
            return super()._thinned(limit)  # type: ignore[return-value]
        per_draw = max(self.data.n_groups, 1)
        step = -(-self.config.chains * self.config.draws * per_draw // limit)
        return replace(self, draw_step=max(step, 1))

    # ------------------------------------------------------------------ summaries
    def group_summary(self, ci_prob: float = 0.95) -> GroupSummary:
        """Each θ_j's posterior mean, sd, equal-tailed interval and pooling factor, with
        their Monte Carlo errors, from the hyperparameter draws
        (:func:`~poolwise.inference.group_posterior.summarise_groups`): means and sds
        Rao-Blackwellised, interval ends from the mixture of θ_j's conditionals, no
        draws × groups matrix. A fit that does not store θ's draws stores this at 95 %."""
        check_prob(ci_prob)
        if ("group_summary", ci_prob) in self._memo:
            return self._memo["group_summary", ci_prob]
        stored = self.tree.children.get("group_summary")
        if stored is not None and float(stored.attrs["ci_prob"]) == ci_prob:
            dataset = stored.to_dataset()
            summary = GroupSummary.from_stored(
                {str(name): dataset[name].values for name in dataset.data_vars},
                {str(key): value for key, value in stored.attrs.items()})
        else:
            summary = summarise_groups(self.model.family, *self.model.conditionals(
                self.data, self._hyper_draws(), self.eb), ci_prob)
            if self.eb is not None and self.eb.corrected:
                # the mean stays the empirical-Bayes estimate E[θ_j | y, α̂, β̂], with its
                # pooling factor; the sd and interval are the Kass–Steffey mixture's
                point = summarise_groups(self.model.family, np.array([self.eb.alpha]),
                                         np.array([self.eb.beta]), self.data.y,
                                         self.data.n, ci_prob)
                summary = replace(summary, mean=point.mean, mcse_mean=point.mcse_mean,
                                  pooling_factor=point.pooling_factor)
        self._memo["group_summary", ci_prob] = summary
        return summary

    def interval_notes(self, ci_prob: float = 0.95) -> dict[str, str]:
        """Empirical Bayes: what θ_j's intervals are (Kass–Steffey or plug-in,
        :func:`~poolwise.inference.eb_intervals.interval_note`)."""
        if self.eb is None:
            return {}
        notes = {"theta": self.eb.intervals} if self.eb.intervals else {}
        if self.eb.uv_covariance is not None:
            family = self.model.family  # the population rows of _summary_eb
            names = [*family.hyper_names, *family.derived(self.eb.alpha, self.eb.beta)]
            if family.name == "normal":
                names.append("I2")
            notes[", ".join(names)] = (
                "sampling distribution: the estimates' normal approximation N(η̂, I(η̂)⁻¹) "
                "in (u, v), transformed; an interval for the estimate, not a posterior")
        return notes

    def _summary(self, ci_prob: float, diagnostics: bool) -> pd.DataFrame:
        if self.eb is not None:
            return self._summary_eb(ci_prob)
        if not self.stores_group_draws:
            hyper = (posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics)
                     if "posterior" in self.tree.children else None)
            table = pd.concat([hyper, self._group_rows(ci_prob)], ignore_index=True)
        else:
            shared = ("theta",) if self.model.pooling == "complete" else ()
            table = self._with_pooling_factors(posterior_summary(
                self.posterior, ci_prob, diagnostics=diagnostics, group_dims=("group",),
                shared=shared))
        return self._without_infinite_moments(table)

    def infinite_moments(self) -> dict[str, list[str]]:
        """The variables whose posterior mean or sd does not exist → which ("mean", "sd"):
        those that grow as e^v (:attr:`~poolwise.families.base.RateFamily.grow_with_v`) when
        the measured tail of p(v | y) is too heavy (:func:`finite_moments`): measured by
        the exact method as it grids, past the draws for the Markov chains; empty for
        empirical Bayes (point estimates) and no or complete pooling."""
        if TAIL_EXPONENT in self.info:
            exponent = self.info[TAIL_EXPONENT]
        elif self.method in MCMC_METHODS and self.model.pooling == "partial":
            exponent = self._measured_tail()
        else:
            return {}
        moments = finite_moments(exponent)
        missing = ["mean", "sd"][moments:]
        names = [n for n in self.model.family.grow_with_v
                 if "posterior" in self.tree.children and n in self.posterior]
        return {name: missing for name in names} if missing else {}

    def _measured_tail(self) -> float | None:
        """The tail exponent of p(v | y) for a Markov chain's fit, measured past its draws
        (:func:`~poolwise.inference.exact.measured_tail`), once."""
        if "tail" not in self._memo:
            from poolwise.inference.exact import measured_tail

            hyper = self.hyperparameter_draws()
            assert hyper is not None  # partial pooling
            u, v = self.model.family.to_uv(*hyper)
            self._memo["tail"] = measured_tail(self.model, self.data, np.asarray(u),
                                               np.asarray(v))
        tail: float | None = self._memo["tail"]
        return tail

    def _without_infinite_moments(self, table: pd.DataFrame) -> pd.DataFrame:
        """The summary with the moments that do not exist (and their errors) left out:
        a sample mean of draws from a distribution without one is a number that means
        nothing (its medians and intervals stay)."""
        for name, missing in self.infinite_moments().items():
            rows = (table["param"] == name).to_numpy()
            columns = [*missing, *(["mcse_mean"] if "mean" in missing else [])]
            table.loc[rows, columns] = np.nan
        return table

    def _group_rows(self, ci_prob: float) -> pd.DataFrame:
        """θ's rows of the summary from :meth:`group_summary` (one row, for the common θ,
        under complete pooling)."""
        summary = self.group_summary(ci_prob)
        if self.model.pooling == "complete":
            table = _theta_rows(summary, np.array([""]))
            table["group"] = None
            table["pooling_factor"] = 1.0
            return table
        table = _theta_rows(summary, self.data.labels)
        if self.model.pooling == "none":
            table["pooling_factor"] = 0.0
        return table

    @classmethod
    def comparison_table(cls, fits: Mapping[str, Fit], ci_prob: float = 0.95) -> pd.DataFrame:
        """Per group: the data, the raw rate and each fit's mean and interval of θ_j (a
        complete-pooling fit's one θ on every row)."""
        data = next(iter(fits.values())).data
        family = next(iter(fits.values())).model.family
        table = pd.DataFrame({"group": data.labels, "y": data.y, "n": data.n,
                              "raw": family.raw_rate(data.y, data.n)})
        for label, fit in fits.items():
            theta = fit.summary(ci_prob, diagnostics=False).query("param == 'theta'")
            if len(theta) == 1:  # one row for the common θ, the same for every group
                theta = pd.concat([theta] * data.n_groups, ignore_index=True)
            for column in ("mean", "lower", "upper"):
                table[f"{label}_{column}"] = theta[column].to_numpy()
        return table

    def pooling_factors(self) -> pd.Series:
        """Posterior mean of each group's pooling factor B_j, the weight of the population
        mean in E[θ_j | y, hyperparameters]: 0 is no pooling, 1 complete pooling; indexed
        by group.

        B_j = σ_j²/(σ_j² + τ²) (normal), (α+β)/(α+β+n_j) (beta-binomial), β/(β+E_j)
        (gamma-Poisson).
        """
        index = pd.Index(self.data.labels, name=self.data.group_name)
        if self.model.pooling != "partial":
            value = 1.0 if self.model.pooling == "complete" else 0.0
            return pd.Series(np.full(self.data.n_groups, value), index=index,
                             name="pooling_factor")
        if not self.stores_group_draws:
            return pd.Series(self.group_summary().pooling_factor, index=index,
                             name="pooling_factor")
        hyper = self.hyperparameter_draws()
        assert hyper is not None  # partial pooling has hyperparameters
        factors = self.model.family.pooling_factor(hyper[0][:, None], hyper[1][:, None],
                                                   self.data.n)
        return pd.Series(np.asarray(np.mean(factors, axis=0), dtype=float), index=index,
                         name="pooling_factor")

    def _with_pooling_factors(self, table: pd.DataFrame) -> pd.DataFrame:
        theta = (table["param"] == "theta").to_numpy()
        if theta.sum() == self.data.n_groups:
            table.loc[theta, "pooling_factor"] = self.pooling_factors().to_numpy()
        elif theta.sum() == 1:  # complete pooling: one row for the common θ
            table.loc[theta, "pooling_factor"] = 1.0
        return table

    def eb_sampling_draws(self, size: int = EB_SAMPLING_DRAWS
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Draws of (α̂, β̂) from the normal approximation of the empirical-Bayes estimates'
        sampling distribution in (u, v); None without standard errors."""
        eb = self.eb
        if eb is None or eb.uv_covariance is None:
            return None
        family = self.model.family
        rng = generator(self.seed, Stream.SUMMARY)
        centre = np.array(family.to_uv(eb.alpha, eb.beta), dtype=float)
        uv = rng.multivariate_normal(centre, eb.uv_covariance, size=size)
        a, b = family.from_uv(uv[:, 0], uv[:, 1])
        return np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def _summary_eb(self, ci_prob: float) -> pd.DataFrame:
        assert self.eb is not None
        family, eb = self.model.family, self.eb
        rows = []
        a_name, b_name = family.hyper_names
        hyper = {a_name: eb.alpha, b_name: eb.beta,
                 **{k: float(v) for k, v in family.derived(eb.alpha, eb.beta).items()}}
        # the estimates' spread: their sampling distribution's normal approximation
        spread: dict[str, dict[str, float]] = {}
        sampled = self.eb_sampling_draws()
        if sampled is not None:
            a, b = sampled
            spread = {name: self._spread(np.asarray(sims), ci_prob) for name, sims in
                      {a_name: a, b_name: b, **family.derived(a, b)}.items()}
        rows += [{"param": name, "group": None, "mean": value, **spread.get(name, {})}
                 for name, value in hyper.items()]
        if family.name == "normal":  # given the estimates: θ_new ~ N(μ̂, τ̂²), I² at τ̂
            new = family.population(eb.alpha, eb.beta)
            rows += [{"param": "theta_new", "group": None, "mean": eb.alpha, "sd": eb.beta,
                      "lower": float(new.ppf((1 - ci_prob) / 2)),
                      "upper": float(new.ppf((1 + ci_prob) / 2))},
                     {"param": "I2", "group": None,
                      "mean": float(i_squared(eb.beta, self.data.n)),
                      **self._spread(None if sampled is None else
                                     i_squared(sampled[1], self.data.n), ci_prob)}]
        # θ_j | y_j, α̂, β̂ in closed form, one pass over the distinct (y_j, n_j)
        return pd.concat([pd.DataFrame(rows, columns=SUMMARY_COLUMNS),
                          self._group_rows(ci_prob)], ignore_index=True)

    @staticmethod
    def _spread(values: NDArray | None, ci_prob: float) -> dict[str, float]:
        """The sd and equal-tailed interval of sampled values (none without them)."""
        if values is None:
            return {}
        lower, upper = quantile_interval(values, ci_prob)
        return {"sd": float(np.std(values, ddof=1)), "lower": float(lower),
                "upper": float(upper)}

    def hyperparameter_draws(self) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Flattened draws (or the fixed values) of (α, β); None under complete pooling."""
        if self.eb is not None:
            return np.array([self.eb.alpha]), np.array([self.eb.beta])
        a_name, b_name = self.model.family.hyper_names
        if a_name in self.posterior:
            return self.draws(a_name).ravel(), self.draws(b_name).ravel()
        if self.model.pooling == "none":
            return np.array([self.model.theta_prior.a]), np.array([self.model.theta_prior.b])
        return None

    def population_mean(self, ci_prob: float = 0.95) -> dict[str, float]:
        """The population mean rate μ (α/(α+β), α/β, or the normal μ): mean, sd, interval
        and MAP.

        The MAP is the mode of a kernel density estimate of u = logit μ (or log μ),
        carried back to μ with the Jacobian, so it respects the boundaries of μ.
        """
        check_prob(ci_prob)
        family = self.model.family
        if self.eb is not None:
            value = float(family.population_mean(self.eb.alpha, self.eb.beta))
            row = self.summary(ci_prob).set_index("param").loc["mu"]
            return {"mean": value, "sd": float(row["sd"]), "lower": float(row["lower"]),
                    "upper": float(row["upper"]), "map": value}
        if "mu" not in self.posterior or self.model.pooling != "partial":
            raise SpecificationError(
                f"{POOLING_PHRASES[self.model.pooling]} has no population distribution; "
                "fit with pooling 'partial'")
        mu = self.draws("mu").ravel()
        hyper = self.hyperparameter_draws()
        assert hyper is not None  # partial pooling has hyperparameters
        mu_grid, density = family.population_mean_density(family.to_uv(*hyper)[0])
        lower, upper = quantile_interval(mu, ci_prob)
        missing = self.infinite_moments().get("mu", [])
        return {"mean": np.nan if "mean" in missing else float(mu.mean()),
                "sd": np.nan if "sd" in missing else float(mu.std(ddof=1)),
                "lower": float(lower), "upper": float(upper),
                "map": float(mu_grid[np.argmax(density)]) if density.size else float(mu[0])}

    # ------------------------------------------------------------------ log likelihood
    def point_groupings(self) -> dict[str, NDArray]:
        """The points are the groups: leaving one out is leaving out its group."""
        return {self.data.group_name: self.data.labels}

    def _log_likelihood(self) -> tuple[NDArray, str, NDArray]:
        """log p(y_j | θ_j) for each group (stored with fits below EAGER_LOG_LIKELIHOOD)."""
        values = self.model.family.log_likelihood(self.group_draws(), self.data.y,
                                                  self.data.n)
        return values, "group", self.data.labels

    # ------------------------------------------------------------------ predictions
    def _answers(self) -> dict[type, Answer]:
        return group_answers(self.model.pooling, self._existing_group, self._new_group,
                             self._population)

    def _index(self, group: str) -> int:
        return find_label(self.data.labels, group, "group")

    def _existing_group(self, request: ExistingGroup, rng: np.random.Generator) -> Prediction:
        """θ_j from the posterior, then y* ~ p(y | θ_j, size), size the group's own unless
        given (lecture 001, step 4)."""
        index = self._index(request.group)
        family = self.model.family
        size = check_size(request.size, family.size_label,
                          whole=family.name == "beta-binomial")
        size = float(self.data.n[index]) if size is None else size
        theta = self.group_draws([index]).ravel()
        y = family.sample_data(rng, theta, size).astype(float)
        return Prediction(
            request, f"new data from group {request.group!r} ({family.size_label} {size:g}): "
            "its θ from the posterior, then y*",
            prediction_dataset({"theta": (theta, []), "y": (y, [])}, self.config.chains))

    def _new_group(self, request: NewGroup, rng: np.random.Generator) -> Prediction:
        """θ (and y) for a group that was not in the fit.

        With ``y`` and ``size``: the posterior of the new group's θ given its data. Under
        full Bayes the hyperparameter draws are reweighted by p(y | α, β), which is exact
        Bayes for the enlarged data set; under empirical Bayes the estimates are held fixed
        (the lecture's 0.2229 for the 71st rat experiment). With ``size`` only: θ_new ~
        p(θ | α, β) and y_new ~ p(y | θ_new, size). With neither: θ_new only.
        """
        family = self.model.family
        n = check_size(request.size, family.size_label, whole=family.name == "beta-binomial")
        observed: tuple[float, float] | None = None
        if request.y is not None:
            y = request.y
            if n is None:
                raise SpecificationError(
                    f"a new group's data need its {family.size_label} too (size=)")
            if isinstance(y, bool) or not np.isfinite(y) or (
                    family.name != "normal" and (y < 0 or y != round(y))):
                raise SpecificationError(f"new group y must be a whole number ≥ 0, got {y!r}")
            family.check_data(np.array([float(y)]), np.array([n]), np.array(["new"]))
            observed = (float(y), n)
        if self.model.pooling == "none" and not self.model.theta_prior.proper(family):
            raise SpecificationError(
                "under no pooling a new group's θ has only its own prior, "
                f"{self.model.theta_prior.describe(family).removeprefix('θ ~ ')}, which is "
                "improper: there is nothing to draw; give a proper prior (--prior) or use "
                "partial pooling")
        total = self.config.chains * self.config.draws
        hyper = self.hyperparameter_draws()
        exact: dict[str, Any] = {}
        ess: float | None = None
        if hyper is None:  # complete pooling: the new group shares the common θ
            theta = self.group_draws([0]).ravel()
            if observed is not None:
                log_w = family.log_likelihood(theta, *observed)
                theta, ess = theta[_resample(rng, log_w, total)], _kish(log_w)
        else:
            alpha, beta = (np.broadcast_to(h, total) if h.size == 1 else h for h in hyper)
            if observed is not None and self.eb is None and self.model.pooling == "partial":
                log_w = family.log_marginal(alpha, beta, *observed)
                index = _resample(rng, log_w, total)
                alpha, beta, ess = alpha[index], beta[index], _kish(log_w)
            if observed is not None:
                theta = family.sample_conditional(rng, alpha, beta, *observed)
                fixed = family.conditional(hyper[0][0], hyper[1][0], *observed)
            else:
                theta = family.sample_population(rng, alpha, beta)
                fixed = family.population(hyper[0][0], hyper[1][0])
            if hyper[0].size == 1:
                exact["theta"] = fixed
        variables: dict[str, tuple[NDArray, list[str]]] = {
            "theta": (np.asarray(theta, dtype=float), [])}
        if observed is None and n is not None:
            variables["y"] = (family.sample_data(rng, theta, n).astype(float), [])
        source = {"none": "under no pooling, θ from its own prior "
                          f"{self.model.theta_prior.describe(family).removeprefix('θ ~ ')}",
                  "complete": "under complete pooling, the common θ"}.get(
                      self.model.pooling, "drawn from the population")
        what = (f"a new group with y = {observed[0]:g}, {family.size_label} "
                f"{observed[1]:g}: the posterior of its θ" if observed is not None else
                f"a new group {source}" + (
                    f", and y* for {family.size_label} {n:g}" if n is not None else ""))
        return Prediction(request, what, prediction_dataset(variables, self.config.chains),
                          exact, ess)

    def _population(self, request: Population, rng: np.random.Generator) -> Prediction:
        """The population mean μ (partial pooling; its sampling distribution under empirical
        Bayes), or the one θ of complete pooling."""
        family = self.model.family
        if self.model.pooling == "complete":
            return Prediction(Population(), "the common θ of complete pooling",
                              prediction_dataset({"theta": (self.group_draws([0]).ravel(),
                                                            [])}, self.config.chains))
        if self.eb is not None:
            sampled = self.eb_sampling_draws(self.config.chains * self.config.draws)
            a, b = sampled if sampled is not None else (np.array([self.eb.alpha]),
                                                       np.array([self.eb.beta]))
            mu = np.broadcast_to(family.population_mean(a, b),
                                 self.config.chains * self.config.draws)
            what = (f"the population mean μ: the {self.method} estimate's sampling "
                    "distribution (normal approximation)")
        else:
            mu = self.draws("mu").ravel()
            what = "the population mean μ"
        return Prediction(Population(), what,
                          prediction_dataset({"mu": (mu, [])}, self.config.chains))

    # ------------------------------------------------------------------ replicates
    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """y_rep ~ p(y | θ, n) at θ's draws, in blocks of about 2^20 values, each from its
        own stream spawned from ``rng``, the blocks over the cores. Where θ is not kept
        (nor in a file) and differs between groups, each block draws its own θ from the
        groups' conditionals and then y_rep: the same joint distribution as from
        :meth:`group_draws`, without its stream per 256 groups (a million groups' 12
        replicates: 3,900 streams)."""
        family, data = self.model.family, self.data
        kept = self.stores_group_draws or self.file_theta is not None \
            or self.model.pooling == "complete"
        theta = self.group_draws() if kept else None
        chains, draws = self._draw_shape() if theta is None else theta.shape[:2]
        size = chains * draws
        width = max(1, (1 << 20) // max(size, 1))
        starts = range(0, data.n_groups, width)
        streams = rng.spawn(len(starts))
        y = np.empty((size, data.n_groups))
        if theta is not None:
            theta = theta.reshape(size, -1)

            def fill(block: int) -> None:
                part = slice(starts[block], starts[block] + width)
                y[:, part] = family.sample_data(streams[block], theta[:, part], data.n[part])
        else:
            alpha, beta, y_cond, n_cond = self.model.conditionals(data, self._hyper_draws(),
                                                                  self.eb)
            alpha = np.broadcast_to(np.ravel(alpha), size)[:, None]
            beta = np.broadcast_to(np.ravel(beta), size)[:, None]

            def fill(block: int) -> None:
                part = slice(starts[block], starts[block] + width)
                values = family.sample_conditional(streams[block], alpha, beta,
                                                   y_cond[part], n_cond[part])
                y[:, part] = family.sample_data(streams[block], values, data.n[part])

        run_blocks(fill, range(len(starts)))
        return {"y": (y.reshape(chains, draws, -1), ["group"])}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> ConjugateFit:
        record = FitRecord(tree)
        model = Model(**record.model)
        observed = tree["observed_data"].to_dataset()
        data = GroupCounts(
            labels=np.asarray(observed["group"].values).astype(str),
            y=np.asarray(observed["y"].values, dtype=float),
            n=np.asarray(observed["n"].values, dtype=float),
            group_name=str(record.data["group_name"]),
            notes=tuple(record.data["notes"]))
        tree, file_theta = _take_file_theta(tree)
        return cls(model, data, tree, record.fitted["info"], _eb_from_dict(record.fitted["eb"]),
                   file_theta=file_theta)


def _take_file_theta(tree: xr.DataTree) -> tuple[xr.DataTree, xr.Variable | None]:
    """The tree without θ's draws where they were left in the file (written by
    ``save(path, group_draws=True)``), and those draws, file-backed; the tree itself and
    None otherwise."""
    if "posterior" not in tree.children or "theta" not in tree["posterior"] \
            or not tree["posterior"]["theta"].attrs.get(_arviz.ON_DEMAND):
        return tree, None
    tree = tree.copy()
    posterior = tree["posterior"].to_dataset()
    file_theta = posterior["theta"].variable
    rest = posterior.drop_vars(["theta", "group"])
    if rest.data_vars:
        tree["posterior"] = xr.DataTree(rest)
    else:  # empirical Bayes: θ was the posterior's only variable
        del tree["posterior"]
    return tree, file_theta


def _chunk_groups(draws: int) -> int:
    """Groups per chunk of :data:`CHUNK_VALUES` values at ``draws`` draws a group: whole
    blocks of :data:`GROUP_BLOCK`, at least one."""
    return max(GROUP_BLOCK, CHUNK_VALUES // max(draws, 1) // GROUP_BLOCK * GROUP_BLOCK)


def _spans(chosen: NDArray[np.intp], width: int) -> Iterator[tuple[int, NDArray[np.intp]]]:
    """For each span of group indices start..start + width (start a multiple of ``width``)
    that holds some of ``chosen``: its start, and the positions in ``chosen`` of those in
    it."""
    if not chosen.size:
        return
    order = np.argsort(chosen // width, kind="stable")
    spans, starts = np.unique(chosen[order] // width, return_index=True)
    for span, where in zip(spans, np.split(order, starts[1:]), strict=True):
        yield int(span) * width, where


def _theta_rows(summary: GroupSummary, labels: NDArray[np.str_]) -> pd.DataFrame:
    """The rows of θ_j in a fit's summary columns (no ESS or R-hat: the draws behind them
    are independent, their error is the MCSE; none for a closed form)."""
    nan = np.full(summary.mean.size, np.nan)
    mcse = summary.mcse_mean if summary.draws_moments > 1 else nan
    columns = {"param": np.full(summary.mean.size, "theta", dtype=object),
               "group": np.asarray(labels, dtype=object), "mean": summary.mean,
               "sd": summary.sd, "lower": summary.lower, "upper": summary.upper,
               "ess_bulk": nan, "ess_tail": nan, "r_hat": nan, "mcse_mean": mcse,
               "pooling_factor": summary.pooling_factor}
    return pd.DataFrame(columns, columns=SUMMARY_COLUMNS)


def _resample(rng: np.random.Generator, log_weights: NDArray, size: int) -> NDArray[np.intp]:
    """Indices drawn with probability ∝ exp(log_weights) (importance resampling)."""
    w = np.exp(log_weights - np.max(log_weights))
    return rng.choice(w.size, size=size, p=w / w.sum())


def _kish(log_weights: NDArray) -> float:
    """Kish's effective sample size (Σw)² / Σw² of importance weights."""
    w = np.exp(log_weights - np.max(log_weights))
    return float(w.sum() ** 2 / np.sum(w**2))


def _eb_to_dict(eb: EBEstimate | None) -> dict[str, Any] | None:
    if eb is None:
        return None
    cov = None if eb.uv_covariance is None else eb.uv_covariance.tolist()
    return {"method": eb.method, "alpha": eb.alpha, "beta": eb.beta, "uv_covariance": cov,
            "on_boundary": eb.on_boundary, "log_marginal_likelihood": eb.log_marginal_likelihood,
            "corrected": eb.corrected, "intervals": eb.intervals}


def _eb_from_dict(d: dict[str, Any] | None) -> EBEstimate | None:
    if d is None:
        return None
    cov = None if d["uv_covariance"] is None else np.asarray(d["uv_covariance"])
    # a fit saved before the Kass–Steffey correction has plug-in intervals
    return EBEstimate(d["method"], d["alpha"], d["beta"], cov, d["on_boundary"],
                      d["log_marginal_likelihood"], bool(d.get("corrected", False)),
                      d.get("intervals", ""))

