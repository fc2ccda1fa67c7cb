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

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: response families and their links
FAMILIES: dict[str, str] = {
    "gaussian": "identity",
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

    ``family`` is a key of :data:`FAMILIES`. ``trials`` is set for ``binomial`` (all ones for
    ``bernoulli``), ``offset`` (on the link scale, e.g. log exposure) where the formula has
    one. ``dropped_rows`` counts rows removed for missing values (only when the user asked
    for that); ``notes`` says what was done to the data, for the output.
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

    @property
    def n_obs(self) -> int:
        return int(self.y.size)

    @property
    def link(self) -> str:
        return FAMILIES[self.family]

    def without_group_terms(self) -> MixedDesign:
        """The same fixed effects with no group terms: complete pooling."""
        return MixedDesign(self.formula, self.family, self.response, self.y, self.x,
                           self.fixed_names, (), self.trials, self.offset,
                           self.dropped_rows, self.notes)


__all__ = ["FAMILIES", "GroupTerm", "MixedDesign"]
