"""Trace and rank plots of posterior draws, one row per variable, for a fit of any kind.

Variables are named as each kind's summary names them: a rate or normal fit's α, β, μ, τ,
θ[group]; any other kind's variables with their labels (``theta[A:1]``, ``sigma2[lab 3]``);
and a :class:`~poolwise.kinds.mixed.model.MixedFit`, whose variables are named as the rows of
:meth:`MixedFit.summary <poolwise.kinds.mixed.model.MixedFit.summary>`: ``b[Days]``, ``sigma``,
``sd_Subject[Days]``, ``cor_Subject[Days, Intercept]``, and the group effects with the level
first, ``r_Subject[308, Days]`` (the summary's param ``r_Subject[Days]`` in group ``308``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise.exceptions import SpecificationError
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.kinds.mixed.model import MixedFit
from poolwise.outputs.plots._style import GREY, PALETTE, new_figure, style
from poolwise.results.fit import Fit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: at most this many rows by default for a fit of another kind (NIG, nested, custom)
DEFAULT_ROWS = 10
#: the hyperparameters shown by default, when the fit has them
DEFAULT_SCALARS = ("alpha", "beta", "mu", "tau")
SYMBOLS = {"alpha": "α", "beta": "β", "mu": "μ", "kappa": "κ", "tau": "τ", "theta": "θ"}
_INDEXED = re.compile(r"^(?P<name>\w+)\[(?P<group>.+)\]$")


@dataclass(frozen=True)
class TraceData:
    """What :func:`plot_trace` draws.

    ``draws`` is long: one row per (variable, chain, draw) with the draw's ``value`` and its
    ``rank`` among all draws of that variable (all chains pooled; ties share their average
    rank). ``diagnostics`` has one row per variable: ``r_hat`` (rank-normalised split
    R-hat, NaN with one chain) and ``ess_bulk``. ``bins`` is the number of rank-histogram
    bins.
    """

    draws: pd.DataFrame
    diagnostics: pd.DataFrame
    bins: int
    chains: int
    draws_per_chain: int


def _check(fit: Any) -> Fit:
    if not isinstance(fit, Fit):
        raise TypeError(f"fit must be a poolwise fit, not {type(fit).__name__}")
    if "posterior" not in fit.tree.children:
        raise SpecificationError(f"a {fit.method} fit holds point estimates: no draws to trace")
    return fit


def _describe(fit: Fit) -> str:
    """"partial pooling, nuts" — what produced the draws, for the title."""
    if fit.kind == "custom":
        return f"custom model, {fit.method}"
    return f"{fit.model.pooling_phrase}, {fit.method}"


def _resolve(fit: Any, var_names: Sequence[str] | None,
             max_theta: int) -> dict[str, NDArray]:
    """Variable name → draws (chain, draw), expanding ``theta`` to its first groups."""
    if isinstance(fit, MixedFit):
        return _resolve_mixed(fit, var_names, max_theta)
    if not isinstance(fit, ConjugateFit):
        return _resolve_any(fit.posterior, var_names, max_theta)
    posterior = fit.posterior
    labels = [str(label) for label in fit.data.labels]
    complete = fit.model.pooling == "complete"
    if var_names is None:
        var_names = [*(v for v in DEFAULT_SCALARS if v in posterior), "theta"]
    elif isinstance(var_names, str):
        var_names = [var_names]
    out: dict[str, NDArray] = {}
    for name in var_names:
        match = _INDEXED.match(name)
        base = match["name"] if match else name
        if base == "theta":  # only the groups drawn (a fit of many groups draws θ on demand)
            chosen = ([0] if complete else [_group_index(labels, base, match["group"])]
                      if match else list(range(min(max_theta, len(labels)))))
            values = fit.group_draws(chosen)
        else:
            values = fit.draws(base)  # raises with the valid names
        if values.ndim == 2:
            if match:
                raise SpecificationError(f"{base!r} has no groups; ask for {base!r}")
            out[name] = values
        elif complete:  # one θ shared by every group
            out[base] = values[..., 0]
        elif match:
            out[name] = values[..., 0]
        else:
            for j, label in enumerate(labels[:max_theta]):
                out[f"{base}[{label}]"] = values[..., j]
    return out


def _group_index(labels: list[str], name: str, group: str) -> int:
    """Where ``group`` is among the labels (an error listing some of them if nowhere)."""
    if group not in labels:
        shown = ", ".join(repr(s) for s in labels[:8])
        more = "" if len(labels) <= 8 else f", … ({len(labels)} in all)"
        raise SpecificationError(f"no group {group!r} in {name}; the groups are {shown}{more}")
    return labels.index(group)


@dataclass(frozen=True)
class _Entry:
    """One scalar of a mixed-model variable: its name, where it sits, and its group level."""

    name: str
    index: tuple[int, ...]
    level: str | None = None


def _canonical(inner: str) -> str:
    """``308,Days`` → ``308, Days``: the separator of the summary's names."""
    return re.sub(r"\s*,\s*", ", ", inner.strip())


def _mixed_entries(fit: MixedFit, base: str) -> list[_Entry]:
    """Every scalar of posterior variable ``base``, named as :meth:`MixedFit.summary`
    names it (group effects as ``r_F[level, effect]``), in the posterior's order."""
    var = fit.posterior[base]
    dims = [d for d in var.dims if d not in ("chain", "draw")]
    coords = [[str(v) for v in var.coords[d].values] for d in dims]
    if not dims:
        return [_Entry(base, ())]
    if base.startswith("cor_") and len(dims) == 2:  # each pair once, as in the summary
        names = coords[0]
        return [_Entry(f"{base}[{names[i]}, {names[j]}]", (i, j))
                for i in range(len(names)) for j in range(i)]
    if base.startswith("r_") and len(dims) == 2:  # (level, effect)
        levels, effects = coords
        return [_Entry(f"{base}[{level}, {effect}]", (i, j), level)
                for i, level in enumerate(levels) for j, effect in enumerate(effects)]
    if len(dims) == 1:
        per_level = _PER_LEVEL if fit.model.pooling == "none" else None
        out = []
        for i, label in enumerate(coords[0]):
            match = per_level.match(label) if per_level else None
            out.append(_Entry(f"{base}[{label}]", (i,), match["level"] if match else None))
        return out
    raise SpecificationError(f"cannot trace {base!r}, a variable with dims {dims}")


#: a no-pooling coefficient of one level: ``Days[308]`` or ``Days|Subject[308]``
_PER_LEVEL = re.compile(r"^(?P<effect>.+)\[(?P<level>[^\[\]]+)\]$")


def _take(values: NDArray, entry: _Entry) -> NDArray:
    """The (chain, draw) draws of one entry of a variable's draws."""
    index: tuple[Any, ...] = (slice(None), slice(None), *entry.index)
    return np.asarray(values[index])


def _first_levels(entries: list[_Entry], max_theta: int) -> list[_Entry]:
    """The entries of no level, and those of the first levels: as many whole levels as fit
    in ``max_theta`` entries, at least one."""
    levels = list(dict.fromkeys(e.level for e in entries if e.level is not None))
    if not levels:
        return entries
    per_level = sum(e.level == levels[0] for e in entries)
    keep = set(levels[:max(1, max_theta // per_level)])
    return [e for e in entries if e.level is None or e.level in keep]


def _resolve_any(posterior: Any, var_names: Sequence[str] | None,
                 max_theta: int) -> dict[str, NDArray]:
    """Any posterior (NIG, nested, custom): whole variables, those with dimensions cut to
    their first ``max_theta`` elements, named ``name[label, …]``; by default the scalars,
    then the vectors' first elements, :data:`DEFAULT_ROWS` rows at most."""
    default = var_names is None
    if var_names is None:
        var_names = sorted((str(v) for v in posterior.data_vars),
                           key=lambda v: posterior[v].ndim > 2)  # scalars first
    elif isinstance(var_names, str):
        var_names = [var_names]
    out: dict[str, NDArray] = {}
    for name in var_names:
        if name not in posterior:
            valid = ", ".join(str(v) for v in posterior.data_vars)
            raise SpecificationError(f"no variable {name!r} in the posterior; it has {valid}")
        variable = posterior[name]
        extra = [d for d in variable.dims if d not in ("chain", "draw")]
        values = np.asarray(variable.transpose("chain", "draw", *extra).values)
        flat = values.reshape(*values.shape[:2], -1)
        labels = [", ".join(str(variable[d].values[i]) if d in variable.coords else str(i)
                            for d, i in zip(extra, index, strict=True))
                  for index in np.ndindex(*values.shape[2:])]
        for k, label in enumerate(labels[:max_theta]):
            out[f"{name}[{label}]" if extra else str(name)] = flat[..., k]
    if default:
        out = dict(list(out.items())[:DEFAULT_ROWS])
    return out


def _resolve_mixed(fit: MixedFit, var_names: Sequence[str] | None,
                   max_theta: int) -> dict[str, NDArray]:
    """A mixed fit's variables: ``b``, ``sigma``, ``sd_F``, ``cor_F``, ``r_F`` whole (the
    grouped ones cut to their first levels) or one scalar, e.g. ``r_F[level, effect]``."""
    posterior = fit.posterior
    if var_names is None:
        order = ("b", "sigma", "phi", "sd_", "cor_", "r_")
        present = [str(v) for v in posterior.data_vars]
        var_names = [v for prefix in order for v in present
                     if v == prefix or (prefix.endswith("_") and v.startswith(prefix))]
    elif isinstance(var_names, str):
        var_names = [var_names]
    out: dict[str, NDArray] = {}
    for name in var_names:
        match = _INDEXED.match(name)
        base = match["name"] if match else name
        values = fit.draws(base)  # raises with the valid names
        entries = _mixed_entries(fit, base)
        if match is None:
            for entry in _first_levels(entries, max_theta):
                out[entry.name] = _take(values, entry)
            continue
        if not entries[0].index:
            raise SpecificationError(f"{base!r} is a single number; ask for {base!r}")
        wanted = _canonical(match["group"])
        found = [e for e in entries if e.name == f"{base}[{wanted}]"]
        if not found and base.startswith("cor_"):  # either order of the pair
            pair = wanted.split(", ")
            found = [e for e in entries if e.name == f"{base}[{', '.join(pair[::-1])}]"]
        if not found and base.startswith("r_"):  # a level alone: all its effects
            found = [e for e in entries if e.level == wanted]
        if not found:
            raise SpecificationError(_unknown_entry(base, wanted, entries))
        for entry in found:
            out[entry.name] = _take(values, entry)
    return out


def _unknown_entry(base: str, wanted: str, entries: list[_Entry]) -> str:
    if base.startswith("r_"):
        var = base
        levels = list(dict.fromkeys(e.level for e in entries))
        effects = list(dict.fromkeys(e.name.rpartition(", ")[2][:-1] for e in entries))
        shown = ", ".join(repr(s) for s in levels[:8])
        more = "" if len(levels) <= 8 else f", … ({len(levels)} in all)"
        return (f"no {var}[{wanted}]; name a level and an effect, {var}[level, effect], "
                f"or a level alone: the levels are {shown}{more}, the effects "
                f"{', '.join(effects)}")
    shown = ", ".join(e.name for e in entries[:12])
    more = "" if len(entries) <= 12 else f", … ({len(entries)} in all)"
    return f"no {base}[{wanted}]; {base} has {shown}{more}"


def trace_data(
    fit: Fit, var_names: Sequence[str] | None = None, *, max_theta: int = 3
) -> TraceData:
    """Draws, pooled ranks and diagnostics of the variables a trace plot shows.

    Parameters
    ----------
    fit
        A fit of any kind whose method gives draws.
    var_names
        Variables to show. For a rate or normal fit: names such as ``"alpha"``, ``"mu"``,
        ``"theta"`` (its first ``max_theta`` groups) or ``"theta[label]"`` (one group);
        default α, β and μ when the fit has them, then the first θs. For a MixedFit: a whole
        variable,
        ``"b"``, ``"sigma"``, ``"sd_Subject"``, ``"cor_Subject"`` (each pair once) or
        ``"r_Subject"`` (the effects of its first levels), or one number named as in the
        summary, ``"b[Days]"``, ``"sd_Subject[Days]"``, ``"cor_Subject[Days, Intercept]"``,
        with group effects as ``"r_Subject[308, Days]"`` (level, effect) or
        ``"r_Subject[308]"`` (all effects of level 308); default ``b``, ``sigma``, the
        ``sd_``, the ``cor_``, then the ``r_`` variables.
    max_theta
        How many groups ``"theta"`` expands to. For a MixedFit, how many numbers a grouped
        variable (``r_Subject``; ``b`` under no pooling, whose per-level coefficients
        ``Days[308]`` count as grouped) expands to, in whole levels and at least one: with
        two effects per level the default 3 shows the first level.

    Returns
    -------
    TraceData
        See :class:`TraceData`.
    """
    from scipy.stats import rankdata  # 0.5-1.5 s to import: only where a trace is drawn

    fit = _check(fit)
    if not isinstance(max_theta, (int, np.integer)) or max_theta < 1:
        raise SpecificationError(f"max_theta must be an integer ≥ 1, got {max_theta!r}")
    selected = _resolve(fit, var_names, max_theta)
    if var_names is None:  # fixed values (empirical-Bayes estimates) have nothing to trace
        selected = {k: v for k, v in selected.items() if np.ptp(v) > 0} or selected
    if not selected:
        raise SpecificationError("var_names is empty: name at least one variable")
    chains, per_chain = next(iter(selected.values())).shape
    rows = []
    for name, values in selected.items():
        ranks = rankdata(values.ravel(), method="average").reshape(values.shape)
        rows.append(pd.DataFrame({
            "variable": name,
            "chain": np.repeat(np.arange(chains), per_chain),
            "draw": np.tile(np.arange(per_chain), chains),
            "value": values.ravel(),
            "rank": ranks.ravel(),
        }))
    diagnostics = _diagnostics(selected, chains)
    bins = int(np.clip(round(per_chain / 20), 5, 30)) if per_chain >= 5 else 1
    return TraceData(pd.concat(rows, ignore_index=True), diagnostics, bins, chains, per_chain)


def _diagnostics(selected: dict[str, NDArray], chains: int) -> pd.DataFrame:
    """R-hat and bulk ESS of each variable (ArviZ's), NaN where they do not apply."""
    names = list(selected)
    r_hat = np.full(len(names), np.nan)
    ess = np.full(len(names), np.nan)
    varying = [i for i, n in enumerate(names) if np.ptp(selected[n]) > 0]
    if varying and selected[names[0]].shape[1] >= 4:
        dataset = xr.Dataset({
            f"v{i}": (("chain", "draw"), selected[names[i]]) for i in varying
        })
        result = _arviz.diagnostics(dataset)
        for i in varying:
            ess[i] = float(result["ess_bulk"][f"v{i}"])
            if chains >= 2:
                r_hat[i] = float(result["r_hat"][f"v{i}"])
    return pd.DataFrame({"variable": names, "r_hat": r_hat, "ess_bulk": ess})


def display_name(name: str) -> str:
    """``theta[12]`` → ``θ[12]``, ``mu`` → ``μ``."""
    match = _INDEXED.match(name)
    if match:
        return f"{SYMBOLS.get(match['name'], match['name'])}[{match['group']}]"
    return SYMBOLS.get(name, name)


def plot_trace(
    fit: Fit, var_names: Sequence[str] | None = None, *, max_theta: int = 3
) -> Figure:
    """Trace (left) and rank histogram (right) of each variable, all chains overlaid.

    The trace shows each chain's draws in order; the rank plot histograms, per chain, the
    ranks of that chain's draws among all draws pooled. Chains that sample the same
    distribution give flat, overlapping rank histograms (Vehtari et al. 2021, *Bayesian
    Analysis* 16:667). Independent draws (method ``exact``) look like white noise; this
    is the check that they do.

    Parameters
    ----------
    fit
        A fit of any kind whose method gives draws.
    var_names, max_theta
        The variables to show; see :func:`trace_data`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with two axes per variable.
    """
    data = trace_data(fit, var_names, max_theta=max_theta)
    names = list(dict.fromkeys(data.draws["variable"]))
    count = len(names)
    with style():
        fig, axes = new_figure(count, 2, figsize=(10.0, 0.9 + 1.9 * count),
                               width_ratios=(2.2, 1.0))
        edges = np.linspace(0.5, data.chains * data.draws_per_chain + 0.5, data.bins + 1)
        expected = data.draws_per_chain / data.bins
        diag = data.diagnostics.set_index("variable")
        resampled = not fit.is_mcmc and "importance_ess" in fit.info
        if resampled:  # resampled draws repeat: the weights' ESS, and no R̂
            diag = diag.assign(r_hat=np.nan, ess_bulk=float(fit.info["ess"]))
        for i, name in enumerate(names):
            part = data.draws[data.draws["variable"] == name]
            trace_ax, rank_ax = axes[i]
            top = 0
            for chain, group in part.groupby("chain"):
                colour = PALETTE[int(chain) % len(PALETTE)]
                trace_ax.plot(group["draw"], group["value"], color=colour, lw=0.6, alpha=0.75,
                              label=f"chain {int(chain) + 1}")
                counts, _ = np.histogram(group["rank"], bins=edges)
                rank_ax.stairs(counts, edges, baseline=None, color=colour, lw=1.3)
                top = max(top, int(counts.max()))
            rank_ax.axhline(expected, color=GREY, ls="--", lw=1)
            rank_ax.set_ylim(0, 1.1 * top)
            label = display_name(name)
            r_hat, ess = diag.loc[name, "r_hat"], diag.loc[name, "ess_bulk"]
            stats = []
            if np.isfinite(r_hat):
                stats.append(f"R̂ = {r_hat:.3f}")
            if np.isfinite(ess):
                stats.append(f"{'ESS' if resampled else 'bulk ESS'} = "
                             f"{ess:,.0f}")
            trace_ax.set_title(f"{label}" + (f"   ({', '.join(stats)})" if stats else ""),
                               loc="left", fontsize=10)
            rank_ax.set_title(f"ranks of {label}", loc="left", fontsize=10)
            rank_ax.set_yticks([])
            rank_ax.set_xlim(edges[0], edges[-1])
            rank_ax.grid(False)
            if i < count - 1:
                trace_ax.tick_params(labelbottom=False)
                rank_ax.tick_params(labelbottom=False)
        axes[-1, 0].set_xlabel("draw")
        axes[-1, 1].set_xlabel("rank among all draws (dashed: uniform)")
        if data.chains > 1:
            handles, labels = axes[0, 0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center",
                       ncol=min(data.chains, 8), frameon=False)
        kind = ("Markov chain" if fit.is_mcmc else "resampled importance draws" if resampled
                else "independent draws")
        fig.suptitle(f"Trace and rank plots — {_describe(fit)} "
                     f"({kind}: {data.chains} × {data.draws_per_chain:,})")
    return fig


__all__ = ["TraceData", "display_name", "plot_trace", "trace_data"]
