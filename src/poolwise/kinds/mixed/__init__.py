"""Generalised linear mixed models from lme4/brms-style formulas."""

from poolwise.kinds.mixed.design import FAMILIES, GroupTerm, MixedDesign
from poolwise.kinds.mixed.formula import ALLOWED_FUNCTIONS, parse_formula, pooling_design

__all__ = [
    "ALLOWED_FUNCTIONS",
    "FAMILIES",
    "GroupTerm",
    "MixedDesign",
    "parse_formula",
    "pooling_design",
]
