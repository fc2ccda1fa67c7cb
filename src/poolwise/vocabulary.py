"""The words poolwise uses, and the one table of constraints every model is checked against.

Every model kind takes the same keyword arguments with the same meanings (``family``,
``pooling``, ``prior``, ``method``, ``draws``, ``chains``, ``warmup``, ``seed``, ``progress``,
``target_accept``). Their valid values are declared here once, in :data:`SETTINGS`, and
checked by :func:`validate` (the idea of scikit-learn's ``_parameter_constraints``): a
model kind only adds the rows that are its own.

>>> canonical_family("gaussian")
'normal'
>>> validate({"draws": 0}, SETTINGS, "Model")
Traceback (most recent call last):
    ...
poolwise.exceptions.SpecificationError: Model: draws must be an integer ≥ 1, got 0
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from poolwise.exceptions import SpecificationError

__all__ = [
    "FAMILY_ALIASES",
    "MCMC_METHODS",
    "METHOD_PHRASES",
    "POOLINGS",
    "POOLING_PHRASES",
    "SETTINGS",
    "Boolean",
    "Constraint",
    "Integer",
    "OneOf",
    "Real",
    "canonical_family",
    "kinds_text",
    "unknown",
    "validate",
]

# ----------------------------------------------------------------------------- pooling
POOLINGS: tuple[str, ...] = ("none", "complete", "partial")
#: how each pooling level reads in a sentence
POOLING_PHRASES: dict[str, str] = {"none": "no pooling", "complete": "complete pooling",
                                   "partial": "partial pooling"}

# ---------------------------------------------------------------------------- families
#: other names users write for a family; each kind checks the family names it fits
FAMILY_ALIASES: dict[str, str] = {"gaussian": "normal", "normal-inverse-gamma": "nig"}


def canonical_family(name: str) -> str:
    """The family's one name: lower case, aliases resolved (``"gaussian"`` → ``"normal"``)."""
    if not isinstance(name, str):
        raise SpecificationError(f"the family must be a name, not {type(name).__name__}")
    return FAMILY_ALIASES.get(name.lower(), name.lower())


#: the methods whose draws form Markov chains (their diagnostics are checked); how each
#: kind carries a method out is said where it is registered (poolwise.inference.METHODS
#: for rates and normal models, each kind's module for the others)
MCMC_METHODS: tuple[str, ...] = ("gibbs", "nuts")
#: what each method does, in words any kind's report can use
METHOD_PHRASES: dict[str, str] = {
    "exact": "independent draws from the exact posterior (hyperparameters by quadrature, "
             "the rest from their conditionals)",
    "eb-moments": "empirical Bayes: population parameters by the method of moments, "
                  "groups given them",
    "eb-ml": "empirical Bayes: population parameters at their maximum (restricted) "
             "likelihood, groups given them",
    "eb-js": "empirical Bayes: James–Stein shrinkage of every estimate towards their mean "
             "by c = 1 − (k − 3)σ²/Σ(y − ȳ)², groups given it",
    "gibbs": "Gibbs sampling (a Markov chain)",
    "nuts": "the No-U-Turn Sampler in NumPyro (Hamiltonian Monte Carlo, a Markov chain)",
    "importance": "independent draws without a Markov chain: the few variance parameters by "
                  "Pareto-smoothed importance sampling around their mode (checked by its "
                  "Pareto k̂, with NUTS as the fallback), the rest drawn exactly given them",
    "map": "the posterior mode (a point estimate)",
    "laplace": "a normal approximation at the posterior mode",
}


# ------------------------------------------------------------------------- constraints
class Constraint:
    """One rule a setting must follow; ``text`` says it in words for the error."""

    text: str = ""

    def holds(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Constraint):
    """A whole number (not a bool) ≥ ``low``."""

    low: int

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"an integer ≥ {self.low}"

    def holds(self, value: Any) -> bool:
        return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                and int(value) >= self.low)


@dataclass(frozen=True)
class Real(Constraint):
    """A number strictly between ``low`` and ``high``."""

    low: float
    high: float

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"a number between {self.low:g} and {self.high:g}"

    def holds(self, value: Any) -> bool:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(float(value)) and self.low < float(value) < self.high)


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False."""

    text: str = "True or False"

    def holds(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a few names."""

    options: tuple[str, ...]

    @property
    def text(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.options)

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options


#: the settings every model kind takes, and what each may be (None: the kind's default)
SETTINGS: dict[str, Constraint] = {
    "pooling": OneOf(POOLINGS),
    "draws": Integer(1),
    "chains": Integer(1),
    "warmup": Integer(0),
    "seed": Integer(0),
    "progress": Boolean(),
    "target_accept": Real(0.0, 1.0),
}


def validate(values: Mapping[str, Any], constraints: Mapping[str, Constraint],
             owner: str) -> None:
    """Check each of ``values`` against its constraint; ``None`` means "the default".

    Raises :class:`~poolwise.exceptions.SpecificationError` naming the owner, the
    setting, what it may be and the value given.
    """
    for name, value in values.items():
        rule = constraints.get(name)
        if rule is None or value is None or rule.holds(value):
            continue
        raise SpecificationError(f"{owner}: {name} must be {rule.text}, got {value!r}")


def unknown(what: str, value: Any, valid: Iterable[str], where: str = "") -> SpecificationError:
    """The error for a name that is not one of ``valid``, with the closest as a hint:
    ``unknown method 'mcmc' for a rates model; valid: exact, ...``."""
    valid = list(valid)
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f" {where}" if where else ""
    return SpecificationError(
        f"unknown {what} {value!r}{where}{hint}; valid: {', '.join(valid)}")


def kinds_text(kinds: Iterable[str]) -> str:
    """``("rates", "normal", "mixed")`` → ``"rates, normal and mixed"``."""
    names = list(kinds)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def indefinite_article(noun: str) -> str:
    """``an`` before a vowel, else ``a`` (``an experiment``, ``a lab``)."""
    return "an" if noun[:1].lower() in "aeiou" else "a"
