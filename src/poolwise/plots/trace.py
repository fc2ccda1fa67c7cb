"""Trace and rank plots of posterior draws, one row per variable."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy.stats import rankdata

from poolwise import _arviz
from poolwise.exceptions import SpecificationError
from poolwise.fit import Fit
from poolwise.plots._style import GREY, PALETTE, check_fit, describe, new_figure, style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def _resolve(fit: Fit, var_names: Sequence[str] | None, max_theta: int) -> dict[str, NDArray]:
    """Variable name → draws (chain, draw), expanding ``theta`` to its first groups."""
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
        values = fit.draws(base)  # raises with the valid names
        if values.ndim == 2:
            if match:
                raise SpecificationError(f"{base!r} has no groups; ask for {base!r}")
            out[name] = values
        elif complete:  # one θ shared by every group
            out[base] = values[..., 0]
        elif match:
            if match["group"] not in labels:
                shown = ", ".join(repr(s) for s in labels[:8])
                more = "" if len(labels) <= 8 else f", … ({len(labels)} in all)"
                raise SpecificationError(
                    f"no group {match['group']!r} in {base}; the groups are {shown}{more}"
                )
            out[name] = values[..., labels.index(match["group"])]
        else:
            for j, label in enumerate(labels[:max_theta]):
                out[f"{base}[{label}]"] = values[..., j]
    return out


def trace_data(
    fit: Fit, var_names: Sequence[str] | None = None, *, max_theta: int = 3
) -> TraceData:
    """Draws, pooled ranks and diagnostics of the variables a trace plot shows.

    Parameters
    ----------
    fit
        A fitted model, any method.
    var_names
        Variables to show: names such as ``"alpha"``, ``"mu"``, ``"theta"`` (its first
        ``max_theta`` groups) or ``"theta[label]"`` (one group). Default: α, β and μ when
        the fit has them, then the first θs.
    max_theta
        How many groups ``"theta"`` expands to.

    Returns
    -------
    TraceData
        See :class:`TraceData`.
    """
    fit = check_fit(fit)
    if not isinstance(max_theta, (int, np.integer)) or max_theta < 1:
        raise SpecificationError(f"max_theta must be an integer ≥ 1, got {max_theta!r}")
    selected = _resolve(fit, var_names, max_theta)
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
        A fitted model, any method.
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
                stats.append(f"bulk ESS = {ess:,.0f}")
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
        kind = "Markov chain" if fit.is_mcmc else "independent draws"
        fig.suptitle(f"Trace and rank plots — {describe(fit)} "
                     f"({kind}: {data.chains} × {data.draws_per_chain:,})")
    return fig


__all__ = ["TraceData", "display_name", "plot_trace", "trace_data"]
