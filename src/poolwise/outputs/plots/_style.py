"""The look shared by the poolwise plots, and small helpers used by several of them.

matplotlib is imported inside the functions, so importing :mod:`poolwise.plots` stays light.
Figures are made with :class:`matplotlib.figure.Figure` directly, not through pyplot, so
nothing is registered with a GUI backend and no global figure state is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from poolwise.kinds.conjugate import ConjugateFit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe–Ito colours, distinguishable under the common colour-vision deficiencies
BLUE, ORANGE, GREEN, VERMILLION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
PURPLE, SKY, GREY = "#CC79A7", "#56B4E9", "#555555"
PALETTE = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, "#000000", "#F0E442")
#: fixed colours per pooling level, so the same level looks the same in every figure
POOLING_COLOURS = {"none": ORANGE, "complete": GREEN, "partial": BLUE}

#: DejaVu Sans (matplotlib's own), then fonts with CJK glyphs on Linux, macOS and Windows
FALLBACK_FONTS = ("DejaVu Sans", "Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans",
                  "WenQuanYi Zen Hei", "Droid Sans Fallback", "PingFang SC",
                  "Hiragino Sans", "Microsoft YaHei", "Yu Gothic", "Malgun Gothic",
                  "Arial Unicode MS")

#: matplotlib settings applied while a figure is built
STYLE: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    # rates such as 1e-4 deaths per person get a 1e−4 offset, not six decimals; as plain
    # text: mathtext would parse every tick label (~10 ms each, 2 s for a fit's figures)
    "axes.formatter.limits": (-3, 4),
    "axes.formatter.use_mathtext": False,
}


@cache
def font_families() -> list[str]:
    """The :data:`FALLBACK_FONTS` installed here. Group names in Chinese, Japanese or Korean:
    matplotlib takes each glyph from the first family that has it (with none, it warns of
    the missing glyphs). Only installed ones, since matplotlib logs a line for every family
    it cannot find, at every text it draws; the list itself, not the generic "sans-serif",
    since a figure saved after the style's context would look that up in the user's
    settings."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [family for family in FALLBACK_FONTS if family in installed] or ["DejaVu Sans"]


@contextmanager
def style() -> Iterator[None]:
    """Apply :data:`STYLE` and :func:`font_families` while the artists of a figure are
    created."""
    import matplotlib as mpl

    settings: dict[Any, Any] = {**STYLE, "font.family": font_families()}
    with mpl.rc_context(settings):
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure and its axes as a 2-D array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given axes and the figure that holds them, or a new figure with one axes."""
    if ax is None:
        fig, axes = new_figure(figsize=figsize)
        return fig, axes[0, 0]
    root = ax.get_figure(root=True)
    if root is None:
        raise TypeError("ax must belong to a figure")
    return root, ax


def check_fit(fit: Any, name: str = "fit") -> ConjugateFit:
    if not isinstance(fit, ConjugateFit):
        raise TypeError(f"{name} must be a fit of per-group rates or estimates (a ConjugateFit), "
                        f"not {type(fit).__name__}")
    return fit


def describe(fit: ConjugateFit) -> str:
    """"partial pooling, exact" — what produced the estimates, for subtitles."""
    return f"{fit.model.pooling_phrase}, {fit.method}"


def format_count(value: float) -> str:
    """A group size for labels: 20, 12.5, 1,234 (sizes of 100 or more are rounded)."""
    value = float(value)
    if value >= 100 or value == round(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_value(value: float, digits: int = 3) -> str:
    """A rate for labels: 0.143, 12.5, or 1.04×10⁻⁴ for very small or large values."""
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}"
    exponent = int(np.floor(np.log10(abs(value))))
    mantissa = value / 10.0**exponent
    return f"{mantissa:.{digits - 1}f}×10{str(exponent).translate(_SUPERSCRIPT)}"


def interval_limits(points: np.ndarray, lower: np.ndarray, upper: np.ndarray
                    ) -> tuple[float, float]:
    """Axis limits that show every point and interval but the extreme ones.

    The core is the range of the values (points and interval ends) between their 5th and
    95th percentiles; a value more than the core's width beyond it is extreme and left past
    the edge (the plots mark it), so that one huge interval does not squash the rest.
    Without extreme values the limits are the full range. A 4% margin is added.
    """
    values = np.concatenate([np.asarray(v, dtype=float).ravel()
                             for v in (points, lower, upper)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.quantile(values, [0.05, 0.95])
    width = high - low if high > low else max(abs(float(high)), 1.0)
    kept = values[(values >= low - width) & (values <= high + width)]
    lo, hi = float(kept.min()), float(kept.max())
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def draw_intervals(ax: Axes, y: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   limits: tuple[float, float], **style: Any) -> int:
    """Horizontal intervals at heights ``y``, cut at ``limits``, with an arrow head where one
    runs past the edge; returns how many run past."""
    lo, hi = limits
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    ax.hlines(y, np.maximum(lower, lo), np.minimum(upper, hi), **style)
    colour = style.get("color", "black")
    past = 0
    for side, marker, edge in ((lower < lo, "<", lo), (upper > hi, ">", hi)):
        if side.any():
            ax.plot(np.full(side.sum(), edge), np.asarray(y)[side], marker, color=colour,
                    ms=6, clip_on=False, zorder=5)
            past += int(side.sum())
    ax.set_xlim(lo, hi)
    return past


def percent(ci_prob: float) -> str:
    return f"{100 * ci_prob:g}%"


def theta_table(fit: ConjugateFit, ci_prob: float) -> pd.DataFrame:
    """Posterior mean and interval of θ for every group, in the data's order: the rows of
    :meth:`ConjugateFit.summary` (without its convergence diagnostics, which take seconds
    for thousands of groups). Under complete pooling the one shared θ is repeated for each
    group."""
    labels = fit.data.labels
    if not fit.stores_group_draws and fit.model.pooling != "complete":
        summary = fit.group_summary(ci_prob)
        return pd.DataFrame({"group": labels, "mean": summary.mean, "lower": summary.lower,
                             "upper": summary.upper})
    table = fit.summary(ci_prob, diagnostics=False)
    theta = table[table["param"] == "theta"]
    if fit.model.pooling == "complete":
        row = theta.iloc[0]
        values = {k: np.full(labels.size, float(row[k])) for k in ("mean", "lower", "upper")}
        return pd.DataFrame({"group": labels, **values})
    return pd.DataFrame({"group": labels,
                         **{k: theta[k].to_numpy(dtype=float) for k in ("mean", "lower",
                                                                         "upper")}})


#: groups beyond which a plot of one mark per group draws a random sample of them
MAX_MARKS = 20_000


def sample_marks(table: pd.DataFrame, limit: int = MAX_MARKS) -> tuple[pd.DataFrame, str]:
    """The rows a one-mark-per-group plot draws: all up to ``limit``, else a random
    ``limit`` of them (seeded, in their order), and the words that say so in a title."""
    if len(table) <= limit:
        return table, ""
    keep = np.sort(np.random.default_rng(0).choice(len(table), limit, replace=False))
    return table.iloc[keep], f"; a random {limit:,} drawn"


def target_name(fit: ConjugateFit) -> str:
    """What :func:`pooling_target` is called in legends."""
    return "population mean μ" if fit.model.pooling == "partial" else "pooled estimate θ"


def pooling_target(fit: ConjugateFit) -> tuple[float, str] | None:
    """The value estimates are pulled towards, and its name; None under no pooling.

    Partial pooling: the population mean μ. Complete pooling: the one shared θ.
    """
    if fit.model.pooling == "partial":
        mean = float(fit.population_mean()["mean"])
        if np.isfinite(mean):
            return mean, target_name(fit)
        # a heavy tail leaves μ without a mean: its median is where estimates are pulled
        return fit.medians(["mu"])["mu"], "population median μ (no finite mean)"
    if fit.model.pooling == "complete":
        return float(np.mean(fit.group_draws([0]))), target_name(fit)
    return None


__all__ = [
    "PALETTE",
    "POOLING_COLOURS",
    "STYLE",
    "check_fit",
    "describe",
    "draw_intervals",
    "figure_and_axes",
    "format_count",
    "format_value",
    "interval_limits",
    "new_figure",
    "percent",
    "pooling_target",
    "sample_marks",
    "style",
    "target_name",
    "theta_table",
]
