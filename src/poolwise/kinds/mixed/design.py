"""The numbers a mixed model is fitted to: what a formula and a table become.

A generalised linear mixed model, written as lme4 writes it,

    g(E[y_i]) = x_iᵀ β + Σ_t z_tiᵀ b_t[g_t(i)] (+ offset_i),
    b_t[l] ~ N(0, Σ_t)  for each level l of grouping factor t,

is described for inference by a :class:`MixedDesign`: the response, the fixed-effects
matrix X, and one :class:`GroupTerm` per random-effects term ``(expr | factor)``, each with
its own matrix Z_t, the level of every row, and whether the term's effects are correlated.
Nested factors ``(1 | school/classroom)`` arrive here already expanded into the terms
``(1 | school)`` and ``(1 | school:classroom)``; crossed factors are simply several terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from poolwise.exceptions import SpecificationError
from poolwise.vocabulary import FAMILY_ALIASES, canonical_family, unknown

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: response families and their links (``"gaussian"`` is read as ``"normal"``)
FAMILIES: dict[str, str] = {
    "normal": "identity",
    "binomial": "logit",
    "bernoulli": "logit",
    "poisson": "log",
}


@dataclass(frozen=True, eq=False)
class GroupTerm:
    """One random-effects term ``(expr | factor)``.

    ``z`` has one column per effect (``names``, e.g. ``("Intercept", "Days")``) and one
    row per observation; ``index[i]`` is the level of row i, in ``0..len(levels) − 1``.
    ``correlated`` is False for ``(expr || factor)`` and for single-effect terms; then Σ_t
    is diagonal.
    """

    factor: str
    names: tuple[str, ...]
    z: FloatArray
    index: IntArray
    levels: tuple[str, ...]
    correlated: bool

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_effects(self) -> int:
        return len(self.names)

    @property
    def label(self) -> str:
        """The term as written, e.g. ``(1 + Days | Subject)``."""
        bar = "|" if self.correlated or self.n_effects == 1 else "||"
        expr = " + ".join("1" if n == "Intercept" else n for n in self.names)
        if "Intercept" not in self.names:
            expr = "0 + " + expr
        return f"({expr} {bar} {self.factor})"


@dataclass(frozen=True, eq=False)
class MixedDesign:
    """A mixed model's data, ready for inference (rows with missing values removed).

    ``family`` is a key of :data:`FAMILIES` (the alias ``"gaussian"`` becomes ``"normal"``).
    ``trials`` is set for ``binomial`` (all ones for ``bernoulli``), ``offset`` (on the link
    scale, e.g. log exposure) where the formula has one. ``dropped_rows`` counts rows removed
    for missing values (only when the user asked for that); ``notes`` says what was done to
    the data, for the output. ``columns`` are the table's columns the formula reads and
    ``rows`` the positions (0-based) in that table of the rows used.
    """

    formula: str
    family: str
    response: str
    y: FloatArray
    x: FloatArray
    fixed_names: tuple[str, ...]
    terms: tuple[GroupTerm, ...]
    trials: FloatArray | None = None
    offset: FloatArray | None = None
    dropped_rows: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    columns: tuple[str, ...] = ()
    rows: IntArray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", mixed_family(self.family))

    @property
    def n_obs(self) -> int:
        return int(self.y.size)

    @property
    def link(self) -> str:
        return FAMILIES[self.family]

    def without_group_terms(self) -> MixedDesign:
        """The same fixed effects with no group terms: complete pooling."""
        return replace(self, terms=())


def mixed_family(name: str) -> str:
    """A mixed-model family's one name (``"gaussian"`` → ``"normal"``), or an error
    listing the mixed-model families."""
    valid = [*FAMILIES, *(alias for alias, to in FAMILY_ALIASES.items() if to in FAMILIES)]
    if not isinstance(name, str):
        raise SpecificationError(f"the family must be a name, not {type(name).__name__}")
    try:
        family = canonical_family(name)
    except SpecificationError:
        raise unknown("mixed-model family", name, valid) from None
    if family not in FAMILIES:
        raise unknown("mixed-model family", name, valid)
    return family


__all__ = ["FAMILIES", "GroupTerm", "MixedDesign", "mixed_family"]
