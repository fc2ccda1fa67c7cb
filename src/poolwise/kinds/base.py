"""What every model kind shares: one constructor convention and one way to fit.

A model is a specification (scikit-learn's rule): its constructor takes keyword arguments
only, with the same names and meanings in every kind — ``family``, ``pooling``, ``prior``,
``method``, ``draws``, ``chains``, ``warmup``, ``seed``, ``progress``, ``target_accept``,
``parametrisation`` — checks them against the one table of
:data:`poolwise.vocabulary.SETTINGS` plus the kind's own rows, and stores them. Fitting
takes the data, the same way for every kind (a table and the names of its columns), and
returns a new :class:`~poolwise.results.fit.Fit`:

    model.fit(data, y=..., n=..., se=..., group=...)

``method=None`` means the kind's default for its pooling level (the first of its
:attr:`BaseModel.METHODS` row). Everything a model is given can be written back out
(:meth:`BaseModel.spec`), which is how a saved fit knows its model.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypedDict

import numpy as np

from poolwise import _arviz
from poolwise._random import Stream, generator
from poolwise.exceptions import PoolwiseError, SpecificationError
from poolwise.inference.base import SamplerConfig
from poolwise.inference.eb_intervals import KASS_STEFFEY
from poolwise.resources import (
    MemoryEstimate,
    MemoryLimits,
    check_memory,
    format_bytes,
    jax_reserved,
    memory_limits,
)
from poolwise.results.checks import CheckData, PriorPredictive
from poolwise.results.prediction import ExistingGroup, NewGroup, Population
from poolwise.vocabulary import (
    MCMC_METHODS,
    POOLING_PHRASES,
    POOLINGS,
    SETTINGS,
    Constraint,
    OneOf,
    unknown,
    validate,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from poolwise.kinds.calibration import Calibration
    from poolwise.results.fit import Answer, Fit
    from poolwise.results.graph import ModelGraph

__all__ = ["DEFAULTS", "DRAW_COPIES", "JAX_RESIDENT", "METHOD_SETTINGS", "MIN_DRAWS", "VALUE",
           "BaseModel", "Settings", "group_answers"]

# Calibration of the memory estimates (:meth:`BaseModel.memory_estimate`): peak RSS less the
# RSS before ``fit`` (``VmHWM`` − ``VmRSS``) of fit + summary + predictive check, measured on
# the 2-core development machine (Python 3.11, JAX 0.4, December 2026):
#   NIG exact, 2000 groups × 4 × 1000 draws (posterior 128 MB): 214 MB without the check
#   nested NUTS, 10 labs, 1000 experiments, 2 × 200 draws (tiny posterior): 518 MB
#   mixed NUTS (marginal), 2000 / 4000 levels, 2 × 200 draws: 673 / 623 MB
#   mixed NUTS (marginal), 10,000 levels, 2 × 300 draws (dense WᵀW 800 MB): 1510 MB
#: bytes of one stored value
VALUE = 8
#: how many times a (chains, draws, ...) array is held at the peak of a fit and its
#: summary: the draws as made, the DataTree's copy, ArviZ's stacked copy for diagnostics
DRAW_COPIES = 2
#: what JAX's runtime and a compiled NUTS program hold (measured 520–670 MB)
JAX_RESIDENT = 750 * 10**6
#: the fewest draws per chain offered as an alternative that fits
MIN_DRAWS = 100


class Settings(TypedDict, total=False):
    """The settings every kind takes by keyword, with one meaning everywhere (a kind
    without a choice, such as a custom model's pooling, does not take that one)."""

    #: "none", "complete" or "partial" (the default)
    pooling: str
    #: None: the kind's default for the pooling level
    method: str | None
    #: draws and warm-up iterations per chain
    draws: int
    chains: int
    warmup: int
    #: seeds every random stream of the fit and its predictions
    seed: int
    #: a progress bar while sampling
    progress: bool
    #: NUTS's target acceptance rate; None: the kind's default
    target_accept: float | None
    #: NUTS's parametrisation; "auto": the kind's default
    parametrisation: str
    #: empirical Bayes's group intervals: "kass-steffey" (None, the default: with the
    #: estimates' uncertainty, :mod:`poolwise.inference.eb_intervals`) or "plug-in"
    eb_intervals: str | None


#: settings that only some methods use (a model keeps them, so that ``replace(method=...)``
#: can switch method; the command line refuses one its method does not use); a mixed
#: model's ``importance`` uses NUTS's settings when it falls back to NUTS
METHOD_SETTINGS: dict[str, tuple[str, ...]] = {
    "warmup": (*MCMC_METHODS, "importance"), "target_accept": ("nuts", "importance"),
    "parametrisation": ("nuts", "importance"),
    "eb_intervals": ("eb-ml", "eb-moments", "eb-js")}
#: the defaults of :class:`Settings` (method and target_accept default to None)
DEFAULTS: dict[str, Any] = {"pooling": "partial", "draws": 1000, "chains": 4, "warmup": 1000,
                            "seed": 0, "progress": False, "parametrisation": "auto"}


class BaseModel(ABC):
    """The part of a model that is the same in every kind (module docstring)."""

    #: the kind's name, as saved and printed
    kind: str
    #: pooling level → the methods offered for it, the default first
    METHODS: ClassVar[Mapping[str, tuple[str, ...]]]
    #: the kind's NUTS parametrisations (the default first); () when it has no choice
    PARAMETRISATIONS: ClassVar[tuple[str, ...]] = ()
    #: the default NUTS step-size target
    TARGET_ACCEPT: ClassVar[float] = 0.8
    #: constraints of the kind's own settings, beside :data:`~poolwise.vocabulary.SETTINGS`
    CONSTRAINTS: ClassVar[Mapping[str, Constraint]] = {}
    #: which of :class:`Settings` the kind takes
    TAKES: ClassVar[tuple[str, ...]] = tuple(Settings.__annotations__)

    pooling: str
    method: str
    config: SamplerConfig

    def _settle(self, own: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Check and store the settings every kind has (``settings``, the constructor's
        ``**settings``) beside the kind's ``own`` arguments; both are kept for :meth:`spec`.

        A setting the kind does not take is a ``TypeError``, as for any unknown keyword.
        """
        owner = type(self).__name__
        for name in settings:
            if name not in self.TAKES:
                raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}; its "
                                f"settings are {', '.join(self.TAKES)}")
        spec = {**own, **{k: DEFAULTS[k] for k in self.TAKES if k in DEFAULTS}, **settings}
        rules = {**SETTINGS, **self.CONSTRAINTS}
        if self.PARAMETRISATIONS:
            rules["parametrisation"] = OneOf(("auto", *self.PARAMETRISATIONS))
        validate(spec, rules, owner)
        pooling = spec.get("pooling", "partial")
        methods = self.offered_methods()
        if pooling not in methods:
            offered = [p for p in POOLINGS if p in methods]
            raise SpecificationError(
                f"{owner} offers {' and '.join(POOLING_PHRASES[p] for p in offered)}, "
                f"not {POOLING_PHRASES[pooling]}")
        self.pooling = pooling
        self.method = self._check_method(spec.get("method"), pooling)
        self.config = SamplerConfig(
            draws=int(spec["draws"]), chains=int(spec["chains"]), warmup=int(spec["warmup"]),
            seed=int(spec["seed"]), progress=bool(spec["progress"]),
            parametrisation=spec.get("parametrisation") or "auto",
            target_accept=float(spec.get("target_accept") or self.TARGET_ACCEPT),
            eb_intervals=spec.get("eb_intervals") or KASS_STEFFEY)
        self._spec = {k: v for k, v in spec.items() if v is not None}

    def _check_method(self, method: str | None, pooling: str) -> str:
        methods = self.offered_methods()
        offered = methods[pooling]
        if method is None:
            return offered[0]
        every = list(dict.fromkeys(m for listed in methods.values() for m in listed))
        if method not in every:
            raise unknown("method", method, every, f"for a {self.kind} model")
        if method not in offered:
            poolings = [POOLING_PHRASES[p] for p, ms in methods.items() if method in ms]
            raise SpecificationError(
                f"method {method!r} is for {' or '.join(poolings)} of a {self.kind} model; "
                f"with {POOLING_PHRASES[pooling]} use {' or '.join(offered)}")
        return method

    # ------------------------------------------------------------------ the spec
    def offered_methods(self) -> Mapping[str, tuple[str, ...]]:
        """Pooling level → the methods this model offers (:data:`METHODS`; a kind whose
        methods depend on its family narrows them)."""
        return self.METHODS

    def methods_for(self, pooling: str) -> tuple[str, ...]:
        """The methods this model offers for ``pooling`` (the default first)."""
        return tuple(self.offered_methods().get(pooling, ()))

    @property
    def eb_intervals(self) -> str:
        """Empirical Bayes's group intervals: ``"kass-steffey"`` (the default, with the
        estimates' uncertainty) or ``"plug-in"`` (:mod:`poolwise.inference.eb_intervals`)."""
        return self.config.eb_intervals

    @property
    def pooling_phrase(self) -> str:
        return POOLING_PHRASES[self.pooling]

    def spec(self) -> dict[str, Any]:
        """The keyword arguments that build this model again (``type(m)(**m.spec())``)."""
        return dict(self._spec)

    def replace(self, **changes: Any) -> Self:
        """A copy with some settings changed, e.g. ``model.replace(pooling="none")``."""
        return type(self)(**{**self.spec(), **changes})

    def __repr__(self) -> str:
        inside = ", ".join(f"{k}={v!r}" for k, v in self.spec().items())
        return f"{type(self).__name__}({inside})"

    # ------------------------------------------------------------------ memory
    def memory_estimate(self, data: Any) -> MemoryEstimate | None:
        """The peak memory fitting prepared ``data`` would add, from the sizes that drive it
        (draws, groups, rows) and the calibration above; None for a kind that gives none."""
        return None

    def save_draws_estimate(self, data: Any) -> tuple[int, int]:
        """What saving a fit of prepared ``data`` with every group's draws adds
        (``fit.save(path, group_draws=True)``, ``--save-draws``): the bytes of the draws the
        file gains, and the memory of the chunks they are written in. (0, 0) for a kind
        whose fits keep every draw: its file holds them anyway."""
        return 0, 0

    def check_memory(self, data: Any, *, save_draws: bool = False) -> None:
        """Refuse, before anything large is allocated, a fit of prepared ``data`` that would
        not fit in the memory available (:func:`poolwise.resources.available_memory`);
        ``save_draws``: the fit will be saved with every group's draws
        (:meth:`save_draws_estimate`).

        Raises
        ------
        ResourceError
            One line: the estimate, the memory available, and the settings that would fit
            (fewer draws, another method), each with its estimate.
        """
        estimate = self.memory_estimate(data)
        chunks = self.save_draws_estimate(data)[1] if save_draws else 0
        if estimate is not None and chunks:
            estimate = replace(estimate, parts=(*estimate.parts,
                                                ("group draws written in chunks", chunks)))
        if estimate is None or estimate.fits():
            return
        chains, draws = self.config.chains, self.config.draws
        check_memory(estimate, what=f"fitting {self.title(data)} with {chains} × {draws} draws",
                     alternatives=self._memory_alternatives(data, memory_limits()))

    def _memory_alternatives(self, data: Any, limits: MemoryLimits) -> list[str]:
        """The largest number of draws that fits, and each other method that fits."""
        options = []
        draws = self._fitting_draws(data, limits)
        if draws is not None:
            estimate = self._with_draws(draws).memory_estimate(data)
            assert estimate is not None
            options.append(f"draws={draws} (--draws {draws}, about "
                           f"{format_bytes(estimate.bytes)})")
        for method in self.methods_for(self.pooling):
            if method == self.method:
                continue
            try:
                other = self.replace(method=method)
            except PoolwiseError:  # e.g. a method that takes no prior, given one
                continue
            estimate = other.memory_estimate(data)
            if estimate is not None and estimate.fits(limits):
                options.append(f"method={method!r} (--method {method}, about "
                               f"{format_bytes(estimate.bytes)})")
        return options

    def _fitting_draws(self, data: Any, limits: MemoryLimits) -> int | None:
        """The most draws per chain, at least :data:`MIN_DRAWS`, whose estimate fits."""
        def fits(draws: int) -> bool:
            estimate = self._with_draws(draws).memory_estimate(data)
            return estimate is not None and estimate.fits(limits)

        low, high = MIN_DRAWS, self.config.draws - 1
        if high < low or not fits(low):
            return None
        while low < high:  # fits(low), and the answer is in low..high
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        return low

    def _with_draws(self, draws: int) -> Self:
        other = copy.copy(self)
        other.config = replace(self.config, draws=draws)
        return other

    def _draws_estimate(self, *, stored: int, sampled: int = 0, pointwise: int = 0,
                        observed: int = 0, jax: bool = False,
                        other: Sequence[tuple[str, int]] = (),
                        samples: int | None = None) -> MemoryEstimate:
        """The estimate of a fit whose chains × draws draws hold ``stored`` values each,
        ``sampled`` coordinates of a Markov chain, ``pointwise`` log-likelihood values
        stored with the fit, and ``observed`` values replicated by the posterior predictive
        (stored, or drawn for the check, up to
        :data:`~poolwise.results.fit.PREDICTIVE_LIMIT` values); ``jax``: run by JAX;
        ``other``: further (what, bytes); ``samples``: the draws in all, where not
        chains × draws (a point estimate's one)."""
        from poolwise.results.fit import PREDICTIVE_LIMIT

        n = self.config.chains * self.config.draws if samples is None else samples
        parts = [("posterior draws", n * stored * VALUE * DRAW_COPIES),
                 ("sampler states", n * sampled * VALUE * DRAW_COPIES),
                 ("log likelihood", n * pointwise * VALUE * DRAW_COPIES),
                 ("posterior predictive", min(n * observed, PREDICTIVE_LIMIT) * VALUE
                  * DRAW_COPIES),
                 *other]
        if jax:
            parts.append(("JAX", JAX_RESIDENT))
        return MemoryEstimate(tuple((what, int(size)) for what, size in parts if size),
                              jax_reserved() if jax else 0)

    # ------------------------------------------------------------------ per kind
    # ``*args: Any, **kwargs: Any``: each kind names its own columns (y=, n=, se=, group=)
    @abstractmethod
    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        """Validate the data and reduce them to what this model is fitted to."""

    @abstractmethod
    def fit(self, *args: Any, **kwargs: Any) -> Fit:
        """Fit the model to ``data`` and return a :class:`~poolwise.results.fit.Fit`."""

    @abstractmethod
    def describe_prior(self, data: Any = None) -> str:
        """The prior in words and symbols; with prepared ``data``, defaults get values."""

    def implied_pooling(self, data: Any = None) -> str | None:
        """The prior of a typical group's pooling factor, in words (with prepared ``data``:
        the typical group is the median one); None where the kind or its prior has none."""
        return None

    def prior_statements(self, data: Any = None) -> list[str]:
        """:meth:`describe_prior` as the lines it is printed in: one, or one per ';'-separated
        term for mixed models."""
        text = self.describe_prior(data)
        return [part.strip() for part in text.split(";")] if self.kind == "mixed" else [text]

    @abstractmethod
    def graph(self, data: Any = None) -> ModelGraph:
        """The graphical model (plates sized by prepared ``data`` when given)."""

    @abstractmethod
    def equations(self, data: Any = None) -> list[str]:
        """The model as LaTeX lines, with the priors' values."""

    @abstractmethod
    def title(self, data: Any) -> str:
        """One line for headers: the model, how it is fitted, the data's size."""

    @abstractmethod
    def check_data(self, data: Any, replicated: Mapping[str, NDArray]) -> list[CheckData]:
        """The quantities a predictive check compares: observed ones from prepared
        ``data``, replicated ones from draws of the data (name → (draws, ...))."""

    def _prior_draws(self, data: Any, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """``size`` draws of the parameters from the prior and of the data from the prior
        predictive, each name → (draws, dims), and their coordinates. Raises
        :class:`~poolwise.exceptions.SpecificationError` where a prior is improper."""
        raise SpecificationError(f"a {self.kind} model has no prior predictive")

    def prior_predictive(self, data: Any, *, draws: int | None = None,
                         seed: int | None = None, **columns: Any) -> PriorPredictive:
        """Draws from the prior and from the prior predictive of data shaped like ``data``
        (the same groups, sizes, covariates): what the priors imply before any fitting.

        ``draws`` defaults to the model's chains × draws; ``seed`` to its seed. Refused,
        with the reason, for a prior that is improper (it has no draws).
        """
        prepared = self.prepare(data, **columns)
        size = draws if draws is not None else self.config.chains * self.config.draws
        validate({"draws": size}, SETTINGS, "prior_predictive")
        rng = generator(self.config.seed if seed is None else seed, Stream.PRIOR_PREDICTIVE)
        prior, predictive, coords = self._prior_draws(prepared, rng, int(size))
        groups = {
            "prior": {k: np.asarray(v)[None] for k, (v, _) in prior.items()},
            "prior_predictive": {k: np.asarray(v)[None] for k, (v, _) in predictive.items()},
        }
        dims = {k: d for part in (prior, predictive) for k, (_, d) in part.items()}
        tree = _arviz.make_datatree(groups, dims=dims, coords=coords,
                                    attrs={"kind": self.kind, "prior": self.describe_prior(
                                        prepared)})
        flat = {k: np.asarray(v) for k, (v, _) in predictive.items()}
        return PriorPredictive(tree, tuple(self.check_data(prepared, flat)),
                               self.describe_prior(prepared), self._group_dims(prepared))

    def _group_dims(self, data: Any) -> tuple[str, ...]:
        return ("group",)

    # ------------------------------------------------------------------ calibration
    def calibrate(self, data: Any, *, reps: int = 100, seed: int = 0, jobs: int | None = None,
                  ranked_draws: int = 100, progress: Callable[[int, int], None] | None = None,
                  **columns: Any) -> Calibration:
        """Simulation-based calibration of this model and method with the design of
        ``data`` (:func:`poolwise.kinds.calibration.calibrate`): data simulated from the
        prior, fitted again, the true values ranked among the posterior draws; for
        empirical Bayes the frequentist coverage of the group intervals."""
        from poolwise.kinds.calibration import calibrate

        return calibrate(self, data, reps=reps, seed=seed, jobs=jobs,
                         ranked_draws=ranked_draws, progress=progress, **columns)

    # (poolwise.kinds.calibration: simulate data with the user's design, fit them again)
    def _calibration_model(self, data: Any) -> Self:
        """This model with every prior that is scaled to the data fixed at its value for
        prepared ``data``, so that data simulated from the prior are fitted under the same
        prior. Most kinds' priors do not depend on the data: the model itself."""
        return self

    def _with_simulated(self, data: Any, simulated: Mapping[str, NDArray]) -> Any:
        """Prepared ``data`` with its response replaced by one simulated data set
        (``simulated``: one draw of :meth:`_prior_draws`'s predictive, name → values): the
        same groups, sizes, covariates and exposures."""
        raise SpecificationError(f"a {self.kind} model cannot be calibrated")

    def _fitted_draws(self, fit: Fit, rng: np.random.Generator, size: int
                      ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                 dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """As :meth:`_prior_draws`, with the population's parameters fixed at an
        empirical-Bayes ``fit``'s estimates: the group parameters and data of ``size``
        simulated data sets, for the frequentist coverage of its intervals."""
        raise SpecificationError(
            f"method {self.method!r} of a {self.kind} model has no simulation from its "
            "estimates")


def group_answers(pooling: str, existing: Answer, new: Answer, population: Answer
                  ) -> dict[type, Answer]:
    """The requests a one-level model of groups answers: new data from a group in the fit,
    a new group, and — unless the groups are unpooled, with no population — the population."""
    answers: dict[type, Answer] = {ExistingGroup: existing, NewGroup: new}
    if pooling != "none":
        answers[Population] = population
    return answers
