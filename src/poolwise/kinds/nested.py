"""Nested groups: experiments within laboratories, classrooms within schools.

The lecture's "turtles all the way" (seed 000, last section): once experiments are known to
come from laboratories, they are exchangeable only within a laboratory, so each laboratory
gets its own population of experiments, and the laboratories' populations are drawn from a
common one. For outer groups i = 1..I (labs) and inner groups j = 1..J_i (experiments):

    y_ij | θ_ij        ~ p(y | θ_ij, n_ij)               (the family's likelihood)
    θ_ij | u_i, v_i    ~ Pop(α_i, β_i),  (α_i, β_i) = from_uv(u_i, v_i)
    u_i                ~ N(m_u, s_u²),   v_i ~ N(m_v, s_v²)   (independently)
    m_u, s_u, m_v, s_v ~ the hyperpriors (:class:`NestedPrior`)

with the family's own unconstrained coordinates (u, v) of its population
(:attr:`~poolwise.families.base.RateFamily.uv_names`):

=================  ====================================  ==================================
family             u_i (the lab's location)              v_i (the lab's spread parameter)
=================  ====================================  ==================================
beta-binomial      logit of the lab's mean rate          log α_i + β_i (concentration)
gamma-poisson      log of the lab's mean rate            log α_i (shape)
normal             μ_i, the lab's (school's) mean         log τ_i, sd of its θ_ij
=================  ====================================  ==================================

The normal family is the lecture's other nested example (seed 001): y_ij an estimate for
classroom j of school i with a known standard error (or a classroom's raw student scores,
reduced to their mean and s/√n), θ_ij ~ N(μ_i, τ_i²), μ_i ~ N(λ = m_u, κ² = s_u²); each
school has its own τ_i, drawn around exp(m_v) (the lecture's common τ is s_v → 0).

Inference (NUTS, :func:`poolwise.inference.nuts.run_chains`). Every θ_ij is integrated out
with the family's ``log_marginal`` (JAX operations, the same code as the flat models), so
the chain runs over the 4 top hyperparameters and 2 coordinates per lab only:

    z = (m_u, log s_u, m_v, log s_v, ζ_u1..ζ_uI, ζ_v1..ζ_vI)
    non-centred (default):  u_i = m_u + s_u ζ_ui,  v_i = m_v + s_v ζ_vi,  ζ ~ N(0, 1)
    centred:                ζ_ui = u_i, ζ_vi = v_i with the densities N(u_i | m_u, s_u²) ...

    log p(z | y) = log p(m_u) + log p(s_u) + log s_u + log p(m_v) + log p(s_v) + log s_v
                   + Σ_i [log p(u_i | m_u, s_u) + log p(v_i | m_v, s_v)] (+ Jacobian)
                   + Σ_i Σ_j log p(y_ij | α_i, β_i).

Labs with few experiments say little about their v_i, so the non-centred form avoids the
funnel between s_v and the v_i. After sampling, each θ_ij is drawn exactly from its conjugate
conditional p(θ_ij | y_ij, α_i, β_i) at every draw: draws from the full joint posterior.

Gibbs is not offered: θ_ij | rest is conjugate, but (u_i, v_i) | θ_i· are not of a known
form and (m, s) | u are conjugate only under normal-inverse-gamma priors, so a Gibbs sampler
would be Metropolis-within-Gibbs on 2I + 4 coordinates — slower-mixing than NUTS on the
same collapsed posterior and not cheap to make robust.

Predictions (:meth:`poolwise.results.fit.Fit.predict`) answer four requests:
``ExistingGroup("lab:experiment")`` (new data from an experiment in the fit),
``NewGroupIn("lab")`` (a new experiment in a lab that is in the fit: θ* ~ Pop(α_i, β_i) at
the lab's posterior draws), ``NewGroup()`` (a new experiment in a new lab: (u*, v*) from the
top population first, so the between-lab spread is in it too; wider) and ``Population()``
(the mean of a typical lab, population_mean(from_uv(m_u, m_v)), lab effects at zero).

>>> import pandas as pd
>>> table = pd.DataFrame({"lab": list("AABBCC"), "experiment": [1, 2, 1, 2, 1, 2],
...                       "y": [3, 5, 8, 6, 2, 1], "n": [20, 25, 30, 28, 22, 18]})
>>> data = nested_data(table, y="y", n="n")
>>> data.labs.tolist(), data.labels.tolist()[:2]
(['A', 'B', 'C'], ['A:1', 'A:2'])
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple, Unpack

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy import special

from poolwise import _arviz
from poolwise._ops import NUMPY_OPS, Ops
from poolwise._random import Stream, generator
from poolwise.data.estimates import group_estimates
from poolwise.data.rows import row_number
from poolwise.data.tables import _require_column, group_counts, group_labels
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families import RateFamily, get_family
from poolwise.kinds.base import BaseModel, Settings
from poolwise.priors import (
    POOLING_DRAWS,
    Distribution,
    ImpliedPooling,
    _parse_call,
    _split_top_level,
    make_distribution,
)
from poolwise.resources import MemoryEstimate
from poolwise.results.checks import CheckData
from poolwise.results.fit import Answer, Fit, finish_fit
from poolwise.results.graph import (
    GraphNode,
    ModelGraph,
    Plate,
    latex,
    prior_line,
    range_label,
)
from poolwise.results.prediction import (
    ExistingGroup,
    NewGroup,
    NewGroupIn,
    Population,
    Prediction,
    check_size,
    find_label,
    prediction_dataset,
)
from poolwise.results.storage import FitRecord, record_attrs
from poolwise.results.summary import check_prob
from poolwise.vocabulary import canonical_family, indefinite_article, unknown

__all__ = ["NESTED_FAMILIES", "NestedData", "NestedFit", "NestedModel", "NestedPrior",
           "lab_log_marginal", "location_variance", "nested_data", "nested_pooling",
           "parse_group_path"]

#: the families with a nested model
NESTED_FAMILIES = ("beta-binomial", "gamma-poisson", "normal")
#: NUTS parametrisations of the lab coordinates
#: (u centred?, v centred?) of each. On simulated labs (12 labs × 6 experiments, with 5-20
#: or 30-120 trials each) the non-centred form had no divergences and ESS ≥ 490 from
#: 4 × 500 draws; the centred one 35-42 divergences and ESS ~ 100 for s_v, centring u only
#: 18-23 divergences: labs say little about their v_i, so s_v and the v_i form a funnel.
NESTED_PARAMETRISATIONS = {"non-centred": (False, False), "centred": (True, True)}
#: half-width of the uniform jitter of the chains' starts (unconstrained units)
INIT_JITTER = 0.5
#: joins an outer and an inner label into one experiment label
SEPARATOR = ":"
#: names of the four top hyperparameters, in the order they are sampled
TOP_NAMES = ("m_u", "s_u", "m_v", "s_v")
#: a real-line prior for the locations, a positive one for the scales
_LOCATION = {"m_u", "m_v"}


def nested_family(family: str | RateFamily) -> RateFamily:
    """The family of a nested model: a name (``"gaussian"`` is ``"normal"``) or a family,
    one of :data:`NESTED_FAMILIES`."""
    if not isinstance(family, RateFamily):
        family = canonical_family(family)
    name = family if isinstance(family, str) else family.name
    if name not in NESTED_FAMILIES:
        raise SpecificationError(
            f"no nested model for the {name!r} family; valid: {', '.join(NESTED_FAMILIES)}")
    return get_family(family)


def parse_group_path(text: str) -> tuple[str, str]:
    """``"lab/experiment"`` → ``("lab", "experiment")`` (the CLI's ``--group``).

    Exactly two levels, outer first; one-line errors otherwise.
    """
    parts = [part.strip() for part in str(text).split("/")]
    if len(parts) == 1:
        raise SpecificationError(
            f"--group {text!r} names one grouping column; nested groups are written "
            "outer/inner, e.g. lab/experiment")
    if len(parts) != 2:
        raise SpecificationError(
            f"--group {text!r} has {len(parts)} levels; nested models take two, outer/inner "
            "(e.g. lab/experiment or school/classroom)")
    if not all(parts):
        raise SpecificationError(f"--group {text!r} has an empty column name; write lab/experiment")
    if parts[0] == parts[1]:
        raise SpecificationError(f"--group {text!r} names the same column twice")
    return parts[0], parts[1]


# ------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class NestedData:
    """Per-experiment statistics with the lab each experiment belongs to.

    ``labels`` are ``"lab:experiment"``, ordered lab by lab (labs in order of first
    appearance, experiments within a lab likewise); ``lab_index[j]`` is the position in
    ``labs`` of experiment j's lab. ``n`` holds the trials, the exposure or (normal family)
    the standard error.
    """

    labs: NDArray[np.str_]
    labels: NDArray[np.str_]
    inner: NDArray[np.str_]
    lab_index: NDArray[np.intp]
    y: NDArray[np.float64]
    n: NDArray[np.float64]
    family: str
    outer_name: str = "lab"
    inner_name: str = "experiment"
    #: whether each inner label occurred under one outer label only
    inner_unique: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def n_labs(self) -> int:
        return int(self.labs.size)

    @property
    def n_experiments(self) -> int:
        return int(self.y.size)

    def lab_of(self) -> NDArray[np.str_]:
        """The lab of each experiment."""
        return self.labs[self.lab_index]

    def to_frame(self) -> pd.DataFrame:
        size = "se" if self.family == "normal" else "n"
        return pd.DataFrame({self.outer_name: self.lab_of(), self.inner_name: self.inner,
                             "y": self.y, size: self.n})


def nested_data(
    table: pd.DataFrame,
    y: str,
    n: str | None = None,
    se: str | None = None,
    outer: str = "lab",
    inner: str = "experiment",
    *,
    family: str | RateFamily | None = None,
    inner_unique: bool | None = None,
) -> NestedData:
    """Reduce a table to per-experiment statistics grouped by lab.

    Parameters
    ----------
    table
        One row per experiment (a count y and a size n, or an estimate y and its standard
        error se), or several rows per experiment: counts are summed; for the normal
        family without ``se`` the rows are raw observations (students), reduced to each
        inner group's mean and s/√n (see :func:`poolwise.data.estimates.group_estimates`).
    y, n, se
        Columns: counts and trials/exposure (rate families), or estimates and standard
        errors (normal family).
    outer, inner
        The grouping columns: labs and experiments (schools and classrooms).
    family
        ``"beta-binomial"``, ``"gamma-poisson"`` or ``"normal"``; by default ``"normal"``
        when ``se`` is given and ``"beta-binomial"`` otherwise.
    inner_unique
        Whether inner labels identify an experiment across the whole table. ``None``
        (default) decides from the data: if an inner label appears under two labs, inner
        labels are read as unique only within their lab (``1, 2, 3`` in every lab) and a
        note says so. ``True`` makes such a label an error (an experiment listed under two
        labs); ``False`` always reads them within their lab. Either way experiments are
        labelled ``"lab:experiment"``.

    Raises
    ------
    DataError
        A missing column or value, a bad count or size, an inner label under two labs
        (with ``inner_unique=True``), or a single lab (use the flat model).
    """
    fam = nested_family(family if family is not None else ("normal" if se is not None
                                                           else "beta-binomial"))
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, not {type(table).__name__}")
    if table.empty:
        raise DataError("the table has no rows")
    if outer == inner:
        raise SpecificationError(f"the outer and inner group columns are both {outer!r}")
    if fam.name == "normal":
        if n is not None:
            raise SpecificationError(
                "the normal family takes standard errors (se=, --se), not sizes (n=)")
    elif se is not None:
        raise SpecificationError(f"the {fam.name} family takes sizes (n=, --n), not se=")
    _require_column(table, y, "count (y)" if fam.name != "normal" else "estimate (y)")
    if n is not None:
        _require_column(table, n, fam.size_label)
    if se is not None:
        _require_column(table, se, "standard error")
    outer_labels = group_labels(table, outer)
    inner_labels = group_labels(table, inner)

    notes: list[str] = []
    pairs = pd.DataFrame({"outer": outer_labels, "inner": inner_labels}).drop_duplicates()
    labs_per_inner = pairs.groupby("inner", sort=False)["outer"].nunique()
    shared = labs_per_inner[labs_per_inner > 1]
    unique = shared.empty
    if not unique:
        label = str(shared.index[0])
        rows = [int(r) for r in np.flatnonzero(inner_labels == label)]
        first = outer_labels[rows[0]]
        second_row = next(r for r in rows if outer_labels[r] != first)
        where = (f"{inner} {label!r} appears under {outer} {first!r} ({row_number(rows[0])}) and "
                 f"{outer} {outer_labels[second_row]!r} ({row_number(second_row)})")
        if inner_unique:
            raise DataError(
                f"{where}; with inner_unique=True each {inner} belongs to one {outer}. If "
                f"{inner} labels are unique only within their {outer}, pass "
                "inner_unique=False (experiments are then labelled 'lab:experiment')")
        if inner_unique is None:
            notes.append(
                f"{inner} labels repeat across {outer}s ({where}): read as unique only within "
                f"their {outer}, labelled '{outer}{SEPARATOR}{inner}'")

    keys = np.char.add(np.char.add(outer_labels.astype(str), SEPARATOR), inner_labels.astype(str))
    key_pairs = pd.DataFrame({"key": keys, "outer": outer_labels, "inner": inner_labels})
    distinct = key_pairs.drop_duplicates()
    if distinct["key"].duplicated().any():
        clash = distinct.loc[distinct["key"].duplicated(), "key"].iloc[0]
        raise DataError(
            f"two different ({outer}, {inner}) pairs both read as {clash!r}; rename labels "
            f"so that '{SEPARATOR}' does not make them ambiguous")
    key_name = f"{outer}{SEPARATOR}{inner}"
    reduced = pd.DataFrame({key_name: keys, "__y": table[y].to_numpy()}, index=table.index)
    reduced = reduced.rename(columns={"__y": y})
    if fam.name == "normal":
        if se is not None:
            reduced[se] = table[se].to_numpy()
        stats = group_estimates(reduced, y=y, se=se, group=key_name)
        labels, y_g, n_g = stats.labels, stats.y, stats.se
        notes.extend(stats.notes)
    else:
        if n is not None:
            reduced[n] = table[n].to_numpy()
        counts = group_counts(reduced, fam, y=y, n=n, group=key_name)
        labels, y_g, n_g = counts.labels, counts.y, counts.n
        notes.extend(counts.notes)

    lookup = distinct.set_index("key")
    lab_of = lookup.loc[labels, "outer"].to_numpy().astype(str)
    inner_of = lookup.loc[labels, "inner"].to_numpy().astype(str)
    labs = pd.unique(pd.Series(outer_labels))
    labs = np.array([lab for lab in labs if lab in set(lab_of)], dtype=str)
    if labs.size < 2:
        only = f" ({str(labs[0])!r})" if labs.size else ""
        raise DataError(
            f"the data have one {outer}{only}, so there is no between-{outer} variation to "
            f"learn; fit the flat model instead (--group {inner})")
    position = {lab: i for i, lab in enumerate(labs)}
    lab_index = np.array([position[lab] for lab in lab_of], dtype=np.intp)
    order = np.argsort(lab_index, kind="stable")
    return NestedData(labs=labs, labels=np.asarray(labels, dtype=str)[order],
                      inner=inner_of[order], lab_index=lab_index[order],
                      y=np.asarray(y_g, dtype=float)[order], n=np.asarray(n_g, dtype=float)[order],
                      family=fam.name, outer_name=str(outer), inner_name=str(inner),
                      inner_unique=unique, notes=tuple(notes))


# ----------------------------------------------------------------------------- priors
@dataclass(frozen=True)
class NestedPrior:
    """Priors of the top hyperparameters m_u, s_u (the labs' u_i) and m_v, s_v (their v_i).

    A field left ``None`` takes its default, which depends on the family and is scaled to
    the data by :meth:`resolve` (weakly informative: wide on the scale of the data, but
    proper, so the posterior is proper with any number of labs):

    ``beta-binomial``  m_u ~ Normal(logit p̂, 2), s_u ~ HalfNormal(1),
                       m_v ~ Normal(log 10, 2), s_v ~ HalfNormal(1);
    ``gamma-poisson``  m_u ~ Normal(log r̂, 2), s_u ~ HalfNormal(1),
                       m_v ~ Normal(log 10, 2), s_v ~ HalfNormal(1);
    ``normal``         m_u ~ Normal(ȳ, 5 S), s_u ~ HalfNormal(2 S),
                       m_v ~ Normal(log S, 2), s_v ~ HalfNormal(1);

    with p̂ and r̂ the pooled rate (Σy + ½)/(Σn + 1), ȳ the precision-weighted mean and
    S = max(sd of the estimates, median standard error). Normal(·, 2) on the logit or log
    scale lets the typical lab's odds or rate lie within a factor e⁴ ≈ 55 of the pooled one;
    HalfNormal(1) lets labs' odds or rates differ by up to a factor of about e² (2 sd);
    Normal(log 10, 2) lets the typical concentration (prior sample size) be anything from
    ~0.2 to ~500. Override any of them with ``prior="s_u=halfnormal(0.5)"`` and so on.
    """

    m_u: Distribution | None = None
    s_u: Distribution | None = None
    m_v: Distribution | None = None
    s_v: Distribution | None = None

    def __post_init__(self) -> None:
        for name in TOP_NAMES:
            dist = getattr(self, name)
            if dist is None:
                continue
            if not isinstance(dist, Distribution):
                raise SpecificationError(
                    f"the prior of {name} must be a Distribution, not {type(dist).__name__}")
            if name in _LOCATION and dist.support != "real":
                raise SpecificationError(
                    f"{name} is a location on the real line: give it normal(mu, sigma), "
                    f"studentt(df, mu, sigma) or flat, not {dist}")
            if name not in _LOCATION and not dist.positive:
                raise SpecificationError(
                    f"{name} is a scale > 0: give it a prior on (0, ∞) such as halfnormal(1), "
                    f"not {dist}")

    @classmethod
    def parse(cls, text: str | NestedPrior | None) -> NestedPrior:
        """``"s_u=halfnormal(0.5), m_v=normal(2, 1)"`` (or ``s_u ~ HalfNormal(0.5); …``, as
        printed): any of m_u, s_u, m_v, s_v; the others keep their defaults. ``None`` or
        ``""``: all defaults."""
        if text is None:
            return cls()
        if isinstance(text, NestedPrior):
            return text
        if not isinstance(text, str):
            raise SpecificationError(
                f"a nested prior is a string or NestedPrior, not {type(text).__name__}")
        if not text.strip() or text.strip().lower() == "default":
            return cls()
        chosen: dict[str, Distribution] = {}
        for part in _split_top_level(text.replace(";", ",")):
            match = re.match(r"^\s*([A-Za-z_]+)\s*[=~]\s*(.+?)\s*$", part)
            if not match:
                raise SpecificationError(
                    f"cannot read {part.strip()!r} in nested prior {text!r}; write e.g. "
                    "'s_u=halfnormal(0.5), m_v=normal(2, 1)' (names: m_u, s_u, m_v, s_v)")
            name = match.group(1).lower()
            if name not in TOP_NAMES:
                raise unknown("hyperparameter", match.group(1), TOP_NAMES,
                              f"in nested prior {text!r}")
            if name in chosen:
                raise SpecificationError(f"nested prior {text!r} sets {name} twice")
            chosen[name] = make_distribution(*_parse_call(match.group(2)),
                                             positive=name not in _LOCATION)
        return cls(**chosen)

    def resolve(self, family: RateFamily, data: NestedData) -> NestedPrior:
        """Every field filled: the given ones, and the defaults scaled to ``data``."""
        defaults = default_priors(family, data)
        return NestedPrior(**{name: getattr(self, name) or defaults[name] for name in TOP_NAMES})

    def spec(self) -> str:
        """The string that parses back into this prior (only the fields that are set)."""
        parts = [f"{name}={d.name}({', '.join(repr(v) for v in d.params)})"
                 for name in TOP_NAMES if (d := getattr(self, name)) is not None]
        return ", ".join(parts)

    def log_density(self, top: tuple[Any, Any, Any, Any], ops: Ops = NUMPY_OPS) -> Any:
        """log p(m_u) + log p(s_u) + log p(m_v) + log p(s_v) (all fields must be set)."""
        total = 0.0
        for name, value in zip(TOP_NAMES, top, strict=True):
            dist = getattr(self, name)
            assert dist is not None, "resolve() the prior first"
            total = total + dist.log_density(value, ops)
        return total


def _pooled(family: RateFamily, data: NestedData) -> float:
    if family.name == "normal":
        return family.pool(data.y, data.n)[0]
    return (float(np.sum(data.y)) + 0.5) / (float(np.sum(data.n)) + 1.0)


def _data_scale(data: NestedData) -> float:
    """S for the normal family: max(sd of the estimates, median se)."""
    return max(float(np.std(data.y)), float(np.median(data.n)))


def default_priors(family: RateFamily, data: NestedData) -> dict[str, Distribution]:
    """The default hyperpriors (see :class:`NestedPrior`), scaled to ``data``."""
    pooled = _pooled(family, data)
    if family.name == "normal":
        scale = _data_scale(data)
        return {"m_u": make_distribution("normal", (_round(pooled), _round(5 * scale))),
                "s_u": make_distribution("halfnormal", (_round(2 * scale),)),
                "m_v": make_distribution("normal", (_round(math.log(scale)), 2.0)),
                "s_v": make_distribution("halfnormal", (1.0,))}
    centre = math.log(pooled) if family.name == "gamma-poisson" else float(special.logit(pooled))
    return {"m_u": make_distribution("normal", (_round(centre), 2.0)),
            "s_u": make_distribution("halfnormal", (1.0,)),
            "m_v": make_distribution("normal", (_round(math.log(10.0)), 2.0)),
            "s_v": make_distribution("halfnormal", (1.0,))}


def _round(value: float) -> float:
    """Four significant figures, so that a prior prints as it is used."""
    return float(f"{value:.4g}")


#: what u and v mean, per family, for the prior's description
_UV_TEXT = {
    "beta-binomial": ("u_i = logit of lab i's mean rate α_i/(α_i+β_i)",
                      "v_i = log of its concentration α_i+β_i"),
    "gamma-poisson": ("u_i = log of lab i's mean rate α_i/β_i", "v_i = log of its shape α_i"),
    "normal": ("u_i = μ_i, the mean of outer group i", "v_i = log τ_i, the sd of its θ_ij"),
}


def describe_nested_prior(family: RateFamily, prior: NestedPrior) -> str:
    """The whole prior, as printed to the user."""
    u_text, v_text = _UV_TEXT[family.name]
    parts = [f"θ_ij ~ {family.population_text.replace('α', 'α_i').replace('β', 'β_i')}"
             if family.name != "normal" else "θ_ij ~ N(μ_i, τ_i²)",
             f"{u_text} ~ N(m_u, s_u²)", f"{v_text} ~ N(m_v, s_v²)"]
    for name in TOP_NAMES:
        dist = getattr(prior, name)
        parts.append(f"{name} ~ {dist if dist is not None else _DEFAULT_TEXT[family.name][name]}")
    return "; ".join(parts)


#: the defaults before they are scaled to data
_DEFAULT_TEXT = {
    "beta-binomial": {"m_u": "Normal(logit pooled rate, 2)", "s_u": "HalfNormal(1)",
                      "m_v": "Normal(log 10, 2)", "s_v": "HalfNormal(1)"},
    "gamma-poisson": {"m_u": "Normal(log pooled rate, 2)", "s_u": "HalfNormal(1)",
                      "m_v": "Normal(log 10, 2)", "s_v": "HalfNormal(1)"},
    "normal": {"m_u": "Normal(pooled mean, 5 S)", "s_u": "HalfNormal(2 S)",
               "m_v": "Normal(log S, 2)", "s_v": "HalfNormal(1)"},
}


#: what each family's n is called, and what its u is, in the pooling factor's words
_SIZE_NAME = {"beta-binomial": "n", "gamma-poisson": "exposure", "normal": "se"}
_LOCATION_TEXT = {"beta-binomial": "logit mean rate", "gamma-poisson": "log mean rate",
                  "normal": "mean"}


def location_variance(family: RateFamily, u: Any, v: Any, size: Any) -> Any:
    """The variance about u_i of one inner group's estimate of its outer group's location
    u_i, given (u_i, v_i) and its size: normal τ_i² + se² (exact); beta-binomial
    (1 + (n − 1)/(κ + 1))/(n p(1 − p)), p = expit u, κ = e^v, the beta-binomial variance of
    y/n carried to the logit scale by the delta method; gamma-Poisson 1/(μE) + 1/α,
    μ = e^u, α = e^v, that of y/E carried to the log scale likewise."""
    if family.name == "normal":
        return np.exp(2.0 * np.asarray(v)) + np.square(size)
    if family.name == "beta-binomial":
        p = special.expit(u)
        return (1.0 + (size - 1.0) / (np.exp(v) + 1.0)) / (size * p * (1.0 - p))
    return np.exp(-np.asarray(u)) / size + np.exp(-np.asarray(v))


def nested_pooling(family: RateFamily, prior: NestedPrior, data: NestedData,
                   rng: np.random.Generator) -> list[str]:
    """The prior's pooling factor at each level (:class:`~poolwise.priors.ImpliedPooling`),
    from :data:`~poolwise.priors.POOLING_DRAWS` draws of (m_u, s_u, m_v, s_v) and a lab's
    (u, v) from the resolved ``prior`` (all proper):

    * an inner group (experiment) of the median size within its outer group (lab): the
      weight of the lab's population mean in E[θ_ij | y_ij, α_i, β_i],
      ``family.pooling_factor(α_i, β_i, size)`` (exact);
    * an outer group with the median number J of inner groups of the median size: the
      weight of m_u in the estimate of u_i, λ = (w/J)/(w/J + s_u²), w an inner group's
      variance about u_i (:func:`location_variance`: exact for the normal family,
      approximate — the delta method — for the rates, and labelled so).
    """
    top = {name: np.asarray(getattr(prior, name).sample(rng, POOLING_DRAWS), dtype=float)
           for name in TOP_NAMES}
    u = top["m_u"] + top["s_u"] * rng.standard_normal(POOLING_DRAWS)
    v = top["m_v"] + top["s_v"] * rng.standard_normal(POOLING_DRAWS)
    size = float(np.median(data.n))
    inner, outer = data.inner_name, data.outer_name
    an_inner = indefinite_article(inner)
    count = float(np.median(np.bincount(data.lab_index, minlength=data.n_labs)))
    size_text = f"{_SIZE_NAME[family.name]} = {size:.3g}"
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        within = family.pooling_factor(*family.from_uv(u, v), size)
        noise = location_variance(family, u, v, size) / count
        between = noise / (noise + np.square(top["s_u"]))
    where = (f"for {indefinite_article(outer)} {outer}'s {_LOCATION_TEXT[family.name]}, from "
             f"{count:g} {inner}s of {size_text} (the medians)")
    if family.name != "normal":
        where += (f" (approximate: {an_inner} {inner}'s variance about it by the delta "
                  "method)")
    return [ImpliedPooling.of(within, f"for {an_inner} {inner} of {size_text} (the "
                                      f"median) within its {outer}").describe(),
            ImpliedPooling.of(between, where).describe()]


# ----------------------------------------------------------------------------- density
class Experiments(NamedTuple):
    """What the density reads of :class:`NestedData`: y, n, each experiment's lab and the
    (J, I) 0/1 matrix of which lab each is in (arrays only: NUTS takes them as arguments,
    so data sets of the same shapes share one compiled program)."""

    y: NDArray[np.float64]
    n: NDArray[np.float64]
    lab_index: NDArray[np.intp]
    membership: NDArray[np.float64]

    @classmethod
    def of(cls, data: NestedData) -> Experiments:
        membership = np.zeros((data.n_experiments, data.n_labs))
        membership[np.arange(data.n_experiments), data.lab_index] = 1.0
        return cls(data.y, data.n, data.lab_index, membership)


def lab_log_marginal(family: RateFamily, u: Any, v: Any, data: NestedData | Experiments,
                     ops: Ops = NUMPY_OPS) -> Any:
    """log p(y_i· | u_i, v_i) = Σ_{j in lab i} log ∫ p(y_ij | θ) Pop(θ | α_i, β_i) dθ, per lab.

    ``u`` and ``v`` have shape (..., I); the result too. Written once against ``ops`` (the
    family's ``log_marginal``), so NumPy and JAX (NUTS) evaluate the same expression.
    """
    experiments = data if isinstance(data, Experiments) else Experiments.of(data)
    alpha, beta = family.from_uv(u, v, ops)
    index = experiments.lab_index
    per_experiment = family.log_marginal(alpha[..., index], beta[..., index], experiments.y,
                                         experiments.n, ops)
    # sum experiments into their labs: a (J, I) 0/1 matrix keeps it one matmul in JAX too
    return per_experiment @ experiments.membership


@dataclass(frozen=True)
class _NestedPotential:
    """−log p(z | y) up to a constant, z as in the module docstring (1-D), a function of z
    and the :class:`Experiments`; equal for every data set of the same family, prior, form
    and number of labs, so NUTS compiles it once for them (a calibration's replications)."""

    family: RateFamily
    prior: NestedPrior
    centred: tuple[bool, bool]
    labs: int
    ops: Ops

    def level(self, zeta: Any, m: Any, log_s: Any, centre: bool) -> tuple[Any, Any]:
        """The labs' coordinate and its log density N(· | m, s²) in the sampled form."""
        s = self.ops.exp(log_s)
        if centre:
            return zeta, (-log_s - 0.5 * self.ops.square((zeta - m) / s)).sum()
        return m + s * zeta, (-0.5 * self.ops.square(zeta)).sum()

    def __call__(self, z: Any, experiments: Experiments) -> Any:
        ops, labs = self.ops, self.labs
        m_u, log_su, m_v, log_sv = z[0], z[1], z[2], z[3]
        u, density_u = self.level(z[4:4 + labs], m_u, log_su, self.centred[0])
        v, density_v = self.level(z[4 + labs:4 + 2 * labs], m_v, log_sv, self.centred[1])
        top = (self.prior.log_density((m_u, ops.exp(log_su), m_v, ops.exp(log_sv)), ops)
               + log_su + log_sv)
        return -(top + density_u + density_v
                 + lab_log_marginal(self.family, u, v, experiments, ops).sum())


def _log_density(family: RateFamily, prior: NestedPrior, data: NestedData,
                 centred: tuple[bool, bool], ops: Ops) -> Any:
    """log p(z | y) up to a constant, z as in the module docstring (1-D)."""
    potential = _NestedPotential(family, prior, centred, data.n_labs, ops)
    experiments = Experiments.of(data)
    return lambda z: -potential(z, experiments)


def _start(family: RateFamily, data: NestedData, centred: tuple[bool, bool]
           ) -> NDArray[np.float64]:
    """A starting point: each lab's own (u, v) start, the top values their mean and spread."""
    lab_uv = np.array([family.start_uv(data.y[data.lab_index == i], data.n[data.lab_index == i])
                       for i in range(data.n_labs)])
    u_scale, _ = family.uv_scale(data.y, data.n)
    m_u, m_v = float(np.mean(lab_uv[:, 0])), float(np.mean(lab_uv[:, 1]))
    s_u = max(float(np.std(lab_uv[:, 0])), 0.1 * u_scale)
    s_v = 0.5
    zeta_u = lab_uv[:, 0] if centred[0] else (lab_uv[:, 0] - m_u) / s_u
    zeta_v = np.full(data.n_labs, m_v) if centred[1] else np.zeros(data.n_labs)
    return np.concatenate([[m_u, math.log(s_u), m_v, math.log(s_v)], zeta_u, zeta_v])


# ------------------------------------------------------------------------------ model
class NestedModel(BaseModel):
    """Two grouping levels, outer i (labs) and inner j (experiments): module docstring.

    Parameters
    ----------
    family
        ``"beta-binomial"`` (counts out of trials), ``"gamma-poisson"`` (counts with an
        exposure) or ``"normal"`` (alias ``"gaussian"``; estimates with known standard
        errors, or raw scores).
    pooling
        ``"partial"`` only: partial pooling at both levels.
    prior
        Overrides of the top hyperpriors, e.g. ``"s_u=halfnormal(0.5)"``; see
        :class:`NestedPrior` for the defaults (shown by :meth:`describe_prior`).
    method
        ``"nuts"`` (the only one; θ integrated out, then drawn exactly).
    draws, chains, warmup, seed, progress, target_accept
        Draws and warm-up per chain, the seed of every random stream, a progress bar,
        NUTS's target acceptance rate (default :attr:`TARGET_ACCEPT`).
    parametrisation
        The labs' coordinates: ``"non-centred"`` (``"auto"``, the default) or
        ``"centred"``.

    >>> NestedModel(family="beta-binomial").describe_prior().split("; ")[3]
    'm_u ~ Normal(logit pooled rate, 2)'
    """

    kind = "nested"
    METHODS: ClassVar[Mapping[str, tuple[str, ...]]] = {"partial": ("nuts",)}
    PARAMETRISATIONS = tuple(NESTED_PARAMETRISATIONS)
    #: NUTS step-size target: hierarchical scales like s_v are curved, so smaller steps
    TARGET_ACCEPT = 0.9

    def __init__(self, *, family: str | RateFamily = "beta-binomial",
                 prior: str | NestedPrior | None = None,
                 **settings: Unpack[Settings]) -> None:
        self.family = nested_family(family)
        self._settle({"family": self.family.name}, settings)
        self.prior = NestedPrior.parse(prior)
        if self.prior.spec():
            self._spec["prior"] = self.prior.spec()

    @property
    def parametrisation(self) -> str:
        """The labs' coordinates as sampled (``"auto"`` is ``"non-centred"``)."""
        chosen = self.config.parametrisation
        return self.PARAMETRISATIONS[0] if chosen == "auto" else chosen

    # ------------------------------------------------------------------ describing
    def describe_prior(self, data: NestedData | None = None) -> str:
        """The model's priors; with ``data`` the defaults are given their values."""
        prior = self.prior if data is None else self.prior.resolve(self.family, data)
        return describe_nested_prior(self.family, prior)

    def implied_pooling(self, data: NestedData | None = None) -> str | None:
        """The prior's pooling factor at each level, for the median experiment and lab
        (:func:`nested_pooling`); None without data or with a flat top prior."""
        if data is None:
            return None
        prior = self.prior.resolve(self.family, data)
        if not all(getattr(prior, name).proper for name in TOP_NAMES):
            return None
        rng = generator(self.config.seed, Stream.PRIOR_PREDICTIVE, 1)
        return "; ".join(nested_pooling(self.family, prior, data, rng))

    def title(self, data: NestedData) -> str:
        """E.g. ``"beta-binomial, experiments within labs (12 labs, 72 experiments), method
        nuts"``."""
        inner, outer = data.inner_name, data.outer_name
        return (f"{self.family.name}, {inner}s within {outer}s ({data.n_labs} {outer}s, "
                f"{data.n_experiments} {inner}s), method {self.method}")

    def graph(self, data: NestedData | None = None) -> ModelGraph:
        """The graphical model, with nested plates.

        Nodes: ``m_u, s_u, m_v, s_v`` (latent, with their priors' constants as fixed dots
        where the prior is set or resolved for ``data``), ``u`` and ``v`` (the lab's
        coordinates) in the plate over labs i = 1..I, and ``theta``, the size ``n``
        (``sigma`` for the normal family) and ``y`` in the plate over experiments
        j = 1..J_i inside it.

        >>> NestedModel().graph().parents("theta")
        ('u', 'v')
        """
        family = self.family
        prior = self.prior if data is None else self.prior.resolve(family, data)
        size_name, size_label = family.size_node
        u_label, v_label = _UV_LATEX[family.name]
        nodes: list[GraphNode] = []
        edges: list[tuple[str, str]] = []
        for name in TOP_NAMES:
            nodes.append(GraphNode(name, _TOP_LATEX[name], "latent"))
            dist = getattr(prior, name)
            if dist is not None:
                for param, value in zip(dist.param_names, dist.params, strict=True):
                    nodes.append(GraphNode(f"{name}_{param}", f"${value:g}$", "fixed"))
                    edges.append((f"{name}_{param}", name))
        nodes += [GraphNode("u", u_label, "latent"), GraphNode("v", v_label, "latent"),
                  GraphNode("theta", r"$\theta_{ij}$", "latent"),
                  GraphNode(size_name, f"${size_label}_{{ij}}$", "fixed"),
                  GraphNode("y", "$y_{ij}$", "observed")]
        edges += [("m_u", "u"), ("s_u", "u"), ("m_v", "v"), ("s_v", "v"), ("u", "theta"),
                  ("v", "theta"), ("theta", "y"), (size_name, "y")]
        labs = "I" if data is None else str(data.n_labs)
        plates = (Plate("labs", range_label("i", labs), ("u", "v")),
                  Plate("experiments", range_label("j", "J_i"), ("theta", size_name, "y"),
                        inside="labs"))
        outer, inner = ("lab", "experiment") if data is None else (data.outer_name,
                                                                    data.inner_name)
        return ModelGraph(tuple(nodes), tuple(edges), plates,
                          f"{family.name}, nested ({outer}s / {inner}s)")

    def equations(self, data: NestedData | None = None) -> list[str]:
        r"""The model as LaTeX lines (no ``$`` delimiters): the likelihood, θ_ij's
        population, the labs' coordinates and the top priors (with their values for
        ``data``).

        >>> NestedModel(family="normal").equations()[2]
        '\\mu_i \\sim \\mathrm{N}(m_u, s_u^2)'
        """
        family = self.family
        size = family.size_node[1]
        likelihood = family.likelihood_latex.format(size=size, theta=r"\theta_{ij}")
        likelihood = likelihood.replace(f"{size}_j", f"{size}_{{ij}}")
        extent = "I" if data is None else str(data.n_labs)
        prior = self.prior if data is None else self.prior.resolve(family, data)
        population = describe_nested_prior(family, prior).split(";")[0].strip()
        u, v = _NESTED_COORDINATES[family.name]
        lines = [rf"y_{{ij}} \sim {likelihood}, \quad j = 1, \ldots, J_i, \quad i = 1, "
                 rf"\ldots, {extent}",
                 latex(population).replace("_ij", "_{ij}"),
                 rf"{u} \sim \mathrm{{N}}(m_u, s_u^2)", rf"{v} \sim \mathrm{{N}}(m_v, s_v^2)"]
        for name in TOP_NAMES:
            dist = getattr(prior, name)
            text = str(dist) if dist is not None else _DEFAULT_TEXT[family.name][name]
            lines.append(prior_line(name, text))
        return lines

    # ------------------------------------------------------------------ data
    def prepare(self, data: pd.DataFrame | NestedData, *,
                y: str | None = None, n: str | None = None, se: str | None = None,
                group: str = "lab/experiment", inner_unique: bool | None = None
                ) -> NestedData:
        """Validate a table (or check a :class:`NestedData`) for this model.

        ``group`` names the outer and inner grouping columns as ``"outer/inner"`` (the
        command line's ``--group``); the other arguments as in :func:`nested_data`.
        """
        if isinstance(data, NestedData):
            if data.family != self.family.name:
                raise SpecificationError(
                    f"the data were prepared for the {data.family} family, the model is "
                    f"{self.family.name}")
            return data
        if y is None:
            raise SpecificationError("name the column of counts or estimates: y='...'")
        outer, inner = parse_group_path(group)
        return nested_data(data, y, n=n, se=se, outer=outer, inner=inner, family=self.family,
                           inner_unique=inner_unique)

    def memory_estimate(self, data: NestedData) -> MemoryEstimate:
        """NUTS over 4 + 2 × labs coordinates; stored at each draw the 4 top
        hyperparameters, the labs' variables, θ and the log likelihood per experiment."""
        labs, experiments = data.n_labs, data.n_experiments
        per_lab = 2 if self.family.name == "normal" else 4  # _lab_variables
        return self._draws_estimate(stored=4 + per_lab * labs + experiments,
                                    sampled=4 + 2 * labs, pointwise=experiments,
                                    observed=2 * experiments, jax=True)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | NestedData, *,
            y: str | None = None, n: str | None = None, se: str | None = None,
            group: str = "lab/experiment", inner_unique: bool | None = None) -> NestedFit:
        """Sample the posterior with NUTS (θ integrated out, then drawn exactly); the
        columns as in :meth:`prepare`.

        The chains start from the ``INIT`` stream, NUTS runs on the ``FIT`` stream and
        θ's conjugate draws come from the ``CONDITIONAL`` stream (:mod:`poolwise._random`).
        """
        from poolwise._ops import jax_ops
        from poolwise.inference.nuts import run_chains

        started = time.perf_counter()
        prepared = self.prepare(data, y=y, n=n, se=se, group=group, inner_unique=inner_unique)
        self.check_memory(prepared)
        prior = self.prior.resolve(self.family, prepared)
        config = self.config
        centred = NESTED_PARAMETRISATIONS[self.parametrisation]
        potential = _NestedPotential(self.family, prior, centred, prepared.n_labs, jax_ops())
        start = _start(self.family, prepared, centred)
        jitter = np.full(start.size, INIT_JITTER)
        jitter[0] *= self.family.uv_scale(prepared.y, prepared.n)[0]
        init_rng = generator(config.seed, Stream.INIT)
        init = start + init_rng.uniform(-1.0, 1.0, size=(config.chains, start.size)) * jitter
        timings: dict[str, float] = {}
        z, stats = run_chains(potential, init, config, config.target_accept,
                              data=Experiments.of(prepared), timings=timings)
        posterior = _posterior(self.family, prepared, z, centred,
                               generator(config.seed, Stream.CONDITIONAL))
        info = {"divergences": int(np.sum(stats["diverging"])),
                "target_accept": config.target_accept, "parametrisation": self.parametrisation,
                "sampled": "(m_u, log s_u, m_v, log s_v, lab coordinates) with θ integrated "
                           "out; θ drawn from its conjugate conditional",
                **timings, "seconds": time.perf_counter() - started}
        tree = self._tree(prepared, prior, posterior, stats, info)
        fit = finish_fit(NestedFit(self, prepared, tree, info), stacklevel=2)
        assert isinstance(fit, NestedFit)
        return fit

    def _tree(self, data: NestedData, prior: NestedPrior, posterior: dict[str, NDArray],
              stats: dict[str, NDArray], info: dict[str, Any]) -> xr.DataTree:
        family = self.family
        lab_vars = [name for name in posterior if name not in TOP_NAMES and name != "theta"]
        dims = {**{name: ["lab"] for name in lab_vars},
                "theta": ["experiment"], "y": ["experiment"], "n": ["experiment"]}
        groups: dict[str, dict[str, NDArray]] = {
            "posterior": posterior,
            "log_likelihood": {"y": family.log_likelihood(posterior["theta"], data.y, data.n)},
            "observed_data": {"y": data.y, "n": data.n},
            "sample_stats": stats,
        }
        record = {"outer_name": data.outer_name, "inner_name": data.inner_name,
                  "inner_unique": data.inner_unique, "notes": list(data.notes),
                  "labs": data.labs.tolist(), "inner": data.inner.tolist()}
        attrs = record_attrs(self.kind, self.spec(), record,
                             {"prior": prior.spec(),
                              "prior_description": describe_nested_prior(family, prior),
                              "info": info})
        tree = _arviz.make_datatree(groups, dims=dims,
                                    coords={"lab": data.labs, "experiment": data.labels},
                                    attrs=attrs)
        # each experiment's lab, for from_tree; only in observed_data, because ArviZ's
        # summary (xarray's to_stacked_array) refuses a coordinate that some variables lack
        observed = tree["observed_data"].to_dataset()
        tree["observed_data"] = xr.DataTree(
            observed.assign_coords(lab_of_experiment=("experiment", data.lab_of())))
        return tree

    # ------------------------------------------------------------------ checks
    def check_data(self, data: NestedData, replicated: Mapping[str, NDArray]
                   ) -> list[CheckData]:
        """Each experiment's raw rate y_ij/n_ij (estimate y_ij for the normal family),
        observed and replicated, grouped by its lab (so the per-group check is per lab)."""
        labs = data.lab_of()
        values = np.asarray(replicated["y"], dtype=float)
        if self.family.name == "normal":
            return [CheckData("y", data.y, values, labs, label=self.family.raw_label)]
        return [CheckData("y/n", data.y / data.n, values / data.n, labs,
                          label=self.family.raw_label)]

    def _prior_draws(self, data: NestedData, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """(m_u, s_u, m_v, s_v) from the priors resolved for ``data``, then
        u_i ~ N(m_u, s_u²), v_i ~ N(m_v, s_v²), θ_ij ~ Pop(α_i, β_i), y_ij ~ p(y | θ_ij, n_ij).
        Refused for a flat (improper) prior."""
        family = self.family
        prior = self.prior.resolve(family, data)
        top: dict[str, NDArray] = {}
        for name in TOP_NAMES:
            dist = getattr(prior, name)
            if not dist.proper:
                raise SpecificationError(
                    f"the prior of {name} is flat (improper), so the model has no prior "
                    f"predictive; give {name} a proper prior, e.g. prior='{name}=normal(0, 2)'")
            top[name] = np.asarray(dist.sample(rng, size), dtype=float)
        shape = (size, data.n_labs)
        u = top["m_u"][:, None] + top["s_u"][:, None] * rng.standard_normal(shape)
        v = top["m_v"][:, None] + top["s_v"][:, None] * rng.standard_normal(shape)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            alpha, beta = family.from_uv(u, v)
            index = data.lab_index
            theta = np.asarray(family.sample_population(rng, alpha[:, index],
                                                        beta[:, index]), dtype=float)
        y = family.sample_data(rng, theta, data.n).astype(float)
        draws: dict[str, tuple[NDArray, list[str]]] = {
            name: (values, []) for name, values in top.items()}
        draws |= {name: (values, ["lab"])
                  for name, values in _lab_variables(family, alpha, beta).items()}
        draws["theta"] = (theta, ["experiment"])
        return (draws, {"y": (y, ["experiment"])},
                {"lab": data.labs, "experiment": data.labels})

    def _group_dims(self, data: NestedData) -> tuple[str, ...]:
        return GROUP_DIMS

    def _calibration_model(self, data: NestedData) -> NestedModel:
        """The priors scaled to the user's data fixed at their values (simulated data would
        rescale them)."""
        return self.replace(prior=self.prior.resolve(self.family, data).spec())

    def _with_simulated(self, data: NestedData, simulated: Mapping[str, NDArray]
                        ) -> NestedData:
        """The experiments with simulated counts (estimates), their sizes kept."""
        return replace(data, y=np.asarray(simulated["y"], dtype=float))


#: the dimensions of the posterior that label groups: labs, then experiments
GROUP_DIMS = ("lab", "experiment")


def _lab_variables(family: RateFamily, alpha: NDArray, beta: NDArray) -> dict[str, NDArray]:
    """Each lab's population: ``alpha, beta, mu_lab, kappa_lab`` (its parameters, mean rate
    and concentration), or ``mu_lab, tau_lab`` for the normal family."""
    if family.name == "normal":
        return {"mu_lab": np.asarray(alpha, dtype=float),
                "tau_lab": np.asarray(beta, dtype=float)}
    return {"alpha": np.asarray(alpha, dtype=float), "beta": np.asarray(beta, dtype=float),
            "mu_lab": np.asarray(family.population_mean(alpha, beta), dtype=float),
            "kappa_lab": np.asarray(family.concentration(alpha, beta), dtype=float)}


def _posterior(family: RateFamily, data: NestedData, z: NDArray, centred: tuple[bool, bool],
               rng: np.random.Generator) -> dict[str, NDArray]:
    """The posterior variables from the sampled z (chains, draws, dim), θ drawn exactly
    from p(θ_ij | y_ij, α_i, β_i)."""
    labs = data.n_labs
    m_u, s_u = z[..., 0], np.exp(z[..., 1])
    m_v, s_v = z[..., 2], np.exp(z[..., 3])
    zeta_u, zeta_v = z[..., 4:4 + labs], z[..., 4 + labs:4 + 2 * labs]
    u = zeta_u if centred[0] else m_u[..., None] + s_u[..., None] * zeta_u
    v = zeta_v if centred[1] else m_v[..., None] + s_v[..., None] * zeta_v
    alpha, beta = family.from_uv(u, v)
    out: dict[str, NDArray] = {"m_u": m_u, "s_u": s_u, "m_v": m_v, "s_v": s_v,
                               **_lab_variables(family, alpha, beta)}
    index = data.lab_index
    out["theta"] = np.asarray(family.sample_conditional(rng, alpha[..., index], beta[..., index],
                                                        data.y, data.n), dtype=float)
    return out


def _lab_parameters(family: RateFamily) -> tuple[str, str]:
    """The posterior names of a lab's (α_i, β_i) — (μ_i, τ_i) for the normal family."""
    return ("mu_lab", "tau_lab") if family.name == "normal" else ("alpha", "beta")


# --------------------------------------------------------------------------- the fit
@dataclass(frozen=True, repr=False)  # Fit.__repr__: one line, not the tree
class NestedFit(Fit):
    """Posterior draws of a :class:`NestedModel`, in an ArviZ DataTree.

    ``posterior`` holds the top hyperparameters ``m_u, s_u, m_v, s_v``; per lab (dim
    ``lab``) ``alpha, beta, mu_lab, kappa_lab`` (rate families: the lab's population, its
    mean rate and concentration) or ``mu_lab, tau_lab`` (normal); and ``theta`` per
    experiment (dim ``experiment``, labels ``"lab:experiment"``; ``observed_data`` has the
    coordinate ``lab_of_experiment`` naming each experiment's lab).
    """

    model: NestedModel
    data: NestedData

    @property
    def group_dims(self) -> tuple[str, ...]:
        return GROUP_DIMS

    def point_groupings(self) -> dict[str, NDArray]:
        """The points are the experiments; they group by lab (the outer level)."""
        data = self.data
        return {data.inner_name: data.labels, data.outer_name: data.lab_of()}

    @property
    def family(self) -> RateFamily:
        return self.model.family

    @property
    def prior(self) -> NestedPrior:
        """The priors as used: the defaults with their values for these data."""
        return self.model.prior.resolve(self.family, self.data)

    # ------------------------------------------------------------------ summaries
    def top_summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """The rows of the four top hyperparameters."""
        table = self.summary(ci_prob)
        return table[table["param"].isin(TOP_NAMES)].reset_index(drop=True)

    def lab_summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """One row per lab: its experiments, pooled raw rate (or precision-weighted mean),
        and posterior mean and interval of its mean ``mu_lab``."""
        check_prob(ci_prob)
        tail = (1 - ci_prob) / 2
        mu = self.draws("mu_lab").reshape(-1, self.data.n_labs)
        lower, upper = np.quantile(mu, [tail, 1 - tail], axis=0)
        rows = []
        for i, lab in enumerate(self.data.labs):
            mine = self.data.lab_index == i
            raw = self.family.pool(self.data.y[mine], self.data.n[mine])
            pooled = raw[0] if self.family.name == "normal" else raw[0] / raw[1]
            rows.append({self.data.outer_name: str(lab),
                         f"{self.data.inner_name}s": int(mine.sum()),
                         "raw": float(pooled), "mean": float(mu[:, i].mean()),
                         "sd": float(mu[:, i].std(ddof=1)), "lower": float(lower[i]),
                         "upper": float(upper[i])})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ predictions
    def _answers(self) -> dict[type, Answer]:
        return {ExistingGroup: self._existing_experiment, NewGroupIn: self._new_experiment,
                NewGroup: self._new_lab, Population: self._population}

    def _size(self, size: float | None) -> float | None:
        return check_size(size, self.family.size_label,
                          whole=self.family.name == "beta-binomial")

    def _lab_position(self, lab: str) -> int:
        outer = self.data.outer_name
        return find_label(self.data.labs, lab, outer,
                          f"For a new {self.data.inner_name} in a {outer} not in the data "
                          "use NewGroup()")

    def _answer(self, request: Any, description: str, theta: NDArray, size: float | None,
                lab_mean: NDArray, rng: np.random.Generator) -> Prediction:
        """θ*, y* ~ p(y | θ*, size) when a size is given, and the lab's mean, as draws."""
        variables: dict[str, tuple[NDArray, list[str]]] = {
            "theta": (np.asarray(theta, dtype=float), [])}
        if size is not None:
            y = self.family.sample_data(rng, theta, size).astype(float)
            variables["y"] = (y, [])
            description += f", then y* drawn afresh for {self.family.size_label} {size:g}"
        variables["lab_mean"] = (np.asarray(lab_mean, dtype=float), [])
        return Prediction(request, description,
                          prediction_dataset(variables, self.config.chains))

    def _existing_experiment(self, request: ExistingGroup, rng: np.random.Generator
                             ) -> Prediction:
        """New data from an experiment in the fit (``"lab:experiment"``): θ_ij from its
        posterior, y* ~ p(y | θ_ij, size), the size its own unless given."""
        data = self.data
        if request.factor is not None:
            raise SpecificationError(
                "ExistingGroup(factor=...) is for mixed models; a nested fit's "
                f"{data.inner_name}s are named '{data.outer_name}{SEPARATOR}{data.inner_name}'")
        j = find_label(data.labels, request.group, data.inner_name,
                       f"{data.inner_name}s are labelled "
                       f"'{data.outer_name}{SEPARATOR}{data.inner_name}'")
        size = self._size(request.size)
        size = float(data.n[j]) if size is None else size
        lab = int(data.lab_index[j])
        return self._answer(
            request, f"new data from {data.inner_name} {request.group!r}, which is in the "
            "fit: its θ held at its posterior draws",
            self.draws("theta")[..., j].ravel(), size,
            self.draws("mu_lab")[..., lab].ravel(), rng)

    def _new_experiment(self, request: NewGroupIn, rng: np.random.Generator) -> Prediction:
        """A new experiment in a known lab: θ* ~ Pop(α_i, β_i) at each posterior draw of
        lab i's parameters.

        Its spread is the lab's between-experiment variation plus the uncertainty about the
        lab; it is centred at the lab's posterior mean ``mu_lab``. A new experiment in a
        new lab (:class:`NewGroup`) also draws the lab, so it is wider for a typical lab
        (and on average over labs); a lab whose experiments vary more than most (a mean
        rate nearer ½ or a low concentration) can have a wider one.
        """
        i = self._lab_position(request.parent)
        size = self._size(request.size)
        alpha, beta = (self.draws(name)[..., i].ravel()
                       for name in _lab_parameters(self.family))
        theta = np.asarray(self.family.sample_population(rng, alpha, beta), dtype=float)
        data = self.data
        return self._answer(
            request, f"a new {data.inner_name} in {data.outer_name} {str(request.parent)!r} "
            f"(in the fit): the {data.outer_name}'s population held at its posterior draws, "
            "θ* drawn afresh from it", theta, size, self.draws("mu_lab")[..., i].ravel(), rng)

    def _new_lab(self, request: NewGroup, rng: np.random.Generator) -> Prediction:
        """A new experiment in a new lab: at each draw (u*, v*) ~ N(m_u, s_u²) × N(m_v, s_v²),
        then θ* ~ Pop(α*, β*); ``lab_mean`` holds the new lab's mean."""
        data = self.data
        if request.y is not None:
            raise SpecificationError(
                f"NewGroup(y=...) would condition on the data of a new {data.outer_name}'s "
                f"{data.inner_name}, which a nested fit does not offer; add the "
                f"{data.inner_name} to the data and refit, or ask NewGroup(size=...) for "
                "the predictive of a new one")
        size = self._size(request.size)
        top = {name: self.draws(name).ravel() for name in TOP_NAMES}
        u = top["m_u"] + top["s_u"] * rng.standard_normal(top["m_u"].size)
        v = top["m_v"] + top["s_v"] * rng.standard_normal(top["m_v"].size)
        alpha, beta = self.family.from_uv(u, v)
        theta = np.asarray(self.family.sample_population(rng, alpha, beta), dtype=float)
        return self._answer(
            request, f"a new {data.inner_name} in a new {data.outer_name}: the "
            f"{data.outer_name}'s (u*, v*) drawn afresh from the top population at each "
            "posterior draw of (m_u, s_u, m_v, s_v), then θ* drawn afresh", theta, size,
            self.family.population_mean(alpha, beta), rng)

    def _population(self, request: Population, rng: np.random.Generator) -> Prediction:
        """The typical lab's mean: population_mean(from_uv(m_u, m_v)) at each draw, the
        lab effects at zero (the normal family: m_u)."""
        family = self.family
        mu = family.population_mean(*family.from_uv(self.draws("m_u").ravel(),
                                                     self.draws("m_v").ravel()))
        outer = self.data.outer_name
        return Prediction(
            request, f"the population mean of a typical {outer} (its effects u, v at zero: "
            f"the mean at (m_u, m_v)) at each posterior draw; no {outer} or "
            f"{self.data.inner_name} is drawn",
            prediction_dataset({"mu": (np.asarray(mu, dtype=float), [])}, self.config.chains))

    # ------------------------------------------------------------------ replicates
    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """y_ij ~ p(y | θ_ij, n_ij) at every posterior draw."""
        theta = self.draws("theta")
        y = self.family.sample_data(rng, theta, self.data.n).astype(float)
        return {"y": (y, ["experiment"])}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> NestedFit:
        record = FitRecord(tree)
        model = NestedModel(**record.model)
        observed = tree["observed_data"].to_dataset()
        saved = record.data
        labs = np.asarray(saved["labs"], dtype=str)
        lab_of = np.asarray(observed["lab_of_experiment"].values).astype(str)
        position = {lab: i for i, lab in enumerate(labs)}
        data = NestedData(
            labs=labs, labels=np.asarray(observed["experiment"].values).astype(str),
            inner=np.asarray(saved["inner"], dtype=str),
            lab_index=np.array([position[lab] for lab in lab_of], dtype=np.intp),
            y=np.asarray(observed["y"].values, dtype=float),
            n=np.asarray(observed["n"].values, dtype=float), family=model.family.name,
            outer_name=str(saved["outer_name"]), inner_name=str(saved["inner_name"]),
            inner_unique=bool(saved["inner_unique"]), notes=tuple(saved["notes"]))
        return cls(model, data, tree, record.fitted["info"])


# ------------------------------------------------------------------------------ graph
#: LaTeX of u_i and v_i per family, for the graph's nodes
_UV_LATEX = {
    "beta-binomial": (r"$\mathrm{logit}\,\mu_i$", r"$\log\kappa_i$"),
    "gamma-poisson": (r"$\log\mu_i$", r"$\log\alpha_i$"),
    "normal": (r"$\mu_i$", r"$\log\tau_i$"),
}
_TOP_LATEX = {"m_u": "$m_u$", "s_u": "$s_u$", "m_v": "$m_v$", "s_v": "$s_v$"}
#: the lab coordinates (u_i, v_i) in LaTeX, for the equations
_NESTED_COORDINATES = {
    "beta-binomial": (r"\mathrm{logit} \frac{\alpha_i}{\alpha_i + \beta_i}",
                      r"\log(\alpha_i + \beta_i)"),
    "gamma-poisson": (r"\log \frac{\alpha_i}{\beta_i}", r"\log \alpha_i"),
    "normal": (r"\mu_i", r"\log \tau_i"),
}
