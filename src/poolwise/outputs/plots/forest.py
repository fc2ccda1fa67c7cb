"""Forest plot: per-group posterior intervals of θ, for one fit or several side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from poolwise.exceptions import SpecificationError
from poolwise.kinds.conjugate import ConjugateFit
from poolwise.outputs.plots._style import (
    GREY,
    PALETTE,
    POOLING_COLOURS,
    check_fit,
    draw_intervals,
    format_count,
    format_value,
    interval_limits,
    new_figure,
    percent,
    pooling_target,
    style,
    theta_table,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _as_fits(fits: ConjugateFit | Mapping[str, ConjugateFit]) -> dict[str, ConjugateFit]:
    if isinstance(fits, ConjugateFit):
        return {fits.model.pooling_phrase: fits}
    if not isinstance(fits, Mapping):
        raise TypeError(
            f"fits must be a ConjugateFit or a dict {{label: ConjugateFit}}, not "
            f"{type(fits).__name__}")
    if not fits:
        raise SpecificationError("fits is empty: give at least one ConjugateFit")
    out = {str(label): check_fit(fit, f"fits[{label!r}]") for label, fit in fits.items()}
    first_label, first = next(iter(out.items()))
    for label, fit in out.items():
        if not np.array_equal(fit.data.labels, first.data.labels):
            raise SpecificationError(
                f"the fits must share their groups: {label!r} has {fit.data.n_groups} "
                f"groups that differ from the {first.data.n_groups} of {first_label!r}"
            )
    return out


def select_groups(
    fit: ConjugateFit, groups: Sequence[str] | None = None, max_groups: int = 40
) -> tuple[np.ndarray, str]:
    """Indices of the groups a forest plot shows, and a note saying which they are.

    All groups when there are at most ``max_groups``; otherwise ``max_groups`` groups
    evenly spaced through the order of the observed rates (the extremes included), shown
    in that order. ``groups`` names them explicitly, in the order given.
    """
    data = fit.data
    labels = np.asarray(data.labels).astype(str)
    if groups is not None:
        if isinstance(groups, str):
            groups = [groups]
        where = {label: i for i, label in enumerate(labels)}
        missing = [g for g in groups if str(g) not in where]
        if missing:
            shown = ", ".join(repr(s) for s in labels[:8])
            more = "" if labels.size <= 8 else f", … ({labels.size} in all)"
            raise SpecificationError(
                f"unknown group(s) {', '.join(repr(g) for g in missing)}; "
                f"the groups are {shown}{more}"
            )
        if not groups:
            raise SpecificationError("groups is empty: name at least one group")
        return np.array([where[str(g)] for g in groups]), f"{len(groups)} chosen groups"
    if not isinstance(max_groups, (int, np.integer)) or max_groups < 1:
        raise SpecificationError(f"max_groups must be an integer ≥ 1, got {max_groups!r}")
    if labels.size <= max_groups:
        return np.arange(labels.size), f"all {labels.size} groups"
    raw = fit.model.family.raw_rate(data.y, data.n)
    order = np.lexsort((data.n, raw))  # by raw rate, ties by size
    picks = np.unique(np.round(np.linspace(0, labels.size - 1, max_groups)).astype(int))
    return order[picks], (f"{picks.size} of {labels.size:,} groups, "
                          "evenly spaced by observed rate")


def forest_data(
    fits: ConjugateFit | Mapping[str, ConjugateFit],
    *,
    ci_prob: float = 0.95,
    groups: Sequence[str] | None = None,
    max_groups: int = 40,
) -> pd.DataFrame:
    """Posterior intervals of θ per group and fit, for :func:`plot_forest`.

    Parameters
    ----------
    fits
        One :class:`~poolwise.kinds.conjugate.ConjugateFit`, or a dict
        ``{label: ConjugateFit}`` of fits to the same groups (e.g. ``{"none": ...,
        "complete": ..., "partial": ...}``).
    ci_prob
        Probability of the equal-tailed intervals.
    groups
        Labels of the groups to show, in order; default all, or ``max_groups`` of them
        evenly spaced by observed rate when there are more.
    max_groups
        Most groups shown when ``groups`` is not given.

    Returns
    -------
    pandas.DataFrame
        One row per (fit, group) with columns ``model`` (the label), ``row`` (0 at the top),
        ``group``, ``n``, ``raw`` (y/n), ``mean``, ``lower``, ``upper``. A complete-pooling
        fit has its one shared interval repeated for each group.
    """
    named = _as_fits(fits)
    first = next(iter(named.values()))
    index, _ = select_groups(first, groups, max_groups)
    data = first.data
    raw = first.model.family.raw_rate(data.y, data.n)
    parts = []
    for label, fit in named.items():
        table = theta_table(fit, ci_prob).iloc[index].reset_index(drop=True)
        parts.append(pd.DataFrame({
            "model": label,
            "row": np.arange(index.size),
            "group": table["group"].to_numpy(),
            "n": data.n[index],
            "raw": raw[index],
            "mean": table["mean"].to_numpy(),
            "lower": table["lower"].to_numpy(),
            "upper": table["upper"].to_numpy(),
        }))
    return pd.concat(parts, ignore_index=True)


def _colours(named: Mapping[str, ConjugateFit]) -> dict[str, str]:
    """One colour per fit: the pooling level's colour while those are distinct."""
    poolings = [fit.model.pooling for fit in named.values()]
    if len(set(poolings)) == len(poolings):
        return {label: POOLING_COLOURS[fit.model.pooling] for label, fit in named.items()}
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(named)}


def plot_forest(
    fits: ConjugateFit | Mapping[str, ConjugateFit],
    *,
    ci_prob: float = 0.95,
    groups: Sequence[str] | None = None,
    max_groups: int = 40,
) -> Figure:
    """Per-group posterior intervals of θ, one row per group, fits side by side.

    Each fit gets its own colour and a small vertical offset within each row; the raw
    rate y/n of each group is marked with a black ×, and the population mean of each
    partial-pooling fit with a dotted vertical line in its colour.

    Parameters
    ----------
    fits
        One :class:`~poolwise.kinds.conjugate.ConjugateFit`, or a dict
        ``{label: ConjugateFit}`` of fits to the same groups, such as the three pooling levels.
    ci_prob
        Probability of the equal-tailed intervals, default 0.95.
    groups
        Labels of the groups to show; see :func:`forest_data`.
    max_groups
        Most groups shown when ``groups`` is not given (the title says which are shown).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.
    """
    named = _as_fits(fits)
    first = next(iter(named.values()))
    _, note = select_groups(first, groups, max_groups)
    table = forest_data(named, ci_prob=ci_prob, groups=groups, max_groups=max_groups)
    colours = _colours(named)
    count = int(table["row"].max()) + 1
    k = len(named)
    offsets = np.linspace(-0.22, 0.22, k) if k > 1 else np.zeros(1)
    row_height = 0.2 + 0.05 * k
    with style():
        fig, axes = new_figure(figsize=(7.5, min(2.2 + row_height * count, 30.0)))
        ax = axes[0, 0]
        handles: list = []
        lines: list = []
        pooled = _pooled_rows(first, ci_prob) if k == 1 else []
        limits = interval_limits(
            np.concatenate([table["mean"], table["raw"], [p[1] for p in pooled]]),
            np.concatenate([table["lower"], [p[2] for p in pooled]]),
            np.concatenate([table["upper"], [p[3] for p in pooled]]))
        past = 0
        for (label, fit), offset in zip(named.items(), offsets, strict=True):
            part = table[table["model"] == label]
            y = part["row"].to_numpy() + offset
            colour = colours[label]
            past += draw_intervals(ax, y, part["lower"], part["upper"], limits, color=colour,
                                   lw=1.8, alpha=0.9)
            handles.append(ax.plot(part["mean"], y, "o", color=colour, ms=4.5, label=label)[0])
            target = pooling_target(fit) if fit.model.pooling == "partial" else None
            if target is not None:
                lines.append(ax.axvline(target[0], color=colour, ls=":", lw=1.2,
                                        label=f"{label}: {target[1]} = {format_value(target[0])}"))
        for _, row in table.iterrows():  # a mean or raw rate past the edge: its value there
            outside = [f"{name} {format_value(row[key])}" for key, name in
                       (("mean", "mean"), ("raw", "observed"))
                       if not limits[0] <= row[key] <= limits[1]]
            if outside:
                right = row["mean"] > limits[1] or row["raw"] > limits[1]
                ax.annotate(", ".join(outside) + (" →" if right else ""),
                            (limits[1] if right else limits[0], row["row"]),
                            xytext=(-9 if right else 9, 0), textcoords="offset points",
                            ha="right" if right else "left", va="center", fontsize=7,
                            color=GREY, bbox={"facecolor": "white", "edgecolor": "none",
                                              "pad": 0.5})
        rows = table.drop_duplicates("row")
        handles += ax.plot(rows["raw"], rows["row"], "x", color="black", ms=6, mew=1.4,
                           label=f"observed {first.model.family.raw_label}", zorder=4)
        family = first.model.family
        ticks = [f"{g}  ({format_count(n)})" for g, n in zip(rows["group"], rows["n"],
                                                             strict=True)]
        positions = list(rows["row"])
        for row, (label, mean, lower, upper, diamond) in enumerate(pooled, start=count):
            at = row + 0.4  # a little apart from the studies
            if diamond:  # the pooled effect, as meta-analyses draw it
                ax.fill([lower, mean, upper, mean], [at, at - 0.3, at, at + 0.3],
                        color=colours[next(iter(named))], alpha=0.9)
            else:  # the prediction interval of a new study's true effect
                ax.hlines(at, lower, upper, color="black", lw=2.4)
                ax.plot([mean], [at], "o", color="white", mec="black", ms=5)
            positions.append(at)
            ticks.append(label)
        ax.set_yticks(positions, ticks, fontsize=10 if count <= 30 else 8)
        ax.set_ylim(count + len(pooled) - 0.2 if pooled else count - 0.5, -0.5)
        ax.grid(False, axis="y")
        ax.set_ylabel(f"{first.data.group_name}  ({family.size_label} {family.size_symbol})")
        ax.set_xlabel(first.model.family.theta_label)
        methods = sorted({fit.method for fit in named.values()})
        beyond = "" if not past else (
            f"\n{past} interval{' runs' if past == 1 else 's run'} past the edge (arrow)")
        ax.set_title(f"{percent(ci_prob)} posterior intervals of θ by {first.data.group_name}\n"
                     f"{note}; method {', '.join(methods)}{beyond}")
        fig.legend(handles=handles + lines, loc="outside lower center",
                   ncol=min(len(handles) + len(lines), 5), frameon=False)
    return fig


def _pooled_rows(fit: ConjugateFit, ci_prob: float
                 ) -> list[tuple[str, float, float, float, bool]]:
    """A meta-analysis's last rows: the pooled effect μ (a diamond) and the prediction
    interval of a new study's true effect θ_new, for a partially pooled normal fit."""
    if fit.model.family.name != "normal" or fit.model.pooling != "partial":
        return []
    table = fit.summary(ci_prob, diagnostics=False).set_index("param")
    rows = []
    for name, label, diamond in (("mu", "pooled effect μ", True),
                                 ("theta_new", "prediction (a new study's θ)", False)):
        if name in table.index and np.isfinite(table.loc[name, "lower"]):
            row = table.loc[name]
            rows.append((label, float(row["mean"]), float(row["lower"]),
                         float(row["upper"]), diamond))
    return rows


__all__ = ["forest_data", "plot_forest", "select_groups"]
