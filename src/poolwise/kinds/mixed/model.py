"""A mixed model is a formula × family × pooling × priors × method; fitting returns a
:class:`MixedFit`.

The model (:mod:`poolwise.kinds.mixed.design`)

    g(E[y_i]) = x_iᵀ β + Σ_t z_tiᵀ b_t[l_t(i)] + offset_i,   b_t[l] ~ N(0, Σ_t),

is fitted by NUTS (:mod:`poolwise.kinds.mixed.inference`; the normal family integrates β
and the group effects out and draws them afterwards), by ``importance`` (the normal
family's default: the few variance parameters by Pareto-smoothed importance sampling, no
Markov chain, with an automatic and stated fallback to NUTS when its diagnostic fails; the
default too of binomial, bernoulli and poisson models with one grouping factor, whose
β and variance parameters are sampled so with each group's effects integrated out by
adaptive quadrature, :class:`~poolwise.kinds.mixed.glmm.GlmmPosterior`) or
by ``eb-ml``: REML as lme4 (:mod:`poolwise.kinds.mixed.reml`) for the normal family,
maximum likelihood with the group effects integrated out by adaptive quadrature as lme4's
``glmer(nAGQ = n)`` (:mod:`poolwise.kinds.mixed.glmm`) for the binomial, bernoulli and
poisson families; its fit also holds draws of β and the group effects given the estimated
variance parameters. :meth:`MixedModel.prepare` reads a table into a :class:`MixedData`
(the designs, the priors scaled to the data, the rows used), which ``fit``,
``describe_prior``, ``graph`` and ``equations`` take as well as the table.

>>> import poolwise
>>> sleep = poolwise.datasets.load("sleepstudy")
>>> model = poolwise.MixedModel(formula="Reaction ~ Days + (Days | Subject)")
>>> model.describe_prior(sleep).split("; ")[:2]
['b[Intercept] ~ Normal(298.508, 140.822)', 'b[Days] ~ Normal(0, 48.8915)']
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._random import Stream, generator
from poolwise.exceptions import DataError, SamplingWarning, SpecificationError
from poolwise.inference.agq import BLOCK_VALUES
from poolwise.kinds.base import DRAW_COPIES, VALUE, BaseModel, Settings
from poolwise.kinds.mixed.design import (
    FAMILIES,
    FAMILY_PARAMETERS,
    CrossProducts,
    GroupTerm,
    MixedDesign,
    mixed_family,
    ranges_from_text,
    ranges_to_text,
)
from poolwise.kinds.mixed.formula import (
    MISSING_ACTIONS,
    FormulaColumns,
    formula_columns,
    parse_formula,
    pooling_design,
)
from poolwise.kinds.mixed.glmm import (
    DEFAULT_AGQ,
    DRAW_BLOCK_ROWS,
    GLMM_FAMILIES,
    agq_method,
    check_agq,
)
from poolwise.kinds.mixed.inference import (
    TARGET_ACCEPT as NUTS_TARGET_ACCEPT,
)
from poolwise.kinds.mixed.inference import (
    MixedDraws,
    correlated,
    marginal_memory,
    posterior_dims,
    resolve_parametrisation,
)
from poolwise.kinds.mixed.priors import (
    DEFAULT_PHI,
    INTERCEPT,
    MixedPriors,
    check_prior_syntax,
    intercept_remark,
    parse_priors,
    sample_sd,
)
from poolwise.kinds.mixed.reml import LMMEstimate, estimate_from_dict, estimate_to_dict
from poolwise.priors import make_distribution
from poolwise.resources import MemoryEstimate
from poolwise.results.checks import CheckData
from poolwise.results.fit import Answer, Fit, finish_fit
from poolwise.results.prediction import (
    ExistingGroup,
    NewGroup,
    NewGroupIn,
    NewRows,
    Population,
    Prediction,
    find_label,
    prediction_dataset,
)
from poolwise.results.storage import (
    FitRecord,
    dataset_to_table,
    record_attrs,
    table_to_dataset,
)
from poolwise.results.summary import SUMMARY_COLUMNS, posterior_summary, quantile_interval
from poolwise.vocabulary import POOLINGS, Constraint, OneOf

if TYPE_CHECKING:
    from poolwise.kinds.mixed.stream import Streamed
    from poolwise.results.graph import ModelGraph

__all__ = ["MixedData", "MixedFit", "MixedModel", "likelihood_statistics"]

#: transformations fitted to the data: recomputed on new rows they would change meaning
STATEFUL_FUNCTIONS = ("scale", "center", "centre", "poly")
#: Poisson means above this are capped when drawing counts (NumPy's sampler refuses them;
#: the negative binomial draws a gamma-distributed Poisson mean)
POISSON_LIMIT = 1e15
#: the tree group holding the table the design was built from
INPUT_GROUP = "input_data"
#: the tree group holding a streamed design's per-level sums (its input_data: the skeleton)
CROSS_GROUP = "cross_products"
#: the attribute of CROSS_GROUP holding the numeric covariates' ranges (JSON)
RANGES_ATTR = "covariate_ranges"


# ----------------------------------------------------------------------------- the data
@dataclass(frozen=True, eq=False)
class MixedData:
    """A table prepared for one mixed model: ``table`` holds only the formula's columns
    and the rows used (``full_design.rows`` are their positions in the table given),
    ``full_design`` the formula's design, ``design`` the pooling level's
    (:func:`~poolwise.kinds.mixed.formula.pooling_design`), ``priors`` the default priors
    scaled to these data with the model's overrides applied. ``key`` says which model
    settings it was prepared for."""

    table: pd.DataFrame
    full_design: MixedDesign
    design: MixedDesign
    priors: MixedPriors
    key: tuple[Any, ...]

    @property
    def n_obs(self) -> int:
        return self.design.n_obs

    @property
    def rows(self) -> NDArray[np.intp]:
        """Each row's position in the table that was prepared."""
        self.full_design.needs_rows("the rows' positions")
        rows = self.full_design.rows
        return np.arange(self.n_obs) if rows is None else np.asarray(rows, dtype=np.intp)

    @property
    def notes(self) -> tuple[str, ...]:
        """What was done to the data (rows dropped, nesting expanded, no pooling's columns)."""
        return self.design.notes

    @property
    def streamed(self) -> bool:
        """Whether the rows were reduced out of core to per-level sums: then ``table`` is
        the skeleton (:mod:`poolwise.kinds.mixed.stream`), one row per few levels."""
        return self.full_design.streamed

    def level_dim(self) -> tuple[str, tuple[str, ...]]:
        """A streamed design's levels: the grouping factor's name and labels ("all" for a
        formula without group terms, whose rows are one level)."""
        terms = self.full_design.terms
        return (terms[0].factor, terms[0].levels) if terms else ("all", ("all",))


# ----------------------------------------------------------------------------- the model
class MixedModel(BaseModel):
    """A (generalised) linear mixed model written as an lme4/brms formula.

    Parameters
    ----------
    formula
        e.g. ``"Reaction ~ Days + (Days | Subject)"``; the syntax and the allowed
        transformations are in :mod:`poolwise.kinds.mixed.formula`.
    family
        ``"normal"`` (default; alias ``"gaussian"``), ``"binomial"``
        (``y | trials(n) ~ …``), ``"bernoulli"``, ``"poisson"`` or ``"negbinomial"``
        (counts with Var y = μ + μ²/φ, the shape φ estimated; both with
        ``offset(log(exposure))`` for an exposure).
    pooling
        ``"partial"`` (the formula; the default), ``"complete"`` (group terms dropped; the
        default of a formula without group terms) or ``"none"`` (each group's effects as
        fixed effects).
    prior
        Overrides of the default priors, which are scaled to the data, e.g.
        ``"b[Days] = student_t(3, 0, 10); Intercept = normal(250, 50); sd = halfnormal(30)"``
        (``b = …`` sets every coefficient but the intercept, as brms's class b;
        :func:`~poolwise.kinds.mixed.priors.parse_priors`), or a
        :class:`~poolwise.kinds.mixed.priors.MixedPriors`.
    method
        ``"importance"`` (the default of the normal family and of binomial, bernoulli and
        poisson models with one grouping factor; full Bayes without a Markov chain: σ, the
        sds and correlations by Pareto-smoothed importance sampling from a Student-t at
        their posterior mode with β and the group effects integrated out, then β and the
        group effects drawn exactly; for those GLMMs β, the sds and the correlation, each
        group's effects integrated out by adaptive quadrature (``agq`` points) and drawn
        exactly; when the Pareto k̂ of the weights exceeds 0.7, or a GLMM's term has more
        than two effects, the fit falls back to ``nuts``, warns, and says so in
        ``fit.method`` and ``fit.info["fallback"]``), ``"nuts"`` (the other models'
        default; full Bayes) or ``"eb-ml"``: point estimates of the variance parameters, β
        and the group effects drawn given them. For the normal family REML as lme4; for
        binomial, bernoulli and poisson models with one group term of one or two effects,
        maximum likelihood by adaptive Gauss–Hermite quadrature as lme4's
        ``glmer(nAGQ = agq)``.
    reml
        ``eb-ml`` of a normal model: True (the default) maximises the restricted likelihood
        (REML), False the likelihood itself (ML), as lme4's ``lmer(REML = FALSE)``: ML's
        sds are biased down, but its log likelihoods (and AICs) compare models with other
        fixed effects. None: REML; refused for any other method or family.
    agq
        ``eb-ml`` and ``importance`` of a binomial, bernoulli or poisson model: quadrature
        points per group effect, 1 (the Laplace approximation, lme4's default) to 25; None: 9
        (:data:`~poolwise.kinds.mixed.glmm.DEFAULT_AGQ`, within 3e-6 of 25 points on cbpp).
    missing
        ``"refuse"`` (default) rows with missing values in the formula's columns, or
        ``"drop"`` them.
    draws, chains, warmup, seed, progress
        Draws and warm-up per chain (``eb-ml``: chains × draws conditional draws), the seed
        of every random stream, a progress bar.
    target_accept
        NUTS's step-size target; None: 0.8 for the marginal parametrisation, 0.9 for the
        explicit ones.
    parametrisation
        ``"auto"`` (marginal for the normal family, non-centred otherwise),
        ``"marginal"`` (normal family: β and the group effects integrated out),
        ``"non-centred"`` or ``"centred"``.
    """

    kind = "mixed"
    METHODS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        pooling: ("importance", "nuts", "eb-ml") for pooling in POOLINGS}
    PARAMETRISATIONS = ("marginal", "non-centred", "centred")
    #: the marginal parametrisation's; the explicit ones use 0.9 (``target_accept=None``)
    TARGET_ACCEPT = NUTS_TARGET_ACCEPT["marginal"]
    CONSTRAINTS: ClassVar[Mapping[str, Constraint]] = {"missing": OneOf(MISSING_ACTIONS)}

    def __init__(self, *, formula: str, family: str = "normal",
                 prior: str | MixedPriors | None = None, missing: str = "refuse",
                 agq: int | None = None, reml: bool | None = None,
                 **settings: Unpack[Settings]) -> None:
        family = mixed_family(family)
        # before _settle: the default method depends on the family and the group terms
        self.family: str = family
        self.columns: FormulaColumns = formula_columns(formula)
        text = prior.spec() if isinstance(prior, MixedPriors) else prior
        if text is not None:
            check_prior_syntax(text)
            text = text.strip() or None
        if agq is not None:
            agq = check_agq(agq)
        # before _settle, which knows only that this family does not offer them
        method = settings.get("method")
        if method == "eb-ml" and family not in ("normal", *GLMM_FAMILIES):
            raise SpecificationError(
                f"eb-ml is REML for the normal family and maximum likelihood by adaptive "
                f"quadrature for the {', '.join(GLMM_FAMILIES)} families, not {family}; use "
                "method 'nuts'")
        if method == "importance" and family not in ("normal", *GLMM_FAMILIES):
            raise SpecificationError(
                f"method 'importance' integrates the group effects out and is for the "
                f"normal, {', '.join(GLMM_FAMILIES)} families; use method 'nuts' for the "
                f"{family} family")
        if reml is not None and not isinstance(reml, bool):
            raise TypeError(f"reml must be True or False, not {reml!r}")
        if not self.columns.factors and settings.get("pooling") is None:
            # nothing to pool: "y ~ x" is a regression, whatever the default pooling level
            settings = {**settings, "pooling": "complete"}
        self._settle({"formula": formula, "family": family, "prior": text,
                      "missing": missing, "agq": agq, "reml": reml}, settings)
        self.formula: str = formula
        self.prior: str | None = text
        self.missing: str = missing
        #: quadrature points of eb-ml and importance for a GLMM (None: DEFAULT_AGQ)
        self.agq: int | None = agq
        #: eb-ml of a normal model: REML (True, the default) or ML (False)
        self.reml: bool = reml is not False
        if self.pooling != "complete" and not self.columns.factors:
            raise SpecificationError(
                f"the formula has no group terms such as (1 | group), so {self.pooling_phrase} "
                "is the same as complete pooling: add a group term or use pooling 'complete'")
        if agq is not None and (self.method not in ("eb-ml", "importance")
                                or family not in GLMM_FAMILIES):
            raise SpecificationError(
                f"agq (--agq) sets the quadrature of methods eb-ml and importance for the "
                f"{', '.join(GLMM_FAMILIES)} families, not of method {self.method!r} for the "
                f"{family} family")
        if reml is not None and (self.method != "eb-ml" or family != "normal"):
            raise SpecificationError(
                f"reml (--ml) chooses REML or ML for method eb-ml of a normal mixed model, "
                f"not for method {self.method!r} of a {family} one")
        if self.method == "eb-ml" and text is not None:
            takers = " or ".join(repr(m) for m in self.offered_methods()[self.pooling]
                                 if m != "eb-ml")
            raise SpecificationError(
                f"eb-ml is {self._eb_ml_phrase()}: it uses no priors, so not {text!r}; leave "
                f"out prior= (--prior), or use method {takers}, which take it")
        #: the parametrisation NUTS uses ("auto" resolved for the family)
        self.parametrisation: str = resolve_parametrisation(family, self.config.parametrisation)
        if settings.get("target_accept") is None:
            self.config = replace(self.config,
                                  target_accept=NUTS_TARGET_ACCEPT[self.parametrisation])

    def _eb_ml_phrase(self) -> str:
        """What eb-ml computes for this family, e.g. ``REML, as lme4``."""
        if self.family == "normal":
            return "REML, as lme4" if self.reml else "ML, as lme4's lmer(REML = FALSE)"
        points = self.agq or DEFAULT_AGQ
        return f"{agq_method(points)}, as lme4's glmer(nAGQ = {points})"

    def offered_methods(self) -> Mapping[str, tuple[str, ...]]:
        """The methods for this family (the default first): ``importance`` is the normal
        family's, and the GLMMs' (binomial, bernoulli, poisson) with partial pooling of one
        grouping factor (its effects integrated out by AGQ) — their default where that factor
        has a random intercept only; with a slope each proposal's quadrature has 81 nodes a
        group and NUTS is the quicker default (bench/README.md, 2026-12-05: 8.6 s against
        35 s); ``eb-ml`` the normal family's (REML) and the GLMMs' (ML by AGQ); every family
        has ``nuts``."""
        glmm = self.family in GLMM_FAMILIES
        offered = {}
        for pooling, methods in self.METHODS.items():
            drop = set() if self.family in ("normal", *GLMM_FAMILIES) else {"importance",
                                                                            "eb-ml"}
            if glmm and (pooling != "partial" or len(self.columns.factors) != 1):
                drop.add("importance")
            kept = tuple(m for m in methods if m not in drop)
            if glmm and "importance" in kept and not self.columns.intercepts_only:
                kept = ("nuts", *(m for m in kept if m != "nuts"))
            offered[pooling] = kept
        return offered

    # ------------------------------------------------------------------ data
    def _key(self) -> tuple[Any, ...]:
        return (self.formula, self.family, self.pooling, self.missing, self.prior)

    def prepare(self, data: pd.DataFrame | MixedData, **columns: Any) -> MixedData:
        """Read ``data`` (a table, or data prepared by a model with the same formula, family,
        pooling, missing and prior) into a :class:`MixedData`: the designs, the resolved
        priors and the table of the rows used."""
        given = [name for name, value in columns.items() if value is not None]
        if given:
            raise SpecificationError(
                f"a mixed model reads its columns from the formula; {', '.join(given)}= "
                "are not used")
        if isinstance(data, MixedData):
            if data.key == self._key():
                return data
            if data.streamed:  # its table is the skeleton: only the sums are the data
                if data.key[:2] != self._key()[:2] or data.key[3] != self._key()[3]:
                    raise SpecificationError(
                        "these data were reduced out of core for the formula "
                        f"{data.key[0]!r}; reduce the files again for this model's formula, "
                        "family and missing-value rule")
                return self._assemble(data.table, data.full_design)
            data = data.table
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        full = parse_formula(self.formula, data, family=self.family, missing=self.missing)
        from poolwise.kinds.mixed.degenerate import refuse_degenerate

        refuse_degenerate(full, self.method)
        table = data[list(full.columns)].iloc[np.asarray(full.rows)].reset_index(drop=True)
        return self._assemble(table, full)

    def prepare_streamed(self, streamed: Streamed) -> MixedData:
        """The prepared data of rows reduced out of core
        (:func:`poolwise.kinds.mixed.stream.reduce_mixed`)."""
        return self._assemble(streamed.skeleton, streamed.design)

    def _assemble(self, table: pd.DataFrame, full: MixedDesign,
                  priors: str | None = None) -> MixedData:
        """The prepared data of ``full`` (built from ``table``); ``priors`` a resolved
        spec (a saved fit's), else the defaults with the model's overrides."""
        if self.family == "normal" and self.pooling == "partial":
            for term in full.terms:
                if term.n_levels >= full.n_obs:
                    raise DataError(
                        f"grouping factor {term.factor!r} has {term.n_levels} levels for "
                        f"{full.n_obs} rows (one row each), so its sd and the residual σ "
                        "cannot be told apart (lme4 refuses this too); drop the term or use a "
                        "grouping with repeated rows")
        design = pooling_design(full, self.pooling)
        resolved = parse_priors(priors if priors is not None else self.prior or "", design)
        return MixedData(table, full, design, resolved, self._key())

    def _restore(self, table: pd.DataFrame, rows: NDArray[np.intp], dropped: int,
                 notes: tuple[str, ...], priors: str) -> MixedData:
        """The prepared data of a saved fit: the design rebuilt from its table."""
        full = parse_formula(self.formula, table, family=self.family)
        full = replace(full, rows=rows, dropped_rows=dropped, notes=notes)
        return self._assemble(table, full, priors)

    def _restore_streamed(self, skeleton: pd.DataFrame, sums: xr.Dataset, dropped: int,
                          notes: tuple[str, ...], priors: str) -> MixedData:
        """The prepared data of a saved streamed fit: its skeleton and per-level sums."""
        from poolwise.kinds.mixed.stream import restore_design

        cross = CrossProducts(*(np.asarray(sums[name].values, dtype=float)
                                for name in CrossProducts.FIELDS))
        labels = [str(v) for v in sums["level"].values]
        full = restore_design(self.formula, skeleton, cross, labels, dropped, notes,
                              ranges_from_text(sums.attrs.get(RANGES_ATTR, "[]")))
        return self._assemble(skeleton, full, priors)

    def _prepared(self, data: Any) -> MixedData:
        if data is None:
            raise SpecificationError(
                "a mixed model's priors, graph and equations depend on its data: pass the "
                "table (or model.prepare(table))")
        return self.prepare(data)

    # ------------------------------------------------------------------ description
    def describe_prior(self, data: pd.DataFrame | MixedData | None = None) -> str:
        """The priors, one statement per parameter separated by semicolons, with the
        defaults scaled to ``data``; without data the rule and the overrides."""
        if self.method == "eb-ml" and self.family != "normal":
            return (f"eb-ml ({self._eb_ml_phrase()}): β and the variance parameters are "
                    "estimated, with no prior; β's draws are from the normal approximation "
                    "of its estimate, the group effects' exact given each")
        if self.method == "eb-ml":
            return (f"eb-ml ({self._eb_ml_phrase()}): the variance parameters are estimated, "
                    "with no prior; β's draws given them are those of a flat prior on β")
        if data is None:
            rule = ("weakly informative defaults scaled to the data: b ~ Normal, sigma and sd "
                    "~ HalfNormal, cor ~ LKJ(2)")
            if self.family == "negbinomial":
                rule += f"; phi ~ {make_distribution(*DEFAULT_PHI)}"
            return rule + (f"; overridden by: {self.prior}" if self.prior else "")
        prepared = self.prepare(data)
        lines = prepared.priors.describe()
        remark = intercept_remark(self.prior, prepared.design)
        if remark is not None:
            at = prepared.priors.fixed_names.index(INTERCEPT)
            lines[at] = f"{lines[at]}  ({remark})"
        return "; ".join(lines)

    def implied_pooling(self, data: pd.DataFrame | MixedData | None = None) -> str | None:
        """The priors' pooling factor of a typical level's intercept (exact in the normal
        family, approximate in the others:
        :func:`~poolwise.kinds.mixed.priors.implied_pooling`); None without data or priors."""
        if data is None or self.method == "eb-ml" or self.pooling != "partial":
            return None
        from poolwise.kinds.mixed.priors import implied_pooling

        prepared = self.prepare(data)
        rng = generator(self.config.seed, Stream.PRIOR_PREDICTIVE, 1)
        return "; ".join(implied_pooling(prepared.design, prepared.priors, rng)) or None

    def graph(self, data: pd.DataFrame | MixedData | None = None) -> ModelGraph:
        """The model's graphical model with its plates sized by the data; draw it with
        :func:`poolwise.outputs.render.render`."""
        from poolwise.kinds.mixed.graph import mixed_graph

        return mixed_graph(self, self._prepared(data))

    def equations(self, data: pd.DataFrame | MixedData | None = None) -> list[str]:
        """The model as LaTeX lines: likelihood, linear predictor, group effects, priors."""
        from poolwise.kinds.mixed.graph import mixed_equations

        return mixed_equations(self, self._prepared(data))

    def title(self, data: pd.DataFrame | MixedData, method: str | None = None) -> str:
        """``normal mixed model 'Reaction ~ Days + (Days | Subject)', partial pooling,
        method nuts, 180 rows``; ``method``: the one that ran, where not the model's."""
        rows = self._prepared(data).n_obs
        return (f"{self.family} mixed model {self.formula!r}, {self.pooling_phrase}, "
                f"method {method or self.method}, {rows} row{'s' if rows != 1 else ''}")

    def memory_estimate(self, data: pd.DataFrame | MixedData) -> MemoryEstimate:
        """The draws of β, σ, the sds, correlations and group effects; for the marginal
        parametrisation and eb-ml the blocked WᵀW of
        :func:`~poolwise.kinds.mixed.inference.gaussian_stats` and the conditional draws'
        factorisations in chunks (:func:`~poolwise.kinds.mixed.inference.marginal_memory`;
        no (q + p)² matrix); for the explicit ones the
        design that the compiled density holds and a chain over every coefficient."""
        data = self._prepared(data)
        design = data.design
        terms = design.terms
        p = len(design.fixed_names)
        q = sum(t.n_levels * t.n_effects for t in terms)
        stored = p + (design.family in FAMILY_PARAMETERS) + sum(
            t.n_effects * (1 + t.n_levels) + (t.n_effects ** 2 if correlated(t) else 0)
            for t in terms)
        chains, draws = self.config.chains, self.config.draws
        other: list[tuple[str, int]] = []
        sampled = 0
        # a streamed design stores and replicates each level's mean, not its rows
        observed = len(data.level_dim()[1]) if design.streamed else design.n_obs
        if self.method in ("eb-ml", "importance") and design.family != "normal":
            # AGQ's blocks of rows × nodes and the draws' blocks of rows × draws
            other.append(("adaptive quadrature", (BLOCK_VALUES + 8 * DRAW_BLOCK_ROWS)
                          * VALUE))
        # importance's conditional draws go in chunks; its fallback is the marginal NUTS
        elif self.method in ("eb-ml", "importance") or self.parametrisation == "marginal":
            shared = self.method == "eb-ml"  # one factorisation for every draw
            held, conditional = marginal_memory(design, chains * draws if shared else draws,
                                                shared)
            other.append(("blocked WᵀW", held * VALUE))
            other.append(("conditional draws", conditional * VALUE * DRAW_COPIES))
        else:
            sampled = p + q + sum(t.n_effects ** 2 for t in terms) + 1
            columns = p + sum(t.n_effects + 1 for t in terms) + 2
            other.append(("design", design.n_obs * columns * VALUE * DRAW_COPIES))
        return self._draws_estimate(stored=stored, sampled=sampled, observed=observed,
                                    jax=True, other=other)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | MixedData, **columns: Any) -> MixedFit:
        """Fit by importance sampling, NUTS or eb-ml (``method``) to a table or to
        :meth:`prepare`'s result."""
        prepared = self.prepare(data, **columns)
        self.check_memory(prepared)
        start = time.perf_counter()
        estimate: LMMEstimate | None = None
        sample_stats: dict[str, NDArray] = {}
        info: dict[str, Any]
        if self.method == "eb-ml":
            if prepared.design.family == "normal":
                posterior, estimate = self._reml_draws(prepared)
            else:
                posterior, estimate = self._agq_draws(prepared)
            info = {"converged": estimate.converged, "singular": estimate.singular,
                    "log_likelihood": estimate.log_likelihood,
                    "likelihood": likelihood_statistics(estimate, prepared.n_obs)}
        else:
            result = self._sample(prepared)
            posterior, sample_stats, info = result.posterior, result.sample_stats, result.info
            posterior = {name: posterior[name] for name in _variable_order(prepared.design)
                         if name in posterior}
        info = {**info, "seconds": time.perf_counter() - start}
        tree = self._tree(prepared, posterior, sample_stats, info, estimate)
        fit = MixedFit(self, prepared, tree, info, estimate)
        return finish_fit(fit, stacklevel=2)

    def _sample(self, data: MixedData) -> MixedDraws:
        """Importance sampling, or NUTS: asked for, or as importance's fallback, which
        warns and records why in the info (``method``: the one that ran, ``fallback``)."""
        from poolwise.kinds.mixed.inference import integrate_mixed, sample_mixed

        info: dict[str, Any] = {}
        if self.method == "importance":
            drawn, info = integrate_mixed(data.design, data.priors, self.config,
                                          n_agq=self.agq)
            if drawn is not None:
                return replace(drawn, info={**drawn.info, "method": "importance"})
            reason = str(info["importance_problem"])
            info = {**info, "method": "nuts",
                    "fallback": f"importance sampling failed its check ({reason}); fitted "
                                "by NUTS instead"}
            warnings.warn(f"method 'importance': {info['fallback']}", SamplingWarning,
                          stacklevel=3)
        result = sample_mixed(data.design, data.priors, self.config,
                              parametrisation=self.parametrisation,
                              target_accept=self.config.target_accept)
        return replace(result, info={**_finite(info), **result.info})

    def _reml_draws(self, data: MixedData) -> tuple[dict[str, NDArray], LMMEstimate]:
        """REML (or ML, ``reml=False``) estimates, and chains × draws draws of β and the
        group effects given them (σ, the sds and correlations constant), shaped like
        NUTS's."""
        from poolwise.kinds.mixed.reml import conditional_draws, fit_reml

        design = data.design
        estimate = fit_reml(design, reml=self.reml)
        chains, draws = self.config.chains, self.config.draws
        columns = sum(t.n_levels * t.n_effects for t in design.terms) + len(design.fixed_names)
        noise = generator(self.config.seed, Stream.CONDITIONAL).standard_normal(
            (chains * draws, columns))
        drawn = conditional_draws(design, estimate, noise)

        def shaped(values: NDArray) -> NDArray:
            """A constant at every draw."""
            values = np.asarray(values, dtype=float)
            return np.broadcast_to(values, (chains, draws, *values.shape)).copy()

        posterior = {"b": drawn["b"].reshape(chains, draws, -1),
                     "sigma": np.full((chains, draws), estimate.sigma)}
        for term in design.terms:
            posterior[f"sd_{term.factor}"] = shaped(estimate.sd[term.factor])
            if correlated(term):
                posterior[f"cor_{term.factor}"] = shaped(estimate.cor[term.factor])
            posterior[f"r_{term.factor}"] = drawn[f"r_{term.factor}"].reshape(
                chains, draws, term.n_levels, term.n_effects)
        return posterior, estimate

    def _agq_draws(self, data: MixedData) -> tuple[dict[str, NDArray], LMMEstimate]:
        """ML estimates by adaptive quadrature, and chains × draws draws of β from the
        normal approximation N(β̂, Cov β̂) with, at each, the group effects drawn exactly
        from their conditional given y, β and Σ̂ (:mod:`poolwise.kinds.mixed.glmm`)."""
        from poolwise.kinds.mixed.glmm import draw_glmm_effects, fit_glmm

        design = data.design
        estimate = fit_glmm(design, n_agq=self.agq or DEFAULT_AGQ)
        chains, draws = self.config.chains, self.config.draws
        rng = generator(self.config.seed, Stream.CONDITIONAL)
        beta = rng.multivariate_normal(estimate.beta, estimate.beta_cov, size=chains * draws)
        effects = draw_glmm_effects(design, estimate, beta, rng)
        term = design.terms[0]
        posterior = {"b": beta.reshape(chains, draws, -1),
                     f"sd_{term.factor}": np.broadcast_to(
                         estimate.sd[term.factor], (chains, draws, term.n_effects)).copy()}
        if term.factor in estimate.cor:
            posterior[f"cor_{term.factor}"] = np.broadcast_to(
                estimate.cor[term.factor], (chains, draws, 2, 2)).copy()
        posterior[f"r_{term.factor}"] = effects.reshape(chains, draws, term.n_levels,
                                                        term.n_effects)
        return posterior, estimate

    def _tree(self, data: MixedData, posterior: Mapping[str, NDArray],
              sample_stats: Mapping[str, NDArray], info: Mapping[str, Any],
              estimate: LMMEstimate | None) -> xr.DataTree:
        """Posterior, observed y by row, sampler statistics, the table in ``input_data``,
        and the model's spec, notes, resolved priors and REML estimate in the attributes."""
        dims, coords = posterior_dims(data.design)
        cross = data.full_design.cross
        rows: dict[str, Any]
        if cross is not None:
            dim, levels = data.level_dim()
            observed = {"y_mean": cross.y_sum / cross.n}
            observed_dims, rows = {"y_mean": [dim]}, {dim: list(levels)}
        else:
            observed, observed_dims = {"y": data.design.y}, {"y": ["row"]}
            rows = {"row": data.rows}
        groups: dict[str, dict[str, NDArray]] = {
            "posterior": dict(posterior), "observed_data": observed}
        if sample_stats:
            groups["sample_stats"] = dict(sample_stats)
        attrs = record_attrs(
            self.kind, self.spec(),
            {"notes": list(data.full_design.notes),
             "dropped_rows": data.full_design.dropped_rows},
            {"info": dict(info), "priors": data.priors.spec(),
             "estimate": None if estimate is None else estimate_to_dict(estimate)})
        tree = _arviz.make_datatree(
            groups, dims={**{k: dims[k] for k in posterior}, **observed_dims},
            coords={**coords, **rows}, attrs=attrs)
        if data.streamed:
            tree[INPUT_GROUP] = xr.DataTree(table_to_dataset(data.table))
            tree[CROSS_GROUP] = xr.DataTree(_cross_dataset(data))
        else:
            tree[INPUT_GROUP] = xr.DataTree(
                table_to_dataset(data.table).assign_coords(row=data.rows))
        return tree

    # ------------------------------------------------------------------ checks
    def check_data(self, data: MixedData, replicated: Mapping[str, NDArray]
                   ) -> list[CheckData]:
        """The response per row (y / trials for the binomial family), grouped by the
        levels of the formula's first grouping factor."""
        design = data.design
        cross = data.full_design.cross
        if cross is not None:  # each level's mean response: the rows are not held
            dim, levels = data.level_dim()
            return [CheckData("y_mean", cross.y_sum / cross.n,
                              np.asarray(replicated["y_mean"], dtype=float),
                              np.asarray(levels, dtype=str) if data.full_design.terms else None,
                              label=f"mean {design.response} per {dim}")]
        terms = data.full_design.terms
        groups = (np.asarray(terms[0].levels, dtype=str)[terms[0].index] if terms else None)
        draws = np.asarray(replicated["y"], dtype=float)
        if design.family == "binomial" and design.trials is not None:
            return [CheckData("y", design.y / design.trials, draws / design.trials, groups,
                              discrete=True, label="y / trials")]
        return [CheckData("y", design.y, draws, groups, discrete=design.family != "normal",
                          label=design.response)]

    def _prior_draws(self, data: MixedData, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """β, σ or φ, the sds, the correlations (LKJ), the group effects and y drawn from
        the resolved priors (all proper)."""
        if self.method == "eb-ml":
            raise SpecificationError(
                f"eb-ml ({self._eb_ml_phrase()}) estimates the variance parameters and gives "
                "β a flat prior: it "
                "has no prior to draw from; use method 'nuts' for the prior predictive")
        design, priors = data.design, data.priors
        dims, coords = posterior_dims(design)
        b = priors.sample_fixed(rng, size)
        prior: dict[str, tuple[NDArray, list[str]]] = {"b": (b, dims["b"])}
        parameter = None  # σ or φ
        if priors.family_parameter is not None:
            name, dist = priors.family_parameter
            parameter = np.asarray(dist.sample(rng, size), dtype=float)
            prior[name] = (parameter, [])
        scales: dict[str, tuple[NDArray, NDArray]] = {}
        for term in design.terms:
            sd = np.column_stack([sample_sd(priors, term.factor, e, parameter, rng, size)
                                  for e in term.names])
            prior[f"sd_{term.factor}"] = (sd, dims[f"sd_{term.factor}"])
            chol: NDArray = np.broadcast_to(np.eye(term.n_effects),
                                            (size, term.n_effects, term.n_effects))
            if correlated(term):
                chol = _lkj_cholesky(rng, term.n_effects, priors.cor[term.factor], size)
                prior[f"cor_{term.factor}"] = (chol @ np.swapaxes(chol, -1, -2),
                                               dims[f"cor_{term.factor}"])
            scales[term.factor] = (sd, chol)
        effects, predictive, more = _simulate(data, b, parameter, scales, rng)
        return {**prior, **effects}, predictive, {**coords, **more}

    # ------------------------------------------------------------------ calibration
    def _with_simulated(self, data: MixedData, simulated: Mapping[str, NDArray]) -> MixedData:
        """The rows with a simulated response, every covariate, trial count and offset
        kept, and the priors those of the user's data."""
        if data.streamed:
            data.full_design.needs_rows("calibration")
        y = np.asarray(simulated["y"], dtype=float)
        return replace(data, design=replace(data.design, y=y),
                       full_design=replace(data.full_design, y=y))

    def _fitted_draws(self, fit: Fit, rng: np.random.Generator, size: int
                      ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                 dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """The group effects and y drawn with β, σ, the sds and correlations at eb-ml's
        estimates."""
        estimate = getattr(fit, "estimate", None)
        if estimate is None:
            raise SpecificationError("only eb-ml has estimates to simulate from")
        data = fit.data
        b = np.broadcast_to(np.asarray(estimate.beta, dtype=float),
                            (size, len(estimate.beta)))
        parameter = None if estimate.sigma is None else np.full(size, estimate.sigma)
        scales = {}
        for term in data.design.terms:
            cor = estimate.cor.get(term.factor, np.eye(term.n_effects))
            scales[term.factor] = (
                np.broadcast_to(np.asarray(estimate.sd[term.factor], dtype=float),
                                (size, term.n_effects)),
                np.broadcast_to(np.linalg.cholesky(cor), (size, term.n_effects,
                                                          term.n_effects)))
        effects, predictive, more = _simulate(data, b, parameter, scales, rng)
        return effects, predictive, {**posterior_dims(data.design)[1], **more}

    def _group_dims(self, data: MixedData) -> tuple[str, ...]:
        return tuple(term.factor for term in data.design.terms)


def likelihood_statistics(estimate: LMMEstimate, n_obs: int) -> dict[str, float]:
    """What lme4's summary prints of a fit's likelihood (its ``llikAIC``). For REML the
    ``REML criterion`` at convergence, −2ℓ_REML; for ML (``reml=False``, and every GLMM)

        AIC = −2ℓ + 2k,   BIC = −2ℓ + k log n,   logLik = ℓ,   deviance = −2ℓ,
        df.resid = n − k,

    with ``df`` = k counting what was estimated: β, each group term's sds and
    correlations, and σ (lme4's ``attr(logLik(fit), "df")``; sleepstudy's
    ``Reaction ~ Days + (Days | Subject)``: 2 + 3 + 1 = 6).
    """
    log_lik = estimate.log_likelihood
    if estimate.method == "REML":
        return {"REML criterion": -2.0 * log_lik}
    k = (estimate.beta.size + sum(sd.size for sd in estimate.sd.values())
         + sum(c.shape[0] * (c.shape[0] - 1) // 2 for c in estimate.cor.values())
         + (estimate.sigma is not None))
    return {"AIC": -2.0 * log_lik + 2.0 * k, "BIC": -2.0 * log_lik + k * float(np.log(n_obs)),
            "logLik": log_lik, "deviance": -2.0 * log_lik, "df.resid": float(n_obs - k),
            "df": float(k)}


def _simulate(data: MixedData, b: NDArray, parameter: NDArray | None,
              scales: Mapping[str, tuple[NDArray, NDArray]], rng: np.random.Generator
              ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                         dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
    """Given β (draws, p), σ or φ (draws,) and each term's sds (draws, k) and Cholesky
    factor of its correlations (draws, k, k): the group effects b_l = diag(sd) L z_l and
    the response y of the rows (a streamed design: each level's mean response)."""
    design = data.design
    dims, _ = posterior_dims(design)
    size = b.shape[0]
    effects: dict[str, tuple[NDArray, list[str]]] = {}
    eta = 0.0 if data.streamed else b @ design.x.T + (
        0.0 if design.offset is None else design.offset)
    for term in design.terms:
        sd, chol = scales[term.factor]
        white = rng.standard_normal((size, term.n_levels, term.n_effects))
        drawn = np.einsum("sij,slj->sli", sd[:, :, None] * chol, white)
        effects[f"r_{term.factor}"] = (drawn, dims[f"r_{term.factor}"])
        if not data.streamed:
            eta = eta + np.einsum("sre,re->sr", drawn[:, term.index, :], term.z)
    if data.streamed:
        assert parameter is not None  # σ: the normal family
        first = effects[f"r_{design.terms[0].factor}"][0] if design.terms else None
        dim, levels = data.level_dim()
        means = level_means(data.full_design, b, first, parameter, rng)[1]
        return effects, {"y_mean": (means, [dim])}, {dim: list(levels)}
    _, y = response_draws(design.family, np.asarray(eta), design.trials, parameter, rng)
    return effects, {"y": (y, ["row"])}, {"row": data.rows}


def _finite(info: Mapping[str, Any]) -> dict[str, Any]:
    """The info with infinite numbers (k̂ where no mode was found) as None, for JSON."""
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v
            for k, v in info.items()}


def _variable_order(design: MixedDesign) -> list[str]:
    """The posterior's variables in the order of the summary: b, sigma or phi, each
    factor's sd_ and cor_, then the group effects r_."""
    names = ["b", "sigma", "phi"]
    names += [f"{kind}_{term.factor}" for term in design.terms for kind in ("sd", "cor")]
    return names + [f"r_{term.factor}" for term in design.terms]


def _lkj_cholesky(rng: np.random.Generator, dimension: int, eta: float, size: int
                  ) -> NDArray[np.float64]:
    """``size`` Cholesky factors of LKJ(η) correlation matrices (NumPyro's LKJCholesky,
    its key drawn from ``rng``)."""
    import jax
    from numpyro.distributions import LKJCholesky

    key = jax.random.PRNGKey(int(rng.integers(2**31 - 1)))
    return np.asarray(LKJCholesky(dimension, eta).sample(key, (size,)), dtype=float)


def response_draws(family: str, eta: NDArray, trials: NDArray | None,
                   parameter: NDArray | None, rng: np.random.Generator
                   ) -> tuple[NDArray, NDArray]:
    """The mean response E[y | η] (η; n·logit⁻¹(η); e^η, the offset inside η) and a new
    observation y* per draw and row; ``eta`` shaped (draws, rows), ``parameter`` (draws,)
    the family's σ (normal) or φ (negbinomial).

    A negative binomial count is drawn as its gamma–Poisson mixture: λ ~ Gamma(shape φ,
    scale μ/φ), then y* ~ Poisson(λ)."""
    from scipy import special

    if family == "normal":
        assert parameter is not None  # the normal family has σ
        sigma = np.asarray(parameter, dtype=float).reshape(-1, 1)
        return eta, eta + sigma * rng.standard_normal(eta.shape)
    if FAMILIES[family] == "log":  # poisson, negbinomial
        with np.errstate(over="ignore"):
            mu = np.exp(eta)
        rate = np.minimum(mu, POISSON_LIMIT)
        if family == "negbinomial":
            assert parameter is not None  # the negative binomial has φ
            phi = np.asarray(parameter, dtype=float).reshape(-1, 1)
            rate = np.minimum(rng.gamma(phi, rate / phi), POISSON_LIMIT)
        return mu, rng.poisson(rate).astype(float)
    p = np.asarray(special.expit(eta))
    n = np.ones(eta.shape[-1]) if trials is None else np.asarray(trials, dtype=float)
    return p * n, rng.binomial(n.astype(np.int64), p).astype(float)


def level_means(design: MixedDesign, b: NDArray, effects: NDArray | None, sigma: NDArray,
                rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """The mean response of each level's rows of a streamed design at each draw, and a
    replicate of it: with Σx_j and Σz_j the level's column sums,

        E[ȳ_j] = (Σx_jᵀβ + Σz_jᵀb_j) / n_j,   ȳ_j^rep = E[ȳ_j] + σ ε / √n_j,

    the mean of n_j new observations y_i ~ N(η_i, σ²) at the level's rows. ``b`` (draws,
    p), ``effects`` (draws, levels, k) or None (no group terms), ``sigma`` (draws,)."""
    cross = design.cross
    assert cross is not None
    expected = b @ cross.x_sum.T
    if effects is not None:
        expected = expected + np.einsum("dlk,lk->dl", effects, cross.z_sum)
    expected = expected / cross.n
    noise = rng.standard_normal(expected.shape)
    return expected, expected + np.asarray(sigma).reshape(-1, 1) * noise / np.sqrt(cross.n)


def level_log_likelihood(design: MixedDesign, b: NDArray, effects: NDArray | None,
                         sigma: NDArray) -> NDArray:
    """log p(y_j | β, b_j, σ) of each level's rows at each draw (draws, levels), from the
    level's sums: −½ n_j log(2πσ²) − S_j / (2σ²) with the residual sum of squares

        S_j = y_jᵀy_j − 2βᵀX_jᵀy_j − 2b_jᵀZ_jᵀy_j + βᵀX_jᵀX_jβ + 2b_jᵀZ_jᵀX_jβ
              + b_jᵀZ_jᵀZ_jb_j.
    """
    cross = design.cross
    assert cross is not None
    squares = (cross.yty - 2.0 * b @ cross.xty.T
               + np.einsum("dp,lpq,dq->dl", b, cross.xtx, b, optimize=True))
    if effects is not None:
        squares = squares + np.einsum(
            "dlk,lk->dl", effects, -2.0 * cross.zty) + 2.0 * np.einsum(
            "dlk,lkp,dp->dl", effects, cross.ztx, b, optimize=True) + np.einsum(
            "dlk,lkm,dlm->dl", effects, cross.ztz, effects, optimize=True)
    variance = np.square(np.asarray(sigma)).reshape(-1, 1)
    return np.asarray(-0.5 * cross.n * np.log(2.0 * np.pi * variance) - squares / (2.0 * variance))


def _cross_dataset(data: MixedData) -> xr.Dataset:
    """A streamed design's per-level sums as a dataset (dims level, effect, coef)."""
    cross = data.full_design.cross
    assert cross is not None
    terms = data.full_design.terms
    effects = list(terms[0].names) if terms else []
    dims = {"n": ["level"], "z_sum": ["level", "effect"],
            "ztz": ["level", "effect", "effect_bis"], "ztx": ["level", "effect", "coef"],
            "zty": ["level", "effect"], "x_sum": ["level", "coef"],
            "xtx": ["level", "coef", "coef_bis"], "xty": ["level", "coef"],
            "y_sum": ["level"], "yty": ["level"]}
    coefs = list(data.full_design.fixed_names)
    return xr.Dataset({name: (dims[name], getattr(cross, name)) for name in cross.FIELDS},
                      coords={"level": list(data.level_dim()[1]), "effect": effects,
                              "effect_bis": effects, "coef": coefs, "coef_bis": coefs},
                      attrs={RANGES_ATTR: ranges_to_text(data.full_design.ranges)})


# ----------------------------------------------------------------------------- the fit
@dataclass(frozen=True, repr=False)  # Fit.__repr__: one line, not the tree
class MixedFit(Fit):
    """Posterior draws of a :class:`MixedModel` (``eb-ml``: draws given the REML estimates,
    which ``estimate`` holds and the summary shows).

    ``predict`` answers (:mod:`poolwise.results.prediction`), each from the fit's draws:

    * ``ExistingGroup(group, factor=None)``: ``mu`` = E[y | η] and ``y`` at the group's own
      fitted rows (dim ``row``); ``factor`` defaults to the formula's first grouping factor.
    * ``NewGroup()`` (partial pooling): ``coef`` = β + b_new, b_new ~ N(0, Σ), over the
      effects of the formula's first grouping factor (NewGroup names no factor).
    * ``NewGroupIn(parent)`` (nested factors, e.g. ``(1 | school/classroom)``): ``coef``
      of a new classroom in school ``parent``: β + b_school[parent] + b_new.
    * ``Population()``: ``coef`` = β (dim ``effect``).
    * ``NewRows(data, groups)`` (partial or complete pooling): ``mu`` and ``y`` per row.
    """

    estimate: LMMEstimate | None = None

    @property
    def method(self) -> str:
        """The method that ran: the model's, or ``nuts`` where ``importance`` fell back
        (``info["fallback"]`` says why)."""
        return str(self.info.get("method", self.model.method))

    def title(self) -> str:
        return str(self.model.title(self.data, self.method))

    @property
    def effective_fraction(self) -> float | None:
        """``importance``: the resampled draws' ESS (from the weights) per draw."""
        if self.method != "importance":
            return None
        return float(self.info["ess"]) / (self.config.chains * self.config.draws)

    @property
    def design(self) -> MixedDesign:
        """The pooling level's design."""
        return self.data.design

    @property
    def full_design(self) -> MixedDesign:
        """The formula's design (its group terms whatever the pooling)."""
        return self.data.full_design

    @property
    def priors(self) -> MixedPriors:
        return self.data.priors

    @property
    def group_dims(self) -> tuple[str, ...]:
        return tuple(term.factor for term in self.design.terms)

    # ------------------------------------------------------------------ summaries
    def _summary(self, ci_prob: float, diagnostics: bool) -> pd.DataFrame:
        """Fixed effects ``b[…]``, ``sigma``, group-level sds ``sd_<factor>[…]`` and
        correlations ``cor_<factor>[a, b]`` (each pair once), then the group effects
        ``r_<factor>[effect]`` with the level in ``group``. ``eb-ml``: the REML estimates
        as lme4 reports them (β with its standard errors and Wald intervals, the
        variance parameters, the conditional modes)."""
        if self.estimate is not None:
            return self._summary_reml(ci_prob)
        weighted = self.method == "importance"
        table = posterior_summary(self.posterior, ci_prob,
                                  diagnostics=diagnostics and not weighted,
                                  group_dims=self.group_dims)
        if weighted and diagnostics:
            # resampled draws repeat points: their ESS is the weights', not their count
            ess = float(self.info["ess"])
            table["ess_bulk"] = table["ess_tail"] = ess
            table["mcse_mean"] = table["sd"] / np.sqrt(ess)
        # a correlation matrix is symmetric with a unit diagonal: keep each pair once
        effects = {f"cor_{term.factor}": term.names for term in self.design.terms}
        keep = np.ones(len(table), dtype=bool)
        for i, param in enumerate(table["param"]):
            name, _, inner = param.partition("[")
            if name in effects:
                first, second = inner.rstrip("]").split(", ")
                keep[i] = effects[name].index(first) > effects[name].index(second)
        table = table[keep]
        # population-level rows first, then the group effects
        return pd.concat([table[table["group"].isna()], table[table["group"].notna()]],
                         ignore_index=True)

    def likelihood_statistics(self) -> dict[str, float] | None:
        """eb-ml: lme4's ``REML criterion``, or for ML ``AIC``, ``BIC``, ``logLik``,
        ``deviance``, ``df.resid`` and ``df`` (:func:`likelihood_statistics`); None for
        full Bayes."""
        if self.estimate is None:
            return None
        found = self.info.get("likelihood")
        return dict(found) if found is not None else likelihood_statistics(
            self.estimate, self.design.n_obs)

    def interval_notes(self, ci_prob: float = 0.95) -> dict[str, str]:
        """eb-ml: β's intervals are Wald intervals, the group effects' equal-tailed
        intervals of their draws given the estimates; σ, the sds and correlations have
        none."""
        from scipy import stats

        if self.estimate is None:
            return {}
        z = stats.norm.ppf(0.5 + ci_prob / 2)
        method = self.estimate.method.split(" ")[0]  # REML, or ML (by …)
        notes = {"b": f"Wald: estimate ± {z:.3g} × sd, the standard error, as lme4's "
                      'confint(method = "Wald"); not a posterior interval'}
        for term in self.design.terms:
            notes[f"r_{term.factor}"] = (
                "conditional: equal-tailed, of the group effects drawn given the "
                f"{method} estimates of the variance parameters (β drawn from N(β̂, Cov β̂))")
        fixed = ["sigma"] if self.estimate.sigma is not None else []
        fixed += [f"{kind}_{term.factor}" for term in self.design.terms
                  for kind in ("sd", "cor") if kind == "sd" or correlated(term)]
        if fixed:
            notes[", ".join(fixed)] = "none: point estimates"
        return notes

    def _summary_reml(self, ci_prob: float) -> pd.DataFrame:
        from scipy import stats

        estimate = self.estimate
        assert estimate is not None
        z = stats.norm.ppf(0.5 + ci_prob / 2)
        rows = []
        for name, value, se in zip(self.design.fixed_names, estimate.beta, estimate.beta_se,
                                   strict=True):
            rows.append({"param": f"b[{name}]", "group": None, "mean": value, "sd": se,
                         "lower": value - z * se, "upper": value + z * se})
        if estimate.sigma is not None:
            rows.append({"param": "sigma", "group": None, "mean": estimate.sigma})
        for term in self.design.terms:
            sds = estimate.sd[term.factor]
            for effect, value in zip(term.names, sds, strict=True):
                rows.append({"param": f"sd_{term.factor}[{effect}]", "group": None,
                             "mean": value})
            if term.factor in estimate.cor:
                cor = estimate.cor[term.factor]
                for a in range(term.n_effects):
                    for b in range(a):
                        rows.append({"param": f"cor_{term.factor}[{term.names[a]}, "
                                     f"{term.names[b]}]", "group": None, "mean": cor[a, b]})
        for term in self.design.terms:
            # the conditional modes (BLUPs), as lme4's ranef, with the sd and interval of the
            # effects drawn given the REML variance estimates (they carry β's uncertainty
            # too, which lme4's condVar, at β̂, leaves out)
            modes = estimate.random_effects[term.factor]
            draws = self.draws(f"r_{term.factor}")
            draws = draws.reshape(-1, *draws.shape[2:])
            sds = draws.std(axis=0, ddof=1)
            lower, upper = quantile_interval(draws, ci_prob)
            for i, level in enumerate(term.levels):
                rows += [{"param": f"r_{term.factor}[{effect}]", "group": level,
                          "mean": modes[i, e], "sd": sds[i, e], "lower": lower[i, e],
                          "upper": upper[i, e]} for e, effect in enumerate(term.names)]
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    @classmethod
    def comparison_table(cls, fits: Mapping[str, Fit], ci_prob: float = 0.95) -> pd.DataFrame:
        """The population-level parameters (fixed effects shared by the fits, σ, group
        sds) side by side: one row per parameter, the partial fit's first, then no
        pooling's per-group coefficients; ``<pooling>_mean/lower/upper`` columns."""
        tables = {label: fit.summary(ci_prob, diagnostics=False).query("group.isna()")
                  for label, fit in fits.items()}
        ordered = sorted(tables.items(), key=lambda item: item[0] != "partial")
        params = list(dict.fromkeys(p for _, t in ordered for p in t["param"]))
        out = pd.DataFrame({"param": params})
        for label, table in tables.items():
            indexed = table.set_index("param")
            for column in ("mean", "lower", "upper"):
                out[f"{label}_{column}"] = indexed[column].reindex(params).to_numpy()
        return out

    # ------------------------------------------------------------------ draws
    def _flat(self, name: str) -> NDArray[np.float64]:
        """(chain, draw, ...) → (draws, ...); a thinned fit has fewer than its settings."""
        values = self.draws(name)
        return values.reshape(-1, *values.shape[2:])

    def _family_parameter(self) -> NDArray[np.float64] | None:
        """The draws of σ (normal family) or φ (negbinomial); None for the others."""
        name = FAMILY_PARAMETERS.get(self.design.family)
        return None if name is None else self._flat(name)

    def linear_predictor(self) -> NDArray[np.float64]:
        """η of every fitted row at every draw, with its group effects: (draws, rows)."""
        design = self.design
        design.needs_rows("the linear predictor of every row")
        eta = self._flat("b") @ design.x.T
        if design.offset is not None:
            eta = eta + design.offset
        for term in design.terms:
            effects = self._flat(f"r_{term.factor}")
            eta = eta + np.einsum("dre,re->dr", effects[:, term.index, :], term.z)
        return np.asarray(eta)

    def _new_effects(self, rng: np.random.Generator, term: GroupTerm,
                     levels: int) -> NDArray[np.float64]:
        """Group effects of ``levels`` new levels of ``term`` at each draw:
        N(0, diag(sd) R diag(sd)), drawn as diag(sd) chol(R) ε."""
        k = term.n_effects
        sd = self._flat(f"sd_{term.factor}")
        chol: NDArray = np.broadcast_to(np.eye(k), (sd.shape[0], k, k))
        if f"cor_{term.factor}" in self.posterior:
            chol = np.linalg.cholesky(self._flat(f"cor_{term.factor}") + 1e-12 * np.eye(k))
        white = rng.standard_normal((sd.shape[0], levels, k))
        return np.asarray(np.einsum("dij,dlj->dli", sd[:, :, None] * chol, white))

    def log_likelihood(self) -> NDArray[np.float64]:
        """Pointwise log p(y_i | η_i, σ or φ) at every draw, shaped (chain, draw, row); for
        a streamed fit, of each level's rows together, shaped (chain, draw, level)."""
        from scipy import special, stats

        from poolwise.families import negative_binomial

        design = self.design
        if design.streamed:
            values = level_log_likelihood(self.full_design, self._flat("b"),
                                          self._level_effects(), self._flat("sigma"))
            return values.reshape(self.config.chains, self.config.draws, -1)
        eta = self.linear_predictor()
        if design.family == "normal":
            values = stats.norm.logpdf(design.y, loc=eta, scale=self._flat("sigma")[:, None])
        elif design.family == "poisson":
            values = stats.poisson.logpmf(design.y, np.exp(eta))
        elif design.family == "negbinomial":
            values = negative_binomial.log_pmf(design.y, eta, self._flat("phi")[:, None])
        else:
            trials = design.trials if design.trials is not None else np.ones(design.n_obs)
            values = stats.binom.logpmf(design.y, trials, special.expit(eta))
        return np.asarray(values).reshape(self.config.chains, self.config.draws, -1)

    def _level_effects(self) -> NDArray | None:
        """A streamed fit's group effects (draws, levels, k); None without group terms."""
        terms = self.design.terms
        return self._flat(f"r_{terms[0].factor}") if terms else None

    def point_groupings(self) -> dict[str, NDArray]:
        """Any column of the model's table (a grouping factor, or a covariate such as a
        day): each row's value. A streamed fit's points are its levels: none."""
        if self.data.streamed:
            return {}
        table = self.data.table
        return {str(column): table[column].to_numpy() for column in table.columns}

    def _log_likelihood(self) -> tuple[NDArray, str, NDArray]:
        """log p(y_i | η_i, σ) of each row (for PSIS-LOO); of each level's rows for a
        streamed fit (leave one level out)."""
        if self.data.streamed:
            dim, levels = self.data.level_dim()
            return self.log_likelihood(), dim, np.asarray(levels)
        return self.log_likelihood(), "row", self.data.rows

    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """y per row drawn afresh from η (with the group effects) at each draw; for a
        streamed fit, each level's mean response (:func:`level_means`)."""
        design = self.design
        if design.streamed:
            dim, _ = self.data.level_dim()
            means = level_means(self.full_design, self._flat("b"), self._level_effects(),
                                self._flat("sigma"), rng)[1]
            return {"y_mean": (means.reshape(self.config.chains, self.config.draws, -1),
                               [dim])}
        _, y = response_draws(design.family, self.linear_predictor(), design.trials,
                              self._family_parameter(), rng)
        posterior = self.posterior
        return {"y": (y.reshape(posterior.sizes["chain"], posterior.sizes["draw"], -1),
                      ["row"])}

    # ------------------------------------------------------------------ predictions
    @property
    def _source(self) -> str:
        return (f"the draws given the {self.estimate.method} estimates"
                if self.estimate is not None else "the posterior")

    def _answers(self) -> dict[type, Answer]:
        # a group's own rows are not held by a streamed fit
        answers: dict[type, Answer] = (
            {ExistingGroup: self._existing_group}
            if self.full_design.terms and not self.data.streamed else {})
        if self.model.pooling == "partial":
            answers |= {NewGroup: self._new_group, NewGroupIn: self._new_group_in}
        if self.model.pooling != "none":
            answers |= {Population: self._population, NewRows: self._new_rows}
        return answers

    def _factor(self, factor: str | None) -> GroupTerm:
        """The formula's grouping factor ``factor`` (default the first)."""
        terms = self.full_design.terms
        if factor is None:
            return terms[0]
        for term in terms:
            if term.factor == str(factor):
                return term
        raise SpecificationError(f"no grouping factor {factor!r}; the formula's factors are "
                                 f"{', '.join(t.factor for t in terms)}")

    def _existing_group(self, request: ExistingGroup, rng: np.random.Generator) -> Prediction:
        """New observations at the fitted rows of one level: η from the draws (its
        coefficients and group effects), then y*."""
        if request.size is not None:
            raise SpecificationError(
                "a mixed model predicts a group's new observations at its own fitted rows, "
                "so ExistingGroup takes no size; for other rows or covariates use "
                "NewRows(data)")
        term = self._factor(request.factor)
        level = _level_index(term, request.group)
        selected = np.flatnonzero(term.index == level)
        design = self.design
        trials = None if design.trials is None else design.trials[selected]
        mu, y = response_draws(design.family, self.linear_predictor()[:, selected], trials,
                               self._family_parameter(), rng)
        what = (f"new observations at the {selected.size} fitted rows of {term.factor} "
                f"{request.group!r}: η from {self._source} (coefficients and group effects "
                "held at each draw), mu = E[y | η] and y* drawn afresh")
        return Prediction(request, what, prediction_dataset(
            {"mu": (mu, ["row"]), "y": (y, ["row"])}, self.config.chains,
            {"row": self.data.rows[selected]}))

    def _fixed_part(self, effects: tuple[str, ...]) -> NDArray[np.float64]:
        """β of each named effect at each draw (0 where it is not a fixed effect)."""
        b = self._flat("b")
        names = list(self.design.fixed_names)
        out = np.zeros((b.shape[0], len(effects)))
        for j, effect in enumerate(effects):
            if effect in names:
                out[:, j] = b[:, names.index(effect)]
        return out

    def _new_group(self, request: NewGroup, rng: np.random.Generator) -> Prediction:
        """β + b_new, b_new ~ N(0, Σ) at each draw, for a new level of the first grouping
        factor."""
        if request.size is not None or request.y is not None:
            raise SpecificationError(
                "NewGroup draws a new level's coefficients of a mixed model; it takes no y or "
                "size (predict rows of a new level with NewRows(data, groups='new'))")
        term = self.design.terms[0]
        coef = self._fixed_part(term.names) + self._new_effects(rng, term, 1)[:, 0, :]
        what = (f"the coefficients β + b_new of a new {term.factor} (the formula's first "
                f"grouping factor): β from {self._source}, b_new ~ N(0, Σ_{term.factor}) "
                "drawn afresh at each draw")
        return Prediction(request, what, prediction_dataset(
            {"coef": (coef, ["effect"])}, self.config.chains, {"effect": list(term.names)}))

    def _new_group_in(self, request: NewGroupIn, rng: np.random.Generator) -> Prediction:
        """β + the parent's effects (and its ancestors') + a new child level's effects drawn
        from N(0, Σ_child), for nested factors such as (1 | school/classroom)."""
        if request.size is not None:
            raise SpecificationError("NewGroupIn draws a new level's coefficients of a mixed "
                                     "model; it takes no size")
        terms = self.design.terms
        parts = {t.factor: tuple(t.factor.split(":")) for t in terms}
        pairs = [(outer, inner) for inner in terms for outer in terms
                 if len(parts[inner.factor]) == len(parts[outer.factor]) + 1
                 and parts[inner.factor][:-1] == parts[outer.factor]]
        if not pairs:
            raise SpecificationError(
                "NewGroupIn needs nested grouping factors such as (1 | school/classroom); "
                f"the formula's factors ({', '.join(t.factor for t in terms)}) are not nested: "
                "use NewGroup for a new level")
        parent = str(request.parent)
        chosen = [(o, i) for o, i in pairs if parent in o.levels]
        if not chosen:
            find_label(pairs[0][0].levels, parent, pairs[0][0].factor)  # raises
        outer, inner = chosen[0]
        depth = len(parts[outer.factor])
        ancestors = [t for t in terms if len(parts[t.factor]) <= depth
                     and parts[t.factor] == parts[outer.factor][:len(parts[t.factor])]]
        effects = tuple(dict.fromkeys([*inner.names, *(e for t in ancestors for e in t.names)]))
        coef = self._fixed_part(effects)
        pieces = parent.split(":")
        for term in ancestors:
            level = parent if term is outer else ":".join(pieces[:len(parts[term.factor])])
            held = self._flat(f"r_{term.factor}")[:, _level_index(term, level), :]
            for e, effect in enumerate(term.names):
                coef[:, effects.index(effect)] += held[:, e]
        new = self._new_effects(rng, inner, 1)[:, 0, :]
        for e, effect in enumerate(inner.names):
            coef[:, effects.index(effect)] += new[:, e]
        child = inner.factor.removeprefix(outer.factor + ":")
        what = (f"the coefficients of a new {child} in {outer.factor} {parent!r}: β and the "
                f"effects of {parent!r} from {self._source}, the new {child}'s effects drawn "
                f"afresh from N(0, Σ_{inner.factor}) at each draw")
        return Prediction(request, what, prediction_dataset(
            {"coef": (coef, ["effect"])}, self.config.chains, {"effect": list(effects)}))

    def _population(self, request: Population, rng: np.random.Generator) -> Prediction:
        """The fixed effects β (group effects at zero)."""
        names = list(self.design.fixed_names)
        what = f"the fixed effects β (group effects at 0), from {self._source}"
        return Prediction(request, what, prediction_dataset(
            {"coef": (self._flat("b"), ["effect"])}, self.config.chains, {"effect": names}))

    def _new_rows(self, request: NewRows, rng: np.random.Generator) -> Prediction:
        """mu = E[y | η] and y* for rows of covariates, their levels read as
        ``request.groups`` says (:class:`~poolwise.results.prediction.NewRows`)."""
        x, offset, trials, terms, labels = self._rows_design(request)
        eta = self._flat("b") @ x.T
        if offset is not None:
            eta = eta + offset
        counts = []
        for term in terms:
            fitted = next(t for t in self.design.terms if t.factor == term.factor)
            rows = labels[term.factor]
            present = np.array([label is not None for label in rows])
            if request.groups == "population":
                counts.append(f"{term.factor}: no group effects")
                continue
            known = {level: i for i, level in enumerate(fitted.levels)}
            existing = present & np.array([r in known for r in rows]) \
                if request.groups == "as-given" else np.zeros(len(rows), dtype=bool)
            new = present & ~existing
            effects = np.zeros((eta.shape[0], len(rows), term.n_effects))
            if existing.any():
                posterior = self._flat(f"r_{term.factor}")
                where = np.array([known[r] for r in np.asarray(rows, dtype=object)[existing]])
                effects[:, existing, :] = posterior[:, where, :]
            new_levels = list(dict.fromkeys(r for r, n in zip(rows, new, strict=True) if n))
            if new_levels:
                drawn = self._new_effects(rng, fitted, len(new_levels))
                position = {level: i for i, level in enumerate(new_levels)}
                where = np.array([position[r] for r in np.asarray(rows, dtype=object)[new]])
                effects[:, new, :] = drawn[:, where, :]
            eta = eta + np.einsum("dre,re->dr", effects, term.z)
            counts.append(
                f"{term.factor}: {_rows(int(existing.sum()))} at levels in the fit (effects "
                f"from {self._source}), {_rows(int(new.sum()))} at {len(new_levels)} new "
                f"level{'s' if len(new_levels) != 1 else ''} (effects drawn afresh from "
                f"N(0, Σ) at each draw), {_rows(int((~present).sum()))} without a level "
                "(no effect)")
        mu, y = response_draws(self.design.family, eta, trials, self._family_parameter(), rng)
        n = eta.shape[1]
        what = (f"mu = E[y | η] and y* drawn afresh for {_rows(n)} "
                f"(groups {request.groups!r}), β from {self._source}"
                + (f"; {'; '.join(counts)}" if counts else "; no group effects"))
        return Prediction(request, what, prediction_dataset(
            {"mu": (mu, ["row"]), "y": (y, ["row"])}, self.config.chains,
            {"row": np.arange(n)}), rows=request.data)

    def _rows_design(self, request: NewRows) -> tuple[
            NDArray, NDArray | None, NDArray | None, tuple[GroupTerm, ...],
            dict[str, list[str | None]]]:
        """X, offset, trials and the group terms (their Z) of new rows, and each row's level
        label of each factor (None where missing).

        The rows are appended to the fitted table so that the formula codes them as it
        coded the fit (categories, columns); the fitted rows must come out unchanged.
        """
        model = self.model
        stateful = [name for name in STATEFUL_FUNCTIONS
                    if f"{name}(" in model.formula.replace(" ", "")]
        if stateful:
            raise SpecificationError(
                f"the formula uses {', '.join(stateful)}, which are fitted to the data; "
                "transform the columns yourself before fitting to predict for new rows")
        new = request.data.reset_index(drop=True)
        if new.empty:
            raise DataError("NewRows has no rows")
        columns: FormulaColumns = model.columns
        fitted = self.data.table
        factor_columns = columns.factor_columns
        needed = [*columns.covariates, *([columns.trials] if columns.trials else [])]
        if model.pooling == "partial" and request.groups != "population":
            # a grouping column left out is missing on every row: no group effects
            new = new.assign(**{c: pd.Series(pd.NA, index=new.index, dtype=object)
                                for c in factor_columns if c not in new.columns})
            needed += factor_columns
        absent = [c for c in dict.fromkeys(needed) if c not in new.columns]
        if absent:
            raise DataError(f"the new rows lack the column(s) {', '.join(map(repr, absent))} "
                            "that the formula reads")
        for column in needed:
            if column not in factor_columns or column in columns.covariates:
                missing = np.flatnonzero(new[column].isna().to_numpy())
                if missing.size:
                    raise DataError(
                        f"new row {missing[0] + 1}: {column!r} is missing; only a grouping "
                        "factor may be missing (that row then gets no group effect)")
        extra = pd.DataFrame(index=np.arange(len(new)))
        for column in fitted.columns:
            if column in needed and column not in columns.response:
                values = new[column]
                if column in factor_columns and column not in columns.covariates:
                    values = values.where(values.notna(), fitted[column].iloc[0])
            else:  # the response, or a factor not needed: a placeholder from the fit
                values = pd.Series(np.repeat(fitted[column].to_numpy()[:1], len(new)))
            dtype = fitted[column].dtype
            if isinstance(dtype, pd.CategoricalDtype):
                coded = pd.Categorical(values, categories=dtype.categories,
                                       ordered=dtype.ordered)
                bad = np.flatnonzero(pd.isna(coded) & values.notna().to_numpy())
                if bad.size:
                    raise DataError(
                        f"new row {bad[0] + 1}: {column!r} is {values.iloc[bad[0]]!r}, not "
                        "one of the fitted data's categories "
                        f"({', '.join(map(str, dtype.categories))})")
                extra[column] = coded
            else:
                extra[column] = values.to_numpy()
        combined = pd.concat([fitted, extra], ignore_index=True)
        design = parse_formula(model.formula, combined, family=model.family, new_rows=True)
        size = len(fitted)
        reference = (parse_formula(model.formula, fitted, family=model.family, new_rows=True)
                     if self.data.streamed else self.full_design)  # a streamed fit: skeleton
        if design.fixed_names != self.full_design.fixed_names or not np.allclose(
                design.x[:size], reference.x):
            raise DataError(
                "the new rows change how the formula codes the columns (e.g. a categorical "
                "column with other categories, or other types); give the columns the fitted "
                "data's types and values")
        x = design.x[size:]
        offset = None if design.offset is None else design.offset[size:]
        trials = None if design.trials is None else design.trials[size:]
        terms: tuple[GroupTerm, ...] = ()
        labels: dict[str, list[str | None]] = {}
        if model.pooling == "partial":
            terms = tuple(replace(t, z=t.z[size:], index=t.index[size:]) for t in design.terms)
            for factor in columns.factors:
                labels[":".join(factor)] = (_level_labels(new, fitted, factor)
                                            if request.groups != "population"
                                            else [None] * len(new))
        return x, offset, trials, terms, labels

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> MixedFit:
        """The fit a saved tree holds: the model from its spec, the design rebuilt from the
        table in ``input_data``, the priors from their saved spec."""
        record = FitRecord(tree)
        model = MixedModel(**record.model)
        stored = tree[INPUT_GROUP].to_dataset()
        if CROSS_GROUP in tree.children:
            data = model._restore_streamed(
                dataset_to_table(stored), tree[CROSS_GROUP].to_dataset(),
                int(record.data["dropped_rows"]), tuple(record.data["notes"]),
                str(record.fitted["priors"]))
            estimate = record.fitted.get("estimate")
            return cls(model, data, tree, record.fitted["info"],
                       None if estimate is None else estimate_from_dict(estimate))
        data = model._restore(dataset_to_table(stored),
                              np.asarray(stored["row"].values, dtype=np.intp),
                              int(record.data["dropped_rows"]), tuple(record.data["notes"]),
                              str(record.fitted["priors"]))
        estimate = record.fitted.get("estimate")
        return cls(model, data, tree, record.fitted["info"],
                   None if estimate is None else estimate_from_dict(estimate))


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _level_index(term: GroupTerm, group: Any) -> int:
    """The position of level ``group`` of ``term``, or an error listing the levels."""
    return find_label(term.levels, group, term.factor)


def _level_labels(new: pd.DataFrame, fitted: pd.DataFrame,
                  factor: tuple[str, ...]) -> list[str | None]:
    """Each new row's level of ``factor`` written as the fit writes its levels ("A:a"),
    None where a column of it is missing. Values are first cast to the fitted column's
    type where that loses nothing (308.0 → 308 for an integer column)."""
    pieces = []
    for column in factor:
        values = new[column]
        present = values.notna().to_numpy()
        kept = values[present]
        dtype = fitted[column].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            dtype = dtype.categories.dtype
        if dtype.kind != "O":
            try:
                cast = kept.astype(dtype)
                if (cast == kept).all():
                    kept = cast
            except (TypeError, ValueError):
                pass
        text: list[str | None] = [None] * len(values)
        for i, value in zip(np.flatnonzero(present), kept, strict=True):
            text[i] = str(value)
        pieces.append(text)
    return [None if any(p is None for p in row) else ":".join(str(p) for p in row)
            for row in zip(*pieces, strict=True)]
