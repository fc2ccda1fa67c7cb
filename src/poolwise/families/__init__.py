"""Model families. Each module holds all the maths of one family."""

from __future__ import annotations

from poolwise.exceptions import SpecificationError
from poolwise.families.base import RateFamily
from poolwise.families.beta_binomial import BetaBinomial
from poolwise.families.gamma_poisson import GammaPoisson
from poolwise.families.normal_normal import NormalNormal

FAMILIES: dict[str, RateFamily] = {
    f.name: f for f in (BetaBinomial(), GammaPoisson(), NormalNormal())
}


def get_family(name: str | RateFamily) -> RateFamily:
    """The family called ``name`` (or ``name`` itself if it is already a family)."""
    if isinstance(name, RateFamily):
        return name
    try:
        return FAMILIES[name]
    except KeyError:
        valid = ", ".join(FAMILIES)
        raise SpecificationError(f"unknown family {name!r}; valid families: {valid}") from None


__all__ = ["FAMILIES", "BetaBinomial", "GammaPoisson", "NormalNormal", "RateFamily",
           "get_family"]
