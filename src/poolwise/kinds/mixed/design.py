"""The numbers a mixed model is fitted to: what a formula and a table become.

A generalised linear mixed model, written as lme4 writes it,

    g(E[y_i]) = x_iᵀ β + Σ_t z_tiᵀ b_t[g_t(i)] (+ offset_i),
    b_t[l] ~ N(0, Σ_t)  for each level l of grouping factor t,

with y_i ~ N(μ_i, σ²) (identity link), Binomial(n_i, p_i) or Bernoulli(p_i) (logit
link), Poisson(λ_i) or NegBinomial(μ_i, φ) (log link; Var y_i = μ_i + μ_i²/φ,
:mod:`poolwise.families.negative_binomial`), is described for inference by a
:class:`MixedDesign`: the response, the fixed-effects matrix X, and one :class:`GroupTerm`
per random-effects term ``(expr | factor)``, each with its own matrix Z_t, the level of
every row, and whether the term's effects are correlated.
Nested factors ``(1 | school/classroom)`` arrive here already expanded into the terms
``(1 | school)`` and ``(1 | school:classroom)``; crossed factors are simply several terms.

A normal model with one grouping factor needs only sums over its rows (Bates et al. 2015,
§3: the likelihood enters through WᵀW, Wᵀy and yᵀy for W = [Z X]), so a design read out of
core (:mod:`poolwise.kinds.mixed.stream`) holds no rows: its ``cross`` holds, per level j,
the :class:`CrossProducts` Z_jᵀZ_j, Z_jᵀX_j, Z_jᵀy_j, X_jᵀX_j, X_jᵀy_j, y_jᵀy_j, the column
sums and n_j, and its ``y``, ``x`` and the terms' ``z`` and ``index`` have no rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

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
    "negbinomial": "log",
}
#: the families with a parameter besides η, and its name in the priors and the posterior:
#: the normal family's residual sd σ, the negative binomial's shape φ (Var y = μ + μ²/φ)
FAMILY_PARAMETERS: dict[str, str] = {"normal": "sigma", "negbinomial": "phi"}


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
class CrossProducts:
    """Sums over the rows of each level j of the one grouping factor (or of all rows, as
    one level, without group terms): ``n`` (L,) rows; ``z_sum`` (L, k) Σ z_i; ``ztz``
    (L, k, k) Z_jᵀZ_j; ``ztx`` (L, k, p) Z_jᵀX_j; ``zty`` (L, k) Z_jᵀy_j; ``x_sum`` (L, p);
    ``xtx`` (L, p, p) X_jᵀX_j; ``xty`` (L, p); ``y_sum`` (L,) and ``yty`` (L,) Σ y_i².

    Everything a normal mixed model with one grouping factor computes from its rows is a
    function of these: the marginal likelihood's WᵀW, Wᵀr and rᵀr
    (:func:`~poolwise.kinds.mixed.inference.gaussian_stats`), the default priors' means and
    sds, each level's mean response and its replicated draws.
    """

    n: FloatArray
    z_sum: FloatArray
    ztz: FloatArray
    ztx: FloatArray
    zty: FloatArray
    x_sum: FloatArray
    xtx: FloatArray
    xty: FloatArray
    y_sum: FloatArray
    yty: FloatArray

    FIELDS: ClassVar[tuple[str, ...]] = ("n", "z_sum", "ztz", "ztx", "zty", "x_sum", "xtx",
                                         "xty", "y_sum", "yty")

    @property
    def n_obs(self) -> int:
        return round(float(self.n.sum()))

    def total(self, name: str) -> FloatArray:
        """The sum over levels of one field: the sum over all rows."""
        return np.asarray(getattr(self, name).sum(axis=0), dtype=float)

    def mean_sd(self, total: float, square: float, ddof: int = 1) -> tuple[float, float]:
        """The mean and sd (divisor n − ddof) of a column from its sum and sum of squares
        over all rows (0 for fewer than ddof + 1 rows)."""
        n = float(self.n.sum())
        mean = total / n
        if n <= ddof:
            return mean, 0.0
        return mean, float(np.sqrt(max(square - n * mean * mean, 0.0) / (n - ddof)))


#: a numeric covariate with at most this many distinct values keeps them (conditional
#: effects add them to the grid of the covariate's range)
FEW_VALUES = 30


@dataclass(frozen=True)
class CovariateRange:
    """What a design reduced to sums knows of a numeric covariate over the rows used: its
    smallest and largest value, its mean and, where it has at most :data:`FEW_VALUES`
    distinct values, those values (sorted; empty where there are more)."""

    column: str
    minimum: float
    maximum: float
    mean: float
    values: tuple[float, ...] = ()


def ranges_to_text(ranges: Sequence[CovariateRange]) -> str:
    """``ranges`` as JSON text (how a saved fit keeps them)."""
    return json.dumps([asdict(r) for r in ranges])


def ranges_from_text(text: str) -> tuple[CovariateRange, ...]:
    """The ranges :func:`ranges_to_text` wrote."""
    return tuple(CovariateRange(**{**r, "values": tuple(r["values"])})
                 for r in json.loads(text))


@dataclass(frozen=True, eq=False)
class MixedDesign:
    """A mixed model's data, ready for inference (rows with missing values removed).

    ``family`` is a key of :data:`FAMILIES` (the alias ``"gaussian"`` becomes ``"normal"``).
    ``trials`` is set for ``binomial`` (all ones for ``bernoulli``), ``offset`` (on the link
    scale, e.g. log exposure) where the formula has one. ``dropped_rows`` counts rows removed
    for missing values (only when the user asked for that); ``notes`` says what was done to
    the data, for the output. ``columns`` are the table's columns the formula reads and
    ``rows`` the positions (0-based) in that table of the rows used. A design reduced to
    sums (``cross``) keeps its numeric covariates' ``ranges`` instead of the rows.
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
    cross: CrossProducts | None = None
    ranges: tuple[CovariateRange, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", mixed_family(self.family))

    @property
    def n_obs(self) -> int:
        return self.cross.n_obs if self.cross is not None else int(self.y.size)

    @property
    def streamed(self) -> bool:
        """Whether the design holds sums over its rows (:class:`CrossProducts`), not rows."""
        return self.cross is not None

    def needs_rows(self, what: str) -> None:
        """Refuse ``what`` for a streamed design, naming the way to keep the rows."""
        if self.cross is not None:
            raise SpecificationError(
                f"{what} needs the rows in memory, and this fit was reduced out of core to "
                "per-group sums; fit one file with --engine pandas (engine='pandas') for it")

    @property
    def link(self) -> str:
        return FAMILIES[self.family]

    def without_group_terms(self) -> MixedDesign:
        """The same fixed effects with no group terms: complete pooling."""
        return replace(self, terms=())


def response_mean_sd(design: MixedDesign) -> tuple[float, float]:
    """The mean and sd (divisor n − 1; 0 for one row) of the response over the rows."""
    cross = design.cross
    if cross is not None:
        return cross.mean_sd(float(cross.total("y_sum")), float(cross.total("yty")))
    y = np.asarray(design.y, dtype=float)
    return float(np.mean(y)), float(np.std(y, ddof=1)) if y.size > 1 else 0.0


def fixed_sd(design: MixedDesign, j: int) -> float:
    """The sd (divisor n − 1) of fixed-effect column j over the rows (0 for one row)."""
    cross = design.cross
    if cross is not None:
        return cross.mean_sd(float(cross.total("x_sum")[j]), float(cross.total("xtx")[j, j]))[1]
    column = design.x[:, j]
    return float(np.std(column, ddof=1)) if column.size > 1 else 0.0


def effect_sd(design: MixedDesign, term: GroupTerm, e: int, ddof: int = 1) -> float:
    """The sd (divisor n − ddof) of effect e's column of ``term``'s Z over the rows."""
    cross = design.cross
    if cross is not None:
        return cross.mean_sd(float(cross.total("z_sum")[e]), float(cross.total("ztz")[e, e]),
                             ddof)[1]
    column = term.z[:, e]
    return float(np.std(column, ddof=ddof)) if column.size > ddof else 0.0


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


__all__ = ["FAMILIES", "FAMILY_PARAMETERS", "FEW_VALUES", "CovariateRange", "CrossProducts",
           "GroupTerm", "MixedDesign", "effect_sd", "fixed_sd", "mixed_family", "ranges_from_text",
           "ranges_to_text", "response_mean_sd"]
