"""Generalised linear mixed models from lme4/brms-style formulas."""

from poolwise.mixed.design import FAMILIES, GroupTerm, MixedDesign
from poolwise.mixed.formula import ALLOWED_FUNCTIONS, parse_formula, pooling_design

__all__ = [
    "ALLOWED_FUNCTIONS",
    "FAMILIES",
    "GroupTerm",
    "MixedDesign",
    "parse_formula",
    "pooling_design",
]
