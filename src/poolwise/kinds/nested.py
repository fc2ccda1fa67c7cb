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

Predictions come in three kinds, each its own method and clearly labelled:
:meth:`NestedFit.predict_experiment` (new data from an experiment in the fit),
:meth:`NestedFit.predict_new_experiment` (a new experiment in a lab that is in the fit:
θ ~ Pop(α_i, β_i) at the lab's posterior draws) and :meth:`NestedFit.predict_new_lab`
(a new experiment in a new lab: (u, v) from the top population first, so also the
between-lab spread is in it; wider).

>>> import pandas as pd
>>> table = pd.DataFrame({"lab": list("AABBCC"), "experiment": [1, 2, 1, 2, 1, 2],
...                       "y": [3, 5, 8, 6, 2, 1], "n": [20, 25, 30, 28, 22, 18]})
>>> data = nested_data(table, y="y", n="n")
>>> data.labs.tolist(), data.labels.tolist()[:2]
(['A', 'B', 'C'], ['A:1', 'A:2'])
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy import special

from poolwise import _arviz
from poolwise._ops import NUMPY_OPS, Ops
from poolwise._version import __version__
from poolwise.data.estimates import group_estimates
from poolwise.data.tables import _require_column, group_counts, group_labels
from poolwise.exceptions import DataError, SpecificationError
from poolwise.families import RateFamily, get_family
from poolwise.results.summary import check_prob as _check_prob
from poolwise.results.summary import posterior_draws, posterior_summary
from poolwise.inference.base import SamplerConfig
from poolwise.priors import Distribution, _parse_call, _split_top_level, make_distribution

if TYPE_CHECKING:
    from poolwise.results.graph import ModelGraph

__all__ = ["NESTED_FAMILIES", "NestedData", "NestedFit", "NestedModel", "NestedPrediction",
           "NestedPrior", "lab_log_marginal", "nested_data", "parse_group_path"]

#: the families with a nested model
NESTED_FAMILIES = ("beta-binomial", "gamma-poisson", "normal")
#: NUTS parametrisations of the lab coordinates
#: (u centred?, v centred?) of each. On simulated labs (12 labs × 6 experiments, with 5-20
#: or 30-120 trials each) the non-centred form had no divergences and ESS ≥ 490 from
#: 4 × 500 draws; the centred one 35-42 divergences and ESS ~ 100 for s_v, centring u only
#: 18-23 divergences: labs say little about their v_i, so s_v and the v_i form a funnel.
NESTED_PARAMETRISATIONS = {"non-centred": (False, False), "centred": (True, True)}
#: NUTS step-size target: hierarchical scales like s_v are curved, so smaller steps
TARGET_ACCEPT = 0.9
#: half-width of the uniform jitter of the chains' starts (unconstrained units)
INIT_JITTER = 0.5
#: joins an outer and an inner label into one experiment label
SEPARATOR = ":"
#: names of the four top hyperparameters, in the order they are sampled
TOP_NAMES = ("m_u", "s_u", "m_v", "s_v")
#: a real-line prior for the locations, a positive one for the scales
_LOCATION = {"m_u", "m_v"}


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

    def experiments_per_lab(self) -> NDArray[np.int64]:
        return np.bincount(self.lab_index, minlength=self.n_labs).astype(np.int64)

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
    fam = get_family(family if family is not None else ("normal" if se is not None
                                                        else "beta-binomial"))
    if fam.name not in NESTED_FAMILIES:
        raise SpecificationError(
            f"no nested model for the {fam.name!r} family; valid: {', '.join(NESTED_FAMILIES)}")
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
        rows = np.flatnonzero(inner_labels == label)
        first = outer_labels[rows[0]]
        second_row = next(r for r in rows if outer_labels[r] != first)
        where = (f"{inner} {label!r} appears under {outer} {first!r} (row {rows[0] + 1}) and "
                 f"{outer} {outer_labels[second_row]!r} (row {second_row + 1})")
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
            if name in _LOCATION and dist.positive:
                raise SpecificationError(
                    f"{name} is a location on the real line: give it normal(mu, sigma) or "
                    f"flat, not {dist}")
            if name not in _LOCATION and not dist.positive:
                raise SpecificationError(
                    f"{name} is a scale > 0: give it a prior on (0, ∞) such as halfnormal(1), "
                    f"not {dist}")

    @classmethod
    def parse(cls, text: str | NestedPrior | None) -> NestedPrior:
        """``"s_u=halfnormal(0.5), m_v=normal(2, 1)"``: any of m_u, s_u, m_v, s_v; the
        others keep their defaults. ``None`` or ``""``: all defaults."""
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
        for part in _split_top_level(text):
            match = re.match(r"^\s*([A-Za-z_]+)\s*=\s*(.+?)\s*$", part)
            if not match:
                raise SpecificationError(
                    f"cannot read {part.strip()!r} in nested prior {text!r}; write e.g. "
                    "'s_u=halfnormal(0.5), m_v=normal(2, 1)' (names: m_u, s_u, m_v, s_v)")
            name = match.group(1).lower()
            if name not in TOP_NAMES:
                raise SpecificationError(
                    f"unknown hyperparameter {match.group(1)!r} in nested prior {text!r}; "
                    f"valid: {', '.join(TOP_NAMES)}")
            if name in chosen:
                raise SpecificationError(f"nested prior {text!r} sets {name} twice")
            chosen[name] = make_distribution(*_parse_call(match.group(2)))
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


# ----------------------------------------------------------------------------- density
def lab_log_marginal(family: RateFamily, u: Any, v: Any, data: NestedData,
                     ops: Ops = NUMPY_OPS) -> Any:
    """log p(y_i· | u_i, v_i) = Σ_{j in lab i} log ∫ p(y_ij | θ) Pop(θ | α_i, β_i) dθ, per lab.

    ``u`` and ``v`` have shape (..., I); the result too. Written once against ``ops`` (the
    family's ``log_marginal``), so NumPy and JAX (NUTS) evaluate the same expression.
    """
    alpha, beta = family.from_uv(u, v, ops)
    index = data.lab_index
    per_experiment = family.log_marginal(alpha[..., index], beta[..., index], data.y, data.n, ops)
    # sum experiments into their labs: a (J, I) 0/1 matrix keeps it one matmul in JAX too
    membership = np.zeros((data.n_experiments, data.n_labs))
    membership[np.arange(data.n_experiments), index] = 1.0
    return per_experiment @ membership


def _log_density(family: RateFamily, prior: NestedPrior, data: NestedData,
                 centred: tuple[bool, bool], ops: Ops) -> Any:
    """log p(z | y) up to a constant, z as in the module docstring (1-D)."""
    labs = data.n_labs

    def level(zeta: Any, m: Any, log_s: Any, centre: bool) -> tuple[Any, Any]:
        """The labs' coordinate and its log density N(· | m, s²) in the sampled form."""
        s = ops.exp(log_s)
        if centre:
            return zeta, (-log_s - 0.5 * ops.square((zeta - m) / s)).sum()
        return m + s * zeta, (-0.5 * ops.square(zeta)).sum()

    def log_density(z: Any) -> Any:
        m_u, log_su, m_v, log_sv = z[0], z[1], z[2], z[3]
        u, density_u = level(z[4:4 + labs], m_u, log_su, centred[0])
        v, density_v = level(z[4 + labs:4 + 2 * labs], m_v, log_sv, centred[1])
        top = (prior.log_density((m_u, ops.exp(log_su), m_v, ops.exp(log_sv)), ops)
               + log_su + log_sv)
        return top + density_u + density_v + lab_log_marginal(family, u, v, data, ops).sum()

    return log_density


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
class NestedModel:
    """Two grouping levels, outer i (labs) and inner j (experiments): module docstring.

    Parameters
    ----------
    family
        ``"beta-binomial"`` (counts out of trials), ``"gamma-poisson"`` (counts with an
        exposure) or ``"normal"`` (estimates with known standard errors, or raw scores).
    prior
        Overrides of the top hyperpriors, e.g. ``"s_u=halfnormal(0.5)"``; see
        :class:`NestedPrior` for the defaults (shown by :meth:`describe_prior`).

    >>> NestedModel("beta-binomial").describe_prior().split("; ")[3]
    'm_u ~ Normal(logit pooled rate, 2)'
    """

    def __init__(self, family: str | RateFamily = "beta-binomial",
                 prior: str | NestedPrior | None = None) -> None:
        self.family = get_family(family)
        if self.family.name not in NESTED_FAMILIES:
            raise SpecificationError(
                f"no nested model for the {self.family.name!r} family; valid: "
                f"{', '.join(NESTED_FAMILIES)}")
        self.prior = NestedPrior.parse(prior)

    def __repr__(self) -> str:
        return f"NestedModel(family={self.family.name!r}, prior={self.prior.spec()!r})"

    def describe_prior(self, data: NestedData | None = None) -> str:
        """The model's priors; with ``data`` the defaults are given their values."""
        prior = self.prior if data is None else self.prior.resolve(self.family, data)
        return describe_nested_prior(self.family, prior)

    def prepare(self, data: pd.DataFrame | NestedData, *, y: str | None = None,
                n: str | None = None, se: str | None = None, outer: str = "lab",
                inner: str = "experiment", inner_unique: bool | None = None) -> NestedData:
        """Validate a table (or check a :class:`NestedData`) for this model."""
        if isinstance(data, NestedData):
            if data.family != self.family.name:
                raise SpecificationError(
                    f"the data were prepared for the {data.family} family, the model is "
                    f"{self.family.name}")
            return data
        if y is None:
            raise SpecificationError("name the column of counts or estimates: y='...'")
        return nested_data(data, y, n=n, se=se, outer=outer, inner=inner, family=self.family,
                           inner_unique=inner_unique)

    def graph(self, data: NestedData | None = None) -> ModelGraph:
        """The graphical model: top hyperparameters, a plate over labs holding (u_i, v_i)
        and, inside it, a plate over experiments holding θ_ij, n_ij and y_ij."""
        return nested_graph(self.family, self.prior if data is None
                            else self.prior.resolve(self.family, data), data)

    def fit(self, data: pd.DataFrame | NestedData, *, y: str | None = None,
            n: str | None = None, se: str | None = None, outer: str = "lab",
            inner: str = "experiment", inner_unique: bool | None = None,
            draws: int = 1000, chains: int = 4, warmup: int = 1000, seed: int = 0,
            progress: bool = False, parametrisation: str = "non-centred",
            target_accept: float = TARGET_ACCEPT) -> NestedFit:
        """Sample the posterior with NUTS (θ integrated out, then drawn exactly).

        ``parametrisation``: ``"non-centred"`` (default) or ``"centred"`` lab coordinates.
        Warns (:class:`~poolwise.exceptions.SamplingWarning`) when R-hat, the effective
        sample size or divergences say the chains are not to be trusted.
        """
        from poolwise._ops import jax_ops
        from poolwise.results.diagnostics import check_diagnostics
        from poolwise.inference.nuts import run_chains

        for name, value, least in (("draws", draws, 1), ("chains", chains, 1),
                                   ("warmup", warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < least:
                raise SpecificationError(f"{name} must be an integer ≥ {least}, got {value!r}")
        if parametrisation not in NESTED_PARAMETRISATIONS:
            raise SpecificationError(
                f"unknown parametrisation {parametrisation!r}; valid: "
                f"{', '.join(NESTED_PARAMETRISATIONS)}")
        if not 0 < target_accept < 1:
            raise SpecificationError(f"target_accept must be in (0, 1), got {target_accept!r}")
        started = time.perf_counter()
        prepared = self.prepare(data, y=y, n=n, se=se, outer=outer, inner=inner,
                                inner_unique=inner_unique)
        prior = self.prior.resolve(self.family, prepared)
        config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=int(warmup),
                               seed=int(seed), progress=progress,
                               parametrisation=parametrisation)
        centred = NESTED_PARAMETRISATIONS[parametrisation]
        log_density = _log_density(self.family, prior, prepared, centred, jax_ops())

        def potential(z: Any) -> Any:
            return -log_density(z)

        init_rng, theta_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(config.seed).spawn(2))
        start = _start(self.family, prepared, centred)
        jitter = np.full(start.size, INIT_JITTER)
        jitter[0] *= self.family.uv_scale(prepared.y, prepared.n)[0]
        init = start + init_rng.uniform(-1.0, 1.0, size=(config.chains, start.size)) * jitter
        timings: dict[str, float] = {}
        z, stats = run_chains(potential, init, config, target_accept, timings=timings)
        posterior = _posterior(self.family, prepared, z, centred, theta_rng)
        info = {"divergences": int(np.sum(stats["diverging"])), "target_accept": target_accept,
                "parametrisation": parametrisation,
                "sampled": "(m_u, log s_u, m_v, log s_v, lab coordinates) with θ integrated "
                           "out; θ drawn from its conjugate conditional",
                **timings, "seconds": time.perf_counter() - started}
        tree = self._tree(prepared, prior, config, posterior, stats, info)
        fit = NestedFit(self, prepared, prior, config, tree, info)
        check_diagnostics(fit, stacklevel=2)  # type: ignore[arg-type]
        return fit

    def _tree(self, data: NestedData, prior: NestedPrior, config: SamplerConfig,
              posterior: dict[str, NDArray], stats: dict[str, NDArray],
              info: dict[str, Any]) -> xr.DataTree:
        family = self.family
        lab_vars = [name for name, values in posterior.items()
                    if name not in TOP_NAMES and name != "theta"]
        dims = {**{name: ["lab"] for name in lab_vars},
                "theta": ["experiment"], "y": ["experiment"], "n": ["experiment"]}
        groups: dict[str, dict[str, NDArray]] = {
            "posterior": posterior,
            "log_likelihood": {"y": family.log_likelihood(posterior["theta"], data.y, data.n)},
            "observed_data": {"y": data.y, "n": data.n},
            "sample_stats": stats,
        }
        attrs = {"poolwise_version": __version__, "model": "nested", "family": family.name,
                 "prior": prior.spec(), "prior_user": self.prior.spec(),
                 "prior_description": describe_nested_prior(family, prior), "method": "nuts",
                 "seed": config.seed, "draws": config.draws, "chains": config.chains,
                 "warmup": config.warmup, "parametrisation": config.parametrisation,
                 "outer_name": data.outer_name, "inner_name": data.inner_name,
                 "notes": json.dumps(list(data.notes)),
                 "info": json.dumps(info, default=float)}
        tree = _arviz.make_datatree(groups, dims=dims,
                                    coords={"lab": data.labs, "experiment": data.labels},
                                    attrs=attrs)
        lab_coord = ("experiment", data.lab_of())
        for name in ("posterior", "log_likelihood", "observed_data"):
            dataset = tree[name].to_dataset().assign_coords(lab_of_experiment=lab_coord)
            tree[name] = xr.DataTree(dataset)
        tree.attrs.update(attrs)
        return tree


def _posterior(family: RateFamily, data: NestedData, z: NDArray, centred: tuple[bool, bool],
               rng: np.random.Generator) -> dict[str, NDArray]:
    """The posterior variables from the sampled z (chains, draws, dim), θ drawn exactly."""
    labs = data.n_labs
    m_u, s_u = z[..., 0], np.exp(z[..., 1])
    m_v, s_v = z[..., 2], np.exp(z[..., 3])
    zeta_u, zeta_v = z[..., 4:4 + labs], z[..., 4 + labs:4 + 2 * labs]
    u = zeta_u if centred[0] else m_u[..., None] + s_u[..., None] * zeta_u
    v = zeta_v if centred[1] else m_v[..., None] + s_v[..., None] * zeta_v
    alpha, beta = family.from_uv(u, v)
    out: dict[str, NDArray] = {"m_u": m_u, "s_u": s_u, "m_v": m_v, "s_v": s_v}
    if family.name == "normal":
        out |= {"mu_lab": np.asarray(alpha, dtype=float), "tau_lab": np.asarray(beta, dtype=float)}
    else:
        out |= {"alpha": np.asarray(alpha, dtype=float), "beta": np.asarray(beta, dtype=float),
                "mu_lab": np.asarray(family.population_mean(alpha, beta), dtype=float),
                "kappa_lab": np.asarray(family.concentration(alpha, beta), dtype=float)}
    index = data.lab_index
    out["theta"] = np.asarray(family.sample_conditional(rng, alpha[..., index], beta[..., index],
                                                        data.y, data.n), dtype=float)
    return out


def _lab_parameters(family: RateFamily) -> tuple[str, str]:
    """The posterior names of a lab's (α_i, β_i) — (μ_i, τ_i) for the normal family."""
    return ("mu_lab", "tau_lab") if family.name == "normal" else ("alpha", "beta")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class NestedPrediction:
    """Draws for one kind of prediction (``kind`` says which, ``description`` in words).

    ``theta``: the experiment's θ; ``y``: predictive data for size ``n`` (None without n);
    ``lab_mean``: the mean rate (or mean) of the lab the experiment belongs to, at each draw.
    """

    kind: str
    description: str
    theta: NDArray[np.float64]
    y: NDArray[np.float64] | None
    n: float | None
    lab_mean: NDArray[np.float64]
    lab: str | None = None

    def summary(self, ci_prob: float = 0.95) -> dict[str, float]:
        """Mean, sd and equal-tailed interval of θ (and of y when predicted)."""
        _check_prob(ci_prob)
        tail = (1 - ci_prob) / 2
        out = {"mean": float(np.mean(self.theta)), "sd": float(np.std(self.theta, ddof=1)),
               "lower": float(np.quantile(self.theta, tail)),
               "upper": float(np.quantile(self.theta, 1 - tail))}
        if self.y is not None:
            out |= {"y_mean": float(np.mean(self.y)),
                    "y_lower": float(np.quantile(self.y, tail)),
                    "y_upper": float(np.quantile(self.y, 1 - tail))}
        return out


@dataclass(frozen=True)
class NestedFit:
    """Posterior draws of a :class:`NestedModel`, in an ArviZ DataTree.

    ``posterior`` holds the top hyperparameters ``m_u, s_u, m_v, s_v``; per lab (dim
    ``lab``) ``alpha, beta, mu_lab, kappa_lab`` (rate families: the lab's population, its
    mean rate and concentration) or ``mu_lab, tau_lab`` (normal); and ``theta`` per
    experiment (dim ``experiment``, labels ``"lab:experiment"``, with the coordinate
    ``lab_of_experiment`` naming each experiment's lab).
    """

    model: NestedModel
    data: NestedData
    prior: NestedPrior
    config: SamplerConfig
    tree: xr.DataTree
    info: dict[str, Any] = field(default_factory=dict)
    method: str = "nuts"

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def is_mcmc(self) -> bool:
        return True

    @property
    def family(self) -> RateFamily:
        return self.model.family

    def describe_prior(self) -> str:
        """The priors as used, the defaults with their values for these data."""
        return describe_nested_prior(self.family, self.prior)

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw[, lab or experiment])."""
        return posterior_draws(self.posterior, name)

    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """One row per scalar: top hyperparameters (``group`` empty), then per-lab
        parameters (``group`` the lab), then θ per experiment (``group`` "lab:experiment").
        Columns as :data:`poolwise.fit.SUMMARY_COLUMNS`."""
        return posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics,
                                 group_dims=("lab", "experiment"))

    def top_summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """The rows of the four top hyperparameters."""
        table = self.summary(ci_prob)
        return table[table["param"].isin(TOP_NAMES)].reset_index(drop=True)

    def lab_summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """One row per lab: its experiments, pooled raw rate (or precision-weighted mean),
        and posterior mean and interval of its mean ``mu_lab``."""
        _check_prob(ci_prob)
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

    # --------------------------------------------------------------------- prediction
    def _lab_position(self, lab: str) -> int:
        labs = [str(label) for label in self.data.labs]
        if str(lab) not in labs:
            shown = ", ".join(repr(label) for label in labs[:8])
            more = f" … ({len(labs)} in all)" if len(labs) > 8 else ""
            raise SpecificationError(
                f"no {self.data.outer_name} {lab!r} in the fit; {self.data.outer_name}s: "
                f"{shown}{more}. For a {self.data.outer_name} not in the data use "
                "predict_new_lab()")
        return labs.index(str(lab))

    def _size(self, n: float | None) -> float | None:
        if n is None:
            return None
        if isinstance(n, bool) or not np.isfinite(n) or n <= 0:
            raise SpecificationError(
                f"the new experiment's {self.family.size_label} must be a number > 0, "
                f"got {n!r}")
        if self.family.name == "beta-binomial" and n != round(n):
            raise SpecificationError(f"trials must be a whole number, got {n!r}")
        return float(n)

    def _rng(self, seed: int | None, offset: int) -> np.random.Generator:
        return np.random.default_rng(self.config.seed + offset if seed is None else seed)

    def _data(self, rng: np.random.Generator, theta: NDArray, n: float | None
              ) -> NDArray[np.float64] | None:
        return None if n is None else self.family.sample_data(rng, theta, n).astype(float)

    def predict_experiment(self, experiment: str, *, n: float | None = None,
                           seed: int | None = None) -> NestedPrediction:
        """New data from an experiment IN the fit (``"lab:experiment"``): θ_ij from its
        posterior, y* ~ p(y | θ_ij, n) with n its own size unless given."""
        labels = [str(label) for label in self.data.labels]
        if str(experiment) not in labels:
            shown = ", ".join(repr(label) for label in labels[:8])
            raise SpecificationError(
                f"no experiment {experiment!r} in the fit; experiments are labelled "
                f"'{self.data.outer_name}{SEPARATOR}{self.data.inner_name}': {shown}"
                + (" …" if len(labels) > 8 else ""))
        j = labels.index(str(experiment))
        size = self._size(n) if n is not None else float(self.data.n[j])
        rng = self._rng(seed, 2)
        theta = self.draws("theta")[..., j].ravel()
        lab = int(self.data.lab_index[j])
        return NestedPrediction(
            "experiment", f"new data from experiment {experiment!r}, which is in the fit",
            theta, self._data(rng, theta, size), size,
            self.draws("mu_lab")[..., lab].ravel(), str(self.data.labs[lab]))

    def predict_new_experiment(self, lab: str, *, n: float | None = None,
                               seed: int | None = None) -> NestedPrediction:
        """A NEW experiment in a KNOWN lab: θ* ~ Pop(α_i, β_i) at each posterior draw of
        lab i's parameters (and y* ~ p(y | θ*, n) when ``n`` is given).

        Its spread is the lab's between-experiment variation plus the uncertainty about the
        lab; it is centred at the lab's posterior mean ``mu_lab``. Compare
        :meth:`predict_new_lab`, which also draws the lab and so is wider for a typical lab
        (and on average over labs); a lab whose experiments vary more than most (say one
        with a mean rate nearer ½ or a low concentration) can have a wider one.
        """
        i = self._lab_position(lab)
        size = self._size(n)
        rng = self._rng(seed, 1)
        a_name, b_name = _lab_parameters(self.family)
        alpha, beta = (self.draws(name)[..., i].ravel() for name in (a_name, b_name))
        theta = np.asarray(self.family.sample_population(rng, alpha, beta), dtype=float)
        return NestedPrediction(
            "new-experiment",
            f"a new {self.data.inner_name} in {self.data.outer_name} {str(lab)!r} (in the fit)",
            theta, self._data(rng, theta, size), size, self.draws("mu_lab")[..., i].ravel(),
            str(lab))

    def predict_new_lab(self, *, n: float | None = None, seed: int | None = None
                        ) -> NestedPrediction:
        """A new experiment in a NEW lab: at each draw (u*, v*) ~ N(m_u, s_u²) × N(m_v, s_v²),
        then θ* ~ Pop(α*, β*), then y* ~ p(y | θ*, n) when ``n`` is given.

        Wider than :meth:`predict_new_experiment` for a typical lab: it adds the between-lab
        variation and the uncertainty about the top hyperparameters.
        ``lab_mean`` holds the new lab's mean draws.
        """
        size = self._size(n)
        rng = self._rng(seed, 3)
        top = {name: self.draws(name).ravel() for name in TOP_NAMES}
        u = top["m_u"] + top["s_u"] * rng.standard_normal(top["m_u"].size)
        v = top["m_v"] + top["s_v"] * rng.standard_normal(top["m_v"].size)
        alpha, beta = self.family.from_uv(u, v)
        theta = np.asarray(self.family.sample_population(rng, alpha, beta), dtype=float)
        return NestedPrediction(
            "new-lab", f"a new {self.data.inner_name} in a new {self.data.outer_name}",
            theta, self._data(rng, theta, size), size,
            np.asarray(self.family.population_mean(alpha, beta), dtype=float))

    # -------------------------------------------------------------------------- other
    def graph(self) -> ModelGraph:
        """The graphical model with the numbers of labs in the plate; draw it with
        :func:`poolwise.graph.render`."""
        return nested_graph(self.family, self.prior, self.data)

    def with_log_likelihood(self) -> xr.DataTree:
        """The DataTree (it already holds the pointwise log likelihood per experiment)."""
        return self.tree

    def save(self, path: str | Path) -> None:
        """Write the fit to NetCDF (an ArviZ DataTree; the settings in its attributes)."""
        _arviz.save(self.tree, path)

    @classmethod
    def load(cls, path: str | Path) -> NestedFit:
        """Read a fit written by :meth:`save`."""
        tree = _arviz.load(path)
        attrs = tree.attrs
        if attrs.get("model") != "nested":
            raise SpecificationError(f"{path} does not hold a nested fit")
        model = NestedModel(attrs["family"], attrs.get("prior_user") or None)
        observed = tree["observed_data"].to_dataset()
        labels = np.asarray(observed["experiment"].values).astype(str)
        lab_of = np.asarray(observed["lab_of_experiment"].values).astype(str)
        labs = np.asarray(tree["posterior"].to_dataset()["lab"].values).astype(str)
        position = {lab: i for i, lab in enumerate(labs)}
        data = NestedData(
            labs=labs, labels=labels,
            inner=np.array([label[len(lab) + 1:] for label, lab in zip(labels, lab_of,
                                                                       strict=True)]),
            lab_index=np.array([position[lab] for lab in lab_of], dtype=np.intp),
            y=np.asarray(observed["y"].values, dtype=float),
            n=np.asarray(observed["n"].values, dtype=float), family=str(attrs["family"]),
            outer_name=str(attrs["outer_name"]), inner_name=str(attrs["inner_name"]),
            notes=tuple(json.loads(attrs["notes"])))
        config = SamplerConfig(draws=int(attrs["draws"]), chains=int(attrs["chains"]),
                               warmup=int(attrs["warmup"]), seed=int(attrs["seed"]),
                               parametrisation=str(attrs["parametrisation"]))
        return cls(model, data, NestedPrior.parse(attrs["prior"]), config, tree,
                   json.loads(attrs["info"]))


# ------------------------------------------------------------------------------ graph
#: LaTeX of u_i and v_i per family
_UV_LATEX = {
    "beta-binomial": (r"$\mathrm{logit}\,\mu_i$", r"$\log\kappa_i$"),
    "gamma-poisson": (r"$\log\mu_i$", r"$\log\alpha_i$"),
    "normal": (r"$\mu_i$", r"$\log\tau_i$"),
}
_TOP_LATEX = {"m_u": "$m_u$", "s_u": "$s_u$", "m_v": "$m_v$", "s_v": "$s_v$"}


def nested_graph(family: RateFamily, prior: NestedPrior,
                 data: NestedData | None = None) -> ModelGraph:
    """The graphical model of the nested model, with nested plates.

    Nodes: ``m_u, s_u, m_v, s_v`` (latent, with their priors' constants as fixed dots
    where the prior is resolved), ``u`` and ``v`` (the lab's coordinates) in the plate over
    labs i = 1..I, and ``theta``, the size ``n`` (``sigma`` for the normal family) and
    ``y`` in the plate over experiments j = 1..J_i inside it.
    """
    from poolwise.results.graph import GraphNode, ModelGraph, Plate, _range_label

    size_name, size_label = ("sigma", r"\sigma") if family.name == "normal" else ("n", "n")
    u_label, v_label = _UV_LATEX[family.name]
    nodes: list[GraphNode] = []
    edges: list[tuple[str, str]] = []
    for name in TOP_NAMES:
        nodes.append(GraphNode(name, _TOP_LATEX[name], "latent"))
        dist = getattr(prior, name)
        if dist is not None and dist.name != "flat":
            from poolwise.priors import _DISTRIBUTIONS

            for param, value in zip(_DISTRIBUTIONS[dist.name], dist.params, strict=True):
                nodes.append(GraphNode(f"{name}_{param}", f"${value:g}$", "fixed"))
                edges.append((f"{name}_{param}", name))
    nodes += [GraphNode("u", u_label, "latent"), GraphNode("v", v_label, "latent"),
              GraphNode("theta", r"$\theta_{ij}$", "latent"),
              GraphNode(size_name, f"${size_label}_{{ij}}$", "fixed"),
              GraphNode("y", "$y_{ij}$", "observed")]
    edges += [("m_u", "u"), ("s_u", "u"), ("m_v", "v"), ("s_v", "v"), ("u", "theta"),
              ("v", "theta"), ("theta", "y"), (size_name, "y")]
    labs = "I" if data is None else str(data.n_labs)
    plates = (Plate("labs", _range_label("i", labs), ("u", "v")),
              Plate("experiments", _range_label("j", "J_i"), ("theta", size_name, "y"),
                    inside="labs"))
    outer = "labs" if data is None else f"{data.outer_name}s"
    return ModelGraph(tuple(nodes), tuple(edges), plates,
                      f"{family.name}, nested ({outer} / experiments)"
                      if data is None else
                      f"{family.name}, nested ({outer} / {data.inner_name}s)")

