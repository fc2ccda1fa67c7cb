"""A mixed model is a formula × family × pooling × priors; fitting returns a :class:`MixedFit`.

>>> import poolwise
>>> sleep = poolwise.datasets.load("sleepstudy")
>>> model = poolwise.MixedModel("Reaction ~ Days + (Days | Subject)", sleep)
>>> model.priors.describe()[:2]
['b[Intercept] ~ Normal(298.508, 140.822)', 'b[Days] ~ Normal(0, 48.8915)']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._version import __version__
from poolwise.exceptions import DataError, SpecificationError
from poolwise.results.summary import SUMMARY_COLUMNS, posterior_draws, posterior_summary
from poolwise.results.summary import check_prob as _check_prob
from poolwise.inference.base import SamplerConfig
from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
from poolwise.kinds.mixed.formula import parse_formula, pooling_design
from poolwise.kinds.mixed.priors import MixedPriors, default_priors, parse_priors
from poolwise.vocabulary import POOLINGS

if TYPE_CHECKING:
    from poolwise.results.graph import ModelGraph

#: methods for mixed models: NUTS (full Bayes) and REML/ML point estimates (gaussian)
MIXED_METHODS = ("nuts", "eb-ml")
MIXED_PARAMETRISATIONS = ("auto", "marginal", "non-centred", "centred")
#: what ``predict`` can do with the group effects
PREDICTION_KINDS = ("groups", "new-groups", "population")


class MixedModel:
    """A (generalised) linear mixed model written as an lme4/brms formula.

    Parameters
    ----------
    formula
        e.g. ``"Reaction ~ Days + (Days | Subject)"``; see :mod:`poolwise.kinds.mixed.formula`
        for the syntax and the allowed transformations.
    data
        The table. Priors are scaled to it, so it is needed to show them.
    family
        ``"gaussian"`` (default), ``"binomial"`` (``y | trials(n) ~ …``), ``"bernoulli"``
        or ``"poisson"`` (with ``offset(log(exposure))`` if there is an exposure).
    pooling
        ``"partial"`` (the formula), ``"complete"`` (group terms dropped) or ``"none"``
        (each group's effects as fixed effects).
    priors
        Overrides of the default priors, e.g. ``"b[Days] = normal(10, 20); sd = halfnormal(30)"``
        (see :func:`poolwise.kinds.mixed.priors.parse_priors`), or a :class:`MixedPriors`.
    missing
        ``"refuse"`` (default) rows with missing values, or ``"drop"`` them.
    """

    def __init__(self, formula: str, data: pd.DataFrame, *, family: str = "gaussian",
                 pooling: str = "partial", priors: str | MixedPriors | None = None,
                 missing: str = "refuse") -> None:
        if pooling not in POOLINGS:
            raise SpecificationError(
                f"unknown pooling {pooling!r}; valid pooling levels: {', '.join(POOLINGS)}")
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        self.formula, self.family, self.pooling = formula, family, pooling
        self.full_design = parse_formula(formula, data, family=family, missing=missing)
        if pooling != "complete" and not self.full_design.terms:
            raise SpecificationError(
                f"the formula has no group terms such as (1 | group), so {pooling} pooling "
                "is the same as complete pooling: add a group term or use pooling 'complete'")
        if family == "gaussian" and pooling == "partial":
            for term in self.full_design.terms:
                if term.n_levels >= self.full_design.n_obs:
                    raise DataError(
                        f"grouping factor {term.factor!r} has {term.n_levels} levels for "
                        f"{self.full_design.n_obs} rows (one row each), so its sd and the "
                        "residual σ cannot be told apart (lme4 refuses this too); drop the "
                        "term or use a grouping with repeated rows")
        self.design = pooling_design(self.full_design, pooling)
        if isinstance(priors, MixedPriors):
            self.priors = priors
        elif priors is None or not priors.strip():
            self.priors = default_priors(self.design)
        else:
            self.priors = parse_priors(priors, self.design)

    def __repr__(self) -> str:
        return (f"MixedModel({self.formula!r}, family={self.family!r}, "
                f"pooling={self.pooling!r})")

    def graph(self) -> ModelGraph:
        """The model's probabilistic graphical model with its plates; draw it with
        :func:`poolwise.graph.render`."""
        from poolwise.kinds.mixed.graph import mixed_graph

        return mixed_graph(self)

    def equations(self) -> list[str]:
        """The model as LaTeX lines: likelihood, linear predictor, group effects, priors."""
        from poolwise.kinds.mixed.graph import mixed_equations

        return mixed_equations(self)

    def describe_prior(self) -> str:
        """The priors, one statement per parameter, separated by semicolons."""
        return "; ".join(self.priors.describe())

    def fit(self, *, method: str = "nuts", draws: int = 1000, chains: int = 4,
            warmup: int = 1000, seed: int = 0, progress: bool = False,
            parametrisation: str = "auto") -> MixedFit:
        """Fit by ``"nuts"`` (full Bayes; gaussian models marginalise the group effects by
        default) or ``"eb-ml"`` (REML point estimates, gaussian only)."""
        from poolwise.results.diagnostics import check_diagnostics

        if method not in MIXED_METHODS:
            raise SpecificationError(
                f"unknown method {method!r} for a mixed model; valid: {', '.join(MIXED_METHODS)}")
        if parametrisation not in MIXED_PARAMETRISATIONS:
            raise SpecificationError(
                f"unknown parametrisation {parametrisation!r}; valid: "
                f"{', '.join(MIXED_PARAMETRISATIONS)}")
        for name, value, least in (("draws", draws, 1), ("chains", chains, 1),
                                   ("warmup", warmup, 0)):
            # bool is an int subclass: draws=True would quietly mean one draw
            if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                    or value < least):
                raise SpecificationError(f"{name} must be an integer ≥ {least}, got {value!r}")
        config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=int(warmup),
                               seed=int(seed), progress=progress,
                               parametrisation=parametrisation)
        start = time.perf_counter()
        if method == "eb-ml":
            return self._fit_reml(config, start)
        from poolwise.kinds.mixed.inference import sample_mixed

        result = sample_mixed(self.design, self.priors, config, parametrisation=parametrisation)
        info = {**result.info, "seconds": time.perf_counter() - start}
        groups: dict[str, dict[str, np.ndarray]] = {"posterior": result.posterior,
                                                    "observed_data": {"y": self.design.y}}
        if result.sample_stats:
            groups["sample_stats"] = result.sample_stats
        tree = _arviz.make_datatree(
            groups, dims={**result.dims, "y": ["obs"]},
            coords={**result.coords, "obs": np.arange(self.design.n_obs)},
            attrs=self._attrs("nuts", config, info))
        fit = MixedFit(self, "nuts", config, tree, None, info)
        check_diagnostics(fit, stacklevel=2)  # type: ignore[arg-type]
        return fit

    def _fit_reml(self, config: SamplerConfig, start: float) -> MixedFit:
        if self.design.family != "gaussian":
            raise SpecificationError(
                "eb-ml (REML) is for gaussian mixed models; use method 'nuts' for the "
                f"{self.design.family} family")
        from poolwise.kinds.mixed.reml import fit_reml

        estimate = fit_reml(self.design, reml=True)
        info = {"seconds": time.perf_counter() - start}
        tree = _arviz.make_datatree({"observed_data": {"y": self.design.y}},
                                    dims={"y": ["obs"]},
                                    coords={"obs": np.arange(self.design.n_obs)},
                                    attrs=self._attrs("eb-ml", config, info))
        return MixedFit(self, "eb-ml", config, tree, estimate, info)

    def _attrs(self, method: str, config: SamplerConfig, info: dict[str, Any]) -> dict[str, Any]:
        import json

        return {"poolwise_version": __version__, "formula": self.formula,
                "family": self.family, "pooling": self.pooling, "priors": self.priors.spec(),
                "method": method, "seed": config.seed, "draws": config.draws,
                "chains": config.chains, "warmup": config.warmup,
                "parametrisation": config.parametrisation,
                "info": json.dumps(info, default=float)}


@dataclass(frozen=True)
class MixedFit:
    """Posterior draws (or REML estimates) of a :class:`MixedModel`."""

    model: MixedModel
    method: str
    config: SamplerConfig
    tree: xr.DataTree
    #: the REML estimate for ``eb-ml`` fits, else None
    estimate: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def design(self) -> MixedDesign:
        return self.model.design

    @property
    def posterior(self) -> xr.Dataset:
        if "posterior" not in self.tree.children:
            raise SpecificationError(f"a {self.method} fit has point estimates, no draws")
        return self.tree["posterior"].to_dataset()

    @property
    def is_mcmc(self) -> bool:
        return self.method == "nuts"

    def describe_prior(self) -> str:
        if self.method == "eb-ml":
            return "REML point estimates; no priors are used"
        return self.model.describe_prior()

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw, ...)."""
        return posterior_draws(self.posterior, name)

    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """Fixed effects ``b[…]``, ``sigma``, group-level sds ``sd_<factor>[…]`` and
        correlations ``cor_<factor>[a, b]`` (each pair once), then the group effects
        ``r_<factor>[effect]`` with the level in ``group``."""
        _check_prob(ci_prob)
        if self.estimate is not None:
            return self._summary_reml(ci_prob)
        factors = tuple(term.factor for term in self.design.terms)
        table = posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics,
                                  group_dims=factors)
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

    def _summary_reml(self, ci_prob: float) -> pd.DataFrame:
        from scipy import stats

        estimate = self.estimate
        z = stats.norm.ppf(0.5 + ci_prob / 2)
        rows = []
        for name, value, se in zip(self.design.fixed_names, estimate.beta, estimate.beta_se,
                                   strict=True):
            rows.append({"param": f"b[{name}]", "group": None, "mean": value, "sd": se,
                         "lower": value - z * se, "upper": value + z * se})
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
        for term in self.design.terms:  # the conditional modes (BLUPs), as lme4's ranef
            modes = estimate.random_effects[term.factor]
            for level, values in zip(term.levels, modes, strict=True):
                rows += [{"param": f"r_{term.factor}[{effect}]", "group": level,
                          "mean": value} for effect, value in zip(term.names, values,
                                                                   strict=True)]
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def linear_predictor(self, kind: str = "groups", *, data: pd.DataFrame | None = None,
                         seed: int | None = None) -> NDArray[np.float64]:
        """Draws of the linear predictor η for every row, shaped (draws, rows).

        ``"groups"``: with each row's own group effects; ``"new-groups"``: with group
        effects drawn afresh from the population N(0, Σ) at each draw (the rows' groups
        treated as new ones, full uncertainty); ``"population"``: group effects set to 0.
        The rows are the fitted data's, or those of ``data`` (new rows: the formula's
        columns; the response may be left out), see :meth:`design_for`.
        """
        if kind not in PREDICTION_KINDS:
            raise SpecificationError(
                f"unknown prediction kind {kind!r}; valid: {', '.join(PREDICTION_KINDS)}")
        design = self.design if data is None else self.design_for(data)
        b = self.draws("b").reshape(-1, len(design.fixed_names))
        eta = b @ design.x.T
        if design.offset is not None:
            eta = eta + design.offset
        if kind == "population":
            return np.asarray(eta)
        rng = np.random.default_rng(self.config.seed + 3 if seed is None else seed)
        for term, fitted in zip(design.terms, self.design.terms, strict=True):
            if kind == "groups":
                effects = self.draws(f"r_{term.factor}").reshape(
                    b.shape[0], fitted.n_levels, term.n_effects)
                index = _fitted_levels(term, fitted)
            else:
                effects = self._new_effects(rng, term.factor, term.n_levels, term.n_effects)
                index = term.index
            eta = eta + np.einsum("dre,re->dr", effects[:, index, :], term.z)
        return np.asarray(eta)

    def design_for(self, data: pd.DataFrame) -> MixedDesign:
        """The model's design on new rows (partial or complete pooling).

        The response column may be missing (a placeholder is used; it is not read). Refused
        when the formula has transformations fitted to the data (``scale``, ``centre``,
        ``poly``): recomputing them on the new rows would change their meaning.
        """
        if self.model.pooling == "none":
            raise SpecificationError(
                "predictions for new rows need partial or complete pooling; with no pooling "
                "each group's coefficients are separate parameters of the fitted data")
        stateful = [name for name in ("scale(", "center(", "centre(", "poly(")
                    if name in self.model.formula.replace(" ", "")]
        if stateful:
            raise SpecificationError(
                f"the formula uses {', '.join(n[:-1] for n in stateful)}, which are fitted "
                "to the data; transform the columns yourself before fitting to predict for "
                "new rows")
        table = data.copy()
        if self.design.response not in table:
            table[self.design.response] = 0
        new = parse_formula(self.model.formula, table, family=self.model.family,
                            new_rows=True)
        return pooling_design(new, self.model.pooling)

    def _new_effects(self, rng: np.random.Generator, factor: str, levels: int,
                     effects: int) -> NDArray[np.float64]:
        """Group effects of ``levels`` new groups at each draw: N(0, diag(sd) R diag(sd))."""
        sd = self.draws(f"sd_{factor}").reshape(-1, effects)
        cov = sd[:, :, None] * sd[:, None, :]
        if f"cor_{factor}" in self.posterior:
            cov = cov * self.draws(f"cor_{factor}").reshape(-1, effects, effects)
        else:
            cov = cov * np.eye(effects)
        chol = np.linalg.cholesky(cov + 1e-12 * np.eye(effects))
        z = rng.standard_normal((sd.shape[0], levels, effects))
        return np.asarray(np.einsum("dij,dlj->dli", chol, z))

    def predict(self, kind: str = "groups", *, data: pd.DataFrame | None = None,
                ci_prob: float = 0.95, seed: int | None = None) -> pd.DataFrame:
        """For every row (of the fitted data, or of new ``data``): the mean response
        μ = g⁻¹(η) (mean and interval) and a posterior predictive interval for a new
        observation y*. ``kind`` as in :meth:`linear_predictor`."""
        _check_prob(ci_prob)
        eta = self.linear_predictor(kind, data=data, seed=seed)
        design = self.design if data is None else self.design_for(data)
        # y* needs its own stream: default_rng(seed) is the one that drew the new groups'
        # effects, and reusing it would make y*'s noise equal to those effects
        rng = np.random.default_rng(self.config.seed + 4 if seed is None else [seed, 4])
        mu, y_new = _response_draws(design, eta, self, rng)
        tail = (1 - ci_prob) / 2
        lower, upper = np.quantile(mu, [tail, 1 - tail], axis=0)
        y_lower, y_upper = np.quantile(y_new, [tail, 1 - tail], axis=0)
        return pd.DataFrame({"mean": mu.mean(axis=0), "lower": lower, "upper": upper,
                             "y_lower": y_lower, "y_upper": y_upper})

    def log_likelihood(self) -> NDArray[np.float64]:
        """Pointwise log p(y_i | η_i, σ) at every draw, shaped (chain, draw, obs)."""
        from scipy import stats

        design = self.design
        eta = self.linear_predictor("groups")
        if design.family == "gaussian":
            sigma = self.draws("sigma").reshape(-1, 1)
            values = stats.norm.logpdf(design.y, loc=eta, scale=sigma)
        elif design.family == "poisson":
            values = stats.poisson.logpmf(design.y, np.exp(eta))
        else:
            trials = design.trials if design.trials is not None else np.ones(design.n_obs)
            values = stats.binom.logpmf(design.y, trials, special_expit(eta))
        return np.asarray(values).reshape(self.config.chains, self.config.draws, -1)

    def with_log_likelihood(self) -> xr.DataTree:
        """The DataTree with the pointwise log likelihood of each observation (for LOO)."""
        tree = self.tree.copy()
        posterior = self.posterior
        tree["log_likelihood"] = xr.DataTree(xr.Dataset(
            {"y": (("chain", "draw", "obs"), self.log_likelihood())},
            coords={"chain": posterior["chain"], "draw": posterior["draw"],
                    "obs": np.arange(self.design.n_obs)}))
        return tree

    def save(self, path: str) -> None:
        """Write the fit to NetCDF (an ArviZ DataTree; the settings in its attributes)."""
        _arviz.save(self.tree, path)


def _fitted_levels(term: GroupTerm, fitted: GroupTerm) -> NDArray[np.intp]:
    """Each new row's level as a position among the fitted term's levels; a level the fit
    has not seen has no posterior effect, so it is refused (predict it as a new group)."""
    position = {level: i for i, level in enumerate(fitted.levels)}
    unknown = [level for level in term.levels if level not in position]
    if unknown:
        raise SpecificationError(
            f"{term.factor} {', '.join(repr(u) for u in unknown[:5])} not in the fitted data; "
            "predict new groups with kind='new-groups'")
    mapping = np.array([position[level] for level in term.levels], dtype=np.intp)
    return np.asarray(mapping[term.index])


def special_expit(x: NDArray) -> NDArray:
    """The inverse logit 1/(1 + e^(−x))."""
    from scipy import special

    return np.asarray(special.expit(x))


@dataclass(frozen=True)
class MixedComparison:
    """One formula fitted at the three pooling levels."""

    fits: dict[str, MixedFit]

    def estimates(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """Population-level parameters (fixed effects shared by the fits, σ, group sds)
        side by side: one row per parameter, ``<pooling>_mean/lower/upper`` columns."""
        tables = {pooling: fit.summary(ci_prob, diagnostics=False).query("group.isna()")
                  for pooling, fit in self.fits.items()}
        # the partial fit's parameters (shared with the other fits where they have them)
        # first, then no pooling's per-group coefficients
        ordered = sorted(tables.items(), key=lambda item: item[0] != "partial")
        params = list(dict.fromkeys(p for _, t in ordered for p in t["param"]))
        out = pd.DataFrame({"param": params})
        for pooling, table in tables.items():
            indexed = table.set_index("param")
            for column in ("mean", "lower", "upper"):
                out[f"{pooling}_{column}"] = indexed[column].reindex(params).to_numpy()
        return out

    def predictive(self) -> pd.DataFrame:
        """PSIS-LOO expected log predictive density of each observation, best first."""
        from poolwise.results.comparison import loo_table

        return loo_table(self.fits)


def compare_mixed(formula: str, data: pd.DataFrame, *, family: str = "gaussian",
                  priors: str | None = None, missing: str = "refuse",
                  **fit_options: Any) -> MixedComparison:
    """Fit ``formula`` with no, complete and partial pooling (NUTS).

    ``priors`` apply to the partial fit only: the other two have other parameters
    (per-group coefficients, or no group sds) and use the default priors.
    """
    fits = {}
    for pooling in POOLINGS:
        model = MixedModel(formula, data, family=family, pooling=pooling, missing=missing,
                           priors=priors if pooling == "partial" else None)
        fits[pooling] = model.fit(**fit_options)
    return MixedComparison(fits)


def _response_draws(design: MixedDesign, eta: NDArray, fit: MixedFit,
                    rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """μ = g⁻¹(η) and y* ~ p(y | μ) per draw and row."""
    if design.family == "gaussian":
        sigma = fit.draws("sigma").reshape(-1, 1)
        return eta, eta + sigma * rng.standard_normal(eta.shape)
    if design.family == "poisson":
        mu = np.exp(eta)
        return mu, rng.poisson(mu).astype(float)
    p = special_expit(eta)
    trials = design.trials if design.trials is not None else np.ones(eta.shape[1])
    return p * trials, rng.binomial(trials.astype(np.int64), p).astype(float)


__all__ = ["MIXED_METHODS", "PREDICTION_KINDS", "MixedComparison", "MixedFit", "MixedModel",
           "compare_mixed"]
