"""One self-contained HTML page of a fit or of a comparison, for every kind.

The page is written for a reader in the order they need it: the question and the data,
the model (equations, plate diagram, priors as used, the method and why), the
diagnostics, the results, the figures, the predictive check, the predictions and
decision answers that were asked for, the pooling, and where it all came from.

Everything is inside the one file: CSS inline, figures as ``data:`` URIs, no script, no
font or style sheet fetched from anywhere, so it opens offline and can be e-mailed. The
template is rendered by jinja2 with autoescaping on: a group named
``<script>alert(1)</script>`` is shown as text, never run.

The figures are the files :func:`poolwise.outputs.writer.write_fit` (or
:func:`~poolwise.outputs.writer.write_comparison`) left in the output directory; a figure
the page does not know is still shown, under "Other figures".
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from poolwise.kinds.calibration import Calibration
    from poolwise.outputs.writer import Decisions
    from poolwise.results.comparison import Comparison, LooComparison
    from poolwise.results.fit import Fit
    from poolwise.results.prediction import Prediction

__all__ = ["REPORT_NAME", "Provenance", "calibration_report", "comparison_report", "fit_report"]

#: the report's file name in an output directory
REPORT_NAME = "report.html"
#: the tree attribute that holds a fit's :class:`Provenance`
PROVENANCE_ATTR = "provenance"
#: the most rows of a table the page shows (all are in the CSV files)
MAX_ROWS = 200
#: groups listed under "Ranked first" in the Decisions section when ranks were asked for
RANKED_SHOWN = 10

#: the figures the page knows: file name (or its start) → (section, caption)
FIGURES: dict[str, tuple[str, str]] = {
    "trace.png": ("diagnostics", "Trace and rank plots of the Markov chains or draws."),
    "shrinkage.png": ("figures", "Shrinkage: each group's own estimate against its "
                                 "partially pooled estimate."),
    "shrinkage_arrows.png": ("figures", "Each group's estimate moving from its own data "
                                        "towards the population."),
    "forest.png": ("figures", "Forest plot: each group's interval."),
    "group_effects": ("figures", "Group effects with their intervals."),
    "group_lines.png": ("figures", "Each group's fitted line."),
    "conditional_effects.png": ("figures", "Conditional effects: each predictor across its "
                                           "range, the others at reference values."),
    "population_mean.png": ("figures", "The population mean."),
    "tau.png": ("figures", "The between-group standard deviation τ."),
    "new_group.png": ("figures", "What a new group looks like."),
    "ppc.png": ("check", "Posterior predictive check: the observed statistics against "
                         "their replicated distributions."),
    "ranks.png": ("decisions", "Posterior ranks with their intervals."),
    "calibration.png": ("calibration", "Calibration: each parameter's ECDF of normalised "
                                       "ranks less the uniform's, with its simultaneous "
                                       "band (or the coverage of empirical Bayes)."),
}


# ------------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class Provenance:
    """Where a fit came from: enough to run it again and to know it is the same data."""

    poolwise: str
    python: str
    date: str
    seed: int | None = None
    command: str | None = None
    input: str | None = None
    #: SHA-256 of the input file; None for a bundled dataset or a table from Python
    input_sha256: str | None = None
    #: the input's size and the columns used, e.g. {"rows": 71, "y": "y", "n": "n"}
    data: dict[str, Any] = field(default_factory=dict)
    #: the notes printed about the data (rows dropped or summed …)
    notes: tuple[str, ...] = ()
    #: the warnings the fit gave (shown again in a saved fit's report)
    warnings: tuple[str, ...] = ()

    @classmethod
    def now(cls, *, seed: int | None = None, command: Sequence[str] | None = None,
            input: str | None = None, data: Mapping[str, Any] | None = None,
            notes: Sequence[str] = (), warnings: Sequence[str] = ()) -> Provenance:
        """This run's provenance; the input is hashed when it is a file."""
        from poolwise._version import __version__

        path = Path(input) if input is not None else None
        digest = (hashlib.sha256(path.read_bytes()).hexdigest()
                  if path is not None and path.is_file() else None)
        return cls(poolwise=__version__, python=platform.python_version(),
                   date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), seed=seed,
                   command=None if command is None else " ".join(_quoted(command)),
                   input=input, input_sha256=digest, data=dict(data or {}),
                   notes=tuple(notes), warnings=tuple(warnings))

    def store(self, tree: xr.DataTree) -> None:
        """Keep this provenance in a fit's tree (saved with it)."""
        tree.attrs[PROVENANCE_ATTR] = json.dumps(asdict(self))

    @classmethod
    def of(cls, tree: xr.DataTree) -> Provenance | None:
        """The provenance stored in a fit's tree; None for a fit made in Python."""
        text = tree.attrs.get(PROVENANCE_ATTR)
        if text is None:
            return None
        stored = json.loads(text)
        for key in ("notes", "warnings"):
            stored[key] = tuple(stored.get(key, ()))
        return cls(**stored)


def _quoted(words: Sequence[str]) -> list[str]:
    import shlex

    return [shlex.quote(str(word)) for word in words]


# ------------------------------------------------------------------------- the pages
def fit_report(directory: Path, fit: Fit, *, summary: pd.DataFrame, check: pd.DataFrame,
               predictions: Sequence[Prediction] = (), decisions: Decisions | None = None,
               messages: Sequence[str] = (), ci_prob: float = 0.95,
               provenance: Provenance | None = None) -> str:
    """The HTML page of ``fit``, with the figures found in ``directory``."""
    from poolwise.outputs.writer import (
        describe_infinite_moments,
        likelihood_lines,
        prediction_table,
    )
    from poolwise.results.checks import describe_extreme, extreme_groups

    provenance = provenance or Provenance.of(fit.tree)
    if provenance is not None:  # the fit's own warnings, then those of this report
        messages = list(dict.fromkeys([*provenance.warnings, *messages]))
    from poolwise.inference.eb_intervals import corrected

    pareto = _pareto(fit)
    problems = [*fit.diagnostics(), *_loo_problem(pareto)]
    figures = _figures(directory)
    context = {
        "title": fit.title(),
        "name": _data_name(provenance),
        "kind": fit.kind,
        "facts": _facts(fit, provenance),
        # a fit made in Python has no provenance: its notes, and where its draws are
        "notes": list(provenance.notes if provenance is not None else
                      [*getattr(fit.data, "notes", ()),
                       *filter(None, [fit.draws_note()])]),
        "equations": [_equation(line) for line in fit.equations()],
        "graph": _plate_diagram(figures),
        "priors": fit.prior_statements(),
        "implied_pooling": fit.implied_pooling(),
        "method": _method(fit),
        "diagnostics": _diagnostic_rows(fit, summary, pareto),
        "problems": problems,
        "warnings": [m for m in messages if m not in problems],
        "summary": _table(summary),
        "summary_rows": len(summary),
        "infinite_moments": describe_infinite_moments(fit),
        "point_estimates": fit.method.startswith("eb-"),
        "eb_corrected": corrected(fit.interval_notes(ci_prob)),
        "intervals": list(fit.interval_notes(ci_prob).items()),
        "likelihood": likelihood_lines(fit.likelihood_statistics()),
        "pooling": _pooling(summary),
        "check": _table(check[check["group"].isna()].drop(columns="group")),
        "extreme": [describe_extreme(variable, *counts)
                    for variable, counts in extreme_groups(check).items()],
        "predictions": (_table(prediction_table(predictions, ci_prob))
                        if predictions else None),
        "hypotheses": _hypotheses(decisions),
        "pairwise": _pairwise(decisions),
        "ranked": _ranked_first(summary),
        "sections": _sections(figures),
        "provenance": _provenance_rows(fit, provenance),
        "ci": f"{100 * ci_prob:g}%",
    }
    return _render("fit.html.j2", context)


def comparison_report(directory: Path, comparison: Comparison, *,
                      estimates: pd.DataFrame, loo: LooComparison,
                      messages: Sequence[str] = (), ci_prob: float = 0.95,
                      provenance: Provenance | None = None) -> str:
    """The HTML page comparing fits of one data set (pooling levels, formulas or saved
    fits): each model, the PSIS-LOO table with the SE of each difference and what it
    means, the estimates side by side, with the figures found in ``directory``."""
    fits = comparison.fits
    first = next(iter(fits.values()))
    figures = _figures(directory)
    context = {
        "name": _data_name(provenance),
        "title": ("no, complete and partial pooling" if comparison.poolings else
                  f"{len(fits)} models compared"),
        "facts": _facts(first, provenance, model=False),
        "notes": list(provenance.notes if provenance is not None else
                      getattr(first.data, "notes", ())),
        "models": [{"label": label, "title": fit.title(), "priors": fit.prior_statements(),
                    "method": _method(fit), "problems": fit.diagnostics()}
                   for label, fit in fits.items()],
        "criterion": loo.criterion,
        "points": loo.points,
        "predictive": _table(loo.table),
        "verdicts": loo.verdicts(),
        "estimates": _table(estimates),
        "estimate_rows": len(estimates),
        "warnings": list(messages),
        "sections": _sections(figures),
        "provenance": _provenance_rows(first, provenance),
        "ci": f"{100 * ci_prob:g}%",
    }
    return _render("comparison.html.j2", context)


def calibration_report(directory: Path, calibration: Calibration, *, title: str,
                       provenance: Provenance | None = None) -> str:
    """The HTML page of a calibration (:mod:`poolwise.kinds.calibration`): what was done,
    the verdict, the table and ``calibration.png`` from ``directory``."""
    from poolwise import _version
    from poolwise.kinds.calibration import ALPHA

    rows = ([("poolwise", _version.__version__), ("seed", str(calibration.seed))]
            if provenance is None else
            [("poolwise", provenance.poolwise), ("Python", provenance.python),
             ("date", provenance.date), ("seed", str(provenance.seed)),
             ("command", provenance.command or "in Python"),
             *([("input", provenance.input)] if provenance.input is not None else [])])
    context = {"name": _data_name(provenance), "title": title, "mode": calibration.mode,
               "priors": [calibration.prior], "method": calibration.method,
               "reps": calibration.reps, "ranked_draws": calibration.ranked_draws,
               "alpha": f"{ALPHA:g}", "alpha_percent": f"{100 * ALPHA:g} %",
               "verdict": calibration.verdict, "calibrated": calibration.calibrated,
               "table": _table(calibration.table), "notes": list(calibration.notes),
               "sections": _sections(_figures(directory)), "provenance": rows}
    return _render("calibration.html.j2", context)


def _render(template: str, context: Mapping[str, Any]) -> str:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("poolwise.outputs", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    return environment.get_template(template).render(**context)


# ------------------------------------------------------------------------- the parts
def _data_name(provenance: Provenance | None) -> str | None:
    if provenance is None or provenance.input is None:
        return None
    return Path(provenance.input).name


def _facts(fit: Fit, provenance: Provenance | None, *, model: bool = True
           ) -> list[tuple[str, str]]:
    """The data in a few lines: input, rows, observations, groups, columns used; and, with
    ``model``, the fit's family, formula and pooling."""
    facts: list[tuple[str, str]] = []
    stored = provenance.data if provenance is not None else {}
    if provenance is not None and provenance.input is not None:
        facts.append(("input", provenance.input))
    if "rows" in stored:
        facts.append(("rows read", f"{stored['rows']:,}"))
    observed = fit.tree["observed_data"] if "observed_data" in fit.tree.children else None
    if observed is not None and "y" in observed:
        facts.append(("observations of y", f"{observed['y'].size:,}"))
    else:
        facts.append(("observed values", f"{fit.observed_values():,}"))
    if "posterior" in fit.tree.children:
        posterior = fit.tree["posterior"]
        for dim in fit.group_dims:
            if dim in posterior.dims:
                facts.append(("groups" if dim == "group" else f"levels of {dim}",
                              f"{posterior.sizes[dim]:,}"))
    columns = ", ".join(f"{k} = {v}" for k, v in stored.get("columns", {}).items())
    if columns:
        facts.append(("columns", columns))
    spec = fit.model.spec() if model else {}
    for key in ("family", "formula", "pooling"):
        if spec.get(key) is not None:
            facts.append((key, str(spec[key])))
    return facts


def _equation(latex: str) -> dict[str, str | None]:
    """A LaTeX line drawn by matplotlib's mathtext as an SVG data URI (None where mathtext
    does not know a command; the page then shows the LaTeX)."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    try:
        mathtext.math_to_image(f"${latex}$", buffer, prop=FontProperties(size=15), dpi=100,
                               format="svg")
    except ValueError:
        return {"latex": latex, "image": None}
    return {"latex": latex, "image": _data_uri(buffer.getvalue(), "image/svg+xml")}


def _plate_diagram(figures: dict[str, str]) -> str | None:
    """The graphical model (SVG, else PNG), taken out of the figures."""
    svg, png = figures.pop("model.svg", None), figures.pop("model.png", None)
    return svg or png


def _method(fit: Fit) -> dict[str, str]:
    """The method, what it does and why it was used."""
    from poolwise.inference import METHODS
    from poolwise.vocabulary import METHOD_PHRASES

    model = fit.model
    offered = model.methods_for(model.pooling) if hasattr(model, "pooling") else ()
    why = ("the default for this model" if offered and offered[0] == fit.method else
           "chosen by the user" if offered else "")
    if "fallback" in fit.info:  # the default method's check failed; another ran
        why = str(fit.info["fallback"])
    # the registry's words are about partial pooling of rates and normal means
    conjugate = fit.kind in ("rates", "normal") and getattr(model, "pooling", "") == "partial"
    row = METHODS.get(fit.method) if conjugate else None
    config = fit.config
    size = (f"{config.chains} × {config.draws} draws"
            + (f" after {config.warmup} warm-up" if fit.is_mcmc else "")
            if "posterior" in fit.tree.children else "point estimates")
    return {"name": fit.method,
            "what": row.description if row is not None else METHOD_PHRASES.get(fit.method, ""),
            "why": why, "size": size}


def _pareto(fit: Fit) -> dict[str, float] | str:
    """PSIS-LOO's Pareto k̂ over the fit's points, or why there is none: point estimates,
    no log likelihood, or more than :data:`~poolwise.results.fit.PREDICTIVE_LIMIT` values
    of it (``poolwise compare`` computes it on demand)."""
    import warnings

    import numpy as np

    from poolwise import _arviz
    from poolwise.exceptions import PoolwiseError
    from poolwise.results.fit import PREDICTIVE_LIMIT

    size = fit.observed_values() * fit.config.draws * fit.config.chains
    if size > PREDICTIVE_LIMIT:
        return (f"not computed here: {size:,} pointwise log likelihoods (poolwise compare "
                "computes them)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elpd = _arviz.loo(fit.with_log_likelihood(), pointwise=True)
    except PoolwiseError as err:
        return str(err)
    except (ValueError, IndexError):  # the same log likelihood at every draw
        return "not computed: the log likelihood hardly varies between draws"
    k = np.asarray(elpd.pareto_k).ravel()
    return {"elpd": float(elpd.elpd), "k_max": float(np.max(k)),
            "bad": float(np.sum(k > elpd.good_k))}


def _loo_problem(pareto: dict[str, float] | str) -> list[str]:
    """A sentence where PSIS-LOO is unreliable (k̂ > 0.7 at some points): the diagnostics
    table shows the count, and the page must not say that no problem was found."""
    if isinstance(pareto, str) or not pareto["bad"]:
        return []
    return [f"PSIS-LOO is unreliable at {pareto['bad']:.0f} points (Pareto k̂ > 0.7, largest "
            f"{pareto['k_max']:.2f}): leaving one of them out moves the posterior too far to "
            "be estimated by reweighting the draws, as is common where a group has one "
            "observation; compare models by exact refits or K-fold cross-validation. This "
            "concerns comparing models, not the fit's draws."]


def _diagnostic_rows(fit: Fit, summary: pd.DataFrame, pareto: dict[str, float] | str
                     ) -> list[tuple[str, str, str]]:
    """(what, value, what it should be)."""
    from poolwise.results.diagnostics import ESS_PER_CHAIN, R_HAT_LIMIT

    rows: list[tuple[str, str, str]] = []
    if summary["r_hat"].notna().any():
        rows.append(("largest R-hat", _number(summary["r_hat"].max()), f"≤ {R_HAT_LIMIT}"))
    for column, label in (("ess_bulk", "smallest bulk ESS"), ("ess_tail", "smallest tail ESS")):
        if column in summary and summary[column].notna().any():
            rows.append((label, _number(summary[column].min(), 0),
                         f"≥ {ESS_PER_CHAIN * fit.config.chains}"))
    if "divergences" in fit.info:
        rows.append(("divergent transitions", str(fit.info["divergences"]), "0"))
    if fit.info.get("pareto_k") is not None:
        rows.append(("Pareto k̂ of the importance weights", _number(fit.info["pareto_k"], 2),
                     f"≤ {fit.info['pareto_k_limit']:.2f}"))
        rows.append(("ESS of the importance weights", _number(fit.info["importance_ess"], 0),
                     f"of {fit.info['proposals']:,} proposals"))
    if "fallback" in fit.info:
        rows.append(("fallback", str(fit.info["fallback"]), ""))
    if isinstance(pareto, str):
        rows.append(("PSIS-LOO", pareto, ""))
    else:
        rows.append(("largest Pareto k̂ (PSIS-LOO)", _number(pareto["k_max"], 2), "≤ 0.7"))
        rows.append(("points with k̂ > 0.7", f"{pareto['bad']:.0f}", "0"))
    if "seconds" in fit.info:
        rows.append(("seconds to fit", _number(fit.info["seconds"], 3), ""))
    return rows


def _pooling(summary: pd.DataFrame) -> str | None:
    """How much the groups were pooled, in a sentence (None where there is no factor)."""
    if "pooling_factor" not in summary or not summary["pooling_factor"].notna().any():
        return None
    factors = summary["pooling_factor"].dropna()
    return (f"Pooling factors (0: a group keeps its own estimate; 1: it takes the "
            f"population's) range from {factors.min():.2f} to {factors.max():.2f}, median "
            f"{factors.median():.2f}, over {len(factors):,} groups.")


def _hypotheses(decisions: Decisions | None) -> dict[str, Any] | None:
    import pandas as pd

    if decisions is None or not decisions.hypotheses:
        return None
    return _table(pd.DataFrame(list(decisions.hypotheses)))


def _ranked_first(summary: pd.DataFrame) -> dict[str, Any] | None:
    """The :data:`RANKED_SHOWN` groups with the best mean rank, when ranks were asked for:
    the answer to "which are the best?" without reading a table of every group."""
    if "rank_mean" not in summary.columns:
        return None
    ranked = summary.dropna(subset=["rank_mean"])
    if ranked.empty:
        return None
    columns = ["param", "group", "mean", "lower", "upper", "rank_mean", "rank_lower",
               "rank_upper", "p_best", "p_best_mcse"]
    first = ranked.nsmallest(RANKED_SHOWN, "rank_mean", keep="first")
    return _table(first[[c for c in columns if c in first.columns]])


def _pairwise(decisions: Decisions | None) -> dict[str, Any] | None:
    if decisions is None or decisions.pairwise is None:
        return None
    return _table(decisions.pairwise.reset_index(names=""))


def _provenance_rows(fit: Fit, provenance: Provenance | None) -> list[tuple[str, str]]:
    from poolwise._version import __version__

    if provenance is None:
        return [("poolwise", __version__), ("seed", str(fit.seed)),
                ("made", "in Python (no command line or input file recorded)")]
    rows = [("poolwise", provenance.poolwise), ("Python", provenance.python),
            ("date", provenance.date), ("seed", str(provenance.seed)),
            ("command", provenance.command or "in Python")]
    if provenance.input is not None:
        rows.append(("input", provenance.input))
        rows.append(("input SHA-256", provenance.input_sha256 or "a bundled dataset"))
    return rows


# ------------------------------------------------------------------------- tables
def _number(value: Any, digits: int = 4) -> str:
    """Significant digits, not fixed decimals; — for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "—" if math.isnan(number) else str(number)
    if digits == 0:
        return f"{number:,.0f}"
    return f"{number:.{digits}g}"


#: columns shown with their own format: counts whole, R-hat to three decimals
_FORMATS = {"ess_bulk": "{:,.0f}", "ess_tail": "{:,.0f}", "r_hat": "{:.3f}",
            "n_points": "{:,.0f}", "n_bad_k": "{:,.0f}", "rank_draws": "{:,.0f}",
            # ranks: whole numbers with separators (66,500, not 6.65e+04), the mean to 0.1
            "rank_mean": "{:,.1f}", "rank_lower": "{:,.0f}", "rank_upper": "{:,.0f}",
            "replicates": "{:,.0f}"}


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "—"
    if column in _FORMATS and isinstance(value, float | int) and math.isfinite(value):
        return _FORMATS[column].format(value)
    return _number(value) if isinstance(value, float | int) else str(value)


def _table(table: pd.DataFrame) -> dict[str, Any]:
    """Columns, the first :data:`MAX_ROWS` rows as text, and how many were left out."""
    shown = table.head(MAX_ROWS)
    columns = [str(c) for c in shown.columns if not shown[c].isna().all()] or \
        [str(c) for c in shown.columns]
    rows = [[_cell(c, record[c]) for c in columns]
            for record in shown.astype(object).where(shown.notna(), None)
            .to_dict("records")]
    numeric = [str(c) not in ("param", "group", "request", "variable", "statistic", "")
               and table[c].dtype.kind in "fiu" for c in columns]
    return {"columns": columns, "rows": rows, "numeric": numeric,
            "left_out": max(0, len(table) - MAX_ROWS)}


# ------------------------------------------------------------------------- figures
def _data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def _figures(directory: Path) -> dict[str, str]:
    """The figures in ``directory`` as data URIs, by file name."""
    mimes = {".png": "image/png", ".svg": "image/svg+xml"}
    return {path.name: _data_uri(path.read_bytes(), mimes[path.suffix])
            for path in sorted(directory.iterdir()) if path.suffix in mimes}


def _sections(figures: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """The figures by the section they go in, in :data:`FIGURES`' order; unknown ones under
    ``other``."""
    sections: dict[str, list[dict[str, str]]] = {
        section: [] for section in (*(s for s, _ in FIGURES.values()), "other")}
    placed: set[str] = set()
    for start, (section, caption) in FIGURES.items():
        for name, uri in figures.items():
            known = name == start or (not start.endswith(".png") and name.endswith(".png")
                                      and name.startswith(start))
            if known and name not in placed:
                placed.add(name)
                label = name.removesuffix(".png").replace("_", " ")
                sections[section].append(
                    {"name": name, "uri": uri, "caption": caption, "label": label})
    for name, uri in figures.items():
        if name not in placed and name.endswith(".png"):
            sections["other"].append(
                {"name": name, "uri": uri, "caption": name, "label": name})
    return sections
