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
    ``halfcauchy(s)``, ``exponential(rate)``, ``gamma(shape, rate)``, ``lognormal(mu, sigma)``.
``alpha=gamma(2, 0.5), beta=halfnormal(10)``
    one distribution for each.
``beta(0.5, 0.5)`` / ``gamma(0.5, 0)``
    the fixed prior of θ under no or complete pooling.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from poolwise._ops import NUMPY_OPS, Ops
from poolwise.exceptions import SpecificationError
from poolwise.families.base import RateFamily
from poolwise.vocabulary import unknown


@dataclass(frozen=True)
class Distribution:
    """A prior distribution for one hyperparameter: on (0, ∞), or on the real line for
    ``normal`` (a location such as μ), or the improper ``flat``."""

    name: str
    params: tuple[float, ...]

    @property
    def positive(self) -> bool:
        """Whether it lives on (0, ∞) (so it can be the prior of α, β or τ)."""
        return self.name not in {"normal", "flat"}

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


# name -> names of its parameters
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "halfnormal": ("scale",),
    "halfcauchy": ("scale",),
    "exponential": ("rate",),
    "gamma": ("shape", "rate"),
    "lognormal": ("mu", "sigma"),
    "normal": ("mu", "sigma"),
    "flat": (),
}
_DISPLAY = {
    "normal": "Normal",
    "halfnormal": "HalfNormal",
    "halfcauchy": "HalfCauchy",
    "exponential": "Exponential",
    "gamma": "Gamma",
    "lognormal": "LogNormal",
}


def make_distribution(name: str, params: tuple[float, ...]) -> Distribution:
    """Validate and build one hyperparameter's distribution."""
    key = name.lower()
    if key not in _DISTRIBUTIONS:
        valid = ", ".join(_DISTRIBUTIONS)
        raise SpecificationError(f"unknown prior distribution {name!r}; valid: {valid}")
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

    @property
    def proper(self) -> bool:
        return self.alpha.proper and self.beta.proper


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


_SYMBOLS = {"alpha": "α", "beta": "β", "mu": "μ", "tau": "τ"}


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
_EXAMPLES = {"alpha": "'bda', 'halfnormal(10)' or 'alpha=gamma(2, 0.5), beta=halfnormal(10)'",
             "mu": "'bda' or 'mu=normal(0, 5), tau=halfcauchy(5)'"}


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
    pairs = [family.hyper_names] if family is not None else [("alpha", "beta"), ("mu", "tau")]
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
            if key not in valid:
                raise unknown("hyperparameter", match.group(1), valid, f"in prior {text!r}")
            if key in chosen:
                raise SpecificationError(f"prior {text!r} sets {key} twice")
            chosen[key] = make_distribution(*_parse_call(match.group(2), example))
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
    n_params = len(_DISTRIBUTIONS.get(name, ()))
    if n_params and len(params) == 2 * n_params:
        return IndependentPrior(
            make_distribution(name, params[:n_params]), make_distribution(name, params[n_params:])
        )
    dist = make_distribution(name, params)
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


def hyperprior_log_density_uv(
    prior: HyperPrior, family: RateFamily, u: Any, v: Any, ops: Ops = NUMPY_OPS
) -> Any:
    """log p(u, v) = log p(α(u, v), β(u, v)) + log |∂(α, β)/∂(u, v)|."""
    alpha, beta = family.from_uv(u, v, ops)
    return prior.log_density(alpha, beta, family, ops) + family.log_jacobian_uv(u, v, ops)

__all__ = [
    "ConjugatePrior",
    "Distribution",
    "HyperPrior",
    "IndependentPrior",
    "ReferencePrior",
    "UniformVariancePrior",
    "hyperprior_log_density_uv",
    "make_distribution",
    "parse_hyperprior",
    "parse_theta_prior",
]
