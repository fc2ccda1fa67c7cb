"""Fits of the same data side by side: estimates, and PSIS-LOO predictive accuracy.

Written for any kind: :class:`Comparison` holds fits by label (the three pooling levels,
or models to choose between), :meth:`Comparison.estimates` sets their summaries side by
side (a kind may present its own table, :meth:`~poolwise.results.fit.Fit.comparison_table`)
and :meth:`Comparison.predictive` scores them with PSIS-LOO (Vehtari, Gelman and Gabry
2017) — leaving out one observation, or one whole group (``by``), at a time — into a
:class:`LooComparison`: the table ``loo_compare`` prints, with the standard error of each
difference, and the warnings a reader needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise.exceptions import SpecificationError
from poolwise.vocabulary import POOLING_PHRASES

if TYPE_CHECKING:
    from poolwise.results.fit import Fit

__all__ = ["LOO_COLUMNS", "Comparison", "LooComparison", "loo_compare", "side_by_side"]

#: the columns of :attr:`LooComparison.table`, one row per model, the best (highest elpd)
#: first:
#:
#: ``model`` the label; ``elpd`` the PSIS-LOO expected log predictive density, Σ_i elpd_i
#: (higher is better) and ``se`` its standard error; ``elpd_diff`` elpd − the best's
#: (0 for the best) and ``dse`` the standard error of that difference,
#: sqrt(n · var_i(elpd_i^best − elpd_i^model)) over the same n points; ``p_loo`` the
#: effective number of parameters; ``weight`` the stacking weight (Yao et al. 2018);
#: ``n_points`` the points left out one at a time; ``pareto_k_max`` the largest Pareto k̂;
#: ``n_bad_k`` how many points have k̂ above ``k_threshold`` (min(1 − 1/log10 S, 0.7) for
#: S draws), whose elpd_i is unreliable.
LOO_COLUMNS = ("model", "elpd", "se", "elpd_diff", "dse", "p_loo", "weight", "n_points",
               "pareto_k_max", "n_bad_k", "k_threshold")
#: the start of ArviZ's Pareto k warning, which the comparison's own line replaces
_ARVIZ_PARETO = "Estimated shape parameter of Pareto distribution"


@dataclass(frozen=True)
class LooComparison:
    """A PSIS-LOO comparison of models of the same data, ready to print or render.

    ``table`` has the columns of :data:`LOO_COLUMNS`, best first; ``pointwise`` each
    point's elpd_i (rows: the points, labelled; one column per model); ``points`` what one
    point is (``"group"``, ``"row"``, ``"experiment"``, or the ``by`` column under
    leave-one-group-out); ``by`` the grouping left out whole (None: one point at a time);
    ``warnings`` one line each: unreliable Pareto k̂ with what to do, and ArviZ's other
    warnings.
    """

    table: pd.DataFrame
    pointwise: pd.DataFrame
    points: str
    by: str | None
    warnings: tuple[str, ...]

    @property
    def criterion(self) -> str:
        """``PSIS-LOO`` or ``PSIS-LOGO`` (leave one group out)."""
        return "PSIS-LOO" if self.by is None else "PSIS-LOGO"

    def verdicts(self) -> list[str]:
        """One line per model behind the best: how far, and whether that is a clear
        difference. Following Sivula, Magnusson and Vehtari (2022): |elpd_diff| < 4 is
        small; otherwise it is clear when beyond two standard errors of the difference."""
        best = self.table["model"].iloc[0]
        lines = []
        for row in self.table.iloc[1:].to_dict("records"):
            diff, dse = abs(row["elpd_diff"]), row["dse"]
            if diff < 4:
                verdict = "a small difference (under 4): no clear preference"
            elif diff > 2 * dse:
                verdict = f"a clear difference (over 2 standard errors) in favour of {best}"
            else:
                verdict = "within 2 standard errors: no clear preference"
            unreliable = int(row["n_bad_k"]) + int(self.table["n_bad_k"].iloc[0])
            if unreliable:
                verdict += (f"; but Pareto k̂ is too high at {unreliable} left-out "
                            f"{self.points}s of the two, so this is rough")
            lines.append(f"{row['model']}: {diff:.1f} below {best} (SE {dse:.1f}), {verdict}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The comparison for the JSON document (its pointwise values left out)."""
        return {"criterion": self.criterion, "points": self.points, "by": self.by,
                "rows": self.table.to_dict("records"), "verdicts": self.verdicts(),
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Comparison:
    """Fits of one data set, by label (``"none"``, ``"complete"``, ``"partial"``, or the
    models' names)."""

    fits: dict[str, Fit]

    @property
    def poolings(self) -> bool:
        """Whether the fits are the three pooling levels of one model."""
        return set(self.fits) == set(POOLING_PHRASES)

    def estimates(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """The fits' estimates side by side: one row per parameter (and group), columns
        ``<label>_mean``, ``<label>_lower``, ``<label>_upper`` (fits of one kind in that
        kind's table, :meth:`~poolwise.results.fit.Fit.comparison_table`)."""
        kinds = {type(fit) for fit in self.fits.values()}
        if len(kinds) == 1:
            return kinds.pop().comparison_table(self.fits, ci_prob)
        return side_by_side({label: fit.summary(ci_prob, diagnostics=False)
                             for label, fit in self.fits.items()})

    def predictive(self, by: str | None = None) -> LooComparison:
        """PSIS-LOO of each fit, best first, with the differences and their standard errors
        (:func:`loo_compare`); ``by`` leaves out one group of that name at a time."""
        return loo_compare(self.fits, by=by)


def side_by_side(tables: Mapping[str, pd.DataFrame], order: str | None = None
                 ) -> pd.DataFrame:
    """Summaries joined on (param, group): the rows of ``order``'s table first (default the
    first), then rows only the others have; ``<label>_mean/lower/upper`` per table."""
    labels = list(tables)
    first = order if order is not None else labels[0]
    ordered = [first, *(label for label in labels if label != first)]
    keys = list(dict.fromkeys(
        (row["param"], row["group"]) for label in ordered
        for row in tables[label][["param", "group"]].to_dict("records")))
    out = pd.DataFrame(keys, columns=["param", "group"])
    for label, table in tables.items():
        indexed = table.set_index(["param", "group"])
        for column in ("mean", "lower", "upper"):
            out[f"{label}_{column}"] = [
                float(indexed[column].get(key, np.nan)) if key in indexed.index else np.nan
                for key in keys]
    return out


# ----------------------------------------------------------------------------- PSIS-LOO
def loo_compare(fits: Mapping[str, Fit], by: str | None = None) -> LooComparison:
    """PSIS-LOO of each fit and the differences from the best, as R's ``loo_compare``.

    Every fit must hold a pointwise log likelihood of the same observations (the same
    points, the same observed values); otherwise one line says which fits differ and how.
    ``se`` and ``dse`` are R's loo's: sqrt(n · var(elpd_i)) and
    sqrt(n · var(elpd_i^best − elpd_i^model)), the sample variance over the n points (with
    n − 1); the stacking weights are ArviZ's (``arviz_stats.compare``).

    With ``by`` (leave-one-group-out) each fit's pointwise log likelihood is summed within
    the groups ``by`` names (:meth:`~poolwise.results.fit.Fit.point_groupings`) and PSIS
    leaves out one group at a time: log p(y_g | y_−g) ≈ elpd_g. Leaving out a whole group
    moves the posterior more than one observation does, so k̂ is often high; the warnings
    then advise exact refits or K-fold cross-validation over groups.
    """
    if len(fits) < 2:
        raise SpecificationError(f"a comparison needs two fits or more, got {len(fits)}")
    points = {label: _points(label, fit) for label, fit in fits.items()}
    _check_same_data(points)
    if by is not None:
        labels = _grouping(fits, points, by)
        trees = {label: _grouped(fit, points[label], by, labels)
                 for label, fit in fits.items()}
    else:
        trees = {label: fit.with_log_likelihood() for label, fit in fits.items()}
    messages: list[str] = []  # ArviZ's own, after the Pareto k lines
    elpds = {}
    for label, tree in trees.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                elpds[label] = _arviz.loo(tree, pointwise=True)
            except (ValueError, IndexError) as err:  # e.g. the same at every draw
                raise SpecificationError(
                    f"PSIS-LOO failed for {label} ({err}): its log likelihood hardly varies "
                    "between draws (an empirical-Bayes fit with τ estimated at 0?), so "
                    "leaving a point out cannot be estimated by reweighting the draws; "
                    "fit it with a full posterior (method exact or nuts)") from err
        messages += _user_warnings(caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compared = _arviz.compare(elpds)
    messages += _user_warnings(caught)
    what = by if by is not None else points[next(iter(fits))].dim
    rows, pareto = [], []
    best = float(compared["elpd"].max())
    pointwise = pd.DataFrame({label: np.asarray(elpd.elpd_i).ravel()
                              for label, elpd in elpds.items()},
                             index=pd.Index(_labels(elpds), name=what))
    top = pointwise[str(compared.index[0])].to_numpy()
    for label, row in compared.iterrows():
        elpd = elpds[str(label)]
        k = np.asarray(elpd.pareto_k).ravel()
        bad = int(np.sum(k > elpd.good_k))
        own = pointwise[str(label)].to_numpy()
        rows.append({"model": str(label), "elpd": float(row["elpd"]),
                     "se": _sd_of_sum(own), "elpd_diff": float(row["elpd"]) - best,
                     "dse": _sd_of_sum(top - own),
                     "p_loo": float(row["p"]), "weight": float(row["weight"]),
                     "n_points": int(k.size), "pareto_k_max": float(np.max(k)),
                     "n_bad_k": bad, "k_threshold": float(elpd.good_k)})
        if bad:
            pareto.append(_pareto_line(str(label), bad, k, float(elpd.good_k), what,
                                       by is not None))
    return LooComparison(pd.DataFrame(rows, columns=list(LOO_COLUMNS)), pointwise, what, by,
                         tuple(dict.fromkeys(pareto + messages)))


def _sd_of_sum(values: NDArray) -> float:
    """The standard error of a sum of n pointwise values, sqrt(n · var), with the sample
    variance (n − 1) as R's loo; 0 for a single point."""
    n = values.size
    return float(np.sqrt(n * np.var(values, ddof=1 if n > 1 else 0)))


def _pareto_line(label: str, bad: int, k: NDArray, threshold: float, what: str,
                 by_group: bool) -> str:
    """The warning for a fit with unreliable points, and what to do about it."""
    name = POOLING_PHRASES.get(label, label)
    head = (f"PSIS-{'LOGO' if by_group else 'LOO'} is unreliable for {name}: Pareto k > "
            f"{threshold:.2f} at {bad} of {k.size} left-out {what}s (largest "
            f"{np.max(k):.2f})")
    if by_group:
        return (head + "; k is often high when a whole group is left out, because a group "
                "moves the posterior more than one observation does: for a reliable elpd "
                "refit the model without each group (exact leave-one-group-out) or use "
                "K-fold cross-validation over the groups")
    return (head + "; read these elpd values as rough (k is high for points that move the "
            "posterior much: a group's only data, an outlier): refit without those points "
            "(exact LOO) or use K-fold cross-validation for a reliable elpd")


def _user_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The first line of each warning about the models (not ArviZ's note on its Pareto k,
    which the comparison words itself, nor deprecations inside the libraries)."""
    return [str(w.message).splitlines()[0] for w in caught
            if not str(w.message).startswith(_ARVIZ_PARETO)
            and not issubclass(w.category, DeprecationWarning | FutureWarning)]


def _labels(elpds: Mapping[str, Any]) -> NDArray[np.str_]:
    """The points' labels (the coordinate of the first elpd_i's one dimension, else their
    positions)."""
    elpd_i = next(iter(elpds.values())).elpd_i
    if elpd_i.ndim == 1:
        return np.asarray(elpd_i[elpd_i.dims[0]].values).astype(str)
    return np.arange(elpd_i.size).astype(str)


@dataclass(frozen=True)
class _Points:
    """One fit's pointwise log likelihood: its variable and dimensions, the points' labels
    and the observed values on those dimensions (what must agree between compared fits)."""

    var: str
    dim: str
    labels: NDArray[Any]
    observed: dict[str, NDArray[Any]]


def _points(label: str, fit: Fit) -> _Points:
    tree = fit.with_log_likelihood()
    ll = tree["log_likelihood"].to_dataset()
    if len(ll.data_vars) != 1:
        names = ", ".join(str(v) for v in ll.data_vars)
        raise SpecificationError(
            f"{label}: a model with several observed sites ({names}) has no single "
            "pointwise log likelihood to compare; compare models with one observed site")
    var = str(next(iter(ll.data_vars)))
    if ll.sizes["chain"] * ll.sizes["draw"] < 2:
        raise SpecificationError(
            f"{label} is a point estimate (one draw): PSIS-LOO reweights posterior draws; "
            "fit it with draws (method exact, nuts, or laplace) to compare it")
    dims = tuple(str(d) for d in ll[var].dims[2:])
    dim = dims[0] if len(dims) == 1 else "point"
    labels = (np.asarray(ll[dim].values) if len(dims) == 1 and dim in ll.coords
              else np.arange(int(np.prod(ll[var].shape[2:]))))
    observed: dict[str, NDArray[Any]] = {}
    if "observed_data" in tree.children:
        data = tree["observed_data"].to_dataset()
        observed = {str(name): np.asarray(values.values).ravel()
                    for name, values in data.data_vars.items() if values.dims == dims}
    return _Points(var, dim, labels, observed)


def _check_same_data(points: Mapping[str, _Points]) -> None:
    """Refuse fits whose points differ: their number, their labels (on a dimension of the
    same name) or any observed variable they share; and fits that share none."""
    (first, ref), *others = points.items()
    advice = "compare models fitted to the same rows with the same response"
    for label, other in others:
        if other.labels.size != ref.labels.size:
            raise SpecificationError(
                f"{first!r} and {label!r} were not fitted to the same data: "
                f"{ref.labels.size} {ref.dim}s against {other.labels.size} {other.dim}s; "
                f"{advice}")
        if other.dim == ref.dim and not np.array_equal(other.labels.astype(str),
                                                       ref.labels.astype(str)):
            raise SpecificationError(
                f"{first!r} and {label!r} were not fitted to the same data: their "
                f"{ref.dim} labels differ; {advice}")
        shared = sorted(set(ref.observed) & set(other.observed))
        if not shared:
            raise SpecificationError(
                f"cannot tell whether {first!r} and {label!r} were fitted to the same data: "
                f"they observe {', '.join(ref.observed) or 'nothing'} and "
                f"{', '.join(other.observed) or 'nothing'}; {advice}")
        for name in shared:
            a, b = ref.observed[name], other.observed[name]
            differ = ~((a == b) | (pd.isna(a) & pd.isna(b)))
            if differ.any():
                at = int(np.argmax(differ))
                raise SpecificationError(
                    f"{first!r} and {label!r} were not fitted to the same data: observed "
                    f"{name} differs at {int(differ.sum())} of {a.size} {ref.dim}s (first "
                    f"at {ref.dim} {ref.labels[at]}: {a[at]:g} against {b[at]:g}); "
                    f"{advice}")


def _grouping(fits: Mapping[str, Fit], points: Mapping[str, _Points], by: str
              ) -> NDArray[np.str_]:
    """Each point's group under ``by``, from the first fit that knows that grouping (the
    fits share their points, so one's grouping is every one's: ``y ~ x`` leaves out the
    groups that ``y ~ x + (1 | g)`` knows)."""
    known: dict[str, NDArray] = {}
    for label, fit in fits.items():
        known |= {points[label].dim: points[label].labels, **fit.point_groupings()}
        if by in known:
            return np.asarray(known[by]).astype(str).ravel()
    kinds = " and ".join(dict.fromkeys(fit.kind for fit in fits.values()))
    raise SpecificationError(f"cannot leave out groups of {by!r}: the {kinds} fits' points "
                             f"group by {', '.join(known)}")


def _grouped(fit: Fit, points: _Points, by: str, labels: NDArray[np.str_]) -> xr.DataTree:
    """The fit's posterior with its pointwise log likelihood summed within the groups
    ``labels`` name: log p(y_g | parameters) = Σ_{i in g} log p(y_i | parameters)."""
    values = np.asarray(fit.with_log_likelihood()["log_likelihood"][points.var].values)
    if labels.size != values[0, 0].size:
        raise SpecificationError(f"{by!r} has {labels.size} values for {values[0, 0].size} "
                                 f"{points.dim} values")
    flat = values.reshape(-1, labels.size)
    groups, first, index = np.unique(labels, return_index=True, return_inverse=True)
    rows = np.argsort(index, kind="stable")  # the points, group by group
    starts = np.searchsorted(index[rows], np.arange(groups.size))
    summed = np.add.reduceat(flat[:, rows], starts, axis=1)
    order = np.argsort(first)  # the groups in the order they first appear
    summed = summed[:, order].reshape(*values.shape[:2], groups.size)
    posterior = fit.posterior
    log_likelihood = xr.Dataset(  # its own name: ``by`` may be the response, y
        {"group_log_likelihood": (("chain", "draw", by), summed)},
        coords={"chain": posterior["chain"], "draw": posterior["draw"], by: groups[order]})
    return xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": log_likelihood})
