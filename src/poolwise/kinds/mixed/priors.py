"""Priors of a mixed model: fixed coefficients, residual sd, group sds and correlations.

A :class:`MixedPriors` holds one prior per parameter of the model of
:mod:`poolwise.kinds.mixed.design`:

``b[name] ~ Normal(loc, scale)`` or ``StudentT(ν, loc, scale)``
    each fixed coefficient. A Gaussian prior lets the ``marginal`` sampler and method
    ``importance`` integrate β out analytically; a Student-t one is the scale mixture
    t_ν(m, s) = ∫ N(m, s²/λ) Gamma(λ; ν/2, rate ν/2) dλ, so they integrate β out given λ
    and sample log λ with the variance parameters (:mod:`poolwise.kinds.mixed.inference`).
    ``b`` sets every coefficient but the intercept, as brms's ``class = b``; the intercept
    has its own prior, ``Intercept`` (or ``b[Intercept]``), as brms's ``class = Intercept``;
``sigma ~ D``
    the residual sd (normal family only);
``phi ~ D``
    the shape φ of the negative binomial family (Var y = μ + μ²/φ; that family only);
``sd_factor[effect] ~ D``
    the sd of each group effect, D one of the positive distributions of
    :mod:`poolwise.priors` (``halfnormal``, ``halfcauchy``, ``halfstudentt``,
    ``exponential``, ``gamma``, ``lognormal``; brms's ``student_t(ν, 0, s)`` is read as
    ``halfstudentt(ν, s)``);
``icc_factor ~ Beta(a, b)``
    instead of ``sd_factor[Intercept]``'s prior (normal family): the intraclass correlation
    ρ = τ²/(τ² + σ²) of the factor's intercept sd τ and the residual sd σ, so that
    p(τ | σ) = Beta(ρ; a, b) |dρ/dτ| (:func:`icc_log_density`);
``cor_factor ~ LKJ(η)``
    the correlation matrix of a correlated term with more than one effect, density
    ∝ det(R)^(η−1) (Lewandowski, Kurowicka and Joe 2009): η = 1 uniform over correlation
    matrices, η > 1 shrinks towards the identity.

:func:`default_priors` gives weakly informative priors scaled to the data (its docstring
has the rule); :func:`parse_priors` overrides them from text such as
``"b = normal(0, 5); sd_Subject[Days] = halfnormal(10); cor_Subject = lkj(1)"``. A
parameter has one name everywhere: these are the names of the summary's rows.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from poolwise._ops import NUMPY_OPS, Ops
from poolwise.exceptions import SpecificationError
from poolwise.kinds.mixed.design import (
    FAMILY_PARAMETERS,
    GroupTerm,
    MixedDesign,
    effect_sd,
    fixed_sd,
    response_mean_sd,
)
from poolwise.priors import (
    POOLING_DRAWS,
    Distribution,
    ImpliedPooling,
    canonical_name,
    make_distribution,
)
from poolwise.vocabulary import indefinite_article

#: the name of the intercept column in ``fixed_names`` and in a term's ``names``
INTERCEPT = "Intercept"
#: scale of a coefficient's default prior, in sds of the response per sd of the predictor
COEFFICIENT_SCALE = 2.5
#: the default LKJ shape of a correlated term's correlation matrix
DEFAULT_LKJ_ETA = 2.0
#: the default prior of the negative binomial's shape φ: HalfCauchy(10), symmetric in log φ
#: about log 10 (quartiles 4.1 and 24; 6% below 1 and 6% above 100), so that the data can
#: reach strong over-dispersion and, with its heavy tail, the Poisson limit φ → ∞
DEFAULT_PHI = ("halfcauchy", (10.0,))
#: distributions a positive parameter (``sigma``, ``phi``, ``sd``) may have
SCALE_DISTRIBUTIONS = ("halfnormal", "halfcauchy", "halfstudentt", "exponential", "gamma",
                       "lognormal")

SdKey = tuple[str, str]


@dataclass(frozen=True)
class MixedPriors:
    """One prior per parameter; keys follow the design's names.

    ``fixed`` has one Normal per entry of ``fixed_names``; ``sigma`` is None outside the
    normal family, ``phi`` outside the negative binomial family; ``sd`` maps (factor, effect)
    to the prior of that effect's sd; ``cor`` maps each correlated factor with two or more
    effects to its LKJ shape η.
    """

    fixed_names: tuple[str, ...]
    fixed: tuple[Distribution, ...]
    sigma: Distribution | None
    sd: Mapping[SdKey, Distribution]
    cor: Mapping[str, float]
    phi: Distribution | None = None
    #: factor -> the Beta prior of its intercept's ICC τ²/(τ² + σ²), which then replaces
    #: the prior in ``sd`` of (factor, Intercept)
    icc: Mapping[str, Distribution] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sd", MappingProxyType(dict(self.sd)))
        object.__setattr__(self, "cor", MappingProxyType(dict(self.cor)))
        object.__setattr__(self, "icc", MappingProxyType(dict(self.icc)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its fields with the read-only maps as dicts (a mapping proxy does not
        pickle), so prepared data reach calibration's worker processes."""
        return (type(self), (self.fixed_names, self.fixed, self.sigma, dict(self.sd),
                             dict(self.cor), self.phi, dict(self.icc)))

    def sd_prior(self, factor: str, effect: str) -> tuple[str, Distribution]:
        """The name and prior of the sd of ``effect`` of ``factor``: ``sd_factor[effect]``
        and its distribution, or ``icc_factor`` and the Beta prior of the ICC."""
        if effect == INTERCEPT and factor in self.icc:
            return f"icc_{factor}", self.icc[factor]
        return f"sd_{factor}[{effect}]", self.sd[factor, effect]

    @property
    def family_parameter(self) -> tuple[str, Distribution] | None:
        """The family's parameter besides η and its prior, ``("sigma", …)`` or
        ``("phi", …)`` (:data:`~poolwise.kinds.mixed.design.FAMILY_PARAMETERS`); None for
        the binomial, bernoulli and poisson families."""
        if self.sigma is not None:
            return "sigma", self.sigma
        if self.phi is not None:
            return "phi", self.phi
        return None

    @property
    def fixed_loc(self) -> np.ndarray:
        """Prior locations m of the fixed coefficients, in ``fixed_names`` order (the last
        but one parameter of Normal(m, s) and StudentT(ν, m, s))."""
        return np.array([d.params[-2] for d in self.fixed], dtype=float)

    @property
    def fixed_scale(self) -> np.ndarray:
        """Prior scales s of the fixed coefficients, in ``fixed_names`` order (the sd of a
        Normal, the scale of a Student-t)."""
        return np.array([d.params[-1] for d in self.fixed], dtype=float)

    @property
    def student(self) -> tuple[int, ...]:
        """The positions of the fixed coefficients with a Student-t prior."""
        return tuple(i for i, d in enumerate(self.fixed) if d.name == "studentt")

    @property
    def student_df(self) -> np.ndarray:
        """The degrees of freedom ν of those Student-t priors, in :attr:`student` order."""
        return np.array([self.fixed[i].params[0] for i in self.student], dtype=float)

    def sample_fixed(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` prior draws of β (size, p): β_i = m_i + s_i z_i / √λ_i, z_i ~ N(0, 1),
        with λ_i ~ Gamma(ν_i/2, rate ν_i/2) for a Student-t prior and λ_i = 1 for a Normal
        one (the scale mixture of the module docstring)."""
        scale = np.broadcast_to(self.fixed_scale, (size, len(self.fixed))).copy()
        df = self.student_df
        if df.size:
            mixing = rng.gamma(0.5 * df, 2.0 / df, size=(size, df.size))
            scale[:, list(self.student)] /= np.sqrt(mixing)
        return self.fixed_loc + scale * rng.standard_normal((size, len(self.fixed)))

    def describe(self) -> list[str]:
        """One line per prior, e.g. ``b[Days] ~ Normal(0, 20)``, for showing before a fit."""
        lines = [f"b[{name}] ~ {d}" for name, d in zip(self.fixed_names, self.fixed, strict=True)]
        if self.family_parameter is not None:
            name, dist = self.family_parameter
            lines.append(f"{name} ~ {dist}")
        lines += ["{} ~ {}".format(*self.sd_prior(*key)) for key in self.sd]
        lines += [f"cor_{factor} ~ LKJ({eta:g})" for factor, eta in self.cor.items()]
        return lines

    def spec(self) -> str:
        """The text that :func:`parse_priors` reads back into these priors (full precision)."""
        parts = [f"b[{name}] = {_spec(d)}"
                 for name, d in zip(self.fixed_names, self.fixed, strict=True)]
        if self.family_parameter is not None:
            name, dist = self.family_parameter
            parts.append(f"{name} = {_spec(dist)}")
        parts += [f"sd_{factor}[{effect}] = {_spec(d)}" for (factor, effect), d in self.sd.items()]
        parts += [f"icc_{factor} = {_spec(d)}" for factor, d in self.icc.items()]
        parts += [f"cor_{factor} = lkj({eta!r})" for factor, eta in self.cor.items()]
        return "; ".join(parts)


def default_priors(design: MixedDesign) -> MixedPriors:
    """Weakly informative priors scaled to the data, in the spirit of rstanarm and brms.

    With s = sd(y) for the normal family and s = 1 on the link scale (logit or log)
    otherwise, and sd(·) the standard deviation of a column over the rows:

    * intercept: Normal(mean(y), 2.5 s) for normal, Normal(0, 2.5) otherwise;
    * coefficient of column x: Normal(0, 2.5 s / sd(x)) (2.5 s if x is constant), so a
      change of one sd in x moves the linear predictor by about 2.5 s at most;
    * residual sd (normal family): sigma ~ HalfNormal(s);
    * shape of the negative binomial family: phi ~ HalfCauchy(10) (:data:`DEFAULT_PHI`;
      brms's default for this ``shape`` is the vaguer Gamma(0.01, 0.01));
    * sd of group effect z: HalfNormal(s / sd(z)) (HalfNormal(s) for the intercept or a
      constant column);
    * correlations of a correlated term with two or more effects: LKJ(2), which mildly
      favours weak correlation.

    The intercept is that of the columns as given (not centred, unlike rstanarm's), so its
    prior is centred at mean(y) with a wide scale. Gelman et al. (2008), "A weakly
    informative default prior distribution for logistic and other regression models",
    Ann. Appl. Stat. 2:1360-1383; rstanarm's "Prior distributions for rstanarm models".
    """
    normal = design.family == "normal"
    y_mean, y_sd = response_mean_sd(design)
    scale = y_sd if normal and design.n_obs > 1 else 1.0
    if not scale > 0:
        scale = 1.0
    fixed = []
    for j, name in enumerate(design.fixed_names):
        if name == INTERCEPT:
            loc = y_mean if normal else 0.0
            fixed.append(make_distribution("normal", (loc, COEFFICIENT_SCALE * scale)))
        else:
            spread = COEFFICIENT_SCALE * scale / _positive(fixed_sd(design, j))
            fixed.append(make_distribution("normal", (0.0, spread)))
    sd = {}
    for term in design.terms:
        for e, effect in enumerate(term.names):
            spread = scale if effect == INTERCEPT else scale / _positive(
                effect_sd(design, term, e))
            sd[term.factor, effect] = make_distribution("halfnormal", (spread,))
    cor = {term.factor: DEFAULT_LKJ_ETA for term in design.terms
           if term.correlated and term.n_effects > 1}
    sigma = make_distribution("halfnormal", (scale,)) if normal else None
    phi = (make_distribution(*DEFAULT_PHI)
           if FAMILY_PARAMETERS.get(design.family) == "phi" else None)
    _check_unique_factors(design)
    return MixedPriors(design.fixed_names, tuple(fixed), sigma, sd, cor, phi)


def implied_pooling(design: MixedDesign, priors: MixedPriors, rng: np.random.Generator
                    ) -> list[str]:
    """The prior's pooling factor of a typical level's intercept, one line per grouping
    factor with an intercept: at n rows, the weight of the population in the level's
    estimate, λ = v/(v + τ²) with v = w/n + Σ_k τ_k²/J_k, τ ~ sd_factor[Intercept]'s prior,
    n the median rows per level, w a row's variance on the scale of the linear predictor
    (:func:`row_variance`: σ² in the normal family, exact, with σ ~ its prior; a GLMM's
    from the information of a row at the observed mean, approximate, and labelled so), and
    for each factor k nested in this one (its levels each within one of this one's, as
    school:classroom in school) its intercept sd τ_k and J_k, the median number of its levels
    in one of this factor's (:class:`~poolwise.priors.ImpliedPooling`). None (no line) where
    w does not exist (a GLMM's response all 0 or all at its maximum)."""
    row = row_variance(design, priors, rng)
    if row is None:
        return []
    variance, approximation = row
    # no intercept, or a streamed design without the rows' levels: no line
    terms = [t for t in design.terms if INTERCEPT in t.names and t.index.size == design.n_obs]
    tau2 = {}
    for term in terms:
        if term.factor in priors.icc:  # τ² = σ² ρ/(1 − ρ)
            icc = priors.icc[term.factor].sample(rng, POOLING_DRAWS)
            tau2[term.factor] = variance * icc / (1.0 - icc)
        else:
            tau2[term.factor] = np.square(
                priors.sd[term.factor, INTERCEPT].sample(rng, POOLING_DRAWS))
    lines = []
    for term in terms:
        size = float(np.median(np.bincount(term.index, minlength=term.n_levels)))
        noise = variance / size
        within = []
        for inner in terms:
            count = _levels_within(inner, term)
            if count is not None:
                noise = noise + tau2[inner.factor] / count
                within.append(f"{count:g} {inner.factor}")
        article = indefinite_article(term.factor)
        where = (f"for {article} {term.factor} of {size:g} rows{' in ' if within else ''}"
                 f"{', '.join(within)} (the median{'s' if within else ''}), its intercept")
        if approximation is not None:
            where = f"{where} (approximate: {approximation})"
        lines.append(ImpliedPooling.of(noise / (noise + tau2[term.factor]), where).describe())
    return lines


def _levels_within(inner: GroupTerm, outer: GroupTerm) -> float | None:
    """The median number of ``inner``'s levels within a level of ``outer`` when each of its
    levels lies within one of ``outer``'s (nested); None otherwise, or for the same term."""
    if inner is outer:
        return None
    pairs = np.unique(np.stack([inner.index, outer.index]), axis=1)
    if pairs.shape[1] != np.unique(inner.index).size:
        return None
    counts = np.bincount(pairs[1], minlength=outer.n_levels)
    return float(np.median(counts[counts > 0]))


def row_variance(design: MixedDesign, priors: MixedPriors, rng: np.random.Generator
                 ) -> tuple[np.ndarray, str | None] | None:
    """A row's variance w on the scale of the linear predictor — :data:`POOLING_DRAWS`
    draws, or one value — and None, or for a GLMM what approximates it: the inverse of a
    row's Fisher information about η at the observed mean response, 1/(m p̄(1 − p̄)) for
    the logit link (m the mean trials per row, p̄ = Σy/Σm), 1/ȳ for the Poisson and
    1/ȳ + 1/φ for the negative binomial (φ ~ its prior), as a normal model's σ² (McCullagh
    and Nelder 1989, §2.5: the working response's variance). None where it does not exist
    (p̄ or ȳ at 0, or p̄ at 1)."""
    if priors.sigma is not None:
        return np.square(priors.sigma.sample(rng, POOLING_DRAWS)), None
    y = np.asarray(design.y, dtype=float)
    if design.link == "logit":
        trials = np.ones_like(y) if design.trials is None else np.asarray(design.trials, float)
        mean = float(y.sum() / trials.sum())
        if not 0.0 < mean < 1.0:
            return None
        information = float(trials.mean()) * mean * (1.0 - mean)
        return (np.array(1.0 / information),
                f"a row's variance on the logit scale taken as 1/(m p(1 − p)) at the observed "
                f"rate p = {mean:.3g}, m = {float(trials.mean()):.3g} trials")
    mean = float(y.mean())
    if not mean > 0.0:
        return None
    if priors.phi is None:
        return (np.array(1.0 / mean), f"a row's variance on the log scale taken as 1/μ at the "
                                      f"observed mean count μ = {mean:.3g}")
    phi = np.asarray(priors.phi.sample(rng, POOLING_DRAWS), dtype=float)
    return (1.0 / mean + 1.0 / phi,
            f"a row's variance on the log scale taken as 1/μ + 1/φ at the observed mean "
            f"count μ = {mean:.3g}")


def sample_sd(priors: MixedPriors, factor: str, effect: str, sigma: Any,
              rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` prior draws of an effect's sd; under an ICC prior τ = σ √(ρ/(1 − ρ)) with
    ρ ~ its Beta and σ the residual sd's draws."""
    name, dist = priors.sd_prior(factor, effect)
    if not name.startswith("icc_"):
        return np.asarray(dist.sample(rng, size), dtype=float)
    icc = dist.sample(rng, size)
    return np.asarray(sigma * np.sqrt(icc / (1.0 - icc)), dtype=float)


def icc_log_density(tau: Any, sigma: Any, params: Any, ops: Ops = NUMPY_OPS) -> Any:
    """log p(τ | σ) when ρ = τ²/(τ² + σ²) ~ Beta(a, b): log Beta(ρ; a, b) + log dρ/dτ,
    dρ/dτ = 2τσ²/(τ² + σ²)², with log ρ = 2 log τ − log(τ² + σ²) and
    log(1 − ρ) = 2 log σ − log(τ² + σ²) (no cancellation near 0 or 1)."""
    a, b = params
    log_total = ops.log(ops.square(tau) + ops.square(sigma))
    log_rho = 2.0 * ops.log(tau) - log_total
    log_rest = 2.0 * ops.log(sigma) - log_total
    log_slope = math.log(2.0) + ops.log(tau) + log_rest - log_total  # log dρ/dτ
    return (ops.gammaln(a + b) - ops.gammaln(a) - ops.gammaln(b) + (a - 1.0) * log_rho
            + (b - 1.0) * log_rest + log_slope)


def parse_priors(text: str, design: MixedDesign, base: MixedPriors | None = None) -> MixedPriors:
    """Override ``base`` (default :func:`default_priors`) with ``name = dist`` statements
    (or ``name ~ dist``, as :meth:`MixedPriors.describe` prints them).

    Statements are separated by semicolons and applied in order, so a general statement
    followed by a specific one refines it. Names (those of the summary's rows; the older
    ``sd[Subject][Days]`` and ``cor[Subject]`` are read too):

    ``b``                 every fixed coefficient except the intercept (brms's class b):
                          ``normal(loc, scale)`` or ``student_t(df, loc, scale)``
    ``b[Days]``           one coefficient
    ``Intercept``         the intercept (brms's class Intercept), also ``b[Intercept]``
    ``sigma``             the residual sd (normal family only)
    ``phi``               the shape φ (negative binomial family only)
    ``sd``                every group-effect sd
    ``sd_Subject``        the sds of every effect of one factor
    ``sd_Subject[Days]``  one sd
    ``cor``, ``cor_Subject``   the LKJ prior of correlated terms: ``lkj(eta)``
    ``icc``, ``icc_Subject``   instead of ``sd_Subject[Intercept]``'s: ``beta(a, b)`` on the
                          ICC τ²/(τ² + σ²) (normal family)

    Scale distributions: halfnormal(scale), halfcauchy(scale), halfstudentt(df, scale)
    (also written half_t, or brms's student_t(df, 0, scale)), exponential(rate),
    gamma(shape, rate), lognormal(mu, sigma).

    Raises
    ------
    SpecificationError
        Naming the statement at fault and listing the valid names or distributions.

    Examples
    --------
    >>> import numpy as np
    >>> from poolwise.kinds.mixed.design import GroupTerm, MixedDesign
    >>> term = GroupTerm("g", ("Intercept",), np.ones((4, 1)), np.array([0, 0, 1, 1]),
    ...                  ("a", "b"), False)
    >>> design = MixedDesign("y ~ 1 + (1 | g)", "normal", "y", np.arange(4.0),
    ...                      np.ones((4, 1)), ("Intercept",), (term,))
    >>> priors = parse_priors("b[Intercept] = normal(0, 10); sd = halfcauchy(1)", design)
    >>> priors.describe()  # doctest: +NORMALIZE_WHITESPACE
    ['b[Intercept] ~ Normal(0, 10)', 'sigma ~ HalfNormal(1.29099)',
     'sd_g[Intercept] ~ HalfCauchy(1)']
    """
    priors = base if base is not None else default_priors(design)
    for statement in statements(text):
        if statement:
            priors = _apply(priors, statement, design)
    return priors


def statements(text: str) -> list[str]:
    """The statements of prior text, separated by ``;`` or new lines (the printed prior
    block pastes back as it is), stripped."""
    return [part.strip() for part in re.split(r"[;\n]", text)]


def check_prior_syntax(text: str) -> None:
    """Refuse prior text that no design could read: each statement must be
    ``name[index]… = dist(numbers)`` with name b, sigma, phi, sd or cor (the names and
    distributions are checked against a design by :func:`parse_priors`)."""
    if not isinstance(text, str):
        raise SpecificationError(
            f"the priors must be text such as 'sd = halfnormal(10)' or MixedPriors, not "
            f"{type(text).__name__}")
    for statement in statements(text):
        if not statement:
            continue
        match = _STATEMENT.match(statement)
        if not match:
            name = _NAME.match(statement)
            hint = (_did_you_mean(name.group(1), ("b", INTERCEPT, "sigma", "phi", "sd", "cor",
                                                  "icc")) if name else "")
            raise SpecificationError(
                f"cannot read prior statement {statement!r}{hint}; write 'name = dist' (or "
                "'name ~ dist') with name b, b[coefficient], Intercept, sigma, phi, sd, "
                "sd_factor, "
                "sd_factor[effect], cor, cor_factor, icc or icc_factor")
        _parse_call(_without_remark(match.group(5)), statement)


def intercept_remark(text: str | None, design: MixedDesign) -> str | None:
    """What to say beside the intercept's prior when ``text`` sets ``b`` for every
    coefficient and not the intercept's own (which ``b`` leaves, as brms's ``class = b``);
    None otherwise. Printed in parentheses after the prior, which :func:`parse_priors`
    reads back without them."""
    if INTERCEPT not in design.fixed_names or not text:
        return None
    bulk = False
    for statement in statements(text):
        match = _STATEMENT.match(statement)
        if match is None or match.group(1) not in ("b", INTERCEPT) or match.group(2):
            continue
        index = [part.strip() for part in _INDEX.findall(match.group(3))]
        if match.group(1) == INTERCEPT or index == [INTERCEPT]:
            bulk = False  # the intercept's own prior, after any b
        elif not index:
            bulk = True
    if not bulk:
        return None
    return ("the intercept's own prior, which b = … leaves as brms's class b does: set it "
            "with Intercept = …")  # no ';', which separates statements


#: a remark in parentheses after a distribution, as :func:`intercept_remark` is printed
_REMARK = re.compile(r"(?<=\))\s+\([^()]*\)\s*$")


def _without_remark(dist_text: str) -> str:
    """``dist_text`` without a trailing remark in parentheses."""
    return _REMARK.sub("", dist_text)


#: an index [name], where a name may hold one level of brackets itself: b[group[2]]
_BRACKETED = r"\[((?:[^\[\]]|\[[^\[\]]*\])+)\]"
#: ``name[index]… = dist`` or ``~ dist``; a factor may follow sd and cor as ``sd_Subject``
_STATEMENT = re.compile(r"^\s*(b|Intercept|sigma|phi|sd|cor|icc)(?:_([^\[\]=~\s]+))?\s*((?:"
                        + _BRACKETED + r")*)\s*[=~]\s*(.+?)\s*$")
#: the start of a statement, to suggest the name meant when it is misspelt
_NAME = re.compile(r"^\s*([^\s=~]+?)\s*[=~]")
_CALL = re.compile(r"^([A-Za-z_]+)\s*\(([^()]*)\)$")
_INDEX = re.compile(_BRACKETED)


def _apply(priors: MixedPriors, statement: str, design: MixedDesign) -> MixedPriors:
    """``priors`` with one ``name = dist`` statement applied."""
    match = _STATEMENT.match(statement)
    valid = _valid_names(design)
    if not match:
        name = _NAME.match(statement)
        raise SpecificationError(
            f"cannot read prior statement {statement!r}"
            f"{_did_you_mean(name.group(1), valid) if name else ''}; write 'name = dist' "
            f"with name one of: {', '.join(valid)}")
    kind, factor, brackets, dist_text = match.group(1, 2, 3, 5)
    dist_text = _without_remark(dist_text)
    index = [part.strip() for part in _INDEX.findall(brackets)]
    if kind == INTERCEPT:  # brms's class Intercept: b[Intercept]
        if factor is not None or index:
            raise SpecificationError(f"{statement!r}: Intercept takes no [index]")
        kind, index = "b", [INTERCEPT]
    if factor is not None:
        if kind not in ("sd", "cor", "icc"):
            raise SpecificationError(
                f"cannot read prior statement {statement!r}"
                f"{_did_you_mean(statement.split('=')[0].split('~')[0].strip(), valid)}; "
                f"write 'name = dist' with name one of: {', '.join(valid)}")
        index = [factor, *index]
    if kind == "b":
        return _apply_fixed(priors, index, dist_text, statement)
    if kind in ("sigma", "phi"):
        if index:
            raise SpecificationError(f"{statement!r}: {kind} takes no [index]")
        if FAMILY_PARAMETERS.get(design.family) != kind:
            what = "residual sd sigma" if kind == "sigma" else "shape phi"
            owner = "normal" if kind == "sigma" else "negbinomial"
            raise SpecificationError(
                f"{statement!r}: the {design.family} family has no {what} (only the "
                f"{owner} family has)")
        dist = _scale_distribution(dist_text, statement)
        return replace(priors, sigma=dist) if kind == "sigma" else replace(priors, phi=dist)
    if kind == "sd":
        return _apply_sd(priors, index, dist_text, statement, design)
    if kind == "icc":
        return _apply_icc(priors, index, dist_text, statement, design)
    return _apply_cor(priors, index, dist_text, statement)


def _apply_icc(priors: MixedPriors, index: list[str], dist_text: str, statement: str,
               design: MixedDesign) -> MixedPriors:
    """``icc`` (every factor with an intercept) or ``icc_factor`` = beta(a, b)."""
    if priors.sigma is None:
        raise SpecificationError(
            f"{statement!r}: the ICC τ²/(τ² + σ²) needs a residual sd σ, which only the "
            f"normal family has, not {design.family}; put the prior on sd instead")
    with_intercept = [t.factor for t in design.terms if INTERCEPT in t.names]
    if len(index) > 1 or (index and index[0] not in with_intercept):
        valid = ", ".join(with_intercept) or "none: no term has an intercept"
        raise SpecificationError(
            f"{statement!r}: write icc or icc_factor, with a factor whose term has an "
            f"intercept{_did_you_mean(index[0], with_intercept) if index else ''}: {valid}")
    name, params = _parse_call(dist_text, statement)
    if name != "beta":
        raise SpecificationError(f"{statement!r}: an ICC's prior is beta(a, b), on (0, 1)")
    dist = _make(name, params, statement)
    targets = index or with_intercept
    return replace(priors, icc={**priors.icc, **dict.fromkeys(targets, dist)})


def _apply_fixed(priors: MixedPriors, index: list[str], dist_text: str,
                 statement: str) -> MixedPriors:
    if len(index) > 1:
        raise SpecificationError(f"{statement!r}: write b or b[name], with one name")
    if index and index[0] not in priors.fixed_names:
        raise SpecificationError(
            f"{statement!r}: unknown coefficient {index[0]!r}"
            f"{_did_you_mean(index[0], priors.fixed_names)}; coefficients: "
            f"{', '.join(priors.fixed_names)}")
    name, params = _parse_call(dist_text, statement)
    if canonical_name(name) not in ("normal", "studentt"):
        raise SpecificationError(
            f"{statement!r}: a fixed coefficient's prior must be normal(loc, scale) or "
            "student_t(df, loc, scale)")
    dist = _make(name, params, statement)
    targets = set(index) if index else set(priors.fixed_names) - {INTERCEPT}
    fixed = tuple(dist if n in targets else d
                  for n, d in zip(priors.fixed_names, priors.fixed, strict=True))
    return replace(priors, fixed=fixed)


def _apply_sd(priors: MixedPriors, index: list[str], dist_text: str, statement: str,
              design: MixedDesign) -> MixedPriors:
    if len(index) > 2:
        raise SpecificationError(f"{statement!r}: write sd, sd[factor] or sd[factor][effect]")
    factors = {term.factor: term.names for term in design.terms}
    if index and index[0] not in factors:
        valid = ", ".join(factors) or "none: the model has no group terms"
        raise SpecificationError(f"{statement!r}: unknown grouping factor {index[0]!r}"
                                 f"{_did_you_mean(index[0], factors)}; factors: {valid}")
    if len(index) == 2 and index[1] not in factors[index[0]]:
        raise SpecificationError(
            f"{statement!r}: {index[0]} has no effect {index[1]!r}"
            f"{_did_you_mean(index[1], factors[index[0]])}; its effects: "
            f"{', '.join(factors[index[0]])}")
    dist = _scale_distribution(dist_text, statement)
    sd = {key: dist if key[:len(index)] == tuple(index) else d for key, d in priors.sd.items()}
    return replace(priors, sd=sd)


def _apply_cor(priors: MixedPriors, index: list[str], dist_text: str,
               statement: str) -> MixedPriors:
    if len(index) > 1:
        raise SpecificationError(f"{statement!r}: write cor or cor[factor]")
    if index and index[0] not in priors.cor:
        valid = ", ".join(priors.cor) or "none: no term has correlated effects"
        raise SpecificationError(
            f"{statement!r}: {index[0]!r} is not a factor with correlated effects"
            f"{_did_you_mean(index[0], priors.cor)}; correlated factors: {valid}")
    name, params = _parse_call(dist_text, statement)
    if name != "lkj" or len(params) != 1 or not (math.isfinite(params[0]) and params[0] > 0):
        raise SpecificationError(f"{statement!r}: a correlation prior is lkj(eta), eta > 0")
    targets = set(index) if index else set(priors.cor)
    return replace(priors, cor={f: params[0] if f in targets else eta
                                for f, eta in priors.cor.items()})


def _scale_distribution(dist_text: str, statement: str) -> Distribution:
    name, params = _parse_call(dist_text, statement)
    if canonical_name(name) not in (*SCALE_DISTRIBUTIONS, "studentt"):
        raise SpecificationError(
            f"{statement!r}: a scale's prior must be one of "
            f"{', '.join(f'{n}(...)' for n in SCALE_DISTRIBUTIONS)} (or brms's "
            "student_t(df, 0, scale), a half-t)")
    return _make(name, params, statement, positive=True)


def _make(name: str, params: tuple[float, ...], statement: str,
          positive: bool = False) -> Distribution:
    try:
        return make_distribution(name, params, positive=positive)
    except SpecificationError as error:
        raise SpecificationError(f"{statement!r}: {error}") from None


def _parse_call(text: str, statement: str) -> tuple[str, tuple[float, ...]]:
    match = _CALL.match(text.strip())
    if not match:
        raise SpecificationError(
            f"{statement!r}: cannot read distribution {text!r}; write e.g. normal(0, 5), "
            "halfnormal(10) or lkj(2)")
    name, args = match.groups()
    try:
        params = tuple(float(a) for a in args.split(",")) if args.strip() else ()
    except ValueError:
        raise SpecificationError(f"{statement!r}: parameters must be numbers") from None
    return name.lower(), params


def _valid_names(design: MixedDesign) -> list[str]:
    names = ["b", *(f"b[{n}]" for n in design.fixed_names)]
    names += [INTERCEPT] if INTERCEPT in design.fixed_names else []
    if design.family in FAMILY_PARAMETERS:
        names.append(FAMILY_PARAMETERS[design.family])
    if design.terms:
        names.append("sd")
    for term in design.terms:
        names += [f"sd_{term.factor}", *(f"sd_{term.factor}[{e}]" for e in term.names)]
    correlated = [t.factor for t in design.terms if t.correlated and t.n_effects > 1]
    if correlated:
        names += ["cor", *(f"cor_{f}" for f in correlated)]
    intercepts = [t.factor for t in design.terms if INTERCEPT in t.names]
    if design.family == "normal" and intercepts:
        names += ["icc", *(f"icc_{f}" for f in intercepts)]
    return names


def _did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'sigma'?)`` where a valid name is close to ``name``, else ''."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _positive(spread: float) -> float:
    return spread if spread > 0 else 1.0


def _check_unique_factors(design: MixedDesign) -> None:
    factors = [term.factor for term in design.terms]
    repeated = sorted({f for f in factors if factors.count(f) > 1})
    if repeated:
        raise SpecificationError(
            f"grouping factor(s) {', '.join(repeated)} appear in more than one term; "
            "combine them into one term, e.g. (1 + x || g) instead of (1 | g) + (0 + x | g)")


def _spec(d: Distribution) -> str:
    return f"{d.name}({', '.join(repr(v) for v in d.params)})"


__all__ = ["MixedPriors", "check_prior_syntax", "default_priors", "icc_log_density",
           "implied_pooling", "intercept_remark", "parse_priors", "row_variance",
           "sample_sd"]
