"""Priors: hyperpriors p(α, β) for partial pooling, fixed conjugate priors for θ otherwise.

Every prior knows how to describe itself (shown in summaries, reports and the CLI) and
evaluates its log density through an :class:`~poolwise._ops.Ops` namespace, so the same
code serves quadrature, Gibbs and NUTS. Log densities are up to an additive constant.

Prior strings (command line and Python):

``bda``
    the family's diffuse reference prior (BDA3 §5.3 for the beta-binomial).
``halfnormal(10)``
    α, β independently HalfNormal(10) (the SpaceX notes).
``halfnormal(10, 5)``
    α ~ HalfNormal(10), β ~ HalfNormal(5); likewise for the other distributions:
    ``halfcauchy(s)``, ``halfstudentt(df, s)``, ``exponential(rate)``,
    ``gamma(shape, rate)``, ``lognormal(mu, sigma)``.
``alpha=gamma(2, 0.5), beta=halfnormal(10)``
    one distribution for each.
``mu=beta(2, 20), kappa=lognormal(3, 1)``
    the rate families on interpretable scales: the population mean μ (α/(α+β), or the mean
    rate α/β) and the concentration κ (α + β, or the gamma shape α); ``mean=``,
    ``concentration=`` and, for gamma-Poisson, ``shape=`` are read as μ and κ.
``mu=studentt(3, 0, 10), tau=halfstudentt(4, 1)``
    the normal family's μ and τ; brms's spelling ``student_t(4, 0, 1)`` of a prior on a
    parameter > 0 (τ, α, β, κ) is read as the half-t it means there.
``beta(0.5, 0.5)`` / ``gamma(0.5, 0)``
    the fixed prior of θ under no or complete pooling.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from poolwise._ops import NUMPY_OPS, Ops
from poolwise.exceptions import SpecificationError
from poolwise.families.base import RateFamily
from poolwise.vocabulary import unknown


@dataclass(frozen=True)
class Distribution:
    """A prior distribution for one hyperparameter: on (0, ∞), on the real line for
    ``normal`` and ``studentt`` (a location such as μ) and the improper ``flat``, or on
    (0, 1) for ``beta`` (a population mean rate)."""

    name: str
    params: tuple[float, ...]

    @property
    def support(self) -> str:
        """``"real"``, ``"positive"`` or ``"unit"`` (the interval (0, 1))."""
        return _SUPPORT.get(self.name, "positive")

    @property
    def positive(self) -> bool:
        """Whether it lives on (0, ∞) (so it can be the prior of α, β or τ)."""
        return self.support == "positive"

    @property
    def proper(self) -> bool:
        return self.name != "flat"

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of its parameters, e.g. ``("scale",)``."""
        return _DISTRIBUTIONS[self.name]

    def log_density(self, x: Any, ops: Ops = NUMPY_OPS) -> Any:
        """log p(x) (normalised, so priors can be compared; 0 for ``flat``). The parameters
        may be arrays of ``ops`` too (JAX programs take them as arguments)."""
        p = self.params
        half_log_2pi = 0.5 * math.log(2.0 * math.pi)
        if self.name == "flat":
            return 0.0 * x
        if self.name == "normal":
            mu, sigma = p
            return -ops.log(sigma) - half_log_2pi - 0.5 * ops.square((x - mu) / sigma)
        if self.name == "halfnormal":
            (s,) = p
            return 0.5 * math.log(2.0 / math.pi) - ops.log(s) - 0.5 * ops.square(x / s)
        if self.name == "halfcauchy":
            (s,) = p
            return math.log(2.0 / math.pi) - ops.log(s) - ops.log1p(ops.square(x / s))
        if self.name == "studentt":
            df, mu, s = p
            return _log_student_t(x - mu, df, s, ops)
        if self.name == "halfstudentt":
            df, s = p
            return math.log(2.0) + _log_student_t(x, df, s, ops)
        if self.name == "beta":
            a, b = p
            return (ops.gammaln(a + b) - ops.gammaln(a) - ops.gammaln(b)
                    + (a - 1.0) * ops.log(x) + (b - 1.0) * ops.log1p(-x))
        if self.name == "exponential":
            (rate,) = p
            return ops.log(rate) - rate * x
        if self.name == "gamma":
            shape, rate = p
            return (
                shape * ops.log(rate) - ops.gammaln(shape) + (shape - 1.0) * ops.log(x) - rate * x
            )
        if self.name == "lognormal":
            mu, sigma = p
            log_x = ops.log(x)
            return -log_x - ops.log(sigma) - half_log_2pi - 0.5 * ops.square((log_x - mu) / sigma)
        raise AssertionError(self.name)  # unreachable: names are checked on construction

    def sample(self, rng: Any, size: int) -> Any:
        """``size`` independent draws (refused for ``flat``, which has none)."""
        p = self.params
        if self.name == "flat":
            raise SpecificationError("a flat prior is improper: it has no draws")
        if self.name == "normal":
            return rng.normal(p[0], p[1], size)
        if self.name == "halfnormal":
            return abs(rng.normal(0.0, p[0], size))
        if self.name == "halfcauchy":
            return abs(p[0] * rng.standard_cauchy(size))
        if self.name == "studentt":
            return p[1] + p[2] * rng.standard_t(p[0], size)
        if self.name == "halfstudentt":
            return abs(p[1] * rng.standard_t(p[0], size))
        if self.name == "beta":
            return rng.beta(p[0], p[1], size)
        if self.name == "exponential":
            return rng.exponential(1.0 / p[0], size)
        if self.name == "gamma":
            return rng.gamma(p[0], 1.0 / p[1], size)
        if self.name == "lognormal":
            return rng.lognormal(p[0], p[1], size)
        raise AssertionError(self.name)  # unreachable: names are checked on construction

    def __str__(self) -> str:
        if self.name == "flat":
            return "flat"
        args = ", ".join(f"{v:g}" for v in self.params)
        return f"{_DISPLAY[self.name]}({args})"


def _log_student_t(x: Any, df: Any, scale: Any, ops: Ops) -> Any:
    """log t_ν(x; 0, s) = lnΓ((ν+1)/2) − lnΓ(ν/2) − ½ log(νπ) − log s
    − (ν+1)/2 log(1 + (x/s)²/ν)."""
    return (ops.gammaln(0.5 * (df + 1.0)) - ops.gammaln(0.5 * df)
            - 0.5 * ops.log(df * math.pi) - ops.log(scale)
            - 0.5 * (df + 1.0) * ops.log1p(ops.square(x / scale) / df))


# name -> names of its parameters ("mu" may be any number, the others must be > 0)
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "halfnormal": ("scale",),
    "halfcauchy": ("scale",),
    "halfstudentt": ("df", "scale"),
    "exponential": ("rate",),
    "gamma": ("shape", "rate"),
    "lognormal": ("mu", "sigma"),
    "normal": ("mu", "sigma"),
    "studentt": ("df", "mu", "sigma"),
    "beta": ("a", "b"),
    "flat": (),
}
#: the supports that are not (0, ∞)
_SUPPORT = {"normal": "real", "studentt": "real", "flat": "real", "beta": "unit"}
_DISPLAY = {
    "normal": "Normal",
    "studentt": "StudentT",
    "halfnormal": "HalfNormal",
    "halfcauchy": "HalfCauchy",
    "halfstudentt": "HalfStudentT",
    "exponential": "Exponential",
    "gamma": "Gamma",
    "lognormal": "LogNormal",
    "beta": "Beta",
}
#: other spellings people type (brms, Stan, PyMC, NumPyro) -> the canonical name
ALIASES = {
    "student_t": "studentt", "half_t": "halfstudentt", "halft": "halfstudentt",
    "half_student_t": "halfstudentt", "halfstudent_t": "halfstudentt",
    "half_normal": "halfnormal", "half_cauchy": "halfcauchy",
}


def canonical_name(name: str) -> str:
    """The canonical name of a distribution as typed (``student_t`` → ``studentt``)."""
    key = name.lower()
    return ALIASES.get(key, key)


def make_distribution(name: str, params: tuple[float, ...], *,
                      positive: bool = False) -> Distribution:
    """Validate and build one hyperparameter's distribution.

    ``positive``: the parameter is > 0 (a scale, α, β, κ), where brms's
    ``student_t(ν, 0, s)`` means the half-t ``halfstudentt(ν, s)`` (location 0 only)."""
    key = canonical_name(name)
    if key not in _DISTRIBUTIONS:
        raise SpecificationError(f"{unknown('prior distribution', name, _DISTRIBUTIONS)} "
                                 "(student_t and half_t are read as studentt and halfstudentt)")
    if positive and key == "studentt" and len(params) == 3:
        df, loc, scale = params
        if loc != 0:
            raise SpecificationError(
                f"{name}({', '.join(f'{v:g}' for v in params)}) on a parameter > 0 is read "
                f"as a half-t, whose location must be 0, not {loc:g}; write "
                f"halfstudentt({df:g}, {scale:g})")
        key, params = "halfstudentt", (df, scale)
    names = _DISTRIBUTIONS[key]
    if len(params) != len(names):
        raise SpecificationError(
            f"{key} takes {len(names)} parameter(s) ({', '.join(names)}), got {len(params)}"
        )
    for pname, value in zip(names, params, strict=True):
        if not math.isfinite(value):
            raise SpecificationError(f"{key}: {pname} must be finite, got {value!r}")
        if pname != "mu" and value <= 0:
            raise SpecificationError(f"{key}: {pname} must be > 0, got {value:g}")
    return Distribution(key, tuple(float(v) for v in params))


class HyperPrior:
    """A prior p(α, β) on the population distribution's parameters."""

    def log_density(self, alpha: Any, beta: Any, family: RateFamily, ops: Ops = NUMPY_OPS) -> Any:
        raise NotImplementedError

    def describe(self, family: RateFamily) -> str:
        raise NotImplementedError

    def spec(self) -> str:
        """The string that parses back into this prior."""
        raise NotImplementedError

    def sample(self, family: RateFamily, rng: Any, size: int) -> tuple[Any, Any]:
        """``size`` independent draws of the population's parameters (α, β) (or (μ, τ));
        refused for an improper prior, which has none."""
        raise SpecificationError(f"the hyperprior {self.spec()!r} is improper: it has no draws")

    @property
    def proper(self) -> bool:
        return True


@dataclass(frozen=True)
class ReferencePrior(HyperPrior):
    """The family's diffuse reference prior (improper; the posterior is checked)."""

    def log_density(self, alpha: Any, beta: Any, family: RateFamily, ops: Ops = NUMPY_OPS) -> Any:
        return family.reference_log_prior(alpha, beta, ops)

    def describe(self, family: RateFamily) -> str:
        return family.reference_prior_text

    def spec(self) -> str:
        return "bda"

    @property
    def proper(self) -> bool:
        return False


@dataclass(frozen=True)
class IndependentPrior(HyperPrior):
    """The two hyperparameters independently: α ~ D_α, β ~ D_β (or μ ~ D_μ, τ ~ D_τ)."""

    alpha: Distribution
    beta: Distribution
    #: the names the prior was written with: ("alpha", "beta") or ("mu", "tau")
    names: tuple[str, str] = ("alpha", "beta")

    def log_density(self, alpha: Any, beta: Any, family: RateFamily, ops: Ops = NUMPY_OPS) -> Any:
        return self.alpha.log_density(alpha, ops) + self.beta.log_density(beta, ops)

    def describe(self, family: RateFamily) -> str:
        first, second = (_SYMBOLS[name] for name in family.hyper_names)
        return f"{first} ~ {self.alpha}, {second} ~ {self.beta}"

    def spec(self) -> str:
        return f"{self.names[0]}={_spec(self.alpha)}, {self.names[1]}={_spec(self.beta)}"

    def sample(self, family: RateFamily, rng: Any, size: int) -> tuple[Any, Any]:
        return self.alpha.sample(rng, size), self.beta.sample(rng, size)

    @property
    def proper(self) -> bool:
        return self.alpha.proper and self.beta.proper


@dataclass(frozen=True)
class MeanConcentrationPrior(HyperPrior):
    """The rate families' population on interpretable scales: its mean μ ~ D_μ and its
    concentration κ ~ D_κ, independently (:meth:`RateFamily.mean_concentration`: μ = α/(α+β)
    and κ = α + β for beta-binomial, the mean rate μ = α/β and the shape κ = α for
    gamma-Poisson). As a density of (α, β):
    p(α, β) = p_μ(μ) p_κ(κ) |∂(μ, κ)/∂(α, β)|."""

    mean: Distribution
    concentration: Distribution

    def log_density(self, alpha: Any, beta: Any, family: RateFamily, ops: Ops = NUMPY_OPS) -> Any:
        mean, concentration, log_jacobian = family.mean_concentration(alpha, beta, ops)
        return (self.mean.log_density(mean, ops)
                + self.concentration.log_density(concentration, ops) + log_jacobian)

    def describe(self, family: RateFamily) -> str:
        return f"μ ~ {self.mean}, κ ~ {self.concentration}"

    def spec(self) -> str:
        return f"mu={_spec(self.mean)}, kappa={_spec(self.concentration)}"

    def sample(self, family: RateFamily, rng: Any, size: int) -> tuple[Any, Any]:
        return family.population_with_mean(self.mean.sample(rng, size),
                                           self.concentration.sample(rng, size))

    @property
    def proper(self) -> bool:
        return self.mean.proper and self.concentration.proper


@dataclass(frozen=True)
class UniformVariancePrior(HyperPrior):
    """p(μ, τ²) ∝ 1 (the lecture's flat prior), i.e. p(μ, τ) ∝ τ; normal family only."""

    def log_density(self, alpha: Any, beta: Any, family: RateFamily, ops: Ops = NUMPY_OPS) -> Any:
        return ops.log(beta) + 0.0 * alpha

    def describe(self, family: RateFamily) -> str:
        return "p(μ, τ²) ∝ 1  (uniform on μ and τ², lecture 001)"

    def spec(self) -> str:
        return "flat-tau2"

    @property
    def proper(self) -> bool:
        return False


_SYMBOLS = {"alpha": "α", "beta": "β", "mu": "μ", "tau": "τ", "kappa": "κ"}


@dataclass(frozen=True)
class ConjugatePrior:
    """A fixed prior θ ~ Pop(a, b) for no or complete pooling."""

    a: float
    b: float

    def describe(self, family: RateFamily) -> str:
        if family.name == "normal" and math.isinf(self.b):
            return "θ ~ flat (uniform on the real line)"
        name = {"beta-binomial": "Beta", "gamma-poisson": "Gamma"}.get(family.name, "Normal")
        return f"θ ~ {name}({self.a:g}, {self.b:g})"

    def spec(self) -> str:
        return f"conjugate({self.a:g}, {self.b:g})"

    def proper(self, family: RateFamily) -> bool:
        """Whether the prior integrates to one (Gamma(½, 0) and the flat normal do not):
        the normal family's N(a, b) needs a finite sd b > 0, Beta and Gamma a, b > 0."""
        positive_scale = 0 < self.b < math.inf
        return positive_scale if family.name == "normal" else bool(self.a > 0 and positive_scale)


def _spec(d: Distribution) -> str:
    return f"{d.name}({', '.join(f'{v!r}' for v in d.params)})"


_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\(([^()]*)\))?\s*$")
#: ``name = dist`` or ``name ~ dist``, so that a prior line the tool prints reads back
_NAMED = re.compile(r"^\s*([^\s=~(),]+)\s*[=~]\s*(.+?)\s*$")
#: the Greek letters :meth:`HyperPrior.describe` writes, read as the names they stand for
_NAMES = {symbol: name for name, symbol in _SYMBOLS.items()}
#: a prior of each pair of hyperparameters, for the examples in error messages
_EXAMPLES = {"alpha": "'bda', 'halfnormal(10)', 'alpha=gamma(2, 0.5), beta=halfnormal(10)' "
                      "or 'mu=beta(2, 20), kappa=lognormal(3, 1)'",
             "mu": "'bda' or 'mu=normal(0, 5), tau=halfcauchy(5)'"}
#: the other names the rate families' population mean and concentration are written with
_MEAN_CONCENTRATION = {"mean": "mu", "concentration": "kappa", "shape": "kappa"}
#: the hyperparameters that are > 0 (where ``student_t(ν, 0, s)`` is a half-t)
_POSITIVE = {"alpha", "beta", "tau", "kappa"}


def _parse_call(text: str, example: str = _EXAMPLES["alpha"]) -> tuple[str, tuple[float, ...]]:
    match = _CALL.match(text)
    if not match:
        raise SpecificationError(f"cannot read prior {text!r}; write e.g. {example}")
    name, args = match.groups()
    args = args or ""
    try:
        params = tuple(float(a) for a in args.split(",")) if args.strip() else ()
    except ValueError:
        raise SpecificationError(f"prior {text!r}: parameters must be numbers") from None
    return name.lower(), params


def parse_hyperprior(text: str | HyperPrior, family: RateFamily | None = None) -> HyperPrior:
    """Read a hyperprior for partial pooling from its string form.

    Named hyperparameters may be written ``alpha=…`` or ``α ~ …`` (as :meth:`describe`
    prints them); with ``family`` the names must be its own (α, β or μ, τ), and errors give
    examples from it.
    """
    if isinstance(text, HyperPrior):
        return text
    rates = [("alpha", "beta"), ("mu", "kappa")]
    pairs = ([("mu", "tau")] if family.name == "normal" else rates) if family is not None \
        else [*rates, ("mu", "tau")]
    example = _EXAMPLES[pairs[0][0]]
    stripped = _POPULATION.sub("", text.strip(), count=1).strip()
    if stripped.lower() in {"bda", "reference"}:
        return ReferencePrior()
    if stripped.lower() == "flat-tau2":
        return UniformVariancePrior()
    parts = _split_top_level(stripped)
    named = [_NAMED.match(p) for p in parts]
    if any(named):
        valid = [name for pair in pairs for name in pair]
        chosen: dict[str, Distribution] = {}
        for part, match in zip(parts, named, strict=True):
            if match is None:
                raise SpecificationError(
                    f"cannot read {part.strip()!r} in prior {text!r}; write e.g. {example}")
            key = _NAMES.get(match.group(1), match.group(1).lower())
            if "kappa" in valid:
                if key == "shape" and family is not None and family.name != "gamma-poisson":
                    raise SpecificationError(
                        f"prior {text!r}: the {family.name} family's population has no shape; "
                        "its concentration is κ = α + β: write kappa=")
                key = _MEAN_CONCENTRATION.get(key, key)
            if key == "icc" and "tau" in valid:
                raise SpecificationError(
                    f"prior {text!r}: the normal family's standard errors σ_j are known and "
                    "differ between groups, so the ICC τ²/(τ² + σ_j²) is not one parameter; "
                    "put the prior on tau (e.g. tau=halfstudentt(4, 5)), whose implied "
                    "pooling factor σ²/(σ² + τ²) = 1 − ICC is shown beside the prior")
            if key not in valid:
                raise unknown("hyperparameter", match.group(1), valid, f"in prior {text!r}")
            if key in chosen:
                raise SpecificationError(f"prior {text!r} sets {key} twice")
            chosen[key] = make_distribution(*_parse_call(match.group(2), example),
                                            positive=key in _POSITIVE)
        if set(chosen) == {"mu", "kappa"}:
            return MeanConcentrationPrior(chosen["mu"], chosen["kappa"])
        for pair in pairs:
            if set(chosen) == set(pair):
                return IndependentPrior(chosen[pair[0]], chosen[pair[1]], pair)
        raise SpecificationError(
            f"prior {text!r} must name both "
            + " or both ".join(f"{a}= and {b}=" for a, b in pairs) + f"; e.g. {example}")
    name, params = _parse_call(stripped, example)
    if name in {"beta", "conjugate"}:
        raise SpecificationError(
            f"prior {text!r} is a fixed prior for θ; partial pooling needs a hyperprior on "
            f"the population's parameters, e.g. {example}"
        )
    n_params = len(_DISTRIBUTIONS.get(canonical_name(name), ()))
    if n_params and len(params) == 2 * n_params:
        return IndependentPrior(make_distribution(name, params[:n_params], positive=True),
                                make_distribution(name, params[n_params:], positive=True))
    dist = make_distribution(name, params, positive=True)
    return IndependentPrior(dist, dist)


def parse_theta_prior(text: str | ConjugatePrior | None, family: RateFamily) -> ConjugatePrior:
    """Read the fixed conjugate prior of θ used by no and complete pooling."""
    if text is None:
        prior = ConjugatePrior(*family.default_theta_prior)
    elif isinstance(text, ConjugatePrior):
        prior = text
    else:
        name, params = _parse_call(_THETA.sub("", text, count=1))
        expected = {"beta-binomial": "beta", "gamma-poisson": "gamma",
                    "normal": "normal"}[family.name]
        if family.name == "normal" and name == "flat" and not params:
            params = family.default_theta_prior
        elif name not in {expected, "conjugate"} or len(params) != 2:
            raise SpecificationError(
                f"prior {text!r} is not a prior for θ in the {family.name} family; "
                f"write {expected}(a, b), e.g. {expected}"
                f"({family.default_theta_prior[0]:g}, {family.default_theta_prior[1]:g})"
            )
        prior = ConjugatePrior(*params)
    family.check_theta_prior(prior.a, prior.b)
    return prior


#: the ``θ ~`` or ``theta =`` that may lead a fixed prior (as the tool prints it)
_THETA = re.compile(r"^\s*(?:θ|theta)(?:_j)?\s*[=~]\s*", re.IGNORECASE)
#: the statement a printed prior starts with, ``θ_j ~ Beta(α, β);``: the model's population,
#: not a choice, so a printed line pasted back reads as the hyperprior after it
_POPULATION = re.compile(r"^\s*(?:θ_j|theta_j)\s*~[^;]*;", re.IGNORECASE)


def _split_top_level(text: str) -> list[str]:
    """Split on commas and semicolons that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch in ",;" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


#: prior draws behind :class:`ImpliedPooling` (its quantiles' Monte Carlo error, about
#: 0.005 in probability, is below the two digits it prints)
POOLING_DRAWS = 8000


class ImpliedPooling(NamedTuple):
    """The prior of a typical group's pooling factor λ (its weight on the population mean:
    se²/(se² + τ²) for the normal family, (α + β)/(α + β + n) or β/(β + E) for the rates),
    from draws of the hyperparameters: its median and central 90 % interval."""

    where: str
    median: float
    lower: float
    upper: float

    @classmethod
    def of(cls, factors: Any, where: str) -> ImpliedPooling:
        """From draws of λ, at the group described by ``where``."""
        import numpy as np

        lower, median, upper = np.quantile(np.asarray(factors, dtype=float), [0.05, 0.5, 0.95])
        return cls(where, float(median), float(lower), float(upper))

    def describe(self) -> str:
        median, lower, upper = (_share(x) for x in (self.median, self.lower, self.upper))
        return (f"the prior's pooling factor {self.where}: median {median}, "
                f"90% [{lower}, {upper}] (0 no pooling, 1 complete)")


def _share(x: float) -> str:
    """A number in [0, 1] to two decimals, ``<0.01`` or ``>0.99`` rather than a 0 or 1 it
    is not."""
    return "<0.01" if x < 0.005 else ">0.99" if x >= 0.995 else f"{x:.2f}"


def implied_pooling(prior: HyperPrior, family: RateFamily, size: float, rng: Any
                    ) -> Any | None:
    """Draws of the pooling factor λ = ``family.pooling_factor(α, β, size)`` of a group of
    ``size`` (trials, exposure or standard error) under ``prior``; None where the prior has
    no draws of what λ depends on (an improper prior; for the normal family only τ's prior
    need be proper)."""
    if isinstance(prior, IndependentPrior) and family.name == "normal":
        if not prior.beta.proper:
            return None
        return family.pooling_factor(0.0, prior.beta.sample(rng, POOLING_DRAWS), size)
    if not prior.proper:
        return None
    alpha, beta = prior.sample(family, rng, POOLING_DRAWS)
    return family.pooling_factor(alpha, beta, size)


def hyperprior_log_density_uv(
    prior: HyperPrior, family: RateFamily, u: Any, v: Any, ops: Ops = NUMPY_OPS
) -> Any:
    """log p(u, v) = log p(α(u, v), β(u, v)) + log |∂(α, β)/∂(u, v)|."""
    alpha, beta = family.from_uv(u, v, ops)
    return prior.log_density(alpha, beta, family, ops) + family.log_jacobian_uv(u, v, ops)

__all__ = [
    "ALIASES",
    "ConjugatePrior",
    "Distribution",
    "HyperPrior",
    "ImpliedPooling",
    "IndependentPrior",
    "MeanConcentrationPrior",
    "ReferencePrior",
    "UniformVariancePrior",
    "canonical_name",
    "hyperprior_log_density_uv",
    "implied_pooling",
    "make_distribution",
    "parse_hyperprior",
    "parse_theta_prior",
]
